"""Score trained runs for the parity study (issue: quality parity with the thesis's own code).

For each run folder (written by ``tvq train``) it records, with the thesis's evaluator:

* the run's configuration (the fields that differ from ``params/thesis.yaml``), budget, seed and
  wall times, read from the run itself;
* FID, IS and the class split of the run's stored unconditional samples (``uncond.npy``, drawn by
  ``tvq sample RUN -n 1024``) when the folder has them;
* :func:`tvq.diagnostics.band_diagnostics` on a fresh draw of ``--n`` samples;
* conditional samples, ``--per-class`` per class at the run's ``steps_cond`` and ``guidance``:
  FID and the evaluator's accuracy per class.

Results are merged into ``--out`` (one JSON object, keyed by run name), written atomically, so
the script can be run run by run. The book's development chapter reads that file.

    TVQ_EVALUATOR_DIR=... python scripts/parity.py runs/parity/GunPoint-thesis-s0 --name thesis-s0 \\
        --out results/parity/GunPoint.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tvq.config import load_config
from tvq.data import load_ucr
from tvq.diagnostics import band_diagnostics
from tvq.evaluate import evaluator_scores
from tvq.fcn import predict
from tvq.io import write_json
from tvq.lee2023 import load_evaluator
from tvq.locks import run_lock
from tvq.metrics import fid
from tvq.train import load_model, weights_digest


def config_diff(cfg: dict) -> dict:
    """The run's settings that differ from the text's model (params/thesis-text.yaml: a fixed
    reference, unlike params/thesis.yaml, which the parity study itself settles)."""
    base = load_config("thesis-text", dataset=cfg["dataset"]).to_dict()
    skip = {"profile", "threads", "device", "dataset"}
    return {k: v for k, v in cfg.items() if k not in skip and base.get(k) != v}


def score_run(run: Path, n: int, per_class: int, seed: int) -> dict:
    model, meta = load_model(run, "cpu")
    ds = load_ucr(meta["config"]["dataset"])
    ev = load_evaluator(ds.name, ds.n_classes)
    run_json = json.loads((run / "run.json").read_text())
    cfg = {**model.cfg.to_dict(), "dataset": ds.name}
    out = {"dataset": ds.name, "config_vs_thesis": config_diff(cfg), "seed": cfg["seed"],
           "budget": {"stage1_epochs": cfg["stage1_epochs"], "stage2_epochs": cfg["stage2_epochs"],
                      "steps_uncond": cfg["steps_uncond"], "steps_cond": cfg["steps_cond"]},
           "wall_s": run_json.get("wall_s"), "hardware": run_json.get("hardware"),
           "weights_sha256": weights_digest(model)}
    # What the priors were trained on: the scalers S and the spread of the scaled training latents
    # (1 by construction with latent_scaler=latents; the projected latents' own spread otherwise).
    z0_lf, z0_hf = model.encode(torch.from_numpy(ds.x_train))
    out["latents"] = {"scaler_lf": [float(model.scaler_lf.mean), float(model.scaler_lf.std)],
                      "scaler_hf": [float(model.scaler_hf.mean), float(model.scaler_hf.std)],
                      "z0_std_lf": float(z0_lf.std()), "z0_std_hf": float(z0_hf.std())}
    stored = run / "uncond.npy"
    if stored.is_file():
        x = np.load(stored, allow_pickle=False).astype(np.float32)
        out["stored_uncond"] = {k: v for k, v in evaluator_scores(ev, ds, x, seed=0).items()
                                if k in ("fid", "is_mean", "is_std", "n_scored", "class_split", "train_split")}
    t0 = time.monotonic()
    out["bands"] = band_diagnostics(model, ds, ev, n=n, seed=seed)
    labels = torch.arange(ds.n_classes).repeat_interleave(per_class)
    xc = model.sample(len(labels), class_labels=labels, generator=torch.Generator().manual_seed(seed),
                      batch_size=len(labels)).numpy()
    f_test, _ = predict(ev, ds.x_test)
    fc, pc = predict(ev, xc)
    pred = pc.argmax(axis=1)
    out["conditional"] = {"n_per_class": per_class, "fid": float(fid(fc, f_test)),
                          "per_class_accuracy": [float(np.mean(pred[labels.numpy() == k] == k)) for k in range(ds.n_classes)]}
    out["diagnostics_s"] = round(time.monotonic() - t0, 1)
    return out


def add_scoring_args(ap: argparse.ArgumentParser) -> None:
    """The options this script shares with ``parity_sampling.py``."""
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--per-class", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)


def merge_entry(out: Path, name: str, entry: dict) -> None:
    """Put one entry into the JSON file ``out`` (atomically; several scripts may write it side by side)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(out.parent):
        store = json.loads(out.read_text()) if out.is_file() else {}
        store[name] = entry
        write_json(out, store)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--name", action="append", default=None, help="one name per run (default: the folder name)")
    add_scoring_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.name or [r.name for r in args.runs]
    if len(names) != len(args.runs):
        print("parity: one --name per run", file=sys.stderr)
        return 2
    for name, run in zip(names, args.runs):
        entry = score_run(run, args.n, args.per_class, args.seed)
        merge_entry(args.out, name, entry)
        print(f"{name}: FID {entry['bands']['samples']['fid']:.2f} split {entry['bands']['classes']['samples']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
