"""Config from text: each field's type and documentation (the CLI's --help, sweeps' grids) and the reading of
TOML documents and mappings into a :class:`~lnref.config.Config`, with errors that name the source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from . import Config
from .checks import ConfigError
from .losses import LOSSES

__all__ = ["FIELD_TYPES", "FIELD_DOCS", "config_values_from_toml", "config_from_mapping"]


def _field_types() -> dict[str, type]:
    """Python type used to parse each field from text (CLI, sweeps)."""
    out: dict[str, type] = {}
    defaults = Config()
    for f in dataclasses.fields(Config):
        v = getattr(defaults, f.name)
        if f.name in ("tau", "tau_plus", "tau_minus", "output_scale", "forget_rate"):
            out[f.name] = float
        elif f.name == "loss_params":
            out[f.name] = dict
        elif isinstance(v, bool):
            out[f.name] = bool
        elif isinstance(v, int):
            out[f.name] = int
        elif isinstance(v, float):
            out[f.name] = float
        else:
            out[f.name] = str
    return out


FIELD_TYPES = _field_types()


# ---------------------------------------------------------------------------------- field docs and loading
def _field_docs() -> dict[str, str]:
    """Each field's meaning and allowed values, read from the Parameters section of Config's docstring."""
    doc = Config.__doc__ or ""
    lines = doc.split("Parameters\n    ----------\n", 1)[-1].splitlines()
    out: dict[str, str] = {}
    names: list[str] = []
    kind = ""
    text: list[str] = []

    def flush() -> None:
        if names:
            body = " ".join(" ".join(text).split())
            allowed = kind if kind.startswith("{") else ""
            entry = body + (f" Allowed: {allowed}." if allowed else "")
            parts = [x.strip() for x in body.split(". ", 1)[0].rstrip(".").split(", ")]
            if len(names) > 1 and len(parts) == len(names):  # "n, d, m : int / Samples, dimension, filters."
                for nm, part in zip(names, parts):
                    out[nm] = f"{part[0].upper()}{part[1:]}." + (f" Allowed: {allowed}." if allowed else "")
                return
            for nm in names:
                out[nm] = entry.strip()

    for line in lines:
        if line.startswith("    ") and not line.startswith("     ") and " : " in line:
            flush()
            head, _, kind = line.strip().partition(" : ")
            names = [h.strip() for h in head.split(",")]
            kind = kind.strip()
            text = []
        elif line.startswith("        "):
            text.append(line.strip())
        elif line.strip() and not line.startswith(" "):
            break
    flush()
    return {f.name: out.get(f.name, "") for f in dataclasses.fields(Config)}


FIELD_DOCS: dict[str, str] = _field_docs()
"""Field name -> its meaning and allowed values (one source: Config's docstring; used by the CLI's --help)."""


def config_values_from_toml(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The Config values of a parsed TOML document: its top-level fields, or its ``[config]`` table.

    A document may also hold a ``[grid]`` table (sweeps).  Mixing top-level fields and a ``[config]`` table is
    refused (which would win is not obvious), and so is a ``config`` key that is not a table.

    Raises
    ------
    ConfigError
        Naming ``source`` and what is wrong.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a TOML table of Config fields")
    loss_table = doc.get("loss") if isinstance(doc.get("loss"), Mapping) else None
    top = {k: v for k, v in doc.items() if k not in ("config", "grid") and not (k == "loss" and loss_table)}
    if "config" in doc:
        table = doc["config"]
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{source}: 'config' must be a table ([config] followed by FIELD = VALUE lines), "
                f"not {type(table).__name__} {table!r:.40}"
            )
        if top:
            raise ConfigError(
                f"{source}: fields {', '.join(sorted(map(str, top)))} are at the top level and others "
                "in a [config] table; put every field in one place (all at the top, or all under "
                "[config] -- TOML puts every line after [config] into that table)"
            )
        values = dict(table)
    else:
        values = top
    if loss_table is not None:
        values["loss"] = loss_table
    return _loss_table(values, source)


def _loss_table(values: dict[str, Any], source: str) -> dict[str, Any]:
    """A ``[loss]`` table (``name = "elr"`` and the method's parameters) as the fields ``loss`` and
    ``loss_params``."""
    table = values.get("loss")
    if not isinstance(table, Mapping):
        return values
    table = dict(table)
    if "name" not in table:
        raise ConfigError(
            f'{source}: the [loss] table needs name = "..." (one of {", ".join(map(repr, LOSSES))}) '
            'beside the method\'s parameters, e.g. [loss] name = "elr" lam = 3'
        )
    if "loss_params" in values:
        raise ConfigError(f"{source}: give the method's parameters in the [loss] table or as loss_params, not both")
    values = dict(values)
    values["loss"] = table.pop("name")
    values["loss_params"] = table
    return values


def config_from_mapping(values: Mapping[str, Any], source: str = "") -> Config:
    """:meth:`Config.from_dict` whose errors name ``source`` (a file) and never leak a TypeError."""
    prefix = f"{source}: " if source else ""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix}expected a mapping of Config fields, got {type(values).__name__}")
    try:
        return Config.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    except (TypeError, OverflowError) as exc:
        raise ConfigError(f"{prefix}invalid config values: {exc}") from None
