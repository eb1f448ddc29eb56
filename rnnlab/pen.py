"""The sampler's step for the synthesis network: one point of every line, drawn and fed back in.

Writing a line is a few hundred steps at batch 1 to 10 of some 120 small operations each (three LSTM
cells, the window, the mixture head, the draw): vectors of a few hundred numbers, whose cost is the call,
not the arithmetic. On this project's CPU a torch call costs 1-3 us and a NumPy call a third of that, so
on a CPU :class:`NumpyPen` runs :meth:`HandwritingSynthesizer.step <rnnlab.models.HandwritingSynthesizer.step>`
and :func:`mixture.sample_with <rnnlab.mixture.sample_with>` on NumPy views of the model's own float32 weights
(benchmarks/results.md, handwriting sampling: about twice as fast at batch 1). Anywhere else (a GPU, another dtype)
:class:`TorchPen` calls those two functions themselves. Both take their random numbers from the same
``torch.Generator`` in the same order (:class:`RandomBlocks`), so a seed writes the same strokes either
way, to float32 rounding (tested against each other step by step)::

    pen = make_pen(model, state, y, generator)  # after the model has read the primer: its state, last output
    pen.phi                              # the window's weights (B, U + 1) for the stop rule and plots
    point = pen.draw(bias)               # (B, 3) float32
    pen.advance(point)                   # the network reads it: a new y and phi

The gates: torch orders an LSTM's pre-activations i, f, g, o, and sigmoid(a) = (1 + tanh(a / 2)) / 2, so
one ``tanh`` over all four blocks, with the sigmoid blocks' columns of the weights halved beforehand and
the result scaled and shifted back afterwards (``NumpyPen.scale``, ``shift``), replaces three sigmoids and
a tanh.
"""

import numpy as np
import torch

from .attention import EXPONENT_FLOOR
from .mixture import sample_arrays, sample_with

BLOCK = 64  # points of random numbers drawn at once: two torch calls cost 7.5 us, a third of the draw


class RandomBlocks:
    """What the draw of every line needs at a point, two uniforms and two standard normals (mixture.sample),
    drawn from ``generator`` ``BLOCK`` points at a time: ``next()`` -> ``(u, z)``, ``(B, 2)`` each."""

    def __init__(self, generator: torch.Generator, batch: int, dtype=torch.float32, device="cpu"):
        self.generator, self.shape, self.dtype, self.device = generator, (BLOCK, batch, 2), dtype, device
        self.used = BLOCK

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.used == BLOCK:
            self.u = torch.rand(self.shape, generator=self.generator, dtype=self.dtype, device=self.device)
            self.z = torch.randn(self.shape, generator=self.generator, dtype=self.dtype, device=self.device)
            self.used = 0
        self.used += 1
        return self.u[self.used - 1], self.z[self.used - 1]


class TorchPen:
    """The sampler's step through the model's own torch calls: any device and dtype."""

    def __init__(self, model, state, y: torch.Tensor, generator: torch.Generator):
        self.model, self.state, self.y = model, state, y
        self.draws = RandomBlocks(generator, len(y), torch.promote_types(y.dtype, torch.float32), y.device)

    @property
    def phi(self) -> np.ndarray:
        return self.state.phi[:, -1].float().cpu().numpy()

    def draw(self, bias: float) -> np.ndarray:
        return sample_with(self.y, bias, *self.draws.next()).float().cpu().numpy()

    def advance(self, point: np.ndarray) -> None:
        x = torch.from_numpy(point).to(self.y.device, self.y.dtype)
        self.y, self.state = self.model.step(x, self.state)


