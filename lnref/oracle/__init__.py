"""The oracle: fixtures, tolerances, the ONE NumPy replay of the dynamics and its variants (known mistakes),
verdicts and diagnoses, and the ``export`` / ``compare`` subcommands.  The public entry point is
:mod:`lnref.testing`.

Modules: :mod:`~lnref.oracle.tolerances` (tiers, bounds from measured spread); fixtures:
:mod:`~lnref.oracle.fixtures` (making them), :mod:`~lnref.oracle.fixture_data` (the record and its validation),
:mod:`~lnref.oracle.fixture_file` (the file format, save/load, integrity); the replay:
:mod:`~lnref.oracle.replay` (the dynamics), :mod:`~lnref.oracle.replay_core` (the model, gradient and one
step), :mod:`~lnref.oracle.replay_variant` (its switches), :mod:`~lnref.oracle.replay_coteaching` (two networks),
:mod:`~lnref.oracle.replay_losses` (losses, training methods, ELR's targets); the catalogue:
:mod:`~lnref.oracle.catalogue` (the known mistakes, which apply), :mod:`~lnref.oracle.mistake` (an entry and its
text), :mod:`~lnref.oracle.mistakes_model` (the entries for the model, loss, optimiser and export);
:mod:`~lnref.oracle.report` (verdict and diagnosis), :mod:`~lnref.oracle.intake` (taking in the user's arrays),
:mod:`~lnref.oracle.checks` (check_gradient, check_step, assert_*: the verdicts), :mod:`~lnref.oracle.trajectory`
(compare_trajectory), :mod:`~lnref.oracle.diagnosis` (diagnosing by replay and checked hints),
:mod:`~lnref.oracle.ratio` (the measured ratio when nothing in the catalogue fits), :mod:`~lnref.oracle.coverage`
(the special points a fixture exercised), :mod:`~lnref.oracle.cli`.
"""
