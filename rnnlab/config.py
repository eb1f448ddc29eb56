"""Configuration: one flat, typed dataclass per task, built from a preset and overridden by a TOML file and
``--set key=value`` flags, in that order. Unknown keys are an error that lists the valid ones.

``TrainConfig`` holds what the training loop reads; each task's ``Config`` subclasses it and adds its
data and model fields, so every key has the same name in every task (``batch_size``, ``lr``, ``clip``...).
"""

import dataclasses
from dataclasses import dataclass
import json
import math
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import UserError
from .files import read_bytes
from .precision import PRECISIONS
from .distributed import DEFAULT_TIMEOUT_SECONDS
from .threads import MAX_THREADS

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine", "plateau")


@dataclass
class TrainConfig:
    seed: int = 1337                # one seed for init, dropout and data order: a CPU run is reproducible
    batch_size: int = 32            # sequences per step
    epochs: int = 10                # passes over the training data
    max_steps: int = 0              # stop after this many optimiser steps; 0 = epochs x steps per epoch
    optimizer: str = "adam"         # one of OPTIMIZERS
    lr: float = 2e-3                # peak learning rate
    momentum: float = 0.0           # SGD and RMSprop momentum
    alpha: float = 0.99             # RMSprop smoothing constant (torch's default)
    eps: float = 1e-8               # denominator guard of Adam, AdamW, RMSprop, Adagrad
    centered: bool = False          # centred RMSprop, as Graves 2013 uses
    weight_decay: float = 0.0       # L2 (decoupled for AdamW)
    clip: float = 5.0               # max global gradient norm; 0 = no norm clipping
    clip_value: float = 0.0         # clip every gradient element to [-v, v] (min-char-rnn); 0 = off
    lr_schedule: str = "constant"   # one of SCHEDULES
    lr_decay: float = 0.5           # step: lr multiplier per epoch after decay_after; plateau: multiplier per plateau
    decay_after: int = 4            # step: epochs at the full lr (Zaremba's max_epoch)
    min_lr: float = 0.0             # floor of the cosine schedule
    plateau_patience: int = 0       # plateau: evaluations without improvement before the lr drops
    eval_interval: int = 0          # steps between validations (the best weights are saved then); 0 = once per epoch
    save_interval: int = 500        # steps between resumable saves (also at every validation, and on
                                    # Ctrl-C / SIGTERM): a crash loses at most this many; 0 = at validations only
    log_interval: int = 50          # steps between training-loss lines in metrics.jsonl
    patience: int = 0               # early stopping: evaluations without improvement; 0 = never stop early
    max_skips: int = 10             # consecutive non-finite steps tolerated before training stops
    device: str = "auto"            # auto (cuda when available), cpu or cuda
    threads: int = 0                # CPU threads while training; 0 = the command's (threads.py: the free cores)
    precision: str = "fp32"         # fp32, or bf16: matrix products in bfloat16 under autocast (precision.py)
    compile: bool = False           # compile the task's forward pass and loss (and so their backward) with
                                    # torch.compile: seconds to minutes to start; on a CPU it pays little;
                                    # the tasks of pen lines refuse it (tasks/base.py, LONG_LINES)
    dist_timeout: float = DEFAULT_TIMEOUT_SECONDS  # seconds a process of a torchrun job waits in a
                                    # collective before it fails (a dead or stuck peer) instead of hanging

    def validate(self) -> None:
        """Check values a typo could make wrong; raise UserError naming the key and the valid choices.

        Subclasses call this first, then check their own keys: every value that passes is one training can use.
        """
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{field.name} must be a finite number, got {value}")
        choose(self.optimizer, OPTIMIZERS, "optimizer")
        choose(self.lr_schedule, SCHEDULES, "lr_schedule")
        choose(self.device, ("auto", "cpu", "cuda"), "device")
        choose(self.precision, PRECISIONS, "precision")
        check_seed(self.seed, "seed")
        at_least(self, 1, "batch_size", "epochs", "log_interval", "max_skips")
        at_least(self, 0, "clip", "clip_value", "max_steps", "eval_interval", "save_interval", "patience", "momentum", "eps",
                 "weight_decay", "min_lr", "decay_after", "plateau_patience")
        positive(self, "lr", "lr_decay", "dist_timeout")
        at_least(self, 0, "threads")
        at_most(self, MAX_THREADS, "threads")
        at_most(self, MAX_COUNT, "batch_size", "epochs", "log_interval", "max_skips", "max_steps", "eval_interval",
                "save_interval", "patience", "decay_after", "plateau_patience")
        if not 0 <= self.alpha < 1:
            raise UserError(f"alpha (RMSprop's smoothing constant) must be in [0, 1), got {self.alpha}")


