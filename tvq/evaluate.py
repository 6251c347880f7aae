"""The evaluation protocol of section 3.6: score generated series against a UCR data set.

For one data set, the FCN evaluator is the thesis's own, Lee et al.'s pretrained network
(``evaluator: lee2023``, :mod:`tvq.lee2023`), or one that tvq trains on the real training
set with the appendix-D recipe and caches (``evaluator: own``, :mod:`tvq.fcn`); its test
accuracy is TRTR. Generated series are then scored with

* FID (Eq. 38) between the evaluator's pooled features of the samples and of the real
  test set, and IS (Eq. 37) from its softmax, mean and std over 10 splits;
* TSTR, when labels are given: a fresh FCN, same recipe and seed, trained on the labelled
  samples and tested on the real test set;
* memorisation: nearest-training-series distances of the samples next to those of the
  real test series (:func:`tvq.metrics.memorisation`).

"Scoring" below means FID + IS + memorisation once the evaluator exists (the test set's
features are computed once per evaluator and then reused); TSTR trains a network for
the full recipe and is timed separately.

Also here: the real-train vs real-test FID floor, and the ``fcn train`` / ``evaluate``
subcommands that :mod:`tvq.cli` mounts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .config import Config, load_config, parse_overrides
from .device import resolve_device, seed_everything, set_threads
from .errors import EvaluationError
from .fcn import FCN, Recipe, data_fingerprint, fit_and_score, predict, train_or_load
from .io import check_output, write_json
from .metrics import fid, inception_score, memorisation

IS_SPLITS = 10


class DatasetLike(Protocol):
    """What evaluation needs from a data set (``tvq.data.load_ucr`` returns one)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------
def resolve_dataset(dataset_or_name: DatasetLike | str, cfg: Config | None = None) -> DatasetLike:
    """A data set object as given, or the named UCR set loaded with ``tvq.data.load_ucr``."""
    if not isinstance(dataset_or_name, str):
        return dataset_or_name
    from .data import load_ucr

    cfg = cfg or load_config()
    return load_ucr(dataset_or_name, data_dir=cfg.data_dir or None, scaling=cfg.scaling)


