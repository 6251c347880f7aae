"""Continuous-time variational diffusion (VDM) maths: thesis section 2.3 and appendices B-D.

Everything here is a small pure function on tensors; nothing holds state. Names follow the
thesis symbols and google-research/vdm: ``alpha_t``, ``sigma_t``, ``log_snr`` (λ_t),
``z0``, ``z_t``, ``z_s``, ``eps``, ``eps_hat``, ``v``.

Times ``t`` are tensors in [0, 1] of shape (B,) (or scalars); every schedule quantity is
returned with the shape of ``t``, and :func:`bcast` lifts it to broadcast against a latent
of shape (B, C, W).

Read top to bottom: schedule (Eq. 13-18) → posterior (Eq. 19-20, 23) → parameterisations
(Eq. 22, 24) → losses (Eq. 69-71, appendix D) → classifier-free guidance and rescaling
(Eq. 29-31).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from .equations import implements
from .errors import ConfigError

PARAMETERIZATIONS = ("eps", "v", "x0")
RESCALE_MODES = ("global", "per_sample", "lin")
WEIGHTINGS = ("simple", "vlb")

# The model is called as model_fn(z_t, t, class_labels, cond) -> prediction (same shape as z_t).
ModelFn = Callable[[Tensor, Tensor, Optional[Tensor], Optional[Tensor]], Tensor]


def bcast(x: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample quantity (B,) or a scalar so it broadcasts against ``like`` (B, ...)."""
    if x.dim() == 0:
        return x
    return x.reshape(x.shape[0], *([1] * (like.dim() - 1)))


