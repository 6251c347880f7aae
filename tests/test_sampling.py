"""Samplers: Algorithm 3 against a literal reference loop, exactness on a Gaussian toy problem,
guidance batching, t_max = 1, reproducibility, the cascade, and class proportions."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from tvq import diffusion as D
from tvq.config import load_config
from tvq.errors import ConfigError
from tvq.sampling import (class_counts_by_proportion, class_labels_by_proportion, sample_ancestral, sample_cascade,
                          sampler_kwargs, step_coefficients, time_grid)
from tvq.unet import UNet1D


class ToyModel:
    """A smooth, label- and condition-dependent stand-in for f_θ; counts its calls."""

    null_label = 3

    def __init__(self):
        self.calls: list[tuple[int, object, object]] = []

    def __call__(self, z_t, t, labels, cond):
        self.calls.append((z_t.shape[0], None if labels is None else labels.clone(), cond))
        y = torch.full((z_t.shape[0],), 3.0) if labels is None else labels.float()
        out = 0.4 * torch.tanh(z_t) + 0.1 * (y - 1.0)[:, None, None] + 0.05 * t[:, None, None]
        if cond is not None:
            out = out + 0.1 * cond.mean(dim=(1, 2))[:, None, None]
        return out


def reference_algorithm3(model_fn, shape, steps, t_max, w, gamma, mode, labels, cond, parameterization, seed):
    """Algorithm 3 written out literally with tvq.diffusion's tagged functions, one step at a time."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g)
    null = torch.full((shape[0],), model_fn.null_label)
    for i in range(steps, 0, -1):
        s, t = t_max * (i - 1) / steps, t_max * i / steps
        tt = torch.full((shape[0],), t)
        if labels is None:
            pred = model_fn(z, tt, None, cond)
        else:
            pred = D.classifier_free_guidance(model_fn(z, tt, null, cond), model_fn(z, tt, labels, cond), w)
        _, z0_hat = D.predict_eps_z0(pred, z, tt, parameterization)
        mean, var = D.posterior(z, z0_hat, torch.tensor(s), torch.tensor(t))
        z = mean + var.sqrt() * torch.randn(shape, generator=g) if var > 0 else mean
        z = D.rescale_latent(z, gamma, mode)
    return z


@pytest.mark.equation("21", "27", "28")
@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
@pytest.mark.parametrize("mode", ["global", "per_sample"])
def test_sampler_equals_a_literal_algorithm_3(parameterization, mode):
    shape, labels = (6, 3, 7), torch.tensor([0, 1, 2, 0, 1, 2])
    cond = torch.randn(6, 2, 4, generator=torch.Generator().manual_seed(9))
    for w, lab in ((2.5, labels), (1.0, labels), (1.0, None)):
        ours = sample_ancestral(ToyModel(), shape, steps=6, t_max=0.9, guidance=w, rescale=0.3, rescale_mode=mode,
                                class_labels=lab, cond=cond, parameterization=parameterization,
                                generator=torch.Generator().manual_seed(5))
        ref = reference_algorithm3(ToyModel(), shape, 6, 0.9, w, 0.3, mode, lab, cond, parameterization, 5)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_eps_step_coefficients_are_algorithm_3():
    grid = time_grid(16, 0.99)
    s, t = grid[:-1], grid[1:]
    a, b, std = step_coefficients(s, t, "eps")
    a_s, a_t = torch.cos(math.pi / 2 * s), torch.cos(math.pi / 2 * t)
    s_s, s_t = torch.sin(math.pi / 2 * s), torch.sin(math.pi / 2 * t)
    c = 1 - (a_t * s_s / (a_s * s_t)) ** 2
    torch.testing.assert_close(a, a_s / a_t)
    torch.testing.assert_close(b, -c * s_t * a_s / a_t)
    torch.testing.assert_close(std, (c * s_s**2).sqrt())
    assert std[0] == 0                                      # the last step (s = 0) adds no noise


def test_time_grid_starts_at_t_max():
    g = time_grid(4, 0.99)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.2475, 0.495, 0.7425, 0.99], dtype=torch.float64))
    with pytest.raises(ConfigError):
        time_grid(0)
    with pytest.raises(ConfigError):
        time_grid(4, 1.5)


