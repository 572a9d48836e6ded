"""What every ``lnref`` subcommand shares: the Config flags (with help from :data:`lnref.config.FIELD_DOCS`),
reading ``--config FILE.toml``, progress lines, and an argument parser that suggests the flag a user meant.

A leaf of the CLI: :mod:`lnref.cli` and the subcommand modules (``lnref.sweeps.cli``, ``lnref.reproduce.cli``,
``lnref.oracle.cli``) import it; it imports none of them, so there is no import cycle.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._suggest import did_you_mean, suggest
from .config import FIELD_DOCS, FIELD_TYPES, Config, ConfigError, config_from_mapping, config_values_from_toml

__all__ = ["add_config_arguments", "config_from_args", "read_toml", "Progress", "ArgumentParser", "suggest",
           "did_you_mean", "config_flag_names", "THREADS_HELP"]

#: --threads of `lnref run` and `lnref reproduce` (lnref._threads.default_threads is the default's rule)
THREADS_HELP = ("numba threads (default: one for small problems, else all cores; LNREF_THREADS overrides it; "
                "results are the same bits for any value)")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with "did you mean" for mistyped flags (``--stpes`` -> ``--steps``), judged against the options
    of the subcommand given."""

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's API
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            command = getattr(ns, "command", None)
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                    parser = action.choices[command]
            parser.error(_unrecognized(extras, parser))
        return ns


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    options = _all_option_strings(parser)
    hints = []
    for w in extras:
        if w.startswith("--"):
            flag = w.split("=", 1)[0]
            best = [b for b in suggest(flag, options) if b != flag]
            if best:
                hints.append(f"{flag}: did you mean {best[0]}?")
            elif flag in options:
                hints.append(f"{flag} was given where it does not belong")
    message = f"unrecognized arguments: {' '.join(extras)}"
    return f"{message} ({'; '.join(hints)})" if hints else message


def _all_option_strings(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        out.extend(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out.extend(_all_option_strings(sub))
    return sorted(set(out))


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def _parse_int(text: str) -> int:
    """An integer flag value; '1e6' is accepted when it is a whole number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not f.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(f)


_parse_int.__name__ = "int"


def config_flag_names(name: str) -> list[str]:
    """The flags of a Config field: ``--tau-plus`` and ``--tau_plus``."""
    return [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """One option per Config field (``--tau-plus`` and ``--tau_plus`` both work), plus ``--config FILE``.

    Each option's help is the field's meaning and allowed values from :data:`lnref.config.FIELD_DOCS`.
    """
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="TOML file with Config fields (all at the top level, or all in a [config] table); "
                        "flags override it")
    g = p.add_argument_group("config fields (lnref.Config; SPEC.md sections 1-3)")
    defaults = Config()
    for name, typ in FIELD_TYPES.items():
        conv = _parse_bool if typ is bool else _parse_int if typ is int else typ
        doc = FIELD_DOCS.get(name, "").replace("%", "%%")
        default = getattr(defaults, name)
        g.add_argument(*config_flag_names(name), dest=name, type=conv, default=None, metavar=typ.__name__.upper(),
                       help=f"{doc} (default: {default!r})" if doc else f"default {default!r}")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict (through lnref.io's loader: regular UTF-8 files only, clean errors)."""
    from .io import read_toml as _read
    return _read(path, "config file")


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config of ``--config FILE`` (if any) overridden by the field flags given."""
    values: dict[str, Any] = {}
    source = ""
    if getattr(args, "config", None) is not None:
        source = str(args.config)
        doc = read_toml(args.config)
        values.update(config_values_from_toml(doc, source))
        if not values and isinstance(doc, dict) and "grid" in doc and getattr(args, "command", "sweep") != "sweep":
            raise ConfigError(f"{source} holds only a [grid] table (a sweep), no config fields: `lnref "
                              f"{args.command}` trains one config; run the grid with `lnref sweep --config "
                              f"{source}`, or give the config's fields (at the top or under [config])")
    from_file = set(values)
    for name in FIELD_TYPES:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if "tau" in values and any(k in values for k in ("tau_plus", "tau_minus")):
        if all(values.get(k, values["tau"]) == values["tau"] for k in ("tau_plus", "tau_minus")):
            values.pop("tau_plus", None)
            values.pop("tau_minus", None)
    given_by_flags = set(values) - from_file
    return config_from_mapping(values, source if not given_by_flags else (source and f"{source} with the flags"))


class Progress:
    """Progress lines on stderr for long runs: at most one per ``every`` seconds, none in the first ``after``
    seconds, and none for a run that finishes within them.

    The rate behind "left ~" is measured from the first call (the first logged step, after the kernels are
    compiled or loaded), so the estimate excludes compile time, and it is shown only once a step beyond that first
    one has been timed.
    """

    def __init__(self, label: str, every: float = 1.0, stream=None, after: float = 2.0):
        self.label, self.every, self.after, self.stream = label, every, after, stream or sys.stderr
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.first: tuple[int, float] | None = None  # (step, time) of the first call
        self.shown = False

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = (done, now)
        el = now - self.t0
        if el < self.after or (done < total and now - self.last < self.every):
            return
        if done >= total and not self.shown:
            return  # nothing was shown while it ran: the summary line says the rest
        d0, t_first = self.first
        if done > d0 and done < total:
            left = f"left ~{(now - t_first) / (done - d0) * (total - done):.0f}s"
        elif done >= total:
            left = "done"
        else:
            left = "left: measuring"
        self.last = now
        self.shown = True
        print(f"{self.label}: {done}/{total}  elapsed {el:.1f}s  {left} {extra}".rstrip(), file=self.stream,
              flush=True)


def compile_notice(engine: str, stream=None) -> None:
    """One line on stderr when the kernels of ``engine`` are not in the disk cache yet (they compile now)."""
    from ._cache import CACHE, CACHE_OFF_REASON, cache_dir, kernels_warm
    if kernels_warm(engine):
        return
    where = f"; cached in {cache_dir().parent}" if CACHE else f" (not cached, {CACHE_OFF_REASON}: in every process)"
    print(f"lnref: compiling the {engine} engine's numba kernels, once per install: about 20-60 s{where}",
          file=stream or sys.stderr, flush=True)
