"""lnref: reference implementation of feature learning under label noise in two-layer ReLU^q CNNs.

See SPEC.md (the mathematics) and the README.  Public API::

    cfg = lnref.Config(n=200, d=2000, m=20, tau=0.2)
    data = lnref.make_data(cfg); W0 = lnref.init_weights(cfg)
    res = lnref.train(cfg, data, W0)      # res.W, res.gamma, res.rho, res.history

Sub-packages are attributes on first use (PEP 562), without importing them at ``import lnref``: ``lnref.kernels``
(the compiled formulas), ``lnref.data``, ``lnref.model``, ``lnref.engines``, ``lnref.training`` (the loop, run folders,
stages, selection), ``lnref.sweeps``, ``lnref.oracle`` and ``lnref.testing``, ``lnref.reproduce``,
``lnref.plotting``, ``lnref.cli`` (:data:`SUBMODULES`; docs/DESIGN.md "Layers").
"""

__version__ = "0.1.0"  # the one version source: setup.cfg reads it (version = attr: lnref.__version__)

from ._lazy import submodule_getattr as _submodule_getattr
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

#: sub-packages and modules reachable as ``lnref.NAME`` after ``import lnref`` (imported on first access, not at
#: ``import lnref``); docs/DESIGN.md "Layers" says what each holds
SUBMODULES = (
    "cli",
    "config",
    "data",
    "engines",
    "examples",
    "io",
    "kernels",
    "model",
    "oracle",
    "plotting",
    "reproduce",
    "sweeps",
    "testing",
    "training",
)

#: the modules of lnref 0.1.0's flat layout and where they live now; the old names still import (``import
#: lnref.runs``, ``from lnref.stages import ...``, ``lnref.runs.load_run``) with a DeprecationWarning, until 0.3
MOVED = {
    "cliargs": "cli.args",
    "decomposition": "model.decomposition",
    "gram": "data.gram",
    "metrics": "model.metrics",
    "resources": "training.resources",
    "runs": "training.runs",
    "selection": "training.selection",
    "stages": "training.stages",
}


#: public names imported from their module on first access, not at ``import lnref`` (issue 25: a run or a
#: ``lnref run`` never loads the sweep machinery; ``lnref.sweep`` is the function, ``lnref.sweeps`` the package)
LAZY = {
    "sweep": "sweeps",
    "SweepResult": "sweeps",
    "decompose": "model.decomposition",
    "reconstruct": "model.decomposition",
    "spec_path": "_spec",
}


def _moved(name: str):
    """The module that was ``lnref.<name>`` in the flat layout, imported, with a DeprecationWarning."""
    import importlib
    import warnings

    new = f"{__name__}.{MOVED[name]}"
    warnings.warn(
        f"lnref.{name} moved to {new} (lnref 0.2); the old name stops working in 0.3", DeprecationWarning, stacklevel=3
    )
    return importlib.import_module(new)


class _MovedModuleFinder:
    """Finds ``lnref.<old name>`` for ``import`` statements and answers with the module's new home (one release)."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        import importlib.machinery

        head, _, tail = fullname.partition(".")
        if head != __name__ or tail not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleFinder)  # type: ignore[arg-type] # a Loader

    @staticmethod
    def create_module(spec):
        module = _moved(spec.name.partition(".")[2])
        spec.loader_state = module.__spec__  # the import system sets module.__spec__ to this alias spec next
        return module

    @staticmethod
    def exec_module(module) -> None:
        # give the module back its own spec, so that its relative imports resolve in its new package
        module.__spec__ = module.__spec__.loader_state or module.__spec__


import sys as _sys  # noqa: E402 - the finder is installed once lnref's own names are defined

if not any(isinstance(f, type) and f.__name__ == "_MovedModuleFinder" for f in _sys.meta_path):
    _sys.meta_path.append(_MovedModuleFinder)


_lazy_getattr = _submodule_getattr(__name__, SUBMODULES, LAZY)


def __getattr__(name: str):
    """``lnref.training``, ``lnref.testing``, ... and the names of :data:`LAZY` imported on first access (PEP 562);
    the names of :data:`MOVED` with their warning."""
    if name in MOVED:
        return _moved(name)
    return _lazy_getattr(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES) | set(LAZY))
