"""Experiments that are not a sweep grid: designs whose runs share their data on purpose.

A sweep task (:mod:`hiermodel.sweep`) owns its target and its data, so two links in one grid see independent
draws. Chapter 5 compares ``g = id`` and ``g = tanh`` *paired*: one target (same directions and weights), the same
Gaussian features, only the labels differ. Their difference is then far less noisy than that of two independent
runs, and the per-direction constants computed from that one target (:func:`hiermodel.population.link_constants`)
apply to both. :func:`paired_links` runs that design; :data:`PAIRED_LINKS` holds its sizes at the two scales of
the figure registry (``"ci"``: what the chapter runs; ``"paper"``: the same experiment, bigger).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_int
from .data import SampleStream
from .estimator import LayerwiseSpectral
from .metrics import direction_cos2, subspace_overlap
from .target import HierarchicalTarget

__all__ = ["ALPHAS", "LABEL_TRANSFORMS", "PAIRED_LINKS", "ceiling_first_order", "label_cumulants", "label_transform",
           "link_theory", "paired_links", "paired_sizes", "preprocessing_efficiency", "quadratic_preprocessing",
           "stein_constants", "task_link_constants"]

ALPHAS = tuple(round(float(a), 2) for a in np.arange(1.9, 3.6001, 0.05))
"""Sample exponents of the paired-links experiment: ``alpha = 1.9, 1.95, ..., 3.6``."""

PAIRED_LINKS = {"ci": {"d": 30, "seeds": 6}, "paper": {"d": 60, "seeds": 10}}
"""Sizes of chapter 5's paired experiment per scale: input dimension ``d`` and replicates ``seeds``."""


def paired_sizes(d, alphas=ALPHAS) -> np.ndarray:
    """The distinct sample sizes ``round(d^alpha)`` for ``alpha`` in ``alphas`` (ints, increasing)."""
    d = check_int("d", d, minimum=2)
    return np.unique(np.round(float(d) ** np.asarray(alphas, dtype=float)).astype(int))


def paired_links(targets, ns, *, seeds, base_seed=100, rng=0, max_entries=2**30, chunk_size=65536):
    """Fit Algorithm 1 for several links on the same Gaussian-equivalent features (a paired comparison).

    Replicate ``s`` draws ``F ~ N(0, I_D)``, ``max(ns)`` rows, from ``numpy.random.default_rng(base_seed + s)``
    and fits every target on it along the nested path ``ns``: the labels ``g(h2(F))`` of each link are computed
    from the same ``F``. ``F`` is held in memory when it has at most ``max_entries`` entries, else regenerated in
    chunks by a :class:`~hiermodel.data.SampleStream`: the same draws, and fits that agree to the rounding of the
    float32 kernels (about 1e-8 in ``cos2``), but slower (the stream is replayed from its start for every ``n``).

    Parameters
    ----------
    targets : dict
        ``link name -> HierarchicalTarget``, all with the same ``d``, ``q``, directions and weights (build them with
        the same ``rng``); they differ only in ``g``.
    ns : sequence of int
        Strictly increasing sample sizes (the nested path of :meth:`LayerwiseSpectral.fit_path`).
    seeds : int
        Number of replicates ``s = 0 .. seeds - 1`` (the table's ``seed`` column).
    base_seed : int
        Replicate ``s`` uses the data seed ``base_seed + s``.
    rng : int, SeedSequence or Generator
        Randomness of the estimator's iterative solvers (the dense route at moderate ``D`` uses none).
    max_entries : int
        Largest ``max(ns) * D`` kept in memory (default ``2^30``: 8 GiB of float64).
    chunk_size : int
        Rows of ``F`` generated at once by the stream.

    Returns
    -------
    pandas.DataFrame
        One row per ``(g, seed, n)`` in that order, with the columns of a sweep table that apply: ``d, d1, D,
        gamma, q, g, eps, model, seed, alpha, n, q_h, cos2_1 .. cos2_<d1>`` (``model`` is
        ``"gaussian-equivalent"``; ``cos2_i = ||P_hat a_i||^2``), so :func:`hiermodel.tables.long_form` and
        :func:`hiermodel.tables.mean_sem` apply.
    """
    import pandas as pd

    if not isinstance(targets, dict) or not targets:
        raise ValueError("targets must be a non-empty dict: link name -> HierarchicalTarget")
    ref = next(iter(targets.values()))
    for name, t in targets.items():
        if not isinstance(t, HierarchicalTarget):
            raise TypeError(f"targets[{name!r}] must be a HierarchicalTarget, got {type(t).__name__}")
        if (t.d, t.q, t.eps, t.gamma) != (ref.d, ref.q, ref.eps, ref.gamma) or not (
                np.array_equal(t.directions, ref.directions) and np.array_equal(t.weights, ref.weights)):
            raise ValueError(f"targets[{name!r}] has other directions or weights: a paired comparison needs one "
                             f"target with several links (build them with the same rng)")
    ns = [check_int("n in ns", int(v), minimum=ref.d1) for v in np.asarray(ns).tolist()]
    if not ns or any(b <= a for a, b in zip(ns[:-1], ns[1:])):
        raise ValueError("ns must be a non-empty, strictly increasing list of sample sizes")
    seeds = check_int("seeds", seeds, minimum=1)
    base_seed = check_int("base_seed", base_seed, minimum=0)
    max_entries = check_int("max_entries", max_entries, minimum=1)
    rows = {}
    for s in range(seeds):
        if ns[-1] * ref.D <= max_entries:
            F = np.random.default_rng(base_seed + s).standard_normal((ns[-1], ref.D))
            h2 = ref.second_layer(F @ ref.directions.T)
            data = {name: (F, t.g(h2)) for name, t in targets.items()}
        else:
            data = {name: (SampleStream(t, ns[-1], base_seed + s, chunk_size=chunk_size,
                                        model="gaussian-equivalent"), None) for name, t in targets.items()}
        for name, t in targets.items():
            Z, y = data[name]
            fitted = LayerwiseSpectral(t.d1, q=t.q, rng=rng).fit_path(Z, y, ns, features=y is not None)
            rows[name, s] = [_row(t, name, s, n, est) for n, est in zip(ns, fitted)]
        del data
    return pd.DataFrame.from_records([r for name in targets for s in range(seeds) for r in rows[name, s]])


