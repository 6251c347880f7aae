"""Training TimeVQVDM: Algorithm 1 (stage 1), the scalers, Algorithm 2 (stage 2).

Appendix D's recipe: AdamW, learning rate 1e-3 annealed to 0 by a cosine schedule (per
optimizer step, no warm-up, as the thesis code), batch 128, epochs from the params file.

Every phase is resumable. A checkpoint is written atomically at the end of each phase and at
most every ``checkpoint_seconds`` in between, always at an epoch boundary. It holds the
weights, the optimizer and scheduler states and the state of the one random generator that
drives batching, diffusion times, noise and class dropout, so a resumed run on the CPU
reproduces an uninterrupted one exactly. It is read back with ``torch.load(weights_only=True)``
(no arbitrary unpickling) and refused when it belongs to another dataset or configuration.

Stage 2 trains on latents of the frozen stage 1 computed once, in eval mode (the thesis code
re-encodes every batch with batch norm left in training mode, which both costs time and
lets the latents drift).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .config import (BOOKKEEPING, PROVENANCE, SAMPLING, SCORING, TRAINING, Config, fields_with_role, load_config,
                     parse_overrides)
from .data import UCRDataset, load_ucr
from .device import compile_modules, resolve_device, seed_everything, set_threads, threads_used
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .io import atomic_path, check_output_dir, write_json
from .locks import run_lock
from .progress import Progress

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
RUN_JSON = "run.json"

# Config fields that do not change what training computes (sampling, scoring, provenance,
# bookkeeping): derived from each field's declared role in tvq.config.
_NOT_TRAINING = fields_with_role(SAMPLING, SCORING, PROVENANCE, BOOKKEEPING)


# Training fields added after checkpoints of the thesis profile existed, with the default that
# reproduces the earlier behaviour: left out of the fingerprint while at that default, so that
# adding the option does not orphan every stored checkpoint.
_ADDED_LATER = {"unet_block_padding": "replicate", "unet_attn_norm": "features", "ema_init": "one",
                "stage2_latents": "continuous", "hf_condition": "scaled", "width_rule": "thesis_text",
                "stage2_encode": "cached_eval", "decoder_output": "exact", "latent_scaler": "latents",
                "stage2_precision": "fp32"}


def training_fingerprint(cfg: Config, dataset: UCRDataset) -> str:
    """Hash of everything that determines the trained weights: the data and the training config."""
    h = hashlib.sha256()
    training = {f.name for f in dataclasses.fields(cfg) if f.metadata.get("role") == TRAINING}
    fields = {k: v for k, v in cfg.to_dict().items()
              if k in training and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
    h.update(json.dumps(fields, sort_keys=True).encode())
    for a in (dataset.x_train, dataset.y_train):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class TrainState:
    phase: str = "stage1"        # stage1 -> stage2 -> done
    epoch: int = 0               # epochs finished in the current phase
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    wall_s: dict[str, float] = dataclasses.field(default_factory=dict)
    # torch threads each phase ran with, over all its invocations (None: unknown for part of it)
    threads: dict[str, list[int] | None] = dataclasses.field(default_factory=dict)


def cosine_lr(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing from the initial learning rate to 0 over ``total_steps``."""
    total = max(total_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of shuffled index batches (the last one may be short; none is dropped)."""
    perm = torch.randperm(n, generator=generator)
    return list(perm.split(batch_size))


# -- checkpoints --------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler, generator: torch.Generator,
                    state: TrainState, fingerprint: str) -> None:
    payload = {
        "format": "tvq-checkpoint-1",
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "generator": generator.get_state(),
        "state": json.dumps(dataclasses.asdict(state)),
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, fingerprint: str | None) -> dict[str, Any]:
    """Read a checkpoint safely; refuse a corrupted one or one of another run."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable tvq checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "tvq-checkpoint-1":
        raise CheckpointError(f"{path} is not a tvq checkpoint")
    if fingerprint is not None and payload.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path} belongs to another dataset or training configuration; use a new --out folder or --restart")
    return payload


