"""`lnref.train`: run (label-noise) GD with an engine and log the history (SPEC.md sections 3-4)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from .._lazy import submodule_getattr
from ..config import SELECTION_ALGORITHMS, Config, ConfigError
from ..data import TestSet, label_noise_signs, stream
from ..model.metrics import HISTORY_COLUMNS, METHOD_COLUMNS, method_mean_loss, sample_losses, step_metrics
from . import placement as _placement
from . import threads as _threads
from .state import STATE_KEYS, check_train_options, make_state, restore_state, short_repr

__all__ = [
    "Result",
    "DivergedError",
    "train",
    "num_threads",
    "run_loop",
    "advance_to",
    "ADVANCE_CHUNK",
    "check_train_options",
    "STATE_KEYS",
    "short_repr",
]

#: GD steps per engine.advance call (bounds the memory of the label-noise eps draws; the sweep worker's compiled run
#: takes the same chunks)
ADVANCE_CHUNK = 1024


class DivergedError(FloatingPointError):
    """GD produced a non-finite loss, output or weight.  ``.result`` holds everything computed until then."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


@dataclass
class Result:
    """What :func:`lnref.train` returns.

    Attributes
    ----------
    config : Config
    W : ndarray (2, m, d) or None    final weights (None when the engine has no explicit weights)
    W0 : ndarray (2, m, d) or None   initial weights
    b : ndarray (2, m) or None       final biases (None unless ``config.bias``; SPEC.md section 7)
    b0 : ndarray (2, m) or None      initial biases (None unless ``config.bias``)
    gamma : ndarray (2, m)           final signal coefficients (SPEC.md section 4)
    rho : ndarray (2, m, n)          final noise coefficients
    history : dict[str, ndarray]     one 1-D array per metric, aligned with ``history["step"]``
                                     (column meanings: :data:`lnref.model.metrics.HISTORY_COLUMNS`)
    trace : dict[str, ndarray]       per logged step: ``gamma`` (L, 2, m), ``rho`` (L, 2, m, n) (unless
                                     ``keep_rho=False``), ``margin`` (L, n) = y_obs * f
    data : Dataset or None
    steps_done : int                 GD steps actually taken
    diverged : bool
    timings : dict[str, float]       seconds: ``setup``, ``train`` (all steps), ``logging``
    threads : int                    numba threads used
    """

    config: Config
    W: np.ndarray | None
    W0: np.ndarray | None
    gamma: np.ndarray
    rho: np.ndarray
    history: dict[str, np.ndarray]
    trace: dict[str, np.ndarray]
    data: Any
    steps_done: int
    diverged: bool = False
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    threads: int = 1
    b: np.ndarray | None = None
    b0: np.ndarray | None = None

    @property
    def clean(self) -> np.ndarray:
        """The mask (n,) of clean samples (y_obs == y) of the run's data."""
        return self.data.clean

    def __repr__(self) -> str:
        cfg = self.config
        h = self.history
        last = {k: float(h[k][-1]) for k in ("loss", "train_acc", "test_acc") if k in h and len(h[k])}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items())
        state = f"diverged at step {self.steps_done}" if self.diverged else f"{self.steps_done} steps"
        return (
            f"<lnref.Result {state} of {cfg.algorithm} (engine={cfg.engine!r}, n={cfg.n}, d={cfg.d}, m={cfg.m}, "
            f"q={cfg.q:g}); {len(h.get('step', ()))} logged rows; final {shown}>"
        )


