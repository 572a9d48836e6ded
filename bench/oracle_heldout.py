"""Held-out judge of lnref's oracle: 50 realistic mistakes in three implementations the tests never use.

A PyTorch-style implementation (nn.Module, autograd, torch.optim) and a NumPy-style one (hand-written backward
pass over a flattened (2m, d) filter matrix), each with mistakes injected where people make them, and a NumPy
co-teaching (two networks ranking the samples by their losses, written from SPEC.md section 9).  Every run is
judged by ``lnref.testing.compare_trajectory`` at the float64 tier on fixtures that ``lnref export`` accepts.

Printed: caught (MISMATCH), right cause (the expected catalogue entry is named), wrong cause (an entry is named
and the expected one is not, or any entry is named for a mistake outside the catalogue), and whether correct
NumPy, PyTorch float64 and PyTorch float32 (float32 tier) implementations pass every fixture.

    python bench/oracle_heldout.py [-v]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import lnref
from lnref.oracle.cli import export_fixture
from lnref.testing import compare_trajectory, load_fixture

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


# ------------------------------------------------------------------------------------------ PyTorch style
def torch_run(fx, mistake=None, dtype="float64"):
    dt = getattr(torch, dtype)
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
    d, cfg = fx.data, fx.config
    m, q = fx.m, cfg.q
    y, y_obs, mu, xi = T(d.y), T(d.y_obs), T(d.mu), T(d.xi)
    W0 = T(fx.W0)
    if mistake == "torch_f32_inputs":  # torch.Tensor(x) is float32; .double() afterwards
        mu, xi, W0 = (torch.Tensor(np.asarray(a)).double() for a in (d.mu, d.xi, fx.W0))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.Parameter(W0.clone())
            if mistake == "torch_bias":
                self.b = torch.nn.Parameter(torch.zeros(2, m, 1, dtype=dt))

        def forward(self, labels_signal):
            x1 = labels_signal[:, None] * mu[None, :]
            x2 = xi * y[:, None] if mistake == "torch_noise_times_y" else xi
            W = self.W
            z1 = torch.einsum("jrd,nd->jrn", W.detach() if mistake == "torch_detached_signal" else W, x1)
            z2 = torch.einsum("jrd,nd->jrn", W, x2)
            if mistake == "torch_bias":
                z1, z2 = z1 + self.b, z2 + self.b
            act = (lambda z: torch.relu(z) ** q) if q != 1 else torch.relu
            if mistake == "torch_maximum_relu":
                act = lambda z: torch.maximum(z, torch.zeros_like(z))  # noqa: E731
            h = torch.stack([act(z1), act(z2)]).mean(0) if mistake == "torch_mean_patches" else act(z1) + act(z2)
            F = h.sum(1) if mistake == "torch_no_1_over_m" else h.mean(1)
            if mistake == "torch_half_not_1_over_m":
                F = h.sum(1) / 2
            return F[1] - F[0] if mistake == "torch_orientation" else F[0] - F[1]

    net = Net()
    wd = {"torch_weight_decay": 1e-4, "torch_weight_decay_big": 5e-3}.get(mistake, 0.0)
    mom = 0.9 if mistake == "torch_momentum" else 0.0
    lr = cfg.eta * (2.0 if mistake == "torch_lr_typo" else 1.0)
    opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=wd, momentum=mom)
    sched = None
    if mistake in ("torch_exp_lr", "torch_sched_early"):
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.98)
    elif mistake == "torch_cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=fx.total_steps)
    elif mistake == "torch_step_lr":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    elif mistake == "torch_invsqrt_lr":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / np.sqrt(1.0 + t))
    keep = {int(s) for s in fx.steps}
    Ws = {}
    y_work = y_obs.clone()
    for t in range(fx.total_steps + 1):
        if t in keep and mistake != "torch_ckpt_after_step":
            Ws[t] = net.W.detach().clone().numpy()
        if t == fx.total_steps and mistake != "torch_ckpt_after_step":
            break
        if fx.eps is None or mistake == "torch_eps_ignored":
            lab = y_obs
        elif mistake == "torch_eps_frozen":
            lab = T(fx.eps[0]) * y_obs
        elif mistake == "torch_eps_inplace":
            y_work.mul_(T(fx.eps[t]))
            lab = y_work
        else:
            lab = T(fx.eps[t]) * y_obs
        sig_lab = y_obs if mistake == "torch_signal_yobs" else y
        f = net(sig_lab)
        if mistake == "torch_bce_pm1":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(f, lab)
        elif mistake == "torch_true_labels":
            loss = torch.nn.functional.softplus(-y * f).mean()
        elif mistake == "torch_labels01":
            loss = torch.nn.functional.softplus(-((lab + 1) / 2) * f).mean()
        elif mistake == "torch_loss_sum":
            loss = torch.nn.functional.softplus(-lab * f).sum()
        else:
            loss = torch.nn.functional.softplus(-lab * f).mean()
        if mistake != "torch_no_zero_grad":
            opt.zero_grad()
        (-loss if mistake == "torch_ascent" else loss).backward()
        if mistake == "torch_grad_clip":
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.05)
        if mistake == "torch_sched_early":
            sched.step()  # before optimizer.step(): PyTorch warns
        opt.step()
        if sched is not None and mistake != "torch_sched_early":
            sched.step()
        if mistake == "torch_ckpt_after_step" and t in keep:
            Ws[t] = net.W.detach().clone().numpy()
    if mistake == "torch_export_flip":
        Ws = {t: w[::-1].copy() for t, w in Ws.items()}
    return Ws


# ------------------------------------------------------------------------------------------ NumPy style
def numpy_run(fx, mistake=None):
    d, cfg = fx.data, fx.config
    m, n, dim, q, eta = fx.m, fx.n, fx.d, cfg.q, cfg.eta
    sgn = np.repeat([1.0, -1.0], m)  # output sign of each of the 2m filters
    if mistake == "np_import_reshape":
        Wf = fx.W0.reshape(m, 2, dim).transpose(1, 0, 2).reshape(2 * m, dim).copy()
    else:
        Wf = fx.W0.reshape(2 * m, dim).copy()
    vel = np.zeros_like(Wf)
    keep = {int(s) for s in fx.steps}
    Ws = {}

    def export(Wf):
        if mistake == "np_export_reshape":
            return Wf.reshape(2, m, dim).transpose(1, 0, 2).reshape(2, m, dim).copy()
        return Wf.reshape(2, m, dim).copy()

    lab_acc = d.y_obs.copy()
    for t in range(fx.total_steps + 1):
        if t in keep:
            Ws[t] = export(Wf)
        if t == fx.total_steps:
            break
        if fx.eps is None:
            lab = d.y_obs
        elif mistake == "np_eps_next":
            lab = fx.eps[t + 1] * d.y_obs
        elif mistake == "np_eps_accumulate":
            lab_acc = lab_acc * fx.eps[t]
            lab = lab_acc
        else:
            lab = fx.eps[t] * d.y_obs

        def grad(Wf):
            A = Wf @ d.mu  # (2m,)
            Zs = A[:, None] * d.y[None, :]  # (2m, n)
            Zn = Wf @ d.xi.T
            act = lambda z: np.maximum(z, 0.0) ** q  # noqa: E731
            if mistake == "np_relu_ge":
                dact = lambda z: (z >= 0).astype(float)  # noqa: E731
            elif mistake == "np_dact_noclamp":
                dact = lambda z: q * z ** (q - 1)  # noqa: E731
            else:
                dact = lambda z: np.where(z > 0, q * np.maximum(z, 0.0) ** (q - 1), 0.0)  # noqa: E731
            f = sgn @ (act(Zs) + act(Zn)) / m
            if mistake == "np_mean_patches":
                f = f / 2.0  # (h1 + h2) / 2 in the forward pass ...
            z = lab * f
            lp = -1.0 / (1.0 + np.exp(-z)) if mistake == "np_wrong_sigmoid" else -1.0 / (1.0 + np.exp(z))
            c = lp * lab / n  # (n,)
            if mistake == "np_no_1_over_n":
                c = c * n
            coef = sgn[:, None] * c[None, :] / (1.0 if mistake == "np_grad_no_1_over_m" else m)
            if mistake == "np_mean_patches":
                coef = coef / 2.0  # ... and in the backward pass
            G = ((dact(Zs) * coef) @ d.y)[:, None] * d.mu[None, :] + (dact(Zn) * coef) @ d.xi
            if mistake == "np_swap_halves":
                G = np.concatenate([G[m:], G[:m]])
            return G

        with np.errstate(all="ignore"):
            G = grad(Wf)
            step = eta / np.sqrt(t + 1.0) if mistake == "np_invsqrt" else eta
            if mistake == "np_weight_decay":
                G = G + 1e-3 * Wf
            if mistake == "np_sequential":
                Wf[:m] -= step * G[:m]
                Wf[m:] -= step * grad(Wf)[m:]
                continue
            if mistake == "np_momentum":
                vel = 0.5 * vel + G
                G = vel
            Wf = Wf - step * G
    return Ws


# ------------------------------------------------------------------------------------------ co-teaching
def coteach_run(fx, mistake=None):
    """Co-teaching written from SPEC.md section 9 (NumPy, flattened (2m, d) filters): both networks rank the
    samples by their loss, each steps on the int((1 - R(t)) n) the other ranks smallest; returns (W, W_2)."""
    d, cfg = fx.data, fx.config
    m, n, dim, q, eta = fx.m, fx.n, fx.d, cfg.q, cfg.eta
    tau, tk = cfg.selection_rate, cfg.coteach_tk
    sgn = np.repeat([1.0, -1.0], m)
    nets = [fx.W0.reshape(2 * m, dim).copy(), fx.W0_2.reshape(2 * m, dim).copy()]
    keep_steps = {int(s) for s in fx.steps}
    out = ({}, {})

    def forward(Wf):
        Zs = (Wf @ d.mu)[:, None] * d.y[None, :]
        Zn = Wf @ d.xi.T
        return Zs, Zn, sgn @ (np.maximum(Zs, 0.0) ** q + np.maximum(Zn, 0.0) ** q) / m

    for t in range(fx.total_steps + 1):
        if t in keep_steps:
            for k in range(2):
                out[k][t] = nets[k].reshape(2, m, dim).copy()
        if t == fx.total_steps:
            break
        rate = tau * t / tk if mistake == "ct_uncapped" else tau * min(t / tk, 1.0)
        keep = int((1.0 - rate) * n)
        losses = [np.logaddexp(0.0, -d.y_obs * forward(W)[2]) for W in nets]
        small = [np.argsort(losses[k], kind="stable")[:keep] for k in range(2)]
        new = []
        for k in range(2):
            sel = small[k] if mistake == "ct_own_selection" else small[1 - k]
            Zs, Zn, f = forward(nets[k])
            dact = lambda z: np.where(z > 0, q * np.maximum(z, 0.0) ** (q - 1), 0.0)  # noqa: E731
            c = np.zeros(n)
            z = d.y_obs[sel] * f[sel]
            c[sel] = -d.y_obs[sel] / (1.0 + np.exp(z)) / (n if mistake == "ct_mean_over_n" else len(sel))
            coef = sgn[:, None] * c[None, :] / m
            G = ((dact(Zs) * coef) @ d.y)[:, None] * d.mu[None, :] + (dact(Zn) * coef) @ d.xi
            new.append(nets[k] - eta * G)
        nets = new
    return out


# ------------------------------------------------------------------------------------------ the held-out set
MISTAKES = [  # (implementation, mistake, fixture, expected catalogue key or None = not in the catalogue)
    ("torch", "torch_weight_decay", "gd", "weight_decay"),
    ("torch", "torch_weight_decay_big", "gd", "weight_decay"),
    ("torch", "torch_momentum", "gd", "momentum"),
    ("torch", "torch_exp_lr", "gd", "lr_exponential"),
    ("torch", "torch_invsqrt_lr", "gd", "lr_invsqrt"),
    ("torch", "torch_lr_typo", "gd", "eta_scaled"),
    ("torch", "torch_no_1_over_m", "gd", "model_missing_1_over_m"),
    ("torch", "torch_loss_sum", "gd", "missing_1_over_n"),
    ("torch", "torch_mean_patches", "gd", "mean_over_patches"),
    ("torch", "torch_orientation", "gd", "orientation_flipped"),
    ("torch", "torch_signal_yobs", "gd", "signal_patch_observed_label"),
    ("torch", "torch_noise_times_y", "gd", "noise_patch_times_label"),
    ("torch", "torch_bias", "gd", "bias"),
    ("torch", "torch_bce_pm1", "gd", "bce_with_pm1_targets"),
    ("torch", "torch_labels01", "gd", "labels_01_in_logistic"),
    ("torch", "torch_ascent", "gd", "sign_flipped"),
    ("torch", "torch_ckpt_after_step", "gd", "checkpoint_after_next_step"),
    ("torch", "torch_export_flip", "gd", "export_j_reversed"),
    ("torch", "torch_eps_ignored", "lngd", "label_noise_ignored"),
    ("torch", "torch_eps_frozen", "lngd", "eps_frozen"),
    ("torch", "torch_eps_inplace", "lngd", "eps_accumulated"),
    ("torch", "torch_detached_signal", "gd", "signal_path_detached"),
    ("torch", "torch_true_labels", "gd", "true_labels_in_loss"),
    ("torch", "torch_grad_clip", "gd", "grad_clip_norm"),
    ("torch", "torch_no_zero_grad", "gd", "zero_grad_forgotten"),
    ("torch", "torch_sched_early", "gd", "lr_exponential_shifted"),
    ("torch", "torch_cosine", "lngd", "lr_cosine"),
    ("torch", "torch_maximum_relu", "gd", "relu_derivative_half_at_zero"),
    ("torch", "torch_f32_inputs", "gd", "inputs_rounded_float32"),
    ("torch", "torch_half_not_1_over_m", "gd", "output_scale_scaled"),
    ("torch", "torch_step_lr", "gd", None),
    ("torch", "torch_bias", "q3", "bias"),
    ("torch", "torch_no_1_over_m", "q3", "model_missing_1_over_m"),
    ("numpy", "np_relu_ge", "gd", "relu_derivative_one_at_zero"),
    ("numpy", "np_dact_noclamp", "q3", "dsigma_no_clamp"),
    ("numpy", "np_wrong_sigmoid", "gd", "logistic_wrong_argument"),
    ("numpy", "np_no_1_over_n", "gd", "missing_1_over_n"),
    ("numpy", "np_grad_no_1_over_m", "gd", "missing_1_over_m"),
    ("numpy", "np_mean_patches", "q3", "mean_over_patches"),
    ("numpy", "np_swap_halves", "gd", "j_swapped"),
    ("numpy", "np_invsqrt", "gd", "lr_invsqrt"),
    ("numpy", "np_weight_decay", "lngd", "weight_decay"),
    ("numpy", "np_sequential", "gd", "sequential_j_update"),
    ("numpy", "np_momentum", "gd", "momentum"),
    ("numpy", "np_export_reshape", "gd", "export_reshape"),
    ("numpy", "np_import_reshape", "gd", "import_reshape"),
    ("numpy", "np_eps_next", "lngd", "eps_shifted"),
    ("coteach", "ct_own_selection", "ct", "coteaching_own_selection"),
    ("coteach", "ct_uncapped", "ct", "coteaching_rate_uncapped"),
    ("coteach", "ct_mean_over_n", "ct", "selection_mean_over_n"),
]
assert len(MISTAKES) == 50


FIXTURES = {  # the README's export examples (all accepted by `lnref export`)
    "gd": dict(n=20, d=60, m=4, tau=0.2, steps=100, checkpoints="0,1,10,100"),
    "lngd": dict(n=20, d=60, m=4, tau=0.2, steps=100, algorithm="label_noise_gd", p=0.2, checkpoints="0,1,10,100"),
    "q3": dict(n=20, d=60, m=4, tau=0.2, steps=100, q=3, eta=0.1, checkpoints="0,1,10,100"),
    "ct": dict(n=20, d=60, m=4, tau=0.2, steps=30, algorithm="coteaching", checkpoints="0,1,5,12,30"),
}


def make_fixtures(tmp: Path):
    out = {}
    for name, kw in FIXTURES.items():
        kw = dict(kw)
        ck = kw.pop("checkpoints")
        cfg = lnref.Config(n_test=0, **kw)
        path = tmp / f"{name}.npz"
        export_fixture(cfg, [int(c) for c in ck.split(",")], path, force=False)
        out[name] = load_fixture(path)
    return out


def main(argv=None) -> int:
    verbose = "-v" in (argv or sys.argv[1:])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fxs = make_fixtures(Path(tmp))
    t_fx = time.perf_counter() - t0
    # correct implementations pass every fixture
    correct = {}
    for name, fx in fxs.items():
        if fx.coteaching:
            W, W2 = coteach_run(fx)
            correct[("numpy co-teaching", name)] = compare_trajectory(W, fx, second=W2).passed
            continue
        correct[("numpy float64", name)] = compare_trajectory(numpy_run(fx), fx).passed
        if torch is not None:
            correct[("torch float64", name)] = compare_trajectory(torch_run(fx), fx).passed
            correct[("torch float32", name)] = compare_trajectory(
                torch_run(fx, dtype="float32"), fx, tier="float32"
            ).passed
    caught = right = wrong = 0
    rows = []
    t1 = time.perf_counter()
    for impl, mistake, fname, expected in MISTAKES:
        fx = fxs[fname]
        if impl == "torch" and torch is None:
            continue
        if impl == "coteach":
            Ws, W2 = coteach_run(fx, mistake)
            rep = compare_trajectory(Ws, fx, second=W2)
        else:
            Ws = torch_run(fx, mistake) if impl == "torch" else numpy_run(fx, mistake)
            rep = compare_trajectory(Ws, fx)
        c = not rep.passed
        named = rep.mistakes
        r = expected is not None and expected in named
        w = bool(named) and (expected is None or expected not in named)
        caught += c
        right += r
        wrong += w
        rows.append((impl, mistake, fname, expected, c, named))
        if verbose or w:
            print(f"{mistake:26s} {fname:5s} caught={c} expected={expected} named={named}")
            if w or (verbose and not r and expected):
                print("   " + rep.text().replace("\n", "\n   "))
    t_judge = time.perf_counter() - t1
    n = len(rows)
    print(
        f"held-out mistakes: {n}; caught {caught}/{n}; right cause {right}/{n}; wrong cause {wrong}/{n}; "
        f"no cause named {n - right - wrong}/{n} (of which {sum(1 for r in rows if r[3] is None)} are outside "
        "the catalogue)"
    )
    print(
        "correct implementations pass: "
        + ", ".join(f"{k[0]} on {k[1]}: {'yes' if v else 'NO'}" for k, v in correct.items())
    )
    print(f"time: fixtures {t_fx:.1f} s, judging {n} mistakes {t_judge:.1f} s ({t_judge / max(n, 1):.2f} s each)")
    ok = caught >= 49 and right >= 43 and wrong == 0 and all(correct.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
