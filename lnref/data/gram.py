"""Gram sampling: the inner products of a run drawn from their exact joint law, without d-dimensional vectors.

The coefficient engine (SPEC.md section 4) needs only inner products among mu, the noise patches xi_i and the
initial filters w_f(0).  Their joint law is Wishart-type (SPEC.md section 4, last paragraph), so it can be drawn
directly in memory O((n + m)^2) and time independent of d; d = 10^9 is fine (init='gaussian'; the uniform
init='torch' draws W0 explicitly, see below).

Construction (mu = ||mu|| e_1).  Split every vector into its e_1 coordinate and the other d - 1 coordinates.
The e_1 coordinates are independent scalars: w_f(0)_1 ~ N(0, sigma0^2); xi_i,1 ~ N(0, sigma_p^2) for the
isotropic noise model and 0 for the orthogonal one.  The remaining parts, g_a in R^(d-1) for the
k = n + 2m vectors (the xi_i first, then the filters in the flattened order f = j_index * m + r), are
independent N(0, s_a^2 I_(d-1)) with s_a = sigma_p or sigma0.  Write g_a = s_a Q t_a with an orthonormal
Q (d-1, r) and coordinates t_a in R^r, r = min(k, d - 1):

* k <= d - 1: the Bartlett decomposition.  The Gram matrix of k standard normal vectors in R^(d-1) is
  Wishart(d - 1, I_k) = T T^T with T lower triangular, T_aa = sqrt(chi^2_{d-1-a}) (a = 0..k-1) and
  T_ab ~ N(0, 1) for b < a, all independent; Q is Haar-distributed and independent of T.  Rows of T are the
  coordinates t_a.
* k > d - 1 (tiny d): the vectors themselves, t_a = a standard normal row of length d - 1 (Q = I).

Every inner product is then an r-dimensional dot product plus the e_1 term, e.g.
<xi_i, xi_k> = sigma_p^2 <t_i, t_k> + xi_i,1 xi_k,1, and <w_f(0), mu> = ||mu|| w_f(0)_1.

``init='torch'`` (PyTorch's default uniform law, SPEC.md section 7).  The Wishart shortcut above needs Gaussian
w_f(0), so with a uniform initialisation W0 is drawn *explicitly*: W0 = :func:`lnref.init_weights` (stream
``init``, the same (2m, d) array the explicit path uses for the same seed; memory O(m d)).  Its e_1 column is
the filters' e_1 coordinates; the other d - 1 columns are put in an orthonormal basis Q_1 of their span
(Gram-Schmidt: the lower Cholesky factor of their 2m x 2m Gram matrix when d - 1 >= 2m, else LAPACK QR of
W0[:, 1:]^T; exact up to rounding; s = min(2m, d - 1) columns): the filters' coordinates are that factor (R^T).
Given W0, the noise parts g_i in R^(d-1) are still N(0, sigma_p^2 I) and independent of W0, so their
coordinates on Q_1 are i.i.d. N(0, sigma_p^2) (drawn explicitly, an (n, s) block), and their parts in the
(d - 1 - s)-dimensional complement of span(Q_1) are independent of those with the Gram matrix
sigma_p^2 Wishart(d - 1 - s, I_n), drawn with the Bartlett decomposition above (or directly when
n > d - 1 - s).  Coordinates: xi_i -> [sigma_p z_i, sigma_p t_i], w_f(0) -> [R^T_f, 0] (r = s + min(n, d-1-s)
columns).  Every inner product, hence every GramStats entry, then has exactly the law of explicit sampling
(make_data + init_weights); the filters (and <w_f(0), w_g(0)>, <w_f(0), mu>) are even the same numbers as
the explicit path's for the same seed.  The initial biases (``bias=True``) are :func:`lnref.init_bias`
(stream ``bias``), also the explicit path's numbers, and are carried as ``GramData.bias0``.

A fresh noise vector xi ~ N(0, sigma_p^2 Sigma), independent of the training vectors, has Q^T-coordinates
sigma_p z with z ~ N(0, I_r) (its component outside the span of Q is orthogonal to every training vector and
never enters f), plus the e_1 coordinate sigma_p a, a ~ N(0, 1), in the isotropic model.  So a test set drawn
this way is a fixed *virtual* test set with exactly the law of an explicit one given the training data
(:class:`GramTestSet`): the engine evaluates it with the same formulas as an explicit test set.

Random streams (:mod:`lnref.data`), draw order:

====================  ======================================================================================
stream                draws, in this order
====================  ======================================================================================
``data`` (k=0)        ``integers(0, 2, n)``, y = 2b - 1 (the first draw of :func:`lnref.make_data`, so y agrees
                      with explicit sampling for the same seed)
``flips`` (k=2)       as :func:`lnref.make_data` (so y_obs agrees too)
``gram`` (k=5)        init='gaussian': ``w1 = standard_normal(2m)`` (w_f(0)_1 = sigma0 w1_f); isotropic only:
                      ``x1 = standard_normal(n)`` (xi_i,1 = sigma_p x1_i); then, if k <= d - 1,
                      ``chisquare(d - 1 - arange(k))`` (the diagonal of T, squared) and
                      ``standard_normal(k (k - 1) / 2)`` (T below the diagonal, row by row); otherwise
                      ``standard_normal((k, d - 1))``.
                      init='torch': isotropic only ``x1 = standard_normal(n)``; then
                      ``standard_normal((n, s))`` (the noise on Q_1), then the Bartlett draws above for the n
                      noise vectors in dimension d - 1 - s (k -> n) (none when d - 1 - s = 0)
``init`` (k=1)        init='torch' only: W0 exactly as :func:`lnref.init_weights` draws it
``bias`` (k=6)        :func:`lnref.init_bias` (GramData.bias0; zeros unless bias=True and init='torch')
``test`` (k=3)        iid: ``integers(0, 2, n_test)`` (y), z (n_test, r) row by row from
                      :func:`lnref.kernels.normals.standard_normal` (*), isotropic only ``standard_normal(n_test)`` (a);
                      spurious: ``integers(0, n, n_test)`` (the index k_t), then z and a as for iid, scaled by
                      sigma_zeta; then, if test_flipped_labels, ``random(n_test)`` flips as in
                      :func:`lnref.make_test`
``fresh_test`` (k=7)  virtual_test='fresh' only, one stream per logged step t (spawn_key (7, t)): iid
                      ``integers(0, 2, n_test)`` (y) or spurious ``integers(0, n, n_test)`` (k_t), then u
                      (n_test, 2m) row by row from :func:`lnref.kernels.normals.standard_normal` (*), then the flips as
                      for ``test`` (:func:`fresh_test_accuracy`)
====================  ======================================================================================

(*) NumPy's ziggurat (the algorithm of ``Generator.standard_normal``) run by numba over the stream's 64-bit
PCG64 words, made in the same loop, with the layer tables computed in :mod:`lnref.kernels.normals`: it uses the same
words as ``standard_normal((n_test, r))`` would and gives the same values up to ~1e-13 relative (table rounding), at a
fraction of the cost; the stream continues after the last word used, so the flips are the same draws as before.

The draws of streams ``data`` and ``flips`` (flips='independent'), ``init`` (init='torch'), ``bias`` and
``fresh_test`` are made by numba kernels from the streams' PCG64 words (:func:`lnref.kernels.seeding.stream_state`,
:func:`lnref.kernels.normals.uniform_fill`, :func:`lnref.kernels.gram.training_labels`): NumPy's integer and double
draws bit for bit (tests/test_stream_words.py), without building the generators.  The ``gram`` and ``test`` streams'
normals and chi-squares stay NumPy's.
"""

