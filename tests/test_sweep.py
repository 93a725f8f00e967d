"""Sweeps: tidy table, seeding independent of order/workers/cache, cache integrity, kill-and-resume, Dask."""

import concurrent.futures
import json
import multiprocessing
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from hiermodel import metrics, sweep
from hiermodel.data import SampleStream
from hiermodel.estimator import LayerwiseSpectral
from hiermodel.sweep import _backends, _cache, _task

TIMING = ["wall_s"]


def small_grid(**kw):
    args = dict(d=[8, 10], gamma=[0.4, 1.0], alpha=[2.0, 2.5, 3.0], seeds=2,
                model=["hermite", "gaussian-equivalent"], n_test=500)
    args.update(kw)
    return sweep.Grid(**args)


def same(a, b):
    pd.testing.assert_frame_equal(a.drop(columns=TIMING).reset_index(drop=True),
                                  b.drop(columns=TIMING).reset_index(drop=True))


@pytest.fixture(scope="module")
def reference():
    """The small grid run inline without a cache: the result every other route must reproduce."""
    return sweep.run(small_grid(), cache_dir=False, progress=False, blas_threads=1)


def test_table_is_tidy(reference):
    df = reference
    assert len(df) == 2 * 2 * 2 * 2 * 3  # d, gamma, seed, mode, n
    for col in ["d", "d1", "D", "gamma", "q", "g", "eps", "model", "seed", "alpha", "n", "mse", "q_h", "recovered",
                "cos2_1", "cos2_3", "overlap_1", "overlap_3", "angle_cos2_1", "angle_cos2_3", "eig_1", "eig_3",
                "method", "wall_s"]:
        assert col in df.columns
    assert not df.duplicated(["d", "gamma", "q", "g", "eps", "model", "seed", "n"]).any()
    assert set(df["n"][df["d"] == 10]) == {100, 316, 1000}
    assert df.loc[df["d"] == 8, "cos2_3"].isna().all() and df.loc[df["d"] == 10, "cos2_3"].notna().all()
    assert df["q_h"].between(0, 1 + 1e-9).all() and df["mse"].between(0, 5).all()
    cos2 = df.loc[df["d"] == 10, ["cos2_1", "cos2_2", "cos2_3"]].to_numpy()
    assert np.all((cos2 >= -1e-12) & (cos2 <= 1 + 1e-9))
    # q_h is the mean of cos2 over directions (orthonormal A_i, d1-dimensional estimate)
    np.testing.assert_allclose(cos2.mean(axis=1), df.loc[df["d"] == 10, "q_h"], rtol=1e-10)
    # wall time: one value per task, shared by its rows
    assert (df.groupby(["d", "gamma", "model", "seed"])["wall_s"].nunique() == 1).all()


def test_metrics_selection_and_theory(reference):
    df = sweep.run(small_grid(), cache_dir=False, progress=False, metrics=["mse", "q_h"])
    assert not any(c.startswith(("cos2_", "eig_", "overlap_", "angle_")) for c in df.columns)
    assert "wall_s" not in df.columns
    np.testing.assert_array_equal(df["mse"], reference["mse"])
    th = sweep.add_theory(reference)
    for col in ["mse_tail", "mse_refined", "recovered_theory", "recovered_corollary"]:
        assert th[col].notna().all()
    assert (th.groupby(["d", "gamma", "model", "seed"])["recovered_theory"].diff().dropna() >= 0).all()


def test_seed_depends_only_on_parameters():
    full = small_grid().tasks()
    alone = small_grid(d=[10], gamma=[1.0], seeds=[1], model=["gaussian-equivalent"]).tasks()[0]
    twin = next(t for t in full if (t.d, t.gamma, t.seed, t.model) == (10, 1.0, 1, "gaussian-equivalent"))
    assert alone.seed_sequence().entropy == twin.seed_sequence().entropy
    assert alone.cache_key() == twin.cache_key()
    entropies = {tuple(t.seed_sequence().entropy) for t in full}
    assert len(entropies) == len(full)
    other = small_grid(base_seed=1).tasks()[0]
    assert other.seed_sequence().entropy != full[0].seed_sequence().entropy
    # float noise from np.arange does not change keys
    g1 = sweep.Grid(d=8, gamma=np.arange(0, 1.01, 0.2)[3], alpha=np.arange(2, 3.01, 0.5))
    g2 = sweep.Grid(d=8, gamma=0.6, alpha=[2.0, 2.5, 3.0])
    assert g1.tasks()[0].cache_key() == g2.tasks()[0].cache_key()


