"""Training tokens/s in one process and in a torchrun job of two (one CPU thread each), and the all-reduce
time per step, for char and word presets.

    python benchmarks/distributed.py [--presets charlm:char-rnn charlm:shakespeare-lstm wordlm:zaremba-small
                                      wordlm:zaremba-medium] [--steps 40] [--ptb ../shared/data/ptb]

Each preset trains ``--steps`` steps through the real command (``python -m rnnlab train``, the global batch
of the preset in both cases), once as one process and once under ``python -m torch.distributed.run
--nproc-per-node 2``; tokens/s is the loop's own figure (training time only) over the second half of the
steps, after the warm-up. The all-reduce column is the median time of one ``all_reduce`` of a float32
tensor as large as the model's gradients between the two processes (gloo on loopback): what DDP adds to
every step, before any overlap with the backward pass. Prints a table and one JSON line.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokens_per_s(task: str, preset: str, steps: int, nproc: int, data: str | None, root: str) -> float:
    """The loop's tokens/s over the second half of ``steps`` steps of ``preset``, in ``nproc`` processes."""
    out = os.path.join(root, f"{preset}-{nproc}")
    launcher = [] if nproc == 1 else ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                                      "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    command = [sys.executable, *launcher, "-m", "rnnlab", "train", task, "--preset", preset, "--out", out, "--force",
               "--max-steps", str(steps), "--threads", "1", "--device", "cpu", "--set", f"log_interval={steps // 2}",
               f"eval_interval={steps}", "preview_length=0", *(["--data", data] if data else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        train = [json.loads(line) for line in f if '"split": "train"' in line]
    return train[-1]["tokens_per_s"]


def parameters(task: str, preset: str, data: str | None) -> int:
    import rnnlab

    spec = rnnlab.TASKS[task]
    config = rnnlab.configure(task, preset, **({"data": data} if data else {}))
    vocab = spec(config, None).vocab
    return sum(p.numel() for p in spec.build_model(config, vocab).parameters())


def allreduce_seconds(numel: int, repeats: int = 20) -> float:
    """In a torchrun job (this script with --allreduce): the median all-reduce time of ``numel`` floats."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    tensor = torch.ones(numel)
    times = []
    for _ in range(repeats + 2):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        times.append(time.perf_counter() - start)
    median = statistics.median(times[2:])
    if dist.get_rank() == 0:
        print(json.dumps({"allreduce_s": median}))
    dist.destroy_process_group()
    return median


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["charlm:char-rnn", "charlm:shakespeare-lstm",
                                                    "wordlm:zaremba-small", "wordlm:zaremba-medium"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--ptb", default=os.path.join(os.path.dirname(HERE), os.pardir, os.pardir, "shared", "data", "ptb"))
    p.add_argument("--allreduce", type=int, help=argparse.SUPPRESS)  # the job that times one all-reduce
    args = p.parse_args()
    if args.allreduce:
        allreduce_seconds(args.allreduce)
        return
    rows = []
    print(f"{'preset':<24} {'params':>11} {'1 process':>10} {'2 processes':>11} {'speed-up':>8} "
          f"{'all-reduce ms':>13} {'grad MB':>8}")
    with tempfile.TemporaryDirectory() as root:
        for spec in args.presets:
            task, preset = spec.split(":")
            data = os.path.abspath(args.ptb) if task == "wordlm" else None
            numel = parameters(task, preset, data)
            one = tokens_per_s(task, preset, args.steps, 1, data, root)
            two = tokens_per_s(task, preset, args.steps, 2, data, root)
            job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                                  "--master-addr", "127.0.0.1", "--master-port", str(free_port()), HERE,
                                  "--allreduce", str(numel)], check=True, capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            reduce_s = json.loads(job.stdout.strip().splitlines()[-1])["allreduce_s"]
            row = {"preset": spec, "parameters": numel, "one_process_tokens_per_s": one,
                   "two_processes_tokens_per_s": two, "speedup": two / one, "allreduce_ms": reduce_s * 1e3,
                   "gradient_mb": numel * 4 / 1e6}
            rows.append(row)
            print(f"{spec:<24} {numel:>11,} {one:>10,.0f} {two:>11,.0f} {two / one:>8.2f} {reduce_s * 1e3:>13.2f} "
                  f"{numel * 4 / 1e6:>8.1f}")
    print(json.dumps({"benchmark": "distributed", "steps": args.steps, "threads_per_process": 1,
                      "machine": platform.processor() or platform.machine(), "cores": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    main()
