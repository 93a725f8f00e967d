"""Kernel ridge and oracle baselines (claim C8): hiermodel.baselines, its sweep learners and the kernel staircase."""

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.kernel_ridge import KernelRidge

import hiermodel as hm
from hiermodel import baselines as B
from hiermodel import sweep, theory


def _data(d=6, n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_exact_kernel_ridge_matches_scikit_learn(kernel):
    X, y = _data()
    est = B.KernelRidgeBaseline(kernel, ridges=[1e-2], progress=False).fit(X, y)
    lam = est.ridge_
    if kernel == "rbf":
        ref = KernelRidge(alpha=lam, kernel="rbf", gamma=1 / (2 * est.bandwidth_ ** 2))
    else:
        ref = KernelRidge(alpha=lam, kernel="poly", degree=4, gamma=1 / X.shape[1], coef0=1)
    ref.fit(X, y - y.mean())
    Xt, _ = _data(n=50, seed=1)
    np.testing.assert_allclose(est.predict(Xt), ref.predict(Xt) + y.mean(), rtol=1e-7, atol=1e-9)


def test_median_bandwidth_is_the_median_distance():
    X, _ = _data(n=40)
    dist = [np.linalg.norm(X[a] - X[b]) for a in range(40) for b in range(a + 1, 40)]
    assert B.median_bandwidth(X) == pytest.approx(float(np.median(dist)), rel=1e-12)


def test_ridge_rule_picks_the_best_held_out_ridge():
    X, y = _data(n=200)
    est = B.KernelRidgeBaseline("rbf", progress=False).fit(X, y)
    a = 160  # the first 80 % fit each ridge, the last 20 % judge it
    for r in B.RIDGES:  # RBF: mean diagonal 1, so the absolute ridge is r; labels centred by the fit part
        ref = KernelRidge(alpha=r, kernel="rbf", gamma=1 / (2 * est.bandwidth_ ** 2))
        ref.fit(X[:a], y[:a] - y[:a].mean())
        held_out = np.mean((y[a:] - ref.predict(X[a:]) - y[:a].mean()) ** 2) / np.var(y[a:])
        assert est.validation_mse_[r] == pytest.approx(held_out, rel=1e-6)
    assert est.relative_ridge_ == min(est.validation_mse_, key=est.validation_mse_.get)


def test_nystrom_with_all_points_equals_the_exact_solve():
    X, y = _data(n=240)
    exact = B.KernelRidgeBaseline("rbf", ridges=[1e-2], solver="exact", progress=False).fit(X, y)
    ny = B.KernelRidgeBaseline("rbf", ridges=[1e-2], solver="nystrom", n_components=240, progress=False).fit(X, y)
    Xt, _ = _data(n=60, seed=3)
    np.testing.assert_allclose(ny.predict(Xt), exact.predict(Xt), rtol=1e-5, atol=1e-6)


def test_poly_nystrom_is_exact_beyond_the_kernel_rank():
    # rank of (1 + <x, x'>/d)^2 in d = 4 is binom(6, 2) = 15: 40 landmarks represent it exactly
    X, y = _data(d=4, n=400)
    exact = B.KernelRidgeBaseline("poly", degree=2, ridges=[1e-3], solver="exact", progress=False).fit(X, y)
    ny = B.KernelRidgeBaseline("poly", degree=2, ridges=[1e-3], solver="nystrom", n_components=40,
                               progress=False).fit(X, y)
    Xt, _ = _data(d=4, n=50, seed=4)
    np.testing.assert_allclose(ny.predict(Xt), exact.predict(Xt), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make", [lambda: B.KernelRidgeBaseline("rbf", progress=False),
                                  lambda: B.KernelRidgeBaseline("poly", max_exact=150, n_components=60,
                                                                progress=False),
                                  lambda: B.HermiteLeastSquares(2, progress=False)])
def test_fit_path_equals_separate_fits(make):
    X, y = _data(n=260)
    ns = [40, 100, 260]
    path = make().fit_path(X, y, ns)
    Xt, _ = _data(n=30, seed=5)
    for n, e in zip(ns, path):
        np.testing.assert_allclose(e.predict(Xt), clone(make()).fit(X[:n], y[:n]).predict(Xt), rtol=1e-8,
                                   atol=1e-8)


