"""Algorithm 1 of the paper: the layer-wise spectral estimator (SPEC §2; paper Eqs. 2.6, 2.11–2.14, App. A).

First layer: the top-``d1`` eigenvectors, by absolute eigenvalue, of

    C_hat = (1/n) sum_mu y_mu (F_mu F_mu^T - I_D)                                   (SPEC §2, step 1)

with ``F`` the Hermite lift and ``y`` the standardised labels. Second layer: ``A2_hat = (1/n) sum y (h h^T - I)`` on
``h_hat = A_hat F``; readout: a 1-D least-squares fit of ``y`` on ``h2_hat``.

Computing ``C_hat``. Its cost dominates everything else, so three routes are provided:

* ``"dense"``: form ``C_hat`` explicitly in chunks of samples, then take its top-``d1`` by ``|eigenvalue|`` (ARPACK
  Lanczos on the explicit matrix, ``O(D^2)`` per step). For ``q = 2`` on raw inputs only the ``C(d+3, 4)`` distinct
  fourth moments are accumulated (:class:`hiermodel._kernels.MomentSums`, about ``n d^4 / 12`` flops); otherwise signed ``syrk`` on
  the lift (``n D^2``). Best up to moderate ``D``, and the reference for exactness. The moment sums run one
  single-threaded GEMM group per worker thread, as many workers as BLAS threads (``OPENBLAS_NUM_THREADS`` or
  threadpoolctl), so they are bit-identical for every thread count; ``C_hat`` is read off the sums in row blocks
  and its eigen-solve is ARPACK on one BLAS thread.
* ``"operator"``: matrix-free Krylov (Lanczos with full re-orthogonalisation and Rayleigh–Ritz on the whole Krylov
  basis, which resolves both ends of the spectrum at once, as selection by ``|eigenvalue|`` needs; one vector per
  pass by default, ``block`` vectors if asked). Unrestarted, it needs fewer products than ARPACK's restarted
  Lanczos on the same operator (measured at n = d^3: 40-88 products for d = 40-120, against 75-291).
  For ``q = 2`` on raw inputs one application uses the operator form of SPEC §2: with ``F <-> X~/sqrt 2``,
  ``X~ = x x^T - I``, under the isometry of :func:`hiermodel.vector_to_matrix` (``a <-> M``, ``a_ij = sqrt2 M_ij``),

      sum_mu w_mu F_mu F_mu^T a  <->  (1/2) sum_mu w_mu <X~_mu, M> X~_mu
                                   = (1/2) [X^T diag(s) X - (sum_mu s_mu) I],   s_mu = w_mu (x_mu^T M x_mu - tr M),

  so ``C_hat[M] = (1/(2n)) sum_mu w_mu (<X~_mu, M> X~_mu - 2 M)``: about ``4 n d^2`` flops per vector and no ``D x D``
  matrix and no lift. Other cases (``q != 2``, Gaussian-equivalent features) use ``F^T (w * (F V))`` on the lift.
* ``"rsi"``: randomized subspace iteration (15 passes, oversampling 10), the reference for the benchmark.

Nested sweeps over ``n`` (:meth:`LayerwiseSpectral.fit_path`) reuse one pass over the data (dense: the running sums
are read off at each checkpoint) or warm-start each Krylov solve from the previous ``n``'s eigenvectors.
:class:`hiermodel.SampleStream` regenerates data from a seed in chunks, so ``n`` is not limited by memory.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import numbers
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ._checkpoint import PathCheckpoint, data_fingerprint, fingerprint
from ._checks import as_generator, check_bool, check_int, check_real, float_dtype
from ._eigen import DENSE_MAX_D, block_krylov, rsi, top_abs_explicit
from ._kernels import SampleKernel, moment_flops
from .data import SampleStream, scaled_labels, training_data

__all__ = ["LayerwiseSpectral", "spectral_matrix", "readout_degree", "check_range", "METHODS", "READOUTS"]

_SQRT2 = math.sqrt(2.0)
_log = logging.getLogger(__name__)
METHODS = ("auto", "dense", "operator", "rsi")


def spectral_matrix(X, y, q=2, *, features=False, center=True, scale=True, dtype=np.float64) -> np.ndarray:
    """Explicit ``C_hat = (1/n) sum_mu w_mu (F_mu F_mu^T - I_D)`` (SPEC §2 step 1), ``D x D``, float64.

    ``w = (y - mean) / std`` as the estimator uses; ``center=False`` skips the mean, ``scale=False`` the std (both
    False: the raw labels, as in the definition of ``E C_hat``). Reference for tests and small ``D``;
    ``features=True`` for feature vectors ``F`` instead of raw inputs.
    """
    q = check_int("q", q, minimum=1)
    center, scale = check_bool("center", center), check_bool("scale", scale)
    float_dtype("dtype", dtype)
    data = training_data(X, y, q, features=check_bool("features", features))
    check_range(data, dtype)
    w = scaled_labels(data.y, center=center, scale=scale)[0]
    out = []
    SampleKernel(data, dtype).dense([w], [data.n], lambda j, S: out.append(S.totals()[0]))
    C = out[0] / data.n
    C[np.diag_indices_from(C)] -= w.sum() / data.n
    return C


def check_range(data, dtype):
    """A ValueError if array inputs are so large that the spectral step's sums overflow ``dtype``.

    The sums hold products of ``2q`` input entries (raw inputs) or of 2 feature entries, weighted by standardised
    labels (at most ``sqrt(n)``) and summed over ``n`` samples: they must stay below the largest float of ``dtype``.
    """
    if data.stream is not None:
        return
    top = max(float(np.max(data.Z)), -float(np.min(data.Z))) if data.Z.size else 0.0  # no |Z| copy
    if top <= 1.0:
        return
    power = 2 if data.features else 2 * data.q
    dt = np.dtype(dtype)
    if power * math.log10(top) + 1.5 * math.log10(max(data.n, 2)) + 1 > math.log10(float(np.finfo(dt).max)):
        name = "F" if data.features else "X"
        hint = " or pass dtype='float64'" if dt == np.float32 else ""
        raise ValueError(f"{name} has entries up to {top:.3g}: the degree-{power} sums of the spectral step would "
                         f"overflow {dt.name}; rescale {name} (the model's inputs are standard Gaussian){hint}")


@dataclasses.dataclass
class _Plan:
    """One point of a fit path: its sample ranges and label weights, then what each stage computes."""

    n: int
    n1: int  # first layer on rows [0, n1)
    s2: int  # second layer and readout on rows [s2, e2)
    e2: int
    y: np.ndarray  # all labels (a reference, not a copy): weights are scaled on demand, so a path of P points
    mean: float    # holds O(P) numbers here, not P arrays of n
    std: float
    theta: np.ndarray | None = None
    U: np.ndarray | None = None
    passes: int = 0
    converged: bool = False
    A2: np.ndarray | None = None
    h2_center: float = 0.0
    h2_scale: float = 1.0
    coef: np.ndarray | None = None

    def w(self, a=0, b=None):
        """Scaled labels of rows ``[a, b)`` (``b`` defaults to ``n``): ``(y - mean) / std``."""
        return (self.y[a:self.n if b is None else b] - self.mean) / self.std


READOUTS = {"affine": 1, "poly": 3}
"""Named readouts and their polynomial degree in ``h2_hat``."""


def readout_degree(readout) -> int:
    """The polynomial degree of a readout: a name of :data:`READOUTS` or an int ``>= 1``; a ValueError otherwise."""
    if isinstance(readout, str):
        if readout in READOUTS:
            return READOUTS[readout]
        raise ValueError(f"unknown readout {readout!r}: use 'affine', 'poly' or an int degree >= 1")
    if isinstance(readout, bool) or not isinstance(readout, numbers.Integral) or readout < 1:
        raise ValueError(f"readout must be 'affine', 'poly' or an int degree >= 1, got {readout!r}")
    return int(readout)


class LayerwiseSpectral(RegressorMixin, BaseEstimator):
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
    rng : None, int, SeedSequence or Generator
        Start vectors of the iterative solvers (an int gives the same result on every fit).
    dtype : float32 or float64
        Precision of the sample kernels (sums over chunks are kept in float64; eigen-solves are float64).
    tol : float
        Krylov stopping rule on the estimated subspace error ``mean_i (residual_i / gap_i)^2`` (``gap_i``: distance
        of the ``i``-th selected Ritz value to the unselected ones), i.e. on ``1 - q`` against the exact top-``d1``.
    block : int or None
        Krylov block size (vectors per pass over the data). Default: 1 (Lanczos) for ``q = 2`` on raw inputs, where
        it needs the fewest products (at n = d^3, ``tol=1e-8``: 40-88 for d = 40-120; at d = 80, 40 against 76-180
        for blocks of 4-12) and one product is still two GEMMs; ``d1 + max(2, d1 // 2)`` on lifted or feature
        inputs, where a single vector would make the product a matrix-vector one.
    max_passes : int or None
        Cap on Krylov passes over the data; default ``720 // block`` (720 vector products).
    center : bool
        ``True``: labels standardised as ``(y - mean) / std`` on each fit's own samples. ``False``: scaled only,
        ``y / std``. For a centred link (``E g = 0``, as the paper assumes) the two differ by
        ``(mean/std) (1/n) sum (F F^T - I)``, of order ``sqrt(D) / n``; ``False`` lets a dense :meth:`fit_path`
        accumulate one matrix instead of two (``sum y F F^T`` alone), about twice as fast.

    Follows scikit-learn's conventions: ``__init__`` only stores the parameters, :meth:`fit` validates them,
    ``get_params`` / ``set_params`` / ``sklearn.base.clone`` work, fitted attributes end in ``_``.

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
    kernel_stats_ : dict
        Wall times (s) and flop counts of the spectral step: ``spectral_time`` (all of it: data checks, sample
        kernels, eigen-solves), ``apply_*`` (matrix-free products), ``dense_*`` (moment sums; ``dense_time``
        includes the per-point read-outs and solves). The benchmark's GFLOP/s columns come from here.
    """

    def __init__(self, d1, *, q=2, readout="affine", split=False, method="auto", rng=None, dtype=np.float32,
                 tol=1e-6, block=None, max_passes=None, center=True):
        self.d1 = d1
        self.q = q
        self.readout = readout
        self.split = split
        self.method = method
        self.rng = rng
        self.dtype = dtype
        self.tol = tol
        self.block = block
        self.max_passes = max_passes
        self.center = center

    def _validate(self):
        """Check every parameter (scikit-learn convention: in fit, not in ``__init__``)."""
        check_int("d1", self.d1, minimum=1)
        check_int("q", self.q, minimum=1)
        self._degree = readout_degree(self.readout)
        for name in ("split", "center"):
            check_bool(name, getattr(self, name))
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: use one of {METHODS}")
        as_generator(self.rng)  # validates; the Generator itself is built per fit
        float_dtype("dtype", self.dtype)
        check_real("tol", self.tol, minimum=0.0, open_min=True)
        for name in ("block", "max_passes"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)

    # --- method choice ----------------------------------------------------------------------------------------
    def _choose(self, data, n_first_total, sweep_points):
        return self.planned_method(D=data.D, d=data.d, q=data.q, features=data.features, n_first=n_first_total,
                                   sweep_points=sweep_points)

    def planned_method(self, *, D, d, q, features, n_first, sweep_points):
        """The eigen-solver route a fit will use (``method_`` after fitting), before any data is read.

        ``D``, ``d`` (None for feature data), ``q`` and ``features`` describe the data; ``n_first`` is the largest
        first-layer sample size and ``sweep_points`` the number of points of the path (1 for :meth:`fit`).
        ``"auto"`` resolves by the cost model below; a sweep records the resolved route in its cache key.
        """
        if self.method != "auto":
            if self.method == "dense" and D > DENSE_MAX_D:
                raise ValueError(f"method='dense' needs a D x D matrix; D = {D} > {DENSE_MAX_D}")
            return self.method
        if D > DENSE_MAX_D:
            return "operator"
        moments = not features and q == 2
        b = self._block_size(D, moments)
        # Flop models, calibrated on 2 cores (benchmarks/bench_spectral.py): the dense route's GEMMs run about 2x
        # faster than the matrix-free product on raw inputs (2.5x on the short prefixes of a path) and 3x faster
        # than on lifted features. Lanczos (block 1) needs 40-90 products cold at n = d^3 and hardly fewer
        # warm-started; blocks of 9-15 need 12-20 passes cold, ~10 warm-started.
        n_sum = n_first if sweep_points <= 1 else 3.0 * n_first  # sum of nested prefixes
        n_mats = 1 if sweep_points <= 1 or not self.center else 2  # centred sweeps also need sum F F^T
        per_sample = moment_flops(d) if moments else 1.0 * D * D
        dense = n_mats * n_first * per_sample + sweep_points * 300.0 * D ** 2  # GEMMs + ARPACK
        per_vec = 4.0 * d ** 2 if moments else 4.0 * D
        products = 60.0 if b == 1 else (12.0 if sweep_points <= 1 else 10.0) * b
        slower = (2.0 if sweep_points <= 1 else 2.5) if moments else 3.0
        operator = slower * products * n_sum * per_vec
        return "dense" if dense <= operator else "operator"

    def _block_size(self, D, operator_form):
        """Vectors per Krylov pass (see ``block``)."""
        b = self.block if self.block is not None else 1 if operator_form else self.d1 + max(2, self.d1 // 2)
        return int(min(b, D))

    def _max_passes(self, block):
        return self.max_passes if self.max_passes is not None else max(1, 720 // block)

    # --- fitting ----------------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit on raw inputs ``X`` (n, d) and labels ``y`` (n,), or on a :class:`~hiermodel.SampleStream`
        (``y=None``, either model)."""
        self._validate()
        features = None if isinstance(X, SampleStream) else False
        return self._fit_paths(training_data(X, y, self.q, features=features, d1=self.d1), None)[0]

    def fit_features(self, F, y=None):
        """Fit on feature vectors ``F`` (n, D) — e.g. the Gaussian-equivalent model, ``F ~ N(0, I_D)``."""
        self._validate()
        return self._fit_paths(training_data(F, y, self.q, features=True, d1=self.d1), None)[0]

    def fit_path(self, X, y=None, ns=None, *, features=False, checkpoint=None):
        """Fit on every prefix ``X[:n]`` for ``n`` in ``ns`` in one sweep; returns a list of fitted estimators.

        Each element equals ``clone(self).fit(X[:n], y[:n])`` (dense: to rounding; iterative: to the solver
        tolerance). ``X`` may be a :class:`~hiermodel.SampleStream` (``y=None``); ``features=True`` for arrays of
        feature vectors.

        ``checkpoint``: a file path (``.npz``). The first layer's state is saved there after every point of the path
        (finished points, the dense route's running sums, the solver's random state), and a later call with the same
        data, parameters and ``ns`` resumes from it with identical results; a file of another fit is ignored with
        a warning. The file is kept (delete it once the result is stored). About ``8 C(d+3, 4)`` bytes per running
        sum for ``q = 2`` on raw inputs (two sums when centring a path: 145 MB at ``d = 120``), ``8 D^2`` otherwise.
        """
        self._validate()
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a file path (str or os.PathLike) or None, got "
                            f"{type(checkpoint).__name__}")
        if checkpoint is not None and os.path.isdir(checkpoint):
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} is a directory: give a file path (e.g. fit.npz)")
        if ns is None:
            raise ValueError("ns (the sample sizes of the path) is required")
        if isinstance(X, SampleStream):
            features = None
        data = training_data(X, y, self.q, features=features, d1=self.d1)
        ns_arr = np.asarray(ns)
        if ns_arr.ndim != 1 or ns_arr.size < 1:
            raise ValueError("ns must be a non-empty 1-D list of sample sizes")
        ns_list = [check_int("n in ns", int(v) if float(v).is_integer() else v, minimum=1) for v in ns_arr.tolist()]
        if any(b <= a for a, b in zip(ns_list[:-1], ns_list[1:])):
            raise ValueError("ns must be strictly increasing")
        if ns_list[-1] > data.n:
            raise ValueError(f"largest n in ns = {ns_list[-1]} exceeds the number of samples {data.n}")
        return self._fit_paths(data, ns_list, checkpoint)

    def _plan(self, data, n):
        n1, s2, e2 = (n // 2, n // 2, n) if self.split else (n, 0, n)
        if n1 < self.d1 or (e2 - s2) < self.d1:
            raise ValueError(f"n = {n} too small: the {'halves' if self.split else 'sample'} must have at least "
                             f"d1 = {self.d1} samples")
        _, mean, std = scaled_labels(data.y[:n], center=self.center)
        return _Plan(n=n, n1=n1, s2=s2, e2=e2, y=data.y, mean=mean, std=std)

    def _fit_paths(self, data, ns, checkpoint=None):
        t0 = time.perf_counter()
        check_range(data, self.dtype)
        single = ns is None
        plans = [self._plan(data, n) for n in ([data.n] if single else ns)]
        method = self._choose(data, plans[-1].n1, len(plans))
        rng = np.random.default_rng(self.rng) if isinstance(self.rng, numbers.Integral) else as_generator(self.rng)
        kernel = SampleKernel(data, self.dtype)
        store = None if checkpoint is None else PathCheckpoint(checkpoint, self._fingerprint(data, plans, method, rng))
        saved = None if store is None else store.load()
        if method == "dense":
            self._dense_path(data, kernel, plans, store, saved)
        else:
            done = 0 if saved is None else _restore(plans, saved, rng)
            prev = plans[done - 1].U if done else None
            for i, p in enumerate(plans[done:], start=done):
                w = p.w(0, p.n1)
                wsum = float(w.sum())

                def matvec(V, n1=p.n1, w=w, wsum=wsum):
                    return (kernel.apply(V, w, 0, n1) - wsum * V) / n1

                if method == "rsi":
                    th, U, info = rsi(matvec, data.D, self.d1, rng=rng)
                else:
                    b = self._block_size(data.D, kernel.operator_form)
                    th, U, info = block_krylov(matvec, data.D, self.d1, block=b, rng=rng, V0=prev, tol=self.tol,
                                               max_passes=self._max_passes(b))
                    prev = U
                p.theta, p.U, p.passes, p.converged = th, U, info["passes"], info["converged"]
                if store is not None:
                    store.save(*_snapshot(plans[:i + 1], rng))
                _log.info("path point %d/%d done (n = %d)", i + 1, len(plans), p.n)
        stats = {**kernel.stats, "spectral_time": time.perf_counter() - t0}  # the spectral step only
        self._second_stage(kernel, plans)
        fitted = []
        for p in plans:
            est = self if single else copy.copy(self)
            est._store(p, method, data, stats)
            fitted.append(est)
        return fitted

    def _fingerprint(self, data, plans, method, rng):
        """What a checkpoint must match: parameters, sample sizes, route, the solver's start state, data, code."""
        import hiermodel

        params = {k: repr(v) for k, v in self.get_params().items() if k != "rng"}
        return fingerprint(params, [p.n for p in plans], method, rng.bit_generator.state, data_fingerprint(data),
                           hiermodel.__version__)

    def _dense_path(self, data, kernel, plans, store=None, saved=None):
        if len(plans) == 1:
            weights = [plans[0].w()]
        elif not self.center:
            weights = [data.y]  # y / std_n: one running sum serves every prefix
        else:
            # Per-prefix standardisation shifts the weights by a constant: keep sum y F F^T and sum F F^T.
            weights = [data.y, np.ones(data.n)]
        cps = sorted({p.n1 for p in plans})

        def at_checkpoint(j, acc):
            m = cps[j]
            here = [p for p in plans if p.n1 == m]
            # C_hat of each plan, built row block by row block from the sums (no D x D matrix per sum): the same
            # numbers as combining the whole matrices of acc.totals().
            Cs = [np.empty((data.D, data.D)) for _ in here]
            for r0, r1, sums in acc.tiles():
                for p, C in zip(here, Cs):
                    if len(plans) == 1:
                        C[r0:r1] = sums[0] / m
                    else:
                        C[r0:r1] = (sums[0] - p.mean * sums[1] if self.center else sums[0]) / (p.std * m)
            for p, C in zip(here, Cs):
                C[np.diag_indices_from(C)] -= float(p.w(0, m).sum()) / m
                p.theta, p.U = top_abs_explicit(C, self.d1)
                p.passes, p.converged = 1, True
            del Cs
            finished = [p for p in plans if p.n1 <= m]
            if store is not None:
                header, arrays = _snapshot(finished)
                store.save({**header, "checkpoints_done": j + 1}, {**arrays, **acc.state()})
            _log.info("path point %d/%d done (n = %d)", len(finished), len(plans), finished[-1].n)

        resume = None
        if saved is not None:
            j0 = int(saved["header"]["checkpoints_done"])
            _restore(plans, saved)
            resume = (j0, saved)
        kernel.dense(weights, cps, at_checkpoint, resume=resume)

    def _second_stage(self, kernel, plans):
        """``A2_hat`` and the readout of every plan from two streamed passes over ``[min s2, max e2)``.

        Nothing of size ``n`` is kept: pass 1 accumulates ``sum w h h^T`` (``A2_hat``) and ``sum h h^T`` (which gives
        the mean of ``h2_hat`` exactly); pass 2 the centred power sums of ``h2_hat`` and their products with ``w``,
        from which the readout's normal equations in the standardised basis follow. Memory: ``O(d1^2 + p^2)`` per
        plan beyond the current block.
        """
        lo, hi = min(p.s2 for p in plans), max(p.e2 for p in plans)
        r, step, p_deg = self.d1, 65536, self._degree
        steps = list(range(lo, hi, step))
        # Per step of rows: the plans whose second-stage range overlaps it, and their directions stacked.
        active = [[i for i, p in enumerate(plans) if p.s2 < min(s + step, hi) and p.e2 > s] for s in steps]
        stacked = [np.vstack([plans[i].U.T for i in act]) for act in active]

        def blocks():  # (plan, its h on the block's rows, their weights), one pass over the data
            for s, H in kernel.projections(lambda s: stacked[(s - lo) // step], lo, hi, cuts=steps):
                e = s + H.shape[0]
                for c, i in enumerate(active[(s - lo) // step]):
                    a, b = max(s, plans[i].s2), min(e, plans[i].e2)
                    if a < b:
                        yield plans[i], H[a - s:b - s, c * r:(c + 1) * r], plans[i].w(a, b)

        sums = {id(p): [np.zeros((r, r)), np.zeros((r, r)), 0.0] for p in plans}
        for p, h, w in blocks():
            acc = sums[id(p)]
            acc[0] += (h * w[:, None]).T @ h
            acc[1] += h.T @ h
            acc[2] += float(w.sum())
        for p in plans:
            yh, hh, wsum = sums[id(p)]
            m = p.e2 - p.s2
            A2 = yh / m
            A2[np.diag_indices_from(A2)] -= wsum / m
            p.A2 = 0.5 * (A2 + A2.T)
            p.h2_center = float((np.sum(p.A2 * hh) / m - np.trace(p.A2)) / _SQRT2)  # mean of h2_hat
        powers = {id(p): [np.zeros(2 * p_deg + 1), np.zeros(p_deg + 1)] for p in plans}
        for p, h, w in blocks():
            z = self._h2(h, p.A2) - p.h2_center
            Z = np.vander(z, 2 * p_deg + 1, increasing=True)
            acc = powers[id(p)]
            acc[0] += Z.sum(axis=0)
            acc[1] += w @ Z[:, :p_deg + 1]
        for p in plans:
            P, Q = powers[id(p)]
            m = p.e2 - p.s2
            scale = math.sqrt(max(P[2] / m - (P[1] / m) ** 2, 0.0))
            p.h2_scale = scale if scale > 0 else 1.0
            k = np.arange(p_deg + 1)
            gram = P[k[:, None] + k[None, :]] / p.h2_scale ** (k[:, None] + k[None, :])
            p.coef = np.linalg.lstsq(gram, Q / p.h2_scale**k, rcond=None)[0]  # the normal equations of V c ~ w

    @staticmethod
    def _h2(h, A2):
        """``h2_hat = (h^T A2 h - tr A2) / sqrt2`` (SPEC §2 step 4: ``<A2_hat, He_2(h_hat)>`` up to scale)."""
        return (np.einsum("ni,ij,nj->n", h, A2, h) - np.trace(A2)) / _SQRT2

    def _store(self, p, method, data, stats):
        self.directions_ = np.ascontiguousarray(p.U.T)
        self.eigenvalues_ = np.asarray(p.theta, dtype=float)
        self.second_layer_ = p.A2
        self.readout_coef_ = p.coef
        self.h2_mean_, self.h2_scale_ = p.h2_center, p.h2_scale
        self.y_mean_, self.y_std_ = p.mean, p.std
        self.n_, self.n_first_, self.n_second_ = p.n, p.n1, p.e2 - p.s2
        self.method_, self.passes_, self.converged_ = method, p.passes, p.converged
        self.kernel_stats_ = dict(stats)
        self.D_, self.d_ = data.D, data.d

    # --- prediction -------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "directions_"):
            raise ValueError("this LayerwiseSpectral is not fitted yet: call fit, fit_features or fit_path")

    def _project(self, Z, features):
        self._check_fitted()
        n = np.shape(Z)[0] if np.ndim(Z) == 2 else 0
        data = training_data(Z, np.zeros(n), self.q, features=features)
        if data.D != self.D_:
            name = f"F has D = {data.D} columns" if features else f"X has d = {data.d}, which lifts to D = {data.D}"
            raise ValueError(f"{name}; the estimator was fitted with D = {self.D_}")
        return SampleKernel(data, np.float64).project(self.directions_, 0, data.n)

    def first_layer(self, X):
        """``h_hat = A_hat F(x)`` for raw inputs ``X`` (n, d): shape (n, d1)."""
        return self._project(X, False)

    def first_layer_features(self, F):
        """``h_hat = A_hat F`` for feature vectors ``F`` (n, D)."""
        return self._project(F, True)

    def _predict_h(self, h):
        h2 = (self._h2(h, self.second_layer_) - self.h2_mean_) / self.h2_scale_
        ys = np.vander(h2, len(self.readout_coef_), increasing=True) @ self.readout_coef_
        return self.y_mean_ + self.y_std_ * ys

    def predict(self, X):
        """Predictions on the original label scale for raw inputs ``X`` (n, d)."""
        return self._predict_h(self.first_layer(X))

    def predict_features(self, F):
        """Predictions for feature vectors (e.g. Gaussian-equivalent) ``F`` (n, D)."""
        return self._predict_h(self.first_layer_features(F))


def _snapshot(finished, rng=None):
    """``(header, arrays)`` of a checkpoint holding the finished plans (and the solver's random state)."""
    header = {"done": len(finished), "passes": [int(p.passes) for p in finished],
              "converged": [bool(p.converged) for p in finished]}
    if rng is not None:
        header["rng"] = rng.bit_generator.state
    arrays = {}
    for i, p in enumerate(finished):
        arrays[f"theta{i}"], arrays[f"U{i}"] = np.asarray(p.theta), np.asarray(p.U)
    return header, arrays


def _restore(plans, saved, rng=None) -> int:
    """Put a checkpoint's finished plans (and random state) back; returns how many plans it holds."""
    header = saved["header"]
    done = int(header["done"])
    for i, p in enumerate(plans[:done]):
        p.theta, p.U = saved[f"theta{i}"], saved[f"U{i}"]
        p.passes, p.converged = header["passes"][i], header["converged"][i]
    if rng is not None:
        rng.bit_generator.state = header["rng"]
    return done
