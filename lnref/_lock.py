"""One writer per output: an exclusive lock beside each output folder or file (issue 24).

Every command that writes an output (``lnref run``, ``reproduce``, ``sweep``, ``export``) first claims it with
:class:`OutputLock`: the lock is the file ``.<name>.lnref-lock`` in the output's parent folder, created with
``O_CREAT | O_EXCL`` (only one process can create it), holding the owner's pid, host and start time, and kept
``flock``-ed by its owner for as long as it writes.  A second writer finds the file and is refused, naming the
owner, before it writes anything; it then re-checks the output under the lock (a writer that finished in between
left a complete output behind, which the re-check refuses as for any non-empty folder).

Stale locks: the kernel drops an ``flock`` when its process dies, whatever the way (SIGKILL included), so a lock
file whose ``flock`` can be taken belongs to nobody and is taken over: the process that holds the ``flock`` of
the stale file (only one can) checks that the path still names that file and unlinks it, then creates its own
with ``O_EXCL`` again (if another process creates one first, that one wins).  A lock file that is still empty
(its owner is between creating it and writing its pid) counts as held for a few seconds.  On a file system
without ``flock`` a lock counts as held unless it names a process of this host that no longer exists.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .io import OutputError, describe_os_error

__all__ = ["OutputLock", "lock_path", "holder"]

_SUFFIX = ".lnref-lock"
_YOUNG = 10.0  # seconds an empty lock file counts as being created


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output folder or file: ``.<name>.lnref-lock`` beside it."""
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}{_SUFFIX}"


def _read(fd: int) -> dict | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        info = json.loads(data.decode()) if data else None
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) or info is None else {}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError, TypeError):
        return True
    return True


def _describe(info: dict | None) -> str:
    if not info:
        return "another lnref process"
    since = info.get("since")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    return f"another lnref process (pid {info.get('pid', '?')} on host {info.get('host', '?')}{when})"


def _examine(path: Path) -> tuple[str, dict | None, int | None]:
    """('free' | 'held' | 'stale', owner info, fd holding the stale file's flock or None)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return "free", None, None
    except OSError:
        return "held", None, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _read(fd)
        os.close(fd)
        return "held", info, None
    except OSError:  # no flock on this file system: judge by the pid
        info = _read(fd)
        os.close(fd)
        if info and info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid")):
            return "stale", info, None
        return "held", info, None
    info = _read(fd)
    young = False
    with contextlib.suppress(OSError):
        young = info is None and time.time() - os.fstat(fd).st_mtime < _YOUNG
    if young:  # its creator is between O_EXCL and writing: it holds it
        os.close(fd)
        return "held", info, None
    return "stale", info, fd


def holder(target: str | os.PathLike) -> dict | None:
    """The owner of ``target``'s lock when a live process holds it (its info, ``{}`` if unreadable), else None."""
    state, info, fd = _examine(lock_path(target))
    if fd is not None:
        os.close(fd)
    return (info or {}) if state == "held" else None


class OutputLock:
    """The exclusive claim on one output (see the module docstring).

    ``OutputLock(target).acquire()`` returns the lock or raises :class:`lnref.io.OutputError` naming the process
    that holds it; :meth:`release` removes it (idempotent).  Also a context manager.
    """

    def __init__(self, target: str | os.PathLike, what: str | None = None):
        self.target = Path(target)
        self.path = lock_path(target)
        self.what = what or str(self.target)
        self._fd: int | None = None
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _busy(self, info: dict | None) -> OutputError:
        return OutputError(
            f"{self.what} is being written by {_describe(info)}: wait for it to finish or choose "
            f"another output (if no such process is running, delete {self.path})"
        )

    def acquire(self) -> OutputLock:
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder of {self.what}: {describe_os_error(exc)}") from None
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for _ in range(20):
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:
                state, info, sfd = _examine(self.path)
                if state == "held":
                    raise self._busy(info) from None
                if state == "stale":
                    self._remove_stale(sfd)
                continue  # free or removed: try to create it again
            except OSError as exc:
                raise OutputError(f"cannot lock {self.what} ({self.path}): {describe_os_error(exc)}") from None
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # at most a moment: others only peek at it
                except OSError as exc:
                    if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
                os.write(fd, json.dumps(info).encode())
            except OSError as exc:
                os.close(fd)
                self._unlink()
                raise OutputError(f"cannot lock {self.what} ({self.path}): {describe_os_error(exc)}") from None
            self._fd, self._pid = fd, os.getpid()
            return self
        raise OutputError(
            f"cannot lock {self.what}: {self.path} keeps changing (other lnref processes start and "
            "stop there); try again"
        )

    def _remove_stale(self, sfd: int | None) -> None:
        """Unlink a stale lock file; with ``sfd`` (its flock held) only when the path still names that file."""
        try:
            if sfd is not None:
                st, now = os.fstat(sfd), os.stat(self.path)
                if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                    return
            self._unlink()
        except OSError:
            pass
        finally:
            if sfd is not None:
                os.close(sfd)

    def _unlink(self) -> None:
        for attempt in range(2):  # a transient failure must not leave a lock behind
            try:
                os.unlink(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if attempt:
                    return  # left stale (its flock is released below): the next claim takes it over

    def release(self) -> None:
        """Remove the lock (while still holding it, so nobody can take it over in between)."""
        fd, self._fd = self._fd, None
        if fd is None or os.getpid() != self._pid:  # a forked child never removes its parent's lock
            return
        try:
            st, now = os.fstat(fd), os.stat(self.path)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                self._unlink()
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # an abandoned lock (an exception path): release it with the object
        with contextlib.suppress(Exception):  # at interpreter exit anything may already be gone
            self.release()
