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


def test_spike_estimates():
    from hiermodel.metrics import spike_estimates

    # By hand: terms y (h^2 - 1) = [0, -3] -> mean -1.5, se = std / sqrt(2) = 1.5 / sqrt(2).
    mean, se = spike_estimates(np.array([[1.0], [2.0]]), np.array([1.0, -1.0]))
    assert mean[0] == pytest.approx(-1.5) and se[0] == pytest.approx(1.5 / np.sqrt(2))
    # They are the diagonal <A_i, C_hat A_i> of the raw-label spectral matrix.
    t = hm.HierarchicalTarget(8, gamma=0.4, rng=1)
    F, y = t.sample(3000, 2, model="gaussian-equivalent")
    C = spectral_matrix(F, y, features=True, center=False) * np.std(y)
    mean, se = spike_estimates(F @ t.directions.T, y)
    np.testing.assert_allclose(mean, np.einsum("id,de,ie->i", t.directions, C, t.directions), atol=1e-10)
    # Gaussian-equivalent, g = id: E y (h_i^2 - 1) = sqrt(2) lambda_i.
    F, y = t.sample(200_000, 3, model="gaussian-equivalent")
    mean, se = spike_estimates(F @ t.directions.T, y)
    assert np.all(np.abs(mean - np.sqrt(2) * t.weights) < 4 * se) and np.all(se < 0.01)
    with pytest.raises(ValueError, match="n >= 2"):
        spike_estimates(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        spike_estimates(np.full((3, 1), np.nan), np.ones(3))


def test_polynomial_readout_mse():
    from hiermodel.metrics import polynomial_readout_mse

    rng = np.random.default_rng(0)
    h, h_test = rng.standard_normal(200_000), rng.standard_normal(200_000)
    cubic = lambda z: 1.0 - 2.0 * z + 0.5 * z**3  # noqa: E731
    assert polynomial_readout_mse(h, cubic(h), h_test, cubic(h_test), degree=3) < 1e-20
    # degree 1 on a cubic leaves the part of z^3 orthogonal to z: Var(z^3 - 3z) / Var(y) for Gaussian z
    y, y_test = cubic(h), cubic(h_test)
    exact = (0.25 * 6) / (4 - 6 + 15 / 4)  # Var(He_3 / 2) / Var(-2z + z^3 / 2)
    assert polynomial_readout_mse(h, y, h_test, y_test, degree=1) == pytest.approx(exact, rel=0.03)
    # the feature is standardised on the fit sample: an affine change of h changes nothing
    a = polynomial_readout_mse(h, np.tanh(h), h_test, np.tanh(h_test), degree=5)
    b = polynomial_readout_mse(3 * h + 7, np.tanh(h), 3 * h_test + 7, np.tanh(h_test), degree=5)
    assert a == pytest.approx(b, rel=1e-9) and 0 < a < 1e-2
    with pytest.raises(ValueError, match="constant"):
        polynomial_readout_mse(np.ones(5), h[:5], h_test[:5], y_test[:5], degree=1)
    with pytest.raises(ValueError, match="1-D pairs"):
        polynomial_readout_mse(h, y[:-1], h_test, y_test, degree=1)


def test_binned_readout_mse():
    from hiermodel.metrics import binned_readout_mse

    rng = np.random.default_rng(1)
    h, h_test = rng.standard_normal(20_000), rng.standard_normal(20_000)

    def chapter_5(h_fit, y_fit, h_test, y_test, bins=100):  # book/05-nonlinear.ipynb cell 18 before the refactor
        edges = np.quantile(h_fit, np.linspace(0, 1, bins + 1)[1:-1])
        means = np.bincount(np.searchsorted(edges, h_fit), weights=y_fit, minlength=bins) / np.bincount(
            np.searchsorted(edges, h_fit), minlength=bins)
        return hm.metrics.test_mse(y_test, means[np.searchsorted(edges, h_test)])

    y, y_test = np.tanh(2 * h), np.tanh(2 * h_test)
    assert binned_readout_mse(h, y, h_test, y_test) == chapter_5(h, y, h_test, y_test)
    assert binned_readout_mse(h, y, h_test, y_test) < 2e-3  # a smooth link: within-bin variance only
    assert binned_readout_mse(h, y, h_test, y_test, bins=1) == pytest.approx(1.0, abs=0.02)  # the mean alone
    median = np.median(h)  # the one inner edge of two bins: a step there is represented exactly
    step = lambda z: (z > median).astype(float)  # noqa: E731
    assert binned_readout_mse(h, step(h), h_test, step(h_test), bins=2) == 0.0
    ties = np.repeat([0.0, 1.0], 50)  # many quantile edges coincide: empty bins fall back to the mean
    value = binned_readout_mse(ties, ties, np.array([0.0, 1.0]), np.array([0.0, 1.0]), bins=10)
    assert np.isfinite(value)
    with pytest.raises(ValueError, match="exceeds"):
        binned_readout_mse(h[:5], y[:5], h_test, y_test, bins=10)
