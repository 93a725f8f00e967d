"""Metrics of SPEC §2 (paper App. A): test MSE, subspace overlap, per-direction cos^2, principal angles, spectrum.

Eigenvectors are defined only up to sign and, inside degenerate or crowded groups, up to rotation; every metric here
but one is invariant under ``Q_hat -> R Q_hat`` for orthogonal ``R``, so estimates are never compared entry by entry.
The exception is :func:`eigenvector_overlap`, Theorem 3.1's ``<u_k, a_k>^2``: invariant under sign flips only, it
asks whether the ``k``-th eigenvector itself has found the ``k``-th direction.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_int
from ._eigen import DENSE_MAX_D, block_krylov
from ._kernels import SampleKernel
from .data import SampleStream, scaled_labels, training_data

__all__ = ["test_mse", "subspace_overlap", "direction_cos2", "eigenvector_overlap", "principal_cos2", "spectrum",
           "spike_estimates", "polynomial_readout_mse", "binned_readout_mse"]


def test_mse(y_true, y_pred) -> float:
    """Test MSE on standardised labels: ``mean((y - y_pred)^2) / Var(y)`` (SPEC §2 Metrics).

    ``1`` is the error of predicting the mean; ``0`` is perfect.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size < 2:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length >= 2, got {y_true.shape}, "
                         f"{y_pred.shape}")
    if not (np.all(np.isfinite(y_true)) and np.all(np.isfinite(y_pred))):
        raise ValueError("labels or predictions contain NaN or infinite values")
    var = float(np.var(y_true))
    if not var > 0:
        raise ValueError("y_true is constant: the standardised MSE is undefined")
    return float(np.mean((y_true - y_pred) ** 2) / var)


