"""``lnref.sweep``: Cartesian grids of runs over any Config fields, on any ``concurrent.futures.Executor``.

``lnref.sweep(base, {"mu_norm": [...], "d": [...]}, replicates=10)`` runs every (cell, replicate) of the grid
and returns a :class:`~lnref.sweeps.results.SweepResult`; with ``out=`` it also writes

- ``sweep.csv``: tidy, one row per (cell, replicate), appended (whole lines, flushed and fsynced) as batches
  finish, and rewritten sorted by (cell, replicate) at the end; each row carries the sweep's id and a checksum
  (:mod:`lnref.sweeps.files`), so resume refuses rows of another sweep and re-runs a garbled row alone;
- ``sweep_mean.csv``: per cell, the mean and standard error of every metric over the replicates;
- ``sweep.json``: base config, grid, replicates, root seed, metrics, versions;
- ``heatmap_<metric>.png`` for two-field grids when matplotlib is installed.

Seeds: the run of cell c (row-major index into the grid) and replicate r uses the seed
``SeedSequence(root, spawn_key=(c, r)).generate_state(1, uint64) >> 1`` (63 bits), with root = base.seed, so
a result does not depend on which worker ran it or in which order.  Final metrics do not depend on logging,
so every run is made with ``log_every=0, log_points=0`` (only steps 0 and ``steps`` are evaluated).

Everything (grid, sizes, memory, the output folder, the rows to resume) is checked before anything is written.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._lock import OutputLock
from ..config import Config, ConfigError
from ..io import OutputError, describe_os_error, versions, write_json, write_text
from ..training.resources import MAX_SWEEP_RUNS, check_sweep_memory, check_sweep_size
from .executors import process_executor
from .files import (
    MEAN_NAME,
    META_NAME,
    TIDY_NAME,
    check_meta,
    header_line,
    plain,
    read_meta,
    read_tidy,
    row_line,
    sweep_meta,
)
from .grid import cell_seed, cell_seeds, validate_grid
from .results import SweepResult, have_matplotlib, save_heatmap
from .worker import METRICS, run_batch

__all__ = ["sweep", "DEFAULT_METRICS", "SweepError"]

# the Config fields that set a run's size (its memory, lnref.training.resources.estimate_run_memory)
SIZE_FIELDS = ("n", "d", "m", "n_test", "steps", "engine", "sampling", "algorithm")

DEFAULT_METRICS = (
    "test_acc",
    "test_error",
    "train_acc",
    "train_acc_clean",
    "train_acc_noisy",
    "loss",
    "gamma_max",
    "rho_bar_max_clean",
    "rho_bar_max_noisy",
    "steps_done",
    "diverged",
)


class SweepError(OutputError):
    """A sweep stopped (a worker process died, a file could not be written); its finished rows are kept."""


def _count_cells(grid: Any) -> int | None:
    try:
        return math.prod(len(v) for v in grid.values())
    except (TypeError, AttributeError):
        return None


def _check_int_option(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed: use an integer >= {minimum}")


def sweep(
    base_config: Config,
    grid: Mapping[str, Sequence[Any]],
    replicates: int = 1,
    executor: cf.Executor | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int | None = None,
    progress: Callable[[int, int, int, int], None] | bool | None = None,
    *,
    force: bool = False,
    plot: bool = True,
) -> SweepResult:
    """Run ``base_config`` over the Cartesian product of ``grid``, ``replicates`` times per cell.

    Parameters
    ----------
    base_config : Config
        Every field not in the grid; ``base_config.seed`` is the root seed.
    grid : mapping field -> list of values
        Any Config fields except ``seed`` (replicates vary it), ``log_every`` and ``log_points``.
    replicates : int
        Runs per cell, each with its own derived seed (see :func:`lnref.sweeps.cell_seed`).  At most
        :data:`lnref.training.resources.MAX_SWEEP_RUNS` runs (cells x replicates) in one sweep.
    executor : concurrent.futures.Executor, optional
        Where batches run (not shut down by this function).  Default: a spawn process pool over all cores (in
        this process when the main script was read from standard input).
    out : path, optional
        Folder for sweep.csv, sweep_mean.csv, sweep.json (and heatmap PNGs); nothing is written without it.
    resume : bool
        Keep the finished rows of ``out/sweep.csv`` (same base, grid, replicates and metrics) and run the rest;
        garbled rows are run again.
    metrics : sequence of str
        Final metrics per run (names in :data:`lnref.sweeps.METRICS`).
    batch_size : int, optional
        (cell, replicate) runs per task; default about total / (8 * workers), between 1 and 250 (a fraction of a
        second of Kou-sized runs: short last tasks keep the pool's idle tail short).
    progress : callable(jobs_done, jobs_total, cells_done, cells_total) or True, optional
        True prints a line on stderr at most once a second with the time left.
    force : bool
        Overwrite the sweep files of a non-empty ``out`` (without ``resume``).
    plot : bool
        Write heatmap PNGs for two-field grids when matplotlib is installed.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        A bad grid, option, or a sweep too large for the run cap or the machine's memory (before anything runs).
    OutputError
        ``out`` cannot be used (not empty without resume/force, rows of another sweep, not writable).
    SweepError
        The sweep stopped part-way (a worker died); the rows finished so far are in ``out/sweep.csv``.

    Notes
    -----
    Each run is :func:`lnref.train` (SPEC.md sections 3-4) on ``base_config.replace(**cell, seed=...)``.
    """
    t0 = time.perf_counter()
    _check_int_option("replicates", replicates, 1)
    replicates = int(replicates)
    precount = _count_cells(grid) if isinstance(grid, Mapping) else None
    if precount is not None:
        check_sweep_size(precount, replicates)
    fields, cells = validate_grid(base_config, grid, max_cells=max(1, MAX_SWEEP_RUNS // replicates))
    check_sweep_size(len(cells), replicates)
    if isinstance(metrics, str):
        metrics = (metrics,)
    default_metrics = tuple(metrics) == DEFAULT_METRICS
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"metrics {unknown or metrics!r} not allowed: choose from {', '.join(METRICS)}")
    clash = [f for f in fields if f in metrics]  # a row holds each name once: the grid field 'loss' vs the metric
    if clash and default_metrics:
        metrics = tuple(m for m in metrics if m not in clash)  # the default set leaves the metric out
    elif clash:
        raise ConfigError(
            f"the grid field(s) {', '.join(map(repr, clash))} and the metric(s) of the same name "
            "cannot both be columns of sweep.csv: leave the metric out of metrics= (the grid field "
            "'loss' is the training method; the metric 'loss' the final logistic loss)"
        )
    if batch_size is not None:
        _check_int_option("batch_size", batch_size, 1)
    if executor is not None and not isinstance(executor, cf.Executor) and not hasattr(executor, "submit"):
        raise ConfigError(f"executor={executor!r} is not allowed: give a concurrent.futures.Executor or None")
    if progress is not None and progress is not True and progress is not False and not callable(progress):
        raise ConfigError(f"progress={progress!r} is not allowed: give True, a function or None")
    if resume and out is None:
        raise ConfigError("resume=True needs out= (the folder of the sweep to resume)")
    if resume and force:
        raise ConfigError("resume=True continues the sweep in out= and force=True overwrites it: give one of them")
    base = base_config.replace(log_every=0, log_points=0)
    grid_lists = {f: list(dict.fromkeys(c[i] for c in cells)) for i, f in enumerate(fields)}
    meta = sweep_meta(base_config, grid_lists, replicates, metrics)
    sid = meta["sweep_id"]
    result = SweepResult(base_config, grid_lists, fields, replicates, metrics, [], sweep_id=sid)
    columns = result.columns
    workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    # the memory of each distinct run size: one config per distinct value of the grid fields that set a size
    # (validate_grid has built every cell's config; 10 000 cells took 0.4 s to build again)
    sized = [i for i, f in enumerate(fields) if f in SIZE_FIELDS]
    cell_cfgs = {}
    for c in cells:
        key = tuple(c[i] for i in sized)
        if key not in cell_cfgs:
            cell_cfgs[key] = base.replace(**dict(zip(fields, c)))
    check_sweep_memory(
        list(cell_cfgs.values()), replicates, int(workers), len(columns) + 2, runs=len(cells) * replicates
    )

    # the output folder: claimed (one writer at a time), then every check (and the rows to resume) before
    # anything is written
    finished: dict[tuple[int, int], dict[str, Any]] = {}
    lock = None
    if out is not None:
        out = Path(out)
        result.out = out
        _check_out(out, resume, force, meta, columns, sid, fields, cells, base.seed, replicates)  # clear errors first
        lock = OutputLock(out, f"the sweep folder {out}").acquire()
    try:
        if out is not None:  # again under the claim: another sweep may have written there in between
            finished, result.rerun = _check_out(
                out, resume, force, meta, columns, sid, fields, cells, base.seed, replicates
            )
        result.skipped = len(finished)

        pending = [(c, r) for c in range(len(cells)) for r in range(replicates) if (c, r) not in finished]
        seeds = cell_seeds(base.seed, [c for c, _ in pending], [r for _, r in pending])
        jobs = [(c, r, cells[c], seed) for (c, r), seed in zip(pending, seeds)]
        total = len(cells) * replicates
        tidy_fh = None
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
                write_json(out / META_NAME, {**meta, "versions": versions(), "complete": False})
                kept = sorted(finished.values(), key=lambda r: (r["cell"], r["replicate"]))
                write_text(out / TIDY_NAME, header_line(columns) + "".join(row_line(r, columns, sid) for r in kept))
                tidy_fh = open(out / TIDY_NAME, "a", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
            except OSError as exc:
                raise OutputError(f"cannot write the sweep into {out}: {describe_os_error(exc)}") from None
        own_executor = executor is None
        if own_executor:
            executor = process_executor()
        if batch_size is None:
            batch_size = int(min(250, max(1, math.ceil(len(jobs) / (8 * workers))))) if jobs else 1
        batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
        if progress is True:
            from ..cli.args import Progress

            printer = Progress("lnref sweep")
            progress = lambda jd, jt, cd, ct: printer(jd, jt, f"({cd}/{ct} cells)")  # noqa: E731
        per_cell = np.zeros(len(cells), dtype=np.int64)
        for c, _ in finished:
            per_cell[c] += 1
        cells_done = int(np.sum(per_cell == replicates))
        rows = list(finished.values())
        futures: list[cf.Future] = []
        try:
            futures = [executor.submit(run_batch, base.to_dict(), fields, batch, metrics, 1) for batch in batches]
            for fut in cf.as_completed(futures):
                batch_rows = fut.result()
                if tidy_fh is not None:
                    tidy_fh.write("".join(row_line(r, columns, sid) for r in batch_rows))
                    tidy_fh.flush()
                    os.fsync(tidy_fh.fileno())
                rows.extend(batch_rows)
                for r in batch_rows:
                    per_cell[r["cell"]] += 1
                    cells_done += int(per_cell[r["cell"]] == replicates)
                if progress:
                    progress(len(rows), total, cells_done, len(cells))
        except cf.BrokenExecutor as exc:
            for fut in futures:
                fut.cancel()
            kept = (
                f"; the {len(rows)} rows finished are in {out / TIDY_NAME}: continue with resume=True"
                if out is not None
                else ""
            )
            raise SweepError(f"a worker process of the sweep died ({exc}; out of memory?){kept}") from None
        except OSError as exc:
            for fut in futures:
                fut.cancel()
            raise SweepError(
                f"cannot write {out / TIDY_NAME}: {describe_os_error(exc)}; the rows written before are "
                "kept: free space, then continue with resume=True"
            ) from None
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        finally:
            if tidy_fh is not None:
                with contextlib.suppress(OSError):
                    tidy_fh.close()
            if own_executor:
                executor.shutdown(wait=True, cancel_futures=True)

        rows.sort(key=lambda r: (r["cell"], r["replicate"]))
        result.rows = rows
        result.wall_seconds = time.perf_counter() - t0
        if out is not None:
            try:
                write_text(out / TIDY_NAME, result.tidy_csv())  # canonical order, atomically
                write_text(out / MEAN_NAME, result.mean_csv())
                result.files = [TIDY_NAME, MEAN_NAME, META_NAME]
                if plot and len(fields) == 2 and have_matplotlib():
                    for metric in ("test_error", "train_acc_noisy"):
                        if metric in metrics:
                            save_heatmap(result, metric, out / f"heatmap_{metric}.png")
                            result.files.append(f"heatmap_{metric}.png")
                write_json(
                    out / META_NAME,
                    {
                        **meta,
                        "versions": versions(),
                        "wall_seconds": result.wall_seconds,
                        "runs": total,
                        "resumed_rows": result.skipped,
                        "rerun_garbled_rows": result.rerun,
                        "complete": True,
                    },
                )
            except OSError as exc:
                raise SweepError(
                    f"cannot write the sweep's files into {out}: {describe_os_error(exc)}; every row is "
                    f"in {out / TIDY_NAME}: continue with resume=True"
                ) from None
        return result
    finally:
        if lock is not None:
            lock.release()


def _check_out(
    out: Path,
    resume: bool,
    force: bool,
    meta: dict,
    columns: list[str],
    sid: str,
    fields: list[str],
    cells: list[tuple],
    root: int,
    replicates: int,
):
    """Check the sweep folder and read the rows to resume; writes nothing.  Returns (finished rows, garbled)."""
    from ..training.runs import RunFolder, stat_kind

    kind = stat_kind(out)
    if kind == "other":
        raise OutputError(f"{out} exists and is not a folder")
    finished: dict[tuple[int, int], dict[str, Any]] = {}
    garbled = 0
    if resume:
        if kind == "missing":
            raise OutputError(f"nothing to resume: {out} does not exist")
        if (out / META_NAME).exists() or (out / META_NAME).is_symlink():
            old = read_meta(out / META_NAME)
            check_meta(old, plain(meta), out / META_NAME)
        tidy = out / TIDY_NAME
        if tidy.exists() or tidy.is_symlink():
            read = read_tidy(tidy, columns, sid)
            if read.foreign:
                raise OutputError(
                    f"{tidy} holds rows of another sweep (sweep_id {', '.join(sorted(read.foreign))}; "
                    f"this one is {sid}): its base config or grid differs; resume only the same "
                    "sweep, or start afresh in another folder (or overwrite with force=True)"
                )
            garbled = read.garbled
            for row in read.rows:
                c, r = row["cell"], row["replicate"]
                if (
                    not (0 <= c < len(cells) and 0 <= r < replicates)
                    or row["seed"] != cell_seed(root, c, r)
                    or any(row[f] != v for f, v in zip(fields, cells[c]))
                ):
                    garbled += 1  # a sound line that does not fit this grid: run that job again
                    continue
                finished.setdefault((c, r), row)
        RunFolder._check_writable(out)
    elif kind == "dir":
        try:
            nonempty = any(out.iterdir())
        except OSError as exc:
            raise OutputError(f"{out} cannot be listed: {describe_os_error(exc)}") from None
        if nonempty and not force:
            raise OutputError(
                f"{out} is not empty; pass resume=True to continue its sweep or force=True to overwrite its files"
            )
        RunFolder._check_writable(out)
    else:
        from ..training.runs import existing_ancestor

        RunFolder._check_writable(existing_ancestor(out))
    return finished, garbled
