"""Stage 1: latent widths, Table 1 shapes, Table 2 parameter counts, the vector quantiser
(nearest token, EMA update, straight-through gradients, Eq. 73), the reconstruction loss
(Eq. 74) and Algorithm 1's forward pass."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tvq.config import load_config
from tvq.errors import ConfigError, TvqError
from tvq.spectral import istft, from_conv, p_hf, p_lf, stft, to_conv
from tvq.vqvae import (LOSS_FIELDS, Decoder, Encoder, Stage1, VectorQuantizer, downsampled_width, n_downsamples,
                       reconstruction_loss, vq_loss)

TINY = dict(hidden_dim=8, n_resblocks=1, codebook_size=16)


@pytest.fixture
def one_thread():
    """Tiny tensors: a second intra-op thread only adds synchronisation on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(length: int, **kw) -> Stage1:
    return Stage1(length, **{**TINY, **kw})


# ----------------------------------------------------------------------------------------
# Latent widths (section 3.3)
# ----------------------------------------------------------------------------------------

def test_conv_arithmetic_halves_the_width(one_thread) -> None:
    """floor((w + 2 - 4) / 2) + 1 = floor(w / 2), checked with a real convolution."""
    conv = nn.Conv2d(1, 1, (3, 4), (1, 2), (1, 1))
    for w in range(2, 130):
        assert conv(torch.zeros(1, 1, 5, w)).shape[-1] == w // 2 == downsampled_width(w, 1)


@pytest.mark.parametrize("length,n_lf,w_lf,n_hf,w_hf", [
    (152, 3, 19, 1, 76),    # Wafer, thesis Table 1
    (192, 3, 24, 1, 96),    # section 3.3's example (its "84" for HF is a typo: floor(193 / 2) = 96)
    (140, 3, 17, 1, 70),    # ECG5000
    (96, 2, 24, 0, 97),     # ECG200: HF too short for 64..127 after one halving, so none
    (24, 0, 25, 0, 25),     # shortest UCR length: no down-sampling at all
    (2844, 7, 22, 5, 88),   # longest UCR length
])
def test_n_downsamples(length: int, n_lf: int, w_lf: int, n_hf: int, w_hf: int) -> None:
    assert n_downsamples(length, 16) == n_lf and downsampled_width(length + 1, n_lf) == w_lf
    assert n_downsamples(length, 64) == n_hf and downsampled_width(length + 1, n_hf) == w_hf


def test_width_rule_for_every_length() -> None:
    for length in range(1, 3001):
        for w_min in (16, 64):
            n = n_downsamples(length, w_min)
            w = downsampled_width(length + 1, n)
            if length + 1 >= w_min:
                assert w_min <= w < 2 * w_min, (length, w_min, w)
            else:
                assert n == 0


def test_width_rule_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        n_downsamples(0, 16)
    with pytest.raises(ConfigError):
        n_downsamples(100, 0)


def test_decoder_restores_every_width_exactly(one_thread) -> None:
    for width in list(range(2, 70)) + [153, 1001, 2845]:
        for w_min in (4, 16):
            n = n_downsamples(width - 1, w_min)
            enc, dec = Encoder(width, n, hidden_dim=4, n_resblocks=0), Decoder(width, n, hidden_dim=4, n_resblocks=0)
            h = enc(torch.zeros(1, 2, 5, width))
            assert h.shape == (1, 4, 5, enc.latent_width)
            assert dec(h).shape == (1, 2, 5, width), (width, n)


