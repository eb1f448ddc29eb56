"""Models. Every model has one interface, ``model(inputs, state=None) -> (outputs, state)``, so the training
loop never branches on model type. What conditions a model beyond its inputs travels in the state: the
synthesis network's text is part of its state, made by ``model.start(text, lengths)``.
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ShapeError
from .recurrent import Recurrent, state_batch
from .shapes import check_sequence
from .window_loop import WindowLoop

INIT_SCHEMES = ("default", "uniform", "normal")


def initialise(module: nn.Module, scheme: str, scale: float) -> None:
    """Re-initialise every parameter of ``module``.

    ``default`` keeps torch's init; ``uniform`` draws every weight and bias from U(-scale, scale)
    (Zaremba et al. 2014, the TF PTB tutorial's ``init_scale``); ``normal`` draws weight matrices from
    N(0, scale^2) and zeroes biases (min-char-rnn: ``randn * 0.01``).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}; got {scheme!r}")
    if scheme == "default":
        return
    with torch.no_grad():
        for name, p in module.named_parameters():
            if scheme == "uniform":
                p.uniform_(-scale, scale)
            elif p.dim() >= 2:
                p.normal_(0.0, scale)
            else:
                p.zero_()


class RNNLanguageModel(nn.Module):
    """Token ids ``(B, T)`` -> next-token logits ``(B, T, vocab_size)``.

    embedding (or one-hot when ``embedding_size == 0``, as in min-char-rnn and char-rnn) -> dropout ->
    recurrent stack (dropout between layers) -> dropout -> linear decoder. The dropout placement is
    Zaremba et al.'s: on the embedding output, between layers and before the softmax. ``tied`` shares the
    embedding matrix with the decoder's weight (Press & Wolf 2017; Inan et al. 2017). ``weight_drop`` is
    DropConnect on the recurrent matrices in training (Merity et al. 2018; ``Recurrent``).
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        embedding_size: int = 0,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
        init: str = "default",
        init_scale: float = 0.1,
        tied: bool = False,
        weight_drop: float = 0.0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_size) if embedding_size else None
        if not embedding_size:
            # One-hot rows to index: cheaper than F.one_hot + a dtype cast at every sampling step. Not saved.
            self.register_buffer("one_hot", torch.eye(vocab_size), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.rnn = Recurrent(cell, embedding_size or vocab_size, hidden_size, num_layers,
                             dropout=dropout, forget_bias=forget_bias, weight_drop=weight_drop)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tied:
            if embedding_size != hidden_size:
                raise ValueError(f"tied weights need embedding_size == hidden_size, got {embedding_size} and {hidden_size}")
            self.decoder.weight = self.embedding.weight
        initialise(self, init, init_scale)
        self.rnn.reset_forget_bias()

    def init_state(self, batch_size: int, device=None):
        return self.rnn.init_state(batch_size, device=device)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout in training, when there is any (a module call costs 20 us: min-char-rnn's step is 2 ms)."""
        return self.drop(x) if self.training and self.drop.p else x

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.one_hot[tokens] if self.embedding is None else self.embedding(tokens)

    def step(self, tokens: torch.Tensor, state=None):
        """One step: ids ``(B,)`` -> logits ``(B, vocab_size)`` and the new state (what sampling calls)."""
        out, state = self.rnn.step(self._drop(self._embed(tokens)), state)
        return F.linear(self._drop(out), self.decoder.weight, self.decoder.bias), state

    def sampler(self, state):
        """Generation's step from ``state`` on: a function ``tokens (B,) -> logits (B, vocab_size)`` with
        :meth:`step`'s numbers (tested), the stack advanced by ``Recurrent.stepper`` and the embedding and
        decoder weights looked up once. In training mode (dropout) it steps through :meth:`step`."""
        if self.training:
            held = [state]

            def through_step(tokens):
                logits, held[0] = self.step(tokens, held[0])
                return logits

            return through_step
        rows = self.one_hot if self.embedding is None else self.embedding.weight
        advance, weight, bias = self.rnn.stepper(state), self.decoder.weight, self.decoder.bias
        return lambda tokens: F.linear(advance(rows[tokens]), weight, bias)

    def forward(self, tokens: torch.Tensor, state=None):
        check_sequence(tokens, "tokens", None, state_batch(state))
        if tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"tokens must be integer ids (torch.long), got {tokens.dtype}")
        out, state = self.rnn(self._drop(self._embed(tokens)), state)
        return self.decoder(self._drop(out)), state


