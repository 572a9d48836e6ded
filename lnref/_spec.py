"""Where lnref's specification, SPEC.md, is installed (SPEC.md section 8).

SPEC.md is written at the top of the repository, where contributors read and edit it.  An identical copy,
``lnref/SPEC.md``, is package data (setup.cfg ``[options.package_data]``), so it is in every wheel and in every
install, editable or not, without symlinks or build-time copying; ``tests/test_spec.py`` fails when the two
differ and prints the command that brings the copy up to date.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["spec_path"]


def spec_path() -> Path:
    """The path of the installed SPEC.md, lnref's specification.

    Returns
    -------
    pathlib.Path
        An existing file: ``SPEC.md`` inside the installed ``lnref`` package.

    Raises
    ------
    FileNotFoundError
        If the package was installed without its data files (for example from a source tree copied by hand);
        reinstall lnref with pip.

    Examples
    --------
    >>> import lnref
    >>> print(lnref.spec_path().read_text()[:9])  # doctest: +SKIP
    # lnref s
    """
    path = Path(str(resources.files("lnref").joinpath("SPEC.md")))
    if not path.is_file():
        raise FileNotFoundError(
            f"lnref's SPEC.md is missing from the installed package (looked for {path}); "
            "reinstall lnref with pip, which installs it as package data"
        )
    return path
