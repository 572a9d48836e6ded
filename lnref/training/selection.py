"""Selection algorithms: training on chosen samples, through lnref's one training loop (SPEC.md section 9,
"Selection algorithms").

``Config.algorithm`` in :data:`lnref.config.SELECTION_ALGORITHMS` trains on a mask S of the samples.  A sample
outside S gets the label multiplier 0 in the engines' ``advance(k, mults)``, so it contributes g(0) * 0 = 0 to the
gradient; a mean over |S| instead of n is the step size eta n/|S| (:meth:`Engine.set_eta`).  The gradient stays in
the span of mu and the xi_i, so both engines run every algorithm exactly.

- 'select_retrain' (Han et al. 2025): train to ``select_at`` (T1 or a step), select S once (``select_rule``),
  then continue on S or re-initialise and train on S (``select_then``), mean over |S|.
- 'truncated_gce' (Zhang & Sabuncu 2018): GCE with the mask {i : sigmoid(y_obs_i f_i) > k}, refreshed every
  ``trunc_every`` steps from ``trunc_start``; pruned samples contribute 0, the mean stays over n.
- 'coteaching' (Han B. et al. 2018): two networks (the second initialised from stream 8), each updated on the
  int((1 - R(t)) n) samples of smallest loss of the OTHER, R(t) = forget_rate min(t / T_k, 1), mean over them.

:func:`lnref.training.run_loop` calls :meth:`SelectionAlgorithm.advance` for every chunk of steps (the per-step
hook); :func:`lnref.train` logs :meth:`SelectionAlgorithm.log` at every logged step and checkpoints
:meth:`SelectionAlgorithm.state`.  The small-loss ranking is the ranking of the margins y_obs f (every loss here
but ELR's is decreasing in the margin), largest first, ties broken by the sample index (a stable sort), so both
engines choose the same samples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..config import SELECTION_ALGORITHMS, Config, ConfigError
from ..kernels.losses import truncation_mask
from ..model.metrics import step_metrics

__all__ = ["SelectionAlgorithm", "make_algorithm", "second_network", "small_loss_mask", "precision_recall"]


def small_loss_mask(margin: np.ndarray, keep: int) -> np.ndarray:
    """The 0/1 mask (float64, (n,)) of the ``keep`` samples of smallest loss: largest margin first, ties broken by
    the sample index (stable sort)."""
    order = np.argsort(-np.asarray(margin, dtype=np.float64), kind="stable")
    mask = np.zeros(order.size)
    mask[order[: max(0, int(keep))]] = 1.0
    return mask


def precision_recall(mask: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(clean selected / selected, clean selected / clean) of a 0/1 mask; NaN where a count is 0."""
    sel = mask > 0.0
    tp = int((sel & clean).sum())
    k, c = int(sel.sum()), int(clean.sum())
    return (tp / k if k else math.nan), (tp / c if c else math.nan)


def second_network(cfg: Config, data, W0: np.ndarray | None):
    """Co-teaching's second network: (data, W0, b0) for :func:`lnref.engines.from_config`, from stream 8
    (``coteach_init``) of the data contract (:mod:`lnref.data`).

    Explicit sampling: W0_2 has the law of W0 (stream 1's draws: :func:`lnref.init_weights` on stream 8), then,
    with bias=True and init='torch', its biases (:func:`lnref.init_bias` on stream 8); the data are the same.
    Gram sampling (init='gaussian'): the second filters are N(0, sigma0^2 I_d), independent of the data, so their
    inner products with the training (and virtual test) vectors are those of coordinates ``sigma0 z`` on the
    data's orthonormal basis Q plus the e_1 term (the component outside span Q is orthogonal to every data
    vector): draws ``w1 = standard_normal(2m)``, then ``z = standard_normal((2m, r))``.  The data's G, c and
    ||xi_i||^2 are kept; P0, b0 (and the virtual test set's Pt, from the same test draws) are the second
    network's.
    """
    from ..data import init_bias, init_weights, stream
    from ..data.gram import GramData, GramStats, stats_from_coordinates, virtual_test

    rng = stream(cfg.seed, "coteach_init")
    if not isinstance(data, GramData):
        W2 = init_weights(cfg, rng)
        b2 = init_bias(cfg, rng)
        return data, W2, b2
    n, F = cfg.n, 2 * cfg.m
    e1 = np.array(data.e1, dtype=np.float64)
    coords = np.array(data.coords, dtype=np.float64)
    e1[n:] = cfg.sigma0 * rng.standard_normal(F)
    coords[n:] = cfg.sigma0 * rng.standard_normal((F, coords.shape[1]))
    st = stats_from_coordinates(coords, e1, n, data.mu_norm)
    s1 = data.stats
    stats = GramStats(mu_sq=s1.mu_sq, xi_sq=s1.xi_sq, G=s1.G, c=s1.c, P0=st.P0, b0=st.b0)
    test = None
    if data.test is not None:
        test = virtual_test(cfg, coords, e1, stats, data.y, kind=None)
    data2 = dataclasses.replace(
        data, stats=stats, test=test, coords=np.ascontiguousarray(coords), e1=np.ascontiguousarray(e1)
    )
    return data2, None, None


