"""rnnlab/elman.py, the CPU Elman layer with BPTT written out, as Recurrent runs it: outputs, last state and
every gradient against torch's nn.RNN on the same weights, finite differences (gradcheck), and the stack's
dropout and state."""

import pytest
import torch

from rnnlab.elman import ElmanLayer
from rnnlab.recurrent import Recurrent


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers, batch", [(1, 1), (3, 4)])
def test_the_stack_equals_nn_rnn_with_its_gradients(nonlinearity, layers, batch):
    torch.manual_seed(0)
    stack = Recurrent("rnn" if nonlinearity == "tanh" else "rnn_relu", 5, 7, layers).double().eval()
    rnn = stack.rnn  # torch's module: the reference, on the same weights
    x = torch.randn(batch, 9, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(layers, batch, 7, dtype=torch.float64, requires_grad=True)
    expected, expected_last = rnn(x, h0)
    got, last = stack(x, h0)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last, expected_last, rtol=1e-12, atol=1e-12)
    # a loss that reads the outputs and the last state, so both gradients flow in
    weights = torch.randn_like(expected)
    inputs = [x, h0, *rnn.parameters()]
    want = torch.autograd.grad((expected * weights).sum() + expected_last.square().sum(), inputs)
    have = torch.autograd.grad((got * weights).sum() + last.square().sum(), inputs)
    for w, h in zip(want, have):
        torch.testing.assert_close(h, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
def test_the_backward_pass_matches_finite_differences(relu):
    torch.manual_seed(1)
    args = [torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 5, dtype=torch.float64, requires_grad=True),
            *(torch.randn(*shape, dtype=torch.float64, requires_grad=True) * 0.5 for shape in ((5, 3), (5, 5), (5,), (5,)))]
    args = [a.detach().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(lambda *a: ElmanLayer.apply(*a, relu), args)


def test_only_the_last_state_or_only_the_outputs_may_carry_a_gradient():
    torch.manual_seed(2)
    stack = Recurrent("rnn", 3, 4).double().eval()
    rnn = stack.rnn
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    for pick in (lambda out, last: out.sum(), lambda out, last: last.sum()):
        (want,) = torch.autograd.grad(pick(*rnn(x)), [x])
        (have,) = torch.autograd.grad(pick(*stack(x)), [x])
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)


def test_recurrent_uses_it_on_the_cpu_and_drops_out_between_layers():
    torch.manual_seed(3)
    stack = Recurrent("rnn", 4, 6, num_layers=2, dropout=0.5)
    x = torch.randn(3, 5, 4)
    stack.eval()
    out, state = stack(x)
    reference, reference_state = stack.rnn(x)  # torch's own module, same weights
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(state, reference_state)
    stack.train()
    assert not torch.equal(stack(x)[0], out)  # dropout between the layers is live in training
