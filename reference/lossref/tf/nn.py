"""The loss primitives of ``tf.nn`` (TensorFlow 2.21): NumPy arrays in and out.

Every function has TF2's signature (``name`` is accepted and ignored) and an ``.exact``
twin. The values are the catalogue's; what is TensorFlow's here is the argument layout,
the dtype rules (no promotion; float16, bfloat16, float32, float64 kernels) and the
errors:

* ``sigmoid_cross_entropy_with_logits``, ``weighted_cross_entropy_with_logits``:
  binary cross-entropy from logits, elementwise (:mod:`lossref.losses.binary_crossentropy`);
* ``softmax_cross_entropy_with_logits``: categorical cross-entropy from logits over
  `axis`; ``sparse_softmax_cross_entropy_with_logits``: its integer-label form;
* ``log_poisson_loss``: ``exp(c) - z c`` (:mod:`lossref.losses.poisson`), with Stirling's
  term of ``log z!`` outside ``0 <= z <= 1``;
* ``l2_loss``: ``Σ t² / 2`` over every element; ``ctc_loss``: CTC of logits;
* ``compute_average_loss``, ``scale_regularization_loss``: TF's stage 3 with one replica.

>>> import numpy as np
>>> from lossref.tf import nn
>>> x = np.array([1., -1., 0.], np.float32)
>>> nn.sigmoid_cross_entropy_with_logits(labels=np.array([0., 0., 0.5], np.float32), logits=x)
array([1.3132616, 0.3132617, 0.6931472], dtype=float32)
>>> nn.l2_loss(np.array([1., 2.], np.float32))
array(2.5, dtype=float32)
"""

from __future__ import annotations

import numpy as np

from .. import formats
from ..dialect import is_float
from ..losses import binary_crossentropy as _bce
from ..losses import categorical_crossentropy as _cce
from ..losses import mean_squared_error as _mse
from ..losses import poisson as _poisson
from ..losses import sparse_categorical_crossentropy as _scce
from ..numerics import log_softmax, sigmoid, sigmoid_xent_grads, softmax_xent_grad, xmul
from ..oracle import ops as xo
from ..reduction import stage2_sum
from ._base import (Prepared, TFDtypeError, TFInvalidArgumentError, as_tensor, float_format, same_dtype,
                    same_shape, tf_function, tf_stage)

__all__ = ["sigmoid_cross_entropy_with_logits", "weighted_cross_entropy_with_logits",
           "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
           "log_poisson_loss", "l2_loss", "ctc_loss", "compute_average_loss", "scale_regularization_loss"]


def _provided(fn: str, labels, logits) -> None:
    """TF's check that both tensors are given (they default to None in some signatures)."""
    if labels is None or logits is None:
        raise ValueError(f"{fn}: both labels and logits must be provided")


# --- binary cross-entropy from logits --------------------------------------------------------------


def _binary(fn: str, labels, logits) -> Prepared:
    """Labels and logits of one shape (TF's ``ValueError``) and one float dtype."""
    _provided(fn, labels, logits)
    z, x = as_tensor(labels, "labels"), as_tensor(logits, "logits")
    same_shape(fn, x, "logits", z, "labels")
    same_dtype(fn, z, "labels", x, "logits")
    return Prepared(z, x, float_format(fn, x, "logits"))


def _sigmoid_vjp(y_true, y_pred, cot, pos_weight=None) -> dict:
    """Gradient of ``q z softplus(-x) + (1 - z) softplus(x)`` in the logits, the labels and
    q (:func:`lossref.numerics.sigmoid_xent_grads`). The definition's, also at x = 0, where
    TF's ``weighted_cross_entropy_with_logits`` (built from ``abs`` and ``relu``, whose
    derivatives are 0 there) returns ``1 - z`` instead of ``(1 - z - q z) / 2``."""
    dx, dy, dq = sigmoid_xent_grads(y_true, y_pred, pos_weight)
    y, z = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    if np.any(np.isinf(y)):
        # an infinite label: the two products of the chain rule as IEEE forms them, not
        # through ``1 + (q - 1) y`` (NaN for q = 1)
        with np.errstate(all="ignore"):
            qy = y if pos_weight is None else np.asarray(pos_weight, np.float64) * y
            plain = xmul(1.0 - y, sigmoid(z)) - xmul(qy, sigmoid(-z))
            dx = np.where(np.isinf(y) & ~np.isnan(z), plain, dx)
    out = {"y_pred": cot * dx, "y_true": cot * dy}
    if dq is not None:
        out["pos_weight"] = cot * dq
    return out


@tf_function("binary_crossentropy", _bce.pos_weighted_reference, _bce.pos_weighted_oracle, elementwise=True,
             vjp=_sigmoid_vjp)