class SequenceClassifier(nn.Module):
    """Sequences -> an output per step ``(B, T, num_outputs)``: class logits, or a real number when
    ``num_outputs == 1`` for regression. The task scores every step (labelling) or only the last real
    step of each sequence (classification), so one model serves both.

    Inputs are token ids ``(B, T)`` (``vocab_size`` given: embedding) or feature vectors
    ``(B, T, feature_size)``.
    """

    def __init__(self, num_outputs: int, cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 vocab_size: int = 0, embedding_size: int = 32, feature_size: int = 0, dropout: float = 0.0,
                 forget_bias: float = 1.0):
        super().__init__()
        if bool(vocab_size) == bool(feature_size):
            raise ValueError("give exactly one of vocab_size (token inputs) and feature_size (feature vectors)")
        self.feature_size = feature_size
        self.embedding = nn.Embedding(vocab_size, embedding_size) if vocab_size else None
        self.drop = nn.Dropout(dropout)
        self.rnn = Recurrent(cell, embedding_size if vocab_size else feature_size, hidden_size, num_layers,
                             dropout=dropout, forget_bias=forget_bias)
        self.head = nn.Linear(hidden_size, num_outputs)

    def forward(self, inputs: torch.Tensor, state=None):
        batch = state_batch(state)
        if self.embedding is not None:
            check_sequence(inputs, "tokens", None, batch)
            x = self.embedding(inputs)
        else:
            check_sequence(inputs, "inputs", self.feature_size, batch)
            x = inputs
        out, state = self.rnn(self.drop(x), state)
        return self.head(self.drop(out)), state


# Graves 2013 §4.2: "the output derivatives were clipped in the range [-100, 100], and the LSTM derivatives
# in the range [-10, 10]". Here: the gradient reaching the mixture parameters, and the gradient reaching each
# LSTM layer's outputs, clamped element-wise during backward.
OUTPUT_GRAD_CLIP = 100.0
LSTM_GRAD_CLIP = 10.0


def _clamp_grad(tensor: torch.Tensor, bound: float) -> torch.Tensor:
    if tensor.requires_grad and bound:
        tensor.register_hook(lambda g: g.clamp(-bound, bound))
    return tensor


class HandwritingPredictor(nn.Module):
    """Graves 2013 §4, the prediction network: pen offsets ``(B, T, 3)`` -> mixture parameters ``(B, T, 1 + 6M)``
    for the next offset.

    A stack of LSTM layers with skip connections: the input reaches every layer, and every layer reaches
    the output layer::

        x ──┬──────────────┬──────────────┐
            v              v              v
          [LSTM 1] ──h1──> [LSTM 2] ──h2──> [LSTM 3] ──h3──┐
            │              │                              v
            └──────h1──────┴──────h2────────────> [mixture head] -> pi, mu, sigma, rho, e

    No layer feeds back into an earlier one, so each runs over the whole sequence in one call (cuDNN when
    ``peepholes`` is off). ``clip_gradients`` applies Graves' derivative clipping (constants above).
    The state is a tuple with one LSTM state per layer.
    """

    def __init__(self, hidden_size: int = 400, num_layers: int = 3, mixtures: int = 20, peepholes: bool = False,
                 clip_gradients: bool = True, input_size: int = 3):
        super().__init__()
        from .mixture import MixtureHead

        self.input_size = input_size
        self.clip_gradients = clip_gradients
        self.layers = nn.ModuleList(
            Recurrent("lstm", input_size + (hidden_size if k else 0), hidden_size, peepholes=peepholes)
            for k in range(num_layers))
        self.head = MixtureHead(hidden_size * num_layers, mixtures)

    def forward(self, x: torch.Tensor, state=None):
        batch = None if state is None else state[0][0].size(1)
        check_sequence(x, "pen offsets", self.input_size, batch)
        outputs, finals, below = [], [], None
        for k, layer in enumerate(self.layers):
            inputs = x if below is None else torch.cat([x, below], dim=-1)
            below, final = layer(inputs, None if state is None else state[k])
            if self.clip_gradients and self.training:
                below = _clamp_grad(below, LSTM_GRAD_CLIP)
            outputs.append(below)
            finals.append(final)
        params = self.head(torch.cat(outputs, dim=-1))
        if self.clip_gradients and self.training:
            params = _clamp_grad(params, OUTPUT_GRAD_CLIP)
        return params, tuple(finals)


