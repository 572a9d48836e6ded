"""``lnref reproduce [NAME] [--out DIR] [--seeds K] [--quick] [--force] [--threads N] [--published PATH]``
``[--dask ADDRESS] [--list]``.

Runs one registered reproduction (:mod:`lnref.reproduce`) into ``--out`` (default ``runs/NAME``) and writes
report.md, summary.json and the marker reproduction.json there.  Running the same reproduction again into the same
folder replaces its earlier output (:func:`lnref.reproduce.common.prepare_reproduction_dir`); a folder with other
content is refused unless ``--force``.  Exit 0 when it ran (whether or not every prediction holds; the count is
printed), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli.args import THREADS_HELP, compile_notice
from ..config import ConfigError

__all__ = ["register"]

# reproductions that accept --published PATH (a downloaded copy of the authors' published results)
_TAKES_PUBLISHED = ("kou2023-heatmap",)
# reproductions that run lnref.sweep, so accept --dask ADDRESS
_TAKES_DASK = ("kou2023-heatmap", "huang2025-heatmap", "cao2022-heatmap", "methods-phase")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not allowed: use an integer >= 1")
    return v


def _cmd(args: argparse.Namespace) -> int:
    from .._lock import OutputLock
    from ..training import num_threads
    from . import DEFAULT, Context, load_all, run_reproduction
    from .common import count_held, prepare_reproduction_dir
    from .han2025 import ENGINE

    reps = load_all()
    if args.list:
        width = max(len(k) for k in reps) if reps else 0
        for name, rep in reps.items():
            mark = " (default)" if name == DEFAULT else ""
            seeds = f"{rep.default_seeds} seed{'s' if rep.default_seeds != 1 else ''}"
            print(f"{name:<{width}}  {rep.title}{mark} [default {seeds}]")
        return 0
    name = args.name or DEFAULT
    if name not in reps:
        raise ConfigError(
            f"reproduction {name!r} does not exist; choose one of {', '.join(reps)} (lnref reproduce --list)"
        )
    if args.published is not None and name not in _TAKES_PUBLISHED:
        raise ConfigError(
            f"--published is not allowed with {name}: only {', '.join(_TAKES_PUBLISHED)} compares "
            "with a published table"
        )
    if args.dask is not None and name not in _TAKES_DASK:
        raise ConfigError(
            f"--dask is not allowed with {name}: only the reproductions that run sweeps take it "
            f"({', '.join(_TAKES_DASK)})"
        )
    if args.threads is not None:
        with num_threads(args.threads):  # validates the thread count before any work
            pass
    out = args.out if args.out is not None else Path("runs") / name
    with OutputLock(out) as lock:  # one writer per folder: a second `lnref reproduce` into it is refused, not merged
        out = prepare_reproduction_dir(out, name, args.force, lock=lock)
        compile_notice(ENGINE)  # every reproduction trains with this engine; one line when its kernels compile now
        ctx = Context(
            out=out,
            seeds=args.seeds,
            quick=args.quick,
            threads=args.threads,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
        ctx.dask = args.dask
        ctx.published = args.published  # read by the reproductions in _TAKES_PUBLISHED (getattr, default None)
        t0 = time.perf_counter()
        checks = run_reproduction(name, ctx)
        wall = time.perf_counter() - t0
    held, tested, na = count_held(checks)
    extra = f" ({na} comparison rows n/a)" if na else ""
    print(
        f"lnref reproduce {name}: {held} of {tested} predictions hold{extra} over {ctx.seeds} seed"
        f"{'s' if ctx.seeds != 1 else ''}; {wall:.1f}s; report: {out / 'report.md'}"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run a paper reproduction (figure, data, report.md)",
        description="Run a paper reproduction of SPEC.md section 6 and write its data, "
        "figures, summary.json and report.md into --out (default runs/NAME). "
        "Re-running a reproduction into its own folder replaces its earlier "
        "output; any other non-empty folder needs --force.",
    )
    p.add_argument(
        "name", nargs="?", default=None, metavar="NAME", help="reproduction to run (default han2025; see --list)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/NAME). Running the same reproduction again into its own "
        "folder replaces its earlier output (recognised by the marker file reproduction.json); a "
        "folder with any other content is refused unless --force",
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="number of seeds 0..K-1, an integer >= 1 (default: the reproduction's own, shown by "
        "--list: 20 for han2025 and han2025-selection, 5 for huang2025, 3 of them with --quick); "
        "report.md gives mean +- standard error over the seeds",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes / fewer steps (a smoke run); report.md prints the config actually run",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="use a non-empty --out that is not this reproduction's own earlier output, overwriting "
        "its files of the same names",
    )
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument(
        "--published",
        type=Path,
        default=None,
        metavar="PATH",
        help="kou2023-heatmap: the authors' published table (data_test100.csv of "
        "github.com/uclaml/Benign_ReLU_CNN, not shipped with lnref) to compare with cell by cell",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run the sweeps of " + ", ".join(_TAKES_DASK) + " on the Dask scheduler at ADDRESS "
        "(pip install 'lnref[dask]')",
    )
    p.add_argument("--list", action="store_true", help="list the reproductions and exit")
    p.set_defaults(func=_cmd)
