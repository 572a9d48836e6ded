"""Report rows of the reproductions: :class:`Check` (one prediction: criterion, measured value, verdict), rows
judged seed by seed (:func:`seed_check`: rule "all", "majority" or "rate" with the Clopper-Pearson lower bound), and
the mean +- standard error the measured column prints (:func:`fmt_mean_se`).  :mod:`lnref.reproduce.common`
re-exports them and documents the rules."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Check", "mean_se", "fmt_mean_se", "rate_lower_bound", "seed_check"]


# ------------------------------------------------------------------------------------------------ report rows
@dataclass
class Check:
    """One prediction a run speaks to: the criterion, the measured number(s) and the verdict.

    The short constructor ``Check(claim, measured, holds)`` keeps working (used by
    :mod:`lnref.reproduce.heatmaps`); new rows should pass the keywords too, e.g.::

        Check("Han 2025, Stage I: T1 exists", "T1 = 7.4 +- 0.5 (5 seeds)", True,
              source="Han et al. 2025, Theorem 4.1; SPEC.md section 6",
              criterion="T1 within a factor 4 of n m/(eta sigma_p^2 d) = 16", tolerance="factor 4",
              seeds_held=5, n_seeds=5)

    or build it with :func:`seed_check`, which judges each seed and counts.

    Attributes
    ----------
    claim : str
        The prediction in words, naming the paper (also available as :attr:`prediction`).
    measured : str
        The measured number(s), formatted by the code that computed them (mean +- SE over K seeds).
    holds : bool or "n/a"
        The verdict; NumPy bools are turned into bool; "n/a" for a row that is a comparison, not a test.
    source : str
        Paper (theorem / section / figure) and the section of the spec, e.g. "Han et al. 2025; SPEC.md section 6".
    criterion : str
        The quantitative criterion, stated so that it could fail.
    tolerance : str
        The tolerance inside the criterion (e.g. "factor 4", "+-0.25", "none (exact)").
    seeds_held, n_seeds : int or None
        In how many of the n_seeds seeds the criterion held (None: the row is not per seed).
    rule : str
        How the seeds are combined: "all" (every seed must hold), "majority", "rate" (at least ``min_rate`` of
        the seeds), or "" (not per seed).
    min_rate : float or None
        With rule "rate": the fraction of seeds that must hold.
    rate_lower : float or None
        With rule "rate": the one-sided 95% Clopper-Pearson lower bound on the per-seed rate.
    """

    claim: str
    measured: str
    holds: Any
    source: str = ""
    criterion: str = ""
    tolerance: str = ""
    seeds_held: int | None = None
    n_seeds: int | None = None
    rule: str = ""
    min_rate: float | None = None
    rate_lower: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.holds, str):
            if self.holds != "n/a":
                raise ValueError(f"Check.holds={self.holds!r} is not allowed: use True, False or 'n/a'")
        else:
            self.holds = bool(self.holds)

    @property
    def prediction(self) -> str:
        return self.claim

    def as_dict(self) -> dict[str, Any]:
        return {
            "prediction": self.claim,
            "claim": self.claim,
            "source": self.source,
            "criterion": self.criterion,
            "tolerance": self.tolerance,
            "measured": self.measured,
            "holds": self.holds,
            "seeds_held": self.seeds_held,
            "n_seeds": self.n_seeds,
            "rule": self.rule,
            "min_rate": self.min_rate,
            "rate_lower_95": self.rate_lower,
        }


def _finite(values: Iterable[Any]) -> np.ndarray:
    vals = [float(v) for v in values if v is not None]
    arr = np.asarray(vals, dtype=np.float64)
    return arr[np.isfinite(arr)]


def mean_se(values: Iterable[Any]) -> tuple[float, float, int]:
    """(mean, standard error, count) of the finite values (None and NaN skipped); SE is NaN for fewer than 2.

    The standard error is the sample standard deviation (ddof=1) over sqrt(count).
    """
    arr = _finite(values)
    k = int(arr.size)
    if k == 0:
        return math.nan, math.nan, 0
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    return mean, se, k


def _g(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.3g}"


def fmt_mean_se(values: Sequence[Any], unit: str = "") -> str:
    """ "0.79 +- 0.061 (3 seeds)"; "0.67 (1 seed)"; missing values counted: "7 +- 1 (4 of 5 seeds; 1 none)"."""
    values = list(values)
    mean, se, k = mean_se(values)
    total = len(values)
    if k == 0:
        return f"none in {total} seed{'s' if total != 1 else ''}"
    body = _g(mean) + unit if k == 1 else f"{_g(mean)}{unit} +- {_g(se)}"
    count = f"{k} seed{'s' if k != 1 else ''}" if k == total else f"{k} of {total} seeds; {total - k} none"
    return f"{body} ({count})"


def rate_lower_bound(k: int, total: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a rate from ``k`` successes in ``total`` trials: the smallest p
    with P(Binomial(total, p) >= k) >= 1 - confidence (0 when k = 0).

    >>> round(rate_lower_bound(5, 5), 3), round(rate_lower_bound(18, 20), 3)
    (0.549, 0.717)
    """
    if k <= 0:
        return 0.0
    from scipy.stats import beta

    return float(beta.ppf(1.0 - confidence, k, total - k + 1))


def seed_check(
    claim: str,
    *,
    source: str,
    criterion: str,
    tolerance: str,
    per_seed: Sequence[Any],
    measured: str,
    rule: str = "all",
    min_rate: float | None = None,
) -> Check:
    """A :class:`Check` judged seed by seed: ``per_seed`` holds one bool per seed (the criterion in that seed).

    ``rule="all"``: the row holds when every seed holds; ``"majority"``: when more than half do; ``"rate"``: when
    at least ``min_rate`` of them do (k >= min_rate K), with the one-sided 95% Clopper-Pearson lower bound on
    the per-seed rate recorded next to the count.
    """
    ok = [bool(v) for v in per_seed]
    k, total = sum(ok), len(ok)
    lower = None
    if rule == "all":
        holds = total > 0 and k == total
    elif rule == "majority":
        holds = k > total / 2
    elif rule == "rate":
        if min_rate is None or not 0.0 < min_rate <= 1.0:
            raise ValueError(f"min_rate={min_rate!r} is not allowed with rule 'rate': use a number in (0, 1]")
        holds = total > 0 and k >= min_rate * total - 1e-9
        lower = rate_lower_bound(k, total)
    else:
        raise ValueError(f"rule={rule!r} is not allowed: use 'all', 'majority' or 'rate'")
    return Check(
        claim,
        measured,
        holds,
        source=source,
        criterion=criterion,
        tolerance=tolerance,
        seeds_held=k,
        n_seeds=total,
        rule=rule,
        min_rate=min_rate if rule == "rate" else None,
        rate_lower=lower,
    )
