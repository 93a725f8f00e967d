"""The Hermite lift: dimension, ordering, exact orthonormality, the q = 2 matrix picture."""

import math

import numpy as np
import pytest

import hiermodel as hm


@pytest.mark.parametrize("d,q", [(1, 1), (3, 2), (5, 2), (4, 3), (3, 4), (40, 2), (12, 3)])
def test_dimension_is_number_of_multisets(d, q):
    assert hm.feature_dimension(d, q) == math.comb(d + q - 1, q)
    assert hm.multisets(d, q).shape == (math.comb(d + q - 1, q), q)


@pytest.mark.parametrize("d,q", [(3, 1), (3, 2), (3, 3), (2, 4)])
def test_lift_is_exactly_orthonormal(d, q, gauss_grid):
    # Gauss–Hermite with q + 1 nodes per axis integrates the degree-2q products F_a F_b exactly.
    pts, wts = gauss_grid(d, q + 1)
    F = hm.hermite_features(pts, q)
    np.testing.assert_allclose(wts @ F, 0.0, atol=1e-12)
    np.testing.assert_allclose((F * wts[:, None]).T @ F, np.eye(F.shape[1]), atol=1e-12)


@pytest.mark.parametrize("q", [2, 3])
def test_lift_mean_and_covariance_monte_carlo(q):
    # Each entry of the sample mean of F and of F F^T is checked against 0 / I within 6 of its own standard errors.
    d, n = 4, 100_000
    F = hm.hermite_features(np.random.default_rng(11).standard_normal((n, d)), q)
    se_mean = F.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(F.mean(axis=0)) <= 6 * se_mean)
    prods = F[:, :, None] * F[:, None, :]
    se_cov = prods.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - np.eye(F.shape[1])) <= 6 * se_cov)


def test_q2_and_q3_coordinates_match_spec():
    x = np.array([[0.3, -1.2, 2.0]])
    F2 = hm.hermite_features(x, 2)[0]
    labels2 = [tuple(m) for m in hm.multisets(3, 2)]
    assert F2[labels2.index((0, 0))] == pytest.approx((0.3**2 - 1) / math.sqrt(2))
    assert F2[labels2.index((0, 2))] == pytest.approx(0.3 * 2.0)
    F3 = hm.hermite_features(x, 3)[0]
    labels3 = [tuple(m) for m in hm.multisets(3, 3)]
    assert F3[labels3.index((0, 1, 2))] == pytest.approx(0.3 * -1.2 * 2.0)
    assert F3[labels3.index((1, 1, 2))] == pytest.approx((1.44 - 1) * 2.0 / math.sqrt(2))
    assert F3[labels3.index((2, 2, 2))] == pytest.approx((8.0 - 6.0) / math.sqrt(6))


def test_q2_matrix_picture():
    rng = np.random.default_rng(3)
    d = 6
    M = rng.standard_normal((4, d, d))
    M = M + np.swapaxes(M, 1, 2)
    a = hm.matrix_to_vector(M)
    np.testing.assert_allclose(hm.vector_to_matrix(a, d), M, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(M, axis=(1, 2)), rtol=1e-13)
    X = rng.standard_normal((7, d))
    quad = (np.einsum("ni,kij,nj->nk", X, M, X) - np.trace(M, axis1=1, axis2=2)) / math.sqrt(2)
    np.testing.assert_allclose(hm.hermite_features(X, 2) @ a.T, quad, atol=1e-12)


def test_float32_lift_agrees():
    X = np.random.default_rng(0).standard_normal((50, 7))
    np.testing.assert_allclose(hm.hermite_features(X, 3, dtype=np.float32), hm.hermite_features(X, 3), atol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: hm.feature_dimension(0, 2), "d must be"),
    (lambda: hm.feature_dimension(3, 0), "q must be"),
    (lambda: hm.hermite_features(np.ones(3), 2), "shape"),
    (lambda: hm.hermite_features(np.array([[np.nan, 1.0]]), 2), "NaN"),
    (lambda: hm.vector_to_matrix(np.ones(5), 3), "binom"),
    (lambda: hm.matrix_to_vector(np.array([[0.0, 1.0], [2.0, 0.0]])), "symmetric"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
