"""Graves' mixture density output for pen strokes: M bivariate Gaussians plus a Bernoulli end-of-stroke.

Graves 2013, "Generating Sequences With Recurrent Neural Networks", §4.1 eqs. 17-26 and §5.4 eqs. 61-62.
A point is ``(dx, dy, eos)``: a real pen offset and a bit that is 1 when the pen lifts after it. The network
emits ``y`` of ``1 + 6M`` values per step, laid out in blocks (one contiguous slice per role, so splitting
is a view and the softmax runs over one block)::

    index    0      1..M     M+1..2M  2M+1..3M  3M+1..4M    4M+1..5M    5M+1..6M
    role     e_hat  pi_hat   mu1      mu2       sigma1_hat  sigma2_hat  rho_hat
    M = 20   0      1-20     21-40    41-60     61-80       81-100      101-120      (121 outputs)

Everything the loss needs is kept in log space (log pi, log sigma, the end-of-stroke logit) and combined with
``logsumexp``: the naive ``log(sum pi * N)`` underflows to ``log(0)`` as soon as a point lies about 14 sigmas
from every component (float32: exp(-103) is 0), and tanh(rho_hat) = 1 divides by zero. That is the NaN behind
``../shared/seeds/graves-handwriting-question.txt``, patched there with a small constant inside the log, which biases
the loss and leaves the gradients to blow up.

Each transform of ``y`` (and the sampling bias) is written once, in the small functions under
:func:`split_params`: it applies them to every component, for the loss; :func:`sample` (torch, through
:func:`sample_with`) and :func:`sample_arrays` (NumPy, the CPU sampler's) apply the same functions to the
one component they draw, so training and sampling cannot disagree.
"""

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import ShapeError, UserError

NUM_COMPONENTS = 20  # Graves 2013 §4.2: 20 mixture components for handwriting (121 outputs)
VALUES_PER_COMPONENT = 6  # pi, mu1, mu2, sigma1, sigma2, rho: Graves 2013 eq. 17
PEN_VALUES = 1  # e: Graves 2013 eq. 17
LOG_2PI = math.log(2.0 * math.pi)  # the bivariate normal's normaliser 2 pi, Graves 2013 eq. 24

# log sigma = sigma_hat is clamped to [LOG_SIGMA_MIN, LOG_SIGMA_MAX] (Graves 2013 eq. 21 has no bound).
# Offsets are normalised to std 1 (``../shared/docs/reference.md`` §3). On the shared IAM-OnDB sample the within-stroke offsets
# have std 16 px (x) and 28 px (y), so one pixel, the data's quantum, is 0.04-0.06 normalised units, and 5-6 %
# of the offsets are exactly 0. A component may shrink onto such an exact value and earn an unbounded density.
# The floor e^-7 = 9e-4 (1/40 to 1/70 of a pixel) is far below any spread the data can show, but it caps that
# reward at 2 * 7 + 5.4 - log(2 pi) = 17.6 nats per point and keeps (x - mu) / sigma and its gradients finite
# in float32.
# The ceiling e^5 = 148 std is wider than any normalised offset; it keeps exp(sigma_hat) finite when sampling.
# Outside the range the gradient through sigma_hat is zero, as it must be for a bound.
LOG_SIGMA_MIN = -7.0
LOG_SIGMA_MAX = 5.0

# rho = tanh(rho_hat) (Graves 2013 eq. 22) is clamped to [-RHO_LIMIT, RHO_LIMIT]. In float32 tanh rounds to
# exactly +-1 once |rho_hat| > 9, and then 1 - rho^2 = 0 in eq. 24 divides by zero. With 1 - 1e-5, 1 - rho^2
# >= 2e-5: the correlation's share of the density, -0.5 log(1 - rho^2), is at most 5.4 nats, and 1 - rho is
# still about 170 float32 steps (2^-24) away from 0, so (1 - rho)(1 + rho) is computed with full precision.
RHO_LIMIT = 1.0 - 1e-5


