"""Every public entry point and every CLI option, fed bad input: a clear error (type + the words the user sees).

Each row is ``(id, call, expected, fragment)``. ``call(ctx)`` runs the bad input; ``expected`` is the exception type
the library raises, or ``2`` for a CLI call (``ctx.cli(argv)``: exit status 2, exactly one line on stderr that
contains ``fragment``, no traceback, nothing written). Run this file as a script to count the outcome classes
(clear / unclear / silent / hang) on the current code: ``python tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import math
import os
import pathlib
import signal
import socket
import sys
import tempfile
import threading

import numpy as np
import pandas as pd
import pytest

import hiermodel as hm
from hiermodel import cli, figures, sweep
from hiermodel.data import SampleStream

HANG_S = 30  # a call that runs longer counts as a hang


class Ctx:
    """What the calls need: a scratch directory (also the working directory), a local HTTP server, a file."""

    def __init__(self, tmp, http_addr):
        self.tmp = pathlib.Path(tmp)
        self.http = http_addr
        self.file = self.tmp / "a-file"
        self.file.write_text("not a directory\n")
        self.dir_csv = self.tmp / "table.csv"
        self.dir_csv.mkdir(exist_ok=True)
        self.cache = self.tmp / "cache"
        self.rng = np.random.default_rng(0)
        self.target = hm.HierarchicalTarget(8, gamma=0.4, rng=0)
        self.X, self.y = self.target.sample(400, 1)

    def cli(self, argv):
        err = io.StringIO()
        code = 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code
        return CliResult(code, err.getvalue())

    def fitted(self):
        return hm.LayerwiseSpectral(self.target.d1, rng=0).fit(self.X, self.y)

    def small_df(self):
        return sweep.run(sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], n_test=100), cache_dir=False, progress=False)


class CliResult:
    def __init__(self, code, stderr):
        self.code, self.stderr = code, stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


T = ["--d", "8", "--gamma", "0.4", "--alpha", "2:3:0.5", "--seeds", "1", "--n-test", "200", "--no-progress"]
S = ["sweep", *T, "--out", "x.csv"]  # a valid sweep, to which each row adds one bad option
SN = [*S, "--no-cache"]


def sweep_with(*extra, base=None):
    base = SN if base is None else base
    return lambda c: c.cli([*base, *extra])


def sweep_replacing(option, *values):
    """The valid sweep with ``option``'s values replaced."""
    def call(c):
        argv = list(SN)
        i = argv.index(option)
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        return c.cli(argv[:i + 1] + list(values) + argv[j:])
    return call


F = ["figure", "fig2", "--no-progress", "--no-cache"]


def fig(*extra, name="fig2"):
    return lambda c: c.cli(["figure", name, "--no-progress", "--no-cache", "--out-dir", str(c.tmp / "figs"),
                            *extra])


def not_elementwise(z):
    return z - np.mean(z)


def nan_beyond_50(z):
    return np.where(np.abs(z) > 50, np.nan, z)


def nan_beyond_4(z):
    return np.where(np.abs(z) > 4, np.nan, z)


def target3():
    return hm.HierarchicalTarget(6, q=3, rng=0)