def _row(t, name, seed, n, est):
    rec = {"d": t.d, "d1": t.d1, "D": t.D, "gamma": t.gamma, "q": t.q, "g": name, "eps": t.eps,
           "model": "gaussian-equivalent", "seed": seed, "alpha": float(np.log(n) / np.log(t.d)), "n": int(n),
           "q_h": subspace_overlap(t.directions, est.directions_)}
    rec.update({f"cos2_{i + 1}": float(c) for i, c in enumerate(direction_cos2(t.directions, est.directions_))})
    return rec


# --- chapter 5, C7 at gamma > 1/2: each sweep task's link constants and its Gaussian-equivalent first layer ------
def _link_derivatives(target, h2):
    from .target import TANH_SCALE

    if target.g_name == "id":
        return np.ones_like(h2), np.zeros_like(h2)
    if target.g_name == "tanh":
        sech2 = 1.0 / np.cosh(h2) ** 2
        return TANH_SCALE * sech2, -2.0 * TANH_SCALE * np.tanh(h2) * sech2
    raise ValueError(f"stein_constants knows the derivatives of g = 'id' and 'tanh', not {target.g_name!r}")


def stein_constants(target, *, samples=200_000, rng=None) -> dict:
    """The link constants of :func:`hiermodel.population.link_constants`, with the spikes in Stein's form.

    ``theta_i = (sqrt2 lambda_i E g'(h2) + 2 lambda_i^2 E[g''(h2) h_i^2]) / sd g(h2)`` (chapter 5 derives it; the
    same number as ``E[y (h_i^2 - 1)]``), estimated on ``h = rng.standard_normal((samples, d1))``. Its Monte Carlo
    error is proportional to ``|lambda_i|``, where the direct estimate's is not: the weak directions of a wide first
    layer (``d1 = 40``, ``gamma >= 1``) keep a small relative error. ``noise_i = E[y^2 h_i^2]`` as in
    ``link_constants`` (standardised labels). Links: ``"id"`` and ``"tanh"``.

    Returns ``{"theta", "theta_se", "noise"}`` (arrays of ``d1``).
    """
    from ._checks import as_generator

    if not isinstance(target, HierarchicalTarget):
        raise TypeError(f"target must be a HierarchicalTarget, got {type(target).__name__}")
    samples = check_int("samples", samples, minimum=2)
    _link_derivatives(target, np.zeros(1))  # an unknown link fails before the draw
    h = as_generator(rng).standard_normal((samples, target.d1))
    h2 = target.second_layer(h)
    gp, gpp = _link_derivatives(target, h2)
    y = target.g(h2)
    sd = float(np.std(y))
    lam = target.weights
    terms = (np.sqrt(2.0) * lam * gp[:, None] + 2.0 * lam**2 * gpp[:, None] * h**2) / sd
    ys = (y - y.mean()) / sd
    return {"theta": terms.mean(0), "theta_se": terms.std(0) / np.sqrt(samples),
            "noise": (ys[:, None] ** 2 * h**2).mean(0)}


