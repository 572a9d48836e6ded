"""Spreading numba's threads over CPUs for a run (lnref.training.threads.spread, lnref.kernels.placement; issue 25).

The plan is a pure function (tested on made-up CPU sets); the placement itself is checked on this machine's own
threads: inside the block each thread of numba's team is pinned to its own CPU, after it every thread has its
affinity back, and nothing is pinned when the machine is busy, the user chose a placement or LNREF_SPREAD=0.
Speed is measured in bench/ (never asserted here).
"""

import os
import sys

import numba
import numpy as np
import pytest

import lnref
from lnref.training import num_threads
from lnref.training import placement as _placement

QUIET = (2, 0.0)
BUSY = (2, 1.0)


# ----------------------------------------------------------------------------------- the plan
def test_plan_keeps_the_callers_cpu_and_gives_every_thread_its_own(monkeypatch):
    monkeypatch.setattr(_placement, "_siblings", lambda cpu: frozenset({cpu}))
    assert _placement.spread_plan([3, 5], [{0, 1, 2, 3, 4, 5}] * 2) == [3, 5]  # already apart: nobody moves
    assert _placement.spread_plan([1, 1], [{0, 1}] * 2) == [1, 0]  # packed: the worker moves
    assert _placement.spread_plan([0, 0, 0, 2], [{0, 1, 2, 3}] * 4) == [0, 1, 3, 2]
    # a worker may only go where its own mask allows
    assert _placement.spread_plan([0, 0], [{0, 1, 2}, {0, 2}]) == [0, 2]


def test_plan_prefers_cpus_on_a_core_nobody_uses(monkeypatch):
    """SMT siblings: with cores {0, 1} and {2, 3} and the caller on 0, the second thread goes to core {2, 3}."""
    cores = {0: {0, 1}, 1: {0, 1}, 2: {2, 3}, 3: {2, 3}}
    monkeypatch.setattr(_placement, "_siblings", lambda cpu: frozenset(cores[cpu]))
    assert _placement.spread_plan([0, 0], [{0, 1, 2, 3}] * 2) == [0, 2]
    assert _placement.spread_plan([0, 1], [{0, 1, 2, 3}] * 2) == [0, 2]  # off the caller's sibling
    assert _placement.spread_plan([0, 3], [{0, 1, 2, 3}] * 2) == [0, 3]  # already on a core of its own
    assert _placement.spread_plan([0, 0, 0], [{0, 1, 2, 3}] * 3) == [0, 2, 1]  # then a sibling, lowest first
    assert _placement.spread_plan([0, 1], [{0, 1, 2, 3}, {0, 1}]) == [0, 1]  # a sibling is all its mask allows


@pytest.mark.parametrize(
    "current, allowed",
    [
        ([0, 0, 0], [{0, 1}] * 3),  # more threads than CPUs
        ([0, -1], [{0, 1}] * 2),  # a thread's CPU unknown
        ([1, 0], [{0}, {0, 1}]),  # the caller runs outside its own mask (it moved): no plan
    ],
)
def test_plan_is_none_when_the_threads_cannot_be_spread(monkeypatch, current, allowed):
    monkeypatch.setattr(_placement, "_siblings", lambda cpu: frozenset({cpu}))
    assert _placement.spread_plan(current, allowed) is None


def test_mask_rows_decode_like_glibcs_cpu_set():
    from lnref.kernels.placement import MASK_BYTES

    row = np.zeros(MASK_BYTES, np.uint8)
    row[0] = 0b00000101  # CPUs 0 and 2
    row[1] = 0b10000000  # CPU 15
    row[MASK_BYTES - 1] = 0b10000000  # CPU 1023
    assert _placement._mask_cpus(row) == {0, 2, 15, 1023}


# ----------------------------------------------------------------------------------- on this machine's threads
def _layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:
        return "not loaded"


needs_two = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or numba.config.NUMBA_NUM_THREADS < 2
    or len(os.sched_getaffinity(0)) < 2
    or numba.config.DISABLE_JIT
    or _layer() != "omp",
    reason="needs Linux, two numba threads and two CPUs this process may use, compiled kernels, numba's omp layer",
)


def _team(threads):
    """Per thread of numba's team of ``threads``: (CPU it is on, the CPUs of its affinity mask)."""
    from lnref.kernels.placement import MASK_BYTES, thread_affinity

    saved = np.zeros((threads, MASK_BYTES), np.uint8)
    cpus = np.full(threads, -1, np.int32)
    runs = np.zeros(threads, np.int64)
    codes = np.zeros((threads, 2), np.int32)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        thread_affinity(False, np.zeros_like(saved), saved, cpus, runs, codes)
    finally:
        numba.set_num_threads(old)
    assert (runs >= 1).all() and (codes[:, 0] == 0).all()
    return [(int(c), _placement._mask_cpus(row)) for c, row in zip(cpus, saved)]


@pytest.fixture(scope="module")
def original():
    """The team's masks before any test of this module placed anything (each test must leave them so)."""
    return [mask for _cpu, mask in _team(2)] if numba.config.NUMBA_NUM_THREADS >= 2 else None


@pytest.fixture
def quiet(monkeypatch):
    for var in (_placement.ENV_SPREAD, *_placement.USER_PLACE_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_placement._threads, "machine_state", lambda max_age=0.0: QUIET)


