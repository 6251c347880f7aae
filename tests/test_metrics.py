"""FID (Eq. 38), IS (Eq. 37), the KL divergence (Eq. 4) and the memorisation check, against
independent computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from tvq.errors import EvaluationError
from tvq.metrics import fid, frechet_distance, gaussian_stats, inception_score, inception_score_once, kl_divergence, \
    memorisation, nearest_neighbour_distances


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with a general matrix square root of Sigma1 Sigma2 (real part)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


# -- KL divergence (Eq. 4) -----------------------------------------------------------------
@pytest.mark.equation("4")
def test_kl_divergence_matches_scipy_row_by_row_and_along_any_axis():
    rng = np.random.default_rng(11)
    p, q = rng.dirichlet(np.ones(6), size=5), rng.dirichlet(np.ones(6), size=5)
    ours = kl_divergence(p, q)
    assert ours.shape == (5,)
    np.testing.assert_allclose(ours, [scipy.stats.entropy(p[i], q[i]) for i in range(5)], rtol=1e-12)
    np.testing.assert_allclose(kl_divergence(p.T, q.T, axis=0), ours, rtol=1e-12)
    assert np.all(ours > 0) and np.allclose(kl_divergence(p, p), 0.0, atol=1e-15)


@pytest.mark.equation("4")
def test_kl_divergence_is_not_symmetric_and_follows_the_argument_order():
    a, b = np.array([0.9, 0.1]), np.array([0.5, 0.5])
    kl_ab = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)   # KL(a || b) by hand
    kl_ba = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)   # KL(b || a) by hand
    assert kl_divergence(a, b) == pytest.approx(kl_ab, rel=1e-12)
    assert kl_divergence(b, a) == pytest.approx(kl_ba, rel=1e-12)
    assert abs(kl_ab - kl_ba) > 0.1                                 # the pair really is asymmetric


@pytest.mark.equation("4")
def test_kl_divergence_takes_zero_log_zero_as_zero_and_is_infinite_off_the_support():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(math.log(2), rel=1e-12)
    assert kl_divergence(q, p) == math.inf


# -- FID --------------------------------------------------------------------------------
@pytest.mark.equation("38")
def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).standard_normal((300, 16)) @ np.random.default_rng(1).standard_normal((16, 16))
    assert fid(f, f) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.equation("38")
def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    v1, v2 = rng.uniform(0.1, 3, 10), rng.uniform(0.1, 3, 10)
    # With diagonal covariances the matrix square root is elementwise.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.equation("38")
def test_fid_of_gaussian_samples_matches_the_textbook_formula():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    b = 0.5 + rng.standard_normal((400, 8)) @ rng.standard_normal((8, 8))
    assert fid(a, b) == pytest.approx(reference_fid(a, b), rel=1e-6)


@pytest.mark.equation("38")
def test_fid_of_large_gaussian_samples_approaches_the_population_value():
    rng = np.random.default_rng(4)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -1.0, 0.5])
    v1, v2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.5, 1.0, 2.0, 1.0])
    a = mu1 + np.sqrt(v1) * rng.standard_normal((100_000, 4))
    b = mu2 + np.sqrt(v2) * rng.standard_normal((100_000, 4))
    population = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert fid(a, b) == pytest.approx(population, abs=0.03)


@pytest.mark.equation("38")
def test_fid_is_symmetric_and_sees_a_shift():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((200, 6))
    b = rng.standard_normal((150, 6)) * 1.5
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)
    shift = np.array([3.0, 0, 0, 0, 0, 0])
    assert fid(a, a + shift) == pytest.approx(9.0, rel=1e-9)


@pytest.mark.equation("38")
def test_fid_with_singular_covariances_is_finite_and_non_negative():
    rng = np.random.default_rng(6)
    # Fewer samples than dimensions: both covariances are rank-deficient.
    a, b = rng.standard_normal((5, 32)), rng.standard_normal((7, 32))
    d = fid(a, b)
    assert np.isfinite(d) and d >= 0
    assert d == pytest.approx(reference_fid(a, b), rel=1e-4, abs=1e-6)


def test_fid_refuses_too_few_or_broken_features():
    f = np.ones((10, 3))
    with pytest.raises(EvaluationError, match="at least 2"):
        fid(f[:1], f)
    bad = np.random.default_rng(0).standard_normal((10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(EvaluationError):
        fid(bad, f)
    with pytest.raises(EvaluationError):
        fid(np.ones((10, 3)), np.ones((10, 4)))
    with pytest.raises(EvaluationError):
        gaussian_stats(np.ones(10))


# -- IS ---------------------------------------------------------------------------------
def reference_is(p: np.ndarray) -> float:
    p_y = p.mean(axis=0)
    kl = [sum(pi * np.log(pi / qi) for pi, qi in zip(row, p_y) if pi > 0) for row in p]
    return float(np.exp(np.mean(kl)))


@pytest.mark.equation("37")
def test_is_is_one_for_identical_predictions():
    p = np.tile([0.2, 0.5, 0.3], (100, 1))
    assert inception_score_once(p) == pytest.approx(1.0)
    mean, std = inception_score(p)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.equation("37")
@pytest.mark.parametrize("n_classes", [2, 5, 10])
def test_is_is_the_number_of_classes_for_confident_even_predictions(n_classes):
    p = np.eye(n_classes)[np.arange(100 * n_classes) % n_classes]
    assert inception_score_once(p) == pytest.approx(n_classes)
    mean, _ = inception_score(p, n_splits=10)
    # Each shuffled split holds ~10·C samples; classes are nearly but not exactly balanced.
    assert n_classes * 0.9 < mean <= n_classes + 1e-9


@pytest.mark.equation("37")
def test_is_matches_a_direct_computation_of_the_kl_form():
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((50, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert inception_score_once(p) == pytest.approx(reference_is(p), rel=1e-10)
    mean, std = inception_score(p, n_splits=5, seed=None)
    parts = [reference_is(q) for q in np.array_split(p, 5)]
    assert mean == pytest.approx(np.mean(parts)) and std == pytest.approx(np.std(parts))


@pytest.mark.equation("37")
def test_is_shuffles_class_sorted_samples_before_splitting():
    p = np.eye(4)[np.repeat(np.arange(4), 50)]  # sorted by class, as conditional samples arrive
    unshuffled, _ = inception_score(p, n_splits=10, seed=None)
    shuffled, _ = inception_score(p, n_splits=10, seed=0)
    assert unshuffled < 2.0  # most splits see one or two classes: a sorting artefact
    assert shuffled > 3.5


def test_is_refuses_bad_probabilities():
    with pytest.raises(EvaluationError, match="sum to 1"):
        inception_score(np.random.default_rng(0).standard_normal((20, 3)) ** 2)
    with pytest.raises(EvaluationError):
        inception_score(np.full((20, 3), np.nan))
    with pytest.raises(EvaluationError, match="splits"):
        inception_score(np.tile([0.5, 0.5], (5, 1)), n_splits=10)
    with pytest.raises(EvaluationError):
        inception_score(np.ones(10))


# -- memorisation -------------------------------------------------------------------------
def test_nearest_neighbours_match_brute_force_with_tiny_blocks():
    rng = np.random.default_rng(8)
    q, r = rng.standard_normal((37, 20)), rng.standard_normal((53, 20))
    brute = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    d, idx = nearest_neighbour_distances(q, r, block_elems=100)  # forces many blocks both ways
    np.testing.assert_allclose(d, brute.min(1), rtol=1e-5)
    np.testing.assert_array_equal(idx, brute.argmin(1))


def test_exact_copies_have_distance_exactly_zero():
    rng = np.random.default_rng(9)
    r = 30 + rng.standard_normal((40, 500)).astype(np.float32)  # large norms stress the matmul form
    d, idx = nearest_neighbour_distances(r[[3, 17, 3]], r)
    assert np.all(d == 0.0)
    np.testing.assert_array_equal(idx, [3, 17, 3])


def _gaussian_process(n: int, length: int, rng) -> np.ndarray:
    # Smooth random series: a random walk, so series are correlated like real ones.
    return np.cumsum(rng.standard_normal((n, length)), axis=1).astype(np.float32) / np.sqrt(length)


def test_memorisation_flags_exact_copies_of_training_series():
    rng = np.random.default_rng(10)
    x_train, x_test = _gaussian_process(200, 64, rng), _gaussian_process(200, 64, rng)
    copies = x_train[rng.integers(0, 200, 100)]
    m = memorisation(copies, x_train, x_test)
    assert m["near_copy_fraction"] == 1.0 and m["frac_below_test_q01"] == 1.0
    assert m["gen_nn_q50"] == 0.0 and m["median_ratio"] == 0.0


def test_memorisation_does_not_flag_fresh_draws():
    rng = np.random.default_rng(11)
    x_train, x_test, x_gen = (_gaussian_process(n, 64, rng) for n in (200, 200, 300))
    m = memorisation(x_gen, x_train, x_test)
    assert m["near_copy_fraction"] <= 0.02
    assert m["frac_below_test_q01"] <= 0.05
    assert 0.8 < m["median_ratio"] < 1.25
    assert m["copy_threshold"] == pytest.approx(0.5 * m["test_nn_q01"])


def test_memorisation_counts_the_copied_share():
    rng = np.random.default_rng(12)
    x_train, x_test, fresh = (_gaussian_process(n, 64, rng) for n in (200, 200, 150))
    mixed = np.concatenate([x_train[:50], fresh])  # a quarter copies
    m = memorisation(mixed, x_train, x_test)
    assert 0.25 <= m["near_copy_fraction"] <= 0.27


def test_memorisation_refuses_mismatched_lengths_or_nan():
    x = np.zeros((5, 10), np.float32)
    with pytest.raises(EvaluationError):
        memorisation(np.zeros((5, 11)), x, x)
    bad = np.zeros((5, 10))
    bad[1, 1] = np.inf
    with pytest.raises(EvaluationError):
        memorisation(bad, x, x)