@contextlib.contextmanager
def num_threads(
    threads: int | None, work: float | None = None, regions: float = 1.0, engine: str = "weights"
) -> Iterator[int]:
    """Run numba kernels with ``threads`` threads, restoring the previous setting.

    None: :func:`lnref.training.threads.default_threads` for ``work`` multiply-adds per step of ``engine`` in
    ``regions`` parallel regions, from the machine's state now (one thread for small problems or a busy machine; see
    lnref.training.threads; ``LNREF_THREADS`` overrides).  Two or more threads run each on its own CPU while the
    block runs, on a quiet Linux machine (:func:`lnref.training.placement.spread`)."""
    old = numba.get_num_threads()
    threads = _threads.resolve(threads, work, regions, engine)
    numba.set_num_threads(threads)
    try:
        with _placement.spread(threads):
            yield int(threads)
    finally:
        numba.set_num_threads(old)


def advance_to(
    engine, t: int, target: int, lnoise: np.random.Generator | None, p: float, y_obs: np.ndarray, algo=None
) -> tuple[int, bool]:
    """Advance ``engine`` from step t to ``target`` in chunks of at most ADVANCE_CHUNK steps; return (step, diverged).

    Label-noise GD (``lnoise`` not None) draws eps for each chunk as one (k, n) block of stream 4, the same
    numbers as one draw per step.  A selection algorithm (``algo``, :mod:`lnref.training.selection`) is the per-step
    hook: ``algo.advance(t, k)`` takes up to k steps (fewer when its masks change sooner) and returns
    (steps attempted, steps taken).  Shared by :func:`train` and the sweep worker, so both take identical steps.
    """
    n = y_obs.shape[0]
    while t < target:
        k = int(min(target - t, ADVANCE_CHUNK))
        if algo is not None:
            k, done = algo.advance(t, k)
            t += done
            if done < k:
                return t, True
            continue
        mults = None if lnoise is None else label_noise_signs(lnoise, (k, n), p) * y_obs
        done = engine.advance(k, mults)
        t += done
        if done < k:
            return t, True
    return t, False


def _overflowing_scale(cfg: Config) -> str | None:
    """What overflows float64 among the scales of a GD step (||mu||^2, ||xi||^2 ~ sigma_p^2 d and their products
    with eta), in words, or None: said instead of "lower eta" when lowering eta is not what is needed."""
    mu_sq = cfg.mu_norm * cfg.mu_norm
    xi_sq = cfg.sigma_p * cfg.sigma_p * cfg.d
    if not math.isfinite(mu_sq):
        return (
            f"||mu||^2 = mu_norm^2 overflows float64: mu_norm={cfg.mu_norm:g} must be below about 1e154, and "
            "much smaller for the outputs and their squares to stay finite"
        )
    if not math.isfinite(xi_sq):
        return (
            f"the noise patches' squared norm sigma_p^2 d overflows float64 (sigma_p={cfg.sigma_p:g}, "
            f"d={cfg.d}); lower sigma_p"
        )
    for name, sq, knob in (
        ("eta ||mu||^2", mu_sq, f"mu_norm (now {cfg.mu_norm:g})"),
        ("eta sigma_p^2 d", xi_sq, f"sigma_p (now {cfg.sigma_p:g})"),
    ):
        if not math.isfinite(cfg.eta * sq):
            return f"the step scale {name} overflows float64 (eta={cfg.eta:g}); lower {knob} or eta"
    return None