_TASK_KEYS = ("d", "gamma", "q", "g", "eps", "model", "seed")


def task_link_constants(grid, *, samples=50_000, rng=0) -> dict:
    """Each task's link constants: ``{(d, gamma, q, g, eps, model, seed): {"weights", "theta", "noise", "D"}}``.

    The task's own target is rebuilt (``Task.target()``: its weights and signs); ``g = "id"`` gets the exact
    ``theta = sqrt2 lambda`` and ``noise = 1 + 4 lambda^2`` (chapters 2 and 3), any other link
    :func:`stein_constants` with ``samples`` and ``rng`` (the same draw for every task).
    """
    from . import sweep

    if not isinstance(grid, sweep.Grid):
        raise TypeError(f"grid must be a hiermodel.sweep.Grid, got {type(grid).__name__}")
    out = {}
    for task in grid.tasks():
        t = task.target()
        if t.g_name == "id":
            const = {"theta": np.sqrt(2.0) * t.weights, "noise": 1.0 + 4.0 * t.weights**2}
        else:
            const = stein_constants(t, samples=samples, rng=rng)
        out[tuple(task.params[k] for k in _TASK_KEYS)] = {"weights": t.weights, "theta": const["theta"],
                                                         "noise": const["noise"], "D": t.D}
    return out


def link_theory(df, grid, *, constants=None, samples=50_000, rng=0):
    """A copy of a sweep table with the Gaussian-equivalent first layer predicted from each task's link constants.

    ``constants``: the output of :func:`task_link_constants` for ``grid`` (computed here with ``samples`` and
    ``rng`` when omitted). :func:`hiermodel.theory.link_first_layer` gives, at each row's ``n``, ``q_h_link`` and
    ``mse_fl_link`` (first-order form) and ``q_h_link_bbp``, ``mse_fl_link_bbp`` (BBP form). Every row of ``df``
    must belong to a task of ``grid``.
    """
    import pandas as pd

    from . import theory

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame (a sweep table), got {type(df).__name__}")
    keys = list(_TASK_KEYS)
    missing = sorted(set(keys + ["n"]) - set(df.columns))
    if missing:
        raise ValueError(f"df lacks the columns {missing} of a sweep table")
    if constants is None:
        constants = task_link_constants(grid, samples=samples, rng=rng)
    elif not isinstance(constants, dict):
        raise TypeError(f"constants must be the dict of task_link_constants, got {type(constants).__name__}")
    out = df.copy()
    for c in ("q_h_link", "mse_fl_link", "q_h_link_bbp", "mse_fl_link_bbp"):
        out[c] = np.nan
    for key, idx in out.groupby(keys).groups.items():
        const = constants.get(tuple(key))
        if const is None:
            raise ValueError(f"the row with {dict(zip(keys, key))} is not a task of the grid")
        n = out.loc[idx, "n"].to_numpy(dtype=float)
        for form, suffix in (("first-order", ""), ("bbp", "_bbp")):
            pred = theory.link_first_layer(n, weights=const["weights"], theta=const["theta"],
                                           noise=const["noise"], D=const["D"], form=form)
            out.loc[idx, "q_h_link" + suffix] = pred["q_h"]
            out.loc[idx, "mse_fl_link" + suffix] = pred["error"]
    return out


