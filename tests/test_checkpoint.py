"""Run folders: round trip, atomic writes, corrupted and foreign checkpoints."""

import json
import os

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.config import override
from rnnlab.errors import CheckpointError
from rnnlab.tasks import charlm

TEXT = "abcdefgh ijklmnop\n" * 50


def make_run(path, cell="lstm"):
    config = override(charlm.Config(), {"hidden_size": 12, "num_layers": 2, "cell": cell, "seq_len": 8,
                                        "batch_size": 2, "embedding_size": 5}, "test")
    task = charlm.Task(config, text=TEXT)
    model = charlm.build_model(config, task.vocab)
    checkpoint.save_run_files(str(path), "charlm", config, task.vocab)
    checkpoint.save_weights(str(path), model, step=3, metadata={"valid_loss": 1.5})
    return model, task


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_round_trip_gives_the_same_model(tmp_path, cell):
    model, task = make_run(tmp_path, cell)
    run = checkpoint.load_run(str(tmp_path), "charlm")
    assert run.vocab.tokens == task.vocab.tokens and run.config.cell == cell
    assert run.metadata == {"step": "3", "valid_loss": "1.5"}
    x = torch.randint(0, len(task.vocab), (3, 7))
    model.eval()
    assert torch.equal(model(x)[0], run.model(x)[0])


def test_weights_file_is_plain_safetensors_without_pickle(tmp_path):
    make_run(tmp_path)
    raw = (tmp_path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert "decoder.weight" in header and header["decoder.weight"]["dtype"] == "F32"


def test_the_same_weights_are_the_same_bytes(tmp_path):
    # safetensors itself writes the metadata in a random order (safetensors#584); rnnlab's files do not vary.
    model, _ = make_run(tmp_path)
    saved = set()
    for _ in range(8):
        checkpoint.save_weights(str(tmp_path), model, step=3, metadata={"valid_loss": 1.5, "b": "x", "a": "y"})
        saved.add((tmp_path / "model.safetensors").read_bytes())
    assert len(saved) == 1
    run = checkpoint.load_run(str(tmp_path), "charlm")
    assert run.metadata == {"step": "3", "valid_loss": "1.5", "b": "x", "a": "y"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), run.model.state_dict().values()))


def test_a_write_killed_midway_leaves_the_previous_file(tmp_path, monkeypatch):
    model, _ = make_run(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def die_halfway(fd):
        os.ftruncate(fd, 7)  # half a file on disk ...
        raise KeyboardInterrupt  # ... and the process killed before the rename

    monkeypatch.setattr(checkpoint.os, "fsync", die_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights(str(tmp_path), model, step=4)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    checkpoint.load_run(str(tmp_path))


def test_truncated_and_corrupted_files_are_clear_errors(tmp_path):
    make_run(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        checkpoint.load_run(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupted"):
        checkpoint.load_run(str(tmp_path))
    (tmp_path / "train_state.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        checkpoint.load_train_state(str(tmp_path))


def test_a_run_of_another_task_is_refused(tmp_path):
    make_run(tmp_path)
    with pytest.raises(CheckpointError, match="holds a charlm run, not a wordlm one"):
        checkpoint.load_run(str(tmp_path), "wordlm")
    header = json.loads((tmp_path / "config.json").read_text())
    header["task"] = "telepathy"
    (tmp_path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="task 'telepathy'"):
        checkpoint.load_run(str(tmp_path))


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    make_run(tmp_path)
    header = json.loads((tmp_path / "config.json").read_text())
    header["config"]["hidden_size"] = 13
    (tmp_path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        checkpoint.load_run(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
def test_a_failed_atomic_write_names_the_path_not_its_temporary_name():
    path = "/proc/rnnlab-test-output.png"
    with pytest.raises(OSError) as error:
        checkpoint.atomic_write(path, lambda tmp: open(tmp, "w").close())
    assert error.value.filename == path
