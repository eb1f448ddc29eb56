"""Copy a trained run into the package: a synthesis run as ``builtin:handwriting``, a recognize run as
``builtin:recognizer``, with fp16 weights.

    python scripts/bundle.py RUN [--styles 4] [--seed 0] [--set KEY=VALUE ...]

Writes ``rnnlab/pretrained/handwriting/`` or ``rnnlab/pretrained/recognizer/``: ``config.json`` (the data's
file name instead of its path) and ``vocab.json`` as in the run, the weights as float16 safetensors (float32
on load; the recogniser's language model, integer counts, as it is), ``styles.json`` and ``TERMS.md``. The
styles of the handwriting model are lines it wrote itself (fixed texts, seeds and bias), not IAM-OnDB strokes:
the data's terms forbid shipping the data; the recogniser has none.
"""

import argparse
import os

import torch

import rnnlab
from rnnlab import checkpoint, folder
from rnnlab.config import override, parse_set

STYLE_TEXTS = ("a quiet evening", "the early train", "more letters", "by hand")  # short: a primer, not a page
STYLE_BIAS = 1.0  # neat enough that the primer is legible, loose enough that the hands differ
BUNDLES = {"handwriting": "builtin:handwriting", "recognize": "builtin:recognizer"}  # task -> bundled name
TERMS = """# The bundled {what} model: terms

`model.safetensors` was trained by rnnlab on the IAM On-Line Handwriting Database (IAM-OnDB, Liwicki and Bunke,
ICDAR 2005), which its owners license for **non-commercial research use only**. The weights are derived from that
data: use them on the same terms. No IAM-OnDB strokes or transcriptions ship with rnnlab; {holds}

Training run, command and figures: README, "{section}" ({summary}).
"""
HOLDS = {"handwriting": "`styles.json` holds lines written by this model itself.",
         "recognize": "the character n-gram in `model.safetensors` (`lm_grams`, `lm_counts`) holds counts of "
                      "the training transcriptions' character sequences, not the lines themselves."}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--styles", type=int, default=len(STYLE_TEXTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config keys the bundle uses instead of the run's (how it decodes: beam, lm_weight)")
    args = p.parse_args()
    run = rnnlab.load(args.run)
    kind = "handwriting" if run.task.generates == "handwriting" else run.task.name
    if kind not in BUNDLES:
        raise SystemExit(f"{args.run} holds a {run.task.name} run; rnnlab bundles a synthesis and a recognize run")
    bundle = folder.RunFolder(BUNDLES[kind])
    header = run.folder.read_header()
    changed = override(run.config, parse_set(args.set), "--set")
    changed.validate()
    header["config"].update({k: getattr(changed, k) for k in parse_set(args.set)})
    # The training data's path is a path on the machine that trained it: ship only the file's name.
    header["config"]["data"] = os.path.basename(header["config"]["data"])
    weights, _ = checkpoint.read_weights(run.folder.weights_path)
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    meta = {**run.metadata, "source_run": os.path.basename(os.path.abspath(args.run)), "dtype": "float16"}
    styles = []
    generator = torch.Generator().manual_seed(args.seed)
    for text in STYLE_TEXTS[: args.styles] if kind == "handwriting" else ():
        written = run.write(text, bias=STYLE_BIAS, seed=generator)
        styles.append({"text": text, "offsets": [[round(float(v), 2) for v in row] for row in written.lines[0]]})
    summary = ", ".join(f"{k} {v}" for k, v in sorted(meta.items()))
    bundle.write_bundle(header, run.vocab, half, meta, styles, TERMS.format(
        what="recognition" if kind == "recognize" else kind, holds=HOLDS[kind], section="Handwriting" if kind == "handwriting" else "Reading handwriting",
        summary=summary))
    print(f"bundled {args.run} (step {meta.get('step')}) into {bundle.path}: "
          f"{os.path.getsize(bundle.weights_path) / 2**20:.2f} MB of weights, {len(styles)} styles")


if __name__ == "__main__":
    main()
