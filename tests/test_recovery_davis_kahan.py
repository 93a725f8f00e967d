"""Eq. 3.2 against Davis-Kahan (chapter 3, issue 13): spike gaps, residual norms, the gap-based bounds and their
thresholds, and the fig4wide grid. Expected values come from hand computations, Isserlis' theorem and simulation."""

import math

import numpy as np
import pytest
import sympy as sp

import hiermodel as hm
from hiermodel import figures, theory
from hiermodel.symbolic import gaussian_expectation

GE = "gaussian-equivalent"


def test_spike_gaps_by_hand():
    lam = np.array([0.6, -0.5, 0.5 + 1e-3, 0.3])
    lam = lam / np.linalg.norm(lam)
    rho = math.sqrt(2) * lam
    gaps = theory.spike_gaps(lam, D=10)
    # rho_1 is nearest to rho_3; rho_2 (negative) to the bulk 0; rho_3 to rho_1; rho_4 to the bulk 0
    expected = [rho[0] - rho[2], abs(rho[1]), rho[0] - rho[2], min(rho[3], rho[2] - rho[3])]
    np.testing.assert_allclose(gaps, expected, rtol=1e-12)
    # without a bulk (D = d1) the zero eigenvalue is absent
    np.testing.assert_allclose(theory.spike_gaps(lam, D=4)[1], rho[3] - rho[1], rtol=1e-12)


def test_residual_norm_diagonal_term_from_isserlis():
    hk, hr = sp.symbols("h_k h_r", real=True)
    lk = sp.Symbol("lambda_k", positive=True)
    y = (lk * (hk**2 - 1) + sp.sqrt(1 - lk**2) * (hr**2 - 1)) / sp.sqrt(2)
    second = gaussian_expectation(y**2 * (hk**2 - 1) ** 2, [hk, hr])
    mean = gaussian_expectation(y * (hk**2 - 1), [hk, hr])
    assert sp.expand(second - mean**2 - (2 + 26 * lk**2)) == 0


def test_residual_norms_match_monte_carlo():
    # n E||Delta a_k||^2 = E||X - E X||^2 with X = y (F F_k - e_k), one sample's column, in the GE model
    target = hm.HierarchicalTarget(4, q=2, d1=3, gamma=0.5, rng=3)
    F, y = target.sample(400_000, rng=4, model=GE)
    A = target.directions / np.linalg.norm(target.directions, axis=1, keepdims=True)
    R = theory.residual_norms(target.weights, target.D)
    for k in range(3):
        hk = F @ A[k]
        X = y[:, None] * (F * hk[:, None] - A[k][None, :])
        measured = np.sum(np.var(X, axis=0))
        assert measured == pytest.approx(R[k], rel=0.03)


def test_bounds_order_and_first_order_below_residual():
    rng = np.random.default_rng(0)
    lam = theory.weight_magnitudes(8, 0.4) * rng.choice([-1.0, 1.0], 8)
    D = 200
    b = theory.davis_kahan_bounds(lam, D, np.geomspace(1e3, 1e9, 13))
    gap = theory.spike_gaps(lam, D)
    small_noise = b["noise"] <= gap[None, :] / 2  # there Davis-Kahan with Weyl beats Yu-Wang-Samworth
    assert np.all(b["dk"][small_noise] <= b["yws"][small_noise] + 1e-15)
    uncapped = b["residual"] < 1
    assert np.all(b["first_order"][uncapped] <= b["residual"][uncapped])
    assert np.all((b["yws"] <= 1) & (b["dk"] <= 1) & (b["residual"] <= 1))
    assert np.all(np.diff(b["first_order"], axis=0) < 0)  # 1/n


def test_thresholds_are_where_the_bounds_reach_one_half():
    lam = theory.weight_magnitudes(5, 0.8) * np.array([1, -1, 1, 1, -1])
    D = 300
    thr = theory.davis_kahan_thresholds(lam, D)
    for form in theory.DAVIS_KAHAN_FORMS:
        for k in range(5):
            value = theory.davis_kahan_bounds(lam, D, thr[form][k])[form][k]
            assert value == pytest.approx(0.5, rel=1e-9), (form, k)
    # the gap-based thresholds scale like 1 / delta_k^2 (YWS: 32 D / delta^2)
    np.testing.assert_allclose(thr["yws"], 32 * D / theory.spike_gaps(lam, D) ** 2)


