"""What the two handwriting tasks share (Graves 2013 §4 and §5): lines of pen offsets as sequences, their
normalisation, batches of similar lengths, the mixture loss, nats per line.

Data: IAM-OnDB lines (a folder or the ``.tar.xz`` archive, read by ``data/strokes.py``) or, without
``--data``, synthetic lines from the Hershey fonts (``data/hershey.py``). Offsets are normalised with the
training split's statistics, which are stored in the run's config. Each line is one sequence::

    inputs   0    o1   o2  ...  o(N-1)      (a zero row, then the line shifted by one)
    targets  o1   o2   o3  ...  oN          y[t] predicts targets[t]

The loss is the paper's: the negative log-likelihood summed over the points of a line (nats per line, on
normalised offsets), averaged over the lines of a batch; evaluations also give nats per point.
``handwriting.py`` (the prediction network) and ``synthesis.py`` (the synthesis network, which also reads
each line's text) add their models and what they generate.
"""

from dataclasses import dataclass, replace
import logging
import math
import os

import numpy as np
import torch

from ..config import MAX_COUNT, MAX_LAYERS, MAX_WIDTH, TrainConfig, at_least, at_most, positive
from ..data import hershey, iamondb, strokes
from ..data.order import shuffled_batch
from ..data.text import Vocab
from ..distributed import SINGLE, World
from ..errors import UserError
from ..mixture import sequence_nll, split_params
from .base import LONG_LINES, Task

log = logging.getLogger(__name__)

MAX_STAT = 1e6  # offsets' mean and std: far past any pen's units, far below float32's overflow
MAX_MIXTURES = 1024  # mixture components (Graves: 20) and window Gaussians (Graves: 10): far past either


@dataclass
class PenConfig(TrainConfig):
    data: str = ""                  # IAM-OnDB folder or .tar.xz; empty = synthetic Hershey lines
    synthetic_lines: int = 2000     # synthetic data: lines generated from the seed
    valid_fraction: float = strokes.VALID_FRACTION  # held out by form id (IAM-OnDB) or the last lines (synthetic)
    hidden_size: int = 400          # Graves 2013 §4: 3 x 400 LSTM
    num_layers: int = 3
    mixtures: int = 20              # Graves 2013 §4.2: 20 bivariate Gaussians
    clip_gradients: bool = True     # Graves' derivative clipping: [-100, 100] at the output, [-10, 10] in the LSTMs
    sample_points: int = 400        # the sample drawn into RUN/samples/ at each evaluation: its points (0: none)
    point_stride: int = 1           # keep every n-th point of each stroke: fewer steps per line (1 = all, Graves)
    mean_dx: float = 0.0            # normalisation statistics of the training split: set by the task
    mean_dy: float = 0.0
    std_dx: float = 1.0
    std_dy: float = 1.0

    @property
    def stats(self) -> strokes.StrokeStats:
        return strokes.StrokeStats(self.mean_dx, self.mean_dy, self.std_dx, self.std_dy)

    def validate(self) -> None:
        super().validate()  # every float finite, among others
        at_least(self, 1, "hidden_size", "num_layers", "mixtures", "synthetic_lines", "point_stride")
        at_least(self, 0, "sample_points")
        at_most(self, MAX_WIDTH, "hidden_size")
        at_most(self, MAX_LAYERS, "num_layers")
        at_most(self, MAX_MIXTURES, "mixtures")
        at_most(self, MAX_COUNT, "synthetic_lines", "sample_points", "point_stride")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")
        positive(self, "std_dx", "std_dy")  # the training split's statistics: a resumed or loaded run divides by them
        for key in ("mean_dx", "mean_dy", "std_dx", "std_dy"):  # IAM-OnDB's are tens of sensor units
            if abs(getattr(self, key)) > MAX_STAT:
                raise UserError(f"{key} (a statistic of the training offsets) must be within +-{MAX_STAT:g}, got "
                                f"{getattr(self, key):g}")


