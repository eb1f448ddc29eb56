"""A stack of recurrent layers with one interface: ``layer(x, state) -> (outputs, state)``, batch-first.

Plain stacks run on ``torch.nn.RNN/LSTM/GRU`` (cuDNN on GPU, oneDNN on CPU): one fused call for the
whole sequence; a tanh or ReLU stack on the CPU, which torch does not fuse, runs ``elman.py``'s layer, and
an LSTM stack training in bf16 on the CPU with a small batch for its width runs ``lstm_bf16.py``'s. Only a stack that needs something those kernels lack (LSTM peepholes), or one asked for
with ``impl="cells"``, unrolls the hand-written cells of ``cells.py`` layer by layer.

Shapes: ``x`` is ``(B, T, input_size)``, outputs ``(B, T, hidden_size)``. The state keeps torch's layout,
``(num_layers, B, hidden_size)``, and is ``(h, c)`` for the LSTM.
"""

import torch
from torch import nn
from torch.compiler import is_compiling
from torch.nn import functional as F

from .cells import GRUCell, LSTMCell, RNNCell, set_forget_bias, unroll
from .elman import ElmanLayer
from .lstm_bf16 import LSTMLayer, bf16_lstm_applies
from .shapes import check_sequence

CELL_TYPES = ("rnn", "rnn_relu", "lstm", "gru")


def state_batch(state) -> int | None:
    """The batch size of a state ``(L, B, H)`` or LSTM ``(h, c)`` (None for no state yet): inputs must match it."""
    return None if state is None else (state[0] if isinstance(state, tuple) else state).size(1)


