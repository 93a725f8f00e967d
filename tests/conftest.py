"""Shared test fixtures, and per-notebook execution times in the summary (nbval reports one item per cell)."""

import collections
import itertools
import math

import numpy as np
import pytest


def pytest_terminal_summary(terminalreporter):
    per_notebook = collections.defaultdict(float)
    for reports in terminalreporter.stats.values():
        for report in reports:
            path = getattr(report, "nodeid", "").split("::")[0]
            if path.endswith(".ipynb") and getattr(report, "when", None) == "call":
                per_notebook[path] += report.duration
    if per_notebook:
        terminalreporter.section("notebook execution times (nbval)")
        for path, seconds in sorted(per_notebook.items()):
            terminalreporter.write_line(f"{path:<40} {seconds:7.1f} s")
        terminalreporter.write_line(f"{'all notebooks':<40} {sum(per_notebook.values()):7.1f} s")


@pytest.fixture
def gauss_grid():
    """Tensor Gauss–Hermite rule for N(0, I_d): ``grid(d, nodes) -> (points (m, d), weights (m,))``.

    Exact for polynomials of degree <= 2 nodes - 1 in each coordinate, so moment checks need no Monte Carlo.
    """
    def grid(d, nodes):
        z, w = np.polynomial.hermite_e.hermegauss(nodes)
        w = w / math.sqrt(2 * math.pi)
        points = np.array(list(itertools.product(z, repeat=d)))
        weights = np.prod(np.array(list(itertools.product(w, repeat=d))), axis=1)
        return points, weights
    return grid
