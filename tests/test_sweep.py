"""The archive sweep (tvq.sweep) on Ray, with a stub in place of the reproduction protocol.

Ray runs on 2 CPUs with 2 *logical* GPUs, so the GPU bookkeeping (one device per task,
``CUDA_VISIBLE_DEVICES`` set by Ray) is checked on a machine without any GPU. The stub writes a
store entry the way :func:`tvq.reproduce.reproduce` does (``entry.json``, then ``DONE``) and leaves
one file per call, so the tests can see what ran, where, when and in which process.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pytest

from tvq.cli import main
from tvq.config import load_config
from tvq.errors import DatasetNotFound
from tvq.reproduce import entry_dir, is_done
from tvq.sweep import (INSTALL_HINT, Outcome, SweepError, SweepReport, estimated_cost, format_report, plan,
                       run_sweep, select_datasets)

FOUR = ["ECG200", "CBF", "Coffee", "GunPoint"]


@dataclasses.dataclass
class Stub:
    """Stands in for ``reproduce(cfg, *, root, progress, log)``; behaviour chosen per dataset."""
    calls: str                       # folder for one JSON file per call
    sleep_s: float = 0.0
    fail_once: tuple[str, ...] = ()  # raise on the first attempt only
    crash_once: tuple[str, ...] = ()  # kill the worker process on the first attempt only
    always_fail: tuple[str, ...] = ()
    permanent: tuple[str, ...] = ()   # raise an error no retry can change
    # Wait (at most rendezvous_s) until this many calls have started before sleeping, so that
    # "two slots ran together" is observed however slowly a loaded machine starts workers;
    # if the sweep ran one job at a time the wait runs out and the overlap assertion fails.
    rendezvous: int = 0
    rendezvous_s: float = 120.0

    def __call__(self, cfg, *, root, progress, log):
        calls = Path(self.calls)
        start = time.time()
        first = not (calls / f"tried-{cfg.dataset}").exists()
        (calls / f"tried-{cfg.dataset}").touch()
        call = {"dataset": cfg.dataset, "pid": os.getpid(), "device": cfg.device, "threads": cfg.threads,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start}
        log(f"stub protocol for {cfg.dataset}")
        if cfg.dataset in self.crash_once and first:
            os._exit(1)
        if cfg.dataset in self.permanent:
            raise DatasetNotFound(f"planned permanent error for {cfg.dataset}")
        if cfg.dataset in self.always_fail or (cfg.dataset in self.fail_once and first):
            raise RuntimeError(f"planned failure for {cfg.dataset}")
        (calls / f"started-{cfg.dataset}-{os.getpid()}").touch()
        deadline = start + self.rendezvous_s
        while len(list(calls.glob("started-*"))) < self.rendezvous and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(self.sleep_s)
        call["end"] = time.time()
        (calls / f"call-{cfg.dataset}-{os.getpid()}.json").write_text(json.dumps(call))
        # the store layout of tvq.reproduce, written by hand so the stub needs no torch
        entry = Path(root) / cfg.dataset / f"{cfg.profile}-seed{cfg.seed}"
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "entry.json").write_text(json.dumps({"dataset": cfg.dataset, "wall_s": self.sleep_s}))
        (entry / "DONE").write_text("{}")
        return {"dataset": cfg.dataset, "wall_s": self.sleep_s}


def read_calls(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("call-*.json"))]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # The stub lives in this test module, which Ray's workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def cfg():
    return load_config("smoke", {"device": "auto"})   # auto: take a GPU where Ray offers one


@pytest.fixture
def calls(tmp_path) -> Path:
    folder = tmp_path / "calls"
    folder.mkdir()
    return folder


# -- choosing and planning (no Ray) ---------------------------------------------------------------
def test_select_datasets_canonical_unique_and_checked():
    assert select_datasets("ecg200, CBF,ECG200,") == ["ECG200", "CBF"]
    assert select_datasets(["Coffee"]) == ["Coffee"]
    assert len(select_datasets(all_datasets=True)) == 128
    offline = select_datasets(offline=True)
    assert "ECG200" in offline and len(offline) < 128
    with pytest.raises(DatasetNotFound, match="ECG2000"):
        select_datasets("ECG2000")
    with pytest.raises(SweepError):
        select_datasets(None)
    with pytest.raises(SweepError):
        select_datasets("ECG200", all_datasets=True)
    with pytest.raises(SweepError):
        select_datasets(" , ")


def test_plan_orders_largest_first_and_skips_only_done(cfg, tmp_path):
    done = entry_dir(cfg.replace(dataset="CBF"), tmp_path)
    done.mkdir(parents=True)
    (done / "entry.json").write_text("{}")
    (done / "DONE").write_text("{}")
    half = entry_dir(cfg.replace(dataset="Coffee"), tmp_path)
    half.mkdir(parents=True)
    (half / "entry.json").write_text("{}")   # written, but no DONE marker: not an entry yet
    p = plan(cfg, FOUR, tmp_path)
    assert p.done == ["CBF"]
    assert sorted(p.todo) == ["Coffee", "ECG200", "GunPoint"]
    costs = [estimated_cost(n, cfg) for n in p.todo]
    assert costs == sorted(costs, reverse=True)
    assert plan(cfg, FOUR, tmp_path, order="given").todo == ["ECG200", "Coffee", "GunPoint"]
    with pytest.raises(SweepError):
        plan(cfg, FOUR, tmp_path, order="random")


def test_estimated_cost_grows_with_size_and_budget(cfg):
    assert estimated_cost("ECG5000", cfg) > estimated_cost("ECG200", cfg)  # 500 vs 100 series, 140 vs 96
    assert estimated_cost("ECG200", cfg.replace(stage1_epochs=100)) > estimated_cost("ECG200", cfg)


def test_cli_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)   # makes `import ray` fail as if not installed
    rc = main(["sweep", "-f", "smoke", "--datasets", "ECG200", "--results", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert INSTALL_HINT in err and len(err.strip().splitlines()) == 1


def test_cli_dry_run_and_nothing_to_do_need_no_ray(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", "-f", "smoke", "--datasets", "CBF,ECG200", "--results", str(tmp_path), "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["todo"]) == ["CBF", "ECG200"] and out["done"] == []
    for name in ("CBF", "ECG200"):
        entry = entry_dir(cfg.replace(dataset=name), tmp_path)
        entry.mkdir(parents=True)
        (entry / "entry.json").write_text("{}")
        (entry / "DONE").write_text("{}")
    assert main(["sweep", "-f", "smoke", "--datasets", "CBF,ECG200", "--results", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_cli_exit_status_is_nonzero_when_a_dataset_failed(tmp_path, monkeypatch):
    import tvq.sweep as sweep

    def fake_run_sweep(cfg, names, **kw):
        return SweepReport(cfg.profile, cfg.seed, str(tmp_path),
                           [Outcome("ECG200", "done", 1, 1.0), Outcome("CBF", "failed", 3, error="boom")], 4, 2.0, {})

    monkeypatch.setattr(sweep, "import_ray", lambda: None)
    monkeypatch.setattr(sweep, "connect", lambda *a, **k: False)
    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    assert main(["sweep", "-f", "smoke", "--datasets", "ECG200,CBF", "--results", str(tmp_path), "--no-progress"]) == 1
    monkeypatch.setattr(sweep, "run_sweep", lambda cfg, names, **kw: SweepReport(
        cfg.profile, cfg.seed, str(tmp_path), [Outcome("ECG200", "done", 1, 1.0)], 1, 1.0, {}))
    assert main(["sweep", "-f", "smoke", "--datasets", "ECG200", "--results", str(tmp_path), "--no-progress"]) == 0


def test_bad_options_are_typed_errors(cfg, tmp_path):
    with pytest.raises(SweepError, match="retries"):
        run_sweep(cfg, ["ECG200"], root=tmp_path, retries=-1)
    with pytest.raises(SweepError, match="max-concurrent"):
        run_sweep(cfg, ["ECG200"], root=tmp_path, max_concurrent=0)
    with pytest.raises(SweepError, match="cpus-per-task"):
        run_sweep(cfg, ["ECG200"], root=tmp_path, cpus_per_task=0)
    for share in (0, 1.5, -0.25):
        with pytest.raises(SweepError, match="gpus-per-task"):
            run_sweep(cfg, ["ECG200"], root=tmp_path, gpus_per_task=share)


def test_progress_bar_counts_running_done_and_failed(capsys):
    from tvq.sweep import _Bar

    bar = _Bar(3, active=True)
    bar.update(running=2, outcomes={"A": Outcome("A", "done"), "B": Outcome("B", "failed")})
    bar.advance()
    bar.write("[A] done")
    bar.close()
    err = capsys.readouterr().err
    assert "running 2, done 1, failed 1" in err and "1/3" in err and "[A] done" in err
    silent = _Bar(3, active=False)
    silent.update(running=1, outcomes={})
    silent.close()
    assert capsys.readouterr().err == ""


# -- the scheduler on Ray ----------------------------------------------------------------------------
def test_every_job_finishes_on_its_own_gpu_and_a_rerun_submits_nothing(ray_cluster, cfg, tmp_path, calls):
    stub = Stub(str(calls), sleep_s=1.0, rendezvous=2)
    report = run_sweep(cfg, FOUR, root=tmp_path, protocol=stub, progress=False, log=lambda m: None)
    assert [o.status for o in report.outcomes] == ["done"] * 4
    assert [o.dataset for o in report.outcomes] == FOUR          # the report keeps the user's order
    assert report.submitted == 4 and not report.failed
    assert all(is_done(entry_dir(cfg.replace(dataset=n), tmp_path)) for n in FOUR)

    seen = read_calls(calls)
    assert sorted(c["dataset"] for c in seen) == sorted(FOUR)
    for c in seen:   # one logical GPU per job, and the job's config points at it
        assert c["device"] == "cuda"
        assert c["cuda_visible_devices"] in ("0", "1")
    for o in report.outcomes:
        assert len(o.gpu_ids) == 1 and o.device.startswith("GPU ")
    assert len({c["pid"] for c in seen}) == 4                    # a fresh worker per dataset
    # jobs that ran at the same time held different GPUs, and never more than two ran at once
    overlaps = 0
    for i, a in enumerate(seen):
        together = [b for b in seen if b["start"] < a["end"] and a["start"] < b["end"]]
        assert len(together) <= 2
        for b in seen[i + 1:]:
            if b["start"] < a["end"] and a["start"] < b["end"]:
                overlaps += 1
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"]
    assert overlaps >= 1                                         # the two slots were used together
    assert len(list(tmp_path.glob("sweep-smoke-seed0-*.json"))) == 1

    messages: list[str] = []
    again = run_sweep(cfg, FOUR, root=tmp_path, protocol=stub, progress=False, log=messages.append)
    assert again.submitted == 0
    assert [o.status for o in again.outcomes] == ["skipped"] * 4
    assert len(read_calls(calls)) == 4                           # nothing ran a second time
    assert any("nothing to do" in m for m in messages)


def test_a_share_of_a_gpu_per_job_runs_several_datasets_on_each_gpu(ray_cluster, cfg, tmp_path, calls):
    # Two logical GPUs, half a GPU and half a CPU per job: all four run at once, two on each GPU.
    stub = Stub(str(calls), sleep_s=1.0, rendezvous=4)
    report = run_sweep(cfg, FOUR, root=tmp_path, protocol=stub, gpus_per_task=0.5, cpus_per_task=0.5,
                       progress=False, log=lambda m: None)
    assert [o.status for o in report.outcomes] == ["done"] * 4 and report.submitted == 4
    seen = read_calls(calls)
    assert all(c["device"] == "cuda" for c in seen)
    assert sorted(c["cuda_visible_devices"] for c in seen) == ["0", "0", "1", "1"]
    latest_start, earliest_end = max(c["start"] for c in seen), min(c["end"] for c in seen)
    assert latest_start < earliest_end                            # the four ran together
    assert all(len(o.gpu_ids) == 1 for o in report.outcomes)


def test_failures_are_retried_bounded_and_never_stop_the_others(ray_cluster, cfg, tmp_path, calls):
    stub = Stub(str(calls), fail_once=("ECG200",), crash_once=("CBF",), always_fail=("Coffee",),
                permanent=("GunPoint",))
    report = run_sweep(cfg, FOUR, root=tmp_path, protocol=stub, retries=1, progress=False,
                       log=lambda m: None)
    by = {o.dataset: o for o in report.outcomes}
    assert by["ECG200"].status == "done" and by["ECG200"].attempts == 2     # exception, then success
    assert by["CBF"].status == "done" and by["CBF"].attempts == 2           # worker crash, then success
    assert by["Coffee"].status == "failed" and by["Coffee"].attempts == 2   # 1 + retries, then given up
    assert "RuntimeError: planned failure for Coffee" in by["Coffee"].error
    assert by["GunPoint"].status == "failed" and by["GunPoint"].attempts == 1   # not worth retrying
    assert "DatasetNotFound" in by["GunPoint"].error
    assert report.submitted == 7
    assert {o.dataset for o in report.failed} == {"Coffee", "GunPoint"}
    assert not is_done(entry_dir(cfg.replace(dataset="Coffee"), tmp_path))
    log_text = Path(by["Coffee"].log).read_text()
    assert log_text.count("attempt") >= 2 and "Traceback" in log_text and "planned failure" in log_text
    table = format_report(report)
    assert "2 done, 0 skipped, 2 failed" in table and "planned failure for Coffee" in table


def test_half_written_entry_is_redone_and_cpu_tasks_get_no_gpu(ray_cluster, cfg, tmp_path, calls):
    finished = entry_dir(cfg.replace(dataset="ECG200"), tmp_path)
    finished.mkdir(parents=True)
    (finished / "entry.json").write_text("{}")
    (finished / "DONE").write_text("{}")
    half = entry_dir(cfg.replace(dataset="CBF"), tmp_path)
    (half / "phases").mkdir(parents=True)
    (half / "entry.json").write_text("{}")                        # as if killed before DONE
    report = run_sweep(cfg, ["ECG200", "CBF"], root=tmp_path, protocol=Stub(str(calls)), use_gpu=False,
                       progress=False, log=lambda m: None)
    assert report.submitted == 1
    assert {o.dataset: o.status for o in report.outcomes} == {"ECG200": "skipped", "CBF": "done"}
    assert is_done(half)
    (call,) = read_calls(calls)
    assert call["dataset"] == "CBF"
    assert call["device"] == "cpu" and call["threads"] == 1
    assert call["cuda_visible_devices"] in (None, "")
    assert report.outcomes[1].device.startswith("CPU") and report.outcomes[1].gpu_ids == []
