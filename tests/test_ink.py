"""What the recogniser sees of ink: the same features whatever the units, the sampling or the start."""

import json

import numpy as np
import pytest

from rnnlab import ink
from rnnlab.data import hershey
from rnnlab.data.strokes import absolute_to_offsets, offsets_to_points
from rnnlab.errors import UserError


@pytest.fixture(scope="module")
def line():
    return hershey.render_text("quick brown fox", np.random.default_rng(0)).offsets.astype(np.float64)


def densified(offsets, parts):
    """The same strokes with every pen-down step cut into ``parts`` equal steps (a denser tablet)."""
    points = offsets_to_points(offsets)
    rows = [points[0]]
    for previous, point in zip(points[:-1], points[1:]):
        if previous[2] < 0.5:  # pen down: the step is drawn
            for k in range(1, parts):
                rows.append(np.r_[previous[:2] + (point[:2] - previous[:2]) * k / parts, 0.0])
        rows.append(point)
    return absolute_to_offsets(np.array(rows)).astype(np.float64)


def test_the_scale_is_the_spread_of_the_drawn_line():
    # one vertical stroke from y = 0 to y = 3: y is uniform on [0, 3] along it, std 3 / sqrt(12)
    offsets = np.array([[0, 0, 0], [0, 3, 1]], dtype=np.float64)
    assert ink.line_scale(offsets) == pytest.approx(3 / np.sqrt(12))
    assert ink.line_scale(densified(offsets, 7)) == pytest.approx(3 / np.sqrt(12))
    # the jump between two strokes is not ink: two dashes at heights 0 and 2 spread by 1
    dashes = np.array([[0, 0, 0], [1, 0, 1], [0, 2, 0], [1, 0, 1]], dtype=np.float64)
    assert ink.line_scale(dashes) == pytest.approx(1.0)
    assert ink.line_scale(np.array([[0, 0, 0], [5, 0, 1]], dtype=np.float64)) == pytest.approx(5 / np.sqrt(12))
    assert ink.line_scale(np.array([[0, 0, 1]], dtype=np.float64)) == 1.0  # a dot


def test_features_do_not_depend_on_units_sampling_or_where_the_line_starts(line):
    reference = ink.features(line)
    scaled = line.copy()
    scaled[:, :2] *= 37.5  # tablet units instead of font units
    moved = line.copy()
    moved[0, :2] = (400.0, -90.0)  # the line starts elsewhere on the page
    for variant in (scaled, densified(line, 3), moved):
        got = ink.features(variant)
        assert got.shape == reference.shape
        np.testing.assert_allclose(got, reference, atol=2e-4)


def test_features_resample_evenly_and_keep_every_pen_lift(line):
    f = ink.features(line)
    assert f.shape[1] == ink.FEATURES and f.dtype == np.float32
    assert int(f[:, 2].sum()) == int((line[:, 2] > 0.5).sum())  # one lift per stroke
    steps = np.hypot(f[1:, 0], f[1:, 1])[f[:-1, 2] < 0.5]  # pen-down steps, in line scales
    assert np.median(steps) == pytest.approx(ink.RESAMPLE_STEP, rel=0.1)
    assert abs(f[:, 3].mean()) < 1e-5  # heights about the line's mean


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((4, 2)), np.array([[0, 0, 0], [np.nan, 1, 1]])])
def test_bad_ink_is_one_line(bad):
    with pytest.raises(UserError, match="strokes"):
        ink.features(bad)


def test_strokes_files_in_every_format_rnnlab_writes(tmp_path, line):
    rows = line.round(4).tolist()
    formats = {"written.json": {"lines": [{"text": "a", "offsets": rows, "stopped": True}, {"offsets": rows[:5]}]},
               "style.json": {"text": "quick brown fox", "offsets": rows},
               "styles.json": [{"text": "a", "offsets": rows}]}
    counts = {"written.json": 2, "style.json": 1, "styles.json": 1}
    for name, content in formats.items():
        (tmp_path / name).write_text(json.dumps(content))
        lines = ink.read_strokes(str(tmp_path / name))
        assert len(lines) == counts[name]
        np.testing.assert_allclose(lines[0], np.array(rows))
    for content in ({"lines": []}, {"offsets": [[0, 0]]}, {"offsets": [["1", 0, 0]]}, [1, 2], "text"):
        (tmp_path / "bad.json").write_text(json.dumps(content))
        with pytest.raises(UserError, match="must hold"):
            ink.read_strokes(str(tmp_path / "bad.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="not readable JSON"):
        ink.read_strokes(str(tmp_path / "broken.json"))


def test_a_screen_drawing_is_flipped_into_the_datas_orientation():
    drawn = [[10, 100, 0], [10, 80, 1]]  # a stroke drawn upwards on a screen (y down)
    offsets = ink.from_screen(drawn)
    assert offsets[1, 1] == pytest.approx(20.0)  # upwards in the data (y up)
    with pytest.raises(UserError, match="drawing"):
        ink.from_screen([[0, 0]])
