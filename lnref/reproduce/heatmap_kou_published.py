"""Kou et al. 2023's published test-error table (``Source file/data_test100.csv`` of uclaml/Benign_ReLU_CNN, not
shipped with lnref): reading it (``lnref reproduce kou2023-heatmap --published PATH``), its cells on lnref's grid
and the comparison of two tables (:mod:`lnref.reproduce.heatmap_kou`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import ConfigError

__all__ = ["load_published", "published_on_grid", "compare_tables", "KOU_PUBLISHED_MU", "KOU_PUBLISHED_D"]

KOU_PUBLISHED_MU = tuple(round(0.1 * s, 1) for s in range(100))  # syntheticrelu.py line 252
KOU_PUBLISHED_D = tuple(100 + 10 * t for t in range(100))  # syntheticrelu.py line 258


# ----------------------------------------------------------------------------------------------- published
def load_published(path: str | Path) -> np.ndarray:
    """Kou et al.'s published test-error table (``Source file/data_test100.csv`` of uclaml/Benign_ReLU_CNN, written
    by ``np.savetxt(Data_test)`` in syntheticrelu.py line 338), as an array (||mu||, d) of shape (100, 100) on
    :data:`KOU_PUBLISHED_MU` x :data:`KOU_PUBLISHED_D` (the file's rows are d, its columns ||mu||: line 299).

    Raises
    ------
    ConfigError
        The file is missing, not a whitespace-separated 100 x 100 table of numbers in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--published {path}: no such file (download 'Source file/data_test100.csv' of "
            "github.com/uclaml/Benign_ReLU_CNN)"
        )
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ConfigError(f"--published {path} is not a whitespace-separated table of numbers: {exc}") from None
    if table.shape != (100, 100):
        raise ConfigError(
            f"--published {path} has shape {table.shape}; Kou et al.'s data_test100.csv is a "
            "100 x 100 table (rows d = 100..1090, columns ||mu|| = 0..9.9)"
        )
    if not np.all(np.isfinite(table)) or table.min() < 0.0 or table.max() > 1.0:
        raise ConfigError(f"--published {path} has entries outside [0, 1]; it must hold test errors")
    return np.ascontiguousarray(table.T)


def published_on_grid(published: np.ndarray, mus, ds) -> np.ndarray:
    """The cells of the published table (:func:`load_published`) at lnref's grid values (len(mus), len(ds)).

    Raises
    ------
    ConfigError   a grid value is not one of the published grid's
    """

    def index(values, axis_values, what):
        out = []
        for v in values:
            hits = [i for i, a in enumerate(axis_values) if abs(float(v) - a) <= 1e-9 * max(1.0, abs(a))]
            if not hits:
                raise ConfigError(f"{what}={v} is not on the published grid ({axis_values[0]}..{axis_values[-1]})")
            out.append(hits[0])
        return np.array(out)

    return published[np.ix_(index(mus, KOU_PUBLISHED_MU, "mu_norm"), index(ds, KOU_PUBLISHED_D, "d"))]


def compare_tables(published: np.ndarray, ours: np.ndarray) -> dict[str, float]:
    """mean and max |ours - published| and the Pearson correlation over the cells."""
    diff = ours - published
    a, b = published.ravel(), ours.ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else math.nan
    return {
        "mean_abs_diff": float(np.mean(np.abs(diff))),
        "max_abs_diff": float(np.max(np.abs(diff))),
        "correlation": corr,
        "mean_diff": float(np.mean(diff)),
    }
