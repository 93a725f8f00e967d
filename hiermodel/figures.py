"""The book's figures as sweeps: one registry shared by the chapters and ``hiermodel figure``.

Each entry holds the grid of one experiment at two *scales*: ``"ci"`` is exactly what its chapter runs (minutes on
two cores), ``"paper"`` the same experiment at the paper's size (a large machine or a Dask cluster). Some have a
third, ``"stored"``: a run too long for CI whose table is committed under ``book/data/`` (``tools/store_sweep.py``).
A chapter does::

    from hiermodel import figures, sweep
    df = sweep.add_theory(sweep.run(figures.grid("fig2", SCALE), cache_dir=CACHE))
    fig = figures.plot("fig2", df)

and ``hiermodel figure fig2 --scale ci`` reruns the same numbers (``--scale paper``: the same experiment, bigger).

Figures carry no titles (captions live in the book), use lowercase axis labels, and are ``WIDTH`` wide and
``ROW_HEIGHT`` high per row of panels.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import pathlib

import numpy as np

from . import sweep, theory
from .hermite import feature_dimension
from .tables import first_layer_error, half_way, long_form, mean_sem

__all__ = ["FIGURES", "SCALES", "WIDTH", "ROW_HEIGHT", "FigureSpec", "grid", "plot", "make", "names", "separation_plot",
           "recovery_sizes", "stored_table"]

SCALES = ("ci", "paper", "stored")
WIDTH, ROW_HEIGHT = 7.0, 3.0  # inches: one size convention for every figure
GE = "gaussian-equivalent"
_GRID_KEYS = frozenset(inspect.signature(sweep.Grid).parameters)
_MODEL_LABEL = {"hermite": "real", GE: "GE"}
_ALPHA_LABEL = r"$\alpha = \log n / \log d$"


def _alphas(lo, hi, step):
    return [round(float(a), 10) for a in np.arange(lo, hi + step / 2, step)]


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One registered experiment.

    Attributes
    ----------
    name, caption, claims : str
        Registry key, a one-line description (for ``--help`` and captions; never drawn) and the claims it checks.
    chapter : str
        The chapter and the name of its figure whose sweep the ``"ci"`` grid reproduces.
    grids : dict
        ``scale -> Grid keyword arguments``, plus the keys named in ``extras``.
    plot : callable
        ``plot(df) -> matplotlib.figure.Figure``.
    extras : tuple of str
        Keys of ``grids`` that are not ``Grid`` arguments but parameters of ``per_d``.
    per_d : callable, optional
        ``per_d(d, kwargs) -> dict``: ``Grid`` arguments that depend on ``d`` (one grid per ``d``, added up).
    """

    name: str
    caption: str
    claims: str
    chapter: str
    grids: dict
    plot: object
    extras: tuple = ()
    per_d: object = None


# --------------------------------------------------------------------------------------------------------------------
# Per-d grid rules
# --------------------------------------------------------------------------------------------------------------------
def _single(kw, key, default):
    value = kw.get(key, default)
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) != 1:
        raise ValueError(f"this figure's per-d sample sizes need one value of {key}, got {value!r}")
    return values[0]


def recovery_sizes(d, *, gamma, eps=0.5, q=2, deltas=(0.25, 0.5, 0.75)) -> np.ndarray:
    """Chapter 3's nested path of sample sizes at dimension ``d`` (ints, sorted, distinct).

    Two points per octave from ``n_1* / 16`` to ``40 n_{d1}*`` (BBP thresholds ``n_k* = D / (2 lambda_k^2)``), plus
    the matching-bound points ``n_k d^{-+delta}`` for each ``delta``, with the theorem's ``n_k = d^q / lambda_k^2``.
    """
    n_star = theory.recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention="bbp")
    base = n_star[0] * 2.0 ** (np.arange(-8, 40) / 2)
    base = base[base <= 40 * n_star[-1]]
    n_k = theory.recovery_thresholds(d=d, gamma=gamma, eps=eps, q=q, convention="paper")
    matching = [n_k * float(d) ** (sign * delta) for delta in deltas for sign in (-1, 1)]
    return np.unique(np.round(np.concatenate([base, *matching])).astype(int))


def _recovery_rule(d, kw):
    if "alpha" in kw or "n" in kw:
        return {}
    sizes = recovery_sizes(d, gamma=_single(kw, "gamma", None), eps=_single(kw, "eps", 0.5),
                           q=_single(kw, "q", 2), deltas=tuple(kw["deltas"]))
    return {"n": [int(v) for v in sizes]}


def _width_rule(d, kw):
    """``eps`` giving ``d1 = floor(d^eps)`` = the ``d1`` entry, and ``n = ratio * D`` for each of ``ratios``."""
    out = {}
    if "eps" not in kw:
        out["eps"] = math.log(kw["d1"] + 0.5) / math.log(d)
    if "ratios" in kw and "n" not in kw and "alpha" not in kw:
        D = feature_dimension(d, _single(kw, "q", 2))
        out["n"] = [int(r) * D for r in kw["ratios"]]
    return out


def _wide_rule(d, kw):
    """``fig4wide``: the ``eps`` giving ``d1 = floor(d^eps)`` = the ``d1`` entry (a first layer wider than
    ``d^(1/2)``), and chapter 3's nested path for that width (no matching-bound points)."""
    eps = _single(kw, "eps", None) if "eps" in kw else theory.width_exponent(d, kw["d1"])
    out = {"eps": eps}
    if "alpha" not in kw and "n" not in kw:
        sizes = recovery_sizes(d, gamma=_single(kw, "gamma", None), eps=eps, q=_single(kw, "q", 2), deltas=())
        out["n"] = [int(v) for v in sizes]
    return out


# --------------------------------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------------------------------
def _new_figure(ncols, nrows=1, **kw):
    import matplotlib.pyplot as plt  # the caller's backend (inline in notebooks; the CLI selects Agg)

    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, ROW_HEIGHT * nrows), constrained_layout=True,
                             squeeze=False, **kw)
    return fig, axes.ravel()


def _log(ax, *, x=True, y=True):
    """Log scales without minor tick labels (they overlap on short ranges)."""
    from matplotlib.ticker import NullFormatter

    for on, axis, set_scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if on:
            set_scale("log")
            axis.set_minor_formatter(NullFormatter())


def _errorbar(ax, stats, *, color, open_marker=False, ls="none", label=None, marker="o"):
    ax.errorbar(stats.index, stats["mean"], yerr=stats["sem"], fmt=marker, ls=ls, ms=3.5, capsize=2, lw=0.8,
                color=color, mfc="white" if open_marker else color, label=label)


