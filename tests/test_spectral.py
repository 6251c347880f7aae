"""STFT, ISTFT and the low/high-frequency split (thesis Eq. 32-36), checked against direct
NumPy evaluations of the equations, not against torch.stft itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tvq.errors import ConfigError, TvqError
from tvq.spectral import (from_channels, from_conv, istft, lf_hf_signals, n_bins, n_frames, p_hf, p_lf,
                          split_frequencies, stft, to_channels, to_conv)


def stft_by_hand(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Eq. (32) written out: reflect-pad by n_fft // 2, then a DFT of each rectangular frame."""
    pad = n_fft // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n_frames_ = (xp.shape[1] - n_fft) // hop + 1
    k = np.arange(n_fft)
    out = np.zeros((x.shape[0], n_fft // 2 + 1, n_frames_), dtype=complex)
    for m in range(n_frames_):
        frame = xp[:, m * hop:m * hop + n_fft]  # w_k = 1
        for w in range(n_fft // 2 + 1):
            out[:, w, m] = (frame * np.exp(-2j * np.pi * w * k / n_fft)).sum(axis=1)
    return out


def istft_by_hand(u: np.ndarray, length: int, n_fft: int, hop: int) -> np.ndarray:
    """Eq. (33) written out: inverse DFT of each frame, overlap-add, divide by how many
    frames cover each sample (the rectangular window's envelope), drop the padding."""
    pad = n_fft // 2
    frames = np.fft.irfft(u, n=n_fft, axis=1)  # (B, n_fft, W)
    total = n_fft + hop * (u.shape[2] - 1)
    acc = np.zeros((u.shape[0], total))
    cover = np.zeros(total)
    for m in range(u.shape[2]):
        acc[:, m * hop:m * hop + n_fft] += frames[:, :, m]
        cover[m * hop:m * hop + n_fft] += 1.0
    return (acc / cover)[:, pad:pad + length]


@pytest.mark.equation("32")
@pytest.mark.parametrize("length,n_fft,hop", [(152, 8, 1), (24, 8, 1), (37, 8, 1), (40, 4, 1), (41, 8, 2)])
def test_stft_matches_eq32(length: int, n_fft: int, hop: int) -> None:
    x = np.random.default_rng(length).normal(size=(3, length))
    u = stft(torch.from_numpy(x), n_fft, hop)
    assert u.shape == (3, n_bins(n_fft), n_frames(length, hop))
    np.testing.assert_allclose(u.numpy(), stft_by_hand(x, n_fft, hop), atol=1e-10)


def test_stft_shapes_thesis() -> None:
    """Section 3.3: H = 5 bins and W = L + 1 frames; (B, L) and (B, 1, L) both accepted."""
    for length in (24, 151, 152, 2844):
        x = torch.randn(2, length)
        assert stft(x).shape == (2, 5, length + 1)
        assert torch.equal(stft(x.unsqueeze(1)), stft(x))
    assert stft(torch.randn(2, 152)).dtype == torch.complex64


@pytest.mark.equation("33")
@pytest.mark.parametrize("length,n_fft,hop", [(152, 8, 1), (24, 8, 1), (37, 8, 1), (41, 8, 2)])
def test_istft_matches_eq33(length: int, n_fft: int, hop: int) -> None:
    rng = np.random.default_rng(0)
    # A spectrogram that is not the STFT of any series: the inverse is still overlap-add.
    u = rng.normal(size=(2, n_bins(n_fft), n_frames(length, hop))) + 1j * rng.normal(size=(2, n_bins(n_fft), n_frames(length, hop)))
    u[:, 0].imag = 0.0
    if n_fft % 2 == 0:
        u[:, -1].imag = 0.0  # the Nyquist bin of a real signal is real
    x = istft(torch.from_numpy(u), length, n_fft, hop)
    np.testing.assert_allclose(x.numpy(), istft_by_hand(u, length, n_fft, hop), atol=1e-10)


@pytest.mark.equation("32", "33")
@pytest.mark.parametrize("length", [5, 24, 97, 140, 152, 2844])
def test_round_trip(length: int) -> None:
    x = torch.randn(3, length, dtype=torch.float64)
    x_back = istft(stft(x), length)
    assert x_back.shape == (3, length)
    assert torch.allclose(x_back, x, atol=1e-12)
    x32 = x.float()
    assert torch.allclose(istft(stft(x32), length), x32, atol=1e-5)


def test_layouts_round_trip() -> None:
    u = stft(torch.randn(2, 152))
    ch = to_channels(u)
    assert ch.shape == (2, 5, 153, 2)  # Table 1
    assert torch.equal(from_channels(ch), u)
    cv = to_conv(u)
    assert cv.shape == (2, 2, 5, 153)
    assert torch.equal(cv[:, 0], u.real) and torch.equal(cv[:, 1], u.imag)
    assert torch.equal(from_conv(cv), u)


@pytest.mark.equation("34")
def test_zero_padding_operators() -> None:
    u = stft(torch.randn(4, 60))
    lf, hf = p_lf(u), p_hf(u)
    # cutoff 1: the DC bin only is low frequency (the thesis's omega_0 = 1 counts from one).
    assert torch.equal(lf[:, 0], u[:, 0]) and (lf[:, 1:] == 0).all()
    assert (hf[:, 0] == 0).all() and torch.equal(hf[:, 1:], u[:, 1:])
    lf2, hf2 = p_lf(u, cutoff=2), p_hf(u, cutoff=2)
    assert torch.equal(lf2[:, :2], u[:, :2]) and (lf2[:, 2:] == 0).all()
    assert (hf2[:, :2] == 0).all() and torch.equal(hf2[:, 2:], u[:, 2:])
    # The same operators on the conv layout (B, 2, H, W): frequency axis 2.
    cv = to_conv(u)
    assert torch.equal(p_lf(cv, dim=2), to_conv(lf)) and torch.equal(p_hf(cv, dim=2), to_conv(hf))
    # Table-1 layout (B, H, W, 2): frequency axis 1.
    assert torch.equal(p_lf(to_channels(u)), to_channels(lf))


@pytest.mark.equation("34")
def test_zero_padding_is_differentiable() -> None:
    v = torch.randn(2, 2, 5, 9, requires_grad=True)
    p_lf(v, dim=2).sum().backward()
    assert torch.equal(v.grad[:, :, 0], torch.ones(2, 2, 9)) and (v.grad[:, :, 1:] == 0).all()


@pytest.mark.equation("35")
def test_split_sums_to_spectrogram() -> None:
    u = stft(torch.randn(3, 77))
    for cutoff in (1, 2, 4):
        u_lf, u_hf = split_frequencies(u, cutoff)
        assert torch.equal(u_lf + u_hf, u)
        assert ((u_lf != 0) & (u_hf != 0)).sum() == 0  # disjoint supports


@pytest.mark.equation("36")
@pytest.mark.parametrize("length", [24, 97, 152])
def test_lf_plus_hf_is_x(length: int) -> None:
    x = torch.randn(4, length, dtype=torch.float64)
    x_lf, x_hf = lf_hf_signals(x)
    assert x_lf.shape == x_hf.shape == (4, length)
    assert torch.allclose(x_lf + x_hf, x, atol=1e-12)
    x32 = x.float()
    a, b = lf_hf_signals(x32.unsqueeze(1))
    assert torch.allclose(a + b, x32, atol=1e-5)
    assert x_hf.abs().max() > 0.1 and x_lf.abs().max() > 0.01  # both bands carry something


@pytest.mark.equation("36")
def test_split_of_pure_signals() -> None:
    """A constant lives in the DC bin only; the Nyquist alternation has no DC component."""
    const = torch.full((1, 40), 2.5, dtype=torch.float64)
    c_lf, c_hf = lf_hf_signals(const)
    assert torch.allclose(c_lf, const, atol=1e-12) and c_hf.abs().max() < 1e-12
    alt = torch.tensor([[(-1.0) ** n for n in range(40)]], dtype=torch.float64)
    a_lf, a_hf = lf_hf_signals(alt)
    assert a_lf.abs().max() < 1e-12 and torch.allclose(a_hf, alt, atol=1e-12)


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(TvqError, match="shape"):
        stft(torch.randn(2, 3, 40))
    with pytest.raises(TvqError, match="too short"):
        stft(torch.randn(2, 4))
    with pytest.raises(TvqError, match="complex"):
        stft(torch.randn(2, 40, dtype=torch.complex64))
    with pytest.raises(TvqError, match="complex"):
        istft(torch.randn(2, 5, 41), 40)
    with pytest.raises(TvqError, match="width"):
        istft(stft(torch.randn(2, 40)), 41)
    with pytest.raises(ConfigError):
        stft(torch.randn(2, 40), n_fft=8, hop_length=9)
    with pytest.raises(ConfigError, match="cutoff"):
        p_lf(stft(torch.randn(2, 40)), cutoff=5)
    with pytest.raises(ConfigError, match="cutoff"):
        p_hf(stft(torch.randn(2, 40)), cutoff=0)
    with pytest.raises(TvqError):
        from_conv(torch.randn(2, 3, 5, 9))
