"""DRAFT, to be pasted into ``draw.py`` (the only matplotlib importer) and then deleted.

The two functions below go into ``draw.py`` as they are; ``os``, ``atomic_write`` and ``UserError`` are
already imported there. ``image_format`` can also replace the extension check inside ``plot_curves``.
"""

import os

from .checkpoint import atomic_write
from .errors import UserError


def image_format(out_path: str) -> str:
    """The format matplotlib should write for ``out_path``: "png", "svg" or "pdf", from its extension."""
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"-o {out_path}: the plot is written as .png, .svg or .pdf; pick one of those extensions")
    return fmt


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
