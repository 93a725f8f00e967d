"""The sample kernels' engineering: block-wise read-out, worker threads and prepared projections change no number.

The dense route's fourth-moment sums feed the stored d = 120 table (book/data/fig2-stored.csv), so every speed-up
here is checked bit for bit (np.array_equal) against a plain reference written in this file; only the eigen-solver
of the explicit matrix may differ, at rounding level.
"""

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import hiermodel as hm
from hiermodel._eigen import top_abs_explicit, top_eigenpairs
from hiermodel._kernels import MomentSums, QuadraticProjector, SampleKernel, blas_threads, moment_index
from hiermodel.data import TrainingData
from hiermodel.hermite import quadratic_projection, vector_to_matrix


def _plain_totals(sums):
    """The read-out in one pass over whole D x D matrices: gather, scale, Hermite shift, symmetrise."""
    offsets = sums.offsets
    diag, D = offsets[:-1], int(offsets[-1])
    s = np.ones(D)
    s[diag] = 1.0 / math.sqrt(2.0)
    out = []
    for k in range(sums.K):
        flat = np.empty(sum(g[2] * g[3] for g in sums.groups))
        for (_, _, rows, cols, start), a in zip(sums.groups, sums.acc):
            flat[start:start + rows * cols] = a[k * rows:(k + 1) * rows].ravel()
        S = flat[moment_index(sums.d)]
        S *= s[:, None]
        S *= s[None, :]
        u = (s * sums.t[k]) / math.sqrt(2.0)
        S[:, diag] -= u[:, None]
        S[diag, :] -= u[None, :]
        S[np.ix_(diag, diag)] += 0.5 * sums.wsum[k]
        out.append(0.5 * (S + S.T))
    return out


def _filled(d, K, n=700, seed=0):
    rng = np.random.default_rng(seed)
    sums = MomentSums(d, K, np.float32)
    X = rng.standard_normal((n, d)).astype(np.float32)
    sums.add(X, [rng.standard_normal(n) for _ in range(K)])
    sums.flush()
    return sums


@pytest.mark.parametrize("d, K", [(7, 1), (13, 2), (26, 2)])
@pytest.mark.parametrize("step", [1, 5, 32, 10_000])
def test_tiles_and_totals_equal_the_plain_read_out_bit_for_bit(d, K, step):
    sums = _filled(d, K)
    want = _plain_totals(sums)
    for got, ref in zip(sums.totals(), want):
        assert np.array_equal(got, ref)
    rows = []
    for r0, r1, tiles in sums.tiles(step):
        rows.append((r0, r1))
        for T, ref in zip(tiles, want):
            assert np.array_equal(T, ref[r0:r1])
    assert rows[0][0] == 0 and rows[-1][1] == want[0].shape[0]
    assert all(a[1] == b[0] for a, b in zip(rows[:-1], rows[1:]))


def _dense_run(X, ws, cps, threads):
    got = []
    with threadpool_limits(limits=threads, user_api="blas"):
        kernel = SampleKernel(TrainingData(X, ws[0], features=False, q=2), np.float32)
        kernel.dense(ws, cps, lambda j, S: got.append(([T.copy() for T in S.totals()],
                                                       {k: v.copy() for k, v in S.state().items()})))
    return got, kernel.stats["dense_workers"]


@pytest.mark.parametrize("d, K", [(11, 1), (30, 2)])
def test_dense_sums_do_not_depend_on_the_number_of_worker_threads(d, K):
    # Two workers run the GEMM groups concurrently, each single-threaded: the same operations as one thread.
    rng = np.random.default_rng(d)
    n = 5000
    X = rng.standard_normal((n, d))
    ws = [rng.standard_normal(n), np.ones(n)][:K]
    one, w1 = _dense_run(X, ws, [37, 2100, n], 1)
    two, w2 = _dense_run(X, ws, [37, 2100, n], 2)
    assert (w1, w2) == (1, 2)
    for (t1, s1), (t2, s2) in zip(one, two):
        assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
        assert s1.keys() == s2.keys() and all(np.array_equal(s1[k], s2[k]) for k in s1)


def test_blas_threads_follows_threadpool_limits():
    with threadpool_limits(limits=1, user_api="blas"):
        assert blas_threads() == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_projector_equals_quadratic_projection_bit_for_bit(dtype):
    rng = np.random.default_rng(5)
    d = 17
    mats = vector_to_matrix(rng.standard_normal((6, hm.feature_dimension(d, 2))), d)
    X = rng.standard_normal((900, d))
    assert np.array_equal(QuadraticProjector(mats, dtype)(X), quadratic_projection(X, mats, dtype=dtype))


def test_projections_on_worker_threads_equal_one_thread():
    rng = np.random.default_rng(6)
    d, n = 15, 9000
    X = rng.standard_normal((n, d))
    kernel = SampleKernel(TrainingData(X, rng.standard_normal(n), features=False, q=2), np.float32)
    A1, A2 = (np.linalg.qr(rng.standard_normal((kernel.data.D, 4)))[0].T for _ in range(2))

    def run(threads):
        with threadpool_limits(limits=threads, user_api="blas"):
            return list(kernel.projections(lambda s: A1 if s < 4000 else A2, 0, n, cuts=[4000]))

    one, two = run(1), run(2)
    assert [s for s, _ in one] == [s for s, _ in two] and one[0][0] == 0
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(one, two))


@pytest.mark.parametrize("b", [1, 3])
def test_matrix_free_product_does_not_depend_on_threads_and_matches_the_explicit_matrix(b):
    rng = np.random.default_rng(8)
    d, n = 11, 50_000  # several row blocks of operator_rows(b) rows, the last one short
    X, w = rng.standard_normal((n, d)), rng.standard_normal(n)
    kernel = SampleKernel(TrainingData(X, w, features=False, q=2), np.float64)
    assert n > 2 * kernel.operator_rows(b)
    V = rng.standard_normal((kernel.data.D, b))

    def run(threads):
        with threadpool_limits(limits=threads, user_api="blas"):
            return kernel.apply(V, w, 100, n - 7)

    one, two = run(1), run(2)
    assert np.array_equal(one, two)
    F = hm.hermite_features(X[100:n - 7], 2)
    np.testing.assert_allclose(one, F.T @ (w[100:n - 7, None] * (F @ V)), rtol=1e-10, atol=1e-8 * n)


def test_explicit_solver_agrees_with_eigh_to_rounding():
    # ARPACK (pinned to one BLAS thread) against a full eigh: eigenvalues to 1e-12 relative, vectors to 1e-10.
    rng = np.random.default_rng(7)
    D, k = 400, 6
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    lam = np.concatenate([[9.0, -8.0, 7.0, 6.5, -6.0, 5.5], rng.uniform(-3, 3, D - k)])
    C = (Q * lam) @ Q.T
    C = 0.5 * (C + C.T)
    th, U = top_abs_explicit(C, k)
    th_ref, U_ref, _ = top_eigenpairs(C, k)
    assert np.max(np.abs(th - th_ref)) <= 1e-12 * np.max(np.abs(th_ref))
    assert np.max(1 - np.abs(np.sum(U * U_ref, axis=0))) <= 1e-10
