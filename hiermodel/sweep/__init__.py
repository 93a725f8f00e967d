"""Parameter sweeps of the layer-wise spectral estimator: declare a grid, get a tidy table.

A sweep runs :class:`hiermodel.estimator.LayerwiseSpectral` over a grid of ``(d, gamma, q, g, eps, model, seed)``
and sample sizes ``n = round(d^alpha)``, and returns a :class:`pandas.DataFrame` with one row per
``(parameters, seed, n)``: every parameter is a column, every metric is a column.

Unit of work. A *task* is one ``(d, gamma, q, g, eps, model, seed)`` with **all** its ``n`` values: the training
data is one chunked :class:`~hiermodel.data.SampleStream` of ``max(n)`` samples and the estimator's nested path
(:meth:`~hiermodel.estimator.LayerwiseSpectral.fit_path`) fits every prefix in one pass, so a whole alpha-sweep
costs about as much as its largest ``n``. Each task evaluates on a fresh test sample of its own.

Seeding. A task's randomness is a :class:`numpy.random.SeedSequence` built from ``base_seed`` and a SHA-256 hash of
its parameter tuple, spawned into independent streams for the target, the training data, the test data and the
solver (:meth:`Task.streams`). Results therefore do not depend on execution order, on the number of workers, or on
which tasks came from the cache.

Cache. Each finished task is one file ``<cache_dir>/sweep-v<SWEEP_VERSION>/<key[:2]>/<key>.json``, keyed by the
task's parameters, the estimator settings, :data:`SWEEP_VERSION` and ``hiermodel.__version__``. Files are written to
a temporary name and moved into place with :func:`os.replace` (atomic: a reader sees a whole entry or none; two
writers of one entry each replace it whole). The first line holds a SHA-256 checksum of the rest; an entry that
fails it (truncated, corrupted) or whose key does not match is recomputed with a warning, never used. A sweep
killed at any moment and restarted recomputes only the missing tasks. Long tasks (``max(n) * D >=``
:data:`CHECKPOINT_MIN_WORK`: minutes to hours) also save their unfinished path after every point to
``<cache_dir>/sweep-v<SWEEP_VERSION>/partial/<key>.npz`` (local backends), so a restarted sweep resumes such a task
at its last finished point with identical numbers; the file is deleted once the task's result is stored.

Parallelism. ``workers=1`` runs tasks inline; ``workers > 1`` uses a :class:`concurrent.futures.ProcessPoolExecutor`;
``scheduler="tcp://host:port"`` (or a ``distributed.Client``) sends tasks to a Dask cluster. Every backend pins BLAS
to ``blas_threads`` threads (default 1; inline only for the duration of the sweep), so results do not depend on the
backend or the number of workers, and ``workers`` processes do not oversubscribe the cores; the thread count is part
of the cache key. Results always come back to the calling process, which alone writes the cache (cluster workers
need no shared disk). Local workers are stopped on every exit path (an exception, Ctrl-C, SIGTERM) and end by
themselves if the calling process is killed. Pool workers are started with "spawn": a script that calls
``run(..., workers=2)`` must guard its top level with ``if __name__ == "__main__":`` (as for any
:mod:`multiprocessing` program), or each worker would re-run the script.

Reliability. Paths, addresses and parameters are checked before any work (a ValueError that names the argument);
the wait for a Dask scheduler (connection, handshake, first worker) is bounded by ``connect_timeout``. A cache that
cannot be written (disk full, read-only) is reported with one warning and the sweep goes on: its results are in the
returned table, only not cached. Temporary files left by killed writers are removed by later runs.

Layout: ``_task`` (task identity, seeding, the grid, running one task), ``_cache`` (the cache), ``_backends``
(execution). Table analysis (means, crossings, slopes) lives in :mod:`hiermodel.tables`.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings

import numpy as np

from .._checks import check_bool, check_int, check_real, format_bytes
from . import _backends
from ._cache import Cache, check_cache_dir, default_cache_dir
from ._task import LINKS, SWEEP_VERSION, Grid, Task, run_task, task_memory_bytes

__all__ = ["SWEEP_VERSION", "METRICS", "CHECKPOINT_MIN_WORK", "LINKS", "Grid", "Task", "run", "run_task", "add_theory",
           "default_cache_dir", "task_memory_bytes"]

METRICS = ("mse", "q_h", "cos2", "overlap", "angles", "eigenvalues", "recovered", "wall_time")
"""Metric groups a sweep can report, and their columns (``K`` = the largest ``d1`` in the grid; beyond a row's own
``d1`` the columns are NaN):