def validate_samples(samples: np.ndarray, length: int) -> np.ndarray:
    """Generated series as float32 (N, L); wrong shape, length or non-finite values are errors."""
    x = np.asarray(samples)
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 2:
        raise EvaluationError(f"samples must have shape (N, L) or (N, 1, L), got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise EvaluationError(f"samples must be numeric, got dtype {x.dtype}")
    if x.shape[1] != length:
        raise EvaluationError(f"samples have length {x.shape[1]}, the data set has length {length}")
    if x.shape[0] < 2:
        raise EvaluationError(f"need at least 2 samples to score, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x), axis=1)))
        raise EvaluationError(f"{bad} of {x.shape[0]} samples contain NaN or infinite values")
    return x.astype(np.float32, copy=False)


def validate_labels(labels: np.ndarray, n_samples: int, n_classes: int) -> np.ndarray:
    """Class labels of the samples as int64 in 0..C-1, one per sample."""
    y = np.asarray(labels)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.shape != (n_samples,):
        raise EvaluationError(f"labels have shape {y.shape}, expected ({n_samples},): one per sample")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise EvaluationError(f"labels must be integers, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise EvaluationError("labels must be whole numbers")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise EvaluationError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return y


# --------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------
def _device(cfg: Config, device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else resolve_device(cfg.device)


def get_evaluator(dataset_or_name: DatasetLike | str, cfg: Config | None = None,
                  device: torch.device | str | None = None, retrain: bool = False,
                  progress: bool = False) -> tuple[FCN, float]:
    """The data set's FCN evaluator (``cfg.evaluator``) and its TRTR accuracy.

    ``lee2023``: the thesis's pretrained network for this UCR data set (:mod:`tvq.lee2023`);
    TRTR is its accuracy on the real test set. ``own``: an FCN trained on the real training
    set with the appendix-D recipe, once, then read from the cache (:mod:`tvq.fcn`).
    """
    cfg = cfg or load_config()
    ds = resolve_dataset(dataset_or_name, cfg)
    dev = _device(cfg, device)
    if cfg.evaluator == "lee2023":
        from .lee2023 import load_evaluator

        model = load_evaluator(ds.name, ds.n_classes, device=dev)
        _, p_test = _test_pass(model, ds.x_test, device=dev)
        return model, float(np.mean(p_test.argmax(axis=1) == np.asarray(ds.y_test)))
    model, trtr, _ = train_or_load(ds.name, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.n_classes,
                                   Recipe.from_config(cfg), device=dev, retrain=retrain, progress=progress)
    return model, trtr


def fid_floor(dataset_or_name: DatasetLike | str, cfg: Config | None = None,
              device: torch.device | str | None = None, model: FCN | None = None) -> float:
    """FID between the real training set and the real test set: what a perfect generator could reach.

    The evaluator was fitted to the training set, so its features of training series are
    a little tighter than of unseen ones; this floor is therefore a slight over-estimate of
    the finite-sample FID between two fresh draws, and the honest reference for samples.
    """
    cfg = cfg or load_config()
    ds = resolve_dataset(dataset_or_name, cfg)
    if model is None:
        model, _ = get_evaluator(ds, cfg, device=device)
    f_train, _ = predict(model, ds.x_train)
    return fid(f_train, test_features(model, ds.x_test))


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
def _test_pass(model: FCN, x_test: np.ndarray, device: torch.device | str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The evaluator's features and softmax of the real test set, computed once per (model, test set).

    They are the same for every set of samples scored against this evaluator, and for
    long series they cost as much as the samples' own; the result is kept on the model
    object, keyed by a fingerprint of the test data.
    """
    memo: dict[str, tuple[np.ndarray, np.ndarray]] = model.__dict__.setdefault("_tvq_test_pass", {})
    key = data_fingerprint(np.asarray(x_test, np.float32))
    if key not in memo:
        memo[key] = predict(model, x_test, device=device)
    return memo[key]


def test_features(model: FCN, x_test: np.ndarray, device: torch.device | str | None = None) -> np.ndarray:
    """The evaluator's pooled features of the real test set (FID's reference), memoised."""
    return _test_pass(model, x_test, device=device)[0]


def class_diagnostics(p_gen: np.ndarray, y_train: np.ndarray, n_classes: int,
                      labels: np.ndarray | None = None) -> dict[str, Any]:
    """What the evaluator thinks the samples are: two cheap checks beside FID and IS.

    * ``class_split``: the fraction of samples the evaluator assigns to each class, next to
      ``train_split``, the training set's class proportions. An unconditional generator that
      covers the data should come close to the latter; a large gap is mode dropping that a
      single FID number can hide.
    * ``per_class_accuracy`` (only with labels): for each class asked for, the fraction of its
      conditional samples the evaluator puts in that class (``None`` for a class never asked for).
    """
    pred = np.asarray(p_gen).argmax(axis=1)
    out: dict[str, Any] = {
        "class_split": (np.bincount(pred, minlength=n_classes) / len(pred)).tolist(),
        "train_split": (np.bincount(np.asarray(y_train), minlength=n_classes) / len(y_train)).tolist(),
    }
    if labels is not None:
        out["per_class_accuracy"] = [float(np.mean(pred[labels == k] == k)) if np.any(labels == k) else None
                                     for k in range(n_classes)]
    return out


def scored_count(n_samples: int, n_test: int, mode: str = "all") -> int:
    """How many of ``n_samples`` generated series FID and IS score.

    ``all``: every one. ``thesis_code``: what the thesis code's evaluation loop takes, which
    walks over the test set in batches of 256 and slices the generated series alongside, so it
    stops at the first multiple of 256 at or above the test-set size.
    """
    if mode == "all":
        return n_samples
    if mode == "thesis_code":
        return min(n_samples, -(-n_test // 256) * 256)
    raise EvaluationError(f"score_series must be all or thesis_code, got {mode!r}")


def evaluator_scores(model: FCN, ds: DatasetLike, x: np.ndarray, labels: np.ndarray | None = None,
                     seed: int = 0, device: torch.device | str | None = None,
                     score_series: str = "all") -> dict[str, Any]:
    """What the evaluator alone says of validated samples ``x``: FID against the real test set,
    IS over ``IS_SPLITS`` splits (shuffled with ``seed``) and :func:`class_diagnostics`, over the
    series :func:`scored_count` keeps (``n_scored``)."""
    n = scored_count(len(x), len(ds.x_test), score_series)
    x = x[:n]
    labels = labels[:n] if labels is not None else None
    f_gen, p_gen = predict(model, x, device=device)
    is_mean, is_std = inception_score(p_gen, n_splits=IS_SPLITS, seed=seed)
    return {"fid": fid(f_gen, test_features(model, ds.x_test, device=device)), "is_mean": is_mean, "is_std": is_std,
            "n_scored": int(n), **class_diagnostics(p_gen, ds.y_train, ds.n_classes, labels)}


def evaluate_samples(dataset: DatasetLike | str, samples: np.ndarray, labels: np.ndarray | None = None,
                     cfg: Config | None = None, device: torch.device | str | None = None,
                     model: FCN | None = None, trtr: float | None = None,
                     progress: bool = False, tstr_checkpoint: Path | None = None) -> dict[str, Any]:
    """Every metric of the protocol for one set of generated series.

    ``model``/``trtr`` may be passed to reuse an evaluator already in memory; otherwise
    :func:`get_evaluator` trains or loads it. Returns a JSON-ready dict: fid, is_mean,
    is_std, trtr, tstr (None without labels), memorisation figures, and wall times.
    ``tstr_checkpoint``: where TSTR's FCN saves its state so an interrupted fit resumes.
    """
    cfg = cfg or load_config()
    ds = resolve_dataset(dataset, cfg)
    length = int(np.asarray(ds.x_train).shape[-1])
    x = validate_samples(samples, length)
    y = validate_labels(labels, x.shape[0], ds.n_classes) if labels is not None else None
    if x.shape[0] < IS_SPLITS:
        raise EvaluationError(f"need at least {IS_SPLITS} samples for IS over {IS_SPLITS} splits, got {x.shape[0]}")
    dev = _device(cfg, device)
    seconds: dict[str, float] = {}
    # torch threads of each timed part; TSTR's fit may span invocations (see fcn.train_fcn)
    threads: dict[str, list[int] | None] = {"scoring": [torch.get_num_threads()]}

    t0 = time.perf_counter()
    if model is None:
        model, trtr = get_evaluator(ds, cfg, device=dev, progress=progress)
    elif trtr is None:
        raise EvaluationError("pass trtr together with model (or neither)")
    seconds["evaluator"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores = evaluator_scores(model, ds, x, y, seed=cfg.seed, device=dev, score_series=cfg.score_series)
    mem = memorisation(x, ds.x_train, ds.x_test, device=dev)
    seconds["scoring"] = time.perf_counter() - t0

    tstr = None
    if y is not None:
        t0 = time.perf_counter()
        fcn_tstr, tstr = fit_and_score(x, y, ds.x_test, ds.y_test, ds.n_classes, Recipe.from_config(cfg),
                                       device=dev, progress=progress, checkpoint=tstr_checkpoint,
                                       compile_mode=cfg.compile, precision=cfg.tstr_precision)
        seconds["tstr"] = time.perf_counter() - t0 + getattr(fcn_tstr, "resumed_seconds", 0.0)
        threads["tstr"] = getattr(fcn_tstr, "threads_used", None)

    return {
        "dataset": ds.name,
        "evaluator": cfg.evaluator,
        "n_samples": int(x.shape[0]),
        **scores,
        "trtr": float(trtr),
        "tstr": tstr,
        "memorisation": mem,
        "fcn_recipe": Recipe.from_config(cfg).to_dict(),
        "tstr_precision": cfg.tstr_precision if y is not None else None,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "threads": threads,
    }


# --------------------------------------------------------------------------------------
# Command line: `tvq fcn train NAME` and `tvq evaluate NAME SAMPLES.npy`
# --------------------------------------------------------------------------------------
def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--params", default=None,
                   help="params file or profile name (default: none, i.e. the thesis's FCN recipe)")
    p.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (repeatable)")


def _config_from_args(args: argparse.Namespace) -> Config:
    cfg = load_config(args.params, parse_overrides(args.overrides), dataset=args.name)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    return cfg


def _load_npy(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EvaluationError(f"{what} file not found: {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise EvaluationError(f"{what} file {path} is not a readable .npy array ({exc.__class__.__name__})") from None


def cmd_fcn_train(args: argparse.Namespace) -> int:
    """``tvq fcn train NAME``: train (or load) the evaluator, print TRTR and the FID floor."""
    cfg = _config_from_args(args)
    ds = resolve_dataset(args.name, cfg)
    recipe = Recipe.from_config(cfg)
    t0 = time.perf_counter()
    model, trtr, meta = train_or_load(ds.name, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.n_classes,
                                      recipe, device=resolve_device(cfg.device), retrain=args.retrain,
                                      progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    floor = fid_floor(ds, cfg, model=model)
    print(f"dataset      {ds.name}")
    print(f"trtr         {trtr:.4f}")
    print(f"fid_floor    {floor:.4f}   (real train vs real test)")
    print(f"cache        {'hit' if meta['cache_hit'] else 'trained'}: {meta['weights_path']}")
    print(f"seconds      {seconds:.1f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``tvq evaluate NAME SAMPLES.npy``: print every metric, optionally write them as JSON."""
    if args.output:
        check_output(args.output, "-o")   # before the scoring, not after it
    cfg = _config_from_args(args)
    samples = _load_npy(args.samples, "samples")
    labels = _load_npy(args.labels, "labels") if args.labels else None
    out = evaluate_samples(args.name, samples, labels, cfg=cfg, progress=sys.stderr.isatty())
    for key in ("dataset", "evaluator", "n_samples", "fid", "is_mean", "is_std", "trtr", "tstr"):
        value = out[key]
        print(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    for key, value in out["memorisation"].items():
        print(f"mem.{key:<18} {value:.4f}" if isinstance(value, float) else f"mem.{key:<18} {value}")
    print(f"{'seconds':<22} {json.dumps(out['seconds'])}")
    if args.output:
        write_json(Path(args.output), out)
    return 0


def cmd_evaluators_verify(args: argparse.Namespace) -> int:
    """``tvq evaluators verify``: each thesis evaluator's TRTR on the real test split against Table 5."""
    from .data import all_datasets, availability
    from .lee2023 import SOURCE, trtr_against_thesis

    set_threads(args.threads)
    names = list(args.names) or [i.name for i in all_datasets() if availability(i.name) == "offline"]
    from .data import get_info

    names = [get_info(n).name for n in names]   # an unknown name fails before the table starts
    if not names:
        raise EvaluationError("no dataset named and none offline")
    print(f"{'dataset':<32} {'n_test':>6} {'ours %':>8} {'Table 5 %':>9}  match", file=sys.stderr)
    rows = trtr_against_thesis(names, device=resolve_device(args.device), allow_download=not args.no_download,
                               progress=lambda r: print(f"{r['dataset']:<32} {r['n_test']:>6} {r['trtr_pct']:>8.2f} "
                                                        f"{r['thesis_trtr_pct']:>9.2f}  {'yes' if r['match'] else 'NO'}",
                                                        file=sys.stderr))
    matched = sum(r["match"] for r in rows)
    print(json.dumps({"datasets": len(rows), "match": matched,
                      "mismatch": [r["dataset"] for r in rows if not r["match"]]}))
    if args.write:
        write_json(Path(args.write), {"evaluator": "lee2023", "source": SOURCE, "rows": rows,
                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return 0 if matched == len(rows) else 1


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``fcn train`` and ``evaluate`` on the CLI's subparsers; each sets ``func(args) -> int``."""
    fcn_p = subparsers.add_parser("fcn", help="the FCN evaluator of a data set")
    fcn_sub = fcn_p.add_subparsers(dest="fcn_command", metavar="{train}")
    fcn_sub.required = True
    train = fcn_sub.add_parser("train", help="train (or load from the cache) the evaluator; print TRTR and the FID floor")
    train.add_argument("name", help="UCR data set name, e.g. ECG200")
    _add_config_args(train)
    train.add_argument("--retrain", action="store_true", help="ignore and overwrite a cached evaluator")
    train.set_defaults(func=cmd_fcn_train)

    evs = subparsers.add_parser("evaluators", help="the thesis's evaluators (Lee et al.'s pretrained FCNs)")
    evs_sub = evs.add_subparsers(dest="evaluators_command", metavar="{verify}")
    evs_sub.required = True
    ver = evs_sub.add_parser("verify", help="TRTR of each evaluator on the real test split, against Table 5")
    ver.add_argument("names", nargs="*", help="datasets (default: every one that is offline)")
    ver.add_argument("--write", default=None, help="also write the rows to this JSON file (atomically)")
    ver.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ver.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ver.add_argument("--no-download", action="store_true", help="fail instead of downloading the evaluators")
    ver.set_defaults(func=cmd_evaluators_verify)

    ev = subparsers.add_parser("evaluate", help="score generated series: FID, IS, TRTR, TSTR, memorisation")
    ev.add_argument("name", help="UCR data set name the samples imitate")
    ev.add_argument("samples", help=".npy array of generated series, shape (N, L) or (N, 1, L)")
    ev.add_argument("--labels", default=None, help=".npy array of the samples' class labels (enables TSTR)")
    _add_config_args(ev)
    ev.add_argument("-o", "--output", default=None, help="write the metrics to this JSON file (atomically)")
    ev.set_defaults(func=cmd_evaluate)
