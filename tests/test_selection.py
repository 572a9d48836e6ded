"""Selection algorithms (Config.algorithm 'select_retrain', 'truncated_gce', 'coteaching'; SPEC.md section 9,
"Selection algorithms"): both engines agree, resume is bit-identical, the masked mean is the naive gradient on S,
each reduces to plain GD where it should, and bad input is refused."""

import numpy as np
import pytest

import lnref
import naive
from lnref.config import ConfigError
from lnref.data import init_weights, stream
from lnref.training.runs import load_checkpoint, save_checkpoint
from lnref.training.stages import small_loss_selection

# a run with a Stage I and mislabelled samples memorised later (T1 > 0, masks that drop samples)
BASE = dict(n=30, d=400, m=4, tau=0.2, mu_norm=2.0, sigma_p=0.3, eta=0.2, n_test=60, seed=2)  # T1 = 3, T2 = 59

ALGOS = {
    "select_T1_continue": dict(algorithm="select_retrain"),
    "select_rank_retrain": dict(algorithm="select_retrain", select_rule="rank", select_at=40, select_then="retrain"),
    "truncated_gce": dict(algorithm="truncated_gce", loss="gce", trunc_start=20, trunc_every=10),
    "coteaching": dict(algorithm="coteaching"),
}


def _cfg(name, **kw):
    return lnref.Config(**{**BASE, **ALGOS[name], **kw})


@pytest.mark.parametrize("name", list(ALGOS))
def test_engines_agree_over_1000_steps(name):
    runs = {
        eng: lnref.train(_cfg(name, engine=eng, steps=1000, log_every=100), threads=1)
        for eng in ("weights", "coefficients")
    }
    a, b = runs["weights"], runs["coefficients"]
    np.testing.assert_allclose(b.gamma, a.gamma, rtol=1e-10, atol=1e-10 * np.abs(a.gamma).max())
    np.testing.assert_allclose(b.rho, a.rho, rtol=1e-10, atol=1e-10 * np.abs(a.rho).max())
    np.testing.assert_allclose(
        b.trace["margin"], a.trace["margin"], rtol=1e-10, atol=1e-10 * np.abs(a.trace["margin"]).max()
    )
    for key in ("mask", "mask_2"):
        if key in a.trace:
            np.testing.assert_array_equal(b.trace[key], a.trace[key], err_msg=key)
    assert (a.trace["mask"] == 0.0).any(), "the test needs a run whose mask drops samples"
    if name == "coteaching":
        np.testing.assert_allclose(
            b.trace["gamma_2"], a.trace["gamma_2"], rtol=1e-10, atol=1e-10 * np.abs(a.trace["gamma_2"]).max()
        )
        np.testing.assert_allclose(
            b.trace["rho_2"], a.trace["rho_2"], rtol=1e-10, atol=1e-10 * np.abs(a.trace["rho_2"]).max()
        )
        assert not np.array_equal(a.trace["mask"], a.trace["mask_2"])
    if name.startswith("select"):
        assert np.isfinite(a.history["select_step"][-1])


class Interrupt(Exception):
    pass


def _interrupted(cfg, after, every, folder):
    """Run until the ``after``-th checkpoint (written to a file, as the CLI does), stop as a kill would, and
    return that checkpoint read back."""
    seen = []

    def keep(state):
        seen.append(state["step"])
        save_checkpoint(folder / f"c{len(seen)}.npz", state)
        if len(seen) == after:
            raise Interrupt

    with pytest.raises(Interrupt):
        lnref.train(cfg, threads=1, checkpoint_every=every, on_checkpoint=keep)
    return load_checkpoint(folder / f"c{after}.npz")


@pytest.mark.parametrize(
    "name,engine,after",
    [
        ("select_T1_continue", "coefficients", 1),
        ("select_rank_retrain", "weights", 1),
        ("select_rank_retrain", "coefficients", 3),
        ("truncated_gce", "coefficients", 2),
        ("coteaching", "weights", 2),
        ("coteaching", "coefficients", 1),
    ],
)
def test_resume_is_bit_identical(tmp_path, name, engine, after):
    cfg = _cfg(name, engine=engine, steps=120, log_every=5)
    full = lnref.train(cfg, threads=1)
    state = _interrupted(cfg, after, 20, tmp_path)
    assert 0 < state["step"] < cfg.steps and "selection" in state
    resumed = lnref.train(cfg, threads=1, resume=state)
    np.testing.assert_array_equal(resumed.gamma, full.gamma)
    np.testing.assert_array_equal(resumed.rho, full.rho)
    assert resumed.history.keys() == full.history.keys() and resumed.trace.keys() == full.trace.keys()
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k], err_msg=k)
    for k in full.trace:
        np.testing.assert_array_equal(resumed.trace[k], full.trace[k], err_msg=k)


