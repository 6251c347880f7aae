"""Read the results store and the thesis's tables side by side (for the results chapters).

Nothing here trains or samples: the chapters that show Tables 3-5 and Figures 13-27 call these
functions on what ``tvq reproduce`` and ``tvq ablate`` wrote, so the book can be rebuilt in
seconds and every number in it points back to a stored run.

* :func:`thesis_table` — the thesis's Tables 3, 4, 5 and 6 (packaged CSVs, transcribed from the
  thesis; always labelled "thesis").
* :func:`entries` — our finished entries as a DataFrame, one row per (dataset, profile, seed),
  with :func:`budget_of` saying whether the run used the thesis's full budget and, if not,
  what differed.
* :func:`archive_table` — Table 4 or 5 with all 128 datasets: the thesis's numbers, ours where
  a run exists, and the budget of ours.
* :func:`common_summary` — means and medians of both over the datasets both have.
* :func:`loglog_fit` — the regression lines of Figures 25-27.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, bf16_phases, budget_fields, from_mapping, load_config, precision_of
from .reproduce import load_results, results_root
from .io import load_npy, load_npz

THESIS_FILES = {3: "thesis_table3_tmax_wafer.csv", 4: "thesis_table4_unconditional.csv",
                5: "thesis_table5_conditional.csv", 6: "ucr_summary_table6.csv"}

# Fields that do not change a run's numbers (where it ran, bookkeeping); everything else must
# equal params/thesis.yaml (and the architecture defaults) for a run to count as "thesis budget".
# The evaluator changes the FID and IS, not what was trained or drawn: each entry names it, and the
# chapters label it beside the budget.
_NOT_BUDGET = frozenset(Config().to_dict()) - budget_fields()   # from each field's declared role


# Defaults of params/thesis.yaml that the parity study with the thesis's code changed (the development
# chapter gives the evidence), each with the value that entries stored before the change carry. Such
# an entry still ran the thesis's budget, under the earlier default: its label says so instead of
# calling it reduced, and :func:`entries` marks it (``earlier_defaults``) so that no table mixes the
# two without saying so.
#
# sample_noise_cond: settled first (sigma^2 delta in guided draws). The rest: the thesis code's choices that
# params/thesis.yaml took when the parity study settled it; entries before that ran the text's model
# (params/thesis-text.yaml), whose values these are.
EARLIER_DEFAULTS: dict[str, Any] = {
    "sample_noise_cond": "same",
    "stage1_weight_decay": 1e-6, "stage2_weight_decay": 1e-6, "hf_time_loss": "mse", "ema_init": "one",
    "width_rule": "thesis_text", "decoder_output": "exact", "unet_block_padding": "replicate",
    "unet_attn_norm": "features", "stage2_latents": "continuous", "latent_scaler": "latents",
    "uncond_labels": "null", "steps_uncond": 128, "sample_noise": "std"}


def thesis_table(number: int) -> pd.DataFrame:
    """The thesis's Table ``number`` (3, 4, 5 or 6) as transcribed into ``tvq/resources``."""
    if number not in THESIS_FILES:
        raise ValueError(f"the thesis's tables packaged here are {sorted(THESIS_FILES)}, not {number}")
    with resources.files("tvq.resources").joinpath(THESIS_FILES[number]).open() as fh:
        return pd.read_csv(fh)


def thesis_config() -> Config:
    return load_config("thesis")


