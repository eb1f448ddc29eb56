"""A character n-gram language model (interpolated Witten-Bell, Witten & Bell 1991), trained on the
recogniser's training transcriptions and fused with CTC's beam search (``ctc.beam_search``).

The probability of a label after a context interpolates the context's counts with the next shorter
context's probability, weighted by how many distinct labels the context has been seen with::

    p(w | h) = (c(h w) + N(h) p(w | h')) / (c(h) + N(h))      h' = h without its oldest label
    p(w | ())  = (c(w) + N(()) / V) / (c() + N(()))            V labels; an unseen context has c = N = 0

so no label ever has probability zero and each distribution sums to one. Lines start with ``order - 1``
start symbols (``START``, the CTC blank's id, which is never a label). Only the full-length n-grams and
their counts are stored (``to_tensors``: the recogniser keeps them as buffers beside its weights, so the
run folder holds its language model); the shorter contexts' counts are their sums.
"""

from collections import Counter
import math

import numpy as np
import torch

START = 0  # the start-of-line symbol: CTC's blank, which no text contains
MAX_ORDER = 7  # contexts of 6 characters (past what a transcription corpus supports): an n-gram of labels in
# base 256 still fits in one int64
MAX_LABELS = 256  # labels are stored as uint8 (the recogniser's alphabet has 80 characters and the blank)


class CharNgram:
    """``logp(prefix, label)``: log p(label | the last order - 1 labels of ``prefix``) over labels 1..labels."""

    def __init__(self, order: int, labels: int, table: np.ndarray, counts: np.ndarray):
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be in 1..{MAX_ORDER}, got {order}")
        if not 1 <= labels < MAX_LABELS:
            raise ValueError(f"labels must be in 1..{MAX_LABELS - 1}, got {labels}")
        self.order, self.labels = order, labels
        table = np.asarray(table, dtype=np.int64).reshape(-1, order)  # the full-length n-grams (context + label)
        counts = np.asarray(counts, dtype=np.int64)
        kept = counts > 0  # a stored model's spare rows hold zero counts
        self.table, self.counts = table[kept], counts[kept]
        self.base = labels + 1  # an n-gram as one integer: its labels (and START, 0) as digits in this base
        # For each context length (0 .. order - 1): {context and label as one integer: count} and
        # {context as one integer: (its count, the distinct labels after it)}; the shorter contexts' counts
        # are sums over the longer ones that end in them.
        self.follow, self.totals = [], []
        for length in range(order):
            keys = _digits(self.table[:, order - 1 - length :], self.base)
            unique, where = np.unique(keys, return_inverse=True)
            summed = np.bincount(where, weights=self.counts, minlength=len(unique)).astype(np.int64)
            contexts, at = np.unique(unique // self.base, return_inverse=True)
            total = np.bincount(at, weights=summed, minlength=len(contexts)).astype(np.int64)
            distinct = np.bincount(at, minlength=len(contexts))
            self.follow.append(dict(zip(unique.tolist(), summed.tolist())))
            self.totals.append(dict(zip(contexts.tolist(), zip(total.tolist(), distinct.tolist()))))
        self._cache: dict = {}

    @classmethod
    def train(cls, texts, order: int, labels: int) -> "CharNgram":
        """Counts of ``texts`` (sequences of label ids in 1..labels)."""
        grams = Counter()
        for text in texts:
            padded = [START] * (order - 1) + list(text)
            for end in range(order - 1, len(padded)):
                grams[tuple(padded[end - order + 1 : end + 1])] += 1
        return cls(order, labels, np.array(list(grams), dtype=np.int64), np.array(list(grams.values())))

    @property
    def grams(self) -> dict:
        """``{n-gram (a tuple of order labels): count}``."""
        return {tuple(row): count for row, count in zip(self.table.tolist(), self.counts.tolist())}

    def logp(self, prefix: tuple, label: int) -> float:
        """log p(``label`` | ``prefix``), the prefix a tuple of label ids (start symbols implied before it)."""
        context = tuple([START] * (self.order - 1 - len(prefix)) + list(prefix[-(self.order - 1):])) \
            if self.order > 1 else ()
        key = (context, label)
        if key not in self._cache:
            self._cache[key] = math.log(self._p(context, label))
        return self._cache[key]

    def _p(self, context: tuple, label: int) -> float:
        p = 1.0 / self.labels
        for length in range(len(context) + 1):  # the shortest context first, each longer one on top of it
            code = 0
            for digit in context[len(context) - length :]:
                code = code * self.base + digit
            if code not in self.totals[length]:  # never seen: nor is any longer context ending in it
                break
            total, distinct = self.totals[length][code]
            p = (self.follow[length].get(code * self.base + label, 0) + distinct * p) / (total + distinct)
        return p

    def to_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The n-grams ``(N, order)`` uint8 and their counts ``(N,)`` int64, sorted: a deterministic file."""
        order = np.lexsort(self.table.T[::-1])
        return (torch.from_numpy(self.table[order].astype(np.uint8)), torch.from_numpy(self.counts[order].copy()))

    @classmethod
    def from_tensors(cls, grams: torch.Tensor, counts: torch.Tensor, labels: int) -> "CharNgram":
        """The model :meth:`to_tensors` stored (rows with a zero count are padding, and skipped)."""
        return cls(grams.size(1), labels, grams.numpy(), counts.numpy())


def _digits(rows: np.ndarray, base: int) -> np.ndarray:
    """Each row of label ids as one integer, its labels the digits in ``base`` (the first the most significant)."""
    code = np.zeros(len(rows), dtype=np.int64)
    for column in rows.T:
        code = code * base + column
    return code
