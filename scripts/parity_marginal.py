"""Unconditional series two ways from the same trained priors (issue: quality parity, the class split).

The protocol draws unconditional series with the null class (classifier-free guidance's
unconditional branch, trained on a ``p_uncond`` share of the batches). The joint p(y) p(x | y)
is another route to the same marginal: draw each label from the training split, then the series
from the conditional branch. Where the null branch skews towards one class, the evaluator's class
split of the two routes says so. For one run this script draws ``N`` series each way (128 steps;
the conditional route at w = 1, pure conditional, and at the protocol's w = 3) and merges, per
route, FID/IS/class split with the thesis evaluator into ``results/parity/<dataset>-marginal.json``.

    TVQ_EVALUATOR_DIR=... python scripts/parity_marginal.py runs/parity/GunPoint-fixed-s0 512 fixed-s0

With ``--protocol`` it draws instead what ``tvq reproduce`` draws for its first unconditional run,
both ways: the run's own unconditional setting (``steps_uncond``, ``sample_noise``, no guidance)
and the same generators, once with ``uncond_labels=null`` and once with ``train_prior``; ``N``
defaults to the run's ``n_samples``. The null route of a model that made a store entry then
repeats that entry's run 0 to the bit, which checks that the comparison is like for like.

    python scripts/parity_marginal.py --protocol runs/parity/GunPoint-prior-s0 1024 prior-s0

``-p KEY=VALUE`` (with ``--protocol``; sampling fields only, repeatable) changes the run's setting for
both routes, and the routes' names in the JSON file say what was changed.
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
from tvq.train import hardware_summary, load_model, weights_digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import merge_entry  # noqa: E402  (the sibling script)

ROUTES = (("null class, 128 steps", None), ("class prior, w=1, 128 steps", 1.0), ("class prior, w=3, 128 steps", 3.0))
PROTOCOL_ROUTES = (("protocol, null class", "null"), ("protocol, class prior", "train_prior"))


def protocol_draw(model, route: str, n: int, class_counts, cfg=None) -> np.ndarray:
    """The first unconditional run of ``tvq reproduce`` (its generators, its options) by ``route``;
    ``cfg`` (default: the run's config) says the sampling setting."""
    from tvq.sampling import SamplerOptions, unconditional_labels
    cfg = cfg or model.cfg
    gen = torch.Generator().manual_seed(cfg.seed * 1000)
    labels = unconditional_labels(route, class_counts, n, torch.Generator().manual_seed(cfg.seed * 1000 + 500))
    # the null class's options are what TimeVQVDM.sample builds from the run's config by default
    return model.sample(n, class_labels=labels, options=SamplerOptions.from_config(cfg, False), generator=gen).numpy()


def main() -> int:
    import argparse

    from tvq.config import SAMPLING, fields_with_role, parse_overrides
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("n", type=int, nargs="?", help="series per route (default 512; with --protocol the run's n_samples)")
    ap.add_argument("name", nargs="?", help="the model's name in the JSON file (default: the folder name)")
    ap.add_argument("--protocol", action="store_true", help="draw both routes as tvq reproduce draws its first run")
    ap.add_argument("-p", dest="params", action="append", metavar="KEY=VALUE", help="a sampling field (with --protocol)")
    args = ap.parse_args()
    overrides = parse_overrides(args.params)
    if overrides and (not args.protocol or set(overrides) - set(fields_with_role(SAMPLING))):
        ap.error("-p takes sampling fields, and only with --protocol")
    protocol = args.protocol
    torch.set_num_threads(1)
    run = args.run
    model, meta = load_model(run, "cpu")
    n = args.n or (model.cfg.n_samples if protocol else 512)
    name = args.name or run.name
    weights = weights_digest(model)
    ds = load_ucr(meta["config"]["dataset"])
    ev = load_evaluator(ds.name, ds.n_classes)
    prior = np.bincount(np.asarray(ds.y_train), minlength=ds.n_classes) / len(ds.y_train)
    out = Path(__file__).resolve().parent.parent / "results" / "parity" / f"{ds.name}-marginal.json"
    cfg = model.cfg.replace(**overrides)
    changed = "".join(f", {k}={v}" for k, v in sorted(overrides.items()))
    for what, w in (PROTOCOL_ROUTES if protocol else ROUTES):
        t0 = time.monotonic()
        what = what + changed
        if protocol:
            x = protocol_draw(model, w, n, np.bincount(np.asarray(ds.y_train), minlength=ds.n_classes), cfg)
        elif w is None:
            x = model.sample(n, generator=torch.Generator().manual_seed(1)).numpy()
        else:
            labels = torch.from_numpy(np.random.default_rng(5).choice(ds.n_classes, size=n, p=prior))
            x = model.sample(n, class_labels=labels, generator=torch.Generator().manual_seed(1),
                             steps=128, guidance=w).numpy()
        s = evaluator_scores(ev, ds, x, seed=0)
        rec = {"dataset": ds.name, "run": str(run), "n": n, "route": what, "fid": s["fid"], "is_mean": s["is_mean"],
               "class_split": [float(v) for v in s["class_split"]], "train_split": [float(v) for v in prior],
               "wall_s": round(time.monotonic() - t0, 1), "weights_sha256": weights,
               "hardware": {**hardware_summary(model.device), "threads": torch.get_num_threads()}}
        merge_entry(out, f"{name} | {what}", rec)
        print(f"{name} | {what}: FID {s['fid']:.2f} split {np.round(s['class_split'], 3).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