def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """``-(z log σ(x) + (1 - z) log σ(-x))`` elementwise, labels z (soft labels allowed)
    and logits x of the same shape and float dtype."""
    return _binary("sigmoid_cross_entropy_with_logits", labels, logits)


@tf_function("binary_crossentropy", _bce.pos_weighted_reference, _bce.pos_weighted_oracle, elementwise=True,
             vjp=_sigmoid_vjp)
def weighted_cross_entropy_with_logits(labels, logits, pos_weight, name=None):
    """``-(q z log σ(x) + (1 - z) log σ(-x))`` elementwise, `pos_weight` q a number or an
    array broadcast against the labels (the result has the broadcast shape).

    TF forms ``pos_weight - 1`` in Python or NumPy and converts it to the labels' dtype: q
    is taken rounded into that dtype; a list is the ``TypeError`` Python gives.
    """
    fn = "weighted_cross_entropy_with_logits"
    pr = _binary(fn, labels, logits)
    if isinstance(pos_weight, (list, tuple)) or pos_weight is None:
        raise TypeError(f"{fn}: pos_weight must be a number or a NumPy array; got {type(pos_weight).__name__}")
    q = as_tensor(np.asarray(pos_weight) if isinstance(pos_weight, (int, float)) else pos_weight, "pos_weight")
    if not (is_float(q.dtype) or q.dtype.kind in "iu"):
        raise TFDtypeError(f"{fn}: pos_weight must be a real number or array; got dtype {q.dtype}")
    q = formats.as_format(q if is_float(q.dtype) else q.astype(np.float64), pr.fmt)
    try:
        shape = np.broadcast_shapes(q.shape, pr.y_pred.shape)
    except ValueError:
        raise TFInvalidArgumentError(f"{fn}: incompatible shapes: pos_weight {q.shape} and labels "
                                     f"{pr.y_true.shape}") from None
    return Prepared(np.broadcast_to(pr.y_true, shape), np.broadcast_to(pr.y_pred, shape), pr.fmt,
                    {"pos_weight": q})


# --- softmax cross-entropy -------------------------------------------------------------------------


def _softmax_reference(y_true, y_pred) -> np.ndarray:
    """``-Σ_c y_c log softmax(x)_c`` over the last axis, in float64."""
    if y_pred.shape[-1] == 0:
        return np.zeros(y_pred.shape[:-1])  # no classes: an empty sum
    return stage2_sum(_cce.reference(y_true, y_pred, True, 0.0, None), -1)


def _softmax_oracle(y_true, y_pred) -> np.ndarray:
    """The same on exact values."""
    if y_pred.shape[-1] == 0:
        return np.full(y_pred.shape[:-1], xo.num(0), dtype=object)
    return xo.fsum(_cce.oracle(y_true, y_pred, True, 0.0, None), -1)


def _softmax_vjp(y_true, y_pred, cot) -> dict:
    """``d/dx_j = (sum_c y_c) p_j - y_j`` (:func:`lossref.numerics.softmax_xent_grad`) and
    ``d/dy_c = -log p_c`` (:func:`lossref.numerics.log_softmax`), over the last axis."""
    if y_pred.shape[-1] == 0:
        return {"y_pred": np.zeros(y_pred.shape), "y_true": np.zeros(y_pred.shape)}
    c = np.asarray(cot, np.float64)[..., None]
    return {"y_pred": c * softmax_xent_grad(y_true, y_pred), "y_true": c * -log_softmax(y_pred)}


@tf_function("categorical_crossentropy", _softmax_reference, _softmax_oracle, vjp=_softmax_vjp)
def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    """``-Σ_c y_c log softmax(x)_c`` over `axis` (-1 or a non-negative axis), in the logits'
    dtype; the result has the logits' shape without that axis.

    TF casts the labels (any real dtype) to the dtype it computes in: the logits', float32
    for float16 and bfloat16 logits; here they are rounded into it once. After `axis` is
    moved last and the outer dimensions are flattened, the (N, C) labels must broadcast to
    the (N, C) logits (a labels row of shape (C,) serves every row).
    """
    fn = "softmax_cross_entropy_with_logits"
    x, y = as_tensor(logits, "logits"), as_tensor(labels, "labels")
    fmt = float_format(fn, x, "logits")
    if not (is_float(y.dtype) or y.dtype.kind in "biu"):
        raise TFDtypeError(f"{fn}: labels must be real; got dtype {y.dtype}")
    work = formats.FLOAT32 if fmt.precision < formats.FLOAT32.precision else fmt
    y = formats.as_format(y if is_float(y.dtype) else y.astype(np.float64), work)
    if x.ndim == 0 or y.ndim == 0:
        raise TFInvalidArgumentError(f"{fn}: logits and labels must have at least one dimension (the "
                                     f"classes); got shapes {x.shape} and {y.shape}")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an int; got {axis!r}")
    if axis != -1:
        # TF moves the axis last with a permutation built from range(axis): -1 and [0, rank) only
        if not 0 <= axis < x.ndim:
            raise TFInvalidArgumentError(f"{fn}: axis {axis} must be -1 or in [0, {x.ndim}) for logits of "
                                         f"rank {x.ndim}")
        if y.ndim != x.ndim:
            raise TFInvalidArgumentError(f"{fn}: with axis {axis} labels {y.shape} must have the rank of "
                                         f"logits {x.shape}")
        x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    x2 = (int(np.prod(x.shape[:-1])), x.shape[-1])
    y2 = (int(np.prod(y.shape[:-1])), y.shape[-1])
    try:
        ok = np.broadcast_shapes(y2, x2) == x2
    except ValueError:
        ok = False
    if not ok:
        raise TFInvalidArgumentError(f"{fn}: labels {y.shape} and logits {x.shape} must be broadcastable "
                                     f"(as ({y2[0]}, {y2[1]}) to ({x2[0]}, {x2[1]}))")
    y = np.broadcast_to(y.reshape(y2), x2).reshape(x.shape)
    return Prepared(y, x, fmt)


