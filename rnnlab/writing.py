"""Text -> handwriting with a synthesis network (Graves 2013 §5.3-5.5): batched sampling that stops, the
bias, priming with a style, pages of several lines, and :class:`Handwriting`, what ``Run.write`` returns.

Sampling one batch of lines, each with its own text::

    state <- the model run over the style's strokes (priming), with the text "style text" + " " + line text
    repeat, one point per line per step:
        stop a line when its window has moved past its last character (attention.finished: Graves' rule)
                  or when it has drawn CAP_FACTOR times the points its text should take (the safety net)
        draw the next point of every line still writing from the mixture (mixture.sample, with the bias)
        feed the points back in          (pen.py: the step, on NumPy arrays on a CPU)

A style is a real line of strokes and its text (a JSON file, or one of the run's ``styles.json``): the network
reads it as if it had written it, and carries on in that hand. Everything here is in the data's own units;
normalisation happens on the way in and out.
"""

from collections.abc import Iterator
from dataclasses import dataclass
import json
import math
import os
import textwrap

import numpy as np
import torch

from .attention import StopRule
from .data.strokes import StrokeStats, absolute_to_offsets, offsets_to_points, thin_strokes
from .data.text import Vocab
from .errors import UserError
from .files import JSONError, atomic_write, read_json, write_text
from .pen import make_pen

MAX_BIAS = 10.0  # sigma shrinks by e^-10 and pi is a one-hot long before: larger biases change nothing
CAP_FACTOR = 3.0  # a line stops after 3x its text's points at the training data's average speed (1% of IAM
                  # lines are slower than 1.7x: 36 points per character against 21.8 on average)
SUGGESTED_WRAP = 40  # characters: the --wrap an over-long line's error suggests, short of any trained limit
FLOAT32_MAX = float(np.finfo(np.float32).max)  # style offsets are float32: a larger number would be inf


def point_rows(rows, at_least: int) -> np.ndarray | None:
    """``rows`` (JSON lists) as float64 ``(N, 3)`` with ``N >= at_least``, or None where they are not rows of 3
    numbers float32 can hold (the shared check of style files, strokes files and drawn points; each caller
    says in its own words what was expected)."""
    try:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in rows for v in row)
        array = np.array(rows, dtype=np.float64) if numbers else None  # a copy; no "1" read as 1.0
    except (TypeError, ValueError, OverflowError):
        return None
    if array is None or array.ndim != 2 or array.shape[1:] != (3,) or len(array) < at_least \
            or not (np.abs(array) <= FLOAT32_MAX).all():  # NaN fails this too
        return None
    return array
LINE_SPACING = 1.4  # page layout: baseline-to-baseline distance / the tallest line's height


@dataclass(frozen=True)
class Style:
    """A primer: ``offsets`` ``(N, 3)`` in data units and the ``text`` they write."""

    text: str
    offsets: np.ndarray


@dataclass
class Handwriting:
    """Lines of pen strokes: what ``Run.write`` (and ``Run.sample`` on a prediction run) returns.

    ``lines``: one ``(N_i, 3)`` float32 array of offsets ``(dx, dy, end_of_stroke)`` per line, in the data's
    units (y up); ``texts``: what each line writes ("" for an unconditional sample); ``stopped``: whether each
    line ended by Graves' rule (True) or at the cap of points; ``attention``: the window weights of each line
    ``(N_i, U_i + 1)`` over its characters and the position past its end, or None (unconditional).

    In a notebook it shows itself as SVG; :meth:`save` writes ``.svg``, ``.png``, ``.json`` or ``.npy``.
    """

    texts: list
    lines: list
    stopped: list
    attention: list | None = None

    def page(self) -> tuple[np.ndarray, float | None]:
        """The drawing: the lines one under the other (:func:`layout_page`) and its writing size; an
        unconditional sample is drawn as it was sampled (writing size None: from its own extent)."""
        if self.attention is None and len(self.lines) == 1:
            return self.lines[0], None
        return layout_page(self.lines)

    def to_svg(self, stroke_width: float | None = None, color: str = "black") -> str:
        from .draw import strokes_to_svg

        offsets, size = self.page()
        return strokes_to_svg(offsets, stroke_width, color, writing_size=size)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def save(self, path: str, stroke_width: float | None = None, color: str = "black") -> None:
        """Write the drawing as ``.svg`` or ``.png``, or the strokes as ``.json`` (``{"lines": [{"text",
        "offsets", "stopped"}, ...]}``) or ``.npy`` (the drawing's ``(N, 3)`` offsets). The file appears whole
        or not at all."""
        from .draw import check_output, save_strokes

        kind = os.path.splitext(path)[1].lower()
        if kind == ".json":
            check_output(path)
            lines = [{"text": t, "offsets": line.round(4).tolist(), "stopped": bool(s)}
                     for t, line, s in zip(self.texts, self.lines, self.stopped)]
            write_text(path, json.dumps({"lines": lines}) + "\n")
        elif kind == ".npy":
            check_output(path)
            offsets = np.asarray(self.page()[0], dtype=np.float32)
            atomic_write(path, lambda tmp: _save_npy(tmp, offsets))
        elif kind in (".svg", ".png"):
            offsets, size = self.page()
            save_strokes(offsets, path, stroke_width, color, writing_size=size)
        else:
            raise UserError(f"{path}: handwriting is saved as .svg, .png, .json or .npy; pick one of those extensions")

    def save_attention(self, path: str) -> None:
        """Plot the window weights of every line (time x characters) to ``path`` (.png, .svg or .pdf)."""
        from .draw import plot_attention

        if self.attention is None:
            raise UserError("an unconditional sample has no window to plot: only written text does")
        plot_attention(self, path)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to the temporary name
        np.save(f, array)


