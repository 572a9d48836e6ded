"""lnref.oracle.checks / report / cli: correct code passes, coverage and exit codes mean what they say, and no
cause is named unless its replay reproduces the numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.testing import (
    assert_gradient_matches,
    assert_step_matches,
    assert_trajectory_matches,
    check_gradient,
    compare_trajectory,
    make_fixture,
    save_fixture,
)
from oracle_impl import gradient_fn, step_fn, train

CFG = lnref.Config(
    n=12, d=40, m=3, tau=0.25, flips="exact", steps=10, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=3
)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CFG, [0, 1, 3, 10], exercise=True)


def test_correct_implementation_passes_every_check(fx):
    assert_gradient_matches(gradient_fn(), fx)
    assert_step_matches(step_fn(), fx)
    W, L = train(fx)
    rep = assert_trajectory_matches(W, fx, loss=L)
    assert max(r.rel_err for r in rep.rows) < 1e-13 and max(r.loss_rel_err for r in rep.rows) < 1e-13
    W32, L32 = train(fx, dtype=np.float32)
    assert_trajectory_matches(W32, fx, tier="float32", loss=L32)


def test_float32_is_diagnosed_only_after_a_float32_replay(fx):
    W32, _ = train(fx, dtype=np.float32)
    rep = compare_trajectory(W32, fx)
    assert not rep.passed and not rep.mistakes and rep.first_failure == 0
    assert "W0 rounded to float32 (exactly)" in "\n".join(rep.diagnosis)
    later = {t: w.astype(np.float64) for t, w in W32.items() if t > 0}
    rep = compare_trajectory(later, fx)
    assert not rep.passed and not rep.mistakes
    assert "float32 rounding explains" in "\n".join(rep.diagnosis) and "float32 replay differs" in rep.text()
    # weight decay 1e-4 is NOT float32 rounding: it is fitted and named
    Wd, _ = train(fx, "weight_decay", value=1e-4)
    rep = compare_trajectory(Wd, fx)
    assert rep.mistakes == ["weight_decay"] and "float32" not in "\n".join(rep.diagnosis)


def test_an_unknown_mistake_gets_no_cause_but_says_what_differs(fx):
    """A mistake outside the catalogue (the noise term of sample 0 counted twice) is not given a made-up cause."""
    grad = gradient_fn()

    def bad(W, mu, xi, y, y_obs, q):
        xi2 = xi.copy()
        xi2[0] *= 1.5
        return grad(W, mu, xi2, y, y_obs, q)

    rep = check_gradient(bad, fx)
    assert not rep.passed and rep.mistakes == []
    text = rep.text()
    assert "not in lnref's catalogue" in text and "samples 0" in text
    W = {}
    for t, Wt in train(fx)[0].items():
        W[t] = Wt.copy()
    W[10] = W[10] + 1e-6 * np.abs(W[10]).max()
    rep = compare_trajectory(W, fx)
    assert rep.first_failure == 10 and rep.mistakes == [] and "first differs at step 10" in rep.text()
    assert "agrees at step(s) [0, 1, 3]" in rep.text()


def test_coverage_rules(fx):
    W, L = train(fx)
    with pytest.raises(lnref.ConfigError, match="no GD step beyond 0"):
        compare_trajectory({0: W[0]}, fx)
    with pytest.raises(lnref.ConfigError, match="no GD step beyond 0"):
        compare_trajectory({0: W[0], 2: W[3]}, fx)  # step 2 is not a checkpoint
    rep = compare_trajectory({0: W[0], 3: W[3], 7: W[3]}, fx)
    assert rep.passed and [r.step for r in rep.rows] == [0, 3]
    text = rep.text()
    assert "checkpoint(s) [1, 10] were not checked" in text and "step(s) [7] are not checkpoints" in text
    # the loss is compared at float64 too
    bad_loss = dict(L)
    bad_loss[3] = L[3] * (1 + 1e-6)
    rep = compare_trajectory(W, fx, loss=bad_loss)
    assert not rep.passed and rep.first_failure == 3
    for dtype in (np.float16, np.complex128, np.int64):
        with pytest.raises(lnref.ConfigError, match="must be float64 or float32"):
            compare_trajectory({t: w.astype(dtype) for t, w in W.items()}, fx)


def test_a_diverged_trajectory_is_a_mismatch_without_warnings(fx, tmp_path, capsys):
    W, _ = train(fx)
    W[10] = W[10] * np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = compare_trajectory(W, fx)
    assert not rep.passed and rep.first_failure == 10 and "diverged" in rep.text()
    path = save_fixture(fx, tmp_path / "fx.npz")
    steps = sorted(W)
    np.savez(tmp_path / "nan.npz", step=np.array(steps), W=np.stack([W[t] for t in steps]))
    assert main(["compare", str(path), str(tmp_path / "nan.npz")]) == 1
    # a variant that overflows in the replay raises nothing either (eta huge: GD ascent blows up)
    big = compare_trajectory({t: w * 1e200 for t, w in train(fx)[0].items() if t}, fx)
    assert not big.passed


def test_step_decay_is_not_named_but_consecutive_checkpoints_give_the_step_size():
    """A step-decay schedule is outside the catalogue: no cause, but between consecutive checkpoints 5 and 6 the
    report states the step size actually taken (checked by the residual of the update)."""
    fx = make_fixture(CFG, [0, 1, 5, 6, 10], exercise=True)
    d, m = fx.data, fx.m
    W = fx.W0.copy()
    out = {}
    grad = gradient_fn()
    for t in range(11):
        if t in (0, 1, 5, 6, 10):
            out[t] = W.copy()
        if t == 10:
            break
        lr = fx.config.eta * (0.5 if t >= 5 else 1.0)
        W = W - lr * grad(W, d.mu, d.xi, d.y, d.y_obs, 1.0)
    rep = compare_trajectory(out, fx)
    assert rep.first_failure == 6 and rep.mistakes == []
    text = rep.text()
    assert "not in lnref's catalogue" in text
    assert "a step size of 0.25 where lnref uses eta = 0.5" in text
    del m


def test_float32_tier_still_names_a_real_mistake(fx):
    W, _ = train(fx, "missing_1_over_m", dtype=np.float32)
    rep = compare_trajectory(W, fx, tier="float32")
    assert not rep.passed and rep.mistakes == ["missing_1_over_m"]


def test_compare_refuses_a_fixture_that_cannot_judge_at_the_tier(fx):
    import dataclasses

    spread = fx.spread.copy()
    spread[-1, 2] = 1e-1  # a float32 replay 10% away at step 10: float32 cannot be judged
    wild = dataclasses.replace(fx, spread=spread)
    W, _ = train(fx)
    assert compare_trajectory(W, wild).passed  # float64 is still judged
    with pytest.raises(lnref.ConfigError, match=r"cannot judge at tier 'float32' at step\(s\) \[10\]"):
        compare_trajectory(W, wild, tier="float32")
