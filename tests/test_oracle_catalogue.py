"""Every catalogue entry: injected into an independent NumPy implementation (tests/oracle_impl.py), run on an
exported fixture, the diagnosis names it - and no other entry (none of these pairs is indistinguishable on the
fixtures used here)."""

from __future__ import annotations

import pytest

import lnref
from lnref.oracle.catalogue import CATALOGUE, CONVENTION_NEEDS, applicable
from lnref.testing import check_gradient, check_step, compare_trajectory, make_fixture
from oracle_impl import BUGS, COTEACHING_BUGS, METHOD_BUGS, SELECTION_BUGS, gradient_fn, step_fn, train

BASE = lnref.Config(
    n=12, d=40, m=3, tau=0.25, flips="exact", steps=20, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=3
)
CK = [0, 1, 2, 5, 20]


@pytest.fixture(scope="module")
def fixtures():
    return {
        "q1": make_fixture(BASE, CK, exercise=True),
        "lngd": make_fixture(BASE.replace(algorithm="label_noise_gd", p=0.2), CK, exercise=True),
        "q3": make_fixture(BASE.replace(q=3, eta=0.1), CK, exercise=True),
    }


def _fixture_for(bug, fixtures):
    if bug.startswith("eps") or bug == "label_noise_ignored":
        return fixtures["lngd"]
    return fixtures["q3"] if bug == "dsigma_no_clamp" else fixtures["q1"]


def test_every_catalogue_entry_has_an_injected_bug():
    """The entries for departures from a fixture's conventions (SPEC.md section 7) are injected in
    tests/test_oracle_conventions.py, the training methods' (section 9) in tests/test_oracle_methods.py, the
    selection algorithms' in tests/test_oracle_selection.py, co-teaching's in tests/test_oracle_coteaching.py; every
    other entry here."""
    paper = [
        e.key
        for e in CATALOGUE
        if e.key != "gradient_scaled"
        and not set(e.needs) & CONVENTION_NEEDS
        and e.key not in METHOD_BUGS
        and e.key not in SELECTION_BUGS
        and e.key not in COTEACHING_BUGS
    ]
    assert sorted(BUGS) == sorted(paper)


@pytest.mark.parametrize("bug", BUGS)
def test_trajectory_diagnosis_names_the_injected_mistake(bug, fixtures):
    fx = _fixture_for(bug, fixtures)
    W, _L = train(fx, bug)
    rep = compare_trajectory(W, fx)
    assert not rep.passed
    assert rep.mistakes == [bug], rep.text()
    text = "\n".join(rep.diagnosis)
    assert "reproduces their W at step(s)" in text and "not in lnref's catalogue" not in text


@pytest.mark.parametrize(
    "bug,value", [("weight_decay", 3e-4), ("momentum", 0.5), ("lr_exponential", 0.995), ("eta_scaled", 0.8)]
)
def test_fitted_entries_recover_the_parameter(bug, value, fixtures):
    fx = fixtures["q1"]
    W, _ = train(fx, bug, value=value)
    rep = compare_trajectory(W, fx)
    assert rep.mistakes == [bug]
    assert rep.fitted[bug] == pytest.approx(value, rel=1e-6)


GRADIENT_BUGS = [e.key for e in CATALOGUE if "gradient" in e.scopes and e.key in BUGS]


@pytest.mark.parametrize("bug", GRADIENT_BUGS)
def test_gradient_check_names_the_injected_mistake(bug, fixtures):
    fx = _fixture_for(bug, fixtures)
    if bug == "label_noise_ignored":
        plain = fx.data.y_obs
        grad = gradient_fn()
        rep = check_gradient(lambda W, mu, xi, y, yo, q: grad(W, mu, xi, y, plain, q), fx)
    else:
        rep = check_gradient(gradient_fn(bug), fx)
    assert rep.mistakes == [bug], rep.text()


@pytest.mark.parametrize(
    "bug", ["sequential_j_update", "weight_decay", "eta_scaled", "missing_1_over_m", "relu_derivative_one_at_zero"]
)
def test_step_check_names_the_injected_mistake(bug, fixtures):
    fx = fixtures["q1"]
    rep = check_step(step_fn(bug), fx)
    assert rep.mistakes == [bug], rep.text()


def test_gradient_scale_is_named_with_its_factor(fixtures):
    fx = fixtures["q1"]
    grad = gradient_fn()
    rep = check_gradient(lambda *a: 2.0 * grad(*a), fx)
    assert rep.mistakes == ["gradient_scaled"] and rep.fitted["gradient_scaled"] == pytest.approx(2.0)
    assert "2 = 2 times lnref's" in rep.text()


def test_indistinguishable_mistakes_are_both_named():
    """With n == m, a gradient m times too large and a summed loss give the same numbers: both are named."""
    cfg = BASE.replace(n=3, m=3, d=20, tau=0.0, steps=5)
    fx = make_fixture(cfg, [0, 1, 5], exercise=True)
    W, _ = train(fx, "missing_1_over_n")
    rep = compare_trajectory(W, fx)
    assert sorted(rep.mistakes) == ["missing_1_over_m", "missing_1_over_n"]
    assert "give the same numbers on this fixture" in rep.text()


def test_applicability_follows_the_fixture(fixtures):
    keys = {e.key for e in applicable(fixtures["q1"], "trajectory")}
    assert "relu_derivative_one_at_zero" in keys and "dsigma_no_clamp" not in keys and "eps_frozen" not in keys
    keys3 = {e.key for e in applicable(fixtures["q3"], "trajectory")}
    assert "dsigma_no_clamp" in keys3 and "relu_derivative_one_at_zero" not in keys3
    assert {"eps_frozen", "eps_shifted", "eps_accumulated"} <= {
        e.key for e in applicable(fixtures["lngd"], "trajectory")
    }
