"""Sequence labelling and classification: the toy tasks reach their known solutions, padding is masked,
JSONL data, shape errors that name the fix, and the CLI."""

import json
import os
import re

import pytest
import torch
from torch.nn import functional as F

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data import sequences as seqs
from rnnlab.data.text import Vocab
from rnnlab.errors import ShapeError, UserError
from rnnlab.models import SequenceClassifier
from rnnlab.tasks import classify
from rnnlab.train import train

from conftest import fails


def fit(tmp_path, preset, **values):
    config = override(classify.PRESETS[preset], {"device": "cpu", **values}, "test")
    torch.manual_seed(config.seed)
    task = classify.Task(config)
    model = classify.build_model(config, task.vocab)
    checkpoint.save_run_files(str(tmp_path), "classify", config, task.vocab)
    train(model, task, config, str(tmp_path))
    return task.evaluate(model)


def test_bit_pair_is_solved_on_every_step_after_the_first(tmp_path):
    result = fit(tmp_path, "bit-pair")
    assert result["accuracy"] == 1.0
    assert result["tokens"] == 500 * 19  # 500 validation sequences x (20 - 1) scored steps
    confusion = torch.tensor(result["confusion"])
    assert int(confusion.sum()) == result["tokens"] and int((confusion - confusion.diag().diag()).sum()) == 0


def test_adding_problem_far_below_the_variance_baseline(tmp_path):
    result = fit(tmp_path, "adding")
    assert result["baseline_mse"] == pytest.approx(1 / 6)
    assert result["mse"] < result["baseline_mse"] / 20, result


