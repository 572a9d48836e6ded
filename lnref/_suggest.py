"""'Did you mean ...?' for mistyped names (flags, config fields, reproduction names).

Besides spelling (:mod:`difflib`), the names other frameworks use for lnref's config fields are mapped to them
(:data:`SYNONYMS`): a PyTorch user's ``--lr`` is lnref's ``--eta``, ``width``/``channels`` is ``m``, ``epochs``
is ``steps`` (full-batch GD: one step is one epoch).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest", "did_you_mean", "synonym", "SYNONYMS"]

#: other frameworks' names -> (lnref's Config field, what it is); matched after lower-casing and with '-' as '_'
SYNONYMS: dict[str, tuple[str, str]] = {
    **{
        k: ("eta", "the learning rate (step size) of GD")
        for k in ("lr", "learning_rate", "learningrate", "step_size", "stepsize", "alpha")
    },
    **{
        k: ("m", "the number of filters per class (the network's width)")
        for k in (
            "width",
            "channels",
            "out_channels",
            "num_channels",
            "n_channels",
            "hidden",
            "hidden_size",
            "hidden_dim",
            "num_filters",
            "n_filters",
            "filters",
            "neurons",
            "num_neurons",
        )
    },
    **{
        k: ("steps", "the number of GD steps (full batch: one step is one epoch)")
        for k in (
            "epochs",
            "epoch",
            "num_epochs",
            "n_epochs",
            "max_epochs",
            "iterations",
            "iters",
            "num_iters",
            "n_iters",
            "num_steps",
            "n_steps",
            "max_steps",
            "max_iter",
            "niter",
        )
    },
    **{
        k: ("n", "the number of training samples")
        for k in ("samples", "num_samples", "n_samples", "n_train", "num_train", "train_size")
    },
    **{k: ("d", "the dimension of each patch") for k in ("dim", "dimension", "input_dim", "in_features")},
    **{
        k: ("tau", "the label-flip rate of the training labels")
        for k in ("noise_rate", "label_noise", "flip_rate", "flip_prob", "label_noise_rate")
    },
    **{k: ("sigma0", "the standard deviation of the initial weights") for k in ("init_std", "init_scale")},
}


def _norm(name: str) -> str:
    return str(name).lstrip("-").replace("-", "_").lower()


def synonym(word: str, choices: Iterable[str]) -> tuple[str, str] | None:
    """(the choice, what it is) when ``word`` is another framework's name for one of ``choices``, else None.

    >>> synonym("--lr", ["--eta", "--steps"])
    ('--eta', 'the learning rate (step size) of GD')
    >>> synonym("epochs", ["eta", "steps"])[0]
    'steps'
    """
    hit = SYNONYMS.get(_norm(word))
    if hit is None:
        return None
    target, what = hit
    for c in choices:
        if _norm(c) == target:
            return str(c), what
    return None


def suggest(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The closest names to ``word`` among ``choices`` (at most ``n``, best first; empty when none is close).

    Parameters
    ----------
    word : str
        What the user typed (e.g. ``'stpes'``, ``'--stpes'``, ``'han2052'``, ``'--lr'``).
    choices : iterable of str
        The allowed names.
    n : int
        How many suggestions at most.
    cutoff : float
        Similarity threshold in [0, 1] of Python's ``difflib.get_close_matches``.

    Another framework's name for a field (:data:`SYNONYMS`) comes first, then a case-insensitive exact match,
    then the closest spellings.

    Examples
    --------
    >>> suggest("stpes", ["steps", "seed", "sigma0"])
    ['steps']
    >>> suggest("han2052", ["han2025", "kou2023", "huang2025"])
    ['han2025']
    >>> suggest("--width", ["--init", "--m", "--steps"])
    ['--m']
    """
    choices = [str(c) for c in choices]
    word = str(word)
    syn = synonym(word, choices)
    if syn is not None:
        return [syn[0]]
    exact = [c for c in choices if c.lower() == word.lower()]
    if exact:
        return exact[:n]
    return difflib.get_close_matches(word, choices, n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'steps'?)"`` for the closest choice, or ``""`` when none is close; for another
    framework's name, also what lnref's name means (``" (did you mean 'eta'? lnref's name for the learning rate
    ...)"``)."""
    choices = list(choices)
    syn = synonym(word, choices)
    if syn is not None:
        return f" (did you mean {syn[0]!r}? lnref's name for {syn[1]})"
    best = suggest(word, choices)
    return f" (did you mean {best[0]!r}?)" if best else ""