def _int(state: Any, key: str, default: int) -> int:
    """An integer of a selection state (stored as a one-element array: the checkpoint files keep no 0-d array)."""
    if key not in state:
        return default
    a = np.asarray(state[key]).reshape(-1)
    if a.size != 1 or a.dtype.kind not in "iu":
        raise ConfigError(f"the checkpoint's selection {key} must be one integer, got {a!r:.60}")
    return int(a[0])


class SelectionAlgorithm:
    """The per-step hook of one selection algorithm around an engine (base class; :func:`make_algorithm`).

    Attributes
    ----------
    mask : ndarray (n,) float64   1 for the samples the next step trains on, else 0 (network 1 for co-teaching)
    """

    columns: tuple[str, ...] = ("selected", "select_precision", "select_recall")

    def __init__(self, cfg: Config, engine):
        self.cfg = cfg
        self.engine = engine
        data = engine.data
        self.n = int(cfg.n)
        self.y_obs = np.ascontiguousarray(data.y_obs, dtype=np.float64)
        self.clean = np.asarray(data.clean, dtype=bool)
        self.mask = np.ones(self.n)

    # -- the hook
    def advance(self, t: int, k: int) -> tuple[int, int]:
        """Take up to k steps from step t; returns (steps attempted, steps taken): fewer taken than attempted
        means the next state would be non-finite (the run stops, keeping the last finite state)."""
        raise NotImplementedError

    def step_masked(self, k: int, mask: np.ndarray, mean_over_selected: bool, engine=None) -> int:
        """Take up to k steps of ``engine`` (default the run's) on the samples of ``mask``: mean over |S| when
        ``mean_over_selected``, else over n; the number of steps taken (fewer: the next state is non-finite).
        The oracle's fixture recorder wraps it to record each step's mask and step scale."""
        engine = self.engine if engine is None else engine
        size = int((mask > 0.0).sum())
        scale = self.n / size if (mean_over_selected and size > 0) else 1.0
        engine.set_eta(self.cfg.eta * scale if scale != 1.0 else self.cfg.eta)
        try:
            return engine.advance(k, (mask * self.y_obs).reshape(1, -1))
        finally:
            engine.set_eta(self.cfg.eta)

    # -- logging
    def trace_shapes(self, keep_rho: bool) -> dict[str, tuple[int, ...]]:
        return {"mask": (self.n,)}

    def log(self, step: int, f: np.ndarray, keep_rho: bool) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """History columns and trace rows of logged step ``step`` (outputs ``f`` of network 1)."""
        self.prepare(step, f)
        prec, rec = precision_recall(self.mask, self.clean)
        row = {"selected": float((self.mask > 0.0).sum()), "select_precision": prec, "select_recall": rec}
        return row, {"mask": self.mask.copy()}

    def prepare(self, step: int, f: np.ndarray) -> None:
        """Bring the mask to the one used by the step from ``step`` (outputs f of that state)."""

    # -- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        return {"mask": self.mask.copy()}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict) or "mask" not in state:
            raise ConfigError(
                f"the checkpoint holds no selection state; it was not made by an algorithm={self.cfg.algorithm!r} run"
            )
        mask = np.asarray(state["mask"], dtype=np.float64)
        if mask.shape != (self.n,) or not np.isin(mask, (0.0, 1.0)).all():
            raise ConfigError(f"the checkpoint's selection mask must be a 0/1 array of shape ({self.n},)")
        self.mask[...] = mask