# --- chapter 3: the real model's n = infinity ceiling to first order in its non-spike part (B6) -------
def ceiling_first_order(target) -> np.ndarray:
    """First-order loss ``1 - cos^2_k`` of each direction's ``n = infinity`` overlap in the real model (SPEC B6).

    ``E C_hat = sum_i rho_i a_i a_i^T + S`` with the spikes ``rho_i = sqrt(2) lambda_i`` and a deterministic
    non-spike part ``S`` (:func:`hiermodel.population.population_operator`). To first order in ``S`` the top-``d1``
    eigenspace tilts off the latent span by ``(rho_k - s)^(-1) P_perp S a_k`` per direction, so

        1 - cos^2_k  ~  || P_perp S a_k ||^2 / rho_k^2  =  || P_perp E C_hat a_k ||^2 / rho_k^2,

    with ``P_perp`` the projector off the span of the ``a_i``. A multiple of the identity in ``S`` shifts spikes
    and bulk alike and drops out; mixing within the span does not change the per-direction ``cos^2`` of the
    span. Compare with ``1 - population_ceiling(target)["cos2"]`` (exact): they agree to second order in
    ``||S|| / |rho_k|``. Real model, ``q = 2``, ``g = id``; ``O(d1^2 d^3)`` operations.

    Returns
    -------
    ndarray (d1,)
        The first-order deficits, one per direction ``i = 1..d1``.
    """
    from .population import population_operator, spike_strengths

    if not isinstance(target, HierarchicalTarget):
        raise TypeError(f"target must be a HierarchicalTarget, got {type(target).__name__}")
    A = np.asarray(target.directions, dtype=float)  # (d1, D), orthonormal rows when target.orthonormal
    Q, _ = np.linalg.qr(A.T)  # an orthonormal basis of the latent span (also for near-orthonormal rows)
    applied = np.asarray(population_operator(target).matmat(A.T), dtype=float)  # (D, d1): E C_hat a_k
    off = applied - Q @ (Q.T @ applied)
    return np.sum(off**2, axis=0) / spike_strengths(target) ** 2


# --- chapter 2: label preprocessing of the spectral matrix (B5) ----------------------------------------------
def _clip_unit(y):
    return np.clip(y, -1.0, 1.0)


def _cube(y):
    return y**3


def _identity_transform(y):
    return np.asarray(y, dtype=float)


_TRANSFORMS = {"y": _identity_transform, "sign": np.sign, "abs": np.abs, "clip": _clip_unit, "cube": _cube}
LABEL_TRANSFORMS = tuple(_TRANSFORMS) + ("quadratic",)
"""Names of :func:`label_transform`: ``T(y) = y``, ``sign y``, ``|y|``, ``y`` clipped to ``[-1, 1]``, ``y^3``, and
the best quadratic ``y + beta (y^2 - 1 - kappa_3 y)`` of :func:`quadratic_preprocessing`."""


def label_cumulants(weights) -> dict:
    """Cumulants ``kappa_2..kappa_4`` of ``y = sum_j lambda_j u_j``, ``u_j = (h_j^2 - 1)/sqrt 2`` with independent
    ``h_j ~ N(0, 1)`` (the Gaussian-equivalent label for ``g = id``): ``kappa_k(y) = sum_j lambda_j^k kappa_k(u)``,
    ``kappa_k(u) = 2^(k/2 - 1) (k - 1)!`` (``u`` is a centred chi-square of one degree of freedom, scaled)."""
    lam = np.asarray(weights, dtype=float).ravel()
    if lam.size < 1 or not np.all(np.isfinite(lam)):
        raise ValueError("weights must be a non-empty finite array")
    return {k: float(np.sum(lam**k) * 2.0 ** (k / 2 - 1) * np.prod(np.arange(1, k))) for k in (2, 3, 4)}


def quadratic_preprocessing(weights, i) -> dict:
    """The best label preprocessing ``T`` of the form ``a + b y + c y^2`` for direction ``i`` (0-based), exactly.

    The spike of ``C_T = (1/n) sum w (F F^T - I)``, ``w`` the standardised ``T(y)``, along ``a_i`` is
    ``sqrt 2 Corr(T(y), u_i)`` and the noise scale is 1, so the BBP threshold is proportional to
    ``1 / Corr(T(y), u_i)^2`` (chapter 2). Over ``span(1, y, y^2)`` the maximum of ``Corr^2`` is reached by
    ``T = y + beta Z``, ``Z = y^2 - 1 - kappa_3 y`` (the part of ``y^2`` orthogonal to ``1, y``), with
    ``Cov(u_i, y) = lambda_i``, ``Cov(u_i, Z) = lambda_i (2 sqrt2 lambda_i - kappa_3)``,
    ``Var Z = 2 + kappa_4 - kappa_3^2``, so that

        n_y* / n_T* - 1 = (2 sqrt2 lambda_i - kappa_3)^2 / (2 + kappa_4 - kappa_3^2),   beta = (2 sqrt2 lambda_i -
        kappa_3) / Var Z,

    the cumulants being those of ``y`` (:func:`label_cumulants`, unit variance). Returns ``{"beta", "kappa3",
    "gain"}`` (``gain`` = that relative threshold reduction ``n_y*/n_T* - 1``; 0 when ``T = y`` is optimal in this
    span).
    """
    lam = np.asarray(weights, dtype=float).ravel()
    i = check_int("i", i, minimum=0)
    if i >= lam.size:
        raise ValueError(f"i = {i} is not a direction of {lam.size} weights")
    k = label_cumulants(lam)
    if not abs(k[2] - 1.0) < 1e-9:
        raise ValueError(f"the weights must have sum lambda^2 = 1 (unit-variance labels), got {k[2]:.6g}")
    excess = 2.0 * np.sqrt(2.0) * lam[i] - k[3]
    var_z = 2.0 + k[4] - k[3] ** 2
    return {"beta": float(excess / var_z), "kappa3": k[3], "gain": float(excess**2 / var_z)}


