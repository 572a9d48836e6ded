"""Figures (matplotlib, optional: ``pip install 'lnref[plot]'``).

Every function takes logged histories (``Result.history``; column meanings in
:data:`lnref.model.metrics.HISTORY_COLUMNS`) or arrays and returns a matplotlib Figure; :func:`plot_history` also saves
when given a path, the others leave saving to the caller (:func:`lnref.reproduce.common.save_figure`).  Time axes
are symlog (linear below step 1, logarithmic above) starting at step 0, so step 0 and log-spaced steps both show.

Functions
---------
plot_history(result, path=None)
    One run at a glance (``lnref run`` draws it): training loss overall / clean / mislabelled, accuracies (training
    w.r.t. the observed labels, test), signal max gamma against the memorised noise max rho_bar on clean and on
    mislabelled samples (log scale); the two stages shaded and named when the run has mislabelled samples.
han_figure(panels)
    Han et al. (2025) Figure 1: one column per run; coefficients on a log scale (so Stage I, where they are small,
    is visible), accuracies below; stages shaded and named, boundaries as vertical lines; shared y scales.
selection_figure(history, selection, stages, test_columns, title="")
    Small-loss selection (precision, recall, mislabelled rejected) and test accuracies over training.
huang_figure(histories, ratio_key="memorisation_ratio", loss_levels=None)
    Plain GD against label-noise GD (Huang et al. 2025 Figure 2): memorisation/signal ratio, training losses
    (observed labels; flipped labels for label-noise GD) with reference levels, test accuracy.
methods_figure(steps, series, title="")
    Training methods side by side (``lnref reproduce methods``): per method the mean over seeds (+- SE band) of
    clean / mislabelled training accuracy, mislabelled predicted as their true label, max rho_bar over mislabelled
    samples (log scale), spurious and iid test error; each method's T1 marked.
methods_phase_figure(labels, taus, snrs, values, cbar_label=..., vmax=1, title="", hlines=())
    One panel per method over tau x SNR of one quantity (final fraction of mislabelled samples fitted, test error).
heatmap(values, x, y, xlabel=..., ylabel=..., title=..., cbar_label=..., nan_label=...)
    A grid of one metric with mathematical axis labels (:func:`math_label`), a colour bar label, and NaN cells
    hatched grey with a legend entry explaining them (e.g. "no mislabelled sample (tau = 0)").  For the
    reproductions' and sweeps' heatmaps.
math_label(name)
    Mathtext label of a Config field or metric name ("mu_norm" -> r"$\\|\\mu\\|$", "label_noise_gd" ->
    "label-noise GD", ...); unknown names are returned unchanged.
shade_stages(ax, stages, t_end), mark_stages(ax, stages)
    Stage I ([0, T1]) / Stage II ([T1, T2]) shading with their names, and the lines T1 (end of Stage I = start
    of Stage II), first mislabelled sample fitted (inside Stage II), T2 (end of Stage II).
"""

from __future__ import annotations

from .basic import MATH_LABELS, cell_edges_scaled, heatmap, mark_stages, math_label, plot_history, shade_stages
from .papers import han_figure, huang_figure, methods_figure, methods_phase_figure, selection_figure

__all__ = [
    "plot_history",
    "han_figure",
    "selection_figure",
    "huang_figure",
    "heatmap",
    "cell_edges_scaled",
    "math_label",
    "methods_figure",
    "methods_phase_figure",
    "mark_stages",
    "shade_stages",
    "MATH_LABELS",
]
