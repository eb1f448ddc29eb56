"""Weights and training state on disk (``rnnlab/checkpoint.py``): the round trip through ``rnnlab.load``,
plain safetensors with the same bytes for the same weights, atomic saves, non-finite weights never saved, and
every kind of damage (truncated, corrupted, foreign, NaN, a vocabulary that lost a token) as one clear line
for each reader: the API, ``sample``, ``evaluate`` and ``train --resume``."""

import json
import os

import pytest
from safetensors.torch import load_file, save_file
import torch

import rnnlab
from rnnlab import checkpoint
from rnnlab.config import override
from rnnlab.errors import CheckpointError, TrainingDiverged, UserError
from rnnlab.folder import RunFolder, TRAIN_STATE, WEIGHTS
from rnnlab.tasks.charlm import CharLM, Config

from conftest import fails
from tiny_runs import snapshot, trained  # noqa: F401 -- trained is a fixture

TEXT = "abcdefgh ijklmnop\n" * 50


def make_run(path, cell="lstm"):
    """A charlm run folder as training leaves it at its first save: config, vocabulary, weights of step 3."""
    config = override(Config(), {"hidden_size": 12, "num_layers": 2, "cell": cell, "seq_len": 8,
                                 "batch_size": 2, "embedding_size": 5}, "test")
    task = CharLM(config, text=TEXT)
    model = CharLM.build_model(config, task.vocab)
    folder = RunFolder(str(path))
    with folder.training():
        folder.begin(CharLM.name, config, task.vocab, resume=False)
        folder.save_weights(model, step=3, metadata={"valid_loss": 1.5})
    return model, task


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_round_trip_gives_the_same_model(tmp_path, cell):
    model, task = make_run(tmp_path, cell)
    run = rnnlab.load(str(tmp_path))
    assert run.task is CharLM and run.vocab.tokens == task.vocab.tokens and run.config.cell == cell
    assert run.metadata == {"step": "3", "valid_loss": "1.5"}
    x = torch.randint(0, len(task.vocab), (3, 7))
    model.eval()
    assert torch.equal(model(x)[0], run.model(x)[0])


def test_weights_file_is_plain_safetensors_without_pickle(tmp_path):
    make_run(tmp_path)
    raw = (tmp_path / WEIGHTS).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert "decoder.weight" in header and header["decoder.weight"]["dtype"] == "F32"


def test_the_same_weights_are_the_same_bytes(tmp_path):
    # safetensors itself writes the metadata in a random order (safetensors#584); rnnlab's files do not vary.
    model, _ = make_run(tmp_path)
    path = str(tmp_path / WEIGHTS)
    saved = set()
    for _ in range(8):
        checkpoint.save_weights(path, model, step=3, metadata={"valid_loss": 1.5, "b": "x", "a": "y"})
        saved.add((tmp_path / WEIGHTS).read_bytes())
    assert len(saved) == 1
    run = rnnlab.load(str(tmp_path))
    assert run.metadata == {"step": "3", "valid_loss": "1.5", "b": "x", "a": "y"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), run.model.state_dict().values()))


def test_a_write_killed_midway_leaves_the_previous_file(tmp_path, monkeypatch):
    import rnnlab.files

    model, _ = make_run(tmp_path)
    before = (tmp_path / WEIGHTS).read_bytes()

    def die_halfway(fd):
        os.ftruncate(fd, 7)  # half a file on disk ...
        raise KeyboardInterrupt  # ... and the process killed before the rename

    monkeypatch.setattr(rnnlab.files.os, "fsync", die_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights(str(tmp_path / WEIGHTS), model, step=4)
    monkeypatch.undo()
    assert (tmp_path / WEIGHTS).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "config.json", WEIGHTS, "vocab.json"]
    rnnlab.load(str(tmp_path))


def test_non_finite_weights_are_never_saved(tmp_path):
    model, _ = make_run(tmp_path)
    path = str(tmp_path / WEIGHTS)
    before = (tmp_path / WEIGHTS).read_bytes()
    with torch.no_grad():
        model.decoder.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="non-finite"):
        checkpoint.save_weights(path, model, step=4)
    assert (tmp_path / WEIGHTS).read_bytes() == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
def test_a_failed_save_names_the_checkpoint_not_its_temporary_name(tmp_path):
    model, _ = make_run(tmp_path)
    path = "/proc/rnnlab-test-model.safetensors"
    with pytest.raises(OSError) as error:
        checkpoint.save_weights(path, model, step=1)
    assert error.value.filename == path


