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
