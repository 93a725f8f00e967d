"""hiermodel.tables.level_sample_sizes: the sample size a decreasing curve needs to reach a level, against a
predicted curve (chapter 4's comparison of the stored d = 120 run with the Gaussian-equivalent theory)."""

import math

import numpy as np
import pandas as pd
import pytest

from hiermodel import tables


def _linear_in_log(n, start):
    """1 until ``start``, then falling by 0.25 per e-fold of n: linear in log n, so interpolation is exact."""
    return np.clip(1.0 - 0.25 * np.log(np.asarray(n, dtype=float) / start), 0.0, 1.0)


def _table(starts, ns, group=10):
    rows = [{"d": group, "seed": s, "n": float(n), "mse": float(_linear_in_log(n, start))}
            for s, start in enumerate(starts) for n in ns]
    return pd.DataFrame(rows)


NS = np.geomspace(100, 1e6, 41)


def test_ratio_of_a_shifted_curve_is_the_shift():
    # every seed falls like the reference, 8 times later: the ratio is 8 at every level, with no scatter
    df = _table([800.0, 800.0, 800.0], NS)
    out = tables.level_sample_sizes(df, "mse", [0.75, 0.5], lambda d, n: _linear_in_log(n, 100.0), rng=0)
    tab = out.table.set_index("level")
    for lv in (0.75, 0.5):
        assert tab.loc[lv, "n"] == pytest.approx(800.0 * math.exp((1 - lv) / 0.25), rel=1e-9)
        assert tab.loc[lv, "ratio"] == pytest.approx(8.0, rel=1e-6)
        assert tab.loc[lv, "log_ratio_se"] == pytest.approx(0.0, abs=1e-12)
    assert set(out.boots) == {(10, 0.75), (10, 0.5)}


def test_measured_crossing_is_chapter_sixs_definition():
    # the crossing of the seed-mean curve, as bootstrap_crossings on 1 - mse (chapter 6)
    df = _table([300.0, 900.0, 2000.0, 650.0], NS)
    ref = tables.bootstrap_crossings(df.assign(fit=1 - df["mse"]), "n", "fit", [0.25], n_boot=10, rng=0)
    out = tables.level_sample_sizes(df, "mse", 0.75, lambda d, n: _linear_in_log(n, 100.0), rng=0)
    assert out.table["n"].iloc[0] == pytest.approx(ref.at(0.25)[0][0], rel=1e-12)


def test_seed_scatter_gives_a_standard_error():
    df = _table([400.0, 1600.0], NS)  # two seeds a factor 4 apart
    out = tables.level_sample_sizes(df, "mse", 0.5, lambda d, n: _linear_in_log(n, 100.0), n_boot=400, rng=1)
    row = out.table.iloc[0]
    # the mean curve's crossing lies between the two seeds' own crossings
    lo, hi = 400.0 * math.exp(2.0), 1600.0 * math.exp(2.0)
    assert lo < row["n"] < hi
    assert 0.05 < row["log_ratio_se"] < math.log(4.0)
    assert row["low"] < row["ratio"] < row["high"]


def test_levels_not_reached_are_nan_and_left_out_of_the_trend():
    # group 30 never falls below 0.6 on its grid: its 0.5 row is NaN; the trend at 0.5 has one group only
    flat = pd.DataFrame([{"d": 30, "seed": s, "n": float(n), "mse": max(0.6, float(_linear_in_log(n, 500.0)))}
                         for s in range(3) for n in NS])
    df = pd.concat([_table([500.0] * 3, NS, group=12), flat], ignore_index=True)
    out = tables.level_sample_sizes(df, "mse", [0.75, 0.5], lambda d, n: _linear_in_log(n, 100.0), rng=0)
    tab = out.table.set_index(["group", "level"])
    assert math.isnan(tab.loc[(30, 0.5), "n"]) and math.isnan(tab.loc[(30, 0.5), "log_ratio_se"])
    assert np.isfinite(tab.loc[(30, 0.75), "ratio"])
    with pytest.raises(ValueError, match="fewer than two groups"):
        out.trend(0.5)


def test_trend_recovers_a_power_law_in_the_group():
    # ratio = 40 (d / 10)^(-0.7) exactly at every level: the fitted trend is -0.7 with no bootstrap scatter
    parts = []
    for d in (10, 20, 40, 80):
        ratio = 40.0 * (d / 10) ** -0.7
        parts.append(_table([100.0 * ratio] * 3, np.geomspace(100, 1e7, 61), group=d))
    out = tables.level_sample_sizes(pd.concat(parts, ignore_index=True), "mse", [0.75],
                                    lambda d, n: _linear_in_log(n, 100.0), rng=0)
    assert out.table["ratio"].to_numpy() == pytest.approx(40.0 * (np.array([1, 2, 4, 8])) ** -0.7, rel=1e-6)
    est = out.trend(0.75)
    assert est.value == pytest.approx(-0.7, abs=1e-6)
    assert est.se == pytest.approx(0.0, abs=1e-9)


def test_groups_are_resampled_independently():
    # different groups may hold different seeds (the stored run and the CI sweep)
    a = _table([500.0, 700.0], NS, group=12)
    b = _table([900.0, 1100.0, 1300.0, 1500.0], NS, group=120)
    out = tables.level_sample_sizes(pd.concat([a, b], ignore_index=True), "mse", 0.75,
                                    lambda d, n: _linear_in_log(n, 100.0), rng=3)
    assert out.table["log_ratio_se"].notna().all()
    assert out.boots[12, 0.75].shape == out.boots[120, 0.75].shape == (2000,)


def test_reference_is_evaluated_on_the_groups_own_range():
    seen = {}

    def reference(d, n):
        seen[d] = (n.min(), n.max())
        return _linear_in_log(n, 100.0)

    tables.level_sample_sizes(_table([800.0] * 2, NS), "mse", 0.75, reference, rng=0, span=10.0)
    assert seen[10][0] == pytest.approx(10.0) and seen[10][1] == pytest.approx(1e7)


def test_bad_inputs():
    df = _table([800.0] * 2, NS)
    ref = lambda d, n: _linear_in_log(n, 100.0)  # noqa: E731
    with pytest.raises(ValueError, match="no column"):
        tables.level_sample_sizes(df, "q_h", 0.5, ref)
    with pytest.raises(TypeError, match="callable"):
        tables.level_sample_sizes(df, "mse", 0.5, 0.3)
    with pytest.raises(ValueError, match="shape"):
        tables.level_sample_sizes(df, "mse", 0.5, lambda d, n: np.ones(3))
    with pytest.raises(ValueError, match="several rows"):
        tables.level_sample_sizes(pd.concat([df, df]), "mse", 0.5, ref)
    with pytest.raises(ValueError, match="span"):
        tables.level_sample_sizes(df, "mse", 0.5, ref, span=1.0)
