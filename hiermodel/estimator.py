"""Algorithm 1 of the paper: the layer-wise spectral estimator (SPEC §2; paper Eqs. 2.6, 2.11–2.14, App. A).

First layer: the top-``d1`` eigenvectors, by absolute eigenvalue, of

    C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)                                   (SPEC §2, step 1)

with ``F`` the Hermite lift and ``y`` the standardised labels. Second layer: ``A2_hat = (1/n) sum y (h h^T - I)`` on
``h_hat = A_hat F``; readout: a 1-D least-squares fit of ``y`` on ``h2_hat``.

Computing ``C_hat``. Its cost dominates everything else, so three routes are provided:

* ``"dense"``: form ``C_hat`` explicitly in chunks of samples, then take its top-``d1`` by ``|eigenvalue|`` (ARPACK
  Lanczos on the explicit matrix, ``O(D^2)`` per step). For ``q = 2`` on raw inputs only the ``C(d+3, 4)`` distinct
  fourth moments are accumulated (:class:`_MomentSums`, about ``n d^4 / 12`` flops); otherwise signed ``syrk`` on
  the lift (``n D^2``). Best up to moderate ``D``, and the reference for exactness.
* ``"operator"``: matrix-free block Krylov (block Lanczos with full re-orthogonalisation and Rayleigh–Ritz on the
  whole Krylov basis, which resolves both ends of the spectrum at once, as selection by ``|eigenvalue|`` needs).
  For ``q = 2`` on raw inputs one application uses the operator form of SPEC §2: with ``F <-> X~/sqrt 2``,
  ``X~ = x x^T - I``, under the isometry of :func:`hiermodel.vector_to_matrix` (``a <-> M``, ``a_ij = sqrt2 M_ij``),

      sum_mu w_mu F_mu F_mu^T a  <->  (1/2) sum_mu w_mu <X~_mu, M> X~_mu
                                   = (1/2) [X^T diag(s) X - (sum_mu s_mu) I],   s_mu = w_mu (x_mu^T M x_mu - tr M),

  so ``C_hat[M] = (1/(2n)) sum_mu w_mu (<X~_mu, M> X~_mu - 2 M)``: about ``4 n d^2`` flops per vector and no ``D x D``
  matrix and no lift. Other cases (``q != 2``, Gaussian-equivalent features) use ``F^T (w * (F V))`` on the lift.
* ``"rsi"``: randomized subspace iteration (15 passes, oversampling 10), the reference for the benchmark.

Nested sweeps over ``n`` (:meth:`LayerwiseSpectral.fit_path`) reuse one pass over the data (dense: the running sums
are read off at each checkpoint) or warm-start each Krylov solve from the previous ``n``'s eigenvectors.
:class:`SampleStream` regenerates data from a seed in chunks, so ``n`` is not limited by memory.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import time

import numpy as np
from scipy.linalg import blas as _blas
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from ._checks import as_generator, check_int, check_real
from .hermite import feature_dimension, hermite_features

__all__ = ["LayerwiseSpectral", "SampleStream", "spectral_matrix", "top_eigenpairs", "METHODS"]

_SQRT2 = math.sqrt(2.0)
METHODS = ("auto", "dense", "operator", "rsi")
_DENSE_MAX_D = 8000  # a D x D float64 matrix plus eigh workspace stays well under 2 GB


# --------------------------------------------------------------------------------------------------------------------
# q = 2 helpers: feature vectors <-> symmetric matrices without validation (internal, hot paths)
# --------------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _q2_tables(d: int):
    """Row offsets of the q = 2 lift (lexicographic multisets = row-major upper triangle) and triu indices."""
    offsets = np.concatenate([[0], np.cumsum(np.arange(d, 0, -1))]).astype(np.intp)
    iu = np.triu_indices(d)
    scale = np.where(iu[0] == iu[1], 1.0, _SQRT2)
    return offsets, iu, scale


def _vec2mat(V: np.ndarray, d: int) -> np.ndarray:
    """Columns of ``V`` (D, b) to symmetric matrices (b, d, d): ``a_ii = M_ii``, ``a_ij = sqrt2 M_ij``."""
    _, (i, j), scale = _q2_tables(d)
    M = np.zeros((V.shape[1], d, d))
    vals = V.T / scale
    M[:, i, j] = vals
    M[:, j, i] = vals
    return M


def _mat2vec(M: np.ndarray) -> np.ndarray:
    """Symmetric matrices (b, d, d) to columns (D, b), symmetrising first (float32 GEMMs are not exactly symmetric)."""
    d = M.shape[-1]
    _, (i, j), scale = _q2_tables(d)
    S = 0.5 * (M + np.swapaxes(M, -1, -2))
    return (S[:, i, j] * scale).T


def _q2_lift(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The q = 2 lift in the coordinates of :func:`hiermodel.hermite_features`, built by contiguous row slices."""
    m, d = X.shape
    offsets, _, _ = _q2_tables(d)
    if out is None:
        out = np.empty((m, offsets[-1]), dtype=X.dtype)
    for i in range(d):  # d slices of length d - i: a loop over coordinates, never over samples
        np.multiply(X[:, i:i + 1], X[:, i:], out=out[:, offsets[i]:offsets[i + 1]])
    diag = offsets[:-1]
    out[:, diag] -= 1.0
    out[:, diag] *= 1.0 / _SQRT2
    return out


