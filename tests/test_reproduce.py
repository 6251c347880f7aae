"""The per-dataset protocol and the results store."""
from __future__ import annotations

import json
import shutil

import pytest

import tvq.model
from tvq.config import load_config
from tvq.reproduce import DONE, SUMMARY_KEYS, entry_dir, load_results, reproduce, run_dir

from helpers import retrain_to_other_weights


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TVQ_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def tiny():
    return load_config("smoke", dict(
        dataset="ECG200", stage1_epochs=1, stage2_epochs=1, hidden_dim=8, codebook_size=16, n_resblocks=1,
        unet_lf_channels=[8, 16], unet_hf_channels=[8, 16], time_embed_dim=16, class_embed_dim=16,
        attn_heads=2, attn_head_dim=4, steps_uncond=2, steps_cond=2, n_samples=20, n_runs=2,
        sample_batch_size=20, fcn_epochs=1))


def test_reproduce_writes_a_complete_entry_and_is_deterministic(env):
    cfg = tiny()
    record = reproduce(cfg, log=lambda m: None)
    entry = entry_dir(cfg)
    assert (entry / DONE).is_file()
    rows = load_results()
    assert len(rows) == 1 and set(SUMMARY_KEYS) <= set(rows[0])
    assert rows[0]["stage1_epochs"] == 1 and rows[0]["dataset"] == "ECG200"
    for key in ("fid_uncond_mean", "is_uncond_mean", "fid_cond", "is_cond", "tstr", "trtr"):
        assert isinstance(rows[0][key], float)
    assert (entry / "samples_uncond.npy").is_file() and (entry / "samples_cond.npy").is_file()
    # every phase ran in this one invocation, on the suite's one thread
    assert record["threads_phases"] == {k: [1] for k in ("train_stage1", "train_stage2", "evaluator",
                                                          "sampling_uncond", "sampling_cond", "scoring")}

    # From scratch again (the cached evaluator is kept): the same seed gives the same metrics.
    shutil.rmtree(entry)
    shutil.rmtree(run_dir(cfg).parent)  # every checkpoint of this dataset
    again = reproduce(cfg, log=lambda m: None)
    for key in SUMMARY_KEYS:
        if key != "wall_s":
            assert again[key] == record[key], key


