"""The core of the oracle's NumPy replay (SPEC.md sections 2-3): the problem (:class:`Problem`, co-teaching's
:class:`CoTeach`), sigma and sigma', the outputs and the gradient under a :class:`~lnref.oracle.replay_variant.Variant`,
step sizes and schedules, and one network's GD step (:class:`Stepper`).  :mod:`lnref.oracle.replay` runs them
(:func:`~lnref.oracle.replay.simulate`); part of the declared second implementation of the dynamics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .replay_losses import dloss
from .replay_variant import EXACT, Variant, base_variant

__all__ = [
    "Problem",
    "CoTeach",
    "Stepper",
    "sigma",
    "dsigma",
    "outputs",
    "gradient",
    "rounded",
    "SCHEDULES",
    "step_size",
    "initial_bias",
]


def sigma(z: np.ndarray, q: float) -> np.ndarray:
    """sigma(z) = max(0, z)^q (SPEC.md section 2)."""
    return np.maximum(z, 0) ** q if q != 1.0 else np.maximum(z, 0)


def dsigma(z: np.ndarray, q: float, at_zero: float = 0.0, clamp: bool = True) -> np.ndarray:
    """sigma'(z) = q max(0, z)^(q-1) for z > 0 and 0 for z <= 0 (SPEC.md section 2).

    ``at_zero`` is the value used where z == 0 exactly (q = 1 only; the mistake sigma'(0) = 1); ``clamp=False``
    is the mistake q z^(q-1) for every z (no clamp at 0, q > 1).
    """
    one = z.dtype.type(1)
    if not clamp and q != 1.0:
        return q * z ** (q - one)
    if q == 1.0:
        out = (z > 0).astype(z.dtype)
        if at_zero:
            out[z == 0] = at_zero
        return out
    return np.where(z > 0, q * np.maximum(z, 0) ** (q - one), z.dtype.type(0))


@dataclass(frozen=True, eq=False)
class CoTeach:
    """Co-teaching's second network and schedule (SPEC.md section 9): W0_2 (2, m, d), b0_2 (2, m) or None, the
    forget rate tau, T_k, and network 2's recorded masks ``mask_2`` (T + 1, n) (what lnref chose; the replay
    recomputes its own)."""

    W0_2: np.ndarray
    b0_2: np.ndarray | None
    tau: float
    tk: int
    mask_2: np.ndarray | None = None

    @classmethod
    def of(cls, fx) -> CoTeach | None:
        """The co-teaching part of a fixture (None for the other algorithms)."""
        if getattr(fx, "W0_2", None) is None:
            return None
        cfg = fx.config
        return cls(fx.W0_2, fx.b0_2, float(cfg.selection_rate), int(cfg.coteach_tk), fx.mask_2)


@dataclass(frozen=True, eq=False)
class Problem:
    """The inputs of a replay: data, W0, q, eta and the label-noise signs (None for plain GD).

    Selection algorithms (SPEC.md section 9): ``mask`` (T + 1, n) the 0/1 sample mask of every step t -> t + 1,
    ``scale`` (T + 1,) its step-size factor (n/|S| for a mean over |S|, else 1), ``reset`` the step whose update
    starts from W0 (and b0) again ('select_retrain' with select_then='retrain'; -1: none).

    Co-teaching: ``coteach`` (:class:`CoTeach`), the second network and the forget-rate schedule; :func:`simulate`
    then runs both networks and recomputes their masks (``mask`` and ``scale`` are the recorded ones of network 1,
    used by the one-step replays of the gradient and step checks, where the problem without ``coteach`` is used).
    """

    mu: np.ndarray
    xi: np.ndarray
    y: np.ndarray
    y_obs: np.ndarray
    W0: np.ndarray
    q: float
    eta: float
    eps: np.ndarray | None = None
    b0: np.ndarray | None = None
    base: Variant = EXACT
    T: int = 0
    mask: np.ndarray | None = None
    scale: np.ndarray | None = None
    reset: int = -1
    coteach: CoTeach | None = None

    @classmethod
    def of(cls, fx) -> Problem:
        """The problem of a :class:`lnref.oracle.fixtures.Fixture`, with the conventions its config carries.

        The conventions (``bias``, ``patch_reduce``, ``output_scale`` Config fields and a ``b0`` fixture array)
        are read when present; a config without them is the paper's convention (SPEC.md section 2).
        """
        d, cfg = fx.data, fx.config
        base = base_variant(cfg)
        b0 = getattr(fx, "b0", None)
        return cls(
            d.mu,
            d.xi,
            d.y,
            d.y_obs,
            fx.W0,
            float(cfg.q),
            float(cfg.eta),
            fx.eps,
            None if b0 is None else np.asarray(b0, dtype=np.float64),
            base,
            int(fx.total_steps),
            getattr(fx, "mask", None),
            getattr(fx, "step_scale", None),
            int(getattr(fx, "reset_step", -1)),
            CoTeach.of(fx),
        )

    def single(self) -> Problem:
        """The problem of network 1 alone, on its recorded masks (co-teaching's one-step replays)."""
        return self if self.coteach is None else replace(self, coteach=None)

    @property
    def m(self) -> int:
        return self.W0.shape[1]

    @property
    def n(self) -> int:
        return self.xi.shape[0]

    def labels(self, t: int, v: Variant = EXACT) -> np.ndarray:
        """The labels of the loss at step t -> t + 1 under ``v.eps_mode`` (y_obs for plain GD)."""
        y = self.y if v.label_source == "true" else self.y_obs
        if self.mask is not None and v.mask_mode == "exact":
            y = self.mask[t] * y  # a sample outside S gets the label multiplier 0 (SPEC.md section 9)
        if self.eps is None or v.eps_mode == "ignored":
            return y
        if v.eps_mode == "exact":
            e = self.eps[t]
        elif v.eps_mode == "frozen":
            e = self.eps[0]
        elif v.eps_mode == "shifted":
            e = self.eps[min(t + 1, self.eps.shape[0] - 1)]
        elif v.eps_mode == "accumulated":
            e = np.prod(self.eps[: t + 1], axis=0)
        else:
            raise ValueError(f"eps_mode={v.eps_mode!r}")
        return e * y

    def step_scale(self, t: int, v: Variant = EXACT) -> float:
        """The step-size factor of step t -> t + 1 under ``v``: scale[t] (n/|S| for a mean over |S|) for a
        selection algorithm, 1 otherwise (and under the mistakes mask_mode='ignored', select_mean='n')."""
        if self.scale is None or v.mask_mode != "exact" or v.select_mean != "selected":
            return 1.0
        return float(self.scale[t])


def _parts(W, b, P: Problem, v: Variant, dt):
    """Inner products and the per-patch vectors: (Zs, Zn, ys, yn), Z* of shape (2, m, n)."""
    m, d = W.shape[1], W.shape[2]
    ys = {"observed": P.y_obs, "01": (P.y + 1) * 0.5}.get(v.signal_label, P.y).astype(dt)
    yn = P.y.astype(dt) if v.noise_times_y else np.ones(P.n, dt)
    Wf = W.reshape(2 * m, d)
    Zs = ((Wf @ P.mu.astype(dt))[:, None] * ys[None, :]).reshape(2, m, P.n)
    Zn = ((Wf @ P.xi.astype(dt).T) * yn[None, :]).reshape(2, m, P.n)
    if b is not None:
        Zs = Zs + b[:, :, None]
        Zn = Zn + b[:, :, None]
    return Zs, Zn, ys, yn


def _scale(P: Problem, v: Variant, dt) -> float:
    os_ = 1.0 / P.m if v.output_scale is None else v.output_scale
    return dt(os_ * (0.5 if v.patch_reduce == "mean" else 1.0) * v.output_factor)


def outputs(W: np.ndarray, P: Problem, v: Variant = EXACT, b: np.ndarray | None = None) -> np.ndarray:
    """f(W, x_i) for every training sample under ``v`` (SPEC.md section 2), shape (n,)."""
    dt = W.dtype.type
    Zs, Zn, _, _ = _parts(W, b, P, v, dt)
    F = (sigma(Zs, P.q) + sigma(Zn, P.q)).sum(axis=1) * _scale(P, v, dt)
    return dt(v.orientation) * (F[0] - F[1])


def rounded(P: Problem, v: Variant, W: np.ndarray | None = None, b: np.ndarray | None = None):
    """(P, W, b) with the inputs ``v.round_inputs`` names rounded through float32 (kept float64)."""

    def r(a):
        return None if a is None else np.asarray(a).astype(np.float32).astype(np.asarray(a).dtype)

    if v.round_inputs in ("all", "data"):
        P = replace(P, mu=r(P.mu), xi=r(P.xi))
    if v.round_inputs in ("all", "weights"):
        P = replace(P, W0=r(P.W0), b0=r(P.b0))
        W, b = r(W), r(b)
    return P, W, b


def gradient(
    W: np.ndarray,
    P: Problem,
    labels: np.ndarray,
    v: Variant = EXACT,
    b: np.ndarray | None = None,
    target: np.ndarray | None = None,
    fresh: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The gradient of the loss with ``labels`` at W (and at the bias b) under ``v``: ((2, m, d), (2, m) or None).

    Exact (``v = Variant()``): SPEC.md section 3, grad_{w_jr} L = (1/(n m)) sum_i l'_i s_j y_obs_i [...].
    A training method (section 9) puts its g(z_i) in place of l'_i; ELR's ``target`` (2, n) are the targets the
    loss uses (after this step's update, if any; ``fresh``: this step updated them).
    """
    if v.round_inputs:
        P, W, b = rounded(P, v, W, b)
    dt = W.dtype.type
    lab = labels.astype(dt)
    Zs, Zn, ys, yn = _parts(W, b, P, v, dt)
    c = _scale(P, v, dt)
    F = (sigma(Zs, P.q) + sigma(Zn, P.q)).sum(axis=1) * c
    f = dt(v.orientation) * (F[0] - F[1])
    g = dloss(f, lab, v, target, fresh)
    if v.loss_reduce == "mean":
        g = g / dt(P.n)
    Ds = dsigma(Zs, P.q, v.dsigma_at_zero, v.dsigma_clamp)
    Dn = dsigma(Zn, P.q, v.dsigma_at_zero, v.dsigma_clamp)
    s = np.array([1.0, -1.0], dtype=dt)[:, None, None] * (dt(v.orientation) * c)
    m, d = W.shape[1], W.shape[2]
    if v.detach == "signal":
        Ds = np.zeros_like(Ds)
    elif v.detach == "noise":
        Dn = np.zeros_like(Dn)
    sig = ((Ds * (g * ys)).sum(axis=2))[:, :, None] * P.mu.astype(dt)
    noi = ((Dn * (g * yn)).reshape(2 * m, P.n) @ P.xi.astype(dt)).reshape(2, m, d)
    G = s * (sig + noi)
    Gb = None
    if b is not None:
        Gb = s[:, :, 0] * (Ds * g).sum(axis=2) + s[:, :, 0] * (Dn * g).sum(axis=2)
    if v.grad_scale != 1.0:
        G = G * dt(v.grad_scale)
        Gb = None if Gb is None else Gb * dt(v.grad_scale)
    if v.grad_j_swapped:
        G = G[::-1].copy()
        Gb = None if Gb is None else Gb[::-1].copy()
    return G, Gb


#: eta_t / eta of each learning-rate schedule a Variant can name: ``fn(t, v, P) -> factor``
SCHEDULES: dict[str, Callable[[int, Variant, Problem], float]] = {
    "constant": lambda t, v, P: 1.0,
    "exp": lambda t, v, P: v.gamma**t,  # ExponentialLR(gamma)
    "exp_shifted": lambda t, v, P: v.gamma ** (t + 1),  # scheduler.step() before optimizer.step()
    "invsqrt": lambda t, v, P: 1.0 / np.sqrt(1.0 + t),
    "cosine": lambda t, v, P: 0.5 * (1.0 + np.cos(np.pi * t / max(P.T, 1))),  # CosineAnnealingLR(T_max=T)
    "linear_warmup": lambda t, v, P: 1.0 / 3.0 + (2.0 / 3.0) * min(t, 5) / 5.0,  # LinearLR() defaults
}


def step_size(P: Problem, v: Variant, t: int, c: float | None = None) -> float:
    """eta_t of step t -> t + 1 under ``v`` (the schedule :data:`SCHEDULES` [v.schedule] times eta x eta_scale, times
    a selection algorithm's scale[t], or ``c`` when given: co-teaching's factor of the replay's own masks)."""
    eta = P.eta * v.eta_scale
    c = P.step_scale(t, v) if c is None else c
    if c != 1.0:
        eta = eta * c  # lnref's engines take eta n/|S| for a mean over |S| (SPEC.md section 9)
    if v.schedule == "constant":
        return eta
    return eta * SCHEDULES[v.schedule](t, v, P)


def initial_bias(P: Problem, v: Variant, dt, b0: np.ndarray | None) -> np.ndarray | None:
    """The biases a replay under ``v`` starts from: None without ``v.bias``; ``b0`` when given; the problem's
    ``b0`` array (unless ``v.b0`` sets another constant); else ``v.b0`` everywhere."""
    if not v.bias:
        return None
    if b0 is not None:
        return np.array(b0, dtype=dt).reshape(2, P.m)
    if P.b0 is not None and v.b0 == 0.0:
        return np.array(P.b0, dtype=dt).reshape(2, P.m)
    return np.full((2, P.m), v.b0, dtype=dt)


class Stepper:
    """One network of a replay: its weights W, biases b (None without), optimiser state and ELR targets, and
    :meth:`step`, one GD step under ``v`` (the optimiser mistakes of the catalogue act here)."""

    def __init__(self, P: Problem, v: Variant, dt, W0: np.ndarray, b0: np.ndarray | None = None):
        self.P, self.v, self.dt = P, v, dt
        self.W = np.array(W0, dtype=dt)
        self.b = initial_bias(P, v, dt, b0)
        self.buf = self.bufb = None
        self.tgt: np.ndarray | None = None

    def state(self, with_bias: bool):
        W, b = self.W.copy(), None if self.b is None else self.b.copy()
        return (W, b) if with_bias else W

    def nan_state(self, with_bias: bool):
        nan = np.full_like(self.W, np.nan)
        return (nan, None if self.b is None else np.full_like(self.b, np.nan)) if with_bias else nan

    def step(self, lab: np.ndarray, eta, use=None, fresh: bool = False) -> bool:
        """W <- W - eta G (and b) with the labels ``lab``; False when the new state is not finite."""
        P, v, dt, W, b = self.P, self.v, self.dt, self.W, self.b
        G, Gb = gradient(W, P, lab, v, b, use, fresh)
        if v.sequential_j:
            W1 = W.copy()
            W1[0] = W[0] - eta * G[0]
            G2, Gb2 = gradient(W1, P, lab, v, b, use, fresh)
            G = np.stack([G[0], G2[1]])
            if Gb is not None:
                Gb = np.stack([Gb[0], Gb2[1]])
        if v.clip_norm:
            norm = np.sqrt(np.sum(G * G) + (0.0 if Gb is None else np.sum(Gb * Gb)))
            coef = dt(v.clip_norm) / (norm + dt(1e-6))
            if coef < 1:
                G = G * coef
                Gb = None if Gb is None else Gb * coef
        if v.weight_decay:
            G = G + dt(v.weight_decay) * W
            if Gb is not None:
                Gb = Gb + dt(v.weight_decay) * b
        if v.momentum:
            self.buf = G if self.buf is None else dt(v.momentum) * self.buf + G
            G = self.buf
            if Gb is not None:
                self.bufb = Gb if self.bufb is None else dt(v.momentum) * self.bufb + Gb
                Gb = self.bufb
        self.W = W - eta * G
        if b is not None and v.bias_trained:
            self.b = b - eta * Gb
        return bool(np.all(np.isfinite(self.W)) and (self.b is None or np.all(np.isfinite(self.b))))
