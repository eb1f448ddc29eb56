"""Sequence labelling (a class per step) and sequence classification (a class, or a number, per sequence).

Data is a JSONL file (format in ``rnnlab/data/sequences.py``) or a built-in toy task generated from the
seed: ``bit-pair`` (class = 2 x previous bit + current bit, per step), ``adding`` (Hochreiter & Schmidhuber's
adding problem, a number per sequence), ``copy`` (recall symbols after a delay, per step). Metrics:
accuracy and a confusion matrix (classes), mean squared error (numbers).
"""

from dataclasses import dataclass, replace
import logging
import math

import torch
from torch.nn import functional as F

from ..config import MAX_COUNT, MAX_LAYERS, MAX_WIDTH, TrainConfig, at_least, at_most, choose
from ..data import sequences as seqs
from ..data.text import Vocab
from ..distributed import SINGLE, World
from ..errors import UserError
from ..models import SequenceClassifier
from ..recurrent import CELL_TYPES
from ..data.order import shuffled_batch
from ..shapes import check_labels
from .base import Preset, Task

log = logging.getLogger(__name__)

TOYS = ("bit-pair", "adding", "copy")
SCORED = {"step": "one label per step ('labels')", "sequence": "one label or target per sequence ('label', 'target')"}
TOY_BYTES_PER_STEP = 24     # inputs, labels and the generator's temporaries, per sequence step (bit-pair, the most)
TOY_MEMORY_LIMIT = 2**31    # 2 GiB: far above any toy task that trains in minutes


@dataclass
class Config(TrainConfig):
    data: str = ""                  # a JSONL file; empty = the toy task named by `toy`
    toy: str = "bit-pair"           # bit-pair, adding or copy (used when data is empty)
    seq_len: int = 20               # toy sequence length (bit-pair, adding)
    symbols: int = 8                # copy: alphabet size (chance = 1 / symbols)
    copy_length: int = 3            # copy: symbols to remember
    delay: int = 20                 # copy: blank steps between the symbols and the go marker
    train_size: int = 2000          # toy: training sequences
    valid_size: int = 500           # toy: validation sequences
    valid_fraction: float = 0.1     # JSONL: share of the sequences held out (a seeded shuffle)
    max_length: int = 0             # JSONL: a sequence longer than this is an error (0: no limit)
    cell: str = "lstm"              # rnn, rnn_relu, lstm or gru
    hidden_size: int = 64           # units per layer
    num_layers: int = 1             # stacked layers
    embedding_size: int = 32        # token inputs: embedding width (at least 1: this model has no one-hot input)
    dropout: float = 0.0            # on the inputs, between layers and before the output
    forget_bias: float = 1.0        # LSTM forget-gate bias at init
    scored: str = ""                # filled in from the data: "step" or "sequence", what the run learnt to label

    def validate(self) -> None:
        super().validate()
        choose(self.cell, CELL_TYPES, "cell")
        choose(self.scored, ("", *SCORED), "scored")
        if not self.data:
            choose(self.toy, TOYS, "toy")
        at_least(self, 1, "seq_len", "symbols", "copy_length", "train_size", "valid_size", "hidden_size", "num_layers")
        at_most(self, MAX_WIDTH, "hidden_size", "embedding_size")
        at_most(self, MAX_LAYERS, "num_layers")
        at_least(self, 0, "max_length")
        at_most(self, MAX_COUNT, "seq_len", "symbols", "copy_length", "delay", "train_size", "valid_size", "max_length")
        if self.embedding_size < 1:
            raise UserError(f"embedding_size must be at least 1, got {self.embedding_size}: the classifier embeds "
                            f"token ids and has no one-hot input (0 means one-hot in charlm and wordlm only)")
        if self.delay < 0:
            raise UserError(f"delay (copy: blank steps before the go marker) must not be negative, got {self.delay}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction (the share of a JSONL file held out) must be in (0, 1), "
                            f"got {self.valid_fraction}")
        if not self.data and self.toy in ("adding", "bit-pair") and self.seq_len < 2:
            reason = "one marker in each half" if self.toy == "adding" else "step 0, with no previous bit, is not scored"
            raise UserError(f"the {self.toy} task needs seq_len >= 2 ({reason}), got {self.seq_len}")
        if not self.data:
            self._check_toy_size()

    def _check_toy_size(self) -> None:
        """Refuse a toy set too big to generate in memory, before the generator tries (and the system swaps)."""
        length = seqs.copy_length(self.copy_length, self.delay) if self.toy == "copy" else self.seq_len
        steps = (self.train_size + self.valid_size) * length
        if steps * TOY_BYTES_PER_STEP > TOY_MEMORY_LIMIT:
            knobs = ["train_size", "valid_size", *(["copy_length", "delay"] if self.toy == "copy" else ["seq_len"])]
            raise UserError(f"the {self.toy} toy set would hold {self.train_size + self.valid_size:,} sequences x "
                            f"{length:,} steps, about {steps * TOY_BYTES_PER_STEP / 2**30:.0f} GiB; lower "
                            f"{', '.join(knobs[:-1])} or {knobs[-1]} (the limit is {TOY_MEMORY_LIMIT // 2**30} GiB)")


