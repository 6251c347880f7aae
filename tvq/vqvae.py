"""Stage 1: two VQ-VAEs on the low- and high-frequency spectrograms (thesis 2.5.1, 3.1, 3.3, app. C-D).

Reading order: latent widths → building blocks → encoder / decoder → reconstruction loss
(Eq. 74) → one VQ-VAE → :class:`Stage1`, which holds both bands and runs Algorithm 1's forward
pass. The vector quantiser between encoder and decoder (nearest token, EMA codebook, the loss of
Eq. 73) is :mod:`tvq.quantizer`; its names are importable from here too.

Shapes for Wafer (L = 152), thesis Table 1: ``u`` is ``(B, 5, 153, 2)``; the projected
latents ``z_LF`` and ``z_HF`` are ``(B, 5, 19, 4)`` and ``(B, 5, 76, 4)``.

Architecture (thesis section 2.5.1 and its code, which follows TimeVQVAE): the encoder is
``n`` stride-(1, 2) convolutions (kernel (3, 4), padding (1, 1)) with batch norm and leaky
ReLU, then ``m`` residual blocks each followed by batch norm, 64 channels throughout.
The decoder is ``m`` residual blocks, then ``n`` transposed convolutions with the same
kernel, stride and padding. Where the thesis's code adds one more up-sampling stage and
then interpolates bilinearly to the spectrogram's size, here each transposed convolution
gets ``output_padding`` 0 or 1 so that it undoes exactly one floor-halving of the encoder:
the decoder ends at the exact size with no interpolation (and 50 fewer parameters).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .equations import implements
from .errors import ConfigError, TvqError
from .quantizer import VectorQuantizer, VQOutput, token_counts, vq_loss
from .spectral import from_conv, istft, n_bins, n_frames, p_hf, p_lf, stft, to_conv

__all__ = [
    "n_downsamples", "downsampled_width", "Encoder", "Decoder", "ResBlock",
    "VectorQuantizer", "VQOutput", "vq_loss", "token_counts", "reconstruction_loss",
    "VQVAE", "Stage1", "Stage1Output",
]


# ----------------------------------------------------------------------------------------
# Latent widths (section 3.3)
# ----------------------------------------------------------------------------------------

def downsampled_width(width: int, n_down: int) -> int:
    """Width after ``n_down`` stride-2 convolutions with kernel 4, padding 1.

    One such convolution maps ``w`` to ``floor((w + 2 - 4) / 2) + 1 = floor(w / 2)``.
    """
    for _ in range(n_down):
        width = (width + 2 * 1 - 4) // 2 + 1
    return width


def n_downsamples(length: int, width_min: int, hop_length: int = 1) -> int:
    """Section 3.3: how many stride-2 time-axis down-samplings the encoder of a band gets.

    The spectrogram of a length-``length`` series is ``W = length // hop + 1`` frames wide;
    the encoder halves it (rounding down) until ``width_min <= W' < 2 * width_min``
    (LF: 16..31, HF: 64..127). A series too short to reach ``width_min`` is not
    down-sampled at all (0). Wafer, ``L = 152``: 153 → 19 with 3 halvings (LF) and
    153 → 76 with 1 (HF).
    """
    if length < 1:
        raise ConfigError(f"series length must be positive, got {length}")
    if width_min < 1:
        raise ConfigError(f"minimum latent width must be positive, got {width_min}")
    width, n = n_frames(length, hop_length), 0
    while width >= 2 * width_min:
        width, n = downsampled_width(width, 1), n + 1
    return n


# The thesis code's rule instead (its config's "downsampled_width": 8 for LF, 32 for HF): a
# down-sampling rate round(L / (log2(n_fft) - 1) / w), and int(log2(rate)) stride-2 blocks, at
# least one. It agrees with the text's rule on Wafer and GunPoint, not everywhere (ECG200's HF
# latent: 48 wide by the code, 97 by the text).
CODE_WIDTHS = {"lf": 8, "hf": 32}


def n_downsamples_thesis_code(length: int, n_fft: int, band: str) -> int:
    """The number of stride-2 blocks the thesis's code gives a band's encoder (Python's round)."""
    rate = round(length / (math.log2(n_fft) - 1) / CODE_WIDTHS[band])
    return max(1, int(math.log2(rate)) if rate > 0 else 0)


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------

_KERNEL, _STRIDE, _PAD = (3, 4), (1, 2), (1, 1)  # time axis only is down-/up-sampled


def _edge_pad(x: torch.Tensor, dim: int, p: int) -> torch.Tensor:
    """Replicate padding of ``p`` on both ends of ``dim``, from slices and a concatenation."""
    if p == 0:
        return x
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, x.shape[dim] - 1, 1)
    return torch.cat([first] * p + [x] + [last] * p, dim=dim)


