"""Configuration (``rnnlab/config.py``): preset -> TOML -> --set -> explicit values, type coercion, unknown keys
that list the valid ones, values refused before any work (through the command line too), and the TOML that
``to_toml`` writes reading back to the same config for every preset of every task."""

import dataclasses
import os
import re

import pytest

from rnnlab.config import load_toml, override, parse_set, resolve, to_toml
from rnnlab.errors import UserError
from rnnlab.tasks import TASKS
from rnnlab.tasks.charlm import PRESETS, Config

from conftest import fails
from tiny_runs import train_args


def write_toml(tmp_path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_resolve_applies_preset_then_toml_then_set_then_extra(tmp_path):
    base = PRESETS["char-rnn"].config
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
    assert PRESETS["char-rnn"].config.hidden_size == 128 and PRESETS["char-rnn"].config.cell == "lstm"


def test_resolve_with_only_a_preset_returns_it():
    assert resolve(PRESETS, "min-char-rnn") == PRESETS["min-char-rnn"].config


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
    ("weight_drop=1", "weight_drop must be in [0, 1), got 1.0"),
    ("lr_schedule=linear", "lr_schedule = 'linear' is not one of: constant, step, cosine, plateau"),
    ("alpha=2", "alpha (RMSprop's smoothing constant) must be in [0, 1), got 2.0"),
])
def test_invalid_values_are_rejected_after_overrides(item, message):
    with pytest.raises(UserError, match=re.escape(message)):
        resolve(PRESETS, "char-rnn", sets=[item])


@pytest.mark.parametrize("task, preset", [(task, preset) for task in TASKS for preset in TASKS[task].presets])
def test_to_toml_reads_back_to_the_same_config(tmp_path, task, preset):
    config = TASKS[task].presets[preset].config
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    assert override(TASKS[task].Config(), load_toml(str(path)), str(path)) == config


def test_to_toml_strings_survive_quotes_backslashes_and_unicode(tmp_path):
    config = dataclasses.replace(PRESETS["char-rnn"].config, data='C:\\runs\\"q" caf\u00e9\n\ttab\x01')
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    assert load_toml(str(path))["data"] == config.data
    assert len(to_toml(config).splitlines()) == len(dataclasses.fields(Config))  # one line per key, none broken


# Through the command line: one line, exit status 2, and the run folder never made --------------------------


def test_unknown_preset_config_key_and_set_key(tmp_path, capsys):
    out = str(tmp_path / "out")
    fails(capsys, ["train", "charlm", "--out", out, "--preset", "gpt-5"], "unknown preset 'gpt-5'", "char-rnn",
          "min-char-rnn", "shakespeare-gru", "shakespeare-lstm")
    toml = tmp_path / "c.toml"
    toml.write_text("hiden_size = 64\n")
    fails(capsys, ["train", "charlm", "--out", out, "--config", str(toml)], "unknown config key hiden_size",
          "hidden_size")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "learning_rate=0.1"], "learning_rate", "valid keys",
          "lr")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "lr=fast"], "lr must be float")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "optimizer=lion"], "adamw")
    assert not os.path.exists(out)


@pytest.mark.parametrize("setting, expected", [
    ("lr=nan", "lr must be a finite number"),
    ("lr=0", "lr must be positive"),
    ("clip=nan", "clip must be a finite number"),
    ("min_lr=nan", "min_lr must be a finite number"),
    ("forget_bias=inf", "forget_bias must be a finite number"),
    ("momentum=-1", "momentum must not be negative"),
    ("eps=-1", "eps must not be negative"),
    ("weight_decay=-1", "weight_decay must not be negative"),
    ("alpha=2", "alpha (RMSprop's smoothing constant) must be in [0, 1), got 2.0"),
    ("log_interval=0", "log_interval must be at least 1"),
    ("save_interval=-1", "save_interval must not be negative"),
    ("embedding_size=-1", "embedding_size must not be negative"),
    ("init_scale=-1", "init_scale must be positive"),
    ("seed=-1", "seed must be in [0, 2**63)"),
    (f"seed={2**63}", "seed must be in [0, 2**63)"),
])
def test_config_values_that_would_fail_later_are_refused_up_front(tmp_path, capsys, text_file, setting, expected):
    fails(capsys, train_args(text_file, str(tmp_path / "out"), setting), expected)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("content, expected", [
    ("hidden_size = [1, 2]\n", "hidden_size must be int"),
    ("hidden_size = true\n", "hidden_size must be int"),
    ("hidden_size = 1979-05-27\n", "hidden_size must be int"),
    ("[model]\nhidden_size = 3\n", "unknown config key model"),
    (b"lr = 0.1 # caf\xe9\n", "not valid TOML"),
    (b"\x89PNG\r\n\x1a\n\x00", "not valid TOML"),
])
def test_bad_config_files(tmp_path, capsys, content, expected):
    toml = tmp_path / "c.toml"
    toml.write_bytes(content if isinstance(content, bytes) else content.encode())
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "out"), "--config", str(toml)], expected)
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "out"), "--config", str(tmp_path)], "is a folder")
    assert not os.path.exists(tmp_path / "out")