def gaussian_oracle(m: float, s: float, parameterization: str):
    """Exact f_θ for data z0 ~ N(m, s² I): E[ε | z_t] = σ_t (z_t − α_t m) / (α_t² s² + σ_t²)."""
    def model_fn(z_t, t, labels, cond):
        a, sg = D.bcast(D.alpha(t), z_t), D.bcast(D.sigma(t), z_t)
        eps = sg * (z_t - a * m) / (a**2 * s**2 + sg**2)
        z0 = (m * sg**2 + a * s**2 * z_t) / (a**2 * s**2 + sg**2)    # E[z0 | z_t]
        return {"eps": eps, "x0": z0, "v": a * eps - sg * z0}[parameterization]
    return model_fn


@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
def test_exact_model_on_gaussian_data_reproduces_its_moments(parameterization):
    m, s = 0.5, 0.6
    z = sample_ancestral(gaussian_oracle(m, s, parameterization), (4000, 1, 8), steps=200, t_max=0.999,
                         parameterization=parameterization, generator=torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - m) < 0.02
    assert abs(z.std().item() - s) < 0.03


@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
def test_t_max_one_is_finite_and_exact_for_standardised_data(parameterization):
    # data N(0, 0.8^2): E[z0] = 0, so the t = 1 step is exact even for eps-prediction
    z = sample_ancestral(gaussian_oracle(0.0, 0.8, parameterization), (4000, 1, 4), steps=100, t_max=1.0,
                         parameterization=parameterization, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(z).all()
    assert abs(z.std().item() - 0.8) < 0.04
    net = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8).eval()
    z = sample_ancestral(net, (4, 3, 5), steps=4, t_max=1.0, guidance=3.0, rescale=0.1,
                         class_labels=torch.tensor([0, 1, 1, 0]), parameterization=parameterization)
    assert torch.isfinite(z).all()


def test_thesis_alpha_quirk_reproduces_the_sign_flip_at_t_one():
    grid = time_grid(128, 1.0)
    a, _, _ = step_coefficients(grid[-2:-1], grid[-1:], "eps", thesis_alpha=True)
    assert a.item() < -2e5                                   # ≈ α_s / cos_float32(π/2) = 0.0123 / -4.4e-8
    a_fixed, b_fixed, _ = step_coefficients(grid[-2:-1], grid[-1:], "eps")
    assert a_fixed.item() == 0 and b_fixed.item() == 0      # ours: z_s = σ_s δ


