"""Sequence pairs for sequence-to-sequence tasks: a TSV reader, a split by source, seeded toy tasks with the
curricula of Zaremba & Sutskever (2014), tokens, vocabularies and padded encoder/decoder tensors.

A pairs file is UTF-8 (a byte-order mark allowed), one pair per line, ``\\n`` or ``\\r\\n`` line ends::

    SOURCE <TAB> TARGET [<TAB> more columns ...]
    Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)

Columns after the second (Tatoeba's attribution) are kept in ``Pair.extra`` and never read as text. Blank
lines are skipped; source and target are kept exactly as written and must not be empty or blank.

Text conventions. Toy pairs are plain character strings (``"123+456"`` -> ``"579"``) read at the ``char``
level; translation is read at the ``word`` level, where :func:`tokenize` splits punctuation off words.
Every vocabulary starts with the same four specials, ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2,
``<unk>`` = 3, and :func:`encode` lays a batch out batch-first (its docstring has the picture).
"""

from collections import Counter
from dataclasses import dataclass
import hashlib
import inspect
import logging
import re

import numpy as np
import torch

from ..errors import UserError
from ..files import read_utf8
from .text import EOS, UNK, Vocab

log = logging.getLogger(__name__)

PAD, BOS = "<pad>", "<bos>"  # EOS and UNK are text.py's "<eos>" and "<unk>" (PTB's), the same strings
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIALS))  # pad = 0 so zero-filled tensors are padding
LEVELS = ("char", "word")


@dataclass(frozen=True)
class Pair:
    """One example: ``source`` -> ``target``, with any further columns of its line in ``extra``."""

    source: str
    target: str
    extra: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ reading


def read_pairs(path: str) -> list[Pair]:
    """The pairs of the TSV file ``path`` (format in the module docstring), in file order. A malformed
    line is a one-line UserError naming the file, the line and the fix."""
    fix = "give a UTF-8 file of SOURCE<TAB>TARGET lines (see rnnlab/data/pairs.py)"
    text = read_utf8(path, "pairs file", fix, "pairs.txt")
    pairs = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() and "\t" not in line:  # a lone tab is two empty columns, an error below
            continue
        where = f"pairs file {path} line {n}"
        if "\t" not in line:
            raise UserError(f"{where} has no tab: expected SOURCE<TAB>TARGET, got {_show(line)}; separate the source "
                            f"from the target with a tab character")
        source, target, *extra = line.split("\t")
        for column, name, value in ((1, "source", source), (2, "target", target)):
            if not value.strip():
                raise UserError(f"{where}: the {name} (column {column}) is empty; every line needs a non-blank "
                                f"source and target: fill it in or delete the line")
        pairs.append(Pair(source, target, tuple(extra)))
    if not pairs:
        raise UserError(f"pairs file {path} holds no pairs; {fix}")
    return pairs


