"""Label preprocessing of the spectral matrix (chapter 2, B5): efficiencies, the best quadratic preprocessing, and
the signed-weight eigenvector overlap that predicts the thresholds at finite n / D."""

import math

import numpy as np
import pytest

import hiermodel as hm
from hiermodel import experiments, theory


def _unit(w):
    w = np.asarray(w, dtype=float)
    return w / np.linalg.norm(w)


def test_label_cumulants_of_one_chi_square_and_of_a_sum():
    k = experiments.label_cumulants([1.0])
    assert k[2] == pytest.approx(1.0) and k[3] == pytest.approx(2 * math.sqrt(2)) and k[4] == pytest.approx(12.0)
    lam = _unit([0.8, -0.5, 0.3])
    h = np.random.default_rng(0).standard_normal((2_000_000, 3))
    y = ((h * h - 1) / math.sqrt(2)) @ lam
    k = experiments.label_cumulants(lam)
    assert np.mean(y**3) == pytest.approx(k[3], abs=0.03)
    assert np.mean(y**4) - 3 * np.mean(y**2) ** 2 == pytest.approx(k[4], abs=0.3)


def test_quadratic_gain_matches_monte_carlo_of_its_transform():
    t = hm.HierarchicalTarget(16, eps=0.7, gamma=0.4, rng=3)
    i = t.d1 - 1
    best = experiments.quadratic_preprocessing(t.weights, i)
    T = {"y": experiments.label_transform("y"), "quadratic": experiments.label_transform("quadratic", t.weights, i)}
    eff = experiments.preprocessing_efficiency(t.weights, i, T, samples=600_000, rng=1)
    ratio = eff["quadratic"]["efficiency"] / eff["y"]["efficiency"]  # paired: most MC noise cancels
    assert ratio == pytest.approx(1 + best["gain"], abs=0.02)
    assert eff["y"]["efficiency"] == pytest.approx(1.0, abs=4 * eff["y"]["efficiency_se"] + 1e-3)


def test_quadratic_gain_vanishes_for_many_weak_features_with_cancelling_skewness():
    lam = _unit(np.tile([1.0, -1.0], 500))  # kappa_3 = 0, lambda_i^2 = 1/1000
    best = experiments.quadratic_preprocessing(lam, 999)
    assert best["kappa3"] == pytest.approx(0.0, abs=1e-12)
    # (2 sqrt2 lambda)^2 / (2 + kappa_4) = 8 lambda^2 / (2 + 12 sum lambda^4)
    assert best["gain"] == pytest.approx(8e-3 / (2 + 12e-3), rel=1e-9)


def test_efficiencies_of_sign_and_abs_near_the_gaussian_limit():
    lam = _unit(np.tile([1.0, -1.0], 100))  # y is close to Gaussian (kappa_3 = 0, kappa_4 = 0.06)
    T = {k: experiments.label_transform(k) for k in ("sign", "abs", "cube")}
    eff = experiments.preprocessing_efficiency(lam, 0, T, samples=400_000, rng=2)
    assert eff["sign"]["efficiency"] == pytest.approx(2 / math.pi, abs=0.08)
    assert eff["cube"]["efficiency"] == pytest.approx(3 / 5, abs=0.08)
    assert eff["abs"]["efficiency"] < 0.05  # even T: no first-order spike


def test_efficiency_is_invariant_under_sign_and_scale_of_T():
    t = hm.HierarchicalTarget(12, gamma=0.4, rng=1)
    T = {"sign": np.sign, "minus 3 sign": lambda y: -3 * np.sign(y)}
    eff = experiments.preprocessing_efficiency(t.weights, 0, T, samples=100_000, rng=5)
    assert eff["sign"]["efficiency"] == pytest.approx(eff["minus 3 sign"]["efficiency"], rel=1e-9)
    assert eff["sign"]["spike"] == pytest.approx(-eff["minus 3 sign"]["spike"], rel=1e-9)


def test_bad_transform_arguments():
    with pytest.raises(ValueError, match="unknown label transform"):
        experiments.label_transform("log")
    with pytest.raises(ValueError, match="needs weights"):
        experiments.label_transform("quadratic")
    with pytest.raises(ValueError, match="sum lambda"):
        experiments.quadratic_preprocessing([0.5, 0.5], 0)
    with pytest.raises(ValueError, match="not a direction"):
        experiments.quadratic_preprocessing([1.0], 1)
    with pytest.raises(ValueError, match="same shape"):
        experiments.preprocessing_efficiency([1.0], 0, {"bad": lambda y: y[:1]}, samples=10)


def test_overlap_reduces_to_bbp_for_independent_labels_at_small_ratio():
    rng = np.random.default_rng(3)
    w, h = rng.standard_normal(200_000), rng.standard_normal(200_000)
    w = (w - w.mean()) / w.std()
    for spike, ratio in ((0.5, 1e-3), (-0.4, 2e-3)):
        x, cos2 = theory.weighted_covariance_overlap(spike, ratio=ratio, labels=w, projections=h)
        assert x == pytest.approx(spike + ratio / spike, rel=0.01)
        assert cos2 == pytest.approx(1 - ratio / spike**2, abs=0.01)


def test_overlap_below_threshold_is_zero_and_half_overlap_is_bbps_two_n_star():
    rng = np.random.default_rng(4)
    w, h = rng.standard_normal(100_000), rng.standard_normal(100_000)
    w = (w - w.mean()) / w.std()
    x, cos2 = theory.weighted_covariance_overlap(0.01, ratio=0.1, labels=w, projections=h)
    assert math.isnan(x) and cos2 == 0.0
    D, spike = 100, 0.1  # BBP: cos^2 = 1 - (D/n) / spike^2 = 1/2 at n = 2 D / spike^2
    n_half = theory.weighted_covariance_half_overlap(spike, D=D, labels=w, projections=h, n_range=(1e3, 1e6))
    assert n_half == pytest.approx(2 * D / spike**2, rel=0.05)
    assert math.isnan(theory.weighted_covariance_half_overlap(spike, D=D, labels=w, projections=h,
                                                              n_range=(1e5, 1e6)))
    with pytest.raises(ValueError, match="n_range"):
        theory.weighted_covariance_half_overlap(spike, D=D, labels=w, projections=h, n_range=(10, 1))


def test_overlap_predicts_the_simulated_cos2_of_a_weak_direction():
    """The signed-weight overlap against C_hat's eigenvectors (GE, d = 16, eps = 0.7, n = 6 n*), 4 draws."""
    t = hm.HierarchicalTarget(16, eps=0.7, gamma=0.4, rng=2)
    i = t.d1 - 1
    n = int(6 * t.D / (2 * t.weights[i] ** 2))
    h = np.random.default_rng(9).standard_normal((100_000, t.d1))
    y = t.second_layer(h)
    w = (y - y.mean()) / y.std()
    theta = math.sqrt(2) * np.mean(w * (h[:, i] ** 2 - 1) / math.sqrt(2))
    _, predicted = theory.weighted_covariance_overlap(theta, ratio=t.D / n, labels=w, projections=h[:, i])
    measured = []
    for seed in range(4):
        F, yy = t.sample(n, 20 + seed, model="gaussian-equivalent")
        est = hm.LayerwiseSpectral(t.d1, rng=0).fit_features(F, yy)
        measured.append(hm.metrics.direction_cos2(t.directions, est.directions_)[i])
    assert 0.3 < predicted < 0.95
    assert np.mean(measured) == pytest.approx(predicted, abs=0.1)
