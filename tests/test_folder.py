"""folder.py: a run folder's life. One training at a time (the lock, taken over from a dead holder); a
``--force`` that fails loses nothing; resumable saves on their own interval and on SIGTERM, after which
``--resume`` equals a run never interrupted; leftovers of killed processes cleared; old folders upgraded."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import rnnlab
from rnnlab.errors import TrainingInterrupted, UserError
from rnnlab.folder import CONFIG, LOCK, METRICS, STAGING, TRAIN_STATE, WEIGHTS, RunFolder, _upgrade
from rnnlab.tasks.charlm import CharLM

from conftest import TINY, fails

SMALL = dict(hidden_size=16, num_layers=1, seq_len=8, batch_size=4, eval_interval=10, log_interval=5,
             preview_length=0, seed=3)
CLI = [sys.executable, "-m", "rnnlab"]


def _snapshot(folder) -> dict:
    """Every file of a run folder, by name, with its bytes (the lock file aside)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name != LOCK:
                path = os.path.join(root, name)
                files[os.path.relpath(path, folder)] = open(path, "rb").read()
    return files


def _weights(path) -> dict:
    return rnnlab.load(str(path)).model.state_dict()


def _hold_lock(path) -> subprocess.Popen:
    """Another process holding ``path``'s lock, as a training would; it prints its PID once it holds it."""
    code = ("import sys, time\nfrom rnnlab.folder import RunFolder\nwith RunFolder(sys.argv[1]).training():\n"
            "    print('held', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_training_or_a_force_on_a_folder_in_use_is_refused_with_the_holders_pid(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    rnnlab.train("charlm", str(out), data=text_file, max_steps=10, **SMALL)
    before = _snapshot(out)
    holder = _hold_lock(out)
    try:
        for extra in ([], ["--resume"], ["--force"]):
            fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(out), "--max-steps", "20", *extra],
                  f"{out} is in use by another training (PID {holder.pid})", f"kill {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert _snapshot(out) == before


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, text_file, caplog):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert open(out / LOCK).read().strip() == str(holder.pid)  # it never released it
    with caplog.at_level("INFO"):
        run = rnnlab.train("charlm", str(out), data=text_file, max_steps=10, **SMALL)
    assert run.metadata["step"] == "10"
    assert f"took over the lock of process {holder.pid}" in caplog.text
    assert open(out / LOCK).read() == ""  # released: empty


class _DivergesAt(CharLM):
    """The char-LM task, but every loss from step 5 on is NaN, as in a run that diverged."""

    def loss(self, model, batch, state):
        loss, state, tokens = super().loss(model, batch, state)
        self.steps = getattr(self, "steps", 0) + 1
        return (loss * float("nan") if self.steps > 5 else loss), state, tokens


def test_a_force_that_diverges_keeps_the_previous_run_byte_for_byte(tmp_path, text_file, capsys, monkeypatch):
    out = tmp_path / "run"
    rnnlab.train("charlm", str(out), data=text_file, max_steps=20, **SMALL)
    (out / "notes.txt").write_text("the user's own file")
    before = _snapshot(out)
    monkeypatch.setitem(rnnlab.TASKS._loaders, "charlm", lambda: _DivergesAt)  # TASKS imports on lookup
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(out), "--force", "--max-steps", "20",
                   "--set", *TINY, "max_skips=3"],
          "3 consecutive steps had a non-finite loss or gradient (step 7)", "no checkpoint had been written yet")
    assert _snapshot(out) == before
    assert not [name for name in os.listdir(out) if name.startswith(STAGING)]
    assert rnnlab.load(str(out)).metadata["step"] == "20"


