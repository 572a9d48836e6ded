"""How many threads the numba kernels use, how idle threads wait and where they run (issues 13 and 25: fast on a
quiet machine and on a busy one).

Three decisions, all speed only (every kernel gives the same bits for any thread count, docs/DESIGN.md "Numerics"):

1. **Wait policy** (fixed when numba's threading layer loads, i.e. when lnref is imported).  numba's ``omp``
   threading layer is GNU OpenMP (libgomp), whose idle threads by default spin for ``GOMP_SPINCOUNT`` = 300 000
   pause instructions (milliseconds, longer than a scheduler time slice) before sleeping.  With another process
   busy on a 2-core machine, one of our two threads is often descheduled; the other then spins at the barrier,
   taking the CPU time the late thread needs, and every parallel region costs a time slice instead of its work
   (issue 13).  A fully passive wait (sleep at once, wake on a futex) fixes that but makes every region pay a
   wake-up on a quiet machine, tens of microseconds in a virtual machine: more than a small region's work
   (issue 25).  lnref therefore sets a **bounded spin**, ``GOMP_SPINCOUNT`` = :data:`SPIN_COUNT` (about
   ten microseconds, libgomp's own count for an oversubscribed machine): long enough to span the serial gap
   between two regions of one ``advance`` call, short enough that a spinning thread hands its core back almost
   at once.  libgomp reads its environment once, when it is loaded, so :func:`apply_wait_policy` sets the
   variable only around loading numba's threading layer, then restores the environment: other OpenMP libraries
   and child processes are not affected.  It does nothing when the user set ``OMP_WAIT_POLICY``,
   ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` (theirs is kept; ``OMP_WAIT_POLICY=passive`` gives the wait of
   issue 13, ``active`` OpenMP's spinning) or when the threading layer was already loaded before lnref.
2. **Thread count**, decided when a run starts (``threads=None``, the default of :func:`lnref.train`) by
   :func:`default_threads` from the work of one parallel region and the machine's state at that moment
   (:func:`machine_state`: the CPUs this process may use, ``os.sched_getaffinity``, less the other programs
   running, from ``/proc/loadavg``):

   - a **busy** machine (fewer than two CPUs free for us): one thread unless a region carries at least
     :func:`busy_region_work` multiply-adds (:data:`REGION_WORK`, where a descheduled partner costs less than the
     second core gains, as before issue 25; or the engine's quiet threshold where that is higher);
   - a **quiet** machine: as many threads as there are free CPUs (at most numba's) once a region carries
     :data:`QUIET_REGION_WORK` [engine] multiply-adds, the point where a second thread, woken from its bounded
     spin, starts to gain (bench/bench_weights.py and bench/bench_coefficients.py ``--threads-table``; for the
     coefficient engine also after an idle pause, see the constant).

   ``LNREF_THREADS`` (an integer, or ``all``) overrides the default; an explicit ``threads=`` argument always
   wins.
3. **Placement** (:mod:`lnref.training.placement`, entered by :func:`lnref.training.num_threads`): with two or
   more threads on a quiet Linux machine, each of numba's threads runs on its own CPU for the block.  Where that
   cannot be done (:func:`setup_blocker`), the coefficient engine's quiet threshold is
   :data:`UNSPREAD_COEFFICIENT_WORK`.
"""

from __future__ import annotations

import os
import sys
import time

import numba

__all__ = [
    "REGION_WORK",
    "QUIET_REGION_WORK",
    "busy_region_work",
    "UNSPREAD_COEFFICIENT_WORK",
    "setup_blocker",
    "SPIN_COUNT",
    "ENV_THREADS",
    "apply_wait_policy",
    "wait_policy",
    "default_threads",
    "machine_state",
    "own_running",
    "step_work",
    "resolve",
    "env_threads",
]

