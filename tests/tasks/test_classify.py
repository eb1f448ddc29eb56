"""The classify task (``rnnlab/tasks/classify.py``): the toy tasks reach their known solutions (bit-pair and copy
exactly, the adding problem far below its baseline, the vanilla RNN at chance on copy), shape errors that
name the fix, and its command-line paths: train, evaluate and plot a user's JSONL file, data of another form
than the run's, config values refused up front.

The JSONL reader, padding and the toy generators are in tests/data/test_sequences.py.
"""

import json
import os
import re

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data import sequences as seqs
from rnnlab.errors import ShapeError, UserError
from rnnlab.folder import RunFolder
from rnnlab.models import SequenceClassifier
from rnnlab.tasks.classify import PRESETS, Classify, Config, outputs_and_labels
from rnnlab.loop import train

from conftest import fails
from jsonl_files import BAD_FILES, write_jsonl


def fit(tmp_path, preset, **values):
    config = override(PRESETS[preset].config, {"device": "cpu", **values}, "test")
    torch.manual_seed(config.seed)
    task = Classify(config)
    model = Classify.build_model(config, task.vocab)
    folder = RunFolder(str(tmp_path))
    with folder.training():
        train(model, task, config, folder)
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


@pytest.mark.parametrize("cell, solved", [("lstm", True), ("gru", True), ("rnn", False)])
def test_copy_is_solved_by_gated_cells_where_the_vanilla_rnn_stays_at_chance(tmp_path, cell, solved):
    result = fit(tmp_path, "copy", cell=cell)  # delay 40, 8 symbols: chance is 1/8
    if solved:
        assert result["accuracy"] == 1.0, result["accuracy"]
    else:
        assert result["accuracy"] < 0.2, result["accuracy"]


def test_time_major_inputs_and_wrong_label_lengths_name_the_fix():
    data = seqs.bit_pair(4, 7, torch.Generator().manual_seed(0))
    model = SequenceClassifier(4, hidden_size=5, feature_size=1)
    batch = data.batch(torch.arange(4))
    time_major = {**batch, "inputs": batch["inputs"].transpose(0, 1)}  # (T, B, 1): the seed document's mistake
    with pytest.raises(ShapeError, match=r"labels must have shape \(7, 4\).*got \(4, 7\).*time-major.*transpose"):
        outputs_and_labels(model, time_major, per_step=True)
    short = {**batch, "labels": batch["labels"][:, :5]}
    with pytest.raises(ShapeError, match=r"\(4, 7\).*got \(4, 5\).*one label per step"):
        outputs_and_labels(model, short, per_step=True)
    with pytest.raises(ShapeError, match=r"\(B, T, 1\).*got \(4, 7, 3\)"):
        model(torch.zeros(4, 7, 3))


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
    fails(capsys, ["sample", out], "a classify run does not generate text; score it (Run.evaluate, rnnlab evaluate RUN)")
    fails(capsys, ["evaluate", out, "--split", "test"], "a classify run has one held-out set", "--data FILE")
    with pytest.raises(UserError, match="a classify run does not generate text"):
        rnnlab.load(out).sample()


def test_a_split_without_a_labelled_step_is_refused_before_training(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"tokens": ["a", "b"], "labels": ["x", None]},
                                              {"tokens": ["a", "b"], "labels": [None, None]}])
    out = tmp_path / "run"
    fails(capsys, ["train", "classify", "--data", data, "--out", str(out), "--set", "valid_fraction=0.5"],
          "sequences of", "have no labelled step; label more steps, or change valid_fraction or seed")
    assert not out.exists()


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
        override(Config(), dict(s.split("=") for s in sets), "test").validate()


def test_batches_of_a_file_group_sequences_of_similar_length(tmp_path):
    rows = [{"tokens": ["a"] * n, "label": "x" if n % 2 else "y"} for n in range(1, 201)]
    config = override(Config(), {"data": write_jsonl(tmp_path / "ragged.jsonl", rows), "batch_size": 10}, "test")
    task = Classify(config)
    spans = []
    for step in range(task.steps_per_epoch):
        lengths = task.train_batch(step)[0]["lengths"]
        spans.append(int(lengths.max() - lengths.min()))
    assert max(spans) < 40  # a random batch of 10 of 180 lengths spans about 150 steps
    toy = Classify(override(Config(), {"toy": "bit-pair"}, "test"))
    assert toy.lengths is None  # one length: the plain shuffled order, as before