def test_a_force_replaces_the_run_at_its_first_checkpoint_and_keeps_other_files(tmp_path, text_file):
    out = tmp_path / "run"
    rnnlab.train("charlm", str(out), data=text_file, max_steps=20, **SMALL)
    (out / "notes.txt").write_text("the user's own file")
    seen = []
    original = RunFolder.save_train_state

    def spy(folder, state):  # what the folder holds just before the new run's first checkpoint
        if not seen:
            seen.append(json.load(open(out / CONFIG))["config"]["hidden_size"])
        original(folder, state)

    RunFolder.save_train_state = spy
    try:
        run = rnnlab.train("charlm", str(out), data=text_file, force=True, max_steps=10, **{**SMALL, "hidden_size": 8})
    finally:
        RunFolder.save_train_state = original
    assert seen == [16]  # the old run was still there while the new one trained
    assert run.config.hidden_size == 8 and run.metadata["step"] == "10"
    assert json.load(open(out / CONFIG))["config"]["hidden_size"] == 8
    records, _ = RunFolder(str(out)).read_metrics()
    assert max(r["step"] for r in records) == 10  # the old run's metrics went with it
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert sorted(os.listdir(out)) == sorted([LOCK, CONFIG, "vocab.json", METRICS, WEIGHTS, TRAIN_STATE, "notes.txt"])


class _StopAt(CharLM):
    """The char-LM task, but the process receives ``signal`` while step ``at`` runs (as from ``kill``)."""

    at, signal = None, signal.SIGTERM

    def train_batch(self, step):
        if step == self.at:
            os.kill(os.getpid(), self.signal)
        return super().train_batch(step)


def _interrupt_at(monkeypatch, step, sig=signal.SIGTERM):
    monkeypatch.setattr(_StopAt, "at", step)
    monkeypatch.setattr(_StopAt, "signal", sig)
    monkeypatch.setitem(rnnlab.TASKS._loaders, "charlm", lambda: _StopAt)  # TASKS imports on lookup


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_and_resume_equals_an_uninterrupted_run(tmp_path, text_file, monkeypatch, sig):
    whole = rnnlab.train("charlm", str(tmp_path / "whole"), data=text_file, max_steps=40, save_interval=0, **SMALL)
    _interrupt_at(monkeypatch, 13, sig)  # between the validations at 10 and 20, with no periodic save
    with pytest.raises(TrainingInterrupted) as stopped:
        rnnlab.train("charlm", str(tmp_path / "cut"), data=text_file, max_steps=40, save_interval=0, **SMALL)
    assert (stopped.value.step, stopped.value.resumable, stopped.value.signal) == (14, True, sig)
    state = RunFolder(str(tmp_path / "cut")).load_train_state()
    assert state["step"] == 14  # the step that was running finished, and was saved
    monkeypatch.setattr(_StopAt, "at", None)
    resumed = rnnlab.train("charlm", str(tmp_path / "cut"), resume=True)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    valid = [[(r["step"], r["loss"]) for r in RunFolder(p).read_metrics()[0] if r["split"] == "valid"]
             for p in (whole.path, resumed.path)]
    assert valid[0] == valid[1] and len(valid[0]) == 4


