"""Cost of TSTR: seconds per FCN optimiser step, and the projected time of one TSTR fit.

TSTR trains a fresh FCN (appendix D recipe: batch 256, 1000 epochs) on the 1024 class-
conditional samples, so it costs ``1000 * ceil(1024 / 256) = 4000`` steps whatever the
training-set size; a step's cost grows with the series length. On a CPU this is most of a
full-budget ``tvq reproduce`` (about 60 % on the lengths 128-136 of the results store), so
the projection is what to plan a run of the archive with. One JSON line per length. Other
processes on the same cores slow it down in proportion: time on an idle machine.

    python benchmarks/bench_tstr.py                          # lengths 24 96 136 288, CPU
    python benchmarks/bench_tstr.py --lengths 512 1024 --epochs 3 --device cuda
    python benchmarks/bench_tstr.py --threads 1              # as the store's runs were made
"""
from __future__ import annotations

import argparse
import json
import math

from timing import fcn_step_seconds
from tvq.config import load_config
from tvq.device import resolve_device, set_threads
from tvq.fcn import Recipe
from tvq.train import hardware_summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[24, 96, 136, 288])
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per length (4 steps each with 1024 samples)")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1024, help="size of the synthetic training set")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    cfg = load_config("thesis")
    device = resolve_device(args.device)
    if args.threads:
        set_threads(args.threads)
    total_steps = cfg.fcn_epochs * math.ceil(args.samples / cfg.fcn_batch_size)
    for length in args.lengths:
        s = fcn_step_seconds(args.samples, length, args.classes, Recipe.from_config(cfg), args.epochs, device)
        print(json.dumps({"length": length, "batch": cfg.fcn_batch_size, "s_per_step": round(s, 4),
                          "tstr_steps": total_steps, "tstr_minutes": round(s * total_steps / 60, 1),
                          **hardware_summary(device)}), flush=True)


if __name__ == "__main__":
    main()
