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
    cell_cfgs: dict[tuple, Any] = {}  # the batch's cells, each validated once (replicates differ in the seed only)
    with num_threads(threads):
        for cell, replicate, values, seed in jobs:
            changes = dict(zip(fields, values))
            key = tuple(values)
            if key not in cell_cfgs:
                cell_cfgs[key] = base_cfg.replace(**changes)
            cfg = cell_cfgs[key].with_seed(int(seed))
            if cfg.engine == "coefficients":
                result = final_run(cfg, metrics)
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


def _lean_metrics(f, y, y_obs, gamma, rho, names) -> dict[str, float]:
    """The requested columns of :func:`lnref.metrics.step_metrics` (always ``loss``), the same values bit for bit.

    Accuracies are counts over sizes (np.mean of a boolean array is exactly that); the rest are the same NumPy
    expressions.  Unknown names fall back to step_metrics.
    """
    import numpy as np

    from .metrics import sample_losses, step_metrics

    if not set(names) <= _LEAN:
        return step_metrics(f, y, y_obs, gamma, rho)
    margin = y_obs * f
    out = {"loss": float(np.mean(sample_losses(margin)))}
    clean = y_obs == y
    n_clean = int(np.count_nonzero(clean))
    n_noisy = y.shape[0] - n_clean
    fitted = margin > 0
    if "train_acc" in names:
        out["train_acc"] = int(np.count_nonzero(fitted)) / y.shape[0]
    if "train_acc_clean" in names:
        out["train_acc_clean"] = int(np.count_nonzero(fitted & clean)) / n_clean if n_clean else math.nan
    noisy = ~clean
    if "train_acc_noisy" in names:
        out["train_acc_noisy"] = int(np.count_nonzero(fitted & noisy)) / n_noisy if n_noisy else math.nan
    if "true_acc_noisy" in names:
        out["true_acc_noisy"] = int(np.count_nonzero((y * f > 0) & noisy)) / n_noisy if n_noisy else math.nan
    if "gamma_max" in names:
        out["gamma_max"] = float(gamma.max())
    if "rho_bar_max_clean" in names or "rho_bar_max_noisy" in names:
        rho_bar = np.maximum(rho.max(axis=(0, 1)), 0.0)
        out["rho_bar_max_clean"] = float(np.max(rho_bar[clean])) if n_clean else math.nan
        out["rho_bar_max_noisy"] = float(np.max(rho_bar[noisy])) if n_noisy else math.nan
    return out


def _fused(cfg, metrics) -> bool:
    """Whether :func:`final_run` takes :func:`_gram_final_run` (one kernel call per run)."""
    return (cfg.sampling == "gram" and cfg.algorithm == "gd" and metrics is not None and set(metrics) <= _LEAN
            and cfg.steps > 0 and cfg.log_steps().tolist() == [0, cfg.steps])


def _gram_final_run(cfg, metrics: tuple) -> FinalRun | None:
    """:func:`final_run` for Gram sampling, plain GD and rows logged at steps 0 and ``steps`` only, without the
    GramData and CoefficientEngine objects: the same draws (:func:`lnref.gram.gram_draws`,
    :func:`lnref.gram.virtual_test_inputs`), the kernels of :func:`lnref.gram.stats_from_coordinates` and of
    CoefficientEngine (:func:`lnref._kernels_coef.gram_stats`, :func:`~lnref._kernels_coef.engine_scalings`),
    then the engine's own kernels.  None when the general path must decide (a zero noise patch, or non-finite
    outputs or loss at step 0, where train stops before a step)."""
    import numpy as np

    from . import _kernels_coef as KC
    from .gram import gram_draws, virtual_test_inputs
    from .metrics import sample_losses

    y, y_obs, coords, e1 = gram_draws(cfg)
    n, m = cfg.n, cfg.m
    F, k, r = 2 * m, coords.shape[0], coords.shape[1]
    mu_norm, q = float(cfg.mu_norm), float(cfg.q)
    mu_sq = mu_norm * mu_norm
    # lnref.gram.stats_from_coordinates and CoefficientEngine's precomputation, with their kernels
    G, Gn, P0, A = np.empty((n, n)), np.empty((n, n)), np.empty((F, n)), np.empty((F, n))
    xi_sq, c, cA, cB, b0, B = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(F), np.empty(F)
    KC.gram_stats_serial(coords, e1, mu_norm, np.empty((r, k)), np.empty((k, k)), G, xi_sq, P0, b0, c)
    if not np.all(xi_sq > 0.0):
        return None
    KC.engine_scalings(G, xi_sq, c, mu_sq, Gn, cA, cB)
    gamma, rho, nz = np.zeros(F), np.zeros((F, n)), np.empty((F, n), dtype=np.int64)
    f0, f = np.empty(n), np.empty(n)
    KC.outputs_serial(gamma, rho, P0, b0, Gn, cA, cB, y, q, m, A, B, f0, nz)
    if not (np.all(np.isfinite(f0)) and math.isfinite(float(np.mean(sample_losses(y_obs * f0))))):
        return None
    done = KC.advance_serial(int(cfg.steps), y_obs.reshape(1, n), q, m, float(cfg.eta), mu_sq, xi_sq, P0, b0, Gn,
                             cA, cB, y, gamma, rho, np.empty(F), np.empty((F, n)), A, B, np.empty(n), np.empty(n),
                             np.zeros(F, dtype=np.int64), nz)
    KC.outputs_serial(gamma, rho, P0, b0, Gn, cA, cB, y, q, m, A, B, f, nz)
    row = _lean_metrics(f, y, y_obs, gamma.reshape(2, m), rho.reshape(2, m, n), metrics)
    row["test_acc"] = math.nan
    if ("test_acc" in metrics or "test_error" in metrics) and cfg.n_test > 0:
        t = virtual_test_inputs(cfg, coords, y, c, mu_sq)
        count = KC.virtual_test_correct(coords, t.zT, t.scale, e1, t.a, t.isotropic, t.idx, G, P0, xi_sq, t.ct_mu,
                                        gamma, rho, B, t.y_t, t.y_score, q, m)
        row["test_acc"] = count / cfg.n_test
    diverged = done < cfg.steps
    if not (np.all(np.isfinite(f)) and math.isfinite(row["loss"])):
        diverged = True
    history = {key: [v] for key, v in row.items()}
    history["step"] = [done]
    return FinalRun(history=history, steps_done=done, diverged=diverged)


