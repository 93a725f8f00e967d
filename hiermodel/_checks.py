"""Input validation and the package's one randomness convention."""

from __future__ import annotations

import numbers

import numpy as np

RandomLike = "None | int | np.random.SeedSequence | np.random.Generator"


def as_generator(seed=None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a seed, a ``SeedSequence`` or a Generator.

    A Generator is returned as is (its state advances as it is used); anything else seeds a fresh PCG64.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(seed)
    raise ValueError(
        f"seed must be None, a non-negative int, a numpy SeedSequence or a numpy Generator; got {type(seed).__name__}"
    )


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