def load_lines(config: PenConfig) -> tuple[list[tuple], list[tuple], strokes.StrokeStats, str]:
    """Training and validation lines as ``(text, offsets)`` (raw units, thinned by ``point_stride``), the
    training statistics, and a description of the source."""
    if config.data:
        splits = iamondb.load_splits(config.data, config.valid_fraction)
        if not splits.valid:  # a form's side is a hash of its text id: a few forms can all land in training
            raise UserError(f"the split by form left no validation lines: valid_fraction={config.valid_fraction:g} "
                            f"held out none of the {len({line.form_id for line in splits.train})} forms at "
                            f"{config.data}; raise valid_fraction (e.g. --set valid_fraction=0.5) or give more forms")
        train = [(line.text, line.offsets) for line in splits.train]
        valid = [(line.text, line.offsets) for line in splits.valid]
        stats, source = splits.stats, f"IAM-OnDB at {config.data}"
    else:
        rng = np.random.default_rng(config.seed)
        lines = [(line.text, line.offsets) for line in hershey.random_lines(config.synthetic_lines, rng)]
        cut = max(1, int(len(lines) * (1 - config.valid_fraction)))
        if cut >= len(lines):
            raise UserError(f"synthetic_lines = {config.synthetic_lines} is too few to hold out validation lines")
        train, valid = lines[:cut], lines[cut:]
        stats = strokes.StrokeStats.from_offsets([offsets for _, offsets in train])
        source = f"synthetic Hershey handwriting (seed {config.seed})"
    if config.point_stride > 1:
        train, valid = thin(train, config.point_stride), thin(valid, config.point_stride)
        stats = strokes.StrokeStats.from_offsets([offsets for _, offsets in train])
    return train, valid, stats, source


def thin(lines: list[tuple], stride: int) -> list[tuple]:
    return [(text, strokes.thin_strokes(offsets, stride)) for text, offsets in lines]


def pad_lines(lines: list[tuple], vocab: Vocab | None = None) -> dict:
    """``(text, normalised offsets)`` lines -> inputs and targets ``(B, T, 3)`` padded with zeros, a mask
    ``(B, T)``, and, given the alphabet ``vocab``, the texts' ids ``(B, U)`` (zero-padded) and lengths ``(B,)``."""
    longest = max(len(offsets) for _, offsets in lines)
    targets = torch.zeros(len(lines), longest, 3)
    mask = torch.zeros(len(lines), longest, dtype=torch.bool)
    for i, (_, offsets) in enumerate(lines):
        targets[i, : len(offsets)] = torch.from_numpy(offsets)
        mask[i, : len(offsets)] = True
    inputs = torch.cat([torch.zeros(len(lines), 1, 3), targets[:, :-1]], dim=1)
    batch = {"inputs": inputs, "targets": targets, "mask": mask}
    if vocab is not None and len(vocab):
        batch["lengths"] = torch.tensor([len(text) for text, _ in lines])
        batch["text"] = torch.zeros(len(lines), int(batch["lengths"].max()), dtype=torch.long)
        for i, (text, _) in enumerate(lines):
            batch["text"][i, : len(text)] = vocab.encode(list(text))
    return batch


