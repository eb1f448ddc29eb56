"""How fast ``rnnlab write`` samples: the bundled model (or --model RUN) writing fixed texts, on one CPU thread.

    python benchmarks/handwriting_write.py [--model builtin:handwriting] [--repeats 3] [--device cpu]

Times ``Run.write``'s sampling (``writing.write_lines``) alone (no import, loading or drawing: those are the same for every model) for
one line, "Hello world, from rnnlab", and for the ten phrases of ``docs/phrases.txt`` as one batch, at bias
1.5 and seed 1 as the README's pictures. Reports the median seconds of ``--repeats`` runs after one warm-up,
the points drawn (the longest line: sampling is one batched step per point) and steps per second, and one
JSON line.
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch

import rnnlab
from rnnlab.writing import split_lines, write_lines

PHRASES = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "phrases.txt")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="builtin:handwriting")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(1)  # as `rnnlab write` does on the CPU
    run = rnnlab.load(args.model, device=args.device)
    with open(PHRASES, encoding="utf-8") as f:
        phrases = split_lines(f.read())
    results = []
    for name, texts in (("one line", ["Hello world, from rnnlab"]), ("ten phrases", phrases)):
        times = []
        for i in range(1 + args.repeats):
            generator = torch.Generator(args.device).manual_seed(1)
            start = time.perf_counter()
            written = write_lines(run.model, run.vocab, texts, 1.5, generator, run.config.stats, run.config.chars_per_point)
            if i:
                times.append(time.perf_counter() - start)
        steps = max(len(line) for line in written.lines)
        seconds = statistics.median(times)
        results.append({"texts": name, "lines": len(texts), "steps": steps, "seconds": seconds,
                        "steps_per_s": steps / seconds})
    name = platform.processor() or platform.machine()
    print(f"rnnlab write with {args.model} on {args.device} ({name}), torch {torch.__version__}, 1 thread")
    print(f"{'texts':<14}{'lines':>6}{'steps':>7}{'seconds':>9}{'steps/s':>9}")
    for r in results:
        print(f"{r['texts']:<14}{r['lines']:>6}{r['steps']:>7}{r['seconds']:>9.2f}{r['steps_per_s']:>9.0f}")
    print(json.dumps({"benchmark": "handwriting_write", "model": args.model, "device": args.device,
                      "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
