"""What one sweep task runs in a worker process: a batch of (cell, replicate) runs -> rows of final metrics.

Kept in its own small module so that spawned workers (process pools, Dask) import little and pickle the task
function by reference.  Nothing here draws random numbers: every run's seed comes from the caller.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["METRICS", "init_worker", "run_batch", "final_metrics"]

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
    from .training import DivergedError, train

    import numba
    if threads is not None:
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    base_cfg = Config.from_dict(base)
    rows = []
    for cell, replicate, values, seed in jobs:
        changes = dict(zip(fields, values))
        changes["seed"] = int(seed)
        cfg = base_cfg.replace(**changes)
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
