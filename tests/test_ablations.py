"""Ablation studies: sampling grids on a trained model, training variants as separate profiles."""
from __future__ import annotations

import json

import pytest

import tvq.model
from tvq.ablations import RESCALE_GRID, TMAX_GRID, load_study, study_path, sampling_study, variant_config
from tvq.cli import main
from tvq.config import load_config
from tvq.errors import ConfigError

from helpers import retrain_to_other_weights


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TVQ_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def tiny(**kw):
    return load_config("smoke", dict(
        dataset="Chinatown", stage1_epochs=1, stage2_epochs=1, hidden_dim=8, codebook_size=16, n_resblocks=1,
        unet_lf_channels=[8, 16], unet_hf_channels=[8, 16], time_embed_dim=16, class_embed_dim=16,
        attn_heads=2, attn_head_dim=4, n_samples=20, sample_batch_size=20, fcn_epochs=1, **kw))


def test_the_tmax_grid_contains_table_3():
    table3 = {(1.0, 32), (0.999, 32), (0.99, 32), (0.98, 32), (0.95, 32), (0.99, 128), (0.99, 512)}
    assert table3 <= {(t, s) for t, s, a in TMAX_GRID if not a}
    assert (1.0, 32, True) in TMAX_GRID  # the thesis code's alpha(1) < 0
    assert {m for _, _, m, g in RESCALE_GRID if g > 0} == {"global", "per_sample", "lin"}


def test_tmax_study_scores_every_cell_and_resumes(env, monkeypatch):
    cfg = tiny()
    monkeypatch.setattr("tvq.ablations.TMAX_GRID", ((1.0, 2, False), (0.99, 2, False), (1.0, 3, True)))
    calls = {"n": 0}
    real = tvq.model.TimeVQVDM.sample

    def dies_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        sampling_study(cfg, "tmax", log=lambda m: None)
    path = study_path(cfg, "tmax")
    partial = json.loads(path.read_text())
    assert not partial["complete"] and [r["name"] for r in partial["rows"]] == ["tmax1.0-steps2", "tmax0.99-steps2"]
    assert [r["thesis_alpha"] for r in partial["rows"]] == [False, False]
    assert load_study(path) is None  # an unfinished study is not a result

    record = sampling_study(cfg, "tmax", log=lambda m: None)
    assert calls["n"] == 4  # only the missing cell was sampled again
    assert record["complete"] and [r["steps"] for r in record["rows"]] == [2, 2, 3]
    assert [r["fid"] for r in record["rows"][:2]] == [r["fid"] for r in partial["rows"]]
    for row in record["rows"]:
        assert row["finite"] and row["fid"] >= 0 and row["is_mean"] >= 1.0
        assert (path.with_suffix("") / f"samples_{row['name']}.npy").is_file()


def test_rescale_study_covers_conditional_cells(env, monkeypatch):
    cfg = tiny()
    monkeypatch.setattr("tvq.ablations.RESCALE_GRID", (("uncond-none", False, "global", 0.0),
                                                        ("cond-lin", True, "lin", 0.1)))
    record = sampling_study(cfg.replace(steps_uncond=2, steps_cond=2), "rescale", log=lambda m: None)
    assert [r["conditional"] for r in record["rows"]] == [False, True]
    assert (study_path(cfg, "rescale").with_suffix("") / "labels_cond-lin.npy").is_file()


def test_training_variants_get_their_own_profile():
    cfg = tiny()
    v = variant_config(cfg, "tokens-d64-K32")
    assert (v.profile, v.codebook_dim, v.codebook_size) == ("smoke+tokens-d64-K32", 64, 32)
    assert variant_config(cfg, "no-lf-conditioning").lf_conditioning is False
    with pytest.raises(ConfigError, match="unknown training variant"):
        variant_config(cfg, "bigger")


