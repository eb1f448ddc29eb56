"""One training step of Graves' synthesis network: rnnlab's model against two baselines, in one run.

    python benchmarks/handwriting_step.py [--device cpu|cuda] [--repeats 5] [--batch 32] [--points 300] [--hidden 400]

Forward + backward of the summed mixture NLL, batch 32, 300 points, 3 x 400 LSTM (``--hidden 128``: the
bundled model's width), K = 10 window Gaussians,
M = 20 mixtures, a 30-character text over the 78-character IAM-OnDB alphabet (rnnlab.data.strokes):

- ``rnnlab``: ``HandwritingSynthesizer``, layer 1 + window in a step loop, layers 2-3 over the whole sequence;
- ``(a) eager per-step``: the same network and weights with every layer advanced one step at a time
  (``rnnlab.reference.synthesis_steps``, how §5 reads and most implementations run it);
- ``(b) nn.LSTM stack``: a plain 3 x 400 ``nn.LSTM`` (cuDNN on GPU) and a linear mixture head, no window:
  the practical ceiling;
- ``(c) prediction network``: Graves' prediction network of the same widths (``HandwritingPredictor``: the
  same skip connections into every layer and the head, no window): what the window itself costs.

The four run in turn, one step each a round, ``--repeats`` rounds after 2 warm-up rounds (this VM's speed
drifts within a minute); reports each one's median milliseconds, the medians of the rounds' ratios, each
network's matmul work per point (``matmul_work``: the floor of those ratios where the matmuls bound the
step, as on a CPU), and one JSON line.
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from rnnlab.mixture import output_size, sequence_nll, split_params
from rnnlab.models import HandwritingPredictor, HandwritingSynthesizer
from rnnlab.reference.synthesis_steps import synthesis_forward
from rnnlab.data.strokes import ALPHABET

WARMUP = 2
LAYERS, GAUSSIANS, MIXTURES, TEXT_LENGTH = 3, 10, 20, 30  # Graves 2013 §5; a typical IAM line


def _round_robin_ms(device, repeats: int, steps: dict) -> dict:
    """Milliseconds per step of each of ``steps`` (name -> step), run in turn ``repeats`` times after
    ``WARMUP`` rounds, so that each round sees the same machine: name -> the rounds' times."""
    times = {name: [] for name in steps}
    for i in range(WARMUP + repeats):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= WARMUP:
                times[name].append(1000 * (time.perf_counter() - start))
    return times


def matmul_work(hidden: int, letters: int = len(ALPHABET)) -> dict:
    """Multiply-adds of each network's matrix products per point of a line, forward (backward does twice as
    many, for every one of them alike), from the shapes alone: where a step is bound by its matmuls, as these
    are on a CPU at batch 32, the ratio of two networks' work is the floor of the ratio of their times."""
    def lstm(inputs):
        return 4 * hidden * (inputs + hidden)

    head = output_size(MIXTURES)
    window = hidden * 3 * GAUSSIANS + (TEXT_LENGTH + 1) * letters  # the window's parameters, w = phi . onehot
    return {"rnnlab": lstm(3 + letters) + (LAYERS - 1) * lstm(3 + letters + hidden) + LAYERS * hidden * head + window,
            "lstm_stack": lstm(3) + (LAYERS - 1) * lstm(hidden) + hidden * head,
            "prediction": lstm(3) + (LAYERS - 1) * lstm(3 + hidden) + LAYERS * hidden * head}


def _ratio(times: dict, a: str, b: str) -> float:
    """The median over the rounds of ``a``'s time over ``b``'s."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--points", type=int, default=300)
    p.add_argument("--hidden", type=int, default=400, help="LSTM width (Graves: 400; the bundled model: 128)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = HandwritingSynthesizer(len(ALPHABET), args.hidden, LAYERS, MIXTURES, GAUSSIANS, chars_per_step=0.05).to(device)
    x = torch.randn(args.batch, args.points, 3, device=device)
    targets = torch.cat([torch.randn(args.batch, args.points, 2), torch.rand(args.batch, args.points, 1).round()],
                        dim=-1).to(device)
    text = torch.randint(0, len(ALPHABET), (args.batch, TEXT_LENGTH), device=device)
    lengths = torch.full((args.batch,), TEXT_LENGTH, device=device)

    def step(forward, params):
        def run():
            for q in params:
                q.grad = None
            y = forward()
            sequence_nll(split_params(y)[1], targets).mean().backward()
        return run

    stack = nn.LSTM(3, args.hidden, LAYERS, batch_first=True).to(device)
    head = nn.Linear(args.hidden, output_size(MIXTURES)).to(device)
    predictor = HandwritingPredictor(args.hidden, LAYERS, MIXTURES).to(device)
    times = _round_robin_ms(device, args.repeats, {
        "rnnlab": step(lambda: model(x, model.start(text, lengths))[0], list(model.parameters())),
        "eager_per_step": step(lambda: synthesis_forward(model, x, text, lengths)[0], list(model.parameters())),
        "lstm_stack": step(lambda: head(stack(x)[0]), list(stack.parameters()) + list(head.parameters())),
        "prediction": step(lambda: predictor(x)[0], list(predictor.parameters())),
    })
    results = {key: statistics.median(t) for key, t in times.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"synthesis step, batch {args.batch} x {args.points} points, {LAYERS} x {args.hidden}, K {GAUSSIANS}, "
          f"M {MIXTURES}, on {device.type} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'implementation':<28}{'ms / step':>12}")
    for key, label in (("rnnlab", "rnnlab"), ("eager_per_step", "(a) eager per-step"), ("lstm_stack", "(b) nn.LSTM stack"),
                       ("prediction", "(c) prediction network")):
        print(f"{label:<28}{results[key]:>12.1f}")
    speedup, gap = _ratio(times, "eager_per_step", "rnnlab"), _ratio(times, "rnnlab", "lstm_stack")
    print(f"rnnlab is {speedup:.2f}x faster than (a), {gap:.2f}x slower than (b) and "
          f"{_ratio(times, 'rnnlab', 'prediction'):.2f}x (c) (medians of the rounds' ratios)")
    work = matmul_work(args.hidden)
    print(f"matmul work per point: rnnlab {work['rnnlab'] / work['lstm_stack']:.2f}x (b)'s and "
          f"{work['rnnlab'] / work['prediction']:.2f}x (c)'s (the window's {len(ALPHABET)} letters enter every layer)")
    print(json.dumps({"device": device.type, "name": name, "batch": args.batch, "points": args.points,
                      "ms": results, "matmul_work": work, "speedup_vs_eager": speedup, "slowdown_vs_lstm_stack": gap,
                      "slowdown_vs_prediction": _ratio(times, "rnnlab", "prediction")}))


if __name__ == "__main__":
    main()
