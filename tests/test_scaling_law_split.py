"""Chapter 4, issue 13: the second layer on a fresh batch, the grids of Theorem 3.2's own estimator, gamma <= 1/2
and the late regime (hiermodel.theory.second_layer_noise; the registry entries rate_split, floor_split, regimes,
late; the two-panel Fig. 3)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hiermodel as hm  # noqa: E402
from hiermodel import figures  # noqa: E402

GE = "gaussian-equivalent"


def _noise_monte_carlo(lam, n2, reps, rng, *, independent=False):
    """E ||A2_hat - E A2_hat||_F^2 / 2 by simulation: h ~ N(0, I), y = sum lam (h^2 - 1) / sqrt2 (or, with
    ``independent``, a standard Gaussian label independent of h), A2_hat = mean of y (h h^T - I)."""
    d1 = lam.size
    h = rng.standard_normal((reps, n2, d1))
    y = rng.standard_normal((reps, n2)) if independent else (h**2 - 1) @ lam / math.sqrt(2)
    A2 = np.einsum("rn,rni,rnj->rij", y, h, h) / n2 - np.eye(d1) * y.mean(axis=1)[:, None, None]
    mean = np.zeros((d1, d1)) if independent else math.sqrt(2) * np.diag(lam)
    sq = ((A2 - mean) ** 2).sum(axis=(1, 2)) / 2
    return sq.mean(), sq.std(ddof=1) / math.sqrt(reps)


@pytest.mark.parametrize("lam", [np.array([0.8, -0.6]), np.array([0.7, 0.5, -0.5, 0.1])])
def test_second_layer_noise_matches_simulation(lam):
    lam = lam / np.linalg.norm(lam)
    n2, rng = 50, np.random.default_rng(3)
    mc, se = _noise_monte_carlo(lam, n2, 20000, rng)
    assert abs(mc - hm.theory.second_layer_noise(lam, n2)) < 4 * se + 1e-3 * mc
    mc, se = _noise_monte_carlo(lam, n2, 20000, rng, independent=True)
    assert abs(mc - hm.theory.second_layer_noise(lam, n2, coupled=False)) < 4 * se + 1e-3 * mc


def test_second_layer_noise_closed_forms():
    # independent form: d1 (d1 + 1) / (2 n2); coupled, one direction: (2 + 26) / (2 n2)
    assert hm.theory.second_layer_noise(np.ones(4) / 2, 10, coupled=False) == pytest.approx(20 / 20)
    assert hm.theory.second_layer_noise(np.array([1.0]), 7) == pytest.approx(28 / 14)
    # two equal weights of the same sign: diagonal 2 (2 + 13), off-diagonal 2 (1 + 2 + 2 + 2)
    lam = np.array([1.0, 1.0]) / math.sqrt(2)
    assert hm.theory.second_layer_noise(lam, 1) == pytest.approx((30 + 14) / 2)
    # the sign pattern enters only through (sum lam)^2
    assert hm.theory.second_layer_noise(lam * [1, -1], 1) == pytest.approx((30 + 6) / 2)


def test_second_layer_noise_rejects_bad_input():
    with pytest.raises(ValueError, match="sum_i weights_i"):
        hm.theory.second_layer_noise(np.array([1.0, 1.0]), 10)
    with pytest.raises(ValueError, match="n_second"):
        hm.theory.second_layer_noise(np.array([1.0]), 0)
    with pytest.raises(ValueError, match="1-D"):
        hm.theory.second_layer_noise(np.ones((2, 2)) / 2, 10)
    with pytest.raises(TypeError, match="coupled"):
        hm.theory.second_layer_noise(np.array([1.0]), 10, coupled="yes")


@pytest.mark.parametrize("scale", ["ci", "paper"])
def test_split_grids_are_the_no_split_grids_with_a_fresh_batch(scale):
    """rate_split / floor_split run rate's / floor's tasks (same targets and training streams: the same seeds)
    with sample splitting, so the two variants are paired draw by draw."""
    for plain, split in (("rate", "rate_split"), ("floor", "floor_split")):
        a, b = figures.grid(plain, scale).tasks(), figures.grid(split, scale).tasks()
        assert [t.params for t in a] == [t.params for t in b] and [t.ns for t in a] == [t.ns for t in b]
        assert all(not t.split for t in a) and all(t.split for t in b)
        assert [t.seed_sequence().entropy for t in a] == [t.seed_sequence().entropy for t in b]
        assert {t.cache_key() for t in a}.isdisjoint({t.cache_key() for t in b})


def test_regime_and_late_grids():
    reg = figures.grid("regimes", "ci")
    assert {t.gamma for t in reg.tasks()} == {0.25, 0.5} and {t.d1 for t in reg.tasks()} == {20}
    late = figures.grid("late", "ci")
    assert {t.d1 for t in late.tasks()} == {4} and all(t.model == GE for t in late.tasks())
    for t in late.tasks():  # the late regime: every n at least three times the last BBP threshold
        n_star = hm.theory.recovery_thresholds(d=t.d, gamma=t.gamma, eps=t.eps, q=t.q)
        assert min(t.ns) >= 3 * n_star[-1]


def _fake_table(model_list, gammas, d=10, d1=3):
    rows, rng = [], np.random.default_rng(0)
    eps = hm.theory.width_exponent(d, d1)
    for model in model_list:
        for g in gammas:
            for seed in range(2):
                for a in (2.0, 2.5, 3.0):
                    n = int(round(d**a))
                    row = {"model": model, "gamma": g, "alpha": a, "n": n, "d": d, "d1": d1, "D": 55, "eps": eps,
                           "q": 2, "seed": seed, "mse": rng.uniform(0.2, 1), "q_h": rng.uniform(0, 1)}
                    row.update({f"cos2_{i + 1}": rng.uniform(0, 1) for i in range(d1)})
                    rows.append(row)
    return pd.DataFrame(rows)


def test_fig3_has_both_panels_per_model():
    fig = figures.plot("fig3", _fake_table(["hermite", GE], [0.0, 0.5, 1.0]))
    assert len(fig.axes) == 4 and fig.get_size_inches()[1] == 2 * figures.ROW_HEIGHT
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[0].startswith("test MSE") and labels[1].startswith("overlap")
    assert sum(len(ax.lines) for ax in fig.axes[2:]) > sum(len(ax.lines) for ax in fig.axes[:2])  # GE: theory
    plt.close(fig)
    with pytest.raises(ValueError, match="q_h"):
        figures.plot("fig3", _fake_table([GE], [0.5]).drop(columns="q_h"))


@pytest.mark.parametrize("name", ["regimes", "late"])
def test_new_plots_draw(name):
    fig = figures.plot(name, _fake_table([GE], [0.25, 0.5]))
    assert len(fig.axes) == 2 and all(ax.get_xlabel() == "$n$" for ax in fig.axes)
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "linear" for ax in fig.axes)
    plt.close(fig)