def output_size(num_components: int = NUM_COMPONENTS) -> int:
    """Values per step of the head: ``1 + 6M`` (Graves 2013 eq. 17); 121 for M = 20."""
    return PEN_VALUES + VALUES_PER_COMPONENT * num_components


class RawParams(NamedTuple):
    """The head's output split by role, untransformed. ``e_hat`` is ``(...)``; the others are ``(..., M)``."""

    e_hat: torch.Tensor
    pi_hat: torch.Tensor
    mu1: torch.Tensor
    mu2: torch.Tensor
    sigma1_hat: torch.Tensor
    sigma2_hat: torch.Tensor
    rho_hat: torch.Tensor


class MixtureParams(NamedTuple):
    """The distribution of one point, kept in log space. ``eos_logit`` is ``(...)``; the others ``(..., M)``.

    ``eos_logit`` is the logit of e = Pr(eos = 1); ``log_pi`` are normalised log weights; ``log_sigma1/2`` are
    the logs of the standard deviations; ``rho`` is the correlation, strictly inside (-1, 1).
    """

    eos_logit: torch.Tensor
    log_pi: torch.Tensor
    mu1: torch.Tensor
    mu2: torch.Tensor
    log_sigma1: torch.Tensor
    log_sigma2: torch.Tensor
    rho: torch.Tensor

    @property
    def pi(self) -> torch.Tensor:
        return self.log_pi.exp()

    @property
    def sigma1(self) -> torch.Tensor:
        return self.log_sigma1.exp()

    @property
    def sigma2(self) -> torch.Tensor:
        return self.log_sigma2.exp()

    @property
    def eos_prob(self) -> torch.Tensor:
        """e of Graves 2013 eq. 18, the probability that the pen lifts after the point."""
        return torch.sigmoid(self.eos_logit)


def _num_components(y) -> int:
    width = y.shape[-1] if y.ndim else 0
    per = VALUES_PER_COMPONENT
    if width < PEN_VALUES + per or (width - PEN_VALUES) % per:
        raise ShapeError(
            f"a mixture output needs 1 + 6M values in its last dimension (121 for M = 20 components), but got "
            f"shape {tuple(y.shape)}. Build the layer with MixtureHead(in_features, num_components=M).")
    return (width - PEN_VALUES) // per


def split_params(y: torch.Tensor, bias: float = 0.0) -> tuple[RawParams, MixtureParams]:
    """Split the head's output ``y`` ``(..., 1 + 6M)`` into raw and transformed parameters.

    Transforms (Graves 2013 eqs. 18-22), each done where it cannot overflow:

    - e = 1 / (1 + exp(e_hat)) (eq. 18; note the paper's sign), kept as the logit ``eos_logit = -e_hat``;
    - log pi = log_softmax(pi_hat * (1 + b)) (eq. 19; eq. 62 with bias b);
    - mu = mu_hat (eq. 20);
    - log sigma = clamp(sigma_hat, LOG_SIGMA_MIN, LOG_SIGMA_MAX) - b (eq. 21; eq. 61 with bias b);
    - rho = clamp(tanh(rho_hat), -RHO_LIMIT, RHO_LIMIT) (eq. 22).

    ``bias`` b >= 0 is Graves' sampling bias (§5.4): 0 for training and unbiased samples; as b grows, sampling
    picks the most probable component and its spread shrinks by e^-b. This is the only place it is applied.
    The clamp comes before the bias, so a large bias can still narrow a component below e^LOG_SIGMA_MIN.
    """
    _check_bias(bias)
    m = _num_components(y)
    # fp32 even when y comes from a bf16 matmul (precision.py): bf16's 8-bit mantissa would put errors of
    # 0.4 % on every sigma and rho, and the likelihood of a sharp component is that sensitive.
    y = y.to(torch.promote_types(y.dtype, torch.float32))
    e_hat = y[..., 0]
    pi_hat, mu1, mu2, sigma1_hat, sigma2_hat, rho_hat = y[..., PEN_VALUES:].split(m, dim=-1)
    raw = RawParams(e_hat, pi_hat, mu1, mu2, sigma1_hat, sigma2_hat, rho_hat)
    params = MixtureParams(
        eos_logit=-e_hat,
        log_pi=_log_pi(pi_hat, bias),
        mu1=mu1,
        mu2=mu2,
        log_sigma1=_log_sigma(sigma1_hat, bias),
        log_sigma2=_log_sigma(sigma2_hat, bias),
        rho=_rho(rho_hat),
    )
    return raw, params


