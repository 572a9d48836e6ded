"""Verdicts and diagnoses: what differs (via :func:`lnref.decompose`) and, only when a replay reproduces the
submitted numbers within the bound, which known mistake caused it.

The rule (no wrong diagnosis): a cause is named only when replaying it (:mod:`lnref.oracle.catalogue`) lands
within the checkpoint's bound at every compared checkpoint, and the report says how close ("replaying X
reproduces your W to 3e-14").  Where several entries reproduce the numbers, all are named.  Generic hints (a
float32 implementation) are checked the same way, against a float32 replay of the exact dynamics.  Otherwise the
report says what differs and that the cause is not in the catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .catalogue import CATALOGUE, Mistake, fmt_value, mistake_text
from .tolerances import Tolerance

__all__ = [
    "Report",
    "CheckpointError",
    "findings",
    "coefficients",
    "decomposable",
    "maxabs",
    "rel",
    "Judge",
    "fmt_value",
    "name_factor",
    "describe_matches",
    "not_in_catalogue",
]


@dataclass
class CheckpointError:
    """Errors at one checkpoint (NaN where not applicable); ``tol`` is the bound used."""

    step: int
    abs_err: float
    rel_err: float
    tol: float
    ok: bool
    loss_rel_err: float = math.nan
    gamma_rel_err: float = math.nan
    rho_rel_err: float = math.nan
    b_rel_err: float = math.nan
    net2_rel_err: float = math.nan


@dataclass
class Report:
    """The outcome of a check.

    Attributes
    ----------
    kind : {'gradient', 'step', 'trajectory'}
    tolerance : Tolerance
    rows : list of CheckpointError, one per compared checkpoint
    first_failure : int or None, the first step out of tolerance
    findings : list of str, what differs (coefficients, samples, filters, steps)
    diagnosis : list of str, causes reproduced by a replay, or checked hints, or "not in the catalogue"
    mistakes : list of str, keys of the catalogue entries whose replay reproduces the numbers
    notes : list of str, coverage (unchecked checkpoints, ignored steps) and how the bounds were derived
    special_points : list of str, which of the model's special points (the ReLU's kink, negative pre-activations,
        mislabelled samples, ...) the fixture exercised at the compared checkpoints ('yes: ...') and which not
        ('NO: ...'); printed in every report, passing ones included (:mod:`lnref.oracle.coverage`)
    fitted : dict key -> float, the fitted parameter of each named fitted entry
    passed : bool (property), every compared checkpoint within the bound; ``text()`` the printed report
    """

    kind: str
    tolerance: Tolerance
    rows: list[CheckpointError] = field(default_factory=list)
    first_failure: int | None = None
    findings: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fitted: dict[str, float] = field(default_factory=dict)
    special_points: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every compared checkpoint is within the bound (and at least one was compared): the verdict
        the ``assert_*`` functions raise on and ``lnref compare`` turns into exit code 0."""
        return self.first_failure is None and bool(self.rows) and all(r.ok for r in self.rows)

    def text(self) -> str:
        tol = self.tolerance
        if self.kind == "trajectory":
            how = (
                f"bound max(rtol {tol.rtol:g} * (1 + t), {tol.safety:g} x measured spread), atol {tol.atol:g}, "
                f"on {tol.on}"
            )
        else:
            how = f"bound rtol {tol.rtol:g}, atol {tol.atol:g}, on the arrays"
        head = f"lnref {self.kind} check, tier {tol.name!r} ({how}): "
        head += "MATCH" if self.passed else f"MISMATCH (first at step {self.first_failure})"
        # columns that apply: the loss only in trajectories, b only for networks with biases
        cols = [("loss rel", "loss_rel_err")] if self.kind == "trajectory" else []
        cols += [("gamma rel", "gamma_rel_err"), ("rho rel", "rho_rel_err")]
        with_b = any(not math.isnan(r.b_rel_err) for r in self.rows)
        if with_b:
            cols.append(("b rel", "b_rel_err"))
        with_2 = any(not math.isnan(r.net2_rel_err) for r in self.rows)
        if with_2:
            cols.append(("net2 rel", "net2_rel_err"))
        lines = [head]
        if with_2:
            lines.append(
                "  co-teaching: the second network is checked at the same bound (net2 rel = max |their W_2 - "
                "lnref's| / max |lnref's W_2|, and b_2 likewise; SPEC.md section 9)"
            )
        if with_b:
            if self.kind == "trajectory":
                lines.append(
                    "  biases: b is checked at the same bound as W (b rel = max |their b - lnref's b| / the "
                    "largest |b| of the fixture's checkpoints; SPEC.md section 7)"
                )
            else:
                lines.append(
                    f"  biases: the bias part of their {self.kind} is checked at the same bound as W's "
                    "(b rel = max |theirs - lnref's| / max |lnref's|; SPEC.md section 7)"
                )
        lines.append(
            f"  {'step':>6} {'max abs err':>12} {'max rel err':>12} {'bound':>10} "
            + " ".join(f"{c:>10}" for c, _ in cols)
            + "  ok"
        )

        def cell(v: float) -> str:
            return f"{'-':>10}" if math.isnan(v) else f"{v:>10.2e}"

        for r in self.rows:
            lines.append(
                f"  {r.step:>6} {r.abs_err:>12.3e} {r.rel_err:>12.3e} {r.tol:>10.1e} "
                + " ".join(cell(getattr(r, a)) for _, a in cols)
                + f"  {'yes' if r.ok else 'NO'}"
            )
        if self.findings:
            lines.append("What differs:")
            lines += [f"  - {f}" for f in self.findings]
        if self.diagnosis:
            lines.append("Diagnosis:")
            lines += [f"  - {d}" for d in self.diagnosis]
        if self.notes:
            lines += [f"Note: {n}" for n in self.notes]
        if self.special_points:
            lines.append(
                "Special points of the model at the compared checkpoints (a mistake shows only where it "
                "changes the numbers):"
            )
            lines += [f"  - {p}" for p in self.special_points]
        return "\n".join(lines)

    __str__ = text


