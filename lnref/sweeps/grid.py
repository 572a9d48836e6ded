"""Grids of a sweep: parsing ``FIELD=START:STOP:STEP`` / ``FIELD=V1,V2`` and TOML ``[grid]`` tables, validating a
grid against a base Config (every cell built up front), and the seed of each (cell, replicate)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._suggest import did_you_mean
from ..config import FIELD_TYPES, Config, ConfigError
from ..kernels.seeding import generate_state, spawn_first_words

__all__ = [
    "cell_seed",
    "cell_seeds",
    "parse_grid_item",
    "grid_from_toml",
    "validate_grid",
    "convert_value",
    "REFUSED_FIELDS",
]

# fields a grid may not range over: replicates own the seed; logging does not change final metrics
REFUSED_FIELDS = {
    "seed": "the seed is derived per cell and replicate from the base seed; use replicates=",
    "log_every": "final metrics do not depend on logging",
    "log_points": "final metrics do not depend on logging",
}


def cell_seed(root: int, cell: int, replicate: int) -> int:
    """The 63-bit seed of (cell, replicate) derived from the root seed (independent of scheduling)."""
    # SeedSequence(root, spawn_key=(cell, replicate)).generate_state(1, uint64): the same words, without the
    # SeedSequence object (lnref.kernels.seeding)
    state = generate_state(int(root), (int(cell), int(replicate)), 1, np.uint64)
    return int(state[0] >> np.uint64(1))


def cell_seeds(root: int, cells: Sequence[int], replicates: Sequence[int]) -> list[int]:
    """:func:`cell_seed` of every (cells[j], replicates[j]), in one kernel call (a full phase diagram's 100 000
    seeds took 0.36 s one by one, before its runs could start)."""
    root = int(root)
    c = np.asarray(cells, dtype=np.int64).reshape(-1)
    r = np.asarray(replicates, dtype=np.int64).reshape(-1)
    if c.shape != r.shape:
        raise ValueError(f"cells and replicates must have the same length, got {c.size} and {r.size}")
    if not (0 <= root < 2**64) or (c.size and (c.min() < 0 or c.max() >= 2**32 or r.min() < 0 or r.max() >= 2**32)):
        return [cell_seed(root, int(a), int(b)) for a, b in zip(c.tolist(), r.tolist())]
    out = np.empty(c.size, dtype=np.uint64)
    spawn_first_words(root & 0xFFFFFFFF, root >> 32, c.astype(np.uint32), r.astype(np.uint32), out)
    return (out >> np.uint64(1)).astype(np.int64).tolist()


def convert_value(name: str, value: Any) -> Any:
    """A grid value of field ``name`` given as text (CLI, CSV) or a NumPy scalar, as the field's Python type."""
    typ = FIELD_TYPES[name]
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        try:
            if typ is bool:
                if text.lower() in ("true", "1", "yes", "on"):
                    return True
                if text.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError(text)
            if typ is int:
                f = float(text)
                if not f.is_integer():
                    raise ValueError(text)
                return int(f)
            return float(text)
        except (ValueError, OverflowError):
            raise ConfigError(f"grid {name}: {value!r} is not a valid {typ.__name__}") from None
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    return value


def _unknown_field(name: str) -> ConfigError:
    allowed = sorted(set(FIELD_TYPES) - set(REFUSED_FIELDS))
    return ConfigError(
        f"grid field {name!r} is not a Config field{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"
    )


def parse_grid_item(text: str) -> tuple[str, list[Any]]:
    """Parse ``FIELD=START:STOP:STEP`` (inclusive range) or ``FIELD=V1,V2,...`` into (field, values).

    Range values are START + k STEP for k = 0..round((STOP - START)/STEP), rounded to 12 significant digits
    so that ``0:9.9:0.1`` gives 0.1, 0.2, ... exactly as typed.
    """
    if "=" not in text:
        raise ConfigError(f"--grid {text!r}: expected FIELD=START:STOP:STEP or FIELD=V1,V2,...")
    name, _, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if name not in FIELD_TYPES:
        raise _unknown_field(name)
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"grid {name}: no values given")
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ConfigError(f"grid {name}={spec!r}: a range is START:STOP:STEP (inclusive)")
        try:
            start, stop, step = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"grid {name}={spec!r}: START, STOP and STEP must be numbers") from None
        if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)) or step <= 0 or stop < start:
            raise ConfigError(f"grid {name}={spec!r}: need finite START <= STOP and STEP > 0")
        count = (stop - start) / step + 1e-9
        if not math.isfinite(count) or count >= 10**6:
            raise ConfigError(f"grid {name}={spec!r}: more than 10^6 values; at most 10^6 are allowed")
        vals = [float(f"{start + k * step:.12g}") for k in range(math.floor(count) + 1)]
        if FIELD_TYPES[name] is int:
            vals = [convert_value(name, repr(v)) for v in vals]
        return name, vals
    return name, [convert_value(name, v) for v in spec.split(",")]


