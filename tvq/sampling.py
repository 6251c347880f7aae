"""Samplers for the latent diffusion priors: Algorithm 3 (ancestral sampling with guidance and
rescaling) and the LF → HF cascade of Algorithm 4 (up to the scaled latents).

In the style of k-diffusion: each sampler is one function of a model callable
``model_fn(z_t, t, class_labels, cond) -> prediction`` (a :class:`tvq.unet.UNet1D` is one),
a shape and keyword options, with an optional ``callback(info)`` called after every step.

Decoding (un-scaling, quantising, stage-1 decoders, ISTFT) is not here: the cascade returns
the two sampled latents z0_LF, z0_HF in the scaled space the priors were trained in.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .diffusion import (RESCALE_MODES, ModelFn, alpha, check_parameterization, classifier_free_guidance,
                        posterior_coefficients, predict_eps_z0, rescale_guidance_lin, rescale_latent, sigma)
from .equations import implements
from .errors import ConfigError

Callback = Callable[[dict[str, Any]], None]


# -- time grid and per-step coefficients -------------------------------------------------------


def time_grid(steps: int, t_max: float = 0.99) -> Tensor:
    """Times τ_i = t_max · i / T for i = 0..T (float64, increasing); the sampler walks it from i = T down to 0.

    The thesis discretises [0, 1] as τ_i = i / T (section 2.3.5) and "halts the diffusion" at
    t_max (section 4.1, Table 3): sampling starts from pure noise z ~ N(0, I) treated as
    z_{t_max} and takes T equal steps to 0. With t_max < 1 the start is a small
    approximation (at 0.99, SNR = 2.5e-4); with t_max = 1 the first step's z0 estimate has
    to come from z_1, which carries no information about z0 (see :func:`step_coefficients`).
    """
    try:
        steps = operator.index(steps)
    except TypeError:
        steps = 0
    if steps < 1:
        raise ConfigError("the number of sampling steps must be a positive integer")
    if not 0.0 < t_max <= 1.0:
        raise ConfigError(f"t_max must lie in (0, 1], got {t_max}")
    return torch.arange(steps + 1, dtype=torch.float64) * (t_max / steps)


def _thesis_alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """α_t, σ_t as the thesis code computes them: float32 cos/sin, unclamped (cos(π/2) = −4.4e-8)."""
    beta = t.float() * (math.pi / 2)
    return torch.cos(beta).double(), torch.sin(beta).double()


def step_coefficients(s: Tensor, t: Tensor, parameterization: str = "eps",
                      thesis_alpha: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, std) with z_s = a z_t + b f_θ(z_t) + std δ: one ancestral step, Eq. (20) + (28),
    with ẑ0 written in terms of the model output f_θ by Eq. (22) (ε), (24) (v) or directly (z0).

    Fusing the conversion into two scalars per step lets the sampler update z in place.
    For ε-prediction this is exactly Eq. (23) / Algorithm 3:
    a = α_s/α_t, b = −(1 − e^{λ_t−λ_s}) σ_t α_s/α_t.
    At α_t = 0 (t = 1) ẑ0 cannot be read off ε̂; its Bayes-optimal value E[z0] is 0 for
    the standardised latents (section 3.3), so the step becomes z_s = σ_s δ — finite and exact.
    v- and z0-prediction need no such case.

    ``thesis_alpha=True`` reproduces the thesis code's float32 α(1) = −4.4e-8 (a ≈ −2.8e5 at
    t = 1 for T = 128): only for reproducing Table 3's t_max = 1.0 row.
    """
    check_parameterization(parameterization)
    s, t = s.double(), t.double()
    if thesis_alpha:
        a_s, s_s = _thesis_alpha_sigma(s)
        a_t, s_t = _thesis_alpha_sigma(t)
        c = 1.0 - (a_t * s_s / (a_s * s_t)) ** 2        # 1 − e^{λ_t−λ_s}, as the thesis code writes it
        coef_zt, coef_z0, var = a_t * s_s**2 / (a_s * s_t**2), c * a_s, c * s_s**2
    else:
        a_t, s_t = alpha(t), sigma(t)
        coef_zt, coef_z0, var = posterior_coefficients(s, t)
    if parameterization == "x0":
        a, b = coef_zt, coef_z0
    elif parameterization == "v":                       # ẑ0 = α_t z_t − σ_t v
        a, b = coef_zt + coef_z0 * a_t, -coef_z0 * s_t
    else:                                               # ẑ0 = (z_t − σ_t ε̂) / α_t, or 0 at α_t = 0
        safe = a_t != 0
        inv = torch.where(safe, 1.0 / torch.where(safe, a_t, torch.ones_like(a_t)), torch.zeros_like(a_t))
        a, b = coef_zt + coef_z0 * inv, -coef_z0 * s_t * inv
    return a, b, var.clamp_min(0.0).sqrt()


