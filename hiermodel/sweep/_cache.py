"""The sweep cache: one checksummed JSON file per task, written atomically; bad entries are reported and ignored."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import warnings

from ._task import SWEEP_VERSION, canonical, code_version

CACHE_MAGIC = "HIERMODEL-SWEEP"


def default_cache_dir() -> pathlib.Path:
    """``$HIERMODEL_CACHE_DIR`` if set, else ``~/.cache/hiermodel`` (``$XDG_CACHE_HOME`` is honoured)."""
    env = os.environ.get("HIERMODEL_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return pathlib.Path(base).expanduser() / "hiermodel"


class Cache:
    """``<root>/sweep-v<SWEEP_VERSION>/<key[:2]>/<key>.json``; ``root=None`` is a cache that holds nothing."""

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
            if magic != CACHE_MAGIC or hashlib.sha256(body).hexdigest() != digest:
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
        body = canonical({"key": key, "params": task.params, "settings": task.settings,
                          "sweep_version": SWEEP_VERSION, "hiermodel": code_version(), "result": result}).encode()
        data = f"{CACHE_MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body
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
