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


def check_bool(name: str, value) -> bool:
    """``value`` if it is a bool (Python or numpy), else a ValueError: a string such as ``"no"`` is not a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def real_array(name: str, values) -> np.ndarray:
    """``values`` as an array of real numbers (float, int or bool dtype), without converting: complex numbers,
    strings and objects that are not numbers are refused with a ValueError naming ``name`` (``np.asarray(z,
    dtype=float)`` would silently drop imaginary parts)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        bad = [v for v in arr.flat if isinstance(v, bool) or not isinstance(v, numbers.Real)][:1]
        if bad:
            raise ValueError(f"{name} must hold real numbers, got objects such as {bad[0]!r}")
        arr = arr.astype(float)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def float_dtype(name: str, dtype, allowed=(np.float32, np.float64)) -> np.dtype:
    """``np.dtype(dtype)`` if it is one of ``allowed`` float dtypes, else a ValueError naming them."""
    names = " or ".join(np.dtype(a).name for a in allowed)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be {names}, got {dtype!r}") from None
    if dt not in [np.dtype(a) for a in allowed]:
        raise ValueError(f"{name} must be {names}, got {dt.name}")
    return dt


def format_bytes(n: float) -> str:
    """``1.5e5 -> "146 KiB"``: three significant digits in the largest binary unit below ``n``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover


def total_memory_bytes() -> int | None:
    """Physical memory of this machine, or None if unknown."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(what: str, nbytes: float) -> None:
    """A ValueError before allocating ``nbytes`` (described by ``what``) if they exceed this machine's memory."""
    total = total_memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} needs {format_bytes(nbytes)}, more than this machine's "
                         f"{format_bytes(total)} of memory")


def check_inputs(X, d: int, name: str = "X") -> np.ndarray:
    """A finite float array of shape ``(n, d)`` with ``n >= 1`` and ``d >= 1``."""
    X = real_array(name, X).astype(float, copy=False)
    if X.ndim != 2 or X.shape[1] != d or X.shape[0] < 1 or d < 1:
        raise ValueError(f"{name} must have shape (n, {d}) with n >= 1 and d >= 1, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X
