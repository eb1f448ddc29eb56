"""Handwriting prediction (Graves 2013 §4): a network that writes by predicting the next pen offset.

Data: IAM-OnDB lines (a folder or the ``.tar.xz`` archive, read by ``data/strokes.py``) or, without
``--data``, synthetic lines from the Hershey fonts (``data/hershey.py``). Offsets are normalised with the
training split's statistics, which are stored in the run's config. Each line is one sequence::

    inputs   0    o1   o2  ...  o(N-1)      (a zero row, then the line shifted by one)
    targets  o1   o2   o3  ...  oN          y[t] predicts targets[t]

The loss is the paper's: the negative log-likelihood summed over the points of a line (nats per line, on
normalised offsets), averaged over the lines of a batch; evaluations also give nats per point.

With ``window_gaussians > 0`` (preset ``graves-synthesis``) the network is Graves' §5 synthesis network:
each batch also carries the lines' texts as character ids over the run's alphabet (``vocab.json``), and the
soft window (attention.py) learns which character the pen is writing. ``rnnlab write`` (writing.py) turns
text into handwriting with such a run.
"""

from dataclasses import dataclass, replace
import logging
import math
import os

import numpy as np
import torch

from .. import checkpoint
from ..config import TrainConfig, at_least, positive
from ..data import hershey, iamondb, strokes
from ..data.text import Vocab
from ..errors import UserError
from ..mixture import sample as sample_mixture, sequence_nll, split_params
from ..models import HandwritingPredictor, HandwritingSynthesizer
from ..train import shuffled_batch

log = logging.getLogger(__name__)

NAME = "handwriting"
# What the synthesis network writes by default: every character of the IAM-OnDB transcriptions but "[", "]"
# and "*" (5 of 10,100 training lines), which are skipped, counted, in training. Rare letters (Q, X, Z: 17, 3
# and 5 lines) stay in: a letter outside the alphabet is an error at write time, never silently dropped.
ALPHABET = " !\"#&'()+,-./0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class Config(TrainConfig):
    data: str = ""                  # IAM-OnDB folder or .tar.xz; empty = synthetic Hershey lines
    synthetic_lines: int = 2000     # synthetic data: lines generated from the seed
    valid_fraction: float = strokes.VALID_FRACTION  # held out by form id (IAM-OnDB) or the last lines (synthetic)
    hidden_size: int = 400          # Graves 2013 §4: 3 x 400 LSTM
    num_layers: int = 3
    mixtures: int = 20              # Graves 2013 §4.2: 20 bivariate Gaussians
    peepholes: bool = False         # Graves' cells have them; off runs on cuDNN / oneDNN (a documented deviation)
    clip_gradients: bool = True     # Graves' derivative clipping: [-100, 100] at the output, [-10, 10] in the LSTMs
    sample_points: int = 400        # prediction: points drawn in the sample written at each evaluation (0: none)
    window_gaussians: int = 0       # 0: the prediction network (§4); K > 0: the synthesis network (§5: K = 10)
    alphabet: str = ALPHABET        # synthesis: the characters it can write (lines with others are skipped)
    chars_per_step: float = 0.0     # synthesis, set by the task: characters per point in the training lines
    max_text_length: int = 0        # synthesis, set by the task: the longest training text, the limit of write
    point_stride: int = 1           # keep every n-th point of each stroke: fewer steps per line (1 = all, Graves)
    mean_dx: float = 0.0            # normalisation statistics of the training split: set by the task
    mean_dy: float = 0.0
    std_dx: float = 1.0
    std_dy: float = 1.0

    @property
    def chars_per_point(self) -> float:
        """``chars_per_step``, or 1 before the task has measured it (a prediction network has no text)."""
        return self.chars_per_step or 1.0

    def validate(self) -> None:
        super().validate()  # every float finite, among others
        at_least(self, 1, "hidden_size", "num_layers", "mixtures", "synthetic_lines", "point_stride")
        # 0 means: the prediction network; no sample drawn; set by the task from the data.
        at_least(self, 0, "window_gaussians", "sample_points", "max_text_length", "chars_per_step")
        if self.window_gaussians and not self.alphabet:
            raise UserError(f"alphabet is empty: give the characters the synthesis network writes, e.g. {ALPHABET!r}")
        if self.window_gaussians and len(set(self.alphabet)) != len(self.alphabet):
            raise UserError(f"alphabet {self.alphabet!r} lists a character twice; give each character once")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")
        positive(self, "std_dx", "std_dy")  # the training split's statistics: a resumed or loaded run divides by them

