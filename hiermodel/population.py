"""The population first-layer matrix ``E C_hat`` (SPEC §3 C1 and §4b).

``C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)``. Gaussian equivalence keeps only the spikes
``E C_hat = sqrt(2) sum_i lambda_i a_i a_i^T`` (``g = id``). For the real Hermite model with ``q = 2`` and
``g = id`` the exact expectation, from the joint cumulants of Gaussian quadratic forms, is the operator on
symmetric matrices ``B``

    E C_hat [B] = sum_i (lambda_i / sqrt 2) [ 2 tr(A_i B) A_i + 4 (A_i^2 B + B A_i^2) + 4 A_i B A_i ],

i.e. ``<b, E C_hat b> = sum_i (lambda_i / sqrt 2) [2 tr(A_i B)^2 + 8 tr(A_i^2 B^2) + 4 tr(A_i B A_i B)]``.
The last two terms form a deterministic non-spike part that Gaussian equivalence drops; it shrinks only with d.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._checks import as_generator, check_int, check_model
from .target import HierarchicalTarget


def _sandwich(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Matrix of ``B -> X B Y + Y B X`` (symmetric ``X``, ``Y``) in the orthonormal feature basis of q = 2.

    With basis matrices ``E_ij = c_ij (e_i e_j^T + e_j e_i^T)``, ``c_ii = 1/2``, ``c_ij = 1/sqrt 2``, the entry is
    ``2 c_ij c_kl (X_ik Y_jl + X_il Y_jk + Y_ik X_jl + Y_il X_jk)``.
    """
    d = X.shape[0]
    i, j = np.triu_indices(d)
    c = np.where(i == j, 0.5, 1.0 / math.sqrt(2.0))
    out = X[np.ix_(i, i)] * Y[np.ix_(j, j)]
    out += X[np.ix_(i, j)] * Y[np.ix_(j, i)]
    out += Y[np.ix_(i, i)] * X[np.ix_(j, j)]
    out += Y[np.ix_(i, j)] * X[np.ix_(j, i)]
    out *= 2.0 * np.outer(c, c)
    return out


def population_matrix(target: HierarchicalTarget, *, model: str = "hermite") -> np.ndarray:
    """``E C_hat`` as a ``(D, D)`` matrix in the coordinates of :func:`hiermodel.hermite_features`.

    Parameters
    ----------
    target : HierarchicalTarget
        Must have ``g = "id"``; the real-model formula also needs ``q = 2``.
    model : {"hermite", "gaussian-equivalent"}
        ``"gaussian-equivalent"``: only the spikes ``sqrt(2) sum_i lambda_i a_i a_i^T`` (any q).
    """
    check_model(model)
    if target.g_name != "id":
        raise ValueError(f"the closed form of E C_hat is for g = 'id', this target has g = {target.g_name!r}")
    A, lam = target.directions, target.weights
    spikes = math.sqrt(2.0) * (A.T * lam) @ A
    if model == "gaussian-equivalent":
        return spikes
    if target.q != 2:
        raise ValueError(f"the exact finite-d E C_hat is implemented for q = 2, this target has q = {target.q}")
    M = target.direction_matrices()
    squares = np.tensordot(lam, M @ M, axes=1)  # sum_i lambda_i A_i^2
    structure = 4.0 * _sandwich(squares, np.eye(target.d))
    for lam_i, M_i in zip(lam, M):
        structure += 2.0 * lam_i * _sandwich(M_i, M_i)
    return spikes + structure / math.sqrt(2.0)


def spike_strengths(target: HierarchicalTarget) -> np.ndarray:
    """``sqrt(2) lambda_i``: the Gaussian-equivalent spike of direction ``i`` in ``E C_hat`` (``g = id``)."""
    return math.sqrt(2.0) * target.weights


