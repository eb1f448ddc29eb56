"""rnnlab.draw: pen strokes as SVG (parsed back: one path per stroke, y flipped, a tight viewBox) and PNG
(its size read from the header), atomic writes, loss curves and window weights read back from the figure
drawn, and drawing that leaves matplotlib's global state (backend, pyplot's figures) as it found it."""

import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from rnnlab import draw
from rnnlab.data.hershey import Style, render_text
from rnnlab.errors import UserError
from rnnlab.writing import Handwriting

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


def segment_distance(px, py, ax, ay, bx, by):
    """Distance from points (px, py) to the segment a-b, brute force over numpy arrays."""
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


def test_png_pixels_are_the_pen_at_every_distance(tmp_path):
    """The PNG against a distance field computed by brute force: each pixel centre within the pen's radius
    (less the anti-aliased edge) of a stroke is ink, each one beyond it (plus the edge) paper."""
    from PIL import Image

    offsets = to_offsets(STROKES)
    draw.save_strokes(offsets, str(tmp_path / "a.png"), color="navy")
    pixels = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"), dtype=float)
    strokes, (x0, y0, x1, y1), width, size = draw._stroke_layout(offsets, None)
    scale = draw.WRITING_PX / size
    rows, cols = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    x, y = x0 + (cols + 0.5) / scale, y1 - (rows + 0.5) / scale  # pixel centres in data units, y up
    distance = np.full(rows.shape, np.inf)
    for stroke in strokes:
        ends = stroke if len(stroke) > 1 else stroke[[0, 0]]
        for (ax, ay), (bx, by) in zip(ends[:-1], ends[1:]):
            distance = np.minimum(distance, segment_distance(x, y, ax, ay, bx, by))
    radius, edge = width / 2 * scale, 0.75  # in pixels: half a pixel of anti-aliasing each side, and rounding
    inside, outside = distance * scale < radius - edge, distance * scale > radius + edge
    assert inside.sum() > 50 and outside.sum() > 1000
    navy = np.array([0, 0, 128])
    assert np.abs(pixels[inside] - navy).max() < 40                  # ink, in the colour asked for
    assert pixels[outside].min() > 250                               # white paper
    between = pixels[~inside & ~outside].mean(axis=1)
    assert ((between > 20) & (between < 240)).any()                  # grey edge pixels: anti-aliased
    with pytest.raises(UserError, match="not a colour"):
        draw.save_strokes(offsets, str(tmp_path / "b.png"), color="inky")
    assert not (tmp_path / "b.png").exists()


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
    from PIL import Image

    def half_written(self, path, **kwargs):  # the encoder dies after writing part of the file
        with open(path, "wb") as f:
            f.write(b"\x89PNG partial")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(Image.Image, "save", half_written)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        draw.save_strokes(to_offsets(STROKES), str(target))
    assert target.read_bytes() == b"previous picture"
    assert os.listdir(tmp_path) == ["out.png"]