class PenTask(Task):
    """Shuffled batches of whole lines of similar lengths (no state carried between them). A subclass sets
    the model, the vocabulary (:meth:`make_vocab`), which lines it keeps (:meth:`usable`) and how a batch
    enters its model (:meth:`forward`)."""

    Config = PenConfig
    compile_refused = LONG_LINES

    @classmethod
    def loss_unit(cls, vocab) -> str:
        return "nats per line"

    @classmethod
    def usable(cls, lines: list[tuple], config, split: str) -> list[tuple]:
        """The lines of ``split`` this task can learn from (all of them, unless a subclass says otherwise)."""
        return lines

    @classmethod
    def make_vocab(cls, config) -> Vocab:
        """The vocabulary of a new run."""
        return Vocab([], "strokes")

    @classmethod
    def fill_in(cls, config, train: list[tuple]) -> dict:
        """Config keys a new run learns from its training lines, beyond the normalisation (default: none)."""
        return {}

    @staticmethod
    def forward(model, batch: dict):
        """The model's output ``(B, T, 1 + 6M)`` and state for a batch of :func:`pad_lines`."""
        return model(batch["inputs"])

    def __init__(self, config: PenConfig, vocab: Vocab | None = None):
        train, valid, stats, source = load_lines(config)
        train, valid = self.usable(train, config, "training"), self.usable(valid, config, "validation")
        filled = {}
        if vocab is not None:  # resuming: the run's statistics, not fresh ones
            stats = config.stats
        else:
            filled = self.fill_in(config, train)
        self.config = replace(config, mean_dx=stats.mean_dx, mean_dy=stats.mean_dy, std_dx=stats.std_dx,
                              std_dy=stats.std_dy, **filled)
        self.vocab = vocab if vocab is not None else self.make_vocab(config)
        self.train = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in train]
        self.valid = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in valid]
        self.lengths = torch.tensor([len(offsets) for _, offsets in self.train])  # for batches of similar lengths
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        log.info("data %s: %d training and %d validation lines, %s points; offsets normalised with the training "
                 "split's mean (%.3g, %.3g) and std (%.3g, %.3g)", source, len(self.train), len(self.valid),
                 f"{sum(len(o) for _, o in self.train):,}", stats.mean_dx, stats.mean_dy, stats.std_dx, stats.std_dy)

    def train_batch(self, step: int):
        picked = shuffled_batch(step, len(self.train), self.config.batch_size, self.config.seed, self.lengths)
        return pad_lines([self.train[i] for i in picked], self.vocab), True

    def loss(self, model, batch, state):
        y, _ = self.forward(model, batch)
        nll = sequence_nll(split_params(y)[1], batch["targets"], batch["mask"])
        return nll.mean(), None, int(batch["mask"].sum())

    def evaluate(self, model, world: World = SINGLE) -> dict:
        return evaluate_lines(model, self.valid, self.config.batch_size, self.vocab, self.forward, world)

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Score the run's validation lines, or every line at ``data`` (``split="all"``), with the run's statistics."""
        lines, source = scored_lines(cls, run, data, split)
        stats = run.config.stats
        normalised = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in lines]
        result = evaluate_lines(run.model, normalised, run.config.batch_size, run.vocab, cls.forward)
        return {**result, "split": split, "data": source}

    @classmethod
    def describe(cls, result: dict, vocab) -> str:
        return (f"{result['data']} ({result['split']}): {result['nats_per_line']:.1f} nats per line, "
                f"{result['nats_per_point']:.4f} per point, over {result['lines']:,} lines")


@torch.inference_mode()
def evaluate_lines(model, lines: list[tuple], batch_size: int, vocab: Vocab, forward, world: World = SINGLE) -> dict:
    """Negative log-likelihood of normalised ``(text, offsets)`` lines: nats per line (Graves' unit) and per
    point; ``forward(model, batch)`` runs a batch of :func:`pad_lines` through the model. In a job of several
    processes each scores its part of the lines and the sums are reduced."""
    assert lines, "no lines to evaluate: the callers refuse an empty split with a UserError"
    model.eval()
    device = next(model.parameters()).device
    total, points = 0.0, 0
    part = world.part(len(lines))
    for start in range(part.start, part.stop, batch_size):
        batch = {k: v.to(device) for k, v in pad_lines(lines[start : min(start + batch_size, part.stop)], vocab).items()}
        y, _ = forward(model, batch)
        total += sequence_nll(split_params(y)[1], batch["targets"], batch["mask"]).double().sum().item()
        points += int(batch["mask"].sum())
    total, points = world.total(total, points)
    return {"loss": total / len(lines), "nats_per_line": total / len(lines), "nats_per_point": total / points,
            "lines": len(lines), "points": points}


def scored_lines(task, run, data: str | None, split: str) -> tuple[list[tuple], str]:
    """The ``(text, offsets)`` lines an evaluation of a pen ``run`` scores (raw units, thinned as in training,
    kept by ``task.usable``): its own validation split, or every line at ``data`` (``split="all"``); and
    where they come from ("synthetic" or the data's path)."""
    if split not in ("valid", "all"):
        raise UserError(f"--split must be valid or all for a {task.name} run, got {split}")
    config = replace(run.config, data=data or _trained_on(run))
    if split == "all":
        if not config.data:
            raise UserError("--split all scores every line of --data PATH (an IAM-OnDB folder or archive)")
        lines = iamondb.load_iamondb(config.data)[0]
        lines = thin([(line.text, line.offsets) for line in lines], config.point_stride)
        lines = task.usable(lines, config, "scored")
    elif config.data:  # the run's own split of these forms; its training side is not needed
        every = iamondb.load_iamondb(config.data)[0]
        lines = strokes.split_by_form(every, config.valid_fraction)[1]
        if not lines:
            raise UserError(f"the run's split by form (valid_fraction={config.valid_fraction:g}) holds none of "
                            f"the {len({line.form_id for line in every})} forms at {config.data} for validation; "
                            f"score every line with --split all")
        lines = thin([(line.text, line.offsets) for line in lines], config.point_stride)
        lines = task.usable(lines, config, "validation")
    else:
        lines = task.usable(load_lines(config)[1], config, "validation")
    return lines, config.data or "synthetic"


def _trained_on(run) -> str:
    """The data a run stored, for an evaluation given no ``--data``: refused where it is not on this machine."""
    if run.builtin:
        raise UserError(f"{run.name} ships without its data (IAM-OnDB may not be redistributed): evaluate it with "
                        f"--data PATH, the IAM-OnDB folder or its .tar.xz")
    if run.config.data and not os.path.exists(run.config.data):
        raise UserError(f"{run.name} was trained on {run.config.data}, which does not exist here; give --data PATH "
                        f"(the same IAM-OnDB folder or .tar.xz, wherever it is now)")
    return run.config.data
