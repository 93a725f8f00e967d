"""Closed-form theory (SPEC §1, §3, §4): widths, power-law weights, thresholds, recovered counts, MSE laws."""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from ._checks import check_int, check_real


WIDTHS = ("floor", "round")
"""Width conventions: the paper's ``d1 = floor(d^eps)`` and the authors' experiment code's ``round(d^eps)``."""


def first_layer_width(d: int, eps: float, *, width: str = "floor") -> int:
    """``d1 = floor(d^eps)`` (SPEC §1, the paper; robust to rounding when ``d^eps`` is an integer), or
    ``round(d^eps)`` with ``width="round"`` (the authors' experiment code: 11 instead of 10 at ``d = 120``)."""
    d = check_int("d", d, minimum=1)
    eps = check_real("eps", eps, minimum=0.0, maximum=float("inf"))
    if width not in WIDTHS:
        raise ValueError(f"unknown width convention {width!r}: use one of {WIDTHS}")
    if width == "round":
        return int(math.floor(d**eps + 0.5))
    return int(math.floor(d**eps * (1.0 + 1e-12)))


def width_exponent(d: int, d1: int) -> float:
    """The ``eps`` with ``floor(d^eps) = d1`` (halfway between ``d1`` and ``d1 + 1``, away from rounding): how a
    width chosen directly, e.g. the authors' ``round(d^0.5)``, enters everything that takes ``(d, eps)``."""
    d, d1 = check_int("d", d, minimum=2), check_int("d1", d1, minimum=1)
    return math.log(d1 + 0.5) / math.log(d)


def harmonic_number(N: int, s: float) -> float:
    """Generalised harmonic number ``H_N(s) = sum_{i=1}^N i^(-s)``."""
    N = check_int("N", N, minimum=1)
    s = check_real("s", s)
    return float(np.sum(np.arange(1, N + 1, dtype=float) ** -s))


def power_law_normalisation(d1: int, gamma: float) -> float:
    """``Z_gamma = H_{d1}(2 gamma)^(-1/2)``, so that ``sum_i (Z_gamma i^-gamma)^2 = 1`` (SPEC §1)."""
    gamma = check_real("gamma", gamma, minimum=0.0)
    return harmonic_number(d1, 2.0 * gamma) ** -0.5


def weight_magnitudes(d1: int, gamma: float) -> np.ndarray:
    """``|lambda_i| = Z_gamma i^(-gamma)`` for ``i = 1..d1``."""
    d1 = check_int("d1", d1, minimum=1)
    return power_law_normalisation(d1, gamma) * np.arange(1, d1 + 1, dtype=float) ** -float(gamma)


# --- thresholds and scaling laws (SPEC §3, C2–C6; B1–B2) --------------------------------------------------------
# The formulas below are derived once with SymPy (the book's chapters re-derive and assert them) and lambdified,
# so the function a chapter plots is the expression it derived.
SYMBOLS = dict(zip("d k n gamma eps q s".split(),
                   sp.symbols("d k n gamma epsilon q s", positive=True)))
REGIMES = ("gamma = 0", "0 < gamma < 1/2", "gamma = 1/2", "gamma > 1/2")


def harmonic_asymptotic(regime: str):
    """Leading form of ``H_{d1}(2 gamma) = Z_gamma^-2`` as ``d1 -> oo`` in a regime of :data:`REGIMES`."""
    d1, g = sp.Symbol("d_1", positive=True), SYMBOLS["gamma"]
    forms = {"gamma = 0": d1, "0 < gamma < 1/2": d1 ** (1 - 2 * g) / (1 - 2 * g), "gamma = 1/2": sp.log(d1),
             "gamma > 1/2": sp.zeta(2 * g)}
    if regime not in forms:
        raise ValueError(f"unknown regime {regime!r}; use one of {REGIMES}")
    return forms[regime].subs(g, 0) if regime == "gamma = 0" else forms[regime]


def threshold_sample_size():
    """The paper's heuristic threshold of direction k (Eq. 2.10, C2): ``n_k = d^q k^(2 gamma) / Z_gamma^2``.

    Returned with ``Z_gamma^-2`` left as the symbol ``H`` (``= H_{d1}(2 gamma)``).
    """
    d, k, g, q = (SYMBOLS[x] for x in ("d", "k", "gamma", "q"))
    return d**q * k ** (2 * g) * sp.Symbol("H", positive=True)


@functools.lru_cache(maxsize=None)
def threshold_exponent_expressions() -> dict:
    """``kappa(s) = lim_{d -> oo} log n_k / log d`` with ``k = d1^s``, ``d1 = d^eps``, per regime (C6)."""
    d, g, eps, s = (SYMBOLS[x] for x in ("d", "gamma", "eps", "s"))
    out = {}
    for regime in REGIMES:
        H = harmonic_asymptotic(regime).subs(sp.Symbol("d_1", positive=True), d**eps)
        n_k = threshold_sample_size().subs({sp.Symbol("H", positive=True): H, SYMBOLS["k"]: d ** (eps * s)})
        if regime == "gamma = 0":
            n_k = n_k.subs(g, 0)
        if regime == "gamma = 1/2":
            n_k = n_k.subs(g, sp.Rational(1, 2))
        ratio = sp.expand_log(sp.log(n_k), force=True) / sp.log(d)
        out[regime] = sp.simplify(sp.limit(ratio, d, sp.oo))
    return out


@functools.lru_cache(maxsize=None)
def _kappa_functions():
    args = [SYMBOLS[x] for x in ("s", "gamma", "eps", "q")]
    return {r: sp.lambdify(args, e, "numpy") for r, e in threshold_exponent_expressions().items()}


def regime(gamma: float) -> str:
    """Which of :data:`REGIMES` a value of gamma falls in."""
    gamma = check_real("gamma", gamma, minimum=0.0)
    if gamma == 0:
        return "gamma = 0"
    return "0 < gamma < 1/2" if gamma < 0.5 else ("gamma = 1/2" if gamma == 0.5 else "gamma > 1/2")


def threshold_exponent(s, *, gamma: float, eps: float, q: int):
    """The ``d -> oo`` exponent ``kappa`` of the threshold ``n = d^kappa`` of direction ``k = d1^s`` (C6).

    ``s`` in ``[0, 1]`` (scalar or array). Derived from the paper's heuristic ``n_k = d^q k^(2 gamma) / Z^2``;
    constant factors (the BBP factor 1/2, ``D ~ d^q / q!``) do not change ``kappa``.
    """
    s_arr = np.asarray(s, dtype=float)
    if not np.all(np.isfinite(s_arr)) or np.any((s_arr < 0) | (s_arr > 1)):
        raise ValueError(f"s must lie in [0, 1] (direction k = d1^s), got {s}")
    q = check_int("q", q, minimum=1)
    eps = check_real("eps", eps, minimum=0.0, open_min=True)
    f = _kappa_functions()[regime(gamma)]
    return f(s_arr, float(gamma), eps, q) + 0.0 * s_arr


CONVENTIONS = ("paper", "corollary", "bbp")


def _check_convention(convention):
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def recovery_thresholds(*, d: int, gamma: float, eps: float, q: int, convention: str = "bbp") -> np.ndarray:
    """Finite-d threshold sample sizes ``n_i`` of directions ``i = 1..d1``.

    ``"paper"``: ``n_i = d^q / lambda_i^2 = d^q i^(2 gamma) / Z^2``, Theorem 3.1's threshold as printed.
    ``"corollary"``: ``n_i = D / lambda_i^2 = D i^(2 gamma) / Z^2`` (Corollary 3.1 with ``D = binom(d+q-1, q)``;
    the paper's Eq. 2.10 writes ``d^q``, the same up to the constant ``q!``).
    ``"bbp"``: ``n_i* = D / (2 lambda_i^2)``, the constant-level spike-vs-edge (BBP) threshold of the
    Gaussian-equivalent model (SPEC B1).
    """
    from .hermite import feature_dimension

    _check_convention(convention)
    d1 = first_layer_width(d, eps)
    lam2 = weight_magnitudes(d1, gamma) ** 2
    scale = float(d) ** q if convention == "paper" else feature_dimension(d, q)
    return scale / lam2 / (2.0 if convention == "bbp" else 1.0)


