"""Baselines that ignore the hierarchy (claim C8): kernel ridge regression on the raw inputs ``x`` with
rotation-invariant kernels, and the oracle least squares on every Hermite polynomial of degree ``<= 2q``.

* :class:`KernelRidgeBaseline` -- ``kernel="rbf"``: ``k(x, x') = exp(-|x - x'|^2 / (2 s^2))`` with the median
  heuristic ``s = median |x_a - x_b|`` over the first ``min(n, 1000)`` training points (the authors' baseline);
  ``kernel="poly"``: the inner-product kernel ``(1 + <x, x'> / d)^degree`` (``degree = 2q = 4`` by default: its
  feature space is exactly the polynomials of degree ``<= 4``, where the target lives). Both depend on ``x`` only
  through ``|x|, |x'|, <x, x'>``, so they are invariant under rotations of the input and cannot see the hierarchy.
* :class:`HermiteLeastSquares` -- the "oracle": ridge least squares on all ``binom(d + 2q, 2q)`` normalised
  Hermite polynomials of degree ``<= 2q`` (the target is one of them, so with ``n`` above that count and no label
  noise it is learned exactly; below it is the best any method can do that knows only the degree).

**Ridge rule** (both): the last :data:`VALIDATION` fraction of the ``n`` training samples (i.i.d., so a random
split) is held out; each ridge ``r * mean(diag K)`` for ``r`` in :data:`RIDGES` is fitted on the rest, the one with
the smallest held-out MSE is kept, and the model is refitted on all ``n`` samples with it. Labels are centred by
the training mean (added back at prediction). No randomness besides the data: landmarks are the first samples.

**Solvers.** ``solver="exact"``: the ``n x n`` kernel and SciPy's Cholesky (``scipy.linalg.cho_factor``), one
factorisation per ridge; refused before any work above ``max_exact`` samples or beyond the machine's memory.
``solver="nystrom"``: the Nystroem approximation with the first ``n_components`` training samples as landmarks,
``K ~ C K_mm^+ C^T`` with ``C = K(X, landmarks)``: kernel ridge on it solves
``(C^T C + lambda K_mm) w = C^T y``, with ``C^T C`` accumulated over row blocks (memory independent of ``n``).
``"auto"``: exact up to ``max_exact``, Nystroem above. For the polynomial kernel Nystroem with at least
``binom(d + degree, degree)`` landmarks is exact (that is the rank of its kernel).

**Why these libraries.** Kernel matrices come from scikit-learn's :func:`sklearn.metrics.pairwise.rbf_kernel` /
``polynomial_kernel`` (BLAS distances, as fast as hand-written code) and the solves from SciPy's Cholesky.
scikit-learn's ``KernelRidge`` is not used for the fits because it factorises the kernel again for every ridge and
every prefix of a nested path, where one kernel matrix serves them all (sliced); its ``Nystroem`` transformer is
not used because it multiplies every row by ``K_mm^(-1/2)`` (an extra ``n m^2`` product) where the normal
equations above need only ``C``. The estimators follow scikit-learn's conventions (parameters stored in
``__init__``, validated in ``fit``; ``get_params``/``clone`` work), like :class:`~hiermodel.LayerwiseSpectral`.

In sweeps: ``Grid(learner="krr-rbf" | "krr-poly" | "oracle")`` runs :func:`run_baseline_task` on the same target,
training data and test sample as Algorithm 1 (``learner="layerwise"``) for the same task parameters.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ._checks import check_allocation, check_inputs, check_int, check_real, format_bytes, real_array

__all__ = ["LEARNERS", "BASELINES", "RIDGES", "VALIDATION", "MAX_EXACT", "N_COMPONENTS", "KernelRidgeBaseline",
           "HermiteLeastSquares", "hermite_basis", "basis_size", "median_bandwidth", "make_baseline",
           "run_baseline_task", "baseline_memory_bytes", "BASELINE_VERSION"]

LEARNERS = ("layerwise", "krr-rbf", "krr-poly", "oracle")
"""Learners a sweep can run: Algorithm 1 (the default) and the three baselines of this module."""
BASELINES = LEARNERS[1:]
BASELINE_VERSION = 1
"""Version of what a baseline task computes (part of its cache key through ``Task.settings``)."""
RIDGES = (1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0)
"""Relative ridges tried by the held-out rule (times the mean diagonal of the kernel or Gram matrix)."""
VALIDATION = 0.2
MAX_EXACT = 6000
"""Largest ``n`` solved exactly (an ``n x n`` float64 Cholesky: 275 MiB and about 2 s on one core)."""
N_COMPONENTS = 1500
MEDIAN_POINTS = 1000
PROGRESS_SECONDS = 3.0
_FLOPS = 2e10  # float64 flop/s of one core, for the progress rule and the time estimate only


def basis_size(d: int, degree: int) -> int:
    """Number of monomials (equivalently Hermite polynomials) of degree ``<= degree`` in ``d`` variables."""
    d = check_int("d", d, minimum=1)
    degree = check_int("degree", degree, minimum=0)
    return math.comb(d + degree, degree)


def hermite_basis(X, degree: int) -> np.ndarray:
    """All normalised multivariate Hermite polynomials of degree ``<= degree`` at the rows of ``X``.

    Columns: the constant, then the lift :func:`hiermodel.hermite.hermite_features` of degree 1, 2, ...,
    ``degree`` (``E phi = 0``, ``E phi phi^T = I`` under ``N(0, I_d)``). Shape ``(n, basis_size(d, degree))``.
    """
    from .hermite import hermite_features

    degree = check_int("degree", degree, minimum=0)
    X = real_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    X = check_inputs(X, X.shape[1])
    p = basis_size(X.shape[1], degree)
    check_allocation(f"the Hermite basis of degree <= {degree} of {X.shape[0]:,} samples ({p:,} columns)",
                     8.0 * X.shape[0] * p)
    parts = [np.ones((X.shape[0], 1))] + [hermite_features(X, k) for k in range(1, degree + 1)]
    return np.concatenate(parts, axis=1)


def median_bandwidth(X, *, max_points: int = MEDIAN_POINTS) -> float:
    """The median heuristic: the median Euclidean distance between distinct rows among the first ``max_points``."""
    X = real_array("X", X)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must have shape (n, d) with n >= 2, got {X.shape}")
    max_points = check_int("max_points", max_points, minimum=2)
    from sklearn.metrics.pairwise import euclidean_distances

    Z = X[:max_points]
    dist = euclidean_distances(Z, Z)
    s = float(np.median(dist[np.triu_indices(Z.shape[0], 1)]))
    if not s > 0:
        raise ValueError("the median distance between the inputs is 0 (repeated rows): no RBF bandwidth")
    return s


def _check_X(X):
    X = real_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    return check_inputs(X, X.shape[1])


def _check_ridges(ridges):
    values = [check_real("ridge", r, minimum=0.0, open_min=True) for r in np.atleast_1d(ridges).tolist()]
    if not values:
        raise ValueError("ridges is empty: give at least one relative ridge > 0")
    return tuple(values)


def _check_validation(value):
    value = check_real("validation", value, minimum=0.0, maximum=1.0, open_min=True)
    if value >= 1.0:
        raise ValueError(f"validation must be a fraction in (0, 1), got {value}")
    return value


def _check_ns(ns, n):
    if ns is None:
        return [n]
    out = [check_int("n", v, minimum=1) for v in ns]
    if sorted(set(out)) != out:
        raise ValueError(f"ns must be strictly increasing, got {out}")
    if out[-1] > n:
        raise ValueError(f"ns goes up to {out[-1]:,} but only {n:,} samples were given")
    return out


def _ridge_solve(A, shift, b):
    """``(A + shift I)^{-1} b`` for symmetric positive semi-definite ``A`` (SciPy Cholesky; ``A`` untouched)."""
    import scipy.linalg as sl

    M = A.copy()
    M.flat[::M.shape[0] + 1] += shift
    return sl.cho_solve(sl.cho_factor(M, lower=True, overwrite_a=True, check_finite=False), b,
                        check_finite=False)


def _pd_solve(A, b):
    import scipy.linalg as sl

    return sl.cho_solve(sl.cho_factor(A, lower=True, overwrite_a=True, check_finite=False), b, check_finite=False)


def _max_snapshots(ns, validation):
    """Most Gram snapshots a path over ``ns`` holds at once (see :meth:`HermiteLeastSquares.fit_path`)."""
    cuts = sorted({_split(n, validation) for n in ns if n >= 3} | set(ns))
    most = 1
    for c in cuts:
        later = {_split(v, validation) for v in ns if v > c and v >= 3}
        most = max(most, 1 + sum(1 for k in cuts if k <= c and k in later))
    return most


def _split(n, validation):
    """``n_fit``: samples ``[0, n_fit)`` fit each ridge, ``[n_fit, n)`` judge it (at least one in each)."""
    if n < 3:
        raise ValueError(f"the held-out ridge rule needs n >= 3 samples, got {n}")
    return min(n - 1, max(1, int(round(n * (1.0 - validation)))))


class _Progress:
    """A tqdm bar on stderr for fits estimated to take more than :data:`PROGRESS_SECONDS` (or when forced)."""

    def __init__(self, total, seconds, progress, desc):
        show = progress if isinstance(progress, bool) else seconds > PROGRESS_SECONDS
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)

    def update(self, k=1):
        if self.bar is not None:
            self.bar.update(k)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Fitted:
    """Shared prediction of a fitted path point."""

    def predict(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "coef_")
        X = check_inputs(X, self.n_features_in_)
        out = np.empty(X.shape[0])
        rows = max(1, 2**22 // max(1, self._width()))
        for s in range(0, X.shape[0], rows):
            out[s:s + rows] = self._features(X[s:s + rows]) @ self.coef_ + self.intercept_
        return out


class KernelRidgeBaseline(_Fitted, RegressorMixin, BaseEstimator):
    """Kernel ridge regression on raw inputs with a rotation-invariant kernel (see the module docstring).

    Parameters
    ----------
    kernel : {"rbf", "poly"}
        RBF with the median-heuristic bandwidth, or the inner-product kernel ``(1 + <x, x'>/d)^degree``.
    degree : int
        Degree of the polynomial kernel (``2q`` is the target's degree).
    solver : {"auto", "exact", "nystrom"}
    ridges : sequence of float
        Relative ridges for the held-out rule (:data:`RIDGES`).
    validation : float
        Held-out fraction, in (0, 1).
    max_exact : int
        Largest ``n`` of an exact solve; ``solver="exact"`` above it is refused before any work.
    n_components : int
        Nystroem landmarks (the first ``n_components`` training samples).
    progress : bool or "auto"
        A progress bar on stderr; ``"auto"``: when the fit is estimated to take more than a few seconds.

    Attributes
    ----------
    coef_, intercept_, ridge_ (absolute), relative_ridge_, bandwidth_ (RBF), solver_, validation_mse_
    (held-out MSE per relative ridge, standardised by the held-out label variance), n_train_, fit_s_.
    """

    def __init__(self, kernel="rbf", *, degree=4, solver="auto", ridges=RIDGES, validation=VALIDATION,
                 max_exact=MAX_EXACT, n_components=N_COMPONENTS, progress="auto"):
        self.kernel = kernel
        self.degree = degree
        self.solver = solver
        self.ridges = ridges
        self.validation = validation
        self.max_exact = max_exact
        self.n_components = n_components
        self.progress = progress

    # -- validation and planning (no work) -------------------------------------------------------------------------
    def _validate(self):
        if self.kernel not in ("rbf", "poly"):
            raise ValueError(f"unknown kernel {self.kernel!r}: use 'rbf' or 'poly'")
        check_int("degree", self.degree, minimum=1)
        if self.solver not in ("auto", "exact", "nystrom"):
            raise ValueError(f"unknown solver {self.solver!r}: use 'auto', 'exact' or 'nystrom'")
        _check_ridges(self.ridges)
        _check_validation(self.validation)
        check_int("max_exact", self.max_exact, minimum=3)
        check_int("n_components", self.n_components, minimum=1)
        if not (isinstance(self.progress, bool) or self.progress == "auto"):
            raise ValueError(f"progress must be True, False or 'auto', got {self.progress!r}")

    def planned_solver(self, n: int) -> str:
        """The solver a fit on ``n`` samples uses; a ValueError (before any work) if it cannot run."""
        self._validate()
        n = check_int("n", n, minimum=3)
        solver = self.solver if self.solver != "auto" else ("exact" if n <= self.max_exact else "nystrom")
        if solver == "exact":
            if n > self.max_exact:
                raise ValueError(f"n = {n:,} is too large for an exact kernel solve (max_exact = "
                                 f"{self.max_exact:,}: an n x n Cholesky needs {format_bytes(16.0 * n * n)} and "
                                 f"~{n ** 3 / 3 / _FLOPS:.0f} s per ridge); use solver='nystrom' or 'auto', or "
                                 f"raise max_exact")
            check_allocation(f"an exact kernel solve on n = {n:,} samples", 24.0 * n * n)
        else:
            m = min(self.n_components, n)
            check_allocation(f"a Nystroem kernel solve with {m:,} landmarks", 8.0 * (6 * m * m + 4096 * m))
        return solver

    def estimated_seconds(self, n: int) -> float:
        """Rough single-core time of one fit (for the progress rule)."""
        k = len(_check_ridges(self.ridges))
        if self.planned_solver(n) == "exact":
            return (n ** 3 / 3 * (1 + k * (1 - self.validation) ** 3) + 30 * n * n) / _FLOPS
        m = min(self.n_components, n)
        return (2 * n * m * m + (k + 1) * m ** 3 + 30 * n * m) / _FLOPS

    # -- kernel ----------------------------------------------------------------------------------------------------
    def _kernel(self, A, B):
        from sklearn.metrics.pairwise import polynomial_kernel, rbf_kernel

        if self.kernel == "rbf":
            return rbf_kernel(A, B, gamma=1.0 / (2.0 * self.bandwidth_ ** 2))
        return polynomial_kernel(A, B, degree=int(self.degree), gamma=1.0 / self.n_features_in_, coef0=1.0)

    def _width(self):
        return self.landmarks_.shape[0]

    def _features(self, X):
        return self._kernel(X, self.landmarks_)

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit on raw inputs ``X`` (n, d) and labels ``y`` (n,)."""
        return self.fit_path(X, y)[0]

    def fit_path(self, X, y, ns=None):
        """Fit on every prefix ``X[:n]`` for ``n`` in ``ns`` (default: all of ``X``); a list of fitted copies.

        Each element equals ``clone(self).fit(X[:n], y[:n])``; the exact solver computes one kernel matrix for
        the largest exact ``n`` and slices it for the others.
        """
        from sklearn.base import clone

        self._validate()
        X = _check_X(X)
        y = real_array("y", y).astype(float)
        if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
            raise ValueError(f"y must be finite of shape ({X.shape[0]},), got {y.shape}")
        ns = _check_ns(ns, X.shape[0])
        plans = [self.planned_solver(n) for n in ns]  # every refusal before any work
        seconds = sum(self.estimated_seconds(n) for n in ns)
        bar = _Progress(len(ns), seconds, self.progress, f"kernel ridge ({self.kernel})")
        out = []
        try:
            exact = [n for n, s in zip(ns, plans) if s == "exact"]
            dist2 = None
            if exact and self.kernel == "rbf":
                from sklearn.metrics.pairwise import euclidean_distances

                top = X[:max(exact)]
                dist2 = euclidean_distances(top, top, squared=True)
            gram = None
            if exact and self.kernel == "poly":
                top = X[:max(exact)]
                gram = top @ top.T
            for n, solver in zip(ns, plans):
                t0 = time.perf_counter()
                est = clone(self)
                est.n_features_in_ = X.shape[1]
                est.bandwidth_ = median_bandwidth(X[:n]) if self.kernel == "rbf" else None
                if solver == "exact":
                    if self.kernel == "rbf":
                        K = np.exp(dist2[:n, :n] * (-1.0 / (2.0 * est.bandwidth_ ** 2)))
                    else:
                        K = (1.0 + gram[:n, :n] / X.shape[1]) ** int(self.degree)
                    est._fit_exact(K, X[:n], y[:n])
                else:
                    est._fit_nystrom(X[:n], y[:n])
                est.solver_ = solver
                est.n_train_ = n
                est.fit_s_ = time.perf_counter() - t0
                out.append(est)
                bar.update()
        finally:
            bar.close()
        return out

    def _fit_exact(self, K, X, y):
        n = K.shape[0]
        a = _split(n, self.validation)
        scale = float(np.mean(np.diag(K)))
        ridges = _check_ridges(self.ridges)
        mu = float(y[:a].mean())
        yt, yv = y[:a] - mu, y[a:]
        vv = float(np.var(yv)) if n - a > 1 else 1.0
        errs = []
        for r in ridges:
            coef = _ridge_solve(K[:a, :a], r * scale, yt)
            pred = K[a:, :a] @ coef + mu
            errs.append(float(np.mean((yv - pred) ** 2)) / (vv if vv > 0 else 1.0))
        best = int(np.argmin(errs))
        mu = float(y.mean())
        self.coef_ = _ridge_solve(K, ridges[best] * scale, y - mu)
        self.intercept_ = mu
        self.landmarks_ = X
        self.relative_ridge_, self.ridge_ = ridges[best], ridges[best] * scale
        self.validation_mse_ = dict(zip(ridges, errs))

    def _fit_nystrom(self, X, y):
        n = X.shape[0]
        m = min(int(self.n_components), n)
        L = X[:m]
        self.landmarks_ = L
        Kmm = self._kernel(L, L)
        scale = float(np.mean(np.diag(Kmm)))
        a = _split(n, self.validation)
        # normal-equation sums over [0, a) (fit) and [a, n) (held out); labels centred by the fit part's mean
        mu = float(y[:a].mean())
        G = [np.zeros((m, m)), np.zeros((m, m))]
        b = [np.zeros(m), np.zeros(m)]
        csum = [np.zeros(m), np.zeros(m)]
        yy = [0.0, 0.0]
        rows = max(1, min(4096, 2**22 // m))
        for s0, s1, part in ((0, a, 0), (a, n, 1)):
            for s in range(s0, s1, rows):
                e = min(s1, s + rows)
                C = self._kernel(X[s:e], L)
                yc = y[s:e] - mu
                G[part] += C.T @ C
                b[part] += C.T @ yc
                csum[part] += C.sum(axis=0)
                yy[part] += float(yc @ yc)
        ridges = _check_ridges(self.ridges)
        jitter = 1e-10 * scale * np.eye(m)
        n_val = n - a
        var_val = float(np.var(y[a:])) if n_val > 1 else 1.0
        var_val = var_val if var_val > 0 else 1.0
        errs = []
        for r in ridges:
            w = _pd_solve(G[0] + r * scale * Kmm + jitter, b[0])
            mse = (w @ G[1] @ w - 2.0 * w @ b[1] + yy[1]) / n_val
            errs.append(float(mse) / var_val)
        best = int(np.argmin(errs))
        # refit on all n, labels centred by the full mean: sum C^T (y - mu_all) = b - (mu_all - mu) sum C
        mu_all = float(y.mean())
        bt = b[0] + b[1] - (mu_all - mu) * (csum[0] + csum[1])
        self.coef_ = _pd_solve(G[0] + G[1] + ridges[best] * scale * Kmm + jitter, bt)
        self.intercept_ = mu_all
        self.relative_ridge_, self.ridge_ = ridges[best], ridges[best] * scale
        self.validation_mse_ = dict(zip(ridges, errs))


class HermiteLeastSquares(_Fitted, RegressorMixin, BaseEstimator):
    """The oracle: ridge least squares on all normalised Hermite polynomials of degree ``<= degree`` of ``x``.

    Normal equations accumulated over row blocks (memory ``O(p^2)``, ``p = binom(d + degree, degree)``, not
    ``O(n p)``); the ridge by the held-out rule of the module docstring (relative to the mean diagonal of the
    Gram matrix per sample, which is about 1).

    Parameters
    ----------
    degree : int
        ``2q`` for the oracle of C8.
    ridges, validation, progress : as :class:`KernelRidgeBaseline`.
    chunk_size : int
        Rows lifted at once.
    """

    def __init__(self, degree=4, *, ridges=RIDGES, validation=VALIDATION, chunk_size=2048, progress="auto"):
        self.degree = degree
        self.ridges = ridges
        self.validation = validation
        self.chunk_size = chunk_size
        self.progress = progress

    def _validate(self):
        check_int("degree", self.degree, minimum=0)
        _check_ridges(self.ridges)
        _check_validation(self.validation)
        check_int("chunk_size", self.chunk_size, minimum=1)
        if not (isinstance(self.progress, bool) or self.progress == "auto"):
            raise ValueError(f"progress must be True, False or 'auto', got {self.progress!r}")

    def planned_size(self, d: int, ns=(1,)) -> int:
        """The number of basis functions ``p``; a ValueError (before any work) if the Gram matrices of a path
        over the sample sizes ``ns`` (the running sums, the snapshots held at once, a solve) do not fit."""
        self._validate()
        p = basis_size(d, int(self.degree))
        held = _max_snapshots([int(v) for v in ns], self.validation)
        check_allocation(f"the oracle's normal equations ({p:,} Hermite polynomials of degree <= {self.degree} "
                         f"in d = {d})", 8.0 * p * p * (4 + held) + 8.0 * self.chunk_size * p * 2)
        return p

    def _width(self):
        return self.coef_.shape[0]

    def _features(self, X):
        return hermite_basis(X, int(self.degree))

    def fit(self, X, y):
        return self.fit_path(X, y)[0]

    def fit_path(self, X, y, ns=None):
        """Fit on every prefix ``X[:n]`` for ``n`` in ``ns`` in one pass over the data; a list of fitted copies."""
        from sklearn.base import clone

        self._validate()
        X = _check_X(X)
        y = real_array("y", y).astype(float)
        if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
            raise ValueError(f"y must be finite of shape ({X.shape[0]},), got {y.shape}")
        ns = _check_ns(ns, X.shape[0])
        for n in ns:
            _split(n, self.validation)
        d = X.shape[1]
        p = self.planned_size(d, ns)
        ridges = _check_ridges(self.ridges)
        seconds = (2 * ns[-1] * p * p + len(ns) * (len(ridges) + 1) * p ** 3 / 3) / _FLOPS
        bar = _Progress(len(ns), seconds, self.progress, "oracle least squares")
        # running sums of Phi^T Phi, Phi^T y, y^T y, Phi^T 1 and sum y over the prefix; snapshots at the cuts
        cuts = sorted({_split(n, self.validation) for n in ns} | set(ns))
        G, b, c1 = np.zeros((p, p)), np.zeros(p), np.zeros(p)
        yy, ys, done = 0.0, 0.0, 0
        snap = {}
        out = []
        try:
            for cut in cuts:
                for s in range(done, cut, int(self.chunk_size)):
                    e = min(cut, s + int(self.chunk_size))
                    Phi = hermite_basis(X[s:e], int(self.degree))
                    G += Phi.T @ Phi
                    b += Phi.T @ y[s:e]
                    c1 += Phi.sum(axis=0)
                    yy += float(y[s:e] @ y[s:e])
                    ys += float(y[s:e].sum())
                done = cut
                snap[cut] = (G.copy(), b.copy(), c1.copy(), yy, ys)
                for n in [v for v in ns if v == cut]:
                    t0 = time.perf_counter()
                    a = _split(n, self.validation)
                    est = clone(self)
                    est.n_features_in_ = d
                    est._solve(snap[a], snap[n], a, n, ridges)
                    est.n_train_ = n
                    est.fit_s_ = time.perf_counter() - t0
                    out.append(est)
                    bar.update()
                live = {_split(v, self.validation) for v in ns if v > cut} | {v for v in ns if v > cut}
                for k in [k for k in snap if k not in live]:
                    del snap[k]
        finally:
            bar.close()
        return out

    def _solve(self, fit_part, full, a, n, ridges):
        Ga, ba, ca, yya, ysa = fit_part
        Gn, bn, cn, yyn, ysn = full
        p = Ga.shape[0]
        scale = float(np.trace(Gn)) / (n * p)
        # fit part, labels centred by its mean mu: b - mu c1
        mu = ysa / a
        bfit = ba - mu * ca
        Gv, bv, cv = Gn - Ga, bn - ba, cn - ca
        yyv, ysv, nv = yyn - yya, ysn - ysa, n - a
        # held-out residual of y - mu - Phi w: sum (y - mu)^2 - 2 w^T (b_v - mu c_v) + w^T G_v w
        yy_c = yyv - 2 * mu * ysv + nv * mu * mu
        var_v = yyv / nv - (ysv / nv) ** 2 if nv > 1 else 1.0
        var_v = var_v if var_v > 0 else 1.0
        errs = []
        for r in ridges:
            w = _ridge_solve(Ga, r * scale * a, bfit)
            errs.append(float((yy_c - 2 * w @ (bv - mu * cv) + w @ Gv @ w) / nv) / var_v)
        best = int(np.argmin(errs))
        mu_n = ysn / n
        self.coef_ = _ridge_solve(Gn, ridges[best] * scale * n, bn - mu_n * cn)
        self.intercept_ = mu_n
        self.relative_ridge_, self.ridge_ = ridges[best], ridges[best] * scale * n
        self.validation_mse_ = dict(zip(ridges, errs))
        self.solver_ = "normal equations"


# --------------------------------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------------------------------
def make_baseline(learner: str, q: int, *, progress=False):
    """The estimator of a sweep ``learner`` (``"krr-rbf"``, ``"krr-poly"``, ``"oracle"``) for targets of degree
    ``2q``, with this module's default settings."""
    if learner == "krr-rbf":
        return KernelRidgeBaseline("rbf", progress=progress)
    if learner == "krr-poly":
        return KernelRidgeBaseline("poly", degree=2 * q, progress=progress)
    if learner == "oracle":
        return HermiteLeastSquares(2 * q, progress=progress)
    raise ValueError(f"unknown baseline learner {learner!r}: use one of {BASELINES}")


def baseline_settings(learner: str) -> dict:
    """What besides the task parameters changes a baseline task's numbers (enters its cache key)."""
    est = make_baseline(learner, 2)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params().items() if k != "progress"}
    params.pop("degree", None)  # 2q, from the task's q
    return {"learner": learner, "baseline_version": BASELINE_VERSION, "estimator": params}


def check_baseline_task(task) -> None:
    """A ValueError before any work if a sweep task cannot run with its baseline learner."""
    if task.model != "hermite":
        raise ValueError(f"learner {task.learner!r} works on raw inputs x: it needs model='hermite', got "
                         f"{task.model!r}")
    est = make_baseline(task.learner, task.q)
    n = max(task.ns)
    if isinstance(est, KernelRidgeBaseline):
        for v in task.ns:
            est.planned_solver(v)
    else:
        est.planned_size(task.d, task.ns)
    if n < 3:
        raise ValueError(f"learner {task.learner!r} needs n >= 3 samples (held-out ridge rule), got {n}")


def baseline_memory_bytes(task) -> int:
    """Rough peak memory of :func:`run_baseline_task` (the sweep's memory check)."""
    n = max(task.ns)
    data = 8 * n * (task.d + 4) + 8 * task.n_test * (task.d + len(task.ns) + 1)
    if task.learner == "oracle":
        p = basis_size(task.d, 2 * task.q)
        return int(data + 8 * p * p * 6 + 8 * 2048 * p * 3)
    exact = [v for v in task.ns if v <= MAX_EXACT]
    m = N_COMPONENTS
    kern = 8 * 3 * max(exact) ** 2 if exact else 0
    return int(data + max(kern, 8 * (6 * m * m + 4096 * m)) + 8 * min(task.n_test, 2**22 // m) * max(m, 1))


def run_baseline_task(task) -> dict:
    """Run a sweep task with a baseline learner; the same ``{"rows", "fit_s", "wall_s"}`` as
    :func:`hiermodel.sweep.run_task`, on the same target, training data and test sample as Algorithm 1 sees for
    these parameters. Rows carry ``n, alpha, mse``, the learner as ``method``, the chosen relative ridge and the
    solver; direction metrics are absent (NaN in the table)."""
    from . import metrics
    from .data import SampleStream

    check_baseline_task(task)
    t0 = time.perf_counter()
    streams = task.streams()
    target = task.target()
    stream = SampleStream(target, max(task.ns), streams["train"], chunk_size=task.chunk_size, model=task.model)
    X, y = stream.arrays()
    est = make_baseline(task.learner, task.q)
    fitted = est.fit_path(X, y, list(task.ns))
    t_fit = time.perf_counter() - t0
    rng = np.random.default_rng(streams["test"])  # the test sample of run_task: same chunks, same Generator
    rows = max(1, min(task.n_test, 2**22 // target.d))
    y_parts, pred_parts = [], [[] for _ in fitted]
    for start in range(0, task.n_test, rows):
        Z, yt = target.sample(min(rows, task.n_test - start), rng, model=task.model)
        y_parts.append(yt)
        for k, e in enumerate(fitted):
            pred_parts[k].append(e.predict(Z))
    y_test = np.concatenate(y_parts)
    out = []
    for k, (n, alpha, e) in enumerate(zip(task.ns, task.alphas, fitted)):
        out.append({"n": int(n), "alpha": float(alpha), "mse": metrics.test_mse(y_test, np.concatenate(pred_parts[k])),
                    "q_h": math.nan, "cos2": [], "overlap": [], "angle_cos2": [], "eigenvalues": [],
                    "method": task.learner, "solver": e.solver_, "ridge": e.relative_ridge_, "fit_s": e.fit_s_})
    return {"rows": out, "fit_s": t_fit, "wall_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------------
def learner_of(df):
    """The learner of each row of a sweep table: the ``method`` column for baselines, ``"layerwise"`` for
    Algorithm 1 (whose ``method`` is its eigen-solver route)."""
    if "method" not in df.columns:
        raise ValueError("the table has no 'method' column: pass a table of hiermodel.sweep.run")
    return df["method"].where(df["method"].isin(BASELINES), "layerwise")


def energy_table(df, *, base_seed: int = 0):
    """One row per ``(d, gamma, q, g, eps, model, seed)`` of a sweep table (``g = "id"``, ``q = 2``, real model):
    the draw's exact Hermite-degree fractions ``E_0, E_2, E_4`` (:func:`hiermodel.theory.hermite_energies` of
    the task's target, rebuilt from its seed with ``base_seed``)."""
    import pandas as pd

    from . import theory
    from .sweep import Grid

    keys = ["d", "gamma", "q", "g", "eps", "model", "seed"]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {missing}: pass a table of hiermodel.sweep.run")
    rows = []
    for d, gamma, q, g, eps, model, seed in df[keys].drop_duplicates().itertuples(index=False):
        task = Grid(d=int(d), gamma=float(gamma), q=int(q), g=g, eps=float(eps), model=model, n=[int(d) ** 2],
                    seeds=[int(seed)], base_seed=base_seed).tasks()[0]
        e = theory.hermite_energies(task.target(), model=model)
        rows.append({"d": d, "gamma": gamma, "q": q, "g": g, "eps": eps, "model": model, "seed": seed,
                     "E_0": e[0], "E_2": e[2], "E_4": e[4]})
    return pd.DataFrame(rows)


def add_staircase(df, *, base_seed: int = 0):
    """A copy of ``df`` with each row's draw energies ``E_0, E_2, E_4`` and ``mse_staircase``, the kernel
    staircase :func:`hiermodel.theory.kernel_staircase` of its draw at its ``alpha``."""
    from . import theory

    energies = energy_table(df, base_seed=base_seed)
    keys = ["d", "gamma", "q", "g", "eps", "model", "seed"]
    out = df.drop(columns=[c for c in ("E_0", "E_2", "E_4", "mse_staircase") if c in df.columns])
    out = out.merge(energies, on=keys, how="left", validate="many_to_one")
    out.index = df.index
    out["mse_staircase"] = [float(theory.kernel_staircase({0: a, 2: b, 4: c}, al))
                            for a, b, c, al in zip(out["E_0"], out["E_2"], out["E_4"], out["alpha"])]
    return out
