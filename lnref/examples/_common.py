"""What the examples share: the paper-network fixture and its conventions check (torch_model, jax_model), and the
printed reports and verdict (all three)."""

from __future__ import annotations

import sys

from lnref.testing import load_fixture


def paper_fixture(path: str | None):
    """The fixture at ``path``, or a small one of the papers' network (n=20, d=60, m=4, 50 steps) when None;
    None (after a message on stderr) when the fixture has other conventions (SPEC.md section 7)."""
    if path:
        fx = load_fixture(path)
    else:
        import lnref
        from lnref.testing import make_fixture

        cfg = lnref.Config(
            n=20, d=60, m=4, tau=0.2, flips="exact", sigma_p=1.0, mu_norm=3.0, eta=0.5, steps=50, n_test=0, seed=0
        )
        fx = make_fixture(cfg, [0, 1, 10, 50], exercise=True)
    if not fx.config.paper_network:
        print(
            "this example implements the papers' network (no bias, patch sum, output scale 1/m); the fixture has "
            f"bias={fx.config.bias}, patch_reduce={fx.config.patch_reduce!r}, output_scale="
            f"{fx.config.output_scale!r}. For a Conv1d-style model with those conventions see "
            "python -m lnref.examples.conv1d_model (SPEC.md section 7)",
            file=sys.stderr,
        )
        return None
    return fx


def print_verdict(grad_rep, traj_rep, model: str, tier: str) -> int:
    """Print the gradient and trajectory reports and one verdict line; the exit code (0 match, 1 mismatch)."""
    print(grad_rep.text())
    print()
    print(traj_rep.text())
    ok = grad_rep.passed and traj_rep.passed
    print(f"\nverdict: {model} {'matches' if ok else 'does NOT match'} lnref within tier {tier!r}")
    return 0 if ok else 1
