"""Registry that ties thesis equations to the code that computes them.

Every function that implements a numbered equation of the thesis is tagged::

    @implements("20")
    def posterior(...): ...

Checks say which equations they cover: tests carry ``@pytest.mark.equation("20")`` and
book cells call :func:`verify` (``verify("20", ours, reference, rtol=...)``). The book's
equation index and ``tests/test_equations.py`` read all three and fail when a tagged
equation has no check, or a check names an equation nothing implements.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable)


@dataclasses.dataclass(frozen=True)
class Implementation:
    equation: str
    qualname: str  # "tvq.diffusion.posterior"
    summary: str   # first line of the docstring


_REGISTRY: dict[str, list[Implementation]] = {}

# Numbered equations of the thesis with nothing to compute, and why. The equation index
# lists them so a reader sees they were considered, not forgotten.
NOT_COMPUTABLE: dict[str, str] = {}


def implements(*equations: str) -> Callable[[F], F]:
    """Tag a function (or class) as the implementation of one or more thesis equations."""

    def deco(obj: F) -> F:
        doc = (obj.__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else ""
        name = f"{obj.__module__}.{obj.__qualname__}"
        for eq in equations:
            entries = _REGISTRY.setdefault(str(eq), [])
            if all(e.qualname != name for e in entries):
                entries.append(Implementation(str(eq), name, summary))
        existing = getattr(obj, "__equations__", ())
        try:
            obj.__equations__ = tuple(existing) + tuple(str(e) for e in equations)
        except (AttributeError, TypeError):
            pass
        return obj

    return deco


def registry(load_all: bool = True) -> dict[str, list[Implementation]]:
    """Equation number → implementations. Imports every tvq module first, so nothing is missed."""
    if load_all:
        import tvq

        for mod in pkgutil.walk_packages(tvq.__path__, prefix="tvq."):
            if mod.name.endswith("__main__"):
                continue
            importlib.import_module(mod.name)
    return {k: list(v) for k, v in sorted(_REGISTRY.items(), key=lambda kv: _eq_key(kv[0]))}


def _eq_key(eq: str) -> tuple:
    head = "".join(ch for ch in eq if ch.isdigit())
    return (int(head) if head else 10**6, eq)


def verify(equation: str, actual, expected, *, rtol: float = 1e-5, atol: float = 1e-6) -> float:
    """Assert that ``actual`` (tvq) agrees with ``expected`` (an independent computation).

    Used by the book's check cells. Returns the maximum absolute difference so the cell
    can print it. Raises AssertionError with the equation number when they disagree.
    """
    a = np.asarray(_to_numpy(actual), dtype=np.float64)
    b = np.asarray(_to_numpy(expected), dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"Eq. ({equation}): shapes differ, {a.shape} vs {b.shape}")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"Eq. ({equation}): max |difference| {diff:.3g} exceeds tolerance")
    return diff


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_complex():
            x = __import__("torch").view_as_real(x)
        return x.numpy()
    return x
