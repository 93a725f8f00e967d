"""Closed-form quantities of the model (SPEC §1, §3): widths, power-law normalisation, harmonic sums."""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_int, check_real


def first_layer_width(d: int, eps: float) -> int:
    """``d1 = floor(d^eps)`` (SPEC §1), robust to rounding when ``d^eps`` is an integer."""
    d = check_int("d", d, minimum=1)
    eps = check_real("eps", eps, minimum=0.0, maximum=float("inf"))
    return int(math.floor(d**eps * (1.0 + 1e-12)))


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
