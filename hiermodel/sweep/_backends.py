"""Where tasks run: inline, a local process pool or a Dask cluster; BLAS limits and the memory budget.

Every backend runs tasks with the same pinned BLAS thread count (default 1), so results do not depend on the
backend or the number of workers. Every wait on the network is bounded (the Dask handshake included), and local
worker processes never outlive the sweep: they are stopped on every exit path (exceptions, Ctrl-C, SIGTERM), and a
watchdog thread in each worker ends it if its parent process dies (even by SIGKILL).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time

from .._checks import check_real, format_bytes
from .._checks import total_memory_bytes as _total_memory
from . import _task

WATCHDOG_S = 0.5  # how often a pool worker checks that its parent is alive


def limit_blas(threads):
    """Cap BLAS/OpenMP threads of this process (threadpoolctl acts on already-loaded libraries)."""
    if threads is None:
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # libraries loaded later
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def watch_parent(parent_pid, interval=WATCHDOG_S):
    """Start a daemon thread that ends this process as soon as its parent ``parent_pid`` is gone."""
    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(70)

    threading.Thread(target=watch, name="hiermodel-parent-watchdog", daemon=True).start()


def pool_worker_init(threads, parent_pid):
    """Initializer of local pool workers: pinned BLAS, no own Ctrl-C handling (the parent stops them), watchdog."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_blas(threads)
    watch_parent(parent_pid)


def worker_run(task, blas_threads, checkpoint=None):
    """Entry point in worker processes (pool or Dask): cap threads, then run."""
    limit_blas(blas_threads)
    return run_one(task, checkpoint)


def run_one(task, checkpoint=None):
    """``run_task``, looked up at call time (so a patched one is used); ``checkpoint`` passed only when given."""
    return _task.run_task(task) if checkpoint is None else _task.run_task(task, checkpoint=checkpoint)


# --------------------------------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------------------------------
def _host_port(address):
    """``(host, port)`` of a ``tcp://`` (or scheme-less) address, or None for other schemes (not probed)."""
    scheme, _, loc = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return None
    loc = loc.strip().rstrip("/")
    if loc.startswith("["):  # [ipv6]:port
        host, _, port = loc[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = loc.rpartition(":") if ":" in loc else (loc, "", "")
    if not port:
        return host, 8786
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scheduler address {address!r} has no valid port: use tcp://HOST:PORT (Dask's default "
                         f"port is 8786)")
    return host, int(port)


def probe_scheduler(address, timeout):
    """A ValueError unless a Dask scheduler answers at ``address`` within ``timeout`` seconds.

    A Dask server speaks first: on accepting a connection it sends its handshake, a frame that starts with an
    8-byte length. So the probe connects (retrying refused connections until the deadline, as Dask does for a
    scheduler still starting), sends nothing and reads 8 bytes: silence (an HTTP server, say) or bytes that are not
    a plausible frame length mean another kind of service, and no read waits past the deadline.
    """
    hp = _host_port(address)
    if hp is None:
        return
    host, port = hp
    deadline = time.monotonic() + timeout
    delay, sock = 0.05, None
    while sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=max(0.05, deadline - time.monotonic()))
        except socket.gaierror as err:
            raise ValueError(_unreachable(address, timeout, f"unknown host {host!r}: {err.strerror or err}")) from None
        except OSError as err:
            if time.monotonic() + delay >= deadline:
                raise ValueError(_unreachable(address, timeout, err.strerror or str(err))) from None
            time.sleep(delay)
            delay = min(2 * delay, 1.0)
    with sock:
        head = b""
        try:
            while len(head) < 8:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    break
                head += chunk
        except (socket.timeout, TimeoutError):
            raise ValueError(f"{host}:{port} accepted a TCP connection but sent no Dask handshake within {timeout:g} s:"
                             f" it is not a Dask scheduler (another service on that port?); check the address, "
                             f"e.g. tcp://HOST:8786") from None
        except OSError as err:
            raise ValueError(_unreachable(address, timeout, err.strerror or str(err))) from None
    if len(head) < 8:
        raise ValueError(f"{host}:{port} closed the connection without a Dask handshake: it is not a Dask scheduler")
    (size,) = struct.unpack("<Q", head)
    if not 0 < size < 1 << 24:
        raise ValueError(f"{host}:{port} answered {head!r}, not a Dask handshake: it is not a Dask scheduler "
                         f"(another service on that port?)")


