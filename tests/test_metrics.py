"""Tests of the gauge-invariant metrics (SPEC §2 Metrics): hiermodel.metrics."""

import numpy as np
import pytest

import hiermodel as hm
from hiermodel.estimator import LayerwiseSpectral, spectral_matrix
from hiermodel.metrics import (direction_cos2, eigenvector_overlap, principal_cos2, spectrum, subspace_overlap,
                              test_mse)


def test_test_mse():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert test_mse(y, y) == 0.0
    assert test_mse(y, np.full(4, y.mean())) == pytest.approx(1.0)
    assert test_mse(10 * y, 10 * (y + 0.5)) == pytest.approx(test_mse(y, y + 0.5))  # scale-free
    with pytest.raises(ValueError, match="constant"):
        test_mse(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="same length"):
        test_mse(y, y[:3])


def test_overlaps_are_gauge_invariant_and_exact_on_known_cases():
    rng = np.random.default_rng(0)
    D, k = 30, 4
    Q = np.linalg.qr(rng.standard_normal((D, k)))[0].T
    R = np.linalg.qr(rng.standard_normal((k, k)))[0]
    scaled = np.diag([1.0, 2.0, 3.0, 0.5]) @ (R @ Q)  # rotated, rescaled rows: same span
    assert subspace_overlap(Q, scaled) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(direction_cos2(Q, -scaled), 1.0, atol=1e-12)
    # Half the span: q_h = 1/2, and cos^2 = 1 for the kept directions, 0 for orthogonal ones.
    assert subspace_overlap(Q, Q[:2]) == pytest.approx(0.5, abs=1e-12)
    assert np.allclose(direction_cos2(Q, Q[:2]), [1, 1, 0, 0], atol=1e-12)
    # A known angle: cos^2 = c^2 for a direction tilted by theta into an orthogonal complement vector.
    c = 0.6
    v = rng.standard_normal(D)
    v -= Q.T @ (Q @ v)  # orthogonal to every row of Q
    tilted = c * Q[0] + np.sqrt(1 - c**2) * v / np.linalg.norm(v)
    assert direction_cos2(Q[:1], tilted)[0] == pytest.approx(c**2, abs=1e-12)
    with pytest.raises(ValueError, match="dependent"):
        subspace_overlap(Q, np.vstack([Q[0], 2 * Q[0]]))
    with pytest.raises(ValueError, match="columns"):
        direction_cos2(Q, Q[:, :10])


def test_spectrum_dense_and_outliers():
    t = hm.HierarchicalTarget(10, gamma=0.4, rng=2)
    X, y = t.sample(3000, 1)
    full = spectrum(X, y)
    assert np.allclose(full, np.linalg.eigvalsh(spectral_matrix(X, y)), atol=1e-10)
    top = spectrum(X, y, top=5, dense_max_D=10)  # forces the matrix-free route
    ref = full[np.argsort(-np.abs(full))[:5]]
    assert np.allclose(np.sort(top), np.sort(ref), atol=1e-6)
    est = LayerwiseSpectral(t.d1, method="dense", dtype=np.float64).fit(X, y)
    assert np.allclose(est.eigenvalues_, ref[:t.d1], atol=1e-10)
    with pytest.raises(ValueError, match="top=k"):
        spectrum(X, y, dense_max_D=10)


def test_principal_cos2_and_eigenvector_overlap():
    rng = np.random.default_rng(7)
    A = np.linalg.qr(rng.standard_normal((30, 4)))[0].T  # orthonormal rows
    noisy = A + 0.3 * rng.standard_normal(A.shape)
    cos2 = principal_cos2(A, noisy)
    assert np.all(np.diff(cos2) <= 1e-12) and np.all((0 <= cos2) & (cos2 <= 1))
    assert cos2.mean() == pytest.approx(subspace_overlap(A, noisy), rel=1e-12)
    # Rotating the estimate inside its span changes no principal angle, but does change <u_k, a_k>^2.
    R = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    assert np.allclose(principal_cos2(A, R @ noisy), cos2)
    assert np.allclose(eigenvector_overlap(A, -A), 1.0)  # sign-invariant
    swapped = A[[1, 0, 2, 3]]
    assert np.allclose(eigenvector_overlap(A, swapped), [0, 0, 1, 1])
    assert np.allclose(direction_cos2(A, swapped), 1.0)  # the span is the same
    assert np.allclose(principal_cos2(A, A[:2]), [1, 1, 0, 0])  # rank-2 estimate of a 4-d span
    with pytest.raises(ValueError, match="zero row"):
        eigenvector_overlap(A, np.zeros((4, 30)))
