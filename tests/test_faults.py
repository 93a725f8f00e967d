"""Fault injection: kills at random points, Ctrl-C, SIGTERM, a full disk, every kind of bad cache entry, two sweeps
on one cache. Each ends with the table of an uninterrupted run, nothing left behind (no orphan process, no stray
temporary file, no unreadable cache entry)."""

import errno
import hashlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from hiermodel import sweep
from hiermodel.estimator import LayerwiseSpectral
from hiermodel.sweep import _cache

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
GRID = dict(d=8, gamma=[0.4, 1.0], alpha=[2.0, 2.5], seeds=4, n_test=200)  # 8 tiny tasks
N_TASKS = 8
CLI_GRID = ["--d", "8", "--gamma", "0.4", "1.0", "--alpha", "2", "2.5", "--seeds", "4", "--n-test", "200"]

# A sweep whose tasks each last 0.2 s more, so that a kill lands in the middle of it. The patch sits at the top level
# of a script file, so that spawned pool workers (which import the parent's main module) are slowed too.
SCRIPT = textwrap.dedent("""
    import sys, time
    import hiermodel.sweep as sw
    from hiermodel.sweep import _task
    fast = _task.run_task
    def slow(task):
        out = fast(task)
        time.sleep(0.2)
        return out
    _task.run_task = slow
    if __name__ == "__main__":
        grid = sw.Grid(d=8, gamma=[0.4, 1.0], alpha=[2.0, 2.5], seeds=4, n_test=200)
        sw.run(grid, cache_dir=sys.argv[1], workers=int(sys.argv[2]), progress=False)
        print("finished", flush=True)
""")

CLI_SCRIPT = textwrap.dedent("""
    import sys, time
    from hiermodel.sweep import _task
    fast = _task.run_task
    def slow(task):  # 1 s a task: under a loaded CI the signal must still land mid-sweep (0.3 s raced, once)
        out = fast(task)
        time.sleep(1.0)
        return out
    _task.run_task = slow
    if __name__ == "__main__":
        from hiermodel import cli
        sys.exit(cli.main(sys.argv[1:]))
""")


def grid():
    return sweep.Grid(**GRID)


def same(a, b):
    pd.testing.assert_frame_equal(a.drop(columns=["wall_s"]).reset_index(drop=True),
                                  b.drop(columns=["wall_s"]).reset_index(drop=True))


@pytest.fixture(scope="module")
def reference():
    return sweep.run(grid(), cache_dir=False, progress=False)


def entries(root):
    return sorted(pathlib.Path(root).rglob("*.json"))


def strays(root):
    return sorted(pathlib.Path(root).rglob("*.tmp"))