_TOY = dict(optimizer="adam", lr=1e-2, clip=1.0, batch_size=32, eval_interval=0, log_interval=20)
PRESETS = {
    "bit-pair": Preset(Config(toy="bit-pair", seq_len=20, hidden_size=16, epochs=4, **_TOY),
                       "rnnlab's per-step labelling check: class = 2 x previous bit + current bit"),
    "adding": Preset(Config(toy="adding", seq_len=30, hidden_size=32, train_size=4000, epochs=8,
                            **{**_TOY, "lr": 5e-3}),
                     "Hochreiter & Schmidhuber 1997's adding problem, T = 30: one number per sequence"),
    # Delay 40: the vanilla RNN stays at chance (1/8) while the LSTM and the GRU recall every symbol
    # (tests/test_classify.py). A forget-gate bias of 3 keeps the LSTM's memory open from the first step,
    # which a delay this long needs to be learned in 1,250 steps (Gers et al. 2000; Tallec & Ollivier 2018).
    "copy": Preset(Config(toy="copy", symbols=8, copy_length=3, delay=40, hidden_size=64, train_size=4000,
                          epochs=10, forget_bias=3.0, **{**_TOY, "lr": 5e-3}),
                   "the copy (delayed recall) task of Hochreiter & Schmidhuber 1997, delay 40, 8 symbols"),
}


def load_data(config: Config, vocab: Vocab | None = None) -> tuple[seqs.Sequences, seqs.Sequences, Vocab]:
    """Training and validation sets and the vocabulary, from the JSONL file or the seeded toy generator.
    A run's ``vocab`` (resume, evaluate) maps the file's tokens and classes to the ids the model learnt."""
    generator = torch.Generator().manual_seed(config.seed)
    if config.data:
        data, tokens, labels = seqs.read_jsonl(config.data, vocab, config.max_length)
        order = torch.randperm(len(data), generator=generator)
        n_valid = max(1, round(len(data) * config.valid_fraction))
        if len(data) - n_valid < 1:
            raise UserError(f"{config.data} has {len(data)} sequence(s): too few to hold out {config.valid_fraction:.0%} "
                            f"for validation and still train")
        if vocab is None:
            vocab = Vocab(tokens, "token", labels, 0 if tokens else data.inputs.size(-1))
        train, valid = data.subset(order[n_valid:]), data.subset(order[:n_valid])
        for name, part in (("training", train), ("validation", valid)):
            if not part.scored():
                raise UserError(f"the {len(part)} {name} sequences of {config.data} (a seeded shuffle) have no "
                                f"labelled step; label more steps, or change valid_fraction or seed")
        log.info("data %s: %d sequences; %d held out for validation (seeded shuffle, seed %d)",
                 config.data, len(data), n_valid, config.seed)
        return train, valid, vocab
    if config.toy == "bit-pair":
        make = lambda n: seqs.bit_pair(n, config.seq_len, generator)  # noqa: E731
        vocab = Vocab([], "token", ["0 (00)", "1 (01)", "2 (10)", "3 (11)"], features=1)
    elif config.toy == "adding":
        make = lambda n: seqs.adding(n, config.seq_len, generator)  # noqa: E731
        vocab = Vocab([], "token", [], features=2)
    else:
        make = lambda n: seqs.copy(n, config.symbols, config.copy_length, config.delay, generator)  # noqa: E731
        vocab = Vocab(["_", *map(str, range(1, config.symbols + 1)), "GO"], "token",
                      [str(i) for i in range(1, config.symbols + 1)])
    train, valid = make(config.train_size), make(config.valid_size)
    log.info("toy task %s: %d training and %d validation sequences generated from seed %d",
             config.toy, len(train), len(valid), config.seed)
    return train, valid, vocab