def test_a_regression_file_has_no_baseline_even_with_two_features(tmp_path, capsys):
    # Two features per step, like the adding toy, but not the adding problem: its baseline would be a lie.
    data = write_jsonl(tmp_path / "r.jsonl", [{"features": [[0.5, 1.0], [0.2, 0.0]], "target": 3.0}] * 20)
    out = str(tmp_path / "run")
    assert main(["train", "classify", "--data", data, "--out", out, "--max-steps", "2", "--set", "hidden_size=4"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline_mse"] is None
    assert main(["evaluate", out]) == 0
    shown = capsys.readouterr().out
    assert "mean squared error" in shown and "always answering" not in shown


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


@pytest.mark.parametrize("cell, solved", [("lstm", True), ("gru", True), ("rnn", False)])
def test_copy_is_solved_by_gated_cells_where_the_vanilla_rnn_stays_at_chance(tmp_path, cell, solved):
    result = fit(tmp_path, "copy", cell=cell)  # delay 40, 8 symbols: chance is 1/8
    if solved:
        assert result["accuracy"] == 1.0, result["accuracy"]
    else:
        assert result["accuracy"] < 0.2, result["accuracy"]


def test_padding_is_masked_in_the_loss_and_the_last_real_step_is_scored():
    torch.manual_seed(0)
    model = SequenceClassifier(3, cell="gru", hidden_size=8, vocab_size=6, embedding_size=4).eval()
    rows = [[1, 2, 3, 4, 5], [2, 3], [5, 1, 1]]
    step_labels = [[0, 1, 2, 0, 1], [2, None], [1, 1, 0]]
    data = seqs.pad(rows, [[seqs.IGNORE if x is None else x for x in r] for r in step_labels], per_step=True)
    batch = data.batch(torch.arange(3))
    out, labels = classify.outputs_and_labels(model, batch, per_step=True)
    padded_loss = F.cross_entropy(out, labels, ignore_index=seqs.IGNORE, reduction="sum")
    expected = 0.0
    for r, lab in zip(rows, step_labels):  # each sequence alone, no padding at all
        logits = model(torch.tensor([r]))[0][0]
        keep = [t for t, x in enumerate(lab) if x is not None]
        expected += F.cross_entropy(logits[keep], torch.tensor([lab[t] for t in keep]), reduction="sum")
    torch.testing.assert_close(padded_loss, expected)

    data = seqs.pad(rows, [0, 2, 1], per_step=False)
    out, _ = classify.outputs_and_labels(model, data.batch(torch.arange(3)), per_step=False)
    for i, r in enumerate(rows):
        torch.testing.assert_close(out[i], model(torch.tensor([r]))[0][0, -1])


def test_time_major_inputs_and_wrong_label_lengths_name_the_fix():
    data = seqs.bit_pair(4, 7, torch.Generator().manual_seed(0))
    model = SequenceClassifier(4, hidden_size=5, feature_size=1)
    batch = data.batch(torch.arange(4))
    time_major = {**batch, "inputs": batch["inputs"].transpose(0, 1)}  # (T, B, 1): the seed document's mistake
    with pytest.raises(ShapeError, match=r"labels must have shape \(7, 4\).*got \(4, 7\).*time-major.*transpose"):
        classify.outputs_and_labels(model, time_major, per_step=True)
    short = {**batch, "labels": batch["labels"][:, :5]}
    with pytest.raises(ShapeError, match=r"\(4, 7\).*got \(4, 5\).*one label per step"):
        classify.outputs_and_labels(model, short, per_step=True)
    with pytest.raises(ShapeError, match=r"\(B, T, 1\).*got \(4, 7, 3\)"):
        model(torch.zeros(4, 7, 3))


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


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


def test_cli_on_user_jsonl_train_evaluate_plot(tmp_path, capsys):
    # Sentiment of two-word phrases: the class is decided by the last word.
    generator = torch.Generator().manual_seed(0)
    words, moods = ["very", "not", "quite", "so"], {"good": "pos", "fine": "pos", "bad": "neg", "awful": "neg"}
    records = []
    for _ in range(300):
        first = words[int(torch.randint(0, 4, (1,), generator=generator))]
        last = list(moods)[int(torch.randint(0, 4, (1,), generator=generator))]
        records.append({"tokens": [first, last], "label": moods[last]})
    data = write_jsonl(tmp_path / "moods.jsonl", records)
    out = str(tmp_path / "run")
    assert main(["train", "classify", "--data", data, "--out", out, "--set", "epochs=6", "hidden_size=16",
                 "embedding_size=8", "lr=0.02"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 1.0 and result["tokens"] == 30 and result["loss"] < 0.2
    assert main(["evaluate", out]) == 0
    assert "confusion (rows: true, columns: predicted)" in capsys.readouterr().out
    png = str(tmp_path / "c.png")
    assert main(["plot", out, "-o", png]) == 0 and open(png, "rb").read(4) == b"\x89PNG"
    capsys.readouterr()
    assert main(["evaluate", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == data  # the run's file, not the unused toy name
    # A file with a subset of the tokens and classes is scored with the run's ids: "good" and "pos" rebuilt
    # from this file alone would be id 0, the run's "awful" and "neg", and score 0.
    subset = write_jsonl(tmp_path / "subset.jsonl", [{"tokens": ["very", "good"], "label": "pos"}] * 3)
    assert main(["evaluate", out, "--data", subset, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    other = write_jsonl(tmp_path / "other.jsonl", [{"tokens": ["very", "good"], "label": "meh"}])
    fails(capsys, ["evaluate", out, "--data", other], "1 class the run never saw in training: 'meh'", "(neg, pos)")
    other = write_jsonl(tmp_path / "other.jsonl", [{"tokens": ["so", "great"], "label": "pos"}])
    fails(capsys, ["evaluate", out, "--data", other], "1 token the run never saw in training: 'great'")
    other = write_jsonl(tmp_path / "other.jsonl", [{"features": [[1.0]], "label": "pos"}])
    fails(capsys, ["evaluate", out, "--data", other], "holds feature vectors, but the run was trained on tokens")
    other = write_jsonl(tmp_path / "other.jsonl", [{"tokens": ["so"], "target": 0.5}])
    fails(capsys, ["evaluate", out, "--data", other], "holds targets (real numbers), but the run was trained to predict classes")
    other = write_jsonl(tmp_path / "other.jsonl", [{"tokens": ["very", "good"], "labels": ["pos", "pos"]}] * 10)
    fails(capsys, ["evaluate", out, "--data", other], "has one label per step ('labels'), but the run was trained on one "
                                                     "label or target per sequence")
    before = open(os.path.join(out, "config.json")).read()
    assert json.loads(before)["config"]["scored"] == "sequence"
    fails(capsys, ["train", "classify", "--out", out, "--resume", "--set", f"data={other}"], "has one label per step")
    assert open(os.path.join(out, "config.json")).read() == before
    for name, (content, expected) in BAD_FILES.items():
        (tmp_path / name).write_bytes(content)
        fails(capsys, ["evaluate", out, "--data", str(tmp_path / name)], f"{tmp_path / name}", expected)
    assert main(["sample", out]) == 2


LINE_1 = b'{"tokens": ["a", "b"], "label": "x"}\n'
BAD_FILES = {  # name: (content, what the error says besides the file name)
    "latin1.jsonl": (LINE_1 + '{"tokens": ["caf\u00e9"], "label": "x"}\n'.encode("latin-1"),
                     "is not UTF-8 (byte 0xe9 on line 2); convert it first"),
    "binary.jsonl": (LINE_1 + b"\x00\x01\x02\xff", "looks binary (a NUL byte on line 2)"),
    "null-label.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": null}\n', "line 2: 'label' is null; it must be a class name"),
    "list-label.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": ["x"]}\n', 'line 2: \'label\' is ["x"]'),
    "null-token.jsonl": (LINE_1 + b'{"tokens": ["a", null], "label": "x"}\n', "line 2: tokens[1] is null"),
    "all-null.jsonl": (b'{"tokens": ["a", "b"], "labels": [null, null]}\n{"tokens": ["a"], "labels": [null]}\n',
                       "no step has a label"),
    "scalar-line.jsonl": (LINE_1 + b"5\n", "line 2 is 5, not a JSON object"),
    "scalar-first.jsonl": (b"5\n", "line 1 is 5, not a JSON object"),
    "no-keys.jsonl": (b'{"text": "a b"}\n', "line 1: a sequence needs 'tokens' or 'features'"),
    "text-feature.jsonl": (b'{"features": [["a", 0.2]], "label": 1}\n', 'line 1: features[0] holds "a"; every feature must be a finite number'),
    "nested-feature.jsonl": (b'{"features": [[[1], 0.2]], "label": 1}\n', "line 1: features[0] holds [1]"),
    "empty-vector.jsonl": (b'{"features": [[]], "label": 1}\n', "line 1: features[0] is []; each step is a non-empty list"),
    "scalar-features.jsonl": (b'{"features": [1, 2], "label": 1}\n', "line 1: features[0] is 1; each step is a non-empty list"),
    "nan-feature.jsonl": (b'{"features": [[1.0]], "label": 1}\n{"features": [[NaN]], "label": 0}\n',
                          "line 2: features[0] holds NaN; every feature must be a finite number (replace a missing value"),
    "inf-feature.jsonl": (b'{"features": [[1.0], [-Infinity]], "label": 1}\n', "line 1: features[1] holds -Infinity"),
    "huge-feature.jsonl": (b'{"features": [[1' + b"0" * 400 + b']], "label": 1}\n', "within float32's range"),
    "string-target.jsonl": (b'{"features": [[1]], "target": 0.5}\n{"features": [[1]], "target": "0.7"}\n',
                            "line 2: 'target' is \"0.7\"; it must be a finite number"),
    "null-target.jsonl": (b'{"features": [[1]], "target": null}\n', "line 1: 'target' is null"),
    "list-target.jsonl": (b'{"features": [[1]], "target": [0.5]}\n', "line 1: 'target' is [0.5]"),
    "nan-target.jsonl": (b'{"features": [[1]], "target": NaN}\n', "line 1: 'target' is NaN"),
    "two-outputs.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": "x", "labels": ["x"]}\n',
                          "line 2: has both 'label' and 'labels'; a sequence takes one of"),
    "two-inputs.jsonl": (b'{"tokens": ["a"], "features": [[1]], "label": "x"}\n', "line 1: has both 'tokens' and 'features'"),
}


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
          f"data path {tmp_path} is a directory; give a UTF-8 JSONL file")


def test_a_split_without_a_labelled_step_is_refused_before_training(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"tokens": ["a", "b"], "labels": ["x", None]},
                                              {"tokens": ["a", "b"], "labels": [None, None]}])
    out = tmp_path / "run"
    fails(capsys, ["train", "classify", "--data", data, "--out", str(out), "--set", "valid_fraction=0.5"],
          "sequences of", "have no labelled step; label more steps, or change valid_fraction or seed")
    assert not out.exists()


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


