"""The thesis's protocol for one dataset (section 3.6), and the results store it writes.

``tvq reproduce NAME -f params/P.yaml`` runs, resuming whatever an interruption left:

1. the FCN evaluator on the real training set (cached by :mod:`tvq.fcn`); its test accuracy
   is TRTR; plus the FID floor (real training set against real test set);
2. stage 1 and stage 2 (:func:`tvq.train.train`, resumable from its checkpoint);
3. unconditional sampling, ``n_runs`` runs of ``n_samples`` series (thesis: 3 × 1024,
   128 steps, γ = 0.1) → FID and IS, mean and std over the runs;
4. class-conditional sampling, ``n_samples`` series in the training class proportions
   (thesis: 32 steps, w = 3.0, γ = 0.1) → FID, IS and TSTR;
5. the memorisation check on both sample sets;
6. figure data: the LF/HF bands of real and generated series, stage 1's reconstruction
   error on train and test, the loss curves.

Store layout (``$TVQ_RESULTS_DIR``, default ``results/`` in the working directory), one
folder per (dataset, profile, seed)::

    results/<dataset>/<profile>-seed<seed>/
        entry.json          config, metrics, versions, hardware, wall time and torch threads per phase
        samples_uncond.npy  the first unconditional run's series (float16): all 1024 up to length
                            1024, else as many as fit in 2 MiB (at least 256); enough to
                            re-score the entry with another evaluator without the model
        samples_cond.npy    the conditional series, same rule, with their labels_cond.npy
        parts.npz           16 real series with their LF/HF bands and reconstructions, and
                            16 generated series with their bands (Figures 13-14)
        history.json        the training loss curves, thinned to 250 points per term
        phases/             one JSON per finished phase (what a resume skips); the phases after
                            training are keyed by the trained weights too (``weights_sha256``);
                            tstr_refits.json, where scripts/tstr_refit.py has repeated TSTR's fit
                            with other seeds (the fit's spread, tvq.results.tstr_refits)
        DONE                written last, atomically: only then does the entry count

Checkpoints and trained weights are large and live outside the store, under
``$TVQ_CACHE_DIR/runs/<dataset>/<profile>-seed<seed>-<fingerprint>`` (default cache
``~/.cache/tvq``), never in git; so do TSTR's checkpoint and the conditional draw it trains on
(``pending-cond.npz``, removed once the conditional phase is stored).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import BOOKKEEPING, Config, fields_with_role, load_config, parse_overrides, \
    bf16_phases, precision_of, precision_tag
from .data import cache_root, load_ucr
from .device import resolve_device, set_threads, threads_used
from .errors import TvqError
from .io import atomic_path, check_output_dir, save_npy, write_json

FIGURE_SAMPLES = 256
STORED_BYTES = 2 << 20  # cap on each stored sample file (float16): see stored_count


def stored_count(n_samples: int, length: int) -> int:
    """How many series of a sample set an entry keeps: all of them while the float16 file stays
    under ``STORED_BYTES`` (every set up to length 1024), else as many as fit, never fewer than
    ``FIGURE_SAMPLES``. They let a later evaluator re-score the entry without its model."""
    return min(n_samples, max(FIGURE_SAMPLES, STORED_BYTES // (2 * length)))
DONE = "DONE"


def results_root() -> Path:
    return Path(os.environ.get("TVQ_RESULTS_DIR", "results")).expanduser()


def entry_dir(cfg: Config, root: Path | None = None) -> Path:
    """``<store>/<dataset>/<profile>-seed<seed>``, plus the precision's tag where a phase ran in bf16."""
    return (root or results_root()) / cfg.dataset / f"{cfg.profile}-seed{cfg.seed}{precision_tag(cfg.to_dict())}"


def run_dir(cfg: Config, fingerprint: str = "") -> Path:
    """Checkpoint folder of a run. The training fingerprint (data + training config) is part
    of the name, so a changed configuration starts a new run instead of meeting the old
    checkpoint, and the old one is still there to resume when the change is undone."""
    suffix = f"-{fingerprint}" if fingerprint else ""
    return cache_root() / "runs" / cfg.dataset / f"{cfg.profile}-seed{cfg.seed}{suffix}"