class SelectRetrain(SelectionAlgorithm):
    """'select_retrain': one selection at ``select_at``, then GD on S (mean over |S|), continued or retrained."""

    columns = (*SelectionAlgorithm.columns, "select_step")

    def __init__(self, cfg: Config, engine):
        super().__init__(cfg, engine)
        self.select_step = -1
        self.restarted = False
        W = engine.weights().copy() if cfg.engine == "weights" else None
        self._init = (engine.gamma.copy(), engine.rho.copy(), engine.bias.copy(), W)

    def due(self, t: int, margin: np.ndarray) -> bool:
        """Whether S is selected at step t (margins y_obs f of that state)."""
        at = self.cfg.select_at
        if at == "T1":
            fit = margin > 0.0
            return bool(fit[self.clean].all() and not fit[~self.clean].any())
        return t == at

    def _select(self, t: int, margin: np.ndarray) -> None:
        if self.cfg.select_rule == "log2":
            self.mask = (margin > 0.0).astype(np.float64)  # l(margin) < log 2 iff margin > 0 (identity 7)
        else:
            self.mask = small_loss_mask(margin, int((1.0 - self.cfg.selection_rate) * self.n))
        self.select_step = int(t)

    def prepare(self, step: int, f: np.ndarray) -> None:
        if self.select_step < 0 and self.due(step, self.y_obs * f):
            self._select(step, self.y_obs * f)

    def advance(self, t: int, k: int) -> tuple[int, int]:
        if self.select_step < 0:
            at = self.cfg.select_at
            if at == "T1" or t == at:
                self.prepare(t, self.engine.forward())
            if self.select_step < 0:
                if at != "T1" and t > at:
                    raise ConfigError(
                        f"the run is at step {t}, past select_at={at}, without a selection: its "
                        "selection state was lost (resume from a checkpoint holding it)"
                    )
                k = 1 if at == "T1" else min(k, at - t)
                return k, self.engine.advance(k, None)
        if self.cfg.select_then == "retrain" and not self.restarted:
            g, r, b, W = self._init
            self.engine.load_state(g, r, b, W, step=t)
            self.restarted = True
        return k, self.step_masked(k, self.mask, True)

    def log(self, step, f, keep_rho):
        row, tr = super().log(step, f, keep_rho)
        if self.select_step < 0:
            row["select_precision"] = row["select_recall"] = math.nan
        row["select_step"] = float(self.select_step) if self.select_step >= 0 else math.nan
        return row, tr

    def state(self):
        out = super().state()
        out.update(select_step=np.array([self.select_step]), restarted=np.array([int(self.restarted)]))
        return out

    def restore(self, state):
        super().restore(state)
        self.select_step = _int(state, "select_step", -1)
        self.restarted = bool(_int(state, "restarted", 0))


class TruncatedGCE(SelectionAlgorithm):
    """'truncated_gce': GCE on {i : sigmoid(y_obs_i f_i) > k}, refreshed at trunc_start + j trunc_every."""

    def __init__(self, cfg: Config, engine):
        super().__init__(cfg, engine)
        self.refreshed = -1

    def due(self, t: int) -> bool:
        """Whether the mask is refreshed at step t."""
        c = self.cfg
        return t >= c.trunc_start and (t - c.trunc_start) % c.trunc_every == 0 and self.refreshed != t

    def _next(self, t: int) -> int:
        c = self.cfg
        if t < c.trunc_start:
            return c.trunc_start
        return t + c.trunc_every - (t - c.trunc_start) % c.trunc_every

    def prepare(self, step: int, f: np.ndarray) -> None:
        if self.due(step):
            truncation_mask(np.ascontiguousarray(self.y_obs * f), float(self.cfg.trunc_k), self.mask)
            self.refreshed = int(step)

    def advance(self, t: int, k: int) -> tuple[int, int]:
        if self.due(t):
            self.prepare(t, self.engine.forward())
        k = min(k, self._next(t) - t)
        if self.refreshed < 0:
            return k, self.engine.advance(k, None)
        return k, self.step_masked(k, self.mask, False)

    def state(self):
        out = super().state()
        out["refreshed"] = np.array([self.refreshed])
        return out

    def restore(self, state):
        super().restore(state)
        self.refreshed = _int(state, "refreshed", -1)


