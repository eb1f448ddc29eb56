"""Pictures: loss curves and confusion matrices from a run's metrics, gradient-norm curves, window weights,
and pen strokes as SVG or PNG. The only module that imports matplotlib (lazily), and only its object API:
a ``Figure`` on its own Agg canvas, so drawing never touches pyplot's state or the user's backend (a
notebook's inline plots keep working). Strokes need no axes: their SVG is written as text and their PNG
drawn with Pillow, so ``rnnlab write`` never loads matplotlib."""

import math
import os

from .errors import UserError
from .files import atomic_write, write_text


def _figure(**kwargs):
    """A matplotlib ``Figure`` (``figsize``, ``dpi``) with an Agg canvas of its own: no pyplot, no backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_output(out_path: str, flag: str = "-o") -> None:
    """Fail before any work when ``out_path`` cannot be written as a file (``atomic_write`` then writes it)."""
    if os.path.isdir(out_path):
        raise UserError(f"{flag} {out_path} is a folder; give a file name inside it or elsewhere")
    folder = os.path.dirname(out_path) or "."
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {out_path}: folder {folder} does not exist; create it or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{flag} {out_path}: folder {folder} is not writable; write elsewhere")


def image_format(out_path: str, flag: str = "-o") -> str:
    """The format matplotlib should write for ``out_path``: "png", "svg" or "pdf", from its extension; the
    path is checked to be writable too (``flag`` names the option in errors)."""
    check_output(out_path, flag)
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"{flag} {out_path}: the plot is written as .png, .svg or .pdf; pick one of those extensions")
    return fmt


def plot_curves(records: list[dict], out_path: str, title: str, unit: str, class_names: list | None = None) -> None:
    """Training and validation loss (in ``unit``) against the step, from a run's metrics ``records``, saved to
    ``out_path`` (PNG, SVG or PDF by extension); beside it the last confusion matrix, when the records hold
    one (its classes named by ``class_names``)."""
    fmt = image_format(out_path)
    valid = [r for r in records if r.get("split") == "valid"]
    confusion = valid[-1].get("confusion") if valid else None
    if _is_square_table(confusion):
        fig = _figure(figsize=(12, 4.6), dpi=120)
        ax, cax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
        names = class_names if class_names and len(class_names) == len(confusion) else \
            [str(i) for i in range(len(confusion))]
        _confusion(cax, confusion, names, valid[-1]["step"])
    else:
        fig = _figure(figsize=(7, 4.2), dpi=120)
        ax = fig.subplots()
    for split, style in (("train", dict(lw=1, alpha=0.7)), ("valid", dict(lw=2, marker="o", ms=3))):
        points = [(r["step"], r["loss"]) for r in records
                  if r.get("split") == split and isinstance(r.get("loss"), (int, float))]
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=split, **style)
    if not ax.lines:
        raise UserError(f"the metrics of {title} hold no loss records yet")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({unit})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))


def _is_square_table(rows) -> bool:
    return (isinstance(rows, list) and len(rows) > 0 and all(isinstance(r, list) and len(r) == len(rows) for r in rows)
            and all(isinstance(c, (int, float)) for r in rows for c in r))


def _confusion(ax, confusion: list, names: list, step: int) -> None:
    """Rows: true class; columns: predicted; each cell's count, shaded by its share of the row."""
    import numpy as np

    counts = np.array(confusion)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, validation at step {step}")
    if len(names) <= 20:  # beyond that the numbers no longer fit in the cells
        for i in ticks:
            for j in ticks:
                ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")


