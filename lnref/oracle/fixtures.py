"""Making fixtures: :func:`make_fixture` runs lnref's training loop with the weight engine and records the
checkpoints (and a selection algorithm's masks), :func:`measure_spread` measures the trajectory's sensitivity.

The file format and its arrays are described in :mod:`lnref.oracle.fixture_file` (:func:`save_fixture`,
:func:`load_fixture`); the record itself is :class:`lnref.oracle.fixture_data.Fixture`.  Every public name of
those two modules is importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset, init_bias, init_weights, label_noise_signs, make_data, stream
from ..model import check_weights, gradients, loss
from .fixture_data import COTEACHING_LOSS_REFUSED, FIXTURE_SELECTION, SECOND_NETWORK, Fixture, FixtureError
from .fixture_file import (
    FIXTURE_KIND,
    FIXTURE_SCHEMA,
    READABLE_SCHEMAS,
    array_sha,
    check_out_path,
    check_regular_file,
    load_fixture,
    meta_sha,
    read_npz,
    save_fixture,
)
from .replay import CoTeach, Problem, simulate
from .tolerances import PERTURBATION

__all__ = [
    "Fixture",
    "FixtureError",
    "make_fixture",
    "save_fixture",
    "load_fixture",
    "FIXTURE_KIND",
    "FIXTURE_SCHEMA",
    "FIXTURE_SELECTION",
    "READABLE_SCHEMAS",
    "parse_checkpoints",
    "exercise_w0",
    "measure_spread",
    "check_regular_file",
    "check_out_path",
    "read_npz",
    "array_sha",
    "meta_sha",
    "bias_scale",
    "COTEACHING_LOSS_REFUSED",
    "SECOND_NETWORK",
]


def parse_checkpoints(text: str | Iterable[int], steps: int) -> np.ndarray:
    """Checkpoint steps from "0,1,10,100" (or a sequence); ``steps`` (T) is always included.

    Raises ConfigError for non-integers, negatives or values above T.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"checkpoints={text!r} is not allowed: give comma-separated integers such as 0,1,10,100"
            ) from None
    else:
        vals = [int(v) for v in text]
    bad = [v for v in vals if v < 0 or v > steps]
    if bad:
        raise ConfigError(f"checkpoints {bad} are not allowed: every checkpoint must be in [0, steps={steps}]")
    return np.array(sorted(set(vals) | {steps}), dtype=np.int64)


def exercise_w0(W0: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, str | None]:
    """W0 with the signal coordinate of the last filter of each class zeroed (when mu lies along one axis).

    Every inner product of those filters with a signal patch y_i mu is then exactly 0, so sigma'(0) is exercised
    (SPEC.md section 2).  Returns (W0, description of the edit or None when mu is not axis-aligned).  With biases
    the caller also zeroes those filters' b0 (:func:`make_fixture`).
    """
    nz = np.flatnonzero(mu)
    if nz.size != 1:
        return W0, None
    W0 = W0.copy()
    W0[:, -1, nz[0]] = 0.0
    return W0, (
        f"W0[:, {W0.shape[1] - 1}, {int(nz[0])}] = 0: the last filter of each class is orthogonal to mu, "
        "so its signal inner products are exactly 0 (sigma'(0) is exercised)"
    )


