"""The sweep cache: one checksummed JSON file per task, written atomically; bad entries are reported and ignored."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import numbers
import os
import pathlib
import shutil
import tempfile
import time
import warnings

from .._files import HOST, write_atomic
from ._task import SWEEP_VERSION, canonical, code_version

CACHE_MAGIC = "HIERMODEL-SWEEP"
STALE_TMP_S = 3600.0  # a temporary file this old is a leftover of a killed writer, whoever wrote it
_ROW_LISTS = ("cos2", "overlap", "angle_cos2", "eigenvalues")


def default_cache_dir() -> pathlib.Path:
    """``$HIERMODEL_CACHE_DIR`` if set, else ``~/.cache/hiermodel`` (``$XDG_CACHE_HOME`` is honoured)."""
    env = os.environ.get("HIERMODEL_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return pathlib.Path(base).expanduser() / "hiermodel"


def check_cache_dir(cache_dir):
    """``cache_dir`` as a path (``None``: :func:`default_cache_dir`) or ``None`` for ``False`` (no cache).

    A ValueError, before any work, for what is not a usable directory: ``""``, a non-path, a file, or a directory
    that cannot be created or written.
    """
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = default_cache_dir()
    if isinstance(cache_dir, bool) or not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(f"cache_dir must be a directory path, None (the default cache) or False (no cache), got "
                         f"{cache_dir!r}")
    if isinstance(cache_dir, str) and not cache_dir.strip():
        raise ValueError("cache_dir is empty: give a directory, None for the default cache, or False for no cache")
    root = pathlib.Path(cache_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"cache_dir {str(root)!r} exists and is not a directory")
    probe_dir = root / f"sweep-v{SWEEP_VERSION}"
    try:
        probe_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = "not a directory" if err.errno in (errno.ENOTDIR, errno.EEXIST) else (err.strerror or str(err))
        raise ValueError(f"cannot use the cache directory {str(root)!r}: {reason}; pass another cache_dir "
                         f"(--cache-dir) or no cache (cache_dir=False, --no-cache)") from None
    return root


def check_result(result, task):
    """A ValueError unless ``result`` has the structure :func:`~hiermodel.sweep.run_task` returns for ``task``."""
    if not isinstance(result, dict):
        raise ValueError(f"result is a {type(result).__name__}, not an object")
    rows, wall = result.get("rows"), result.get("wall_s")
    if isinstance(wall, bool) or not isinstance(wall, numbers.Real):
        raise ValueError("result has no wall_s")
    if not isinstance(rows, list) or len(rows) != len(task.ns):
        raise ValueError(f"result has {len(rows) if isinstance(rows, list) else 'no'} rows, the task has "
                         f"{len(task.ns)} sample sizes")
    for r, n in zip(rows, task.ns):
        if not isinstance(r, dict) or r.get("n") != n:
            raise ValueError(f"a row does not belong to n = {n}")
        for key in ("mse", "q_h", "alpha"):
            if isinstance(r.get(key), bool) or not isinstance(r.get(key), numbers.Real):
                raise ValueError(f"row n = {n} has no number {key}")
        if getattr(task, "learner", "layerwise") != "layerwise":  # a baseline: no direction metrics, q_h NaN
            if not isinstance(r.get("method"), str) or not math.isfinite(r["mse"]):
                raise ValueError(f"row n = {n} has no method or a non-finite mse")
            continue
        for key in _ROW_LISTS:
            v = r.get(key)
            if (not isinstance(v, list) or len(v) != task.d1
                    or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v)):
                raise ValueError(f"row n = {n}: {key} is not a list of {task.d1} numbers")
        if not isinstance(r.get("method"), str):
            raise ValueError(f"row n = {n} has no method")
        if not math.isfinite(r["q_h"]):
            raise ValueError(f"row n = {n} has a non-finite q_h")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists
        return True
    return True


class Cache:
    """``<root>/sweep-v<SWEEP_VERSION>/<key[:2]>/<key>.json``; ``root=None`` is a cache that holds nothing."""

    def __init__(self, root):
        self.root = None if root is None else pathlib.Path(root).expanduser() / f"sweep-v{SWEEP_VERSION}"
        self._swept = set()
        self._host = HOST

    def path(self, key):
        return self.root / key[:2] / f"{key}.json"

    def checkpoint_path(self, key):
        """Where a long task saves its unfinished path (``partial/<key>.npz``; safe to delete), or None."""
        return None if self.root is None else self.root / "partial" / f"{key}.npz"

    def discard_checkpoint(self, key):
        """Remove a task's checkpoint once its result is stored."""
        path = self.checkpoint_path(key)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def clean_stray(self, directory=None):
        """Remove temporary files left by killed writers in ``directory`` (default: every directory of the cache;
        once per directory): those of a dead process of this host, and any older than :data:`STALE_TMP_S`. Live
        writers' files are kept."""
        if self.root is None:
            return
        if directory is None:
            try:
                subdirs = [p for p in self.root.iterdir() if p.is_dir()]
            except OSError:
                return
            for sub in subdirs:
                self.clean_stray(sub)
            return
        if directory in self._swept:
            return
        self._swept.add(directory)
        try:
            candidates = list(directory.glob(".*.tmp"))
        except OSError:
            return
        now = time.time()
        for tmp in candidates:
            parts = tmp.name.split(".")  # "", key16, host, pid, random, "tmp"
            try:
                stale = now - tmp.stat().st_mtime > STALE_TMP_S
                if not stale and len(parts) >= 6 and parts[2] == self._host and parts[3].isdigit():
                    stale = not _pid_alive(int(parts[3]))
                elif not stale and len(parts) < 6:  # older naming without host and pid
                    stale = True
                if stale:
                    tmp.unlink()
            except OSError:
                pass

    def load(self, task, key):
        """The cached result, or ``None`` if absent or unusable (then with a warning naming the file)."""
        if self.root is None:
            return None
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:  # a directory at the entry's path, unreadable, ...: recompute, replace on store
            warnings.warn(f"ignoring bad sweep cache entry {path}: {err.strerror or err}; recomputing it",
                          RuntimeWarning, stacklevel=3)
            return None
        try:
            header, _, body = raw.partition(b"\n")
            magic, digest = header.decode("ascii").split(" ")
            if magic != CACHE_MAGIC or hashlib.sha256(body).hexdigest() != digest:
                raise ValueError("checksum mismatch (truncated or corrupted)")
            entry = json.loads(body)
            if not isinstance(entry, dict):
                raise ValueError(f"entry is a JSON {type(entry).__name__}, not an object")
            if entry.get("key") != key:
                raise ValueError("entry belongs to another task")
            result = entry["result"]
            check_result(result, task)
            return result
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, RecursionError) as err:
            warnings.warn(f"ignoring bad sweep cache entry {path}: {err}; recomputing it", RuntimeWarning,
                          stacklevel=3)
            return None

    def store(self, task, key, result):
        """Write ``result`` atomically; an OSError (disk full, read-only, ...) propagates, with no file left."""
        if self.root is None:
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():  # a directory in the way: an entry cannot be read from it
            shutil.rmtree(path, ignore_errors=True)
        body = canonical({"key": key, "params": task.params, "settings": task.settings,
                          "sweep_version": SWEEP_VERSION, "hiermodel": code_version(), "result": result}).encode()
        data = f"{CACHE_MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body
        # Atomic (see hiermodel._files): concurrent writers never interleave, and a kill mid-write leaves only a
        # stray temporary file (removed by a later run), never a half entry.
        write_atomic(path, lambda fh: fh.write(data))
