"""min-char-rnn: rnnlab's ``min-char-rnn`` preset against the NumPy code it comes from, at steady state.

    python benchmarks/min_char_rnn.py [--steps 2000] [--repeats 3] [--compile]

The yardstick is Karpathy's min-char-rnn (BSD licence), the training loop of
``../shared/seeds/rnn-bptt-lstm-min-char-rnn.txt`` transcribed to Python 3 below (``lossFun`` and the
Adagrad update, as written: column vectors, a dict per time step, float64), without its sampling every
100 iterations. rnnlab runs the real ``train_step`` of the preset (the same sizes: tanh RNN 100, one-hot
input, seq 25, batch 1, Adagrad 0.1, element-wise clipping), eagerly, and with ``--compile`` also with the
``compile`` key (the step compiled by ``torch.compile``; its compile time is reported, not counted). Beside
them, a bare torch loop of the same step (``BareTorch``): what torch itself costs, without rnnlab's checks.

Both read tiny Shakespeare 25 characters at a time from the start. Reports characters per second, the
median of ``--repeats`` blocks of ``--steps`` steps after a warm-up block (blocks alternate between the
implementations, so a busy neighbour slows all of them alike), the ratios to NumPy, and one JSON line.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from rnnlab.config import override
from rnnlab.data.text import read_text
from rnnlab.elman import ElmanLayer
from rnnlab.loop import compiled_step, to_device, train_step
from rnnlab.optim import build_optimizer
from rnnlab.tasks import charlm

SEQ_LENGTH, HIDDEN_SIZE, LEARNING_RATE = 25, 100, 1e-1  # min-char-rnn's hyper-parameters


class SeedNumPy:
    """min-char-rnn's model, ``lossFun`` and Adagrad update (the seed's code, Python 3)."""

    def __init__(self, data: str):
        chars = sorted(set(data))
        self.data, self.vocab_size = data, len(chars)
        self.char_to_ix = {ch: i for i, ch in enumerate(chars)}
        rng = np.random.default_rng(0)
        self.Wxh = rng.standard_normal((HIDDEN_SIZE, self.vocab_size)) * 0.01
        self.Whh = rng.standard_normal((HIDDEN_SIZE, HIDDEN_SIZE)) * 0.01
        self.Why = rng.standard_normal((self.vocab_size, HIDDEN_SIZE)) * 0.01
        self.bh, self.by = np.zeros((HIDDEN_SIZE, 1)), np.zeros((self.vocab_size, 1))
        self.memory = [np.zeros_like(p) for p in (self.Wxh, self.Whh, self.Why, self.bh, self.by)]
        self.hprev, self.p = np.zeros((HIDDEN_SIZE, 1)), 0

    def loss_fun(self, inputs, targets, hprev):
        Wxh, Whh, Why, bh, by, vocab_size = self.Wxh, self.Whh, self.Why, self.bh, self.by, self.vocab_size
        xs, hs, ys, ps = {}, {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0
        for t in range(len(inputs)):
            xs[t] = np.zeros((vocab_size, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys[t] = np.dot(Why, hs[t]) + by
            ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby = np.zeros_like(bh), np.zeros_like(by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -5, 5, out=dparam)
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    def run(self, steps: int) -> float:
        """Train ``steps`` iterations; return characters per second."""
        start = time.perf_counter()
        for _ in range(steps):
            if self.p + SEQ_LENGTH + 1 >= len(self.data):
                self.hprev, self.p = np.zeros((HIDDEN_SIZE, 1)), 0
            inputs = [self.char_to_ix[ch] for ch in self.data[self.p : self.p + SEQ_LENGTH]]
            targets = [self.char_to_ix[ch] for ch in self.data[self.p + 1 : self.p + SEQ_LENGTH + 1]]
            loss, dWxh, dWhh, dWhy, dbh, dby, self.hprev = self.loss_fun(inputs, targets, self.hprev)
            for param, dparam, mem in zip([self.Wxh, self.Whh, self.Why, self.bh, self.by],
                                          [dWxh, dWhh, dWhy, dbh, dby], self.memory):
                mem += dparam * dparam
                param += -LEARNING_RATE * dparam / np.sqrt(mem + 1e-8)
            self.p += SEQ_LENGTH
        return steps * SEQ_LENGTH / (time.perf_counter() - start)


class BareTorch:
    """The floor for a torch step of this model: rnnlab's CPU Elman layer, the decoder, cross-entropy, backward,
    element-wise clipping and the preset's (fused) Adagrad, with nothing else (no finite checks, no
    schedule, no state bookkeeping), on the weights of a model built like the preset's."""

    def __init__(self, text: str):
        self.inner = Rnnlab(text, compile=False)
        self.h = torch.zeros(1, HIDDEN_SIZE)

    def run(self, steps: int) -> float:
        r = self.inner
        weights, rows, decoder = r.model.rnn.rnn._flat_weights, r.model.one_hot, r.model.decoder
        grads_bound = r.config.clip_value
        start = time.perf_counter()
        for _ in range(steps):
            (x, y), reset = r.task.train_batch(r.step)
            if reset:
                self.h = torch.zeros(1, HIDDEN_SIZE)
            out, last = ElmanLayer.apply(rows[x], self.h, *weights, False)
            logits = torch.nn.functional.linear(out, decoder.weight, decoder.bias)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            for p in r.params:
                p.grad = None
            loss.backward()
            grads = [p.grad for p in r.params]
            torch._foreach_clamp_min_(grads, -grads_bound)
            torch._foreach_clamp_max_(grads, grads_bound)
            r.optimizer.step()
            self.h = last.detach()
            r.step += 1
        return steps * SEQ_LENGTH / (time.perf_counter() - start)


