"""Parameter sweeps of the layer-wise spectral estimator: declare a grid, get a tidy table.

A sweep runs :class:`hiermodel.estimator.LayerwiseSpectral` over a grid of ``(d, gamma, q, g, eps, mode, seed)`` and
sample sizes ``n = round(d^alpha)``, and returns a :class:`pandas.DataFrame` with one row per
``(parameters, seed, n)``: every parameter is a column, every metric is a column.

Unit of work. A *task* is one ``(d, gamma, q, g, eps, mode, seed)`` with **all** its ``n`` values: the training data
is one chunked :class:`~hiermodel.estimator.SampleStream` of ``max(n)`` samples and the estimator's nested path
(:meth:`~hiermodel.estimator.LayerwiseSpectral.fit_path`) fits every prefix in one pass, so a whole alpha-sweep
costs about as much as its largest ``n``. Each task evaluates on a fresh test sample of its own.

Seeding. A task's randomness is a :class:`numpy.random.SeedSequence` built from ``base_seed`` and a SHA-256 hash of
its parameter tuple, spawned into independent streams for the target, the training data, the test data and the
solver. Results therefore do not depend on execution order, on the number of workers, or on which tasks came from
the cache.

Cache. Each finished task is one file ``<cache_dir>/sweep-v<SWEEP_VERSION>/<key[:2]>/<key>.json``, keyed by the
task's parameters, the estimator settings, :data:`SWEEP_VERSION` and ``hiermodel.__version__``. Files are written to
a temporary name and moved into place with :func:`os.replace` (atomic: a reader sees a whole entry or none; two
writers of one entry each replace it whole). The first line holds a SHA-256 checksum of the rest; an entry that
fails it (truncated, corrupted) or whose key does not match is recomputed with a warning, never used. A sweep
killed at any moment and restarted recomputes only the missing tasks.

Parallelism. ``workers=1`` runs tasks inline; ``workers > 1`` uses a :class:`concurrent.futures.ProcessPoolExecutor`;
``scheduler="tcp://host:port"`` (or a ``distributed.Client``) sends tasks to a Dask cluster. Worker processes limit
BLAS to ``blas_threads`` threads (default 1), so ``workers`` processes do not oversubscribe the cores. Results
always come back to the calling process, which alone writes the cache (cluster workers need no shared disk).

Bump :data:`SWEEP_VERSION` whenever the numbers a task produces change (estimator, metrics, data generation).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import numbers
import os
import pathlib
import tempfile
import time
import warnings

import numpy as np

from ._checks import check_int, check_real
from .hermite import feature_dimension
from .theory import first_layer_width

__all__ = ["SWEEP_VERSION", "METRICS", "MODES", "Grid", "Task", "run", "run_task", "add_theory", "cos2_long",
           "mean_sem", "half_way", "default_cache_dir", "task_memory_bytes"]

SWEEP_VERSION = 3  # 3: dense route from distinct fourth moments + ARPACK (rounding-level changes)
"""Version of the numbers a task produces; part of every cache key. Bump it when they change."""

METRICS = ("mse", "q_h", "cos2", "eigenvalues", "recovered", "wall_time")
"""Metric groups a sweep can report (columns: ``mse``; ``q_h``; ``cos2_1..cos2_K``; ``eig_1..eig_K``;
``recovered``; ``wall_s``, ``K`` = the largest ``d1`` in the grid)."""

MODES = ("hermite", "gaussian")
"""Data modes: real Hermite features of Gaussian inputs, or the Gaussian-equivalent model ``F ~ N(0, I_D)``."""

LINKS = ("id", "tanh")
_PARAMS = ("d", "gamma", "q", "g", "eps", "mode", "seed")
_CACHE_MAGIC = "HIERMODEL-SWEEP"
_MAX_N = 2**53  # sample sizes must be exact in float64 and in int64


def default_cache_dir() -> pathlib.Path:
    """``$HIERMODEL_CACHE_DIR`` if set, else ``~/.cache/hiermodel`` (``$XDG_CACHE_HOME`` is honoured)."""
    env = os.environ.get("HIERMODEL_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return pathlib.Path(base).expanduser() / "hiermodel"


def _code_version() -> str:
    # Imported lazily: hiermodel/__init__ may import this module before it defines __version__.
    import hiermodel

    return str(hiermodel.__version__)


def _canonical(obj) -> str:
    """Deterministic JSON text of plain data (sorted keys, exact float repr)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


