"""The book builds with warnings as errors from the stored outputs, and the HTML needs no network."""

import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # nbval re-executes the chapters; here the stored outputs suffice
    (out / "_config.yml").write_text(yaml.safe_dump(config))
    cmd = [str(pathlib.Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--all", "-W", "-n",
           "--keep-going", "--config", str(out / "_config.yml"), "--path-output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_pages_exist(html):
    for page in ("book/intro.html", "book/01-model.html", "book/ledger.html", "book/references.html"):
        assert (html / page).exists(), page


def test_no_remote_scripts_or_styles(html):
    remote = re.compile(r'<(script|link)[^>]+(src|href)="(https?:)?//', re.IGNORECASE)
    offenders = [str(p.relative_to(html)) for p in html.rglob("*.html") if remote.search(p.read_text())]
    assert not offenders, f"pages load remote scripts or styles: {offenders}"


def test_math_theorems_figures_and_ledger_render(html):
    page = (html / "book/01-model.html").read_text()
    assert re.search(r'<script[^>]+src="[^"]*mathjax[^"]*\.js', page), "MathJax is not bundled"
    assert 'class="proof definition' in page or "prf:definition" in page or 'id="def-model"' in page
    assert 'id="prop-var-h2"' in page
    assert page.count('<img alt=') >= 3 or page.count("<img ") >= 3
    assert 'class="ledger"' in page
    ledger = (html / "book/ledger.html").read_text()
    assert 'href="01-model.html#model-checks"' in ledger
    assert 'id="model-checks"' in page
