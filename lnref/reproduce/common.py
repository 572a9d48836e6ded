"""Shared machinery of the reproductions: registry, run context, report.md, figures."""
from __future__ import annotations

import inspect
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..io import versions, write_json, write_text

__all__ = ["Check", "Context", "REPRODUCTIONS", "register", "run_reproduction", "have_matplotlib",
           "save_figure"]


@dataclass
class Check:
    """One prediction of SPEC.md section 6 that a run speaks to, with the measured number and the verdict."""

    claim: str       # the prediction in words, naming the paper (e.g. "Han 2025, Stage I: ...")
    measured: str    # the measured number(s), formatted by the code that computed them
    holds: bool


@dataclass
class Context:
    """What a reproduction gets: where to write, how many seeds, quick mode, threads, and a progress printer."""

    out: Path
    seeds: int = 1
    quick: bool = False
    threads: int | None = None
    log: Callable[[str], None] = print
    files: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """A file in the output folder, remembered for report.md's file list."""
        self.files.append(name)
        return self.out / name


@dataclass
class Reproduction:
    name: str
    title: str
    func: Callable[[Context], list[Check]]
    description: str = ""


REPRODUCTIONS: dict[str, Reproduction] = {}


def register(name: str, title: str, description: str = ""):
    """Decorator: register ``func(ctx) -> list[Check]`` as ``lnref reproduce NAME``."""
    def deco(func):
        REPRODUCTIONS[name] = Reproduction(name, title, func, description or inspect.cleandoc(func.__doc__ or ""))
        return func
    return deco


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_figure(fig, ctx: Context, name: str) -> None:
    """Save a matplotlib figure atomically as PNG into ctx.out."""
    import io as _io
    import matplotlib.pyplot as plt
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    from ..io import atomic_write
    with atomic_write(ctx.path(name), "wb") as fh:
        fh.write(buf.getvalue())


def _report(rep: Reproduction, ctx: Context, checks: list[Check], wall: float) -> str:
    lines = [f"# {rep.title}", "", rep.description, "",
             f"Command: `lnref reproduce {rep.name} --seeds {ctx.seeds}{' --quick' if ctx.quick else ''}`  ",
             f"Wall time: {wall:.1f} s on {platform.node()} ({time.strftime('%Y-%m-%d')})", "",
             "| prediction (SPEC.md section 6) | measured | holds |", "| --- | --- | --- |"]
    for c in checks:
        lines.append(f"| {c.claim} | {c.measured} | {'yes' if c.holds else '**no**'} |")
    held = sum(c.holds for c in checks)
    lines += ["", f"{held} of {len(checks)} predictions hold in this run.", "", "Files:", ""]
    lines += [f"- `{f}`" for f in ctx.files]
    if not have_matplotlib():
        lines += ["", "No figure: matplotlib is not installed (pip install 'lnref[plot]')."]
    return "\n".join(lines) + "\n"


def run_reproduction(name: str, ctx: Context) -> list[Check]:
    """Run one registered reproduction and write report.md and summary.json into ctx.out."""
    rep = REPRODUCTIONS[name]
    t0 = time.perf_counter()
    checks = rep.func(ctx)
    wall = time.perf_counter() - t0
    write_json(ctx.out / "summary.json", {
        "reproduction": name, "seeds": ctx.seeds, "quick": ctx.quick, "wall_seconds": wall,
        "versions": versions(), "checks": [c.__dict__ for c in checks]})
    write_text(ctx.out / "report.md", _report(rep, ctx, checks, wall))
    return checks
