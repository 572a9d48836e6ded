"""How many threads the numba kernels use, and how idle threads wait (issue 13: never the slow choice).

Two decisions, both speed only (every kernel gives the same bits for any thread count, docs/DESIGN.md "Numerics"):

1. **Wait policy.** numba's ``omp`` threading layer is GNU OpenMP (libgomp), whose idle threads by default
   spin for ``GOMP_SPINCOUNT`` = 300 000 pause instructions (several milliseconds, longer than a scheduler
   time slice) before sleeping.  A GD step of the weight engine is six parallel regions, each ending in a
   barrier.  With another process busy on a 2-core machine, one of the two threads is often descheduled; the
   other then spins at the barrier, taking the CPU time the descheduled thread needs to finish, and every region
   costs a time slice instead of its work: far slower than one thread (bench/bench_weights.py, loaded case).
   (The weight engine's ``advance`` now runs two regions per step, lnref/_kernels.py.)
   A passive wait (``OMP_WAIT_POLICY=passive``: sleep at once, wake on a futex) gives the core back, so the
   late thread runs at once.  libgomp reads its environment once, when it is loaded, so :func:`apply_wait_policy`
   sets ``OMP_WAIT_POLICY=PASSIVE`` only around loading numba's threading layer (when lnref is imported), then
   restores the environment: other OpenMP libraries and child processes are not affected.  It does nothing when
   the user set ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` (theirs is kept; set
   ``OMP_WAIT_POLICY=active`` to get OpenMP's spinning back) or when the threading layer was already loaded
   before lnref was imported.
2. **Thread count.** ``threads=None`` (the default of :func:`lnref.train`) becomes :func:`default_threads`:
   one thread when a parallel region would carry less than :data:`REGION_WORK` multiply-adds (waking a thread
   costs tens of microseconds, the whole region's work on small problems), else all of numba's threads.
   ``LNREF_THREADS`` (an integer, or ``all``) overrides the default; an explicit ``threads=`` argument always
   wins.
"""
from __future__ import annotations

import os

import numba

__all__ = ["REGION_WORK", "ENV_THREADS", "apply_wait_policy", "wait_policy", "default_threads", "step_work",
           "resolve"]

# Multiply-adds a parallel region must carry before a second thread pays (speed only, never numerical): waking
# the other thread and meeting it at the barrier costs a fixed time per region, which a region's work must
# outweigh.  The threshold is where two threads start to gain in bench/bench_weights.py (figures in the CHANGELOG).
REGION_WORK = 2_000_000
ENV_THREADS = "LNREF_THREADS"
_USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
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
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            _par._launch_threads()
        finally:
            del os.environ["OMP_WAIT_POLICY"]
        _policy = "passive (set by lnref)"
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
        raise ValueError(f"{ENV_THREADS}={os.environ[ENV_THREADS]!r} is not allowed: use an integer from 1 to "
                         f"{top} (numba's NUMBA_NUM_THREADS), 'all' or 'auto'")
    return value


def default_threads(work: float | None = None, regions: float = 1.0) -> int:
    """Threads for ``threads=None``: ``LNREF_THREADS`` if set, else 1 when ``work / regions`` (multiply-adds per
    parallel region) is below :data:`REGION_WORK`, else all of numba's threads (``work=None``: all)."""
    env = env_threads()
    if env is not None:
        return env
    if work is not None and work / max(regions, 1.0) < REGION_WORK:
        return 1
    return numba.config.NUMBA_NUM_THREADS


# Parallel regions per GD step of each engine's ``advance`` kernel (lnref/_kernels.py ``advance``: samples, then
# filters; it was six before issue 13; lnref/_kernels_coef.py ``_advance``: samples, filters).  Update when the
# kernels change.
REGIONS_PER_STEP = {"weights": 2, "coefficients": 2}


def step_work(cfg) -> tuple[float, float]:
    """(multiply-adds, parallel regions) of one GD step of ``cfg``'s engine, for :func:`default_threads`.

    Weight engine: the inner products and the gradient, about 2 (2m) n d; coefficient engine: the inner
    products from the coefficients, about (2m) n^2 (SPEC.md section 4), whatever d is.
    """
    F = 2 * cfg.m
    if cfg.engine == "coefficients":
        return float(F) * cfg.n * cfg.n, REGIONS_PER_STEP["coefficients"]
    return 2.0 * F * cfg.n * cfg.d, REGIONS_PER_STEP["weights"]


def resolve(threads, work: float | None = None, regions: float = 1.0) -> int:
    """``threads`` checked (an integer from 1 to NUMBA_NUM_THREADS), or :func:`default_threads` when None."""
    import numpy as np

    from .config import ConfigError
    if threads is None:
        try:
            return default_threads(work, regions)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not (
            1 <= threads <= numba.config.NUMBA_NUM_THREADS):
        raise ConfigError(f"threads={threads!r} is not allowed: use an integer from 1 to "
                          f"{numba.config.NUMBA_NUM_THREADS} (numba's NUMBA_NUM_THREADS)")
    return int(threads)


apply_wait_policy()