def test_same_seed_same_samples_and_seeds_differ():
    net = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8).eval()
    kw = dict(steps=5, guidance=2.0, rescale=0.1, class_labels=torch.tensor([0, 1, 0]))
    a = sample_ancestral(net, (3, 3, 9), generator=torch.Generator().manual_seed(7), **kw)
    b = sample_ancestral(net, (3, 3, 9), generator=torch.Generator().manual_seed(7), **kw)
    c = sample_ancestral(net, (3, 3, 9), generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    a.add_(1.0)                                              # a normal tensor, not an inference tensor


def test_guidance_uses_one_batched_forward_per_step():
    labels = torch.tensor([0, 2, 1, 1])
    guided = ToyModel()
    sample_ancestral(guided, (4, 2, 5), steps=3, guidance=3.0, class_labels=labels)
    assert len(guided.calls) == 3
    assert all(n == 8 for n, _, _ in guided.calls)
    assert torch.equal(guided.calls[0][1], torch.tensor([0, 2, 1, 1, 3, 3, 3, 3]))
    for w, lab, expected in ((1.0, labels, labels), (0.0, labels, None), (3.0, None, None)):
        m = ToyModel()
        sample_ancestral(m, (4, 2, 5), steps=2, guidance=w, class_labels=lab)
        assert [n for n, _, _ in m.calls] == [4, 4]
        got = m.calls[0][1]
        assert (got is None and expected is None) or torch.equal(got, expected)


def test_w_zero_is_unconditional_sampling():
    kw = dict(steps=4, rescale=0.2)
    a = sample_ancestral(ToyModel(), (4, 2, 5), guidance=0.0, class_labels=torch.tensor([0, 1, 2, 0]),
                         generator=torch.Generator().manual_seed(3), **kw)
    b = sample_ancestral(ToyModel(), (4, 2, 5), generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a, b)


def test_lin_rescale_mode_runs_and_differs_from_no_rescale():
    kw = dict(steps=4, guidance=4.0, class_labels=torch.tensor([0, 1, 2, 0]))
    a = sample_ancestral(ToyModel(), (4, 2, 5), rescale=0.7, rescale_mode="lin", generator=torch.Generator().manual_seed(3), **kw)
    b = sample_ancestral(ToyModel(), (4, 2, 5), rescale=0.0, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.isfinite(a).all() and not torch.allclose(a, b)


def test_callback_and_bf16_option():
    seen = []
    net = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8).eval()
    z = sample_ancestral(net, (2, 3, 6), steps=3, bf16=True, callback=lambda info: seen.append((info["i"], info["t"])))
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert [i for i, _ in seen] == [3, 2, 1] and seen[0][1] == pytest.approx(0.99)


def test_bad_sampler_arguments_raise_config_errors():
    def plain(z, t, y, c):
        return torch.zeros_like(z)
    with pytest.raises(ConfigError, match="rescale_mode"):
        sample_ancestral(ToyModel(), (2, 2, 3), steps=2, rescale_mode="batch")
    with pytest.raises(ConfigError, match="guidance"):
        sample_ancestral(ToyModel(), (2, 2, 3), steps=2, guidance=-1.0)
    with pytest.raises(ConfigError, match="null_label"):
        sample_ancestral(plain, (2, 2, 3), steps=2, guidance=2.0, class_labels=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="lie in"):
        sample_ancestral(ToyModel(), (2, 2, 3), steps=2, class_labels=torch.tensor([0, 7]))
    with pytest.raises(ConfigError, match="shape"):
        sample_ancestral(ToyModel(), (2, 3), steps=2)
    with pytest.raises(ConfigError, match="steps"):
        sample_ancestral(ToyModel(), (2, 2, 3), steps=0)


def test_cascade_conditions_hf_on_the_lf_sample():
    lf, hf = ToyModel(), ToyModel()
    stages = []
    z_lf, z_hf = sample_cascade(lf, hf, (3, 2, 4), (3, 2, 9), steps_lf=2, steps_hf=3, guidance=2.0,
                                class_labels=torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0),
                                callback=lambda info: stages.append(info["stage"]))
    assert z_lf.shape == (3, 2, 4) and z_hf.shape == (3, 2, 9)
    assert stages == ["lf", "lf", "hf", "hf", "hf"]
    assert all(c is None for _, _, c in lf.calls)
    cond_seen = hf.calls[0][2]
    torch.testing.assert_close(cond_seen, torch.cat((z_lf, z_lf)))   # batched CFG: condition twice
    hf2 = ToyModel()
    sample_cascade(ToyModel(), hf2, (3, 2, 4), (3, 2, 9), steps_lf=2, lf_conditioning=False)
    assert all(c is None for _, _, c in hf2.calls)
    with pytest.raises(ConfigError):
        sample_cascade(lf, hf, (3, 2, 4), (4, 2, 9), steps_lf=2)


def test_cascade_with_unets_keeps_shapes():
    kw = dict(time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8)
    lf = UNet1D(4, 2, (8, 16), **kw).eval()
    hf = UNet1D(4, 2, (8, 8, 16), cond_channels=4, **kw).eval()
    z_lf, z_hf = sample_cascade(lf, hf, (2, 4, 17), (2, 4, 70), steps_lf=2, guidance=3.0, rescale=0.1,
                                class_labels=torch.tensor([1, 0]))
    assert z_lf.shape == (2, 4, 17) and z_hf.shape == (2, 4, 70)
    assert torch.isfinite(z_hf).all()


