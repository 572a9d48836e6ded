"""Each formula of SPEC.md section 8 is written once, in lnref/kernels/equations.py (the network) or
lnref/kernels/losses.py (the losses) (docs/DESIGN.md "One formula, one function").

The package's code (comments and docstrings removed) is scanned for the signatures of each formula: how the
logistic loss, its derivative, sigma, sigma', the output divisor, the step sizes, the bias-gradient scale and the
scalings of the inner products in coefficients are written.  A signature outside the HOMES fails the
test, unless its (file, function) is in :data:`ALLOWED` with a reason.  The oracle's NumPy replay
(``lnref/oracle/replay*.py``) is the one declared second implementation (SPEC.md section 8).

``kernels/equations.py`` writes each formula once for the kernels (an ``inline`` numba function); where Python code
needs it on arrays, its array form stands next to it there, and :func:`test_array_forms_agree_with_the_kernels` checks
that the two agree bit for bit.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lnref"
#: the files where formulas live (a formula may stand in either, once)
HOMES = ("lnref/kernels/equations.py", "lnref/kernels/losses.py")
REPLAY = "lnref/oracle/replay.py"

_E = r"(?:np\.|math\.|numpy\.)?"
# formula -> regular expressions matching the ways it is written (on code with comments and strings removed)
SIGNATURES: dict[str, list[str]] = {
    "logistic loss l(z) = log(1 + exp(-z))": [
        _E + r"log1p\(\s*" + _E + r"exp\(",
        _E + r"logaddexp\(\s*0",
        _E + r"log\(\s*1(?:\.0)?\s*\+\s*" + _E + r"exp\(",
        r"softplus\(",
    ],
    "l'(z) = -1/(1 + exp(z)) (the sigmoid)": [
        r"1(?:\.0)?\s*/\s*\(\s*1(?:\.0)?\s*\+\s*" + _E + r"exp\(",
        r"\bexpit\(",
        r"\bsigmoid\(",
    ],
    "sigma(z) = max(0, z)^q": [
        _E + r"maximum\([^()]*\)\s*\*\*",
        r"\bmax\(\s*0(?:\.0)?\s*,[^()]*\)\s*\*\*",
        r"\brelu\([^()]*\)\s*\*\*",
    ],
    "sigma'(z) = q max(0, z)^(q - 1)": [r"\*\*\s*\(\s*q\s*-\s*1"],
    "output divisor 1/(output_scale c_p)": [r"patch_reduce\s*==\s*[\"']mean[\"']", r"\bm\s*\*\s*cp\b"],
    "step sizes eta ||.||^2/(n div) and the gradient scale s_j/(n div)": [r"/\s*\(\s*n\s*\*\s*div\s*\)"],
    "coefficient scalings <., mu>/||mu||^2 (0 when mu = 0), <., xi_i>/||xi_i||^2": [
        r"/\s*(?:self\.)?mu_sq\s+if\s+(?:self\.)?mu_sq\s*>\s*0",
        r"/\s*(?:self\.)?xi_sq\s*\[\s*:\s*,\s*None\s*\]",
        r"/\s*(?:self\.)?xi_sq\[\s*\w+\s*\]",
    ],
}

# (file, function) -> why this signature may stand there.  "*" matches any function of the file.
ALLOWED: dict[tuple[str, str], str] = {
    (REPLAY, "*"): "the oracle's NumPy replay: a second implementation on purpose (SPEC.md section 8), so that "
    "known mistakes can be replayed as switches",
    ("lnref/oracle/replay_core.py", "*"): "the replay's model and gradient (part of the declared second "
    "implementation)",
    ("lnref/oracle/replay_losses.py", "*"): "the replay's losses (part of the declared second implementation)",
    ("lnref/oracle/catalogue.py", "*"): "names the replay's variants (wrong sigmoid argument, ...) in messages",
    ("lnref/oracle/mistakes_model.py", "*"): "names the replay's variants (wrong sigmoid argument, ...) in messages",
    ("lnref/examples/torch_model.py", "*"): "an independent implementation checked against lnref",
    ("lnref/examples/jax_model.py", "*"): "an independent implementation checked against lnref",
    ("lnref/examples/conv1d_model.py", "*"): "an independent implementation checked against lnref",
    ("lnref/config/__init__.py", "output_divisor"): "the divisor's one function, on Config's fields (Python side: the "
    "kernels take div as an argument); Config.output_divisor and "
    "model's functions call it",
}


def code_lines(source: str) -> list[str]:
    """The source with comments and docstrings blanked, line by line (other strings stay: ``== "mean"``)."""
    out = [list(line) for line in source.splitlines()]

    def blank(r0: int, c0: int, r1: int, c1: int) -> None:
        for r in range(r0, r1 + 1):
            a = c0 if r == r0 else 0
            b = c1 if r == r1 else len(out[r - 1])
            out[r - 1][a:b] = " " * (b - a)

    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            blank(*tok.start, *tok.end)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            blank(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
    return ["".join(chars) for chars in out]


def functions_by_line(source: str) -> dict[int, str]:
    """line -> name of the innermost function (or class) defining it; module level is ``<module>``."""
    where: dict[int, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for line in range(node.lineno, node.end_lineno + 1):
                if line not in where or where[line][1] < node.lineno:
                    where[line] = (node.name, node.lineno)
    return {line: name for line, (name, _) in where.items()}


def duplicates(files: list[Path], root: Path = ROOT, allowed=None) -> list[str]:
    """``file:line (function): formula -- code`` for every signature found outside its home and the allow-list."""
    allowed = ALLOWED if allowed is None else allowed
    found = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        if rel in HOMES:
            continue
        source = path.read_text(encoding="utf-8")
        funcs = functions_by_line(source)
        for lineno, line in enumerate(code_lines(source), 1):
            for formula, patterns in SIGNATURES.items():
                if any(re.search(p, line) for p in patterns):
                    fn = funcs.get(lineno, "<module>")
                    if (rel, fn) not in allowed and (rel, "*") not in allowed:
                        found.append(f"{rel}:{lineno} ({fn}): {formula} -- {line.strip()}")
    return found


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_formula_is_written_twice():
    found = duplicates(package_files())
    assert not found, (
        "a formula of SPEC.md section 8 written outside lnref/kernels/equations.py and losses.py; call the function "
        "there instead (or, for a declared exception, add it to ALLOWED with a reason):\n" + "\n".join(found)
    )


def test_every_signature_matches_its_home():
    """Each formula's signatures match how its home writes it, so the scan looks for the real thing."""
    home = "\n".join("\n".join(code_lines((ROOT / h).read_text(encoding="utf-8"))) for h in HOMES)
    for formula, patterns in SIGNATURES.items():
        if formula.startswith(("sigma(z)", "output divisor")):
            continue  # sigma: a branch on z > 0 there; the divisor: config.output_divisor (ALLOWED)
        assert any(re.search(p, home) for p in patterns), formula


