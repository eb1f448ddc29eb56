"""Forward passes and backpropagation through time (BPTT) in NumPy: the oracle for rnnlab's gradients.

Written out the way Karpathy's min-char-rnn does it (../shared/seeds/rnn-bptt-lstm-min-char-rnn.txt): a
loop forward that keeps every step's activations, then a loop backward over the same steps in reverse.
Nothing here imports torch, so the tests can hold rnnlab's cells and torch's autograd against a
derivation by hand, and that derivation against finite differences.

Conventions, all those of ``rnnlab.cells`` and ``torch.nn.RNN/LSTM/GRU``:

- float64 throughout (inputs are cast), so agreement can be asked for at 1e-6 and tighter;
- batch-first: inputs ``x`` ``(B, T, I)``, outputs ``(B, T, H)``, a state ``(B, H)``; the LSTM's is ``(h, c)``;
- weights in a dict named and laid out as torch's: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``,
  ``bias_ih (G*H,)``, ``bias_hh (G*H,)``, with G = 1 (tanh RNN), 4 (LSTM, gates i, f, g, o) or 3 (GRU, r, z, n);
- ``*_forward(params, x, state) -> (outputs, final_state, cache)``;
  ``*_backward(d_outputs, d_final, cache) -> grads``: given dL/d(outputs) ``(B, T, H)`` and dL/d(final
  state), the gradients of the four weights (same names), of ``x`` and of the initial state (``h0``, and
  ``c0`` for the LSTM).

BPTT for the tanh RNN, ``h_t = tanh(a_t)`` with ``a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``::

            dout_1          dout_2          dout_3      dL/d(outputs): the loss reads every h_t
              |               |               |
              v               v               v
    h_0 --> [h_1] --------> [h_2] --------> [h_3] --> final state          forward: left to right
    dh0 <-- [   ] <-------- [   ] <-------- [   ] <-- d_final              backward: right to left
                 dh_next         dh_next

    dh_t    = dout_t + dh_next        h_t reaches the loss twice: through its output and through h_{t+1}
    da_t    = (1 - h_t**2) * dh_t     tanh'(a) = 1 - tanh(a)**2, and tanh(a_t) is h_t, kept from the forward pass
    dh_next = da_t @ W_hh             what h_{t-1} receives, so step t-1 can only run after step t
    dW_hh  += da_t.T @ h_{t-1}        one W_hh serves every step, so its gradient is the sum over steps

The same ``dh_next`` is multiplied by ``W_hh`` and a tanh' at every step back, which is why it vanishes or
explodes over long spans. The LSTM adds a second carried gradient, ``dc_next``, that crosses a step scaled
only by the forget gate. ``char_lm_loss`` wraps the tanh RNN into min-char-rnn's language model and
``adagrad_step`` is its optimiser step, as rnnlab's ``min-char-rnn`` preset runs them.
"""

import numpy as np

WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def sigmoid(a: np.ndarray) -> np.ndarray:
    # The tanh form is the same function but never overflows, where 1 / (1 + exp(-a)) warns below a = -709.
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _float64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _affine(params: dict, x_t: np.ndarray, h: np.ndarray):
    """The input and hidden pre-activations ``(B, G*H)`` each, apart: the GRU's reset gate scales only the second."""
    return x_t @ params["weight_ih"].T + params["bias_ih"], h @ params["weight_hh"].T + params["bias_hh"]


def _backprop_affine(grads: dict, params: dict, d_in: np.ndarray, d_hid: np.ndarray, x_t, h_prev):
    """Add one step's weight gradients to ``grads``; return dL/dx_t ``(B, I)`` and dL/dh_{t-1} ``(B, H)`` through them.

    ``d_in``/``d_hid`` are dL/d of the two halves of ``_affine``, ``(B, G*H)`` each.
    """
    grads["weight_ih"] += d_in.T @ x_t
    grads["bias_ih"] += d_in.sum(axis=0)
    grads["weight_hh"] += d_hid.T @ h_prev
    grads["bias_hh"] += d_hid.sum(axis=0)
    return d_in @ params["weight_ih"], d_hid @ params["weight_hh"]


