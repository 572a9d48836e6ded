"""The seed -> data contract (SPEC.md section 1; docs/DESIGN.md "The seed -> data contract").

One integer seed gives independent streams
``np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(k,))))``:

====  ==============  ===========================================================================
k     stream          draws, in this order
====  ==============  ===========================================================================
0     data            ``b = integers(0, 2, n)``, y = 2b - 1; ``g = standard_normal((n, d))``,
                      xi = sigma_p * g (isotropic) or sigma_p * (g - (g.u) u^T), u = mu/||mu||, or e_1 if
                      mu = 0 (orthogonal; the projection is a fixed-order loop, exact for mu = c e_1)
1     init            init='gaussian': ``standard_normal((2, m, d)) * sigma0``; index 0 holds j = +1; biases 0.
                      init='torch': ``uniform(-a, a, (2, m, d))`` with a = 1/sqrt(d) (PyTorch's default
                      Conv1d/Linear law, fan_in = d)
2     label flips     independent: ``u = random(n)``, flip i iff u_i < tau_{y_i};
                      exact: for class +1 then -1, ``choice(idx, k, replace=False)`` over the class's
                      indices in increasing order, k = floor(tau * n_class + 1/2)
3     test set        iid: ``b = integers(0, 2, n_test)``, ``g = standard_normal((n_test, d))`` as above;
                      spurious: ``k = integers(0, n, n_test)``, ``g = standard_normal((n_test, d))``,
                      xi_test = xi[k] + sigma_zeta * (projected g), y_test = y[k];
                      then, if test_flipped_labels, ``u = random(n_test)`` flips as in stream 2
4     label-noise GD  at each step t, ``u = random(n)``, eps_i = -1 iff u_i < p
6     bias            (bias=True, init='torch' only) ``uniform(-a, a, (2, m))``, a = 1/sqrt(d); other cases: 0
7, t  fresh test      (sampling='gram', virtual_test='fresh' only) the test set of logged step t, one stream per
                      step: spawn_key (7, t) (:func:`step_stream`; draws: :mod:`lnref.data.gram`)
8     coteach_init    (algorithm='coteaching' only) the second network: explicit sampling, W0_2 with stream 1's
                      draws (then, bias=True and init='torch', its biases with stream 6's draws); Gram sampling
                      (init='gaussian'), ``w1 = standard_normal(2m)`` then ``z = standard_normal((2m, r))``
                      (:func:`lnref.training.selection.second_network`)
====  ==============  ===========================================================================

Other frameworks do not reproduce NumPy's streams: they load lnref's export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._lazy import submodule_getattr
from ..config import Config, ConfigError
from ..kernels import normals as _normals
from ..kernels import weights as K
from ..kernels.seeding import pcg64_stream, stream_state

__all__ = ["Dataset", "TestSet", "make_data", "init_weights", "init_bias", "stream", "step_stream", "STREAMS"]

STREAMS = {
    "data": 0,
    "init": 1,
    "flips": 2,
    "test": 3,
    "label_noise": 4,
    "gram": 5,
    "bias": 6,
    "fresh_test": 7,
    "coteach_init": 8,
}


def stream(seed: int, name: str) -> np.random.Generator:
    """The named random stream of the data contract for ``seed``: the generator
    ``Generator(PCG64(SeedSequence(seed, spawn_key=(k,))))``, built by :func:`lnref.kernels.seeding.pcg64_stream` (same
    state and draws; its ``bit_generator.seed_seq`` is a :class:`lnref.kernels.seeding.StreamSeed`, which gives
    SeedSequence's words and spawns real SeedSequences)."""
    return pcg64_stream(int(seed), STREAMS[name])  # that generator, built without SeedSequence's overhead


def step_stream(seed: int, name: str, step: int) -> np.random.Generator:
    """The stream of step ``step`` of a per-step stream (``fresh_test``): the generator
    ``Generator(PCG64(SeedSequence(seed, spawn_key=(k, step))))``, so what one step draws does not depend on which
    other steps were logged."""
    return pcg64_stream(int(seed), (STREAMS[name], int(step)))


def _as_array(name: str, a, ndim: int) -> np.ndarray:
    try:
        a = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a real float64-convertible array: {exc}") from None
    if a.ndim != ndim:
        raise ConfigError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ConfigError(f"{name} contains {bad} NaN or infinite value(s); every entry must be finite")
    return a


def _as_labels(name: str, a, n: int) -> np.ndarray:
    a = _as_array(name, a, 1)
    if a.shape != (n,):
        raise ConfigError(f"{name} must have shape ({n},) to match xi, got {a.shape}")
    if not np.all((a == 1.0) | (a == -1.0)):
        bad = np.unique(a[(a != 1.0) & (a != -1.0)])[:5]
        raise ConfigError(f"{name} must contain only +1 and -1, found {bad.tolist()}")
    return a


def short_repr(obj) -> str:
    """``<lnref.Name field=..., ...>`` of a dataclass holding arrays: arrays by dtype and shape, other dataclasses by
    their class name, scalars by value (a notebook shows what the object holds, not kilobytes of numbers)."""
    import dataclasses

    parts = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            text = f"{v.dtype}{tuple(v.shape)}"
        elif dataclasses.is_dataclass(v):
            text = f"<{type(v).__name__}>"
        else:
            text = repr(v)
        parts.append(f"{f.name}={text}")
    if hasattr(obj, "y") and hasattr(obj, "y_obs"):
        parts.append(f"mislabelled={int(np.count_nonzero(obj.y != obj.y_obs))}")
    return f"<lnref.{type(obj).__name__} " + ", ".join(parts) + ">"


@dataclass(frozen=True, eq=False, repr=False)
class TestSet:
    """Test samples: x = [y mu, xi]; accuracy is scored against ``y_score``.

    Attributes
    ----------
    xi : ndarray (n_test, d) float64
    y : ndarray (n_test,) float64, the true labels (the signal patch is y mu)
    y_score : ndarray (n_test,) float64, the labels predictions are scored against
    name : str
    """

    __repr__ = short_repr

    xi: np.ndarray
    y: np.ndarray
    y_score: np.ndarray
    name: str = "iid"

    def __post_init__(self) -> None:
        xi = _as_array("xi_test", self.xi, 2)
        object.__setattr__(self, "xi", xi)
        object.__setattr__(self, "y", _as_labels("y_test", self.y, xi.shape[0]))
        object.__setattr__(self, "y_score", _as_labels("y_test_score", self.y_score, xi.shape[0]))


class LabelMasks:
    """The clean/mislabelled masks of anything with true labels ``y`` and observed labels ``y_obs``."""

    __repr__ = short_repr

    y: np.ndarray
    y_obs: np.ndarray

    @property
    def clean(self) -> np.ndarray:
        """Boolean mask of S_c = {i : y_obs_i = y_i}."""
        return self.y_obs == self.y

    @property
    def noisy(self) -> np.ndarray:
        """Boolean mask of S_f = {i : y_obs_i != y_i}."""
        return self.y_obs != self.y


@dataclass(frozen=True, eq=False, repr=False)
class Dataset(LabelMasks):
    """Training data (SPEC.md section 1), all float64.

    Attributes
    ----------
    mu : ndarray (d,)
    xi : ndarray (n, d)            noise patches
    y : ndarray (n,)               true labels, +-1
    y_obs : ndarray (n,)           observed labels, +-1
    test : TestSet or None
    """

    mu: np.ndarray
    xi: np.ndarray
    y: np.ndarray
    y_obs: np.ndarray
    test: TestSet | None = None

    def __post_init__(self) -> None:
        mu = _as_array("mu", self.mu, 1)
        xi = _as_array("xi", self.xi, 2)
        if xi.shape[1] != mu.shape[0]:
            raise ConfigError(f"xi has d={xi.shape[1]} columns but mu has length {mu.shape[0]}; they must agree")
        if xi.shape[0] < 1:
            raise ConfigError("xi must hold at least one sample (n >= 1)")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "xi", xi)
        object.__setattr__(self, "y", _as_labels("y", self.y, xi.shape[0]))
        object.__setattr__(self, "y_obs", _as_labels("y_obs", self.y_obs, xi.shape[0]))
        if self.test is not None and self.test.xi.shape[1] != mu.shape[0]:
            raise ConfigError(f"test xi has d={self.test.xi.shape[1]} but mu has length {mu.shape[0]}")

    @property
    def n(self) -> int:
        """The number of training samples."""
        return self.xi.shape[0]

    @property
    def d(self) -> int:
        """The dimension of each patch."""
        return self.xi.shape[1]

    def check_for(self, cfg: Config) -> None:
        """Refuse a dataset whose shape disagrees with ``cfg``."""
        if (self.n, self.d) != (cfg.n, cfg.d):
            raise ConfigError(f"dataset has (n, d) = ({self.n}, {self.d}) but the config says ({cfg.n}, {cfg.d})")

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name: mu, xi, y, y_obs and the test set's xi_test, y_test, y_test_score (for np.savez)."""
        out = {"mu": self.mu, "xi": self.xi, "y": self.y, "y_obs": self.y_obs}
        if self.test is not None:
            out.update(xi_test=self.test.xi, y_test=self.test.y, y_test_score=self.test.y_score)
        return out

    def save(self, path) -> None:
        """Write a self-describing .npz (plain float64 arrays, SHA-256 of each)."""
        from ..io import save_npz

        save_npz(path, self.arrays(), meta={"kind": "lnref.Dataset"})

    @classmethod
    def load(cls, path) -> Dataset:
        """Read a dataset written by :meth:`save` (every SHA-256 checked).

        Raises
        ------
        lnref.io.InputError
            The file is missing, not a regular file (a FIFO is refused without blocking), damaged, not a
            dataset, or holds arrays that are not real float64 (complex or float16 arrays are refused).
        """
        from ..io import InputError, load_npz

        arrays, meta = load_npz(path, what="dataset")
        if meta.get("kind") not in (None, "lnref.Dataset"):
            raise InputError(f"dataset {path} is not an lnref dataset (kind={meta.get('kind')!r})")
        required = ("mu", "xi", "y", "y_obs") + (("y_test", "y_test_score") if "xi_test" in arrays else ())
        missing = [k for k in required if k not in arrays]
        if missing:
            raise InputError(f"dataset {path} lacks the array(s) {', '.join(missing)}")
        for k, a in arrays.items():
            if a.dtype != np.float64:
                raise InputError(
                    f"dataset {path}: array {k!r} has dtype {a.dtype}; a dataset holds real float64 arrays only"
                )
        test = None
        try:
            if "xi_test" in arrays:
                test = TestSet(arrays["xi_test"], arrays["y_test"], arrays["y_test_score"])
            return cls(arrays["mu"], arrays["xi"], arrays["y"], arrays["y_obs"], test)
        except ConfigError as exc:
            raise InputError(f"dataset {path} is not valid: {exc}") from None


