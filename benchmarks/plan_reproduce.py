"""Projected wall time of ``tvq reproduce`` per dataset on this machine, from timed steps.

A full-budget run is a fixed number of identical steps per phase, so its cost is (seconds per
step, timed here on the dataset's real shape) x (steps, counted from the profile). For each
dataset this script times a few steps of every phase with the untrained thesis architecture,
multiplies, and prints one JSON line:

- evaluator: the FCN on the training set, ``fcn_epochs * ceil(N / fcn_batch_size)`` steps, only
  where the profile trains its own (``evaluator: own``; the thesis's pretrained FCNs cost nothing);
- stage 1 and stage 2: ``epochs * ceil(N / batch_size)`` optimiser steps each;
- unconditional sampling: ``n_runs`` draws of ``n_samples`` series at ``steps_uncond`` steps,
  conditional sampling: one draw at ``steps_cond`` (guided: two network passes per step);
  the per-step cost is the difference between a long and a short draw, so the fixed cost of
  decoding is counted once per draw, not per step;
- TSTR: the FCN on ``n_samples`` conditional series, ``fcn_epochs * ceil(n_samples / batch)``.

FID, IS and the memorisation check are seconds and are left out.

Beside the CPU hours, each row projects H200 hours from the store's own GPU entries (entries whose
``hardware`` names a GPU): their measured seconds per step of each phase, times this dataset's
step counts. Those runs were launch-bound (35 ms a stage-1 step for a batch of 20), so the figure
is a lower bound that holds while a step stays launch-bound; for the longest series and the
largest batches the arithmetic starts to count and the real time is higher. ``--remaining``
leaves out what the store already holds at the full budget, and the last line sums what is
left: CPU core-hours (hours x threads) and H200 hours.

Datasets are timed smallest first (N x L), so an interrupted ``--offline`` run has planned the
cheap end of the queue. Other processes on the same
cores slow every phase down alike; time under the load the runs will see (the results store's
CPU runs were made two at a time, one thread each: ``--threads 1`` beside another run).

    python benchmarks/plan_reproduce.py CBF ECGFiveDays --threads 1
    python benchmarks/plan_reproduce.py --offline --threads 1 --markdown    # every wheel dataset
    python benchmarks/plan_reproduce.py --offline --remaining --threads 1 --markdown   # what is left
    python benchmarks/plan_reproduce.py --offline --remaining --out results/plan-thesis.jsonl --report --markdown
                                                  # the table from the rows timed so far, timing nothing
    python benchmarks/plan_reproduce.py Wafer -f params/thesis.yaml --device cuda
    python benchmarks/plan_reproduce.py --offline --remaining --out results/plan-thesis.jsonl --estimate --markdown
                                                  # the rest projected from FLOPs (plan_estimate.py)
    python benchmarks/plan_reproduce.py --offline --remaining --out results/plan-thesis.jsonl --estimate --markdown --done
                                                  # ... and the finished runs beside their projection

``--done`` adds what the store's finished CPU runs of the profile took (fp32, full budget, today's
defaults), phase by phase from their ``wall_s_phases``, beside what the planner projects for the
same datasets: the planner's own check against whole runs, made under the load the queue really
had (one to three other processes on the two cores), where its rows were timed step by step.

``--estimate`` times nothing: the datasets missing from ``--out`` are projected from their FLOP
counts with a per-phase line fitted on the rows of ``--out`` (see ``plan_estimate.py``); their
rows say ``"estimated": true`` and the summary gives the fit's leave-one-out error.
``--fit-on done`` fits that line on the store's finished CPU runs instead (``--done``'s rows:
whole runs, under the load the queue really had, with a fit that lets a run slowed by its
neighbours pull the line less), and ``--done`` then shows each finished run beside the line
fitted on the others, so that the check is out of sample:

    python benchmarks/plan_reproduce.py --offline --remaining --out results/plan-thesis.jsonl --estimate --fit-on done --markdown --done
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

import torch

import plan_estimate
from bench_phases import matmul_peak
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


def plan(name: str, params: str, device: torch.device, repeats: int,
         gpu_floor: dict[str, float] | None = None) -> dict:
    ds = load_ucr(name)
    cfg = load_config(params, {"dataset": name, "device": str(device)})
    # what the machine gave this row: the load on its cores and an fp32 matmul probe, timed
    # beside the phases (this CPU's speed varies from day to day, and rows are timed on many days)
    load_1min = os.getloadavg()[0]
    probe_gflops, _ = matmul_peak(device, bf16=False)
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
    fcn_eval = 0.0
    if cfg.evaluator == "own":
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
    hours = sum(minutes.values()) / 60
    row = {"dataset": name, "n_train": n, "length": length, "profile": cfg.profile,
           "step_s": {"stage1": round(s1, 4), "stage2": round(s2, 4)},
           "minutes": {k: round(v, 1) for k, v in minutes.items()},
           "total_hours": round(hours, 2), "threads": torch.get_num_threads(),
           "core_hours": round(hours * torch.get_num_threads(), 2),
           "probe_gflops": round(probe_gflops, 1), "load_1min": round(load_1min, 2), **hardware_summary(device)}
    row["timed_steps"] = plan_estimate.step_counts(cfg, n)   # what these minutes are for (plan_estimate.at_profile)
    if gpu_floor:
        row["h200_hours"] = round(gpu_projection(step_counts(cfg, n), gpu_floor) / 3600, 3)
    return row


# -- the GPU projection: the store's GPU runs, per step of each phase --------------------------
def step_counts(cfg, n: int) -> dict[str, float]:
    """How many steps of each phase a full run of ``cfg`` on ``n`` training series makes (sampling:
    network steps of one batch, times the batches and draws)."""
    batches = math.ceil(cfg.n_samples / min(cfg.n_samples, cfg.sample_batch_size))
    return {"train_stage1": cfg.stage1_epochs * math.ceil(n / cfg.stage1_batch_size),
            "train_stage2": cfg.stage2_epochs * math.ceil(n / cfg.stage2_batch_size),
            "evaluator": cfg.fcn_epochs * math.ceil(n / cfg.fcn_batch_size) if cfg.evaluator == "own" else 0,
            "sampling_uncond": cfg.n_runs * batches * cfg.steps_uncond,
            "sampling_cond": batches * cfg.steps_cond,
            "scoring": cfg.fcn_epochs * math.ceil(cfg.n_samples / cfg.fcn_batch_size)}


def gpu_step_seconds(root) -> dict[str, float]:
    """Median seconds per step of each phase over the store's full-budget entries that ran on an
    H200 (their ``wall_s_phases`` over :func:`step_counts`); empty when the store has none.
    ``scoring`` is TSTR's fit plus FID and IS, so it is counted per TSTR step."""
    import statistics

    from tvq.config import from_mapping
    from tvq.reproduce import load_results

    per: dict[str, list[float]] = {}
    for rec in load_results(root, full=True):
        hw, phases = rec.get("hardware", {}), rec.get("wall_s_phases", {})
        if "H200" not in str(hw.get("gpu", "")) or not phases:
            continue
        cfg = from_mapping(rec["config"])
        counts = step_counts(cfg, len(load_ucr(rec["dataset"]).x_train))
        for phase, k in counts.items():
            if k and phase in phases:
                per.setdefault(phase, []).append(phases[phase] / k)
    return {phase: statistics.median(v) for phase, v in per.items()}


