"""rnnlab.models, the handwriting networks: the prediction network's skip connections rebuilt by hand from its
own layers, the synthesis network against the step-by-step reference (rnnlab/reference/synthesis_steps.py),
states that continue a sequence across calls, Graves' derivative clipping, and the errors of the one
``model(x, state)`` signature. The language model and the classifier are tested with the recurrent
stack and with their tasks."""

import pytest
import torch

from rnnlab.errors import ShapeError
from rnnlab.models import HandwritingPredictor, HandwritingSynthesizer, SynthesisState
from rnnlab.reference.synthesis_steps import synthesis_forward

# ---------------------------------------------------------------------------------- the prediction network


def test_skip_connections_feed_every_layer_and_the_head():
    model = HandwritingPredictor(hidden_size=8, num_layers=3, mixtures=2)
    assert [layer.input_size for layer in model.layers] == [3, 3 + 8, 3 + 8]
    assert model.head.linear.in_features == 3 * 8
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    y, state = model.eval()(x)
    assert y.shape == (2, 5, 1 + 6 * 2) and len(state) == 3
    # The same network wired by hand from its own LSTMs and head: x into every layer, every layer into the head.
    h1, _ = model.layers[0].rnn(x)
    h2, _ = model.layers[1].rnn(torch.cat([x, h1], -1))
    h3, _ = model.layers[2].rnn(torch.cat([x, h2], -1))
    torch.testing.assert_close(y, model.head(torch.cat([h1, h2, h3], -1)))


def test_the_prediction_state_carries_a_sequence_across_calls():
    torch.manual_seed(0)
    model = HandwritingPredictor(hidden_size=8, num_layers=2, mixtures=2).double().eval()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    whole, final = model(x)
    first, state = model(x[:, :3])
    second, state = model(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-12, atol=1e-12)
    for (h, c), (h_whole, c_whole) in zip(state, final):
        torch.testing.assert_close(h, h_whole, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c, c_whole, rtol=1e-12, atol=1e-12)


def test_the_prediction_network_names_bad_offsets():
    model = HandwritingPredictor(hidden_size=4, num_layers=1, mixtures=1)
    with pytest.raises(ShapeError, match="pen offsets"):
        model(torch.zeros(2, 5, 2))
    _, state = model(torch.zeros(2, 5, 3))
    with pytest.raises(ShapeError, match="pen offsets"):
        model(torch.zeros(3, 5, 3), state)  # a state of 2 lines continued with 3


# ---------------------------------------------------------------------------------- the synthesis network


def tiny_synthesizer(seed=0):
    torch.manual_seed(seed)
    return HandwritingSynthesizer(alphabet_size=7, hidden_size=12, num_layers=3, mixtures=3, gaussians=2,
                                  chars_per_step=0.2).double()


def test_the_fast_network_equals_the_step_by_step_reference():
    model = tiny_synthesizer()
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    text, lengths = torch.randint(0, 7, (3, 5)), torch.tensor([5, 2, 4])
    y, state = model(x, model.start(text, lengths))
    y_ref, phi_ref = synthesis_forward(model, x, text, lengths)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.phi, phi_ref, rtol=1e-10, atol=1e-10)
    assert state.phi.shape == (3, 9, 5 + 1)  # every step, every character and the position past the longest
    # and the gradients of every weight
    grads = torch.autograd.grad(y.square().sum(), list(model.parameters()))
    grads_ref = torch.autograd.grad(y_ref.square().sum(), list(model.parameters()))
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_the_state_carries_a_sequence_across_calls():
    model = tiny_synthesizer()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    text, lengths = torch.randint(0, 7, (2, 4)), torch.tensor([4, 3])
    whole, final = model(x, model.start(text, lengths))
    first, state = model(x[:, :5], model.start(text, lengths))
    second, state = model(x[:, 5:], state)  # the text travels in the state: no need to give it again
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(state.phi, final.phi[:, 5:])  # phi: the steps of the last call
    for name in ("kappa", "window"):
        torch.testing.assert_close(getattr(state, name), getattr(final, name))
    torch.testing.assert_close(state.first, final.first)
    torch.testing.assert_close(state.upper, final.upper)
    assert torch.equal(state.text, final.text) and torch.equal(state.lengths, lengths)


