"""Command line: ``hiermodel sweep ...`` and ``hiermodel figure NAME --scale ci|paper`` (or ``python -m hiermodel``)."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

__all__ = ["main"]

_DESCRIPTION = """\
Run sweeps of the layer-wise spectral estimator on the hierarchical model (arXiv:2605.14567).

A sweep fits the estimator for every combination of the listed parameters and every sample size
n = round(d^alpha), and writes one table row per (parameters, seed, n) with the test MSE, the subspace
overlap q_h, the per-direction cos^2, the eigenvector overlaps <u_k, A_k>^2, the principal angles, the top
eigenvalues and the wall time. Finished work is cached on
disk, so an interrupted sweep resumes where it stopped and a repeated one returns at once.
"""

_SWEEP_EPILOG = """\
examples:
  hiermodel sweep --d 10 16 --gamma 0.4 --alpha 2:3.4:0.2 --seeds 4 --out fig.csv
  hiermodel sweep --d 24 --gamma 1 --alpha 1.6:3.4:0.2 --model hermite gaussian-equivalent --workers 2 \
      --out rate.jsonl
  hiermodel sweep ... --scheduler tcp://head-node:8786          # run the tasks on a Dask cluster

alpha (and gamma) accept START:STOP:STEP ranges, STOP included. The output format follows the file name:
.csv or .jsonl (JSON lines). Add --theory for the closed-form predictions as extra columns.
"""

_FIGURE_EPILOG = """\
figures: {names}
  ci    : exactly the experiment the book's chapter runs (minutes on two cores)
  paper : the same experiment at the paper's sizes: needs a large machine or a cluster, e.g.
          dask scheduler &   dask worker tcp://HOST:8786 --nworkers 16 --nthreads 1   (on each node)
          hiermodel figure fig4 --scale paper --scheduler tcp://HOST:8786 --cache-dir /shared/cache

