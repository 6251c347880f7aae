"""The FCN evaluator (section 2.5.3, appendix D): network, training, disk cache."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tvq import fcn as fcn_mod
from tvq.errors import CheckpointError, EvaluationError
from tvq.fcn import FCN, Recipe, cache_key, cache_meta_path, count_parameters, cosine_lr, fit_and_score, load_fcn, \
    predict, train_fcn, train_or_load


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))


def toy_data(n: int = 48, length: int = 32, n_classes: int = 3, seed: int = 0):
    """Classes differ by the frequency of a noisy sine: easy for a convolutional net."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    t = np.linspace(0, 1, length)
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t[None] + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = x + 0.1 * rng.standard_normal((n, length))
    return x.astype(np.float32), y.astype(np.int64)


TINY = Recipe(epochs=2, batch_size=16, lr=1e-3, weight_decay=1e-5, seed=0)


# -- the network ------------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 5])
def test_parameter_count_matches_the_architecture(n_classes):
    # Conv(1→128, k8) BN Conv(128→256, k5) BN Conv(256→128, k3) BN, Linear(128→C).
    expected = (1 * 128 * 8 + 128) + (128 * 256 * 5 + 256) + (256 * 128 * 3 + 128)
    expected += 2 * (128 + 256 + 128)  # batch-norm scale and shift
    expected += 128 * n_classes + n_classes
    assert count_parameters(FCN(n_classes)) == expected


def test_parameter_count_is_the_thesis_265k():
    # Appendix D: "Trainable parameters: 265000" (two-class data sets such as ECG200).
    assert abs(count_parameters(FCN(2)) - 265_000) < 1_000


@pytest.mark.parametrize("length", [31, 96, 128])
def test_shapes_and_same_padding(length):
    model = FCN(4).eval()
    x = torch.randn(3, length)
    assert model(x).shape == (3, 4)
    assert model.features(x).shape == (3, 128)
    assert model.blocks(x.unsqueeze(1)).shape == (3, 128, length)  # "same" padding keeps the length
    torch.testing.assert_close(model(x), model(x.unsqueeze(1)))


def test_features_are_what_the_head_reads():
    model = FCN(3).eval()
    x = torch.randn(5, 40)
    torch.testing.assert_close(model(x), model.head(model.features(x)))


def test_predict_returns_features_and_softmax():
    model = FCN(3).eval()
    x = np.random.default_rng(0).standard_normal((7, 40)).astype(np.float32)
    f, p = predict(model, x, batch_size=3)
    assert f.shape == (7, 128) and p.shape == (7, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    with torch.no_grad():
        np.testing.assert_allclose(f, model.features(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


# -- the recipe -------------------------------------------------------------------------
def test_cosine_schedule_goes_from_lr0_to_zero():
    assert cosine_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 50, 100) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(1e-3, 25, 100) == pytest.approx(0.5e-3 * (1 + math.cos(math.pi / 4)))


def test_recipe_comes_from_the_config():
    from tvq.config import load_config

    cfg = load_config("thesis")
    r = Recipe.from_config(cfg)
    assert (r.epochs, r.batch_size, r.lr, r.weight_decay) == (1000, 256, 1e-3, 1e-5)


def test_training_learns_an_easy_task():
    # A short, hot schedule keeps this fast; the thesis recipe is the default elsewhere.
    x, y = toy_data(n=30)
    xt, yt = toy_data(n=60, seed=1)
    _, acc = fit_and_score(x, y, xt, yt, 3, Recipe(epochs=8, batch_size=15, lr=1e-2, weight_decay=1e-5, seed=0))
    assert acc > 0.9


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = toy_data(n=24)
    r = Recipe(epochs=2, batch_size=8, lr=1e-3, weight_decay=1e-5, seed=3)
    a, b = train_fcn(x, y, 3, r), train_fcn(x, y, 3, r)
    c = train_fcn(x, y, 3, Recipe(2, 8, 1e-3, 1e-5, seed=4))
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k])
    assert not torch.equal(a.head.weight, c.head.weight)