R = ValueError
TE = TypeError
CASES = [
    # --- hermite ------------------------------------------------------------------------------------------------
    ("hermite_features X 1-D", lambda c: hm.hermite_features(np.ones(3), 2), R, "X must have shape (n, d)"),
    ("hermite_features dtype=int", lambda c: hm.hermite_features(c.X, 2, dtype=int), R, "dtype must be"),
    ("hermite_features dtype=bogus", lambda c: hm.hermite_features(c.X, 2, dtype="banana"), R, "dtype must be"),
    ("hermite_features complex X", lambda c: hm.hermite_features(c.X + 1j, 2), R, "real numbers"),
    ("hermite_features string X", lambda c: hm.hermite_features([["a", "b"]], 2), R, "real numbers"),
    ("hermite_features object X", lambda c: hm.hermite_features(np.array([[None, 1.0]]), 2), R, "real numbers"),
    ("hermite_features (n, 0) X", lambda c: hm.hermite_features(np.ones((5, 0)), 2), R, "d >= 1"),
    ("hermite_features (0, d) X", lambda c: hm.hermite_features(np.ones((0, 3)), 2), R, "n >= 1"),
    ("hermite_features NaN X", lambda c: hm.hermite_features([[np.nan, 1.0]], 2), R, "NaN"),
    ("hermite_features q=0", lambda c: hm.hermite_features(c.X, 0), R, "q must be an integer >= 1"),
    ("hermite_features q=2.5", lambda c: hm.hermite_features(c.X, 2.5), R, "q must be an integer"),
    ("hermite_features q=True", lambda c: hm.hermite_features(c.X, True), R, "q must be an integer"),
    ("hermite_features huge D", lambda c: hm.hermite_features(np.zeros((2, 200_000)), 2), R, "GiB"),
    ("feature_dimension d=0", lambda c: hm.feature_dimension(0, 2), R, "d must be an integer >= 1"),
    ("feature_dimension q='2'", lambda c: hm.feature_dimension(3, "2"), R, "q must be an integer"),
    ("multisets d=-1", lambda c: hm.multisets(-1, 2), R, "d must be an integer >= 1"),
    ("multisets huge", lambda c: hm.multisets(10**5, 3), R, "GiB"),
    ("vector_to_matrix wrong length", lambda c: hm.vector_to_matrix(np.ones(5), 3), R, "binom"),
    ("vector_to_matrix d='x'", lambda c: hm.vector_to_matrix(np.ones(6), "x"), R, "d must be an integer"),
    ("vector_to_matrix complex", lambda c: hm.vector_to_matrix(np.ones(6) * 1j, 3), R, "real numbers"),
    ("matrix_to_vector not square", lambda c: hm.matrix_to_vector(np.ones((2, 3))), R, "square"),
    ("matrix_to_vector not symmetric", lambda c: hm.matrix_to_vector([[0.0, 1.0], [2.0, 0.0]]), R, "symmetric"),
    ("matrix_to_vector symmetrise='no'",
     lambda c: hm.matrix_to_vector([[0.0, 1.0], [2.0, 0.0]], symmetrise="no"), R, "symmetrise must be True or False"),
    # --- target -------------------------------------------------------------------------------------------------
    ("target d=0", lambda c: hm.HierarchicalTarget(0), R, "d must be an integer >= 1"),
    ("target d=1.5", lambda c: hm.HierarchicalTarget(1.5), R, "d must be an integer"),
    ("target q=0", lambda c: hm.HierarchicalTarget(8, q=0), R, "q must be an integer >= 1"),
    ("target eps<0", lambda c: hm.HierarchicalTarget(8, eps=-0.1), R, "eps must be >= 0"),
    ("target eps=nan", lambda c: hm.HierarchicalTarget(8, eps=float("nan")), R, "eps must be a finite"),
    ("target eps too big", lambda c: hm.HierarchicalTarget(8, eps=3.0), R, "d1 = floor"),
    ("target gamma<0", lambda c: hm.HierarchicalTarget(8, gamma=-1), R, "gamma must be >= 0"),
    ("target gamma='0.4'", lambda c: hm.HierarchicalTarget(8, gamma="0.4"), R, "gamma must be a finite real"),
    ("target g='relu'", lambda c: hm.HierarchicalTarget(8, g="relu"), R, "unknown g"),
    ("target g=42", lambda c: hm.HierarchicalTarget(8, g=42), R, "g must be 'id', 'tanh' or a callable"),
    ("target g not elementwise", lambda c: hm.HierarchicalTarget(8, g=not_elementwise), R, "elementwise"),
    ("target g=np.sort", lambda c: hm.HierarchicalTarget(8, g=np.sort), R, "elementwise"),
    ("target g=math.tanh", lambda c: hm.HierarchicalTarget(8, g=math.tanh), R, "elementwise on numpy arrays"),
    ("target g wrong shape", lambda c: hm.HierarchicalTarget(8, g=lambda z: z[:1]), R, "same shape"),
    ("target g=np.log", lambda c: hm.HierarchicalTarget(8, g=np.log), R, "finite"),
    ("target g NaN beyond 4", lambda c: hm.HierarchicalTarget(8, g=nan_beyond_4), R, "finite"),
    ("target(X) g NaN far out",
     lambda c: hm.HierarchicalTarget(8, g=nan_beyond_50, rng=0)(c.X * 30), R, "non-finite labels"),
    ("target orthonormal='no'", lambda c: hm.HierarchicalTarget(8, orthonormal="no"), R,
     "orthonormal must be True or False"),
    ("target rng=-1", lambda c: hm.HierarchicalTarget(8, rng=-1), R, "rng must be"),
    ("target rng='seed'", lambda c: hm.HierarchicalTarget(8, rng="seed"), R, "rng must be"),
    ("target huge d", lambda c: hm.HierarchicalTarget(10**6), R, "d = 1000000"),
    ("target(X) wrong width", lambda c: c.target(np.ones((3, 5))), R, "X must have shape (n, 8)"),
    ("target(X) complex", lambda c: c.target(c.X + 0.5j), R, "real numbers"),
    ("target(X) strings", lambda c: c.target(np.full((2, 8), "a")), R, "real numbers"),
    ("target(X) empty", lambda c: c.target(np.ones((0, 8))), R, "n >= 1"),
    ("target(X) inf", lambda c: c.target(np.full((2, 8), np.inf)), R, "NaN or infinite"),
    ("first_layer complex", lambda c: c.target.first_layer(c.X * 1j), R, "real numbers"),
    ("second_layer wrong shape", lambda c: c.target.second_layer(np.ones((3, 7))), R, "h must have shape"),
    ("second_layer complex", lambda c: c.target.second_layer(np.ones((3, 2)) * 1j), R, "real numbers"),
    ("sample n=0", lambda c: c.target.sample(0), R, "n must be an integer >= 1"),
    ("sample n=2.5", lambda c: c.target.sample(2.5), R, "n must be an integer"),
    ("sample model='gaussian'", lambda c: c.target.sample(5, model="gaussian"), R, "unknown model"),
    ("sample rng=object", lambda c: c.target.sample(5, object()), R, "rng must be"),
    ("sample complex rng", lambda c: c.target.sample(5, 1j), R, "rng must be"),
    ("h2_variance model='x'", lambda c: c.target.h2_variance(model="x"), R, "unknown model"),
    ("h2_variance q=3", lambda c: target3().h2_variance(), R, "only for q = 2"),
    ("direction_matrices q=3", lambda c: target3().direction_matrices(), R, "only for q = 2"),
    # --- SampleStream -------------------------------------------------------------------------------------------
    ("stream target=None", lambda c: SampleStream(None, 10, 0), TE, "target must be a HierarchicalTarget"),
    ("stream rng=Generator", lambda c: SampleStream(c.target, 10, np.random.default_rng(0)), R, "replayable"),
    ("stream rng=None", lambda c: SampleStream(c.target, 10, None), R, "replayable"),
    ("stream rng=-3", lambda c: SampleStream(c.target, 10, -3), R, "rng must be"),
    ("stream rng=1.5", lambda c: SampleStream(c.target, 10, 1.5), R, "rng must be"),
    ("stream n=0", lambda c: SampleStream(c.target, 0, 0), R, "n must be an integer >= 1"),
    ("stream chunk_size=0", lambda c: SampleStream(c.target, 10, 0, chunk_size=0), R, "chunk_size must be"),
    ("stream model='ge'", lambda c: SampleStream(c.target, 10, 0, model="ge"), R, "unknown model"),
    ("stream n=2.5", lambda c: SampleStream(c.target, 2.5, 0), R, "n must be an integer"),
    # --- estimator: parameters (validated by fit) ---------------------------------------------------------------
    ("fit d1=0", lambda c: hm.LayerwiseSpectral(0).fit(c.X, c.y), R, "d1 must be an integer >= 1"),
    ("fit q=0", lambda c: hm.LayerwiseSpectral(2, q=0).fit(c.X, c.y), R, "q must be an integer >= 1"),
    ("fit readout='cubic'", lambda c: hm.LayerwiseSpectral(2, readout="cubic").fit(c.X, c.y), R, "unknown readout"),
    ("fit readout=0", lambda c: hm.LayerwiseSpectral(2, readout=0).fit(c.X, c.y), R, "readout must be"),
    ("fit split='no'", lambda c: hm.LayerwiseSpectral(2, split="no").fit(c.X, c.y), R, "split must be True or False"),
    ("fit center='yes'", lambda c: hm.LayerwiseSpectral(2, center="yes").fit(c.X, c.y), R,
     "center must be True or False"),
    ("fit method='magic'", lambda c: hm.LayerwiseSpectral(2, method="magic").fit(c.X, c.y), R, "unknown method"),
    ("fit rng='x'", lambda c: hm.LayerwiseSpectral(2, rng="x").fit(c.X, c.y), R, "rng must be"),
    ("fit dtype=int", lambda c: hm.LayerwiseSpectral(2, dtype=int).fit(c.X, c.y), R, "dtype must be float32"),
    ("fit dtype='banana'", lambda c: hm.LayerwiseSpectral(2, dtype="banana").fit(c.X, c.y), R,
     "dtype must be float32"),
    ("fit tol=0", lambda c: hm.LayerwiseSpectral(2, tol=0.0).fit(c.X, c.y), R, "tol must be > 0"),
    ("fit tol=nan", lambda c: hm.LayerwiseSpectral(2, tol=float("nan")).fit(c.X, c.y), R, "tol must be a finite"),
    ("fit block=0", lambda c: hm.LayerwiseSpectral(2, block=0).fit(c.X, c.y), R, "block must be"),
    ("fit max_passes=0", lambda c: hm.LayerwiseSpectral(2, max_passes=0).fit(c.X, c.y), R, "max_passes must be"),
    # --- estimator: data ----------------------------------------------------------------------------------------
    ("fit X 1-D", lambda c: hm.LayerwiseSpectral(2).fit(c.X[0], c.y[:1]), R, "2-D"),
    ("fit y wrong length", lambda c: hm.LayerwiseSpectral(2).fit(c.X, c.y[:-1]), R, "y must have shape"),
    ("fit y=None", lambda c: hm.LayerwiseSpectral(2).fit(c.X), R, "y is required"),
    ("fit y 2-D", lambda c: hm.LayerwiseSpectral(2).fit(c.X, c.y[:, None]), R, "y must have shape"),
    ("fit complex X", lambda c: hm.LayerwiseSpectral(2).fit(c.X + 1j, c.y), R, "real numbers"),
    ("fit string X", lambda c: hm.LayerwiseSpectral(2).fit(np.full((20, 8), "a"), c.y[:20]), R, "real numbers"),
    ("fit string y", lambda c: hm.LayerwiseSpectral(2).fit(c.X[:3], ["a", "b", "c"]), R, "y must hold real numbers"),
    ("fit complex y", lambda c: hm.LayerwiseSpectral(2).fit(c.X, c.y + 1j), R, "y must hold real numbers"),
    ("fit (n, 0) X", lambda c: hm.LayerwiseSpectral(2).fit(np.ones((5, 0)), np.ones(5)), R, "2-D array"),
    ("fit NaN y", lambda c: hm.LayerwiseSpectral(2).fit(c.X, np.where(np.arange(400) == 3, np.nan, c.y)), R, "NaN"),
    ("fit constant y", lambda c: hm.LayerwiseSpectral(2).fit(c.X, np.ones(400)), R, "y is constant"),
    ("fit y x 1e300", lambda c: hm.LayerwiseSpectral(2).fit(c.X, c.y * 1e300), R, "rescale y"),
    ("fit y x 1e-300", lambda c: hm.LayerwiseSpectral(2).fit(c.X, c.y * 1e-300), R, "rescale y"),
    ("fit X x 1e12 float32", lambda c: hm.LayerwiseSpectral(2).fit(c.X * 1e12, c.y), R, "dtype='float64'"),
    ("fit_features F x 1e25 float32", lambda c: hm.LayerwiseSpectral(2).fit_features(
        hm.hermite_features(c.X, 2) * 1e25, c.y), R, "dtype='float64'"),
    ("fit d1 > D", lambda c: hm.LayerwiseSpectral(100).fit(c.X, c.y), R, "exceeds the feature dimension"),
    ("fit n < d1", lambda c: hm.LayerwiseSpectral(2).fit(c.X[:1], c.y[:1]), R, "too small"),
    ("fit stream with y", lambda c: hm.LayerwiseSpectral(2).fit(SampleStream(c.target, 50, 0), c.y), R,
     "pass y=None"),
    ("fit stream q mismatch", lambda c: hm.LayerwiseSpectral(2, q=3).fit(SampleStream(c.target, 50, 0)), R,
     "stream has q"),
    ("fit_features complex F", lambda c: hm.LayerwiseSpectral(2).fit_features(np.ones((50, 36)) * 1j, c.y[:50]),
     R, "real numbers"),
    ("fit_path ns=None", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y), R, "ns"),
    ("fit_path decreasing", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y, [300, 100]), R,
     "strictly increasing"),
    ("fit_path too large", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y, [100, 5000]), R,
     "exceeds the number of samples"),
    ("fit_path empty", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y, []), R, "non-empty"),
    ("fit_path ns=[2.5]", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y, [2.5]), R, "n in ns"),
    ("fit_path features='yes'", lambda c: hm.LayerwiseSpectral(2).fit_path(c.X, c.y, [100], features="yes"), R,
     "features must be True or False"),
    ("predict not fitted", lambda c: hm.LayerwiseSpectral(2).predict(c.X), R, "not fitted"),
    ("predict wrong d", lambda c: c.fitted().predict(np.ones((3, 5))), R, "fitted with D"),
    ("predict complex", lambda c: c.fitted().predict(c.X * 1j), R, "real numbers"),
    ("predict_features wrong D", lambda c: c.fitted().predict_features(np.ones((3, 5))), R, "fitted with D"),
    ("spectral_matrix center='no'", lambda c: hm.spectral_matrix(c.X, c.y, center="no"), R,
     "center must be True or False"),
    ("spectral_matrix scale='no'", lambda c: hm.spectral_matrix(c.X, c.y, scale="no"), R,
     "scale must be True or False"),
    ("spectral_matrix q=0", lambda c: hm.spectral_matrix(c.X, c.y, q=0), R, "q must be an integer >= 1"),
    ("spectral_matrix dtype=int", lambda c: hm.spectral_matrix(c.X, c.y, dtype=int), R, "dtype must be float32"),
    # --- Grid ---------------------------------------------------------------------------------------------------
    ("Grid d=1", lambda c: sweep.Grid(d=1, gamma=0.4, alpha=2), R, "d must be an integer >= 2"),
    ("Grid d='8'", lambda c: sweep.Grid(d="8", gamma=0.4, alpha=2), R, "d must be an integer"),
    ("Grid d repeated", lambda c: sweep.Grid(d=[8, 8], gamma=0.4, alpha=2), R, "repeated"),
    ("Grid d empty", lambda c: sweep.Grid(d=[], gamma=0.4, alpha=2), R, "grid is empty: d"),
    ("Grid gamma=nan", lambda c: sweep.Grid(d=8, gamma=float("nan"), alpha=2), R, "gamma must be a finite"),
    ("Grid eps=0", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, eps=0), R, "eps must be > 0"),
    ("Grid q=0", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, q=0), R, "q must be an integer >= 1"),
    ("Grid g='relu'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, g="relu"), R, "unknown g"),
    ("Grid g callable", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, g=np.tanh), R, "unknown g"),
    ("Grid model='x'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, model="x"), R, "unknown model"),
    ("Grid seeds=0", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, seeds=0), R, "seeds must be"),
    ("Grid seeds=[-1]", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, seeds=[-1]), R, "seed must be"),
    ("Grid alpha and n", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, n=[100]), R, "exactly one of alpha"),
    ("Grid alpha=[]", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=[]), R, "grid is empty: alpha"),
    ("Grid alpha=0", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=0), R, "alpha must be > 0"),
    ("Grid alpha=40", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=[2, 40]), R, "2^53"),
    ("Grid alpha same n", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=[2, 2.0001]), R, "same n"),
    ("Grid n=[0]", lambda c: sweep.Grid(d=8, gamma=0.4, n=[0]), R, "n must be an integer >= 1"),
    ("Grid n=[2.5]", lambda c: sweep.Grid(d=8, gamma=0.4, n=[2.5]), R, "n must be an integer"),
    ("Grid n too small", lambda c: sweep.Grid(d=8, gamma=0.4, n=[1]), R, "below the"),
    ("Grid n_test=1", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, n_test=1), R, "n_test must be"),
    ("Grid readout='x'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, readout="x"), R, "unknown readout"),
    ("Grid split='no'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, split="no"), R, "split must be True or False"),
    ("Grid orthonormal='false'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, orthonormal="false"), R,
     "orthonormal must be True or False"),
    ("Grid method='x'", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, method="x"), R, "unknown method"),
    ("Grid chunk_size=0", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, chunk_size=0), R, "chunk_size must be"),
    ("Grid base_seed=-1", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2, base_seed=-1), R, "base_seed must be"),
    ("Grid + int", lambda c: sweep.Grid(d=8, gamma=0.4, alpha=2) + 1, TE, "unsupported operand"),
    # --- sweep.run ----------------------------------------------------------------------------------------------
    ("run grid=dict", lambda c: sweep.run({"d": 8}, cache_dir=False), R, "grid must be a hiermodel.sweep.Grid"),
    ("run metrics=['x']", lambda c: sweep.run(G(), cache_dir=False, metrics=["x"]), R, "unknown metric"),
    ("run metrics=[]", lambda c: sweep.run(G(), cache_dir=False, metrics=[]), R, "metrics is empty"),
    ("run workers=0", lambda c: sweep.run(G(), cache_dir=False, workers=0), R, "workers must be an integer >= 1"),
    ("run workers=1.5", lambda c: sweep.run(G(), cache_dir=False, workers=1.5), R, "workers must be an integer"),
    ("run blas_threads=0", lambda c: sweep.run(G(), cache_dir=False, blas_threads=0), R, "blas_threads must be"),
    ("run blas_threads='two'", lambda c: sweep.run(G(), cache_dir=False, blas_threads="two"), R,
     "blas_threads must be"),
    ("run memory_limit=-1", lambda c: sweep.run(G(), cache_dir=False, memory_limit=-1), R, "memory_limit must be > 0"),
    ("run memory_limit tiny", lambda c: sweep.run(G(), cache_dir=False, memory_limit=1e5, progress=False), R,
     "more than 97.7 KiB"),
    ("run memory_limit='1G'", lambda c: sweep.run(G(), cache_dir=False, memory_limit="1G"), R,
     "memory_limit must be a finite real"),
    ("run connect_timeout=-1", lambda c: sweep.run(G(), cache_dir=False, scheduler="tcp://127.0.0.1:1",
                                                   connect_timeout=-1), R, "connect_timeout must be > 0"),
    ("run connect_timeout='10'", lambda c: sweep.run(G(), cache_dir=False, connect_timeout="10"), R,
     "connect_timeout must be a finite real"),
    ("run cache_dir=''", lambda c: sweep.run(G(), cache_dir="", progress=False), R, "cache_dir is empty"),
    ("run cache_dir=file", lambda c: sweep.run(G(), cache_dir=c.file, progress=False), R, "not a directory"),
    ("run cache_dir unwritable", lambda c: sweep.run(G(), cache_dir="/proc/hm-cache", progress=False), R,
     "cannot use the cache directory"),
    ("run cache_dir=42", lambda c: sweep.run(G(), cache_dir=42, progress=False), R, "cache_dir must be"),
    ("run cache_dir=True", lambda c: sweep.run(G(), cache_dir=True, progress=False), R, "cache_dir must be"),
    ("run progress='no'", lambda c: sweep.run(G(), cache_dir=False, progress="no"), R,
     "progress must be True or False"),
    ("run recompute='no'", lambda c: sweep.run(G(), cache_dir=False, recompute="no", progress=False), R,
     "recompute must be True or False"),
    ("run scheduler=42", lambda c: sweep.run(G(), cache_dir=False, scheduler=42), R, "scheduler must be an address"),
    ("run scheduler=''", lambda c: sweep.run(G(), cache_dir=False, scheduler=""), R, "scheduler must be an address"),
    ("run scheduler refused", lambda c: sweep.run(G(), cache_dir=False, scheduler=f"tcp://127.0.0.1:{free_port()}",
                                                  connect_timeout=2, progress=False), R,
     "cannot reach the Dask scheduler"),
    ("run scheduler is HTTP", lambda c: sweep.run(G(), cache_dir=False, scheduler=c.http, connect_timeout=2,
                                                  progress=False), R, "not a Dask scheduler"),
    ("run scheduler bad host", lambda c: sweep.run(G(), cache_dir=False, scheduler="tcp://no-such-host.invalid:8786",
                                                   connect_timeout=2, progress=False), R,
     "cannot reach the Dask scheduler"),
    ("run scheduler no workers", lambda c: run_on_empty_scheduler(), R, "no workers"),
    ("add_theory missing columns", lambda c: sweep.add_theory(pd.DataFrame({"d": [8]})), R, "lacks the columns"),
    ("add_theory not a DataFrame", lambda c: sweep.add_theory([1, 2]), R, "df must be a pandas DataFrame"),
    # --- figures ------------------------------------------------------------------------------------------------
    ("figures.grid unknown figure", lambda c: figures.grid("fig9"), R, "unknown figure"),
    ("figures.grid unknown scale", lambda c: figures.grid("fig2", "huge"), R, "unknown scale"),
    ("figures.grid unknown key", lambda c: figures.grid("fig2", colour="red"), R, "unknown grid key"),
    ("figures.grid d=1", lambda c: figures.grid("fig2", d=1), R, "d must be an integer >= 2"),
    ("figures.plot empty", lambda c: figures.plot("fig2", pd.DataFrame()), R, "empty"),
    ("figures.plot not a DataFrame", lambda c: figures.plot("fig2", [1, 2]), R, "must be a pandas DataFrame"),
    ("figures.plot missing columns", lambda c: figures.plot("fig2", pd.DataFrame({"d": [8], "x": [1]})), R,
     "lacks the columns"),
    ("figures.plot fig4 missing columns", lambda c: figures.plot("fig4", c.small_df().drop(columns=["recovered"])),
     R, "lacks the columns"),
    ("figures.plot rate missing columns", lambda c: figures.plot("rate", pd.DataFrame({"n": [1], "mse": [1.0]})), R,
     "lacks the columns"),
    ("figures.plot unknown figure", lambda c: figures.plot("fig9", pd.DataFrame({"d": [1]})), R, "unknown figure"),
    ("figures.make out_dir=file", lambda c: figures.make("fig2", out_dir=c.file, overrides=dict(d=8, seeds=1),
                                                         cache_dir=False, progress=False), R, "out_dir"),
    # --- CLI: hiermodel sweep -------------------------------------------------------------------------------------
    ("cli no command", lambda c: c.cli([]), 2, "COMMAND"),
    ("cli unknown command", lambda c: c.cli(["plot"]), 2, "invalid choice"),
    ("cli unknown option", sweep_with("--colour", "red"), 2, "unrecognized arguments"),
    ("cli --alpha 3:1:0.2", sweep_replacing("--alpha", "3:1:0.2"), 2, "--alpha: range '3:1:0.2' needs"),
    ("cli --alpha a:b", sweep_replacing("--alpha", "a:b"), 2, "--alpha: range 'a:b' must be START:STOP:STEP"),
    ("cli --alpha 2:3", sweep_replacing("--alpha", "2:3"), 2, "START:STOP:STEP"),
    ("cli --alpha 2:3:0", sweep_replacing("--alpha", "2:3:0"), 2, "STEP > 0"),
    ("cli --alpha 2:3:1e-5", sweep_replacing("--alpha", "2:3:1e-5"), 2, "more than 10000 values"),
    ("cli --alpha nan", sweep_replacing("--alpha", "nan"), 2, "alpha must be a finite"),
    ("cli --alpha x", sweep_replacing("--alpha", "x"), 2, "--alpha: 'x' is not a number"),
    ("cli --gamma abc", sweep_replacing("--gamma", "abc"), 2, "--gamma: 'abc' is not a number"),
    ("cli --gamma -1", sweep_replacing("--gamma", "-1"), 2, "gamma must be >= 0"),
    ("cli --d a", sweep_replacing("--d", "a"), 2, "invalid int value"),
    ("cli --d 1", sweep_replacing("--d", "1"), 2, "d must be an integer >= 2"),
    ("cli --d 8 8", sweep_replacing("--d", "8", "8"), 2, "repeated"),
    ("cli --d missing", lambda c: c.cli(["sweep", "--gamma", "0.4", "--alpha", "2", "--out", "x.csv"]), 2,
     "--d"),
    ("cli --alpha and --n", sweep_with("--n", "100"), 2, "not allowed with"),
    ("cli --n 0", lambda c: c.cli(["sweep", "--d", "8", "--gamma", "0.4", "--n", "0", "--out", "x.csv"]), 2,
     "n must be an integer >= 1"),
    ("cli --n 2.5", lambda c: c.cli(["sweep", "--d", "8", "--gamma", "0.4", "--n", "2.5", "--out", "x.csv"]), 2,
     "invalid int value"),
    ("cli --seeds 0", sweep_replacing("--seeds", "0"), 2, "seeds must be an integer >= 1"),
    ("cli --seeds x", sweep_replacing("--seeds", "x"), 2, "invalid int value"),
    ("cli --q 0", sweep_with("--q", "0"), 2, "q must be an integer >= 1"),
    ("cli --g relu", sweep_with("--g", "relu"), 2, "unknown g"),
    ("cli --eps 0", sweep_with("--eps", "0"), 2, "eps must be > 0"),
    ("cli --eps x", sweep_with("--eps", "x"), 2, "invalid float value"),
    ("cli --model exact", sweep_with("--model", "exact"), 2, "unknown model"),
    ("cli --n-test 1", sweep_replacing("--n-test", "1"), 2, "n_test must be"),
    ("cli --readout cubic", sweep_with("--readout", "cubic"), 2, "unknown readout"),
    ("cli --method magic", sweep_with("--method", "magic"), 2, "unknown method"),
    ("cli --base-seed -1", sweep_with("--base-seed", "-1"), 2, "base_seed must be"),
    ("cli --split too few samples", lambda c: c.cli(["sweep", "--d", "8", "--gamma", "0.4", "--n", "3", "--split",
                                                     "--out", "x.csv", "--no-cache"]), 2, "below the"),
    ("cli --out x.parquet", lambda c: c.cli(["sweep", *T, "--out", "x.parquet", "--no-cache"]), 2,
     "must end in .csv or .jsonl"),
    ("cli --out /proc", lambda c: c.cli(["sweep", *T, "--out", "/proc/x.csv", "--no-cache"]), 2, "cannot write --out"),
    ("cli --out directory", lambda c: c.cli(["sweep", *T, "--out", str(c.dir_csv), "--no-cache"]), 2,
     "is a directory"),
    ("cli --out in a file", lambda c: c.cli(["sweep", *T, "--out", str(c.file / "t.csv"), "--no-cache"]), 2,
     "cannot write --out"),
    ("cli --out missing", lambda c: c.cli(["sweep", *T]), 2, "--out"),
    ("cli --metrics accuracy", sweep_with("--metrics", "accuracy"), 2, "unknown metric"),
    ("cli --workers 0", sweep_with("--workers", "0"), 2, "workers must be an integer >= 1"),
    ("cli --workers x", sweep_with("--workers", "x"), 2, "invalid int value"),
    ("cli --scheduler refused", lambda c: c.cli([*SN, "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                                                 "--connect-timeout", "2"]), 2, "cannot reach the Dask scheduler"),
    ("cli --scheduler HTTP", lambda c: c.cli([*SN, "--scheduler", c.http, "--connect-timeout", "2"]), 2,
     "not a Dask scheduler"),
    ("cli --scheduler ''", sweep_with("--scheduler", ""), 2, "scheduler must be an address"),
    ("cli --connect-timeout 0", sweep_with("--connect-timeout", "0"), 2, "connect_timeout must be > 0"),
    ("cli --cache-dir file", lambda c: c.cli([*S, "--cache-dir", str(c.file)]), 2, "not a directory"),
    ("cli --cache-dir /proc", lambda c: c.cli([*S, "--cache-dir", "/proc/hm-cache"]), 2,
     "cannot use the cache directory"),
    ("cli --cache-dir ''", lambda c: c.cli([*S, "--cache-dir", ""]), 2, "cache_dir is empty"),
    ("cli --memory-limit -1", sweep_with("--memory-limit", "-1"), 2, "--memory-limit must be > 0"),
    ("cli --memory-limit 0.0001", sweep_with("--memory-limit", "0.0001"), 2, "more than 105 KiB"),
    ("cli --memory-limit x", sweep_with("--memory-limit", "x"), 2, "invalid float value"),
    ("cli --memory-limit nan", sweep_with("--memory-limit", "nan"), 2, "--memory-limit must be"),
    # --- CLI: hiermodel figure ------------------------------------------------------------------------------------
    ("cli figure fig9", lambda c: c.cli(["figure", "fig9"]), 2, "invalid choice"),
    ("cli figure --scale huge", fig("--scale", "huge"), 2, "invalid choice"),
    ("cli figure --set d1=3", fig("--set", "d1=3"), 2, "unknown grid key"),
    ("cli figure --set colour=red", fig("--set", "colour=red"), 2, "unknown grid key"),
    ("cli figure --set d=a", fig("--set", "d=a"), 2, "--set d=a: d takes integers"),
    ("cli figure --set gamma=abc", fig("--set", "gamma=abc"), 2, "--set gamma=abc: gamma takes numbers"),
    ("cli figure --set alpha=3:1:0.2", fig("--set", "alpha=3:1:0.2"), 2, "--set alpha=3:1:0.2: range"),
    ("cli figure --set alpha=a:b", fig("--set", "alpha=a:b"), 2, "--set alpha=a:b: range 'a:b' must be"),
    ("cli figure --set alpha=a:b:c", fig("--set", "alpha=a:b:c"), 2, "--set alpha=a:b:c: 'a:b:c' is not a number"),
    ("cli figure --set split=maybe", fig("--set", "split=maybe"), 2, "--set split=maybe: split takes true or false"),
    ("cli figure --set orthonormal=2", fig("--set", "orthonormal=2"), 2, "orthonormal takes true or false"),
    ("cli figure --set split=", fig("--set", "split="), 2, "has no value"),
    ("cli figure --set d", fig("--set", "d"), 2, "KEY=VALUE"),
    ("cli figure --set =3", fig("--set", "=3"), 2, "unknown grid key"),
    ("cli figure --set seeds=1,2", fig("--set", "seeds=1,2"), 2, "seeds takes one value"),
    ("cli figure --set seeds=0", fig("--set", "seeds=0"), 2, "seeds must be an integer >= 1"),
    ("cli figure --set model=exact", fig("--set", "model=exact"), 2, "unknown model"),
    ("cli figure --set n=a", fig("--set", "n=a"), 2, "--set n=a: n takes integers"),
    ("cli figure --set eps=0", fig("--set", "eps=0"), 2, "eps must be > 0"),
    ("cli figure rate --set d1=x", fig("--set", "d1=x", name="rate"), 2, "--set d1=x: d1 takes integers"),
    ("cli figure --out-dir file", lambda c: c.cli([*F, "--set", "d=8", "--set", "seeds=1", "--out-dir",
                                                   str(c.file)]), 2, "cannot write --out-dir"),
    ("cli figure --out-dir /proc", lambda c: c.cli([*F, "--set", "d=8", "--set", "seeds=1", "--out-dir",
                                                    "/proc/hm-figs"]), 2, "cannot write --out-dir"),
    ("cli figure --workers 0", fig("--workers", "0"), 2, "workers must be an integer >= 1"),
    ("cli figure --memory-limit -1", fig("--memory-limit", "-1"), 2, "--memory-limit must be > 0"),
    ("cli figure --cache-dir file", lambda c: c.cli(["figure", "fig2", "--no-progress", "--out-dir", str(c.tmp),
                                                     "--cache-dir", str(c.file)]), 2, "not a directory"),
    ("cli figure --connect-timeout x", fig("--connect-timeout", "x"), 2, "invalid float value"),
]


def G():
    return sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], n_test=100)