def test_sigterm_from_another_process_then_resume_on_the_command_line(tmp_path, text_file):
    keys = ["--set", *TINY, "eval_interval=100", "save_interval=0", "log_interval=1", "preview_length=0"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*CLI, "train", "charlm", "--data", text_file, "--out", whole, "--max-steps", "300", *keys],
                   check=True, env=env, capture_output=True)
    training = subprocess.Popen([*CLI, "train", "charlm", "--data", text_file, "--out", cut, "--max-steps", "300",
                                 *keys], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (os.path.exists(os.path.join(cut, METRICS)) and os.path.getsize(os.path.join(cut, METRICS))):
        assert time.monotonic() < deadline and training.poll() is None, "the training never logged a step"
        time.sleep(0.05)
    training.send_signal(signal.SIGTERM)
    err = training.communicate(timeout=120)[1].strip().splitlines()
    assert training.returncode == 128 + signal.SIGTERM
    step = RunFolder(cut).load_train_state()["step"]
    assert 0 < step < 300
    assert err[-1] == (f"rnnlab: interrupted at step {step}; the run is saved: continue it with rnnlab train "
                       f"charlm --out {cut} --resume"), err
    subprocess.run([*CLI, "train", "charlm", "--out", cut, "--resume"], check=True, env=env, capture_output=True)
    for key, value in _weights(whole).items():
        assert torch.equal(value, _weights(cut)[key]), key


def test_an_interrupt_before_a_forced_runs_first_checkpoint_keeps_the_old_run(tmp_path, text_file, monkeypatch, capsys):
    out = tmp_path / "run"
    rnnlab.train("charlm", str(out), data=text_file, max_steps=20, **SMALL)
    before = _snapshot(out)
    _interrupt_at(monkeypatch, 3)
    from rnnlab.cli import main

    capsys.readouterr()
    assert main(["train", "charlm", "--data", text_file, "--out", str(out), "--force", "--max-steps", "20",
                 "--set", *TINY]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "rnnlab: interrupted before the run's first checkpoint; nothing was saved (a run it was to replace is kept)")
    assert _snapshot(out) == before


def test_the_training_state_is_saved_on_its_own_interval(tmp_path, text_file, monkeypatch):
    steps = []
    original = RunFolder.save_train_state
    monkeypatch.setattr(RunFolder, "save_train_state", lambda folder, state: (steps.append(state["step"]),
                                                                              original(folder, state)))
    rnnlab.train("charlm", str(tmp_path / "run"), data=text_file, max_steps=35,
                 **{**SMALL, "eval_interval": 25, "save_interval": 10})
    assert steps == [10, 20, 25, 30, 35]  # every 10 steps, and at each validation (25 and the last step)


def test_leftovers_of_killed_processes_are_cleared_at_the_next_start(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    rnnlab.train("charlm", str(out), data=text_file, max_steps=10, **SMALL)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out / f".{WEIGHTS}.{pid}.tmp").write_bytes(b"half a checkpoint")
    (out / f"{STAGING}{pid}").mkdir()
    (out / f"{STAGING}{pid}" / CONFIG).write_text("{}")
    rnnlab.train("charlm", str(out), resume=True, max_steps=20)
    assert not [n for n in os.listdir(out) if n.endswith(".tmp") or n.startswith(STAGING)]


def test_a_first_training_that_fails_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new"
    fails(capsys, ["train", "charlm", "--data", str(tmp_path / "missing.txt"), "--out", str(out)], "does not exist")
    assert not out.exists()


def test_the_bundled_model_cannot_be_trained_into():
    with pytest.raises(UserError, match="a model shipped with rnnlab; train into a folder of yours"):
        RunFolder("builtin:handwriting").training().__enter__()


def test_headers_of_rnnlab_0_1_are_upgraded():
    old = {"task": "handwriting", "rnnlab_version": "0.1.0",
           "config": {"hidden_size": 8, "peepholes": True, "window_gaussians": 0, "alphabet": "ab",
                      "chars_per_step": 0.0, "max_text_length": 0}}
    assert _upgrade(old) == {"task": "handwriting", "rnnlab_version": "0.1.0",
                             "config": {"hidden_size": 8, "peepholes": True}}
    old["config"].update(window_gaussians=10, peepholes=False, chars_per_step=0.05)
    assert _upgrade(old) == {"task": "synthesis", "rnnlab_version": "0.1.0",
                             "config": {"hidden_size": 8, "window_gaussians": 10, "alphabet": "ab",
                                        "chars_per_step": 0.05, "max_text_length": 0}}
    assert _upgrade({"task": "charlm", "config": {"x": 1}}) == {"task": "charlm", "config": {"x": 1}}


def test_a_non_finite_metric_is_written_as_null_and_read_back(tmp_path):
    folder = RunFolder(str(tmp_path / "run"))
    with folder.training():
        folder.append_metrics({"step": 1, "split": "valid", "loss": float("nan"), "tokens": 3})
        folder.append_metrics({"step": 2, "split": "valid", "loss": 1.5, "best": True})
    assert folder.read_metrics() == ([{"step": 1, "split": "valid", "loss": None, "tokens": 3},
                                      {"step": 2, "split": "valid", "loss": 1.5, "best": True}], 0)
