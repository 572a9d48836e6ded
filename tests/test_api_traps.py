"""Small API traps a new user met (issue 23, item 6): a fixture prints as one line, Report.passed is documented,
help(lnref.testing) shows the checks rather than the catalogue's machinery."""

from __future__ import annotations

import pydoc

import lnref
import lnref.testing


def test_a_fixture_prints_as_one_short_line():
    fx = lnref.testing.make_fixture(lnref.Config(n=10, d=20, m=2, steps=5, loss="elr"), checkpoints="0,1,5")
    text = repr(fx)
    assert "\n" not in text and len(text) < 200
    assert "n=10" in text and "[0, 1, 5]" in text and "loss='elr'" in text
    assert "array(" not in text and str(fx) == text


def test_report_passed_is_documented():
    from lnref.oracle.report import Report

    assert "within the bound" in (Report.passed.__doc__ or "")
    assert "passed" in (Report.__doc__ or "")


def test_help_of_lnref_testing_shows_the_checks_not_the_replay_machinery():
    text = pydoc.render_doc(lnref.testing, renderer=pydoc.plaintext)
    assert "check_gradient" in text and "compare_trajectory" in text
    assert "class Variant" not in text and "class Problem" not in text
    assert len(text.splitlines()) < 700  # it was 903 lines, most of them the replay's dataclasses
    for name in ("CATALOGUE", "Mistake", "Variant", "Problem", "simulate", "CheckpointError"):
        assert hasattr(lnref.testing, name)  # still importable from lnref.testing