# -- helpers -------------------------------------------------------------------------------------


def _infer_device(model_fn: ModelFn, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    params = getattr(model_fn, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


class _Noise:
    """Draws N(0, I) into a reused buffer from ``generator`` (on its own device, copied over if needed)."""

    def __init__(self, shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None):
        self.generator = generator
        gen_device = generator.device if generator is not None else device
        self.out = torch.empty(shape, device=device)
        self.host = None if gen_device == device else torch.empty(shape, device=gen_device)

    def draw(self) -> Tensor:
        if self.host is None:
            return torch.randn(self.out.shape, generator=self.generator, out=self.out)
        torch.randn(self.host.shape, generator=self.generator, out=self.host)
        return self.out.copy_(self.host)


def _check_labels(class_labels: Tensor | None, batch: int, null_label: int | None, device: torch.device) -> Tensor | None:
    if class_labels is None:
        return None
    class_labels = torch.as_tensor(class_labels)
    if class_labels.dtype.is_floating_point or class_labels.shape != (batch,):
        raise ConfigError(f"class_labels must be an integer tensor of shape ({batch},), got "
                          f"{class_labels.dtype} {tuple(class_labels.shape)}")
    if batch and (int(class_labels.min()) < 0 or (null_label is not None and int(class_labels.max()) > null_label)):
        raise ConfigError(f"class labels must lie in 0..{null_label} (the last one is unconditional)")
    return class_labels.to(device=device, dtype=torch.long)


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# -- the denoiser: guidance and the parameterisation, written once ------------------------------


class Denoiser:
    """f̂(z_t, t), the model's guided prediction, and its reading as (ε̂, ẑ0): every sampler's one view of the network.

    Classifier-free guidance (Eq. 29) runs the conditional and the unconditional halves as ONE
    batch of 2B and mixes them; with ``rescale_mode="lin"`` the mix is rescaled to the
    conditional prediction's per-sample std (Lin et al. 2023). Without labels, or with w = 0
    or w = 1, a single forward is made. :meth:`eps_z0` converts a prediction of any
    parameterisation (ε, v, x0) to (ε̂, ẑ0) by Eq. (22)/(24); at α_t = 0 (t = 1) an ε-model's
    ẑ0 is taken as E[z0] = 0, the standardised latents' mean (see :func:`step_coefficients`).

    Call it inside the sampler's ``torch.inference_mode()`` (and autocast) context.
    """

    def __init__(self, model_fn: ModelFn, shape: tuple[int, ...], *, parameterization: str = "eps",
                 guidance: float = 1.0, rescale: float = 0.0, rescale_mode: str = "global",
                 class_labels: Tensor | None = None, cond: Tensor | None = None,
                 null_label: int | None = None, device: torch.device | str | None = None):
        check_parameterization(parameterization)
        if guidance < 0 or not math.isfinite(guidance):
            raise ConfigError(f"guidance weight must be a finite number >= 0, got {guidance}")
        self.model_fn, self.parameterization, self.guidance = model_fn, parameterization, guidance
        self.lin = rescale if rescale_mode == "lin" else 0.0
        self.device = device = _infer_device(model_fn, device)
        b = self.batch = shape[0]
        null_label = null_label if null_label is not None else getattr(model_fn, "null_label", None)
        class_labels = _check_labels(class_labels, b, null_label, device)
        if cond is not None:
            cond = cond.to(device=device, dtype=torch.float32)
        # Which forwards are needed: a single one unless guidance really mixes two predictions.
        self.guided = class_labels is not None and guidance not in (0.0, 1.0)
        if class_labels is not None and guidance == 0.0:
            class_labels = None                       # w = 0: unconditional only
        if self.guided:
            if null_label is None:
                raise ConfigError("classifier-free guidance needs null_label (the unconditional class index C)")
            self.labels_in = torch.cat((class_labels, torch.full_like(class_labels, null_label)))
            self.cond_in = torch.cat((cond, cond)) if cond is not None else None
            self.z_in = torch.empty((2 * b, *shape[1:]), device=device)
        else:
            self.labels_in, self.cond_in, self.z_in = class_labels, cond, None
        # One time for the whole batch, as a broadcast view: the U-Net then embeds it once per class.
        self.t_now = torch.empty((), device=device)
        self.t_in = self.t_now.expand(2 * b if self.guided else b)

    def prediction(self, z: Tensor, t: float) -> Tensor:
        """f̂(z, t): the guided model output in the model's own parameterisation."""
        self.t_now.fill_(t)
        if not self.guided:
            return self.model_fn(z, self.t_in, self.labels_in, self.cond_in).float()
        b = self.batch
        self.z_in[:b].copy_(z)
        self.z_in[b:].copy_(z)
        out = self.model_fn(self.z_in, self.t_in, self.labels_in, self.cond_in).float()
        pred_cond, pred_uncond = out[:b], out[b:]
        pred = classifier_free_guidance(pred_uncond, pred_cond, self.guidance)
        return rescale_guidance_lin(pred, pred_cond, self.lin) if self.lin else pred

    def eps_z0(self, pred: Tensor, z: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """(ε̂, ẑ0) from a prediction at time ``t``, by :func:`tvq.diffusion.predict_eps_z0` (Eq. 22, 24)."""
        if t >= 1.0 and self.parameterization == "eps":   # α_1 = 0: ẑ0 = E[z0] = 0 (standardised latents)
            return pred, torch.zeros_like(z)
        return predict_eps_z0(pred, z, float(t), self.parameterization)

    def __call__(self, z: Tensor, t: float) -> tuple[Tensor, Tensor]:
        return self.eps_z0(self.prediction(z, t), z, t)


# -- Algorithm 3 ---------------------------------------------------------------------------------


@implements("21", "27", "28")
def sample_ancestral(
    model_fn: ModelFn,
    shape: tuple[int, ...],
    *,
    steps: int,
    t_max: float = 0.99,
    guidance: float = 1.0,
    rescale: float = 0.0,
    rescale_mode: str = "global",
    class_labels: Tensor | None = None,
    cond: Tensor | None = None,
    parameterization: str = "eps",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    null_label: int | None = None,
    device: torch.device | str | None = None,
    bf16: bool = False,
    thesis_alpha: bool = False,
    noise_scale: str = "std",
) -> Tensor:
    """Ancestral sampling from one latent diffusion prior, Algorithm 3 (Eq. 27-31).

    Starts from z ~ N(0, I) at t = t_max and walks the grid of :func:`time_grid` down to 0.
    Each step i (t = τ_i, s = τ_{i−1}):
      1. f̂ = (1 − w) f_θ(z, t, Ø, z_in) + w f_θ(z, t, y, z_in)  — classifier-free guidance, Eq. (29);
         the conditional and unconditional halves go through the network as ONE batch of 2B;
      2. z ← μ_{s|t}(z, ẑ0(f̂)) + σ_{s|t} δ, δ ~ N(0, I)        — Eq. (20)/(23) and (28);
      3. z ← (1 − γ) z + γ z / std(z)                             — rescaling, Eq. (30)-(31).

    Args:
        model_fn: f_θ, called as model_fn(z_t, t, labels (B,) or None, cond or None), where t
            is (B,) — a broadcast view of the step's single time (the U-Net uses this to
            embed it once).
        shape: (B, C, W) of the latents.
        steps: T. t_max: start time (thesis Table 3: 0.99; 1.0 is handled exactly, see
            :func:`step_coefficients`).
        guidance: w. With class_labels None the sampler is unconditional (null class, one
            forward); w = 1 is plain conditional sampling (one forward); w = 0 unconditional.
        rescale: γ ∈ [0, 1]; rescale_mode: ``global`` (one std over the batch tensor, the
            thesis code), ``per_sample`` (each sample's own std), or ``lin`` (Lin et al. 2023:
            the guided prediction rescaled per sample to the conditional prediction's std,
            a different method kept for comparison; identity without guidance).
        class_labels: (B,) ints in 0..C−1 (C = null_label allowed: unconditional rows).
        cond: input condition z_in (HF prior: the sampled z0_LF), passed to every call.
        parameterization: what the model predicts: eps (thesis), v or x0.
        generator: torch.Generator for z_T and every δ; same seed → identical samples.
        callback: called after every step with {"i", "t", "s", "z", "pred"} (live tensors:
            clone what you keep).
        null_label: index of the unconditional class; default ``model_fn.null_label``.
        device: where to sample; default the model's device.
        bf16: run the network under bfloat16 autocast (the sampler's arithmetic stays float32).
        thesis_alpha: reproduce the thesis code's float32 α(1) < 0 (see :func:`step_coefficients`).
        noise_scale: ``std`` adds σ_{s|t,0} δ (Eq. 28); ``variance`` adds σ²_{s|t,0} δ, as the thesis
            code's older versions do (``model_mean + model_variance * delta``; its newest
            ``diffusion_model/vdm.py`` adds σ δ): less noise than the posterior has, at every step.

    Returns:
        z0 (B, C, W), float32, in the scaled latent space of the prior.
    """
    _check_sampler_args(rescale, rescale_mode, guidance, shape)
    denoiser = Denoiser(model_fn, tuple(shape), parameterization=parameterization, guidance=guidance,
                        rescale=rescale, rescale_mode=rescale_mode, class_labels=class_labels, cond=cond,
                        null_label=null_label, device=device)
    grid = time_grid(steps, t_max)
    a, bb, std = (x.tolist() for x in step_coefficients(grid[:-1], grid[1:], parameterization, thesis_alpha))
    if noise_scale == "variance":
        std = [v * v for v in std]
    elif noise_scale != "std":
        raise ConfigError(f"noise_scale must be std or variance, got {noise_scale!r}")
    times = grid.tolist()
    noise = _Noise(tuple(shape), denoiser.device, generator)
    z = noise.draw().clone()                      # z_{t_max} ~ N(0, I)

    with torch.inference_mode(), _autocast(denoiser.device, bf16):
        for i in range(steps, 0, -1):
            pred = denoiser.prediction(z, times[i])
            # z_s = a z_t + b f̂ + std δ (in place: z is ours)
            z.mul_(a[i - 1]).add_(pred, alpha=bb[i - 1])
            if std[i - 1] > 0:
                z.add_(noise.draw(), alpha=std[i - 1])
            if rescale_mode != "lin":
                z = rescale_latent(z, rescale, rescale_mode)
            if callback is not None:
                callback({"i": i, "t": times[i], "s": times[i - 1], "z": z, "pred": pred})
    return z.clone()                              # a normal tensor, usable outside inference mode


def _check_sampler_args(rescale: float, rescale_mode: str, guidance: float, shape: tuple[int, ...]) -> None:
    if rescale_mode not in RESCALE_MODES:
        raise ConfigError(f"rescale_mode must be one of {', '.join(RESCALE_MODES)}, got {rescale_mode!r}")
    if not 0.0 <= rescale <= 1.0:
        raise ConfigError(f"rescale gamma must lie in [0, 1], got {rescale}")
    if guidance < 0:
        raise ConfigError(f"guidance weight must be >= 0, got {guidance}")
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"latent shape must be (B, C, W) with positive sizes, got {tuple(shape)}")


# -- deterministic samplers (the probability-flow ODE) ----------------------------------------------
#
# Same signature for each: (denoiser, z at times[-1], times increasing from 0 to t_max) -> z at 0.
# ``rescale`` applies the thesis's Eq. (30)-(31) to the state after every step, as Algorithm 3
# does, so that the samplers differ only in how they integrate. Their coefficients are computed
# in float64 from the cosine schedule α_t = cos(πt/2), σ_t = sin(πt/2).


def _alpha_sigma(t: float) -> tuple[float, float]:
    return (0.0, 1.0) if t >= 1.0 else (math.cos(math.pi / 2 * t), math.sin(math.pi / 2 * t))


def sample_ddim(denoiser: Denoiser, z: Tensor, times: list[float], *, rescale: float = 0.0,
                rescale_mode: str = "global", callback: Callback | None = None) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, η = 0): z_s = α_s ẑ0 + σ_s ε̂, the first-order solver of the
    probability-flow ODE; one network evaluation per step."""
    for i in range(len(times) - 1, 0, -1):
        t, s = times[i], times[i - 1]
        eps, z0 = denoiser(z, t)
        a_s, s_s = _alpha_sigma(s)
        z = a_s * z0 + s_s * eps if s > 0 else z0
        if rescale_mode != "lin":
            z = rescale_latent(z, rescale, rescale_mode)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "z": z, "pred": z0})
    return z


def sample_dpmpp_2m(denoiser: Denoiser, z: Tensor, times: list[float], *, rescale: float = 0.0,
                    rescale_mode: str = "global", callback: Callback | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the
    probability-flow ODE in data prediction, stepping in λ = log(α/σ) (half the log-SNR).

    With h = λ_s − λ_t and D the ẑ0 estimate,
        z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) D,
    where D is the current ẑ0 on the first step and, after it, the extrapolation
    (1 + 1/(2r)) ẑ0 − 1/(2r) ẑ0_prev with r = h_prev / h. The last step, to s = 0 (σ_s = 0,
    λ_s = ∞), returns the final ẑ0. One network evaluation per step.
    """
    z0_prev, h_prev = None, None
    for i in range(len(times) - 1, 0, -1):
        t, s = times[i], times[i - 1]
        _, z0 = denoiser(z, t)
        if s <= 0:
            z = z0
        else:
            a_t, s_t = _alpha_sigma(t)
            a_s, s_s = _alpha_sigma(s)
            lam_t = math.log(a_t / s_t) if a_t > 0 else -math.inf
            lam_s = math.log(a_s / s_s)
            h = lam_s - lam_t
            if z0_prev is None or not math.isfinite(h) or not math.isfinite(h_prev):
                d = z0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * z0 - (1 / (2 * r)) * z0_prev
            z = (s_s / s_t) * z - a_s * (math.expm1(-h) if math.isfinite(h) else -1.0) * d
            z0_prev, h_prev = z0, h
        if rescale_mode != "lin":
            z = rescale_latent(z, rescale, rescale_mode)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "z": z, "pred": z0})
    return z


