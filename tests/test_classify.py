"""Sequence labelling and classification: the toy tasks reach their known solutions, padding is masked,
JSONL data, shape errors that name the fix, and the CLI."""

import json

import pytest
import torch
from torch.nn import functional as F

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data import sequences as seqs
from rnnlab.errors import ShapeError, UserError
from rnnlab.models import SequenceClassifier
from rnnlab.tasks import classify
from rnnlab.train import train


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
    other = write_jsonl(tmp_path / "other.jsonl", [{"tokens": ["very", "good"], "label": "meh"}])
    assert main(["evaluate", out, "--data", other]) == 2
    assert "other tokens or classes" in capsys.readouterr().err
    assert main(["sample", out]) == 2