# --------------------------------------------------------------------------------------------- helpers
def maxabs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def rel(diff: float, scale: float) -> float:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def decomposable(fx) -> bool:
    return fx.d >= fx.n + 1 and bool(np.any(fx.data.mu)) and bool(np.all(np.any(fx.data.xi != 0, axis=1)))


def coefficients(delta: np.ndarray, fx) -> tuple[np.ndarray, np.ndarray, float]:
    """(gamma, rho, relative part of ``delta`` outside span{mu, xi}) of a (2, m, d) displacement (SPEC.md 4)."""
    from ..model.decomposition import decompose, reconstruct

    zero = np.zeros_like(delta)
    gamma, rho = decompose(delta, zero, fx.data)
    back = reconstruct(zero, gamma, rho, fx.data)
    return gamma, rho, rel(maxabs(delta - back), maxabs(delta))


def findings(dgamma: np.ndarray, drho: np.ndarray, sg: float, sr: float, fx, floor: float) -> list[str]:
    """Sentences naming which coefficients differ: filters (j, r) of gamma, samples (clean / mislabelled) and
    classes j of rho."""
    eg = np.abs(dgamma) / sg if sg > 0 else np.abs(dgamma)
    er = np.abs(drho) / sr if sr > 0 else np.abs(drho)
    top = max(float(eg.max(initial=0.0)), float(er.max(initial=0.0)))
    thr = max(floor, 1e-6 * top)
    out: list[str] = []
    jname = {0: "+1", 1: "-1"}
    bad_f = np.argwhere(eg > thr)
    gmax = float(eg.max(initial=0.0))
    if bad_f.size:
        shown = ", ".join(f"(j={jname[j]}, r={r})" for j, r in bad_f[:6])
        more = "" if len(bad_f) <= 6 else f" and {len(bad_f) - 6} more"
        out.append(
            f"signal coefficients gamma differ at {len(bad_f)} of {2 * fx.m} filters: {shown}{more}; "
            f"max relative difference {gmax:.3g}"
        )
    else:
        out.append(f"signal coefficients gamma agree (max relative difference {gmax:.2g})")
    per_sample = er.max(axis=(0, 1)) if er.size else np.zeros(fx.n)
    bad_i = np.flatnonzero(per_sample > thr)
    clean = fx.data.clean
    noisy_bad = int(np.count_nonzero(~clean[bad_i]))
    n_noisy = int(np.count_nonzero(~clean))
    rmax = float(er.max(initial=0.0))
    if bad_i.size:
        js = sorted({jname[j] for j in np.argwhere(er > thr)[:, 0]})
        shown = ", ".join(map(str, bad_i[:10].tolist())) + ("" if bad_i.size <= 10 else ", ...")
        out.append(
            f"noise coefficients rho differ for {bad_i.size} of {fx.n} samples ({noisy_bad} of {n_noisy} "
            f"mislabelled, {bad_i.size - noisy_bad} of {fx.n - n_noisy} clean; samples {shown}) in the "
            f"filters of j = {' and '.join(js)}; max relative difference {rmax:.3g}"
        )
    else:
        out.append(f"noise coefficients rho agree (max relative difference {rmax:.2g})")
    return out


