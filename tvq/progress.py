"""Progress of long loops, where the user will see it.

On a terminal: a tqdm bar. Anywhere else (a batch job, ``2>log``, papermill): one line on
stderr every ``every_s`` seconds and at the end, each readable on its own::

    tvq: stage1 epoch 120/1000 (12%), loss total=0.0123 vq_lf=0.0004, 3.21 epochs/s, 4m34s left

``mode``: ``auto`` (bar on a terminal, lines elsewhere), ``bar``, ``log`` or ``off``.
"""
from __future__ import annotations

import sys
import time
from typing import Mapping

from tqdm.auto import tqdm

MODES = ("auto", "bar", "log", "off")


def resolve_mode(progress: bool | str) -> str:
    """``True`` → ``auto``, ``False`` → ``off``; strings are checked against :data:`MODES`."""
    if progress is True:
        progress = "auto"
    elif progress is False or progress is None:
        progress = "off"
    if progress not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {progress!r}")
    if progress == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Report ``done`` of ``total`` units (epochs, steps) with named loss terms."""

    def __init__(self, name: str, total: int, initial: int = 0, unit: str = "epoch",
                 mode: bool | str = "auto", every_s: float = 30.0, stream=None):
        self.name, self.total, self.done, self.unit = name, total, initial, unit
        self.mode = resolve_mode(mode)
        self.every_s, self.stream = every_s, stream
        self.start_done, self.t0 = initial, time.monotonic()
        self.last_line = self.t0
        self.terms: Mapping[str, float] = {}
        self.bar = (tqdm(total=total, initial=initial, desc=name, unit=unit, dynamic_ncols=True, leave=False)
                    if self.mode == "bar" else None)

    def update(self, n: int = 1, terms: Mapping[str, float] | None = None) -> None:
        self.done += n
        if terms:
            self.terms = terms
        if self.bar is not None:
            self.bar.update(n)
            if terms and "total" in terms:
                self.bar.set_postfix(loss=f"{terms['total']:.4f}")
        elif self.mode == "log" and time.monotonic() - self.last_line >= self.every_s:
            self._line()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        parts = [f"tvq: {self.name} {self.unit} {self.done}/{self.total}"
                 + (f" ({100 * self.done / self.total:.0f}%)" if self.total else "")]
        if self.terms:   # the total first: it is what one looks for
            names = sorted(self.terms, key=lambda k: k != "total")
            parts.append("loss " + " ".join(f"{k}={self.terms[k]:.4g}" for k in names))
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}s/s")
            left = self.total - self.done
            parts.append(f"{_duration(left / rate)} left" if left > 0 else f"done in {_duration(elapsed)}")
        return ", ".join(parts)

    def _line(self) -> None:
        print(self.line(), file=self.stream or sys.stderr, flush=True)
        self.last_line = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "log" and self.done > self.start_done:
            self._line()
