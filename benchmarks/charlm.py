"""Char-LM throughput per preset: training tokens/s (the real train_step) and sampling chars/s at batch 1.

    python benchmarks/charlm.py [--device cpu|cuda] [--steps 30] [--sample-chars 2000] [--repeats 5] [--presets a,b]

Sampling runs with one CPU thread, as ``rnnlab sample`` does on the CPU. Beside it, the floor: a bare loop
written the shortest way on the model's own weights (index the embedding or one-hot row, one
``torch.lstm_cell``/``gru_cell``/``rnn_tanh_cell`` per layer, the decoder, softmax, ``torch.multinomial``,
``int()``); ``sample_vs_bare`` is rnnlab's chars/s over the bare loop's (1.0 = no overhead at all), the
median over the runs of each rnnlab run's rate over the bare run right after it (batch-1 speed drifts).

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
from rnnlab.recurrent import STEP_KERNELS


def bare_sampling(model, length: int, generator) -> float:
    """chars/s of the shortest sampling loop on ``model``'s weights (module docstring), batch 1, temperature 1."""
    rnn = model.rnn
    kernel = STEP_KERNELS[rnn.cell_type]
    weights = [rnn.rnn._flat_weights[4 * k : 4 * k + 4] for k in range(rnn.num_layers)]
    rows = model.one_hot if model.embedding is None else model.embedding.weight
    lstm = rnn.cell_type == "lstm"
    zeros = torch.zeros(1, rnn.hidden_size)
    states = [(zeros, zeros) if lstm else zeros for _ in weights]
    token = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(length):
            x = rows[token]
            for k, w in enumerate(weights):
                states[k] = kernel(x, states[k], *w)
                x = states[k][0] if lstm else states[k]
            probs = torch.softmax(torch.nn.functional.linear(x, model.decoder.weight, model.decoder.bias), dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)[0]
            int(token)
        return length / (time.perf_counter() - start)


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
        _, carry, *_ = train_step(model, task, to_device(batch, device), carry, optimizer, params, config)
    sync()
    train_seconds = time.perf_counter() - start
    tokens = steps * config.batch_size * config.seq_len

    prime = default_prime(task.vocab)
    generator = torch.Generator(device).manual_seed(0)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # as `rnnlab sample` does on the CPU
    list(generate(model, prime, 50, generator=generator))  # warm-up
    rates, bare = [], []
    for _ in range(repeats):  # batch-1 latency on a shared 2-core VM varies by up to 2x: report the median
        start = time.perf_counter()
        n = sum(1 for _ in generate(model, prime, sample_chars, generator=generator))
        rates.append(n / (time.perf_counter() - start))
        bare.append(bare_sampling(model, sample_chars, generator))  # alternating: the same neighbours for both
    torch.set_num_threads(threads)
    return {
        "preset": name, "params": sum(p.numel() for p in params), "batch_size": config.batch_size,
        "seq_len": config.seq_len, "train_tokens_per_s": tokens / train_seconds,
        "step_ms": 1000 * train_seconds / steps, "sample_chars_per_s": statistics.median(rates),
        "sample_chars_per_s_min": min(rates), "sample_chars_per_s_max": max(rates),
        "bare_sample_chars_per_s": statistics.median(bare),
        "sample_vs_bare": statistics.median([r / b for r, b in zip(rates, bare)]),  # each run beside its neighbour
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
    print(f"{'preset':18} {'params':>10} {'B x T':>9} {'train tok/s':>12} {'step ms':>9} {'sample chars/s (min-max)':>26}"
          f" {'bare loop':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['preset']:18} {r['params']:>10,} {r['batch_size']:>4} x {r['seq_len']:<3} "
              f"{r['train_tokens_per_s']:>12,.0f} {r['step_ms']:>9.1f} {r['sample_chars_per_s']:>9,.0f} "
              f"({r['sample_chars_per_s_min']:,.0f}-{r['sample_chars_per_s_max']:,.0f}) "
              f"{r['bare_sample_chars_per_s']:>10,.0f} {r['sample_vs_bare']:>6.2f}")
    machine = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine()}
    print(json.dumps({"benchmark": "charlm", "machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
