"""Diagnoses outside the catalogue still give numbers: the measured ratio to lnref's (overall, by term, sample
and filter), fitted factors printed with the digits that tell them from 1, the usual cause next to a fitted
value that has one, and the float32 hint for float64 code on inputs rounded through float32."""

from __future__ import annotations

import numpy as np
import pytest

import lnref
from lnref.oracle.report import fmt_value
from lnref.testing import check_gradient, compare_trajectory, make_fixture
from oracle_impl import gradient_fn, train

CFG = lnref.Config(
    n=12, d=40, m=3, tau=0.25, flips="exact", steps=10, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=3
)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CFG, [0, 1, 3, 10], exercise=True)


def test_fitted_factors_print_the_digits_that_tell_them_from_one(fx):
    assert fmt_value(1 + 1e-9, 1.0) == "1.000000001" and fmt_value(0.5, 1.0) == "0.5"
    assert fmt_value(3e-4, 0.0) == "0.0003"
    W, _ = train(fx, "eta_scaled", value=1 + 1e-7)
    rep = compare_trajectory(W, fx)
    assert rep.mistakes == ["eta_scaled"], rep.text()
    assert "their step size is 1.0000001 times lnref's eta" in rep.text()


def test_a_forgotten_zero_grad_is_named_as_such(fx):
    W, _ = train(fx, "zero_grad_forgotten")
    rep = compare_trajectory(W, fx)
    assert rep.mistakes == ["zero_grad_forgotten"], rep.text()
    assert "optimizer.zero_grad() (or W.grad.zero_()) is never called" in rep.text()
    assert "momentum with beta = 1" in rep.text()


def test_a_partial_scale_outside_the_catalogue_is_measured(fx):
    grad = gradient_fn()

    def plus_doubled(W, mu, xi, y, y_obs, q):  # the j = +1 filters' gradient counted twice
        G = grad(W, mu, xi, y, y_obs, q).copy()
        G[0] *= 2.0
        return G

    rep = check_gradient(plus_doubled, fx)
    assert rep.mistakes == []
    text = "\n".join(rep.diagnosis)
    assert "not in lnref's catalogue" in text and "measured: their gradient at step 0 is" in text
    assert "not a scaled copy" in text
    assert "x 2 for 3 filters ((j=+1, r=0), (j=+1, r=1), (j=+1, r=2))" in text
    assert "x 1 for 3 filters ((j=-1, r=0), (j=-1, r=1), (j=-1, r=2))" in text


def test_a_trajectory_scaled_in_its_first_update_only_is_measured(fx):
    W, _ = train(fx)
    d = fx.data
    W1 = fx.W0 - 2.0 * fx.config.eta * gradient_fn()(fx.W0, d.mu, d.xi, d.y, d.y_obs, 1.0)
    rep = compare_trajectory({0: W[0], 1: W1, 3: W[3]}, fx)
    text = "\n".join(rep.diagnosis)
    assert rep.mistakes == [] and "not in lnref's catalogue" in text
    assert (
        "measured: their W(1) - W0 (their first update: their step-0 gradient times their step size) is 2 x lnref's"
        in text
        and "a scaled copy" in text
    )


def test_float64_code_on_inputs_rounded_through_float32_is_named(fx):
    W, _ = train(fx, "data_rounded_float32")
    rep = compare_trajectory(W, fx)
    assert rep.mistakes == ["data_rounded_float32"], rep.text()
    W, _ = train(fx, "inputs_rounded_float32")
    rep = compare_trajectory(W, fx)
    assert rep.mistakes == ["inputs_rounded_float32"], rep.text()
    # rounding only xi of sample 0 is no catalogue entry; the hint covers it (float64 code, float32-rounded inputs)
    d = fx.data
    xi = d.xi.copy()
    xi[0] = xi[0].astype(np.float32).astype(np.float64)
    grad = gradient_fn()
    Wt, out = fx.W0.copy(), {}
    for t in range(11):
        if t in (0, 1, 3, 10):
            out[t] = Wt.copy()
        Wt = Wt - fx.config.eta * grad(Wt, d.mu, xi, d.y, d.y_obs, 1.0)
    rep = compare_trajectory(out, fx)
    assert rep.mistakes == [] and "inputs rounded through float32" in "\n".join(rep.diagnosis), rep.text()
