"""Reading the store beside the thesis's tables (what the results chapters show)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tvq import results as R
from tvq.config import load_config
from tvq.reproduce import reproduce


def test_thesis_tables_are_complete_and_match_the_quoted_averages():
    t4, t5, t6 = R.thesis_table(4), R.thesis_table(5), R.thesis_table(6)
    assert len(t4) == len(t5) == len(t6) == 128
    assert set(t4["dataset"]) == set(t6["name"]) == set(t5["dataset"])
    # the thesis quotes 7.76 for the mean FID of Table 4 (rounded from its own rows)
    assert abs(t4["fid_mean"].mean() - 7.76) < 0.02
    t3 = R.thesis_table(3)
    assert list(t3["t_max"]) == [1.0, 0.999, 0.99, 0.98, 0.95]
    with pytest.raises(ValueError):
        R.thesis_table(7)


def test_budget_labels_say_what_differs_from_the_thesis():
    thesis = load_config("thesis").to_dict()
    assert R.budget_of(thesis) == (True, "thesis (2000+1000 ep)")
    # where it ran does not change the budget
    assert R.budget_of({**thesis, "device": "cuda", "threads": 1, "dataset": "Coffee"})[0]
    full, label = R.budget_of({**thesis, "stage2_epochs": 100})
    assert not full and "stage2_epochs=100" in label
    full, label = R.budget_of(load_config("smoke").to_dict())
    assert not full and "settings differ" in label


def test_an_entry_from_before_a_settled_default_is_labelled_not_reduced(monkeypatch):
    """When params/thesis.yaml adopts a new default, entries stored under the earlier one keep the
    thesis's budget, and their label names the earlier value; any other difference still reduces."""
    thesis = load_config("thesis")
    reference = thesis.replace(sample_noise_cond="variance", stage2_latents="quantized")
    monkeypatch.setattr(R, "EARLIER_DEFAULTS", {"sample_noise_cond": "same", "stage2_latents": "continuous"})
    old = {**thesis.to_dict(), **R.EARLIER_DEFAULTS}
    full, label = R.budget_of(old, reference)
    assert full and label.startswith("thesis (2000+1000 ep; earlier defaults: ")
    assert all(f"{k}={v}" in label for k, v in R.EARLIER_DEFAULTS.items())
    assert R.earlier_defaults(old, reference) == R.EARLIER_DEFAULTS
    assert R.budget_of({**reference.to_dict()}, reference) == (True, "thesis (2000+1000 ep)")
    assert R.earlier_defaults(reference.to_dict(), reference) == {}
    full, label = R.budget_of({**old, "stage2_epochs": 10}, reference)
    assert not full and "stage2_epochs=10" in label and "earlier defaults" in label
    # A value that is neither the earlier nor the current default is a plain difference.
    full, label = R.budget_of({**old, "sample_noise_cond": "same", "stage2_latents": "quantized", "rescale": 0.2}, reference)
    assert not full and "rescale=0.2" in label


def test_the_earlier_defaults_are_the_text_profiles_values_where_the_settled_profile_moved():
    """Every field params/thesis.yaml changed from params/thesis-text.yaml is in EARLIER_DEFAULTS with
    the text's value, so a stored entry of the text's model is labelled, not called reduced."""
    text, settled = load_config("thesis-text").to_dict(), load_config("thesis").to_dict()
    moved = {k: text[k] for k in text if text[k] != settled[k] and k != "profile"}
    assert moved and all(R.EARLIER_DEFAULTS.get(k) == v for k, v in moved.items())
    old = {**text, "sample_noise_cond": "same", "profile": "thesis"}
    full, label = R.budget_of(old)
    assert full and f"the thesis text's model, {len(moved) + 1} settings" in label
    assert R.earlier_defaults(old) == {**moved, "sample_noise_cond": "same"}
    assert R.budget_of(settled) == (True, "thesis (2000+1000 ep)")


