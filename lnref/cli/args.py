"""What every ``lnref`` subcommand shares: the Config flags (with help from :data:`lnref.config.FIELD_DOCS`),
reading ``--config FILE.toml``, progress lines, and an argument parser that suggests the flag a user meant.

A leaf of the CLI: :mod:`lnref.cli` and the subcommand modules (``lnref.sweeps.cli``, ``lnref.reproduce.cli``,
``lnref.oracle.cli``) import it; it imports none of them, so there is no import cycle.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from pathlib import Path
from typing import Any

from .._suggest import did_you_mean, suggest, synonym
from ..config import FIELD_DOCS, FIELD_TYPES, Config, ConfigError, config_from_mapping, config_values_from_toml

__all__ = [
    "add_config_arguments",
    "config_from_args",
    "read_toml",
    "Progress",
    "ArgumentParser",
    "suggest",
    "did_you_mean",
    "config_flag_names",
    "THREADS_HELP",
]

#: --threads of `lnref run` and `lnref reproduce` (lnref.training.threads.default_threads is the default's rule)
THREADS_HELP = (
    "numba threads (default: one for small problems, else all cores; LNREF_THREADS overrides it; "
    "results are the same bits for any value)"
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that never guesses: no abbreviations (``--seed`` is not taken for ``--seeds``), "did you mean"
    for mistyped flags (``--stpes`` -> ``--steps``) and for other frameworks' names (``--lr`` -> ``--eta``), judged
    against the options of the subcommand given, and errors on one line (no usage block; ``--help`` has it).

    Subparsers made with ``add_subparsers().add_parser`` are of this class too (argparse's default), so the rules
    hold for every subcommand.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse's API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):  # argparse's API
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
            syn = synonym(flag, options)
            best = [b for b in suggest(flag, options) if b != flag]
            if syn is not None:
                hints.append(f"{flag}: did you mean {syn[0]}? lnref's name for {syn[1]}")
            elif best:
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


def _parse_loss_param(text: str) -> tuple[str, float]:
    """NAME=VALUE of ``--loss-param`` (the value a number; Config checks the name and range)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. lam=3)")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value {value!r} is not a number") from None


_parse_loss_param.__name__ = "NAME=VALUE"


def config_flag_names(name: str) -> list[str]:
    """The flags of a Config field: ``--tau-plus`` and ``--tau_plus``."""
    return [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])


_ROLE = re.compile(r":(?:func|mod|class|data|meth|attr|obj|exc):`~?([^`]+)`")


def help_text(doc: str) -> str:
    """A docstring fragment as plain text for ``--help``: Sphinx roles and literal backticks removed
    (``:mod:`lnref.data``` -> ``lnref.data``, ````p```` -> ``p``), ``%`` escaped for argparse."""
    doc = _ROLE.sub(r"\1", doc).replace("``", "")
    return doc.replace("%", "%%")


def _none_or(conv):
    """A flag converter that also takes ``None`` (the field's documented default), as :data:`NONE_GIVEN`."""

    def parse(text: str):
        if text.strip().lower() == "none":
            return NONE_GIVEN
        return conv(text)

    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


class _NoneGiven:
    """``--output-scale None`` on the command line: the field set to None explicitly (overriding a TOML file)."""

    def __repr__(self) -> str:
        return "None"