def label_transform(name, weights=None, i=None):
    """The preprocessing ``T`` called ``name`` (one of :data:`LABEL_TRANSFORMS`), a function acting elementwise on
    arrays of labels. ``"quadratic"`` needs the target's ``weights`` and the direction ``i`` it is tuned to."""
    if name in _TRANSFORMS:
        return _TRANSFORMS[name]
    if name != "quadratic":
        raise ValueError(f"unknown label transform {name!r}: use one of {LABEL_TRANSFORMS}")
    if weights is None or i is None:
        raise ValueError("the quadratic transform needs weights= and i=")
    best = quadratic_preprocessing(weights, i)
    beta, kappa3 = best["beta"], best["kappa3"]

    def quadratic(y):
        y = np.asarray(y, dtype=float)
        return y + beta * (y * y - 1.0 - kappa3 * y)

    return quadratic


def preprocessing_efficiency(weights, i, transforms, *, samples=1_000_000, rng=None, batches=10) -> dict:
    """Relative efficiency ``n_y* / n_T*`` of label preprocessings for direction ``i`` (0-based), by Monte Carlo.

    Draws ``h ~ N(0, I_d1)`` (the Gaussian-equivalent first layer), ``u_j = (h_j^2 - 1)/sqrt 2``,
    ``y = sum_j lambda_j u_j``, and for each ``T`` standardises ``w = (T(y) - mean) / std``. Then the spike of
    ``C_T`` along ``a_i`` is ``theta_T = sqrt 2 E[w u_i]``, the bulk's entries have variance ``E w^2 / n = 1/n``, and
    the cross block coupling ``a_i`` to the rest has variance ``E[w^2 h_i^2] / n`` (``coupling``). The BBP threshold
    is ``D / theta_T^2``, so ``efficiency = E[w u_i]^2 / lambda_i^2`` (1 for ``T = y`` in expectation).

    Parameters
    ----------
    weights : array (d1,)
        The signed ``lambda_j`` (``sum lambda_j^2 = 1``).
    i : int
        The direction, 0-based.
    transforms : dict
        ``name -> T``, ``T`` acting elementwise on an array of labels.
    samples, batches : int
        Monte Carlo size, and the number of equal batches for the standard errors.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    dict
        ``name -> {"efficiency", "efficiency_se", "coupling", "spike"}`` (``spike`` = ``theta_T``).
    """
    from ._checks import as_generator

    lam = np.asarray(weights, dtype=float).ravel()
    i = check_int("i", i, minimum=0)
    if i >= lam.size:
        raise ValueError(f"i = {i} is not a direction of {lam.size} weights")
    samples, batches = check_int("samples", samples, minimum=2), check_int("batches", batches, minimum=2)
    h = as_generator(rng).standard_normal((samples, lam.size))
    u = (h * h - 1.0) / np.sqrt(2.0)
    y = u @ lam
    out = {}
    for name, T in transforms.items():
        t = np.asarray(T(y), dtype=float)
        if t.shape != y.shape or not np.all(np.isfinite(t)):
            raise ValueError(f"transform {name!r} must map the labels to a finite array of the same shape")
        w = (t - t.mean()) / t.std()
        corr = np.array([np.mean(part) for part in np.array_split(w * u[:, i], batches)])
        eff = corr**2 / lam[i] ** 2
        out[name] = {"efficiency": float(np.mean(w * u[:, i]) ** 2 / lam[i] ** 2),
                     "efficiency_se": float(np.std(eff, ddof=1) / np.sqrt(batches)),
                     "coupling": float(np.mean(w * w * h[:, i] ** 2)),
                     "spike": float(np.sqrt(2.0) * np.mean(w * u[:, i]))}
    return out
