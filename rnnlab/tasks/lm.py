"""What every language-model task shares: the model config, truncated-BPTT batches, the loss, streaming
evaluation and sampling. ``charlm`` and ``wordlm`` add their data and their metrics.
"""

from collections.abc import Iterator
from dataclasses import dataclass
import math

import torch
from torch.nn import functional as F

from ..config import MAX_COUNT, MAX_LAYERS, MAX_WIDTH, TrainConfig, at_least, at_most, choose, positive
from ..data.text import TokenStream, Vocab
from ..distributed import SINGLE, World
from ..errors import UserError
from ..models import INIT_SCHEMES, RNNLanguageModel
from ..recurrent import CELL_TYPES
from ..sampling import check_options, generate
from .base import Task

PREVIEW_TEMPERATURE = 0.8  # the sample printed at each evaluation: below 1 it shows what the model is sure of


@dataclass
class LMConfig(TrainConfig):
    seq_len: int = 50               # BPTT window: steps per batch before the gradient is cut
    cell: str = "lstm"              # rnn, rnn_relu, lstm or gru
    hidden_size: int = 128          # units per layer
    num_layers: int = 2             # stacked layers
    embedding_size: int = 0         # 0 = one-hot input, as char-rnn and min-char-rnn
    dropout: float = 0.0            # on the input, between layers and before the output (Zaremba et al.)
    weight_drop: float = 0.0        # DropConnect on the recurrent matrices W_hh, one mask a batch (AWD-LSTM)
    forget_bias: float = 1.0        # LSTM forget-gate bias at init (char-rnn uses 1, Zaremba et al. 0)
    init: str = "default"           # default (torch), uniform (+-init_scale), normal (std init_scale, zero biases)
    init_scale: float = 0.08        # char-rnn's uniform range
    tied: bool = False              # share the embedding and output matrices (Press & Wolf 2017, Inan et al. 2017)
    preview_length: int = 200       # tokens sampled at each evaluation so progress can be read; 0 = none

    def validate(self) -> None:
        super().validate()
        choose(self.cell, CELL_TYPES, "cell")
        choose(self.init, INIT_SCHEMES, "init")
        at_least(self, 1, "seq_len", "hidden_size", "num_layers")
        at_least(self, 0, "embedding_size", "preview_length")
        at_most(self, MAX_WIDTH, "hidden_size", "embedding_size")
        at_most(self, MAX_LAYERS, "num_layers")
        at_most(self, MAX_COUNT, "seq_len", "preview_length")
        positive(self, "init_scale")
        for key in ("dropout", "weight_drop"):
            if not 0 <= getattr(self, key) < 1:
                raise UserError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        if self.tied and self.embedding_size != self.hidden_size:
            raise UserError(f"tied=true shares the embedding with the output layer, so embedding_size must equal "
                            f"hidden_size (got {self.embedding_size} and {self.hidden_size}); set both alike")


