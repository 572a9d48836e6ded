"""A run folder: config.json, metrics.csv, arrays.npz, then meta.json last (docs/DESIGN.md "Outputs a user can trust").

``meta.json`` is the folder's completion mark: it is written after every other file and says
``"complete": true``.  A folder without it (a run killed, or stopped by a full disk) is incomplete; it is never
read as a result (:func:`load_run` refuses it) and ``lnref run --resume`` continues it when it holds a
checkpoint.  :class:`RunFolder` checks an output folder before anything is written and, for ``--force`` on a
non-empty folder, builds the new run in a sibling temporary folder that replaces the old one only when complete.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import ctypes.util
import io
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._lock import OutputLock, holder
from ..config import Config, ConfigError
from ..io import (
    InputError,
    OutputError,
    describe_os_error,
    dir_mode,
    load_npz,
    read_json,
    save_npz,
    versions,
    write_json,
    write_text,
)
from . import STATE_KEYS, Result, check_train_options

__all__ = [
    "write_run",
    "load_run",
    "metrics_csv",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT",
    "RUN_FILES",
    "MARK",
    "run_status",
    "RunFolder",
    "check_train_options",
]

CHECKPOINT = "checkpoint.npz"
MARK = "meta.json"  # written last: its presence (with "complete": true) marks a finished run folder
RUN_FILES = ("config.json", "metrics.csv", "arrays.npz", MARK)


def metrics_csv(history: dict[str, np.ndarray]) -> str:
    """The history as CSV text, one row per logged step (floats with repr precision)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(history)
    w.writerow(cols)
    for i in range(len(history["step"])):
        w.writerow([_fmt(history[c][i]) for c in cols])
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "nan" if math.isnan(v) else repr(v)


def write_run(out: str | os.PathLike, result: Result, extra_meta: dict[str, Any] | None = None) -> Path:
    """Write ``result`` into the folder ``out`` (each file atomically), ``meta.json`` (the completion mark) last."""
    out = Path(out)
    write_json(out / "config.json", result.config.to_dict())
    write_text(out / "metrics.csv", metrics_csv(result.history))
    arrays = {f"trace_{k}": v for k, v in result.trace.items()}
    arrays.update(step=result.history["step"], gamma=result.gamma, rho=result.rho)
    if result.W is not None:
        arrays["W"] = result.W
    if result.W0 is not None:
        arrays["W0"] = result.W0
    if result.b is not None:
        arrays.update(b=result.b, b0=result.b0)
    data = result.data
    if data is not None and hasattr(data, "y_obs"):
        arrays.update(y=data.y, y_obs=data.y_obs)
    save_npz(out / "arrays.npz", arrays, meta={"kind": "lnref.run", "config": result.config.to_dict()})
    meta = {
        "versions": versions(),
        "seed": result.config.seed,
        "threads": result.threads,
        "timings_seconds": result.timings,
        "steps_done": result.steps_done,
        "diverged": result.diverged,
        "message": result.message,
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra_meta or {}),
        "complete": True,
    }
    write_json(out / MARK, meta)
    return out


def run_status(folder: str | os.PathLike) -> str:
    """``'complete'``, ``'resumable'`` (no completion mark, a checkpoint), ``'incomplete'``, ``'empty'`` or
    ``'missing'``: what a folder holds, judged by its completion mark (``meta.json`` with ``"complete": true``).

    Run folders written before the mark existed count as complete when meta.json, metrics.csv and arrays.npz are
    all there.
    """
    folder = Path(folder)
    try:
        if not folder.is_dir():
            return "missing"
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return "missing"
    if not names:
        return "empty"
    if MARK in names:
        try:
            meta = read_json(folder / MARK, "run metadata")
        except InputError:
            meta = None
        if isinstance(meta, dict) and (
            meta.get("complete") is True or ("complete" not in meta and {"metrics.csv", "arrays.npz"} <= names)
        ):
            return "complete"
    return "resumable" if CHECKPOINT in names and "config.json" in names else "incomplete"


