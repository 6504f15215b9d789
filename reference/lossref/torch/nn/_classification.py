"""Classification losses of ``torch.nn.functional`` (PyTorch 2.13): ``nll_loss``,
``cross_entropy``, ``multilabel_soft_margin_loss``, ``soft_margin_loss``,
``hinge_embedding_loss``, ``multi_margin_loss`` and ``multilabel_margin_loss``.

The values are the catalogue's (categorical cross-entropy from logits with the class
axis moved last, binary cross-entropy from logits, and the margin losses); what is
torch's here is the layout (class dimension 1), the targets' dtypes, the errors and
the divisor of ``'mean'``:

* ``nll_loss`` and ``cross_entropy`` with class indices: ``Σ ℓ / Σ w_y`` over the
  targets that are not `ignore_index` (no weight: their count); all ignored gives NaN.
* ``cross_entropy`` with class probabilities: the number of positions ``N·d1⋯dk``.
* ``multilabel_soft_margin_loss``, ``multi_margin_loss``, ``multilabel_margin_loss``:
  each sample is a mean over its C classes, then the mean over the samples.
* ``soft_margin_loss``, ``hinge_embedding_loss``: elementwise, mean over every element.

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> x = np.array([[0., 0., 0.], [1e4, 0., -1e4]], np.float32)
>>> F.cross_entropy(x, np.array([1, 2]), reduction="none")
array([1.0986123e+00, 2.0000000e+04], dtype=float32)
>>> F.nll_loss(x, np.array([0, 0]), ignore_index=0)
array(nan, dtype=float32)
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ... import formats
from ...losses import binary_crossentropy as _bce
from ...losses import categorical_crossentropy as _cce
from ...losses import hinge_embedding as _hinge
from ...losses import multi_margin as _mm
from ...losses import multilabel_margin as _mlm
from ...losses import soft_margin as _soft
from ...losses.sparse_categorical_crossentropy import exact_labels
from ...numerics import log_softmax, sigmoid_xent_grads, softmax_xent_grad, sum2, two_sum
from ...oracle import ops as xo
from ...reduction import stage2_mean, stage2_sum, torch_reduction
from .._base import (Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, broadcast, float_format,
                     is_float, result_format, torch_function)

__all__ = ["nll_loss", "cross_entropy", "multilabel_soft_margin_loss", "soft_margin_loss",
           "hinge_embedding_loss", "multi_margin_loss", "multilabel_margin_loss", "TorchIndexError"]


class TorchIndexError(IndexError, ValueError):
    """Raised where torch raises ``IndexError`` (a class index out of range); it is also
    the ``ValueError`` lossref's contract promises."""


# --- class-index targets: one rule for both arithmetics --------------------------------------------


def _labels(y_true: np.ndarray) -> np.ndarray:
    """Integer labels from float64 (reference) or exact (oracle) values."""
    return (exact_labels(y_true) if y_true.dtype == object else y_true).astype(np.int64)


def _class_targets(y_true, n_classes: int, weight, label_smoothing, ignore_index, probabilities):
    """``(q, valid)``: per class the coefficient of ``-log p_c``, ``w_c ((1 - ε) t_c + ε/C)``
    with ``t`` the probabilities or the one-hot of the index, and where a position counts.

    This is torch's ``(1 - ε)·nll + (ε/C)·Σ_c w_c (-log p_c)`` of index targets and its
    smoothed probability targets, written once; object arrays give exact coefficients.
    """
    exact = y_true.dtype == object
    if probabilities:
        t, valid = y_true, np.ones(y_true.shape[:-1], bool)
    else:
        k = _labels(y_true)
        valid = k != ignore_index
        t = (np.arange(n_classes) == np.where(valid, k, 0)[..., None]).astype(np.float64)
        t = np.asarray(xo.where(t == 1, 1, 0)) if exact else t
    q = _cce.smooth_labels(t, float(label_smoothing))
    if weight is not None:
        q = q * weight
    return q, valid


