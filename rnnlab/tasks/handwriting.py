"""Handwriting prediction (Graves 2013 §4): a network that writes by predicting the next pen offset.

Data: IAM-OnDB lines (a folder or the ``.tar.xz`` archive, read by ``data/strokes.py``) or, without
``--data``, synthetic lines from the Hershey fonts (``data/hershey.py``). Offsets are normalised with the
training split's statistics, which are stored in the run's config. Each line is one sequence::

    inputs   0    o1   o2  ...  o(N-1)      (a zero row, then the line shifted by one)
    targets  o1   o2   o3  ...  oN          y[t] predicts targets[t]

The loss is the paper's: the negative log-likelihood summed over the points of a line (nats per line, on
normalised offsets), averaged over the lines of a batch; evaluations also give nats per point.
"""

from dataclasses import dataclass, replace
import logging
import math
import os

import numpy as np
import torch

from ..config import TrainConfig
from ..data import hershey, iamondb, strokes
from ..data.text import Vocab
from ..errors import UserError
from ..mixture import sample as sample_mixture, sequence_nll, split_params
from ..models import HandwritingPredictor
from ..train import shuffled_batch

log = logging.getLogger(__name__)

NAME = "handwriting"


@dataclass
class Config(TrainConfig):
    data: str = ""                  # IAM-OnDB folder or .tar.xz; empty = synthetic Hershey lines
    synthetic_lines: int = 2000     # synthetic data: lines generated from the seed
    valid_fraction: float = 0.1     # held out by form id (IAM-OnDB) or the last lines (synthetic)
    hidden_size: int = 400          # Graves 2013 §4: 3 x 400 LSTM
    num_layers: int = 3
    mixtures: int = 20              # Graves 2013 §4.2: 20 bivariate Gaussians
    peepholes: bool = False         # Graves' cells have them; off runs on cuDNN / oneDNN (a documented deviation)
    clip_gradients: bool = True     # Graves' derivative clipping: [-100, 100] at the output, [-10, 10] in the LSTMs
    sample_points: int = 400        # points drawn in the sample written at each evaluation
    mean_dx: float = 0.0            # normalisation statistics of the training split: set by the task
    mean_dy: float = 0.0
    std_dx: float = 1.0
    std_dy: float = 1.0

    def validate(self) -> None:
        super().validate()
        for key in ("hidden_size", "num_layers", "mixtures", "synthetic_lines"):
            if getattr(self, key) < 1:
                raise UserError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")


PRESETS = {
    # Graves 2013 §4: 3 x 400 LSTM with skip connections, 20 mixtures, RMSProp with decay 0.95, momentum 0.9,
    # lr 1e-4, eps 1e-4 (his RMSProp is the centred form, eqs. 38-41), derivative clipping in the model.
    "graves-prediction": Config(
        hidden_size=400, num_layers=3, mixtures=20, optimizer="rmsprop", lr=1e-4, alpha=0.95, momentum=0.9,
        eps=1e-4, centered=True, clip=0.0, batch_size=32, epochs=30, eval_interval=0, log_interval=20,
    ),
}
DEFAULT_PRESET = "graves-prediction"


def build_model(config: Config, vocab: Vocab) -> HandwritingPredictor:
    return HandwritingPredictor(config.hidden_size, config.num_layers, config.mixtures, config.peepholes,
                                config.clip_gradients)


def stats_of(config: Config) -> strokes.StrokeStats:
    return strokes.StrokeStats(config.mean_dx, config.mean_dy, config.std_dx, config.std_dy)


def load_lines(config: Config) -> tuple[list[np.ndarray], list[np.ndarray], strokes.StrokeStats, str]:
    """Training and validation offsets (raw units), the training statistics, and a description."""
    if config.data:
        splits = iamondb.load_splits(config.data, config.valid_fraction)
        train = [line.offsets for line in splits.train]
        valid = [line.offsets for line in splits.valid]
        return train, valid, splits.stats, f"IAM-OnDB at {config.data}"
    rng = np.random.default_rng(config.seed)
    lines = [line.offsets for line in hershey.random_lines(config.synthetic_lines, rng)]
    cut = max(1, int(len(lines) * (1 - config.valid_fraction)))
    if cut >= len(lines):
        raise UserError(f"synthetic_lines = {config.synthetic_lines} is too few to hold out validation lines")
    train, valid = lines[:cut], lines[cut:]
    offsets = np.concatenate(train)[:, :2]
    stats = strokes.StrokeStats(*map(float, offsets.mean(0)), *map(float, offsets.std(0)))
    return train, valid, stats, f"synthetic Hershey handwriting (seed {config.seed})"