def test_training_leaves_the_callers_random_state_alone():
    x, y = toy_data(n=16)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_fcn(x, y, 3, Recipe(1, 8, 1e-3, 1e-5, 0))
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize("bad", ["nan", "label_high", "label_negative", "shape"])
def test_bad_training_data_is_an_evaluation_error(bad):
    x, y = toy_data(n=12)
    if bad == "nan":
        x[2, 3] = np.nan
    elif bad == "label_high":
        y[0] = 3
    elif bad == "label_negative":
        y[0] = -1
    else:
        y = y[:-1]
    with pytest.raises(EvaluationError):
        train_fcn(x, y, 3, TINY)


# -- the cache --------------------------------------------------------------------------
def _train_small(x, y, xt, yt, recipe=TINY, **kw):
    return train_or_load("Toy", x, y, xt, yt, 3, recipe, **kw)


def test_cache_hit_returns_the_same_model_without_retraining(monkeypatch):
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    m1, trtr1, meta1 = _train_small(x, y, xt, yt)
    assert meta1["cache_hit"] is False

    def no_training(*a, **k):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(fcn_mod, "fit_and_score", no_training)
    m2, trtr2, meta2 = _train_small(x, y, xt, yt)
    assert meta2["cache_hit"] is True and trtr2 == trtr1
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k])
    assert not m2.training


def test_other_data_or_recipe_is_a_cache_miss():
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    r = Recipe(2, 16, 1e-3, 1e-5, 0)
    k = cache_key(x, y, xt, yt, 3, r)
    x2 = x.copy()
    x2[0, 0] += 1e-3
    assert cache_key(x2, y, xt, yt, 3, r) != k
    assert cache_key(x, y, xt, yt, 3, Recipe(3, 16, 1e-3, 1e-5, 0)) != k
    assert cache_key(x, y, xt, yt, 3, Recipe(2, 16, 1e-3, 1e-5, 1)) != k
    assert cache_key(x, y, xt[:-1], yt[:-1], 3, r) != k
    _train_small(x, y, xt, yt, r)
    _, _, meta = _train_small(x2, y, xt, yt, r)
    assert meta["cache_hit"] is False


def test_cache_files_live_under_tvq_cache_dir(tmp_path):
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    m = cache_meta_path("Toy", meta["key"])
    w = Path(meta["weights_path"])
    assert m == Path(meta["meta_path"]) and m.parent == tmp_path / "cache" / "fcn"
    assert w.parent == m.parent and w.exists() and m.exists()
    saved = json.loads(m.read_text())
    assert saved["key"] == meta["key"] and saved["recipe"]["epochs"] == 2
    assert saved["weights_sha256"].startswith(w.name.split(".")[-2])  # named after its content
    assert not [p for p in w.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_retrain_replaces_the_entry_and_its_weights():
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    _, _, meta2 = _train_small(x, y, xt, yt, retrain=True)
    assert meta2["cache_hit"] is False
    # Same seed and data give the same bytes, hence the same file; either way one is left.
    assert len(list(Path(meta2["meta_path"]).parent.glob("*.pt"))) == 1


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "garbage_json", "missing_weights"])
def test_corrupted_cache_is_a_checkpoint_error(damage):
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    w, m = Path(meta["weights_path"]), Path(meta["meta_path"])
    if damage == "truncate":
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "flip_byte":
        raw = bytearray(w.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        w.write_bytes(bytes(raw))
    elif damage == "garbage_json":
        m.write_text("{not json")
    else:
        w.unlink()
    with pytest.raises(CheckpointError):
        _train_small(x, y, xt, yt)
    # retrain=True replaces the damaged entry
    _, _, meta2 = _train_small(x, y, xt, yt, retrain=True)
    assert meta2["cache_hit"] is False
    assert _train_small(x, y, xt, yt)[2]["cache_hit"] is True


def test_a_pickled_object_is_refused_even_with_a_matching_checksum():
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    w, m = Path(meta["weights_path"]), Path(meta["meta_path"])
    torch.save({"payload": {"not": "tensors"}, "obj": object.__new__(Recipe)}, w)
    saved = json.loads(m.read_text())
    saved["weights_sha256"] = fcn_mod.file_sha256(w)
    m.write_text(json.dumps(saved))
    with pytest.raises(CheckpointError):
        load_fcn(m, expected_key=meta["key"])


def test_mismatched_key_or_architecture_is_refused():
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    m = Path(meta["meta_path"])
    with pytest.raises(CheckpointError, match="other data"):
        load_fcn(m, expected_key="0" * 64)
    saved = json.loads(m.read_text())
    saved["n_classes"] = 5  # weights are for 3 classes
    m.write_text(json.dumps(saved))
    with pytest.raises(CheckpointError):
        load_fcn(m, expected_key=meta["key"])


def test_tstr_on_real_training_data_reproduces_trtr():
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=30, seed=1)
    r = Recipe(3, 16, 1e-3, 1e-5, 0)
    _, trtr, _ = train_or_load("Toy", x, y, xt, yt, 3, r)
    _, tstr = fit_and_score(x, y, xt, yt, 3, r)
    assert tstr == trtr