def measure_spread(
    problem: Problem, steps: Sequence[int], reference: np.ndarray, reference_b: np.ndarray | None = None
) -> np.ndarray:
    """Relative distances (K, 3) to ``reference`` (K, 2, m, d) at ``steps``: NumPy float64 replay, rerun from W0
    perturbed by 4 ulps (relative), float32 replay (see :mod:`lnref.oracle.tolerances`).

    Co-teaching (``problem.coteach``): ``reference`` (K, 4, m, d) and ``reference_b`` (K, 4, m) are both networks
    stacked, as the replay gives them, and both W0 are perturbed.  With biases (``reference_b`` (K, 2, m)) each
    entry is the larger of the W distance and the b distance
    (max|db| / the largest |b| over the checkpoints, the scale the comparisons use), so the bounds cover both.
    """
    steps = [int(t) for t in steps]
    rng = np.random.default_rng(12345)
    W0 = problem.W0 if problem.coteach is None else np.concatenate([problem.W0, problem.coteach.W0_2])
    W0p = W0 * (1.0 + PERTURBATION * rng.choice([-1.0, 1.0], W0.shape))
    v = problem.base
    runs = (
        simulate(problem, steps, v, with_bias=True),
        simulate(problem, steps, v, W0=W0p, with_bias=True),
        simulate(problem, steps, v, dtype=np.float32, with_bias=True),
    )
    bscale = bias_scale(reference_b) if reference_b is not None else 1.0
    out = np.empty((len(steps), 3))

    def dist(a, ref, scale):
        diff = np.abs(a.astype(np.float64) - ref)
        return float(np.max(diff)) / scale if np.all(np.isfinite(diff)) else np.inf

    for k, t in enumerate(steps):
        scale = float(np.max(np.abs(reference[k]))) or 1.0
        for c, run in enumerate(runs):
            W, b = run[t]
            out[k, c] = dist(W, reference[k], scale)
            if reference_b is not None and b is not None:
                out[k, c] = max(out[k, c], dist(b, reference_b[k], bscale))
    return np.minimum(out, 1e300)


def bias_scale(b: np.ndarray, b0: np.ndarray | None = None) -> float:
    """The scale biases are compared at: the largest |b| over the checkpoints (and b0), or 1 when all are 0."""
    s = float(np.max(np.abs(b))) if np.size(b) else 0.0
    if b0 is not None:
        s = max(s, float(np.max(np.abs(b0))))
    return s or 1.0