def test_bounds_hold_and_first_order_is_close_in_a_simulation():
    # GE model, D = 55 (d = 10), d1 = 3: top-3 eigenvectors of C_hat by |eigenvalue| against the directions
    target = hm.HierarchicalTarget(10, q=2, d1=3, gamma=0.5, rng=11)
    A = target.directions / np.linalg.norm(target.directions, axis=1, keepdims=True)
    n = 60_000
    C_bar = math.sqrt(2) * (A.T * target.weights) @ A  # E C_hat = sum_i rho_i a_i a_i^T
    losses, noise = [], []
    for seed in range(6):
        F, y = target.sample(n, rng=100 + seed, model=GE)
        y = (y - y.mean()) / y.std()
        C = (F * y[:, None]).T @ F / n - y.mean() * np.eye(target.D)
        noise.append(np.linalg.norm(C - C_bar, 2))
        w, V = np.linalg.eigh(C)
        top = V[:, np.argsort(-np.abs(w))[:3]].T
        losses.append(1 - np.sum(A * top, axis=1) ** 2)
    measured = np.mean(losses, axis=0)
    b = theory.davis_kahan_bounds(target.weights, target.D, n)
    # strong features (1 + 4 lambda_1^2 > 2 here) push ||Delta||_op above the semicircle edge: the bounds' noise
    # level is then optimistic for Davis-Kahan (their values understate the true bounds)
    assert np.mean(noise) > 1.15 * float(b["noise"].ravel()[0])
    for form in ("yws", "dk", "residual"):
        assert np.all(measured <= b[form]), form
    np.testing.assert_allclose(measured, b["first_order"], rtol=0.35)


def test_noise_level_is_the_semicircle_edge_for_weak_features():
    # 1 + 4 lambda_1^2 < 2: ||C_hat - E C_hat||_op ~ 2 sqrt(D/n), up to the finite-D edge shift (~D^(-2/3) = 7 %
    # at D = 55) and the slightly heavier spike rows
    target = hm.HierarchicalTarget(10, q=2, d1=8, gamma=0.2, rng=5)
    assert 1 + 4 * np.max(target.weights**2) < 2
    A = target.directions / np.linalg.norm(target.directions, axis=1, keepdims=True)
    C_bar = math.sqrt(2) * (A.T * target.weights) @ A
    n, norms = 60_000, []
    for seed in range(4):
        F, y = target.sample(n, rng=200 + seed, model=GE)
        y = (y - y.mean()) / y.std()
        C = (F * y[:, None]).T @ F / n - y.mean() * np.eye(target.D)
        norms.append(np.linalg.norm(C - C_bar, 2))
    edge = float(theory.davis_kahan_bounds(target.weights, target.D, n)["noise"].ravel()[0])
    assert edge == pytest.approx(2 * math.sqrt(target.D / n))
    assert np.mean(norms) == pytest.approx(edge, rel=0.12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="nonzero"):
        theory.spike_gaps([0.5, 0.0], 10)
    with pytest.raises(ValueError, match="D"):
        theory.davis_kahan_bounds([0.8, 0.6], 1, 100)
    with pytest.raises(ValueError, match="positive finite"):
        theory.davis_kahan_bounds([0.8, 0.6], 10, [100, -1])
    with pytest.raises(ValueError, match="1-D"):
        theory.davis_kahan_thresholds([[0.8, 0.6]], 10)


def test_fig4wide_grid_has_the_paper_width_and_chapter_3s_path():
    g = figures.grid("fig4wide", "ci")
    assert {t.d1 for t in g.tasks()} == {20} and {t.model for t in g.tasks()} == {GE}
    for t in g.tasks():
        assert t.eps > 0.5
        expected = figures.recovery_sizes(t.d, gamma=0.4, eps=t.eps, deltas=())
        assert t.ns == tuple(int(v) for v in expected)
        n_star = theory.recovery_thresholds(d=t.d, gamma=0.4, eps=t.eps, q=2, convention="bbp")
        assert min(t.ns) < n_star[0] / 8 and max(t.ns) >= 20 * n_star[-1]
    paper = figures.grid("fig4wide", "paper")
    assert {t.d1 for t in paper.tasks()} == {28} and min(paper.d) > max(g.d)