def test_resume_refuses_a_checkpoint_without_the_selection_state(tmp_path):
    cfg = _cfg("coteaching", engine="coefficients", steps=40, log_every=5)
    state = {}

    def keep(s):
        state.update(s)
        raise Interrupt

    with pytest.raises(Interrupt):
        lnref.train(cfg, threads=1, checkpoint_every=10, on_checkpoint=keep)
    state.pop("selection")
    with pytest.raises(ConfigError, match="no selection state"):
        lnref.train(cfg, threads=1, resume=state)


def test_masked_mean_is_the_naive_gradient_on_S():
    """select_rule='rank' at step 0: one GD step on (1/|S|) sum_{i in S} l(y_obs_i f_i) (naive float loops)."""
    cfg = lnref.Config(
        n=8,
        d=30,
        m=2,
        tau=0.25,
        steps=1,
        log_every=1,
        n_test=0,
        seed=5,
        algorithm="select_retrain",
        select_at=0,
        select_rule="rank",
        forget_rate=0.4,
    )
    r = lnref.train(cfg, threads=1)
    S = r.trace["mask"][0] > 0
    assert S.sum() == int(0.6 * 8) and not S.all()
    d = r.data
    W1 = r.W0 - cfg.eta * naive.gradient(r.W0, d.mu, d.xi[S], d.y[S], d.y_obs[S], cfg.q)
    np.testing.assert_allclose(r.W, W1, rtol=1e-12, atol=1e-14)
    # the selected samples are the ones of largest margin at step 0
    order = np.argsort(-r.trace["margin"][0], kind="stable")
    assert set(np.flatnonzero(S)) == set(order[: S.sum()])


def test_select_retrain_is_gd_until_T1_and_scores_the_selection():
    cfg = _cfg("select_T1_continue", engine="coefficients", steps=200, log_every=1)
    r = lnref.train(cfg, threads=1)
    gd = lnref.train(cfg.replace(algorithm="gd"), threads=1)
    t1 = lnref.training.stages.detect_stages(gd).t1
    assert t1 is not None and t1 > 0
    assert r.history["select_step"][-1] == t1
    i = int(np.flatnonzero(r.history["step"] == t1)[0])
    np.testing.assert_array_equal(r.trace["rho"][: i + 1], gd.trace["rho"][: i + 1])  # bit for bit before selecting
    sel = small_loss_selection(gd).at(t1)
    assert r.history["selected"][i] == sel["selected"]
    assert r.history["select_precision"][i] == sel["precision"] and r.history["select_recall"][i] == sel["recall"]
    np.testing.assert_array_equal(r.trace["mask"][i] > 0, gd.trace["margin"][i] > 0)
    assert np.isnan(r.history["select_step"][:i]).all()
    assert not np.array_equal(r.trace["rho"][-1], gd.trace["rho"][-1])


def test_retrain_restarts_from_W0():
    cfg = _cfg("select_rank_retrain", engine="weights", steps=60, log_every=1)
    r = lnref.train(cfg, threads=1)
    i = int(np.flatnonzero(r.history["step"] == 41)[0])
    # one step after the restart the coefficients are those of a single step from zero
    assert np.abs(r.trace["gamma"][i]).max() < np.abs(r.trace["gamma"][i - 1]).max()
    cont = lnref.train(cfg.replace(select_then="continue"), threads=1)
    np.testing.assert_array_equal(cont.trace["mask"][i], r.trace["mask"][i])
    one = lnref.train(cfg.replace(select_at=0, steps=1), threads=1, W0=r.W0)
    mask0 = one.trace["mask"][0]
    if np.array_equal(mask0, r.trace["mask"][i]):
        np.testing.assert_array_equal(r.trace["gamma"][i], one.gamma)


def test_truncated_gce_before_its_first_refresh_is_gce_and_then_masks_by_k():
    cfg = _cfg("truncated_gce", engine="coefficients", steps=60, log_every=1)
    r = lnref.train(cfg, threads=1)
    plain = lnref.train(cfg.replace(algorithm="gd"), threads=1)
    np.testing.assert_array_equal(r.trace["rho"][:21], plain.trace["rho"][:21])
    assert (r.trace["mask"][:20] == 1.0).all()
    s = 1.0 / (1.0 + np.exp(-r.trace["margin"]))
    for t in (20, 30, 40, 50):
        np.testing.assert_array_equal(r.trace["mask"][t], (s[t] > cfg.trunc_k).astype(float), err_msg=str(t))
        np.testing.assert_array_equal(r.trace["mask"][t : t + 10], np.repeat(r.trace["mask"][t][None], 10, 0))
    never = lnref.train(cfg.replace(trunc_start=cfg.steps + 1), threads=1)
    np.testing.assert_array_equal(never.rho, plain.rho)


def test_coteaching_with_forget_rate_0_is_two_gd_runs():
    cfg = _cfg("coteaching", engine="weights", steps=30, log_every=10, forget_rate=0.0)
    r = lnref.train(cfg, threads=1)
    gd = lnref.train(cfg.replace(algorithm="gd"), threads=1)
    np.testing.assert_array_equal(r.W, gd.W)
    W2 = init_weights(cfg, stream(cfg.seed, "coteach_init"))
    gd2 = lnref.train(cfg.replace(algorithm="gd"), threads=1, W0=W2)
    np.testing.assert_array_equal(r.trace["gamma_2"][-1], gd2.gamma)
    np.testing.assert_array_equal(r.trace["rho_2"][-1], gd2.rho)
    np.testing.assert_array_equal(r.history["test_acc_2"], gd2.history["test_acc"])


