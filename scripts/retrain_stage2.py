"""Retrain only stage 2 (the two diffusion priors) on the stage 1 of a finished run, with overrides.

The parity study's "stage 2 only" rows (``results/parity/GunPoint.json``, ``s2:*``) come from this:
each keeps the VQ-VAEs of one trained run and retrains the priors with one setting changed, so
that a stage-2 difference is measured without stage 1's seed spread on top.

    python scripts/retrain_stage2.py runs/parity/GunPoint-thesis-s0 runs/parity/s2/quantized \\
        stage2_latents=quantized
    python scripts/parity.py runs/parity/s2/quantized --name s2:quantized --out results/parity/GunPoint.json

How: the new run folder gets a checkpoint at the start of stage 2 holding the base run's stage 1,
the scalers refitted under the new configuration, and the fingerprint of the new configuration;
``tvq.train.train`` then resumes it, i.e. trains stage 2 only. Overrides must not change stage 1
(that is not checked: the stage-1 weights are copied as they are). ``seed=N`` reseeds stage 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from tvq.config import Config, from_mapping, parse_overrides
from tvq.data import load_ucr
from tvq.device import seed_everything
from tvq.model import TimeVQVDM
from tvq.train import CHECKPOINT, MODEL, TrainState, load_model, save_checkpoint, train, training_fingerprint


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    base, out = Path(argv[0]), Path(argv[1])
    base_model, meta = load_model(base, "cpu")
    cfg = from_mapping({**Config().to_dict(), **meta["config"], **parse_overrides(argv[2:])})
    ds = load_ucr(cfg.dataset, data_dir=cfg.data_dir or None, scaling=cfg.scaling)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MODEL).exists() and not (out / CHECKPOINT).exists():
        generator = seed_everything(cfg.seed)
        model = TimeVQVDM.from_config(cfg, length=ds.length, n_classes=ds.n_classes)
        model.stage1.load_state_dict(base_model.stage1.state_dict())
        model.fit_scalers(torch.from_numpy(ds.x_train))
        save_checkpoint(out / CHECKPOINT, model, None, None, generator, TrainState(phase="stage2"),
                        training_fingerprint(cfg, ds))
    if not (out / MODEL).exists():
        train(cfg, out, dataset=ds, progress="auto")
    print(f"stage 2 of {base} retrained with {' '.join(argv[2:]) or 'no change'} -> {out / MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
