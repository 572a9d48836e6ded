"""lnref's numba decorators and their on-disk cache of compiled kernels.

Compiled kernels are cached on disk (:func:`kernel`): by default in a per-user folder, ``$XDG_CACHE_HOME/lnref``
or ``~/.cache/lnref``, one sub-folder per lnref, numba and Python version and per content of the kernel source
files; ``LNREF_CACHE_DIR`` moves it, ``LNREF_CACHE=0`` turns caching off; deleting the folder is always safe
(``lnref cache clear`` does it).

What the cache guarantees:

- **Never stale.**  numba checks only a cached function's own file, not the inlined functions it calls from other
  files, so lnref keys every entry on the SHA-256 of ALL its kernel source files (every module of the package
  that defines a kernel, found by scanning the package's sources): an edit to an inlined equation in
  ``kernels/equations.py`` selects a new folder and a new index stamp, so it recompiles every kernel that inlines it.
- **Only in lnref's folder.**  numba's own locators fall back to the source tree's ``__pycache__`` (keyed only by
  the kernel's own file) or a user-wide folder when the configured one cannot be written; lnref's kernels use
  their own locator (:class:`_Locator`) that points at :func:`cache_dir` and nowhere else.
- **Degrades, never breaks.**  When the cache folder cannot be created or written, caching is off for the process
  and one line on stderr says why (``CACHE`` is then False and ``CACHE_OFF_REASON`` holds the reason).  A damaged
  entry (a truncated or garbled index or data file) is a miss: the kernel is recompiled and the entry rewritten.
  Processes starting at once write entries atomically (numba writes a temporary file and renames it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import types
from pathlib import Path

import numba
from numba import njit
from numba.core import caching

from .. import __version__

__all__ = [
    "kernel",
    "both",
    "inline",
    "CACHE",
    "CACHE_OFF_REASON",
    "cache_dir",
    "kernels_warm",
    "mark_warm",
    "clear_cache",
]

_HERE = Path(__file__).resolve().parent
# a module of the package holds kernels when it decorates a function with lnref's decorators or numba's jit, or
# defines numba intrinsics or overloads (lnref.kernels.lanes)
_KERNEL_MARK = re.compile(
    rb"^\s*(@(kernel|inline|njit|jit|numba\.njit|numba\.jit|intrinsic|overload)\b|[\w, ]+=\s*(both|kernel|inline|"
    rb"njit|numba\.njit)\()",
    re.M,
)


def _cache_enabled() -> bool:
    return os.environ.get("LNREF_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def _kernel_sources() -> list[Path]:
    """Every source file of the package that defines numba kernels (and this file), sorted: a kernel can only
    inline functions defined in these, so their content is everything a cached kernel depends on."""
    found = []
    for path in sorted(_HERE.rglob("*.py")):
        try:
            if path.name == "_cache.py" or _KERNEL_MARK.search(path.read_bytes()):
                found.append(path)
        except OSError:
            found.append(path)
    return found


def _sources_digest() -> str:
    """SHA-256 (16 hex digits) of the content of every kernel source file (:func:`_kernel_sources`)."""
    h = hashlib.sha256()
    for path in _kernel_sources():
        name = path.relative_to(_HERE).as_posix()
        try:
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            h.update(name.encode() + b"\0missing\0")
    return h.hexdigest()[:16]


_DIGEST = _sources_digest()


def cache_dir() -> Path:
    """The folder that holds lnref's compiled kernels (see the module docstring)."""
    root = os.environ.get("LNREF_CACHE_DIR")
    if not root:
        root = os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lnref"
        )
    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return Path(root) / f"lnref-{__version__}-numba-{numba.__version__}-{py}-{_DIGEST}"


