"""``lnref sweep``: the command line of :func:`lnref.sweep` (flags as for ``lnref run``, plus the grid)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..cli.args import add_config_arguments, config_from_args, read_toml
from ..config import ConfigError
from ..training.resources import check_sweep_size
from .api import sweep
from .executors import SerialExecutor, dask_executor, process_executor
from .grid import grid_from_toml, parse_grid_item, validate_grid

__all__ = ["register"]


def _cmd_sweep(args: argparse.Namespace) -> int:
    base = config_from_args(args)
    if args.replicates < 1:
        raise ConfigError(f"--replicates {args.replicates} is not allowed: use an integer >= 1")
    grid: dict[str, list[Any]] = {}
    if args.config is not None:
        doc = read_toml(args.config)
        if "grid" in doc:
            grid.update(grid_from_toml(doc["grid"], str(args.config)))
    for item in args.grid or []:
        if "=" not in item and item.endswith(".toml"):
            grid.update(grid_from_toml(read_toml(Path(item)), item))
        else:
            name, vals = parse_grid_item(item)
            grid[name] = vals
    if not grid:
        raise ConfigError("no grid: give --grid FIELD=START:STOP:STEP, --grid FIELD=V1,V2 or a TOML file with [grid]")
    check_sweep_size(math.prod(len(v) for v in grid.values()), args.replicates)
    validate_grid(base, grid)  # before any cluster starts
    if sum(x is not None for x in (args.dask, args.dask_local)) + (args.workers is not None) > 1:
        raise ConfigError("choose one of --workers, --dask and --dask-local")
    if args.dask_local is not None and args.dask_local < 1:
        raise ConfigError(f"--dask-local {args.dask_local} is not allowed: use a worker count >= 1")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} is not allowed: use an integer >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size} is not allowed: use an integer >= 1")
    if args.resume and args.force:
        raise ConfigError("--resume continues the sweep in --out and --force overwrites it: give one of them")
    if args.dask is not None or args.dask_local is not None:
        executor, close = dask_executor(args.dask, args.dask_local)
    elif args.workers is not None:
        executor = SerialExecutor() if args.workers == 1 else process_executor(args.workers)
        close = executor.shutdown
    else:
        executor = process_executor()
        close = executor.shutdown
    if not args.quiet:
        from ..cli.args import compile_notice

        compile_notice(base.engine)
    try:
        res = sweep(
            base,
            grid,
            replicates=args.replicates,
            executor=executor,
            out=args.out,
            resume=args.resume,
            batch_size=args.batch_size,
            progress=None if args.quiet else True,
            force=args.force,
        )
    finally:
        close()
    diverged = sum(bool(r.get("diverged")) for r in res.rows)
    rerun = f", {res.rerun} garbled rows run again" if res.rerun else ""
    print(
        f"wrote {args.out}: {len(res.rows)} runs ({res.skipped} resumed{rerun}) over {int(np.prod(res.shape))} "
        f"cells in {res.wall_seconds:.1f}s; {diverged} diverged"
    )
    return 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand to the ``lnref`` parser."""
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of configs (local processes or Dask) and write tidy CSVs",
        description="Run the base config (flags as for `lnref run`) over a Cartesian grid of Config fields, "
        "with replicates, writing sweep.csv (one row per run, appended as runs finish), "
        "sweep_mean.csv (mean and standard error per cell), sweep.json and heatmaps.",
    )
    add_config_arguments(p)
    p.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=SPEC",
        help="FIELD=START:STOP:STEP (inclusive) or FIELD=V1,V2,...; or a TOML file with [grid]; "
        "repeat for more fields (the --config file may also hold a [grid] table)",
    )
    p.add_argument(
        "--replicates",
        type=int,
        default=1,
        help="runs per cell, each with its own derived seed (cells x replicates at most 10^7)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished rows in --out and run the rest (garbled rows are run again)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the sweep files of a non-empty --out")
    p.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: all cores; 1 runs in this process)"
    )
    p.add_argument("--dask", metavar="ADDRESS", default=None, help="run on the Dask scheduler at ADDRESS")
    p.add_argument(
        "--dask-local",
        type=int,
        metavar="N",
        default=None,
        help="start a local Dask cluster of N single-thread workers (a demonstration)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="runs per task (default: automatic)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_sweep)