def test_class_proportions_follow_the_training_set():
    y = np.array([0] * 100 + [1] * 300)
    assert class_counts_by_proportion(y, 1024).tolist() == [256, 768]
    counts = class_counts_by_proportion(np.array([0, 0, 1, 2, 2, 2, 2]), 10)
    assert counts.sum() == 10 and counts.tolist() == [3, 1, 6]
    assert class_counts_by_proportion(np.array([0, 2]), 4, n_classes=4).tolist() == [2, 0, 2, 0]
    labels = class_labels_by_proportion(torch.as_tensor(y), 1024, torch.Generator().manual_seed(0))
    assert labels.dtype == torch.int64 and torch.bincount(labels).tolist() == [256, 768]
    assert not torch.equal(labels, torch.sort(labels).values)                   # shuffled
    again = class_labels_by_proportion(y, 1024, torch.Generator().manual_seed(0))
    assert torch.equal(labels, again)
    with pytest.raises(ConfigError):
        class_counts_by_proportion(np.array([0.5, 1.0]), 4)


def test_sampler_kwargs_follow_the_config():
    cfg = load_config("thesis-text")
    unc, con = sampler_kwargs(cfg, False), sampler_kwargs(cfg, True)
    assert unc["steps_lf"] == 128 and con["steps_lf"] == 32
    assert con["guidance"] == 3.0 and unc["guidance"] == 1.0
    assert unc["rescale"] == 0.1 and unc["t_max"] == 0.99 and unc["rescale_mode"] == "global"


# -- the deterministic samplers ------------------------------------------------------------------

from tvq.sampling import ODE_SAMPLERS, SAMPLERS, Denoiser, sample_latent  # noqa: E402


@pytest.mark.parametrize("sampler", list(ODE_SAMPLERS))
@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
def test_ode_samplers_reproduce_gaussian_moments_with_the_exact_model(sampler, parameterization):
    m, s = 0.5, 0.6
    z = sample_latent(gaussian_oracle(m, s, parameterization), (4000, 1, 8), sampler=sampler, steps=100,
                      t_max=0.999, parameterization=parameterization, generator=torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - m) < 0.02
    assert abs(z.std().item() - s) < 0.03


def test_dpmpp_2m_converges_at_second_order_and_ddim_at_first():
    """Against the ODE's solution (a 4000-step DPM-Solver++ run from the same start), doubling the
    steps from 8 to 16 cuts DDIM's error by about 2 (first order) and DPM-Solver++(2M)'s by about 4
    or more (second order); at 16 steps the second-order solver is already 3x closer."""
    oracle = gaussian_oracle(1.5, 0.3, "eps")
    shape, seed = (512, 1, 4), 3
    run = lambda name, n: sample_latent(oracle, shape, sampler=name, steps=n, t_max=0.99,
                                        generator=torch.Generator().manual_seed(seed))
    ref = run("dpmpp_2m", 4000)
    err = {(name, n): (run(name, n) - ref).abs().mean().item() for name in ODE_SAMPLERS for n in (8, 16)}
    assert 0.4 < err[("ddim", 16)] / err[("ddim", 8)] < 0.6
    assert err[("dpmpp_2m", 16)] / err[("dpmpp_2m", 8)] < 0.3
    assert err[("dpmpp_2m", 16)] < err[("ddim", 16)] / 3
    # The singlestep solver (two evaluations a step): each doubling cuts its error by clearly more
    # than the 2x of a first-order method (the first-order last step to t = 0 keeps it above 4x).
    err[("dpmpp_2s", 32)] = (run("dpmpp_2s", 32) - ref).abs().mean().item()
    assert err[("dpmpp_2s", 16)] / err[("dpmpp_2s", 8)] < 0.4
    assert err[("dpmpp_2s", 32)] / err[("dpmpp_2s", 16)] < 0.4
    assert err[("dpmpp_2s", 16)] < err[("ddim", 16)] / 2


def test_ode_samplers_are_deterministic_given_the_start():
    net = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8).eval()
    for name in ODE_SAMPLERS:
        runs = [sample_latent(net, (4, 3, 5), sampler=name, steps=5, guidance=3.0, rescale=0.1,
                              class_labels=torch.tensor([0, 1, 1, 0]), generator=torch.Generator().manual_seed(s))
                for s in (4, 4, 5)]
        assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
        assert torch.isfinite(runs[0]).all()


