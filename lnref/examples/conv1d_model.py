"""The common PyTorch model, written as people write it, checked against lnref without rewriting it.

The model: ``nn.Conv1d(1, 2m, kernel_size=d, stride=d)`` (PyTorch's default initialisation, with bias) over the
input ``[y_i mu, xi_i]`` of length 2d, ReLU, the mean over the two patches (the conv's two output positions), the
m filters of each class summed into two logits (no 1/m), ``cross_entropy`` and ``torch.optim.SGD`` - full batch.
That is lnref's network with the conventions ``bias=True, patch_reduce='mean', output_scale=1`` (SPEC.md section
7; q = 1), so it is checked on a fixture exported with them::

    python -m lnref export --bias true --init torch --patch-reduce mean --output-scale 1 --noise isotropic \\
        --n 20 --d 50 --m 5 --eta 0.1 --steps 100 --checkpoints 0,1,10,100 --out conv1d.npz
    python -m lnref.examples.conv1d_model --fixture conv1d.npz [--dtype float32]

It starts from the fixture's W0 and b0 (``conv.weight = W0.reshape(2m, 1, d)``, ``conv.bias = b0.reshape(2m)``:
channel ``j_index * m + r`` is filter w_{j,r}, index 0 for j = +1), checks its autograd gradient with
:func:`lnref.testing.check_gradient` (which passes the biases, ``b=``, and takes ``(grad_W, grad_b)`` back) and its
trajectory with :func:`lnref.testing.compare_trajectory` (``biases=``), and prints lnref's verdict.  The two
logits map to lnref's output as f = logit_0 - logit_1, and cross-entropy with class 0 for y = +1 and class 1 for
y = -1 is the logistic loss log(1 + e^{-y f}) (SPEC.md section 3).  Without ``--fixture`` it makes a small
fixture with these conventions.  torch is imported only here (``pip install torch``).
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

from lnref.examples._common import print_verdict
from lnref.testing import check_gradient, compare_trajectory, load_fixture

#: the Config fields a fixture must have for this model (SPEC.md section 7)
CONVENTIONS = {"bias": True, "patch_reduce": "mean", "output_scale": 1.0, "q": 1.0}
EXPORT = (
    "python -m lnref export --bias true --init torch --patch-reduce mean --output-scale 1 --q 1 "
    "--noise isotropic --n 20 --d 50 --m 5 --eta 0.1 --steps 100 --checkpoints 0,1,10,100 --out conv1d.npz"
)


class Conv1dCNN(torch.nn.Module):
    """Conv1d(1, 2m, kernel_size=d, stride=d) -> ReLU -> mean over the two patches -> two logits (filters summed).

    Parameters
    ----------
    m, d : int
    reduce : {'mean', 'sum'}
        How the two patches are combined ('mean' is the model; 'sum' is the mistake of forgetting the mean).
    """

    def __init__(self, m: int, d: int, reduce: str = "mean"):
        super().__init__()
        self.m, self.reduce = m, reduce
        self.conv = torch.nn.Conv1d(1, 2 * m, kernel_size=d, stride=d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, 2d) = [y_i mu, xi_i]  ->  logits (n, 2): column 0 is class y = +1."""
        h = torch.relu(self.conv(x.unsqueeze(1)))  # (n, 2m, 2): one output per patch
        h = h.mean(dim=2) if self.reduce == "mean" else h.sum(dim=2)
        return torch.stack([h[:, : self.m].sum(dim=1), h[:, self.m :].sum(dim=1)], dim=1)

    def load(self, W: np.ndarray, b: np.ndarray) -> Conv1dCNN:
        """Set the filters from lnref's W (2, m, d) and b (2, m) (channel j_index * m + r)."""
        m, d = W.shape[1], W.shape[2]
        with torch.no_grad():
            self.conv.weight.copy_(torch.as_tensor(W.reshape(2 * m, 1, d)))
            self.conv.bias.copy_(torch.as_tensor(b.reshape(2 * m)))
        return self

    def exported(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (2, m, d), b (2, m)) in lnref's layout."""
        w = self.conv.weight.detach().cpu().numpy()
        return w.reshape(2, self.m, -1).copy(), self.conv.bias.detach().cpu().numpy().reshape(2, self.m).copy()


def inputs(mu, xi, y, dtype=torch.float64) -> torch.Tensor:
    """The Conv1d input (n, 2d): the signal patch y_i mu, then the noise patch xi_i (SPEC.md section 1)."""
    return torch.as_tensor(
        np.concatenate([np.asarray(y)[:, None] * np.asarray(mu)[None, :], np.asarray(xi)], axis=1), dtype=dtype
    )


