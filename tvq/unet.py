"""The 1-D denoising U-Net of the two latent diffusion priors (thesis sections 2.5.2 and 3.3).

Modelled on the 1-D U-Net of lucidrains' denoising-diffusion-pytorch as adapted by the
thesis code, rebuilt here from the description:

* every level: two ResNet blocks (weight-standardised Conv1d k3 + GroupNorm(4) + PReLU,
  replicate padding), a pre-normed linear attention with a residual, then a stride-2
  down-sampler Conv1d(k4, s2, p1): length l → ⌊l/2⌋. The last level down-samples too.
* middle: ResNet block, full (cosine-similarity, logits × 10) attention, ResNet block.
* up path: nearest ×2 up-sampling + Conv1d(k3), skip concatenations, mirrored blocks.
  When a level's input length was odd, ×2 misses it by one: the up-sampler then goes
  ×4 nearest and linearly interpolates to the skip's exact length (the thesis's fix).
* scalar conditions: a sinusoidal embedding of 1000·t through an MLP (256) concatenated with
  a learned class embedding (C + 1 rows, row C = unconditional, 256). Each ResNet block
  maps it (PReLU + Linear) to a scale and shift applied after its first group norm:
  x · (scale + 1) + shift.
* input condition (HF prior only): z0_LF, resized to the HF width and concatenated on the
  channels of z_t before the first convolution.

With the thesis configuration this reproduces Table 2 exactly: Wafer, 2 classes,
LF (B, 20, 19) → 4,123,777 parameters, HF (B, 20, 76) with z0_LF → 3,971,309.

Where this departs from the thesis code (each an option where someone may want the code's
behaviour): t is scaled by 1000 on a copy, never in place (the code rescales the caller's
tensor, which corrupts v- and x0-conversions); the middle attention normalises q and k over
features, a true cosine similarity (``attn_norm="positions"`` is the code's axis); an LF
projection, if wanted, is trained (``cond_projection=True``; the code's is never optimised);
norm epsilons follow the weights' dtype so bf16 autocast keeps the function.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError

# -- building blocks ------------------------------------------------------------------------


def _standardize(w: Tensor, eps: float) -> Tensor:
    """Each output channel's kernel to zero mean and unit variance."""
    flat = w.flatten(1)
    flat = flat - flat.mean(dim=1, keepdim=True)        # plain means: torch.var is ~15x slower here
    return (flat * torch.rsqrt((flat * flat).mean(dim=1, keepdim=True) + eps)).view_as(w)


class WSConv1d(nn.Conv1d):
    """Conv1d whose kernel is standardised (zero mean, unit variance per output channel) on every call.

    Weight standardisation (Qiao et al., 2019) pairs well with group norm: the normalised
    statistics no longer drift with the kernel's scale. Without gradients (sampling) the
    standardised kernel is cached until the weight changes (its version counter moves).
    """

    _cache: tuple[tuple, Tensor] | None = None

    def standardized_weight(self, eps: float) -> Tensor:
        w = self.weight
        if torch.compiler.is_compiling():  # the cache is Python state: in a compiled graph it would only break it
            return _standardize(w, eps)
        key = (w._version, w.data_ptr(), w.device, eps)
        if not torch.is_grad_enabled() and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        w_hat = _standardize(w, eps)
        self._cache = (key, w_hat) if not torch.is_grad_enabled() else None
        return w_hat

    def forward(self, x: Tensor) -> Tensor:
        # eps by the weight's dtype, not the activations': under bf16 autocast the model stays the same function
        eps = 1e-5 if self.weight.dtype == torch.float32 else 1e-3
        return self._conv_forward(x, self.standardized_weight(eps), self.bias)


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of (B, C, W), one learned gain per channel and no bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        eps = 1e-5 if self.g.dtype == torch.float32 else 1e-3
        # two plain means, not torch.var_mean: over a non-innermost axis on CPU that is ~10x slower
        x = x - x.mean(dim=1, keepdim=True)
        var = (x * x).mean(dim=1, keepdim=True)
        return x * (torch.rsqrt(var + eps) * self.g)