_FACTORS = {
    "m": lambda fx: fx.m,
    "1/m": lambda fx: 1.0 / fx.m,
    "n": lambda fx: fx.n,
    "1/n": lambda fx: 1.0 / fx.n,
    "n m": lambda fx: fx.n * fx.m,
    "-1": lambda fx: -1.0,
    "2": lambda fx: 2.0,
    "1/2": lambda fx: 0.5,
    "eta": lambda fx: fx.config.eta,
    "q": lambda fx: fx.config.q,
    "m/2": lambda fx: fx.m / 2.0,
    "2/m": lambda fx: 2.0 / fx.m,
}


def name_factor(c: float, fx) -> str | None:
    for name, f in _FACTORS.items():
        v = float(f(fx))
        if v != 1.0 and abs(c - v) <= 1e-9 * abs(v):
            return name
    return None


# --------------------------------------------------------------------------------------------- the judge
class Judge:
    """Decides which catalogue entries reproduce a submission.

    Parameters
    ----------
    fx : Fixture
    subs : list of arrays (float64), the submission at the compared checkpoints (NaN allowed)
    refs : list of arrays, lnref's values there
    scales : list of float, the normwise scale of each checkpoint (relative errors are max|.| / scale)
    bnds : list of float, the bound of each checkpoint
    predict : callable (Mistake, value or None) -> list of arrays or None
    kind : str, the check ('gradient', 'step', 'trajectory'), for the entries' direct estimates
    steps : list of int, the compared steps (same order as ``subs``), for the entries' direct estimates
    """

    def __init__(
        self,
        fx,
        subs: Sequence[np.ndarray],
        refs: Sequence[np.ndarray],
        scales: Sequence[float],
        bnds: Sequence[float],
        predict: Callable[[Mistake, float | None], list | None],
        kind: str = "",
        steps: Sequence[int] | None = None,
    ):
        self.fx, self.subs, self.refs, self.scales, self.bnds, self.predict = fx, subs, refs, scales, bnds, predict
        self.kind, self.steps = kind, None if steps is None else [int(t) for t in steps]

    def distance(self, pred: Sequence[np.ndarray]) -> tuple[float, bool]:
        """(worst relative distance of the submission to ``pred``, reproduced).

        Reproduced: within every bound, and at one finite checkpoint at least the replay differs from lnref by
        more than the bound (so the match says something: agreeing only where lnref agrees too, or only where
        both diverged, names nothing)."""
        worst, ok, telling = 0.0, True, False
        for s, p, ref, sc, b in zip(self.subs, pred, self.refs, self.scales, self.bnds):
            fs, fp = np.all(np.isfinite(s)), np.all(np.isfinite(p))
            if not fs and not fp:
                continue  # both diverged by this checkpoint
            if fs != fp:
                return math.inf, False
            r = rel(maxabs(s - p), sc)
            worst = max(worst, r)
            ok = ok and r <= b
            telling = telling or rel(maxabs(p - ref), sc) > b
        return worst, ok and telling

    def _residual(self, pred) -> np.ndarray | None:
        parts = []
        for s, p, sc in zip(self.subs, pred, self.scales):
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(s))):
                return None
            parts.append(((p - s) / (sc or 1.0)).ravel())
        return np.concatenate(parts)

    def fit(self, e: Mistake) -> float | None:
        """Secant (Gauss-Newton) on the entry's one parameter, started from the two best trial values; None when
        the fit fails or leaves the entry's range."""
        trials = []
        guesses = tuple(e.estimate(self)) if e.estimate is not None else ()
        for p in (*guesses, e.start, e.probe, *tuple(e.grid)):
            pr = self.predict(e, p)
            r = None if pr is None else self._residual(pr)
            if r is not None:
                trials.append((float(r @ r), p, r))
        if len(trials) < 2:
            return None
        trials.sort(key=lambda x: x[0])
        (_, p1, r1), (_, p0, r0) = trials[0], trials[1]
        if p1 in guesses and self.distance(self.predict(e, p1))[1]:
            return p1 if e.low <= p1 <= e.high else None  # a direct estimate that already reproduces
        for _ in range(14):
            J = (r1 - r0) / (p1 - p0)
            jj = float(J @ J)
            if not jj > 0:
                break
            p2 = p1 - float(J @ r1) / jj
            if not math.isfinite(p2) or p2 == p1:
                break
            pr2 = self.predict(e, p2)
            r2 = None if pr2 is None else self._residual(pr2)
            if r2 is None:
                break
            p0, r0, p1, r1 = p1, r1, p2, r2
            if self.distance(pr2)[1]:
                break
        return p1 if e.low <= p1 <= e.high else None

    def judge(self, entries: Sequence[Mistake]) -> list[tuple[Mistake, float | None, float]]:
        """Entries whose replay reproduces the submission: fixed ones first, then fitted, then generic."""
        out = []
        for e in entries:
            if e.fit is None:
                pred = self.predict(e, None)
                if pred is not None:
                    dist, ok = self.distance(pred)
                    if ok:
                        out.append((e, None, dist))
        for group in (False, True):
            if out:
                break
            for e in entries:
                if e.fit is None or e.generic != group:
                    continue
                value = self.fit(e)
                if value is None or value == e.start:
                    continue
                pred = self.predict(e, value)
                dist, ok = self.distance(pred)
                if ok:
                    out.append((e, value, dist))
        return out


