"""Labelled sequences: the JSONL format for user data, the built-in toy tasks, and padded batches.

User data is JSON Lines, one sequence per line, in one of these forms::

    {"tokens": ["the", "cat", "sat"], "label": "animal"}              one label per sequence (many-to-one)
    {"tokens": ["0", "1", "1"], "labels": ["a", "b", null]}          one label per step; null = not scored
    {"features": [[0.1, 2.0], [0.3, 1.5]], "label": 3}              feature vectors instead of tokens
    {"features": [[0.5, 0.0], [0.2, 1.0]], "target": 0.7}           a real number per sequence (regression)

Tokens and class labels are strings or integers: the integer 1, the number 1.0 and the string "1" name the
same class; a fractional number, a boolean or null (except as a per-step label: not scored) is an error.
Features and targets are finite numbers, and every feature vector of a file has the same width. A trained run reads a file with its own ids: the file
may use a subset of the run's tokens and classes, not others.

Sequences may differ in length: a batch is padded to its longest sequence and every padded (or null)
position is left out of the loss and the metrics::

    tokens  (B, T)     a b c .  .        lengths (B,)  3
                       d e f g  h                      5
    labels  (B, T)     x y x -  -        (-100 = not scored: padding or null)
            or (B,)    one label per sequence, scored at the last real step (lengths - 1)
"""

from dataclasses import dataclass
import json
import logging

import torch

from ..errors import UserError
from ..files import JSONError, parse_json, read_utf8
from .text import Vocab

log = logging.getLogger(__name__)

IGNORE = -100  # label of a step that is not scored (torch's cross_entropy ignore_index)
PAD_LIMIT = 2**31  # bytes: a file's sequences padded to its longest must fit in this (2 GiB)
LONG_FACTOR = 10   # a sequence this many times longer than the median is worth a warning
FLOAT32_MAX = torch.finfo(torch.float32).max  # inputs and targets are float32: a larger number would be inf


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

    def scored(self) -> int:
        """Labels that count in the loss: every target, or the class labels other than IGNORE."""
        return self.labels.numel() if self.regression else int((self.labels != IGNORE).sum())

    def subset(self, index: torch.Tensor) -> "Sequences":
        return Sequences(self.inputs[index], self.lengths[index], self.labels[index], self.per_step, self.regression)

    def batch(self, index: torch.Tensor) -> dict:
        """Rows ``index``, cut to their longest sequence."""
        longest = int(self.lengths[index].max())
        labels = self.labels[index]
        return {"inputs": self.inputs[index, :longest], "lengths": self.lengths[index],
                "labels": labels[:, :longest] if self.per_step else labels}


# ----------------------------------------------------------------------------------------- user data


