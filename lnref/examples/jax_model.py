"""A short JAX implementation of the two-layer ReLU^q CNN, verified against lnref (float64 via jax_enable_x64).

Run ``python -m lnref.examples.jax_model [--fixture F]``: it loads an lnref fixture (or makes a small one), trains
with ``jax.grad`` from the fixture's W0 on the fixture's data (and label-noise signs), and prints lnref's verdict
on the gradient and on the trajectory.  jax is imported only here (``pip install jax``).

Notes
-----
SPEC.md section 2 (the network; sigma'(0) = 0, set explicitly with a custom JVP because ``jax.grad`` of
``jnp.maximum(z, 0)`` is 1/2 at z = 0) and section 3 (logistic loss, full-batch GD).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import numpy as np

try:
    import jax
except ImportError:  # pragma: no cover - exercised without jax installed
    if __name__ == "__main__":
        print("this example needs JAX: pip install jax", file=sys.stderr)
        sys.exit(2)
    raise

jax.config.update("jax_enable_x64", True)  # float64 arrays; without it JAX silently computes in float32

import jax.numpy as jnp  # noqa: E402

from lnref.examples._common import paper_fixture, print_verdict  # noqa: E402
from lnref.testing import check_gradient, compare_trajectory  # noqa: E402


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def relu_q(z, q):
    """sigma(z) = max(0, z)^q (SPEC.md section 2)."""
    pos = z > 0
    return jnp.where(pos, jnp.where(pos, z, 0.0) ** q, 0.0)


@relu_q.defjvp
def _relu_q_jvp(q, primals, tangents):
    (z,), (dz,) = primals, tangents
    pos = z > 0
    zp = jnp.where(pos, z, 0.0)
    return relu_q(z, q), jnp.where(pos, q * zp ** (q - 1.0), 0.0) * dz  # sigma'(z) = 0 for z <= 0


def outputs(W, signal, noise, q):
    """f = F_{+1} - F_{-1}, F_j = (1/m) sum_r [sigma(<w_jr, y_i mu>) + sigma(<w_jr, xi_i>)]; W (2, m, d)."""
    m = W.shape[1]
    F = relu_q(jnp.einsum("jrd,nd->jrn", W, signal), q) + relu_q(jnp.einsum("jrd,nd->jrn", W, noise), q)
    F = F.sum(axis=1) / m
    return F[0] - F[1]


def loss(W, signal, noise, labels, q):
    """(1/n) sum_i log(1 + exp(-labels_i f_i)), computed stably."""
    return jnp.mean(jax.nn.softplus(-labels * outputs(W, signal, noise, q)))


_grad = jax.jit(jax.grad(loss), static_argnums=(4,))


def gradient(W, mu, xi, y, y_obs, q) -> np.ndarray:
    """grad L at W in lnref's calling convention (NumPy float64 arrays in, (2, m, d) out)."""
    signal = jnp.asarray(y)[:, None] * jnp.asarray(mu)[None, :]
    return np.asarray(_grad(jnp.asarray(W), signal, jnp.asarray(xi), jnp.asarray(y_obs), float(q)))


def train(fixture) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Full-batch GD from the fixture's W0; W and the loss (observed labels) at the fixture's checkpoints."""
    d, cfg = fixture.data, fixture.config
    q, eta = float(cfg.q), float(cfg.eta)
    signal = jnp.asarray(d.y)[:, None] * jnp.asarray(d.mu)[None, :]
    noise, y_obs = jnp.asarray(d.xi), jnp.asarray(d.y_obs)
    W = jnp.asarray(fixture.W0)
    assert W.dtype == jnp.float64, "jax_enable_x64 is off"
    keep = {int(s) for s in fixture.steps}
    Ws, losses = {}, {}
    for t in range(fixture.total_steps + 1):
        if t in keep:
            Ws[t] = np.asarray(W)
            losses[t] = float(loss(W, signal, noise, y_obs, q))
        if t == fixture.total_steps:
            break
        labels = jnp.asarray(fixture.mult(t))  # eps[t] * y_obs for label-noise GD
        W = W - eta * _grad(W, signal, noise, labels, q)
    return Ws, losses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lnref.examples.jax_model", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    p.add_argument("--fixture", help="fixture .npz from `lnref export` (default: make a small one)")
    args = p.parse_args(argv)
    fx = paper_fixture(args.fixture)
    if fx is None:
        return 2
    grad_rep = check_gradient(gradient, fx)
    Ws, losses = train(fx)
    traj_rep = compare_trajectory(Ws, fx, loss=losses)
    return print_verdict(grad_rep, traj_rep, "JAX (float64)", "float64")


if __name__ == "__main__":
    sys.exit(main())
