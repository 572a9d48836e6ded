"""Fixtures for checking other implementations: moved to :mod:`lnref.oracle.fixtures` (this name stays importable)."""
from .oracle.fixtures import (FIXTURE_KIND, FIXTURE_SCHEMA, Fixture, FixtureError, load_fixture,  # noqa: F401
                              make_fixture, parse_checkpoints, save_fixture)

__all__ = ["Fixture", "FixtureError", "make_fixture", "save_fixture", "load_fixture", "parse_checkpoints",
           "FIXTURE_KIND", "FIXTURE_SCHEMA"]
