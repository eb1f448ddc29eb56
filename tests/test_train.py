"""The training loop: learning, truncated BPTT, non-finite steps, early stopping, resume bit-identity."""

import json
import math
import os

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.config import override
from rnnlab.errors import TrainingDiverged
from rnnlab.tasks import charlm
from rnnlab.optim import Schedule, build_optimizer
from rnnlab.train import train, train_step

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60


def tiny_config(**values):
    base = dict(hidden_size=32, num_layers=1, seq_len=16, batch_size=4, optimizer="adam", lr=1e-2,
                eval_interval=20, log_interval=10, preview_length=0, device="cpu", epochs=100)
    return override(charlm.Config(), {**base, **values}, "test")


def run(tmp_path, config, name="run", resume=False, text=TEXT):
    out = str(tmp_path / name)
    torch.manual_seed(config.seed)
    task = charlm.Task(config, text=text)
    model = charlm.build_model(config, task.vocab)
    checkpoint.save_run_files(out, "charlm", config, task.vocab)
    summary = train(model, task, config, out, resume=resume)
    return out, model, summary


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
    steps_per_epoch = charlm.Task(config, text=TEXT).steps_per_epoch
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


class NaNTask(charlm.Task):
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
    model = charlm.build_model(config, task.vocab)
    checkpoint.save_run_files(str(tmp_path), "charlm", config, task.vocab)
    summary = train(model, task, config, str(tmp_path))
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
    model = charlm.build_model(config, task.vocab)
    checkpoint.save_run_files(str(tmp_path), "charlm", config, task.vocab)
    with pytest.raises(TrainingDiverged, match="4 consecutive steps"):
        train(model, task, config, str(tmp_path))
    # The checkpoint of step 20 is intact and resumable.
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["step"] == 20


class PoisonTask(charlm.Task):
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
    model = charlm.build_model(config, task.vocab)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    loss, carry, _ = train_step(model, task, task.train_batch(0)[0], None, build_optimizer(params, config),
                                params, config)
    changed = any(not torch.equal(a, b) for a, b in zip(before, params))
    if poison == "loss":  # the gradient is finite, but an infinite loss is never a step
        assert loss is None and carry is None and not changed
    else:  # a finite loss is a good step; only the carried state is dropped
        assert math.isfinite(loss) and carry is None and changed


def test_non_finite_weights_are_never_saved(tmp_path):
    config = tiny_config()
    model = charlm.build_model(config, charlm.Task(config, text=TEXT).vocab)
    checkpoint.save_weights(str(tmp_path), model, step=1)
    before = (tmp_path / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.decoder.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="non-finite"):
        checkpoint.save_weights(str(tmp_path), model, step=2)
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_early_stopping_after_patience_evaluations(tmp_path):
    # lr 0 never improves after the first evaluation.
    out, _, summary = run(tmp_path, tiny_config(lr=0.0, patience=2, eval_interval=5, max_steps=100))
    assert summary["stopped_early"] and summary["steps"] == 15


def test_state_is_reset_at_each_epoch_and_carried_within(tmp_path):
    config = tiny_config()
    task = charlm.Task(config, text=TEXT)
    resets = [task.train_batch(s)[1] for s in range(2 * task.steps_per_epoch)]
    assert resets == ([True] + [False] * (task.steps_per_epoch - 1)) * 2


class CarryTask(charlm.Task):
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
    model = charlm.build_model(config, task.vocab)
    checkpoint.save_run_files(str(tmp_path), "charlm", config, task.vocab)
    train(model, task, config, str(tmp_path))
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
    import rnnlab.train

    used = []

    def recording(params, config):
        optimizer = build_optimizer(params, config)
        step = optimizer.step
        optimizer.step = lambda *a, **k: used.append(optimizer.param_groups[0]["lr"]) or step(*a, **k)
        return optimizer

    monkeypatch.setattr(rnnlab.train, "build_optimizer", recording)
    config = tiny_config(max_steps=0, epochs=3, eval_interval=1000, **schedule)
    out, _, summary = run(tmp_path, config)
    steps_per_epoch = charlm.Task(config, text=TEXT).steps_per_epoch
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
