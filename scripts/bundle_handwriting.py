"""Copy a trained synthesis run into the package as ``builtin:handwriting``, with fp16 weights and styles.

    python scripts/bundle_handwriting.py RUN [--styles 4] [--seed 0]

Writes ``rnnlab/pretrained/handwriting/``: ``config.json`` (the data's file name instead of its path) and
``vocab.json`` as in the run, the weights as
float16 safetensors (float32 on load), ``styles.json`` and ``TERMS.md``. The styles are lines the model wrote
itself (fixed texts, seeds and bias), not IAM-OnDB strokes: the data's terms forbid shipping the data.
"""

import argparse
import os

import torch

import rnnlab
from rnnlab import checkpoint, folder

STYLE_TEXTS = ("a quiet evening", "the early train", "more letters", "by hand")  # short: a primer, not a page
STYLE_BIAS = 1.0  # neat enough that the primer is legible, loose enough that the hands differ
TERMS = """# The bundled handwriting model: terms

`model.safetensors` was trained by rnnlab on the IAM On-Line Handwriting Database (IAM-OnDB, Liwicki and Bunke,
ICDAR 2005), which its owners license for **non-commercial research use only**. The weights are derived from that
data: use them on the same terms. No IAM-OnDB strokes or transcriptions ship with rnnlab; `styles.json` holds
lines written by this model itself.

Training run, command and figures: README, "Handwriting" ({summary}).
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--styles", type=int, default=len(STYLE_TEXTS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    run = rnnlab.load(args.run)
    if run.task.generates != "handwriting":
        raise SystemExit(f"{args.run} holds a {run.task.name} run; the bundled model is a synthesis run")
    bundle = folder.RunFolder("builtin:handwriting")
    header = run.folder.read_header()
    # The training data's path is a path on the machine that trained it: ship only the file's name.
    header["config"]["data"] = os.path.basename(header["config"]["data"])
    weights, _ = checkpoint.read_weights(run.folder.weights_path)
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    meta = {**run.metadata, "source_run": os.path.basename(os.path.abspath(args.run)), "dtype": "float16"}
    styles = []
    generator = torch.Generator().manual_seed(args.seed)
    for text in STYLE_TEXTS[: args.styles]:
        written = run.write(text, bias=STYLE_BIAS, seed=generator)
        styles.append({"text": text, "offsets": [[round(float(v), 2) for v in row] for row in written.lines[0]]})
    summary = ", ".join(f"{k} {v}" for k, v in sorted(meta.items()))
    bundle.write_bundle(header, run.vocab, half, meta, styles, TERMS.format(summary=summary))
    print(f"bundled {args.run} (step {meta.get('step')}) into {bundle.path}: "
          f"{os.path.getsize(bundle.weights_path) / 2**20:.2f} MB of weights, {len(styles)} styles")


if __name__ == "__main__":
    main()