def default_mu(cfg: Config) -> np.ndarray:
    mu = np.zeros(cfg.d)
    mu[0] = cfg.mu_norm
    return mu


def signal_direction(mu: np.ndarray) -> np.ndarray:
    """u = mu/||mu||, the direction orthogonal noise avoids; e_1 for mu = 0 (the direction of mu_norm e_1)."""
    norm_sq = float(np.sum(mu * mu))
    if norm_sq == 0.0:
        u = np.zeros(mu.shape[0])
        u[0] = 1.0
        return u
    return np.ascontiguousarray(mu / math.sqrt(norm_sq))


def _noise(rng: np.random.Generator, rows: int, d: int, scale: float, mu: np.ndarray, noise: str) -> np.ndarray:
    g = rng.standard_normal((rows, d))
    if noise == "orthogonal":
        (K.project_out if g.size >= 1_000_000 else K.project_out_serial)(g, signal_direction(mu))
    g *= scale
    return g


def flip_rates(cfg: Config) -> tuple[float, float]:
    """(tau_plus, tau_minus) of a Config, which resolves ``tau`` into both rates on construction (never None)."""
    return cast(float, cfg.tau_plus), cast(float, cfg.tau_minus)


def flip_labels(rng: np.random.Generator, y: np.ndarray, tau_plus: float, tau_minus: float, flips: str) -> np.ndarray:
    n = y.shape[0]
    if flips == "independent":
        u = rng.random(n)
        return np.where(u < np.where(y > 0, tau_plus, tau_minus), -y, y)
    flip = np.zeros(n, dtype=bool)  # exact: round(tau n_class) flips per class
    for cls, tau in ((1.0, tau_plus), (-1.0, tau_minus)):
        idx = np.flatnonzero(y == cls)
        k = math.floor(tau * idx.size + 0.5)
        if k:
            flip[rng.choice(idx, size=k, replace=False)] = True
    return np.where(flip, -y, y)