def is_done(entry: Path) -> bool:
    return (entry / DONE).is_file() and (entry / "entry.json").is_file()


# Fields added after entries' phases were stored, with the default that reproduces the earlier
# behaviour: left out of the phase fingerprint at that default, so stored phases stay valid.
# (Training fields added before the first phases were written are not listed: their phases have them.)
_SAMPLING_ADDED_LATER = {"sampler": "ancestral", "sample_noise": "std", "sample_noise_cond": "same",
                         "latent_scaler": "latents", "uncond_labels": "null",
                         "stage2_precision": "fp32", "tstr_precision": "fp32"}


class _Phases:
    """Finished phases are JSON files; a resumed protocol reads them instead of redoing the work."""

    def __init__(self, entry: Path, fingerprint: dict[str, Any]) -> None:
        self.dir = entry / "phases"
        self.fingerprint = fingerprint

    def get(self, name: str) -> dict[str, Any] | None:
        path = self.dir / f"{name}.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        return data["result"] if data.get("fingerprint") == self.fingerprint else None

    def put(self, name: str, result: dict[str, Any]) -> dict[str, Any]:
        write_json(self.dir / f"{name}.json", {"fingerprint": self.fingerprint, "result": result})
        return result


def reproduce(cfg: Config, *, root: Path | None = None, progress: bool = False, log=print) -> dict[str, Any]:
    """Run (or finish) the protocol for ``cfg.dataset``; return the store entry."""
    from .evaluate import evaluate_samples, fid_floor, get_evaluator
    from .sampling import SamplerOptions, class_labels_by_proportion, unconditional_labels
    from .train import hardware_summary, software_versions, train, training_fingerprint, weights_digest

    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    entry = entry_dir(cfg, root)
    ds = load_ucr(cfg.dataset, data_dir=cfg.data_dir or None, scaling=cfg.scaling)  # before anything is written
    check_output_dir(entry, "results entry")
    entry.mkdir(parents=True, exist_ok=True)
    (entry / DONE).unlink(missing_ok=True)  # from here on the entry is being (re)written
    bookkeeping = fields_with_role(BOOKKEEPING)          # device, threads, save: they change no result
    phases = _Phases(entry, {k: v for k, v in cfg.to_dict().items() if k not in bookkeeping
                             and not (k in _SAMPLING_ADDED_LATER and v == _SAMPLING_ADDED_LATER[k])})
    t_start = time.monotonic()
    walls: dict[str, float] = {}

    # 1. evaluator (TRTR) and the FID floor
    t0 = time.monotonic()
    evaluator, trtr = get_evaluator(ds, cfg, device=device, progress=progress)
    floor = phases.get("evaluator") or phases.put("evaluator", {
        "trtr": float(trtr), "fid_train_vs_test": float(fid_floor(ds, cfg, device=device, model=evaluator)),
        "wall_s": round(time.monotonic() - t0, 2), "threads": threads_used(None, resumed=False)})
    walls["evaluator"] = time.monotonic() - t0
    log(f"[{cfg.dataset}] evaluator: TRTR {floor['trtr']:.3f}, FID(train, test) {floor['fid_train_vs_test']:.3f}")

    # 2. training
    t0 = time.monotonic()
    run_path = run_dir(cfg, training_fingerprint(cfg, ds))
    log(f"[{cfg.dataset}] training: stage 1 {cfg.stage1_epochs} epochs, stage 2 {cfg.stage2_epochs} epochs "
        f"(checkpoint {run_path})")
    model = train(cfg, run_path, dataset=ds, progress=progress)
    walls["train"] = time.monotonic() - t0
    log(f"[{cfg.dataset}] trained ({walls['train']:.0f} s in this invocation); sampling "
        f"{cfg.n_runs} x {cfg.n_samples} unconditional series, {cfg.steps_uncond} steps")
    run_meta = json.loads((run_path / "run.json").read_text())
    # From here on every phase depends on the trained weights, not only on the configuration: a
    # model retrained after its cache was lost (other CPU, other rounding) starts these phases anew.
    weights = weights_digest(model)
    phases = _Phases(entry, {**phases.fingerprint, "weights": weights})

    def score(name: str, samples: torch.Tensor, labels: torch.Tensor | None, sample_s: float,
              sample_threads: list[int] | None) -> dict[str, Any]:
        x = samples.cpu().numpy().astype(np.float32)
        y = labels.cpu().numpy() if labels is not None else None
        metrics = evaluate_samples(ds, x, y, cfg=cfg, device=device, model=evaluator, trtr=trtr,
                                   tstr_checkpoint=run_path / f"tstr-{name}.pt")
        metrics["sample_s"] = round(sample_s, 2)
        metrics["sample_threads"] = sample_threads
        keep = stored_count(len(x), x.shape[-1])
        save_npy(entry / f"samples_{name}.npy", x[:keep].astype(np.float16))
        if y is not None:
            save_npy(entry / f"labels_{name}.npy", y[:keep].astype(np.int64))
        return metrics

    # 3. unconditional runs
    uncond = []
    for r in range(cfg.n_runs):
        name = f"uncond_run{r}"
        result = phases.get(name)
        if result is None:
            t0 = time.monotonic()
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + r)
            labels = unconditional_labels(cfg.uncond_labels, np.bincount(ds.y_train, minlength=ds.n_classes),
                                          cfg.n_samples, torch.Generator().manual_seed(cfg.seed * 1000 + 500 + r))
            if labels is None:   # the thesis's null class
                x = model.sample(cfg.n_samples, steps=cfg.steps_uncond, generator=gen)
            else:                # p(y) p(x | y): the unconditional setting (w = 1) with the labels drawn above
                x = model.sample(cfg.n_samples, class_labels=labels, options=SamplerOptions.from_config(cfg, False),
                                 generator=gen)
            result = phases.put(name, score("uncond" if r == 0 else f"uncond{r}", x, None, time.monotonic() - t0,
                                            threads_used(None, resumed=False)))
        uncond.append(result)
        log(f"[{cfg.dataset}] unconditional run {r}: FID {result['fid']:.3f}, IS {result['is_mean']:.3f}")
    for r in range(1, cfg.n_runs):  # figures keep only the first run's samples
        (entry / f"samples_uncond{r}.npy").unlink(missing_ok=True)

    # 4. class-conditional run (training class proportions)
    cond = phases.get("cond")
    if cond is None:
        # The draw is kept in the run folder until the phase is finished: TSTR (hours on a CPU)
        # resumes from its checkpoint only for the very same training data, and a re-drawn set
        # need not match it to the bit on another CPU or thread count.
        pending = run_path / "pending-cond.npz"
        drawn = _load_draw(pending, phases.fingerprint)
        if drawn is None:
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + 999)
            labels = class_labels_by_proportion(ds.y_train, cfg.n_samples, gen, n_classes=ds.n_classes)
            t0 = time.monotonic()
            x = model.sample(cfg.n_samples, class_labels=labels, steps=cfg.steps_cond, guidance=cfg.guidance,
                             generator=gen)
            drawn = (x, labels, time.monotonic() - t0, threads_used(None, resumed=False))
            _save_draw(pending, phases.fingerprint, *drawn)
        cond = phases.put("cond", score("cond", *drawn))
        pending.unlink(missing_ok=True)
    log(f"[{cfg.dataset}] conditional: FID {cond['fid']:.3f}, IS {cond['is_mean']:.3f}, TSTR {cond['tstr']:.3f}")

    # 5. what the figures need beyond the samples: the two bands of real and generated series,
    #    stage 1's reconstruction error, and the loss curves (thinned).
    recon = phases.get("figures")
    if recon is None:
        recon = phases.put("figures", _figure_data(model, ds, cfg, entry, run_meta_path=run_path / "run.json"))

    fids = np.array([u["fid"] for u in uncond])
    iss = np.array([u["is_mean"] for u in uncond])
    walls["total"] = time.monotonic() - t_start
    record = {
        "dataset": ds.name, "profile": cfg.profile, "seed": cfg.seed,
        "stage1_epochs": cfg.stage1_epochs, "stage2_epochs": cfg.stage2_epochs,
        "n_samples": cfg.n_samples, "n_runs": cfg.n_runs,
        "steps_uncond": cfg.steps_uncond, "steps_cond": cfg.steps_cond,
        "guidance": cfg.guidance, "rescale": cfg.rescale, "rescale_mode": cfg.rescale_mode, "t_max": cfg.t_max,
        # One run has no spread: its std is null, not 0 (the thesis's ± is over three runs).
        "fid_uncond_mean": float(fids.mean()), "fid_uncond_std": _spread(fids),
        "is_uncond_mean": float(iss.mean()), "is_uncond_std": _spread(iss),
        "fid_cond": cond["fid"], "is_cond": cond["is_mean"], "tstr": cond["tstr"], "trtr": float(trtr),
        "fid_train_vs_test": floor["fid_train_vs_test"],
        # Which network FID, IS and TRTR come from (lee2023: the thesis's; own: tvq's FCN).
        "evaluator": cfg.evaluator,
        # The arithmetic of each phase (fp32, or bf16 autocast): the chapters never mix the two unsaid.
        "precision": precision_of(cfg.to_dict()),
        "weights_sha256": weights,  # of the trained model every sample of this entry came from
        "class_split_uncond": uncond[0]["class_split"], "train_split": uncond[0]["train_split"],
        "per_class_accuracy_cond": cond["per_class_accuracy"],
        "memorisation_uncond": uncond[0]["memorisation"], "memorisation_cond": cond["memorisation"],
        "stage1_final": {k: v for k, v in run_meta["final_losses"].items() if k.startswith("stage1/")},
        "stage2_final": {k: v for k, v in run_meta["final_losses"].items() if k.startswith("stage2/")},
        "reconstruction_mse": recon["reconstruction_mse"],
        # Wall time of the whole protocol, summed over phases (a resumed run does not count
        # its idle gap). The evaluator's share is 0 when its FCN came from the cache.
        "wall_s": round(sum(run_meta["wall_s"].values()) + floor.get("wall_s", walls["evaluator"])
                        + sum(_run_seconds(u) for u in [*uncond, cond]), 1),
        # torch threads per phase, over every invocation of it (null: partly unknown, e.g. resumed
        # from a checkpoint written before they were recorded); `hardware` has the last invocation's.
        "threads_phases": {**{f"train_{k}": run_meta.get("threads", {}).get(k) for k in run_meta["wall_s"]},
                           "evaluator": floor.get("threads"),
                           "sampling_uncond": _union(u.get("sample_threads") for u in uncond),
                           "sampling_cond": cond.get("sample_threads"),
                           "scoring": _union([*(r.get("threads", {}).get("scoring") for r in [*uncond, cond]),
                                              cond.get("threads", {}).get("tstr")])},
        "wall_s_phases": {**{f"train_{k}": round(v, 1) for k, v in run_meta["wall_s"].items()},
                          "evaluator": round(floor.get("wall_s", walls["evaluator"]), 1),
                          "this_invocation": round(walls["total"], 1),
                          "sampling_uncond": round(sum(u["sample_s"] for u in uncond), 1),
                          "sampling_cond": cond["sample_s"],
                          "scoring": round(sum(_run_seconds(u) - u["sample_s"] for u in [*uncond, cond]), 1)},
        "uncond_runs": uncond, "cond_run": cond,
        "config": cfg.to_dict(),
        "versions": software_versions(),
        "hardware": hardware_summary(device),
    }
    write_json(entry / "entry.json", record)
    write_json(entry / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return record


PARTS_SERIES = 16     # series per panel of the band figures
HISTORY_POINTS = 250  # loss-curve points kept per term


@torch.no_grad()
def _figure_data(model, ds, cfg: Config, entry: Path, run_meta_path: Path) -> dict[str, Any]:
    """Write ``parts.npz`` (bands of real and generated series) and ``history.json``; return
    stage 1's reconstruction MSE on the training and test sets."""
    x_train = torch.from_numpy(ds.x_train)
    mse = {}
    for split, x in (("train", x_train), ("test", torch.from_numpy(ds.x_test))):
        err = [((model.reconstruct(c)["x_hat"].cpu() - c) ** 2).mean(dim=1) for c in x.split(256)]
        mse[split] = float(torch.cat(err).mean())
    real = model.reconstruct(x_train[:PARTS_SERIES])
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + 777)
    x_gen, z0_lf, z0_hf = model.sample(PARTS_SERIES, steps=cfg.steps_uncond, generator=gen, return_latents=True)
    g_lf, g_hf = model.decode_parts(z0_lf, z0_hf)
    arrays = {f"real_{k}": v.cpu().numpy().astype(np.float32) for k, v in real.items()}
    arrays["real_x"] = ds.x_train[:PARTS_SERIES].astype(np.float32)
    arrays.update(gen_x=x_gen.cpu().numpy().astype(np.float32), gen_lf=g_lf.cpu().numpy().astype(np.float32),
                  gen_hf=g_hf.cpu().numpy().astype(np.float32))
    with atomic_path(entry / "parts.npz") as tmp, open(tmp, "wb") as fh:  # a file object: numpy would add ".npz"
        np.savez_compressed(fh, **arrays)
    history = json.loads(run_meta_path.read_text()).get("history", {})
    thinned = {}
    for term, values in history.items():
        step = max(1, int(np.ceil(len(values) / HISTORY_POINTS)))
        idx = sorted(set(range(0, len(values), step)) | {len(values) - 1})
        thinned[term] = {"epoch": [i + 1 for i in idx], "value": [float(values[i]) for i in idx]}
    write_json(entry / "history.json", thinned)
    return {"reconstruction_mse": mse}