def gpu_projection(counts: dict[str, float], floor: dict[str, float]) -> float:
    """Seconds on an H200: each phase's steps at the measured per-step time (a lower bound)."""
    missing = [p for p, k in counts.items() if k and p not in floor]
    if missing:
        raise TvqError(f"the store's GPU entries do not time the phase(s) {', '.join(missing)}")
    return sum(k * floor[p] for p, k in counts.items() if k)


def done_in_store(root) -> dict[str, bool]:
    """Datasets the store holds at the full thesis budget, each mapped to whether its entry was made
    under earlier defaults (see :data:`tvq.results.EARLIER_DEFAULTS`)."""
    from tvq.results import entries

    df = entries(root, profile="thesis")
    if df.empty:
        return {}
    df = df[df["full_budget"]]
    return {d: bool(g["earlier_defaults"].all()) for d, g in df.groupby("dataset")}


def measured_rows(root, cfg) -> list[dict]:
    """What the finished CPU runs of ``cfg``'s profile took, as rows of the planner's shape: the
    store's fp32 entries at the full budget under the current defaults, with each phase's measured
    wall time (``wall_s_phases``). ``tstr`` is the entry's ``scoring`` (TSTR's fit plus FID and IS,
    which are seconds). Runs that spanned sessions count each phase's own time, not the gaps."""
    from tvq.reproduce import load_results
    from tvq.results import budget_of, earlier_defaults, precision_label, thread_counts

    rows = []
    for rec in load_results(root, full=True):
        conf, hw, ph = rec.get("config", {}), rec.get("hardware", {}), rec.get("wall_s_phases", {})
        if (rec.get("profile") != cfg.profile or hw.get("gpu") or not ph or not budget_of(conf)[0]
                or earlier_defaults(conf) or precision_label(conf) != "fp32"):
            continue
        minutes = {"evaluator": ph.get("evaluator", 0.0) / 60, "train_stage1": ph["train_stage1"] / 60,
                   "train_stage2": ph["train_stage2"] / 60, "sampling_uncond": ph["sampling_uncond"] / 60,
                   "sampling_cond": ph["sampling_cond"] / 60, "tstr": ph["scoring"] / 60}
        hours = sum(minutes.values()) / 60
        # Entries since threads_phases record each phase's torch threads (over all its invocations);
        # before, only the last invocation's count (hardware.threads) is known.
        threads, mixed, core_hours = hw.get("threads") or 1, None, None
        tp = {("tstr" if k == "scoring" else k): v for k, v in (rec.get("threads_phases") or {}).items()}
        counts = thread_counts(tp, minutes)
        if counts:
            threads, mixed = (counts[0], None) if len(counts) == 1 else (max(counts), counts)
            # a phase that ran with several counts is charged its largest: an upper bound
            core_hours = sum(minutes[k] * max(tp[k]) for k in minutes) / 60
        ds = load_ucr(rec["dataset"])
        rows.append({"dataset": rec["dataset"], "n_train": len(ds.x_train),
                     "length": ds.length, "profile": cfg.profile, "measured": True,
                     "minutes": {k: round(v, 1) for k, v in minutes.items()}, "total_hours": round(hours, 2),
                     "threads": threads, "mixed_threads": mixed,
                     "core_hours": round(hours * threads if core_hours is None else core_hours, 2), "cpu": hw.get("cpu"),
                     "host_allocator": hw.get("host_allocator") or "system", "evaluator": rec.get("evaluator")})
    return sorted(rows, key=lambda r: r["total_hours"])


