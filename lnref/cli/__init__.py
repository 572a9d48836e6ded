"""The ``lnref`` command line: ``lnref run/sweep/reproduce/export/compare/cache``.

- :mod:`lnref.cli.commands`: the parser, ``lnref run`` and the dispatch to the other subcommands, which register
  from their own packages (``lnref.sweeps.cli``, ``lnref.reproduce.cli``, ``lnref.oracle.cli``);
- :mod:`lnref.cli.args`: what every subcommand shares (the config arguments, ``--threads``, progress lines).

Importing this package imports nothing else: :func:`main` loads the command line when it is called, so a module
that needs only :mod:`lnref.cli.args` (the sweeps' progress line) does not load every command.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lnref`` command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    from .commands import main as run

    return run(argv)


def __getattr__(name: str) -> Any:
    """The command line's other names (``build_parser``, ``suggest``, ...) from :mod:`lnref.cli.commands`, and
    the sub-modules, on first access."""
    if name in ("args", "commands"):
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module(f"{__name__}.commands"), name)
