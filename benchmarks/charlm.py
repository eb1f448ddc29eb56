"""Char-LM throughput per preset: training tokens/s (the real train_step) and sampling chars/s at batch 1.

    python benchmarks/charlm.py [--device cpu|cuda] [--steps 30] [--sample-chars 2000] [--repeats 5] [--presets a,b]

Sampling runs with one CPU thread, as ``rnnlab sample`` does on the CPU.

Prints a table, then one JSON line with every figure. Results and the machine go in benchmarks/results.md.
"""

import argparse
import json
import platform
import statistics
import time

import torch

from rnnlab.data.text import read_text
from rnnlab.optim import build_optimizer
from rnnlab.sampling import generate
from rnnlab.tasks import charlm
from rnnlab.tasks.lm import default_prime
from rnnlab.loop import to_device, train_step


def bench_preset(name: str, text: str, device: torch.device, steps: int, sample_chars: int, repeats: int) -> dict:
    config = charlm.PRESETS[name].config
    torch.manual_seed(0)
    task = charlm.CharLM(config, text=text)
    task.to(device)  # as train() does: the token stream lives on the device
    model = charlm.CharLM.build_model(config, task.vocab).to(device)
    params = list(model.parameters())
    optimizer = build_optimizer(params, config)
    carry, warmup = None, 3

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for step in range(warmup + steps):
        if step == warmup:
            sync()
            start = time.perf_counter()
        batch, _ = task.train_batch(step)
        _, carry, _ = train_step(model, task, to_device(batch, device), carry, optimizer, params, config)
    sync()
    train_seconds = time.perf_counter() - start
    tokens = steps * config.batch_size * config.seq_len

    prime = default_prime(task.vocab)
    generator = torch.Generator(device).manual_seed(0)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # as `rnnlab sample` does on the CPU
    list(generate(model, prime, 50, generator=generator))  # warm-up
    rates = []
    for _ in range(repeats):  # batch-1 latency on a shared 2-core VM varies by up to 2x: report the median
        start = time.perf_counter()
        n = sum(1 for _ in generate(model, prime, sample_chars, generator=generator))
        rates.append(n / (time.perf_counter() - start))
    torch.set_num_threads(threads)
    return {
        "preset": name, "params": sum(p.numel() for p in params), "batch_size": config.batch_size,
        "seq_len": config.seq_len, "train_tokens_per_s": tokens / train_seconds,
        "step_ms": 1000 * train_seconds / steps, "sample_chars_per_s": statistics.median(rates),
        "sample_chars_per_s_min": min(rates), "sample_chars_per_s_max": max(rates),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--sample-chars", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5, help="sampling runs per preset; the median is reported")
    p.add_argument("--presets", default=",".join(charlm.PRESETS))
    args = p.parse_args()
    device = torch.device(args.device)
    text = read_text("builtin:tinyshakespeare")
    rows = [bench_preset(name, text, device, args.steps, args.sample_chars, args.repeats) for name in args.presets.split(",")]
    print(f"{'preset':18} {'params':>10} {'B x T':>9} {'train tok/s':>12} {'step ms':>9} {'sample chars/s (min-max)':>26}")
    for r in rows:
        print(f"{r['preset']:18} {r['params']:>10,} {r['batch_size']:>4} x {r['seq_len']:<3} "
              f"{r['train_tokens_per_s']:>12,.0f} {r['step_ms']:>9.1f} {r['sample_chars_per_s']:>9,.0f} "
              f"({r['sample_chars_per_s_min']:,.0f}-{r['sample_chars_per_s_max']:,.0f})")
    machine = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine()}
    print(json.dumps({"benchmark": "charlm", "machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