def run_on_empty_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None, silence_logs=50) as cl:
        return sweep.run(G(), cache_dir=False, scheduler=cl.scheduler_address, connect_timeout=2, progress=False)


class _Silent(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Hang(Exception):
    pass


def classify(case, ctx):
    """``(outcome, detail)``: outcome is "clear", "unclear", "silent" or "hang"."""
    _, call, expected, fragment = case

    def alarm(*_):
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        try:
            out = call(ctx)
        finally:
            signal.alarm(0)
    except Hang:
        return "hang", f"no answer within {HANG_S} s"
    except BaseException as err:  # noqa: BLE001 - classification
        if isinstance(err, (KeyboardInterrupt,)):
            raise
        if expected != 2 and isinstance(err, expected) and fragment in str(err):
            return "clear", ""
        return "unclear", f"{type(err).__name__}: {str(err)[:300]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if expected == 2:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        if out.code == 0:
            return "silent", "exit 0"
        ok = out.code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in out.stderr
        return ("clear", "") if ok else ("unclear", f"exit {out.code}: {out.stderr.strip()[-300:]}")
    return "silent", f"returned {type(out).__name__}"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    with http_server() as addr:
        yield Ctx(tmp_path_factory.mktemp("bad"), addr)


def test_table_is_large():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)
    cli_options = {max(a.option_strings, key=len) for p in _subparsers() for a in p._actions if a.option_strings}
    named = {w for c in CASES for w in c[0].split() if w.startswith("--")}
    missing = cli_options - named - {"--help", "--list", "--no-cache", "--no-progress", "--theory", "--recompute"}
    assert not missing, f"CLI options without a bad-input row: {sorted(missing)}"


def _subparsers():
    import argparse

    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices.values())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, ctx, monkeypatch):
    monkeypatch.chdir(ctx.tmp)
    before = set(os.listdir(ctx.tmp))
    outcome, detail = classify(case, ctx)
    assert outcome == "clear", detail
    if case[2] == 2:  # the CLI wrote nothing (no table, no stray cache in the working directory)
        assert set(os.listdir(ctx.tmp)) <= before | {"figs"}, sorted(set(os.listdir(ctx.tmp)) - before)


if __name__ == "__main__":
    import collections
    import warnings

    import resource

    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_AS, (12 * 2**30, resource.RLIM_INFINITY))  # MemoryError, not the OOM killer
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp, http_server() as addr:
        os.chdir(tmp)
        context = Ctx(tmp, addr)
        for case in CASES:
            outcome, detail = classify(case, context)
            counts[outcome] += 1
            if outcome != "clear" or "-v" in sys.argv:
                print(f"{outcome:8s} {case[0]}: {detail}".replace("\n", " | ")[:400], flush=True)
    print(dict(counts), "total", sum(counts.values()))
