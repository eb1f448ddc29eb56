"""Connectionist temporal classification (Graves, Fernández, Gomez & Schmidhuber 2006; on online handwriting,
Graves et al. 2009): a network's per-step distributions over the alphabet plus a blank, read as text.

An alignment is one label per step; collapsing it (repeats merged, then blanks dropped) gives a text, and
the text's probability is the sum over every alignment that collapses to it::

    steps        1  2  3  4  5  6
    alignment    h  h  -  i  -  -     ->  "hi"       (- is the blank, id BLANK)
    alignment    -  h  i  i  -  -     ->  "hi"
    alignment    h  -  h  i  -  -     ->  "hhi"      (a blank between two h keeps both)

The loss is torch's (``F.ctc_loss``, in log space, the forward-backward sum over alignments), per sequence
and never masked: a text no alignment can reach (longer than the steps allow) has an infinite loss, which
the training loop counts and skips like any non-finite step. Decoding: :func:`greedy` takes the likeliest
label of each step (the best path); :func:`beam_search` keeps the ``width`` likeliest prefixes (prefix beam
search, Hannun et al. 2014), each with its probability of ending in a blank and in a label, optionally
fused with a character language model: ``score = log p(text | strokes) + weight * log p_lm(text)``.
"""

from collections.abc import Callable
import math

import torch
from torch.nn import functional as F

BLANK = 0  # the blank's id: the alphabet's labels are 1..C-1


def loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
         target_lengths: torch.Tensor) -> torch.Tensor:
    """Nats per sequence ``(B,)``: ``log_probs`` ``(B, T, C)`` (log-softmax over the labels and the blank),
    ``targets`` ``(B, S)`` label ids (padding past ``target_lengths`` is ignored), ``input_lengths`` the real
    steps of each sequence. Infinite where no alignment reaches the target."""
    return F.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, blank=BLANK,
                      reduction="none", zero_infinity=False)


def collapse(alignment) -> list[int]:
    """An alignment's text: repeats merged, then blanks dropped."""
    text, previous = [], None
    for label in alignment:
        if label != previous and label != BLANK:
            text.append(label)
        previous = label
    return text


def greedy(log_probs: torch.Tensor) -> list[int]:
    """The best path's text: the likeliest label at each of the ``(T, C)`` steps, collapsed."""
    return collapse(log_probs.argmax(-1).tolist())


def beam_search(log_probs: torch.Tensor, width: int = 8, lm: Callable | None = None,
                weight: float = 0.0, prune: float = -math.inf) -> list[int]:
    """The likeliest text of ``log_probs`` ``(T, C)`` among the ``width`` prefixes kept at each step.

    ``lm(prefix, label)`` is a language model's log-probability of ``label`` after the tuple ``prefix``; it
    weighs in, times ``weight``, each time a prefix grows by a label. Wide enough (every prefix kept) it is
    the likeliest text exactly. At width 1 it is not the best path (:func:`greedy`): it keeps the prefix
    whose alignments sum highest, which differs from the likeliest single alignment's in about one random
    lattice in eight (T = 5, three labels; tests/test_ctc.py).

    ``prune``: labels whose log-probability at a step is below it are not tried there (a step where the blank
    has 0.999 tries a handful of labels, not the alphabet); the default tries every label.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    steps = log_probs.double().tolist()
    # prefix -> (log p of the prefix with its alignment ending in a blank, ... ending in its last label,
    #            the language model's log-probability of the prefix)
    beams = {(): (0.0, -math.inf, 0.0)}
    for row in steps:
        grown: dict = {}
        candidates = [c for c in range(len(row)) if c != BLANK and row[c] >= prune]

        def add(prefix, blank, label, lm_score):
            old = grown.get(prefix, (-math.inf, -math.inf, lm_score))
            grown[prefix] = (_logaddexp(old[0], blank), _logaddexp(old[1], label), lm_score)

        for prefix, (blank, label, lm_score) in beams.items():
            total = _logaddexp(blank, label)
            add(prefix, total + row[BLANK], -math.inf, lm_score)  # a blank: the same text
            if prefix:  # the last label again: merged into it, unless a blank came between
                add(prefix, -math.inf, label + row[prefix[-1]], lm_score)
            for c in candidates:
                extended = prefix + (c,)
                via = blank if prefix and c == prefix[-1] else total  # a repeat needs a blank between
                extra = weight * lm(prefix, c) if lm is not None and weight else 0.0
                add(extended, -math.inf, via + row[c], lm_score + extra)
        beams = dict(sorted(grown.items(), key=lambda kv: -_score(kv[1]))[:width])
    return list(max(beams.items(), key=lambda kv: _score(kv[1]))[0])


def _score(entry: tuple) -> float:
    blank, label, lm_score = entry
    return _logaddexp(blank, label) + lm_score


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))
