"""Which of the model's special points a fixture exercised at the compared checkpoints (printed in every report).

A check can only catch a mistake at a point where the mistake changes the numbers.  The special points of the
two-layer ReLU^q CNN (SPEC.md sections 1-3) and the mistakes they expose:

* a pre-activation <w_jr, x_p> (+ b_jr) exactly 0: the ReLU's kink, where max(z, 0) ties; sigma'(0) = 0, and a
  ReLU differentiated as (z >= 0) (``clamp(min=0)``'s gradient) or as a tie split (``torch.maximum``) differs
  only there (q = 1; for q > 1 sigma is differentiable at 0);
* negative pre-activations: sigma' = 0 below the kink (the clamp of q z^(q-1) for q > 1);
* mislabelled samples (y_obs != y): the signal patch uses y, the loss y_obs;
* label-noise signs eps = -1 (label-noise GD): the loss of step t uses eps[t] * y_obs;
* m > 1, n > 1 and n != m: the factors 1/m and 1/n differ from 1 and from each other;
* checkpoints beyond step 0 (gradient, step) or beyond step 1 (trajectory): W away from its initialisation, and
  the optimiser's state (momentum, schedules, accumulated gradients) at work.
"""

from __future__ import annotations

import numpy as np

__all__ = ["special_points", "preactivations"]


def preactivations(fx, idx) -> tuple[np.ndarray, np.ndarray]:
    """(signal, noise) pre-activations at the checkpoints ``idx`` (indices into ``fx.steps``): (K, 2, m, n) each,
    <w_jr, y_i mu> (+ b_jr) and <w_jr, xi_i> (+ b_jr)."""
    W = fx.W[idx]
    b = fx.b[idx] if fx.has_bias else np.zeros((len(idx), 2, fx.m))
    signal = np.einsum("kjrd,d->kjr", W, fx.data.mu)[..., None] * fx.data.y + b[..., None]
    noise = np.einsum("kjrd,id->kjri", W, fx.data.xi) + b[..., None]
    return signal, noise


def _filters(mask: np.ndarray) -> str:
    """The filters (j, r) where ``mask`` (K, 2, m, n) holds somewhere, as text (at most 4)."""
    jr = np.argwhere(mask.any(axis=(0, 3)))
    shown = ", ".join(f"(j={'+1' if j == 0 else '-1'}, r={r})" for j, r in jr[:4])
    return shown + ("" if len(jr) <= 4 else f" and {len(jr) - 4} more")


def special_points(fx, kind: str, idx=None) -> list[str]:
    """One line per special point of the model: 'yes: ...' when the fixture exercised it at the compared
    checkpoints ``idx`` (default: all), 'NO: ...' (with what would go unnoticed) when it did not."""
    idx = list(range(fx.steps.size)) if idx is None else list(idx)
    steps = [int(fx.steps[i]) for i in idx]
    q = float(fx.config.q)
    zs, zn = preactivations(fx, idx)
    total = zs.size + zn.size
    out = []
    zero_s, zero_n = zs == 0.0, zn == 0.0
    nz = int(np.count_nonzero(zero_s) + np.count_nonzero(zero_n))
    kink = "the ReLU's kink, where max(z, 0) ties: sigma'(0) = 0"
    if q != 1.0:
        kink += f" (q = {q:g}: sigma is differentiable at 0, so no mistake hides there)"
    if nz:
        where = []
        if zero_s.any():
            where.append(f"signal patches of {_filters(zero_s)}")
        if zero_n.any():
            where.append(f"noise patches of {_filters(zero_n)}")
        out.append(f"yes: pre-activation exactly 0, {kink}: {nz} of {total} ({'; '.join(where)})")
    else:
        miss = (
            " - a ReLU differentiated as (z >= 0), e.g. clamp(min=0), or with torch.maximum's tie split would "
            "pass; use a fixture from `lnref export` or make_fixture(..., exercise=True), or a Config"
        )
        out.append(f"NO: pre-activation exactly 0, {kink}: none of {total}" + (miss if q == 1.0 else ""))
    neg = int(np.count_nonzero(zs < 0) + np.count_nonzero(zn < 0))
    what = "sigma' = 0 below the kink" + (" (the clamp of q z^(q-1))" if q != 1.0 else "")
    out.append(f"{'yes' if neg else 'NO'}: negative pre-activations, {what}: {neg} of {total}")
    noisy = int(np.count_nonzero(fx.data.y != fx.data.y_obs))
    out.append(
        f"{'yes' if noisy else 'NO'}: mislabelled samples (y_obs != y; the signal patch uses y, the loss "
        f"y_obs): {noisy} of {fx.n}"
    )
    if fx.eps is not None:
        flips = sum(int(np.count_nonzero(fx.eps[t] < 0)) for t in steps if t < fx.eps.shape[0])
        out.append(
            f"{'yes' if flips else 'NO'}: label-noise signs eps = -1 at the compared steps (the loss of step "
            f"t uses eps[t] * y_obs): {flips}"
        )
    else:
        out.append("not applicable: label-noise signs (plain GD)")
    fac = [f"m = {fx.m}", f"n = {fx.n}"]
    ok = fx.m > 1 and fx.n > 1 and fx.n != fx.m
    out.append(
        f"{'yes' if ok else 'NO'}: m > 1, n > 1 and n != m ({', '.join(fac)}): the factors 1/m and 1/n "
        "are told apart from 1 and from each other"
    )
    later = [t for t in steps if t > (1 if kind == "trajectory" else 0)]
    if kind == "trajectory":
        out.append(
            f"{'yes' if later else 'NO'}: steps beyond 1 (the optimiser's state: momentum, schedules, "
            f"accumulated gradients): {later if later else 'none compared'}"
        )
    else:
        out.append(
            f"{'yes' if later else 'NO'}: checkpoints beyond step 0 (W away from its initialisation): "
            f"{later if later else 'none'}"
        )
    return out
