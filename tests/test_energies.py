"""Hermite-degree energies of the target (issue 14, item 2): SymPy product formula, exact SymPy projection,
Monte Carlo projection, bad inputs."""

import itertools
import math
import random

import numpy as np
import pytest
import sympy as sp

import hiermodel as hm
from hiermodel import theory as th
from hiermodel.hermite import hermite_features
from hiermodel.symbolic import gaussian_expectation, symmetric_matrix


def _rational_symmetric(d, seed):
    rnd = random.Random(seed)
    M = sp.zeros(d, d)
    for a in range(d):
        for b in range(a, d):
            M[a, b] = M[b, a] = sp.Rational(rnd.randint(-9, 9), rnd.randint(1, 7))
    return M


@pytest.mark.parametrize("symbolic", [False, True])
def test_product_formula_degree_two_projection(symbolic):
    # I_2(M) I_2(N) = J_4 + 4 I_2(MN) + 2 tr(MN), with J_4 orthogonal to every polynomial of degree <= 3 (so it
    # is the degree-4 chaos part): checked exactly at d = 2 for rational matrices and for generic symbolic ones.
    d = 2
    x = sp.symbols(f"x0:{d}", real=True)
    X = sp.Matrix(x)
    if symbolic:
        M, N = symmetric_matrix("m", d), symmetric_matrix("n", d)
    else:
        M, N = _rational_symmetric(d, 1), _rational_symmetric(d, 2)

    def I2(A):
        return (X.T * A * X)[0, 0] - A.trace()

    MN = M * N
    rest = sp.expand(I2(M) * I2(N) - 4 * I2(MN) - 2 * MN.trace())
    assert sp.Poly(rest, *x).total_degree() == 4
    for k in range(4):
        for powers in itertools.combinations_with_replacement(x, k):
            assert sp.simplify(gaussian_expectation(rest * sp.Mul(*powers), x)) == 0, powers
    # and the degree-4 part is not zero: the constant 4 is not absorbing it
    assert sp.simplify(gaussian_expectation(rest**2, x)) != 0


@pytest.mark.parametrize("d, eps, gamma, rng, orthonormal", [(3, 1.0, 0.4, 0, True), (3, 0.5, 0.0, 1, True),
                                                               (2, 1.0, 0.7, 2, False)])
def test_energies_equal_exact_symbolic_projection(d, eps, gamma, rng, orthonormal):
    # y built in SymPy from the target's own direction matrices and weights; E_0 = (E y)^2, E_2 = sum over the
    # orthonormal degree-2 basis {(x_a^2 - 1)/sqrt 2, x_a x_b} of (E y b)^2, E_4 = E y^2 - E_0 - E_2 (y is even).
    t = hm.HierarchicalTarget(d, eps=eps, gamma=gamma, rng=rng, orthonormal=orthonormal)
    x = sp.symbols(f"x0:{d}", real=True)
    X = sp.Matrix(x)
    y = 0
    for lam, M in zip(t.weights, t.direction_matrices()):
        h = ((X.T * sp.Matrix(M) * X)[0, 0] - float(np.trace(M))) / math.sqrt(2)
        y += float(lam) * (h**2 - 1) / math.sqrt(2)
    y = sp.expand(y)
    basis = [(x[a] ** 2 - 1) / math.sqrt(2) for a in range(d)] + [x[a] * x[b] for a in range(d)
                                                                  for b in range(a + 1, d)]
    e0 = float(gaussian_expectation(y, x)) ** 2
    e2 = sum(float(gaussian_expectation(y * b, x)) ** 2 for b in basis)
    total = float(gaussian_expectation(y * y, x))
    assert total == pytest.approx(t.h2_variance() + e0, rel=1e-10)
    got = th.hermite_energies(t)
    assert set(got) == {0, 2, 4}
    assert got[0] == pytest.approx(e0 / total, abs=1e-12)
    assert got[2] == pytest.approx(e2 / total, rel=1e-9)
    assert got[4] == pytest.approx((total - e0 - e2) / total, rel=1e-9)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("eps, rng", [(0.5, 0), (1.0, 1)])
def test_energies_match_monte_carlo_projection(eps, rng):
    # Least squares of y on {1} and the full degree-2 basis (the q = 2 lift, orthonormal under N(0, I)), n = 200k,
    # d = 6. Its R^2 estimates E_2 / Var y. Tolerance: 5 standard errors of the plug-in statistic
    # T = |mean(y F)|^2 / var(y) (delta method: influence (2 c.(y F - c) - T ((y - ybar)^2 - v)) / v), plus the
    # O(D/n) small-sample bias of a D-coefficient fit, bounded by 3 D / n.
    d, n = 6, 200_000
    t = hm.HierarchicalTarget(d, eps=eps, gamma=0.4, rng=rng)
    X, y = t.sample(n, rng=np.random.default_rng(100 + rng))
    F = hermite_features(X, 2)
    design = np.column_stack([np.ones(n), F])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    yc = y - y.mean()
    r2 = 1.0 - resid @ resid / (yc @ yc)
    v = yc @ yc / n
    c = (F * y[:, None]).mean(axis=0)
    T = c @ c / v
    influence = (2.0 * ((F * y[:, None]) - c) @ c - T * (yc**2 - v)) / v
    se = influence.std() / math.sqrt(n)
    got = th.hermite_energies(t)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12) and got[0] < 1e-20
    assert 0.0 < se < 0.02
    assert abs(r2 - got[2]) < 5.0 * se + 3.0 * F.shape[1] / n, (r2, got[2], se)
    assert abs(T - got[2]) < 5.0 * se + 3.0 * F.shape[1] / n, (T, got[2], se)


def test_energies_agree_with_variance_and_gaussian_equivalent():
    t = hm.HierarchicalTarget(10, gamma=0.3, rng=4, orthonormal=False)
    got = th.hermite_energies(t)
    assert all(v >= 0 for v in got.values()) and sum(got.values()) == pytest.approx(1.0, abs=1e-12)
    assert th.hermite_energies(t, model="gaussian-equivalent") == {0: 0.0, 2: 1.0, 4: 0.0}


def test_energies_bad_inputs():
    with pytest.raises(ValueError, match="g = 'id' only"):
        th.hermite_energies(hm.HierarchicalTarget(6, g="tanh", rng=0))
    with pytest.raises(ValueError, match="g = 'id' only"):
        th.hermite_energies(hm.HierarchicalTarget(6, g=np.sin, rng=0))
    with pytest.raises(ValueError, match="q = 2 only"):
        th.hermite_energies(hm.HierarchicalTarget(4, q=3, rng=0))
    with pytest.raises(ValueError, match="model"):
        th.hermite_energies(hm.HierarchicalTarget(6, rng=0), model="bogus")
