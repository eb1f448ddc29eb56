"""The character n-gram: proper distributions, Witten-Bell's formula computed by hand, and its storage."""

import math
import random

import numpy as np
import pytest
import torch

from rnnlab.ngram import START, CharNgram


def corpus(seed=0, lines=40, labels=5):
    rng = random.Random(seed)
    return [[rng.randint(1, labels) for _ in range(rng.randint(1, 12))] for _ in range(lines)]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_gives_a_distribution_over_the_labels(order):
    lm = CharNgram.train(corpus(), order, 5)
    rng = random.Random(1)
    for _ in range(30):  # seen and unseen contexts, shorter and longer than the order
        prefix = tuple(rng.randint(1, 5) for _ in range(rng.randint(0, 7)))
        total = sum(math.exp(lm.logp(prefix, label)) for label in range(1, 6))
        assert total == pytest.approx(1.0, abs=1e-12)
        assert all(lm.logp(prefix, label) > -math.inf for label in range(1, 6))


def test_witten_bell_by_hand():
    # texts "ab" and "aa" over the labels a=1, b=2, c=3, order 2: bigrams (S a) (a b) (S a) (a a)
    lm = CharNgram.train([[1, 2], [1, 1]], 2, 3)
    unigram = {1: (3 + 2 / 3) / (4 + 2), 2: (1 + 2 / 3) / (4 + 2), 3: (0 + 2 / 3) / (4 + 2)}  # c() = 4, N(()) = 2
    assert sum(unigram.values()) == pytest.approx(1.0)
    # after "a": seen a once and b once -> c(a) = 2, N(a) = 2
    for label in (1, 2, 3):
        seen = {1: 1, 2: 1}.get(label, 0)
        assert math.exp(lm.logp((1,), label)) == pytest.approx((seen + 2 * unigram[label]) / (2 + 2))
    # at the start: S was followed by a twice -> c(S) = 2, N(S) = 1
    assert math.exp(lm.logp((), 1)) == pytest.approx((2 + 1 * unigram[1]) / (2 + 1))
    # after "c", never seen: the unigram
    assert math.exp(lm.logp((3,), 2)) == pytest.approx(unigram[2])


def test_it_prefers_the_texts_it_was_trained_on():
    lm = CharNgram.train([[1, 2, 3, 4]] * 10 + [[4, 3, 2, 1]], 3, 4)

    def score(text):
        return sum(lm.logp(tuple(text[:i]), text[i]) for i in range(len(text)))

    assert score([1, 2, 3, 4]) > score([4, 3, 2, 1]) > score([2, 4, 1, 3])


def test_the_tensors_it_is_stored_as_give_it_back_exactly():
    lm = CharNgram.train(corpus(3), 4, 5)
    grams, counts = lm.to_tensors()
    assert grams.dtype == torch.uint8 and counts.dtype == torch.int64 and grams.shape == (len(lm.grams), 4)
    padded_grams = torch.cat([grams, torch.zeros(3, 4, dtype=torch.uint8)])  # the buffers' spare rows
    padded_counts = torch.cat([counts, torch.zeros(3, dtype=torch.int64)])
    again = CharNgram.from_tensors(padded_grams, padded_counts, 5)
    assert again.grams == lm.grams
    for prefix in [(), (1,), (2, 3), (5, 5, 5, 1)]:
        for label in range(1, 6):
            assert again.logp(prefix, label) == lm.logp(prefix, label)


def test_lines_start_after_start_symbols():
    lm = CharNgram.train([[2, 3]], 3, 3)
    assert lm.grams == {(START, START, 2): 1, (START, 2, 3): 1}


@pytest.mark.parametrize("order, labels", [(0, 3), (8, 3), (2, 0), (2, 256)])
def test_bad_sizes_are_refused(order, labels):
    with pytest.raises(ValueError):
        CharNgram(order, labels, np.zeros((0, max(order, 1))), np.zeros(0))
