"""The handwriting recogniser (after Graves et al. 2009): pen features -> a 1-D convolution that shortens the
line -> a bidirectional LSTM stack -> per-step log-probabilities over the blank and the alphabet (CTC).

::

    features   (B, T, F)      ink.features: offsets and height on the line's own scale, pen lifts
    conv       (B, T', C)     kernel 2s + 1, stride s: T' = ceil(T / s) frames, each seeing its s points
                              and s on either side (zeros past the line's ends, in a batch as alone)
    BiLSTM     (B, T', 2H)    bidirectional.py: the backward direction starts at each line's own last frame
    head       (B, T', 1 + A) log-softmax over the blank (id 0) and the A characters (ids 1..A)

The model also holds its character language model (``ngram.CharNgram``) as two buffers, ``lm_grams`` and
``lm_counts``, sized by the config and filled from the training transcriptions before training: the run
folder's ``model.safetensors`` is the whole recogniser.
"""

import torch
from torch import nn

from . import bidirectional
from .errors import ShapeError
from .ngram import CharNgram
from .shapes import check_sequence


class Recognizer(nn.Module):
    """``model(features (B, T, F), lengths (B,)) -> (log-probabilities (B, T', 1 + A), frame lengths (B,))``."""

    def __init__(self, features: int, alphabet_size: int, hidden_size: int = 128, num_layers: int = 3,
                 conv_channels: int = 64, stride: int = 4, dropout: float = 0.0, lm_order: int = 0,
                 lm_entries: int = 0):
        super().__init__()
        self.features, self.stride = features, stride
        self.conv = nn.Conv1d(features, conv_channels, 2 * stride + 1, stride=stride, padding=stride)
        sizes = [conv_channels] + [2 * hidden_size] * (num_layers - 1)
        self.forwards = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)
        self.backwards = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, alphabet_size + 1)
        self.register_buffer("lm_grams", torch.zeros(lm_entries, lm_order, dtype=torch.uint8))
        self.register_buffer("lm_counts", torch.zeros(lm_entries, dtype=torch.int64))
        self._lm = None  # the CharNgram the buffers hold, built when first asked for

    def frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the convolution of lines of ``lengths`` points: ceil(length / stride)."""
        return torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        check_sequence(features, "features", self.features)
        if lengths.shape != (features.size(0),) or int(lengths.min()) < 1 or int(lengths.max()) > features.size(1):
            raise ShapeError(f"lengths must be (B,) = ({features.size(0)},) with values in 1..{features.size(1)}, "
                             f"got {tuple(lengths.shape)} {lengths.tolist()[:8]}")
        real = torch.arange(features.size(1), device=features.device) < lengths[:, None]
        features = features * real.unsqueeze(-1)  # the convolution reads past a line's end: zeros, as alone
        x = torch.relu(self.conv(features.transpose(1, 2))).transpose(1, 2)
        frames = self.frames(lengths)
        x = bidirectional.run(self.forwards, self.backwards, x, frames, self.drop)
        return self.head(self.drop(x)).float().log_softmax(-1), frames

    def set_language_model(self, lm: CharNgram | None) -> None:
        """Store ``lm``'s n-grams in the buffers (their sizes, from the config, must hold them: extra rows stay
        zero, which :meth:`CharNgram.from_tensors` skips)."""
        if lm is None:
            return
        grams, counts = lm.to_tensors()
        assert grams.size(1) == self.lm_grams.size(1) and len(grams) <= len(self.lm_grams), (grams.shape, self.lm_grams.shape)
        with torch.no_grad():
            self.lm_grams.zero_()
            self.lm_counts.zero_()
            self.lm_grams[: len(grams)] = grams
            self.lm_counts[: len(counts)] = counts
        self._lm = None

    def language_model(self) -> CharNgram | None:
        """The character n-gram in the buffers, or None if the model has none."""
        if not self.lm_grams.numel():
            return None
        if self._lm is None:  # the buffers change only by set_language_model or loading a checkpoint into them
            self._lm = CharNgram.from_tensors(self.lm_grams.cpu(), self.lm_counts.cpu(), self.head.out_features - 1)
        return self._lm

    def _load_from_state_dict(self, *args, **kwargs):
        self._lm = None  # new buffers: the n-gram is rebuilt from them when next asked for
        super()._load_from_state_dict(*args, **kwargs)

