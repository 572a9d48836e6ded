"""ELR (early-learning regularisation) in PyTorch, written the way the official code writes it, checked against lnref.

Run ``python -m lnref.examples.elr_torch [--steps N] [--lam L] [--beta B] [--period P] [--eta E] [--seed S]``: it
draws lnref's data and initial weights, trains the two-layer ReLU CNN with full-batch GD and ELR in PyTorch
(float64 autograd), and compares the outputs, ELR's targets and the weights at every step with ``lnref.train``
(``loss='elr'``).  Exit status 0 when they agree within the tolerance (printed with the measured difference), 1 when
not.  torch is imported only here.

ELR (Liu et al., NeurIPS 2020; the official code is shengliu66/ELR, ``ELR/model/loss.py``, class ``elr_loss``):

    loss = CE(output, label) + lam * mean_i log(1 - <t_i, p_i>),   p = clamp(softmax(output), 1e-4, 1 - 1e-4)

with one target t_i per sample, zeros at start, and updated BEFORE the loss from the detached clamped p:
t_i <- beta t_i + (1 - beta) p_i / sum(p_i).  The official code updates a sample's target each time it appears
(once per epoch); in full-batch GD one step is one epoch, and ``--period P`` updates at steps 0, P, 2P, ...
(SPEC.md section 9).  For two classes the logits are (F_{+1}, F_{-1}) (SPEC.md section 2) and softmax gives
p = (sigma(f), sigma(-f)), f = F_{+1} - F_{-1}.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised without torch installed
    if __name__ == "__main__":
        print("this example needs PyTorch: pip install torch", file=sys.stderr)
        sys.exit(2)
    raise

import lnref

TOLERANCE = 1e-10  # relative, normwise, at every step (float64 on both sides)


class TwoLayerCNN(torch.nn.Module):
    """The papers' network with two logits: F_j(x) = (1/m) sum_r [relu(<w_jr, y mu>) + relu(<w_jr, xi>)]."""

    def __init__(self, W0: torch.Tensor):
        super().__init__()
        self.W = torch.nn.Parameter(W0.clone())  # (2, m, d), index 0 holds j = +1

    def forward(self, signal: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """signal (n, d) = y_i mu, noise (n, d) = xi_i  ->  logits (n, 2) = (F_{+1}, F_{-1})."""
        m = self.W.shape[1]
        F_ = torch.relu(torch.einsum("jrd,nd->njr", self.W, signal)) + torch.relu(
            torch.einsum("jrd,nd->njr", self.W, noise)
        )
        return F_.sum(dim=2) / m


class elr_loss(torch.nn.Module):  # the official code's name
    """ELR as in shengliu66/ELR ``ELR/model/loss.py``: a target buffer per sample, updated before the loss."""

    def __init__(self, num_examp: int, num_classes: int = 2, lam: float = 3.0, beta: float = 0.7):
        super().__init__()
        self.num_classes = num_classes
        self.target = torch.zeros(num_examp, self.num_classes, dtype=torch.float64)
        self.lam = lam
        self.beta = beta

    def forward(self, index, output, label, update: bool = True):
        y_pred = F.softmax(output, dim=1)
        y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
        y_pred_ = y_pred.data.detach()
        if update:  # the official code: every call; here every `period` GD steps
            self.target[index] = self.beta * self.target[index] + (1 - self.beta) * (
                (y_pred_) / (y_pred_).sum(dim=1, keepdim=True)
            )
        ce_loss = F.cross_entropy(output, label)
        elr_reg = ((1 - (self.target[index] * y_pred).sum(dim=1)).log()).mean()
        return ce_loss + self.lam * elr_reg


def train(cfg: lnref.Config, data: lnref.Dataset, W0: np.ndarray):
    """Full-batch GD (torch.optim.SGD, lr = eta) with ELR; returns the outputs f (steps + 1, n), the targets
    (steps + 1, 2, n) (row 0: class +1; the state after t steps) and W after the last step."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    model = TwoLayerCNN(t(W0))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.eta)
    signal = t(data.y)[:, None] * t(data.mu)[None, :]
    noise = t(data.xi)
    label = torch.as_tensor(np.where(data.y_obs > 0, 0, 1))  # class +1 is logit 0
    index = torch.arange(cfg.n)
    p = cfg.loss_params
    criterion = elr_loss(cfg.n, 2, lam=p["lam"], beta=p["beta"])
    fs, targets = [], []
    for step in range(cfg.steps + 1):
        output = model(signal, noise)
        fs.append((output[:, 0] - output[:, 1]).detach().numpy().copy())
        targets.append(criterion.target.detach().numpy().T.copy())
        if step == cfg.steps:
            break
        opt.zero_grad()
        criterion(index, output, label, update=step % p["period"] == 0).backward()
        opt.step()
    return np.array(fs), np.array(targets), model.W.detach().numpy().copy()


def max_relative_difference(cfg: lnref.Config) -> dict[str, float]:
    """Train both (same data, same W0) and return the largest normwise relative difference of each quantity."""
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    ref = lnref.train(cfg.replace(log_every=1, engine="weights"), data, W0, threads=1)
    fs, targets, W = train(cfg, data, W0)

    def rel(a, b):
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))

    f_ref = ref.trace["margin"] * data.y_obs
    return {
        "outputs f": max(rel(fs[s], f_ref[s]) for s in range(cfg.steps + 1)),
        "ELR targets": max(rel(targets[s], ref.trace["target"][s]) for s in range(1, cfg.steps + 1)),
        "W - W0": rel(W - W0, ref.W - W0),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lnref.examples.elr_torch", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lam", type=float, default=3.0, help="ELR's lambda (official CIFAR-10 config: 3)")
    ap.add_argument("--beta", type=float, default=0.7, help="ELR's target momentum (official: 0.7)")
    ap.add_argument("--period", type=int, default=1, help="GD steps between target updates (default 1)")
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        cfg = lnref.Config(
            n=20,
            d=60,
            m=4,
            tau=0.2,
            flips="exact",
            mu_norm=3.0,
            sigma_p=1.0,
            sigma0=0.05,
            eta=args.eta,
            steps=args.steps,
            n_test=0,
            seed=args.seed,
            loss="elr",
            loss_params={"lam": args.lam, "beta": args.beta, "period": args.period},
        )
    except lnref.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"ELR in PyTorch vs lnref: n={cfg.n}, d={cfg.d}, m={cfg.m}, {cfg.steps} GD steps of eta={cfg.eta}, "
        f"lam={args.lam}, beta={args.beta}, target update every {args.period} step(s)"
    )
    diffs = max_relative_difference(cfg)
    for name, v in diffs.items():
        print(f"  max relative difference, {name:11s}: {v:.2e}")
    worst = max(diffs.values())
    ok = worst <= TOLERANCE
    print(f"tolerance {TOLERANCE:.0e} (relative, normwise, every step); measured max {worst:.2e}")
    print(f"verdict: this PyTorch ELR {'matches' if ok else 'does NOT match'} lnref")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
