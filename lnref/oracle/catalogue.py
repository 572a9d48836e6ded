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

Selection algorithms (SPEC.md section 9): the mask ignored (every sample trains), the mean over n instead of |S|;
co-teaching's networks each trained on their own small-loss samples (no exchange), its forget rate without the cap.

Learning-rate schedules: the exponential family eta gamma^t (PyTorch's ExponentialLR, gamma fitted) and
eta / sqrt(1 + t) are replayed from W0, so any checkpoints work.  Other schedules (step decay, cosine, warm-up) are
not in the catalogue; with consecutive checkpoints t, t + 1 the report states the step size actually taken.
"""

from __future__ import annotations

import numpy as np

from .mistake import (
    CONVENTION_NEEDS,
    STEP_TRAJ,
    TRAJ,
    Mistake,
    fmt_value,
    mistake_text,
    params_with,
    variant_with,
    with_value,
)
from .mistakes_model import MODEL_MISTAKES

__all__ = [
    "Mistake",
    "CATALOGUE",
    "MISTAKES",
    "BY_KEY",
    "applicable",
    "mistake_text",
    "with_value",
    "fmt_value",
    "CONVENTION_NEEDS",
]

_v, _params = variant_with, params_with


def _clip_estimate(judge) -> list[float]:
    """max_norm read off a clipped first step: |W(1) - W(0)| / eta (Frobenius norm), trajectories only."""
    st = judge.steps
    if judge.kind != "trajectory" or not st or 0 not in st or 1 not in st:
        return []
    dW = judge.subs[st.index(1)] - judge.subs[st.index(0)]
    c = float(np.sqrt(np.sum(dW * dW))) / float(judge.fx.config.eta)
    return [c] if np.isfinite(c) and c > 0 else []


CATALOGUE: list[Mistake] = [
    *MODEL_MISTAKES,
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
    # ---- co-teaching (SPEC.md section 9): the replay recomputes both networks' masks from its own outputs
    Mistake(
        "coteaching_own_selection",
        "each co-teaching network is trained on its OWN small-loss samples (no exchange): network 1 must step on "
        "the int((1 - R(t)) n) samples that network 2 ranks smallest-loss, and network 2 on network 1's (fixture "
        "arrays 'mask' and 'mask_2'; SPEC.md section 9; the official code's loss_coteaching updates model 1 with "
        "ind_2_update)",
        _v(coteach_exchange="own"),
        scopes=TRAJ,
        needs=("coteaching",),
    ),
    Mistake(
        "coteaching_rate_uncapped",
        "the co-teaching forget rate is not capped at forget_rate: R(t) = forget_rate min(t / T_k, 1) stops "
        "growing at T_k = {tk}, theirs keeps growing (forget_rate t / T_k), so ever fewer samples train after "
        "step {tk} (SPEC.md section 9; the official rate_schedule is constant after num_gradual)",
        _v(coteach_cap=False),
        scopes=TRAJ,
        needs=("coteaching", "past_tk"),
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
            "coteaching": bool(getattr(fx, "coteaching", False)),
            "single": not getattr(fx, "coteaching", False),
            "past_tk": fx.total_steps > int(getattr(cfg, "coteach_tk", 0)) + 1 and cfg.selection_rate > 0,
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
