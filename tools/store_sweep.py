"""Run a figure's "stored" sweep one seed at a time and keep its table under book/data/, with provenance.

    python tools/store_sweep.py fig2 --seeds 0 1 2 3 [--commit]

Each finished seed (one task: a whole nested path) is merged into ``book/data/<name>-stored.csv`` and described in
``book/data/<name>-stored.json`` (command, versions, seeds, wall time per task, BLAS threads, CPU) under a file
lock, so several runners (one per core, disjoint seeds) can share the table; ``--commit`` commits the two files
after each seed. A killed runner loses nothing: finished seeds are in the table, and the unfinished one resumes at
its last path point from its checkpoint in the book's sweep cache (``_build/sweep-cache``, see ``hiermodel.sweep``). Seeds already in the table are
skipped. BLAS is pinned to one thread per runner (the table's recompute test runs with one).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import logging
import os
import pathlib
import platform
import subprocess
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "book" / "data"
CACHE = ROOT / "_build" / "sweep-cache"  # the book's cache (kept between sessions; holds the checkpoints)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def locked(path):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge(name, df, record):
    """Merge one seed's rows into the table and its record into the provenance (under the lock)."""
    import pandas as pd

    table, prov = DATA / f"{name}-stored.csv", DATA / f"{name}-stored.json"
    if table.exists():
        old = pd.read_csv(table)
        df = pd.concat([old[~old["seed"].isin(df["seed"].unique())], df], ignore_index=True)
    df = df.sort_values(["seed", "n"], kind="stable").reset_index(drop=True)
    meta = json.loads(prov.read_text()) if prov.exists() else {}
    tasks = [t for t in meta.get("tasks", []) if t["seed"] != record["seed"]] + [record]
    meta.update({k: v for k, v in record.items() if k in ("hiermodel", "sweep_version", "grid")},
                tasks=sorted(tasks, key=lambda t: t["seed"]))
    for path, text in ((table, df.to_csv(index=False, float_format="%.17g")),
                       (prov, json.dumps(meta, indent=1, sort_keys=True) + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return table, prov


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="registry figure with a 'stored' scale (e.g. fig2)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: every seed of the scale)")
    p.add_argument("--commit", action="store_true", help="git-commit the table after each seed")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import hiermodel
    from hiermodel import figures, sweep

    try:
        grid = figures.grid(args.name, "stored")
    except ValueError as err:
        p.error(str(err))
    seeds = args.seeds if args.seeds is not None else list(grid.seeds)
    bad = sorted(set(seeds) - set(grid.seeds))
    if bad:
        p.error(f"seeds {bad} are not in the stored grid's seeds {list(grid.seeds)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    DATA.mkdir(parents=True, exist_ok=True)
    lock = DATA / f".{args.name}-stored.lock"
    for seed in seeds:
        table = DATA / f"{args.name}-stored.csv"
        with locked(lock):
            if table.exists():
                import pandas as pd

                if seed in set(pd.read_csv(table)["seed"]):
                    logging.info("seed %d already stored; skipped", seed)
                    continue
        g = figures.grid(args.name, "stored", seeds=[seed])
        t0 = time.perf_counter()
        df = sweep.run(g, cache_dir=CACHE, progress=False)
        task = g.tasks()[0]
        record = {"seed": seed, "wall_s": round(float(df["wall_s"].iloc[0]), 1),
                  "runner_s": round(time.perf_counter() - t0, 1), "cache": df.attrs["sweep"],
                  "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "blas_threads": 1, "cpu": cpu_model(), "cores": os.cpu_count(), "method": task.resolved_method,
                  "cache_key": task.cache_key(1), "hiermodel": hiermodel.__version__,
                  "sweep_version": sweep.SWEEP_VERSION, "grid": repr(grid),
                  "command": f"python tools/store_sweep.py {args.name} --seeds {seed}"}
        with locked(lock):
            paths = merge(args.name, df, record)
            logging.info("seed %d stored (%.0f s)", seed, record["wall_s"])
            if args.commit:
                rel = [str(q.relative_to(ROOT)) for q in paths]
                msg = (f"book/data: {args.name} stored sweep, seed {seed} ({record['wall_s']:.0f} s on one core)")
                done = subprocess.run(["git", "add", "--", *rel], cwd=ROOT)
                if not done.returncode:
                    done = subprocess.run(["git", "commit", "-q", "-m", msg, "--", *rel], cwd=ROOT)
                if done.returncode:  # e.g. another git command holds the index lock: the table is written anyway
                    logging.warning("git commit failed (exit %d); commit %s by hand", done.returncode, rel)


if __name__ == "__main__":
    main()
