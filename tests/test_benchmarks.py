"""The benchmark scripts run and report what they claim (their figures are not asserted: speed is
measured by running them, not by timed tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_phases_reports_flops_rate_and_fraction_of_peak():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_phases.py"), "--dataset", "ECG200",
                           "--threads", "1", "--steps", "1", "--n-samples", "4", "--sample-steps", "2",
                           "--batch-size", "16", "--fcn-batch-size", "16"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    head, rows, summary = lines[0], lines[1:-1], lines[-1]["summary"]
    assert head["dataset"] == "ECG200" and "avx512_bf16" in head["machine"]
    assert {(r["precision"], r["phase"]) for r in rows} == {
        (p, ph) for p in ("fp32", "bf16") for ph in ("stage1 step", "stage2 step", "fcn step", "4 samples")}
    for r in rows:
        assert r["gflop"] > 0 and r["seconds"] > 0 and r["matmul_peak_gflops"] > 0
        assert 256 <= r["matmul_peak_n"] <= 2048 and r["matmul_peak_precision"] in ("fp32", r["precision"])
        assert abs(r["fraction_of_peak"] - r["gflops_per_s"] / r["matmul_peak_gflops"]) < 0.01
    by = {(r["precision"], r["phase"]): r["gflop"] for r in rows}
    for ph in ("stage1 step", "stage2 step", "fcn step", "4 samples"):   # the same work in both precisions
        assert by[("fp32", ph)] == by[("bf16", ph)]
    assert set(summary["bf16_speedup"]) == {"stage1 step", "stage2 step", "fcn step", "4 samples"}


def _plan_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import plan_reproduce
    finally:
        sys.path.pop(0)
    return plan_reproduce


def test_plan_h200_projection_gives_back_the_measured_gpu_run_it_was_taken_from(tmp_path):
    """The per-step GPU times come from the store's H200 entries; projecting one of them onto its
    own dataset must give its own measured phase times back (steps are counted the same way)."""
    import shutil

    from tvq.config import from_mapping

    plan = _plan_module()
    shutil.copytree(ROOT / "results" / "BeetleFly", tmp_path / "BeetleFly")
    entry = json.loads((tmp_path / "BeetleFly" / "thesis-seed0" / "entry.json").read_text())
    assert "H200" in entry["hardware"]["gpu"]
    floor = plan.gpu_step_seconds(tmp_path)
    counts = plan.step_counts(from_mapping(entry["config"]), 20)
    assert counts["train_stage1"] == 2000 and counts["evaluator"] == 0
    measured = sum(entry["wall_s_phases"][p] for p, k in counts.items() if k)
    assert abs(plan.gpu_projection(counts, floor) - measured) < 1e-6
    # a dataset with 7x the training series takes 7x the stage-1 steps (batch 128: 140 series -> 2 steps)
    assert plan.step_counts(from_mapping(entry["config"]), 140)["train_stage1"] == 4000
    assert plan.gpu_step_seconds(tmp_path / "empty") == {}


def test_plan_resumes_from_its_out_file_and_skips_a_torn_line(tmp_path):
    """Rows already in --out are reported as they are, not timed again; an interrupted write's
    half line is skipped; --remaining leaves out what the store holds."""
    out = tmp_path / "plan.jsonl"
    planted = {"dataset": "Chinatown", "n_train": 20, "length": 24, "profile": "thesis",
               "step_s": {"stage1": 9.0, "stage2": 9.0},
               "minutes": {"evaluator": 0.0, "train_stage1": 111.0, "train_stage2": 1.0, "sampling_uncond": 1.0,
                           "sampling_cond": 1.0, "tstr": 1.0}, "total_hours": 1.93, "threads": 1, "core_hours": 1.93}
    out.write_text(json.dumps(planted) + "\n" + '{"dataset": "Chin')
    cmd = [sys.executable, str(ROOT / "benchmarks" / "plan_reproduce.py"), "Chinatown", "--threads", "1",
           "--out", str(out), "--results", str(tmp_path / "store"), "--markdown"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    # (the planted row has no timed_steps: it was timed at the earlier 128 unconditional steps)
    assert "| Chinatown (timed; sampling_uncond rescaled) | 20 | 24 | 111.0 |" in proc.stdout
    summary = next(json.loads(ln)["summary"] for ln in proc.stdout.splitlines() if ln.startswith('{"summary"'))
    assert summary["datasets"] == 1 and summary["cpu_core_hours"] == 1.9 and summary["h200_hours"] is None
    assert summary["probe_gflops_range"] is None      # the planted row predates the probe
    assert summary["not_timed"] == 0
    # --report times nothing: a dataset without a row is counted and named, not timed
    proc = subprocess.run(cmd[:3] + ["ItalyPowerDemand"] + cmd[3:] + ["--report"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    summary = next(json.loads(ln)["summary"] for ln in proc.stdout.splitlines() if ln.startswith('{"summary"'))
    assert summary["datasets"] == 1 and summary["not_timed"] == 1
    assert "Not timed yet (1, smallest first): ItalyPowerDemand." in proc.stdout
    # --remaining, against stores planted from a real entry (Fungi's, whatever the real store's state):
    # at the full budget under today's profile the dataset is done; under earlier defaults it is to do.
    from tvq.config import load_config
    from tvq.results import EARLIER_DEFAULTS

    real = ROOT / "results" / "Fungi" / "thesis-seed0"
    template = json.loads((real / "entry.json").read_text())
    today = load_config("thesis", dataset="Fungi").to_dict()
    for name, config in (("current", today), ("earlier", {**today, **EARLIER_DEFAULTS})):
        store = tmp_path / name / "Fungi" / "thesis-seed0"
        store.mkdir(parents=True)
        (store / "entry.json").write_text(json.dumps({**template, "config": config}))
        (store / "DONE").write_text("{}")
    proc = subprocess.run(cmd[:2] + ["Fungi", "--remaining", "--results", str(tmp_path / "current"),
                                     "--out", str(tmp_path / "empty.jsonl"), "--report"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["summary"]["datasets"] == 0
    assert json.loads(proc.stdout.splitlines()[-1])["summary"]["not_timed"] == 0
    proc = subprocess.run(cmd[:2] + ["Fungi", "--remaining", "--results", str(tmp_path / "earlier"),
                                     "--out", str(tmp_path / "empty.jsonl"), "--report"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["summary"]["not_timed"] == 1


def test_plan_done_lists_the_finished_cpu_runs_beside_their_projection(tmp_path):
    """--done reads what each finished CPU run of the settled profile took from its entry, phase by
    phase, and divides by the planner's projection for the same dataset; runs under earlier
    defaults, on a GPU, or of another profile are not the planner's to calibrate."""
    from tvq.config import load_config
    from tvq.results import EARLIER_DEFAULTS

    template = json.loads((ROOT / "results" / "Fungi" / "thesis-seed0" / "entry.json").read_text())
    walls = {"evaluator": 0.0, "train_stage1": 1200.0, "train_stage2": 900.0, "sampling_uncond": 300.0,
             "sampling_cond": 120.0, "scoring": 900.0, "this_invocation": 77.0}      # 3420 s = 0.95 h
    cpu = {"cpu": "AMD EPYC", "cpu_count": 2, "device": "cpu", "threads": 1, "host_allocator": "reuse"}

    def plant(dataset, config, hardware, profile="thesis"):
        entry = tmp_path / "store" / dataset / f"{profile}-seed0"
        entry.mkdir(parents=True)
        (entry / "entry.json").write_text(json.dumps({**template, "dataset": dataset, "profile": profile,
                                                      "config": config, "hardware": hardware,
                                                      "wall_s_phases": walls}))
        (entry / "DONE").write_text("{}")

    plant("Chinatown", load_config("thesis", dataset="Chinatown").to_dict(), cpu)
    plant("ItalyPowerDemand", {**load_config("thesis", dataset="ItalyPowerDemand").to_dict(), **EARLIER_DEFAULTS}, cpu)
    plant("MoteStrain", load_config("thesis", dataset="MoteStrain").to_dict(), {**cpu, "gpu": "NVIDIA H200"})
    plant("CBF", load_config("smoke", dataset="CBF").to_dict(), cpu, profile="smoke")
    out = tmp_path / "plan.jsonl"
    out.write_text(json.dumps({"dataset": "Chinatown", "n_train": 20, "length": 24, "profile": "thesis",
                               "minutes": {"evaluator": 0.0, "train_stage1": 60.0, "train_stage2": 30.0,
                                           "sampling_uncond": 10.0, "sampling_cond": 4.0, "tstr": 10.0},
                               "total_hours": 1.9, "threads": 1, "core_hours": 1.9,
                               "timed_steps": {"train_stage1": 2000, "train_stage2": 1000, "sampling_uncond": 98304,
                                               "sampling_cond": 32768, "tstr": 4000}}) + "\n")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "plan_reproduce.py"), "Chinatown", "--results",
           str(tmp_path / "store"), "--out", str(out), "--report", "--markdown", "--done"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    done = [json.loads(ln)["done"] for ln in proc.stdout.splitlines() if ln.startswith('{"done"')]
    assert [d["dataset"] for d in done] == ["Chinatown"]
    assert done[0]["minutes"]["train_stage1"] == 20.0 and done[0]["minutes"]["tstr"] == 15.0
    assert done[0]["total_hours"] == 0.95 and done[0]["projected_hours"] == 1.9
    assert done[0]["measured_over_projected"] == 0.5
    assert "| Chinatown | 20 | 24 | 20.0 | 15.0 | 7.0 | 15.0 | 0.95 | 1.9 (timed) | 0.5 | 1, reuse |" in proc.stdout
    summary = next(json.loads(ln)["summary"] for ln in proc.stdout.splitlines() if ln.startswith('{"summary"'))
    assert summary["done"]["entries"] == 1 and summary["done"]["measured_over_projected_median"] == 0.5
    assert summary["done"]["core_hours"] == round(0.95, 1)
    # the comparison needs the planner's rows: --done without --out is one line and exit 2
    proc = subprocess.run(cmd[:5] + ["--done"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 2 and "--done" in proc.stderr and "Traceback" not in proc.stderr


def test_timed_rows_follow_the_profiles_step_counts():
    """A row timed at 128 unconditional steps is shown and fitted at the profile's 32: its
    unconditional minutes scale by the ratio, nothing else moves, and a row that records its
    own step counts is read with those."""
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "benchmarks"))
    import plan_estimate

    from tvq.config import load_config

    cfg = load_config("thesis")
    assert cfg.steps_uncond == 32
    row = {"dataset": "Chinatown", "n_train": 20, "threads": 1, "profile": "thesis", "total_hours": 2.0, "core_hours": 2.0,
           "minutes": {"evaluator": 0.0, "train_stage1": 30.0, "train_stage2": 30.0, "sampling_uncond": 40.0,
                       "sampling_cond": 10.0, "tstr": 10.0}}
    now = plan_estimate.at_profile(row, cfg)            # no timed_steps: timed at the earlier 128
    assert now["rescaled"] == ["sampling_uncond"] and now["minutes"]["sampling_uncond"] == 10.0
    assert {k: v for k, v in now["minutes"].items() if k != "sampling_uncond"} == \
        {k: v for k, v in row["minutes"].items() if k != "sampling_uncond"}
    assert now["total_hours"] == 1.5 and now["core_hours"] == 1.5
    recorded = {**row, "timed_steps": plan_estimate.step_counts(cfg, 20)}
    assert plan_estimate.at_profile(recorded, cfg) is recorded          # timed at today's counts
    assert plan_estimate.at_profile({**row, "profile": "smoke"}, load_config("smoke")) == {**row, "profile": "smoke"}
    fitted = plan_estimate.fit([{**now, "steps": plan_estimate.step_counts(cfg, 20),
                                 "step_flops": {p: 1e9 for p in plan_estimate.PHASES}}])
    per_step = fitted["sampling_uncond"][1] * 1e9
    assert per_step * plan_estimate.step_counts(cfg, 20)["sampling_uncond"] / 60 == pytest.approx(10.0)