def test_loglog_fit_recovers_a_power_law():
    x = np.array([10.0, 30.0, 100.0, 300.0, 1000.0])
    slope, icpt = R.loglog_fit(x, 3.0 * x ** -0.5)
    assert slope == pytest.approx(-0.5) and 10 ** icpt == pytest.approx(3.0)
    slope, _ = R.loglog_fit(x, 2.0 * np.log10(x), log_y=False)
    assert slope == pytest.approx(2.0)
    assert np.isnan(R.loglog_fit(np.array([1.0]), np.array([1.0]))[0])


def test_common_summary_uses_only_datasets_both_report():
    table = pd.DataFrame({"dataset": ["a", "b", "c"], "thesis_fid_mean": [1.0, 2.0, 3.0],
                          "ours_fid_mean": [2.0, np.nan, 4.0], "thesis_fid_std": [0.1] * 3, "ours_fid_std": [0.2] * 3})
    s = R.common_summary(table).set_index("metric")
    assert s.loc["fid_mean", "n_datasets"] == 2
    assert s.loc["fid_mean", "thesis_mean"] == pytest.approx(2.0)
    assert s.loc["fid_mean", "ours_mean"] == pytest.approx(3.0)
    assert s.loc["fid_mean", "ours_lower"] == 0


def test_scores_by_prefers_the_protocols_own_scores_then_a_rescoring():
    rec = {"evaluator": "own", "fid_uncond_mean": 3.0, "n_samples": 1024, "n_runs": 3,
           "rescored": {"lee2023": {"fid_uncond": 5.0, "is_uncond": 1.5, "fid_cond": 2.0, "is_cond": 1.8,
                                    "trtr": 0.9, "fid_train_vs_test": 0.5, "n_uncond": 256}}}
    assert R.scores_by(rec, "own")["fid_uncond_mean"] == 3.0 and R.scores_by(rec, "own")["scored_from"] == "protocol"
    lee = R.scores_by(rec, "lee2023")
    assert (lee["fid_uncond_mean"], lee["n_uncond"], lee["scored_from"], lee["fid_uncond_std"]) == (5.0, 256, "stored", None)
    assert R.scores_by({"fid_uncond_mean": 1.0}, "lee2023") is None  # an old entry, never re-scored


def test_archive_tables_have_all_128_rows_with_ours_where_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config("smoke", dict(
        dataset="Chinatown", stage1_epochs=1, stage2_epochs=1, hidden_dim=8, codebook_size=16, n_resblocks=1,
        unet_lf_channels=[8, 16], unet_hf_channels=[8, 16], time_embed_dim=16, class_embed_dim=16,
        attn_heads=2, attn_head_dim=4, steps_uncond=2, steps_cond=2, n_samples=20, n_runs=2,
        sample_batch_size=20, fcn_epochs=1))
    record = reproduce(cfg, root=tmp_path / "store", log=lambda m: None)
    # the thesis profile counts full-budget runs only: this smoke run is not one
    assert R.archive_table(4, tmp_path / "store", evaluator="own")["ours_fid_mean"].isna().all()
    # the smoke run was scored by our own FCN: under the thesis's evaluator it has no FID yet
    assert R.archive_table(5, tmp_path / "store", full_only=False, profile="smoke")["ours_fid_mean"].isna().all()
    t5 = R.archive_table(5, tmp_path / "store", full_only=False, profile="smoke", evaluator="own")
    assert len(t5) == 128 and list(t5["id"]) == list(range(1, 129))
    row = t5.set_index("dataset").loc["Chinatown"]
    assert row["ours_tstr_pct"] == pytest.approx(100 * record["tstr"])
    assert row["ours_fid_mean"] == pytest.approx(record["fid_cond"])
    assert row["budget"].startswith("reduced")
    assert t5["ours_fid_mean"].notna().sum() == 1
    entry = R.load_entry("Chinatown", "smoke", 0, tmp_path / "store")
    assert entry["arrays"]["samples_uncond"].shape == (20, 24) and entry["parts"]["gen_x"].shape == (16, 24)
    assert R.load_entry("Coffee", "smoke", 0, tmp_path / "store") is None


