"""lnref: exact GD dynamics of two-layer ReLU^q CNNs under label noise (a reference implementation).

Exit status: 0 success, 1 the run failed (diverged, or a comparison did not match), 2 unusable input.
``lnref run`` is defined here; the other subcommands register from their own modules (COMMAND_MODULES).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Sequence

from .config import FIELD_TYPES, Config, ConfigError

__all__ = ["main", "add_config_arguments", "config_from_args"]

# Modules that add subcommands: each defines ``register(subparsers)`` and sets ``func(args) -> int``.
COMMAND_MODULES: list[str] = ["lnref.sweep", "lnref.reproduce.cli", "lnref.oracle_cli"]


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """One option per Config field (``--tau-plus`` and ``--tau_plus`` both work), plus ``--config FILE``."""
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="TOML file with Config fields (top level or in a [config] table); flags override it")
    g = p.add_argument_group("config fields (see lnref.Config)")
    defaults = Config()
    for name, typ in FIELD_TYPES.items():
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        conv = _parse_bool if typ is bool else typ
        g.add_argument(*flags, dest=name, type=conv, default=None, metavar=typ.__name__.upper(),
                       help=f"default {getattr(defaults, name)!r}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return doc


def config_from_args(args: argparse.Namespace) -> Config:
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        doc = read_toml(args.config)
        values.update(doc.get("config", doc))
    for name in FIELD_TYPES:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if "tau" in values and any(k in values for k in ("tau_plus", "tau_minus")):
        if all(values.get(k, values["tau"]) == values["tau"] for k in ("tau_plus", "tau_minus")):
            values.pop("tau_plus", None)
            values.pop("tau_minus", None)
    return Config.from_dict(values)


class Progress:
    """Progress lines on stderr, at most one per ``every`` seconds (and the last)."""

    def __init__(self, label: str, every: float = 1.0, stream=None):
        self.label, self.every, self.stream = label, every, stream or sys.stderr
        self.t0 = time.perf_counter()
        self.last = -1e9

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        now = time.perf_counter()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        el = now - self.t0
        eta = el / done * (total - done) if done else float("nan")
        print(f"{self.label}: {done}/{total}  elapsed {el:.1f}s  left ~{eta:.1f}s {extra}", file=self.stream,
              flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    import json

    from .io import OutputError, prepare_out_dir, write_json
    from .runs import CHECKPOINT, load_checkpoint, save_checkpoint, write_run
    from .training import DivergedError, train

    if args.resume:
        given = [name for name in FIELD_TYPES if getattr(args, name, None) is not None]
        if given or args.config is not None:
            raise ConfigError(f"--resume takes the config from {args.out}/config.json; do not pass config flags "
                              f"(got {', '.join('--' + g for g in given) or '--config'})")
        ckpt = args.out / CHECKPOINT
        if not ckpt.exists():
            raise OutputError(f"nothing to resume: {ckpt} does not exist (the run finished, or was started "
                              "without --checkpoint-every)")
        cfg = Config.from_dict(json.loads((args.out / "config.json").read_text()))
        state = load_checkpoint(ckpt)
        out = args.out
    else:
        cfg = config_from_args(args)
        out = prepare_out_dir(args.out, args.force)
        state = None
        write_json(out / "config.json", cfg.to_dict())  # first, so an interrupted run can be resumed
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every={args.checkpoint_every} is not allowed: use 0 (off) or a step count")
    prog = None if args.quiet else Progress(f"lnref run ({cfg.engine}, {cfg.algorithm})")
    t0 = time.perf_counter()
    try:
        result = train(cfg, threads=args.threads, progress=None if prog is None else (lambda t, T: prog(t, T)),
                       checkpoint_every=args.checkpoint_every, resume=state,
                       on_checkpoint=lambda st: save_checkpoint(out / CHECKPOINT, st))
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
    h = result.history
    if status:
        print(f"error: {result.message}. Everything up to then is saved in {out}", file=sys.stderr)
    else:
        print(f"wrote {out}: {cfg.steps} steps in {wall:.2f}s; final loss {h['loss'][-1]:.4g}, "
              f"train acc {h['train_acc'][-1]:.3f} (clean {h['train_acc_clean'][-1]:.3f}, "
              f"noisy {h['train_acc_noisy'][-1]:.3f}), test acc {h['test_acc'][-1]:.3f}")
    return status


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="lnref", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lnref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one config and write a run folder",
                         description="Train one config by exact GD and write config.json, meta.json, "
                                     "metrics.csv and arrays.npz into --out.")
    add_config_arguments(run)
    run.add_argument("--out", type=Path, required=True, help="output folder (must be empty unless --force)")
    run.add_argument("--force", action="store_true", help="overwrite the files of a non-empty --out")
    run.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                     help="save checkpoint.npz into --out at the first logged step at least STEPS after the last "
                          "one (0: never), so an interrupted run can be continued with --resume")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --out from its checkpoint.npz (config from config.json)")
    run.set_defaults(func=_cmd_run)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .io import OutputError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, OutputError) as exc:
        print(f"lnref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # lnref.DivergedError and friends
        print(f"lnref {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lnref {args.command}: interrupted", file=sys.stderr)
        return 130
