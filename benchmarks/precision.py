"""Training tokens/s at fp32 and at bf16 (``--set precision=bf16``) for every char and word preset, in one run.

    python benchmarks/precision.py [--device cpu|cuda] [--seconds 6] [--repeats 3] [--presets a,b] [--data ptb]

Each preset builds the same model twice (same seed) and runs the real ``train_step`` on the same batches,
alternating fp32 and bf16 blocks of about ``--seconds`` each, ``--repeats`` times: on a shared machine both
precisions meet the same neighbours, so their ratio holds even where the absolute figures move. Reports the
median block of each. Prints a table, then one JSON line.
"""

import argparse
import json
import platform
import statistics
import time

import torch

from rnnlab.config import override
from rnnlab.data.text import read_text
from rnnlab.loop import to_device, train_step
from rnnlab.optim import build_optimizer
from rnnlab.tasks import charlm, wordlm

WARMUP = 2


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Trainer:
    """One preset's model at one precision, stepping through the task's batches."""

    def __init__(self, task_class, task, config, device):
        torch.manual_seed(0)
        self.task, self.config, self.device = task, config, device
        self.model = task_class.build_model(config, task.vocab).to(device)
        self.params = list(self.model.parameters())
        self.optimizer = build_optimizer(self.params, config)
        self.carry, self.step = None, 0

    def run(self, steps: int) -> float:
        """Run ``steps`` steps; return tokens/s."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            batch, reset = self.task.train_batch(self.step)
            _, self.carry, *_ = train_step(self.model, self.task, to_device(batch, self.device),
                                          None if reset else self.carry, self.optimizer, self.params, self.config)
            self.step += 1
        _sync(self.device)
        return steps * self.config.batch_size * self.config.seq_len / (time.perf_counter() - start)


def bench_preset(kind: str, name: str, device, seconds: float, repeats: int, text: str, data: str) -> dict:
    if kind == "charlm":
        task_class, values = charlm.CharLM, {"device": str(device)}
        task = lambda config: charlm.CharLM(config, text=text)  # noqa: E731
    else:
        task_class, values = wordlm.WordLM, {"device": str(device), "data": data}
        task = wordlm.WordLM
    presets = task_class.presets
    trainers = {}
    for precision in ("fp32", "bf16"):
        config = override(presets[name].config, {**values, "precision": precision}, "benchmark")
        data_task = task(config)
        data_task.to(device)
        trainers[precision] = Trainer(task_class, data_task, config, device)
    for trainer in trainers.values():
        trainer.run(WARMUP)
    probe = trainers["fp32"].run(1)  # tokens/s of one step sets the block length
    tokens_per_step = trainers["fp32"].config.batch_size * trainers["fp32"].config.seq_len
    steps = max(1, round(seconds * probe / tokens_per_step))
    rates = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision, trainer in trainers.items():
            rates[precision].append(trainer.run(steps))
    fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
    return {"task": kind, "preset": name, "params": sum(p.numel() for p in trainers["fp32"].params),
            "steps_per_block": steps, "fp32_tokens_per_s": fp32, "bf16_tokens_per_s": bf16, "speedup": bf16 / fp32,
            "fp32_blocks": rates["fp32"], "bf16_blocks": rates["bf16"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=6.0, help="length of one timed block")
    p.add_argument("--repeats", type=int, default=3, help="blocks per precision; the median is reported")
    p.add_argument("--presets", default=",".join([*charlm.PRESETS, *wordlm.PRESETS]))
    p.add_argument("--data", default="ptb", help="PTB folder or dataset name for the word presets")
    args = p.parse_args()
    device = torch.device(args.device)
    text = read_text("builtin:tinyshakespeare")
    rows = []
    print(f"{'preset':18} {'params':>11} {'fp32 tok/s':>12} {'bf16 tok/s':>12} {'bf16/fp32':>9}")
    for name in args.presets.split(","):
        kind = "charlm" if name in charlm.PRESETS else "wordlm"
        rows.append(bench_preset(kind, name, device, args.seconds, args.repeats, text, args.data))
        r = rows[-1]
        print(f"{r['preset']:18} {r['params']:>11,} {r['fp32_tokens_per_s']:>12,.0f} {r['bf16_tokens_per_s']:>12,.0f} "
              f"{r['speedup']:>8.2f}x", flush=True)
    machine = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine()}
    print(json.dumps({"benchmark": "precision", "machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