def descendants(pid):
    """Live (non-zombie) processes below ``pid``, from /proc."""
    parent = {}
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parent[int(p.name)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def alive(pids):
    live = set()
    for pid in pids:
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.add(pid)
    return live


def wait_gone(pids, seconds=10.0):
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def start(script, *args, tmp_path):
    path = tmp_path / "sweep_script.py"
    path.write_text(script)
    # Default Ctrl-C in the child: a SIGINT disposition of SIG_IGN inherited from the test runner's process
    # would make Python skip its KeyboardInterrupt handler, and the interrupted sweep would run to its end.
    return subprocess.Popen([sys.executable, str(path), *map(str, args)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_entries(cache, count, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while len(entries(cache)) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def resume_and_check(cache, reference, done):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a half-written or unreadable entry would warn
        df = sweep.run(grid(), cache_dir=cache, progress=False)
    info = df.attrs["sweep"]
    assert info["cached"] == done and info["computed"] == N_TASKS - done and info["bad_cache"] == 0
    same(df, reference)
    assert not strays(cache), strays(cache)


# --------------------------------------------------------------------------------------------------------------------
# Kills
# --------------------------------------------------------------------------------------------------------------------
def test_sigkill_inline_at_random_points_twice_then_resume(reference, tmp_path):
    cache = tmp_path / "cache"
    rnd = random.Random(16)
    first, second = sorted(rnd.sample(range(0, N_TASKS - 1), 2))
    for target in (first, second):
        proc = start(SCRIPT, cache, 1, tmp_path=tmp_path)
        wait_for_entries(cache, target, proc)
        time.sleep(rnd.uniform(0.0, 0.15))  # anywhere inside the next task, the write included
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        assert b"finished" not in out
    done = len(entries(cache))
    assert second <= done < N_TASKS
    # a kill between mkstemp and rename leaves at most a stray temporary file; the next run removes it
    stray = cache / f"sweep-v{sweep.SWEEP_VERSION}" / "00" / f".{'0' * 16}.{_host()}.{_dead_pid()}.abcd.tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"HIERMODEL-SWEEP half")
    resume_and_check(cache, reference, done)


def test_sigkill_of_a_multi_worker_sweep_leaves_no_orphans(reference, tmp_path):
    cache = tmp_path / "cache"
    proc = start(SCRIPT, cache, 2, tmp_path=tmp_path)
    wait_for_entries(cache, 2, proc, seconds=90)
    below = descendants(proc.pid)
    assert len(below) >= 2, "the pool workers (and the resource tracker) should be running"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    left = wait_gone(below)
    assert not left, f"orphans after SIGKILL of the parent: {sorted(left)}"
    resume_and_check(cache, reference, len(entries(cache)))


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_cli_interrupt_stops_workers_and_resumes(sig, code, word, reference, tmp_path):
    cache = tmp_path / "cache"
    argv = ["sweep", *CLI_GRID, "--out", tmp_path / "t.csv", "--cache-dir", cache, "--workers", "2",
            "--no-progress"]
    proc = start(CLI_SCRIPT, *argv, tmp_path=tmp_path)
    wait_for_entries(cache, 2, proc, seconds=90)
    below = descendants(proc.pid)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert proc.returncode == code, err.decode()[-3000:]
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in err.decode(), err.decode()[-3000:]
    assert not wait_gone(below, 5), "workers outlived an interrupted sweep"
    assert not (tmp_path / "t.csv").exists()
    resume_and_check(cache, reference, len(entries(cache)))


def _host():
    return _cache.Cache(None)._host


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --------------------------------------------------------------------------------------------------------------------
# Full disk
# --------------------------------------------------------------------------------------------------------------------
class _FullDisk:
    """Stands in for the cache file: writes succeed ``room`` times, then fail with ENOSPC."""

    room = 0

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        if _FullDisk.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        _FullDisk.room -= 1
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)


@pytest.mark.parametrize("room", [0, 3])
def test_full_disk_keeps_every_result(room, reference, tmp_path, monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(_FullDisk, "room", room)
    monkeypatch.setattr(_cache.os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k)))
    with pytest.warns(RuntimeWarning, match="cannot write the sweep cache.*No space left"):
        df = sweep.run(grid(), cache_dir=tmp_path, progress=False)
    same(df, reference)  # nothing lost: every result is in the table
    assert len(entries(tmp_path)) == room and not strays(tmp_path)
    monkeypatch.undo()
    resume_and_check(tmp_path, reference, room)


def test_cli_full_disk_on_the_table_is_one_line(tmp_path, monkeypatch, capsys):
    from hiermodel import cli

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *CLI_GRID, "--out", str(tmp_path / "t.csv"), "--cache-dir", str(tmp_path / "c"),
                  "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "No space left" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*t.csv*"))  # neither a partial table nor its temporary file
    assert len(entries(tmp_path / "c")) == N_TASKS  # the sweep itself is cached: a rerun writes the table at once


# --------------------------------------------------------------------------------------------------------------------
# Bad cache entries
# --------------------------------------------------------------------------------------------------------------------
def _rewrite(path, mutate):
    """Replace the entry's JSON by ``mutate(entry)`` with a valid checksum (structure wrong, checksum right)."""
    header, body = path.read_bytes().split(b"\n", 1)
    new = json.dumps(mutate(json.loads(body))).encode()
    path.write_bytes(f"HIERMODEL-SWEEP {hashlib.sha256(new).hexdigest()}\n".encode() + new)


def _rows(mutate_rows):
    def mutate(entry):
        entry["result"]["rows"] = mutate_rows(entry["result"]["rows"])
        return entry
    return mutate


def _replace_dir(path):
    path.unlink()
    (path / "inner").mkdir(parents=True)


