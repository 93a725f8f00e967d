"""q = 3 (claim B4, chapter 7): the real model's exact population matrix, the tensor form of the lift, the registry."""

import itertools
import math

import numpy as np
import pytest

import hiermodel as hm
from hiermodel import figures, population, theory


def _quadrature(target, nodes=7):
    """Exact ``E[y (F F^T - I)]`` and ``Var y`` by tensor Gauss-Hermite quadrature (degree <= 2 nodes - 1 per axis).

    The integrands are polynomials of degree at most 12 in each coordinate (``y`` of degree 6, ``F F^T`` of 6), so
    seven nodes per axis integrate them exactly: an independent route to the same numbers.
    """
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / math.sqrt(2 * math.pi)
    X = np.array(list(itertools.product(z, repeat=target.d)))
    W = np.prod(np.array(list(itertools.product(w, repeat=target.d))), axis=1)
    F = hm.hermite_features(X, 3)
    y = target(X)
    C = (F * (W * y)[:, None]).T @ F - np.sum(W * y) * np.eye(target.D)
    return C, float(np.sum(W * y * y) - np.sum(W * y) ** 2)


@pytest.mark.parametrize("d, orthonormal, seed", [(3, True, 0), (4, True, 1), (4, False, 2)])
def test_population_matrix_equals_exact_quadrature(d, orthonormal, seed):
    t = hm.HierarchicalTarget(d, q=3, d1=2, gamma=0.7, orthonormal=orthonormal, rng=seed)
    C, var = _quadrature(t)
    pop = population.cubic_population(t)
    assert np.abs(pop["matrix"] - C).max() < 1e-11 * np.abs(C).max()
    assert pop["h2_variance"] == pytest.approx(var, rel=1e-11)
    spikes = math.sqrt(2.0) * (t.directions.T * t.weights) @ t.directions
    np.testing.assert_allclose(pop["nonspike"], C - spikes, atol=1e-11 * np.abs(C).max())
    assert pop["nonspike_norm"] == pytest.approx(np.abs(np.linalg.eigvalsh(C - spikes)).max(), rel=1e-10)


def test_population_operator_matches_dense_route():
    t = hm.HierarchicalTarget(7, q=3, d1=4, gamma=1.0, rng=3)
    dense = population.cubic_population(t, dense=True)
    sparse = population.cubic_population(t, dense=False)
    assert "matrix" not in sparse
    assert sparse["nonspike_norm"] == pytest.approx(dense["nonspike_norm"], rel=1e-8)
    assert sparse["h2_variance"] == pytest.approx(dense["h2_variance"], rel=1e-12)
    np.testing.assert_allclose(sparse["cos2"], dense["cos2"], atol=1e-8)
    np.testing.assert_allclose(np.sort(np.abs(sparse["eigenvalues"])), np.sort(np.abs(dense["eigenvalues"])),
                               rtol=1e-8)
    V = np.random.default_rng(0).standard_normal((t.D, 3))
    np.testing.assert_allclose(population.cubic_population_operator(t).matmat(V), dense["matrix"] @ V, atol=1e-10)


def test_population_of_one_pure_cube_by_hand():
    # A = the feature He_3(x_0)/sqrt 6: E h^4 = E He_3^4 / 36 = 93, so E[h^2 (h^2 - 1)] = 92 = 2 + connected 90
    t = hm.HierarchicalTarget(3, q=3, d1=1, gamma=0.0, rng=0)
    t.directions = np.zeros((1, t.D))
    t.directions[0, 0] = 1.0  # the multiset (0, 0, 0)
    t.weights = np.array([1.0])
    pop = population.cubic_population(t)
    assert pop["matrix"][0, 0] == pytest.approx(92 / math.sqrt(2), rel=1e-13)
    assert pop["h2_variance"] == pytest.approx((93 - 1) / 2, rel=1e-13)  # Var((h^2 - 1)/sqrt 2)


def test_wick_counts_add_up_to_the_fourth_moment():
    # E He_3(Z)^4 from Gaussian moments: He_3 = z^3 - 3z
    coeffs = np.polynomial.polynomial.polypow([0, -3, 0, 1], 4)
    moments = [0 if k % 2 else math.prod(range(k - 1, 0, -2)) for k in range(len(coeffs))]
    assert float(np.dot(coeffs, moments)) == 3348
    c = population.CUBIC_WICK_COUNTS
    assert 3 * c["disconnected"] + c["tetrahedron"] + 6 * c["double-single cycle"] == 3348