def test_cli_rejects_a_missing_variant_with_one_line(env, capsys):
    assert main(["ablate", "train", "Chinatown", "-f", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tvq: error:") and "needs a variant" in err and err.count("\n") == 1


def test_steps_study_covers_every_sampler_and_repeats_the_baseline(env, monkeypatch):
    from tvq.ablations import steps_summary
    from tvq.sampling import SAMPLERS

    monkeypatch.setattr("tvq.ablations.STEPS_GRID", (1, 2))
    monkeypatch.setattr("tvq.ablations.STEPS_REPEATS", 3)
    cfg = tiny(sample_noise="variance")
    seen = []
    real = tvq.model.TimeVQVDM.sample

    def spy(self, *args, **kwargs):
        seen.append((kwargs["sampler"], kwargs["steps"], kwargs["noise_scale"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", spy)
    record = sampling_study(cfg, "steps", log=lambda m: None)
    names = [r["name"] for r in record["rows"]]
    assert names[:2 * len(SAMPLERS)] == [f"{s}-steps{k}" for s in SAMPLERS for k in (1, 2)]
    assert names[2 * len(SAMPLERS):] == ["ancestral-steps2-repeat1", "ancestral-steps2-repeat2"]
    # the ancestral cells use the profile's noise; the ODE samplers have none to scale
    assert {n for s, _, n in seen if s == "ancestral"} == {"variance"}
    assert {n for s, _, n in seen if s != "ancestral"} == {"std"}
    fids = [r["fid"] for r in record["rows"] if r["name"].startswith("ancestral-steps2")]
    assert len(fids) == 3 and len(set(fids)) == 3  # the repeats draw different noise
    summary = steps_summary(record)
    assert summary["baseline_n"] == 3 and summary["baseline_steps"] == 2
    assert set(summary["fewest"]) == set(SAMPLERS)


def test_a_study_resumes_only_cells_drawn_with_the_same_settings(env, monkeypatch):
    monkeypatch.setattr("tvq.ablations.STEPS_GRID", (1,))
    monkeypatch.setattr("tvq.ablations.STEPS_REPEATS", 1)
    drawn = []
    real = tvq.model.TimeVQVDM.sample

    def spy(self, *args, **kwargs):
        drawn.append((kwargs["sampler"], kwargs["rescale"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", spy)
    cfg = tiny()
    first = sampling_study(cfg, "steps", log=lambda m: None)
    n = len(first["rows"])
    assert len(drawn) == n
    sampling_study(cfg, "steps", log=lambda m: None)          # the same settings: nothing is redrawn
    assert len(drawn) == n
    other = sampling_study(cfg.replace(rescale=0.0), "steps", log=lambda m: None)
    assert len(drawn) == 2 * n and {g for _, g in drawn[n:]} == {0.0}   # another γ: every cell again
    assert {r["rescale"] for r in other["rows"]} == {0.0}
    sampling_study(cfg.replace(rescale=0.0, sample_bf16=True), "steps", log=lambda m: None)
    assert len(drawn) == 3 * n                                 # bf16 never resumes an fp32 study
    # a labelled study sits beside the profile's own and leaves it as it is
    before = study_path(cfg, "steps").read_text()
    sampling_study(cfg, "steps", label="gamma-default", log=lambda m: None)
    assert study_path(cfg, "steps", label="gamma-default").is_file() and study_path(cfg, "steps").read_text() == before
    with pytest.raises(ConfigError, match="label"):
        study_path(cfg, "steps", label="../x")


def test_steps_summary_finds_the_fewest_steps_within_the_baseline_spread():
    from tvq.ablations import steps_summary

    rows = [{"sampler": "ancestral", "steps": 128, "fid": f, "repeat": r} for r, f in enumerate((3.0, 3.2, 2.8))]
    rows += [{"sampler": "ancestral", "steps": k, "fid": f, "repeat": 0} for k, f in ((8, 9.0), (32, 3.3))]
    rows += [{"sampler": "ddim", "steps": k, "fid": f, "repeat": 0} for k, f in ((8, 3.1), (32, 2.0))]
    rows += [{"sampler": "dpmpp_2m", "steps": k, "fid": f, "repeat": 0} for k, f in ((8, 12.0), (32, 11.0))]
    s = steps_summary({"rows": rows})
    assert s["baseline_mean"] == pytest.approx(3.0) and s["baseline_sd"] == pytest.approx(0.2)
    assert s["fewest"] == {"ancestral": 32, "ddim": 8, "dpmpp_2m": None}


def test_a_study_does_not_mix_cells_of_a_retrained_model(env, monkeypatch):
    import shutil

    from tvq.reproduce import run_dir

    cfg = tiny()
    monkeypatch.setattr("tvq.ablations.TMAX_GRID", ((1.0, 2, False), (0.99, 2, False)))
    first = sampling_study(cfg, "tmax", log=lambda m: None)
    shutil.rmtree(run_dir(cfg).parent)        # the cache is lost; the retrained weights differ
    retrain_to_other_weights(monkeypatch)
    real_sample, calls = tvq.model.TimeVQVDM.sample, []
    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", lambda self, *a, **k: calls.append(1) or real_sample(self, *a, **k))
    again = sampling_study(cfg, "tmax", log=lambda m: None)
    assert again["key"]["weights"] != first["key"]["weights"]
    assert len(calls) == 2 and again["complete"]    # both cells drawn anew, from the new model
