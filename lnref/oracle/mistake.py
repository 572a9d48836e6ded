"""One entry of the catalogue of known mistakes (:class:`Mistake`), the variants it is built from, and its text.

The entries themselves are in :mod:`lnref.oracle.catalogue` (and :mod:`lnref.oracle.mistakes_model`); each is a
replayable variant of the ONE reference in :mod:`lnref.oracle.replay`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .replay import Variant

__all__ = [
    "Mistake",
    "CONVENTION_NEEDS",
    "ALL",
    "STEP_TRAJ",
    "TRAJ",
    "variant_with",
    "params_with",
    "mistake_text",
    "with_value",
    "fmt_value",
]

#: the ``needs`` conditions that only a fixture with the conventions of SPEC.md section 7 meets
CONVENTION_NEEDS = frozenset({"bias", "mean", "scaled"})

ALL = frozenset({"gradient", "step", "trajectory"})
STEP_TRAJ = frozenset({"step", "trajectory"})
TRAJ = frozenset({"trajectory"})


@dataclass(frozen=True)
class Mistake:
    """One catalogue entry.

    Attributes
    ----------
    key : str
    text : str
        What is wrong and what to do; ``{m}``, ``{n}``, ``{n_noisy}``, ``{value}`` are filled in.
    variant : callable (fixture -> Variant) or None
        The dynamics of the mistake (None for a pure transformation).
    transform : str or None
        'j_reversed', 'reshape_export', 'shift1' (checkpoint = W(t + 1)), 'reshape_import' (W0 reshaped).
    scopes : frozenset of {'gradient', 'step', 'trajectory'}
        The checks the entry applies to.
    needs : tuple of str
        Conditions on the fixture: 'q1', 'q>1', 'int_q', 'eps', 'noisy', 'm>1', 'n>1', the training method
        (SPEC.md section 9: 'elr', 'period>1', 'bootstrap_soft', 'sce', 'A!=-4', 'label_smoothing'), a selection
        algorithm ('mask': the fixture records masks; 'mean_over_S': some step takes the mean over |S| < n), the
        conventions of
        SPEC.md section 7 ('coteaching': two networks; 'past_tk': steps beyond co-teaching's T_k; 'single': one
        network): 'bias' (the network has biases), 'mean' (patch_reduce='mean'), 'scaled' (an explicit
        output_scale).
    fit : str or None
        The Variant field fitted to the submission (None: nothing fitted).
    start, probe : float
        The field's value of the exact dynamics, and the first trial value of the fit.
    grid : tuple of float
        Further trial values; the fit starts from the two best of start, probe and grid.
    low, high : float
        The range a fitted value must lie in to be named.
    estimate : callable (Judge -> list of float), optional
        Direct estimates of the fitted value from the submission (tried first; a kinked replay such as gradient
        clipping defeats the secant fit, a direct reading does not).
    """

    key: str
    text: str
    variant: Callable[[object], Variant] | None = None
    transform: str | None = None
    scopes: frozenset = ALL
    needs: tuple = ()
    fit: str | None = None
    start: float = 0.0
    probe: float = 0.0
    low: float = -np.inf
    high: float = np.inf
    generic: bool = field(default=False)
    grid: tuple = ()
    estimate: Callable[[object], list] | None = None


def variant_with(**kw) -> Callable[[object], Variant]:
    """The variant with switches ``kw`` on top of the fixture's conventions (its problem's base variant)."""

    def make(fx) -> Variant:
        from .replay import Problem

        return replace(Problem.of(fx).base, **kw)

    return make


def params_with(**kw) -> Callable[[object], Variant]:
    """The fixture's exact dynamics with some of its method's parameters (``loss_params``) replaced."""

    def make(fx) -> Variant:
        from .replay import Problem

        base = Problem.of(fx).base
        return replace(base, loss_params=tuple((k, float(kw.get(k, v))) for k, v in base.loss_params))

    return make


def mistake_text(e: Mistake, fx, value: float | None = None, value_text: str | None = None) -> str:
    """The entry's text for ``fx``; ``{value}`` is ``value_text`` (default: ``value`` with the digits that tell it
    from the exact dynamics' ``e.start``)."""
    os_ = getattr(fx.config, "output_scale", None)
    if value_text is None:
        value_text = "nan" if value is None else fmt_value(value, e.start)
    period = dict(getattr(fx.config, "loss_params", None) or {}).get("period", 1)
    return e.text.format(
        m=fx.m,
        n=fx.n,
        n_noisy=int(np.count_nonzero(fx.data.noisy)),
        value=value_text,
        output_scale=np.nan if os_ is None else os_,
        period=period,
        tk=getattr(fx.config, "coteach_tk", 0),
    )


def with_value(e: Mistake, fx, value: float) -> Variant:
    """The entry's variant with its fitted field set to ``value``."""
    return replace(e.variant(fx), **{e.fit: float(value)})


def fmt_value(value: float, ref: float | None = None) -> str:
    """``value`` with the digits that tell it from ``ref`` (the value of the exact dynamics, e.g. 1 for a factor):
    6 significant digits, more when it is closer to ``ref`` than that (1 + 1e-9 prints as 1.000000001)."""
    digits = 6
    if ref and math.isfinite(value) and abs(value / ref - 1.0) > 1e-13:  # below: float64 rounding, not a cause
        digits = min(17, max(6, math.ceil(-math.log10(abs(value / ref - 1.0))) + 2))
    return f"{value:.{digits}g}"