def _cross_entropy_reference(y_true, y_pred, weight=None, label_smoothing=0.0, ignore_index=-100,
                             probabilities=False) -> np.ndarray:
    """Per position ``Σ_c q_c (-log softmax(x)_c)`` in float64 (class axis last), 0 where ignored."""
    q, valid = _class_targets(y_true, y_pred.shape[-1], weight, label_smoothing, ignore_index, probabilities)
    return np.where(valid, stage2_sum(_cce.reference(q, y_pred, True, 0.0, None), -1), 0.0)


def _cross_entropy_oracle(y_true, y_pred, weight=None, label_smoothing=0.0, ignore_index=-100,
                          probabilities=False) -> np.ndarray:
    """The same on exact values."""
    q, valid = _class_targets(y_true, y_pred.shape[-1], weight, label_smoothing, ignore_index, probabilities)
    return xo.where(valid, xo.fsum(_cce.oracle(q, y_pred, True, 0.0, None), -1), 0)


def _picked(y_true, y_pred, weight, ignore_index):
    """``(x_y, w_y, valid)``: each position's log-probability of its class and that class's weight."""
    k = _labels(y_true)
    valid = k != ignore_index
    at = np.where(valid, k, 0)
    x = np.take_along_axis(y_pred, at[..., None], -1)[..., 0]
    return x, (1 if weight is None else weight[at]), valid


def _nll_reference(y_true, y_pred, weight=None, ignore_index=-100) -> np.ndarray:
    """``-w_y x_y`` in float64, 0 where ignored (``0·inf`` is NaN, as torch's product)."""
    x, w, valid = _picked(y_true, y_pred, weight, ignore_index)
    return np.where(valid, -(w * x), 0.0)


def _cross_entropy_vjp(y_true, y_pred, cot, weight=None, label_smoothing=0.0, ignore_index=-100,
                       probabilities=False) -> dict:
    """``d/dx_j = S p_j - q_j`` (``S = sum_c q_c``, :func:`lossref.numerics.softmax_xent_grad`),
    0 where ignored; probability targets also ``d/dt_c = (1 - ε) w_c (-log p_c)``."""
    q, valid = _class_targets(y_true, y_pred.shape[-1], weight, label_smoothing, ignore_index, probabilities)
    c = np.where(valid, cot, 0.0)[..., None]
    with np.errstate(all="ignore"):
        # an ignored position passes nothing, also where its row's softmax is NaN (a +inf
        # logit: torch's log_softmax backward gives NaN there, 0 times NaN)
        out = {"y_pred": np.where(valid[..., None], c * softmax_xent_grad(q, y_pred), 0.0)}
    if probabilities:
        s = (1.0 - float(label_smoothing)) * (1.0 if weight is None else weight)
        out["y_true"] = c * (s * -log_softmax(y_pred))
    return out


def _nll_vjp(y_true, y_pred, cot, weight=None, ignore_index=-100) -> dict:
    """``-w_y`` at each position's class (times its cotangent), 0 elsewhere and where ignored."""
    k = _labels(y_true)
    valid = k != ignore_index
    at = np.where(valid, k, 0)
    w = 1.0 if weight is None else weight[at]
    g = np.zeros(np.broadcast_shapes(y_pred.shape, at.shape + (1,)))
    np.put_along_axis(g, at[..., None], np.where(valid, -(w * cot), 0.0)[..., None], axis=-1)
    return {"y_pred": g}


def _nll_oracle(y_true, y_pred, weight=None, ignore_index=-100) -> np.ndarray:
    x, w, valid = _picked(y_true, y_pred, weight, ignore_index)
    return xo.where(valid, -(w * x), 0)


