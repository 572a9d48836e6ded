"""lnref: exact GD dynamics of two-layer ReLU^q CNNs under label noise (a reference implementation).

Exit status: 0 success, 1 the run failed (diverged, or a comparison did not match), 2 unusable input (a one-line
message says what is wrong; no traceback).  ``lnref run`` is defined here; the other subcommands register from
their own modules (COMMAND_MODULES), which share :mod:`lnref.cli.args` with this one.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._suggest import did_you_mean, suggest
from ..config import FIELD_TYPES, ConfigError
from .args import (
    THREADS_HELP,
    ArgumentParser,
    Progress,
    add_config_arguments,
    compile_notice,
    config_from_args,
    read_toml,
)

__all__ = [
    "main",
    "add_config_arguments",
    "config_from_args",
    "read_toml",
    "Progress",
    "suggest",
    "did_you_mean",
    "build_parser",
    "check_threads",
    "to_cli_words",
]

# Modules that add subcommands: each defines ``register(subparsers)`` and sets ``func(args) -> int``.
COMMAND_MODULES: list[str] = ["lnref.sweeps.cli", "lnref.reproduce.cli", "lnref.oracle.cli"]
# the commands this module defines itself (build_parser)
OWN_COMMANDS = ("run", "cache")

# The Python API's keyword arguments -> the command line's flags (errors raised by the API are reworded by main()).
_API_TO_CLI = {
    "resume": "--resume",
    "force": "--force",
    "replicates": "--replicates",
    "batch_size": "--batch-size",
    "checkpoint_every": "--checkpoint-every",
    "threads": "--threads",
    "out": "--out",
    "workers": "--workers",
}
_API_WORD = re.compile(r"(?<![\w.\-'\[])(" + "|".join(_API_TO_CLI) + r")=(True\b)?(\S?)")


def to_cli_words(message: str) -> str:
    """An API error message with the API's keyword arguments (``resume=True``, ``replicates=5``) replaced by the
    command line's flags (``--resume``, ``--replicates 5``)."""

    def sub(m: re.Match) -> str:
        flag = _API_TO_CLI[m.group(1)]
        if m.group(2):  # resume=True -> --resume
            return flag + m.group(3)
        nxt = m.group(3)
        return flag + (f" {nxt}" if nxt and nxt not in " ,;:)" else nxt)

    return _API_WORD.sub(sub, message)


def check_threads(threads: int | None) -> None:
    """Refuse a ``--threads`` value numba cannot use (before anything is written)."""
    if threads is None:
        return
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    if not 1 <= threads <= top:
        raise ConfigError(
            f"--threads {threads} is not allowed: use an integer from 1 to {top} (numba's NUMBA_NUM_THREADS)"
        )


def _check_env_threads() -> None:
    """Refuse a bad LNREF_THREADS up front (ConfigError naming it and what is allowed)."""
    from ..training.threads import env_threads

    try:
        env_threads()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from ..io import OutputError, describe_os_error, write_json
    from ..training.resources import check_run_memory
    from ..training.runs import CHECKPOINT, RunFolder, config_from_json, load_checkpoint, write_run

    # 1. everything is checked before the output folder is touched
    if args.resume:
        given = [name for name in FIELD_TYPES if getattr(args, name, None) is not None]
        if given or args.config is not None:
            raise ConfigError(
                f"--resume takes the config from {args.out}/config.json; do not pass config flags "
                f"(got {', '.join('--' + g.replace('_', '-') for g in given) or '--config'})"
            )
        if args.force:
            raise ConfigError("--resume continues the run in --out and --force replaces it: give one of them")
    else:
        cfg = config_from_args(args)
    check_threads(args.threads)
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every {args.checkpoint_every} is not allowed: use 0 (off) or a step count")
    folder = RunFolder(args.out, force=args.force, resume=args.resume)
    state = None
    if args.resume:
        cfg = config_from_json(args.out / "config.json")
        state = load_checkpoint(args.out / CHECKPOINT)
    check_run_memory(cfg, keep_rho=True)

    # 2. the run: written into the folder, marked complete last (meta.json)
    out = folder.start()
    if not args.quiet:
        compile_notice(cfg.engine)
    prog = None if args.quiet else Progress(f"lnref run ({cfg.engine}, {cfg.algorithm})")
    t0 = time.perf_counter()
    try:
        if state is None:
            write_json(out / "config.json", cfg.to_dict())  # first, so an interrupted run can be resumed
        from ..training import DivergedError, runs, train

        try:
            result = train(
                cfg,
                threads=args.threads,
                progress=None if prog is None else (lambda t, T: prog(t, T)),
                checkpoint_every=args.checkpoint_every,
                resume=state,
                on_checkpoint=lambda st: runs.save_checkpoint(out / CHECKPOINT, st),
            )
            status = 0
        except DivergedError as err:
            result = err.result
            status = 1
        wall = time.perf_counter() - t0
        extra = {"wall_seconds": wall, "command": "lnref run"}
        if state is not None:
            extra["resumed_from_step"] = int(state["step"])
        write_run(out, result, extra)
        (out / CHECKPOINT).unlink(missing_ok=True)  # the finished run's files supersede it
        final = folder.commit()
    except KeyboardInterrupt:
        print(f"lnref run: interrupted; {folder.abort(keep_checkpoint=True)}", file=sys.stderr)
        raise
    except MemoryError:
        where = folder.abort(keep_checkpoint=True)
        raise ConfigError(
            f"out of memory during the run ({where}); make it smaller: fewer logged steps "
            "(--log-every 0 --log-points 50), or --engine coefficients --sampling gram for large d"
        ) from None
    except OSError as exc:
        where = folder.abort(keep_checkpoint=True)
        raise OutputError(f"could not write the run into {args.out}: {describe_os_error(exc)} ({where})") from None
    except BaseException:
        folder.abort(keep_checkpoint=True)
        raise
    try:
        _plot_history(result, final)
    except KeyboardInterrupt:  # the run is complete and written: only the figure is missing
        print(
            f"lnref run: note: history.png was not written (interrupted); the run is complete in {final}",
            file=sys.stderr,
        )
    finally:
        folder.release()
    h = result.history
    if status:
        print(f"error: {result.message}. Everything up to then is saved in {final}", file=sys.stderr)
    else:
        print(
            f"wrote {final}: {cfg.steps} steps in {wall:.2f}s; final loss {h['loss'][-1]:.4g}, "
            f"train acc {h['train_acc'][-1]:.3f} (clean {h['train_acc_clean'][-1]:.3f}, "
            f"noisy {h['train_acc_noisy'][-1]:.3f}), test acc {h['test_acc'][-1]:.3f}"
        )
    return status


