"""Every document the project cites exists (docs/DESIGN.md "Tests").

Scanned: the sources and documents under lnref/, tests/, bench/ and docs/, and README.md and SPEC.md.  A
reference is

- a document by name or path: ``SPEC.md``, ``docs/DESIGN.md``, ``CHANGELOG.md``, ``bench/README.md``,
  ``CITATION.cff`` (resolved from the top of the repository);
- a path into the project's folders: ``docs/...``, ``bench/...``, ``tests/...py`` (from the top);
- a relative Markdown link ``[text](target)`` in a .md file (from the file's own folder).

A missing one fails naming the citing file and line and the missing document.  The files lnref *writes* (a
reproduction's ``report.md``, ...) are names of outputs, not citations: :data:`OUTPUTS` lists them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".py", ".md", ".txt", ".toml", ".cfg")

# Document names that are outputs lnref writes, never files of the project (name -> who writes it)
OUTPUTS = {
    "report.md": "lnref reproduce writes report.md into its output folder (lnref/reproduce/common.py)",
    "kou2023_conventions.md": "lnref reproduce kou2023 writes it (lnref/reproduce/heatmaps.py)",
    "methods_table.md": "lnref reproduce methods writes it (lnref/reproduce/methods.py)",
}

DOC_RE = re.compile(r"(?<![\w./-])((?:\.\.?/)?(?:[\w-]+/)*[\w-]+\.(?:md|cff))\b")
PATH_RE = re.compile(r"(?<![\w./-])((?:docs|bench)/[\w./-]*[\w]|tests/[\w/]+\.py)")
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def scanned_files(root: Path = ROOT) -> list[Path]:
    """The files whose citations are checked (this file excluded: it holds planted broken ones)."""
    files = [root / "README.md", root / "SPEC.md"]
    for top in ("lnref", "tests", "bench", "docs"):
        files += [
            p
            for p in sorted((root / top).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return [p for p in files if p.exists() and p.resolve() != Path(__file__).resolve()]


def references(path: Path, text: str, root: Path = ROOT) -> list[tuple[int, str, Path]]:
    """(line, reference as written, where it must exist) for every citation in ``text`` (the file ``path`` of
    the project whose top folder is ``root``)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in DOC_RE.finditer(line):
            ref = m.group(1)
            if Path(ref).name in OUTPUTS:
                continue
            base = path.parent if ref.startswith(".") else root
            out.append((lineno, ref, base / ref))
        for m in PATH_RE.finditer(line):
            ref = m.group(1)
            if Path(ref).name not in OUTPUTS and not ref.endswith((".md", ".cff")):  # those: DOC_RE
                out.append((lineno, ref, root / ref))
        if path.suffix == ".md":
            for m in LINK_RE.finditer(line):
                target = m.group(1).split("#", 1)[0]
                if target and not re.match(r"[a-z][a-z0-9+.-]*:", target):  # not http:, mailto:, ...
                    out.append((lineno, target, path.parent / target))
    seen: set[tuple[int, Path]] = set()  # a Markdown link is also a document name: report it once
    return [r for r in out if (key := (r[0], Path(os.path.normpath(r[2])))) not in seen and not seen.add(key)]


def missing(files: list[Path], root: Path = ROOT) -> list[str]:
    """``file:line: cites REF, which does not exist (looked for PATH)`` for every unresolved reference."""
    bad = []
    for path in files:
        for lineno, ref, target in references(path, path.read_text(encoding="utf-8"), root):
            if not target.exists():
                bad.append(
                    f"{path.relative_to(root)}:{lineno}: cites {ref}, which does not exist "
                    f"(looked for {os.path.relpath(target, root)})"
                )
    return bad


def test_every_cited_document_exists():
    bad = missing(scanned_files())
    assert not bad, "documents cited but missing:\n" + "\n".join(bad)


def test_the_design_document_exists_and_is_cited_by_its_path():
    assert (ROOT / "docs" / "DESIGN.md").is_file()
    bare = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in scanned_files()
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\w/])DESIGN\.md", line)
    ]
    assert not bare, f"cite docs/DESIGN.md, not DESIGN.md: {bare}"


def test_a_planted_missing_document_is_found(tmp_path):
    """The scanner on a small tree: each kind of reference to a missing document is reported with file:line."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "SPEC.md").write_text("# spec\n")
    (tmp_path / "docs" / "DESIGN.md").write_text(
        "See [the spec](../SPEC.md) and [gone](../GONE.md#part).\n[web](https://example.org/x.md) [here](#numerics)\n"
    )
    (tmp_path / "pkg" / "mod.py").write_text(
        '"""SPEC.md section 1; docs/DESIGN.md "Numerics"."""\n'
        "# measured in bench/bench_nothing.py, see NOTES.md\n"
        "# writes report.md into its folder\n"
    )
    files = [tmp_path / "docs" / "DESIGN.md", tmp_path / "pkg" / "mod.py"]
    bad = missing(files, tmp_path)
    assert [b.split(", which")[0] for b in bad] == [
        "docs/DESIGN.md:1: cites ../GONE.md",
        "pkg/mod.py:2: cites NOTES.md",
        "pkg/mod.py:2: cites bench/bench_nothing.py",
    ]
    (tmp_path / "NOTES.md").write_text("")
    assert len(missing(files, tmp_path)) == 2