# Multiply-adds a parallel region must carry before a second thread pays on a BUSY machine (speed only, never
# numerical): a partner thread descheduled by another program holds up the region's barrier, which only a large
# region outweighs (bench/bench_weights.py, the "loaded" rows; figures in bench/README.md).
REGION_WORK = 2_000_000
# The same on a QUIET machine, per engine: with the bounded spin a second thread joins a region in a few
# microseconds, so it pays from a few hundred microseconds of one thread's work.  The coefficient engine's threshold
# is where its parallel kernel starts (lnref.data.gram_stats.PARALLEL_WORK = 1e6 multiply-adds per step, two regions):
# with the threads spread over CPUs (lnref.training.placement), lnref.train at (n, m) = (160, 20), 200 steps after
# a 0.3 s pause, takes 10.1 ms on two threads against 15.0 ms on one; 9.9 against 17.0 ms at n = 200
# (bench/README.md, issue 25).  Without spreading it has to be 5e6 (UNSPREAD_COEFFICIENT_WORK): the second thread
# is packed onto the first one's CPU.
QUIET_REGION_WORK = {"weights": 250_000, "coefficients": 500_000}
# The coefficient engine's quiet threshold when its threads cannot be spread (LNREF_SPREAD=0, a placement of the
# user's, another threading layer, not Linux): 5e6, where two packed threads start to gain (bench/README.md, issue 25)
UNSPREAD_COEFFICIENT_WORK = 5_000_000
# libgomp's spin before sleeping (pause instructions; 300 000 is its default, 1 000 what it uses itself when a
# machine is oversubscribed)
SPIN_COUNT = 1000
ENV_THREADS = "LNREF_THREADS"
# the kernel's load figures: 1, 5, 15-minute averages, then "runnable threads/all threads" (read by machine_state)
LOADAVG = "/proc/loadavg"
# seconds between machine_state's two looks at the runnable threads
RECHECK_PAUSE = 0.0001
_USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
# lnref.training.placement: its switch, and the variables with which a user chooses where OpenMP's threads run
# (lnref then places none)
ENV_SPREAD = "LNREF_SPREAD"
USER_PLACE_VARS = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY")
_policy = "not applied yet"


def apply_wait_policy() -> str:
    """Load numba's threading layer with a passive OpenMP wait policy unless the user chose one (module docs).

    Returns the policy in force, as :func:`wait_policy` reports it.  Idempotent.
    """
    global _policy
    if _policy != "not applied yet":
        return _policy
    from numba.np.ufunc import parallel as _par

    user = [f"{v}={os.environ[v]}" for v in _USER_WAIT_VARS if v in os.environ]
    if user:
        _policy = "set by the user: " + ", ".join(user)
    elif _par._is_initialized:
        _policy = "OpenMP default (spinning): numba's threading layer was loaded before lnref"
    else:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
        try:
            _par._launch_threads()
        finally:
            del os.environ["GOMP_SPINCOUNT"]
        _policy = f"bounded spin, GOMP_SPINCOUNT={SPIN_COUNT} (set by lnref)"
    return _policy


def wait_policy() -> str:
    """The OpenMP wait policy lnref applied, in words (for benchmarks and run metadata)."""
    return _policy


def env_threads() -> int | None:
    text = os.environ.get(ENV_THREADS, "").strip().lower()
    if text in ("", "auto"):
        return None
    top = numba.config.NUMBA_NUM_THREADS
    if text == "all":
        return top
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= top:
        raise ValueError(
            f"{ENV_THREADS}={os.environ[ENV_THREADS]!r} is not allowed: use an integer from 1 to "
            f"{top} (numba's NUMBA_NUM_THREADS), 'all' or 'auto'"
        )
    return value


def machine_state(max_age: float = 0.0) -> tuple[int, float]:
    """(CPUs this process may run on, other programs running now), read when a run starts; a reading at most
    ``max_age`` seconds old is reused (:func:`lnref.training.placement.spread` reuses the one
    :func:`default_threads` has just made).

    The CPUs are ``os.sched_getaffinity(0)`` (``os.cpu_count()`` where that is missing).  The other programs are
    the smaller of the 1-minute load average and the runnable threads of ``/proc/loadavg`` less this process's
    own runnable threads (:func:`own_running`): both must say the machine is busy (the load average lags by a
    minute and counts this process's own recent work; the instantaneous count is one noisy sample).  Our own
    threads are not "other programs": right after a NumPy matrix product, OpenBLAS's worker threads spin for
    about 100 ms and are runnable, and counting them made a run on a quiet machine take one thread (issue 25).
    The runnable threads are looked at twice, :data:`RECHECK_PAUSE` apart, and the fewer taken: a kernel worker
    that happens to run at one look (for microseconds) is not a busy machine.  Where ``/proc/loadavg`` is missing,
    the load average alone.
    """
    global _last_state
    now = time.monotonic()
    if max_age > 0 and now - _last_state[0] <= max_age:
        return _last_state[1]
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        others = float("inf")
        for look in range(2):  # the fewer of two looks: a kernel worker runs for microseconds, a program for longer
            if look:
                time.sleep(RECHECK_PAUSE)
            own = own_running()
            with open(LOADAVG) as fh:
                fields = fh.read().split()
            own = max(own, own_running())  # a thread of ours may stop running between the two reads
            others = min(others, float(fields[0]), max(0, int(fields[3].split("/")[0]) - own))
    except (OSError, ValueError, IndexError):
        try:
            others = os.getloadavg()[0]
        except OSError:
            others = 0.0
    state = (max(1, cpus), float(others))
    _last_state = (now, state)
    return state


_last_state: tuple[float, tuple[int, float]] = (-float("inf"), (1, 0.0))


