"""TimeVQVDM: stage 1 (two VQ-VAEs), the latent scalers, and two diffusion priors.

Read top to bottom it is the thesis's section 3.1:

1. ``stage1``: series → LF/HF spectrograms → encoders → 64→4 projections → codebooks
   (:mod:`tvq.vqvae`, :mod:`tvq.spectral`);
2. ``scaler_lf``, ``scaler_hf``: S_LF and S_HF, one mean and one standard deviation of the
   encoded training set each, so the priors see roughly unit-variance latents (§3.3);
3. ``unet_lf``, ``unet_hf``: the ε-models of the two VDM priors (:mod:`tvq.unet`), trained
   with :func:`tvq.diffusion.diffusion_loss` on the reshaped, scaled latents
   ``z0 = S(reshape(z))`` of shape (B, H·d, W) (Table 1: (B, 20, 19) and (B, 20, 76) for Wafer);
4. :meth:`TimeVQVDM.sample`: Algorithm 4 — the LF prior, then the HF prior conditioned on
   the sampled LF latent (:func:`tvq.sampling.sample_cascade`), un-scale, quantise with the
   codebooks, decode, ISTFT, x = x_LF + x_HF.

Diffusion runs in the projected 4-dimensional code space, as in the thesis's parameter
counts and (after a fix) its code: 5 frequency bins × 4 = 20 channels.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import Tensor, nn

from .config import Config
from .diffusion import diffusion_loss
from .errors import ConfigError, EvaluationError
from .sampling import SamplerOptions, sample_cascade
from .unet import UNet1D
from .vqvae import LOSS_FIELDS, Stage1


class LatentScaler(nn.Module):
    """S: a standard scaler with two numbers, fitted on the encoded training set (§3.3)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    @torch.no_grad()
    def fit(self, z: Tensor) -> "LatentScaler":
        self.mean.copy_(z.mean())
        std = z.std()
        self.std.copy_(std if torch.isfinite(std) and std > 0 else torch.ones_like(std))
        return self

    def forward(self, z: Tensor) -> Tensor:
        return (z - self.mean) / self.std

    def inverse(self, z0: Tensor) -> Tensor:
        return z0 * self.std + self.mean


def to_diffusion_layout(z: Tensor) -> Tensor:
    """(B, H, W, d) → (B, H·d, W): stack the frequency axis on the channels (§3.3, Table 1)."""
    b, h, w, d = z.shape
    return z.permute(0, 1, 3, 2).reshape(b, h * d, w)