def test_hermite_basis_is_orthonormal_and_complete():
    assert B.basis_size(5, 4) == math.comb(9, 4) == B.hermite_basis(np.zeros((1, 5)), 4).shape[1]
    Phi = B.hermite_basis(np.random.default_rng(0).standard_normal((200_000, 3)), 3)
    gram = Phi.T @ Phi / Phi.shape[0]
    assert np.abs(gram - np.eye(gram.shape[0])).max() < 0.05  # Monte Carlo, s.e. ~ 0.01 for the largest moments


def test_oracle_learns_the_degree_four_target_exactly_above_its_basis_size():
    t = hm.HierarchicalTarget(5, q=2, eps=0.5, gamma=0.4, rng=0)
    p = B.basis_size(5, 4)  # 126
    X, y = t.sample(3 * p, rng=1)
    Xt, yt = t.sample(500, rng=2)
    est = B.HermiteLeastSquares(4, progress=False).fit(X, y)
    assert hm.metrics.test_mse(yt, est.predict(Xt)) < 1e-6
    # with half the basis size it cannot interpolate a generic degree-4 polynomial
    est = B.HermiteLeastSquares(4, progress=False).fit(X[:p // 2], y[:p // 2])
    assert hm.metrics.test_mse(yt, est.predict(Xt)) > 0.05


def test_bad_inputs_fail_before_work():
    X, y = _data(n=50)
    with pytest.raises(ValueError, match="too large for an exact kernel solve"):
        B.KernelRidgeBaseline("rbf", solver="exact", max_exact=20).fit(X, y)
    with pytest.raises(ValueError, match="unknown kernel"):
        B.KernelRidgeBaseline("laplace").fit(X, y)
    with pytest.raises(ValueError, match="validation"):
        B.KernelRidgeBaseline(validation=1.0).fit(X, y)
    with pytest.raises(ValueError, match="ridge"):
        B.KernelRidgeBaseline(ridges=[-1.0]).fit(X, y)
    with pytest.raises(ValueError, match="more than this machine"):
        B.HermiteLeastSquares(4).planned_size(400)
    with pytest.raises(ValueError, match="more than this machine"):
        B.KernelRidgeBaseline(solver="exact", max_exact=10**7).planned_solver(10**7)
    with pytest.raises(ValueError, match="strictly increasing"):
        B.KernelRidgeBaseline().fit_path(X, y, [30, 20])
    with pytest.raises(ValueError, match="y must be finite"):
        B.KernelRidgeBaseline().fit(X, y[:10])


def test_progress_bar_on_request(capsys):
    X, y = _data(n=60)
    B.KernelRidgeBaseline(progress=True).fit(X, y)
    assert "kernel ridge" in capsys.readouterr().err
    B.KernelRidgeBaseline(progress="auto").fit(X, y)  # a fraction of a second: no bar
    assert capsys.readouterr().err == ""


def test_kernel_staircase():
    e = {0: 0.0, 2: 0.3, 4: 0.7}
    got = theory.kernel_staircase(e, [0.5, 1.5, 2.0, 2.5, 3.9, 4.0, 4.5])
    np.testing.assert_allclose(got, [1, 1, 1, 0.7, 0.7, 0.7, 0.0])
    assert theory.kernel_staircase({0: 0.25, 2: 0.75}, 1.0) == pytest.approx(0.75)  # the mean at n >> 1
    with pytest.raises(ValueError, match="summing to 1"):
        theory.kernel_staircase({2: 0.5}, 3.0)
    with pytest.raises(ValueError, match="degrees"):
        theory.kernel_staircase({"two": 1.0}, 3.0)


# --- sweeps ---------------------------------------------------------------------------------------------------------
def test_learner_leaves_algorithm_1_cache_keys_unchanged():
    a = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], seeds=2).tasks()
    b = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], seeds=2, learner="layerwise").tasks()
    assert [t.cache_key() for t in a] == [t.cache_key() for t in b]
    assert all("learner" not in t.settings for t in a)
    c = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], seeds=2, learner="krr-rbf").tasks()
    assert {t.cache_key() for t in c}.isdisjoint(t.cache_key() for t in a)
    assert [t.streams()["train"].entropy for t in c] == [t.streams()["train"].entropy for t in a]


