"""The coefficient-space engine: exact GD in span coordinates, cost per step O(m n^2) whatever d is.

Every filter stays in w_f(0) + span{mu, xi_1..xi_n} (SPEC.md section 4), so the state is gamma (2m,) and
rho (2m, n), and every inner product GD needs is a linear function of them with Gram statistics as coefficients
("Inner products in coefficients").  With explicit data the statistics are computed once from the vectors;
with ``sampling='gram'`` they are drawn from their exact law by :func:`lnref.data.gram.sample_gram`.

Agreement with the weight engine: the same recursions with inner products computed in another order, so the two
trajectories agree to rounding (tests/test_coefficients.py checks rtol 1e-10 over 1000 steps); they are not
bit-identical.  Divergence is detected on the outputs and on the coefficients (the weight engine checks W).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset, TestSet
from ..data.gram import GramData, GramStats, GramTestSet, fresh_test_accuracy, pick_kernel, virtual_test_accuracy
from ..kernels import coefficients as KC
from ..kernels import gram as KG
from ..kernels import weights as K
from ..kernels.equations import scaled_test_inner
from ..model.metrics import accuracy
from .base import CoefficientViews, RunInputs, TestCache, aligned_rows, prepare_inputs

__all__ = ["CoefficientEngine", "stats_from_data", "test_stats_from_data", "PreparedTest"]


def stats_from_data(data: Dataset, W0: np.ndarray) -> GramStats:
    """Gram statistics of explicit data with the weight engine's deterministic kernels (serial sums, no BLAS).

    Notes
    -----
    SPEC.md section 4.  P0 and b0 come from :func:`lnref.kernels.weights.inner_products`, the kernel the weight engine
    runs, so the inner products at step 0 are bit-identical to the weight engine's.  Cost O((n + m) n d), once.
    """
    n, d = data.xi.shape
    F = 2 * W0.shape[1]
    XT = np.empty((d, n))
    K.transpose(data.xi, XT)
    P0 = np.empty((F, n))
    b0 = np.empty(F)
    K.inner_products(np.ascontiguousarray(W0.reshape(F, d)), data.mu, XT, P0, b0)
    G = np.empty((n, n))
    c = np.empty(n)
    K.inner_products(data.xi, data.mu, XT, G, c)
    xi_sq = np.empty(n)
    K.row_sq_norms(data.xi, xi_sq)
    mu_sq = np.empty(1)
    K.row_sq_norms(data.mu.reshape(1, -1), mu_sq)
    return GramStats(mu_sq=float(mu_sq[0]), xi_sq=xi_sq, G=G, c=c, P0=P0, b0=b0)


def test_stats_from_data(test: TestSet, data: Dataset, W0: np.ndarray) -> GramTestSet:
    """Inner products of an explicit test set with mu, the xi_i and the w_f(0) (deterministic kernels)."""
    n, d = data.xi.shape
    T = test.xi.shape[0]
    F = 2 * W0.shape[1]
    XtT = np.empty((d, T))
    K.transpose(test.xi, XtT)
    Pt = np.empty((F, T))
    K.inner_products(np.ascontiguousarray(W0.reshape(F, d)), data.mu, XtT, Pt, np.empty(F))
    Gt = np.empty((n, T))
    K.inner_products(data.xi, data.mu, XtT, Gt, np.empty(n))
    ct = np.empty(1)
    Ct = np.empty((1, T))
    K.inner_products(data.mu.reshape(1, -1), data.mu, XtT, Ct, ct)
    return GramTestSet(Pt=Pt, Gt=Gt, ct=Ct[0].copy(), y=test.y, y_score=test.y_score, name=test.name)


class PreparedTest(NamedTuple):
    """A test set in the form the coefficient kernels read (SPEC.md section 4), with its work arrays.

    Pt (F, T) = <w_f(0), xi_t>; Gtn (n, T) = <xi_i, xi_t>/||xi_i||^2; ct_mu (T,) = <mu, xi_t>/||mu||^2 (0 when
    mu = 0); y (T,) the test labels (signal patch y_t mu); y_score (T,) the labels accuracy is scored against;
    At (F, T) and out (T,) work arrays."""

    Pt: np.ndarray
    Gtn: np.ndarray
    ct_mu: np.ndarray
    y: np.ndarray
    y_score: np.ndarray
    At: np.ndarray
    out: np.ndarray


class CoefficientEngine(CoefficientViews):
    """Exact full-batch (label-noise) GD in coefficient space (SPEC.md sections 4 and 7); the Engine protocol.

    Build it with :meth:`from_config` (validates and draws the inputs); the constructor takes validated inputs
    (:class:`lnref.engines.base.RunInputs`): explicit data with W0, or Gram statistics (``sampling='gram'``).

    Attributes
    ----------
    gamma : ndarray (2, m), rho : ndarray (2, m, n), bias : ndarray (2, m)   views of the state
    stats : GramStats
    has_weights : bool   True when explicit data exists (then :meth:`weights` reconstructs W)
    """

    name = "coefficients"

    def __init__(self, cfg: Config, inputs: RunInputs):
        data, W0 = inputs.data, inputs.W0
        self.cfg = cfg
        self.q = float(cfg.q)
        self.eta = float(cfg.eta)
        self.m = int(cfg.m)
        self.div = float(cfg.output_divisor)
        self.with_bias = bool(cfg.bias)
        self.data = data
        if isinstance(data, GramData):
            self.stats = data.stats
            self.W0 = None
        else:
            self.W0 = W0
            self.stats = stats_from_data(data, W0)
        st = self.stats
        n = st.n
        if st.P0.shape != (2 * self.m, n):
            raise ConfigError(f"the data has {st.P0.shape[0] // 2} filters per class but the config says m={self.m}")
        if (st.xi_sq <= 0.0).any():
            raise ConfigError(
                "every noise patch must be non-zero (||xi_i||^2 > 0); with noise='orthogonal' that needs d >= 2"
            )
        F = 2 * self.m
        self.y = np.ascontiguousarray(data.y, dtype=np.float64)
        self._y_obs_row = np.ascontiguousarray(data.y_obs, dtype=np.float64).reshape(1, n)
        self.mu_sq = float(st.mu_sq)
        self.xi_sq = np.ascontiguousarray(st.xi_sq, dtype=np.float64)
        # the tables of SPEC.md section 4's inner products, the signal as lane n (see lnref.kernels.coefficients):
        # Gn (n, >= n + 1) with its rows padded to whole cache lines (aligned_rows), cA (n + 1,), P (F, n + 1)
        self.Gn, self.cA, self.P = aligned_rows(n, n + 1, pad=True), np.empty(n + 1), np.empty((F, n + 1))
        KG.engine_scalings(
            np.ascontiguousarray(st.G, dtype=np.float64),
            self.xi_sq,
            np.ascontiguousarray(st.c, dtype=np.float64),
            self.mu_sq,
            np.ascontiguousarray(st.P0, dtype=np.float64),
            np.ascontiguousarray(st.b0, dtype=np.float64),
            self.Gn,
            self.cA,
            self.P,
        )
        self._gamma = np.zeros(F)
        self._rho = np.zeros((F, n))
        self._bias = np.array(inputs.b0, dtype=np.float64).reshape(F)
        self.A = aligned_rows(F, n + 1)  # column n: <w_f, mu> (= B)
        self.B = np.empty(F)
        self.f = np.empty(n)
        self._w = (
            np.empty(F),
            np.empty((F, n)),
            np.empty(F),
            np.empty(n),
            np.empty(F),
            np.empty(F),
            np.empty((F, n)),
            np.zeros(F, dtype=np.int64),
        )  # gamma_new, rho_new, bias_new, lpm, S, Sb, C, bad
        self._nz = np.empty((F, n), dtype=np.int64)
        self._fresh = False  # A, B, f belong to the current state
        self._work = F * n * n
        self._tests = TestCache()
        self._init_method(cfg, n)
        if isinstance(data, Dataset) and data.test is not None:
            self._tests.get(data.test, self._prepare_test)

    @classmethod
    def from_config(cls, cfg: Config, data=None, W0=None, b0=None) -> CoefficientEngine:
        """Validate (or draw) the inputs of ``cfg`` and build the engine (:func:`lnref.engines.from_config`).

        With ``sampling='gram'`` and no data this draws the Gram statistics (:func:`lnref.data.gram.sample_gram`)."""
        return cls(cfg, prepare_inputs(cfg, data, W0, b0))

    has_weights = property(lambda self: self.W0 is not None)

    def load_state(self, gamma, rho, bias, W=None, *, step: int = 0, target=None) -> None:
        self.gamma[...] = gamma
        self.rho[...] = rho
        self.bias[...] = bias
        self.t = int(step)
        self.target[...] = 0.0 if target is None else target
        self._fresh = False

    def forward(self) -> np.ndarray:
        """f(W(t), x_i) for the training samples, shape (n,) (SPEC.md sections 2, 4 and 7)."""
        pick_kernel((KC.outputs, KC.outputs_serial), self._work)(
            self._gamma,
            self._rho,
            self._bias,
            self.P,
            self.Gn,
            self.cA,
            self.y,
            self.q,
            self.m,
            self.div,
            self.A,
            self.B,
            self.f,
            self._nz,
        )
        self._fresh = True
        return self.f

    def advance(self, k: int, mults: np.ndarray | None) -> int:
        """Take up to k GD steps in one kernel call; see :meth:`lnref.engines.base.Engine.advance`."""
        k = int(k)
        if mults is None:
            mults = self._y_obs_row
        elif mults.dtype != np.float64 or not mults.flags.c_contiguous or mults.ndim != 2:
            mults = np.ascontiguousarray(mults, dtype=np.float64).reshape(-1, self.y.shape[0])
        if mults.shape[0] not in (1, k):
            raise ConfigError(f"mults must have 1 or k={k} rows, got shape {mults.shape}")
        self._fresh = False
        gamma_new, rho_new, bias_new, lpm, S, Sb, C, bad = self._w
        done = pick_kernel((KC.advance, KC.advance_serial), self._work)(
            k,
            mults,
            self.q,
            self.m,
            self.div,
            self.eta,
            self.mu_sq,
            self.xi_sq,
            self.P,
            self.Gn,
            self.cA,
            self.y,
            self._gamma,
            self._rho,
            self._bias,
            gamma_new,
            rho_new,
            bias_new,
            self.A,
            self.B,
            self.f,
            lpm,
            S,
            Sb,
            C,
            bad,
            self._nz,
            self.with_bias,
            *self._method_args(),
        )
        self.t += done
        return done

    def _prepare_test(self, test) -> PreparedTest:
        if isinstance(test, GramTestSet):
            gts = test
        elif isinstance(test, TestSet):
            if not isinstance(self.data, Dataset):
                raise ConfigError(
                    "an explicit TestSet needs explicit data; with sampling='gram' use the "
                    "virtual test set (lnref.data.gram.virtual_test)"
                )
            gts = test_stats_from_data(test, self.data, self.W0)
        else:
            raise ConfigError(
                f"test must be an lnref.TestSet or lnref.data.gram.GramTestSet, got {type(test).__name__}"
            )
        if gts.Gt.shape[0] != self.y.shape[0] or gts.Pt.shape[0] != 2 * self.m:
            raise ConfigError("the test set's Gram statistics do not match this run's n and m")
        ct_mu, Gtn = scaled_test_inner(gts.ct, self.mu_sq, gts.Gt, self.xi_sq)
        return PreparedTest(
            Pt=np.ascontiguousarray(gts.Pt),
            Gtn=np.ascontiguousarray(Gtn),
            ct_mu=np.ascontiguousarray(ct_mu),
            y=np.ascontiguousarray(gts.y),
            y_score=gts.y_score,
            At=np.empty(gts.Pt.shape),
            out=np.empty(gts.Pt.shape[1]),
        )

    def test_outputs(self, test) -> np.ndarray:
        """f on every test sample, shape (n_test,) (SPEC.md sections 2 and 4)."""
        t = self._tests.get(test, self._prepare_test)
        if not self._fresh:
            self.forward()  # B of the current state
        work = self._work // max(1, self.y.shape[0]) * t.Pt.shape[1]
        pick_kernel((KC.test_inner, KC.test_inner_serial), work)(
            self._gamma, self._rho, t.Pt, t.Gtn, t.ct_mu, self.m, t.At
        )
        pick_kernel((KC.test_outputs, KC.test_outputs_serial), work)(
            t.At, self.B, self._bias, t.y, self.q, self.m, self.div, t.out
        )
        return t.out

    def test_accuracy(self, test) -> float:
        """Fraction of test samples with y_score * f > 0."""
        out = self.test_outputs(test)
        return accuracy(out, self._tests.get(test, self._prepare_test).y_score)

    def virtual_test_accuracy(self, step: int | None = None) -> float:
        """Accuracy of the current state, the state of GD step ``step``, on the config's virtual test set (Gram
        sampling).  NaN if n_test = 0.

        ``virtual_test='fixed'``: the one virtual test set, drawn and evaluated in one fused kernel without building
        it (:func:`lnref.data.gram.virtual_test_accuracy`): the value ``test_accuracy`` gives on
        ``lnref.data.gram.virtual_test(...)``, bit for bit; ``step`` is not used.  ``virtual_test='fresh'``: the fresh
        test set of step ``step`` (required; :func:`lnref.data.gram.fresh_test_accuracy`).  :func:`lnref.train` and the
        sweep worker both score a fresh test set through here."""
        if not isinstance(self.data, GramData):
            raise ConfigError("virtual_test_accuracy needs Gram-sampled data (sampling='gram')")
        if self.cfg.n_test == 0:
            return math.nan
        if not self._fresh:
            self.forward()
        if self.cfg.virtual_test == "fresh":
            if step is None:
                raise ConfigError("virtual_test='fresh' draws a test set per GD step: pass the step of the state")
            return fresh_test_accuracy(
                self.cfg,
                self.data,
                int(step),
                self._gamma,
                self._rho,
                self.A,
                self.B,
                self._bias,
                self.xi_sq,
                self.q,
                self.div,
            )
        return virtual_test_accuracy(
            self.cfg, self.data, self._gamma, self._rho, self.B, self._bias, self.xi_sq, self.mu_sq, self.q, self.div
        )

    def weights(self) -> np.ndarray:
        """W(t) = W0 + s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2, shape (2, m, d) (SPEC.md section 4)."""
        if self.W0 is None:
            raise ConfigError(
                "weights() needs explicit data: with sampling='gram' there are no d-dimensional "
                "weights (has_weights is False)"
            )
        F = 2 * self.m
        d = self.W0.shape[2]
        W = np.empty((F, d))
        pick_kernel((KC.reconstruct, KC.reconstruct_serial), F * self.y.shape[0] * d)(
            self.W0.reshape(F, d), self._gamma, self._rho, self.data.mu, self.data.xi, self.mu_sq, self.xi_sq, self.m, W
        )
        return W.reshape(2, self.m, d)
