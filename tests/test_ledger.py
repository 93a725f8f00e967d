"""The claim ledger: pass/fail logic, the stored-output round trip, the book-wide collection."""

import json

import pytest

from hiermodel import ledger as lg


def test_compare_and_confirm():
    led = lg.Ledger("01-model", "The model", "model-checks")
    assert led.compare("C0", "inside", measured=1.04, predicted=1.0, rtol=0.05)
    assert not led.compare("C0", "outside", measured=1.06, predicted=1.0, rtol=0.05)
    assert led.compare("C0", "statistical", measured=1.3, predicted=1.0, uncertainty=0.1, sigmas=3)
    assert not led.compare("C0", "statistical", measured=1.31, predicted=1.0, uncertainty=0.1, sigmas=3)
    assert not led.confirm("C0", "words", False, predicted="a < b", measured="a = 2, b = 1")
    assert [v.passed for v in led.verdicts] == [True, False, True, False, False]
    assert "FAIL" in led._repr_mimebundle_()["text/plain"]
    with pytest.raises(ValueError, match="finite"):
        led.compare("C0", "nan", measured=float("nan"), predicted=1.0, atol=1)
    with pytest.raises(ValueError, match="sigmas"):
        led.compare("C0", "no se", measured=1.0, predicted=1.0, sigmas=2)


def test_collect_reads_stored_outputs(tmp_path):
    led = lg.Ledger("02-x", "Chapter X", "x-checks")
    led.compare("C1", "a check", measured=2.0, predicted=2.0, atol=0.1)
    bundle = led._repr_mimebundle_()
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": bundle}]}]}
    (tmp_path / "02-x.ipynb").write_text(json.dumps(nb))
    (tmp_path / "01-empty.ipynb").write_text(json.dumps({"cells": []}))
    found = lg.collect(tmp_path)
    assert found == [led.as_dict()]
    book = lg.BookLedger(found, detail=False)
    assert book.counts == (1, 1)
    assert 'href="02-x.html#x-checks"' in book._repr_html_()