class Rnnlab:
    """The ``min-char-rnn`` preset through rnnlab's training step (``compile`` as given)."""

    def __init__(self, text: str, compile: bool):
        self.config = override(charlm.PRESETS["min-char-rnn"].config, {"device": "cpu", "compile": compile}, "benchmark")
        torch.manual_seed(0)
        self.task = charlm.CharLM(self.config, text=text)
        self.model = charlm.CharLM.build_model(self.config, self.task.vocab)
        self.params = list(self.model.parameters())
        self.optimizer = build_optimizer(self.params, self.config)
        self.step_fn = compiled_step(self.task, "cpu") if compile else train_step
        self.carry, self.step = None, 0

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            batch, reset = self.task.train_batch(self.step)
            step = self.step_fn(self.model, self.task, to_device(batch, "cpu"), None if reset else self.carry,
                                self.optimizer, self.params, self.config)
            self.carry = step.carry
            self.step += 1
        return steps * self.config.batch_size * self.config.seq_len / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time the compile key (compiles for a minute)")
    args = p.parse_args()
    text = read_text("builtin:tinyshakespeare")
    runners = {"numpy (the seed)": SeedNumPy(text), "bare torch loop": BareTorch(text),
               "rnnlab": Rnnlab(text, compile=False)}
    compile_seconds = None
    if args.compile:
        runners["rnnlab, compile=true"] = Rnnlab(text, compile=True)
        start = time.perf_counter()
        runners["rnnlab, compile=true"].run(3)  # the first calls compile
        compile_seconds = time.perf_counter() - start
    for runner in runners.values():
        runner.run(args.steps // 4)  # warm-up: caches, allocator, Adagrad's state
    rates = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, runner in runners.items():
            rates[name].append(runner.run(args.steps))
    numpy_rate = statistics.median(rates["numpy (the seed)"])
    print(f"min-char-rnn training, {args.steps} steps x {args.repeats} blocks, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'implementation':<24}{'chars/s':>10}{'vs numpy':>10}")
    results = []
    for name, values in rates.items():
        rate = statistics.median(values)
        results.append({"implementation": name, "chars_per_s": rate, "vs_numpy": rate / numpy_rate, "blocks": values})
        print(f"{name:<24}{rate:>10,.0f}{rate / numpy_rate:>9.2f}x")
    if compile_seconds is not None:
        print(f"compiling took {compile_seconds:.1f} s")
    print(json.dumps({"benchmark": "min_char_rnn", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "cpu": platform.processor() or platform.machine(), "compile_seconds": compile_seconds,
                      "results": results}))


if __name__ == "__main__":
    main()