def sample_dpmpp_2s(denoiser: Denoiser, z: Tensor, times: list[float], *, rescale: float = 0.0,
                    rescale_mode: str = "global", callback: Callback | None = None) -> Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1 with r = 1/2): a second-order singlestep solver
    of the probability-flow ODE in data prediction, in λ = log(α/σ).

    Each step evaluates the network twice, at t and at the midpoint λ_m = λ_t + h/2 (h = λ_s − λ_t,
    t_m = (2/π) arctan e^{−λ_m} for the cosine schedule), so T steps cost 2T evaluations:
        u   = (σ_m/σ_t) z_t − α_m (e^{−h/2} − 1) ẑ0(z_t, t),
        z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) ẑ0(u, t_m).
    A step that starts at α_t = 0 (t = 1) or ends at s = 0 has no finite λ on one side and is
    taken to first order (z_s = α_s ẑ0 + σ_s ε̂, the DDIM step; ẑ0 at s = 0).
    """
    for i in range(len(times) - 1, 0, -1):
        t, s = times[i], times[i - 1]
        eps, z0 = denoiser(z, t)
        a_t, s_t = _alpha_sigma(t)
        a_s, s_s = _alpha_sigma(s)
        if s <= 0 or a_t <= 0:
            z = a_s * z0 + s_s * eps if s > 0 else z0
        else:
            lam_t, lam_s = math.log(a_t / s_t), math.log(a_s / s_s)
            h = lam_s - lam_t
            t_m = 2 / math.pi * math.atan(math.exp(-(lam_t + h / 2)))
            a_m, s_m = _alpha_sigma(t_m)
            u = (s_m / s_t) * z - a_m * math.expm1(-h / 2) * z0
            _, z0_m = denoiser(u, t_m)
            z = (s_s / s_t) * z - a_s * math.expm1(-h) * z0_m
            z0 = z0_m
        if rescale_mode != "lin":
            z = rescale_latent(z, rescale, rescale_mode)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "z": z, "pred": z0})
    return z


ODE_SAMPLERS: dict[str, Callable[..., Tensor]] = {"ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m,
                                                  "dpmpp_2s": sample_dpmpp_2s}
SAMPLERS = ("ancestral", *ODE_SAMPLERS)     # the registry: a new sampler is a function above and one entry here


def sample_latent(model_fn: ModelFn, shape: tuple[int, ...], *, sampler: str = "ancestral", steps: int,
                  t_max: float = 0.99, guidance: float = 1.0, rescale: float = 0.0, rescale_mode: str = "global",
                  class_labels: Tensor | None = None, cond: Tensor | None = None, parameterization: str = "eps",
                  generator: torch.Generator | None = None, callback: Callback | None = None,
                  null_label: int | None = None, device: torch.device | str | None = None, bf16: bool = False,
                  thesis_alpha: bool = False, noise_scale: str = "std") -> Tensor:
    """One latent prior's sample with the named sampler: ``ancestral`` (Algorithm 3,
    :func:`sample_ancestral`) or a deterministic one of :data:`ODE_SAMPLERS`, all from
    z ~ N(0, I) at t_max over the same time grid."""
    if sampler == "ancestral":
        return sample_ancestral(model_fn, shape, steps=steps, t_max=t_max, guidance=guidance, rescale=rescale,
                                rescale_mode=rescale_mode, class_labels=class_labels, cond=cond,
                                parameterization=parameterization, generator=generator, callback=callback,
                                null_label=null_label, device=device, bf16=bf16, thesis_alpha=thesis_alpha,
                                noise_scale=noise_scale)
    if sampler not in ODE_SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if thesis_alpha or noise_scale != "std":
        raise ConfigError("thesis_alpha and noise_scale reproduce quirks of the thesis code's ancestral sampler only")
    _check_sampler_args(rescale, rescale_mode, guidance, shape)
    denoiser = Denoiser(model_fn, tuple(shape), parameterization=parameterization, guidance=guidance,
                        rescale=rescale, rescale_mode=rescale_mode, class_labels=class_labels, cond=cond,
                        null_label=null_label, device=device)
    times = time_grid(steps, t_max).tolist()
    z = _Noise(tuple(shape), denoiser.device, generator).draw().clone()
    with torch.inference_mode(), _autocast(denoiser.device, bf16):
        z = ODE_SAMPLERS[sampler](denoiser, z, times, rescale=rescale, rescale_mode=rescale_mode, callback=callback)
    return z.clone()


# -- Algorithm 4, latent part --------------------------------------------------------------------


def sample_cascade(
    lf_model_fn: ModelFn,
    hf_model_fn: ModelFn,
    lf_shape: tuple[int, ...],
    hf_shape: tuple[int, ...],
    *,
    steps_lf: int,
    steps_hf: int | None = None,
    lf_conditioning: bool = True,
    callback: Callback | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Cascaded sampling, the latent half of Algorithm 4: z0_LF ~ p(z_LF | y), then
    z0_HF ~ p(z_HF | z0_LF, y), each by :func:`sample_ancestral`.

    The HF prior gets the sampled (scaled) z0_LF as its input condition z_in — the same
    scaled latent it saw in training (Algorithm 2) — unless ``lf_conditioning`` is False
    (ablation). Shared keywords (guidance, rescale, rescale_mode, class_labels, t_max,
    parameterization, generator, bf16, ...) go to both samplers; the callback's info dict
    gains ``"stage": "lf" | "hf"``.

    Returns (z0_LF, z0_HF), scaled latents; un-scaling and decoding belong to stage 1.
    """
    if lf_shape[0] != hf_shape[0]:
        raise ConfigError(f"LF and HF batch sizes differ: {lf_shape[0]} vs {hf_shape[0]}")
    for bad in ("cond", "steps", "shape"):
        if bad in kwargs:
            raise ConfigError(f"sample_cascade sets {bad!r} itself; use steps_lf / steps_hf / lf_conditioning")

    def tagged(stage: str) -> Callback | None:
        if callback is None:
            return None
        return lambda info: callback({**info, "stage": stage})

    z0_lf = sample_latent(lf_model_fn, lf_shape, steps=steps_lf, callback=tagged("lf"), **kwargs)
    z0_hf = sample_latent(hf_model_fn, hf_shape, steps=steps_hf or steps_lf,
                          cond=z0_lf if lf_conditioning else None, callback=tagged("hf"), **kwargs)
    return z0_lf, z0_hf


