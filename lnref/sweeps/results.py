"""The result of a sweep: rows, per-cell means and standard errors, the tidy and mean CSV texts, and heatmaps."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..io import atomic_write
from .files import csv_line as _csv_line
from .files import header_line, row_line

__all__ = ["SweepResult", "save_heatmap", "have_matplotlib", "cell_edges", "NAN_REASONS"]


@dataclass
class SweepResult:
    """Rows of a finished sweep (one per cell and replicate, sorted by cell then replicate).

    Attributes
    ----------
    base : Config
    grid : dict field -> list of values
    fields : list of str
    replicates : int
    metrics : tuple of str
    rows : list of dict
        ``cell``, ``replicate``, ``seed``, the grid values, then the metrics.
    out : Path or None
    wall_seconds : float
    skipped : int
        Rows kept from an interrupted sweep (resume).
    files : list of str
        Files written into ``out``.
    rerun : int
        Garbled rows of an interrupted sweep's table that were run again.
    sweep_id : str
        Identifies the base config and the grid (the ``sweep_id`` column of sweep.csv).
    """

    base: Config
    grid: dict[str, list[Any]]
    fields: list[str]
    replicates: int
    metrics: tuple[str, ...]
    rows: list[dict[str, Any]]
    out: Path | None = None
    wall_seconds: float = 0.0
    skipped: int = 0
    files: list[str] = field(default_factory=list)
    rerun: int = 0
    sweep_id: str = ""

    @property
    def columns(self) -> list[str]:
        return ["cell", "replicate", "seed", *self.fields, *list(self.metrics)]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.grid[f]) for f in self.fields)

    def values(self, metric: str) -> np.ndarray:
        """Metric as an array of shape ``grid shape + (replicates,)`` (float; bools as 0/1)."""
        if metric not in self.metrics:
            raise ConfigError(f"metric {metric!r} is not in this sweep; it has {', '.join(self.metrics)}")
        out = np.full((int(np.prod(self.shape)), self.replicates), math.nan)
        for row in self.rows:
            out[row["cell"], row["replicate"]] = float(row[metric])
        return out.reshape((*self.shape, self.replicates))

    def mean(self, metric: str) -> np.ndarray:
        """Mean over the replicates where the metric is defined (NaN where none is), shape = grid shape.

        (E.g. ``train_acc_noisy`` is NaN in a run without mislabelled samples.)
        """
        v = self.values(metric)
        ok = ~np.isnan(v)
        count = ok.sum(axis=-1)
        total = np.where(ok, v, 0.0).sum(axis=-1)
        return np.where(count > 0, total / np.maximum(count, 1), math.nan)

    def sem(self, metric: str) -> np.ndarray:
        """Standard error of that mean, std(ddof=1)/sqrt(k) over the k defined replicates (NaN when k < 2)."""
        v = self.values(metric)
        ok = ~np.isnan(v)
        count = ok.sum(axis=-1)
        dev = np.where(ok, v - self.mean(metric)[..., None], 0.0)
        var = (dev * dev).sum(axis=-1) / np.maximum(count - 1, 1)
        return np.where(count > 1, np.sqrt(var / np.maximum(count, 1)), math.nan)

    def aggregate(self) -> list[dict[str, Any]]:
        """One row per cell: grid values, replicates, then ``<metric>_mean`` and ``<metric>_sem``."""
        means = {m: self.mean(m).ravel() for m in self.metrics}
        sems = {m: self.sem(m).ravel() for m in self.metrics}
        cells = list(itertools.product(*(self.grid[f] for f in self.fields)))
        out = []
        for c, values in enumerate(cells):
            row: dict[str, Any] = {"cell": c, **dict(zip(self.fields, values)), "replicates": self.replicates}
            for m in self.metrics:
                row[f"{m}_mean"] = float(means[m][c])
                row[f"{m}_sem"] = float(sems[m][c])
            out.append(row)
        return out

    def tidy_csv(self) -> str:
        """``sweep.csv``: the columns, then ``sweep_id`` and a per-row ``check`` (see :mod:`lnref.sweeps.files`)."""
        cols = self.columns
        return "".join([header_line(cols)] + [row_line(r, cols, self.sweep_id) for r in self.rows])

    def mean_csv(self) -> str:
        agg = self.aggregate()
        cols = list(agg[0])
        return "".join([_csv_line(cols)] + [_csv_line([r[c] for c in cols]) for r in agg])

    def heatmap(
        self,
        metric: str = "test_error",
        ax=None,
        boundary: Callable[[np.ndarray], np.ndarray] | None = None,
        boundary_label: str = "",
    ):
        """Plot the mean of ``metric`` over a two-field grid: first field on the x axis, second on y
        (:func:`lnref.plotting.heatmap`: mathematical axis labels, a colour bar saying what the colour is,
        NaN cells hatched and explained).  ``boundary(x) -> y`` draws a curve (e.g. a theory boundary) on top.  Returns
        the matplotlib Axes.
        """
        if len(self.fields) != 2:
            raise ConfigError(f"a heatmap needs a grid over exactly two fields, this one has {self.fields}")
        from ..plotting import heatmap, math_label
        from .worker import METRICS

        xs, xnames = _axis_values(self.grid[self.fields[0]])
        ys, ynames = _axis_values(self.grid[self.fields[1]])
        fraction = metric in FRACTION_METRICS
        scale = ", fixed scale 0 to 1" if fraction else ""
        title = HEATMAP_TITLES.get(metric, METRICS.get(metric, metric))
        _, ax = heatmap(
            self.mean(metric).T,
            xs,
            ys,
            xlabel=math_label(self.fields[0]),
            ylabel=math_label(self.fields[1]),
            title=title,
            cbar_label=f"{metric}, mean of {self.replicates} replicate(s){scale}",
            nan_label=NAN_REASONS.get(metric, "no value in any replicate"),
            ax=ax,
            vmin=0.0 if fraction else None,
            vmax=1.0 if fraction else None,
        )
        if xnames is not None:  # a categorical field (e.g. loss): one column per value, named
            ax.set_xticks(xs, xnames, rotation=30, ha="right")
        if ynames is not None:
            ax.set_yticks(ys, ynames)
        if boundary is not None:
            xx = np.linspace(xs.min(), xs.max(), 400)
            yy = boundary(xx)
            ok = (yy >= ys.min()) & (yy <= ys.max())
            ax.plot(xx[ok], yy[ok], "r--", lw=2, label=boundary_label or "boundary", zorder=3)
            ax.legend(loc="upper right", fontsize=8)
        return ax


def _axis_values(values) -> tuple[np.ndarray, list[str] | None]:
    """A grid field's values as heatmap coordinates: the numbers themselves, or 0, 1, ... with their names for a
    field whose values are not numbers (``loss``, ``algorithm``, ...)."""
    try:
        return np.asarray(values, dtype=float), None
    except (TypeError, ValueError):
        return np.arange(len(values), dtype=float), [str(v) for v in values]


#: heatmap titles of the sweep metrics (the others use their meaning from ``lnref.sweeps.worker.METRICS``)
HEATMAP_TITLES = {
    "test_error": "final test error (fraction of test samples misclassified)",
    "test_acc": "final test accuracy",
    "train_acc_noisy": "final fraction of mislabelled samples fitted to the wrong label",
}

#: metrics that are fractions: their colour bars span the fixed range [0, 1], so heatmaps compare by colour
FRACTION_METRICS = ("test_acc", "test_error", "train_acc", "train_acc_clean", "train_acc_noisy", "true_acc_noisy")

#: why a sweep metric can be NaN in a cell (the legend entry of its hatched cells)
NAN_REASONS = {
    "train_acc_noisy": "no mislabelled sample (tau = 0)",
    "true_acc_noisy": "no mislabelled sample (tau = 0)",
    "rho_bar_max_noisy": "no mislabelled sample (tau = 0)",
    "train_acc_clean": "no clean sample",
    "rho_bar_max_clean": "no clean sample",
    "test_acc": "no test set (n_test = 0)",
    "test_error": "no test set (n_test = 0)",
}


def cell_edges(v: np.ndarray) -> np.ndarray:
    """Edges of the cells centred on the sorted values ``v`` (for pcolormesh; :func:`lnref.plotting` draws
    with the same edges)."""
    from ..plotting import cell_edges_scaled

    return cell_edges_scaled(v, "linear")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_heatmap(result: SweepResult, metric: str, path: Path, **kwargs) -> None:
    """Write ``result.heatmap(metric, **kwargs)`` as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ax = result.heatmap(metric, **kwargs)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
