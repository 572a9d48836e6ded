"""Shim: ``lnref export`` / ``lnref compare`` live in :mod:`lnref.oracle.cli` (lnref.cli registers this module)."""
from .oracle.cli import register  # noqa: F401
