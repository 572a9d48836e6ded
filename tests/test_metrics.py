"""lnref.model.metrics.step_metrics (its counts and extrema from one kernel, lnref.kernels.metrics) against the
plain NumPy formulas of the history columns (lnref.model.metrics.HISTORY_COLUMNS), written here independently."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lnref.model.metrics import HISTORY_COLUMNS, step_metrics


def _numpy_metrics(f, y, y_obs, gamma, rho) -> dict[str, float]:
    """Every column by NumPy's masks, counts, sums, max and min."""
    margin = y_obs * f
    loss = np.where(margin > 0, np.log1p(np.exp(-np.abs(margin))), -margin + np.log1p(np.exp(-np.abs(margin))))
    clean = y_obs == y
    noisy = ~clean
    fitted = margin > 0
    n, nc, nn = y.size, int(clean.sum()), int(noisy.sum())

    def mean(a):
        return float(a.sum()) / a.size if a.size else math.nan

    def amax(a):
        return float(a.max()) if a.size else math.nan

    rho_max = rho.max(axis=(0, 1))
    rho_bar = np.maximum(rho_max, 0.0)
    return {
        "loss": mean(loss),
        "loss_clean": mean(loss[clean]),
        "loss_noisy": mean(loss[noisy]),
        "train_acc": int(fitted.sum()) / n,
        "train_acc_clean": int((fitted & clean).sum()) / nc if nc else math.nan,
        "train_acc_noisy": int((fitted & noisy).sum()) / nn if nn else math.nan,
        "true_acc_noisy": int(((y * f > 0) & noisy).sum()) / nn if nn else math.nan,
        "gamma_max": float(gamma.max()),
        "gamma_mean": float(gamma.mean()),
        "gamma_min": float(gamma.min()),
        "rho_bar_max_clean": amax(rho_bar[clean]),
        "rho_bar_max_noisy": amax(rho_bar[noisy]),
        "rho_max_mean_clean": mean(rho_max[clean]),
        "rho_max_mean_noisy": mean(rho_max[noisy]),
        "rho_under_min": float(min(rho.min(), 0.0)),
    }


def _same(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


_values = st.one_of(
    st.floats(-50, 50, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300]),
)
_extremes = st.one_of(_values, st.sampled_from([math.nan, math.inf, -math.inf]))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 12),
    m=st.integers(1, 3),
    data=st.data(),
)
def test_step_metrics_equal_the_numpy_formulas(n, m, data):
    """Counts exactly; maxima, minima and the mean of gamma exactly (NaN propagating as NumPy's); the losses' means
    to 1e-12 (the reference's loss formula is written differently from the kernels' logistic loss)."""
    f = data.draw(hnp.arrays(np.float64, n, elements=_values))
    y = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    y_obs = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    gamma = data.draw(hnp.arrays(np.float64, (2, m), elements=_extremes))
    rho = data.draw(hnp.arrays(np.float64, (2, m, n), elements=_extremes))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the means of gamma and rho: NaN, no warning
        got = step_metrics(f, y, y_obs, gamma, rho)
        exp = _numpy_metrics(f, y, y_obs, gamma, rho)
        part = step_metrics(f, y, y_obs, gamma, rho, ("train_acc_noisy", "rho_bar_max_clean", "loss_noisy"))
    assert set(got) == set(exp) | {"test_acc"} == set(HISTORY_COLUMNS) - {"step"}
    for col, value in exp.items():
        rel = 1e-12 if col.startswith("loss") else 0.0
        assert _same(got[col], value, rel), (col, got[col], value)
    # a subset of the columns gives the same values (the kernel computes all of them anyway)
    assert set(part) == {"loss", "train_acc_noisy", "rho_bar_max_clean", "loss_noisy"}
    for col in part:
        assert _same(part[col], got[col], 0.0), col


def test_the_loss_column_is_the_kernels_logistic_loss_bit_for_bit():
    """The mean training loss: the kernels' per-sample logistic loss (lnref.model.metrics.sample_losses), then
    NumPy's sum, exactly as before the counts moved into a kernel."""
    from lnref.model.metrics import sample_losses

    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 20, 129, 300):  # NumPy's pairwise sum changes its blocking at 8 and 128
        f, y_obs = rng.normal(size=n) * 5, np.sign(rng.normal(size=n))
        got = step_metrics(f, y_obs, y_obs, np.zeros((2, 1)), np.zeros((2, 1, n)), ("loss",))["loss"]
        assert got == float(sample_losses(y_obs * f).sum()) / n
