"""The committed long runs (book/data/*-stored.csv) are what the code computes: a stored row is recomputed here.

A stored table holds whole nested paths (hours a seed at d = 120). Its smallest sample size is recomputed through
the path's prefix property (:meth:`hiermodel.sweep.Task.prefix`), which the first test checks bit for bit on a
small path.
"""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from hiermodel import figures, sweep

DATA = pathlib.Path(__file__).resolve().parent.parent / "book" / "data"
TABLES = sorted(DATA.glob("*-stored.csv"))
METRIC_PREFIXES = ("mse", "q_h", "cos2_", "overlap_", "angle_cos2_", "eig_")


def test_a_path_prefix_reproduces_the_paths_first_rows_exactly():
    grid = sweep.Grid(d=14, gamma=0.4, alpha=[round(1.6 + 0.1 * k, 10) for k in range(19)], seeds=[3],
                      method="dense", n_test=3000)
    task = grid.tasks()[0]
    full, part = sweep.run_task(task)["rows"], sweep.run_task(task.prefix(2))["rows"]
    for a, b in zip(full[:2], part):
        for key in ("n", "mse", "q_h", "cos2", "overlap", "angle_cos2", "eigenvalues"):
            assert a[key] == b[key], key


def test_prefix_rejects_bad_k():
    task = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 3.0]).tasks()[0]
    with pytest.raises(ValueError, match="exceeds the task's 2 sample sizes"):
        task.prefix(3)
    with pytest.raises(ValueError, match="k"):
        task.prefix(0)


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.name)
def test_stored_table_matches_its_provenance_and_registry(table):
    name = table.name.removesuffix("-stored.csv")
    df = figures.stored_table(name, table.parent)  # refuses a table of another grid, or seeds it does not list
    assert set(df["seed"]) <= set(figures.grid(name, "stored").seeds)
    for seed, rows in df.groupby("seed"):
        task = figures.grid(name, "stored", seeds=[int(seed)]).tasks()[0]
        assert list(rows["n"]) == list(task.ns), f"seed {seed}: the stored path is not the registry's"


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.name)
def test_stored_row_is_recomputed_to_1e_8(table):
    name = table.name.removesuffix("-stored.csv")
    df = pd.read_csv(table)
    seed = int(df["seed"].min())
    task = figures.grid(name, "stored", seeds=[seed]).tasks()[0]
    rows = sweep.run_task(task.prefix(2))["rows"]
    stored = df[(df["seed"] == seed) & (df["n"] == task.ns[0])].iloc[0]
    recomputed = {"mse": rows[0]["mse"], "q_h": rows[0]["q_h"]}
    for key, prefix in (("cos2", "cos2_"), ("overlap", "overlap_"), ("angle_cos2", "angle_cos2_"),
                        ("eigenvalues", "eig_")):
        recomputed.update({f"{prefix}{i + 1}": v for i, v in enumerate(rows[0][key])})
    columns = [c for c in df.columns if c.startswith(METRIC_PREFIXES)]
    assert set(recomputed) == set(columns)
    for c in columns:
        np.testing.assert_allclose(recomputed[c], stored[c], rtol=1e-8, atol=1e-12, err_msg=c)


def _fake_store(directory, *, grid_repr, seeds_csv, seeds_json):
    pd.DataFrame({"seed": seeds_csv, "n": [10] * len(seeds_csv), "mse": [0.5] * len(seeds_csv)}).to_csv(
        directory / "fig2-stored.csv", index=False)
    (directory / "fig2-stored.json").write_text(json.dumps({"grid": grid_repr,
                                                            "tasks": [{"seed": s} for s in seeds_json]}))


def test_stored_table_loads_with_its_provenance(tmp_path):
    _fake_store(tmp_path, grid_repr=repr(figures.grid("fig2", "stored")), seeds_csv=[0, 2], seeds_json=[2, 0])
    df = figures.stored_table("fig2", tmp_path)
    assert list(df["seed"]) == [0, 2] and df.attrs["provenance"]["tasks"][0]["seed"] == 2


@pytest.mark.parametrize("grid_repr, seeds_json, match", [
    ("Grid(d=[30])", [0], "computed for Grid"),
    (None, [0, 1], "provenance lists"),
])
def test_stale_or_inconsistent_stored_tables_are_refused(tmp_path, grid_repr, seeds_json, match):
    grid_repr = grid_repr or repr(figures.grid("fig2", "stored"))
    _fake_store(tmp_path, grid_repr=grid_repr, seeds_csv=[0], seeds_json=seeds_json)
    with pytest.raises(ValueError, match=match):
        figures.stored_table("fig2", tmp_path)


def test_missing_or_unknown_stored_tables_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no stored table"):
        figures.stored_table("fig2", tmp_path)
    with pytest.raises(ValueError, match="has no 'stored' scale"):
        figures.stored_table("fig3", tmp_path)
