"""Sweeps: grids of runs over any ``concurrent.futures.Executor`` (local processes, a Dask cluster).

The package shows the parts: :mod:`~lnref.sweeps.grid` (grids and seeds), :mod:`~lnref.sweeps.files` (the tidy
CSV, sweep.json, integrity marks and resume), :mod:`~lnref.sweeps.executors` (serial, process pool, Dask),
:mod:`~lnref.sweeps.results` (:class:`SweepResult`: means, standard errors, heatmaps), :mod:`~lnref.sweeps.api`
(:func:`sweep`) and :mod:`~lnref.sweeps.cli` (``lnref sweep``).  The function is also ``lnref.sweep``.
"""

from .api import DEFAULT_METRICS, SweepError, sweep
from .executors import LOCAL_DASK_SETTINGS, SerialExecutor, dask_executor, process_executor
from .grid import cell_seed, parse_grid_item, validate_grid
from .results import SweepResult
from .worker import METRICS

__all__ = [
    "sweep",
    "SweepResult",
    "SweepError",
    "SerialExecutor",
    "process_executor",
    "dask_executor",
    "LOCAL_DASK_SETTINGS",
    "cell_seed",
    "parse_grid_item",
    "validate_grid",
    "DEFAULT_METRICS",
    "METRICS",
]
