"""Paper reproductions: ``lnref reproduce NAME`` (SPEC.md section 6).

Each reproduction is a function ``run(ctx: Context) -> list[Check]`` registered with :func:`register` (with its
default number of seeds); it records the configs it trains (``ctx.ran``), writes CSV + JSON data and PNG figures
(when matplotlib is installed) into ``ctx.out``; the command then writes ``report.md`` from the returned checks
(every number computed, never typed in): the config as run, and per prediction its source (the paper and the
section of the spec), a criterion with its tolerance, the measured mean +- standard error over the seeds, and the
verdict with the count of seeds in which it held (:mod:`lnref.reproduce.common`).  The folder's
``reproduction.json`` marks it as that reproduction's output, so running the same reproduction again replaces it.
"""

from __future__ import annotations

import importlib

from .._lazy import submodule_getattr
from .common import AUTHORS_CODE, REPRODUCTIONS, Check, Context, fmt_mean_se, register, run_reproduction, seed_check

__all__ = [
    "Check",
    "Context",
    "REPRODUCTIONS",
    "register",
    "run_reproduction",
    "load_all",
    "DEFAULT",
    "seed_check",
    "fmt_mean_se",
    "AUTHORS_CODE",
]

DEFAULT = "han2025"
# modules that register reproductions, in the order `lnref reproduce --list` shows them
_MODULES = ("han2025", "huang2025", "heatmaps", "methods", "methods_phase")


def load_all() -> dict:
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")
    return REPRODUCTIONS


#: sub-modules read as attributes on first access (``lnref.reproduce.methods`` after ``import lnref``)
__getattr__ = submodule_getattr(
    __name__,
    (
        "cli",
        "checks",
        "common",
        "han2025",
        "han2025_checks",
        "heatmaps",
        "heatmap_tools",
        "heatmap_kou",
        "heatmap_kou_published",
        "heatmap_huang_cao",
        "huang2025",
        "methods",
        "methods_predictions",
        "methods_phase",
    ),
)