def test_thesis_code_decoder_has_one_more_layer_and_resamples_to_the_width(one_thread) -> None:
    """The code's decoder: no output padding, one extra 2 -> 2 transposed conv (about 2W columns),
    then bilinear interpolation with aligned corners back to W."""
    for width in (40, 150, 151, 153):
        n = n_downsamples(width - 1, 16)
        assert n >= 1
        enc = Encoder(width, n, hidden_dim=4, n_resblocks=0)
        exact = Decoder(width, n, hidden_dim=4, n_resblocks=0)
        code = Decoder(width, n, hidden_dim=4, n_resblocks=0, output="thesis_code")
        h = torch.randn(3, 4, 5, enc.latent_width)
        assert code(h).shape == exact(h).shape == (3, 2, 5, width)
        n_deconv = lambda d: sum(isinstance(m, nn.ConvTranspose2d) for m in d.modules())
        assert n_deconv(code) == n_deconv(exact) + 1
        assert all(m.output_padding == (0, 0) for m in code.modules() if isinstance(m, nn.ConvTranspose2d))
        extra = sum(p.numel() for p in code.parameters()) - sum(p.numel() for p in exact.parameters())
        assert extra == 2 * 2 * 3 * 4 + 2
        # Before the resampling the network is 2**(n + 1) times the latent width wide: the
        # interpolation is the last step, and what it computes is torch's bilinear resize.
        raw = code.net(h)
        assert raw.shape[-1] == enc.latent_width * 2 ** (n + 1)
        ref = torch.nn.functional.interpolate(raw, size=(5, width), mode="bilinear", align_corners=True)
        assert torch.equal(code(h), ref)
    # Without a down-sampling (series shorter than the band's minimum width) there is nothing to undo.
    assert not Decoder(9, 0, hidden_dim=4, n_resblocks=0, output="thesis_code").resample
    with pytest.raises(ConfigError, match="decoder_output"):
        Decoder(20, 1, output="nearest")


def test_decoder_output_option_reaches_both_bands() -> None:
    model = tiny(150, decoder_output="thesis_code")
    assert model.lf.decoder.resample and model.hf.decoder.resample
    out = model(torch.randn(2, 150))
    assert out.xhat_lf.shape == out.xhat_hf.shape == (2, 150) and torch.isfinite(out.total)
    cfg = load_config("thesis-code")
    assert cfg.decoder_output == "thesis_code"
    built = Stage1.from_config(cfg.replace(hidden_dim=8, n_resblocks=1), 150)
    assert built.hf.decoder.resample and built.hparams["decoder_output"] == "thesis_code"
    assert not tiny(150).lf.decoder.resample


# ----------------------------------------------------------------------------------------
# Table 1 and Table 2 (Wafer, L = 152, thesis configuration)
# ----------------------------------------------------------------------------------------

def test_table1_shapes_wafer() -> None:
    model = Stage1.from_config(load_config(), 152)
    x = torch.randn(3, 1, 152)
    out = model(x)
    assert out.x_lf.shape == out.x_hf.shape == out.xhat_lf.shape == out.xhat_hf.shape == (3, 152)
    for name in ("u_lf", "u_hf", "uhat_lf", "uhat_hf"):
        assert getattr(out, name).shape == (3, 5, 153, 2), name
    assert out.z_lf.shape == out.zq_lf.shape == (3, 5, 19, 4)
    assert out.z_hf.shape == out.zq_hf.shape == (3, 5, 76, 4)
    assert out.indices_lf.shape == (3, 5, 19) and out.indices_hf.shape == (3, 5, 76)
    assert out.indices_lf.dtype == torch.long
    z_lf, z_hf = model.encode(x)
    assert z_lf.shape == (3, 5, 19, 4) and z_hf.shape == (3, 5, 76, 4)
    # Diffusion latents (Table 1): frequency stacked on channels, 5 * 4 = 20.
    assert z_lf.permute(0, 1, 3, 2).reshape(3, 20, 19).shape == (3, 20, 19)
    assert model.latent_shape("lf") == (5, 19, 4) and model.latent_shape("hf") == (5, 76, 4)


