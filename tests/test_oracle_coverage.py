"""The pytest route exercises the model's special points: a fixture made from a Config has pre-activations
exactly 0 (the ReLU's kink), so a ReLU differentiated as (z >= 0) - the gradient of z.clamp(min=0) - fails, and
every report, passing ones included, says which special points the fixture exercised."""

from __future__ import annotations

import numpy as np
import pytest

import lnref
from lnref.testing import assert_gradient_matches, assert_step_matches, check_gradient, make_fixture
from oracle_impl import gradient_fn, step_fn

CFG = lnref.Config(n=12, d=40, m=3, tau=0.25, steps=5, n_test=0, seed=1)


def clamp_relu_gradient(W, mu, xi, y, y_obs, q):
    """A hand-written gradient of a ReLU network written with z.clamp(min=0): its gradient at 0 is 1."""
    n, m = xi.shape[0], W.shape[1]
    X1 = y[:, None] * mu[None, :]
    Z1, Z2 = np.einsum("jrd,nd->jrn", W, X1), np.einsum("jrd,nd->jrn", W, xi)
    F = (np.maximum(Z1, 0) + np.maximum(Z2, 0)).sum(1) / m
    f = F[0] - F[1]
    lp = -y_obs / (1 + np.exp(y_obs * f)) / n
    s = np.array([1.0, -1.0])[:, None, None] / m
    return s * (np.einsum("jrn,nd->jrd", (Z1 >= 0) * lp, X1) + np.einsum("jrn,nd->jrd", (Z2 >= 0) * lp, xi))


def test_a_clamp_relu_gradient_fails_given_a_config():
    with pytest.raises(AssertionError) as err:
        assert_gradient_matches(clamp_relu_gradient, CFG)
    text = str(err.value)
    assert "sigma'(0) = 1 is used for the ReLU" in text and "yes: pre-activation exactly 0" in text
    rep = check_gradient(clamp_relu_gradient, CFG)
    assert rep.mistakes == ["relu_derivative_one_at_zero"]


def test_a_tie_split_relu_and_a_clamp_relu_step_fail_given_a_config():
    rep = check_gradient(gradient_fn("relu_derivative_half_at_zero"), CFG)
    assert rep.mistakes == ["relu_derivative_half_at_zero"], rep.text()
    with pytest.raises(AssertionError, match="sigma'\\(0\\) = 1 is used"):
        assert_step_matches(step_fn("relu_derivative_one_at_zero"), CFG)


def test_every_report_lists_the_special_points():
    rep = assert_gradient_matches(gradient_fn(), CFG)  # a passing report
    text = rep.text()
    assert "MATCH" in text and "Special points of the model" in text
    assert rep.special_points[0].startswith("yes: pre-activation exactly 0")
    assert any(p.startswith("yes: mislabelled samples") for p in rep.special_points)
    # a fixture made without the edit exercises no kink, and its passing report says what would go unnoticed
    plain = make_fixture(CFG, [0, 1])
    rep = assert_gradient_matches(clamp_relu_gradient, plain)
    assert rep.passed and rep.special_points[0].startswith("NO: pre-activation exactly 0")
    assert "clamp(min=0)" in rep.special_points[0] and "would pass" in rep.special_points[0]
    # q = 3: the kink is exercised but hides nothing; plain GD has no label-noise signs
    rep3 = assert_gradient_matches(gradient_fn(), CFG.replace(q=3, eta=0.1))
    assert "q = 3: sigma is differentiable at 0" in rep3.special_points[0]
    assert "not applicable: label-noise signs (plain GD)" in rep3.text()
