"""Labelled sequences (``rnnlab/data/sequences.py``): the toy generators against their definitions, padding
left out of the loss, the JSONL forms, a run's vocabulary mapping a file's subset, and every malformed file
as one line that names the file, the line and the problem (through ``rnnlab train classify`` too)."""

import re

import pytest
import torch
from torch.nn import functional as F

from rnnlab.data import sequences as seqs
from rnnlab.data.text import Vocab
from rnnlab.errors import UserError
from rnnlab.models import SequenceClassifier
from rnnlab.tasks.classify import outputs_and_labels

from conftest import fails
from jsonl_files import BAD_FILES, write_jsonl


def test_bit_pair_labels_are_twice_the_previous_bit_plus_the_current():
    data = seqs.bit_pair(50, 12, torch.Generator().manual_seed(0))
    bits = data.inputs[..., 0].long()
    assert (data.labels[:, 0] == seqs.IGNORE).all()
    assert torch.equal(data.labels[:, 1:], 2 * bits[:, :-1] + bits[:, 1:])


def test_adding_targets_and_markers():
    data = seqs.adding(40, 10, torch.Generator().manual_seed(0))
    values, markers = data.inputs[..., 0], data.inputs[..., 1]
    assert torch.equal(markers.sum(1), torch.full((40,), 2.0))
    assert (markers[:, :5].sum(1) == 1).all()  # one marker in each half
    torch.testing.assert_close(data.labels, (values * markers).sum(1))


def test_copy_sequences_hold_the_symbols_the_delay_the_go_marker_and_score_only_the_recall():
    symbols, count, delay = 8, 3, 5
    data = seqs.copy(30, symbols, count, delay, torch.Generator().manual_seed(0))
    length = seqs.copy_length(count, delay)
    assert length == 3 + 5 + 1 + 3 and data.inputs.shape == (30, length) and data.per_step
    shown = data.inputs[:, :count]
    assert ((shown >= 1) & (shown <= symbols)).all() and len(shown.unique()) == symbols  # every symbol drawn
    assert (data.inputs[:, count : count + delay] == 0).all() and (data.inputs[:, count + delay] == symbols + 1).all()
    assert (data.inputs[:, count + delay + 1 :] == 0).all()
    assert (data.labels[:, : count + delay + 1] == seqs.IGNORE).all()
    assert torch.equal(data.labels[:, count + delay + 1 :], shown - 1)  # recalled in order, as classes 0..7
    assert data.scored() == 30 * count


def test_padding_is_masked_in_the_loss_and_the_last_real_step_is_scored():
    torch.manual_seed(0)
    model = SequenceClassifier(3, cell="gru", hidden_size=8, vocab_size=6, embedding_size=4).eval()
    rows = [[1, 2, 3, 4, 5], [2, 3], [5, 1, 1]]
    step_labels = [[0, 1, 2, 0, 1], [2, None], [1, 1, 0]]
    data = seqs.pad(rows, [[seqs.IGNORE if x is None else x for x in r] for r in step_labels], per_step=True)
    batch = data.batch(torch.arange(3))
    out, labels = outputs_and_labels(model, batch, per_step=True)
    padded_loss = F.cross_entropy(out, labels, ignore_index=seqs.IGNORE, reduction="sum")
    expected = 0.0
    for r, lab in zip(rows, step_labels):  # each sequence alone, no padding at all
        logits = model(torch.tensor([r]))[0][0]
        keep = [t for t, x in enumerate(lab) if x is not None]
        expected += F.cross_entropy(logits[keep], torch.tensor([lab[t] for t in keep]), reduction="sum")
    torch.testing.assert_close(padded_loss, expected)

    data = seqs.pad(rows, [0, 2, 1], per_step=False)
    out, _ = outputs_and_labels(model, data.batch(torch.arange(3)), per_step=False)
    for i, r in enumerate(rows):
        torch.testing.assert_close(out[i], model(torch.tensor([r]))[0][0, -1])


def test_jsonl_forms(tmp_path):
    data, tokens, labels = seqs.read_jsonl(write_jsonl(tmp_path / "a.jsonl", [
        {"tokens": ["b", "a"], "labels": ["x", None]}, {"tokens": ["c"], "labels": ["y"]}]))
    assert tokens == ["a", "b", "c"] and labels == ["x", "y"] and data.per_step
    assert data.inputs.tolist() == [[1, 0], [2, 0]] and data.labels.tolist() == [[0, -100], [1, -100]]
    data, tokens, labels = seqs.read_jsonl(write_jsonl(tmp_path / "b.jsonl", [
        {"features": [[0.5, 1], [2, 3]], "label": 10}, {"features": [[1, 1]], "label": 2}]))
    assert tokens == [] and labels == ["2", "10"] and data.inputs.shape == (2, 2, 2) and data.labels.tolist() == [1, 0]
    data, _, labels = seqs.read_jsonl(write_jsonl(tmp_path / "c.jsonl", [{"features": [[1.0]], "target": 0.25}]))
    assert data.regression and labels == [] and data.labels.tolist() == [0.25]


