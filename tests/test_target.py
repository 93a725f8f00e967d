"""The hierarchical target: contract, exact moments against quadrature and Monte Carlo, seeding, bad input."""

import math

import numpy as np
import pytest

import hiermodel as hm


@pytest.mark.parametrize("orthonormal", [True, False])
def test_contract(orthonormal):
    t = hm.HierarchicalTarget(30, gamma=0.7, orthonormal=orthonormal, rng=4)
    assert (t.d1, t.D) == (5, 465)
    assert t.directions.shape == (5, 465)
    np.testing.assert_allclose(np.linalg.norm(t.directions, axis=1), 1.0, rtol=1e-13)
    if orthonormal:
        np.testing.assert_allclose(t.directions @ t.directions.T, np.eye(5), atol=1e-13)
    assert np.sum(t.weights**2) == pytest.approx(1.0, rel=1e-13)
    assert np.all(np.diff(np.abs(t.weights)) < 0)
    assert set(np.sign(t.weights)) <= {-1.0, 1.0}
    X, y = t.sample(10, rng=1)
    assert X.shape == (10, 30) and y.shape == (10,)


def test_labels_follow_the_definition():
    t = hm.HierarchicalTarget(8, q=3, eps=0.6, gamma=0.5, g="tanh", rng=2)
    X = np.random.default_rng(0).standard_normal((20, 8))
    h = hm.hermite_features(X, 3) @ t.directions.T
    h2 = (h**2 - 1) @ t.weights / math.sqrt(2)
    np.testing.assert_allclose(t(X), t.g(h2), rtol=1e-12)


def test_tanh_link_is_standardised():
    t = hm.HierarchicalTarget(10, g="tanh", rng=0)
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / math.sqrt(2 * math.pi)
    assert np.sum(w * t.g(z)) == pytest.approx(0.0, abs=1e-14)
    assert np.sum(w * t.g(z) ** 2) == pytest.approx(1.0, rel=1e-12)
    assert hm.HierarchicalTarget(10, g="id", rng=0).nu1 == pytest.approx(1.0, rel=1e-12)
    assert 0 < t.nu1 < 1


def test_h2_variance_exact_against_quadrature(gauss_grid):
    # d = 3, d1 = 3 (eps = 1): h2 is a degree-4 polynomial per axis, so 5 Gauss–Hermite nodes are exact.
    for orthonormal in (True, False):
        t = hm.HierarchicalTarget(3, eps=1.0, gamma=0.6, orthonormal=orthonormal, rng=5)
        pts, wts = gauss_grid(3, 5)
        h = t.first_layer(pts)
        h2 = t.second_layer(h)
        np.testing.assert_allclose(wts @ h, 0.0, atol=1e-12)
        gram = t.directions @ t.directions.T
        np.testing.assert_allclose((h * wts[:, None]).T @ h, gram, atol=1e-12)  # Var h_i = |A_i|^2 = 1
        assert wts @ h2 == pytest.approx(0.0, abs=1e-12)
        assert wts @ h2**2 == pytest.approx(t.h2_variance(), rel=1e-11)


def test_h2_variance_monte_carlo_and_gaussian_equivalent():
    t = hm.HierarchicalTarget(16, gamma=0.5, rng=8)
    _, y = t.sample(300_000, rng=9)
    se = np.sqrt(np.var(y**2) / y.size)  # standard error of the second moment
    assert abs(np.mean(y**2) - t.h2_variance()) <= 5 * se
    assert t.h2_variance() > 1.05  # at d = 16 the real model is visibly off the Gaussian-equivalent value
    _, yg = t.sample(200_000, rng=9, model="gaussian-equivalent")
    assert t.h2_variance(model="gaussian-equivalent") == pytest.approx(1.0, rel=1e-12)
    assert abs(np.mean(yg**2) - 1.0) <= 5 * np.sqrt(np.var(yg**2) / yg.size)


def test_same_seed_same_arrays():
    a = hm.HierarchicalTarget(12, gamma=0.4, rng=123)
    b = hm.HierarchicalTarget(12, gamma=0.4, rng=np.random.SeedSequence(123))
    np.testing.assert_array_equal(a.directions, b.directions)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.sample(50, rng=7)[1], b.sample(50, rng=np.random.default_rng(7))[1])
    rng = np.random.default_rng(7)
    first, second = a.sample(20, rng)[0], a.sample(30, rng)[0]
    np.testing.assert_array_equal(np.vstack([first, second]), a.sample(50, rng=7)[0])
    assert not np.array_equal(a.directions, hm.HierarchicalTarget(12, gamma=0.4, rng=124).directions)


@pytest.mark.parametrize("kwargs,match", [
    (dict(d=0), "d must be"),
    (dict(d=10.5), "d must be"),
    (dict(d=10, q=0), "q must be"),
    (dict(d=10, gamma=-0.1), "gamma must be"),
    (dict(d=10, eps=-1.0), "eps must be"),
    (dict(d=10, eps=3.0), "d1 = floor"),
    (dict(d=10, eps=float("nan")), "eps must be"),
    (dict(d=10, g="relu"), "unknown g"),
    (dict(d=10, g=lambda z: np.ones(2)), "same shape"),
    (dict(d=10, rng=-3), "rng"),
    (dict(d=10, rng="abc"), "rng"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hm.HierarchicalTarget(**kwargs)


def test_bad_sample_calls():
    t = hm.HierarchicalTarget(6, rng=0)
    with pytest.raises(ValueError, match="n must be"):
        t.sample(0)
    with pytest.raises(ValueError, match="shape"):
        t(np.ones((3, 5)))
    with pytest.raises(ValueError, match="only for q = 2"):
        hm.HierarchicalTarget(6, q=3, rng=0).h2_variance()