def _weights(params: dict) -> dict:
    return {name: _float64(params[name]) for name in WEIGHT_NAMES}


def _zero_grads(params: dict) -> dict:
    return {name: np.zeros_like(params[name]) for name in WEIGHT_NAMES}


# ----------------------------------------------------------------------------------------------- tanh RNN

def rnn_forward(params: dict, x, h0):
    """Elman RNN with tanh over ``x`` ``(B, T, I)`` from ``h0`` ``(B, H)``: outputs ``(B, T, H)``, ``h_T``, cache."""
    params, x = _weights(params), _float64(x)
    hs = [_float64(h0)]  # hs[t] is h_t; hs[0] the initial state, as min-char-rnn's hs[-1]
    for t in range(x.shape[1]):
        a_in, a_hid = _affine(params, x[:, t], hs[-1])
        hs.append(np.tanh(a_in + a_hid))
    return np.stack(hs[1:], axis=1), hs[-1], {"params": params, "x": x, "hs": hs}


def rnn_backward(d_outputs, d_final, cache: dict) -> dict:
    """BPTT for ``rnn_forward``: ``d_outputs`` ``(B, T, H)``, ``d_final`` = dL/dh_T ``(B, H)``."""
    params, x, hs = cache["params"], cache["x"], cache["hs"]
    grads = _zero_grads(params)
    d_outputs, dx = _float64(d_outputs), np.zeros_like(x)
    dh_next = _float64(d_final).copy()
    for t in reversed(range(x.shape[1])):
        dh = d_outputs[:, t] + dh_next
        da = (1.0 - hs[t + 1] ** 2) * dh  # through tanh
        dx[:, t], dh_next = _backprop_affine(grads, params, da, da, x[:, t], hs[t])
    grads["x"], grads["h0"] = dx, dh_next
    return grads


# ---------------------------------------------------------------------------------------------------- LSTM