# --------------------------------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: a target and data mode, one seed, all sample sizes ``ns`` (fitted in one nested pass).

    Build tasks with :meth:`Grid.tasks`; run one with :func:`run_task`.
    """

    d: int
    gamma: float
    q: int
    g: str
    eps: float
    mode: str
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

    @property
    def params(self) -> dict:
        """The task's parameters (the columns that identify it in the table)."""
        return {name: getattr(self, name) for name in _PARAMS}

    @property
    def settings(self) -> dict:
        """Everything besides the parameters that changes the numbers."""
        return {"ns": list(self.ns), "n_test": self.n_test, "readout": self.readout, "split": self.split,
                "method": self.method, "orthonormal": self.orthonormal, "chunk_size": self.chunk_size}

    @property
    def d1(self) -> int:
        return first_layer_width(self.d, self.eps)

    @property
    def D(self) -> int:
        return feature_dimension(self.d, self.q)

    def seed_sequence(self) -> np.random.SeedSequence:
        """``SeedSequence([base_seed, *sha256(parameters)])``: independent of order, workers and cache."""
        digest = hashlib.sha256(_canonical(self.params).encode()).digest()
        words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
        return np.random.SeedSequence([self.base_seed, *words])

    def cache_key(self) -> str:
        """SHA-256 of parameters, settings, base seed, :data:`SWEEP_VERSION` and ``hiermodel.__version__``."""
        payload = {"params": self.params, "settings": self.settings, "base_seed": self.base_seed,
                   "sweep_version": SWEEP_VERSION, "hiermodel": _code_version()}
        return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def task_memory_bytes(task: Task) -> int:
    """Rough peak memory of :func:`run_task` in bytes (used to refuse grids that cannot fit before any work).

    Counts the arrays that grow with ``n`` (labels, per-``n`` standardised weights, the second-layer features of
    every ``n`` of the path), the ``D x D`` buffers of the dense route, one data chunk, and the test chunk.
    """
    D, d1, n = task.D, task.d1, max(task.ns)
    width = D if task.mode == "gaussian" else task.d
    labels = 8 * n * (len(task.ns) + 3)
    second_stage = 8 * d1 * sum(task.ns)
    dense = 5 * 8 * D * D if D <= 8000 else 0  # two float64 sums, two float32 buffers, eigh workspace
    chunk = 8 * task.chunk_size * width * 3 + 8 * min(task.chunk_size, 4096) * D
    test = 8 * min(task.n_test, max(1, 2**22 // width)) * (width + d1) * 2 + 8 * task.n_test * (len(task.ns) + 1)
    return int(labels + second_stage + dense + chunk + test)


def _total_memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------------------------------
def _as_list(name, value):
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


def _tidy(x: float) -> float:
    """Round to 12 significant digits, so ``np.arange(0, 1.01, 0.2)`` gives the same keys as ``[0, 0.2, ...]``."""
    return float(f"{x:.12g}")


def _unique(name, values):
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}")
    return tuple(values)


class Grid:
    """A declared sweep: the Cartesian product of its parameter lists, each with all its sample sizes.

    Every argument may be a single value or a list. Give exactly one of ``alpha`` (``n = round(d^alpha)`` per
    ``d``) and ``n`` (the same sample sizes for every ``d``).

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
        An int ``k`` means seeds ``0..k-1``; a list gives them explicitly.
    q : int or list
        Degree of the Hermite lift.
    g : {"id", "tanh"} or list
        Output link (callables cannot be hashed stably, so sweeps take names only).
    eps : float or list
        Width exponent, ``d1 = floor(d^eps)``.
    mode : {"hermite", "gaussian"} or list
        ``"hermite"``: real inputs ``x ~ N(0, I_d)`` and their Hermite lift; ``"gaussian"``: the
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
    """

    def __init__(self, *, d, gamma, alpha=None, n=None, seeds=1, q=2, g="id", eps=0.5, mode="hermite",
                 n_test=2000, readout="auto", split=False, method="auto", orthonormal=True, chunk_size=65536,
                 base_seed=0):
        self.d = _unique("d", [check_int("d", v, minimum=2) for v in _as_list("d", d)])
        self.gamma = _unique("gamma", [_tidy(check_real("gamma", v, minimum=0.0)) for v in _as_list("gamma", gamma)])
        self.q = _unique("q", [check_int("q", v, minimum=1) for v in _as_list("q", q)])
        self.eps = _unique("eps", [_tidy(check_real("eps", v, minimum=0.0, open_min=True)) for v in _as_list("eps", eps)])
        gs = _as_list("g", g)
        for v in gs:
            if v not in LINKS:
                raise ValueError(f"unknown g {v!r} in a sweep: use one of {LINKS}")
        self.g = _unique("g", gs)
        modes = _as_list("mode", mode)
        for v in modes:
            if v not in MODES:
                raise ValueError(f"unknown mode {v!r}: use one of {MODES}")
        self.mode = _unique("mode", modes)
        if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            seeds = list(range(check_int("seeds", seeds, minimum=1)))
        self.seeds = _unique("seeds", [check_int("seed", v, minimum=0) for v in _as_list("seeds", seeds)])
        if (alpha is None) == (n is None):
            raise ValueError("give exactly one of alpha (n = round(d^alpha)) and n (explicit sample sizes)")
        if alpha is not None:
            alphas = [_tidy(check_real("alpha", v, minimum=0.0, open_min=True)) for v in _as_list("alpha", alpha)]
            self.alpha, self.n = tuple(sorted(_unique("alpha", alphas))), None
        else:
            ns = [check_int("n", v, minimum=1) for v in _as_list("n", n)]
            self.n, self.alpha = tuple(sorted(_unique("n", ns))), None
        self.n_test = check_int("n_test", n_test, minimum=2)
        if readout != "auto":
            from .estimator import LayerwiseSpectral

            LayerwiseSpectral._readout_degree(readout)  # validates
        self.readout = readout
        self.split = bool(split)
        from .estimator import METHODS

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
        self.method = method
        self.orthonormal = bool(orthonormal)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.base_seed = check_int("base_seed", base_seed, minimum=0)
        self._tasks = self._build_tasks()

    def __repr__(self):
        axis = f"alpha={list(self.alpha)}" if self.alpha is not None else f"n={list(self.n)}"
        return (f"Grid(d={list(self.d)}, gamma={list(self.gamma)}, {axis}, seeds={list(self.seeds)}, "
                f"q={list(self.q)}, g={list(self.g)}, eps={list(self.eps)}, mode={list(self.mode)}; "
                f"{len(self._tasks)} tasks)")

    def __len__(self):
        return len(self._tasks)

    def _sizes(self, d):
        """``(ns, alphas)`` for dimension ``d``: sorted, distinct, exact integers."""
        if self.n is not None:
            return self.n, tuple(math.log(v) / math.log(d) for v in self.n)
        ns = []
        for a in self.alpha:
            if a * math.log(d) > math.log(_MAX_N):
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
        for d, gamma, q, g, eps, mode, seed in itertools.product(self.d, self.gamma, self.q, self.g, self.eps,
                                                                  self.mode, self.seeds):
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
            tasks.append(Task(d=d, gamma=gamma, q=q, g=g, eps=eps, mode=mode, seed=seed, ns=ns, alphas=alphas,
                              n_test=self.n_test, readout=readout, split=self.split, method=self.method,
                              orthonormal=self.orthonormal, chunk_size=self.chunk_size, base_seed=self.base_seed))
        return tasks

    def tasks(self) -> list:
        """The tasks in a fixed order (the product of the parameter lists, seeds fastest)."""
        return list(self._tasks)

    @property
    def max_d1(self) -> int:
        return max(t.d1 for t in self._tasks)


# --------------------------------------------------------------------------------------------------------------------
# Running one task
# --------------------------------------------------------------------------------------------------------------------
def run_task(task: Task) -> dict:
    """Fit the nested path of one task and evaluate every ``n``; returns ``{"rows": [...], "wall_s": ...}``.

    A pure function of ``task`` apart from the timing: the target, the training stream, the test sample and the
    solver's start vectors all come from :meth:`Task.seed_sequence`.
    """
    from . import metrics
    from .estimator import LayerwiseSpectral, SampleStream
    from .target import HierarchicalTarget

    t0 = time.perf_counter()
    ss_target, ss_train, ss_test, ss_solver = task.seed_sequence().spawn(4)
    target = HierarchicalTarget(task.d, q=task.q, eps=task.eps, gamma=task.gamma, g=task.g,
                                orthonormal=task.orthonormal, seed=ss_target)
    gaussian = task.mode == "gaussian"
    stream = SampleStream(target, max(task.ns), ss_train, chunk_size=task.chunk_size, gaussian_equivalent=gaussian)
    est = LayerwiseSpectral(target.d1, q=task.q, readout=task.readout, split=task.split, method=task.method,
                            seed=ss_solver)
    fitted = est.fit_path(stream, None, list(task.ns))
    t_fit = time.perf_counter() - t0

    # Fresh test sample, drawn in chunks from one Generator (consecutive draws equal one large draw); only the
    # labels and predictions (n_test floats per n) are kept.
    rng = np.random.default_rng(ss_test)
    width = target.D if gaussian else target.d
    rows = max(1, min(task.n_test, 2**22 // width))
    y_parts, pred_parts = [], [[] for _ in fitted]
    for start in range(0, task.n_test, rows):
        m = min(rows, task.n_test - start)
        Z, y = target.sample_gaussian_equivalent(m, rng) if gaussian else target.sample(m, rng)
        y_parts.append(y)
        for k, e in enumerate(fitted):
            pred_parts[k].append(e.predict_features(Z) if gaussian else e.predict(Z))
    y_test = np.concatenate(y_parts)
    out_rows = []
    for k, (n, alpha, e) in enumerate(zip(task.ns, task.alphas, fitted)):
        out_rows.append({
            "n": int(n), "alpha": float(alpha),
            "mse": metrics.test_mse(y_test, np.concatenate(pred_parts[k])),
            "q_h": metrics.subspace_overlap(target.directions, e.directions_),
            "cos2": [float(c) for c in metrics.direction_cos2(target.directions, e.directions_)],
            "eigenvalues": [float(v) for v in e.eigenvalues_],
            "method": str(e.method_),
        })
    return {"rows": out_rows, "fit_s": t_fit, "wall_s": time.perf_counter() - t0}


def _limit_blas(threads):
    """Cap BLAS/OpenMP threads of this process (threadpoolctl acts on already-loaded libraries)."""
    if threads is None:
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # libraries loaded later
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _worker_run(task: Task, blas_threads):
    """Entry point in worker processes (pool or Dask): cap threads, then run."""
    _limit_blas(blas_threads)
    return run_task(task)


# --------------------------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------------------------
class _Cache:
    """One checksummed JSON file per task; atomic writes; bad entries are reported and ignored."""

    def __init__(self, root):
        self.root = None if root is None else pathlib.Path(root).expanduser() / f"sweep-v{SWEEP_VERSION}"

    def path(self, key):
        return self.root / key[:2] / f"{key}.json"

    def load(self, task, key):
        """The cached result, or ``None`` if absent or unusable (then with a warning naming the file)."""
        if self.root is None:
            return None
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            header, _, body = raw.partition(b"\n")
            magic, digest = header.decode("ascii").split(" ")
            if magic != _CACHE_MAGIC or hashlib.sha256(body).hexdigest() != digest:
                raise ValueError("checksum mismatch (truncated or corrupted)")
            entry = json.loads(body)
            if entry.get("key") != key:
                raise ValueError("entry belongs to another task")
            return entry["result"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
            warnings.warn(f"ignoring bad sweep cache entry {path}: {err}; recomputing it", RuntimeWarning,
                          stacklevel=3)
            return None

    def store(self, task, key, result):
        if self.root is None:
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = _canonical({"key": key, "params": task.params, "settings": task.settings,
                           "sweep_version": SWEEP_VERSION, "hiermodel": _code_version(), "result": result}).encode()
        data = f"{_CACHE_MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body
        # A unique temporary name in the same directory, then an atomic rename: concurrent writers never
        # interleave, and a kill mid-write leaves only a stray temporary file, never a half entry.
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


# --------------------------------------------------------------------------------------------------------------------
# Running a sweep
# --------------------------------------------------------------------------------------------------------------------
def _check_metrics(metrics):
    if metrics is None:
        return METRICS
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}: choose from {METRICS}")
    if not metrics:
        raise ValueError(f"metrics is empty: choose from {METRICS}")
    return tuple(metrics)


def _connect(scheduler, timeout):
    """A ``distributed.Client`` for an address (or the client passed), or a ValueError if it cannot connect."""
    if hasattr(scheduler, "submit") and hasattr(scheduler, "scheduler_info"):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
                         f"got {scheduler!r}")
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - distributed is a dependency
        raise ValueError("scheduler= needs the 'distributed' package (pip install distributed)") from err
    try:
        return Client(scheduler, timeout=timeout), True
    except (OSError, TimeoutError, ValueError) as err:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} within {timeout} s ({err}); start one "
                         f"with `dask scheduler` and workers with `dask worker {scheduler}`, or omit scheduler to "
                         f"run locally") from err


