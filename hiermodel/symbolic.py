"""Exact Gaussian expectations of polynomials, for the book's SymPy derivations."""

from __future__ import annotations

import sympy as sp


def gaussian_moment(k: int) -> int:
    """``E Z^k`` for ``Z ~ N(0, 1)``: ``(k-1)!!`` for even ``k``, 0 for odd ``k``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return 0 if k % 2 else int(sp.factorial2(k - 1))


def gaussian_expectation(expr, variables):
    """``E expr`` over independent standard Gaussian ``variables``; ``expr`` must be polynomial in them.

    Other symbols in ``expr`` are treated as constants. Exact: every monomial is replaced by its moment.
    """
    variables = list(variables)
    poly = sp.Poly(sp.expand(expr), *variables)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        moment = 1
        for k in powers:
            moment *= gaussian_moment(k)
            if moment == 0:
                break
        total += coeff * moment
    return sp.expand(total)


def hermite_monomials(variables, q: int, *, normalised: bool = False) -> list:
    """The degree-``q`` Hermite products of ``variables``, one per multiset, in :func:`hiermodel.multisets` order.

    A multiset with multiplicities ``k_j`` gives ``prod_j He_{k_j}(x_j)`` (probabilists' Hermite polynomials),
    expanded. ``normalised=True`` divides each by ``sqrt(prod_j k_j!)``, which makes the list the symbolic form of
    :func:`hiermodel.hermite_features` (the default leaves the normalisation to be derived).
    """
    from collections import Counter

    from .hermite import multisets

    variables = list(variables)
    out = []
    for index in multisets(len(variables), q):
        counts = Counter(int(j) for j in index)
        expr = sp.Mul(*(sp.hermite_prob(k, variables[j]) for j, k in counts.items()))
        if normalised:
            expr = expr / sp.sqrt(sp.Mul(*(sp.factorial(k) for k in counts.values())))
        out.append(sp.expand(expr))
    return out


def symmetric_matrix(name: str, d: int) -> sp.Matrix:
    """A generic symmetric ``d x d`` SymPy matrix: ``d (d + 1) / 2`` free real symbols ``name0, name1, ...``.

    The symbols fill the upper triangle row by row and are mirrored below the diagonal.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    entries = iter(sp.symbols(f"{name}0:{d * (d + 1) // 2}", real=True))
    M = sp.zeros(d, d)
    for a in range(d):
        for b in range(a, d):
            M[a, b] = M[b, a] = next(entries)
    return M
