"""SPEC.md, the project's specification, and the documents that ship with the project.

- SPEC.md has the eight sections the code cites (SPEC.md section 8) and section 5 numbers the identities 1-10.
- Every citation of SPEC.md in lnref/, tests/, bench/ and README.md ("SPEC.md section 4", "SPEC section 6",
  "SPEC.md sections 3-4", "SPEC.md 2 and 4", "SPEC.md sections 1, 2 and 4", "SPEC.md identity 7",
  "identity 5.1", ...) names a section or identity that exists; the parser itself is tested on citations that
  must be flagged.
- Every test SPEC.md names exists, and every ``lnref.`` name it mentions can be imported.
- SPEC.md ships with the package (``lnref.spec_path()``), and the version, changelog and citation file agree.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import lnref
from lnref import _spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "SPEC.md"

SECTIONS = {
    1: "Data",
    2: "Network",
    3: "Loss and gradient descent",
    4: "Signal-noise decomposition",
    5: "Exact identities",
    6: "What the theory predicts",
    7: "Implementation conventions",
    8: "Sources, tests and kernels",
    9: "Training methods against label noise",
}
N_IDENTITIES = 10

# Where citations are looked for.  The copies of SPEC.md speak *about* citations ("SPEC.md section N") and this
# file holds deliberately broken ones for the parser's own test, so they are not scanned.
SCANNED = [ROOT / "README.md"] + [
    p
    for top in ("lnref", "tests", "bench")
    for p in sorted((ROOT / top).rglob("*"))
    if p.suffix in (".py", ".md", ".txt", ".toml", ".cfg")
]
NOT_SCANNED = {ROOT / "lnref" / "SPEC.md", Path(__file__).resolve()}


# ------------------------------------------------------------------------------------------------ parsing
def headings(text: str) -> dict[int, str]:
    """{N: title} of the ``## N. Title`` headings of a SPEC.md text, in order of appearance."""
    found: dict[int, str] = {}
    for num, title in re.findall(r"^## (\d+)\. (.+?)\s*$", text, flags=re.M):
        if int(num) in found:
            raise AssertionError(f"SPEC.md has two sections numbered {num}")
        found[int(num)] = title
    return found


