"""Tolerance tiers, and the per-checkpoint bounds derived from a fixture's measured sensitivity.

A tier says how close an implementation computing in that precision must land (``rtol * (1 + t)`` at step t).
A fixture also stores how far its own trajectory moves under rounding-sized changes (:attr:`Fixture.spread`,
measured by ``lnref export``: lnref's NumPy replay against the weight engine, a rerun from W0 perturbed by 4 ulps,
and a float32 replay).  The bound at a checkpoint is the larger of the tier's and ``safety`` times the measured
spread, so a chaotic stretch of trajectory loosens its own bound instead of failing correct code; a fixture whose
bound would exceed ``cap * rtol * (1 + t)`` cannot judge at that tier, and ``lnref export`` refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import replace as dc_replace

import numpy as np

from ..config import ConfigError

__all__ = ["Tolerance", "TIERS", "resolve_tolerance", "bounds", "judgeable", "SPREAD_COLUMNS"]

#: columns of ``Fixture.spread`` (K, 3): relative W distance to the fixture at each checkpoint of
SPREAD_COLUMNS = ("numpy_float64", "w0_perturbed", "float32")
#: relative size of the W0 perturbation the export uses (4 ulps)
PERTURBATION = 4 * 2.0**-52


@dataclass(frozen=True)
class Tolerance:
    """How close is close enough.

    Attributes
    ----------
    name : str
    rtol : float
        Relative tolerance of one step; at step t the tier's bound is ``rtol * (1 + t)``.
    atol : float
        Absolute errors up to ``atol`` always pass (default 0).
    on : {'weights', 'summaries'}
        Compare trajectories on W itself, or on the loss and the coefficients gamma, rho.
    unit_roundoff : float
        Rounding unit of the implementation's storage (2^-53 or 2^-24); a single step is compared on its update
        W' - W with this much of |W| allowed for storing W'.
    safety : float
        The bound is at least ``safety`` times the fixture's measured spread at that checkpoint.
    cap : float
        A fixture judges at this tier only while its derived bound is at most ``cap * rtol * (1 + t)``.
    """

    name: str
    rtol: float
    atol: float = 0.0
    on: str = "weights"
    unit_roundoff: float = 2.0**-53
    safety: float = 1000.0
    cap: float = 100.0

    def __post_init__(self) -> None:
        for name, low in (("rtol", 0.0), ("atol", None), ("safety", 0.0), ("cap", 0.0)):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > 0 if low is not None else v >= 0)
            if not ok:
                what = "> 0" if low is not None else ">= 0"
                raise ConfigError(f"{name}={v!r} is not allowed: {name} must be a finite number {what}")
        if self.on not in ("weights", "summaries"):
            raise ConfigError(f"on={self.on!r} is not allowed: choose 'weights' or 'summaries'")

    def at(self, step: int) -> float:
        """The tier's relative bound at GD step ``step``: rtol * (1 + step)."""
        return self.rtol * (1.0 + float(step))

    def spread_of(self, spread_row: np.ndarray) -> float:
        """The measured spread relevant to this tier from one row of ``Fixture.spread``."""
        f64, pert, f32 = (float(x) for x in spread_row)
        amp = pert / PERTURBATION  # how much the trajectory amplifies a rounding-sized change of W0
        if self.unit_roundoff > 2.0**-40:
            return max(f32, amp * self.unit_roundoff)
        return max(f64, pert)


TIERS: dict[str, Tolerance] = {
    "float64": Tolerance("float64", rtol=1e-10, on="weights", unit_roundoff=2.0**-53, safety=1000.0),
    "float32": Tolerance("float32", rtol=1e-5, on="summaries", unit_roundoff=2.0**-24, safety=10.0),
}


def resolve_tolerance(
    tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None
) -> Tolerance:
    """A :class:`Tolerance` from a tier name (or a Tolerance), with ``rtol``/``atol`` overridden if given."""
    if isinstance(tier, Tolerance):
        tol = tier
    elif isinstance(tier, str) and tier in TIERS:
        tol = TIERS[tier]
    else:
        raise ConfigError(
            f"tier={tier!r} is not allowed: choose one of {', '.join(map(repr, TIERS))} "
            "or pass an lnref.testing.Tolerance"
        )
    changes = {}
    if rtol is not None:
        changes["rtol"] = rtol
    if atol is not None:
        changes["atol"] = atol
    return dc_replace(tol, **changes) if changes else tol


def bounds(tol: Tolerance, steps: np.ndarray, spread: np.ndarray | None) -> np.ndarray:
    """The relative bound at each checkpoint: max(rtol (1 + t), safety * measured spread)."""
    out = np.array([tol.at(int(t)) for t in steps], dtype=np.float64)
    if spread is not None:
        meas = np.array([tol.safety * tol.spread_of(row) for row in spread])
        out = np.maximum(out, meas)
    return out


def judgeable(tol: Tolerance, steps: np.ndarray, spread: np.ndarray | None) -> np.ndarray:
    """Boolean per checkpoint: the derived bound stays within ``cap * rtol * (1 + t)`` (the fixture can judge)."""
    if spread is None:
        return np.ones(len(steps), dtype=bool)
    b = bounds(tol, steps, spread)
    lim = np.array([tol.cap * tol.at(int(t)) for t in steps])
    return b <= lim
