"""Configuration (preset -> TOML -> --set -> flags), learning-rate schedules and optimiser construction."""

import dataclasses
import math
import re

import pytest
import torch

from rnnlab.config import parse_set, resolve
from rnnlab.errors import UserError
from rnnlab.optim import Schedule, build_optimizer
from rnnlab.tasks.charlm import PRESETS, Config


def write_toml(tmp_path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_resolve_applies_preset_then_toml_then_set_then_extra(tmp_path):
    base = PRESETS["char-rnn"]
    toml = write_toml(tmp_path, 'hidden_size = 64\nlr = 0.01\ncell = "gru"\nseq_len = 20\n')
    config = resolve(PRESETS, "char-rnn", toml, ["lr=0.005", "seq_len=30", "num_layers=1"], {"seq_len": 40})
    assert config.hidden_size == 64       # TOML over the preset
    assert config.cell == "gru"           # TOML over the preset
    assert config.lr == 0.005             # --set over TOML
    assert config.num_layers == 1         # --set over the preset
    assert config.seq_len == 40           # extra over --set over TOML
    assert config.batch_size == base.batch_size and config.optimizer == base.optimizer  # untouched keys
    # Everything not overridden is the preset's, and the preset itself is not modified.
    changed = {"hidden_size", "cell", "lr", "seq_len", "num_layers"}
    for f in dataclasses.fields(Config):
        if f.name not in changed:
            assert getattr(config, f.name) == getattr(base, f.name), f.name
    assert PRESETS["char-rnn"].hidden_size == 128 and PRESETS["char-rnn"].cell == "lstm"


def test_resolve_with_only_a_preset_returns_it():
    assert resolve(PRESETS, "min-char-rnn") == PRESETS["min-char-rnn"]


def test_set_values_are_coerced_to_the_field_types():
    config = resolve(PRESETS, "char-rnn", sets=["hidden_size=32", "lr=1e-3", "centered=true", "cell=gru",
                                                "dropout=0.25", "clip=2"])
    assert config.hidden_size == 32 and type(config.hidden_size) is int
    assert config.lr == 1e-3 and type(config.lr) is float
    assert config.centered is True
    assert config.cell == "gru"
    assert config.dropout == 0.25
    assert config.clip == 2.0 and type(config.clip) is float


@pytest.mark.parametrize("text, expected", [("true", True), ("1", True), ("yes", True), ("On", True),
                                            ("false", False), ("0", False), ("no", False), ("OFF", False)])
def test_bool_strings(text, expected):
    assert resolve(PRESETS, "char-rnn", sets=[f"centered={text}"]).centered is expected


def test_toml_types_are_coerced(tmp_path):
    toml = write_toml(tmp_path, "lr = 1\nhidden_size = 48.0\ncentered = true\n")
    config = resolve(PRESETS, "char-rnn", toml)
    assert config.lr == 1.0 and type(config.lr) is float
    assert config.hidden_size == 48 and type(config.hidden_size) is int
    assert config.centered is True


@pytest.mark.parametrize("item, key", [("hidden_size=abc", "hidden_size"), ("hidden_size=1.5", "hidden_size"),
                                       ("lr=fast", "lr"), ("centered=maybe", "centered")])
def test_uncoercible_values_name_the_key_and_type(item, key):
    with pytest.raises(UserError, match=f"{key} must be"):
        resolve(PRESETS, "char-rnn", sets=[item])


def test_unknown_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(UserError) as err:
        resolve(PRESETS, "char-rnn", sets=["hiden_size=3"])
    msg = str(err.value)
    assert "hiden_size" in msg and "--set" in msg
    valid = msg.split("valid keys:")[1]
    assert {k.strip() for k in valid.split(",")} == {f.name for f in dataclasses.fields(Config)}
    toml = write_toml(tmp_path, "learning_rate = 0.1\n")
    with pytest.raises(UserError, match=r"learning_rate in .*run\.toml.*valid keys: .*\blr\b"):
        resolve(PRESETS, "char-rnn", toml)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(UserError) as err:
        resolve(PRESETS, "char-rnm")
    msg = str(err.value)
    assert "char-rnm" in msg
    for name in PRESETS:
        assert name in msg


@pytest.mark.parametrize("item", ["lr", "lr:0.1", "=0.1"])
def test_set_item_without_key_value_is_an_error(item):
    with pytest.raises(UserError, match="key=value"):
        parse_set([item])
    with pytest.raises(UserError, match="key=value"):
        resolve(PRESETS, "char-rnn", sets=[item])


def test_parse_set_splits_on_the_first_equals_sign():
    assert parse_set(["lr = 0.1", "data=a=b.txt"]) == {"lr": "0.1", "data": "a=b.txt"}


def test_missing_or_invalid_toml(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve(PRESETS, "char-rnn", str(tmp_path / "nope.toml"))
    with pytest.raises(UserError, match="not valid TOML"):
        resolve(PRESETS, "char-rnn", write_toml(tmp_path, "lr = = 1\n"))


@pytest.mark.parametrize("item, message", [
    ("optimizer=adamax", "optimizer = 'adamax' is not one of: sgd, adam, adamw, rmsprop, adagrad"),
    ("cell=transformer", "cell = 'transformer' is not one of: rnn, rnn_relu, lstm, gru"),
    ("lr=-1", "lr must be positive, got -1.0"), ("batch_size=0", "batch_size must be at least 1, got 0"),
    ("dropout=1.0", "dropout must be in [0, 1), got 1.0"),
    ("lr_schedule=linear", "lr_schedule = 'linear' is not one of: constant, step, cosine, plateau"),
    ("alpha=2", "alpha (RMSprop's smoothing constant) must be in [0, 1), got 2.0"),
])
def test_invalid_values_are_rejected_after_overrides(item, message):
    with pytest.raises(UserError, match=re.escape(message)):
        resolve(PRESETS, "char-rnn", sets=[item])


# Schedules ------------------------------------------------------------------------------------------------


def schedule(steps_per_epoch: int = 10, total_steps: int = 100, **fields) -> Schedule:
    return Schedule(Config(**fields), steps_per_epoch, total_steps)


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
    config = Config(optimizer=name, lr=0.3, momentum=0.9, alpha=0.95, eps=1e-6, centered=True, weight_decay=1e-4)
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    opt = build_optimizer(params, config)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["params"] == params
    for key, value in expected.items():
        assert group[key] == value, key
