"""Optimisers and learning-rate schedules (``rnnlab/optim.py``): each schedule against its formula, the plateau
rule step by step, the resumable schedule state, and every optimiser built with the config's hyper-parameters."""

import math

import pytest
import torch

from rnnlab.config import TrainConfig
from rnnlab.optim import Schedule, build_optimizer


# Schedules ------------------------------------------------------------------------------------------------


def schedule(steps_per_epoch: int = 10, total_steps: int = 100, **fields) -> Schedule:
    return Schedule(TrainConfig(**fields), steps_per_epoch, total_steps)


def test_constant_schedule():
    s = schedule(lr=0.03, lr_schedule="constant")
    assert [s.lr(step) for step in (0, 1, 57, 99, 1000)] == [0.03] * 5


def test_step_schedule_is_zarembas_formula():
    lr, decay, decay_after, per_epoch = 1.0, 0.5, 4, 10
    s = schedule(per_epoch, 200, lr=lr, lr_decay=decay, decay_after=decay_after, lr_schedule="step")
    for step in (0, 9, 10, 29, 30, 39, 40, 41, 49, 50, 59, 60, 95, 199):
        epoch = step // per_epoch
        assert s.lr(step) == pytest.approx(lr * decay ** max(epoch + 1 - decay_after, 0), rel=1e-12), step
    # decay_after epochs (0 to 3) run at the full lr, then each new epoch halves it, as in the TF PTB tutorial.
    assert s.lr(39) == 1.0 and s.lr(40) == 0.5 and s.lr(50) == 0.25 and s.lr(199) == 0.5 ** 16


def test_cosine_starts_at_lr_and_ends_at_min_lr():
    s = schedule(10, 100, lr=2e-3, min_lr=1e-4, lr_schedule="cosine")
    assert s.lr(0) == pytest.approx(2e-3, rel=1e-12)
    assert s.lr(50) == pytest.approx((2e-3 + 1e-4) / 2, rel=1e-12)
    assert s.lr(100) == pytest.approx(1e-4, rel=1e-12)
    assert s.lr(150) == pytest.approx(1e-4, rel=1e-12)  # stays at the floor past the end
    lrs = [s.lr(step) for step in range(101)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))  # strictly decreasing over the run


def test_plateau_drops_after_patience_plus_one_bad_evaluations():
    s = schedule(lr=0.1, lr_decay=0.5, plateau_patience=2, lr_schedule="plateau")
    lrs = []
    for loss in [3.0, 2.0, 2.5, 2.1, 2.0, 1.5, 1.6, 1.6, 1.6, 1.4]:
        s.observe(loss)
        lrs.append(s.lr(0))
    # Not improving on 2.0: 2.5, 2.1, 2.0 (equal is not better) -> the third drops; 1.5 improves;
    # 1.6 x 3 drops again; 1.4 improves and keeps the lr.
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-12)


def test_plateau_with_zero_patience_drops_on_every_bad_evaluation():
    s = schedule(lr=1.0, lr_decay=0.1, plateau_patience=0, lr_schedule="plateau")
    for loss in [1.0, 1.1, 1.2]:
        s.observe(loss)
    assert s.lr(0) == pytest.approx(0.01, rel=1e-12)


def test_other_schedules_ignore_observations():
    s = schedule(lr=0.1, lr_decay=0.5, plateau_patience=0, lr_schedule="constant")
    for loss in [1.0, 2.0, 3.0, 4.0]:
        s.observe(loss)
    assert s.lr(0) == 0.1


def test_schedule_state_dict_round_trip():
    s = schedule(lr=0.1, lr_decay=0.5, plateau_patience=1, lr_schedule="plateau")
    for loss in [2.0, 2.1, 2.2, 2.3]:
        s.observe(loss)
    state = s.state_dict()
    assert state == {"plateau_factor": 0.5, "best": 2.0, "bad": 1}
    t = schedule(lr=0.1, lr_decay=0.5, plateau_patience=1, lr_schedule="plateau")
    t.load_state_dict(state)
    assert t.state_dict() == state and t.lr(0) == s.lr(0) == 0.05
    # The restored schedule continues exactly as the original: one more bad evaluation drops the lr.
    for sched in (s, t):
        sched.observe(2.4)
    assert s.lr(0) == t.lr(0) == 0.025
    fresh = schedule(lr=0.1)
    assert fresh.state_dict() == {"plateau_factor": 1.0, "best": math.inf, "bad": 0}


# Optimisers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls, expected",
    [
        ("sgd", torch.optim.SGD, {"lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4}),
        ("adam", torch.optim.Adam, {"lr": 0.3, "eps": 1e-6, "weight_decay": 1e-4}),
        ("adamw", torch.optim.AdamW, {"lr": 0.3, "eps": 1e-6, "weight_decay": 1e-4}),
        ("rmsprop", torch.optim.RMSprop,
         {"lr": 0.3, "alpha": 0.95, "eps": 1e-6, "momentum": 0.9, "centered": True, "weight_decay": 1e-4}),
        ("adagrad", torch.optim.Adagrad, {"lr": 0.3, "eps": 1e-6, "weight_decay": 1e-4}),
    ],
)
def test_build_optimizer_class_and_hyper_parameters(name, cls, expected):
    config = TrainConfig(optimizer=name, lr=0.3, momentum=0.9, alpha=0.95, eps=1e-6, centered=True, weight_decay=1e-4)
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    opt = build_optimizer(params, config)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["params"] == params
    for key, value in expected.items():
        assert group[key] == value, key