def split_lines(text: str, wrap: int = 0) -> list[str]:
    """A user's text -> its lines: split at newlines (a typed backslash-n counts too), blank lines dropped;
    with ``wrap`` > 0 each line is also broken at spaces into lines of at most ``wrap`` characters (a longer
    word stays whole, and :func:`check_texts` judges it)."""
    if wrap < 0:
        raise UserError(f"--wrap must be a number of characters (0 = no wrapping), got {wrap}")
    lines = [line.strip() for line in text.replace("\\n", "\n").split("\n")]
    if wrap:
        lines = [piece for line in lines
                 for piece in textwrap.wrap(line, wrap, break_long_words=False, break_on_hyphens=False)]
    lines = [line for line in lines if line]
    if not lines:
        raise UserError("the text to write is empty; give at least one character, for example: rnnlab write \"Hello\"")
    return lines


def check_texts(texts: list[str], vocab: Vocab, max_length: int) -> None:
    """Every character in the model's alphabet and no line beyond the longest the model was trained on."""
    vocab.encode(list("".join(texts)), "the text")  # names every unknown character
    for n, text in enumerate(texts, 1):
        if not max_length or len(text) <= max_length:
            continue
        if " " not in text:  # --wrap cannot help: it breaks lines at spaces only
            raise UserError(f"line {n} is one word of {len(text)} characters, but this model was trained on lines of "
                            f"at most {max_length}; shorten it or break it with a space or a newline")
        raise UserError(f"line {n} has {len(text)} characters, but this model was trained on lines of at most "
                        f"{max_length}; break it into shorter lines with newlines or --wrap {min(SUGGESTED_WRAP, max_length)}")


def check_bias(bias: float) -> None:
    if not 0.0 <= bias <= MAX_BIAS:
        raise UserError(f"--bias must be between 0 (plain sampling) and {MAX_BIAS:g} (neatest), got {bias}")


def read_style_file(path: str, point_stride: int = 1) -> Style:
    """A style from a JSON file ``{"text", "offsets"}`` of strokes as the data records them, thinned like the
    training data (``point_stride``)."""
    style = read_styles(path, single=True)[0]
    return Style(style.text, thin_strokes(style.offsets, point_stride))


def read_styles(path: str, single: bool = False) -> list[Style]:
    """The styles of a JSON file: a list of ``{"text", "offsets"}`` objects, or one (``single``)."""
    try:
        data = read_json(path, "style", "style file", "give a style number or a JSON file {\"text\", \"offsets\"}")
    except JSONError as e:
        raise UserError(f"--style {path} is not readable JSON ({e.reason})") from None
    entries = [data] if single else data
    styles = []
    for entry in entries if isinstance(entries, list) else [None]:
        try:
            text, offsets = entry["text"], point_rows(entry["offsets"], 2)
        except (TypeError, KeyError, IndexError):
            text, offsets = None, None
        if not isinstance(text, str) or not text.strip() or offsets is None:
            raise UserError(f"style file {path} must hold {{\"text\": \"...\", \"offsets\": [[dx, dy, end_of_stroke], "
                            f"...]}} with a non-empty text and at least 2 rows of 3 numbers float32 can hold")
        styles.append(Style(text.strip(), offsets.astype(np.float32)))
    return styles


@dataclass(frozen=True)
class Chunk:
    """Points of one line as :func:`write_stream` draws them: ``offsets`` ``(n, 3)`` float32 in data units,
    the next ``n`` rows of ``Handwriting.lines[line]`` (the chunks of a line, in order, are that line)."""

    line: int
    offsets: np.ndarray


CHUNK_POINTS = 8  # steps between chunks: 8 points are a few milliseconds of sampling, a smooth pen on a page


def write_lines(model, vocab: Vocab, texts: list[str], bias: float, generator: torch.Generator, stats: StrokeStats,
                chars_per_point: float, style: Style | None = None) -> Handwriting:
    """Every text of ``texts`` as one line of handwriting, sampled in one batch: :func:`write_stream`'s
    ``Handwriting``, without the chunks."""
    *_, written = write_stream(model, vocab, texts, bias, generator, stats, chars_per_point, style, chunk=0)
    return written


