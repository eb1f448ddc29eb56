"""rnnlab.window_loop, layer 1 and the window with BPTT written out: finite differences, the recorded loop
it replaces (outputs and every gradient, with Graves' clipping binding), and the whole model's gradients
against the every-layer-per-step reference."""

import pytest
import torch

from rnnlab.mixture import sequence_nll, split_params
from rnnlab.models import LSTM_GRAD_CLIP, HandwritingSynthesizer
from rnnlab.reference.synthesis_steps import synthesis_forward
from rnnlab.window_loop import WindowLoop


def small(batch=3, steps=6, hidden=5, letters=4, gaussians=2, length=3, layers=2, seed=0):
    torch.manual_seed(seed)
    model = HandwritingSynthesizer(letters, hidden_size=hidden, num_layers=layers, mixtures=2,
                                   gaussians=gaussians).double()
    x = torch.randn(batch, steps, 3, dtype=torch.float64)
    text = torch.randint(0, letters, (batch, length))
    lengths = torch.tensor([length, 1, 2][:batch])
    return model, x, text, lengths


def loop_inputs(model, x, state):
    return (x, state.text, *state.first, state.kappa, state.window, model.first.weight_ih, model.first.weight_hh,
            model.first.bias_ih, model.first.bias_hh, model.window.linear.weight, model.window.linear.bias)


@pytest.mark.parametrize("batch, steps, length", [(2, 4, 3), (1, 1, 1)])
def test_the_gradients_match_finite_differences(batch, steps, length):
    """torch.autograd.gradcheck through every input, the text included, with all seven outputs weighed."""
    model, x, text, lengths = small(batch=batch, steps=steps, hidden=3, length=length)
    lengths = lengths.clamp(max=length)
    start = model.start(text, lengths)._replace(first=tuple(torch.randn(batch, 3, dtype=torch.float64) for _ in range(2)),
                                                kappa=torch.rand(batch, 2, dtype=torch.float64),
                                                window=torch.rand(batch, 4, dtype=torch.float64))
    inputs = [t.detach().clone().requires_grad_() for t in loop_inputs(model, x, start)]
    assert torch.autograd.gradcheck(lambda *a: WindowLoop.apply(*a, 0.0), inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("clip", [True, False])
def test_it_gives_the_recorded_loops_outputs_and_gradients(clip):
    """The same numbers as the autograd loop with its hook on every h (models._clamp_grad), from a carried
    state, with loss weights large enough that the clip of 10 binds on many steps."""
    model, x, text, lengths = small(steps=8)
    state = model.start(text, lengths)
    state = state._replace(first=tuple(torch.randn(3, 5, dtype=torch.float64) for _ in range(2)),
                           kappa=torch.rand(3, 2, dtype=torch.float64))
    weights = [torch.randn(3, 8, n, dtype=torch.float64) * 400 for n in (5, 4, 4)]  # h, w, phi
    finals = [torch.randn(3, n, dtype=torch.float64) for n in (5, 5, 2, 4)]  # h, c, kappa, w

    def run(fast, clipping=clip):
        model.zero_grad()
        leaves = [t.detach().clone().requires_grad_() for t in (x, *state.first, state.kappa)]
        carried = state._replace(first=(leaves[1], leaves[2]), kappa=leaves[3])
        if fast:
            hs, ws, phis, *last = WindowLoop.apply(*loop_inputs(model, leaves[0], carried),
                                                    LSTM_GRAD_CLIP if clipping else 0.0)
        else:
            hs, ws, phis, (h, c), kappa, w = model._recorded_loop(leaves[0], carried, clipping)
            last = [h, c, kappa, w]
        loss = sum((o * wt).sum() for o, wt in zip((hs, ws, phis, *last), weights + finals))
        loss.backward()
        grads = [leaf.grad for leaf in leaves] + [p.grad.clone() for p in (model.first.weight_ih, model.first.weight_hh,
                                                                            model.first.bias_ih, model.first.bias_hh,
                                                                            model.window.linear.weight,
                                                                            model.window.linear.bias)]
        return [t.detach() for t in (hs, ws, phis, *last)], grads

    (outputs, grads), (expected_outputs, expected_grads) = run(True), run(False)
    for got, expected in zip(outputs + grads, expected_outputs + expected_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    if clip:  # the clip did bind: unclipped, the gradients differ
        assert not torch.allclose(run(True, clipping=False)[1][0], grads[0])


def test_the_models_gradients_match_the_per_step_reference():
    """The whole synthesis network (WindowLoop, then layers 2.. over the sequence) against every layer advanced
    one step at a time (reference/synthesis_steps.py): the same loss and the same gradient for every weight."""
    model, x, text, lengths = small(steps=7, layers=3)
    model.eval()  # no clipping: the reference has none
    targets = torch.cat([torch.randn(3, 7, 2, dtype=torch.float64), (torch.rand(3, 7, 1) < 0.2).double()], -1)

    def grads(forward):
        model.zero_grad()
        y = forward()
        sequence_nll(split_params(y)[1], targets).sum().backward()
        return y.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    y, fast = grads(lambda: model(x, model.start(text, lengths))[0])
    y_ref, reference = grads(lambda: synthesis_forward(model, x, text, lengths)[0])
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    assert fast.keys() == reference.keys()
    for name in fast:
        torch.testing.assert_close(fast[name], reference[name], rtol=1e-9, atol=1e-10, msg=name)