def test_cubic_tensors_give_the_lift():
    # <a, F(x)> = <T, He_3(x)> with He_3(x)_ijk = x_i x_j x_k - (x_i d_jk + x_j d_ik + x_k d_ij), |a|^2 = 6 |T|^2
    d = 5
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, hm.feature_dimension(d, 3)))
    T = population.cubic_tensors(a, d)
    assert T.shape == (2, d, d, d)
    for perm in itertools.permutations(range(3)):
        np.testing.assert_array_equal(T, T.transpose(0, *(p + 1 for p in perm)))
    np.testing.assert_allclose(np.sum(a**2, axis=1), 6 * np.sum(T**2, axis=(1, 2, 3)), rtol=1e-13)
    x = rng.standard_normal((4, d))
    eye = np.eye(d)
    He3 = (np.einsum("ni,nj,nk->nijk", x, x, x) - np.einsum("ni,jk->nijk", x, eye)
           - np.einsum("nj,ik->nijk", x, eye) - np.einsum("nk,ij->nijk", x, eye))
    np.testing.assert_allclose(np.einsum("rijk,nijk->nr", T, He3), hm.hermite_features(x, 3) @ a.T, rtol=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="q = 3"):
        population.cubic_population(hm.HierarchicalTarget(6, q=2, rng=0))
    with pytest.raises(ValueError, match="g = 'id'"):
        population.cubic_population(hm.HierarchicalTarget(4, q=3, d1=2, g="tanh", rng=0))
    with pytest.raises(ValueError, match="part"):
        population.cubic_population_operator(hm.HierarchicalTarget(4, q=3, d1=2, rng=0), part="spikes")
    with pytest.raises(ValueError, match="binom"):
        population.cubic_tensors(np.ones(7), 4)
    with pytest.raises(ValueError, match="lo < hi"):
        figures.cubic_sizes(8, octaves=(3, 3))


def test_cubic_grid_is_chapter_7s_experiment():
    g = figures.grid("cubic", "ci")
    tasks = g.tasks()
    assert {t.q for t in tasks} == {3} and {t.d1 for t in tasks} == {5} and {t.d for t in tasks} == {8, 10, 12}
    assert {t.model for t in tasks} == {"hermite", "gaussian-equivalent"} and len(tasks) == 24
    for t in tasks:
        D = hm.feature_dimension(t.d, 3)
        assert min(t.ns) == D // 2 and max(t.ns) == 128 * D and len(t.ns) == 17
        ratios = np.diff(np.log(t.ns))
        np.testing.assert_allclose(ratios, math.log(2) / 2, atol=2e-2)
    paper = figures.grid("cubic", "paper").tasks()
    assert {t.d for t in paper} == {14, 20, 26} and max(max(t.ns) / t.D for t in paper) == 256


def test_estimator_at_q3_uses_the_generic_route_exactly():
    # the dense route at q = 3 (lift + signed syrk sums) against C_hat formed here from the lift, both models
    t = hm.HierarchicalTarget(5, q=3, d1=3, gamma=1.0, rng=5)
    for model, fit in (("hermite", "fit"), ("gaussian-equivalent", "fit_features")):
        Z, y = t.sample(4000, rng=6, model=model)
        F = Z if model == "gaussian-equivalent" else hm.hermite_features(Z, 3)
        w = (y - y.mean()) / y.std()
        C = (F * w[:, None]).T @ F / len(w) - w.mean() * np.eye(t.D)
        vals, vecs = np.linalg.eigh(C)
        top = np.argsort(-np.abs(vals))[:3]
        est = getattr(hm.LayerwiseSpectral(3, q=3, method="dense", dtype=np.float64), fit)(Z, y)
        assert est.method_ == "dense"
        np.testing.assert_allclose(np.sort(est.eigenvalues_), np.sort(vals[top]), rtol=1e-9, atol=1e-12)
        assert hm.metrics.subspace_overlap(vecs[:, top].T, est.directions_) == pytest.approx(1.0, abs=1e-9)
        path = hm.LayerwiseSpectral(3, q=3, method="dense", dtype=np.float64).fit_path(
            Z, y, [2000, 4000], features=model == "gaussian-equivalent")
        np.testing.assert_allclose(np.sort(path[-1].eigenvalues_), np.sort(est.eigenvalues_), rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_q3_lift_is_the_product_of_normalised_hermite_polynomials(dtype):
    # the fast q = 3 route against the definition, multiset by multiset, in the same order of multiplication:
    # prod over runs of He_k(x_j) / sqrt(k!) (bitwise: the values the generic route gave before)
    for d in (1, 2, 3, 6):
        X = np.random.default_rng(d).standard_normal((300, d)).astype(dtype)
        P = hm.hermite.normalised_hermite(X, 3)
        ref = np.empty((300, hm.feature_dimension(d, 3)), dtype=dtype)
        for c, (i, j, k) in enumerate(hm.multisets(d, 3)):
            if i == j == k:
                ref[:, c] = P[:, i, 3]
            elif i == j:
                ref[:, c] = P[:, i, 2] * P[:, k, 1]
            elif j == k:
                ref[:, c] = P[:, i, 1] * P[:, j, 2]
            else:
                ref[:, c] = P[:, i, 1] * P[:, j, 1] * P[:, k, 1]
        F = hm.hermite_features(X, 3, dtype=dtype)
        assert F.dtype == dtype and F.shape == ref.shape
        np.testing.assert_array_equal(F, ref)
