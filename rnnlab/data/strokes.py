"""IAM-OnDB online handwriting: read the distributed layout, pair lines with text, turn pen points into the
offsets of Graves (2013, §4), split by form, normalise. ``iamondb.py`` reads archives and caches the result.

The layout (``../shared/data/handwriting/SOURCE.md``), from a folder or the ``.tar.xz`` that holds it::

    lineStrokes/a01/a01-000/a01-000u-01.xml ...   one XML per written line: <Stroke>s of <Point x y>
    ascii/a01/a01-000/a01-000u.txt                one text per form; its CSR: section, one line per XML

Offsets. Points are IAM sensor units, y flipped so that **y points up** (IAM's sensor sits top-left and
its y grows downwards; rendering can plot (x, y) as is). Row t is the step *into* point t; the first row is
(0, 0) because the line starts where its first point is. end_of_stroke = 1 on the last point of a stroke,
so the step after it is a pen-up move::

    strokes (y up)   [p0 p1 p2] [p3 p4]
    offsets (N, 3)   row:  0       1        2        3        4
                     dx,dy (0, 0)  p1 - p0  p2 - p1  p3 - p2  p4 - p3      (row 3: the pen travels lifted)
                     eos   0       0        1        0        1

``offsets_to_points`` sums them back: the first point lands on ``start`` (the origin by default).
"""

from dataclasses import dataclass, field
import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET

import numpy as np

from ..errors import UserError
from ..files import read_bytes

log = logging.getLogger(__name__)

STROKES_DIR, TEXTS_DIR = "lineStrokes", "ascii"
LINE_FILE = re.compile(r"(?P<form>.+)-(?P<nn>\d+)\.xml")  # a01-000u-01.xml: form a01-000u, line 01
TEXT_ID = re.compile(r"[a-z]\d\d-\d\d\d")  # a01-001 in a01-001w / a01-001z: the printed text the writer copied
LINE_BREAK = "%" * 11  # IAM's line separator inside one CSR line (a08-551z): SOURCE.md's pairing rule
PLACEHOLDER = "Please Enter Transcription here"  # the whole CSR of z01-000z (SOURCE.md) and z00-001: no text
# Longest step kept, in sensor units. Graves (2013, §4) "removed steps whose length exceeded a certain
# threshold" without giving it. Measured on the 11,229 usable lines of the archive: in-stroke steps have
# median 18, 99.99th percentile 245, max 926; pen-up jumps median 175, 99.9th percentile 1,205, max 2,864;
# a line is 581 high (median). 1000 (1.7 line heights, 24 std) shortens 542 of 269k pen-up jumps (back to
# dot an i, or across a wide gap) in 406 lines and no in-stroke step, keeping each step's direction;
# write-rnn-tensorflow's 500 per axis would cut 3.4 % of the jumps. Shortening rather than dropping lines
# keeps every transcription.
MAX_STEP_LENGTH = 1000.0
# Coordinates in the archive lie in x [-51, 7224], y [93, 9181]; beyond 5x that a file is corrupt.
MAX_ABS_COORD = 50_000.0
# Graves's validation set (IAM-OnDB-t1 valid 1) is 1,438 of 12,179 lines (12 %); 10 % of the 1,595
# distributed forms keeps about 1,100 lines to validate on and 90 % to train on.
VALID_FRACTION = 0.1
# The alphabet of rnnlab's handwriting models (what the synthesis network writes, what the recogniser reads):
# every character of the IAM-OnDB transcriptions but "[", "]" and "*" (5 of 10,100 training lines), which
# are skipped, counted, in training. Rare letters (Q, X, Z: 17, 3 and 5 lines) stay in: a letter outside the
# alphabet is an error at write time, never silently dropped.
ALPHABET = " !\"#&'()+,-./0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SKIP_REASONS = {
    "malformed_xml": "the XML does not parse, or lacks <StrokeSet>, or a point's x/y is not a number",
    "empty_stroke_set": "the line XML holds no <Point>",
    "absurd_coordinates": f"a coordinate is not finite or beyond +-{MAX_ABS_COORD:g} sensor units",
    "unrecognised_name": "an XML under lineStrokes/ not named <form>-<NN>.xml",
    "unreadable_file": "the line XML, or the form's transcription, cannot be opened (permissions, I/O error)",
    "no_transcription": "the form has no ascii/**/<form>.txt, or it has no CSR: section",
    "placeholder_transcription": f"the form's CSR text is IAM's placeholder {PLACEHOLDER!r}",
    "line_count_mismatch": "the CSR has another number of lines than the form has line XMLs: the pairing is unknown",
}


