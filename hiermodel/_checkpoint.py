"""A resumable path fit's state on disk: the finished points and the running sums, one ``.npz`` file.

A d = 120 path to alpha = 3.4 accumulates fourth moments over ~1.2e7 samples for hours. Saving the state after
every point of the path (the running sums are flushed to float64 there anyway) lets a killed fit resume at its last
finished point with bit-identical results: the data are regenerated from their seed, and the block grid restarts at
every point (:meth:`hiermodel.data.TrainingData.blocks`).

The file names the fit it belongs to by a fingerprint (estimator parameters, sample sizes, route and the data's
identity); a file of another fit, or a damaged one, is ignored with a warning, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings

import numpy as np

from ._files import write_atomic

__all__ = ["PathCheckpoint", "data_fingerprint", "fingerprint"]

FORMAT = "hiermodel-path-checkpoint-1"


def fingerprint(*parts) -> str:
    """SHA-256 of the parts (bytes, or their text; plain data as sorted JSON), separated."""
    h = hashlib.sha256()
    for part in parts:
        if not isinstance(part, (bytes, str)):
            part = json.dumps(part, sort_keys=True)
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()


def data_fingerprint(data) -> str:
    """Identity of a :class:`hiermodel.data.TrainingData`: its stream's target draw and seed, or its arrays' bytes."""
    s = data.stream
    if s is not None:
        t = s.target
        return fingerprint("stream", repr(s), t.directions.tobytes(), np.asarray(t.weights).tobytes())
    return fingerprint("arrays", data.features, data.q, np.ascontiguousarray(data.Z).tobytes(),
                   np.ascontiguousarray(data.y).tobytes())


class PathCheckpoint:
    """The saved state of one path fit at ``path``; ``fingerprint`` names the fit (see the module docstring)."""

    def __init__(self, path, fingerprint: str):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a file path (str or os.PathLike), got {type(path).__name__}")
        self.path = pathlib.Path(path).expanduser()
        if self.path.is_dir():
            raise ValueError(f"checkpoint {str(self.path)!r} is a directory: give a file path (e.g. fit.npz)")
        self.fingerprint = fingerprint

    def load(self):
        """The saved ``{name: array}`` state, or None (no file, another fit's file, or a damaged one)."""
        try:
            with np.load(self.path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as err:
            warnings.warn(f"ignoring unreadable checkpoint {self.path}: {err}; starting the fit from the beginning",
                          RuntimeWarning, stacklevel=3)
            return None
        header = json.loads(str(state.pop("header", "{}")))
        if header.get("format") != FORMAT or header.get("fingerprint") != self.fingerprint:
            warnings.warn(f"ignoring checkpoint {self.path}: it belongs to another fit (other data, parameters or "
                          f"code); starting the fit from the beginning", RuntimeWarning, stacklevel=3)
            return None
        state["header"] = header
        return state

    def save(self, header: dict, arrays: dict):
        """Write atomically (temporary file in the same directory, then rename): a kill mid-write keeps the last
        complete state. An OSError (disk full, read-only) becomes a warning; the fit goes on unsaved."""
        body = {"header": np.array(json.dumps({"format": FORMAT, "fingerprint": self.fingerprint, **header}))}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, lambda fh: np.savez(fh, **body, **arrays))
        except OSError as err:
            warnings.warn(f"cannot write checkpoint {self.path} ({err.strerror or err}); the fit goes on without "
                          f"saving its state", RuntimeWarning, stacklevel=3)
            return False
        return True