@tf_function("sparse_categorical_crossentropy", _scce.reference, _scce.oracle)
def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None):
    """``-log softmax(x)_y`` over the last axis, integer labels y (int32 or int64) of the
    logits' shape without its last axis, each in ``[0, C)`` (TF's CPU kernel raises
    ``InvalidArgumentError`` otherwise; its GPU kernel gives NaN)."""
    fn = "sparse_softmax_cross_entropy_with_logits"
    _provided(fn, labels, logits)
    y, x = as_tensor(labels, "labels"), as_tensor(logits, "logits")
    if x.ndim == 0:
        raise ValueError(f"{fn}: logits cannot be a scalar")
    if y.ndim != x.ndim - 1:
        raise ValueError(f"{fn}: labels.shape.rank must equal logits.shape.rank - 1; got labels "
                         f"{y.shape} and logits {x.shape}")
    if y.shape != x.shape[:-1]:
        raise ValueError(f"{fn}: labels.shape must equal logits.shape except for the last dimension; "
                         f"got labels {y.shape} and logits {x.shape}")
    if y.dtype.name not in ("int32", "int64"):
        raise TFDtypeError(f"{fn}: labels must be int32 or int64; got dtype {y.dtype}")
    fmt = float_format(fn, x, "logits")
    n_classes = x.shape[-1]
    if n_classes == 0:
        raise TFInvalidArgumentError(f"{fn}: must have at least one class; got logits {x.shape}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise TFInvalidArgumentError(f"{fn}: label value {int(y[bad].flat[0])} is outside the valid range "
                                     f"[0, {n_classes})")
    return Prepared(y, x, fmt, {"from_logits": True, "ignore_class": None, "epsilon": None})


# --- Poisson -----------------------------------------------------------------------------------------


def _poisson_reference(y_true, y_pred, compute_full_loss=False) -> np.ndarray:
    """``exp(c) - z c`` in float64, plus Stirling's term where not ``0 <= z <= 1`` (NaN for
    a negative z: TF's ``log z``)."""
    out = _poisson.nll_reference(y_true, y_pred, log_input=True, full=compute_full_loss)
    return np.where(y_true < 0, np.nan, out) if compute_full_loss else out


def _poisson_oracle(y_true, y_pred, compute_full_loss=False) -> np.ndarray:
    out = _poisson.nll_oracle(y_true, y_pred, log_input=True, full=compute_full_loss)
    return xo.where(xo.lt(y_true, 0), xo.NAN, out) if compute_full_loss else out


def _poisson_vjp(y_true, y_pred, cot, compute_full_loss=False) -> dict:
    """``d/dc = exp(c) - z``, ``d/dz = -c``, plus ``log z + 1/(2z)`` where the Stirling term is
    added (``z > 1``; 0 elsewhere, where TF's masked ``z log z`` gives NaN at z = 0); NaN
    where the value is (a negative z with the full loss)."""
    dc, dz = np.exp(y_pred) - y_true, -y_pred
    if compute_full_loss:
        dz = dz + np.where(y_true > 1, np.log(y_true) + 0.5 / y_true, 0.0)
        dc, dz = (np.where(y_true < 0, np.nan, v) for v in (dc, dz))
    return {"y_pred": cot * dc, "y_true": cot * dz}


@tf_function("poisson", _poisson_reference, _poisson_oracle, elementwise=True, vjp=_poisson_vjp)
def log_poisson_loss(targets, log_input, compute_full_loss=False, name=None):
    """``exp(c) - z c`` elementwise for a log-rate c (`log_input`) and targets z of the same
    shape and dtype (targets first). `compute_full_loss` adds Stirling's ``z log z - z +
    log(2πz)/2`` except where ``0 <= z <= 1`` (a negative z gives NaN)."""
    fn = "log_poisson_loss"
    c, z = as_tensor(log_input, "log_input"), as_tensor(targets, "targets")
    same_shape(fn, c, "log_input", z, "targets")
    same_dtype(fn, c, "log_input", z, "targets")
    return Prepared(z, c, float_format(fn, c, "log_input"), {"compute_full_loss": bool(compute_full_loss)})