class ReplicateConv2d(nn.Conv2d):
    """``nn.Conv2d(..., padding_mode="replicate")``, the same parameters and state dict.

    Eager, it is exactly that layer. Under ``torch.compile`` the padding is built from edge slices
    instead: inductor (torch 2.13) miscompiles the backward of ``replication_pad2d`` after a
    channels-last convolution gradient (a stride assertion fails), and slices and a concatenation
    compute the same forward and, up to the order of a sum, the same gradient.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__(c_in, c_out, kernel_size, stride, padding, padding_mode="replicate")

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return super()._conv_forward(input, weight, bias)
        ph, pw = self.padding
        x = _edge_pad(_edge_pad(input, -2, ph), -1, pw)
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x + Conv1x1(LReLU([BN](Conv3x3(LReLU(x)))))``.

    The encoder's blocks have the inner batch norm, the decoder's do not (thesis code;
    the parameter counts of Table 2 depend on it).
    """

    def __init__(self, channels: int, batch_norm: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LeakyReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
            nn.LeakyReLU(inplace=True),  # in place is safe: it acts on the conv's fresh output
            nn.Conv2d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    # Replicate padding at the borders of the spectrogram, as the thesis code does.
    return nn.Sequential(
        ReplicateConv2d(c_in, c_out, _KERNEL, _STRIDE, _PAD),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(inplace=True),
    )


def _up_conv(c_in: int, c_out: int, odd: int) -> nn.ConvTranspose2d:
    # Without output padding the layer maps w to 2w; with it, 2w + 1, which undoes floor(w/2)
    # for an odd encoder width exactly.
    return nn.ConvTranspose2d(c_in, c_out, _KERNEL, _STRIDE, _PAD, output_padding=(0, odd))


class Encoder(nn.Module):
    """E: ``(B, 2, H, W)`` spectrogram → ``(B, hidden, H, W')`` with ``W' = W`` halved ``n_down`` times.

    With ``n_down = 0`` (series shorter than the band's minimum width) a stride-1 3×3
    convolution takes the place of the first down-sampling block, so the channel count
    still rises from 2 to ``hidden``; the thesis leaves this case unspecified.
    """

    def __init__(self, width: int, n_down: int, hidden_dim: int = 64, n_resblocks: int = 4,
                 in_channels: int = 2) -> None:
        super().__init__()
        if n_down > 0:
            stem = [_down_block(in_channels, hidden_dim)] + [_down_block(hidden_dim, hidden_dim) for _ in range(n_down - 1)]
        else:
            stem = [nn.Sequential(ReplicateConv2d(in_channels, hidden_dim, 3, 1, 1),
                                  nn.BatchNorm2d(hidden_dim), nn.LeakyReLU(inplace=True))]
        res = [nn.Sequential(ResBlock(hidden_dim, batch_norm=True), nn.BatchNorm2d(hidden_dim)) for _ in range(n_resblocks)]
        self.net = nn.Sequential(*stem, *res)
        self.width, self.n_down = width, n_down
        self.latent_width = downsampled_width(width, n_down)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u)


