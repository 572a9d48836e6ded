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


# ------------------------------------------------------------------ names of lnref's code in the documents
#: the documents whose ``lnref.x.y`` names must resolve (the CHANGELOG records old names on purpose)
NAMED_DOCS = ("README.md", "SPEC.md", "docs/DESIGN.md", "bench/README.md")
DOTTED = re.compile(r"(?<![\w/.])lnref(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
#: dotted strings that are not Python names: the ``kind`` marks of lnref's files
NOT_NAMES = {"lnref.run", "lnref.checkpoint", "lnref.fixture"}


def unresolved_names(texts: dict[str, str]) -> list[str]:
    """``lnref.x.y`` names in ``texts`` (document -> text) that are neither a module nor an attribute of one.
    A module that cannot be imported for want of an optional extra (jax) counts if its file exists."""
    import importlib
    import importlib.util
    import warnings

    bad = []
    for doc, text in texts.items():
        for name in sorted(set(DOTTED.findall(text))):
            parts = name.split(".")
            if name in NOT_NAMES or any(p.isupper() or (p[:1].isupper() and p[1:].islower()) for p in parts[1:2]):
                continue
            obj, k = None, len(parts)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                while k > 0:
                    try:
                        obj = importlib.import_module(".".join(parts[:k]))
                        break
                    except ModuleNotFoundError as exc:
                        if (
                            exc.name
                            and not exc.name.startswith("lnref")
                            and importlib.util.find_spec(".".join(parts[:k]))
                        ):
                            obj = "optional"  # the module exists; its extra is not installed here
                            break
                        k -= 1
                if obj == "optional":
                    continue
                for attr in parts[k:]:
                    if not hasattr(obj, attr):
                        bad.append(f"{doc}: {name}")
                        break
                    obj = getattr(obj, attr)
    return bad


def test_every_named_function_and_module_exists():
    """Each ``lnref.x.y`` a document names (a function, a class, a module) is there: a move or a rename that
    leaves a document behind fails here."""
    texts = {doc: (ROOT / doc).read_text(encoding="utf-8") for doc in NAMED_DOCS}
    bad = unresolved_names(texts)
    assert not bad, "the documents name code that does not exist:\n" + "\n".join(bad)


def test_a_planted_stale_name_is_found():
    text = "See `lnref.data.gram.sample_gram` and `lnref.gram.sample_gram` (0.1) and `lnref.kernels.nope.f`."
    assert unresolved_names({"doc.md": text + " `lnref.training.no_such_function`"}) == [
        "doc.md: lnref.kernels.nope.f",
        "doc.md: lnref.training.no_such_function",
    ]