def test_every_allowed_entry_names_a_real_function():
    """A stale allow-list entry (the duplicate was merged, the function renamed) fails, so the list shrinks."""
    for (rel, fn), why in ALLOWED.items():
        assert why.strip()
        path = ROOT / rel
        assert path.is_file(), rel
        if fn != "*":
            assert fn in set(functions_by_line(path.read_text(encoding="utf-8")).values()), (rel, fn)


def test_a_planted_duplicate_is_found(tmp_path):
    pkg = tmp_path / "lnref"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "kernels" / "losses.py").write_text(
        "import math\n\ndef logistic_loss(z):\n    return math.log1p(math.exp(-z))\n"
    )
    (pkg / "kernels" / "equations.py").write_text("def dact(z, q):\n    return q * z ** (q - 1.0)\n")
    # a kernel module next to the homes is not a home
    (pkg / "kernels" / "weights.py").write_text("import math\n\ndef dl(z):\n    return -1.0 / (1.0 + math.exp(z))\n")
    (pkg / "mine.py").write_text(
        '"""Docstrings may say log1p(exp(-z))."""\nimport numpy as np\n\n\n'
        "def my_loss(z):\n    # a comment may too: log1p(exp(-z))\n"
        "    return np.log1p(np.exp(-z)).mean()\n\n\n"
        "def my_div(m, patch_reduce):\n"
        "    return m * (2.0 if patch_reduce == 'mean' else 1.0)\n"
    )
    files = sorted(pkg.rglob("*.py"))
    found = duplicates(files, tmp_path, allowed={})
    assert [f.split(" -- ")[0] for f in found] == [
        "lnref/kernels/weights.py:4 (dl): l'(z) = -1/(1 + exp(z)) (the sigmoid)",
        "lnref/mine.py:7 (my_loss): logistic loss l(z) = log(1 + exp(-z))",
        "lnref/mine.py:11 (my_div): output divisor 1/(output_scale c_p)",
    ]
    assert (
        duplicates(files, tmp_path, allowed={("lnref/mine.py", "my_loss"): "x", ("lnref/mine.py", "my_div"): "y"})
        == found[:1]
    )


def test_array_forms_agree_with_the_kernels():
    """The array forms of kernels/equations.py (for NumPy callers) give the bits of the inline functions the kernels
    call, on values of both signs, zeros, huge and tiny ones, and with mu = 0."""
    import numpy as np

    from lnref.kernels import equations as E

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.standard_normal(40) * 10.0 ** rng.integers(-300, 300, 40), [0.0, -0.0, 1e308, -5e-324]])
    xi_sq = np.abs(rng.standard_normal(v.size)) * 10.0 ** rng.integers(-5, 5, v.size) + 1e-300
    Gt = rng.permuted(np.tile(v, (v.size, 1)), axis=1)
    for mu_sq in (0.0, 3.7, 1e-310, 2.5e300):
        with np.errstate(all="ignore"):  # overflow to inf is part of what is compared
            ct_mu, Gtn = E.scaled_test_inner(v, mu_sq, Gt, xi_sq)
        assert ct_mu.view(np.int64).tolist() == np.array([E.over_mu_sq(x, mu_sq) for x in v]).view(np.int64).tolist()
        want = np.array([[E.over_xi_sq(Gt[i, t], xi_sq[i]) for t in range(v.size)] for i in range(v.size)])
        assert Gtn.view(np.int64).tolist() == want.view(np.int64).tolist()
    assert E.scaled_test_inner(v, 1.0)[1] is None
    sj = np.where(np.arange(6) < 3, 1.0, -1.0)
    for n, div in ((7, 1.0), (200, 20.0), (3, 0.5)):
        got = E.gradient_scale_array(sj, n, div)
        assert (
            got.view(np.int64).tolist() == np.array([E.gradient_scale(s, n, div) for s in sj]).view(np.int64).tolist()
        )
