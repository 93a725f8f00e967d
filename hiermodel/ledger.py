"""The claim ledger: verdicts that can fail, in the chapters' stored outputs, and each claim's status.

A chapter keeps a :class:`Ledger`. Each check is declared *before* its number is computed —
:meth:`Ledger.expect` fixes the claim, the role, the prediction, the alternative the check rejects and the
tolerance (a stated systematic allowance plus a number of standard errors) — and is then resolved by
:meth:`Check.measure`. The ledger refuses a check that cannot fail: an empty tolerance, or one so wide that the
alternative would pass too. What SymPy proves stays an ``assert`` in the derivation, not a verdict. A chapter
states its judgement of a claim with :meth:`Ledger.judge` (one of :data:`hiermodel.claims.STATUSES`), which must
agree with its verdicts by the rule of :mod:`hiermodel.claims`.

The ledger's output carries a JSON copy under :data:`MIME_TYPE`, so nbval re-derives every verdict when it
re-executes the chapter, and :func:`collect` assembles the book-wide tables (:class:`BookLedger`, with
:data:`CLAIMS_MIME_TYPE` for the per-claim statuses) from the committed notebooks alone.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import numbers
import pathlib

from .claims import CLAIMS, STATUSES, check_claim, check_role, claim_status

__all__ = ["MIME_TYPE", "CLAIMS_MIME_TYPE", "SIDES", "Ledger", "Check", "Verdict", "BookLedger", "collect"]

MIME_TYPE = "application/vnd.hiermodel.ledger+json"
CLAIMS_MIME_TYPE = "application/vnd.hiermodel.claims+json"
SIDES = ("two-sided", "at most", "at least")
"""``two-sided``: ``|measured - predicted| <= tol``; ``at most``: ``measured <= predicted + tol`` (an upper bound);
``at least``: ``measured >= predicted - tol``."""


def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    x = float(x)
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _real(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number (a computed value, not a flag), got {value!r}")
    return float(value)


def _inside(side, value, predicted, tol) -> bool:
    if side == "two-sided":
        return abs(value - predicted) <= tol
    return value <= predicted + tol if side == "at most" else value >= predicted - tol


@dataclasses.dataclass(frozen=True)
class _Declared:
    """What a check fixes before its measurement (the fields :meth:`Ledger.expect` takes)."""

    claim: str
    role: str
    check: str
    side: str
    predicted: float
    alternative: float
    systematic: float
    sigmas: float
    why: str


@dataclasses.dataclass(frozen=True)
class Verdict(_Declared):
    """One resolved check (all numbers as stored; ``tolerance`` is the total allowance used)."""

    measured: float
    se: float | None
    tolerance: float
    passed: bool

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return f"[{'pass' if self.passed else 'FAIL'}] {self.claim} ({self.role}): {self.check}"

    @property
    def tolerance_text(self) -> str:
        parts = [_fmt(self.systematic)] if self.systematic else []
        if self.sigmas:
            parts.append(f"{_fmt(self.sigmas)} s.e.")
        return " + ".join(parts) + f" = {_fmt(self.tolerance)}"

    @property
    def measured_text(self) -> str:
        return _fmt(self.measured) + (f" ± {_fmt(self.se)}" if self.se is not None else "")

    @property
    def predicted_text(self) -> str:
        op = {"two-sided": "", "at most": "≤ ", "at least": "≥ "}[self.side]
        return op + _fmt(self.predicted)


@dataclasses.dataclass(frozen=True)
class Check(_Declared):
    """A declared check, waiting for its measurement (returned by :meth:`Ledger.expect`)."""

    ledger: "Ledger" = dataclasses.field(default=None, repr=False, compare=False)
    verdict: Verdict | None = dataclasses.field(default=None, compare=False)

    def __repr__(self):
        return f"Check({self.claim!r}, {self.check!r}, {'open' if self.verdict is None else 'measured'})"

    def measure(self, measured, *, se=None) -> Verdict:
        """Resolve the check: ``tolerance = systematic + sigmas * se``; refused if it no longer rejects the
        alternative (the measurement is too noisy to tell them apart)."""
        if self.verdict is not None:
            raise ValueError(f"{self.check!r} is already measured")
        measured = _real("measured", measured)
        if self.sigmas and se is None:
            raise ValueError(f"{self.check!r}: the tolerance has {self.sigmas} s.e., so measure() needs se=")
        se = None if se is None else _real("se", se)
        if se is not None and se < 0:
            raise ValueError(f"se must be >= 0, got {se}")
        tol = self.systematic + (self.sigmas * se if self.sigmas else 0.0)
        if _inside(self.side, self.alternative, self.predicted, tol):
            raise ValueError(f"{self.check!r}: with s.e. {_fmt(se)} the tolerance {_fmt(tol)} also admits the "
                             f"alternative {_fmt(self.alternative)}: the check cannot tell them apart")
        declared = {f.name: getattr(self, f.name) for f in dataclasses.fields(_Declared)}
        verdict = Verdict(**declared, measured=measured, se=se, tolerance=tol,
                          passed=_inside(self.side, measured, self.predicted, tol))
        object.__setattr__(self, "verdict", verdict)  # the declaration itself stays frozen
        self.ledger.verdicts.append(verdict)
        return verdict


class Ledger:
    """Verdicts and claim judgements of one chapter.

    Parameters
    ----------
    chapter : str
        Document name of the chapter (its file name without ``.ipynb``), used for links.
    title : str
        Short chapter title for the book-wide tables.
    anchor : str
        MyST label of the chapter's checks section, for links from the ledger page.
    """

    def __init__(self, chapter: str, title: str, anchor: str):
        self.chapter, self.title, self.anchor = chapter, title, anchor
        self.verdicts: list[Verdict] = []
        self.judgements: list[dict] = []
        self._pending: list[Check] = []

    def expect(self, claim, check, *, role, predicted, alternative, systematic=0.0, sigmas=0.0, why,
               side="two-sided") -> Check:
        """Declare a check before measuring it.

        Parameters
        ----------
        claim, role : str
            A registry id of :data:`hiermodel.claims.CLAIMS` and one of ``"paper"``, ``"derived"``,
            ``"finite-size"``.
        check : str
            What is measured, in words.
        predicted, alternative : float
            The prediction, and what a wrong claim would predict instead (the value the check must reject).
        systematic, sigmas : float
            The tolerance: a systematic allowance (from the book's own finite-size predictions; say which in
            ``why``) plus ``sigmas`` standard errors of the measurement. At least one must be positive.
        why : str
            Where the tolerance comes from.
        side : {"two-sided", "at most", "at least"}
            The kind of statement (see :data:`SIDES`).
        """
        check_claim(claim)
        check_role(role)
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}: use one of {SIDES}")
        predicted, alternative = _real("predicted", predicted), _real("alternative", alternative)
        systematic, sigmas = _real("systematic", systematic), _real("sigmas", sigmas)
        if systematic < 0 or sigmas < 0:
            raise ValueError("systematic and sigmas must be >= 0")
        if systematic == 0 and sigmas == 0:
            raise ValueError(f"{check!r}: a check needs a tolerance (systematic and/or sigmas); an exact identity "
                             "is a SymPy assert, not a verdict")
        if not isinstance(why, str) or not why.strip():
            raise ValueError(f"{check!r}: say where the tolerance comes from (why=...)")
        if _inside(side, alternative, predicted, systematic):
            raise ValueError(f"{check!r}: the alternative {_fmt(alternative)} lies inside the systematic allowance "
                             f"{_fmt(systematic)} of the prediction {_fmt(predicted)}: the check cannot fail")
        pending = Check(claim, role, check, side, predicted, alternative, systematic, sigmas, why, ledger=self)
        self._pending.append(pending)
        return pending

    def judge(self, claim, status, *, because):
        """State the chapter's judgement of a claim (one of :data:`hiermodel.claims.STATUSES`), checked against
        this chapter's verdicts of that claim."""
        check_claim(claim)
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: use one of {STATUSES}")
        if not isinstance(because, str) or not because.strip():
            raise ValueError("a judgement needs its reason (because=...)")
        claim_status(claim, [dataclasses.asdict(v) for v in self.verdicts if v.claim == claim], [status])
        self.judgements.append({"claim": claim, "status": status, "because": because})

    # --- display ------------------------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        open_checks = [c.check for c in self._pending if c.verdict is None]
        if open_checks:
            raise ValueError(f"declared but never measured: {open_checks}")
        return {"chapter": self.chapter, "title": self.title, "anchor": self.anchor,
                "verdicts": [dataclasses.asdict(v) for v in self.verdicts], "judgements": list(self.judgements)}

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {MIME_TYPE: self.as_dict(), "text/plain": _plain_table(self.verdicts),
                "text/html": f'<div style="overflow-x:auto">{_html_table(self.verdicts)}</div>'}


