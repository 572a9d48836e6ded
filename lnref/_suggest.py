"""'Did you mean ...?' for mistyped names (flags, config fields, reproduction names)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest", "did_you_mean"]


def suggest(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The closest names to ``word`` among ``choices`` (at most ``n``, best first; empty when none is close).

    Parameters
    ----------
    word : str
        What the user typed (e.g. ``'stpes'``, ``'--stpes'``, ``'han2052'``).
    choices : iterable of str
        The allowed names.
    n : int
        How many suggestions at most.
    cutoff : float
        Similarity threshold in [0, 1] of :func:`difflib.get_close_matches`.

    Examples
    --------
    >>> suggest("stpes", ["steps", "seed", "sigma0"])
    ['steps']
    >>> suggest("han2052", ["han2025", "kou2023", "huang2025"])
    ['han2025']
    """
    choices = [str(c) for c in choices]
    word = str(word)
    exact = [c for c in choices if c.lower() == word.lower()]
    if exact:
        return exact[:n]
    return difflib.get_close_matches(word, choices, n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'steps'?)"`` for the closest choice, or ``""`` when none is close."""
    best = suggest(word, choices)
    return f" (did you mean {best[0]!r}?)" if best else ""
