"""Table analysis: every helper against hand-computed cases, and its input validation."""

import math

import numpy as np
import pandas as pd
import pytest

from hiermodel import theory
from hiermodel.tables import (bootstrap_slope, cos2_long, crossing, first_layer_error, half_way, long_form, loglog_fit,
                              loglog_slope, mean_sem)


def test_mean_sem_and_half_way():
    df = pd.DataFrame({"alpha": [2.0, 2.0, 2.5, 2.5, 3.0], "q_h": [0.1, 0.3, 0.4, 0.6, 0.9]})
    st = mean_sem(df, "alpha", "q_h")
    assert np.allclose(st["mean"], [0.2, 0.5, 0.9])
    assert np.allclose(st["sem"], [np.std([0.1, 0.3], ddof=1) / np.sqrt(2)] * 2 + [0.0])  # one row: sem 0
    # half of the rise 0.2 -> 0.9 (0.55) is crossed between 2.5 (0.5) and 3.0 (0.9): alpha = 2.5 + 0.05 / 0.4 * 0.5
    assert half_way(st.index, st["mean"]) == pytest.approx(2.5625)
    # a drop: half of 1.0 -> 0.0 is crossed between 1 (1.0) and 2 (0.2): alpha = 1 + 0.5 / 0.8
    assert half_way([1, 2, 3], [1.0, 0.2, 0.0]) == pytest.approx(1.625)
    with pytest.raises(ValueError, match="different first and last"):
        half_way([1, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="same length"):
        half_way([1, 2, 3], [0.0, 1.0])
    with pytest.raises(ValueError, match="no column"):
        mean_sem(df, "beta", "q_h")


def test_crossing():
    x, v = [1.0, 2.0, 3.0, 4.0], [0.1, 0.3, 0.7, 0.9]
    assert crossing(x, v, 0.5) == pytest.approx(2.5)  # 0.3 -> 0.7 between 2 and 3
    assert crossing(x, v, 0.3) == pytest.approx(2.0)  # reached exactly at a grid point (>=)
    assert math.isnan(crossing(x, v, 0.95))  # never reached
    assert math.isnan(crossing(x, v, 0.05))  # already above at the first point: before the grid
    # log interpolation on n: halfway in log between 100 and 10000 is 1000
    assert crossing([100, 10_000], [0.0, 1.0], 0.5, log=True) == pytest.approx(1000.0)
    # the first upward crossing, even when the curve dips again later
    assert crossing([0, 1, 2, 3], [0.0, 1.0, 0.0, 1.0], 0.5) == pytest.approx(0.5)
    # on alpha = log n / log d the plain form equals the log form on n
    d, ns, vals = 20.0, np.array([50.0, 400.0, 3000.0]), [0.1, 0.4, 0.8]
    assert crossing(np.log(ns) / np.log(d), vals, 0.5) == pytest.approx(
        math.log(crossing(ns, vals, 0.5, log=True)) / math.log(d))
    with pytest.raises(ValueError, match="increasing"):
        crossing([2, 1], [0, 1], 0.5)
    with pytest.raises(ValueError, match="finite"):
        crossing([1, 2], [0, np.nan], 0.5)
    with pytest.raises(ValueError, match="positive"):
        crossing([0, 1], [0, 1], 0.5, log=True)


def test_loglog_slope():
    x = np.array([1.0, 10.0, 100.0])
    slope, se = loglog_slope(x, 3.0 * x**-0.5)
    assert slope == pytest.approx(-0.5) and se == pytest.approx(0.0, abs=1e-12)
    # by hand: log y = (0, 1, 1) * ln 10 at log x = (0, 1, 2) * ln 10 -> slope 1/2, residuals (1, -2, 1)/6 ln 10
    slope, se = loglog_slope(x, [1.0, 10.0, 10.0])
    assert slope == pytest.approx(0.5)
    assert se == pytest.approx(math.sqrt((6 / 36) * math.log(10) ** 2 / 1 / (2 * math.log(10) ** 2)))
    assert math.isnan(loglog_slope([1, 2], [1, 2])[1])
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2, 3], [1, 0, 2])
    with pytest.raises(ValueError, match="all equal"):
        loglog_slope([2, 2], [1, 2])


def _seed_table(values, xs):
    return pd.DataFrame([{"seed": s, "n": n, "mse": values[s][j]} for s in range(len(values))
                         for j, n in enumerate(xs)])