class Decoder(nn.Module):
    """D: ``(B, hidden, H, W')`` → ``(B, 2, H, W)``, mirroring :class:`Encoder` to the exact width.

    ``output="exact"`` (tvq): each transposed convolution gets the output padding that undoes
    the encoder's ``floor(w / 2)``, so the last layer lands on ``W`` exactly.
    ``output="thesis_code"``: what the thesis's code builds instead. No output padding, one more
    2 → 2 transposed convolution after the last (so about ``2W`` columns), then bilinear
    interpolation (``align_corners=True``) back to ``W``. The extra layer adds 2·2·3·4 + 2
    parameters; the interpolation low-passes nothing, it only resamples.
    """

    OUTPUTS = ("exact", "thesis_code")

    def __init__(self, width: int, n_down: int, hidden_dim: int = 64, n_resblocks: int = 4,
                 out_channels: int = 2, output: str = "exact") -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            raise ConfigError(f"decoder_output must be one of {', '.join(self.OUTPUTS)}, got {output!r}")
        # Encoder widths w_0 = W > w_1 > ... > w_n; up-sampling stage i recreates w_{i-1}.
        widths = [width]
        for _ in range(n_down):
            widths.append(downsampled_width(widths[-1], 1))
        code = output == "thesis_code" and n_down > 0
        res = [nn.Sequential(ResBlock(hidden_dim, batch_norm=False), nn.BatchNorm2d(hidden_dim)) for _ in range(n_resblocks)]
        ups: list[nn.Module] = []
        for target in reversed(widths[1:n_down]):  # all but the last up-sampling
            ups.append(nn.Sequential(_up_conv(hidden_dim, hidden_dim, 0 if code else target % 2),
                                     nn.BatchNorm2d(hidden_dim), nn.LeakyReLU(inplace=True)))
        if n_down > 0:
            ups.append(_up_conv(hidden_dim, out_channels, 0 if code else width % 2))
        else:
            ups.append(nn.Conv2d(hidden_dim, out_channels, 3, 1, 1))
        if code:  # the code's "one more up-sampling layer", then resampling to the width
            ups.append(_up_conv(out_channels, out_channels, 0))
        self.net = nn.Sequential(*res, *ups)
        self.width, self.n_down, self.resample = width, n_down, code

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.net(h)
        if self.resample:
            out = F.interpolate(out, size=(out.shape[2], self.width), mode="bilinear", align_corners=True)
        return out


# ----------------------------------------------------------------------------------------
# Reconstruction loss (Eq. 74)
# ----------------------------------------------------------------------------------------

