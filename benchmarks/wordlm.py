"""Word-LM training throughput and peak memory per preset, beside a bare ``nn.LSTM`` loop of the same shape.

    python benchmarks/wordlm.py [--device cpu|cuda] [--steps 200] [--presets zaremba-small,...] [--data ptb]

Each preset runs in a fresh subprocess (so peak memory is its own): ``--steps`` timed steps of the real
``train_step`` on PTB batches after 5 warm-up steps, then the same number of steps of the baseline, a
hand-written loop of embedding -> ``nn.LSTM`` (cuDNN on GPU) -> linear -> cross-entropy -> clip -> SGD with
the preset's sizes: the practical ceiling. Prints a table, then one JSON line.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.config import override
from rnnlab.optim import build_optimizer
from rnnlab.tasks import wordlm
from rnnlab.loop import to_device, train_step

WARMUP = 5


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(device, steps, run_step) -> float:
    for i in range(WARMUP):
        run_step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(WARMUP, WARMUP + steps):
        run_step(i)
    _sync(device)
    return time.perf_counter() - start


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (whole process)


def bench_one(preset: str, data: str, device: torch.device, steps: int) -> dict:
    config = override(wordlm.PRESETS[preset].config, {"data": data, "device": str(device)}, "benchmark")
    torch.manual_seed(0)
    task = wordlm.WordLM(config)
    task.to(device)  # as train() does: the token stream lives on the device
    model = wordlm.WordLM.build_model(config, task.vocab).to(device)
    params = list(model.parameters())
    optimizer = build_optimizer(params, config)
    state = {"carry": None}

    def rnnlab_step(i):
        batch, reset = task.train_batch(i)
        _, state["carry"], *_ = train_step(model, task, to_device(batch, device), None if reset else state["carry"],
                                          optimizer, params, config)

    seconds = _timed(device, steps, rnnlab_step)
    peak = _peak_mb(device)
    tokens = steps * config.batch_size * config.seq_len
    del model, optimizer, state
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    # The baseline: the same sizes, written the shortest way.
    V, H = len(task.vocab), config.hidden_size
    emb, lstm, dec = nn.Embedding(V, H).to(device), nn.LSTM(H, H, config.num_layers, batch_first=True,
                                                            dropout=config.dropout).to(device), nn.Linear(H, V).to(device)
    base_params = [*emb.parameters(), *lstm.parameters(), *dec.parameters()]
    sgd = torch.optim.SGD(base_params, lr=config.lr)
    carry = {"h": None}

    def baseline_step(i):
        x, y = to_device(task.train_batch(i)[0], device)
        out, h = lstm(F.dropout(emb(x), config.dropout), carry["h"])
        loss = F.cross_entropy(dec(F.dropout(out, config.dropout)).reshape(-1, V), y.reshape(-1))
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(base_params, config.clip)
        sgd.step()
        carry["h"] = tuple(t.detach() for t in h)

    base_seconds = _timed(device, steps, baseline_step)
    return {"preset": preset, "device": str(device), "params": sum(p.numel() for p in params),
            "batch_size": config.batch_size, "seq_len": config.seq_len, "steps": steps,
            "tokens_per_s": tokens / seconds, "peak_mb": peak, "baseline_tokens_per_s": tokens / base_seconds,
            "ratio_to_baseline": (tokens / seconds) / (tokens / base_seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--presets", default=",".join(wordlm.PRESETS))
    p.add_argument("--data", default="ptb", help="PTB folder or dataset name (default: the cache, downloaded if need be)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode: one preset, JSON out
    args = p.parse_args()
    if args.one:
        print(json.dumps(bench_one(args.presets, args.data, torch.device(args.device), args.steps)))
        return
    rows = []
    for preset in args.presets.split(","):
        child = subprocess.run([sys.executable, __file__, "--one", "--presets", preset, "--device", args.device,
                                "--steps", str(args.steps), "--data", args.data],
                               capture_output=True, text=True, check=True, env=os.environ)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'preset':16} {'params':>11} {'B x T':>8} {'tokens/s':>10} {'peak MB':>9} {'bare nn.LSTM tok/s':>19} {'ratio':>6}")
    for r in rows:
        print(f"{r['preset']:16} {r['params']:>11,} {r['batch_size']:>3} x {r['seq_len']:<3} {r['tokens_per_s']:>10,.0f} "
              f"{r['peak_mb']:>9,.0f} {r['baseline_tokens_per_s']:>19,.0f} {r['ratio_to_baseline']:>6.2f}")
    machine = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(),
               "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    print(json.dumps({"benchmark": "wordlm", "machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
