"""The catalogue of known mistakes: each a replayable variant of the ONE reference in :mod:`lnref.oracle.replay`.

An entry is named in a report only when replaying it reproduces the submitted numbers within the tier's bound
(:mod:`lnref.oracle.report`).  Three kinds of entries:

* a fixed :class:`~lnref.oracle.replay.Variant` of the dynamics (missing 1/m, sigma'(0) = 1, ...);
* a variant with one fitted parameter (weight decay lambda, momentum beta, an exponential learning-rate schedule
  eta gamma^t, a constant step-size factor c): the parameter is estimated from the submission (Gauss-Newton on the
  replay) and the entry is named only if the replay with the fitted value reproduces every compared checkpoint;
* a transformation of lnref's own trajectory (the export reversed the j axis or used a reshape instead of a
  transpose, a checkpoint holding the weights after t + 1 steps, a W0 imported with a reshape).

Training methods (SPEC.md section 9): ELR's target initialised to the label or to 1/2, updated after the loss,
not detached, updated every step for a period > 1, no clamp; soft bootstrapping with a detached target; SCE with
A = -4; a label-smoothing target summing to 1 + eps.  GCE without its clamp of p at 1e-7 is not an entry: it differs
only where s < 1e-7 (a margin below -16.1), which no fixture of this model reaches in a judgeable number of steps.

Selection algorithms (SPEC.md section 9): the mask ignored (every sample trains), the mean over n instead of |S|.

Learning-rate schedules: the exponential family eta gamma^t (PyTorch's ExponentialLR, gamma fitted) and
eta / sqrt(1 + t) are replayed from W0, so any checkpoints work.  Other schedules (step decay, cosine, warm-up) are
not in the catalogue; with consecutive checkpoints t, t + 1 the report states the step size actually taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .replay import Variant

__all__ = ["Mistake", "CATALOGUE", "MISTAKES", "applicable", "mistake_text", "CONVENTION_NEEDS"]

#: the ``needs`` conditions that only a fixture with the conventions of SPEC.md section 7 meets
CONVENTION_NEEDS = frozenset({"bias", "mean", "scaled"})

ALL = frozenset({"gradient", "step", "trajectory"})
STEP_TRAJ = frozenset({"step", "trajectory"})
TRAJ = frozenset({"trajectory"})


@dataclass(frozen=True)
class Mistake:
    """One catalogue entry.

    Attributes
    ----------
    key : str
    text : str
        What is wrong and what to do; ``{m}``, ``{n}``, ``{n_noisy}``, ``{value}`` are filled in.
    variant : callable (fixture -> Variant) or None
        The dynamics of the mistake (None for a pure transformation).
    transform : str or None
        'j_reversed', 'reshape_export', 'shift1' (checkpoint = W(t + 1)), 'reshape_import' (W0 reshaped).
    scopes : frozenset of {'gradient', 'step', 'trajectory'}
        The checks the entry applies to.
    needs : tuple of str
        Conditions on the fixture: 'q1', 'q>1', 'int_q', 'eps', 'noisy', 'm>1', 'n>1', the training method
        (SPEC.md section 9: 'elr', 'period>1', 'bootstrap_soft', 'sce', 'A!=-4', 'label_smoothing'), a selection
        algorithm ('mask': the fixture records masks; 'mean_over_S': some step takes the mean over |S| < n), the
        conventions of
        SPEC.md section 7: 'bias' (the network has biases), 'mean' (patch_reduce='mean'), 'scaled' (an explicit
        output_scale).
    fit : str or None
        The Variant field fitted to the submission (None: nothing fitted).
    start, probe : float
        The field's value of the exact dynamics, and the first trial value of the fit.
    grid : tuple of float
        Further trial values; the fit starts from the two best of start, probe and grid.
    low, high : float
        The range a fitted value must lie in to be named.
    estimate : callable (Judge -> list of float), optional
        Direct estimates of the fitted value from the submission (tried first; a kinked replay such as gradient
        clipping defeats the secant fit, a direct reading does not).
    """

    key: str
    text: str
    variant: Callable[[object], Variant] | None = None
    transform: str | None = None
    scopes: frozenset = ALL
    needs: tuple = ()
    fit: str | None = None
    start: float = 0.0
    probe: float = 0.0
    low: float = -np.inf
    high: float = np.inf
    generic: bool = field(default=False)
    grid: tuple = ()
    estimate: Callable[[object], list] | None = None


def _clip_estimate(judge) -> list[float]:
    """max_norm read off a clipped first step: |W(1) - W(0)| / eta (Frobenius norm), trajectories only."""
    st = judge.steps
    if judge.kind != "trajectory" or not st or 0 not in st or 1 not in st:
        return []
    dW = judge.subs[st.index(1)] - judge.subs[st.index(0)]
    c = float(np.sqrt(np.sum(dW * dW))) / float(judge.fx.config.eta)
    return [c] if np.isfinite(c) and c > 0 else []


def _v(**kw) -> Callable[[object], Variant]:
    """The variant with switches ``kw`` on top of the fixture's conventions (its problem's base variant)."""

    def make(fx) -> Variant:
        from .replay import Problem

        return replace(Problem.of(fx).base, **kw)

    return make


def _params(**kw) -> Callable[[object], Variant]:
    """The fixture's exact dynamics with some of its method's parameters (``loss_params``) replaced."""

    def make(fx) -> Variant:
        from .replay import Problem

        base = Problem.of(fx).base
        return replace(base, loss_params=tuple((k, float(kw.get(k, v))) for k, v in base.loss_params))

    return make


CATALOGUE: list[Mistake] = [
    Mistake(
        "missing_1_over_m",
        "the factor 1/m of the gradient is missing: their gradient is m = {m} times lnref's (SPEC.md section 3: "
        "grad = (1/(n m)) sum_i ...; section 2: F_j = (1/m) sum_r ...)",
        lambda fx: replace(_v()(fx), grad_scale=float(fx.m)),
        needs=("m>1",),
    ),
    Mistake(
        "model_missing_1_over_m",
        "the second layer is +-1 instead of +-1/m (F_j summed over the m filters instead of averaged; SPEC.md "
        "section 2: F_j = (1/m) sum_r ...), so outputs and gradients are about m = {m} times too large",
        _v(output_scale=1.0),
        needs=("m>1",),
    ),
    Mistake(
        "missing_1_over_n",
        "the loss is summed over the samples instead of averaged: their gradient is n = {n} times lnref's "
        "(SPEC.md section 3: L = (1/n) sum_i ...)",
        _v(loss_reduce="sum"),
        needs=("n>1",),
    ),
    Mistake(
        "relu_derivative_one_at_zero",
        "sigma'(0) = 1 is used for the ReLU: where an inner product <w_jr, x> is exactly 0 the unit must get no "
        "gradient (SPEC.md section 2: sigma'(z) = 0 for z <= 0; PyTorch's convention); use (z > 0), not "
        "(z >= 0); z.clamp(min=0) has this gradient, torch.relu does not",
        _v(dsigma_at_zero=1.0),
        needs=("q1",),
    ),
    Mistake(
        "relu_derivative_half_at_zero",
        "sigma'(0) = 1/2 is used for the ReLU, the gradient of a tie of max(z, 0): torch.maximum(z, 0 * z), "
        "torch.max(z, zero) and (z + |z|)/2 split the gradient at z = 0 exactly; sigma'(0) must be 0 (SPEC.md "
        "section 2): use torch.relu or torch.where(z > 0, z, 0)",
        _v(dsigma_at_zero=0.5),
        needs=("q1",),
    ),
    Mistake(
        "signal_patch_observed_label",
        "the signal patch is built from the OBSERVED label (y_obs_i mu) instead of the true label (y_i mu): "
        "x1 = y_i mu is part of the input (SPEC.md section 1); only the loss uses y_obs; this changes the "
        "signal term (gamma) of the {n_noisy} mislabelled samples, the only ones with y_obs_i != y_i",
        _v(signal_label="observed"),
        needs=("noisy",),
    ),
    Mistake(
        "j_swapped",
        "the gradients of the j = +1 and j = -1 filters are swapped: index 0 of W (and of the gradient) must "
        "hold j = +1 (output sign +1), index 1 j = -1 (SPEC.md section 2)",
        _v(grad_j_swapped=True),
    ),
    Mistake(
        "sign_flipped",
        "the gradient has the wrong sign (gradient ascent): W(t+1) = W(t) - eta grad L",
        _v(grad_scale=-1.0),
    ),
    Mistake(
        "label_noise_ignored",
        "the label-noise signs eps are ignored: label-noise GD uses eps[t] * y_obs as the labels of step t "
        "(fixture array 'eps')",
        _v(eps_mode="ignored"),
        needs=("eps",),
    ),
    Mistake(
        "orientation_flipped",
        "the network's orientation is flipped, f = F_{{-1}} - F_{{+1}}: f = F_{{+1}} - F_{{-1}} with index 0 of W "
        "holding j = +1 (SPEC.md section 2)",
        _v(orientation=-1),
    ),
    Mistake(
        "mean_over_patches",
        "the network averages over the two patches instead of summing them: F_j = (1/m) sum_r [sigma(<w, x1>) "
        "+ sigma(<w, x2>)] (SPEC.md section 2), so outputs and gradients are half of lnref's",
        _v(patch_reduce="mean"),
    ),
    Mistake(
        "bias",
        "the network has a trained bias per filter (initialised at 0): SPEC.md section 2 has no biases "
        "(PyTorch's Conv1d/Linear add one unless bias=False)",
        _v(bias=True),
        scopes=TRAJ,
    ),
    # ---- departures from the fixture's own conventions (SPEC.md section 7; a Conv1d-style model)
    Mistake(
        "sum_over_patches",
        "the mean over the two patches is missing: the fixture's network averages them (config "
        "patch_reduce='mean', SPEC.md section 7: c_p = 1/2), theirs sums them, so their outputs are twice "
        "lnref's (in PyTorch: .mean(dim=2), not .sum(dim=2), over the Conv1d's two output positions)",
        _v(patch_reduce="sum"),
        needs=("mean",),
    ),
    Mistake(
        "output_scale_1_over_m",
        "the filters are averaged (second layer +-1/m) where the fixture's network sums them with output_scale "
        "= {output_scale:g} (config output_scale, SPEC.md section 7)",
        _v(output_scale=None),
        needs=("scaled", "m>1"),
    ),
    Mistake(
        "bias_missing",
        "their network has no bias (or ignores it) where the fixture's network has a trained bias per filter "
        "(config bias=True, fixture array 'b0'; SPEC.md section 7): add the bias to every patch's "
        "pre-activation, <w_jr, x_p> + b_jr (PyTorch: Conv1d(..., bias=True), the default)",
        _v(bias=False),
        needs=("bias",),
    ),
    Mistake(
        "bias_not_trained",
        "their biases are used but never updated (kept at b0): GD updates b <- b - eta dL/db too (SPEC.md "
        "section 7); give the optimiser every parameter (model.parameters())",
        _v(bias_trained=False),
        scopes=TRAJ,
        needs=("bias",),
    ),
    Mistake(
        "logistic_wrong_argument",
        "the logistic derivative has the wrong argument, -sigmoid(z) instead of l'(z) = -sigmoid(-z) = "
        "-1/(1 + e^z) (SPEC.md section 3); both are -1/2 at z = 0, so it shows as margins grow",
        _v(loss="wrong_arg"),
    ),
    Mistake(
        "dsigma_no_clamp",
        "sigma'(z) = q z^(q-1) is used for every z, without the clamp at 0: sigma'(z) = 0 for z <= 0 (SPEC.md "
        "section 2), so negative inner products get a gradient",
        _v(dsigma_clamp=False),
        needs=("q>1", "int_q"),
    ),
    Mistake(
        "noise_patch_times_label",
        "the noise patch is multiplied by the label (y_i xi_i): only the signal patch carries the label, "
        "x2 = xi_i (SPEC.md section 1)",
        _v(noise_times_y=True),
    ),
    Mistake(
        "labels_01_in_logistic",
        "labels in {{0, 1}} are used in log(1 + e^(-y f)): the logistic loss needs y in {{-1, +1}} (SPEC.md "
        "section 3); with y = 0 the class -1 samples get no gradient",
        _v(loss="labels01"),
    ),
    Mistake(
        "bce_with_pm1_targets",
        "BCE-with-logits is given +-1 targets: binary_cross_entropy_with_logits(f, t) equals the logistic loss "
        "only with t = (y + 1)/2 in {{0, 1}} (SPEC.md section 3)",
        _v(loss="bce_pm1"),
    ),
    Mistake(
        "sequential_j_update",
        "the j = +1 filters are updated before the j = -1 gradient is computed: every gradient of a GD step is "
        "taken at W(t) (SPEC.md section 3); compute the whole gradient, then update",
        _v(sequential_j=True),
        scopes=STEP_TRAJ,
    ),
    Mistake(
        "eps_frozen",
        "the same label-noise signs are used at every step (eps[0]): label-noise GD draws fresh signs each "
        "step, eps[t] at step t (fixture array 'eps', row t)",
        _v(eps_mode="frozen"),
        scopes=TRAJ,
        needs=("eps",),
    ),
    Mistake(
        "eps_shifted",
        "the label-noise signs of step t + 1 are used at step t: step t uses eps[t] (fixture array 'eps', row t)",
        _v(eps_mode="shifted"),
        scopes=TRAJ,
        needs=("eps",),
    ),
    Mistake(
        "eps_accumulated",
        "the label-noise flips are accumulated in place (labels multiplied by eps[t] and kept): each step "
        "uses eps[t] * y_obs with the ORIGINAL observed labels",
        _v(eps_mode="accumulated"),
        scopes=TRAJ,
        needs=("eps",),
    ),
    Mistake(
        "lr_invsqrt",
        "the step size follows a schedule eta / sqrt(1 + t): SPEC.md section 3 uses a constant eta (remove the "
        "scheduler)",
        _v(schedule="invsqrt"),
        scopes=TRAJ,
    ),
    Mistake(
        "checkpoint_after_next_step",
        "each checkpoint holds the weights after t + 1 steps: record W(t) before taking step t (W(0) is the "
        "fixture's W0)",
        transform="shift1",
        scopes=TRAJ,
    ),
    Mistake(
        "export_j_reversed",
        "the export reverses the j axis: index 0 of the exported W must hold j = +1 (SPEC.md section 2); their "
        "weights are lnref's with the two classes' filters swapped",
        transform="j_reversed",
        scopes=TRAJ,
    ),
    Mistake(
        "export_reshape",
        "the export reshapes an (m, 2, d) array to (2, m, d) instead of transposing it (W.transpose(1, 0, 2)), "
        "which mixes the filters of the two classes",
        transform="reshape_export",
        scopes=ALL - {"step"},
        needs=("m>1",),
    ),
    Mistake(
        "import_reshape",
        "the fixture's W0 (2, m, d) was read into an (m, 2, d) array with a reshape instead of a transpose, so "
        "training started from W0 with the filters of the two classes mixed",
        transform="reshape_import",
        scopes=TRAJ,
        needs=("m>1",),
    ),
    # ---- optimiser loop, schedules, partially detached graphs, label mix-ups, inputs (PyTorch habits)
    Mistake(
        "zero_grad_forgotten",
        "the gradients accumulate across steps: optimizer.zero_grad() (or W.grad.zero_()) is never called, so "
        "each step uses the sum of every gradient so far - PyTorch's SGD momentum with beta = 1; call "
        "optimizer.zero_grad() before loss.backward() at every step",
        _v(momentum=1.0),
        scopes=TRAJ,
    ),
    Mistake(
        "lr_cosine",
        "the step size follows a cosine schedule, eta (1 + cos(pi t / T))/2 with T = the fixture's last step "
        "(CosineAnnealingLR(opt, T_max=steps)): SPEC.md section 3 uses a constant eta (remove the scheduler)",
        _v(schedule="cosine"),
        scopes=TRAJ,
    ),
    Mistake(
        "lr_linear_warmup",
        "the step size follows LinearLR's defaults, eta (1/3 + (2/3) min(t, 5)/5) (start_factor=1/3, "
        "total_iters=5): SPEC.md section 3 uses a constant eta (remove the warm-up scheduler)",
        _v(schedule="linear_warmup"),
        scopes=TRAJ,
    ),
    Mistake(
        "signal_path_detached",
        "the signal path is detached from the graph (W.detach() or torch.no_grad() where <w_jr, y_i mu> is "
        "computed): the signal patches add no gradient, so gamma never moves; only the inputs may be "
        "detached, never W (SPEC.md section 3)",
        _v(detach="signal"),
    ),
    Mistake(
        "noise_path_detached",
        "the noise path is detached from the graph (W.detach() or torch.no_grad() where <w_jr, xi_i> is "
        "computed): the noise patches add no gradient, so rho never moves; only the inputs may be detached, "
        "never W (SPEC.md section 3)",
        _v(detach="noise"),
    ),
    Mistake(
        "true_labels_in_loss",
        "the loss uses the TRUE labels y_i instead of the observed labels y_obs_i (SPEC.md section 3: l(y_obs_i "
        "f_i)); the {n_noisy} mislabelled samples are the ones affected",
        _v(label_source="true"),
        needs=("noisy",),
    ),
    Mistake(
        "signal_patch_01_labels",
        "the signal patch is built from labels in {{0, 1}}, x1 = ((y_i + 1)/2) mu, so class -1 samples have no "
        "signal: x1 = y_i mu with y_i in {{-1, +1}} (SPEC.md section 1)",
        _v(signal_label="01"),
    ),
    Mistake(
        "inputs_rounded_float32",
        "their inputs were rounded through float32 (W0, mu and xi; e.g. torch.Tensor(x) or torch.tensor(x, "
        "dtype=torch.float32) and then .double()), the arithmetic being float64: pass the fixture's arrays "
        "as float64 (torch.from_numpy, torch.tensor(x, dtype=torch.float64))",
        _v(round_inputs="all"),
    ),
    Mistake(
        "data_rounded_float32",
        "their data mu and xi were rounded through float32 (torch.Tensor(x), or a float32 tensor later cast to "
        "float64), W0 and the arithmetic being float64: keep the data float64",
        _v(round_inputs="data"),
    ),
    Mistake(
        "weights_rounded_float32",
        "their W0 (the weights given to them) was rounded through float32 (torch.Tensor(W0), a float32 "
        "nn.Parameter later cast with .double()), the arithmetic being float64: build the parameter from the "
        "float64 array",
        _v(round_inputs="weights"),
    ),
    # ---- training methods (SPEC.md section 9): the mistakes a PyTorch port of the official codes makes
    Mistake(
        "elr_target_init_label",
        "ELR's targets start at the one-hot (observed) label instead of zeros: the official code initialises "
        "self.target = torch.zeros(num_examp, num_classes) (SPEC.md section 9; shengliu66/ELR ELR/model/loss.py)",
        _v(elr_init="label"),
        scopes=TRAJ,
        needs=("elr",),
    ),
    Mistake(
        "elr_target_init_uniform",
        "ELR's targets start at the uniform 1/2 instead of zeros: the official code initialises self.target = "
        "torch.zeros(num_examp, num_classes) (SPEC.md section 9)",
        _v(elr_init="uniform"),
        scopes=TRAJ,
        needs=("elr",),
    ),
    Mistake(
        "elr_target_updated_after_loss",
        "ELR's targets are updated AFTER the loss of the step (the loss used the old targets): the official "
        "code updates self.target[index] first, then computes the loss with the new targets (SPEC.md section "
        "9: at steps 0, period, 2 period, ... the update comes before that step's loss)",
        _v(elr_update="after"),
        needs=("elr",),
    ),
    Mistake(
        "elr_target_not_detached",
        "ELR's target update is not detached, so the gradient also flows through this step's new target "
        "(beta t + (1 - beta) p): the official code builds it from y_pred.data.detach() (SPEC.md section 9: "
        "the target is a constant of the loss); detach p before the update",
        _v(elr_detach=False),
        needs=("elr",),
    ),
    Mistake(
        "elr_target_updated_every_step",
        "ELR's targets are updated at every step where the config's period is {period}: they are updated at "
        "steps 0, period, 2 period, ... only (config loss_params.period, SPEC.md section 9)",
        _v(elr_period=1),
        scopes=TRAJ,
        needs=("elr", "period>1"),
    ),
    Mistake(
        "elr_no_clamp",
        "ELR's probabilities are not clamped to [1e-4, 1 - 1e-4]: the official code clamps the softmax "
        "(torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)) before the target update and the regulariser, so the "
        "regulariser passes no gradient once |f| > ln 9999 = 9.21 (SPEC.md section 9)",
        _v(elr_clamp=False),
        needs=("elr",),
    ),
    Mistake(
        "bootstrap_soft_detached",
        "the soft-bootstrapping target beta e_y + (1 - beta) p is detached: that loss is just beta x the "
        "cross-entropy (g = -beta (1 - s)); Reed et al.'s soft bootstrap (and the official Keras code) lets the "
        "gradient flow through p (SPEC.md section 9, identity 1)",
        _v(loss="bootstrap_soft_detached"),
        needs=("bootstrap_soft",),
    ),
    Mistake(
        "sce_A_minus_4",
        "SCE's reverse cross-entropy uses A = -4 where the fixture's config has A = loss_params.A (default ln "
        "1e-4 = -9.2103, the log of the clipped 0 of the one-hot label in the official code, "
        "YisenWang/symmetric_cross_entropy_for_noisy_labels loss.py): use the config's A (SPEC.md section 9)",
        _params(A=-4.0),
        needs=("sce", "A!=-4"),
    ),
    Mistake(
        "label_smoothing_unnormalised",
        "the label-smoothing target does not sum to 1: (1 - eps) e_y + eps on each class (eps in place of "
        "eps/2 on the two classes); the target is (1 - eps) e_y + eps/2 (PyTorch's CrossEntropyLoss("
        "label_smoothing=eps) with two classes; SPEC.md section 9)",
        _v(loss="label_smoothing_unnormalised"),
        needs=("label_smoothing",),
    ),
    Mistake(
        "selection_mask_ignored",
        "the selection mask is ignored: every sample trains, mean over n (plain GD), where the selection "
        "algorithm trains step t only on the samples with mask[t] = 1 (fixture array 'mask', row t), with the "
        "mean over |S| for select_retrain (step size eta step_scale[t]; SPEC.md section 9)",
        _v(mask_mode="ignored"),
        needs=("mask",),
    ),
    Mistake(
        "selection_mean_over_n",
        "the selected samples' loss is averaged over n instead of |S|: select_retrain's objective after its "
        "selection is (1/|S|) sum_{{i in S}} l_i, a step size eta n/|S| on the mean over n (fixture array "
        "'step_scale'); their steps use eta (SPEC.md section 9)",
        _v(select_mean="n"),
        needs=("mean_over_S",),
    ),
    # ---- fitted entries (named only when the replay with the fitted value reproduces the numbers)
    Mistake(
        "weight_decay",
        "weight decay lambda = {value} is applied (W <- W - eta (grad + lambda W), biases likewise): SPEC.md "
        "section 3 has no regulariser (PyTorch: SGD(..., weight_decay=0))",
        _v(),
        scopes=STEP_TRAJ,
        fit="weight_decay",
        start=0.0,
        probe=1e-4,
        low=1e-12,
        high=10.0,
        grid=(1e-5, 1e-3, 1e-1),
    ),
    Mistake(
        "momentum",
        "momentum beta = {value} is used (PyTorch's SGD buffer v <- beta v + grad): SPEC.md section 3 is "
        "plain GD (momentum=0)",
        _v(),
        scopes=TRAJ,
        fit="momentum",
        start=0.0,
        probe=0.1,
        low=1e-9,
        high=1.0,
        grid=(0.3, 0.6, 0.8, 0.9, 0.95, 0.99),
    ),
    Mistake(
        "lr_exponential",
        "the step size decays exponentially, eta gamma^t with gamma = {value} (a learning-rate scheduler "
        "such as ExponentialLR): SPEC.md section 3 uses a constant eta",
        _v(schedule="exp"),
        scopes=TRAJ,
        fit="gamma",
        start=1.0,
        probe=0.999,
        low=0.0,
        high=1.0 - 1e-12,
        grid=(0.9, 0.99),
    ),
    Mistake(
        "lr_exponential_shifted",
        "the step size decays exponentially but one step early, eta gamma^(t + 1) with gamma = {value}: "
        "scheduler.step() is called before optimizer.step() (PyTorch warns about it); SPEC.md section 3 uses a "
        "constant eta",
        _v(schedule="exp_shifted"),
        scopes=TRAJ,
        fit="gamma",
        start=1.0,
        probe=0.999,
        low=0.0,
        high=1.0 - 1e-12,
        grid=(0.9, 0.99),
    ),
    Mistake(
        "grad_clip_norm",
        "the gradient is clipped to norm {value} (torch.nn.utils.clip_grad_norm_(params, max_norm={value})): "
        "SPEC.md section 3 has no clipping",
        _v(),
        scopes=STEP_TRAJ,
        fit="clip_norm",
        start=0.0,
        probe=1.0,
        low=1e-12,
        grid=(0.01, 0.03, 0.1, 0.3, 3.0),
        estimate=_clip_estimate,
    ),
    Mistake(
        "eta_scaled",
        "their step size is {value} times lnref's eta (a constant factor: check eta and every constant "
        "factor of the gradient)",
        _v(),
        scopes=STEP_TRAJ,
        fit="eta_scale",
        start=1.0,
        probe=1.01,
        generic=True,
        grid=(0.5, 2.0, 10.0),
    ),
    Mistake(
        "gradient_scaled",
        "their gradient is exactly {value} times lnref's (a constant factor: check 1/n, 1/m, 2, eta)",
        _v(),
        scopes=frozenset({"gradient"}),
        fit="grad_scale",
        start=1.0,
        probe=1.01,
        generic=True,
    ),
    Mistake(
        "output_scale_scaled",
        "their second layer is {value} times lnref's (+-{value}/m instead of +-1/m; SPEC.md section 2: F_j = "
        "(1/m) sum_r ...): check the constant in front of the sum over filters (1/2 for 1/m?)",
        _v(),
        fit="output_factor",
        start=1.0,
        probe=1.01,
        generic=True,
        grid=(0.5, 2.0),
    ),
]

MISTAKES: dict[str, str] = {e.key: e.text for e in CATALOGUE}
BY_KEY: dict[str, Mistake] = {e.key: e for e in CATALOGUE}


def applicable(fx, scope: str) -> list[Mistake]:
    """The entries that apply to ``fx`` in a check of kind ``scope``."""
    q = float(fx.config.q)
    cfg = fx.config
    conds = {
        "q1": q == 1.0,
        "q>1": q > 1.0,
        "int_q": q.is_integer(),
        "eps": fx.eps is not None,
        "noisy": bool(np.any(fx.data.y != fx.data.y_obs)),
        "m>1": fx.m > 1,
        "n>1": fx.n > 1,
        "bias": bool(getattr(cfg, "bias", False)),
        "mean": getattr(cfg, "patch_reduce", "sum") == "mean",
        "scaled": getattr(cfg, "output_scale", None) is not None,
    }
    method = getattr(cfg, "loss", "logistic")
    lp = dict(getattr(cfg, "loss_params", None) or {})
    conds.update(
        {
            "elr": method == "elr",
            "period>1": int(lp.get("period", 1)) > 1,
            "bootstrap_soft": method == "bootstrap_soft",
            "sce": method == "sce",
            "A!=-4": float(lp.get("A", -4.0)) != -4.0,
            "label_smoothing": method == "label_smoothing",
        }
    )
    mask = getattr(fx, "mask", None)
    scale = getattr(fx, "step_scale", None)
    conds.update(
        {
            "mask": mask is not None and not np.all(mask == 1.0),
            "mean_over_S": scale is not None and bool(np.any(scale != 1.0)),
        }
    )
    from .replay import Problem

    base = Problem.of(fx).base
    out = []
    for e in CATALOGUE:
        if scope not in e.scopes or not all(conds[c] for c in e.needs):
            continue
        if e.variant is not None and e.fit is None and e.transform is None and e.variant(fx) == base:
            continue  # the fixture's own convention is not a mistake
        out.append(e)
    return out


def mistake_text(e: Mistake, fx, value: float | None = None, value_text: str | None = None) -> str:
    """The entry's text for ``fx``; ``{value}`` is ``value_text`` (default: ``value`` with the digits that tell it
    from the exact dynamics' ``e.start``)."""
    os_ = getattr(fx.config, "output_scale", None)
    if value_text is None:
        value_text = "nan" if value is None else fmt_value(value, e.start)
    period = dict(getattr(fx.config, "loss_params", None) or {}).get("period", 1)
    return e.text.format(
        m=fx.m,
        n=fx.n,
        n_noisy=int(np.count_nonzero(fx.data.noisy)),
        value=value_text,
        output_scale=np.nan if os_ is None else os_,
        period=period,
    )


def with_value(e: Mistake, fx, value: float) -> Variant:
    """The entry's variant with its fitted field set to ``value``."""
    return replace(e.variant(fx), **{e.fit: float(value)})


def fmt_value(value: float, ref: float | None = None) -> str:
    """``value`` with the digits that tell it from ``ref`` (the value of the exact dynamics, e.g. 1 for a factor):
    6 significant digits, more when it is closer to ``ref`` than that (1 + 1e-9 prints as 1.000000001)."""
    digits = 6
    if ref and math.isfinite(value) and abs(value / ref - 1.0) > 1e-13:  # below: float64 rounding, not a cause
        digits = min(17, max(6, math.ceil(-math.log10(abs(value / ref - 1.0))) + 2))
    return f"{value:.{digits}g}"