def _styled(df, key):
    """Values of ``key`` in the table, each with (open marker?, line style): the first filled, the others open."""
    values = list(dict.fromkeys(df[key]))
    return {v: (k > 0, "none" if k == 0 else ":") for k, v in enumerate(values)}


def _one(df, col):
    values = df[col].unique()
    if len(values) != 1:
        raise ValueError(f"this figure needs one value of {col} per curve, the table has {sorted(values.tolist())}")
    return values[0]


def _theory_kw(part):
    return dict(d=int(_one(part, "d")), gamma=float(_one(part, "gamma")), eps=float(_one(part, "eps")),
                q=int(_one(part, "q")))


def _plot_mse_qh(df, *, style_by):
    """Test MSE and q_h against alpha, a colour per d and a marker style per ``style_by`` (model or link);
    lines: the B2 prediction of the MSE and SPEC B1's q_h = mean_i (1 - n_i*/n)_+ (chapter 4, Fig. 2)."""
    fig, (ax0, ax1) = _new_figure(2)
    styles = _styled(df, style_by)
    for k, d in enumerate(sorted(df["d"].unique())):
        part = df[df["d"] == d]
        color = f"C{k}"
        for value, (open_marker, ls) in styles.items():
            sub = part[part[style_by] == value]
            suffix = "" if len(styles) == 1 else f", {_MODEL_LABEL.get(value, value)}"
            for ax, col in ((ax0, "mse"), (ax1, "q_h")):
                st = mean_sem(sub, "alpha", col)
                _errorbar(ax, st, color=color, open_marker=open_marker, ls=ls,
                          label=f"$d = {d}$ ($d_1 = {int(part['d1'].iloc[0])}$){suffix}")
                if not open_marker and len(st) >= 2 and st["mean"].iloc[0] != st["mean"].iloc[-1]:
                    ax.axvline(half_way(st.index, st["mean"]), ymin=0.93, ymax=1.0, color=color, lw=2)
        th = part.groupby("alpha")["n"].first()
        if "mse_refined" in part.columns:
            ax0.plot(th.index, part.groupby("alpha")["mse_refined"].mean(), "-", color=color, lw=1)
        for (gamma, eps, q), sub in part.groupby(["gamma", "eps", "q"]):
            n_star = theory.recovery_thresholds(d=int(d), gamma=float(gamma), eps=float(eps), q=int(q))
            ns = sub.groupby("alpha")["n"].first()
            ax1.plot(ns.index, np.clip(1 - n_star[None, :] / ns.to_numpy()[:, None], 0, None).mean(axis=1), "-",
                     color=color, lw=1)
    ax0.set_ylabel("test MSE (standardised labels)")
    ax1.set_ylabel("overlap $q_h$")
    for ax in (ax0, ax1):
        ax.set_xlabel(_ALPHA_LABEL)
    ax0.legend(frameon=False, fontsize=7)
    return fig


def _plot_fig2(df):
    return _plot_mse_qh(df, style_by="model")


def _plot_fig5(df):
    """Fig. 2's panels with a marker style per link; when the table carries the link-constant predictions
    (:func:`hiermodel.experiments.link_theory`), dashed lines: the Gaussian-equivalent q_h and first-layer error of
    g = tanh from its own constants, in the BBP form of the identity's solid lines (chapter 5)."""
    fig = _plot_mse_qh(df, style_by="g")
    if "q_h_link_bbp" in df.columns:
        ax0, ax1 = fig.axes[:2]
        for k, d in enumerate(sorted(df["d"].unique())):
            part = df[(df["d"] == d) & (df["g"] != "id")]
            th = part.groupby("alpha")[["q_h_link_bbp", "mse_fl_link_bbp"]].mean()
            ax0.plot(th.index, th["mse_fl_link_bbp"], "--", color=f"C{k}", lw=1)
            ax1.plot(th.index, th["q_h_link_bbp"], "--", color=f"C{k}", lw=1)
    return fig


def _plot_fig3(df):
    """Test MSE (left) and overlap q_h (right) against alpha for each gamma, one row per model; lines (GE rows): the
    B2 prediction of the MSE and SPEC B1's q_h = mean_i (1 - n_i*/n)_+ (chapter 4, the paper's Fig. 3 with both of
    its panels)."""
    models = list(dict.fromkeys(df["model"]))
    fig, axes = _new_figure(2, nrows=len(models), sharex=True)
    gammas = sorted(df["gamma"].unique())
    for row, model in enumerate(models):
        ax0, ax1 = axes[2 * row], axes[2 * row + 1]
        part = df[df["model"] == model]
        for k, gamma in enumerate(gammas):
            sub = part[part["gamma"] == gamma]
            color = _viridis(k, len(gammas))
            _errorbar(ax0, mean_sem(sub, "alpha", "mse"), color=color, label=rf"$\gamma = {gamma:g}$")
            _errorbar(ax1, mean_sem(sub, "alpha", "q_h"), color=color)
            if model != GE:
                continue
            if "mse_refined" in sub.columns:
                th = sub.groupby("alpha")["mse_refined"].mean()
                ax0.plot(th.index, th.values, "-", color=color, lw=1)
            for (d, eps, q), one in sub.groupby(["d", "eps", "q"]):
                n_star = theory.recovery_thresholds(d=int(d), gamma=float(gamma), eps=float(eps), q=int(q))
                ns = one.groupby("alpha")["n"].first()
                q_h = np.clip(1 - n_star[None, :] / ns.to_numpy()[:, None], 0, None).mean(axis=1)
                ax1.plot(ns.index, q_h, "-", color=color, lw=1)
        name = "real Hermite model" if model == "hermite" else "Gaussian-equivalent model"
        for ax, label in ((ax0, "test MSE"), (ax1, "overlap $q_h$")):
            ax.set_ylabel(f"{label} ({_MODEL_LABEL.get(model, model)})")
            ax.set_xlabel(_ALPHA_LABEL)
            ax.tick_params(labelbottom=True)  # a shared x axis hides the upper rows' tick labels, not their label
        ax0.text(0.03, 0.04, name, transform=ax0.transAxes, fontsize=8)
    axes[0].legend(frameon=False, fontsize=7)
    return fig


def _viridis(k, count):
    import matplotlib

    return matplotlib.colormaps["viridis"](k / max(count - 1, 1))


