"""An independent NumPy implementation of the two-layer CNN training of SPEC.md sections 2-3, with switchable bugs.

Written from the SPEC, not from lnref's replay: a forward pass, a hand-written backward pass and a training loop
the way a researcher would write them.  Each bug in BUGS injects one realistic mistake in its natural place.
Used by the oracle's tests (tests/test_oracle_*.py); never imported by lnref.
"""

from __future__ import annotations

import numpy as np

BUGS = (
    "missing_1_over_m",
    "model_missing_1_over_m",
    "missing_1_over_n",
    "relu_derivative_one_at_zero",
    "relu_derivative_half_at_zero",
    "signal_patch_observed_label",
    "j_swapped",
    "sign_flipped",
    "label_noise_ignored",
    "orientation_flipped",
    "mean_over_patches",
    "bias",
    "logistic_wrong_argument",
    "dsigma_no_clamp",
    "noise_patch_times_label",
    "labels_01_in_logistic",
    "bce_with_pm1_targets",
    "sequential_j_update",
    "eps_frozen",
    "eps_shifted",
    "eps_accumulated",
    "lr_invsqrt",
    "checkpoint_after_next_step",
    "export_j_reversed",
    "export_reshape",
    "import_reshape",
    "weight_decay",
    "momentum",
    "lr_exponential",
    "eta_scaled",
    "zero_grad_forgotten",
    "lr_cosine",
    "lr_linear_warmup",
    "signal_path_detached",
    "noise_path_detached",
    "true_labels_in_loss",
    "signal_patch_01_labels",
    "inputs_rounded_float32",
    "data_rounded_float32",
    "weights_rounded_float32",
    "lr_exponential_shifted",
    "grad_clip_norm",
    "output_scale_scaled",
)

ROUNDED = {
    "inputs_rounded_float32": ("data", "weights"),
    "data_rounded_float32": ("data",),
    "weights_rounded_float32": ("weights",),
}


def f32(a, bug, what):
    """``a`` rounded through float32 when ``bug`` rounds the inputs ``what`` ('data' or 'weights')."""
    return np.asarray(a).astype(np.float32).astype(np.asarray(a).dtype) if what in ROUNDED.get(bug, ()) else a


class Net:
    """Filters stored as (m, 2, d) internally ('filter-major'), the way a Conv1d weight is often laid out."""

    def __init__(self, W0, q, bug=None, dtype=np.float64, value=None):
        W0 = np.asarray(f32(W0, bug, "weights"), dtype)
        m = W0.shape[1]
        if bug == "import_reshape":
            self.V = W0.reshape(m, 2, W0.shape[2]).copy()
        else:
            self.V = np.ascontiguousarray(W0.transpose(1, 0, 2))
        self.b = np.zeros((m, 2), dtype)
        self.q, self.bug, self.dt, self.value = q, bug, dtype, value

    def export(self):
        if self.bug == "export_reshape":
            return self.V.reshape(2, self.V.shape[0], self.V.shape[2]).copy()
        W = self.V.transpose(1, 0, 2).copy()
        return W[::-1].copy() if self.bug == "export_j_reversed" else W

    def act(self, z):
        return np.where(z > 0, z, 0) ** self.q

    def dact(self, z):
        q = self.q
        if self.bug == "relu_derivative_one_at_zero":
            return (z >= 0).astype(self.dt)
        if self.bug == "relu_derivative_half_at_zero":  # torch.maximum(z, 0 * z): a tie splits
            return (z > 0).astype(self.dt) + 0.5 * (z == 0)
        if self.bug == "dsigma_no_clamp":
            return q * z ** (q - 1)
        return np.where(z > 0, q * np.where(z > 0, z, 0) ** (q - 1), 0)

    def grads(self, mu, xi, y, labels, y_obs):
        """(loss, dV, db) of the mean logistic loss with ``labels``."""
        bug, dt = self.bug, self.dt
        m, n = self.V.shape[0], xi.shape[0]
        ysig = {"signal_patch_observed_label": y_obs, "signal_patch_01_labels": (y + 1) / 2}.get(bug, y)
        x1 = ysig[:, None] * mu[None, :]  # (n, d)
        x2 = y[:, None] * xi if bug == "noise_patch_times_label" else xi
        z1 = np.einsum("rjd,nd->nrj", self.V, x1)
        z2 = np.einsum("rjd,nd->nrj", self.V, x2)
        if bug == "bias":
            z1, z2 = z1 + self.b, z2 + self.b
        second = np.array([1.0, -1.0], dt) * (1 if bug == "model_missing_1_over_m" else dt(1) / m)
        if bug == "output_scale_scaled":  # 1/2 written where 1/m belongs
            second = np.array([1.0, -1.0], dt) * dt(self.value or 0.5)
        if bug == "orientation_flipped":
            second = -second
        h = self.act(z1) + self.act(z2)
        if bug == "mean_over_patches":
            h = h / 2
        f = np.einsum("nrj,j->n", h, second)
        if bug == "labels_01_in_logistic":
            t = (labels + 1) / 2
            dl = -t / (1 + np.exp(t * f))
        elif bug == "bce_with_pm1_targets":
            dl = 1 / (1 + np.exp(-f)) - labels
        elif bug == "logistic_wrong_argument":
            dl = -labels / (1 + np.exp(-labels * f))
        else:
            dl = -labels / (1 + np.exp(labels * f))
        loss = np.mean(np.logaddexp(0, -labels * f))
        if bug != "missing_1_over_n":
            dl = dl / n
        dh = dl[:, None, None] * second[None, None, :]  # (n, m, 2)
        if bug == "mean_over_patches":
            dh = dh / 2
        d1, d2 = dh * self.dact(z1), dh * self.dact(z2)
        if bug == "signal_path_detached":  # z1 computed from W.detach()
            d1 = 0 * d1
        if bug == "noise_path_detached":
            d2 = 0 * d2
        dV = np.einsum("nrj,nd->rjd", d1, x1) + np.einsum("nrj,nd->rjd", d2, x2)
        db = (d1 + d2).sum(axis=0)
        if bug == "missing_1_over_m":
            dV = dV * m
        if bug == "j_swapped":
            dV = dV[:, ::-1].copy()
        if bug == "sign_flipped":
            dV = -dV
        return loss, dV, db