PRESETS = {
    # Graves 2013 §4: 3 x 400 LSTM with skip connections, 20 mixtures, RMSProp with decay 0.95, momentum 0.9,
    # lr 1e-4, eps 1e-4 (his RMSProp is the centred form, eqs. 38-41), derivative clipping in the model.
    "graves-prediction": Config(
        hidden_size=400, num_layers=3, mixtures=20, optimizer="rmsprop", lr=1e-4, alpha=0.95, momentum=0.9,
        eps=1e-4, centered=True, clip=0.0, batch_size=32, epochs=30, eval_interval=0, log_interval=20,
    ),
    # Graves 2013 §5: the same stack and training, plus the soft window with K = 10 Gaussians.
    "graves-synthesis": Config(
        hidden_size=400, num_layers=3, mixtures=20, window_gaussians=10, optimizer="rmsprop", lr=1e-4,
        alpha=0.95, momentum=0.9, eps=1e-4, centered=True, clip=0.0, batch_size=32, epochs=30, eval_interval=0,
        log_interval=20,
    ),
    # A CPU-sized synthesis network (3 x 128, Adam at 1e-3 to learn in fewer steps): what fits in an hour or
    # two on a laptop core. Graves' derivative clipping stays on.
    "synthesis-cpu": Config(
        hidden_size=128, num_layers=3, mixtures=20, window_gaussians=10, optimizer="adam", lr=1e-3, clip=0.0,
        batch_size=32, epochs=10, eval_interval=200, log_interval=20,
    ),
}
DEFAULT_PRESET = "graves-prediction"


def build_model(config: Config, vocab: Vocab) -> HandwritingPredictor | HandwritingSynthesizer:
    if config.window_gaussians:
        return HandwritingSynthesizer(len(vocab), config.hidden_size, config.num_layers, config.mixtures,
                                      config.window_gaussians, config.chars_per_point, config.clip_gradients)
    return HandwritingPredictor(config.hidden_size, config.num_layers, config.mixtures, config.peepholes,
                                config.clip_gradients)


def stats_of(config: Config) -> strokes.StrokeStats:
    return strokes.StrokeStats(config.mean_dx, config.mean_dy, config.std_dx, config.std_dy)


def load_lines(config: Config) -> tuple[list[tuple], list[tuple], strokes.StrokeStats, str]:
    """Training and validation lines as ``(text, offsets)`` (raw units), the training statistics, and a
    description. The synthesis network keeps only lines whose text it can write (the rest are counted)."""
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
        train, valid = _thin(train, config.point_stride), _thin(valid, config.point_stride)
        stats = strokes.StrokeStats.from_offsets([offsets for _, offsets in train])
    if config.window_gaussians:
        train, valid = _writable(train, config.alphabet, "training"), _writable(valid, config.alphabet, "validation")
    return train, valid, stats, source


def _thin(lines: list[tuple], stride: int) -> list[tuple]:
    return [(text, strokes.thin_strokes(offsets, stride)) for text, offsets in lines]


def _writable(lines: list[tuple], alphabet: str, split: str) -> list[tuple]:
    """The lines whose text the synthesis network can write; ``lines`` is never empty (callers check)."""
    assert lines, f"no {split} lines to filter"
    known = set(alphabet)
    kept = [(text, offsets) for text, offsets in lines if text and set(text) <= known]
    if len(kept) < len(lines):
        strange = sorted(set("".join(text for text, _ in lines)) - known)
        log.info("skipped %d of %d %s lines: empty text or characters outside the alphabet (%s)",
                 len(lines) - len(kept), len(lines), split, "".join(strange) or "none")
    if not kept:
        raise UserError(f"none of the {len(lines)} {split} lines can be written with the alphabet {alphabet!r}; "
                        f"set alphabet= to the characters of the data")
    return kept


def _scored(lines: list[tuple], config: Config, split: str) -> list[tuple]:
    """Raw ``(text, offsets)`` lines as the run sees them: thinned, and writable for a synthesis run."""
    lines = _thin(lines, config.point_stride)
    return _writable(lines, config.alphabet, split) if config.window_gaussians else lines


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


def forward(model, batch: dict):
    """The model's output ``(B, T, 1 + 6M)`` and state for a batch of ``pad_lines``."""
    if "text" in batch:
        return model(batch["inputs"], batch["text"], batch["lengths"])
    return model(batch["inputs"], None)


