"""Checks of the VDM maths in tvq.diffusion against independent computations (numpy, float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tvq import diffusion as D
from tvq.errors import ConfigError

TIMES = np.array([0.0, 1e-4, 0.05, 0.3, 0.5, 0.77, 0.99, 0.9999, 1.0])
# pairs 0 <= s < t <= 1, including both ends
PAIRS = [(0.0, 0.1), (0.0, 1.0), (0.2, 0.3), (0.5, 0.51), (0.4, 0.9), (0.9, 0.99), (0.98, 1.0), (0.5, 1.0)]


def np_alpha(t):
    return np.cos(np.pi * np.asarray(t, dtype=np.float64) / 2)


def np_sigma(t):
    return np.sin(np.pi * np.asarray(t, dtype=np.float64) / 2)


def T(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


# -- schedule ---------------------------------------------------------------------------------


@pytest.mark.equation("18")
def test_cosine_schedule_matches_numpy_and_is_variance_preserving():
    t = T(TIMES)
    np.testing.assert_allclose(D.alpha(t).numpy(), np_alpha(TIMES), atol=1e-15)
    np.testing.assert_allclose(D.sigma(t).numpy(), np_sigma(TIMES), atol=1e-15)
    np.testing.assert_allclose((D.alpha(t) ** 2 + D.sigma(t) ** 2).numpy(), 1.0, atol=1e-12)
    # the ends are exact, also in float32 (no cos(pi/2) = -4.4e-8)
    ends = torch.tensor([0.0, 1.0])
    assert D.alpha(ends).tolist() == [1.0, 0.0]
    assert D.sigma(ends).tolist() == [0.0, 1.0]


@pytest.mark.equation("16", "17")
def test_log_snr_is_log_of_snr_and_strictly_decreasing():
    t = T(np.linspace(0.001, 0.999, 500))
    lam = D.log_snr(t)
    expected = np.log(np_alpha(t.numpy()) ** 2 / np_sigma(t.numpy()) ** 2)
    np.testing.assert_allclose(lam.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(D.snr(t).numpy(), np.exp(expected), rtol=1e-10)
    assert torch.all(lam[1:] < lam[:-1])
    ends = D.log_snr(torch.tensor([0.0, 1.0]))
    assert ends[0] == math.inf and ends[1] == -math.inf
    # Table 3's SNR_min column: SNR(0.99) = 2.47e-4, SNR(0.999) = 2.47e-6
    np.testing.assert_allclose(D.snr(T([0.99, 0.999])).numpy(), [2.47e-4, 2.47e-6], rtol=5e-3)


@pytest.mark.equation("14")
def test_transition_qts_composes_to_q_t_given_0():
    for s, t in PAIRS:
        s_, t_ = T(s), T(t)
        a_ts = D.alpha_ts(t_, s_).item()
        s2_ts = D.sigma2_ts(t_, s_).item()
        bs, bt = np.pi * s / 2, np.pi * t / 2
        # closed form for the cosine schedule: sigma_{t|s}^2 = sin(b_t - b_s) sin(b_t + b_s) / cos^2 b_s
        np.testing.assert_allclose(s2_ts, np.sin(bt - bs) * np.sin(bt + bs) / np.cos(bs) ** 2, atol=1e-12)
        np.testing.assert_allclose(a_ts, np.cos(bt) / np.cos(bs), atol=1e-12)
    # Monte Carlo: z_s ~ q(z_s|z0), z_t = a_ts z_s + sigma_ts eps' has the law q(z_t|z0)
    g = torch.Generator().manual_seed(1)
    z0, s, t = 0.7, T(0.3), T(0.8)
    z_s = D.diffuse(torch.full((200_000,), z0, dtype=torch.float64), s, torch.randn(200_000, generator=g, dtype=torch.float64))
    z_t = D.alpha_ts(t, s) * z_s + D.sigma2_ts(t, s).sqrt() * torch.randn(200_000, generator=g, dtype=torch.float64)
    assert abs(z_t.mean().item() - np_alpha(0.8) * z0) < 0.01
    assert abs(z_t.var().item() - np_sigma(0.8) ** 2) < 0.01


@pytest.mark.equation("13", "15")
def test_diffuse_is_alpha_z0_plus_sigma_eps():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(4, 3, 5, generator=g)
    eps = torch.randn(4, 3, 5, generator=g)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    z_t = D.diffuse(z0, t, eps)
    ref = np_alpha(t.numpy())[:, None, None] * z0.numpy() + np_sigma(t.numpy())[:, None, None] * eps.numpy()
    np.testing.assert_allclose(z_t.numpy(), ref, atol=1e-6)
    assert torch.equal(D.diffuse(z0, 0.0, eps), z0)           # t = 0: the data
    assert torch.equal(D.diffuse(z0, 1.0, eps), eps)          # t = 1: pure noise


# -- posterior ----------------------------------------------------------------------------------


@pytest.mark.equation("19", "20")
def test_posterior_equals_gaussian_conditioning_of_the_joint():
    """Joint of (z_s, z_t) given z0 is Gaussian; condition on z_t with the Schur complement."""
    rng = np.random.default_rng(0)
    for s, t in PAIRS:
        z0, z_t = rng.normal(size=2)
        a_s, a_t, s_s, s_t = np_alpha(s), np_alpha(t), np_sigma(s), np_sigma(t)
        # z_s = a_s z0 + s_s e1 ; z_t = a_t z0 + s_t e  with Cov(z_s, z_t) = (a_t / a_s) s_s^2 (Markov)
        cov_ss, cov_tt = s_s**2, s_t**2
        cov_st = (a_t / a_s) * s_s**2
        mean_ref = a_s * z0 + cov_st / cov_tt * (z_t - a_t * z0)
        var_ref = cov_ss - cov_st**2 / cov_tt
        mean, var = D.posterior(T([[[z_t]]]), T([[[z0]]]), T([s]), T([t]))
        np.testing.assert_allclose(mean.item(), mean_ref, atol=1e-10, err_msg=f"s={s}, t={t}")
        np.testing.assert_allclose(var.item(), var_ref, atol=1e-10, err_msg=f"s={s}, t={t}")


@pytest.mark.equation("23", "22")
def test_eps_form_posterior_equals_eq20_with_z0_from_eq22():
    g = torch.Generator().manual_seed(0)
    z_t = torch.randn(6, 2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, 3, generator=g, dtype=torch.float64)
    s = T([0.0, 0.1, 0.3, 0.5, 0.8, 0.97])
    t = T([0.05, 0.2, 0.31, 0.9, 0.95, 0.99])
    mean23, var23 = D.posterior_eps(z_t, eps, s, t)
    mean20, var20 = D.posterior(z_t, D.z0_from_eps(z_t, eps, t), s, t)
    torch.testing.assert_close(mean23, mean20, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(var23, var20)
    # and the sign: with the true eps the eps-form mean equals the z0-form mean with the true z0
    z0 = torch.randn(6, 2, 3, generator=g, dtype=torch.float64)
    zt = D.diffuse(z0, t, eps)
    torch.testing.assert_close(D.posterior_eps(zt, eps, s, t)[0], D.posterior(zt, z0, s, t)[0])


# -- parameterisations --------------------------------------------------------------------------


@pytest.mark.equation("22")
def test_eps_z0_round_trips_and_edge_cases():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(5, 4, 7, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 4, 7, generator=g, dtype=torch.float64)
    t = T([0.01, 0.3, 0.5, 0.9, 0.999])
    z_t = D.diffuse(z0, t, eps)
    torch.testing.assert_close(D.eps_from_z0(z_t, z0, t), eps)
    torch.testing.assert_close(D.z0_from_eps(z_t, eps, t), z0)
    # z0 is not identifiable at t = 1: its Bayes estimate for standardised latents is 0, never inf/NaN
    assert torch.equal(D.z0_from_eps(z_t, eps, 1.0), torch.zeros_like(z0))
    assert torch.equal(D.eps_from_z0(z_t, z0, 0.0), torch.zeros_like(z0))


@pytest.mark.equation("24")
def test_velocity_is_dz_dbeta_and_round_trips():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    t = T([0.1, 0.5, 0.93])
    v = D.velocity(z0, eps, t)
    # definition: v = dz_t / d beta_t with beta_t = pi t / 2 (central difference in t)
    h = 1e-6
    dz_dt = (D.diffuse(z0, t + h, eps) - D.diffuse(z0, t - h, eps)) / (2 * h)
    torch.testing.assert_close(v, dz_dt / (math.pi / 2), rtol=1e-6, atol=1e-7)
    z_t = D.diffuse(z0, t, eps)
    torch.testing.assert_close(D.z0_from_v(z_t, v, t), z0)
    torch.testing.assert_close(D.eps_from_v(z_t, v, t), eps)
    # the picture of Figure 5: v = eps at t = 0 and v = -z0 at t = 1
    torch.testing.assert_close(D.velocity(z0, eps, 0.0), eps)
    torch.testing.assert_close(D.velocity(z0, eps, 1.0), -z0)
    # unit variance for standardised z0
    big = torch.randn(2, 200_000, generator=g, dtype=torch.float64)
    assert abs(D.velocity(big[0], big[1], T(0.37)).var().item() - 1.0) < 0.02


def test_every_parameterisation_recovers_the_same_eps_and_z0():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(4, 3, 6, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, 6, generator=g, dtype=torch.float64)
    t = T([0.05, 0.4, 0.7, 0.95])
    z_t = D.diffuse(z0, t, eps)
    for p in D.PARAMETERIZATIONS:
        target = D.training_target(z0, eps, t, p)
        eps_hat, z0_hat = D.predict_eps_z0(target, z_t, t, p)
        torch.testing.assert_close(eps_hat, eps, msg=p)
        torch.testing.assert_close(z0_hat, z0, msg=p)
    with pytest.raises(ConfigError, match="parameterization"):
        D.predict_eps_z0(eps, z_t, t, "score")


# -- losses -------------------------------------------------------------------------------------


@pytest.mark.equation("71")
def test_vlb_weight_is_minus_half_dlambda_dt():
    t = T(np.linspace(0.02, 0.98, 49))
    h = 1e-6
    dlam = (D.log_snr(t + h) - D.log_snr(t - h)) / (2 * h)
    torch.testing.assert_close(D.vlb_weight(t), -0.5 * dlam, rtol=1e-6, atol=0)
    bt = np.pi * t.numpy() / 2
    np.testing.assert_allclose(D.neg_dlog_snr_dt(t).numpy(), np.pi / (np.cos(bt) * np.sin(bt)), rtol=1e-12)
    assert torch.all(D.vlb_weight(t) > 0)


@pytest.mark.equation("69", "70")
def test_z0_weight_is_minus_half_d_snr_dt_and_matches_eps_form():
    t = T(np.linspace(0.05, 0.95, 19))
    h = 1e-6
    d_snr = (D.snr(t + h) - D.snr(t - h)) / (2 * h)
    torch.testing.assert_close(D.z0_loss_weight(t), -0.5 * d_snr, rtol=1e-5, atol=0)
    # w_z0 ||z0 - z0_hat||^2 == w_eps ||eps - eps_hat||^2 for the same prediction (Eq. 70 -> 71)
    g = torch.Generator().manual_seed(0)
    z0, eps, eps_hat = (torch.randn(19, 8, generator=g, dtype=torch.float64) for _ in range(3))
    z_t = D.alpha(t)[:, None] * z0 + D.sigma(t)[:, None] * eps
    z0_hat = D.z0_from_eps(z_t, eps_hat, t)
    lhs = D.z0_loss_weight(t) * ((z0 - z0_hat) ** 2).sum(1)
    rhs = D.vlb_weight(t) * ((eps - eps_hat) ** 2).sum(1)
    torch.testing.assert_close(lhs, rhs)


def test_quasi_uniform_times_cover_the_unit_interval_evenly():
    g = torch.Generator().manual_seed(3)
    n = 64
    t = D.quasi_uniform_times(n, g)
    assert t.shape == (n,) and t.dtype == torch.float32
    assert torch.all((t >= 0) & (t < 1))
    gaps = torch.diff(torch.sort(t.double()).values)
    torch.testing.assert_close(gaps, torch.full_like(gaps, 1 / n), atol=1e-6, rtol=0)
    # exactly one time in each bin [k/n, (k+1)/n)
    assert torch.equal(torch.sort((t.double() * n).floor().long()).values, torch.arange(n))
    again = D.quasi_uniform_times(n, torch.Generator().manual_seed(3))
    assert torch.equal(t, again)
    assert not torch.equal(t, D.quasi_uniform_times(n, torch.Generator().manual_seed(4)))
    with pytest.raises(ConfigError):
        D.quasi_uniform_times(0)


def test_drop_class_labels_rate_and_null_label():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (20_000,), generator=g)
    dropped = D.drop_class_labels(y, 0.1, null_label=3, generator=g)
    is_null = dropped == 3
    assert abs(is_null.float().mean().item() - 0.1) < 0.01
    assert torch.equal(dropped[~is_null], y[~is_null])
    assert torch.equal(D.drop_class_labels(y, 0.0, 3), y)
    with pytest.raises(ConfigError):
        D.drop_class_labels(y, 1.0, 3)


def _oracle(z0, eps, parameterization):
    """A model that knows the answer: returns the exact target for the batch it was built for."""
    def model_fn(z_t, t, labels, cond):
        return D.training_target(z0, eps, t, parameterization)
    return model_fn


@pytest.mark.parametrize("parameterization", D.PARAMETERIZATIONS)
def test_diffusion_loss_is_zero_for_an_oracle_and_positive_otherwise(parameterization):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(16, 4, 9, generator=g)
    eps = torch.randn(16, 4, 9, generator=g)
    t = D.quasi_uniform_times(16, g).clamp(0.01, 0.99)
    out = D.diffusion_loss(_oracle(z0, eps, parameterization), z0, t=t, eps=eps, parameterization=parameterization)
    assert set(out) == {"loss", "mse", "mse_eps", "vlb", "t"}
    for key in ("loss", "mse", "mse_eps", "vlb"):
        assert out[key].item() < 1e-8, key
    zero = D.diffusion_loss(lambda z, t, y, c: torch.zeros_like(z), z0, t=t, eps=eps, parameterization=parameterization)
    assert zero["loss"].item() > 0.1
    vlb = D.diffusion_loss(lambda z, t, y, c: torch.zeros_like(z), z0, t=t, eps=eps,
                           parameterization=parameterization, weighting="vlb")
    assert vlb["loss"].item() == pytest.approx(vlb["vlb"].item())


def test_diffusion_loss_simple_eps_is_plain_mse_and_passes_labels():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 2, 5, generator=g)
    y = torch.arange(8) % 2
    seen = {}

    def model_fn(z_t, t, labels, cond):
        seen.update(labels=labels, cond=cond, t=t, z_t=z_t)
        return torch.full_like(z_t, 0.5)

    cond = torch.randn(8, 2, 3)
    out = D.diffusion_loss(model_fn, z0, class_labels=y, cond=cond, generator=g)
    eps = (seen["z_t"] - D.alpha(seen["t"])[:, None, None] * z0) / D.sigma(seen["t"])[:, None, None]
    assert out["loss"].item() == pytest.approx(((eps - 0.5) ** 2).mean().item(), rel=1e-4)
    assert torch.equal(seen["labels"], y) and seen["cond"] is cond
    D.diffusion_loss(model_fn, z0, class_labels=torch.zeros(8, dtype=torch.long), p_uncond=0.5, null_label=2,
                     generator=g)
    assert (seen["labels"] == 2).any() and (seen["labels"] == 0).any()
    with pytest.raises(ConfigError, match="null_label"):
        D.diffusion_loss(model_fn, z0, class_labels=y, p_uncond=0.1)
    with pytest.raises(ConfigError, match="weighting"):
        D.diffusion_loss(model_fn, z0, weighting="snr")
    with pytest.raises(ConfigError, match="shape"):
        D.diffusion_loss(lambda z, t, y, c: z[:, :1], z0)


# -- guidance and rescaling ---------------------------------------------------------------------


@pytest.mark.equation("29")
def test_classifier_free_guidance_endpoints_and_extrapolation():
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(2, 4, 3, 5, generator=g)
    assert torch.equal(D.classifier_free_guidance(u, c, 0.0), u)
    assert torch.equal(D.classifier_free_guidance(u, c, 1.0), c)
    torch.testing.assert_close(D.classifier_free_guidance(u, c, 3.0), -2.0 * u + 3.0 * c)


@pytest.mark.equation("30", "31")
@pytest.mark.parametrize("mode", ["global", "per_sample"])
def test_rescale_identity_at_zero_and_unit_std_at_one(mode):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, 9, generator=g) * torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 8.0])[:, None, None] + 1.0
    assert torch.equal(D.rescale_latent(z, 0.0, mode), z)
    r = D.rescale_latent(z, 1.0, mode)
    if mode == "global":
        assert r.std().item() == pytest.approx(1.0, rel=1e-5)
        torch.testing.assert_close(r, z / z.std())         # one factor for the whole batch
    else:
        torch.testing.assert_close(r.flatten(1).std(1), torch.ones(6))
    half = D.rescale_latent(z, 0.25, mode)
    torch.testing.assert_close(half, 0.75 * z + 0.25 * r)
    with pytest.raises(ConfigError):
        D.rescale_latent(z, 0.5, "batch")


def test_lin_rescale_matches_conditional_std_per_sample():
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(3, 2, 8, generator=g) * torch.tensor([1.0, 2.0, 0.5])[:, None, None]
    cfg = cond * 4.0 + 0.1 * torch.randn(3, 2, 8, generator=g)
    out = D.rescale_guidance_lin(cfg, cond, 1.0)
    torch.testing.assert_close(out.flatten(1).std(1), cond.flatten(1).std(1))
    assert torch.equal(D.rescale_guidance_lin(cfg, cond, 0.0), cfg)
