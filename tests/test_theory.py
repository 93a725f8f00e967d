"""Closed-form theory: the derived exponents equal the paper's statements; finite-d values approach the limits."""

import math

import numpy as np
import pytest

import hiermodel as hm
from hiermodel import theory as th


def test_weights_and_widths():
    assert th.first_layer_width(400, 0.5) == 20 and th.first_layer_width(120, 0.5) == 10
    assert th.first_layer_width(27, 1 / 3) == 3  # 27^(1/3) is 2.9999... in floating point
    for gamma in (0.0, 0.3, 0.5, 1.7):
        assert np.sum(th.weight_magnitudes(17, gamma) ** 2) == pytest.approx(1.0, rel=1e-13)
    assert th.harmonic_number(4, 1.0) == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4)


@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.45, 0.5, 0.7, 1.5])
def test_threshold_exponent_matches_paper_statement(gamma):
    # SPEC C6, typed independently of the SymPy derivation in theory.py.
    q, eps = 2, 0.5
    s = np.linspace(0, 1, 5)
    if gamma == 0:
        paper = np.full_like(s, q + eps)
    elif gamma < 0.5:
        paper = q + eps * (1 - 2 * gamma + 2 * gamma * s)
    else:
        paper = q + 2 * gamma * eps * s
    np.testing.assert_allclose(th.threshold_exponent(s, gamma=gamma, eps=eps, q=q), paper, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.25, 1.0])
def test_finite_d_thresholds_approach_the_exponent(gamma):
    # log_d n_k -> kappa(s) as d grows; the gap closes like 1/log d.
    eps, q, s = 0.5, 2, 1.0
    gaps = []
    for d in (10**2, 10**4, 10**8):
        n_last = th.recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention="corollary")[-1]
        gaps.append(abs(math.log(n_last) / math.log(d) - th.threshold_exponent(s, gamma=gamma, eps=eps, q=q)))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.1


def test_recovered_count_is_a_staircase_capped_at_d1():
    kw = dict(d=400, gamma=0.4, eps=0.5, q=2)
    n = np.logspace(3, 9, 200)
    m = th.recovered_count(n, **kw)
    assert np.all(np.diff(m) >= 0) and m[0] == 0 and m[-1] == 20
    # Corollary 3.1 in closed form, where it is below the cap
    Z2 = th.power_law_normalisation(20, 0.4) ** 2
    closed = np.minimum(20, np.floor((Z2 * n / hm.feature_dimension(400, 2)) ** (1 / 0.8)))
    np.testing.assert_array_equal(m, closed)
    assert np.all(th.recovered_count(n, **kw, convention="bbp") >= m)  # the BBP threshold is half as large
    m0 = th.recovered_count(n, d=400, gamma=0.0, eps=0.5, q=2)
    assert set(np.unique(m0)) == {0, 20}


def test_mse_laws():
    assert th.mse_exponent(1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="gamma > 1/2"):
        th.mse_exponent(0.5)
    kw = dict(d=400, gamma=1.0, eps=0.5, q=2)
    n = np.logspace(3, 9, 50)
    tail, refined = th.mse_prediction(n, **kw), th.mse_prediction(n, **kw, refined=True)
    assert np.all(refined >= tail - 1e-15) and tail[0] == pytest.approx(1.0) and refined[-1] < 1e-2
    assert np.all(np.diff(refined) <= 1e-15)


