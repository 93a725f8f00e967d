"""The paper's figures as sweeps (SPEC §5): one registry shared by the book's chapters and ``hiermodel figure``.

Each figure has a grid per *scale*: ``"ci"`` runs in minutes on two cores (the book's size), ``"paper"`` is the
paper's size (``d`` up to 400–800), which needs a large machine or a Dask cluster. A chapter does::

    from hiermodel import figures, sweep
    df = sweep.run(figures.grid("fig2", "ci"), cache_dir="_build/sweeps")
    fig = figures.plot("fig2", sweep.add_theory(df))

and ``hiermodel figure fig2 --scale paper --scheduler tcp://host:8786`` reruns the same figure at full size.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from . import sweep as _sweep

__all__ = ["FIGURES", "SCALES", "FigureSpec", "grid", "plot", "make", "names"]

SCALES = ("ci", "paper")


def _alphas(lo, hi, step):
    return [round(float(a), 10) for a in np.arange(lo, hi + step / 2, step)]


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A paper figure: what it shows, its grid at each scale (``Grid`` keyword arguments), and how to draw it."""

    name: str
    title: str
    claims: str
    grids: dict
    plot: object


# --------------------------------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------------------------------
def _mean_sem(df, by, col):
    return _sweep.mean_sem(df, by, col).reset_index()


def _styles(df):
    modes = list(dict.fromkeys(df["mode"]))
    return {m: ("-" if m == "hermite" else "--") for m in modes}


def _curves(ax, df, col, family, *, theory=None, label_fmt="{}"):
    """Mean ± s.e.m. of ``col`` against ``alpha``, one curve per value of ``family`` (and line style per mode)."""
    styles = _styles(df)
    colors = {}
    for (val, mode), part in df.groupby([family, "mode"], sort=True):
        stats = _mean_sem(part, "alpha", col)
        color = colors.setdefault(val, f"C{len(colors)}")
        label = label_fmt.format(val) + ("" if len(styles) == 1 else f" ({mode})")
        ax.errorbar(stats["alpha"], stats["mean"], yerr=stats["sem"], fmt="o", ls=styles[mode], ms=3, capsize=2,
                    color=color, label=label)
        if theory is not None and theory in part.columns and mode == next(iter(styles)):
            th = part.groupby("alpha")[theory].mean()
            ax.plot(th.index, th.values, ":", color=color, lw=1)
    ax.set_xlabel(r"$\alpha = \log n / \log d$")
    ax.legend(fontsize=7)


def _new_figure(ncols, title):
    import matplotlib.pyplot as plt  # the caller's backend (inline in notebooks; the CLI selects Agg)

    fig, axes = plt.subplots(1, ncols, figsize=(max(6.0, 4.2 * ncols), 3.6), constrained_layout=True)
    fig.suptitle(title, fontsize=10)
    return fig, np.atleast_1d(axes)


def _plot_mse_overlap(family, label_fmt):
    def draw(df, spec):
        fig, (ax1, ax2) = _new_figure(2, spec.title)
        _curves(ax1, df, "mse", family, theory="mse_refined", label_fmt=label_fmt)
        ax1.set_ylabel("test MSE (standardised labels)")
        _curves(ax2, df, "q_h", family, label_fmt=label_fmt)
        ax2.set_ylabel(r"overlap $q_h$")
        ax1.text(0.02, 0.02, "dotted: SPEC B2 prediction", transform=ax1.transAxes, fontsize=7)
        return fig
    return draw


def _plot_fig4(df, spec):
    fig, (axA, axB, axC) = _new_figure(3, spec.title)
    long = _sweep.cos2_long(df)
    d_small, d_large = int(df["d"].min()), int(df["d"].max())
    part = long[long["d"] == d_small]
    d1 = int(part["d1"].iloc[0])
    wanted = [i for i in (1, 3, 5, 8, 12, 15, 18, 20) if i <= d1] or list(range(1, d1 + 1))
    styles = _styles(df)
    for c, i in enumerate(wanted):
        for mode, sub in part[part["i"] == i].groupby("mode"):
            st = _mean_sem(sub, "alpha", "cos2")
            axA.plot(st["alpha"], st["mean"], marker="o", ms=3, ls=styles[mode], color=f"C{c % 10}",
                     label=f"i={i}" if mode == next(iter(styles)) else None)
            sub = sub.assign(one_minus_cos=1.0 - np.sqrt(sub["cos2"].clip(0.0, 1.0)))
            st = _mean_sem(sub, "n", "one_minus_cos")
            axB.loglog(st["n"], st["mean"], marker="o", ms=3, ls=styles[mode], color=f"C{c % 10}")
    ns = np.array(sorted(part["n"].unique()), dtype=float)
    axB.loglog(ns, 0.5 * ns[0] / ns, "k:", lw=1, label=r"$\propto 1/n$")
    axA.set_xlabel(r"$\alpha$")
    axA.set_ylabel(rf"$\cos^2\theta_i$ (d = {d_small})")
    axA.legend(fontsize=6, ncol=2)
    axB.set_xlabel("n")
    axB.set_ylabel(r"$1 - \cos\theta_i$")
    axB.legend(fontsize=7)
    big = df[df["d"] == d_large]
    for mode, sub in big.groupby("mode"):
        st = _mean_sem(sub.assign(frac=sub["recovered"] / sub["d1"]), "alpha", "frac")
        axC.errorbar(st["alpha"], st["mean"], yerr=st["sem"], fmt="o", ls=styles[mode], ms=3, label=f"{mode}")
    if "recovered_theory" in big.columns:
        th = big.groupby("alpha")[["recovered_theory", "d1"]].mean()
        axC.step(th.index, th["recovered_theory"] / th["d1"], "k:", where="post", label="m(n)/d1 (BBP)")
    axC.set_xlabel(r"$\alpha$")
    axC.set_ylabel(rf"recovered / $d_1$ (d = {d_large}; $\cos^2 > 1/2$)")
    axC.legend(fontsize=7)
    return fig