# -- the loops ----------------------------------------------------------------------------------
def _run_phase(name: str, *, model, params, n_items: int, batch_size: int, epochs: int, lr: float,
               weight_decay: float, step_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
               state: TrainState, generator: torch.Generator, ckpt: Path, fingerprint: str,
               payload: dict | None, checkpoint_seconds: float, progress: bool | str,
               progress_every: float = 30.0) -> None:
    steps_per_epoch = math.ceil(n_items / batch_size)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
    scheduler = cosine_lr(optimizer, epochs * steps_per_epoch)
    if payload is not None and payload["optimizer"]:
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
    last_save = time.monotonic()
    start = time.monotonic() - state.wall_s.get(name, 0.0)
    state.threads[name] = threads_used(state.threads.get(name), resumed=name in state.wall_s)
    bar = Progress(name, epochs, initial=state.epoch, mode=progress, every_s=progress_every)
    try:
        while state.epoch < epochs:
            # The loss terms stay on the device until the epoch ends: reading one per step would make
            # the host wait for every step, and on a GPU with small batches that wait (not the
            # arithmetic) is what a step costs. float64 keeps the sums those of Python floats.
            sums: dict[str, torch.Tensor] = {}
            for idx in batches(n_items, batch_size, generator):
                terms = step_fn(idx)
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                scheduler.step()
                for k, v in terms.items():
                    term = v.detach().to(torch.float64) * len(idx)
                    sums[k] = sums[k] + term if k in sums else term
            state.epoch += 1
            means = {k: float(v) / n_items for k, v in sums.items()}
            for k, v in means.items():
                state.history.setdefault(f"{name}/{k}", []).append(v)
            if not all(math.isfinite(v) for v in means.values()):
                bad = ", ".join(k for k, v in means.items() if not math.isfinite(v))
                raise TrainingDiverged(f"{name} epoch {state.epoch}: the loss is not finite ({bad}); "
                                       f"nothing was saved from this phase (try a smaller {name}_lr)")
            bar.update(1, means)
            state.wall_s[name] = time.monotonic() - start
            if time.monotonic() - last_save >= checkpoint_seconds and state.epoch < epochs:
                save_checkpoint(ckpt, model, optimizer, scheduler, generator, state, fingerprint)
                last_save = time.monotonic()
    finally:
        bar.close()
    state.wall_s[name] = time.monotonic() - start