def test_bootstrap_slope():
    xs = [100, 1000, 10_000]
    # every seed on the same power law: the slope and every bootstrap slope are exact
    df = _seed_table([[1.0, 0.1, 0.01]] * 3, xs)
    fit = bootstrap_slope(df, "n", "mse", n_boot=200, rng=0)
    assert fit.slope == pytest.approx(-1.0) and fit.low == pytest.approx(-1.0) and fit.high == pytest.approx(-1.0)
    # two seeds: the mean curve is (1, 0.55, 0.1) ... and resamples give the seeds' own slopes -1/2, -1 or the mean's
    df = _seed_table([[1.0, 10 ** -0.5, 0.1], [1.0, 0.1, 0.01]], xs)
    fit = bootstrap_slope(df, "n", "mse", n_boot=2000, rng=1)
    mean_curve = np.array([1.0, (10 ** -0.5 + 0.1) / 2, 0.055])
    assert fit.slope == pytest.approx(loglog_slope(xs, mean_curve)[0])
    assert fit.low == pytest.approx(-1.0) and fit.high == pytest.approx(-0.5) and fit.se > 0
    # reproducible from rng, and equal to chapter 4's helper (piv[idx] with rng.integers(0, S, (reps, S)))
    assert bootstrap_slope(df, "n", "mse", n_boot=500, rng=7) == bootstrap_slope(df, "n", "mse", n_boot=500, rng=7)
    piv = df.pivot(index="seed", columns="n", values="mse").to_numpy()
    idx = np.random.default_rng(7).integers(0, 2, size=(500, 2))
    lx = np.log(xs)
    boots = [np.polyfit(lx, np.log(piv[i].mean(axis=0)), 1)[0] for i in idx]
    fit = bootstrap_slope(df, "n", "mse", n_boot=500, rng=7)
    assert fit.low == pytest.approx(np.percentile(boots, 2.5)) and fit.high == pytest.approx(np.percentile(boots, 97.5))
    with pytest.raises(ValueError, match="one curve"):
        bootstrap_slope(pd.concat([df, df]), "n", "mse")
    with pytest.raises(ValueError, match="every seed"):
        bootstrap_slope(df.iloc[:-1], "n", "mse")
    with pytest.raises(ValueError, match="no column"):
        bootstrap_slope(df, "D", "mse")


def _wide():
    return pd.DataFrame({"d": [8, 10], "d1": [2, 3], "gamma": [0.4, 0.4], "eps": [0.5, 0.5], "n": [100, 100],
                         "cos2_1": [0.9, 0.8], "cos2_2": [0.5, 0.7], "cos2_3": [np.nan, 0.1],
                         "overlap_1": [0.8, 0.7], "overlap_2": [0.4, 0.6], "overlap_3": [np.nan, 0.05],
                         "angle_cos2_1": [0.95, 0.9], "angle_cos2_2": [0.45, 0.6], "angle_cos2_3": [np.nan, 0.1],
                         "eig_1": [3.0, 2.0], "eig_2": [1.0, 1.5], "eig_3": [np.nan, 0.3]})


def test_long_form_and_cos2_long():
    df = _wide()
    for prefix in ("cos2", "overlap", "angle_cos2", "eig", "cos2_"):
        name = prefix.rstrip("_")
        long = long_form(df, prefix)
        assert list(long.columns) == ["d", "d1", "gamma", "eps", "n", "i", name]
        assert len(long) == 5 and set(long.loc[long["d"] == 8, "i"]) == {1, 2}  # NaN beyond d1 dropped
    long = long_form(df, "overlap")
    assert long.set_index(["d", "i"])["overlap"][10, 3] == 0.05
    pd.testing.assert_frame_equal(cos2_long(df), long_form(df, "cos2"))
    with pytest.raises(ValueError, match="unknown column family"):
        long_form(df, "mse")
    with pytest.raises(ValueError, match="no overlap_"):
        long_form(df.drop(columns=["overlap_1", "overlap_2", "overlap_3"]), "overlap")


def test_first_layer_error():
    df = _wide()
    out = first_layer_error(df)
    lam2 = theory.weight_magnitudes(2, 0.4) ** 2
    assert out[0] == pytest.approx(lam2[0] * (1 - 0.81) + lam2[1] * (1 - 0.25))
    lam2 = theory.weight_magnitudes(3, 0.4) ** 2
    assert out[1] == pytest.approx(np.sum(lam2 * (1 - np.array([0.8, 0.7, 0.1]) ** 2)))
    with pytest.raises(ValueError, match="cos2_1"):
        first_layer_error(df.drop(columns=["cos2_3"]))


# --- power-law fits with standard errors (loglog_fit) ---
def test_exact_power_law_is_recovered():
    rng = np.random.default_rng(0)
    n, D = np.exp(rng.uniform(3, 9, 20)), np.exp(rng.uniform(4, 7, 20))
    y = 3.0 * n**-0.5 * D**0.5
    fit = loglog_fit(np.column_stack([np.log(n), np.log(D)]), np.log(y))
    np.testing.assert_allclose(fit.slopes, [-0.5, 0.5], atol=1e-12)
    assert fit.intercept == pytest.approx(np.log(3.0), abs=1e-12)
    assert np.all(fit.se < 1e-10) and fit.residual_sd < 1e-10
    np.testing.assert_allclose(fit.predict(np.log([[10.0, 100.0]])), np.log(3.0 * 10**-0.5 * 100**0.5))


