"""Run the rest of an interrupted TSTR fit on another machine (a GPU), then let the CPU run finish it.

What this was used for: FreezerSmallTrain and DiatomSizeReduction ran the thesis protocol on a
2-core CPU over three sessions; their TSTR fits (1000 epochs) stood at epochs 494 and 469 when a
GPU became available for a few minutes. This script took each run's conditional draw
(``pending-cond.npz``) and TSTR checkpoint (``tstr-cond.pt``) from the run folder, ran the fit on
with the package's own ``tvq.fcn.train_fcn`` (same recipe, same batch order, the checkpoint's
weights and optimiser moments), and wrote the training state at epoch ``epochs - 1``. Put back
into the run folder as ``tstr-cond.pt``, that state makes ``tvq reproduce`` resume there: it runs
the last epoch on the CPU, scores TSTR on the real test set and finishes the entry.
Both entries have since been replaced by CPU-only runs under today's defaults (2026-12-07); the
script stays for the next long fit that a short GPU loan can finish.

The two fits were finished with an earlier form of this script, which wrapped ``train_fcn``'s
checkpoint writer to keep the state at epoch ``epochs - 1``; ``train_fcn(stop_at_epoch=...)`` now
does that itself, along the same training path.

    PYTHONPATH=. python scripts/finish_tstr_elsewhere.py cuda OUT_DIR RUN_FOLDER [RUN_FOLDER ...]

Each RUN_FOLDER holds ``pending-cond.npz`` and ``tstr-cond.pt``; the recipe is read from
``params/thesis.yaml``. The GPU's rounding differs from the CPU's, so the finished fit is not
bit-identical to a CPU-only one (on one CPU it is: ``tests/test_finish_tstr_elsewhere.py``).
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import tvq.fcn as fcn
from tvq.config import load_config
from tvq.evaluate import validate_labels, validate_samples


def finish(pending: Path, ckpt_in: Path, ckpt_out: Path, recipe: fcn.Recipe, device: str) -> dict:
    """Train from ``ckpt_in`` to epoch ``recipe.epochs - 1`` on ``device``; save that state to ``ckpt_out``."""
    f = np.load(pending, allow_pickle=False)
    x = validate_samples(f["x"].astype(np.float32), f["x"].shape[1])
    state = torch.load(ckpt_in, map_location="cpu", weights_only=True)
    n_classes = int(state["n_classes"])
    y = validate_labels(f["labels"], x.shape[0], n_classes)
    key = {"recipe": recipe.to_dict(), "data": fcn.data_fingerprint(x, y), "n_classes": n_classes}
    if fcn._read_fit_state(ckpt_in, key) is None:
        raise SystemExit(f"{ckpt_in}: checkpoint does not match the draw and recipe")
    start = int(state["epoch"])
    shutil.copyfile(ckpt_in, ckpt_out)
    t0 = time.monotonic()
    fcn.train_fcn(x, y, n_classes, recipe, device=device, checkpoint=ckpt_out, stop_at_epoch=recipe.epochs - 1)
    seconds = time.monotonic() - t0
    out = torch.load(ckpt_out, map_location="cpu", weights_only=True)
    return {"start_epoch": start, "end_epoch": int(out["epoch"]), "seconds": round(seconds, 2),
            "elapsed_s_before": round(float(state.get("elapsed_s", 0.0)), 1),
            "elapsed_s_after": round(float(out["elapsed_s"]), 1)}


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__.split("\n\n")[3])
    device, out_dir = sys.argv[1], Path(sys.argv[2])
    recipe = fcn.Recipe.from_config(load_config("thesis"))
    for folder in map(Path, sys.argv[3:]):
        for name in ("pending-cond.npz", "tstr-cond.pt"):
            if not (folder / name).is_file():
                raise SystemExit(f"{folder}: no {name} (not a run folder with an unfinished TSTR fit)")
        info = finish(folder / "pending-cond.npz", folder / "tstr-cond.pt",
                      out_dir / f"{folder.name}-tstr-cond.pt", recipe, device)
        print(folder.name, info, flush=True)
