"""Training data for the estimator: arrays in memory, or a :class:`SampleStream` regenerated from a seed.

:class:`TrainingData` gives the estimator's kernels one way to read either (row blocks in a chosen precision);
:func:`training_data` validates user input into it, and :func:`scaled_labels` is the one label preprocessing
(``y / std``, centred first when ``center=True``; ``scale=False`` for raw labels).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import as_generator, check_bool, check_int, check_model, real_array
from .hermite import feature_dimension, hermite_features, quadratic_projection, vector_to_matrix

__all__ = ["SampleStream", "TrainingData", "training_data", "scaled_labels"]


class SampleStream:
    """``n`` samples of a :class:`hiermodel.HierarchicalTarget`, regenerated from ``rng`` in chunks on every pass.

    Inputs are drawn as consecutive ``standard_normal((rows, width))`` calls on one Generator, which equal one large
    call, so the data do not depend on ``chunk_size`` (labels to floating-point rounding). Nothing of size
    ``n x d`` is stored; only the labels (``n`` floats) are kept after the first pass.

    Parameters
    ----------
    target : HierarchicalTarget
    n : int
        Number of samples.
    rng : int or numpy SeedSequence
        Must be replayable (a Generator is not: it cannot be rewound for a second pass).
    chunk_size : int
        Rows drawn per call.
    model : {"hermite", "gaussian-equivalent"}
        ``"hermite"``: inputs ``x ~ N(0, I_d)`` (the estimator lifts them). ``"gaussian-equivalent"``: features
        ``F ~ N(0, I_D)`` drawn directly, as :meth:`HierarchicalTarget.sample` with that model (``n x D`` normals
        per pass: use at moderate ``D``).
    """

    def __init__(self, target, n, rng, *, chunk_size=65536, model="hermite"):
        from .target import HierarchicalTarget

        if not isinstance(target, HierarchicalTarget):
            raise TypeError(f"target must be a HierarchicalTarget, got {type(target).__name__}")
        if isinstance(rng, np.random.Generator) or rng is None:
            raise ValueError("SampleStream needs a replayable rng: a non-negative int or a numpy SeedSequence")
        as_generator(rng)  # validates
        self.target = target
        self.n = check_int("n", n, minimum=1)
        self.rng = rng
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.model = check_model(model)
        self.features = self.model == "gaussian-equivalent"  # the stream yields feature vectors F, not inputs x
        self.q, self.d, self.D = target.q, target.d, target.D
        self._mats = vector_to_matrix(target.directions, target.d) if target.q == 2 else None
        self._y = None

    def __repr__(self):
        return (f"SampleStream({self.target!r}, n={self.n}, rng={self.rng!r}, chunk_size={self.chunk_size}, "
                f"model={self.model!r})")

    def _labels_of(self, Z):
        t = self.target
        if self.features:
            return t.apply_link(t.second_layer(Z @ t.directions.T))
        if self._mats is not None:  # h_i = (x^T A_i x - tr A_i)/sqrt2 without the lift: t(X) to rounding
            return t.apply_link(t.second_layer(quadratic_projection(Z, self._mats)))
        return t(Z)

    def blocks(self, stop=None):
        """Yield ``(start, Z, y)`` for consecutive row blocks of the first ``stop`` samples (``Z`` = X or F)."""
        stop = self.n if stop is None else min(int(stop), self.n)
        rng = np.random.default_rng(self.rng) if isinstance(self.rng, numbers.Integral) else as_generator(self.rng)
        width = self.D if self.features else self.d
        y = self._y
        fresh = [] if y is None else None
        for start in range(0, stop, self.chunk_size):
            rows = min(self.chunk_size, stop - start)
            Z = rng.standard_normal((rows, width))
            if fresh is not None:
                yc = self._labels_of(Z)
                fresh.append(yc)
            else:
                yc = y[start:start + rows]
            yield start, Z, yc
        if fresh is not None and stop == self.n:
            self._y = np.concatenate(fresh)

    def labels(self) -> np.ndarray:
        """All ``n`` labels (one pass over the data the first time)."""
        if self._y is None:
            for _ in self.blocks():
                pass
        return self._y

    def arrays(self):
        """Materialise ``(Z, y)`` (X, or F in the Gaussian-equivalent model) — for small ``n`` and for tests."""
        Zs = [Z for _, Z, _ in self.blocks()]
        return np.concatenate(Zs), self.labels()


class TrainingData:
    """Uniform access to training data: raw inputs ``x`` (lifted on the fly) or feature vectors ``F``.

    Attributes: ``features`` (bool), ``q``, ``n``, ``d`` (None for features), ``D``, ``y`` (float64 labels).
    """

    def __init__(self, Z=None, y=None, *, features, q, stream=None):
        self.features = bool(features)
        self.q = q
        self.stream = stream
        if stream is not None:
            self.n, self.d, self.D = stream.n, stream.d, stream.D
            self.y = np.asarray(stream.labels(), dtype=float)
            self.Z = None
        else:
            self.Z, self.y, self.n = Z, y, Z.shape[0]
            if self.features:
                self.d, self.D = None, Z.shape[1]
            else:
                self.d, self.D = Z.shape[1], feature_dimension(Z.shape[1], q)
        if not np.all(np.isfinite(self.y)):
            raise ValueError("y contains NaN or infinite values")

    def blocks(self, start, stop, rows, dtype, cuts=()):
        """Yield ``(offset, Z_block)`` covering rows ``[start, stop)`` in one pass, as ``dtype``.

        Blocks have at most ``rows`` rows and never cross a cut (``cuts``: row indices, e.g. the checkpoints of a
        path) or, for a stream, one of its chunk boundaries; the block grid restarts at each of these points, so
        the blocks (and the sums over them) are the same as those of separate calls between the cuts.
        """
        if stop <= start:
            return
        restarts = {start, *(c for c in cuts if start < c < stop)}
        if self.stream is not None:
            size = self.stream.chunk_size
            restarts |= set(range((start // size + 1) * size, stop, size))
        edges = sorted(restarts) + [stop]
        grid = [(s, min(s + rows, hi)) for lo, hi in zip(edges[:-1], edges[1:]) for s in range(lo, hi, rows)]
        if self.stream is None:
            for a, b in grid:
                yield a, np.asarray(self.Z[a:b], dtype=dtype)
            return
        # One pass over the stream: regenerating it from row 0 for every cut would cost a pass per checkpoint.
        blocks = iter(grid)
        a, b = next(blocks)
        for s0, Z, _ in self.stream.blocks(stop):
            e0 = s0 + Z.shape[0]
            while a < e0:  # grid blocks lie inside one chunk (chunk starts are restarts)
                yield a, np.asarray(Z[a - s0:b - s0], dtype=dtype)
                nxt = next(blocks, None)
                if nxt is None:
                    return
                a, b = nxt

    def lift(self, Zb):
        """The features of a block (the identity for feature data)."""
        return Zb if self.features else hermite_features(Zb, self.q, dtype=Zb.dtype)


def training_data(Z, y, q, *, features=False, d1=None) -> TrainingData:
    """Validate ``(Z, y)`` — arrays, or a :class:`SampleStream` with ``y=None`` — into :class:`TrainingData`.

    ``features=True``: array ``Z`` holds feature vectors ``F`` (n, D); otherwise raw inputs ``X`` (n, d). A stream
    knows which it yields; ``features=None`` accepts either.
    """
    if isinstance(Z, SampleStream):
        if y is not None:
            raise ValueError("pass y=None with a SampleStream (it makes its own labels)")
        if features is not None and bool(features) != Z.features:
            raise ValueError(f"this SampleStream yields {'features' if Z.features else 'inputs'} (model={Z.model!r}); "
                             f"use {'fit_features' if Z.features else 'fit'} for it, or fit_path")
        if Z.q != q:
            raise ValueError(f"stream has q = {Z.q}, estimator q = {q}")
        data = TrainingData(features=Z.features, q=q, stream=Z)
    else:
        if features is not None:
            features = check_bool("features", features)
        name, width = ("F", "D") if features else ("X", "d")
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[0] < 1 or Z.shape[1] < 1:
            raise ValueError(f"{name} must be a 2-D array (n, {width}), got shape {Z.shape}")
        if not np.issubdtype(Z.dtype, np.floating) and not np.issubdtype(Z.dtype, np.integer):
            raise ValueError(f"{name} must hold real numbers, got dtype {Z.dtype}")
        if not np.all(np.isfinite(Z)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if y is None:
            raise ValueError("y is required with array inputs")
        y = real_array("y", y).astype(float, copy=False)
        if y.ndim != 1 or y.shape[0] != Z.shape[0]:
            raise ValueError(f"y must have shape ({Z.shape[0]},) to match {name}, got {y.shape}")
        data = TrainingData(Z, y, features=bool(features), q=q)
    if d1 is not None and d1 > data.D:
        raise ValueError(f"d1 = {d1} exceeds the feature dimension D = {data.D}")
    return data


def scaled_labels(y, *, center=True, scale=True):
    """Labels as the estimator uses them: ``((y - mean) / std, mean, std)``.

    ``center=False`` skips the subtraction (``mean`` is then reported as 0); ``scale=False`` the division (``std``
    reported as 1), so ``center=scale=False`` returns the raw labels. A ValueError for constant labels when scaling.
    """
    with np.errstate(over="ignore", under="ignore"):
        mean, std = float(np.mean(y)), float(np.std(y))
    if scale and not (std > 0 and np.isfinite(std) and np.isfinite(mean)):
        top = float(np.max(np.abs(y))) if np.size(y) else 0.0
        if np.size(y) and float(np.ptp(y)) > 0:
            raise ValueError(f"the variance of y is not representable in float64 (|y| up to {top:.3g}, std computed as "
                             f"{std}): rescale y, e.g. y / {top:.3g}")
        raise ValueError("y is constant: labels cannot be standardised")
    w = y - mean if center else y
    return (w / std if scale else w), (mean if center else 0.0), (std if scale else 1.0)
