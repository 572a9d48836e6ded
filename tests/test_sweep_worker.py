"""The sweep worker (lnref/sweeps/worker.py): its rows are the last row of lnref.train, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lnref
from lnref.sweeps.worker import METRICS, final_run, run_batch

# configs for the worker: Gram and explicit sampling, both engines, label-noise GD with intermediate logged steps,
# q = 2 and 3, flipped and spurious test labels, a run that diverges mid-way, the conventions of SPEC.md section 7
_COEF = lnref.Config(
    n=10,
    d=50,
    m=3,
    steps=30,
    n_test=60,
    eta=1.0,
    sigma_p=1.0,
    mu_norm=2.0,
    tau=0.2,
    seed=11,
    engine="coefficients",
    sampling="gram",
    log_every=0,
    log_points=0,
)
# Kou et al.'s heatmap conventions (lnref.reproduce.heatmap_kou.KOU_CONVENTIONS) on the small test sizes
_KOU = dict(
    bias=True,
    init="torch",
    output_scale=1.0,
    patch_reduce="mean",
    eta=0.1,
    noise="isotropic",
    test_flipped_labels=True,
)
CASES = [
    _COEF,
    _COEF.replace(sampling="explicit", test_flipped_labels=True),
    _COEF.replace(algorithm="label_noise_gd", p=0.2, log_every=7, noise="orthogonal", flips="exact"),
    _COEF.replace(q=2.0, log_points=4, test="spurious"),
    _COEF.replace(q=3.0, eta=50.0, sigma0=1.0, mu_norm=5.0, steps=60),  # diverges
    # Kou-like: orthogonal noise, exact flips, flipped test labels (the fused virtual-test kernel's main use)
    _COEF.replace(noise="orthogonal", flips="exact", test_flipped_labels=True, n_test=37),
    _COEF.replace(d=6, test="spurious", test_flipped_labels=True),  # n + 2m > d - 1: dense coordinates
    _COEF.replace(noise="isotropic", test="spurious", q=2.0),  # e_1 parts of the test noise
    _COEF.replace(mu_norm=0.0, noise="orthogonal", flips="exact"),  # no signal: cA = 0, ct_mu = 0
    _COEF.replace(engine="weights", sampling="explicit", log_every=5),
    _COEF.replace(sampling="explicit", **_KOU),
    # the selection algorithms as methods-phase sweeps them (spurious test distribution, fresh virtual test set)
    _COEF.replace(
        algorithm="select_retrain", select_at=10, select_then="retrain", test="spurious", virtual_test="fresh"
    ),
    _COEF.replace(algorithm="select_retrain", test="spurious", virtual_test="fresh"),  # at T1 (if it comes)
    _COEF.replace(algorithm="truncated_gce", loss="gce", trunc_start=6, trunc_every=4, test="spurious"),
    _COEF.replace(algorithm="coteaching", test="spurious", virtual_test="fresh"),
]


def expected_row(cfg: lnref.Config, metrics) -> dict:
    """What a sweep row must hold: the last history row of lnref.train (and steps_done, diverged, test_error)."""
    try:
        res = lnref.train(cfg, threads=1, keep_rho=False)
    except lnref.DivergedError as err:
        res = err.result
    h = res.history
    out = {}
    for name in metrics:
        if name == "steps_done":
            out[name] = int(res.steps_done)
        elif name == "diverged":
            out[name] = bool(res.diverged)
        elif name == "test_error":
            out[name] = 1.0 - float(h["test_acc"][-1])
        else:
            out[name] = float(h[name][-1])
    return out


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_worker_rows_equal_lnref_train_bit_for_bit():
    metrics = list(METRICS)
    rows = []
    for case_index, cfg in enumerate(CASES):
        for seed in (3, 4):
            exp = expected_row(cfg.replace(seed=seed), metrics)
            got = run_batch(cfg.to_dict(), [], [(case_index, 0, (), seed)], metrics)[0]
            rows.append(got)
            for name in metrics:
                assert type(got[name]) is type(exp[name]), name
                assert same(got[name], exp[name]), (case_index, seed, name, got[name], exp[name])
    assert any(r["diverged"] for r in rows) and not all(r["diverged"] for r in rows)
    assert any(0 < r["steps_done"] < CASES[4].steps for r in rows)  # a mid-run divergence is covered
    # a subset of the metrics (the worker then skips the others, and the test set when it is not asked for)
    for subset in (["test_error"], ["loss", "gamma_max", "steps_done"], ["rho_bar_max_noisy", "train_acc_clean"]):
        for case_index in (0, 1, 2):
            cfg = CASES[case_index]
            exp = expected_row(cfg, subset)
            got = run_batch(cfg.to_dict(), [], [(case_index, 0, (), cfg.seed)], subset)[0]
            assert set(METRICS) & set(got) == set(subset)
            for name in subset:
                assert same(got[name], exp[name]), name


def test_final_run_without_metrics_holds_every_history_column():
    cfg = CASES[1]
    run = final_run(cfg)
    res = lnref.train(cfg, keep_rho=False)
    for col, values in res.history.items():
        if col != "step":
            assert same(run.row[col], float(values[-1])), col
    assert run.steps_done == cfg.steps and not run.diverged


@pytest.mark.parametrize("grid_field,values", [("mu_norm", (0.5, 3.0)), ("n", (6, 9))])
def test_batch_rows_follow_the_grid_values(grid_field, values):
    jobs = [(c, r, (v,), 100 + 10 * c + r) for c, v in enumerate(values) for r in range(2)]
    rows = run_batch(CASES[0].to_dict(), [grid_field], jobs, ["loss", "steps_done"])
    assert [(r["cell"], r["replicate"], r[grid_field], r["seed"]) for r in rows] == [
        (c, r, v, s) for c, r, (v,), s in jobs
    ]
    losses = np.array([r["loss"] for r in rows])
    assert np.all(np.isfinite(losses)) and len(set(losses.tolist())) == len(rows)  # distinct seeds and cells


# plain GD with Gram sampling and a fresh virtual test set: what final_run runs in one compiled call
# (lnref.kernels.sweep_run.gram_final_run); Kou's phase diagram is the second case
_FRESH = _COEF.replace(virtual_test="fresh")
COMPILED_CASES = [
    _FRESH,
    _FRESH.replace(steps=50, **_KOU),
    _FRESH.replace(q=2.0, test="spurious", log_points=4, noise="orthogonal", flips="exact"),
    _FRESH.replace(loss="elr", log_every=7),  # ELR's targets, updated at every step
    _FRESH.replace(loss="gce", q=3.0, sigma0=0.5),
    _FRESH.replace(d=6, test_flipped_labels=True),  # n + 2m > d - 1: dense coordinates
    _FRESH.replace(mu_norm=0.0, steps=0),  # no step: the row of step 0
    _FRESH.replace(n_test=0),
]
# diverges mid-way: the compiled call hands the run back and the engine's path stops it as train does
_DIVERGES = _FRESH.replace(q=3.0, eta=50.0, sigma0=1.0, mu_norm=5.0, steps=60)


def _spy_compiled_status(monkeypatch) -> list[int]:
    """Record the status every compiled call returns."""
    from lnref.kernels import sweep_run

    statuses: list[int] = []
    real = sweep_run.gram_final_run

    def spy(*args):
        out = real(*args)
        statuses.append(int(out[0]))
        return out

    monkeypatch.setattr(sweep_run, "gram_final_run", spy)
    return statuses


@pytest.mark.parametrize("case", range(len(COMPILED_CASES)))
def test_the_compiled_run_equals_the_engine_path_and_train(case, monkeypatch):
    from lnref.kernels.sweep_run import FINISHED

    statuses = _spy_compiled_status(monkeypatch)
    metrics = list(METRICS)
    cfg = COMPILED_CASES[case]
    for seed in (3, 4):
        c = cfg.replace(seed=seed)
        got = final_run(c, metrics).row
        engine_path = final_run(c, metrics, compiled=False).row
        exp = expected_row(c, metrics)
        for name in metrics:
            assert type(got[name]) is type(exp[name]), name
            assert same(got[name], engine_path[name]), (seed, name, got[name], engine_path[name])
            assert same(got[name], exp[name]), (seed, name, got[name], exp[name])
    assert statuses == [FINISHED, FINISHED]  # the compiled call ran both runs to the end


def test_a_diverging_run_is_handed_back_to_the_engine_path(monkeypatch):
    from lnref.kernels.sweep_run import FALLBACK

    statuses = _spy_compiled_status(monkeypatch)
    metrics = list(METRICS)
    rows = []
    for seed in (3, 4, 5):
        c = _DIVERGES.replace(seed=seed)
        got = final_run(c, metrics).row
        exp = expected_row(c, metrics)
        rows.append(got)
        for name in metrics:
            assert same(got[name], exp[name]), (seed, name, got[name], exp[name])
    assert any(r["diverged"] and 0 < r["steps_done"] < _DIVERGES.steps for r in rows)
    assert statuses.count(FALLBACK) == sum(r["diverged"] for r in rows)


def test_runs_the_compiled_call_cannot_stand_in_for_take_the_engine_path(monkeypatch):
    statuses = _spy_compiled_status(monkeypatch)
    for cfg in (
        _COEF,  # the fixed virtual test set
        _FRESH.replace(algorithm="label_noise_gd", p=0.2),
        _COEF.replace(sampling="explicit"),
        _COEF.replace(engine="weights", sampling="explicit"),
        _FRESH.replace(algorithm="coteaching", test="spurious"),
    ):
        final_run(cfg, ["test_error", "loss"])
    assert statuses == []
    final_run(_COEF, ["loss", "train_acc"])  # the fixed test set is not read: the compiled call can run it
    assert len(statuses) == 1


_NOJIT_FINAL_RUN = """
import json, sys, lnref
from lnref.sweeps.worker import METRICS, final_run
cfg = lnref.Config(n=6, d=40, m=2, steps=15, n_test=30, engine='coefficients', sampling='gram', virtual_test='fresh',
                   init='torch', bias=True, noise='isotropic', tau=0.2, seed=5, log_every=0, log_points=0)
json.dump({k: repr(v) for k, v in final_run(cfg, list(METRICS)).row.items()}, sys.stdout)
"""


def test_the_compiled_run_equals_itself_as_python():
    """NUMBA_DISABLE_JIT=1 runs lnref.kernels.sweep_run as plain Python: the same row, to the last bit."""
    import json
    import os
    import subprocess
    import sys

    rows = []
    for disable in ("1", "0"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable)
        out = subprocess.run(
            [sys.executable, "-c", _NOJIT_FINAL_RUN], env=env, capture_output=True, text=True, check=True, timeout=300
        )
        rows.append(json.loads(out.stdout))
    assert rows[0] == rows[1]
    assert rows[0]["steps_done"] == "15" and rows[0]["diverged"] == "False"
