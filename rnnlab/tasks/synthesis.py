"""Handwriting synthesis (Graves 2013 §5): the prediction network's stack with a soft window over the
line's text (``attention.py``), so that it writes a given text.

The data, batches, loss and nats per line are ``pen.py``'s; each batch also carries the lines' texts as
character ids over the run's alphabet (``vocab.json``), and lines with a character outside the alphabet are
skipped (counted). ``rnnlab write`` turns text into handwriting with such a run (``writing.py``).

Models: ``model(offsets (B, T, 3), state) -> (mixture parameters (B, T, 1 + 6M), state)``, where the first
call's state is ``model.start(text (B, U) ids, lengths (B,))``: the text travels in the state
(``models.SynthesisState``).
"""

from collections.abc import Iterator
from dataclasses import dataclass
import logging

import torch

from ..config import MAX_COUNT, at_least, at_most, shown
from ..data.strokes import ALPHABET
from ..data.text import Vocab
from ..errors import UserError
from ..models import HandwritingSynthesizer
from ..writing import CHUNK_POINTS, Chunk, Handwriting, Style, check_texts, read_style_file, write_lines, write_stream
from .base import Preset
from .pen import MAX_MIXTURES, PenConfig, PenTask

log = logging.getLogger(__name__)

# The writing speed a run may record: IAM-OnDB lines take 0.05 characters per point (0.1 at point_stride 2);
# outside these bounds the cap of points is absurd (1e-30: 10^30 points) or no line gets a point per character.
MIN_PACE, MAX_PACE = 1e-4, 10.0


@dataclass
class Config(PenConfig):
    window_gaussians: int = 10      # Graves 2013 §5: K = 10 Gaussians in the soft window
    alphabet: str = ALPHABET        # the characters it can write (lines with others are skipped)
    chars_per_step: float = 0.0     # set by the task: characters per point in the training lines
    max_text_length: int = 0        # set by the task: the longest training text, the limit of write

    @property
    def chars_per_point(self) -> float:
        """``chars_per_step``, or 1 before the task has measured it."""
        return self.chars_per_step or 1.0

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "window_gaussians")
        at_least(self, 0, "max_text_length", "chars_per_step")  # 0: not measured yet (set from the data)
        at_most(self, MAX_MIXTURES, "window_gaussians")
        at_most(self, MAX_COUNT, "max_text_length")
        if self.chars_per_step and not MIN_PACE <= self.chars_per_step <= MAX_PACE:
            raise UserError(f"chars_per_step (characters per pen point, measured from the data) must be between "
                            f"{MIN_PACE:g} and {MAX_PACE:g}, got {self.chars_per_step:g}")
        if not self.alphabet:
            raise UserError(f"alphabet is empty: give the characters the synthesis network writes, e.g. {ALPHABET!r}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise UserError(f"alphabet {shown(self.alphabet)} lists a character twice; give each character once")


PRESETS = {
    "graves-synthesis": Preset(Config(
        hidden_size=400, num_layers=3, mixtures=20, window_gaussians=10, optimizer="rmsprop", lr=1e-4,
        alpha=0.95, momentum=0.9, eps=1e-4, centered=True, clip=0.0, batch_size=32, epochs=30, eval_interval=0,
        log_interval=20,
    ), "Graves 2013 §5: the prediction network's 3x400 stack and training, plus the soft window (K = 10)"),
    # Adam at 1e-3 learns in fewer steps than Graves' RMSProp; his derivative clipping stays on.
    "synthesis-cpu": Preset(Config(
        hidden_size=128, num_layers=3, mixtures=20, window_gaussians=10, optimizer="adam", lr=1e-3, clip=0.0,
        batch_size=32, epochs=10, eval_interval=200, log_interval=20,
    ), "rnnlab's CPU-sized synthesis network (3x128, Adam 1e-3): an hour or two on a laptop core"),
}


class Synthesis(PenTask):
    """Graves' synthesis network on lines of pen offsets and their texts (module docstring)."""

    name = "synthesis"
    Config = Config
    presets = PRESETS
    default_preset = "graves-synthesis"
    generates = "handwriting"
    model_signature = ("model(offsets (B, T, 3), state=model.start(text (B, U), lengths (B,))) -> "
                       "(mixture parameters (B, T, 1 + 6M), state)")

    @classmethod
    def build_model(cls, config: Config, vocab: Vocab) -> HandwritingSynthesizer:
        return HandwritingSynthesizer(len(vocab), config.hidden_size, config.num_layers, config.mixtures,
                                      config.window_gaussians, config.chars_per_point, config.clip_gradients)

    @classmethod
    def usable(cls, lines: list[tuple], config: Config, split: str) -> list[tuple]:
        """The lines whose text the network can write; ``lines`` is never empty (load_lines checks)."""
        assert lines, f"no {split} lines to filter"
        known = set(config.alphabet)
        kept = [(text, offsets) for text, offsets in lines if text and set(text) <= known]
        if len(kept) < len(lines):
            strange = sorted(set("".join(text for text, _ in lines)) - known)
            log.info("skipped %d of %d %s lines: empty text or characters outside the alphabet (%s)",
                     len(lines) - len(kept), len(lines), split, "".join(strange) or "none")
        if not kept:
            raise UserError(f"none of the {len(lines)} {split} lines can be written with the alphabet "
                            f"{shown(config.alphabet)}; set alphabet= to the characters of the data")
        return kept

    @classmethod
    def make_vocab(cls, config: Config) -> Vocab:
        return Vocab(list(config.alphabet), "char")

    @classmethod
    def fill_in(cls, config: Config, train: list[tuple]) -> dict:
        """The writing speed (the window's starting pace, the cap of points) and the longest text (write's limit)."""
        return {"chars_per_step": sum(len(t) for t, _ in train) / sum(len(o) for _, o in train),
                "max_text_length": max(len(t) for t, _ in train)}

    @staticmethod
    def forward(model, batch: dict):
        return model(batch["inputs"], model.start(batch["text"], batch["lengths"]))

    def preview(self, model, step: int = 0, folder=None) -> str:
        """Write the first validation line's text into the run's samples folder."""
        if folder is None or not self.config.sample_points:
            return ""
        generator = torch.Generator(next(model.parameters()).device).manual_seed(self.config.seed)
        path = folder.sample_path(step)
        config = self.config
        # write_lines, not Run.write: a validation text may be longer than the longest training text (write's limit)
        written = write_lines(model, self.vocab, [self.valid[0][0]], 0.0, generator, config.stats, config.chars_per_point)
        written.save(path)
        return f"wrote {path}"

    @classmethod
    def write_stream(cls, model, config: Config, vocab: Vocab, texts: list, bias: float, generator,
                     style: Style | str | None = None, chunk: int = CHUNK_POINTS) -> Iterator[Chunk | Handwriting]:
        """``texts`` (lines) in the model's hand, or primed by ``style``: a ``Style`` or a JSON file of one
        (``writing.write_stream``: the chunks, then the handwriting)."""
        check_texts(texts, vocab, config.max_text_length)
        if isinstance(style, str):
            style = read_style_file(style, config.point_stride)  # the data's strokes, thinned like the training lines
        if style is not None:
            vocab.encode(list(style.text), f"the style's text {style.text!r}")
        return write_stream(model, vocab, texts, bias, generator, config.stats, config.chars_per_point, style, chunk)
