"""lnref.oracle.report: the Judge names an entry only when its replay lands within every bound, fits one
parameter, and prefers fixed entries to fitted ones and fitted ones to generic ones."""

from __future__ import annotations

import numpy as np

from lnref.oracle.catalogue import Mistake
from lnref.oracle.report import Judge, Report
from lnref.oracle.tolerances import TIERS

A = np.linspace(1.0, 2.0, 12).reshape(3, 4)
B = np.cos(np.arange(12.0)).reshape(3, 4)


def _predict(e, value):
    if e.fit is None:
        return [A + (0.25 if e.key == "quarter" else 0.0) * B]
    return [A + value * B + 0.3 * value**2 * A]


def test_judge_fits_and_verifies():
    truth = 0.37
    sub = [A + truth * B + 0.3 * truth**2 * A]
    j = Judge(None, sub, [A], [float(np.max(np.abs(A)))], [1e-12], _predict)
    e = Mistake("p", "p = {value}", fit="x", start=0.0, probe=0.01, low=0.0, high=1.0)
    assert abs(j.fit(e) - truth) < 1e-12
    assert [(m.key, round(v, 9)) for m, v, _ in j.judge([e])] == [("p", 0.37)]
    narrow = Mistake("p", "", fit="x", start=0.0, probe=0.01, low=0.0, high=0.1)
    assert j.judge([narrow]) == []  # the fitted value leaves the entry's range


def test_fixed_entries_first_and_nothing_named_without_reproduction():
    sub = [A + 0.25 * B]
    j = Judge(None, sub, [A], [float(np.max(np.abs(A)))], [1e-12], _predict)
    fixed = Mistake("quarter", "")
    other = Mistake("zero", "")
    fitted = Mistake("p", "", fit="x", start=0.0, probe=0.01)
    assert [m.key for m, _, _ in j.judge([other, fixed, fitted])] == ["quarter"]
    off = Judge(None, [A + 0.2500001 * B], [A], [float(np.max(np.abs(A)))], [1e-12], _predict)
    assert [m.key for m, _, _ in off.judge([other, fixed])] == []


def test_report_text_and_verdict():
    rep = Report("trajectory", TIERS["float64"])
    assert not rep.passed  # nothing compared is not a pass
    assert "MISMATCH" in rep.text()


def test_examples_print_verdict_exit_codes(capsys):
    """The examples' shared reporting: both reports printed, one verdict line, exit 0 only when both pass."""
    from types import SimpleNamespace

    from lnref.examples._common import print_verdict

    ok = SimpleNamespace(passed=True, text=lambda: "gradient report")
    bad = SimpleNamespace(passed=False, text=lambda: "trajectory report")
    assert print_verdict(ok, ok, "Model X", "float64") == 0
    out = capsys.readouterr().out
    assert "gradient report" in out and "verdict: Model X matches lnref within tier 'float64'" in out
    assert print_verdict(ok, bad, "Model X", "float32") == 1
    out = capsys.readouterr().out
    assert "trajectory report" in out and "verdict: Model X does NOT match lnref within tier 'float32'" in out