def _index_targets(fn: str, i: np.ndarray, t: np.ndarray, ignore_index: int) -> None:
    """torch's checks of class-index targets: dtype int64 or uint8, shape ``input.shape``
    without dimension 1, every entry in ``[0, C)`` or `ignore_index`."""
    if t.dtype not in (np.int64, np.uint8):
        name = {"int32": "Int", "int16": "Short", "int8": "Char", "bool": "Bool"}.get(t.dtype.name, "Float")
        raise TorchDtypeError(f"expected target dtype to be Long or Byte, but got {name}")
    want = i.shape[:1] + i.shape[2:] if i.ndim > 1 else ()
    if i.ndim > 1 and (t.ndim == 0 or t.shape[0] != i.shape[0]):
        raise ValueError(f"Expected input batch_size ({i.shape[0]}) to match target batch_size "
                         f"({t.shape[0] if t.ndim else 0}).")
    if t.shape != want:
        raise TorchRuntimeError(f"{fn}: size mismatch (got input: {list(i.shape)} , target: {list(t.shape)}")
    bad = (t != ignore_index) & ((t < 0) | (t >= i.shape[1 if i.ndim > 1 else 0]))
    if np.any(bad):
        raise TorchIndexError(f"Target {int(t[bad][0])} is out of bounds.")


def _class_weight(fn: str, weight, n_classes: int, dtype: Optional[np.dtype]) -> Optional[np.ndarray]:
    """`weight` checked to be 1-D with C entries (and of `dtype`, unless None)."""
    if weight is None:
        return None
    w = as_tensor(weight, "weight")
    if w.shape != (n_classes,):
        raise TorchRuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no "
                                f"classes but got weight tensor of shape: {list(w.shape)}")
    if dtype is not None and w.dtype != dtype:
        raise TorchDtypeError(f"{fn}: expected weight of the input's dtype {dtype}; found {w.dtype}")
    return w


def _classes_last(fn: str, i: np.ndarray) -> np.ndarray:
    if i.ndim == 0:
        raise ValueError(f"Expected 1 or more dimensions (got {i.ndim})")
    return np.moveaxis(i, 1, -1) if i.ndim > 1 else i


def _index_mode(fn, i, t, weight, red, ignore_index, params) -> Prepared:
    """The :class:`Prepared` of class-index targets: the 'mean' divides by ``Σ w_y``."""
    fmt = float_format(fn, i, "input")
    _index_targets(fn, i, t, ignore_index)
    w = _class_weight(fn, weight, i.shape[1 if i.ndim > 1 else 0], i.dtype)
    stage3 = {"reduction": red}
    if red == "mean":
        valid = t != ignore_index
        k = np.where(valid, t, 0).astype(np.intp)
        divisor = valid.astype(fmt.dtype) if w is None else np.where(valid, w[k], 0).astype(w.dtype)
        stage3 = {"reduction": "weight_sum_mean", "weight": divisor}
    return Prepared(t, _classes_last(fn, i), fmt, {"weight": w, "ignore_index": int(ignore_index), **params},
                    stage3=stage3)


@torch_function("sparse_categorical_crossentropy", _nll_reference, _nll_oracle, vjp=_nll_vjp)
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """``-w_y x_y`` of log-probabilities x of shape (C), (N, C) or (N, C, d1, ..., dk);
    targets equal to `ignore_index` give 0 and do not count in ``'mean'`` (``Σ ℓ / Σ w_y``)."""
    fn = "nll_loss"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    _classes_last(fn, i)
    return _index_mode(fn, i, t, weight, red, ignore_index, {})


