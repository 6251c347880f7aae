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
NOT_COMPUTABLE: dict[str, str] = {
    # Each reason starts with its kind: Definition, Background, Structure, Derivation,
    # Restatement or Not used. The book's equation index groups them by that word.
    "1": "Definition: the training set of series and labels; tvq.data.load_ucr returns it.",
    "2": "Definition: the empirical distribution of the training set; it is the data itself.",
    "3": "Definition: estimation as minimising a loss over a model family; TimeVQVDM's loss is Eq. (53).",
    "4": "Background: the KL divergence in general; tvq evaluates the terms it becomes (Eq. 69-74). "
         "Checked on a discrete toy model in the inference chapter.",
    "5": "Background: log-likelihood = -entropy - KL, a general identity; checked on a discrete toy "
         "model in the inference chapter.",
    "6": "Definition: maximum likelihood as the goal; training minimises the bound of Eq. (53) instead.",
    "7": "Background: the evidence lower bound in general; checked on a discrete toy model in the "
         "inference chapter. TimeVQVDM's instance is Eq. (46)-(53).",
    "8": "Definition: the ELBO loss in general; TimeVQVDM's instance is split in Eq. (46)-(53).",
    "9": "Not used: a Gaussian VAE encoder; TimeVQVDM's encoders are deterministic (section 2.2.3).",
    "10": "Not used: the reparameterised draw of a Gaussian VAE; checked numerically in the VQ-VAE chapter.",
    "11": "Definition: the codebook, a K x d parameter tensor of tvq.vqvae.VectorQuantizer.",
    "25": "Definition: the true reverse joint; its kernels q(z_s | z_t) are intractable (section 2.3.3), "
          "which is why Eq. (27) replaces them.",
    "26": "Definition: the model's reverse joint; tvq draws from it (Eq. 27-28, sample_ancestral) but "
          "never evaluates its density.",
    "44": "Structure: the LF and HF inference models are independent; realised by two separate "
          "VQ-VAEs (tvq.vqvae.Stage1), nothing to evaluate.",
    "45": "Structure: the HF generative model is conditioned on LF; realised by the cascade "
          "(tvq.sampling.sample_cascade).",
    "46": "Structure: the ELBO splits into an LF and an HF term; their pieces are Eq. (69)-(74).",
    "47": "Structure: factorisation of the LF inference model along the discretised diffusion.",
    "48": "Structure: factorisation of the LF generative model along the discretised diffusion.",
    "49": "Structure: the LF loss as prior + diffusion + codebook + reconstruction; each term is "
          "computed (Eq. 70-74, the prior term is the constant 0).",
    "50": "Structure: factorisation of the HF inference model (as Eq. 47).",
    "51": "Structure: factorisation of the HF generative model, conditioned on z0_LF (as Eq. 48).",
    "52": "Structure: the HF loss as four terms (as Eq. 49).",
    "53": "Structure: the two-stage objective; an optimisation carried out by tvq.train "
          "(Algorithms 1-2), not a formula to evaluate.",
    "54": "Background: the SDE view of the forward process, unused by tvq; appendix A checks "
          "numerically that it reproduces Eq. (13).",
    "55": "Background: drift and diffusion of the SDE (54); appendix A checks them against the "
          "cosine schedule by finite differences and simulation.",
    "56": "Background: the reverse-time SDE; it needs the score of the data distribution, known only "
          "for toy data (appendix A uses Gaussian data).",
    "57": "Background: the probability-flow ODE; like Eq. (56) it needs the score (appendix A).",
    "58": "Derivation: Bayes' rule for q(z_s | z_t, z0); the result is Eq. (19)-(20).",
    "59": "Derivation: completing the square in z_s; the result is Eq. (19)-(20).",
    "60": "Derivation: the Gaussian form matched in appendix B; the result is Eq. (19)-(20).",
    "61": "Restatement: the posterior variance in another form; appendix B checks it against Eq. (20).",
    "62": "Restatement: the posterior mean in another form; appendix B checks it against Eq. (20).",
    "63": "Restatement of Eq. (19).",
    "64": "Restatement of Eq. (20) (the thesis prints sigma_{s|t,0} where its square is meant).",
    "65": "Restatement of Eq. (47).",
    "66": "Restatement of Eq. (48).",
    "67": "Not used: the discrete-time diffusion loss; tvq trains with its continuous limit. Appendix C "
          "checks that the discrete sum converges to Eq. (69).",
    "68": "Derivation: a limit (the definition of the derivative of e^lambda); appendix C checks it "
          "through the weight of Eq. (69).",
    "72": "Not used: the codebook loss with a log-normaliser; the argmin is not differentiable, so "
          "Eq. (73) replaces it in training (appendix C).",
}


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
