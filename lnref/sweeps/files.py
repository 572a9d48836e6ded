"""The files of a sweep folder: the tidy ``sweep.csv`` (appended as batches finish, read back on resume),
``sweep.json`` (what the sweep is) and the integrity marks that make resume safe.

Every row of ``sweep.csv`` ends with two columns:

- ``sweep_id``: 16 hex digits of the SHA-256 of the base config and the grid (:func:`sweep_id`), so rows of
  another sweep are refused on resume even when ``sweep.json`` was deleted;
- ``check``: the CRC-32 of the rest of the line (8 hex digits), so a garbled row (a write cut short, a flipped
  byte) is recognised and re-run alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FIELD_TYPES, Config
from ..io import InputError, OutputError, read_bytes_checked
from .grid import convert_value
from .worker import BOOL_METRICS, INT_METRICS, METRICS

__all__ = [
    "TIDY_NAME",
    "MEAN_NAME",
    "META_NAME",
    "MARK_COLUMNS",
    "sweep_id",
    "sweep_meta",
    "csv_line",
    "row_line",
    "header_line",
    "read_tidy",
    "read_meta",
    "TidyRead",
]

TIDY_NAME, MEAN_NAME, META_NAME = "sweep.csv", "sweep_mean.csv", "sweep.json"
MARK_COLUMNS = ("sweep_id", "check")


def _json_plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def sweep_id(base: Config, grid: Mapping[str, Sequence[Any]]) -> str:
    """16 hex digits identifying the base config and the grid (the rows' provenance)."""
    doc = {"base_config": base.to_dict(), "grid": {k: list(v) for k, v in grid.items()}}
    text = json.dumps(doc, sort_keys=True, default=_json_plain, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sweep_meta(base: Config, grid: dict[str, list[Any]], replicates: int, metrics: Sequence[str]) -> dict[str, Any]:
    """The content of ``sweep.json`` (without versions and timings)."""
    return {
        "kind": "lnref.sweep",
        "base_config": base.to_dict(),
        "grid": grid,
        "replicates": replicates,
        "root_seed": base.seed,
        "metrics": list(metrics),
        "sweep_id": sweep_id(base, grid),
        "seed_rule": "SeedSequence(root_seed, spawn_key=(cell, replicate)).generate_state(1, uint64)[0] >> 1",
        "cell_order": "row-major over the grid fields (last field fastest)",
    }


def plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (NumPy scalars as Python numbers)."""
    return json.loads(json.dumps(obj, default=_json_plain))


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def csv_line(values: Sequence[Any]) -> str:
    """One CSV line (with its newline) of ``values`` formatted exactly (floats by repr)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(v) for v in values])
    return buf.getvalue()


def header_line(columns: Sequence[str]) -> str:
    return csv_line(list(columns) + list(MARK_COLUMNS))


def row_line(row: Mapping[str, Any], columns: Sequence[str], sid: str) -> str:
    """A tidy row with its ``sweep_id`` and ``check`` columns."""
    body = csv_line([row[c] for c in columns] + [sid])[:-1]
    return f"{body},{zlib.crc32(body.encode()):08x}\n"


def _parse_value(column: str, text: str) -> Any:
    if column in ("cell", "replicate", "seed") or column in INT_METRICS:
        return int(text)
    if column in BOOL_METRICS:
        if text not in ("true", "false"):
            raise ValueError(text)
        return text == "true"
    if column in FIELD_TYPES:
        if FIELD_TYPES[column] is not str:
            return convert_value(column, text)
        if column not in METRICS:
            return text
        try:  # 'loss' is both a field (the method, a name) and a metric (a number); a sweep.csv has one of them
            return float(text)
        except ValueError:
            return text
    return float(text)


class TidyRead:
    """What :func:`read_tidy` found: the good rows, how many lines were garbled, and foreign sweep ids."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.garbled: int = 0
        self.foreign: set[str] = set()


def read_tidy(path: Path, columns: list[str], sid: str) -> TidyRead:
    """Read the rows of a (possibly interrupted or damaged) tidy CSV.

    A line cut short, with a wrong field count, an unparsable value or a failing ``check`` is counted as
    garbled (its run is done again); a sound line of another sweep (another ``sweep_id``) is recorded in
    ``foreign`` (the caller refuses to resume).

    Raises
    ------
    InputError
        The file cannot be read, or its header is not this sweep's.
    """
    from ..io import decode_text

    out = TidyRead()
    text = decode_text(read_bytes_checked(path, "sweep table"), path, "sweep table")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # no newline at the end: a write cut short
        out.garbled += 1
    if not lines:
        return out
    expected = list(columns) + list(MARK_COLUMNS)
    try:
        header = next(csv.reader([lines[0]]))
    except csv.Error:
        header = None
    if header != expected:
        raise InputError(
            f"{path}: its columns {header} differ from this sweep's {expected}; resume only with "
            "the same grid and metrics, or start afresh with force=True"
        )
    for line in lines[1:]:
        body, _, check = line.rpartition(",")
        if f"{zlib.crc32(body.encode()):08x}" != check:
            out.garbled += 1
            continue
        try:
            fields = next(csv.reader([body]))
            if len(fields) != len(columns) + 1:
                raise ValueError("field count")
            if fields[-1] != sid:
                out.foreign.add(fields[-1])
                continue
            out.rows.append({c: _parse_value(c, t) for c, t in zip(columns, fields)})
        except (ValueError, csv.Error, Exception):  # noqa: BLE001 - any unreadable line is garbled
            out.garbled += 1
    return out


def read_meta(path: Path) -> dict[str, Any]:
    """``sweep.json`` as a dict (refusing a non-regular, unreadable or non-JSON file)."""
    from ..io import read_json

    doc = read_json(path, "sweep description")
    if not isinstance(doc, dict) or doc.get("kind") != "lnref.sweep":
        raise InputError(f"{path} is not an lnref sweep description (sweep.json)")
    return doc


def check_meta(old: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
    """Refuse to resume a sweep whose ``sweep.json`` says it is another one."""
    for key in ("base_config", "grid", "replicates", "metrics"):
        if old.get(key) != now[key]:
            raise OutputError(
                f"{path}: its {key} differs from this sweep's; resume only the same sweep, or start "
                "afresh in another folder (or overwrite with force=True)"
            )
