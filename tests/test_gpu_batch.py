"""scripts/gpu_batch.py on the CPU: prepare a batch, run it under a time budget, unpack what it brought back."""
from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_batch  # noqa: E402
from gpu_batch import BatchError  # noqa: E402

from tvq.errors import TvqError  # noqa: E402

TWO = ["Chinatown", "ItalyPowerDemand"]   # the two smallest of the archive by N x L


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A smoke batch of two datasets, run on the CPU two at a time, as the GPU machine would."""
    tmp = tmp_path_factory.mktemp("gpu")
    folder, out = tmp / ".gpu", tmp / "out"
    plan = gpu_batch.prepare(gpu_batch.pick(TWO[::-1], remaining=False, count=None, results=tmp / "none",
                                            profile="smoke"), folder, params="smoke", max_mib=48)
    summary = gpu_batch.run(folder, out, budget_s=900, jobs=2, min_left_s=0, device="cpu", threads=1,
                            max_mib=15.5, log=lambda m: None)
    return plan, summary, folder, out


def test_prepare_orders_smallest_first_and_carries_the_raw_files(batch):
    plan, _, folder, _ = batch
    assert plan["datasets"] == TWO and plan["profile"] == "smoke"
    for name in TWO:
        assert sorted(p.name for p in (folder / "ucr" / name).iterdir()) == [f"{name}_TEST.tsv", f"{name}_TRAIN.tsv"]
    assert not (folder / "evaluators").exists()          # the smoke profile scores with its own FCN


def test_run_brings_back_every_finished_entry_and_a_summary(batch):
    _, summary, _, out = batch
    assert sorted(p.name for p in out.iterdir()) == ["entries.tar.gz", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["packed"] == summary["packed"]
    assert summary["packed"] == TWO, summary
    assert all(summary["datasets"][n]["status"] == "done" for n in TWO)
    assert summary["datasets_per_gpu_hour"] > 0 and summary["jobs"] == 2
    with tarfile.open(out / "entries.tar.gz") as tar:
        names = tar.getnames()
    for name in TWO:
        assert f"{name}/smoke-seed0/DONE" in names and f"{name}/smoke-seed0/entry.json" in names


def test_unpack_writes_entries_once_and_never_over_a_finished_one(batch, tmp_path):
    _, _, _, out = batch
    store = tmp_path / "results"
    written = gpu_batch.unpack(out / "entries.tar.gz", store, log=lambda m: None)
    assert written == [f"{n}/smoke-seed0" for n in TWO]
    assert all((store / w / "DONE").is_file() for w in written)
    said = []
    assert gpu_batch.unpack(out / "entries.tar.gz", store, log=said.append) == []
    assert all("left as it is" in m for m in said) and len(said) == 2


def test_unpack_refuses_what_is_not_a_store_entry(tmp_path):
    def archive(files: dict[str, bytes]) -> Path:
        path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    with pytest.raises(BatchError, match="not a file of a store entry"):
        gpu_batch.unpack(archive({"../evil/x/DONE": b"{}"}), tmp_path / "r")
    with pytest.raises(BatchError, match="not a finished entry"):
        gpu_batch.unpack(archive({"ECG200/smoke-seed0/entry.json": b"{}"}), tmp_path / "r")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(BatchError, match="not a readable"):
        gpu_batch.unpack(tmp_path / "junk.tar.gz", tmp_path / "r")
    assert not (tmp_path / "r").exists()                  # nothing was written by a refused archive


def test_the_deadline_stops_a_run_and_leaves_it_out(batch, tmp_path):
    _, _, folder, _ = batch
    small = tmp_path / ".gpu"
    gpu_batch.prepare(["Chinatown"], small, params="smoke", max_mib=48)
    summary = gpu_batch.run(small, tmp_path / "out", budget_s=2, jobs=1, min_left_s=0, device="cpu", threads=1,
                            max_mib=15.5, log=lambda m: None)
    assert summary["datasets"]["Chinatown"]["status"] == "stopped at the deadline"
    assert summary["packed"] == []
    with tarfile.open(tmp_path / "out" / "entries.tar.gz") as tar:
        assert tar.getnames() == []


def test_a_batch_with_overrides_brings_back_the_entries_they_name(tmp_path):
    """`run -p sample_bf16=true` (the bf16 verification on a GPU) writes `smoke-seed0-bf16-sampling`:
    the batch packs that entry, not the fp32 folder it never wrote, and records the overrides."""
    small = tmp_path / ".gpu"
    gpu_batch.prepare(["Chinatown"], small, params="smoke", max_mib=48)
    summary = gpu_batch.run(small, tmp_path / "out", budget_s=900, jobs=1, min_left_s=0, device="cpu", threads=1,
                            max_mib=15.5, extra=["-p", "sample_bf16=true"], log=lambda m: None)
    assert summary["datasets"]["Chinatown"]["status"] == "done" and summary["packed"] == ["Chinatown"]
    assert summary["overrides"] == {"sample_bf16": "true"}
    with tarfile.open(tmp_path / "out" / "entries.tar.gz") as tar:
        assert "Chinatown/smoke-seed0-bf16-sampling/DONE" in tar.getnames()
    store = tmp_path / "results"
    assert gpu_batch.unpack(tmp_path / "out" / "entries.tar.gz", store, log=lambda m: None) == [
        "Chinatown/smoke-seed0-bf16-sampling"]
    # an override tvq would refuse stops the batch before any run starts
    started = []
    with pytest.raises(TvqError, match="no_such_setting"):
        gpu_batch.run(small, tmp_path / "out2", budget_s=900, jobs=1, min_left_s=0, device="cpu", threads=1,
                      max_mib=15.5, extra=["-p", "no_such_setting=1"], log=started.append)
    assert started == [] and not (tmp_path / "out2").exists()


def test_bad_requests_are_one_line_errors(tmp_path, capsys):
    assert gpu_batch.main(["run", "--dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no plan.json" in capsys.readouterr().err
    assert gpu_batch.main(["prepare", "--datasets", "NoSuchSet", "--dir", str(tmp_path / "g"), "-f", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_batch: ") and "Traceback" not in err
    with pytest.raises(BatchError, match="more than --max-mib"):
        gpu_batch.prepare(["Chinatown"], tmp_path / "g2", params="smoke", max_mib=0.001)
    assert not (tmp_path / "g2").exists()
