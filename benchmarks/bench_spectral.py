"""Benchmark of the spectral step of Algorithm 1 (SPEC §2): wall time, kernel GFLOP/s, accuracy, memory.

Run ``python benchmarks/bench_spectral.py`` (full) or ``--quick``. Prints tables; it is not a timed test.

* Dense matmul throughput is measured first in the same process (float32 and float64 square GEMM); kernel rates are
  reported as a fraction of it.
* Single fit per d: every method on the same float32 inputs, held in memory; accuracy = subspace overlap
  ``q = (1/d1) ||U_exact^T U||_F^2`` with the exact top-d1 eigenvectors of ``C_hat`` (dense ``eigh`` of the
  explicitly formed float64 ``C_hat``). (a) = explicit float64 ``C_hat`` from the lift (``syrk``) + dense ``eigh``,
  where its ``n D^2`` flops fit the budget; (b) = randomized subspace iteration, 15 passes, oversampling 10. The last
  Krylov row gets a fixed quarter of (b)'s matrix-vector products (block 8): the accuracy-matched comparison.
  Columns: ``fit s`` = the whole fit; ``spectral`` = its spectral step (``kernel_stats_["spectral_time"]``: data
  checks, sample kernels, eigen-solve), which is what the peers compute and what the speed-ups compare.
* ``--curves D``: accuracy against matrix-vector products for Krylov block sizes 1-12 (how the block was chosen).
* Sweep: 13-point alpha path at d = 60 in one pass (``fit_path``) against 13 independent runs of (a), with centred
  labels and with ``C_hat`` exactly as SPEC §2 writes it (``center=False``).
* Peak memory (tracemalloc: NumPy allocations) of a streamed single fit at d = 120, n = d^3.2.
* ``--path120 [ALPHA]``: the stored d = 120 nested path (``fig2 --scale stored``, seed 0, exact dense route, centred
  labels: two moment sums) timed on its prefix up to ``ALPHA`` (default 2.6), split into the label pass, the moment
  sums, the per-point read-out + eigen-solve + checkpoint, and the second stage; then extrapolated to alpha = 3.4
  with the measured per-sample rates and per-point cost (the full path takes about an hour; it is not run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

import hiermodel as hm
from hiermodel import LayerwiseSpectral, SampleStream, hermite_features, spectral_matrix
from scipy.sparse.linalg import LinearOperator, eigsh

from hiermodel._eigen import block_krylov, top_eigenpairs
from hiermodel._kernels import GramSums, SampleKernel, moment_index
from hiermodel.data import training_data
from hiermodel.hermite import matrix_to_vector, vector_to_matrix

GAMMA, EPS = 0.4, 0.5


def matmul_rate(dtype, size=3000, reps=3):
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a  # warm-up
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def overlap(U_ref, U):
    return float(np.linalg.norm(U_ref @ U.T) ** 2 / U_ref.shape[0])


def timed_fit(est, data):
    t0 = time.perf_counter()
    est.fit(*data)
    return est, time.perf_counter() - t0


def kernel_rate(est):
    s = est.kernel_stats_
    if s["apply_time"] > 0:
        return s["apply_flops"] / s["apply_time"] / 1e9, s["apply_time"]
    t = s.get("dense_kernel_time", s["dense_time"])  # the moment sums alone, without the eigen-solves
    return s["dense_flops"] / t / 1e9, t


class PeerOperator:
    """What a SciPy user would write: ``C_hat`` applied matrix-free through the operator form of SPEC §2,
    ``C[V] = (1/n) sum_mu w_mu (x^T M x - tr M)/sqrt2 * (x x^T - I)/sqrt2 - (sum w / n) V`` (``M`` the symmetric
    matrix of ``V``), on the same float32 inputs, in chunks of 2048 rows; written here, not taken from the library.
    ``matmat`` applies it to a block of vectors at once (the batched products of subspace iteration)."""

    def __init__(self, X, y, rows=2048):
        self.X, self.n, self.d = X, len(y), X.shape[1]
        self.w = ((y - y.mean()) / y.std()).astype(np.float32)
        self.D, self.rows, self.products, self.time = self.d * (self.d + 1) // 2, rows, 0, 0.0

    def matmat(self, V):
        t0 = time.perf_counter()
        V = np.asarray(V, dtype=float).reshape(self.D, -1)
        b, d = V.shape[1], self.d
        M = vector_to_matrix(V.T, d)  # (b, d, d)
        Mcat = np.ascontiguousarray(M.transpose(1, 0, 2).reshape(d, b * d), dtype=np.float32)
        trM = np.trace(M, axis1=1, axis2=2).astype(np.float32)
        G, ssum = np.zeros((d, b * d)), np.zeros(b)
        for s in range(0, self.n, self.rows):
            Xc, wc = self.X[s:s + self.rows], self.w[s:s + self.rows]
            quad = np.einsum("mkd,md->mk", (Xc @ Mcat).reshape(len(Xc), b, d), Xc)
            sc = (quad - trM) * wc[:, None]
            G += Xc.T @ (sc[:, :, None] * Xc[:, None, :]).reshape(len(Xc), b * d)
            ssum += sc.sum(axis=0, dtype=float)
        G = G.reshape(d, b, d).transpose(1, 0, 2)
        G[:, np.arange(d), np.arange(d)] -= ssum[:, None]
        out = matrix_to_vector(0.5 * G, symmetrise=True).T / self.n - (float(self.w.sum()) / self.n) * V
        self.products += b
        self.time += time.perf_counter() - t0
        return out

    def flops(self):
        return 4.0 * self.d ** 2 * self.n * self.products  # as the library counts its matrix-free products


def peer_eigsh(op, d1):
    """SciPy's ARPACK on the matrix-free operator, to machine precision (``tol=0``), fixed start vector."""
    A = LinearOperator((op.D, op.D), matvec=lambda v: op.matmat(v)[:, 0], matmat=op.matmat, dtype=np.float64)
    theta, U = eigsh(A, k=d1, which="LM", tol=0.0, v0=np.random.default_rng(0).standard_normal(op.D))
    return U[:, np.argsort(-np.abs(theta), kind="stable")].T


