"""Atomic file writes: a unique temporary file in the target's directory, then :func:`os.replace`.

A reader sees the whole old file or the whole new one, never a half; a writer killed mid-write leaves only a
temporary file named ``.<stem16>.<host>.<pid>.<random>.tmp``, which :meth:`hiermodel.sweep._cache.Cache.clean_stray`
recognises (host and pid tell whether its writer is still alive).
"""

from __future__ import annotations

import os
import pathlib
import socket
import tempfile

__all__ = ["write_atomic", "HOST"]

HOST = socket.gethostname().replace(".", "_")[:32] or "host"


def write_atomic(path, write, *, text=False, sync=True):
    """Write ``path`` by calling ``write(fh)`` on a temporary file, then rename it into place.

    The file gets the permissions ``open()`` would give (``mkstemp`` creates 0600). ``sync``: fsync before the
    rename (durable across a power loss). Any exception (an OSError for a full or read-only disk included)
    propagates, with the temporary file removed.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.{HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as fh:
            os.fchmod(fh.fileno(), 0o666 & ~umask)
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