def budget_of(config: dict[str, Any], reference: Config | None = None) -> tuple[bool, str]:
    """``(full, label)``: whether a run's config is the thesis's protocol, and a short label.

    The label names the epochs and, when the run is not the thesis's protocol, every field
    that differs from ``params/thesis.yaml`` (``key=ours`` pairs).
    """
    ref = (reference or thesis_config()).to_dict()
    cfg = from_mapping({k: v for k, v in config.items()}).to_dict()
    # A training ablation ("thesis+hop2") is measured against the thesis with that one change.
    from .ablations import TRAINING_VARIANTS

    variant = str(cfg.get("profile", "")).partition("+")[2]
    if reference is None and variant in TRAINING_VARIANTS:
        ref = {**ref, **TRAINING_VARIANTS[variant]}
    differ = [k for k in ref if k not in _NOT_BUDGET and cfg.get(k) != ref[k]]
    earlier = [k for k in differ if k in EARLIER_DEFAULTS and cfg.get(k) == EARLIER_DEFAULTS[k]]
    diffs = [f"{k}={cfg[k]}" for k in differ if k not in earlier]
    epochs = f"{cfg['stage1_epochs']}+{cfg['stage2_epochs']} ep"
    # A handful are named; more than that is the text's model from before the parity study, said in words.
    note = ("; earlier defaults: " + (", ".join(f"{k}={cfg[k]}" for k in earlier) if len(earlier) <= 3 else
                                      f"the thesis text's model, {len(earlier)} settings")) if earlier else ""
    bf16 = precision_label(config)
    note += "" if bf16 == "fp32" else f"; {bf16}"
    if not diffs:
        return True, f"thesis ({epochs}{note})"
    if len(diffs) > 4:
        return False, f"reduced ({epochs}; {len(diffs)} settings differ from params/thesis.yaml{note})"
    return False, f"reduced ({epochs}; " + ", ".join(diffs) + f"{note})"


def precision_label(config: dict[str, Any]) -> str:
    """``fp32``, or which phases ran under bf16 autocast: ``bf16 (stage 1, sampling)``. Not part of
    the budget (a bf16 run is the thesis's protocol in another arithmetic); every table that shows
    entries picks one precision (:func:`pick_runs`) or shows this beside each."""
    bf16 = bf16_phases(precision_of(config))
    return "fp32" if not bf16 else "bf16 (" + ", ".join(bf16) + ")"