def read_jsonl(path: str, vocab: Vocab | None = None, max_length: int = 0) -> tuple[Sequences, list, list]:
    """Read ``path``; return the sequences, the input vocabulary (token strings; [] for features) and the
    class names ([] for regression). Any malformed line is an error naming the file, the line and the fix;
    so is a sequence longer than ``max_length`` (0: no limit).

    ``vocab`` (a trained run's) fixes the ids instead: a file may use a subset of the run's tokens and
    classes, but one the run never saw, or another input form, is an error that names it."""
    records = _read_records(path)
    first_line, first = records[0]
    use_tokens = "tokens" in first
    per_step = "labels" in first
    regression = "target" in first and not per_step
    key_in = "tokens" if use_tokens else "features"
    key_out = "labels" if per_step else ("target" if regression else "label")
    width = None  # features: the vector width, from the first vector of the first line
    seqs, outs = [], []
    for n, rec in records:
        where = f"{path} line {n}"
        for keys in (("tokens", "features"), ("label", "labels", "target")):
            given = [k for k in keys if k in rec]
            if len(given) > 1:
                raise UserError(f"{where}: has both {given[0]!r} and {given[1]!r}; a sequence takes one of "
                                f"{', '.join(map(repr, keys))}, so keep the one you mean")
        if key_in not in rec or key_out not in rec:
            if n == first_line:
                raise UserError(f"{where}: a sequence needs 'tokens' or 'features', and 'label', 'labels' or 'target' "
                                f"(the format is in rnnlab/data/sequences.py); got keys {sorted(rec)}")
            raise UserError(f"{where}: expected keys {key_in!r} and {key_out!r} like line {first_line}, "
                            f"got {sorted(rec)}")
        seq = rec[key_in]
        if not isinstance(seq, list) or not seq:
            raise UserError(f"{where}: {key_in!r} must be a non-empty list, got {_show(seq)}")
        if use_tokens:
            seq = [_name(token, where, f"tokens[{t}]", "every token") for t, token in enumerate(seq)]
        else:
            width = _check_vectors(seq, where, width, first_line)
        out = rec[key_out]
        if per_step:
            if not isinstance(out, list) or len(out) != len(seq):
                got = len(out) if isinstance(out, list) else _show(out)
                raise UserError(f"{where}: 'labels' must have one label per step, {len(seq)} like {key_in!r}, "
                                f"but has {got}; use null for a step without a label")
            out = [None if label is None else _name(label, where, f"labels[{t}]", "a label (null: not scored)")
                   for t, label in enumerate(out)]
        elif regression and not _is_finite(out):
            raise UserError(f"{where}: 'target' is {_show(out)}; it must be a finite number (regression)")
        elif not regression:
            if out is None:
                raise UserError(f"{where}: 'label' is null; it must be a class name (a string or an integer); to "
                                f"leave steps unscored use 'labels' with one label or null per step")
            out = _name(out, where, "'label'", "a label")
        seqs.append(seq)
        outs.append(out)
    _check_lengths(path, [n for n, _ in records], [len(s) for s in seqs], max_length, not use_tokens and width or 0,
                   per_step)
    if per_step and all(o is None for out in outs for o in out):
        raise UserError(f"{path}: no step has a label (every one of 'labels' is null), so there is nothing to learn "
                        f"or score; give each sequence at least one labelled step")
    if vocab is not None:
        _check_form(path, vocab, use_tokens, width, regression)
    if use_tokens:
        token_rows = seqs
        tokens = sorted({t for s in token_rows for t in s}) if vocab is None else vocab.tokens
        rows = _ids(token_rows, tokens, path, "token")
    else:
        tokens, rows = [], seqs
    if regression:
        classes = []
        labels = torch.tensor([float(o) for o in outs])
    else:
        label_rows = [out if per_step else [out] for out in outs]
        classes = sorted({o for r in label_rows for o in r if o is not None}, key=_natural) if vocab is None \
            else vocab.labels
        ids = _ids(label_rows, classes, path, "class", "classes")
        labels = ids if per_step else [r[0] for r in ids]
    return pad(rows, labels, per_step, regression, features=not use_tokens), tokens, classes


