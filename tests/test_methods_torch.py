"""Every training method of lnref (SPEC.md section 9) against an INDEPENDENT autograd computation: the two-logit
softmax form as the official codes write it, in torch float64, 100 GD steps, to 1e-10 (relative, normwise).

The official codes: GCE and SCE, HanxunH/Active-Passive-Losses ``loss.py`` (torch; p clamped to [1e-7, 1], SCE's
one-hot clamped to 1e-4 so that A = ln 1e-4); the bootstraps and the corrections, giorgiop/loss-correction
``loss.py`` (Keras: p renormalised and clipped to [K.epsilon(), 1 - K.epsilon()] = [1e-7, 1 - 1e-7]; hard bootstrap
written in the same style with onehot(argmax p)); label smoothing, torch's ``cross_entropy(label_smoothing=eps)``;
ELR, shengliu66/ELR ``ELR/model/loss.py`` (target buffer, zeros at start, updated before the loss from the detached
clamped p, renormalised).  Nothing here calls lnref to compute a loss, a logit or a gradient: lnref gives only the
data and W0, and the run compared against.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch: pip install torch")

import lnref  # noqa: E402
from lnref.config import LOSSES  # noqa: E402

TOL = 1e-10
STEPS = 100


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: torch's thread pool costs more than the work (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ the network (SPEC.md section 2), two logits
def two_logits(W, signal, noise, q):
    """(n, 2) logits (F_{+1}, F_{-1}): F_j(x_i) = (1/m) sum_r [sigma(<w_jr, y_i mu>) + sigma(<w_jr, xi_i>)],
    sigma(z) = max(0, z)^q with sigma'(0) = 0."""
    m = W.shape[1]

    def act(z):
        return torch.where(z > 0, z.clamp(min=0) ** q, torch.zeros_like(z))

    F = act(torch.einsum("jrd,nd->njr", W, signal)) + act(torch.einsum("jrd,nd->njr", W, noise))
    return F.sum(dim=2) / m


# ------------------------------------------------------------------ the losses, as the official codes write them
def keras_probs(logits):
    """softmax, renormalised and clipped to [1e-7, 1 - 1e-7] as loss-correction's Keras losses do."""
    y_pred = torch.softmax(logits, dim=1)
    y_pred = y_pred / y_pred.sum(dim=-1, keepdim=True)
    return torch.clamp(y_pred, 1e-7, 1.0 - 1e-7)


class ELRLoss(torch.nn.Module):
    """shengliu66/ELR ``elr_loss``: a (n, classes) target buffer, zeros at start, updated before the loss."""

    def __init__(self, num_examp, num_classes, lam, beta):
        super().__init__()
        self.target = torch.zeros(num_examp, num_classes, dtype=torch.float64)
        self.lam, self.beta = lam, beta

    def forward(self, index, output, label, update=True):
        y_pred = torch.softmax(output, dim=1)
        y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
        y_pred_ = y_pred.data.detach()
        if update:  # the official code updates at every call (once per epoch); lnref every `period` GD steps
            self.target[index] = self.beta * self.target[index] + (1 - self.beta) * (
                y_pred_ / y_pred_.sum(dim=1, keepdim=True)
            )
        ce_loss = torch.nn.functional.cross_entropy(output, label)
        elr_reg = (1 - (self.target[index] * y_pred).sum(dim=1)).log().mean()
        return ce_loss + self.lam * elr_reg