@torch_function("categorical_crossentropy", _cross_entropy_reference, _cross_entropy_oracle,
                vjp=_cross_entropy_vjp)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """``Σ_c w_c t'_c (-log softmax(x)_c)`` over dimension 1 (the class dimension).

    A target of the input's shape holds class probabilities (float; ``'mean'`` divides by
    ``N·d1⋯dk``, whatever the weights); any other target holds class indices, as for
    :func:`nll_loss`. ``t' = (1 - ε) t + ε/C`` with ``ε = label_smoothing <= 1`` (the
    one-hot of an index: torch's ``(1 - ε)·nll + (ε/C)·Σ_c w_c (-log p_c)``); a negative
    ε is ignored, as torch does.
    """
    fn = "cross_entropy"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    if label_smoothing > 1.0:
        raise TorchRuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    # torch smooths only for label_smoothing > 0: a negative value is accepted and ignored
    params = {"label_smoothing": max(float(label_smoothing), 0.0), "probabilities": i.shape == t.shape}
    if not params["probabilities"]:
        _classes_last(fn, i)
        return _index_mode(fn, i, t, weight, red, ignore_index, params)
    if not is_float(t.dtype):
        raise TorchDtypeError(f"Expected floating point type for target with class probabilities, got {t.dtype}")
    float_format(fn, i, "input")
    if ignore_index >= 0:
        raise TorchRuntimeError("ignore_index is not supported for floating point target")
    ic = _classes_last(fn, i)
    w = _class_weight(fn, weight, ic.shape[-1], None)
    fmt = result_format(fn, (i.dtype, i.ndim), (t.dtype, t.ndim), *(() if w is None else ((w.dtype, 1),)))
    return Prepared(_classes_last(fn, t), ic, fmt, {"weight": w, **params}, stage3={"reduction": red})


# --- binary cross-entropy per class -----------------------------------------------------------------


def _mlsm_reference(y_true, y_pred, weight=None, axis: int = -1) -> np.ndarray:
    """``mean_c w_c (y softplus(-x) + (1 - y) softplus(x))`` over `axis`, in float64."""
    v = _bce.pos_weighted_reference(y_true, y_pred)
    return stage2_mean(v if weight is None else v * weight, axis)


def _mlsm_oracle(y_true, y_pred, weight=None, axis: int = -1) -> np.ndarray:
    v = _bce.pos_weighted_oracle(y_true, y_pred)
    v = v if weight is None else v * weight
    return xo.div(xo.fsum(v, axis), v.shape[axis])


def _mlsm_vjp(y_true, y_pred, cot, weight=None, axis: int = -1) -> dict:
    """The sigmoid cross-entropy's gradients (:func:`lossref.numerics.sigmoid_xent_grads`)
    times ``w_c cot / C``, the cotangent spread over the summed axis."""
    dx, dy, _ = sigmoid_xent_grads(y_true, y_pred)
    n = np.broadcast_shapes(dx.shape, dy.shape, np.shape(weight) if weight is not None else ())[axis]
    c = np.expand_dims(cot, axis) / n
    if weight is not None:
        c = c * weight
    return {"y_pred": c * dx, "y_true": c * dy}


@torch_function("binary_crossentropy", _mlsm_reference, _mlsm_oracle, vjp=_mlsm_vjp)
def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """Per sample ``(1/C) Σ_c -w_c (y log σ(x) + (1 - y) log σ(-x))`` over the input's last
    dimension; input, target and `weight` broadcast, the result dtype is theirs promoted."""
    fn = "multilabel_soft_margin_loss"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    float_format(fn, i, "input")
    ops = [(i.dtype, i.ndim), (t.dtype, t.ndim)]
    ib, tb = broadcast(fn, i, t)
    w = None if weight is None else as_tensor(weight, "weight")
    if w is not None:
        ops.append((w.dtype, w.ndim))
        broadcast(fn, ib, w)  # torch's error where the weight does not broadcast
    # torch sums over dimension input.dim() - 1 of the broadcast loss
    axis = i.ndim - 1 if i.ndim else -1
    return Prepared(tb, ib, result_format(fn, *ops), {"weight": w, "axis": axis}, stage3={"reduction": red})


# --- margins --------------------------------------------------------------------------------------


def _rounded(margin: float, fmt: formats.Format) -> float:
    """`margin` as torch holds it: a scalar in the input's dtype."""
    return float(formats.as_format(np.float64(margin), fmt))


