"""Ablations of the thesis's design choices (section 4.1 and Table 3), one dataset at a time.

Two kinds of study, both resumable and both written atomically into the results store:

* **Sampling studies** reuse the model that ``tvq reproduce`` trained for the same profile and
  seed (training it first if it is missing) and only change how it is sampled:

  - ``tmax``: where the reverse process starts and how many steps it takes. The grid is the
    thesis's Table 3 (t_max in {1.0, 0.999, 0.99, 0.98, 0.95} at 32 steps; 128 and 512 steps at
    0.99) plus two cells of ours: t_max = 1.0 at 128 steps, so that the effect of halting can be
    read at the protocol's own step count (the pair is this book's Figures 15/16), and
    t_max = 1.0 at 32 steps with the thesis code's float32 alpha(1) (a tiny negative number
    where the exact value is 0), which is what broke the thesis's t_max = 1 samples.
  - ``rescale``: the γ rescaling after each step (Eq. 31): none, one global std (the thesis's
    code), per sample, and Lin et al.'s guidance rescale, for unconditional sampling (128 steps)
    and class-conditional sampling with guidance (32 steps, w = 3).

  - ``steps``: how few network evaluations each sampler needs. Unconditional FID for every
    sampler of :data:`tvq.sampling.SAMPLERS` at 8, 16, 32, 64 and 128 steps; the 128-step
    ancestral cell (the protocol's) is drawn :data:`STEPS_REPEATS` times with different noise,
    and the spread of those repeats is the yardstick a cheaper cell is measured against.

  Each cell draws ``n_samples`` series and scores FID and IS with the dataset's evaluator; TSTR
  is left out of these studies (it trains one FCN per cell). Output:
  ``<store>/<dataset>/ablations/<study>-<profile>-seed<seed>.json`` and 256 series per cell
  (float16) beside it, for figures.

* **Training studies** retrain with one change and run the whole protocol of
  :func:`tvq.reproduce.reproduce`; the entry is stored under the profile
  ``<profile>+<variant>`` so that it sits beside the unchanged run and never mixes with it:

  - ``no-lf-conditioning``: the HF prior does not see z0_LF (the thesis's fourth trick, undone);
  - ``tokens-d64-K32``: TimeVQVAE's codebook, d = 64 and K = 32 (the first trick, undone);
  - ``hop2``: TimeVQVAE's STFT hop length 2 (the second trick, undone; Figure 13).

``tvq ablate tmax NAME -f params/thesis.yaml``, ``tvq ablate rescale NAME ...``, ``tvq ablate steps NAME ...``,
``tvq ablate train NAME VARIANT ...``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, load_config, parse_overrides
from .errors import ConfigError, TvqError
from .io import save_npy, write_json
from .reproduce import FIGURE_SAMPLES, reproduce, results_root, run_dir

# -- the grids -------------------------------------------------------------------------------------
# (t_max, steps, thesis_alpha). The first seven cells are Table 3's; the last two are ours (see
# the module docstring): t_max = 1 at the protocol's 128 steps, and t_max = 1 at 32 steps with the
# thesis code's float32 alpha(1) < 0, the arithmetic behind the thesis's FID of 1126 at t_max = 1.
TMAX_GRID: tuple[tuple[float, int, bool], ...] = (
    (1.0, 32, False), (0.999, 32, False), (0.99, 32, False), (0.98, 32, False), (0.95, 32, False),
    (0.99, 128, False), (0.99, 512, False), (1.0, 128, False), (1.0, 32, True))

# (name, conditional, rescale_mode, gamma). gamma = 0 switches the rescaling off.
RESCALE_GRID: tuple[tuple[str, bool, str, float], ...] = (
    ("uncond-none", False, "global", 0.0),
    ("uncond-global", False, "global", 0.1),
    ("uncond-per_sample", False, "per_sample", 0.1),
    ("cond-none", True, "global", 0.0),
    ("cond-global", True, "global", 0.1),
    ("cond-per_sample", True, "per_sample", 0.1),
    ("cond-lin", True, "lin", 0.1),
)

# The steps study: every sampler at these step counts, plus repeats of the protocol's own cell.
STEPS_GRID: tuple[int, ...] = (8, 16, 32, 64, 128)
STEPS_REPEATS = 3

TRAINING_VARIANTS: dict[str, dict[str, Any]] = {
    "no-lf-conditioning": {"lf_conditioning": False},
    "tokens-d64-K32": {"codebook_dim": 64, "codebook_size": 32},
    "hop2": {"hop_length": 2},
}

STUDIES = ("tmax", "rescale", "steps")

# Settings that a study's key names only where they differ from these (see sampling_study).
# (Training fields, stage2_precision among them, enter through the training fingerprint.)
_KEY_ADDED_LATER: dict[str, Any] = {"evaluator": "lee2023", "sample_bf16": False, "score_series": "all",
                                    "tstr_precision": "fp32"}


_LABEL = re.compile(r"[A-Za-z0-9_-]{1,40}")


def study_path(cfg: Config, study: str, root: Path | None = None, label: str = "") -> Path:
    """Where a study is stored; ``label`` keeps a study run under other settings (``-p rescale=0``,
    say) beside the profile's own instead of over it."""
    if label and not _LABEL.fullmatch(label):
        raise ConfigError(f"a study label is 1-40 letters, digits, '-' or '_' (got {label!r})")
    suffix = f"-{label}" if label else ""
    return (root or results_root()) / cfg.dataset / "ablations" / f"{study}-{cfg.profile}-seed{cfg.seed}{suffix}.json"