def check_seed(seed: int | None, name: str = "--seed") -> None:
    """torch takes seeds in [0, 2**63); None means a random one."""
    if seed is not None and not 0 <= seed < 2**63:
        raise UserError(f"{name} must be in [0, 2**63), got {seed}")


def at_least(config, low, *keys: str) -> None:
    """Refuse any of ``keys`` below ``low``, naming the key and its value."""
    for key in keys:
        if getattr(config, key) < low:
            floor = "must not be negative" if low == 0 else f"must be at least {low}"
            raise UserError(f"{key} {floor}, got {getattr(config, key)}")


# Upper bounds on sizes, far past any model that trains (a 65,536-wide LSTM layer has 34 billion weights),
# so that a typo or a damaged config.json is an error naming the key, not minutes of allocation.
MAX_WIDTH = 1 << 16       # hidden_size, embedding_size
MAX_LAYERS = 1024         # num_layers
MAX_COUNT = 1 << 30       # steps, batch sizes, sequence lengths, data sizes


def at_most(config, high, *keys: str) -> None:
    """Refuse any of ``keys`` above ``high``, naming the key, its value and the bound."""
    for key in keys:
        if getattr(config, key) > high:
            raise UserError(f"{key} must be at most {high:,}, got {getattr(config, key):,}")


def positive(config, *keys: str) -> None:
    """Refuse any of ``keys`` that is zero or negative, naming the key and its value."""
    for key in keys:
        if getattr(config, key) <= 0:
            raise UserError(f"{key} must be positive, got {getattr(config, key)}")


def choose(value: str, choices, key: str) -> None:
    if value not in choices:
        raise UserError(f"{key} = {shown(value)} is not one of: {', '.join(choices)}")


SHOWN = 60  # characters of a user's value an error message repeats


def shown(value, quote: bool = True) -> str:
    """``value`` as an error message repeats it: its repr (or text), cut to SHOWN characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text):,} characters)"


def _coerce(value, field: dataclasses.Field, key: str):
    """Convert a TOML value or a ``--set`` string to the field's declared type."""
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if isinstance(value, (list, dict, bool)) or value is None:
            raise ValueError  # a TOML array, table or boolean for a number, or a JSON null
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (ValueError, OverflowError, TypeError):  # TypeError: a TOML date or time
        raise UserError(f"{key} must be {kind}, got {shown(value)}") from None


def override(config, values: dict, source: str):
    """Return a copy of ``config`` with ``values`` applied; ``source`` names where they came from in errors."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(shown(k, quote=False) for k in unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} in {source}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(config, **{k: _coerce(v, fields[k], k) for k, v in values.items()})


def parse_set(items: list[str]) -> dict:
    """``["lr=0.1", "cell=gru"]`` -> ``{"lr": "0.1", "cell": "gru"}`` (typed later by ``override``)."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {shown(item)} (for example --set lr=0.001)")
        values[key.strip()] = value.strip()
    return values


def load_toml(path: str) -> dict:
    data = read_bytes(path, "config", "config file", "give a TOML file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {path} is not valid TOML (a UTF-8 text file): {e}") from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise UserError(f"config file {path} is not valid TOML: {str(e).split(';')[0]}") from None
    except RecursionError:
        raise UserError(f"config file {path} is not valid TOML: nested too deeply") from None


def resolve(presets: dict, preset: str, toml_path: str | None = None, sets: list[str] = (), extra: dict | None = None):
    """Preset (``presets[preset].config``) -> TOML file -> ``--set`` -> explicit values (``extra``); validated."""
    if preset not in presets:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(presets)}")
    config = presets[preset].config
    if toml_path:
        config = override(config, load_toml(toml_path), toml_path)
    config = override(config, parse_set(list(sets)), "--set")
    if extra:
        config = override(config, extra, "the command line")
    config.validate()
    return config


def to_toml(config) -> str:
    """``config`` as TOML, one ``key = value`` line per field, which :func:`load_toml` reads back to the same
    config (the values are str, int, float and bool: JSON's string escapes are TOML's)."""
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = json.dumps(str(value), ensure_ascii=False)
        lines.append(f"{field.name} = {text}")
    return "\n".join(lines) + "\n"