def train(fx, bug=None, dtype=np.float64, value=None):
    """GD from the fixture's W0; returns (dict step -> exported W, dict step -> loss) at the fixture's steps."""
    dt = dtype
    d = fx.data
    mu, xi, y, y_obs = (np.asarray(a, dt) for a in (f32(d.mu, bug, "data"), f32(d.xi, bug, "data"), d.y, d.y_obs))
    net = Net(fx.W0, fx.config.q, bug, dt, value)
    eta = dt(fx.config.eta)
    keep = {int(s) for s in fx.steps}
    Ws, losses = {}, {}
    buf = None
    acc = 0.0
    lab0 = y if bug == "true_labels_in_loss" else y_obs
    labels_acc = y_obs.copy()
    T = fx.total_steps
    shift = bug == "checkpoint_after_next_step"
    last = T + 1 if shift else T
    with np.errstate(all="ignore"):
        for t in range(last + 1):
            if t in keep and not shift:
                Ws[t] = net.export()
                losses[t] = float(net.grads(mu, xi, y, y_obs, y_obs)[0])  # the loss on the observed labels
            if shift and t - 1 in keep:
                Ws[t - 1] = net.export()  # recorded after the step: holds W(t) under the label t - 1
            if t == last:
                break
            if fx.eps is None or bug == "label_noise_ignored":
                lab = lab0
            elif bug == "eps_frozen":
                lab = fx.eps[0].astype(dt) * y_obs
            elif bug == "eps_shifted":
                lab = fx.eps[min(t + 1, T)].astype(dt) * y_obs
            elif bug == "eps_accumulated":
                labels_acc *= fx.eps[t].astype(dt)
                lab = labels_acc
            else:
                lab = fx.eps[t].astype(dt) * lab0
            _loss, dV, db = net.grads(mu, xi, y, lab, y_obs)
            if bug == "zero_grad_forgotten":  # .grad keeps the sum of every gradient so far
                acc = acc + dV
                dV = acc
            if bug == "grad_clip_norm":
                coef = dt(value or 0.05) / (np.sqrt(np.sum(dV * dV)) + dt(1e-6))
                dV = dV * coef if coef < 1 else dV
            lr = eta
            if bug == "lr_invsqrt":
                lr = eta / np.sqrt(dt(1 + t))
            elif bug == "lr_exponential":
                lr = eta * dt(value or 0.99) ** t
            elif bug == "eta_scaled":
                lr = eta * dt(value or 1.5)
            elif bug == "lr_exponential_shifted":
                lr = eta * dt(value or 0.99) ** (t + 1)
            elif bug == "lr_cosine":
                lr = eta * (1 + np.cos(np.pi * t / T)) / 2
            elif bug == "lr_linear_warmup":
                lr = eta * (1 / 3 + (2 / 3) * min(t, 5) / 5)
            if bug == "sequential_j_update":
                net.V[:, 0] -= lr * dV[:, 0]
                _, dV2, _ = net.grads(mu, xi, y, lab, y_obs)
                net.V[:, 1] -= lr * dV2[:, 1]
                continue
            if bug == "weight_decay":
                dV = dV + dt(value or 1e-3) * net.V
            if bug == "momentum":
                buf = dV if buf is None else dt(value or 0.9) * buf + dV
                dV = buf
            net.V = net.V - lr * dV
            if bug == "bias":
                net.b = net.b - lr * db
    return Ws, losses


