"""Time-frequency transforms and the low/high-frequency split (thesis section 2.4, Eq. 32-36).

A series ``x`` of length ``L`` becomes a complex spectrogram ``u = STFT(x)`` with
``H = n_fft // 2 + 1`` frequency bins and ``W = L + 1`` frames (hop 1, centred windows).
Two zero-padding operators keep the bins below / from the cut-off, so that
``u = u_LF + u_HF`` and, the ISTFT being linear, ``x = x_LF + x_HF``.

Settings follow the thesis (section 3.3) and its code: a rectangular window (``w_k = 1``),
``onesided`` spectra and ``center=True`` with reflect padding, all of which are
``torch.stft``'s behaviour when no window is given. With a rectangular window and hop 1
every sample is covered by ``n_fft`` frames, so the overlap-add inverse is exact.

Layouts. Three views of the same spectrogram appear in the code:

* complex ``(B, H, W)`` — what the transforms produce and consume;
* Table 1 ``(B, H, W, 2)`` — real and imaginary parts last (:func:`to_channels`);
* conv ``(B, 2, H, W)`` — real and imaginary parts as the two input channels of the 2-D
  encoder (:func:`to_conv`).
"""
from __future__ import annotations

import torch

from .equations import implements
from .errors import ConfigError, TvqError

__all__ = [
    "stft", "istft", "n_bins", "n_frames",
    "to_channels", "from_channels", "to_conv", "from_conv",
    "p_lf", "p_hf", "split_frequencies", "lf_hf_signals",
]


# ----------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------

def n_bins(n_fft: int = 8) -> int:
    """Height ``H`` of a one-sided spectrogram: ``n_fft // 2 + 1`` (5 for the thesis)."""
    return n_fft // 2 + 1


def n_frames(length: int, hop_length: int = 1) -> int:
    """Width ``W`` of a centred spectrogram: ``length // hop + 1`` (``L + 1`` for hop 1)."""
    return length // hop_length + 1


def _check_transform(n_fft: int, hop_length: int) -> None:
    if n_fft < 2 or hop_length < 1:
        raise ConfigError(f"STFT needs n_fft >= 2 and hop_length >= 1, got n_fft={n_fft}, hop_length={hop_length}")
    if hop_length > n_fft:
        # Frames would leave gaps between them and the inverse could not be exact.
        raise ConfigError(f"hop_length {hop_length} exceeds n_fft {n_fft}: the STFT would not be invertible")


def _as_batch_of_series(x: torch.Tensor) -> torch.Tensor:
    """Accept ``(B, L)`` or ``(B, 1, L)``; return ``(B, L)``."""
    if not isinstance(x, torch.Tensor):
        raise TvqError(f"expected a torch.Tensor of time series, got {type(x).__name__}")
    if x.dim() == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 2:
        raise TvqError(f"expected time series of shape (B, L) or (B, 1, L), got {tuple(x.shape)}")
    if x.is_complex():
        raise TvqError("expected real-valued time series, got a complex tensor")
    return x


# ----------------------------------------------------------------------------------------
# Eq. (32) and (33)
# ----------------------------------------------------------------------------------------

def _rect_window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """The thesis's window ``w_k = 1`` (passed explicitly: torch warns when it has to assume it)."""
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.ones(n_fft, dtype=dtype, device=like.device)


@implements("32")
def stft(x: torch.Tensor, n_fft: int = 8, hop_length: int = 1) -> torch.Tensor:
    """Eq. (32): short-time Fourier transform, complex ``(B, H, W)``.

    Rectangular window, one-sided, centred with reflect padding (so ``W = L + 1`` for hop 1).
    ``x`` is ``(B, L)`` or ``(B, 1, L)``; reflect padding needs ``L > n_fft // 2``.
    """
    _check_transform(n_fft, hop_length)
    x = _as_batch_of_series(x)
    if x.shape[-1] <= n_fft // 2:
        raise TvqError(f"series of length {x.shape[-1]} is too short for an STFT with n_fft={n_fft} (needs > {n_fft // 2})")
    return torch.stft(x, n_fft=n_fft, hop_length=hop_length, window=_rect_window(n_fft, x), center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)


@implements("33")
def istft(u: torch.Tensor, length: int, n_fft: int = 8, hop_length: int = 1) -> torch.Tensor:
    """Eq. (33): inverse STFT by overlap-add, complex ``(B, H, W)`` → real ``(B, length)``.

    The exact inverse of :func:`stft` with the same ``n_fft`` and ``hop_length``.
    """
    _check_transform(n_fft, hop_length)
    if not u.is_complex():
        raise TvqError("istft expects a complex spectrogram (B, H, W); convert with from_channels/from_conv first")
    if u.dim() != 3 or u.shape[1] != n_bins(n_fft):
        raise TvqError(f"istft expects a complex spectrogram of shape (B, {n_bins(n_fft)}, W), got {tuple(u.shape)}")
    if n_frames(length, hop_length) != u.shape[-1]:
        raise TvqError(f"a spectrogram of width {u.shape[-1]} cannot come from a series of length {length} "
                       f"(expected width {n_frames(length, hop_length)})")
    return torch.istft(u, n_fft=n_fft, hop_length=hop_length, window=_rect_window(n_fft, u), center=True,
                       normalized=False, onesided=True, length=length, return_complex=False)


