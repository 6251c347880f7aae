"""The evaluation protocol (section 3.6): evaluate_samples, the FID floor, the CLI subcommands."""
from __future__ import annotations

import argparse
import json
import types

import numpy as np
import pytest

from tvq import evaluate as ev
from tvq.config import load_config
from tvq.errors import EvaluationError, TvqError
from tvq.evaluate import add_subcommands, evaluate_samples, fid_floor, get_evaluator, validate_labels, \
    validate_samples


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))


def toy_dataset(n_train: int = 30, n_test: int = 30, length: int = 32, seed: int = 0):
    """Three classes of noisy sines of different frequency, shaped like tvq.data's result."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)

    def draw(n):
        y = np.arange(n) % 3
        x = np.sin(2 * np.pi * (y[:, None] + 1) * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        return (x + 0.1 * rng.standard_normal((n, length))).astype(np.float32), y.astype(np.int64)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return types.SimpleNamespace(name="Toy", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                                 n_classes=3, length=length, source="synthetic")


@pytest.fixture
def cfg():
    return load_config("smoke", {"fcn_epochs": 3, "fcn_batch_size": 16, "device": "cpu"})


@pytest.fixture
def ds():
    return toy_dataset()


def test_evaluate_samples_reports_every_metric(ds, cfg):
    rng = np.random.default_rng(1)
    samples = ds.x_test + 0.05 * rng.standard_normal(ds.x_test.shape).astype(np.float32)
    out = evaluate_samples(ds, samples, cfg=cfg)
    for key in ("fid", "is_mean", "is_std", "trtr"):
        assert isinstance(out[key], float) and np.isfinite(out[key])
    assert out["tstr"] is None and out["n_samples"] == 30 and out["dataset"] == "Toy"
    assert out["fid"] >= 0 and 1.0 <= out["is_mean"] <= 3.0 + 1e-9
    assert 0.0 <= out["trtr"] <= 1.0
    assert {"near_copy_fraction", "copy_threshold", "gen_nn_q50", "test_nn_q50"} <= set(out["memorisation"])
    json.dumps(out)  # JSON-ready as it is


def test_samples_in_n_1_l_layout_score_the_same(ds, cfg):
    a = evaluate_samples(ds, ds.x_test, cfg=cfg)
    b = evaluate_samples(ds, ds.x_test[:, None, :], cfg=cfg)
    assert a["fid"] == b["fid"] and a["is_mean"] == b["is_mean"]


def test_real_test_series_score_better_than_noise(ds, cfg):
    model, trtr = get_evaluator(ds, cfg)
    real = evaluate_samples(ds, ds.x_test, cfg=cfg, model=model, trtr=trtr)
    noise = np.random.default_rng(2).standard_normal(ds.x_test.shape).astype(np.float32) * 3
    fake = evaluate_samples(ds, noise, cfg=cfg, model=model, trtr=trtr)
    assert real["fid"] == pytest.approx(0.0, abs=1e-8)  # the test set against itself
    assert fake["fid"] > 1.0


def test_tstr_with_real_training_data_reproduces_trtr(ds, cfg):
    out = evaluate_samples(ds, ds.x_train, ds.y_train, cfg=cfg)
    assert out["tstr"] == out["trtr"]
    assert "tstr" in out["seconds"]


def test_memorisation_flags_training_copies(ds, cfg):
    out = evaluate_samples(ds, ds.x_train, cfg=cfg)
    assert out["memorisation"]["near_copy_fraction"] == 1.0
    fresh = toy_dataset(seed=5).x_train
    out = evaluate_samples(ds, fresh, cfg=cfg)
    assert out["memorisation"]["near_copy_fraction"] < 0.5


def test_evaluator_is_trained_once_then_read_from_the_cache(ds, cfg, monkeypatch):
    m1, trtr1 = get_evaluator(ds, cfg)
    from tvq import fcn

    monkeypatch.setattr(fcn, "fit_and_score", lambda *a, **k: pytest.fail("retrained on a cache hit"))
    m2, trtr2 = get_evaluator(ds, cfg)
    assert trtr1 == trtr2
    assert all(np.array_equal(v.numpy(), m2.state_dict()[k].numpy()) for k, v in m1.state_dict().items())


def test_fid_floor_is_finite_and_non_negative(ds, cfg):
    floor = fid_floor(ds, cfg)
    assert np.isfinite(floor) and floor >= 0
    model, _ = get_evaluator(ds, cfg)
    assert fid_floor(ds, cfg, model=model) == floor


# -- bad inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda d: d.x_test[:, :-1], "length"),
    (lambda d: np.where(np.arange(d.length) == 3, np.nan, d.x_test), "NaN"),
    (lambda d: np.where(np.arange(d.length) == 3, np.inf, d.x_test), "infinite"),
    (lambda d: d.x_test[:1], "at least 2"),
    (lambda d: d.x_test[:5], "at least 10"),
    (lambda d: d.x_test[None], "shape"),
    (lambda d: d.x_test.astype(str), "numeric"),
])
def test_bad_samples_are_evaluation_errors(ds, cfg, make, match):
    with pytest.raises(EvaluationError, match=match):
        evaluate_samples(ds, make(ds), cfg=cfg)


@pytest.mark.parametrize("labels, match", [
    (lambda n: np.zeros(n - 1, np.int64), "shape"),
    (lambda n: np.full(n, 3), "0..2"),
    (lambda n: np.full(n, -1), "0..2"),
    (lambda n: np.full(n, 0.5), "whole"),
    (lambda n: np.zeros((n, 2), np.int64), "shape"),
])
def test_bad_labels_are_evaluation_errors(ds, cfg, labels, match):
    with pytest.raises(EvaluationError, match=match):
        evaluate_samples(ds, ds.x_test, labels(ds.x_test.shape[0]), cfg=cfg)


def test_validators_accept_what_they_should():
    x = validate_samples(np.zeros((4, 1, 7), np.float64), 7)
    assert x.shape == (4, 7) and x.dtype == np.float32
    y = validate_labels(np.array([[0.0], [2.0], [1.0]]), 3, 3)
    assert y.dtype == np.int64 and list(y) == [0, 2, 1]


def test_evaluation_errors_are_tvq_errors():
    assert issubclass(EvaluationError, TvqError)  # so the CLI prints one line and exits 2


# -- command line ---------------------------------------------------------------------------
def _parser():
    p = argparse.ArgumentParser(prog="tvq")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    return p


@pytest.fixture
def cli(ds, monkeypatch):
    monkeypatch.setattr(ev, "resolve_dataset", lambda name, cfg=None: ds if isinstance(name, str) else name)

    def run(*argv):
        args = _parser().parse_args(list(argv))
        return args.func(args)

    return run


SMALL = ["-f", "smoke", "-p", "fcn_epochs=2", "-p", "fcn_batch_size=16", "-p", "device=cpu"]


def test_cli_fcn_train_prints_trtr_and_the_floor(cli, capsys):
    assert cli("fcn", "train", "Toy", *SMALL) == 0
    out = capsys.readouterr().out
    assert "trtr" in out and "fid_floor" in out and "trained" in out
    assert cli("fcn", "train", "Toy", *SMALL) == 0
    assert "hit" in capsys.readouterr().out


def test_cli_evaluate_writes_json(cli, ds, tmp_path, capsys):
    np.save(tmp_path / "s.npy", ds.x_train)
    np.save(tmp_path / "y.npy", ds.y_train)
    out_path = tmp_path / "out" / "metrics.json"
    # -o into a folder that does not exist is refused before any scoring (issue: hardening)
    from tvq.errors import OutputError

    with pytest.raises(OutputError, match="does not exist"):
        cli("evaluate", "Toy", str(tmp_path / "s.npy"), *SMALL, "-o", str(out_path))
    out_path.parent.mkdir()
    rc = cli("evaluate", "Toy", str(tmp_path / "s.npy"), "--labels", str(tmp_path / "y.npy"), *SMALL,
             "-o", str(out_path))
    assert rc == 0
    printed = capsys.readouterr().out
    for key in ("fid", "is_mean", "is_std", "trtr", "tstr", "near_copy_fraction"):
        assert key in printed
    saved = json.loads(out_path.read_text())
    assert saved["tstr"] == saved["trtr"] and saved["n_samples"] == ds.x_train.shape[0]


def test_cli_bad_files_are_evaluation_errors(cli, ds, tmp_path):
    with pytest.raises(EvaluationError, match="not found"):
        cli("evaluate", "Toy", str(tmp_path / "missing.npy"), *SMALL)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(EvaluationError, match="readable"):
        cli("evaluate", "Toy", str(tmp_path / "junk.npy"), *SMALL)
    np.save(tmp_path / "short.npy", ds.x_test[:, :10])
    with pytest.raises(EvaluationError, match="length"):
        cli("evaluate", "Toy", str(tmp_path / "short.npy"), *SMALL)


def test_cli_unknown_parameter_is_a_config_error(cli, tmp_path):
    from tvq.errors import ConfigError

    with pytest.raises(ConfigError):
        cli("fcn", "train", "Toy", "-p", "fcn_epoch=2")


# -- a real UCR data set, when the data layer is there ----------------------------------------
def test_ecg200_end_to_end_with_a_short_recipe():
    data = pytest.importorskip("tvq.data")
    try:
        real = data.load_ucr("ECG200")
    except TvqError as exc:  # no offline source on this machine
        pytest.skip(f"ECG200 not available: {exc}")
    cfg = load_config("smoke", {"fcn_epochs": 2, "device": "cpu"})
    model, trtr = get_evaluator(real, cfg)
    assert model.n_classes == real.n_classes == 2 and 0 <= trtr <= 1
    out = evaluate_samples(real, real.x_test, real.y_test, cfg=cfg, model=model, trtr=trtr)
    assert out["fid"] == pytest.approx(0.0, abs=1e-6)
    assert out["memorisation"]["test_nn_q50"] == pytest.approx(out["memorisation"]["gen_nn_q50"])


def test_test_features_are_computed_once_per_evaluator(ds, cfg, monkeypatch):
    model, trtr = get_evaluator(ds, cfg)
    first = evaluate_samples(ds, ds.x_train, cfg=cfg, model=model, trtr=trtr)
    calls = []
    real_predict = ev.predict
    monkeypatch.setattr(ev, "predict", lambda m, x, **k: calls.append(len(x)) or real_predict(m, x, **k))
    second = evaluate_samples(ds, ds.x_train, cfg=cfg, model=model, trtr=trtr)
    assert calls == [len(ds.x_train)]  # the samples only; the test set's features were kept
    assert second["fid"] == first["fid"]
    other = toy_dataset(seed=9)  # another test set must not reuse them
    assert not np.array_equal(ev.test_features(model, other.x_test), ev.test_features(model, ds.x_test))


def test_scored_count_follows_the_thesis_codes_loop_over_the_test_set():
    from tvq.evaluate import scored_count

    assert scored_count(1024, 150) == 1024
    assert scored_count(1024, 150, "thesis_code") == 256      # GunPoint: one batch of 256
    assert scored_count(1024, 257, "thesis_code") == 512
    assert scored_count(1024, 6164, "thesis_code") == 1024    # Wafer: every drawn series
    assert scored_count(100, 150, "thesis_code") == 100


def test_score_series_thesis_code_scores_the_first_series_only():
    import numpy as np

    import torch

    from tvq.evaluate import evaluator_scores
    from tvq.fcn import FCN

    class DS:
        x_test = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)
        y_train = np.array([0, 1] * 10)
        n_classes = 2

    torch.manual_seed(0)
    model = FCN(2).eval()
    x = np.random.default_rng(1).normal(size=(300, 32)).astype(np.float32)
    full = evaluator_scores(model, DS, x)
    first = evaluator_scores(model, DS, x, score_series="thesis_code")
    assert (full["n_scored"], first["n_scored"]) == (300, 256)
    assert first["fid"] == pytest.approx(evaluator_scores(model, DS, x[:256])["fid"])
    assert first["fid"] != pytest.approx(full["fid"])