@torch.inference_mode()
def write_stream(model, vocab: Vocab, texts: list[str], bias: float, generator: torch.Generator, stats: StrokeStats,
                 chars_per_point: float, style: Style | None = None,
                 chunk: int = CHUNK_POINTS) -> Iterator["Chunk | Handwriting"]:
    """Sample every text of ``texts`` as one line of handwriting, in one batch (module docstring), yielding
    the points as they are drawn, a :class:`Chunk` per line every ``chunk`` steps (0: one per line at the end,
    for a caller that wants only the whole), then the whole :class:`Handwriting`. ``model`` is a ``HandwritingSynthesizer`` over the alphabet ``vocab``, ``stats``
    its data's normalisation and ``chars_per_point`` its data's writing speed (the cap of points).

    A line's last point is held back until the line ends, which sets its end_of_stroke (the pen leaves the
    paper), so a chunk is never revised."""
    model.eval()
    device = next(model.parameters()).device
    prefix = style.text + " " if style else ""
    full = [prefix + text for text in texts]
    sizes = np.array([len(t) for t in full])
    lengths = torch.from_numpy(sizes).to(device)
    ids = torch.zeros(len(full), int(sizes.max()), dtype=torch.long, device=device)
    for i, t in enumerate(full):
        ids[i, : len(t)] = vocab.encode(list(t), "the text").to(device)
    caps = np.array([math.ceil(CAP_FACTOR * len(t) / chars_per_point) for t in texts])

    x = torch.zeros(len(full), 1, 3, device=device)
    if style is not None:  # read the style's strokes as the network's own past
        primer = torch.from_numpy(stats.normalise(style.offsets.astype(np.float32))).to(device)
        x = torch.cat([x, primer.expand(len(full), -1, -1)], dim=1)
    y, state = model(x, model.start(ids, lengths))
    pen = make_pen(model, state, y[:, -1], generator)
    finished = StopRule(sizes, ids.size(1) + 1)
    active = np.ones(len(full), dtype=bool)
    by_rule = np.zeros_like(active)
    lines = [[] for _ in texts]  # per line: the float32 (n, 3) pieces drawn so far, in data units
    phis, drawn, held = [], [], [None] * len(texts)  # held: points of a line drawn but not yet given out
    for t in range(int(caps.max()) + 1):
        phi = pen.phi
        done = finished(phi)
        by_rule |= active & done
        active &= ~done & (t < caps)
        more = bool(active.any())
        if drawn and (not more or len(drawn) == chunk):  # chunk 0: only at the end
            yield from _give_out(drawn, active, stats, lines, held)
            drawn = []
        if not more:
            break
        point = pen.draw(bias)
        drawn.append((point, active.copy()))
        phis.append(phi)
        pen.advance(point)

    phi = np.stack(phis, 1) if phis else np.zeros((len(full), 0, ids.size(1) + 1))
    offsets = [np.concatenate(pieces) if pieces else np.zeros((0, 3), np.float32) for pieces in lines]
    start = len(prefix)  # the window over each line's own characters and the position past its end
    windows = [phi[i, : len(o), start : start + len(text) + 1] for i, (o, text) in enumerate(zip(offsets, texts))]
    yield Handwriting(list(texts), offsets, by_rule.tolist(), windows)


def _give_out(drawn: list, active: np.ndarray, stats: StrokeStats, lines: list, held: list) -> Iterator[Chunk]:
    """The points of ``drawn`` (steps of ``(points (B, 3), alive (B,))``) in data units, appended to ``lines``
    and yielded per line, each line's last point held back while it is ``active`` (write_stream)."""
    points = np.stack([p for p, _ in drawn], 1).astype(np.float64)
    alive = np.stack([a for _, a in drawn], 1).sum(1).tolist()
    writing = active.tolist()
    for i, n in enumerate(alive):
        new = stats.denormalise(points[i, :n]).astype(np.float32)
        pending = new if held[i] is None else np.concatenate([held[i], new])
        if writing[i]:
            pending, held[i] = pending[:-1], pending[-1:]
        else:
            held[i] = None
            if len(pending):
                pending[-1, 2] = 1.0  # the pen leaves the paper at the end of a line
        if len(pending):
            lines[i].append(pending)
            yield Chunk(i, pending)


def layout_page(lines: list[np.ndarray], spacing: float = LINE_SPACING) -> tuple[np.ndarray, float]:
    """Lines of offsets -> one drawing of offsets ``(N, 3)``, the lines one under the other and left-aligned,
    and the tallest line's height (the page's writing size for draw.save_strokes)."""
    placed, heights = [], []
    for offsets in lines:
        points = offsets_to_points(offsets) if len(offsets) else np.zeros((0, 3))
        if len(points):
            points[:, 0] -= points[:, 0].min()
            points[:, 1] -= np.median(points[:, 1])  # the middle of the writing on y = 0
            heights.append(float(np.ptp(points[:, 1])))
        placed.append(points)
    height = max(heights, default=0.0) or 1.0
    page = [points - [0.0, n * spacing * height, 0.0] for n, points in enumerate(placed) if len(points)]
    if not page:
        raise UserError("the model drew no point for any line; try another --seed or a smaller --bias")
    return absolute_to_offsets(np.concatenate(page)), height