def _writable(folder: Path) -> str | None:
    """None when ``folder`` can be created and written (a file created and removed in it), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def _decide() -> tuple[bool, str | None]:
    if not _cache_enabled():
        return False, "LNREF_CACHE=0"
    why = _writable(cache_dir())
    if why is None:
        return True, None
    reason = f"cannot write {cache_dir()} ({why})"
    if not os.environ.get("LNREF_CACHE_WARNED"):
        # once per process tree: child processes (sweep workers) inherit the environment
        os.environ["LNREF_CACHE_WARNED"] = "1"
        print(
            f"lnref: note: compiled kernels are not cached, every process compiles them: {reason}; set "
            "LNREF_CACHE_DIR to a writable folder (or LNREF_CACHE=0 to silence this)",
            file=sys.stderr,
            flush=True,
        )
    return False, reason


CACHE, CACHE_OFF_REASON = _decide()


# ----------------------------------------------------------------------------------- numba's BLAS check
_BLAS = "scipy.linalg.cython_blas"


class _LinalgAttribute:
    """Import hook, installed with :func:`preload_cython_blas`: when ``scipy.linalg`` is imported later, the
    extension module preloaded before it becomes its ``cython_blas`` attribute, as after a normal import."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        if fullname != "scipy.linalg":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_LinalgAttribute)
        import importlib.util

        spec = importlib.util.find_spec(fullname)  # the real one (this hook is gone)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            real_exec = spec.loader.exec_module

            def exec_module(module):
                real_exec(module)
                if _BLAS in sys.modules and not hasattr(module, "cython_blas"):
                    module.cython_blas = sys.modules[_BLAS]

            spec.loader.exec_module = exec_module  # type: ignore[method-assign] # this spec's loader only
        return spec


def preload_cython_blas() -> None:
    """Load ``scipy.linalg.cython_blas`` on its own, without the ``scipy.linalg`` package around it.

    Loading the first compiled kernel sets up numba's CPU target, whose registries import ``numba.np.arraymath``;
    that module checks for BLAS by importing ``scipy.linalg.cython_blas``, and Python imports its parent package
    first: all of ``scipy.linalg`` (~0.17 s, about a tenth of a tiny ``lnref run``, issue 25, measured), of which
    numba uses this one extension module (the addresses of BLAS functions, for kernels that call ``np.dot``; lnref's
    kernels do not).  Loaded here first, numba's import finds it in ``sys.modules``; ``scipy.linalg``, when imported
    later, is imported in full and gets it as its attribute (:class:`_LinalgAttribute`).  Anything unexpected (no
    scipy, another layout) leaves numba to import it as usual.

    Called by the ``lnref`` program (:func:`lnref.cli.entry`) for ``lnref run`` and ``lnref cache`` only: the
    hook changes how ``scipy.linalg`` is imported, which is that process's business, never that of a program that
    imports lnref as a library.
    """
    if "scipy.linalg" in sys.modules or _BLAS in sys.modules:
        return
    try:
        import importlib.machinery
        import importlib.util

        import scipy

        spec = importlib.machinery.PathFinder.find_spec(
            _BLAS, [os.path.join(os.path.dirname(scipy.__file__), "linalg")]
        )
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[_BLAS] = module
        spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - numba then imports it (and scipy.linalg) itself
        sys.modules.pop(_BLAS, None)
        return
    sys.meta_path.insert(0, _LinalgAttribute)  # type: ignore[arg-type] # a finder with find_spec


# ----------------------------------------------------------------------------------- numba cache plumbing
class _Locator(caching._CacheLocator):
    """numba cache locator pointing at :func:`cache_dir` only; the source stamp is the content of the kernel's own
    file AND the digest of every kernel source (what it may inline)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(str(cache_dir()), self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        try:
            own = hashlib.sha256(Path(self._py_file).read_bytes()).hexdigest()
        except OSError:
            own = "missing"
        return ("lnref", _DIGEST, own)

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


class _IndexFile(caching.IndexDataCacheFile):
    """numba's index and data files, with a damaged index read as an empty one (then rewritten)."""

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception:  # noqa: BLE001 - any damage (truncated pickle, garbage, wrong types) is a miss
            return {}