class Task:
    """Shuffled batches of whole lines (no state carried between them); see train.py's protocol."""

    def __init__(self, config: Config, vocab: Vocab | None = None):
        if config.window_gaussians and config.peepholes:
            raise UserError("the synthesis network runs without peepholes: drop peepholes=true")
        train, valid, stats, source = load_lines(config)
        synthesis = {}
        if vocab is not None:  # resuming or evaluating: the run's statistics, not fresh ones
            stats = stats_of(config)
        elif config.window_gaussians:
            synthesis = {"chars_per_step": sum(len(t) for t, _ in train) / sum(len(o) for _, o in train),
                         "max_text_length": max(len(t) for t, _ in train)}
        self.config = replace(config, mean_dx=stats.mean_dx, mean_dy=stats.mean_dy, std_dx=stats.std_dx,
                              std_dy=stats.std_dy, **synthesis)
        self.vocab = vocab if vocab is not None else \
            Vocab(list(config.alphabet), "char") if config.window_gaussians else Vocab([], "strokes")
        self.train = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in train]
        self.valid = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in valid]
        self.lengths = [len(offsets) for _, offsets in self.train]  # for batches of similar lengths
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        log.info("data %s: %d training and %d validation lines, %s points; offsets normalised with the training "
                 "split's mean (%.3g, %.3g) and std (%.3g, %.3g)", source, len(self.train), len(self.valid),
                 f"{sum(len(o) for _, o in self.train):,}", stats.mean_dx, stats.mean_dy, stats.std_dx, stats.std_dy)

    def train_batch(self, step: int):
        picked = shuffled_batch(step, len(self.train), self.config.batch_size, self.config.seed, self.lengths)
        return pad_lines([self.train[i] for i in picked], self.vocab), True

    def loss(self, model, batch, state):
        y, _ = forward(model, batch)
        nll = sequence_nll(split_params(y)[1], batch["targets"], batch["mask"])
        return nll.mean(), None, int(batch["mask"].sum())

    def evaluate(self, model) -> dict:
        return evaluate_lines(model, self.valid, self.config.batch_size, self.vocab)

    def preview(self, model, step: int = 0, run_dir: str | None = None) -> str:
        """Draw a sample into RUN/samples/: unconditional, or the first validation text for synthesis."""
        if not run_dir or not self.config.sample_points:
            return ""
        from ..draw import save_strokes

        generator = torch.Generator(next(model.parameters()).device).manual_seed(self.config.seed)
        if self.config.window_gaussians:
            from ..writing import write_lines

            offsets = write_lines(model, self.config, self.vocab, [self.valid[0][0]], 0.0, generator).lines[0]
        else:
            offsets = write(model, self.config, self.config.sample_points, 0.0, generator)
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        path = os.path.join(run_dir, "samples", f"step-{step:07d}.svg")
        save_strokes(offsets, path)
        return f"wrote {path}"


@torch.inference_mode()
def evaluate_lines(model, lines: list[tuple], batch_size: int, vocab: Vocab | None = None) -> dict:
    """Negative log-likelihood of normalised ``(text, offsets)`` lines: nats per line (Graves' unit) and per point."""
    assert lines, "no lines to evaluate: the callers refuse an empty split with a UserError"
    model.eval()
    device = next(model.parameters()).device
    total, points = 0.0, 0
    for start in range(0, len(lines), batch_size):
        batch = {k: v.to(device) for k, v in pad_lines(lines[start : start + batch_size], vocab).items()}
        y, _ = forward(model, batch)
        total += sequence_nll(split_params(y)[1], batch["targets"], batch["mask"]).double().sum().item()
        points += int(batch["mask"].sum())
    return {"loss": total / len(lines), "nats_per_line": total / len(lines), "nats_per_point": total / points,
            "lines": len(lines), "points": points}


@torch.inference_mode()
def write(model, config: Config, points: int, bias: float, generator: torch.Generator) -> np.ndarray:
    """Sample ``points`` offsets ``(points, 3)`` unconditionally, in the data's own units."""
    if config.window_gaussians:
        raise UserError("this run is a synthesis network: it writes a text you give it, with rnnlab write TEXT --model RUN")
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
    if split not in ("valid", "all"):
        raise UserError(f"--split must be valid or all for a handwriting run, got {split}")
    config = replace(run.config, data=data or _trained_on(run))
    stats = stats_of(run.config)
    if split == "all":
        if not config.data:
            raise UserError("--split all scores every line of --data PATH (an IAM-OnDB folder or archive)")
        lines = _scored([(line.text, line.offsets) for line in iamondb.load_iamondb(config.data)[0]], config, "scored")
    elif config.data:  # the run's own split of these forms; its training side is not needed
        every = iamondb.load_iamondb(config.data)[0]
        lines = strokes.split_by_form(every, config.valid_fraction)[1]
        if not lines:
            raise UserError(f"the run's split by form (valid_fraction={config.valid_fraction:g}) holds none of the "
                            f"{len({line.form_id for line in every})} forms at {config.data} for validation; score "
                            f"every line with --split all")
        lines = _scored([(line.text, line.offsets) for line in lines], config, "validation")
    else:
        lines = load_lines(config)[1]
    normalised = [(text, stats.normalise(offsets.astype(np.float32))) for text, offsets in lines]
    result = evaluate_lines(run.model, normalised, run.config.batch_size, run.vocab)
    return {**result, "split": split, "data": config.data or "synthetic"}


def _trained_on(run) -> str:
    """The data a run stored, for an evaluation given no ``--data``: refused where it is not on this machine."""
    if os.path.realpath(run.path) == os.path.realpath(checkpoint.resolve_run_dir(checkpoint.BUILTIN_HANDWRITING)):
        raise UserError(f"{checkpoint.BUILTIN_HANDWRITING} ships without its data (IAM-OnDB may not be "
                        f"redistributed): evaluate it with --data PATH, the IAM-OnDB folder or its .tar.xz")
    if run.config.data and not os.path.exists(run.config.data):
        raise UserError(f"{run.path} was trained on {run.config.data}, which does not exist here; give --data PATH "
                        f"(the same IAM-OnDB folder or .tar.xz, wherever it is now)")
    return run.config.data
