"""The package's layout (docs/DESIGN.md "Layers"): folders are layers, and no module is over MAX_LINES lines."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500

# modules still over MAX_LINES, each waiting to be split by job (the list only shrinks: a stale entry fails)
WAITING: dict[str, str] = {}

#: the only modules allowed directly in lnref/ (everything else lives in a layer's folder)
TOP_LEVEL = {
    "__init__.py",
    "__main__.py",
    "_lazy.py",
    "_lock.py",
    "_spec.py",
    "_suggest.py",
    "io.py",
    "testing.py",
}


def line_counts(root: Path = ROOT) -> dict[str, int]:
    """Lines of every module of the package, by path relative to ``root``."""
    return {
        p.relative_to(root).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted((root / "lnref").rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def too_long(counts: dict[str, int], waiting: dict[str, str]) -> list[str]:
    """The modules over MAX_LINES that are not waiting to be split."""
    return [f"{path}: {n} lines" for path, n in counts.items() if n > MAX_LINES and path not in waiting]


def test_no_module_is_over_500_lines():
    counts = line_counts()
    assert counts.get("lnref/__init__.py")  # the scan sees the package
    bad = too_long(counts, WAITING)
    assert not bad, f"split these modules by job (at most {MAX_LINES} lines each):\n" + "\n".join(bad)


def test_every_waiting_module_is_still_too_long():
    """An entry whose module was split (or removed) fails here, so WAITING only shrinks."""
    counts = line_counts()
    stale = [path for path in WAITING if counts.get(path, 0) <= MAX_LINES]
    assert not stale, f"remove from WAITING (now at most {MAX_LINES} lines or gone): {stale}"


def test_the_top_level_holds_only_the_shared_modules():
    flat = {p.name for p in (ROOT / "lnref").glob("*.py")}
    assert flat - TOP_LEVEL == set(), "put a new module in its layer's folder (docs/DESIGN.md 'Layers')"


def test_a_planted_long_module_is_found(tmp_path):
    pkg = tmp_path / "lnref" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "lnref" / "__init__.py").write_text("")
    (pkg / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (pkg / "short.py").write_text("x = 1\n" * MAX_LINES)
    counts = line_counts(tmp_path)
    assert too_long(counts, {}) == [f"lnref/sub/long.py: {MAX_LINES + 1} lines"]
    assert too_long(counts, {"lnref/sub/long.py": "waiting"}) == []
