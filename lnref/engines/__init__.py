"""GD engines behind one interface (see :class:`lnref.engines.base.Engine`).

``weights``: explicit W, the ground truth.  ``coefficients``: exact GD in span coordinates (SPEC.md section 4).
:func:`from_config` builds either from a config (validating every input in one place).
"""

from __future__ import annotations

from ..config import Config
from .base import Engine, RunInputs, prepare_inputs

__all__ = ["Engine", "RunInputs", "from_config", "prepare_inputs"]


def from_config(cfg: Config, data=None, W0=None, b0=None) -> Engine:
    """The engine ``cfg.engine`` names, with its inputs validated (or drawn from the seed) by
    :func:`lnref.engines.base.prepare_inputs`.

    Parameters
    ----------
    cfg : Config
    data : Dataset, GramData or None
    W0 : array (2, m, d) or None
    b0 : array (2, m) or None

    Returns
    -------
    WeightEngine or CoefficientEngine
    """
    inputs = prepare_inputs(cfg, data, W0, b0)
    if cfg.engine == "weights":
        from .weights import WeightEngine

        return WeightEngine(cfg, inputs)
    from .coefficients import CoefficientEngine

    return CoefficientEngine(cfg, inputs)
