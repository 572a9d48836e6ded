"""Sub-modules of lnref's packages, and names defined in them, as attributes on first access (PEP 562), without
importing them up front."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def submodule_getattr(
    package: str,
    names: tuple[str, ...],
    attributes: Mapping[str, str] | None = None,
    fallback: str | None = None,
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``package.NAME`` for each sub-module of ``names``, imported
    when first read (``lnref.training.stages`` after ``import lnref``); ``attributes`` maps a name to the
    sub-module that defines it (``lnref.config.FIELD_DOCS`` from ``lnref.config.loading``); ``fallback`` is a
    sub-module whose every other public name is read through the package (``lnref.cli.build_parser``)."""
    attributes = dict(attributes or {})

    def __getattr__(name: str) -> Any:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        if name in attributes:
            return getattr(importlib.import_module(f"{package}.{attributes[name]}"), name)
        if fallback is not None and not name.startswith("__"):
            return getattr(importlib.import_module(f"{package}.{fallback}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
