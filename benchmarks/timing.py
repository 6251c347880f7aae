"""What the benchmarks time, written once: one optimiser step of stage 1, of stage 2, and of the
FCN, each through the package's own code, and a median over repeats that waits for the GPU.

The scripts beside this file import it (``python benchmarks/X.py`` puts this folder on the
path); it is not part of the ``tvq`` package.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from tvq.fcn import Recipe, train_fcn


def model_setting_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the setting every model benchmark shares: dataset, threads, device, batch."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--dataset", default="ECG5000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=128)
    return ap


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, queued GPU work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median of ``repeats`` timed calls after ``warmup`` untimed ones (allocation, kernel choice)."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds(fn, device) for _ in range(repeats))


def stage1_step(model, x: torch.Tensor, batch_size: int, generator: torch.Generator):
    """One AdamW step of Algorithm 1 on ``batch_size`` series drawn from ``x`` (model in train mode)."""
    model.train()
    opt = torch.optim.AdamW(model.stage1_parameters(), lr=1e-3, foreach=True)  # the rate does not change a step's cost

    def step() -> None:
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        loss = model.stage1_loss(x[idx])["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def stage2_step(model, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator):
    """One AdamW step of Algorithm 2: the scalers are fitted and the latents of ``x`` encoded once,
    by the frozen stage 1, as training does."""
    model.fit_scalers(x)
    z0_lf, z0_hf = model.encode(x)
    model.train()
    model.stage1.eval()
    opt = torch.optim.AdamW(model.stage2_parameters(), lr=1e-3, foreach=True)  # the rate does not change a step's cost

    def step() -> None:
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        loss = model.stage2_loss(z0_lf[idx], z0_hf[idx], y[idx], generator)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def fcn_step_seconds(n: int, length: int, n_classes: int, recipe: Recipe, epochs: int,
                     device: torch.device) -> float:
    """Seconds per optimiser step of :func:`tvq.fcn.train_fcn` itself (batch order, learning-rate
    schedule, AdamW) over ``epochs`` epochs on ``n`` random series, after a one-step warm-up."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, length)).astype(np.float32)
    y = np.arange(n) % n_classes
    warm = min(n, recipe.batch_size)
    train_fcn(x[:warm], y[:warm], n_classes, replace(recipe, epochs=1), device=device)
    total = seconds(lambda: train_fcn(x, y, n_classes, replace(recipe, epochs=epochs), device=device), device)
    return total / (epochs * math.ceil(n / recipe.batch_size))