def _save_draw(path: Path, fingerprint: dict[str, Any], x: torch.Tensor, labels: torch.Tensor,
               sample_s: float, threads: list[int] | None = None) -> None:
    """A drawn sample set, with the configuration that drew it, written atomically."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:  # np.savez would rename a path
        np.savez(fh, x=x.cpu().numpy().astype(np.float32), labels=labels.cpu().numpy().astype(np.int64),
                 sample_s=np.float64(sample_s), threads=np.array(json.dumps(threads)),
                 key=np.array(json.dumps(fingerprint, sort_keys=True, default=str)))


def _load_draw(path: Path, fingerprint: dict[str, Any]
               ) -> tuple[torch.Tensor, torch.Tensor, float, list[int] | None] | None:
    """The set :func:`_save_draw` wrote, if it was drawn under this very configuration."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != json.dumps(fingerprint, sort_keys=True, default=str):
                return None
            # (a draw saved before thread counts were recorded has none: unknown)
            threads = json.loads(str(f["threads"])) if "threads" in f.files else None
            return torch.from_numpy(f["x"]), torch.from_numpy(f["labels"]), float(f["sample_s"]), threads
    except (OSError, KeyError, ValueError):  # unreadable: draw again
        return None


def _union(lists) -> list[int] | None:
    """Thread counts of several parts together; unknown (``None``) if any part's are."""
    lists = list(lists)
    return None if any(v is None for v in lists) else sorted(set().union(*lists))


