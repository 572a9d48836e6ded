"""GD engines behind one interface (see :class:`lnref.engines.base.Engine`).

``weights``: explicit W, the ground truth.  ``coefficients``: exact GD in span coordinates (SPEC.md section 4).
"""
from .base import Engine
from .weights import WeightEngine

__all__ = ["Engine", "WeightEngine"]
