"""The sample kernels of the first layer: weighted sums of ``F F^T`` over the data, explicit or applied to vectors.

:class:`SampleKernel` computes ``sum_mu w_mu F_mu F_mu^T`` (no ``- I`` term) either applied to a block of vectors
(the matrix-free route) or formed explicitly at a list of checkpoints (the dense route), from a
:class:`hiermodel.data.TrainingData`. For ``q = 2`` on raw inputs both avoid the lift: the product uses the operator
form of SPEC §2 (``C[M] ∝ sum w (<X~, M> X~ - 2M)``) and the explicit matrix is read off the ``C(d+3, 4)`` distinct
fourth moments (:class:`MomentSums`); otherwise the lift is formed in chunks (:class:`GramSums`: signed ``syrk``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.linalg import blas as _blas

from .data import TrainingData
from .hermite import matrix_to_vector, q2_layout, vector_to_matrix

__all__ = ["SampleKernel", "GramSums", "MomentSums", "QuadraticProjector", "blas_threads", "moment_groups",
           "moment_index", "moment_flops"]

_SQRT2 = math.sqrt(2.0)


class SampleKernel:
    """``sum_{mu < stop} w_mu F_mu F_mu^T`` applied to vectors, or formed explicitly (no ``- I`` term here)."""

    def __init__(self, data: TrainingData, dtype):
        self.data = data
        self.dtype = np.dtype(dtype)
        self.operator_form = not data.features and data.q == 2
        f32 = self.dtype == np.float32
        if self.operator_form:
            self.rows = 512 if f32 else 1024  # row blocks of the projections (their numbers depend on it)
        else:
            self.rows = int(max(64, min(2048, (1 << 21) // max(data.D, 1))))
        self.dense_rows = int(max(64, min(2048 if self.operator_form else 4096, (1 << 23) // max(data.D, 1))))
        # Wall time and flop count of the sample kernels (for the benchmark's GFLOP/s column).
        self.stats = {"apply_time": 0.0, "apply_flops": 0.0, "apply_calls": 0, "dense_time": 0.0, "dense_flops": 0.0,
                      "dense_kernel_time": 0.0}

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
        if self.operator_form:
            return self._apply_operator(V, w, start, stop)
        data, dt = self.data, self.dtype
        out = np.zeros((data.D, V.shape[1]))
        Vd = np.asarray(V, dtype=dt)
        for s, Zb in data.blocks(start, stop, self.rows, dt):
            F = data.lift(Zb)
            P = F @ Vd
            P *= w[s:s + F.shape[0], None].astype(dt)
            out += F.T @ P
        return out

    def _apply_operator(self, V, w, start, stop):
        """The operator form (module docstring): ``(1/2)[X^T diag(s) X - (sum s) I]`` for each column of ``V``.

        Row blocks of ``operator_rows(b)`` rows are processed on worker threads (as many as BLAS threads, each
        with single-threaded BLAS) and their partial sums added in block order: the result does not depend on
        the number of workers.
        """
        d, dt, b = self.data.d, self.dtype, V.shape[1]
        M = vector_to_matrix(V.T, d)
        Mcat = np.ascontiguousarray(M.transpose(1, 0, 2).reshape(d, b * d), dtype=dt)
        trM = np.trace(M, axis1=1, axis2=2).astype(dt)

        def block(s, Xc):
            m = Xc.shape[0]
            quad = np.einsum("mkd,md->mk", (Xc @ Mcat).reshape(m, b, d), Xc)
            sc = (quad - trM) * w[s:s + m, None].astype(dt)  # s_mu = w_mu <X~_mu, M>
            S = (sc[:, :, None] * Xc[:, None, :]).reshape(m, b * d)
            return Xc.T @ S, sc.sum(axis=0, dtype=float)  # X^T diag(s) X for all b matrices in one GEMM

        G = np.zeros((d, b * d))  # summed in float64
        ssum = np.zeros(b)
        workers = blas_threads()
        with _worker_pool(workers) as (pool, one_thread), one_thread():
            for Gb, sb in _in_order(pool, block, self.data.blocks(start, stop, self.operator_rows(b), dt), workers):
                G += Gb
                ssum += sb
        G = G.reshape(d, b, d).transpose(1, 0, 2)
        G[:, np.arange(d), np.arange(d)] -= ssum[:, None]
        return matrix_to_vector(0.5 * G, symmetrise=True).T

    def operator_rows(self, b: int) -> int:
        """Rows per block of the matrix-free product on ``b`` vectors: about 2^20 entries of the ``(rows, b d)``
        temporaries (measured at d = 80: 8192 rows make the single-vector product 1.8x faster than 512)."""
        return int(max(512, min(16384, (1 << 20) // max(b * self.data.d, 1))))

    def dense(self, weights, checkpoints, callback, *, resume=None):
        """Accumulate ``S_k(m) = sum_{mu < m} weights[k]_mu F_mu F_mu^T`` and call ``callback(j, sums)`` at each
        checkpoint ``m_j`` (sorted; ``sums.totals()`` gives ``[S_k]``, ``sums.state()`` what resumes them). Chunk sums
        go into a ``dtype`` buffer that is flushed to float64 every few chunks and at checkpoints (bounds float32
        accumulation error). ``resume=(j0, state)``: continue after checkpoint ``j0 - 1`` from its saved state
        (the same numbers as one uninterrupted pass, since blocks restart at every checkpoint)."""
        t0 = time.perf_counter()
        data = self.data
        sums = (MomentSums(data.d, len(weights), self.dtype) if self.operator_form
                else GramSums(data.D, len(weights), self.dtype))
        checkpoints = list(checkpoints)
        j, pending, t_cb, start = 0, 0, 0.0, 0
        if resume is not None:
            j, state = resume
            sums.load_state(state)
            start = checkpoints[j - 1]
        workers = blas_threads() if self.operator_form else 1
        self.stats["dense_workers"] = workers
        with _worker_pool(workers) as (pool, one_thread):
            # One pass; blocks are cut at checkpoints, so every checkpoint is a block boundary.
            for s, Zb in data.blocks(start, checkpoints[-1], self.dense_rows, self.dtype, cuts=checkpoints):
                if self.operator_form:
                    with one_thread():  # every GEMM single-threaded: the sums do not depend on `workers`
                        sums.add(Zb, [w[s:s + Zb.shape[0]] for w in weights], pool=pool)
                else:
                    sums.add(data.lift(Zb), [w[s:s + Zb.shape[0]] for w in weights])
                pending += 1
                if pending >= 16:
                    sums.flush()
                    pending = 0
                end = s + Zb.shape[0]
                if end == checkpoints[j]:
                    sums.flush()
                    pending = 0
                    while j < len(checkpoints) and checkpoints[j] == end:
                        t1 = time.perf_counter()
                        callback(j, sums)
                        t_cb += time.perf_counter() - t1
                        j += 1
        self.stats["dense_kernel_time"] += time.perf_counter() - t0 - t_cb  # the sums alone (data reads included)
        self.stats["dense_time"] += time.perf_counter() - t0  # includes the callbacks (eigen-solves)
        self.stats["dense_flops"] += sums.flops_per_sample * (checkpoints[-1] - start)

    def project(self, A: np.ndarray, start: int, stop: int, dtype=None) -> np.ndarray:
        """``h = F A^T`` on rows ``[start, stop)``, shape (stop - start, r), float64."""
        out = np.empty((stop - start, A.shape[0]))
        for s, H in self.projections(lambda s: A, start, stop, dtype=dtype):
            out[s - start:s - start + H.shape[0]] = H
        return out

    def projections(self, directions_at, start, stop, *, cuts=(), dtype=None):
        """Yield ``(offset, h_block)`` with ``h = F A^T`` over rows ``[start, stop)`` in one pass over the data.

        ``directions_at(offset)`` gives the ``(r, D)`` directions ``A`` for the block at ``offset`` (it may change
        only at ``cuts``, where blocks are cut); ``h_block`` is float64. For ``q = 2`` on raw inputs the blocks are
        projected on worker threads (as many as BLAS threads, each with single-threaded BLAS, a few blocks ahead
        of the consumer; the numbers do not depend on the count), and BLAS stays pinned to one thread until the
        generator finishes.
        """
        data = self.data
        dt = self.dtype if dtype is None else np.dtype(dtype)
        rows = max(self.rows, 1024) if self.operator_form else self.rows
        current, prepared = None, None
        if not self.operator_form:
            for s, Zb in data.blocks(start, stop, rows, dt, cuts=cuts):
                A = directions_at(s)
                if A is not current:  # convert once per direction set, not once per block
                    current, prepared = A, np.asarray(A.T, dtype=dt)
                yield s, data.lift(Zb) @ prepared
            return

        def projector_at(s):  # prepared once per direction set, not once per block
            nonlocal current, prepared
            A = directions_at(s)
            if A is not current:
                current, prepared = A, QuadraticProjector(vector_to_matrix(A, data.d), dt)
            return prepared

        workers = blas_threads()
        with _worker_pool(workers) as (pool, one_thread), one_thread():
            items = ((s, Zb, projector_at(s)) for s, Zb in data.blocks(start, stop, rows, dt, cuts=cuts))
            yield from _in_order(pool, lambda s, Zb, project: (s, project(Zb)), items, workers)


class QuadraticProjector:
    """:func:`hiermodel.hermite.quadratic_projection` with the matrices prepared once for many blocks: the same
    operations on the same operands (bit-identical results), without re-forming the ``(d, r d)`` matrix per block."""

    def __init__(self, mats, dtype):
        self.r, self.d, _ = mats.shape
        self.dtype = np.dtype(dtype)
        self.Mcat = np.ascontiguousarray(mats.transpose(1, 0, 2).reshape(self.d, self.r * self.d), dtype=self.dtype)
        self.trace = np.trace(mats, axis1=1, axis2=2)

    def __call__(self, X):
        Xc = np.asarray(X, dtype=self.dtype)
        quad = np.einsum("mrd,md->mr", (Xc @ self.Mcat).reshape(len(Xc), self.r, self.d), Xc)
        return (quad.astype(float) - self.trace) / _SQRT2


def blas_threads() -> int:
    """The BLAS thread count in effect (threadpoolctl; the smallest over the loaded BLAS libraries, 1 if none)."""
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, min(counts)) if counts else 1


def _in_order(pool, fn, items, ahead):
    """``fn(*item)`` for each item, in order: on ``pool`` with up to ``ahead`` items in flight beyond the one being
    consumed (the caller's thread keeps producing items meanwhile), or inline when ``pool`` is None."""
    if pool is None:
        for item in items:
            yield fn(*item)
        return
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, *item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def _worker_pool(workers):
    """``(pool, one_thread)``: a thread pool of ``workers`` threads (None for one) and a context manager that pins
    BLAS to one thread while it is entered (a no-op without a pool).

    The dense route runs each GEMM group of :class:`MomentSums` on one worker with single-threaded BLAS: the same
    operations on the same operands as a one-thread run, so the sums are bit-identical for any ``workers``, and
    the workers never wait on each other inside a GEMM (OpenBLAS threads do, badly so on a loaded machine).
    """
    if workers <= 1:
        yield None, contextlib.nullcontext
        return
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hiermodel-moments") as pool:
        yield pool, lambda: controller.limit(limits=1, user_api="blas")


class GramSums:
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

    def tiles(self, step=None):
        """``(0, D, totals())`` in one piece (the interface of :meth:`MomentSums.tiles`)."""
        yield 0, self.acc[0].shape[0], self.totals()

    def state(self) -> dict:
        """The float64 sums (call after :meth:`flush`): what :meth:`load_state` resumes from."""
        return {f"acc{k}": a for k, a in enumerate(self.acc)}

    def load_state(self, state):
        _load_into(self.acc, state)


MOMENT_GROUP_ROWS = 192  # measured (2 cores, d = 40-120): 1.2-1.4x faster GEMMs than 48 rows despite ~5% more flops


@functools.lru_cache(maxsize=16)
def moment_groups(d: int):
    """How :class:`MomentSums` stores the distinct fourth moments ``sum w x_i x_j x_k x_l``, ``i <= j <= k <= l``.

    With ``P_ab = x_a x_b`` (a <= b, the lift's order), entry ``((a, b), (c, e))`` of ``sum w P P^T`` depends only on
    the multiset {a, b, c, e}: ``C(d+3, 4)`` numbers instead of ``D^2 / 2``, a third of the flops of ``syrk``.
    Sorted, the multiset is row ``(i, j)``, column ``(k, l)`` of the product of the pairs that end in ``j`` with the
    pairs that start at ``>= j``. Consecutive ``j`` share one GEMM of at least ``MOMENT_GROUP_ROWS`` rows (the
    columns with ``k < j`` that this adds are never read; :class:`MomentSums` skips about half of them). Returns
    [(j0, j1, rows, cols, start)]: row-major ``rows x cols`` blocks of one flat buffer, rows ordered by ``(j, i)``,
    columns by pair from ``(j0, j0)`` on.
    """
    offsets = q2_layout(d)[0]
    D = int(offsets[-1])
    groups, start, j0 = [], 0, 0
    while j0 < d:
        j1, rows = j0, 0
        while j1 < d and rows < MOMENT_GROUP_ROWS:
            rows += j1 + 1
            j1 += 1
        groups.append((j0, j1, rows, D - int(offsets[j0]), start))
        start += rows * (D - int(offsets[j0]))
        j0 = j1
    return groups


@functools.lru_cache(maxsize=1)
def moment_index(d: int) -> np.ndarray:
    """(D, D) map from each entry of ``sum w P P^T`` to its place in the flat buffer of :func:`moment_groups`."""
    offsets, (pa, pb), _ = q2_layout(d)
    D = int(offsets[-1])
    first, start, cols, row_base = (np.empty(d, dtype=np.int64) for _ in range(4))
    for j0, j1, _, ncols, gstart in moment_groups(d):
        js = np.arange(j0, j1)
        first[js], start[js], cols[js] = j0, gstart, ncols
        row_base[js] = (js * (js + 1) - j0 * (j0 + 1)) // 2  # rows of the pairs (i, j') with j0 <= j' < j
    index = np.empty((D, D), dtype=np.int32 if moment_groups(d)[-1][4] < 2**31 else np.int64)
    c, e = pa[None, :], pb[None, :]
    for r0 in range(0, D, 256):  # in row blocks: bounded temporaries
        a, b = pa[r0:r0 + 256, None], pb[r0:r0 + 256, None]
        i, l = np.minimum(a, c), np.maximum(b, e)
        lo, hi = np.maximum(a, c), np.minimum(b, e)
        j, k = np.minimum(lo, hi), np.maximum(lo, hi)
        index[r0:r0 + 256] = start[j] + (row_base[j] + i) * cols[j] + offsets[k] + (l - k) - offsets[first[j]]
    return index


class MomentSums:
    """``sum w F F^T`` for the ``q = 2`` lift of raw inputs, from the distinct fourth moments (:func:`moment_groups`).

    With ``F = s * P - c`` (``s = 1/sqrt2`` and ``c = 1/sqrt2`` on the pairs ``(a, a)``, else ``s = 1``, ``c = 0``):
    ``sum w F F^T = S (sum w P P^T) S - (S t) c^T - c (S t)^T + (sum w) c c^T`` with ``t = sum w P``.
    """

    def __init__(self, d, n_weights, dtype):
        self.d, self.K, self.dtype = d, n_weights, dtype
        self.groups = moment_groups(d)
        self.offsets = q2_layout(d)[0]
        self.acc = [np.zeros((self.K * g[2], g[3])) for g in self.groups]
        self.buf = [np.zeros((self.K * g[2], g[3]), dtype=dtype) for g in self.groups]
        self.t = np.zeros((self.K, int(self.offsets[-1])))
        self.wsum = np.zeros(self.K)
        self._local = threading.local()  # per-thread flat work buffer of the left GEMM factors (K, rows, m)
        self.splits = [_staircase(self.offsets, *g[:4]) for g in self.groups]
        self.flops_per_sample = 2.0 * self.K * sum(rows * (cols - c_mid) + r_mid * c_mid
                                                   for (_, _, rows, cols, _), (_, r_mid, c_mid)
                                                   in zip(self.groups, self.splits))

    def add(self, X, ws, pool=None):
        """Add the block ``X`` (m, d) with its weights ``ws`` (K arrays of m); ``pool``: an executor that runs the
        GEMM groups (largest first), one per worker, each with single-threaded BLAS (see :func:`_worker_pool`)."""
        m, d = X.shape
        # Everything sample-indexed is built transposed (coordinates x samples), so that every element-wise product
        # runs over m contiguous samples (row slices of X make inner loops of only j + 1 elements).
        XT = np.ascontiguousarray(X.T)
        Pt = np.empty((int(self.offsets[-1]), m), dtype=X.dtype)
        for a in range(d):  # raw pair products x_a x_b, b >= a: the lift without the Hermite shift
            np.multiply(XT[a:], XT[a], out=Pt[self.offsets[a]:self.offsets[a + 1]])
        W = np.stack([np.asarray(w, dtype=X.dtype) for w in ws])  # (K, m)
        self.t += (Pt @ W.T).T
        self.wsum += W.sum(axis=1, dtype=float)
        if pool is None:
            for g in range(len(self.groups)):
                self._add_group(g, XT, Pt, W)
        else:  # groups are ordered by decreasing size: the queue hands the largest out first
            for f in [pool.submit(self._add_group, g, XT, Pt, W) for g in range(len(self.groups))]:
                f.result()

    def _add_group(self, g, XT, Pt, W):
        """One GEMM group's update of its buffer (independent of the other groups: safe on a worker thread)."""
        (j0, j1, rows, cols, _), buf, split = self.groups[g], self.buf[g], self.splits[g]
        m = XT.shape[1]
        size = self.K * max(G[2] for G in self.groups) * m
        L = getattr(self._local, "L", None)
        if L is None or L.size < size or L.dtype != XT.dtype:
            L = self._local.L = np.empty(size, dtype=XT.dtype)
        L = L[:self.K * rows * m].reshape(self.K, rows, m)  # rows (k, pair (i, j)): w_k x_i x_j
        r = 0
        for j in range(j0, j1):
            np.multiply(XT[:j + 1], XT[j], out=L[0, r:r + j + 1])
            r += j + 1
        for k in range(1, self.K):
            np.multiply(L[0], W[k], out=L[k])
        L[0] *= W[0]
        jm, r_mid, c_mid = split
        # Staircase: every row needs the columns from pair (jm, jm) on; only the rows with j < jm need the ones
        # before it (halves the computed-and-never-read columns of a tall group).
        buf[:, c_mid:] += L.reshape(self.K * rows, m) @ Pt[self.offsets[jm]:].T
        if c_mid:
            for k in range(self.K):
                buf[k * rows:k * rows + r_mid, :c_mid] += L[k, :r_mid] @ Pt[self.offsets[j0]:self.offsets[jm]].T

    def flush(self):
        for a, b in zip(self.acc, self.buf):
            a += b
            b[...] = 0.0

    def state(self) -> dict:
        """The float64 sums (call after :meth:`flush`): what :meth:`load_state` resumes from."""
        return {**{f"acc{k}": a for k, a in enumerate(self.acc)}, "t": self.t, "wsum": self.wsum}

    def load_state(self, state):
        _load_into(self.acc, state)
        for name in ("t", "wsum"):
            if state[name].shape != getattr(self, name).shape:
                raise ValueError(f"checkpoint array {name} has shape {state[name].shape}, expected "
                                 f"{getattr(self, name).shape}")
            getattr(self, name)[...] = state[name]

    def totals(self):
        """``[S_k]``: the ``K`` float64 matrices ``sum w_k F F^T`` (D x D), assembled from :meth:`tiles`."""
        D = int(self.offsets[-1])
        out = [np.empty((D, D)) for _ in range(self.K)]
        for r0, r1, tiles in self.tiles():
            for S, T in zip(out, tiles):
                S[r0:r1] = T
        return out

    def tiles(self, step=32):
        """Yield ``(r0, r1, [S_k[r0:r1] for k])``: row blocks of the matrices of :meth:`totals`, without forming
        them (a read-out that needs one D x D matrix of a combination of the ``S_k`` builds it block by block).

        Entry ``(a, b)`` is the gathered moment ``g`` scaled as ``(g s_a) s_b``, minus ``u_a`` if ``b`` is a diagonal
        pair, minus ``u_b`` if ``a`` is, plus ``wsum / 2`` if both are, then averaged with entry ``(b, a)`` built
        the same way (the two corrections round differently): every block holds exactly the numbers of one pass
        over the whole matrix, in a row block that stays in cache and reads the moment index once.
        """
        D = int(self.offsets[-1])
        diag = self.offsets[:-1]
        s = np.ones(D)
        s[diag] = 1.0 / _SQRT2
        is_diag = np.zeros(D, dtype=bool)
        is_diag[diag] = True
        index = moment_index(self.d)
        flats, us, halves = [], [], []
        for k in range(self.K):
            flat = np.empty(sum(g[2] * g[3] for g in self.groups))
            for (_, _, rows, cols, start), a in zip(self.groups, self.acc):
                flat[start:start + rows * cols] = a[k * rows:(k + 1) * rows].ravel()
            flats.append(flat)
            us.append((s * self.t[k]) / _SQRT2)
            halves.append(0.5 * self.wsum[k])
        for r0 in range(0, D, step):
            r1 = min(D, r0 + step)
            rd = np.flatnonzero(is_diag[r0:r1])  # rows of this block that are diagonal pairs (a, a)
            idx = index[r0:r1]
            sr = s[r0:r1, None]
            out = []
            for flat, u, half in zip(flats, us, halves):
                G = flat[idx]
                A = G * sr  # entries (a, b), a in the block
                A *= s[None, :]
                A[:, diag] -= u[r0:r1, None]
                A[rd, :] -= u[None, :]
                A[np.ix_(rd, diag)] += half
                B = G * s[None, :]  # entries (b, a), transposed (the moment index is symmetric)
                B *= sr
                B[rd, :] -= u[None, :]
                B[:, diag] -= u[r0:r1, None]
                B[np.ix_(rd, diag)] += half
                A += B
                A *= 0.5
                out.append(A)
            yield r0, r1, out


def _load_into(acc, state):
    for k, a in enumerate(acc):
        b = state[f"acc{k}"]
        if b.shape != a.shape:
            raise ValueError(f"checkpoint array acc{k} has shape {b.shape}, expected {a.shape}")
        a[...] = b


def _staircase(offsets, j0, j1, rows, cols):
    """Split of a group at ``jm`` (about half its rows): ``(jm, rows with j < jm, columns before pair (jm, jm))``."""
    jm, r_mid = j0, 0
    while jm + 1 < j1 and 2 * (r_mid + jm + 1) <= rows:
        r_mid += jm + 1
        jm += 1
    return jm, r_mid, int(offsets[jm] - offsets[j0])


def moment_flops(d: int) -> float:
    """Flops a sample of one weighted :class:`MomentSums` costs (the estimator's cost model)."""
    offsets = q2_layout(d)[0]
    return 2.0 * sum(rows * (cols - c) + r * c
                     for (j0, j1, rows, cols, _) in moment_groups(d)
                     for (_, r, c) in [_staircase(offsets, j0, j1, rows, cols)])