def _corrupt_digit(path):
    raw = bytearray(path.read_bytes())
    i = raw.index(b'"mse":') + 8
    raw[i] = ord("7") if raw[i] != ord("7") else ord("3")
    path.write_bytes(bytes(raw))


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "one digit changed": _corrupt_digit,
    "empty file": lambda p: p.write_bytes(b""),
    "binary garbage": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "wrong magic": lambda p: p.write_bytes(b"OTHER-TOOL abc\n{}"),
    "no newline": lambda p: p.write_bytes(b"HIERMODEL-SWEEP"),
    "header not ascii": lambda p: p.write_bytes("HIERMODEL-SWEEP é\n{}".encode()),
    "a JSON list": lambda p: _rewrite(p, lambda e: [e]),
    "a JSON number": lambda p: _rewrite(p, lambda e: 3),
    "another task's key": lambda p: _rewrite(p, lambda e: {**e, "key": "0" * 64}),
    "no result": lambda p: _rewrite(p, lambda e: {k: v for k, v in e.items() if k != "result"}),
    "result a list": lambda p: _rewrite(p, lambda e: {**e, "result": [1, 2]}),
    "no rows": lambda p: _rewrite(p, lambda e: {**e, "result": {"wall_s": 1.0}}),
    "missing rows": lambda p: _rewrite(p, _rows(lambda rows: rows[:1])),
    "extra rows": lambda p: _rewrite(p, _rows(lambda rows: rows + rows[:1])),
    "rows of another n": lambda p: _rewrite(p, _rows(lambda rows: [{**r, "n": r["n"] + 1} for r in rows])),
    "row not an object": lambda p: _rewrite(p, _rows(lambda rows: [[1, 2]] * len(rows))),
    "cos2 of the wrong length": lambda p: _rewrite(p, _rows(lambda rows: [{**r, "cos2": r["cos2"][:1]}
                                                                          for r in rows])),
    "mse a string": lambda p: _rewrite(p, _rows(lambda rows: [{**r, "mse": "0.5"} for r in rows])),
    "a metric missing": lambda p: _rewrite(p, _rows(lambda rows: [{k: v for k, v in r.items() if k != "q_h"}
                                                                  for r in rows])),
    "a directory at the entry's path": _replace_dir,
}


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory, reference):
    root = tmp_path_factory.mktemp("filled")
    sweep.run(grid(), cache_dir=root, progress=False)
    return root


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_bad_entry_is_recomputed_and_repaired(kind, filled_cache, reference, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(filled_cache, root)
    victim = entries(root)[3]
    CORRUPTIONS[kind](victim)
    with pytest.warns(RuntimeWarning, match="bad sweep cache entry"):
        df = sweep.run(grid(), cache_dir=root, progress=False)
    assert df.attrs["sweep"] == {"tasks": N_TASKS, "computed": 1, "cached": N_TASKS - 1, "bad_cache": 1}
    same(df, reference)
    assert victim.is_file()
    resume_and_check(root, reference, N_TASKS)  # repaired: read back without a warning


def test_entries_are_world_readable_and_strays_are_cleaned(reference, tmp_path):
    old = os.umask(0o022)
    try:
        version_dir = tmp_path / f"sweep-v{sweep.SWEEP_VERSION}" / "ab"
        version_dir.mkdir(parents=True)
        mine = version_dir / f".{'a' * 16}.{_host()}.{os.getpid()}.live.tmp"  # a live writer's: kept
        dead = version_dir / f".{'b' * 16}.{_host()}.{_dead_pid()}.dead.tmp"
        stale = version_dir / f".{'c' * 16}.otherhost.123.old.tmp"
        legacy = version_dir / f".{'d' * 16}.x1y2.tmp"  # the v4 naming, without host and pid
        for p in (mine, dead, stale, legacy):
            p.write_bytes(b"partial")
        os.utime(stale, (time.time() - 2 * _cache.STALE_TMP_S,) * 2)
        cache = _cache.Cache(tmp_path)
        cache.clean_stray(version_dir)
        assert mine.exists() and not dead.exists() and not stale.exists() and not legacy.exists()
        sweep.run(grid(), cache_dir=tmp_path, progress=False)
        modes = {p.stat().st_mode & 0o777 for p in entries(tmp_path)}
        assert modes == {0o644}, modes
    finally:
        os.umask(old)


# --------------------------------------------------------------------------------------------------------------------
# What the cache key holds
# --------------------------------------------------------------------------------------------------------------------
def test_rows_report_the_requested_alpha_not_the_cached_one(tmp_path):
    a = sweep.run(sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], n_test=100), cache_dir=tmp_path, progress=False)
    b = sweep.run(sweep.Grid(d=8, gamma=0.4, alpha=[2.001, 2.5], n_test=100), cache_dir=tmp_path, progress=False)
    assert b.attrs["sweep"]["cached"] == 1  # same n = 64, 181: the same task
    assert list(b["alpha"]) == [2.001, 2.5] and list(a["alpha"]) == [2.0, 2.5]
    np.testing.assert_array_equal(a["mse"], b["mse"])


def test_key_holds_the_resolved_method_and_the_blas_threads(monkeypatch):
    auto = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5]).tasks()[0]
    resolved = auto.resolved_method
    assert resolved in ("dense", "operator")
    explicit = sweep.Grid(d=8, gamma=0.4, alpha=[2.0, 2.5], method=resolved).tasks()[0]
    assert auto.cache_key() == explicit.cache_key()  # the same computation, the same entry
    assert auto.cache_key(1) != auto.cache_key(2)
    key = auto.cache_key()
    other = "operator" if resolved == "dense" else "dense"
    monkeypatch.setattr(LayerwiseSpectral, "planned_method", lambda self, **kw: other)  # a new cost model
    assert auto.cache_key() != key


def test_other_blas_threads_do_not_reuse_entries(tmp_path):
    g = sweep.Grid(d=8, gamma=0.4, alpha=[2.0], n_test=100)
    sweep.run(g, cache_dir=tmp_path, progress=False)
    again = sweep.run(g, cache_dir=tmp_path, progress=False, blas_threads=2)
    assert again.attrs["sweep"]["computed"] == 1


# --------------------------------------------------------------------------------------------------------------------
# Two sweeps on one cache
# --------------------------------------------------------------------------------------------------------------------
def test_two_concurrent_sweeps_on_one_cache(reference, tmp_path):
    cache = tmp_path / "cache"
    procs = [start(SCRIPT, cache, 1, tmp_path=tmp_path / str(k)) if (tmp_path / str(k)).mkdir() is None else None
             for k in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and b"finished" in out, err.decode()[-3000:]
    assert len(entries(cache)) == N_TASKS
    resume_and_check(cache, reference, N_TASKS)