def make_test(
    cfg: Config, data: Dataset, kind: str | None = None, n_test: int | None = None, flipped_labels: bool | None = None
) -> TestSet:
    """Draw a test set from stream 3 (see the module docstring)."""
    kind = cfg.test if kind is None else kind
    n_test = cfg.n_test if n_test is None else n_test
    flipped = cfg.test_flipped_labels if flipped_labels is None else flipped_labels
    rng = stream(cfg.seed, "test")
    if kind == "iid":
        y = 2.0 * rng.integers(0, 2, n_test).astype(np.float64) - 1.0
        xi = _noise(rng, n_test, data.d, cfg.sigma_p, data.mu, cfg.noise)
    elif kind == "spurious":
        k = rng.integers(0, data.n, n_test)
        xi = data.xi[k] + _noise(rng, n_test, data.d, cfg.sigma_zeta, data.mu, cfg.noise)
        y = data.y[k].copy()
    else:
        raise ConfigError(f"test={kind!r} is not allowed: choose 'iid' or 'spurious'")
    y_score = flip_labels(rng, y, *flip_rates(cfg), "independent") if flipped else y
    return TestSet(xi, y, y_score, name=kind)


def make_data(cfg: Config, mu: np.ndarray | None = None) -> Dataset:
    """Draw the training data (and the test set when ``cfg.n_test > 0``) from ``cfg.seed``.

    Parameters
    ----------
    cfg : Config
    mu : ndarray (d,), optional
        The signal vector; default ``cfg.mu_norm * e_1``.

    Returns
    -------
    Dataset
    """
    if cfg.sampling == "gram":
        raise ConfigError(
            "make_data draws explicit d-dimensional data; with sampling='gram' use lnref.data.gram.sample_gram(cfg)"
        )
    if mu is None:
        mu = default_mu(cfg)
    else:
        mu = _as_array("mu", mu, 1)
        if mu.shape != (cfg.d,):
            raise ConfigError(f"mu must have shape ({cfg.d},), got {mu.shape}")
    rng = stream(cfg.seed, "data")
    y = 2.0 * rng.integers(0, 2, cfg.n).astype(np.float64) - 1.0
    xi = _noise(rng, cfg.n, cfg.d, cfg.sigma_p, mu, cfg.noise)
    y_obs = flip_labels(stream(cfg.seed, "flips"), y, *flip_rates(cfg), cfg.flips)
    data = Dataset(mu, xi, y, y_obs)
    if cfg.n_test > 0:
        data = Dataset(mu, xi, y, y_obs, make_test(cfg, data))
    return data


