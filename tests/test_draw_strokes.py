import os
import re
import struct
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from rnnlab import draw
from rnnlab.data.hershey import Style, render_text
from rnnlab.errors import UserError

SVG = "{http://www.w3.org/2000/svg}"
# Three strokes in absolute coordinates (y up): an L, a dash high up, and a single-point dot low down.
STROKES = [np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 5.0]]), np.array([[20.0, 10.0], [25.0, 10.0]]),
           np.array([[30.0, -5.0]])]


def to_offsets(strokes):
    points = np.concatenate(strokes)
    eos = np.zeros(len(points))
    eos[np.cumsum([len(s) for s in strokes]) - 1] = 1
    return np.column_stack([np.diff(points, axis=0, prepend=[[0.0, 0.0]]), eos]).astype(np.float32)


def parse(svg):
    """(paths as (n, 2) arrays in SVG coordinates, viewBox (x, y, w, h), stroke width)."""
    root = ET.fromstring(svg)
    group = root.find(f"{SVG}g")
    paths = [np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", p.get("d"))]).reshape(-1, 2)
             for p in root.iter(f"{SVG}path")]
    return paths, [float(v) for v in root.get("viewBox").split()], float(group.get("stroke-width"))


def test_svg_has_one_path_per_stroke_with_y_flipped_inside_a_tight_viewbox():
    paths, (vx, vy, vw, vh), width = parse(draw.strokes_to_svg(to_offsets(STROKES)))
    assert len(paths) == len(STROKES)
    for path, stroke in zip(paths, STROKES):
        expected = stroke * [1, -1] if len(stroke) > 1 else np.repeat(stroke * [1, -1], 2, axis=0)
        np.testing.assert_allclose(path, expected, atol=0.05)
    points = np.concatenate(STROKES) * [1, -1]
    lo, hi = points.min(0), points.max(0)
    assert vx < lo[0] and vy < lo[1] and vx + vw > hi[0] and vy + vh > hi[1]  # every point inside
    margin = draw.MARGIN_FRACTION * 15  # writing size: the data's height, 15
    np.testing.assert_allclose([vx, vy, vw, vh], [lo[0] - margin, lo[1] - margin, 30 + 2 * margin,
                                                  15 + 2 * margin], atol=0.05)  # tight, plus the margin
    # The dash (data y = 10, the highest) is nearest the top of the page, the dot (y = -5) the bottom.
    assert paths[1][:, 1].max() < paths[0][:, 1].min() and paths[2][0, 1] > paths[0][:, 1].max()
    assert width == pytest.approx(draw.STROKE_WIDTH_FRACTION * 15, rel=0.01)


def test_svg_scales_with_the_drawing_and_counts_hershey_strokes():
    small = parse(draw.strokes_to_svg(to_offsets(STROKES)))
    big = parse(draw.strokes_to_svg(torch.tensor(to_offsets(STROKES)) * torch.tensor([10.0, 10.0, 1.0])))
    np.testing.assert_allclose(big[1], np.array(small[1]) * 10, rtol=1e-3)
    assert big[2] == pytest.approx(small[2] * 10, rel=0.01)  # the pen width follows the drawing size
    line = render_text("quick fox", style=Style())
    assert len(parse(draw.strokes_to_svg(line.offsets))[0]) == line.offsets[:, 2].sum()


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_save_strokes_writes_svg_and_png(tmp_path):
    offsets = to_offsets(STROKES)
    draw.save_strokes(offsets, str(tmp_path / "a.svg"))
    paths, (_, _, vw, vh), _ = parse((tmp_path / "a.svg").read_text())
    assert len(paths) == 3
    svg = ET.fromstring((tmp_path / "a.svg").read_text())
    scale = draw.WRITING_PX / 15  # pixels per data unit: the writing size (the data's height, 15) is WRITING_PX
    assert (float(svg.get("width")), float(svg.get("height"))) == pytest.approx((vw * scale, vh * scale), abs=0.5)
    draw.save_strokes(offsets, str(tmp_path / "a.PNG"))
    width, height = png_size(tmp_path / "a.PNG")
    assert (width, height) == pytest.approx((vw * scale, vh * scale), abs=2)  # the SVG's box and size in pixels
    assert sorted(os.listdir(tmp_path)) == ["a.PNG", "a.svg"]  # no temporary file left behind


@pytest.mark.parametrize("name", ["a.pdf", "a.jpg", "a"])
def test_bad_extension_is_a_user_error_and_writes_nothing(tmp_path, name):
    with pytest.raises(UserError, match=r"\.svg or \.png"):
        draw.save_strokes(to_offsets(STROKES), str(tmp_path / name))
    assert os.listdir(tmp_path) == []
    with pytest.raises(UserError, match="does not exist"):
        draw.save_strokes(to_offsets(STROKES), str(tmp_path / "missing" / "a.svg"))


def test_existing_file_is_untouched_when_rendering_fails(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous picture")
    bad = to_offsets(STROKES)
    bad[2, 0] = np.nan
    with pytest.raises(UserError, match="NaN or Inf"):
        draw.save_strokes(bad, str(target))
    with pytest.raises(UserError, match=r"\(N, 3\)"):
        draw.save_strokes(bad[:, :2], str(target))
    import matplotlib.figure

    def half_written(self, path, **kwargs):  # the renderer dies after writing part of the file
        with open(path, "wb") as f:
            f.write(b"\x89PNG partial")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        draw.save_strokes(to_offsets(STROKES), str(target))
    assert target.read_bytes() == b"previous picture"
    assert os.listdir(tmp_path) == ["out.png"]