def outputs_and_labels(model, batch: dict, per_step: bool):
    """Model outputs at the scored positions and their labels: every step ``(B*T, C)`` or the last real step ``(B, C)``."""
    inputs, labels = batch["inputs"], batch["labels"]
    check_labels(inputs, labels, per_step)
    out, _ = model(inputs, None)
    if per_step:
        return out.reshape(-1, out.size(-1)), labels.reshape(-1)
    last = (batch["lengths"] - 1).to(out.device)
    return out[torch.arange(out.size(0), device=out.device), last], labels


class Classify(Task):
    """Shuffled mini-batches of whole sequences (no state carried between them).

    Models: ``model(inputs, state=None) -> (outputs (B, T, C), state)``: token ids ``(B, T)`` or feature
    vectors ``(B, T, F)`` in, a class logit vector (or one number, for regression) per step out.
    """

    name = "classify"
    Config = Config
    presets = PRESETS
    default_preset = "bit-pair"
    generates = ""
    loss_is_token_mean = True  # labelled steps per sequence vary (padding, ignored labels)
    model_signature = "model(inputs (B, T) ids or (B, T, F) features, state=None) -> (outputs (B, T, C), state)"

    @classmethod
    def loss_unit(cls, vocab: Vocab) -> str:
        return "nats per label" if vocab.labels else "mean squared error"  # no classes: a number per sequence

    @classmethod
    def build_model(cls, config: Config, vocab: Vocab) -> SequenceClassifier:
        return SequenceClassifier(
            max(len(vocab.labels), 1), cell=config.cell, hidden_size=config.hidden_size,
            num_layers=config.num_layers, vocab_size=len(vocab.tokens), embedding_size=config.embedding_size,
            feature_size=vocab.features, dropout=config.dropout, forget_bias=config.forget_bias,
        )

    def __init__(self, config: Config, vocab: Vocab | None = None):
        self.config = config
        self.train, self.valid, self.vocab = load_data(config, vocab)
        if vocab is not None and (vocab.labels, vocab.tokens, vocab.features) != \
                (self.vocab.labels, self.vocab.tokens, self.vocab.features):  # a toy task whose settings changed
            raise UserError(f"the toy task {config.toy} with these settings has other tokens or classes than the "
                            f"run's; resume with the run's toy and symbols")
        self.config = replace(config, scored=check_scored(self.train, config, config.data or config.toy))
        self.regression = self.train.regression
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        lengths = self.train.lengths
        # Batches of similar lengths when they differ (a long sequence pads only its own batch); toy sets, of one
        # length, keep their plain shuffled order.
        self.lengths = lengths if bool((lengths != lengths[0]).any()) else None

    def train_batch(self, step: int):
        picked = shuffled_batch(step, len(self.train), self.config.batch_size, self.config.seed, self.lengths)
        return self.train.batch(picked), True

    def loss(self, model, batch, state):
        out, labels = outputs_and_labels(model, batch, self.train.per_step)
        if self.regression:
            return F.mse_loss(out.squeeze(-1), labels), None, labels.numel()
        return F.cross_entropy(out, labels, ignore_index=seqs.IGNORE), None, int((labels != seqs.IGNORE).sum())

    def evaluate(self, model, world: World = SINGLE) -> dict:
        return evaluate_set(model, self.valid, self.vocab, self.config.batch_size, adding_baseline(self.config), world)

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Score the run's validation set, or every sequence of the JSONL file ``data``."""
        if split != "valid":
            raise UserError("a classify run has one held-out set: use --split valid, or --data FILE to score a file")
        if data is None:
            _, valid, _ = load_data(run.config, run.vocab)
        else:
            valid, _, _ = seqs.read_jsonl(data, run.vocab, run.config.max_length)  # the run's ids: a subset is fine
            check_scored(valid, run.config, data)
        result = evaluate_set(run.model, valid, run.vocab, run.config.batch_size,
                              adding_baseline(run.config) if data is None else None)
        return {**result, "data": data or run.config.data or run.config.toy}

    @classmethod
    def describe(cls, result: dict, vocab: Vocab) -> str:
        """Accuracy and the confusion matrix (classes), or the mean squared error (numbers)."""
        if "mse" in result:
            baseline = result.get("baseline_mse")
            shown = f" (always answering 1: {baseline:.5f})" if baseline is not None else ""
            return (f"{result['data']}: mean squared error {result['mse']:.5f}{shown} over {result['sequences']:,} "
                    f"sequences")
        names = vocab.labels
        width = max(len(n) for n in names) + 1
        rows = [f"{result['data']}: accuracy {result['accuracy']:.4f} ({result['tokens']:,} scored), "
                f"loss {result['loss']:.4f}", "confusion (rows: true, columns: predicted)",
                " " * width + "".join(f"{n[:8]:>9}" for n in names)]
        rows += [f"{name:<{width}}" + "".join(f"{c:>9,}" for c in row) for name, row in zip(names, result["confusion"])]
        return "\n".join(rows)


