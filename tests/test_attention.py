"""Graves' soft window and the synthesis network: against NumPy, against the step-by-step reference, the stop
rule on hand-made weights, and the order of the training batches."""

import numpy as np
import pytest
import torch

from rnnlab.attention import Window, encode_text, finished, window_weights
from rnnlab.models import HandwritingSynthesizer
from rnnlab.reference.synthesis_steps import synthesis_forward
from rnnlab.train import shuffled_batch


def numpy_window(alpha_hat, beta_hat, kappa_hat, kappa_prev, onehot):
    """Eqs. 46-51 with explicit loops over the batch, the characters and the Gaussians, in float64."""
    batch, gaussians = alpha_hat.shape
    length = onehot.shape[1]
    kappa = kappa_prev + np.exp(kappa_hat)
    phi = np.zeros((batch, length + 1))
    w = np.zeros((batch, onehot.shape[2]))
    for b in range(batch):
        for u in range(1, length + 2):
            phi[b, u - 1] = sum(np.exp(alpha_hat[b, k]) * np.exp(-np.exp(beta_hat[b, k]) * (kappa[b, k] - u) ** 2)
                                for k in range(gaussians))
            if u <= length:
                w[b] += phi[b, u - 1] * onehot[b, u - 1]
    return w, kappa, phi


def test_the_window_equals_a_direct_numpy_computation():
    torch.manual_seed(0)
    batch, hidden, gaussians, length, alphabet = 3, 6, 4, 7, 5
    window = Window(hidden, gaussians).double()
    h = torch.randn(batch, hidden, dtype=torch.float64)
    kappa_prev = torch.rand(batch, gaussians, dtype=torch.float64) * length
    ids = torch.randint(0, alphabet, (batch, length))
    lengths = torch.tensor([7, 4, 1])
    onehot = encode_text(ids, lengths, alphabet).double()
    w, kappa, phi = window(h, kappa_prev, onehot)

    params = (h @ window.linear.weight.T + window.linear.bias).detach().numpy()
    expected = numpy_window(*np.split(params, 3, axis=1), kappa_prev.numpy(), onehot.numpy())
    for got, want in zip((w, kappa, phi), expected):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    # padding: the one-hot rows past each length are zero, so those characters never reach w
    assert onehot[1, 4:].abs().sum() == 0 and onehot[2, 1:].abs().sum() == 0
    assert torch.equal(onehot[0].argmax(-1), ids[0])


def test_the_window_starts_at_the_speed_it_is_given():
    window = Window(8, 3, chars_per_step=0.05)
    torch.nn.init.zeros_(window.linear.weight)
    _, kappa, _ = window(torch.randn(2, 8), torch.zeros(2, 3), torch.zeros(2, 4, 5))
    torch.testing.assert_close(kappa, torch.full((2, 3), 0.05))


def test_stop_rule_on_hand_made_window_weights():
    # columns: u = 1 .. 4 and the position past the longest text; line 1's text has 2 characters
    phi = torch.tensor([
        [0.1, 0.2, 0.3, 0.6, 0.7],   # past the end (0.7) beats every character: done
        [0.1, 0.2, 0.3, 0.7, 0.7],   # a tie is not past: keep writing
        [0.9, 0.1, 0.5, 0.0, 0.0],   # still on the first character
        [0.0, 0.3, 0.4, 9.0, 9.0],   # length 2: u = 3 is its "past the end"; what lies beyond is padding
    ])
    lengths = torch.tensor([4, 4, 4, 2])
    assert finished(phi, lengths).tolist() == [True, False, False, True]
    assert finished(phi, torch.tensor([4, 4, 4, 4])).tolist()[3] is False  # u = 3, 4 are characters now: a tie


def test_window_weights_are_gaussians_over_the_positions():
    phi = window_weights(torch.tensor([[2.0]]), torch.tensor([[0.5]]), torch.tensor([[3.0]]), 4)
    expected = [2.0 * np.exp(-0.5 * (3.0 - u) ** 2) for u in range(1, 6)]
    np.testing.assert_allclose(phi[0].numpy(), expected, rtol=1e-6)


def tiny_synthesizer(seed=0):
    torch.manual_seed(seed)
    return HandwritingSynthesizer(alphabet_size=7, hidden_size=12, num_layers=3, mixtures=3, gaussians=2,
                                  chars_per_step=0.2).double()


def test_the_fast_network_equals_the_step_by_step_reference():
    model = tiny_synthesizer()
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    text, lengths = torch.randint(0, 7, (3, 5)), torch.tensor([5, 2, 4])
    y, state = model(x, text, lengths)
    y_ref, phi_ref = synthesis_forward(model, x, text, lengths)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.phi, phi_ref, rtol=1e-10, atol=1e-10)
    # and the gradients of every weight
    grads = torch.autograd.grad(y.square().sum(), list(model.parameters()))
    grads_ref = torch.autograd.grad(y_ref.square().sum(), list(model.parameters()))
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_the_state_carries_a_sequence_across_calls():
    model = tiny_synthesizer()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    text, lengths = torch.randint(0, 7, (2, 4)), torch.tensor([4, 3])
    whole, _ = model(x, text, lengths)
    first, state = model(x[:, :5], text, lengths)
    second, _ = model(x[:, 5:], text, lengths, state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_bad_text_shapes_are_named():
    from rnnlab.errors import ShapeError

    model = tiny_synthesizer()
    with pytest.raises(ShapeError, match="text must be"):
        model(torch.zeros(2, 4, 3, dtype=torch.float64), torch.zeros(3, 5, dtype=torch.long), torch.tensor([5, 5, 5]))


def test_length_buckets_visit_every_line_once_per_epoch_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 2000, 1000).tolist()
    batches = [shuffled_batch(step, 1000, 32, 7, lengths) for step in range(32)]
    seen = torch.cat(batches).tolist()
    assert sorted(seen) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    plain = [shuffled_batch(step, 1000, 32, 7) for step in range(32)]
    padded_plain = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert padded < 0.7 * padded_plain, (padded, padded_plain)
    # a pure function of the step, and the next epoch is another order
    assert torch.equal(shuffled_batch(5, 1000, 32, 7, lengths), batches[5])
    assert not torch.equal(shuffled_batch(32 + 5, 1000, 32, 7, lengths), batches[5])