# history columns _lean_metrics computes itself (plus the ones final_run fills in)
_LEAN = {"loss", "train_acc", "train_acc_clean", "train_acc_noisy", "true_acc_noisy", "gamma_max",
         "rho_bar_max_clean", "rho_bar_max_noisy", "test_acc", "test_error", "steps_done", "diverged"}


def final_run(cfg, metrics: Sequence[str] | None = None) -> FinalRun:
    """The final logged row of ``lnref.train(cfg)`` for a coefficient-engine config, with less work per run.

    Same data (seed contract), same kernels, same GD steps in the same chunks, same divergence rule; only the
    rows :func:`lnref.train` logs before the last one are not computed (their outputs are still checked for
    finiteness, as train's divergence test does), nor the trace, nor the step-0 test accuracy.  With
    ``sampling='gram'`` the virtual test set is not built: its accuracy comes from one fused kernel
    (:func:`lnref.gram.virtual_test_accuracy`, same draws, same bits).  Runs under the caller's numba thread
    count.  tests/test_sweep.py checks the rows against :func:`lnref.train` bit for bit.

    Parameters
    ----------
    cfg : Config with engine='coefficients'
    metrics : sequence of str or None
        Names of :data:`METRICS` the caller reads (None: every history column); the row may hold more.

    Returns
    -------
    FinalRun

    Notes
    -----
    SPEC.md sections 3-4 (GD in coefficient space); the loop mirrors :func:`lnref.training.train`.
    """
    import numpy as np

    from .data import stream
    from .engines.coefficients import CoefficientEngine, prepare
    from .gram import sample_gram, virtual_test_accuracy
    from .metrics import sample_losses, step_metrics
    from .training import advance_to

    gram = cfg.sampling == "gram"
    if _fused(cfg, metrics):
        fast = _gram_final_run(cfg, tuple(metrics))
        if fast is not None:
            return fast
    if gram:
        data, W0 = sample_gram(cfg, draw_test=False), None
    else:
        data, W0 = prepare(cfg)
    engine = CoefficientEngine(cfg, data, W0)
    y, y_obs = data.y, data.y_obs
    lnoise = stream(cfg.seed, "label_noise") if cfg.algorithm == "label_noise_gd" else None
    log_steps = cfg.log_steps()
    last = log_steps.size - 1
    t = 0
    diverged = False
    for li, target in enumerate(log_steps):
        t, diverged = advance_to(engine, t, int(target), lnoise, cfg.p, y_obs)
        if li == last or diverged:
            break
        # train logs a row here and stops when its outputs or loss are not finite
        f = engine.forward()
        if not (np.all(np.isfinite(f)) and math.isfinite(float(np.mean(sample_losses(y_obs * f))))):
            diverged = True
            break
    f = engine.forward()
    if metrics is None:
        row = step_metrics(f, y, y_obs, engine.gamma, engine.rho)
        want_test = True
    else:
        row = _lean_metrics(f, y, y_obs, engine.gamma, engine.rho, tuple(metrics))
        row["test_acc"] = math.nan
        want_test = "test_acc" in metrics or "test_error" in metrics
    if not want_test:
        pass
    elif gram:
        if cfg.n_test > 0:
            row["test_acc"] = virtual_test_accuracy(cfg, data, engine._gamma, engine._rho, engine.B, engine.xi_sq,
                                                    engine.mu_sq, engine.q)
    elif getattr(data, "test", None) is not None:
        row["test_acc"] = engine.test_accuracy(data.test)
    if not (np.all(np.isfinite(f)) and math.isfinite(row["loss"])):
        diverged = True
    history = {key: [v] for key, v in row.items()}
    history["step"] = [t]
    return FinalRun(history=history, steps_done=t, diverged=diverged)