def test_an_interrupted_protocol_resumes_without_redoing_finished_phases(env, monkeypatch):
    cfg = tiny()
    real_sample, calls = tvq.model.TimeVQVDM.sample, {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second unconditional run dies
            raise KeyboardInterrupt
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        reproduce(cfg, log=lambda m: None)
    entry = entry_dir(cfg)
    assert not (entry / DONE).exists()
    assert load_results() == []  # a half-written entry is not an entry
    first = (entry / "phases" / "uncond_run0.json").read_text()

    calls["n"] = 10
    reproduce(cfg, log=lambda m: None)
    # only the second unconditional run, the conditional run and the 16 series of the band figure
    assert calls["n"] == 13
    assert (entry / "phases" / "uncond_run0.json").read_text() == first
    assert len(load_results()) == 1


def test_an_interruption_while_scoring_keeps_the_conditional_draw(env, monkeypatch):
    """TSTR resumes only for the same training data, so a resume scores the saved draw, not a new one."""
    import numpy as np

    import tvq.evaluate

    cfg = tiny()
    real_sample, real_evaluate = tvq.model.TimeVQVDM.sample, tvq.evaluate.evaluate_samples
    calls = {"sample": 0, "cond_scored": 0}

    def counted_sample(self, *args, **kwargs):
        calls["sample"] += 1
        return real_sample(self, *args, **kwargs)

    def dies_on_first_conditional(ds, x, y, **kwargs):
        if y is not None and calls["cond_scored"] == 0:
            calls["cond_scored"] += 1
            raise KeyboardInterrupt  # e.g. the session ends during TSTR
        return real_evaluate(ds, x, y, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", counted_sample)
    monkeypatch.setattr(tvq.evaluate, "evaluate_samples", dies_on_first_conditional)
    with pytest.raises(KeyboardInterrupt):
        reproduce(cfg, log=lambda m: None)
    pending = list(run_dir(cfg).parent.glob("*/pending-cond.npz"))
    assert len(pending) == 1
    with np.load(pending[0]) as f:
        drawn_x, drawn_y = f["x"], f["labels"]
    assert drawn_x.shape == (cfg.n_samples, 96) and drawn_y.shape == (cfg.n_samples,)

    calls["sample"] = 0
    reproduce(cfg, log=lambda m: None)
    assert calls["sample"] == 1  # the band figure's 16 series only: the conditional set was not drawn again
    entry = entry_dir(cfg)
    np.testing.assert_array_equal(np.load(entry / "samples_cond.npy"), drawn_x[:256].astype(np.float16))
    np.testing.assert_array_equal(np.load(entry / "labels_cond.npy"), drawn_y[:256])
    assert not pending[0].exists()  # removed once the phase is stored
    assert load_results(full=True)[0]["threads_phases"]["sampling_cond"] == [1]

    # A draw made under another configuration is not taken for this one.
    from tvq.reproduce import _load_draw, _save_draw
    import torch
    path = env / "draw.npz"
    _save_draw(path, {"guidance": 3.0}, torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), 1.0, [1])
    assert _load_draw(path, {"guidance": 3.0}) is not None
    assert _load_draw(path, {"guidance": 2.0}) is None
    assert _load_draw(path, {"guidance": 3.0})[3] == [1]
    # a draw saved before thread counts were kept still resumes; its threads are unknown
    with open(path, "wb") as fh:
        np.savez(fh, x=np.zeros((2, 4), np.float32), labels=np.zeros(2, np.int64), sample_s=np.float64(1.0),
                 key=np.array(json.dumps({"guidance": 3.0}, sort_keys=True)))
    assert _load_draw(path, {"guidance": 3.0})[3] is None


def test_cli_results_json(env):
    import subprocess
    import sys

    cfg = tiny()
    reproduce(cfg, log=lambda m: None)
    out = subprocess.run([sys.executable, "-m", "tvq", "results", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["profile"] == "smoke"
    missing = subprocess.run([sys.executable, "-m", "tvq", "results", "--results", str(env / "nothing")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no results store" in missing.stderr


def test_entry_carries_figure_data(env):
    import numpy as np

    cfg = tiny()
    record = reproduce(cfg, log=lambda m: None)
    entry = entry_dir(cfg)
    parts = np.load(entry / "parts.npz")
    for key in ("real_x", "real_x_lf", "real_x_hf", "real_xhat_lf", "real_xhat_hf", "gen_x", "gen_lf", "gen_hf"):
        assert parts[key].shape == (16, 96), key
    # the bands add up to the series they came from (the split is exact, Eq. 39-41)
    np.testing.assert_allclose(parts["real_x_lf"] + parts["real_x_hf"], parts["real_x"], atol=1e-4)
    np.testing.assert_allclose(parts["gen_lf"] + parts["gen_hf"], parts["gen_x"], atol=1e-5)
    history = json.loads((entry / "history.json").read_text())
    assert history["stage1/total"]["epoch"] == [1] and len(history["stage1/total"]["value"]) == 1
    assert set(record["reconstruction_mse"]) == {"train", "test"}
    assert all(v > 0 for v in record["reconstruction_mse"].values())


def test_an_entry_names_its_evaluator_keeps_its_series_and_rescores_to_the_same_numbers(env):
    import numpy as np

    from tvq.reproduce import stored_count
    from tvq.rescore import rescore_entry

    cfg = tiny()
    record = reproduce(cfg, log=lambda m: None)
    entry = entry_dir(cfg)
    assert record["evaluator"] == "own" and load_results()[0]["evaluator"] == "own"
    assert sum(record["class_split_uncond"]) == pytest.approx(1.0)
    assert record["train_split"] == pytest.approx([0.31, 0.69])  # ECG200's 31 / 69 training series
    assert len(record["per_class_accuracy_cond"]) == 2
    # every one of the 20 series is kept (float16), so the entry can be scored again without its model
    assert np.load(entry / "samples_uncond.npy").shape == (20, 96)
    assert np.load(entry / "labels_cond.npy").shape == (20,)
    assert stored_count(1024, 1024) == 1024 and stored_count(1024, 2709) == 387 and stored_count(1024, 50_000) == 256

    # Re-scoring with the evaluator that scored the protocol gives its numbers back (up to float16).
    again = rescore_entry(entry, "own")
    assert again["n_uncond"] == 20 and again["trtr"] == record["trtr"]
    assert again["fid_uncond"] == pytest.approx(record["uncond_runs"][0]["fid"], rel=1e-2)
    assert again["fid_cond"] == pytest.approx(record["fid_cond"], rel=1e-2)
    assert again["class_split_uncond"] == record["class_split_uncond"]
    stored = json.loads((entry / "entry.json").read_text())
    assert stored["rescored"]["own"]["fid_uncond"] == again["fid_uncond"]
    assert stored["fid_uncond_mean"] == record["fid_uncond_mean"]  # the protocol's own numbers stay
    assert load_results()[0]["rescored"]["own"]["n_uncond"] == 20


def test_rescore_with_the_thesis_evaluator(env, real_evaluators):
    from tvq.results import thesis_table
    from tvq.rescore import rescore_store

    cfg = tiny()
    reproduce(cfg, log=lambda m: None)
    (result,) = rescore_store("lee2023", log=lambda m: None)
    assert result["evaluator"] == "lee2023"
    assert round(100 * result["trtr"], 2) == thesis_table(5).set_index("dataset").loc["ECG200", "trtr_pct"]


def test_unconditional_draws_through_the_class_prior_carry_labels_in_the_training_split(env, monkeypatch):
    """uncond_labels=train_prior: every unconditional run draws with labels in the training
    proportions and the unconditional setting (w = 1, steps_uncond); the default draws with none."""
    import numpy as np

    from tvq.data import load_ucr
    from tvq.sampling import SamplerOptions

    seen = []
    real_sample = tvq.model.TimeVQVDM.sample

    def spy(self, n, **kwargs):
        opts = kwargs.get("options")
        seen.append((n, kwargs.get("class_labels"), None if opts is None else (opts.guidance, opts.steps)))
        return real_sample(self, n, **kwargs)

    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", spy)
    cfg = tiny().replace(uncond_labels="train_prior", n_runs=1, n_samples=40, sample_batch_size=40)
    reproduce(cfg, log=lambda m: None)
    uncond = seen[0]
    assert uncond[0] == 40 and uncond[1] is not None
    want = np.bincount(load_ucr("ECG200").y_train, minlength=2) / 100 * 40
    np.testing.assert_allclose(np.bincount(uncond[1].numpy(), minlength=2), want, atol=1)
    assert uncond[2] == (1.0, SamplerOptions.from_config(cfg, False).steps)
    # the default: the null class, as the thesis draws
    seen.clear()
    reproduce(tiny().replace(n_runs=1, n_samples=40, sample_batch_size=40, seed=1), log=lambda m: None)
    assert seen[0][1] is None


def test_phases_drawn_from_other_weights_are_not_reused(env, monkeypatch):
    cfg = tiny()
    first = reproduce(cfg, log=lambda m: None)
    entry = entry_dir(cfg)
    assert len(first["weights_sha256"]) == 16
    evaluator_phase = (entry / "phases" / "evaluator.json").read_text()
    # the same weights (the model still cached): a rerun reuses every phase and draws nothing
    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", lambda *a, **k: pytest.fail("redrew a stored phase"))
    assert reproduce(cfg, log=lambda m: None)["fid_uncond_mean"] == first["fid_uncond_mean"]
    monkeypatch.undo()
    monkeypatch.setenv("TVQ_CACHE_DIR", str(env / "cache"))
    monkeypatch.setenv("TVQ_RESULTS_DIR", str(env / "results"))

    shutil.rmtree(run_dir(cfg).parent)          # the cache is lost; the retrained weights differ
    retrain_to_other_weights(monkeypatch)
    real_sample, calls = tvq.model.TimeVQVDM.sample, []
    monkeypatch.setattr(tvq.model.TimeVQVDM, "sample", lambda self, *a, **k: calls.append(1) or real_sample(self, *a, **k))
    again = reproduce(cfg, log=lambda m: None)
    assert again["weights_sha256"] != first["weights_sha256"]
    assert len(calls) >= cfg.n_runs + 1      # every unconditional run and the conditional one drawn anew
    assert (entry / "phases" / "evaluator.json").read_text() == evaluator_phase  # no model in it: kept