def plot_gradient_norms(result: dict, out_path: str) -> None:
    """``||dL/dh_t|| / ||dL/dh_T||`` against ``t`` (log scale), untrained and trained, from ``gradients.measure``.

    Saved to ``out_path`` (PNG, SVG or PDF by extension).
    """
    fmt = image_format(out_path)
    steps = range(1, result["length"] + 1)
    fig = _figure(figsize=(7, 4.2), dpi=120)
    ax = fig.subplots()
    # Each curve is divided by its value at t = T: training drives the loss, and with it every dL/dh_t,
    # towards 0, which would push the trained curve down for a reason that has nothing to do with vanishing.
    # Scaled, both start at 1 on the right and the left end reads off the ratio. Log scale: geometric
    # vanishing is a straight line; a norm that underflowed to 0 (thousands of steps) is left out.
    for key, style in (("untrained", dict(lw=2, alpha=0.8)), ("trained", dict(lw=2))):
        norms = result[key]
        label = f"{key}: ||dL/dh_1|| / ||dL/dh_T|| = {result[key + '_ratio']:.1e}"
        if key == "trained":
            label += f" after {result['steps']} steps, recall accuracy {result['accuracy']:.0%}"
        ax.plot(steps, [n / norms[-1] for n in norms], label=label, **style)
    ax.set_yscale("log")
    ax.set_xlim(1, max(result["length"], 2))
    ax.set_xlabel("t (the loss is at the last step, t = T)")
    ax.set_ylabel("mean ||dL/dh_t||, relative to t = T")
    verdict = "learned" if result["learned"] else "did not learn"
    ax.set_title(f"{result['cell'].upper()}, T = {result['length']}: the trained cell {verdict} "
                 f"to recall the sign from t = 1", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))


# Handwriting: pen strokes in the (dx, dy, end_of_stroke) offset format of rnnlab.data.hershey and the
# IAM-OnDB reader, drawn as SVG (pure Python) or PNG (matplotlib).
#
# Sizes follow the "writing size": the drawing's height, because a line of handwriting grows in width
# with its length but not in height. A flat drawing (a dash) uses width / FLAT_ASPECT instead, so the
# pen and the margin never shrink to nothing.
FLAT_ASPECT = 20             # a line of handwriting is up to ~20 times wider than tall
STROKE_WIDTH_FRACTION = 0.03  # pen width / writing size: a ballpoint on ~2 cm tall writing (a choice)
MARGIN_FRACTION = 0.1        # blank border on every side / writing size; keeps round pen caps inside
WRITING_PX = 100             # pixels per writing size in the SVG's width/height and the PNG
SUPERSAMPLE = 4              # the PNG is drawn 4x larger and averaged down: 16 levels of anti-aliasing


def stroke_image_format(out_path: str) -> str:
    """``"svg"`` or ``"png"`` from the extension of ``out_path``, which is checked to be writable; anything
    else is a UserError."""
    check_output(out_path)
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png"):
        raise UserError(f"-o {out_path}: strokes are written as .svg or .png (received "
                        f"{'.' + fmt if fmt else 'no extension'}); pick one of those extensions")
    return fmt


def handwriting_format(out_path: str) -> str:
    """What ``rnnlab write -o`` saves: a drawing (:func:`stroke_image_format`) or the strokes themselves
    (``json``, ``npy``: ``Handwriting.save``), from the extension of ``out_path``, checked to be writable."""
    check_output(out_path)
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt in ("json", "npy"):
        return fmt
    if fmt not in ("svg", "png"):
        raise UserError(f"-o {out_path}: handwriting is saved as .svg or .png (a drawing), or .json or .npy (its "
                        f"strokes) (received {'.' + fmt if fmt else 'no extension'}); pick one of those extensions")
    return stroke_image_format(out_path)


