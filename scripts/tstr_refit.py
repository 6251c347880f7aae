#!/usr/bin/env python
"""TSTR's fit-to-fit spread: refit the FCN on an entry's stored conditional draw with other seeds.

An entry's TSTR is one FCN fit (seed 0) on one conditional draw, so on its own it has no spread to
judge a bf16 entry by. This script trains the same recipe (``cond_run.fcn_recipe``: 1000 epochs,
batch 256, Adam with weight decay, cosine schedule) on the entry's stored ``samples_cond.npy`` and
``labels_cond.npy`` with the seeds asked for, scores each fit on the real test set, and adds it to
``phases/tstr_refits.json`` in the entry (written atomically after every fit, so an interrupted run
keeps the fits it finished, and a seed already there is skipped). ``tvq.results`` reads the file:
the bf16 comparison of the results chapter then judges TSTR by the standard deviation over the
protocol's fit and these.

What the spread covers: the fit (initial weights, batch order), not the draw: every fit trains on
the same 1024 synthetic series. The store keeps those series in float16, so a refit's data differ
from the protocol's float32 draw by that rounding; a refit with seed 0 measures what the rounding
alone does to TSTR.

    python scripts/tstr_refit.py results/Chinatown/thesis-seed0 --seeds 1 2 --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tvq.errors import TvqError
from tvq.results import TSTR_REFITS


def _log(message: str) -> None:
    print(message, flush=True)      # a fit takes minutes: each line as it happens, also under nohup


def refit(entry: Path, seeds: list[int], device: str = "cpu", progress: bool = False, log=_log) -> dict:
    """Fit TSTR's FCN on ``entry``'s stored conditional draw once per seed; return the refits file."""
    import torch

    from tvq.data import load_ucr
    from tvq.evaluate import validate_labels, validate_samples
    from tvq.fcn import Recipe, fit_and_score
    from tvq.io import load_npy, write_json

    meta = entry / "entry.json"
    if not meta.is_file() or not (entry / "DONE").is_file():
        raise TvqError(f"{entry} is not a finished store entry (no entry.json or no DONE)")
    record = json.loads(meta.read_text())
    run = record.get("cond_run") or {}
    if "fcn_recipe" not in run or run.get("tstr") is None:
        raise TvqError(f"{entry}: the entry has no conditional run with a TSTR fit to repeat")
    if not (entry / "samples_cond.npy").is_file() or not (entry / "labels_cond.npy").is_file():
        raise TvqError(f"{entry}: samples_cond.npy and labels_cond.npy are needed")
    conf = record.get("config", {})
    ds = load_ucr(record["dataset"], data_dir=conf.get("data_dir") or None, scaling=conf.get("scaling", "thesis"))
    x = validate_samples(load_npy(entry / "samples_cond.npy").astype(np.float32), ds.x_train.shape[-1])
    y = validate_labels(load_npy(entry / "labels_cond.npy"), len(x), ds.n_classes)
    if len(x) != run.get("n_samples"):
        raise TvqError(f"{entry}: the store keeps {len(x)} of the {run.get('n_samples')} conditional series; "
                       "a refit on fewer would not be the protocol's fit")
    out = entry / "phases" / TSTR_REFITS
    recipe = {**run["fcn_recipe"], "seed": None}
    state = json.loads(out.read_text()) if out.is_file() else {}
    if state and state.get("recipe") != recipe:
        raise TvqError(f"{out} holds fits of another recipe; move it away to start over")
    state = {"recipe": recipe, "protocol_tstr": float(run["tstr"]), "protocol_seed": int(run["fcn_recipe"]["seed"]),
             "data": "samples_cond.npy (float16) as float32", "fits": state.get("fits", [])}
    for seed in seeds:
        if any(f["seed"] == seed for f in state["fits"]):
            log(f"[{record['dataset']}] seed {seed}: already fitted, skipped")
            continue
        t0 = time.perf_counter()
        _, acc = fit_and_score(x, y, ds.x_test, ds.y_test, ds.n_classes, Recipe(**{**recipe, "seed": seed}),
                               device=device, progress=progress)
        fit = {"seed": seed, "tstr": float(acc), "seconds": round(time.perf_counter() - t0, 1),
               "threads": torch.get_num_threads(), "precision": "fp32"}
        state["fits"] = sorted([*state["fits"], fit], key=lambda f: f["seed"])
        write_json(out, state)
        log(f"[{record['dataset']}] seed {seed}: TSTR {100 * acc:.2f} % ({fit['seconds']:.0f} s); "
            f"protocol fit {100 * state['protocol_tstr']:.2f} %")
    return state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entry", type=Path, help="a finished store entry, e.g. results/Chinatown/thesis-seed0")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="FCN seeds to fit with (default 1 2)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    from tvq.device import set_threads

    try:
        set_threads(args.threads)
        refit(args.entry, args.seeds, device=args.device, progress=args.progress)
    except (TvqError, ValueError) as exc:
        print(f"tstr_refit: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
