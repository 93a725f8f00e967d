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

__all__ = ["ALPHAS", "PAIRED_LINKS", "paired_links", "paired_sizes"]

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