def _check_bias(bias: float) -> None:
    if not (math.isfinite(bias) and bias >= 0):
        raise UserError(f"the sampling bias must be a finite number >= 0 (0 = unbiased, Graves 2013 §5.4), "
                        f"got {bias!r}")


# The transforms below take torch tensors or, for sample_arrays, NumPy arrays (tanh is passed in for those).

def _pi_logits(pi_hat, bias: float):
    return pi_hat * (1.0 + bias)  # eq. 19's softmax input (eq. 62 with bias)


def _log_pi(pi_hat: torch.Tensor, bias: float) -> torch.Tensor:
    return F.log_softmax(_pi_logits(pi_hat, bias), dim=-1)  # eq. 19 (eq. 62 with bias)


def _log_sigma(sigma_hat, bias: float):
    return sigma_hat.clip(LOG_SIGMA_MIN, LOG_SIGMA_MAX) - bias  # eq. 21 (eq. 61 with bias)


def _rho(rho_hat, tanh=torch.tanh):
    return tanh(rho_hat).clip(-RHO_LIMIT, RHO_LIMIT)  # eq. 22


class MixtureHead(nn.Module):
    """Linear map from the network's features ``(..., in_features)`` to ``y`` ``(..., 1 + 6M)`` (eq. 17).

    The output is raw (see the module docstring for its layout); :func:`split_params` turns it into a
    distribution. Keeping ``y`` raw lets a model return one plain tensor from ``model(inputs, state)``.
    """

    def __init__(self, in_features: int, num_components: int = NUM_COMPONENTS):
        super().__init__()
        if num_components < 1:
            raise UserError(f"a mixture needs at least one component, got num_components={num_components}")
        self.num_components = num_components
        self.linear = nn.Linear(in_features, output_size(num_components))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


def _check_targets(params: MixtureParams, targets: torch.Tensor) -> None:
    expected = tuple(params.eos_logit.shape) + (3,)
    if tuple(targets.shape) != expected:
        raise ShapeError(
            f"targets must have shape {expected} (the parameters' leading dimensions, then dx, dy, eos), but got "
            f"{tuple(targets.shape)}. Targets at step t are the point that the output at step t predicts "
            f"(x_(t+1) in Graves 2013 eq. 23): shift the strokes by one step before calling.")