def _cells(study: str, cfg: Config) -> list[dict[str, Any]]:
    """Every cell of a study as the keyword arguments of :meth:`TimeVQVDM.sample`, plus a name."""
    if study == "tmax":
        return [{"name": f"tmax{t}-steps{s}" + ("-thesis-alpha" if a else ""), "t_max": t, "steps": s,
                 "thesis_alpha": a, "conditional": False, "rescale": cfg.rescale, "rescale_mode": cfg.rescale_mode}
                for t, s, a in TMAX_GRID]
    if study == "rescale":
        return [{"name": n, "t_max": cfg.t_max, "steps": cfg.steps_cond if c else cfg.steps_uncond,
                 "conditional": c, "rescale": g, "rescale_mode": m} for n, c, m, g in RESCALE_GRID]
    if study == "steps":
        from .sampling import SAMPLERS

        base = {"conditional": False, "t_max": cfg.t_max, "rescale": cfg.rescale, "rescale_mode": cfg.rescale_mode}
        cells = []
        for sampler in SAMPLERS:
            # The ODE samplers add no noise, so the ancestral noise setting does not apply to them.
            noise = cfg.sample_noise if sampler == "ancestral" else "std"
            cells += [{"name": f"{sampler}-steps{k}", "sampler": sampler, "steps": k, "noise_scale": noise,
                       "repeat": 0, **base} for k in STEPS_GRID]
        top = max(STEPS_GRID)
        cells += [{"name": f"ancestral-steps{top}-repeat{r}", "sampler": "ancestral", "steps": top,
                   "noise_scale": cfg.sample_noise, "repeat": r, **base} for r in range(1, STEPS_REPEATS)]
        return cells
    raise ConfigError(f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")


def sampling_study(cfg: Config, study: str, *, root: Path | None = None, label: str = "",
                   log=print) -> dict[str, Any]:
    """Run (or finish) one sampling study on the model of ``cfg``; return the study record.

    Every finished cell is written at once, so an interrupted study resumes at the next cell.
    A cell's random stream depends only on the seed and the cell's position in the grid.
    """
    from .data import load_ucr
    from .device import resolve_device, set_threads
    from .evaluate import evaluate_samples, get_evaluator
    from .sampling import class_labels_by_proportion
    from .train import hardware_summary, software_versions, train, training_fingerprint, weights_digest

    cells = _cells(study, cfg)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    ds = load_ucr(cfg.dataset, data_dir=cfg.data_dir or None, scaling=cfg.scaling)
    path = study_path(cfg, study, root, label)
    fingerprint = training_fingerprint(cfg, ds)
    key = {"study": study, "training_fingerprint": fingerprint, "n_samples": cfg.n_samples, "seed": cfg.seed,
           "guidance": cfg.guidance, "fcn_epochs": cfg.fcn_epochs}
    if study == "steps":  # its cells depend on the ancestral noise setting
        key["sample_noise"] = cfg.sample_noise  # (unconditional cells only: sample_noise_cond does not enter)
    # Fields that entered the key later are left out at their defaults, so that a record written
    # before still resumes; a study under another evaluator or in bf16 never resumes an fp32 one.
    key.update({k: getattr(cfg, k) for k, v in _KEY_ADDED_LATER.items() if getattr(cfg, k) != v})
    t0 = time.monotonic()
    evaluator, trtr = get_evaluator(ds, cfg, device=device)
    model = train(cfg, run_dir(cfg, fingerprint), dataset=ds, progress=False)
    # The weights, not only the configuration: cells drawn from a model that was retrained after its
    # cache was lost (other CPU, other rounding) are not mixed with the new model's.
    key["weights"] = weights_digest(model)
    record: dict[str, Any] = {}
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            record = {}
        if record.get("key") != key:  # another model or protocol: start the study again
            record = {}
    # A stored cell is reused only if it was drawn with this cell's settings (t_max, rescaling,
    # sampler, steps, noise): the grid's values come from the config, which may have changed.
    want = {c["name"]: c for c in cells}
    rows: dict[str, Any] = {r["name"]: r for r in record.get("rows", [])
                            if r["name"] in want and all(r.get(k) == v for k, v in want[r["name"]].items())}

    for i, cell in enumerate(cells):
        name = cell["name"]
        if name in rows:
            continue
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + 500 + i)
        labels = (class_labels_by_proportion(ds.y_train, cfg.n_samples, gen, n_classes=ds.n_classes)
                  if cell["conditional"] else None)
        t_cell = time.monotonic()
        x = model.sample(cfg.n_samples, class_labels=labels, steps=cell["steps"], t_max=cell["t_max"],
                         rescale=cell["rescale"], rescale_mode=cell["rescale_mode"],
                         thesis_alpha=cell.get("thesis_alpha", False), generator=gen,
                         sampler=cell.get("sampler"), noise_scale=cell.get("noise_scale"))
        sample_s = time.monotonic() - t_cell
        x = x.cpu().numpy().astype(np.float32)
        finite = bool(np.isfinite(x).all())
        row = {**{k: v for k, v in cell.items()}, "finite": finite, "sample_s": round(sample_s, 2)}
        if finite:
            m = evaluate_samples(ds, x, None, cfg=cfg, device=device, model=evaluator, trtr=trtr)
            row.update(fid=m["fid"], is_mean=m["is_mean"], is_std=m["is_std"])
        else:  # a diverged sampler has no FID; say so instead of failing the study
            row.update(fid=None, is_mean=None, is_std=None)
        save_npy(path.with_suffix("") / f"samples_{name}.npy",
                 np.nan_to_num(x[:FIGURE_SAMPLES], nan=0.0, posinf=0.0, neginf=0.0).astype(np.float16))
        if labels is not None:
            save_npy(path.with_suffix("") / f"labels_{name}.npy", labels[:FIGURE_SAMPLES].numpy().astype(np.int64))
        rows[name] = row
        record = {"key": key, "dataset": ds.name, "profile": cfg.profile, "study": study, "label": label,
                  "complete": False,
                  "rows": [rows[c["name"]] for c in cells if c["name"] in rows]}
        write_json(path, record)
        fid_txt = f"{row['fid']:.3f}" if row["fid"] is not None else "n/a (non-finite samples)"
        log(f"[{ds.name}] {study} {name}: FID {fid_txt} ({sample_s:.0f} s sampling)")

    record = {"key": key, "dataset": ds.name, "profile": cfg.profile, "seed": cfg.seed, "study": study,
              "label": label, "complete": True, "n_samples": cfg.n_samples, "stage1_epochs": cfg.stage1_epochs,
              "stage2_epochs": cfg.stage2_epochs, "trtr": float(trtr),
              "rows": [rows[c["name"]] for c in cells],
              "wall_s_this_invocation": round(time.monotonic() - t0, 1),
              "config": cfg.to_dict(), "versions": software_versions(), "hardware": hardware_summary(device)}
    write_json(path, record)
    return record