from __future__ import annotations

import threading

import numpy as np

from ..config import Config, ConfigError
from ..kernels import gram as KG
from ..kernels.equations import scaled_test_inner
from ..kernels.seeding import stream_state
from . import STREAMS, Dataset, flip_labels, init_bias, init_weights, stream
from .gram_stats import GramData, GramStats, GramTestSet, pick_kernel, stats_from_coordinates
from .virtual_tests import (
    VirtualTestInputs,
    fresh_test_accuracy,
    fresh_test_factor,
    virtual_test,
    virtual_test_accuracy,
    virtual_test_inputs,
)

__all__ = [
    "GramStats",
    "GramData",
    "GramTestSet",
    "sample_gram",
    "virtual_test",
    "virtual_test_accuracy",
    "fresh_test_accuracy",
    "fresh_test_factor",
    "scaled_test_inner",
    "coordinates",
    "TORCH_MAX_ENTRIES",
    "pick_kernel",
    "stats_from_coordinates",
    "VirtualTestInputs",
    "virtual_test_inputs",
]


#: init='torch' draws W0 (2m x d float64) explicitly; more entries than this (2 GiB) are refused
TORCH_MAX_ENTRIES = 2**28


def sample_gram(cfg: Config, draw_test: bool = True) -> GramData:
    """Draw the Gram statistics of a run from their exact joint law (no d-dimensional vector).

    Parameters
    ----------
    cfg : Config
        Uses n, d, m, init, sigma0, sigma_p, mu_norm, noise, flip rates and model, bias, seed, and the test fields.
    draw_test : bool
        False leaves ``test`` None (the virtual test set is then drawn later from its own stream, e.g. by
        :func:`virtual_test_accuracy`; the training statistics are the same either way).  With
        ``virtual_test='fresh'`` there is no fixed test set: ``test`` is None (:func:`fresh_test_accuracy`).

    Returns
    -------
    GramData
        Memory O((n + m)^2 + n_test (n + m)).

    Raises
    ------
    ConfigError
        ``init='torch'`` with 2 m d above :data:`TORCH_MAX_ENTRIES` (W0 is drawn explicitly, see below).

    Notes
    -----
    SPEC.md section 1 (data), section 2 (initialisation), section 4 (the Wishart-type law, Bartlett
    decomposition) and section 7 (init='torch', bias).  Draw order: see the module docstring.  The labels y and
    y_obs equal those of :func:`lnref.make_data` for the same seed; the noise vectors are a different (equally
    distributed) draw.  With ``init='gaussian'`` the filters are drawn through their Gram law too (memory and
    time independent of d); with ``init='torch'`` W0 is drawn explicitly by :func:`lnref.init_weights` (the
    explicit path's W0 for the same seed, memory O(m d)) and only the noise goes through the Gram law.  The
    initial biases are :func:`lnref.init_bias` (``bias0``).
    """
    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    y, y_obs, coords, e1 = gram_draws(cfg)
    stats = stats_from_coordinates(coords, e1, cfg.n, cfg.mu_norm)
    test = (
        virtual_test(cfg, coords, e1, stats, y)
        if cfg.n_test > 0 and draw_test and cfg.virtual_test == "fixed"
        else None
    )
    return GramData(
        stats=stats,
        y=y,
        y_obs=y_obs,
        test=test,
        coords=coords,
        e1=e1,
        d=cfg.d,
        mu_norm=cfg.mu_norm,
        bias0=np.ascontiguousarray(init_bias(cfg), dtype=np.float64),
    )


