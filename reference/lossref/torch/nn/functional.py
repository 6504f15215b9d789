"""Mirror of the loss functions of ``torch.nn.functional`` (PyTorch 2.13): same names,
signatures, defaults, dtype rules and errors; NumPy arrays in and out.

Every function has an ``.exact`` twin with the same signature that returns a
:class:`lossref.Exact`. Each preparer below states what torch does with its arguments;
the elementwise values are the catalogue's (``lossref.losses``), the reduction is
:func:`lossref.reduction.reduce_torch`.

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> F.mse_loss(np.array([1., 2., 4.], np.float32), np.array([0., 0., 0.], np.float32))
array(7., dtype=float32)
>>> F.binary_cross_entropy(np.array([0., 0.5]), np.array([1., 1.]), reduction="none")
array([100.        ,   0.69314718])
"""

from __future__ import annotations

import warnings
import numpy as np

from ...dialect import check_bool, is_float
from ...numerics import sigmoid_xent_grads
from ...losses import binary_crossentropy as _bce
from ...losses import huber as _huber
from ...losses import kl_divergence as _kl
from ...losses import mean_absolute_error as _mae
from ...losses import mean_squared_error as _mse
from ...losses import poisson as _poisson
from ...reduction import torch_reduction
from .._base import (Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, broadcast, expands_to,
                     float_format, result_format, result_type, torch_function)

__all__ = ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss"]


# --- shared input handling ------------------------------------------------------------------------


def _pointwise(fn: str, input, target, reduction: str, weight, *, params=None, keep_input_dtype=False,
               weight_divides=True) -> Prepared:
    """l1, mse, smooth L1, Huber: broadcast with a warning, torch's result dtype, and the
    optional `weight` of the input's size (``'mean'`` divides by its sum where
    `weight_divides`, else by the element count)."""
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    ib, tb = broadcast(fn, i, t, warn=True)
    if keep_input_dtype:  # huber_loss computes in the input's dtype
        fmt = float_format(fn, i, "input")
    else:
        fmt = result_format(fn, (i.dtype, ib.ndim), (t.dtype, ib.ndim))
    stage3 = {"reduction": torch_reduction(reduction)}
    if weight is not None:
        w = as_tensor(weight, "weight")
        if w.shape != i.shape:
            raise ValueError(f"{fn}: weights and input must have the same size; got weight "
                             f"{w.shape} and input {i.shape}")
        red = torch_reduction(reduction, aliases=False)
        fmt = result_format(fn, (fmt.dtype, ib.ndim), (w.dtype, w.ndim))
        stage3 = {"reduction": "weighted_mean" if red == "mean" and weight_divides else red, "weight": w}
    return Prepared(tb, ib, fmt, params or {}, stage3=stage3)


def _legacy(size_average, reduce, reduction):
    return torch_reduction(reduction, size_average, reduce) if size_average is not None \
        or reduce is not None else reduction


# --- regression -----------------------------------------------------------------------------------


@torch_function("mean_absolute_error", _mae.reference, _mae.oracle, elementwise=True)
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    """``|input - target|``, reduced; with `weight` (the input's shape) ``'mean'`` is
    ``Σ w|d| / Σ w``."""
    return _pointwise("l1_loss", input, target, _legacy(size_average, reduce, reduction), weight)


@torch_function("mean_squared_error", _mse.reference, _mse.oracle, elementwise=True)
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    """``(input - target)^2``, reduced; with `weight` ``'mean'`` is ``Σ w d^2 / Σ w``."""
    return _pointwise("mse_loss", input, target, _legacy(size_average, reduce, reduction), weight)


