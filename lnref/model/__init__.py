"""The network as functions of (W, data): outputs, loss and gradient (SPEC.md sections 2-3).

Each function validates its inputs, allocates outputs and calls the kernels of :mod:`lnref.kernels.weights`, the same
kernels the weight engine runs, so ``W - eta * gradient(W, data)`` is bit-identical to one step of
:func:`lnref.train`.
"""

from __future__ import annotations

import numpy as np

from .._lazy import submodule_getattr
from ..config import LOSSES, PATCH_REDUCTIONS, Config, ConfigError, check_choice, check_float, output_divisor
from ..data import Dataset
from ..kernels import weights as K
from ..kernels.equations import gradient_scale_array

__all__ = ["forward", "loss", "gradient", "gradients", "gd_step", "check_weights", "check_bias", "sample_scalars"]


def check_weights(W, d: int | None = None, m: int | None = None, name: str = "W") -> np.ndarray:
    """Coerce W to a C-contiguous float64 (2, m, d) array; refuse wrong shapes and non-finite entries."""
    try:
        W = np.ascontiguousarray(W, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a float64-convertible array: {exc}") from None
    if W.ndim != 3 or W.shape[0] != 2:
        raise ConfigError(f"{name} must have shape (2, m, d) (index 0 holds j=+1), got {W.shape}")
    if d is not None and W.shape[2] != d:
        raise ConfigError(f"{name} has d={W.shape[2]} but the data has d={d}")
    if m is not None and W.shape[1] != m:
        raise ConfigError(f"{name} has m={W.shape[1]} filters per class but the config says m={m}")
    if not np.all(np.isfinite(W)):
        raise ConfigError(f"{name} contains NaN or infinite values; every entry must be finite")
    return W


def check_bias(b0, m: int, name: str = "b0") -> np.ndarray:
    """Coerce initial biases to a C-contiguous float64 (2, m) array; refuse other shapes and non-finite values."""
    try:
        b0 = np.ascontiguousarray(b0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a real float64-convertible array of shape (2, m): {exc}") from None
    if b0.shape != (2, m):
        raise ConfigError(f"{name} must have shape (2, m) = (2, {m}) (index 0 holds j=+1), got {b0.shape}")
    if not np.isfinite(b0).all():
        raise ConfigError(f"{name} contains NaN or infinite values; every entry must be finite")
    return b0


def _check_data(data) -> Dataset:
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an lnref.Dataset, got {type(data).__name__}")
    return data


def _inner(W: np.ndarray, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    F, d = 2 * W.shape[1], W.shape[2]
    XT = np.empty((d, data.n))
    K.transpose(data.xi, XT)
    A = np.empty((F, data.n))
    B = np.empty(F)
    K.inner_products(W.reshape(F, d), data.mu, XT, A, B)
    return A, B


def _mult(data: Dataset, eps) -> np.ndarray:
    if eps is None:
        return data.y_obs
    eps = np.ascontiguousarray(eps, dtype=np.float64)
    if eps.shape != (data.n,) or not np.all((eps == 1.0) | (eps == -1.0)):
        raise ConfigError(f"eps must be an array of +-1 of shape ({data.n},)")
    return eps * data.y_obs


def _conventions(W: np.ndarray, b, output_scale, patch_reduce) -> tuple[np.ndarray, float, bool]:
    """(bias (2m,), divisor, with_bias) of a network; the same rules as Config (SPEC.md section 7)."""
    m = W.shape[1]
    if patch_reduce not in PATCH_REDUCTIONS:
        raise ConfigError(f"patch_reduce={patch_reduce!r} is not allowed: choose 'sum' or 'mean'")
    if output_scale is not None:
        output_scale = check_float("output_scale", output_scale, low=0.0, low_open=True, allowed="> 0")
    div = output_divisor(m, patch_reduce, output_scale)
    if b is None:
        return np.zeros(2 * m), div, False
    return check_bias(b, m, "b").reshape(2 * m), div, True


def _method(loss: str, loss_params, target, n: int, update: bool) -> tuple[int, np.ndarray, np.ndarray, bool]:
    """(code, parameter vector, targets (2, n), update) of a training method, validated like Config's fields."""
    loss = check_choice("loss", loss, tuple(LOSSES))
    cfg_like = Config(loss=loss, loss_params=loss_params, n=n)
    if target is None:
        target = np.zeros((2, n))
    else:
        if loss != "elr":
            raise ConfigError(f"target is ELR's per-sample state; loss={loss!r} has none (leave target out)")
        try:
            target = np.array(target, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"target must be a real array of shape (2, n): {exc}") from None
        if target.shape != (2, n) or not np.isfinite(target).all():
            raise ConfigError(
                f"target must be a finite array of shape (2, n) = (2, {n}) (row 0: class +1, "
                f"row 1: class -1), got shape {target.shape}"
            )
    return cfg_like.loss_code, cfg_like.loss_vector(), target, bool(update) and loss == "elr"


def sample_scalars(
    f, data: Dataset, eps=None, *, loss: str = "logistic", loss_params=None, target=None, target_update: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-sample loss, the scalar g_i = l'_method(z_i) mult_i of the gradient, and ELR's targets used, at
    outputs f (SPEC.md sections 3 and 9), as one GD step of :func:`lnref.train` evaluates them.

    Parameters
    ----------
    f : array (n,), the outputs f(W, x_i)
    data : Dataset (its observed labels; ``eps`` (n,) of +-1 multiplies them for label-noise GD)
    loss, loss_params : the training method and its hyper-parameters (as :class:`lnref.Config`)
    target : array (2, n), optional
        ELR only: the per-sample targets BEFORE this step (row 0: class +1, row 1: class -1); default zeros (a
        run's step 0).  A run's targets at logged step t are ``Result.trace["target"][row]``.
    target_update : bool
        ELR only: whether this step updates the targets before its loss (steps 0, period, 2 period, ...).

    Returns
    -------
    (loss (n,), lpm (n,), target (2, n)) : per-sample method loss, g(z_i) mult_i, and the targets the loss used
    (after the update).
    """
    data = _check_data(data)
    f = np.ascontiguousarray(f, dtype=np.float64)
    if f.shape != (data.n,):
        raise ConfigError(f"f must have shape (n,) = ({data.n},), got {f.shape}")
    code, lp, tgt, update = _method(loss, loss_params, target, data.n, target_update)
    mult = np.ascontiguousarray(_mult(data, eps), dtype=np.float64)
    lo = np.empty(data.n)
    lpm = np.empty(data.n)
    K.method_scalars(f, mult, np.ascontiguousarray(data.y, dtype=np.float64), code, lp, tgt, update, lo, lpm)
    return lo, lpm, tgt


def forward(
    W, data: Dataset, q: float = 1.0, *, b=None, output_scale: float | None = None, patch_reduce: str = "sum"
) -> np.ndarray:
    """f(W, x_i) for every training sample.

    Parameters
    ----------
    W : array (2, m, d) float64, index 0 holds j = +1
    data : Dataset
    q : float, activation exponent (>= 1)
    b : array (2, m), optional
        Biases added to every pre-activation (SPEC.md section 7); None for the paper's network (no bias).
    output_scale : float, optional
        Second-layer weight; None means 1/m (the paper).
    patch_reduce : {'sum', 'mean'}
        Sum (the paper) or average the two patches.

    Returns
    -------
    ndarray (n,) float64

    Notes
    -----
    SPEC.md sections 2 and 7: f = F_{+1} - F_{-1},
    F_j = output_scale c_p sum_r [sigma(<w_jr, y_i mu> + b_jr) + sigma(<w_jr, xi_i> + b_jr)], c_p = 1 or 1/2.
    """
    data = _check_data(data)
    W = check_weights(W, d=data.d)
    q = check_float("q", q, low=1.0, allowed="with q >= 1")
    bias, div, _ = _conventions(W, b, output_scale, patch_reduce)
    A, B = _inner(W, data)
    out = np.empty(data.n)
    K.forward(A, B, bias, data.y, q, W.shape[1], div, out)
    return out


def loss(
    W,
    data: Dataset,
    q: float = 1.0,
    eps=None,
    *,
    b=None,
    output_scale: float | None = None,
    patch_reduce: str = "sum",
    loss: str = "logistic",
    loss_params=None,
    target=None,
    target_update: bool = True,
) -> float:
    """L(W) = (1/n) sum_i l(y_obs_i f(W, x_i)) (SPEC.md section 3); with ``eps`` the label-noise GD loss.

    ``b``, ``output_scale``, ``patch_reduce``: the network's conventions, as :func:`forward`.  ``loss``,
    ``loss_params``: a training method (SPEC.md section 9), ``target``/``target_update`` its state (ELR), as
    :func:`sample_scalars`."""
    if not (loss == "logistic" and loss_params is None and target is None):  # a bad method: refused before work
        _method(loss, loss_params, target, _check_data(data).n, target_update)
    f = forward(W, data, q, b=b, output_scale=output_scale, patch_reduce=patch_reduce)
    if loss == "logistic" and loss_params is None and target is None:
        mult = _mult(data, eps)
        lo = np.empty(data.n)
        dl = np.empty(data.n)
        K.losses(f, mult, lo, dl)
    else:
        lo = sample_scalars(
            f, data, eps, loss=loss, loss_params=loss_params, target=target, target_update=target_update
        )[0]
    return float(np.mean(lo))


def gradient(
    W,
    data: Dataset,
    q: float = 1.0,
    eps=None,
    *,
    b=None,
    output_scale: float | None = None,
    patch_reduce: str = "sum",
    loss: str = "logistic",
    loss_params=None,
    target=None,
    target_update: bool = True,
) -> np.ndarray:
    """grad_W L, shape (2, m, d) (SPEC.md section 3); with ``eps`` (n,) of +-1 the label-noise GD gradient.

    ``b``, ``output_scale``, ``patch_reduce``: the network's conventions, as :func:`forward` (the bias gradient
    is :func:`gradients`' second output).  ``loss``, ``loss_params``, ``target``, ``target_update``: a training
    method and its state (SPEC.md section 9), as :func:`sample_scalars`; l'_i is then the method's g(z_i).

    Compare gradients normwise (||G - G_ref|| <= rtol ||G_ref||, as lnref.testing does): an elementwise
    ``assert_allclose(rtol=1e-12)`` fails on entries that are near zero by cancellation.

    To check another implementation's gradient against this one, compare normwise, ``max|g - g_lnref| /
    max|g_lnref|`` (what :mod:`lnref.testing` does; independent float64 code lands near 1e-16): an elementwise
    ``assert_allclose(rtol=1e-12)`` fails on entries near 0, whose rounding error is set by the largest terms
    of their sums, not by their own size.

    Notes
    -----
    grad_{w_jr} L = (s_j/(n div)) sum_i l'_i y_obs_i [sigma'(<w_jr, y_i mu> + b_jr) y_i mu + sigma'(<w_jr, xi_i> +
    b_jr) xi_i], div = 1/(output_scale c_p) (m for the paper).
    """
    return gradients(
        W,
        data,
        q,
        eps,
        b=b,
        output_scale=output_scale,
        patch_reduce=patch_reduce,
        loss=loss,
        loss_params=loss_params,
        target=target,
        target_update=target_update,
    )[0]


def gradients(
    W,
    data: Dataset,
    q: float = 1.0,
    eps=None,
    *,
    b=None,
    output_scale: float | None = None,
    patch_reduce: str = "sum",
    loss: str = "logistic",
    loss_params=None,
    target=None,
    target_update: bool = True,
    mask=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(grad_W L (2, m, d), grad_b L (2, m) or None without biases) (SPEC.md sections 3 and 7).

    dL/db_jr = (s_j/(n div)) sum_i l'_i y_obs_i [sigma'(<w_jr, y_i mu> + b_jr) + sigma'(<w_jr, xi_i> + b_jr)].
    ``mask`` (n,) of 0/1, optional: a selection algorithm's sample mask (SPEC.md section 9); the gradient of
    (1/n) sum_{i in S} l_i, as the engines take it (a sample outside S contributes 0).
    """
    data = _check_data(data)
    W = check_weights(W, d=data.d)
    q = check_float("q", q, low=1.0, allowed="with q >= 1")
    bias, div, with_bias = _conventions(W, b, output_scale, patch_reduce)
    if not (loss == "logistic" and loss_params is None and target is None):  # a bad method: refused before work
        _method(loss, loss_params, target, data.n, target_update)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.shape != (data.n,) or not np.all((mask == 0.0) | (mask == 1.0)):
            raise ConfigError(f"mask must be an array of 0/1 of shape ({data.n},), got shape {mask.shape}")
    m, d = W.shape[1], W.shape[2]
    F, n = 2 * m, data.n
    A, B = _inner(W, data)
    f = np.empty(n)
    K.forward(A, B, bias, data.y, q, m, div, f)
    if loss == "logistic" and loss_params is None and target is None:
        mult = _mult(data, eps)
        lo = np.empty(n)
        dl = np.empty(n)
        K.losses(f, mult, lo, dl)
        lpm = dl * mult
    else:
        lpm = sample_scalars(
            f, data, eps, loss=loss, loss_params=loss_params, target=target, target_update=target_update
        )[1]
    if mask is not None:
        lpm = lpm * mask
    G, S, Sb, C = np.empty((F, d)), np.empty(F), np.empty(F), np.empty((F, n))
    xi_sq = np.empty(n)
    K.row_sq_norms(data.xi, xi_sq)
    # eta = 0: the coefficient recursions the kernel also evaluates are not needed here
    K.gradient(
        A,
        B,
        bias,
        lpm,
        data.y,
        data.mu,
        data.xi,
        q,
        m,
        div,
        0.0,
        0.0,
        xi_sq,
        np.zeros(F),
        np.zeros((F, n)),
        np.empty(F),
        np.empty((F, n)),
        np.empty(F),
        G,
        S,
        Sb,
        C,
        np.zeros(F, dtype=np.int64),
        with_bias,
    )
    gb = None
    if with_bias:
        sj = np.where(np.arange(F) < m, 1.0, -1.0)
        gb = (gradient_scale_array(sj, n, div) * Sb).reshape(2, m)
    return G.reshape(2, m, d), gb


def gd_step(W, data: Dataset, eta: float, q: float = 1.0, eps=None) -> np.ndarray:
    """W - eta * grad L(W): one (label-noise) GD step of the paper's network, bit-identical to a step of
    :func:`lnref.train`."""
    eta = check_float("eta", eta, low=0.0, low_open=True, allowed="> 0")
    G = gradient(W, data, q, eps)
    W = check_weights(W)
    return W - eta * G


#: sub-modules read as attributes on first access (``lnref.model.decomposition`` after ``import lnref``)
__getattr__ = submodule_getattr(__name__, ("decomposition", "metrics"))
