"""Where numba's threads run during a run (issue 25): each on its own CPU on a quiet machine.  Speed only.

On the 2-CPU virtual machines this project is measured on, Linux packs a worker thread that is busy only for short
spells (the coefficient engine's parallel regions of 10-20 us) onto its master's CPU once the process has paused
for a moment (0.3 s is enough); the two threads then share one CPU for the rest of the run: at (n, m) = (200, 20)
a coefficient step takes 200 us against 45 us on two CPUs and 78 us on one thread; the weight engine at
(20, 1000, 10) ran 5200 steps/s against 22000 (bench/README.md, issue 25).  :func:`spread`, entered by
:func:`lnref.training.num_threads`, keeps them apart:

- when the block starts, if it may (:func:`spread_blocker`), it reads where each of numba's threads runs and its
  affinity (one parallel region of :func:`lnref.kernels.placement.thread_affinity`), chooses one CPU per thread
  (:func:`spread_plan`: the caller keeps its CPU) and pins each thread to its CPU;
- when the block ends every thread gets its own affinity back (one more region).

The caller (OpenMP's master, thread 0) runs pinned for the block: pinning it only around each kernel call cost the
coefficient engine 10-15% in runs of short calls (it lost its CPU, and its caches, between calls).  So code run
inside the block runs on one CPU: :func:`lnref.train` runs its callbacks (``progress``, ``on_checkpoint``) outside
the pin (:func:`unpinned`), and at the end of the block every thread started during it that still has the caller's
one-CPU mask (it inherited the pin) gets the caller's own mask back.  A process forked inside the block keeps the
pin: start process pools outside ``num_threads`` blocks of two or more threads.

It may when: two or more threads, a machine with at least that many CPUs free when the block starts
(:func:`lnref.training.threads.machine_state`: pinning a thread next to a busy program would make it wait),
Linux, numba's ``omp`` threading layer (its thread 0 is the caller), compiled kernels, no placement chosen by the
user (``OMP_PROC_BIND``, ``OMP_PLACES``, ``GOMP_CPU_AFFINITY``, ``KMP_AFFINITY``) and ``LNREF_SPREAD`` not 0.
One block at a time per process (a nested or concurrent one leaves the placement as it is).  The bits never depend
on where a thread runs (docs/DESIGN.md "Numerics").  tests/test_placement.py checks the masks inside and after a
block, on this machine's own threads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator

from . import threads as _threads

__all__ = ["ENV_SPREAD", "spread", "unpinned", "spread_plan", "spread_blocker", "setup_blocker", "spread_reason"]

# the settings and the check that hold whatever the machine's load live in lnref.training.threads, whose thread
# counts depend on them (this module imports it, never the other way round)
ENV_SPREAD = _threads.ENV_SPREAD
USER_PLACE_VARS = _threads.USER_PLACE_VARS
setup_blocker = _threads.setup_blocker
# seconds for which spread() reuses a machine_state reading (the thread count was decided from it just before)
STATE_REUSE = 0.05
_lock = threading.Lock()  # one spread block at a time per process
_last_reason = "no run with two or more threads yet"


def spread_reason() -> str:
    """Why the last block with two or more threads was or was not spread over CPUs (for benchmarks and tests)."""
    return _last_reason


def spread_blocker(threads: int) -> str | None:
    """None when a block with ``threads`` threads may be spread (module docs), else why not."""
    if threads < 2:
        return "one thread"
    why = setup_blocker()
    if why is not None:
        return why
    cpus, others = _threads.machine_state(max_age=STATE_REUSE)
    if int(cpus - others + 0.5) < threads:
        return f"busy machine ({cpus} CPUs, {others:g} other programs running)"
    return None


@functools.cache
def _siblings(cpu: int) -> frozenset[int]:
    """The CPUs sharing a core with ``cpu`` (SMT siblings, itself included); {cpu} where Linux does not say."""
    try:
        with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as fh:
            text = fh.read().strip()
    except OSError:
        return frozenset({cpu})
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if lo.strip().isdigit():
            out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out or {cpu})


def spread_plan(current: list[int], allowed: list[set[int]]) -> list[int] | None:
    """One CPU per thread, all different: thread t runs now on ``current[t]`` and may run on ``allowed[t]``.

    Thread 0 (the caller, OpenMP's master) keeps its CPU; every other thread keeps its own when no chosen CPU is
    on that core (SMT siblings share a core's arithmetic units), else takes a free allowed CPU, first one on a core
    no chosen CPU shares, then the lowest.  None when some thread has no free CPU (more threads than CPUs) or a
    current CPU is unknown (-1)."""
    chosen: list[int | None] = [None] * len(current)
    taken: set[int] = set()
    busy_cores: set[int] = set()
    for t, cpu in enumerate(current):
        if cpu < 0:
            return None
        if cpu in allowed[t] and cpu not in busy_cores:
            chosen[t] = cpu
            taken.add(cpu)
            busy_cores |= _siblings(cpu)
        elif t == 0:
            return None
    for t in range(len(current)):
        if chosen[t] is not None:
            continue
        free = sorted(allowed[t] - taken)
        if not free:
            return None
        own_core = [c for c in free if c not in busy_cores]
        cpu = (own_core or free)[0]
        chosen[t] = cpu
        taken.add(cpu)
        busy_cores |= _siblings(cpu)
    return [int(c) for c in chosen if c is not None]


def _mask_cpus(row) -> set[int]:
    """The CPUs of a cpu_set_t row (bit c of byte c // 8 is CPU c)."""
    import numpy as np

    return set(np.flatnonzero(np.unpackbits(row, bitorder="little")).tolist())


@contextlib.contextmanager
def spread(threads: int) -> Iterator[bool]:
    """While the block runs, numba's ``threads`` threads run each on its own CPU; after it every thread has its own
    affinity back (and so has every thread started during the block that inherited the caller's pin).  Yields
    whether they were spread (why or why not: :func:`spread_reason`).  Costs two parallel regions and a few system
    calls per block (module docs)."""
    global _last_reason
    if threads < 2 or not _lock.acquire(blocking=False):
        yield False
        return
    saved = plan = None
    before: set[str] = set()
    try:
        why = spread_blocker(threads)
        if why is None:
            before = _task_ids()
            saved, plan, why = _place(threads)
        if saved is not None and plan is not None:
            _caller.pin = (plan[0], _mask_cpus(saved[0]))
        _last_reason = why or f"spread over CPUs {plan}"
        yield saved is not None
    finally:
        try:
            if saved is not None and plan is not None:
                _caller.pin = None
                _restore(saved)
                _release_new_threads(before, plan[0], _mask_cpus(saved[0]))
        finally:
            _lock.release()


_caller = threading.local()  # .pin: (the caller's CPU, its own mask) while its spread block runs


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Run the block with the calling thread's own affinity when a :func:`spread` block of this thread pinned it
    (lnref.train runs the user's callbacks so); else nothing.  Two system calls."""
    pin = getattr(_caller, "pin", None)
    if pin is None:
        yield
        return
    cpu, mask = pin
    try:
        os.sched_setaffinity(0, mask)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the CPU was taken away: it runs where it is
            os.sched_setaffinity(0, {cpu})


def _task_ids() -> set[str]:
    """The thread ids of this process (``/proc/self/task``)."""
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def _release_new_threads(before: set[str], pinned_cpu: int, caller_mask: set[int]) -> None:
    """Threads started during the block (not in ``before``) that still have the caller's pinned mask {pinned_cpu}
    get ``caller_mask`` (the caller's mask before the block): they inherited the pin from the caller."""
    for tid in _task_ids() - before:
        try:
            if os.sched_getaffinity(int(tid)) == {pinned_cpu}:
                os.sched_setaffinity(int(tid), caller_mask)
        except (OSError, ValueError):
            continue  # gone, or not ours to change


def _place(threads: int):
    """Pin thread t of numba's team to its CPU of :func:`spread_plan`; (the team's saved masks, the plan, None) or
    (None, None, why not)."""
    import numpy as np

    from ..kernels.placement import MASK_BYTES, thread_affinity

    saved = np.zeros((threads, MASK_BYTES), np.uint8)
    masks = np.zeros_like(saved)
    cpus = np.full(threads, -1, np.int32)
    runs = np.zeros(threads, np.int64)
    codes = np.zeros((threads, 2), np.int32)
    thread_affinity(False, masks, saved, cpus, runs, codes)
    if (runs == 0).any() or (codes[:, 0] != 0).any():
        return None, None, "a thread of numba's team could not be reached"
    plan = spread_plan([int(c) for c in cpus], [_mask_cpus(row) for row in saved])
    if plan is None:
        return None, None, f"no distinct CPU for each thread (threads on CPUs {cpus.tolist()})"
    for t, cpu in enumerate(plan):
        masks[t, cpu // 8] = 1 << (cpu % 8)
    runs[:] = 0
    codes[:] = 0
    thread_affinity(True, masks, np.zeros_like(saved), cpus, runs, codes)
    if (runs == 0).any() or (codes[:, 1] != 0).any():
        _restore(saved)
        return None, None, "a thread's affinity could not be set"
    return saved, plan, None


def _restore(saved) -> None:
    """Give thread t of numba's team its mask saved[t] back (tried again should a thread miss the region)."""
    import numpy as np

    from ..kernels.placement import thread_affinity

    threads = saved.shape[0]
    done = np.zeros(threads, bool)
    for _ in range(4):
        runs = np.zeros(threads, np.int64)
        codes = np.zeros((threads, 2), np.int32)
        thread_affinity(True, saved, np.zeros_like(saved), np.zeros(threads, np.int32), runs, codes)
        done |= (runs > 0) & (codes[:, 1] == 0)
        if done.all():
            return