def describe_matches(rep: Report, fx, matches, what: str, steps: Sequence[int]) -> None:
    """Put the reproduced causes into ``rep`` (with the distance and the bound)."""
    shown = ", ".join(map(str, steps))
    for e, value, dist in matches:
        rep.mistakes.append(e.key)
        if value is not None:
            rep.fitted[e.key] = float(value)
            name = name_factor(value, fx) if e.fit in ("eta_scale", "grad_scale", "output_factor") else None
            value_txt = fmt_value(value, e.start) + (f" = {name}" if name else "")
            txt = mistake_text(e, fx, value, value_txt)
            how = f"replaying it with the fitted value reproduces {what} at step(s) {shown} to {dist:.1e}"
        else:
            txt = mistake_text(e, fx)
            how = f"replaying this mistake reproduces {what} at step(s) {shown} to {dist:.1e}"
        rep.diagnosis.append(f"{txt} ({how}, relative; within the bound)")
    if len(matches) > 1:
        rep.diagnosis.append(
            "these " + str(len(matches)) + " causes give the same numbers on this fixture (within "
            "the bound); a fixture with other checkpoints or settings may separate them"
        )


def not_in_catalogue(rep: Report, n_tried: int) -> None:
    rep.diagnosis.append(
        f"the cause is not in lnref's catalogue: none of the {n_tried} known mistakes that apply "
        "to this check reproduces the numbers within the bound (see 'What differs'; SPEC.md "
        "sections 2-4)"
    )


def all_keys() -> list[str]:
    return [e.key for e in CATALOGUE]