Override any grid entry with --set, e.g. --set d=12,16 --set seeds=2 --set alpha=2:3:0.5 --set model=hermite
(figures with per-d settings also take their own keys: fig4 deltas=, rate d1=, scaling d1= ratios=)
"""


def _range_or_values(text, cast=float):
    """``"2:3.4:0.2"`` -> [2.0, 2.2, ..., 3.4] (stop included); ``"2"`` -> [2.0]."""
    if ":" not in text:
        return [cast(text)]
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"range {text!r} must be START:STOP:STEP")
    start, stop, step = (float(p) for p in parts)
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"range {text!r} needs STEP > 0 and STOP >= START")
    count = int(round((stop - start) / step)) + 1
    return [cast(round(start + k * step, 10)) for k in range(count) if start + k * step <= stop + step * 1e-9]


def _floats(values):
    out = []
    for v in values:
        try:
            out.extend(_range_or_values(v))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number or START:STOP:STEP range: {v!r}") from None
    return out


def _add_run_options(p):
    run = p.add_argument_group("running")
    run.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: run inline)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address (tcp://host:8786): run the tasks on that cluster")
    run.add_argument("--cache-dir", metavar="DIR",
                     help="cache of finished tasks (default $HIERMODEL_CACHE_DIR or ~/.cache/hiermodel)")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    run.add_argument("--recompute", action="store_true", help="ignore cached results (and overwrite them)")
    run.add_argument("--memory-limit", type=float, metavar="GIB",
                     help="GiB one task may use (default: 80%% of RAM / workers, or the Dask workers' limit)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser():
    from .sweep import METRICS

    parser = argparse.ArgumentParser(prog="hiermodel", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("sweep", help="run a parameter sweep and write its table",
                       description=_DESCRIPTION, epilog=_SWEEP_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    grid = s.add_argument_group("grid (each option takes one or more values)")
    grid.add_argument("--d", nargs="+", type=int, required=True, help="input dimensions")
    grid.add_argument("--gamma", nargs="+", required=True, help="power-law exponents of the weights (>= 0)")
    sizes = grid.add_mutually_exclusive_group(required=True)
    sizes.add_argument("--alpha", nargs="+", help="sample exponents: n = round(d^alpha)")
    sizes.add_argument("--n", nargs="+", type=int, help="explicit sample sizes (instead of --alpha)")
    grid.add_argument("--seeds", type=int, default=1, help="number of seeds 0..K-1 (default 1)")
    grid.add_argument("--q", nargs="+", type=int, default=[2], help="degree of the Hermite lift (default 2)")
    grid.add_argument("--g", nargs="+", default=["id"], help="output link: id, tanh (default id)")
    grid.add_argument("--eps", nargs="+", type=float, default=[0.5], help="width exponent, d1 = floor(d^eps)")
    grid.add_argument("--model", nargs="+", default=["hermite"],
                      help="data model: hermite (real inputs, Hermite lift) and/or gaussian-equivalent "
                           "(F ~ N(0, I_D))")
    est = s.add_argument_group("estimator")
    est.add_argument("--n-test", type=int, default=2000, help="test samples per task (default 2000)")
    est.add_argument("--readout", default="auto", help="auto, affine, poly (default: affine for id, poly else)")
    est.add_argument("--split", action="store_true", help="sample splitting between the two layers")
    est.add_argument("--method", default="auto", help="eigen-solver: auto, dense, operator, rsi")
    est.add_argument("--base-seed", type=int, default=0, help="mixed into every task's seed (default 0)")
    out = s.add_argument_group("output")
    out.add_argument("--out", "-o", required=True, metavar="FILE", help="table to write: FILE.csv or FILE.jsonl")
    out.add_argument("--metrics", nargs="+", help="metric groups to keep (default all): "
                     + " ".join(METRICS))
    out.add_argument("--theory", action="store_true", help="add the closed-form predictions as columns")
    _add_run_options(s)

    from .figures import names

    f = sub.add_parser("figure", help="regenerate a paper figure (PNG + table) at CI or paper scale",
                       description="Regenerate a figure of the paper: run its sweep, write NAME-SCALE.csv and "
                                   "NAME-SCALE.png.",
                       epilog=_FIGURE_EPILOG.format(names=", ".join(names())),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("name", choices=names(), help="which figure")
    f.add_argument("--scale", choices=("ci", "paper"), default="ci", help="ci (default) or paper")
    f.add_argument("--out-dir", default=".", metavar="DIR", help="where to write the PNG and the table")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a grid entry (repeatable): d=12,16  seeds=2  alpha=2:3:0.5  "
                        "model=gaussian-equivalent")
    f.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    _add_run_options(f)
    return parser


_INT_KEYS = {"d", "q", "seeds", "n", "n_test", "chunk_size", "base_seed", "d1", "ratios"}
_SCALAR_KEYS = {"seeds", "n_test", "chunk_size", "base_seed", "d1"}  # one value, not a list
_STR_KEYS = {"g", "model", "readout", "method"}
_FLOAT_KEYS = {"gamma", "alpha", "eps", "deltas"}
_BOOL_KEYS = {"split", "orthonormal"}


def _parse_override(text):
    if "=" not in text:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}")
    key, value = (s.strip() for s in text.split("=", 1))
    key = key.replace("-", "_")
    items = [v for v in value.split(",") if v]
    if not items:
        raise ValueError(f"--set {key}= has no value")
    if key in _BOOL_KEYS:
        return key, value.lower() in ("1", "true", "yes")
    if key in _STR_KEYS:
        return key, items if len(items) > 1 else items[0]
    if key in _INT_KEYS:
        vals = [int(x) for x in items]
        return key, vals if (len(vals) > 1 or key not in _SCALAR_KEYS) else vals[0]
    if key in _FLOAT_KEYS:
        return key, _floats(items)
    raise ValueError(f"unknown grid key {key!r} in --set: use one of "
                     f"{sorted(_INT_KEYS | _STR_KEYS | _BOOL_KEYS | _FLOAT_KEYS)}")


def _run_kwargs(args):
    return dict(cache_dir=False if args.no_cache else args.cache_dir, workers=args.workers,
                scheduler=args.scheduler, progress=not args.no_progress, recompute=args.recompute,
                memory_limit=None if args.memory_limit is None else args.memory_limit * 2**30)


def _write_table(df, path):
    path = pathlib.Path(path)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix in (".jsonl", ".ndjson"):
        df.to_json(path, orient="records", lines=True, double_precision=15)
    else:
        raise ValueError(f"--out must end in .csv or .jsonl, got {path.name!r}")


def _cmd_sweep(args):
    from . import sweep

    out = pathlib.Path(args.out)
    if out.suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"--out must end in .csv or .jsonl, got {out.name!r}")
    grid = sweep.Grid(d=args.d, gamma=_floats(args.gamma), alpha=None if args.alpha is None else _floats(args.alpha),
                      n=args.n, seeds=args.seeds, q=args.q, g=args.g, eps=args.eps, model=args.model,
                      n_test=args.n_test, readout=args.readout, split=args.split, method=args.method,
                      base_seed=args.base_seed)
    t0 = time.perf_counter()
    df = sweep.run(grid, metrics=args.metrics, **_run_kwargs(args))
    if args.theory:
        df = sweep.add_theory(df)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_table(df, out)
    info = df.attrs["sweep"]
    print(f"{len(df)} rows ({info['tasks']} tasks: {info['computed']} computed, {info['cached']} from cache) "
          f"in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _cmd_figure(args):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    from . import figures

    overrides = dict(_parse_override(s) for s in args.set)
    t0 = time.perf_counter()
    res = figures.make(args.name, args.scale, args.out_dir, overrides=overrides, **_run_kwargs(args))
    info = res["df"].attrs.get("sweep", {})
    print(f"{args.name} ({args.scale}): {len(res['df'])} rows ({info.get('computed', '?')} tasks computed, "
          f"{info.get('cached', '?')} from cache) in {time.perf_counter() - t0:.1f} s -> {res['png']}, "
          f"{res['table']}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``hiermodel`` console script. Bad input exits with status 2 and one clear line."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return {"sweep": _cmd_sweep, "figure": _cmd_figure}[args.command](args)
    except ValueError as err:
        parser.exit(2, f"hiermodel {args.command}: error: {err}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
