"""Command line: ``hiermodel sweep ...`` and ``hiermodel figure NAME --scale ci|paper`` (or ``python -m hiermodel``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import signal
import sys
import tempfile
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
--set learner=krr-rbf,oracle (Algorithm 1 is learner=layerwise; the baselines of hiermodel.baselines on the same tasks)
(figures with per-d settings also take their own keys: fig4 deltas=, fig4wide d1=, rate d1=, scaling d1= ratios=)
"""


MAX_RANGE = 10000  # values one START:STOP:STEP range may expand to


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``hiermodel sweep: error: ...`` and a pointer to ``--help``, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _range_or_values(text, option="value"):
    """``"2:3.4:0.2"`` -> [2.0, 2.2, ..., 3.4] (stop included); ``"2"`` -> [2.0]; a ValueError naming ``option``."""
    def number(part):
        try:
            return float(part)
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a number or START:STOP:STEP range") from None

    if ":" not in text:
        return [number(text)]
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"{option}: range {text!r} must be START:STOP:STEP (three numbers)")
    start, stop, step = (number(p) for p in parts)
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ValueError(f"{option}: range {text!r} must have finite START, STOP and STEP")
    if step <= 0 or stop < start:
        raise ValueError(f"{option}: range {text!r} needs STEP > 0 and STOP >= START")
    count = int(round((stop - start) / step)) + 1
    if count > MAX_RANGE:
        raise ValueError(f"{option}: range {text!r} has more than {MAX_RANGE} values: use a larger STEP")
    return [round(start + k * step, 10) for k in range(count) if start + k * step <= stop + step * 1e-9]


def _floats(values, option="value"):
    out = []
    for v in values:
        out.extend(_range_or_values(v, option))
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
    run.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="seconds to wait for the Dask scheduler: connection, handshake, first worker (default 10)")
    run.add_argument("--memory-limit", type=float, metavar="GIB",
                     help="GiB one task may use (default: 80%% of RAM / workers, or the Dask workers' limit)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser():
    from .sweep import METRICS

    parser = _Parser(prog="hiermodel", description=_DESCRIPTION,
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

    from .figures import SCALES, names

    f = sub.add_parser("figure", help="regenerate a paper figure (PNG + table) at CI or paper scale",
                       description="Regenerate a figure of the paper: run its sweep, write NAME-SCALE.csv and "
                                   "NAME-SCALE.png.",
                       epilog=_FIGURE_EPILOG.format(names=", ".join(names())),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("name", choices=names(), help="which figure")
    f.add_argument("--scale", choices=SCALES, default="ci",
                   help="ci (default), paper, or stored (a long run whose table is committed)")
    f.add_argument("--out-dir", default=".", metavar="DIR", help="where to write the PNG and the table")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a grid entry (repeatable): d=12,16  seeds=2  alpha=2:3:0.5  "
                        "model=gaussian-equivalent")
    f.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    _add_run_options(f)
    return parser


_INT_KEYS = {"d", "q", "seeds", "n", "n_test", "chunk_size", "base_seed", "d1", "ratios"}
_SCALAR_KEYS = {"seeds", "n_test", "chunk_size", "base_seed", "d1", "width"}  # one value, not a list
_STR_KEYS = {"g", "model", "readout", "method", "width", "learner"}
_FLOAT_KEYS = {"gamma", "alpha", "eps", "deltas"}
_BOOL_KEYS = {"split", "orthonormal"}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_override(text):
    if "=" not in text:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}")
    key, value = (s.strip() for s in text.split("=", 1))
    key = key.replace("-", "_")
    where = f"--set {text}"
    known = _INT_KEYS | _STR_KEYS | _BOOL_KEYS | _FLOAT_KEYS
    if key not in known:
        raise ValueError(f"unknown grid key {key!r} in --set: use one of {sorted(known)}")
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"--set {key}= has no value")
    if key in _SCALAR_KEYS and len(items) > 1:
        raise ValueError(f"{where}: {key} takes one value, got {len(items)}")
    if key in _BOOL_KEYS:
        if len(items) > 1 or items[0].lower() not in _TRUE + _FALSE:
            raise ValueError(f"{where}: {key} takes true or false (also yes/no, 1/0, on/off), got {value!r}")
        return key, items[0].lower() in _TRUE
    if key in _STR_KEYS:
        return key, items if len(items) > 1 else items[0]
    if key in _INT_KEYS:
        try:
            vals = [int(x) for x in items]
        except ValueError:
            raise ValueError(f"{where}: {key} takes integers (comma-separated), got {value!r}") from None
        return key, vals if (len(vals) > 1 or key not in _SCALAR_KEYS) else vals[0]
    try:
        return key, _floats(items, where)
    except ValueError as err:
        if "is not a number" in str(err) and ":" not in value:
            raise ValueError(f"{where}: {key} takes numbers or START:STOP:STEP ranges (comma-separated), got "
                             f"{value!r}") from None
        raise


