"""Chapter 5, C7 at gamma > 1/2: the first-layer laws with a link's own constants (theory.link_first_layer), the
Stein-form constants (experiments.stein_constants), each sweep task's predictions (experiments.link_theory) and the
registered grids rate_tanh / floor_tanh."""

import math

import numpy as np
import pandas as pd
import pytest

import hiermodel as hm
from hiermodel import experiments, figures, theory
from hiermodel.digest import figure_arrays
from hiermodel.population import link_constants


def _id_constants(t):
    return {"weights": t.weights, "theta": math.sqrt(2.0) * t.weights, "noise": 1.0 + 4.0 * t.weights**2}


@pytest.mark.parametrize("gamma", [0.4, 1.0, 1.5])
def test_identity_constants_give_the_books_sums(gamma):
    # g = id: BBP form = SPEC B2 (mse_prediction, refined), first-order form = chapter 4's strong-feature sum
    t = hm.HierarchicalTarget(12, gamma=gamma, eps=0.9, rng=3)
    n = np.geomspace(50, 5e5, 37)
    kw = dict(d=12, gamma=gamma, eps=0.9, q=2)
    bbp = theory.link_first_layer(n, **_id_constants(t), D=t.D, form="bbp")
    first = theory.link_first_layer(n, **_id_constants(t), D=t.D, form="first-order")
    np.testing.assert_allclose(bbp["error"], theory.mse_prediction(n, **kw, refined=True), rtol=1e-12)
    np.testing.assert_allclose(first["error"], theory.mse_prediction_strong(n, **kw), rtol=1e-12)
    n_star = theory.recovery_thresholds(**kw)  # D / (2 lambda^2)
    q_h = np.clip(1 - n_star[None, :] / n[:, None], 0, None).mean(axis=1)
    np.testing.assert_allclose(bbp["q_h"], q_h, rtol=1e-12)
    assert bbp["cos2"].shape == (n.size, t.d1)


def test_one_direction_by_hand():
    # D = 10, theta = 0.5, noise = 2: threshold 10 / 0.25 = 40, P = 9 * 2 / 0.25 = 72
    kw = dict(weights=[1.0], theta=[0.5], noise=[2.0], D=10)
    bbp = theory.link_first_layer([30.0, 100.0], **kw, form="bbp")
    first = theory.link_first_layer([30.0, 100.0], **kw)
    np.testing.assert_allclose(bbp["cos2"][:, 0], [0.0, 0.6])
    np.testing.assert_allclose(bbp["error"], [1.0, 1 - 0.36])
    np.testing.assert_allclose(first["cos2"][:, 0], [0.0, 0.28])
    np.testing.assert_allclose(first["error"], [1.0, 1 - 0.28**2])
    assert np.ndim(theory.link_first_layer(100.0, **kw)["error"]) == 0


@pytest.mark.parametrize("form", theory.LINK_FORMS)
def test_spikes_smaller_by_sqrt_c_move_every_threshold_by_c(form):
    # theta -> theta / sqrt(c) multiplies the threshold and P by c: the curve in n is the old one at n / c
    rng = np.random.default_rng(0)
    lam = rng.standard_normal(6)
    lam /= np.linalg.norm(lam)
    theta, noise, c = 1.3 * lam + 0.1 * lam**2, 1 + 3 * lam**2, 2.7
    n = np.geomspace(100, 1e6, 25)
    new = theory.link_first_layer(c * n, weights=lam, theta=theta / math.sqrt(c), noise=noise, D=200, form=form)
    old = theory.link_first_layer(n, weights=lam, theta=theta, noise=noise, D=200, form=form)
    np.testing.assert_allclose(new["error"], old["error"], rtol=1e-12)
    np.testing.assert_allclose(new["q_h"], old["q_h"], rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(form="exact"), "form"),
    (dict(n=0.5), "n must"),
    (dict(theta=[0.5, 0.0]), "nonzero"),
    (dict(noise=[1.0, -1.0]), "positive"),
    (dict(theta=[0.5]), "one value per direction"),
    (dict(weights=[1.0, 1.0]), "sum lambda"),
    (dict(D=1), "D"),
    (dict(noise=[[1.0, 1.0]]), "1-D"),
])
def test_link_first_layer_rejects_bad_input(kwargs, match):
    base = dict(n=100.0, weights=[0.6, 0.8], theta=[0.5, 0.7], noise=[1.5, 2.0], D=20)
    base.update(kwargs)
    n = base.pop("n")
    with pytest.raises(ValueError, match=match):
        theory.link_first_layer(n, **base)


def test_stein_constants_identity_is_exact_up_to_the_label_scale():
    t = hm.HierarchicalTarget(10, gamma=0.6, eps=0.8, rng=1)
    c = experiments.stein_constants(t, samples=200_000, rng=5)
    # g' = 1, g'' = 0: theta = sqrt2 lambda / sd(h2), and sd(h2) = 1 in the GE model (2e5 samples: ~0.2 %)
    np.testing.assert_allclose(c["theta"], math.sqrt(2) * t.weights, rtol=1e-2)
    np.testing.assert_allclose(c["noise"], 1 + 4 * t.weights**2, rtol=3e-2)