def test_coteaching_ramps_the_forget_rate():
    cfg = _cfg("coteaching", engine="coefficients", steps=20, log_every=1, coteach_tk=10, forget_rate=0.3)
    r = lnref.train(cfg, threads=1)
    t = r.history["step"]
    np.testing.assert_allclose(r.history["forget_rate"], 0.3 * np.minimum(t / 10, 1.0))
    np.testing.assert_array_equal(r.history["selected"], [int((1 - 0.3 * min(s / 10, 1.0)) * cfg.n) for s in t])


@pytest.mark.parametrize("name", list(ALGOS))
def test_gram_sampling_runs_every_selection_algorithm(name):
    cfg = _cfg(name, engine="coefficients", sampling="gram", steps=80, log_every=20, d=10**6)
    r = lnref.train(cfg, threads=1)
    assert np.isfinite(r.history["test_acc"]).all() and r.trace["mask"].shape == (5, cfg.n)
    if name == "coteaching":
        assert np.isfinite(r.history["test_acc_2"]).all()
        assert not np.array_equal(r.trace["gamma_2"], r.trace["gamma"])
        fresh = lnref.train(cfg.replace(virtual_test="fresh"), threads=1)
        assert np.isfinite(fresh.history["test_acc_2"]).all()


def test_coteaching_second_gram_network_uses_the_same_data():
    from lnref.data.gram import sample_gram
    from lnref.training.selection import second_network

    cfg = _cfg("coteaching", engine="coefficients", sampling="gram", d=5000)
    data = sample_gram(cfg)
    data2, _, _ = second_network(cfg, data, None)
    assert data2.stats.G is data.stats.G and data2.y_obs is data.y_obs
    assert not np.array_equal(data2.stats.P0, data.stats.P0)
    np.testing.assert_array_equal(data2.test.Gt, data.test.Gt)
    # the second filters have the law of the first: <w_f, xi_i> has variance sigma0^2 ||xi_i||^2
    z = data2.stats.P0 / (cfg.sigma0 * np.sqrt(data.stats.xi_sq))
    assert abs(z.var() - 1.0) < 0.2


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(algorithm="select_retrain", select_at="T2"), "select_at='T2' is not allowed"),
        (dict(algorithm="select_retrain", select_at=-1), "select_at=-1 is not allowed"),
        (dict(algorithm="select_retrain", select_at=500, steps=100), "select_at=500 is not allowed"),
        (dict(algorithm="select_retrain", select_at=2.5), "select_at=2.5 is not allowed"),
        (dict(select_rule="loss"), "select_rule='loss' is not allowed"),
        (dict(select_then="restart"), "select_then='restart' is not allowed"),
        (dict(forget_rate=1.0), "forget_rate=1.0 is not allowed"),
        (dict(forget_rate=-0.1), "forget_rate=-0.1 is not allowed"),
        (dict(trunc_k=0.0), "trunc_k=0.0 is not allowed"),
        (dict(trunc_k=1.0), "trunc_k=1.0 is not allowed"),
        (dict(trunc_every=0), "trunc_every=0 is not allowed"),
        (dict(trunc_start=-1), "trunc_start=-1 is not allowed"),
        (dict(coteach_tk=0), "coteach_tk=0 is not allowed"),
        (dict(algorithm="truncated_gce"), "needs|set loss='gce'"),
        (dict(algorithm="coteaching", sampling="gram", engine="coefficients", init="torch"), "init='torch'"),
        (dict(algorithm="select"), "algorithm='select' is not allowed"),
    ],
)
def test_bad_selection_fields_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        lnref.Config(**kw)


def test_select_at_accepts_T1_an_int_and_its_text():
    assert lnref.Config(algorithm="select_retrain").select_at == "T1"
    assert lnref.Config(algorithm="select_retrain", select_at="40").select_at == 40
    cfg = lnref.Config(algorithm="select_retrain", select_at=40)
    assert lnref.Config.from_dict(cfg.to_dict()) == cfg
    assert lnref.Config(tau_plus=0.1, tau_minus=0.3).selection_rate == pytest.approx(0.2)
    assert lnref.Config(tau=0.1, forget_rate=0.3).selection_rate == 0.3


@pytest.mark.parametrize("name", list(ALGOS))
def test_sweep_row_is_trains_final_row(name):
    """The sweep worker runs the same loop, so a selection algorithm's sweep row is train's final row."""
    from lnref.sweeps.worker import final_run

    cfg = _cfg(name, engine="coefficients", steps=80, log_every=20)
    row = final_run(cfg).row
    h = lnref.train(cfg, threads=1).history
    for key in ("loss", "train_acc", "test_acc"):
        assert row[key] == h[key][-1], key