def steps_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What a finished ``steps`` study says: the 128-step ancestral baseline (mean and sd of its
    repeats) and, per sampler, the fewest steps whose FID lies within two of those sds of the
    baseline mean, or above it by no more than that (None if no cell does)."""
    rows = [r for r in record["rows"] if r.get("fid") is not None]
    top = max(r["steps"] for r in record["rows"])
    base = [r["fid"] for r in rows if r["sampler"] == "ancestral" and r["steps"] == top]
    mean = float(np.mean(base)) if base else float("nan")
    sd = float(np.std(base, ddof=1)) if len(base) > 1 else float("nan")
    fewest: dict[str, int | None] = {}
    for sampler in dict.fromkeys(r["sampler"] for r in record["rows"]):
        ok = sorted(r["steps"] for r in rows if r["sampler"] == sampler and r.get("repeat", 0) == 0
                    and np.isfinite(sd) and r["fid"] <= mean + 2 * sd)
        fewest[sampler] = ok[0] if ok else None
    return {"baseline_steps": top, "baseline_mean": mean, "baseline_sd": sd, "baseline_n": len(base), "fewest": fewest}


def load_study(path: Path) -> dict[str, Any] | None:
    """A finished study record, or None (missing, unreadable or unfinished)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("complete") else None


def variant_config(cfg: Config, variant: str) -> Config:
    """``cfg`` with one training ablation applied, under the profile ``<profile>+<variant>``."""
    if variant not in TRAINING_VARIANTS:
        raise ConfigError(f"unknown training variant {variant!r}; choose one of {', '.join(TRAINING_VARIANTS)}")
    return cfg.replace(profile=f"{cfg.profile}+{variant}", **TRAINING_VARIANTS[variant])