def train(cfg: Config, out_dir: str | Path, *, dataset: UCRDataset | None = None, restart: bool = False,
          progress: bool | str = True, checkpoint_seconds: float = 60.0, stop_after: str | None = None,
          progress_every: float = 30.0):
    """Train TimeVQVDM on ``cfg.dataset``; resume from ``out_dir`` when a checkpoint is there.

    ``stop_after="stage1"`` ends after stage 1 and the scalers (the checkpoint stays resumable).
    Returns the trained model (in eval mode).
    """
    from .model import TimeVQVDM  # the model module imports the networks; keep `tvq train --help` light

    # Everything that can be refused is checked before the run folder is created.
    out = check_output_dir(out_dir, "run folder")
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    ds = dataset if dataset is not None else load_ucr(cfg.dataset, data_dir=cfg.data_dir or None, scaling=cfg.scaling)
    generator = seed_everything(cfg.seed)   # before the model: its initial weights come from this seed
    model = TimeVQVDM.from_config(cfg, length=ds.length, n_classes=ds.n_classes).to(device)
    compile_modules((model.stage1, model.unet_lf, model.unet_hf), cfg.compile)
    read = None
    if (out / CHECKPOINT).exists() and not restart:   # refuse another run's checkpoint before touching anything
        read = (_stat_key(out / CHECKPOINT), load_checkpoint(out / CHECKPOINT, training_fingerprint(cfg, ds)))
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        return _train_locked(cfg, out, ds, model, generator, device, read=read, restart=restart, progress=progress,
                             checkpoint_seconds=checkpoint_seconds, stop_after=stop_after,
                             progress_every=progress_every)


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _train_locked(cfg: Config, out: Path, ds: UCRDataset, model, generator: torch.Generator,
                  device: torch.device, *, read: tuple | None = None, restart: bool,
                  progress: bool | str, checkpoint_seconds: float, stop_after: str | None,
                  progress_every: float = 30.0):
    fingerprint = training_fingerprint(cfg, ds)
    ckpt = out / CHECKPOINT
    state, payload = TrainState(), None
    if ckpt.exists() and not restart:
        # the checkpoint read before the lock, unless another process rewrote it in between
        payload = read[1] if read is not None and read[0] == _stat_key(ckpt) else load_checkpoint(ckpt, fingerprint)
        model.load_state_dict(payload["model"])
        generator.set_state(payload["generator"])
        state = TrainState(**json.loads(payload["state"]))
        if state.phase == "done":
            payload = None
    # A finished run is only read: its config.json, model.pt and run.json keep the configuration,
    # machine and versions it was trained with. (A caller that differs in sampling fields alone, a
    # bf16 draw say, meets the same checkpoint; rewriting would hand its settings to later readers.)
    finished = state.phase == "done" and (out / MODEL).is_file()
    if not finished:
        write_json(out / "config.json", {**cfg.to_dict(), "dataset": ds.name})

    x_train = torch.from_numpy(ds.x_train).to(device)
    y_train = torch.from_numpy(ds.y_train).to(device)

    # 1. Stage 1: VQ-VAEs (Algorithm 1).
    if state.phase == "stage1":
        model.train()
        _run_phase("stage1", model=model, params=model.stage1_parameters(), n_items=len(x_train),
                   batch_size=cfg.stage1_batch_size, epochs=cfg.stage1_epochs, lr=cfg.stage1_lr,
                   weight_decay=cfg.stage1_weight_decay, step_fn=lambda idx: model.stage1_loss(x_train[idx.to(device)]),
                   state=state, generator=generator, ckpt=ckpt, fingerprint=fingerprint, payload=payload,
                   checkpoint_seconds=checkpoint_seconds, progress=progress, progress_every=progress_every)
        # 2. The scalers S_LF, S_HF: mean and std of the encoded training set (eval mode).
        model.fit_scalers(x_train)
        state.phase, state.epoch, payload = "stage2", 0, None
        save_checkpoint(ckpt, model, None, None, generator, state, fingerprint)
        if stop_after == "stage1":
            return model.eval()

    # 3. Stage 2: the two diffusion priors on cached latents (Algorithm 2).
    if state.phase == "stage2":
        if cfg.stage2_encode == "cached_eval":
            z0_lf, z0_hf = model.encode(x_train)  # frozen stage 1, eval mode, computed once

            def latents(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return z0_lf[idx], z0_hf[idx]
        else:  # the thesis code: every batch encoded anew, batch norm in training mode
            def latents(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return model.encode(x_train[idx], train_mode=True)
        model.train()
        model.stage1.eval()  # batch-norm statistics stay frozen (except while per_batch_train encodes)
        _run_phase("stage2", model=model, params=model.stage2_parameters(), n_items=len(x_train),
                   batch_size=cfg.stage2_batch_size, epochs=cfg.stage2_epochs, lr=cfg.stage2_lr,
                   weight_decay=cfg.stage2_weight_decay,
                   step_fn=lambda idx: model.stage2_loss(*latents(idx.to(device)), y_train[idx.to(device)], generator),
                   state=state, generator=generator, ckpt=ckpt, fingerprint=fingerprint, payload=payload,
                   checkpoint_seconds=checkpoint_seconds, progress=progress, progress_every=progress_every)
        state.phase, state.epoch = "done", 0
        save_checkpoint(ckpt, model, None, None, generator, state, fingerprint)

    model.eval()
    if not finished:
        save_model(out, model, cfg, ds, state, fingerprint)
    return model


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the trained weights (every state-dict tensor, in order): what the samples of a
    stored phase or study cell came from. The training fingerprint names a configuration; two
    trainings of one configuration on different CPUs or thread counts round differently and end
    in different weights, whose draws must not be mixed in one result."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_model(out: Path, model, cfg: Config, ds: UCRDataset, state: TrainState, fingerprint: str) -> None:
    """The trained weights plus everything needed to rebuild the model and label its numbers."""
    meta = {
        "format": "tvq-model-1",
        "dataset": ds.name, "length": ds.length, "n_classes": ds.n_classes,
        "class_counts": np.bincount(ds.y_train, minlength=ds.n_classes).tolist(),
        "fingerprint": fingerprint, "config": cfg.to_dict(),
        "final_losses": {k: v[-1] for k, v in state.history.items() if v},
        "wall_s": state.wall_s,
        "threads": state.threads,
        "versions": software_versions(),
        "hardware": hardware_summary(next(model.parameters()).device),
    }
    with atomic_path(out / MODEL, suffix=".pt") as tmp:
        torch.save({"format": "tvq-model-1", "model": model.state_dict(), "meta": json.dumps(meta)}, tmp)
    write_json(out / RUN_JSON, {**meta, "history": state.history})


def software_versions() -> dict[str, str]:
    return {"tvq": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_summary(device: torch.device) -> dict[str, Any]:
    """Where a number was produced: the device used, the CPU and its torch threads, the GPU if used."""
    from .device import bf16_units, host_allocator

    info: dict[str, Any] = {"device": str(device), "cpu": _cpu_name(), "threads": torch.get_num_threads(),
                            "cpu_count": os.cpu_count(),
                            # without them a bf16 phase is emulated: its numbers hold, its times do not
                            "bf16_units": bf16_units(str(device)),
                            # speed only: "reuse" keeps freed memory (tvq.device.tune_host_allocator)
                            "host_allocator": host_allocator()}
    tuned = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") and k.endswith("_")}
    if tuned:
        info["malloc_env"] = tuned
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_model(run_dir: str | Path, device: str = "auto"):
    """Rebuild a trained model from ``run_dir/model.pt``; returns ``(model, meta)``."""
    from .config import from_mapping
    from .model import TimeVQVDM

    path = Path(run_dir) / MODEL
    if not path.exists():
        raise CheckpointError(f"no trained model at {path} (run `tvq train` first, or let it finish)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
        assert payload.get("format") == "tvq-model-1"
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable tvq model ({exc.__class__.__name__})") from None
    cfg = from_mapping(meta["config"])
    model = TimeVQVDM.from_config(cfg, length=meta["length"], n_classes=meta["n_classes"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise CheckpointError(f"{path} does not match the architecture its own config describes") from None
    return model.to(resolve_device(device)).eval(), meta


# -- command line ---------------------------------------------------------------------------------
def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train TimeVQVDM on a UCR dataset (resumable)")
    p.add_argument("name", help="UCR dataset name")
    p.add_argument("-f", "--params", default="smoke", help="params file or profile name (default: smoke)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override one parameter")
    p.add_argument("--out", required=True, help="run folder (checkpoint, model, run.json)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress bar or progress lines")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="when stderr is not a terminal, one progress line per this many seconds (default 30)")
    p.set_defaults(func=_cli_train)


def _cli_train(args: argparse.Namespace) -> int:
    cfg = load_config(args.params, {**parse_overrides(args.param), "dataset": args.name})
    if not args.progress_every > 0:
        raise ConfigError(f"--progress-every must be a positive number of seconds, got {args.progress_every}")
    t0 = time.monotonic()
    train(cfg, args.out, restart=args.restart, progress=False if args.quiet else "auto",
          progress_every=args.progress_every)
    meta = json.loads((Path(args.out) / RUN_JSON).read_text())
    losses = ", ".join(f"{k.split('/')[0]} {k.split('/')[1]} loss {v:.4g}"
                       for k, v in meta["final_losses"].items() if k.endswith("/total"))
    print(f"trained {meta['dataset']} in {time.monotonic() - t0:.1f} s (final {losses}); model in {Path(args.out) / MODEL}")
    return 0