def precision_comparison(root: Path | None = None, evaluator: str = "lee2023", profile: str = "thesis",
                         full_only: bool = True) -> pd.DataFrame:
    """Each full-budget (``full_only``) bf16 entry beside the fp32 entry of the same dataset, profile
    and seed.

    The yardstick is the fp32 entry's run-to-run spread: the standard deviation of its
    ``n_runs`` unconditional FIDs (and ISs), three draws of the same model with other generators.
    ``*_within`` says whether the bf16 mean lies within two of those of the fp32 mean (None where
    there is no spread, e.g. one run). Conditional FID comes from one draw: it is shown, with no
    spread to judge it by. TSTR is judged the same way where the fp32 entry's fit was repeated with
    other seeds (:func:`tstr_refits`; ``tstr_fp32_fits`` fits, their mean ``tstr_fp32_fits_mean`` and
    standard deviation ``tstr_fp32_sd``; ``tstr_within``: the bf16 entry's one fit lies within two of
    those of the mean, judged from three fits on, as the FIDs are from three draws): that spread is the fit's, on one draw, and says nothing of the draw's. ``same_model`` says whether both entries drew
    from the same trained weights (true when only sampling or TSTR ran in bf16).

    Two same-model entries also drew each unconditional run with the same generator, so run r of
    one and run r of the other differ by the arithmetic alone: ``*_paired`` lists those per-run
    differences (bf16 minus fp32), a sharper test than the spread (None where the runs were not
    both scored by ``evaluator`` in the protocol).
    """
    df = entries(root, profile=profile, evaluator=evaluator)
    cols = ["dataset", "seed", "precision", "same_model"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df[(df["full_budget"] | (not full_only)) & (df["scored_from"] == "protocol")]
    fp32 = {(r["dataset"], r["seed"]): r for _, r in df[df["precision"] == "fp32"].iterrows()}
    rows = []
    for _, b in df[df["precision"] != "fp32"].sort_values(["dataset", "seed"]).iterrows():
        a = fp32.get((b["dataset"], b["seed"]))
        if a is None:
            continue
        row = {"dataset": b["dataset"], "seed": int(b["seed"]), "precision": b["precision"],
               "same_model": bool(a.get("weights_sha256")) and a.get("weights_sha256") == b.get("weights_sha256")}
        for metric in ("fid_uncond", "is_uncond"):
            sd = a[f"{metric}_std"]
            delta = float(b[f"{metric}_mean"] - a[f"{metric}_mean"])
            row.update({f"{metric}_fp32": float(a[f"{metric}_mean"]), f"{metric}_fp32_sd": sd,
                        f"{metric}_bf16": float(b[f"{metric}_mean"]), f"{metric}_bf16_sd": b[f"{metric}_std"],
                        f"{metric}_delta": delta,
                        f"{metric}_within": None if sd is None or not np.isfinite(sd) else bool(abs(delta) <= 2 * sd)})
        for metric in ("fid_cond", "tstr", "wall_s"):
            row.update({f"{metric}_fp32": float(a[metric]), f"{metric}_bf16": float(b[metric])})
        # TSTR's yardstick, where the fp32 entry's fit was repeated with other seeds (fit-to-fit only)
        spread = tstr_refits(a.get("path"))
        sd = spread["sd"] if spread else None
        mean = float(np.mean(spread["values"])) if spread else None
        row.update({"tstr_fp32_sd": sd, "tstr_fp32_fits": spread["n"] if spread else 0, "tstr_fp32_fits_mean": mean,
                    "tstr_seed0_refit": spread["seed0_refit"] if spread else None,
                    # a verdict from as many fits as the FID's draws (n_runs, 3): two fits are no spread
                    "tstr_within": None if sd is None or spread["n"] < TSTR_FITS_FOR_VERDICT
                    else bool(abs(row["tstr_bf16"] - mean) <= 2 * sd)})
        runs = [_uncond_runs(e, evaluator) for e in (a, b)] if row["same_model"] else [None, None]
        for metric, key in (("fid_uncond", "fid"), ("is_uncond", "is_mean")):
            paired = None
            if runs[0] and runs[1] and len(runs[0]) == len(runs[1]):
                paired = [float(rb[key] - ra[key]) for ra, rb in zip(*runs)]
            row[f"{metric}_paired"] = paired
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


TSTR_REFITS = "tstr_refits.json"    # phases/ of an entry; written by scripts/tstr_refit.py
TSTR_FITS_FOR_VERDICT = 3            # fits (the protocol's among them) before TSTR gets a verdict


def tstr_refits(path: str | Path | None) -> dict[str, Any] | None:
    """TSTR's fit-to-fit spread for the store entry at ``path``: the protocol's own fit and the refits
    of the same recipe with other seeds on the entry's stored conditional draw
    (``phases/tstr_refits.json``, written by ``scripts/tstr_refit.py``).

    Returns ``{"values": [...], "sd": ..., "n": ..., "seeds": [...], "seed0_refit": ...}``, the values
    being the protocol's TSTR and each refit with another seed (a refit with the protocol's own seed
    is the float16 rounding of the stored draw alone, reported as ``seed0_refit`` and left out of the
    spread so that no fit counts twice); None without refits or with fewer than two values. The
    spread covers the fit (initial weights, batch order), not the draw."""
    if not path:
        return None
    f = Path(path) / "phases" / TSTR_REFITS
    if not f.is_file():
        return None
    state = json.loads(f.read_text())
    same = [fit["tstr"] for fit in state["fits"] if fit["seed"] == state["protocol_seed"]]
    others = [fit for fit in state["fits"] if fit["seed"] != state["protocol_seed"]]
    values = [float(state["protocol_tstr"]), *(float(fit["tstr"]) for fit in others)]
    if len(values) < 2:
        return None
    return {"values": values, "sd": float(np.std(values, ddof=1)), "n": len(values),
            "seeds": [state["protocol_seed"], *(fit["seed"] for fit in others)],
            "seed0_refit": float(same[0]) if same else None}


def paired_sign_test(comparison: pd.DataFrame, metric: str = "fid_uncond") -> dict[str, Any] | None:
    """Every same-model pair of runs in a :func:`precision_comparison`, pooled over datasets.

    Each paired difference (bf16 minus fp32, same model and generator) is divided by its dataset's
    fp32 mean, so that datasets with FIDs of different sizes pool. Under noise with no direction,
    each run is lower in bf16 with probability 1/2: ``p_value`` is the two-sided sign (binomial)
    test of ``n_lower`` of ``n_runs``. None where no row has paired runs.
    """
    from scipy.stats import binomtest

    rel, names = [], set()
    for _, r in comparison.iterrows():
        d = r.get(f"{metric}_paired")
        if isinstance(d, list) and d:
            rel += [x / r[f"{metric}_fp32"] for x in d]
            names.add(r["dataset"])
    if not rel:
        return None
    rel_a = np.asarray(rel, float)
    lower = int((rel_a < 0).sum())
    return {"n_datasets": len(names), "n_runs": len(rel), "n_lower": lower,
            "p_value": float(binomtest(lower, len(rel), 0.5).pvalue), "rel_min": float(rel_a.min()),
            "rel_max": float(rel_a.max()), "rel_mean": float(rel_a.mean())}


def _uncond_runs(row: pd.Series, evaluator: str) -> list[dict[str, Any]] | None:
    """The unconditional runs an entry (a row of :func:`entries`) stored, when ``evaluator`` scored them."""
    if row.get("scored_by") != evaluator or not row.get("path"):
        return None
    return json.loads((Path(row["path"]) / "entry.json").read_text()).get("uncond_runs")


def earlier_defaults(config: dict[str, Any], reference: Config | None = None) -> dict[str, Any]:
    """The settled defaults (:data:`EARLIER_DEFAULTS`) at which a run's config still has the
    earlier value, where the reference profile has since changed: ``{field: earlier value}``."""
    ref = (reference or thesis_config()).to_dict()
    cfg = from_mapping({k: v for k, v in config.items()}).to_dict()
    return {k: v for k, v in EARLIER_DEFAULTS.items() if ref.get(k) != v and cfg.get(k) == v}


def thread_counts(threads_phases: dict[str, Any] | None, phases=None) -> list[int] | None:
    """The torch thread counts an entry's phases used (over all their invocations), sorted, or None
    where a phase of ``phases`` (default: every phase recorded) has no record (entries before
    ``threads_phases``, or a phase whose checkpoint predates it)."""
    if not threads_phases:
        return None
    keys = list(threads_phases) if phases is None else list(phases)
    if not keys or not all(threads_phases.get(k) for k in keys):
        return None
    return sorted({n for k in keys for n in threads_phases[k]})


def hardware_label(hw: dict[str, Any], threads_phases: dict[str, Any] | None = None) -> str:
    """Where an entry ran, in a few words: the GPU's name, or the CPU's with torch's thread count
    (which matters on a CPU and not beside a GPU). The count is the last invocation's unless
    ``threads_phases`` (an entry's threads per phase, all recorded) says what every phase used."""
    if hw.get("gpu"):
        return str(hw["gpu"])
    counts = thread_counts(threads_phases)
    if counts:
        if len(counts) > 1:
            return f"{hw.get('cpu', '?')}, {'/'.join(map(str, counts))} threads by phase"
        return f"{hw.get('cpu', '?')}, {counts[0]} thread(s)"
    return f"{hw.get('cpu', '?')}, {hw.get('threads', '?')} thread(s)"


# The metrics that depend on the evaluator (everything FID, IS or TRTR); TSTR does not.
EVALUATOR_METRICS = ("fid_uncond_mean", "fid_uncond_std", "is_uncond_mean", "is_uncond_std", "fid_cond", "is_cond",
                     "trtr", "fid_train_vs_test")


def scores_by(record: dict[str, Any], evaluator: str) -> dict[str, Any] | None:
    """An entry's evaluator-dependent metrics as ``evaluator`` gives them, or None.

    The entry's own metrics when it was scored with that evaluator (the protocol's 3 x 1024
    unconditional and 1024 conditional series); else its re-scoring by ``tvq rescore`` (the
    series it stored, ``n_uncond`` of them, one unconditional run, so no spread); else None.
    ``scored_from`` says which: ``protocol`` or ``stored``.
    """
    if record.get("evaluator", "own") == evaluator:
        return {**{k: record.get(k) for k in EVALUATOR_METRICS}, "n_uncond": record.get("n_samples"),
                "n_runs_scored": record.get("n_runs"), "scored_from": "protocol"}
    r = record.get("rescored", {}).get(evaluator)
    if r is None:
        return None
    return {"fid_uncond_mean": r["fid_uncond"], "fid_uncond_std": None, "is_uncond_mean": r["is_uncond"],
            "is_uncond_std": None, "fid_cond": r["fid_cond"], "is_cond": r["is_cond"], "trtr": r["trtr"],
            "fid_train_vs_test": r["fid_train_vs_test"], "n_uncond": r["n_uncond"], "n_runs_scored": 1,
            "scored_from": "stored"}


def entries(root: Path | None = None, profile: str | None = None, evaluator: str = "lee2023") -> pd.DataFrame:
    """Finished store entries (optionally of one profile) with ``full_budget`` and ``budget`` columns.

    FID, IS and TRTR are those of ``evaluator`` (see :func:`scores_by`; NaN where the entry has
    none); ``scored_by`` names the evaluator each entry was first written with.
    """
    rows = []
    for rec in load_results(root, full=True):
        if profile is not None and rec["profile"] != profile:
            continue
        full, label = budget_of(rec["config"])
        hw = rec.get("hardware", {})
        scores = scores_by(rec, evaluator) or {**{k: None for k in EVALUATOR_METRICS}, "n_uncond": None,
                                               "n_runs_scored": None, "scored_from": None}
        rows.append({**{k: v for k, v in rec.items() if not isinstance(v, (dict, list))},
                     **{k: (np.nan if v is None else v) for k, v in scores.items()},
                     "scored_by": rec.get("evaluator", "own"), "evaluator": evaluator,
                     "full_budget": full, "budget": label, "precision": precision_label(rec["config"]),
                     "earlier_defaults": bool(earlier_defaults(rec["config"])),
                     "hardware": hardware_label(hw, rec.get("threads_phases")),
                     "recon_mse_train": rec.get("reconstruction_mse", {}).get("train"),
                     "recon_mse_test": rec.get("reconstruction_mse", {}).get("test")})
    columns = ["dataset", "profile", "seed", "full_budget", "budget", "precision", "earlier_defaults"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def pick_runs(df: pd.DataFrame, full_only: bool = True, profile: str = "thesis",
              precision: str | None = "fp32") -> pd.DataFrame:
    """One run per dataset: ``profile``'s entries, full budget (unless ``full_only=False``), of one
    ``precision`` (a :func:`precision_label`; None: any), lowest seed."""
    if df.empty:
        return df
    sel = df[df["profile"] == profile]
    if full_only:
        sel = sel[sel["full_budget"]]
    if precision is not None:
        sel = sel[sel["precision"] == precision]
    return sel.sort_values(["dataset", "seed"]).drop_duplicates("dataset").reset_index(drop=True)


_TABLE_COLUMNS = {
    4: {"is_mean": "is_uncond_mean", "is_std": "is_uncond_std", "fid_mean": "fid_uncond_mean", "fid_std": "fid_uncond_std"},
    5: {"is_mean": "is_cond", "fid_mean": "fid_cond", "tstr_pct": "tstr", "trtr_pct": "trtr"},
}


def archive_table(number: int, root: Path | None = None, full_only: bool = True,
                  profile: str = "thesis", evaluator: str = "lee2023", precision: str | None = "fp32") -> pd.DataFrame:
    """Table 4 (unconditional) or 5 (conditional) over all 128 datasets.

    Columns: ``id, dataset`` (Table 6 order), ``thesis_<metric>`` for each of the thesis's
    columns, ``ours_<metric>`` (NaN where no run of ours exists) and ``budget``. Percentages
    (TSTR, TRTR) are in percent in both. FID, IS and TRTR are ``evaluator``'s
    (:func:`scores_by`), with ``n_uncond`` and ``scored_from`` saying over which series. Only
    entries of one ``precision`` (default fp32; :func:`pick_runs`), named in its column.
    ``earlier_defaults`` is True where our run used a default the parity study later changed (see
    :data:`EARLIER_DEFAULTS`), False for a run of today's profile, NaN where we have no run:
    :func:`settled_only` keeps the rows a summary of today's model may use.
    """
    if number not in _TABLE_COLUMNS:
        raise ValueError("archive_table covers Tables 4 and 5")
    names = thesis_table(6)[["id", "name"]].rename(columns={"name": "dataset"})
    thesis = thesis_table(number).rename(columns=lambda c: c if c == "dataset" else f"thesis_{c}")
    out = names.merge(thesis, on="dataset", how="left")
    ours = pick_runs(entries(root, evaluator=evaluator), full_only=full_only, profile=profile, precision=precision)
    mapping = _TABLE_COLUMNS[number]
    cols = {"dataset": [], "budget": [], "earlier_defaults": [], "precision": [], "n_uncond": [], "n_runs_scored": [],
            "scored_from": [], **{f"ours_{k}": [] for k in mapping}}
    for _, row in ours.iterrows():
        cols["dataset"].append(row["dataset"])
        cols["budget"].append(row["budget"])
        cols["earlier_defaults"].append(bool(row.get("earlier_defaults", False)))
        cols["precision"].append(row["precision"])
        cols["n_uncond"].append(row.get("n_uncond"))
        cols["n_runs_scored"].append(row.get("n_runs_scored"))
        cols["scored_from"].append(row.get("scored_from"))
        for k, src in mapping.items():
            v = row.get(src)
            v = np.nan if v is None else float(v)
            cols[f"ours_{k}"].append(100.0 * v if k.endswith("_pct") else v)
    out = out.merge(pd.DataFrame(cols), on="dataset", how="left")
    return out


def settled_only(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of an :func:`archive_table` whose run (if any) used today's defaults: runs under
    :data:`EARLIER_DEFAULTS` have their ``ours_*`` values blanked, the thesis's stay."""
    out = table.copy()
    older = out["earlier_defaults"].eq(True)
    out.loc[older, [c for c in out.columns if c.startswith("ours_")]] = np.nan
    return out


def common_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric, over the datasets both report: mean and median of the thesis's and ours, on
    how many ours is lower, and the Spearman rank correlation between the two."""
    metrics = [c[len("ours_"):] for c in table.columns if c.startswith("ours_")]
    metrics = [m for m in metrics if not m.endswith("_std")]
    both = table.dropna(subset=[f"ours_{m}" for m in metrics] + [f"thesis_{m}" for m in metrics])
    rows = []
    for m in metrics:
        rows.append({"metric": m, "n_datasets": len(both),
                     "thesis_mean": both[f"thesis_{m}"].mean(), "ours_mean": both[f"ours_{m}"].mean(),
                     "thesis_median": both[f"thesis_{m}"].median(), "ours_median": both[f"ours_{m}"].median(),
                     # the thesis prints two decimals: lower means lower by more than half of one
                     "ours_lower": int((both[f"ours_{m}"] < both[f"thesis_{m}"] - 0.005).sum()),
                     "spearman": rank_agreement(both, m)})
    return pd.DataFrame(rows)


def rank_agreement(table: pd.DataFrame, metric: str) -> float:
    """Spearman correlation between the thesis's and our values of ``metric`` over the common subset."""
    from scipy.stats import spearmanr

    both = table.dropna(subset=[f"ours_{metric}", f"thesis_{metric}"])
    if len(both) < 3:
        return float("nan")
    return float(spearmanr(both[f"thesis_{metric}"], both[f"ours_{metric}"]).statistic)


def protocol_repeats(entry: dict[str, Any], *studies: dict[str, Any] | None) -> list[float]:
    """Every unconditional FID drawn with the protocol's own sampler settings from one model.

    The entry's ``n_runs`` runs, plus any cell of a sampling study (``tvq ablate tmax|rescale``)
    on the same profile and seed whose t_max, steps and rescaling equal the protocol's: the same
    sampler with another random stream. Their spread is the noise floor against which a
    single-draw difference between two cells of a study has to be read.
    """
    cfg = entry["config"]
    fids = [float(r["fid"]) for r in entry.get("uncond_runs", []) if r.get("fid") is not None]
    for study in studies:
        if not study or study.get("profile") != entry["profile"] or study.get("seed") != entry["seed"] \
                or study.get("n_samples") != entry.get("n_samples"):
            continue
        for r in study["rows"]:
            if (not r.get("conditional") and not r.get("thesis_alpha", False) and r.get("fid") is not None
                    and np.isclose(r["t_max"], cfg["t_max"]) and r["steps"] == cfg["steps_uncond"]
                    and np.isclose(r["rescale"], cfg["rescale"]) and r["rescale_mode"] == cfg["rescale_mode"]):
                fids.append(float(r["fid"]))
    return fids


def compare_word(value: float, reference: float, noise: float) -> str:
    """``lower than`` / ``higher than`` / ``within the repeat spread of``: a difference counts
    only when it exceeds twice the standard deviation of repeated draws (``noise``)."""
    if not (np.isfinite(value) and np.isfinite(reference)):
        return "not comparable with"
    if np.isfinite(noise) and abs(value - reference) <= 2 * noise:
        return "within the repeat spread of"
    return "lower than" if value < reference else "higher than"


def loglog_fit(x: np.ndarray, y: np.ndarray, log_y: bool = True) -> tuple[float, float]:
    """Least-squares line through ``(log10 x, log10 y)`` (or ``log10 x, y``): ``(slope, intercept)``.

    Points with a non-positive coordinate that would be logged are dropped.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & ((y > 0) if log_y else True)
    if keep.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log10(x[keep]), np.log10(y[keep]) if log_y else y[keep], 1)
    return float(slope), float(intercept)


def entry_path(dataset: str, profile: str = "thesis", seed: int = 0, root: Path | None = None,
               tag: str = "") -> Path:
    """An entry's folder; ``tag``: :func:`tvq.config.precision_tag` of a bf16 run (fp32: none)."""
    return (root or results_root()) / dataset / f"{profile}-seed{seed}{tag}"


def load_entry(dataset: str, profile: str = "thesis", seed: int = 0, root: Path | None = None,
               tag: str = "") -> dict[str, Any] | None:
    """One finished entry with its arrays (samples, labels, bands, loss curves), or None (``tag``:
    the precision's, as in :func:`entry_path`)."""
    path = entry_path(dataset, profile, seed, root, tag)
    if not (path / "DONE").is_file():
        return None
    rec = json.loads((path / "entry.json").read_text())
    arrays = {p.stem: load_npy(p).astype(np.float32) for p in path.glob("*.npy")}
    rec["arrays"] = arrays
    parts = path / "parts.npz"
    rec["parts"] = load_npz(parts) if parts.is_file() else None
    hist = path / "history.json"
    rec["history"] = json.loads(hist.read_text()) if hist.is_file() else None
    return rec