class SynthesisState(NamedTuple):
    """Everything the synthesis network carries from one call to the next (batch B, hidden H, K Gaussians,
    alphabet A, text length U).

    ``text``: the texts being written, one-hot ``(B, U, A)`` with zero rows past each line's length;
    ``lengths``: ``(B,)``; ``first``: layer 1's ``(h, c)``, each ``(B, H)``; ``kappa``: the window's positions
    ``(B, K)``; ``window``: the last step's window vector ``(B, A)``, layer 1's input at the next step;
    ``upper``: the ``(h, c)`` of layers 2.., each ``(1, B, H)`` (None before the first call); ``phi``: the
    window weights of every step of the last call, ``(B, T, U + 1)`` (for the stop rule and attention plots).
    """

    text: torch.Tensor
    lengths: torch.Tensor
    first: tuple
    kappa: torch.Tensor
    window: torch.Tensor
    upper: tuple
    phi: torch.Tensor


class HandwritingSynthesizer(nn.Module):
    """Graves 2013 §5, the synthesis network: pen offsets ``(B, T, 3)`` and a state holding the texts ->
    mixture parameters ``(B, T, 1 + 6M)`` for the next offset::

        state = model.start(text, lengths)     # character ids (B, U), lengths (B,)
        params, state = model(x, state)        # any number of calls, each continuing the last

    The prediction network's stack, with a soft window over the text (attention.py) between layers 1 and 2::

        x_t ─┬───────────────┬────────────────────┬──────────────
             v               v                    v
        [LSTM 1] ──h1_t──> [window] ──w_t──> [LSTM 2] ──h2──> [LSTM 3] ──h3──> [mixture head]
           ^                  │               (h1, w_t, x)    (h2, w_t, x)      (h1, h2, h3)
           └──── w_t at t+1 ──┘

    Layer 1 needs w_(t-1) and the window needs h1_t, so they run step by step; nothing feeds back from
    layers 2.. into layer 1, so those run over the whole sequence at once (cuDNN on the GPU). The state is a
    :class:`SynthesisState`; ``clip_gradients`` applies Graves' derivative clipping as in the prediction
    network.
    """

    def __init__(self, alphabet_size: int, hidden_size: int = 400, num_layers: int = 3, mixtures: int = 20,
                 gaussians: int = 10, chars_per_step: float = 1.0, clip_gradients: bool = True):
        super().__init__()
        from .attention import Window
        from .mixture import MixtureHead

        if num_layers < 1 or alphabet_size < 1:
            raise ValueError(f"need num_layers >= 1 and alphabet_size >= 1, got {num_layers}, {alphabet_size}")
        self.alphabet_size = alphabet_size
        self.hidden_size = hidden_size
        self.clip_gradients = clip_gradients
        self.first = nn.LSTMCell(3 + alphabet_size, hidden_size)
        self.window = Window(hidden_size, gaussians, chars_per_step)
        self.upper = nn.ModuleList(Recurrent("lstm", 3 + alphabet_size + hidden_size, hidden_size)
                                   for _ in range(num_layers - 1))
        self.head = MixtureHead(hidden_size * num_layers, mixtures)

    def start(self, text: torch.Tensor, lengths: torch.Tensor) -> SynthesisState:
        """The state before the first point of lines writing ``text``: character ids ``(B, U)`` over the
        alphabet (any value past a line's length) and the lines' ``lengths`` ``(B,)``."""
        from .attention import encode_text

        if text.dim() != 2 or lengths.shape != (text.size(0),):
            raise ShapeError(f"text must be (B, U) character ids with lengths (B,); got {tuple(text.shape)} and "
                             f"{tuple(lengths.shape)}")
        weight = self.first.weight_ih
        batch = text.size(0)

        def zeros(*shape):
            return torch.zeros(batch, *shape, device=weight.device, dtype=weight.dtype)

        onehot = encode_text(text.to(weight.device), lengths.to(weight.device), self.alphabet_size).to(weight.dtype)
        return SynthesisState(onehot, lengths.to(weight.device), (zeros(self.hidden_size), zeros(self.hidden_size)),
                              zeros(self.window.gaussians), zeros(self.alphabet_size),
                              tuple(None for _ in self.upper), zeros(0, 0))

    def forward(self, x: torch.Tensor, state: SynthesisState | None = None):
        if state is None:
            raise ShapeError("the synthesis network writes a given text, which travels in its state: call "
                             "model(x, model.start(text, lengths)), or use Run.write(text)")
        check_sequence(x, "pen offsets", 3, state.kappa.size(0))
        clip = self.clip_gradients and self.training
        if not torch.is_autocast_enabled(x.device.type):  # window_loop.py: BPTT written out
            first, window = self.first, self.window.linear
            below, windows, phis, h, c, kappa, w = WindowLoop.apply(
                x, state.text, *state.first, state.kappa, state.window, first.weight_ih, first.weight_hh,
                first.bias_ih, first.bias_hh, window.weight, window.bias, LSTM_GRAD_CLIP if clip else 0.0)
        else:
            below, windows, phis, (h, c), kappa, w = self._recorded_loop(x, state, clip)
        outputs, finals = [below], []
        for layer, layer_state in zip(self.upper, state.upper):
            below, final = layer(torch.cat([x, windows, below], dim=-1), layer_state)
            if clip:
                below = _clamp_grad(below, LSTM_GRAD_CLIP)
            outputs.append(below)
            finals.append(final)
        params = self.head(torch.cat(outputs, dim=-1))
        if clip:
            params = _clamp_grad(params, OUTPUT_GRAD_CLIP)
        return params, SynthesisState(state.text, state.lengths, (h, c), kappa, w, tuple(finals), phis)

    def _recorded_loop(self, x: torch.Tensor, state: SynthesisState, clip: bool):
        """Layer 1 and the window step by step, recorded by autograd: under autocast (bf16 runs the cell in
        bf16 and the window in fp32, attention.py), and what WindowLoop is tested against. -> layer 1's
        outputs (B, T, H), the windows (B, T, A), phi (B, T, U + 1), the last (h, c), kappa and w."""
        onehot, (h, c), kappa, w = state.text, state.first, state.kappa, state.window
        hs, ws, phis = [], [], []
        for x_t in x.unbind(1):
            h, c = self.first(torch.cat([x_t, w], dim=-1), (h, c))
            if clip:
                h = _clamp_grad(h, LSTM_GRAD_CLIP)
            w, kappa, phi = self.window(h, kappa, onehot)
            hs.append(h)
            ws.append(w)
            phis.append(phi)
        return torch.stack(hs, dim=1), torch.stack(ws, dim=1), torch.stack(phis, dim=1), (h, c), kappa, w

    def step(self, x: torch.Tensor, state: SynthesisState):
        """One point, for sampling: ``x`` ``(B, 3)`` -> ``y`` ``(B, 1 + 6M)`` and the state after it, the numbers of
        ``forward(x[:, None], state)`` (tested) in a third of the operations: no shape checks (the caller made
        the state with :meth:`start` and a first :meth:`forward`), every layer on ``torch.lstm_cell`` with its
        weights as they are, nothing stacked. ``phi`` in the state is this step's, ``(B, 1, U + 1)``."""
        first = self.first
        h, c = torch.lstm_cell(torch.cat([x, state.window], dim=-1), state.first, first.weight_ih, first.weight_hh,
                               first.bias_ih, first.bias_hh)
        w, kappa, phi = self.window(h, state.kappa, state.text)
        below, outputs, finals = h, [h], []
        for layer, (h_k, c_k) in zip(self.upper, state.upper):
            h_k, c_k = torch.lstm_cell(torch.cat([x, w, below], dim=-1), (h_k[0], c_k[0]), *layer.rnn._flat_weights)
            below = h_k
            outputs.append(h_k)
            finals.append((h_k.unsqueeze(0), c_k.unsqueeze(0)))
        return self.head(torch.cat(outputs, dim=-1)), SynthesisState(state.text, state.lengths, (h, c), kappa, w,
                                                                      tuple(finals), phi.unsqueeze(1))
