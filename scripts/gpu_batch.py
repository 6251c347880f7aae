"""Run as many full-budget protocol entries as fit in a few minutes of a lent GPU, and bring them back.

A GPU is lent to this project for about fifteen minutes at a time, on a machine that can reach
nothing outside itself and starts bare (its Python has torch, numpy, scipy, pandas, yaml, tqdm
and einops, but no UCR data wheels and no evaluators). So the work is split in three:

``prepare`` (here)
    picks the datasets (``--remaining``: the offline ones the store does not hold under the
    settled profile, smallest first by N x L), and copies what they need into one git-ignored
    folder that travels with the working tree: each dataset's two raw TSV files and, under
    ``evaluator: lee2023``, its evaluator checkpoint; ``plan.json`` lists them in order.
``run`` (there)
    starts ``tvq reproduce`` for the datasets in order, ``--jobs`` at a time on the one GPU (each
    its own process, so their CUDA memory never mixes; small datasets leave an H200 mostly idle,
    see the sweep's ``--gpus-per-task``). No dataset starts with less than ``--min-left-s`` of
    the budget left; at the deadline the ones still running are stopped and left out. The
    finished entries (those with ``DONE``) are packed into ``entries.tar.gz`` (at most
    ``--max-mib``, the largest left out first if need be) beside ``summary.json``: per
    dataset its status and wall time, and datasets per GPU-hour for the batch.
``unpack`` (here)
    checks every entry of the archive (``DONE`` and ``entry.json``, nothing outside
    ``<dataset>/<profile>-seed<seed>/``) and writes it into the store, never over a finished
    entry except one of the earlier defaults, which the settled profile's entry replaces.

    python scripts/gpu_batch.py prepare --remaining --count 12 --dir .gpu
    # on the GPU machine, with .gpu carried:
    python3 scripts/gpu_batch.py run --dir .gpu --budget-s 540 --jobs 4 --out "$OUT"
    python scripts/gpu_batch.py unpack /path/to/entries.tar.gz

``run -p KEY=VALUE`` passes a setting on to every run, and the batch packs the entries that
setting names: ``prepare --datasets Chinatown,MoteStrain,ItalyPowerDemand`` then ``run -p
precision=bf16`` brings back ``thesis-seed0-bf16`` entries, the bf16 verification of issue 24 on
cores that have bf16 units, beside the store's fp32 entries of the same datasets.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tvq.errors import TvqError  # noqa: E402


class BatchError(TvqError):
    """A batch that cannot be prepared, run or unpacked as asked."""


# -- prepare (here) --------------------------------------------------------------------------------
def settled_done(results: Path, profile: str) -> set[str]:
    """Datasets whose ``profile`` entry is finished at the full budget under today's defaults."""
    from tvq.results import entries

    df = entries(results, profile=profile)
    if df.empty:
        return set()
    df = df[df["full_budget"] & ~df["earlier_defaults"]]
    return set(df["dataset"])


def pick(names: list[str] | None, *, remaining: bool, count: int | None, results: Path, profile: str) -> list[str]:
    from tvq.data import all_datasets, availability, get_info

    if names:
        chosen = [get_info(n).name for n in names]
    elif remaining:
        done = settled_done(results, profile)
        chosen = [d.name for d in all_datasets() if availability(d.name) == "offline" and d.name not in done]
    else:
        raise BatchError("name the datasets (--datasets A,B) or pass --remaining")
    def size(name: str) -> int:
        info = get_info(name)
        return info.n_train * info.max_length

    chosen = sorted(dict.fromkeys(chosen), key=lambda n: (size(n), n))
    return chosen[:count] if count else chosen