def _elementwise(fn: str, input, target, red: str, params=None) -> Prepared:
    """Input (float) and target (any number) broadcast; the result has the input's dtype."""
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    fmt = float_format(fn, i, "input")
    ib, tb = broadcast(fn, i, t)
    return Prepared(tb, ib, fmt, params or {}, stage3={"reduction": red})


@torch_function("soft_margin", _soft.reference, _soft.oracle, elementwise=True)
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """``log(1 + exp(-y x))`` elementwise; ``'mean'`` over every element."""
    return _elementwise("soft_margin_loss", input, target, torch_reduction(reduction, size_average, reduce))


def _hinge_embedding_vjp(y_true, y_pred, cot, margin) -> dict:
    """torch's gradient: 1 where ``y = 1``; ``-1`` where ``y = -1`` and ``margin - x >= 0``
    (``clamp_min`` passes the gradient at its bound); both for other labels (0 at
    ``x = margin``). The labels only select: no target gradient (torch has none)."""
    push = np.where(float(margin) - y_pred >= 0, -1.0, 0.0)
    g = np.where(y_true == 1, 1.0, np.where(y_true == -1, push, 1.0 + push))
    return {"y_pred": cot * np.where(np.isnan(y_pred), np.nan, g)}


@torch_function("hinge_embedding", _hinge.reference, _hinge.oracle, elementwise=True,
                vjp=_hinge_embedding_vjp)
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1``, both terms for any
    other y; `margin` rounded to the input's dtype."""
    fn = "hinge_embedding_loss"
    pr = _elementwise(fn, input, target, torch_reduction(reduction, size_average, reduce))
    pr.params = {"margin": _rounded(margin, pr.fmt)}
    return pr


def _scores(fn: str, i: np.ndarray) -> formats.Format:
    """The format of a (C) or (N, C) float input with C > 0."""
    if i.ndim not in (1, 2) or i.shape[-1] == 0:
        raise TorchRuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch size, "
                                f"but got: {list(i.shape)}")
    return float_format(fn, i, "input")


def _long(fn: str, t: np.ndarray) -> None:
    if t.dtype != np.int64:
        raise TorchDtypeError(f"{fn}: expected scalar type Long but found {t.dtype}")


def _multi_margin_vjp(y_true, y_pred, cot, p, margin, weight) -> dict:
    """torch's gradient of ``(w_y / C) sum_{i != y} max(0, z_i)^p``, ``z_i = margin - x_y + x_i``:
    ``(w_y / C) p z_i^(p-1)`` to each active ``x_i`` (``z_i > 0`` strictly, as torch's
    kernel: 0 at ``z_i = 0``) and minus their sum to ``x_y``. ``z`` is formed from the
    exact difference ``x_i - x_y`` (TwoSum), so p = 2 keeps it where it cancels."""
    c = y_pred.shape[-1]
    k = y_true.astype(np.intp)[..., None]
    xy = np.take_along_axis(y_pred, k, -1)
    d, e = two_sum(y_pred, -xy)
    z, ze = two_sum(d, np.float64(margin))
    z = z + np.where(np.isfinite(ze + e), ze + e, 0.0)
    z = np.where(np.isfinite(d), z, margin - xy + y_pred)
    others = np.arange(c) != k
    active = others & (z > 0)
    scale = cot[..., None] / c
    if weight is not None:
        scale = scale * np.asarray(weight, np.float64)[k]
    g = np.where(active, (2.0 * z if int(p) == 2 else 1.0), 0.0) * scale
    g = np.where(np.isnan(z) & others, np.nan, g)
    own = -sum2(np.where(others, g, 0.0))[..., None]
    np.put_along_axis(g, k, own, axis=-1)
    return {"y_pred": g}