class Recurrent(nn.Module):
    """A stack of ``num_layers`` recurrent layers of one ``cell`` type (rnn, rnn_relu, lstm, gru):
    ``x`` ``(B, T, input_size)`` and a state (None: zeros) -> outputs ``(B, T, hidden_size)`` and the state,
    ``(num_layers, B, hidden_size)`` (LSTM: ``(h, c)``). ``step(x_t (B, input_size), state)`` advances one step.

    ``impl``: "auto" runs torch's fused kernels unless ``peepholes`` need the hand-written cells; "torch" or
    "cells" force one. On the CPU the "torch" path trains a tanh or ReLU stack with ``elman.py`` and a
    narrow-batch LSTM under bf16 with ``lstm_bf16.py``, the same math (tested against torch's modules) on
    the same parameters. ``dropout`` applies between layers; ``forget_bias`` sets the LSTM forget gates' bias.
    ``weight_drop`` is DropConnect on each layer's recurrent matrix ``W_hh`` in training, one mask a forward
    call (Merity et al. 2018's AWD-LSTM): it regularises the recurrence without touching the fused kernels.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        forget_bias: float = 0.0,
        peepholes: bool = False,
        impl: str = "auto",
        weight_drop: float = 0.0,
    ):
        super().__init__()
        if cell not in CELL_TYPES:
            raise ValueError(f"cell must be one of {', '.join(CELL_TYPES)}; got {cell!r}")
        if peepholes and cell != "lstm":
            raise ValueError("peepholes exist only for cell='lstm'")
        if impl not in ("auto", "torch", "cells"):
            raise ValueError(f"impl must be 'auto', 'torch' or 'cells'; got {impl!r}")
        self.cell_type = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.forget_bias = forget_bias
        self.fused = impl == "torch" or (impl == "auto" and not peepholes)
        if self.fused and peepholes:
            raise ValueError("torch's fused LSTM has no peepholes: use impl='cells' or 'auto'")
        if not 0 <= weight_drop < 1:
            raise ValueError(f"weight_drop must be in [0, 1), got {weight_drop}")
        if weight_drop and not self.fused:
            raise ValueError("weight_drop drops the fused stack's W_hh; the hand-written cells (peepholes, "
                             "impl='cells') have none")
        self.weight_drop = weight_drop
        if self.fused:
            kind = {"rnn": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
            extra = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
            self.rnn = kind(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0, **extra)
        else:
            def make(i):
                size_in = input_size if i == 0 else hidden_size
                if cell == "lstm":
                    return LSTMCell(size_in, hidden_size, peepholes=peepholes, forget_bias=forget_bias)
                if cell == "gru":
                    return GRUCell(size_in, hidden_size)
                return RNNCell(size_in, hidden_size, "relu" if cell == "rnn_relu" else "tanh")

            self.cells = nn.ModuleList(make(i) for i in range(num_layers))
            self.dropout = nn.Dropout(dropout)
        self.reset_forget_bias()

    def reset_forget_bias(self) -> None:
        """Set every LSTM layer's forget-gate bias to ``forget_bias`` (input side; the hidden side to 0).

        Idempotent, so a model can call it again after re-initialising its weights.
        """
        if self.cell_type != "lstm":
            return
        if self.fused:
            biases = [(getattr(self.rnn, f"bias_ih_l{k}"), getattr(self.rnn, f"bias_hh_l{k}"))
                      for k in range(self.num_layers)]
        else:
            biases = [(cell.bias_ih, cell.bias_hh) for cell in self.cells]
        for bias_ih, bias_hh in biases:
            set_forget_bias(bias_ih, bias_hh, self.forget_bias)

    def init_state(self, batch_size: int, device=None, dtype=None):
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.cell_type == "lstm" else zeros

    def forward(self, x: torch.Tensor, state=None):
        """``x``: ``(B, T, input_size)``; ``state``: None or as from ``init_state``. Returns ``(B, T, H)`` and the state."""
        check_sequence(x, "recurrent input", self.input_size, state_batch(state))
        if not self.fused:
            return self._by_layer(x, state, lambda k, x, layer_state: unroll(self.cells[k], x, layer_state))
        if x.size(1) == 1:  # sampling, one step per call: the fused kernel's set-up dominates
            out, state = self.step(x[:, 0], state)
            return out.unsqueeze(1), state
        w = self.weights()
        if self.cell_type in ("rnn", "rnn_relu") and x.device.type == "cpu":
            relu = self.cell_type == "rnn_relu"  # nn.RNN has no fused CPU kernel

            def elman(k, x, h):  # Dynamo traces this autograd function too: each weight's gradient one matmul
                return ElmanLayer.apply(x, h, *w[4 * k : 4 * k + 4], relu)

            return self._by_layer(x, state, elman)
        if is_compiling():  # the compile key: see _kernel_by_step
            return self._by_layer(x, state, lambda k, x, layer_state: self._kernel_by_step(k, x, layer_state, w))
        if self.cell_type == "lstm" and bf16_lstm_applies(x, self.hidden_size):
            def lstm_bf16(k, x, state):  # oneDNN's bf16 backward is slow here (lstm_bf16.py)
                out, h, c = LSTMLayer.apply(x, *state, *w[4 * k : 4 * k + 4])
                return out, (h, c)

            return self._by_layer(x, state, lstm_bf16)
        if w is not self.rnn._flat_weights:  # W_hh dropped: the kernel nn.LSTM/GRU calls, on those weights
            state = self.init_state(x.size(0), device=x.device, dtype=x.dtype) if state is None else state
            lstm = self.cell_type == "lstm"
            out = SEQUENCE_KERNELS[self.cell_type](x, list(state) if lstm else state, w, True, self.num_layers,
                                                   self.rnn.dropout, True, False, True)
            return out[0], (out[1], out[2]) if lstm else out[1]
        return self.rnn(x, state)

    def weights(self) -> list:
        """The fused stack's weights, 4 a layer in torch's order (``W_ih, W_hh, b_ih, b_hh``); in training with
        ``weight_drop``, each ``W_hh`` under a fresh DropConnect mask (scaled by ``1 / (1 - p)``, as dropout)."""
        w = self.rnn._flat_weights
        if not (self.training and self.weight_drop):
            return w
        return [F.dropout(p, self.weight_drop) if k % 4 == 1 else p for k, p in enumerate(w)]

    def _kernel_by_step(self, k: int, x: torch.Tensor, layer_state, weights=None):
        """Layer ``k`` over the whole of ``x`` as one torch cell kernel a step (``torch.lstm_cell`` etc.) on
        ``weights`` (default the stack's own): the path under ``torch.compile`` (but for elman.py's CPU layer,
        which Dynamo traces), which traces these ops and fuses them with their backward, where it cannot see
        into ``nn.RNN``'s kernels."""
        kernel, lstm = STEP_KERNELS[self.cell_type], self.cell_type == "lstm"
        w = (self.rnn._flat_weights if weights is None else weights)[4 * k : 4 * k + 4]
        outputs = []
        for x_t in x.unbind(1):
            layer_state = kernel(x_t, layer_state, *w)
            outputs.append(layer_state[0] if lstm else layer_state)
        return torch.stack(outputs, 1), layer_state

    def step(self, x: torch.Tensor, state=None):
        """One time step for the whole stack: ``x`` ``(B, input_size)`` -> top output ``(B, H)`` and the new state.

        For generation, one token at a time. The fused path runs torch's single-cell kernels
        (``torch.lstm_cell`` etc.) on the stack's own weights: a whole-sequence ``nn.LSTM`` call at T = 1
        costs several times more (benchmarks/results.md).
        """
        lstm = self.cell_type == "lstm"
        if self.fused:
            # nn.RNN keeps the list it hands its own kernels in _flat_weights (4 per layer, in order),
            # up to date across .to(); reading it costs far less than 4 attribute look-ups per layer.
            kernel, w = STEP_KERNELS[self.cell_type], self.weights()

        def one_step(k, x, layer_state):
            layer_state = kernel(x, layer_state, *w[4 * k : 4 * k + 4]) if self.fused else self.cells[k](x, layer_state)
            return (layer_state[0] if lstm else layer_state), layer_state

        return self._by_layer(x, state, one_step)

    def stepper(self, state):
        """For generation from ``state`` on: a function ``x (B, input_size) -> (B, H)`` advancing the stack one
        step at each call, :meth:`step`'s numbers with its weights looked up once and its state kept as one
        tensor per layer instead of re-stacked at every call (at batch 1 that bookkeeping cost a quarter of
        char sampling: benchmarks/results.md). In eval mode on a fused stack; otherwise through :meth:`step`."""
        if self.training or not self.fused:
            held = [state]

            def through_step(x):
                out, held[0] = self.step(x, held[0])
                return out

            return through_step
        kernel, lstm = STEP_KERNELS[self.cell_type], self.cell_type == "lstm"
        weights = [tuple(self.rnn._flat_weights[4 * k : 4 * k + 4]) for k in range(self.num_layers)]
        layers = list(zip(state[0].unbind(0), state[1].unbind(0))) if lstm else list(state.unbind(0))

        def step(x):
            for k, w in enumerate(weights):
                layers[k] = kernel(x, layers[k], *w)
                x = layers[k][0] if lstm else layers[k]
            return x

        return step

    def _by_layer(self, x: torch.Tensor, state, layer):
        """The stack's one loop over its layers, for whole sequences and single steps alike: ``layer(k, x,
        state_k) -> (outputs, state_k)`` for each layer in turn, with torch's dropout between layers (in
        training), the per-layer states taken from and stacked back into the ``(L, B, H)`` layout."""
        if state is None:
            state = self.init_state(x.size(0), device=x.device, dtype=x.dtype)
        lstm = self.cell_type == "lstm"
        layer_states = zip(state[0].unbind(0), state[1].unbind(0)) if lstm else state.unbind(0)
        dropout = self.rnn.dropout if self.fused else self.dropout.p
        finals = []
        for k, layer_state in enumerate(layer_states):
            if k and self.training and dropout:
                x = F.dropout(x, dropout)
            x, layer_state = layer(k, x, layer_state)
            finals.append(layer_state)
        if lstm:
            h, c = zip(*finals)
            return x, (torch.stack(h), torch.stack(c))
        return x, torch.stack(finals)


# torch.nn.RNN/LSTM/GRU's own whole-sequence kernels: (x, hx, weights, has_biases, num_layers, dropout,
# train, bidirectional, batch_first), with the weights a list (here with W_hh dropped) instead of the module's.
SEQUENCE_KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}
STEP_KERNELS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell,
                 "rnn_relu": torch.rnn_relu_cell}
