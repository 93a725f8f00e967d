"""Helpers of chapter 3's d = 120 section: the first-order ceiling deficit (B6) and crossing delays."""

import math

import numpy as np
import pandas as pd
import pytest

from hiermodel import HierarchicalTarget, tables
from hiermodel.experiments import ceiling_first_order
from hiermodel.population import population_ceiling, population_matrix, spike_strengths


# --- ceiling_first_order ----------------------------------------------------------------------------------------
def test_first_order_deficit_equals_its_formula_on_the_explicit_matrix():
    target = HierarchicalTarget(10, gamma=0.4, rng=3)
    M = population_matrix(target)  # dense E C_hat, D = 55
    A = target.directions
    off = (np.eye(target.D) - A.T @ A) @ M @ A.T  # P_perp E C_hat a_k, one column per k
    expected = np.sum(off**2, axis=0) / spike_strengths(target) ** 2
    got = ceiling_first_order(target)
    assert got.shape == (target.d1,)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_first_order_deficit_matches_the_exact_ceiling_at_moderate_d():
    # second order in ||S|| / rho: about 0.1-0.2 of the deficit at d = 60 for the strongest directions
    target = HierarchicalTarget(60, gamma=0.4, rng=5)
    exact = 1 - population_ceiling(target)["cos2"]
    first = ceiling_first_order(target)
    ratio = first[:3] / exact[:3]
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


def test_first_order_deficit_decays_like_d_to_the_minus_two():
    # (1 - cos^2_1) lambda_1^2 ~ ||P_perp S a_1||^2 / 2, with ||S a_1|| ~ 1/d: slope -2 in ln d, up to the draws
    ds, values = (30, 60, 120), []
    for d in ds:
        per_draw = [ceiling_first_order(t)[0] * t.weights[0] ** 2
                    for t in (HierarchicalTarget(d, gamma=0.4, rng=s) for s in range(3))]
        values.append(np.mean(per_draw))
    slope = tables.loglog_slope(np.array(ds, dtype=float), np.array(values))[0]
    assert -2.5 < slope < -1.6, slope  # and far from -1, the first-order-in-S alternative


def test_first_order_deficit_rejects_non_targets():
    with pytest.raises(TypeError):
        ceiling_first_order(np.eye(3))


# --- mean_log_ratio ---------------------------------------------------------------------------------------------
def _ramps(crossings, seeds=3, ns=np.geomspace(100, 1e5, 31)):
    """cos^2 rising linearly in ln n through 1/2 at each group's crossing (NaN crossing: never reaches 1/2)."""
    rows = []
    for g, c in enumerate(crossings, start=1):
        for s in range(seeds):
            shift = 0.0 if np.isnan(c) else math.log(c)
            for n in ns:
                value = 0.2 if np.isnan(c) else float(np.clip(0.5 + 0.2 * (math.log(n) - shift), 0, 1))
                rows.append({"i": g, "seed": s, "n": n, "cos2": value})
    return pd.DataFrame(rows)


def test_mean_log_ratio_of_identical_draws_is_exact():
    true = np.array([1e3, 4e3, 2e4])
    ref = np.array([500.0, 1000.0, 1e4])
    cr = tables.bootstrap_crossings(_ramps(true), "n", "cos2", (0.5,), group="i", rng=0, n_boot=50)
    est = tables.mean_log_ratio(cr, 0.5, ref)
    assert math.isclose(est.value, np.mean(np.log(true / ref)), rel_tol=1e-9)
    assert est.se < 1e-12 and est.low <= est.value <= est.high


def test_mean_log_ratio_leaves_out_unresolved_groups():
    cr = tables.bootstrap_crossings(_ramps([2e3, np.nan]), "n", "cos2", 0.5, group="i", rng=1, n_boot=20)
    est = tables.mean_log_ratio(cr, 0.5, [1e3, 1e3])
    assert math.isclose(est.value, math.log(2.0), rel_tol=1e-9)


def test_mean_log_ratio_refuses_bad_input():
    cr = tables.bootstrap_crossings(_ramps([np.nan]), "n", "cos2", 0.5, group="i", rng=2, n_boot=20)
    with pytest.raises(ValueError, match="no group"):
        tables.mean_log_ratio(cr, 0.5, [1e3])
    ok = tables.bootstrap_crossings(_ramps([2e3, 3e3]), "n", "cos2", 0.5, group="i", rng=2, n_boot=20)
    with pytest.raises(ValueError, match="reference"):
        tables.mean_log_ratio(ok, 0.5, [1e3])
    with pytest.raises(ValueError, match="reference"):
        tables.mean_log_ratio(ok, 0.5, [1e3, -1.0])
    with pytest.raises(ValueError, match="level"):
        tables.mean_log_ratio(ok, 0.3, [1e3, 1e3])
    with pytest.raises(TypeError):
        tables.mean_log_ratio((np.ones(2), np.ones((3, 2))), 0.5, [1e3, 1e3])