def _run_kwargs(args):
    limit = args.memory_limit
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"--memory-limit must be > 0 GiB (a finite number), got {limit}")
    if not (math.isfinite(args.connect_timeout) and args.connect_timeout > 0):
        raise ValueError(f"connect_timeout must be > 0 seconds: --connect-timeout {args.connect_timeout}")
    return dict(cache_dir=False if args.no_cache else args.cache_dir, workers=args.workers,
                scheduler=args.scheduler, progress=not args.no_progress, recompute=args.recompute,
                memory_limit=None if limit is None else limit * 2**30, connect_timeout=args.connect_timeout)


def _check_writable_dir(path, option):
    """A ValueError, before any work, unless ``path`` is (or can be made) a directory we can write into."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot write {option} {str(path)!r}: it exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hiermodel-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write {option} {str(path)!r}: {err.strerror or err}") from None


def _check_out(out):
    """``--out`` before any work: a .csv/.jsonl name, not a directory, in a directory we can write."""
    if out.suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"--out must end in .csv or .jsonl, got {out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory: give a file name such as {str(out / 'table.csv')!r}")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"cannot write --out {str(out)!r}: permission denied")
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"cannot write --out {str(out)!r}: {str(parent)!r} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write --out {str(out)!r}: {err.strerror or err}") from None


def _plain(value):
    """A JSON value for a table cell: exact floats (repr), None for NaN, plain ints and strings."""
    if isinstance(value, float) or hasattr(value, "dtype") and value.dtype.kind == "f":
        value = float(value)
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_table(df, path):
    """Write ``df`` as CSV or JSON lines; written to a temporary file first, so a failure leaves no partial
    table. JSON lines keep every float exactly (shortest repr, as ``json.dumps``)."""
    path = pathlib.Path(path)
    if path.suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"--out must end in .csv or .jsonl, got {path.name!r}")

    from ._files import write_atomic

    def write(fh):
        if path.suffix == ".csv":
            df.to_csv(fh, index=False)
        else:
            cols = list(df.columns)
            for row in df.itertuples(index=False, name=None):
                fh.write(json.dumps({c: _plain(v) for c, v in zip(cols, row)}, allow_nan=False) + "\n")

    write_atomic(path, write, text=True, sync=False)


def _cmd_sweep(args):
    from . import sweep

    out = pathlib.Path(args.out)
    _check_out(out)
    grid = sweep.Grid(d=args.d, gamma=_floats(args.gamma, "--gamma"),
                      alpha=None if args.alpha is None else _floats(args.alpha, "--alpha"),
                      n=args.n, seeds=args.seeds, q=args.q, g=args.g, eps=args.eps, model=args.model,
                      n_test=args.n_test, readout=args.readout, split=args.split, method=args.method,
                      base_seed=args.base_seed)
    t0 = time.perf_counter()
    df = sweep.run(grid, metrics=args.metrics, **_run_kwargs(args))
    if args.theory:
        df = sweep.add_theory(df)
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
    kwargs = _run_kwargs(args)
    figures.grid(args.name, args.scale, **overrides)  # a bad override fails here, before any work
    _check_writable_dir(args.out_dir, "--out-dir")
    t0 = time.perf_counter()
    res = figures.make(args.name, args.scale, args.out_dir, overrides=overrides, **kwargs)
    info = res["df"].attrs.get("sweep", {})
    print(f"{args.name} ({args.scale}): {len(res['df'])} rows ({info.get('computed', '?')} tasks computed, "
          f"{info.get('cached', '?')} from cache) in {time.perf_counter() - t0:.1f} s -> {res['png']}, "
          f"{res['table']}")
    return 0


class _Terminated(BaseException):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    """Entry point of the ``hiermodel`` console script.

    Bad input (arguments, paths, addresses) exits with status 2 and one clear line on stderr, before any work;
    Ctrl-C exits 130 and SIGTERM 143, each with one line, after stopping the workers (finished tasks stay cached).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    prog = f"hiermodel {args.command}"
    restore = None
    if threading_main() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        restore = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return {"sweep": _cmd_sweep, "figure": _cmd_figure}[args.command](args)
    except (ValueError, TypeError) as err:
        parser.exit(2, f"{prog}: error: {_one_line(err)}\n")
    except OSError as err:  # e.g. the disk filled up while writing the table
        where = f" {err.filename!r}" if getattr(err, "filename", None) else ""
        parser.exit(2, f"{prog}: error: {err.strerror or err}{where}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{prog}: interrupted; finished tasks are cached, rerun the same command to resume\n")
    except _Terminated:
        parser.exit(143, f"{prog}: terminated; finished tasks are cached, rerun the same command to resume\n")
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def threading_main():
    import threading

    return threading.current_thread() is threading.main_thread()


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
