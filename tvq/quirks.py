"""Where the thesis's published code computes something other than its text says, and the tvq
option that selects either behaviour.

The :class:`tvq.config.Config` defaults and ``params/thesis-text.yaml`` follow the text (or fix
what we read as a bug). ``params/thesis.yaml`` takes the code's choice wherever the parity study
found the text's worse and the code's is not a bug (:func:`adopted` reads which off the profile);
``params/thesis-code.yaml`` takes every one. Each quirk the code has is listed here once, with the
field that switches to the code's behaviour and the value that does it, so that a variant
reproducing the code can be assembled from this list and the book can print it. ``option=None`` marks a difference that has no
option yet. Sources: reading martintufte/TimeVQ-VDM and running it (``../shared/docs/DESIGN.md``).

Which version: the run that produced the code's GunPoint figure is not among the stored commits (its
experiment file is missing). Where versions disagree, the list follows ``diffusion_model/vdm.py`` at
the newest commit, the only stored VDM with the LF -> HF condition and ``end_time`` that run used.
That file's ancestral step adds ``sigma_{s|t} delta``, Eq. (28) itself; only older versions write
``model_mean + model_variance * delta``. ``sample_noise=variance`` keeps that older step as an
option, and it is no longer listed as a quirk of the code that was run.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Quirk:
    what: str                 # the part of the model
    text: str                 # what the thesis's text specifies (the Config default)
    code: str                 # what the published code computes
    option: str | None        # the Config field that selects it, None while there is none
    code_value: Any = None    # the value of that field that reproduces the code


QUIRKS: tuple[Quirk, ...] = (
    Quirk("stage 1: HF time-domain loss", "MSE", "L1", "hf_time_loss", "l1"),
    Quirk("stage 1: AdamW weight decay", "1e-6 (appendix D)", "1e-5", "stage1_weight_decay", 1e-5),
    Quirk("stage 2: AdamW weight decay", "1e-6 (appendix D)", "1e-5", "stage2_weight_decay", 1e-5),
    Quirk("U-Net: padding of the ResNet blocks' convolutions", "replicate (as the code declares)",
          "zeros: its weight-standardised convolution calls F.conv1d, which ignores padding_mode",
          "unet_block_padding", "zeros"),
    Quirk("U-Net: middle attention", "q and k of unit norm over features (cosine similarity)",
          "unit norm over positions (normalize on the last axis of a (B, h, d, N) tensor)",
          "unet_attn_norm", "positions"),
    Quirk("sampling: rescaling strength", "gamma = 0.1 (Eq. 31; the value the thesis settles on in section 4.1)",
          "z / std(z) over the whole batch after every step, i.e. gamma = 1 (z_normalize=True in every stored "
          "diffusion_model/vdm.py)", "rescale", 1.0),
    Quirk("sampling: where the reverse process starts", "t_max = 0.99 (Table 3)",
          "t = 1, where float32 cos(pi/2) < 0 flips the first step", "t_max", 1.0),
    Quirk("stage 2: how the latents are encoded", "once, encoders in eval mode",
          "every batch, encoders in train mode (batch statistics; the same as eval mode when one batch holds "
          "the whole training set)", "stage2_encode", "per_batch_train"),
    Quirk("stage 2: what the latent scalers are fitted on", "the projected latents the priors model (section 3.3), "
          "so that those have mean 0 and std 1",
          "the 64-channel encoder output before the 64 -> 4 projection (run_stage.py), whose final batch norm "
          "puts S near (0, 1): the priors see the projected latents un-standardised", "latent_scaler",
          "encoder_output"),
    Quirk("stage 2: HF condition", "the scaled LF latent, interpolated to the HF width",
          "the unscaled LF latent through a 20 -> 20 convolution that is never trained", "hf_condition", "thesis_code"),
    Quirk("stage 1: decoder output width", "transposed convolutions with output padding to the exact width",
          "one more transposed convolution, then bilinear interpolation to the width", "decoder_output", "thesis_code"),
    Quirk("stage 1: EMA codebook's initial counts", "1 per code", "0 per code", "ema_init", "zeros"),
    Quirk("stage 2: what the priors model", "the continuous projected latents",
          "their nearest codebook tokens (every stored version of the code; the run one is not stored)",
          "stage2_latents", "quantized"),
    Quirk("stage 1: number of down-samplings", "latent widths 16-31 (LF) and 64-127 (HF)",
          "int(log2(round(L / 2 / w))) blocks, at least one, with w = 8 (LF), 32 (HF)", "width_rule", "thesis_code"),
    Quirk("stage 2: the codebooks while the priors train", "frozen after stage 1",
          "still EMA-updated (the frozen modules run in train mode and the codebook is a buffer), while "
          "sampling decodes with the stage-1 codebook; a fixed point when one batch holds the whole training "
          "set, as on GunPoint", None),
    Quirk("evaluation: generated series scored", "all that were drawn",
          "the first multiple of 256 at or above the test-set size", "score_series", "thesis_code"),
)


def thesis_code_overrides() -> dict[str, Any]:
    """The Config overrides that reproduce every quirk that has an option (not yet all of them)."""
    return {q.option: q.code_value for q in QUIRKS if q.option is not None}


def missing_options() -> list[str]:
    """The quirks with no option yet: what a full ``thesis-code`` variant still lacks."""
    return [q.what for q in QUIRKS if q.option is None]


def adopted(profile: str = "thesis") -> list[Quirk]:
    """The quirks whose option ``profile`` sets to the code's value: where that profile follows the
    thesis's code instead of its text."""
    from .config import load_config

    cfg = load_config(profile)
    return [q for q in QUIRKS if q.option is not None and getattr(cfg, q.option) == q.code_value]
