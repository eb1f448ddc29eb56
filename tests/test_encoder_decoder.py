"""The sequence-to-sequence model: padding changes nothing (a padded batch = each pair alone), attention
weights are a distribution over the real source positions, and teacher forcing = decoding step by step."""

import itertools

import pytest
import torch

from rnnlab.encoder_decoder import Seq2Seq

CONFIGS = list(itertools.product(["additive", "multiplicative", "none"], [True, False], ["lstm", "gru"], [1, 2]))


def model(attention, bi, cell, layers, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(9, 7, embedding_size=5, hidden_size=6, num_layers=layers, cell=cell,
                   bidirectional_encoder=bi, attention=attention).eval()


def batch(pairs):
    """Pairs of token lists -> padded source (B, S), lengths, decoder inputs (B, T) (pad 0)."""
    source = torch.zeros(len(pairs), max(len(s) for s, _ in pairs), dtype=torch.long)
    inputs = torch.zeros(len(pairs), max(len(t) for _, t in pairs), dtype=torch.long)
    for i, (s, t) in enumerate(pairs):
        source[i, : len(s)] = torch.tensor(s)
        inputs[i, : len(t)] = torch.tensor(t)
    return source, torch.tensor([len(s) for s, _ in pairs]), inputs


PAIRS = [([3, 4, 5, 6, 7], [1, 2, 3]), ([8], [1, 4, 4, 5, 6, 2]), ([2, 2, 3], [1])]


@pytest.mark.parametrize("attention, bi, cell, layers", CONFIGS)
def test_a_padded_batch_gives_what_each_pair_gives_alone(attention, bi, cell, layers):
    m = model(attention, bi, cell, layers)
    source, lengths, inputs = batch(PAIRS)
    logits, weights = m(source, (lengths, inputs))
    for i, (s, t) in enumerate(PAIRS):
        alone, alone_weights = m(*batch([(s, t)])[:1], (torch.tensor([len(s)]), batch([(s, t)])[2]))
        torch.testing.assert_close(logits[i, : len(t)], alone[0], rtol=1e-5, atol=1e-6)
        if attention == "none":
            assert weights is None and alone_weights is None
        else:
            torch.testing.assert_close(weights[i, : len(t), : len(s)], alone_weights[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ["additive", "multiplicative"])
def test_attention_weights_sum_to_one_over_the_real_source_positions_only(attention):
    m = model(attention, True, "lstm", 1)
    source, lengths, inputs = batch(PAIRS)
    _, weights = m(source, (lengths, inputs))
    assert torch.all(weights >= 0)
    for i, (s, _) in enumerate(PAIRS):
        torch.testing.assert_close(weights[i, :, : len(s)].sum(-1), torch.ones(weights.size(1)))
        assert torch.all(weights[i, :, len(s):] == 0)


@pytest.mark.parametrize("attention, bi, cell, layers", CONFIGS[::3])
def test_teacher_forcing_equals_decoding_one_token_at_a_time(attention, bi, cell, layers):
    m = model(attention, bi, cell, layers, seed=1)
    source, lengths, inputs = batch(PAIRS[:1])
    logits, weights = m(source, (lengths, inputs))
    memory, mask, state = m.encode(source, lengths)
    for t in range(inputs.size(1)):
        logp, w, state = m.step(inputs[:, t], memory, mask, state)
        torch.testing.assert_close(logp, logits[:, t].log_softmax(-1), rtol=1e-5, atol=1e-6)
        if w is not None:
            torch.testing.assert_close(w, weights[:, t], rtol=1e-5, atol=1e-6)


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(5, 5, attention="dot")
    with pytest.raises(ValueError, match="cell must be one of"):
        Seq2Seq(5, 5, cell="rnn")
