"""Run configuration: one frozen dataclass, validated on construction.

Every field maps to a symbol of SPEC.md (sections 1-3, and 9 for the methods).  Invalid values raise
:class:`ConfigError` naming the field, the value and what is allowed, before any work starts.

- :mod:`lnref.config.checks`: ConfigError, the allowed values of each choice field, the checks;
- :mod:`lnref.config.losses`: the training methods' hyper-parameters (``LOSSES``);
- :mod:`lnref.config.loading`: each field's documentation, Config from TOML documents and mappings
  (``FIELD_DOCS``, ``config_values_from_toml``, ``config_from_mapping``, also readable here).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .._lazy import submodule_getattr
from .checks import (
    ALGORITHMS,
    ENGINES,
    FLIP_MODELS,
    INITS,
    NOISE_MODELS,
    PATCH_REDUCTIONS,
    SAMPLINGS,
    SELECT_RULES,
    SELECT_THENS,
    SELECTION_ALGORITHMS,
    TEST_DISTRIBUTIONS,
    VIRTUAL_TESTS,
    ConfigError,
    check_choice,
    check_float,
    check_int,
    unknown_fields_message,
)
from .losses import LOSSES, LossParam, LossParams, resolve_loss_params

__all__ = [
    "Config",
    "ConfigError",
    "LOSSES",
    "LossParam",
    "LossParams",
    "resolve_loss_params",
    "output_divisor",
    "check_int",
    "check_float",
    "check_choice",
    "FIELD_TYPES",
    "FIELD_DOCS",
    "config_values_from_toml",
    "config_from_mapping",
    "ALGORITHMS",
    "SELECTION_ALGORITHMS",
    "PATCH_REDUCTIONS",
]


@dataclass(frozen=True)
class Config:
    """Everything that defines a run (SPEC.md sections 1-3).

    Parameters
    ----------
    n, d, m : int
        Training samples, dimension, filters per class (2m filters in all).
    q : float
        Activation exponent, sigma(z) = max(0, z)**q, q >= 1 (q = 1 is the ReLU).
    sigma0 : float
        Standard deviation of every entry of the initial weights W0.
    sigma_p : float
        Noise scale: xi ~ N(0, sigma_p^2 Sigma).
    mu_norm : float
        ||mu||; mu = mu_norm * e_1 unless the caller passes its own mu.
    eta : float
        Gradient-descent step size.
    tau_plus : float
        Flip rate of class +1: P(y_obs = -1 | y = +1), in [0, 1/2).
    tau_minus : float
        Flip rate of class -1: P(y_obs = +1 | y = -1), in [0, 1/2).
    tau : float, optional
        Shorthand that sets both flip rates.
    noise : {'orthogonal', 'isotropic'}
        Sigma = I - u u^T with u = mu/||mu|| the signal direction, or Sigma = I.  mu_norm = 0 keeps u = e_1 (the
        direction of mu = mu_norm e_1), so the noise law does not jump at mu_norm = 0 (Kou et al.'s phase diagram
        starts there).
    flips : {'independent', 'exact'}
        Each sample flips on its own coin, or exactly round(tau * n_class) per class.
    algorithm : {'gd', 'label_noise_gd', 'select_retrain', 'truncated_gce', 'coteaching'}
        Plain full-batch GD, label-noise GD with flip probability ``p`` drawn afresh each step, or a method that
        trains on chosen samples (SPEC.md section 9, "Selection algorithms"; :mod:`lnref.training.selection`):
        'select_retrain' (Han et al.: select the small-loss samples once, at ``select_at``, then train on them),
        'truncated_gce' (Zhang & Sabuncu's truncated Lq loss: GCE on the samples with sigmoid(y_obs f) >
        ``trunc_k``, a mask refreshed every ``trunc_every`` steps; needs loss='gce'), 'coteaching' (Han B. et
        al.: two networks, each trained on the samples the other ranks as its small-loss ones; full-batch GD
        instead of the official code's Adam).
    p : float
        Label-noise GD flip probability, in [0, 1/2).  Ignored by plain GD.
    steps : int
        Number of GD steps.
    seed : int
        Root seed of the data contract (see :mod:`lnref.data`).
    log_every : int
        Log every ``log_every`` steps (0: only the log-spaced steps and the ends).
    log_points : int
        Additional log-spaced steps between 1 and ``steps`` (for long runs).
    n_test : int
        Test samples (0 disables the test metrics).
    test : {'iid', 'spurious'}
        Test distribution (SPEC.md section 1).
    sigma_zeta : float
        Scale of the fresh part of a spurious test sample's noise.
    test_flipped_labels : bool
        Score the iid test set against labels flipped with the training rates (Kou's convention).
    engine : {'weights', 'coefficients'}
        Exact GD on W (the ground truth) or in span coordinates (cost independent of d).
    sampling : {'explicit', 'gram'}
        Draw d-dimensional data, or only its Gram statistics (coefficient engine only).
    bias : bool
        A trainable bias b_{j,r} per filter, added to every patch's pre-activation: sigma(<w_{j,r}, x_p> + b_{j,r})
        (SPEC.md section 7).  Default False (the paper's network).
    init : {'gaussian', 'torch'}
        Initial weights (and biases): every entry N(0, sigma0^2) (the paper), or PyTorch's default for a
        Conv1d/Linear layer with fan_in = d, uniform on +-1/sqrt(d) (sigma0 is then unused).  Gaussian biases
        start at 0.
    patch_reduce : {'sum', 'mean'}
        How the two patches are combined: summed (the paper) or averaged (code that averages the patches).
    output_scale : float, optional
        Second-layer weight: f = output_scale * c_p * sum_r sum_p [sigma(.)_{+1,r} - sigma(.)_{-1,r}], with c_p = 1
        for 'sum' and 1/2 for 'mean'.  None (default) means 1/m, the paper's; 1 for code that sums the filters.
    loss : str
        The training loss (SPEC.md section 9): 'logistic' (the paper's, default), or a method against label
        noise with its official code's conventions (clamps, defaults): 'gce', 'sce', 'label_smoothing',
        'bootstrap_soft', 'bootstrap_hard', 'forward', 'backward' (loss correction), 'elr'.
    loss_params : mapping, optional
        The method's hyper-parameters, name -> value; the others take the official code's defaults.  gce: q;
        sce: alpha, beta, A; label_smoothing: eps; bootstrap_soft, bootstrap_hard: beta; forward, backward: tau
        (the known symmetric flip rate); elr: lam, beta, period (GD steps between target updates).  Stored
        resolved (every parameter of the method).
    select_at : str or int
        algorithm='select_retrain': when S is selected: 'T1' (default; the first step at which every clean sample
        is fitted and no mislabelled one, lnref.training.stages' exact T1, checked at every step; never selecting if
        that step never comes) or a step, an integer in [0, steps].
    select_rule : {'log2', 'rank'}
        algorithm='select_retrain': S = {i : l(y_obs_i f_i) < log 2} = {i : y_obs_i f_i > 0} ('log2', default) or
        the int((1 - forget_rate) n) samples of smallest loss ('rank', ties broken by sample index).
    select_then : {'continue', 'retrain'}
        algorithm='select_retrain': after selecting, keep training the same network on S ('continue', default)
        or re-initialise it (the same W0 and biases) and train it on S for the remaining steps ('retrain'); the
        loss is the mean over |S|.
    forget_rate : float, optional
        The fraction of samples dropped by select_rule='rank' and co-teaching's final forget rate tau_ct, in
        [0, 1).  None (default): the flip rate, tau (the mean of tau_plus and tau_minus when they differ).
    trunc_k : float
        algorithm='truncated_gce': the threshold k in (0, 1) of the truncated Lq loss; a sample trains when its
        probability of the observed label sigmoid(y_obs f) exceeds k.  Default 0.5 (Zhang & Sabuncu's code).
    trunc_every : int
        algorithm='truncated_gce': GD steps between refreshes of the mask (an epoch is one full-batch step; the
        official code refreshes every 10 epochs, the default).
    trunc_start : int
        algorithm='truncated_gce': the first refresh step; before it every sample trains (the official code's
        start_prune, 40 epochs, the default).
    coteach_tk : int
        algorithm='coteaching': the steps T_k over which the forget rate R(t) = forget_rate min(t / T_k, 1)
        ramps up (the official code's num_gradual, 10 epochs, the default).
    virtual_test : {'fixed', 'fresh'}
        With ``sampling='gram'``, the test set the accuracy is measured on (SPEC.md section 4, "Virtual test
        sets").  'fixed' (default): one virtual test set, drawn once, evaluated at every logged step.  'fresh': at
        each logged step t a new test set of n_test samples, drawn from the exact law of its inner products with
        the weights of step t (2m normals per sample instead of n + 2m; stream ``fresh_test`` keyed by t).  The
        accuracy of any one step has the same law either way; with 'fresh' the steps are not scored on a common
        test set.  For sweeps that read only the final row (Kou's phase diagram).  Needs sampling='gram'.
    """

    n: int = 200
    d: int = 2000
    m: int = 20
    q: float = 1.0
    sigma0: float = 0.01
    sigma_p: float = 0.5
    mu_norm: float = 4.0
    eta: float = 0.5
    tau_plus: float | None = None
    tau_minus: float | None = None
    tau: float | None = None
    noise: str = "orthogonal"
    flips: str = "independent"
    algorithm: str = "gd"
    p: float = 0.1
    steps: int = 200
    seed: int = 0
    log_every: int = 1
    log_points: int = 0
    n_test: int = 1000
    test: str = "iid"
    sigma_zeta: float = 0.1
    test_flipped_labels: bool = False
    engine: str = "weights"
    sampling: str = "explicit"
    bias: bool = False
    init: str = "gaussian"
    patch_reduce: str = "sum"
    output_scale: float | None = None
    virtual_test: str = "fixed"
    loss: str = "logistic"
    loss_params: Mapping[str, Any] | None = None
    select_at: Any = "T1"
    select_rule: str = "log2"
    select_then: str = "continue"
    forget_rate: float | None = None
    trunc_k: float = 0.5
    trunc_every: int = 10
    trunc_start: int = 40
    coteach_tk: int = 10

    # default flip rate when neither tau nor tau_plus/tau_minus is given
    DEFAULT_TAU = 0.2

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n", check_int("n", self.n, 1))
        s(self, "d", check_int("d", self.d, 1))
        s(self, "m", check_int("m", self.m, 1))
        s(self, "q", check_float("q", self.q, low=1.0, allowed="with q >= 1"))
        for name in ("sigma0", "sigma_p", "eta"):
            s(self, name, check_float(name, getattr(self, name), low=0.0, low_open=True, allowed="> 0"))
        s(self, "mu_norm", check_float("mu_norm", self.mu_norm, low=0.0, allowed=">= 0"))
        s(self, "sigma_zeta", check_float("sigma_zeta", self.sigma_zeta, low=0.0, allowed=">= 0"))

        def rate(name: str, value: Any) -> float:
            return check_float(name, value, low=0.0, high=0.5, high_open=True, allowed="in [0, 1/2)")

        tau = None if self.tau is None else rate("tau", self.tau)
        tp = None if self.tau_plus is None else rate("tau_plus", self.tau_plus)
        tm = None if self.tau_minus is None else rate("tau_minus", self.tau_minus)
        if tau is not None:
            for name, v in (("tau_plus", tp), ("tau_minus", tm)):
                if v is not None and v != tau:
                    raise ConfigError(
                        f"tau={tau} conflicts with {name}={v}: give tau alone (both rates) or tau_plus and tau_minus"
                    )
            tp = tm = tau
        else:
            tp = self.DEFAULT_TAU if tp is None else tp
            tm = self.DEFAULT_TAU if tm is None else tm
        s(self, "tau_plus", tp)
        s(self, "tau_minus", tm)
        s(self, "tau", tp if tp == tm else None)
        s(self, "p", rate("p", self.p))
        s(self, "noise", check_choice("noise", self.noise, NOISE_MODELS))
        s(self, "flips", check_choice("flips", self.flips, FLIP_MODELS))
        s(self, "algorithm", check_choice("algorithm", self.algorithm, ALGORITHMS))
        s(self, "test", check_choice("test", self.test, TEST_DISTRIBUTIONS))
        s(self, "engine", check_choice("engine", self.engine, ENGINES))
        s(self, "sampling", check_choice("sampling", self.sampling, SAMPLINGS))
        s(self, "steps", check_int("steps", self.steps, 0))
        s(self, "seed", check_int("seed", self.seed, 0))
        s(self, "log_every", check_int("log_every", self.log_every, 0))
        s(self, "log_points", check_int("log_points", self.log_points, 0))
        s(self, "n_test", check_int("n_test", self.n_test, 0))
        if not isinstance(self.test_flipped_labels, (bool, np.bool_)):
            raise ConfigError(f"test_flipped_labels={self.test_flipped_labels!r} is not allowed: use true or false")
        s(self, "test_flipped_labels", bool(self.test_flipped_labels))
        if not isinstance(self.bias, (bool, np.bool_)):
            raise ConfigError(f"bias={self.bias!r} is not allowed: use true or false")
        s(self, "bias", bool(self.bias))
        s(self, "init", check_choice("init", self.init, INITS))
        s(self, "patch_reduce", check_choice("patch_reduce", self.patch_reduce, PATCH_REDUCTIONS))
        if self.output_scale is not None:
            s(
                self,
                "output_scale",
                check_float("output_scale", self.output_scale, low=0.0, low_open=True, allowed="> 0 (or None for 1/m)"),
            )
        if self.noise == "orthogonal" and self.d < 2:
            raise ConfigError(
                f"d={self.d} is not allowed with noise='orthogonal': the noise lives in the d - 1 "
                "coordinates orthogonal to mu, so every noise patch would be 0; use d >= 2 or "
                "noise='isotropic'"
            )
        s(self, "virtual_test", check_choice("virtual_test", self.virtual_test, VIRTUAL_TESTS))
        if self.virtual_test == "fresh" and self.sampling != "gram":
            raise ConfigError(
                "virtual_test='fresh' is not allowed with sampling='explicit': a fresh test set per "
                "step is drawn through the law of its inner products with the current weights, "
                "which is Gram sampling's virtual test set; use sampling='gram' (with "
                "engine='coefficients') or virtual_test='fixed'"
            )
        s(self, "loss", check_choice("loss", self.loss, tuple(LOSSES)))
        s(self, "loss_params", resolve_loss_params(self.loss, self.loss_params))
        if self.sampling == "gram" and self.engine != "coefficients":
            raise ConfigError(
                "sampling='gram' is not allowed with engine='weights': Gram sampling draws no "
                "d-dimensional vectors, so it needs engine='coefficients'"
            )
        self._check_selection()

    def _check_selection(self) -> None:
        """Validate the fields of the selection algorithms (SPEC.md section 9, "Selection algorithms")."""
        s = object.__setattr__
        at = self.select_at
        if isinstance(at, str) and at.strip().isdigit():
            at = int(at.strip())
        if isinstance(at, str):
            if at != "T1":
                raise ConfigError(
                    f"select_at={at!r} is not allowed: use 'T1' (the end of Stage I) or a step, an "
                    f"integer in [0, steps={self.steps}]"
                )
        else:
            at = check_int("select_at", at, 0)
            if at > self.steps:
                raise ConfigError(
                    f"select_at={at} is not allowed: the run has steps={self.steps}, so a selection "
                    f"step must be in [0, {self.steps}] (or use 'T1')"
                )
        s(self, "select_at", at)
        s(self, "select_rule", check_choice("select_rule", self.select_rule, SELECT_RULES))
        s(self, "select_then", check_choice("select_then", self.select_then, SELECT_THENS))
        if self.forget_rate is not None:
            s(
                self,
                "forget_rate",
                check_float(
                    "forget_rate",
                    self.forget_rate,
                    low=0.0,
                    high=1.0,
                    high_open=True,
                    allowed="in [0, 1) (or None for the flip rate tau)",
                ),
            )
        s(
            self,
            "trunc_k",
            check_float("trunc_k", self.trunc_k, low=0.0, low_open=True, high=1.0, high_open=True, allowed="in (0, 1)"),
        )
        s(self, "trunc_every", check_int("trunc_every", self.trunc_every, 1))
        s(self, "trunc_start", check_int("trunc_start", self.trunc_start, 0))
        s(self, "coteach_tk", check_int("coteach_tk", self.coteach_tk, 1))
        if self.algorithm == "truncated_gce" and self.loss != "gce":
            raise ConfigError(
                f"algorithm='truncated_gce' is not allowed with loss={self.loss!r}: the truncated "
                "loss is GCE's (Zhang & Sabuncu), so set loss='gce' (its q in loss_params)"
            )
        if self.algorithm == "coteaching" and self.sampling == "gram" and self.init == "torch":
            raise ConfigError(
                "algorithm='coteaching' with sampling='gram' is not allowed with init='torch': the "
                "second network's inner products are drawn through the Gaussian law of its "
                "filters; use init='gaussian' or sampling='explicit'"
            )

    @property
    def selection_rate(self) -> float:
        """The forget rate of select_rule='rank' and co-teaching: ``forget_rate``, or the flip rate (the mean of
        tau_plus and tau_minus)."""
        if self.forget_rate is not None:
            return float(self.forget_rate)
        tp, tm = cast(float, self.tau_plus), cast(float, self.tau_minus)  # resolved by __post_init__
        return self.tau if self.tau is not None else 0.5 * (tp + tm)

    # ------------------------------------------------------------------ helpers
    @property
    def snr(self) -> float:
        """SNR = ||mu|| / (sigma_p sqrt(d)) (SPEC.md section 1)."""
        return self.mu_norm / (self.sigma_p * math.sqrt(self.d))

    @property
    def output_divisor(self) -> float:
        """1 / (output_scale * c_p): what the summed activations are divided by to give f (SPEC.md section 7);
        :func:`output_divisor`."""
        return output_divisor(self.m, self.patch_reduce, self.output_scale)

    @property
    def paper_network(self) -> bool:
        """True for the paper's conventions (no bias, 1/m, patch sum); the initialisation law does not matter."""
        return not self.bias and self.output_scale is None and self.patch_reduce == "sum"

    @property
    def has_label_noise(self) -> bool:
        """True when either flip rate is positive (there can be mislabelled samples)."""
        # __post_init__ resolves tau into both rates: never None on a Config
        return cast(float, self.tau_plus) > 0.0 or cast(float, self.tau_minus) > 0.0

    def log_steps(self) -> np.ndarray:
        """Sorted unique steps at which metrics are logged (always 0 and ``steps``).

        Returns
        -------
        ndarray of int64
        """
        pts = {0, self.steps}
        if self.log_every > 0:
            pts.update(range(0, self.steps + 1, self.log_every))
        if self.log_points > 0 and self.steps > 1:
            pts.update(np.unique(np.round(np.geomspace(1, self.steps, self.log_points)).astype(np.int64)).tolist())
        return np.array(sorted(pts), dtype=np.int64)

    @property
    def loss_code(self) -> int:
        """The method's code for the kernels (its index in lnref.kernels.losses.LOSS_NAMES)."""
        return tuple(LOSSES).index(self.loss)

    def loss_vector(self) -> np.ndarray:
        """The method's hyper-parameters as the kernels read them: float64 (N_LOSS_PARAMS,), zero-padded."""
        out = np.zeros(3)
        for i, v in enumerate(cast(LossParams, self.loss_params).values()):  # resolved by __post_init__
            out[i] = float(v)
        return out

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (``tau`` is re-resolved; a new ``loss`` without ``loss_params`` takes
        its own defaults)."""
        data = self.to_dict()
        if "loss" in changes and "loss_params" not in changes and changes["loss"] != self.loss:
            data["loss_params"] = None
        if any(k in changes for k in ("tau_plus", "tau_minus")) and "tau" not in changes:
            data["tau"] = None
        if "tau" in changes:
            data["tau_plus"] = data["tau_minus"] = None
        data.update(changes)
        return Config.from_dict(data)

    def with_seed(self, seed: int) -> Config:
        """A copy with another root seed (the other fields are already valid, so only the seed is checked).

        The same config as ``replace(seed=seed)``, without re-validating every field: for loops over seeds
        (sweeps run one per (cell, replicate)).
        """
        seed = check_int("seed", seed, 0)
        out = object.__new__(type(self))  # copy.copy's result, without its __reduce_ex__ round trip
        out.__dict__.update(self.__dict__)
        object.__setattr__(out, "seed", seed)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-friendly dict (``loss_params`` as a plain dict); :meth:`from_dict` inverts it."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["loss_params"] = dict(cast(LossParams, self.loss_params))  # resolved by __post_init__
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of Config's fields, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a mapping (JSON/TOML), refusing unknown keys."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping of field -> value, got {type(data).__name__}")
        known = set(cls.field_names())
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(unknown_fields_message(unknown, cls.field_names()))
        data = dict(data)
        if data.get("tau") is not None and data.get("tau_plus") == data.get("tau_minus") == data.get("tau"):
            data.pop("tau_plus", None)
            data.pop("tau_minus", None)
        return cls(**data)


def output_divisor(m: int, patch_reduce: str, output_scale: float | None) -> float:
    """div = 1/(output_scale c_p), c_p = 1 for 'sum' and 1/2 for 'mean' (SPEC.md section 7): f is the sum of the
    filters' activation differences divided by div.

    The paper's network (output_scale None = 1/m, patch sum) gives exactly float(m), so its outputs and gradients
    are computed with the same roundings as a division by m.
    """
    cp_div = 2.0 if patch_reduce == "mean" else 1.0
    if output_scale is None:
        return float(m) * cp_div
    return cp_div / output_scale


#: names of :mod:`lnref.config.loading` read here on first access (``lnref.config.FIELD_TYPES``), which
#: needs Config defined first
LOADING = ("FIELD_TYPES", "FIELD_DOCS", "config_values_from_toml", "config_from_mapping")


__getattr__ = submodule_getattr(__name__, ("checks", "losses", "loading"), dict.fromkeys(LOADING, "loading"))
