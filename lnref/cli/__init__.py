"""The ``lnref`` command line: ``lnref run/sweep/reproduce/export/compare/cache``.

- :mod:`lnref.cli.commands`: the parser, ``lnref run`` and the dispatch to the other subcommands, which register
  from their own packages (``lnref.sweeps.cli``, ``lnref.reproduce.cli``, ``lnref.oracle.cli``);
- :mod:`lnref.cli.args`: what every subcommand shares (the config arguments, ``--threads``, progress lines).

Importing this package imports none of the commands: :func:`main` loads the command line when it is called, so a module
that needs only :mod:`lnref.cli.args` (the sweeps' progress line) does not load every command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._lazy import submodule_getattr


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lnref`` command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    from .commands import main as run

    return run(argv)


def entry() -> NoReturn:
    """The ``lnref`` program (``python -m lnref`` and the ``lnref`` script): :func:`main`, then for ``lnref run``
    and ``lnref cache`` :func:`exit_now` (the commands whose start-up and exit are most of their time; the others,
    which may start worker processes and clusters, exit normally).

    For those two, ``scipy.linalg.cython_blas`` is loaded on its own before numba's BLAS check would import all of
    ``scipy.linalg`` (:func:`lnref.kernels.cache.preload_cython_blas`), and the objects made by the imports so far
    (numpy's, numba's, lnref's), which live as long as the process, are also frozen out of the garbage collector's
    scans, which otherwise walk them on every full collection (issue 25: ~0.06 s of a tiny ``lnref run``'s CPU time,
    measured).  Not for the others: frozen objects are not finalized by a normal exit's teardown.
    """
    import gc

    fast = sys.argv[1:2] in (["run"], ["cache"])
    if fast:
        from ..kernels.cache import preload_cython_blas

        preload_cython_blas()  # this process is lnref's own: numba's BLAS check without all of scipy.linalg
        gc.freeze()
    code = main()
    if fast:
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> NoReturn:
    """End the process with status ``code`` without the interpreter's teardown, once everything is saved.

    Freeing every module's objects at exit (numba's compiled kernels, matplotlib's artists) took about 0.4 s of a
    1.5 s tiny ``lnref run`` (issue 25, measured); nothing of it is needed once the command has returned: its files
    are written and closed.  What a normal exit does that matters still happens: the ``atexit`` handlers run (in
    their usual order) and stdout and stderr are flushed.  When another non-daemon thread is alive (its owner expects
    it to be joined), the exit is the normal ``sys.exit``.
    """
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        import gc

        gc.unfreeze()  # the teardown finalizes them (see entry)
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`lnref run ... | head`): the output was not wanted
            code = code or 120  # what Python exits with when it cannot flush stdout at exit
    os._exit(code)


#: the command line's other names (``build_parser``, ``suggest``, ...) from :mod:`lnref.cli.commands`, and the
#: sub-modules, on first access
__getattr__ = submodule_getattr(__name__, ("args", "commands"), fallback="commands")