def gradient_fn(bug=None):
    """grad_fn(W, mu, xi, y, y_obs, q) in lnref's calling convention, with ``bug``."""

    def grad(W, mu, xi, y, y_obs, q):
        net = Net(W, q, bug)
        mu, xi = f32(mu, bug, "data"), f32(xi, bug, "data")
        _, dV, _ = net.grads(mu, xi, y, y if bug == "true_labels_in_loss" else y_obs, y_obs)
        if bug == "export_reshape":
            return dV.reshape(2, dV.shape[0], dV.shape[2]).copy()
        return np.ascontiguousarray(dV.transpose(1, 0, 2))

    return grad


def step_fn(bug=None, value=None):
    """step_fn(W, mu, xi, y, y_obs, q, eta) -> W', with ``bug``."""

    def step(W, mu, xi, y, y_obs, q, eta):
        net = Net(W, q, bug)
        mu, xi = f32(mu, bug, "data"), f32(xi, bug, "data")
        _, dV, _ = net.grads(mu, xi, y, y if bug == "true_labels_in_loss" else y_obs, y_obs)
        if bug == "sequential_j_update":
            net.V[:, 0] -= eta * dV[:, 0]
            _, dV2, _ = net.grads(mu, xi, y, y_obs, y_obs)
            net.V[:, 1] -= eta * dV2[:, 1]
            return net.export()
        if bug == "weight_decay":
            dV = dV + (value or 1e-3) * net.V
        if bug == "eta_scaled":
            eta = eta * (value or 1.5)
        if bug == "grad_clip_norm":
            coef = (value or 0.05) / (np.sqrt(np.sum(dV * dV)) + 1e-6)
            dV = dV * coef if coef < 1 else dV
        net.V = net.V - eta * dV
        return net.export()

    return step


# ---------------------------------------------------------------------------------------------- training methods
#: method mistakes (SPEC.md section 9) injected by :func:`train_method`
METHOD_BUGS = (
    "elr_target_init_label",
    "elr_target_init_uniform",
    "elr_target_updated_after_loss",
    "elr_target_not_detached",
    "elr_target_updated_every_step",
    "elr_no_clamp",
    "bootstrap_soft_detached",
    "sce_A_minus_4",
    "label_smoothing_unnormalised",
)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