def lstm_forward(params: dict, x, state):
    """LSTM (no peepholes) over ``x`` ``(B, T, I)`` from ``state = (h0, c0)``: outputs, ``(h_T, c_T)``, cache.

    ``i, f, o = sigmoid``, ``g = tanh`` of the four row blocks of the pre-activation (torch's order);
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``.
    """
    params, x = _weights(params), _float64(x)
    hs, cs, gates = [_float64(state[0])], [_float64(state[1])], []
    for t in range(x.shape[1]):
        a_in, a_hid = _affine(params, x[:, t], hs[-1])
        a_i, a_f, a_g, a_o = np.split(a_in + a_hid, 4, axis=1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c = f * cs[-1] + i * g
        tanh_c = np.tanh(c)
        hs.append(o * tanh_c)
        cs.append(c)
        gates.append((i, f, g, o, tanh_c))
    cache = {"params": params, "x": x, "hs": hs, "cs": cs, "gates": gates}
    return np.stack(hs[1:], axis=1), (hs[-1], cs[-1]), cache


def lstm_backward(d_outputs, d_final, cache: dict) -> dict:
    """BPTT for ``lstm_forward``: ``d_outputs`` ``(B, T, H)``, ``d_final = (dL/dh_T, dL/dc_T)``."""
    params, x, hs, cs = cache["params"], cache["x"], cache["hs"], cache["cs"]
    grads = _zero_grads(params)
    d_outputs, dx = _float64(d_outputs), np.zeros_like(x)
    dh_next, dc_next = (_float64(d).copy() for d in d_final)
    for t in reversed(range(x.shape[1])):
        i, f, g, o, tanh_c = cache["gates"][t]
        dh = d_outputs[:, t] + dh_next
        # c_t reaches the loss through h_t = o * tanh(c_t) and, unsquashed, through c_{t+1} = f * c_t + ...
        dc = dc_next + dh * o * (1.0 - tanh_c**2)
        # dL/d(pre-activation) of each gate: dL/d(gate) times its nonlinearity's derivative, from its output
        # (sigmoid' = s (1 - s), tanh' = 1 - tanh^2).
        da = np.concatenate([
            dc * g * i * (1.0 - i),
            dc * cs[t] * f * (1.0 - f),
            dc * i * (1.0 - g**2),
            dh * tanh_c * o * (1.0 - o),
        ], axis=1)
        dc_next = dc * f
        dx[:, t], dh_next = _backprop_affine(grads, params, da, da, x[:, t], hs[t])
    grads["x"], grads["h0"], grads["c0"] = dx, dh_next, dc_next
    return grads


# ----------------------------------------------------------------------------------------------------- GRU

def gru_forward(params: dict, x, h0):
    """GRU over ``x`` ``(B, T, I)`` from ``h0`` ``(B, H)``, torch's formulation: outputs, ``h_T``, cache.

    ``r = sigmoid(x_r + h_r)``, ``z = sigmoid(x_z + h_z)``, ``n = tanh(x_n + r * h_n)``,
    ``h_t = (1 - z) * n + z * h_{t-1}``, where ``x_*``/``h_*`` are row blocks of the input/hidden affine
    maps, biases included (so the reset gate scales ``W_hn h + b_hn``, not ``W_hn h`` alone).
    """
    params, x = _weights(params), _float64(x)
    hs, steps = [_float64(h0)], []
    for t in range(x.shape[1]):
        a_in, a_hid = _affine(params, x[:, t], hs[-1])
        x_r, x_z, x_n = np.split(a_in, 3, axis=1)
        h_r, h_z, h_n = np.split(a_hid, 3, axis=1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        hs.append((1.0 - z) * n + z * hs[-1])
        steps.append((r, z, n, h_n))
    return np.stack(hs[1:], axis=1), hs[-1], {"params": params, "x": x, "hs": hs, "steps": steps}


def gru_backward(d_outputs, d_final, cache: dict) -> dict:
    """BPTT for ``gru_forward``: ``d_outputs`` ``(B, T, H)``, ``d_final`` = dL/dh_T ``(B, H)``."""
    params, x, hs = cache["params"], cache["x"], cache["hs"]
    grads = _zero_grads(params)
    d_outputs, dx = _float64(d_outputs), np.zeros_like(x)
    dh_next = _float64(d_final).copy()
    for t in reversed(range(x.shape[1])):
        r, z, n, h_n = cache["steps"][t]
        dh = d_outputs[:, t] + dh_next
        da_n = dh * (1.0 - z) * (1.0 - n**2)
        da_z = dh * (hs[t] - n) * z * (1.0 - z)
        da_r = da_n * h_n * r * (1.0 - r)
        d_in = np.concatenate([da_r, da_z, da_n], axis=1)
        d_hid = np.concatenate([da_r, da_z, da_n * r], axis=1)  # r scales the hidden n-block, bias and all
        dx[:, t], dh_prev = _backprop_affine(grads, params, d_in, d_hid, x[:, t], hs[t])
        dh_next = dh_prev + dh * z  # h_{t-1} also passes straight through, weighted by the update gate
    grads["x"], grads["h0"] = dx, dh_next
    return grads


CELLS = {"rnn": (rnn_forward, rnn_backward), "lstm": (lstm_forward, lstm_backward),
         "gru": (gru_forward, gru_backward)}


# ------------------------------------------------------------------------------ min-char-rnn's language model

# RNNLanguageModel's state_dict keys for one fused tanh layer with one-hot input (charlm's "min-char-rnn").
LM_RNN_KEYS = {name: f"rnn.rnn.{name}_l0" for name in WEIGHT_NAMES}
DECODER_WEIGHT, DECODER_BIAS = "decoder.weight", "decoder.bias"


def char_lm_loss(params: dict, inputs, targets, h0=None):
    """min-char-rnn's ``lossFun``, batched: one-hot ids -> tanh RNN -> linear decoder -> softmax cross-entropy.

    ``params`` is keyed like ``RNNLanguageModel.state_dict()`` of the ``min-char-rnn`` preset:
    ``rnn.rnn.weight_ih_l0 (H, V)``, ``rnn.rnn.weight_hh_l0 (H, H)``, ``rnn.rnn.bias_ih_l0 (H,)``,
    ``rnn.rnn.bias_hh_l0 (H,)``, ``decoder.weight (V, H)``, ``decoder.bias (V,)``. ``inputs`` and
    ``targets`` are ids ``(B, T)``; ``h0`` ``(B, H)``, zeros when None.

    Returns ``(loss, grads, h_T)``. ``loss`` is the MEAN over the B*T tokens of -log p(target), in nats:
    ``F.cross_entropy``'s default reduction, which ``LMTask.loss`` uses. (min-char-rnn sums over its 25
    steps, so its loss and gradients are 25x these.) ``grads`` is keyed like ``params``. ``h_T`` ``(B, H)``
    is the state to carry into the next window; no gradient flows into it (truncated BPTT).
    """
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    decoder_w, decoder_b = _float64(params[DECODER_WEIGHT]), _float64(params[DECODER_BIAS])
    vocab_size = decoder_w.shape[0]
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        raise ValueError(f"inputs and targets must be ids of one shape (B, T); got {inputs.shape} and {targets.shape}")
    for what, ids in (("inputs", inputs), ("targets", targets)):
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"{what} must be ids in [0, {vocab_size}) for a vocabulary of {vocab_size}; "
                             f"got values from {ids.min()} to {ids.max()}")
    one_hot = np.eye(vocab_size)
    rnn_params = {name: params[key] for name, key in LM_RNN_KEYS.items()}
    if h0 is None:
        h0 = np.zeros((inputs.shape[0], rnn_params["weight_hh"].shape[1]))
    outputs, h_final, cache = rnn_forward(rnn_params, one_hot[inputs], h0)  # one_hot[ids]: the model's eye lookup

    logits = outputs @ decoder_w.T + decoder_b  # (B, T, V)
    # Shift by the max so exp cannot overflow; the shift cancels between numerator and denominator.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    tokens = inputs.size
    loss = -np.take_along_axis(log_probs, targets[..., None], axis=-1).sum() / tokens

    # min-char-rnn's `dy = p; dy[target] -= 1`, divided by the token count because the loss is a mean.
    d_logits = (np.exp(log_probs) - one_hot[targets]) / tokens  # (B, T, V)
    grads = {DECODER_WEIGHT: np.einsum("btv,bth->vh", d_logits, outputs), DECODER_BIAS: d_logits.sum(axis=(0, 1))}
    rnn_grads = rnn_backward(d_logits @ decoder_w, np.zeros_like(h_final), cache)
    grads.update({key: rnn_grads[name] for name, key in LM_RNN_KEYS.items()})
    return loss, grads, h_final


def adagrad_step(params: dict, grads: dict, memory: dict, lr: float, eps: float, clip_value: float = 0.0) -> None:
    """One Adagrad update of ``params`` in place, as rnnlab runs it: clip element-wise, then torch's Adagrad.

    ``g = clip(grad, -clip_value, clip_value)`` (0 = no clipping), ``memory += g**2``,
    ``param -= lr * g / (sqrt(memory) + eps)``. ``memory`` holds one array per key of ``params``, zeros at
    the start. torch adds ``eps`` after the square root, min-char-rnn inside it (``sqrt(mem + 1e-8)``); the
    two differ only while ``memory`` is near ``eps``, and this follows torch because rnnlab runs torch's.
    """
    for key in params:
        g = np.clip(grads[key], -clip_value, clip_value) if clip_value else grads[key]
        memory[key] += g * g
        params[key] -= lr * g / (np.sqrt(memory[key]) + eps)