def official_loss(name, p, logits, labels, elr=None, update=True):
    """The mean loss of method ``name`` with parameters ``p`` on logits (n, 2) and labels (n,) in {0, 1}."""
    F = torch.nn.functional
    onehot = F.one_hot(labels, 2).to(torch.float64)
    if name == "logistic":
        return F.cross_entropy(logits, labels)
    if name == "gce":
        pred = torch.clamp(torch.softmax(logits, dim=1), min=1e-7, max=1.0)
        return ((1.0 - torch.pow(torch.sum(onehot * pred, dim=1), p["q"])) / p["q"]).mean()
    if name == "sce":  # the authors' code (YisenWang/symmetric_cross_entropy_for_noisy_labels, loss.py 9-21)
        pred = torch.softmax(logits, dim=1)
        y_pred_1 = torch.clamp(pred, min=1e-7, max=1.0)
        y_true_2 = torch.clamp(onehot, min=math.exp(p["A"]), max=1.0)  # exp(ln 1e-4) = 1e-4 by default
        ce = torch.mean(-torch.sum(onehot * torch.log(y_pred_1), dim=-1))
        rce = torch.mean(-torch.sum(pred * torch.log(y_true_2), dim=-1))
        return p["alpha"] * ce + p["beta"] * rce
    if name == "label_smoothing":
        return F.cross_entropy(logits, labels, label_smoothing=p["eps"])
    if name == "bootstrap_soft":
        y_pred = keras_probs(logits)
        return (-torch.sum((p["beta"] * onehot + (1.0 - p["beta"]) * y_pred) * torch.log(y_pred), dim=-1)).mean()
    if name == "bootstrap_hard":
        y_pred = keras_probs(logits)
        pred_labels = F.one_hot(torch.argmax(y_pred, 1), 2).to(torch.float64)
        return (-torch.sum((p["beta"] * onehot + (1.0 - p["beta"]) * pred_labels) * torch.log(y_pred), dim=-1)).mean()
    tau = p.get("tau")
    P = torch.tensor([[1 - tau, tau], [tau, 1 - tau]], dtype=torch.float64) if tau is not None else None
    if name == "forward":
        y_pred = keras_probs(logits)
        return (-torch.sum(onehot * torch.log(y_pred @ P), dim=-1)).mean()
    if name == "backward":
        y_pred = keras_probs(logits)
        return (-torch.sum((onehot @ torch.linalg.inv(P)) * torch.log(y_pred), dim=-1)).mean()
    if name == "elr":
        return elr(torch.arange(labels.shape[0]), logits, labels, update)
    raise AssertionError(name)


def torch_run(cfg, data, W0, loss_fn=official_loss):
    """GD with autograd for cfg.steps steps; (outputs f (steps + 1, n), ELR targets (steps + 1, 2, n) or None,
    W (steps + 1, 2, m, d))."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    W = t(W0).clone().requires_grad_(True)
    signal = t(data.y)[:, None] * t(data.mu)[None, :]
    noise = t(data.xi)
    labels = torch.as_tensor(np.where(data.y_obs > 0, 0, 1))  # class +1 is logit 0
    p = dict(cfg.loss_params)
    elr = ELRLoss(cfg.n, 2, p["lam"], p["beta"]) if cfg.loss == "elr" else None
    fs, targets, Ws = [], [], []
    for step in range(cfg.steps + 1):
        logits = two_logits(W, signal, noise, cfg.q)
        fs.append((logits[:, 0] - logits[:, 1]).detach().numpy().copy())
        Ws.append(W.detach().numpy().copy())
        if elr is not None:
            targets.append(elr.target.detach().numpy().T.copy())  # (2, n), row 0: class +1
        if step == cfg.steps:
            break
        update = elr is not None and step % p["period"] == 0
        loss = loss_fn(cfg.loss, p, logits, labels, elr, update)
        (G,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= cfg.eta * G
    return np.array(fs), (np.array(targets) if elr is not None else None), np.array(Ws)


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


BASE = dict(
    n=20,
    d=60,
    m=4,
    steps=STEPS,
    log_every=1,
    n_test=0,
    tau=0.2,
    flips="exact",
    mu_norm=3.0,
    sigma_p=1.0,
    sigma0=0.05,
    eta=1.0,
    seed=0,
)
NONDEFAULT = {
    "gce": {"q": 0.4},
    "sce": {"alpha": 0.5, "beta": 0.4, "A": -4.0},
    "label_smoothing": {"eps": 0.4},
    "bootstrap_soft": {"beta": 0.3},
    "bootstrap_hard": {"beta": 0.5},
    "forward": {"tau": 0.35},
    "backward": {"tau": 0.1},
    "elr": {"lam": 0.5, "beta": 0.9, "period": 5},
}
CASES = (
    [(name, None, {}) for name in LOSSES]
    + [(name, NONDEFAULT[name], {}) for name in NONDEFAULT]
    + [
        ("elr", {"period": 3}, {"q": 2.0, "eta": 0.3}),
        ("gce", None, {"q": 2.0, "eta": 0.3}),
        # the clamps act: ELR's (|f| > ln 9999) by large steps, the 1e-7 clamps and clips (|f| > 16.1) from a
        # large initialisation (samples on both sides of the clip from step 0)
        ("elr", None, {"eta": 8.0}),
    ]
    + [
        (name, None, {"sigma0": 3.0, "eta": 0.2})
        for name in ("gce", "sce", "bootstrap_soft", "bootstrap_hard", "forward", "backward")
    ]
)


@pytest.mark.parametrize(
    "loss,params,extra",
    CASES,
    ids=[f"{n}-{'default' if p is None else 'custom'}{'-' + str(e) if e else ''}" for n, p, e in CASES],
)
def test_weight_engine_matches_the_official_two_logit_form(loss, params, extra):
    cfg = lnref.Config(**{**BASE, **extra}, loss=loss, loss_params=params)
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    r = lnref.train(cfg, data, W0, threads=1)
    assert r.steps_done == cfg.steps
    fs, targets, Ws = torch_run(cfg, data, W0)
    # outputs at every step (the trajectory), W at the end and at a few steps (reconstructed from the traced
    # coefficients, rounding ~1e-15), ELR's targets at every step
    f_lnref = r.trace["margin"] * data.y_obs
    for step in range(cfg.steps + 1):
        assert rel(fs[step], f_lnref[step]) <= TOL, (step, rel(fs[step], f_lnref[step]))
    assert rel(Ws[-1], r.W) <= TOL
    assert rel(Ws[-1] - W0, r.W - W0) <= TOL
    for step in (1, 10, 50):
        W_t = lnref.reconstruct(W0, r.trace["gamma"][step], r.trace["rho"][step], data)
        assert rel(Ws[step] - W0, W_t - W0) <= TOL, step
    if loss == "elr":
        for step in range(1, cfg.steps + 1):
            assert rel(targets[step], r.trace["target"][step]) <= TOL, step
        np.testing.assert_array_equal(r.trace["target"][0], 0.0)
    assert np.max(np.abs(r.W - W0)) > 0.1  # the run moves
    z = r.trace["margin"]
    if extra.get("eta") == 8.0:  # the case meant to exercise ELR's clamp does
        assert np.max(np.abs(z)) > math.log(9999) + 0.1
    if extra.get("sigma0") == 3.0:  # the cases meant to exercise the 1e-7 clamps have samples on both sides
        edge = math.log((1 - 1e-7) / 1e-7)
        assert z.min() < -edge - 0.1 and z.max() > edge + 0.1 and np.any(np.abs(z) < edge - 0.1)


def _detached_soft_bootstrap(name, p, logits, labels, elr=None, update=True):
    """A mistake: the soft bootstrap's target detached (it is then beta x CE, SPEC.md section 9)."""
    y_pred = keras_probs(logits)
    onehot = torch.nn.functional.one_hot(labels, 2).to(torch.float64)
    target = p["beta"] * onehot + (1.0 - p["beta"]) * y_pred.detach()
    return (-torch.sum(target * torch.log(y_pred), dim=-1)).mean()