def test_a_sampling_step_equals_a_one_point_call():
    """model.step(x_t, state), the sampler's path, gives forward(x[:, t:t+1], state)'s numbers, step after step."""
    model = tiny_synthesizer().eval()
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    text, lengths = torch.randint(0, 7, (3, 5)), torch.tensor([5, 2, 4])
    y_call, by_call = model(x[:, :1], model.start(text, lengths))
    y_step, by_step = y_call[:, 0], by_call
    for t in range(1, x.size(1)):
        y_call, by_call = model(x[:, t : t + 1], by_call)
        y_step, by_step = model.step(x[:, t], by_step)
        torch.testing.assert_close(y_step, y_call[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(by_step.phi, by_call.phi, rtol=1e-12, atol=1e-12)
        for name in ("first", "kappa", "window", "upper"):
            torch.testing.assert_close(getattr(by_step, name), getattr(by_call, name), rtol=1e-12, atol=1e-12)


def test_start_is_the_zero_state_over_the_one_hot_text():
    model = tiny_synthesizer()
    state = model.start(torch.tensor([[3, 1, 6], [2, 5, 5]]), torch.tensor([3, 1]))
    assert isinstance(state, SynthesisState) and state._fields == ("text", "lengths", "first", "kappa", "window",
                                                                   "upper", "phi")
    expected = torch.zeros(2, 3, 7, dtype=torch.float64)
    expected[0, 0, 3] = expected[0, 1, 1] = expected[0, 2, 6] = expected[1, 0, 2] = 1.0  # line 2 is one character
    assert torch.equal(state.text, expected)
    assert all(not t.any() for t in (*state.first, state.kappa, state.window))
    assert state.kappa.shape == (2, 2) and state.window.shape == (2, 7) and state.upper == (None, None)


def test_the_synthesis_network_needs_its_text_in_the_state():
    model = tiny_synthesizer()
    x = torch.zeros(2, 4, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"model\(x, model.start\(text, lengths\)\)"):
        model(x)
    with pytest.raises(ShapeError, match="text must be"):
        model.start(torch.zeros(3, 5, dtype=torch.long), torch.tensor([5, 5]))  # 3 texts, 2 lengths
    with pytest.raises(ShapeError, match="text must be"):
        model.start(torch.zeros(5, dtype=torch.long), torch.tensor([5]))  # one text without its batch dimension
    with pytest.raises(ShapeError, match="pen offsets"):
        model(x, model.start(torch.zeros(3, 5, dtype=torch.long), torch.tensor([5, 5, 5])))  # 2 lines, 3 texts


# ------------------------------------------------------------------------------------------ both networks


@pytest.mark.parametrize("synthesis", [False, True], ids=["prediction", "synthesis"])
@pytest.mark.parametrize("clip", [True, False])
def test_derivative_clipping_bounds_the_output_gradient(clip, synthesis):
    """Graves 2013 §4.2: output derivatives clipped to [-100, 100] (a hook on the mixture parameters)."""
    torch.manual_seed(0)
    if synthesis:
        model = HandwritingSynthesizer(3, hidden_size=4, num_layers=1, mixtures=1, gaussians=1, clip_gradients=clip)
        y, _ = model.train()(torch.zeros(1, 3, 3), model.start(torch.tensor([[0, 2]]), torch.tensor([2])))
    else:
        model = HandwritingPredictor(hidden_size=4, num_layers=1, mixtures=1, clip_gradients=clip).train()
        y, _ = model(torch.zeros(1, 3, 3))
    seen = []
    y.register_hook(lambda g: seen.append(g.abs().max().item()))  # runs after the model's own hook
    (1e6 * y).sum().backward()
    assert seen == [100.0] if clip else seen == [1e6]