@pytest.mark.parametrize("sets, expected", [
    (["dropout=2"], "dropout must be in [0, 1), got 2.0"),
    (["dropout=-1"], "dropout must be in [0, 1), got -1.0"),
    (["embedding_size=-1"], "embedding_size must be at least 1, got -1"),
    (["embedding_size=0"], "embedding_size must be at least 1, got 0: the classifier embeds token ids and has no one-hot"),
    (["toy=copy", "delay=-10"], "delay (copy: blank steps before the go marker) must not be negative, got -10"),
    (["valid_fraction=0"], "valid_fraction (the share of a JSONL file held out) must be in (0, 1), got 0.0"),
    (["valid_fraction=1"], "valid_fraction (the share of a JSONL file held out) must be in (0, 1), got 1.0"),
    (["valid_fraction=nan"], "valid_fraction must be a finite number, got nan"),
    (["seq_len=1"], "the bit-pair task needs seq_len >= 2 (step 0, with no previous bit, is not scored)"),
    (["toy=copy", "copy_length=100000"], "the copy toy set would hold 2,500 sequences x 200,021 steps, about 11 GiB; "
                                         "lower train_size, valid_size, copy_length or delay (the limit is 2 GiB)"),
    (["seq_len=50000"], "2,500 sequences x 50,000 steps, about 3 GiB; lower train_size, valid_size or seq_len"),
])
def test_bad_config_values_are_refused_up_front(tmp_path, capsys, sets, expected):
    out = tmp_path / "run"
    fails(capsys, ["train", "classify", "--out", str(out), "--set", *sets], expected)
    assert not out.exists()
    with pytest.raises(UserError, match=re.escape(expected)):
        override(classify.Config(), dict(s.split("=") for s in sets), "test").validate()