@implements("74")
def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, u: torch.Tensor, u_hat: torch.Tensor,
                        time_loss: str = "mse") -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (74): ``(||x - x_hat||^2, ||u - u_hat||^2)``, time and time-frequency terms, as means.

    ``time_loss='l1'`` replaces the time term by a mean absolute error, which is what the
    thesis's code uses for the high-frequency band. The spectrogram mean runs over the whole
    zero-padded tensor (all ``H`` bins), as the thesis code does.
    """
    if time_loss == "mse":
        time = F.mse_loss(x_hat, x)
    elif time_loss == "l1":
        time = F.l1_loss(x_hat, x)
    else:
        raise ConfigError(f"time loss must be 'mse' or 'l1', got {time_loss!r}")
    return time, F.mse_loss(u_hat, u)


# ----------------------------------------------------------------------------------------
# One VQ-VAE (one band)
# ----------------------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16")


class VQVAE(nn.Module):
    """Encoder, vector quantiser and decoder of one frequency band (``'lf'`` or ``'hf'``).

    Works on conv-layout spectrograms ``(B, 2, H, W)``; the band's zero-padding operator and
    the ISTFT are applied by :class:`Stage1`.
    """

    def __init__(self, band: str, height: int, width: int, n_down: int, hidden_dim: int = 64,
                 n_resblocks: int = 4, codebook_size: int = 512, codebook_dim: int = 4,
                 ema_decay: float = 0.8, beta: float = 1.0, precision: str = "fp32", ema_init: str = "one",
                 decoder_output: str = "exact") -> None:
        super().__init__()
        if band not in ("lf", "hf"):
            raise ConfigError(f"band must be 'lf' or 'hf', got {band!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.band, self.height, self.width, self.n_down = band, height, width, n_down
        self.encoder = Encoder(width, n_down, hidden_dim, n_resblocks)
        self.vq = VectorQuantizer(hidden_dim, codebook_size, codebook_dim, ema_decay, beta, ema_init=ema_init)
        self.decoder = Decoder(width, n_down, hidden_dim, n_resblocks, output=decoder_output)
        self.latent_width = self.encoder.latent_width

    @implements("40")
    def encode(self, u: torch.Tensor) -> torch.Tensor:
        """Eq. (40): ``z = E(u)`` followed by the VQ's input projection, ``(B, H, W', d)``."""
        with self._autocast(u):
            h = self.encoder(u)
        return self.vq.project(h.float())

    def encoder_output(self, u: torch.Tensor) -> torch.Tensor:
        """``E(u)`` before the VQ's input projection, ``(B, C, H, W')`` (C = 64 channels)."""
        with self._autocast(u):
            return self.encoder(u).float()

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised projected latent ``(B, H, W', d)`` → decoder output ``(B, 2, H, W)`` (not yet zero-padded)."""
        h = self.vq.unproject(z_q)
        with self._autocast(h):
            return self.decoder(h).float()

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, VQOutput]:
        """Spectrogram ``(B, 2, H, W)`` → (decoder output ``(B, 2, H, W)``, :class:`VQOutput`).

        With ``precision='bf16'`` the encoder and decoder run under bfloat16 autocast while
        the vector quantiser (distances, EMA) and everything after the decoder stay float32.
        """
        with self._autocast(u):
            h = self.encoder(u)
        vq = self.vq(h.float())
        with self._autocast(u):
            decoded = self.decoder(vq.h_q)
        return decoded.float(), vq

    def _autocast(self, like: torch.Tensor) -> torch.autocast:
        return torch.autocast(like.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def param_counts(self) -> dict[str, int]:
        """Parameters of the encoder, decoder, VQ projections and codebook entries (``K d``)."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        out = {
            "encoder": count(self.encoder),
            "decoder": count(self.decoder),
            "vq_projections": count(self.vq),
            "codebook": self.vq.codebook.numel(),
        }
        out["total"] = sum(out.values())
        return out


# ----------------------------------------------------------------------------------------
# Stage 1: both bands (Eq. 39-43, Algorithm 1)
# ----------------------------------------------------------------------------------------

LOSS_FIELDS = ("codebook_lf", "codebook_hf", "commit_lf", "commit_hf", "recons_time_lf", "recons_time_hf",
               "recons_freq_lf", "recons_freq_hf")


@dataclasses.dataclass
class Stage1Output:
    """One forward pass of :class:`Stage1`. Series are ``(B, L)``; spectrograms ``(B, H, W, 2)``
    (Table 1 layout, views of the conv-layout tensors); latents ``(B, H, W', d)``.

    One loss field per term of Eq. (73)-(74); ``total`` is their sum, the quantity
    Algorithm 1 descends (the codebook terms add value but no gradient).
    """

    x_lf: torch.Tensor
    x_hf: torch.Tensor
    xhat_lf: torch.Tensor
    xhat_hf: torch.Tensor
    u_lf: torch.Tensor
    u_hf: torch.Tensor
    uhat_lf: torch.Tensor
    uhat_hf: torch.Tensor
    z_lf: torch.Tensor
    z_hf: torch.Tensor
    zq_lf: torch.Tensor
    zq_hf: torch.Tensor
    indices_lf: torch.Tensor
    indices_hf: torch.Tensor
    perplexity_lf: torch.Tensor
    perplexity_hf: torch.Tensor
    codebook_lf: torch.Tensor
    codebook_hf: torch.Tensor
    commit_lf: torch.Tensor
    commit_hf: torch.Tensor
    recons_time_lf: torch.Tensor
    recons_time_hf: torch.Tensor
    recons_freq_lf: torch.Tensor
    recons_freq_hf: torch.Tensor
    total: torch.Tensor

    @property
    def xhat(self) -> torch.Tensor:
        """The reconstruction ``x_hat = x_hat_LF + x_hat_HF``."""
        return self.xhat_lf + self.xhat_hf

    def losses(self) -> dict[str, float]:
        """Every loss term and the perplexities as Python floats (for logs)."""
        names = LOSS_FIELDS + ("total", "perplexity_lf", "perplexity_hf")
        return {k: float(getattr(self, k).detach()) for k in names}


class Stage1(nn.Module):
    """The LF and HF VQ-VAEs of TimeVQVDM for series of one length (thesis 3.1, Algorithm 1).

    ``forward(x)`` is Algorithm 1's loss computation for a batch ``x`` ``(B, L)`` or
    ``(B, 1, L)``; :meth:`encode` gives the continuous projected latents that stage 2 models
    and :meth:`decode_latents` turns (generated) latents back into series.
    """

    def __init__(self, length: int, n_fft: int = 8, hop_length: int = 1, cutoff: int = 1,
                 hidden_dim: int = 64, n_resblocks: int = 4, codebook_size: int = 512,
                 codebook_dim: int = 4, ema_decay: float = 0.8, beta: float = 1.0,
                 lf_width_min: int = 16, hf_width_min: int = 64, hf_time_loss: str = "mse",
                 channels_last: bool = True, precision: str = "fp32", ema_init: str = "one",
                 width_rule: str = "thesis_text", decoder_output: str = "exact") -> None:
        super().__init__()
        if hf_time_loss not in ("mse", "l1"):
            raise ConfigError(f"hf_time_loss must be 'mse' or 'l1', got {hf_time_loss!r}")
        height = n_bins(n_fft)
        if not 1 <= cutoff < height:
            raise ConfigError(f"cutoff must lie in [1, {height - 1}] for n_fft={n_fft}, got {cutoff}")
        if length <= n_fft // 2:
            raise ConfigError(f"series length {length} is too short for n_fft={n_fft}")
        self.hparams: dict[str, Any] = dict(
            length=length, n_fft=n_fft, hop_length=hop_length, cutoff=cutoff, hidden_dim=hidden_dim,
            n_resblocks=n_resblocks, codebook_size=codebook_size, codebook_dim=codebook_dim,
            ema_decay=ema_decay, beta=beta, lf_width_min=lf_width_min, hf_width_min=hf_width_min,
            hf_time_loss=hf_time_loss, precision=precision, ema_init=ema_init, width_rule=width_rule,
            decoder_output=decoder_output)
        self.length, self.n_fft, self.hop_length, self.cutoff = length, n_fft, hop_length, cutoff
        self.height, self.width = height, n_frames(length, hop_length)
        self.hf_time_loss, self.channels_last = hf_time_loss, channels_last
        common = dict(hidden_dim=hidden_dim, n_resblocks=n_resblocks, codebook_size=codebook_size,
                      codebook_dim=codebook_dim, ema_decay=ema_decay, beta=beta, precision=precision,
                      ema_init=ema_init, decoder_output=decoder_output)
        if width_rule == "thesis_text":
            downs = {"lf": n_downsamples(length, lf_width_min, hop_length), "hf": n_downsamples(length, hf_width_min, hop_length)}
        elif width_rule == "thesis_code":
            downs = {b: n_downsamples_thesis_code(length, n_fft, b) for b in ("lf", "hf")}
        else:
            raise ConfigError(f"width_rule must be thesis_text or thesis_code, got {width_rule!r}")
        self.lf = VQVAE("lf", height, self.width, downs["lf"], **common)
        self.hf = VQVAE("hf", height, self.width, downs["hf"], **common)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg: Any, length: int, channels_last: bool = True, precision: str | None = None) -> "Stage1":
        """Build from a :class:`tvq.config.Config` for series of ``length`` samples.

        ``channels_last`` only changes the memory layout of the 2-D activations (faster
        convolutions on CPU). ``precision='bf16'`` runs encoder and decoder under bfloat16
        autocast (about twice as fast on CPUs with AVX-512 BF16 and on recent GPUs); when not
        given it is read from ``cfg.stage1_precision`` if the config has that field, else fp32.
        """
        if precision is None:
            precision = getattr(cfg, "stage1_precision", "fp32")
        return cls(length=length, n_fft=cfg.n_fft, hop_length=cfg.hop_length, cutoff=cfg.cutoff,
                   hidden_dim=cfg.hidden_dim, n_resblocks=cfg.n_resblocks, codebook_size=cfg.codebook_size,
                   codebook_dim=cfg.codebook_dim, ema_decay=cfg.ema_decay, beta=cfg.beta,
                   lf_width_min=cfg.lf_width_min, hf_width_min=cfg.hf_width_min,
                   hf_time_loss=cfg.hf_time_loss, channels_last=channels_last, precision=precision,
                   ema_init=getattr(cfg, "ema_init", "one"), width_rule=getattr(cfg, "width_rule", "thesis_text"),
                   decoder_output=getattr(cfg, "decoder_output", "exact"))

    # -- shapes -------------------------------------------------------------------------------
    def latent_shape(self, band: str) -> tuple[int, int, int]:
        """``(H, W', d)`` of a band's projected latent (Table 1 without the batch axis)."""
        vqvae = self._band(band)
        return (self.height, vqvae.latent_width, vqvae.vq.codebook_dim)

    def param_counts(self) -> dict[str, dict[str, int]]:
        """Per band: encoder, decoder, VQ projections, codebook entries and total (thesis Table 2)."""
        return {"lf": self.lf.param_counts(), "hf": self.hf.param_counts()}

    def _band(self, band: str) -> VQVAE:
        if band not in ("lf", "hf"):
            raise TvqError(f"band must be 'lf' or 'hf', got {band!r}")
        return self.lf if band == "lf" else self.hf

    def _series(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TvqError(f"expected a torch.Tensor of time series, got {type(x).__name__}")
        if x.dim() == 3 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 2 or x.shape[1] != self.length:
            raise TvqError(f"this stage 1 is built for series of length {self.length}: expected (B, {self.length}) "
                           f"or (B, 1, {self.length}), got {tuple(x.shape)}")
        return x

    def _conv_layout(self, u: torch.Tensor) -> torch.Tensor:
        return u.contiguous(memory_format=torch.channels_last) if self.channels_last else u

    def _to_time(self, u_conv: torch.Tensor) -> torch.Tensor:
        """Conv-layout spectrogram ``(B, 2, H, W)`` → series ``(B, L)`` by the ISTFT (Eq. 33)."""
        return istft(from_conv(u_conv.float()), self.length, self.n_fft, self.hop_length)

    # -- Eq. (39) --------------------------------------------------------------------------------
    @implements("39")
    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. (39): ``u_LF = P_LF(STFT(x))``, ``u_HF = P_HF(STFT(x))`` in conv layout ``(B, 2, H, W)``."""
        u = to_conv(stft(self._series(x), self.n_fft, self.hop_length))
        return p_lf(u, self.cutoff, dim=2), p_hf(u, self.cutoff, dim=2)

    # -- Eq. (42)-(43) ---------------------------------------------------------------------------
    @implements("42", "43")
    def reconstruct(self, band: str, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. (42)-(43): decoder output → ``(u_hat, x_hat)`` with ``u_hat = P(D(z_q))``, ``x_hat = ISTFT(u_hat)``.

        The band's zero-padding keeps a decoder from leaking into the other band's bins.
        """
        pad = p_lf if band == "lf" else p_hf
        u_hat = pad(decoded, self.cutoff, dim=2)
        return u_hat, self._to_time(u_hat)

    # -- Algorithm 1 -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Stage1Output:
        """Algorithm 1's forward pass: split, encode, quantise, decode, ISTFT and all loss terms."""
        u_lf, u_hf = self.split(x)
        x_lf, x_hf = self._to_time(u_lf), self._to_time(u_hf)
        out: dict[str, torch.Tensor] = {}
        for band, vqvae, u, x_band in (("lf", self.lf, u_lf, x_lf), ("hf", self.hf, u_hf, x_hf)):
            decoded, vq = vqvae(self._conv_layout(u))
            u_hat, x_hat = self.reconstruct(band, decoded)
            time_loss = self.hf_time_loss if band == "hf" else "mse"
            rec_time, rec_freq = reconstruction_loss(x_band, x_hat, u, u_hat, time_loss)
            out.update({
                f"x_{band}": x_band, f"xhat_{band}": x_hat,
                f"u_{band}": u.permute(0, 2, 3, 1), f"uhat_{band}": u_hat.permute(0, 2, 3, 1),
                f"z_{band}": vq.z, f"zq_{band}": vq.z_q, f"indices_{band}": vq.indices,
                f"perplexity_{band}": vq.perplexity,
                f"codebook_{band}": vq.codebook_loss, f"commit_{band}": vq.commit_loss,
                f"recons_time_{band}": rec_time, f"recons_freq_{band}": rec_freq,
            })
        out["total"] = sum(out[k] for k in LOSS_FIELDS)
        return Stage1Output(**out)

    # -- stage-2 interface -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, train_mode: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous projected latents ``(z_LF, z_HF)``, each ``(B, H, W', d)``, in eval mode.

        Batch norm uses its running statistics, so the result does not depend on the batch
        and can be computed once for stage 2. The module's train/eval mode is restored.
        ``train_mode=True`` encodes as the thesis code's stage 2 does: batch norm normalises
        with the batch's statistics and keeps updating its running ones.
        """
        was_training = self.training
        self.train(train_mode)
        try:
            u_lf, u_hf = self.split(x)
            return self.lf.encode(self._conv_layout(u_lf)), self.hf.encode(self._conv_layout(u_hf))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def encoder_output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both bands' encoder outputs before the 64 -> 4 projection, ``(B, C, H, W')`` each, in eval
        mode: what the thesis code's ``run_stage.py`` fits its latent scalers on."""
        was_training = self.training
        self.eval()
        try:
            u_lf, u_hf = self.split(x)
            return (self.lf.encoder_output(self._conv_layout(u_lf)),
                    self.hf.encoder_output(self._conv_layout(u_hf)))
        finally:
            self.train(was_training)

    def quantize(self, z_lf: torch.Tensor, z_hf: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                                      tuple[torch.Tensor, torch.Tensor]]:
        """Snap continuous latents to each band's codebook: ``((zq_LF, idx_LF), (zq_HF, idx_HF))``."""
        self._check_latent("lf", z_lf)
        self._check_latent("hf", z_hf)
        return self.lf.vq.quantize(z_lf), self.hf.vq.quantize(z_hf)

    @torch.no_grad()
    def decode_parts(self, z_lf: torch.Tensor, z_hf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents ``(B, H, W', d)`` → ``(x_LF, x_HF)``: quantise, project back, decode, P, ISTFT (eval mode)."""
        (zq_lf, _), (zq_hf, _) = self.quantize(z_lf, z_hf)
        was_training = self.training
        self.eval()
        try:
            parts = []
            for band, vqvae, z_q in (("lf", self.lf, zq_lf), ("hf", self.hf, zq_hf)):
                parts.append(self.reconstruct(band, vqvae.decode(z_q))[1])
            return parts[0], parts[1]
        finally:
            self.train(was_training)

    def decode_latents(self, z_lf: torch.Tensor, z_hf: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Latents → series ``x = x_LF + x_HF`` ``(B, L)``; ``length``, if given, must be this model's."""
        if length is not None and length != self.length:
            raise TvqError(f"this stage 1 decodes series of length {self.length}, not {length}")
        x_lf, x_hf = self.decode_parts(z_lf, z_hf)
        return x_lf + x_hf

    def _check_latent(self, band: str, z: torch.Tensor) -> None:
        expected = self.latent_shape(band)
        if not isinstance(z, torch.Tensor) or z.dim() != 4 or tuple(z.shape[1:]) != expected:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise TvqError(f"{band.upper()} latent must have shape (B, {', '.join(map(str, expected))}), got {got}")
        if not torch.isfinite(z).all():
            raise TvqError(f"{band.upper()} latent contains NaN or infinite values")