def prepare(names: list[str], folder: Path, *, params: str, max_mib: float) -> dict:
    from tvq.config import load_config
    from tvq.data.sources import _local_files, _wheel_files, local_dir
    from tvq.lee2023 import evaluator_dir

    cfg = load_config(params, {})
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "ucr").mkdir(parents=True)
    need_evaluators = cfg.evaluator == "lee2023"
    source_dir = evaluator_dir() if need_evaluators else None
    if need_evaluators and source_dir is None:
        raise BatchError("evaluator: lee2023 needs the thesis's evaluators: set $TVQ_EVALUATOR_DIR")
    if need_evaluators:
        (folder / "evaluators").mkdir()
    root = local_dir(cfg.data_dir or None)
    for name in names:
        pair = _local_files(name, root) if root is not None else None
        if pair is None:
            wheel = _wheel_files(name)
            if wheel is None:
                raise BatchError(f"{name} is not available offline (no local folder or data wheel carries it)")
            pair = wheel[1:]
        (folder / "ucr" / name).mkdir()
        for f in pair:
            shutil.copyfile(f, folder / "ucr" / name / f.name)
        if need_evaluators:
            ckpt = Path(source_dir) / f"{name}.ckpt"
            if not ckpt.is_file():
                raise BatchError(f"$TVQ_EVALUATOR_DIR holds no {name}.ckpt")
            shutil.copyfile(ckpt, folder / "evaluators" / ckpt.name)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if size > max_mib * 2**20:
        shutil.rmtree(folder)
        raise BatchError(f"the batch's files take {size / 2**20:.1f} MiB, more than --max-mib {max_mib:g}: "
                         "pass fewer datasets (--count)")
    plan = {"datasets": names, "params": params, "profile": cfg.profile, "seed": cfg.seed,
            "evaluator": cfg.evaluator, "mib": round(size / 2**20, 2)}
    (folder / "plan.json").write_text(json.dumps(plan, indent=1))
    return plan


