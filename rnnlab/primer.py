"""A hand drawn on a screen -> a style the synthesis network carries on in (``writing.Style``, Graves §5.5).

A mouse or a finger gives points at the screen's rate and scale: y grows downwards, a point every few
pixels or milliseconds, a line as tall as the user likes. The network knows only its data's: y up,
``1 / chars_per_point`` points per character of text (the data's writing speed) and steps as long as the
data's (``StrokeStats``). So a drawing becomes a style in three steps::

    screen points (x, y down, end_of_stroke)          p p p p p p p p p|  p p p p|
    1. y flipped, strokes split at end_of_stroke      [stroke 1]         [stroke 2]
    2. each stroke resampled at equal arc length,     q   q   q   q|     q   q|
       len(text) / chars_per_point points in all      (the pace of the data for this text)
    3. scaled, both axes alike (the hand's shape      steps as long as the data's on average
       kept), to the data's root mean square step

The points per stroke follow its length; a stroke too short for a step (a dot) keeps one point.
"""

import math

import numpy as np

from .data.strokes import StrokeStats, absolute_to_offsets
from .errors import UserError
from .ink import resample_stroke
from .writing import Style, point_rows

MIN_POINTS = 2  # a line of at least one step


def style_from_drawing(points, text: str, chars_per_point: float, stats: StrokeStats) -> Style:
    """The style of a line drawn on a screen: ``points`` ``(N, 3)`` absolute ``(x, y, end_of_stroke)`` with y
    pointing down, in any unit (pixels), ``text`` what it says; resampled to ``chars_per_point`` characters
    per point and scaled to the spread of ``stats`` (module docstring). Returns offsets in data units."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the drawn style needs its text: type what the drawing says")
    drawn = _checked(points)
    drawn[:, 1] = -drawn[:, 1]  # screens count y downwards; the data counts it upwards
    ends = np.flatnonzero(drawn[:, 2] > 0.5) + 1
    strokes = [s[:, :2] for s in np.split(drawn, ends) if len(s)]
    lengths = np.array([np.hypot(*np.diff(s, axis=0).T).sum() for s in strokes])
    if not lengths.sum() > 0:
        raise UserError("the drawing has no length (every point in one place); draw the line's letters")
    wanted = max(MIN_POINTS, math.ceil(len(text.strip()) / chars_per_point))
    resampled = [resample_stroke(s, max(1, round(wanted * length / lengths.sum()))) for s, length in zip(strokes, lengths)]
    rows = np.concatenate([np.column_stack([s, np.r_[np.zeros(len(s) - 1), 1.0]]) for s in resampled])
    offsets = absolute_to_offsets(rows).astype(np.float64)
    offsets[0, :2] = 0.0  # a line starts where its first point is (the data's first row)
    # The spread as the root mean square step (a straight line's steps are all alike: no variance), the
    # data's from its means and standard deviations.
    spread = math.sqrt(np.mean(offsets[1:, :2] ** 2) * 2)
    if not spread > 0:  # every stroke drawn over the same short line: resampled to one point each, in place
        raise UserError("the drawing moves too little for its text; draw the line's letters, larger")
    target = math.hypot(stats.std_dx, stats.std_dy, stats.mean_dx, stats.mean_dy)
    offsets[:, :2] *= target / spread
    return Style(text.strip(), offsets.astype(np.float32))


def _checked(points) -> np.ndarray:
    """``points`` as a float64 ``(N, 3)`` array, or one line saying what is wrong with them."""
    expected = "the drawing must be [[x, y, end_of_stroke], ...] with at least 2 points of finite numbers"
    drawn = point_rows(points, MIN_POINTS)
    if drawn is None:
        raise UserError(expected)
    return drawn