@pytest.mark.parametrize("call,match", [
    (lambda: th.threshold_exponent(1.5, gamma=0.3, eps=0.5, q=2), "s must lie"),
    (lambda: th.threshold_exponent(0.5, gamma=-1, eps=0.5, q=2), "gamma must be"),
    (lambda: th.recovered_count(0.5, d=100, gamma=0.3, eps=0.5, q=2), "n must be"),
    (lambda: th.recovered_count(1e4, d=100, gamma=0.3, eps=0.5, q=2, convention="x"), "convention"),
    (lambda: th.harmonic_asymptotic("gamma < 0"), "unknown regime"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_noise_bulk_densities():
    g = np.random.default_rng(0).standard_normal(20_000)
    c = 1e-4
    radius = 2 * math.sqrt(c)
    x = np.linspace(-1.5 * radius, 1.5 * radius, 301)
    semi = th.semicircle_density(x, radius=radius)
    assert np.trapezoid(semi, x) == pytest.approx(1.0, abs=2e-3)
    rho = th.weighted_covariance_density(x, ratio=c, weights=g, eta=1e-3 * radius)
    assert np.trapezoid(rho, x) == pytest.approx(1.0, abs=2e-3)
    assert np.abs(rho - semi).max() < 0.1 * semi.max()  # D/n -> 0: the weighted-covariance law becomes GOE
    skewed = th.weighted_covariance_density(np.linspace(-4, 4, 201), ratio=0.5, weights=g**2 - 1)
    assert skewed[:100].sum() != pytest.approx(skewed[101:].sum(), rel=0.05)  # n ~ D: not symmetric
    with pytest.raises(ValueError, match="weights"):
        th.weighted_covariance_density(x, ratio=0.1, weights=[1.0])


def test_mse_continuum_forms():
    import sympy as sp

    g, m, Z2 = sp.symbols("gamma m Z2", positive=True)
    e = th.mse_continuum_expressions()
    assert sp.simplify(e["tail"] - Z2 * m ** (1 - 2 * g) / (2 * g - 1)) == 0
    assert sp.simplify(e["refined"] - 8 * g**2 * Z2 * m ** (1 - 2 * g) / (4 * g**2 - 1)) == 0  # SPEC B2
    assert sp.simplify(e["small_gamma"] - (1 - Z2 * m ** (1 - 2 * g) / (1 - 2 * g))) == 0
    # on the window 1 << m << d1 the continuum form tracks the discrete sums; exponent -beta(gamma)
    kw = dict(d=60, gamma=1.0, eps=1.3, q=2)
    n1 = th.recovery_thresholds(**kw)[0]
    n = n1 * np.array([8.0, 16.0, 32.0]) ** 2  # m = 8, 16, 32 of d1 = 204
    for refined in (False, True):
        cont = th.mse_asymptotic(n, **kw, refined=refined)
        assert np.allclose(np.diff(np.log(cont)) / np.diff(np.log(n)), -th.mse_exponent(1.0))
        disc = th.mse_prediction(n, **kw, refined=refined)
        assert np.all(np.abs(np.log(disc / cont)) < 0.3)
    small = th.mse_asymptotic(np.geomspace(10, 1e7, 20), d=400, gamma=0.3, eps=0.5, q=2)
    assert np.all(np.diff(small) <= 0) and small[-1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="gamma > 1/2"):
        th.mse_asymptotic(1e4, d=60, gamma=0.4, eps=0.5, q=2, refined=True)


@pytest.mark.parametrize("gamma", [0.2, 0.4, 0.5, 1.0])
def test_recovered_count_exponent_inverts_the_threshold_exponent(gamma):
    s = np.linspace(0.05, 0.95, 7)
    kappa = th.threshold_exponent(s, gamma=gamma, eps=0.5, q=2)
    np.testing.assert_allclose(th.recovered_count_exponent(kappa, gamma=gamma, eps=0.5, q=2), s, atol=1e-12)
    assert th.recovered_count_exponent(1.0, gamma=gamma, eps=0.5, q=2) == 0.0
    assert th.recovered_count_exponent(9.0, gamma=gamma, eps=0.5, q=2) == 1.0


def test_recovered_count_exponent_gamma_zero_is_a_step():
    out = th.recovered_count_exponent([2.4, 2.6], gamma=0.0, eps=0.5, q=2)
    np.testing.assert_array_equal(out, [0.0, 1.0])


@pytest.mark.parametrize("gamma", [0.25, 1.0])
def test_finite_d_recovered_count_approaches_its_exponent(gamma):
    # log m_n / log d1 at n = d^kappa -> sigma(kappa); constants (q!, BBP factors) fade like 1/log d.
    eps, q, s = 0.5, 2, 0.5
    kappa = float(th.threshold_exponent(s, gamma=gamma, eps=eps, q=q)) + 0.05
    sigma = float(th.recovered_count_exponent(kappa, gamma=gamma, eps=eps, q=q))
    gaps = []
    for d in (10**4, 10**6, 10**8):
        m = th.recovered_count(float(d) ** kappa, d=d, gamma=gamma, eps=eps, q=q)
        gaps.append(abs(math.log(m) / math.log(th.first_layer_width(d, eps)) - sigma))
    assert max(gaps) < 0.05 and gaps[-1] < 0.02  # the floor of m_n adds a wiggle of order 1/(m_n log d1)


def test_kolmogorov_distance():
    x = np.linspace(0.0, 1.0, 1001)
    uniform = np.ones_like(x)
    mid = (np.arange(200) + 0.5) / 200  # the uniform law's own quantiles
    assert th.kolmogorov_distance(mid, x, uniform) < 1e-12
    assert th.kolmogorov_distance(mid * 0.9, x, uniform) == pytest.approx(0.1 * mid.max(), rel=1e-9)
    # Eigenvalues of a large GOE matrix against the semicircle, and against a wrong radius.
    rng = np.random.default_rng(0)
    G = rng.standard_normal((600, 600))
    eigs = np.linalg.eigvalsh((G + G.T) / np.sqrt(2 * 600))  # semicircle of radius 2
    grid = np.linspace(-2.5, 2.5, 2001)
    assert th.kolmogorov_distance(eigs, grid, th.semicircle_density(grid, radius=2.0)) < 0.01
    assert th.kolmogorov_distance(eigs, grid, th.semicircle_density(grid, radius=1.6)) > 0.05
    with pytest.raises(ValueError, match="increasing"):
        th.kolmogorov_distance(eigs, grid[::-1], uniform[:1])
    with pytest.raises(ValueError, match="no mass"):
        th.kolmogorov_distance(eigs, grid, np.zeros_like(grid))


def test_overlap_prefactors():
    # the closed forms of chapter 3 (Eq. 3.2): bulk term (1 + 4 lambda^2)(1 - d1/D) n*_k, plus the neighbour sum
    d, gamma, eps = 30, 0.4, 0.5
    t = hm.HierarchicalTarget(d, gamma=gamma, eps=eps, rng=3)
    P = th.overlap_prefactors(t.weights, t.D)
    lam = t.weights
    n_star = th.recovery_thresholds(d=d, gamma=gamma, eps=eps, q=2, convention="bbp")
    np.testing.assert_allclose(P["subspace"], (1 + 4 * lam**2) * (1 - t.d1 / t.D) * n_star, rtol=1e-12)
    for k in range(t.d1):
        pair = sum((1 + 4 * lam[j] ** 2 + 4 * lam[k] ** 2 + 4 * lam[j] * lam[k]) / (np.sqrt(2) * (lam[k] - lam[j])) ** 2
                   for j in range(t.d1) if j != k)
        assert P["neighbours"][k] == pytest.approx(pair, rel=1e-12)
    np.testing.assert_allclose(P["eigenvector"], P["subspace"] + P["neighbours"], rtol=1e-14)
    assert np.all(P["neighbours"] > 0)
    # one direction: no neighbours; the weak-feature limit lambda -> 0 gives the plain BBP form (D - d1)/(2 lambda^2)
    one = th.overlap_prefactors([1.0], 10)
    assert one["neighbours"][0] == 0 and one["subspace"][0] == pytest.approx(9 * 5 / 2)
    weak = th.overlap_prefactors([1e-4, -2e-4], 1000)["subspace"]
    np.testing.assert_allclose(weak, 998 / (2 * np.array([1e-4, -2e-4]) ** 2), rtol=1e-6)
    # equal weights: degenerate spikes, the eigenvector term is infinite; opposite signs are not degenerate
    assert np.all(np.isinf(th.overlap_prefactors([0.5, 0.5], 10)["eigenvector"]))
    assert np.all(np.isfinite(th.overlap_prefactors([0.5, -0.5], 10)["eigenvector"]))
    for bad in ([], [0.0, 1.0], [[0.5]]):
        with pytest.raises(ValueError):
            th.overlap_prefactors(bad, 10)
    with pytest.raises(ValueError):
        th.overlap_prefactors([0.5, 0.5], 1)


# --- chapter 4: the continuous count and the two layers' errors ------------------------------------------------
@pytest.mark.parametrize("gamma", [0.4, 1.0, 1.5])
def test_continuum_count_is_the_staircase_off_the_steps(gamma):
    kw = dict(d=16, gamma=gamma, eps=math.log(40.5) / math.log(16), q=2)
    n = np.geomspace(100, 1e7, 400)
    m = th.continuum_count(n, **kw)
    d1 = th.first_layer_width(16, kw["eps"])
    off_steps = np.abs(m - np.round(m)) > 1e-9
    np.testing.assert_array_equal(np.minimum(np.floor(m), d1)[off_steps],
                                  th.recovered_count(n, **kw, convention="bbp")[off_steps])
    n1 = th.recovery_thresholds(**kw)[0]
    assert th.continuum_count(n1, **kw) == pytest.approx(1.0)
    assert th.continuum_count(n1 * 2 ** (2 * gamma), **kw) == pytest.approx(2.0)
    if gamma > 0.5:  # the continuum law is the tail with this m
        Z2 = th.power_law_normalisation(d1, gamma) ** 2
        np.testing.assert_allclose(th.mse_asymptotic(n, **kw), Z2 * m ** (1 - 2 * gamma) / (2 * gamma - 1),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        th.continuum_count(n, **{**kw, "gamma": 0.0})
    with pytest.raises(ValueError, match="n must be"):
        th.continuum_count(0.5, **kw)


def _ge_setup(seed=3):
    """A GE target (d = 8, d1 = 3), an estimated-looking basis (each row mostly one direction, tilted towards
    another and towards noise) and an orthonormal basis whose first 3 rows span the directions."""
    t = hm.HierarchicalTarget(8, eps=math.log(3.5) / math.log(8), gamma=0.5, rng=seed)
    rng = np.random.default_rng(seed + 1)
    A = t.directions
    tilted = A + 0.5 * np.roll(A, 1, axis=0) + 0.8 * rng.standard_normal((3, t.D)) / math.sqrt(t.D)
    basis = np.linalg.qr(tilted.T)[0].T
    Q_all = np.linalg.qr(np.vstack([A, rng.standard_normal((4, t.D))]).T)[0].T
    return t, basis, Q_all


def test_ideal_readout_error_is_the_best_predictor_on_the_estimated_span():
    t, basis, Q_all = _ge_setup()
    A, lam = t.directions, t.weights
    F, y = t.sample(200_000, np.random.default_rng(5), model="gaussian-equivalent")
    PA = A @ basis.T @ basis  # rows P a_i
    best = (lam * ((F @ PA.T) ** 2 - np.sum(PA**2, axis=1))).sum(axis=1) / math.sqrt(2)  # E[y | P F]
    res = (y - best) ** 2
    exact = th.ideal_readout_error(A, lam, basis)
    assert abs(res.mean() - exact) < 4 * res.std() / math.sqrt(res.size)
    assert 0 < exact < 1
    # limits: the true span leaves nothing, an orthogonal span everything; one tilted direction is diagonal
    assert th.ideal_readout_error(A, lam, Q_all[:3]) == pytest.approx(0.0, abs=1e-12)
    assert th.ideal_readout_error(A, lam, Q_all[3:]) == pytest.approx(1.0, abs=1e-12)
    tilt = np.cos(0.6) * A[:1] + np.sin(0.6) * Q_all[3:4]
    for diagonal in (False, True):
        value = th.ideal_readout_error(A, lam, tilt, diagonal=diagonal)
        assert value == pytest.approx(1 - lam[0] ** 2 * np.cos(0.6) ** 4, abs=1e-12)
    # the diagonal form drops the cross terms only
    c = ((A @ basis.T) ** 2).sum(axis=1)
    assert th.ideal_readout_error(A, lam, basis, diagonal=True) == pytest.approx(np.sum(lam**2 * (1 - c**2)))


def test_eigenvalue_readout_error_is_the_best_affine_readout_of_h2_hat():
    t, basis, Q_all = _ge_setup()
    A, lam = t.directions, t.weights
    mu = t.weights + 0.1  # eigenvalue-like weights, not the true ones
    F, y = t.sample(200_000, np.random.default_rng(6), model="gaussian-equivalent")
    h2_hat = (mu * ((F @ basis.T) ** 2 - 1)).sum(axis=1)
    r = np.corrcoef(y, h2_hat)[0, 1]
    mse = 1 - r**2  # best affine readout of h2_hat, standardised labels
    assert th.eigenvalue_readout_error(A, lam, basis, mu) == pytest.approx(mse, abs=0.01)
    # the true directions weighted by the true weights: nothing left
    assert th.eigenvalue_readout_error(A, lam, A, lam) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="eigenvalues"):
        th.eigenvalue_readout_error(A, lam, basis, np.zeros(3))
    with pytest.raises(ValueError, match="orthonormal rows"):
        th.ideal_readout_error(A, lam, 2 * basis)
    with pytest.raises(ValueError, match="orthonormal directions"):
        th.ideal_readout_error(2 * A, lam, basis)
    with pytest.raises(ValueError, match="need directions"):
        th.ideal_readout_error(A, lam[:2], basis)


def test_second_layer_cumulant_is_exact():
    """The Leonov–Shiryaev cumulants of h2 equal exact Gaussian integration (SymPy) and h2_variance."""
    import sympy as sp

    from hiermodel.symbolic import gaussian_expectation

    x = sp.symbols("x0:2", real=True)
    xv = sp.Matrix(x)
    A = [sp.Matrix([[1, 2], [2, -1]]) / 3, sp.Matrix([[0, 1], [1, 2]]) / 2]  # any Frobenius norm
    lam = [sp.Rational(3, 5), sp.Rational(-4, 5)]
    Q = [(xv.T * a * xv)[0] - a.trace() for a in A]
    h2 = sum(l_ * (q_**2 - gaussian_expectation(q_**2, x)) for l_, q_ in zip(lam, Q)) / (2 * sp.sqrt(2))
    m2, m3, m4 = (gaussian_expectation(h2**k, x) for k in (2, 3, 4))
    M, w = np.array([np.array(a, dtype=float) for a in A]), np.array(lam, dtype=float)
    assert th.second_layer_cumulant(M, w, 2) == pytest.approx(float(m2), rel=1e-12)
    assert th.second_layer_cumulant(M, w, 3) == pytest.approx(float(m3), rel=1e-12)
    assert th.second_layer_cumulant(M, w, 4) == pytest.approx(float(m4 - 3 * m2**2), rel=1e-12)
    target = hm.HierarchicalTarget(12, gamma=0.4, rng=3)
    assert th.second_layer_cumulant(target.direction_matrices(), target.weights, 2) == pytest.approx(
        target.h2_variance(), rel=1e-12)
    with pytest.raises(ValueError):
        th.second_layer_cumulant(M, w, 5)
    with pytest.raises(ValueError):
        th.second_layer_cumulant(M[:, :, :1], w, 3)


def test_mse_prediction_strong_brackets_b2():
    kw = dict(d=16, gamma=1.0, eps=math.log(40) / math.log(16), q=2)
    n = np.geomspace(300, 1e6, 30)
    b2 = th.mse_prediction(n, **kw, refined=True)
    strong = th.mse_prediction_strong(n, **kw)
    d1, D = th.first_layer_width(16, kw["eps"]), hm.feature_dimension(16, 2)
    lam2 = th.weight_magnitudes(d1, 1.0) ** 2
    nst = th.recovery_thresholds(**kw)
    P = (1 + 4 * lam2) * (1 - d1 / D) * nst  # direct loop form
    direct = [sum(l2 * (1 - (max(0.0, 1 - p / x) if x > t else 0.0) ** 2) for l2, p, t in zip(lam2, P, nst))
              for x in n]
    assert np.allclose(strong, direct, rtol=1e-12)
    assert np.all(strong <= 1 + 1e-12) and np.all(strong >= 0)
    early = n < 1.5e4  # while the strong directions carry the error, their larger prefactor raises it
    assert np.all(strong[early] >= b2[early])
    big = 1e9  # far above every threshold: 2 sum lambda_i^2 P_i / n
    assert th.mse_prediction_strong(big, **kw) == pytest.approx(2 * np.sum(lam2 * P) / big, rel=1e-3)


def test_weighted_covariance_edges_limits():
    # Rademacher weights: E w = 0, E w^2 = 1; small ratio -> semicircle edges -+ 2 sqrt(ratio)
    w = np.tile([-1.0, 1.0], 500)
    low, up = th.weighted_covariance_edges(ratio=1e-4, weights=w)
    assert up == pytest.approx(0.02, rel=1e-3) and low == pytest.approx(-0.02, rel=1e-3)
    # w = 1 (with a tiny negative atom so both branches exist): the Marchenko-Pastur edges (1 +- sqrt c)^2 - 1
    w = np.concatenate([np.ones(100_000), [-1e-9]])
    c = 0.25
    low, up = th.weighted_covariance_edges(ratio=c, weights=w)
    assert up == pytest.approx((1 + math.sqrt(c)) ** 2 - 1, rel=1e-4)
    assert low == pytest.approx((1 - math.sqrt(c)) ** 2 - 1, rel=1e-3)
    with pytest.raises(ValueError):
        th.weighted_covariance_edges(ratio=0.1, weights=np.ones(10))


def test_weighted_covariance_edges_match_spectrum():
    rng = np.random.default_rng(0)
    D, n = 300, 3000
    w = rng.choice([-1.0, 1.0], n) * rng.exponential(1.0, n)
    G = rng.standard_normal((n, D))
    ev = np.linalg.eigvalsh((G.T * w) @ G / n - w.mean() * np.eye(D))
    low, up = th.weighted_covariance_edges(ratio=D / n, weights=w)
    # the extreme eigenvalues sit at or a few percent inside the edges (the outer components hold ~1 eigenvalue)
    assert 0.85 * up < ev.max() < 1.02 * up and 0.85 * abs(low) < abs(ev.min()) < 1.02 * abs(low)


def test_weighted_covariance_outlier_bbp_limit_and_simulation():
    rng = np.random.default_rng(1)
    n = 200_000
    y = rng.choice([-1.0, 1.0], n)
    h = rng.standard_normal(n)  # independent of y: BBP s + ratio / s in the small-ratio limit
    s, c = 0.8, 0.01
    assert th.weighted_covariance_outlier(s, ratio=c, labels=y, projections=h) == pytest.approx(s + c / s, rel=2e-3)
    assert math.isnan(th.weighted_covariance_outlier(0.05, ratio=c, labels=y, projections=h))  # below threshold
    # a coupled spike in the Gaussian-equivalent model: the largest eigenvalue of C_hat
    t = hm.HierarchicalTarget(20, eps=0.3, gamma=0.0, rng=0)
    F, y = t.sample(8 * t.D, 3, model="gaussian-equivalent")
    C = (F.T * y) @ F / len(y) - y.mean() * np.eye(t.D)
    h = F @ t.directions[0]
    spike = float(np.mean(y * (h**2 - 1)))
    top = np.linalg.eigvalsh(C)
    pred = th.weighted_covariance_outlier(spike, ratio=t.D / len(y), labels=y, projections=h)
    assert np.min(np.abs(top - pred)) < 0.03 * abs(pred)


def test_density_distance():
    x = np.linspace(-3, 3, 601)
    a = th.semicircle_density(x, radius=2.0)
    assert th.density_distance(x, a, a) == 0.0
    b = th.semicircle_density(x - 0.5, radius=2.0)
    assert th.density_distance(x, a, b) == pytest.approx(0.159, abs=0.005)  # ~ 0.5 / pi
    with pytest.raises(ValueError):
        th.density_distance(x, a, b[:-1])