# --------------------------------------------------------------------------------------------------------------------
# Data sources: arrays in memory, or a stream regenerated from a seed
# --------------------------------------------------------------------------------------------------------------------
class SampleStream:
    """``n`` samples of a :class:`hiermodel.HierarchicalTarget`, regenerated from ``seed`` in chunks on every pass.

    Inputs are drawn as consecutive ``standard_normal((rows, d))`` calls on one Generator, which equal one large
    call, so the data do not depend on ``chunk_size`` (labels to floating-point rounding). Nothing of size ``n x d``
    is stored; only the labels (``n`` floats) are cached after the first pass.

    Parameters
    ----------
    target : HierarchicalTarget
    n : int
        Number of samples.
    seed : int or numpy SeedSequence
        Must be replayable (a Generator is not: it cannot be rewound for a second pass).
    chunk_size : int
        Rows drawn per call.
    gaussian_equivalent : bool
        Draw features ``F ~ N(0, I_D)`` directly, as :meth:`HierarchicalTarget.sample_gaussian_equivalent`
        (``n x D`` normals per pass: use at moderate ``D``).
    """

    def __init__(self, target, n, seed, *, chunk_size=65536, gaussian_equivalent=False):
        if isinstance(seed, np.random.Generator) or seed is None:
            raise ValueError("SampleStream needs a replayable seed: a non-negative int or a numpy SeedSequence")
        as_generator(seed)  # validates
        self.target = target
        self.n = check_int("n", n, minimum=1)
        self.seed = seed
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.gaussian_equivalent = bool(gaussian_equivalent)
        self.kind = "features" if self.gaussian_equivalent else "inputs"
        self.q = target.q
        self.d = target.d
        self.D = target.D
        self._y = None

    def __repr__(self):
        return (f"SampleStream({self.target!r}, n={self.n}, seed={self.seed!r}, chunk_size={self.chunk_size}, "
                f"gaussian_equivalent={self.gaussian_equivalent})")

    def _labels_of(self, Z):
        t = self.target
        if self.gaussian_equivalent:
            return t.g(t.second_layer(Z @ t.directions.T))
        if t.q == 2:  # h_i = (x^T A_i x - tr A_i)/sqrt2 without the lift: same values as t(X), to rounding
            return t.g(t.second_layer(_q2_project(Z, _direction_mats(t), np.float64)))
        return t(Z)

    def blocks(self, stop=None):
        """Yield ``(start, Z, y)`` for consecutive row blocks of the first ``stop`` samples (``Z`` = X or F)."""
        stop = self.n if stop is None else min(int(stop), self.n)
        rng = as_generator(self.seed) if not isinstance(self.seed, numbers.Integral) else np.random.default_rng(
            self.seed)
        width = self.D if self.gaussian_equivalent else self.d
        y = self._y
        fresh = [] if y is None else None
        for start in range(0, stop, self.chunk_size):
            rows = min(self.chunk_size, stop - start)
            Z = rng.standard_normal((rows, width))
            if fresh is not None:
                yc = self._labels_of(Z)
                fresh.append(yc)
            else:
                yc = y[start:start + rows]
            yield start, Z, yc
        if fresh is not None and stop == self.n:
            self._y = np.concatenate(fresh)

    def labels(self) -> np.ndarray:
        """All ``n`` labels (one pass over the data the first time)."""
        if self._y is None:
            for _ in self.blocks():
                pass
        return self._y

    def arrays(self):
        """Materialise ``(Z, y)`` (X, or F in the Gaussian-equivalent mode) — for small ``n`` and for tests."""
        Zs = [Z for _, Z, _ in self.blocks()]
        return np.concatenate(Zs), self.labels()


def _direction_mats(target):
    cache = getattr(target, "_hiermodel_dirmats", None)
    if cache is None or cache[0] is not target.directions:
        mats = _vec2mat(target.directions.T, target.d)
        cache = (target.directions, mats)
        try:
            target._hiermodel_dirmats = cache
        except AttributeError:
            pass
    return cache[1]


class _Data:
    """Uniform access to training data: ``kind`` is ``"inputs"`` (raw x, lifted internally) or ``"features"``."""

    def __init__(self, Z=None, y=None, *, kind, q, stream=None):
        self.kind = kind
        self.q = q
        self.stream = stream
        if stream is not None:
            self.n, self.d, self.D = stream.n, stream.d, stream.D
            self.y = np.asarray(stream.labels(), dtype=float)
            self.Z = None
        else:
            self.Z = Z
            self.y = y
            self.n = Z.shape[0]
            if kind == "inputs":
                self.d = Z.shape[1]
                self.D = feature_dimension(self.d, q)
            else:
                self.d = None
                self.D = Z.shape[1]
        if not np.all(np.isfinite(self.y)):
            raise ValueError("y contains NaN or infinite values")

    def blocks(self, start, stop, rows, dtype):
        """Yield ``(offset, Z_block)`` covering rows ``[start, stop)`` in blocks of at most ``rows``, as ``dtype``."""
        if stop <= start:
            return
        if self.stream is None:
            for s in range(start, stop, rows):
                yield s, np.asarray(self.Z[s:min(s + rows, stop)], dtype=dtype)
            return
        for s0, Z, _ in self.stream.blocks(stop):
            e0 = s0 + Z.shape[0]
            if e0 <= start:
                continue
            Z = Z[max(start - s0, 0):]
            base = max(start, s0)
            for s in range(0, Z.shape[0], rows):
                yield base + s, np.asarray(Z[s:s + rows], dtype=dtype)

    def features(self, Zb):
        """The lift of a block (identity for features)."""
        if self.kind == "features":
            return Zb
        if self.q == 2:
            return _q2_lift(Zb)
        return hermite_features(Zb, self.q, dtype=Zb.dtype)


def _q2_project(X, mats, dtype):
    """``h_r = (x^T M_r x - tr M_r)/sqrt2`` for matrices ``mats`` (r, d, d): shape (m, r), float64."""
    r, d, _ = mats.shape
    Xc = np.asarray(X, dtype=dtype)
    Mcat = np.ascontiguousarray(mats.transpose(1, 0, 2).reshape(d, r * d), dtype=dtype)
    quad = np.einsum("mrd,md->mr", (Xc @ Mcat).reshape(len(Xc), r, d), Xc)
    return (quad.astype(float) - np.trace(mats, axis1=1, axis2=2)) / _SQRT2


