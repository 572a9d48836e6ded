"""Check another implementation (PyTorch, JAX, NumPy, ...) against lnref.

Three checks, from the most local to the most global, each returning a :class:`Report`:

* :func:`check_gradient` calls ``grad_fn(W, mu, xi, y, y_obs, q) -> (2, m, d)`` at every checkpoint of a fixture
  and compares with lnref's gradient;
* :func:`check_step` calls ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` (one GD step) likewise;
* :func:`compare_trajectory` compares the weights another implementation reached at the checkpoint steps.

Calling convention of ``grad_fn`` and ``step_fn``: every argument is a C-contiguous NumPy float64 array (``q`` and
``eta`` Python floats): ``W`` (2, m, d) with index 0 holding j = +1, ``mu`` (d,), ``xi`` (n, d), ``y`` (n,) the
TRUE labels (the signal patch of sample i is ``y[i] * mu``), ``y_obs`` (n,) the labels the logistic loss uses.
For label-noise GD, ``y_obs`` is already ``eps[t] * y_obs`` (the label-noise loss is the plain loss with those
labels).  Return anything ``np.asarray`` accepts (a CPU tensor is fine) of shape (2, m, d); it is compared in
float64 (its dtype is reported).

Tolerance tiers (:data:`TIERS`, overridable with :class:`Tolerance` or ``rtol=``):

* ``'float64'``: normwise relative error ``max|theirs - lnref| / max|lnref|`` of the weights (gradient, update)
  at most ``rtol * (1 + t)`` with ``rtol = 1e-10``: independent float64 code (other summation order, BLAS) agrees
  to about 1e-14 per step; the error may grow linearly with the step t.
* ``'float32'``: ``rtol = 1e-5 * (1 + t)`` on summaries: the training loss and the coefficients gamma and rho
  (SPEC.md section 4; each relative to the largest magnitude the reference reaches in the fixture).
  Gradients and single steps are compared on the arrays themselves at ``1e-5``.

When a check fails, the report says where (max abs/rel error per checkpoint, the first checkpoint out of
tolerance), what (via :func:`lnref.decompose`: signal coefficient gamma or noise coefficients rho, which filters
j, r, which samples i, clean or mislabelled) and, where a known mistake explains the numbers, why: lnref replays
a catalogue of common mistakes (missing 1/m, sigma'(0) = 1, the signal patch built from the observed label,
j = +1/-1 swapped, ...) on the same inputs and names the one that reproduces them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace as dc_replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .config import Config, ConfigError
from .fixtures import Fixture, load_fixture, make_fixture
from .model import gd_step, loss as model_loss

__all__ = ["Tolerance", "TIERS", "Report", "CheckpointError", "load_fixture", "check_gradient", "check_step",
           "compare_trajectory", "assert_gradient_matches", "assert_step_matches", "assert_trajectory_matches",
           "resolve_tolerance", "MISTAKES"]


# --------------------------------------------------------------------------------------------- tolerances
@dataclass(frozen=True)
class Tolerance:
    """How close is close enough.

    Attributes
    ----------
    name : str
    rtol : float
        Relative tolerance of one step; at step t the bound is ``rtol * (1 + t)``.
    atol : float
        Absolute errors up to ``atol`` always pass (default 0).
    on : {'weights', 'summaries'}
        Compare trajectories on W itself, or on the loss and the coefficients gamma, rho.
    unit_roundoff : float
        Rounding unit of the implementation's storage (2^-53 or 2^-24); a single step is compared on its update
        W' - W with this much of |W| allowed for storing W'.
    """

    name: str
    rtol: float
    atol: float = 0.0
    on: str = "weights"
    unit_roundoff: float = 2.0 ** -53

    def __post_init__(self) -> None:
        if not (isinstance(self.rtol, (int, float)) and math.isfinite(self.rtol) and self.rtol > 0):
            raise ConfigError(f"rtol={self.rtol!r} is not allowed: rtol must be a finite number > 0")
        if not (isinstance(self.atol, (int, float)) and math.isfinite(self.atol) and self.atol >= 0):
            raise ConfigError(f"atol={self.atol!r} is not allowed: atol must be a finite number >= 0")
        if self.on not in ("weights", "summaries"):
            raise ConfigError(f"on={self.on!r} is not allowed: choose 'weights' or 'summaries'")

    def at(self, step: int) -> float:
        """The relative bound at GD step ``step``: rtol * (1 + step)."""
        return self.rtol * (1.0 + float(step))


TIERS: dict[str, Tolerance] = {
    "float64": Tolerance("float64", rtol=1e-10, on="weights", unit_roundoff=2.0 ** -53),
    "float32": Tolerance("float32", rtol=1e-5, on="summaries", unit_roundoff=2.0 ** -24),
}


def resolve_tolerance(tier: str | Tolerance = "float64", rtol: float | None = None,
                      atol: float | None = None) -> Tolerance:
    """A :class:`Tolerance` from a tier name (or a Tolerance), with ``rtol``/``atol`` overridden if given."""
    if isinstance(tier, Tolerance):
        tol = tier
    elif tier in TIERS:
        tol = TIERS[tier]
    else:
        raise ConfigError(f"tier={tier!r} is not allowed: choose one of {', '.join(map(repr, TIERS))} "
                          "or pass an lnref.testing.Tolerance")
    changes = {}
    if rtol is not None:
        changes["rtol"] = rtol
    if atol is not None:
        changes["atol"] = atol
    return dc_replace(tol, **changes) if changes else tol


# --------------------------------------------------------------------------------------------- report
@dataclass
class CheckpointError:
    """Errors at one checkpoint (NaN where not applicable)."""

    step: int
    abs_err: float
    rel_err: float
    tol: float
    ok: bool
    loss_rel_err: float = math.nan
    gamma_rel_err: float = math.nan
    rho_rel_err: float = math.nan


@dataclass
class Report:
    """The outcome of a check.

    Attributes
    ----------
    kind : {'gradient', 'step', 'trajectory'}
    tolerance : Tolerance
    rows : list of CheckpointError, one per compared checkpoint
    first_failure : int or None, the first step out of tolerance
    findings : list of str, which coefficients differ (from the decomposition)
    diagnosis : list of str, plain-language explanations of recognised patterns
    mistakes : list of str, keys of :data:`MISTAKES` that reproduce the numbers
    """

    kind: str
    tolerance: Tolerance
    rows: list[CheckpointError] = field(default_factory=list)
    first_failure: int | None = None
    findings: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.first_failure is None and all(r.ok for r in self.rows)

    def text(self) -> str:
        tol = self.tolerance
        head = (f"lnref {self.kind} check, tier {tol.name!r} (rtol {tol.rtol:g} * (1 + t), atol {tol.atol:g}, "
                f"on {tol.on if self.kind == 'trajectory' else 'arrays'}): ")
        head += "MATCH" if self.passed else f"MISMATCH (first at step {self.first_failure})"
        lines = [head, f"  {'step':>6} {'max abs err':>12} {'max rel err':>12} {'tolerance':>10} "
                       f"{'loss rel':>10} {'gamma rel':>10} {'rho rel':>10}  ok"]
        for r in self.rows:
            lines.append(f"  {r.step:>6} {r.abs_err:>12.3e} {r.rel_err:>12.3e} {r.tol:>10.1e} "
                         f"{r.loss_rel_err:>10.2e} {r.gamma_rel_err:>10.2e} {r.rho_rel_err:>10.2e}  "
                         f"{'yes' if r.ok else 'NO'}")
        if self.findings:
            lines.append("What differs (signal-noise decomposition, SPEC.md section 4):")
            lines += [f"  - {f}" for f in self.findings]
        if self.diagnosis:
            lines.append("Diagnosis:")
            lines += [f"  - {d}" for d in self.diagnosis]
        if self.notes:
            lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = text


# --------------------------------------------------------------------------------------------- known mistakes
MISTAKES: dict[str, str] = {
    "missing_1_over_m": "the factor 1/m of the gradient is missing: their gradient is m = {m} times lnref's "
                        "(SPEC.md section 3: grad = (1/(n m)) sum_i ...; section 2: F_j = (1/m) sum_r ...)",
    "model_missing_1_over_m": "the network lacks the factor 1/m: F_j is summed over the m filters instead of "
                              "averaged (SPEC.md section 2: F_j = (1/m) sum_r ...), so outputs and gradients are "
                              "about m = {m} times too large",
    "missing_1_over_n": "the loss is summed over the samples instead of averaged: their gradient is n = {n} times "
                        "lnref's (SPEC.md section 3: L = (1/n) sum_i ...)",
    "relu_derivative_one_at_zero": "sigma'(0) = 1 is used for the ReLU: where an inner product <w_jr, x> is "
                                   "exactly 0 the unit must get no gradient (SPEC.md section 2: sigma'(z) = 0 for "
                                   "z <= 0; PyTorch's convention); use (z > 0), not (z >= 0)",
    "signal_patch_observed_label": "the signal patch is built from the OBSERVED label (y_obs_i mu) instead of the "
                                   "true label (y_i mu): x1 = y_i mu is part of the input (SPEC.md section 1); only "
                                   "the loss uses y_obs; this changes the signal term (gamma) of the {n_noisy} "
                                   "mislabelled samples, the only ones with y_obs_i != y_i",
    "j_swapped": "the filters of j = +1 and j = -1 are swapped: index 0 of W must hold j = +1 (output sign +1), "
                 "index 1 j = -1 (SPEC.md section 2)",
    "sign_flipped": "the gradient has the wrong sign (gradient ascent): W(t+1) = W(t) - eta grad L",
    "label_noise_ignored": "the label-noise signs eps are ignored: label-noise GD uses eps[t] * y_obs as the labels "
                           "of step t (fixture array 'eps')",
}


def _naive_gradient(W: np.ndarray, mu: np.ndarray, xi: np.ndarray, y: np.ndarray, y_obs: np.ndarray,
                    mult: np.ndarray, q: float, mistake: str | None) -> np.ndarray:
    """grad L (SPEC.md section 3) in plain NumPy, optionally with one of the :data:`MISTAKES` (diagnosis only)."""
    m, n = W.shape[1], xi.shape[0]
    if mistake == "label_noise_ignored":
        mult = y_obs
    y_sig = y_obs if mistake == "signal_patch_observed_label" else y
    at_zero = mistake == "relu_derivative_one_at_zero"
    Z_sig = np.einsum("jrd,d->jr", W, mu)[:, :, None] * y_sig[None, None, :]   # (2, m, n)
    Z_xi = np.einsum("jrd,id->jri", W, xi)                                     # (2, m, n)

    def act(z):
        return np.where(z > 0, np.maximum(z, 0.0) ** q, 0.0)

    def dact(z):
        pos = (z >= 0) if at_zero else (z > 0)
        return np.where(pos, q * np.maximum(z, 0.0) ** (q - 1.0), 0.0)

    norm = 1.0 if mistake == "model_missing_1_over_m" else float(m)
    Fj = (act(Z_sig) + act(Z_xi)).sum(axis=1) / norm                           # (2, n)
    f = Fj[0] - Fj[1]
    z = mult * f
    lp = -0.5 * (1.0 - np.tanh(z / 2.0))                                       # l'(z) = -sigmoid(-z)
    c = lp * mult                                                              # (n,)
    s = np.array([1.0, -1.0])[:, None, None]
    sig = np.einsum("jri,i->jr", dact(Z_sig), c * y_sig)[:, :, None] * mu[None, None, :]
    noi = np.einsum("jri,i,id->jrd", dact(Z_xi), c, xi)
    gnorm = 1.0 if mistake in ("missing_1_over_m", "model_missing_1_over_m") else float(m)
    G = s * (sig + noi) / (n * gnorm)
    if mistake == "missing_1_over_n":
        G = G * n
    elif mistake == "j_swapped":
        G = G[::-1].copy()
    elif mistake == "sign_flipped":
        G = -G
    return G


def _applicable(fx: Fixture) -> list[str]:
    keys = list(MISTAKES)
    if fx.config.q != 1.0:
        keys.remove("relu_derivative_one_at_zero")
    if fx.eps is None:
        keys.remove("label_noise_ignored")
    if not np.any(fx.data.y != fx.data.y_obs):
        keys.remove("signal_patch_observed_label")
    if fx.n == 1:
        keys.remove("missing_1_over_n")
    if fx.m == 1:
        keys.remove("missing_1_over_m")
        keys.remove("model_missing_1_over_m")
    return keys


def _mistake_text(key: str, fx: Fixture) -> str:
    return MISTAKES[key].format(m=fx.m, n=fx.n, n_noisy=int(np.count_nonzero(fx.data.noisy)))


# --------------------------------------------------------------------------------------------- helpers
def _as_fixture(obj: Fixture | Config | str | os.PathLike) -> Fixture:
    if isinstance(obj, Fixture):
        return obj
    if isinstance(obj, Config):
        return make_fixture(obj, [0, 1] if obj.steps >= 1 else [0])
    if isinstance(obj, (str, Path, os.PathLike)):
        return load_fixture(obj)
    raise ConfigError(f"expected an lnref fixture (Fixture or .npz path) or an lnref.Config, got "
                      f"{type(obj).__name__}")


def _to_numpy(name: str, a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensors
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as exc:
        raise ConfigError(f"{name} cannot be converted to a NumPy array: {exc}") from None


def _maxabs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def _rel(diff: float, scale: float) -> float:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def _decomposable(fx: Fixture) -> bool:
    return fx.d >= fx.n + 1 and bool(np.any(fx.data.mu))


def _coefficients(delta: np.ndarray, fx: Fixture) -> tuple[np.ndarray, np.ndarray, float]:
    """(gamma, rho, relative part of ``delta`` outside span{mu, xi}) of a (2, m, d) displacement."""
    from .decomposition import decompose, reconstruct
    zero = np.zeros_like(delta)
    gamma, rho = decompose(delta, zero, fx.data)
    back = reconstruct(zero, gamma, rho, fx.data)
    outside = _rel(_maxabs(delta - back), _maxabs(delta))
    return gamma, rho, outside


def _findings(dgamma: np.ndarray, drho: np.ndarray, sg: float, sr: float, fx: Fixture,
              floor: float) -> tuple[list[str], dict[str, Any]]:
    """Sentences naming which coefficients differ, plus the facts the diagnosis uses."""
    eg = np.abs(dgamma) / sg if sg > 0 else np.abs(dgamma)
    er = np.abs(drho) / sr if sr > 0 else np.abs(drho)
    top = max(float(eg.max(initial=0.0)), float(er.max(initial=0.0)))
    thr = max(floor, 1e-6 * top)
    out: list[str] = []
    facts: dict[str, Any] = {}
    jname = {0: "+1", 1: "-1"}
    bad_f = np.argwhere(eg > thr)
    facts["gamma_differs"] = bad_f.size > 0
    facts["gamma_max"] = float(eg.max(initial=0.0))
    if bad_f.size:
        shown = ", ".join(f"(j={jname[j]}, r={r})" for j, r in bad_f[:6])
        more = "" if len(bad_f) <= 6 else f" and {len(bad_f) - 6} more"
        out.append(f"signal coefficients gamma differ at {len(bad_f)} of {2 * fx.m} filters: {shown}{more}; "
                   f"max relative difference {facts['gamma_max']:.3g}")
    else:
        out.append(f"signal coefficients gamma agree (max relative difference {facts['gamma_max']:.2g})")
    per_sample = er.max(axis=(0, 1)) if er.size else np.zeros(fx.n)
    bad_i = np.flatnonzero(per_sample > thr)
    clean = fx.data.clean
    noisy_bad = int(np.count_nonzero(~clean[bad_i]))
    clean_bad = int(bad_i.size - noisy_bad)
    n_noisy = int(np.count_nonzero(~clean))
    facts.update(rho_samples=bad_i, rho_noisy_bad=noisy_bad, rho_clean_bad=clean_bad, n_noisy=n_noisy,
                 rho_max=float(er.max(initial=0.0)))
    if bad_i.size:
        js = sorted({jname[j] for j in np.argwhere(er > thr)[:, 0]})
        shown = ", ".join(map(str, bad_i[:10].tolist())) + ("" if bad_i.size <= 10 else ", ...")
        out.append(f"noise coefficients rho differ for {bad_i.size} of {fx.n} samples ({noisy_bad} of {n_noisy} "
                   f"mislabelled, {clean_bad} of {fx.n - n_noisy} clean; samples {shown}) in the filters of "
                   f"j = {' and '.join(js)}; max relative difference {facts['rho_max']:.3g}")
    else:
        out.append(f"noise coefficients rho agree (max relative difference {facts['rho_max']:.2g})")
    return out, facts


def _scalar_factor(theirs: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """c minimising ||theirs - c ref|| and the relative residual."""
    rr = float(np.sum(ref * ref))
    if rr == 0:
        return math.nan, math.inf
    c = float(np.sum(theirs * ref)) / rr
    res = math.sqrt(float(np.sum((theirs - c * ref) ** 2)) / rr)
    return c, res


def _name_factor(c: float, fx: Fixture) -> str | None:
    cands = {"m": fx.m, "1/m": 1.0 / fx.m, "n": fx.n, "1/n": 1.0 / fx.n, "n m": fx.n * fx.m,
             "1/(n m)": 1.0 / (fx.n * fx.m), "-1": -1.0, "2": 2.0, "1/2": 0.5, "eta": fx.config.eta,
             "q": fx.config.q}
    for name, v in cands.items():
        if v != 1.0 and abs(c - v) <= 1e-6 * abs(v):
            return name
    return None


def _float32_like(a_orig: np.ndarray, rel: float, t: int) -> bool:
    """Errors that single precision explains: float32 storage with rel <= 1e-4 (1 + t), or rel in
    (1e-9 (1 + t), 1e-5 (1 + t)] (float32 arithmetic on float64 storage)."""
    a = np.asarray(a_orig, dtype=np.float64)
    stored32 = a_orig.dtype == np.float32 or bool(
        a.size and np.array_equal(a.astype(np.float32).astype(np.float64), a))
    if stored32:
        return rel <= 1e-4 * (1 + t)
    return 1e-9 * (1 + t) < rel <= 1e-5 * (1 + t)


def _generic_diagnosis(theirs: np.ndarray, ref: np.ndarray, orig: np.ndarray, rel: float, t: int,
                       facts: dict[str, Any], fx: Fixture, tol: Tolerance) -> list[str]:
    out: list[str] = []
    if not np.all(np.isfinite(theirs)):
        return ["their values contain NaN or infinity: the implementation diverged or divided by zero"]
    c, res = _scalar_factor(theirs, ref)
    name = _name_factor(c, fx) if res < 1e-6 else None
    if res < 1e-6 and abs(c - 1.0) > 1e-6:
        label = f" = {name}" if name else ""
        hint = {"m": " (the 1/m factor is missing)", "1/m": " (an extra 1/m factor)",
                "n": " (the loss is summed, not averaged over n)", "-1": " (wrong sign)"}.get(name or "", "")
        out.append(f"their result is exactly {c:.6g}{label} times lnref's{hint}")
    if not out and _float32_like(orig, rel, t) and \
            not (facts.get("gamma_differs") and facts.get("rho_samples", np.zeros(0)).size == 0):
        out.append(f"the differences (relative {rel:.2g} at step {t}) are at the level of float32 rounding "
                   f"(2^-24 = 6e-8 per operation), not a modelling mistake: the implementation computes or stores "
                   f"in float32 (or uses TF32/reduced-precision matmuls). Compare with tier 'float32', or compute "
                   f"in float64 (torch.float64, jax_enable_x64)")
    if not out and facts:
        noisy_only = facts["rho_samples"].size > 0 and facts["rho_clean_bad"] == 0
        if facts["gamma_differs"] and (facts["rho_samples"].size == 0 or noisy_only) and facts["n_noisy"] > 0:
            out.append("the signal coefficient gamma differs while rho differs only for mislabelled samples: the "
                       "signal patch of mislabelled samples is wrong (use the TRUE label, y_i mu, for the signal "
                       "patch; y_obs only in the loss)")
        elif facts["gamma_differs"] and facts["rho_samples"].size == 0:
            out.append("only the signal coefficient gamma differs: check the signal term sigma'(<w, y_i mu>) y_i mu")
        elif not facts["gamma_differs"] and facts["rho_samples"].size:
            out.append("only the noise coefficients rho differ: check the noise term sigma'(<w, xi_i>) xi_i")
    return out


# --------------------------------------------------------------------------------------------- array checks
def _check_arrays(kind: str, fx: Fixture, outputs: Sequence[Any], refs: Sequence[np.ndarray],
                  bases: Sequence[np.ndarray], tol: Tolerance, candidates: Callable[[int, str], np.ndarray],
                  ) -> Report:
    """Shared body of check_gradient / check_step: ``outputs[k]`` vs ``refs[k]`` (both displacements)."""
    rep = Report(kind, tol)
    shape = (2, fx.m, fx.d)
    state = None
    for k, t in enumerate(fx.steps):
        t = int(t)
        orig = _to_numpy(f"the {kind} at step {t}", outputs[k])
        if orig.shape == (fx.m, 2, fx.d) and fx.m != 2:
            rep.rows.append(CheckpointError(t, math.inf, math.inf, tol.at(0), False))
            rep.first_failure = t
            rep.findings.append(f"their {kind} has shape {orig.shape} = (m, 2, d); lnref's layout is (2, m, d)")
            transposed = np.asarray(orig, dtype=np.float64).transpose(1, 0, 2) - bases[k]
            ok = _rel(_maxabs(transposed - refs[k]), _maxabs(refs[k])) <= max(tol.at(0), 1e-6)
            rep.diagnosis.append("the j and r axes are transposed: use W[j, r, :] with shape (2, m, d), index 0 for "
                                 "j = +1" + (" (transposed back, their values match lnref's)" if ok else ""))
            return rep
        if orig.shape != shape:
            raise ConfigError(f"their {kind} at step {t} has shape {orig.shape}; expected (2, m, d) = {shape}")
        a = np.asarray(orig, dtype=np.float64) - bases[k]
        ref = refs[k]
        diff = _maxabs(a - ref) if np.all(np.isfinite(a)) else math.inf
        scale = _maxabs(ref) + (tol.unit_roundoff * _maxabs(bases[k]) if kind == "step" else 0.0)
        rel = _rel(diff, scale)
        ok = rel <= tol.at(0) or diff <= tol.atol
        row = CheckpointError(t, diff, rel, tol.at(0), ok)
        if _decomposable(fx) and np.all(np.isfinite(a)):
            g_t, r_t, _ = _coefficients(a, fx)
            g_r, r_r, _ = _coefficients(ref, fx)
            sg, sr = _maxabs(g_r), _maxabs(r_r)
            sg, sr = sg or max(sg, sr), sr or max(sg, sr)
            row.gamma_rel_err = _rel(_maxabs(g_t - g_r), sg)
            row.rho_rel_err = _rel(_maxabs(r_t - r_r), sr)
        rep.rows.append(row)
        if not ok and state is None:
            state = (k, t, a, ref, orig, rel)
    if state is not None:
        k, t, a, ref, orig, rel = state
        rep.first_failure = t
        facts: dict[str, Any] = {}
        if _decomposable(fx) and np.all(np.isfinite(a)):
            g_t, r_t, outside = _coefficients(a, fx)
            g_r, r_r, _ = _coefficients(ref, fx)
            sg, sr = _maxabs(g_r), _maxabs(r_r)
            sg, sr = sg or max(sg, sr), sr or max(sg, sr)
            found, facts = _findings(g_t - g_r, r_t - r_r, sg, sr, fx, tol.at(0))
            rep.findings += found
            if outside > 1e-6:
                rep.findings.append(f"{outside:.2g} of their {kind} (relative) lies outside span{{mu, xi_1..xi_n}}: "
                                    "it uses vectors other than the signal and the noise patches")
        else:
            rep.notes.append("no coefficient breakdown: it needs d >= n + 1 and mu != 0")
        err_ref = _maxabs(a - ref)
        for key in _applicable(fx):
            cand = candidates(k, key)
            err_cand = _maxabs(a - cand)
            # a mistake explains their numbers when it reproduces them, and far better than lnref does
            if _rel(err_cand, _maxabs(cand)) <= 1e-6 and err_cand < 0.01 * err_ref:
                rep.mistakes.append(key)
                rep.diagnosis.append(_mistake_text(key, fx) + f" (replaying this mistake reproduces their {kind})")
        if not rep.mistakes:
            rep.diagnosis += _generic_diagnosis(a, ref, orig, rel, t, facts, fx, tol)
        if not rep.diagnosis:
            rep.diagnosis.append("no known pattern; compare the coefficient breakdown above with SPEC.md sections "
                                 "2-4")
    return rep


def _has_zero_inner_product(fx: Fixture) -> bool:
    return bool(np.any(np.einsum("kjrd,id->kjri", fx.W, fx.data.xi) == 0.0)
                or np.any(np.einsum("kjrd,d->kjr", fx.W, fx.data.mu) == 0.0))


def check_gradient(grad_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, *,
                   tier: str | Tolerance = "float64", rtol: float | None = None,
                   atol: float | None = None) -> Report:
    """Compare ``grad_fn(W, mu, xi, y, y_obs, q)`` with lnref's gradient at every checkpoint.

    Parameters
    ----------
    grad_fn : callable
        ``grad_fn(W, mu, xi, y, y_obs, q) -> array (2, m, d)``; W (2, m, d), mu (d,), xi (n, d), y (n,) the true
        labels, y_obs (n,) the labels of the loss (``eps[t] * y_obs`` for label-noise GD), all float64; q float.
    fixture_or_config : Fixture, path of a fixture .npz, or Config
        A Config makes a fixture on the fly (checkpoints 0, 1 and ``steps``).
    tier, rtol, atol
        Tolerance (see :data:`TIERS`); the relative error is ``max|theirs - lnref| / max|lnref|``.

    Returns
    -------
    Report

    Notes
    -----
    SPEC.md section 3 (the gradient) and identity 5.2.
    """
    fx = _as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d = fx.data
    outs = []
    for k, t in enumerate(fx.steps):
        W = fx.W[k].copy()
        outs.append(grad_fn(W, d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), float(fx.config.q)))
    zeros = [np.zeros_like(fx.W0)] * len(outs)

    def cand(k: int, key: str) -> np.ndarray:
        t = int(fx.steps[k])
        return _naive_gradient(fx.W[k], d.mu, d.xi, d.y, d.y_obs, fx.mult(t), fx.config.q, key)

    rep = _check_arrays("gradient", fx, outs, list(fx.grad), zeros, tol, cand)
    if not rep.passed and fx.config.q == 1.0 and "relu_derivative_one_at_zero" not in rep.mistakes \
            and not _has_zero_inner_product(fx):
        rep.notes.append("no inner product <w_jr, x> is exactly 0 at these checkpoints, so sigma'(0) was not "
                         "exercised")
    return rep


def check_step(step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, *,
               tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None) -> Report:
    """Compare one GD step ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` with lnref's at every checkpoint.

    The comparison is on the update W' - W (relative to lnref's update, plus the rounding of storing W' in the
    tier's precision), so a mistake much smaller than |W| is still caught.

    Notes
    -----
    SPEC.md section 3: W(t+1) = W(t) - eta grad L(W(t)).
    """
    fx = _as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d, q, eta = fx.data, float(fx.config.q), float(fx.config.eta)
    outs, refs, bases = [], [], []
    for k, t in enumerate(fx.steps):
        W = fx.W[k]
        outs.append(step_fn(W.copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), q, eta))
        refs.append(gd_step(W, d, eta, q, fx.eps_at(int(t))) - W)
        bases.append(W)

    def cand(k: int, key: str) -> np.ndarray:
        t = int(fx.steps[k])
        return -eta * _naive_gradient(fx.W[k], d.mu, d.xi, d.y, d.y_obs, fx.mult(t), q, key)

    return _check_arrays("step", fx, outs, refs, bases, tol, cand)


# --------------------------------------------------------------------------------------------- trajectories
def _their_checkpoints(theirs: Any, fx: Fixture) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    shape = (2, fx.m, fx.d)
    if isinstance(theirs, Mapping):
        steps = []
        Ws = []
        for s, W in sorted(theirs.items(), key=lambda kv: int(kv[0])):
            steps.append(int(s))
            Ws.append(_to_numpy(f"W at step {s}", W))
        dtypes = {W.dtype for W in Ws}
        for s, W in zip(steps, Ws):
            if W.shape != shape:
                raise ConfigError(_shape_message(f"their W at step {s}", W.shape, shape))
        arr = np.stack(Ws) if Ws else np.zeros((0,) + shape)
        steps_a = np.array(steps, dtype=np.int64)
        dtype = Ws[0].dtype if len(dtypes) == 1 else np.dtype(np.float64)
    else:
        arr = _to_numpy("their checkpoints", theirs)
        if arr.shape[1:] != shape or arr.ndim != 4:
            raise ConfigError(_shape_message("their W", arr.shape, (fx.steps.size,) + shape))
        if arr.shape[0] != fx.steps.size:
            raise ConfigError(f"their W has {arr.shape[0]} checkpoints but the fixture has {fx.steps.size} "
                              f"(steps {fx.steps.tolist()}); pass a dict step -> W for a subset")
        steps_a = fx.steps.copy()
        dtype = arr.dtype
    if steps_a.size == 0:
        raise ConfigError("no checkpoints to compare: give W at one or more of the fixture's steps "
                          f"{fx.steps.tolist()}")
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"their W must be a real floating-point array, got dtype {arr.dtype}")
    unknown = sorted(set(steps_a.tolist()) - set(fx.steps.tolist()))
    if unknown:
        raise ConfigError(f"step(s) {unknown} are not checkpoints of the fixture; its checkpoints are "
                          f"{fx.steps.tolist()}")
    a64 = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(a64)):
        bad = sorted({int(steps_a[k]) for k in np.argwhere(~np.isfinite(a64))[:, 0]})
        raise ConfigError(f"their W contains NaN or infinite values at step(s) {bad}: the implementation diverged; "
                          "nothing to compare")
    return steps_a, a64, dtype


def _shape_message(name: str, got: tuple, want: tuple) -> str:
    msg = f"{name} has shape {got}; expected {want} (layout W[j, r, :], index 0 holds j = +1)"
    if len(got) >= 3 and tuple(got[-3:]) == (want[-2], want[-3], want[-1]):
        msg += "; it looks like (m, 2, d): transpose the j and r axes"
    return msg


def _simulate(fx: Fixture, key: str | None, until: int) -> np.ndarray:
    d, q, eta = fx.data, float(fx.config.q), float(fx.config.eta)
    W = fx.W0.copy()
    for t in range(until):
        W = W - eta * _naive_gradient(W, d.mu, d.xi, d.y, d.y_obs, fx.mult(t), q, key)
        if not np.all(np.isfinite(W)):
            break
    return W


def compare_trajectory(their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike, *,
                       tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None,
                       loss: Mapping[int, float] | Sequence[float] | None = None) -> Report:
    """Compare another implementation's weights at the fixture's checkpoints with lnref's.

    Parameters
    ----------
    their_checkpoints : dict step -> array (2, m, d), or array (K, 2, m, d) aligned with ``fixture.steps``
        Their W(t), started from the fixture's W0 on the fixture's data (and eps).
    fixture : Fixture or path
    tier, rtol, atol
        Tolerance (:data:`TIERS`).  'float64' compares W (``max|dW| / max|W|``); 'float32' compares the loss
        and the coefficients gamma and rho (relative to the largest magnitude each reaches in the fixture).
    loss : dict step -> float or sequence aligned with the compared steps, optional
        Their training loss; by default lnref evaluates the loss of their W.

    Returns
    -------
    Report

    Raises
    ------
    ConfigError
        Wrong shapes, steps that are not checkpoints, non-finite values.

    Notes
    -----
    GD of SPEC.md section 3; the breakdown uses the decomposition of section 4 (identity 5.1).
    """
    fx = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
    tol = resolve_tolerance(tier, rtol, atol)
    steps, Ws, dtype = _their_checkpoints(their_checkpoints, fx)
    their_loss = None
    if loss is not None:
        if isinstance(loss, Mapping):
            missing = [int(s) for s in steps if int(s) not in {int(k) for k in loss}]
            if missing:
                raise ConfigError(f"their loss is missing step(s) {missing}")
            lmap = {int(k): float(v) for k, v in loss.items()}
            their_loss = np.array([lmap[int(s)] for s in steps])
        else:
            their_loss = np.asarray(_to_numpy("their loss", loss), dtype=np.float64).ravel()
            if their_loss.shape != steps.shape:
                raise ConfigError(f"their loss has shape {their_loss.shape}; expected ({steps.size},), one value "
                                  "per compared checkpoint")
        if not np.all(np.isfinite(their_loss)):
            raise ConfigError("their loss contains NaN or infinite values")
    dec = _decomposable(fx)
    sg = _maxabs(fx.gamma)
    sr = _maxabs(fx.rho)
    sg, sr = sg or max(sg, sr) or 1.0, sr or max(sg, sr) or 1.0
    rep = Report("trajectory", tol)
    first = None
    for k, t in enumerate(steps):
        t = int(t)
        idx = fx.index(t)
        W_ref = fx.W[idx]
        W = Ws[k]
        diff = _maxabs(W - W_ref)
        rel = _rel(diff, _maxabs(W_ref))
        lo = their_loss[k] if their_loss is not None else model_loss(W, fx.data, fx.config.q)
        row = CheckpointError(t, diff, rel, tol.at(t), False,
                              loss_rel_err=_rel(abs(lo - fx.loss[idx]), abs(fx.loss[idx])))
        if dec:
            g, r, _ = _coefficients(W - fx.W0, fx)
            row.gamma_rel_err = _maxabs(g - fx.gamma[idx]) / sg
            row.rho_rel_err = _maxabs(r - fx.rho[idx]) / sr
        if tol.on == "weights" or not dec:
            row.ok = rel <= tol.at(t) or diff <= tol.atol
        else:
            row.ok = max(row.loss_rel_err, row.gamma_rel_err, row.rho_rel_err) <= tol.at(t)
        if tol.on == "summaries" and not dec:
            row.ok = row.ok and row.loss_rel_err <= tol.at(t)
        rep.rows.append(row)
        if not row.ok and first is None:
            first = (k, t, idx)
    if first is None:
        return rep
    k, t, idx = first
    rep.first_failure = t
    W = Ws[k]
    facts: dict[str, Any] = {}
    if dec:
        g, r, outside = _coefficients(W - fx.W0, fx)
        found, facts = _findings(g - fx.gamma[idx], r - fx.rho[idx], sg, sr, fx, tol.at(t))
        rep.findings += found
        ref_disp = _maxabs(fx.W[idx] - fx.W0)
        if t > 0 and outside * _maxabs(W - fx.W0) > 1e-3 * ref_disp:
            rep.findings.append(f"{outside:.2g} of their W(t) - W0 (relative) lies outside span{{mu, xi_1..xi_n}}: "
                                "their updates use vectors other than the signal and noise patches, or their W0 "
                                "is not the fixture's")
    else:
        rep.notes.append("no coefficient breakdown: it needs d >= n + 1 and mu != 0")
    if t == 0:
        orig = Ws[k].astype(dtype) if dtype.kind == "f" else Ws[k]
        if _float32_like(orig, rep.rows[k].rel_err, 0) and rep.rows[k].rel_err <= 1e-6:
            rep.diagnosis.append("their W(0) is the fixture's W0 rounded to float32: the implementation stores the "
                                 "weights in float32; compare with tier 'float32', or use float64 throughout")
            return rep
        rep.diagnosis.append("their W(0) differs from the fixture's W0: start from the fixture's W0 (array 'W0')")
        return rep
    # replay the known mistakes up to this step
    work = t * fx.m * fx.n * fx.d * 8 * len(_applicable(fx))
    if work <= 4e9:
        err_ref = _maxabs(W - fx.W[idx])
        for key in _applicable(fx):
            W_v = _simulate(fx, key, t)
            scale = _maxabs(W_v - fx.W0)
            err_v = _maxabs(W - W_v)
            if np.all(np.isfinite(W_v)) and _rel(err_v, scale) <= 1e-4 and err_v < 0.01 * err_ref:
                rep.mistakes.append(key)
                rep.diagnosis.append(_mistake_text(key, fx) + f" (replaying this mistake for {t} steps from W0 "
                                                              "reproduces their W)")
    else:
        rep.notes.append(f"the replay of known mistakes was skipped ({t} steps is too long at this size); include "
                         "an early checkpoint such as step 1 for a sharper diagnosis")
    if not rep.mistakes:
        delta_t = W - fx.W0
        delta_r = fx.W[idx] - fx.W0
        orig = Ws[k].astype(dtype) if dtype.kind == "f" else Ws[k]
        rel = rep.rows[k].rel_err
        rep.diagnosis += _generic_diagnosis(delta_t, delta_r, orig, rel, t, facts, fx, tol)
        if not rep.diagnosis:
            rep.diagnosis.append("no known pattern; a checkpoint at step 1 separates a wrong gradient from a wrong "
                                 "accumulation; try check_gradient and check_step")
    return rep


# --------------------------------------------------------------------------------------------- assertions
def assert_gradient_matches(grad_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike,
                            **kwargs: Any) -> Report:
    """:func:`check_gradient`, raising AssertionError with the report text when it does not match."""
    rep = check_gradient(grad_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_step_matches(step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike,
                        **kwargs: Any) -> Report:
    """:func:`check_step`, raising AssertionError with the report text when it does not match."""
    rep = check_step(step_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_trajectory_matches(their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike,
                              **kwargs: Any) -> Report:
    """:func:`compare_trajectory`, raising AssertionError with the report text when it does not match."""
    rep = compare_trajectory(their_checkpoints, fixture, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep
