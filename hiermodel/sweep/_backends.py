"""Where tasks run: inline, a local process pool or a Dask cluster; BLAS limits and the memory budget."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

from .._checks import check_real
from . import _task


def limit_blas(threads):
    """Cap BLAS/OpenMP threads of this process (threadpoolctl acts on already-loaded libraries)."""
    if threads is None:
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # libraries loaded later
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def worker_run(task, blas_threads):
    """Entry point in worker processes (pool or Dask): cap threads, then run."""
    limit_blas(blas_threads)
    return _task.run_task(task)  # looked up at call time, so a patched run_task is used


def connect(scheduler, timeout):
    """``(client, owned)``: a ``distributed.Client`` for an address (or the client passed), or a ValueError."""
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


def total_memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(memory_limit, workers, client):
    """``(bytes, source)`` one task may use: the given limit, the smallest Dask worker's, or RAM / workers."""
    if memory_limit is not None:
        return check_real("memory_limit", memory_limit, minimum=0.0, open_min=True), "memory_limit"
    if client is not None:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
        limits = [x for x in limits if x > 0]
        if limits:
            return float(min(limits)), "the smallest Dask worker's memory limit"
        return None, None
    total = total_memory_bytes()
    if total is None:
        return None, None
    return 0.8 * total / workers, f"80% of this machine's memory shared by {workers} worker(s)"


def execute(tasks, todo, workers, client, blas_threads):
    """Yield ``(index, result)`` as the tasks ``tasks[i] for i in todo`` finish, on the chosen backend."""
    if not todo:
        return
    if client is not None:
        from distributed import as_completed

        threads = 1 if blas_threads == "auto" else blas_threads
        futures = {client.submit(worker_run, tasks[i], threads, key=f"hiermodel-task-{tasks[i].cache_key()}",
                                 pure=False): i for i in todo}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
        return
    if workers == 1:
        threads = None if blas_threads == "auto" else blas_threads
        for i in todo:
            yield i, worker_run(tasks[i], threads)
        return
    threads = 1 if blas_threads == "auto" else blas_threads
    # "spawn": a clean interpreter per worker (fork is unsafe with the threads that tqdm and BLAS may run).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                                initializer=limit_blas, initargs=(threads,)) as pool:
        futures = {pool.submit(worker_run, tasks[i], threads): i for i in todo}
        try:
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def progress_bar(total, initial, enabled):
    # Plain tqdm, not tqdm.auto: in a notebook without ipywidgets tqdm.auto warns (with a file path) on import.
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="task", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)
