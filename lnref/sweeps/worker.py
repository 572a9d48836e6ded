"""What one sweep task runs in a worker process: a batch of (cell, replicate) runs -> rows of final metrics.

Kept in its own small module so that spawned workers (process pools, Dask) import little and pickle the task
function by reference.  Nothing here draws random numbers: every run's seed comes from the caller.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["METRICS", "init_worker", "run_batch", "final_run", "FinalRun"]

# Final metrics a sweep can report (name -> meaning); `history` columns of lnref.train plus derived ones.
METRICS: dict[str, str] = {
    "test_acc": "final test accuracy (scored against the test labels the config asks for)",
    "test_error": "1 - test_acc",
    "train_acc": "final fraction of training samples fitted to their observed label",
    "train_acc_clean": "final fraction of clean samples fitted",
    "train_acc_noisy": "final fraction of mislabelled samples fitted to the wrong label",
    "true_acc_noisy": "final fraction of mislabelled samples predicted as their true label",
    "loss": "final training loss",
    "gamma_max": "final max_{j,r} gamma_{j,r}",
    "rho_bar_max_clean": "final max over clean i of rho_bar",
    "rho_bar_max_noisy": "final max over mislabelled i of rho_bar",
    "steps_done": "GD steps taken (smaller than steps when the run diverged)",
    "diverged": "whether GD diverged (the metrics are then those of the last finite logged step)",
}

INT_METRICS = ("steps_done",)
BOOL_METRICS = ("diverged",)


def init_worker(threads: int = 1) -> None:
    """Process-pool initializer: numba threads per worker (default 1, so workers do not oversubscribe cores)."""
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def run_batch(
    base: dict[str, Any], fields: Sequence[str], jobs: Sequence[tuple], metrics: Sequence[str], threads: int | None = 1
) -> list[dict[str, Any]]:
    """Run every job of a batch and return one row per job, in the order of ``jobs``.

    Parameters
    ----------
    base : dict
        ``Config.to_dict()`` of the base config (plain data, cheap to pickle).
    fields : sequence of str
        The grid's field names.
    jobs : sequence of (cell, replicate, values, seed)
        ``values`` holds one value per field.
    metrics : sequence of str
        Names from :data:`METRICS`.
    threads : int or None
        numba threads for each run (results are bit-identical for any value).

    Returns
    -------
    list of dict
        ``cell``, ``replicate``, ``seed``, the grid values, then the metrics.
    """
    import numba

    from ..config import Config
    from ..training import num_threads

    if threads is not None:
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    base_cfg = Config.from_dict(base)
    rows = []
    cell_cfgs: dict[tuple, Any] = {}  # the batch's cells, each validated once (replicates differ in the seed only)
    with num_threads(threads), _gc_paused():
        for cell, replicate, values, seed in jobs:
            changes = dict(zip(fields, values))
            key = tuple(values)
            if key not in cell_cfgs:
                cell_cfgs[key] = base_cfg.replace(**changes)
            cfg = cell_cfgs[key].with_seed(int(seed))
            run = final_run(cfg, metrics)
            row = {"cell": int(cell), "replicate": int(replicate), "seed": int(seed)}
            row.update(changes)
            row["seed"] = int(seed)
            for name in metrics:
                row[name] = run.row[name]
            rows.append(row)
    from ..kernels.equations import mark_warm

    mark_warm(base_cfg.engine)  # this worker compiled (or loaded) the engine's kernels
    return rows


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a batch of runs (restored after, even on error).

    A run allocates a few hundred small objects and frees them all (reference counting frees everything a run
    makes; none of it forms cycles), but the allocations trigger the collector's scans of every live object:
    5% of a Kou run's time (perf, steady state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class FinalRun:
    """What :func:`final_run` returns: the last row :func:`lnref.train` logs (the same values, bit for bit), with
    ``test_error``, ``steps_done`` and ``diverged`` added."""

    row: dict[str, Any]
    steps_done: int
    diverged: bool


def final_run(cfg, metrics: Sequence[str] | None = None, compiled: bool = True) -> FinalRun:
    """The final logged row of ``lnref.train(cfg)``, from the same engine and the same loop
    (:func:`lnref.training.run_loop`), recording only the last row.

    Plain GD in coefficient space with Gram sampling (what the phase diagrams sweep) runs everything after the
    Gram draws in one compiled call instead (:func:`lnref.kernels.sweep_run.gram_final_run`: the same kernels in
    the same order, the same bits); a run that might diverge there is rerun through the engine, which then stops
    as train does.  ``compiled=False`` always takes the engine's path (the tests compare the two).

    Same inputs (seed contract), same kernels, same GD steps in the same chunks, same divergence rule; the rows
    before the last one are only checked for finiteness (as train's loop does), and no trace is kept.  With
    ``sampling='gram'`` the virtual test set is not built: its accuracy comes from one fused kernel
    (:meth:`lnref.engines.coefficients.CoefficientEngine.virtual_test_accuracy`, same draws, same bits).  Runs
    under the caller's numba thread count.  tests/test_sweep.py checks the rows against :func:`lnref.train`
    bit for bit.

    Parameters
    ----------
    cfg : Config
    metrics : sequence of str or None
        Names of :data:`METRICS` the caller reads (None: every history column).

    Returns
    -------
    FinalRun

    Notes
    -----
    SPEC.md sections 3-4 (GD), 7 (conventions).
    """
    from ..data import stream
    from ..data.gram import sample_gram
    from ..engines import from_config
    from ..model.metrics import step_metrics
    from ..training import run_loop

    names = None if metrics is None else set(metrics)
    if compiled and _compiled_path_fits(cfg, names):
        run = _compiled_final_run(cfg, names)
        if run is not None:
            return run
    data = sample_gram(cfg, draw_test=False) if cfg.sampling == "gram" else None
    engine = from_config(cfg, data)
    data = engine.data
    y, y_obs = data.y, data.y_obs
    lnoise = stream(cfg.seed, "label_noise") if cfg.algorithm == "label_noise_gd" else None
    row: dict[str, Any] = {}

    def log_row(t: int, f, final: bool) -> None:
        if not final:
            return
        row.update(step_metrics(f, y, y_obs, engine.gamma, engine.rho, names))
        row["test_acc"] = math.nan
        if names is None or "test_acc" in names or "test_error" in names:
            if cfg.sampling == "gram":
                row["test_acc"] = engine.virtual_test_accuracy(t)
            elif getattr(data, "test", None) is not None:
                row["test_acc"] = engine.test_accuracy(data.test)

    t, diverged, _ = run_loop(
        engine, cfg, cfg.log_steps(), 0, y_obs, lnoise, log_row, stopped_at_logged=lambda t, f: log_row(t, f, True)
    )
    row["test_error"] = 1.0 - row["test_acc"]
    row["steps_done"] = int(t)
    row["diverged"] = bool(diverged)
    return FinalRun(row=row, steps_done=int(t), diverged=bool(diverged))


def _needs_test(names) -> bool:
    return names is None or "test_acc" in names or "test_error" in names


def _compiled_path_fits(cfg, names) -> bool:
    """Whether :func:`_compiled_final_run` can stand in for the engine's path: plain GD in coefficient space with
    Gram sampling, the fresh virtual test set (or none read), and small enough that the engine would run its serial
    kernels (the parallel ones give the same bits; this only keeps big runs on them)."""
    if cfg.engine != "coefficients" or cfg.sampling != "gram" or cfg.algorithm != "gd":
        return False
    if _needs_test(names) and cfg.n_test > 0 and cfg.virtual_test != "fresh":
        return False
    import numba

    from ..data.gram_stats import PARALLEL_WORK

    return numba.get_num_threads() == 1 or 2 * cfg.m * cfg.n * cfg.n < PARALLEL_WORK


def _compiled_final_run(cfg, names) -> FinalRun | None:
    """:func:`final_run` through :func:`lnref.kernels.sweep_run.gram_final_run`: the same Gram draws
    (:func:`lnref.data.gram.gram_draws`, :func:`lnref.init_bias`), then their statistics, the engine's set-up, GD
    steps, checks and fresh test set in one compiled call, then the same metrics
    (:func:`lnref.model.metrics.step_metrics`).  None when the engine's path must run instead (the engine would
    refuse the data, or the run might diverge)."""
    k = _compiled_deps()
    np = k.np
    y, y_obs, coords, e1 = k.gram_draws(cfg)
    n, m = y.shape[0], int(cfg.m)
    F = 2 * m
    bias = np.array(k.init_bias(cfg), dtype=np.float64).reshape(F)  # a copy: the kernel trains it
    log_steps = cfg.log_steps()
    n_test = int(cfg.n_test) if _needs_test(names) else 0
    spurious = cfg.test == "spurious"
    words = k.stream_state(cfg.seed, (k.FRESH_TEST, int(log_steps[-1]))) if n_test else k.no_words
    gamma, rho, f = np.empty(F), np.empty((F, n)), np.empty(n)
    status, t, correct = k.sweep_run.gram_final_run(
        coords,
        e1,
        float(cfg.mu_norm),
        y,
        y_obs,
        float(cfg.q),
        m,
        float(cfg.output_divisor),
        float(cfg.eta),
        bool(cfg.bias),
        int(cfg.loss_code),
        cfg.loss_vector(),
        log_steps,
        k.ADVANCE_CHUNK,
        words,
        n_test,
        n if spurious else 0,
        float(cfg.sigma_zeta if spurious else cfg.sigma_p),
        cfg.noise == "isotropic",
        bool(cfg.test_flipped_labels),
        float(cfg.tau_plus),
        float(cfg.tau_minus),
        k.ZIG_K,
        k.ZIG_W,
        k.ZIG_F,
        k.TAIL_R,
        gamma,
        rho,
        bias,
        f,
    )
    if status != k.sweep_run.FINISHED:
        return None
    row: dict[str, Any] = k.step_metrics(f, y, y_obs, gamma.reshape(2, m), rho.reshape(2, m, n), names)
    row["test_acc"] = correct / n_test if n_test else math.nan
    row["test_error"] = 1.0 - row["test_acc"]
    row["steps_done"] = int(t)
    row["diverged"] = False
    return FinalRun(row=row, steps_done=int(t), diverged=False)


@functools.lru_cache(maxsize=1)
def _compiled_deps() -> types.SimpleNamespace:
    """What :func:`_compiled_final_run` calls, imported once (this module imports little at start-up, and a run is
    ~0.5 ms: importing these at every run cost 1% of it)."""
    import numpy as np

    from ..data import STREAMS, init_bias
    from ..data.gram import gram_draws
    from ..kernels import normals, sweep_run
    from ..kernels.seeding import stream_state
    from ..model.metrics import step_metrics
    from ..training import ADVANCE_CHUNK

    return types.SimpleNamespace(
        np=np,
        gram_draws=gram_draws,
        init_bias=init_bias,
        stream_state=stream_state,
        FRESH_TEST=STREAMS["fresh_test"],
        no_words=np.zeros(4, np.uint64),
        sweep_run=sweep_run,  # its functions looked up at each call (tests replace them)
        step_metrics=step_metrics,
        ADVANCE_CHUNK=ADVANCE_CHUNK,
        ZIG_K=normals.ZIG_K,
        ZIG_W=normals.ZIG_W,
        ZIG_F=normals.ZIG_F,
        TAIL_R=normals.TAIL_R,
    )