def load_run(folder: str | os.PathLike) -> tuple[Config, dict[str, np.ndarray]]:
    """Read back the config and arrays of a complete run folder (checking every SHA-256).

    Raises
    ------
    InputError
        The folder is not a complete run (no completion mark: the run was interrupted), or a file is damaged.
    """
    folder = Path(folder)
    status = run_status(folder)
    if status != "complete":
        hint = {
            "resumable": "it was interrupted; continue it with `lnref run --resume --out FOLDER`",
            "incomplete": "the run was interrupted or could not write its files (no meta.json marking it complete)",
            "empty": "it is empty",
            "missing": "it does not exist or is not a folder",
        }[status]
        raise InputError(f"{folder} is not a complete run folder: {hint}")
    cfg = config_from_json(folder / "config.json")
    arrays, _ = load_npz(folder / "arrays.npz", what="run arrays")
    return cfg, arrays


def config_from_json(path: str | os.PathLike) -> Config:
    """The Config stored in a run's ``config.json`` (InputError when it is missing, damaged or invalid)."""
    doc = read_json(path, "run config")
    if not isinstance(doc, dict):
        raise InputError(f"run config {path} does not hold a JSON object of Config fields")
    try:
        return Config.from_dict(doc)
    except InputError:
        raise
    except (ConfigError, TypeError) as exc:
        raise InputError(f"run config {path}: {exc}") from None


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a ``train(on_checkpoint=...)`` state atomically as a self-describing .npz (SHA-256 per array)."""
    arrays = {"gamma": state["gamma"], "rho": state["rho"]}
    for key in ("W", "bias"):
        if key in state:
            arrays[key] = state[key]
    if state["config"].get("loss") == "elr":  # ELR's per-sample targets are part of the state (SPEC.md section 9)
        arrays["target"] = state["target"]
    arrays.update({f"history_{k}": v for k, v in state["history"].items()})
    arrays.update({f"trace_{k}": v for k, v in state["trace"].items()})
    # a selection algorithm's state (lnref.training.selection: masks, co-teaching's second network)
    arrays.update({f"selection_{k}": v for k, v in (state.get("selection") or {}).items()})
    meta = {
        "kind": "lnref.checkpoint",
        "step": state["step"],
        "rows": state["rows"],
        "config": state["config"],
        "engine": state["engine"],
        "label_noise_state": state["label_noise_state"],
    }
    save_npz(path, arrays, meta=meta)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (checking every SHA-256) as a ``train(resume=...)`` state.

    Raises
    ------
    InputError
        The file is missing, not a regular file (a FIFO is refused without blocking), damaged, or not a checkpoint.
    """
    arrays, meta = load_npz(path, what="checkpoint")
    if meta.get("kind") != "lnref.checkpoint":
        raise InputError(f"checkpoint {path} is not an lnref checkpoint (kind={meta.get('kind')!r})")
    missing = [k for k in STATE_KEYS if k not in meta] + [k for k in ("gamma", "rho") if k not in arrays]
    if missing:
        raise InputError(f"checkpoint {path} is damaged: it lacks {', '.join(missing)}")
    state = {k: meta[k] for k in STATE_KEYS}
    state.update(gamma=arrays["gamma"], rho=arrays["rho"])
    for key in ("W", "bias", "target"):
        if key in arrays:
            state[key] = arrays[key]
    state["history"] = {k[len("history_") :]: v for k, v in arrays.items() if k.startswith("history_")}
    state["trace"] = {k[len("trace_") :]: v for k, v in arrays.items() if k.startswith("trace_")}
    selection = {k[len("selection_") :]: v for k, v in arrays.items() if k.startswith("selection_")}
    if selection:
        state["selection"] = selection
    try:
        check_train_options(resume=state)
        from .state import check_state_arrays

        cfg = Config.from_dict(state["config"])
        shapes = {"gamma": (2, cfg.m), "rho": (2, cfg.m, cfg.n), "bias": (2, cfg.m)}
        check_state_arrays(state, shapes)
        W = state.get("W")
        if W is not None:  # (Gram sampling keeps W in coordinates: its last axis is checked by the engine)
            if cfg.sampling == "explicit":
                check_state_arrays(state, {"W": (2, cfg.m, cfg.d)})
            elif W.ndim != 3 or W.shape[:2] != (2, cfg.m):
                raise ConfigError(f"the checkpoint's W has shape {W.shape}; this run needs (2, {cfg.m}, ...)")
            else:
                check_state_arrays(state, {"W": W.shape})  # finite
    except ConfigError as exc:
        raise InputError(f"checkpoint {path} is damaged: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint {path} is damaged: {exc}") from None
    return state