def _spread(values: np.ndarray) -> float | None:
    """Standard deviation over the unconditional runs (numpy's default, ddof = 0); ``None`` for one run."""
    return float(values.std()) if len(values) > 1 else None


def _run_seconds(result: dict[str, Any]) -> float:
    """Sampling plus scoring (FID, IS, memorisation, TSTR's FCN) of one sample set."""
    return float(result["sample_s"]) + sum(float(v) for k, v in result.get("seconds", {}).items() if k != "evaluator")


# -- the store -------------------------------------------------------------------------------------
SUMMARY_KEYS = ("dataset", "profile", "seed", "evaluator", "stage1_epochs", "stage2_epochs", "n_runs",
                "fid_uncond_mean", "fid_uncond_std", "is_uncond_mean", "is_uncond_std", "fid_cond", "is_cond", "tstr",
                "trtr", "fid_train_vs_test", "wall_s")


RESCORE_SUMMARY = ("n_uncond", "n_cond", "fid_uncond", "is_uncond", "fid_cond", "is_cond", "trtr", "fid_train_vs_test")


def load_results(root: Path | None = None, full: bool = False) -> list[dict[str, Any]]:
    """Every finished entry of the store (a folder without ``DONE`` is not an entry)."""
    root = root or results_root()
    out = []
    for entry in sorted(root.glob("*/*")):
        if not is_done(entry):
            continue
        record = json.loads((entry / "entry.json").read_text())
        record["path"] = str(entry)
        # Entries written before the thesis's evaluators were available were scored by tvq's own FCN.
        record.setdefault("evaluator", "own")
        summary = {k: record.get(k) for k in (*SUMMARY_KEYS, "path")}
        # Every entry's precision per phase; entries written before the field ran fp32, as their config says.
        summary["precision"] = record.get("precision") or precision_of(record.get("config", {}))
        summary["rescored"] = {ev: {k: v for k, v in r.items() if k in RESCORE_SUMMARY}
                               for ev, r in record.get("rescored", {}).items()}
        if not full:
            summary.update(_budget_fields(record.get("config", {})))
        out.append(record if full else summary)
    return out


