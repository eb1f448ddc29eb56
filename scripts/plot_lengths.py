"""Sequence accuracy against source length for seq2seq runs, on each run's own validation pairs: the
README's comparison of attention with the fixed-vector baseline.

    python scripts/plot_lengths.py LABEL=RUN [LABEL=RUN ...] -o docs/reverse-by-length.png [--title T]

Prints each run's figures as one JSON line too.
"""

import argparse
import json

import rnnlab
from rnnlab.draw import plot_accuracy_by_length


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--title", default="")
    args = p.parse_args()
    curves = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        result = rnnlab.load(path).evaluate()
        curves[label] = result["accuracy_by_length"]
        print(json.dumps({"label": label, "run": path, **result}))
    plot_accuracy_by_length(curves, args.output, args.title)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