def targets(labels) -> torch.Tensor:
    """Class indices for cross_entropy: 0 for label +1, 1 for label -1."""
    return torch.as_tensor(np.where(np.asarray(labels) > 0, 0, 1))


def check_conventions(fx) -> str | None:
    """None when the fixture's network is this model's, else a message saying what to export."""
    cfg = fx.config
    got = {"bias": cfg.bias, "patch_reduce": cfg.patch_reduce, "output_scale": cfg.output_scale, "q": float(cfg.q)}
    bad = [f"{k}={got[k]!r} (needs {v!r})" for k, v in CONVENTIONS.items() if got[k] != v]
    if not bad:
        return None
    return (
        "this fixture's network is not the Conv1d model's: " + ", ".join(bad) + ". Export one with its "
        f"conventions (SPEC.md section 7): {EXPORT}"
    )


def make_model(fx, dtype=torch.float64, reduce: str = "mean") -> Conv1dCNN:
    return Conv1dCNN(fx.m, fx.d, reduce).to(dtype)


def gradient(W, mu, xi, y, y_obs, q, b, dtype=torch.float64, reduce: str = "mean"):
    """(grad_W (2, m, d), grad_b (2, m)) by autograd, in lnref's calling convention for networks with biases."""
    m, d = W.shape[1], W.shape[2]
    model = Conv1dCNN(m, d, reduce).to(dtype).load(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
    loss = torch.nn.functional.cross_entropy(model(inputs(mu, xi, y, dtype)), targets(y_obs))
    loss.backward()
    gW = model.conv.weight.grad.detach().numpy().reshape(2, m, d)
    gb = model.conv.bias.grad.detach().numpy().reshape(2, m)
    return gW, gb


def train(fx, dtype=torch.float64, reduce: str = "mean"):
    """Full-batch SGD from the fixture's W0 and b0: (W, b, loss) at the fixture's checkpoints, as dicts."""
    data = fx.data
    model = make_model(fx, dtype, reduce).load(fx.W0, fx.b0)
    opt = torch.optim.SGD(model.parameters(), lr=fx.config.eta)
    x = inputs(data.mu, data.xi, data.y, dtype)
    observed = targets(data.y_obs)
    keep = {int(s) for s in fx.steps}
    Ws, bs, losses = {}, {}, {}
    for step in range(fx.total_steps + 1):
        if step in keep:
            Ws[step], bs[step] = model.exported()
            with torch.no_grad():
                losses[step] = float(torch.nn.functional.cross_entropy(model(x), observed))
        if step == fx.total_steps:
            break
        opt.zero_grad()
        # label-noise GD: the labels of step t are eps[t] * y_obs (fx.mult); plain GD: y_obs
        torch.nn.functional.cross_entropy(model(x), targets(fx.mult(step))).backward()
        opt.step()
    return Ws, bs, losses


def small_fixture():
    """A small fixture with the model's conventions (what the export command above writes, smaller)."""
    import lnref
    from lnref.testing import make_fixture

    cfg = lnref.Config(
        n=20,
        d=50,
        m=5,
        q=1.0,
        eta=0.1,
        steps=100,
        n_test=0,
        noise="isotropic",
        sigma_p=1.0,
        mu_norm=2.0,
        tau=0.1,
        bias=True,
        init="torch",
        patch_reduce="mean",
        output_scale=1.0,
        seed=3,
    )
    return make_fixture(cfg, [0, 1, 10, 100], exercise=True)


def run(fx, dtype_name: str = "float64", reduce: str = "mean"):
    """(gradient report, trajectory report) of the model on ``fx`` at the tier of ``dtype_name``."""
    dtype = getattr(torch, dtype_name)
    grad_rep = check_gradient(lambda *a, b: gradient(*a, b, dtype=dtype, reduce=reduce), fx, tier=dtype_name)
    Ws, bs, losses = train(fx, dtype, reduce)
    traj_rep = compare_trajectory(Ws, fx, tier=dtype_name, loss=losses, biases=bs)
    return grad_rep, traj_rep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lnref.examples.conv1d_model", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    p.add_argument(
        "--fixture",
        help="fixture .npz from `lnref export` with --bias true --patch-reduce mean "
        "--output-scale 1 --q 1 (default: make a small one)",
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="the model's dtype; float32 is judged at the float32 tier",
    )
    args = p.parse_args(argv)
    fx = load_fixture(args.fixture) if args.fixture else small_fixture()
    problem = check_conventions(fx)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    grad_rep, traj_rep = run(fx, args.dtype)
    return print_verdict(grad_rep, traj_rep, f"the Conv1d model (PyTorch {args.dtype})", args.dtype)


if __name__ == "__main__":
    sys.exit(main())
