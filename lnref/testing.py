"""Check another implementation (PyTorch, JAX, NumPy, ...) against lnref: the public entry point.

Three checks, from the most local to the most global, each returning a :class:`Report`:

* :func:`check_gradient` calls ``grad_fn(W, mu, xi, y, y_obs, q) -> (2, m, d)`` at every checkpoint of a fixture
  and compares with lnref's gradient;
* :func:`check_step` calls ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` (one GD step) likewise;
* :func:`compare_trajectory` compares the weights another implementation reached at the checkpoint steps.

Networks in the common conventions (SPEC.md section 7: a bias per filter, PyTorch's initialisation, the mean over
patches, an output scale - a Conv1d-style model) are checked as they are written, on a fixture exported with those
conventions (``lnref export --bias true --init torch --patch-reduce mean --output-scale 1``): the functions get
the biases as ``b=`` and return pairs, ``grad_fn(..., q, b=b) -> (grad_W, grad_b)`` and ``step_fn(..., eta, b=b)
-> (W', b')``, and :func:`compare_trajectory` takes ``biases={t: b_t}``.  The biases are judged at the same bound
as W (relative to the largest |b| of the fixture).  Worked example: ``python -m lnref.examples.conv1d_model``.

Tolerance tiers (:data:`TIERS`): ``'float64'`` compares W with normwise relative error ``max|dW| / max|W|`` at most
``1e-10 (1 + t)``; ``'float32'`` compares the loss and the coefficients gamma, rho at ``1e-5 (1 + t)``.  At each
checkpoint the bound is at least ``safety`` x the spread the fixture measured on its own trajectory (lnref's NumPy
replay, a rerun from W0 perturbed by 4 ulps, a float32 replay), so a sensitive trajectory does not fail correct
code; ``lnref export`` refuses a fixture whose bound would be too wide to judge.

When a check fails, the report says where (error per checkpoint, the first failing step), what (via
:func:`lnref.decompose`: signal or noise coefficients, which filters, which samples, clean or mislabelled) and -
only when replaying a known mistake (:data:`MISTAKES`, each a variant of ONE NumPy reference of the dynamics,
:mod:`lnref.oracle.replay`) reproduces the submitted numbers within the bound - why, with the distance reached.
Otherwise it says that the cause is not in the catalogue.  The implementation lives in :mod:`lnref.oracle`.
"""

from .oracle.catalogue import CATALOGUE, MISTAKES, Mistake  # noqa: F401 - importable, not in __all__
from .oracle.checks import (
    assert_gradient_matches,
    assert_step_matches,
    assert_trajectory_matches,
    check_gradient,
    check_step,
    compare_trajectory,
)
from .oracle.fixtures import Fixture, FixtureError, load_fixture, make_fixture, save_fixture
from .oracle.replay import Problem, Variant, simulate  # noqa: F401 - importable, not in __all__
from .oracle.report import CheckpointError, Report  # noqa: F401 - CheckpointError importable
from .oracle.tolerances import TIERS, Tolerance, resolve_tolerance

# What ``help(lnref.testing)`` shows: the checks, the fixtures, the report and the tolerances.  The catalogue's
# machinery (CATALOGUE, Mistake, CheckpointError, and the replay's Problem, Variant, simulate) stays importable
# from here for the curious, documented in lnref.oracle.
__all__ = [
    "check_gradient",
    "check_step",
    "compare_trajectory",
    "assert_gradient_matches",
    "assert_step_matches",
    "assert_trajectory_matches",
    "load_fixture",
    "make_fixture",
    "save_fixture",
    "Fixture",
    "FixtureError",
    "Report",
    "Tolerance",
    "TIERS",
    "resolve_tolerance",
    "MISTAKES",
]