def test_table2_parameter_counts_wafer() -> None:
    counts = Stage1.from_config(load_config(), 152).param_counts()
    print("stage-1 parameter counts (Wafer):", counts)
    lf, hf = counts["lf"], counts["hf"]
    # Thesis code: LF encoder 265,792 and decoder 265,140; our decoder lacks that code's extra
    # 2->2 transposed convolution (kernel (3, 4): 2*2*12 + 2 = 50 parameters).
    assert lf["encoder"] == 265_792
    assert lf["decoder"] == 265_140 - 50
    assert lf["vq_projections"] == (64 * 4 + 4) + (4 * 64 + 64)
    assert lf["codebook"] == 512 * 4
    assert abs(lf["total"] - 534_000) / 534_000 < 0.02
    assert abs(hf["total"] - 336_000) / 336_000 < 0.02


# ----------------------------------------------------------------------------------------
# Vector quantiser
# ----------------------------------------------------------------------------------------

def _identity_vq(codebook: list[list[float]], decay: float = 0.8) -> VectorQuantizer:
    """A VQ whose projections are the identity, so z is the input itself."""
    k, d = len(codebook), len(codebook[0])
    vq = VectorQuantizer(input_dim=d, codebook_size=k, codebook_dim=d, decay=decay)
    with torch.no_grad():
        for lin in (vq.project_in, vq.project_out):
            lin.weight.copy_(torch.eye(d))
            lin.bias.zero_()
        e = torch.tensor(codebook)
        vq.codebook.copy_(e)
        vq.embed_sum.copy_(e)
        vq.cluster_size.fill_(1.0)
    return vq


def test_codebook_shape() -> None:
    vq = VectorQuantizer(64, 512, 4)
    assert vq.codebook.shape == (512, 4)
    assert sum(p.numel() for p in vq.parameters()) == 580  # only the projections are trained by gradient


@pytest.mark.equation("12", "41")
def test_quantize_picks_nearest_token() -> None:
    vq = _identity_vq([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = torch.tensor([[[1.0, 2.0], [6.0, 1.0], [4.0, 5.1], [-3.0, 9.0]]])  # (1, 4, 2)
    z_q, idx = vq.quantize(z)
    assert idx.tolist() == [[0, 1, 2, 2]]
    assert torch.equal(z_q, vq.codebook[idx])


@pytest.mark.equation("12", "41")
def test_quantize_matches_brute_force() -> None:
    vq = VectorQuantizer(64, 512, 4, chunk=1000)  # several chunks
    z = torch.randn(3, 5, 400, 4)
    z_q, idx = vq.quantize(z)
    assert idx.shape == (3, 5, 400) and z_q.shape == z.shape
    d = ((z.double().reshape(-1, 1, 4) - vq.codebook.double()[None]) ** 2).sum(-1)
    best = d.min(1).values
    chosen = d.gather(1, idx.reshape(-1, 1))[:, 0]
    assert torch.allclose(chosen, best, rtol=0, atol=1e-5)
    assert (idx.reshape(-1) == d.argmin(1)).float().mean() > 0.999  # only float near-ties may differ


def test_ema_update_by_hand() -> None:
    """Appendix D on a worked example (decay 0.8, K = 3, d = 2)."""
    vq = _identity_vq([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], decay=0.8)
    vq.train()
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0]]).t().reshape(1, 2, 1, 3)  # (B, C, H, W)
    out = vq(h)
    # Token 0 gets (1, 0) and (0, 1); token 1 gets (9, 1); token 2 nothing: n = (2, 1, 0).
    assert out.indices.reshape(-1).tolist() == [0, 0, 1]
    # The look-up uses the codebook from before the update.
    assert torch.equal(out.z_q.detach().reshape(3, 2), torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]))
    # N = 0.8 * 1 + 0.2 * n
    assert torch.allclose(vq.cluster_size, torch.tensor([1.2, 1.0, 0.8]))
    # m = 0.8 * e + 0.2 * sum of assigned z
    m = torch.tensor([[0.2, 0.2], [9.8, 0.2], [0.0, 8.0]])
    assert torch.allclose(vq.embed_sum, m)
    # e = m / N with Laplace-smoothed N: (N + eps) / (sum N + K eps) * sum N, sum N = 3.
    eps = vq.eps
    n_smooth = (torch.tensor([1.2, 1.0, 0.8]) + eps) / (3.0 + 3 * eps) * 3.0
    assert torch.allclose(vq.codebook, m / n_smooth[:, None], rtol=1e-6, atol=0)
    # ... which is within 1e-4 of the unsmoothed formula of appendix D.
    assert torch.allclose(vq.codebook, torch.tensor([[1 / 6, 1 / 6], [9.8, 0.2], [0.0, 10.0]]), atol=1e-4)