def _memory_budget(memory_limit, workers, client):
    """Bytes one task may use: the given limit, the smallest Dask worker's limit, or RAM / concurrent tasks."""
    if memory_limit is not None:
        return check_real("memory_limit", memory_limit, minimum=0.0, open_min=True), "memory_limit"
    if client is not None:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
        limits = [x for x in limits if x > 0]
        if limits:
            return float(min(limits)), "the smallest Dask worker's memory limit"
        return None, None
    total = _total_memory_bytes()
    if total is None:
        return None, None
    return 0.8 * total / workers, f"80% of this machine's memory shared by {workers} worker(s)"


def run(grid: Grid, *, cache_dir=None, workers=1, scheduler=None, metrics=None, progress=True,
        blas_threads="auto", memory_limit=None, recompute=False, connect_timeout=10.0):
    """Run every task of ``grid`` (from the cache where possible) and return the tidy table.

    Parameters
    ----------
    grid : Grid
        The declared sweep.
    cache_dir : str, path, None or False
        Cache directory; ``None``: :func:`default_cache_dir`; ``False``: no cache.
    workers : int
        Local worker processes; 1 runs tasks inline in this process.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``"tcp://host:8786"``) or a client: tasks run on that cluster instead.
    metrics : list of str, optional
        Metric groups to report, from :data:`METRICS` (default all).
    progress : bool
        Show a tqdm progress bar (tasks done / total, with ETA) on stderr.
    blas_threads : int, None or "auto"
        BLAS threads per worker process; ``"auto"``: 1 in pool or Dask workers, unchanged inline.
    memory_limit : float, optional
        Bytes one task may use; default: 80% of RAM divided by ``workers`` (or the Dask workers' limit).
    recompute : bool
        Ignore cached entries (fresh results still overwrite them).
    connect_timeout : float
        Seconds to wait for the Dask scheduler.

    Returns
    -------
    pandas.DataFrame
        One row per ``(d, gamma, q, g, eps, mode, seed, n)`` in grid order, with columns ``d, d1, D, gamma, q, g,
        eps, mode, seed, alpha, n`` and the metric columns (see :data:`METRICS`); ``method`` is the eigen-solver
        route used. ``wall_s`` is the wall time of the whole task (all its ``n`` share one pass), repeated on its
        rows. ``df.attrs["sweep"]`` counts tasks ``computed``, ``cached`` and ``bad_cache`` entries.

    Raises
    ------
    ValueError
        Before any work: an unknown metric, a task whose estimated memory exceeds the limit, an unreachable
        scheduler, bad ``workers``.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a hiermodel.sweep.Grid, got {type(grid).__name__}")
    metrics = _check_metrics(metrics)
    workers = check_int("workers", workers, minimum=1)
    if blas_threads != "auto" and blas_threads is not None:
        blas_threads = check_int("blas_threads", blas_threads, minimum=1)
    tasks = grid.tasks()
    cache = _Cache(None if cache_dir is False else (default_cache_dir() if cache_dir is None else cache_dir))

    client, owns_client = (None, False)
    if scheduler is not None:
        client, owns_client = _connect(scheduler, connect_timeout)
    try:
        budget, source = _memory_budget(memory_limit, workers, client)
        if budget is not None:
            for t in tasks:
                need = task_memory_bytes(t)
                if need > budget:
                    raise ValueError(
                        f"task d={t.d}, gamma={t.gamma}, mode={t.mode!r} with n up to {max(t.ns):,} needs about "
                        f"{need / 2**30:.1f} GiB, more than {budget / 2**30:.1f} GiB ({source}); lower alpha/n, "
                        f"use fewer local workers, a bigger machine or a cluster (scheduler=), or pass memory_limit")
        results, keys, bad = {}, {}, 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            for i, t in enumerate(tasks):
                keys[i] = t.cache_key()
                hit = None if recompute else cache.load(t, keys[i])
                if hit is not None:
                    results[i] = hit
        for w in caught:
            if issubclass(w.category, RuntimeWarning) and "bad sweep cache entry" in str(w.message):
                bad += 1
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        n_cached = len(results)
        todo = [i for i in range(len(tasks)) if i not in results]
        bar = _progress_bar(len(tasks), n_cached, progress)
        try:
            for i, res in _execute(tasks, todo, workers, client, blas_threads):
                cache.store(tasks[i], keys[i], res)
                results[i] = res
                bar.update(1)
        finally:
            bar.close()
    finally:
        if owns_client:
            client.close()
    df = _assemble(tasks, results, metrics, grid.max_d1)
    df.attrs["sweep"] = {"tasks": len(tasks), "computed": len(todo), "cached": n_cached, "bad_cache": bad}
    return df


def _progress_bar(total, initial, enabled):
    # Plain tqdm, not tqdm.auto: in a notebook without ipywidgets tqdm.auto warns (with a file path) on import.
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="task", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)


def _execute(tasks, todo, workers, client, blas_threads):
    """Yield ``(index, result)`` as tasks finish, on the chosen backend."""
    if not todo:
        return
    if client is not None:
        from distributed import as_completed

        threads = 1 if blas_threads == "auto" else blas_threads
        futures = {client.submit(_worker_run, tasks[i], threads, key=f"hiermodel-task-{tasks[i].cache_key()}",
                                 pure=False): i for i in todo}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
        return
    if workers == 1:
        threads = None if blas_threads == "auto" else blas_threads
        for i in todo:
            yield i, _worker_run(tasks[i], threads)
        return
    threads = 1 if blas_threads == "auto" else blas_threads
    # "spawn": a clean interpreter per worker (fork is unsafe with the threads that tqdm and BLAS may run).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                                initializer=_limit_blas, initargs=(threads,)) as pool:
        futures = {pool.submit(_worker_run, tasks[i], threads): i for i in todo}
        try:
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _assemble(tasks, results, metrics, max_d1):
    import pandas as pd

    records = []
    for i, t in enumerate(tasks):
        res = results[i]
        for r in res["rows"]:
            rec = {"d": t.d, "d1": t.d1, "D": t.D, "gamma": t.gamma, "q": t.q, "g": t.g, "eps": t.eps,
                   "mode": t.mode, "seed": t.seed, "alpha": r["alpha"], "n": r["n"]}
            if "mse" in metrics:
                rec["mse"] = r["mse"]
            if "q_h" in metrics:
                rec["q_h"] = r["q_h"]
            if "recovered" in metrics:
                rec["recovered"] = int(sum(c > 0.5 for c in r["cos2"]))
            if "cos2" in metrics:
                for k in range(max_d1):
                    rec[f"cos2_{k + 1}"] = r["cos2"][k] if k < len(r["cos2"]) else math.nan
            if "eigenvalues" in metrics:
                for k in range(max_d1):
                    rec[f"eig_{k + 1}"] = r["eigenvalues"][k] if k < len(r["eigenvalues"]) else math.nan
            rec["method"] = r["method"]
            if "wall_time" in metrics:
                rec["wall_s"] = res["wall_s"]
            records.append(rec)
    return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------------------------------------------------
# Theory on the same table, and reshaping
# --------------------------------------------------------------------------------------------------------------------
def add_theory(df, *, convention="bbp"):
    """A copy of ``df`` with the closed-form predictions of :mod:`hiermodel.theory` for each row.

    Adds ``mse_tail`` (unrecovered tail, paper Eq. 2.15), ``mse_refined`` (SPEC B2), ``recovered_theory``
    (count of directions past threshold) and ``recovered_corollary`` (Corollary 3.1), all at the row's
    ``(d, gamma, eps, q, n)``; ``convention`` (``"bbp"`` or ``"corollary"``) sets the thresholds of the first three.
    """
    from . import theory

    needed = {"d", "gamma", "eps", "q", "n"}
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"df lacks the columns {sorted(missing)} that the theory needs")
    out = df.copy()
    cols = {"mse_tail": np.nan, "mse_refined": np.nan, "recovered_theory": 0, "recovered_corollary": 0}
    for c, v in cols.items():
        out[c] = v
    for (d, gamma, eps, q), idx in out.groupby(["d", "gamma", "eps", "q"]).groups.items():
        n = out.loc[idx, "n"].to_numpy(dtype=float)
        kw = dict(d=int(d), gamma=float(gamma), eps=float(eps), q=int(q))
        out.loc[idx, "mse_tail"] = theory.mse_prediction(n, convention=convention, **kw)
        out.loc[idx, "mse_refined"] = theory.mse_prediction(n, convention=convention, refined=True, **kw)
        out.loc[idx, "recovered_theory"] = theory.recovered_count(n, convention=convention, **kw)
        out.loc[idx, "recovered_corollary"] = theory.recovered_count(n, convention="corollary", **kw)
    return out


def mean_sem(df, by, col):
    """Mean, standard deviation, count and standard error of the mean of ``col`` over the rows of each ``by`` group
    (the seeds), indexed by ``by``. A group of one row has ``sem = 0``."""
    out = df.groupby(by)[col].agg(["mean", "std", "count"])
    out["sem"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out


def half_way(alpha, values) -> float:
    """The ``alpha`` at which a curve first covers half the way from its first to its last value (linear
    interpolation between grid points): where the overlap has made half its rise, or the error half its drop."""
    alpha, values = np.asarray(alpha, dtype=float), np.asarray(values, dtype=float)
    if alpha.ndim != 1 or alpha.shape != values.shape or len(alpha) < 2:
        raise ValueError("alpha and values must be 1-D arrays of the same length >= 2")
    if not np.all(np.isfinite(values)) or values[-1] == values[0]:
        raise ValueError("values must be finite, with different first and last values")
    target = 0.5 * (values[0] + values[-1])
    k = int(np.argmax(np.sign(values[-1] - values[0]) * (values - target) >= 0))
    a0, a1, v0, v1 = alpha[k - 1], alpha[k], values[k - 1], values[k]
    return float(a0 + (target - v0) / (v1 - v0) * (a1 - a0))


def cos2_long(df):
    """Reshape the ``cos2_<i>`` columns into rows: one per (row, direction ``i``), columns ``i`` and ``cos2``.

    Directions beyond a row's ``d1`` are dropped. Convenient for plotting ``cos2`` against ``alpha`` per ``i``.
    """
    cols = [c for c in df.columns if c.startswith("cos2_")]
    if not cols:
        raise ValueError("df has no cos2_<i> columns (run the sweep with the 'cos2' metric)")
    ids = [c for c in df.columns if not (c.startswith("cos2_") or c.startswith("eig_"))]
    long = df[ids + cols].melt(id_vars=ids, value_vars=cols, var_name="i", value_name="cos2")
    long["i"] = long["i"].str.slice(5).astype(int)
    return long.dropna(subset=["cos2"]).reset_index(drop=True)