def _check_lengths(path: str, lines: list, lengths: list, max_length: int, width: int, per_step: bool) -> None:
    """Refuse a sequence over ``max_length``, or a file whose padding to its longest sequence would not fit in
    memory; warn about a sequence far longer than the median (its batches are slow, if not the others')."""
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    steps, line = lengths[longest], lines[longest]
    if max_length and steps > max_length:
        raise UserError(f"{path} line {line}: a sequence of {steps:,} steps, over max_length = {max_length:,}; "
                        f"split or drop it, or raise max_length (--set max_length=N)")
    bytes_per_step = 4 * width if width else 8  # float32 features, or int64 token ids
    padded = len(lengths) * steps * (bytes_per_step + (8 if per_step else 0))
    if padded > PAD_LIMIT:
        raise UserError(f"{path}: padding its {len(lengths):,} sequences to the longest ({steps:,} steps, line "
                        f"{line}) would take {padded / 2**30:.1f} GiB, over {PAD_LIMIT // 2**30} GiB; split the long "
                        f"sequences, or refuse them with max_length (--set max_length=N)")
    median = sorted(lengths)[len(lengths) // 2]
    if steps > LONG_FACTOR * median:
        log.warning("%s line %d: a sequence of %s steps, %.0fx the median %d; batches group sequences of similar "
                    "length, but its own are slow (set max_length to refuse such lines)", path, line, f"{steps:,}",
                    steps / median, median)


def _read_records(path: str) -> list:
    """The (line number, JSON object) of every non-blank line of the UTF-8 file ``path``."""
    fix = "give a UTF-8 JSONL file (one JSON object per line, see rnnlab/data/sequences.py)"
    text = read_utf8(path, "data file", fix, "data.jsonl")
    records = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = parse_json(line, f"{path} line {n}")
        except JSONError as e:
            hint = " (a missing value? replace it, for example by 0 plus a feature that marks it)" \
                if e.reason.startswith("NaN") else ""
            raise UserError(f"{path} line {n} is not valid JSON ({e.reason}){hint}; each line is one JSON object") \
                from None
        if not isinstance(record, dict):
            raise UserError(f"{path} line {n} is {_show(record)}, not a JSON object; each line is one sequence, "
                            f'like {{"tokens": ["a", "b"], "label": "x"}}')
        records.append((n, record))
    if not records:
        raise UserError(f"data file {path} holds no sequences; give one JSON object per line")
    return records


def _check_vectors(seq: list, where: str, width: int | None, first_line: int) -> int:
    """Each step of ``seq`` must be a list of ``width`` finite numbers (any width > 0 when None); return the width."""
    for t, vector in enumerate(seq):
        if not isinstance(vector, list) or not vector:
            raise UserError(f"{where}: features[{t}] is {_show(vector)}; each step is a non-empty list of numbers, "
                            f"like [[0.1, 2.0], [0.3, 1.5]] (a single feature per step: [[0.1], [0.3]])")
        for v in vector:
            if not _is_finite(v):  # NaN and infinities never get here: the JSON reader refuses them
                hint = f" within float32's range, +-{FLOAT32_MAX:.1e}" if isinstance(v, (int, float)) \
                    and not isinstance(v, bool) else ""
                raise UserError(f"{where}: features[{t}] holds {_show(v)}; every feature must be a finite number{hint}")
        if width is None:
            width = len(vector)
        elif len(vector) != width:
            raise UserError(f"{where}: every feature vector must be a list of {width} numbers like line "
                            f"{first_line}'s, but features[{t}] has {len(vector)}")
    return width


def _check_form(path: str, vocab: Vocab, use_tokens: bool, width: int | None, regression: bool) -> None:
    """The file must give the run the inputs and outputs it was trained on."""
    inputs = {True: "tokens", False: "feature vectors"}
    if use_tokens != (not vocab.features):
        raise UserError(f"{path} holds {inputs[use_tokens]}, but the run was trained on {inputs[not use_tokens]}; "
                        f"give a file in the run's form")
    if width is not None and width != vocab.features:
        raise UserError(f"{path} has feature vectors of {width} numbers, but the run was trained on {vocab.features}")
    outputs = {True: "targets (real numbers)", False: "classes"}
    if regression != (not vocab.labels):
        raise UserError(f"{path} holds {outputs[regression]}, but the run was trained to predict "
                        f"{outputs[not regression]}; give a file in the run's form")


def _ids(rows: list, names: list, path: str, what: str, plural: str = "") -> list:
    """``rows`` of names (None: not scored) as ids in ``names``; a name missing from it is an error."""
    index = {name: i for i, name in enumerate(names)}
    unseen = list(dict.fromkeys(x for row in rows for x in row if x is not None and x not in index))
    if unseen:
        shown = ", ".join(repr(x) for x in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        raise UserError(f"{path} has {len(unseen)} {what if len(unseen) == 1 else plural or what + 's'} the run never "
                        f"saw in training: {shown}; the model knows only {len(names)} ({', '.join(names[:10])}"
                        f"{' ...' if len(names) > 10 else ''}): remove those sequences or retrain with them")
    return [[IGNORE if x is None else index[x] for x in row] for row in rows]


def _name(value, where: str, what: str, rule: str) -> str:
    """A token or class name as text: a string as it is, an integer (or an integral number: 1.0 is 1) as its
    digits; anything else is an error naming ``where`` and ``what``."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"{where}: {what} is {_show(value)}; {rule} must be a string or an integer (1 and 1.0 are the "
                    f"same class; a fraction or a boolean is not a name)")


def _is_finite(value) -> bool:
    """A JSON number float32 can hold: not a string, a bool, NaN, an infinity, or a number beyond its range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return abs(float(value)) <= FLOAT32_MAX  # False for NaN too
    except OverflowError:  # an integer too large for a float
        return False


def _show(value) -> str:
    """``value`` as the JSON it was written in, shortened: null, "a", [1, 2], NaN."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


def copy_length(count: int, delay: int) -> int:
    """Steps of a copy sequence: the symbols, the delay, the go marker, the recall."""
    return count + delay + 1 + count


def copy(n: int, symbols: int, count: int, delay: int, generator: torch.Generator) -> Sequences:
    """Delayed recall: ``count`` random symbols (ids 1..symbols), ``delay`` blanks (0), a go marker
    (symbols + 1), then ``count`` blanks during which the symbols must be output in order. Only the recall
    steps are scored, so chance is 1 / symbols::

        input   3 1 4 . . . . . . G . . .
        labels  - - - - - - - - - - 3 1 4
    """
    data = torch.randint(1, symbols + 1, (n, count), generator=generator)
    length = copy_length(count, delay)
    inputs = torch.zeros(n, length, dtype=torch.long)
    inputs[:, :count] = data
    inputs[:, count + delay] = symbols + 1
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    labels[:, count + delay + 1 :] = data - 1  # classes 0..symbols-1
    return Sequences(inputs, torch.full((n,), length), labels, per_step=True)
