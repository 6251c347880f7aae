"""Memorisation check of the two unconditional routes on retrained GunPoint priors (issue: quality parity).

For each seed given, draws the protocol's first unconditional run through the class prior and through
the null class, with the sampling setting of params/thesis.yaml (the runs were trained before it was
settled), and merges tvq.metrics.memorisation of each (nearest-training-series distances of the
samples beside those of the real test series) into results/parity/GunPoint-memorisation.json.

    python scripts/parity_memorisation.py 1        # runs/parity/GunPoint-prior-s1
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from tvq.config import SAMPLING, fields_with_role, load_config
from tvq.data import load_ucr
from tvq.io import write_json
from tvq.metrics import memorisation
from tvq.train import load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from parity_marginal import protocol_draw  # noqa: E402  (the sibling script)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    ds = load_ucr("GunPoint")
    counts = np.bincount(ds.y_train, minlength=ds.n_classes)
    settled = load_config("thesis").to_dict()
    out = {}
    for seed in sys.argv[1:]:
        model, _ = load_model(ROOT / "runs" / "parity" / f"GunPoint-prior-s{seed}", "cpu")
        cfg = model.cfg.replace(**{k: settled[k] for k in fields_with_role(SAMPLING) if k != "uncond_labels"})
        for route in ("train_prior", "null"):
            m = memorisation(protocol_draw(model, route, 1024, counts, cfg), ds.x_train, ds.x_test)
            out[f"s{seed} {route}"] = m
            print(seed, route, json.dumps(m), flush=True)
    path = ROOT / "results" / "parity" / "GunPoint-memorisation.json"
    write_json(path, {**(json.loads(path.read_text()) if path.is_file() else {}), **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
