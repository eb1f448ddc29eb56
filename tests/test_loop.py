"""The training loop (``rnnlab/loop.py``): learning, truncated BPTT, the schedule's learning rate, non-finite
steps, early stopping, resumable saves and resume bit-identity, Ctrl-C and SIGTERM, and the loop's refusals
through ``rnnlab train`` (a state that does not fit, a GPU that is not there), each leaving the run untouched."""

import json
import math
import signal
import os

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.errors import TrainingDiverged, TrainingInterrupted
from rnnlab.folder import RunFolder
from rnnlab.optim import Schedule, build_optimizer
from rnnlab.tasks.charlm import CharLM, Config
from rnnlab.loop import train, train_step

from conftest import fails
from tiny_runs import snapshot, train_args, trained  # noqa: F401 -- trained is a fixture

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60


def tiny_config(**values):
    base = dict(hidden_size=32, num_layers=1, seq_len=16, batch_size=4, optimizer="adam", lr=1e-2,
                eval_interval=20, log_interval=10, preview_length=0, device="cpu", epochs=100)
    return override(Config(), {**base, **values}, "test")


def run(tmp_path, config, name="run", resume=False, task_class=CharLM):
    """Train (or resume) the run ``name`` as ``rnnlab.train`` does; return its folder, model and summary."""
    out = str(tmp_path / name)
    torch.manual_seed(config.seed)
    task = task_class(config, text=TEXT)
    model = CharLM.build_model(config, task.vocab)
    return out, model, train_in(out, model, task, config, resume)


def train_in(out, model, task, config, resume=False):
    folder = RunFolder(out)
    with folder.training():
        return train(model, task, config, folder, resume=resume)


def metrics(out, split):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def test_overfits_a_tiny_repetitive_text(tmp_path):
    out, _, summary = run(tmp_path, tiny_config(max_steps=200))
    valid = metrics(out, "valid")
    # A uniform guess over the 25 symbols costs ln 25 = 3.2 nats; the repeated text is nearly deterministic.
    assert valid[0]["loss"] < math.log(25)
    assert summary["best_valid_loss"] < 0.15, summary
    assert summary["skipped_steps"] == 0
    assert os.path.exists(os.path.join(out, "model.safetensors"))
    assert valid[-1]["bits_per_char"] == pytest.approx(valid[-1]["loss"] / math.log(2))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    # Dropout exercises the RNG state, the step schedule the schedule, Adam the optimiser state; the TBPTT
    # state is carried across the interruption (N is not an epoch boundary).
    config = tiny_config(num_layers=2, dropout=0.3, lr_schedule="step", decay_after=1, lr_decay=0.7,
                         eval_interval=15, max_steps=60)
    steps_per_epoch = CharLM(config, text=TEXT).steps_per_epoch
    assert 60 % steps_per_epoch and 30 % steps_per_epoch, "N and 2N must fall inside epochs"
    full, full_model, _ = run(tmp_path, config, "full")

    half = override(config, {"max_steps": 30}, "test")
    part, _, _ = run(tmp_path, half, "part")
    resumed, resumed_model, summary = run(tmp_path, config, "part", resume=True)
    assert summary["steps"] == 60
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in metrics(full, "train")] == [r["loss"] for r in metrics(part, "train")]
    assert [r["loss"] for r in metrics(full, "valid")] == [r["loss"] for r in metrics(part, "valid")]


class NaNTask(CharLM):
    """Tiny char LM whose loss is NaN at the given steps."""

    bad_steps: set = set()

    def train_batch(self, step):
        self._step = step
        return super().train_batch(step)

    def loss(self, model, batch, state):
        loss, state, n = super().loss(model, batch, state)
        return (loss * float("nan") if self._step in self.bad_steps else loss), state, n


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    config = tiny_config(max_steps=40, log_interval=1)
    task = NaNTask(config, text=TEXT)
    task.bad_steps = {3, 7, 8}
    torch.manual_seed(0)
    model = CharLM.build_model(config, task.vocab)
    summary = train_in(str(tmp_path), model, task, config)
    assert summary["skipped_steps"] == 3 and summary["steps"] == 40
    assert checkpoint.state_is_finite(model)
    train_records = metrics(str(tmp_path), "train")
    assert train_records[-1]["skipped"] == 3
    # A log window whose every step was skipped has no loss (not 0, which a plot would draw as a plunge).
    assert [r["step"] for r in train_records if r["loss"] is None] == [4, 8, 9]
    assert all(r["loss"] > 0 for r in train_records if r["loss"] is not None)


