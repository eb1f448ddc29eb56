"""The hand-written cells against torch's: one step, an unrolled sequence and its gradients, on copied weights.

Peepholes have no torch counterpart, so they are checked against Graves 2013 eqs. 7-11 written out here.
"""

import math

import pytest
import torch
from torch import nn

from rnnlab.cells import GRUCell, LSTMCell, RNNCell, unroll

ATOL = 1e-5
INPUT, HIDDEN = 5, 7


def make_cells(kind: str):
    """``(ours, torch's)`` one-step cells of ``kind``, ours holding a copy of torch's weights."""
    if kind == "lstm":
        ours, ref = LSTMCell(INPUT, HIDDEN), nn.LSTMCell(INPUT, HIDDEN)
    elif kind == "gru":
        ours, ref = GRUCell(INPUT, HIDDEN), nn.GRUCell(INPUT, HIDDEN)
    else:
        act = "relu" if kind == "rnn_relu" else "tanh"
        ours, ref = RNNCell(INPUT, HIDDEN, act), nn.RNNCell(INPUT, HIDDEN, nonlinearity=act)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def make_layers(kind: str):
    """``(our cell, torch's single-layer batch-first module)`` with the same weights."""
    if kind == "lstm":
        ours, ref = LSTMCell(INPUT, HIDDEN), nn.LSTM(INPUT, HIDDEN, batch_first=True)
    elif kind == "gru":
        ours, ref = GRUCell(INPUT, HIDDEN), nn.GRU(INPUT, HIDDEN, batch_first=True)
    else:
        act = "relu" if kind == "rnn_relu" else "tanh"
        ours, ref = RNNCell(INPUT, HIDDEN, act), nn.RNN(INPUT, HIDDEN, batch_first=True, nonlinearity=act)
    ours.load_state_dict({name: getattr(ref, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return ours, ref


KINDS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_one_step_equals_torch_cell(kind, batch):
    torch.manual_seed(batch)
    ours, ref = make_cells(kind)
    x = torch.randn(batch, INPUT)
    if kind == "lstm":
        state = (torch.randn(batch, HIDDEN), torch.randn(batch, HIDDEN))
        h, c = ours(x, state)
        h_ref, c_ref = ref(x, state)
        torch.testing.assert_close(h, h_ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(c, c_ref, atol=ATOL, rtol=0)
        assert torch.equal(ours.output((h, c)), h)
    else:
        state = torch.randn(batch, HIDDEN)
        torch.testing.assert_close(ours(x, state), ref(x, state), atol=ATOL, rtol=0)


def test_rnn_cell_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="tanh' or 'relu"):
        RNNCell(INPUT, HIDDEN, "sigmoid")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_unroll_equals_torch_layer(kind, with_state):
    torch.manual_seed(1)
    ours, ref = make_layers(kind)
    batch, steps = 3, 9
    x = torch.randn(batch, steps, INPUT)
    if kind == "lstm":
        state = (torch.randn(batch, HIDDEN), torch.randn(batch, HIDDEN)) if with_state else None
        out, (h, c) = unroll(ours, x, state)
        ref_state = None if state is None else (state[0][None], state[1][None])
        out_ref, (h_ref, c_ref) = ref(x, ref_state)
        torch.testing.assert_close(h, h_ref[0], atol=ATOL, rtol=0)
        torch.testing.assert_close(c, c_ref[0], atol=ATOL, rtol=0)
    else:
        state = torch.randn(batch, HIDDEN) if with_state else None
        out, h = unroll(ours, x, state)
        out_ref, h_ref = ref(x, None if state is None else state[None])
        torch.testing.assert_close(h, h_ref[0], atol=ATOL, rtol=0)
    assert out.shape == (batch, steps, HIDDEN)
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)


def test_peephole_cell_starts_with_zero_peepholes_and_equals_the_plain_cell():
    torch.manual_seed(2)
    plain = LSTMCell(INPUT, HIDDEN)
    peep = LSTMCell(INPUT, HIDDEN, peepholes=True)
    for name in ("weight_ci", "weight_cf", "weight_co"):
        assert torch.equal(getattr(peep, name), torch.zeros(HIDDEN))
    missing, unexpected = peep.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["weight_cf", "weight_ci", "weight_co"] and unexpected == []
    x = torch.randn(4, 6, INPUT)
    state = (torch.randn(4, HIDDEN), torch.randn(4, HIDDEN))
    out, (h, c) = unroll(peep, x, state)
    out_ref, (h_ref, c_ref) = unroll(plain, x, state)
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(c, c_ref, atol=ATOL, rtol=0)


def graves_lstm_step(cell: LSTMCell, x, h, c):
    """Graves 2013 ("Generating Sequences with RNNs") eqs. 7-11, spelled out gate by gate.

        i_t = sigma(W_xi x_t + W_hi h_{t-1} + w_ci * c_{t-1} + b_i)        (7)
        f_t = sigma(W_xf x_t + W_hf h_{t-1} + w_cf * c_{t-1} + b_f)        (8)
        c_t = f_t * c_{t-1} + i_t * tanh(W_xc x_t + W_hc h_{t-1} + b_c)    (9)
        o_t = sigma(W_xo x_t + W_ho h_{t-1} + w_co * c_t + b_o)            (10)
        h_t = o_t * tanh(c_t)                                              (11)

    torch's layout stacks the gate blocks i, f, g (= the cell input "c" above), o; each b is b_ih + b_hh.
    """
    H = cell.hidden_size
    block = {name: slice(k * H, (k + 1) * H) for k, name in enumerate("ifgo")}

    def pre(gate):
        s = block[gate]
        return (x @ cell.weight_ih[s].T + h @ cell.weight_hh[s].T + cell.bias_ih[s] + cell.bias_hh[s])

    i = torch.sigmoid(pre("i") + cell.weight_ci * c)
    f = torch.sigmoid(pre("f") + cell.weight_cf * c)
    c_new = f * c + i * torch.tanh(pre("g"))
    o = torch.sigmoid(pre("o") + cell.weight_co * c_new)
    return o * torch.tanh(c_new), c_new


def test_peephole_cell_follows_graves_2013_eqs_7_to_11():
    torch.manual_seed(3)
    cell = LSTMCell(INPUT, HIDDEN, peepholes=True)
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, name).uniform_(-1.0, 1.0)
    batch, steps = 4, 6
    x = torch.randn(batch, steps, INPUT)
    h, c = torch.randn(batch, HIDDEN), torch.randn(batch, HIDDEN)
    out, (h_last, c_last) = unroll(cell, x, (h, c))
    with torch.no_grad():
        outs = []
        for t in range(steps):
            h, c = graves_lstm_step(cell, x[:, t], h, c)
            outs.append(h)
        torch.testing.assert_close(out, torch.stack(outs, 1), atol=ATOL, rtol=0)
        torch.testing.assert_close(c_last, c, atol=ATOL, rtol=0)
        torch.testing.assert_close(h_last, h, atol=ATOL, rtol=0)
        # The peepholes matter: the same weights without them give a different sequence.
        plain = LSTMCell(INPUT, HIDDEN)
        plain.load_state_dict(cell.state_dict(), strict=False)
        assert (unroll(plain, x)[0] - unroll(cell, x)[0]).abs().max() > 1e-3


def test_forget_bias_init():
    torch.manual_seed(4)
    H = HIDDEN
    bound = 1 / math.sqrt(H)
    cell = LSTMCell(INPUT, H, forget_bias=1.5)
    assert torch.equal(cell.bias_ih[H : 2 * H], torch.full((H,), 1.5))
    assert torch.equal(cell.bias_hh[H : 2 * H], torch.zeros(H))
    # The other gates keep torch's U(-1/sqrt(H), 1/sqrt(H)) init: random, inside the bound.
    for bias in (cell.bias_ih, cell.bias_hh):
        others = torch.cat([bias[:H], bias[2 * H :]])
        assert others.abs().max() <= bound and others.std() > bound / 10
    # The effective forget bias the step sees is exactly forget_bias.
    assert torch.equal((cell.bias_ih + cell.bias_hh)[H : 2 * H], torch.full((H,), 1.5))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_through_unroll_equal_torch(kind):
    torch.manual_seed(5)
    ours, ref = make_layers(kind)
    batch, steps = 3, 8
    x = torch.randn(batch, steps, INPUT)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(batch, steps, HIDDEN)  # a loss that weighs every output differently
    out, state = unroll(ours, x_ours)
    out_ref, state_ref = ref(x_ref)
    final = state[1] if kind == "lstm" else state
    final_ref = state_ref[1][0] if kind == "lstm" else state_ref[0]
    ((out * weights).sum() + final.square().sum()).backward()
    ((out_ref * weights).sum() + final_ref.square().sum()).backward()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        grad, grad_ref = getattr(ours, name).grad, getattr(ref, f"{name}_l0").grad
        assert grad_ref.abs().max() > 1e-3, name  # a real gradient, not zeros on both sides
        torch.testing.assert_close(grad, grad_ref, atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-4)


def test_reset_parameters_keeps_peepholes_at_zero_and_the_forget_bias():
    cell = LSTMCell(3, 5, peepholes=True, forget_bias=1.0)
    cell.reset_parameters()
    for name in ("weight_ci", "weight_cf", "weight_co"):
        assert torch.equal(getattr(cell, name), torch.zeros(5))
    assert torch.equal(cell.bias_ih[5:10], torch.ones(5)) and torch.equal(cell.bias_hh[5:10], torch.zeros(5))
