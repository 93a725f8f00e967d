"""The exact population matrix E C_hat against Gauss–Hermite quadrature; operator and matrix forms agree."""

import math

import numpy as np
import pytest

import hiermodel as hm
from hiermodel import HierarchicalTarget
from hiermodel.population import link_constants, population_matrix, population_operator, spike_strengths


@pytest.mark.parametrize("orthonormal", [True, False])
def test_population_matrix_is_exact(orthonormal, gauss_grid):
    # y F F^T has degree <= 8 per axis, so 5 nodes per axis integrate E[y (F F^T - I)] exactly.
    t = hm.HierarchicalTarget(3, eps=1.0, gamma=0.6, orthonormal=orthonormal, rng=5)
    pts, wts = gauss_grid(3, 5)
    F, y = hm.hermite_features(pts, 2), t(pts)
    C = (F * (wts * y)[:, None]).T @ F - (wts @ y) * np.eye(t.D)
    np.testing.assert_allclose(population_matrix(t), C, atol=1e-12)


def test_gaussian_equivalent_part_is_the_spikes():
    t = hm.HierarchicalTarget(10, gamma=0.3, rng=1)
    P = population_matrix(t, model="gaussian-equivalent")
    np.testing.assert_allclose(t.directions @ P @ t.directions.T, np.diag(spike_strengths(t)), atol=1e-12)
    # the real model adds a non-spike part of order 1/d, not zero
    assert np.abs(np.linalg.eigvalsh(population_matrix(t) - P)).max() > 0.1


def test_operator_matches_matrix():
    t = hm.HierarchicalTarget(9, gamma=0.8, rng=2)
    V = np.random.default_rng(0).standard_normal((t.D, 4))
    np.testing.assert_allclose(population_operator(t).matmat(V), population_matrix(t) @ V, atol=1e-12)


def test_bad_targets():
    with pytest.raises(ValueError, match="g = 'id'"):
        population_matrix(hm.HierarchicalTarget(6, g="tanh", rng=0))
    with pytest.raises(ValueError, match="q = 2"):
        population_matrix(hm.HierarchicalTarget(6, q=3, rng=0))
    with pytest.raises(ValueError, match="q = 2"):
        population_operator(hm.HierarchicalTarget(6, q=3, rng=0))


def test_link_constants_identity_and_tanh():
    # g = id: theta_i = sqrt2 lambda_i and E[y^2 h_i^2] = 1 + 4 lambda_i^2 (sum lambda^2 = 1), within Monte Carlo error.
    t = HierarchicalTarget(20, gamma=0.4, rng=3)
    c = link_constants(t, samples=400_000, rng=0)
    assert np.all(np.abs(c["theta"] - math.sqrt(2) * t.weights) < 5 * c["theta_se"])
    assert np.allclose(c["noise"], 1 + 4 * t.weights**2, rtol=0.05)
    # tanh: Stein's form with g', g'' on the same sample of h.
    tt = HierarchicalTarget(20, gamma=0.4, g="tanh", rng=3)
    ct = link_constants(tt, samples=400_000, rng=0)
    h = np.random.default_rng(0).standard_normal((400_000, tt.d1))
    h2 = tt.second_layer(h)
    a = float(tt.g(np.array([1.0]))[0] / np.tanh(1.0))
    gp, gpp = a / np.cosh(h2) ** 2, -2 * a * np.tanh(h2) / np.cosh(h2) ** 2
    stein = (math.sqrt(2) * tt.weights * gp.mean() + 2 * tt.weights**2 * (gpp[:, None] * h**2).mean(0)) / tt.g(h2).std()
    assert np.all(np.abs(ct["theta"] - stein) < 5 * ct["theta_se"])
    with pytest.raises(ValueError):
        link_constants(t, samples=1)


@pytest.mark.parametrize("d", [12, 38])  # D = 78 (dense eigh) and D = 741 (ARPACK on the operator)
def test_population_ceiling(d):
    from hiermodel.population import population_ceiling

    t = HierarchicalTarget(d, gamma=0.4, rng=2)
    ge = population_ceiling(t, model="gaussian-equivalent")
    assert np.allclose(ge["cos2"], 1.0) and np.allclose(ge["eigenvalues"], np.sqrt(2) * t.weights)
    real = population_ceiling(t)
    P = real["vectors"]
    assert np.allclose(P @ P.T, np.eye(t.d1), atol=1e-8)
    # Each returned vector is an eigenvector of the exact E C_hat with its eigenvalue (operator or matrix route).
    op = population_operator(t)
    assert np.allclose(op.matmat(P.T), P.T * real["eigenvalues"], atol=1e-7)
    assert np.all(np.diff(np.abs(real["eigenvalues"])) <= 1e-12)
    assert np.all(real["cos2"] < 1.0) and np.all(real["cos2"] > 0.1)  # B6: below 1 at finite d


def test_nonspike_norm_matches_the_dense_matrix():
    from hiermodel.population import nonspike_norm

    t = HierarchicalTarget(9, gamma=1.0, rng=0)
    S = population_matrix(t) - population_matrix(t, model="gaussian-equivalent")
    assert nonspike_norm(t) == pytest.approx(np.linalg.norm(S, 2), rel=1e-7)
    assert nonspike_norm(t) > 0.5  # SPEC B6: not small at d = 9
    with pytest.raises(ValueError):
        nonspike_norm(HierarchicalTarget(9, gamma=1.0, g="tanh", rng=0))


@pytest.mark.parametrize("model", ["gaussian-equivalent", "hermite"])
def test_noise_spectrum(model):
    from hiermodel.population import noise_spectrum

    t = HierarchicalTarget(10, gamma=0.4, rng=1)  # D = 55, d1 = 3
    n = 40 * t.D
    out = noise_spectrum(t, n, 7, model=model)
    # By hand, with the same draw: raw labels, C_hat - E C_hat, projected off span(a_i).
    Z, y = t.sample(n, 7, model=model)
    F = Z if model == "gaussian-equivalent" else hm.hermite_features(Z, 2)
    delta = (F.T * y) @ F / n - y.mean() * np.eye(t.D) - population_matrix(t, model=model)
    P = np.eye(t.D) - t.directions.T @ t.directions
    perp = np.linalg.eigvalsh(P @ delta @ P)
    np.testing.assert_allclose(out["full"], np.linalg.eigvalsh(delta), atol=1e-10)
    np.testing.assert_allclose(out["perp"], np.sort(perp[np.argsort(np.abs(perp))[t.d1:]]), atol=1e-10)
    np.testing.assert_array_equal(out["labels"], y)
    assert out["perp"].shape == (t.D - t.d1,)
    if model == "gaussian-equivalent":  # C1: the edge is near 2 sqrt(D/n) (here within 30%)
        assert 0.9 < np.abs(out["perp"]).max() / (2 * np.sqrt(t.D / n)) < 1.3