def _rows(name, A, D=None):
    A = np.asarray(A, dtype=float)
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2 or A.shape[0] < 1:
        raise ValueError(f"{name} must be a (k, D) array of row vectors, got shape {A.shape}")
    if D is not None and A.shape[1] != D:
        raise ValueError(f"{name} has {A.shape[1]} columns, expected D = {D}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return A


def _orthonormal_rows(name, A):
    """An orthonormal basis (rows) of the row space of ``A``; a ValueError if the rows are dependent."""
    Q, R = np.linalg.qr(A.T)
    diag = np.abs(np.diag(R))
    if diag.size and diag.min() <= 1e-10 * max(diag.max(), 1e-300):
        raise ValueError(f"the rows of {name} are linearly dependent (or zero)")
    return Q.T


def subspace_overlap(Q, Q_hat) -> float:
    """``q_h = (1/k) ||Q^T Q_hat||_F^2`` with both row spaces orthonormalised first (paper App. A).

    Parameters
    ----------
    Q : array (k, D)
        True directions (e.g. ``target.directions``), not necessarily orthonormal.
    Q_hat : array (k', D)
        Estimated directions (e.g. ``estimator.directions_``).

    Returns the mean squared cosine of the principal angles, normalised by ``k`` = rows of ``Q``: 1 when the span
    of ``Q`` lies in that of ``Q_hat``.
    """
    Q = _orthonormal_rows("Q", _rows("Q", Q))
    Q_hat = _orthonormal_rows("Q_hat", _rows("Q_hat", Q_hat, Q.shape[1]))
    return float(np.linalg.norm(Q @ Q_hat.T) ** 2 / Q.shape[0])


def direction_cos2(A, Q_hat) -> np.ndarray:
    """Per-direction ``cos^2 theta_i = ||Q_hat^T a_i||^2``, ``a_i = A_i/|A_i|``, ``Q_hat`` orthonormalised
    (paper App. A; SPEC §4 B1 predicts ``1 - n_i*/n`` above threshold)."""
    A = _rows("A", A)
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        raise ValueError("A has a zero row")
    Q_hat = _orthonormal_rows("Q_hat", _rows("Q_hat", Q_hat, A.shape[1]))
    return np.sum((A / norms[:, None] @ Q_hat.T) ** 2, axis=1)


def eigenvector_overlap(A, U_hat) -> np.ndarray:
    """Theorem 3.1's overlap ``<u_k, a_k>^2`` of the ``k``-th estimated direction with the ``k``-th true one.

    ``A`` (k, D): true directions in the target's order (normalised here); ``U_hat`` (k', D): estimated unit
    directions ordered by decreasing ``|eigenvalue|`` (``estimator.directions_``). Returns ``min(k, k')`` values.
    Unlike :func:`direction_cos2`, a direction captured by a *different* eigenvector does not count.
    """
    A = _rows("A", A)
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        raise ValueError("A has a zero row")
    U = _rows("U_hat", U_hat, A.shape[1])
    unorms = np.linalg.norm(U, axis=1)
    if np.any(unorms == 0):
        raise ValueError("U_hat has a zero row")
    k = min(len(A), len(U))
    return np.sum((A[:k] / norms[:k, None]) * (U[:k] / unorms[:k, None]), axis=1) ** 2


def principal_cos2(A, Q_hat) -> np.ndarray:
    """``cos^2`` of the principal angles between ``span(A)`` and ``span(Q_hat)``, in decreasing order (the paper's
    Fig. 4): the squared singular values of ``Q^T Q_hat`` with both bases orthonormalised; ``k`` = rows of ``A``
    values (0 beyond the rank of ``Q_hat``). Their mean is :func:`subspace_overlap`."""
    Q = _orthonormal_rows("A", _rows("A", A))
    Q_hat = _orthonormal_rows("Q_hat", _rows("Q_hat", Q_hat, Q.shape[1]))
    s = np.linalg.svd(Q @ Q_hat.T, compute_uv=False)
    out = np.zeros(Q.shape[0])
    out[:s.size] = np.minimum(s**2, 1.0)
    return out


def spectrum(X, y, *, q=2, features=False, top=None, dense_max_D=4000, dtype=np.float64, rng=0, tol=1e-8):
    """Eigenvalues of ``C_hat = (1/n) sum y_std (F F^T - I)`` with standardised labels (as the estimator uses).

    Parameters
    ----------
    X, y : arrays, or a :class:`hiermodel.SampleStream` with ``y=None``
        Raw inputs (``features=False``) or feature vectors (``features=True``).
    top : int or None
        ``None``: all ``D`` eigenvalues (dense; needs ``D <= dense_max_D``). An int ``k``: the ``k`` outliers of
        largest ``|value|`` — dense when ``D <= dense_max_D``, else matrix-free block Krylov (start vectors from
        ``rng``).

    Returns
    -------
    ndarray
        All eigenvalues in increasing order, or the top-``k`` by decreasing ``|value|``.
    """
    q = check_int("q", q, minimum=1)
    data = training_data(X, y, q, features=None if isinstance(X, SampleStream) else features)
    w = scaled_labels(data.y)[0]
    D, n = data.D, data.n
    if top is not None:
        top = check_int("top", top, minimum=1)
        if top > D:
            raise ValueError(f"top = {top} exceeds D = {D}")
    dense_ok = D <= min(dense_max_D, DENSE_MAX_D)
    if top is None and not dense_ok:
        raise ValueError(f"the full spectrum needs a dense D x D matrix; D = {D} > dense_max_D = {dense_max_D}: "
                         f"pass top=k for the outliers")
    kernel = SampleKernel(data, dtype)
    if dense_ok:
        got = []
        kernel.dense([w], [n], lambda j, S: got.append(S.totals()[0]))
        C = got[0] / n
        C[np.diag_indices_from(C)] -= w.sum() / n
        vals = np.linalg.eigvalsh(C)
        if top is None:
            return vals
        return vals[np.argsort(-np.abs(vals), kind="stable")[:top]]
    wsum = float(w.sum())
    th, _, _ = block_krylov(lambda V: (kernel.apply(V, w, 0, n) - wsum * V) / n, D, top,
                            block=top + max(2, top // 2), rng=as_generator(rng), tol=tol)
    return th


test_mse.__test__ = False  # a metric, not a pytest test (it is imported into test modules)


def spike_estimates(h, y):
    """Measured spikes ``<A_i, C_hat A_i> = (1/n) sum_mu y_mu (h_{i,mu}^2 - 1)`` and their standard errors (C1).

    Parameters
    ----------
    h : array (n, k)
        Projections ``h_i = <A_i, F_mu>`` of the features on unit vectors: the first-layer features
        (``target.first_layer(X)``, or ``F @ target.directions.T`` in the Gaussian-equivalent model), or any
        ``F @ B.T`` with unit rows ``B`` for ``<B, C_hat B>``.
    y : array (n,)
        Labels as given (not standardised), as in ``C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)``.

    Returns
    -------
    mean, se : ndarrays (k,)
        The sample means of ``y (h_i^2 - 1)`` and their standard errors ``std / sqrt(n)``. No ``D x D`` matrix is
        formed, so ``n`` can be in the millions.
    """
    h = np.asarray(h, dtype=float)
    y = np.asarray(y, dtype=float)
    if h.ndim != 2 or y.ndim != 1 or h.shape[0] != y.size or y.size < 2:
        raise ValueError(f"h must be (n, k) and y (n,) with n >= 2, got {h.shape} and {y.shape}")
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(y))):
        raise ValueError("h or y contains NaN or infinite values")
    terms = y[:, None] * (h**2 - 1.0)
    return terms.mean(0), terms.std(0) / np.sqrt(y.size)


def _readout_data(h_fit, y_fit, h_test, y_test):
    arrays = [np.asarray(a, dtype=float) for a in (h_fit, y_fit, h_test, y_test)]
    if any(a.ndim != 1 for a in arrays) or arrays[0].shape != arrays[1].shape or arrays[2].shape != arrays[3].shape:
        raise ValueError("h_fit, y_fit and h_test, y_test must be 1-D pairs of equal lengths")
    if arrays[0].size < 2 or arrays[2].size < 2:
        raise ValueError("need at least two fit and two test samples")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("h or y contains NaN or infinite values")
    return arrays


def polynomial_readout_mse(h_fit, y_fit, h_test, y_test, *, degree) -> float:
    """Test MSE of the least-squares polynomial readout ``y ~ sum_{k <= degree} c_k z^k`` of a 1-D feature ``h``.

    ``z = (h - m) / s`` with the mean ``m`` and standard deviation ``s`` of ``h_fit`` (as the estimator's readout);
    the coefficients are fitted on ``(h_fit, y_fit)`` and the error is :func:`test_mse` on ``(h_test, y_test)``.
    With the exact ``h2`` as ``h`` this is the error that the readout alone leaves (chapter 5).
    """
    h_fit, y_fit, h_test, y_test = _readout_data(h_fit, y_fit, h_test, y_test)
    degree = check_int("degree", degree, minimum=0)
    m, s = h_fit.mean(), h_fit.std()
    if not s > 0:
        raise ValueError("h_fit is constant: it cannot be standardised")
    coef = np.linalg.lstsq(np.vander((h_fit - m) / s, degree + 1, increasing=True), y_fit, rcond=None)[0]
    return test_mse(y_test, np.vander((h_test - m) / s, degree + 1, increasing=True) @ coef)


def binned_readout_mse(h_fit, y_fit, h_test, y_test, *, bins=100) -> float:
    """Test MSE of the readout "mean of ``y`` in the quantile bin of ``h``": a flexible 1-D readout.

    The ``bins - 1`` inner edges are the quantiles of ``h_fit`` at ``1/bins, ..., (bins - 1)/bins``; a bin predicts
    the mean of the ``y_fit`` that fall in it (an empty bin, possible only with ties, the mean of all ``y_fit``).
    Test values beyond the outer edges fall in the first or last bin. The error is :func:`test_mse` on
    ``(h_test, y_test)``; for a smooth ``g`` it is about the within-bin variance of ``g(h)``.
    """
    h_fit, y_fit, h_test, y_test = _readout_data(h_fit, y_fit, h_test, y_test)
    bins = check_int("bins", bins, minimum=1)
    if bins > h_fit.size:
        raise ValueError(f"bins = {bins} exceeds the {h_fit.size} fit samples")
    edges = np.quantile(h_fit, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    idx = np.searchsorted(edges, h_fit)
    counts = np.bincount(idx, minlength=bins)
    sums = np.bincount(idx, weights=y_fit, minlength=bins)
    means = np.divide(sums, counts, out=np.full(bins, y_fit.mean()), where=counts > 0)
    return test_mse(y_test, means[np.searchsorted(edges, h_test)])