def _plot_fig4(df):
    """The paper's Fig. 4 at the largest d: (a) cos^2 theta_i against alpha per direction, GE filled and real open;
    (b) 1 - |<u_k, A_k>| against n / n_k* (GE, above 4 n_k*), with a 1/n guide; (c) recovered directions against
    alpha with Corollary 3.1's staircase m_n (chapter 3)."""
    fig, (axA, axB, axC) = _new_figure(3)
    d = int(df["d"].max())
    part = df[df["d"] == d]
    kw = _theory_kw(part)
    d1 = int(part["d1"].iloc[0])
    styles = _styled(part, "model")
    cos2 = long_form(part, "cos2")
    for model, (open_marker, ls) in styles.items():
        for i in range(1, d1 + 1):
            st = mean_sem(cos2[(cos2["model"] == model) & (cos2["i"] == i)], "alpha", "cos2")
            _errorbar(axA, st, color=_viridis(i - 1, d1), open_marker=open_marker, ls=ls,
                      label=f"$i = {i}$" if not open_marker else None)
    axA.set_xlabel(_ALPHA_LABEL)
    axA.set_ylabel(rf"$\cos^2\theta_i$ ($d = {d}$)")
    axA.legend(frameon=False, fontsize=6)
    if "overlap_1" in part.columns:
        first = next(iter(styles))
        ov = long_form(part[part["model"] == (GE if GE in styles else first)], "overlap")
        n_star = theory.recovery_thresholds(**kw)
        for k in range(1, d1 + 1):
            sub = ov[(ov["i"] == k) & (ov["n"] >= 4 * n_star[k - 1])]
            if sub.empty:
                continue
            st = mean_sem(sub.assign(loss=1 - np.sqrt(sub["overlap"].clip(0, 1))), "n", "loss")
            st.index = st.index / n_star[k - 1]
            _errorbar(axB, st, color=_viridis(k - 1, d1))
        guide = np.geomspace(4, 40, 10)
        axB.plot(guide, 0.5 / guide, "k--", lw=1, label=r"$\propto 1/n$")
        _log(axB)
        axB.legend(frameon=False, fontsize=7)
    axB.set_xlabel("$n / n_k^*$")
    axB.set_ylabel(r"$1 - |\langle u_k, A_k\rangle|$")
    for model, (open_marker, ls) in styles.items():
        sub = part[part["model"] == model]
        _errorbar(axC, mean_sem(sub, "alpha", "recovered"), color="C0" if not open_marker else "C3",
                  open_marker=open_marker, ls=ls, label=_MODEL_LABEL[model])
    ns = part.groupby("alpha")["n"].first()
    axC.step(ns.index, theory.recovered_count(ns.to_numpy(), convention="corollary", **kw), "k-", where="post",
             lw=1, label="$m_n$ (Cor. 3.1)")
    axC.set_xlabel(_ALPHA_LABEL)
    axC.set_ylabel(f"recovered directions (of $d_1 = {d1}$)")
    axC.legend(frameon=False, fontsize=7)
    return fig


def _error_curves(ax, df, gamma, *, refined, asymptote):
    """Into ``ax``, for each d at this gamma: the test MSE (filled) and first-layer error (open) against n, the tail
    sum (dotted) and the B2 sum (solid); ``asymptote``: the label of the continuum form (dashed, of the B2 sum if
    ``refined`` else of the tail sum), or None to leave it out. Shared by the rate and regimes figures."""
    ds = sorted(df["d"].unique())
    for k, d in enumerate(ds):
        part = df[(df["gamma"] == gamma) & (df["d"] == d)]
        kw, color, first = _theory_kw(part), f"C{k}", k == 0
        suffix = "" if len(ds) == 1 else f", $d = {d}$"
        _errorbar(ax, mean_sem(part, "n", "mse"), color=color, label="test MSE" + suffix)
        _errorbar(ax, mean_sem(part, "n", "mse_fl"), color=color, open_marker=True, label="first-layer error" + suffix)
        nn = np.geomspace(part["n"].min(), part["n"].max(), 300)
        ax.plot(nn, theory.mse_prediction(nn, **kw), ":", color="k", lw=1,
                label="tail sum (Eq. 2.15)" if first else None)
        ax.plot(nn, theory.mse_prediction(nn, **kw, refined=True), "-", color="k", lw=1,
                label="B2 sum" if first else None)
        if asymptote is not None:
            ax.plot(nn, theory.mse_asymptotic(nn, **kw, refined=refined), "--", color="0.5", lw=1,
                    label=asymptote if first else None)


def _plot_rate(df):
    """Test MSE (filled) and first-layer error (open) against n, one panel per gamma (a colour per d); lines: the
    tail sum (dotted), the B2 sum (solid) and its continuum asymptote (dashed) (chapter 4, the rate)."""
    gammas = sorted(df["gamma"].unique())
    fig, axes = _new_figure(len(gammas), sharey=True)
    df = df.assign(mse_fl=first_layer_error(df))
    for ax, gamma in zip(axes, gammas):
        _error_curves(ax, df, gamma, refined=True, asymptote=r"$C (n/n_1^*)^{-\beta}$" if gamma > 0.5 else None)
        _log(ax)
        ax.set_xlabel("$n$")
        ax.text(0.04, 0.04, rf"$\gamma = {gamma:g}$", transform=ax.transAxes, fontsize=8)
    axes[0].set_ylabel("error (standardised labels)")
    handles, labels = axes[0].get_legend_handles_labels()  # one legend below the panels, clear of the data
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), frameon=False, fontsize=7)
    return fig