def eval_stream(ids: torch.Tensor, config: LMConfig, rows: int | None = None) -> TokenStream:
    """Rows for streaming evaluation: ``rows`` (default up to ``batch_size``), each at least one window long."""
    rows = rows or config.batch_size
    rows = max(1, min(rows, ids.numel() // (config.seq_len + 1)))
    return TokenStream(ids, rows, config.seq_len)


@torch.inference_mode()
def evaluate_stream(model: torch.nn.Module, stream: TokenStream, world: World = SINGLE) -> dict:
    """Mean next-token loss (nats) over every window of ``stream``, the state carried across windows; in a
    job of several processes each takes its part of the rows and the sums are reduced."""
    model.eval()
    device = next(model.parameters()).device
    part = world.part(stream.batch_size)
    total, state = torch.zeros((), dtype=torch.float64, device=device), None
    if len(part):
        mine = stream.subset(part).to(device)
        for k in range(mine.windows):
            x, y = mine.window(k)
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
    return {"loss": world.total(total.item())[0] / stream.tokens, "tokens": stream.tokens}


class LMTask(Task):
    """Training data as a TBPTT stream; a subclass reads its data, sets ``self.valid`` and adds its metrics.

    Models: ``model(tokens (B, T) long, state) -> (logits (B, T, V), state)``, ``state`` None or the LSTM's
    ``(h, c)`` / the RNN's and GRU's ``h``, each ``(num_layers, B, hidden_size)``; ``model.step(tokens (B,),
    state)`` advances one token (sampling).
    """

    generates = "text"
    model_signature = "model(tokens (B, T) long, state=None) -> (logits (B, T, vocab), state)"

    @classmethod
    def build_model(cls, config: LMConfig, vocab: Vocab) -> RNNLanguageModel:
        return RNNLanguageModel(
            len(vocab), cell=config.cell, hidden_size=config.hidden_size, num_layers=config.num_layers,
            embedding_size=config.embedding_size, dropout=config.dropout, forget_bias=config.forget_bias,
            init=config.init, init_scale=config.init_scale, tied=config.tied, weight_drop=config.weight_drop,
        )

    def __init__(self, config: LMConfig, vocab: Vocab, train_ids: torch.Tensor):
        self.config = config
        self.vocab = vocab
        need = config.batch_size * (config.seq_len + 1)
        if train_ids.numel() < need:
            unit = "characters" if vocab.kind == "char" else "tokens"
            raise UserError(
                f"the training data has {train_ids.numel():,} {unit} but one batch needs "
                f"batch_size x (seq_len + 1) = {config.batch_size} x {config.seq_len + 1} = {need:,}; "
                f"use more data or lower batch_size / seq_len (--set batch_size=4 seq_len=32)"
            )
        self.train = TokenStream(train_ids, config.batch_size, config.seq_len)
        self.steps_per_epoch = self.train.full_windows

    def to(self, device) -> None:
        """Keep the training stream on the training device: no copy per batch."""
        self.train = self.train.to(device)

    def train_batch(self, step: int):
        k = step % self.steps_per_epoch
        return self.train.window(k), k == 0

    def loss(self, model, batch, state):
        x, y = batch
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        return loss, state, y.numel()

    def evaluate(self, model, world: World = SINGLE) -> dict:
        return self.metrics(evaluate_stream(model, self.valid, world))

    @classmethod
    def metrics(cls, result: dict) -> dict:
        """Add the task's derived figures (bits per char, perplexity) to a loss in nats per token."""
        return result

    def preview(self, model, step: int = 0, folder=None) -> str:
        if not self.config.preview_length:
            return ""
        generator = torch.Generator(next(model.parameters()).device).manual_seed(self.config.seed)
        prime = default_prime(self.vocab)
        ids = generate(model, prime, self.config.preview_length, temperature=PREVIEW_TEMPERATURE, generator=generator)
        return self.vocab.decode(prime.tolist()) + self.vocab.decode(list(ids))

    @classmethod
    def sample_text(cls, model, config, vocab: Vocab, prime: str, length: int, temperature: float = 1.0,
                    top_k: int = 0, top_p: float = 1.0, generator=None) -> Iterator[str]:
        """The prime ("" = a fresh line: a newline, or <eos>), then ``length`` sampled tokens, as text pieces."""
        check_options(temperature, top_k, top_p)
        if length < 0:
            raise UserError(f"length must be >= 0, got {length}")
        if prime and not vocab.tokenize(prime):
            raise UserError("the prime holds no token (only spaces); give at least one word, or leave it out")
        ids = default_prime(vocab) if not prime else vocab.encode(vocab.tokenize(prime), "the prime")
        return cls._stream(model, vocab, ids, length, temperature, top_k, top_p, generator)

    @staticmethod
    def _stream(model, vocab, ids, length, temperature, top_k, top_p, generator) -> Iterator[str]:
        yield vocab.decode(ids.tolist())
        for token in generate(model, ids, length, temperature, top_k, top_p, generator):
            yield vocab.piece(token)


def default_prime(vocab: Vocab) -> torch.Tensor:
    """Start where a fresh line starts (after a newline or <eos>), else from the first token."""
    return torch.tensor([vocab.index.get(vocab.start, 0)], dtype=torch.long)


def bits(loss: float) -> float:
    return loss / math.log(2)
