"""Synthetic handwriting: any text drawn as pen strokes with a Hershey single-stroke font.

Each glyph of a Hershey font is a few polylines a pen follows (Dr. A. V. Hershey, U.S. National Bureau
of Standards; the acknowledgement that must travel with it is in ``HERSHEY.md``). Laid out along a
line, slanted, scaled, densified and jittered with a seeded generator, they give handwriting-like lines
with an exact transcription and exact character boundaries: data for tests, demos and for checking
that the attention window of a synthesis network walks along the text.

Stroke format, the IAM-OnDB reader's: one row per pen-down point, y pointing up, and each row the offset
from the previous point; the first row here is the offset from the origin (the reader's is (0, 0), and
normalisation leaves first rows out for both)::

    absolute points                        offsets (N, 3)
    stroke 1: p0 p1 p2                     row 0: p0 - (0, 0)  0
    stroke 2: p3 p4                        row 1: p1 - p0      0
                                           row 2: p2 - p1      1   <- end_of_stroke: the pen lifts after p2
                                           row 3: p3 - p2      0   <- the move in the air is an ordinary offset
                                           row 4: p4 - p3      1

Units: font units at scale 1, the grid the glyphs are drawn on: capitals are ``CAP_HEIGHT`` = 21 units
tall, the base line is y = 0 and the line starts at x = 0. Training code normalises offsets anyway.
"""

from dataclasses import dataclass
from functools import lru_cache
import math
from types import MappingProxyType

import numpy as np
import torch

from ..errors import UserError
from .strokes import absolute_to_offsets

FONT = "scripts"  # Hershey Script Simplex: joined single-stroke lower case, the face closest to handwriting
FIRST_CHAR, LAST_CHAR = " ", "~"  # printable ASCII, the range the font maps (its 96th glyph is a degree sign)
CAP_HEIGHT = 21  # font units from base line to cap line: hershey.doc, "Normal" size (base -9, cap +12)

# Densification. A Hershey glyph is a sparse polyline (median segment 2.2 units, straight strokes up to
# 41), while a pen tracker samples at a steady rate, so real handwriting has many close points and a
# model trained on it predicts small steps. Every pen-down segment longer than MAX_STEP is cut into
# equal pieces no longer than MAX_STEP (in output units, after scaling and slant, before jitter).
# 2 units, about a tenth of CAP_HEIGHT, gives about 37 points per lower-case letter at scale 1: tens of
# points per letter, like pen-tracker data. Moves in the air stay single offsets, as in IAM-OnDB.
MAX_STEP = 2.0

# Random style, one draw per line (random_style). The ranges are choices, not measurements: wide
# enough that no two lines look alike, narrow enough that every letter stays legible.
SLANT_DEG = (-10.0, 10.0)  # extra shear on top of the script's own forward lean: back-hand to steep
SCALE = (0.8, 1.25)        # writing size, a factor of about 1.5 between the smallest and largest
SPACING = (-1.0, 3.0)      # font units added to every advance (10 for e, 25 for m): tight to airy
JITTER_STD = 0.08          # per-point Gaussian noise, output units: a tremor, 1/25 of MAX_STEP

MIN_WORDS, MAX_WORDS = 2, 6  # words per line of random_lines: short lines keep tests and demos fast

# Plain English words covering all 26 letters, so no letter is missing from a synthetic training set.
WORDS = tuple("""
the of and to in is it you that he was for on are with as his they be at one have this from or had by
word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look
more day could go come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little only round man year
came show every good me give our under name very through just form sentence great think say help low line
quick brown fox jumps lazy dog zebra quiet jazz box wax quiz yellow zero six seven queen jungle value
""".split())


@dataclass(frozen=True)
class Style:
    """How one line is written. ``Style()`` is the plain font: upright as designed, no noise."""

    slant_deg: float = 0.0  # extra slant, degrees; positive leans the letters right
    scale: float = 1.0      # multiplies every coordinate (and with it the number of points)
    spacing: float = 0.0    # font units added to each character's advance
    jitter: float = 0.0     # std of the per-point Gaussian noise, output units

    def __post_init__(self):
        if not (self.scale > 0 and self.jitter >= 0 and abs(self.slant_deg) < 60):
            raise UserError(f"invalid handwriting style {self}: scale must be > 0, jitter >= 0 and "
                            f"|slant_deg| < 60 (received {self.scale}, {self.jitter}, {self.slant_deg})")