@torch_function("multi_margin", _mm.reference, _mm.oracle, vjp=_multi_margin_vjp)
def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None,
                      reduce=None, reduction: str = "mean"):
    """Per sample ``(w_y / C) Σ_{i != y} max(0, margin - x_y + x_i)^p``, p in {1, 2};
    ``'mean'`` over the samples (not weighted)."""
    fn = "multi_margin_loss"
    red = torch_reduction(reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    fmt = _scores(fn, i)
    n, c = (i.shape[0] if i.ndim == 2 else 1), i.shape[-1]
    if t.ndim > 1 or t.size != n or (i.ndim == 2 and t.ndim != 1):
        raise TorchRuntimeError(f"{fn}: target tensor should be 1-D with size equal to the number of input "
                                f"samples (batch size). Expected target size [{n}], but got {list(t.shape)}")
    _long(fn, t)
    if np.any((t < 0) | (t >= c)):
        raise TorchRuntimeError("target out of range")
    w = None
    if weight is not None:
        w = as_tensor(weight, "weight")
        if w.ndim != 1:
            raise ValueError("weight must be one-dimensional")
        if w.shape != (c,):
            raise TorchRuntimeError(f"inconsistent weight size, expected {c} but got {list(w.shape)}")
        if w.dtype != i.dtype:
            raise TorchDtypeError(f"{fn}: expected weight of the input's dtype {i.dtype}; found {w.dtype}")
    # the per-sample values take the target's shape: () or (1,) for a 1-D input
    return Prepared(t, i.reshape(t.shape + (c,)), fmt,
                    {"p": int(p), "margin": _rounded(margin, fmt), "weight": w}, stage3={"reduction": red})


def _multilabel_margin_vjp(y_true, y_pred, cot) -> dict:
    """torch's gradient of ``(1/C) sum_j sum_i max(0, 1 - (x_j - x_i))`` over the listed
    entries j (a duplicate counts again) and the unlisted classes i: each active pair
    (``1 - (x_j - x_i) > 0`` strictly, torch's kernel) adds ``1/C`` to ``x_i`` and ``-1/C``
    to ``x_j``; the counts are exact integers, divided by C once."""
    c = y_pred.shape[-1]
    labels = y_true.reshape(-1, c).astype(np.intp)
    scores = y_pred.reshape(-1, c)
    listed = np.logical_and.accumulate(labels != -1, axis=-1)
    is_label = np.zeros(scores.shape, dtype=bool)
    is_label[np.nonzero(listed)[0], labels[listed]] = True
    at = np.where(listed, labels, 0)
    x_j = np.take_along_axis(scores, at, axis=-1)
    d, e = two_sum(x_j[:, :, None], -scores[:, None, :])  # x_j - x_i exactly: the sign of 1 - d
    z = np.where(np.isfinite(d), (1.0 - d) - e, 1.0 - d)
    act = listed[:, :, None] & ~is_label[:, None, :] & (z > 0)
    up = act.sum(axis=1).astype(np.float64)  # per class i: active pairs with i unlisted
    down = np.zeros(scores.shape)
    np.add.at(down, (np.repeat(np.arange(len(scores)), at.shape[1]), at.reshape(-1)),
              act.sum(axis=2).reshape(-1).astype(np.float64))
    g = (up - down) / c * np.asarray(cot, np.float64).reshape(-1, 1)
    return {"y_pred": g.reshape(y_pred.shape)}


@torch_function("multilabel_margin", _mlm.reference, _mlm.oracle, vjp=_multilabel_margin_vjp)
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Per sample ``(1/C) Σ_{j listed} Σ_{i not listed} max(0, 1 - (x_j - x_i))``, the listed
    classes being the target's entries before its first -1; ``'mean'`` over the samples."""
    fn = "multilabel_margin_loss"
    red = torch_reduction(reduction, size_average, reduce)
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    fmt = _scores(fn, i)
    if t.shape != i.shape:
        raise TorchRuntimeError(f"inconsistent target size: {list(t.shape)} for input of size: {list(i.shape)}")
    _long(fn, t)
    if np.any((t < -1) | (t >= i.shape[-1])):
        raise TorchRuntimeError("argument #2 'target' is out of range")
    return Prepared(t, i, fmt, stage3={"reduction": red})
