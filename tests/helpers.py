"""Small helpers shared by several test files."""
from __future__ import annotations

import io
import zipfile


def zip_of(members: dict[str, str | bytes]) -> bytes:
    """A zip archive, in memory, of ``{member name: text or bytes}``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tiny_model_config(**overrides):
    """The smoke profile with the smallest networks: a full train-and-sample pass in seconds."""
    from tvq.config import load_config

    base = dict(stage1_epochs=2, stage2_epochs=2, hidden_dim=8, codebook_size=16, n_resblocks=1,
                unet_lf_channels=[8, 16], unet_hf_channels=[8, 16], time_embed_dim=16, class_embed_dim=16,
                attn_heads=2, attn_head_dim=4, stage1_batch_size=32, stage2_batch_size=32, steps_uncond=3,
                steps_cond=3, n_samples=8, sample_batch_size=8)
    base.update(overrides)
    return load_config("smoke", base)


def retrain_to_other_weights(monkeypatch) -> None:
    """What a new session on another CPU meets once its cache is lost: the same configuration trains
    to other weights. Here: the same training, then one weight of the LF prior nudged."""
    import torch

    import tvq.train

    real_train = tvq.train.train

    def other_rounding(*args, **kwargs):
        model = real_train(*args, **kwargs)
        with torch.no_grad():
            next(model.unet_lf.parameters()).add_(1e-3)
        return model
    monkeypatch.setattr(tvq.train, "train", other_rounding)
