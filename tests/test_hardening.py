"""Output files, run-folder locks and progress lines (the behaviour behind the bad-input catalogue)."""
from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tvq.errors import OutputError, RunLocked
from tvq.io import atomic_path, check_output, save_npy, save_npys
from tvq.locks import run_lock

ROOT = Path(__file__).resolve().parent.parent


# -- output files ------------------------------------------------------------------------------


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_npy(tmp_path / "a.npy", np.zeros(3))
        os.umask(0o077)
        save_npy(tmp_path / "b.npy", np.zeros(3))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.npy").stat().st_mode) == 0o600


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-way")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_cleans_up_its_temporary(tmp_path):
    """SIGTERM while writing (the CLI turns it into an exception): no hidden .tmp stays behind."""
    script = (
        "import sys, time; from tvq.cli import main, _terminate_as_exception; from tvq.io import atomic_path\n"
        "_terminate_as_exception()\n"
        f"with atomic_path({str(tmp_path / 'x.npy')!r}) as tmp:\n"
        "    tmp.write_text('partial'); print('writing', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())   # the temporary exists while writing
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert list(tmp_path.iterdir()) == []


def test_a_pair_is_written_together_or_not_at_all(tmp_path):
    class Unsavable:
        pass

    with pytest.raises((AttributeError, pickle.PicklingError)):   # a local class cannot be pickled
        save_npys([tmp_path / "x.npy", tmp_path / "y.npy"], [np.zeros(3), np.array([Unsavable()], dtype=object)])
    assert list(tmp_path.iterdir()) == []
    save_npys([tmp_path / "x.npy", tmp_path / "y.npy"], [np.zeros(3), np.ones(2)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]


def test_special_files_are_never_replaced(tmp_path):
    """A named pipe stands in for /dev/null: refused before writing, left a pipe. (/dev/null itself
    only goes through the check, which writes nothing: a regression must not clobber it.)"""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        save_npy(fifo, np.zeros(2))
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    for dev in ("/dev/null", "/dev/full"):
        with pytest.raises(OutputError, match="not a regular file"):
            check_output(dev)


def test_check_output_refuses_before_any_work(tmp_path):
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    for bad, why in [(tmp_path / "f" / "x.npy", "not a folder"), (tmp_path / "no" / "x.npy", "does not exist"),
                     (tmp_path / "d", "is a directory"), ("/proc/x.npy", "cannot create")]:
        with pytest.raises(OutputError, match=why):
            check_output(bad)
    assert check_output(tmp_path / "ok.npy") == tmp_path / "ok.npy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]   # the probe left nothing


# -- run-folder lock ---------------------------------------------------------------------------


def _hold_lock(folder: Path) -> subprocess.Popen:
    script = f"from tvq.locks import run_lock\nimport time\nwith run_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    proc = _hold_lock(tmp_path)
    try:
        with pytest.raises(RunLocked, match=f"process {proc.pid}"):
            with run_lock(tmp_path):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, capsys):
    proc = _hold_lock(tmp_path)
    proc.kill()             # like kill -9: the lock file still names the dead process
    proc.wait()
    with run_lock(tmp_path):
        pass
    assert f"taking over the lock of process {proc.pid}" in capsys.readouterr().err


def test_two_trainings_into_one_folder(tmp_path):
    """The CLI end to end: the second `tvq train` exits 2 at once while the first one trains."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tvq", "train", "ECG200", "-f", "smoke", "-p", "stage1_epochs=400",
           "--out", str(tmp_path / "run"), "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / ".lock").exists() or (tmp_path / "run" / ".lock").stat().st_size == 0:
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.2)
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2
        assert "is in use" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.kill()
        first.wait()


# -- progress ----------------------------------------------------------------------------------


def test_progress_lines_go_to_a_log_file(tmp_path):
    """`tvq train ... 2>log`: not a terminal, so progress comes as named, self-contained lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "tvq", "train", "ECG200", "-f", "smoke", "-p", "stage1_epochs=6",
                               "--out", str(tmp_path / "run"), "--progress-every", "0.01"],
                              stdout=subprocess.PIPE, stderr=log, text=True, env=env, timeout=300)
    assert proc.returncode == 0
    lines = (tmp_path / "log").read_text().splitlines()
    stage1 = [ln for ln in lines if ln.startswith("tvq: stage1 epoch")]
    assert len(stage1) >= 2 and stage1[-1].startswith("tvq: stage1 epoch 6/6 (100%)")
    assert "loss total=" in stage1[-1] and "epochs/s" in stage1[-1]
    assert any(ln.startswith("tvq: stage2 epoch 2/2") for ln in lines)
    assert "final stage1 total loss" in proc.stdout


def test_quiet_silences_progress(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tvq", "train", "ECG200", "-f", "smoke", "--out", str(tmp_path / "run"),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_diverging_loss_stops_training_without_a_model(tmp_path):
    from tvq.config import load_config
    from tvq.errors import TrainingDiverged
    from tvq.train import train

    with pytest.raises(TrainingDiverged, match="not finite"):
        train(load_config("smoke", dataset="ECG200", stage1_lr=1e30), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_sample_threads_pin(tmp_path):
    from tvq.cli import main
    from tvq.config import load_config
    from tvq.train import train

    train(load_config("smoke", dataset="ECG200"), tmp_path / "run", progress=False)
    outs = []
    for i, threads in enumerate(("1", "1")):
        out = tmp_path / f"x{i}.npy"
        assert main(["sample", str(tmp_path / "run"), "-n", "6", "--threads", threads, "-o", str(out)]) == 0
        outs.append(np.load(out))
    assert np.array_equal(outs[0], outs[1])


def test_a_closed_pipe_ends_quietly():
    """`tvq results | head -1`: the reader leaves early; tvq stops with 141 and no traceback or error line."""
    proc = subprocess.Popen([sys.executable, "-m", "tvq", "results", "--results", str(ROOT / "results")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()            # before tvq has written anything (it is still importing torch)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""