def section_body(text: str, number: int) -> str:
    """The text of section ``number`` (up to the next ``## `` heading)."""
    m = re.search(rf"^## {number}\. .*?$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if m is None:
        raise AssertionError(f"SPEC.md has no section {number}")
    return m.group(1)


def identity_numbers(text: str) -> list[int]:
    """The numbers of the identities of section 5: its top-level numbered list items ``N. ...``."""
    return [int(k) for k in re.findall(r"^(\d+)\. ", section_body(text, 5), flags=re.M)]


def _joined(text: str) -> str:
    """Source text with line breaks undone: adjacent string literals across lines are concatenated
    (``"...SPEC.md sections "`` + newline + ``"2-4"``), and a line break with its indentation and a comment's
    ``#`` becomes one space, so a citation wrapped over two lines reads as one."""
    text = re.sub(r"""["']\s*\n\s*[rRbBfFuU]{0,2}["']""", "", text)
    return re.sub(r"[ \t]*\n[ \t]*(?:#[ \t]*)?", " ", text)


_NUM = r"\d+(?:\s*[-\u2013]\s*\d+)?"  # 4 or 3-4
_SPEC = r"\bSPEC(?:\.md)?"
SECTION_RE = re.compile(
    _SPEC + r"(?:'s)?[ \t(]{0,3}(?:sections?[ \t]+)?(?P<nums>" + _NUM + r"(?:\s*(?:,|and|&)\s*" + _NUM + r")*)"
)
DANGLING_RE = re.compile(_SPEC + r"[ \t(]{0,3}sections?\b(?![ \t]*\d)")
IDENTITY_RES = (
    re.compile(r"\bidentit(?:y|ies)[ \t]+5\.(?P<k>\d+)"),
    re.compile(_SPEC + r"(?:'s)?[ \t]+identit(?:y|ies)[ \t]+(?P<k>\d+)"),
    re.compile(_SPEC + r"[ \t(]{0,3}section[ \t]+5,?[ \t]+identit(?:y|ies)[ \t]+(?P<k>\d+)"),
)


@dataclass(frozen=True)
class Citation:
    where: str  # file (and a short excerpt)
    kind: str  # "section", "identity" or "malformed"
    number: int  # the section or identity number (0 for malformed)


def _numbers(nums: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*(?:,|and|&)\s*", nums.strip()):
        bounds = [int(b) for b in re.split(r"\s*[-\u2013]\s*", part)]
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise AssertionError(f"backwards section range {part!r}")
        out.extend(range(bounds[0], bounds[-1] + 1))
    return out


def citations(text: str, where: str = "<text>") -> list[Citation]:
    """Every citation of SPEC.md in ``text``: sections, identities, and "SPEC.md section" without a number."""
    text = _joined(text)
    found: list[Citation] = []
    for m in SECTION_RE.finditer(text):
        excerpt = f"{where}: {text[m.start() : m.end() + 20]!r}"
        found += [Citation(excerpt, "section", k) for k in _numbers(m.group("nums"))]
    for m in DANGLING_RE.finditer(text):
        found.append(Citation(f"{where}: {text[m.start() : m.end() + 20]!r}", "malformed", 0))
    for rx in IDENTITY_RES:
        for m in rx.finditer(text):
            found.append(Citation(f"{where}: {text[m.start() : m.end() + 20]!r}", "identity", int(m.group("k"))))
    return found


def unresolved(cites: list[Citation], spec_text: str) -> list[Citation]:
    """The citations that name no section or identity of ``spec_text``."""
    sections = set(headings(spec_text))
    idents = set(identity_numbers(spec_text))
    return [
        c
        for c in cites
        if c.kind == "malformed"
        or (c.kind == "section" and c.number not in sections)
        or (c.kind == "identity" and (5 not in sections or c.number not in idents))
    ]


def _spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------ tests
def test_spec_has_the_nine_sections_in_order():
    assert headings(_spec_text()) == SECTIONS
    assert list(headings(_spec_text())) == sorted(SECTIONS)


def test_section_5_numbers_the_identities_1_to_10():
    assert identity_numbers(_spec_text()) == list(range(1, N_IDENTITIES + 1))


def test_every_citation_of_spec_in_the_project_resolves():
    spec = _spec_text()
    cites: list[Citation] = []
    for path in SCANNED:
        if path.resolve() in NOT_SCANNED or not path.is_file():
            continue
        cites += citations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    bad = unresolved(cites, spec)
    assert not bad, "citations of SPEC.md that name no section/identity of it:\n" + "\n".join(c.where for c in bad)
    # the scan really sees the project's citations (a parser that finds nothing would pass the line above)
    sections_cited = {c.number for c in cites if c.kind == "section"}
    assert len(cites) > 100 and sections_cited >= {1, 2, 3, 4, 5, 6}, (len(cites), sections_cited)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("see SPEC.md section 4.", [("section", 4)]),
        ("(SPEC section 6)", [("section", 6)]),
        ("SPEC.md sections 3-4", [("section", 3), ("section", 4)]),
        ("SPEC.md 2 and 4", [("section", 2), ("section", 4)]),
        ("SPEC.md sections 1, 2 and 4 (test distributions)", [("section", 1), ("section", 2), ("section", 4)]),
        ("SPEC.md (sections 1-3).", [("section", 1), ("section", 2), ("section", 3)]),
        ("SPEC.md section 5, identity 7: margin", [("section", 5), ("identity", 7)]),
        ("(SPEC.md identity 4)", [("identity", 4)]),
        ("(SPEC.md section 4, identity 5.1)", [("section", 4), ("identity", 1)]),
        ('msg = ("compare with SPEC.md sections "\n         "2-4")', [("section", 2), ("section", 3), ("section", 4)]),
        ("# SPEC.md section\n    # 6: the theory", [("section", 6)]),
        ('metavar="FIELD=SPEC", help="x"', []),
    ],
)
def test_citation_parser_reads_every_form(text, expected):
    assert sorted((c.kind, c.number) for c in citations(text)) == sorted(expected)


@pytest.mark.parametrize(
    "text, flagged",
    [
        ("fake: SPEC.md section 12", [12]),
        ("SPEC.md sections 7-12", [10, 11, 12]),
        ("SPEC section 10 and SPEC.md 2 and 14", [10, 14]),
        ("SPEC.md identity 11", [11]),
        ("identity 5.12", [12]),
        ("see SPEC.md section for details", [0]),
        ("SPEC.md section 4 and SPEC.md identity 10", []),
    ],
)
def test_citations_that_do_not_resolve_are_flagged(text, flagged):
    bad = unresolved(citations(text), _spec_text())
    assert sorted(c.number for c in bad) == flagged


