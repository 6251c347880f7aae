"""Cost of TSTR: seconds per FCN optimiser step, and the projected time of one TSTR fit.

TSTR trains a fresh FCN (appendix D recipe: batch 256, 1000 epochs) on the 1024 class-
conditional samples, so it costs ``1000 * ceil(1024 / 256) = 4000`` steps whatever the
training-set size; a step's cost grows with the series length. On a CPU this is most of a
full-budget ``tvq reproduce`` (about 60 % on the lengths 128-136 of the results store), so
the projection is what to plan a run of the archive with. One JSON line per length. Other
processes on the same cores slow it down in proportion: time on an idle machine.

    python benchmarks/bench_tstr.py                          # lengths 24 96 136 288, CPU
    python benchmarks/bench_tstr.py --lengths 512 1024 --steps 3 --device cuda
    python benchmarks/bench_tstr.py --threads 1              # as the store's runs were made
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

from tvq.config import load_config
from tvq.device import resolve_device, set_threads
from tvq.fcn import FCN
from tvq.train import hardware_summary


def time_steps(length: int, n_classes: int, batch: int, steps: int, device: torch.device) -> float:
    """Median wall seconds of one training step (forward, backward, AdamW) after one warm-up step."""
    torch.manual_seed(0)
    model = FCN(n_classes).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    x = torch.randn(batch, length, device=device)
    y = torch.randint(0, n_classes, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step pays for allocation and kernel selection
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[24, 96, 136, 288])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per length (median reported)")
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
        s = time_steps(length, args.classes, cfg.fcn_batch_size, args.steps, device)
        print(json.dumps({"length": length, "batch": cfg.fcn_batch_size, "s_per_step": round(s, 4),
                          "tstr_steps": total_steps, "tstr_minutes": round(s * total_steps / 60, 1),
                          **hardware_summary(device)}), flush=True)


if __name__ == "__main__":
    main()
