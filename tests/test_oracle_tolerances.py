"""lnref.oracle.tolerances: tier bounds, bounds derived from a fixture's measured spread, judgeability."""

from __future__ import annotations

import numpy as np
import pytest

import lnref
from lnref.oracle.tolerances import PERTURBATION, TIERS, Tolerance, bounds, judgeable, resolve_tolerance


def test_tier_bounds_grow_with_the_step():
    t64 = TIERS["float64"]
    assert t64.at(0) == 1e-10 and t64.at(9) == pytest.approx(1e-9)
    assert resolve_tolerance("float32", rtol=1e-3).rtol == 1e-3
    with pytest.raises(lnref.ConfigError, match="tier='float16' is not allowed"):
        resolve_tolerance("float16")
    with pytest.raises(lnref.ConfigError, match="rtol=-1"):
        Tolerance("x", rtol=-1)


def test_bounds_follow_the_measured_spread():
    steps = np.array([0, 10, 100])
    tame = np.array([[0, PERTURBATION, 1e-7], [2e-16, PERTURBATION, 2e-7], [3e-16, PERTURBATION, 3e-7]])
    t64, t32 = TIERS["float64"], TIERS["float32"]
    np.testing.assert_array_equal(bounds(t64, steps, tame), [t64.at(0), t64.at(10), t64.at(100)])
    assert np.all(judgeable(t64, steps, tame)) and np.all(judgeable(t32, steps, tame))
    wild = tame.copy()
    wild[1, 1] = 1e-11  # amplification 1e-11 / 8.9e-16 ~ 1e4 at step 10
    b = bounds(t64, steps, wild)
    assert b[1] == pytest.approx(1000 * 1e-11) and b[0] == t64.at(0)
    assert judgeable(t64, steps, wild).tolist() == [True, True, True]
    wild[2, 1] = 1e-2  # chaotic at step 100
    assert judgeable(t64, steps, wild).tolist() == [True, True, False]
    assert judgeable(t32, steps, wild).tolist() == [True, True, False]
    assert np.all(judgeable(t64, steps, None))