# -- run (there) -----------------------------------------------------------------------------------
def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop a protocol run and everything it started (it leads its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run(folder: Path, out: Path, *, budget_s: float, jobs: int, min_left_s: float, device: str,
        threads: int, max_mib: float, python: str = sys.executable, extra: list[str] | None = None,
        log=print) -> dict:
    from tvq.reproduce import entry_dir, is_done

    plan = json.loads((folder / "plan.json").read_text())
    # An entry's folder depends on the overrides passed on (``-p precision=bf16`` writes
    # ``thesis-seed0-bf16``): the packing looks where the runs write. Checked here, before any run
    # starts, so that a bad override costs no GPU time.
    overrides = _overrides(extra)
    cfg_of = _config_loader(plan, overrides)          # (load_config refuses a bad override here)
    out.mkdir(parents=True, exist_ok=True)
    results = folder / "results"
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TVQ_UCR_DIR=str((folder / "ucr").resolve()), PYTHONUNBUFFERED="1",
               TVQ_CACHE_DIR=str((folder / "cache").resolve()), PYTHONPATH=str(ROOT))
    if (folder / "evaluators").is_dir():
        env["TVQ_EVALUATOR_DIR"] = str((folder / "evaluators").resolve())
    t0 = time.monotonic()
    queue = list(plan["datasets"])
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    status: dict[str, dict] = {}
    while queue or running:
        left = budget_s - (time.monotonic() - t0)
        while queue and len(running) < jobs and left >= min_left_s:
            name = queue.pop(0)
            cmd = [python, "-m", "tvq", "reproduce", name, "-f", plan["params"], "--results", str(results),
                   "--no-progress", "-p", f"device={device}", "-p", f"threads={threads}", *(extra or [])]
            fh = open(logs / f"{name}.log", "w")
            running[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                              start_new_session=True), time.monotonic())
            log(f"[{time.monotonic() - t0:6.0f} s] start {name} ({len(running)} running)")
        if left < min_left_s and queue:
            for name in queue:
                status[name] = {"status": "not started", "why": f"under {min_left_s:g} s of the budget left"}
            queue = []
        for name, (proc, started) in list(running.items()):
            if proc.poll() is not None:
                status[name] = {"status": "done" if proc.returncode == 0 else "failed", "rc": proc.returncode,
                                "wall_s": round(time.monotonic() - started, 1)}
                log(f"[{time.monotonic() - t0:6.0f} s] {name}: {status[name]['status']} "
                    f"in {status[name]['wall_s']:.0f} s")
                del running[name]
        if running and time.monotonic() - t0 >= budget_s:
            for name, (proc, started) in running.items():
                _stop(proc)
                status[name] = {"status": "stopped at the deadline", "wall_s": round(time.monotonic() - started, 1)}
                log(f"[{time.monotonic() - t0:6.0f} s] {name}: stopped at the deadline")
            running = {}
        time.sleep(0.5)
    wall = time.monotonic() - t0

    # Pack the finished entries, smallest first, within the size limit.
    finished = []
    for name in plan["datasets"]:
        d = entry_dir(cfg_of(name), results)
        if status.get(name, {}).get("status") == "done" and is_done(d):
            finished.append((sum(p.stat().st_size for p in d.rglob("*") if p.is_file()), name, d))
    packed, left_out, total = [], [], 0
    for size, name, d in sorted(finished):
        if total + size > max_mib * 2**20:
            left_out.append(name)
            status[name]["packed"] = False
            continue
        total += size
        packed.append((name, d))
        status[name]["packed"] = True
    archive = out / "entries.tar.gz"
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for _name, d in packed:
            tar.add(d, arcname=d.relative_to(results).as_posix())
    tmp.replace(archive)
    for name in plan["datasets"]:
        src = logs / f"{name}.log"
        if src.is_file():
            status[name]["log_tail"] = src.read_text(errors="replace")[-2000:]
    device_name = _device_name(device)
    summary = {"device": device_name, "jobs": jobs, "threads": threads, "budget_s": budget_s,
               "wall_s": round(wall, 1), "datasets": status, "packed": [n for n, _ in packed],
               "left_out_for_size": left_out, "archive_mib": round(archive.stat().st_size / 2**20, 2),
               "datasets_per_gpu_hour": round(len(packed) / (wall / 3600), 2) if wall > 0 else None,
               "profile": plan["profile"], "seed": plan["seed"], "evaluator": plan["evaluator"],
               "overrides": overrides}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _overrides(extra: list[str] | None) -> dict:
    """The ``KEY=VALUE`` settings of ``extra`` (``["-p", "KEY=VALUE", ...]``, as passed on to tvq)."""
    from tvq.config import parse_overrides

    return parse_overrides([kv for flag, kv in zip((extra or [])[::2], (extra or [])[1::2]) if flag == "-p"])


def _config_loader(plan: dict, overrides: dict | None = None):
    from tvq.config import load_config

    base = load_config(plan["params"], dict(overrides or {}))
    return lambda name: base.replace(dataset=name)


def _device_name(device: str) -> str:
    try:
        import torch

        if device.startswith("cuda") and torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # the name is a label, never a reason to lose the batch
        pass
    return device


