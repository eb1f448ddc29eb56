"""Greedy and beam-search decoding: width 1 is greedy, and on a hand-made model whose likeliest sequence
greedy misses, the beam finds what a brute-force search over every sequence finds, with and without the
length penalty."""

import itertools
import math

import pytest
import torch

from rnnlab.decoding import beam_search, greedy, length_penalty
from rnnlab.encoder_decoder import Seq2Seq

BOS, EOS = 1, 2


class Table:
    """A model whose next-token distribution is a fixed function of the tokens so far (no source): the
    interface of ``Seq2Seq.encode`` / ``step``, with the prefix carried as the state."""

    def __init__(self, table: dict, vocab: int):
        self.table, self.vocab = table, vocab

    def eval(self):
        return self

    def encode(self, source, lengths):  # the state in torch's layout (layers, B, ...): the tokens so far
        return torch.zeros(len(source), 1, 1), torch.ones(len(source), 1, dtype=torch.bool), \
            torch.zeros(1, len(source), 0, dtype=torch.long)

    def step(self, tokens, memory, mask, state):
        state = torch.cat([state[0], tokens[:, None]], dim=1)
        rows = []
        for prefix in state.tolist():
            probs = self.table.get(tuple(prefix[1:]), {EOS: 1.0})  # prefix without <bos>
            rows.append([math.log(probs.get(t, 1e-12)) for t in range(self.vocab)])
        return torch.tensor(rows), None, state[None]


# greedy takes 3 (0.6) and then has only poor continuations; 4 (0.4) leads to a sure end: 0.4 > 0.6 * 0.5
TABLE = {(): {3: 0.6, 4: 0.4}, (3,): {EOS: 0.5, 3: 0.25, 4: 0.25}, (4,): {EOS: 1.0},
         (3, 3): {EOS: 1.0}, (3, 4): {EOS: 1.0}}


def brute_force(model, max_length, alpha):
    """The best-scoring finished sequence over every sequence of up to ``max_length`` tokens."""
    best, best_score = None, -math.inf
    for n in range(1, max_length + 1):
        for seq in itertools.product(range(3, model.vocab), repeat=n - 1):
            tokens, logp, state = list(seq) + [EOS], 0.0, torch.zeros(1, 1, 0, dtype=torch.long)
            previous = BOS
            for token in tokens:
                row, _, state = model.step(torch.tensor([previous]), None, None, state)
                logp += float(row[0, token])
                previous = token
            score = logp / length_penalty(len(seq), alpha)
            if score > best_score:
                best, best_score = list(seq), score
    return best


def test_the_beam_finds_the_best_sequence_that_greedy_misses():
    model = Table(TABLE, 5)
    source = torch.zeros(1, 1, dtype=torch.long)
    assert greedy(model, source, torch.tensor([1]), BOS, EOS, 5)[0].tokens == [3]
    found = beam_search(model, source[0], 1, BOS, EOS, 5, width=2)
    assert found.tokens == [4] == brute_force(model, 3, 0.0) and found.finished
    assert found.logp == pytest.approx(math.log(0.4))


def test_the_length_penalty_changes_the_best_sequence_as_brute_force_says():
    # two finished sequences: [5] at p 0.3, [3, 3, 3] at p 0.7^3 * 0.9 = 0.309: a penalty favours the long one
    table = {(): {5: 0.3, 3: 0.7}, (5,): {EOS: 1.0}, (3,): {3: 1.0}, (3, 3): {3: 1.0}, (3, 3, 3): {EOS: 0.9, 3: 0.1}}
    table[()] = {5: 0.32, 3: 0.68}
    table[(3,)] = {3: 0.7, EOS: 0.3}
    table[(3, 3)] = {3: 0.7, EOS: 0.3}
    model = Table(table, 6)
    source = torch.zeros(1, dtype=torch.long)
    for alpha in (0.0, 0.6, 2.0):
        expected = brute_force(model, 5, alpha)
        assert beam_search(model, source, 1, BOS, EOS, 6, width=6, alpha=alpha).tokens == expected
    assert brute_force(model, 5, 0.0) != brute_force(model, 5, 2.0)  # the case tests something


def test_width_1_is_greedy_on_a_real_model():
    torch.manual_seed(0)
    model = Seq2Seq(8, 8, embedding_size=6, hidden_size=8, attention="additive").eval()
    sources = torch.randint(3, 8, (6, 5))
    lengths = torch.tensor([5, 3, 4, 1, 2, 5])
    decoded = greedy(model, sources, lengths, BOS, EOS, 7)
    for i, hypothesis in enumerate(decoded):
        beam = beam_search(model, sources[i], int(lengths[i]), BOS, EOS, 7, width=1)
        assert beam.tokens == hypothesis.tokens and beam.finished == hypothesis.finished
        assert beam.logp == pytest.approx(hypothesis.logp, abs=1e-5)
        torch.testing.assert_close(beam.attention, hypothesis.attention)


def test_the_cap_stops_an_endless_sequence():
    model = Table({(): {3: 1.0}, (3,): {3: 1.0}, (3, 3): {3: 1.0}, (3, 3, 3): {3: 1.0}}, 4)
    source = torch.zeros(1, dtype=torch.long)
    capped = beam_search(model, source, 1, BOS, EOS, 3, width=2)
    assert capped.tokens == [3, 3, 3] and not capped.finished
    assert greedy(model, source[None], torch.tensor([1]), BOS, EOS, 3)[0].finished is False