# -- command line ----------------------------------------------------------------------------------
def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="ablation studies: t_max grid (Table 3), rescaling, samplers and steps, "
                                      "training variants")
    p.add_argument("study", choices=(*STUDIES, "train"),
                   help="tmax | rescale | steps (sampling) or train (retrain a variant)")
    p.add_argument("name", help="UCR dataset")
    p.add_argument("variant", nargs="?", help=f"with 'train': one of {', '.join(TRAINING_VARIANTS)}")
    p.add_argument("-f", "--params", default="thesis", help="params file or profile (default: thesis)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", default=None, help="results store (default: $TVQ_RESULTS_DIR or ./results)")
    p.add_argument("--label", default="", help="store a sampling study under other settings beside the "
                                               "profile's own, e.g. --label rescale0 -p rescale=0")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    cfg = load_config(args.params, {**parse_overrides(args.param), "dataset": args.name})
    root = Path(args.results) if args.results else None
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.label and args.study == "train":
        raise TvqError("--label is for the sampling studies; a training variant is stored under its own profile")
    if args.study == "train":
        if not args.variant:
            raise TvqError(f"'tvq ablate train' needs a variant: {', '.join(TRAINING_VARIANTS)}")
        record = reproduce(variant_config(cfg, args.variant), root=root, log=log)
        print(json.dumps({k: record.get(k) for k in ("dataset", "profile", "fid_uncond_mean", "is_uncond_mean",
                                                      "fid_cond", "tstr", "wall_s")}))
        return 0
    if args.variant:
        raise TvqError(f"'tvq ablate {args.study}' takes no variant (got {args.variant!r})")
    record = sampling_study(cfg, args.study, root=root, label=args.label, log=log)
    for row in record["rows"]:
        print(json.dumps({k: row.get(k) for k in ("name", "sampler", "t_max", "steps", "rescale_mode", "rescale", "fid",
                                                  "is_mean") if k in row}))
    return 0
