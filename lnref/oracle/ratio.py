"""The measured ratio to lnref's numbers, stated when no catalogue entry reproduces a submission.

A constant factor outside the catalogue (1/2 written for 1/m, a stray 2) makes a submission a scaled copy of
lnref's numbers, overall or in some parts only.  :func:`measured_ratio` gives the least-squares scale
c = <theirs, lnref> / <lnref, lnref>, what is left of theirs after removing c x lnref's, the scale of each part
(signal coefficients gamma, noise coefficients rho, each filter, each sample) with its spread, and the parts for
which theirs is c x lnref's.
"""

from __future__ import annotations

import numpy as np

from .report import coefficients, decomposable, fmt_value, maxabs

__all__ = ["measured_ratio", "HOLDS"]

#: a part follows the scale c when max|theirs - c lnref| <= HOLDS x max|c lnref| on that part
HOLDS = 1e-6


def _scale(a: np.ndarray, r: np.ndarray) -> float:
    rr = float(np.sum(r * r))
    return float(np.sum(a * r)) / rr if rr > 0 else float("nan")


def _holds(a: np.ndarray, r: np.ndarray, c: float) -> bool:
    return maxabs(a - c * r) <= HOLDS * max(abs(c) * maxabs(r), 1e-300)


def _groups(items: list[tuple[str, float, bool]], noun: str) -> str:
    """'x c for k <noun>s (labels)' per group of parts with the same ratio (each a scaled copy), largest first,
    then the parts that are not scaled copies of lnref's."""
    groups: list[tuple[float, list[str]]] = []
    other: list[str] = []
    for label, c, copy in items:
        if not (copy and np.isfinite(c)):
            other.append(label)
            continue
        for g in groups:
            if abs(c - g[0]) <= HOLDS * abs(g[0]):
                g[1].append(label)
                break
        else:
            groups.append((c, [label]))
    groups.sort(key=lambda g: -len(g[1]))

    def names(ls):
        return ", ".join(ls[:8]) + (" ..." if len(ls) > 8 else "")

    out = [f"x {fmt_value(c, 1.0)} for {len(ls)} {noun}{'s' if len(ls) > 1 else ''} ({names(ls)})" for c, ls in groups]
    if other:
        out.append(f"not a scaled copy for {len(other)} {noun}{'s' if len(other) > 1 else ''} ({names(other)})")
    return "; ".join(out)


def measured_ratio(a: np.ndarray, ref: np.ndarray, fx, what: str) -> str | None:
    """One sentence: ``a`` (theirs) against ``ref`` (lnref's), both (2, m, d), overall and by part; None when
    the ratio is undefined (lnref's is 0, theirs is not finite)."""
    if not (np.all(np.isfinite(a)) and np.any(ref)):
        return None
    c = _scale(a, ref)
    left = maxabs(a - c * ref) / (maxabs(a) or 1.0)
    copy = _holds(a, ref, c)
    out = (
        f"measured: {what} is {fmt_value(c, 1.0)} x lnref's (least-squares scale; theirs - "
        f"{fmt_value(c, 1.0)} x lnref's leaves {left:.1e} of theirs: "
        + (
            "a scaled copy, a constant factor outside the catalogue: check every constant, 1/n, 1/m, 1/2, eta"
            if copy
            else "not a scaled copy"
        )
        + ")"
    )
    floor = 1e-12 * maxabs(ref)
    jname = {0: "+1", 1: "-1"}

    def item(label, pa, pr):
        cp = _scale(pa, pr)
        return label, cp, _holds(pa, pr, cp)

    parts = []
    if decomposable(fx):
        ga, ra, _ = coefficients(a, fx)
        gr, rr, _ = coefficients(ref, fx)
        sn = [
            item(name, pa, pr) for name, pa, pr in (("signal gamma", ga, gr), ("noise rho", ra, rr)) if maxabs(pr) > 0
        ]
        parts.append("by term: " + _groups(sn, "term"))
        noisy = fx.data.noisy
        smp = [
            item(f"{i}{'*' if noisy[i] else ''}", ra[:, :, i], rr[:, :, i])
            for i in range(fx.n)
            if maxabs(rr[:, :, i]) > 0
        ]
        parts.append("by sample (* mislabelled): " + _groups(smp, "sample"))
    filt = [
        item(f"(j={jname[j]}, r={r})", a[j, r], ref[j, r])
        for j in range(2)
        for r in range(ref.shape[1])
        if maxabs(ref[j, r]) > floor
    ]
    parts.append("by filter: " + _groups(filt, "filter"))
    return out + "; " + "; ".join(parts)
