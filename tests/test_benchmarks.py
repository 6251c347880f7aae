"""The benchmark scripts run and report what they claim (their figures are not asserted: speed is
measured by running them, not by timed tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
