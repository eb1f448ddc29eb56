"""Reading lines of ink with a recogniser (``recognizer.py``): features, batches, decoding, and the error
rates that score it.

Decoding is the best path (``beam`` 0: the likeliest label at each frame, collapsed) or CTC prefix beam
search of ``beam`` prefixes, with the recogniser's character n-gram weighed in by ``lm_weight``
(``ctc.beam_search``). The error rates are edit distances (rapidfuzz's Levenshtein) summed over lines and
divided by the reference's length: characters for CER, whitespace-separated words for WER, as the
handwriting-recognition literature reports them.
"""

from dataclasses import dataclass
import math

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein

from . import ctc, ink
from .data.text import Vocab

# Labels below this log-probability at a frame are not tried by the beam search: 1e-4 of the mass, far
# below what a beam of 8 keeps (measured on IAM-OnDB validation: the same CER as no pruning, 20x faster).
PRUNE_LOGP = math.log(1e-4)


@dataclass(frozen=True)
class Decoder:
    """How log-probabilities become text: the best path (``beam`` 0), or a beam of ``beam`` prefixes with
    the language model at ``lm_weight`` (0: none)."""

    beam: int = 0
    lm_weight: float = 0.0

    def __str__(self) -> str:
        if not self.beam:
            return "best path"
        return f"beam {self.beam}" + (f", language model x {self.lm_weight:g}" if self.lm_weight else "")


def batch_features(lines: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature arrays ``(T_i, F)`` -> a zero-padded ``(B, T, F)`` batch and the lengths ``(B,)``."""
    lengths = torch.tensor([len(f) for f in lines])
    batch = torch.zeros(len(lines), int(lengths.max()), ink.FEATURES)
    for i, f in enumerate(lines):
        batch[i, : len(f)] = torch.from_numpy(f)
    return batch, lengths


def encode_texts(texts: list[str], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> CTC targets ``(B, S)`` (a character's id + 1: 0 is the blank) and their lengths ``(B,)``."""
    lengths = torch.tensor([len(t) for t in texts])
    targets = torch.zeros(len(texts), max(1, int(lengths.max())), dtype=torch.long)
    for i, text in enumerate(texts):
        targets[i, : len(text)] = vocab.encode(list(text)) + 1
    return targets, lengths


def needed_frames(text: str) -> int:
    """The fewest frames a CTC alignment of ``text`` takes: a label each, and a blank between repeats."""
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


def decode(log_probs: torch.Tensor, vocab: Vocab, decoder: Decoder, lm=None) -> str:
    """The text of one line's ``(T, 1 + A)`` log-probabilities."""
    if not decoder.beam:
        labels = ctc.greedy(log_probs)
    else:
        weight = decoder.lm_weight if lm is not None else 0.0
        labels = ctc.beam_search(log_probs, decoder.beam, lm.logp if weight else None, weight, PRUNE_LOGP)
    return "".join(vocab.tokens[label - 1] for label in labels)


@torch.inference_mode()
def read(model, lines: list[np.ndarray], vocab: Vocab, decoder: Decoder, batch_size: int = 32) -> list[str]:
    """The texts of ``lines`` (``ink.features`` arrays), read in batches of similar lengths."""
    model.eval()
    device = next(model.parameters()).device
    lm = model.language_model() if decoder.beam and decoder.lm_weight else None
    order = sorted(range(len(lines)), key=lambda i: len(lines[i]))  # similar lengths together: little padding
    texts: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        picked = order[start : start + batch_size]
        features, lengths = batch_features([lines[i] for i in picked])
        log_probs, frames = model(features.to(device), lengths.to(device))
        for i, row, count in zip(picked, log_probs.cpu(), frames.tolist()):
            texts[i] = decode(row[:count], vocab, decoder, lm)
    return [texts[i] for i in range(len(lines))]


def edits(references: list[str], hypotheses: list[str]) -> tuple[int, int, int, int]:
    """``(character edits, reference characters, word edits, reference words)`` summed over the lines: sums,
    so that the parts of a job's processes add up (:func:`rates`)."""
    assert len(references) == len(hypotheses), (len(references), len(hypotheses))
    return (sum(Levenshtein.distance(r, h) for r, h in zip(references, hypotheses)),
            sum(len(r) for r in references),
            sum(Levenshtein.distance(r.split(), h.split()) for r, h in zip(references, hypotheses)),
            sum(len(r.split()) for r in references))


def rates(char_edits: int, chars: int, word_edits: int, words: int) -> dict:
    """The error rates of :func:`edits`' sums."""
    return {"cer": char_edits / max(chars, 1), "wer": word_edits / max(words, 1)}


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    """Character and word error rates of ``hypotheses`` against ``references`` (line by line)."""
    return rates(*edits(references, hypotheses))
