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

from ._checks import check_allocation, check_bool, check_inputs, check_int, float_dtype, real_array


def feature_dimension(d: int, q: int) -> int:
    """``D = binom(d + q - 1, q)``, the number of degree-``q`` multisets of ``d`` coordinates."""
    d = check_int("d", d, minimum=1)
    q = check_int("q", q, minimum=1)
    return math.comb(d + q - 1, q)


def _table_bytes(D, q, tuples=False):
    """Rough size of the lift's index tables: (i, j) pairs and scales for q = 2, else Python tuples then arrays."""
    return 24 * D if q == 2 and not tuples else (80 + 24 * q) * D


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
    D = feature_dimension(d, q)
    check_allocation(f"multisets(d={d}, q={q}): D = {D:,} index tuples", _table_bytes(D, q, tuples=True))
    return _lift_tables(d, q)[0]


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
    dtype = float_dtype("dtype", dtype, allowed=(np.float16, np.float32, np.float64, np.longdouble))
    X = real_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    X = check_inputs(X, X.shape[1]).astype(dtype, copy=False)
    D = feature_dimension(X.shape[1], q)
    check_allocation(f"the lift of {X.shape[0]:,} samples at d = {X.shape[1]}, q = {q} (D = {D:,} features)",
                     X.shape[0] * D * dtype.itemsize + _table_bytes(D, q))
    if q == 2:
        return _lift_q2(X)
    if q == 3:
        return _lift_q3(X)
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


@functools.lru_cache(maxsize=16)
def q2_layout(d: int):
    """Layout of the ``q = 2`` lift: ``(offsets, (i, j), scale)``.

    Feature ``(i, j)``, ``i <= j``, sits at ``offsets[i] + (j - i)`` (row-major upper triangle); ``scale`` is the
    factor between a feature vector and its symmetric matrix, ``a_ij = scale_ij M_ij`` (1 on the diagonal, sqrt 2
    off it).
    """
    offsets = np.concatenate([[0], np.cumsum(np.arange(d, 0, -1))]).astype(np.intp)
    iu = np.triu_indices(d)
    scale = np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0))
    for a in (offsets, *iu, scale):
        a.setflags(write=False)
    return offsets, iu, scale


def _lift_q2(X: np.ndarray) -> np.ndarray:
    """The ``q = 2`` lift by contiguous row slices (``d`` products of length ``d - i``), in ``X``'s dtype."""
    m, d = X.shape
    offsets = q2_layout(d)[0]
    out = np.empty((m, offsets[-1]), dtype=X.dtype)
    for i in range(d):  # a loop over coordinates, never over samples
        np.multiply(X[:, i:i + 1], X[:, i:], out=out[:, offsets[i]:offsets[i + 1]])
    diag = offsets[:-1]
    out[:, diag] -= 1.0
    out[:, diag] *= 1.0 / math.sqrt(2.0)
    return out


def _lift_q3(X: np.ndarray) -> np.ndarray:
    """The ``q = 3`` lift by contiguous column blocks (chapter 7): bitwise the generic route's values, 2-4x faster.

    For ``i <= j`` the features ``(i, j, k)``, ``k = j..d-1``, are consecutive; the first repeats ``j`` (``x_i He_2(x_j)``
    or ``He_3(x_i)``), the others are one row-broadcast product ``c_ij x_k`` with ``c_ij = x_i x_j`` or
    ``He_2(x_i)`` (normalised), in the generic route's order of multiplication.
    """
    m, d = X.shape
    P = normalised_hermite(X, 3)  # (m, d, 4)
    x, h2, h3 = (np.ascontiguousarray(P[:, :, k]) for k in (1, 2, 3))
    out = np.empty((m, math.comb(d + 2, 3)), dtype=X.dtype)
    c = 0
    for i in range(d):  # loops over coordinates, never over samples
        for j in range(i, d):
            if i == j:
                out[:, c] = h3[:, i]
                np.multiply(h2[:, i:i + 1], x[:, i + 1:], out=out[:, c + 1:c + d - i])
            else:
                out[:, c] = x[:, i] * h2[:, j]
                np.multiply((x[:, i] * x[:, j])[:, None], x[:, j + 1:], out=out[:, c + 1:c + d - j])
            c += d - j
    return out


def _check_q2_vectors(a, d):
    a = real_array("a", a).astype(float, copy=False)
    D = feature_dimension(d, 2)
    if a.shape[-1] != D:
        raise ValueError(f"last axis must have length D = binom(d+1, 2) = {D} for d = {d}, got {a.shape}")
    return a


def vector_to_matrix(a, d: int) -> np.ndarray:
    """For ``q = 2``: the symmetric matrix ``M`` with ``<a, F(x)> = (x^T M x - tr M) / sqrt 2``.

    Works on a stack of vectors ``(..., D)`` and returns ``(..., d, d)``.
    """
    a = _check_q2_vectors(a, d)
    _, (i, j), scale = q2_layout(d)
    M = np.zeros(a.shape[:-1] + (d, d))
    vals = a / scale
    M[..., i, j] = vals
    M[..., j, i] = vals
    return M


def matrix_to_vector(M, *, symmetrise: bool = False) -> np.ndarray:
    """Inverse of :func:`vector_to_matrix`: symmetric ``(..., d, d)`` to feature vectors ``(..., D)``.

    ``symmetrise=True`` uses ``(M + M^T) / 2`` (for products that are symmetric only up to rounding).
    """
    M = real_array("M", M).astype(float, copy=False)
    symmetrise = check_bool("symmetrise", symmetrise)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"M must be a (stack of) square matrices, got shape {M.shape}")
    if symmetrise:
        M = 0.5 * (M + np.swapaxes(M, -1, -2))
    elif not np.allclose(M, np.swapaxes(M, -1, -2)):
        raise ValueError("M must be symmetric (or pass symmetrise=True)")
    _, (i, j), scale = q2_layout(M.shape[-1])
    return M[..., i, j] * scale


def quadratic_projection(X, mats, *, dtype=np.float64) -> np.ndarray:
    """``<a_r, F(x)> = (x^T M_r x - tr M_r) / sqrt 2`` for ``q = 2``, from the matrices ``mats`` (r, d, d) of the
    ``a_r``, without forming the lift (``O(r d^2)`` a sample instead of ``O(r D)``): shape ``(n, r)``, float64.

    ``dtype`` is the precision of the products (float32 for the estimator's hot paths).
    """
    r, d, _ = mats.shape
    Xc = np.asarray(X, dtype=dtype)
    Mcat = np.ascontiguousarray(mats.transpose(1, 0, 2).reshape(d, r * d), dtype=dtype)
    quad = np.einsum("mrd,md->mr", (Xc @ Mcat).reshape(len(Xc), r, d), Xc)
    return (quad.astype(float) - np.trace(mats, axis1=1, axis2=2)) / math.sqrt(2.0)