def _threads_cell(m: dict) -> str:
    """The table's thread count: one number, or the counts a run's phases used when they differed."""
    mixed = m.get("mixed_threads")
    return f"{m['threads']}" if not mixed else f"{'/'.join(map(str, mixed))} by phase"


def read_rows(path, profile: str) -> dict[str, dict]:
    """Rows of an earlier ``--out`` file for ``profile``, by dataset (the last row of a dataset wins;
    a line that does not parse, such as one cut off by an interrupted run, is skipped)."""
    rows: dict[str, dict] = {}
    if path is None or not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "dataset" in row and row.get("profile") == profile:
            rows[row["dataset"]] = row
    return rows


def by_size(names: list[str]) -> list[str]:
    """Smallest first by N x L, the product the phases' cost grows with."""
    def size(name: str) -> int:
        ds = load_ucr(name)
        return len(ds.x_train) * ds.length
    return sorted(names, key=lambda name: (size(name), name))


def _range(values) -> list[float] | None:
    """[min, max] of the values that are there (rows of older --out files lack the probe)."""
    vals = [v for v in values if v is not None]
    return [min(vals), max(vals)] if vals else None


def main() -> int:
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", help="UCR dataset names")
    ap.add_argument("--offline", action="store_true", help="every dataset that loads without a download (the data wheels carry 93)")
    ap.add_argument("--remaining", action="store_true",
                    help="leave out the datasets the results store holds at the full thesis budget under the "
                         "current defaults (entries under earlier defaults are still to do)")
    ap.add_argument("--results", type=Path, default=None, help="results store (default: the package's results/)")
    ap.add_argument("-f", "--params", default="thesis", help="profile whose budget is projected (default thesis)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed optimiser steps per stage (median) and timed FCN epochs")
    ap.add_argument("--markdown", action="store_true", help="also print a table sorted by projected time")
    ap.add_argument("--report", action="store_true",
                    help="time nothing: report the rows of --out for the datasets asked for, and count the rest "
                         "as not yet timed")
    ap.add_argument("--estimate", action="store_true",
                    help="time nothing: project the datasets missing from --out from FLOP counts, fitted on its rows")
    ap.add_argument("--done", action="store_true",
                    help="also list what the store's finished CPU runs of the profile took, phase by phase, beside "
                         "what this planner projects for them (from --out's timed rows and the FLOP fit)")
    ap.add_argument("--fit-on", choices=("timed", "done"), default="timed",
                    help="rows --estimate fits its line on: the rows of --out, timed step by step (default), or the "
                         "store's finished CPU runs of the profile, whole runs under the queue's own load (a robust "
                         "fit; --done then shows each run beside the line fitted without it)")
    ap.add_argument("--fit-threads", type=int, default=1,
                    help="with --fit-on done, fit on the finished runs made with this many torch threads (default 1, "
                         "the queue's two-runs-side-by-side setting); runs with other counts are set beside that "
                         "line in --done, where took / projected reads as their speed-up, and enter no fit")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON-lines file the rows are appended to as they are timed; datasets already in it "
                         "are not timed again (a long --offline plan resumes), and its rows enter the table")
    args = ap.parse_args()
    names = sorted(wheel_names()) if args.offline else list(args.datasets)
    if not names:
        ap.error("name at least one dataset, or pass --offline")
    try:
        done = done_in_store(args.results)
        if args.remaining:
            # an entry under earlier defaults is still to do: the queue reruns it with the settled profile
            names = [n for n in names if n not in done or done[n]]
        names = by_size(names)
        gpu_floor = gpu_step_seconds(args.results)
    except TvqError as exc:
        print(f"plan_reproduce: {exc}", file=sys.stderr)
        return 2
    set_threads(args.threads)
    device = resolve_device(args.device)
    cfg = load_config(args.params, {})
    kept = read_rows(args.out, cfg.profile) if args.out else {}
    # Rows timed under other step counts (the unconditional draw went from 128 to 32 steps) are
    # shown, and fitted on, at the profile's counts now.
    kept = {name: plan_estimate.at_profile(row, cfg) for name, row in kept.items()}
    for row in kept.values():          # the GPU figure follows the store's GPU entries as they are now
        row.pop("h200_hours", None)
        if gpu_floor:
            row["h200_hours"] = round(gpu_projection(step_counts(cfg, row["n_train"]), gpu_floor) / 3600, 3)
    if (args.report or args.estimate or args.done) and not args.out:
        ap.error("--report, --estimate and --done read the rows of --out: name the file")
    rows = [kept[n] for n in names if n in kept]
    untimed = [n for n in names if n not in kept]
    loo = None
    by_done = args.fit_on == "done"
    if by_done and not args.estimate:
        ap.error("--fit-on done is a basis for --estimate: pass --estimate")
    finished = measured_rows(args.results, cfg) if args.done or by_done else []
    # Whole runs are fitted in hours, so runs with another thread count would bend the line: they are
    # only set beside it.
    same_threads = [r for r in finished if r["threads"] == args.fit_threads and not r.get("mixed_threads")]
    if by_done and len(same_threads) < 3:
        print(f"plan_reproduce: --fit-on done needs at least 3 finished CPU runs of profile {cfg.profile!r} "
              f"with {args.fit_threads} torch thread(s) in the store, found {len(same_threads)}", file=sys.stderr)
        return 2
    basis = _with_flops(same_threads, cfg) if by_done else list(kept.values())
    measured = finished if args.done else []
    if args.estimate:
        estimated, loo = _estimate([n for n in names if n not in kept], basis, cfg, gpu_floor, robust=by_done)
        rows += estimated
        untimed = []
    for name in names:
        if name in kept or args.report or args.estimate:
            continue
        try:
            row = plan(name, args.params, device, args.repeats, gpu_floor)
        except TvqError as exc:
            print(f"plan_reproduce: {name}: {exc}", file=sys.stderr)
            return 2
        rows.append(row)
        untimed.remove(name)
        print(json.dumps(row), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as fh:     # one whole line per dataset; a torn last line is skipped on reading
                fh.write(json.dumps(row) + "\n")
    summary = {"datasets": len(rows), "not_timed": len(untimed), "cpu_core_hours": round(sum(r["core_hours"] for r in rows), 1),
               "h200_hours": round(sum(r["h200_hours"] for r in rows), 2) if gpu_floor else None,
               "estimated": sum(bool(r.get("estimated")) for r in rows), "estimate_loo_error": loo,
               "estimate_fitted_on": sorted(r["dataset"] for r in basis) if args.estimate else None,
               "store_full_budget": len(done), "store_earlier_defaults": sum(done.values()),
               "gpu_entries_timed": sorted(gpu_floor), "threads": torch.get_num_threads(),
               "probe_gflops_range": _range(r.get("probe_gflops") for r in rows),
               "load_1min_range": _range(r.get("load_1min") for r in rows)}
    if measured and by_done:
        # a finished run is set beside the line fitted on the others: in-sample it would flatter the fit
        loo_of = dict(zip((r["dataset"] for r in basis), plan_estimate.loo_hours(basis, robust=True)))
        others = [m["dataset"] for m in measured if m["dataset"] not in loo_of]
        line = ({r["dataset"]: r["total_hours"] for r in _estimate(others, basis, cfg, None, echo=False, robust=True)[0]}
                if others else {})
        for m in measured:
            if m["dataset"] in loo_of:
                hours, m["projected_by"] = loo_of[m["dataset"]], "fit without it"
            else:
                hours, m["projected_by"] = line[m["dataset"]], f"fit on {args.fit_threads}-thread runs"
            m["projected_hours"] = round(hours, 2) if hours is not None else None
    elif measured:
        projected = {r["dataset"]: r for r in _estimate([m["dataset"] for m in measured if m["dataset"] not in kept],
                                                         list(kept.values()), cfg, None, echo=False)[0]}
        projected.update({m["dataset"]: kept[m["dataset"]] for m in measured if m["dataset"] in kept})
        for m in measured:
            m["projected_hours"] = projected[m["dataset"]]["total_hours"]
            m["projected_by"] = "timed" if m["dataset"] in kept else "est."
    for m in measured:
        m["measured_over_projected"] = round(m["total_hours"] / m["projected_hours"], 2) if m["projected_hours"] else None
        print(json.dumps({"done": {k: v for k, v in m.items() if k not in ("step_flops", "steps")}}), flush=True)
    summary["fit_on"] = args.fit_on if args.estimate else None
    fitted = {r["dataset"] for r in basis}
    if measured:
        summary["done"] = {"entries": len(measured), "hours": round(sum(m["total_hours"] for m in measured), 1),
                           "core_hours": round(sum(m["core_hours"] for m in measured), 1),
                           # the fit's own accuracy: runs outside the fit (other thread counts) are not in it
                           "measured_over_projected_median": _median(m["measured_over_projected"] for m in measured
                                                                     if not by_done or m["dataset"] in fitted)}
    print(json.dumps({"summary": summary}), flush=True)
    if args.markdown and measured:
        print("\n| done | N | L | stage 1 min | stage 2 min | sampling min | TSTR, FID, IS min | took h | projected h "
              "| took / projected | threads, allocator |\n|---|---|---|---|---|---|---|---|---|---|---|")
        for m in measured:
            mm = m["minutes"]
            kind = m["projected_by"]
            print(f"| {m['dataset']} | {m['n_train']} | {m['length']} | {mm['train_stage1']} | {mm['train_stage2']} | "
                  f"{mm['sampling_uncond'] + mm['sampling_cond']:.1f} | {mm['tstr']} | {m['total_hours']} | "
                  f"{m['projected_hours']} ({kind}) | {m['measured_over_projected']} | "
                  f"{_threads_cell(m)}, {m['host_allocator']} |")
        done = summary["done"]
        print(f"| **{len(measured)} done** | | | | | | | **{done['hours']}** ({done['core_hours']} core-h) | | "
              f"median **{done['measured_over_projected_median']}** | |")
    if args.markdown:
        print("\n| dataset | N | L | stage 1 min | stage 2 min | sampling min | TSTR min | total h | core-h | H200 h ≥ |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: r["total_hours"]):
            m = r["minutes"]
            h200 = f"{r['h200_hours']:.3f}" if "h200_hours" in r else "–"
            name = (f"{r['dataset']} (est.)" if r.get("estimated") else
                    f"{r['dataset']} (timed; {', '.join(r['rescaled'])} rescaled)" if r.get("rescaled") else r["dataset"])
            print(f"| {name} | {r['n_train']} | {r['length']} | {m['train_stage1']} | {m['train_stage2']} | "
                  f"{m['sampling_uncond'] + m['sampling_cond']:.1f} | {m['tstr']} | {r['total_hours']} | "
                  f"{r['core_hours']} | {h200} |")
        h200 = f"{summary['h200_hours']:.2f}" if gpu_floor else "–"
        print(f"| **{len(rows)} dataset{'' if len(rows) == 1 else 's'}** | | | | | | | | **{summary['cpu_core_hours']}** | **{h200}** |")
        if untimed:
            print(f"\nNot timed yet ({len(untimed)}, smallest first): {', '.join(untimed)}.")
    return 0


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 2) if vals else None


def _with_flops(rows: list[dict], cfg) -> list[dict]:
    """``rows`` with each one's FLOPs per step (counted on its shape unless it carries them) and the
    profile's step counts, the two things a fit needs beside the minutes."""
    for row in rows:
        if "step_flops" not in row:
            ds = load_ucr(row["dataset"])
            row["step_flops"] = plan_estimate.step_flops(cfg, len(ds.x_train), ds.length, ds.n_classes)
        row["steps"] = plan_estimate.step_counts(cfg, row["n_train"])
    return rows


def _estimate(names: list[str], timed: list[dict], cfg, gpu_floor,
              echo: bool = True, robust: bool = False) -> tuple[list[dict], float | None]:
    """Rows for ``names`` projected from FLOPs (plan_estimate.py), fitted on the ``timed`` rows
    (each printed as a JSON line unless ``echo`` is false; ``robust``: the soft-L1 fit for whole
    runs)."""
    if not timed:
        raise SystemExit("plan_reproduce: --estimate needs timed rows in --out to fit on")
    _with_flops(timed, cfg)
    model = plan_estimate.fit(timed, robust)
    threads = timed[0]["threads"]
    rows = []
    for name in names:
        ds = load_ucr(name)
        n = len(ds.x_train)
        minutes = plan_estimate.project(model, plan_estimate.step_flops(cfg, n, ds.length, ds.n_classes),
                                        plan_estimate.step_counts(cfg, n))
        hours = sum(minutes.values()) / 60
        row = {"dataset": name, "n_train": n, "length": ds.length, "profile": cfg.profile, "estimated": True,
               "minutes": {"evaluator": 0.0, **{k: round(v, 1) for k, v in minutes.items()}},
               "total_hours": round(hours, 2), "threads": threads, "core_hours": round(hours * threads, 2)}
        if gpu_floor:
            row["h200_hours"] = round(gpu_projection(step_counts(cfg, n), gpu_floor) / 3600, 3)
        rows.append(row)
        if echo:
            print(json.dumps(row), flush=True)
    return rows, plan_estimate.leave_one_out(timed, robust)


if __name__ == "__main__":
    sys.exit(main())