def recovered_count(n, *, d: int, gamma: float, eps: float, q: int, convention: str = "corollary"):
    """``m_n``, the number of directions past their threshold at sample size ``n``, capped at ``d1`` (C4).

    With ``"corollary"`` this is ``min(d1, floor((Z^2 n / D)^(1/(2 gamma))))`` of Corollary 3.1; with ``"bbp"``
    the count of ``i`` with ``n > n_i*``. For ``gamma = 0`` every direction switches on at once.
    """
    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    thresholds = recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention=convention)
    return np.sum(n_arr[..., None] > thresholds, axis=-1)


def mse_exponent(gamma: float) -> float:
    """Data exponent ``beta = 1 - 1/(2 gamma)`` of ``MSE ~ (n / d^q)^(-beta)`` (Theorem 3.2, gamma > 1/2)."""
    gamma = check_real("gamma", gamma, minimum=0.0)
    if gamma <= 0.5:
        raise ValueError(f"the MSE follows a power law in n only for gamma > 1/2 (got gamma = {gamma}); for "
                         "gamma <= 1/2 see mse_prediction")
    return 1.0 - 1.0 / (2.0 * gamma)


def mse_prediction(n, *, d: int, gamma: float, eps: float, q: int, convention: str = "bbp", refined: bool = False):
    """Predicted test MSE (standardised labels) at sample size ``n``.

    ``refined=False``: the unrecovered tail ``sum_{n_i > n} lambda_i^2`` (paper Eq. 2.15). ``refined=True``: SPEC B2,
    ``sum_i lambda_i^2 [1 - (1 - n_i/n)_+^2]``, which adds the refinement error of recovered directions.
    """
    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    thresholds = recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention=convention)
    lam2 = weight_magnitudes(first_layer_width(d, eps), gamma) ** 2
    ratio = thresholds / n_arr[..., None]
    if refined:
        return np.sum(lam2 * (1.0 - np.clip(1.0 - ratio, 0.0, None) ** 2), axis=-1)
    return np.sum(lam2 * (ratio >= 1.0), axis=-1)


# --- the noise bulk of C_hat (C1) -------------------------------------------------------------------------------
def semicircle_density(x, *, radius: float):
    """Wigner semicircle of the given radius: the ``n >> D`` limit of the bulk of ``C_hat - E C_hat`` (C1).

    For ``C_hat = (1/n) sum y (F F^T - I)`` with ``E y^2 = 1`` the radius is ``2 sqrt(D / n)``.
    """
    radius = check_real("radius", radius, minimum=0.0, open_min=True)
    x = np.asarray(x, dtype=float)
    return np.where(np.abs(x) < radius, 2.0 / (np.pi * radius**2) * np.sqrt(np.clip(radius**2 - x**2, 0, None)), 0.0)


def weighted_covariance_density(x, *, ratio: float, weights, eta: float = 1e-3, iterations: int = 1500,
                                quantiles: int = 800):
    """Limiting spectral density of ``(1/n) sum_mu w_mu (G_mu G_mu^T - I)``, ``G ~ N(0, I_D)``, ``D / n -> ratio``.

    The Stieltjes transform solves ``m = 1 / (-z + E[w / (1 + ratio w m)])`` (Silverstein–Bai), solved here by
    damped fixed-point iteration at ``z = x + i eta`` with the expectation over ``quantiles`` quantiles of the sample
    ``weights``. This is the bulk of ``C_hat`` when ``n`` is comparable to ``D``; as ``ratio -> 0`` with ``E w = 0``,
    ``E w^2 = 1`` it tends to the semicircle of radius ``2 sqrt(ratio)``.
    """
    ratio = check_real("ratio", ratio, minimum=0.0, open_min=True)
    w = np.asarray(weights, dtype=float).ravel()
    if w.size < 2 or not np.all(np.isfinite(w)):
        raise ValueError("weights must be a finite sample of at least two label values")
    w = np.quantile(w, (np.arange(quantiles) + 0.5) / quantiles)
    z = np.asarray(x, dtype=float) + np.mean(w) + 1j * eta  # the "- I" in C_hat shifts the spectrum by -mean(w)
    m = np.full(z.shape, 1j)
    for _ in range(iterations):
        m = 0.5 * m + 0.5 / (-z + np.mean(w / (1.0 + ratio * w * m[..., None]), axis=-1))
    return m.imag / np.pi


# --- Theorem 3.2: continuum (Euler–Maclaurin leading-order) forms of the MSE sums (C5, B2, B3) ------------------
@functools.lru_cache(maxsize=None)
def mse_continuum_expressions() -> dict:
    """SymPy forms of the MSE sums with the sum over directions replaced by an integral (leading Euler–Maclaurin term).

    Symbols: ``m`` (recovered count, continuous), ``gamma``, ``Z2`` (``= Z_gamma^2``). With thresholds
    ``n_i = n_1 i^(2 gamma)`` the count is ``m = (n / n_1)^(1/(2 gamma))`` and a recovered direction has
    ``n_i / n = (i/m)^(2 gamma)``. Keys:

    - ``"tail"`` (gamma > 1/2): ``Z^2 int_m^oo i^(-2 gamma) di = Z^2 m^(1-2gamma) / (2gamma - 1)`` (Eq. 2.15, App. D);
    - ``"refined"`` (gamma > 1/2): SPEC B2, the tail plus ``Z^2 int_0^m i^(-2gamma) (2 r - r^2) di``,
      ``r = (i/m)^(2gamma)``; equals ``8 gamma^2 Z^2 m^(1-2gamma) / (4 gamma^2 - 1)``;
    - ``"small_gamma"`` (0 < gamma < 1/2): ``1 - Z^2 int_0^m i^(-2gamma) di = 1 - Z^2 m^(1-2gamma) / (1 - 2gamma)``;
    - ``"half"`` (gamma = 1/2, SPEC B3): ``1 - Z^2 int_1^m di / i = 1 - Z^2 ln m``.
    """
    g, m, i, Z2 = sp.symbols("gamma m i Z2", positive=True)
    u = sp.Symbol("u", positive=True)  # u = 1 - 2 gamma > 0 in the small-gamma regime
    r = (i / m) ** (2 * g)
    tail = Z2 * sp.integrate(i ** (-2 * g), (i, m, sp.oo), conds="none")
    refine = Z2 * sp.integrate(sp.expand(i ** (-2 * g) * (2 * r - r**2)), (i, 0, m), conds="none")
    small = 1 - Z2 * sp.integrate(i ** (u - 1), (i, 0, m)).subs(u, 1 - 2 * g)
    half = 1 - Z2 * sp.integrate(1 / i, (i, 1, m))
    return {"tail": sp.simplify(tail), "refined": sp.simplify(tail + refine), "small_gamma": small, "half": half}


@functools.lru_cache(maxsize=None)
def _mse_continuum_functions():
    g, m, Z2 = sp.symbols("gamma m Z2", positive=True)
    return {k: sp.lambdify((m, g, Z2), e, "numpy") for k, e in mse_continuum_expressions().items()}


def mse_asymptotic(n, *, d: int, gamma: float, eps: float, q: int, convention: str = "bbp", refined: bool = False):
    """Leading-order (continuum) form of :func:`mse_prediction`, lambdified from :func:`mse_continuum_expressions`.

    ``m = (n / n_1)^(1/(2 gamma))`` with ``n_1`` the threshold of direction 1 (``convention`` as in
    :func:`recovery_thresholds`) and the target's finite ``Z_gamma^2``. For gamma > 1/2 this is the pure power law
    ``C (n / n_1)^(-(1 - 1/(2 gamma)))`` of Theorem 3.2 (``refined=True``: SPEC B2's constant), valid for
    ``1 << m << d1``; for 0 < gamma <= 1/2 only the tail form exists (``1 - Z^2 m^(1-2gamma)/(1-2gamma)``, resp.
    ``1 - Z^2 ln m``), with ``m`` capped at ``d1``. ``refined=True`` with gamma <= 1/2 raises ``ValueError``.
    """
    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    gamma = check_real("gamma", gamma, minimum=0.0, open_min=True)
    if refined and gamma <= 0.5:
        raise ValueError("the refined continuum form (SPEC B2) is derived for gamma > 1/2 only")
    n1 = recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention=convention)[0]
    d1 = first_layer_width(d, eps)
    Z2 = power_law_normalisation(d1, gamma) ** 2
    m = (n_arr / n1) ** (1.0 / (2.0 * gamma))
    f = _mse_continuum_functions()
    if gamma > 0.5:
        return f["refined" if refined else "tail"](m, gamma, Z2) + 0.0 * n_arr
    m = np.clip(m, 1.0, d1)
    key = "half" if gamma == 0.5 else "small_gamma"
    return np.clip(f[key](m, gamma, Z2), 0.0, 1.0) + 0.0 * n_arr