class NumpyPen:
    """The sampler's step on NumPy arrays: a CPU model in float32. The state is read from ``state`` (after
    the model's forward pass over the primer) and kept here; the model is not touched."""

    def __init__(self, model, state, y: torch.Tensor, generator: torch.Generator):
        hidden = model.hidden_size
        scale = np.ones(4 * hidden, np.float32)
        scale[: 2 * hidden] = scale[3 * hidden :] = 0.5  # i, f and o: sigmoid(a) = 0.5 + 0.5 tanh(a / 2)
        self.scale, self.shift = scale, np.where(scale < 1, 0.5, 0.0).astype(np.float32)  # gates: tanh * scale + shift
        self.hidden = hidden
        first = model.first
        self.layers = [_lstm_weights(first.weight_ih, first.weight_hh, first.bias_ih, first.bias_hh, scale)]
        self.layers += [_lstm_weights(*layer.rnn._flat_weights, scale) for layer in model.upper]
        self.window = (_array(model.window.linear.weight).T, _array(model.window.linear.bias))
        head = model.head.linear
        self.head = np.ascontiguousarray(torch.cat([head.weight, head.bias[:, None]], dim=1).detach().numpy().T)
        self.text = _array(state.text)  # (B, U, A)
        self.positions = np.arange(1, self.text.shape[1] + 2, dtype=np.float32)  # u = 1 .. U + 1 (eq. 46)
        self.states = [tuple(_array(s) for s in state.first)]
        self.states += [(_array(h[0]), _array(c[0])) for h, c in state.upper]
        self.kappa, self.w = _array(state.kappa), _array(state.window)
        self.phi, self.y = _array(state.phi[:, -1]), _array(y)
        self.draws = RandomBlocks(generator, len(self.y))
        self.one = np.ones((len(self.y), 1), np.float32)  # the cells' inputs end in 1: their bias is a row of W

    def draw(self, bias: float) -> np.ndarray:
        u, z = self.draws.next()
        return sample_arrays(self.y, bias, u.numpy(), z.numpy())

    def advance(self, point: np.ndarray) -> None:
        """HandwritingSynthesizer.step: layer 1, the window (attention.py, eqs. 46-51), layers 2.., the head."""
        h = self._cell(0, np.concatenate([point, self.w, self.states[0][0], self.one], axis=1))
        weight, bias = self.window
        k = self.kappa.shape[1]
        hats = h @ weight + bias  # alpha_hat, beta_hat, kappa_hat (eq. 48)
        beta_step = np.exp(hats[:, k:])  # beta and kappa's step (eqs. 50-51)
        self.kappa = self.kappa + beta_step[:, k:]
        distance = self.kappa[:, :, None] - self.positions  # (B, K, U + 1)
        exponent = hats[:, :k, None] - beta_step[:, :k, None] * (distance * distance)  # attention.window_weights
        self.phi = np.exp(np.maximum(exponent, EXPONENT_FLOOR, out=exponent)).sum(axis=1)
        self.w = np.matmul(self.phi[:, None, : self.text.shape[1]], self.text)[:, 0]
        outputs = [h]
        for k in range(1, len(self.layers)):
            inputs = np.concatenate([point, self.w, outputs[-1], self.states[k][0], self.one], axis=1)
            outputs.append(self._cell(k, inputs))
        self.y = np.concatenate([*outputs, self.one], axis=1) @ self.head

    def _cell(self, k: int, inputs: np.ndarray) -> np.ndarray:
        """torch.lstm_cell for layer ``k`` on ``[its input, h, 1]``: the new h (the state is kept)."""
        gates = inputs @ self.layers[k]
        np.tanh(gates, out=gates)
        gates *= self.scale
        gates += self.shift
        n = self.hidden
        i, f, g, o = gates[:, :n], gates[:, n : 2 * n], gates[:, 2 * n : 3 * n], gates[:, 3 * n :]
        c = f * self.states[k][1]
        c += i * g
        h = o * np.tanh(c)
        self.states[k] = (h, c)
        return h


def make_pen(model, state, y: torch.Tensor, generator: torch.Generator) -> TorchPen | NumpyPen:
    """The sampler's step for ``model`` from ``state`` and its last output ``y`` ``(B, 1 + 6M)``, drawing from
    ``generator``: NumPy for a float32 model on the CPU, the model's own torch calls otherwise (module
    docstring)."""
    weight = model.first.weight_ih
    if weight.device.type == "cpu" and weight.dtype == torch.float32:
        return NumpyPen(model, state, y, generator)
    return TorchPen(model, state, y, generator)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _lstm_weights(weight_ih, weight_hh, bias_ih, bias_hh, scale: np.ndarray) -> np.ndarray:
    """One matrix ``(input + H + 1, 4H)`` for ``[input, h, 1] @ W``, the biases its last row, the sigmoid
    gates' columns halved."""
    weight = torch.cat([weight_ih, weight_hh, (bias_ih + bias_hh)[:, None]], dim=1).detach().numpy().T * scale
    return np.ascontiguousarray(weight)
