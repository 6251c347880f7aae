"""Registry that ties thesis equations to the code that computes them.

Every function that implements a numbered equation of the thesis is tagged::

    @implements("20")
    def posterior(...): ...

Checks say which equations they cover: tests carry ``@pytest.mark.equation("20")`` and
book cells call :func:`verify` (``verify("20", ours, reference, rtol=...)``).

Equations that ``tvq`` does not compute fall in two groups: :data:`CHECKED_ONLY`, whose
identity a book cell still checks with :func:`verify` (on a toy model, or by simulation),
and :data:`NOT_COMPUTABLE`, which nothing computes or checks. Every thesis equation is in
exactly one of the three groups. The book's equation index and ``tests/test_equations.py``
(through :func:`tvq.notebook.equation_index_problems`) read all of this and fail when a
tagged equation has no check, a CHECKED_ONLY equation has no book check, a check names an
equation that is neither implemented nor CHECKED_ONLY, or the groups overlap or leave an
equation out.
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

# Every numbered equation of the thesis is in exactly one of three places: tagged with
# @implements (tvq computes it), CHECKED_ONLY (tvq does not compute it, but a book cell
# checks it numerically with verify()) or NOT_COMPUTABLE (nothing computes or checks it).
# Each reason starts with its kind: Definition, Background, Structure, Derivation,
# Restatement or Not used. The book's equation index groups the entries by that word, and
# tests/test_equations.py enforces the three-way split.
KINDS = ("Definition", "Background", "Structure", "Derivation", "Restatement", "Not used")

# Equations that tvq does not compute as a function, but whose identity a check cell of the
# book confirms numerically with verify("N", ...). The reason says where.
CHECKED_ONLY: dict[str, str] = {
    "5": "Background: expected log-likelihood = -entropy - KL, a general identity; the inference "
         "chapter checks it to a relative 1e-12 on a distribution over eight outcomes.",
    "6": "Definition: maximum likelihood as the goal (TimeVQVDM trains on terms of the ELBO loss (8) "
         "instead); the inference chapter checks that gradient ascent on the log-likelihood of a "
         "softmax model recovers the empirical distribution (2) of its sample.",
    "7": "Background: the evidence lower bound in general; the inference chapter checks, on a toy "
         "latent variable model, that it never exceeds log p(x), that its gap is KL(q(z|x) || p(z|x)) "
         "and that it is tight at the posterior.",
    "10": "Not used: the reparameterised draw of a Gaussian VAE (TimeVQVDM's encoders are "
          "deterministic); the VQ-VAE chapter checks the mean and covariance of 400,000 draws "
          "mu + L eps.",
    "54": "Background: the forward SDE, which tvq never integrates; appendix A simulates it with "
          "Euler-Maruyama and checks the moments at t = 0.9 against Eq. (13).",
    "55": "Background: drift and diffusion of the SDE (54); appendix A checks them against finite "
          "differences of tvq's cosine schedule.",
    "56": "Background: the reverse-time SDE, which needs the data score; appendix A integrates it "
          "for Gaussian data, where the score is exact, and checks the moments of the result.",
    "57": "Background: the probability-flow ODE, which needs the data score; appendix A integrates "
          "it for Gaussian data, where the score is exact, and checks the moments of the result.",
    "58": "Derivation: Bayes' rule for q(z_s | z_t, z0); appendix B checks on a grid of z_s that the "
          "ratio of the three Gaussian densities equals the density of tvq's Eq. (19)-(20).",
    "61": "Restatement: the posterior variance in terms of alpha_{t|s} and sigma_{t|s}^2; appendix B "
          "checks it against tvq's Eq. (20).",
    "62": "Restatement: the posterior mean in terms of alpha_{t|s} and sigma_{t|s}^2; appendix B "
          "checks it against tvq's Eq. (20).",
    "67": "Not used: the discrete-time diffusion loss (tvq has only the continuous-time forms "
          "(69)-(71)); appendix C checks that its sum from i = 2 at T = 10,000 matches the integral "
          "of Eq. (69) from 1/T.",
    "68": "Derivation: the weight of Eq. (69) as a limit of finite differences of e^lambda; appendix C "
          "checks the finite difference at T = 100,000 against tvq's weight.",
}

# Numbered equations that nothing in tvq computes and nothing checks, and why. The equation
# index lists them so a reader sees they were considered, not forgotten.
NOT_COMPUTABLE: dict[str, str] = {
    "1": "Definition: the training set of series and labels; tvq.data.load_ucr returns it.",
    "2": "Definition: the empirical distribution of the training set; it is the data itself.",
    "3": "Definition: estimation as minimising a loss over a model family; TimeVQVDM's loss is the "
         "ELBO of Eq. (8), split in Eq. (46)-(53).",
    "8": "Definition: the ELBO loss in general; TimeVQVDM's instance is split in Eq. (46)-(53).",
    "9": "Not used: a Gaussian VAE encoder; TimeVQVDM's encoders are deterministic (section 2.2.3).",
    "11": "Definition: the codebook, the K x d tensor of tokens of tvq.quantizer.VectorQuantizer (a buffer "
          "that the EMA update of appendix D moves, not a trained parameter).",
    "25": "Definition: the true reverse joint; its kernels q(z_s | z_t) are intractable (section 2.3.3), "
          "which is why Eq. (27) replaces them.",
    "26": "Definition: the model's reverse joint; tvq draws from it (Eq. 27-28, sample_ancestral) but "
          "never evaluates its density.",
    "44": "Structure: the inference model factorises into independent LF and HF parts; realised by the "
          "two VQ-VAEs of tvq.vqvae.Stage1, one per band, and by diffusing each band with its own "
          "times and noise (Algorithm 2).",
    "45": "Structure: the HF generative model is conditioned on the LF variables; tvq conditions only "
          "the HF prior, on the sampled z0_LF (Eq. 51, tvq.sampling.sample_cascade), and decodes "
          "each band on its own.",
    "46": "Structure: the ELBO splits into an LF and an HF term; tvq never evaluates either total, "
          "only their pieces, Eq. (69)-(71), (73) and (74).",
    "47": "Structure: factorisation of the LF inference model into encoder, quantiser and the Markov "
          "chain of the discretised diffusion; tvq diffuses in one jump with Eq. (15).",
    "48": "Structure: factorisation of the LF generative model into prior, denoising chain, quantiser "
          "and decoder; tvq draws from it (Algorithm 4) but never evaluates its density.",
    "49": "Structure: the LF loss as prior + diffusion + codebook + reconstruction; tvq computes the "
          "diffusion term as Eq. (71) (reported, not trained), the codebook term as Eq. (73) and the "
          "reconstruction term as Eq. (74); the prior term is the constant 0.",
    "50": "Structure: factorisation of the HF inference model (as Eq. 47).",
    "51": "Structure: factorisation of the HF generative model, whose denoising steps are conditioned "
          "on z0_LF (otherwise as Eq. 48).",
    "52": "Structure: the HF loss as four terms (as Eq. 49).",
    "53": "Structure: the two-stage objective, written as an arg-min of the weighted ELBO; it is not "
          "what tvq trains: tvq.train first trains stage 1 on the losses of Eq. (73)-(74), then, with "
          "stage 1 frozen, stage 2 on the unweighted mean squared error of the network's target "
          "(epsilon by default, Algorithm 2), never on the weighted term of Eq. (71) and never jointly.",
    "59": "Derivation: completing the square in z_s; the result is Eq. (19)-(20).",
    "60": "Derivation: the Gaussian form matched in appendix B; the result is Eq. (19)-(20).",
    "63": "Restatement: Eq. (19), at the end of the derivation in appendix B.",
    "64": "Restatement: Eq. (20), at the end of the derivation in appendix B (the thesis prints "
          "sigma_{s|t,0} where its square is meant).",
    "65": "Restatement: Eq. (47), at the start of appendix C.",
    "66": "Restatement: Eq. (48), at the start of appendix C.",
    "72": "Not used: the codebook loss with a log-normaliser; the arg-min is not differentiable, so "
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
    """Assert that ``actual`` agrees with ``expected`` (an independent computation).

    Used by the book's check cells. For an implemented equation ``actual`` is what ``tvq``
    computes; for a :data:`CHECKED_ONLY` one it is the chapter's own evaluation of the
    equation (a simulation, a toy model), compared with what the equation says it must be.
    Passes when ``|actual - expected| <= atol + rtol * |expected|`` everywhere (NumPy's
    ``allclose``). Returns the maximum absolute difference so the cell can print it. Raises
    AssertionError with the equation number when they disagree.
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