def link_constants(target: HierarchicalTarget, *, samples: int = 1_000_000, rng=None) -> dict:
    """Per-direction constants of the Gaussian-equivalent model for any link ``g``, with standardised labels.

    ``theta_i = E[y (h_i^2 - 1)]``, the spike of direction ``i`` in ``E C_hat`` (by Stein's lemma
    ``(sqrt2 lambda_i E g'(h2) + 2 lambda_i^2 E[g''(h2) h_i^2]) / sd g(h2)``; for ``g = id`` it is ``sqrt2 lambda_i``),
    and ``noise_i = E[y^2 h_i^2]``, the variance that direction ``i``'s noise entries carry: the first-order loss is
    ``1 - cos^2 theta_k ~ (D - d1) noise_k / (n theta_k^2)`` (book, chapters 3 and 5).

    Monte Carlo over ``h = rng.standard_normal((samples, d1))`` only (no features, so cheap). Returns a dict with
    ``theta``, ``theta_se`` (standard errors) and ``noise``.
    """
    samples = check_int("samples", samples, minimum=2)
    h = as_generator(rng).standard_normal((samples, target.d1))
    y = target.g(target.second_layer(h))
    if not np.std(y) > 0:
        raise ValueError("the link gives constant labels: they cannot be standardised")
    y = (y - y.mean()) / y.std()
    terms = y[:, None] * (h**2 - 1.0)
    return {"theta": terms.mean(0), "theta_se": terms.std(0) / math.sqrt(samples),
            "noise": (y[:, None] ** 2 * h**2).mean(0)}


def population_operator(target: HierarchicalTarget):
    """``E C_hat`` of the real model (q = 2, g = id) as a matrix-free ``scipy.sparse.linalg.LinearOperator``.

    One product costs ``O(d1 d^3)`` instead of ``O(D^2) = O(d^4)``: use it with ``eigsh`` at large d.
    """
    from scipy.sparse.linalg import LinearOperator

    from .hermite import matrix_to_vector, vector_to_matrix

    if target.g_name != "id" or target.q != 2:
        raise ValueError("the exact finite-d E C_hat is implemented for q = 2 and g = 'id'")
    M, lam, d = target.direction_matrices(), target.weights, target.d
    P = np.tensordot(lam, M @ M, axes=1)
    s = 1.0 / math.sqrt(2.0)

    def matmat(V):
        B = vector_to_matrix(np.asarray(V).T, d)  # (k, d, d)
        out = 4.0 * (P @ B + B @ P)
        for lam_i, M_i in zip(lam, M):
            trace = np.einsum("ab,kab->k", M_i, B)
            out += lam_i * (2.0 * trace[:, None, None] * M_i + 4.0 * M_i @ B @ M_i)
        return (s * matrix_to_vector(out)).T

    return LinearOperator((target.D, target.D), matvec=lambda v: matmat(v[:, None])[:, 0], matmat=matmat,
                          dtype=float)


def population_ceiling(target: HierarchicalTarget, *, model: str = "hermite") -> dict:
    """The ``n = infinity`` limit of the first layer: the top-``d1`` eigenpairs (by ``|value|``) of ``E C_hat``.

    Returns ``{"eigenvalues": (d1,), "vectors": (d1, D) rows, "cos2": (d1,)}`` with ``cos2_i`` the squared norm of
    direction ``i``'s projection on the top-``d1`` eigenspace (:func:`hiermodel.metrics.direction_cos2`): below 1 in
    the real model at finite ``d`` (SPEC B6), exactly 1 in the Gaussian-equivalent model. Real model: dense ``eigh``
    up to ``D = 700``, else ARPACK on :func:`population_operator`; Gaussian-equivalent: a ``d1 x d1`` problem.
    """
    from scipy.sparse.linalg import eigsh

    from ._eigen import select_abs
    from .metrics import direction_cos2

    check_model(model)
    k = target.d1
    if model == "gaussian-equivalent":  # rank d1: A^T = Q R gives E C_hat = Q (R diag(sqrt2 lambda) R^T) Q^T
        Q, R = np.linalg.qr(target.directions.T)
        vals, small = np.linalg.eigh((R * spike_strengths(target)) @ R.T)
        vecs = Q @ small
    elif target.D <= 700:
        vals, vecs = np.linalg.eigh(population_matrix(target))
    else:
        vals, vecs = eigsh(population_operator(target), k=k, which="LM", tol=1e-10, v0=np.ones(target.D))
    vals, vecs = select_abs(vals, vecs, k)
    return {"eigenvalues": vals, "vectors": vecs.T, "cos2": direction_cos2(target.directions, vecs.T)}


