"""lnref.plotting: what each figure promises its reader (labels, scales, stages, NaN cells), on tiny
inputs."""

import numpy as np
import pytest

import lnref

mpl = pytest.importorskip("matplotlib", reason="needs the plot extra: pip install 'lnref[plot]'")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lnref.plotting import han_figure, heatmap, math_label, plot_history, selection_figure  # noqa: E402
from lnref.training.stages import detect_stages, small_loss_selection  # noqa: E402


@pytest.fixture(scope="module")
def noisy_run():
    cfg = lnref.Config(
        n=30, d=300, m=4, steps=60, log_every=0, log_points=25, tau=0.2, flips="exact", n_test=100, seed=3
    )
    return lnref.train(cfg, threads=1)


def _labels(fig):
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_plot_history_writes_a_png_with_labelled_panels_and_named_stages(noisy_run, tmp_path):
    path = tmp_path / "history.png"
    fig = plot_history(noisy_run, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 3 and all(_labels(fig))  # a y-label on every panel
    st = detect_stages(noisy_run)
    assert st.t1 is not None and st.first_noisy_fit is not None  # this run has both stages
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("Stage I") == 3 and texts.count("Stage II") == 3  # shaded and named in every panel
    assert fig.axes[0].get_yscale() == "log" and fig.axes[2].get_yscale() == "log"
    assert all(ax.get_xlim()[0] == 0 for ax in fig.axes)  # the time axis starts at step 0
    plt.close(fig)


def test_plot_history_saved_figure_uses_no_mathtext_and_no_pyplot(noisy_run, tmp_path):
    """The figure of every `lnref run` is drawn without matplotlib's mathtext (its parser costs ~0.3 s to set up) and
    outside pyplot (nothing left open): plain labels, plain log tick labels, no minor ticks."""
    before = plt.get_fignums()
    fig = plot_history(noisy_run, tmp_path / "history.png")
    assert plt.get_fignums() == before
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.get_legend().get_texts()] + [t.get_text() for t in ax.texts]
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        assert not [t for t in ax.get_xticklabels(minor=True) + ax.get_yticklabels(minor=True) if t.get_text()]
        if ax.get_yscale() == "log":
            assert len(ax.yaxis.get_minorticklocs()) == 0
    assert [t for t in texts if t] and not [t for t in texts if "$" in t]
    assert "signal max γ" in texts and "GD step t" in texts


def test_plot_history_without_label_noise_has_no_stages(tmp_path):
    res = lnref.train(
        lnref.Config(n=20, d=100, m=3, steps=20, tau=0.0, n_test=0, algorithm="label_noise_gd"), threads=1
    )
    fig = plot_history(res)
    assert not [t for ax in fig.axes for t in ax.texts]
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if "T1" in str(ln.get_label())]
    # label-noise GD: the flipped-label loss (mean over the flips) is drawn next to the observed-label loss
    flipped = [ln for ln in fig.axes[0].get_lines() if str(ln.get_label()).startswith("flipped labels")]
    assert len(flipped) == 1 and flipped[0].get_ydata()[-1] > res.history["loss"][-1]  # fitted: l(-m) > l(m)
    plt.close(fig)


def test_han_figure_log_coefficients_shared_scales_and_no_stages_without_noise(noisy_run):
    h, st = noisy_run.history, detect_stages(noisy_run)
    fig = han_figure([{"title": "noisy", "history": h, "stages": st}, {"title": "clean", "history": h, "stages": None}])
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[0, 0].get_yscale() == "log"  # Stage I visible: log coefficients
    assert axes[0, 0].get_ylim() == axes[0, 1].get_ylim()  # columns compared on one scale
    assert axes[1, 0].get_ylim() == axes[1, 1].get_ylim()
    assert all(ax.get_ylabel() for ax in axes.ravel())
    assert "test" not in axes[1, 0].get_ylabel()
    legend = " ".join(t.get_text() for t in axes[0, 0].get_legend().get_texts())
    assert r"\bar\rho" in legend and r"\gamma" in legend
    clean_lines = [str(ln.get_label()) for ax in axes[:, 1] for ln in ax.get_lines()]
    assert not any("T1" in s for s in clean_lines) and not axes[0, 1].texts  # no stages on the tau = 0 panel
    assert {"Stage I", "Stage II"} <= {t.get_text() for t in axes[0, 0].texts}
    plt.close(fig)