def strokes_to_svg(offsets, stroke_width: float | None = None, color: str = "black",
                   writing_size: float | None = None) -> str:
    """An SVG document drawing ``offsets`` (``(N, 3)`` rows ``(dx, dy, end_of_stroke)``, y up).

    One ``<path>`` per stroke (a stroke ends on a row with end_of_stroke = 1), so the pen lifts between
    them; y is negated for SVG's downward axis; the viewBox is the tight bounding box plus a margin, and
    the pen width is ``stroke_width`` data units, by default ``STROKE_WIDTH_FRACTION`` of the writing size:
    the drawing's height, or ``writing_size`` (data units) for a page of several lines (one line's height).
    """
    strokes, (x0, y0, x1, y1), width, size = _stroke_layout(offsets, stroke_width, writing_size)
    digits = max(0, 3 - math.floor(math.log10(max(x1 - x0, y1 - y0))))  # ~1/1000 of the drawing: below a pixel

    def pair(x, y):
        return f"{x:.{digits}f} {-y:.{digits}f}"

    paths = []
    for stroke in strokes:
        if len(stroke) == 1:  # a dot: a zero-length segment, which round caps draw as a disc
            stroke = stroke[[0, 0]]
        d = "M " + " L ".join(pair(x, y) for x, y in stroke)
        paths.append(f'  <path d="{d}"/>')
    scale = WRITING_PX / size
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{pair(x0, y1)} {x1 - x0:.{digits}f} '
            f'{y1 - y0:.{digits}f}" width="{(x1 - x0) * scale:.0f}" height="{(y1 - y0) * scale:.0f}">\n'
            f' <g fill="none" stroke="{color}" stroke-width="{width:.{digits + 1}f}" '
            f'stroke-linecap="round" stroke-linejoin="round">\n' + "\n".join(paths) + "\n </g>\n</svg>\n")


def save_strokes(offsets, out_path: str, stroke_width: float | None = None, color: str = "black",
                 writing_size: float | None = None) -> None:
    """Draw ``offsets`` (``(N, 3)``, see ``strokes_to_svg``) to ``out_path``: .svg or .png by extension.

    The PNG has equal aspect, no axes, and the same box as the SVG (tight bounds plus margin). The file
    appears complete or not at all: an existing ``out_path`` is untouched if anything fails.
    """
    fmt = stroke_image_format(out_path)
    if fmt == "svg":
        write_text(out_path, strokes_to_svg(offsets, stroke_width, color, writing_size))
        return
    strokes, box, width, size = _stroke_layout(offsets, stroke_width, writing_size)
    image = _raster(strokes, box, width, WRITING_PX / size, color)
    atomic_write(out_path, lambda tmp: image.save(tmp, format="PNG"))


def _raster(strokes: list, box: tuple, width: float, px_per_unit: float, color: str):
    """The strokes drawn as the SVG draws them (round caps and joins, the same box and pen), as a PIL image.

    Pillow, not matplotlib: a PNG of handwriting needs no axes, and Pillow loads in a tenth of the time
    (``rnnlab write -o x.png`` is mostly start-up). Its lines have square ends and no anti-aliasing, so the
    pen is drawn SUPERSAMPLE times larger, with a disc at every point (round caps and joins), then reduced
    by averaging SUPERSAMPLE x SUPERSAMPLE blocks: anti-aliased edges.
    """
    import numpy as np
    from PIL import Image, ImageColor, ImageDraw

    try:
        rgb = ImageColor.getrgb(color)
    except ValueError:
        raise UserError(f"color {color!r} is not a colour: give a name (black, navy) or #rrggbb") from None
    x0, y0, x1, y1 = box
    scale = px_per_unit * SUPERSAMPLE
    size = (max(1, round((x1 - x0) * px_per_unit)), max(1, round((y1 - y0) * px_per_unit)))
    image = Image.new("RGB", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), "white")
    draw = ImageDraw.Draw(image)
    pen = width * scale
    r = pen / 2
    for stroke in strokes:
        xy = np.column_stack([(stroke[:, 0] - x0) * scale, (y1 - stroke[:, 1]) * scale]).tolist()
        if len(xy) > 1:
            draw.line([tuple(p) for p in xy], fill=rgb, width=max(1, round(pen)))
        for x, y in xy:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=rgb)
    return image.reduce(SUPERSAMPLE)


def _writing_size(width: float, height: float) -> float:
    return max(height, width / FLAT_ASPECT)