def test_truncated_and_corrupted_files_are_clear_errors(tmp_path):
    make_run(tmp_path)
    weights = tmp_path / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        rnnlab.load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupted"):
        rnnlab.load(str(tmp_path))
    (tmp_path / TRAIN_STATE).write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        checkpoint.load_train_state(str(tmp_path / TRAIN_STATE))


def test_a_run_of_another_task_is_refused(tmp_path):
    make_run(tmp_path)
    with pytest.raises(UserError, match="holds a charlm run, not a wordlm one"):
        rnnlab.train("wordlm", str(tmp_path), resume=True)
    header = json.loads((tmp_path / "config.json").read_text())
    header["task"] = "telepathy"
    (tmp_path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="task 'telepathy'"):
        rnnlab.load(str(tmp_path))


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    make_run(tmp_path)
    header = json.loads((tmp_path / "config.json").read_text())
    header["config"]["hidden_size"] = 13
    (tmp_path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        rnnlab.load(str(tmp_path))


# Damage as the commands see it: one line, and nothing written ---------------------------------------------


def test_corrupted_truncated_and_foreign_checkpoints(tmp_path, trained, capsys):
    weights = os.path.join(trained, WEIGHTS)
    good = open(weights, "rb").read()
    with open(weights, "wb") as f:
        f.write(good[: len(good) // 2])
    fails(capsys, ["sample", trained], "truncated")
    fails(capsys, ["evaluate", trained], "truncated")
    with open(weights, "wb") as f:
        f.write(good)
    with open(os.path.join(trained, TRAIN_STATE), "r+b") as f:
        f.truncate(100)
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "train_state.pt is corrupted or truncated")
    assert snapshot(trained) == before
    with open(os.path.join(trained, TRAIN_STATE), "w") as f:
        f.write("hello world")
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "train_state.pt is corrupted or truncated")

    header = json.load(open(os.path.join(trained, "config.json")))
    header["task"] = "wordlm"
    with open(os.path.join(trained, "config.json"), "w") as f:
        json.dump(header, f)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "holds a wordlm run, not a charlm one")
    fails(capsys, ["sample", str(tmp_path / "nowhere")], "does not exist")


@pytest.mark.parametrize("damage", [
    lambda h: h.update(config=5),
    lambda h: h.update(task=["charlm"]),
    lambda h: h["config"].update(hidden_size=-1),
    lambda h: h["config"].update(hidden_size=None),
    lambda h: h["config"].update(hidden_size=[1]),
    lambda h: h["config"].update(cell="xyz"),
    lambda h: h["config"].update(dropout=5),
    lambda h: h["config"].update(init="uniform", init_scale=-1),
])
def test_a_damaged_config_json_is_one_line_for_every_reader(trained, capsys, damage):
    path = os.path.join(trained, "config.json")
    header = json.load(open(path))
    damage(header)
    with open(path, "w") as f:
        json.dump(header, f)
    fails(capsys, ["sample", trained, "--length", "5"], "config.json is corrupted")
    fails(capsys, ["evaluate", trained], "config.json is corrupted")


@pytest.mark.parametrize("vocab", ['{"kind": "char", "tokens": []}', '{"kind": "char", "tokens": ["a"], "features": "x"}',
                                   '{"kind": "char", "tokens": [1, 2]}', '{"kind": "char", "tokens": ["a", "a"]}', '[]'])
def test_a_damaged_vocab_json_is_one_line(trained, capsys, vocab):
    with open(os.path.join(trained, "vocab.json"), "w") as f:
        f.write(vocab)
    fails(capsys, ["sample", trained, "--length", "5"], "vocab.json is corrupted")


def test_a_vocabulary_that_lost_a_token_names_both_files(trained, capsys):
    path = os.path.join(trained, "vocab.json")
    vocab = json.load(open(path))
    vocab["tokens"] = vocab["tokens"][:-1]
    with open(path, "w") as f:
        json.dump(vocab, f)
    fails(capsys, ["sample", trained], "does not match config.json and vocab.json")


def test_nan_weights_are_reported_as_damage(trained, capsys):
    path = os.path.join(trained, WEIGHTS)
    tensors = load_file(path)
    next(iter(tensors.values()))[0] = float("nan")
    save_file(tensors, path)
    fails(capsys, ["sample", trained, "--length", "5"], "NaN or infinite weights")
