"""Diagnosing a failed check by replay: what differs (signal or noise coefficients, filters, samples) and - only
when replaying a known mistake (:mod:`lnref.oracle.catalogue`) reproduces the submitted numbers within the bound -
why.  Otherwise the checked hints (float32 rounding, the step size actually taken) or the measured ratio to
lnref's numbers, and the statement that the cause is not in the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .catalogue import Mistake, applicable, with_value
from .fixtures import Fixture
from .ratio import measured_ratio
from .replay import Problem, simulate
from .replay_coteaching import stack
from .report import Judge, Report, coefficients, decomposable, describe_matches, findings, maxabs, not_in_catalogue, rel
from .tolerances import Tolerance

__all__ = [
    "diagnose_arrays",
    "diagnose_trajectory",
    "float32_hint",
    "reshape_export",
    "reshape_import",
    "replay_bias",
    "bias_findings",
    "check_bias_replays",
    "step_size_note",
    "REPLAY_BUDGET",
    "transformed",
]

#: replays are skipped above this much work (steps x m x n x d x entries)
REPLAY_BUDGET = 4e10


def reshape_export(W: np.ndarray) -> np.ndarray:
    m = W.shape[1]
    return np.ascontiguousarray(W.transpose(1, 0, 2)).reshape(2, m, W.shape[2])


def reshape_import(W0: np.ndarray) -> np.ndarray:
    m = W0.shape[1]
    return np.ascontiguousarray(W0.reshape(m, 2, W0.shape[2]).transpose(1, 0, 2))


def float32_hint(subs, refs, ref32s, scales, steps, stored32: bool) -> str | None:
    """A float32 hint, stated only when the submission is within 10x the distance of a float32 replay."""
    worst_t, worst_r = 0.0, 0.0
    for s, r, r32, sc in zip(subs, refs, ref32s, scales):
        if not np.all(np.isfinite(s)):
            return None
        d_sub = rel(maxabs(s - r), sc)
        d32 = max(rel(maxabs(r32 - r), sc), 2.0**-24)
        if d_sub > 10.0 * d32:
            return None
        worst_t, worst_r = max(worst_t, d_sub), max(worst_r, d32)
    how = "their arrays are float32" if stored32 else "their arrays are float64 but"
    text = (
        f"float32 rounding explains the differences: {how} within 10x of lnref's exact dynamics replayed in "
        f"float32 (the float32 replay differs from lnref by up to {worst_r:.1e}, theirs by {worst_t:.1e} at "
        f"step(s) {', '.join(map(str, steps))})"
    )
    if stored32:
        return text + "; compare with tier 'float32', or compute in float64 (torch.float64, jax_enable_x64)"
    return text + (
        "; float64 arrays this close to float32 arithmetic come from float32 somewhere: float32 "
        "arithmetic cast back to float64, or float64 code on inputs rounded through float32 (some of "
        "W0, mu, xi passed through torch.Tensor(x) or a float32 tensor before .double(); rounding all "
        "of them, or the data, or W0 is in the catalogue and would be named); keep every array float64 "
        "end to end, or compare with tier 'float32'"
    )


def replay_bias(fx: Fixture, v, k: int) -> np.ndarray | None:
    """The biases a replay under ``v`` uses at checkpoint index k: the fixture's b(t) (zeros for a fixture without
    biases), or None when ``v`` has no bias.  At a 'select_retrain' reset: b0, the state that step starts from."""
    if not v.bias:
        return None
    return fx.start(k)[1] if fx.has_bias else np.zeros((2, fx.m))


def diagnose_arrays(
    rep: Report,
    kind: str,
    fx: Fixture,
    subs: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    scales: Sequence[float],
    bnds: Sequence[float],
    origs: Sequence[np.ndarray],
    b_bad: list[str],
    tol: Tolerance,
    predict: Callable[[Mistake, float | None, int], np.ndarray | None],
    predict32: Callable[[int], np.ndarray],
) -> Report:
    """What differs and why, for a failed gradient or step check (``rep`` holds its rows): the coefficient
    breakdown, then the catalogue's replays (``predict(entry, value, k)``), then the float32 hint, then the measured
    ratio when nothing in the catalogue reproduces the numbers."""
    rep.findings += b_bad
    k = [r.ok for r in rep.rows].index(False)
    t, a, ref = int(fx.steps[k]), subs[k], refs[k]
    if not (rel(maxabs(a - ref), scales[k]) > tol.at(0)) and np.all(np.isfinite(a)):
        rep.findings.append(f"their {kind} of W agrees with lnref's at step {t}; only the bias part differs")
        rep.diagnosis.append(
            "only the bias part differs; the catalogue's replays are judged on W, so no cause is "
            "named: check dL/db (SPEC.md section 7: dL/db_jr = (s_j kappa / n) sum_i l'_i y_obs_i "
            "[sigma'(<w_jr, y_i mu> + b_jr) + sigma'(<w_jr, xi_i> + b_jr)])"
        )
        return rep
    if not np.all(np.isfinite(a)):
        rep.findings.append(f"their {kind} contains NaN or infinite values at step {t}; lnref's is finite")
    elif decomposable(fx):
        g_t, r_t, outside = coefficients(a, fx)
        g_r, r_r, _ = coefficients(ref, fx)
        sg, sr = maxabs(g_r), maxabs(r_r)
        sg, sr = sg or max(sg, sr), sr or max(sg, sr)
        rep.findings += findings(g_t - g_r, r_t - r_r, sg, sr, fx, tol.at(0))
        if outside > 1e-6:
            rep.findings.append(
                f"{outside:.2g} of their {kind} (relative) lies outside span{{mu, xi_1..xi_n}}: "
                "it uses vectors other than the signal and the noise patches"
            )
    else:
        rep.notes.append("no coefficient breakdown: it needs d >= n + 1, mu != 0 and every xi_i != 0")
    failing = [j for j, r in enumerate(rep.rows) if not r.ok]
    steps_all = [int(s) for s in fx.steps]

    def pred_all(e: Mistake, value: float | None):
        out = []
        for j in range(len(steps_all)):
            p = predict(e, value, j)
            if p is None:
                return None
            out.append(p)
        return out

    entries = applicable(fx, kind)
    matches = Judge(fx, subs, list(refs), scales, bnds, pred_all, kind, steps_all).judge(entries)
    if matches:
        describe_matches(rep, fx, matches, f"their {kind}", steps_all)
        return rep
    stored32 = all(o.dtype == np.float32 for o in origs)
    hint = float32_hint(
        [subs[j] for j in failing],
        [refs[j] for j in failing],
        [predict32(j) for j in failing],
        [scales[j] for j in failing],
        [steps_all[j] for j in failing],
        stored32,
    )
    if hint:
        rep.diagnosis.append(hint)
        return rep
    not_in_catalogue(rep, len(entries))
    k = failing[0]
    ratio = measured_ratio(
        subs[k], refs[k], fx, f"their {kind}" + (" (W' - W)" if kind == "step" else "") + f" at step {steps_all[k]}"
    )
    if ratio:
        rep.diagnosis.append(ratio)
    return rep


def bias_findings(rep: Report, fx: Fixture, t: int, i: int, b: np.ndarray, bsc: float, bound: float) -> bool:
    """A finding on their biases at checkpoint t (index i); True when they differ beyond ``bound``."""
    if not np.all(np.isfinite(b)):
        rep.findings.append(f"their biases b are NaN or infinite at step {t}")
        return True
    e = np.abs(b - fx.b[i]) / bsc
    bad = np.argwhere(e > bound)
    if not bad.size:
        rep.findings.append(f"their biases b agree at step {t} (max relative difference {float(e.max()):.2g})")
        return False
    shown = ", ".join(f"(j={'+1' if j == 0 else '-1'}, r={r})" for j, r in bad[:6])
    rep.findings.append(
        f"their biases b differ at step {t} at {len(bad)} of {2 * fx.m} filters: {shown}"
        f"{'' if len(bad) <= 6 else ' ...'}; max relative difference {float(e.max()):.3g}"
    )
    return True


def diagnose_trajectory(
    rep: Report,
    fx: Fixture,
    steps,
    idx,
    Ws,
    dtypes,
    scales,
    bnd,
    sg,
    sr,
    tol: Tolerance,
    Bs=None,
    bsc: float = 1.0,
    whats=None,
    W2s=None,
) -> None:
    """What differs and why, for a failed trajectory check (``rep`` holds its rows): the coefficient breakdown of
    network 1, then the catalogue's replays judged on every network (co-teaching: their W and ``W2s`` stacked,
    as the replay gives them), then the float32 hint, the step size taken, the measured ratio."""
    k = [r.ok for r in rep.rows].index(False)
    t, i = steps[k], idx[k]
    W = Ws[k]
    ok_before = [s for s, r in zip(steps, rep.rows) if r.ok and s < t]
    failed = (whats[k] if whats else None) or ["W"]
    verb = "differs" if len(failed) == 1 and failed[0] in ("W", "b", "loss", "W_2") else "differ"
    where = f"their {' and '.join(failed)} first {verb} at step {t}" + (
        f" ({'it agrees' if len(failed) == 1 else 'they agree'} at step(s) {ok_before})" if ok_before else ""
    )
    if failed == ["loss"]:
        where += (
            "; their W" + (" and b" if Bs is not None else "") + " agree there, so their loss is computed "
            "differently from lnref's (SPEC.md section 3; with the fixture's conventions, section 7)"
        )
    rep.findings.append(where)
    b_differs = Bs is not None and "b" in failed and bias_findings(rep, fx, t, i, Bs[k], bsc, float(bnd[k]))
    if t == 0 and W2s is not None and np.array_equal(W, fx.W0) and not np.array_equal(W2s[k], fx.W0_2):
        rep.diagnosis.append(
            "their second network's W_2(0) differs from the fixture's W0_2 (their W(0) is the fixture's W0): start "
            "network 2 from the fixture's array 'W0_2' (lnref draws it from stream 8, coteach_init)"
        )
        return
    if t == 0 and b_differs and np.array_equal(W, fx.W0):
        rep.diagnosis.append(
            "their b(0) differs from the fixture's b0 (their W(0) is the fixture's W0): start "
            "from the fixture's biases (array 'b0'; PyTorch: conv.bias = b0.reshape(2m))"
        )
        return
    bad_nf = [s for s, w in zip(steps, Ws) if not np.all(np.isfinite(w))]
    if bad_nf:
        rep.findings.append(
            f"their W is NaN or infinite at step(s) {bad_nf}: their trajectory diverged where "
            f"lnref's stays finite (max |W| {maxabs(fx.W[idx[steps.index(bad_nf[0])]]):.3g})"
        )
    if np.all(np.isfinite(W)) and decomposable(fx) and t > 0:
        g, r, outside = coefficients(W - fx.W0, fx)
        rep.findings += findings(g - fx.gamma[i], r - fx.rho[i], sg, sr, fx, float(bnd[k]))
        ref_disp = maxabs(fx.W[i] - fx.W0)
        if outside * maxabs(W - fx.W0) > 1e-3 * ref_disp:
            rep.findings.append(
                f"{outside:.2g} of their W(t) - W0 (relative) lies outside span{{mu, xi_1..xi_n}}: "
                "their updates use vectors other than the signal and noise patches, or their W0 "
                "is not the fixture's"
            )
    elif not decomposable(fx):
        rep.notes.append("no coefficient breakdown: it needs d >= n + 1, mu != 0 and every xi_i != 0")
    P = Problem.of(fx)
    last = max(steps)
    entries = applicable(fx, "trajectory")
    work = last * fx.m * fx.n * fx.d * (len(entries) + 30)
    cache: dict = {}
    bias_pred: dict = {}  # the replay's biases at the compared steps (None: the replay has none)

    def predict(e: Mistake, value: float | None):
        key = (e.key, value)
        if key in cache:
            return cache[key]
        bp = None
        if e.transform == "j_reversed":
            out = [fx.W[j][::-1].copy() for j in idx]
            bp = None if Bs is None else [fx.b[j][::-1].copy() for j in idx]
        elif e.transform == "reshape_export":
            out = [reshape_export(fx.W[j]) for j in idx]
        elif e.transform == "shift1":
            out = [fx.W[j] - fx.config.eta * fx.grad[j] for j in idx]
            bp = None if Bs is None else [fx.b[j] - fx.config.eta * fx.grad_b[j] for j in idx]
        elif e.transform == "reshape_import":
            run = simulate(P, steps, P.base, W0=reshape_import(fx.W0))
            out = [run[s] for s in steps]
        else:
            v = e.variant(fx) if value is None else with_value(e, fx, value)
            run = simulate(P, steps, v, with_bias=True)
            out = [run[s][0] for s in steps]
            bp = None if Bs is None or not v.bias else [run[s][1] for s in steps]
        cache[key] = out
        bias_pred[key] = bp
        return out

    two = W2s is not None  # co-teaching: the replay's state and the compared arrays are both networks, stacked
    subs, refs, jscales = Ws, [fx.W[j] for j in idx], scales
    if two:
        subs = [stack(W1, W2) for W1, W2 in zip(Ws, W2s)]
        refs = [stack(fx.W[j], fx.W_2[j]) for j in idx]
        jscales = [maxabs(r) for r in refs]
        single = predict

        def predict(e: Mistake, value: float | None):
            key = (e.key, value)
            if e.transform is None:
                out = single(e, value)
                bp = bias_pred.get(key)
                bias_pred[key] = None if bp is None else [b[:2] for b in bp]
                return out
            if key not in cache:
                cache[key] = [
                    stack(a, b)
                    for a, b in zip(transformed(fx, e.transform, idx, 1), transformed(fx, e.transform, idx, 2))
                ]
                bias_pred[key] = None
            return cache[key]

    if work > REPLAY_BUDGET:
        entries = [e for e in entries if e.transform in ("j_reversed", "reshape_export", "shift1")]
        rep.notes.append(
            f"the replays of known mistakes were skipped ({last} steps is too long at this size); only "
            "the export mistakes were checked; compare a fixture with fewer steps for a diagnosis"
        )
    matches = Judge(fx, subs, refs, jscales, list(bnd), predict, "trajectory", steps).judge(entries)
    if matches:
        describe_matches(rep, fx, matches, "their W and W_2" if two else "their W", steps)
        if Bs is not None:
            check_bias_replays(rep, matches, bias_pred, Bs, bsc, bnd, steps)
        return
    if t == 0 and np.all(np.isfinite(W)):
        if np.array_equal(W, fx.W0):
            rep.diagnosis.append(
                "their W(0) is the fixture's W0 but their other values at step 0 differ (see 'What differs')"
            )
        elif np.array_equal(W, fx.W0.astype(np.float32).astype(np.float64)):
            rep.diagnosis.append(
                "their W(0) is the fixture's W0 rounded to float32 (exactly): the implementation "
                "stores the weights in float32; compare with tier 'float32', or use float64"
            )
        else:
            rep.diagnosis.append(
                "their W(0) differs from the fixture's W0 (and is not a known rearrangement of "
                "it): start from the fixture's W0 (array 'W0')"
            )
        return
    if work <= REPLAY_BUDGET:
        run32 = simulate(P, steps, P.base, dtype=np.float32)
        hint = float32_hint(
            subs,
            refs,
            [run32[s].astype(np.float64) for s in steps],
            jscales,
            steps,
            all(dt == "float32" for dt in dtypes),
        )
        if hint:
            rep.diagnosis.append(hint)
            return
    step_size_note(rep, fx, steps, Ws)
    not_in_catalogue(rep, len(entries))
    if t > 0:
        first = " (their first update: their step-0 gradient times their step size)" if t == 1 else ""
        ratio = measured_ratio(W - fx.W0, fx.W[i] - fx.W0, fx, f"their W({t}) - W0{first}")
        if ratio:
            rep.diagnosis.append(ratio)


def check_bias_replays(rep: Report, matches, bias_pred: dict, Bs, bsc: float, bnd, steps) -> None:
    """The causes were named on W; say for each whether its replay also reproduces their biases."""
    for e, value, _ in matches:
        bp = bias_pred.get((e.key, value))
        if bp is None:
            continue
        worst, ok = 0.0, True
        for _, b, p, bd in zip(steps, Bs, bp, bnd):
            if not (np.all(np.isfinite(b)) and np.all(np.isfinite(p))):
                ok = ok and not np.all(np.isfinite(b)) and not np.all(np.isfinite(p))
                continue
            r = maxabs(b - p) / bsc
            worst, ok = max(worst, r), ok and r <= bd
        if ok:
            rep.diagnosis.append(f"the replay of {e.key} also reproduces their biases b (to {worst:.1e}, relative)")
        else:
            rep.diagnosis.append(
                f"the replay of {e.key} does NOT reproduce their biases b (they differ from it by "
                f"up to {worst:.1e}, relative; bound {float(min(bnd)):.1e}): their biases have a "
                "further difference not explained by this cause"
            )


def step_size_note(rep: Report, fx: Fixture, steps, Ws) -> None:
    """With consecutive checkpoints t, t + 1: the step size their update corresponds to (checked by residual)."""
    from ..model import gradient as lnref_gradient

    if fx.has_bias or fx.config.loss == "elr" or fx.mask is not None:
        return  # their update of W depends on their b (ELR: their targets; selection: the mask) too
    method = (
        {} if fx.config.loss == "logistic" else {"loss": fx.config.loss, "loss_params": dict(fx.config.loss_params)}
    )
    for a, b in zip(range(len(steps)), range(1, len(steps))):
        if steps[b] != steps[a] + 1 or not (np.all(np.isfinite(Ws[a])) and np.all(np.isfinite(Ws[b]))):
            continue
        t = steps[a]
        G = lnref_gradient(Ws[a], fx.data, fx.config.q, fx.eps_at(t), **fx.conventions(), **method)
        dW = Ws[b] - Ws[a]
        gg = float(np.sum(G * G))
        if gg == 0:
            continue
        c = -float(np.sum(dW * G)) / gg
        res = rel(maxabs(dW + c * G), maxabs(dW))
        eta = fx.config.eta
        if res <= 1e-8 and abs(c / eta - 1.0) > 1e-8:
            rep.findings.append(
                f"between their steps {t} and {t + 1} the update is exactly -{c:.6g} x lnref's "
                f"gradient at their W({t}) (residual {res:.1e}): a step size of {c:.6g} where "
                f"lnref uses eta = {eta:g}"
            )
            return


def transformed(fx: Fixture, how: str, idx, net: int = 1) -> list[np.ndarray]:
    """lnref's W of network ``net`` (2: co-teaching's second) at checkpoint indices ``idx`` under an export
    mistake: 'j_reversed', 'reshape_export' or 'shift1' (the checkpoint holds W(t + 1))."""
    W, grad = (fx.W, fx.grad) if net == 1 else (fx.W_2, fx.grad_2)
    if how == "j_reversed":
        return [W[j][::-1].copy() for j in idx]
    if how == "reshape_export":
        return [reshape_export(W[j]) for j in idx]
    if how == "shift1":
        return [W[j] - fx.config.eta * grad[j] for j in idx]
    raise ValueError(f"transform {how!r} is not replayed for two networks")
