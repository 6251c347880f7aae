"""Re-score finished store entries with another evaluator, from the series each entry keeps.

``tvq rescore --evaluator lee2023`` reads, for every finished entry of the store, the
generated series it stored (``samples_uncond.npy``: the first unconditional run;
``samples_cond.npy`` with ``labels_cond.npy``: the class-conditional run) and scores them
with the chosen evaluator: FID and IS of both sets, the FID floor (real train vs real test)
and TRTR with that network, and the class diagnostics of :func:`tvq.evaluate.class_diagnostics`.
The result goes into the entry's ``rescored[<evaluator>]``, beside the metrics the entry was
written with, which stay as they were. Nothing is sampled or trained, except that
``--evaluator own`` trains tvq's own FCN where the cache lacks it (appendix-D recipe, the
entry's seed: the same network the entry was first scored with).

Entries written before tvq kept 1024 series keep 256 of them; an FID over 256 series is
biased upwards against one over 1024 (the sample covariance is noisier), so ``n_uncond`` and
``n_cond`` are stored with every result and the book never sets the two side by side unmarked.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import from_mapping
from .data import load_ucr
from .device import resolve_device, set_threads
from .errors import TvqError
from .io import write_json
from .reproduce import is_done, results_root


def rescore_entry(entry: Path, evaluator: str, device: str = "cpu") -> dict[str, Any]:
    """Score one entry's stored series with ``evaluator``; write and return ``rescored[evaluator]``."""
    from .evaluate import evaluator_scores, fid_floor, get_evaluator, validate_labels, validate_samples
    from .train import software_versions

    record = json.loads((entry / "entry.json").read_text())
    cfg = from_mapping({**record["config"], "evaluator": evaluator})
    ds = load_ucr(cfg.dataset, data_dir=cfg.data_dir or None, scaling=cfg.scaling)
    t0 = time.monotonic()
    model, trtr = get_evaluator(ds, cfg, device=device)
    x_u = validate_samples(np.load(entry / "samples_uncond.npy", allow_pickle=False).astype(np.float32), ds.length)
    x_c = validate_samples(np.load(entry / "samples_cond.npy", allow_pickle=False).astype(np.float32), ds.length)
    y_c = validate_labels(np.load(entry / "labels_cond.npy", allow_pickle=False), len(x_c), ds.n_classes)
    uncond = evaluator_scores(model, ds, x_u, seed=cfg.seed, device=device, score_series=cfg.score_series)
    cond = evaluator_scores(model, ds, x_c, y_c, seed=cfg.seed, device=device, score_series=cfg.score_series)
    result = {
        "evaluator": evaluator, "source": "the series stored in the entry (float16)",
        "n_uncond": uncond["n_scored"], "n_cond": cond["n_scored"],
        "fid_uncond": uncond["fid"], "is_uncond": uncond["is_mean"], "is_uncond_std": uncond["is_std"],
        "fid_cond": cond["fid"], "is_cond": cond["is_mean"],
        "trtr": float(trtr), "fid_train_vs_test": float(fid_floor(ds, cfg, device=device, model=model)),
        "class_split_uncond": uncond["class_split"], "train_split": uncond["train_split"],
        "class_split_cond": cond["class_split"], "per_class_accuracy_cond": cond["per_class_accuracy"],
        "wall_s": round(time.monotonic() - t0, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": software_versions(),
    }
    record.setdefault("rescored", {})[evaluator] = result
    write_json(entry / "entry.json", record)
    return result


def rescore_store(evaluator: str, root: Path | None = None, datasets: list[str] | None = None,
                  device: str = "cpu", log=print) -> list[dict[str, Any]]:
    """:func:`rescore_entry` over every finished entry (optionally of some datasets only)."""
    root = root or results_root()
    out = []
    for entry in sorted(root.glob("*/*")):
        if not is_done(entry) or (datasets and entry.parent.name not in datasets):
            continue
        r = rescore_entry(entry, evaluator, device=device)
        log(f"{entry.parent.name}/{entry.name}: FID {r['fid_uncond']:.3f} (n={r['n_uncond']}), "
            f"conditional {r['fid_cond']:.3f}, TRTR {r['trtr']:.4f}, floor {r['fid_train_vs_test']:.3f}")
        out.append({"entry": str(entry), **r})
    if not out:
        raise TvqError(f"no finished entry to re-score in {root}")
    return out


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rescore", help="score the series stored in finished entries with another evaluator")
    p.add_argument("--evaluator", choices=("lee2023", "own"), default="lee2023",
                   help="lee2023: the thesis's pretrained FCNs (default); own: tvq's FCN")
    p.add_argument("--datasets", default="", help="comma-separated dataset names (default: every entry)")
    p.add_argument("--results", default=None, help="results store (default: $TVQ_RESULTS_DIR or ./results)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    names = [n for n in args.datasets.split(",") if n]
    rescore_store(args.evaluator, Path(args.results) if args.results else None, names,
                  device=str(resolve_device(args.device)), log=lambda m: print(m, file=sys.stderr))
    return 0
