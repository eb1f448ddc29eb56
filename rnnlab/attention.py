"""Graves' soft window (Graves 2013 §5, eqs. 46-51): which characters of the text the pen is writing.

Layer 1's output h_t sets K Gaussians over the character positions u = 1 .. U of the text::

    (alpha_hat, beta_hat, kappa_hat) = W h_t + b                   3K numbers       (eq. 48)
    alpha = exp(alpha_hat)                    how much each Gaussian counts         (eq. 49)
    beta  = exp(beta_hat)                     how narrow it is                      (eq. 50)
    kappa = kappa_(t-1) + exp(kappa_hat)      where it sits: it can only move on    (eq. 51)
    phi(t, u) = sum_k alpha_k exp(-beta_k (kappa_k - u)^2)                          (eq. 46)
    w_t = sum_(u <= U) phi(t, u) c_u          the window: a blend of one-hot chars  (eq. 47)

phi over the text "hello" (U = 5), and the position one past its end::

    u:         1 h   2 e   3 l   4 l   5 o  |  6
    t = 10     0.3   0.9   0.1   .     .    |  .
    t = 250    .     .     .     0.1   0.5  |  0.8   <- beats every real character: the line is done

Sampling stops a line when phi(t, U + 1) exceeds phi(t, u) for every u <= U (§5.3's rule, :func:`finished`).
Shapes are batch-first: text one-hot ``(B, U, A)`` with zero rows for padding, so a padded position adds
nothing to ``w``; ``phi`` is ``(B, U + 1)``, its last column the position just past the longest text.
"""

import math

import numpy as np
import torch
from torch import nn


class Window(nn.Module):
    """One step of the window: layer 1's output ``h`` ``(B, H)`` and the previous positions ``kappa``
    ``(B, K)`` -> ``(w, kappa, phi)``, shapes ``(B, A)``, ``(B, K)``, ``(B, U + 1)``.

    ``chars_per_step`` sets the initial bias of kappa_hat so that, untrained, the window moves at the data's
    average writing speed (characters per pen point): exp(kappa_hat) starts at that speed instead of exp(0) = 1
    character per point, which would run off the end of a line in a few dozen points. The formula is Graves'
    eq. 51 unchanged; only the starting point of one bias differs from a plain init.
    """

    def __init__(self, hidden_size: int, gaussians: int, chars_per_step: float = 1.0):
        super().__init__()
        if gaussians < 1:
            raise ValueError(f"the window needs at least one Gaussian, got {gaussians}")
        self.gaussians = gaussians
        self.linear = nn.Linear(hidden_size, 3 * gaussians)
        with torch.no_grad():
            self.linear.bias[2 * gaussians :].fill_(math.log(chars_per_step))

    def forward(self, h: torch.Tensor, kappa: torch.Tensor, onehot: torch.Tensor):
        # fp32 even under bf16 autocast (precision.py): kappa sums hundreds of steps' exp(kappa_hat), and an
        # error of bf16's 0.4 % in each would move the window by whole characters along a line. It is 3K
        # outputs: nothing to gain from bf16.
        if torch.is_autocast_enabled(h.device.type):
            with torch.autocast(h.device.type, enabled=False):
                return self.forward(h.float(), kappa, onehot.float())
        hats = self.linear(h)  # alpha_hat, beta_hat, kappa_hat (eq. 48)
        beta, kappa_step = hats[:, self.gaussians :].exp().chunk(2, dim=-1)  # eqs. 50-51
        kappa = kappa + kappa_step
        phi = window_weights(hats[:, : self.gaussians], beta, kappa, onehot.size(1))
        return window_vector(phi, onehot), kappa, phi


# Each Gaussian's term is computed as exp(alpha_hat - beta (kappa - u)^2), which is eq. 46's
# alpha exp(-beta (kappa - u)^2) with alpha = exp(alpha_hat) (eq. 49), its exponent floored here: a term of
# e^-80 = 1.8e-35 is nothing beside the characters the window covers, and below it float32's exp turns
# subnormal or zero, which the CPU's vectorised exp computes 13-19x slower (10 us against 130-190 us for
# a (32, 10, 31) block, measured): most terms of a training step lie that far from their Gaussian.
EXPONENT_FLOOR = -80.0


def window_weights(alpha_hat: torch.Tensor, beta: torch.Tensor, kappa: torch.Tensor, length: int) -> torch.Tensor:
    """phi(u) for u = 1 .. length + 1 (eq. 46): ``alpha_hat`` (log alpha), ``beta``, ``kappa`` ``(B, K)`` ->
    ``(B, length + 1)``."""
    u = torch.arange(1, length + 2, device=kappa.device, dtype=kappa.dtype)
    exponent = alpha_hat.unsqueeze(-1) - beta.unsqueeze(-1) * (kappa.unsqueeze(-1) - u).square()
    return exponent.clamp_min(EXPONENT_FLOOR).exp().sum(dim=1)


def window_vector(phi: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """w = sum over the U characters of phi(u) c_u (eq. 47): ``(B, U + 1)``, ``(B, U, A)`` -> ``(B, A)``."""
    return torch.bmm(phi[:, None, : onehot.size(1)], onehot).squeeze(1)


def encode_text(ids: torch.Tensor, lengths: torch.Tensor, alphabet_size: int) -> torch.Tensor:
    """Character ids ``(B, U)`` (any value past a row's length) and lengths ``(B,)`` -> one-hot ``(B, U, A)``
    with zero rows past each length, so padding never reaches the window."""
    real = torch.arange(ids.size(1), device=ids.device) < lengths.unsqueeze(1)
    onehot = torch.nn.functional.one_hot(torch.where(real, ids, 0), alphabet_size).float()
    return onehot * real.unsqueeze(-1)


def finished(phi: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Graves' stop rule per line: ``phi`` ``(B, U + 1)``, ``lengths`` ``(B,)`` -> ``(B,)`` bool, true where
    phi one past the line's own last character exceeds phi at every one of its characters."""
    rule = StopRule(lengths.cpu().numpy(), phi.size(1))
    return torch.from_numpy(rule(phi.detach().float().cpu().numpy())).to(phi.device)


class StopRule:
    """:func:`finished` on NumPy arrays, for the sampler's loop (writing.py, pen.py), for lines of
    ``lengths`` ``(B,)`` under windows of ``width`` = U + 1 positions, with what depends on the lengths alone
    worked out once: a sampler asks at every point."""

    def __init__(self, lengths: np.ndarray, width: int):
        self.rows, self.past_end = np.arange(len(lengths)), lengths
        # -inf on the padding past each line's end, 0 elsewhere: phi + padding leaves only the line's own u
        self.padding = np.where(np.arange(width) >= lengths[:, None], -np.inf, 0.0).astype(np.float32)

    def __call__(self, phi: np.ndarray) -> np.ndarray:
        return phi[self.rows, self.past_end] > (phi + self.padding).max(axis=1)
