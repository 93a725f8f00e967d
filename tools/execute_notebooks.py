"""Re-execute book notebooks in place and store their outputs, deterministically.

Usage: python tools/execute_notebooks.py [--no-pages] [book/NAME.ipynb ...]   (default: every notebook of the book)

Chapters run first, then the pages that read the chapters' stored ledgers (intro, ledger; skipped with
``--no-pages``, e.g. while several chapters are being re-run one by one). Kernels see one BLAS
thread and a fixed hash seed, as under nbval; timings and execution metadata are not stored, so diffs stay clean.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

BOOK = pathlib.Path(__file__).resolve().parent.parent / "book"
READS_LEDGERS = {"intro.ipynb", "ledger.ipynb"}
DETERMINISTIC_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "PYTHONHASHSEED": "0"}


def execute(path: pathlib.Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    missing = [v for v, val in DETERMINISTIC_ENV.items() if os.environ.get(v) != val]
    if missing:
        print(f"set {' '.join(f'{v}={DETERMINISTIC_ENV[v]}' for v in missing)} first (the Makefile does)")
        return 2
    options = [a for a in argv if a.startswith("-")]
    if set(options) - {"--no-pages"}:
        print(__doc__.split("\n\n")[1])  # the usage line, for --help and unknown options alike
        return 0 if set(options) <= {"--no-pages", "-h", "--help"} else 2
    pages = "--no-pages" not in argv
    paths = {pathlib.Path(a).resolve() for a in argv if a not in options} or set(BOOK.glob("*.ipynb"))
    not_notebooks = [str(p) for p in paths if p.suffix != ".ipynb" or not p.is_file()]
    if not_notebooks:
        print(f"not notebook files: {', '.join(sorted(not_notebooks))}")
        return 2
    if pages:
        paths |= {BOOK / name for name in READS_LEDGERS}  # their tables come from the chapters just executed
    paths = sorted(paths, key=lambda p: (p.name in READS_LEDGERS, p.name))
    for path in paths:
        print(f"{path.name:<40} {execute(path):7.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