def _stroke_layout(offsets, stroke_width: float | None, writing_size: float | None = None) -> tuple[list, tuple, float, float]:
    """Validated ``offsets`` -> (strokes as absolute ``(n, 2)`` arrays, box ``(x0, y0, x1, y1)``, pen width,
    writing size)."""
    import numpy as np

    from .data.strokes import offsets_to_points

    if hasattr(offsets, "detach"):  # a torch tensor, possibly on a GPU or with a graph
        offsets = offsets.detach().cpu().numpy()
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.ndim != 2 or offsets.shape[1] != 3 or len(offsets) == 0:
        raise UserError(f"strokes must be (N, 3) offsets (dx, dy, end_of_stroke) with N >= 1, received shape "
                        f"{tuple(offsets.shape)}: pass one line, e.g. batch[i, :length]")
    bad = ~np.isfinite(offsets).all(axis=1)
    if bad.any():
        raise UserError(f"strokes hold {bad.sum()} rows with NaN or Inf (first: row {np.flatnonzero(bad)[0]}); "
                        f"nothing was drawn: check the sampler or the data that produced them")
    points = offsets_to_points(offsets)
    ends = np.flatnonzero(points[:, 2] > 0.5) + 1  # a stroke ends on its end_of_stroke row
    strokes = [s[:, :2] for s in np.split(points, ends) if len(s)]
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    size = _writing_size(*(hi - lo)) if writing_size is None else writing_size
    size = size if size > 0 else 1.0  # every point in one place: any box will do
    width = STROKE_WIDTH_FRACTION * size if stroke_width is None else stroke_width
    if not width > 0:
        raise UserError(f"stroke_width must be > 0, received {stroke_width}")
    margin = MARGIN_FRACTION * size
    return strokes, (lo[0] - margin, lo[1] - margin, hi[0] + margin, hi[1] + margin), float(width), float(size)


def plot_alignment(source: list, target: list, weights, out_path: str) -> None:
    """A translation's attention weights ``(T, S)``: target tokens down, source tokens across (Bahdanau et
    al. 2015's figure 3), darker where the decoder looked."""
    fmt = image_format(out_path)
    fig = _figure(dpi=100, figsize=(1.5 + 0.32 * len(source), 1.2 + 0.3 * len(target)))
    ax = fig.subplots()
    ax.imshow(weights, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), source, rotation=90, fontsize=8)
    ax.set_yticks(range(len(target)), target, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))


def plot_accuracy_by_length(curves: dict, out_path: str, title: str = "") -> None:
    """Sequence accuracy against source length, one line per entry of ``curves`` (``{label: {length:
    accuracy}}``): where a fixed vector falls off and attention does not (Bahdanau et al. 2015, figure 2)."""
    fmt = image_format(out_path)
    fig = _figure(dpi=100, figsize=(6, 3.6))
    ax = fig.subplots()
    for label, points in curves.items():
        lengths = sorted(points, key=int)
        ax.plot([int(n) for n in lengths], [100 * points[n] for n in lengths], marker="o", markersize=3, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("source length (tokens)")
    ax.set_ylabel("sequence accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))


def plot_attention(written, out_path: str) -> None:
    """The window weights of each written line (a ``writing.Handwriting``): characters down, pen points
    across, with the position past the last character as the bottom row, whose rise ends the line (Graves'
    rule). Each column is divided by its largest value, so the peak shows at every point whatever alpha's scale."""
    import numpy as np

    fmt = image_format(out_path)
    heights = [len(text) + 1 for text in written.texts]
    fig = _figure(dpi=100, figsize=(10, 0.5 + 0.16 * sum(heights) + 0.6 * len(heights)))
    axes = fig.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, text, phi, stopped in zip(axes[:, 0], written.texts, written.attention, written.stopped):
        peak = phi.max(axis=1, keepdims=True)
        ax.imshow((phi / np.where(peak > 0, peak, 1.0)).T, aspect="auto", interpolation="nearest", cmap="Greys",
                  origin="upper", vmin=0.0, vmax=1.0)
        ax.set_yticks(range(len(text) + 1), [repr(c)[1:-1] if c != " " else "␣" for c in text] + ["end"],
                      fontsize=7, family="monospace")
        how = "stopped by Graves' rule" if stopped else "cut at the cap of points"
        ax.set_title(f"{text!r}: {len(phi)} points, {how}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("pen point (time)")
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))
