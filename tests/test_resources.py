"""lnref.training.resources: memory estimates that hold against a measured run, and refusals that name the knob."""

from __future__ import annotations

import tracemalloc

import pytest

import lnref
from lnref.training.resources import (
    MAX_SWEEP_RUNS,
    ResourceError,
    available_memory,
    check_run_memory,
    count_log_steps,
    estimate_run_memory,
)

CASES = [
    lnref.Config(n=40, d=6000, m=4, steps=10, n_test=100, log_every=1),  # data dominates
    lnref.Config(n=40, d=6000, m=4, steps=10, n_test=100, engine="coefficients"),
    lnref.Config(n=150, d=10**6, m=4, steps=10, n_test=300, engine="coefficients", sampling="gram"),
    lnref.Config(n=30, d=50, m=4, steps=1500, n_test=20, log_every=1),  # history and trace dominate
    lnref.Config(n=30, d=1500, m=4, steps=40, n_test=20, algorithm="label_noise_gd"),
]


@pytest.mark.parametrize("cfg", CASES, ids=["weights", "coefficients", "gram", "long-log", "label-noise"])
def test_estimate_is_close_to_the_measured_peak(cfg):
    """The estimate is at least 0.9x and at most 3x the peak NumPy memory tracemalloc measures during the run
    (numba's own work arrays are not traced, so the measured peak is a lower bound of the truth)."""
    lnref.train(cfg.replace(steps=1), threads=1)  # compile outside the measurement
    tracemalloc.start()
    try:
        result = lnref.train(cfg, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    est = estimate_run_memory(cfg).total
    assert 0.9 * peak <= est <= 3 * peak, (peak, est)


def test_count_log_steps_bounds_the_log_schedule():
    for cfg in (
        lnref.Config(steps=1000, log_every=7, log_points=30),
        lnref.Config(steps=5, log_every=0),
        lnref.Config(steps=0),
        lnref.Config(steps=10**4, log_every=0, log_points=200),
    ):
        assert cfg.log_steps().size <= count_log_steps(cfg) <= cfg.log_steps().size + cfg.log_points + 2
    assert count_log_steps(lnref.Config(steps=10**12, log_every=1)) == 10**12 + 1  # without building it


def test_refusals_name_the_knob(monkeypatch):
    cfg = lnref.Config(n=8, d=16, m=2, steps=10**10, log_every=1)
    with pytest.raises(ResourceError, match="--log-every"):
        check_run_memory(cfg)
    with pytest.raises(ResourceError, match="--engine coefficients --sampling gram"):
        check_run_memory(lnref.Config(n=100, d=10**11))
    monkeypatch.setenv("LNREF_MEMORY_LIMIT", "1M")
    assert available_memory() == 2**20
    with pytest.raises(ResourceError, match="1 MiB is available"):
        check_run_memory(lnref.Config(n=100, d=10**4))
    with pytest.raises(lnref.ConfigError, match="grid"):
        lnref.sweep(lnref.Config(n=8, d=16, m=2, steps=5), {"d": [16, 10**6]}, executor=lnref.sweeps.SerialExecutor())
    monkeypatch.setenv("LNREF_MEMORY_LIMIT", "off")
    assert available_memory() is None
    check_run_memory(lnref.Config(n=100, d=10**11))  # no limit
    monkeypatch.setenv("LNREF_MEMORY_LIMIT", "lots")
    with pytest.raises(lnref.ConfigError, match="LNREF_MEMORY_LIMIT"):
        available_memory()
    assert MAX_SWEEP_RUNS == 10**7


def test_a_sweeps_rows_are_counted_for_every_run_not_every_size(monkeypatch):
    """The rows a sweep holds grow with its runs (cells x replicates), however few distinct run sizes its grid has:
    a grid over mu_norm alone (one size) with a limit between one size's rows and all of them is refused."""
    from lnref.training.resources import estimate_sweep_memory

    base = lnref.Config(n=8, d=16, m=2, steps=5)
    one_size = estimate_sweep_memory([base], replicates=10, workers=1, columns=12)
    all_rows = estimate_sweep_memory([base], replicates=10, workers=1, columns=12, runs=2000 * 10)
    rows_per_run = (one_size.parts["rows and jobs"]) / 10
    assert all_rows.parts["rows and jobs"] == rows_per_run * 2000 * 10
    limit = (one_size.total + all_rows.total) // 2
    monkeypatch.setenv("LNREF_MEMORY_LIMIT", str(limit))
    grid = {"mu_norm": [round(0.01 * i, 2) for i in range(1, 2001)]}
    with pytest.raises(ResourceError, match="fewer replicates= or a coarser grid"):
        lnref.sweep(base, grid, replicates=10, executor=lnref.sweeps.SerialExecutor())
