"""``lnref export`` (write a fixture) and ``lnref compare`` (check another implementation's trajectory).

``theirs.npz`` for ``lnref compare`` holds plain arrays (no pickles):

* ``step`` (K,) integers: steps, each one of the fixture's checkpoints;
* ``W`` (K, 2, m, d) float64 or float32: their weights at those steps (index 0 of axis 1 holds j = +1);
* ``loss`` (K,) optional: their training loss at those steps (otherwise lnref evaluates it on their W).

Exit status: 0 they match within the tier, 1 they do not, 2 unusable input (the message says what is wrong).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .config import ConfigError

__all__ = ["register", "read_theirs"]


def register(sub) -> None:
    from .cli import add_config_arguments
    ex = sub.add_parser("export", help="write a fixture (.npz) that other implementations check themselves against",
                        description="Run GD with the weight engine and write the data, W0, the config and, at each "
                                    "checkpoint, W, gamma, rho, the loss and the gradient (and eps for label-noise "
                                    "GD) to one self-describing .npz (see lnref.fixtures).")
    add_config_arguments(ex)
    ex.add_argument("--checkpoints", default="0,1", metavar="0,1,10,100",
                    help="comma-separated checkpoint steps (the last step, --steps, is always included)")
    ex.add_argument("--out", type=Path, required=True, help="fixture file to write, e.g. fixture.npz")
    ex.add_argument("--force", action="store_true", help="overwrite an existing --out")
    ex.set_defaults(func=_cmd_export)

    cp = sub.add_parser("compare", help="compare another implementation's weights with a fixture",
                        description=__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    cp.add_argument("fixture", type=Path, help="fixture written by `lnref export`")
    cp.add_argument("theirs", type=Path, help="their .npz with arrays 'step' (K,), 'W' (K, 2, m, d), optional 'loss'")
    cp.add_argument("--tier", default="float64", choices=("float64", "float32"),
                    help="tolerance tier (default float64)")
    cp.add_argument("--rtol", type=float, default=None, help="override the tier's per-step relative tolerance")
    cp.add_argument("--atol", type=float, default=None, help="absolute errors up to this always pass")
    cp.set_defaults(func=_cmd_compare)


def _cmd_export(args: argparse.Namespace) -> int:
    from .cli import config_from_args
    from .fixtures import make_fixture, parse_checkpoints, save_fixture
    from .io import OutputError

    cfg = config_from_args(args)
    checkpoints = parse_checkpoints(args.checkpoints, cfg.steps)
    if args.out.exists() and not args.force:
        raise OutputError(f"{args.out} exists; choose another file or pass --force to overwrite it")
    try:
        fx = make_fixture(cfg, checkpoints)
    except FloatingPointError as exc:
        print(f"lnref export: error: {exc}", file=sys.stderr)
        return 1
    save_fixture(fx, args.out, force=args.force)
    print(f"wrote {args.out}: n={cfg.n}, d={cfg.d}, m={cfg.m}, q={cfg.q:g}, {cfg.algorithm}, seed {cfg.seed}, "
          f"checkpoints {fx.steps.tolist()}, final loss {fx.loss[-1]:.6g}")
    return 0


def read_theirs(path: Path) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Read ``theirs.npz``: (dict step -> W, loss or None); ConfigError naming what is wrong."""
    if not Path(path).is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ConfigError(f"{path} is not a readable .npz of plain arrays: {exc}") from None
    missing = [k for k in ("step", "W") if k not in arrays]
    if missing:
        raise ConfigError(f"{path} lacks the array(s) {', '.join(map(repr, missing))}; expected 'step' (K,) and "
                          f"'W' (K, 2, m, d), optional 'loss' (K,); found {sorted(arrays)}")
    step, W = arrays["step"], arrays["W"]
    if step.ndim != 1 or step.dtype.kind not in "iuf" or (step.dtype.kind == "f" and
                                                          not np.all(np.mod(step, 1) == 0)):
        raise ConfigError(f"{path}: 'step' must be a 1-D integer array, got dtype {step.dtype} shape {step.shape}")
    if W.dtype.kind != "f":
        raise ConfigError(f"{path}: 'W' must be float64 or float32, got dtype {W.dtype}")
    if W.ndim != 4 or W.shape[0] != step.shape[0]:
        raise ConfigError(f"{path}: 'W' must have shape (K, 2, m, d) with K = len(step) = {step.shape[0]}, "
                          f"got {W.shape}")
    if len(set(step.tolist())) != step.size:
        raise ConfigError(f"{path}: 'step' has repeated values {step.tolist()}")
    loss = None
    if "loss" in arrays:
        loss = arrays["loss"]
        if loss.shape != step.shape or loss.dtype.kind != "f":
            raise ConfigError(f"{path}: 'loss' must be a float array of shape {step.shape}, got {loss.dtype} "
                              f"{loss.shape}")
    return {int(s): W[k] for k, s in enumerate(step)}, loss


def _cmd_compare(args: argparse.Namespace) -> int:
    from .testing import compare_trajectory, load_fixture, resolve_tolerance

    tol = resolve_tolerance(args.tier, args.rtol, args.atol)
    fx = load_fixture(args.fixture)
    theirs, loss = read_theirs(args.theirs)
    loss_map = None if loss is None else {s: float(v) for s, v in zip(theirs, loss)}
    rep = compare_trajectory(theirs, fx, tier=tol, loss=loss_map)
    print(rep.text())
    return 0 if rep.passed else 1