def run_loop(
    engine,
    cfg: Config,
    log_steps,
    t: int,
    y_obs: np.ndarray,
    lnoise: np.random.Generator | None,
    log_row: Callable[[int, np.ndarray, bool], None],
    stopped_at_logged: Callable[[int, np.ndarray], None] | None = None,
    logged: int | None = None,
    algo=None,
) -> tuple[int, bool, str]:
    """lnref's one training loop: advance ``engine`` to every step of ``log_steps`` (those >= t) and log there.

    At each logged step the outputs f of the current state are computed; a non-finite output or training loss
    stops the run (divergence), as does a step whose next state would be non-finite (the engine then keeps the
    last finite state).  ``log_row(t, f, final)`` is called at every logged step with ``final`` True at the last
    one (the end of the schedule or the step the run stopped at); it reads the engine's state and records what
    the caller wants (every column for :func:`train`, the last row only for sweeps).  Shared by :func:`train`,
    the sweep worker and the oracle's fixtures, so all take identical steps and stop at the same step.

    Every step is logged at most once: when the very first step after a logged step t would be non-finite, the
    run stops at t, whose row is already logged, and ``log_row`` is not called again;
    ``stopped_at_logged(t, f)`` is called instead (if given: for a caller that records only the final row).
    ``logged``: the step of the caller's last row before the loop (a resumed run's restored row), else None.
    ``algo``: the selection algorithm's per-step hook (:func:`lnref.training.selection.make_algorithm`); a selection
    ``cfg.algorithm`` without one gets a fresh one around ``engine`` (callers that log its state pass their own).

    Returns
    -------
    (t, diverged, message) : the step reached, whether the run diverged and a message saying how
    """
    message = ""
    diverged = False
    if algo is None and cfg.algorithm in SELECTION_ALGORITHMS:
        from .selection import make_algorithm

        algo = make_algorithm(cfg, engine)
    steps = [int(s) for s in log_steps if s >= t]
    for li, target in enumerate(steps):
        if t < target:
            t, diverged = advance_to(engine, t, target, lnoise, cfg.p, y_obs, algo)
            if diverged:
                cause = _overflowing_scale(cfg)
                message = (
                    f"GD diverged at step {t}: the outputs or the next weights became non-finite "
                    f"(NaN or inf); stopped with the last finite state, of step {t} "
                    + (f"({cause})" if cause else f"(try a smaller eta, now {cfg.eta}, or sigma0, now {cfg.sigma0})")
                )
        f = engine.forward()
        # the mean training loss is finite iff the sum is (dividing by n cannot overflow)
        if not diverged and not (np.isfinite(f).all() and math.isfinite(float(sample_losses(y_obs * f).sum()))):
            diverged = True
            cause = _overflowing_scale(cfg)
            if cause is None and t == 0:
                cause = (
                    f"at initialisation, before any step: the inner products of W(0) with the patches are too "
                    f"large; lower mu_norm (now {cfg.mu_norm:g}), sigma_p (now {cfg.sigma_p:g}) or sigma0 (now "
                    f"{cfg.sigma0:g})"
                )
            message = (
                f"GD diverged at step {t}: the weights are finite but the outputs or the training loss are "
                f"not ({cause or f'try a smaller eta, now {cfg.eta}'})"
            )
        # the row of the step the run stopped at is logged even when it holds NaN/inf, so a history always ends
        # at steps_done, the step of the final state; once: a run stopped at the step it logged last keeps that row
        if t == logged:
            if stopped_at_logged is not None:
                stopped_at_logged(t, f)
        else:
            log_row(t, f, diverged or li == len(steps) - 1)
            logged = t
        if diverged:
            break
    return t, diverged, message


