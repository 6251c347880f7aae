"""Device choice, seeding and CPU threads: the few lines every entry point needs."""
from __future__ import annotations

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