# --------------------------------------------------------------------------------------------------------------------
# The kernel: weighted sums of F F^T, explicit or applied to blocks of vectors
# --------------------------------------------------------------------------------------------------------------------
class _Kernel:
    """``sum_{mu < stop} w_mu F_mu F_mu^T`` applied to vectors, or formed explicitly (no ``- I`` term here)."""

    def __init__(self, data: _Data, dtype):
        self.data = data
        self.dtype = np.dtype(dtype)
        self.operator_form = data.kind == "inputs" and data.q == 2
        f32 = self.dtype == np.float32
        if self.operator_form:
            self.rows = 512 if f32 else 1024  # measured at d = 120: 5-10% faster than 256 or 1024 rows
        else:
            self.rows = int(max(64, min(2048, (1 << 21) // max(data.D, 1))))
        self.dense_rows = int(max(64, min(2048 if self.operator_form else 4096, (1 << 23) // max(data.D, 1))))
        # Wall time and flop count of the sample kernels (for the benchmark's GFLOP/s column).
        self.stats = {"apply_time": 0.0, "apply_flops": 0.0, "apply_calls": 0, "dense_time": 0.0, "dense_flops": 0.0}

    def apply(self, V: np.ndarray, w: np.ndarray, start: int, stop: int) -> np.ndarray:
        """``sum_{start <= mu < stop} w_mu F_mu F_mu^T V`` for ``V`` (D, b); float64 result."""
        t0 = time.perf_counter()
        out = self._apply(V, w, start, stop)
        b, m = V.shape[1], max(stop - start, 0)
        per = 4.0 * self.data.d ** 2 if self.operator_form else 4.0 * self.data.D
        self.stats["apply_time"] += time.perf_counter() - t0
        self.stats["apply_flops"] += per * m * b
        self.stats["apply_calls"] += 1
        return out

    def _apply(self, V, w, start, stop):
        data, dt = self.data, self.dtype
        b = V.shape[1]
        if self.operator_form:
            d = data.d
            M = _vec2mat(V, d)
            Mcat = np.ascontiguousarray(M.transpose(1, 0, 2).reshape(d, b * d), dtype=dt)
            trM = np.trace(M, axis1=1, axis2=2).astype(dt)
            G = np.zeros((d, b * d))
            ssum = np.zeros(b)
            for s, Xc in data.blocks(start, stop, self.rows, dt):
                m = Xc.shape[0]
                quad = np.einsum("mkd,md->mk", (Xc @ Mcat).reshape(m, b, d), Xc)
                sc = (quad - trM) * w[s:s + m, None].astype(dt)  # s_mu = w_mu <X~_mu, M>
                S = (sc[:, :, None] * Xc[:, None, :]).reshape(m, b * d)
                G += Xc.T @ S  # X^T diag(s) X for all b matrices in one GEMM; summed in float64
                ssum += sc.sum(axis=0, dtype=float)
            G = G.reshape(d, b, d).transpose(1, 0, 2)
            G[:, np.arange(d), np.arange(d)] -= ssum[:, None]
            return _mat2vec(0.5 * G)
        out = np.zeros((data.D, b))
        Vd = np.asarray(V, dtype=dt)
        for s, Zb in data.blocks(start, stop, self.rows, dt):
            F = data.features(Zb)
            P = F @ Vd
            P *= w[s:s + F.shape[0], None].astype(dt)
            out += F.T @ P
        return out

    def dense(self, weights, checkpoints, callback):
        """Accumulate ``S_k(m) = sum_{mu < m} weights[k]_mu F_mu F_mu^T`` and call ``callback(j, [S_k])`` at each
        checkpoint ``m_j`` (sorted). Chunk sums go into a ``dtype`` buffer that is flushed to float64 every few chunks
        and at checkpoints (bounds float32 accumulation error)."""
        t0 = time.perf_counter()
        data = self.data
        sums = (_MomentSums(data.d, len(weights), self.dtype) if self.operator_form
                else _GramSums(data.D, len(weights), self.dtype))
        j, pending, checkpoints = 0, 0, list(checkpoints)
        # Blocks are cut at checkpoints, so every checkpoint is a block boundary.
        bounds = sorted(set([0] + checkpoints))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            for s, Zb in data.blocks(lo, hi, self.dense_rows, self.dtype):
                sums.add(Zb if self.operator_form else data.features(Zb), [w[s:s + Zb.shape[0]] for w in weights])
                pending += 1
                if pending >= 16:
                    sums.flush()
                    pending = 0
            sums.flush()
            pending = 0
            while j < len(checkpoints) and checkpoints[j] == hi:
                callback(j, sums.totals())
                j += 1
        self.stats["dense_time"] += time.perf_counter() - t0  # includes the callbacks (eigen-solves)
        self.stats["dense_flops"] += sums.flops_per_sample * checkpoints[-1]

    def project(self, A: np.ndarray, start: int, stop: int, dtype=None) -> np.ndarray:
        """``h = F A^T`` on rows ``[start, stop)``, shape (stop - start, r), float64."""
        data = self.data
        dt = self.dtype if dtype is None else np.dtype(dtype)
        out = np.empty((stop - start, A.shape[0]))
        if self.operator_form:
            mats = _vec2mat(A.T, data.d)
            for s, Xc in data.blocks(start, stop, max(self.rows, 1024), dt):
                out[s - start:s - start + Xc.shape[0]] = _q2_project(Xc, mats, dt)
            return out
        Ad = np.asarray(A.T, dtype=dt)
        for s, Zb in data.blocks(start, stop, self.rows, dt):
            out[s - start:s - start + Zb.shape[0]] = data.features(Zb) @ Ad
        return out


class _GramSums:
    """``sum w F F^T`` for lifted features: signed ``syrk`` updates of the upper triangle (``D^2`` flops a sample)."""

    def __init__(self, D, n_weights, dtype):
        self.syrk = _blas.ssyrk if np.dtype(dtype) == np.float32 else _blas.dsyrk
        self.dtype = dtype
        self.acc = [np.zeros((D, D)) for _ in range(n_weights)]
        self.buf = [np.zeros((D, D), dtype=dtype, order="F") for _ in range(n_weights)]
        self.flops_per_sample = float(n_weights) * D * D

    def add(self, F, ws):
        for k, w in enumerate(ws):
            # sum w F F^T = sum_{w>0} (sqrt(w) F)(..)^T - sum_{w<0} (..)(..)^T: two rank-m updates of the upper
            # triangle do half the flops of one gemm.
            for sign, mask in ((1.0, w > 0), (-1.0, w < 0)):
                if not mask.any():
                    continue
                root = np.sqrt(np.abs(w[mask]))[:, None].astype(self.dtype)
                A = F * root if mask.all() else F[mask] * root
                self.buf[k] = self.syrk(sign, A.T, beta=1.0, c=self.buf[k], trans=0, lower=0, overwrite_c=1)

    def flush(self):
        for a, b in zip(self.acc, self.buf):
            a += b
            b[...] = 0.0

    def totals(self):
        return [a + np.triu(a, 1).T for a in self.acc]


@functools.lru_cache(maxsize=16)
def _moment_groups(d: int):
    """How :class:`_MomentSums` stores the distinct fourth moments ``sum w x_i x_j x_k x_l``, ``i <= j <= k <= l``.

    With ``P_ab = x_a x_b`` (a <= b, the lift's order), entry ``((a, b), (c, e))`` of ``sum w P P^T`` depends only on
    the multiset {a, b, c, e}: ``C(d+3, 4)`` numbers instead of ``D^2 / 2``, a third of the flops of ``syrk``.
    Sorted, the multiset is row ``(i, j)``, column ``(k, l)`` of the product of the pairs that end in ``j`` with the
    pairs that start at ``>= j``. Consecutive ``j`` share one GEMM of at least 48 rows (the few columns with
    ``k < j`` that this adds are computed and never read). Returns [(j0, j1, rows, cols, start)]: row-major
    ``rows x cols`` blocks of one flat buffer, rows ordered by ``(j, i)``, columns by pair from ``(j0, j0)`` on.
    """
    offsets = _q2_tables(d)[0]
    D = int(offsets[-1])
    groups, start, j0 = [], 0, 0
    while j0 < d:
        j1, rows = j0, 0
        while j1 < d and rows < 48:
            rows += j1 + 1
            j1 += 1
        groups.append((j0, j1, rows, D - int(offsets[j0]), start))
        start += rows * (D - int(offsets[j0]))
        j0 = j1
    return groups


@functools.lru_cache(maxsize=1)
def _moment_index(d: int) -> np.ndarray:
    """(D, D) map from each entry of ``sum w P P^T`` to its place in the flat buffer of :func:`_moment_groups`."""
    offsets, (pa, pb), _ = _q2_tables(d)
    D = int(offsets[-1])
    first, start, cols, row_base = (np.empty(d, dtype=np.int64) for _ in range(4))
    for j0, j1, _, ncols, gstart in _moment_groups(d):
        js = np.arange(j0, j1)
        first[js], start[js], cols[js] = j0, gstart, ncols
        row_base[js] = (js * (js + 1) - j0 * (j0 + 1)) // 2  # rows of the pairs (i, j') with j0 <= j' < j
    index = np.empty((D, D), dtype=np.int32 if _moment_groups(d)[-1][4] < 2**31 else np.int64)
    c, e = pa[None, :], pb[None, :]
    for r0 in range(0, D, 256):  # in row blocks: bounded temporaries
        a, b = pa[r0:r0 + 256, None], pb[r0:r0 + 256, None]
        i, l = np.minimum(a, c), np.maximum(b, e)
        lo, hi = np.maximum(a, c), np.minimum(b, e)
        j, k = np.minimum(lo, hi), np.maximum(lo, hi)
        index[r0:r0 + 256] = start[j] + (row_base[j] + i) * cols[j] + offsets[k] + (l - k) - offsets[first[j]]
    return index


class _MomentSums:
    """``sum w F F^T`` for the ``q = 2`` lift of raw inputs, from the distinct fourth moments (:func:`_moment_layout`).

    With ``F = s * P - c`` (``s = 1/sqrt2`` and ``c = 1/sqrt2`` on the pairs ``(a, a)``, else ``s = 1``, ``c = 0``):
    ``sum w F F^T = S (sum w P P^T) S - (S t) c^T - c (S t)^T + (sum w) c c^T`` with ``t = sum w P``.
    """

    def __init__(self, d, n_weights, dtype):
        self.d, self.K, self.dtype = d, n_weights, dtype
        self.groups = _moment_groups(d)
        self.offsets = _q2_tables(d)[0]
        self.acc = [np.zeros((self.K * g[2], g[3])) for g in self.groups]
        self.buf = [np.zeros((self.K * g[2], g[3]), dtype=dtype) for g in self.groups]
        self.t = np.zeros((self.K, int(self.offsets[-1])))
        self.wsum = np.zeros(self.K)
        self.flops_per_sample = 2.0 * self.K * sum(g[2] * g[3] for g in self.groups)

    def add(self, X, ws):
        m, d = X.shape
        P = np.empty((m, int(self.offsets[-1])), dtype=X.dtype)
        for a in range(d):  # raw pair products x_a x_b, b >= a: the lift without the Hermite shift
            np.multiply(X[:, a:a + 1], X[:, a:], out=P[:, self.offsets[a]:self.offsets[a + 1]])
        W = np.stack([np.asarray(w, dtype=X.dtype) for w in ws], axis=1)  # (m, K)
        self.t += (P.T @ W).T
        self.wsum += W.sum(axis=0, dtype=float)
        for (j0, j1, rows, cols, _), buf in zip(self.groups, self.buf):
            L = np.empty((m, self.K, rows), dtype=X.dtype)  # columns (k, pair (i, j)): w_k x_i x_j
            r = 0
            for j in range(j0, j1):
                np.multiply(X[:, :j + 1], X[:, j:j + 1], out=L[:, 0, r:r + j + 1])
                r += j + 1
            for k in range(1, self.K):
                np.multiply(L[:, 0], W[:, k:k + 1], out=L[:, k])
            L[:, 0] *= W[:, :1]
            buf += L.reshape(m, self.K * rows).T @ P[:, self.offsets[j0]:]

    def flush(self):
        for a, b in zip(self.acc, self.buf):
            a += b
            b[...] = 0.0

    def totals(self):
        diag = self.offsets[:-1]
        s = np.ones(int(self.offsets[-1]))
        s[diag] = 1.0 / _SQRT2
        out = []
        for k in range(self.K):
            flat = np.empty(sum(g[2] * g[3] for g in self.groups))
            for (_, _, rows, cols, start), a in zip(self.groups, self.acc):
                flat[start:start + rows * cols] = a[k * rows:(k + 1) * rows].ravel()
            S = flat[_moment_index(self.d)]
            S *= s[:, None]
            S *= s[None, :]
            u = (s * self.t[k]) / _SQRT2
            S[:, diag] -= u[:, None]
            S[diag, :] -= u[None, :]
            S[np.ix_(diag, diag)] += 0.5 * self.wsum[k]
            out.append(0.5 * (S + S.T))  # exactly symmetric (the two corrections round differently)
        return out


# --------------------------------------------------------------------------------------------------------------------
# Eigen-solvers: top-k by |eigenvalue|
# --------------------------------------------------------------------------------------------------------------------
def _select_abs(theta, U, k):
    order = np.argsort(-np.abs(theta), kind="stable")[:k]
    return theta[order], U[:, order]


def _orth(Y):
    Q, _ = np.linalg.qr(Y)
    return Q


def top_eigenpairs(C: np.ndarray, k: int):
    """Top-``k`` eigenpairs of a symmetric matrix by ``|eigenvalue|`` (dense ``eigh``): ``(values, vectors, all)``.

    ``vectors`` has the eigenvectors as columns, ordered by decreasing ``|value|``; ``all`` is the full spectrum.
    """
    theta, U = np.linalg.eigh(C)
    vals, vecs = _select_abs(theta, U, k)
    return vals, vecs, theta


def _top_abs_explicit(C: np.ndarray, k: int):
    """Top-``k`` eigenpairs of an explicit symmetric ``C`` by ``|eigenvalue|``: ``(values, vectors)``.

    Implicitly restarted Lanczos (ARPACK, ``which="LM"``, to machine precision) costs ``O(D^2)`` per step, against
    ``O(D^3)`` for a full ``eigh``: at ``D = 1830`` it is about 13x faster with the same subspace to 1e-15 (measured).
    Dense ``eigh`` serves small matrices and the rare case where ARPACK does not converge.
    """
    D = C.shape[0]
    if D >= 200 and 4 * k < D:
        v0 = np.random.default_rng(0).standard_normal(D)  # fixed: the result must not depend on the estimator seed
        try:
            theta, U = eigsh(C, k=k, which="LM", v0=v0, tol=0.0)
            return _select_abs(theta, U, k)
        except ArpackNoConvergence:
            pass
    return top_eigenpairs(C, k)[:2]


def _block_krylov(matvec, D, k, *, block, rng, V0=None, tol=1e-6, max_passes=60, callback=None):
    """Block Lanczos with full re-orthogonalisation; Rayleigh–Ritz on the whole basis after every pass.

    One *pass* = one ``matvec`` on a block of ``block`` vectors. Both spectrum ends converge together, so the
    top-``k`` by ``|value|`` come out of one run. Stops when every selected Ritz pair has residual
    ``mean_i (|C u_i - theta_i u_i| / gap_i)^2 <= tol``, ``gap_i`` = distance from ``theta_i`` to the unselected
    Ritz values: an estimate of ``1 - q`` against the exact top-``k`` subspace. ``callback(passes, values, vectors)``
    sees the selected Ritz pairs after every pass (the benchmark's accuracy curves). A ``block`` smaller than ``k``
    takes at least ``ceil(k / block)`` passes. Returns ``(values, vectors, info)``.
    """
    block = max(block, 1)
    start = rng.standard_normal((D, block))
    if V0 is not None:
        m = min(V0.shape[1], block)
        start[:, :m] = V0[:, :m]
    Qs = [_orth(start)]
    Ws = []
    passes = 0
    while True:
        Ws.append(matvec(Qs[-1]))
        passes += 1
        Q = np.hstack(Qs)
        if Q.shape[1] < k:  # a block smaller than k: grow the basis to k vectors before the first Rayleigh–Ritz
            Qs.append(_next_block(Q, Ws[-1]))
            continue
        W = np.hstack(Ws)
        T = Q.T @ W
        theta, S = np.linalg.eigh(0.5 * (T + T.T))
        order = np.argsort(-np.abs(theta), kind="stable")[:k]
        th, Ssel = theta[order], S[:, order]
        U = Q @ Ssel
        R = W @ Ssel - U * th
        res = np.linalg.norm(R, axis=0)
        # Davis–Kahan-type estimate of the subspace error (1 - overlap): only gaps between selected and
        # unselected eigenvalues matter, rotations inside the selected subspace are gauge.
        rest = np.delete(theta, order)
        gap = (np.min(np.abs(th[:, None] - rest[None, :]), axis=1) if rest.size
               else np.full(k, np.max(np.abs(theta))))
        err = float(np.mean(np.minimum(1.0, (res / np.maximum(gap, np.finfo(float).tiny)) ** 2)))
        if callback is not None:
            callback(passes, th, U)
        converged = err <= tol
        if converged or passes >= max_passes or Q.shape[1] + block > D:
            info = {"passes": passes, "converged": converged, "error_estimate": err, "basis": Q.shape[1]}
            return th, U, info
        Qs.append(_next_block(Q, Ws[-1]))


def _next_block(Q, W):
    """The next orthonormal Krylov block: ``W`` orthogonalised against the basis ``Q``."""
    Z = W - Q @ (Q.T @ W)
    Z -= Q @ (Q.T @ Z)  # second Gram–Schmidt sweep: loss of orthogonality wrecks Lanczos otherwise
    Qn = _orth(Z)
    Qn -= Q @ (Q.T @ Qn)
    return _orth(Qn)


def _rsi(matvec, D, k, *, rng, oversample=10, passes=15):
    """Randomized subspace iteration (reference): ``passes`` applications to ``k + oversample`` vectors, then
    Rayleigh–Ritz from the last product (no extra pass)."""
    b = min(k + oversample, D)
    Q = _orth(rng.standard_normal((D, b)))
    for p in range(passes):
        Y = matvec(Q)
        if p < passes - 1:
            Q = _orth(Y)
    T = Q.T @ Y
    theta, S = np.linalg.eigh(0.5 * (T + T.T))
    th, Ssel = _select_abs(theta, S, k)
    return th, Q @ Ssel, {"passes": passes, "converged": True, "basis": b}


def spectral_matrix(X, y, q=2, *, features=False, standardise=True, dtype=np.float64) -> np.ndarray:
    """Explicit ``C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)`` (SPEC §2 step 1), ``D x D``, float64.

    ``standardise=True`` uses ``(y - mean) / std`` as the estimator does. Reference for tests and small ``D``.
    """
    q = check_int("q", q, minimum=1)
    data = _prepare(X, y, q, features)
    w = _standardise(data.y)[0] if standardise else data.y
    out = []
    _Kernel(data, dtype).dense([w], [data.n], lambda j, S: out.append(S[0]))
    C = out[0] / data.n
    C[np.diag_indices_from(C)] -= w.sum() / data.n
    return C


def _standardise(y):
    mean = float(np.mean(y))
    std = float(np.std(y))
    if not std > 0:
        raise ValueError("y is constant: labels cannot be standardised")
    return (y - mean) / std, mean, std


def _prepare(Z, y, q, features, d1=None):
    """Validate arrays into a :class:`_Data`."""
    if isinstance(Z, SampleStream):
        if y is not None:
            raise ValueError("pass y=None with a SampleStream (it makes its own labels)")
        if features != Z.gaussian_equivalent and features is not None:
            raise ValueError("this SampleStream's kind does not match the call (use fit for inputs streams and "
                             "fit_features for gaussian_equivalent streams, or fit for both)")
        if Z.q != q:
            raise ValueError(f"stream has q = {Z.q}, estimator q = {q}")
        data = _Data(kind=Z.kind, q=q, stream=Z)
    else:
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[0] < 1 or Z.shape[1] < 1:
            raise ValueError(f"{'F' if features else 'X'} must be a 2-D array (n, {'D' if features else 'd'}), "
                             f"got shape {Z.shape}")
        if not np.issubdtype(Z.dtype, np.floating) and not np.issubdtype(Z.dtype, np.integer):
            raise ValueError(f"inputs must be real numbers, got dtype {Z.dtype}")
        if not np.all(np.isfinite(Z)):
            raise ValueError("inputs contain NaN or infinite values")
        if y is None:
            raise ValueError("y is required with array inputs")
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or y.shape[0] != Z.shape[0]:
            raise ValueError(f"y must have shape ({Z.shape[0]},) to match the inputs, got {y.shape}")
        data = _Data(Z, y, kind="features" if features else "inputs", q=q)
    if d1 is not None:
        if d1 > data.D:
            raise ValueError(f"d1 = {d1} exceeds the feature dimension D = {data.D}")
    return data


# --------------------------------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------------------------------
class LayerwiseSpectral:
    """Algorithm 1 (SPEC §2): spectral first layer, spectral second layer, 1-D readout.

    Parameters
    ----------
    d1 : int
        Number of first-layer directions (the target's ``floor(d^eps)``).
    q : int
        Degree of the Hermite lift.
    readout : "affine", "poly" or int
        ``"affine"``: ``y ~ c0 + c1 h2_hat`` (g = id). An int ``p >= 1`` (``"poly"`` = 3): least-squares polynomial
        of degree ``p`` in ``h2_hat`` (nonlinear ``g`` such as tanh; SPEC §2 step 5).
    split : bool
        ``True``: first layer on the first ``floor(n/2)`` samples, second layer and readout on the rest (the paper's
        analysis). ``False``: all steps reuse all samples (the authors' simulations).
    method : {"auto", "dense", "operator", "rsi"}
        How the top-``d1`` eigenvectors of ``C_hat`` are computed (module docstring). ``"auto"`` estimates the cost
        of ``"dense"`` and ``"operator"`` from ``(d, q, n, sweep or not)`` and picks the cheaper.
    seed : None, int, SeedSequence or Generator
        Start vectors of the iterative solvers (an int gives the same result on every fit).
    dtype : float32 or float64
        Precision of the sample kernels (sums over chunks are kept in float64; eigen-solves are float64).
    tol : float
        Krylov stopping rule on the estimated subspace error ``mean_i (residual_i / gap_i)^2`` (``gap_i``: distance
        of the ``i``-th selected Ritz value to the unselected ones), i.e. on ``1 - q`` against the exact top-``d1``.
    block : int or None
        Krylov block size; default ``d1 + max(2, d1 // 2)``.
    max_passes : int
        Cap on Krylov passes over the data.
    center : bool
        ``True``: labels standardised as ``(y - mean) / std`` on each fit's own samples. ``False``: scaled only,
        ``y / std``. For a centred link (``E g = 0``, as the paper assumes) the two differ by
        ``(mean/std) (1/n) sum (F F^T - I)``, of order ``sqrt(D) / n``; ``False`` lets a dense :meth:`fit_path`
        accumulate one matrix instead of two (``sum y F F^T`` alone), about twice as fast.

    Attributes
    ----------
    directions_ : ndarray (d1, D)
        Orthonormal rows spanning the first layer (coordinates of :func:`hiermodel.hermite_features`), ordered by
        decreasing ``|eigenvalue|``.
    eigenvalues_ : ndarray (d1,)
        The selected eigenvalues of ``C_hat = (1/n1) sum y_std (F F^T - I)`` (``n1`` first-layer samples).
    second_layer_ : ndarray (d1, d1)
        ``A2_hat = (1/n2) sum y_std (h_hat h_hat^T - I)``.
    readout_coef_ : ndarray
        Readout coefficients on ``(h2_hat - h2_mean_) / h2_scale_`` (powers 0..p).
    y_mean_, y_std_ : float
        Label standardisation (all training labels); :meth:`predict` returns the original scale.
    n_, n_first_, n_second_ : int
        Training size and the sizes used by the first and by the second layer.
    method_ : str
        The method actually used; ``passes_``: data passes of the spectral step (dense: 1); ``converged_``.
    """

    def __init__(self, d1, *, q=2, readout="affine", split=False, method="auto", seed=None, dtype=np.float32,
                 tol=1e-6, block=None, max_passes=60, center=True):
        self.d1 = check_int("d1", d1, minimum=1)
        self.q = check_int("q", q, minimum=1)
        self.readout = readout
        self._degree = self._readout_degree(readout)
        self.split = bool(split)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
        self.method = method
        self.seed = seed
        as_generator(seed)  # validates; the Generator itself is built at fit time
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.tol = check_real("tol", tol, minimum=0.0, open_min=True)
        self.block = None if block is None else check_int("block", block, minimum=1)
        self.max_passes = check_int("max_passes", max_passes, minimum=1)
        self.center = bool(center)

    @staticmethod
    def _readout_degree(readout):
        if isinstance(readout, str):
            if readout == "affine":
                return 1
            if readout == "poly":
                return 3
            raise ValueError(f"unknown readout {readout!r}: use 'affine', 'poly' or an int degree >= 1")
        if isinstance(readout, bool) or not isinstance(readout, numbers.Integral) or readout < 1:
            raise ValueError(f"readout must be 'affine', 'poly' or an int degree >= 1, got {readout!r}")
        return int(readout)

    def __repr__(self):
        return (f"LayerwiseSpectral(d1={self.d1}, q={self.q}, readout={self.readout!r}, split={self.split}, "
                f"method={self.method!r})")

    # --- method choice ----------------------------------------------------------------------------------------
    def _choose(self, data, n_first_total, sweep_points):
        if self.method != "auto":
            if self.method == "dense" and data.D > _DENSE_MAX_D:
                raise ValueError(f"method='dense' needs a D x D matrix; D = {data.D} > {_DENSE_MAX_D}")
            return self.method
        if data.D > _DENSE_MAX_D:
            return "operator"
        D, b = data.D, self._block_size(data.D)
        # Flop models, calibrated on 2 cores (benchmarks/bench_spectral.py). Single fits at n = d^3: dense is exact and
        # fastest up to d = 80 and within 1.1x of tol-1e-3 Krylov at d = 120; nested sweeps favour dense further.
        n_sum = n_first_total if sweep_points <= 1 else 3.0 * n_first_total  # sum of nested prefixes
        n_mats = 1 if sweep_points <= 1 or not self.center else 2  # centred sweeps also need sum F F^T
        moments = data.kind == "inputs" and data.q == 2
        per_sample = 2.0 * sum(g[2] * g[3] for g in _moment_groups(data.d)) if moments else 1.0 * D * D
        dense = n_mats * n_first_total * per_sample + sweep_points * 300.0 * D ** 2  # GEMMs + ARPACK
        per_vec = 4.0 * data.d ** 2 if moments else 4.0 * D
        passes = 12.0 if sweep_points <= 1 else 10.0  # measured: ~12-20 cold, ~10 warm-started
        operator = 1.5 * 2.0 * passes * n_sum * per_vec * b  # its kernel runs at ~1/2-2/3 of the syrk rate
        return "dense" if dense <= operator else "operator"

    def _block_size(self, D):
        b = self.block if self.block is not None else self.d1 + max(2, self.d1 // 2)
        return int(min(b, D))

    # --- fitting ----------------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit on raw inputs ``X`` (n, d) and labels ``y`` (n,), or on a :class:`SampleStream` (``y=None``)."""
        features = X.gaussian_equivalent if isinstance(X, SampleStream) else False
        return self._fit_paths(_prepare(X, y, self.q, features, self.d1), None)[0]

    def fit_features(self, F, y=None):
        """Fit on lifted features ``F`` (n, D) — the Gaussian-equivalent mode, ``F ~ N(0, I_D)``."""
        features = True if not isinstance(F, SampleStream) else F.gaussian_equivalent
        return self._fit_paths(_prepare(F, y, self.q, features, self.d1), None)[0]

    def fit_path(self, X, y=None, ns=None, *, features=False):
        """Fit on every prefix ``X[:n]`` for ``n`` in ``ns`` in one sweep; returns a list of fitted estimators.

        Each element equals ``LayerwiseSpectral(...).fit(X[:n], y[:n])`` (dense: to rounding; iterative: to the
        solver tolerance). ``X`` may be a :class:`SampleStream` (``y=None``); ``features=True`` for arrays of
        lifted features.
        """
        if ns is None:
            raise ValueError("ns (the sample sizes of the path) is required")
        if isinstance(X, SampleStream):
            features = X.gaussian_equivalent
        data = _prepare(X, y, self.q, features, self.d1)
        ns_arr = np.asarray(ns)
        if ns_arr.ndim != 1 or ns_arr.size < 1:
            raise ValueError("ns must be a non-empty 1-D list of sample sizes")
        ns_list = [check_int("n in ns", int(v) if float(v).is_integer() else v, minimum=1) for v in ns_arr.tolist()]
        if any(b <= a for a, b in zip(ns_list[:-1], ns_list[1:])):
            raise ValueError("ns must be strictly increasing")
        if ns_list[-1] > data.n:
            raise ValueError(f"largest n in ns = {ns_list[-1]} exceeds the number of samples {data.n}")
        return self._fit_paths(data, ns_list)

    def _split_sizes(self, n):
        if self.split:
            n1 = n // 2
            return n1, n1, n  # first layer [0, n1), second layer [n1, n)
        return n, 0, n

    def _fit_paths(self, data, ns):
        single = ns is None
        ns = [data.n] if single else ns
        plans = []
        for n in ns:
            n1, s2, e2 = self._split_sizes(n)
            if n1 < self.d1 or (e2 - s2) < self.d1:
                raise ValueError(f"n = {n} too small: the {'halves' if self.split else 'sample'} must have at least "
                                 f"d1 = {self.d1} samples")
            yn, mean, std = _standardise(data.y[:n])
            if not self.center:
                yn, mean = data.y[:n] / std, 0.0
            plans.append({"n": n, "n1": n1, "s2": s2, "e2": e2, "w": yn, "mean": mean, "std": std})
        method = self._choose(data, ns[-1] if not self.split else ns[-1] // 2, len(ns))
        rng = np.random.default_rng(self.seed) if isinstance(self.seed, numbers.Integral) else as_generator(self.seed)
        kernel = _Kernel(data, self.dtype)
        k = self.d1
        if method == "dense":
            self._dense_path(data, kernel, plans, k)
        else:
            prev = None
            for p in plans:
                n1, w = p["n1"], p["w"]
                wsum = float(w[:n1].sum())

                def matvec(V, n1=n1, w=w, wsum=wsum):
                    return (kernel.apply(V, w, 0, n1) - wsum * V) / n1

                if method == "rsi":
                    th, U, info = _rsi(matvec, data.D, k, rng=rng)
                else:
                    th, U, info = _block_krylov(matvec, data.D, k, block=self._block_size(data.D), rng=rng,
                                                V0=prev, tol=self.tol, max_passes=self.max_passes)
                    prev = U
                p.update(theta=th, U=U, passes=info["passes"], converged=info["converged"])
        self._last_stats = dict(kernel.stats)  # the spectral step only
        # Second layer and readout: one pass computes h_hat on each plan's second-stage rows.
        self._second_stage(data, kernel, plans)
        fitted = []
        for p in plans:
            est = self if single else copy.copy(self)
            est._store(p, method, data)
            fitted.append(est)
        return fitted

    def _dense_path(self, data, kernel, plans, k):
        n1s = [p["n1"] for p in plans]
        if len(plans) == 1:
            weights = [plans[0]["w"]]
        elif not self.center:
            weights = [data.y]  # y / std_n: one running sum serves every prefix
        else:
            # Per-prefix standardisation shifts the weights by a constant: keep sum y F F^T and sum F F^T.
            weights = [data.y, np.ones(data.n)]
        cps = sorted(set(n1s))

        def at_checkpoint(j, sums):
            m = cps[j]
            for p in plans:
                if p["n1"] != m:
                    continue
                if len(plans) == 1:
                    C = sums[0] / m
                    wsum = float(p["w"][:m].sum())
                else:
                    C = (sums[0] - p["mean"] * sums[1] if self.center else sums[0]) / (p["std"] * m)
                    wsum = float(p["w"][:m].sum())
                C[np.diag_indices_from(C)] -= wsum / m
                th, U = _top_abs_explicit(C, k)
                p.update(theta=th, U=U, passes=1, converged=True)

        kernel.dense(weights, cps, at_checkpoint)

    def _second_stage(self, data, kernel, plans):
        """``h_hat`` on each plan's second-stage rows in one pass over ``[0, max e2)``, then ``A2_hat``, readout."""
        lo = min(p["s2"] for p in plans)
        hi = max(p["e2"] for p in plans)
        A_all = np.vstack([p["U"].T for p in plans])
        r = self.d1
        hs = [np.empty((p["e2"] - p["s2"], r)) for p in plans]
        step = max(65536, 1)
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            active = [i for i, p in enumerate(plans) if p["s2"] < e and p["e2"] > s]
            A = np.vstack([A_all[i * r:(i + 1) * r] for i in active])
            H = kernel.project(A, s, e)
            for c, i in enumerate(active):
                p = plans[i]
                a, b = max(s, p["s2"]), min(e, p["e2"])
                hs[i][a - p["s2"]:b - p["s2"]] = H[a - s:b - s, c * r:(c + 1) * r]
        for p, h in zip(plans, hs):
            w = p["w"][p["s2"]:p["e2"]]
            m = h.shape[0]
            A2 = (h * w[:, None]).T @ h / m
            A2[np.diag_indices_from(A2)] -= w.sum() / m
            A2 = 0.5 * (A2 + A2.T)
            h2 = self._h2(h, A2)
            center, scale = float(np.mean(h2)), float(np.std(h2))
            scale = scale if scale > 0 else 1.0
            V = np.vander((h2 - center) / scale, self._degree + 1, increasing=True)
            coef, *_ = np.linalg.lstsq(V, w, rcond=None)
            p.update(A2=A2, h2_center=center, h2_scale=scale, coef=coef)

    @staticmethod
    def _h2(h, A2):
        """``h2_hat = (h^T A2 h - tr A2) / sqrt2`` (SPEC §2 step 4: ``<A2_hat, He_2(h_hat)>`` up to scale)."""
        return (np.einsum("ni,ij,nj->n", h, A2, h) - np.trace(A2)) / _SQRT2

    def _store(self, p, method, data):
        U = p["U"]
        self.directions_ = np.ascontiguousarray(U.T)
        self.eigenvalues_ = np.asarray(p["theta"], dtype=float)
        self.second_layer_ = p["A2"]
        self.readout_coef_ = p["coef"]
        self.h2_mean_ = p["h2_center"]
        self.h2_scale_ = p["h2_scale"]
        self.y_mean_ = p["mean"]
        self.y_std_ = p["std"]
        self.n_ = p["n"]
        self.n_first_ = p["n1"]
        self.n_second_ = p["e2"] - p["s2"]
        self.method_ = method
        self.passes_ = p["passes"]
        self.converged_ = p["converged"]
        self.kernel_stats_ = dict(self._last_stats)
        self.D_ = data.D
        self.d_ = data.d

    # --- prediction -------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "directions_"):
            raise ValueError("this LayerwiseSpectral is not fitted yet: call fit, fit_features or fit_path")

    def first_layer(self, X):
        """``h_hat = A_hat F(x)`` for raw inputs ``X`` (n, d): shape (n, d1)."""
        self._check_fitted()
        data = _prepare(X, np.zeros(np.shape(X)[0] if np.ndim(X) == 2 else 0), self.q, False)
        if data.D != self.D_:
            raise ValueError(f"X has d = {data.d}, which lifts to D = {data.D}; the estimator was fitted with "
                             f"D = {self.D_}")
        return _Kernel(data, np.float64).project(self.directions_, 0, data.n)

    def first_layer_features(self, F):
        """``h_hat = A_hat F`` for lifted features ``F`` (n, D)."""
        self._check_fitted()
        data = _prepare(F, np.zeros(np.shape(F)[0] if np.ndim(F) == 2 else 0), self.q, True)
        if data.D != self.D_:
            raise ValueError(f"F must have D = {self.D_} columns, got {data.D}")
        return _Kernel(data, np.float64).project(self.directions_, 0, data.n)

    def _predict_h(self, h):
        h2 = (self._h2(h, self.second_layer_) - self.h2_mean_) / self.h2_scale_
        ys = np.vander(h2, len(self.readout_coef_), increasing=True) @ self.readout_coef_
        return self.y_mean_ + self.y_std_ * ys

    def predict(self, X):
        """Predictions on the original label scale for raw inputs ``X`` (n, d)."""
        return self._predict_h(self.first_layer(X))

    def predict_features(self, F):
        """Predictions for lifted (e.g. Gaussian-equivalent) features ``F`` (n, D)."""
        return self._predict_h(self.first_layer_features(F))