def test_too_many_consecutive_non_finite_steps_stop_training(tmp_path):
    config = tiny_config(max_steps=40, max_skips=4)
    task = NaNTask(config, text=TEXT)
    task.bad_steps = set(range(25, 40))
    torch.manual_seed(0)
    model = CharLM.build_model(config, task.vocab)
    with pytest.raises(TrainingDiverged, match="4 consecutive steps"):
        train_in(str(tmp_path), model, task, config)
    # The checkpoint of step 20 is intact and resumable.
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["step"] == 20


class PoisonTask(CharLM):
    """Tiny char LM whose loss gets +inf through a constant (finite gradient) or whose carry gets an inf."""

    poison = ""

    def loss(self, model, batch, state):
        loss, state, n = super().loss(model, batch, state)
        if self.poison == "loss":
            loss = loss + torch.tensor(float("inf"))
        if self.poison == "carry":
            h, c = state
            state = (h, c.clone().index_fill_(-1, torch.tensor([0]), float("inf")))
        return loss, state, n


@pytest.mark.parametrize("poison", ["loss", "carry"])
def test_one_check_per_step_still_catches_an_inf_loss_and_an_inf_carry(poison):
    config = tiny_config()
    task = PoisonTask(config, text=TEXT)
    task.poison = poison
    torch.manual_seed(0)
    model = CharLM.build_model(config, task.vocab)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    loss, carry, *_ = train_step(model, task, task.train_batch(0)[0], None, build_optimizer(params, config),
                                params, config)
    changed = any(not torch.equal(a, b) for a, b in zip(before, params))
    if poison == "loss":  # the gradient is finite, but an infinite loss is never a step
        assert loss is None and carry is None and not changed
    else:  # a finite loss is a good step; only the carried state is dropped
        assert math.isfinite(loss) and carry is None and changed


def test_early_stopping_after_patience_evaluations(tmp_path):
    # lr 0 never improves after the first evaluation.
    out, _, summary = run(tmp_path, tiny_config(lr=0.0, patience=2, eval_interval=5, max_steps=100))
    assert summary["stopped_early"] and summary["steps"] == 15


class CarryTask(CharLM):
    """Records the state each training step receives and the state it hands on."""

    def loss(self, model, batch, state):
        loss, new_state, n = super().loss(model, batch, state)
        self.seen.append((state, new_state))
        return loss, new_state, n


def test_the_loop_carries_the_state_detached_within_an_epoch_and_resets_it_at_each(tmp_path):
    config = tiny_config(max_steps=0, epochs=2, eval_interval=1000)
    task = CarryTask(config, text=TEXT)
    task.seen = []
    torch.manual_seed(0)
    model = CharLM.build_model(config, task.vocab)
    train_in(str(tmp_path), model, task, config)
    assert len(task.seen) == 2 * task.steps_per_epoch
    for step, (given, _) in enumerate(task.seen):
        if step % task.steps_per_epoch == 0:
            assert given is None, step  # a new epoch starts from a zero state
            continue
        handed = task.seen[step - 1][1]
        for g, h in zip(given, handed):  # LSTM (h, c)
            assert torch.equal(g, h) and g.grad_fn is None and not g.requires_grad, step


@pytest.mark.parametrize("schedule", [dict(lr_schedule="step", decay_after=1, lr_decay=0.5),
                                      dict(lr_schedule="cosine", min_lr=1e-4)])
def test_the_loop_steps_with_the_schedules_learning_rate(tmp_path, monkeypatch, schedule):
    from rnnlab import loop

    used = []

    def recording(params, config):
        optimizer = build_optimizer(params, config)
        step = optimizer.step
        optimizer.step = lambda *a, **k: used.append(optimizer.param_groups[0]["lr"]) or step(*a, **k)
        return optimizer

    monkeypatch.setattr(loop, "build_optimizer", recording)
    config = tiny_config(max_steps=0, epochs=3, eval_interval=1000, **schedule)
    out, _, summary = run(tmp_path, config)
    steps_per_epoch = CharLM(config, text=TEXT).steps_per_epoch
    expected = [Schedule(config, steps_per_epoch, summary["total_steps"]).lr(s) for s in range(summary["steps"])]
    assert used == pytest.approx(expected) and len(set(used)) > 2
    assert [r["lr"] for r in metrics(out, "train")] == pytest.approx(
        [expected[r["step"] - 1] for r in metrics(out, "train")])