def test_unused_token_stays_finite() -> None:
    vq = _identity_vq([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq.train()
    h = torch.tensor([[1.0, 0.0], [9.0, 1.0]]).t().reshape(1, 2, 1, 2)
    for _ in range(300):
        vq(h)
    assert torch.isfinite(vq.codebook).all()
    assert vq.cluster_size[2] < 1e-20 and vq.codebook[2].norm() < 10.0  # decays, never explodes


def test_no_codebook_update_in_eval_mode() -> None:
    vq = VectorQuantizer(8, 16, 4).eval()
    before = [b.clone() for b in vq.buffers()]
    vq(torch.randn(2, 8, 5, 7))
    assert all(torch.equal(a, b) for a, b in zip(before, vq.buffers()))


def test_straight_through_gradient() -> None:
    vq = VectorQuantizer(8, 16, 4).train()
    h = torch.randn(2, 8, 5, 7, requires_grad=True)
    out = vq(h)
    out.z.retain_grad()
    c = torch.randn_like(out.z_q)
    (out.z_q * c).sum().backward()
    assert torch.allclose(out.z.grad, c)  # d z_q / d z = identity
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_straight_through_reaches_the_encoder() -> None:
    model = tiny(40).train()
    out = model(torch.randn(4, 40))
    # Reconstruction terms only: the encoder can learn from them only through the estimator.
    (out.recons_time_lf + out.recons_time_hf).backward()
    for vqvae in (model.lf, model.hf):
        first = vqvae.encoder.net[0][0].weight
        assert first.grad is not None and first.grad.abs().sum() > 0
        assert vqvae.vq.project_in.weight.grad.abs().sum() > 0


@pytest.mark.equation("73")
def test_vq_loss_by_hand() -> None:
    z = torch.tensor([[1.0, 2.0]], requires_grad=True)
    z_q = torch.tensor([[0.0, 0.0]], requires_grad=True)
    codebook, commit = vq_loss(z, z_q, beta=0.5)
    assert math.isclose(codebook.item(), 2.5) and math.isclose(commit.item(), 1.25)
    commit.backward()
    assert torch.allclose(z.grad, torch.tensor([[0.5, 1.0]]))  # beta * 2 (z - z_q) / 2
    assert z_q.grad is None  # sg[z_q]
    z.grad = None
    codebook.backward()
    assert z.grad is None and torch.allclose(z_q.grad, torch.tensor([[-1.0, -2.0]]))  # sg[z]


@pytest.mark.equation("73")
def test_stage1_codebook_term_is_reported_without_gradient() -> None:
    out = tiny(40).train()(torch.randn(3, 40))
    for band in ("lf", "hf"):
        cb, cm = getattr(out, f"codebook_{band}"), getattr(out, f"commit_{band}")
        assert not cb.requires_grad and cm.requires_grad
        assert math.isclose(cb.item(), cm.item(), rel_tol=1e-5)  # beta = 1: same value
        expected = ((getattr(out, f"z_{band}") - getattr(out, f"zq_{band}")) ** 2).mean()
        # zq is straight-through (value = quantised), so this is ||z - z_q||^2 by value.
        assert math.isclose(cm.item(), expected.item(), rel_tol=1e-5)


# ----------------------------------------------------------------------------------------
# Eq. (74) and Algorithm 1
# ----------------------------------------------------------------------------------------

@pytest.mark.equation("74")
def test_reconstruction_loss_by_hand() -> None:
    x, x_hat = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    u, u_hat = torch.zeros(1, 2, 2, 1), torch.tensor([1.0, 0.0, 3.0, 0.0]).reshape(1, 2, 2, 1)
    t, f = reconstruction_loss(x, x_hat, u, u_hat, "mse")
    assert math.isclose(t.item(), 5 / 3, rel_tol=1e-6) and math.isclose(f.item(), 10 / 4, rel_tol=1e-6)
    t1, _ = reconstruction_loss(x, x_hat, u, u_hat, "l1")
    assert math.isclose(t1.item(), 1.0, rel_tol=1e-6)
    with pytest.raises(ConfigError):
        reconstruction_loss(x, x_hat, u, u_hat, "huber")


@pytest.mark.equation("39")
def test_split_is_eq39() -> None:
    model = tiny(33)
    x = torch.randn(2, 33)
    u_lf, u_hf = model.split(x)
    u = to_conv(stft(x))
    assert torch.equal(u_lf, p_lf(u, dim=2)) and torch.equal(u_hf, p_hf(u, dim=2))


@pytest.mark.equation("40", "42", "43", "74")
def test_forward_terms_are_consistent() -> None:
    model = tiny(57).eval()
    x = torch.randn(5, 57)
    out = model(x)
    u_lf, u_hf = model.split(x)
    # Eq. (40): the latent is the projected encoder output.
    assert torch.allclose(out.z_lf, model.lf.encode(u_lf), atol=1e-6)
    assert torch.allclose(out.z_hf, model.hf.encode(u_hf), atol=1e-6)
    # Eq. (42): the decoded LF spectrogram has no HF bins and vice versa.
    assert (out.uhat_lf[:, 1:] == 0).all() and (out.uhat_hf[:, 0] == 0).all()
    assert out.uhat_lf[:, 0].abs().sum() > 0 and out.uhat_hf[:, 1:].abs().sum() > 0
    # Eq. (43): time signals are the ISTFT of those spectrograms.
    for band in ("lf", "hf"):
        uhat = getattr(out, f"uhat_{band}").permute(0, 3, 1, 2)
        assert torch.allclose(getattr(out, f"xhat_{band}"), istft(from_conv(uhat), 57), atol=1e-5)
    # Targets: x_LF + x_HF = x.
    assert torch.allclose(out.x_lf + out.x_hf, x, atol=1e-5)
    # Eq. (74) terms and the total.
    assert math.isclose(out.recons_time_lf.item(), ((out.x_lf - out.xhat_lf) ** 2).mean().item(), rel_tol=1e-5)
    assert math.isclose(out.recons_time_hf.item(), ((out.x_hf - out.xhat_hf) ** 2).mean().item(), rel_tol=1e-5)
    assert math.isclose(out.recons_freq_hf.item(), ((out.u_hf - out.uhat_hf) ** 2).mean().item(), rel_tol=1e-5)
    assert math.isclose(out.total.item(), sum(getattr(out, k).item() for k in LOSS_FIELDS), rel_tol=1e-5)
    assert torch.allclose(out.xhat, out.xhat_lf + out.xhat_hf)
    assert set(out.losses()) >= set(LOSS_FIELDS) | {"total"}


def test_hf_time_loss_option() -> None:
    torch.manual_seed(1)
    model = tiny(40, hf_time_loss="l1").eval()
    out = model(torch.randn(3, 40))
    assert math.isclose(out.recons_time_hf.item(), (out.x_hf - out.xhat_hf).abs().mean().item(), rel_tol=1e-5)
    assert math.isclose(out.recons_time_lf.item(), ((out.x_lf - out.xhat_lf) ** 2).mean().item(), rel_tol=1e-5)


@pytest.mark.parametrize("length", [24, 25, 97, 151, 2844])
def test_shapes_short_long_and_odd_lengths(length: int) -> None:
    model = tiny(length)
    out = model(torch.randn(2, length))
    w = length + 1
    assert out.xhat_lf.shape == out.xhat_hf.shape == (2, length)
    assert out.uhat_lf.shape == out.u_hf.shape == (2, 5, w, 2)
    w_lf, w_hf = downsampled_width(w, n_downsamples(length, 16)), downsampled_width(w, n_downsamples(length, 64))
    assert out.z_lf.shape == (2, 5, w_lf, 4) and out.z_hf.shape == (2, 5, w_hf, 4)
    z_lf, z_hf = model.encode(torch.randn(2, 1, length))
    assert model.decode_latents(z_lf, z_hf, length).shape == (2, length)
    assert torch.isfinite(out.total)


def test_encode_is_eval_mode_and_batch_independent() -> None:
    model = tiny(40).train()
    x = torch.randn(6, 40)
    for _ in range(3):  # move the batch-norm running statistics and the codebook
        model(x * 2 + 1)
    buffers = [b.clone() for b in model.buffers()]
    z_all = model.encode(x)
    z_two = model.encode(x[:2])
    assert model.training  # mode restored
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))  # nothing updated
    assert torch.allclose(z_all[0][:2], z_two[0], atol=1e-6) and torch.allclose(z_all[1][:2], z_two[1], atol=1e-6)
    assert not z_all[0].requires_grad


