"""Memory estimates of runs and sweeps, checked before anything is allocated or written.

The estimates count the large arrays a run holds (SPEC.md section 7 conventions: float64 everywhere): the data
and its transposed copies, the weights, the coefficient engine's Gram matrices, and the history and trace sized
by the log schedule.  They are upper estimates within a small factor, meant to refuse what cannot fit (``--d
10**12``, ``--steps 10**12`` with every step logged) at once with a message naming the knob to turn, instead of
growing to a MemoryError after gigabytes.

The limit is the memory the machine has available now (``MemAvailable`` of /proc/meminfo, else
``os.sysconf``); the environment variable ``LNREF_MEMORY_LIMIT`` overrides it (bytes, or with a K/M/G/T
suffix; ``off`` disables the check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..config import Config, ConfigError

__all__ = [
    "ResourceError",
    "MemoryEstimate",
    "estimate_run_memory",
    "estimate_sweep_memory",
    "available_memory",
    "check_run_memory",
    "check_sweep_memory",
    "count_log_steps",
    "MAX_SWEEP_RUNS",
    "format_bytes",
]

F8 = 8  # bytes per float64
MAX_SWEEP_RUNS = 10**7  # (cells x replicates) in one sweep
_HISTORY_COLUMNS = 24  # an upper bound on the history's columns (lnref.model.metrics.HISTORY_COLUMNS plus test sets)


class ResourceError(ConfigError):
    """A run or sweep would need more memory (or runs) than allowed; the message names the knob to turn."""


@dataclass
class MemoryEstimate:
    """Bytes by part (``parts``) and in all (``total``)."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def largest(self) -> str:
        return max(self.parts, key=self.parts.get) if self.parts else ""

    def describe(self) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {format_bytes(v)}" for k, v in top if v > 0)


def format_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(b) < 1024 or unit == "PiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} EiB"  # pragma: no cover


def count_log_steps(cfg: Config) -> int:
    """An upper bound on ``cfg.log_steps().size`` computed without building the array."""
    count = 2
    if cfg.log_every > 0:
        count += cfg.steps // cfg.log_every + 1
    if cfg.log_points > 0 and cfg.steps > 1:
        count += min(cfg.log_points, cfg.steps)
    return min(count, cfg.steps + 1)


def estimate_run_memory(cfg: Config, keep_rho: bool = True, logged: bool = True) -> MemoryEstimate:
    """Peak bytes of ``lnref.train(cfg, keep_rho=...)`` by part (an upper estimate within a small factor).

    Parameters
    ----------
    cfg : Config
    keep_rho : bool
        Whether the trace keeps rho at every logged step (``train(keep_rho=True)``, the CLI's choice).
    logged : bool
        False for a sweep's runs (only steps 0 and ``steps`` are evaluated).
    """
    n, d, m, T = cfg.n, cfg.d, cfg.m, cfg.n_test
    F = 2 * m
    parts: dict[str, int] = {}
    if cfg.sampling == "gram":
        parts["Gram statistics"] = F8 * (3 * n * n + 4 * F * n + 3 * T * (n + F + 2))
    else:
        # xi and xi_test, their transposed copies, and the temporary of each draw
        parts["data (n + n_test) x d"] = F8 * 3 * (n + T) * d
        if cfg.engine == "coefficients":
            parts["Gram statistics"] = F8 * (3 * n * n + 2 * T * (n + F))
    if cfg.engine == "weights":
        parts["weights 2m x d"] = F8 * 5 * F * d  # W0, W, the gradient, the result's copy, a temporary
    else:
        parts["weights 2m x d"] = F8 * F * d if cfg.sampling == "explicit" else 0
        parts["coefficients 2m x n"] = F8 * 8 * F * n
    L = count_log_steps(cfg) if logged else 2
    per_row = _HISTORY_COLUMNS + F + n + (F * n if keep_rho else 0)
    parts["history and trace"] = F8 * 2 * L * per_row  # the buffers and the result's copies
    if cfg.algorithm == "label_noise_gd":
        parts["label-noise draws"] = F8 * 3 * min(1024, max(cfg.steps, 1)) * n
    return MemoryEstimate(parts)