def test_settled_only_drops_runs_under_earlier_defaults_from_our_side_only(monkeypatch):
    """A summary of today's model may not take in a run of the thesis text's model: archive_table marks
    each of our runs, and settled_only blanks the marked ones while every thesis value stays."""
    def run(name, older, fid):
        return {"dataset": name, "profile": "thesis", "seed": 0, "full_budget": True, "budget": "thesis",
                "precision": "fp32", "earlier_defaults": older, "n_uncond": 1024, "n_runs_scored": 3,
                "scored_from": "protocol", "fid_uncond_mean": fid, "fid_uncond_std": 0.1,
                "is_uncond_mean": 1.5, "is_uncond_std": 0.01}
    fake = pd.DataFrame([run("Chinatown", False, 11.0), run("Coffee", True, 3.0)])
    monkeypatch.setattr(R, "entries", lambda root=None, profile=None, evaluator="lee2023": fake)
    t4 = R.archive_table(4)
    by = t4.set_index("dataset")
    assert by.loc["Chinatown", "earlier_defaults"] == False  # noqa: E712
    assert by.loc["Coffee", "earlier_defaults"] == True  # noqa: E712
    assert pd.isna(by.loc["GunPoint", "earlier_defaults"])
    s4 = R.settled_only(t4).set_index("dataset")
    assert s4.loc["Chinatown", "ours_fid_mean"] == 11.0
    assert s4[[c for c in s4.columns if c.startswith("ours_")]].loc["Coffee"].isna().all()
    assert s4["thesis_fid_mean"].equals(by["thesis_fid_mean"])
    assert R.common_summary(R.settled_only(t4)).set_index("metric").loc["fid_mean", "n_datasets"] == 1
    assert R.common_summary(t4).set_index("metric").loc["fid_mean", "n_datasets"] == 2