class MethodNet(Net):
    """The same network; the loss is a training method's, written on the two-logit softmax p = (p_+, p_-)."""

    def method_grads(self, mu, xi, y, labels, cfg, bug, target, fresh):
        """dV of the method's mean loss; ``target`` (n, 2) ELR's targets the loss uses, ``fresh``: updated now."""
        m, n = self.V.shape[0], xi.shape[0]
        x1, x2 = y[:, None] * mu[None, :], xi
        z1 = np.einsum("rjd,nd->nrj", self.V, x1)
        z2 = np.einsum("rjd,nd->nrj", self.V, x2)
        second = np.array([1.0, -1.0]) / m
        f = np.einsum("nrj,j->n", self.act(z1) + self.act(z2), second)
        lp = dict(cfg.loss_params)
        py = _sig(labels * f)  # probability of the step's label
        pm = _sig(-labels * f)
        dpy = py * pm  # d p_y / d z, z = label * f
        if cfg.loss == "label_smoothing":
            e = lp["eps"] if bug == "label_smoothing_unnormalised" else lp["eps"] / 2
            t_y, t_m = 1 - lp["eps"] + e, e  # CE against the target: -t_y log p_y - t_m log p_m
            g = -t_y * pm + t_m * py
        elif cfg.loss == "sce":
            A = -4.0 if bug == "sce_A_minus_4" else lp["A"]
            ce = -np.where(py >= 1e-7, pm, 0.0)
            g = lp["alpha"] * ce + lp["beta"] * (-A) * (-dpy)  # RCE = -A (1 - p_y)
        elif cfg.loss == "bootstrap_soft":
            beta = lp["beta"]
            inside = (py >= 1e-7) & (pm >= 1e-7)
            if bug == "bootstrap_soft_detached":
                g = -beta * pm
            else:  # d/dz [-(beta + (1-beta) p_y) log p_y - (1-beta) p_m log p_m]
                g = (
                    -(1 - beta) * dpy * np.log(py)
                    - (beta + (1 - beta) * py) * pm
                    + (1 - beta) * dpy * np.log(pm)
                    + (1 - beta) * pm * py
                )
            g = np.where(inside, g, 0.0)
        elif cfg.loss == "elr":
            lam, beta = lp["lam"], lp["beta"]
            lo, hi = (0.0, 1.0) if bug == "elr_no_clamp" else (1e-4, 1 - 1e-4)
            cy, cm = np.clip(py, lo, hi), np.clip(pm, lo, hi)
            dcy = np.where((py >= lo) & (py <= hi), dpy, 0.0)
            dcm = np.where((pm >= lo) & (pm <= hi), -dpy, 0.0)
            k = np.where(labels > 0, 0, 1)
            a, b = target[np.arange(n), k], target[np.arange(n), 1 - k]
            h = 1 - a * cy - b * cm
            dh = -(a * dcy + b * dcm)
            if fresh and bug == "elr_target_not_detached":  # a = beta a0 + (1 - beta) cy / (cy + cm), likewise b
                tot = cy + cm
                da = (1 - beta) * (dcy * tot - cy * (dcy + dcm)) / tot**2
                db = (1 - beta) * (dcm * tot - cm * (dcy + dcm)) / tot**2
                dh = dh - (da * cy + db * cm)
            g = -pm + lam * dh / h
        else:
            raise ValueError(cfg.loss)
        dl = g * labels / n
        dh_ = dl[:, None, None] * second[None, None, :]
        d1, d2 = dh_ * self.dact(z1), dh_ * self.dact(z2)
        return f, np.einsum("nrj,nd->rjd", d1, x1) + np.einsum("nrj,nd->rjd", d2, x2)


def train_method(fx, bug=None):
    """GD with the fixture config's training method (ELR's targets kept as the official code keeps them), from the
    fixture's W0; returns dict step -> W at the fixture's steps."""
    cfg = fx.config
    d = fx.data
    net = MethodNet(fx.W0, cfg.q)
    n = d.n
    lp = dict(cfg.loss_params)
    if bug == "elr_target_init_label":
        target = np.stack([d.y_obs > 0, d.y_obs < 0], axis=1).astype(float)
    elif bug == "elr_target_init_uniform":
        target = np.full((n, 2), 0.5)
    else:
        target = np.zeros((n, 2))
    period = 1 if bug == "elr_target_updated_every_step" else int(lp.get("period", 1))
    keep = {int(s) for s in fx.steps}
    out = {}
    with np.errstate(all="ignore"):
        for t in range(fx.total_steps + 1):
            if t in keep:
                out[t] = net.export()
            if t == fx.total_steps:
                break
            labels = fx.mult(t)
            use, fresh = target, False
            if cfg.loss == "elr" and t % period == 0:
                f, _ = net.method_grads(d.mu, d.xi, d.y, labels, cfg, bug, target, False)
                lo, hi = (0.0, 1.0) if bug == "elr_no_clamp" else (1e-4, 1 - 1e-4)
                p = np.clip(np.stack([_sig(f), _sig(-f)], axis=1), lo, hi)
                new = lp["beta"] * target + (1 - lp["beta"]) * p / p.sum(axis=1, keepdims=True)
                if bug != "elr_target_updated_after_loss":
                    use, fresh = new, True
                target = new
            _, dV = net.method_grads(d.mu, d.xi, d.y, labels, cfg, bug, use, fresh)
            net.V = net.V - cfg.eta * dV
    return out


