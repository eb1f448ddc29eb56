"""rnnlab.attention, Graves' soft window (eqs. 46-51): against a direct NumPy computation in float64, its
starting speed, and the stop rule on hand-made window weights. The synthesis network that holds the window
is tested in tests/test_models.py."""

import math

import numpy as np
import torch

from rnnlab.attention import EXPONENT_FLOOR, Window, encode_text, finished, window_weights


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
    phi = window_weights(torch.tensor([[math.log(2.0)]]), torch.tensor([[0.5]]), torch.tensor([[3.0]]), 4)
    expected = [2.0 * np.exp(-0.5 * (3.0 - u) ** 2) for u in range(1, 6)]  # eq. 46 with alpha = 2
    np.testing.assert_allclose(phi[0].numpy(), expected, rtol=1e-6)
    far = window_weights(torch.tensor([[0.0]]), torch.tensor([[50.0]]), torch.tensor([[1.0]]), 2)[0]
    torch.testing.assert_close(far, torch.tensor([1.0, math.exp(-50.0), math.exp(EXPONENT_FLOOR)]))  # e^-200: floored