def test_unresolved_sees_a_missing_section_and_identity():
    spec = _spec_text()
    without_7 = re.sub(r"^## 7\. ", "## Seven. ", spec, flags=re.M)
    assert [c.number for c in unresolved(citations("SPEC.md section 7"), without_7)] == [7]
    without_identity_10 = re.sub(r"^10\. ", "ten. ", spec, flags=re.M)
    assert [c.number for c in unresolved(citations("SPEC.md identity 10"), without_identity_10)] == [10]


def test_every_test_named_in_spec_exists():
    named = sorted(set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", _spec_text())))
    assert len(named) >= 20
    missing = []
    for path, name in named:
        src = ROOT / path
        if not src.is_file() or not re.search(rf"^def {name}\(", src.read_text(encoding="utf-8"), flags=re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"SPEC.md names tests that do not exist: {missing}"
    # every identity of section 5 names at least one test
    for k, item in enumerate(re.split(r"^\d+\. ", section_body(_spec_text(), 5), flags=re.M)[1:], start=1):
        assert "Test: `tests/" in item, f"identity {k} names no test"


def _resolve(name: str) -> bool:
    """Whether the dotted ``name`` imports from the lnref under test.  A module found elsewhere does not count (and
    is not imported): in a git worktree, an editable install of another checkout can supply submodules the worktree
    lacks."""
    package_dir = Path(lnref.__file__).resolve().parent
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for i in range(1, len(parts)):
        if hasattr(obj, "__path__"):  # a package: the next part may be a submodule
            spec = importlib.util.find_spec(".".join(parts[: i + 1]))
            if spec is not None:
                if spec.origin is None or not Path(spec.origin).resolve().is_relative_to(package_dir):
                    return False
                obj = importlib.import_module(".".join(parts[: i + 1]))
                continue
        if not hasattr(obj, parts[i]):
            return False
        obj = getattr(obj, parts[i])
    return True


def _lnref_names() -> list[str]:
    return sorted(set(re.findall(r"`(lnref(?:\.\w+)+)(?:\(\))?`", _spec_text())))


def test_every_lnref_name_in_spec_imports():
    names = list(_lnref_names())
    assert len(names) >= 10
    missing = [n for n in names if not _resolve(n)]
    assert not missing, f"SPEC.md names code that does not exist: {missing}"


def test_resolver_can_fail():
    assert _resolve("lnref.decompose") and _resolve("lnref.data.gram.sample_gram")
    assert not _resolve("lnref.no_such_function") and not _resolve("lnref.data.gram.no_such_function")


# ------------------------------------------------------------------------------------------------ shipping
def test_the_packaged_copy_of_spec_is_identical():
    packaged = ROOT / "lnref" / "SPEC.md"
    assert packaged.read_bytes() == SPEC.read_bytes(), (
        "lnref/SPEC.md (the copy installed with the package) differs from SPEC.md: run `cp SPEC.md lnref/SPEC.md`"
    )


def test_setup_cfg_ships_spec_and_py_typed_and_reads_the_version_from_the_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    data = {f.strip() for f in cfg["options.package_data"]["lnref"].replace("\n", ",").split(",") if f.strip()}
    assert {"SPEC.md", "py.typed"} <= data
    assert (ROOT / "lnref" / "py.typed").is_file()
    assert cfg["metadata"]["version"].strip() == "attr: lnref.__version__"


def test_spec_path_returns_the_installed_spec():
    path = _spec.spec_path()
    assert path.is_file() and path.name == "SPEC.md" and path.parent == Path(lnref.__file__).parent
    assert path.read_bytes() == SPEC.read_bytes()


def test_spec_path_says_what_is_wrong_when_the_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(_spec.resources, "files", lambda package: tmp_path)
    with pytest.raises(FileNotFoundError, match="reinstall lnref"):
        _spec.spec_path()


def test_changelog_and_citation_name_the_package_version():
    version = lnref.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.M)
    assert released and released[0] == version, (released, version)
    assert re.search(r"^## \[Unreleased\]", changelog, flags=re.M)
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(rf'^version: "?{re.escape(version)}"?\s*$', cff, flags=re.M)
    assert re.search(r'^cff-version: "?1\.2\.0"?\s*$', cff, flags=re.M)
    for arxiv in ("2505.18909", "2202.06526", "2303.04145", "2510.17526"):
        assert arxiv in cff, f"CITATION.cff lacks the paper arXiv:{arxiv}"
    assert "MIT" in (ROOT / "LICENSE").read_text(encoding="utf-8").splitlines()[0]
