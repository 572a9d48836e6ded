"""Phase diagrams (SPEC.md section 6): Kou et al. 2023, Cao et al. 2022, Huang et al. 2025, as sweeps.

Every reproduction runs :func:`lnref.sweep` over a two-field grid (Huang: per algorithm), writes the tidy and
aggregated CSVs, draws the mean test error as a heatmap with the boundary on top, and returns checks computed from
the data: each has a numeric criterion with a stated tolerance and the measured value with its standard error over
the replicates.  The runs use ``engine='coefficients', sampling='gram'`` (exact GD in span coordinates, cost
independent of d).  ``ctx.quick`` runs a coarse grid.

Sources.  Kou et al. 2023 follows the authors' own heatmap script, uclaml/Benign_ReLU_CNN (commit 20ca259),
``syntheticrelu.py``: every convention with its line is in :data:`KOU_CONVENTIONS` and in the report; their
published test-error table (``Source file/data_test100.csv`` in that repository) is compared cell by cell when
``--published PATH`` points at a downloaded copy (it is not shipped with lnref).  Cao et al. 2022 (arXiv
2202.06526): no public code was found (searched GitHub for the title, the arXiv id and the authors' group
uclaml; Papers with Code lists no implementation), so lnref takes the paper's reading (SPEC.md sections 1-3, 6):
its network, N(0, sigma0^2) initialisation, orthogonal noise, no label noise.  Huang et al. 2025 ("How does
label noise gradient descent improve generalization in the low SNR regime?", arXiv 2510.17526): no public code was
found either (searched for the title and the arXiv id; the paper puts its code in the supplementary material
only), so lnref's reading of the paper (SPEC.md section 6; see :mod:`lnref.reproduce.huang2025`).
:data:`lnref.reproduce.common.AUTHORS_CODE` records the searches.
"""

from __future__ import annotations

from .heatmap_huang_cao import cao_base, cao_grid, cao_heatmap, huang_base, huang_grid, huang_heatmap
from .heatmap_kou import KOU_CONVENTIONS, KOU_SOURCE, kou_base, kou_grid, kou_heatmap
from .heatmap_kou_published import KOU_PUBLISHED_D, KOU_PUBLISHED_MU, compare_tables, load_published, published_on_grid
from .heatmap_tools import boundary_slope, fit_boundary_constant, switch_points

__all__ = [
    "kou_base",
    "huang_base",
    "cao_base",
    "kou_grid",
    "huang_grid",
    "cao_grid",
    "kou_heatmap",
    "huang_heatmap",
    "cao_heatmap",
    "switch_points",
    "fit_boundary_constant",
    "boundary_slope",
    "load_published",
    "published_on_grid",
    "compare_tables",
    "KOU_SOURCE",
    "KOU_CONVENTIONS",
    "KOU_PUBLISHED_MU",
    "KOU_PUBLISHED_D",
]
