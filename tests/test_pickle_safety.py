"""Nothing tvq reads back from disk can run code.

Each case plants a pickle whose unpickling would create a marker file, in one place tvq reads
(a run folder, the TSTR state, the evaluator caches, the results store, the data cache, the
finish script, the samples given to ``tvq evaluate``), calls the reader, and asserts that the
reader refused the file (or ignored it) and that the marker was never created.
"""
from __future__ import annotations

import builtins
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tvq.errors import TvqError

ROOT = Path(__file__).resolve().parent.parent


class _Payload:
    """Unpickling this opens (creates) ``marker``: proof that the payload ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _torch_payload(path: Path, marker: Path, **tensors) -> Path:
    torch.save({"format": "tvq-checkpoint-1", "model": {"w": torch.zeros(1)}, "evil": _Payload(marker), **tensors}, path)
    return path


def _npy_payload(path: Path, marker: Path) -> Path:
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    return path


def _npz_payload(path: Path, marker: Path, **arrays) -> Path:
    np.savez(path, evil=np.array([_Payload(marker)], dtype=object), **arrays)
    return path


def _run_folder_model(tmp: Path, marker: Path):
    from tvq.train import load_model

    _torch_payload(tmp / "model.pt", marker)
    load_model(tmp, device="cpu")


def _run_folder_checkpoint(tmp: Path, marker: Path):
    from tvq.train import load_checkpoint

    _torch_payload(tmp / "checkpoint.pt", marker)
    load_checkpoint(tmp / "checkpoint.pt", None)


def _tstr_state(tmp: Path, marker: Path):
    from tvq.fcn import _read_fit_state

    _torch_payload(tmp / "tstr-0.pt", marker)
    assert _read_fit_state(tmp / "tstr-0.pt", {"any": "key"}) is None  # unreadable: fit again


def _fcn_weights(tmp: Path, marker: Path):
    """The own-evaluator cache and the thesis's evaluators (tvq.lee2023) both read through this."""
    from tvq.fcn import read_state_dict

    read_state_dict(_torch_payload(tmp / "ECG200.ckpt", marker))


def _store_entry(tmp: Path) -> Path:
    entry = tmp / "ECG200" / "thesis-seed0"
    entry.mkdir(parents=True)
    (entry / "entry.json").write_text(json.dumps({"dataset": "ECG200"}))
    (entry / "DONE").write_text("")
    return entry


def _results_store_npy(tmp: Path, marker: Path):
    from tvq.results import load_entry

    _npy_payload(_store_entry(tmp) / "samples_uncond.npy", marker)
    load_entry("ECG200", root=tmp)


def _results_store_npz(tmp: Path, marker: Path):
    from tvq.results import load_entry

    _npz_payload(_store_entry(tmp) / "parts.npz", marker)
    load_entry("ECG200", root=tmp)


def _cached_draw(tmp: Path, marker: Path):
    from tvq.reproduce import _load_draw

    _npz_payload(tmp / "draw.npz", marker, key=np.array("k"))
    assert _load_draw(tmp / "draw.npz", {"k": 1}) is None  # unreadable: draw again


def _data_cache(tmp: Path, marker: Path):
    from tvq.data.sources import _read_npz

    _read_npz(_npz_payload(tmp / "ECG200.npz", marker))


def _evaluate_samples_file(tmp: Path, marker: Path):
    from tvq.evaluate import _load_npy

    _load_npy(str(_npy_payload(tmp / "samples.npy", marker)), "samples")


def _finish_script(tmp: Path, marker: Path, which: str):
    pending = tmp / "pending.npz"
    ckpt_in = tmp / "in.pt"
    if which == "pending":
        _npz_payload(pending, marker, x=np.zeros((4, 8), np.float32), labels=np.zeros(4, np.int64))
        torch.save({"n_classes": torch.tensor(2)}, ckpt_in)
    else:
        np.savez(pending, x=np.zeros((4, 8), np.float32), labels=np.zeros(4, np.int64))
        _torch_payload(ckpt_in, marker)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "finish_tstr_elsewhere.py"), str(pending),
                           str(ckpt_in), str(tmp / "out.pt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    raise TvqError("refused")  # the script failed: the same verdict as a TvqError in-process


CASES = {
    "run folder: model.pt": _run_folder_model,
    "run folder: checkpoint.pt": _run_folder_checkpoint,
    "TSTR fit state": _tstr_state,
    "evaluator weights (own cache, lee2023)": _fcn_weights,
    "results store: samples .npy": _results_store_npy,
    "results store: parts.npz": _results_store_npz,
    "reproduce: cached draw .npz": _cached_draw,
    "data cache .npz": _data_cache,
    "tvq evaluate: samples .npy": _evaluate_samples_file,
    "finish script: pending .npz": lambda t, m: _finish_script(t, m, "pending"),
    "finish script: fit state .pt": lambda t, m: _finish_script(t, m, "ckpt"),
}


@pytest.mark.parametrize("where", list(CASES))
def test_a_planted_pickle_never_runs(where, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    work = tmp_path / "work"
    work.mkdir()
    try:
        CASES[where](work, marker)
    except TvqError:
        pass  # refused with tvq's own one-line error: the expected outcome for most readers
    assert not marker.exists(), f"{where}: the pickled payload was executed"


def test_the_payload_is_live(tmp_path):
    """Guard against a test that cannot fail: unpickled without protection, the payload does run."""
    marker = tmp_path / "PAYLOAD_RAN"
    path = _npy_payload(tmp_path / "x.npy", marker)
    np.load(path, allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    torch.load(_torch_payload(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()
