"""What keeping freed memory in the process (``tvq.device.tune_host_allocator``) does to each phase.

glibc maps every large block afresh and returns it to the kernel when it is freed, so a CPU step
whose layers allocate tens of MiB page-faults that memory in again and again; ``reuse`` (what
the ``tvq`` command sets at start) keeps it. The setting is process-wide and cannot be undone,
so each mode runs in a child process of its own; the modes alternate over ``--rounds`` rounds
and each phase keeps its median per mode, so that a machine whose speed drifts during the run
weighs on both alike. The phases: a stage-1, stage-2 and TSTR-FCN optimiser step at the thesis
profile's batch sizes; ``draw``, ``--n-samples`` series through the null class (one batch of n
per network evaluation, as every unguided draw runs); ``guided draw``, as many with class labels at
the profile's guidance w = 3 (a batch of 2n); n is the protocol's 1024 by default. Per phase it
prints the median seconds per mode and the ratio system / reuse, with each child's peak resident
memory and an fp32 matmul probe (GFLOP/s) read in every child beside them.

    python benchmarks/bench_allocator.py                       # CBF, 1 thread, 2 rounds
    python benchmarks/bench_allocator.py --dataset ECG5000 --threads 2 --rounds 3

One JSON object per child and a last line ``{"summary": ...}``.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

PHASES = ("stage1 step", "stage2 step", "fcn step", "draw", "guided draw")


def child(args: argparse.Namespace) -> dict:
    """Time every phase once under ``args.child`` (run in a fresh process)."""
    import torch

    from tvq.device import tune_host_allocator

    allocator = tune_host_allocator(args.child)          # first, before torch allocates anything large
    from bench_phases import fcn_step, matmul_peak
    from timing import median_seconds, stage1_step, stage2_step

    from tvq.config import load_config
    from tvq.data import load_ucr
    from tvq.model import TimeVQVDM
    from tvq.sampling import class_labels_by_proportion

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    ds = load_ucr(args.dataset)
    cfg = load_config("thesis", {"dataset": args.dataset})
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    probe_before = matmul_peak(cpu, False)[0]
    torch.manual_seed(0)
    model = TimeVQVDM.from_config(cfg, length=ds.length, n_classes=ds.n_classes)
    g = torch.Generator().manual_seed(0)
    s1, s2 = stage1_step(model, x, cfg.stage1_batch_size, g), stage2_step(model, x, y, cfg.stage2_batch_size, g)
    fcn = fcn_step(ds.n_classes, x, cfg.fcn_batch_size, g)
    model.eval()
    labels = class_labels_by_proportion(ds.y_train, args.n_samples, torch.Generator().manual_seed(0),
                                        n_classes=ds.n_classes)

    def draw(guided: bool):
        def run() -> None:
            with torch.no_grad():
                model.sample(args.n_samples, class_labels=labels if guided else None, steps=args.sample_steps,
                             generator=torch.Generator().manual_seed(0))
        return run

    fns = {"stage1 step": s1, "stage2 step": s2, "fcn step": fcn, "draw": draw(False), "guided draw": draw(True)}
    seconds = {name: median_seconds(fn, args.steps if "step" in name else 1, cpu) for name, fn in fns.items()}
    return {"mode": args.child, "allocator": allocator, "threads": torch.get_num_threads(),
            "seconds": {k: round(v, 4) for k, v in seconds.items()},
            "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "matmul_probe_gflops": [round(probe_before, 1), round(matmul_peak(cpu, False)[0], 1)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="CBF")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3, help="timed optimiser steps per phase (median)")
    ap.add_argument("--n-samples", type=int, default=1024, help="series per draw (the protocol's batch)")
    ap.add_argument("--sample-steps", type=int, default=8, help="network evaluations per band and draw")
    ap.add_argument("--rounds", type=int, default=2, help="children per mode, alternating")
    ap.add_argument("--modes", default="system,reuse")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    modes = args.modes.split(",")
    rows = []
    for _ in range(args.rounds):
        for mode in modes:
            cmd = [sys.executable, __file__, "--child", mode] + [
                f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("child", "modes", "rounds")]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
            if proc.returncode != 0:
                sys.exit(f"bench_allocator: the {mode} child failed:\n{proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    med = {m: {ph: statistics.median(r["seconds"][ph] for r in rows if r["mode"] == m) for ph in PHASES}
           for m in modes}
    summary = {"dataset": args.dataset, "threads": args.threads, "n_samples": args.n_samples,
               "sample_steps": args.sample_steps, "median_seconds": med,
               "max_rss_gib": {m: max(r["max_rss_gib"] for r in rows if r["mode"] == m) for m in modes},
               "matmul_probe_gflops": [min(p for r in rows for p in r["matmul_probe_gflops"]),
                                       max(p for r in rows for p in r["matmul_probe_gflops"])]}
    if {"system", "reuse"} <= set(modes):
        summary["speedup_reuse"] = {ph: round(med["system"][ph] / med["reuse"][ph], 2) for ph in PHASES}
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