def own_running() -> int:
    """This process's runnable threads (state R in ``/proc/self/task/*/stat``), at least 1 (the caller)."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == b"R"
    return max(1, count)


def default_threads(
    work: float | None = None, regions: float = 1.0, engine: str = "weights", state: tuple[int, float] | None = None
) -> int:
    """Threads for ``threads=None``: ``LNREF_THREADS`` if set, else the rule of the module docs for ``work /
    regions`` multiply-adds per parallel region of ``engine`` on a machine in ``state`` (:func:`machine_state`,
    read now when None).  ``work=None``: all of numba's threads."""
    env = env_threads()
    if env is not None:
        return env
    top = numba.config.NUMBA_NUM_THREADS
    if work is None:
        return top
    per_region = work / max(regions, 1.0)
    quiet = _quiet_work(engine)
    if per_region < quiet:
        return 1  # one thread on any machine: no need to read its state
    cpus, others = machine_state() if state is None else state
    free = int(cpus - others + 0.5)  # CPUs nobody else is using, rounded
    if free >= 2:
        return max(1, min(top, free))
    if per_region >= busy_region_work(engine):
        return top
    return 1


def busy_region_work(engine: str = "weights") -> float:
    """Multiply-adds per region from which a BUSY machine gets all threads: :data:`REGION_WORK`, or the engine's
    quiet threshold where that is higher (a busy machine never splits a region a quiet one would not)."""
    return max(REGION_WORK, _quiet_work(engine))


def _quiet_work(engine: str) -> float:
    """The engine's quiet threshold: :data:`QUIET_REGION_WORK`, or :data:`UNSPREAD_COEFFICIENT_WORK` for the
    coefficient engine when no block of this process can be spread (:func:`setup_blocker`)."""
    if engine == "coefficients" and setup_blocker() is not None:
        return UNSPREAD_COEFFICIENT_WORK
    return QUIET_REGION_WORK.get(engine, REGION_WORK)


def setup_blocker() -> str | None:
    """Why no block of this process can be spread over CPUs whatever the machine's load (the platform, numba's
    threading layer, the user's settings; :mod:`lnref.training.placement`), or None."""
    if not sys.platform.startswith("linux") or not hasattr(os, "sched_setaffinity"):
        return "not Linux"
    if numba.config.DISABLE_JIT:
        return "NUMBA_DISABLE_JIT=1"
    if os.environ.get(ENV_SPREAD, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"{ENV_SPREAD}={os.environ[ENV_SPREAD]}"
    user = [v for v in USER_PLACE_VARS if v in os.environ]
    if user:
        return f"placement set by the user ({', '.join(user)})"
    try:
        layer = numba.threading_layer()
    except ValueError:  # not loaded: no parallel region has run yet (apply_wait_policy loads it)
        return "numba's threading layer is not loaded"
    if layer != "omp":  # the others' thread 0 need not be the caller, nor thread t the same OS thread each time
        return f"numba's threading layer is {layer!r}"
    return None


# Parallel regions per GD step of each engine's ``advance`` kernel (lnref/kernels/weights.py ``advance``: samples, then
# filters; it was six before issue 13; lnref/kernels/coefficients.py ``_advance``: samples, filters).  Update when the
# kernels change.
REGIONS_PER_STEP = {"weights": 2, "coefficients": 2}


def step_work(cfg) -> tuple[float, float, str]:
    """(multiply-adds, parallel regions, engine) of one GD step of ``cfg``'s engine, for :func:`default_threads`.

    Weight engine: the inner products and the gradient, about 2 (2m) n d; coefficient engine: the inner
    products from the coefficients, about (2m) n^2 (SPEC.md section 4), whatever d is.
    """
    F = 2 * cfg.m
    if cfg.engine == "coefficients":
        return float(F) * cfg.n * cfg.n, REGIONS_PER_STEP["coefficients"], "coefficients"
    return 2.0 * F * cfg.n * cfg.d, REGIONS_PER_STEP["weights"], "weights"


def resolve(threads, work: float | None = None, regions: float = 1.0, engine: str = "weights") -> int:
    """``threads`` checked (an integer from 1 to NUMBA_NUM_THREADS), or :func:`default_threads` when None."""
    import numpy as np

    from ..config import ConfigError

    if threads is None:
        try:
            return default_threads(work, regions, engine)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if (
        isinstance(threads, bool)
        or not isinstance(threads, (int, np.integer))
        or not (1 <= threads <= numba.config.NUMBA_NUM_THREADS)
    ):
        raise ConfigError(
            f"threads={threads!r} is not allowed: use an integer from 1 to "
            f"{numba.config.NUMBA_NUM_THREADS} (numba's NUMBA_NUM_THREADS)"
        )
    return int(threads)


apply_wait_policy()
