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

__all__ = ["mean_sem", "half_way", "crossing", "loglog_fit", "LogLogFit", "loglog_slope", "bootstrap_slope",
           "SlopeFit", "Estimate", "transition_width", "bootstrap_width", "bootstrap_half_way_lag", "Crossings",
           "bootstrap_crossings", "mean_log_ratio", "values_at", "long_form", "cos2_long", "first_layer_error",
           "FAMILIES", "LevelSizes", "level_sample_sizes"]

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


def _seed_curves(df, x, columns, by):
    """``(xs, [Y per column])``: each column as a (seeds, points) array, one row per ``by`` value, one column per
    ``x`` value (sorted); a ValueError unless ``df`` holds exactly one value per ``(by, x)`` for each column."""
    missing = [c for c in (x, *columns, by) if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}")
    if df.duplicated([by, x]).any():
        raise ValueError(f"df has several rows per ({by}, {x}): filter it to one curve first")
    curves = []
    for col in columns:
        piv = df.pivot(index=by, columns=x, values=col)
        if piv.isna().to_numpy().any():
            raise ValueError(f"every {by} must have a value of {col!r} at every {x}")
        curves.append(piv.to_numpy(dtype=float))
    return piv.columns.to_numpy(dtype=float), curves


def _boot_estimate(value, boots, level) -> tuple:
    """``(value, low, high, se)`` from bootstrap replicates: percentile interval and their standard deviation."""
    boots = np.asarray(boots, dtype=float)
    ok = boots[np.isfinite(boots)]
    if not np.isfinite(value) or ok.size < max(2, int(0.9 * boots.size)):
        raise ValueError("the statistic is undefined on the data or on more than 10% of the resamples")
    tail = 100 * (1 - level) / 2
    return (float(value), float(np.percentile(ok, tail)), float(np.percentile(ok, 100 - tail)),
                    float(np.std(ok, ddof=1)))