class CoTeaching(SelectionAlgorithm):
    """'coteaching': networks 1 (``engine``) and 2, each stepped on the other's small-loss samples."""

    columns = (*SelectionAlgorithm.columns, "forget_rate", "loss_2", "train_acc_2", "test_acc_2")

    def __init__(self, cfg: Config, engine):
        super().__init__(cfg, engine)
        from ..engines import from_config

        data2, W2, b2 = second_network(cfg, engine.data, getattr(engine, "W0", None))
        self.engine2 = from_config(cfg, data2, W2, b2)
        self.mask2 = np.ones(self.n)
        self.test2 = getattr(self.engine2.data, "test", None)

    def rate(self, t: int) -> float:
        """R(t) = forget_rate min(t / T_k, 1)."""
        return self.cfg.selection_rate * min(t / self.cfg.coteach_tk, 1.0)

    def update_masks(self, t: int, f1: np.ndarray, f2: np.ndarray) -> None:
        """Each network's mask for the step from t: the samples the other ranks among its smallest losses."""
        keep = int((1.0 - self.rate(t)) * self.n)  # the official code's int(remember_rate * len(loss))
        self.mask = small_loss_mask(self.y_obs * f2, keep)  # network 2 picks network 1's samples
        self.mask2 = small_loss_mask(self.y_obs * f1, keep)  # and network 1 network 2's

    def prepare(self, step, f):
        self.update_masks(step, f, self.engine2.forward())

    def advance(self, t: int, k: int) -> tuple[int, int]:
        e1, e2 = self.engine, self.engine2
        self.update_masks(t, np.array(e1.forward()), e2.forward())
        snap = (
            e1.gamma.copy(),
            e1.rho.copy(),
            e1.bias.copy(),
            e1.weights().copy() if self.cfg.engine == "weights" else None,
            e1.t,
            e1.target.copy(),
        )
        if self.step_masked(1, self.mask, True) < 1:
            return 1, 0
        if self.step_masked(1, self.mask2, True, e2) < 1:
            g, r, b, W, st, tg = snap
            e1.load_state(g, r, b, W, step=st, target=tg)
            return 1, 0
        return 1, 1

    def trace_shapes(self, keep_rho):
        m = self.cfg.m
        out = {"mask": (self.n,), "mask_2": (self.n,), "gamma_2": (2, m), "margin_2": (self.n,)}
        if keep_rho:
            out["rho_2"] = (2, m, self.n)
        if self.cfg.bias:
            out["bias_2"] = (2, m)
        return out

    def log(self, step, f, keep_rho):
        e2 = self.engine2
        f2 = np.array(e2.forward())
        self.update_masks(step, f, f2)
        prec, rec = precision_recall(self.mask, self.clean)
        margin2 = self.y_obs * f2
        m2 = step_metrics(f2, self.engine2.data.y, self.y_obs, e2.gamma, e2.rho, ("loss", "train_acc"))
        row = {
            "selected": float((self.mask > 0.0).sum()),
            "select_precision": prec,
            "select_recall": rec,
            "forget_rate": self.rate(step),
            "loss_2": m2["loss"],
            "train_acc_2": m2["train_acc"],
            "test_acc_2": math.nan,
        }
        if self.cfg.sampling == "gram" and self.cfg.virtual_test == "fresh":
            row["test_acc_2"] = e2.virtual_test_accuracy(step)
        elif self.test2 is not None:
            row["test_acc_2"] = e2.test_accuracy(self.test2)
        tr = {"mask": self.mask.copy(), "mask_2": self.mask2.copy(), "gamma_2": e2.gamma.copy(), "margin_2": margin2}
        if keep_rho:
            tr["rho_2"] = e2.rho.copy()
        if self.cfg.bias:
            tr["bias_2"] = e2.bias.copy()
        return row, tr

    def state(self):
        e2 = self.engine2
        out = {
            "mask": self.mask.copy(),
            "gamma_2": e2.gamma.copy(),
            "rho_2": e2.rho.copy(),
            "bias_2": e2.bias.copy(),
            "target_2": e2.target.copy(),
            "t_2": np.array([e2.t]),
        }
        if self.cfg.engine == "weights":
            out["W_2"] = e2.weights().copy()
        return out

    def restore(self, state):
        super().restore(state)
        e2 = self.engine2
        want = {"gamma_2": e2.gamma.shape, "rho_2": e2.rho.shape, "bias_2": e2.bias.shape, "target_2": e2.target.shape}
        if self.cfg.engine == "weights":
            want["W_2"] = e2.weights().shape
        for key, shape in want.items():
            a = state.get(key)
            if a is None or np.shape(a) != shape or not np.isfinite(a).all():
                raise ConfigError(
                    f"the checkpoint's {key} (co-teaching's second network) is missing or not a "
                    f"finite array of shape {shape}"
                )
        e2.load_state(
            state["gamma_2"],
            state["rho_2"],
            state["bias_2"],
            state.get("W_2"),
            step=_int(state, "t_2", 0),
            target=state["target_2"],
        )


_ALGORITHMS = {"select_retrain": SelectRetrain, "truncated_gce": TruncatedGCE, "coteaching": CoTeaching}
assert tuple(_ALGORITHMS) == SELECTION_ALGORITHMS


def make_algorithm(cfg: Config, engine) -> SelectionAlgorithm | None:
    """The hook of ``cfg.algorithm`` around ``engine`` (None for 'gd' and 'label_noise_gd')."""
    cls = _ALGORITHMS.get(cfg.algorithm)
    return None if cls is None else cls(cfg, engine)
