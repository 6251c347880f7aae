"""Sample-quality metrics of section 2.6, plus a memorisation check the thesis asks for.

* FID (Eq. 38): the Fréchet distance between Gaussians fitted to FCN features of
  generated series and of the real test set.
* IS (Eq. 37): exp of the mean KL divergence (Eq. 4) between the FCN's p(y | x) and its
  marginal p(y), as mean and standard deviation over splits of the samples.
* Memorisation (not in the thesis; section 5.2 says such a metric is missing): how close
  each generated series lies to its nearest training series, read against how close
  real, unseen test series lie to the same training set.

These functions take arrays (features, probabilities, series) and know nothing about the
FCN or the data sets; :mod:`tvq.evaluate` wires them together.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special
import torch

from .equations import implements
from .errors import EvaluationError


# --------------------------------------------------------------------------------------
# FID (Eq. 38)
# --------------------------------------------------------------------------------------
def gaussian_stats(features: np.ndarray, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (N, D) feature matrix: the Gaussian FID fits."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise EvaluationError(f"{what}: expected an (N, D) matrix, got shape {f.shape}")
    if f.shape[0] < 2:
        raise EvaluationError(f"{what}: FID needs at least 2 series to estimate a covariance, got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise EvaluationError(f"{what}: features contain NaN or infinite values")
    mu = f.mean(axis=0)
    sigma = np.atleast_2d(np.cov(f, rowvar=False))
    return mu, sigma


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix.

    Eigenvalues that rounding pushed slightly below zero are set to zero: a covariance
    estimated from fewer samples than dimensions is singular, never negative.
    """
    w, v = scipy.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


