"""The recogniser's model and reading: torch's bidirectional LSTM on copied weights, padding that changes
nothing, error rates against a brute-force edit distance, and decoding with the language model."""

import itertools
import math

import pytest
import torch
from torch import nn

from rnnlab import ctc
from rnnlab.data.text import Vocab
from rnnlab.ngram import CharNgram
from rnnlab.reading import Decoder, batch_features, decode, encode_texts, error_rates, needed_frames
from rnnlab.recognizer import Recognizer


def model(layers=2, stride=3, seed=0):
    torch.manual_seed(seed)
    return Recognizer(4, 5, hidden_size=6, num_layers=layers, conv_channels=5, stride=stride).eval()


def test_each_layer_is_torchs_bidirectional_lstm_on_copied_weights():
    m = model(layers=2)
    reference = nn.LSTM(5, 6, 2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer, (ahead, behind) in enumerate(zip(m.forwards, m.backwards)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{layer}").copy_(getattr(ahead, f"{name}_l0"))
                getattr(reference, f"{name}_l{layer}_reverse").copy_(getattr(behind, f"{name}_l0"))
    x = torch.randn(3, 17, 4)
    got, frames = m(x, torch.tensor([17, 17, 17]))
    conv = torch.relu(m.conv(x.transpose(1, 2))).transpose(1, 2)
    expected = m.head(reference(conv)[0]).log_softmax(-1)
    assert frames.tolist() == [6, 6, 6]  # ceil(17 / 3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_a_line_padded_in_a_batch_reads_as_the_line_alone():
    m = model(layers=3, stride=4)
    lines = [torch.randn(n, 4) for n in (23, 9, 40, 1)]
    batch, lengths = batch_features([line.numpy() for line in lines])
    batch[0, 23:] = 7.0  # whatever is in the padding
    together, frames = m(batch, lengths)
    for i, line in enumerate(lines):
        alone, count = m(line[None], torch.tensor([len(line)]))
        assert frames[i] == count[0] == math.ceil(len(line) / 4)
        torch.testing.assert_close(together[i, : frames[i]], alone[0], rtol=1e-5, atol=1e-6)


def edit_distance(a, b):
    """Levenshtein by the textbook dynamic programme."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def test_error_rates_are_edit_distances_over_the_references_length():
    references = ["the cat sat", "on a mat", "hello world"]
    hypotheses = ["the bat sat down", "on mat", ""]
    chars = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    words = sum(edit_distance(r.split(), h.split()) for r, h in zip(references, hypotheses))
    got = error_rates(references, hypotheses)
    assert got["cer"] == pytest.approx(chars / sum(map(len, references)))
    assert got["wer"] == pytest.approx(words / sum(len(r.split()) for r in references))
    assert error_rates(references, references) == {"cer": 0.0, "wer": 0.0}


def test_texts_become_ctc_targets_and_their_fewest_frames():
    vocab = Vocab(list("abc "), "char")
    targets, lengths = encode_texts(["ab", "c a"], vocab)
    assert targets.tolist() == [[1, 2, 0], [3, 4, 1]] and lengths.tolist() == [2, 3]  # 0: the blank
    assert needed_frames("hello") == 6 and needed_frames("aaa") == 5 and needed_frames("abc") == 3
    for text in ("aab", "abba", "aaa"):  # the fewest frames of an alignment, by brute force
        labels = encode_texts([text], vocab)[0][0].tolist()
        fewest = next(t for t in itertools.count(1)
                      if any(ctc.collapse(a) == labels for a in itertools.product(range(4), repeat=t)))
        assert needed_frames(text) == fewest


def lattice(rows):
    """Log-probabilities (T, 1 + 3) from rows of probabilities over (blank, a, b, c)."""
    return torch.tensor(rows, dtype=torch.float64).log()


def test_the_language_model_decides_where_the_ink_is_ambiguous():
    vocab = Vocab(list("abc"), "char")
    # frames: surely a; b or c, c a shade likelier; blank
    ink = lattice([[0.01, 0.97, 0.01, 0.01], [0.02, 0.01, 0.47, 0.50], [0.97, 0.01, 0.01, 0.01]])
    assert decode(ink, vocab, Decoder()) == "ac"
    assert decode(ink, vocab, Decoder(beam=8)) == "ac"
    lm = CharNgram.train([[1, 2]] * 20, 2, 3)  # "ab", always
    assert decode(ink, vocab, Decoder(beam=8, lm_weight=1.0), lm) == "ab"
    assert decode(ink, vocab, Decoder(beam=8, lm_weight=0.0), lm) == "ac"  # weight 0: the ink alone
    assert str(Decoder()) == "best path" and str(Decoder(8, 0.5)) == "beam 8, language model x 0.5"


def test_pruning_keeps_the_beam_searchs_answer_on_peaked_lattices():
    torch.manual_seed(3)
    for _ in range(20):
        peaked = (torch.randn(12, 5) * 4).log_softmax(-1)
        assert ctc.beam_search(peaked, 4, prune=math.log(1e-4)) == ctc.beam_search(peaked, 4)


def test_the_language_model_lives_in_the_weights():
    m = Recognizer(4, 3, hidden_size=4, num_layers=1, conv_channels=2, stride=2, lm_order=2, lm_entries=10)
    assert m.language_model() is not None and m.language_model().grams == {}  # buffers of zeros: no counts
    lm = CharNgram.train([[1, 2], [3]], 2, 3)
    m.set_language_model(lm)
    assert m.language_model().grams == lm.grams
    again = Recognizer(4, 3, hidden_size=4, num_layers=1, conv_channels=2, stride=2, lm_order=2, lm_entries=10)
    again.load_state_dict(m.state_dict())
    assert again.language_model().grams == lm.grams
    assert Recognizer(4, 3, hidden_size=4, num_layers=1, conv_channels=2, stride=2).language_model() is None
