"""The switches of the oracle's NumPy replay (:class:`Variant`): the exact dynamics of SPEC.md (``EXACT``, or a
config's :func:`base_variant`) and every known mistake as a change of some switches (:mod:`lnref.oracle.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Variant", "EXACT", "base_variant"]


@dataclass(frozen=True)
class Variant:
    """Switches of the dynamics; the defaults are the exact GD of SPEC.md sections 2-3.

    Model: ``output_scale`` (None: the paper's 1/m; 1.0: second layer +-1), ``patch_reduce`` ('sum' or 'mean'
    over the two patches), ``orientation`` (+1: f = F_{+1} - F_{-1}; -1: flipped), ``signal_label`` ('true',
    'observed' or '01': (y + 1)/2, the label in the signal patch), ``noise_times_y`` (the noise patch is y_i xi_i),
    ``bias`` (a trained bias per filter, initialised at ``b0``, or at the problem's ``b0`` array when it has one;
    ``bias_trained=False``: the bias is used but never updated), ``dsigma_at_zero``, ``dsigma_clamp``.
    With ``output_scale``,
    ``patch_reduce`` and ``bias`` the replay also covers the common conventions (a Conv1d-style model:
    f = output_scale * c_p * sum_{r, p} +-sigma(<w_jr, x_p> + b_jr), c_p = 1 or 1/2), so a problem can
    carry them as its ``base`` variant.
    ``output_factor`` multiplies the output scale (a fitted second-layer scale).
    Loss: ``loss`` (a key of :data:`LOSS_DERIVATIVES`: 'logistic'; 'wrong_arg': l'(z) = -sigmoid(z); 'labels01':
    log(1 + e^{-t f}) with t in {0, 1}; 'bce_pm1': BCE-with-logits given +-1 targets), ``loss_reduce`` ('mean' or
    'sum' over samples), ``label_source`` ('observed': the loss uses y_obs; 'true': the clean labels y).
    Gradient: ``grad_scale`` (their gradient times this), ``grad_j_swapped`` (index 0 gets j = -1's gradient),
    ``detach`` ('' or 'signal' / 'noise': that patch's path is detached from the graph, so it adds no gradient),
    ``clip_norm`` (> 0: PyTorch's clip_grad_norm_ with this max_norm, before the optimiser step).
    Inputs: ``round_inputs`` ('' or 'all' / 'data' / 'weights': those inputs rounded through float32, the
    arithmetic staying float64).
    Optimiser (applied to W and, as PyTorch's SGD does, to the biases): ``eta_scale``, ``weight_decay``,
    ``momentum`` (heavy ball, PyTorch's SGD; 1 is a gradient never zeroed), ``schedule`` (a key of
    :data:`SCHEDULES`), ``gamma``, ``sequential_j`` (j = +1 updated
    before the j = -1 gradient is computed).
    Training methods (SPEC.md section 9): ``loss`` may also be a key of :data:`METHOD_DERIVATIVES` ('gce', 'sce',
    'label_smoothing', 'bootstrap_soft', 'bootstrap_hard', 'forward', 'backward', 'elr', and the mistakes
    'label_smoothing_unnormalised', 'bootstrap_soft_detached'), with ``loss_params`` the method's (name, value)
    pairs (as Config.loss_params).  ELR's state (targets (2, n), row 0 class +1) is carried by :func:`simulate`:
    ``elr_init`` ('zeros'; the mistakes 'label': one-hot of y_obs, 'uniform': 1/2), ``elr_update`` ('before' the
    loss; 'after': the loss of an update step uses the old targets), ``elr_detach`` (False: the gradient also flows
    through this step's target update), ``elr_period`` (0: the config's period; else this period), ``elr_clamp``
    (False: p is not clamped to [1e-4, 1 - 1e-4], neither in the target nor in the loss).
    Label-noise signs: ``eps_mode`` ('exact': eps[t] at step t; 'ignored'; 'frozen': eps[0] every step;
    'shifted': eps[t + 1] at step t; 'accumulated': eps[0] ... eps[t] multiplied in place).
    Selection algorithms (SPEC.md section 9; a problem with ``mask`` and ``scale``): ``mask_mode`` ('exact':
    the labels of step t are mask[t] * y_obs and its step size eta scale[t]; the mistake 'ignored': every sample
    trains, mean over n, as plain GD), ``select_mean`` ('selected': the step size eta scale[t], scale = n/|S| for a
    mean over |S|; the mistake 'n': the mean over n, eta).
    Co-teaching (a problem with ``coteach``; its masks are recomputed by the replay from its own two networks):
    ``coteach_exchange`` ('other': each network steps on the samples the OTHER ranks smallest-loss; the mistake
    'own': each on its own ranking), ``coteach_cap`` (True: R(t) = tau min(t / T_k, 1); the mistake False:
    R(t) = tau t / T_k, no cap, so the kept set keeps shrinking).
    """

    output_scale: float | None = None
    patch_reduce: str = "sum"
    orientation: int = 1
    signal_label: str = "true"
    noise_times_y: bool = False
    bias: bool = False
    b0: float = 0.0
    bias_trained: bool = True
    dsigma_at_zero: float = 0.0
    dsigma_clamp: bool = True
    output_factor: float = 1.0
    loss: str = "logistic"
    loss_reduce: str = "mean"
    label_source: str = "observed"
    grad_scale: float = 1.0
    grad_j_swapped: bool = False
    detach: str = ""
    clip_norm: float = 0.0
    round_inputs: str = ""
    eta_scale: float = 1.0
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    gamma: float = 1.0
    sequential_j: bool = False
    eps_mode: str = "exact"
    loss_params: tuple = ()
    elr_init: str = "zeros"
    elr_update: str = "before"
    elr_detach: bool = True
    elr_period: int = 0
    elr_clamp: bool = True
    mask_mode: str = "exact"
    select_mean: str = "selected"
    coteach_exchange: str = "other"
    coteach_cap: bool = True

    def changes(self) -> dict:
        """The switches that differ from the exact dynamics."""
        base = Variant()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(base, f.name)}


EXACT = Variant()


def base_variant(cfg) -> Variant:
    """The exact dynamics of a config: its network's conventions (SPEC.md section 7) and its training method
    (section 9; the logistic loss gives the plain :data:`EXACT` switches)."""
    method = getattr(cfg, "loss", "logistic")
    params = tuple((str(k), float(v)) for k, v in dict(getattr(cfg, "loss_params", None) or {}).items())
    return Variant(
        output_scale=getattr(cfg, "output_scale", None),
        patch_reduce=getattr(cfg, "patch_reduce", "sum"),
        bias=bool(getattr(cfg, "bias", False)),
        loss=method,
        loss_params=params,
    )