def method_gradient_fn(cfg, bug=None):
    """grad_fn(W, mu, xi, y, y_obs, q, target=, target_update=) of the method of ``cfg`` with ``bug``."""
    lp = dict(cfg.loss_params)

    def grad(W, mu, xi, y, y_obs, q, target=None, target_update=False):
        net = MethodNet(W, q)
        tg = np.zeros((len(y), 2)) if target is None else np.asarray(target).T.copy()
        use, fresh = tg, False
        if cfg.loss == "elr" and target_update:
            f, _ = net.method_grads(mu, xi, y, y_obs, cfg, bug, tg, False)
            lo, hi = (0.0, 1.0) if bug == "elr_no_clamp" else (1e-4, 1 - 1e-4)
            p = np.clip(np.stack([_sig(f), _sig(-f)], axis=1), lo, hi)
            new = lp["beta"] * tg + (1 - lp["beta"]) * p / p.sum(axis=1, keepdims=True)
            if bug != "elr_target_updated_after_loss":
                use, fresh = new, True
        _, dV = net.method_grads(mu, xi, y, y_obs, cfg, bug, use, fresh)
        return np.ascontiguousarray(dV.transpose(1, 0, 2))

    return grad


# ---------------------------------------------------------------------------------------------- selection algorithms
#: selection mistakes (SPEC.md section 9) injected by :func:`train_selection`
SELECTION_BUGS = ("selection_mask_ignored", "selection_mean_over_n")


def _selection_dV(V, mu, xi, y, y_obs, q, cfg, mask, denom):
    """dV (m, 2, d) of (1/denom) sum_{i: mask_i = 1} l(y_obs_i f_i): the logistic loss, or GCE (1 - p^q)/q with
    p = sigmoid(y_obs f) clamped below at 1e-7 (its gradient 0 there) for loss='gce'."""
    m = V.shape[0]
    x1, x2 = y[:, None] * mu[None, :], xi
    z1 = np.einsum("rjd,nd->nrj", V, x1)
    z2 = np.einsum("rjd,nd->nrj", V, x2)
    second = np.array([1.0, -1.0]) / m
    act = lambda z: np.where(z > 0, z, 0) ** q  # noqa: E731
    dact = lambda z: np.where(z > 0, q * np.where(z > 0, z, 0) ** (q - 1), 0)  # noqa: E731
    f = np.einsum("nrj,j->n", act(z1) + act(z2), second)
    z = y_obs * f
    if cfg.loss == "gce":
        p = _sig(z)
        g = np.where(p >= 1e-7, -(p ** dict(cfg.loss_params)["q"]) * _sig(-z), 0.0)
    else:
        g = -_sig(-z)
    sel = np.flatnonzero(mask)  # the loss is over the selected samples only
    dl = np.zeros_like(f)
    dl[sel] = g[sel] * y_obs[sel] / denom
    dh = dl[:, None, None] * second[None, None, :]
    return np.einsum("nrj,nd->rjd", dh * dact(z1), x1) + np.einsum("nrj,nd->rjd", dh * dact(z2), x2)


def train_selection(fx, bug=None):
    """GD of a selection fixture's algorithm ('select_retrain', 'truncated_gce') from its W0, on the masks the
    fixture records: step t trains on {i : mask[t, i] = 1}, the mean over |S| (select_retrain) or over n
    (truncated_gce), and restarts from W0 at reset_step; returns dict step -> W at the fixture's steps."""
    cfg, d = fx.config, fx.data
    W0 = np.ascontiguousarray(np.asarray(fx.W0).transpose(1, 0, 2))
    V = W0.copy()
    n = d.n
    keep = {int(s) for s in fx.steps}
    out = {}
    with np.errstate(all="ignore"):
        for t in range(fx.total_steps + 1):
            if t in keep:
                out[t] = V.transpose(1, 0, 2).copy()
            if t == fx.total_steps:
                break
            if t == fx.reset_step:
                V = W0.copy()
            mask = np.ones(n) if bug == "selection_mask_ignored" else fx.mask[t]
            size = int(mask.sum())
            if size == 0:
                continue
            mean_over_S = cfg.algorithm == "select_retrain" and bug is None
            denom = size if mean_over_S else n
            V = V - cfg.eta * _selection_dV(V, d.mu, d.xi, d.y, d.y_obs, cfg.q, cfg, mask, denom)
    return out


