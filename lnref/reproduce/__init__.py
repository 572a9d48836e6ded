"""Paper reproductions: ``lnref reproduce NAME`` (SPEC.md section 6).

Each reproduction is a function ``run(ctx: Context) -> list[Check]`` registered with :func:`register`; it writes
CSV + JSON data and a PNG figure (when matplotlib is installed) into ``ctx.out``; the command then writes
``report.md`` from the returned checks (every number computed, never typed in).
"""
from __future__ import annotations

import importlib
import importlib.util

from .common import Check, Context, REPRODUCTIONS, register, run_reproduction

__all__ = ["Check", "Context", "REPRODUCTIONS", "register", "run_reproduction", "load_all", "DEFAULT"]

DEFAULT = "han2025"
# modules that register reproductions, in the order `lnref reproduce --list` shows them
_MODULES = ("han2025", "huang2025", "heatmaps")


def load_all() -> dict:
    for mod in _MODULES:
        if importlib.util.find_spec(f"{__name__}.{mod}") is not None:
            importlib.import_module(f"{__name__}.{mod}")
    return REPRODUCTIONS