def estimate_sweep_memory(
    cells: list[Config], replicates: int, workers: int, columns: int, runs: int | None = None
) -> MemoryEstimate:
    """Peak bytes of a sweep: ``workers`` runs at once (the largest cell's) plus the rows held by the caller.

    ``cells`` may hold one config per distinct run size; ``runs`` is then the sweep's number of runs (cells x
    replicates), default ``len(cells) * replicates``."""
    run = max((estimate_run_memory(c, keep_rho=False, logged=False).total for c in cells), default=0)
    runs = len(cells) * replicates if runs is None else int(runs)
    return MemoryEstimate({"runs in the workers": workers * run, "rows and jobs": runs * (400 + 120 * columns)})


def available_memory() -> int | None:
    """Bytes the machine can give now (MemAvailable), the LNREF_MEMORY_LIMIT override, or None when unknown."""
    env = os.environ.get("LNREF_MEMORY_LIMIT", "").strip()
    if env:
        if env.lower() in ("off", "none", "0"):
            return None
        mult = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}.get(env[-1].lower(), 1)
        try:
            return int(float(env[:-1] if mult > 1 else env) * mult)
        except ValueError:
            raise ConfigError(f"LNREF_MEMORY_LIMIT={env!r} is not allowed: give bytes (e.g. 8G, 512M) or off") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _num(v: int) -> str:
    return str(v) if v < 10**12 else f"{float(v):.3g}"


def _knobs(cfg: Config, est: MemoryEstimate) -> str:
    big = est.largest()
    if cfg.n > 10**8 or cfg.n_test > 10**9 or cfg.m > 10**8:
        return f"use a smaller --n (now {_num(cfg.n)}), --n-test (now {_num(cfg.n_test)}) or --m (now {_num(cfg.m)})"
    if big == "history and trace":
        return (
            "log fewer steps (--log-every 0 --log-points 100, or a larger --log-every; now log_every="
            f"{cfg.log_every}, log_points={cfg.log_points})"
        )
    if big.startswith("data") or big.startswith("weights"):
        return (
            "use --engine coefficients --sampling gram (no d-dimensional arrays; cost independent of d), "
            f"or a smaller --d (now {_num(cfg.d)}) / --n-test (now {_num(cfg.n_test)})"
        )
    if big.startswith("Gram") or big.startswith("coefficients"):
        return f"use a smaller --n (now {_num(cfg.n)}), --n-test (now {_num(cfg.n_test)}) or --m (now {_num(cfg.m)})"
    return f"make the run smaller (--n {_num(cfg.n)}, --d {_num(cfg.d)}, --m {_num(cfg.m)})"


def check_run_memory(cfg: Config, keep_rho: bool = True, available: int | None = None) -> MemoryEstimate:
    """Refuse (ResourceError) a run whose estimate exceeds the available memory; return the estimate."""
    est = estimate_run_memory(cfg, keep_rho=keep_rho)
    limit = available_memory() if available is None else available
    if limit is not None and est.total > limit:
        raise ResourceError(
            f"this run needs about {format_bytes(est.total)} of memory ({est.describe()}) and "
            f"{format_bytes(limit)} is available; {_knobs(cfg, est)}"
        )
    return est


def check_sweep_memory(
    cells: list[Config],
    replicates: int,
    workers: int,
    columns: int,
    available: int | None = None,
    runs: int | None = None,
) -> MemoryEstimate:
    """Refuse (ResourceError) a sweep whose estimate exceeds the available memory; return the estimate
    (:func:`estimate_sweep_memory`)."""
    est = estimate_sweep_memory(cells, replicates, workers, columns, runs)
    limit = available_memory() if available is None else available
    if limit is not None and est.total > limit:
        if est.largest() == "rows and jobs":
            knob = "fewer replicates= or a coarser grid"
        else:
            knob = (
                "fewer workers, the coefficient engine with Gram sampling (engine='coefficients', "
                "sampling='gram'), or smaller cells in the grid"
            )
        raise ResourceError(
            f"this sweep needs about {format_bytes(est.total)} of memory ({est.describe()}) and "
            f"{format_bytes(limit)} is available; use {knob}"
        )
    return est


def check_sweep_size(cells: int, replicates: int) -> None:
    """Refuse a sweep of more than :data:`MAX_SWEEP_RUNS` runs (cells x replicates) at once."""
    runs = cells * replicates
    if runs > MAX_SWEEP_RUNS:
        raise ResourceError(
            f"{cells} cells x {replicates} replicates = {runs} runs; at most {MAX_SWEEP_RUNS} runs "
            "are allowed in one sweep: lower replicates= or use a coarser grid (or split it)"
        )