# --- l2_loss -------------------------------------------------------------------------------------------


@tf_function("mean_squared_error", _mse.reference, _mse.oracle, elementwise=True)
def l2_loss(t, name=None):
    """``Σ t² / 2`` over every element of `t` (any shape; empty: 0), in its float dtype."""
    x = as_tensor(t, "t")
    fmt = float_format("l2_loss", x, "t")
    return Prepared(np.broadcast_to(np.zeros((), x.dtype), x.shape), x, fmt, stage3={"sum": 2})


l2_loss.roles = ("y_pred", "y_true")  # its one argument is the catalogue's y_pred (y_true: zeros)


# --- stage 3 helpers ---------------------------------------------------------------------------------


def _loss_values(fn: str, v: np.ndarray, name: str):
    """Values and result format: floats as they are, integers as float64 (TF's division
    of integer tensors gives float64)."""
    if is_float(v.dtype):
        return v, formats.get_format(v.dtype)
    if v.dtype.kind in "iu":
        return v.astype(np.float64), formats.FLOAT64
    raise TFDtypeError(f"{fn}: {name} must be a float or integer array; got dtype {v.dtype}")


def _sample_weight(fn: str, sample_weight, v: np.ndarray):
    """The weights as TF applies them: cast to float32, a last axis of size 1 squeezed or
    one added where the ranks differ by one, then broadcast against the losses."""
    w = as_tensor(sample_weight, "sample_weight")
    if not (is_float(w.dtype) or w.dtype.kind in "biu"):
        raise TFDtypeError(f"{fn}: sample_weight must be real; got dtype {w.dtype}")
    w = formats.as_format(w if is_float(w.dtype) else w.astype(np.float64), formats.FLOAT32)
    if w.ndim and w.ndim - v.ndim == 1:
        if w.shape[-1] != 1:
            raise TFInvalidArgumentError(f"{fn}: cannot squeeze the last axis of sample_weight {w.shape} "
                                         f"to the rank of per_example_loss {v.shape}")
        w = w[..., 0]
    elif w.ndim and v.ndim - w.ndim == 1:
        w = w[..., None]
    try:
        np.broadcast_shapes(w.shape, v.shape)
    except ValueError:
        raise TFInvalidArgumentError(f"{fn}: incompatible shapes: per_example_loss {v.shape} and "
                                     f"sample_weight {w.shape}") from None
    return w


def _batch_size(fn: str, n):
    """`global_batch_size`: None or a non-negative integer scalar."""
    if n is None:
        return None
    a = np.asarray(n)
    if isinstance(n, (bool, np.bool_)) or a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: global_batch_size must be an integer; got {n!r}")
    if a.ndim:
        raise ValueError(f"{fn}: global_batch_size must be scalar; got shape {a.shape}")
    if int(a) < 0:
        raise TFInvalidArgumentError(f"{fn}: global_batch_size must be non-negative; got {int(a)}")
    return int(a)


@tf_stage
def compute_average_loss(per_example_loss, sample_weight=None, global_batch_size=None):
    """``Σ w·ℓ / global_batch_size`` over every element (one replica): the default batch
    size is the first dimension of ``w·ℓ``; a batch size of 0 gives 0.

    `per_example_loss` has rank >= 1 (float; integers give a float64 result);
    `sample_weight` is cast to float32, as TF does, and squeezed or expanded by one axis
    to the losses' rank before broadcasting.
    """
    fn = "compute_average_loss"
    v = as_tensor(per_example_loss, "per_example_loss")
    if v.ndim == 0:
        raise ValueError(f"{fn}: per_example_loss must have rank >= 1; got a scalar")
    v, fmt = _loss_values(fn, v, "per_example_loss")
    w = None if sample_weight is None else _sample_weight(fn, sample_weight, v)
    return Prepared(np.zeros(()), v, fmt, stage3={"average": True, "weight": w,
                                                  "global_batch_size": _batch_size(fn, global_batch_size)})


@tf_stage
def scale_regularization_loss(regularization_loss):
    """``Σ r`` over every element divided by the number of replicas (one here)."""
    v, fmt = _loss_values("scale_regularization_loss",
                          as_tensor(regularization_loss, "regularization_loss"), "regularization_loss")
    return Prepared(np.zeros(()), v, fmt, stage3={"sum": 1})


from ._ctc import ctc_loss  # noqa: E402  (CTC has a module of its own: labels, lengths, blank)