# -- class labels and configuration ------------------------------------------------------------


def class_counts_by_proportion(y_train: Tensor | np.ndarray, n: int, n_classes: int | None = None) -> np.ndarray:
    """How many of n samples each class gets, in the training proportions (largest remainders).

    Thesis section 3.6: a 100 : 300 training set gives 256 : 768 of 1024 samples.
    """
    y = np.asarray(y_train.cpu() if isinstance(y_train, Tensor) else y_train).reshape(-1)
    if y.size == 0 or n < 0:
        raise ConfigError("class proportions need a non-empty label set and n >= 0")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ConfigError("training labels must be integers in 0..C-1")
    counts = np.bincount(y, minlength=n_classes or 0).astype(np.float64)
    exact = counts / counts.sum() * n
    out = np.floor(exact).astype(np.int64)
    short = n - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")      # ties: smaller class index first
    out[order[:short]] += 1
    return out


def class_labels_by_proportion(y_train: Tensor | np.ndarray, n: int, generator: torch.Generator | None = None,
                               n_classes: int | None = None) -> Tensor:
    """n class labels (int64, shuffled with ``generator``) in the training proportions, for conditional sampling."""
    counts = class_counts_by_proportion(y_train, n, n_classes)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))
    return labels[torch.randperm(n, generator=generator)]


