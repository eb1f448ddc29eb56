"""Labelled sequences: the JSONL format for user data, the built-in toy tasks, and padded batches.

User data is JSON Lines, one sequence per line, in one of these forms::

    {"tokens": ["the", "cat", "sat"], "label": "animal"}              one label per sequence (many-to-one)
    {"tokens": ["0", "1", "1"], "labels": ["a", "b", null]}          one label per step; null = not scored
    {"features": [[0.1, 2.0], [0.3, 1.5]], "label": 3}              feature vectors instead of tokens
    {"features": [[0.5, 0.0], [0.2, 1.0]], "target": 0.7}           a real number per sequence (regression)

Sequences may differ in length: a batch is padded to its longest sequence and every padded (or null)
position is left out of the loss and the metrics::

    tokens  (B, T)     a b c .  .        lengths (B,)  3
                       d e f g  h                      5
    labels  (B, T)     x y x -  -        (-100 = not scored: padding or null)
            or (B,)    one label per sequence, scored at the last real step (lengths - 1)
"""

from dataclasses import dataclass
import json
import os

import torch

from ..errors import UserError

IGNORE = -100  # label of a step that is not scored (torch's cross_entropy ignore_index)


@dataclass
class Sequences:
    """A labelled set: ``inputs`` (N, T) ids or (N, T, F) features, ``lengths`` (N,), and ``labels``
    (N,) / (N, T) class ids or ``targets`` (N,) real numbers. ``per_step`` says which labels."""

    inputs: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    per_step: bool
    regression: bool = False

    def __len__(self) -> int:
        return self.inputs.size(0)

    def subset(self, index: torch.Tensor) -> "Sequences":
        return Sequences(self.inputs[index], self.lengths[index], self.labels[index], self.per_step, self.regression)

    def batch(self, index: torch.Tensor) -> dict:
        """Rows ``index``, cut to their longest sequence."""
        longest = int(self.lengths[index].max())
        labels = self.labels[index]
        return {"inputs": self.inputs[index, :longest], "lengths": self.lengths[index],
                "labels": labels[:, :longest] if self.per_step else labels}


# ----------------------------------------------------------------------------------------- user data


def read_jsonl(path: str) -> tuple[Sequences, list, list]:
    """Read ``path``; return the sequences, the input vocabulary (token strings; [] for features) and the
    class names ([] for regression). Any malformed line is an error naming the line and the fix."""
    if not os.path.isfile(path):
        raise UserError(f"data file {path} does not exist; give a JSONL file (one sequence per line, see rnnlab.data.sequences)")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path} line {n} is not valid JSON ({e.msg}); each line is one JSON object") from None
    if not records:
        raise UserError(f"data file {path} holds no sequences; give one JSON object per line")
    first = records[0][1]
    use_tokens = "tokens" in first
    per_step = "labels" in first
    regression = "target" in first
    key_in = "tokens" if use_tokens else "features"
    key_out = "labels" if per_step else ("target" if regression else "label")
    seqs, outs = [], []
    for n, rec in records:
        if not isinstance(rec, dict) or key_in not in rec or key_out not in rec:
            raise UserError(f"{path} line {n}: expected keys {key_in!r} and {key_out!r} like line {records[0][0]}, "
                            f"got {sorted(rec) if isinstance(rec, dict) else type(rec).__name__}")
        seq = rec[key_in]
        if not isinstance(seq, list) or not seq:
            raise UserError(f"{path} line {n}: {key_in!r} must be a non-empty list")
        if per_step and (not isinstance(rec["labels"], list) or len(rec["labels"]) != len(seq)):
            got = len(rec["labels"]) if isinstance(rec["labels"], list) else type(rec["labels"]).__name__
            raise UserError(f"{path} line {n}: 'labels' must have one label per step, {len(seq)} like {key_in!r}, "
                            f"but has {got}; use null for a step without a label")
        seqs.append(seq)
        outs.append(rec[key_out])
    if use_tokens:
        vocab = sorted({str(t) for s in seqs for t in s})
        index = {t: i for i, t in enumerate(vocab)}
        rows = [[index[str(t)] for t in s] for s in seqs]
    else:
        vocab, rows = [], seqs
        width = len(seqs[0][0]) if isinstance(seqs[0][0], list) else None
        for (n, _), s in zip(records, seqs):
            if any(not isinstance(v, list) or len(v) != width for v in s):
                raise UserError(f"{path} line {n}: every feature vector must be a list of {width} numbers like line "
                                f"{records[0][0]}'s")
    if regression:
        classes = []
        labels = torch.tensor([float(o) for o in outs])
    else:
        flat = [o for out in outs for o in (out if per_step else [out]) if o is not None]
        classes = sorted({str(o) for o in flat}, key=_natural)
        cid = {c: i for i, c in enumerate(classes)}
        labels = [[IGNORE if o is None else cid[str(o)] for o in out] for out in outs] if per_step else \
            [cid[str(o)] for o in outs]
    return pad(rows, labels, per_step, regression, features=not use_tokens), vocab, classes


