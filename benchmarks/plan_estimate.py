"""Projected cost of datasets that were not timed, from FLOP counts and the datasets that were.

Timing every phase of every offline dataset on its real shape (what ``plan_reproduce.py`` does) is
hours of CPU for the long series. A phase's step costs about a fixed overhead plus its
floating-point work at some rate, so for each phase this module

1. counts the FLOPs of one step on the dataset's shape (``torch.utils.flop_counter``: matrix
   multiplies and convolutions, forward and backward; batch 2, scaled to the phase's batch: the
   networks' work is linear in the batch), which takes a second or two per dataset;
2. fits ``seconds per step = a + FLOPs / rate`` by least squares on the rows that were timed
   (``a, rate >= 0``), phase by phase;
3. projects the untimed datasets' steps with it, marking their rows ``"estimated": true``.

The rows fitted on can also be whole finished runs (``plan_reproduce.py --fit-on done``): their
load varied from run to run, so :func:`fit` then weighs relative errors under a soft-L1 loss.
The fit's leave-one-out error over the timed rows is reported beside it: the projection is as good
as that, for shapes inside the timed range, and unchecked outside it (larger arithmetic runs at a
better rate, so a long series is more likely over- than under-estimated).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tvq.fcn import FCN
from tvq.model import TimeVQVDM

PHASES = ("train_stage1", "train_stage2", "sampling_uncond", "sampling_cond", "tstr")


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def step_flops(cfg, n_train: int, length: int, n_classes: int) -> dict[str, float]:
    """FLOPs of one step of each phase: an optimiser step of stage 1, of stage 2 and of TSTR's FCN
    at their batch sizes, and one network evaluation of the sampler for one series (both priors;
    a guided step evaluates the conditional and the unconditional branch, so twice that)."""
    torch.manual_seed(0)
    model = TimeVQVDM.from_config(cfg, length=length, n_classes=n_classes)
    x = torch.randn(2, length)
    y = torch.arange(2) % n_classes
    g = torch.Generator().manual_seed(0)
    model.train()
    s1 = _flops(lambda: model.stage1_loss(x)["total"].backward()) / 2
    model.eval()
    with torch.no_grad():
        model.fit_scalers(x)
        z_lf, z_hf = model.encode(x)
    model.train()
    model.stage1.eval()
    s2 = _flops(lambda: model.stage2_loss(z_lf, z_hf, y, g)["total"].backward()) / 2
    model.eval()
    t = torch.tensor(0.5)
    with torch.no_grad():
        cond = z_lf if cfg.lf_conditioning else None
        net = _flops(lambda: (model.unet_lf(z_lf, t, None), model.unet_hf(z_hf, t, None, cond=cond))) / 2
    fcn = FCN(n_classes).train()
    f = _flops(lambda: torch.nn.functional.cross_entropy(fcn(x), y).backward()) / 2
    return {"train_stage1": s1 * min(n_train, cfg.stage1_batch_size),
            "train_stage2": s2 * min(n_train, cfg.stage2_batch_size),
            "sampling_uncond": net, "sampling_cond": 2 * net,
            "tstr": f * min(cfg.n_samples, cfg.fcn_batch_size)}


def step_counts(cfg, n_train: int) -> dict[str, float]:
    """Steps of each phase in a full run, in the units of :func:`step_flops` (sampling: series x
    network steps)."""
    return {"train_stage1": cfg.stage1_epochs * math.ceil(n_train / cfg.stage1_batch_size),
            "train_stage2": cfg.stage2_epochs * math.ceil(n_train / cfg.stage2_batch_size),
            "sampling_uncond": cfg.n_runs * cfg.n_samples * cfg.steps_uncond,
            "sampling_cond": cfg.n_samples * cfg.steps_cond,
            "tstr": cfg.fcn_epochs * math.ceil(cfg.n_samples / cfg.fcn_batch_size)}


def timed_steps(row: dict, cfg) -> dict[str, float]:
    """The step counts a timed row's minutes were measured for. Rows written before they carried
    them (``timed_steps``) and the thesis profile were all timed while it drew its unconditional
    series at the earlier 128 steps (:data:`tvq.results.EARLIER_DEFAULTS`), and are read as such;
    no other profile's step counts have moved."""
    if "timed_steps" in row:
        return row["timed_steps"]
    if row.get("profile") != "thesis":
        return step_counts(cfg, row["n_train"])
    from tvq.results import EARLIER_DEFAULTS

    return step_counts(cfg.replace(steps_uncond=EARLIER_DEFAULTS["steps_uncond"]), row["n_train"])


