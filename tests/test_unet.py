"""The 1-D U-Net: thesis parameter counts (Table 2), shapes, conditioning, and that it can learn."""
from __future__ import annotations

import pytest
import torch

from tvq import diffusion as D
from tvq.config import load_config
from tvq.errors import ConfigError
import torch.nn.functional as F

from tvq.unet import Attention, UNet1D, WSConv1d, count_parameters, resize_condition

TINY = dict(channels=(8, 16), time_embed_dim=16, class_embed_dim=16, attn_heads=2, attn_head_dim=8)


def tiny(cond_channels: int = 0, **kw) -> UNet1D:
    return UNet1D(4, 3, **{**TINY, **kw}, cond_channels=cond_channels)


def test_weight_standardised_conv_and_its_no_grad_cache():
    conv = WSConv1d(6, 10, kernel_size=3, padding=1, padding_mode="replicate")
    x = torch.randn(2, 6, 7)
    w = conv.weight.detach()
    w_hat = (w - w.mean(dim=(1, 2), keepdim=True)) / torch.sqrt(w.var(dim=(1, 2), unbiased=False, keepdim=True) + 1e-5)
    ref = F.conv1d(F.pad(x, (1, 1), mode="replicate"), w_hat, conv.bias.detach())
    torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        before = conv(x)
        conv.weight[0].mul_(-1.0)                       # an optimizer step or load_state_dict: cache must not be stale
        after = conv(x)
    assert not torch.allclose(before[:, 0], after[:, 0])
    torch.testing.assert_close(after[:, 1:], before[:, 1:])
    conv(x).sum().backward()                            # with gradients: no cache, the kernel is differentiated
    assert conv.weight.grad is not None


@pytest.mark.parametrize("norm", ["features", "positions"])
def test_middle_attention_against_a_direct_computation(norm):
    torch.manual_seed(0)
    att = Attention(8, heads=2, dim_head=4, scale=10.0, norm=norm)
    x = torch.randn(3, 8, 5)
    q, k, v = (u.reshape(3, 2, 4, 5) for u in att.to_qkv(x).chunk(3, dim=1))    # (b, h, d, n)
    axis = 2 if norm == "features" else 3
    q, k = q / q.norm(dim=axis, keepdim=True), k / k.norm(dim=axis, keepdim=True)
    weights = (10.0 * torch.einsum("bhdi,bhdj->bhij", q, k)).softmax(dim=-1)
    ref = att.to_out(torch.einsum("bhij,bhdj->bhdi", weights, v).reshape(3, 8, 5))
    torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-6)
    if norm == "features":                                     # logits are 10 x cosine similarity: |logit| <= 10
        assert torch.einsum("bhdi,bhdj->bhij", q, k).abs().max() <= 1 + 1e-6


def test_thesis_parameter_counts_and_shapes_for_wafer():
    """Table 2 (Wafer: 2 classes, latents (B, 20, 19) and (B, 20, 76)): 4,123,777 and 3,971,309."""
    cfg = load_config("thesis")
    lf = UNet1D.from_config(cfg, in_channels=20, n_classes=2, kind="lf")
    hf = UNet1D.from_config(cfg, in_channels=20, n_classes=2, cond_channels=20, kind="hf")
    assert count_parameters(lf) == 4_123_777
    assert count_parameters(hf) == 3_971_309
    with torch.inference_mode():
        z_lf = torch.randn(2, 20, 19)
        out_lf = lf(z_lf, torch.rand(2), torch.tensor([0, 2]))
        out_hf = hf(torch.randn(2, 20, 76), torch.rand(2), torch.tensor([1, 0]), cond=z_lf)
    assert out_lf.shape == (2, 20, 19) and out_hf.shape == (2, 20, 76)
    # the thesis's level widths: LF middle 19 -> 9 -> 4 -> 2, HF middle 76 -> 38 -> 19 -> 9 -> 4
    assert len(lf.downs) == 3 and len(hf.downs) == 4


def test_trained_lf_projection_adds_one_conv_and_gets_gradients():
    base = tiny(cond_channels=3)
    proj = tiny(cond_channels=3, cond_projection=True)
    assert count_parameters(proj) - count_parameters(base) == 3 * 3 * 3 + 3
    out = proj(torch.randn(2, 4, 11), torch.rand(2), None, cond=torch.randn(2, 3, 5))
    out.square().mean().backward()
    assert proj.cond_proj.weight.grad is not None and proj.cond_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 17, 19, 33, 70, 76])