def _plot_rate(df, spec):
    fig, (ax,) = _new_figure(1, spec.title)
    styles = _styles(df)
    for mode, sub in df.groupby("mode"):
        st = _mean_sem(sub, "n", "mse")
        ax.errorbar(st["n"], st["mean"], yerr=st["sem"], fmt="o", ls=styles[mode], ms=3, label=f"MSE ({mode})")
    for col, ls, label in (("mse_tail", "k:", "tail sum (Eq. 2.15)"), ("mse_refined", "k-.", "SPEC B2")):
        if col in df.columns:
            th = df.groupby("n")[col].mean()
            ax.plot(th.index, th.values, ls, lw=1, label=label)
    gamma = float(df["gamma"].iloc[0])
    if gamma > 0.5:
        beta = 1.0 - 1.0 / (2.0 * gamma)
        ns = np.array(sorted(df["n"].unique()), dtype=float)
        mid = df[df["n"] == ns[len(ns) // 2]]["mse"].mean()
        ax.loglog(ns, mid * (ns / ns[len(ns) // 2]) ** -beta, color="0.5", lw=1,
                  label=rf"$n^{{-{beta:g}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("test MSE")
    ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------------
_FIG2_GRIDS = {"ci": dict(d=[12, 20, 30], gamma=0.4, alpha=_alphas(1.6, 3.8, 0.2), seeds=4, g="id"),
               "paper": dict(d=[120, 250, 400], gamma=0.4, alpha=_alphas(1.6, 3.0, 0.1), seeds=10, g="id")}

FIGURES = {
    "fig2": FigureSpec(
        "fig2", "Fig. 2: gamma = 0.4, g = id: test MSE and overlap q_h vs alpha", "C3, C5, C9",
        _FIG2_GRIDS, _plot_mse_overlap("d", "d = {}")),
    "fig3": FigureSpec(
        "fig3", "Fig. 3: one d, gamma = 0 ... 1: test MSE and overlap q_h vs alpha", "C5, C6",
        {"ci": dict(d=20, gamma=_alphas(0.0, 1.0, 0.2), alpha=_alphas(1.6, 3.4, 0.2), seeds=4, g="id"),
         "paper": dict(d=400, gamma=_alphas(0.0, 1.0, 0.2), alpha=_alphas(1.6, 3.0, 0.1), seeds=10, g="id")},
        _plot_mse_overlap("gamma", "gamma = {}")),
    "fig4": FigureSpec(
        "fig4", "Fig. 4: gamma = 0.4: per-direction recovery, 1/n refinement, recovered count", "C3, C4, B1",
        {"ci": dict(d=[16, 24], gamma=0.4, alpha=_alphas(1.6, 3.4, 0.2), seeds=4, g="id",
                    mode=["hermite", "gaussian"]),
         "paper": dict(d=[400, 800], gamma=0.4, alpha=_alphas(1.8, 2.8, 0.1), seeds=10, g="id")},
        _plot_fig4),
    "fig5": FigureSpec(  # Fig. 2 with the nonlinear link
        "fig5", "Fig. 5: g = tanh, gamma = 0.4: test MSE and overlap q_h vs alpha", "C7",
        {scale: {**grid, "g": "tanh"} for scale, grid in _FIG2_GRIDS.items()}, _plot_mse_overlap("d", "d = {}")),
    "rate": FigureSpec(
        "rate", "Rate check: gamma = 1: MSE vs the tail sum and the n^(-1/2) rate", "C5, B2",
        {"ci": dict(d=24, gamma=1.0, alpha=_alphas(1.6, 3.4, 0.2), seeds=4, g="id", mode=["hermite", "gaussian"]),
         "paper": dict(d=800, gamma=1.0, alpha=_alphas(1.9, 2.9, 0.1), seeds=10, g="id")},
        _plot_rate),
}


def names() -> list:
    """The registered figure names."""
    return list(FIGURES)


def _spec(name):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}: choose from {names()}")
    return FIGURES[name]


def grid(name: str, scale: str = "ci", **overrides) -> _sweep.Grid:
    """The :class:`hiermodel.sweep.Grid` of figure ``name`` at ``scale``, with keyword ``overrides`` applied."""
    spec = _spec(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose from {SCALES}")
    kwargs = dict(spec.grids[scale])
    kwargs.update(overrides)
    return _sweep.Grid(**kwargs)


def plot(name: str, df):
    """Draw figure ``name`` from a sweep table (theory columns are used when present); returns the Figure."""
    spec = _spec(name)
    if len(df) == 0:
        raise ValueError("the table is empty")
    return spec.plot(df, spec)


def make(name: str, scale: str = "ci", out_dir=".", *, overrides=None, **run_kwargs) -> dict:
    """Run figure ``name``'s sweep, add the theory, write ``<name>-<scale>.csv`` and ``.png`` into ``out_dir``.

    ``run_kwargs`` go to :func:`hiermodel.sweep.run` (``cache_dir``, ``workers``, ``scheduler``, ``progress``, ...).
    Returns ``{"table": path, "png": path, "df": DataFrame}``.
    """
    g = grid(name, scale, **(overrides or {}))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = _sweep.add_theory(_sweep.run(g, **run_kwargs))
    table = out / f"{name}-{scale}.csv"
    df.to_csv(table, index=False)
    fig = plot(name, df)
    png = out / f"{name}-{scale}.png"
    fig.savefig(png, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return {"table": table, "png": png, "df": df}
