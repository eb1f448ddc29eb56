"""Pictures: loss curves and confusion matrices from ``metrics.jsonl``, gradient-norm curves. The only
module that imports matplotlib (lazily)."""

import json
import os

from .checkpoint import METRICS, atomic_write
from .errors import UserError


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        raise UserError(f"{run_dir} has no {METRICS}: train a run there first")
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed process; the rest is still good
    return records


def image_format(out_path: str) -> str:
    """The format matplotlib should write for ``out_path``: "png", "svg" or "pdf", from its extension."""
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"-o {out_path}: the plot is written as .png, .svg or .pdf; pick one of those extensions")
    return fmt


def plot_curves(run_dir: str, out_path: str) -> None:
    """Training and validation loss against the step, saved to ``out_path`` (PNG, SVG or PDF by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    fmt = image_format(out_path)
    valid = [r for r in records if r.get("split") == "valid"]
    confusion = valid[-1].get("confusion") if valid else None
    if confusion:
        fig, (ax, cax) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=120, gridspec_kw={"width_ratios": [1.4, 1]})
        _confusion(cax, confusion, _class_names(run_dir, len(confusion)), valid[-1]["step"])
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for split, style in (("train", dict(lw=1, alpha=0.7)), ("valid", dict(lw=2, marker="o", ms=3))):
        points = [(r["step"], r["loss"]) for r in records if r.get("split") == split]
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=split, **style)
    if not ax.lines:
        plt.close(fig)
        raise UserError(f"{run_dir}/{METRICS} holds no loss records yet")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token; MSE for numbers)")
    ax.set_title(os.path.basename(os.path.abspath(run_dir)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))
    plt.close(fig)


def _class_names(run_dir: str, count: int) -> list:
    from .checkpoint import read_vocab

    labels = read_vocab(run_dir).labels
    return labels if len(labels) == count else [str(i) for i in range(count)]


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmt = image_format(out_path)
    steps = range(1, result["length"] + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
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
    plt.close(fig)