def from_diffusion_layout(z0: Tensor, height: int) -> Tensor:
    """(B, H·d, W) → (B, H, W, d), the inverse of :func:`to_diffusion_layout`."""
    b, c, w = z0.shape
    return z0.reshape(b, height, c // height, w).permute(0, 1, 3, 2)


class TimeVQVDM(nn.Module):
    def __init__(self, cfg: Config, length: int, n_classes: int) -> None:
        super().__init__()
        if n_classes < 1:
            raise ConfigError(f"n_classes must be >= 1, got {n_classes}")
        self.cfg, self.length, self.n_classes = cfg, length, n_classes
        self.stage1 = Stage1.from_config(cfg, length)
        self.height, self.width_lf, d = self.stage1.latent_shape("lf")
        _, self.width_hf, _ = self.stage1.latent_shape("hf")
        self.channels = self.height * d
        self.scaler_lf, self.scaler_hf = LatentScaler(), LatentScaler()
        self.unet_lf = UNet1D.from_config(cfg, in_channels=self.channels, n_classes=n_classes, kind="lf")
        self.unet_hf = UNet1D.from_config(cfg, in_channels=self.channels, n_classes=n_classes, kind="hf",
                                          cond_channels=self.channels if cfg.lf_conditioning else 0)

    @classmethod
    def from_config(cls, cfg: Config, length: int, n_classes: int) -> "TimeVQVDM":
        return cls(cfg, length, n_classes)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- stage 1 ------------------------------------------------------------------------------------
    def stage1_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.stage1.parameters() if p.requires_grad]

    def stage1_loss(self, x: Tensor) -> dict[str, Tensor]:
        """Algorithm 1's loss terms (Eq. 73-74) for a batch of series."""
        out = self.stage1(x)
        return {**{k: getattr(out, k) for k in LOSS_FIELDS}, "total": out.total}

    # -- scalers and cached latents -----------------------------------------------------------------
    @torch.no_grad()
    def _encode_unscaled(self, x: Tensor, batch_size: int = 512, train_mode: bool = False) -> tuple[Tensor, Tensor]:
        parts_lf, parts_hf = [], []
        for chunk in x.split(batch_size):
            z_lf, z_hf = self.stage1.encode(chunk.to(self.device), train_mode=train_mode)
            if self.cfg.stage2_latents == "quantized":  # the tokens, not the continuous latents
                (z_lf, _), (z_hf, _) = self.stage1.quantize(z_lf, z_hf)
            parts_lf.append(to_diffusion_layout(z_lf))
            parts_hf.append(to_diffusion_layout(z_hf))
        return torch.cat(parts_lf), torch.cat(parts_hf)

    @torch.no_grad()
    def fit_scalers(self, x_train: Tensor) -> None:
        """Fit S_LF and S_HF on the encoded training set (frozen stage 1, eval mode).

        ``latent_scaler`` says on what: ``latents`` (the text: the projected latents the priors
        model, which then have mean 0 and std 1), ``encoder_output`` (the thesis code: the
        64-channel output before the projection, whose final batch norm puts the scalers near
        (0, 1) whatever the projected latents' spread) or ``none`` (identity scalers).
        """
        if self.cfg.latent_scaler == "none":
            for s in (self.scaler_lf, self.scaler_hf):
                s.mean.zero_()
                s.std.fill_(1.0)
        elif self.cfg.latent_scaler == "encoder_output":
            parts = [self.stage1.encoder_output(chunk.to(self.device)) for chunk in x_train.split(512)]
            self.scaler_lf.fit(torch.cat([p[0] for p in parts]))
            self.scaler_hf.fit(torch.cat([p[1] for p in parts]))
        else:
            z_lf, z_hf = self._encode_unscaled(x_train)
            self.scaler_lf.fit(z_lf)
            self.scaler_hf.fit(z_hf)
        if getattr(self.unet_hf, "cond_thesis_code", False):  # the HF prior sees the LF latent un-scaled
            self.unet_hf.cond_mean.copy_(self.scaler_lf.mean)
            self.unet_hf.cond_std.copy_(self.scaler_lf.std)

    @torch.no_grad()
    def encode(self, x: Tensor, train_mode: bool = False) -> tuple[Tensor, Tensor]:
        """z0_LF, z0_HF: the scaled diffusion latents (B, H·d, W) of a batch of series
        (``train_mode``: batch norm with the batch's statistics, see :meth:`Stage1.encode`)."""
        z_lf, z_hf = self._encode_unscaled(x, batch_size=max(1, len(x)) if train_mode else 512, train_mode=train_mode)
        return self.scaler_lf(z_lf), self.scaler_hf(z_hf)

    # -- stage 2 ------------------------------------------------------------------------------------
    def stage2_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.unet_lf, self.unet_hf) for p in m.parameters() if p.requires_grad]

    def stage2_loss(self, z0_lf: Tensor, z0_hf: Tensor, y: Tensor,
                    generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Algorithm 2: the simplified diffusion loss of both priors, independent class dropout."""
        common = dict(class_labels=y, parameterization=self.cfg.parameterization, p_uncond=self.cfg.p_uncond,
                      null_label=self.n_classes, generator=generator)
        # stage2_precision=bf16: the U-Nets' matrix multiplies and convolutions in bfloat16; the
        # diffusion arithmetic around them (Eq. 15, the target, the MSE) stays float32, since
        # diffusion_loss casts the prediction back before it is compared.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.stage2_precision == "bf16"):
            lf = diffusion_loss(self.unet_lf, z0_lf, **common)
            hf = diffusion_loss(self.unet_hf, z0_hf, cond=z0_lf if self.cfg.lf_conditioning else None, **common)
        return {"total": lf["loss"] + hf["loss"], "lf": lf["loss"], "hf": hf["loss"],
                "lf_vlb": lf["vlb"].detach(), "hf_vlb": hf["vlb"].detach()}

    # -- Algorithm 4 --------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z0_lf: Tensor, z0_hf: Tensor) -> Tensor:
        """Scaled diffusion latents → series: un-scale, quantise, decode, P, ISTFT, x_LF + x_HF."""
        z_lf = from_diffusion_layout(self.scaler_lf.inverse(z0_lf), self.height)
        z_hf = from_diffusion_layout(self.scaler_hf.inverse(z0_hf), self.height)
        return self.stage1.decode_latents(z_lf, z_hf)

    @torch.no_grad()
    def decode_parts(self, z0_lf: Tensor, z0_hf: Tensor) -> tuple[Tensor, Tensor]:
        """Like :meth:`decode`, but the two bands ``(x_LF, x_HF)`` apart (the thesis's Figures 13-14)."""
        z_lf = from_diffusion_layout(self.scaler_lf.inverse(z0_lf), self.height)
        z_hf = from_diffusion_layout(self.scaler_hf.inverse(z0_hf), self.height)
        return self.stage1.decode_parts(z_lf, z_hf)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> dict[str, Tensor]:
        """Stage 1 in eval mode on real series: the true bands ``x_lf, x_hf`` and their
        reconstructions ``xhat_lf, xhat_hf`` (each (B, L)); ``x_hat`` is their sum."""
        was_training = self.stage1.training
        self.stage1.eval()
        try:
            out = self.stage1(x.to(self.device))
        finally:
            self.stage1.train(was_training)
        parts = {k: getattr(out, k) for k in ("x_lf", "x_hf", "xhat_lf", "xhat_hf")}
        parts["x_hat"] = parts["xhat_lf"] + parts["xhat_hf"]
        return parts

    @torch.no_grad()
    def sample(self, n: int, *, class_labels: Tensor | None = None, options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
               return_latents: bool = False, **overrides):
        """Algorithm 4: draw ``n`` series (n, L).

        ``options`` (:class:`tvq.sampling.SamplerOptions`) say how; by default the protocol's
        setting from the model's config, unconditional or conditional by ``class_labels``.
        Keyword ``overrides`` (``steps=``, ``guidance=``, ``rescale=``, ``rescale_mode=``,
        ``t_max=``, ``sampler=``, ``bf16=``, ``batch_size=``, ``thesis_alpha=``) replace single
        fields of those options, validated like them; ``None`` keeps the field.

        ``class_labels`` (n,) in 0..C-1 make the draw class-conditional with guidance weight
        ``guidance`` (Eq. 29); without labels it is unconditional (the null class).
        """
        cfg = self.cfg
        if n <= 0:
            raise ConfigError(f"number of samples must be positive, got {n}")
        if class_labels is not None:
            class_labels = torch.as_tensor(class_labels, dtype=torch.long)
            if class_labels.shape != (n,):
                raise EvaluationError(f"class_labels must have shape ({n},), got {tuple(class_labels.shape)}")
            if len(class_labels) and (class_labels.min() < 0 or class_labels.max() >= self.n_classes):
                raise EvaluationError(f"class labels must lie in 0..{self.n_classes - 1}")
        conditional = class_labels is not None
        unknown = set(overrides) - {f.name for f in dataclasses.fields(SamplerOptions)}
        if unknown:
            raise ConfigError(f"unknown sampling option(s): {', '.join(sorted(unknown))}")
        opts = (options or SamplerOptions.from_config(cfg, conditional)).replace(**overrides)
        if opts.parameterization != cfg.parameterization or opts.lf_conditioning != cfg.lf_conditioning:
            raise ConfigError("parameterization and lf_conditioning are properties of the trained model; "
                              "they cannot change at sampling time")
        kwargs = {**opts.cascade_kwargs(), "generator": generator, "null_label": self.n_classes, "device": self.device}
        bs = opts.batch_size
        was_training = self.training
        self.eval()
        xs, lfs, hfs = [], [], []
        try:
            for start in range(0, n, bs):
                m = min(bs, n - start)
                labels = class_labels[start:start + m].to(self.device) if conditional else None
                z0_lf, z0_hf = sample_cascade(
                    self.unet_lf, self.unet_hf, (m, self.channels, self.width_lf), (m, self.channels, self.width_hf),
                    class_labels=labels, callback=callback, **kwargs)
                xs.append(self.decode(z0_lf, z0_hf))
                if return_latents:
                    lfs.append(z0_lf)
                    hfs.append(z0_hf)
        finally:
            self.train(was_training)
        x = torch.cat(xs)
        return (x, torch.cat(lfs), torch.cat(hfs)) if return_latents else x

    # -- bookkeeping --------------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Trainable parameters per module (thesis Table 2)."""
        s1 = self.stage1.param_counts()
        return {"stage1_lf": s1["lf"]["total"], "stage1_hf": s1["hf"]["total"],
                "unet_lf": sum(p.numel() for p in self.unet_lf.parameters()),
                "unet_hf": sum(p.numel() for p in self.unet_hf.parameters())}
