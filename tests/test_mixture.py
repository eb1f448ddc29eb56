"""The mixture density head against torch.distributions, at ordinary and extreme parameters, and its sampler.

The reference density is ``MixtureSameFamily(Categorical, MultivariateNormal)`` with the covariance
[[s1^2, rho s1 s2], [rho s1 s2, s2^2]] plus ``Bernoulli(logits=...)``: torch's Cholesky-based code, independent
of the formula in ``rnnlab/mixture.py``. Sampling is checked against the mixture's analytic mean and covariance
computed here from Graves 2013 eqs. 19-22 and 61-62; every Monte Carlo tolerance is SIGMAS standard errors.
"""

import math

import pytest
import torch
from torch import distributions as D

from rnnlab.errors import ShapeError, UserError
from rnnlab.mixture import (LOG_SIGMA_MAX, LOG_SIGMA_MIN, NUM_COMPONENTS, RHO_LIMIT, MixtureHead, MixtureParams,
                            log_likelihood, output_size, sample, sample_arrays, sequence_nll, split_params)

M = 5
B, T = 3, 7
ATOL = 1e-5
# Monte Carlo checks allow 6 standard errors: a normal deviation beyond that has probability 2e-9, so with a
# fixed seed these cannot fail by chance, yet each test also shows its tolerance rejects a near-miss.
SIGMAS = 6.0
DRAWS = 200_000


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_output(*shape: int, m: int = M, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """Head outputs ``shape + (1 + 6m,)`` in the ordinary range, where no clamp binds."""
    return torch.randn(*shape, output_size(m), generator=seeded(seed), dtype=torch.float64).to(dtype)


def random_targets(*shape: int, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    """``shape + (3,)``: offsets a bit wider than the components, eos a fair-ish coin."""
    g = seeded(seed)
    offsets = 1.5 * torch.randn(*shape, 2, generator=g, dtype=torch.float64)
    eos = (torch.rand(*shape, 1, generator=g, dtype=torch.float64) < 0.3).double()
    return torch.cat([offsets, eos], dim=-1).to(dtype)


def reference_log_likelihood(p: MixtureParams, targets: torch.Tensor) -> torch.Tensor:
    s1, s2, rho = p.sigma1, p.sigma2, p.rho
    cross = rho * s1 * s2
    cov = torch.stack([torch.stack([s1 * s1, cross], -1), torch.stack([cross, s2 * s2], -1)], -2)
    offsets = D.MixtureSameFamily(D.Categorical(logits=p.log_pi),
                                  D.MultivariateNormal(torch.stack([p.mu1, p.mu2], -1), covariance_matrix=cov))
    pen = D.Bernoulli(logits=p.eos_logit)
    return offsets.log_prob(targets[..., :2]) + pen.log_prob(targets[..., 2])


def as_float64(p: MixtureParams) -> MixtureParams:
    return MixtureParams(*(t.double() for t in p))


def naive_log_likelihood(y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Graves' eqs. 18-25 computed literally, as in the seeds' problem report (without its + 1e-7)."""
    e_hat, pi_hat, mu1, mu2, s1_hat, s2_hat, rho_hat = split_params(y)[0]
    e = 1 / (1 + torch.exp(e_hat))
    pi = torch.exp(pi_hat) / torch.exp(pi_hat).sum(-1, keepdim=True)
    s1, s2, rho = torch.exp(s1_hat), torch.exp(s2_hat), torch.tanh(rho_hat)
    x1, x2, eos = targets[..., 0:1], targets[..., 1:2], targets[..., 2]
    z = (x1 - mu1) ** 2 / s1 ** 2 + (x2 - mu2) ** 2 / s2 ** 2 - 2 * rho * (x1 - mu1) * (x2 - mu2) / (s1 * s2)
    n = torch.exp(-z / (2 * (1 - rho ** 2))) / (2 * math.pi * s1 * s2 * torch.sqrt(1 - rho ** 2))
    return torch.log((pi * n).sum(-1)) + torch.log(torch.where(eos == 1, e, 1 - e))


def extreme_output(dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets ``(4, 2, C)`` / ``(4, 2, 3)`` where the literal formula breaks in float32: tiny and huge
    sigma_hat, rho_hat saturating tanh, logits of +-200 for pi and e, points on a mean and far from every one."""
    y = random_output(4, 2, seed=5).clone()
    raw = split_params(y)[0]
    raw.sigma1_hat[0], raw.sigma2_hat[0] = -30.0, -25.0  # sigma far below the floor
    raw.rho_hat[0, :, ::2], raw.rho_hat[0, :, 1::2] = 30.0, -30.0  # tanh == +-1 exactly
    raw.pi_hat[1] = torch.linspace(-200.0, 200.0, M, dtype=torch.float64)  # exp(200) overflows
    raw.e_hat[1, 0], raw.e_hat[1, 1] = 200.0, -200.0  # e == 0 and e == 1 exactly
    raw.sigma1_hat[2], raw.sigma2_hat[2], raw.rho_hat[2] = -9.0, -9.0, 12.0  # needle-thin, tilted components
    raw.sigma1_hat[3], raw.sigma2_hat[3] = 60.0, 60.0  # exp(60)^2 overflows float32
    targets = random_targets(4, 2, seed=6).clone()
    targets[1, 0, 2], targets[1, 1, 2] = 1.0, 0.0  # the pen event the logit calls impossible
    targets[0, 0, :2] = torch.stack([raw.mu1[0, 0, 0], raw.mu2[0, 0, 0]])  # exactly on a needle's mean
    targets[2, 0, :2] = torch.stack([raw.mu1[2, 0, 1], raw.mu2[2, 0, 1]]) + 1e-3  # just off a needle
    # 55 sigmas along a needle's long axis: Z of eq. 25 cancels to 1e-5 of its terms (z1 ~ z2, rho ~ 1).
    targets[2, 1, :2] = torch.stack([raw.mu1[2, 1, 0], raw.mu2[2, 1, 0]]) + 0.05
    return y.to(dtype), targets.to(dtype)


# ----------------------------------------------------------------------------------------------- layout


def test_output_layout_is_e_then_one_block_per_role():
    assert output_size(NUM_COMPONENTS) == 121  # Graves 2013 §4.2
    head = MixtureHead(in_features=8)
    assert head(torch.randn(B, T, 8)).shape == (B, T, 121)
    y = torch.cat([torch.full((1,), -1.0), torch.arange(6.0).repeat_interleave(M)])  # block k holds k
    raw = split_params(y)[0]
    assert raw.e_hat.item() == -1.0
    for k, block in enumerate(raw[1:]):
        assert block.shape == (M,) and (block == k).all(), (k, block)


def test_transforms_follow_graves_eqs_18_to_22():
    y = random_output(B, T)
    raw, p = split_params(y)
    torch.testing.assert_close(p.eos_prob, 1 / (1 + torch.exp(raw.e_hat)))  # eq. 18, the paper's sign
    torch.testing.assert_close(p.pi, torch.softmax(raw.pi_hat, -1))  # eq. 19
    assert torch.equal(p.mu1, raw.mu1) and torch.equal(p.mu2, raw.mu2)  # eq. 20
    torch.testing.assert_close(p.sigma1, torch.exp(raw.sigma1_hat))  # eq. 21
    torch.testing.assert_close(p.sigma2, torch.exp(raw.sigma2_hat))
    torch.testing.assert_close(p.rho, torch.tanh(raw.rho_hat))  # eq. 22


def test_bias_follows_graves_eqs_61_62_and_clamps_bound_the_extremes():
    y, _ = extreme_output(torch.float32)
    raw, p = split_params(y, bias=1.5)
    torch.testing.assert_close(p.pi, torch.softmax(raw.pi_hat * 2.5, -1))
    torch.testing.assert_close(p.log_sigma1, raw.sigma1_hat.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX) - 1.5)
    assert (p.rho.abs() <= RHO_LIMIT).all() and (p.rho.abs() < 1).all()
    assert (p.rho.abs() == torch.tensor(RHO_LIMIT, dtype=torch.float32)).any()  # the limit is reached, not passed


# ------------------------------------------------------------------------------------------ likelihood


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_likelihood_matches_torch_distributions(dtype):
    y, targets = random_output(B, T, dtype=dtype), random_targets(B, T, dtype=dtype)
    p = split_params(y)[1]
    ours = log_likelihood(p, targets)
    assert ours.shape == (B, T) and ours.dtype == dtype
    expected = reference_log_likelihood(as_float64(p), targets.double())
    torch.testing.assert_close(ours.double(), expected, atol=ATOL, rtol=0)


def test_log_likelihood_gradients_match_autograd_of_the_reference():
    y, targets = random_output(B, T), random_targets(B, T)
    weights = torch.rand(B, T, generator=seeded(3), dtype=torch.float64)

    def grad(fn):
        y_ = y.clone().requires_grad_(True)
        (fn(split_params(y_)[1], targets) * weights).sum().backward()
        return y_.grad

    ours, expected = grad(log_likelihood), grad(reference_log_likelihood)
    assert expected.abs().max() > 0.1  # the comparison is not between two zeros
    torch.testing.assert_close(ours, expected, atol=1e-9, rtol=1e-7)


def test_extremes_stay_finite_in_float32_and_match_the_float64_reference():
    y, targets = extreme_output(torch.float32)
    assert not naive_log_likelihood(y, targets).isfinite().all()  # the literal formula breaks on these
    y.requires_grad_(True)
    p = split_params(y)[1]
    ours = log_likelihood(p, targets)
    assert ours.isfinite().all()
    ours.sum().backward()
    assert y.grad.isfinite().all()
    expected = reference_log_likelihood(as_float64(p), targets.double())
    # Values reach 1e10 nats (a point 1e3 sigmas off a needle), so compare relatively as well.
    torch.testing.assert_close(ours.detach().double(), expected, atol=ATOL, rtol=1e-5)
    assert ours[0, 0] > 10.0  # on a needle's mean the density is high, but bounded by the sigma floor
    assert ours[0, 0] < 2 * -LOG_SIGMA_MIN - 0.5 * math.log(1 - RHO_LIMIT ** 2) - math.log(2 * math.pi) + 1e-3


def test_extreme_gradients_match_autograd_of_the_reference():
    y, targets = extreme_output(torch.float64)

    def grad(fn):
        y_ = y.clone().requires_grad_(True)
        fn(split_params(y_)[1], targets).sum().backward()
        return y_.grad

    ours, expected = grad(log_likelihood), grad(reference_log_likelihood)
    assert ours.isfinite().all()
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)


def test_sequence_nll_sums_masked_points_and_ignores_padding():
    y, targets = random_output(B, T), random_targets(B, T)
    lengths = torch.tensor([T, 4, 1])
    mask = torch.arange(T) < lengths[:, None]
    padded = targets.masked_fill(~mask[..., None], float("nan"))  # padding must not matter, even NaN
    y.requires_grad_(True)
    p = split_params(y)[1]
    per_point = log_likelihood(p, padded, mask)
    assert (per_point[~mask] == 0).all()
    expected = reference_log_likelihood(as_float64(p), targets)
    torch.testing.assert_close(per_point[mask], expected[mask].detach(), atol=ATOL, rtol=0)
    nll = sequence_nll(p, padded, mask)
    assert nll.shape == (B,)
    torch.testing.assert_close(nll, -(expected * mask).sum(-1), atol=ATOL, rtol=0)
    nll.sum().backward()
    assert y.grad.isfinite().all() and (y.grad[~mask] == 0).all()
    torch.testing.assert_close(sequence_nll(p, targets).detach(), -expected.sum(-1).detach(), atol=ATOL, rtol=0)


def test_errors_name_the_expected_shapes():
    with pytest.raises(ShapeError, match="1 \\+ 6M.*121"):
        split_params(torch.zeros(B, T, 120))
    p = split_params(random_output(B, T))[1]
    with pytest.raises(ShapeError, match=f"\\({B}, {T}, 3\\).*shift"):
        log_likelihood(p, torch.zeros(T, B, 3))
    with pytest.raises(UserError, match=">= 0"):
        split_params(random_output(B), bias=-0.5)


# -------------------------------------------------------------------------------------------- sampling


def biased_moments(y: torch.Tensor, b: float, correlated: bool = True) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Analytic mean ``(2,)``, covariance ``(2, 2)`` and e of the mixture in one row ``y``, biased by b as in
    Graves 2013 eqs. 61-62, computed here from the paper rather than from ``split_params``.
    ``correlated=False`` gives the near-miss with every rho set to 0."""
    raw = split_params(y)[0]
    pi = torch.softmax(raw.pi_hat * (1 + b), -1)
    s1, s2 = torch.exp(raw.sigma1_hat - b), torch.exp(raw.sigma2_hat - b)
    rho = torch.tanh(raw.rho_hat) if correlated else torch.zeros_like(raw.rho_hat)
    mu = torch.stack([raw.mu1, raw.mu2], -1)  # (M, 2)
    cov_j = torch.stack([torch.stack([s1 * s1, rho * s1 * s2], -1), torch.stack([rho * s1 * s2, s2 * s2], -1)], -2)
    mean = (pi[:, None] * mu).sum(0)
    second = (pi[:, None, None] * (cov_j + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean), 1 / (1 + math.exp(raw.e_hat.item()))


def moment_errors(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, e: float) -> torch.Tensor:
    """Deviations of the sample mean, covariance and pen frequency from the given values, in standard errors."""
    n = x.size(0)
    centred = x[:, :2] - x[:, :2].mean(0)
    products = centred[:, :, None] * centred[:, None, :]
    mean_z = (x[:, :2].mean(0) - mean) / (centred.std(0) / math.sqrt(n))
    cov_z = (products.mean(0) - cov) / (products.std(0) / math.sqrt(n))
    pen_z = (x[:, 2].mean() - e) / math.sqrt(e * (1 - e) / n)
    return torch.cat([mean_z, cov_z.flatten(), pen_z.view(1)]).abs()


MIXTURE = torch.tensor([0.3,  # e_hat: e = 0.43
                        1.0, 0.2, -0.5,  # pi_hat
                        -1.0, 1.5, 0.5, 0.0, -2.0, 1.0,  # mu1, mu2
                        -0.5, -1.0, -0.2, -1.2, -0.7, -0.3,  # sigma1_hat, sigma2_hat
                        0.7, -1.1, 0.3], dtype=torch.float64)  # rho_hat


@pytest.mark.parametrize("b", [0.0, 0.5, 2.0])
def test_samples_match_the_biased_mixture_moments(b):
    x = sample(MIXTURE.expand(DRAWS, -1), bias=b, generator=seeded(11))
    assert x.shape == (DRAWS, 3) and set(x[:, 2].unique().tolist()) <= {0.0, 1.0}
    mean, cov, e = biased_moments(MIXTURE, b)
    assert moment_errors(x, mean, cov, e).max() < SIGMAS
    # The tolerance is sharp: the same check rejects the moments of a slightly different bias.
    assert moment_errors(x, *biased_moments(MIXTURE, b + 0.1)).max() > SIGMAS


@pytest.mark.parametrize("rho", [-0.95, 0.3, 0.95])
def test_one_component_draws_have_the_correlated_normals_covariance(rho):
    # In a mixture the spread between means hides each component's rho, so check one component alone.
    y = torch.tensor([0.0, 0.0, 0.5, -0.3, -0.4, 0.6, math.atanh(rho)], dtype=torch.float64)
    for b in (0.0, 1.0):
        x = sample(y.expand(DRAWS, -1), bias=b, generator=seeded(17))
        assert moment_errors(x, *biased_moments(y, b)).max() < SIGMAS
        assert moment_errors(x, *biased_moments(y, b, correlated=False)).max() > SIGMAS


@pytest.mark.parametrize("b", [4.0, 8.0])
def test_large_bias_collapses_onto_the_most_probable_mean_with_variance_exp_minus_2b(b):
    y = MIXTURE.clone()
    raw = split_params(y)[0]
    # pi_hat gap 3.8: at b = 4 another component is drawn with probability 2 exp(-3.8 * 5) = 1e-8 per draw.
    raw.pi_hat[0] = 4.0
    j = int(raw.pi_hat.argmax())
    x = sample(y.expand(DRAWS, -1), bias=b, generator=seeded(12))[:, :2]
    mu = torch.stack([raw.mu1[j], raw.mu2[j]])
    sigma = torch.stack([raw.sigma1_hat[j], raw.sigma2_hat[j]]).exp()
    # Every draw is within 6 shrunken sigmas of component j's mean ...
    assert ((x - mu).abs() < SIGMAS * sigma * math.exp(-b)).all()
    # ... and the variance is sigma_j^2 e^(-2b): a sample variance's relative standard error is sqrt(2 / n).
    ratio = x.var(0) / (sigma ** 2 * math.exp(-2 * b))
    assert ((ratio - 1).abs() < SIGMAS * math.sqrt(2 / DRAWS)).all(), ratio


def test_pen_frequency_matches_e_in_every_row():
    e_hat = torch.tensor([3.0, 0.0, -2.0, 40.0, -40.0], dtype=torch.float64)
    y = random_output(len(e_hat), m=2, seed=13)
    y[:, 0] = e_hat
    x = sample(y.unsqueeze(1).expand(-1, DRAWS // 4, -1), generator=seeded(14))
    assert x.shape == (len(e_hat), DRAWS // 4, 3)
    e = 1 / (1 + e_hat.exp())  # Graves 2013 eq. 18
    freq = x[..., 2].mean(1)
    assert ((freq - e).abs() <= SIGMAS * (e * (1 - e) / (DRAWS // 4)).sqrt() + 1e-12).all(), (freq, e)


def test_same_seed_same_samples_and_the_global_rng_is_untouched():
    y = random_output(B, T, m=NUM_COMPONENTS, dtype=torch.float32, seed=15)
    torch.manual_seed(0)
    expected_global = torch.rand(3)
    torch.manual_seed(0)
    a = sample(y, bias=0.7, generator=seeded(7))
    assert torch.equal(torch.rand(3), expected_global)
    assert a.shape == (B, T, 3) and a.dtype == torch.float32 and a.isfinite().all()
    assert torch.equal(a, sample(y, bias=0.7, generator=seeded(7)))
    assert not torch.equal(a, sample(y, bias=0.7, generator=seeded(8)))


def test_sampling_is_finite_at_the_extremes():
    y, _ = extreme_output(torch.float32)
    for b in (0.0, 3.0, 50.0):
        assert sample(y, bias=b, generator=seeded(16)).isfinite().all()


def reference_sample(y, bias, generator):
    """The same draws as sample() (two uniforms, then two normals per row), but every component transformed by
    split_params and the chosen one picked afterwards, each coordinate on its own."""
    _, p = split_params(y, bias)
    lead, m = p.log_pi.shape[:-1], p.log_pi.size(-1)
    log_pi = p.log_pi.reshape(-1, m)
    u = torch.rand((log_pi.size(0), 2), generator=generator, dtype=log_pi.dtype)
    z = torch.randn((log_pi.size(0), 2), generator=generator, dtype=log_pi.dtype)
    cdf = log_pi.exp().cumsum(-1)
    j = torch.tensor([min(int((row < u_k * row[-1]).sum()), m - 1) for row, u_k in zip(cdf, u[:, 0])]).unsqueeze(1)

    def pick(t):
        return t.reshape(-1, m).gather(-1, j).squeeze(-1)

    mu1, mu2, rho = pick(p.mu1), pick(p.mu2), pick(p.rho)
    s1, s2 = pick(p.log_sigma1).exp(), pick(p.log_sigma2).exp()
    x1 = mu1 + s1 * z[:, 0]
    x2 = mu2 + s2 * (rho * z[:, 0] + torch.sqrt((1.0 - rho) * (1.0 + rho)) * z[:, 1])
    eos = (u[:, 1] < p.eos_prob.reshape(-1)).to(log_pi.dtype)
    return torch.stack([x1, x2, eos], dim=-1).reshape(*lead, 3)


@pytest.mark.parametrize("bias", [0.0, 0.7, 3.0])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5)], ids=["one", "batch", "sequence"])
def test_sampling_the_chosen_component_equals_transforming_all_of_them(bias, shape):
    """Bit for bit, with the same generator: the fast path changes the work, not one number."""
    y = random_output(math.prod(shape), m=NUM_COMPONENTS, dtype=torch.float32, seed=21).reshape(*shape, -1)
    extreme, _ = extreme_output(torch.float32)
    for out in (y, extreme):
        assert torch.equal(sample(out, bias=bias, generator=seeded(5)), reference_sample(out, bias, seeded(5)))


@pytest.mark.parametrize("bias", [0.0, 0.7, 3.0])
def test_the_numpy_draw_equals_sample_given_the_same_random_numbers(bias):
    """sample_arrays (the CPU sampler's) against sample, with sample's own uniforms and normals: the same
    points to float32 rounding, the same component wherever u is not within rounding of a boundary of pi's
    cumulative sum (there either is right), at ordinary outputs and at the extremes."""
    ordinary = random_output(400, m=NUM_COMPONENTS, dtype=torch.float32, seed=22)
    extreme = extreme_output(torch.float32)[0].reshape(-1, output_size(M))
    for y in (ordinary, extreme):
        expected = sample(y, bias=bias, generator=seeded(5))
        generator = seeded(5)
        u = torch.rand((len(y), 2), generator=generator)
        z = torch.randn((len(y), 2), generator=generator)
        drawn = torch.from_numpy(sample_arrays(y.numpy(), bias, u.numpy(), z.numpy()))
        assert drawn.dtype == torch.float32 and drawn.shape == (len(y), 3)
        cdf = split_params(y.double(), bias)[1].log_pi.exp().cumsum(-1)
        tie = ((cdf - u[:, :1].double()).abs() < 1e-5).any(-1)
        assert tie.sum() <= 2, "the test's draws should almost never sit on a boundary"
        torch.testing.assert_close(drawn[~tie], expected[~tie], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="bias"):
        sample_arrays(ordinary.numpy(), -1.0, u.numpy(), z.numpy())