def _cmd_cache(args: argparse.Namespace) -> int:
    from ..kernels.cache import CACHE, CACHE_OFF_REASON, cache_dir, clear_cache

    if args.action == "clear":
        try:
            removed = clear_cache()
        except OSError as exc:
            print(
                f"lnref cache: error: could not remove the compiled kernels under {cache_dir().parent} "
                f"({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
            return 2
        print(
            f"removed {len(removed)} folder(s) of compiled kernels under {cache_dir().parent}"
            if removed
            else f"no compiled kernels under {cache_dir().parent}"
        )
    else:
        print(f"{cache_dir()}{'' if CACHE else f'  (caching is off: {CACHE_OFF_REASON})'}")
    return 0


def _plot_history(result, out: Path) -> None:
    """``history.png`` in the run folder when matplotlib and ``lnref.plotting.plot_history`` are available."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    from .. import plotting

    plot = getattr(plotting, "plot_history", None)
    if plot is None:
        return
    try:
        plot(result, out / "history.png")
    except Exception as exc:  # noqa: BLE001 - a figure must not turn a finished run into a failure
        print(f"lnref run: note: history.png was not written ({type(exc).__name__}: {exc})", file=sys.stderr)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``lnref`` parser; with ``command`` = one of this module's own commands (``run``, ``cache``), the other
    modules' commands are not registered (not imported: a tiny ``lnref run`` starts faster, issue 25)."""
    from .. import __version__

    parser = ArgumentParser(prog="lnref", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lnref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="train one config and write a run folder",
        description="Train one config by exact GD and write config.json, metrics.csv, arrays.npz "
        "and, last, meta.json (the mark of a complete run) into --out.",
    )
    add_config_arguments(run)
    run.add_argument("--out", type=Path, required=True, help="output folder (must be empty unless --force)")
    run.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out: the new run is built beside it and swapped in when complete",
    )
    run.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="save checkpoint.npz into --out at the first logged step at least STEPS after the last "
        "one (0: never), so an interrupted run can be continued with --resume",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its checkpoint.npz (config from config.json)",
    )
    run.set_defaults(func=_cmd_run)
    cache = sub.add_parser(
        "cache",
        help="where lnref keeps its compiled kernels; clear them",
        description="numba kernels are compiled once per install and kept in a per-user folder "
        "($XDG_CACHE_HOME/lnref or ~/.cache/lnref; LNREF_CACHE_DIR moves it, "
        "LNREF_CACHE=0 turns caching off). Deleting it is always safe.",
    )
    cache.add_argument("action", choices=("dir", "clear"), help="dir: print the folder; clear: delete it")
    cache.set_defaults(func=_cmd_cache)
    if command not in OWN_COMMANDS:
        for mod in COMMAND_MODULES:
            importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lnref`` command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    from ..io import OutputError, describe_os_error

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in OWN_COMMANDS else None)
    args = parser.parse_args(argv)
    prefix = f"lnref {args.command}: error:"
    try:
        if args.command in ("run", "reproduce", "sweep", "export"):
            _check_env_threads()  # before any work, whatever the command passes on to its workers
        return int(args.func(args))
    except (ConfigError, OutputError) as exc:
        print(f"{prefix} {to_cli_words(str(exc))}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # lnref.DivergedError and friends
        print(f"{prefix} {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{prefix} out of memory; make the problem smaller (see `lnref {args.command} --help`)", file=sys.stderr)
        return 2
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"{prefix} cannot use{name}: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lnref {args.command}: interrupted", file=sys.stderr)
        return 130