- ``mse``: test MSE on standardised labels; ``q_h``: subspace overlap;
- ``cos2``: ``cos2_1..cos2_K``, the squared norm of the projection of true direction ``i`` on the estimated span;
- ``overlap``: ``overlap_1..overlap_K``, ``<u_k, A_k>^2`` for the ``k``-th estimated direction (Theorem 3.1);
- ``angles``: ``angle_cos2_1..angle_cos2_K``, cos^2 of the principal angles between the spans, decreasing
  (the paper's Fig. 4);
- ``eigenvalues``: ``eig_1..eig_K``; ``recovered``: the number of directions with ``cos2 > 1/2``;
- ``wall_time``: ``wall_s``, the wall time of the whole task."""

CHECKPOINT_MIN_WORK = 2**32
"""``max(n) * D`` from which a task checkpoints its path (about 10^12 flops of fourth moments, a minute or more on
one core; the chapters' CI tasks stay below it and write nothing)."""

# metric group -> (key in a task's result rows, column prefix)
_FAMILIES = {"cos2": ("cos2", "cos2"), "overlap": ("overlap", "overlap"), "angles": ("angle_cos2", "angle_cos2"),
             "eigenvalues": ("eigenvalues", "eig")}


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


def run(grid: Grid, *, cache_dir=None, workers=1, scheduler=None, metrics=None, progress=True,
        blas_threads="auto", memory_limit=None, recompute=False, connect_timeout=10.0):
    """Run every task of ``grid`` (from the cache where possible) and return the tidy table.

    Parameters
    ----------
    grid : Grid
        The declared sweep (a sum of grids runs all their tasks).
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
    blas_threads : int or "auto"
        BLAS threads of every task, on every backend (``"auto"``: 1); part of the cache key.
    memory_limit : float, optional
        Bytes one task may use; default: 80% of RAM divided by ``workers`` (or the Dask workers' limit).
    recompute : bool
        Ignore cached entries (fresh results still overwrite them).
    connect_timeout : float
        Seconds to wait for the Dask scheduler: for each of the connection, its handshake and its first worker.

    Returns
    -------
    pandas.DataFrame
        One row per ``(d, gamma, q, g, eps, model, seed, n)`` in grid order, with columns ``d, d1, D, gamma, q, g,
        eps, model, seed, alpha, n`` and the metric columns (see :data:`METRICS`); ``method`` is the eigen-solver
        route used. ``wall_s`` is the wall time of the whole task (all its ``n`` share one pass), repeated on its
        rows. ``df.attrs["sweep"]`` counts tasks ``computed``, ``cached`` and ``bad_cache`` entries.

    Raises
    ------
    ValueError
        Before any work: an unknown metric, a task whose estimated memory exceeds the limit, an unreachable
        scheduler (or a service that is not one, or one without workers), a cache directory that cannot be used,
        bad ``workers``, ``blas_threads``, ``memory_limit``, ``connect_timeout`` or flags.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a hiermodel.sweep.Grid, got {type(grid).__name__}")
    metrics = _check_metrics(metrics)
    workers = check_int("workers", workers, minimum=1)
    if isinstance(blas_threads, str) and blas_threads == "auto":
        blas_threads = 1
    elif isinstance(blas_threads, bool) or not isinstance(blas_threads, numbers.Integral) or blas_threads < 1:
        raise ValueError(f"blas_threads must be 'auto' (1) or an integer >= 1, got {blas_threads!r}")
    blas_threads = int(blas_threads)
    progress = check_bool("progress", progress)
    recompute = check_bool("recompute", recompute)
    if memory_limit is not None:
        check_real("memory_limit", memory_limit, minimum=0.0, open_min=True)
    connect_timeout = check_real("connect_timeout", connect_timeout, minimum=0.0, open_min=True)
    tasks = grid.tasks()
    cache = Cache(check_cache_dir(cache_dir))
    cache.clean_stray()  # temporary files of killed writers

    client, owns_client = (None, False)
    if scheduler is not None:
        client, owns_client = _backends.connect(scheduler, connect_timeout)
    try:
        budget, source = _backends.memory_budget(memory_limit, workers, client)
        if budget is not None:
            for t in tasks:
                need = task_memory_bytes(t)
                if need > budget:
                    raise ValueError(
                        f"task d={t.d}, gamma={t.gamma}, model={t.model!r} with n up to {max(t.ns):,} needs about "
                        f"{format_bytes(need)}, more than {format_bytes(budget)} ({source}); lower alpha/n, "
                        f"use fewer local workers, a bigger machine or a cluster (scheduler=), or pass memory_limit")
        results, keys, bad = {}, {}, 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            for i, t in enumerate(tasks):
                keys[i] = t.cache_key(blas_threads)
                hit = None if recompute else cache.load(t, keys[i])
                if hit is not None:
                    results[i] = hit
        for w in caught:
            if issubclass(w.category, RuntimeWarning) and "bad sweep cache entry" in str(w.message):
                bad += 1
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        n_cached = len(results)
        todo = [i for i in range(len(tasks)) if i not in results]
        bar = _backends.progress_bar(len(tasks), n_cached, progress)
        unwritable = None
        # Long tasks save their path after every point and resume from it after a crash or kill.
        checkpoints = {i: cache.checkpoint_path(keys[i]) for i in todo
                       if cache.root is not None and max(tasks[i].ns) * tasks[i].D >= CHECKPOINT_MIN_WORK}
        try:
            with contextlib.closing(_backends.execute(tasks, todo, workers, client, blas_threads,
                                                      checkpoints)) as done:
                for i, res in done:
                    results[i] = res
                    bar.update(1)
                    if unwritable is None:
                        try:
                            cache.store(tasks[i], keys[i], res)
                            cache.discard_checkpoint(keys[i])
                        except OSError as err:  # disk full, read-only, ...: keep the result, stop writing
                            unwritable = err
                            warnings.warn(f"cannot write the sweep cache under {cache.root} ({err.strerror or err});"
                                          f" the sweep goes on and returns every result, but the remaining tasks "
                                          f"are not cached", RuntimeWarning, stacklevel=2)
        finally:
            bar.close()
    finally:
        if owns_client:
            client.close()
    df = _assemble(tasks, results, metrics, grid.max_d1)
    df.attrs["sweep"] = {"tasks": len(tasks), "computed": len(todo), "cached": n_cached, "bad_cache": bad}
    return df


def _assemble(tasks, results, metrics, max_d1):
    import pandas as pd

    records = []
    for i, t in enumerate(tasks):
        res = results[i]
        alpha_of = dict(zip(t.ns, t.alphas))
        for r in res["rows"]:
            # alpha from the task (the one requested), not from the entry: the key holds n, not alpha
            rec = {"d": t.d, "d1": t.d1, "D": t.D, "gamma": t.gamma, "q": t.q, "g": t.g, "eps": t.eps,
                   "model": t.model, "seed": t.seed, "alpha": float(alpha_of[r["n"]]), "n": r["n"]}
            if "mse" in metrics:
                rec["mse"] = r["mse"]
            if "q_h" in metrics:
                rec["q_h"] = r["q_h"]
            if "recovered" in metrics:
                rec["recovered"] = int(sum(c > 0.5 for c in r["cos2"]))
            for group, (key, prefix) in _FAMILIES.items():
                if group in metrics:
                    values = r[key]
                    for k in range(max_d1):
                        rec[f"{prefix}_{k + 1}"] = values[k] if k < len(values) else math.nan
            rec["method"] = r["method"]
            if "wall_time" in metrics:
                rec["wall_s"] = res["wall_s"]
            records.append(rec)
    return pd.DataFrame.from_records(records)


def add_theory(df, *, convention="bbp"):
    """A copy of ``df`` with the closed-form predictions of :mod:`hiermodel.theory` for each row.

    Adds ``mse_tail`` (unrecovered tail, paper Eq. 2.15), ``mse_refined`` (SPEC B2), ``recovered_theory``
    (count of directions past threshold) and ``recovered_corollary`` (Corollary 3.1), all at the row's
    ``(d, gamma, eps, q, n)``; ``convention`` (``"bbp"`` or ``"corollary"``) sets the thresholds of the first three.
    """
    from .. import theory

    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame (a sweep table), got {type(df).__name__}")
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