# --- exponent of the recovered count (C4, Corollary 3.1, at the scale of powers of d) ---------------------------
@functools.lru_cache(maxsize=None)
def recovered_count_exponent_expressions() -> dict:
    """``sigma(kappa) = lim_{d -> oo} log m_n / log d1`` at ``n = d^kappa`` (before capping to ``[0, 1]``), per regime.

    Derived from Corollary 3.1, ``m_n = (Z_gamma^2 n / d^q)^(1/(2 gamma))``, with the asymptotics of
    :func:`harmonic_asymptotic` and ``d1 = d^eps``. ``gamma = 0`` is absent: every direction switches on at once
    (the ``gamma -> 0+`` limit of the ``0 < gamma < 1/2`` expression is a step at ``kappa = q + eps``).
    """
    d, g, eps, q = (SYMBOLS[x] for x in ("d", "gamma", "eps", "q"))
    kappa, d1 = sp.Symbol("kappa", positive=True), sp.Symbol("d_1", positive=True)
    out = {}
    for regime in REGIMES[1:]:
        H = harmonic_asymptotic(regime).subs(d1, d**eps)
        m_n = (d**kappa / (H * d**q)) ** (1 / (2 * g))
        if regime == "gamma = 1/2":
            m_n = m_n.subs(g, sp.Rational(1, 2))
        ratio = sp.expand_log(sp.log(m_n), force=True) / (eps * sp.log(d))
        out[regime] = sp.simplify(sp.limit(ratio, d, sp.oo))
    return out


@functools.lru_cache(maxsize=None)
def _sigma_functions():
    args = [sp.Symbol("kappa", positive=True)] + [SYMBOLS[x] for x in ("gamma", "eps", "q")]
    return {r: sp.lambdify(args, e, "numpy") for r, e in recovered_count_exponent_expressions().items()}


def recovered_count_exponent(kappa, *, gamma: float, eps: float, q: int):
    """The ``d -> oo`` exponent ``sigma`` of ``m_n = d1^sigma`` at ``n = d^kappa`` (C4), capped to ``[0, 1]``.

    The inverse of :func:`threshold_exponent` on ``(0, 1)``: direction ``k = d1^s`` is recovered once
    ``kappa > kappa(s)``. For ``gamma = 0`` it is 0 below ``kappa = q + eps`` and 1 above.
    """
    k_arr = np.asarray(kappa, dtype=float)
    if not np.all(np.isfinite(k_arr)):
        raise ValueError(f"kappa must be finite, got {kappa}")
    q = check_int("q", q, minimum=1)
    eps = check_real("eps", eps, minimum=0.0, open_min=True)
    r = regime(gamma)
    if r == "gamma = 0":
        return np.where(k_arr > q + eps, 1.0, 0.0) + 0.0 * k_arr
    return np.clip(_sigma_functions()[r](k_arr, float(gamma), eps, q) + 0.0 * k_arr, 0.0, 1.0)


def kolmogorov_distance(eigs, x, density) -> float:
    """Kolmogorov distance ``sup |F_N - F|`` between the empirical distribution of ``eigs`` and a tabulated density.

    ``density`` is given on the increasing grid ``x`` (e.g. :func:`semicircle_density` or
    :func:`weighted_covariance_density`); its CDF ``F`` is the trapezoidal integral, normalised to 1 over the grid.
    ``F_N`` is taken at the mid-steps ``(j + 1/2) / N`` of the sorted ``eigs``. Values outside the grid get
    ``F = 0`` or ``1``, so the grid must cover the sample for a meaningful distance.
    """
    eigs = np.sort(np.asarray(eigs, dtype=float).ravel())
    x = np.asarray(x, dtype=float)
    density = np.asarray(density, dtype=float)
    if eigs.size < 1 or not np.all(np.isfinite(eigs)):
        raise ValueError("eigs must be a non-empty array of finite values")
    if x.ndim != 1 or x.size < 2 or density.shape != x.shape or not np.all(np.diff(x) > 0):
        raise ValueError(f"x must be an increasing 1-D grid and density of the same shape, got {x.shape}, "
                         f"{density.shape}")
    if not (np.all(np.isfinite(density)) and np.all(density >= 0)):
        raise ValueError("density must be finite and non-negative")
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(x))])
    if not cdf[-1] > 0:
        raise ValueError("density has no mass on the grid")
    cdf /= cdf[-1]
    return float(np.abs(np.interp(eigs, x, cdf) - (np.arange(eigs.size) + 0.5) / eigs.size).max())


# --- Theorem 3.2 at finite n: the count m, and the errors of the two layers (chapter 4; C5, B2) --------------------
def continuum_count(n, *, d: int, gamma: float, eps: float, q: int, convention: str = "bbp"):
    """The recovered count as a continuous number, ``m = (n / n_1)^(1/(2 gamma))``, not capped at ``d1``.

    ``n_1`` is the threshold of direction 1 in ``convention`` (:func:`recovery_thresholds`; ``"bbp"``:
    ``n_1* = D / (2 Z^2)``). Direction ``i`` is past its threshold ``n_i = n_1 i^(2 gamma)`` exactly when
    ``m > i``, so ``min(d1, floor(m))`` is the staircase of :func:`recovered_count` (off the steps). This is the
    ``m`` of the continuum laws (:func:`mse_asymptotic`); chapter 4 fixes its fit windows by it.
    """
    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    gamma = check_real("gamma", gamma, minimum=0.0, open_min=True)
    n1 = recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention=convention)[0]
    return (n_arr / n1) ** (1 / (2 * gamma)) + 0.0 * n_arr