_HEAD = ("claim", "role", "check", "predicted", "alternative", "tolerance", "measured", "verdict")


def _cells(v: Verdict):
    return (v.claim, v.role, v.check, v.predicted_text, _fmt(v.alternative), v.tolerance_text, v.measured_text)


def _plain_table(verdicts) -> str:
    rows = [(*_cells(v), "pass" if v.passed else "FAIL") for v in verdicts]
    widths = [max(len(r[k]) for r in rows + [_HEAD]) for k in range(len(_HEAD))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [_HEAD, *rows])


_STATUS_COLOUR = {"pass": "#1a7f37", "FAIL": "#cf222e", "holds": "#1a7f37", "holds asymptotically": "#1a7f37",
                  "holds with a constant-level correction": "#9a6700",
                  "the paper's statement needs correction": "#bc4c00", "refuted": "#cf222e",
                  "not yet tested": "#6e7781"}


def _badge(word: str) -> str:
    return f'<span style="color:{_STATUS_COLOUR[word]};font-weight:bold">{html.escape(word)}</span>'


def _html_table(verdicts, link=None, *, claim_column=True) -> str:
    keep = slice(0, None) if claim_column else slice(1, None)
    head = "".join(f"<th>{h}</th>" for h in _HEAD[keep])
    body = []
    for v in verdicts:
        cells = [html.escape(c) for c in _cells(v)]
        if link:
            cells[2] = f'<a href="{html.escape(link)}">{cells[2]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells[keep])
                    + f"<td>{_badge('pass' if v.passed else 'FAIL')}</td></tr>")
    return f'<table class="ledger"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _chapter_links(verdicts) -> str:
    """Links to the checks sections of the chapters these verdicts come from."""
    chapters = sorted({(v["chapter"], v["anchor"]) for v in verdicts})
    return ", ".join(f'<a href="{html.escape(ch)}.html#{html.escape(a)}">ch. {int(ch[:2])}</a>' for ch, a in chapters)


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
    """Every claim of the registry with its status and verdicts (``detail=True``: the verdict tables too)."""

    def __init__(self, ledgers, *, detail=True):
        self.ledgers, self.detail = list(ledgers), detail

    @property
    def counts(self) -> tuple[int, int]:
        """``(passed, total)`` verdicts over all chapters."""
        flags = [v["passed"] for led in self.ledgers for v in led["verdicts"]]
        return sum(flags), len(flags)

    def claims(self) -> list[dict]:
        """``[{id, statement, status, verdicts, judgements}]`` for every registry id, in registry order."""
        out = []
        for claim, statement in CLAIMS.items():
            verdicts = [dict(v, chapter=led["chapter"], anchor=led["anchor"]) for led in self.ledgers
                        for v in led["verdicts"] if v["claim"] == claim]
            judged = [dict(j, chapter=led["chapter"]) for led in self.ledgers for j in led.get("judgements", [])
                      if j["claim"] == claim]
            status = claim_status(claim, verdicts, [j["status"] for j in judged])
            out.append({"id": claim, "statement": statement, "status": status, "verdicts": verdicts,
                        "judgements": judged})
        return out

    def _repr_mimebundle_(self, include=None, exclude=None):
        claims = self.claims()
        return {CLAIMS_MIME_TYPE: claims, "text/html": self._html(claims), "text/plain": self._plain(claims)}

    def _html(self, claims) -> str:
        if self.detail:  # one block per claim: its status and reason, then its verdicts, full width
            parts = []
            for c in claims:
                why = "; ".join(html.escape(j["because"]) for j in c["judgements"])
                where = _chapter_links(c["verdicts"])
                parts.append(f"<p><b>{html.escape(c['id'])}</b>: {html.escape(c['statement'])}<br>"
                             f"{_badge(c['status'])}" + (f" <small>({why})</small>" if why else "")
                             + (f"<br><small>checked in {where}</small>" if c["verdicts"] else "") + "</p>")
                if c["verdicts"]:
                    verdicts = [Verdict(**{k: v[k] for k in Verdict.__dataclass_fields__}) for v in c["verdicts"]]
                    parts.append(f'<div style="overflow-x:auto">{_html_table(verdicts, claim_column=False)}</div>')
            return "\n".join(parts)
        rows = []
        for c in claims:
            ok = sum(v["passed"] for v in c["verdicts"])
            links = _chapter_links(c["verdicts"]) or "—"
            why = "; ".join(html.escape(j["because"]) for j in c["judgements"])
            rows.append(f"<tr><td><b>{html.escape(c['id'])}</b></td><td>{html.escape(c['statement'])}</td>"
                        f"<td>{_badge(c['status'])}" + (f"<br><small>{why}</small>" if why else "") + "</td>"
                        f"<td>{ok} / {len(c['verdicts'])}</td><td>{links}</td></tr>")
        head = "<tr><th>claim</th><th>statement</th><th>status</th><th>verdicts passed</th><th>chapters</th></tr>"
        return f'<table class="ledger"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'

    def _plain(self, claims) -> str:
        lines = []
        for c in claims:
            ok = sum(v["passed"] for v in c["verdicts"])
            lines.append(f"{c['id']}: {c['status']} ({ok}/{len(c['verdicts'])} verdicts passed)")
        return "\n".join(lines)