# ----------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------

def to_channels(u: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, H, W)`` → real ``(B, H, W, 2)`` (Table 1 layout: real, imaginary last)."""
    if not u.is_complex():
        raise TvqError("to_channels expects a complex spectrogram")
    return torch.view_as_real(u)


def from_channels(u: torch.Tensor) -> torch.Tensor:
    """Real ``(B, H, W, 2)`` → complex ``(B, H, W)``; the inverse of :func:`to_channels`."""
    if u.is_complex() or u.shape[-1] != 2:
        raise TvqError(f"from_channels expects a real tensor with a last axis of 2, got {tuple(u.shape)}")
    return torch.complex(u[..., 0], u[..., 1])


def to_conv(u: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, H, W)`` → real ``(B, 2, H, W)``: real/imaginary as the encoder's input channels."""
    if not u.is_complex():
        raise TvqError("to_conv expects a complex spectrogram")
    return torch.stack((u.real, u.imag), dim=1)


def from_conv(u: torch.Tensor) -> torch.Tensor:
    """Real ``(B, 2, H, W)`` → complex ``(B, H, W)``; the inverse of :func:`to_conv`."""
    if u.is_complex() or u.dim() != 4 or u.shape[1] != 2:
        raise TvqError(f"from_conv expects a real tensor of shape (B, 2, H, W), got {tuple(u.shape)}")
    return torch.complex(u[:, 0], u[:, 1])


# ----------------------------------------------------------------------------------------
# Eq. (34)-(36): the zero-padding operators and the split
# ----------------------------------------------------------------------------------------

def _band_mask(u: torch.Tensor, cutoff: int, dim: int, low: bool) -> torch.Tensor:
    """0/1 mask broadcastable against ``u`` selecting bins ``< cutoff`` (low) or ``>= cutoff``."""
    n = u.shape[dim]
    if not 1 <= cutoff < n:
        raise ConfigError(f"cutoff must lie in [1, {n - 1}] for {n} frequency bins, got {cutoff}")
    idx = torch.arange(n, device=u.device)
    keep = idx < cutoff if low else idx >= cutoff
    shape = [1] * u.dim()
    shape[dim] = n
    dtype = u.real.dtype if u.is_complex() else u.dtype
    return keep.to(dtype).view(shape)


@implements("34")
def p_lf(u: torch.Tensor, cutoff: int = 1, dim: int = 1) -> torch.Tensor:
    """Eq. (34), P_LF: zero every frequency bin with index ``>= cutoff`` along ``dim``.

    ``cutoff = 1`` keeps the DC bin only, as in the thesis (its omega_0 = 1 counts bins
    from one). ``dim`` is the frequency axis: 1 for complex ``(B, H, W)`` and Table-1
    ``(B, H, W, 2)`` tensors, 2 for conv-layout ``(B, 2, H, W)`` tensors.
    Multiplying by a mask (not slicing in place) keeps the operator differentiable.
    """
    return u * _band_mask(u, cutoff, dim, low=True)


@implements("34")
def p_hf(u: torch.Tensor, cutoff: int = 1, dim: int = 1) -> torch.Tensor:
    """Eq. (34), P_HF: zero every frequency bin with index ``< cutoff`` along ``dim``."""
    return u * _band_mask(u, cutoff, dim, low=False)


@implements("35")
def split_frequencies(u: torch.Tensor, cutoff: int = 1, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (35): ``(u_LF, u_HF) = (P_LF(u), P_HF(u))``, so that ``u = u_LF + u_HF``."""
    return p_lf(u, cutoff, dim), p_hf(u, cutoff, dim)


@implements("36")
def lf_hf_signals(x: torch.Tensor, n_fft: int = 8, hop_length: int = 1,
                  cutoff: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (36): ``x_LF = ISTFT(P_LF(STFT(x)))`` and ``x_HF = ISTFT(P_HF(STFT(x)))``, each ``(B, L)``."""
    x = _as_batch_of_series(x)
    u_lf, u_hf = split_frequencies(stft(x, n_fft, hop_length), cutoff)
    length = x.shape[-1]
    return istft(u_lf, length, n_fft, hop_length), istft(u_hf, length, n_fft, hop_length)