def _unreachable(address, timeout, reason):
    return (f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({reason}); start one with "
            f"`dask scheduler` and workers with `dask worker {address}`, or omit scheduler to run locally")


def connect(scheduler, timeout):
    """``(client, owned)``: a ``distributed.Client`` for an address (or the client passed), or a ValueError.

    Every step is bounded by ``timeout`` seconds: the TCP connection, the Dask handshake (a service that is not a
    Dask scheduler fails with a message saying so) and the wait for at least one worker.
    """
    timeout = check_real("connect_timeout", timeout, minimum=0.0, open_min=True)
    if hasattr(scheduler, "submit") and hasattr(scheduler, "scheduler_info"):
        _wait_for_workers(scheduler, timeout,
                          getattr(getattr(scheduler, "scheduler", None), "address", None) or "the client's scheduler")
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
                         f"got {scheduler!r}")
    scheduler = scheduler.strip()
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - distributed is a dependency
        raise ValueError("scheduler= needs the 'distributed' package (pip install distributed)") from err
    probe_scheduler(scheduler, timeout)
    box = {}

    def start():
        try:
            box["client"] = Client(scheduler, timeout=timeout)
        except BaseException as err:  # noqa: BLE001 - reported below, in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=start, name="hiermodel-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive():
        raise ValueError(f"the Dask scheduler at {scheduler!r} accepted the connection but did not complete the "
                         f"handshake within {timeout + 5.0:g} s")
    if "error" in box:
        err = box["error"]
        raise ValueError(_unreachable(scheduler, timeout, f"{type(err).__name__}: {err}")) from err
    client = box["client"]
    try:
        _wait_for_workers(client, timeout, scheduler)
    except BaseException:
        client.close()
        raise
    return client, True


def _wait_for_workers(client, timeout, address):
    try:
        if client.scheduler_info().get("workers"):
            return
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as err:
        raise ValueError(f"the Dask scheduler at {address} has no workers (waited {timeout:g} s): start some with "
                         f"`dask worker {address}`") from err


# --------------------------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------------------------
def total_memory_bytes() -> int | None:
    return _total_memory()


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
    return 0.8 * total / workers, (f"80% of this machine's {format_bytes(total)} of memory shared by {workers} "
                                   f"worker(s)")


# --------------------------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------------------------
class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while a sweep's pool runs, so that its workers are stopped."""


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, SIGTERM raises :class:`Terminated` (only where its default action would kill us)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not \
            signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_pool(pool):
    """Stop a process pool now: cancel queued tasks, terminate (then kill) its worker processes."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def execute(tasks, todo, workers, client, blas_threads, checkpoints=None):
    """Yield ``(index, result)`` as the tasks ``tasks[i] for i in todo`` finish, on the chosen backend.

    ``blas_threads`` (an int) is pinned on every backend. ``checkpoints``: ``{index: file path}`` of the tasks that
    save their state after every point of their path (local backends only: a Dask worker may not see this
    machine's disk). Close the generator (or exhaust it) to release the backend: local workers are stopped when it
    is closed early or an exception passes through it.
    """
    checkpoints = {} if checkpoints is None or client is not None else checkpoints
    if not todo:
        return
    if client is not None:
        from distributed import as_completed

        futures = {client.submit(worker_run, tasks[i], blas_threads,
                                 key=f"hiermodel-task-{tasks[i].cache_key(blas_threads)}", pure=False): i
                   for i in todo}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
            raise
        return
    if workers == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas_threads):
            for i in todo:
                yield i, run_one(tasks[i], checkpoints.get(i))
        return
    # "spawn": a clean interpreter per worker (fork is unsafe with the threads that tqdm and BLAS may run).
    ctx = multiprocessing.get_context("spawn")
    with sigterm_raises():
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                                      initializer=pool_worker_init,
                                                      initargs=(blas_threads, os.getpid()))
        finished = False
        try:
            futures = {pool.submit(worker_run, tasks[i], blas_threads, checkpoints.get(i)): i for i in todo}
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:
                stop_pool(pool)


def progress_bar(total, initial, enabled):
    # Plain tqdm, not tqdm.auto: in a notebook without ipywidgets tqdm.auto warns (with a file path) on import.
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="task", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)