def test_seed_makes_a_cpu_run_reproducible(tmp_path):
    _, a, _ = run(tmp_path, tiny_config(max_steps=20, dropout=0.2), "a")
    _, b, _ = run(tmp_path, tiny_config(max_steps=20, dropout=0.2), "b")
    _, c, _ = run(tmp_path, tiny_config(max_steps=20, dropout=0.2, seed=7), "c")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.decoder.weight, c.decoder.weight)


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    # Killed after step 30's checkpoint but after logging steps 31-35: those are run again on resume.
    config = tiny_config(eval_interval=15, log_interval=5, max_steps=30)
    out, _, _ = run(tmp_path, config)
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 35, "split": "train", "loss": 9.0}) + "\n" + '{"step": 4')
    run(tmp_path, override(config, {"max_steps": 45}, "test"), resume=True)
    steps = [r["step"] for r in metrics(out, "train")]
    assert steps == list(range(5, 50, 5))


@pytest.mark.parametrize("save_interval, saved", [(7, [7, 14, 20, 21, 28, 30]), (0, [20, 30])])
def test_the_training_state_is_saved_every_save_interval_steps_and_at_each_validation(tmp_path, monkeypatch,
                                                                                     save_interval, saved):
    steps = []
    save = RunFolder.save_train_state
    monkeypatch.setattr(RunFolder, "save_train_state", lambda folder, state: steps.append(state["step"]) or
                        save(folder, state))
    out, _, _ = run(tmp_path, tiny_config(max_steps=30, eval_interval=20, save_interval=save_interval))
    assert steps == saved
    assert torch.load(os.path.join(out, "train_state.pt"), weights_only=True)["step"] == 30


class SignalTask(CharLM):
    """Tiny char LM that sends itself ``signals`` during the loss of step ``at`` (a Ctrl-C, a ``kill``)."""

    at, signals = 0, ()

    def train_batch(self, step):
        self._step = step
        return super().train_batch(step)

    def loss(self, model, batch, state):
        if self._step == self.at:
            for signum in self.signals:
                os.kill(os.getpid(), signum)
        return super().loss(model, batch, state)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_request_finishes_the_step_saves_it_and_resumes_bit_identically(tmp_path, monkeypatch, signum):
    config = tiny_config(max_steps=40, eval_interval=15, dropout=0.2)
    monkeypatch.setattr(SignalTask, "at", 22)
    monkeypatch.setattr(SignalTask, "signals", (signum,))
    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN under nohup
    with pytest.raises(TrainingInterrupted) as stopped:
        run(tmp_path, config, "stopped", task_class=SignalTask)
    assert (stopped.value.step, stopped.value.resumable, stopped.value.signal) == (23, True, signum)
    out = str(tmp_path / "stopped")
    assert torch.load(os.path.join(out, "train_state.pt"), weights_only=True)["step"] == 23  # not the 15 of the last validation
    assert signal.getsignal(signal.SIGINT) is before  # the loop's handlers are gone
    _, resumed, _ = run(tmp_path, config, "stopped", resume=True)
    _, whole, _ = run(tmp_path, config, "whole")
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), whole.state_dict().values()))


def test_a_second_ctrl_c_stops_at_once_and_before_a_checkpoint_nothing_is_resumable(tmp_path, monkeypatch):
    monkeypatch.setattr(SignalTask, "at", 3)
    monkeypatch.setattr(SignalTask, "signals", (signal.SIGINT, signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as stopped:
        run(tmp_path, tiny_config(max_steps=40), task_class=SignalTask)
    assert (stopped.value.step, stopped.value.resumable, stopped.value.signal) == (None, False, signal.SIGINT)
    assert not os.path.exists(tmp_path / "run" / "train_state.pt")


def test_resume_through_the_command_skips_damaged_metrics_lines(trained, capsys, caplog):
    with open(os.path.join(trained, "metrics.jsonl"), "ab") as f:
        f.write(b'5\n[1, 2]\n{"step": "x"}\n\xff\n')
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "25"]) == 0
    assert "metrics.jsonl: 4 damaged line(s) dropped on resume" in caplog.text
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert steps == sorted(steps) and max(steps) == 25


