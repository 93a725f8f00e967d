"""The Hermite lift ``F(x) = He_q(x)`` of SPEC §1 (paper Eqs. 2.1–2.2).

Coordinates are indexed by multisets ``i_1 <= ... <= i_q`` of ``{0..d-1}`` in lexicographic order
(``itertools.combinations_with_replacement``). A multiset with multiplicities ``k_j`` maps to
``prod_j He_{k_j}(x_j) / sqrt(k_j!)``, so that ``E F = 0`` and ``Cov F = I_D`` for ``x ~ N(0, I_d)``.

For ``q = 2`` a feature-space vector ``a`` is also a symmetric ``d x d`` matrix ``M`` with
``<a, F(x)> = (x^T M x - tr M) / sqrt 2`` and ``|a| = ||M||_F``; :func:`vector_to_matrix` and
:func:`matrix_to_vector` convert between the two.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from ._checks import check_inputs, check_int


def feature_dimension(d: int, q: int) -> int:
    """``D = binom(d + q - 1, q)``, the number of degree-``q`` multisets of ``d`` coordinates."""
    d = check_int("d", d, minimum=1)
    q = check_int("q", q, minimum=1)
    return math.comb(d + q - 1, q)


@functools.lru_cache(maxsize=32)
def _lift_tables(d: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Per feature and slot: which coordinate, and which Hermite degree it contributes (0 = factor 1).

    A run of ``k`` equal indices contributes ``He_k`` once, at its first slot.
    """
    index = np.array(list(itertools.combinations_with_replacement(range(d), q)), dtype=np.intp)
    degree = np.zeros_like(index)
    for s in range(q):
        starts_run = np.ones(len(index), dtype=bool) if s == 0 else index[:, s] != index[:, s - 1]
        run = np.zeros(len(index), dtype=np.intp)
        for t in range(s, q):
            run += (index[:, t] == index[:, s]) & starts_run
        degree[:, s] = run
    index.setflags(write=False)
    degree.setflags(write=False)
    return index, degree


def multisets(d: int, q: int) -> np.ndarray:
    """The ``(D, q)`` array of sorted index tuples that label the feature coordinates."""
    return _lift_tables(check_int("d", d, minimum=1), check_int("q", q, minimum=1))[0]


def normalised_hermite(x: np.ndarray, k_max: int) -> np.ndarray:
    """``He_k(x) / sqrt(k!)`` for ``k = 0..k_max``, stacked on a new last axis (three-term recurrence)."""
    out = np.empty(x.shape + (k_max + 1,), dtype=x.dtype)
    out[..., 0] = 1.0
    if k_max >= 1:
        out[..., 1] = x
    for k in range(1, k_max):
        # He_{k+1} = x He_k - k He_{k-1}, rewritten for the normalised polynomials.
        out[..., k + 1] = (x * out[..., k] - math.sqrt(k) * out[..., k - 1]) / math.sqrt(k + 1)
    return out


def hermite_features(X, q: int, *, dtype=np.float64) -> np.ndarray:
    """The lift ``F(X)`` of shape ``(n, D)``, ``D = binom(d + q - 1, q)`` (SPEC §1).

    Parameters
    ----------
    X : array of shape (n, d)
        Inputs, one sample per row.
    q : int
        Degree of the lift, ``q >= 1``.
    dtype : numpy float dtype
        Precision of the result (``float32`` halves memory for large ``n``).
    """
    q = check_int("q", q, minimum=1)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    X = check_inputs(X, X.shape[1]).astype(dtype, copy=False)
    index, degree = _lift_tables(X.shape[1], q)
    P = normalised_hermite(X, q)  # (n, d, q + 1)
    F = P[:, index[:, 0], degree[:, 0]]
    for s in range(1, q):
        live = degree[:, s] > 0  # slots inside a run multiply by He_0 = 1: skip them
        if live.all():
            F *= P[:, index[:, s], degree[:, s]]
        elif live.any():
            F[:, live] *= P[:, index[live, s], degree[live, s]]
    return F


def _check_q2_vectors(a, d):
    a = np.asarray(a, dtype=float)
    D = feature_dimension(d, 2)
    if a.shape[-1] != D:
        raise ValueError(f"last axis must have length D = binom(d+1, 2) = {D} for d = {d}, got {a.shape}")
    return a


def vector_to_matrix(a, d: int) -> np.ndarray:
    """For ``q = 2``: the symmetric matrix ``M`` with ``<a, F(x)> = (x^T M x - tr M) / sqrt 2``.

    Works on a stack of vectors ``(..., D)`` and returns ``(..., d, d)``.
    """
    a = _check_q2_vectors(a, d)
    i, j = np.triu_indices(d)
    scale = np.where(i == j, 1.0, 1.0 / math.sqrt(2.0))
    M = np.zeros(a.shape[:-1] + (d, d))
    M[..., i, j] = a * scale
    M[..., j, i] = a * scale
    return M


def matrix_to_vector(M) -> np.ndarray:
    """Inverse of :func:`vector_to_matrix`: symmetric ``(..., d, d)`` to feature vectors ``(..., D)``."""
    M = np.asarray(M, dtype=float)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"M must be a (stack of) square matrices, got shape {M.shape}")
    if not np.allclose(M, np.swapaxes(M, -1, -2)):
        raise ValueError("M must be symmetric")
    d = M.shape[-1]
    i, j = np.triu_indices(d)
    scale = np.where(i == j, 1.0, math.sqrt(2.0))
    return M[..., i, j] * scale