def check_scored(data: seqs.Sequences, config: Config, source: str) -> str:
    """What ``data`` labels ("step" or "sequence"); an error when the run (``config.scored``) learnt the other."""
    scored = "step" if data.per_step else "sequence"
    if config.scored and scored != config.scored:
        raise UserError(f"{source} has {SCORED[scored]}, but the run was trained on {SCORED[config.scored]}; "
                        f"give it data of that form")
    return scored


def adding_baseline(config: Config) -> float | None:
    """The MSE of always answering 1, for the adding toy set; None for any other data (no known baseline)."""
    return seqs.ADDING_BASELINE_MSE if not config.data and config.toy == "adding" else None


@torch.inference_mode()
def evaluate_set(model, data: seqs.Sequences, vocab: Vocab, batch_size: int, baseline_mse: float | None = None,
                 world: World = SINGLE) -> dict:
    """Loss and accuracy with the confusion matrix (rows: true class, columns: predicted), or MSE (reported
    beside ``baseline_mse`` when the data has one); in a job of several processes each scores its part of
    the sequences and the sums are reduced."""
    model.eval()
    device = next(model.parameters()).device
    classes = len(vocab.labels)
    confusion = torch.zeros(max(classes, 1), max(classes, 1), dtype=torch.long)
    total_loss, scored = 0.0, 0
    part = world.part(len(data))
    for start in range(part.start, part.stop, batch_size):
        batch = data.batch(torch.arange(start, min(start + batch_size, part.stop)))
        batch = {k: v.to(device) for k, v in batch.items()}
        out, labels = outputs_and_labels(model, batch, data.per_step)
        if data.regression:
            total_loss += F.mse_loss(out.squeeze(-1), labels, reduction="sum").item()
            scored += labels.numel()
            continue
        keep = labels != seqs.IGNORE
        total_loss += F.cross_entropy(out[keep], labels[keep], reduction="sum").item()
        scored += int(keep.sum())
        pairs = labels[keep] * classes + out[keep].argmax(-1)
        confusion += torch.bincount(pairs.cpu(), minlength=classes * classes).view(classes, classes)
    total_loss, scored, *cells = world.total(total_loss, scored, *confusion.flatten().tolist())
    scored, confusion = int(scored), torch.tensor(cells, dtype=torch.long).view_as(confusion)
    if data.regression:
        return {"loss": total_loss / scored, "mse": total_loss / scored, "baseline_mse": baseline_mse,
                "sequences": scored}
    correct = int(confusion.diag().sum())
    return {"loss": total_loss / scored, "accuracy": correct / scored, "tokens": scored,
            "confusion": confusion.tolist()}
