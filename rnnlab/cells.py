"""Recurrent cells, one time step each, and the one loop that unrolls any of them.

A cell maps ``(x_t, state) -> state`` with ``x_t`` of shape ``(B, input_size)``; ``cell.output(state)``
is the hidden vector ``h_t`` of shape ``(B, hidden_size)``. The LSTM state is ``(h, c)`` as in torch.

Parameters are named and laid out exactly as in ``torch.nn.RNNCell/LSTMCell/GRUCell`` (gate order
i, f, g, o for the LSTM; r, z, n for the GRU), so weights copy across and the tests can check these
cells against torch's to 1e-5. Plain stacks do not use these cells at all (see ``recurrent.py``):
they exist for what torch's fused kernels cannot do, such as peepholes and Graves' attention window.
"""

import math

import torch
from torch import nn


def set_forget_bias(bias_ih: torch.Tensor, bias_hh: torch.Tensor, value: float) -> None:
    """An LSTM's forget-gate bias (gates i, f, g, o, as torch orders them): ``value`` on the input side, 0 on
    the hidden side, so the sum the gate sees is ``value``."""
    h = bias_ih.numel() // 4
    with torch.no_grad():
        bias_ih[h : 2 * h].fill_(value)
        bias_hh[h : 2 * h].zero_()


class _Cell(nn.Module):
    """Shared parameter set-up: ``gates`` stacked blocks of ``hidden_size`` rows, torch's default init."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's default for its recurrent cells: U(-1/sqrt(H), 1/sqrt(H)) on every parameter.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def init_state(self, batch_size: int, device=None, dtype=None):
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def output(self, state) -> torch.Tensor:
        return state

    def _affine(self, x: torch.Tensor, h: torch.Tensor):
        return x @ self.weight_ih.T + self.bias_ih, h @ self.weight_hh.T + self.bias_hh


class RNNCell(_Cell):
    """Elman cell: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh or relu."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xi, hh = self._affine(x, h)
        pre = xi + hh
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class GRUCell(_Cell):
    """Gated recurrent unit (Cho et al. 2014), torch's formulation: the reset gate scales ``W_hn h + b_hn``."""

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xi, hh = self._affine(x, h)
        x_r, x_z, x_n = xi.chunk(3, dim=1)
        h_r, h_z, h_n = hh.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h


class LSTMCell(_Cell):
    """Long short-term memory cell; with ``peepholes=True`` the gates also see the cell state (Graves 2013, eqs. 7-11).

    At init the forget gate's input-side bias is set to ``forget_bias`` and its hidden-side bias to 0
    (Gers et al. 2000; char-rnn uses 1, Zaremba et al. 0). Peephole weights start at 0.
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, peepholes: bool = False, forget_bias: float = 0.0):
        self.peepholes = peepholes
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size)
        if peepholes:
            # Diagonal peephole weights: one per unit and gate, as in Graves 2013.
            self.weight_ci = nn.Parameter(torch.zeros(hidden_size))
            self.weight_cf = nn.Parameter(torch.zeros(hidden_size))
            self.weight_co = nn.Parameter(torch.zeros(hidden_size))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        set_forget_bias(self.bias_ih, self.bias_hh, self.forget_bias)
        with torch.no_grad():
            for name in ("weight_ci", "weight_cf", "weight_co"):
                if hasattr(self, name):  # absent during the first call, from _Cell.__init__
                    getattr(self, name).zero_()

    def init_state(self, batch_size: int, device=None, dtype=None):
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def output(self, state) -> torch.Tensor:
        return state[0]

    def forward(self, x: torch.Tensor, state):
        h, c = state
        xi, hh = self._affine(x, h)
        i, f, g, o = (xi + hh).chunk(4, dim=1)
        if self.peepholes:
            i = i + self.weight_ci * c
            f = f + self.weight_cf * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peepholes:
            o = o + self.weight_co * c
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def unroll(cell: _Cell, x: torch.Tensor, state=None):
    """Run ``cell`` over ``x`` of shape ``(B, T, input_size)``; return outputs ``(B, T, hidden_size)`` and the last state."""
    if state is None:
        state = cell.init_state(x.size(0), device=x.device, dtype=x.dtype)
    outputs = []
    for t in range(x.size(1)):
        state = cell(x[:, t], state)
        outputs.append(cell.output(state))
    return torch.stack(outputs, dim=1), state