def test_plan_row_times_every_phase_and_records_the_probe_beside_it():
    """A timed row carries what the machine gave it (a matmul probe and the load), and each phase's
    minutes are the step time times the profile's step count."""
    import torch

    plan = _plan_module()
    row = plan.plan("Chinatown", "smoke", torch.device("cpu"), repeats=1)
    assert row["probe_gflops"] > 0 and row["load_1min"] >= 0
    assert set(row["minutes"]) == {"evaluator", "train_stage1", "train_stage2", "sampling_uncond", "sampling_cond", "tstr"}
    from tvq.config import load_config
    cfg = load_config("smoke", {})
    expect = cfg.stage1_epochs * -(-20 // cfg.stage1_batch_size) * row["step_s"]["stage1"] / 60
    assert abs(row["minutes"]["train_stage1"] - expect) < 0.06 + 0.01 * expect


def test_plan_estimate_projects_untimed_datasets_along_the_line_fitted_to_the_timed_ones(tmp_path):
    """Timed rows planted on a known line (seconds per step = a + b x FLOPs, per phase): --estimate
    must give an untimed dataset exactly that line's minutes, mark its row estimated, and report
    a leave-one-out error of zero."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import plan_estimate
    finally:
        sys.path.pop(0)
    from tvq.config import load_config
    from tvq.data import load_ucr

    cfg = load_config("smoke", {})
    line = {p: (0.01 * (i + 1), 1e-9 * (i + 2)) for i, p in enumerate(plan_estimate.PHASES)}

    def minutes(name):
        ds = load_ucr(name)
        flops = plan_estimate.step_flops(cfg, len(ds.x_train), ds.length, ds.n_classes)
        return ds, flops, plan_estimate.project(line, flops, plan_estimate.step_counts(cfg, len(ds.x_train)))

    out = tmp_path / "plan.jsonl"
    with open(out, "w") as fh:
        for name in ("Chinatown", "ItalyPowerDemand", "MoteStrain"):
            ds, flops, m = minutes(name)
            fh.write(json.dumps({"dataset": name, "n_train": len(ds.x_train), "length": ds.length, "profile": "smoke",
                                 "step_flops": flops, "minutes": {"evaluator": 0.0, **m},
                                 "total_hours": sum(m.values()) / 60, "threads": 1,
                                 "core_hours": sum(m.values()) / 60}) + "\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plan_reproduce.py"), "ECG200", "-f", "smoke",
                           "--out", str(out), "--results", str(tmp_path / "store"), "--estimate", "--markdown"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith('{"dataset"')]
    assert [r["dataset"] for r in rows] == ["ECG200"] and rows[0]["estimated"] is True
    _, _, want = minutes("ECG200")
    for phase in plan_estimate.PHASES:
        assert abs(rows[0]["minutes"][phase] - round(want[phase], 1)) <= 0.1, phase
    summary = next(json.loads(ln)["summary"] for ln in proc.stdout.splitlines() if ln.startswith('{"summary"'))
    assert summary["estimated"] == 1 and summary["estimate_loo_error"] < 1e-6
    assert "| ECG200 (est.) |" in proc.stdout


def test_bench_allocator_times_every_phase_in_a_child_per_mode():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_allocator.py"), "--dataset", "ECG200",
                           "--steps", "1", "--n-samples", "8", "--sample-steps", "1", "--rounds", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    children, summary = lines[:-1], lines[-1]["summary"]
    assert [c["mode"] for c in children] == ["system", "reuse"]
    import tvq.device
    glibc = tvq.device._glibc() is not None
    assert [c["allocator"] for c in children] == ["system", "reuse" if glibc else "system"]
    phases = {"stage1 step", "stage2 step", "fcn step", "draw", "guided draw"}
    for c in children:
        assert set(c["seconds"]) == phases and all(v > 0 for v in c["seconds"].values())
        assert c["max_rss_gib"] > 0 and all(p > 0 for p in c["matmul_probe_gflops"])
    assert set(summary["speedup_reuse"]) == phases
    for ph in phases:   # one round: the medians are the children's own figures
        assert summary["speedup_reuse"][ph] == round(children[0]["seconds"][ph] / children[1]["seconds"][ph], 2)


def test_plan_fit_on_done_recovers_the_line_of_the_finished_runs_past_an_outlier(tmp_path):
    """Finished runs planted on a known line (seconds per step = a + b x FLOPs, per phase), one of
    them three times slower throughout (a run beside heavy load): --estimate --fit-on done projects
    an unfinished dataset near the line, closer than least squares would, and --done sets each
    finished run beside the line fitted without it. A run made with two threads (half the time) is
    set beside the one-thread line and bends nothing."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import plan_estimate
    finally:
        sys.path.pop(0)
    from tvq.config import load_config
    from tvq.data import load_ucr

    cfg = load_config("thesis", {})
    line = {"train_stage1": (0.05, 2e-9), "train_stage2": (0.04, 3e-9), "sampling_uncond": (0.001, 4e-10),
            "sampling_cond": (0.001, 4e-10), "tstr": (0.1, 1e-10)}
    template = json.loads((ROOT / "results" / "Fungi" / "thesis-seed0" / "entry.json").read_text())
    walls_key = {"train_stage1": "train_stage1", "train_stage2": "train_stage2", "sampling_uncond": "sampling_uncond",
                 "sampling_cond": "sampling_cond", "tstr": "scoring"}
    rows = []
    for name, slow, threads in (("Chinatown", 1, 1), ("ItalyPowerDemand", 1, 1), ("MoteStrain", 1, 1), ("ECG200", 1, 1),
                                ("BME", 3, 1), ("Coffee", 0.5, 2), ("GunPoint", 0.8, 1)):
        ds = load_ucr(name)
        flops = plan_estimate.step_flops(cfg, len(ds.x_train), ds.length, ds.n_classes)
        minutes = plan_estimate.project(line, flops, plan_estimate.step_counts(cfg, len(ds.x_train)))
        walls = {walls_key[p]: 60 * m * slow for p, m in minutes.items()}
        # ECG200's last invocation had two threads but every phase ran with one (its threads_phases
        # say so): a one-thread run. GunPoint's TSTR fit was resumed with two: its phases differ.
        phase_threads = {"ECG200": {k: [1] for k in ("evaluator", *walls)},
                         "GunPoint": {**{k: [1] for k in ("evaluator", *walls)}, "scoring": [1, 2]}}.get(name)
        entry = tmp_path / "store" / name / "thesis-seed0"
        entry.mkdir(parents=True)
        (entry / "entry.json").write_text(json.dumps({
            **template, "dataset": name, "config": load_config("thesis", dataset=name).to_dict(),
            "hardware": {"cpu": "AMD EPYC", "cpu_count": 2, "device": "cpu",
                         "threads": 2 if phase_threads else threads, "host_allocator": "reuse"},
            "wall_s_phases": {"evaluator": 0.0, **walls},
            **({"threads_phases": phase_threads} if phase_threads else {})}))
        (entry / "DONE").write_text("{}")
        if threads != 1 or name == "GunPoint":
            continue
        rows.append({"dataset": name, "step_flops": flops, "steps": plan_estimate.step_counts(cfg, len(ds.x_train)),
                     "minutes": {p: m * slow for p, m in minutes.items()}})
    ds = load_ucr("CBF")
    want = sum(plan_estimate.project(line, plan_estimate.step_flops(cfg, len(ds.x_train), ds.length, ds.n_classes),
                                     plan_estimate.step_counts(cfg, len(ds.x_train))).values()) / 60
    out = tmp_path / "plan.jsonl"
    out.write_text("")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "plan_reproduce.py"), "CBF", "--results", str(tmp_path / "store"),
           "--out", str(out), "--estimate", "--fit-on", "done", "--done", "--markdown"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    got = next(json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith('{"dataset"'))
    assert got["dataset"] == "CBF" and got["estimated"] is True
    plain = plan_estimate.fit(rows)
    cbf_flops = plan_estimate.step_flops(cfg, len(ds.x_train), ds.length, ds.n_classes)
    lsq = sum(plan_estimate.project(plain, cbf_flops, plan_estimate.step_counts(cfg, len(ds.x_train))).values()) / 60
    assert abs(got["total_hours"] - want) / want < 0.05
    assert abs(got["total_hours"] - want) < abs(lsq - want)
    done = {json.loads(ln)["done"]["dataset"]: json.loads(ln)["done"] for ln in proc.stdout.splitlines()
            if ln.startswith('{"done"')}
    assert set(done) == {"Chinatown", "ItalyPowerDemand", "MoteStrain", "ECG200", "BME", "Coffee", "GunPoint"}
    assert all(d["projected_by"] == "fit without it" for n, d in done.items() if n not in ("Coffee", "GunPoint"))
    assert done["ECG200"]["threads"] == 1 and done["ECG200"]["mixed_threads"] is None
    # phases with different thread counts: beside the fit, each phase's core-hours at its largest count
    gp = done["GunPoint"]
    assert gp["projected_by"] == "fit on 1-thread runs" and gp["mixed_threads"] == [1, 2] and gp["threads"] == 2
    tstr_h = gp["minutes"]["tstr"] / 60
    assert gp["core_hours"] == pytest.approx(gp["total_hours"] + tstr_h, abs=0.02)
    assert "| 1/2 by phase, reuse |" in proc.stdout
    assert done["BME"]["measured_over_projected"] > 2.5          # the slow run stands out against the others' line
    assert 0.9 < done["ECG200"]["measured_over_projected"] < 1.1
    # the two-thread run: beside the one-thread line, its ratio is its speed-up; core-hours count both threads
    assert done["Coffee"]["projected_by"] == "fit on 1-thread runs"
    assert 0.45 < done["Coffee"]["measured_over_projected"] < 0.55
    assert done["Coffee"]["core_hours"] == pytest.approx(2 * done["Coffee"]["total_hours"], abs=0.02)
    summary = next(json.loads(ln)["summary"] for ln in proc.stdout.splitlines() if ln.startswith('{"summary"'))
    assert summary["fit_on"] == "done" and summary["estimate_fitted_on"] == sorted(set(done) - {"Coffee", "GunPoint"})
    assert 0.9 < summary["done"]["measured_over_projected_median"] < 1.1     # the fit's runs only
    assert "(fit without it)" in proc.stdout and "(fit on 1-thread runs)" in proc.stdout
    # too few finished runs to fit on: one line, exit 2
    proc = subprocess.run([*cmd[:4], str(tmp_path / "empty"), *cmd[5:]], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 2 and "--fit-on done" in proc.stderr and "Traceback" not in proc.stderr
