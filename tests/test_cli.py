"""The command line: `hiermodel sweep`, `hiermodel figure`, `python -m hiermodel`, help and bad input."""

import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

from hiermodel import cli, figures, sweep
from hiermodel.sweep import _backends

TINY = ["--d", "8", "10", "--gamma", "0.4", "--alpha", "2:3:0.5", "--seeds", "2", "--n-test", "300"]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def test_help_is_readable(capsys):
    for argv in (["--help"], ["sweep", "--help"], ["figure", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0
    text = capsys.readouterr().out
    for words in ("sweep", "figure", "--alpha", "START:STOP:STEP", "--scheduler", "--cache-dir", "paper", "fig4",
                  "dask worker"):
        assert words in text


def test_sweep_writes_csv_and_jsonl(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert cli.main(["sweep", *TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--no-progress",
                     "--theory"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 3 and {"mse", "q_h", "cos2_1", "overlap_1", "angle_cos2_1", "eig_1",
                                     "mse_refined"} <= set(df.columns)
    assert "(4 tasks: 4 computed, 0 from cache)" in capsys.readouterr().out
    js = tmp_path / "t.jsonl"
    assert cli.main(["sweep", *TINY, "--out", str(js), "--cache-dir", str(tmp_path / "c"), "--no-progress",
                     "--metrics", "mse", "q_h"]) == 0
    assert "4 from cache" in capsys.readouterr().out
    back = pd.read_json(js, lines=True)
    assert "q_h" in back.columns and not any(c.startswith("cos2_") for c in back.columns)
    pd.testing.assert_series_equal(back["mse"], df["mse"], check_exact=False, rtol=1e-12)


def test_python_m_and_console_script_with_progress_bar(tmp_path):
    out = tmp_path / "t.csv"
    res = subprocess.run([sys.executable, "-m", "hiermodel", "sweep", *TINY, "--out", str(out), "--cache-dir",
                          str(tmp_path / "c"), "--workers", "2"], env=ENV, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sweep: 100%" in res.stderr and "4/4" in res.stderr  # tqdm bar, with its ETA field
    assert "4 computed" in res.stdout and out.exists()
    script = pathlib.Path(sys.executable).parent / "hiermodel"
    if script.exists():
        res = subprocess.run([str(script), "sweep", "--help"], env=ENV, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "--alpha" in res.stdout


def test_figure_grids_build_at_both_scales():
    for name in figures.names():
        ci, paper = figures.grid(name, "ci"), figures.grid(name, "paper")
        size_ci, size_paper = (sum(max(t.ns) * t.D for t in g.tasks()) for g in (ci, paper))
        assert len(ci) >= 4 and max(paper.d) > max(ci.d) and size_paper > size_ci
    # the paper scale does not fit a small machine: refused before any work
    with pytest.raises(ValueError, match="GiB"):
        sweep.run(figures.grid("fig4", "paper"), cache_dir=False, memory_limit=16 * 2**30)
    with pytest.raises(ValueError, match="unknown figure"):
        figures.grid("fig9")
    with pytest.raises(ValueError, match="unknown scale"):
        figures.grid("fig2", "huge")
    with pytest.raises(ValueError, match="unknown grid key"):
        figures.grid("fig2", colour="red")


@pytest.mark.parametrize("argv, message", [
    (["sweep", *TINY, "--out", "x.csv", "--metrics", "accuracy"], "unknown metric"),
    (["sweep", *TINY, "--out", "x.parquet"], "must end in .csv or .jsonl"),
    (["sweep", "--d", "8", "--gamma", "0.4", "--alpha", "2", "40", "--out", "x.csv"], "2^53"),
    (["sweep", *TINY, "--model", "exact", "--out", "x.csv"], "unknown model"),
    (["figure", "fig2", "--set", "d1=3"], "unknown grid key"),
    (["figure", "fig2", "--set", "colour=red"], "unknown grid key"),
    (["figure", "kernels", "--set", "learner=svm"], "unknown learner 'svm'"),
    (["sweep", *TINY, "--out", "x.csv", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--scheduler" in argv:
        monkeypatch.setattr(_backends, "connect", _fast_connect)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def _fast_connect(scheduler, timeout):
    return _REAL_CONNECT(scheduler, 2)


_REAL_CONNECT = _backends.connect


def test_jsonl_keeps_every_float_exactly(tmp_path):
    import json

    import numpy as np

    js, csv = tmp_path / "t.jsonl", tmp_path / "t.csv"
    for out in (js, csv):
        assert cli.main(["sweep", *TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    rows = [json.loads(line) for line in js.read_text().splitlines()]
    df = sweep.run(sweep.Grid(d=[8, 10], gamma=0.4, alpha=[2.0, 2.5, 3.0], seeds=2, n_test=300),
                   cache_dir=tmp_path / "c", progress=False)
    assert [r["mse"] for r in rows] == list(df["mse"])  # bit for bit, not 15 decimal places
    assert [r["cos2_3"] for r in rows] == [None if np.isnan(v) else v for v in df["cos2_3"]]  # NaN -> null
    assert oct(js.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--d", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "--help" in err


def test_figure_set_learner_runs_a_baseline_on_the_figures_tasks(tmp_path):
    import pandas as pd

    cli.main(["figure", "kernels", "--set", "d=8", "--set", "seeds=1", "--set", "learner=layerwise,oracle",
              "--out-dir", str(tmp_path), "--no-cache", "--no-progress"])
    df = pd.read_csv(tmp_path / "kernels-ci.csv")
    assert set(df["method"]) >= {"oracle"} and len(df) == 2 * df["n"].nunique()