def log_likelihood(params: MixtureParams, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """log Pr(x | y) per point (Graves 2013 eq. 23), in nats; ``targets`` ``(B, T, 3)`` -> ``(B, T)``.

    Any leading shape works: ``targets`` is ``params``' leading shape plus ``(dx, dy, eos)``, eos in {0, 1}.
    ``mask`` (same leading shape, bool or 0/1) marks real points; elsewhere the result is exactly 0 and the
    target's value (padding, even NaN) cannot reach the result or the gradients.

    With z_k = (x_k - mu_k) / sigma_k, the log of eq. 24 written out is

        log N = -log(2 pi sigma1 sigma2 sqrt(1 - rho^2)) - Z / (2 (1 - rho^2)),
        Z = z1^2 + z2^2 - 2 rho z1 z2                                          (eq. 25)

    and Z / (1 - rho^2) is computed as z1^2 + (z2 - rho z1)^2 / (1 - rho^2), the same number without the
    cancellation of eq. 25 when rho -> +-1 and z1 ~ z2: in float32, 55 sigmas along a needle-thin component's
    axis, eq. 25 as written is off by 3.8 nats and this form by 1e-4 (measured against float64).
    """
    _check_targets(params, targets)
    if mask is not None:
        mask = mask.to(torch.bool)
        # Zero the padding before it meets any arithmetic: where() alone would still back-propagate 0 * NaN.
        targets = torch.where(mask.unsqueeze(-1), targets, torch.zeros((), dtype=targets.dtype, device=targets.device))
    x1, x2, eos = targets[..., 0:1], targets[..., 1:2], targets[..., 2]

    z1 = (x1 - params.mu1) * torch.exp(-params.log_sigma1)
    z2 = (x2 - params.mu2) * torch.exp(-params.log_sigma2)
    rho = params.rho
    # (1 - rho)(1 + rho), not 1 - rho^2: near |rho| = 1 the subtraction 1 - rho is exact (Sterbenz) while
    # 1 - rho^2 would cancel about 15 of float32's 24 significant bits at 1 - rho^2 = 2e-5.
    one_minus_rho2 = (1.0 - rho) * (1.0 + rho)
    log_norm = -(LOG_2PI + params.log_sigma1 + params.log_sigma2 + 0.5 * torch.log(one_minus_rho2))
    z_over_one_minus_rho2 = z1.square() + (z2 - rho * z1).square() / one_minus_rho2
    log_normal = log_norm - 0.5 * z_over_one_minus_rho2  # (..., M)

    log_offset = torch.logsumexp(params.log_pi + log_normal, dim=-1)
    # log e if eos = 1 else log(1 - e), from the logit: BCE-with-logits is -log sigmoid(+-logit) = softplus.
    log_pen = -F.binary_cross_entropy_with_logits(params.eos_logit, eos.to(params.eos_logit.dtype), reduction="none")
    out = log_offset + log_pen
    if mask is not None:
        out = torch.where(mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out


def sequence_nll(params: MixtureParams, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Negative log-likelihood summed over each line's points, ``(B, T, 3)`` targets -> ``(B,)``, in nats.

    This is Graves' loss (eq. 26) and the unit of his tables, "nats per line" (``../shared/docs/reference.md`` §3: about -1041 for
    the prediction network): a sum over the points, not a mean. Average it over the batch for training.
    """
    return -log_likelihood(params, targets, mask).sum(dim=-1)


def sample(y: torch.Tensor, bias: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one point per row from the head's output ``y`` ``(B, 1 + 6M)`` -> ``(B, 3)`` = (dx, dy, eos).

    Any leading shape works (``(..., 1 + 6M) -> (..., 3)``). ``bias`` b >= 0 is Graves' (§5.4), applied by
    the transforms :func:`split_params` uses. A component j is drawn from pi, then the offset from its correlated normal by the
    Cholesky factor of [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] applied to two independent standard normals:
    x1 = mu1 + s1 z1, x2 = mu2 + s2 (rho z1 + sqrt(1 - rho^2) z2); eos is drawn from Bernoulli(e).
    All randomness comes from ``generator`` (the global RNG when None), so a seed gives the same strokes.

    Only the drawn component's sigma and rho are transformed (a sampler's step, one point of each line at a
    time, would spend more on transforming all M than on the draw); the result is the same number, to the
    bit, as transforming all of them with :func:`split_params` and picking one (tested). The draws: two
    uniforms (the component by inverse CDF, the pen), then two standard normals, per row.
    """
    _check_bias(bias)
    _num_components(y)  # before the reshape: the error names the shape given
    lead = y.shape[:-1]
    y = y.reshape(-1, y.size(-1))
    y = y.to(torch.promote_types(y.dtype, torch.float32))
    u = torch.rand((y.size(0), 2), generator=generator, dtype=y.dtype, device=y.device)  # component, pen
    z = torch.randn((y.size(0), 2), generator=generator, dtype=y.dtype, device=y.device)  # the offset
    return sample_with(y, bias, u, z).reshape(*lead, 3)


def sample_with(y: torch.Tensor, bias: float, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """:func:`sample` with its random numbers given: ``y`` ``(N, 1 + 6M)``, uniforms ``u`` and standard
    normals ``z`` ``(N, 2)`` each -> points ``(N, 3)``. For a sampler that draws them in blocks (pen.py)."""
    _check_bias(bias)
    m = _num_components(y)
    y = y.to(torch.promote_types(y.dtype, torch.float32))
    # Component j by inverse CDF: the first whose cumulative pi passes u (torch.multinomial costs 45
    # operations and two host syncs at each call; this, five).
    cdf = _log_pi(y[:, PEN_VALUES : PEN_VALUES + m], bias).exp().cumsum(dim=-1)
    j = (cdf < u[:, :1] * cdf[:, -1:]).sum(dim=-1, keepdim=True).clamp_(max=m - 1)  # (N, 1)
    # mu1, mu2, sigma1_hat, sigma2_hat, rho_hat of component j: one gather from the blocks after pi. The pairs
    # (mu1, mu2) and (sigma1, sigma2) are then worked on together: a point costs operations, not arithmetic.
    blocks = y[:, PEN_VALUES + m :].unflatten(1, (VALUES_PER_COMPONENT - 1, m))
    chosen = blocks.gather(2, j.unsqueeze(1).expand(-1, blocks.size(1), 1))[..., 0]  # (N, 5)
    mu, sigma, rho = chosen[:, :2], _log_sigma(chosen[:, 2:4], bias).exp(), _rho(chosen[:, 4])
    z1 = z[:, 0]
    correlated = torch.stack([z1, rho * z1 + torch.sqrt((1.0 - rho) * (1.0 + rho)) * z[:, 1]], dim=1)
    eos = (u[:, 1:] < torch.sigmoid(-y[:, :1])).to(y.dtype)  # Bernoulli(e), e = sigmoid(-e_hat) (eq. 18)
    return torch.cat([mu + sigma * correlated, eos], dim=1)


def sample_arrays(y: np.ndarray, bias: float, u: np.ndarray, z: np.ndarray) -> np.ndarray:
    """:func:`sample_with` on NumPy arrays, for the CPU sampler (pen.py): ``y`` ``(N, 1 + 6M)`` float32,
    uniforms ``u`` and standard normals ``z`` ``(N, 2)`` each -> points ``(N, 3)``.

    The same draw through the same transforms (``_pi_logits``, ``_log_sigma``, ``_rho``); the numbers agree
    with :func:`sample`'s to float32 rounding (tested). At batch 1 a NumPy call costs a third of a torch call,
    and a point is some 30 calls of a few numbers each (benchmarks/results.md, handwriting sampling).
    """
    _check_bias(bias)
    m = _num_components(y)
    logits = _pi_logits(y[:, PEN_VALUES : PEN_VALUES + m], bias)
    cdf = np.add.accumulate(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)  # a cumsum, faster
    j = np.minimum((cdf < u[:, :1] * cdf[:, -1:]).sum(axis=1), m - 1)  # (N,): the first past u, as sample
    blocks = y[:, PEN_VALUES + m :].reshape(len(y), VALUES_PER_COMPONENT - 1, m)
    chosen = blocks[np.arange(len(y)), :, j]  # (N, 5): mu1, mu2, sigma1_hat, sigma2_hat, rho_hat
    sigma, rho = np.exp(_log_sigma(chosen[:, 2:4], bias)), _rho(chosen[:, 4], np.tanh)
    points = np.empty((len(y), 3), np.float32)
    points[:, 0] = z1 = z[:, 0]
    points[:, 1] = rho * z1 + np.sqrt((1.0 - rho) * (1.0 + rho)) * z[:, 1]
    points[:, :2] *= sigma
    points[:, :2] += chosen[:, :2]  # mu
    points[:, 2] = u[:, 1] < 0.5 - 0.5 * np.tanh(0.5 * y[:, 0])  # e = sigmoid(-e_hat) (eq. 18), without exp's overflow
    return points