# ------------------------------------------------------------------------------------------------ API checks
def stat_kind(path: Path) -> str:
    """'missing', 'dir' or 'other' for ``path`` (OSError such as a symlink loop becomes an OutputError)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise OutputError(f"{path} is a dangling symbolic link; remove it or choose another folder") from None
        return "missing"
    except NotADirectoryError:
        raise OutputError(f"{path} cannot be a folder: a part of its path is a file") from None
    except OSError as exc:
        raise OutputError(f"{path} cannot be used: {describe_os_error(exc)}") from None
    import stat as _stat

    return "dir" if _stat.S_ISDIR(st.st_mode) else "other"


def existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    for parent in p.parents:
        if stat_kind(parent) != "missing":
            return parent
    return Path(p.anchor)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False when unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


class RunFolder:
    """Where a run writes, decided and checked before anything is written.

    ``RunFolder(out, force)`` only inspects the file system: it refuses a path that is a file, lies under a
    file, is a non-empty folder without ``force``, or whose nearest existing parent is not a writable folder.
    :meth:`start` creates the folder the run writes into (``out`` itself, or for ``force`` on a non-empty
    ``out`` a sibling temporary folder); :meth:`commit` puts a finished run in place (the temporary folder
    replaces ``out`` by one rename); :meth:`abort` removes what the run wrote and leaves any earlier run as it was.
    One writer at a time: :meth:`start` claims ``out`` (refusing it while another process writes there) and
    :meth:`release` (or :meth:`abort`) gives it up.
    """

    def __init__(self, out: str | os.PathLike, force: bool = False, resume: bool = False):
        self.out = Path(out)
        self.force, self.resume = bool(force), bool(resume)
        self.path: Path | None = None
        self._created_out = False
        self._replace = False
        self._lock = OutputLock(self.out)
        self._inspect()
        owner = holder(self.out)
        if owner is not None:  # early: another process writes there now (start() decides for sure)
            raise self._lock._busy(owner)

    def _inspect(self) -> None:
        """The checks of the folder (also made again under the lock in :meth:`start`)."""
        self._replace = False
        force, resume = self.force, self.resume
        kind = stat_kind(self.out)
        if kind == "other":
            raise OutputError(f"{self.out} exists and is not a folder; give a folder for --out")
        if resume:
            if kind != "dir":
                raise OutputError(f"nothing to resume: {self.out} does not exist")
            status = run_status(self.out)
            if status == "complete":
                raise OutputError(f"nothing to resume: the run in {self.out} is complete")
            if status != "resumable":
                has = {name: (self.out / name).exists() for name in (CHECKPOINT, "config.json")}
                if has[CHECKPOINT] and not has["config.json"]:
                    raise OutputError(
                        f"cannot resume {self.out}: its config.json is missing (it holds {CHECKPOINT}, "
                        "but the run's config is read from config.json); put config.json back, or "
                        "start the run afresh in another folder"
                    )
                if has["config.json"] and not has[CHECKPOINT]:
                    raise OutputError(
                        f"nothing to resume: {self.out} holds no {CHECKPOINT} (the run was started "
                        "without --checkpoint-every, or stopped before its first checkpoint)"
                    )
                raise OutputError(
                    f"nothing to resume: {self.out} holds no {CHECKPOINT} and config.json (the run "
                    "was started without --checkpoint-every, or is not a run folder)"
                )
            self._check_writable(self.out)
            return
        if kind == "dir":
            try:
                empty = not any(self.out.iterdir())
            except OSError as exc:
                raise OutputError(f"{self.out} cannot be listed: {describe_os_error(exc)}") from None
            if not empty:
                if not force:
                    hint = ""
                    if run_status(self.out) == "resumable":
                        hint = " (it holds an interrupted run: continue it with --resume)"
                    raise OutputError(
                        f"{self.out} is not empty{hint}; choose another folder or pass --force to replace it"
                    )
                self._replace = True
                self._check_writable(self.out.absolute().parent)
            else:
                self._check_writable(self.out)
        else:
            self._check_writable(existing_ancestor(self.out))

    @staticmethod
    def _check_writable(folder: Path) -> None:
        if stat_kind(folder) != "dir":
            raise OutputError(f"{folder} is not a folder, so the output cannot be created under it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{folder} is not writable (permission denied or a read-only file system)")
        try:
            vfs = os.statvfs(folder)
        except OSError:
            return
        if vfs.f_flag & getattr(os, "ST_RDONLY", 1):
            raise OutputError(f"{folder} is on a read-only file system")

    def start(self) -> Path:
        """Claim ``out`` (one writer at a time: :class:`lnref._lock.OutputLock`), check it again under the claim
        (another run may have finished there in between), create the folder the run writes into and return it."""
        self._lock.acquire()
        try:
            self._inspect()
        except BaseException:
            self._lock.release()
            raise
        try:
            if self.resume:
                self.path = self.out
            elif self._replace:
                parent = self.out.absolute().parent
                tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.lnref-new-", dir=parent))
                os.chmod(tmp, dir_mode())  # mkdtemp makes 0o700
                self.path = tmp
            else:
                if stat_kind(self.out) == "missing":
                    self.out.mkdir(parents=True)
                    self._created_out = True
                self.path = self.out
        except OSError as exc:
            self._lock.release()
            raise OutputError(f"cannot create the output folder {self.out}: {describe_os_error(exc)}") from None
        return self.path

    def release(self) -> None:
        """Give up the claim on ``out`` (after :meth:`commit` and anything written after it, or by :meth:`abort`)."""
        self._lock.release()

    def commit(self) -> Path:
        """Put the finished run in place (an atomic swap for ``force``) and return ``out``."""
        assert self.path is not None
        if self.path != self.out:
            new = self.path
            if _renameat2_exchange(new, self.out):  # one atomic step: `out` is the old run, then the new one
                self.path = self.out
                shutil.rmtree(new, ignore_errors=True)  # (now the old run)
                return self.out
            old = self.out.absolute().parent / f".{self.out.name}.lnref-old-{os.getpid()}-{time.time_ns()}"
            try:
                os.replace(self.out, old)
            except OSError as exc:
                raise OutputError(f"cannot move the old run out of {self.out}: {describe_os_error(exc)}") from None
            try:
                os.replace(new, self.out)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.replace(old, self.out)
                raise OutputError(f"cannot move the new run into {self.out}: {describe_os_error(exc)}") from None
            self.path = self.out
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def abort(self, keep_checkpoint: bool = False) -> str:
        """Remove what the run wrote and give up the claim; returns a sentence saying what is left."""
        try:
            return self._abort(keep_checkpoint)
        finally:
            self._lock.release()

    def _abort(self, keep_checkpoint: bool) -> str:
        if self.path is None:
            return f"nothing was written to {self.out}"
        if self.path != self.out:
            shutil.rmtree(self.path, ignore_errors=True)
            return f"the earlier contents of {self.out} are unchanged"
        if keep_checkpoint and (self.path / CHECKPOINT).exists():
            for name in RUN_FILES:
                if name != "config.json":
                    with contextlib.suppress(OSError):
                        (self.path / name).unlink()
            return f"{self.out} keeps its last checkpoint: continue with `lnref run --resume --out {self.out}`"
        if self.resume:
            return f"{self.out} is unchanged"
        if self._created_out:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for p in list(self.path.iterdir()):
                with contextlib.suppress(OSError):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        return f"nothing was kept in {self.out}"
