"""Pictures: loss curves from ``metrics.jsonl``. The only module that imports matplotlib (lazily)."""

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


def plot_curves(run_dir: str, out_path: str) -> None:
    """Training and validation loss against the step, saved to ``out_path`` (PNG, SVG or PDF by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"-o {out_path}: the plot is written as .png, .svg or .pdf; pick one of those extensions")
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
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(os.path.basename(os.path.abspath(run_dir)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format=fmt))
    plt.close(fig)