def _natural(name: str):
    """Sort "2" before "10": numeric class names by value, others after, alphabetically."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


def pad(rows: list, labels, per_step: bool, regression: bool = False, features: bool = False) -> Sequences:
    """Pad ragged ``rows`` (and per-step ``labels``) into tensors; padding is 0 in inputs, IGNORE in labels."""
    lengths = torch.tensor([len(r) for r in rows])
    longest = int(lengths.max())
    if features:
        width = len(rows[0][0])
        inputs = torch.zeros(len(rows), longest, width)
        for i, r in enumerate(rows):
            inputs[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    else:
        inputs = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, r in enumerate(rows):
            inputs[i, : len(r)] = torch.tensor(r)
    if per_step:
        out = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
        for i, lab in enumerate(labels):
            out[i, : len(lab)] = torch.tensor(lab)
    else:
        out = labels if isinstance(labels, torch.Tensor) else torch.tensor(labels)
    return Sequences(inputs, lengths, out, per_step, regression)


# ------------------------------------------------------------------------------------------ toy tasks


def bit_pair(n: int, length: int, generator: torch.Generator) -> Sequences:
    """Random bits (as one feature per step); the class of step t is 2 x bit[t-1] + bit[t], read as a
    binary number (../shared/seeds/toy-sequence-classification.txt). Step 0 has no previous bit: not scored."""
    bits = torch.randint(0, 2, (n, length), generator=generator)
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    labels[:, 1:] = 2 * bits[:, :-1] + bits[:, 1:]
    return Sequences(bits.float().unsqueeze(-1), torch.full((n,), length), labels, per_step=True)


def adding(n: int, length: int, generator: torch.Generator) -> Sequences:
    """The adding problem (Hochreiter & Schmidhuber 1997): each step holds a value in U(0, 1) and a marker;
    two steps are marked, one in each half; the target is the sum of their values. Predicting the mean (1)
    scores the variance of a sum of two U(0, 1), 2/12 = 0.167 (ADDING_BASELINE_MSE)."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return Sequences(torch.stack([values, markers], -1), torch.full((n,), length), targets, per_step=False,
                     regression=True)


ADDING_BASELINE_MSE = 2 / 12  # Var(U1 + U2) for independent U(0, 1): the MSE of always answering 1


def copy(n: int, symbols: int, count: int, delay: int, generator: torch.Generator) -> Sequences:
    """Delayed recall: ``count`` random symbols (ids 1..symbols), ``delay`` blanks (0), a go marker
    (symbols + 1), then ``count`` blanks during which the symbols must be output in order. Only the recall
    steps are scored, so chance is 1 / symbols::

        input   3 1 4 . . . . . . G . . .
        labels  - - - - - - - - - - 3 1 4
    """
    data = torch.randint(1, symbols + 1, (n, count), generator=generator)
    length = count + delay + 1 + count
    inputs = torch.zeros(n, length, dtype=torch.long)
    inputs[:, :count] = data
    inputs[:, count + delay] = symbols + 1
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    labels[:, count + delay + 1 :] = data - 1  # classes 0..symbols-1
    return Sequences(inputs, torch.full((n,), length), labels, per_step=True)