def test_standard_errors_are_the_classical_ones():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 3, 12)
    y = 1.0 - 1.1 * x + 0.05 * rng.standard_normal(12)
    fit = loglog_fit(x, y)
    coef, cov = np.polyfit(x, y, 1, cov=True)  # numpy scales by RSS / (N - 2)
    assert fit.slopes[0] == pytest.approx(coef[0], rel=1e-12) and fit.intercept == pytest.approx(coef[1])
    assert fit.se[0] == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-10)
    assert fit.intercept_se == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-10)
    # One regressor: se = sqrt(RSS / (N - 2) / Sxx).
    resid = y - fit.predict(x)
    assert fit.se[0] == pytest.approx(np.sqrt(resid @ resid / 10 / np.sum((x - x.mean()) ** 2)), rel=1e-10)


def test_combination_se_uses_the_covariance():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 2))
    X[:, 1] = X[:, 0] + 0.1 * X[:, 1]  # strongly correlated: b + c is far better determined than b or c
    y = X @ [0.7, -0.7] + 0.1 * rng.standard_normal(40)
    fit = loglog_fit(X, y)
    se_sum = fit.combination_se([1, 1])
    assert se_sum == pytest.approx(np.sqrt(fit.cov[1, 1] + fit.cov[2, 2] + 2 * fit.cov[1, 2]))
    assert se_sum < 0.5 * np.sqrt(fit.se[0] ** 2 + fit.se[1] ** 2)  # negative covariance of b and c
    with pytest.raises(ValueError, match="2 entries"):
        fit.combination_se([1, 1, 1])


