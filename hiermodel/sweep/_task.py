"""Task identity, seeding and the grid of a sweep, and running one task (the unit of work)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import time

import numpy as np

from .._checks import check_bool, check_int, check_model, check_real
from ..estimator import METHODS, readout_degree
from ..hermite import feature_dimension
from ..theory import WIDTHS, first_layer_width, width_exponent

SWEEP_VERSION = 7
"""Version of what a task produces; part of every cache key. Bump it when the numbers or the recorded metrics change.

History: 3: dense route from distinct fourth moments + ARPACK; 4: eigenvector overlaps and principal angles recorded,
parameter ``mode`` renamed ``model`` (task seeds unchanged, see :meth:`Task.seed_sequence`); 5: the key holds the
eigen-solver route ``method="auto"`` resolves to and the BLAS thread count (numbers unchanged); 6: streamed second
stage and wider fourth-moment GEMMs (float32 rounding-level changes); 7: the matrix-free route on raw inputs is
single-vector Lanczos and ``"auto"``'s cost model is recalibrated (paper-scale tasks change route or numbers to the
solver tolerance; the dense route, hence every CI-scale and stored number, is unchanged)."""

LINKS = ("id", "tanh")
PARAMS = ("d", "gamma", "q", "g", "eps", "model", "seed")
MAX_N = 2**53  # sample sizes must be exact in float64 and in int64

# Sweep v3 called the parameter "mode" and the GE model "gaussian"; seeds hash those bytes (see Task.seed_sequence).
LEGACY_MODEL_NAMES = {"hermite": "hermite", "gaussian-equivalent": "gaussian"}


def canonical(obj) -> str:
    """Deterministic JSON text of plain data (sorted keys, exact float repr)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def code_version() -> str:
    # Imported lazily: hiermodel/__init__ imports this package before it defines __version__.
    import hiermodel

    return str(hiermodel.__version__)


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: a target and data model, one seed, all sample sizes ``ns`` (fitted in one nested pass).

    Build tasks with :meth:`Grid.tasks`; run one with :func:`run_task`.
    """

    d: int
    gamma: float
    q: int
    g: str
    eps: float
    model: str
    seed: int
    ns: tuple
    alphas: tuple
    n_test: int
    readout: str
    split: bool
    method: str
    orthonormal: bool
    chunk_size: int
    base_seed: int
    learner: str = "layerwise"  # "layerwise" = Algorithm 1; a baseline of hiermodel.baselines otherwise

    @property
    def params(self) -> dict:
        """The task's parameters (the columns that identify it in the table)."""
        return {name: getattr(self, name) for name in PARAMS}

    @property
    def settings(self) -> dict:
        """Everything besides the parameters that changes the numbers (``method``: the route actually used)."""
        if self.learner != "layerwise":  # baselines only: every Algorithm 1 task keeps its key
            from ..baselines import baseline_settings

            return {"ns": list(self.ns), "n_test": self.n_test, "chunk_size": self.chunk_size,
                    **baseline_settings(self.learner)}
        return {"ns": list(self.ns), "n_test": self.n_test, "readout": self.readout, "split": self.split,
                "method": self.resolved_method, "orthonormal": self.orthonormal, "chunk_size": self.chunk_size}

    @property
    def resolved_method(self) -> str:
        """The eigen-solver route the task's fit uses: ``method`` itself, or what ``"auto"`` resolves to (the
        estimator's cost model, evaluated without data), so that a change of that model never reuses entries
        computed by another route."""
        from ..estimator import LayerwiseSpectral

        est = LayerwiseSpectral(self.d1, q=self.q, readout=self.readout, split=self.split, method=self.method)
        n = max(self.ns)
        return est.planned_method(D=self.D, d=self.d, q=self.q, features=self.model == "gaussian-equivalent",
                                  n_first=n // 2 if self.split else n, sweep_points=len(self.ns))

    @property
    def d1(self) -> int:
        return first_layer_width(self.d, self.eps)

    @property
    def D(self) -> int:
        return feature_dimension(self.d, self.q)

    def seed_sequence(self) -> np.random.SeedSequence:
        """``SeedSequence([base_seed, *sha256(parameters)])``: independent of order, workers and cache.

        The hashed bytes are those of sweep v3 (key ``"mode"``, GE value ``"gaussian"``), so every task keeps the
        seed it had before the rename and results stay comparable with stored book outputs.
        """
        legacy = {**self.params, "mode": LEGACY_MODEL_NAMES[self.model]}
        del legacy["model"]
        digest = hashlib.sha256(canonical(legacy).encode()).digest()
        words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
        return np.random.SeedSequence([self.base_seed, *words])

    def streams(self) -> dict:
        """The task's independent random streams: ``target``, ``train``, ``test`` and ``solver`` SeedSequences.

        Public so that a chapter can rebuild a task's target (``HierarchicalTarget(..., rng=task.streams()["target"])``)
        without knowing the spawn order.
        """
        return dict(zip(("target", "train", "test", "solver"), self.seed_sequence().spawn(4)))

    def target(self):
        """The task's :class:`~hiermodel.target.HierarchicalTarget` (the same draw :func:`run_task` uses)."""
        from ..target import HierarchicalTarget

        return HierarchicalTarget(self.d, q=self.q, eps=self.eps, gamma=self.gamma, g=self.g,
                                  orthonormal=self.orthonormal, rng=self.streams()["target"])

    def prefix(self, k: int) -> "Task":
        """The task cut to its first ``k`` sample sizes: the same data and seeds, so (nested path, blocks restarting
        at every point) its rows equal the first ``k`` rows of this task's, bit for bit. With ``k >= 2`` a centred
        dense path keeps the same two running sums as the full task; the way to recompute a stored row cheaply."""
        k = check_int("k", k, minimum=1)
        if k > len(self.ns):
            raise ValueError(f"k = {k} exceeds the task's {len(self.ns)} sample sizes")
        return dataclasses.replace(self, ns=self.ns[:k], alphas=self.alphas[:k])

    def cache_key(self, blas_threads: int = 1) -> str:
        """SHA-256 of parameters, settings, base seed, BLAS threads, :data:`SWEEP_VERSION` and the code version.

        ``blas_threads``: the BLAS thread count the task runs with (a sweep pins it on every backend; results can
        differ in the last digits between thread counts, so entries computed with another count are not reused).
        """
        payload = {"params": self.params, "settings": self.settings, "base_seed": self.base_seed,
                   "blas_threads": int(blas_threads), "sweep_version": SWEEP_VERSION, "hiermodel": code_version()}
        return hashlib.sha256(canonical(payload).encode()).hexdigest()


def task_memory_bytes(task: Task) -> int:
    """Rough peak memory of :func:`run_task` in bytes (used to refuse grids that cannot fit before any work).

    Counts the arrays that grow with ``n`` (the labels and, at most three at a time, label-sized work arrays: the
    streamed second stage keeps only ``O(d1^2)`` sums per path point), the ``D x D`` buffers of the dense route, one
    data chunk, and the test chunk.
    """
    if task.learner != "layerwise":
        from ..baselines import baseline_memory_bytes

        return baseline_memory_bytes(task)
    D, d1, n = task.D, task.d1, max(task.ns)
    width = D if task.model == "gaussian-equivalent" else task.d
    labels = 8 * n * 4
    second_stage = 8 * (3 * d1 * d1 + 16) * len(task.ns)
    dense = 5 * 8 * D * D if D <= 8000 else 0  # two float64 sums, two float32 buffers, eigh workspace
    chunk = 8 * task.chunk_size * width * 3 + 8 * min(task.chunk_size, 4096) * D
    test = 8 * min(task.n_test, max(1, 2**22 // width)) * (width + d1) * 2 + 8 * task.n_test * (len(task.ns) + 1)
    return int(labels + second_stage + dense + chunk + test)


# --------------------------------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------------------------------
def as_list(name, value):
    if isinstance(value, (str, numbers.Number)) or value is None:
        values = [value]
    else:
        try:
            values = list(value)
        except TypeError:  # a single non-iterable value: validated by the caller
            values = [value]
    if not values:
        raise ValueError(f"the grid is empty: {name} has no values")
    if any(v is None for v in values):
        raise ValueError(f"{name} must not contain None")
    return values


def tidy(x: float) -> float:
    """Round to 12 significant digits, so ``np.arange(0, 1.01, 0.2)`` gives the same keys as ``[0, 0.2, ...]``."""
    return float(f"{x:.12g}")


def unique(name, values):
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}")
    return tuple(values)


def check_readout(readout):
    # Sweeps take what LayerwiseSpectral accepts plus "auto"; checked here so that a bad value fails before any work
    # rather than inside a worker.
    if readout != "auto":
        readout_degree(readout)
    return readout


class Grid:
    """A declared sweep: the Cartesian product of its parameter lists, each with all its sample sizes.

    Every argument may be a single value or a list. Give exactly one of ``alpha`` (``n = round(d^alpha)`` per
    ``d``) and ``n`` (the same sample sizes for every ``d``). Grids add up: ``grid_a + grid_b`` runs the tasks of
    both (in that order), for experiments that are not one product, such as per-``d`` sample sizes.

    Parameters
    ----------
    d : int or list of int
        Input dimensions.
    gamma : float or list
        Power-law exponents of the second-layer weights (``>= 0``).
    alpha : float or list, optional
        Sample exponents, ``n = round(d^alpha)``; the table's ``alpha`` column holds these values.
    n : int or list, optional
        Sample sizes (instead of ``alpha``); the ``alpha`` column is then ``log n / log d``.
    seeds : int or list of int
        Replicates: an int ``k`` means seeds ``0..k-1``; a list gives them explicitly (table column ``seed``).
    q : int or list
        Degree of the Hermite lift.
    g : {"id", "tanh"} or list
        Output link (callables cannot be hashed stably, so sweeps take names only).
    eps : float or list
        Width exponent, ``d1 = floor(d^eps)``.
    width : {"floor", "round"}
        The width convention: the paper's ``floor(d^eps)``, or the authors' experiment code's ``round(d^eps)``
        (each task then carries the eps that floors to that width, :func:`hiermodel.theory.width_exponent`, so
        the tables and the theory see it; the default keeps every task and seed as before).
    model : {"hermite", "gaussian-equivalent"} or list
        ``"hermite"``: real inputs ``x ~ N(0, I_d)`` and their Hermite lift; ``"gaussian-equivalent"``: the
        Gaussian-equivalent model ``F ~ N(0, I_D)`` (SPEC §4b).
    n_test : int
        Size of each task's fresh test sample.
    readout : {"auto", "affine", "poly"} or int
        ``"auto"``: affine for ``g = "id"``, cubic (``"poly"``) otherwise. Passed to ``LayerwiseSpectral``.
    split : bool
        Sample splitting between the layers (``LayerwiseSpectral(split=...)``).
    method : str
        Eigen-solver route of ``LayerwiseSpectral`` (``"auto"``, ``"dense"``, ``"operator"``, ``"rsi"``).
    orthonormal : bool
        Exactly orthonormal first-layer directions (``HierarchicalTarget(orthonormal=...)``).
    chunk_size : int
        Rows of training data generated at once (bounds memory; part of the cache key).
    base_seed : int
        Mixed into every task's seed: change it for an independent replicate of the whole sweep.
    learner : str or list of str
        ``"layerwise"`` (Algorithm 1, the default) or a baseline of :mod:`hiermodel.baselines` (``"krr-rbf"``,
        ``"krr-poly"``, ``"oracle"``; real model only). A baseline task has the parameters, hence the target,
        training data and test sample, of the Algorithm 1 task it is compared with; the table's ``method`` column
        holds the learner's name (direction metrics NaN).
    """

    def __init__(self, *, d, gamma, alpha=None, n=None, seeds=1, q=2, g="id", eps=0.5, model="hermite",
                 n_test=2000, readout="auto", split=False, method="auto", orthonormal=True, chunk_size=65536,
                 base_seed=0, width="floor", learner="layerwise"):
        self.d = unique("d", [check_int("d", v, minimum=2) for v in as_list("d", d)])
        self.gamma = unique("gamma", [tidy(check_real("gamma", v, minimum=0.0)) for v in as_list("gamma", gamma)])
        self.q = unique("q", [check_int("q", v, minimum=1) for v in as_list("q", q)])
        self.eps = unique("eps", [tidy(check_real("eps", v, minimum=0.0, open_min=True)) for v in as_list("eps", eps)])
        gs = as_list("g", g)
        for v in gs:
            if v not in LINKS:
                raise ValueError(f"unknown g {v!r} in a sweep: use one of {LINKS}")
        self.g = unique("g", gs)
        self.model = unique("model", [check_model(v) for v in as_list("model", model)])
        if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            seeds = list(range(check_int("seeds", seeds, minimum=1)))
        self.seeds = unique("seeds", [check_int("seed", v, minimum=0) for v in as_list("seeds", seeds)])
        if (alpha is None) == (n is None):
            raise ValueError("give exactly one of alpha (n = round(d^alpha)) and n (explicit sample sizes)")
        if alpha is not None:
            alphas = [tidy(check_real("alpha", v, minimum=0.0, open_min=True)) for v in as_list("alpha", alpha)]
            self.alpha, self.n = tuple(sorted(unique("alpha", alphas))), None
        else:
            ns = [check_int("n", v, minimum=1) for v in as_list("n", n)]
            self.n, self.alpha = tuple(sorted(unique("n", ns))), None
        self.n_test = check_int("n_test", n_test, minimum=2)
        self.readout = check_readout(readout)
        self.split = check_bool("split", split)
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
        self.method = method
        self.orthonormal = check_bool("orthonormal", orthonormal)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.base_seed = check_int("base_seed", base_seed, minimum=0)
        if width not in WIDTHS:
            raise ValueError(f"unknown width convention {width!r}: use one of {WIDTHS}")
        self.width = width
        from ..baselines import LEARNERS

        learners = as_list("learner", learner)
        bad = [v for v in learners if not isinstance(v, str) or v not in LEARNERS]
        if bad:
            raise ValueError(f"unknown learner {bad[0]!r}: use one of {LEARNERS}")
        self.learner = unique("learner", learners)
        self.parts = (self,)
        self._tasks = self._build_tasks()

    @classmethod
    def _union(cls, parts):
        out = object.__new__(cls)
        out.parts = tuple(p for part in parts for p in part.parts)
        out._tasks = [t for p in out.parts for t in p._tasks]
        seen = {}
        for t in out._tasks:
            key = (canonical(t.params), t.base_seed, t.learner)
            if key in seen:
                raise ValueError(f"the task {t.params} appears in two of the added grids")
            seen[key] = t
        for name in ("d", "gamma", "q", "g", "eps", "model", "seeds"):
            setattr(out, name, tuple(dict.fromkeys(v for p in out.parts for v in getattr(p, name))))
        for name in ("alpha", "n"):  # the union of the axes when every part uses the same one, else None
            values = [getattr(p, name) for p in out.parts]
            setattr(out, name, None if any(v is None for v in values) else tuple(sorted(set().union(*values))))
        return out

    def __add__(self, other):
        if not isinstance(other, Grid):
            return NotImplemented
        return Grid._union([self, other])

    def __radd__(self, other):  # sum(grids) starts from 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def __repr__(self):
        if len(self.parts) > 1:
            return " + ".join(repr(p) for p in self.parts)
        axis = f"alpha={list(self.alpha)}" if self.alpha is not None else f"n={list(self.n)}"
        return (f"Grid(d={list(self.d)}, gamma={list(self.gamma)}, {axis}, seeds={list(self.seeds)}, "
                f"q={list(self.q)}, g={list(self.g)}, eps={list(self.eps)}, model={list(self.model)}; "
                f"{len(self._tasks)} tasks)")

    def __len__(self):
        return len(self._tasks)

    def __eq__(self, other):
        """Two grids are equal when they run the same tasks in the same order (same cache keys)."""
        if not isinstance(other, Grid):
            return NotImplemented
        return [t.cache_key() for t in self._tasks] == [t.cache_key() for t in other._tasks]

    __hash__ = None

    def _sizes(self, d):
        """``(ns, alphas)`` for dimension ``d``: sorted, distinct, exact integers."""
        if self.n is not None:
            return self.n, tuple(math.log(v) / math.log(d) for v in self.n)
        ns = []
        for a in self.alpha:
            if a * math.log(d) > math.log(MAX_N):
                raise ValueError(f"alpha = {a} at d = {d} gives n = d^alpha ~ 10^{a * math.log10(d):.1f} samples, "
                                 f"beyond the 2^53 that can be counted exactly; lower alpha")
            ns.append(int(round(d ** a)))
        dup = [(a, b) for a, b, m, k in zip(self.alpha, self.alpha[1:], ns, ns[1:]) if m == k]
        if dup:
            raise ValueError(f"at d = {d}, alpha values {dup[0][0]} and {dup[0][1]} give the same n = "
                             f"{int(round(d ** dup[0][0]))}; use a coarser alpha grid or give n explicitly")
        return tuple(ns), self.alpha

    def _build_tasks(self):
        tasks = []
        for learner, d, gamma, q, g, eps, model, seed in itertools.product(
                self.learner, self.d, self.gamma, self.q, self.g, self.eps, self.model, self.seeds):
            if self.width == "round":  # the authors' d1 = round(d^eps), entered as the eps that floors to it
                eps = tidy(width_exponent(d, first_layer_width(d, eps, width="round")))
            D, d1 = feature_dimension(d, q), first_layer_width(d, eps)
            if not 1 <= d1 <= D:
                raise ValueError(f"d1 = floor(d^eps) = {d1} must satisfy 1 <= d1 <= D = {D} (d = {d}, q = {q}, "
                                 f"eps = {eps})")
            ns, alphas = self._sizes(d)
            need = 2 * d1 if self.split else d1
            if ns[0] < need:
                raise ValueError(f"n = {ns[0]} at d = {d} is below the {need} samples the estimator needs "
                                 f"(d1 = {d1}{', split halves' if self.split else ''}); raise the smallest alpha/n")
            readout = self.readout if self.readout != "auto" else ("affine" if g == "id" else "poly")
            tasks.append(Task(d=d, gamma=gamma, q=q, g=g, eps=eps, model=model, seed=seed, ns=ns, alphas=alphas,
                              n_test=self.n_test, readout=readout, split=self.split, method=self.method,
                              orthonormal=self.orthonormal, chunk_size=self.chunk_size, base_seed=self.base_seed,
                              learner=learner))
            if learner != "layerwise":  # refused before any work: a model or size the baseline cannot run
                from ..baselines import check_baseline_task

                check_baseline_task(tasks[-1])
        return tasks

    def tasks(self) -> list:
        """The tasks in a fixed order (the product of the parameter lists, seeds fastest; parts in order)."""
        return list(self._tasks)

    @property
    def max_d1(self) -> int:
        return max(t.d1 for t in self._tasks)


# --------------------------------------------------------------------------------------------------------------------
# Running one task
# --------------------------------------------------------------------------------------------------------------------
def run_task(task: Task, checkpoint=None) -> dict:
    """Fit the nested path of one task and evaluate every ``n``; returns ``{"rows": [...], "wall_s": ...}``.

    A pure function of ``task`` apart from the timing: the target, the training stream, the test sample and the
    solver's start vectors all come from :meth:`Task.streams`. ``checkpoint``: a file where the fit saves its state
    after every point of the path and resumes from (``LayerwiseSpectral.fit_path(checkpoint=...)``).
    """
    from .. import metrics
    from ..data import SampleStream
    from ..estimator import LayerwiseSpectral

    if task.learner != "layerwise":  # a baseline of hiermodel.baselines (same rows, fit_s, wall_s)
        from ..baselines import run_baseline_task

        return run_baseline_task(task)
    t0 = time.perf_counter()
    streams = task.streams()
    target = task.target()
    stream = SampleStream(target, max(task.ns), streams["train"], chunk_size=task.chunk_size, model=task.model)
    est = LayerwiseSpectral(target.d1, q=task.q, readout=task.readout, split=task.split, method=task.method,
                            rng=streams["solver"])
    fitted = est.fit_path(stream, None, list(task.ns), checkpoint=checkpoint)
    if fitted[0].method_ != task.resolved_method:  # the cache key names the route: it must be the one used
        raise RuntimeError(f"task {task.params}: the estimator used method {fitted[0].method_!r}, the cache key "
                           f"says {task.resolved_method!r}")
    t_fit = time.perf_counter() - t0

    # Fresh test sample, drawn in chunks from one Generator (consecutive draws equal one large draw); only the
    # labels and predictions (n_test floats per n) are kept.
    rng = np.random.default_rng(streams["test"])
    features = task.model == "gaussian-equivalent"
    width = target.D if features else target.d
    rows = max(1, min(task.n_test, 2**22 // width))
    y_parts, pred_parts = [], [[] for _ in fitted]
    for start in range(0, task.n_test, rows):
        Z, y = target.sample(min(rows, task.n_test - start), rng, model=task.model)
        y_parts.append(y)
        for k, e in enumerate(fitted):
            pred_parts[k].append(e.predict_features(Z) if features else e.predict(Z))
    y_test = np.concatenate(y_parts)
    out_rows = []
    for k, (n, alpha, e) in enumerate(zip(task.ns, task.alphas, fitted)):
        A, Q = target.directions, e.directions_
        out_rows.append({
            "n": int(n), "alpha": float(alpha),
            "mse": metrics.test_mse(y_test, np.concatenate(pred_parts[k])),
            "q_h": metrics.subspace_overlap(A, Q),
            "cos2": [float(c) for c in metrics.direction_cos2(A, Q)],
            "overlap": [float(c) for c in metrics.eigenvector_overlap(A, Q)],
            "angle_cos2": [float(c) for c in metrics.principal_cos2(A, Q)],
            "eigenvalues": [float(v) for v in e.eigenvalues_],
            "method": str(e.method_),
        })
    return {"rows": out_rows, "fit_s": t_fit, "wall_s": time.perf_counter() - t0}