def peer_subspace(op, d1, passes=15, oversample=10):
    """Batched subspace iteration: ``passes`` products of ``d1 + oversample`` vectors, QR between, Rayleigh–Ritz."""
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((op.D, d1 + oversample)))[0]
    for p in range(passes):
        Y = op.matmat(Q)
        if p < passes - 1:
            Q = np.linalg.qr(Y)[0]
    theta, S = np.linalg.eigh(0.5 * (Q.T @ Y + Y.T @ Q))
    order = np.argsort(-np.abs(theta), kind="stable")[:d1]
    return (Q @ S[:, order]).T


def problem(d, alpha):
    """The benchmark's data at size d: target, float32 inputs in memory (every method reads the same array), labels."""
    target = hm.HierarchicalTarget(d, q=2, eps=EPS, gamma=GAMMA, g="id", rng=d)
    X, y = SampleStream(target, int(round(d**alpha)), rng=1000 + d).arrays()
    return target, X.astype(np.float32), y


def exact_top(X, y, d1, dtype=np.float64):
    """Exact top-d1 eigenvectors: the explicit ``C_hat`` (fourth-moment route) and a full dense ``eigh``."""
    t0 = time.perf_counter()
    U = top_eigenpairs(spectral_matrix(X, y, dtype=dtype), d1)[1].T
    return U, time.perf_counter() - t0


