"""What one sweep task runs in a worker process: a batch of (cell, replicate) runs -> rows of final metrics.

Kept in its own small module so that spawned workers (process pools, Dask) import little and pickle the task
function by reference.  Nothing here draws random numbers: every run's seed comes from the caller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["METRICS", "init_worker", "run_batch", "final_metrics", "final_run", "FinalRun"]

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


def final_metrics(result: Any, metrics: Sequence[str]) -> dict[str, Any]:
    """The requested final metrics of one :class:`lnref.Result` (last logged row of its history)."""
    h = result.history
    last = len(h["step"]) - 1
    out: dict[str, Any] = {}
    for name in metrics:
        if name == "steps_done":
            out[name] = int(result.steps_done)
        elif name == "diverged":
            out[name] = bool(result.diverged)
        elif name == "test_error":
            out[name] = 1.0 - float(h["test_acc"][last]) if last >= 0 else math.nan
        else:
            out[name] = float(h[name][last]) if last >= 0 else math.nan
    return out


def run_batch(base: dict[str, Any], fields: Sequence[str], jobs: Sequence[tuple], metrics: Sequence[str],
              threads: int | None = 1) -> list[dict[str, Any]]:
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
    from .config import Config
    from .training import DivergedError, num_threads, train

    import numba
    if threads is not None:
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    base_cfg = Config.from_dict(base)
    rows = []
    with num_threads(threads):
        for cell, replicate, values, seed in jobs:
            changes = dict(zip(fields, values))
            changes["seed"] = int(seed)
            cfg = base_cfg.replace(**changes)
            if cfg.engine == "coefficients":
                result = final_run(cfg)
            else:
                try:
                    result = train(cfg, threads=threads, keep_rho=False)
                except DivergedError as err:
                    result = err.result
            row = {"cell": int(cell), "replicate": int(replicate), "seed": int(seed)}
            row.update(changes)
            row["seed"] = int(seed)
            row.update(final_metrics(result, metrics))
            rows.append(row)
    return rows


@dataclass
class FinalRun:
    """What :func:`final_run` returns: the attributes of :class:`lnref.Result` that :func:`final_metrics` reads.

    ``history`` holds one row, the last one :func:`lnref.train` would log (the same values, bit for bit).
    """

    history: dict[str, list]
    steps_done: int
    diverged: bool


def final_run(cfg) -> FinalRun:
    """The final logged row of ``lnref.train(cfg)`` for a coefficient-engine config, with less work per run.

    Same data (seed contract), same kernels, same GD steps in the same chunks, same divergence rule; only the
    rows :func:`lnref.train` logs before the last one are not computed (their outputs are still checked for
    finiteness, as train's divergence test does), nor the trace, nor the step-0 test accuracy.  Runs under the
    caller's numba thread count.  tests/test_sweep.py checks the rows against :func:`lnref.train` bit for bit.

    Parameters
    ----------
    cfg : Config with engine='coefficients'

    Returns
    -------
    FinalRun

    Notes
    -----
    SPEC.md sections 3-4 (GD in coefficient space); the loop mirrors :func:`lnref.training.train`.
    """
    import numpy as np

    from .data import label_noise_signs, stream
    from .engines.coefficients import CoefficientEngine, prepare
    from .metrics import sample_losses, step_metrics
    from .training import _CHUNK

    data, W0 = prepare(cfg)
    engine = CoefficientEngine(cfg, data, W0)
    n = cfg.n
    y, y_obs = data.y, data.y_obs
    lnoise = stream(cfg.seed, "label_noise") if cfg.algorithm == "label_noise_gd" else None
    log_steps = cfg.log_steps()
    last = log_steps.size - 1
    t = 0
    diverged = False
    for li, target in enumerate(log_steps):
        while t < target and not diverged:
            k = int(min(target - t, _CHUNK))
            mults = None if lnoise is None else label_noise_signs(lnoise, (k, n), cfg.p) * y_obs
            done = engine.advance(k, mults)
            t += done
            if done < k:
                diverged = True
        if li == last or diverged:
            break
        # train logs a row here and stops when its outputs or loss are not finite
        f = engine.forward()
        if not (np.all(np.isfinite(f)) and math.isfinite(float(np.mean(sample_losses(y_obs * f))))):
            diverged = True
            break
    f = engine.forward()
    row = step_metrics(f, y, y_obs, engine.gamma, engine.rho)
    if getattr(data, "test", None) is not None:
        row["test_acc"] = engine.test_accuracy(data.test)
    if not (np.all(np.isfinite(f)) and math.isfinite(row["loss"])):
        diverged = True
    history = {key: [v] for key, v in row.items()}
    history["step"] = [t]
    return FinalRun(history=history, steps_done=t, diverged=diverged)