def _check_bootstrap(n_boot, level) -> int:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return check_int("n_boot", n_boot, minimum=2)


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
    n_boot = _check_bootstrap(n_boot, level)
    xs, (Y,) = _seed_curves(df, x, [y], by)
    if Y.shape[1] < 2 or np.any(xs <= 0) or np.any(Y <= 0):
        raise ValueError(f"need >= 2 values of {x!r} and positive {x!r}, {y!r}")
    lx = np.log(xs)
    xc = lx - lx.mean()

    def slopes(samples):  # (..., seeds, points) -> (...)
        ly = np.log(samples.mean(axis=-2))
        return ((ly - ly.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc @ xc)

    boots = slopes(Y[as_generator(rng).integers(0, Y.shape[0], size=(n_boot, Y.shape[0]))])
    return SlopeFit(*_boot_estimate(slopes(Y), boots, level))


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


# --- transition widths with bootstrap intervals (chapter 4: the paper's Fig. 3) ---------------------------------
class Estimate(typing.NamedTuple):
    """A measured value with its percentile bootstrap interval and bootstrap standard error."""

    value: float
    low: float
    high: float
    se: float


def transition_width(x, values, *, lo=0.25, hi=0.75) -> float:
    """Width in ``x`` of a transition: from where a curve first covers the fraction ``lo`` of its way (first to
    last value) to where it first covers ``hi``.

    The same linear interpolation as :func:`half_way` (``transition_width(x, v, lo=0.5, hi=0.5) == 0``); for an
    error falling from 1 to 0 over ``alpha`` the default is the ``alpha``-range of the middle half of the drop.

    Parameters
    ----------
    x : array_like
        Strictly increasing grid.
    values : array_like
        The curve (finite, different first and last values).
    lo, hi : float
        Fractions of the way, ``0 < lo <= hi < 1``.
    """
    x, values = _curve(x, values)
    if not 0 < lo <= hi < 1:
        raise ValueError(f"need 0 < lo <= hi < 1, got lo={lo!r}, hi={hi!r}")
    if values[-1] == values[0]:
        raise ValueError("values must have different first and last values")
    sign = np.sign(values[-1] - values[0])

    def reach(frac):
        target = values[0] + frac * (values[-1] - values[0])
        k = int(np.argmax(sign * (values - target) >= 0))
        x0, x1, v0, v1 = x[k - 1], x[k], values[k - 1], values[k]
        return float(x0 + (target - v0) / (v1 - v0) * (x1 - x0))

    return reach(hi) - reach(lo)


def bootstrap_width(df, x, y, *, by="seed", lo=0.25, hi=0.75, n_boot=2000, rng=None, level=0.95) -> Estimate:
    """:func:`transition_width` of the ``by``-mean curve of ``y`` against ``x``, bootstrapped over ``by``.

    Parameters
    ----------
    df : pandas.DataFrame
        One curve: exactly one row per ``(by, x)`` pair, every seed at every ``x``.
    x, y, by : str
        Columns: the grid (e.g. ``"alpha"``), the curve (e.g. the first-layer error) and the replicate.
    lo, hi : float
        As in :func:`transition_width`.
    n_boot, rng, level
        Bootstrap resamples of the seeds, their randomness, and the interval's coverage.

    Returns
    -------
    Estimate
        ``(value, low, high, se)``: the width of the mean curve, the percentile interval and the standard
        deviation of the bootstrap widths.
    """
    n_boot = _check_bootstrap(n_boot, level)
    xs, (Y,) = _seed_curves(df, x, [y], by)
    gen = as_generator(rng)
    boots = np.array([transition_width(xs, Y[idx].mean(axis=0), lo=lo, hi=hi)
                      for idx in gen.integers(0, Y.shape[0], size=(n_boot, Y.shape[0]))])
    return Estimate(*_boot_estimate(transition_width(xs, Y.mean(axis=0), lo=lo, hi=hi), boots, level))



# --- the lag between two half-way points, bootstrapped over seeds (chapter 5: the paper's Fig. 5) --------------
def bootstrap_half_way_lag(df, x, first, second, *, by="seed", n_boot=2000, rng=None, level=0.95) -> Estimate:
    """``half_way(second) - half_way(first)`` of the ``by``-mean curves of two columns, bootstrapped over ``by``.

    Both curves are resampled with the same seeds (a paired bootstrap), so the interval is that of the lag
    itself, e.g. how far (in ``alpha``) the test error's half drop comes after the overlap's half rise.

    Parameters
    ----------
    df : pandas.DataFrame
        One pair of curves: exactly one row per ``(by, x)`` pair, every seed at every ``x``.
    x, first, second, by : str
        Columns: the grid (e.g. ``"alpha"``), the two curves (e.g. ``"q_h"`` and ``"mse"``) and the replicate.
    n_boot, rng, level
        Bootstrap resamples of the seeds, their randomness, and the interval's coverage.

    Returns
    -------
    Estimate
        ``(value, low, high, se)``: the lag of the mean curves, the percentile interval and the standard
        deviation of the bootstrap lags.
    """
    n_boot = _check_bootstrap(n_boot, level)
    xs, curves = _seed_curves(df, x, [first, second], by)

    def lag(idx):
        return half_way(xs, curves[1][idx].mean(axis=0)) - half_way(xs, curves[0][idx].mean(axis=0))

    gen = as_generator(rng)
    boots = np.array([lag(idx) for idx in gen.integers(0, curves[0].shape[0], size=(n_boot, curves[0].shape[0]))])
    return Estimate(*_boot_estimate(lag(np.arange(curves[0].shape[0])), boots, level))



# --- crossings of several curves under one bootstrap over draws (chapter 3: C2, C6, C9) --------------------------
class Crossings(typing.NamedTuple):
    """Result of :func:`bootstrap_crossings`: where the seed-mean curve of each group first reaches each level,
    on the data and on every resample of the seeds (one resample shared by all groups)."""

    groups: np.ndarray  # (G,) group values, sorted (e.g. the directions i)
    levels: np.ndarray  # (L,)
    estimate: np.ndarray  # (G, L) crossings of the mean curves (NaN: not resolved, see crossing())
    boots: np.ndarray  # (n_boot, G, L)

    def at(self, level):
        """``(estimate (G,), boots (n_boot, G))``: the crossings at one of the levels."""
        j = np.flatnonzero(np.isclose(self.levels, level))
        if j.size == 0:
            raise ValueError(f"level {level!r} is not one of {self.levels.tolist()}")
        return self.estimate[:, j[0]], self.boots[:, :, j[0]]

    def mean_width(self, low, high, *, level=0.95) -> Estimate:
        """Mean over groups of ``ln(x_high / x_low)``, the width in ``ln x`` of the rise from ``low`` to ``high``,
        with its percentile bootstrap interval and standard error (resamples where a crossing is unresolved are
        left out; more than 10% of them is an error)."""
        (e_lo, b_lo), (e_hi, b_hi) = self.at(low), self.at(high)
        return Estimate(*_boot_estimate(np.mean(np.log(e_hi / e_lo)), np.log(b_hi / b_lo).mean(axis=1), level))

    def slope(self, at_level, *, level=0.95) -> Estimate:
        """Least-squares slope of ``ln(crossing)`` against ``ln(group)`` at one level (positive groups), with its
        percentile bootstrap interval and standard error."""
        est, boots = self.at(at_level)
        lg = np.log(self.groups.astype(float))
        lc = lg - lg.mean()
        fit = lambda c: ((np.log(c) - np.log(c).mean(axis=-1, keepdims=True)) * lc).sum(axis=-1) / (lc @ lc)
        return Estimate(*_boot_estimate(fit(est), fit(boots), level))


def bootstrap_crossings(df, x, y, levels, *, group=None, by="seed", n_boot=2000, rng=None,
                        log=True) -> Crossings:
    """Where the ``by``-mean curve of ``y`` against ``x`` first reaches each level, per ``group``, with a
    bootstrap over ``by`` (the draws) shared by all groups.

    The crossing is :func:`crossing` of the mean curve (interpolated in ``log x`` if ``log``). A resample draws
    the seeds with replacement once and recomputes every group's mean curve from those seeds, so statistics that
    combine groups (:meth:`Crossings.mean_width` over directions, :meth:`Crossings.slope` across directions) keep
    the correlation between the groups.

    Parameters
    ----------
    df : pandas.DataFrame
        Exactly one row per ``(group, by, x)``; every seed at every ``x`` of its group.
    x, y : str
        The abscissa (e.g. ``"n"``, positive if ``log``) and the curve (e.g. ``"cos2"``).
    levels : float or sequence of float
        Levels to reach going up.
    group : str, optional
        Column that separates the curves (e.g. ``"i"``); ``None``: one curve.
    by : str
        The replicate column resampled by the bootstrap.
    n_boot : int
        Bootstrap resamples.
    rng : int, SeedSequence or Generator
        Randomness of the resampling.
    log : bool
        Interpolate in ``log x``.

    Returns
    -------
    Crossings
    """
    missing = [c for c in (x, y, by, group) if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}")
    n_boot = check_int("n_boot", n_boot, minimum=2)
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    keys = [by, x] if group is None else [group, by, x]
    if df.duplicated(keys).any():
        raise ValueError(f"df has several rows per {tuple(keys)}: filter it first")
    parts = [(0, df)] if group is None else list(df.groupby(group, sort=True))
    seeds = np.sort(df[by].unique())
    cubes = []
    for _, part in parts:
        piv = part.pivot(index=by, columns=x, values=y).reindex(seeds)
        if piv.isna().to_numpy().any():
            raise ValueError(f"every {by} must have a value of {y!r} at every {x} of its group")
        cubes.append((piv.columns.to_numpy(dtype=float), piv.to_numpy(dtype=float)))
    draws = as_generator(rng).integers(0, seeds.size, size=(n_boot, seeds.size))

    def at(rows):  # (G, L): crossings of the mean curves over the seed rows
        return np.array([[crossing(xs, Y[rows].mean(axis=0), lev, log=log) for lev in levels] for xs, Y in cubes])

    return Crossings(np.array([g for g, _ in parts]), levels, at(np.arange(seeds.size)),
                     np.stack([at(rows) for rows in draws]))


def mean_log_ratio(crossings: Crossings, at_level, reference, *, level=0.95) -> Estimate:
    """Mean over groups of ``ln(crossing_g / reference_g)`` at one level of :func:`bootstrap_crossings`, with its
    percentile bootstrap interval and standard error (one resample shared by all groups).

    For a delay against a predicted threshold, e.g. the real model's ``cos^2 = 1/2`` crossings over the
    Gaussian-equivalent law's ``2 P_i``. Groups whose crossing is not resolved on the data (the mean curve never
    reaches the level, or starts above it) are left out; a resample in which one of the kept groups is unresolved
    is dropped (more than 10% of them is an error, as in :meth:`Crossings.mean_width`).

    Parameters
    ----------
    crossings : Crossings
        The result of :func:`bootstrap_crossings`.
    at_level : float
        One of ``crossings.levels``.
    reference : array_like (G,)
        Positive reference value per group, in the order of ``crossings.groups``.
    level : float
        Coverage of the interval.

    Returns
    -------
    Estimate
        ``(value, low, high, se)``; a ValueError if no group is resolved.
    """
    if not isinstance(crossings, Crossings):
        raise TypeError(f"crossings must be the result of bootstrap_crossings, got {type(crossings).__name__}")
    est, boots = crossings.at(at_level)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != est.shape or not np.all(np.isfinite(ref)) or np.any(ref <= 0):
        raise ValueError(f"reference must hold {est.size} positive finite values (one per group), got {reference!r}")
    kept = np.isfinite(est)
    if not kept.any():
        raise ValueError(f"no group reaches the level {at_level!r} within its grid")
    logs = np.log(boots[:, kept] / ref[kept])  # NaN where a resample leaves a kept group unresolved
    return Estimate(*_boot_estimate(np.mean(np.log(est[kept] / ref[kept])), logs.mean(axis=1), level))


def values_at(df, x, y, points, *, by="seed", log=True):
    """Each ``by``'s curve of ``y`` against ``x``, interpolated at ``points`` (linearly in ``log x`` if ``log``).

    For a quantity read between grid points, e.g. the recovered count at sample sizes midway between two
    thresholds. Points outside a curve's range are an error (no extrapolation).

    Parameters
    ----------
    df : pandas.DataFrame
        One curve per ``by``: exactly one row per ``(by, x)``, every ``by`` at every ``x``.
    x, y, by : str
        Columns: the abscissa (positive if ``log``), the curve and the replicate.
    points : array_like
        Where to read the curves.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by``, one column per point.
    """
    import pandas as pd

    xs, (Y,) = _seed_curves(df, x, [y], by)
    pts = np.atleast_1d(np.asarray(points, dtype=float))
    if log and (np.any(xs <= 0) or np.any(pts <= 0)):
        raise ValueError("log=True needs positive x and points")
    if pts.min() < xs.min() or pts.max() > xs.max():
        raise ValueError(f"points must lie within [{xs.min():g}, {xs.max():g}]")
    fx, fp = (np.log(xs), np.log(pts)) if log else (xs, pts)
    index = pd.Index(np.sort(df[by].unique()), name=by)  # the pivot's row order
    return pd.DataFrame([np.interp(fp, fx, row) for row in Y], index=index, columns=pts)


# --- the sample size a decreasing curve needs to reach a level, against a predicted curve (chapter 4, d = 120) ------
class LevelSizes(typing.NamedTuple):
    """Result of :func:`level_sample_sizes`.

    ``table``: one row per ``(group, level)`` with the measured crossing ``n``, the predicted one ``n_ref``,
    ``ratio = n / n_ref``, ``log_ratio`` and its bootstrap ``log_ratio_se``, ``low`` and ``high`` (percentile
    interval of the ratio); NaN where the mean curve (or the prediction) does not reach the level on its grid.
    ``boots``: ``{(group, level): log-ratio on each resample}`` (NaN where a resample does not reach it).
    """

    table: "object"
    boots: dict

    def trend(self, at_level, *, level=0.95) -> Estimate:
        """Least-squares slope of ``log_ratio`` against ``ln(group)`` over the groups that reach ``at_level``
        (at least two), with its percentile bootstrap interval and standard error. The groups were resampled
        independently; resample ``b`` of the slope combines resample ``b`` of each group, and resamples in which
        a group does not reach the level are dropped (more than 10% of them is an error)."""
        rows = self.table[np.isclose(self.table["level"], at_level) & np.isfinite(self.table["log_ratio"])]
        if len(rows) < 2:
            raise ValueError(f"fewer than two groups reach the level {at_level!r}")
        lg = np.log(rows["group"].to_numpy(dtype=float))
        lc = lg - lg.mean()
        ys = rows["log_ratio"].to_numpy(dtype=float)
        boots = np.stack([self.boots[g, lv] for g, lv in zip(rows["group"], rows["level"])], axis=-1)

        def fit(v):
            return ((v - v.mean(axis=-1, keepdims=True)) * lc).sum(axis=-1) / (lc @ lc)

        return Estimate(*_boot_estimate(fit(ys), fit(boots), level))


def level_sample_sizes(df, y, levels, reference, *, x="n", group="d", by="seed", n_boot=2000, rng=None,
                       level=0.95, span=100.0, points_per_decade=500) -> LevelSizes:
    """Where the ``by``-mean curve of a decreasing ``y`` (a test MSE) first falls to each level, per ``group``,
    against where a predicted curve does: the ratio of the two sample sizes, with a bootstrap over ``by``.

    The measured crossing is :func:`crossing` of ``1 - mean y`` at ``1 - L`` (the first grid point at or below
    ``L``, interpolated linearly in ``log x``); the predicted one applies the same rule to
    ``reference(group_value, xs)`` on a grid of ``points_per_decade`` points per decade from ``x_min / span``
    (not below 1 when ``x_min >= 1``: sample sizes) to ``x_max * span`` of that group. Each group's seeds are
    resampled on their own (the groups may come from different sweeps with different seeds).

    Parameters
    ----------
    df : pandas.DataFrame
        Exactly one row per ``(group, by, x)``; within a group every seed at every ``x``.
    y : str
        The decreasing curve (e.g. ``"mse"``).
    levels : float or sequence of float
        Levels to fall to.
    reference : callable
        ``reference(group_value, xs) -> predicted y at the array xs`` (e.g. the B2 sum at that ``d``).
    x, group, by : str
        The abscissa (positive), the column that separates the curves and the replicate column.
    n_boot, rng, level
        Bootstrap resamples, their randomness, the coverage of the interval.
    span, points_per_decade : float, int
        Extent and resolution of the grid on which the prediction is evaluated.

    Returns
    -------
    LevelSizes
    """
    import pandas as pd

    missing = [c for c in (x, y, by, group) if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}")
    if not callable(reference):
        raise TypeError("reference must be a callable reference(group_value, xs) -> predicted curve")
    n_boot = _check_bootstrap(n_boot, level)
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    if not np.all(np.isfinite(levels)):
        raise ValueError("levels must be finite")
    check_int("points_per_decade", points_per_decade, minimum=10)
    if not span > 1:
        raise ValueError(f"span must be > 1, got {span!r}")
    gen = as_generator(rng)
    rows, boots = [], {}
    for g, part in df.groupby(group, sort=True):
        xs, (Y,) = _seed_curves(part, x, [y], by)
        if np.any(xs <= 0):
            raise ValueError(f"{x!r} must be positive")
        lo = xs[0] / span
        lo = max(lo, 1.0) if xs[0] >= 1 else lo
        fine = np.geomspace(lo, xs[-1] * span, int(np.ceil(np.log10(xs[-1] * span / lo) * points_per_decade)) + 1)
        pred = np.asarray(reference(g, fine), dtype=float)
        if pred.shape != fine.shape:
            raise ValueError(f"reference returned shape {pred.shape} for {fine.size} points")
        draws = gen.integers(0, Y.shape[0], size=(n_boot, Y.shape[0]))
        for lv in levels:
            n_ref = crossing(fine, 1.0 - pred, 1.0 - lv, log=True)
            n_hat = crossing(xs, 1.0 - Y.mean(axis=0), 1.0 - lv, log=True)
            rb = np.array([crossing(xs, 1.0 - Y[idx].mean(axis=0), 1.0 - lv, log=True) for idx in draws])
            lr = np.log(rb / n_ref)
            boots[g, float(lv)] = lr
            rec = {"group": g, "level": float(lv), "n": n_hat, "n_ref": n_ref, "ratio": n_hat / n_ref,
                   "log_ratio": np.log(n_hat / n_ref), "log_ratio_se": np.nan, "low": np.nan, "high": np.nan}
            if np.isfinite(rec["log_ratio"]):
                try:
                    _, low, high, se = _boot_estimate(rec["log_ratio"], lr, level)
                    rec.update(log_ratio_se=se, low=float(np.exp(low)), high=float(np.exp(high)))
                except ValueError:  # more than 10% of the resamples do not reach the level: no s.e.
                    pass
            rows.append(rec)
    return LevelSizes(pd.DataFrame(rows), boots)