def test_decode_latents_inverts_eval_forward() -> None:
    model = tiny(45)
    model(torch.randn(8, 45))  # one training step's EMA and batch-norm statistics
    model.eval()
    x = torch.randn(4, 45)
    out = model(x)
    x_lf, x_hf = model.decode_parts(*model.encode(x))
    assert torch.allclose(x_lf, out.xhat_lf, atol=1e-5) and torch.allclose(x_hf, out.xhat_hf, atol=1e-5)
    assert torch.allclose(model.decode_latents(*model.encode(x)), out.xhat, atol=1e-5)
    # Quantisation snaps: perturbing a latent by much less than the token spacing changes nothing.
    (zq_lf, idx_lf), (zq_hf, idx_hf) = model.quantize(*model.encode(x))
    assert torch.equal(idx_lf, out.indices_lf) and torch.equal(idx_hf, out.indices_hf)
    assert torch.allclose(model.decode_latents(zq_lf, zq_hf), out.xhat, atol=1e-5)


def test_channels_last_and_bf16_compute_the_same_function() -> None:
    ref = tiny(64, channels_last=False).eval()
    cl = tiny(64, channels_last=True).eval()
    cl.load_state_dict(ref.state_dict())
    x = torch.randn(4, 64)
    a, b = ref(x), cl(x)
    assert torch.allclose(a.xhat, b.xhat, atol=1e-5)
    bf = tiny(64, precision="bf16").eval()
    bf.load_state_dict(ref.state_dict())
    c = bf(x)
    assert c.xhat.dtype == torch.float32 and c.z_lf.dtype == torch.float32
    assert (c.xhat - a.xhat).abs().max() < 0.05 * a.xhat.abs().max()


