"""The exact population matrix E C_hat against Gauss–Hermite quadrature; operator and matrix forms agree."""


import numpy as np
import pytest

import hiermodel as hm
from hiermodel.population import population_matrix, population_operator, spike_strengths


@pytest.mark.parametrize("orthonormal", [True, False])
def test_population_matrix_is_exact(orthonormal, gauss_grid):
    # y F F^T has degree <= 8 per axis, so 5 nodes per axis integrate E[y (F F^T - I)] exactly.
    t = hm.HierarchicalTarget(3, eps=1.0, gamma=0.6, orthonormal=orthonormal, seed=5)
    pts, wts = gauss_grid(3, 5)
    F, y = hm.hermite_features(pts, 2), t(pts)
    C = (F * (wts * y)[:, None]).T @ F - (wts @ y) * np.eye(t.D)
    np.testing.assert_allclose(population_matrix(t), C, atol=1e-12)


def test_gaussian_equivalent_part_is_the_spikes():
    t = hm.HierarchicalTarget(10, gamma=0.3, seed=1)
    P = population_matrix(t, gaussian_equivalent=True)
    np.testing.assert_allclose(t.directions @ P @ t.directions.T, np.diag(spike_strengths(t)), atol=1e-12)
    # the real model adds a non-spike part of order 1/d, not zero
    assert np.abs(np.linalg.eigvalsh(population_matrix(t) - P)).max() > 0.1


def test_operator_matches_matrix():
    t = hm.HierarchicalTarget(9, gamma=0.8, seed=2)
    V = np.random.default_rng(0).standard_normal((t.D, 4))
    np.testing.assert_allclose(population_operator(t).matmat(V), population_matrix(t) @ V, atol=1e-12)


def test_bad_targets():
    with pytest.raises(ValueError, match="g = 'id'"):
        population_matrix(hm.HierarchicalTarget(6, g="tanh", seed=0))
    with pytest.raises(ValueError, match="q = 2"):
        population_matrix(hm.HierarchicalTarget(6, q=3, seed=0))
    with pytest.raises(ValueError, match="q = 2"):
        population_operator(hm.HierarchicalTarget(6, q=3, seed=0))
