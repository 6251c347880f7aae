"""The host allocator setting (tvq.device.tune_host_allocator) is speed only: the same numbers
come out, it is recorded, and a bad value is one clear message."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tvq.device

ROOT = Path(__file__).resolve().parent.parent

# Trains a tiny model, draws 1024 series in one batch and fits an FCN on them: blocks of several
# MiB, which glibc maps afresh under "system" and serves from the heap under "reuse".
_CHILD = r"""
import hashlib, json, sys
import numpy as np, torch
from tvq.device import tune_host_allocator
allocator = tune_host_allocator()
sys.path.insert(0, sys.argv[2])
from helpers import tiny_model_config
from tvq.fcn import Recipe, train_fcn
from tvq.train import hardware_summary, train, weights_digest
torch.set_num_threads(1)
model = train(tiny_model_config(dataset="ECG200", threads=1, sample_batch_size=1024), sys.argv[1], progress=False)
x = model.sample(1024, generator=torch.Generator().manual_seed(0)).numpy()
fcn = train_fcn(x, np.arange(1024) % 2, 2, Recipe(epochs=2, batch_size=256, lr=1e-3, weight_decay=1e-5, seed=0))
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
print(json.dumps({"allocator": allocator, "recorded": hardware_summary(torch.device("cpu"))["host_allocator"],
                  "weights": weights_digest(model), "samples": h(x),
                  "fcn": h(np.concatenate([p.detach().numpy().ravel() for p in fcn.parameters()]))}))
"""


def _run_child(tmp_path: Path, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["TVQ_HOST_ALLOCATOR"] = mode
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / mode), str(ROOT / "tests")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_reuse_gives_the_same_weights_samples_and_fcn_as_the_system_allocator(tmp_path):
    system, reuse = _run_child(tmp_path, "system"), _run_child(tmp_path, "reuse")
    assert system["allocator"] == system["recorded"] == "system"
    if tvq.device._glibc() is not None:                      # elsewhere nothing can be changed
        assert reuse["allocator"] == reuse["recorded"] == "reuse"
    for key in ("weights", "samples", "fcn"):
        assert system[key] == reuse[key], key


def test_a_bad_mode_is_refused(monkeypatch):
    with pytest.raises(tvq.device.DeviceError, match="must be one of reuse, system"):
        tvq.device.tune_host_allocator("fast")
    monkeypatch.setenv("TVQ_HOST_ALLOCATOR", "jemalloc")
    with pytest.raises(tvq.device.DeviceError, match=r"\$TVQ_HOST_ALLOCATOR must be one of"):
        tvq.device.tune_host_allocator()


def test_the_command_refuses_a_bad_environment_value_in_one_line():
    env = {**os.environ, "TVQ_HOST_ALLOCATOR": "bogus"}
    proc = subprocess.run([sys.executable, "-m", "tvq", "results", "--results", str(ROOT / "results")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "tvq: error: $TVQ_HOST_ALLOCATOR must be one of reuse, system, got 'bogus'"]


def test_the_command_sets_reuse_and_the_run_records_it(tmp_path):
    """`tvq train` runs with freed memory kept (on glibc) and says so in run.json's hardware."""
    env = {k: v for k, v in os.environ.items() if k != "TVQ_HOST_ALLOCATOR" and not k.startswith("MALLOC_")}
    proc = subprocess.run([sys.executable, "-m", "tvq", "train", "ECG200", "-f", "params/smoke.yaml",
                           "-p", "stage1_epochs=1", "-p", "stage2_epochs=1", "--out", str(tmp_path / "run"),
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hardware = json.loads((tmp_path / "run" / "run.json").read_text())["hardware"]
    assert hardware["host_allocator"] == ("reuse" if tvq.device._glibc() is not None else "system")
    assert "malloc_env" not in hardware