def at_profile(row: dict, cfg) -> dict:
    """A timed row with each phase's minutes scaled to the step counts of ``cfg`` (a phase is a fixed
    number of identical steps, so its time is linear in them); ``rescaled`` names the phases that
    moved, and totals follow."""
    then, now = timed_steps(row, cfg), step_counts(cfg, row["n_train"])
    moved = [p for p in PHASES if then[p] != now[p]]
    if not moved:
        return row
    minutes = dict(row["minutes"])
    for p in moved:
        minutes[p] = round(minutes[p] * now[p] / then[p], 1) if then[p] else minutes[p]
    hours = sum(minutes.values()) / 60
    return {**row, "minutes": minutes, "total_hours": round(hours, 2),
            "core_hours": round(hours * row.get("threads", 1), 2), "timed_steps": then, "rescaled": moved}


def _fit(flops: np.ndarray, secs: np.ndarray) -> tuple[float, float]:
    """Least squares ``secs = a + b * flops`` with a, b >= 0 (b = 1 / rate)."""
    if len(flops) == 1 or np.ptp(flops) == 0:
        return 0.0, float(np.sum(secs) / np.sum(flops))
    b, a = np.polyfit(flops, secs, 1)
    if a < 0:                                  # no negative overhead: a line through the origin
        return 0.0, float(np.dot(flops, secs) / np.dot(flops, flops))
    if b < 0:                                  # no negative rate: the overhead alone
        return float(np.mean(secs)), 0.0
    return float(a), float(b)


def _fit_robust(flops: np.ndarray, secs: np.ndarray, f_scale: float = 0.25) -> tuple[float, float]:
    """``secs = a + b * flops`` with a, b >= 0, fitted on relative residuals ``(a + b f) / s - 1``
    under a soft-L1 loss: whole runs carry the load that happened to be beside them (and, once, a
    pause), so a point off by a factor should pull the line less than a squared error lets it,
    and a small dataset's step counts as much as a large one's."""
    from scipy.optimize import least_squares

    g = flops / 1e9                            # GFLOP: both parameters of order one
    a0, b0 = _fit(flops, secs)
    res = least_squares(lambda p: (p[0] + p[1] * g) / secs - 1.0, x0=[max(a0, 1e-6), max(b0 * 1e9, 1e-6)],
                        bounds=([0.0, 0.0], [np.inf, np.inf]), loss="soft_l1", f_scale=f_scale)
    return float(res.x[0]), float(res.x[1] / 1e9)


def fit(timed: list[dict], robust: bool = False) -> dict[str, tuple[float, float]]:
    """Per phase, (a, b) of ``seconds per step = a + b * FLOPs`` over rows that carry both their
    measured minutes and their ``step_flops``: least squares, or with ``robust`` the relative
    soft-L1 fit of :func:`_fit_robust` (for whole runs, whose load varied)."""
    out = {}
    for phase in PHASES:
        pts = [(r["step_flops"][phase], 60 * r["minutes"][phase] / r["steps"][phase])
               for r in timed if r.get("step_flops") and r["steps"][phase]]
        if pts:
            f, s = map(np.array, zip(*pts))
            out[phase] = _fit_robust(f, s) if robust and len(pts) > 2 and np.ptp(f) > 0 else _fit(f, s)
    return out


def project(model: dict[str, tuple[float, float]], flops: dict[str, float], steps: dict[str, float]) -> dict[str, float]:
    """Projected minutes per phase."""
    return {p: steps[p] * (model[p][0] + model[p][1] * flops[p]) / 60 for p in PHASES}


def loo_hours(timed: list[dict], robust: bool = False) -> list[float | None]:
    """Each row's total hours projected by the line fitted on the other rows (None where the rest
    cannot fit every phase)."""
    out: list[float | None] = []
    for i, row in enumerate(timed):
        rest = timed[:i] + timed[i + 1:]
        model = fit(rest, robust)
        if len(rest) < 2 or set(model) != set(PHASES):
            out.append(None)
            continue
        out.append(sum(project(model, row["step_flops"], row["steps"]).values()) / 60)
    return out


def leave_one_out(timed: list[dict], robust: bool = False) -> float | None:
    """Median relative error of the projected total hours of each timed row, fitted without it."""
    errs = []
    for row, hours in zip(timed, loo_hours(timed, robust)):
        if hours is None:
            continue
        real = sum(row["minutes"][p] for p in PHASES) / 60
        errs.append(abs(hours - real) / real)
    return float(np.median(errs)) if errs else None