def init_weights(cfg: Config, rng: np.random.Generator | None = None) -> np.ndarray:
    """W0, shape (2, m, d); index 0 holds j = +1 (SPEC.md sections 2 and 7).

    ``init='gaussian'``: i.i.d. N(0, sigma0^2) entries; ``init='torch'``: i.i.d. uniform on +-1/sqrt(d), PyTorch's
    default for a Conv1d/Linear layer with fan_in = d.  Stream 1 of the data contract (``rng``: another stream,
    e.g. co-teaching's second network, stream 8).
    """
    if cfg.init == "torch":
        a = 1.0 / math.sqrt(cfg.d)
        if rng is None:  # straight from the stream's words, no Generator (the same numbers)
            return stream_uniform(cfg.seed, "init", -a, a, (2, cfg.m, cfg.d))
        return uniform(rng, -a, a, (2, cfg.m, cfg.d))
    rng = stream(cfg.seed, "init") if rng is None else rng
    return rng.standard_normal((2, cfg.m, cfg.d)) * cfg.sigma0


def uniform(rng: np.random.Generator, low: float, high: float, shape) -> np.ndarray:
    """``rng.uniform(low, high, shape)`` for scalar bounds: the same numbers (NumPy computes low + (high - low) u
    from the same doubles u as ``rng.random``, tests/test_config_data.py), without ``rng.uniform``'s extra passes;
    large draws from a PCG64 stream are made by :func:`lnref.kernels.normals.uniform_fill` from its words (the same
    numbers, the generator left where NumPy would leave it)."""
    size = math.prod(shape) if isinstance(shape, (tuple, list)) else int(shape)
    bitgen = getattr(rng, "bit_generator", None)
    if size >= _NUMBA_UNIFORM_MIN and type(bitgen) is np.random.PCG64:
        out = np.empty(shape)
        state, st = _normals.pcg64_words(bitgen)
        _normals.uniform_fill(st, float(low), float(high - low), out.reshape(-1))
        _normals.set_pcg64_words(bitgen, state, st)
        return out
    u = rng.random(shape)
    u *= high - low
    u += low
    return u


