"""rnnlab/lstm_bf16.py, the LSTM layer for bf16 training on the CPU: without autocast it is nn.LSTM to the last
digits (outputs, final state and every gradient, float64), it passes finite differences, and under bf16
autocast it stays within bf16's rounding of fp32 nn.LSTM; Recurrent uses it only there."""

import pytest
import torch

from rnnlab import recurrent
from rnnlab.lstm_bf16 import LSTMLayer
from rnnlab.recurrent import Recurrent

from test_precision import needs_bf16_cpu


def lstm_and_inputs(layers=2, batch=3, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    stack = Recurrent("lstm", 5, 6, layers).to(dtype).eval()
    lstm = stack.rnn  # torch's module: the reference, on the same weights
    x = torch.randn(batch, 7, 5, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers, batch, 6, dtype=dtype, requires_grad=True)
    c0 = torch.randn(layers, batch, 6, dtype=dtype, requires_grad=True)
    return stack, lstm, x, h0, c0


@pytest.mark.parametrize("layers, batch", [(1, 1), (2, 3)])
def test_it_is_nn_lstm_with_its_gradients(layers, batch, monkeypatch):
    stack, lstm, x, h0, c0 = lstm_and_inputs(layers, batch)
    expected, (h_ref, c_ref) = lstm(x, (h0, c0))
    monkeypatch.setattr(recurrent, "bf16_lstm_applies", lambda x, hidden: True)  # the layer without autocast: float64
    got, (h, c) = stack(x, (h0, c0))
    for a, b in ((got, expected), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(expected)
    inputs = [x, h0, c0, *lstm.parameters()]
    want = torch.autograd.grad((expected * weights).sum() + h_ref.square().sum() + c_ref.sum(), inputs)
    have = torch.autograd.grad((got * weights).sum() + h.square().sum() + c.sum(), inputs)
    for w, g in zip(want, have):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_the_backward_pass_matches_finite_differences():
    torch.manual_seed(1)
    shapes = [(2, 4, 3), (2, 5), (2, 5), (20, 3), (20, 5), (20,), (20,)]
    args = [(torch.randn(*shape, dtype=torch.float64) * 0.5).requires_grad_() for shape in shapes]
    assert torch.autograd.gradcheck(LSTMLayer.apply, args)


@needs_bf16_cpu
def test_under_bf16_it_stays_within_rounding_of_fp32_and_recurrent_uses_it(monkeypatch):
    torch.manual_seed(2)
    stack = Recurrent("lstm", 32, 64, num_layers=2)
    x = torch.randn(3, 20, 32, requires_grad=True)  # 64 units >= MIN_WIDTH_PER_ROW x 3 rows
    reference, (h_ref, c_ref) = stack(x)  # fp32: torch's own kernel
    (d_ref,) = torch.autograd.grad(reference.square().sum(), [x])
    seen, original = [], LSTMLayer.forward

    def spy(ctx, *args):
        seen.append(True)
        return original(ctx, *args)

    monkeypatch.setattr(LSTMLayer, "forward", staticmethod(spy))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = stack(x)
    (d_x,) = torch.autograd.grad(out.float().square().sum(), [x])
    assert seen and out.dtype == torch.float32 and c.dtype == torch.float32
    # bf16 rounds every matmul input to 8 bits (2^-9 relative). Measured here: 6e-4 on the outputs, 2e-3 on
    # the cell state, 0.4 % of the largest dx; the bounds leave ten times that.
    assert 0 < (out - reference).abs().max() < 6e-3
    assert (c - c_ref).abs().max() < 2e-2
    assert (d_x - d_ref).abs().max() < 0.04 * d_ref.abs().max()
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            stack(x)  # evaluation: torch's kernel
        stack(torch.randn(4, 20, 32))  # a batch too large for the width: torch's kernel
    assert not seen


@needs_bf16_cpu
def test_under_bf16_with_weight_drop_it_runs_on_the_masked_weights():
    # weight_drop hands the layer W_hh * mask, not a leaf: cast once, it must still be the masked stack.
    from test_recurrent import masked_reference

    torch.manual_seed(3)
    stack = Recurrent("lstm", 32, 64, num_layers=2, weight_drop=0.3).train()
    x = torch.randn(3, 20, 32)
    torch.manual_seed(11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = stack(x)
    reference, _ = masked_reference(stack, 0.3, seed=11)
    expected, _ = reference(x)  # fp32, torch's kernel
    unmasked, _ = stack.rnn(x)
    # Within bf16's rounding of the masked fp32 stack (as above), far from the unmasked one.
    assert (out - expected).abs().max() < 6e-3 < (unmasked - expected).abs().max()
