"""bf16 autocast per phase (issue: precision that does not change results): the options, the
detection of bfloat16 units, what each phase computes under it, and how entries record it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tvq.device
from tvq import results as R
from tvq.config import PRECISION_FIELDS, load_config, precision_of
from tvq.errors import ConfigError

from helpers import tiny_model_config

ROOT = Path(__file__).resolve().parents[1]

PHASES_BF16 = {"stage1_precision": "bf16", "stage2_precision": "bf16", "sample_bf16": True, "tstr_precision": "bf16"}


def _phases(cfg) -> dict:
    return {k: getattr(cfg, k) for k in PRECISION_FIELDS}


# -- the options -------------------------------------------------------------------------------

def test_every_profile_runs_fp32_until_bf16_is_verified():
    for profile in ("thesis", "thesis-text", "thesis-code", "smoke"):
        assert _phases(load_config(profile)) == {"stage1_precision": "fp32", "stage2_precision": "fp32",
                                                  "sample_bf16": False, "tstr_precision": "fp32"}


def test_precision_sets_every_phase_and_a_phases_own_key_wins():
    assert _phases(load_config("thesis", {"precision": "bf16"})) == PHASES_BF16
    mixed = load_config("thesis", {"precision": "bf16", "stage2_precision": "fp32", "sample_bf16": "false"})
    assert (mixed.stage1_precision, mixed.stage2_precision, mixed.sample_bf16, mixed.tstr_precision) == \
        ("bf16", "fp32", False, "bf16")
    # replace() takes the same key; the other fields are untouched
    back = mixed.replace(precision="fp32")
    assert _phases(back) == _phases(load_config("thesis")) and back.to_dict() == load_config("thesis").to_dict()


def test_an_override_beats_the_params_files_per_phase_keys(tmp_path):
    """Layer by layer: -p precision=bf16 on the command line wins over a file that names fp32."""
    f = tmp_path / "mine.yaml"
    f.write_text("stage1_precision: fp32\nsample_bf16: false\nprecision: bf16\n")
    from_file = load_config(f)      # within one layer the phase's own key wins
    assert (from_file.stage1_precision, from_file.sample_bf16, from_file.stage2_precision) == ("fp32", False, "bf16")
    assert _phases(load_config(f, {"precision": "bf16"})) == PHASES_BF16


@pytest.mark.parametrize("overrides", [{"precision": "fp16"}, {"stage2_precision": "half"},
                                       {"tstr_precision": "bf16x"}, {"precision": "1"}])
def test_unknown_precisions_are_config_errors(overrides):
    with pytest.raises(ConfigError, match="precision"):
        load_config("thesis", overrides)


@pytest.mark.parametrize("units", [True, False])
def test_auto_is_resolved_once_to_what_this_machine_has(monkeypatch, units):
    seen = []

    def fake(device):
        seen.append(device)
        return units

    monkeypatch.setattr(tvq.device, "bf16_units", fake)
    cfg = load_config("thesis", {"precision": "auto", "device": "cpu"})
    want = "bf16" if units else "fp32"
    assert _phases(cfg) == {"stage1_precision": want, "stage2_precision": want, "sample_bf16": units,
                            "tstr_precision": want}
    assert seen == ["cpu"]                       # asked once, about the configured device
    assert "auto" not in cfg.to_dict().values()  # what is stored and fingerprinted is what ran
    # a config without auto never asks
    seen.clear()
    load_config("thesis", {"precision": "bf16"})
    assert seen == []


def test_bf16_units_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tvq.device, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert tvq.device.bf16_units("cpu") and tvq.device.bf16_units("auto")
    assert not tvq.device.bf16_units("cuda")     # asked for a GPU this machine lacks: no, not an error
    monkeypatch.setattr(tvq.device, "_cpu_flags", lambda: {"avx2", "avx512f", "fma"})
    assert not tvq.device.bf16_units("cpu")
    monkeypatch.setattr(tvq.device, "_cpu_flags", lambda: {"fp", "asimd", "bf16"})   # aarch64's Features
    assert tvq.device.bf16_units("cpu")


def test_this_machines_flags_are_read():
    flags = tvq.device._cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo here")
    assert tvq.device.bf16_units("cpu") == any(f in flags for f in tvq.device.BF16_CPU_FLAGS)


# -- fingerprints: fp32 runs keep theirs, bf16 runs get their own ----------------------------------

def test_fp32_keeps_every_stored_fingerprint_and_bf16_moves_them():
    import dataclasses

    from tvq.data import load_ucr
    from tvq.train import _ADDED_LATER, training_fingerprint

    ds = load_ucr("ECG200")
    cfg = load_config("thesis", dataset="ECG200")
    # the fields added with this option are left out of the hash at fp32 (checkpoints written
    # before them still resume) ...
    assert _ADDED_LATER["stage2_precision"] == "fp32"
    assert {f.name for f in dataclasses.fields(cfg)} >= set(PRECISION_FIELDS)
    # ... and a bf16 stage, which trains other weights, is another model
    base = training_fingerprint(cfg, ds)
    assert training_fingerprint(cfg.replace(stage2_precision="bf16"), ds) != base
    assert training_fingerprint(cfg.replace(stage1_precision="bf16"), ds) != base
    # sampling and TSTR do not change the weights
    assert training_fingerprint(cfg.replace(sample_bf16=True, tstr_precision="bf16"), ds) == base


# -- what each phase computes ------------------------------------------------------------------

def test_stage2_loss_under_bf16_is_the_fp32_loss_to_bf16_accuracy():
    from tvq.model import TimeVQVDM

    torch.manual_seed(0)
    fp32 = TimeVQVDM.from_config(tiny_model_config(), length=40, n_classes=2)
    bf16 = TimeVQVDM.from_config(tiny_model_config(stage2_precision="bf16"), length=40, n_classes=2)
    bf16.load_state_dict(fp32.state_dict())
    z0_lf, z0_hf = fp32.encode(torch.randn(6, 40))
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    a = fp32.stage2_loss(z0_lf, z0_hf, y, torch.Generator().manual_seed(1))
    b = bf16.stage2_loss(z0_lf, z0_hf, y, torch.Generator().manual_seed(1))
    for k in ("lf", "hf"):
        assert b[k].dtype == torch.float32                     # the loss itself is float32
        assert torch.isfinite(b[k])
        assert b[k].item() == pytest.approx(a[k].item(), rel=0.05)
    assert b["total"].item() != a["total"].item()              # bf16 did run: not bit-equal
    b["total"].backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in bf16.unet_lf.parameters())


def test_tstr_fit_in_bf16_trains_and_never_resumes_an_fp32_checkpoint(tmp_path):
    from tvq.fcn import Recipe, accuracy, train_fcn

    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    t = np.linspace(0, 1, 32)
    x = (np.sin(2 * np.pi * (y[:, None] + 1) * t[None] + rng.uniform(0, 6.3, (48, 1)))
         + 0.1 * rng.standard_normal((48, 32))).astype(np.float32)
    r = Recipe(epochs=8, batch_size=16, lr=1e-2, weight_decay=1e-5, seed=0)
    fp32 = train_fcn(x, y, 3, r)
    bf16 = train_fcn(x, y, 3, r, precision="bf16")
    assert all(v.dtype == torch.float32 for v in bf16.state_dict().values() if v.is_floating_point())
    assert not torch.equal(fp32.head.weight, bf16.head.weight)   # bf16 did run
    assert accuracy(bf16, x, y) > 0.8                            # and learned the easy task
    # an fp32 fit's checkpoint (at epoch 4 of 8) is not picked up by a bf16 fit of the same data
    ckpt = tmp_path / "tstr.pt"
    train_fcn(x, y, 3, r, checkpoint=ckpt, stop_at_epoch=4)
    resumed = train_fcn(x, y, 3, r, checkpoint=ckpt, precision="bf16")
    assert resumed.resumed_seconds == 0.0
    assert torch.equal(resumed.head.weight, bf16.head.weight)
    with pytest.raises(ValueError, match="precision"):
        train_fcn(x, y, 3, r, precision="fp16")


# -- entries and the results chapters ---------------------------------------------------------

def test_precision_labels_keep_bf16_apart_from_fp32():
    thesis = load_config("thesis").to_dict()
    assert R.precision_label(thesis) == "fp32"
    old = {k: v for k, v in thesis.items() if k not in ("stage2_precision", "tstr_precision")}
    assert R.precision_label(old) == "fp32"                    # an entry from before the fields
    assert precision_of(old) == {"stage 1": "fp32", "stage 2": "fp32", "sampling": "fp32", "TSTR": "fp32"}
    bf16 = load_config("thesis", {"precision": "bf16"}).to_dict()
    assert R.precision_label(bf16) == "bf16 (stage 1, stage 2, sampling, TSTR)"
    # still the thesis's protocol, in another arithmetic, and the label says so
    full, label = R.budget_of(bf16)
    assert full and label == "thesis (2000+1000 ep; bf16 (stage 1, stage 2, sampling, TSTR))"
    assert R.budget_of({**thesis, "sample_bf16": True}) == (True, "thesis (2000+1000 ep; bf16 (sampling))")


def test_pick_runs_takes_one_precision():
    import pandas as pd

    df = pd.DataFrame([
        {"dataset": "A", "profile": "thesis", "seed": 0, "full_budget": True, "precision": "fp32"},
        {"dataset": "A", "profile": "thesis", "seed": 1, "full_budget": True, "precision": "bf16 (stage 1)"},
        {"dataset": "B", "profile": "thesis", "seed": 0, "full_budget": True, "precision": "bf16 (stage 1)"}])
    assert list(R.pick_runs(df)["dataset"]) == ["A"]                                   # fp32 only, by default
    assert list(R.pick_runs(df, precision="bf16 (stage 1)")["seed"]) == [1, 0]
    assert len(R.pick_runs(df, precision=None)) == 2


def test_a_bf16_protocol_run_records_its_precision_and_stays_out_of_the_fp32_tables(tmp_path, monkeypatch, capsys):
    from tvq.cli import main
    from tvq.reproduce import reproduce

    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    cfg = tiny_model_config(dataset="Chinatown", stage1_epochs=1, stage2_epochs=1, steps_uncond=2, steps_cond=2,
                            n_samples=20, n_runs=1, sample_batch_size=20, fcn_epochs=1, precision="bf16")
    fp32 = reproduce(cfg.replace(precision="fp32"), root=tmp_path / "store", log=lambda m: None)
    record = reproduce(cfg, root=tmp_path / "store", log=lambda m: None)
    assert record["precision"] == {"stage 1": "bf16", "stage 2": "bf16", "sampling": "bf16", "TSTR": "bf16"}
    # the bf16 entry sits beside the fp32 one of the same profile and seed, which it leaves alone
    assert sorted(p.name for p in (tmp_path / "store" / "Chinatown").iterdir()) == ["smoke-seed0", "smoke-seed0-bf16"]
    assert R.load_entry("Chinatown", "smoke", 0, tmp_path / "store")["fid_cond"] == fp32["fid_cond"]
    assert R.load_entry("Chinatown", "smoke", 0, tmp_path / "store", "-bf16")["precision"] == record["precision"]
    assert record["cond_run"]["tstr_precision"] == "bf16"
    df = R.entries(tmp_path / "store", evaluator="own")
    assert sorted(df["precision"]) == ["bf16 (stage 1, stage 2, sampling, TSTR)", "fp32"]
    table = R.archive_table(5, tmp_path / "store", full_only=False, profile="smoke", evaluator="own")
    assert table.set_index("dataset").loc["Chinatown", "ours_fid_mean"] == fp32["fid_cond"]   # fp32's, not bf16's
    table = R.archive_table(5, tmp_path / "store", full_only=False, profile="smoke", evaluator="own",
                            precision="bf16 (stage 1, stage 2, sampling, TSTR)")
    assert table.set_index("dataset").loc["Chinatown", "precision"].startswith("bf16")
    assert table.set_index("dataset").loc["Chinatown", "ours_fid_mean"] == record["fid_cond"]
    assert main(["results", "--results", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "bf16:stage1,stage2,sampling,TSTR" in out and "fp32" in out


def test_precision_tags_name_the_bf16_phases():
    from tvq.config import precision_tag

    thesis = load_config("thesis")
    assert precision_tag(thesis.to_dict()) == ""
    assert precision_tag(thesis.replace(precision="bf16").to_dict()) == "-bf16"
    assert precision_tag(thesis.replace(sample_bf16=True).to_dict()) == "-bf16-sampling"
    assert precision_tag(thesis.replace(stage1_precision="bf16", tstr_precision="bf16").to_dict()) == "-bf16-s1-tstr"


def test_precision_comparison_sets_a_bf16_entry_beside_its_fp32_twin(tmp_path, monkeypatch):
    """Sampling in bf16 from the same trained model: one row, the same weights, the differences of
    the means, and a verdict against twice the fp32 runs' spread."""
    from tvq.reproduce import reproduce

    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    cfg = tiny_model_config(dataset="Chinatown", stage1_epochs=1, stage2_epochs=1, steps_uncond=2, steps_cond=2,
                            n_samples=20, n_runs=2, sample_batch_size=20, fcn_epochs=1)
    a = reproduce(cfg, root=tmp_path / "store", log=lambda m: None)
    b = reproduce(cfg.replace(sample_bf16=True), root=tmp_path / "store", log=lambda m: None)
    assert b["hardware"]["bf16_units"] == tvq.device.bf16_units("cpu")
    assert R.precision_comparison(tmp_path / "store", evaluator="own", profile="smoke").empty   # not full budget
    t = R.precision_comparison(tmp_path / "store", evaluator="own", profile="smoke", full_only=False)
    assert len(t) == 1
    row = t.iloc[0]
    assert row["precision"] == "bf16 (sampling)" and row["same_model"]
    assert row["fid_uncond_delta"] == pytest.approx(b["fid_uncond_mean"] - a["fid_uncond_mean"])
    assert row["fid_uncond_within"] == (abs(row["fid_uncond_delta"]) <= 2 * a["fid_uncond_std"])
    assert row["tstr_fp32"] == a["tstr"] and row["tstr_bf16"] == b["tstr"]
    # same model, same generators: run r against run r, bf16 minus fp32
    assert row["fid_uncond_paired"] == pytest.approx([rb["fid"] - ra["fid"]
                                                      for ra, rb in zip(a["uncond_runs"], b["uncond_runs"])])
    assert row["is_uncond_paired"] == pytest.approx([rb["is_mean"] - ra["is_mean"]
                                                     for ra, rb in zip(a["uncond_runs"], b["uncond_runs"])])
    assert len(row["fid_uncond_paired"]) == 2
    # runs scored by another evaluator than the one asked for are not paired
    entry = R.entries(tmp_path / "store", profile="smoke", evaluator="own").iloc[0]
    assert R._uncond_runs(entry, "own") and R._uncond_runs(entry, "lee2023") is None
    # TSTR has no spread until the fp32 fit is repeated with other seeds on the stored draw
    assert row["tstr_fp32_fits"] == 0 and row["tstr_fp32_sd"] is None and row["tstr_within"] is None
    fp32_entry = tmp_path / "store" / "Chinatown" / "smoke-seed0"
    script = [sys.executable, str(ROOT / "scripts" / "tstr_refit.py")]
    proc = subprocess.run([*script, str(fp32_entry), "--seeds", "1", "2", "0", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    state = json.loads((fp32_entry / "phases" / R.TSTR_REFITS).read_text())
    assert [f["seed"] for f in state["fits"]] == [0, 1, 2] and state["protocol_tstr"] == a["tstr"]
    assert state["recipe"]["epochs"] == 1 and state["recipe"]["seed"] is None
    spread = R.tstr_refits(fp32_entry)
    by_seed = {f["seed"]: f["tstr"] for f in state["fits"]}
    assert spread["values"] == [a["tstr"], by_seed[1], by_seed[2]] and spread["seed0_refit"] == by_seed[0]
    assert spread["sd"] == pytest.approx(float(np.std(spread["values"], ddof=1)))
    row = R.precision_comparison(tmp_path / "store", evaluator="own", profile="smoke", full_only=False).iloc[0]
    assert row["tstr_fp32_fits"] == 3 and row["tstr_fp32_sd"] == pytest.approx(spread["sd"])
    assert row["tstr_within"] == (abs(b["tstr"] - np.mean(spread["values"])) <= 2 * spread["sd"])
    # run again: the seeds already fitted are skipped, the file is unchanged
    proc = subprocess.run([*script, str(fp32_entry), "--seeds", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0 and "already fitted" in proc.stdout
    assert json.loads((fp32_entry / "phases" / R.TSTR_REFITS).read_text()) == state
    # not a finished entry: one line, exit 2, nothing written
    proc = subprocess.run([*script, str(tmp_path / "store" / "Chinatown")], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 2 and "not a finished store entry" in proc.stderr and "Traceback" not in proc.stderr


def test_paired_sign_test_pools_the_same_model_runs_of_every_dataset():
    """Relative per-run differences pooled over datasets, and the sign test on them: six of six lower
    has p = 2/64 under noise with no direction; rows without paired runs add nothing."""
    cmp = pd.DataFrame([
        {"dataset": "A", "fid_uncond_fp32": 10.0, "fid_uncond_paired": [-0.1, -0.2, -0.15]},
        {"dataset": "B", "fid_uncond_fp32": 1.0, "fid_uncond_paired": [-0.05, -0.08, -0.07]},
        {"dataset": "C", "fid_uncond_fp32": 5.0, "fid_uncond_paired": None}])
    s = R.paired_sign_test(cmp)
    assert (s["n_datasets"], s["n_runs"], s["n_lower"]) == (2, 6, 6)
    assert s["p_value"] == pytest.approx(2 / 2 ** 6)
    assert (s["rel_min"], s["rel_max"]) == (pytest.approx(-0.08), pytest.approx(-0.01))
    cmp.loc[1, "fid_uncond_paired"] = [0.05, 0.08, -0.07]
    s = R.paired_sign_test(cmp)
    assert s["n_lower"] == 4 and s["p_value"] == pytest.approx(44 / 64)   # P(at most 2 or at least 4 of 6)
    assert R.paired_sign_test(cmp.iloc[2:]) is None