def _budget_fields(config: dict[str, Any]) -> dict[str, Any]:
    """Whether an entry ran the thesis's full budget, under today's defaults, and its budget label:
    what a reader filters ``tvq results --json`` on (``tvq.results.budget_of``)."""
    from .results import budget_of, earlier_defaults   # (tvq.results imports this module)

    if not config:
        return {"full_budget": False, "earlier_defaults": False, "budget": "unknown (no config stored)"}
    full, label = budget_of(config)
    return {"full_budget": full, "earlier_defaults": bool(earlier_defaults(config)), "budget": label}


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="the thesis's whole protocol for one dataset (resumable)")
    p.add_argument("name")
    p.add_argument("-f", "--params", default="thesis", help="params file or profile (default: thesis)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", default=None, help="results store (default: $TVQ_RESULTS_DIR or ./results)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_reproduce)

    r = sub.add_parser("results", help="list the finished entries of the results store")
    r.add_argument("--results", default=None, help="results store (default: $TVQ_RESULTS_DIR or ./results)")
    r.add_argument("--json", action="store_true", help="one JSON object per entry")
    r.set_defaults(func=_cli_results)


def _cli_reproduce(args: argparse.Namespace) -> int:
    cfg = load_config(args.params, {**parse_overrides(args.param), "dataset": args.name})
    root = Path(args.results) if args.results else None
    record = reproduce(cfg, root=root, progress=not args.no_progress and sys.stderr.isatty(),
                       log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({k: record.get(k) for k in SUMMARY_KEYS}))
    return 0


def _cli_results(args: argparse.Namespace) -> int:
    root = Path(args.results) if args.results else results_root()
    if not root.exists():
        raise TvqError(f"no results store at {root}")
    rows = load_results(root)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    cols = ("dataset", "profile", "seed", "budget", "evaluator", "precision", "fid_uncond_mean", "is_uncond_mean",
            "fid_cond", "is_cond", "tstr", "trtr", "wall_s", "fid_uncond[lee2023]")

    def cell(r: dict[str, Any], c: str) -> str:
        if c == "fid_uncond[lee2023]":
            return _thesis_fid(r)
        if c == "budget":   # the full label is in --json; here one word: full, full/earlier, reduced
            return ("full/earlier" if r["earlier_defaults"] else "full") if r["full_budget"] else "reduced"
        if c == "precision":
            bf16 = bf16_phases(r["precision"])
            return "bf16:" + ",".join(p.replace(" ", "") for p in bf16) if bf16 else "fp32"
        return _fmt(r[c])

    table = [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    settled = [r for r in rows if r["full_budget"] and not r["earlier_defaults"] and r["evaluator"] == "lee2023"
               and r["profile"] == "thesis" and not bf16_phases(r["precision"])]
    n = len({r["dataset"] for r in settled})
    print(f"{len(rows)} entries in {root}; {n} dataset{'' if n == 1 else 's'} at the thesis's full budget under "
          "today's defaults (fp32), scored with the thesis's evaluators (lee2023)")
    return 0


def _thesis_fid(row: dict[str, Any]) -> str:
    """Unconditional FID under the thesis's evaluators, with the number of series it was computed on."""
    if row.get("evaluator") == "lee2023":
        return f"{_fmt(row['fid_uncond_mean'])} (protocol)"
    r = row.get("rescored", {}).get("lee2023")
    return f"{r['fid_uncond']:.3f} ({r['n_uncond']} stored)" if r else "-"


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