@pytest.mark.parametrize("records, expected", [
    ([{"tokens": ["a", "b"], "labels": ["x"]}], "line 1: 'labels' must have one label per step, 2 like 'tokens', but has 1"),
    ([{"tokens": ["a"], "label": "x"}, {"tokens": ["a"]}], "line 2: expected keys 'tokens' and 'label'"),
    ([{"features": [[1, 2]], "label": 0}, {"features": [[1]], "label": 1}], "line 2: every feature vector must be a list of 2"),
    ([{"tokens": [], "label": "x"}], "'tokens' must be a non-empty list"),
])
def test_jsonl_errors(tmp_path, records, expected):
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        seqs.read_jsonl(write_jsonl(tmp_path / "d.jsonl", records))
    (tmp_path / "e.jsonl").write_text('{"tokens": ["a"], "label": 1}\n{oops\n')
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        seqs.read_jsonl(str(tmp_path / "e.jsonl"))


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_jsonl_files_are_one_line_that_names_the_file_the_line_and_the_problem(tmp_path, capsys, name):
    content, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(expected)) as error:
        seqs.read_jsonl(str(path))
    assert str(error.value).count(str(path)) >= 1 and "None" not in str(error.value)
    out = tmp_path / "run"
    fails(capsys, ["train", "classify", "--data", str(path), "--out", str(out), "--max-steps", "5",
                   "--set", "hidden_size=8"], str(path), expected)
    assert not out.exists()  # refused before anything is written


def test_a_directory_given_as_data_is_named_as_one(tmp_path, capsys):
    fails(capsys, ["train", "classify", "--data", str(tmp_path), "--out", str(tmp_path / "run")],
          f"data file {tmp_path} is a folder; give a UTF-8 JSONL file")


def test_read_jsonl_maps_a_subset_by_the_run_vocabulary(tmp_path):
    vocab = Vocab(["a", "b", "c"], "token", ["x", "y", "z"])
    data, tokens, labels = seqs.read_jsonl(write_jsonl(tmp_path / "s.jsonl", [
        {"tokens": ["c", "b"], "labels": ["z", None]}]), vocab)
    assert tokens == vocab.tokens and labels == vocab.labels
    assert data.inputs.tolist() == [[2, 1]] and data.labels.tolist() == [[2, seqs.IGNORE]]
    with pytest.raises(UserError, match=r"2 classes the run never saw in training: 'v', 'w'"):
        seqs.read_jsonl(write_jsonl(tmp_path / "u.jsonl", [{"tokens": ["a", "b"], "labels": ["v", "w"]}]), vocab)
    with pytest.raises(UserError, match=r"vectors of 2 numbers, but the run was trained on 1"):
        seqs.read_jsonl(write_jsonl(tmp_path / "f.jsonl", [{"features": [[1, 2]], "label": "x"}]),
                        Vocab([], "token", ["x"], features=1))


def test_a_label_is_a_string_or_an_integer_and_one_class_whatever_its_spelling(tmp_path):
    path = write_jsonl(tmp_path / "labels.jsonl", [{"tokens": ["a"], "label": 1}, {"tokens": ["b"], "label": 1.0},
                                                    {"tokens": ["c"], "label": "1"}, {"tokens": ["d"], "label": "x"}])
    data, _, classes = seqs.read_jsonl(path)
    assert classes == ["1", "x"] and data.labels.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("label, shown", [("true", "true"), ("1.5", "1.5"), ("[1]", "[1]")])
def test_a_boolean_a_fraction_or_a_list_as_label_is_an_error_naming_the_line(tmp_path, label, shown):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"tokens": ["a"], "label": "x"}\n{"tokens": ["b"], "label": ' + label + "}\n")
    with pytest.raises(UserError, match=re.escape(f"{path} line 2: 'label' is {shown}; a label must be a string or "
                                                  f"an integer")):
        seqs.read_jsonl(str(path))


def test_a_sequence_over_max_length_is_an_error_and_a_long_one_a_warning(tmp_path, caplog):
    rows = [{"tokens": ["a", "b"], "label": "x"} for _ in range(9)] + [{"tokens": ["a"] * 500, "label": "y"}]
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    with pytest.raises(UserError, match=re.escape(f"{path} line 10: a sequence of 500 steps, over max_length = 100")):
        seqs.read_jsonl(path, max_length=100)
    with caplog.at_level("WARNING"):
        data, _, _ = seqs.read_jsonl(path)
    assert "line 10: a sequence of 500 steps, 250x the median 2" in caplog.text
    assert data.lengths.tolist() == [2] * 9 + [500]


def test_a_file_whose_padding_would_not_fit_in_memory_is_refused_before_padding(tmp_path, monkeypatch):
    monkeypatch.setattr(seqs, "PAD_LIMIT", 10_000)  # bytes: 20 sequences x 100 steps x 8 bytes is 16,000
    rows = [{"tokens": ["a"], "label": "x"} for _ in range(19)] + [{"tokens": ["a"] * 100, "label": "x"}]
    with pytest.raises(UserError, match=r"padding its 20 sequences to the longest \(100 steps, line 20\) would take"):
        seqs.read_jsonl(write_jsonl(tmp_path / "wide.jsonl", rows))