def test_bad_learners_fail_at_the_grid():
    with pytest.raises(ValueError, match="unknown learner"):
        sweep.Grid(d=8, gamma=0.4, alpha=2.0, learner="svm")
    with pytest.raises(ValueError, match="model='hermite'"):
        sweep.Grid(d=8, gamma=0.4, alpha=2.0, learner="krr-rbf", model="gaussian-equivalent")
    with pytest.raises(ValueError, match="more than this machine"):
        sweep.Grid(d=400, gamma=0.4, alpha=1.0, learner="oracle")


def test_baselines_run_in_a_cached_sweep(tmp_path):
    grid = sweep.Grid(d=6, gamma=0.4, alpha=[2.0, 3.5], seeds=2, learner=["layerwise", "krr-poly", "oracle"])
    df = sweep.run(grid, cache_dir=tmp_path, progress=False)
    df["learner"] = B.learner_of(df)
    assert sorted(df["learner"].unique()) == ["krr-poly", "layerwise", "oracle"]
    base = df[df["learner"] != "layerwise"]
    assert base["q_h"].isna().all() and base["mse"].notna().all() and (base["recovered"] == 0).all()
    # n = 529 > 2 binom(10, 4) = 420 samples (fit part 423 > 210): the oracle and the degree-4 kernel interpolate
    top = base[base["n"] == 529]
    assert (top["mse"] < 1e-6).all()
    again = sweep.run(grid, cache_dir=tmp_path, progress=False)
    assert again.attrs["sweep"]["cached"] == len(grid)
    np.testing.assert_array_equal(again["mse"].to_numpy(), df["mse"].to_numpy())


def test_staircase_table_uses_each_draws_energies(tmp_path):
    grid = sweep.Grid(d=6, gamma=0.4, alpha=[2.5, 4.5], seeds=2, learner="oracle")
    df = B.add_staircase(sweep.run(grid, cache_dir=tmp_path, progress=False))
    for t in grid.tasks():
        e = theory.hermite_energies(t.target())
        rows = df[df["seed"] == t.seed]
        np.testing.assert_allclose(rows["E_2"], e[2])
        np.testing.assert_allclose(rows["mse_staircase"], [1 - e[2], 0.0], atol=1e-12)


def test_sweep_memory_check_uses_the_baselines_estimate():
    (task,) = sweep.Grid(d=8, gamma=0.4, alpha=[3.0], learner="oracle").tasks()
    assert sweep.task_memory_bytes(task) == B.baseline_memory_bytes(task)
    p = B.basis_size(8, 4)
    assert B.baseline_memory_bytes(task) >= 8 * p * p * 4  # running sums, a snapshot, a solve


def test_oracle_path_holds_few_snapshots():
    # alpha steps of 0.25 at d = 8: 0.8 n_{k+1} > n_k, so at most one held-out cut is pending at a time
    ns = [int(round(8 ** a)) for a in (2.0, 2.25, 2.5, 2.75, 3.0)]
    assert B._max_snapshots(ns, 0.2) == 2
    assert B._max_snapshots([100, 101, 102, 103], 0.2) == 4  # dense sizes: every cut pending at once


def test_kernels_registry_caps_n_and_drops_the_oracle_where_its_basis_is_large():
    from hiermodel import figures

    g = figures.grid("kernels", "ci", d=[8, 12], seeds=1, alpha=[2.0, 3.0, 3.5])
    by_d = {}
    for t in g.tasks():
        by_d.setdefault(t.d, set()).add((t.learner, max(t.ns)))
    assert {lr for lr, _ in by_d[8]} == {"layerwise", "krr-rbf", "krr-poly", "oracle"}
    assert "oracle" not in {lr for lr, _ in by_d[12]}  # binom(16, 4) = 1820 > oracle_max = 1100
    assert max(n for _, n in by_d[12]) == 1728 and max(n for _, n in by_d[8]) == 1448  # n <= n_max = 2000
