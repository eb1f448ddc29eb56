"""rnnlab.ctc against brute force on tiny lattices: the loss is minus the log of the summed probability of
every alignment that collapses to the target (infinite when none does), the best path is the likeliest
alignment collapsed, a wide beam finds the likeliest text, width 1 is not always the best path, and a
language model's weight moves the beam towards the text it prefers."""

import itertools
import math

import pytest
import torch

from rnnlab.ctc import BLANK, beam_search, collapse, greedy, loss


def lattice(steps: int, labels: int, seed: int) -> torch.Tensor:
    return torch.randn(steps, labels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).mul(2) \
        .log_softmax(-1)


def text_probabilities(log_probs: torch.Tensor) -> dict:
    """Every text of a ``(T, C)`` lattice with its probability: the sum over all C^T alignments."""
    texts = {}
    for path in itertools.product(range(log_probs.size(1)), repeat=log_probs.size(0)):
        p = math.exp(sum(log_probs[t, c].item() for t, c in enumerate(path)))
        key = tuple(collapse(path))
        texts[key] = texts.get(key, 0.0) + p
    return texts


def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([1, 1, BLANK, 2, BLANK, BLANK]) == [1, 2]
    assert collapse([1, BLANK, 1, 2, 2]) == [1, 1, 2]
    assert collapse([BLANK, BLANK]) == []


@pytest.mark.parametrize("seed", range(6))
def test_the_loss_is_the_brute_force_sum_over_alignments(seed):
    steps, labels = 5, 3
    log_probs = lattice(steps, labels, seed)
    texts = text_probabilities(log_probs)
    targets = [(1,), (1, 2), (2, 2), (1, 2, 1), (2, 1, 2, 1, 2), (1, 1, 1, 1)]
    batch = torch.zeros(len(targets), 5, dtype=torch.long)
    for i, t in enumerate(targets):
        batch[i, : len(t)] = torch.tensor(t)
    got = loss(log_probs.expand(len(targets), -1, -1), batch, torch.full((len(targets),), steps),
               torch.tensor([len(t) for t in targets]))
    for target, nats in zip(targets, got.tolist()):
        expected = -math.log(texts[target]) if target in texts else math.inf
        assert nats == pytest.approx(expected, rel=1e-9) if math.isfinite(expected) else nats == math.inf
    assert (1, 1, 1, 1) not in texts and got[-1] == math.inf  # 4 labels and the 3 blanks between: 7 steps


def test_greedy_is_the_likeliest_alignment_collapsed():
    probs = torch.tensor([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert greedy(probs.log()) == [1, 1, 2]
    for seed in range(20):
        log_probs = lattice(4, 3, seed)
        best = max(itertools.product(range(3), repeat=4), key=lambda p: sum(log_probs[t, c] for t, c in enumerate(p)))
        assert greedy(log_probs) == collapse(best)


@pytest.mark.parametrize("seed", range(40))
def test_a_wide_beam_finds_the_likeliest_text(seed):
    log_probs = lattice(4, 3, seed)
    texts = text_probabilities(log_probs)
    assert tuple(beam_search(log_probs, width=100)) == max(texts, key=texts.get)


def test_width_1_keeps_the_likeliest_prefix_which_is_not_always_the_best_path():
    differ = sum(beam_search(lattice(5, 3, seed), width=1) != greedy(lattice(5, 3, seed)) for seed in range(300))
    assert 0.05 < differ / 300 < 0.25  # the module docstring's "about one in eight"


def test_a_language_model_moves_the_beam_by_its_weight():
    log_probs = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.1, 0.1]]).log()  # "1" likelier than "2"
    prefers_two = lambda prefix, label: 0.0 if label == 2 else math.log(0.01)  # noqa: E731
    assert beam_search(log_probs, width=4) == [1]
    assert beam_search(log_probs, width=4, lm=prefers_two, weight=0.0) == [1]
    assert beam_search(log_probs, width=4, lm=prefers_two, weight=1.0) == [2]
    with pytest.raises(ValueError, match="width must be >= 1"):
        beam_search(log_probs, width=0)