# The loop's refusals through rnnlab train: one line, and the run as it was -----------------------------------


@pytest.mark.parametrize("change, expected", [
    ("hidden_size=32", "size mismatch"),
    ("cell=gru", "size mismatch"),
    ("optimizer=sgd", "saved by another optimiser"),
    ("optimizer=adam", "saved by another optimiser"),
    ("lr=nan", "lr must be a finite number"),
    ("lr=inf", "lr must be a finite number"),
])
def test_resume_with_a_set_that_does_not_fit_leaves_the_run_untouched(trained, capsys, change, expected):
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--max-steps", "25", "--set", change], expected)
    assert snapshot(trained) == before
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "25"]) == 0  # still resumable


def test_resume_from_another_runs_or_an_incomplete_state_is_refused_untouched(tmp_path, trained, capsys, text_file):
    other = str(tmp_path / "other")
    assert main(train_args(text_file, other, "hidden_size=24")) == 0
    state_path = os.path.join(trained, "train_state.pt")
    with open(os.path.join(other, "train_state.pt"), "rb") as src, open(state_path, "wb") as dst:
        dst.write(src.read())
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "does not fit", "size mismatch")
    assert snapshot(trained) == before
    state = torch.load(state_path, weights_only=True)
    del state["optimizer"]
    torch.save(state, state_path)
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "does not fit", "no entry 'optimizer'")
    assert snapshot(trained) == before


def test_resume_below_the_step_reached_is_refused(trained, capsys):
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--max-steps", "10"], "already at step 20",
          "larger --max-steps")
    assert snapshot(trained) == before


def test_device_cuda_without_a_gpu_fails_before_anything_is_written(tmp_path, trained, capsys, text_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without one
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--device", "cuda"], "no CUDA GPU")
    fails(capsys, train_args(text_file, trained, "--force", "--device", "cuda"), "no CUDA GPU")
    assert snapshot(trained) == before
    fails(capsys, train_args(text_file, str(tmp_path / "new"), "--device", "cuda"), "no CUDA GPU")
    assert not os.path.exists(tmp_path / "new")


def test_a_run_that_never_reached_a_checkpoint_does_not_block_a_new_one(tmp_path, capsys, text_file, monkeypatch):
    from rnnlab.tasks.lm import LMTask

    loss = LMTask.loss

    def nan_loss(self, *args):
        value, state, tokens = loss(self, *args)
        return value * float("nan"), state, tokens

    out = str(tmp_path / "run")
    monkeypatch.setattr(LMTask, "loss", nan_loss)  # training stops before its first checkpoint, and says so
    err = fails(capsys, train_args(text_file, out, "max_skips=2"), "no checkpoint had been written yet")
    assert "is kept" not in err
    monkeypatch.undo()
    assert main(train_args(text_file, out)) == 0


@pytest.mark.parametrize("device, cpu_options", [("cpu", True), ("cuda", False)])
def test_the_compile_key_compiles_the_loss_with_the_devices_options(device, cpu_options, monkeypatch):
    # The suite never compiles: torch.compile is replaced by a recorder that hands the function back, so the
    # wiring is checked (what is compiled, with which Inductor options) and the step it builds is train_step.
    from rnnlab import loop

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, options=None: compiled.append((fn, options)) or fn)
    config = tiny_config()
    torch.manual_seed(0)
    task = CharLM(config, text=TEXT)
    with torch._dynamo.config.patch(allow_rnn=torch._dynamo.config.allow_rnn):  # compiled_step sets it: restored
        step_fn = loop.compiled_step(task, device)
    assert compiled == [(task.loss, loop.CPU_COMPILE_OPTIONS if cpu_options else None)]
    results = []
    for fn in (step_fn, train_step):
        torch.manual_seed(1)
        model = CharLM.build_model(config, task.vocab)
        params = list(model.parameters())
        optimizer = build_optimizer(params, config)
        batch, _ = task.train_batch(0)
        results.append((fn(model, task, batch, None, optimizer, params, config).loss, [p.detach().clone() for p in params]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)
