"""The Gram statistics of a run (SPEC.md section 4): the containers the coefficient engine reads (GramStats,
GramTestSet, GramData), the statistics from coordinates, and the choice of serial or parallel kernel.  Drawn by
:func:`lnref.data.gram.sample_gram` (the draw order is in that module's docstring)."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..kernels import gram as KG
from . import LabelMasks, short_repr

# problems smaller than this (multiply-adds per kernel call) run the serial kernel variant (same bits, no
# threading start-up cost, which would be a large share of such a call)
PARALLEL_WORK = 1_000_000


def pick_kernel(pair, work: float):
    """The parallel or the serial compilation of a kernel (``pair`` from :func:`lnref.kernels.cache.both`) for a
    call of ``work`` multiply-adds: the same bits either way, the choice is speed only."""
    par, ser = pair
    return par if work >= PARALLEL_WORK and numba.get_num_threads() > 1 else ser


def cross_t(Y: np.ndarray, ZT: np.ndarray) -> np.ndarray:
    """(k, T) matrix of <Y[a], Z[t]> for Z = ZT.T, given ZT (r, T), with a deterministic serial-sum kernel
    (no BLAS)."""
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    ZT = np.ascontiguousarray(ZT, dtype=np.float64)
    out = np.empty((Y.shape[0], ZT.shape[1]))
    pick_kernel((KG.cross, KG.cross_serial), Y.size * ZT.shape[1])(Y, ZT, out)
    return out


@dataclass(frozen=True, eq=False, repr=False)
class GramStats:
    """The inner products that define a coefficient-space run (SPEC.md section 4), all float64.

    Attributes
    ----------
    mu_sq : float               ||mu||^2
    xi_sq : ndarray (n,)        ||xi_i||^2 (= G[i, i])
    G : ndarray (n, n)          <xi_i, xi_k>
    c : ndarray (n,)            <xi_i, mu>
    P0 : ndarray (2m, n)        <w_f(0), xi_i>, filters flattened as f = j_index * m + r
    b0 : ndarray (2m,)          <w_f(0), mu>
    W0W0 : ndarray (2m, 2m) or None   <w_f(0), w_g(0)>
    """

    __repr__ = short_repr

    mu_sq: float
    xi_sq: np.ndarray
    G: np.ndarray
    c: np.ndarray
    P0: np.ndarray
    b0: np.ndarray
    W0W0: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.G.shape[0]

    @property
    def m(self) -> int:
        return self.P0.shape[0] // 2


@dataclass(frozen=True, eq=False, repr=False)
class GramTestSet:
    """A test set known through its inner products with the training vectors (SPEC.md sections 1 and 4).

    Test sample t is x = [y_t mu, xi_t]; accuracy is scored against ``y_score``.

    Attributes
    ----------
    Pt : ndarray (2m, T)   <w_f(0), xi_t>
    Gt : ndarray (n, T)    <xi_i, xi_t>
    ct : ndarray (T,)      <mu, xi_t>
    y : ndarray (T,)       true labels (the signal patch is y_t mu)
    y_score : ndarray (T,) labels predictions are scored against
    name : str
    """

    __repr__ = short_repr

    Pt: np.ndarray
    Gt: np.ndarray
    ct: np.ndarray
    y: np.ndarray
    y_score: np.ndarray
    name: str = "iid"

    @property
    def n_test(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True, eq=False, repr=False)
class GramData(LabelMasks):
    """Training data known only through Gram statistics (from :func:`sample_gram`).

    Attributes
    ----------
    stats : GramStats
    y, y_obs : ndarray (n,)     true and observed labels, as :func:`lnref.make_data` draws them
    test : GramTestSet or None  the virtual test set (None when n_test = 0)
    coords : ndarray (n + 2m, r)   coordinates t_a of the e_1-orthogonal parts, scaled (rows: xi_i, then w_f(0))
    e1 : ndarray (n + 2m,)        e_1 coordinates of the same vectors
    d : int
    mu_norm : float
    bias0 : ndarray (2, m) or None
        Initial biases b_{j,r}(0) (index 0 holds j = +1), :func:`lnref.init_bias` of the config (the same numbers as
        the explicit path; zeros when bias=False).  :func:`sample_gram` always sets it; None (hand-built
        GramData) means zeros.
    """

    __repr__ = short_repr

    stats: GramStats
    y: np.ndarray
    y_obs: np.ndarray
    test: GramTestSet | None
    coords: np.ndarray
    e1: np.ndarray
    d: int
    mu_norm: float
    bias0: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def m(self) -> int:
        return self.stats.m


def stats_from_coordinates(coords: np.ndarray, e1: np.ndarray, n: int, mu_norm: float) -> GramStats:
    """GramStats from the coordinates of [xi_1..xi_n, w_1(0)..w_2m(0)] (rows) and their e_1 components.

    Notes
    -----
    <a, b> = <t_a, t_b> + a_1 b_1, <a, mu> = ||mu|| a_1 (mu = ||mu|| e_1), SPEC.md section 4.
    """
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    e1 = np.ascontiguousarray(e1, dtype=np.float64)
    k, r = coords.shape
    full, G, xi_sq, P0, b0, c = (
        np.empty((k, k)),
        np.empty((n, n)),
        np.empty(n),
        np.empty((k - n, n)),
        np.empty(k - n),
        np.empty(n),
    )
    pick_kernel((KG.gram_stats, KG.gram_stats_serial), k * k * r)(
        coords, e1, float(mu_norm), np.empty((r, k)), full, G, xi_sq, P0, b0, c
    )
    return GramStats(
        mu_sq=float(mu_norm) * float(mu_norm),
        xi_sq=xi_sq,
        G=G,
        c=c,
        P0=P0,
        b0=b0,
        W0W0=np.ascontiguousarray(full[n:, n:]),
    )