def test_denoiser_reads_every_parameterisation_like_the_diffusion_module():
    z = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    pred = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1))
    for p in ("eps", "v", "x0"):
        den = Denoiser(lambda z_t, t, y, c: pred, z.shape, parameterization=p)
        eps, z0 = den(z, 0.37)
        ref_eps, ref_z0 = D.predict_eps_z0(pred, z, torch.full((5,), 0.37), p)
        torch.testing.assert_close(eps, ref_eps)
        torch.testing.assert_close(z0, ref_z0)


def test_sampler_registry_and_errors():
    assert SAMPLERS == ("ancestral", "ddim", "dpmpp_2m", "dpmpp_2s")
    with pytest.raises(ConfigError, match="sampler must be one of"):
        sample_latent(ToyModel(), (2, 1, 3), sampler="euler", steps=4)
    with pytest.raises(ConfigError, match="ancestral"):
        sample_latent(ToyModel(), (2, 1, 3), sampler="ddim", steps=4, thesis_alpha=True)


def test_cascade_runs_every_sampler_and_the_callback_sees_each_step():
    lf = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8).eval()
    hf = UNet1D(3, 2, (8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8,
                cond_channels=3).eval()
    for name in SAMPLERS:
        seen = []
        a, b = sample_cascade(lf, hf, (2, 3, 6), (2, 3, 11), steps_lf=4, sampler=name, null_label=2,
                              callback=lambda info, seen=seen: seen.append((info["stage"], info["i"])))
        assert a.shape == (2, 3, 6) and b.shape == (2, 3, 11)
        assert seen == [("lf", i) for i in (4, 3, 2, 1)] + [("hf", i) for i in (4, 3, 2, 1)]


def test_the_sampler_is_a_sampling_option_only():
    """Config takes its sampler choices from the registry (so a new sampler needs no config line),
    and choosing one moves no training fingerprint."""
    from tvq.config import _CHOICES
    from tvq.data import load_ucr
    from tvq.train import training_fingerprint

    assert "sampler" not in _CHOICES
    with pytest.raises(ConfigError, match="'sampler' must be one of ancestral, ddim, dpmpp_2m, dpmpp_2s"):
        load_config("smoke", {"sampler": "euler"})
    cfg = load_config("smoke", dataset="ECG200")
    ds = load_ucr("ECG200")
    assert all(training_fingerprint(cfg.replace(sampler=s), ds) == training_fingerprint(cfg, ds) for s in SAMPLERS)
    assert sampler_kwargs(cfg.replace(sampler="dpmpp_2m"), False)["sampler"] == "dpmpp_2m"


def test_sampler_options_from_config_and_validation():
    from tvq.sampling import SamplerOptions

    cfg = load_config("thesis-text", dataset="ECG200")
    unc, con = SamplerOptions.from_config(cfg, False), SamplerOptions.from_config(cfg, True)
    assert (unc.steps, unc.guidance, con.steps, con.guidance) == (128, 1.0, 32, 3.0)
    assert unc.replace(steps=None) == unc and unc.replace(steps=8).steps == 8
    for bad in (dict(steps=0), dict(steps=2.5), dict(guidance=float("nan")), dict(t_max=0.0), dict(rescale=2.0),
                dict(sampler="euler"), dict(rescale_mode="x"), dict(batch_size=0),
                dict(sampler="ddim", thesis_alpha=True)):
        with pytest.raises(ConfigError):
            unc.replace(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unc.steps = 3


def test_model_sample_takes_options_and_refuses_what_training_fixed(tmp_path):
    from tvq.sampling import SamplerOptions
    from tvq.train import train

    model = train(load_config("smoke", dataset="ECG200"), tmp_path / "run", progress=False)
    opts = SamplerOptions.from_config(model.cfg, False)
    a = model.sample(3, options=opts, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    c = model.sample(3, steps=opts.steps, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(ConfigError, match="unknown sampling option"):
        model.sample(3, stepz=4)
    with pytest.raises(ConfigError, match="trained model"):
        model.sample(3, parameterization="v")


def test_variance_noise_reproduces_the_thesis_codes_step():
    """noise_scale='variance': z_s = mean + σ²_{s|t} δ, as the thesis code writes it (and less noise than Eq. 28)."""
    shape = (3, 2, 5)
    z0 = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    seen = {}
    for scale in ("std", "variance"):
        sample_ancestral(lambda z_t, t, y, c: z0.expand_as(z_t), shape, steps=4, t_max=0.9, parameterization="x0",
                         generator=torch.Generator().manual_seed(7), noise_scale=scale,
                         callback=lambda info, k=scale: seen.setdefault((k, info["i"]), info["z"].clone()))
    g = torch.Generator().manual_seed(7)
    z_t, delta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    grid = time_grid(4, 0.9)
    mean, var = D.posterior(z_t.double(), z0.double(), grid[3], grid[4])
    torch.testing.assert_close(seen[("variance", 4)].double(), mean + var * delta.double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seen[("std", 4)].double(), mean + var.sqrt() * delta.double(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError):
        sample_latent(ToyModel(), shape, sampler="ddim", steps=2, noise_scale="variance")


def test_sample_noise_applies_to_the_ancestral_sampler_only():
    """A profile with sample_noise=variance still samples with DDIM or DPM-Solver++ (which draw no
    noise) when asked to; the ancestral sampler keeps the profile's setting."""
    from tvq.config import load_config
    from tvq.sampling import SamplerOptions

    cfg = load_config("smoke", {"sample_noise": "variance"})
    assert SamplerOptions.from_config(cfg, False).noise_scale == "variance"
    for sampler in ("ddim", "dpmpp_2m"):
        opts = SamplerOptions.from_config(cfg.replace(sampler=sampler), True)
        assert (opts.sampler, opts.noise_scale) == (sampler, "std")
    with pytest.raises(ConfigError):  # asked for explicitly, the mismatch is still an error
        SamplerOptions.from_config(cfg.replace(sampler="ddim"), False).replace(noise_scale="variance")


def test_guided_draws_take_their_own_noise_setting():
    """sample_noise_cond: 'same' follows sample_noise; std or variance set the guided draws alone.
    The thesis profile adds the code's noise to guided draws only."""
    from tvq.config import load_config
    from tvq.sampling import SamplerOptions

    for uncond, cond, want_u, want_c in (("std", "same", "std", "std"), ("variance", "same", "variance", "variance"),
                                         ("std", "variance", "std", "variance"), ("variance", "std", "variance", "std")):
        cfg = load_config("smoke", {"sample_noise": uncond, "sample_noise_cond": cond})
        assert SamplerOptions.from_config(cfg, False).noise_scale == want_u
        assert SamplerOptions.from_config(cfg, True).noise_scale == want_c
    thesis = load_config("thesis")
    assert (SamplerOptions.from_config(thesis, False).noise_scale,
            SamplerOptions.from_config(thesis, True).noise_scale) == ("variance", "variance")
    text = load_config("thesis-text")
    assert (SamplerOptions.from_config(text, False).noise_scale,
            SamplerOptions.from_config(text, True).noise_scale) == ("std", "variance")
    with pytest.raises(ConfigError):
        load_config("smoke", {"sample_noise_cond": "half"})


def test_unconditional_labels_routes():
    from tvq.sampling import unconditional_labels

    assert unconditional_labels("null", [3, 7], 10) is None
    labels = unconditional_labels("train_prior", [30, 70], 200, torch.Generator().manual_seed(0))
    assert labels.dtype == torch.long and labels.shape == (200,)
    assert torch.bincount(labels).tolist() == [60, 140]
    assert not torch.equal(labels, labels.sort().values)   # shuffled, not sorted by class
    with pytest.raises(ConfigError):
        unconditional_labels("uniform", [1, 1], 4)
    with pytest.raises(ConfigError):
        load_config("smoke", {"uncond_labels": "uniform"})