class UnusableFile(UserError):
    """A line or transcription file that cannot be used; ``reason`` is a key of SKIP_REASONS."""

    def __init__(self, reason: str, message: str):
        assert reason in SKIP_REASONS, reason
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Line:
    """One written line: ids (``a01-000u``, ``a01-000u-01``), its transcription, offsets (N, 3) float32."""

    form_id: str
    line_id: str
    text: str
    offsets: np.ndarray


@dataclass
class ReadReport:
    """What a read kept and why it skipped the rest. Every line XML is kept or counted in ``skipped``."""

    line_files: int = 0  # XMLs found under lineStrokes/
    lines: int = 0  # kept
    skipped: dict = field(default_factory=dict)  # reason (SKIP_REASONS) -> line XMLs skipped for it
    examples: dict = field(default_factory=dict)  # reason -> the first file skipped for it, to look at
    clipped_steps: int = 0  # steps shortened to MAX_STEP_LENGTH
    clipped_lines: int = 0
    unused_transcriptions: int = 0  # ascii texts of forms with no line XML (177 in the archive)

    def skip(self, reason: str, path: str, count: int = 1, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.examples.setdefault(reason, path)
        log.debug("skipping %s (%s): %s", path, reason, detail or SKIP_REASONS[reason])

    def log_summary(self, lines: list, source: str, max_step: float | None) -> None:
        """One line saying what was kept, skipped and shortened: at every load, the cached ones too."""
        log.info("read %d lines of %d forms from %s; skipped %d line XMLs %s; shortened %d steps longer than %s "
                 "units in %d lines", len(lines), len({line.form_id for line in lines}), source,
                 sum(self.skipped.values()), self.skipped, self.clipped_steps, max_step, self.clipped_lines)


# ------------------------------------------------------------------------------ points and offsets


def read_line_strokes(path: str) -> np.ndarray:
    """Points of one line XML as (N, 3) float64: x, y **up** (negated IAM y), end_of_stroke; sensor units.
    Raises UnusableFile (malformed_xml, empty_stroke_set, absurd_coordinates)."""
    try:
        stroke_set = ET.fromstring(read_bytes(path, "stroke file")).find("StrokeSet")
    except ET.ParseError as e:
        raise UnusableFile("malformed_xml", f"{path}: {e}") from None
    except UserError as e:  # not a regular file, over the cap, unreadable
        raise UnusableFile("unreadable_file", str(e)) from None
    if stroke_set is None:
        raise UnusableFile("malformed_xml", f"{path}: no <StrokeSet> element")
    rows = []
    for stroke in stroke_set.iter("Stroke"):
        points = stroke.findall("Point")  # a <Stroke> without points adds no pen lift: it is not a stroke
        try:
            rows += [(float(p.get("x")), -float(p.get("y")), 0.0) for p in points]
        except (TypeError, ValueError):
            raise UnusableFile("malformed_xml", f"{path}: a <Point> lacks a numeric x or y") from None
        if points:
            rows[-1] = rows[-1][:2] + (1.0,)
    if not rows:
        raise UnusableFile("empty_stroke_set", f"{path}: no <Point> in the <StrokeSet>")
    points = np.asarray(rows, dtype=np.float64)
    if not np.all(np.abs(points[:, :2]) <= MAX_ABS_COORD):  # also catches nan and inf
        raise UnusableFile("absurd_coordinates", f"{path}: a coordinate is beyond +-{MAX_ABS_COORD:g} or not finite")
    return points


def points_to_offsets(points: np.ndarray) -> np.ndarray:
    """(N, 3) absolute (x, y, eos) -> (N, 3) float32 (dx, dy, eos); the first row's (dx, dy) is (0, 0)."""
    offsets = np.zeros(points.shape, dtype=np.float32)
    offsets[1:, :2] = np.diff(points[:, :2], axis=0)
    offsets[:, 2] = points[:, 2]
    return offsets


def offsets_to_points(offsets: np.ndarray, start=(0.0, 0.0)) -> np.ndarray:
    """(N, 3) offsets -> (N, 3) float64 absolute (x, y up, eos), the first point at ``start``."""
    points = np.array(offsets, dtype=np.float64)
    points[:, :2] = np.cumsum(points[:, :2], axis=0) + np.asarray(start, dtype=np.float64)
    return points


def absolute_to_offsets(points) -> np.ndarray:
    """``(N, 3)`` absolute ``(x, y, end_of_stroke)`` -> float32 ``(N, 3)`` offsets, the first from the origin
    (where ``points_to_offsets`` makes it (0, 0)); ``offsets_to_points`` is the inverse."""
    points = np.asarray(points, dtype=np.float64)
    xy = np.diff(points[:, :2], axis=0, prepend=np.zeros((1, 2)))
    return np.concatenate([xy, points[:, 2:]], axis=1).astype(np.float32)


def clip_steps(offsets: np.ndarray, max_length: float | None = MAX_STEP_LENGTH) -> tuple[np.ndarray, int]:
    """Shorten every step longer than ``max_length`` to that length, keeping its direction; None keeps
    all. Returns the (N, 3) offsets (a copy when any step changes) and the number of steps shortened."""
    if max_length is None:
        return offsets, 0
    length = np.hypot(offsets[:, 0], offsets[:, 1])
    long = length > max_length
    if not long.any():
        return offsets, 0
    offsets = offsets.copy()
    offsets[long, :2] *= (max_length / length[long])[:, None].astype(offsets.dtype)
    return offsets, int(long.sum())


def thin_strokes(offsets: np.ndarray, stride: int) -> np.ndarray:
    """Keep every ``stride``-th point of each stroke and its last one (the one with end_of_stroke): the same
    strokes in fewer, longer steps, every pen lift kept. ``stride`` 1 returns ``offsets`` unchanged.

        stroke (stride 2):  p0 p1 p2 p3 p4 p5 p6|     kept: p0 p2 p4 p6|
    """
    if stride == 1:
        return offsets
    points = offsets_to_points(offsets)
    n = len(points)
    last = points[:, 2] > 0.5
    last[-1] = True
    first = np.r_[True, last[:-1]]
    stroke_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return absolute_to_offsets(points[((np.arange(n) - stroke_start) % stride == 0) | last])


# ---------------------------------------------------------------------------------- the layout


def read_transcription(path: str) -> list[str]:
    """The CSR lines of a form's ascii text, IAM's %%% separator read as a line break (SOURCE.md)."""
    try:
        text = read_bytes(path, "stroke file").decode("latin-1")
    except UserError as e:
        raise UnusableFile("unreadable_file", str(e)) from None
    if "CSR:" not in text:
        raise UnusableFile("no_transcription", f"{path}: no CSR: section")
    csr = text.split("CSR:", 1)[1].replace(LINE_BREAK, "\n")
    return [line.strip() for line in csr.split("\n") if line.strip()]


def read_iamondb(root: str, max_step: float | None = MAX_STEP_LENGTH) -> tuple[list[Line], ReadReport]:
    """Read the folder holding ``lineStrokes/`` and ``ascii/``: the usable lines sorted by line id, and
    the report of what was skipped. A folder without the layout or without one usable line is a UserError."""
    root = layout_root(root)
    report, forms, texts = ReadReport(), {}, {}
    for dirpath, _, names in os.walk(os.path.join(root, STROKES_DIR)):
        for name in (n for n in names if n.endswith(".xml")):
            report.line_files += 1
            match = LINE_FILE.fullmatch(name)
            if match is None:
                report.skip("unrecognised_name", os.path.join(dirpath, name))
            else:
                forms.setdefault(match["form"], []).append((int(match["nn"]), os.path.join(dirpath, name)))
    for dirpath, _, names in os.walk(os.path.join(root, TEXTS_DIR)):
        texts.update((n[:-4], os.path.join(dirpath, n)) for n in names if n.endswith(".txt"))
    report.unused_transcriptions = len(texts.keys() - forms.keys())
    if not report.line_files:
        raise UserError(f"{root}/{STROKES_DIR} holds no line XML; give the IAM-OnDB folder or its .tar.xz")
    lines = []
    for form_id, files in sorted(forms.items()):
        files.sort()  # by NN: the CSR lines are in writing order
        try:
            if form_id not in texts:
                raise UnusableFile("no_transcription", f"no {TEXTS_DIR}/**/{form_id}.txt")
            csr = read_transcription(texts[form_id])
            if csr == [PLACEHOLDER]:
                raise UnusableFile("placeholder_transcription", f"{texts[form_id]} holds only the placeholder")
            if len(csr) != len(files):
                raise UnusableFile("line_count_mismatch", f"{len(csr)} CSR lines for {len(files)} line XMLs")
        except UnusableFile as e:
            report.skip(e.reason, files[0][1], count=len(files), detail=f"{len(files)} lines of {form_id}: {e}")
            continue
        for (_, path), text in zip(files, csr):
            try:
                offsets = points_to_offsets(read_line_strokes(path))
            except UnusableFile as e:
                report.skip(e.reason, path, detail=str(e))
                continue
            offsets, clipped = clip_steps(offsets, max_step)
            report.clipped_steps += clipped
            report.clipped_lines += clipped > 0
            lines.append(Line(form_id, os.path.basename(path)[:-4], text, offsets))
    report.lines = len(lines)
    report.log_summary(lines, root, max_step)
    if not lines:
        raise UserError(f"no usable line in {root} (skipped: {report.skipped}, e.g. {report.examples}); "
                        f"check that it is the IAM-OnDB lineStrokes/ + ascii/ layout")
    return lines, report


def layout_root(path: str) -> str:
    """``path``, or its only sub-folder, when it holds ``lineStrokes/`` and ``ascii/``; else a UserError."""
    if not os.path.isdir(path):
        raise UserError(f"{path} is not a folder; give the folder holding {STROKES_DIR}/ and {TEXTS_DIR}/")
    children = sorted(os.listdir(path))
    for candidate in [path] + [os.path.join(path, c) for c in children]:
        if all(os.path.isdir(os.path.join(candidate, d)) for d in (STROKES_DIR, TEXTS_DIR)):
            return candidate
    raise UserError(f"{path} does not hold the IAM-OnDB layout: expected folders {STROKES_DIR}/ and "
                    f"{TEXTS_DIR}/, found {children[:8] or 'nothing'}; give the folder that holds them or "
                    f"the archive iamondb_lineStrokes_ascii.tar.xz")


# ------------------------------------------------------------------- split and normalisation


def split_by_form(lines: list[Line], valid_fraction: float = VALID_FRACTION) -> tuple[list[Line], list[Line]]:
    """(train, valid): a form goes to validation when a sha256 of its text id (``a01-001`` for ``a01-001w``)
    falls below ``valid_fraction``. Forms are never split, and writers who copied the same printed text stay
    together, so no validation text was seen in training; a form's side never depends on the other forms."""
    if not 0.0 <= valid_fraction < 1.0:
        raise UserError(f"valid_fraction must be in [0, 1), got {valid_fraction}; 0.1 keeps 10 % to validate")

    def in_valid(form_id: str) -> bool:
        match = TEXT_ID.match(form_id)
        digest = hashlib.sha256((match[0] if match else form_id).encode()).digest()
        return int.from_bytes(digest[:8], "big") < valid_fraction * 2**64

    side = {form: in_valid(form) for form in {line.form_id for line in lines}}
    train = [line for line in lines if not side[line.form_id]]
    valid = [line for line in lines if side[line.form_id]]
    n_valid = sum(side.values())
    log.info("split by form (sha256 of the text id < %g -> validation): %d train lines of %d forms, %d validation "
             "lines of %d forms", valid_fraction, len(train), len(side) - n_valid, len(valid), n_valid)
    return train, valid


@dataclass(frozen=True)
class StrokeStats:
    """Mean and std of (dx, dy) over the training lines (their first rows, the fixed (0, 0), left out),
    stored with a model: ``normalise`` gives the unit-variance inputs of Graves (2013, §4)."""

    mean_dx: float
    mean_dy: float
    std_dx: float
    std_dy: float

    @classmethod
    def from_offsets(cls, lines: list[np.ndarray]) -> "StrokeStats":
        """From the ``(N, 3)`` offsets of each training line."""
        steps = np.concatenate([offsets[1:, :2] for offsets in lines] or [np.zeros((0, 2))]).astype(np.float64)
        if len(steps) < 2:
            raise UserError(f"normalisation needs at least 2 pen steps, the {len(lines)} lines given hold {len(steps)}")
        mean, std = steps.mean(axis=0), steps.std(axis=0)
        return cls(float(mean[0]), float(mean[1]), float(std[0]), float(std[1]))

    def normalise(self, offsets: np.ndarray) -> np.ndarray:
        """(..., 3) offsets -> (..., 3) with (dx, dy) standardised; end_of_stroke unchanged."""
        return (offsets - self._shift(offsets)) / self._scale(offsets)

    def denormalise(self, offsets: np.ndarray) -> np.ndarray:
        return offsets * self._scale(offsets) + self._shift(offsets)

    def _shift(self, like):
        return np.array([self.mean_dx, self.mean_dy, 0.0], dtype=like.dtype)

    def _scale(self, like):
        return np.array([self.std_dx, self.std_dy, 1.0], dtype=like.dtype)