class Block(nn.Module):
    """WS-Conv1d(k3) → GroupNorm → optional x·(scale+1)+shift → PReLU."""

    def __init__(self, dim_in: int, dim_out: int, groups: int, padding: str = "replicate"):
        super().__init__()
        self.proj = WSConv1d(dim_in, dim_out, kernel_size=3, padding=1, padding_mode=padding)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.PReLU()

    def forward(self, x: Tensor, scale_shift: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = torch.addcmul(shift, x, scale + 1.0)
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two Blocks with a residual; the conditioning embedding sets the first block's scale and shift."""

    def __init__(self, dim_in: int, dim_out: int, emb_dim: int, groups: int, padding: str = "replicate"):
        super().__init__()
        self.embedder = nn.Sequential(nn.PReLU(), nn.Linear(emb_dim, 2 * dim_out))
        self.block1 = Block(dim_in, dim_out, groups, padding)
        self.block2 = Block(dim_out, dim_out, groups, padding)
        self.res_conv = nn.Conv1d(dim_in, dim_out, kernel_size=1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor, rows: Tensor | None = None) -> Tensor:
        """``emb``: (B, E), or (1, E) shared by the batch, or (R, E) distinct rows picked per sample by ``rows`` (B,)."""
        ss = self.embedder(emb)
        if rows is not None:
            ss = ss.index_select(0, rows)
        scale, shift = ss.unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(self.block1(x, (scale, shift)))
        return h + self.res_conv(x)


def _qkv(to_qkv: nn.Conv1d, x: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Project x (B, C, N) to q, k, v of shape (B·heads, d, N), each contiguous.

    One 1×1-conv weight holds all three projections (as in the thesis code, so parameter
    counts and checkpoints match), but they are applied separately: slicing one joint output
    would leave strided views that softmax and bmm silently copy (measured: ~10 % of a forward).
    """
    b, _, n = x.shape
    return tuple(F.conv1d(x, w).reshape(b * heads, -1, n) for w in to_qkv.weight.chunk(3, dim=0))


class LinearAttention(nn.Module):
    """Linear attention (Katharopoulos et al., 2020): cost linear in the width.

    Queries are soft-maxed over features, keys over positions, and the values are averaged
    (the context is divided by the width) so its size does not grow with the latent width.
    The output projection ends in a channel layer norm, as in the thesis code.
    """

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv1d(dim, 3 * hidden, kernel_size=1, bias=False)
        self.to_out = nn.Sequential(nn.Conv1d(hidden, dim, kernel_size=1), ChannelLayerNorm(dim))

    def forward(self, x: Tensor) -> Tensor:
        b, _, n = x.shape
        q, k, v = _qkv(self.to_qkv, x, self.heads)                   # (B·h, d, N)
        q, k = q.softmax(dim=-2), k.softmax(dim=-1)
        # the query scale and 1/n (average, not sum, over positions) go on the small context
        context = torch.bmm(k, v.transpose(1, 2)).mul_(self.scale / n)    # (B·h, d, e)
        out = torch.bmm(context.transpose(1, 2), q)                   # (B·h, e, N)
        return self.to_out(out.reshape(b, -1, n))


class Attention(nn.Module):
    """Full self-attention with L2-normalised queries and keys and logits × ``scale`` (thesis code: 10).

    ``norm="features"``: each query and key vector is normalised, so the logits are 10 × the
    cosine similarity (what the name promises). ``norm="positions"``: each feature of q and
    k is normalised across the positions instead — what the thesis code (and the lucidrains
    version it adapted) actually computes, because it normalises the last axis of a
    (B, heads, d, N) tensor.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, scale: float = 10.0, norm: str = "features"):
        super().__init__()
        if norm not in ("features", "positions"):
            raise ConfigError(f"attention norm must be features or positions, got {norm!r}")
        self.heads, self.scale, self.norm_dim = heads, scale, 1 if norm == "features" else 2
        hidden = heads * dim_head
        self.to_qkv = nn.Conv1d(dim, 3 * hidden, kernel_size=1, bias=False)
        self.to_out = nn.Conv1d(hidden, dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, n = x.shape
        q, k, v = _qkv(self.to_qkv, x, self.heads)                   # (B·h, d, N)
        q, k = F.normalize(q, dim=self.norm_dim), F.normalize(k, dim=self.norm_dim)
        attn = (torch.bmm(q.transpose(1, 2), k) * self.scale).softmax(dim=-1)   # (B·h, i, j)
        out = torch.bmm(v, attn.transpose(1, 2))                                 # (B·h, d, i)
        return self.to_out(out.reshape(b, -1, n))


class PreNormResidual(nn.Module):
    """x + fn(LayerNorm(x))."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = ChannelLayerNorm(dim), fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(self.norm(x))


class Downsample(nn.Module):
    """Conv1d(k4, s2, p1): length l → ⌊l/2⌋. A length-1 input is replicate-padded to 2 first (→ 1)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.conv = nn.Conv1d(dim_in, dim_out, kernel_size=4, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] < 2:
            x = F.pad(x, (0, 1), mode="replicate")
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest ×2 then Conv1d(k3); when 2·l ≠ target (odd skip length, or a padded length-1 level),
    nearest ×4 then linear interpolation to the target length (the thesis's odd-length fix)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.conv = nn.Conv1d(dim_in, dim_out, kernel_size=3, padding=1)

    def forward(self, x: Tensor, length: int) -> Tensor:
        if 2 * x.shape[-1] == length:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=4.0, mode="nearest")
            x = F.interpolate(x, size=length, mode="linear", align_corners=False)
        return self.conv(x)


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal features [sin(x ω_k), cos(x ω_k)], ω_k = 10000^{−k/(d/2−1)} (Vaswani et al., 2017)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ConfigError(f"sinusoidal embedding width must be even and >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        arg = x.float()[:, None] * self.freqs[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


def resize_condition(cond: Tensor, length: int) -> Tensor:
    """Stretch an input condition (B, C, W_in) to width ``length``: nearest up-sampling by the
    integer factor ⌊length / W_in⌋, then linear interpolation to the exact width (as the
    thesis code does for z0_LF → HF width)."""
    w_in = cond.shape[-1]
    if w_in == length:
        return cond
    factor = length // w_in
    if factor > 1:
        cond = F.interpolate(cond, scale_factor=float(factor), mode="nearest")
    if cond.shape[-1] != length:
        cond = F.interpolate(cond, size=length, mode="linear", align_corners=False)
    return cond


# -- the U-Net ------------------------------------------------------------------------------


class UNet1D(nn.Module):
    """ε-model (or v / z0-model) f_θ(z_t, t, y, z_in) of a latent diffusion prior.

    Args:
        in_channels: channels of z_t (5 frequency bins × codebook dim 4 = 20 in the thesis).
        n_classes: C; the class embedding has C + 1 rows, row C (``null_label``) is unconditional.
        channels: channels of the down levels, e.g. (64, 128, 256) for LF, (32, 64, 128, 256)
            for HF; the first level's blocks run at channels[0], each level ends in a stride-2
            down-sampler to the next entry.
        cond_channels: channels of the input condition (z0_LF for the HF prior; 0 for none).
        cond_projection: pass the resized condition through a trained Conv1d(k3) before the
            concatenation. The thesis code has such a layer but never trains it (a bug);
            default False = plain interpolation, which keeps Table 2's parameter counts.
        time_embed_dim, class_embed_dim: widths of the two scalar-condition embeddings (256).
        sinusoidal_dim: width of the sinusoidal time features (default channels[0], as the
            thesis code; needed to reproduce Table 2).
        time_scale: t is multiplied by this before the sinusoidal features (the VDM code's
            1000, which the thesis adopts) — on a copy, never in place.
        groups, attn_heads, attn_head_dim: group-norm groups (4) and attention shape (4 × 32).
        attn_scale: logit scale of the middle cosine-similarity attention (thesis code: 10).
        attn_norm: ``features`` (cosine similarity) or ``positions`` (the thesis code's axis),
            see :class:`Attention`.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        channels: Sequence[int] = (64, 128, 256),
        *,
        cond_channels: int = 0,
        cond_projection: bool = False,
        time_embed_dim: int = 256,
        class_embed_dim: int = 256,
        sinusoidal_dim: int | None = None,
        time_scale: float = 1000.0,
        groups: int = 4,
        attn_heads: int = 4,
        attn_head_dim: int = 32,
        attn_scale: float = 10.0,
        attn_norm: str = "features",
        block_padding: str = "replicate",
        cond_thesis_code: bool = False,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        if in_channels < 1 or n_classes < 1:
            raise ConfigError(f"U-Net needs in_channels >= 1 and n_classes >= 1, got {in_channels}, {n_classes}")
        if not channels or min(channels) < 1:
            raise ConfigError(f"U-Net channels must be a non-empty list of positive ints, got {channels}")
        if block_padding not in ("replicate", "zeros"):
            raise ConfigError(f"block_padding must be replicate or zeros, got {block_padding!r}")
        if cond_channels < 0:
            raise ConfigError(f"cond_channels must be >= 0, got {cond_channels}")
        bad = [c for c in channels if c % groups]
        if bad:
            raise ConfigError(f"U-Net channels {bad} are not divisible by the {groups} group-norm groups")
        self.in_channels, self.n_classes, self.cond_channels = in_channels, n_classes, cond_channels
        self.channels, self.time_scale = tuple(channels), float(time_scale)
        dims = [channels[0], *channels]
        emb_dim = time_embed_dim + class_embed_dim
        sinusoidal_dim = sinusoidal_dim or channels[0]

        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(sinusoidal_dim),
            nn.Linear(sinusoidal_dim, time_embed_dim),
            nn.GELU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )
        self.class_embed = nn.Embedding(n_classes + 1, class_embed_dim)
        # The thesis code's HF condition: the LF latent un-scaled (cond_std, cond_mean: S_LF,
        # set by TimeVQVDM.fit_scalers), then a 3-tap 20 -> 20 convolution that is never trained.
        self.cond_thesis_code = bool(cond_thesis_code and cond_channels)
        self.cond_proj = (nn.Conv1d(cond_channels, cond_channels, kernel_size=3, padding=1)
                          if cond_channels and (cond_projection or self.cond_thesis_code) else None)
        if self.cond_thesis_code:
            self.cond_proj.requires_grad_(False)
            self.register_buffer("cond_mean", torch.zeros(()))
            self.register_buffer("cond_std", torch.ones(()))
        self.init_conv = nn.Conv1d(in_channels + cond_channels, dims[0], kernel_size=7, padding=3,
                                   padding_mode="replicate")

        def resnet(a: int, b: int) -> ResnetBlock:
            return ResnetBlock(a, b, emb_dim, groups, block_padding)

        def lin_attn(d: int) -> PreNormResidual:
            return PreNormResidual(d, LinearAttention(d, attn_heads, attn_head_dim))

        pairs = list(zip(dims[:-1], dims[1:]))
        self.downs = nn.ModuleList(
            nn.ModuleList([resnet(a, a), resnet(a, a), lin_attn(a), Downsample(a, b)]) for a, b in pairs
        )
        mid = dims[-1]
        self.mid_block1 = resnet(mid, mid)
        self.mid_attn = PreNormResidual(mid, Attention(mid, attn_heads, attn_head_dim, attn_scale, attn_norm))
        self.mid_block2 = resnet(mid, mid)
        self.ups = nn.ModuleList(
            nn.ModuleList([Upsample(b, a), resnet(2 * a, a), resnet(2 * a, a), lin_attn(a)]) for a, b in reversed(pairs)
        )
        self.final_block = resnet(2 * dims[0], dims[0])
        self.final_conv = nn.Conv1d(dims[0], in_channels, kernel_size=1)

    @property
    def null_label(self) -> int:
        """Index of the unconditional class embedding (C)."""
        return self.n_classes

    @classmethod
    def from_config(cls, cfg, *, in_channels: int, n_classes: int, cond_channels: int = 0,
                    kind: str | None = None, **overrides) -> "UNet1D":
        """Build the LF (``kind="lf"``) or HF (``kind="hf"``) prior from a :class:`tvq.config.Config`.

        ``kind`` defaults to HF when there is an input condition. ``overrides`` reach the
        constructor (e.g. ``cond_projection=True``, ``time_scale=1.0``).
        """
        kind = kind or ("hf" if cond_channels else "lf")
        if kind not in ("lf", "hf"):
            raise ConfigError(f"U-Net kind must be lf or hf, got {kind!r}")
        channels = cfg.unet_lf_channels if kind == "lf" else cfg.unet_hf_channels
        kwargs = dict(cond_channels=cond_channels, time_embed_dim=cfg.time_embed_dim,
                      class_embed_dim=cfg.class_embed_dim, groups=cfg.unet_groups,
                      attn_heads=cfg.attn_heads, attn_head_dim=cfg.attn_head_dim,
                      block_padding=cfg.unet_block_padding, attn_norm=cfg.unet_attn_norm,
                      cond_thesis_code=cfg.hf_condition == "thesis_code")
        kwargs.update(overrides)
        return cls(in_channels, n_classes, channels, **kwargs)

    def embed(self, t: Tensor, class_labels: Tensor | None, batch: int) -> tuple[Tensor, Tensor | None]:
        """[time embedding ; class embedding], the scalar conditions that drive every ResNet block.

        Returns (emb, rows). In training every sample has its own t: emb is (B, 512), rows None.
        In sampling one t is shared by the batch (t given as a scalar, a 1-element tensor, or a
        broadcast view such as ``t.expand(B)``): then the embedding — and each block's
        scale/shift projection — is computed once per distinct class, not once per sample:
        emb is (1, 512) without labels, or (C + 1, 512) with ``rows`` = the labels.
        """
        shared = t.dim() == 0 or t.numel() == 1 or (t.dim() == 1 and t.stride(0) == 0)
        if not shared:
            t_emb = self.time_embed(t.reshape(-1) * self.time_scale)     # a new tensor: the caller's t is untouched
            labels = class_labels if class_labels is not None else torch.full(
                (batch,), self.n_classes, dtype=torch.long, device=t_emb.device)
            return torch.cat((t_emb, self.class_embed(labels)), dim=1), None
        t_emb = self.time_embed(t.reshape(-1)[:1] * self.time_scale)
        if class_labels is None:
            return torch.cat((t_emb, self.class_embed.weight[-1:]), dim=1), None
        table = self.class_embed.weight
        return torch.cat((t_emb.expand(table.shape[0], -1), table), dim=1), class_labels

    def forward(self, z_t: Tensor, t: Tensor | float, class_labels: Tensor | None = None,
                cond: Tensor | None = None) -> Tensor:
        """Predict ε (or v, z0) for z_t (B, C, W) at times t (B,) or scalar.

        class_labels: int (B,) in 0..C, C = unconditional; None means all unconditional.
        cond: (B, cond_channels, W_in) input condition, resized to W here.
        """
        self._check_inputs(z_t, class_labels, cond)
        b, _, width = z_t.shape
        if not isinstance(t, Tensor):
            t = torch.tensor(float(t), device=z_t.device)
        if t.dim() > 1 or (t.dim() == 1 and t.numel() not in (1, b)):
            raise ConfigError(f"t must be a scalar or have shape ({b},), got {tuple(t.shape)}")
        emb, rows = self.embed(t.to(z_t.device), class_labels, b)

        x = z_t
        if self.cond_channels:
            c = cond.to(z_t.dtype)
            if self.cond_thesis_code:
                c = c * self.cond_std + self.cond_mean
            c = resize_condition(c, width)
            if self.cond_proj is not None:
                c = self.cond_proj(c)
            x = torch.cat((x, c), dim=1)
        x = self.init_conv(x)
        h0 = x

        skips: list[Tensor] = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, emb, rows)
            skips.append(x)
            x = attn(block2(x, emb, rows))
            skips.append(x)
            x = down(x)

        x = self.mid_block2(self.mid_attn(self.mid_block1(x, emb, rows)), emb, rows)

        for up, block1, block2, attn in self.ups:
            skip = skips.pop()
            x = block1(torch.cat((up(x, skip.shape[-1]), skip), dim=1), emb, rows)
            x = attn(block2(torch.cat((x, skips.pop()), dim=1), emb, rows))

        x = self.final_block(torch.cat((x, h0), dim=1), emb, rows)
        return self.final_conv(x)

    def _check_inputs(self, z_t: Tensor, class_labels: Tensor | None, cond: Tensor | None) -> None:
        if z_t.dim() != 3 or z_t.shape[1] != self.in_channels or z_t.shape[-1] < 1:
            raise ConfigError(f"U-Net expects z_t of shape (B, {self.in_channels}, W>=1), got {tuple(z_t.shape)}")
        if class_labels is not None:
            if class_labels.shape != (z_t.shape[0],):
                raise ConfigError(f"class_labels must have shape ({z_t.shape[0]},), got {tuple(class_labels.shape)}")
            if class_labels.dtype.is_floating_point:
                raise ConfigError("class_labels must be integers (0..C-1, or C for unconditional)")
        if self.cond_channels:
            if cond is None:
                raise ConfigError(f"this U-Net is conditioned on an input of {self.cond_channels} channels; cond is missing")
            if cond.dim() != 3 or cond.shape[0] != z_t.shape[0] or cond.shape[1] != self.cond_channels:
                raise ConfigError(f"cond must have shape ({z_t.shape[0]}, {self.cond_channels}, W_in), got {tuple(cond.shape)}")
        elif cond is not None:
            raise ConfigError("this U-Net takes no input condition (cond_channels=0) but cond was given")


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, as Table 2 counts them."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