def _show(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def split_by_source(pairs: list[Pair], valid_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, valid), each in the order of ``pairs``: a source goes to validation when a sha256 of the seed
    and the source text falls below ``valid_fraction``, so every translation of a sentence lands on the same
    side and no validation source was seen in training (as ``strokes.split_by_form`` does for forms)."""
    if not 0.0 < valid_fraction < 1.0:
        raise UserError(f"valid_fraction must be strictly between 0 and 1, got {valid_fraction}; 0.1 keeps 10 % "
                        f"of the source sentences to validate")

    def in_valid(source: str) -> bool:
        digest = hashlib.sha256(f"{seed}\t{source}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < valid_fraction * 2**64

    side = {source: in_valid(source) for source in {p.source for p in pairs}}
    train = [p for p in pairs if not side[p.source]]
    valid = [p for p in pairs if side[p.source]]
    if not train or not valid:
        empty = "training" if not train else "validation"
        raise UserError(f"splitting {len(pairs)} pairs of {len(side)} distinct sources at valid_fraction = "
                        f"{valid_fraction} (seed {seed}) leaves the {empty} side empty; give more pairs, or move "
                        f"valid_fraction {'down' if not train else 'up'}, or try another seed")
    log.info("split by source (sha256 of seed + source < %g -> validation): %d train pairs, %d validation pairs of "
             "%d sources", valid_fraction, len(train), len(valid), sum(side.values()))
    return train, valid


# ------------------------------------------------------------------------------------------ toy tasks

# Our choice: 20 letters, enough that sorting and reversing are not guessable, few enough to learn quickly.
ALPHABET = "abcdefghijklmnopqrst"
PLUS = "+"


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise UserError(f"rng must be a numpy.random.Generator, received {type(rng).__name__}: pass "
                        f"numpy.random.default_rng(seed)")


def _symbols(count: int, rng, min_length: int, max_length: int, alphabet: str) -> list[str]:
    """``count`` random strings over ``alphabet``, each of a length drawn uniformly in [min_length, max_length]."""
    _check_rng(rng)
    if not 1 <= min_length <= max_length:
        raise UserError(f"toy lengths need 1 <= min_length <= max_length, got min_length = {min_length}, "
                        f"max_length = {max_length}")
    if not alphabet:
        raise UserError("the alphabet is empty; give at least one symbol, for example alphabet='abcd'")
    letters = np.array(list(alphabet))
    lengths = rng.integers(min_length, max_length + 1, size=count)
    return ["".join(letters[rng.integers(0, len(letters), size=n)]) for n in lengths]


def copy_pairs(count: int, rng, min_length: int = 1, max_length: int = 10, alphabet: str = ALPHABET) -> list[Pair]:
    """Random strings over ``alphabet``; the target is the source itself."""
    return [Pair(s, s) for s in _symbols(count, rng, min_length, max_length, alphabet)]


def reverse_pairs(count: int, rng, min_length: int = 1, max_length: int = 10, alphabet: str = ALPHABET) -> list[Pair]:
    """Random strings over ``alphabet``; the target is the source backwards."""
    return [Pair(s, s[::-1]) for s in _symbols(count, rng, min_length, max_length, alphabet)]


def sort_pairs(count: int, rng, min_length: int = 1, max_length: int = 10, alphabet: str = ALPHABET) -> list[Pair]:
    """Random strings over ``alphabet``; the target is its characters in code-point order (Python's sorted)."""
    return [Pair(s, "".join(sorted(s))) for s in _symbols(count, rng, min_length, max_length, alphabet)]


def addition_pairs(count: int, rng, digits: int = 3) -> list[Pair]:
    """``"a+b"`` -> the decimal sum, a and b of exactly ``digits`` digits (leading digit 1-9, uniform otherwise):
    the addition task of Zaremba & Sutskever (2014, "Learning to Execute"), without the program around it."""
    _check_rng(rng)
    if digits < 1:
        raise UserError(f"addition needs digits >= 1, got {digits}")
    # Digit by digit rather than integers(10**(n-1), 10**n): any number of digits, not only int64's 18.
    lead = rng.integers(1, 10, size=(count, 2, 1))
    rest = rng.integers(0, 10, size=(count, 2, digits - 1))
    numbers = ["".join(map(str, row)) for row in np.concatenate([lead, rest], axis=2).reshape(count * 2, digits)]
    return [Pair(a + PLUS + b, str(int(a) + int(b))) for a, b in zip(numbers[0::2], numbers[1::2])]


TOY_TASKS = {"copy": copy_pairs, "reverse": reverse_pairs, "sort": sort_pairs, "addition": addition_pairs}


def _task(task: str):
    if task not in TOY_TASKS:
        raise UserError(f"unknown toy task {task!r}; the toy tasks are {', '.join(TOY_TASKS)}")
    return TOY_TASKS[task]


def toy_pairs(task: str, count: int, rng, **sizes) -> list[Pair]:
    """``count`` pairs of toy ``task`` from ``rng``; ``sizes`` are the task's own keywords (``min_length``,
    ``max_length``, ``alphabet`` for copy/reverse/sort, ``digits`` for addition)."""
    generate = _task(task)
    valid = [name for name in inspect.signature(generate).parameters if name not in ("count", "rng")]
    unknown = sorted(set(sizes) - set(valid))
    if unknown:
        raise UserError(f"toy task {task!r} takes {', '.join(valid)}, not {', '.join(unknown)}")
    if count < 0:
        raise UserError(f"count must be >= 0, got {count}")
    return generate(count, rng, **sizes)


# ------------------------------------------------------------------------------------------ curricula

# Zaremba & Sutskever (2014, §4): "none" trains at the target difficulty throughout (their baseline); "naive"
# starts at the easiest level and raises it one at a time; "mix" draws each example's difficulty uniformly
# from the easiest to the target; "combined" draws each example either from the naive level or from the mix.
STRATEGIES = ("none", "naive", "mix", "combined")
# The paper raises the naive level when learning stops improving (the authors' main.lua: validation accuracy
# over 95 %, or training accuracy below its value 5 evaluations back), which depends on the model. To keep
# the schedule a pure function of the step, we raise it every NAIVE_STEPS_PER_LEVEL steps: our own choice.
NAIVE_STEPS_PER_LEVEL = 1000
# The paper does not give the proportion; the authors' code (wojciechz/learning_to_execute,
# utils/strategies.lua, blend()) takes an example from the mix when random(5) == 1, else from the naive level.
COMBINED_MIX_PROBABILITY = 1 / 5


def _uniform(seed: int, step: int, index: int, purpose: str) -> float:
    """A number in [0, 1) fixed by its arguments: sha256, so it is the same on every machine and version."""
    digest = hashlib.sha256(f"{seed}:{step}:{index}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def naive_level(step: int, target: int, lowest: int = 1, steps_per_level: int = NAIVE_STEPS_PER_LEVEL) -> int:
    """The naive curriculum's difficulty at ``step``: ``lowest`` at step 0, one more every ``steps_per_level``
    steps, then ``target`` for good."""
    if steps_per_level < 1:
        raise UserError(f"steps_per_level must be >= 1, got {steps_per_level}")
    return min(target, lowest + step // steps_per_level)


def difficulty(strategy: str, target: int, step: int, seed: int, index: int, lowest: int = 1,
               steps_per_level: int = NAIVE_STEPS_PER_LEVEL) -> int:
    """The difficulty, in [lowest, target], of example ``index`` of training step ``step`` under ``strategy``
    (see STRATEGIES): a pure function of its arguments, so a resumed training regenerates the same batches."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown curriculum strategy {strategy!r}; the strategies are {', '.join(STRATEGIES)}")
    if not 1 <= lowest <= target:
        raise UserError(f"a curriculum needs 1 <= lowest <= target, got lowest = {lowest}, target = {target}")
    naive = naive_level(step, target, lowest, steps_per_level)
    mix = lowest + int(_uniform(seed, step, index, "mix") * (target - lowest + 1))
    if strategy == "combined":
        return mix if _uniform(seed, step, index, "combined") < COMBINED_MIX_PROBABILITY else naive
    return {"none": target, "naive": naive, "mix": mix}[strategy]


def curriculum_pairs(task: str, count: int, rng, strategy: str, step: int, seed: int, start: int = 0,
                     steps_per_level: int = NAIVE_STEPS_PER_LEVEL, **sizes) -> list[Pair]:
    """``count`` pairs of ``task`` for training step ``step``, pair i at ``difficulty(..., index=start + i)``.
    The difficulty is the number of digits for addition (from 1 to ``digits``) and the longest a string may
    be for copy/reverse/sort (from ``min_length`` to ``max_length``); the rest of ``sizes`` pass through."""
    generate = _task(task)
    defaults = {k: p.default for k, p in inspect.signature(generate).parameters.items() if k not in ("count", "rng")}
    sizes = {**defaults, **sizes}
    key, lowest = ("digits", 1) if task == "addition" else ("max_length", sizes.get("min_length", 1))
    levels = [difficulty(strategy, sizes[key], step, seed, start + i, lowest, steps_per_level) for i in range(count)]
    out = [None] * count
    for level in sorted(set(levels)):  # one call per level, in a fixed order: the same rng, the same pairs
        where = [i for i, lv in enumerate(levels) if lv == level]
        for i, pair in zip(where, toy_pairs(task, len(where), rng, **{**sizes, key: level})):
            out[i] = pair
    return out


# ------------------------------------------------------------------------------ tokens and vocabularies

# Words are runs of letters/digits, joined by inner apostrophes or hyphens ("don't", "aujourd'hui",
# "peut-être"); any other non-space character is a token of its own ("Va !" -> "Va", "!"). Simpler than
# the PyTorch seq2seq tutorial's normalisation, which also drops accents and every other symbol.
WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def tokenize(text: str, level: str, lower: bool = False) -> list[str]:
    """``text`` as tokens: its characters (``char``) or its words and punctuation (``word``); ``lower``
    lower-cases first (the tutorial's choice: a smaller vocabulary, at the price of case in the output)."""
    if level not in LEVELS:
        raise UserError(f"unknown token level {level!r}; the levels are {', '.join(LEVELS)}")
    text = text.lower() if lower else text
    return list(text) if level == "char" else WORD.findall(text)


def detokenize(tokens: list[str], level: str) -> str:
    """Tokens back to text for printing: characters joined as they are, words with one space between."""
    return ("" if level == "char" else " ").join(tokens)


def pair_vocab(texts, level: str, min_count: int = 1, lower: bool = False) -> Vocab:
    """A vocabulary of the tokens of ``texts`` (strings) seen at least ``min_count`` times: the specials
    first (``<pad>`` = 0, ``<bos>``, ``<eos>``, ``<unk>``), then by frequency, ties alphabetically."""
    if min_count < 1:
        raise UserError(f"min_count must be >= 1, got {min_count}")
    counts = Counter(t for text in texts for t in tokenize(text, level, lower))
    kept = sorted((t for t, c in counts.items() if c >= min_count and t not in SPECIALS), key=lambda t: (-counts[t], t))
    return Vocab([*SPECIALS, *kept], level)  # Vocab's kinds "char" and "word" are our levels


# ------------------------------------------------------------------------------------------ tensors


@dataclass(frozen=True)
class EncodedPairs:
    """Padded ids of pairs, batch-first (see :func:`encode`): ``sources`` (B, S), ``source_lengths`` (B,),
    ``decoder_inputs`` and ``decoder_targets`` (B, T), ``target_lengths`` (B,)."""

    sources: torch.Tensor
    source_lengths: torch.Tensor
    decoder_inputs: torch.Tensor
    decoder_targets: torch.Tensor
    target_lengths: torch.Tensor

    def __len__(self) -> int:
        return self.sources.size(0)

    def batch(self, index: torch.Tensor) -> "EncodedPairs":
        """Rows ``index``, cut to their longest source and target."""
        s, t = int(self.source_lengths[index].max()), int(self.target_lengths[index].max())
        return EncodedPairs(self.sources[index, :s], self.source_lengths[index], self.decoder_inputs[index, :t],
                            self.decoder_targets[index, :t], self.target_lengths[index])


def _padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    out = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, lengths


def encode(pairs: list[Pair], source_vocab: Vocab, target_vocab: Vocab, level: str,
           lower: bool = False) -> EncodedPairs:
    """Ids of ``pairs``, padded with ``<pad>`` = 0; a token missing from a vocabulary becomes ``<unk>``.
    Sources end with ``<eos>`` (Sutskever et al. 2014; the PyTorch tutorial), so the encoder sees where they
    stop. The decoder reads ``<bos>`` + target and predicts target + ``<eos>``, one step ahead::

        source "abc", target "xy"       sources          a  b  c  <eos>    source_lengths 4
                                        decoder_inputs   <bos>  x  y       target_lengths 3
                                        decoder_targets  x  y  <eos>
        a shorter row is padded         sources          d  <eos> <pad> <pad>
                                        decoder_inputs   <bos> z <pad>   decoder_targets  z <eos> <pad>
    """
    if not pairs:
        raise UserError("no pairs to encode; give at least one")
    for vocab, side in ((source_vocab, "source"), (target_vocab, "target")):
        if tuple(vocab.tokens[: len(SPECIALS)]) != SPECIALS:
            raise UserError(f"the {side} vocabulary must start with {', '.join(SPECIALS)} (build it with pair_vocab), "
                            f"got {vocab.tokens[: len(SPECIALS)]}")

    def ids(text: str, vocab: Vocab) -> list[int]:
        return vocab.encode(tokenize(text, level, lower), unknown=UNK).tolist()

    sources, source_lengths = _padded([ids(p.source, source_vocab) + [EOS_ID] for p in pairs])
    targets = [ids(p.target, target_vocab) for p in pairs]
    decoder_inputs, target_lengths = _padded([[BOS_ID] + t for t in targets])
    decoder_targets, _ = _padded([t + [EOS_ID] for t in targets])
    return EncodedPairs(sources, source_lengths, decoder_inputs, decoder_targets, target_lengths)


def decode(ids, vocab: Vocab, level: str) -> str:
    """Ids (a decoder's output row) as text: up to the first ``<eos>``, without ``<pad>`` or ``<bos>``."""
    tokens = []
    for i in (int(i) for i in ids):
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            tokens.append(vocab.tokens[i])
    return detokenize(tokens, level)
