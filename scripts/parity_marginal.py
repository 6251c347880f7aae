"""Unconditional series two ways from the same trained priors (issue: quality parity, the class split).

The protocol draws unconditional series with the null class (classifier-free guidance's
unconditional branch, trained on a ``p_uncond`` share of the batches). The joint p(y) p(x | y)
is another route to the same marginal: draw each label from the training split, then the series
from the conditional branch. Where the null branch skews towards one class, the evaluator's class
split of the two routes says so. For one run this script draws ``N`` series each way (128 steps;
the conditional route at w = 1, pure conditional, and at the protocol's w = 3) and merges, per
route, FID/IS/class split with the thesis evaluator into ``results/parity/<dataset>-marginal.json``.

    TVQ_EVALUATOR_DIR=... python scripts/parity_marginal.py runs/parity/GunPoint-fixed-s0 512 fixed-s0
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from tvq.data import load_ucr
from tvq.evaluate import evaluator_scores
from tvq.lee2023 import load_evaluator
from tvq.train import hardware_summary, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import merge_entry  # noqa: E402  (the sibling script)

ROUTES = (("null class, 128 steps", None), ("class prior, w=1, 128 steps", 1.0), ("class prior, w=3, 128 steps", 3.0))


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    run = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    name = sys.argv[3] if len(sys.argv) > 3 else run.name
    model, meta = load_model(run, "cpu")
    ds = load_ucr(meta["config"]["dataset"])
    ev = load_evaluator(ds.name, ds.n_classes)
    prior = np.bincount(np.asarray(ds.y_train), minlength=ds.n_classes) / len(ds.y_train)
    out = Path(__file__).resolve().parent.parent / "results" / "parity" / f"{ds.name}-marginal.json"
    for what, w in ROUTES:
        t0 = time.monotonic()
        if w is None:
            x = model.sample(n, generator=torch.Generator().manual_seed(1)).numpy()
        else:
            labels = torch.from_numpy(np.random.default_rng(5).choice(ds.n_classes, size=n, p=prior))
            x = model.sample(n, class_labels=labels, generator=torch.Generator().manual_seed(1),
                             steps=128, guidance=w).numpy()
        s = evaluator_scores(ev, ds, x, seed=0)
        rec = {"dataset": ds.name, "run": str(run), "n": n, "route": what, "fid": s["fid"], "is_mean": s["is_mean"],
               "class_split": [float(v) for v in s["class_split"]], "train_split": [float(v) for v in prior],
               "wall_s": round(time.monotonic() - t0, 1),
               "hardware": {**hardware_summary(model.device), "threads": torch.get_num_threads()}}
        merge_entry(out, f"{name} | {what}", rec)
        print(f"{name} | {what}: FID {s['fid']:.2f} split {np.round(s['class_split'], 3).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