def _two_layer_inputs(directions, weights, basis):
    A = np.asarray(directions, dtype=float)
    lam = np.asarray(weights, dtype=float)
    Q = np.asarray(basis)
    if A.ndim != 2 or lam.shape != (A.shape[0],) or Q.ndim != 2 or Q.shape[1] != A.shape[1]:
        raise ValueError(f"need directions (d1, D), weights (d1,) and basis (k, D); got {A.shape}, {lam.shape}, "
                         f"{Q.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(lam)) and np.all(np.isfinite(Q))):
        raise ValueError("directions, weights and basis must be finite")
    if np.abs(A @ A.T - np.eye(A.shape[0])).max() > 1e-6 or abs(float(lam @ lam) - 1.0) > 1e-6:
        raise ValueError("the formulas assume orthonormal directions and sum_i weights_i^2 = 1")
    if np.abs(Q @ Q.T - np.eye(Q.shape[0])).max() > 1e-4:
        raise ValueError("basis must have orthonormal rows (the estimated directions)")
    return A, lam, Q


def ideal_readout_error(directions, weights, basis, *, diagonal: bool = False) -> float:
    """First-layer error: the test MSE of the best predictor of ``y`` built on the estimated features.

    Gaussian-equivalent model, ``g = id``: ``y = (1/sqrt 2) sum_i lambda_i (h_i^2 - 1)``, ``h_i = <a_i, F>``,
    ``F ~ N(0, I_D)``. With ``P`` the projector on the span of the rows of ``basis``,
    ``E[y | P F] = (1/sqrt 2) sum_i lambda_i (<P a_i, F>^2 - |P a_i|^2)`` and, by Isserlis
    (``Cov(u^2, v^2) = 2 Cov(u, v)^2``), its error is ``1 - sum_{i,j} lambda_i lambda_j <P a_i, P a_j>^2``.

    Parameters
    ----------
    directions : array (d1, D)
        Orthonormal true directions ``a_i`` (a target's ``directions``).
    weights : array (d1,)
        Signed second-layer weights, ``sum_i lambda_i^2 = 1``.
    basis : array (k, D)
        Orthonormal rows spanning the estimated first layer (an estimator's ``directions_``).
    diagonal : bool
        Drop the cross terms ``i != j``: ``sum_i lambda_i^2 (1 - cos^4 theta_i)`` with
        ``cos^2 theta_i = |P a_i|^2``, the form the sweeps record (:func:`hiermodel.tables.first_layer_error`).

    Returns
    -------
    float
        The error on standardised labels (``Var y = 1``).
    """
    A, lam, Q = _two_layer_inputs(directions, weights, basis)
    if diagonal:
        cos2 = ((A @ Q.T) ** 2).sum(axis=1)
        return float(np.sum(lam**2 * (1 - cos2**2)))
    PA = A @ Q.T @ Q
    return float(1 - lam @ ((PA @ PA.T) ** 2) @ lam)


def eigenvalue_readout_error(directions, weights, basis, eigenvalues) -> float:
    """Test MSE of the best affine readout of Algorithm 1's second layer without sample splitting.

    Then ``A2_hat = diag(mu_1, ..., mu_k)`` (the selected eigenvalues of ``C_hat``), so the learned second-layer
    feature is ``h2_hat = sum_j mu_j (h_hat_j^2 - 1)``, ``h_hat_j = <q_j, F>``. In the Gaussian-equivalent model
    (``g = id``), with ``c_ij = <a_i, q_j>^2``, ``Cov(y, h2_hat) = sqrt 2 sum_ij lambda_i c_ij mu_j`` and
    ``Var h2_hat = 2 sum_j mu_j^2``, so the best affine readout leaves
    ``1 - (sum_ij lambda_i c_ij mu_j)^2 / sum_j mu_j^2``.

    Parameters
    ----------
    directions, weights, basis
        As in :func:`ideal_readout_error` (``basis`` rows ``q_j``).
    eigenvalues : array (k,)
        The weights ``mu_j`` of ``h2_hat`` (the estimator's ``eigenvalues_``), not all zero.
    """
    A, lam, Q = _two_layer_inputs(directions, weights, basis)
    mu = np.asarray(eigenvalues, dtype=float)
    if mu.shape != (Q.shape[0],) or not np.all(np.isfinite(mu)) or not np.any(mu):
        raise ValueError(f"eigenvalues must be {Q.shape[0]} finite values, not all zero; got shape {mu.shape}")
    c = (A @ Q.T) ** 2
    return float(1 - (lam @ c @ mu) ** 2 / np.sum(mu**2))


# --- constant-level prefactors of the 1/n law (chapter 3, Eq. 3.2; SPEC B1) ------------------------------------
def overlap_prefactors(weights, D: int) -> dict:
    """Prefactors ``P_k`` of the first-order loss ``1 - cos^2 ~ P_k / n`` above threshold (GE model, ``g = id``).

    From the first-order resolvent expansion (paper Eq. 3.2) with spikes ``rho_i = sqrt(2) lambda_i`` and the noise
    variances ``E[y^2 h_k^2] = 1 + 4 lambda_k^2`` (bulk entries) and
    ``E[y^2 h_j^2 h_k^2] = 1 + 4 lambda_j^2 + 4 lambda_k^2 + 4 lambda_j lambda_k`` (entries between two spikes),
    derived in chapter 3:

    - ``"subspace"``: the loss of direction ``k`` to the ``D - d1`` bulk directions,
      ``P_k = (D - d1) (1 + 4 lambda_k^2) / (2 lambda_k^2) = (1 + 4 lambda_k^2)(1 - d1/D) n_k*``: the prefactor of
      the per-direction ``1 - cos^2 theta_k`` (overlap with the learned span);
    - ``"neighbours"``: the loss of the ``k``-th eigenvector to the other spikes,
      ``sum_{j != k} E[y^2 h_j^2 h_k^2] / (rho_k - rho_j)^2``;
    - ``"eigenvector"``: their sum, the prefactor of Theorem 3.1's ``1 - <u_k, a_k>^2``.

    Parameters
    ----------
    weights : array_like (d1,)
        The signed second-layer weights ``lambda_i`` (``target.weights``), nonzero.
    D : int
        Feature dimension, ``D >= d1``.

    Returns
    -------
    dict of ndarray (d1,)
        ``subspace``, ``neighbours``, ``eigenvector``; a neighbour term is ``inf`` where two weights are equal
        (degenerate spikes, e.g. ``gamma = 0`` with equal signs: the eigenvectors are not determined).
    """
    lam = np.asarray(weights, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or not np.all(np.isfinite(lam)) or np.any(lam == 0):
        raise ValueError(f"weights must be a 1-D array of finite nonzero values, got {weights!r}")
    D = check_int("D", D, minimum=lam.size)
    subspace = (D - lam.size) * (1.0 + 4.0 * lam**2) / (2.0 * lam**2)
    lk, lj = lam[:, None], lam[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        pair = (1.0 + 4.0 * lj**2 + 4.0 * lk**2 + 4.0 * lj * lk) / (2.0 * (lk - lj) ** 2)
    pair[np.eye(lam.size, dtype=bool)] = 0.0
    pair[~np.isfinite(pair)] = np.inf
    neighbours = pair.sum(axis=1)
    return {"subspace": subspace, "neighbours": neighbours, "eigenvector": subspace + neighbours}


# --- Eq. 3.2 against Davis-Kahan: gap-based bounds on 1 - <u_k, a_k>^2 (chapter 3) ----------------------------
DAVIS_KAHAN_FORMS = ("yws", "dk", "residual", "first_order")
"""The bounds of :func:`davis_kahan_bounds`: Yu-Wang-Samworth, classical Davis-Kahan with Weyl, the residual
(``||Delta a_k||``) form, and the first-order prediction of Eq. 3.2 that they are compared with."""


def _signed_weights(weights):
    lam = np.asarray(weights, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or not np.all(np.isfinite(lam)) or np.any(lam == 0):
        raise ValueError(f"weights must be a 1-D array of finite nonzero values, got {weights!r}")
    return lam


def spike_gaps(weights, D: int) -> np.ndarray:
    """Eigen-gap ``delta_k`` of each spike of ``E C_hat`` (GE model, ``g = id``): the distance from
    ``rho_k = sqrt(2) lambda_k`` to the nearest *other* eigenvalue of ``E C_hat`` -- the other spikes and, when
    ``D > d1``, the bulk eigenvalue 0 (multiplicity ``D - d1``). The gap that every Davis-Kahan bound divides by.

    ``weights``: the signed ``lambda_i`` (``target.weights``), nonzero; ``D >= d1``. Equal weights give a gap 0.
    """
    lam = _signed_weights(weights)
    D = check_int("D", D, minimum=lam.size)
    rho = math.sqrt(2.0) * lam
    dist = np.abs(rho[:, None] - rho[None, :])
    dist[np.eye(lam.size, dtype=bool)] = np.inf
    gaps = dist.min(axis=1) if lam.size > 1 else np.full(1, np.inf)
    if D > lam.size:
        gaps = np.minimum(gaps, np.abs(rho))
    return gaps


def residual_norms(weights, D: int) -> np.ndarray:
    """``n E||Delta a_k||^2`` in the GE model (``g = id``, unit-variance labels): the ``D - d1`` bulk entries
    ``1 + 4 lambda_k^2``, the entries to the other spikes ``1 + 4 lambda_j^2 + 4 lambda_k^2 + 4 lambda_j lambda_k``
    and the diagonal ``Var[y (h_k^2 - 1)] = 2 + 26 lambda_k^2`` (Isserlis; derived in chapter 3)."""
    lam = _signed_weights(weights)
    D = check_int("D", D, minimum=lam.size)
    lk, lj = lam[:, None], lam[None, :]
    pair = 1.0 + 4.0 * lj**2 + 4.0 * lk**2 + 4.0 * lj * lk
    pair[np.eye(lam.size, dtype=bool)] = 0.0
    return (D - lam.size) * (1.0 + 4.0 * lam**2) + pair.sum(axis=1) + 2.0 + 26.0 * lam**2


def davis_kahan_bounds(weights, D: int, n) -> dict:
    """Gap-based bounds on ``1 - <u_k, a_k>^2 = sin^2`` (GE model, ``g = id``) next to Eq. 3.2's first order.

    The noise enters through its typical operator norm, the semicircle edge ``||Delta||_op ~ 2 sqrt(D/n)``
    (entries of variance ``1/n``), and ``||Delta a_k||`` through :func:`residual_norms`; ``delta_k`` is
    :func:`spike_gaps`. Strong features (``1 + 4 lambda_1^2 > 2``) push ``||Delta||_op`` above the edge, so there
    these values understate the true bounds (they are optimistic for Davis-Kahan). With ``e = 2 sqrt(D/n)``:

    - ``"yws"``: Yu-Wang-Samworth, ``sin <= 2 e / delta_k`` (population gap only);
    - ``"dk"``: Davis-Kahan with Weyl's inequality, ``sin <= e / (delta_k - e)`` while ``e < delta_k``;
    - ``"residual"``: Davis-Kahan's residual form, ``sin <= ||Delta a_k|| / (delta_k - e)``: the sharpest
      gap-based form here (the norm of one column of ``Delta`` instead of the whole operator norm);
    - ``"first_order"``: Eq. 3.2's ``P_k / n`` with the eigenvector prefactor of :func:`overlap_prefactors`
      (an estimate, not a bound).

    The three bounds are capped at 1 (a vacuous bound says nothing). ``n``: a sample size or an array of them;
    returns arrays of shape ``n.shape + (d1,)`` under the keys of :data:`DAVIS_KAHAN_FORMS` plus ``"noise"``
    (``e``, shape ``n.shape + (1,)``).
    """
    lam = _signed_weights(weights)
    D = check_int("D", D, minimum=lam.size)
    n_arr = np.asarray(n, dtype=float)
    if n_arr.size == 0 or not np.all(np.isfinite(n_arr)) or np.any(n_arr <= 0):
        raise ValueError(f"n must hold positive finite sample sizes, got {n!r}")
    n_col = n_arr[..., None]
    gap, R = spike_gaps(lam, D), residual_norms(lam, D)
    e = 2.0 * np.sqrt(D / n_col)
    with np.errstate(divide="ignore", invalid="ignore"):
        yws = np.minimum(1.0, (2.0 * e / gap) ** 2)
        room = gap - e
        dk = np.where(room > 0, np.minimum(1.0, (e / room) ** 2), 1.0)
        residual = np.where(room > 0, np.minimum(1.0, R / n_col / room**2), 1.0)
    first = overlap_prefactors(lam, D)["eigenvector"] / n_col
    return {"yws": yws, "dk": dk, "residual": residual, "first_order": first, "noise": e}


def davis_kahan_thresholds(weights, D: int) -> dict:
    """The sample size from which each form of :func:`davis_kahan_bounds` certifies ``<u_k, a_k>^2 >= 1/2``
    (``sin^2 <= 1/2``), per direction: ``"yws"`` ``32 D / delta_k^2``; ``"dk"`` ``4 (1 + sqrt 2)^2 D / delta_k^2``;
    ``"residual"`` ``(sqrt(2 n ||Delta a_k||^2) + 2 sqrt D)^2 / delta_k^2``; ``"first_order"`` ``2 P_k`` (Eq. 3.2).
    A zero gap gives ``inf``."""
    lam = _signed_weights(weights)
    D = check_int("D", D, minimum=lam.size)
    gap, R = spike_gaps(lam, D), residual_norms(lam, D)
    with np.errstate(divide="ignore"):
        inv = 1.0 / gap**2
    return {"yws": 32.0 * D * inv, "dk": 4.0 * (1.0 + math.sqrt(2.0)) ** 2 * D * inv,
            "residual": (np.sqrt(2.0 * R) + 2.0 * math.sqrt(D)) ** 2 * inv,
            "first_order": 2.0 * overlap_prefactors(lam, D)["eigenvector"]}


# --- exact label cumulants of the real model (q = 2) -------------------------------------------------------------
def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        for k in range(len(part)):
            yield part[:k] + [[first] + part[k]] + part[k + 1:]
        yield [[first]] + part


def _connected_partitions(order: int) -> list:
    """Partitions of the ``2 order`` positions ``(2m, 2m + 1) -> factor m`` without singletons whose blocks link
    all ``order`` factors (the Leonov–Shiryaev terms of a joint cumulant of products)."""
    found = []
    for part in _set_partitions(list(range(2 * order))):
        if any(len(block) < 2 for block in part):
            continue
        root = list(range(order))

        def find(a):
            while root[a] != a:
                a = root[a]
            return a

        for block in part:
            for p in block[1:]:
                root[find(p // 2)] = find(block[0] // 2)
        if len({find(m) for m in range(order)}) == 1:
            found.append([tuple(block) for block in part])
    return found


def second_layer_cumulant(matrices, weights, order: int) -> float:
    """Exact cumulant ``kappa_r(h2)`` of the real (Hermite) model's second layer for ``q = 2``, ``r = 2, 3, 4``.

    With ``Q_i = x^T A_i x - tr A_i = sqrt(2) h_i`` and ``h2 = sum_i lambda_i (Q_i^2 - E Q_i^2) / (2 sqrt 2)``,
    ``kappa_r(h2) = (2 sqrt 2)^(-r) sum_{i_1..i_r} lambda_{i_1} ... lambda_{i_r} kappa(Q_{i_1}^2, ..., Q_{i_r}^2)``.
    The joint cumulant of the products is the Leonov–Shiryaev sum over the partitions of the ``2 r`` factors that
    link all ``r`` products, of products of joint cumulants of Gaussian quadratic forms,
    ``kappa(Q_{a_1}, ..., Q_{a_b}) = 2^(b-1) sum_sigma tr(A_{a_1} A_{a_sigma(2)} ... A_{a_sigma(b)})`` over the
    orderings ``sigma`` of ``a_2..a_b`` (exact at every ``d``; no Gaussian equivalence). ``order = 2`` gives
    ``Var h2`` of :meth:`hiermodel.HierarchicalTarget.h2_variance`; ``order = 3`` the third cumulant, so the
    exact skewness of ``y = h2`` is ``kappa_3 / kappa_2^(3/2)``.

    Parameters
    ----------
    matrices : array_like (d1, d, d)
        The directions ``A_i`` as symmetric matrices (``target.direction_matrices()``), any Frobenius norm.
    weights : array_like (d1,)
        The signed second-layer weights ``lambda_i``.
    order : int
        2, 3 or 4.
    """
    import itertools

    M = np.asarray(matrices, dtype=float)
    lam = np.asarray(weights, dtype=float)
    if M.ndim != 3 or M.shape[1] != M.shape[2] or not np.allclose(M, np.swapaxes(M, 1, 2)):
        raise ValueError(f"matrices must be a stack of symmetric matrices (d1, d, d), got shape {M.shape}")
    if lam.shape != (M.shape[0],) or not np.all(np.isfinite(lam)):
        raise ValueError(f"weights must be finite with shape ({M.shape[0]},), got {lam.shape}")
    order = check_int("order", order, minimum=2)
    if order > 4:
        raise ValueError(f"order must be 2, 3 or 4, got {order}")
    partitions = _connected_partitions(order)
    cache = {}

    def block_cumulant(dirs):
        key = tuple(sorted(dirs))
        if key not in cache:
            first, rest = key[0], key[1:]
            total = 0.0
            for perm in itertools.permutations(rest):  # all (b - 1)! orderings, repeats included
                prod = M[first]
                for a in perm:
                    prod = prod @ M[a]
                total += np.trace(prod)
            cache[key] = 2.0 ** (len(key) - 1) * total
        return cache[key]

    total = 0.0
    for idx in itertools.product(range(lam.size), repeat=order):
        coeff = float(np.prod(lam[list(idx)]))
        if coeff == 0.0:
            continue
        term = 0.0
        for part in partitions:
            value = 1.0
            for block in part:
                value *= block_cumulant([idx[p // 2] for p in block])
            term += value
        total += coeff * term
    return float(total / (2.0 * math.sqrt(2.0)) ** order)


# --- B2 with the strong-feature prefactor of chapter 3 (chapter 4's finite-window band) -------------------------
def mse_prediction_strong(n, *, d: int, gamma: float, eps: float, q: int):
    """SPEC B2's sum with chapter 3's strong-feature prefactor in place of BBP's ``n_i* / n``.

    ``sum_i lambda_i^2 [1 - c_i^2]`` with ``c_i = (1 - P_i / n)_+`` for ``n > n_i*`` (else 0) and
    ``P_i = (1 + 4 lambda_i^2)(1 - d1 / D) n_i*`` (:func:`overlap_prefactors`, ``"subspace"``): the first-order
    loss of a direction far above its threshold, where B2 uses the GOE value ``n_i*``. Near a threshold BBP's form
    is the better one, so chapter 4 takes the band between the two sums as the finite-window prediction of the
    Gaussian-equivalent first-layer error (slopes and levels). The factor ``(1 + 4 lambda_i^2)(1 - d1/D)`` exceeds
    1 for the strong directions and can fall below 1 for weak ones, so the sum is above B2's while the strong
    directions carry the error and may fall below it late.
    """
    from .hermite import feature_dimension

    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    thresholds = recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention="bbp")
    d1 = first_layer_width(d, eps)
    lam2 = weight_magnitudes(d1, gamma) ** 2
    prefactor = (1.0 + 4.0 * lam2) * (1.0 - d1 / feature_dimension(d, q)) * thresholds
    nn = n_arr[..., None]
    cos2 = np.where(nn > thresholds, np.clip(1.0 - prefactor / nn, 0.0, None), 0.0)
    return np.sum(lam2 * (1.0 - cos2**2), axis=-1)


# --- the signed-weight (Silverstein–Bai) law at finite n: its edges and the outliers of coupled spikes (chapter 2) -
def _signed_weight_x(g, ratio, w):
    """``x(g) = 1/g + ratio g E[w^2 / (1 - ratio w g)]``: the inverse of ``g(x) = (1/D) tr (x - W)^(-1)`` outside
    the support of ``W = (1/n) sum_mu w_mu (G_mu G_mu^T - I)`` (chapter 2)."""
    return 1.0 / g + ratio * g * np.mean(w**2 / (1.0 - ratio * w * g))


def _signed_weight_branch(ratio, w, side):
    """``(edge, g_edge)`` of the upper (``side = +1``) or lower (``-1``) edge: the extremum of :func:`_signed_weight_x`
    on ``g in (0, 1 / (ratio w_max))`` (upper) or ``(1 / (ratio w_min), 0)`` (lower)."""
    from scipy.optimize import minimize_scalar

    extreme = w.max() if side > 0 else w.min()
    if side * extreme <= 0:
        raise ValueError("the weights must take both signs for a two-sided edge")
    pole = 1.0 / (ratio * extreme)  # g on (0, 1) * pole
    t = np.unique(np.concatenate([np.geomspace(1e-13, 0.5, 400), 1.0 - np.geomspace(1e-13, 0.5, 400)]))
    x = np.array([_signed_weight_x(s * pole, ratio, w) for s in t])
    k = int(np.argmin(side * x))
    lo, hi = t[max(k - 1, 0)], t[min(k + 1, t.size - 1)]
    best = minimize_scalar(lambda s: side * _signed_weight_x(s * pole, ratio, w), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-13})
    s = best.x if side * best.fun <= side * x[k] else t[k]
    return float(_signed_weight_x(s * pole, ratio, w)), float(s * pole)


def weighted_covariance_edges(*, ratio: float, weights) -> tuple:
    """``(lower, upper)`` edges of the support of the signed-weight law of :func:`weighted_covariance_density`.

    The law of ``W = (1/n) sum_mu w_mu (G_mu G_mu^T - I_D)``, ``D / n = ratio``, has ``g(x) = (1/D) tr (x - W)^(-1)``
    with inverse ``x(g) = 1/g + ratio g E[w^2 / (1 - ratio w g)]`` outside its support (Silverstein–Choi); the
    upper edge is the minimum of ``x(g)`` on ``0 < g < 1 / (ratio max w)``, the lower edge the maximum on
    ``1 / (ratio min w) < g < 0``. The expectation is over *all* the given weights (no quantiles), so the edges
    include the components that single large ``|w_mu|`` create: this is the finite-``n`` deterministic equivalent
    for those labels. The extreme eigenvalues of a draw lie at or inside these edges: where single large
    labels make the outer components, each holds about one eigenvalue, which sits a few percent inside (chapter
    2 measures it). As ``ratio -> 0`` with ``E w = 0``, ``E w^2 = 1`` the edges tend to ``-+ 2 sqrt(ratio)``.
    """
    ratio = check_real("ratio", ratio, minimum=0.0, open_min=True)
    w = np.asarray(weights, dtype=float).ravel()
    if w.size < 2 or not np.all(np.isfinite(w)):
        raise ValueError("weights must be a finite sample of at least two values")
    return _signed_weight_branch(ratio, w, -1)[0], _signed_weight_branch(ratio, w, +1)[0]


def weighted_covariance_outlier(spike: float, *, ratio: float, labels, projections) -> float:
    """Position of the outlier of one spike direction of ``C_hat`` in the Gaussian-equivalent model (chapter 2, B1).

    In the basis (``a``, its complement) ``C_hat = [[s, b^T], [b, W]]`` with the spike entry
    ``s = (1/n) sum y (h^2 - 1)``, the cross block ``b = (1/n) sum y h G`` and the signed-weight noise ``W``
    (``h = <a, F>``, ``G`` the complement coordinates). An eigenvalue ``x`` outside the bulk solves
    ``x - s = b^T (x - W)^(-1) b``; with the leave-one-out (Sherman–Morrison) step the right side concentrates on
    ``ratio E[y^2 h^2 g / (1 - ratio y g)]``, ``g = g(x)`` of :func:`weighted_covariance_edges`. With
    ``x = x(g)`` this is the scalar equation ``1/g = s + ratio g E[y^2 (h^2 - 1) / (1 - ratio y g)]`` on the
    outlier branch; it reduces to BBP's ``s + sigma^2 / s`` when ``ratio -> 0`` and ``h`` is independent of ``y``,
    and carries the coupling ``E[y^2 h^2] = 1 + 4 lambda^2`` of the labels to their own direction.

    Parameters
    ----------
    spike : float
        The spike entry ``s`` (e.g. the measured ``<a, C_hat a>``, or ``sqrt 2 lambda``).
    ratio : float
        ``D / n``.
    labels, projections : arrays (n,)
        The labels ``y_mu`` (as in ``C_hat``, not standardised) and ``h_mu = <a, F_mu>``; expectations are means
        over them.

    Returns
    -------
    float
        The outlier, or ``nan`` when the equation has no root on the outlier branch (no outlier: the spike is
        below the finite-``n`` threshold of this law).
    """
    from scipy.optimize import brentq

    ratio = check_real("ratio", ratio, minimum=0.0, open_min=True)
    spike = check_real("spike", spike)
    y = np.asarray(labels, dtype=float).ravel()
    h = np.asarray(projections, dtype=float).ravel()
    if y.size < 2 or h.shape != y.shape or not (np.all(np.isfinite(y)) and np.all(np.isfinite(h))):
        raise ValueError(f"labels and projections must be finite arrays of one length >= 2, got {y.shape}, {h.shape}")
    if spike == 0:
        return float("nan")
    g_edge = _signed_weight_branch(ratio, y, 1 if spike > 0 else -1)[1]
    coupling = y**2 * (h**2 - 1.0)

    def excess(g):
        return 1.0 / g - spike - ratio * g * np.mean(coupling / (1.0 - ratio * y * g))

    a, b = g_edge * 1e-12, g_edge * (1.0 - 1e-12)
    if np.sign(excess(a)) == np.sign(excess(b)):
        return float("nan")
    return float(_signed_weight_x(brentq(excess, a, b, xtol=1e-15, maxiter=500), ratio, y))


def density_distance(x, density_a, density_b) -> float:
    """Kolmogorov distance ``sup |F_a - F_b|`` between two densities tabulated on the increasing grid ``x``.

    Each CDF is the trapezoidal integral normalised to 1 over the grid, as in :func:`kolmogorov_distance`; e.g.
    the distance between :func:`semicircle_density` and :func:`weighted_covariance_density` at one ``D / n``.
    """
    x = np.asarray(x, dtype=float)
    cdfs = []
    for density in (density_a, density_b):
        density = np.asarray(density, dtype=float)
        if x.ndim != 1 or x.size < 2 or density.shape != x.shape or not np.all(np.diff(x) > 0):
            raise ValueError(f"x must be an increasing 1-D grid and each density of its shape, got {x.shape}, "
                             f"{density.shape}")
        if not (np.all(np.isfinite(density)) and np.all(density >= 0)):
            raise ValueError("densities must be finite and non-negative")
        cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(x))])
        if not cdf[-1] > 0:
            raise ValueError("a density has no mass on the grid")
        cdfs.append(cdf / cdf[-1])
    return float(np.abs(cdfs[0] - cdfs[1]).max())


# --- C8: the Hermite-degree (Wiener chaos) decomposition of the target ---------------------------------------------
def hermite_energies(target, *, model: str = "hermite") -> dict:
    """Fractions of ``E y^2`` (``= Var y``) in each Hermite degree of the target, exact at finite ``d``.

    Supported: ``q = 2`` and ``g = "id"`` (then ``y = h2`` is a polynomial of degree 4 in ``x`` with only even
    degrees, so the degrees are 0, 2, 4). Returns ``{0: E_0, 2: E_2, 4: E_4}`` as fractions summing to 1.

    Derivation (``x ~ N(0, I_d)``). Write ``I_2(M) = x^T M x - tr M`` for symmetric ``M`` (the degree-2 chaos
    element of ``M``), so ``h_i = I_2(M_i) / sqrt 2`` with ``M_i`` the direction matrices
    (``target.direction_matrices()``, ``|M_i|_F = |A_i| = 1``). The product formula for double Wiener integrals
    (equivalently Isserlis; checked in SymPy by the tests) gives, for symmetric ``M, N``,

        ``I_2(M) I_2(N) = J_4(M, N) + 4 I_2(M N) + 2 tr(M N)``,

    with ``J_4`` in the degree-4 chaos (orthogonal to every polynomial of degree <= 3) and
    ``I_2(MN) = x^T MN x - tr(MN)`` (``x^T MN x`` only sees the symmetric part of ``MN``). Hence

        ``h_i^2 - 1 = J_4(M_i, M_i) / 2 + 2 I_2(M_i^2) + (tr M_i^2 - 1)``,

    and, with ``S = sum_i lambda_i M_i^2``,

    * degree 0: ``E y = (1/sqrt 2) sum_i lambda_i (|M_i|_F^2 - 1) = 0`` (unit directions), ``E_0 = (E y)^2``;
    * degree 2: ``y_2 = sqrt 2 I_2(S)``, and ``Var I_2(S) = 2 tr S^2``, so ``E_2 = 4 tr S^2``;
    * degree 4: ``y_4 = (1/(2 sqrt 2)) sum_i lambda_i J_4(M_i, M_i)``. ``J_4(M, M)`` is the fourth Wiener
      integral of ``M (x) M``, so ``E J_4(M_i, M_i) J_4(M_j, M_j) = 4! <sym(M_i (x) M_i), M_j (x) M_j>
      = 8 tr(M_i M_j)^2 + 16 tr(M_i M_j M_i M_j)`` (of the 24 index matchings, 8 keep the pairs and 16 cross them),
      so ``E_4 = sum_ij lambda_i lambda_j [tr(M_i M_j)^2 + 2 tr(M_i M_j M_i M_j)]``.

    ``E_2 + E_4`` is term by term the cumulant formula of :meth:`hiermodel.HierarchicalTarget.h2_variance`
    (``<A_i, A_j> = tr(M_i M_j)``): its ``4 sum P*P`` term is exactly the degree-2 energy, so ``E_4`` is taken
    as the rest of that exact variance (the tests check all three energies against SymPy projections).

    ``model="gaussian-equivalent"``: the input is ``F ~ N(0, I_D)`` and ``h = A F`` is exactly Gaussian, so
    ``h_i^2 - 1`` is the degree-2 Hermite polynomial ``He_2(<A_i, F>)`` of unit vectors: ``y`` lies entirely in
    degree 2 *of F*, ``{0: 0.0, 2: 1.0, 4: 0.0}`` (degrees in ``F``, not in ``x``).

    Parameters
    ----------
    target : HierarchicalTarget
        With ``q = 2`` and ``g = "id"``; any other ``q`` or link raises ``ValueError``.
    model : {"hermite", "gaussian-equivalent"}
    """
    from ._checks import check_model

    model = check_model(model)
    q = getattr(target, "q", None)
    if q != 2:
        raise ValueError(f"hermite_energies supports q = 2 only (degrees 0, 2, 4 of a degree-4 polynomial), this "
                         f"target has q = {q}")
    if getattr(target, "g_name", None) != "id":
        raise ValueError(f"hermite_energies supports g = 'id' only (y = h2, a polynomial in x), this target has "
                         f"g = {getattr(target, 'g_name', None)!r}; a nonlinear link spreads y over all even degrees")
    if model == "gaussian-equivalent":
        return {0: 0.0, 2: 1.0, 4: 0.0}
    lam = np.asarray(target.weights, dtype=float)
    M = target.direction_matrices()
    mean = float(lam @ (np.einsum("iab,iab->i", M, M) - 1.0)) / math.sqrt(2.0)
    S = np.tensordot(lam, M @ M, axes=1)
    e2 = 4.0 * float(np.sum(S * S))
    e4 = target.h2_variance() - e2  # the rest of the exact variance (the formula above, term by term)
    e0 = mean * mean
    total = e0 + e2 + e4
    return {0: float(e0 / total), 2: float(e2 / total), 4: float(e4 / total)}


# --- the first-layer laws with a link's own constants (chapter 5, C7 at gamma > 1/2) ----------------------------
LINK_FORMS = ("first-order", "bbp")


def link_first_layer(n, *, weights, theta, noise, D: int, form: str = "first-order") -> dict:
    """Gaussian-equivalent first-layer predictions for any link ``g``, from its per-direction constants.

    ``theta_i`` is the spike of direction ``i`` in ``E C_hat`` and ``noise_i = E[y^2 h_i^2]`` (standardised labels;
    :func:`hiermodel.population.link_constants` or :func:`hiermodel.experiments.stein_constants`). The bulk of
    ``C_hat`` has entry variance ``E y^2 / n = 1/n`` for every link, so the BBP threshold of direction ``i`` is
    ``n_i = D / theta_i^2``. Per direction:

    - ``form="bbp"``: ``cos^2 theta_i = (1 - n_i / n)_+`` (SPEC B1 with the link's spike);
    - ``form="first-order"``: ``cos^2 theta_i = (1 - P_i / n)_+`` past ``n_i`` (else 0), with chapter 3's
      ``P_i = (D - d1) noise_i / theta_i^2``.

    For ``g = id`` (``theta = sqrt2 lambda``, ``noise = 1 + 4 lambda^2``) the two forms are :func:`mse_prediction`
    (``refined=True``) and :func:`mse_prediction_strong`.

    Parameters
    ----------
    n : float or array
        Sample sizes (``>= 1``).
    weights, theta, noise : array_like (d1,)
        Signed weights ``lambda_i`` (``sum lambda_i^2 = 1``), spikes (nonzero) and noise weights (positive).
    D : int
        Feature dimension (``>= d1``).
    form : {"first-order", "bbp"}

    Returns
    -------
    dict
        ``cos2`` (shape ``n.shape + (d1,)``), ``q_h`` (their mean) and ``error``, the first-layer error
        ``sum_i lambda_i^2 (1 - cos^4 theta_i)`` (shape of ``n``).
    """
    if form not in LINK_FORMS:
        raise ValueError(f"form must be one of {LINK_FORMS}, got {form!r}")
    n_arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError(f"n must be finite and >= 1, got {n}")
    arrays = {}
    for name, value in (("weights", weights), ("theta", theta), ("noise", noise)):
        a = np.asarray(value, dtype=float)
        if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be a 1-D array of finite values, got {value!r}")
        arrays[name] = a
    lam, th, nz = arrays["weights"], arrays["theta"], arrays["noise"]
    if not (lam.shape == th.shape == nz.shape):
        raise ValueError(f"weights, theta and noise need one value per direction, got shapes {lam.shape}, "
                         f"{th.shape}, {nz.shape}")
    if np.any(th == 0) or np.any(nz <= 0):
        raise ValueError("theta must be nonzero and noise positive (a direction with no spike is never found)")
    if abs(float(lam @ lam) - 1.0) > 1e-6:
        raise ValueError(f"weights must satisfy sum lambda_i^2 = 1, got {float(lam @ lam):.6g}")
    D = check_int("D", D, minimum=lam.size)
    nn = n_arr[..., None]
    thresholds = D / th**2
    if form == "bbp":
        cos2 = np.clip(1.0 - thresholds / nn, 0.0, None)
    else:
        prefactor = (D - lam.size) * nz / th**2
        cos2 = np.where(nn > thresholds, np.clip(1.0 - prefactor / nn, 0.0, None), 0.0)
    return {"cos2": cos2, "q_h": cos2.mean(axis=-1), "error": np.sum(lam**2 * (1.0 - cos2**2), axis=-1)}


# --- C8: the kernel staircase, what a rotation-invariant kernel learns against alpha (chapter 6) -------------------
def kernel_staircase(energies: dict, alpha) -> np.ndarray:
    """Test MSE of rotation-invariant kernel ridge regression in the polynomial regime, ``n = d^alpha``.

    For ``d^l << n << d^(l+1)`` (``l`` an integer) kernel ridge regression with a rotation-invariant kernel on
    ``x ~ N(0, I_d)`` (inner-product kernels with enough nonzero Taylor coefficients, the RBF kernel) learns the
    projection of the target on the polynomials of degree ``<= l`` and nothing of its higher degrees (Ghorbani,
    Mei, Misiakiewicz and Montanari, Ann. Statist. 49, 2021; Mei, Misiakiewicz and Montanari, Appl. Comput.
    Harmon. Anal. 59, 2022). Its excess test MSE on standardised labels is then the plateau
    ``1 - E_{<= l}``, ``E_{<= l} = sum_{k <= l} E_k``, with ``E_k`` the fractions of :func:`hermite_energies`.

    The statement is asymptotic (``d -> infinity`` with ``alpha`` fixed, not an integer). This function returns,
    for each ``alpha``, the plateau with ``l`` the largest integer strictly below ``alpha`` (at an integer
    ``alpha`` the degree-``alpha`` part is not yet learned); ``alpha <= 0`` gives ``1`` (nothing learned).

    Parameters
    ----------
    energies : dict
        ``{degree: fraction of Var y}`` (e.g. ``hermite_energies(target)``), non-negative, summing to 1.
    alpha : float or array_like
        Sample exponents, ``n = d^alpha``.
    """
    if not isinstance(energies, dict) or not energies:
        raise ValueError(f"energies must be a non-empty dict {{degree: fraction}}, got {energies!r}")
    degrees = sorted(energies)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0 for k in degrees):
        raise ValueError(f"energies' keys must be degrees (integers >= 0), got {degrees}")
    frac = np.array([float(energies[k]) for k in degrees])
    if np.any(~np.isfinite(frac)) or np.any(frac < -1e-12) or abs(frac.sum() - 1.0) > 1e-9:
        raise ValueError(f"energies must be non-negative fractions summing to 1, got {energies}")
    a = np.asarray(alpha, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError("alpha must be finite")
    learned = np.ceil(a) - 1  # the largest integer strictly below alpha
    out = np.ones_like(a)
    for k, e in zip(degrees, frac):
        out = out - np.where((k <= learned) & (a > 0), e, 0.0)
    return np.clip(out, 0.0, 1.0)


# --- Theorem 3.2's own estimator: the second layer on a fresh batch (chapter 4; C5, B2) --------------------------
def second_layer_noise(weights, n_second: int, *, coupled: bool = True) -> float:
    """Excess test MSE that a second layer estimated on ``n_second`` fresh samples adds (sample splitting).

    Gaussian-equivalent model, ``g = id``, standardised labels ``y = (1/sqrt 2) sum_i lambda_i (h_i^2 - 1)``, and
    the first layer taken as exact (``h_hat = h``, unit-variance independent Gaussians). The second layer
    ``A2_hat = (1/n2) sum y (h h^T - I)`` is its mean ``sqrt 2 diag(lambda)`` plus a noise matrix ``E``; with the
    readout's scale fitted, the prediction carries ``(1/2)(h^T E h - tr E)`` and, to first order in ``d1^2 / n2``,
    the excess is ``E ||E||_F^2 / 2``:

    * ``coupled=True`` (the Gaussian moments of ``y`` and ``h`` together, exact for recovered directions):
      ``(1/(2 n2)) [sum_j (2 + 26 lambda_j^2) + sum_{j != k} (1 + 4 lambda_j^2 + 4 lambda_k^2 + 4 lambda_j lambda_k)]``;
    * ``coupled=False`` (``y`` independent of the features, as for directions not yet found):
      ``d1 (d1 + 1) / (2 n2)``.

    Parameters
    ----------
    weights : array (d1,)
        Signed second-layer weights ``lambda_i``, ``sum lambda_i^2 = 1``.
    n_second : int
        Samples of the second layer (``n - floor(n/2)`` with ``LayerwiseSpectral(split=True)``).
    coupled : bool
        Which of the two forms above.
    """
    lam = np.asarray(weights, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or not np.all(np.isfinite(lam)):
        raise ValueError(f"weights must be a non-empty 1-D array of finite values, got shape {lam.shape}")
    if abs(float(lam @ lam) - 1.0) > 1e-6:
        raise ValueError(f"the formula assumes sum_i weights_i^2 = 1, got {float(lam @ lam):.6g}")
    n2 = check_int("n_second", n_second, minimum=1)
    if not isinstance(coupled, (bool, np.bool_)):
        raise TypeError(f"coupled must be True or False, got {coupled!r}")
    d1 = lam.size
    if not coupled:
        return d1 * (d1 + 1) / (2.0 * n2)
    diag = float(np.sum(2.0 + 26.0 * lam**2))
    s1, s2 = float(lam.sum()), float(lam @ lam)
    # sum over ordered pairs j != k of 1 + 4 lam_j^2 + 4 lam_k^2 + 4 lam_j lam_k
    off = d1 * (d1 - 1) + 8.0 * (d1 - 1) * s2 + 4.0 * (s1**2 - s2)
    return (diag + off) / (2.0 * n2)


# --- chapter 2, B5: the eigenvector of a coupled spike in the signed-weight law, and its half-overlap sample size ----
def weighted_covariance_overlap(spike: float, *, ratio: float, labels, projections) -> tuple:
    """``(outlier, cos2)`` of one spike direction in the signed-weight law (Gaussian-equivalent model, chapter 2).

    With the notation of :func:`weighted_covariance_outlier` (``C_hat = [[s, b^T], [b, W]]`` in the basis ``a``,
    complement), the outlier ``x`` solves ``x - s = Phi``, ``Phi = b^T (x - W)^(-1) b``, and its eigenvector
    ``(1, (x - W)^(-1) b)`` has ``cos^2 = 1 / (1 + b^T (x - W)^(-2) b) = 1 / (1 - dPhi/dx)``. On the outlier
    branch ``Phi`` concentrates on ``ratio g E[w^2 h^2 / (1 - ratio w g)]`` and ``x`` on
    ``x(g) = 1/g + ratio g E[w^2 / (1 - ratio w g)]``, so ``dPhi/dx = Phi'(g) / x'(g)`` with
    ``Phi'(g) = ratio E[w^2 h^2 / (1 - ratio w g)^2]`` and ``x'(g) = -1/g^2 + ratio E[w^2 / (1 - ratio w g)^2]``.
    As ``ratio -> 0`` with ``h`` independent of ``w`` this is BBP's ``cos^2 = 1 - sigma^2 / s^2``.
    ``labels`` are the weights ``w`` as they enter ``C_hat``. Returns ``(nan, 0.0)`` without an outlier.
    """
    x = weighted_covariance_outlier(spike, ratio=ratio, labels=labels, projections=projections)
    if not np.isfinite(x):
        return float("nan"), 0.0
    from scipy.optimize import brentq

    w = np.asarray(labels, dtype=float).ravel()
    h = np.asarray(projections, dtype=float).ravel()
    side = 1 if spike > 0 else -1
    g_edge = _signed_weight_branch(ratio, w, side)[1]
    g = brentq(lambda s: _signed_weight_x(s, ratio, w) - x, g_edge * 1e-12, g_edge * (1.0 - 1e-12), xtol=1e-15,
               maxiter=500)
    den = (1.0 - ratio * w * g) ** 2
    dphi = ratio * np.mean(w**2 * h**2 / den)
    dx = -1.0 / g**2 + ratio * np.mean(w**2 / den)
    return float(x), float(1.0 / (1.0 - dphi / dx))


def weighted_covariance_half_overlap(spike: float, *, D: int, labels, projections, n_range) -> float:
    """The sample size ``n`` at which :func:`weighted_covariance_overlap`'s ``cos^2`` reaches 1/2 (``D / n`` the
    ratio), searched on ``n_range = (low, high)``; ``nan`` if it is not reached there. Chapter 2 (B5)."""
    from scipy.optimize import brentq

    lo, hi = (float(v) for v in n_range)
    if not 0 < lo < hi:
        raise ValueError(f"n_range must be 0 < low < high, got {n_range}")

    def excess(log_n):
        return weighted_covariance_overlap(spike, ratio=D / math.exp(log_n), labels=labels,
                                           projections=projections)[1] - 0.5

    a, b = math.log(lo), math.log(hi)
    if excess(a) >= 0 or excess(b) < 0:
        return float("nan")
    return float(math.exp(brentq(excess, a, b, xtol=1e-6)))
