"""Input validation and the package's one randomness convention."""

from __future__ import annotations

import numbers

import numpy as np

RandomLike = "None | int | np.random.SeedSequence | np.random.Generator"


MODELS = ("hermite", "gaussian-equivalent")
"""The two data models: real inputs ``x ~ N(0, I_d)`` with their Hermite lift, or features ``F ~ N(0, I_D)``."""


def as_generator(rng=None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from ``rng``: None, an int seed, a ``SeedSequence`` or a Generator.

    A Generator is returned as is (its state advances as it is used); anything else seeds a fresh PCG64.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(rng, bool) or (isinstance(rng, numbers.Integral) and rng < 0):
            raise ValueError(f"rng must be None, a non-negative int seed, a SeedSequence or a Generator, got {rng!r}")
        return np.random.default_rng(rng)
    raise ValueError(
        f"rng must be None, a non-negative int seed, a numpy SeedSequence or a numpy Generator; "
        f"got {type(rng).__name__}"
    )


def check_model(model) -> str:
    """``model`` if it is one of :data:`MODELS`, else a ValueError naming them."""
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"unknown model {model!r}: use one of {MODELS}")
    return model


def check_int(name: str, value, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, or a ValueError that says what is allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
               open_min: bool = False) -> float:
    """``value`` as a finite float in the stated range, or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if minimum is not None and (value < minimum or (open_min and value == minimum)):
        op = ">" if open_min else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_inputs(X, d: int) -> np.ndarray:
    """A finite float array of shape ``(n, d)`` with ``n >= 1``."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != d or X.shape[0] < 1:
        raise ValueError(f"X must have shape (n, {d}) with n >= 1, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    return X