@dataclass(frozen=True)
class HandwrittenLine:
    """One rendered line.

    ``offsets``: float32 ``(N, 3)`` rows ``(dx, dy, end_of_stroke)`` (module docstring).
    ``bounds``: int64 ``(len(text), 2)``: character ``i`` drew ``offsets[bounds[i, 0]:bounds[i, 1]]``;
    the ranges are contiguous and in order, and empty for a space (its glyph has no strokes).
    """

    text: str
    offsets: np.ndarray
    bounds: np.ndarray
    style: Style


@dataclass(frozen=True)
class _Glyph:
    strokes: tuple  # of (n, 2) float64 arrays, x from the glyph's left edge, y up from the base line
    advance: float  # font units from this glyph's left edge to the next one's


@lru_cache(maxsize=4)
def _glyphs(font: str) -> MappingProxyType:
    """The printable-ASCII glyphs of a built-in Hershey font (read-only; parsed once per process)."""
    from HersheyFonts import HersheyFonts  # decompressing the bundled fonts takes a few ms: only on use

    reader = HersheyFonts()
    if font not in reader.default_font_names:
        raise UserError(f"unknown Hershey font {font!r}; the built-in fonts are "
                        f"{', '.join(sorted(reader.default_font_names))}")
    reader.load_default_font(font)
    base_line = reader.render_options["base_line"]  # y down in the font file: flip about the base line
    glyphs = {}
    for char, glyph in reader.all_glyphs.items():
        if FIRST_CHAR <= char <= LAST_CHAR:
            strokes = []
            for stroke in glyph.strokes:
                xy = np.array(stroke, dtype=np.float64)
                strokes.append(np.stack([xy[:, 0] - glyph.left_offset, base_line - xy[:, 1]], axis=1))
                strokes[-1].flags.writeable = False
            glyphs[char] = _Glyph(tuple(strokes), float(glyph.char_width))
    return MappingProxyType(glyphs)


def supported_characters(font: str = FONT) -> str:
    """Every character ``render_text`` can draw in ``font``, in code-point order."""
    return "".join(sorted(_glyphs(font)))


def random_style(rng) -> Style:
    """A style drawn uniformly from ``SLANT_DEG``, ``SCALE`` and ``SPACING``, with ``JITTER_STD`` noise.

    ``rng``: a ``numpy.random.Generator`` or ``torch.Generator``, seeded by the caller.
    """
    slant, scale, spacing = (_uniform(rng, *bounds) for bounds in (SLANT_DEG, SCALE, SPACING))
    return Style(slant_deg=slant, scale=scale, spacing=spacing, jitter=JITTER_STD)