@pytest.mark.parametrize("weights_file", ["../elsewhere.pt", "/tmp/x.pt", None, "weights.bin"])
def test_metadata_cannot_point_outside_the_cache(weights_file):
    x, y = toy_data(n=24)
    xt, yt = toy_data(n=24, seed=1)
    _, _, meta = _train_small(x, y, xt, yt)
    m = Path(meta["meta_path"])
    saved = json.loads(m.read_text())
    saved["weights_file"] = weights_file
    m.write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="weights file"):
        load_fcn(m, expected_key=meta["key"])


def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path, monkeypatch):
    x, y = toy_data(n=24)
    r = Recipe(epochs=5, batch_size=8, lr=1e-3, weight_decay=1e-5, seed=3)
    whole = train_fcn(x, y, 3, r)
    ckpt = tmp_path / "tstr.pt"

    # Interrupt inside epoch 4 (3 steps per epoch): the last checkpoint is after epoch 3.
    calls = {"n": 0}
    real_lr = fcn_mod.cosine_lr

    def lr_then_crash(*args):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return real_lr(*args)

    monkeypatch.setattr(fcn_mod, "cosine_lr", lr_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_fcn(x, y, 3, r, checkpoint=ckpt, checkpoint_every_s=0.0)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 3
    monkeypatch.setattr(fcn_mod, "cosine_lr", real_lr)

    resumed = train_fcn(x, y, 3, r, checkpoint=ckpt, checkpoint_every_s=0.0)
    assert not ckpt.exists()  # removed once training ends
    assert resumed.resumed_seconds > 0
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_a_resumed_fit_records_every_thread_count_it_ran_with(tmp_path):
    """A fit resumed with another torch thread count says so (its wall time mixes both); one that
    resumes from a checkpoint that recorded no count says it does not know."""
    x, y = toy_data(n=24)
    r = Recipe(epochs=4, batch_size=8, lr=1e-3, weight_decay=1e-5, seed=3)
    assert train_fcn(x, y, 3, r).threads_used == [1]           # (the test suite runs on one thread)
    ckpt = tmp_path / "tstr.pt"
    train_fcn(x, y, 3, r, checkpoint=ckpt, stop_at_epoch=2)
    torch.set_num_threads(2)
    assert train_fcn(x, y, 3, r, checkpoint=ckpt).threads_used == [1, 2]
    torch.set_num_threads(1)
    train_fcn(x, y, 3, r, checkpoint=ckpt, stop_at_epoch=2)
    state = torch.load(ckpt, weights_only=False)
    del state["threads"]                                          # as written before the counts were kept
    torch.save(state, ckpt)
    assert train_fcn(x, y, 3, r, checkpoint=ckpt).threads_used is None


def test_a_checkpoint_of_other_data_is_ignored(tmp_path):
    x, y = toy_data(n=24)
    r = Recipe(epochs=2, batch_size=8, lr=1e-3, weight_decay=1e-5, seed=3)
    ckpt = tmp_path / "tstr.pt"
    other = train_fcn(x[::-1].copy(), y[::-1].copy(), 3, r)
    torch.save({"recipe": r.to_dict(), "data": "something else", "n_classes": 3, "epoch": 1, "step": 3,
                "model": other.state_dict()}, ckpt)
    fresh, resumed = train_fcn(x, y, 3, r), train_fcn(x, y, 3, r, checkpoint=ckpt)
    assert resumed.resumed_seconds == 0.0
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_a_planted_pickle_in_tstr_state_never_runs(tmp_path):
    """TSTR's fit state is read with weights_only=True: a payload is treated as an unreadable file."""
    import os

    import torch

    from tvq.fcn import _read_fit_state

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "tstr-cond.pt"
    torch.save({"epoch": Payload()}, path)
    assert _read_fit_state(path, {"epoch": 1}) is None
    assert not marker.exists()
