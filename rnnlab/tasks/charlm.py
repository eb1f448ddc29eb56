"""Character-level language modelling on any UTF-8 text (tiny Shakespeare built in).

The vocabulary is the set of characters of the training part; validation is the contiguous last
``valid_fraction`` of the text (nanoGPT's split: the first ``int(0.9 * N)`` characters train). Losses are
in nats per character; evaluations also report bits per character.
"""

from dataclasses import dataclass
import logging

from ..data.text import BUILTIN_PREFIX, Vocab, read_text
from ..errors import UserError
from .base import Preset
from .lm import LMConfig, LMTask, bits, eval_stream, evaluate_stream

log = logging.getLogger(__name__)


@dataclass
class Config(LMConfig):
    data: str = BUILTIN_PREFIX + "tinyshakespeare"  # a UTF-8 text file, or builtin:NAME
    valid_fraction: float = 0.1     # the contiguous tail held out for validation (nanoGPT's 10 %)

    def validate(self) -> None:
        super().validate()
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")


PRESETS = {
    "char-rnn": Preset(Config(
        cell="lstm", hidden_size=128, num_layers=2, embedding_size=0, seq_len=50, batch_size=50,
        optimizer="rmsprop", lr=2e-3, alpha=0.95, clip=0.0, clip_value=5.0, lr_schedule="step",
        lr_decay=0.97, decay_after=10, epochs=50, init="uniform", init_scale=0.08, eval_interval=200,
    ), "karpathy/char-rnn's defaults: 2x128 LSTM on one-hot input, RMSprop 2e-3 (decay 0.95), seq 50, batch 50, "
       "element-wise clip 5, lr x0.97 per epoch after 10, uniform +-0.08 init"),
    # Karpathy's min-char-rnn (../shared/seeds/rnn-bptt-lstm-min-char-rnn.txt): vanilla tanh RNN, hidden 100,
    # one-hot input, seq 25, batch 1, Adagrad lr 0.1, gradients clipped element-wise to +-5, weights ~ N(0, 0.01^2).
    # min-char-rnn sums the loss over the 25 steps where rnnlab averages it, so its clip of 5 is 5 / 25 here;
    # Adagrad divides the gradient's scale out, so lr stays 0.1. Two differences remain: torch's RNN has two
    # recurrent biases (b_ih, b_hh) where min-char-rnn has one, and Adagrad's eps sits outside the square root.
    "min-char-rnn": Preset(Config(
        cell="rnn", hidden_size=100, num_layers=1, embedding_size=0, seq_len=25, batch_size=1,
        optimizer="adagrad", lr=0.1, clip=0.0, clip_value=5.0 / 25, init="normal", init_scale=0.01,
        forget_bias=0.0, epochs=1, eval_interval=5000, log_interval=500,
    ), "Karpathy's min-char-rnn (../shared/seeds/rnn-bptt-lstm-min-char-rnn.txt): tanh RNN 100, seq 25, Adagrad 0.1"),
    # The TF tutorial of ../shared/seeds/gru-shakespeare-generation.txt: embedding 256, GRU 1024, Adam 1e-3,
    # seq 100, batch 64, 20 epochs, no clipping.
    "shakespeare-gru": Preset(Config(
        cell="gru", hidden_size=1024, num_layers=1, embedding_size=256, seq_len=100, batch_size=64,
        optimizer="adam", lr=1e-3, clip=0.0, epochs=20, eval_interval=0,
    ), "the TensorFlow text-generation tutorial: embedding 256, GRU 1024, Adam 1e-3, seq 100, batch 64"),
    # rnnlab's best-quality preset, for a GPU: 3x512 LSTM with dropout 0.25 (1 MB of text overfits a
    # model this size without it), AdamW with a cosine decay, global-norm clipping at 1.
    "shakespeare-lstm": Preset(Config(
        cell="lstm", hidden_size=512, num_layers=3, embedding_size=128, dropout=0.25, seq_len=128,
        batch_size=64, optimizer="adamw", lr=2e-3, weight_decay=0.01, clip=1.0, lr_schedule="cosine",
        min_lr=1e-4, epochs=30, eval_interval=0,
    ), "rnnlab's best-quality preset, for a GPU: 3x512 LSTM, dropout 0.25, AdamW with cosine decay"),
}


def split_text(text: str, valid_fraction: float) -> tuple[str, str]:
    """The first ``int((1 - valid_fraction) * N)`` characters train; the contiguous rest validates."""
    cut = int(len(text) * (1 - valid_fraction))
    return text[:cut], text[cut:]


def known_only(text: str, vocab: Vocab) -> tuple[str, list]:
    """``text`` without the characters ``vocab`` lacks (a validation tail may hold a few the training part
    never had), and those characters."""
    unseen = vocab.unknown(text)
    return ("".join(c for c in text if c in vocab.index) if unseen else text), unseen


class CharLM(LMTask):
    """Next-character prediction on one text, split 90/10 (module docstring)."""

    name = "charlm"
    Config = Config
    presets = PRESETS
    default_preset = "char-rnn"

    @classmethod
    def loss_unit(cls, vocab) -> str:
        return "nats per character"

    def __init__(self, config: Config, vocab: Vocab | None = None, text: str | None = None):
        text = read_text(config.data) if text is None else text
        train_text, valid_text = split_text(text, config.valid_fraction)
        vocab = vocab or Vocab.from_text(train_text)
        super().__init__(config, vocab, vocab.encode(train_text, "training text"))
        kept, unseen = known_only(valid_text, vocab)
        if len(kept) < 2:
            raise UserError(f"the validation part ({config.valid_fraction:.0%} of the text) is too short to score; "
                            f"use a longer text or a larger valid_fraction")
        if unseen:
            log.warning("validation text has %d characters absent from the training part (%s); they are left out",
                        len(unseen), ", ".join(repr(c) for c in unseen[:10]))
        valid_text = kept
        self.valid = eval_stream(vocab.encode(valid_text, "validation text"), config)
        log.info("data %s: %s characters, %d symbols; training on the first %s, validating on the contiguous "
                 "last %s (%g%%)", config.data, f"{len(text):,}", len(vocab), f"{len(train_text):,}",
                 f"{len(valid_text):,}", 100 * config.valid_fraction)

    @classmethod
    def metrics(cls, result: dict) -> dict:
        return {"loss": result["loss"], "bits_per_char": bits(result["loss"]), "tokens": result["tokens"]}

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Score ``data`` (a whole text file) with a loaded run, or the run's own validation split when None."""
        if split != "valid":
            raise UserError(f"a charlm run has no {split} split: it validates on the tail of its text; "
                            f"score another text with --data FILE")
        config = run.config
        if data is None:
            try:
                text = read_text(config.data)
            except UserError as e:
                raise UserError(f"the run's training data is not readable ({e}); pass --data FILE to score a "
                                f"text") from None
            _, valid_text = split_text(text, config.valid_fraction)
            valid_text, _ = known_only(valid_text, run.vocab)
            source = f"{config.data} (last {config.valid_fraction:.0%})"
        else:
            valid_text, source = read_text(data), data
        if len(valid_text) < 2:
            raise UserError(f"{source} is too short to score: it needs at least 2 characters")
        ids = run.vocab.encode(valid_text, source)
        return {**cls.metrics(evaluate_stream(run.model, eval_stream(ids, config))), "data": source}

    @classmethod
    def describe(cls, result: dict, vocab: Vocab) -> str:
        return (f"{result['data']}: {result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char "
                f"over {result['tokens']:,} characters")
