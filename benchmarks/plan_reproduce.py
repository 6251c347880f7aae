"""Projected wall time of ``tvq reproduce`` per dataset on this machine, from timed steps.

A full-budget run is a fixed number of identical steps per phase, so its cost is (seconds per
step, timed here on the dataset's real shape) x (steps, counted from the profile). For each
dataset this script times a few steps of every phase with the untrained thesis architecture,
multiplies, and prints one JSON line:

- evaluator: the FCN on the training set, ``fcn_epochs * ceil(N / fcn_batch_size)`` steps;
- stage 1 and stage 2: ``epochs * ceil(N / batch_size)`` optimiser steps each;
- unconditional sampling: ``n_runs`` draws of ``n_samples`` series at ``steps_uncond`` steps,
  conditional sampling: one draw at ``steps_cond`` (guided: two network passes per step);
  the per-step cost is the difference between a long and a short draw, so the fixed cost of
  decoding is counted once per draw, not per step;
- TSTR: the FCN on ``n_samples`` conditional series, ``fcn_epochs * ceil(n_samples / batch)``.

FID, IS and the memorisation check are seconds and are left out. Other processes on the same
cores slow every phase down alike; time under the load the runs will see (the results store's
CPU runs were made two at a time, one thread each: ``--threads 1`` beside another run).

    python benchmarks/plan_reproduce.py CBF ECGFiveDays --threads 1
    python benchmarks/plan_reproduce.py --offline --threads 1 --markdown    # every wheel dataset
    python benchmarks/plan_reproduce.py Wafer -f params/thesis.yaml --device cuda
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from timing import fcn_step_seconds, median_seconds, seconds, stage1_step, stage2_step
from tvq.config import load_config
from tvq.data import load_ucr
from tvq.data.sources import wheel_names
from tvq.device import resolve_device, set_threads
from tvq.errors import TvqError
from tvq.fcn import Recipe
from tvq.model import TimeVQVDM
from tvq.train import hardware_summary


def sampling_s(model: TimeVQVDM, n: int, steps: int, labels: torch.Tensor | None, device: torch.device,
               short: int = 2, long: int = 6) -> float:
    """Seconds of one draw of ``n`` series at ``steps`` steps: per-step cost from the difference of
    a ``long``- and a ``short``-step draw, plus the fixed cost (decoding the latents, rescaling) once."""
    def draw(k: int) -> float:
        return seconds(lambda: model.sample(n, class_labels=labels, steps=k,
                                            generator=torch.Generator().manual_seed(0)), device)
    draw(short)  # warm-up
    t_short, t_long = draw(short), draw(long)
    per_step = max(0.0, (t_long - t_short) / (long - short))
    fixed = max(0.0, t_short - short * per_step)
    return fixed + steps * per_step


def plan(name: str, params: str, device: torch.device, repeats: int) -> dict:
    ds = load_ucr(name)
    cfg = load_config(params, {"dataset": name, "device": str(device)})
    n, length = len(ds.x_train), ds.length
    torch.manual_seed(0)
    model = TimeVQVDM.from_config(cfg, length=length, n_classes=ds.n_classes).to(device)
    x = torch.from_numpy(ds.x_train).to(device)
    y = torch.from_numpy(ds.y_train).to(device)
    g = torch.Generator().manual_seed(0)

    # 1-2. stage 1 (Algorithm 1), then stage 2 (Algorithm 2) on the frozen stage 1's latents:
    #      one AdamW step each on a batch of min(N, batch size) series
    s1 = median_seconds(stage1_step(model, x, min(n, cfg.stage1_batch_size), g), repeats, device)
    s2 = median_seconds(stage2_step(model, x, y, min(n, cfg.stage2_batch_size), g), repeats, device)

    # 3. sampling (Algorithm 4), one batch of the profile's size, scaled to n_samples
    model.eval()
    nb = min(cfg.n_samples, cfg.sample_batch_size)
    batches = math.ceil(cfg.n_samples / nb)
    labels = torch.arange(nb) % ds.n_classes
    uncond = cfg.n_runs * batches * sampling_s(model, nb, cfg.steps_uncond, None, device)
    cond = batches * sampling_s(model, nb, cfg.steps_cond, labels, device)

    # 4. the two FCN fits: the evaluator on the training set, TSTR on the conditional samples
    recipe = Recipe.from_config(cfg)
    fcn_eval = recipe.epochs * math.ceil(n / recipe.batch_size) * fcn_step_seconds(
        n, length, ds.n_classes, recipe, repeats, device)
    tstr = recipe.epochs * math.ceil(cfg.n_samples / recipe.batch_size) * fcn_step_seconds(
        cfg.n_samples, length, ds.n_classes, recipe, repeats, device)

    minutes = {
        "evaluator": fcn_eval / 60,
        "train_stage1": cfg.stage1_epochs * math.ceil(n / cfg.stage1_batch_size) * s1 / 60,
        "train_stage2": cfg.stage2_epochs * math.ceil(n / cfg.stage2_batch_size) * s2 / 60,
        "sampling_uncond": uncond / 60,
        "sampling_cond": cond / 60,
        "tstr": tstr / 60,
    }
    return {"dataset": name, "n_train": n, "length": length, "profile": cfg.profile,
            "step_s": {"stage1": round(s1, 4), "stage2": round(s2, 4)},
            "minutes": {k: round(v, 1) for k, v in minutes.items()},
            "total_hours": round(sum(minutes.values()) / 60, 2), "threads": torch.get_num_threads(),
            **hardware_summary(device)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", help="UCR dataset names")
    ap.add_argument("--offline", action="store_true", help="every dataset that loads without a download (the data wheels carry 93)")
    ap.add_argument("-f", "--params", default="thesis", help="profile whose budget is projected (default thesis)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed optimiser steps per stage (median) and timed FCN epochs")
    ap.add_argument("--markdown", action="store_true", help="also print a table sorted by projected time")
    args = ap.parse_args()
    names = sorted(wheel_names()) if args.offline else args.datasets
    if not names:
        ap.error("name at least one dataset, or pass --offline")
    set_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    for name in names:
        try:
            row = plan(name, args.params, device, args.repeats)
        except TvqError as exc:
            print(f"plan_reproduce: {name}: {exc}", file=sys.stderr)
            return 2
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.markdown:
        print("\n| dataset | N | L | stage 1 min | stage 2 min | sampling min | TSTR min | total h |\n"
              "|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: r["total_hours"]):
            m = r["minutes"]
            print(f"| {r['dataset']} | {r['n_train']} | {r['length']} | {m['train_stage1']} | {m['train_stage2']} | "
                  f"{m['sampling_uncond'] + m['sampling_cond']:.1f} | {m['tstr']} | {r['total_hours']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