def budget_passes(d1, block=8, fraction=4):
    """Krylov passes of ``block`` vectors that use ``1/fraction`` of (b)'s matrix-vector products, 15 x (d1 + 10)."""
    return max(2, (15 * (d1 + 10)) // (fraction * block))


def single_fits(d, alpha, rates, dense_budget, out, matched_only=False):
    """Every method at size d; ``matched_only``: only (b) and the accuracy-matched Krylov row, against a float32
    explicit reference (at d = 120 it agrees with the float64 one to 1 - overlap = 5e-14)."""
    target, X, y = problem(d, alpha)
    n, D, d1 = len(y), target.D, target.d1
    ref_dtype = np.float32 if matched_only else np.float64
    U_ref, t_ref = exact_top(X, y, d1, ref_dtype)
    out(f"\n## single fit: d = {d}, D = {D}, d1 = {d1}, n = d^{alpha} = {n} (float32 X in memory); exact reference: "
        f"explicit {np.dtype(ref_dtype).name} C_hat + eigh ({t_ref:.1f} s)")
    out(f"{'method':40s} {'fit s':>8s} {'spectral':>9s} {'kernel s':>9s} {'GFLOP/s':>8s} {'% matmul':>9s} "
        f"{'passes':>6s} {'1 - overlap':>12s}")
    if n * D * D <= dense_budget and not matched_only:
        t0 = time.perf_counter()
        U = explicit_top(X, y, n, d1, center=True)
        t = time.perf_counter() - t0
        out(f"{'(a) explicit f64 C_hat (syrk) + eigh':40s} {'':>8s} {t:9.2f} {'':>9s} {'':>8s} {'':>9s} {1:6d} "
            f"{1 - overlap(U_ref, U):12.2e}")
    passes = budget_passes(d1)
    runs = [
        ("dense f32: 4th moments + ARPACK", dict(method="dense")),
        ("(b) rand. subspace it. 15+10, f32", dict(method="rsi", rng=0)),
        ("operator Lanczos f32 tol 1e-8", dict(method="operator", rng=0, tol=1e-8)),
        ("operator Lanczos f32 tol 1e-6", dict(method="operator", rng=0)),
        ("operator Lanczos f32 tol 1e-3", dict(method="operator", rng=0, tol=1e-3)),
        (f"Krylov f32, block 8, {passes} passes (1/4 of b)",
         dict(method="operator", rng=0, block=8, max_passes=passes, tol=1e-300)),
    ]
    if matched_only:
        runs = [runs[1], runs[-1]]
    auto = LayerwiseSpectral(d1, rng=0)._choose(training_data(X, y, 2), n, 1)
    res = {}
    for name, kw in runs:
        est, t = timed_fit(LayerwiseSpectral(d1, **kw), (X, y))
        gf, kt = kernel_rate(est)
        ts = est.kernel_stats_["spectral_time"]  # without the second layer and readout: what the peers compute
        res[name] = (ts, overlap(U_ref, est.directions_))
        out(f"{name:40s} {t:8.2f} {ts:9.2f} {kt:9.2f} {gf:8.1f} {100 * gf / rates['float32']:8.0f}% "
            f"{est.passes_:6d} {1 - res[name][1]:12.2e}   [{est.method_}]")
    # The peers a SciPy user would write, on the same float32 X, in this process (products: single vectors).
    for name, solve in (("peer: SciPy eigsh on a LinearOperator", peer_eigsh),
                        ("peer: subspace iteration 15 x (d1+10)", peer_subspace)):
        op = PeerOperator(X, y)
        t0 = time.perf_counter()
        U = solve(op, d1)
        t = time.perf_counter() - t0
        gf = op.flops() / op.time / 1e9
        res[name] = (t, overlap(U_ref, U))
        out(f"{name:40s} {'':>8s} {t:9.2f} {op.time:9.2f} {gf:8.1f} {100 * gf / rates['float32']:8.0f}% "
            f"{op.products:6d} {1 - res[name][1]:12.2e}   [products]")
    out(f"  auto picks {auto!r} here")
    peer = res["peer: SciPy eigsh on a LinearOperator"]
    auto_row = "dense f32: 4th moments + ARPACK" if auto == "dense" else "operator Lanczos f32 tol 1e-6"
    for name in res:
        if not name.startswith("peer: SciPy"):
            t, q = res[name]
            tag = "  <- auto" if name == auto_row else ""
            out(f"  {name} vs eigsh peer: speed-up {peer[0] / t:.2f}x, 1 - overlap {1 - q:.1e} vs "
                f"{1 - peer[1]:.1e} (target >= 1.5x at <= 1e-8){tag}")
    b = res.get("(b) rand. subspace it. 15+10, f32")
    for name in res:
        if b and not name.startswith("(b)"):
            t, q = res[name]
            out(f"  {name} vs (b): speed-up {b[0] / t:.2f}x, overlap ratio {q / b[1]:.4f} (target >= 3x, >= 0.999)")
    return res


def krylov_curves(d, alpha, blocks, products, out):
    """Accuracy against matrix-vector products for block Krylov with several block sizes (one run each: the Ritz
    vectors after pass p are what a run stopped at p returns) and for (b)."""
    target, X, y = problem(d, alpha)
    d1 = target.d1
    U_ref, t_ref = exact_top(X, y, d1, np.float32)  # agrees with float64 to 5e-14 at d = 120
    out(f"\n## accuracy vs products: d = {d}, n = {len(y)}, d1 = {d1} (reference {t_ref:.0f} s); "
        f"entries: 1 - overlap @ seconds")
    w = (y - y.mean()) / y.std()
    kernel = SampleKernel(training_data(X, y, 2), np.float32)

    def matvec(V):
        return (kernel.apply(V, w, 0, len(w)) - w.sum() * V) / len(w)

    rsi, t = timed_fit(LayerwiseSpectral(d1, method="rsi", rng=0), (X, y))
    out(f"(b) RSI, {15 * (d1 + 10)} products: {1 - overlap(U_ref, rsi.directions_):.3g} @ {t:.0f} s")
    for block in blocks:
        row, t0 = [], time.perf_counter()

        def record(p, th, U, block=block, row=row):
            row.append(f"{p * block}: {1 - overlap(U_ref, U.T):.3g} @ {time.perf_counter() - t0:.0f}")

        # The estimator's operator route with seed 0, written out to see every pass.
        block_krylov(matvec, target.D, d1, block=block, rng=np.random.default_rng(0), tol=1e-300,
                     max_passes=max(1, products // block), callback=record)
        out(f"block {block:3d}: " + "; ".join(row))


def explicit_top(X, y, n, d1, center):
    """Reference (a): ``C_hat`` formed explicitly from the lift (float64 signed ``syrk``, in chunks) + dense ``eigh``.

    Written out here, not taken from the estimator, so that it stays the plain method whatever the estimator does.
    """
    w = (y[:n] - y[:n].mean()) / y[:n].std() if center else y[:n]
    sums = GramSums(hm.feature_dimension(X.shape[1], 2), 1, np.float64)
    for s in range(0, n, 2048):
        sums.add(hermite_features(X[s:min(s + 2048, n)], 2), [w[s:s + 2048]])
        if (s // 2048) % 16 == 15:
            sums.flush()
    sums.flush()
    C = sums.totals()[0] / n
    C[np.diag_indices_from(C)] -= w.sum() / n
    return top_eigenpairs(C, d1)[1].T


def sweep(d, alphas, out):
    target = hm.HierarchicalTarget(d, q=2, eps=EPS, gamma=GAMMA, g="id", rng=d)
    ns = [int(round(d**a)) for a in alphas]
    stream = SampleStream(target, ns[-1], rng=2000 + d)
    X, y = stream.arrays()
    d1 = target.d1
    out(f"\n## sweep: d = {d}, D = {target.D}, {len(ns)} points alpha = {alphas[0]:.2f} … {alphas[-1]:.2f} "
        f"(n = {ns[0]} … {ns[-1]})")
    out(f"{'method':44s} {'time s':>8s} {'speed-up':>9s} {'max 1 - overlap vs (a)':>24s}")
    for center in (True, False):
        label = "centred labels" if center else "center=False: C_hat exactly as SPEC §2 writes it"
        out(f"-- {label}")
        t0 = time.perf_counter()
        refs = [explicit_top(X, y, n, d1, center) for n in ns]
        t_ref = time.perf_counter() - t0
        out(f"{f'(a) {len(ns)} x explicit f64 C_hat + eigh':44s} {t_ref:8.2f} {1.0:9.2f} {0.0:24.2e}")
        t0 = time.perf_counter()
        single = LayerwiseSpectral(d1, rng=0, center=center).fit(X, y)
        t_single = time.perf_counter() - t0
        out(f"{'one fit (auto) at the largest n':44s} {t_single:8.2f}   [{single.method_}]")
        t0 = time.perf_counter()
        LayerwiseSpectral(d1, rng=0, center=center, method="operator").fit(X, y)
        t_lanczos = time.perf_counter() - t0
        out(f"{'one fit (operator: Lanczos) at the largest n':44s} {t_lanczos:8.2f}")
        for name, kw in [("fit_path auto", dict(method="auto")), ("fit_path dense f32", dict(method="dense")),
                         ("fit_path operator f32 (warm start)", dict(method="operator"))]:
            t0 = time.perf_counter()
            path = LayerwiseSpectral(d1, rng=0, center=center, **kw).fit_path(X, y, ns)
            t = time.perf_counter() - t0
            err = max(1 - overlap(r, p.directions_) for r, p in zip(refs, path))
            out(f"{name:44s} {t:8.2f} {t_ref / t:9.2f} {err:24.2e}   [{path[0].method_}] (target >= 5x); "
                f"{t / t_single:.2f}x one auto fit at n = {ns[-1]} (target <= 1.3x), "
                f"{t / t_lanczos:.2f}x one Lanczos fit")
        sums = 2 if center else 1
        out(f"   flop bound of the dense path: {sums} moment sum(s) over n_max against 1 for one fit, plus "
            f"{len(ns)} eigen-solves: >= {sums:.0f}x the kernel part of one fit")


def memory(d, alpha, out):
    target = hm.HierarchicalTarget(d, q=2, eps=EPS, gamma=GAMMA, g="id", rng=d)
    n = int(round(d**alpha))
    tracemalloc.start()
    stream = SampleStream(target, n, rng=3000 + d)
    t0 = time.perf_counter()
    # Memory does not grow with the number of passes beyond the Krylov basis (D x passes x block): cap them
    # (a block smaller than d1 still takes d1 / block passes).
    est = LayerwiseSpectral(target.d1, method="operator", rng=0, max_passes=4).fit(stream)
    t = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out(f"\n## memory: streamed fit, d = {d}, n = d^{alpha} = {n} ({est.passes_} Krylov passes): peak NumPy "
        f"allocations {peak / 2**30:.2f} GiB (target < 4 GB); raw X would be {n * d * 8 / 2**30:.1f} GiB; {t:.0f} s")
    del est
    # The dense route keeps D x D matrices and the fourth-moment buffers, whatever n: measure it on a short stream.
    moment_index.cache_clear()
    tracemalloc.start()
    LayerwiseSpectral(target.d1, method="dense").fit(SampleStream(target, 20_000, rng=3001 + d))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out(f"   dense route at d = {d} (independent of n; measured at n = 20000): peak {peak / 2**30:.2f} GiB")


def path120(alpha_max, out):
    """The stored d = 120 path (fig2, scale "stored", seed 0) on its prefix up to ``alpha_max``, timed by part, and
    its extrapolation to the whole path (alpha = 3.4). Runs ``LayerwiseSpectral.fit_path`` exactly as the sweep does
    (same stream, solver seed and route), without the test-set evaluation."""
    from hiermodel import figures
    from hiermodel._kernels import blas_threads

    task = figures.grid("fig2", "stored", seeds=[0]).tasks()[0]
    k = sum(1 for a in task.alphas if a <= alpha_max + 1e-9)
    part = task.prefix(k)
    target, streams = part.target(), part.streams()
    ns_full = list(task.ns)
    out(f"\n## d = 120 nested path (fig2 stored, seed 0): prefix alpha <= {alpha_max} ({k} of {len(ns_full)} points, "
        f"n <= {part.ns[-1]}), BLAS threads {blas_threads()} (dense-route workers = BLAS threads)")
    stream = SampleStream(target, max(part.ns), streams["train"], chunk_size=part.chunk_size, model=part.model)
    t0 = time.perf_counter()
    stream.labels()
    t_labels = time.perf_counter() - t0
    est = LayerwiseSpectral(target.d1, q=part.q, readout=part.readout, split=part.split, method=part.method,
                            rng=streams["solver"])
    t0 = time.perf_counter()
    fitted = est.fit_path(stream, None, list(part.ns))
    t_fit = time.perf_counter() - t0
    st = fitted[0].kernel_stats_
    t_kernel = st["dense_kernel_time"]
    t_points = st["dense_time"] - t_kernel
    t_second = t_fit - st["dense_time"]
    n = part.ns[-1]
    peak = matmul_rate(np.float32)
    gf = st["dense_flops"] / t_kernel / 1e9
    out(f"route {fitted[0].method_}; {st.get('dense_workers', 1)} worker(s); float32 GEMM peak in this process "
        f"{peak:.0f} GFLOP/s (one BLAS call, all BLAS threads)")
    out(f"  label pass          {t_labels:8.1f} s   {n / t_labels:10.0f} samples/s")
    out(f"  moment sums         {t_kernel:8.1f} s   {n / t_kernel:10.0f} samples/s, {gf:.0f} GFLOP/s "
        f"({100 * gf / peak:.0f}% of peak; data generation included)")
    out(f"  per point           {t_points / k:8.2f} s   (read-out of C_hat, ARPACK, no checkpoint here) x {k}")
    out(f"  second stage        {t_second:8.1f} s   ({sum(part.ns)} sample-points, two passes)")
    out(f"  total               {t_labels + t_fit:8.1f} s")
    N, P, S = ns_full[-1], len(ns_full), sum(ns_full)
    est_total = (t_labels / n * N + t_kernel / n * N + t_points / k * P + t_second / sum(part.ns) * S)
    out(f"extrapolated whole path (alpha = 3.4, n = {N}, {P} points): labels {t_labels / n * N:.0f} s + sums "
        f"{t_kernel / n * N:.0f} s + points {t_points / k * P:.0f} s + second stage {t_second / sum(part.ns) * S:.0f} s "
        f"= {est_total:.0f} s = {est_total / 60:.1f} min (target <= 30 min on 2 cores; checkpoint saves, about "
        f"0.5 s a point, not included)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--d", type=int, nargs="+", default=None,
                    help="run only the single fits at these d (full sizes), e.g. --d 120")
    ap.add_argument("--sweep-memory", action="store_true", help="run only the full-size sweep and memory parts")
    ap.add_argument("--sweep", action="store_true", help="run only the full-size sweep")
    ap.add_argument("--memory", action="store_true", help="run only the memory part (d = 120)")
    ap.add_argument("--matched", type=int, default=None, metavar="D",
                    help="only (b) and the accuracy-matched Krylov row at d = D (float32 explicit reference)")
    ap.add_argument("--curves", type=int, default=None, metavar="D",
                    help="accuracy against matrix-vector products for Krylov blocks 1-12 and (b), at d = D")
    ap.add_argument("--path120", type=float, nargs="?", const=2.6, default=None, metavar="ALPHA",
                    help="time the stored d = 120 path's prefix up to ALPHA (default 2.6) and extrapolate to 3.4")
    args = ap.parse_args(argv)

    def out(line):
        print(line, flush=True)

    out(f"# bench_spectral {'(quick)' if args.quick else '(full)'}; cores: {os.cpu_count()}, "
        f"load average at start: {os.getloadavg()[0]:.2f}; numpy {np.__version__}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    rates = {"float32": matmul_rate(np.float32), "float64": matmul_rate(np.float64)}
    out(f"dense matmul (3000^2, best of 3): float32 {rates['float32']:.0f} GFLOP/s, "
        f"float64 {rates['float64']:.0f} GFLOP/s")
    if args.path120 is not None:
        path120(args.path120, out)
    elif args.matched:
        single_fits(args.matched, 3.0, rates, dense_budget=0, out=out, matched_only=True)
    elif args.curves:
        krylov_curves(args.curves, 3.0, (1, 2, 4, 8, 12), 160, out)
    elif args.memory:
        memory(120, 3.2, out)
    elif args.sweep:
        sweep(60, list(np.round(np.linspace(2.0, 3.2, 13), 3)), out)
    elif args.d or args.sweep_memory:
        for d in args.d or ():
            single_fits(d, 3.0, rates, dense_budget=1.2e13, out=out)
        if args.sweep_memory:
            sweep(60, list(np.round(np.linspace(2.0, 3.2, 13), 3)), out)
            memory(120, 3.2, out)
    elif args.quick:
        for d in (40, 60):
            single_fits(d, 2.6, rates, dense_budget=2e12, out=out)
        sweep(40, list(np.round(np.linspace(2.0, 2.8, 9), 3)), out)
        memory(60, 3.0, out)
    else:
        for d in (40, 60, 80, 120):
            single_fits(d, 3.0, rates, dense_budget=1.2e13, out=out)
        sweep(60, list(np.round(np.linspace(2.0, 3.2, 13), 3)), out)
        memory(120, 3.2, out)
    out(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
