"""Device choice, seeding, CPU threads and the host allocator: the few lines every entry point needs."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import random

import numpy as np
import torch

from .errors import DeviceError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU. Asking for CUDA where there is none is an error."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} was asked for, but this machine has no CUDA device (use device=cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        return dev
    raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int) -> None:
    """Set torch's intra-op CPU threads (0 keeps torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def threads_used(earlier: list[int] | None, *, resumed: bool) -> list[int] | None:
    """The distinct torch thread counts a piece of work ran with: those its checkpoint recorded
    (``earlier``) plus this invocation's. ``None`` when it resumed from a checkpoint written before
    thread counts were recorded: then part of the work ran with counts nobody wrote down."""
    if earlier is None:
        return None if resumed else [torch.get_num_threads()]
    return sorted(set(earlier) | {torch.get_num_threads()})


def compile_modules(modules, mode: str = "none") -> None:
    """``torch.compile`` each module in place (``nn.Module.compile``: its state dict, and so every
    checkpoint, keeps its keys); ``mode="none"`` leaves them eager.

    ``reduce-overhead`` is inductor plus CUDA graphs: a step whose time is kernel launches, not
    arithmetic (a stage-1 step of 20 series on an H200), replays as one graph. Shapes are static:
    a new batch size (an epoch's last partial batch, a smaller draw) compiles once more.
    """
    if mode == "none":
        return
    for module in modules:
        module.compile(mode=mode, dynamic=False)


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):   # x86 | aarch64
            flags.update(value.split())
    return flags


# Instructions that do bfloat16 arithmetic natively: x86's AVX512-BF16 and AMX-BF16, Arm's BF16
# extension. Without them torch emulates bf16 matrix multiplies, slower than fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def bf16_units(device: str = "auto") -> bool:
    """Whether ``device`` (a config's ``device`` string) computes in bfloat16 natively: on CUDA,
    what torch reports for the GPU; on a CPU, one of :data:`BF16_CPU_FLAGS`. Never raises: a
    device this machine lacks is answered False (resolve_device reports it when the run starts)."""
    name = (device or "auto").strip().lower()
    if name.startswith("cuda") or name == "auto":
        if torch.cuda.is_available():
            return bool(torch.cuda.is_bf16_supported())
        if name != "auto":
            return False
    return any(flag in _cpu_flags() for flag in BF16_CPU_FLAGS)


# --------------------------------------------------------------------------------------
# The host allocator
# --------------------------------------------------------------------------------------
# glibc's malloc serves every block above a threshold (128 KiB at first, rising to at most
# 32 MiB as such blocks are freed) with an mmap() of its own and unmaps it on free(), and it
# hands free memory at the top of the heap back to the kernel once more than 128 KiB lie there
# (the trim). A CPU forward pass over a batch of 1024 series allocates and frees blocks of tens of
# MiB in every layer, so each step the kernel maps, zero-fills and page-faults the same memory
# in again: on the 2-core EPYC with one torch thread a 1x1 convolution of (1024, 32, 64) took
# 93 ms this way and 17 ms with the memory kept. benchmarks/bench_allocator.py times whole phases
# (README, "Benchmarks"). Keeping freed memory costs a little resident memory and changes no
# number: torch aligns every CPU tensor to 64 bytes either way, so the same kernels run.
M_TRIM_THRESHOLD = -1      # <malloc.h>: free top-of-heap memory above this goes back to the kernel
M_MMAP_MAX = -4            # <malloc.h>: how many blocks may be mmap()ed at once (0: none; the heap serves all)
TRIM_THRESHOLD_BYTES = 1 << 30
HOST_ALLOCATOR_ENV = "TVQ_HOST_ALLOCATOR"
HOST_ALLOCATOR_MODES = ("reuse", "system")
_host_allocator = "system"     # what this process runs with, for hardware_summary


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt``), else None (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # only glibc has gnu_get_libc_version; mallopt is what tune_host_allocator calls
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune_host_allocator(mode: str | None = None) -> str:
    """Make this process keep the memory it frees, for the next step to reuse (glibc only).

    ``mode``: ``reuse`` (the default) turns off glibc's per-block mmap() and raises the trim
    threshold to 1 GiB, so that the large activation blocks of a CPU step come from memory the
    process already holds; ``system`` leaves the allocator as it is. ``None`` reads
    ``$TVQ_HOST_ALLOCATOR`` (default ``reuse``). Elsewhere than glibc nothing changes. The
    ``tvq`` command calls it once at start (and a sweep's workers, which are processes of their
    own). Returns what the process now runs with, also recorded in :func:`host_allocator`.
    """
    global _host_allocator
    chosen = (mode if mode is not None else os.environ.get(HOST_ALLOCATOR_ENV) or "reuse").strip().lower()
    if chosen not in HOST_ALLOCATOR_MODES:
        source = "the host allocator" if mode is not None else f"${HOST_ALLOCATOR_ENV}"
        raise DeviceError(f"{source} must be one of {', '.join(HOST_ALLOCATOR_MODES)}, got {chosen!r}")
    if chosen == "reuse":
        libc = _glibc()
        if libc is not None and libc.mallopt(M_MMAP_MAX, 0) == 1 \
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1:
            _host_allocator = "reuse"
    return _host_allocator


def host_allocator() -> str:
    """``reuse`` when :func:`tune_host_allocator` set glibc to keep freed memory, else ``system``
    (glibc's own settings, which its ``MALLOC_*_`` environment variables may still have changed)."""
    return _host_allocator
