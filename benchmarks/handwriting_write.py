"""How fast ``rnnlab write`` samples: the bundled model (or --model RUN) writing fixed texts, on one CPU thread.

    python benchmarks/handwriting_write.py [--model builtin:handwriting] [--repeats 3] [--device cpu]

Times ``Run.write``'s sampling (``writing.write_lines``) alone (no import, loading or drawing: those are the same for every model) for
one line, "Hello world, from rnnlab", and for the ten phrases of ``docs/phrases.txt`` as one batch, at bias
1.5 and seed 1 as the README's pictures. Reports the median seconds of ``--repeats`` runs after one warm-up,
the points drawn (the longest line: sampling is one batched step per point) and steps per second, and one
JSON line.

Beside each, the floor it is measured against: a bare loop of ``torch.lstm_cell`` calls on the model's own
LSTM weights, one per layer and step, at the same batch and for the same number of steps, with inputs
already in place: the recurrent arithmetic that any sampler must do, with nothing of the window, the
mixture, the stop rule or the bookkeeping. ``ratio`` is the median over the repeats of write_lines' time over
the bare loop's, the two timed in turn.
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


def bare_loop(model, batch: int, steps: int) -> float:
    """Seconds for ``steps`` steps of one ``torch.lstm_cell`` per layer of ``model`` at ``batch``, nothing else."""
    layers = [(model.first.weight_ih, model.first.weight_hh, model.first.bias_ih, model.first.bias_hh)]
    layers += [tuple(layer.rnn._flat_weights) for layer in model.upper]
    inputs = [torch.zeros(batch, w[0].size(1)) for w in layers]
    states = [(torch.zeros(batch, w[1].size(1)), torch.zeros(batch, w[1].size(1))) for w in layers]
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(steps):
            states = [torch.lstm_cell(x, state, *w) for x, state, w in zip(inputs, states, layers)]
        return time.perf_counter() - start


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
        times, bares, ratios = [], [], []
        for i in range(1 + args.repeats):  # write and the bare loop in turn: a pair sees the same machine
            generator = torch.Generator(args.device).manual_seed(1)
            start = time.perf_counter()
            written = write_lines(run.model, run.vocab, texts, 1.5, generator, run.config.stats, run.config.chars_per_point)
            seconds = time.perf_counter() - start
            steps = max(len(line) for line in written.lines)
            bare = bare_loop(run.model, len(texts), steps)
            if i:
                times.append(seconds)
                bares.append(bare)
                ratios.append(seconds / bare)
        seconds = statistics.median(times)
        results.append({"texts": name, "lines": len(texts), "steps": steps, "seconds": seconds,
                        "steps_per_s": steps / seconds, "bare_seconds": statistics.median(bares),
                        "ratio": statistics.median(ratios)})
    name = platform.processor() or platform.machine()
    print(f"rnnlab write with {args.model} on {args.device} ({name}), torch {torch.__version__}, 1 thread")
    print(f"{'texts':<14}{'lines':>6}{'steps':>7}{'seconds':>9}{'steps/s':>9}{'bare loop s':>12}{'ratio':>7}")
    for r in results:
        print(f"{r['texts']:<14}{r['lines']:>6}{r['steps']:>7}{r['seconds']:>9.3f}{r['steps_per_s']:>9.0f}"
              f"{r['bare_seconds']:>12.3f}{r['ratio']:>7.2f}")
    print(json.dumps({"benchmark": "handwriting_write", "model": args.model, "device": args.device,
                      "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