def grid_from_toml(doc: Mapping[str, Any], source: str) -> dict[str, list[Any]]:
    """The grid of a TOML document: its ``[grid]`` table (or the document itself when it has none)."""
    grid = doc.get("grid", doc)
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{source}: [grid] must be a table of FIELD = [values] or FIELD = 'START:STOP:STEP'")
    out: dict[str, list[Any]] = {}
    for name, spec in grid.items():
        if isinstance(spec, str):
            k, vals = parse_grid_item(f"{name}={spec}")
            out[k] = vals
        elif isinstance(spec, list):
            out[name] = list(spec)
        else:
            raise ConfigError(f"{source}: grid {name} = {spec!r}: give a list or a 'START:STOP:STEP' string")
    return out


def _refuse_repeats(base: Config, name: str, values: list[Any]) -> None:
    """Refuse a value list with two values that are the same once the Config converts them (``n = [10, 10.0]``,
    ``mu_norm = [1, 1.0]``): both cells would be the same run."""
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        try:
            conv = getattr(base.replace(**{name: v}), name)  # the value as the Config holds it
        except (ConfigError, TypeError):
            conv = v  # refused below, naming the cell
        key = ("nan",) if isinstance(conv, float) and math.isnan(conv) else conv
        try:
            first = seen.setdefault(key, i)
        except TypeError:  # unhashable: compared by repr
            first = seen.setdefault(repr(key), i)
        if first != i:
            old = values[first]
            same = f"{old!r} and {v!r} are the same value" if repr(old) != repr(v) else f"{v!r} is given twice"
            raise ConfigError(
                f"grid {name}: values are repeated: {same} ({name}={conv!r} once converted), so two "
                "cells would be the same run; give each value once"
            )


def validate_grid(
    base: Config, grid: Mapping[str, Sequence[Any]], max_cells: int | None = None
) -> tuple[list[str], list[tuple]]:
    """Check a grid and build every cell's Config up front (so a bad cell fails before anything runs).

    Parameters
    ----------
    base : Config
    grid : mapping field -> list of values
    max_cells : int, optional
        Refuse grids with more cells than this (before the cells are built).

    Returns
    -------
    fields : list of str
    cells : list of tuple, one per cell in row-major order (the last field varies fastest)

    Raises
    ------
    ConfigError
        Unknown or refused field, empty or duplicated value list, too many cells, or a cell whose Config is
        invalid (the message names the cell).
    """
    if not isinstance(base, Config):
        raise ConfigError(f"base_config must be an lnref.Config, got {type(base).__name__}")
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError("grid must be a non-empty mapping field -> list of values")
    fields = []
    lists = []
    for name, values in grid.items():
        if name not in FIELD_TYPES:
            raise _unknown_field(name)
        if name in REFUSED_FIELDS:
            raise ConfigError(f"grid over {name!r} is not allowed: {REFUSED_FIELDS[name]}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ConfigError(f"grid {name}={values!r}: give a list of values")
        values = [convert_value(name, v) for v in values]
        if not values:
            raise ConfigError(f"grid {name}: the list of values is empty; give at least one value")
        _refuse_repeats(base, name, values)
        fields.append(name)
        lists.append(values)
    count = math.prod(len(v) for v in lists)
    if max_cells is not None and count > max_cells:
        raise ConfigError(
            f"the grid has {count} cells; at most {max_cells} are allowed (use coarser steps or "
            "fewer fields, or split the sweep)"
        )
    cells = list(itertools.product(*lists))
    for index, values in enumerate(cells):
        try:
            base.replace(**dict(zip(fields, values)))
        except ConfigError as exc:
            desc = ", ".join(f"{k}={v!r}" for k, v in zip(fields, values))
            raise ConfigError(f"grid cell {index} ({desc}) is invalid: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"grid cell {index}: {exc}") from None
    return fields, cells