def test_any_length_round_trips(length):
    lf = tiny()
    hf = UNet1D(4, 3, **{**TINY, "channels": (8, 8, 16, 16)}, cond_channels=2)
    with torch.inference_mode():
        z = torch.randn(2, 4, length)
        assert lf(z, torch.rand(2)).shape == z.shape
        cond = torch.randn(2, 2, max(1, length // 4))
        assert hf(z, torch.rand(2), torch.tensor([0, 3]), cond=cond).shape == z.shape


def test_resize_condition_hits_the_target_width_and_keeps_constants():
    c = torch.randn(3, 5, 19)
    for width in (19, 38, 76, 70, 20, 9):
        assert resize_condition(c, width).shape == (3, 5, width)
    const = torch.full((1, 2, 7), 2.5)
    torch.testing.assert_close(resize_condition(const, 30), torch.full((1, 2, 30), 2.5))


def test_time_input_is_not_modified_in_place_and_matters():
    m = tiny().eval()
    z = torch.randn(3, 4, 9)
    t = torch.tensor([0.1, 0.5, 0.9])
    t_copy = t.clone()
    with torch.inference_mode():
        a = m(z, t)
        b = m(z, t.flip(0))
    assert torch.equal(t, t_copy)                         # the thesis code multiplies t by 1000 in place
    assert not torch.allclose(a, b)
    torch.testing.assert_close(m(z, 0.3), m(z, torch.full((3,), 0.3)), rtol=1e-5, atol=1e-6)   # scalar t broadcasts


def test_bf16_autocast_computes_the_same_function():
    """Norm epsilons follow the weights' dtype, so autocast changes only the rounding (~1 % here;
    with epsilons switched by the activations' dtype, as in the thesis code, it is ~11 %)."""
    m = UNet1D.from_config(load_config("thesis"), in_channels=20, n_classes=2).eval()
    z, t = torch.randn(4, 20, 19), torch.rand(4)
    with torch.inference_mode():
        ref = m(z, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(z, t).float()
    assert ((low - ref).norm() / ref.norm()).item() < 0.03


def test_missing_labels_mean_the_null_class_and_labels_matter():
    m = tiny().eval()
    z, t = torch.randn(3, 4, 9), torch.rand(3)
    with torch.inference_mode():
        none = m(z, t, None)
        null = m(z, t, torch.full((3,), m.null_label))
        some = m(z, t, torch.tensor([0, 1, 2]))
    assert m.null_label == 3
    torch.testing.assert_close(none, null)
    assert not torch.allclose(none, some)


def test_shared_time_embedding_shortcut_equals_per_sample_embedding():
    """A broadcast t (sampling) computes the block projections once per class; results must not change."""
    m = tiny().eval()
    z = torch.randn(5, 4, 9)
    labels = torch.tensor([0, 3, 2, 2, 1])
    with torch.inference_mode():
        for lab in (None, labels):
            shared = m(z, torch.tensor(0.37).expand(5), lab)
            full = m(z, torch.full((5,), 0.37), lab)
            torch.testing.assert_close(shared, full, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m(z, torch.tensor([0.37]), labels), full, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_config_errors():
    m = tiny()
    hf = tiny(cond_channels=2)
    z, t = torch.randn(2, 4, 9), torch.rand(2)
    with pytest.raises(ConfigError, match="z_t"):
        m(torch.randn(2, 5, 9), t)
    with pytest.raises(ConfigError, match="t must be"):
        m(z, torch.rand(3))
    with pytest.raises(ConfigError, match="class_labels"):
        m(z, t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ConfigError, match="cond is missing"):
        hf(z, t)
    with pytest.raises(ConfigError, match="takes no input condition"):
        m(z, t, None, torch.randn(2, 2, 3))
    with pytest.raises(ConfigError, match="divisible"):
        UNet1D(4, 2, channels=(6, 12))
    with pytest.raises(ConfigError, match="kind"):
        UNet1D.from_config(load_config("smoke"), in_channels=4, n_classes=2, kind="mf")


def test_from_config_reads_the_smoke_profile():
    cfg = load_config("smoke")
    m = UNet1D.from_config(cfg, in_channels=20, n_classes=3, cond_channels=20)
    assert m.channels == tuple(cfg.unet_hf_channels) and m.cond_channels == 20
    assert m.class_embed.num_embeddings == 4 and m.class_embed.embedding_dim == cfg.class_embed_dim


def test_tiny_unet_overfits_one_batch_with_the_diffusion_loss():
    """Fixed (z0, t, eps) batch: the ε-MSE must fall at least 10× — the model and loss can learn."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = UNet1D(4, 2, channels=(16, 32), time_embed_dim=32, class_embed_dim=32, attn_heads=2, attn_head_dim=8)
    z0 = torch.randn(8, 4, 12, generator=g)
    eps = torch.randn(8, 4, 12, generator=g)
    t = D.quasi_uniform_times(8, g)
    y = torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = D.diffusion_loss(model, z0, class_labels=y, t=t, eps=eps)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = D.diffusion_loss(model, z0, class_labels=y, t=t, eps=eps)["loss"].item()
    assert final < first / 10, (first, final)


def test_block_padding_zeros_is_what_the_thesis_code_computes_and_replicate_differs():
    """The thesis code declares replicate padding but its weight-standardised conv calls F.conv1d,
    which zero-pads; ``unet_block_padding: zeros`` reproduces that."""
    import torch
    import torch.nn.functional as F

    from tvq.unet import Block

    torch.manual_seed(0)
    x = torch.randn(2, 8, 9) + 3.0  # an offset makes the two paddings differ at the edges
    zeros, rep = Block(8, 8, 4, padding="zeros"), Block(8, 8, 4, padding="replicate")
    rep.load_state_dict(zeros.state_dict())
    by_hand = F.conv1d(x, zeros.proj.standardized_weight(1e-5), zeros.proj.bias, padding=1)  # zero padding
    torch.testing.assert_close(zeros.proj(x), by_hand, rtol=1e-4, atol=1e-4)
    assert (zeros.proj(x) - rep.proj(x))[..., [0, -1]].abs().max() > 1e-2  # the edges differ
    torch.testing.assert_close(zeros.proj(x)[..., 1:-1], rep.proj(x)[..., 1:-1])


def test_the_padding_option_leaves_existing_fingerprints_alone():
    from tvq.config import load_config
    from tvq.data import load_ucr
    from tvq.train import training_fingerprint

    ds = load_ucr("ECG200")
    cfg = load_config("thesis-text", dataset="ECG200")  # the text's model: the options at their old values
    base = training_fingerprint(cfg, ds)
    assert training_fingerprint(cfg.replace(unet_block_padding="zeros"), ds) != base
    assert training_fingerprint(cfg.replace(unet_attn_norm="positions"), ds) != base
    # what the fingerprint was before the options existed: the same dict without their keys
    import hashlib
    import json

    from tvq.train import _ADDED_LATER, _NOT_TRAINING

    h = hashlib.sha256()
    later = set(_ADDED_LATER)
    h.update(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in _NOT_TRAINING | later},
                        sort_keys=True).encode())
    for a in (ds.x_train, ds.y_train):
        import numpy as np

        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest()[:16] == base


def test_hf_condition_thesis_code_unscales_and_never_trains_its_projection():
    import torch

    from tvq.config import load_config
    from tvq.model import TimeVQVDM

    cfg = load_config("smoke", dict(hf_condition="thesis_code"))
    model = TimeVQVDM.from_config(cfg, length=48, n_classes=2)
    x = torch.randn(8, 48)
    model.fit_scalers(x)
    unet = model.unet_hf
    assert unet.cond_std.item() == model.scaler_lf.std.item() and unet.cond_mean.item() == model.scaler_lf.mean.item()
    assert all(p not in set(model.stage2_parameters()) for p in unet.cond_proj.parameters())
    before = unet.cond_proj.weight.clone()
    z0_lf, z0_hf = model.encode(x)
    opt = torch.optim.AdamW(model.stage2_parameters(), lr=1e-2)
    model.stage2_loss(z0_lf, z0_hf, torch.zeros(8, dtype=torch.long))["total"].backward()
    opt.step()
    assert torch.equal(unet.cond_proj.weight, before)  # frozen, as in the thesis code
    # the default keeps the thesis's parameter counts: no projection at all
    plain = TimeVQVDM.from_config(load_config("smoke"), length=48, n_classes=2)
    assert plain.unet_hf.cond_proj is None
    extra = sum(p.numel() for p in unet.parameters()) - sum(p.numel() for p in plain.unet_hf.parameters())
    c = model.channels
    assert extra == c * c * 3 + c
