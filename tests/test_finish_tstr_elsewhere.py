"""scripts/finish_tstr_elsewhere.py: a fit interrupted, carried on by the script to the last epoch
and finished by train_fcn's own resume ends with the uninterrupted fit's weights (one CPU)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import tvq.fcn as fcn

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "finish_tstr_elsewhere.py"


class _Stop(Exception):
    pass


def _load_script():
    spec = importlib.util.spec_from_file_location("finish_tstr_elsewhere", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_then_resume_equals_uninterrupted_fit(tmp_path, monkeypatch):
    script = _load_script()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 30)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    recipe = fcn.Recipe(epochs=8, batch_size=16, lr=1e-3, weight_decay=1e-2, seed=0)
    reference = fcn.train_fcn(x, y, 3, recipe)

    # an interrupted fit: its checkpoint stands at epoch 3
    original = fcn._write_fit_state

    def stop_at_3(path, state):
        original(path, state)
        if state["epoch"] == 3:
            raise _Stop

    monkeypatch.setattr(fcn, "_write_fit_state", stop_at_3)
    with pytest.raises(_Stop):
        fcn.train_fcn(x, y, 3, recipe, checkpoint=tmp_path / "tstr-cond.pt", checkpoint_every_s=0.0)
    monkeypatch.setattr(fcn, "_write_fit_state", original)
    np.savez(tmp_path / "pending-cond.npz", x=x, labels=y)

    info = script.finish(tmp_path / "pending-cond.npz", tmp_path / "tstr-cond.pt", tmp_path / "out.pt", recipe, "cpu")
    assert (info["start_epoch"], info["end_epoch"]) == (3, recipe.epochs - 1)
    assert fcn._write_fit_state is original  # the wrapper is gone again

    finished = fcn.train_fcn(x, y, 3, recipe, checkpoint=tmp_path / "out.pt")
    for a, b in zip(reference.state_dict().values(), finished.state_dict().values()):
        assert torch.equal(a, b)
    assert not (tmp_path / "out.pt").exists()  # the resumed fit ended and removed its checkpoint


def test_script_refuses_a_checkpoint_of_other_data(tmp_path):
    script = _load_script()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 16)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    recipe = fcn.Recipe(epochs=4, batch_size=8, lr=1e-3, weight_decay=0.0, seed=0)
    fcn._write_fit_state(tmp_path / "tstr-cond.pt", {"recipe": recipe.to_dict(), "data": "other",
                                                     "n_classes": 2, "epoch": 1})
    np.savez(tmp_path / "pending-cond.npz", x=x, labels=y)
    with pytest.raises(SystemExit, match="does not match"):
        script.finish(tmp_path / "pending-cond.npz", tmp_path / "tstr-cond.pt", tmp_path / "out.pt", recipe, "cpu")


def test_stop_at_epoch_is_refused_without_a_checkpoint_or_past_it(tmp_path):
    from tvq.errors import CheckpointError

    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 16)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    recipe = fcn.Recipe(epochs=4, batch_size=8, lr=1e-3, weight_decay=0.0, seed=0)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="stop_at_epoch"):
            fcn.train_fcn(x, y, 2, recipe, checkpoint=tmp_path / "c.pt", stop_at_epoch=bad)
    with pytest.raises(ValueError, match="stop_at_epoch"):
        fcn.train_fcn(x, y, 2, recipe, stop_at_epoch=2)
    fcn.train_fcn(x, y, 2, recipe, checkpoint=tmp_path / "c.pt", stop_at_epoch=3)
    assert torch.load(tmp_path / "c.pt", weights_only=False)["epoch"] == 3  # kept, at the epoch asked for
    with pytest.raises(CheckpointError, match="at epoch 3"):
        fcn.train_fcn(x, y, 2, recipe, checkpoint=tmp_path / "c.pt", stop_at_epoch=2)
