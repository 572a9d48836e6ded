"""lnref.training.stages: exact unit tests on hand-built margin traces, then Han's two stages over several seeds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lnref
from lnref.training.stages import LOG2, detect_stages, early_stopping, first_fit_steps, small_loss_selection, stages_of

# ------------------------------------------------------------------------------------------- hand-built traces
# 3 clean samples (0, 1, 2) and 2 mislabelled (3, 4); rows are logged steps 0, 1, 2, 5, 10, 20
STEPS = np.array([0, 1, 2, 5, 10, 20])
CLEAN = np.array([True, True, True, False, False])
MARGIN = np.array(
    [
        [-1.0, 0.5, -0.2, 0.3, -0.1],  # 0: random init, one mislabelled sample fitted
        [0.2, 0.6, -0.1, -0.2, -0.3],  # 1: clean 2 not yet fitted
        [0.4, 0.8, 0.1, -0.4, -0.5],  # 2: Stage I done: clean all fitted, no mislabelled fitted  -> t1 = 2
        [0.6, 1.0, 0.3, -0.1, -0.6],  # 5: still Stage I
        [0.8, 1.2, 0.5, 0.2, -0.2],  # 10: first mislabelled fitted -> first_noisy_fit = 10
        [1.0, 1.4, 0.7, 0.9, 0.4],  # 20: all fitted -> t2 = 20
    ]
)


def test_exact_stages_on_a_hand_built_trace():
    s = detect_stages(MARGIN, CLEAN, STEPS)
    assert (s.t1, s.first_noisy_fit, s.t2) == (2, 10, 20)
    assert s.two_stages
    assert (s.n_clean, s.n_noisy) == (3, 2)
    assert s.clean_fitted.tolist() == [1, 2, 3, 3, 3, 3]
    assert s.noisy_fitted.tolist() == [1, 0, 0, 0, 1, 2]


def test_a_mislabelled_fit_at_initialisation_does_not_start_stage_two():
    # row 0 has a mislabelled sample fitted, but that is before t1: Stage II starts only after t1
    s = detect_stages(MARGIN, CLEAN, STEPS)
    assert s.first_noisy_fit > s.t1


def test_no_t1_when_clean_and_mislabelled_are_fitted_together():
    m = MARGIN.copy()
    m[2:4, 3] = 0.5  # mislabelled sample 3 fitted whenever all clean ones are
    m[1, 2] = -0.1
    s = detect_stages(m, CLEAN, STEPS)
    assert s.t1 is None and s.first_noisy_fit is None and s.t2 is None and not s.two_stages


def test_no_stage_two_without_mislabelled_samples():
    s = detect_stages(MARGIN[:, :3], CLEAN[:3], STEPS)
    assert s.t1 == 2 and s.first_noisy_fit is None and s.t2 is None and s.n_noisy == 0


def test_t2_none_when_some_mislabelled_sample_is_never_fitted():
    m = MARGIN.copy()
    m[5, 4] = -0.1
    s = detect_stages(m, CLEAN, STEPS)
    assert (s.t1, s.first_noisy_fit, s.t2) == (2, 10, None)


def test_margin_exactly_zero_is_not_fitted():
    m = MARGIN.copy()
    m[2, 2] = 0.0  # clean sample 2 sits on the boundary at step 2: not fitted, so t1 moves to 5
    assert detect_stages(m, CLEAN, STEPS).t1 == 5


def test_robust_fraction_tolerates_stragglers():
    # 100 clean, 20 mislabelled; one clean straggler is never fitted, one mislabelled is fitted throughout
    L, rng = 5, np.random.default_rng(0)
    clean = np.r_[np.ones(100, bool), np.zeros(20, bool)]
    m = np.empty((L, 120))
    m[:, :100] = rng.uniform(0.1, 1, (L, 100))
    m[:, 100:] = -rng.uniform(0.1, 1, (L, 20))
    m[:, 0] = -1.0  # clean straggler
    m[:, 100] = 1.0  # mislabelled sample fitted from the start
    m[3:, 101:] = 1.0  # the rest fitted at step 3
    assert detect_stages(m, clean).t1 is None
    s = detect_stages(m, clean, fraction=0.95)  # >= 95 of 100 clean fitted, <= 1 of 20 mislabelled fitted
    assert (s.t1, s.first_noisy_fit, s.t2) == (0, 3, 3)


@pytest.mark.parametrize("bad", [0.5, 0.0, 1.01, float("nan"), "1", True])
def test_bad_fraction_is_refused(bad):
    with pytest.raises(lnref.ConfigError, match="fraction"):
        detect_stages(MARGIN, CLEAN, STEPS, fraction=bad)


def test_bad_inputs_are_refused():
    with pytest.raises(lnref.ConfigError, match="clean"):
        detect_stages(MARGIN, CLEAN[:4], STEPS)
    with pytest.raises(lnref.ConfigError, match="clean"):
        detect_stages(MARGIN, CLEAN.astype(int), STEPS)
    with pytest.raises(lnref.ConfigError, match="steps"):
        detect_stages(MARGIN, CLEAN, STEPS[::-1])
    with pytest.raises(lnref.ConfigError, match="margin"):
        detect_stages(MARGIN[0], CLEAN, STEPS)
    with pytest.raises(lnref.ConfigError, match="threshold"):
        small_loss_selection(MARGIN, CLEAN, STEPS, threshold=-1.0)


def test_first_fit_steps():
    assert first_fit_steps(MARGIN, CLEAN, STEPS).tolist() == [1, 0, 2, 10, 20]
    m = MARGIN.copy()
    m[5, 4] = -1.0
    assert first_fit_steps(m, CLEAN, STEPS)[4] == -1


def test_small_loss_selection_on_a_hand_built_trace():
    sel = small_loss_selection(MARGIN, CLEAN, STEPS)
    assert sel.selected.tolist() == [2, 2, 3, 3, 4, 5]
    assert sel.true_positives.tolist() == [1, 2, 3, 3, 3, 3]
    np.testing.assert_array_equal(sel.precision, [0.5, 1.0, 1.0, 1.0, 0.75, 0.6])
    np.testing.assert_array_equal(sel.recall, [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(sel.noisy_rejected, [0.5, 1.0, 1.0, 1.0, 0.5, 0.0])
    assert sel.at(2) == {"step": 2, "selected": 3, "precision": 1.0, "recall": 1.0, "noisy_rejected": 1.0}
    with pytest.raises(lnref.ConfigError, match="step=3"):
        sel.at(3)


def test_selection_precision_is_nan_when_nothing_is_selected():
    sel = small_loss_selection(-np.ones((2, 4)), np.array([True, True, False, False]))
    assert np.all(np.isnan(sel.precision)) and np.all(sel.recall == 0.0) and np.all(sel.noisy_rejected == 1.0)


@settings(deadline=None, max_examples=40)
@given(st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=12), st.floats(0.05, 3.0))
def test_selection_at_any_threshold_is_the_loss_below_it(margins, threshold):
    """Selection = {i : l(margin_i) < threshold}; at log 2 it is {margin > 0} (SPEC.md identity 7)."""
    m = np.array([margins])
    clean = np.ones(m.shape[1], bool)
    losses = np.log1p(np.exp(-m[0]))
    sel = small_loss_selection(m, clean, threshold=threshold)
    expect = np.sum(lnref.model.metrics.sample_losses(m[0]) < threshold)
    assert sel.selected[0] == expect
    # away from the rounding of l near the threshold, the NumPy loss agrees
    if np.all(np.abs(losses - threshold) > 1e-9):
        assert expect == np.sum(losses < threshold)
    assert small_loss_selection(m, clean, threshold=LOG2).selected[0] == np.sum(m[0] > 0)


def test_early_stopping():
    acc = np.array([0.5, 0.9, 0.95, 0.95, 0.8, 0.7])
    es = early_stopping(STEPS, acc, t1=3)
    assert (es.best_step, es.best_accuracy) == (2, 0.95)  # earliest of the ties
    assert (es.final_step, es.final_accuracy) == (20, 0.7)
    assert (es.stop_step, es.stop_accuracy) == (5, 0.95)  # first logged step >= t1
    assert es.gain == pytest.approx(0.25)
    none = early_stopping(STEPS, acc)
    assert none.stop_step is None and math.isnan(none.stop_accuracy)
    with pytest.raises(lnref.ConfigError, match="NaN"):
        early_stopping(STEPS, np.full(6, np.nan))
    with pytest.raises(lnref.ConfigError, match="same"):
        early_stopping(STEPS, acc[:3])


# ------------------------------------------------------------------------------------------- Han's two stages
# Reduced sizes in Han's regime: n=60, d=600, m=6, sigma_p=0.5, ||mu||=4 (n SNR^2 = 6.4 as in the default of
# lnref.reproduce.han2025), 4 seeds.  Han's Stage I time scale n m/(eta sigma_p^2 d) = 4.8.
SEEDS = range(4)


def _cfg(seed, tau=0.2):
    return lnref.Config(
        n=60,
        d=600,
        m=6,
        sigma_p=0.5,
        eta=0.5,
        mu_norm=4.0,
        tau=tau,
        flips="exact",
        steps=120,
        log_every=1,
        n_test=300,
        seed=seed,
    )


@pytest.fixture(scope="module")
def noisy_runs():
    out = []
    for seed in SEEDS:
        cfg = _cfg(seed)
        data = lnref.make_data(cfg)
        res = lnref.train(
            cfg, data, threads=1, keep_rho=False, extra_tests={"spurious": lnref.make_test(cfg, data, kind="spurious")}
        )
        out.append(res)
    return out


def test_two_stages_in_order_with_label_noise(noisy_runs):
    # claim: in every one of the 4 seeds, T1 exists and precedes the first fit of a mislabelled sample,
    # and all mislabelled samples are fitted by the end (T2)
    for res in noisy_runs:
        s = stages_of(res)
        assert s.t1 is not None and s.two_stages, s.summary()
        assert s.t2 is not None and s.first_noisy_fit <= s.t2
        # clean samples stay fitted after t1
        assert np.all(s.clean_fitted[res.history["step"] >= s.t1] == s.n_clean)


def test_no_stage_two_without_label_noise():
    for seed in SEEDS:
        res = lnref.train(_cfg(seed, tau=0.0).replace(n_test=0), threads=1, keep_rho=False)
        s = stages_of(res)
        assert s.n_noisy == 0 and s.t1 is not None and s.first_noisy_fit is None and s.t2 is None


def test_small_loss_selection_separates_clean_from_mislabelled_in_stage_one(noisy_runs):
    # at the logged step nearest Han's time scale n m/(eta sigma_p^2 d) (not the detected t1, where the
    # separation holds by definition): precision >= 0.95 and >= 90% of mislabelled rejected, in every seed
    for res in noisy_runs:
        cfg = res.config
        t_theory = round(cfg.n * cfg.m / (cfg.eta * cfg.sigma_p**2 * cfg.d))
        at = small_loss_selection(res).at(t_theory)
        assert at["precision"] >= 0.95 and at["noisy_rejected"] >= 0.9, at


def test_spurious_test_accuracy_falls_in_stage_two_while_iid_does_not(noisy_runs):
    # SPEC.md section 6: spurious test error rises to at least 0.5 min(tau+, tau-) = 0.1 by the end of Stage II;
    # iid accuracy falls by less than 0.05 from its best; margins hold in each of the 4 seeds
    for res in noisy_runs:
        h, s = res.history, stages_of(res)
        sp = early_stopping(h["step"], h["test_acc_spurious"], s.t1)
        iid = early_stopping(h["step"], h["test_acc"], s.t1)
        assert 1 - sp.final_accuracy >= 0.5 * min(res.config.tau_plus, res.config.tau_minus)
        assert sp.stop_accuracy - sp.final_accuracy > 0.05
        assert sp.best_step < s.first_noisy_fit  # early stopping: best in Stage I
        assert iid.gain < 0.05


def test_one_name_per_boundary_stage_two_starts_at_t1():
    """Issue 23 item 2: T1 starts Stage II; the first fit of a mislabelled sample (inside Stage II) has its own
    name, and the old name still reads it with a warning."""
    s = detect_stages(MARGIN, CLEAN, STEPS)
    summary = s.summary()
    assert summary["t1"] == 2 and summary["first_noisy_fit"] == 10 and summary["t2"] == 20
    assert "stage2_start" not in summary
    with pytest.warns(DeprecationWarning, match="first_noisy_fit"):
        assert s.stage2_start == 10
