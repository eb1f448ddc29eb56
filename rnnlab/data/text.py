"""Text data: reading files with clear errors, vocabularies, and the stream layout of truncated BPTT.

Truncated BPTT batches (the layout of char-rnn, the TF PTB tutorial and pytorch/examples)::

    text (N = 24 tokens):  a b c d e f g h i j k l m n o p q r s t u v w x
    batch_size B = 4 cuts it into 4 contiguous rows of N // B = 6 tokens (a tail too short for a row is dropped):

        row 0: a b c d e f
        row 1: g h i j k l
        row 2: m n o p q r
        row 3: s t u v w x

    seq_len T = 2 cuts the rows into (B, T) windows, each with its targets one column to the right:

                 window 0           window 1           window 2 (short: evaluation only)
                 inputs  targets    inputs  targets    inputs  targets
        row 0:   a b     b c        c d     d e        e       f
        row 1:   g h     h i        i j     j k        k       l
        row 2:   m n     n o        o p     p q        q       r
        row 3:   s t     t u        u v     v w        w       x

    Window k reads columns [kT, kT + T) and predicts columns [kT + 1, kT + T + 1). Row r of window
    k + 1 continues exactly where row r of window k stopped, so the recurrent state left by window k
    is the right context for window k + 1: the training loop carries it over, detached, so the
    gradient stops at the window edge (that is the "truncated" in truncated BPTT).
"""

import copy
from dataclasses import dataclass, field
from importlib import resources
import json
import math

import torch

from ..errors import UserError
from ..files import read_bytes

BUILTIN_TEXTS = {"tinyshakespeare": "tinyshakespeare.txt"}
BUILTIN_PREFIX = "builtin:"


def read_text(path: str) -> str:
    """Read a UTF-8 text file; a missing, empty, binary or non-UTF-8 file is a UserError."""
    if path.startswith(BUILTIN_PREFIX):
        name = path[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_TEXTS:
            raise UserError(f"unknown built-in text {name!r}; built-in texts: {', '.join(BUILTIN_TEXTS)}")
        return resources.files(__package__).joinpath(BUILTIN_TEXTS[name]).read_text(encoding="utf-8")
    raw = read_bytes(path, "text", "data file", "give the path of a UTF-8 text file")
    if not raw.strip():
        raise UserError(f"data file {path} is empty; give a text file with some content")
    if b"\x00" in raw:
        raise UserError(f"data file {path} looks binary (it holds NUL bytes at offset {raw.index(0)}); give a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"data file {path} is not UTF-8 (bad byte 0x{raw[e.start]:02x} at offset {e.start}); "
            f"convert it first, for example: iconv -f latin1 -t utf-8 {path} > out.txt"
        ) from None


EOS = "<eos>"  # end of a line in word-level data (Zaremba et al., the TF tutorial, pytorch/examples)
UNK = "<unk>"  # the out-of-vocabulary word of PTB and WikiText


@dataclass
class Vocab:
    """Tokens <-> integer ids. ``kind`` is ``char`` (tokens are characters), ``word`` (whitespace-split
    words), ``token`` (labelled sequences) or ``strokes`` (pen offsets: no tokens). Labelled sequences also
    keep their ``labels`` (class names, in id order) and, when their inputs are feature vectors instead of
    tokens, the vector width ``features``."""

    KINDS = ("char", "word", "token", "strokes")

    tokens: list
    kind: str = "char"
    labels: list = field(default_factory=list)
    features: int = 0

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(sorted(set(text)), "char")

    def unknown(self, tokens) -> list:
        """The distinct tokens of ``tokens`` missing from this vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.index))

    def tokenize(self, text: str) -> list:
        """Split a user's text (a prime) into this vocabulary's kind of tokens."""
        return list(text) if self.kind == "char" else text.split()

    @property
    def start(self) -> str:
        """The token a fresh sequence follows: a newline, or the end-of-line word."""
        return "\n" if self.kind == "char" else EOS

    def encode(self, tokens, what: str = "text", unknown: str | None = None) -> torch.Tensor:
        """Ids of ``tokens``; a token missing from the vocabulary maps to ``unknown`` if given, else is an error."""
        if unknown is not None:
            unk = self.index[unknown]
            return torch.tensor([self.index.get(t, unk) for t in tokens], dtype=torch.long)
        missing = self.unknown(tokens)
        if missing:
            shown = ", ".join(repr(t) for t in missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise UserError(
                f"{what} has {len(missing)} {'character' if self.kind == 'char' else 'word'}"
                f"{'s' if len(missing) > 1 else ''} the model's vocabulary lacks: {shown}; remove or replace them"
            )
        return torch.tensor([self.index[t] for t in tokens], dtype=torch.long)

    def piece(self, i: int) -> str:
        """How token ``i`` prints in a stream of text: a character as it is; a word followed by a space,
        and the end-of-line word as a newline."""
        token = self.tokens[int(i)]
        if self.kind == "char":
            return token
        return "\n" if token == EOS else token + " "

    def decode(self, ids) -> str:
        return "".join(self.piece(i) for i in ids)

    def to_json(self) -> str:
        data = {"kind": self.kind, "tokens": self.tokens}
        if self.labels or self.features:
            data.update(labels=self.labels, features=self.features)
        return json.dumps(data, ensure_ascii=False, indent=0)

    @classmethod
    def from_data(cls, data: dict) -> "Vocab":
        """The vocabulary of :meth:`to_json`'s parsed JSON; a ValueError (or KeyError, TypeError) says what is wrong."""
        features = data.get("features", 0)
        if isinstance(features, bool) or not isinstance(features, int) or features < 0:
            raise ValueError(f"features must be a number of inputs, got {features!r}")
        labels = data.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise ValueError("labels must be a list of class names")
        if not isinstance(data["tokens"], list):
            raise TypeError("tokens must be a list")
        return cls(list(data["tokens"]), data["kind"], list(labels), features)


class TokenStream:
    """``ids`` (1-D) laid out as ``batch_size`` contiguous rows for truncated BPTT (see the module docstring)."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int):
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.row_len = ids.numel() // batch_size
        self.rows = ids[: batch_size * self.row_len].view(batch_size, self.row_len)

    @property
    def tokens(self) -> int:
        """Predicted tokens over all windows: every column of a row but the first."""
        return self.batch_size * max(self.row_len - 1, 0)

    @property
    def full_windows(self) -> int:
        """Windows of exactly ``seq_len`` steps: what training iterates over."""
        return max(self.row_len - 1, 0) // self.seq_len

    @property
    def windows(self) -> int:
        """All windows, the last one possibly shorter: what evaluation iterates over."""
        return math.ceil(max(self.row_len - 1, 0) / self.seq_len)

    def to(self, device) -> "TokenStream":
        """The same stream with its rows on ``device`` (itself when they are there already)."""
        if self.rows.device == torch.device(device):
            return self
        moved = copy.copy(self)
        moved.rows = self.rows.to(device)
        return moved

    def subset(self, rows: range) -> "TokenStream":
        """The same stream with only ``rows`` (one process's part of an evaluation)."""
        part = copy.copy(self)
        part.rows, part.batch_size = self.rows[rows.start : rows.stop], len(rows)
        return part

    def window(self, k: int):
        """Inputs and targets of window ``k``, each ``(batch_size, <= seq_len)``."""
        start = k * self.seq_len
        stop = min(start + self.seq_len, self.row_len - 1)
        return self.rows[:, start:stop], self.rows[:, start + 1 : stop + 1]
