"""Online handwriting recognition (Graves et al., TPAMI 2009): lines of pen offsets -> their text, by a
bidirectional LSTM trained with connectionist temporal classification (``recognizer.py``, ``ctc.py``).

Data: IAM-OnDB lines (the folder or ``.tar.xz``, split by form as for the handwriting tasks) or, without
``--data``, synthetic Hershey lines. Each line becomes ``ink.features`` (resampled on its own scale); lines
whose text has a character outside the alphabet, or that are too short for an alignment of their text at
the model's frame stride, are skipped in training, counted. The loss is CTC's, in nats per character: the
batch's sum over lines divided by its characters. A non-finite loss is never masked: the loop skips the step.

Validation reports the loss, and the character and word error rates (``cer``, ``wer``) of best-path
decoding; ``rnnlab evaluate`` adds the run's own decoder (a beam with the character n-gram, ``beam`` and
``lm_weight``), which ``rnnlab read`` and ``Run.read`` use too.

Models: ``model(features (B, T, 4), lengths (B,)) -> (log-probabilities (B, T', 1 + A), frame lengths (B,))``:
the lengths are what travels beside the inputs, the protocol's state.
"""

from dataclasses import dataclass, replace
import logging
import math

import torch

from .. import ctc, ink
from ..config import MAX_COUNT, MAX_LAYERS, MAX_WIDTH, TrainConfig, at_least, at_most, shown
from ..data.order import shuffled_batch
from ..data.strokes import ALPHABET, VALID_FRACTION
from ..data.text import Vocab
from ..distributed import SINGLE, World
from ..errors import UserError
from ..ngram import MAX_LABELS, MAX_ORDER, CharNgram
from ..reading import Decoder, batch_features, edits, encode_texts, needed_frames, rates, read
from ..recognizer import Recognizer
from .base import LONG_LINES, Preset, Task
from .pen import load_lines, scored_lines

log = logging.getLogger(__name__)

MAX_BEAM = 1024  # prefixes kept by the beam search: far past where its accuracy stops growing (8-32)
MAX_LM_WEIGHT = 100.0  # the language model's weight: past this it alone decides the text


@dataclass
class Config(TrainConfig):
    data: str = ""                  # IAM-OnDB folder or .tar.xz; empty = synthetic Hershey lines
    synthetic_lines: int = 2000     # synthetic data: lines generated from the seed
    valid_fraction: float = VALID_FRACTION  # held out by form id (IAM-OnDB) or the last lines (synthetic)
    point_stride: int = 1           # keep every n-th point before resampling (1: all; resampling evens them anyway)
    alphabet: str = ALPHABET        # the characters it reads (lines with others are skipped)
    resample_step: float = ink.RESAMPLE_STEP  # points every this many line scales (ink.py)
    conv_channels: int = 64         # the convolution's outputs per frame
    frame_stride: int = 4           # points per frame: IAM-OnDB lines keep 5 frames per character
    hidden_size: int = 192          # LSTM units per direction
    num_layers: int = 3             # bidirectional layers (Graves 2009: one of 100 + 100; deeper reads better)
    dropout: float = 0.2            # between the layers and before the output
    lm_order: int = 6               # the character n-gram's order (0: no language model)
    lm_entries: int = 0             # set by the task: the n-grams of the training transcriptions
    beam: int = 16                  # what evaluate and read decode with: prefixes of the beam search (0: best path)
    lm_weight: float = 0.5          # the language model's weight in the beam search (0: none)

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "synthetic_lines", "point_stride", "conv_channels", "frame_stride", "hidden_size",
                 "num_layers")
        at_least(self, 0, "lm_order", "lm_entries", "beam", "lm_weight")
        at_most(self, MAX_WIDTH, "hidden_size", "conv_channels")
        at_most(self, MAX_LAYERS, "num_layers")
        at_most(self, MAX_COUNT, "synthetic_lines", "point_stride", "frame_stride", "lm_entries")
        at_most(self, MAX_ORDER, "lm_order")
        at_most(self, MAX_BEAM, "beam")
        at_most(self, MAX_LM_WEIGHT, "lm_weight")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.01 <= self.resample_step <= 10:
            raise UserError(f"resample_step (line scales between points) must be between 0.01 and 10, got "
                            f"{self.resample_step:g}")
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) >= MAX_LABELS:
            raise UserError(f"alphabet {shown(self.alphabet)} must list between 1 and {MAX_LABELS - 1} characters, "
                            f"each once, e.g. {ALPHABET!r}")

    @property
    def decoder(self) -> Decoder:
        return Decoder(self.beam, self.lm_weight if self.lm_order else 0.0)


