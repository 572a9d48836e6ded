"""The catalogue's entries for the model, the loss, the labels, the optimiser loop and the export (SPEC.md
sections 1-3), and for departures from a fixture's own conventions (section 7): fixed variants of the dynamics
and transformations of lnref's own trajectory.  Assembled with the others in :mod:`lnref.oracle.catalogue`.
"""

from __future__ import annotations

from dataclasses import replace

from .mistake import ALL, STEP_TRAJ, TRAJ, Mistake
from .mistake import variant_with as _v

__all__ = ["MODEL_MISTAKES"]

MODEL_MISTAKES: list[Mistake] = [
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
        needs=("m>1", "single"),
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
]