def _as_time(t: Tensor | float, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t
    device = like.device if like is not None else None
    return torch.tensor(float(t), device=device)


# -- noise schedule (Eq. 13-18) -------------------------------------------------------------


@implements("18")
def alpha(t: Tensor) -> Tensor:
    """Signal amplitude α_t = cos(π t / 2) of the cosine schedule, Eq. (18).

    Evaluated as sin(π (1 − t) / 2), the same function, so that α_1 is exactly 0 and α_t is
    accurate near t = 1. A plain float32 cos(π/2) is −4.4e-8: a negative α_t at t = 1 flips
    the sign of the first sampling step (the thesis code's t_max = 1 failure, DESIGN.md).
    """
    return torch.sin((1.0 - t) * (math.pi / 2)).clamp_min(0.0)


@implements("18")
def sigma(t: Tensor) -> Tensor:
    """Noise amplitude σ_t = sin(π t / 2) of the cosine schedule, Eq. (18)."""
    return torch.sin(t * (math.pi / 2)).clamp_min(0.0)


@implements("16")
def snr(t: Tensor) -> Tensor:
    """Signal-to-noise ratio SNR(t) = α_t² / σ_t² for standardised z0, Eq. (16). Infinite at t = 0."""
    return alpha(t) ** 2 / sigma(t) ** 2


@implements("17")
def log_snr(t: Tensor) -> Tensor:
    """Log signal-to-noise ratio λ_t = log(α_t² / σ_t²), Eq. (17).

    Computed as 2 (log α_t − log σ_t) so it is +inf at t = 0 and −inf at t = 1, never NaN.
    """
    return 2.0 * (torch.log(alpha(t)) - torch.log(sigma(t)))


def neg_dlog_snr_dt(t: Tensor) -> Tensor:
    """−dλ/dt = π / (cos β_t sin β_t) with β_t = π t / 2 (appendix D). Infinite at t = 0 and 1."""
    return math.pi / (alpha(t) * sigma(t))


@implements("14")
def alpha_ts(t: Tensor, s: Tensor) -> Tensor:
    """Mean factor of q(z_t | z_s): α_{t|s} = α_t / α_s, Eq. (14), for 0 ≤ s < t ≤ 1."""
    return alpha(t) / alpha(s)


@implements("14")
def sigma2_ts(t: Tensor, s: Tensor) -> Tensor:
    """Variance of q(z_t | z_s): σ²_{t|s} = σ_t² − α²_{t|s} σ_s², Eq. (14)."""
    return sigma(t) ** 2 - alpha_ts(t, s) ** 2 * sigma(s) ** 2


@implements("13", "15")
def diffuse(z0: Tensor, t: Tensor | float, eps: Tensor) -> Tensor:
    """Forward process z_t = α_t z0 + σ_t ε, a draw from q(z_t | z0) of Eq. (13) via Eq. (15)."""
    t = _as_time(t, z0)
    return bcast(alpha(t), z0) * z0 + bcast(sigma(t), z0) * eps


# -- posterior q(z_s | z_t, z0) (Eq. 19-20, 23; appendix B) -----------------------------------


def _one_minus_snr_ratio(t: Tensor, s: Tensor) -> Tensor:
    """c = 1 − e^{λ_t − λ_s}, the share of the step's variance that is fresh noise.

    expm1 keeps it accurate for small steps; it is 1 when s = 0 or t = 1.
    """
    return -torch.expm1(log_snr(t) - log_snr(s))


def posterior_coefficients(s: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, var) with μ_{s|t,0} = a z_t + b z0 and σ²_{s|t,0} = var, from Eq. (20).

    a = e^{λ_t−λ_s} α_s/α_t is evaluated as α_t σ_s² / (α_s σ_t²): equal, but finite (zero)
    at t = 1 where α_t = 0. b = (1 − e^{λ_t−λ_s}) α_s, var = (1 − e^{λ_t−λ_s}) σ_s².
    """
    a_s, a_t, s_s, s_t = alpha(s), alpha(t), sigma(s), sigma(t)
    c = _one_minus_snr_ratio(t, s)
    return a_t * s_s**2 / (a_s * s_t**2), c * a_s, c * s_s**2


@implements("19", "20")
def posterior(z_t: Tensor, z0: Tensor, s: Tensor | float, t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(z_s | z_t, z0), Eq. (19)-(20), for 0 ≤ s < t ≤ 1.

    μ = e^{λ_t−λ_s} (α_s/α_t) z_t + (1 − e^{λ_t−λ_s}) α_s z0,   σ² = (1 − e^{λ_t−λ_s}) σ_s².
    The variance is returned per sample (shape of t), not broadcast.
    """
    s, t = _as_time(s, z_t), _as_time(t, z_t)
    a, b, var = posterior_coefficients(s, t)
    return bcast(a, z_t) * z_t + bcast(b, z_t) * z0, var


@implements("23")
def posterior_eps(z_t: Tensor, eps: Tensor, s: Tensor | float, t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Posterior mean and variance in ε form, Eq. (23): μ = (α_s/α_t)(z_t − (1 − e^{λ_t−λ_s}) σ_t ε).

    The thesis prints a plus sign in Eq. (23) and in Algorithm 3; substituting
    z0 = (z_t − σ_t ε)/α_t into Eq. (20) gives the minus sign used here (and in the thesis
    code). Undefined at t = 1 (α_t = 0): the sampler uses :func:`posterior` instead.
    """
    s, t = _as_time(s, z_t), _as_time(t, z_t)
    c = _one_minus_snr_ratio(t, s)
    mean = bcast(alpha(s) / alpha(t), z_t) * (z_t - bcast(c * sigma(t), z_t) * eps)
    return mean, c * sigma(s) ** 2


# -- parameterisations (Eq. 22, 24) -----------------------------------------------------------


@implements("22")
def eps_from_z0(z_t: Tensor, z0: Tensor, t: Tensor | float) -> Tensor:
    """ε = (z_t − α_t z0) / σ_t, Eq. (22). Where σ_t = 0 (t = 0) ε is not identifiable: 0 (its mean)."""
    t = _as_time(t, z_t)
    s_t = bcast(sigma(t), z_t)
    eps = (z_t - bcast(alpha(t), z_t) * z0) / s_t.clamp_min(torch.finfo(z_t.dtype).tiny)
    return torch.where(s_t > 0, eps, torch.zeros_like(eps))


@implements("22")
def z0_from_eps(z_t: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """z0 = (z_t − σ_t ε) / α_t, Eq. (22) solved for z0.

    Where α_t = 0 (t = 1) z_t carries no information about z0, so the best estimate is
    E[z0], which is 0 for the standardised latents of section 3.3.
    """
    t = _as_time(t, z_t)
    a_t = bcast(alpha(t), z_t)
    z0 = (z_t - bcast(sigma(t), z_t) * eps) / a_t.clamp_min(torch.finfo(z_t.dtype).tiny)
    return torch.where(a_t > 0, z0, torch.zeros_like(z0))


@implements("24")
def velocity(z0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """Diffusion velocity v_t = ∂z_t/∂β_t = α_t ε − σ_t z0, Eq. (24)."""
    t = _as_time(t, z0)
    return bcast(alpha(t), z0) * eps - bcast(sigma(t), z0) * z0


def z0_from_v(z_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """z0 = α_t z_t − σ_t v (rotate Eq. 15 and 24 back; α² + σ² = 1). Exact at t = 1."""
    t = _as_time(t, z_t)
    return bcast(alpha(t), z_t) * z_t - bcast(sigma(t), z_t) * v


def eps_from_v(z_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """ε = σ_t z_t + α_t v (the other half of the same rotation). Exact at t = 0."""
    t = _as_time(t, z_t)
    return bcast(sigma(t), z_t) * z_t + bcast(alpha(t), z_t) * v


def check_parameterization(parameterization: str) -> str:
    if parameterization not in PARAMETERIZATIONS:
        raise ConfigError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}, got {parameterization!r}")
    return parameterization


def predict_eps_z0(pred: Tensor, z_t: Tensor, t: Tensor | float, parameterization: str = "eps") -> tuple[Tensor, Tensor]:
    """Turn a model output in any parameterisation into (ε̂, ẑ0) via Eq. (22) and (24)."""
    parameterization = check_parameterization(parameterization)
    if parameterization == "eps":
        return pred, z0_from_eps(z_t, pred, t)
    if parameterization == "x0":
        return eps_from_z0(z_t, pred, t), pred
    return eps_from_v(z_t, pred, t), z0_from_v(z_t, pred, t)


def training_target(z0: Tensor, eps: Tensor, t: Tensor | float, parameterization: str = "eps") -> Tensor:
    """What the network regresses onto: ε (thesis), z0, or v = α_t ε − σ_t z0 (Eq. 24)."""
    parameterization = check_parameterization(parameterization)
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return z0
    return velocity(z0, eps, t)


# -- training loss (Eq. 69-71, appendix D) ------------------------------------------------------


def quasi_uniform_times(n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Quasi-uniform diffusion times t_i = (u + i/n) mod 1, u ~ U(0, 1), i = 0..n-1 (appendix D).

    One uniform draw shifts an even grid, so a batch covers [0, 1) with spacing 1/n: the
    low-variance estimator of the continuous-time loss used by Kingma et al. (2021).
    """
    if n < 1:
        raise ConfigError(f"need at least one diffusion time, got n={n}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((), generator=generator, device=gen_device, dtype=torch.float64)
    t = torch.remainder(u + torch.arange(n, device=gen_device, dtype=torch.float64) / n, 1.0)
    return t.to(device=device if device is not None else gen_device, dtype=torch.float32)


def drop_class_labels(class_labels: Tensor, p_uncond: float, null_label: int,
                      generator: torch.Generator | None = None) -> Tensor:
    """Replace each label by the null class with probability p_uncond (Algorithm 2, c ← Ø)."""
    if not 0.0 <= p_uncond < 1.0:
        raise ConfigError(f"p_uncond must lie in [0, 1), got {p_uncond}")
    if p_uncond == 0.0:
        return class_labels
    gen_device = generator.device if generator is not None else class_labels.device
    keep = torch.rand(class_labels.shape, generator=generator, device=gen_device) >= p_uncond
    return torch.where(keep.to(class_labels.device), class_labels, torch.full_like(class_labels, null_label))


@implements("71")
def vlb_weight(t: Tensor) -> Tensor:
    """Weight −½ dλ/dt = π / (2 cos β_t sin β_t) of the continuous VDM loss in ε form, Eq. (71)."""
    return 0.5 * neg_dlog_snr_dt(t)


@implements("69", "70")
def z0_loss_weight(t: Tensor) -> Tensor:
    """Weight −½ d(e^{λ_t})/dt = π α_t / (2 σ_t³) of the loss in z0 form, Eq. (69)-(70).

    e^{λ_t} = cot² β_t, so d e^{λ}/dt = −π cot β_t / sin² β_t. Multiplying by
    ‖ε − ε̂‖² / ‖z0 − ẑ0‖² = e^{λ_t} recovers the ε-form weight of Eq. (71).
    """
    return 0.5 * math.pi * alpha(t) / sigma(t) ** 3


def diffusion_loss(
    model_fn: ModelFn,
    z0: Tensor,
    *,
    class_labels: Tensor | None = None,
    cond: Tensor | None = None,
    parameterization: str = "eps",
    weighting: str = "simple",
    p_uncond: float = 0.0,
    null_label: int | None = None,
    t: Tensor | None = None,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_clamp: float = 1e-5,
) -> dict[str, Tensor]:
    """One Monte-Carlo estimate of the stage-2 loss for a batch z0 (Algorithm 2, appendix D).

    Draws quasi-uniform times and ε unless given, diffuses (Eq. 15), drops class labels to
    the null class with probability ``p_uncond``, and calls ``model_fn(z_t, t, labels, cond)``.

    Returned terms (all scalars except ``t``):
      ``loss``  — what to minimise: ``simple`` = mean squared error against the target of the
                  parameterisation (ε for the thesis; appendix D drops the weight −dλ/dt),
                  ``vlb`` = the weighted continuous-time loss of Eq. (71);
      ``mse``   — the unweighted MSE against the target (equal to ``loss`` for ``simple``);
      ``mse_eps`` — MSE of ε̂ against ε, comparable across parameterisations;
      ``vlb``   — Eq. (71): mean over the batch of −½ λ'(t) ‖ε − ε̂‖²₂ (sum over latent
                  entries), with t clamped to [t_clamp, 1 − t_clamp] where the weight is infinite;
      ``t``     — the diffusion times used.
    """
    check_parameterization(parameterization)
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if z0.dim() < 2:
        raise ConfigError(f"z0 must have a batch dimension, got shape {tuple(z0.shape)}")
    b = z0.shape[0]
    if t is None:
        t = quasi_uniform_times(b, generator, device=z0.device)
    if eps is None:
        gen_device = generator.device if generator is not None else z0.device
        eps = torch.randn(z0.shape, generator=generator, device=gen_device, dtype=z0.dtype).to(z0.device)
    if class_labels is not None and p_uncond > 0.0:
        if null_label is None:
            raise ConfigError("p_uncond > 0 needs null_label (the index of the unconditional class, C)")
        class_labels = drop_class_labels(class_labels, p_uncond, null_label, generator)

    z_t = diffuse(z0, t, eps)
    pred = model_fn(z_t, t, class_labels, cond)
    if pred.shape != z0.shape:
        raise ConfigError(f"model output shape {tuple(pred.shape)} differs from the latent shape {tuple(z0.shape)}")
    target = training_target(z0, eps, t, parameterization)
    mse = torch.mean((pred.float() - target) ** 2)

    eps_hat, _ = predict_eps_z0(pred.float(), z_t, t, parameterization)
    sq_err = ((eps - eps_hat) ** 2).flatten(1).sum(dim=1)
    w = vlb_weight(t.clamp(t_clamp, 1.0 - t_clamp))
    vlb = torch.mean(w * sq_err)
    mse_eps = sq_err.mean() / z0[0].numel()
    loss = mse if weighting == "simple" else vlb
    return {"loss": loss, "mse": mse, "mse_eps": mse_eps, "vlb": vlb, "t": t}


# -- classifier-free guidance and rescaling (Eq. 29-31) ----------------------------------------


@implements("29")
def classifier_free_guidance(pred_uncond: Tensor, pred_cond: Tensor, w: float) -> Tensor:
    """Guided prediction (1 − w) f(z_t, Ø) + w f(z_t, y), Eq. (29). w = 0: unconditional; w = 1: conditional.

    The thesis mixes ε̂; because ε, z0 and v are affine in each other with coefficients that
    depend only on (z_t, t), mixing the raw prediction of any parameterisation is the same.
    """
    return torch.lerp(pred_uncond, pred_cond, w) if w != 1.0 else pred_cond


def _std(x: Tensor, per_sample: bool) -> Tensor:
    if per_sample:
        return x.flatten(1).std(dim=1).reshape(x.shape[0], *([1] * (x.dim() - 1)))
    return x.std()


@implements("30", "31")
def rescale_latent(z: Tensor, gamma: float, mode: str = "global", eps: float = 1e-12) -> Tensor:
    """Rescaled latent (1 − γ) z + γ z / std(z), Eq. (30)-(31) and the last line of Algorithm 3.

    ``mode="global"``: one standard deviation over the whole batch tensor, as the thesis code
    does (the text leaves the std unspecified). A batch then shares one factor, so samples
    keep their relative amplitudes, but a few diverging samples shrink everyone.
    ``mode="per_sample"``: each sample's latent is divided by its own std (over channels and
    width), the per-sample statistic of Lin et al. (2023) with the thesis's unit target.
    γ = 0 is the identity; γ = 1 gives unit standard deviation (of the batch or of each sample).
    """
    if mode not in ("global", "per_sample"):
        raise ConfigError(f"rescale mode for the latent must be global or per_sample, got {mode!r}")
    if gamma == 0.0:
        return z
    std = _std(z, per_sample=(mode == "per_sample")).clamp_min(eps)
    return torch.lerp(z, z / std, gamma)


def rescale_guidance_lin(pred_cfg: Tensor, pred_cond: Tensor, phi: float, eps: float = 1e-12) -> Tensor:
    """Lin et al. (2023), Algorithm 2: rescale the guided prediction to the per-sample std of the conditional one.

    x_rescaled = x_cfg · std(x_cond) / std(x_cfg);   x_final = φ x_rescaled + (1 − φ) x_cfg.
    Not the thesis's method (which targets unit std of z_s): offered for comparison as
    ``rescale_mode="lin"`` in the sampler.
    """
    if phi == 0.0:
        return pred_cfg
    ratio = _std(pred_cond, True) / _std(pred_cfg, True).clamp_min(eps)
    return torch.lerp(pred_cfg, pred_cfg * ratio, phi)