def test_results_independent_of_order_workers_and_cache(reference, tmp_path):
    # Part of the grid first (another order, a cache partly filled), then the whole grid on 2 processes.
    part = sweep.run(small_grid(d=[10], seeds=[1]), cache_dir=tmp_path, progress=False)
    full = sweep.run(small_grid(), cache_dir=tmp_path, workers=2, progress=False)
    assert full.attrs["sweep"] == {"tasks": 16, "computed": 12, "cached": 4, "bad_cache": 0}
    same(full, reference)
    same(part, reference[(reference["d"] == 10) & (reference["seed"] == 1)])
    again = sweep.run(small_grid(), cache_dir=tmp_path, progress=False)
    assert again.attrs["sweep"]["computed"] == 0
    pd.testing.assert_frame_equal(again, full)  # cached rows come back bit for bit, wall time included


def test_pool_workers_use_one_blas_thread():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx, initializer=_backends.limit_blas,
                                                initargs=(1,)) as pool:
        info = pool.submit(_blas_info).result()
    assert info and all(n == 1 for n in info)


def _blas_info():
    import numpy  # noqa: F401  (loads BLAS)
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def _entries(root):
    return sorted(pathlib.Path(root).rglob("*.json"))


def test_corrupted_entries_are_recomputed(reference, tmp_path):
    grid = small_grid(d=[8], gamma=[0.4], model=["hermite"])
    first = sweep.run(grid, cache_dir=tmp_path, progress=False)
    files = _entries(tmp_path)
    assert len(files) == 2
    raw = files[0].read_bytes()
    files[0].write_bytes(raw[: len(raw) // 2])  # truncated
    raw = bytearray(files[1].read_bytes())
    i = raw.index(b'"mse":') + 8
    raw[i] = ord("7") if raw[i] != ord("7") else ord("3")  # one digit of a result changed
    files[1].write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="bad sweep cache entry"):
        second = sweep.run(grid, cache_dir=tmp_path, progress=False)
    assert second.attrs["sweep"] == {"tasks": 2, "computed": 2, "cached": 0, "bad_cache": 2}
    same(first, second)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = sweep.run(grid, cache_dir=tmp_path, progress=False)  # repaired: no warning
    assert third.attrs["sweep"]["cached"] == 2


def fake_result(task, padding=0):
    """A result with the structure of run_task's (the cache checks it), plus ``padding`` numbers (a large file)."""
    rows = [{"n": n, "alpha": a, "mse": 0.5, "q_h": 0.5, "method": "dense",
             **{k: [0.5] * task.d1 for k in ("cos2", "overlap", "angle_cos2", "eigenvalues")}}
            for n, a in zip(task.ns, task.alphas)]
    return {"rows": rows, "wall_s": 1.0, "fit_s": 0.5, "padding": list(range(padding))}


def _hammer(root, key, rounds):
    task = small_grid().tasks()[0]
    cache = _cache.Cache(root)
    result = fake_result(task, 40000)
    for _ in range(rounds):
        cache.store(task, key, result)
    return True


def test_concurrent_writers_do_not_corrupt(tmp_path):
    key = "ab" + "0" * 62
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futs = [pool.submit(_hammer, tmp_path, key, 150) for _ in range(2)]
        cache = _cache.Cache(tmp_path)
        task = small_grid().tasks()[0]
        seen = 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a torn read would warn: fail instead
            while not all(f.done() for f in futs):
                if cache.load(task, key) is not None:
                    seen += 1
        assert all(f.result() for f in futs)
    assert cache.load(task, key)["wall_s"] == 1.0
    assert [p.name for p in (tmp_path / f"sweep-v{sweep.SWEEP_VERSION}" / "ab").iterdir()] == [f"{key}.json"]


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import hiermodel.sweep as sw
    from hiermodel.sweep import _task
    fast = _task.run_task
    def slow(task):  # make each task last long enough to be killed in the middle of the sweep
        out = fast(task)
        time.sleep(0.25)
        return out
    _task.run_task = slow
    grid = sw.Grid(d=[8, 10], gamma=[0.4, 1.0], alpha=[2.0, 2.5, 3.0], seeds=2,
                   model=["hermite", "gaussian-equivalent"], n_test=500)
    sw.run(grid, cache_dir=sys.argv[1], progress=False)
    print("finished")
""")


def test_sigkill_and_resume_matches_uninterrupted_run(reference, tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(cache)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_entries(cache)) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    done = len(_entries(cache))
    assert 5 <= done < 16 and b"finished" not in out
    resumed = sweep.run(small_grid(), cache_dir=cache, progress=False)
    assert resumed.attrs["sweep"]["cached"] == done and resumed.attrs["sweep"]["computed"] == 16 - done
    assert resumed.attrs["sweep"]["bad_cache"] == 0
    same(resumed, reference)


def test_dask_local_cluster_two_workers(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        df = sweep.run(small_grid(), cache_dir=tmp_path, scheduler=cluster.scheduler_address, progress=False)
        with distributed.Client(cluster) as client:
            workers = client.scheduler_info()["workers"]
            assert len(workers) == 2
    assert df.attrs["sweep"]["computed"] == 16
    same(df, reference)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_value_error(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        sweep.run(small_grid(), cache_dir=tmp_path, scheduler=f"tcp://127.0.0.1:{_free_port()}",
                  connect_timeout=2, progress=False)
    assert time.monotonic() - t0 < 30
    assert not _entries(tmp_path)
    with pytest.raises(ValueError, match="scheduler must be an address"):
        sweep.run(small_grid(), scheduler=42, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=[]), "grid is empty: d"),
    (dict(seeds=[]), "grid is empty: seeds"),
    (dict(alpha=[]), "grid is empty: alpha"),
    (dict(alpha=[2.0, 40.0]), "2\\^53"),
    (dict(alpha=[2.0, 2.0001]), "same n"),
    (dict(model="exact"), "unknown model"),
    (dict(model="gaussian"), "unknown model"),
    (dict(readout="cubic"), "unknown readout"),
    (dict(g=np.tanh), "unknown g"),
    (dict(alpha=None), "exactly one of alpha"),
    (dict(n=[100]), "exactly one of alpha"),
    (dict(alpha=[0.1]), "below the"),
    (dict(method="magic"), "unknown method"),
    (dict(gamma=-1.0), "gamma must be >= 0"),
])
def test_bad_grids(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_grid(**kwargs)


def test_bad_run_arguments_fail_before_work(tmp_path):
    with pytest.raises(ValueError, match="unknown metric"):
        sweep.run(small_grid(), cache_dir=tmp_path, metrics=["mse", "accuracy"])
    with pytest.raises(ValueError, match="workers"):
        sweep.run(small_grid(), cache_dir=tmp_path, workers=0)
    with pytest.raises(ValueError, match="grid must be"):
        sweep.run({"d": 8}, cache_dir=tmp_path)
    # n = 100^6 = 10^12 samples: the labels alone are terabytes
    with pytest.raises(ValueError, match="GiB"):
        sweep.run(sweep.Grid(d=100, gamma=0.4, alpha=[2.0, 6.0]), cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="memory_limit"):
        sweep.run(small_grid(), cache_dir=tmp_path, memory_limit=1e5, progress=False)
    assert not _entries(tmp_path)


def test_cache_entry_format(tmp_path):
    grid = small_grid(d=[8], gamma=[0.4], model=["hermite"], seeds=[0])
    sweep.run(grid, cache_dir=tmp_path, progress=False)
    (path,) = _entries(tmp_path)
    header, body = path.read_bytes().split(b"\n", 1)
    entry = json.loads(body)
    assert header.startswith(b"HIERMODEL-SWEEP ")
    assert entry["sweep_version"] == sweep.SWEEP_VERSION and entry["params"]["d"] == 8
    assert path.name == grid.tasks()[0].cache_key() + ".json"


# Seeds of sweep v3 (before the rename mode -> model), printed by the v3 code for these two tasks. A task's seed must
# never change with a refactor: stored book outputs and caches are compared across versions.
V3_ENTROPY = {"hermite": [0, 2097105175, 1908373788, 2812367341, 1344882566],
              "gaussian-equivalent": [0, 1846921482, 2639199431, 2816979750, 227137638]}


@pytest.mark.parametrize("model", sorted(V3_ENTROPY))
def test_seeds_unchanged_since_v3(model):
    task = sweep.Grid(d=8, gamma=0.4, alpha=[2.0], seeds=1, model=model).tasks()[0]
    assert task.seed_sequence().entropy == V3_ENTROPY[model]
    other = sweep.Grid(d=10, gamma=1.0, alpha=[2.0, 2.5], seeds=[3], g="tanh", model=model, base_seed=5).tasks()[0]
    if model == "gaussian-equivalent":
        assert other.seed_sequence().entropy == [5, 3794796797, 2699095709, 910287049, 345094979]


def test_new_columns_equal_metrics_of_the_fitted_estimator():
    grid = sweep.Grid(d=10, gamma=0.4, alpha=[2.0, 2.6], seeds=[1], model="gaussian-equivalent", n_test=200)
    df = sweep.run(grid, cache_dir=False, progress=False)
    (task,) = grid.tasks()
    streams, target = task.streams(), task.target()
    stream = SampleStream(target, max(task.ns), streams["train"], chunk_size=task.chunk_size, model=task.model)
    fitted = LayerwiseSpectral(target.d1, readout=task.readout, rng=streams["solver"]).fit_path(stream, None,
                                                                                                list(task.ns))
    K = target.d1
    assert list(df["n"]) == list(task.ns)
    for (_, row), est in zip(df.iterrows(), fitted):
        for prefix, fn in (("overlap", metrics.eigenvector_overlap), ("angle_cos2", metrics.principal_cos2),
                           ("cos2", metrics.direction_cos2)):
            np.testing.assert_allclose(row[[f"{prefix}_{k + 1}" for k in range(K)]].to_numpy(dtype=float),
                                       fn(target.directions, est.directions_), rtol=0, atol=1e-12)
    angles = df[[f"angle_cos2_{k + 1}" for k in range(K)]].to_numpy()
    assert np.all(np.diff(angles, axis=1) <= 1e-12)  # cos^2 of the principal angles, decreasing
    # the angles and the per-direction cos^2 describe the same two subspaces: equal sums (= d1 q_h)
    np.testing.assert_allclose(angles.sum(axis=1), df[[f"cos2_{k + 1}" for k in range(K)]].sum(axis=1), atol=1e-10)


def test_metric_groups_select_their_columns():
    grid = sweep.Grid(d=8, gamma=0.4, alpha=[2.0], seeds=1, n_test=100)
    df = sweep.run(grid, cache_dir=False, progress=False, metrics=["overlap", "angles"])
    assert {"overlap_1", "overlap_2", "angle_cos2_1", "angle_cos2_2"} <= set(df.columns)
    assert not any(c.startswith(("cos2_", "eig_")) for c in df.columns)
    assert sweep.SWEEP_VERSION == 7 and {"overlap", "angles"} <= set(sweep.METRICS)


def test_grids_add_up():
    a = sweep.Grid(d=8, gamma=0.4, n=[64, 100], seeds=2)
    b = sweep.Grid(d=10, gamma=0.4, eps=0.6, n=[100, 300], seeds=2)
    both = a + b
    assert len(both) == 4 and both.tasks() == a.tasks() + b.tasks() and sum([a, b]) == both
    assert both.d == (8, 10) and both.eps == (0.5, 0.6) and both.n == (64, 100, 300) and both.max_d1 == 3
    assert "+" in repr(both)
    with pytest.raises(ValueError, match="appears in two"):
        a + sweep.Grid(d=8, gamma=0.4, n=[64], seeds=[1])
    df = sweep.run(both, cache_dir=False, progress=False, metrics=["q_h"])
    assert list(df["d"]) == [8] * 4 + [10] * 4 and set(df.loc[df["d"] == 10, "n"]) == {100, 300}


def test_task_target_is_the_one_the_task_fits():
    task = sweep.Grid(d=8, gamma=0.4, alpha=[2.0], seeds=[2]).tasks()[0]
    t1, t2 = task.target(), task.target()
    np.testing.assert_array_equal(t1.directions, t2.directions)
    assert set(task.streams()) == {"target", "train", "test", "solver"}
    assert _task.run_task is sweep.run_task


def test_width_convention_round_is_the_authors_d1():
    """width='round' gives the authors' d1 = round(d^eps) (11 at d = 120, 16 at d = 250); the default keeps the
    paper's floor and every task (and seed) as before."""
    from hiermodel import HierarchicalTarget, theory

    paper = sweep.Grid(d=[120, 250], gamma=0.4, alpha=[2.0])
    authors = sweep.Grid(d=[120, 250], gamma=0.4, alpha=[2.0], width="round")
    assert [t.d1 for t in paper.tasks()] == [10, 15] and [t.d1 for t in authors.tasks()] == [11, 16]
    assert paper == sweep.Grid(d=[120, 250], gamma=0.4, alpha=[2.0], width="floor")
    for t in authors.tasks():  # the task's eps floors to the authors' width, so tables and theory see it
        assert theory.first_layer_width(t.d, t.eps) == t.d1 == t.target().d1
    assert HierarchicalTarget(120, d1=11).d1 == 11
    with pytest.raises(ValueError, match="width convention"):
        sweep.Grid(d=12, gamma=0.4, alpha=[2.0], width="ceil")
    with pytest.raises(ValueError, match="eps or d1"):
        HierarchicalTarget(12, eps=0.5, d1=3)