def selection_gradient_fn(cfg, bug=None):
    """grad_fn(W, mu, xi, y, y_obs, q, mask=, scale=) of a selection fixture: scale (1/n) sum_{i in S} grad l_i."""

    def grad(W, mu, xi, y, y_obs, q, mask=None, scale=1.0):
        n = len(y)
        if bug == "selection_mask_ignored":
            mask, scale = np.ones(n), 1.0
        denom = n if bug == "selection_mean_over_n" else n / scale
        V = np.ascontiguousarray(np.asarray(W).transpose(1, 0, 2))
        return np.ascontiguousarray(_selection_dV(V, mu, xi, y, y_obs, q, cfg, mask, denom).transpose(1, 0, 2))

    return grad


def selection_step_fn(cfg, bug=None):
    """step_fn(W, mu, xi, y, y_obs, q, eta, mask=, scale=): one GD step of the selection objective."""
    grad = selection_gradient_fn(cfg, bug)

    def step(W, mu, xi, y, y_obs, q, eta, mask=None, scale=1.0):
        return W - eta * grad(W, mu, xi, y, y_obs, q, mask=mask, scale=scale)

    return step


# ---------------------------------------------------------------------------------------------- co-teaching
#: co-teaching mistakes (SPEC.md section 9) injected by :func:`train_coteaching`
COTEACHING_BUGS = ("coteaching_own_selection", "coteaching_rate_uncapped")


def _margins(V, mu, y, xi, y_obs, q):
    """y_obs * f of every sample for weights V (m, 2, d) (the paper's network)."""
    m = V.shape[0]
    act = lambda z: np.where(z > 0, z, 0) ** q  # noqa: E731
    z1 = np.einsum("rjd,nd->nrj", V, y[:, None] * mu[None, :])
    z2 = np.einsum("rjd,nd->nrj", V, xi)
    f = np.einsum("nrj,j->n", act(z1) + act(z2), np.array([1.0, -1.0]) / m)
    return y_obs * f


def train_coteaching(fx, bug=None):
    """Co-teaching from the fixture's W0 and W0_2, choosing its own masks: at step t each network ranks the samples
    by margin y_obs f (largest first, ties to the lower index), keeps int((1 - R(t)) n), R(t) = tau min(t/T_k, 1),
    and the OTHER network steps on the mean loss over them.  Returns (dict step -> W, dict step -> W_2)."""
    cfg, d = fx.config, fx.data
    V = [np.ascontiguousarray(np.asarray(A).transpose(1, 0, 2)) for A in (fx.W0, fx.W0_2)]
    n, tau, tk = d.n, cfg.selection_rate, cfg.coteach_tk
    keep_steps = {int(s) for s in fx.steps}
    out = ({}, {})
    with np.errstate(all="ignore"):
        for t in range(fx.total_steps + 1):
            if t in keep_steps:
                for k in range(2):
                    out[k][t] = V[k].transpose(1, 0, 2).copy()
            if t == fx.total_steps:
                break
            rate = tau * (t / tk) if bug == "coteaching_rate_uncapped" else tau * min(t / tk, 1.0)
            keep = max(0, int((1.0 - rate) * n))
            ranked = [np.argsort(-_margins(v, d.mu, d.y, d.xi, d.y_obs, cfg.q), kind="stable")[:keep] for v in V]
            chosen = ranked if bug == "coteaching_own_selection" else ranked[::-1]  # network k trains on the other's
            new = []
            for k in range(2):
                mask = np.zeros(n)
                mask[chosen[k]] = 1.0
                if keep == 0:
                    new.append(V[k])
                    continue
                new.append(V[k] - cfg.eta * _selection_dV(V[k], d.mu, d.xi, d.y, d.y_obs, cfg.q, cfg, mask, keep))
            V = new
    return out