def _plot_scaling(df):
    """First-layer error (open) and test MSE (filled) against D at fixed n / D, one colour per ratio; lines: the
    B2 sum at each ratio, a function of n / D alone (chapter 4, d-scaling)."""
    fig, (ax,) = _new_figure(1)
    df = df.assign(mse_fl=first_layer_error(df), ratio=df["n"] // df["D"])
    for k, (ratio, part) in enumerate(df.groupby("ratio")):
        _errorbar(ax, mean_sem(part, "D", "mse"), color=f"C{k}", ls="-", label=f"test MSE, $n = {ratio} D$")
        _errorbar(ax, mean_sem(part, "D", "mse_fl"), color=f"C{k}", open_marker=True, ls=":",
                  label=f"first-layer error, $n = {ratio} D$")
        if "mse_refined" in part.columns:
            th = part.groupby("D")["mse_refined"].mean()
            ax.plot(th.index, th.values, "-", color="0.5", lw=1)
    _log(ax)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    Ds = sorted(df["D"].unique())  # a short log range: label the D values and 1, 2, 3, 5 x 10^k
    ax.set_xticks(Ds, [str(int(D)) for D in Ds])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("feature dimension $D$")
    ax.set_ylabel("error (standardised labels)")
    ax.legend(frameon=False, fontsize=7)
    return fig


def _plot_floor(df):
    """Test MSE (filled) and first-layer error (open) against n for each d (real model, gamma = 1); lines: the B2
    prediction and an n^(-1/2) guide through its last point (chapter 4, the finite-d floor)."""
    fig, (ax,) = _new_figure(1)
    df = df.assign(mse_fl=first_layer_error(df))
    for k, d in enumerate(sorted(df["d"].unique())):
        part = df[df["d"] == d]
        kw = _theory_kw(part)
        _errorbar(ax, mean_sem(part, "n", "mse"), color=f"C{k}", label=f"$d = {d}$: test MSE")
        _errorbar(ax, mean_sem(part, "n", "mse_fl"), color=f"C{k}", open_marker=True,
                  label=f"$d = {d}$: first-layer error")
        nn = np.geomspace(part["n"].min(), part["n"].max(), 200)
        b2 = theory.mse_prediction(nn, **kw, refined=True)
        ax.plot(nn, b2, "-", color=f"C{k}", lw=1)
        ax.plot(nn, b2[-1] * (nn / nn[-1]) ** -0.5, "--", color=f"C{k}", lw=0.8)
    _log(ax)
    ax.set_xlabel("$n$")
    ax.set_ylabel("error (standardised labels)")
    ax.legend(frameon=False, fontsize=7)
    return fig


def _plot_links(df, panel_by):
    """First-layer error (filled) and test MSE (open) against n for g = id and tanh, one panel per ``panel_by``
    value (a colour per link); lines, when the table carries them (:func:`hiermodel.experiments.link_theory`): the
    Gaussian-equivalent first-layer error from each link's own constants, first-order form (solid) and BBP form
    (dotted) (chapter 5, C7 at gamma > 1/2)."""
    keys = sorted(df[panel_by].unique())
    fig, axes = _new_figure(len(keys), sharey=True)
    df = df.assign(mse_fl=first_layer_error(df))
    links = list(dict.fromkeys(df["g"]))
    for ax, key in zip(axes, keys):
        part = df[df[panel_by] == key]
        for k, g in enumerate(links):
            sub, color = part[part["g"] == g], f"C{k}"
            _errorbar(ax, mean_sem(sub, "n", "mse_fl"), color=color, label=f"first-layer error, $g = $ {g}")
            _errorbar(ax, mean_sem(sub, "n", "mse"), color=color, open_marker=True, label=f"test MSE, $g = $ {g}")
            for col, ls in (("mse_fl_link", "-"), ("mse_fl_link_bbp", ":")):
                if col in sub.columns:
                    th = sub.groupby("n")[col].mean()
                    ax.plot(th.index, th.values, ls, color=color, lw=1)
        _log(ax)
        ax.set_xlabel("$n$")
        name = r"\gamma" if panel_by == "gamma" else panel_by
        ax.text(0.04, 0.04, f"${name} = {key:g}$", transform=ax.transAxes, fontsize=8)
    axes[0].set_ylabel("error (standardised labels)")
    axes[0].legend(frameon=False, fontsize=7)
    return fig


# --- chapter 4, issue 13: gamma <= 1/2 and the late regime (B2, B3, C5) ---------------------------------------------
def _plot_regimes(df):
    """First-layer error (open) and test MSE (filled) against n on a linear error scale, one panel per gamma
    (gamma <= 1/2, where the error stays of order 1); lines: the tail sum (dotted), the B2 sum (solid) and the
    continuum tail form (dashed: 1 - Z^2 m^(1-2 gamma)/(1-2 gamma), or B3's 1 - Z^2 ln m) (chapter 4)."""
    gammas = sorted(df["gamma"].unique())
    fig, axes = _new_figure(len(gammas), sharey=True)
    df = df.assign(mse_fl=first_layer_error(df))
    for ax, gamma in zip(axes, gammas):
        _error_curves(ax, df, gamma, refined=False, asymptote="continuum tail form" if gamma > 0 else None)
        _log(ax, y=False)
        ax.set_xlabel("$n$")
        ax.text(0.96, 0.9, rf"$\gamma = {gamma:g}$", transform=ax.transAxes, fontsize=8, ha="right")
    axes[0].set_ylabel("error (standardised labels)")
    axes[0].legend(frameon=False, fontsize=7, loc="lower left")
    return fig


def _plot_late(df):
    """n / D times the first-layer error (open) and the test MSE (filled) against n, one panel per gamma; lines:
    SPEC B2's late value d1 + 4 (dashed), the plain BBP value d1 (dotted), and n / D times the B2 sum (thin grey)
    and its strong-feature form (solid) (chapter 4, B2's late regime D (d1 + 4) / n)."""
    from .theory import mse_prediction_strong

    gammas = sorted(df["gamma"].unique())
    fig, axes = _new_figure(len(gammas), sharey=True)
    df = df.assign(mse_fl=first_layer_error(df))
    df = df.assign(fl_scaled=df["mse_fl"] * df["n"] / df["D"], mse_scaled=df["mse"] * df["n"] / df["D"])
    ds = sorted(df["d"].unique())
    for ax, gamma in zip(axes, gammas):
        for k, d in enumerate(ds):
            part = df[(df["gamma"] == gamma) & (df["d"] == d)]
            kw, color, first = _theory_kw(part), f"C{k}", k == 0
            D, d1 = int(_one(part, "D")), int(_one(part, "d1"))
            suffix = "" if len(ds) == 1 else f", $d = {d}$"
            _errorbar(ax, mean_sem(part, "n", "mse_scaled"), color=color, label="test MSE" + suffix)
            _errorbar(ax, mean_sem(part, "n", "fl_scaled"), color=color, open_marker=True,
                      label="first-layer error" + suffix)
            nn = np.geomspace(part["n"].min(), part["n"].max(), 200)
            ax.plot(nn, nn / D * mse_prediction_strong(nn, **kw), "-", color=color, lw=1,
                    label="strong-feature sum" if first else None)
            ax.plot(nn, nn / D * theory.mse_prediction(nn, **kw, refined=True), "-", color="0.6", lw=0.8,
                    label="B2 sum" if first else None)
            ax.axhline(d1 + 4, color=color, ls="--", lw=1, label="$d_1 + 4$" if first else None)
            ax.axhline(d1, color=color, ls=":", lw=1, label="$d_1$" if first else None)
        _log(ax, y=False)
        ax.set_xlabel("$n$")
        ax.text(0.04, 0.04, rf"$\gamma = {gamma:g}$", transform=ax.transAxes, fontsize=8)
    axes[0].set_ylabel(r"$n / D \times$ error")
    axes[0].legend(frameon=False, fontsize=7)
    return fig


# --- chapter 6 (C8): Algorithm 1 against the kernel baselines ------------------------------------------------------
_LEARNER_STYLE = {"layerwise": ("C0", "o", "Algorithm 1"), "krr-rbf": ("C1", "s", "RBF kernel ridge"),
                  "krr-poly": ("C2", "^", "polynomial kernel, degree 2q"),
                  "oracle": ("C3", "D", "oracle: Hermite LS, degree <= 2q")}


def _kernel_rule(d, kw):
    """``alpha`` (the registered ``alphas`` unless overridden) capped at ``n <= n_max``; the oracle only where its
    basis has at most ``oracle_max`` terms. An explicit ``n`` is left as given."""
    from .baselines import basis_size

    learners = kw.get("learner", "layerwise")
    learners = [learners] if isinstance(learners, str) else list(learners)
    if basis_size(d, 2 * _single(kw, "q", 2)) > kw["oracle_max"]:
        learners = [v for v in learners if v != "oracle"]
    if "n" in kw:
        return {"learner": learners}
    alphas = kw["alpha"] if "alpha" in kw else kw["alphas"]
    alphas = [a for a in (alphas if isinstance(alphas, (list, tuple)) else [alphas]) if d ** a <= kw["n_max"]]
    return {"alpha": alphas, "learner": learners}


def _plot_kernels(df):
    """Test MSE against alpha, one panel per d, a marker per learner; lines: the kernel staircase 1 - E_{<= l}
    (mean over the draws), and a tick at the oracle's basis size binom(d + 2q, 2q) (chapter 6)."""
    from .baselines import add_staircase, basis_size, learner_of

    df = df.assign(learner=learner_of(df))
    if "mse_staircase" not in df.columns:
        df = add_staircase(df)
    ds = sorted(df["d"].unique())
    fig, axes = _new_figure(len(ds), sharey=True)
    for ax, d in zip(axes, ds):
        part = df[df["d"] == d]
        for learner, (color, marker, label) in _LEARNER_STYLE.items():
            sub = part[part["learner"] == learner]
            if len(sub):
                _errorbar(ax, mean_sem(sub, "alpha", "mse"), color=color, marker=marker, ls=":", label=label)
        base = part[part["learner"] == part["learner"].iloc[0]]
        grid_a = np.linspace(base["alpha"].min(), base["alpha"].max(), 400)
        stairs = [theory.kernel_staircase({0: r.E_0, 2: r.E_2, 4: r.E_4}, grid_a)
                  for r in base.drop_duplicates("seed").itertuples()]
        ax.plot(grid_a, np.mean(stairs, axis=0), "-", color="0.3", lw=1, label="kernel staircase (theory)")
        q = int(_one(part, "q"))
        ax.axvline(math.log(basis_size(int(d), 2 * q)) / math.log(d), ymin=0.0, ymax=0.06, color="C3", lw=2)
        ax.set_xlabel(_ALPHA_LABEL)
        ax.text(0.96, 0.93, f"$d = {d}$", transform=ax.transAxes, fontsize=8, ha="right")
    axes[0].set_ylabel("test MSE")
    axes[0].legend(frameon=False, fontsize=6, loc="lower left")
    return fig


def separation_plot(crossings):
    """The sample size each learner needs to reach a test MSE level, against d (log-log), with the fitted power
    laws. ``crossings``: a table with columns ``learner, level, d, n, low, high`` (estimate and interval) and
    ``slope`` (the fitted exponent of that learner and level)."""
    import pandas as pd

    if not isinstance(crossings, pd.DataFrame) or not {"learner", "level", "d", "n", "low", "high",
                                                         "slope"} <= set(crossings.columns):
        raise ValueError("crossings must be a DataFrame with columns learner, level, d, n, low, high, slope")
    fig, (ax,) = _new_figure(1)
    for (learner, level), part in crossings.groupby(["learner", "level"], sort=False):
        color, marker, label = _LEARNER_STYLE[learner]
        part = part.sort_values("d")
        open_marker = level < crossings["level"].max()
        ax.errorbar(part["d"], part["n"], yerr=[part["n"] - part["low"], part["high"] - part["n"]], fmt=marker,
                    color=color, mfc="white" if open_marker else color, ms=4, capsize=2, lw=0.8,
                    label=f"{label}, MSE {level:g}: slope {part['slope'].iloc[0]:.2f}")
        x = np.array([part["d"].min(), part["d"].max()], dtype=float)
        c = np.exp(np.mean(np.log(part["n"]) - part["slope"].iloc[0] * np.log(part["d"])))
        ax.plot(x, c * x ** part["slope"].iloc[0], "-", color=color, lw=0.8)
    _log(ax)
    ds = sorted(int(v) for v in crossings["d"].unique())
    ax.set_xticks(ds)
    ax.set_xticklabels([str(v) for v in ds])
    ax.set_xlabel("$d$")
    ax.set_ylabel("$n$ to reach the level")
    ax.legend(frameon=False, fontsize=6)
    return fig


# --- chapter 7 (issue 13, B4): the degree q = 3 -------------------------------------------------------------------
def cubic_sizes(d, *, q=3, octaves=(-1, 8)) -> list:
    """Chapter 7's nested path at dimension ``d``: ``n = round(D 2^(k/2))`` from ``2^octaves[0] D`` to
    ``2^octaves[1] D`` in half-octave steps, ``D = binom(d + q - 1, q)`` (sorted, distinct ints)."""
    lo, hi = (int(v) for v in octaves)
    if not lo < hi:
        raise ValueError(f"octaves must be (lo, hi) with lo < hi, got {octaves!r}")
    D = feature_dimension(d, q)
    return sorted({int(round(D * 2.0 ** (k / 2))) for k in range(2 * lo, 2 * hi + 1)})


def _cubic_rule(d, kw):
    """``cubic``: the ``eps`` giving ``d1`` = the ``d1`` entry, and :func:`cubic_sizes` (unless n or alpha is given)."""
    out = {} if "eps" in kw else {"eps": math.log(kw["d1"] + 0.5) / math.log(d)}
    if "n" not in kw and "alpha" not in kw:
        out["n"] = cubic_sizes(d, q=_single(kw, "q", 3), octaves=tuple(kw["octaves"]))
    return out


def _plot_cubic(df):
    """(a) cos^2 theta_i against n / D at the largest d, GE filled and real open, with the first-order law
    1 - P_i/n of the GE model (lines); (b) test MSE against n / D for each d, GE filled with the B2 sum (lines),
    real open (chapter 7)."""
    fig, (axA, axB) = _new_figure(2)
    df = df.assign(ratio=df["n"] / df["D"])
    d = int(df["d"].max())
    part = df[df["d"] == d]
    kw = _theory_kw(part)
    d1, D = int(part["d1"].iloc[0]), int(part["D"].iloc[0])
    styles = _styled(part, "model")
    cos2 = long_form(part, "cos2")
    for model, (open_marker, ls) in styles.items():
        for i in range(1, d1 + 1):
            st = mean_sem(cos2[(cos2["model"] == model) & (cos2["i"] == i)], "ratio", "cos2")
            _errorbar(axA, st, color=_viridis(i - 1, d1), open_marker=open_marker, ls=ls,
                      label=f"$i = {i}$" if not open_marker else None)
    lam = theory.weight_magnitudes(d1, kw["gamma"])
    P = theory.overlap_prefactors(lam, D)["subspace"]
    rr = np.geomspace(part["ratio"].min(), part["ratio"].max(), 200)
    for i in range(d1):
        law = 1.0 - P[i] / (rr * D)
        axA.plot(rr[law > 0], law[law > 0], "-", color=_viridis(i, d1), lw=0.8)
    _log(axA, y=False)
    axA.set_xlabel(f"$n / D$ ($d = {d}$, $D = {D}$)")
    axA.set_ylabel(r"$\cos^2\theta_i$")
    axA.legend(frameon=False, fontsize=6)
    for k, dd in enumerate(sorted(df["d"].unique())):
        sub = df[df["d"] == dd]
        for model, (open_marker, ls) in _styled(sub, "model").items():
            st = mean_sem(sub[sub["model"] == model], "ratio", "mse")
            _errorbar(axB, st, color=f"C{k}", open_marker=open_marker, ls=ls,
                      label=f"$d = {dd}$, {_MODEL_LABEL.get(model, model)}")
        if "mse_refined" in sub.columns:
            th = sub.groupby("ratio")["mse_refined"].mean()
            axB.plot(th.index, th.values, "-", color=f"C{k}", lw=1)
    _log(axB)
    axB.set_xlabel("$n / D$")
    axB.set_ylabel("test MSE (standardised labels)")
    axB.legend(frameon=False, fontsize=6)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------------
_FIG2 = {"ci": dict(d=[12, 20, 30], gamma=0.4, alpha=_alphas(1.6, 3.8, 0.2), seeds=4, g="id"),
         "paper": dict(d=[120, 250, 400], gamma=0.4, alpha=_alphas(1.6, 3.0, 0.1), seeds=10, g="id")}
# The real model at the paper's smallest d, computed once (hours a seed) and committed under book/data/ with its
# provenance (tools/store_sweep.py); the exact dense route, the paper's width floor(d^eps) = 10.
_FIG2_STORED = dict(d=120, gamma=0.4, alpha=_alphas(1.6, 3.4, 0.1), seeds=10, g="id", model="hermite",
                    method="dense", n_test=10000)
_BOTH = ["hermite", GE]

FIGURES = {spec.name: spec for spec in (
    FigureSpec("fig2", "gamma = 0.4, g = id: test MSE and overlap q_h against alpha (the paper's Fig. 2)",
               "C3, C5, C9", "04-scaling-law, fig-ch4-mse-qh (its id tasks are also fig5's)",
               {**_FIG2, "stored": _FIG2_STORED}, _plot_fig2),
    FigureSpec("fig3", "one d, gamma = 0 ... 1: test MSE against alpha, both models (the paper's Fig. 3)",
               "C5, C6", "04-scaling-law, fig-ch4-gamma-scan",
               {"ci": dict(d=20, gamma=_alphas(0.0, 1.0, 0.2), alpha=_alphas(1.6, 3.4, 0.2), seeds=4, g="id",
                           model=_BOTH),
                "paper": dict(d=400, gamma=_alphas(0.0, 1.0, 0.2), alpha=_alphas(1.6, 3.0, 0.1), seeds=10, g="id",
                              model=_BOTH)},
               _plot_fig3),
    FigureSpec("fig4", "gamma = 0.4: per-direction recovery, the 1/n law, recovered count (the paper's Fig. 4)",
               "C3, C4, C9, B1, B6", "03-recovery (its one sweep: every figure and check of the chapter)",
               {"ci": dict(d=[16, 23, 30], gamma=0.4, eps=0.5, seeds=6, g="id", model=[GE, "hermite"],
                           deltas=[0.25, 0.5, 0.75]),
                # d = 400 would need ~2.6 TB per task on this path (n up to 7e8 at 146 sizes): 60-150 fit 4-63 GiB
                "paper": dict(d=[60, 100, 150], gamma=0.4, eps=0.5, seeds=10, g="id", model=[GE, "hermite"],
                              deltas=[0.25, 0.5, 0.75])},
               _plot_fig4, extras=("deltas",), per_d=_recovery_rule),
    FigureSpec("fig5", "g = id and tanh, gamma = 0.4: test MSE and overlap q_h against alpha (the paper's Fig. 5)",
               "C7", "05-nonlinear, fig-ch5-fig5 (g = id and tanh in one sweep; its id half is fig2's grid)",
               {scale: {**kw, "g": ["id", "tanh"]} for scale, kw in _FIG2.items()}, _plot_fig5),
    FigureSpec("rate", "GE, gamma = 0.75, 1, 1.5: test MSE and first-layer error against n, the rate",
               "C5, B2", "04-scaling-law, fig-ch4-rate",
               {"ci": dict(d=16, d1=40, gamma=[0.75, 1.0, 1.5], n=[int(round(500 * 2 ** (k / 2))) for k in range(15)],
                           seeds=6, model=GE),
                "paper": dict(d=40, d1=120, gamma=[0.75, 1.0, 1.5],
                              n=[int(round(2000 * 2 ** (k / 2))) for k in range(19)], seeds=10, model=GE)},
               _plot_rate, extras=("d1",), per_d=_width_rule),
    FigureSpec("scaling", "GE, gamma = 1, d1 = 10: errors against D at fixed n / D (the d-dependence)",
               "C5", "04-scaling-law, fig-ch4-scale",
               {"ci": dict(d=[12, 17, 24], d1=10, ratios=[6, 24], gamma=1.0, seeds=8, model=GE),
                "paper": dict(d=[24, 34, 48], d1=10, ratios=[6, 24], gamma=1.0, seeds=10, model=GE)},
               _plot_scaling, extras=("d1", "ratios"), per_d=_width_rule),
    FigureSpec("floor", "real model, gamma = 1: test MSE and first-layer error against n, the finite-d floor",
               "B6", "04-scaling-law, fig-ch4-real-floor",
               {"ci": dict(d=[20, 30], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=3),
                "paper": dict(d=[120, 250, 400], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=10)},
               _plot_floor),
    # chapter 4 (issue 13): Theorem 3.2's own estimator (sample splitting) on the rate and floor grids, the regimes
    # gamma < 1/2 and gamma = 1/2, and B2's late regime
    FigureSpec("rate_split", "GE, gamma = 0.75, 1, 1.5, split = True: the rate with Theorem 3.2's sample splitting",
               "C5, B2", "04-scaling-law, fig-ch4-split (rate's tasks with a fresh batch for the second layer)",
               {"ci": dict(d=16, d1=40, gamma=[0.75, 1.0, 1.5], n=[int(round(500 * 2 ** (k / 2))) for k in range(15)],
                           seeds=6, model=GE, split=True),
                "paper": dict(d=40, d1=120, gamma=[0.75, 1.0, 1.5],
                              n=[int(round(2000 * 2 ** (k / 2))) for k in range(19)], seeds=10, model=GE,
                              split=True)},
               _plot_rate, extras=("d1",), per_d=_width_rule),
    FigureSpec("floor_split", "real model, gamma = 1, split = True: floor's grid with Theorem 3.2's sample splitting",
               "C5, B6", "04-scaling-law, the split rows of the real-model section (floor's tasks, fresh batch)",
               {"ci": dict(d=[20, 30], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=3, split=True),
                "paper": dict(d=[120, 250, 400], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=10, split=True)},
               _plot_floor),
    FigureSpec("regimes", "GE, gamma = 0.25 and 0.5, d1 = 20: the error law below and at gamma = 1/2",
               "C5, B2, B3", "04-scaling-law, fig-ch4-regimes",
               {"ci": dict(d=24, d1=20, gamma=[0.25, 0.5], n=[int(round(300 * 2 ** (k / 3))) for k in range(21)],
                           seeds=4, model=GE),
                "paper": dict(d=40, d1=120, gamma=[0.25, 0.5],
                              n=[int(round(1000 * 2 ** (k / 4))) for k in range(37)], seeds=10, model=GE)},
               _plot_regimes, extras=("d1",), per_d=_width_rule),
    FigureSpec("late", "GE, gamma = 0 and 0.5, d1 = 4: the late regime, first-layer error D (d1 + 4) / n (B2)",
               "B2", "04-scaling-law, fig-ch4-late",
               {"ci": dict(d=16, d1=4, gamma=[0.0, 0.5], n=[2000 * 2**k for k in range(6)], seeds=6, model=GE),
                "paper": dict(d=40, d1=6, gamma=[0.0, 0.5], n=[20000 * 2**k for k in range(7)], seeds=10, model=GE)},
               _plot_late, extras=("d1",), per_d=_width_rule),
    # chapter 3 (issue 13): Fig. 4 at the paper's d1 = 20 (GE only: eps > 1/2 keeps D small), and Eq. 3.2 against
    # Davis-Kahan over k <= 20
    FigureSpec("fig4wide", "GE, gamma = 0.4, d1 = 20: Fig. 4 at the paper's width, Eq. 3.2 against Davis-Kahan",
               "C4, Eq3.2, Fig4", "03-recovery, fig-ch3-wide and fig-ch3-davis-kahan",
               {"ci": dict(d=[16, 20], d1=20, gamma=0.4, seeds=4, g="id", model=GE),
                "paper": dict(d=[40, 60], d1=28, gamma=0.4, seeds=10, g="id", model=GE)},
               _plot_fig4, extras=("d1",), per_d=_wide_rule),
    # chapter 5 (issue 13): C7 at gamma > 1/2, g = id and tanh; the id tasks are exactly those of "rate" and "floor"
    FigureSpec("rate_tanh", "GE, gamma = 1, 1.5, g = id and tanh: first-layer error and test MSE against n (C7)",
               "C7", "05-nonlinear, fig-ch5-rate-tanh (its id tasks are rate's)",
               {scale: {**{k: v for k, v in kw.items() if k != "gamma"}, "gamma": [1.0, 1.5], "g": ["id", "tanh"]}
                for scale, kw in (("ci", dict(d=16, d1=40, n=[int(round(500 * 2 ** (k / 2))) for k in range(15)],
                                              seeds=6, model=GE)),
                                  ("paper", dict(d=40, d1=120, n=[int(round(2000 * 2 ** (k / 2))) for k in range(19)],
                                                 seeds=10, model=GE)))},
               lambda df: _plot_links(df, "gamma"), extras=("d1",), per_d=_width_rule),
    FigureSpec("floor_tanh", "real model, gamma = 1, g = id and tanh: first-layer error and test MSE against n (C7)",
               "C7, B6", "05-nonlinear, fig-ch5-real-tanh (its id tasks are floor's)",
               {"ci": dict(d=[20, 30], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=3, g=["id", "tanh"]),
                "paper": dict(d=[120, 250, 400], gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=10,
                              g=["id", "tanh"])},
               lambda df: _plot_links(df, "d")),
    # chapter 6 (issue 14): C8, Algorithm 1 against kernel ridge and the oracle on the same tasks (same data)
    FigureSpec("kernels", "real model, gamma = 0.4: test MSE against alpha of Algorithm 1, RBF and polynomial "
               "kernel ridge and the Hermite oracle", "C8", "06-kernels, fig-ch6-kernels",
               {"ci": dict(d=[8, 10, 12], gamma=0.4, seeds=3, g="id", n_max=2000, oracle_max=1100,
                           alphas=_alphas(1.5, 4.0, 0.25), learner=["layerwise", "krr-rbf", "krr-poly", "oracle"]),
                "paper": dict(d=[12, 16, 20], gamma=0.4, seeds=10, g="id", n_max=40000, oracle_max=11000,
                              alphas=_alphas(1.5, 4.0, 0.25),
                              learner=["layerwise", "krr-rbf", "krr-poly", "oracle"])},
               _plot_kernels, extras=("n_max", "oracle_max", "alphas"), per_d=_kernel_rule),
    # chapter 7 (issue 13, B4): q = 3, both models, gamma = 1, d1 = 5, n from D/2 to 128 D (paper: 256 D)
    FigureSpec("cubic", "q = 3, gamma = 1, d1 = 5, both models: per-direction recovery and test MSE against n / D",
               "B4, B6", "07-degree-three, fig-ch7-cubic",
               {"ci": dict(d=[8, 10, 12], q=3, d1=5, gamma=1.0, seeds=4, g="id", model=[GE, "hermite"],
                           octaves=[-1, 7]),
                "paper": dict(d=[14, 20, 26], q=3, d1=5, gamma=1.0, seeds=10, g="id", model=[GE, "hermite"],
                              octaves=[-1, 8])},
               _plot_cubic, extras=("d1", "octaves"), per_d=_cubic_rule),
)}


def names() -> list:
    """The registered figure names."""
    return list(FIGURES)


def spec(name: str) -> FigureSpec:
    """The :class:`FigureSpec` of figure ``name`` (a ValueError naming the choices if unknown)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}: choose from {names()}")
    return FIGURES[name]


def grid(name: str, scale: str = "ci", **overrides) -> sweep.Grid:
    """The :class:`hiermodel.sweep.Grid` of figure ``name`` at ``scale``, with keyword ``overrides`` applied.

    Overrides replace registry entries (``d=[8, 10]``, ``seeds=2``, ``model="hermite"``, ...); giving ``alpha``
    replaces a registered ``n`` and vice versa. Figures with per-``d`` settings (``fig4``, ``rate``, ``scaling``)
    recompute them for the overridden ``d``, and take their own parameters too (``deltas``, ``d1``, ``ratios``).
    """
    s = spec(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose from {SCALES}")
    if scale not in s.grids:
        raise ValueError(f"figure {name!r} has no {scale!r} scale: it has {list(s.grids)}")
    unknown = sorted(set(overrides) - _GRID_KEYS - set(s.extras))
    if unknown:
        raise ValueError(f"unknown grid key(s) {unknown} for {name}: use Grid arguments"
                         + (f" or {list(s.extras)}" if s.extras else ""))
    kw = dict(s.grids[scale])
    for axis, other in (("alpha", "n"), ("n", "alpha")):
        if axis in overrides:
            kw.pop(other, None)
    kw.update(overrides)
    if s.per_d is None:
        return sweep.Grid(**kw)
    ds = kw.pop("d")
    grids = []
    for d in ds if isinstance(ds, (list, tuple)) else [ds]:
        part = {k: v for k, v in kw.items() if k not in s.extras}
        part.update(s.per_d(d, kw), d=d)
        grids.append(sweep.Grid(**part))
    return sum(grids)


def plot(name: str, df):
    """Draw figure ``name`` from its sweep table (theory columns of ``sweep.add_theory`` are used when present).

    Returns the :class:`matplotlib.figure.Figure` (no title; the caption belongs to the page that shows it).
    """
    s = spec(name)
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame (the figure's sweep table), got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("the table is empty")
    missing = sorted(_PLOT_COLUMNS.get(name, set()) - set(df.columns))
    if missing:
        raise ValueError(f"the table lacks the columns {missing} that figure {name!r} draws: pass the table of "
                         f"sweep.run(figures.grid({name!r}, ...)) with its default metrics")
    return s.plot(df)


_SWEEP_KEYS = {"d", "d1", "gamma", "eps", "q", "alpha", "n", "mse"}
_PLOT_COLUMNS = {
    "fig2": _SWEEP_KEYS | {"q_h", "model"},
    "fig5": _SWEEP_KEYS | {"q_h", "g"},
    "fig3": {"model", "gamma", "alpha", "mse", "q_h", "d", "eps", "q", "n"},
    "fig4": _SWEEP_KEYS | {"model", "recovered", "cos2_1"},
    "fig4wide": _SWEEP_KEYS | {"model", "recovered", "cos2_1"},
    "rate": {"d", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "scaling": {"d", "gamma", "eps", "n", "D", "mse", "cos2_1"},
    "floor": {"d", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "rate_split": {"d", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "floor_split": {"d", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "regimes": {"d", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "late": {"d", "D", "d1", "gamma", "eps", "q", "n", "mse", "cos2_1"},
    "rate_tanh": {"d", "gamma", "eps", "q", "n", "g", "mse", "cos2_1"},
    "floor_tanh": {"d", "gamma", "eps", "q", "n", "g", "mse", "cos2_1"},
    "kernels": {"d", "gamma", "eps", "q", "g", "model", "seed", "alpha", "n", "mse", "method"},
    "cubic": {"d", "D", "d1", "gamma", "eps", "q", "n", "mse", "model", "cos2_1"},
}
"""Columns each figure reads from its table (checked by :func:`plot` before drawing)."""


def stored_table(name: str, directory):
    """The committed table of figure ``name``'s ``"stored"`` scale (``<directory>/<name>-stored.csv``, written by
    ``tools/store_sweep.py``), with its provenance in ``df.attrs["provenance"]``.

    Raises a ValueError if the figure has no stored scale, the files are missing, or the table was computed for
    another grid than the registry's (rerun the runner then: a stale table is never shown as current). The table
    may hold fewer seeds than the grid while a run is in progress; ``attrs["provenance"]["tasks"]`` lists them.
    """
    import json

    import pandas as pd

    g = grid(name, "stored")
    directory = pathlib.Path(directory)
    table, prov = directory / f"{name}-stored.csv", directory / f"{name}-stored.json"
    if not table.is_file() or not prov.is_file():
        raise ValueError(f"no stored table {table} (with {prov.name}): run tools/store_sweep.py {name}")
    meta = json.loads(prov.read_text())
    if meta.get("grid") != repr(g):
        raise ValueError(f"{table} was computed for {meta.get('grid')}, not for the registry's {g!r}: rerun "
                         f"tools/store_sweep.py {name}")
    df = pd.read_csv(table)
    seeds = sorted(int(t["seed"]) for t in meta["tasks"])
    if sorted(df["seed"].unique().tolist()) != seeds:
        raise ValueError(f"{table} holds seeds {sorted(df['seed'].unique().tolist())} but its provenance lists {seeds}")
    df.attrs["provenance"] = meta
    return df


def make(name: str, scale: str = "ci", out_dir=".", *, overrides=None, **run_kwargs) -> dict:
    """Run figure ``name``'s sweep, add the theory, write ``<name>-<scale>.csv`` and ``.png`` into ``out_dir``.

    ``run_kwargs`` go to :func:`hiermodel.sweep.run` (``cache_dir``, ``workers``, ``scheduler``, ``progress``, ...).
    Returns ``{"table": path, "png": path, "df": DataFrame}``.
    """
    g = grid(name, scale, **(overrides or {}))
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create out_dir {str(out)!r}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"cannot write into out_dir {str(out)!r}: permission denied")
    df = sweep.add_theory(sweep.run(g, **run_kwargs))
    table = out / f"{name}-{scale}.csv"
    df.to_csv(table, index=False)
    fig = plot(name, df)
    png = out / f"{name}-{scale}.png"
    fig.savefig(png, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return {"table": table, "png": png, "df": df}
