"""Atomic file writing, self-describing .npz files (plain arrays, JSON metadata, SHA-256 per array), and the one
error boundary of every loader.

Every file lnref reads (TOML configs, JSON, checkpoints, datasets, run arrays, sweep tables) goes through
:func:`read_bytes_checked`: a FIFO, device, socket or folder is refused before it is opened for reading (so
nothing hangs), and every OS, zip, EOF, JSON, Unicode, key or value error while reading or parsing becomes an
:class:`InputError` naming the file and the problem.  The CLI turns these into exit status 2.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io as _io
import json
import os
import platform
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError

__all__ = [
    "atomic_write",
    "write_text",
    "write_json",
    "save_npz",
    "load_npz",
    "versions",
    "prepare_out_dir",
    "OutputError",
    "InputError",
    "DamagedFileError",
    "read_bytes_checked",
    "read_json",
    "read_toml",
    "decode_text",
    "LOAD_ERRORS",
    "describe_os_error",
    "file_mode",
    "dir_mode",
]

NPZ_SCHEMA = 1


class OutputError(RuntimeError):
    """An output folder or file cannot be written as asked."""


class InputError(ConfigError):
    """An input file cannot be used: missing, not a regular file, unreadable, damaged or of the wrong kind."""


class DamagedFileError(InputError, OutputError):
    """A file's content fails its own check (SHA-256, listed arrays); also an OutputError for older callers."""


# what reading and parsing a damaged file can raise; each becomes an InputError naming the file
LOAD_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    MemoryError,
    zlib.error,
    UnicodeDecodeError,
)


def describe_os_error(exc: OSError) -> str:
    """A short description of an OSError without the file name (the caller names the file)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno in (errno.EROFS,):
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop)"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is not a folder"
    if exc.errno == errno.ENOENT:
        return "no such file or folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return exc.strerror or type(exc).__name__


_KIND_OF_MODE = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    for test, name in _KIND_OF_MODE:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_bytes_checked(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; anything else (missing, FIFO, device, folder) is an InputError.

    The file is opened non-blocking and checked with ``fstat`` before any read, so a FIFO never blocks.

    Parameters
    ----------
    path : path
    what : str
        What the file is for (used in messages: ``"config file"``, ``"checkpoint"``).
    max_bytes : int, optional
        Refuse larger files.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be opened: {describe_os_error(exc)}") from None
    try:
        st = os.fstat(fd)
        kind = _not_regular(st.st_mode)
        if kind is not None:
            raise InputError(f"{what} {path} is {kind}, not a regular file; give the path of a file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise InputError(f"{what} {path} has {st.st_size} bytes; at most {max_bytes} are expected")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 24)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except MemoryError:
        raise InputError(f"{what} {path} is too large to read into memory") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {describe_os_error(exc)}") from None
    finally:
        os.close(fd)


def decode_text(raw: bytes, path: str | os.PathLike, what: str = "file") -> str:
    """UTF-8 text of a file's bytes, or an InputError naming the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); save it as UTF-8"
        ) from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON of a regular UTF-8 file, or an InputError saying what is wrong and where."""
    text = decode_text(read_bytes_checked(path, what), path, what)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{what} {path} is nested too deeply to be an lnref file") from None
    except ValueError as exc:
        raise InputError(f"{what} {path} is not valid JSON: {exc}") from None


def read_toml(path: str | os.PathLike, what: str = "config file") -> dict[str, Any]:
    """The parsed TOML of a regular UTF-8 file, or an InputError saying what is wrong and where."""
    import tomllib

    text = decode_text(read_bytes_checked(path, what, max_bytes=16 * 2**20), path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{what} {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{what} {path} is nested too deeply to be a config") from None


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy in threads)
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode a new file gets from ``open(..., 'w')``: 0o666 without the process's umask bits."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a new folder gets from ``mkdir``: 0o777 without the process's umask bits."""
    return 0o777 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Write to a temporary file in the same folder, then rename over ``path``.

    A crash (or a full disk) leaves either the old file or the new one, never a half-written file.  The new
    file gets the permissions of an ordinary new file (0o666 minus the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


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

    return {
        "lnref": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_npz(path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> None:
    """Save arrays plus a ``__meta__`` JSON string (schema, versions, dtype/shape/SHA-256 per array) and the
    SHA-256 of that string (``__meta_sha256__``), atomically."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise OutputError(f"array {k!r} has dtype object; only plain numeric arrays are written")
    info = {
        "schema": NPZ_SCHEMA,
        "versions": versions(),
        **(meta or {}),
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": sha256(v)} for k, v in arrays.items()},
    }
    text = json.dumps(info, default=_json_default)
    buf = _io.BytesIO()
    np.savez(
        buf, __meta__=np.array(text), __meta_sha256__=np.array(hashlib.sha256(text.encode()).hexdigest()), **arrays
    )
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())


def load_npz(path, verify: bool = True, what: str = ".npz file") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`save_npz`; with ``verify`` check every SHA-256.

    Raises
    ------
    InputError
        The file is missing, not a regular file, not a readable .npz (damaged, truncated, holding pickles), or
        its metadata is not a JSON object.
    DamagedFileError
        (an InputError and an OutputError) an array listed in the metadata is missing or does not match its
        SHA-256.
    """
    raw = read_bytes_checked(path, what)
    try:
        with np.load(_io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("__meta__", "__meta_sha256__")}
            text = str(z["__meta__"]) if "__meta__" in z.files else "{}"
            meta_sha = str(z["__meta_sha256__"]) if "__meta_sha256__" in z.files else None
        if meta_sha is not None and hashlib.sha256(text.encode()).hexdigest() != meta_sha:
            raise DamagedFileError(f"{path}: its metadata does not match its SHA-256 (file corrupted or edited)")
        meta = json.loads(text)
    except InputError:
        raise
    except RecursionError:
        raise InputError(f"{what} {path} has metadata nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the bytes are in memory: whatever parsing them raises is damage
        # (LOAD_ERRORS, and e.g. tokenize.TokenError / SyntaxError from a damaged .npy header)
        raise InputError(
            f"{what} {path} is not a readable lnref .npz file ({_short(exc)}); it is damaged or not written by lnref"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arrays", {}), dict):
        raise InputError(f"{what} {path}: its metadata is not a JSON object with an 'arrays' table")
    if verify:
        if "arrays" in meta:
            unlisted = sorted(set(arrays) - set(meta["arrays"]))
            if unlisted:
                raise DamagedFileError(
                    f"{path}: array(s) {', '.join(map(repr, unlisted))} are not listed (with their "
                    "SHA-256) in the metadata: the file was edited after it was written"
                )
        for k, info in meta.get("arrays", {}).items():
            if k not in arrays:
                raise DamagedFileError(f"{path}: array {k!r} listed in the metadata is missing")
            if not isinstance(info, dict) or sha256(arrays[k]) != info.get("sha256"):
                raise DamagedFileError(f"{path}: array {k!r} does not match its SHA-256 (file corrupted or edited)")
    return arrays, meta


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def prepare_out_dir(out: str | os.PathLike, force: bool) -> Path:
    """Create ``out``; refuse a non-empty folder unless ``force`` (OS errors become OutputErrors)."""
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        if out.exists() and any(out.iterdir()) and not force:
            raise OutputError(f"{out} is not empty; choose another folder or pass --force to overwrite its files")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out} cannot be used as an output folder: {describe_os_error(exc)}") from None
    return out