def train(
    cfg: Config,
    data=None,
    W0: np.ndarray | None = None,
    *,
    b0: np.ndarray | None = None,
    threads: int | None = None,
    extra_tests: Mapping[str, TestSet] | None = None,
    keep_rho: bool = True,
    progress: Callable[[int, int], None] | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[dict], None] | None = None,
    resume: Mapping[str, Any] | None = None,
) -> Result:
    """Run full-batch (label-noise) GD from ``cfg`` and return the final state and the logged history.

    Parameters
    ----------
    cfg : Config
    data : Dataset (or GramData with ``sampling='gram'``), optional
        Training (and test) data; default drawn from ``cfg.seed`` (``make_data(cfg)`` or ``sample_gram(cfg)``).
    W0 : ndarray (2, m, d), optional
        Initial weights; default ``init_weights(cfg)``.
    b0 : ndarray (2, m), optional
        Initial biases (``cfg.bias`` only); default ``init_bias(cfg)``.
    threads : int, optional
        numba threads (default: one for small problems, else all; see lnref.training.threads.default_threads and
        LNREF_THREADS); results are bit-identical for any value.
    extra_tests : mapping name -> TestSet, optional
        More test sets; their accuracies are logged as ``test_acc_<name>``.
    keep_rho : bool
        Keep rho at every logged step in ``trace["rho"]`` (memory L * 2m * n floats).
    progress : callable(step, steps), optional
        Called at every logged step.
    checkpoint_every : int
        With ``on_checkpoint``: at the first logged step at least this many steps after the previous checkpoint
        (and never at the last step), call ``on_checkpoint(state)`` with everything needed to continue.
    on_checkpoint : callable(state), optional
        Receives the state (a dict: ``step``, ``rows``, the engine's ``gamma``, ``rho``, ``bias`` and ``W`` for the
        weight engine, the history and trace rows so far, the label-noise generator's state); it must copy what it
        keeps.  :func:`lnref.training.runs.save_checkpoint` writes it to disk.
    resume : mapping, optional
        A state from ``on_checkpoint`` (or :func:`lnref.training.runs.load_checkpoint`): continue from there.  The
        result is bit-identical to the uninterrupted run (same cfg, data and W0 required).

    Returns
    -------
    Result

    Raises
    ------
    ConfigError
        For invalid inputs, before any work (:func:`lnref.engines.base.prepare_inputs` checks data, W0, b0).
    DivergedError
        When an output, the loss or a weight would become non-finite; ``err.result`` holds the run so far
        (the state of the last finite step).

    Notes
    -----
    GD: SPEC.md section 3; the coefficient recursions run alongside: SPEC.md section 4; conventions (bias, output
    scale, patch reduction): SPEC.md section 7.  Label-noise GD draws eps from stream 4 of the data contract
    (:mod:`lnref.data`), once per step, before the step.  The loop is :func:`run_loop`.
    """
    from ..engines import from_config

    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    check_train_options(
        resume=resume,
        checkpoint_every=checkpoint_every,
        on_checkpoint=on_checkpoint,
        progress=progress,
        keep_rho=keep_rho,
        extra_tests=extra_tests,
    )
    t_start = time.perf_counter()
    with num_threads(threads, *_threads.step_work(cfg)) as nthreads:  # Gram sampling runs kernels too
        engine = from_config(cfg, data, W0, b0)
    data = engine.data
    W0 = getattr(engine, "W0", None) if cfg.engine == "coefficients" else engine.weights().copy()
    b0 = engine.bias.copy() if cfg.bias else None
    extra_tests = dict(extra_tests or {})
    tests = ([("test_acc", data.test)] if getattr(data, "test", None) is not None else []) + [
        (f"test_acc_{k}", t) for k, t in extra_tests.items()
    ]
    fresh_test = cfg.virtual_test == "fresh" and cfg.n_test > 0  # a fresh virtual test set at every logged step

    with num_threads(threads, *_threads.step_work(cfg)) as nthreads:
        log_steps = cfg.log_steps()
        L = log_steps.size
        method = cfg.loss != "logistic"
        cols = (
            ["step"] + [c for c in HISTORY_COLUMNS if c != "step"] + [name for name, _ in tests if name != "test_acc"]
        )
        if method:
            cols += list(METHOD_COLUMNS)
        hist = {c: np.full(L, math.nan) for c in cols}
        n, m = cfg.n, cfg.m
        trace = {"gamma": np.full((L, 2, m), math.nan), "margin": np.full((L, n), math.nan)}
        if cfg.bias:
            trace["bias"] = np.full((L, 2, m), math.nan)
        if keep_rho:
            trace["rho"] = np.full((L, 2, m, n), math.nan)
        if cfg.loss == "elr":
            trace["target"] = np.full((L, 2, n), math.nan)
        algo = None
        if cfg.algorithm in SELECTION_ALGORITHMS:
            from .selection import make_algorithm

            algo = make_algorithm(cfg, engine)
            assert algo is not None  # narrows the type: a selection algorithm's config always builds one
            for c in algo.columns:
                hist.setdefault(c, np.full(L, math.nan))
            for key, shape in algo.trace_shapes(keep_rho).items():
                trace[key] = np.full((L, *shape), math.nan)
        y, y_obs = data.y, data.y_obs
        lnoise = stream(cfg.seed, "label_noise") if cfg.algorithm == "label_noise_gd" else None
        li = 0
        t = 0
        restored = None
        if resume is not None:
            t, li = restore_state(resume, cfg, engine, hist, trace, lnoise, algo)
            if li > 0 and hist["step"][li - 1] == t:
                log_steps = log_steps[log_steps > t]  # the row of step t was restored
                restored = t
        t_setup = time.perf_counter() - t_start
        timer = {"log": 0.0, "checkpoint": t}
        t0 = time.perf_counter()

        def log_row(step: int, f: np.ndarray, final: bool) -> None:
            nonlocal li
            tl = time.perf_counter()
            row = step_metrics(f, y, y_obs, engine.gamma, engine.rho)
            for name, test in tests:
                row[name] = engine.test_accuracy(test)
            if fresh_test:
                row["test_acc"] = engine.virtual_test_accuracy(step)
            if method:
                row["method_loss"] = method_mean_loss(f, y, y_obs, cfg, engine.target, step)
            hist["step"][li] = step
            for key, v in row.items():
                hist[key][li] = v
            trace["gamma"][li] = engine.gamma
            trace["margin"][li] = y_obs * f
            if cfg.bias:
                trace["bias"][li] = engine.bias
            if keep_rho:
                trace["rho"][li] = engine.rho
            if "target" in trace:
                trace["target"][li] = engine.target
            if algo is not None:
                arow, atrace = algo.log(step, f, keep_rho)
                for key, v in arow.items():
                    hist[key][li] = v
                for key, arr in atrace.items():
                    trace[key][li] = arr
            li += 1
            timer["log"] += time.perf_counter() - tl
            if progress is not None:
                with _placement.unpinned():  # the user's code never runs pinned to one CPU
                    progress(step, cfg.steps)
            if (
                not final
                and on_checkpoint is not None
                and checkpoint_every > 0
                and step - timer["checkpoint"] >= checkpoint_every
                and step < cfg.steps
            ):
                state = make_state(step, li, cfg, engine, hist, trace, lnoise, algo)
                with _placement.unpinned():
                    on_checkpoint(state)
                timer["checkpoint"] = step

        t, diverged, message = run_loop(engine, cfg, log_steps, t, y_obs, lnoise, log_row, logged=restored, algo=algo)
        t_train = time.perf_counter() - t0 - timer["log"]
    from ..kernels.equations import mark_warm

    mark_warm(cfg.engine)  # this process compiled (or loaded) the engine's kernels: later processes load them
    history = {k: v[:li].copy() for k, v in hist.items()}
    history["step"] = history["step"].astype(np.int64)
    trace = {k: v[:li].copy() for k, v in trace.items()}
    W = engine.weights() if engine.has_weights else None
    result = Result(
        config=cfg,
        W=None if W is None else W.copy(),
        W0=W0,
        gamma=engine.gamma.copy(),
        rho=engine.rho.copy(),
        history=history,
        trace=trace,
        data=data,
        steps_done=t,
        diverged=diverged,
        message=message,
        timings={"setup": t_setup, "train": t_train, "logging": timer["log"]},
        threads=nthreads,
        b=engine.bias.copy() if cfg.bias else None,
        b0=b0,
    )
    if diverged:
        raise DivergedError(message, result)
    return result


#: sub-modules read as attributes on first access (``lnref.training.runs`` after ``import lnref``)
__getattr__ = submodule_getattr(__name__, ("runs", "stages", "selection", "resources", "threads", "state"))