# -- unpack (here) ---------------------------------------------------------------------------------
def unpack(archive: Path, results: Path, log=print) -> list[str]:
    """Write the archive's entries into ``results``; return their ``<dataset>/<entry>`` names."""
    from tvq.config import load_config
    from tvq.results import earlier_defaults

    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BatchError(f"{archive} is not a readable .tar.gz ({exc.__class__.__name__})") from None
    with tar:
        members = tar.getmembers()
        entries: dict[str, dict[str, tarfile.TarInfo]] = {}
        for m in members:
            parts = Path(m.name).parts
            if m.name.startswith("/") or ".." in parts or len(parts) < 2 or not (m.isfile() or m.isdir()):
                raise BatchError(f"{archive}: {m.name!r} is not a file of a store entry")
            if m.isfile():
                entries.setdefault("/".join(parts[:2]), {})["/".join(parts[2:])] = m
        for key, files in entries.items():
            if "DONE" not in files or "entry.json" not in files:
                raise BatchError(f"{archive}: {key} is not a finished entry (no DONE or entry.json)")
        written = []
        for key, files in sorted(entries.items()):
            dest = results / key
            if (dest / "DONE").is_file():
                old = json.loads((dest / "entry.json").read_text())
                try:    # "earlier" is relative to the entry's own profile as it is defined today
                    reference = load_config(old.get("profile") or "thesis", {})
                except TvqError:
                    reference = None
                if reference is None or not earlier_defaults(old.get("config", {}), reference):
                    log(f"{key}: the store already holds a finished entry of today's defaults; left as it is")
                    continue
                log(f"{key}: replaces the entry of the earlier defaults")
            tmp = dest.with_name(dest.name + ".unpacking")
            if tmp.exists():
                shutil.rmtree(tmp)
            for rel, m in files.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
            old_dir = dest.with_name(dest.name + ".replaced")
            if dest.exists():              # moved aside, not deleted, until the new entry is in place
                dest.replace(old_dir)
            tmp.replace(dest)
            shutil.rmtree(old_dir, ignore_errors=True)
            written.append(key)
            log(f"{key}: written")
    return written


# -- the command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="pick datasets and copy what they need into --dir (here)")
    p.add_argument("--datasets", default=None, help="comma-separated names")
    p.add_argument("--remaining", action="store_true", help="the offline datasets not yet in the store, smallest first")
    p.add_argument("--count", type=int, default=None, help="at most this many")
    p.add_argument("-f", "--params", default="thesis")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--dir", default=".gpu")
    p.add_argument("--max-mib", type=float, default=48.0, help="size limit of the folder (it travels)")
    r = sub.add_parser("run", help="run the prepared batch within a time budget (on the GPU machine)")
    r.add_argument("--dir", default=".gpu")
    r.add_argument("--out", required=True, help="where entries.tar.gz and summary.json go ($OUT there)")
    r.add_argument("--budget-s", type=float, default=540.0)
    r.add_argument("--jobs", type=int, default=4, help="protocol runs at once on the GPU")
    r.add_argument("--min-left-s", type=float, default=300.0, help="start no dataset with less left than this")
    r.add_argument("--device", default="cuda")
    r.add_argument("--threads", type=int, default=3, help="CPU threads per run")
    r.add_argument("--max-mib", type=float, default=15.5, help="size limit of entries.tar.gz")
    r.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="passed on to every tvq reproduce")
    u = sub.add_parser("unpack", help="write a batch's entries into the results store (here)")
    u.add_argument("archive")
    u.add_argument("--results", default=str(ROOT / "results"))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "prepare":
            names = [n.strip() for n in args.datasets.split(",") if n.strip()] if args.datasets else None
            from tvq.config import load_config

            chosen = pick(names, remaining=args.remaining, count=args.count, results=Path(args.results),
                          profile=load_config(args.params, {}).profile)
            if not chosen:
                print("gpu_batch: nothing to prepare (every chosen dataset is in the store)", file=sys.stderr)
                return 1
            plan = prepare(chosen, Path(args.dir), params=args.params, max_mib=args.max_mib)
            print(json.dumps(plan))
        elif args.cmd == "run":
            if args.jobs < 1:
                raise BatchError(f"--jobs must be >= 1, got {args.jobs}")
            if not (Path(args.dir) / "plan.json").is_file():
                raise BatchError(f"{args.dir} holds no plan.json: run `gpu_batch.py prepare` first (here)")
            extra = [x for kv in args.param for x in ("-p", kv)]
            summary = run(Path(args.dir), Path(args.out), budget_s=args.budget_s, jobs=args.jobs,
                          min_left_s=args.min_left_s, device=args.device, threads=args.threads,
                          max_mib=args.max_mib, extra=extra)
            print(json.dumps({k: v for k, v in summary.items() if k != "datasets"}))
        else:
            written = unpack(Path(args.archive), Path(args.results))
            print(json.dumps({"written": written}))
    except TvqError as exc:
        print(f"gpu_batch: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
