"""Test-session hooks: per-notebook execution times in the summary (nbval reports one item per cell)."""

import collections


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
