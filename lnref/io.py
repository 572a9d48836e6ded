"""Atomic file writing and self-describing .npz files (plain arrays, JSON metadata, SHA-256 per array)."""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["atomic_write", "write_text", "write_json", "save_npz", "load_npz", "versions", "prepare_out_dir",
           "OutputError"]

NPZ_SCHEMA = 1


class OutputError(RuntimeError):
    """An output folder or file cannot be written as asked."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Write to a temporary file in the same folder, then rename over ``path``.

    A crash leaves either the old file or the new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def versions() -> dict[str, str]:
    import numba
    import scipy
    from . import __version__
    return {"lnref": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "platform": platform.platform()}


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_npz(path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> None:
    """Save arrays plus a ``__meta__`` JSON string (schema, versions, dtype/shape/SHA-256 per array), atomically."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise OutputError(f"array {k!r} has dtype object; only plain numeric arrays are written")
    info = {"schema": NPZ_SCHEMA, "versions": versions(), **(meta or {}),
            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": sha256(v)}
                       for k, v in arrays.items()}}
    buf = _io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(info, default=_json_default)), **arrays)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())


def load_npz(path, verify: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`save_npz`; with ``verify`` check every SHA-256."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
    if verify:
        for k, info in meta.get("arrays", {}).items():
            if k not in arrays:
                raise OutputError(f"{path}: array {k!r} listed in the metadata is missing")
            if sha256(arrays[k]) != info["sha256"]:
                raise OutputError(f"{path}: array {k!r} does not match its SHA-256 (file corrupted or edited)")
    return arrays, meta


def prepare_out_dir(out: str | os.PathLike, force: bool) -> Path:
    """Create ``out``; refuse a non-empty folder unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(f"{out} is not empty; choose another folder or pass --force to overwrite its files")
    out.mkdir(parents=True, exist_ok=True)
    return out