def _elr_updated_after_the_loss(name, p, logits, labels, elr=None, update=True):
    """A mistake: ELR's target updated after the loss is formed (the loss uses the previous target)."""
    old = elr.target.clone()
    loss = official_loss(name, p, logits, labels, elr, update)
    if update:
        new = elr.target.clone()
        elr.target.copy_(old)
        loss = official_loss(name, p, logits, labels, elr, False)
        elr.target.copy_(new)
    return loss


@pytest.mark.parametrize(
    "loss,mistake", [("bootstrap_soft", _detached_soft_bootstrap), ("elr", _elr_updated_after_the_loss)]
)
def test_the_comparison_catches_a_mistake(loss, mistake):
    cfg = lnref.Config(**BASE, loss=loss)
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    r = lnref.train(cfg, data, W0, threads=1)
    _, _, Ws = torch_run(cfg, data, W0, loss_fn=mistake)
    assert rel(Ws[-1] - W0, r.W - W0) > 1e3 * TOL


# ------------------------------------------------------------------ the example (python -m lnref.examples.elr_torch)
def test_elr_example_matches_lnref(capsys):
    from lnref.examples import elr_torch

    assert elr_torch.main([]) == 0
    out = capsys.readouterr().out
    assert "tolerance 1e-10" in out and "measured max" in out and "matches lnref" in out, out
    assert elr_torch.main(["--period", "3", "--lam", "0.5", "--eta", "8", "--steps", "60"]) == 0


def test_elr_example_runs_as_a_module():
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-m", "lnref.examples.elr_torch", "--steps", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "verdict: this PyTorch ELR matches lnref" in out.stdout


def test_elr_example_catches_a_target_updated_after_the_loss(monkeypatch, capsys):
    from lnref.examples import elr_torch

    class Late(elr_torch.elr_loss):
        def forward(self, index, output, label, update=True):
            loss = super().forward(index, output, label, update=False)
            if update:
                super().forward(index, output, label, update=True)
            return loss

    monkeypatch.setattr(elr_torch, "elr_loss", Late)
    assert elr_torch.main(["--steps", "30"]) == 1
    assert "does NOT match" in capsys.readouterr().out


def test_elr_example_refuses_bad_parameters(capsys):
    from lnref.examples import elr_torch

    assert elr_torch.main(["--period", "0"]) == 2
    assert "loss_params.period=0" in capsys.readouterr().err