_PER_THREAD = threading.local()


def _gram_generator(seed: int) -> np.random.Generator:
    """``stream(seed, 'gram')`` in its fresh state, as one Generator per thread set to that state (the same numbers):
    the kernels draw from it through numba's Generator support, which reads the bit generator's ctypes interface,
    and NumPy builds that interface once per generator (12 us, and a reference cycle, per new generator)."""
    gen = getattr(_PER_THREAD, "gram", None)
    if gen is None:
        gen = _PER_THREAD.gram = np.random.Generator(np.random.PCG64())
    w = stream_state(seed, STREAMS["gram"])
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (int(w[0]) << 64) | int(w[1]), "inc": (int(w[2]) << 64) | int(w[3])},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return gen


def gram_draws(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The random draws of :func:`sample_gram` (streams data, flips, gram; module docstring): y (n,), y_obs (n,),
    coords (n + 2m, r) (rows scaled by sigma_p or sigma0) and e1 (n + 2m,), all float64, C order."""
    n, m, d = cfg.n, cfg.m, cfg.d
    if cfg.flips == "independent":  # the same draws, made from the streams' words in one kernel
        y = np.empty(n)
        y_obs = np.empty(n)
        KG.training_labels(
            stream_state(cfg.seed, STREAMS["data"]),
            stream_state(cfg.seed, STREAMS["flips"]),
            float(cfg.tau_plus),
            float(cfg.tau_minus),
            y,
            y_obs,
        )
    else:
        y = 2.0 * stream(cfg.seed, "data").integers(0, 2, n).astype(np.float64) - 1.0
        y_obs = flip_labels(stream(cfg.seed, "flips"), y, cfg.tau_plus, cfg.tau_minus, cfg.flips)
    rng = _gram_generator(cfg.seed)
    if cfg.init == "torch":
        coords, e1 = _torch_draws(cfg, rng)
        return y, np.ascontiguousarray(y_obs, dtype=np.float64), coords, e1
    coords, e1 = KG.gaussian_gram_coordinates(
        rng, n, 2 * m, d - 1, float(cfg.sigma_p), float(cfg.sigma0), cfg.noise == "isotropic"
    )
    return y, np.ascontiguousarray(y_obs, dtype=np.float64), coords, e1


def _torch_draws(cfg: Config, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """coords and e1 for init='torch' (module docstring): W0 explicit from stream 'init', the noise on the basis
    of W0's e_1-orthogonal span explicitly and in its complement through the Bartlett decomposition."""
    n, m, d = cfg.n, cfg.m, cfg.d
    F = 2 * m
    if F * d > TORCH_MAX_ENTRIES:
        raise ConfigError(
            f"init='torch' with sampling='gram' draws W0 explicitly (uniform weights have no Wishart "
            f"law): 2 m d = {F * d} entries is over the limit of {TORCH_MAX_ENTRIES} "
            f"({TORCH_MAX_ENTRIES * 8 // 2**30} GiB); use a smaller d or m, or init='gaussian'"
        )
    W = init_weights(cfg).reshape(F, d)
    s = min(F, d - 1)
    wcoords = np.zeros((F, 0))
    if s == F:
        # Gram-Schmidt coordinates: the lower Cholesky factor L of W'W'^T (W' = W[:, 1:]) is W' in the orthonormal
        # basis Q_1 = W'^T L^-T (the transposed R of a QR of W'^T); 2m x 2m work, where LAPACK's QR of the
        # (d-1, 2m) matrix would be slow whenever OpenBLAS threads compete on a loaded machine
        try:
            wcoords = np.linalg.cholesky(W[:, 1:] @ W[:, 1:].T)
        except np.linalg.LinAlgError:  # numerically rank-deficient: fall back to the QR
            wcoords = np.zeros((F, 0))
    if wcoords.shape[1] != s and s > 0:
        wcoords = np.linalg.qr(W[:, 1:].T, mode="r").T  # (F, s): W[:, 1:] = (Q_1 R)^T
    return KG.torch_gram_coordinates(
        rng, W, np.ascontiguousarray(wcoords), n, d - 1, float(cfg.sigma_p), cfg.noise == "isotropic"
    )


def coordinates(data: Dataset, W0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of explicit training vectors in the form :func:`sample_gram` produces.

    Parameters
    ----------
    data : Dataset with mu = ||mu|| e_1 (the default signal)
    W0 : ndarray (2, m, d)

    Returns
    -------
    coords : ndarray (n + 2m, r), r = min(n + 2m, d - 1)
        Rows xi_i then w_f(0) (their last d - 1 coordinates) expressed in an orthonormal basis (LAPACK QR).
    e1 : ndarray (n + 2m,), their first coordinates.

    Notes
    -----
    For :func:`virtual_test` with explicit data (tests compare it with an explicit test set); setup only.
    """
    mu = data.mu
    if mu[1:].any():
        raise ConfigError("coordinates needs mu = ||mu|| e_1 (the default signal vector)")
    V = np.concatenate([data.xi, np.asarray(W0, dtype=np.float64).reshape(-1, data.d)])
    rest = V[:, 1:]
    if rest.shape[0] <= rest.shape[1]:
        _, R = np.linalg.qr(rest.T)
        rest = R.T
    return np.ascontiguousarray(rest), np.ascontiguousarray(V[:, 0])