# ------------------------------------------------------------------------------- plots of runs and windows


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures draw makes, to read back what was plotted."""
    made = []
    make_figure = draw._figure
    monkeypatch.setattr(draw, "_figure", lambda **kw: made.append(make_figure(**kw)) or made[-1])
    return made


RECORDS = [{"step": 5, "split": "train", "loss": 2.5}, {"step": 10, "split": "train", "loss": 2.0},
           {"step": 10, "split": "valid", "loss": 2.2}, {"step": 12, "split": "train", "loss": None},
           {"step": 15, "split": "train", "loss": 1.5}, {"step": 20, "split": "valid", "loss": 1.8}]


def test_plot_curves_draws_the_losses_of_the_records(tmp_path, figures):
    out = tmp_path / "curves.svg"
    draw.plot_curves(RECORDS, str(out), "run", "nats per character")
    assert ET.parse(out).getroot().tag == f"{SVG}svg"
    (ax,) = figures[0].axes
    train, valid = ax.get_lines()
    assert (list(train.get_xdata()), list(train.get_ydata())) == ([5, 10, 15], [2.5, 2.0, 1.5])  # no null loss
    assert (list(valid.get_xdata()), list(valid.get_ydata())) == ([10, 20], [2.2, 1.8])
    assert ax.get_ylabel() == "loss (nats per character)" and ax.get_title() == "run"
    confusion = [*RECORDS[:-1], {**RECORDS[-1], "confusion": [[3, 1], [0, 4]]}]
    draw.plot_curves(confusion, str(tmp_path / "c.png"), "run", "nats", class_names=["neg", "pos"])
    curves, matrix = figures[1].axes
    assert len(curves.get_lines()) == 2
    np.testing.assert_allclose(matrix.get_images()[0].get_array(), [[0.75, 0.25], [0.0, 1.0]])  # shares of each row
    assert [t.get_text() for t in matrix.get_xticklabels()] == ["neg", "pos"]
    with pytest.raises(UserError, match="no loss records"):
        draw.plot_curves([{"step": 1, "split": "train"}], str(tmp_path / "none.png"), "run", "nats")


def test_plot_attention_shows_each_lines_window_scaled_per_point(tmp_path, figures):
    rng = np.random.default_rng(0)
    phis = [rng.random((6, 4)), rng.random((9, 3))]
    phis[0][2] = 0.0  # a point where every weight is 0 stays 0 (no division by zero)
    written = Handwriting(["abc", "de"], [np.zeros((6, 3), np.float32), np.zeros((9, 3), np.float32)], [True, False],
                          phis)
    out = tmp_path / "att.png"
    written.save_attention(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = figures[0].axes
    assert len(axes) == 2
    for ax, phi, text in zip(axes, phis, written.texts):
        peak = phi.max(axis=1, keepdims=True)
        np.testing.assert_allclose(ax.get_images()[0].get_array(), (phi / np.where(peak > 0, peak, 1)).T)
        assert [t.get_text() for t in ax.get_yticklabels()] == [*text, "end"]
    assert "stopped by Graves' rule" in axes[0].get_title(loc="left")
    assert "cut at the cap of points" in axes[1].get_title(loc="left")
    with pytest.raises(UserError, match=r"\.png, \.svg or \.pdf"):
        written.save_attention(str(tmp_path / "att.gif"))


def test_drawing_leaves_the_backend_and_pyplots_figures_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    mine = plt.figure()  # a figure of the user's, which must stay the current one
    try:
        figures = plt.get_fignums()
        draw.save_strokes(to_offsets(STROKES), str(tmp_path / "a.png"))
        draw.plot_curves(RECORDS, str(tmp_path / "c.png"), "run", "nats")
        Handwriting(["ab"], [to_offsets(STROKES)], [True], [np.ones((6, 3))]).save_attention(str(tmp_path / "w.png"))
        assert matplotlib.get_backend() == backend and plt.get_fignums() == figures and plt.gcf() is mine
    finally:
        plt.close(mine)
    # and in a fresh process with a backend of the user's choice, pyplot is never even imported
    script = (f"import sys, numpy as np, matplotlib\n"
              f"from rnnlab import draw\n"
              f"from rnnlab.writing import Handwriting\n"
              f"offsets = np.array({to_offsets(STROKES).tolist()})\n"
              f"draw.save_strokes(offsets, {str(tmp_path / 'b.png')!r})\n"
              f"draw.plot_curves({RECORDS!r}, {str(tmp_path / 'd.png')!r}, 'run', 'nats')\n"
              f"Handwriting(['ab'], [offsets], [True], [np.ones((6, 3))]).save_attention({str(tmp_path / 'x.pdf')!r})\n"
              f"assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
              f"assert 'matplotlib.pyplot' not in sys.modules\n")
    env = {**os.environ, "MPLBACKEND": "svg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert all((tmp_path / name).stat().st_size > 0 for name in ("b.png", "d.png", "x.pdf"))