NONE_GIVEN = _NoneGiven()


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """One option per Config field (``--tau-plus`` and ``--tau_plus`` both work), plus ``--config FILE``.

    Each option's help is the field's meaning and allowed values from :data:`lnref.config.FIELD_DOCS`, as plain
    text, with the default appended unless the text already states it.  Fields whose default is None (``tau``,
    ``output_scale``, ...) accept the value ``None``.
    """
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE.toml",
        help="TOML file with Config fields (all at the top level, or all in a [config] table); flags override it",
    )
    g = p.add_argument_group("config fields (lnref.Config; SPEC.md sections 1-3)")
    defaults = Config()
    optional = {f.name for f in dataclasses.fields(Config) if f.default is None}
    for name, typ in FIELD_TYPES.items():
        if name == "loss_params":
            g.add_argument(
                "--loss-param",
                "--loss_param",
                dest="loss_params",
                action="append",
                default=None,
                type=_parse_loss_param,
                metavar="NAME=VALUE",
                help="a hyper-parameter of the training method --loss (repeat the flag for several, "
                "e.g. --loss elr --loss-param lam=3 --loss-param beta=0.7); the others take the "
                "official code's defaults (SPEC.md section 9)",
            )
            continue
        conv = _parse_bool if typ is bool else _parse_int if typ is int else typ
        if name in optional:
            conv = _none_or(conv)
        doc = help_text(FIELD_DOCS.get(name, ""))
        default = getattr(defaults, name)
        if not doc:
            doc = f"Default: {default!r}."
        elif not re.search(r"\bdefault\b", doc, re.IGNORECASE):
            doc += f" Default: {default!r}."
        g.add_argument(
            *config_flag_names(name), dest=name, type=conv, default=None, metavar=typ.__name__.upper(), help=doc
        )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict (through lnref.io's loader: regular UTF-8 files only, clean errors)."""
    from ..io import read_toml as _read

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
            raise ConfigError(
                f"{source} holds only a [grid] table (a sweep), no config fields: `lnref "
                f"{args.command}` trains one config; run the grid with `lnref sweep --config "
                f"{source}`, or give the config's fields (at the top or under [config])"
            )
    from_file = set(values)
    file_loss = values.get("loss", "logistic")
    for name in FIELD_TYPES:
        v = getattr(args, name, None)
        if v is not None and name != "loss_params":
            values[name] = None if v is NONE_GIVEN else v
    if values.get("loss", "logistic") != file_loss:
        values.pop("loss_params", None)  # the file's parameters belong to the file's method
    pairs = getattr(args, "loss_params", None)
    if pairs is not None:
        names = [k for k, _ in pairs]
        repeated = sorted({k for k in names if names.count(k) > 1})
        if repeated:
            raise ConfigError(f"--loss-param {', '.join(repeated)} given more than once; give each parameter once")
        values["loss_params"] = {**dict(values.get("loss_params") or {}), **dict(pairs)}
    if (
        "tau" in values
        and any(k in values for k in ("tau_plus", "tau_minus"))
        and all(values.get(k, values["tau"]) == values["tau"] for k in ("tau_plus", "tau_minus"))
    ):
        values.pop("tau_plus", None)
        values.pop("tau_minus", None)
    given_by_flags = set(values) - from_file
    return config_from_mapping(values, source if not given_by_flags else (source and f"{source} with the flags"))


class Progress:
    """Progress lines on stderr for long runs: at most one per ``every`` seconds, none in the first ``after``
    seconds, and none for a run that finishes within them.

    The rate behind "left ~" is measured from the SECOND call on: the first call comes at the first logged step,
    before any GD step has run, so the time between the first and the second call holds the compile (or the
    disk-cache load) of the step kernels; from the second call on every kernel is compiled, so the estimate
    excludes compile time.  It is shown only once a step beyond the second call has been timed ("left:
    measuring" until then).
    """

    def __init__(self, label: str, every: float = 1.0, stream=None, after: float = 2.0):
        self.label, self.every, self.after, self.stream = label, every, after, stream or sys.stderr
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.calls = 0
        self.base: tuple[int, float] | None = None  # (step, time) of the second call: the rate's origin
        self.shown = False

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        now = time.perf_counter()
        self.calls += 1
        if self.calls == 2:
            self.base = (done, now)
        el = now - self.t0
        if el < self.after or (done < total and now - self.last < self.every):
            return
        if done >= total and not self.shown:
            return  # nothing was shown while it ran: the summary line says the rest
        if done >= total:
            left = "done"
        elif self.base is not None and done > self.base[0]:
            d0, t_base = self.base
            left = f"left ~{(now - t_base) / (done - d0) * (total - done):.0f}s"
        else:
            left = "left: measuring"
        self.last = now
        self.shown = True
        print(f"{self.label}: {done}/{total}  elapsed {el:.1f}s  {left} {extra}".rstrip(), file=self.stream, flush=True)


def compile_notice(engine: str, stream=None) -> None:
    """One line on stderr when the kernels of ``engine`` are not in the disk cache yet (they compile now)."""
    from ..kernels.cache import CACHE, CACHE_OFF_REASON, cache_dir, kernels_warm

    if kernels_warm(engine):
        return
    where = f"; cached in {cache_dir().parent}" if CACHE else f" (not cached, {CACHE_OFF_REASON}: in every process)"
    print(
        f"lnref: compiling the {engine} engine's numba kernels, once per install: about 20-60 s{where}",
        file=stream or sys.stderr,
        flush=True,
    )
