"""Analysis of sweep tables: means over seeds, where curves cross a level, power-law fits, reshaping.

One implementation of each helper the chapters and :mod:`hiermodel.figures` use, so that the function that is
plotted is the function that is tested. Every random function takes ``rng`` (an int seed, a SeedSequence or a
Generator).
"""

from __future__ import annotations

import dataclasses
import re
import typing

import numpy as np

from ._checks import as_generator, check_int

__all__ = ["mean_sem", "half_way", "crossing", "loglog_fit", "LogLogFit", "loglog_slope", "bootstrap_slope", "SlopeFit", "long_form",
           "cos2_long", "first_layer_error", "FAMILIES"]

FAMILIES = ("cos2", "overlap", "angle_cos2", "eig")
"""Column families ``<prefix>_<i>`` that a sweep writes (``i = 1..K``)."""

_FAMILY_COLUMN = re.compile(r"^(%s)_(\d+)$" % "|".join(FAMILIES))


def _curve(x, values, *, min_points=2):
    x, values = np.asarray(x, dtype=float), np.asarray(values, dtype=float)
    if x.ndim != 1 or x.shape != values.shape or len(x) < min_points:
        raise ValueError(f"x and values must be 1-D arrays of the same length >= {min_points}, got shapes "
                         f"{x.shape} and {values.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(values))):
        raise ValueError("x and values must be finite")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")
    return x, values


def mean_sem(df, by, col):
    """Mean, standard deviation, count and standard error of ``col`` over the rows of each ``by`` group.

    Parameters
    ----------
    df : pandas.DataFrame
        A sweep table (or any table); the rows of one group are typically the seeds.
    by : str or list of str
        Grouping column(s), e.g. ``"alpha"`` or ``["d", "alpha"]``.
    col : str
        The column to summarise.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by``, columns ``mean``, ``std`` (``ddof = 1``), ``count`` and ``sem = std / sqrt(count)``;
        a group of one row has ``sem = 0``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, col] if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}")
    out = df.groupby(by)[col].agg(["mean", "std", "count"])
    out["sem"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out


def half_way(x, values) -> float:
    """The ``x`` at which a curve first covers half the way from its first to its last value.

    Linear interpolation between grid points: where an overlap has made half its rise, or an error half its drop.

    Parameters
    ----------
    x : array_like
        Strictly increasing grid (e.g. ``alpha``).
    values : array_like
        The curve on the grid; finite, with different first and last values.

    Returns
    -------
    float
    """
    x, values = _curve(x, values)
    if values[-1] == values[0]:
        raise ValueError("values must have different first and last values")
    target = 0.5 * (values[0] + values[-1])
    k = int(np.argmax(np.sign(values[-1] - values[0]) * (values - target) >= 0))
    x0, x1, v0, v1 = x[k - 1], x[k], values[k - 1], values[k]
    return float(x0 + (target - v0) / (v1 - v0) * (x1 - x0))


def crossing(x, values, level, *, log=False) -> float:
    """The first ``x`` at which a curve reaches ``level`` going up (``value >= level``).

    Linear interpolation between the last grid point below ``level`` and the first at or above it; with
    ``log=True`` the interpolation is linear in ``log x`` (for sample sizes ``n``; on ``alpha = log n / log d``
    the plain form gives the same point).

    Parameters
    ----------
    x : array_like
        Strictly increasing, positive if ``log``.
    values : array_like
        The curve on the grid (finite).
    level : float
        The level to reach.
    log : bool
        Interpolate in ``log x``.

    Returns
    -------
    float
        The crossing point; NaN if the curve never reaches ``level``, or already starts at or above it (then the
        crossing lies before the grid and is not resolved).

    Notes
    -----
    The chapters had three variants: ``>`` (chapter 3), ``>= 0.5`` (chapter 5) and :func:`half_way`. This is the
    ``>=`` one; it differs from ``>`` only when a grid value equals ``level`` exactly.
    """
    x, values = _curve(x, values)
    if not np.isfinite(level):
        raise ValueError(f"level must be finite, got {level!r}")
    if log:
        if np.any(x <= 0):
            raise ValueError("log=True needs positive x")
        x = np.log(x)
    above = np.nonzero(values >= level)[0]
    if above.size == 0 or above[0] == 0:
        return float("nan")
    j = int(above[0])
    t = x[j - 1] + (level - values[j - 1]) * (x[j] - x[j - 1]) / (values[j] - values[j - 1])
    return float(np.exp(t) if log else t)


@dataclasses.dataclass(frozen=True)
class LogLogFit:
    """Result of :func:`loglog_fit`: ``y_log ~ intercept + X_logs @ slopes``."""

    intercept: float
    slopes: np.ndarray  # (p,)
    intercept_se: float
    se: np.ndarray  # (p,) standard errors of the slopes
    cov: np.ndarray  # (p + 1, p + 1) covariance of (intercept, slopes)
    residual_sd: float  # sigma = sqrt(RSS / (N - p - 1))

    def combination_se(self, weights) -> float:
        """Standard error of ``weights @ slopes`` (e.g. ``[1, 1]`` for ``b + c``), with the slopes' covariance."""
        w = np.asarray(weights, dtype=float).ravel()
        if w.size != self.slopes.size:
            raise ValueError(f"weights must have {self.slopes.size} entries, got {w.size}")
        return float(np.sqrt(w @ self.cov[1:, 1:] @ w))

    def predict(self, X_logs) -> np.ndarray:
        """``intercept + X_logs @ slopes`` (log scale) for ``X_logs`` of shape ``(m, p)`` or ``(m,)`` if ``p = 1``."""
        X = np.asarray(X_logs, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        return self.intercept + X @ self.slopes


def loglog_fit(X_logs, y_log) -> LogLogFit:
    """Ordinary least squares ``y_log = a + X_logs @ b`` with standard errors.

    Parameters
    ----------
    X_logs : array (N, p), or (N,) for one regressor
        Logs of the predictors (e.g. ``np.column_stack([np.log(n), np.log(D)])``).
    y_log : array (N,)
        Log of the measured quantity.

    Needs ``N > p + 1`` points (a residual degree of freedom) and predictors that are not collinear with each
    other or the intercept; otherwise a ValueError.
    """
    X = np.asarray(X_logs, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y_log, dtype=float)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.size:
        raise ValueError(f"X_logs must be (N, p) and y_log (N,), got {X.shape} and {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X_logs or y_log contains NaN or infinite values (logs of non-positive numbers?)")
    N, p = X.shape
    if N <= p + 1:
        raise ValueError(f"{N} points cannot fit {p + 1} coefficients with a residual degree of freedom")
    design = np.column_stack([np.ones(N), X])
    if np.linalg.matrix_rank(design) < p + 1:
        raise ValueError("the predictors are collinear (with each other or with the intercept)")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    sigma2 = float(np.sum(resid**2)) / (N - p - 1)
    cov = sigma2 * np.linalg.inv(design.T @ design)
    se = np.sqrt(np.diag(cov))
    return LogLogFit(float(coef[0]), coef[1:], float(se[0]), se[1:], cov, float(np.sqrt(sigma2)))


def loglog_slope(x, y) -> tuple:
    """Least-squares slope of ``log y`` against ``log x``, and its standard error.

    Parameters
    ----------
    x, y : array_like
        Positive values of the same length ``>= 2``; ``x`` need not be sorted but must not be all equal.

    Returns
    -------
    (slope, se) : tuple of float
        ``se`` is the usual OLS standard error of the slope (residual variance with ``len - 2`` degrees of
        freedom); NaN for two points.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"x and y must be 1-D arrays of the same length >= 2, got shapes {x.shape} and {y.shape}")
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be positive and finite (their logarithms are fitted)")
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError("x must not be all equal")
    if len(x) == 2:  # a line through two points: no residual degree of freedom for an error
        return float((ly[1] - ly[0]) / (lx[1] - lx[0])), float("nan")
    fit = loglog_fit(lx, ly)
    return float(fit.slopes[0]), float(fit.se[0])


class SlopeFit(typing.NamedTuple):
    """A log-log slope with its percentile bootstrap interval and bootstrap standard error."""

    slope: float
    low: float
    high: float
    se: float


def bootstrap_slope(df, x, y, *, by="seed", n_boot=4000, rng=None, level=0.95) -> SlopeFit:
    """Log-log slope of the ``by``-mean of ``y`` against ``x``, with a percentile bootstrap interval over ``by``.

    The curve is ``x -> mean over seeds of y``; its slope is the least-squares slope of ``log(mean y)`` on
    ``log x``. The seeds are resampled with replacement ``n_boot`` times and the slope refitted on each resample.

    Parameters
    ----------
    df : pandas.DataFrame
        One curve: exactly one row per ``(by, x)`` pair, every seed at every ``x`` (filter the table first).
    x, y : str
        Columns: the abscissa (e.g. ``"n"`` or ``"D"``, positive) and the positive quantity (e.g. ``"mse"``).
    by : str
        The replicate column resampled by the bootstrap.
    n_boot : int
        Bootstrap resamples.
    rng : int, SeedSequence or Generator
        Randomness of the resampling.
    level : float
        Coverage of the interval (``0.95``: the 2.5 and 97.5 percentiles).

    Returns
    -------
    SlopeFit
        ``(slope, low, high, se)``: the fitted slope, the interval, and the standard deviation of the bootstrap
        slopes.
    """
    for c in (x, y, by):
        if c not in df.columns:
            raise ValueError(f"df has no column {c!r}")
    n_boot = check_int("n_boot", n_boot, minimum=2)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if df.duplicated([by, x]).any():
        raise ValueError(f"df has several rows per ({by}, {x}): filter it to one curve first")
    piv = df.pivot(index=by, columns=x, values=y)
    if piv.isna().to_numpy().any():
        raise ValueError(f"every {by} must have a value of {y!r} at every {x}")
    Y = piv.to_numpy(dtype=float)
    xs = piv.columns.to_numpy(dtype=float)
    if Y.shape[1] < 2 or np.any(xs <= 0) or np.any(Y <= 0):
        raise ValueError(f"need >= 2 values of {x!r} and positive {x!r}, {y!r}")
    lx = np.log(xs)
    xc = lx - lx.mean()

    def slopes(samples):  # (..., seeds, points) -> (...)
        ly = np.log(samples.mean(axis=-2))
        return ((ly - ly.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc @ xc)

    gen = as_generator(rng)
    boots = slopes(Y[gen.integers(0, Y.shape[0], size=(n_boot, Y.shape[0]))])
    tail = 100 * (1 - level) / 2
    return SlopeFit(float(slopes(Y)), float(np.percentile(boots, tail)), float(np.percentile(boots, 100 - tail)),
                    float(np.std(boots, ddof=1)))


def long_form(df, prefix):
    """Reshape a column family ``<prefix>_<i>`` into rows: one per (row, ``i``), columns ``i`` and ``prefix``.

    Parameters
    ----------
    df : pandas.DataFrame
        A sweep table.
    prefix : str
        One of :data:`FAMILIES` (``"cos2"``, ``"overlap"``, ``"angle_cos2"``, ``"eig"``), with or without the
        trailing underscore.

    Returns
    -------
    pandas.DataFrame
        The identifying columns of ``df`` (all but the families' columns), ``i`` (int, from 1) and ``prefix``;
        entries beyond a row's ``d1`` (NaN) are dropped.
    """
    prefix = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("_") else prefix
    if prefix not in FAMILIES:
        raise ValueError(f"unknown column family {prefix!r}: use one of {FAMILIES}")
    cols = [c for c in df.columns if (m := _FAMILY_COLUMN.match(str(c))) and m.group(1) == prefix]
    if not cols:
        raise ValueError(f"df has no {prefix}_<i> columns (run the sweep with that metric)")
    ids = [c for c in df.columns if not _FAMILY_COLUMN.match(str(c))]
    long = df[ids + cols].melt(id_vars=ids, value_vars=cols, var_name="i", value_name=prefix)
    long["i"] = long["i"].str.slice(len(prefix) + 1).astype(int)
    return long.dropna(subset=[prefix]).reset_index(drop=True)


def cos2_long(df):
    """``long_form(df, "cos2")``: one row per (row, direction ``i``), columns ``i`` and ``cos2``."""
    return long_form(df, "cos2")


def first_layer_error(df):
    """``sum_i lambda_i^2 (1 - cos^4 theta_i)`` per row: the error left with an ideal second layer.

    ``lambda_i`` are the weight magnitudes at the row's ``(d, gamma, eps)`` and ``cos^2 theta_i`` the row's
    ``cos2_<i>`` columns (the diagonal approximation of chapter 4). Returns a float array of ``len(df)``.
    """
    from . import theory

    missing = {"d", "gamma", "eps"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks the columns {sorted(missing)}")
    out = np.zeros(len(df))
    for (d, gamma, eps), idx in df.groupby(["d", "gamma", "eps"]).groups.items():
        d1 = theory.first_layer_width(int(d), float(eps))
        cols = [f"cos2_{i + 1}" for i in range(d1)]
        if any(c not in df.columns for c in cols):
            raise ValueError(f"df lacks cos2_1..cos2_{d1} (run the sweep with the 'cos2' metric)")
        lam2 = theory.weight_magnitudes(d1, float(gamma)) ** 2
        c2 = df.loc[idx, cols].to_numpy(dtype=float)
        out[df.index.get_indexer(idx)] = (lam2 * (1.0 - c2**2)).sum(axis=1)
    return out
