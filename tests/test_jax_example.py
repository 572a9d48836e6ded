"""The JAX example (lnref/examples/jax_model.py) agrees with lnref at the float64 tier (skipped without jax)."""

from __future__ import annotations

import pytest

pytest.importorskip("jax", reason="the JAX example needs jax: pip install jax")

import lnref
from lnref.examples import jax_model
from lnref.testing import assert_gradient_matches, assert_trajectory_matches, make_fixture

CFG = lnref.Config(
    n=10, d=30, m=3, tau=0.2, flips="exact", sigma_p=1.0, mu_norm=3.0, eta=0.5, steps=20, n_test=0, seed=5
)


def test_jax_gradient_and_trajectory_match_at_float64():
    fx = make_fixture(CFG, [0, 1, 5, 20], exercise=True)  # exercises sigma'(0): inner products exactly 0
    assert_gradient_matches(jax_model.gradient, fx)
    Ws, losses = jax_model.train(fx)
    assert_trajectory_matches(Ws, fx, loss=losses)


def test_jax_label_noise_gd_and_command(capsys):
    fx = make_fixture(CFG.replace(algorithm="label_noise_gd", p=0.2, steps=8), [0, 1, 8], exercise=True)
    Ws, losses = jax_model.train(fx)
    assert_trajectory_matches(Ws, fx, loss=losses)
    assert jax_model.main([]) == 0
    assert "matches lnref within tier 'float64'" in capsys.readouterr().out