def test_tvq_results_says_which_entries_count_as_the_thesis_protocol(tmp_path, capsys):
    """`tvq results` names each entry's budget (full, full under earlier defaults, reduced) in its table
    and in --json, and counts the datasets at the full budget of today's profile scored with the thesis's
    evaluators: the figure the reproduction's progress is read from."""
    import json
    import shutil

    from tvq.cli import main

    root = Path(__file__).resolve().parents[1] / "results"
    store = tmp_path / "store"
    (store / "ECG200" / "thesis-seed0").mkdir(parents=True)   # a real entry of today's profile (lee2023)
    for f in ("entry.json", "DONE"):
        shutil.copy(root / "ECG200" / "thesis-seed0" / f, store / "ECG200" / "thesis-seed0" / f)

    def variant(name, evaluator, **config):
        shutil.copytree(store / "ECG200", store / name)
        rec = json.loads((store / name / "thesis-seed0" / "entry.json").read_text())
        rec["dataset"], rec["evaluator"] = name, evaluator
        rec["config"].update(dataset=name, evaluator=evaluator, **config)
        (store / name / "thesis-seed0" / "entry.json").write_text(json.dumps(rec))

    variant("BME", "lee2023", stage2_epochs=10)                    # a reduced budget
    variant("ArrowHead", "own", **R.EARLIER_DEFAULTS)               # the thesis text's model, own evaluator

    assert main(["results", "--results", str(store), "--json"]) == 0
    rows = {r["dataset"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert (rows["ECG200"]["full_budget"], rows["ECG200"]["earlier_defaults"]) == (True, False)
    assert rows["ECG200"]["budget"] == "thesis (2000+1000 ep)"
    assert (rows["ArrowHead"]["full_budget"], rows["ArrowHead"]["earlier_defaults"]) == (True, True)
    assert "earlier defaults" in rows["ArrowHead"]["budget"]
    assert rows["BME"]["full_budget"] is False and "stage2_epochs=10" in rows["BME"]["budget"]
    assert main(["results", "--results", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = {line.split()[0]: line.split()[3] for line in lines[1:-1]}
    assert cells == {"ArrowHead": "full/earlier", "BME": "reduced", "ECG200": "full"}
    assert lines[-1].endswith("3 entries in " + str(store) + "; 1 dataset at the thesis's full budget under "
                              "today's defaults (fp32), scored with the thesis's evaluators (lee2023)")


def test_a_training_variant_is_full_budget_against_the_thesis_with_its_change():
    from tvq.ablations import variant_config

    v = variant_config(load_config("thesis"), "hop2").to_dict()
    assert R.budget_of(v)[0]
    full, label = R.budget_of({**v, "n_runs": 1})
    assert not full and label.endswith("n_runs=1)")


def test_protocol_repeats_collects_only_the_protocols_own_sampler_settings():
    entry = {"profile": "thesis", "seed": 0, "n_samples": 1024,
             "config": {"t_max": 0.99, "steps_uncond": 128, "rescale": 0.1, "rescale_mode": "global"},
             "uncond_runs": [{"fid": 10.0}, {"fid": 11.0}]}
    row = {"conditional": False, "t_max": 0.99, "steps": 128, "rescale": 0.1, "rescale_mode": "global", "fid": 12.0}
    study = {"profile": "thesis", "seed": 0, "n_samples": 1024,
             "rows": [row, {**row, "steps": 32, "fid": 50.0}, {**row, "conditional": True, "fid": 60.0},
                      {**row, "rescale_mode": "per_sample", "fid": 70.0}, {**row, "thesis_alpha": True, "fid": 80.0}]}
    other_seed = {**study, "seed": 1}
    assert R.protocol_repeats(entry, study, other_seed, None) == [10.0, 11.0, 12.0]


def test_compare_word_needs_a_difference_beyond_twice_the_noise():
    assert R.compare_word(10.0, 11.0, noise=0.6) == "within the repeat spread of"
    assert R.compare_word(10.0, 12.0, noise=0.6) == "lower than"
    assert R.compare_word(14.0, 12.0, noise=0.6) == "higher than"
    assert R.compare_word(float("nan"), 12.0, noise=0.6) == "not comparable with"


def test_hardware_label_names_the_gpu_or_the_cpu_with_its_threads():
    from tvq.results import hardware_label

    assert hardware_label({"device": "cuda", "gpu": "NVIDIA H200", "cpu": "Xeon", "threads": 16}) == "NVIDIA H200"
    assert hardware_label({"device": "cpu", "gpu": None, "cpu": "AMD EPYC", "threads": 1}) == "AMD EPYC, 1 thread(s)"
    assert hardware_label({}) == "?, ? thread(s)"
    # with every phase's threads recorded, those rather than the last invocation's
    cpu = {"device": "cpu", "cpu": "AMD EPYC", "threads": 2}
    assert hardware_label(cpu, {"train_stage1": [1], "scoring": [1]}) == "AMD EPYC, 1 thread(s)"
    assert hardware_label(cpu, {"train_stage1": [1], "scoring": [1, 2]}) == "AMD EPYC, 1/2 threads by phase"
    assert hardware_label(cpu, {"train_stage1": None, "scoring": [1]}) == "AMD EPYC, 2 thread(s)"   # partly unknown


def test_thread_counts_is_the_union_over_the_phases_asked_for_or_none_where_one_is_unknown():
    from tvq.results import thread_counts

    tp = {"train_stage1": [2], "train_stage2": [1, 2], "scoring": [1], "evaluator": None}
    assert thread_counts(tp, ["train_stage1", "train_stage2", "scoring"]) == [1, 2]
    assert thread_counts(tp, ["train_stage1"]) == [2]
    assert thread_counts(tp) is None                      # the evaluator's count is unknown
    assert thread_counts(tp, ["train_stage1", "sampling_cond"]) is None   # a phase not recorded at all
    assert thread_counts(None) is None and thread_counts({}) is None


def test_markdown_table_without_rows_is_still_one_table():
    # A {table} directive around a glued table fails the strict build unless the glue holds
    # exactly one table: a chapter whose runs are missing must still produce one.
    from tvq.figures import markdown_table

    md = markdown_table([], ["run", "FID"], ["l", "r"], empty="not run yet")
    lines = md.splitlines()
    assert lines == ["| run | FID |", "| :--- | ---: |", "| not run yet | – |"]
    assert markdown_table([], ["a"]) == "| a |\n| :--- |"
    import pytest
    with pytest.raises(ValueError):
        markdown_table([["x", "y"]], ["a"])