#: from this many draws on, :func:`uniform` makes them in numba (the state round trip costs a few microseconds)
_NUMBA_UNIFORM_MIN = 4096


def stream_uniform(seed: int, name: str, low: float, high: float, shape) -> np.ndarray:
    """``uniform(stream(seed, name), low, high, shape)`` (the same numbers) made from the stream's PCG64 words by
    :func:`lnref.kernels.normals.uniform_fill`, without building the generator (sweep runs draw W0 and the biases
    this way)."""
    out = np.empty(shape)
    _normals.uniform_fill(stream_state(int(seed), STREAMS[name]), float(low), float(high - low), out.reshape(-1))
    return out


def init_bias(cfg: Config, rng: np.random.Generator | None = None) -> np.ndarray:
    """b0, shape (2, m); index 0 holds j = +1 (SPEC.md section 7).

    Zeros unless ``bias=True`` and ``init='torch'``: then i.i.d. uniform on +-1/sqrt(d) (PyTorch's default bias law
    for fan_in = d), drawn from its own stream 6, so turning the bias on changes neither the data nor W0
    (``rng``: another stream, e.g. co-teaching's second network, stream 8 after its W0).
    """
    if cfg.bias and cfg.init == "torch":
        a = 1.0 / math.sqrt(cfg.d)
        if rng is None:
            return stream_uniform(cfg.seed, "bias", -a, a, (2, cfg.m))
        return uniform(rng, -a, a, (2, cfg.m))
    return np.zeros((2, cfg.m))


def label_noise_signs(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """eps for label-noise GD (stream 4): eps = -1 where ``random(shape) < p`` (SPEC.md section 3).

    ``shape`` is (n,) for one step or (k, n) for k consecutive steps (row s is step s; the same numbers as
    k calls with shape (n,)).
    """
    return np.where(rng.random(shape) < p, -1.0, 1.0)


#: sub-modules read as attributes on first access (``lnref.data.gram`` after ``import lnref``)
__getattr__ = submodule_getattr(__name__, ("gram", "gram_stats", "virtual_tests"))
