"""The claim ledger: machine-readable verdicts that travel in the chapters' stored outputs.

A chapter keeps a :class:`Ledger`, records a verdict per check (claim id, prediction, measurement, tolerance,
pass/fail) and shows it as its last output. That output carries a JSON copy under :data:`MIME_TYPE`, so nbval
re-derives every verdict when it re-executes the chapter, and :func:`collect` can assemble the book-wide table
from the committed notebooks alone.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import pathlib

MIME_TYPE = "application/vnd.hiermodel.ledger+json"


def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One check: what was predicted, what was measured, within which tolerance, and whether it held."""

    claim: str
    check: str
    predicted: str
    measured: str
    tolerance: str
    passed: bool

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return f"[{_verdict_word(self.passed)}] {self.claim}: {self.check} (measured {self.measured}, predicted {self.predicted})"


class Ledger:
    """Verdicts of one chapter.

    Parameters
    ----------
    chapter : str
        Document name of the chapter (its file name without ``.ipynb``), used for links.
    title : str
        Short chapter title for the book-wide table.
    anchor : str
        MyST label of the chapter's checks section, for links from the ledger page.
    """

    def __init__(self, chapter: str, title: str, anchor: str):
        self.chapter, self.title, self.anchor = chapter, title, anchor
        self.verdicts: list[Verdict] = []

    def compare(self, claim, check, *, measured, predicted, atol=0.0, rtol=0.0, uncertainty=None, sigmas=None):
        """Record ``|measured - predicted| <= atol + rtol |predicted| (+ sigmas * uncertainty)``.

        Returns the :class:`Verdict`, which is truthy when the check passed (so ``assert ledger.compare(...)`` works).

        ``uncertainty`` is the measured value's standard error; with ``sigmas`` it widens the tolerance by that
        many standard errors (a statistical test), otherwise it is only reported.
        """
        measured, predicted = float(measured), float(predicted)
        if not (math.isfinite(measured) and math.isfinite(predicted)):
            raise ValueError(f"{check}: measured and predicted must be finite, got {measured}, {predicted}")
        if atol < 0 or rtol < 0 or (sigmas is not None and (uncertainty is None or sigmas < 0)):
            raise ValueError("atol, rtol and sigmas must be >= 0, and sigmas needs an uncertainty")
        tol = atol + rtol * abs(predicted) + (sigmas * float(uncertainty) if sigmas is not None else 0.0)
        parts = [f"abs {_fmt(atol)}"] if atol else []
        parts += [f"rel {_fmt(rtol)}"] if rtol else []
        parts += [f"{_fmt(sigmas)} s.e."] if sigmas is not None else []
        shown = _fmt(measured) + (f" ± {_fmt(uncertainty)}" if uncertainty is not None else "")
        return self._add(claim, check, _fmt(predicted), shown, " + ".join(parts) or "exact",
                         abs(measured - predicted) <= tol)

    def confirm(self, claim, check, passed, *, predicted, measured, tolerance="—"):
        """Record a check stated in words (an inequality, an ordering, a symbolic identity); return the Verdict."""
        return self._add(claim, check, _fmt(predicted), _fmt(measured), _fmt(tolerance), bool(passed))

    def _add(self, *fields):
        verdict = Verdict(*fields)
        self.verdicts.append(verdict)
        return verdict

    # --- display ------------------------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {"chapter": self.chapter, "title": self.title, "anchor": self.anchor,
                "verdicts": [dataclasses.asdict(v) for v in self.verdicts]}

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {MIME_TYPE: self.as_dict(), "text/plain": _plain_table(self.verdicts),
                "text/html": _html_table(self.verdicts)}


_HEAD = ("claim", "check", "predicted", "measured", "tolerance", "verdict")


def _verdict_word(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def _plain_table(verdicts) -> str:
    rows = [(v.claim, v.check, v.predicted, v.measured, v.tolerance, _verdict_word(v.passed)) for v in verdicts]
    widths = [max(len(r[k]) for r in rows + [_HEAD]) for k in range(len(_HEAD))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(_HEAD)] + [line(r) for r in rows])


def _badge(passed: bool) -> str:
    colour = "#1a7f37" if passed else "#cf222e"
    return f'<span style="color:{colour};font-weight:bold">{_verdict_word(passed)}</span>'


def _html_table(verdicts, link=None) -> str:
    head = "".join(f"<th>{h}</th>" for h in _HEAD)
    body = []
    for v in verdicts:
        cells = [html.escape(c) for c in (v.claim, v.check, v.predicted, v.measured, v.tolerance)]
        if link:
            cells[0] = f'<a href="{html.escape(link)}">{cells[0]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{_badge(v.passed)}</td></tr>")
    return f'<table class="ledger"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# --- the book-wide ledger ---------------------------------------------------------------------------------------
def collect(book_dir=".") -> list[dict]:
    """All chapters' ledgers, read from the stored outputs of ``book_dir/*.ipynb`` in file-name order."""
    found = []
    for path in sorted(pathlib.Path(book_dir).glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if MIME_TYPE in data:
                    found.append(data[MIME_TYPE])
    return found


class BookLedger:
    """The table of every chapter's verdicts (``detail=True``) or one summary row per chapter."""

    def __init__(self, ledgers, *, detail=True):
        self.ledgers, self.detail = list(ledgers), detail

    @property
    def counts(self) -> tuple[int, int]:
        """``(passed, total)`` over all chapters."""
        flags = [v["passed"] for led in self.ledgers for v in led["verdicts"]]
        return sum(flags), len(flags)

    def _rows(self):
        for led in self.ledgers:
            link = f"{led['chapter']}.html#{led['anchor']}"
            yield led, link, [Verdict(**v) for v in led["verdicts"]]

    def _repr_html_(self):
        if self.detail:
            parts = []
            for led, link, verdicts in self._rows():
                parts.append(f'<p><a href="{html.escape(link)}"><b>{html.escape(led["title"])}</b></a></p>')
                parts.append(_html_table(verdicts, link))
            return "\n".join(parts)
        rows = []
        for led, link, verdicts in self._rows():
            ok = sum(v.passed for v in verdicts)
            claims = ", ".join(sorted({v.claim for v in verdicts}))
            rows.append(f'<tr><td><a href="{html.escape(link)}">{html.escape(led["title"])}</a></td>'
                        f"<td>{html.escape(claims)}</td><td>{ok} / {len(verdicts)}</td>"
                        f"<td>{_badge(ok == len(verdicts))}</td></tr>")
        head = "<tr><th>chapter</th><th>claims</th><th>checks passed</th><th>verdict</th></tr>"
        return f'<table class="ledger"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'

    def __repr__(self):
        lines = []
        for led, _, verdicts in self._rows():
            ok = sum(v.passed for v in verdicts)
            lines.append(f"{led['title']}: {ok}/{len(verdicts)} passed")
            if self.detail:
                lines.append(_plain_table(verdicts))
        return "\n".join(lines)
