"""Sub-modules of lnref's packages as attributes on first access (PEP 562), without importing them up front."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType


def submodule_getattr(package: str, names: tuple[str, ...]) -> Callable[[str], ModuleType]:
    """A module-level ``__getattr__`` for ``package`` that imports ``package.NAME`` for each of ``names`` when it
    is first read (``lnref.training.stages`` after ``import lnref``)."""

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
