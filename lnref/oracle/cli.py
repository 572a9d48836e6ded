"""``lnref export`` (write a fixture) and ``lnref compare`` (check another implementation's trajectory).

``theirs.npz`` for ``lnref compare`` holds plain arrays (no pickles):

* ``step`` (K,) integers: steps; those that are checkpoints of the fixture are compared, others are ignored;
* ``W`` (K, 2, m, d) float64 or float32: their weights at those steps (index 0 of axis 1 holds j = +1);
* ``b`` (K, 2, m) float64 or float32: their biases at those steps, required when the fixture's network has biases
  (exported with ``--bias true``), refused otherwise; compared at the same bound as W (SPEC.md section 7);
* ``loss`` (K,) optional: their training loss at those steps, compared with the fixture's;
* ``W_2`` (K, 2, m, d) (and ``b_2`` (K, 2, m) with biases): co-teaching's second network at those steps, required
  for a fixture exported with ``--algorithm coteaching`` (its W0_2 in the fixture), refused otherwise.

A fixture exported with the conventions of a Conv1d-style model (``--bias true --init torch --patch-reduce mean
--output-scale 1``) checks such a model as it is written; see ``python -m lnref.examples.conv1d_model``.

Exit status: 0 they match within the tier, 1 they do not (also when their trajectory diverged where lnref's did
not), 2 unusable input (the message says what is wrong: a damaged file, no GD step beyond 0 to compare, complex
or float16 arrays, a fixture that cannot judge at the tier).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..config import ConfigError

__all__ = ["register", "read_theirs", "export_fixture"]


def register(sub) -> None:
    from ..cli.args import add_config_arguments

    ex = sub.add_parser(
        "export",
        help="write a fixture (.npz) that other implementations check themselves against",
        description="Run GD with the weight engine and write the data, W0, the config and, at each "
        "checkpoint, W, gamma, rho, the loss and the gradient (and eps for label-noise "
        "GD; b0, b and grad_b with --bias true) to one self-describing .npz (see "
        "lnref.oracle.fixtures). The network's conventions (--bias, --init, "
        "--patch-reduce, --output-scale; SPEC.md section 7) are part of the fixture. "
        "The trajectory's sensitivity is measured, and a fixture that cannot judge at "
        "--tier is refused.",
    )
    add_config_arguments(ex)
    ex.add_argument(
        "--checkpoints",
        default="0,1",
        metavar="0,1,10,100",
        help="comma-separated checkpoint steps (the last step, --steps, is always included)",
    )
    ex.add_argument("--out", type=Path, required=True, help="fixture file to write, e.g. fixture.npz")
    ex.add_argument("--force", action="store_true", help="overwrite an existing --out")
    ex.add_argument(
        "--tier",
        default="both",
        choices=("float64", "float32", "both"),
        help="the tiers the fixture must be able to judge (default both)",
    )
    ex.add_argument(
        "--no-exercise",
        action="store_true",
        help="keep W0 = init_weights(config) (by default the last filter of each class is made "
        "orthogonal to mu so that sigma'(0) is exercised)",
    )
    ex.set_defaults(func=_cmd_export)

    cp = sub.add_parser(
        "compare",
        help="compare another implementation's weights with a fixture",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cp.add_argument("fixture", type=Path, help="fixture written by `lnref export`")
    cp.add_argument(
        "theirs",
        type=Path,
        help="their .npz with arrays 'step' (K,), 'W' (K, 2, m, d), 'b' (K, 2, m) "
        "for a fixture with biases, optional 'loss' (K,)",
    )
    cp.add_argument(
        "--tier", default="float64", choices=("float64", "float32"), help="tolerance tier (default float64)"
    )
    cp.add_argument("--rtol", type=float, default=None, help="override the tier's per-step relative tolerance")
    cp.add_argument("--atol", type=float, default=None, help="absolute errors up to this always pass")
    cp.set_defaults(func=_cmd_compare)


def _last_judgeable(fx, tiers) -> int:
    """The last step up to which the fixture's trajectory can judge at every tier in ``tiers`` (dense replay)."""
    from .fixtures import measure_spread
    from .replay import Problem, simulate
    from .tolerances import judgeable

    T = fx.total_steps
    grid = np.unique(
        np.concatenate([np.arange(0, min(T, 400) + 1), np.round(np.geomspace(1, max(T, 1), 200)).astype(int)])
    )
    P = Problem.of(fx)
    ref = simulate(P, grid, P.base, with_bias=True)
    refb = np.stack([ref[int(t)][1] for t in grid]) if fx.has_bias else None
    sp = measure_spread(P, grid, np.stack([ref[int(t)][0] for t in grid]), refb)
    last = 0
    for k, t in enumerate(grid):
        if all(judgeable(tol, np.array([t]), sp[k : k + 1])[0] for tol in tiers):
            last = int(t)
        else:
            break
    return last