def make_fixture(
    cfg: Config,
    checkpoints: Sequence[int] | str | None = None,
    *,
    data: Dataset | None = None,
    W0: np.ndarray | None = None,
    b0: np.ndarray | None = None,
    exercise: bool = False,
    measure: bool = True,
) -> Fixture:
    """Run GD with the weight engine for ``cfg.steps`` steps and record the checkpoints.

    Parameters
    ----------
    cfg : Config
        The run; the fixture always uses the weight engine with explicit data.
    checkpoints : sequence of int or "0,1,10", optional
        Steps to record (``cfg.steps`` is always added); default 0, 1 and ``cfg.steps``.
    data : Dataset, optional
        Training data (default ``make_data(cfg)``, without its test set).
    W0 : array (2, m, d), optional
        Initial weights (default ``init_weights(cfg)``).
    b0 : array (2, m), optional
        Initial biases (default ``init_bias(cfg)``); only with ``cfg.bias`` (SPEC.md section 7).
    exercise : bool
        Zero the signal coordinate of the last filter of each class in W0 (:func:`exercise_w0`; ``lnref export``
        does), so sigma'(0) is exercised; with biases those filters' b0 are zeroed too.
    measure : bool
        Measure the trajectory's sensitivity (:func:`measure_spread`) and store it as ``spread``.

    Returns
    -------
    Fixture

    Raises
    ------
    FloatingPointError
        When GD diverges before the last checkpoint.

    Notes
    -----
    GD and label-noise GD of SPEC.md section 3, coefficients of section 4 (the recursions, as in ``lnref.train``),
    for the network of the config's conventions (SPEC.md section 7: bias, patch_reduce, output_scale).  The
    label-noise signs come from stream 4 of the data contract, so the trajectory equals ``lnref.train(cfg)`` (with
    the same W0 and b0).
    """
    from ..engines import from_config
    from ..training import run_loop

    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    if cfg.algorithm == "coteaching" and cfg.loss != "logistic":
        raise ConfigError(COTEACHING_LOSS_REFUSED.format(loss=cfg.loss))
    if cfg.algorithm in FIXTURE_SELECTION and cfg.loss == "elr":
        raise ConfigError(
            f"algorithm={cfg.algorithm!r} with loss='elr' is not allowed in a fixture yet: ELR's "
            "targets under a sample mask are not replayed; export another loss with it, or ELR with "
            "algorithm 'gd' or 'label_noise_gd'"
        )
    # fixtures are explicit weight-engine runs; a virtual test set (Gram sampling's) does not apply to them
    cfg = cfg.replace(engine="weights", sampling="explicit", virtual_test="fixed")
    T = cfg.steps
    if checkpoints is None:
        checkpoints = [c for c in (0, 1) if c <= T]
    ck = parse_checkpoints(checkpoints, T)
    if data is None:
        data = make_data(cfg.replace(n_test=0))
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an lnref.Dataset, got {type(data).__name__}")
    data.check_for(cfg)
    data = Dataset(data.mu, data.xi, data.y, data.y_obs)
    W0 = check_weights(init_weights(cfg) if W0 is None else W0, d=cfg.d, m=cfg.m, name="W0").copy()
    if b0 is not None and not cfg.bias:
        raise ConfigError("b0 was given but the config has bias=False: set bias=True to train biases, or leave b0 out")
    if cfg.bias:
        from ..engines.base import check_bias

        b0 = check_bias(init_bias(cfg) if b0 is None else b0, cfg.m).copy()
    edit = None
    if exercise:
        W0, edit = exercise_w0(W0, data.mu)
        if edit is not None and b0 is not None:
            b0[:, -1] = 0.0
            edit += f"; b0[:, {cfg.m - 1}] = 0, so those signal pre-activations are exactly 0 at step 0"
    eps = None
    lnoise = None
    if cfg.algorithm == "label_noise_gd":
        eps = label_noise_signs(stream(cfg.seed, "label_noise"), (T + 1, cfg.n), cfg.p)
        lnoise = stream(cfg.seed, "label_noise")  # the loop draws the same signs, chunk by chunk
    engine = from_config(cfg, data, W0, b0)
    algo = rec = None
    if cfg.algorithm in FIXTURE_SELECTION:
        algo, rec = _recording_algorithm(cfg, engine)
    K = ck.size
    # co-teaching's second network (stream 8, made by the algorithm as lnref.train makes it): its arrays by name
    two = cfg.algorithm == "coteaching"
    net2: dict[str, np.ndarray] = {}
    if two:
        e2 = algo.engine2
        net2["W0_2"] = e2.weights().copy()
        net2.update(W_2=np.empty((K, 2, cfg.m, cfg.d)), gamma_2=np.empty((K, 2, cfg.m)), loss_2=np.empty(K))
        net2.update(rho_2=np.empty((K, 2, cfg.m, cfg.n)), grad_2=np.empty((K, 2, cfg.m, cfg.d)))
        if cfg.bias:
            net2.update(b0_2=e2.bias.copy(), b_2=np.empty((K, 2, cfg.m)), grad_b_2=np.empty((K, 2, cfg.m)))
    Ws = np.empty((K, 2, cfg.m, cfg.d))
    grads = np.empty_like(Ws)
    bs = np.empty((K, 2, cfg.m)) if cfg.bias else None
    gbs = np.empty((K, 2, cfg.m)) if cfg.bias else None
    conv = {"output_scale": cfg.output_scale, "patch_reduce": cfg.patch_reduce}
    gammas = np.empty((K, 2, cfg.m))
    rhos = np.empty((K, 2, cfg.m, cfg.n))
    losses = np.empty(K)
    method = cfg.loss != "logistic"
    mlosses = np.empty(K) if method else None
    targets = np.empty((K, 2, cfg.n)) if cfg.loss == "elr" else None
    logged: list[int] = []

    def log_row(t: int, f: np.ndarray, final: bool) -> None:
        k = len(logged)
        if k >= K or t != int(ck[k]):
            return  # the step a diverged run stopped at (reported below)
        W = engine.weights().copy()
        b = engine.bias.copy() if cfg.bias else None
        Ws[k] = W
        gammas[k] = engine.gamma
        rhos[k] = engine.rho
        losses[k] = loss(W, data, cfg.q, b=b, **conv)
        mkw = {}
        if method:
            mkw = {"loss": cfg.loss, "loss_params": dict(cfg.loss_params)}
            if targets is not None:  # the state of step t: targets before its update (SPEC.md section 9)
                targets[k] = engine.target
                mkw.update(target=engine.target.copy(), target_update=t % int(cfg.loss_params["period"]) == 0)
            mlosses[k] = loss(W, data, cfg.q, b=b, **conv, **mkw)  # observed labels, as history["method_loss"]
        grads[k], gb = gradients(W, data, cfg.q, None if eps is None else eps[t], b=b, **conv, **mkw)
        if cfg.bias:
            bs[k], gbs[k] = b, gb
        if two:
            e2 = algo.engine2
            net2["W_2"][k], net2["gamma_2"][k], net2["rho_2"][k] = e2.weights(), e2.gamma, e2.rho
            b2 = e2.bias.copy() if cfg.bias else None
            if cfg.bias:
                net2["b_2"][k] = b2
            net2["loss_2"][k] = loss(net2["W_2"][k], data, cfg.q, b=b2, **conv)
        logged.append(t)

    # the training loop of lnref.train (SPEC.md section 3), logging at the checkpoints
    t, _diverged, _ = run_loop(engine, cfg, ck, 0, data.y_obs, lnoise, log_row, algo=algo)
    if len(logged) < K:
        nxt = int(ck[len(logged)])
        raise FloatingPointError(
            f"GD diverged at step {t} before checkpoint {nxt}: the weights or outputs became "
            f"non-finite (try a smaller eta, now {cfg.eta})"
        )
    mask = scale = None
    reset = -1
    if rec is not None:
        mask, scale, reset = rec.finish(T)
        # each checkpoint's gradient is that of its step's objective: the masked mean over n times step_scale[t], at
        # the state the step starts from (W0 and b0 at the reset of select_then='retrain')
        for k, t_k in enumerate(ck):
            t_k = int(t_k)
            W = W0 if t_k == reset else Ws[k]
            b = (b0 if t_k == reset else bs[k]) if cfg.bias else None
            mkw = {"loss": cfg.loss, "loss_params": dict(cfg.loss_params)} if method else {}
            G, gb = gradients(W, data, cfg.q, None, b=b, **conv, **mkw, mask=mask[t_k])
            grads[k] = G * scale[t_k] if scale[t_k] != 1.0 else G
            if cfg.bias:
                gbs[k] = gb * scale[t_k] if scale[t_k] != 1.0 else gb
            if two:  # network 2's step: its own mask (chosen by network 1), the same factor n/|S|
                b2 = net2["b_2"][k] if cfg.bias else None
                G, gb = gradients(net2["W_2"][k], data, cfg.q, None, b=b2, **conv, mask=rec.mask2[t_k])
                net2["grad_2"][k] = G * scale[t_k] if scale[t_k] != 1.0 else G
                if cfg.bias:
                    net2["grad_b_2"][k] = gb * scale[t_k] if scale[t_k] != 1.0 else gb
        if two:
            net2["mask_2"] = rec.mask2
    meta = {
        "kind": FIXTURE_KIND,
        "fixture_schema": FIXTURE_SCHEMA,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "total_steps": T,
        "producer": "lnref weight engine",
        "w0_edit": edit,
    }
    spread = None
    if measure:
        from .replay import base_variant

        base = base_variant(cfg)
        ct = None
        if two:
            ct = CoTeach(net2["W0_2"], net2.get("b0_2"), float(cfg.selection_rate), int(cfg.coteach_tk), rec.mask2)
        P = Problem(data.mu, data.xi, data.y, data.y_obs, W0, cfg.q, cfg.eta, eps, b0, base, T, mask, scale, reset, ct)
        if two:  # both networks' trajectories, stacked (4, m, d) as the replay gives them
            spread = measure_spread(
                P,
                ck,
                np.concatenate([Ws, net2["W_2"]], axis=1),
                None if bs is None else np.concatenate([bs, net2["b_2"]], axis=1),
            )
        else:
            spread = measure_spread(P, ck, Ws, bs)
    return Fixture(
        cfg,
        data,
        W0,
        ck,
        Ws,
        gammas,
        rhos,
        losses,
        grads,
        eps,
        spread,
        meta,
        b0,
        bs,
        gbs,
        mlosses,
        targets,
        mask,
        scale,
        reset,
        **net2,
    )


