"""What the recogniser sees of a line of ink: its strokes resampled at an even spacing and measured on the
line's own scale, so that the same words read the same whatever the pen, the screen or the synthesis
network recorded them with (a tablet's 100 points per second, a mouse's uneven events, any units).

    1. scale    the standard deviation of the ink's heights along its pen-down strokes (weighted by
                length, not by point, so any sampling gives it): about half a lower-case letter's height
                (IAM-OnDB's lines hold 2-6 scales of pen-down arc per character, median 4)
    2. resample every stroke by arc length, one point every ``step`` scales (0.2: about 20 points per
                character, as IAM-OnDB's tablet gives); a stroke's first and last points are kept, and the
                jump between strokes stays one step with the pen up
    3. features per point: dx, dy (in scales), the pen lift after the point, and the height above the
                line's mean (in scales), each clipped to +-MAX_FEATURE

Offsets are rnnlab's ``(N, 3)`` rows ``(dx, dy, end_of_stroke)`` (``data/strokes.py``), y growing upwards as
in IAM-OnDB's files read by rnnlab and in what the synthesis network writes.
"""

import math

import numpy as np

from .data.strokes import absolute_to_offsets, offsets_to_points
from .errors import UserError
from .files import JSONError, read_json
from .writing import point_rows

FEATURES = 4  # dx, dy, pen lift, height
RESAMPLE_STEP = 0.2  # scales between resampled points (module docstring, step 2)
MAX_FEATURE = 50.0  # scales: a jump across a line is tens of them; past this only a damaged file goes
STROKES_FORMAT = ('{"lines": [{"offsets": [[dx, dy, end_of_stroke], ...]}, ...]} (what Handwriting.save writes '
                  'as .json) or {"text": ..., "offsets": [...]} (a --style file), or a list of either\'s lines')
MIN_SCALE = 1e-9  # heights varying less than this fraction of the ink's length (a flat dash): measured on x


def line_scale(offsets: np.ndarray) -> float:
    """The spread of the ink's heights along its pen-down strokes: the standard deviation of y over every
    point of the drawn line (each straight step weighted by its length, exactly), so that it does not depend
    on how densely the line was sampled; for ink with no height (a horizontal stroke), the spread of its x;
    1 for a dot."""
    points = offsets_to_points(offsets.astype(np.float64))
    down = np.r_[False, points[:-1, 2] < 0.5]  # a step from a point that did not end its stroke
    starts, ends = points[np.flatnonzero(down) - 1, :2], points[down, :2]
    weights = np.hypot(*(ends - starts).T)
    if not weights.sum() > 0:
        return 1.0  # dots only: any scale reads them the same
    for axis in (1, 0):
        a, b = starts[:, axis], ends[:, axis]
        mean = np.average((a + b) / 2, weights=weights)  # along a straight step, y is linear in the arc length:
        square = np.average((a * a + a * b + b * b) / 3, weights=weights)  # its mean and mean square, exactly
        spread = math.sqrt(max(square - mean * mean, 0.0))
        if spread > MIN_SCALE * weights.sum():
            return spread
    return 1.0


def resample(offsets: np.ndarray, step: float) -> np.ndarray:
    """``offsets`` with each stroke resampled every ``step`` units of arc length (its ends kept)."""
    points = offsets_to_points(offsets.astype(np.float64))
    ends = np.flatnonzero(points[:, 2] > 0.5) + 1
    out = []
    for stroke in (s[:, :2] for s in np.split(points, ends) if len(s)):
        length = np.hypot(*np.diff(stroke, axis=0).T).sum()
        resampled = resample_stroke(stroke, max(2, int(round(length / step)) + 1))
        out.append(np.column_stack([resampled, np.r_[np.zeros(len(resampled) - 1), 1.0]]))
    return absolute_to_offsets(np.concatenate(out))


def resample_stroke(stroke: np.ndarray, count: int) -> np.ndarray:
    """``count`` points at equal arc length along the polyline ``stroke`` ``(n, 2)``, both ends kept (one
    point, the first, when ``count`` is 1 or the stroke has no length)."""
    steps = np.hypot(*np.diff(stroke, axis=0).T)
    along = np.r_[0.0, np.cumsum(steps)]
    if count == 1 or along[-1] == 0:
        return stroke[:1]
    at = np.linspace(0.0, along[-1], count)
    keep = np.r_[True, steps > 0]  # np.interp needs increasing positions: repeated points add nothing
    return np.column_stack([np.interp(at, along[keep], stroke[keep, 0]), np.interp(at, along[keep], stroke[keep, 1])])


def features(offsets: np.ndarray, step: float = RESAMPLE_STEP) -> np.ndarray:
    """``(N, 3)`` offsets -> ``(M, FEATURES)`` float32 features of the resampled line (module docstring)."""
    offsets = np.asarray(offsets)
    if offsets.ndim != 2 or offsets.shape[1] != 3 or not len(offsets):
        raise UserError(f"strokes must be (N, 3) rows of dx, dy, end_of_stroke with N >= 1, got shape {offsets.shape}")
    if not np.isfinite(offsets).all():
        raise UserError("strokes hold a NaN or infinite offset; give finite pen positions")
    scale = line_scale(offsets)
    scaled = offsets.astype(np.float64)
    scaled[:, :2] /= scale
    scaled[0, :2] = 0.0  # the line starts at its first point, wherever that was
    line = resample(scaled, step)
    heights = np.cumsum(line[:, 1])
    out = np.stack([line[:, 0], line[:, 1], line[:, 2], heights - heights.mean()], axis=1)
    return np.clip(out, -MAX_FEATURE, MAX_FEATURE).astype(np.float32)


def read_strokes(path: str) -> list[np.ndarray]:
    """The lines of ink in a JSON file, each ``(N, 3)`` offsets: ``Handwriting.save``'s ``.json``, a style
    file (one line, its text ignored) or a list of style entries."""
    try:
        data = read_json(path, "style", "strokes file", "give a .json file of strokes")
    except JSONError as e:
        raise UserError(f"{path} is not readable JSON ({e.reason}); give {STROKES_FORMAT}") from None
    entries = data.get("lines") if isinstance(data, dict) and "lines" in data else data
    entries = entries if isinstance(entries, list) else [entries]
    lines = [_offsets(entry) for entry in entries]
    if not lines or any(line is None for line in lines):
        raise UserError(f"{path} must hold {STROKES_FORMAT}, each with at least one row of 3 finite numbers")
    return lines


def from_screen(points) -> np.ndarray:
    """Offsets of a line drawn on a screen: ``points`` ``(N, 3)`` absolute ``(x, y, end_of_stroke)`` with y
    pointing down, in any unit; one line saying what is wrong otherwise."""
    drawn = point_rows(points, 1)
    if drawn is None:
        raise UserError("the drawing must be [[x, y, end_of_stroke], ...] with at least one point of finite numbers")
    drawn[:, 1] = -drawn[:, 1]  # screens count y downwards; the data counts it upwards
    return absolute_to_offsets(drawn)


def _offsets(entry) -> np.ndarray | None:
    """The ``"offsets"`` of a JSON entry as float64 ``(N, 3)``, or None where they are not rows of 3 numbers."""
    try:
        return point_rows(entry["offsets"], 1)
    except (TypeError, KeyError, IndexError):
        return None
