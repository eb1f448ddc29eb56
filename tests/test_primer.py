"""rnnlab.primer: a line drawn on a screen becomes a style at the model's pace and scale. Checked on real
lines (the bundled model's styles) drawn back as a screen would record them: flipped, scaled, at ten times
the points; the style keeps the shape (every point within a few percent of the line's height of the real
line), has the data's number of points for its text, and does not depend on the screen's scale or rate."""

import numpy as np
import pytest

import rnnlab
from rnnlab.data.strokes import StrokeStats, offsets_to_points
from rnnlab.errors import UserError
from rnnlab.primer import style_from_drawing


@pytest.fixture(scope="module")
def bundled():
    return rnnlab.load("builtin:handwriting")


def on_screen(offsets, scale, rate):
    """A line as a screen records it: y down, ``scale`` pixels per unit, ``rate`` points per data point
    (each step cut into ``rate`` pieces)."""
    points = offsets_to_points(offsets)
    rows = []
    for n, (x, y, end) in enumerate(points):
        if n and not points[n - 1, 2]:  # a pen-down step: the screen saw the points in between
            for f in np.arange(1, rate) / rate:
                rows.append([*(points[n - 1, :2] + f * (points[n, :2] - points[n - 1, :2])), 0.0])
        rows.append([x, y, end])
    rows = np.array(rows)
    return (rows * [scale, -scale, 1.0]).tolist()


def distance_to_line(a, b):
    """The largest distance from a point of ``a`` to the nearest point of ``b`` (both (n, 2))."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(1).max()


@pytest.mark.parametrize("n", range(4))
def test_a_real_line_drawn_on_a_screen_comes_back_in_shape_and_pace(bundled, n):
    style = bundled.styles[n]
    config = bundled.config
    made = style_from_drawing(on_screen(style.offsets, 3.7, 10), style.text, config.chars_per_point, config.stats)
    assert made.text == style.text and made.offsets.dtype == np.float32
    wanted = np.ceil(len(style.text) / config.chars_per_point)
    strokes = int(style.offsets[:, 2].sum())
    assert abs(len(made.offsets) - wanted) <= strokes  # the data's pace, give or take a point per stroke
    assert made.offsets[-1, 2] == 1 and made.offsets[:, 2].sum() == strokes  # every stroke kept
    rms = np.sqrt(np.mean(made.offsets[1:, :2] ** 2) * 2)
    stats = config.stats
    assert rms == pytest.approx(np.hypot(np.hypot(stats.std_dx, stats.std_dy), np.hypot(stats.mean_dx, stats.mean_dy)),
                                rel=1e-5)
    real, back = offsets_to_points(style.offsets)[:, :2], offsets_to_points(made.offsets)[:, :2]
    # Aligned by the line's first and last points, which resampling keeps (every stroke keeps its ends)
    scale = np.linalg.norm(real[-1] - real[0]) / np.linalg.norm(back[-1] - back[0])
    back = (back - back[0]) * scale + real[0]
    height, dense = np.ptp(real[:, 1]), np.array(on_screen(style.offsets, 1.0, 10))[:, :2] * [1, -1]
    assert distance_to_line(back, dense) < 0.02 * height  # on the line that was drawn
    assert distance_to_line(real, back) < 0.12 * height  # and along all of it


def test_the_screen_scale_and_rate_do_not_matter(bundled):
    style, config = bundled.styles[1], bundled.config
    small = style_from_drawing(on_screen(style.offsets, 0.2, 4), style.text, config.chars_per_point, config.stats)
    large = style_from_drawing(on_screen(style.offsets, 9.0, 4), style.text, config.chars_per_point, config.stats)
    np.testing.assert_allclose(small.offsets, large.offsets, rtol=1e-4, atol=1e-3)
    faster = style_from_drawing(on_screen(style.offsets, 9.0, 12), style.text, config.chars_per_point, config.stats)
    assert len(faster.offsets) == len(large.offsets)


def test_a_dot_keeps_one_point_and_a_straight_line_is_scaled():
    stats = StrokeStats(0.0, 0.0, 3.0, 4.0)
    made = style_from_drawing([[0, 0, 0], [10, 0, 1], [5, 5, 1]], "ab", 0.5, stats)
    assert made.offsets[:, 2].tolist().count(1.0) == 2 and (made.offsets[-1, :2] != 0).any()
    assert np.sqrt(np.mean(made.offsets[1:, :2] ** 2) * 2) == pytest.approx(5.0)


@pytest.mark.parametrize("points, text, expected", [
    ([[0, 0, 0]], "a", "at least 2 points"),
    ([[0, 0], [1, 1]], "a", "[[x, y, end_of_stroke]"),
    ([[0, 0, 0], [float("nan"), 1, 1]], "a", "finite numbers"),
    ([[0, 0, 0], [True, 1, 1]], "a", "finite numbers"),
    ("points", "a", "finite numbers"),
    ([[3, 3, 0], [3, 3, 1]], "a", "no length"),
    ([[0, 0, 0], [1, 1, 1]], " ", "needs its text"),
])
def test_bad_drawings_are_one_line(points, text, expected):
    with pytest.raises(UserError, match=expected.replace("[", r"\[")):
        style_from_drawing(points, text, 0.1, StrokeStats(0.0, 0.0, 1.0, 1.0))


def test_a_drawn_style_writes_lines_that_stop_by_graves_rule(bundled):
    style = bundled.drawn_style(on_screen(bundled.styles[3].offsets, 2.0, 6), bundled.styles[3].text)
    written = bundled.write("from a drawing", style=style, seed=1)
    assert written.stopped == [True] and len(written.lines[0]) > 50
    with pytest.raises(UserError, match="primes a synthesis run"):
        rnnlab.Run.drawn_style(type("R", (), {"task": rnnlab.TASKS["charlm"]})(), [[0, 0, 0], [1, 1, 1]], "a")


def test_a_drawing_that_resamples_to_no_movement_is_one_line():
    strokes = [[0, 0, 0], [10, 0, 1]] * 30  # thirty strokes over one short dash, for a one-letter text
    with pytest.raises(UserError, match="moves too little"):
        style_from_drawing(strokes, "a", 0.0877, StrokeStats(15.7, -0.2, 58.9, 57.3))