class _Impl(caching.CompileResultCacheImpl):
    def __init__(self, py_func):  # numba's, with lnref's locator only (NUMBA_CACHE_LOCATOR_CLASSES ignored)
        self._lineno = py_func.__code__.co_firstlineno
        qualname = getattr(py_func, "__qualname__", py_func.__name__)
        source_path = py_func.__code__.co_filename
        self._locator = _Locator.from_function(py_func, source_path)
        modname = os.path.splitext(os.path.basename(source_path))[0]
        self._filename_base = self.get_filename_base(f"{modname}.{qualname}", getattr(sys, "abiflags", ""))


class _FunctionCache(caching.FunctionCache):
    """numba's per-function cache in lnref's folder: a damaged entry is a miss (recompiled and overwritten), a
    failed write leaves the kernel compiled in memory."""

    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        cf = self._cache_file
        self._cache_file = _IndexFile(
            cache_path=cf._cache_path, filename_base=self._impl.filename_base, source_stamp=cf._source_stamp
        )

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - a damaged data file: compile again (the save overwrites it)
            return None

    def save_overload(self, sig, data):
        # the folder vanished or filled up: the compiled kernel still runs; the next process compiles
        with contextlib.suppress(OSError):
            super().save_overload(sig, data)


_OPTS = dict(error_model="numpy", fastmath=False)


def kernel(fn=None, **options):
    """``numba.njit`` with lnref's options (no fastmath, numpy error model) and its on-disk cache.

    The cache is lnref's own (:class:`_FunctionCache`, in :func:`cache_dir`), so the user's own numba functions
    and ``numba.config.CACHE_DIR`` are untouched.
    """

    def deco(f):
        opts = {**_OPTS, **options}
        cache = opts.pop("cache", True) and CACHE and opts.get("inline") != "always"
        disp = njit(**opts)(f)
        if cache and hasattr(disp, "enable_caching"):  # NUMBA_DISABLE_JIT=1 returns the Python function
            disp._cache = _FunctionCache(disp.py_func)
        return disp

    return deco if fn is None else deco(fn)


def both(fn):
    """(parallel, serial) compilations of one kernel source, both cacheable.

    The serial one avoids the threading layer's start-up on small problems; the two give identical bits (the
    ``prange`` bodies are independent).  numba keys its cache by the function's qualified name, so the serial
    variant is compiled from a copy of the function under the name ``<name>_serial``.
    """
    serial_fn = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__
    )
    serial_fn.__qualname__ = fn.__qualname__ + "_serial"
    serial_fn.__module__ = fn.__module__
    serial_fn.__doc__ = fn.__doc__
    return kernel(parallel=True)(fn), kernel(serial_fn)


inline = kernel(inline="always")


# ----------------------------------------------------------------------------------- the compile notice
def _warm_name(kind: str) -> str:
    # per source tree: two copies of the package share the folder (same digest) but not their entries
    return f"warm-{kind}-{hashlib.sha1(str(_HERE).encode()).hexdigest()[:12]}"


def kernels_warm(kind: str) -> bool:
    """Whether the compiled kernels of ``kind`` ('weights' or 'coefficients') are in the disk cache for these
    kernel sources (recorded by :func:`mark_warm` after a process compiled them)."""
    return CACHE and (cache_dir() / _warm_name(kind)).exists()


def mark_warm(kind: str) -> None:
    """Record that the kernels of ``kind`` are compiled into the disk cache (best effort; never raises)."""
    if not CACHE:
        return
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        (d / _warm_name(kind)).touch()
    except OSError:
        pass


def clear_cache() -> list[Path]:
    """Delete lnref's compiled kernels: every ``lnref-*`` folder (all versions) in the cache root; returns them.

    Only those folders are removed, so a root shared through ``LNREF_CACHE_DIR`` keeps everything else.  A folder
    that cannot be removed raises OSError naming it."""
    import shutil

    root = cache_dir().parent
    removed = []
    if root.is_dir():
        for sub in sorted(root.glob("lnref-*")):
            if sub.is_dir() and not sub.is_symlink():
                shutil.rmtree(sub)
                removed.append(sub)
    return removed