@needs_two
def test_inside_the_block_each_thread_runs_on_its_own_cpu_and_after_it_the_masks_are_back(quiet, original):
    before = [mask for _cpu, mask in _team(2)]
    assert before == original
    caller_mask = os.sched_getaffinity(0)
    with num_threads(2) as n:
        assert n == 2
        inside = _team(2)
        with _placement.unpinned():  # the caller's own mask, for the user's callbacks
            caller_unpinned = os.sched_getaffinity(0)
        caller_after_unpinned = os.sched_getaffinity(0)
        reason = _placement.spread_reason()
    assert reason.startswith("spread over CPUs"), reason
    assert all(len(mask) == 1 for _cpu, mask in inside), inside  # pinned: one CPU each
    assert len({next(iter(mask)) for _cpu, mask in inside}) == 2  # ... and different ones
    assert all(cpu in mask for cpu, mask in inside)  # running where pinned
    assert caller_unpinned == caller_mask and caller_after_unpinned == inside[0][1]
    assert [mask for _cpu, mask in _team(2)] == before
    assert os.sched_getaffinity(0) == caller_mask


@needs_two
def test_the_masks_come_back_when_the_block_raises(quiet, original):
    before = [mask for _cpu, mask in _team(2)]
    assert before == original
    with pytest.raises(RuntimeError, match="inside"), num_threads(2):
        assert all(len(mask) == 1 for _cpu, mask in _team(2))
        raise RuntimeError("inside")
    assert [mask for _cpu, mask in _team(2)] == before


@needs_two
def test_a_nested_block_leaves_the_outer_placement_alone(quiet, original):
    before = [mask for _cpu, mask in _team(2)]
    assert before == original
    with num_threads(2):
        outer = [mask for _cpu, mask in _team(2)]
        with num_threads(2):
            assert [mask for _cpu, mask in _team(2)] == outer
        assert [mask for _cpu, mask in _team(2)] == outer
    assert [mask for _cpu, mask in _team(2)] == before


@needs_two
@pytest.mark.parametrize(
    "env, state, why",
    [
        ({}, BUSY, "busy machine"),
        ({_placement.ENV_SPREAD: "0"}, QUIET, "LNREF_SPREAD=0"),
        ({"OMP_PROC_BIND": "false"}, QUIET, "placement set by the user (OMP_PROC_BIND)"),
        ({"GOMP_CPU_AFFINITY": "0-1"}, QUIET, "placement set by the user (GOMP_CPU_AFFINITY)"),
    ],
)
def test_nothing_is_pinned_on_a_busy_machine_or_when_the_user_says_so(monkeypatch, original, env, state, why):
    for var in (_placement.ENV_SPREAD, *_placement.USER_PLACE_VARS):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(_placement._threads, "machine_state", lambda max_age=0.0: state)
    before = [mask for _cpu, mask in _team(2)]
    assert before == original
    with num_threads(2):
        assert [mask for _cpu, mask in _team(2)] == before
    assert _placement.spread_reason().startswith(why), _placement.spread_reason()


@needs_two
def test_no_code_of_the_users_runs_pinned(quiet, original):
    """lnref.train's callbacks (progress, checkpoints) run between kernel calls, with the caller's own mask: a
    thread or process they started would otherwise inherit a one-CPU pin for good."""
    caller_mask = os.sched_getaffinity(0)
    seen = []
    cfg = lnref.Config(n=200, d=2000, m=20, steps=40, n_test=0, engine="coefficients", sampling="gram", log_every=10)
    lnref.train(cfg, threads=2, progress=lambda step, total: seen.append(os.sched_getaffinity(0)))
    assert _placement.spread_reason().startswith("spread over CPUs"), _placement.spread_reason()
    assert len(seen) >= 4 and all(mask == caller_mask for mask in seen), seen
    assert [mask for _cpu, mask in _team(2)] == original


@needs_two
def test_a_thread_started_inside_the_block_does_not_keep_the_callers_pin(quiet, original):
    """A thread the caller starts inside the block inherits the caller's one-CPU mask; after the block it has the
    caller's own mask again, and a thread that set a mask of its own keeps it."""
    import threading

    caller_mask = os.sched_getaffinity(0)
    stop = threading.Event()
    plain = threading.Thread(target=stop.wait, args=(30,))
    chosen = threading.Thread(target=stop.wait, args=(30,))
    try:
        with num_threads(2):
            pinned = os.sched_getaffinity(0)
            assert len(pinned) == 1
            plain.start()
            chosen.start()
            assert plain.native_id is not None and chosen.native_id is not None
            assert os.sched_getaffinity(plain.native_id) == pinned  # inherited from the caller
            own = {max(caller_mask - pinned)}  # a mask of its own: another CPU the caller may use
            os.sched_setaffinity(chosen.native_id, own)
        assert os.sched_getaffinity(0) == caller_mask
        assert os.sched_getaffinity(plain.native_id) == caller_mask
        assert os.sched_getaffinity(chosen.native_id) == own
    finally:
        stop.set()
        for t in (plain, chosen):
            if t.is_alive():
                t.join()


@needs_two
def test_one_thread_is_never_pinned(quiet, original):
    before = [mask for _cpu, mask in _team(2)]
    assert before == original
    with num_threads(1):
        assert [mask for _cpu, mask in _team(2)] == before


@needs_two
def test_a_spread_run_gives_the_same_bits_as_an_unspread_one(quiet, monkeypatch):
    cfg = lnref.Config(
        n=200, d=2000, m=20, steps=30, n_test=50, engine="coefficients", sampling="gram", seed=3, log_every=10
    )
    spread = lnref.train(cfg, threads=2)
    assert _placement.spread_reason().startswith("spread over CPUs")
    monkeypatch.setenv(_placement.ENV_SPREAD, "0")
    plain = lnref.train(cfg, threads=2)
    assert _placement.spread_reason() == "LNREF_SPREAD=0"
    for key in spread.history:
        np.testing.assert_array_equal(spread.history[key], plain.history[key], err_msg=key)
    np.testing.assert_array_equal(spread.trace["gamma"], plain.trace["gamma"])