def test_selection_figure_has_no_negative_ticks_and_labels(noisy_run):
    st = detect_stages(noisy_run)
    fig = selection_figure(noisy_run.history, small_loss_selection(noisy_run), st, {"iid": "test_acc"})
    for ax in fig.axes:
        assert ax.get_ylabel()
        lo, hi = ax.get_xlim()
        assert lo == 0 and all(t >= 0 for t in ax.get_xticks() if lo <= t <= hi)  # no "-10^0" tick
    plt.close(fig)


def test_heatmap_explains_nan_cells_and_checks_shapes():
    x, y = np.linspace(0, 2, 5), np.array([10.0, 100.0, 1000.0])
    v = np.outer(np.log10(y), x)
    v[:, 0] = np.nan
    fig, ax = heatmap(
        v,
        x,
        y,
        xlabel=math_label("mu_norm"),
        ylabel=math_label("d"),
        yscale="log",
        title="t",
        cbar_label="fraction",
        nan_label="no mislabelled sample (tau = 0)",
    )
    assert ax.get_xlabel() == r"$\|\mu\|$" and ax.get_ylabel() == "$d$" and ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no mislabelled sample (tau = 0)"]
    cbar = [a for a in fig.axes if a is not ax]
    assert cbar and cbar[0].get_ylabel() == "fraction"
    fig.canvas.draw()
    plt.close(fig)
    fig, ax = heatmap(np.ones((3, 5)), x, y, xlabel="a", ylabel="b")
    assert ax.get_legend() is None  # no NaN, no NaN legend
    plt.close(fig)
    with pytest.raises(ValueError, match="len\\(y\\), len\\(x\\)"):
        heatmap(np.ones((5, 3)), x, y, xlabel="a", ylabel="b")


def test_math_label_uses_config_names():
    assert math_label("p") == r"label-noise GD flip rate $p$" and math_label("tau").endswith(r"$\tau$")
    assert math_label("label_noise_gd") == "label-noise GD" and math_label("unknown_field") == "unknown_field"
    # the labelled names are Config's own field names (the words of the reports and the CLI)
    assert {"mu_norm", "d", "n", "p", "tau", "eta", "sigma0", "sigma_p", "m", "q"} <= set(lnref.Config.field_names())


def test_stage_two_is_shaded_from_t1_and_the_lines_say_which_is_which(noisy_run):
    """Issue 23 item 2: one definition of Stage II ([T1, T2]) in the figure, and the first mislabelled fit is
    labelled as a step inside Stage II, not as its start."""
    st = detect_stages(noisy_run)
    assert st.t1 < st.first_noisy_fit
    fig = plot_history(noisy_run)
    ax = fig.axes[1]
    labels = [str(ln.get_label()) for ln in ax.get_lines()]
    assert any(lab.startswith("T1: end of Stage I = start of Stage II") for lab in labels)
    assert any(lab.startswith("first mislabelled sample fitted (inside Stage II)") for lab in labels)
    assert any(lab.startswith("T2: all mislabelled fitted = end of Stage II") for lab in labels)
    spans = sorted(p.get_x() for p in ax.patches if hasattr(p, "get_x"))
    assert spans == [0.0, float(st.t1)]  # Stage I from 0, Stage II from T1 (not from the first fit)
    plt.close(fig)


def test_history_legends_sit_below_the_panels_and_log_axes_have_readable_ticks(noisy_run):
    """Issue 23 item 7: no legend over the curves; a log axis spanning about a decade gets several labels."""
    fig = plot_history(noisy_run)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box, leg = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
        assert leg.y1 <= box.y0, ax.get_title()  # entirely below the axes
        if ax.get_yscale() == "log":
            lo, hi = ax.get_ylim()
            labelled = [t for t in ax.get_yticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]
            assert len(labelled) >= 3, (ax.get_title(), [t.get_text() for t in labelled])
    plt.close(fig)


def test_sweep_heatmaps_are_titled_in_words_on_a_fixed_fraction_scale():
    from lnref.sweeps.executors import SerialExecutor

    res = lnref.sweep(
        lnref.Config(n=8, d=16, m=2, steps=5, n_test=20, tau=0.2),
        {"mu_norm": [1.0, 2.0], "d": [16, 32]},
        executor=SerialExecutor(),
        plot=False,
    )
    ax = res.heatmap("test_error")
    assert ax.get_title() == "final test error (fraction of test samples misclassified)"
    assert "1 - test_acc" not in ax.get_title()
    mesh = next(c for c in ax.collections if hasattr(c, "get_clim"))
    assert mesh.get_clim() == (0.0, 1.0)
    ax2 = res.heatmap("gamma_max")  # not a fraction: its own scale
    mesh2 = next(c for c in ax2.collections if hasattr(c, "get_clim"))
    assert mesh2.get_clim() != (0.0, 1.0)
    plt.close("all")
