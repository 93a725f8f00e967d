"""The figure registry: its grids are the chapters' grids, its plots follow one convention, and the CLI reruns it."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hiermodel as hm  # noqa: E402
from hiermodel import cli, figures, sweep, theory  # noqa: E402

GE = "gaussian-equivalent"
TINY = {"d": [8, 10], "seeds": 2, "alpha": [2.0, 2.5, 3.0], "n_test": 300}
EXTRA = {"fig3": {"gamma": [0.0, 1.0]}, "rate": {"d1": 2}, "scaling": {"d1": 2}, "fig4wide": {"d1": 2}}
EXTRA.update({"rate_split": {"d1": 2}, "regimes": {"d1": 2}, "late": {"d1": 2}})  # chapter 4, issue 13
EXTRA.update({"rate_tanh": {"d1": 2}})  # chapter 5, issue 13


def _as_set(key, value):
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return ["--set", f"{key}={text}"]


# --------------------------------------------------------------------------------------------------------------------
# The "ci" grids are what the chapters run (the chapters' own code, copied from the notebooks before the refactor)
# --------------------------------------------------------------------------------------------------------------------
def _chapter3_n_path(d, GAMMA=0.4, EPS=0.5, DELTAS=(0.25, 0.5, 0.75)):
    """book/03-recovery.ipynb cell 9 before the refactor: paper_thresholds, bbp_thresholds, n_path."""
    d1 = hm.theory.first_layer_width(d, EPS)
    n_k = d**2 * np.arange(1, d1 + 1) ** (2 * GAMMA) * hm.theory.harmonic_number(d1, 2 * GAMMA)
    n_star = hm.theory.recovery_thresholds(d=d, gamma=GAMMA, eps=EPS, q=2, convention="bbp")
    base = n_star[0] * 2.0 ** (np.arange(-8, 40) / 2)
    base = base[base <= 40 * n_star[-1]]
    matching = [n_k * float(d) ** (sign * delta) for delta in DELTAS for sign in (-1, 1)]
    return np.unique(np.round(np.concatenate([base, *matching])).astype(int))


def test_fig4_is_chapter_3s_experiment():
    chapter = sum(sweep.Grid(d=d, gamma=0.4, eps=0.5, n=list(_chapter3_n_path(d)), seeds=6, model=[GE, "hermite"])
                  for d in (16, 23, 30))
    assert figures.grid("fig4", "ci") == chapter
    for d in (16, 23, 30):
        np.testing.assert_array_equal(figures.recovery_sizes(d, gamma=0.4), _chapter3_n_path(d))


# book/04-scaling-law.ipynb before the refactor: its own scale registry OWN (cell 1) and the grids of cells 13, 15, 30
_CHAPTER_4_OWN = {
    "ci": dict(rate_d=16, rate_d1=40, rate_seeds=6, rate_n=[int(round(500 * 2 ** (k / 2))) for k in range(15)],
               scale_d=(12, 17, 24), scale_seeds=8, real_d=(20, 30), real_seeds=3),
    "paper": dict(rate_d=40, rate_d1=120, rate_seeds=10, rate_n=[int(round(2000 * 2 ** (k / 2))) for k in range(19)],
                  scale_d=(24, 34, 48), scale_seeds=10, real_d=(120, 250, 400), real_seeds=10)}


@pytest.mark.parametrize("scale", ["ci", "paper"])
def test_chapter_4_grids_are_registered(scale):
    own = _CHAPTER_4_OWN[scale]
    scaling = sum(sweep.Grid(d=d, eps=math.log(10 + 0.5) / math.log(d), gamma=1.0,
                             n=[r * hm.feature_dimension(d, 2) for r in (6, 24)], seeds=own["scale_seeds"],
                             model=GE) for d in own["scale_d"])
    assert figures.grid("scaling", scale) == scaling
    eps_r = math.log(own["rate_d1"] + 0.5) / math.log(own["rate_d"])
    rate = sweep.Grid(d=own["rate_d"], eps=eps_r, gamma=[0.75, 1.0, 1.5], n=own["rate_n"], seeds=own["rate_seeds"],
                      model=GE)
    assert figures.grid("rate", scale) == rate
    real = sweep.Grid(d=list(own["real_d"]), gamma=1.0, alpha=[2.4, 2.7, 3.0, 3.3, 3.6], seeds=own["real_seeds"])
    assert figures.grid("floor", scale) == real
    # cell 27 ran fig3 once per model: the registry holds both, task for task (the chapter now runs it once)
    fig3 = figures.grid("fig3", scale)
    for model in ("hermite", GE):
        keys = {t.cache_key() for t in figures.grid("fig3", scale, model=model).tasks()}
        assert keys == {t.cache_key() for t in fig3.tasks() if t.model == model}


def test_chapter_5_grids_are_registered():
    # cell 13: one sweep with g = id and tanh; its id half is fig2's grid (the same tasks, shared through the cache)
    fig5 = figures.grid("fig5", "ci")
    fig2 = {t.cache_key() for t in figures.grid("fig2", "ci").tasks()}
    assert {t.cache_key() for t in fig5.tasks() if t.g == "id"} == fig2 and len(fig5) == 2 * len(fig2)
    assert {t.readout for t in fig5.tasks() if t.g == "tanh"} == {"poly"}
    # the paired g = id / tanh experiment (cell 7) shares data between the links, which a grid cannot: it is
    # hiermodel.experiments.paired_links (tests/test_experiments.py), not a registry entry
    assert "links" not in figures.names()


def test_per_d_rules_follow_overrides():
    g = figures.grid("fig4", "ci", d=[12], seeds=1, deltas=[0.5])
    (ns,) = {t.ns for t in g.tasks()}
    assert ns == tuple(figures.recovery_sizes(12, gamma=0.4, deltas=(0.5,)))
    g = figures.grid("scaling", "ci", d=[10, 12], d1=3, ratios=[2], seeds=1)
    assert [(t.d, t.d1, t.ns) for t in g.tasks()] == [(10, 3, (2 * 55,)), (12, 3, (2 * 78,))]
    g = figures.grid("rate", "ci", alpha=[2.0, 2.5], d1=3)  # alpha replaces the registered n
    assert g.alpha == (2.0, 2.5) and g.n is None
    with pytest.raises(ValueError, match="one value of gamma"):
        figures.grid("fig4", "ci", gamma=[0.2, 0.4])


# --------------------------------------------------------------------------------------------------------------------
# Plots and the CLI
# --------------------------------------------------------------------------------------------------------------------
def _check_convention(fig):
    assert isinstance(fig, matplotlib.figure.Figure)
    width, height = fig.get_size_inches()
    assert width == figures.WIDTH and height % figures.ROW_HEIGHT == 0
    assert not fig.get_suptitle()
    for ax in fig.axes:
        assert not ax.get_title()
        shared_y = len(ax.get_shared_y_axes().get_siblings(ax)) > 1
        assert ax.get_xlabel() and (ax.get_ylabel() or shared_y), "every axis is labelled"
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert not label[:1].isupper(), f"axis labels start in lowercase: {label!r}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", figures.names())
def test_figure_command_and_plot(name, tmp_path, cache, capsys):
    overrides = {**TINY, **EXTRA.get(name, {})}
    sets = [arg for key, value in overrides.items() for arg in _as_set(key, value)]
    assert cli.main(["figure", name, "--scale", "ci", "--out-dir", str(tmp_path), "--cache-dir", str(cache),
                     "--no-progress", *sets]) == 0
    png, table = tmp_path / f"{name}-ci.png", tmp_path / f"{name}-ci.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    df = pd.read_csv(table)
    assert set(df["d"]) == {8, 10} and "mse_tail" in df.columns
    assert name in capsys.readouterr().out
    fig = figures.plot(name, df)
    _check_convention(fig)
    plt.close(fig)


def test_cli_reproduces_registry(tmp_path):
    """``hiermodel figure NAME --scale ci`` writes exactly ``sweep.run(figures.grid(NAME, "ci"))`` (+ theory)."""
    name, overrides = "fig2", {"d": [8], "seeds": 2, "alpha": [2.0, 2.5, 3.0], "n_test": 300}
    sets = [arg for key, value in overrides.items() for arg in _as_set(key, value)]
    assert cli.main(["figure", name, "--scale", "ci", "--out-dir", str(tmp_path), "--no-cache", "--no-progress",
                     *sets]) == 0
    written = pd.read_csv(tmp_path / f"{name}-ci.csv")
    expected = sweep.add_theory(sweep.run(figures.grid(name, "ci", **overrides), cache_dir=False, progress=False))
    assert list(written.columns) == list(expected.columns)
    numeric = [c for c in expected.columns if c != "wall_s" and pd.api.types.is_numeric_dtype(expected[c])]
    np.testing.assert_allclose(written[numeric].to_numpy(dtype=float), expected[numeric].to_numpy(dtype=float),
                               rtol=1e-12, atol=0, equal_nan=True)
    for col in ("model", "g", "method"):
        assert list(written[col]) == list(expected[col])


def test_plot_rejects_bad_tables():
    with pytest.raises(ValueError, match="empty"):
        figures.plot("fig2", pd.DataFrame())
    with pytest.raises(ValueError, match="unknown figure"):
        figures.plot("fig9", pd.DataFrame({"d": [1]}))
    assert theory.first_layer_width(30, 0.5) == 5


def test_chapter_3_runs_the_registered_fig4_grid():
    """The chapter's one sweep is figures.grid("fig4", SCALE) at SCALE = "ci", so the CLI reruns its numbers."""
    import json
    import pathlib

    nb = json.loads((pathlib.Path(__file__).parent.parent / "book" / "03-recovery.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert 'SCALE = "ci"' in code and 'GRID = figures.grid("fig4", SCALE)' in code
    assert code.count("sweep.run(") == 2 and "sweep.run(GRID, cache_dir=CACHE" in code
    assert 'WIDE = figures.grid("fig4wide", SCALE)' in code and "sweep.run(WIDE, cache_dir=CACHE" in code
    assert "def " not in code and "recovery_path" not in code


def test_fig4_paper_scale_is_the_same_experiment_bigger():
    ci, paper = (figures.spec("fig4").grids[s] for s in ("ci", "paper"))
    for key in ("gamma", "eps", "g", "model", "deltas"):
        assert ci[key] == paper[key], key
    assert min(paper["d"]) > max(ci["d"]) and paper["seeds"] >= ci["seeds"]
    g = figures.grid("fig4", "paper")
    assert set(g.d) == set(paper["d"]) and len(g) == len(paper["d"]) * 2 * paper["seeds"]
    for t in g.tasks():  # the same per-d path, bigger
        assert t.ns == tuple(figures.recovery_sizes(t.d, gamma=0.4, deltas=tuple(paper["deltas"])))


@pytest.mark.parametrize("scale", ["ci", "stored"])
def test_chapter_grids_resolve_to_the_dense_route(scale):
    # The chapters' stored outputs and book/data hold dense-route numbers (exact, bit-identical for any thread
    # count): a change of auto's cost model must not move a CI-scale or stored task to another route.
    routes = {name: {t.resolved_method for t in figures.grid(name, scale).tasks() if t.learner == "layerwise"}
              for name in figures.names() if scale in figures.spec(name).grids}
    assert routes and all(r == {"dense"} for r in routes.values()), routes
