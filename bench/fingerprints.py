"""Fingerprints of lnref's trajectories: a SHA-256 per (config, threads) of every array a run returns.

A change that must keep the bits (a refactor, a faster kernel, a new option whose default is the old path)
is checked by writing the fingerprints before it and comparing after it:

    python bench/fingerprints.py --out /tmp/fp_before.json          # on the old code
    python bench/fingerprints.py --compare /tmp/fp_before.json      # on the new code: exit 1 on any change

The configs cover both engines, explicit and Gram sampling, plain and label-noise GD, q = 1, 2 and 3, the
conventions of Kou et al.'s code (bias, torch init, patch mean, output scale), the iid and spurious tests, a
fresh virtual test set, and 1 and 2 numba threads.  Configs whose fields the running lnref does not know
(e.g. ``loss`` on an older version) are skipped and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

import lnref

BASE = dict(n=24, d=60, m=5, steps=40, n_test=50, log_every=10, tau=0.2, mu_norm=3.0, sigma_p=0.6, eta=0.7)

CASES = {
    "weights_gd": {},
    "weights_q2": dict(q=2.0),
    "weights_q3": dict(q=3.0, sigma0=0.1),
    "weights_lngd": dict(algorithm="label_noise_gd", p=0.1),
    "weights_kou": dict(bias=True, init="torch", patch_reduce="mean", output_scale=1.0, noise="isotropic", eta=0.1),
    "weights_spurious": dict(test="spurious", flips="exact"),
    "coef_gd": dict(engine="coefficients"),
    "coef_q2_lngd": dict(engine="coefficients", q=2.0, algorithm="label_noise_gd"),
    "coef_kou": dict(
        engine="coefficients",
        bias=True,
        init="torch",
        patch_reduce="mean",
        output_scale=1.0,
        noise="isotropic",
        eta=0.1,
    ),
    "gram_gd": dict(engine="coefficients", sampling="gram", d=100000),
    "gram_fresh": dict(
        engine="coefficients", sampling="gram", virtual_test="fresh", noise="isotropic", test_flipped_labels=True
    ),
    "gram_lngd_bias": dict(
        engine="coefficients",
        sampling="gram",
        algorithm="label_noise_gd",
        bias=True,
        init="torch",
        patch_reduce="mean",
        output_scale=1.0,
        eta=0.1,
    ),
}


def _digest(res) -> str:
    h = hashlib.sha256()
    parts = {"gamma": res.gamma, "rho": res.rho, "W": res.W, "b": res.b}
    parts.update({f"hist_{k}": v for k, v in res.history.items()})
    parts.update({f"trace_{k}": v for k, v in res.trace.items()})
    for key in sorted(parts):
        v = parts[key]
        if v is None:
            continue
        h.update(key.encode() + b"\0" + np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:16]


def fingerprints(extra: dict | None = None) -> tuple[dict[str, str], list[str]]:
    """{case@threads: digest}, and the cases skipped because this lnref does not know one of their fields."""
    out, skipped = {}, []
    cases = dict(CASES)
    cases.update(extra or {})
    for name, over in cases.items():
        try:
            cfg = lnref.Config(**{**BASE, **over})
        except (TypeError, lnref.ConfigError):
            skipped.append(name)
            continue
        for threads in (1, 2):
            out[f"{name}@{threads}"] = _digest(lnref.train(cfg, threads=threads))
    return out, skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the fingerprints to this JSON file")
    ap.add_argument("--compare", help="compare with the fingerprints in this JSON file (exit 1 if any differ)")
    args = ap.parse_args(argv)
    fp, skipped = fingerprints()
    for k, v in fp.items():
        print(f"{k:28s} {v}")
    if skipped:
        print("skipped (fields unknown to this lnref):", ", ".join(skipped))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(fp, fh, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as fh:
            old = json.load(fh)
        common = sorted(set(old) & set(fp))
        changed = [k for k in common if old[k] != fp[k]]
        print(
            f"compared {len(common)} fingerprints: {len(changed)} differ"
            + (f" ({', '.join(changed)})" if changed else "")
        )
        return 1 if changed or not common else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