class _Recorder:
    """The mask, step-size factor and reset of every step a selection algorithm takes (wrapped around its hook,
    which keeps deciding everything: the fixture records, never recomputes, lnref's choices)."""

    def __init__(self, cfg: Config, algo) -> None:
        self.cfg, self.algo = cfg, algo
        self.mask = np.ones((cfg.steps + 1, cfg.n))
        self.scale = np.ones(cfg.steps + 1)
        self.reset = -1
        self.last: tuple[np.ndarray, float] | None = None
        self.mask2 = np.ones((cfg.steps + 1, cfg.n))  # co-teaching: network 2's mask
        self.last2: np.ndarray | None = None

    def finish(self, T: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Fill row T with what the step from T would use (as the hook decides it at T) and return the arrays."""
        a, cfg = self.algo, self.cfg
        f = a.engine.forward()
        if cfg.algorithm == "coteaching":
            a.update_masks(T, np.array(f), a.engine2.forward())
            self.mask[T], self.mask2[T] = a.mask, a.mask2
            size = int((a.mask > 0.0).sum())
            self.scale[T] = a.n / size if size > 0 else 1.0
        elif cfg.algorithm == "truncated_gce":
            if a.due(T):
                a.prepare(T, f)
            if a.refreshed >= 0:
                self.mask[T] = a.mask
        else:
            if a.select_step < 0 and (cfg.select_at == "T1" or cfg.select_at == T):
                a.prepare(T, f)
            if a.select_step >= 0:
                self.mask[T] = a.mask
                size = int((a.mask > 0.0).sum())
                self.scale[T] = a.n / size if size > 0 else 1.0
                if cfg.select_then == "retrain" and not a.restarted:
                    self.reset = T
        return self.mask, self.scale, self.reset


def _recording_algorithm(cfg: Config, engine):
    """The selection hook of ``cfg`` around ``engine`` (as lnref.train makes it) and its :class:`_Recorder`."""
    from ..training.selection import make_algorithm

    algo = make_algorithm(cfg, engine)
    rec = _Recorder(cfg, algo)
    step_masked, advance = algo.step_masked, algo.advance

    def recorded_step_masked(k, mask, mean_over_selected, engine=None):
        if engine is not None:  # co-teaching's second network
            rec.last2 = mask.copy()
            return step_masked(k, mask, mean_over_selected, engine)
        size = int((mask > 0.0).sum())
        rec.last = (mask.copy(), algo.n / size if (mean_over_selected and size > 0) else 1.0)
        return step_masked(k, mask, mean_over_selected, engine)

    def recorded_advance(t, k):
        rec.last = rec.last2 = None
        restarted = bool(getattr(algo, "restarted", False))
        tried, taken = advance(t, k)
        if rec.last is not None:
            rec.mask[t : t + tried], rec.scale[t : t + tried] = rec.last
        if rec.last2 is not None:
            rec.mask2[t : t + tried] = rec.last2
        if not restarted and getattr(algo, "restarted", False):
            rec.reset = int(t)
        return tried, taken

    algo.step_masked, algo.advance = recorded_step_masked, recorded_advance
    return algo, rec
