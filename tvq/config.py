"""One typed configuration for the CLI, papermill chapters and tests.

``params/<profile>.yaml`` files are flat mappings of the fields below (they double as
papermill parameter files). :func:`load_config` reads one, applies ``key=value``
overrides and validates every value: an unknown key or a wrong type is a
:class:`~tvq.errors.ConfigError` with one clear line.

Architecture numbers that depend on the dataset (how many stride-2 down-samplings give
the latent widths) are derived from the data, not configured.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"


# What each field affects, declared once beside it (``_field(..., role=...)``); the training
# fingerprint, the phase keys of a stored protocol run and the budget label are derived from it.
TRAINING = "training"        # changes the trained weights: part of the training fingerprint
SAMPLING = "sampling"        # changes what is drawn from a trained model
SCORING = "scoring"          # changes how draws are scored
PROVENANCE = "provenance"    # names where a run came from (profile, data folder); changes no number
BOOKKEEPING = "bookkeeping"  # where and how fast it runs; changes no result
ROLES = (TRAINING, SAMPLING, SCORING, PROVENANCE, BOOKKEEPING)
COMPILE_MODES = ("none", "default", "reduce-overhead")  # the choices of ``compile`` (tvq.device.compile_modules)
PRECISIONS = ("fp32", "bf16")   # what a precision field holds once ``auto`` is resolved
# The precision of each phase, and the one key that sets them all (``precision=fp32|bf16|auto``); a
# phase's own key, where given, wins over it. ``sample_bf16`` is a bool (True = bf16).
PRECISION_PHASES = {"stage1_precision": "stage 1", "stage2_precision": "stage 2", "sample_bf16": "sampling",
                    "tstr_precision": "TSTR"}
PRECISION_FIELDS = tuple(PRECISION_PHASES)
PRECISION_ALIAS = "precision"
_MISSING = object()


def _field(default: Any = _MISSING, *, role: str, budget: bool = True, factory: Any = None):
    """A Config field with its role; ``budget=False``: not part of the budget label (the dataset, the
    seed, a batch size that only changes speed, the evaluator, which the chapters name on its own)."""
    meta = {"role": role, "budget": budget and role in (TRAINING, SAMPLING, SCORING)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class Config:
    # -- what and where ---------------------------------------------------------------
    dataset: str = _field("ECG200", role=TRAINING, budget=False)          # UCR dataset name
    profile: str = _field("custom", role=PROVENANCE)          # name of the params file this came from
    seed: int = _field(0, role=TRAINING, budget=False)
    device: str = _field("auto", role=BOOKKEEPING)             # auto | cpu | cuda | cuda:N
    threads: int = _field(0, role=BOOKKEEPING)                 # torch CPU threads (0 = torch's default)
    # torch.compile for the networks that train and sample (stage 1, the two U-Nets, TSTR's FCN):
    # none (eager, the default everywhere), default (inductor kernels) or reduce-overhead (the same,
    # replayed as CUDA graphs on a GPU: for steps that are launch-bound, as small batches are on an
    # H200). Bookkeeping like ``device``: fused kernels round differently, no more than a GPU does.
    compile: str = _field("none", role=BOOKKEEPING)
    data_dir: str = _field("", role=PROVENANCE)               # local UCRArchive_2018 folder ("" = $TVQ_UCR_DIR or none)
    scaling: str = _field("thesis", role=TRAINING)          # thesis (one global mean/std of train) | none

    # -- spectral split (Eq. 32-36, section 3.3) ------------------------------------
    n_fft: int = _field(8, role=TRAINING)
    hop_length: int = _field(1, role=TRAINING)
    cutoff: int = _field(1, role=TRAINING)                  # omega_0: LF keeps frequency bins with index < cutoff

    # -- stage 1: VQ-VAEs (section 2.5.1, 3.3, appendix D) --------------------------------
    stage1_epochs: int = _field(2000, role=TRAINING)
    stage1_batch_size: int = _field(128, role=TRAINING)
    stage1_lr: float = _field(1e-3, role=TRAINING)
    stage1_weight_decay: float = _field(1e-6, role=TRAINING)
    hidden_dim: int = _field(64, role=TRAINING)             # encoder/decoder channels
    n_resblocks: int = _field(4, role=TRAINING)
    codebook_size: int = _field(512, role=TRAINING)         # K
    codebook_dim: int = _field(4, role=TRAINING)            # d
    ema_decay: float = _field(0.8, role=TRAINING)
    ema_init: str = _field("one", role=TRAINING)            # one (N_k = 1 per token) | zeros (the thesis code's N_k = 0)
    beta: float = _field(1.0, role=TRAINING)                # commitment weight
    lf_width_min: int = _field(16, role=TRAINING)           # LF latent width in [16, 31]
    hf_width_min: int = _field(64, role=TRAINING)           # HF latent width in [64, 127]
    width_rule: str = _field("thesis_text", role=TRAINING)  # thesis_text (the two ranges above) | thesis_code (its rounding rule)
    hf_time_loss: str = _field("mse", role=TRAINING)        # mse (thesis text) | l1 (thesis code)
    decoder_output: str = _field("exact", role=TRAINING)    # exact (output padding) | thesis_code (extra deconv + bilinear)
    # Arithmetic precision of each phase: fp32, or bf16 autocast (matrix multiplies and convolutions in
    # bfloat16, losses, norms and the sampler's arithmetic in float32). ``auto`` is resolved when the
    # config is built: bf16 where the device has bfloat16 units (tvq.device.bf16_units), else fp32.
    # ``precision=...`` sets all four at once (PRECISION_FIELDS). Not part of the budget label: the
    # results chapters name an entry's precision on its own (tvq.results.precision_of).
    stage1_precision: str = _field("fp32", role=TRAINING, budget=False)   # about 1.9x faster a step with AVX512-BF16

    # -- stage 2: latent diffusion (section 2.3, 3.3, appendix D) --------------------------
    stage2_epochs: int = _field(1000, role=TRAINING)
    stage2_batch_size: int = _field(128, role=TRAINING)
    stage2_lr: float = _field(1e-3, role=TRAINING)
    stage2_precision: str = _field("fp32", role=TRAINING, budget=False)   # the two U-Nets while training
    stage2_weight_decay: float = _field(1e-6, role=TRAINING)
    parameterization: str = _field("eps", role=TRAINING)    # eps (thesis) | v | x0
    p_uncond: float = _field(0.1, role=TRAINING)
    time_embed_dim: int = _field(256, role=TRAINING)
    class_embed_dim: int = _field(256, role=TRAINING)
    unet_lf_channels: list[int] = _field(factory=lambda: [64, 128, 256], role=TRAINING)
    unet_hf_channels: list[int] = _field(factory=lambda: [32, 64, 128, 256], role=TRAINING)
    unet_groups: int = _field(4, role=TRAINING)
    attn_heads: int = _field(4, role=TRAINING)
    attn_head_dim: int = _field(32, role=TRAINING)
    # The ResNet blocks' 3-tap convolutions: replicate padding (what the thesis code declares)
    # or zeros (what it computes: its weight-standardised conv ignores padding_mode).
    unet_block_padding: str = _field("replicate", role=TRAINING)
    # The middle attention's q and k: unit norm over features (a cosine similarity, the thesis's
    # description) or over positions (what the thesis code's normalize(dim=-1) computes).
    unet_attn_norm: str = _field("features", role=TRAINING)
    lf_conditioning: bool = _field(True, role=TRAINING)     # HF prior sees z0_LF (ablation: False)
    # What the priors learn: the continuous projected latents (tvq) or their nearest codebook
    # tokens (what every stored version of the thesis code feeds its priors).
    stage2_latents: str = _field("continuous", role=TRAINING)
    # The HF prior's condition: the scaled LF latent (tvq) or, as the thesis code has it, the
    # un-scaled one through a random 3-tap 20 -> 20 convolution that is never trained.
    hf_condition: str = _field("scaled", role=TRAINING)
    # How stage 2 gets its latents: encoded once in eval mode (tvq), or every batch with the
    # frozen encoders in train mode (the thesis code: batch statistics, drifting running stats).
    stage2_encode: str = _field("cached_eval", role=TRAINING)
    # What S_LF and S_HF are fitted on: the projected latents that the priors model (the text,
    # §3.3: unit-variance inputs), the 64-channel encoder output before the VQ's 64 -> 4 projection
    # (what the thesis code's run_stage.py measures, so its scalers come out near (0, 1) and the
    # priors see the projected latents un-standardised), or none (identity scalers, as the newest
    # stored two-band experiment has it).
    latent_scaler: str = _field("latents", role=TRAINING)

    # -- sampling (Algorithm 3-4) ---------------------------------------------------------
    sampler: str = _field("ancestral", role=SAMPLING)       # ancestral (Algorithm 3, the thesis) | ddim | dpmpp_2m (deterministic ODE solvers)
    t_max: float = _field(0.99, role=SAMPLING)
    steps_uncond: int = _field(128, role=SAMPLING)
    steps_cond: int = _field(32, role=SAMPLING)
    guidance: float = _field(3.0, role=SAMPLING)            # w
    rescale: float = _field(0.1, role=SAMPLING)             # gamma
    rescale_mode: str = _field("global", role=SAMPLING)     # global (thesis code) | per_sample | lin (Lin et al. 2023)
    n_samples: int = _field(1024, role=SAMPLING)
    n_runs: int = _field(3, role=SAMPLING)
    sample_batch_size: int = _field(1024, role=SAMPLING, budget=False)
    sample_bf16: bool = _field(False, role=SAMPLING, budget=False)  # the U-Nets under bfloat16 autocast while sampling
    # Ancestral noise: std (Eq. 28: sigma_{s|t} delta, also the newest stored diffusion_model/vdm.py) or
    # variance (sigma_{s|t}^2 delta, as the thesis code's older versions write model_mean + model_variance
    # * delta). Only the ancestral sampler draws noise: with the ODE samplers this field does not apply.
    sample_noise: str = _field("std", role=SAMPLING)
    # The same for class-conditional sampling: same (as sample_noise) | std | variance. The parity study
    # (book: results_development) found the code's variance noise better for guided draws on every set of
    # trained priors it compared, and no better unconditionally; params/thesis.yaml sets it for guided draws.
    sample_noise_cond: str = _field("same", role=SAMPLING)
    # Which labels the unconditional draws carry: null (the thesis: classifier-free guidance's null
    # class, the branch trained on p_uncond of the batches) or train_prior (each series' label in the
    # training proportions, then the conditional branch alone, w = 1: a draw from p(y) p(x | y), the
    # same marginal by another route, at the same cost). The parity study found the null branch
    # skewed towards one class on GunPoint where this route is not (book: results_development).
    uncond_labels: str = _field("null", role=SAMPLING)

    # -- evaluation (section 2.6, 3.6, appendix D) -----------------------------------------
    # FID, IS and TRTR: lee2023 = the thesis's own evaluators (Lee et al.'s pretrained FCNs,
    # tvq.lee2023); own = an FCN tvq trains with the recipe below (tvq.fcn). TSTR always
    # trains a fresh FCN with the recipe below.
    evaluator: str = _field("lee2023", role=SCORING, budget=False)
    # Which generated series FID and IS score: all of them (tvq), or only the first multiple of
    # 256 at or above the test-set size, as the thesis code's evaluation loop does (thesis_code).
    score_series: str = _field("all", role=SCORING)
    fcn_epochs: int = _field(1000, role=SCORING)
    fcn_batch_size: int = _field(256, role=SCORING)
    fcn_lr: float = _field(1e-3, role=SCORING)
    fcn_weight_decay: float = _field(1e-5, role=SCORING)
    tstr_precision: str = _field("fp32", role=SCORING, budget=False)   # TSTR's FCN while it trains (the evaluators: fp32)

    # -- book / notebooks -------------------------------------------------------------------
    save: bool = _field(False, role=BOOKKEEPING)               # chapters write to the results store only when True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Config":
        return from_mapping({**self.to_dict(), **expand_precision(changes)})


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def fields_with_role(*roles: str) -> frozenset[str]:
    """The names of the Config fields whose role is one of ``roles``."""
    return frozenset(n for n, f in _FIELDS.items() if f.metadata["role"] in roles)


def budget_fields() -> frozenset[str]:
    """The fields a budget label compares with the reference profile."""
    return frozenset(n for n, f in _FIELDS.items() if f.metadata["budget"])
_HINTS = typing.get_type_hints(Config)

_CHOICES = {
    "scaling": ("thesis", "none"),
    "hf_time_loss": ("mse", "l1"),
    "parameterization": ("eps", "v", "x0"),
    "rescale_mode": ("global", "per_sample", "lin"),
    "stage1_precision": PRECISIONS,
    "stage2_precision": PRECISIONS,
    "tstr_precision": PRECISIONS,
    "evaluator": ("lee2023", "own"),
    "unet_block_padding": ("replicate", "zeros"),
    "unet_attn_norm": ("features", "positions"),
    "ema_init": ("one", "zeros"),
    "stage2_latents": ("continuous", "quantized"),
    "hf_condition": ("scaled", "thesis_code"),
    "score_series": ("all", "thesis_code"),
    "width_rule": ("thesis_text", "thesis_code"),
    "decoder_output": ("exact", "thesis_code"),
    "stage2_encode": ("cached_eval", "per_batch_train"),
    "latent_scaler": ("latents", "encoder_output", "none"),
    "sample_noise": ("std", "variance"),
    "sample_noise_cond": ("same", "std", "variance"),   # tvq.sampling.SAMPLERS (a test keeps the two equal)
    "uncond_labels": ("null", "train_prior"),
    "compile": COMPILE_MODES,
}


def _coerce(key: str, value: Any) -> Any:
    """Check ``value`` against the field's type; accept ints for floats and strings from -p."""
    hint = _HINTS[key]
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        (inner,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter {key!r} must be a list of {inner.__name__}, got {value!r}")
        return [_coerce_scalar(key, inner, v) for v in value]
    return _coerce_scalar(key, hint, value)


def _coerce_scalar(key: str, typ: type, value: Any) -> Any:
    if isinstance(value, str) and typ is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    raise ConfigError(f"parameter {key!r} must be {typ.__name__}, got {value!r}")


SEED_MAX = 2**63 - 1   # torch.manual_seed takes 64-bit seeds; numpy gets seed % 2**32
INT_MAX = 2**31 - 1    # no count, size or epoch number of this model comes near it


def _validate(cfg: Config) -> None:
    for key, hint in _HINTS.items():
        value = getattr(cfg, key)
        if hint is float and not math.isfinite(value):
            raise ConfigError(f"parameter {key!r} must be a finite number, got {value}")
        if hint is int and key != "seed" and not -INT_MAX <= value <= INT_MAX:
            raise ConfigError(f"parameter {key!r} is out of range: {value}")
    if not 0 <= cfg.seed <= SEED_MAX:
        raise ConfigError(f"seed must lie in 0..2**63-1, got {cfg.seed}")
    for key in ("stage1_lr", "stage2_lr", "fcn_lr"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"parameter {key!r} must be positive, got {getattr(cfg, key)}")
    for key in ("stage1_weight_decay", "stage2_weight_decay", "fcn_weight_decay", "beta"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"parameter {key!r} must be >= 0, got {getattr(cfg, key)}")
    from .sampling import SAMPLERS  # the samplers' one list is their registry

    for key, allowed in {**_CHOICES, "sampler": SAMPLERS}.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"parameter {key!r} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if not 0.0 < cfg.t_max <= 1.0:
        raise ConfigError(f"t_max must lie in (0, 1], got {cfg.t_max}")
    if cfg.guidance < 0:
        raise ConfigError(f"guidance weight must be >= 0, got {cfg.guidance}")
    if not 0.0 <= cfg.rescale <= 1.0:
        raise ConfigError(f"rescale gamma must lie in [0, 1], got {cfg.rescale}")
    if not 0.0 <= cfg.p_uncond < 1.0:
        raise ConfigError(f"p_uncond must lie in [0, 1), got {cfg.p_uncond}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ConfigError(f"ema_decay must lie in [0, 1), got {cfg.ema_decay}")
    positive = [
        "n_fft", "hop_length", "cutoff", "stage1_batch_size", "stage2_batch_size", "hidden_dim",
        "codebook_size", "codebook_dim", "steps_uncond", "steps_cond", "n_samples", "n_runs",
        "sample_batch_size", "fcn_batch_size", "time_embed_dim", "class_embed_dim",
        "unet_groups", "attn_heads", "attn_head_dim", "lf_width_min", "hf_width_min",
    ]
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"parameter {key!r} must be positive, got {getattr(cfg, key)}")
    for key in ("stage1_epochs", "stage2_epochs", "fcn_epochs", "n_resblocks", "threads"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"parameter {key!r} must be >= 0, got {getattr(cfg, key)}")
    if cfg.evaluator == "lee2023" and cfg.scaling != "thesis":
        raise ConfigError("evaluator 'lee2023' was trained on thesis-scaled data: it needs scaling=thesis "
                          "(or use evaluator=own)")
    if not cfg.unet_lf_channels or not cfg.unet_hf_channels:
        raise ConfigError("U-Net channel lists must not be empty")
    if cfg.n_fft % 2:
        raise ConfigError(f"n_fft must be even (a centred STFT with an odd n_fft drops a frame and cannot be "
                          f"inverted to the same length), got {cfg.n_fft}")
    if cfg.cutoff >= cfg.n_fft // 2 + 1:
        raise ConfigError(f"cutoff {cfg.cutoff} leaves no high-frequency bins for n_fft {cfg.n_fft}")


def precision_of(config: dict[str, Any]) -> dict[str, str]:
    """``{phase: "fp32" | "bf16"}`` of a run's stored config (a key it lacks was fp32 then)."""
    out = {}
    for key, phase in PRECISION_PHASES.items():
        value = config.get(key, False if key == "sample_bf16" else "fp32")
        out[phase] = ("bf16" if value else "fp32") if key == "sample_bf16" else str(value)
    return out


def bf16_phases(precision: dict[str, str]) -> list[str]:
    """The phases of a :func:`precision_of` mapping that ran in bf16, in the pipeline's order."""
    return [phase for phase in PRECISION_PHASES.values() if precision.get(phase) == "bf16"]


_PHASE_TAGS = {"stage 1": "s1", "stage 2": "s2", "sampling": "sampling", "TSTR": "tstr"}


def precision_tag(config: dict[str, Any]) -> str:
    """What a store entry's folder name adds for its precision, so that a bf16 run never overwrites
    the fp32 entry of the same profile and seed: ``""`` (fp32), ``"-bf16"`` (every phase) or, for
    some phases, e.g. ``"-bf16-sampling"``."""
    bf16 = bf16_phases(precision_of(config))
    if not bf16:
        return ""
    return "-bf16" if len(bf16) == len(_PHASE_TAGS) else "-bf16-" + "-".join(_PHASE_TAGS[p] for p in bf16)


def expand_precision(layer: dict[str, Any]) -> dict[str, Any]:
    """One layer of parameters (a params file, the overrides, ``replace``'s changes) with
    ``precision=X`` written out as each phase's key, except the phases the same layer names."""
    if PRECISION_ALIAS not in layer:
        return dict(layer)
    layer = dict(layer)
    every = layer.pop(PRECISION_ALIAS)
    if every not in (*PRECISIONS, "auto"):
        raise ConfigError(f"parameter 'precision' must be one of fp32, bf16, auto, got {every!r}")
    return {**{key: every for key in PRECISION_FIELDS}, **layer}


def _resolve_precision(mapping: dict[str, Any]) -> dict[str, Any]:
    """Expand ``precision=`` into the phases' keys and resolve ``auto`` on this machine's device.

    ``auto`` is decided here, once, so that the fingerprints, the stored config and the entry name
    the precision that actually ran (never ``auto``). A phase's own key wins over ``precision``.
    """
    mapping = expand_precision(mapping)
    wanted = {k: mapping[k] for k in PRECISION_FIELDS if k in mapping}
    if any(v == "auto" for v in wanted.values()):
        from .device import bf16_units

        auto = "bf16" if bf16_units(str(mapping.get("device", "auto"))) else "fp32"
        for key, value in wanted.items():
            if value == "auto":
                mapping[key] = auto
    if isinstance(mapping.get("sample_bf16"), str) and mapping["sample_bf16"] in PRECISIONS:
        mapping["sample_bf16"] = mapping["sample_bf16"] == "bf16"
    return mapping


def from_mapping(mapping: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from a flat mapping (``precision`` and ``auto``:
    :func:`_resolve_precision`)."""
    values: dict[str, Any] = {}
    for key, value in _resolve_precision(mapping).items():
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, list(_FIELDS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown parameter {key!r}{hint}")
        values[key] = _coerce(key, value)
    cfg = Config(**values)
    _validate(cfg)
    return cfg


def profiles_dir() -> Path:
    """Where the named profiles are: the source tree's ``params/`` or, in an installed tvq, the
    ``tvq.profiles`` data package that the same files are installed as."""
    if PARAMS_DIR.is_dir():
        return PARAMS_DIR
    from importlib import resources

    return Path(str(resources.files("tvq"))) / "profiles"


def resolve_params_file(name_or_path: str | os.PathLike) -> Path:
    """``smoke`` → ``params/smoke.yaml`` (or the installed copy); a path is used as it is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"params file not found: {p}")
        return p
    folder = profiles_dir()
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(q.stem for q in folder.glob("*.yaml"))
    raise ConfigError(f"no params file {name_or_path!r} (known profiles: {', '.join(known)})")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` → mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        out[key.strip()] = raw.strip()
    return out


def load_config(params: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                **kwargs: Any) -> Config:
    """Read a params file (or start from the defaults), apply overrides, validate."""
    mapping: dict[str, Any] = {}
    if params is not None:
        path = resolve_params_file(params)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc.__class__.__name__})") from None
        if loaded is None:
            raise ConfigError(f"{path}: the params file is empty (name a profile, e.g. -f thesis, or give key: value lines)")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of parameters")
        mapping.update(expand_precision(loaded))
        mapping.setdefault("profile", path.stem)
    # Layer by layer, so that an override's precision=... beats a params file's per-phase keys.
    mapping.update(expand_precision(overrides or {}))
    mapping.update(expand_precision(kwargs))
    return from_mapping(mapping)