def unconditional_labels(route: str, class_counts, n: int, generator: torch.Generator | None = None) -> Tensor | None:
    """The labels an unconditional draw of ``n`` series carries: ``None`` for the null class
    (``route="null"``, the thesis's protocol), or for ``route="train_prior"`` ``n`` labels in the
    training proportions ``class_counts`` (shuffled), to be drawn with the conditional branch alone
    (w = 1): a draw from p(y) p(x | y) instead of the null-class branch's p(x)."""
    if route == "null":
        return None
    if route != "train_prior":
        raise ConfigError(f"uncond_labels must be null or train_prior, got {route!r}")
    counts = torch.as_tensor(class_counts)
    return class_labels_by_proportion(torch.repeat_interleave(torch.arange(len(counts)), counts), n, generator)


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """Everything that decides how one set of series is drawn, validated once.

    Built from a :class:`tvq.config.Config` for the unconditional or the conditional setting of
    the protocol (:meth:`from_config`), changed with :meth:`replace` (validated again), and
    passed whole to :meth:`tvq.model.TimeVQVDM.sample` and the cascade: the one route by which
    sampling options reach a sampler.
    """

    sampler: str = "ancestral"
    steps: int = 128
    t_max: float = 0.99
    guidance: float = 1.0            # w; ignored without class labels
    rescale: float = 0.1             # gamma
    rescale_mode: str = "global"
    parameterization: str = "eps"    # what the network predicts: a property of the trained model
    lf_conditioning: bool = True     # likewise
    bf16: bool = False
    batch_size: int = 1024
    thesis_alpha: bool = False       # the thesis code's float32 alpha(1) < 0 (ancestral only)
    noise_scale: str = "std"         # std (Eq. 28) | variance (older thesis code's sigma^2 delta; ancestral only)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"the number of sampling steps must be a positive integer, got {self.steps!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"sampling batch size must be a positive integer, got {self.batch_size!r}")
        for name in ("t_max", "guidance", "rescale"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not 0.0 < self.t_max <= 1.0:
            raise ConfigError(f"t_max must lie in (0, 1], got {self.t_max}")
        check_parameterization(self.parameterization)
        _check_sampler_args(self.rescale, self.rescale_mode, self.guidance, (1, 1, 1))
        if (self.thesis_alpha or self.noise_scale != "std") and self.sampler != "ancestral":
            raise ConfigError("thesis_alpha and noise_scale reproduce quirks of the thesis code's ancestral sampler only")
        if self.noise_scale not in ("std", "variance"):
            raise ConfigError(f"noise_scale must be std or variance, got {self.noise_scale!r}")

    @classmethod
    def from_config(cls, cfg, conditional: bool) -> "SamplerOptions":
        """The protocol's setting: ``steps_uncond`` and no guidance, or ``steps_cond`` and ``guidance``."""
        return cls(sampler=cfg.sampler, steps=cfg.steps_cond if conditional else cfg.steps_uncond, t_max=cfg.t_max,
                   guidance=cfg.guidance if conditional else 1.0, rescale=cfg.rescale, rescale_mode=cfg.rescale_mode,
                   parameterization=cfg.parameterization, lf_conditioning=cfg.lf_conditioning,
                   bf16=cfg.sample_bf16, batch_size=cfg.sample_batch_size,
                   # the ancestral sampler's noise; the ODE samplers draw none, so it does not apply to them
                   noise_scale=_noise_scale(cfg, conditional) if cfg.sampler == "ancestral" else "std")

    def replace(self, **changes: Any) -> "SamplerOptions":
        """A copy with ``changes`` (``None`` values are ignored), validated."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def cascade_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`sample_cascade` these options set."""
        return dict(steps_lf=self.steps, steps_hf=self.steps, sampler=self.sampler, t_max=self.t_max,
                    guidance=self.guidance, rescale=self.rescale, rescale_mode=self.rescale_mode,
                    parameterization=self.parameterization, lf_conditioning=self.lf_conditioning,
                    bf16=self.bf16, thesis_alpha=self.thesis_alpha, noise_scale=self.noise_scale)


def _noise_scale(cfg, conditional: bool) -> str:
    """The ancestral noise of the protocol's unconditional or class-conditional draws."""
    uncond = getattr(cfg, "sample_noise", "std")
    cond = getattr(cfg, "sample_noise_cond", "same")
    return cond if conditional and cond != "same" else uncond


def sampler_kwargs(cfg, conditional: bool) -> dict[str, Any]:
    """The protocol's sampler options from a :class:`tvq.config.Config`, as :func:`sample_cascade`
    keywords: :meth:`SamplerOptions.from_config` then :meth:`SamplerOptions.cascade_kwargs`."""
    return SamplerOptions.from_config(cfg, conditional).cascade_kwargs()