@torch_function("huber", _huber.reference, _huber.oracle, elementwise=True)
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``d^2/2`` where ``|d| < delta``, else ``delta (|d| - delta/2)``, in the input's dtype;
    with `weight` ``'mean'`` is ``mean(w ℓ)`` (the element count, not ``Σ w``)."""
    if delta <= 0:
        raise TorchRuntimeError("huber_loss does not support non-positive values for delta.")
    return _pointwise("huber_loss", input, target, reduction, weight, params={"delta": float(delta)},
                      keep_input_dtype=True, weight_divides=False)


def _smooth_l1_vjp(y_true, y_pred, cot, beta):
    """``d/dinput = e / beta`` where ``|e| < beta``, else ``sign(e)`` (``e = input - target``;
    ``beta = 0``: ``sign(e)``, 0 at ``e = 0`` as torch's ``l1_loss``); ``d/dtarget`` its negative.
    At ``|e| = beta`` both pieces give ``sign(e)``."""
    e = y_pred - y_true  # one rounding: e / beta within about 1 ulp
    g = np.sign(e) if beta == 0 else np.where(np.abs(e) < beta, e / beta, np.sign(e))
    g = cot * g
    return {"y_pred": g, "y_true": -g}


@torch_function("huber", _huber.smooth_l1_reference, _huber.smooth_l1_oracle, elementwise=True,
                vjp=_smooth_l1_vjp)
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    """``d^2 / (2 beta)`` where ``|d| < beta``, else ``|d| - beta/2`` (``beta = 0``: ``|d|``)."""
    if beta < 0:
        raise TorchRuntimeError("smooth_l1_loss does not support negative values for beta.")
    return _pointwise("smooth_l1_loss", input, target, _legacy(size_average, reduce, reduction), None,
                      params={"beta": float(beta)})


# --- binary cross-entropy -------------------------------------------------------------------------


def _in_unit_interval(fn: str, arr: np.ndarray, name: str) -> None:
    if not np.all((arr >= 0) & (arr <= 1)):  # NaN fails too, as in torch
        raise TorchRuntimeError(f"{fn}: all elements of {name} should be between 0 and 1")


def _weights(fn: str, shape: tuple, **arrays) -> dict:
    """Optional weight arrays that must broadcast to the loss's `shape`, by name."""
    return {k: None if v is None else expands_to(fn, k, as_tensor(v, k), shape) for k, v in arrays.items()}


def _log_clamped_vjp(y_true, y_pred, cot, log_floor=-100.0):
    """Gradient of ``-(y max(log x, f) + (1 - y) max(log(1 - x), f))``: a clamped log is a
    constant (0 there), an unclamped one gives ``-y / x`` and ``(1 - y) / (1 - x)``, both
    together ``(x - y) / (x (1 - x))`` (no cancellation of the two quotients near x = y).
    ``d/dy = min(-log x, -f) - min(-log(1 - x), -f)``, near x = 1/2 as ``log1p((1 - 2x) / x)``.

    torch's own backward differs off the definition: ``(x - y) / max(x (1 - x), 1e-12)``
    for the input (so -y 1e12 at x = 0, where the log is clamped) and unclamped logs for the
    target (inf at x = 0); the reference follows the definition."""
    x, y = y_pred, y_true
    cap = -float(log_floor)
    a, b = -np.log(x), -np.log1p(-x)
    on_a, on_b = a <= cap, b <= cap  # a log at the floor: the clamp passes (torch's clamp_min)
    both = (x - y) / (x * (1.0 - x))
    dx = np.where(on_a & on_b, both, np.where(on_a, -y / x, 0.0) + np.where(on_b, (1.0 - y) / (1.0 - x), 0.0))
    dx = np.where(np.isnan(x) | np.isnan(y), np.nan, dx)
    mid = (x >= 0.25) & (x <= 0.75)
    dy = np.where(mid & on_a & on_b, np.log1p((1.0 - 2.0 * x) / x), np.minimum(a, cap) - np.minimum(b, cap))
    return {"y_pred": cot * dx, "y_true": cot * dy}


def _pos_weighted_vjp(y_true, y_pred, cot, pos_weight=None):
    """Gradient of ``q y softplus(-x) + (1 - y) softplus(x)``
    (:func:`lossref.numerics.sigmoid_xent_grads`); ``"pos_weight"`` too where one is given."""
    dx, dy, dq = sigmoid_xent_grads(y_true, y_pred, pos_weight)
    out = {"y_pred": cot * dx, "y_true": cot * dy}
    if dq is not None:
        out["pos_weight"] = cot * dq
    return out


def _kl_log_space_vjp(y_true, y_pred, cot, log_target=False):
    """``y (log y - l)``: ``d/dl = -y``, ``d/dy = (log y - l) + 1`` (NaN at y = 0, where the
    value is defined only from the right, as torch's xlogy gives); ``e^t (t - l)``:
    ``d/dl = -e^t``, ``d/dt = e^t ((t - l) + 1)``."""
    y, l = y_true, y_pred
    if log_target:
        w = np.exp(y)
        return {"y_pred": -(cot * w), "y_true": cot * (w * ((y - l) + 1.0))}
    dy = np.where(y > 0, (np.log(y) - l) + 1.0, np.nan)
    return {"y_pred": -(cot * y), "y_true": cot * dy}


def _poisson_nll_vjp(y_true, y_pred, cot, log_input=True, full=False, epsilon=1e-8):
    """``exp(l) - y l``: ``d/dl = exp(l) - y``, ``d/dy = -l``; ``p - y log(p + eps)``:
    ``d/dp = 1 - y / (p + eps)`` (1 for y = 0), ``d/dy = -log(p + eps)``. `full` adds
    ``log y + 1 / (2y)`` to ``d/dy`` where ``y > 1`` (0 elsewhere: the term is 0 there;
    torch's masked product gives NaN at y = 0)."""
    y, x = y_true, y_pred
    if log_input:
        dx, dy = np.exp(x) - y, -x
    else:
        s = x + float(epsilon)
        dx = np.where(y == 0, 1.0, 1.0 - y / s)
        # NaN where the value's log is (a negative p + eps): the catalogue's, where
        # torch's autograd returns the finite 1 - y / (p + eps)
        dx = np.where(np.isnan(s) | (s < 0), np.nan, dx)
        dy = -_poisson._log_shifted(x, float(epsilon))
    if full:
        dy = dy + np.where(y > 1, np.log(y) + 0.5 / y, 0.0)
    return {"y_pred": cot * dx, "y_true": cot * dy}


@torch_function("binary_crossentropy", _bce.log_clamped_reference, _bce.log_clamped_oracle,
                elementwise=True, vjp=_log_clamped_vjp)
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``-w (y max(log x, -100) + (1 - y) max(log(1 - x), -100))`` of probabilities x.

    Input and target must have equal shapes (``ValueError``), the same float dtype and
    values in [0, 1] (``RuntimeError``); `weight` broadcasts to the target's shape.
    """
    fn = "binary_cross_entropy"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    if t.shape != i.shape:
        raise ValueError(f"{fn}: using a target size {t.shape} that is different to the input "
                         f"size {i.shape} is deprecated; please ensure they have the same size")
    fmt = float_format(fn, i, "input")
    if t.dtype != i.dtype:
        raise TorchDtypeError(f"{fn}: target dtype {t.dtype} must be the input's dtype {i.dtype}")
    _in_unit_interval(fn, i, "input")
    _in_unit_interval(fn, t, "target")
    return Prepared(t, i, fmt, {"log_floor": -100.0},
                    stage3={"reduction": red, **_weights(fn, t.shape, weight=weight)})


@torch_function("binary_crossentropy", _bce.pos_weighted_reference, _bce.pos_weighted_oracle,
                elementwise=True, vjp=_pos_weighted_vjp)
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """``-w (p y log σ(x) + (1 - y) log σ(-x))`` of logits x, in the target's dtype.

    Input and target must have equal shapes (``ValueError``); `weight` and `pos_weight`
    (p) broadcast to it, trailing dimensions first (a per-class p of an (N, C, H, W)
    target has shape (C, 1, 1)).
    """
    fn = "binary_cross_entropy_with_logits"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    if t.shape != i.shape:
        raise ValueError(f"{fn}: target size {t.shape} must be the same as input size {i.shape}")
    float_format(fn, i, "input")
    fmt = float_format(fn, t, "target")  # torch forms the loss in place in a target-typed tensor
    w = _weights(fn, t.shape, weight=weight, pos_weight=pos_weight)
    return Prepared(t, i, fmt, {"pos_weight": w["pos_weight"]},
                    stage3={"reduction": red, "weight": w["weight"]})


def _floated(arr: np.ndarray) -> tuple:
    """``(dtype, ndim)`` of ``exp``/``log`` of `arr`: integers give float32."""
    return (arr.dtype if is_float(arr.dtype) else np.dtype(np.float32)), arr.ndim


# --- distributions ------------------------------------------------------------------------------


@torch_function("kl_divergence", _kl.log_space_reference, _kl.log_space_oracle, elementwise=True,
                vjp=_kl_log_space_vjp)
def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """``target (log target - input)`` with input ``log q`` (xlogy: 0 where target is 0), or
    ``exp(target) (target - input)`` with `log_target`.

    ``'batchmean'`` divides the sum by ``input.shape[0]`` (a 0-d input: the sum);
    ``'mean'`` divides by the element count and warns, as torch does.
    """
    fn = "kl_div"
    log_target = check_bool(fn, "log_target", log_target)
    legacy = size_average is not None or reduce is not None
    if legacy:
        red = torch_reduction(reduction, size_average, reduce)
    else:
        if reduction == "mean":
            warnings.warn("kl_div: reduction 'mean' divides the total loss by both the batch size "
                          "and the support size; 'batchmean' divides by the batch size only, which "
                          "is the KL divergence", UserWarning, stacklevel=3)
        red = torch_reduction(reduction, extra=("batchmean",))
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    if not (is_float(i.dtype) and is_float(t.dtype)):
        raise TorchDtypeError(f"{fn}: integral inputs are not supported")
    fmt = result_format(fn, (i.dtype, i.ndim), (t.dtype, t.ndim))
    ib, tb = broadcast(fn, i, t)
    stage3 = {"reduction": red}
    if reduction == "batchmean" and i.ndim:
        # torch divides by input.size(0) after whatever reduction it applied
        stage3 = {"reduction": "batchmean", "batch_size": i.shape[0]} if red == "batchmean" \
            else {"reduction": red, "divide_by": i.shape[0]}
    elif red == "batchmean":
        stage3 = {"reduction": "sum"}
    return Prepared(tb, ib, fmt, {"log_target": log_target}, stage3=stage3)


@torch_function("poisson", _poisson.nll_reference, _poisson.nll_oracle, elementwise=True,
                vjp=_poisson_nll_vjp)
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """``exp(input) - target·input`` (`log_input`), else ``input - target·log(input + eps)``;
    `full` adds Stirling's ``y log y - y + log(2πy)/2`` where ``target > 1``.

    The result dtype is that of torch's steps: ``exp`` and ``log`` of an integer tensor are
    float32, then each product and difference promotes; the Stirling term is added in place
    (it does not change the dtype).
    """
    fn = "poisson_nll_loss"
    log_input, full = check_bool(fn, "log_input", log_input), check_bool(fn, "full", full)
    red = torch_reduction(reduction, size_average, reduce, aliases=False)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    ib, tb = broadcast(fn, i, t)
    fi, it, tt = _floated(i), (i.dtype, i.ndim), (t.dtype, t.ndim)
    if log_input:  # exp(input) - target * input
        fmt = result_format(fn, fi, result_type(tt, it))
    else:  # input - target * log(input + eps)
        fmt = result_format(fn, it, result_type(tt, fi))
    return Prepared(tb, ib, fmt, {"log_input": log_input, "full": full, "epsilon": float(eps)},
                    stage3={"reduction": red})
# The other families live in modules of their own (they import the helpers above).
from ._classification import (cross_entropy, hinge_embedding_loss, multi_margin_loss,  # noqa: E402
                              multilabel_margin_loss, multilabel_soft_margin_loss, nll_loss,
                              soft_margin_loss)
from ._ctc import ctc_loss  # noqa: E402
from ._cosine_embedding import cosine_embedding_loss  # noqa: E402
from ._gaussian import gaussian_nll_loss  # noqa: E402
from ._ranking import margin_ranking_loss  # noqa: E402
from ._triplet import triplet_margin_loss, triplet_margin_with_distance_loss  # noqa: E402

__all__ += ["nll_loss", "cross_entropy", "multilabel_soft_margin_loss", "soft_margin_loss",
            "hinge_embedding_loss", "multi_margin_loss", "multilabel_margin_loss", "ctc_loss",
            "gaussian_nll_loss", "margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss",
            "triplet_margin_with_distance_loss"]


# --- how torch's autograd takes the kinks the exact gradient meets (measured, torch 2.13) ---
# clamp(min=0) and clamp_min pass the gradient at the bound (their backward keeps x >= min)
for _f in (hinge_embedding_loss, margin_ranking_loss, cosine_embedding_loss, triplet_margin_loss,
           triplet_margin_with_distance_loss):
    _f.tie = 1.0
# multi_margin and multilabel_margin's kernels count a term only where it is > 0
for _f in (multi_margin_loss, multilabel_margin_loss):
    _f.tie = 0.0
# gaussian_nll_loss clamps a copy of var under no_grad: the gradient goes straight through
gaussian_nll_loss.clamp = "straight"
del _f
