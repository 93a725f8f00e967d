"""The claim ledger: checks that can fail, the claim-status rule, the stored-output round trip."""

import json

import pytest

from hiermodel import claims
from hiermodel import ledger as lg


def _ledger():
    return lg.Ledger("02-x", "Chapter X", "x-checks")


def test_a_check_passes_inside_and_fails_outside_its_tolerance():
    led = _ledger()
    kw = dict(role="paper", predicted=-0.5, alternative=-0.25, systematic=0.05, sigmas=3, why="finite-n edge")
    assert led.expect("C1 (noise)", "slope", **kw).measure(-0.52, se=0.01)
    assert not led.expect("C1 (noise)", "slope", **kw).measure(-0.40, se=0.01)
    upper = led.expect("C3 necessity", "overlap below threshold", role="paper", side="at most", predicted=0.1,
                       alternative=0.9, systematic=0.05, why="random level")
    assert upper.measure(-3.0)  # an upper bound: far below passes
    lower = led.expect("C3 sufficiency", "overlap above", role="paper", side="at least", predicted=0.9,
                       alternative=0.3, systematic=0.05, why="1/n law")
    assert not lower.measure(0.8)
    assert [v.passed for v in led.verdicts] == [True, False, True, False]
    text = led._repr_mimebundle_()["text/plain"]
    assert "FAIL" in text and "≤ 0.1" in text


@pytest.mark.parametrize("kw, message", [
    (dict(systematic=0.0, sigmas=0.0), "needs a tolerance"),
    (dict(systematic=0.3), "cannot fail"),  # the alternative -0.25 is within 0.3 of -0.5
    (dict(why=""), "where the tolerance comes from"),
    (dict(role="opinion"), "unknown role"),
    (dict(side="around"), "unknown side"),
    (dict(predicted=True), "not a flag"),
    (dict(alternative=float("nan")), "finite"),
])
def test_vacuous_or_malformed_checks_are_refused(kw, message):
    base = dict(role="paper", predicted=-0.5, alternative=-0.25, systematic=0.05, why="edge")
    with pytest.raises(ValueError, match=message):
        _ledger().expect("C1 (noise)", "slope", **{**base, **kw})


def test_unknown_claims_and_noisy_measurements_are_refused():
    led = _ledger()
    with pytest.raises(ValueError, match="unknown claim"):
        led.expect("C42", "x", role="paper", predicted=0, alternative=1, systematic=0.1, why="w")
    chk = led.expect("C2", "x", role="paper", predicted=0, alternative=1, systematic=0.1, sigmas=2, why="w")
    with pytest.raises(ValueError, match="needs se"):
        chk.measure(0.0)
    with pytest.raises(ValueError, match="cannot tell them apart"):
        chk.measure(0.0, se=0.5)  # 0.1 + 2 * 0.5 > 1: too noisy to reject the alternative
    with pytest.raises(ValueError, match="not a flag"):
        chk.measure(True, se=0.01)
    with pytest.raises(ValueError, match="never measured"):
        led.as_dict()
    chk.measure(0.02, se=0.01)
    with pytest.raises(ValueError, match="already measured"):
        chk.measure(0.02, se=0.01)


def test_every_stored_check_has_power():
    """The alternative, measured exactly, fails against the same tolerance: for a range of checks."""
    for side, predicted, alternative in (("two-sided", 1.0, 0.0), ("at most", 0.0, 1.0), ("at least", 1.0, 0.0)):
        led = _ledger()
        chk = led.expect("B1", "x", role="derived", side=side, predicted=predicted, alternative=alternative,
                         systematic=0.2, sigmas=1, why="w")
        assert not chk.measure(alternative, se=0.1)
        assert led.expect("B1", "x", role="derived", side=side, predicted=predicted, alternative=alternative,
                          systematic=0.2, sigmas=1, why="w").measure(predicted, se=0.1)


def test_claim_status_rule():
    ok, bad = {"role": "paper", "passed": True}, {"role": "paper", "passed": False}
    fs, der = {"role": "finite-size", "passed": True}, {"role": "derived", "passed": True}
    assert claims.claim_status("C2", []) == "not yet tested"
    assert claims.claim_status("C2", [ok]) == "holds"
    assert claims.claim_status("C2", [ok, fs]) == "holds asymptotically"
    assert claims.claim_status("Rate", [bad, der], ["the paper's statement needs correction"]) \
        == "the paper's statement needs correction"
    assert claims.claim_status("C2", [bad], ["holds", "refuted"]) == "refuted"  # the most severe judgement
    with pytest.raises(ValueError, match="must state its judgement"):
        claims.claim_status("C2", [ok, bad])
    with pytest.raises(ValueError, match="inconsistent"):
        claims.claim_status("C2", [ok, bad], ["holds"])
    with pytest.raises(ValueError, match="inconsistent"):
        claims.claim_status("C2", [ok], ["refuted"])
    with pytest.raises(ValueError, match="inconsistent"):
        claims.claim_status("C2", [ok], ["holds asymptotically"])  # no finite-size verdict
    with pytest.raises(ValueError, match="unknown status"):
        claims.claim_status("C2", [ok], ["fine"])


def test_judgements_are_checked_in_the_chapter():
    led = _ledger()
    led.expect("Rate", "MSE depends on n alone", role="paper", predicted=0.0, alternative=1.0, systematic=0.1,
               why="w").measure(0.9)
    with pytest.raises(ValueError, match="inconsistent"):
        led.judge("Rate", "holds", because="it does")
    with pytest.raises(ValueError, match="reason"):
        led.judge("Rate", "refuted", because="")
    led.judge("Rate", "refuted", because="the d^q scale is missing")
    assert led.as_dict()["judgements"] == [{"claim": "Rate", "status": "refuted",
                                           "because": "the d^q scale is missing"}]


def test_collect_reads_stored_outputs_and_the_book_lists_every_claim(tmp_path):
    led = _ledger()
    led.expect("C2", "a check", role="paper", predicted=2.0, alternative=3.0, systematic=0.1, why="w").measure(2.05)
    bundle = json.loads(json.dumps(led._repr_mimebundle_()))  # as stored in the notebook
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": bundle}]}]}
    (tmp_path / "02-x.ipynb").write_text(json.dumps(nb))
    (tmp_path / "01-empty.ipynb").write_text(json.dumps({"cells": []}))
    found = lg.collect(tmp_path)
    assert found == [led.as_dict()]
    book = lg.BookLedger(found, detail=False)
    assert book.counts == (1, 1)
    table = book._repr_mimebundle_()[lg.CLAIMS_MIME_TYPE]
    assert [c["id"] for c in table] == list(claims.CLAIMS)
    status = {c["id"]: c["status"] for c in table}
    assert status["C2"] == "holds" and status["C8"] == "not yet tested"
    assert 'href="02-x.html#x-checks"' in book._repr_mimebundle_()["text/html"]


def test_detail_view_links_each_claim_to_its_chapters():
    led = _ledger()
    led.expect("C2", "a check", role="paper", predicted=2.0, alternative=3.0, systematic=0.1, why="w").measure(2.05)
    detail = lg.BookLedger([led.as_dict()], detail=True)._repr_mimebundle_()["text/html"]
    assert 'href="02-x.html#x-checks"' in detail and "not yet tested" in detail
