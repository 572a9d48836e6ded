"""A short PyTorch implementation of the two-layer ReLU^q CNN, verified against lnref.

Run ``python -m lnref.examples.torch_model [--fixture F] [--dtype float32|float64]``: it loads an lnref fixture
(or makes a small one), trains with autograd from the fixture's W0 on the fixture's data (and label-noise signs),
and prints lnref's verdict on the gradient and on the trajectory.  torch is imported only here.

Notes
-----
SPEC.md section 2 (the network) and section 3 (logistic loss, full-batch GD).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - exercised without torch installed
    if __name__ == "__main__":
        print("this example needs PyTorch: pip install torch", file=sys.stderr)
        sys.exit(2)
    raise

from lnref.examples._common import paper_fixture, print_verdict
from lnref.testing import check_gradient, compare_trajectory


class ReLUq(torch.autograd.Function):
    """sigma(z) = max(0, z)^q with sigma'(z) = q max(0, z)^(q-1) for z > 0 and 0 for z <= 0 (also at q = 1)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, q: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.q = q
        return torch.where(z > 0, z.clamp(min=0) ** q, torch.zeros_like(z))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (z,) = ctx.saved_tensors
        q = ctx.q
        dz = torch.where(z > 0, q * z.clamp(min=0) ** (q - 1.0), torch.zeros_like(z))
        return grad_out * dz, None


class TwoLayerCNN(torch.nn.Module):
    """f(W, x) = F_{+1}(x) - F_{-1}(x), F_j = (1/m) sum_r [sigma(<w_jr, y mu>) + sigma(<w_jr, xi>)].

    Parameters
    ----------
    W0 : tensor (2, m, d), index 0 holds j = +1
    q : float
    """

    def __init__(self, W0: torch.Tensor, q: float):
        super().__init__()
        self.W = torch.nn.Parameter(W0.clone())
        self.q = float(q)

    def forward(self, signal: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """signal (n, d) = y_i mu, noise (n, d) = xi_i  ->  f (n,)."""
        m = self.W.shape[1]
        act = lambda z: ReLUq.apply(z, self.q)  # noqa: E731
        F = act(torch.einsum("jrd,nd->jrn", self.W, signal)) + act(torch.einsum("jrd,nd->jrn", self.W, noise))
        F = F.sum(dim=1) / m  # (2, n)
        return F[0] - F[1]


def logistic_loss(f: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(1/n) sum_i log(1 + exp(-labels_i f_i)), computed stably."""
    return torch.nn.functional.softplus(-labels * f).mean()


def gradient(W, mu, xi, y, y_obs, q, dtype=torch.float64) -> np.ndarray:
    """grad L at W by autograd, in lnref's calling convention (NumPy arrays in, (2, m, d) out)."""
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    model = TwoLayerCNN(t(W), q)
    y_t = t(y)
    loss = logistic_loss(model(y_t[:, None] * t(mu)[None, :], t(xi)), t(y_obs))
    loss.backward()
    return model.W.grad.detach().numpy()


def train(fixture, dtype=torch.float64) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Full-batch GD with torch.optim.SGD from the fixture's W0; W and the loss at the fixture's checkpoints."""
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    data = fixture.data
    cfg = fixture.config
    model = TwoLayerCNN(t(fixture.W0), cfg.q)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.eta)
    signal = t(data.y)[:, None] * t(data.mu)[None, :]
    noise = t(data.xi)
    y_obs = t(data.y_obs)
    keep = set(int(s) for s in fixture.steps)
    Ws: dict[int, np.ndarray] = {}
    losses: dict[int, float] = {}
    for step in range(fixture.total_steps + 1):
        if step in keep:
            with torch.no_grad():
                Ws[step] = model.W.detach().clone().numpy()
                losses[step] = float(logistic_loss(model(signal, noise), y_obs))
        if step == fixture.total_steps:
            break
        labels = t(fixture.mult(step))  # eps[t] * y_obs for label-noise GD
        opt.zero_grad()
        logistic_loss(model(signal, noise), labels).backward()
        opt.step()
    return Ws, losses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lnref.examples.torch_model", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    p.add_argument("--fixture", help="fixture .npz from `lnref export` (default: make a small one)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = p.parse_args(argv)
    fx = paper_fixture(args.fixture)
    if fx is None:
        return 2
    dtype = getattr(torch, args.dtype)
    tier = args.dtype
    grad_rep = check_gradient(lambda *a: gradient(*a, dtype=dtype), fx, tier=tier)
    Ws, losses = train(fx, dtype)
    traj_rep = compare_trajectory(Ws, fx, tier=tier, loss=losses)
    return print_verdict(grad_rep, traj_rep, f"PyTorch ({args.dtype})", tier)


if __name__ == "__main__":
    sys.exit(main())