def nonspike_norm(target: HierarchicalTarget, *, tol: float = 1e-8) -> float:
    """``||S||_op`` of the real model's non-spike part ``S = E C_hat - sqrt(2) sum_i lambda_i a_i a_i^T`` (SPEC B6).

    ``q = 2`` and ``g = id`` (as :func:`population_operator`); matrix-free, one ARPACK eigenpair of largest
    ``|value|`` (start vector of ones, relative tolerance ``tol``), so ``d`` in the hundreds is cheap. Gaussian
    equivalence sets ``S = 0``; in the real model it shrinks only with ``d``.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = population_operator(target)
    A, rho = target.directions, spike_strengths(target)

    def matmat(V):
        V = np.asarray(V).reshape(target.D, -1)
        return op.matmat(V) - A.T @ (rho[:, None] * (A @ V))

    S = LinearOperator(op.shape, matvec=lambda v: matmat(v)[:, 0], matmat=matmat, dtype=float)
    vals = eigsh(S, k=1, which="LM", return_eigenvectors=False, tol=tol, v0=np.ones(target.D))
    return float(np.abs(vals).max())


def noise_spectrum(target: HierarchicalTarget, n, rng=None, *, model: str = "gaussian-equivalent") -> dict:
    """Eigenvalues of the noise ``Delta = C_hat - E C_hat`` from ``n`` fresh samples, and of ``Delta_perp`` (C1).

    ``C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)`` with the raw labels ``y`` (not standardised, as in the
    definition of ``E C_hat``), drawn by ``target.sample(n, rng, model=model)``; ``E C_hat`` is
    :func:`population_matrix` (``g = id``; the real model needs ``q = 2``). ``Delta_perp = P Delta P`` with ``P``
    the projector on the complement of ``span(a_i)``.

    Returns ``{"perp": (D - d1,), "full": (D,), "labels": (n,)}``: the eigenvalues of ``Delta_perp`` without the
    ``d1`` zeros of the projection, those of ``Delta`` (both increasing), and the labels (for the signed-weight
    law :func:`hiermodel.theory.weighted_covariance_density`). Explicit ``D x D`` matrices: ``D`` up to a few
    thousand.
    """
    from .estimator import spectral_matrix

    n = check_int("n", n, minimum=2)
    mean = population_matrix(target, model=model)
    Z, y = target.sample(n, rng, model=model)
    ge = model == "gaussian-equivalent"
    delta = spectral_matrix(Z, y, target.q, features=ge, center=False, scale=False) - mean
    basis = np.linalg.qr(target.directions.T)[0]
    P = np.eye(target.D) - basis @ basis.T
    perp = np.linalg.eigvalsh(P @ delta @ P)
    perp = np.sort(perp[np.argsort(np.abs(perp), kind="stable")[target.d1:]])
    return {"perp": perp, "full": np.linalg.eigvalsh(delta), "labels": y}


# --- B4: the degree q = 3 (the real model's exact population matrix) ----------------------------------------------
CUBIC_WICK_COUNTS = {"disconnected": 36, "tetrahedron": 1296, "double-single cycle": 324}
"""Wick pairings of four degree-3 Hermite tensors per labelled graph (each vertex of degree 3, no self-loops):
two triple edges (3!^2 = 36), the tetrahedron K4 (3!^4) and a 4-cycle of alternating double and single edges
(3^4 * 2^2). Three, one and six labelled graphs: ``3*36 + 1296 + 6*324 = 3348 = E He_3(Z)^4``."""


@functools.lru_cache(maxsize=8)
def _cubic_layout(d: int):
    """For each entry of a ``d x d x d`` tensor, its multiset feature (``q = 3`` lift order), and per feature the
    factor ``sqrt(prod k_j!) / 3!`` between a feature vector ``a`` and its symmetric tensor ``T``
    (``<a, F(x)> = <T, He_3(x)>`` with ``He_3(x)_{ijk}`` the tensor Hermite polynomial), and the sparse
    ``(d^3, D)`` indicator of ``entry`` (the adjoint's summation)."""
    from scipy import sparse

    from .hermite import multisets

    index = multisets(d, 3)
    entry = np.empty((d, d, d), dtype=np.intp)
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        entry[index[:, perm[0]], index[:, perm[1]], index[:, perm[2]]] = np.arange(len(index))
    runs = [(index[:, 0] == index[:, 1]) & (index[:, 1] == index[:, 2]),
            (index[:, 0] == index[:, 1]) ^ (index[:, 1] == index[:, 2])]
    scale = np.where(runs[0], math.sqrt(6.0), np.where(runs[1], math.sqrt(2.0), 1.0)) / 6.0
    entry = entry.ravel()
    entry.setflags(write=False)
    scale.setflags(write=False)
    pick = sparse.csr_matrix((np.ones(entry.size), (np.arange(entry.size), entry)), shape=(entry.size, scale.size))
    return entry, scale, pick


def cubic_tensors(vectors, d: int) -> np.ndarray:
    """``q = 3`` feature vectors ``(..., D)`` as symmetric tensors ``(..., d, d, d)``, ``<a, F> = <T, He_3(x)>``.

    With this normalisation ``E <T, He_3><U, He_3> = 3! <T, U>``, so ``|a|^2 = 6 |T|^2``.
    """
    from .hermite import feature_dimension

    d = check_int("d", d, minimum=1)
    V = np.asarray(vectors, dtype=float)
    if V.ndim < 1 or V.shape[-1] != feature_dimension(d, 3):
        raise ValueError(f"vectors must have last axis D = binom(d + 2, 3) = {feature_dimension(d, 3)} for "
                         f"d = {d}, got shape {V.shape}")
    entry, scale, _ = _cubic_layout(d)
    return (V * scale)[..., entry].reshape(V.shape[:-1] + (d, d, d))


def _cubic_features(G, d):
    """Adjoint of :func:`cubic_tensors`: tensors ``(m, d, d, d)`` to feature vectors ``(m, D)``."""
    _, scale, pick = _cubic_layout(d)
    return np.asarray((pick.T @ G.reshape(G.shape[0], -1).T).T) * scale


def _cubic_connected_apply(T, B):
    """``L_T[B]`` for tensors ``B`` (m, d, d, d): the connected Wick part of ``E h_T^2 h_B^2`` is ``<B, L_T B>``.

    ``L_T = 1296 L_tet + 648 (L_1 + L_2 + L_3)`` from the tetrahedron ``sum T_pqr T_pst B_qsu B_rtu`` and the
    double-single cycles ``tr(P_TT P_BB) + tr(P_TB P_TB) + tr(P_TB P_TB^T)``, ``P_XY[p, u] = sum_rs X_prs Y_urs``.
    """
    d, m = T.shape[0], B.shape[0]
    Tm = T.reshape(d, d * d)
    W = np.einsum("pqr,pst->qsrt", T, T).reshape(d * d, d * d)  # the tetrahedron's two T vertices
    # every product is one GEMM over the whole batch (rows of B stacked)
    tet = (W.T @ B.reshape(m, d * d, d).transpose(1, 0, 2).reshape(d * d, m * d))
    tet = tet.reshape(d * d, m, d).transpose(1, 0, 2)  # (m, (r, t), u)
    one = ((Tm @ Tm.T) @ B.transpose(1, 0, 2, 3).reshape(d, m * d * d)).reshape(d, m, d * d)
    X = (B.reshape(m * d, d * d) @ Tm.T).reshape(m, d, d)  # X[m, p, u] = P_TB[u, p]
    rest = one.transpose(1, 0, 2) + (X.transpose(0, 2, 1).reshape(m * d, d) @ Tm).reshape(m, d, d * d)
    rest += (X.reshape(m * d, d) @ Tm).reshape(m, d, d * d)
    return 1296.0 * tet.reshape(m, d, d, d) + 648.0 * rest.reshape(m, d, d, d)


def cubic_population_operator(target, *, part: str = "full"):
    """The real model's ``E C_hat`` (``q = 3``, ``g = "id"``, raw labels) as a matrix-free
    ``scipy.sparse.linalg.LinearOperator`` (``part="full"``) or only its non-spike part (``part="nonspike"``).

    One product costs about ``2 d1 d^5`` flops instead of ``D^2 ~ d^6 / 36``: for ARPACK at ``d`` in the tens.
    """
    from scipy.sparse.linalg import LinearOperator

    from .hermite import feature_dimension

    if getattr(target, "q", None) != 3:
        raise ValueError(f"the cubic population formula needs q = 3; this target has q = {getattr(target, 'q', None)}")
    if getattr(target, "g_name", None) != "id":
        raise ValueError(f"the cubic population formula needs g = 'id' (y = h2, a polynomial), got "
                         f"{getattr(target, 'g_name', None)!r}")
    if part not in ("full", "nonspike"):
        raise ValueError(f"part must be 'full' or 'nonspike', got {part!r}")
    d, D = target.d, feature_dimension(target.d, 3)
    A, lam = np.asarray(target.directions, float), np.asarray(target.weights, float)
    tensors = cubic_tensors(A, d)

    def matmat(V):
        V = np.asarray(V, dtype=float).reshape(D, -1)
        B = cubic_tensors(V.T, d)
        G = sum(lam_i * _cubic_connected_apply(T, B) for lam_i, T in zip(lam, tensors))
        out = _cubic_features(G, d).T / math.sqrt(2.0)  # L_i is symmetric on symmetric tensors
        if part == "full":
            out += math.sqrt(2.0) * A.T @ (lam[:, None] * (A @ V))
        return out

    return LinearOperator((D, D), matvec=lambda v: matmat(v)[:, 0], matmat=matmat, dtype=float)


def cubic_population(target, *, ceiling: bool = True, dense: bool | None = None) -> dict:
    """The exact ``E C_hat`` of the real (Hermite) model for ``q = 3`` and ``g = "id"`` at finite ``d`` (B4, B6).

    ``C_hat = (1/n) sum y (F F^T - I)`` with the raw labels ``y = h2``. By Wick's theorem for the degree-3 tensor
    Hermite polynomials (:data:`CUBIC_WICK_COUNTS`), ``E[h_i^2 <b, F>^2] = |b|^2 + 2 <a_i, b>^2 + <B, L_i B>`` for
    unit ``a_i`` (``B`` the tensor of ``b``), so

        ``E C_hat = (1/sqrt 2) sum_i lambda_i (2 a_i a_i^T + S_i)``,   ``S_i = E^T L_i E``,

    where Gaussian equivalence keeps only the spikes ``sqrt 2 lambda_i a_i a_i^T``. ``Var h2 =
    (1/sqrt 2) sum_j lambda_j a_j^T E C_hat a_j`` (because ``h_j^2 - 1 = <a_j, F>^2 - |a_j|^2``); labels
    standardised by it give ``E C_hat / sd(h2)``.

    Returns a dict: ``h2_variance``, ``nonspike_norm`` (operator norm of the non-spike part
    ``(1/sqrt 2) sum_i lambda_i S_i``) and, with ``ceiling=True``, the top-``d1`` eigenvalues by ``|value|``
    (``eigenvalues``) and ``cos2`` of each direction on their span (the ``n = oo`` limit of Algorithm 1; label
    standardisation only rescales). ``dense`` (default: ``D <= 1000``) also returns ``matrix`` and ``nonspike``
    as ``(D, D)`` arrays; otherwise ARPACK on :func:`cubic_population_operator` (relative tolerance 1e-10).
    """
    from scipy.sparse.linalg import eigsh

    from .metrics import direction_cos2

    op = cubic_population_operator(target)  # validates q and g
    D, k = op.shape[0], len(target.weights)
    dense = D <= 1000 if dense is None else dense
    A, lam = np.asarray(target.directions, float), np.asarray(target.weights, float)
    out = {}
    if dense:
        if D > 6000:
            raise ValueError(f"dense=True forms D x D matrices; D = {D} > 6000 is too large")
        nonspike = cubic_population_operator(target, part="nonspike").matmat(np.eye(D))
        nonspike = 0.5 * (nonspike + nonspike.T)
        matrix = math.sqrt(2.0) * (A.T * lam) @ A + nonspike
        out.update(matrix=matrix, nonspike=nonspike, nonspike_norm=float(np.abs(np.linalg.eigvalsh(nonspike)).max()))
        if ceiling:
            vals, vecs = np.linalg.eigh(matrix)
            top = np.argsort(-np.abs(vals), kind="stable")[:k]
    else:
        ns = eigsh(cubic_population_operator(target, part="nonspike"), k=1, which="LM", tol=1e-10,
                   v0=np.ones(D), return_eigenvectors=False)
        out["nonspike_norm"] = float(np.abs(ns).max())
        if ceiling:
            vals, vecs = eigsh(op, k=k, which="LM", tol=1e-10, v0=np.ones(D))
            top = np.argsort(-np.abs(vals), kind="stable")
    out["h2_variance"] = float(lam @ np.einsum("id,id->i", A, op.matmat(A.T).T) / math.sqrt(2.0))
    if ceiling:
        out["eigenvalues"] = vals[top]
        out["cos2"] = direction_cos2(A, vecs[:, top].T)
    return out
