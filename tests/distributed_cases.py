"""The trainings tests/test_distributed.py runs in one process and in a torchrun job of two, to compare: one
tiny run of every task (a TBPTT stream for charlm and wordlm, variable-length sequences with per-step labels
for classify, Hershey lines for handwriting, synthesis and recognize, toy pairs for seq2seq), all on the CPU with dropout off."""

import json
import os
import random

import rnnlab

STEPS = 12
COMMON = dict(max_steps=STEPS, seed=5, batch_size=4, eval_interval=6, log_interval=3, device="cpu")
LONG_STEPS = 24  # the fault cases: a checkpoint and a log record every 4 steps, a collective timeout of 20 s
FAULTS = dict(save_interval=4, log_interval=4, dist_timeout=20.0)  # a log record at every checkpoint; the
# timeout also bounds how long the first process waits for the others to start (torch, data): 20 s on a busy VM
LM = dict(hidden_size=16, num_layers=2, seq_len=8, preview_length=0)
PEN = dict(hidden_size=12, num_layers=2, mixtures=3, synthetic_lines=16, valid_fraction=0.25, sample_points=0,
           optimizer="adam", lr=1e-2)


def make_data(root: str) -> None:
    """The data every case reads, written once under ``root``."""
    with open(os.path.join(root, "text.txt"), "w", encoding="utf-8") as f:
        f.write("the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60)
    corpus = os.path.join(root, "corpus")
    os.makedirs(corpus, exist_ok=True)
    words = "the cat sat on a mat and the dog ran to the cat".split()
    rng = random.Random(0)
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        with open(os.path.join(corpus, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(lines)))
    with open(os.path.join(root, "labels.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(200):  # lengths 2 to 9: the processes' shares of scored steps differ
            bits = [rng.choice("01") for _ in range(rng.randint(2, 9))]
            labels = [None] + [f"{a}{b}" for a, b in zip(bits, bits[1:])]
            f.write(json.dumps({"tokens": bits, "labels": labels}) + "\n")


def train(case: str, root: str, out: str, resume: bool = False, **extra):
    """Train ``case`` (a task name) from the data under ``root`` into ``out``; ``extra`` overrides (a resumed
    run keeps its own config and takes only ``extra``)."""
    if resume:
        return rnnlab.train(case, out, resume=True, **extra)
    data = {"charlm": "text.txt", "wordlm": "corpus", "classify": "labels.jsonl"}.get(case)
    data = os.path.join(root, data) if data else None
    keys = {"charlm": LM, "wordlm": {**LM, "eval_batch_size": 4}, "classify": dict(hidden_size=8),
            "handwriting": PEN,
            # 13 training lines in batches of 10: every epoch ends with a batch of 3, one line for one process
            # and two for the other, whose shares of the loss are then 1/3 and 2/3
            "synthesis": {**PEN, "window_gaussians": 2, "synthetic_lines": 18, "batch_size": 10},
            "recognize": dict(hidden_size=8, num_layers=2, conv_channels=4, synthetic_lines=16, valid_fraction=0.25,
                              dropout=0.0, precision="fp32", lm_order=2, lr=1e-2),
            # pairs of 1 to 6 symbols: the two processes' blocks of 3 hold different numbers of target tokens
            "seq2seq": dict(hidden_size=8, embedding_size=4, batch_size=6, valid_pairs=12, max_length=6)}[case]
    preset = "graves-synthesis" if case == "synthesis" else None
    return rnnlab.train(case, out, preset=preset, data=data, **{**COMMON, **keys, **extra})


TASKS = ("charlm", "wordlm", "classify", "handwriting", "synthesis", "recognize", "seq2seq")


def poison_step(step: int) -> None:
    """Make the handwriting batches of ``step`` hold a NaN in their last line (rank 1's block of two), so that
    the step's loss is not finite: one process skips it; a job must skip it on every process together."""
    import torch

    from rnnlab.tasks.pen import PenTask

    batch_of = PenTask.train_batch

    def train_batch(self, k):
        batch, reset = batch_of(self, k)
        if k == step:
            batch["inputs"][-1, 3, 0] = torch.nan
        return batch, reset

    PenTask.train_batch = train_batch
