"""lnref: reference implementation of feature learning under label noise in two-layer ReLU^q CNNs.

See SPEC.md (the mathematics) and the README.  Public API::

    cfg = lnref.Config(n=200, d=2000, m=20, tau=0.2)
    data = lnref.make_data(cfg); W0 = lnref.init_weights(cfg)
    res = lnref.train(cfg, data, W0)      # res.W, res.gamma, res.rho, res.history

Submodules are attributes on first use (PEP 562), without importing them at ``import lnref``: ``lnref.stages``,
``lnref.testing``, ``lnref.plotting`` (needs matplotlib only when it draws), ``lnref.runs``, ``lnref.metrics``,
``lnref.reproduce``, ``lnref.oracle``, ... (:data:`SUBMODULES`).
"""

__version__ = "0.1.0"  # the one version source: setup.cfg reads it (version = attr: lnref.__version__)

from .config import Config, ConfigError
from .data import Dataset, TestSet, init_bias, init_weights, make_data, make_test
from .model import forward, gd_step, gradient, gradients, loss
from .training import DivergedError, Result, train

__all__ = [
    "Config",
    "ConfigError",
    "Dataset",
    "TestSet",
    "make_data",
    "make_test",
    "init_weights",
    "init_bias",
    "forward",
    "loss",
    "gradient",
    "gradients",
    "gd_step",
    "spec_path",
    "train",
    "Result",
    "DivergedError",
    "decompose",
    "reconstruct",
    "sweep",
    "SweepResult",
    "__version__",
]

#: submodules reachable as ``lnref.NAME`` after ``import lnref`` (imported on first access, not at ``import lnref``)
SUBMODULES = (
    "cli",
    "cliargs",
    "config",
    "data",
    "decomposition",
    "engines",
    "examples",
    "gram",
    "io",
    "metrics",
    "model",
    "oracle",
    "plotting",
    "reproduce",
    "resources",
    "runs",
    "stages",
    "sweeps",
    "testing",
    "training",
)


#: public names imported from their module on first access, not at ``import lnref`` (issue 25: a run or a
#: ``lnref run`` never loads the sweep machinery; ``lnref.sweep`` is the function, ``lnref.sweeps`` the package)
LAZY = {
    "sweep": "sweeps",
    "SweepResult": "sweeps",
    "decompose": "decomposition",
    "reconstruct": "decomposition",
    "spec_path": "_spec",
}


def __getattr__(name: str):
    """``lnref.stages``, ``lnref.testing``, ... and the names of :data:`LAZY` imported on first access (PEP 562)."""
    import importlib

    if name in LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'lnref' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES) | set(LAZY))