PRESETS = {
    "recognizer-cpu": Preset(Config(
        hidden_size=192, num_layers=3, dropout=0.2, optimizer="adam", lr=1e-3, clip=5.0, batch_size=32,
        epochs=30, lr_schedule="cosine", min_lr=1e-5, precision="bf16", eval_interval=0, log_interval=20,
    ), "rnnlab's CPU-sized recogniser: a 3 x 192 BiLSTM over 4-point frames, Adam 1e-3 with a cosine decay, "
       "bf16 matrix products (Graves 2009: one 100 + 100 BLSTM layer, 25 features per point)"),
}


class Recognize(Task):
    """Strokes -> text with a BiLSTM and CTC (module docstring)."""

    name = "recognize"
    Config = Config
    presets = PRESETS
    default_preset = "recognizer-cpu"
    generates = ""
    model_signature = ("model(features (B, T, 4), state=lengths (B,)) -> (log-probabilities (B, T', 1 + A), "
                       "state=frame lengths (B,))")
    loss_is_token_mean = True  # nats per character: lines of a batch hold different numbers of them
    compile_refused = LONG_LINES

    @classmethod
    def loss_unit(cls, vocab) -> str:
        return "nats per character"

    @classmethod
    def build_model(cls, config: Config, vocab: Vocab) -> Recognizer:
        return Recognizer(ink.FEATURES, len(vocab), config.hidden_size, config.num_layers, config.conv_channels,
                          config.frame_stride, config.dropout, config.lm_order, config.lm_entries)

    @classmethod
    def usable(cls, lines: list[tuple], config: Config, split: str) -> list[tuple]:
        """The lines whose text is in the alphabet."""
        known = set(config.alphabet)
        kept = [(text, offsets) for text, offsets in lines if text and set(text) <= known]
        if len(kept) < len(lines):
            log.info("skipped %d of %d %s lines: empty text or characters outside the alphabet", len(lines) - len(kept),
                     len(lines), split)
        if not kept:
            raise UserError(f"none of the {len(lines)} {split} lines can be read with the alphabet "
                            f"{shown(config.alphabet)}; set alphabet= to the characters of the data")
        return kept

    def __init__(self, config: Config, vocab: Vocab | None = None):
        train, valid, _, source = load_lines(config)
        self.vocab = vocab if vocab is not None else Vocab(list(config.alphabet), "char")
        self.train = self._trainable(self.usable(train, config, "training"), config)
        # every validation line, even one too short for its text: scored, its loss counted as unreachable
        self.valid = [(text, ink.features(offsets, config.resample_step))
                      for text, offsets in self.usable(valid, config, "validation")]
        self.lm = None
        if config.lm_order:
            self.lm = CharNgram.train([self.vocab.encode(list(text)).add(1).tolist() for text, _ in self.train],
                                      config.lm_order, len(self.vocab))
        entries = len(self.lm.counts) if self.lm is not None else 0
        self.config = config if vocab is not None else replace(config, lm_entries=entries)
        self.lengths = torch.tensor([len(f) for _, f in self.train])
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        log.info("data %s: %d training and %d validation lines, %s points after resampling; a %d-gram of %s "
                 "n-grams", source, len(self.train), len(self.valid), f"{int(self.lengths.sum()):,}",
                 config.lm_order, f"{entries:,}")

    @staticmethod
    def _trainable(lines: list[tuple], config: Config) -> list[tuple]:
        """``(text, features)`` of the lines that hold enough frames for their text (CTC's condition): the
        others could only give an infinite loss."""
        out, short = [], 0
        for text, offsets in lines:
            f = ink.features(offsets, config.resample_step)
            if math.ceil(len(f) / config.frame_stride) >= needed_frames(text):
                out.append((text, f))
            else:
                short += 1
        if short:
            log.info("skipped %d of %d training lines: too few points for their text at frame_stride %d", short,
                     len(lines), config.frame_stride)
        if not out:
            raise UserError(f"none of the {len(lines)} training lines has enough points for its text at "
                            f"frame_stride {config.frame_stride}; lower frame_stride or resample_step")
        return out

    def prepare(self, model: Recognizer) -> None:
        """The language model of the training transcriptions goes into the model's buffers."""
        model.set_language_model(self.lm)

    def train_batch(self, step: int):
        picked = shuffled_batch(step, len(self.train), self.config.batch_size, self.config.seed, self.lengths)
        return self._batch([self.train[i] for i in picked]), True

    def _batch(self, lines: list[tuple]) -> dict:
        features, lengths = batch_features([f for _, f in lines])
        targets, target_lengths = encode_texts([text for text, _ in lines], self.vocab)
        return {"features": features, "lengths": lengths, "targets": targets, "target_lengths": target_lengths}

    def loss(self, model, batch, state):
        log_probs, frames = model(batch["features"], batch["lengths"])
        nll = ctc.loss(log_probs, batch["targets"], frames, batch["target_lengths"])
        chars = int(batch["target_lengths"].sum())
        return nll.sum() / chars, None, chars

    def evaluate(self, model, world: World = SINGLE) -> dict:
        """Validation nats per character and best-path error rates; each process scores its part."""
        return score(model, self.valid, self.vocab, Decoder(), self.config.batch_size, world)

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Nats per character and the error rates of the run's decoder and of the best path, on its
        validation lines or every line at ``data`` (``split="all"``)."""
        lines, source = scored_lines(cls, run, data, split)
        lines = [(text, ink.features(offsets, run.config.resample_step)) for text, offsets in lines]
        decoder = run.config.decoder
        best_path = score(run.model, lines, run.vocab, Decoder(), run.config.batch_size)
        result = {**best_path, **{f"best_path_{k}": best_path[k] for k in ("cer", "wer")}}
        if decoder.beam:
            result.update(score(run.model, lines, run.vocab, decoder, run.config.batch_size, loss=False))
        return {**result, "decoder": str(decoder), "data": source, "split": split}

    @classmethod
    def read(cls, model, config: Config, vocab: Vocab, lines: list, beam: int, lm_weight: float) -> list[str]:
        for name, value, high in (("beam", beam, MAX_BEAM), ("lm_weight", lm_weight, MAX_LM_WEIGHT)):
            if not 0 <= value <= high:
                raise UserError(f"{name} must be between 0 and {high:g}, got {value}")
        decoder = Decoder(beam, lm_weight if config.lm_order else 0.0)
        features = [ink.features(offsets, config.resample_step) for offsets in lines]
        return read(model, features, vocab, decoder, config.batch_size)

    @classmethod
    def describe(cls, result: dict, vocab) -> str:
        line = (f"{result['data']} ({result['split']}): CER {100 * result['cer']:.2f} %, WER {100 * result['wer']:.2f} % "
                f"({result['decoder']}) over {result['lines']:,} lines")
        if result["decoder"] != str(Decoder()):
            line += (f"; best path: CER {100 * result['best_path_cer']:.2f} %, "
                     f"WER {100 * result['best_path_wer']:.2f} %")
        return line + f"; CTC loss {result['loss']:.4f} nats per character"

@torch.inference_mode()
def score(model, lines: list[tuple], vocab: Vocab, decoder: Decoder, batch_size: int, world: World = SINGLE,
          loss: bool = True) -> dict:
    """CTC nats per character (``loss``; lines no alignment reaches are counted apart, as ``unreachable``) and
    the error rates of ``decoder`` over ``(text, features)`` lines; in a job of several processes each scores
    its part and the sums are reduced."""
    model.eval()
    device = next(model.parameters()).device
    part = [lines[i] for i in world.part(len(lines))]
    nats, chars, unreachable = 0.0, 0, 0
    for start in range(0, len(part), batch_size) if loss else ():
        features, lengths = batch_features([f for _, f in part[start : start + batch_size]])
        targets, target_lengths = encode_texts([text for text, _ in part[start : start + batch_size]], vocab)
        log_probs, frames = model(features.to(device), lengths.to(device))
        nll = ctc.loss(log_probs, targets.to(device), frames, target_lengths.to(device)).double()
        finite = nll.isfinite()
        nats += nll[finite].sum().item()
        chars += int(target_lengths[finite.cpu()].sum())
        unreachable += int((~finite).sum())
    texts = read(model, [f for _, f in part], vocab, decoder, batch_size)
    counts = edits([text for text, _ in part], texts)
    nats, chars, unreachable, *counts = world.total(nats, chars, unreachable, *counts)
    result = {"loss": nats / max(chars, 1)} if loss else {}
    result.update({**rates(*counts), "lines": len(lines)})
    if loss:
        result["unreachable"] = int(unreachable)
    return result