@implements("38")
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Eq. (38): d_FID^2 = ||mu1 - mu2||^2 + tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^(1/2)).

    (Sigma1 Sigma2)^(1/2) is not symmetric and a general ``sqrtm`` of it returns small
    imaginary parts. Its trace equals that of (A Sigma2 A)^(1/2) with A = Sigma1^(1/2),
    because the two products are similar matrices; A Sigma2 A is symmetric PSD, so its
    trace square root is the sum of square roots of real, non-negative eigenvalues.
    Returned as the squared distance, as FID is conventionally reported.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise EvaluationError(f"FID: statistics of different dimensions ({mu1.shape}, {s1.shape}) vs ({mu2.shape}, {s2.shape})")
    a = _sqrt_psd(s1)
    m = a @ s2 @ a
    eig = scipy.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    # Rounding can leave -1e-12 for identical inputs; a squared distance is never negative.
    return max(d2, 0.0)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (Eq. 38 on their fitted Gaussians)."""
    mu_a, s_a = gaussian_stats(features_a, "first feature set")
    mu_b, s_b = gaussian_stats(features_b, "second feature set")
    return frechet_distance(mu_a, s_a, mu_b, s_b)


# --------------------------------------------------------------------------------------
# IS (Eq. 37)
# --------------------------------------------------------------------------------------
def _check_probs(p_yx: np.ndarray) -> np.ndarray:
    p = np.asarray(p_yx, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise EvaluationError(f"IS: expected class probabilities of shape (N, C), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise EvaluationError("IS: probabilities must be finite and non-negative")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise EvaluationError("IS: each row of p(y|x) must sum to 1 (pass softmax outputs, not logits)")
    return p


@implements("4")
def kl_divergence(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """Eq. (4) for discrete distributions: sum_y p(y) (log p(y) - log q(y)), in nats, along ``axis``.

    ``p`` and ``q`` broadcast against each other; each slice along ``axis`` is one
    distribution. A term with p(y) = 0 is 0 (0 log 0 = 0); one with p(y) > 0 and q(y) = 0 is
    +inf. The inputs are neither normalised nor validated: callers pass probabilities.
    """
    return scipy.special.rel_entr(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)).sum(axis=axis)


@implements("37")
def inception_score_once(p_yx: np.ndarray) -> float:
    """Eq. (37): exp(E_x[KL(p(y|x) || p(y))]) with p(y) the mean of p(y|x) over the set.

    The KL divergence is :func:`kl_divergence` (Eq. 4), which takes 0 log 0 = 0, so classes
    the classifier never predicts add nothing.
    """
    p = _check_probs(p_yx)
    p_y = p.mean(axis=0, keepdims=True)
    kl = kl_divergence(p, p_y, axis=1)
    return float(np.exp(kl.mean()))


def inception_score(p_yx: np.ndarray, n_splits: int = 10, seed: int | None = 0) -> tuple[float, float]:
    """IS as mean and standard deviation of Eq. (37) over ``n_splits`` disjoint splits.

    The samples are shuffled (with ``seed``; ``None`` keeps their order) before splitting:
    class-conditional samples usually arrive sorted by class, and a split holding one
    class only would score IS ≈ 1 whatever the generator's quality. Splits differ in size
    by at most one, so no sample is dropped.
    """
    p = _check_probs(p_yx)
    if n_splits < 1:
        raise EvaluationError(f"IS: n_splits must be >= 1, got {n_splits}")
    if p.shape[0] < n_splits:
        raise EvaluationError(f"IS: {p.shape[0]} samples cannot be cut into {n_splits} splits")
    if seed is not None:
        p = p[np.random.default_rng(seed).permutation(p.shape[0])]
    scores = [inception_score_once(part) for part in np.array_split(p, n_splits)]
    return float(np.mean(scores)), float(np.std(scores))


# --------------------------------------------------------------------------------------
# Memorisation (not in the thesis)
# --------------------------------------------------------------------------------------
def _as_series(x: np.ndarray, what: str) -> torch.Tensor:
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 2 or a.shape[0] == 0:
        raise EvaluationError(f"{what}: expected series of shape (N, L), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise EvaluationError(f"{what}: series contain NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


@torch.inference_mode()
def nearest_neighbour_distances(queries: np.ndarray, reference: np.ndarray, device: torch.device | str = "cpu",
                                block_elems: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query series to its nearest reference series, and its index.

    Blocks of the query × reference distance matrix are computed with one matrix product
    each (``torch.cdist``), holding at most ``block_elems`` entries at a time, so 1024
    queries against thousands of series of length 3000 stay fast and small. That product
    form loses digits for near-identical series (|q|^2 + |r|^2 - 2 q.r in float32), so the
    winner's distance is recomputed directly in float64: an exact copy reads exactly 0.
    """
    q = _as_series(queries, "queries")
    r = _as_series(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise EvaluationError(f"nearest neighbours: series of length {q.shape[1]} vs {r.shape[1]}")
    device = torch.device(device)
    r_dev = r.to(device)
    n_q, n_r = q.shape[0], r.shape[0]
    r_block = max(1, min(n_r, block_elems // 64))
    q_block = max(1, block_elems // r_block)
    best_idx = torch.empty(n_q, dtype=torch.long)
    for i in range(0, n_q, q_block):
        qb = q[i:i + q_block].to(device)
        best_d = torch.full((qb.shape[0],), float("inf"), device=device)
        best_j = torch.zeros(qb.shape[0], dtype=torch.long, device=device)
        for j in range(0, n_r, r_block):
            d = torch.cdist(qb, r_dev[j:j + r_block], compute_mode="use_mm_for_euclid_dist")
            dmin, jmin = d.min(dim=1)
            better = dmin < best_d
            best_d = torch.where(better, dmin, best_d)
            best_j = torch.where(better, jmin + j, best_j)
        best_idx[i:i + qb.shape[0]] = best_j.cpu()
    exact = torch.linalg.vector_norm(q.double() - r.double()[best_idx], dim=1)
    return exact.numpy(), best_idx.numpy()


MEMORISATION_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75)


def memorisation(x_gen: np.ndarray, x_train: np.ndarray, x_test: np.ndarray, copy_factor: float = 0.5,
                 device: torch.device | str = "cpu") -> dict[str, float | None]:
    """How close generated series come to the training set, next to how close real test series do.

    d_gen: each generated series' distance to its nearest training series; d_test: the same
    for the real test series, which the generator never saw and which are therefore what
    "a new draw from the data distribution" looks like.

    Near-copy threshold tau = ``copy_factor`` × (1st percentile of d_test). Only 1% of
    unseen real series come closer to the training set than that percentile; half of it
    (the default) is a distance practically no fresh draw reaches, so a generated series
    under it is counted as a copy, not a lucky draw. The fraction at the 1st percentile
    itself is reported too (``frac_below_test_q01``): it is ≈ 0.01 for a generator that
    draws fresh series, and it tends to 1 for one that replays training data. tau is 0
    when the test set holds exact duplicates of training series (some UCR sets do); then
    only exact copies count.
    """
    d_gen, _ = nearest_neighbour_distances(x_gen, x_train, device=device)
    d_test, _ = nearest_neighbour_distances(x_test, x_train, device=device)
    q01 = float(np.quantile(d_test, 0.01))
    tau = copy_factor * q01
    out: dict[str, float | None] = {
        "copy_threshold": tau,
        "near_copy_fraction": float(np.mean(d_gen <= tau)),
        "frac_below_test_q01": float(np.mean(d_gen < q01)),
        # Below 1: generated series sit closer to the training set than unseen real data.
        "median_ratio": float(np.median(d_gen) / np.median(d_test)) if np.median(d_test) > 0 else None,
    }
    for q in MEMORISATION_QUANTILES:
        out[f"gen_nn_q{round(q * 100):02d}"] = float(np.quantile(d_gen, q))
        out[f"test_nn_q{round(q * 100):02d}"] = float(np.quantile(d_test, q))
    return out