def test_from_config_smoke_profile() -> None:
    cfg = load_config("smoke")
    model = Stage1.from_config(cfg, 96)
    assert model.lf.vq.codebook.shape == (cfg.codebook_size, cfg.codebook_dim)
    assert model.lf.encoder.net[0][0].out_channels == cfg.hidden_dim
    assert model.hparams["length"] == 96 and model.hparams["hf_time_loss"] == cfg.hf_time_loss


def test_overfits_one_batch(one_thread) -> None:
    """A small stage 1 drives Algorithm 1's loss down by more than 10x on one batch."""
    torch.manual_seed(0)
    length, b = 32, 8
    t = torch.linspace(0, 1, length)
    f, phase = 1 + 3 * torch.rand(b, 1), 2 * math.pi * torch.rand(b, 1)
    x = torch.sin(2 * math.pi * f * t + phase) + 0.3 * torch.sin(18 * math.pi * f * t)
    model = Stage1(length, hidden_dim=8, n_resblocks=1, codebook_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = model(x)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(out.total.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[0] / min(losses[-5:]) > 10, losses[::10]


def test_bad_input_raises_typed_errors() -> None:
    model = tiny(40)
    with pytest.raises(TvqError, match="length 40"):
        model(torch.randn(2, 41))
    with pytest.raises(TvqError, match="length 40"):
        model.encode(torch.randn(2, 2, 40))
    z_lf, z_hf = model.encode(torch.randn(2, 40))
    with pytest.raises(TvqError, match="LF latent"):
        model.decode_latents(z_lf[..., :3], z_hf)
    with pytest.raises(TvqError, match="HF latent"):
        model.decode_latents(z_lf, z_hf[:, :, :-1])
    with pytest.raises(TvqError, match="NaN"):
        model.decode_latents(z_lf * float("nan"), z_hf)
    with pytest.raises(TvqError, match="length"):
        model.decode_latents(z_lf, z_hf, length=41)
    with pytest.raises(ConfigError, match="hf_time_loss"):
        tiny(40, hf_time_loss="l2")
    with pytest.raises(ConfigError, match="precision"):
        tiny(40, precision="fp16")
    with pytest.raises(ConfigError, match="cutoff"):
        tiny(40, cutoff=5)
    with pytest.raises(ConfigError, match="too short"):
        tiny(3)
    with pytest.raises(ConfigError):
        VectorQuantizer(8, 0, 4)


def test_ema_init_zeros_is_the_thesis_codes_start_and_throws_unused_tokens_away():
    """With N_k = 0 at the start (the thesis code), the first update divides an unused token by
    about eps: it lands far from every latent. With one pseudo-count (tvq's default) it stays."""
    torch.manual_seed(0)
    z = torch.randn(64, 4) * 0.1
    norms = {}
    for init in ("one", "zeros"):
        torch.manual_seed(1)
        vq = VectorQuantizer(4, 16, 4, decay=0.8, ema_init=init)
        start = vq.codebook.clone()
        assert vq.cluster_size.sum().item() == (16.0 if init == "one" else 0.0)
        idx = torch.zeros(64, dtype=torch.long)  # every vector picks token 0: tokens 1..15 are unused
        vq.ema_update(z, idx)
        norms[init] = (vq.codebook[1:].norm(dim=1) / start[1:].norm(dim=1)).median().item()
    assert norms["one"] < 2.0
    assert norms["zeros"] > 1e3


def test_quantized_stage2_latents_are_codebook_tokens():
    from tvq.config import load_config
    from tvq.model import TimeVQVDM, from_diffusion_layout

    cfg = load_config("smoke", dict(stage2_latents="quantized"))
    model = TimeVQVDM.from_config(cfg, length=48, n_classes=2)
    x = torch.randn(6, 48)
    model.fit_scalers(x)
    z0_lf, _ = model.encode(x)
    z = from_diffusion_layout(model.scaler_lf.inverse(z0_lf), model.height)
    vq = model.stage1.lf.vq

    def gap_to_nearest_token(latent):
        return (latent - vq.lookup(vq.nearest(latent))).abs().amax(dim=-1)

    assert gap_to_nearest_token(z).max() < 1e-5  # every latent vector is a token (up to scaling round-off)
    cont = TimeVQVDM.from_config(load_config("smoke"), length=48, n_classes=2)
    cont.load_state_dict(model.state_dict())
    zc = from_diffusion_layout(cont.scaler_lf.inverse(cont.encode(x)[0]), cont.height)
    assert gap_to_nearest_token(zc).median() > 1e-2  # the continuous latents are not


@pytest.mark.parametrize("length, lf, hf", [(152, 19, 76), (150, 18, 75), (96, 24, 48), (24, 12, 12)])
def test_the_thesis_codes_width_rule(length, lf, hf):
    """Wafer and GunPoint get the same latent widths by either rule; ECG200's HF latent is 48 wide
    by the code's rule (97 by the text's); a short series still gets one down-sampling."""
    from tvq.vqvae import Stage1

    s1 = Stage1(length, hidden_dim=8, n_resblocks=1, codebook_size=16, width_rule="thesis_code")
    assert (s1.latent_shape("lf")[1], s1.latent_shape("hf")[1]) == (lf, hf)