def render_text(text: str, rng=None, style: Style | None = None, font: str = FONT) -> HandwrittenLine:
    """Draw ``text`` as pen strokes: a ``HandwrittenLine`` with ``(N, 3)`` offsets and per-character bounds.

    ``style=None`` draws a random style from ``rng`` (a seeded ``numpy.random.Generator`` or
    ``torch.Generator``); ``Style()`` is the plain font and needs no generator. A character the font
    lacks is a UserError that lists them all.
    """
    glyphs = _glyphs(font)
    missing = sorted(set(text) - set(glyphs))
    if missing:
        raise UserError(f"cannot draw {text!r}: the Hershey font {font!r} has no glyph for "
                        f"{len(missing)} character{'s' * (len(missing) > 1)}: {', '.join(map(repr, missing))}; "
                        f"it covers printable ASCII ({FIRST_CHAR!r} to {LAST_CHAR!r}, one line): "
                        f"transliterate or drop them")
    if style is None:
        if rng is None:
            raise UserError("render_text draws a random style from rng: pass rng=numpy.random.default_rng(seed) "
                            "(or a seeded torch.Generator), or style=Style() for the plain font")
        style = random_style(rng)
    if style.jitter > 0 and rng is None:
        raise UserError(f"style {style} has jitter = {style.jitter} but no rng was given: pass a seeded "
                        f"generator, or a style with jitter=0")
    shear = math.tan(math.radians(style.slant_deg))
    strokes, counts, pen_x = [], [], 0.0
    for char in text:
        glyph = glyphs[char]
        drawn = []
        for stroke in glyph.strokes:
            xy = (stroke + [pen_x, 0.0]) * style.scale
            xy[:, 0] += shear * xy[:, 1]  # shear about the base line, so the origin stays where it is
            drawn.append(_densify(xy, MAX_STEP))
        strokes += drawn
        counts.append(sum(len(s) for s in drawn))
        pen_x += glyph.advance + style.spacing
    if not strokes:
        raise UserError(f"cannot draw {text!r}: it has no visible character")
    xy = np.concatenate(strokes)
    if style.jitter > 0:
        xy = xy + style.jitter * _normal(rng, xy.shape)
    pen_up = np.zeros(len(xy))
    pen_up[np.cumsum([len(s) for s in strokes]) - 1] = 1.0  # the last point of every stroke
    ends = np.cumsum(counts)
    bounds = np.stack([ends - np.asarray(counts), ends], axis=1).astype(np.int64)
    offsets = absolute_to_offsets(np.concatenate([xy, pen_up[:, None]], axis=1))
    return HandwrittenLine(text, offsets, bounds, style)


def random_text(rng, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> str:
    """Between ``min_words`` and ``max_words`` (inclusive) words of ``WORDS``, joined by single spaces."""
    if not 1 <= min_words <= max_words:
        raise UserError(f"words per line: need 1 <= min_words <= max_words, received {min_words}, {max_words}")
    count = min_words + _integers(rng, max_words - min_words + 1, 1)[0]
    return " ".join(WORDS[i] for i in _integers(rng, len(WORDS), count))


def random_lines(count: int, rng, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS,
                 font: str = FONT) -> list[HandwrittenLine]:
    """``count`` lines of random words (``random_text``), each in its own random style (``random_style``)."""
    if count < 1:
        raise UserError(f"random_lines: count must be at least 1, received {count}")
    return [render_text(random_text(rng, min_words, max_words), rng, font=font) for _ in range(count)]


def _densify(xy: np.ndarray, max_step: float) -> np.ndarray:
    """``(n, 2)`` polyline -> the same polyline with points added so no step exceeds ``max_step``."""
    if len(xy) < 2:
        return xy
    pieces = np.maximum(np.ceil(np.hypot(*np.diff(xy, axis=0).T) / max_step), 1).astype(int)
    out = [xy[:1]]
    for start, end, n in zip(xy[:-1], xy[1:], pieces):
        out.append(start + (end - start) * (np.arange(1, n + 1) / n)[:, None])  # ends exactly on `end`
    return np.concatenate(out)


# Random numbers from either kind of generator, returned as NumPy arrays / Python numbers.

def _check_rng(rng) -> None:
    if not isinstance(rng, (np.random.Generator, torch.Generator)):
        raise UserError(f"rng must be a numpy.random.Generator or a torch.Generator, received "
                        f"{type(rng).__name__}: pass numpy.random.default_rng(seed)")


def _uniform(rng, low: float, high: float) -> float:
    _check_rng(rng)
    if isinstance(rng, torch.Generator):
        u = torch.rand((), generator=rng, dtype=torch.float64, device=rng.device).item()
    else:
        u = rng.random()
    return low + (high - low) * u


def _normal(rng, shape: tuple) -> np.ndarray:
    _check_rng(rng)
    if isinstance(rng, torch.Generator):
        return torch.randn(shape, generator=rng, dtype=torch.float64, device=rng.device).cpu().numpy()
    return rng.standard_normal(shape)


def _integers(rng, high: int, count: int) -> list:
    _check_rng(rng)
    if isinstance(rng, torch.Generator):
        return torch.randint(high, (count,), generator=rng, device=rng.device).tolist()
    return rng.integers(high, size=count).tolist()