def export_fixture(cfg, checkpoints, out: Path, force: bool, tier: str = "both", exercise: bool = True):
    """Make, judge and write a fixture (the body of ``lnref export``); ConfigError when it cannot judge."""
    from .fixtures import check_out_path

    check_out_path(out, force)  # before the work
    from .._lock import OutputLock

    with OutputLock(out):  # one writer per file: a second export to it is refused while this one works
        check_out_path(out, force)  # again under the claim
        return _export_locked(cfg, checkpoints, out, force, tier, exercise)


def _export_locked(cfg, checkpoints, out: Path, force: bool, tier: str, exercise: bool):
    from .fixtures import make_fixture, save_fixture
    from .tolerances import TIERS, judgeable

    fx = make_fixture(cfg, checkpoints, exercise=exercise)
    tiers = [TIERS[t] for t in (("float64", "float32") if tier == "both" else (tier,))]
    for tol in tiers:
        ok = judgeable(tol, fx.steps, fx.spread)
        if not np.all(ok):
            bad = [int(t) for t, o in zip(fx.steps, ok) if not o]
            k = fx.index(bad[0])
            last = _last_judgeable(fx, tiers)
            raise ConfigError(
                f"this fixture cannot judge implementations at tier {tol.name!r}: its own trajectory is chaotic at "
                f"step(s) {bad} (a rerun from W0 perturbed by 4 ulps moves W({bad[0]}) by "
                f"{fx.spread[k, 1]:.1e} relative, lnref's NumPy replay by {fx.spread[k, 0]:.1e}), so two correct "
                f"implementations can disagree there by more than the tier allows. Use --steps {max(last, 1)} "
                f"or less (it judges up to step {last}), or a smaller --eta (now {cfg.eta:g})"
                + (
                    ", or --tier float64 if only float64 implementations are checked"
                    if tier == "both" and tol.name == "float32"
                    else ""
                )
            )
    save_fixture(fx, out, force=force)
    return fx


# multiply-adds per second of a fixture's making (the weight engine's run, the perturbed rerun and the NumPy
# replays of every step): the default config (n=200, d=2000, m=20) took 0.068 s per step (measured, 2 cores)
_EXPORT_RATE = 2.4e8
_EXPORT_MAX_SECONDS = 3600.0


