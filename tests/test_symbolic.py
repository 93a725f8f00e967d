"""Exact Gaussian expectations and the symbolic objects the book's derivations start from."""

import numpy as np
import pytest
import sympy as sp

import hiermodel as hm
from hiermodel.symbolic import gaussian_expectation, gaussian_moment, hermite_monomials, symmetric_matrix


def test_gaussian_moments():
    assert [gaussian_moment(k) for k in range(7)] == [1, 0, 1, 0, 3, 0, 15]
    z = sp.Symbol("z", real=True)
    assert gaussian_expectation((z**2 - 1) ** 3, [z]) == 8


@pytest.mark.parametrize("q", [1, 2, 3])
def test_hermite_monomials_are_the_lift(q):
    x = sp.symbols("x0:3", real=True)
    point = np.array([[0.7, -1.3, 0.4]])
    values = [float(f.subs(dict(zip(x, point[0])))) for f in hermite_monomials(x, q, normalised=True)]
    np.testing.assert_allclose(values, hm.hermite_features(point, q)[0], rtol=1e-13, atol=1e-13)


def test_hermite_monomials_raw_norms_and_orthogonality():
    x = sp.symbols("x0:2", real=True)
    raw = hermite_monomials(x, 3)
    assert raw == [x[0]**3 - 3 * x[0], x[0]**2 * x[1] - x[1], x[0] * x[1]**2 - x[0], x[1]**3 - 3 * x[1]]
    assert [gaussian_expectation(f**2, x) for f in raw] == [6, 2, 2, 6]
    assert all(gaussian_expectation(f * g, x) == 0 for i, f in enumerate(raw) for g in raw[i + 1:])


def test_symmetric_matrix():
    M = symmetric_matrix("a", 3)
    assert M == M.T and len(M.free_symbols) == 6
    assert M[0, 1] == sp.Symbol("a1", real=True) and M[1, 1] == sp.Symbol("a3", real=True)
    with pytest.raises(ValueError, match="d must be"):
        symmetric_matrix("a", 0)
