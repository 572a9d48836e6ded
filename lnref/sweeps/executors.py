"""Where a sweep's batches run: in this process (:class:`SerialExecutor`), a spawn process pool
(:func:`process_executor`) or a Dask cluster (:func:`dask_executor`, :data:`LOCAL_DASK_SETTINGS`).

Pool workers watch their parent: when the process that started them dies (even by SIGKILL), they exit within
about a second instead of finishing their queue.  A script read from standard input (``python - <<EOF``) cannot
be re-imported by spawned workers, so :func:`process_executor` then runs the sweep in the calling process and
says so on stderr.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
import time

from ..config import ConfigError
from .worker import init_worker

__all__ = [
    "SerialExecutor",
    "process_executor",
    "dask_executor",
    "LOCAL_DASK_SETTINGS",
    "main_is_importable",
    "watched_init_worker",
]

# Dask settings for the workers of --dask-local (see dask_executor); for a cluster of your own, give its workers
# the same settings (README, "Sweeps").
LOCAL_DASK_SETTINGS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 16 * 2**20,
}

WATCH_SECONDS = 0.5  # how often a pool worker checks that its parent is alive


class SerialExecutor(cf.Executor):
    """Runs every task in the calling process at submit time (for tests, debugging and ``--workers 1``)."""

    _max_workers = 1

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os._exit(3)  # the sweep process is gone: do not finish its queue


def _set_parent_death_signal() -> None:
    """Linux: have the kernel send SIGKILL to this process when its parent dies (even inside a long kernel)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def watched_init_worker(threads: int = 1, parent: int | None = None, death_signal: bool = False) -> None:
    """Pool initializer: :func:`lnref.sweeps.worker.init_worker`, plus a daemon thread that ends this worker
    when its parent process ``parent`` dies (checked every WATCH_SECONDS, between kernel calls) and, with
    ``death_signal`` on Linux, the kernel's parent-death signal (which also stops a worker inside a kernel).

    ``death_signal`` is only safe when the pool's processes are started by the main thread of the parent (Linux
    sends the signal when the *thread* that started the process ends).
    """
    init_worker(threads)
    if parent is not None:
        if death_signal:
            _set_parent_death_signal()
        if os.getppid() != parent:
            os._exit(3)
        threading.Thread(target=_watch_parent, args=(int(parent),), name="lnref-parent-watch", daemon=True).start()


def main_is_importable() -> bool:
    """Whether spawned processes can re-import ``__main__`` (False for a script read from stdin)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return True  # -c, the REPL, python -m: spawn does not run a file
    return os.path.isfile(path)


def process_executor(workers: int | None = None) -> cf.Executor:
    """A spawn-context process pool (docs/DESIGN.md: OpenMP is not fork-safe) with 1 numba thread per worker.

    Returns a :class:`SerialExecutor` (with a one-line notice on stderr) when ``__main__`` is a script read
    from standard input, which spawned workers cannot re-import.
    """
    import multiprocessing

    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers={workers} is not allowed: use an integer >= 1")
    if not main_is_importable():
        print(
            "lnref sweep: note: the main script was read from standard input, which worker processes cannot "
            "re-import; running in this process (save the script to a file to use every core)",
            file=sys.stderr,
            flush=True,
        )
        return SerialExecutor()
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=watched_init_worker,
        initargs=(1, os.getpid(), threading.current_thread() is threading.main_thread()),
    )


def dask_executor(address: str | None, local_workers: int | None):
    """(executor, closer) for a Dask scheduler ADDRESS or a LocalCluster of ``local_workers`` 1-thread workers."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--dask/--dask-local need Dask: pip install 'lnref[dask]'") from None
    if local_workers is not None:
        import dask

        # Dask's defaults cost a sweep's many short runs dearly (bench/bench_sweep.py --dask-local 2): the
        # statistical profiler samples the task thread's stack every 10 ms, and the nanny's
        # MALLOC_TRIM_THRESHOLD_=65536 turns off glibc's adaptive mmap threshold, so every array over 128 KiB is
        # mmap-ed and its pages faulted in afresh at every run.  These settings keep such arrays on the heap,
        # and tick the event loop and the monitors less often.
        with dask.config.set(LOCAL_DASK_SETTINGS):
            cluster = LocalCluster(
                n_workers=local_workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        client = Client(cluster)
    else:
        cluster = None
        client = Client(address)

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return client.get_executor(), close


_dask_executor = dask_executor  # the name bench/bench_sweep.py used
