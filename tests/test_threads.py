"""The thread policy (lnref/training/threads.py, issue 13): default thread count, its override, the OpenMP wait policy.

Speed itself is measured in bench/bench_weights.py (never asserted here); these tests check the decisions.
"""

import json
import os
import subprocess
import sys

import numba
import pytest

import lnref
from lnref.config import ConfigError
from lnref.training import threads as _threads

ALL = numba.config.NUMBA_NUM_THREADS


BUSY = (2, 1.0)  # two CPUs, one other program running: one CPU free for us
QUIET = (2, 0.0)


def test_busy_machine_one_thread_below_the_region_work_and_all_above(monkeypatch):
    monkeypatch.delenv(_threads.ENV_THREADS, raising=False)
    w = _threads.REGION_WORK
    assert _threads.default_threads(w * 2 - 1, regions=2, state=BUSY) == 1
    assert _threads.default_threads(w * 2, regions=2, state=BUSY) == ALL
    assert _threads.default_threads(None, state=BUSY) == ALL
    # a machine counted as busy whatever its size: 8 CPUs, 7.2 used by others
    assert _threads.default_threads(w * 2 - 1, regions=2, state=(8, 7.2)) == 1


@pytest.mark.parametrize("engine", ["weights", "coefficients"])
def test_quiet_machine_threads_from_the_engine_threshold_and_the_free_cpus(monkeypatch, engine):
    monkeypatch.delenv(_threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(_threads, "setup_blocker", lambda: None)  # threads that can be spread
    w = _threads.QUIET_REGION_WORK[engine]
    assert w <= _threads.busy_region_work(engine)  # a quiet machine splits no region a busy one would not
    assert _threads.default_threads(w * 2 - 1, regions=2, engine=engine, state=QUIET) == 1
    assert _threads.default_threads(w * 2, regions=2, engine=engine, state=QUIET) == min(ALL, 2)
    # never more threads than free CPUs: 8 CPUs, 5 busy -> 3 free
    assert _threads.default_threads(w * 2, regions=2, engine=engine, state=(8, 5.0)) == min(ALL, 3)


def test_the_coefficient_engine_takes_two_threads_where_its_parallel_kernel_runs(monkeypatch):
    """On a quiet machine the coefficient engine's default is two threads exactly when a step is large enough for
    its parallel kernel (PARALLEL_WORK multiply-adds in two regions): below, a second thread would only cost."""
    from lnref.data.gram_stats import PARALLEL_WORK

    monkeypatch.delenv(_threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(_threads, "setup_blocker", lambda: None)  # threads that can be spread
    regions = _threads.REGIONS_PER_STEP["coefficients"]
    assert _threads.QUIET_REGION_WORK["coefficients"] * regions == PARALLEL_WORK
    cfg = lnref.Config(n=200, d=2000, m=20, engine="coefficients", sampling="gram")  # 2m n^2 = 1.6e6
    assert _threads.default_threads(*_threads.step_work(cfg), state=QUIET) == min(ALL, 2)
    assert _threads.default_threads(*_threads.step_work(cfg.replace(n=150)), state=QUIET) == 1  # 9e5
    assert _threads.default_threads(*_threads.step_work(cfg), state=BUSY) == 1  # a busy machine: REGION_WORK
    assert _threads.busy_region_work("coefficients") == _threads.REGION_WORK


def test_without_spreading_the_coefficient_engine_keeps_one_thread_for_short_regions(monkeypatch):
    """With the threads left where Linux puts them (LNREF_SPREAD=0, a placement of the user's, ...) two threads of
    the coefficient engine lose to one below UNSPREAD_COEFFICIENT_WORK per region after an idle pause (the worker is
    packed onto the caller's CPU): the default keeps one there, quiet or busy."""
    from lnref.training import placement

    monkeypatch.delenv(_threads.ENV_THREADS, raising=False)
    monkeypatch.setenv(placement.ENV_SPREAD, "0")
    w = _threads.UNSPREAD_COEFFICIENT_WORK
    assert _threads.busy_region_work("coefficients") == w > _threads.QUIET_REGION_WORK["coefficients"]
    cfg = lnref.Config(n=200, d=2000, m=20, engine="coefficients", sampling="gram")
    for state in (QUIET, BUSY):
        assert _threads.default_threads(*_threads.step_work(cfg), state=state) == 1
        assert _threads.default_threads(w * 2 - 1, regions=2, engine="coefficients", state=state) == 1
    assert _threads.default_threads(w * 2, regions=2, engine="coefficients", state=QUIET) == min(ALL, 2)
    # the weight engine's thresholds do not depend on spreading
    assert _threads.busy_region_work("weights") == _threads.REGION_WORK


def test_machine_state_reads_the_affinity_and_the_load():
    cpus, others = _threads.machine_state()
    assert cpus == len(os.sched_getaffinity(0))
    assert isinstance(others, float) and others >= 0.0


def test_own_threads_are_not_other_programs(monkeypatch, tmp_path):
    """Runnable threads of this process (OpenBLAS's workers spin ~100 ms after a matrix product) are not counted
    as other programs: they made a quiet machine look busy (issue 25)."""
    fake = tmp_path / "loadavg"
    fake.write_text("0.90 0.50 0.30 3/200 12345\n")
    monkeypatch.setattr(_threads, "LOADAVG", str(fake))
    monkeypatch.setattr(_threads, "own_running", lambda: 3)
    assert _threads.machine_state()[1] == 0.0
    monkeypatch.setattr(_threads, "own_running", lambda: 1)
    assert _threads.machine_state()[1] == 0.9  # two others runnable, the load average the smaller
    assert _threads.own_running() >= 1


def test_step_work_counts_the_engine_work_per_region():
    small = lnref.Config(n=20, d=1000, m=10)
    assert _threads.step_work(small) == (2.0 * 20 * 20 * 1000, _threads.REGIONS_PER_STEP["weights"], "weights")
    assert _threads.step_work(small.replace(engine="coefficients")) == (
        20.0 * 20 * 20,
        _threads.REGIONS_PER_STEP["coefficients"],
        "coefficients",
    )


@pytest.mark.parametrize("value, expected", [("1", 1), ("all", ALL), (" AUTO ", None), ("", None)])
def test_env_override_of_the_default(monkeypatch, value, expected):
    monkeypatch.setenv(_threads.ENV_THREADS, value)
    got = _threads.resolve(None, work=1.0)  # tiny work: auto gives 1
    assert got == (1 if expected is None else expected)
    assert _threads.resolve(1, work=1e12) == 1  # an explicit argument wins over everything


@pytest.mark.parametrize("value", ["0", str(ALL + 1), "two", "1.5"])
def test_bad_env_value_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(_threads.ENV_THREADS, value)
    with pytest.raises(ConfigError, match=f"{_threads.ENV_THREADS}=.*not allowed.*integer from 1 to {ALL}"):
        _threads.resolve(None, work=1.0)


@pytest.mark.parametrize("bad", [0, ALL + 1, 1.0, True, "2"])
def test_bad_threads_argument_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=r"threads=.*not allowed"):
        lnref.train(lnref.Config(n=4, d=8, m=1, steps=1, n_test=0), threads=bad)


@pytest.mark.parametrize("state", [BUSY, QUIET])
def test_train_default_threads_follow_the_work(monkeypatch, state):
    monkeypatch.delenv(_threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(_threads, "machine_state", lambda max_age=0.0: state)
    tiny = lnref.Config(n=4, d=8, m=1, steps=1, log_every=0, n_test=0)
    assert lnref.train(tiny).threads == 1
    # 2 (2m) n d = 2 * 4 * 100 * 5000 = 4e6 multiply-adds per step in 2 regions: 2e6 = REGION_WORK per region
    big = tiny.replace(n=100, d=5000, m=2)
    assert _threads.step_work(big)[0] / _threads.step_work(big)[1] >= _threads.REGION_WORK
    assert lnref.train(big).threads == min(ALL, 2)


_PROBE = """
import json, os, lnref, numba
from lnref.training import threads as _threads
print(json.dumps({"policy": _threads.wait_policy(), "env": os.environ.get("OMP_WAIT_POLICY"),
                  "spin_env": os.environ.get("GOMP_SPINCOUNT"),
                  "layer_loaded": bool(numba.np.ufunc.parallel._is_initialized)}))
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**base, **env}, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_wait_policy_is_a_bounded_spin_by_default_and_leaves_the_environment_alone():
    got = _probe()
    assert got == {
        "policy": f"bounded spin, GOMP_SPINCOUNT={_threads.SPIN_COUNT} (set by lnref)",
        "env": None,
        "spin_env": None,
        "layer_loaded": True,
    }


def test_wait_policy_set_by_the_user_is_kept():
    got = _probe(OMP_WAIT_POLICY="active")
    assert got["policy"] == "set by the user: OMP_WAIT_POLICY=active"
    assert got["env"] == "active"