def pad_lines(lines: list[np.ndarray]) -> dict:
    """Normalised lines -> inputs and targets ``(B, T, 3)`` padded with zeros, and a mask ``(B, T)``."""
    longest = max(len(line) for line in lines)
    targets = torch.zeros(len(lines), longest, 3)
    mask = torch.zeros(len(lines), longest, dtype=torch.bool)
    for i, line in enumerate(lines):
        targets[i, : len(line)] = torch.from_numpy(line)
        mask[i, : len(line)] = True
    inputs = torch.cat([torch.zeros(len(lines), 1, 3), targets[:, :-1]], dim=1)
    return {"inputs": inputs, "targets": targets, "mask": mask}


class Task:
    """Shuffled batches of whole lines (no state carried between them); see train.py's protocol."""

    def __init__(self, config: Config, vocab: Vocab | None = None):
        train, valid, stats, source = load_lines(config)
        if vocab is not None:  # resuming or evaluating: the run's statistics, not fresh ones
            stats = stats_of(config)
        self.config = replace(config, mean_dx=stats.mean_dx, mean_dy=stats.mean_dy, std_dx=stats.std_dx,
                              std_dy=stats.std_dy)
        self.vocab = Vocab([], "strokes")
        self.train = [stats.normalise(line.astype(np.float32)) for line in train]
        self.valid = [stats.normalise(line.astype(np.float32)) for line in valid]
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        log.info("data %s: %d training and %d validation lines, %s points; offsets normalised with the training "
                 "split's mean (%.3g, %.3g) and std (%.3g, %.3g)", source, len(self.train), len(self.valid),
                 f"{sum(map(len, self.train)):,}", stats.mean_dx, stats.mean_dy, stats.std_dx, stats.std_dy)

    def train_batch(self, step: int):
        picked = shuffled_batch(step, len(self.train), self.config.batch_size, self.config.seed)
        return pad_lines([self.train[i] for i in picked]), True

    def loss(self, model, batch, state):
        y, _ = model(batch["inputs"], None)
        nll = sequence_nll(split_params(y)[1], batch["targets"], batch["mask"])
        return nll.mean(), None, int(batch["mask"].sum())

    def evaluate(self, model) -> dict:
        return evaluate_lines(model, self.valid, self.config.batch_size)

    def preview(self, model, step: int = 0, run_dir: str | None = None) -> str:
        if not run_dir or not self.config.sample_points:
            return ""
        from ..draw import save_strokes

        generator = torch.Generator(next(model.parameters()).device).manual_seed(self.config.seed)
        offsets = write(model, self.config, self.config.sample_points, 0.0, generator)
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        path = os.path.join(run_dir, "samples", f"step-{step:07d}.svg")
        save_strokes(offsets, path)
        return f"wrote {path}"


@torch.inference_mode()
def evaluate_lines(model, lines: list[np.ndarray], batch_size: int) -> dict:
    """Negative log-likelihood of normalised ``lines``: nats per line (Graves' unit) and per point."""
    model.eval()
    device = next(model.parameters()).device
    total, points = 0.0, 0
    for start in range(0, len(lines), batch_size):
        batch = {k: v.to(device) for k, v in pad_lines(lines[start : start + batch_size]).items()}
        y, _ = model(batch["inputs"], None)
        total += sequence_nll(split_params(y)[1], batch["targets"], batch["mask"]).double().sum().item()
        points += int(batch["mask"].sum())
    return {"loss": total / len(lines), "nats_per_line": total / len(lines), "nats_per_point": total / points,
            "lines": len(lines), "points": points}


@torch.inference_mode()
def write(model, config: Config, points: int, bias: float, generator: torch.Generator) -> np.ndarray:
    """Sample ``points`` offsets ``(points, 3)`` unconditionally, in the data's own units."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, 1, 3, device=device)
    state, out = None, []
    for _ in range(points):
        y, state = model(x, state)
        x = sample_mixture(y[:, -1], bias=bias, generator=generator).view(1, 1, 3)
        out.append(x[0, 0])
    offsets = torch.stack(out).double().cpu().numpy()
    return stats_of(config).denormalise(offsets).astype(np.float32)


def evaluate_run(run, data: str | None = None, split: str = "valid") -> dict:
    """Score the run's validation lines, or every line at ``data`` (``split="all"``), with the run's statistics."""
    config = replace(run.config, data=data or run.config.data)
    stats = stats_of(run.config)
    if split == "all":
        if not config.data:
            raise UserError("--split all scores every line of --data PATH (an IAM-OnDB folder or archive)")
        lines, _ = iamondb.load_iamondb(config.data)
        chosen = [line.offsets for line in lines]
    elif split == "valid":
        chosen = load_lines(config)[1]
    else:
        raise UserError(f"--split must be valid or all for a handwriting run, got {split}")
    normalised = [stats.normalise(line.astype(np.float32)) for line in chosen]
    result = evaluate_lines(run.model, normalised, run.config.batch_size)
    return {**result, "split": split, "data": config.data or "synthetic"}