def test_stein_constants_tanh_agree_with_the_direct_estimate():
    t = hm.HierarchicalTarget(12, gamma=0.4, g="tanh", rng=2)
    stein = experiments.stein_constants(t, samples=400_000, rng=9)
    direct = link_constants(t, samples=400_000, rng=10)  # independent draws
    tol = 5 * np.hypot(stein["theta_se"], direct["theta_se"])
    assert np.all(np.abs(stein["theta"] - direct["theta"]) < tol)
    np.testing.assert_allclose(stein["noise"], direct["noise"], rtol=3e-2)
    # the Stein estimate is the sharper one, most for weak directions
    assert np.all(stein["theta_se"] < direct["theta_se"])


def test_stein_constants_reject_bad_input():
    t = hm.HierarchicalTarget(8, gamma=0.4, g=np.sin, rng=0)
    with pytest.raises(ValueError, match="derivatives"):
        experiments.stein_constants(t, samples=100)
    with pytest.raises(TypeError, match="HierarchicalTarget"):
        experiments.stein_constants("tanh")
    with pytest.raises(ValueError, match="samples"):
        experiments.stein_constants(hm.HierarchicalTarget(8, gamma=0.4, rng=0), samples=1)


def _skeleton(grid):
    return pd.DataFrame([{**t.params, "n": n} for t in grid.tasks() for n in t.ns])


def test_link_theory_uses_each_tasks_own_target():
    grid = figures.grid("floor_tanh", "ci", d=[8], alpha=[2.2, 2.8], seeds=2)
    df = experiments.link_theory(_skeleton(grid), grid, samples=20_000, rng=4)
    assert {"q_h_link", "mse_fl_link", "q_h_link_bbp", "mse_fl_link_bbp"} <= set(df.columns)
    for task in grid.tasks():
        t = task.target()
        const = _id_constants(t) if t.g_name == "id" else {
            "weights": t.weights, **{k: v for k, v in experiments.stein_constants(
                t, samples=20_000, rng=4).items() if k != "theta_se"}}
        rows = df[(df["g"] == task.g) & (df["seed"] == task.seed)]
        for form, suffix in (("first-order", ""), ("bbp", "_bbp")):
            want = theory.link_first_layer(rows["n"].to_numpy(float), **const, D=t.D, form=form)
            np.testing.assert_allclose(rows["mse_fl_link" + suffix], want["error"], rtol=1e-12)
            np.testing.assert_allclose(rows["q_h_link" + suffix], want["q_h"], rtol=1e-12)
    # two seeds of one link are two targets (signs): their tanh constants differ
    consts = experiments.task_link_constants(grid, samples=20_000, rng=4)
    tanh = [c for key, c in consts.items() if key[3] == "tanh"]
    assert len(tanh) == 2 and not np.allclose(tanh[0]["theta"], tanh[1]["theta"])


def test_link_theory_rejects_rows_and_inputs_it_cannot_place():
    grid = figures.grid("floor_tanh", "ci", d=[8], alpha=[2.2], seeds=1)
    df = _skeleton(grid)
    with pytest.raises(ValueError, match="not a task of the grid"):
        experiments.link_theory(df.assign(seed=7), grid, samples=1000)
    with pytest.raises(ValueError, match="lacks the columns"):
        experiments.link_theory(df.drop(columns="seed"), grid, samples=1000)
    with pytest.raises(ValueError, match="DataFrame"):
        experiments.link_theory(df.to_dict(), grid)
    with pytest.raises(TypeError, match="Grid"):
        experiments.task_link_constants("floor_tanh")
    with pytest.raises(TypeError, match="constants"):
        experiments.link_theory(df, grid, constants=[1, 2])


@pytest.mark.parametrize("name, base", [("rate_tanh", "rate"), ("floor_tanh", "floor")])
def test_the_identity_half_is_chapter_4s_tasks(name, base):
    # same parameters and settings, hence the same cache keys: chapter 5 reads chapter 4's id tasks
    ours = {t.cache_key() for t in figures.grid(name, "ci").tasks() if t.g == "id"}
    theirs = {t.cache_key() for t in figures.grid(base, "ci").tasks()}
    assert ours and ours <= theirs
    links = {t.g for t in figures.grid(name, "ci").tasks()}
    assert links == {"id", "tanh"}


def test_link_lines_are_drawn_when_present():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = figures.grid("floor_tanh", "ci", d=[8], alpha=[2.2, 2.8], seeds=2)
    df = _skeleton(grid)
    d1 = theory.first_layer_width(8, 0.5)
    rng = np.random.default_rng(0)
    df = df.assign(mse=rng.uniform(0.2, 0.9, len(df)), q_h=rng.uniform(0, 1, len(df)),
                   alpha=np.log(df["n"]) / np.log(8), d1=d1,
                   **{f"cos2_{i + 1}": rng.uniform(0, 1, len(df)) for i in range(d1)})
    bare = figures.plot("floor_tanh", df)
    drawn = figures.plot("floor_tanh", experiments.link_theory(df, grid, samples=5000))
    assert len(figure_arrays(drawn)) == len(figure_arrays(bare)) + 2 * 2  # two forms, two links
    fig5_bare = figures.plot("fig5", df)
    fig5_drawn = figures.plot("fig5", experiments.link_theory(df, grid, samples=5000))
    assert len(figure_arrays(fig5_drawn)) == len(figure_arrays(fig5_bare)) + 2  # tanh: q_h and error
    plt.close("all")