def _check_export_time(cfg) -> None:
    """Refuse a fixture that would take more than an hour to make (every step is run and replayed in NumPy),
    before any work; note the estimate on stderr when it takes more than a minute."""
    seconds = cfg.steps * 2.0 * cfg.m * cfg.n * cfg.d / _EXPORT_RATE
    if seconds > _EXPORT_MAX_SECONDS:
        raise ConfigError(
            f"--steps {cfg.steps} is too many for a fixture of n={cfg.n}, d={cfg.d}, m={cfg.m}: "
            f"every step is run and replayed in NumPy, about {_duration(seconds)}; a fixture is a "
            f"short trajectory: use --steps {max(1, int(cfg.steps * _EXPORT_MAX_SECONDS / seconds))} "
            "or fewer (about an hour), or a smaller problem"
        )
    if seconds > 60:
        print(f"lnref export: making the fixture takes about {_duration(seconds)}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 365:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / (86400 * 365):.3g} years"


def _cmd_export(args: argparse.Namespace) -> int:
    from ..cli.args import config_from_args
    from .fixtures import parse_checkpoints

    cfg = config_from_args(args)
    checkpoints = parse_checkpoints(args.checkpoints, cfg.steps)
    _check_export_time(cfg)
    fx = export_fixture(cfg, checkpoints, args.out, args.force, args.tier, not args.no_exercise)
    from .tolerances import TIERS, bounds

    b64 = bounds(TIERS["float64"], fx.steps, fx.spread)
    conv = (
        ""
        if cfg.paper_network
        else (
            f", conventions bias={cfg.bias}, init={cfg.init}, patch_reduce="
            f"{cfg.patch_reduce}, output_scale="
            f"{'1/m' if cfg.output_scale is None else format(cfg.output_scale, 'g')}"
        )
    )
    print(
        f"wrote {args.out}: n={cfg.n}, d={cfg.d}, m={cfg.m}, q={cfg.q:g}, {cfg.algorithm}, seed {cfg.seed}{conv}, "
        f"checkpoints {fx.steps.tolist()}, final loss {fx.loss[-1]:.6g}; measured spread up to "
        f"{float(np.max(fx.spread[:, :2])):.1e} (float64), {float(np.max(fx.spread[:, 2])):.1e} (float32 replay); "
        f"float64 bound at the last checkpoint {b64[-1]:.1e}"
    )
    if fx.meta.get("w0_edit"):
        print(f"note: {fx.meta['w0_edit']}")
    return 0


def read_theirs(path: Path, with_b: bool = False, with_second: bool = False):
    """Read ``theirs.npz``: (dict step -> W, loss or None), and dict step -> b (or None) as a third item with
    ``with_b``, and (dict step -> W_2, dict step -> b_2), each or None, as a fourth with ``with_second``;
    FixtureError naming the file and what is wrong."""
    from .fixtures import FixtureError, read_npz

    arrays = read_npz(path, "their file")
    if not with_second and ("W_2" in arrays or "b_2" in arrays):
        raise FixtureError(
            f"{path} has co-teaching's second-network array(s) W_2/b_2 but the fixture has one network; export a "
            "fixture with --algorithm coteaching to check two networks"
        )
    missing = [k for k in ("step", "W") if k not in arrays]
    if missing:
        raise FixtureError(
            f"{path} lacks the array(s) {', '.join(map(repr, missing))}; expected 'step' (K,) and "
            f"'W' (K, 2, m, d), optional 'loss' (K,); found {sorted(arrays)}"
        )
    step, W = arrays["step"], arrays["W"]
    if step.ndim != 1 or step.dtype.kind not in "iuf" or (step.dtype.kind == "f" and not np.all(np.mod(step, 1) == 0)):
        raise FixtureError(f"{path}: 'step' must be a 1-D integer array, got dtype {step.dtype} shape {step.shape}")
    if W.dtype not in (np.float64, np.float32):
        raise FixtureError(
            f"{path}: 'W' must be float64 or float32, got dtype {W.dtype} (complex, float16 and "
            "integer arrays are refused)"
        )
    if W.ndim != 4 or W.shape[0] != step.shape[0]:
        raise FixtureError(
            f"{path}: 'W' must have shape (K, 2, m, d) with K = len(step) = {step.shape[0]}, got {W.shape}"
        )
    if len(set(step.tolist())) != step.size:
        raise FixtureError(f"{path}: 'step' has repeated values {step.tolist()}")
    loss = None
    if "loss" in arrays:
        loss = arrays["loss"]
        if loss.shape != step.shape or loss.dtype not in (np.float64, np.float32):
            raise FixtureError(
                f"{path}: 'loss' must be a float64 or float32 array of shape {step.shape}, got "
                f"{loss.dtype} {loss.shape}"
            )
    Ws = {int(s): W[k] for k, s in enumerate(step)}
    if not with_b:
        return Ws, loss
    b = _per_step(arrays, "b", 3, step, path)
    if not with_second:
        return Ws, loss, b
    W2 = _per_step(arrays, "W_2", 4, step, path)
    if W2 is not None and any(w.shape != W.shape[1:] for w in W2.values()):
        raise FixtureError(f"{path}: 'W_2' must have the shape of 'W' {W.shape}, got {arrays['W_2'].shape}")
    return Ws, loss, b, (W2, _per_step(arrays, "b_2", 3, step, path))


def _per_step(arrays: dict, key: str, ndim: int, step: np.ndarray, path: Path) -> dict | None:
    """dict step -> row of the optional array ``key`` ((K, 2, m) for b and b_2, (K, 2, m, d) for W_2), or None."""
    from .fixtures import FixtureError

    if key not in arrays:
        return None
    a = arrays[key]
    if a.dtype not in (np.float64, np.float32):
        raise FixtureError(f"{path}: {key!r} must be float64 or float32, got dtype {a.dtype}")
    if a.ndim != ndim or a.shape[0] != step.shape[0] or a.shape[1] != 2:
        want = "(K, 2, m)" if ndim == 3 else "(K, 2, m, d)"
        raise FixtureError(
            f"{path}: {key!r} must have shape {want} with K = len(step) = {step.shape[0]}, got {a.shape}"
        )
    return {int(s): a[k] for k, s in enumerate(step)}


def _cmd_compare(args: argparse.Namespace) -> int:
    from .checks import compare_trajectory
    from .fixtures import FixtureError, load_fixture
    from .tolerances import resolve_tolerance

    tol = resolve_tolerance(args.tier, args.rtol, args.atol)
    fx = load_fixture(args.fixture)
    theirs, loss, biases, (second, second_b) = read_theirs(args.theirs, with_b=True, with_second=True)
    if fx.coteaching and second is None:
        raise FixtureError(
            f"{args.theirs} lacks the array 'W_2' (K, 2, m, d): the fixture is co-teaching's (two networks, "
            "exported with --algorithm coteaching), so their second network at the same steps is compared too"
        )
    if not fx.coteaching and (second is not None or second_b is not None):
        raise FixtureError(
            f"{args.theirs} has co-teaching's second-network array(s) W_2/b_2 but the fixture has one network; "
            "export a fixture with --algorithm coteaching to check two networks"
        )
    if fx.coteaching and fx.has_bias and second_b is None:
        raise FixtureError(f"{args.theirs} lacks the array 'b_2' (K, 2, m): the second network has biases too")
    if fx.has_bias and biases is None:
        raise FixtureError(
            f"{args.theirs} lacks the array 'b' (K, 2, m): the fixture's network has biases "
            "(exported with --bias true), so their biases at the same steps are compared too"
        )
    if not fx.has_bias and biases is not None:
        raise FixtureError(
            f"{args.theirs} has an array 'b' but the fixture's network has no bias; export a "
            "fixture with --bias true to check a network with biases"
        )
    loss_map = None if loss is None else {s: float(v) for s, v in zip(theirs, loss)}
    rep = compare_trajectory(theirs, fx, tier=tol, loss=loss_map, biases=biases, second=second, second_biases=second_b)
    print(rep.text())
    return 0 if rep.passed else 1
