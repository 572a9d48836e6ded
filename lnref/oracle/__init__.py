"""The oracle: fixtures, tolerances, the ONE NumPy replay of the dynamics and its variants (known mistakes),
verdicts and diagnoses, and the ``export`` / ``compare`` subcommands.  The public entry point is
:mod:`lnref.testing`.

Modules: :mod:`~lnref.oracle.tolerances` (tiers, bounds from measured spread), :mod:`~lnref.oracle.fixtures`
(export/load, integrity), :mod:`~lnref.oracle.replay` (the dynamics and their variants),
:mod:`~lnref.oracle.catalogue` (known mistakes), :mod:`~lnref.oracle.report` (verdict and diagnosis),
:mod:`~lnref.oracle.intake` (taking in the user's arrays), :mod:`~lnref.oracle.checks` (check_gradient, check_step,
compare_trajectory, assert_*: the verdicts), :mod:`~lnref.oracle.diagnosis` (diagnosing by replay and checked hints),
:mod:`~lnref.oracle.ratio` (the measured ratio when nothing in the catalogue fits), :mod:`~lnref.oracle.coverage`
(the special points a fixture exercised), :mod:`~lnref.oracle.cli`.
"""
