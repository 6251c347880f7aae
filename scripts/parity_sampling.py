"""Score trained parity runs under other sampler settings (issue: quality parity with the thesis's code).

The priors of a run stay as they are; only how they are sampled changes. For each run and each
setting (comma-separated ``SamplerOptions`` fields, ``base`` for the run's own) it draws ``--n``
unconditional series and ``--per-class`` conditional series per class, and records with the
thesis's evaluator:

* unconditional FID, IS and the evaluator's class split (next to the training split);
* conditional FID and the evaluator's accuracy per class asked for;
* the setting, seeds, sample counts, wall time and hardware.

Each run/setting pair is one entry of ``--out`` (``"RUN | SETTING"``), merged atomically, so
several of these can run side by side into one file. The book's development chapter reads it.

    TVQ_EVALUATOR_DIR=... python scripts/parity_sampling.py runs/parity/GunPoint-thesis-s0 \\
        --name thesis-s0 --setting base --setting noise_scale=variance --setting sampler=ddim \\
        --out results/parity/GunPoint-sampling.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tvq.data import load_ucr
from tvq.evaluate import evaluator_scores
from tvq.lee2023 import load_evaluator
from tvq.sampling import SamplerOptions
from tvq.train import hardware_summary, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import add_scoring_args, merge_entry  # noqa: E402  (the sibling script)


def parse_setting(text: str) -> dict[str, Any]:
    """``"sampler=ddim,steps=32"`` → ``{"sampler": "ddim", "steps": 32}``; ``"base"`` → ``{}``."""
    if text.strip() in ("", "base"):
        return {}
    out: dict[str, Any] = {}
    fields = {f.name: f for f in SamplerOptions.__dataclass_fields__.values()}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise SystemExit(f"parity_sampling: bad setting {part!r} (fields: {', '.join(fields)})")
        default = getattr(SamplerOptions(), key)
        if isinstance(default, bool):
            out[key] = value.strip().lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float)):
            out[key] = type(default)(value)
        else:
            out[key] = value.strip()
    SamplerOptions().replace(**out)  # validate once, before any work
    return out


def score(run: Path, setting: dict[str, Any], n: int, per_class: int, seed: int) -> dict[str, Any]:
    model, meta = load_model(run, "cpu")
    ds = load_ucr(meta["config"]["dataset"])
    ev = load_evaluator(ds.name, ds.n_classes)
    t0 = time.monotonic()
    x = model.sample(n, generator=torch.Generator().manual_seed(seed), batch_size=n, **setting).numpy()
    uncond = evaluator_scores(ev, ds, x, seed=0)
    t_uncond = time.monotonic() - t0
    labels = torch.arange(ds.n_classes).repeat_interleave(per_class)
    t0 = time.monotonic()
    xc = model.sample(len(labels), class_labels=labels, generator=torch.Generator().manual_seed(seed + 1),
                      batch_size=len(labels), **setting).numpy()
    cond = evaluator_scores(ev, ds, xc, labels=labels.numpy(), seed=0)
    t_cond = time.monotonic() - t0
    opts_u = SamplerOptions.from_config(model.cfg, False).replace(**setting)
    opts_c = SamplerOptions.from_config(model.cfg, True).replace(**setting)
    keep = ("fid", "is_mean", "is_std", "n_scored", "class_split", "train_split")
    return {"dataset": ds.name, "run": str(run), "setting": setting, "seed": seed,
            "budget": {k: meta["config"][k] for k in ("stage1_epochs", "stage2_epochs")},
            "uncond": {**{k: uncond[k] for k in keep}, "steps": opts_u.steps, "sampler": opts_u.sampler,
                       "noise_scale": opts_u.noise_scale},
            "cond": {"fid": cond["fid"], "per_class": per_class, "per_class_accuracy": cond["per_class_accuracy"],
                     "steps": opts_c.steps, "guidance": opts_c.guidance},
            "wall_s": {"uncond": round(t_uncond, 1), "cond": round(t_cond, 1)},
            "hardware": {**hardware_summary(model.device), "threads": torch.get_num_threads()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", default=None, help="the run's name in the file (default: its folder name)")
    ap.add_argument("--setting", action="append", default=None,
                    help="comma-separated SamplerOptions fields, or 'base' (repeatable; default: base)")
    add_scoring_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = [(text, parse_setting(text)) for text in (args.setting or ["base"])]
    name = args.name or args.run.name
    for text, setting in settings:
        entry = score(args.run, setting, args.n, args.per_class, args.seed)
        merge_entry(args.out, f"{name} | {text}", entry)
        u, c = entry["uncond"], entry["cond"]
        print(f"{name} | {text}: FID {u['fid']:.2f} split {np.round(u['class_split'], 3).tolist()} "
              f"cond FID {c['fid']:.2f} accuracy {np.round(c['per_class_accuracy'], 3).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