def test_bad_input():
    with pytest.raises(ValueError, match="residual degree"):
        loglog_fit([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="collinear"):
        loglog_fit(np.column_stack([np.arange(5.0), 2 * np.arange(5.0)]), np.arange(5.0))
    with pytest.raises(ValueError, match="NaN"):
        loglog_fit(np.array([0.0, -np.inf, 0.7, 1.1]), np.arange(4.0))
    with pytest.raises(ValueError, match="must be"):
        loglog_fit(np.ones((4, 1)), np.ones(3))


def test_transition_width_linear_and_half_way():
    from hiermodel.tables import transition_width

    x = np.arange(5.0)
    v = np.array([1.0, 0.75, 0.5, 0.25, 0.0])  # linear drop: the middle half spans two grid steps
    assert transition_width(x, v) == pytest.approx(2.0)
    assert transition_width(x, v, lo=0.5, hi=0.5) == pytest.approx(0.0)
    assert transition_width(x, v, lo=0.1, hi=0.9) == pytest.approx(3.2)
    step = np.array([1.0, 1.0, 0.0, 0.0, 0.0])  # a cliff within one step
    assert transition_width(x, step) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lo <= hi"):
        transition_width(x, v, lo=0.8, hi=0.2)
    with pytest.raises(ValueError, match="different"):
        transition_width(x, np.ones(5))


def test_bootstrap_width_identical_seeds_and_spread():
    from hiermodel.tables import bootstrap_width

    alphas = np.linspace(1.0, 3.0, 9)
    rows = [{"seed": s, "alpha": a, "err": 1 / (1 + np.exp(4 * (a - 2.0)))} for s in range(4) for a in alphas]
    est = bootstrap_width(pd.DataFrame(rows), "alpha", "err", rng=0, n_boot=200)
    assert est.low == est.value == est.high and est.se == pytest.approx(0, abs=1e-12)  # no spread
    rng = np.random.default_rng(1)
    rows = [{"seed": s, "alpha": a, "err": 1 / (1 + np.exp(k * (a - 2.0)))}
            for s, k in enumerate(rng.uniform(2, 6, 6)) for a in alphas]
    est = bootstrap_width(pd.DataFrame(rows), "alpha", "err", rng=0, n_boot=300)
    assert est.low < est.value < est.high and est.se > 0
    with pytest.raises(ValueError, match="several rows"):
        bootstrap_width(pd.DataFrame(rows + rows[:1]), "alpha", "err")


def test_bootstrap_half_way_lag():
    from hiermodel.tables import bootstrap_half_way_lag

    alpha = np.array([1.0, 2.0, 3.0, 4.0])
    rows = [{"seed": s, "alpha": a, "q_h": q, "mse": m}
            for s in range(3) for a, q, m in zip(alpha, [0.0, 0.2, 1.0, 1.0], [1.0, 1.0, 0.6, 0.0])]
    est = bootstrap_half_way_lag(pd.DataFrame(rows), "alpha", "q_h", "mse", rng=0, n_boot=100)
    # identical seeds: q_h half way at 2 + 0.3/0.8 = 2.375, mse half way at 3 + 0.1/0.6; no spread
    assert est.value == pytest.approx(3 + 0.1 / 0.6 - 2.375)
    assert est.se == pytest.approx(0.0, abs=1e-12) and est.low == pytest.approx(est.value)
    # seeds that differ: a positive spread, the point estimate from the mean curves
    noisy = pd.DataFrame(rows)
    noisy.loc[noisy["seed"] == 1, "mse"] = noisy.loc[noisy["seed"] == 1, "mse"] ** 2
    est = bootstrap_half_way_lag(noisy, "alpha", "q_h", "mse", rng=0, n_boot=200)
    piv = noisy.groupby("alpha")[["q_h", "mse"]].mean()
    assert est.value == pytest.approx(half_way(alpha, piv["mse"]) - half_way(alpha, piv["q_h"]))
    assert est.se > 0 and est.low <= est.value <= est.high
    with pytest.raises(ValueError, match="no column"):
        bootstrap_half_way_lag(noisy, "alpha", "q_h", "nope")
    with pytest.raises(ValueError, match="several rows"):
        bootstrap_half_way_lag(pd.concat([noisy, noisy]), "alpha", "q_h", "mse")


def test_bootstrap_crossings_width_and_slope():
    from hiermodel.tables import bootstrap_crossings

    n = np.geomspace(1.0, 1e4, 41)
    # curve of direction i: 1 - (t_i / n) above t_i = 10 i^0.8 (zero below): crosses c at t_i / (1 - c)
    rows = [{"i": i, "seed": s, "n": v, "cos2": max(0.0, 1 - 10 * i**0.8 / v)}
            for i in (1, 2, 4) for s in range(3) for v in n]
    df = pd.DataFrame(rows)
    c = bootstrap_crossings(df, "n", "cos2", (0.2, 0.5, 0.8), group="i", rng=0, n_boot=50)
    assert c.groups.tolist() == [1, 2, 4] and c.boots.shape == (50, 3, 3)
    est, boots = c.at(0.5)
    assert est == pytest.approx(20 * np.array([1, 2, 4]) ** 0.8, rel=0.02)  # log interpolation on the grid
    w = c.mean_width(0.2, 0.8)  # 0.2 at t / 0.8, 0.8 at t / 0.2: width ln 4 for every direction
    assert w.value == pytest.approx(math.log(4), rel=0.02) and w.se == pytest.approx(0.0, abs=1e-12)
    assert c.slope(0.5).value == pytest.approx(0.8, abs=0.02)
    # seeds that differ: a positive spread; the estimate is that of the mean curves
    df.loc[df.seed == 1, "cos2"] = df.loc[df.seed == 1, "cos2"] ** 2
    c = bootstrap_crossings(df, "n", "cos2", 0.5, group="i", rng=1, n_boot=200)
    mean_curve = df[df.i == 2].groupby("n")["cos2"].mean()
    assert c.at(0.5)[0][1] == pytest.approx(crossing(mean_curve.index, mean_curve, 0.5, log=True))
    s = c.slope(0.5)
    assert s.se > 0 and s.low <= s.value <= s.high
    one = bootstrap_crossings(df[df.i == 1].drop(columns="i"), "n", "cos2", [0.5], rng=0, n_boot=10)
    assert one.estimate.shape == (1, 1)
    with pytest.raises(ValueError, match="not one of"):
        c.at(0.3)
    with pytest.raises(ValueError, match="several rows"):
        bootstrap_crossings(df, "n", "cos2", 0.5)  # three directions per (seed, n) without group=
    with pytest.raises(ValueError, match="no column"):
        bootstrap_crossings(df, "n", "nope", 0.5, group="i")
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_crossings(df, "n", "cos2", 0.999, group="i", n_boot=10).mean_width(0.999, 0.999)


def test_values_at():
    from hiermodel.tables import values_at

    df = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "n": [10, 100, 1000] * 2, "k": [0, 1, 3, 0, 2, 2]})
    v = values_at(df, "n", "k", [10, math.sqrt(10 * 100), 300])
    assert v.loc[0].tolist() == pytest.approx([0, 0.5, 1 + 2 * math.log(3) / math.log(10)])
    assert v.loc[1].tolist() == pytest.approx([0, 1, 2])
    assert values_at(df, "n", "k", [55], log=False).loc[0, 55] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="within"):
        values_at(df, "n", "k", [5000])
    with pytest.raises(ValueError, match="several rows"):
        values_at(pd.concat([df, df]), "n", "k", [50])
