"""``tf.nn.ctc_loss`` (TensorFlow 2.21, TF2's ``ctc_loss_v3``).

The value is the catalogue's CTC (:mod:`lossref.losses.ctc`: the forward algorithm over
the blank-interleaved label, on ``softmax(logits)``) with per-sample label and logit
lengths; what is TF's here is the layout and the arguments:

* ``logits`` (T, B, C) time-major by default, (B, T, C) with ``logits_time_major=False``;
  TF applies the softmax over the classes itself;
* ``labels`` dense (B, S), each row's first ``label_length[b]`` entries (the rest is not
  read), or sparse: an object with ``indices`` (K, 2), ``values`` (K,) int32 and
  ``dense_shape`` (B, S), as ``tf.SparseTensor`` (or :class:`SparseLabels`); sparse labels
  need `blank_index` and ignore `label_length`;
* ``blank_index``: default 0 (TF2; TF1's ``ctc_loss`` used C - 1); a negative value counts
  from C. The blank's logits move to class 0 and the classes below it up by one;
* no alignment fits: ``+inf`` (TF's sparse kernel; its dense path returns a large finite
  value instead, a finding); `unique` only selects TF's faster path and is ignored.

TF silently reads past the classes, or scores the blank as a label, for labels outside
``[0, C)``, equal to the blank, ``label_length > S`` or ``logit_length > T``; lossref
raises ``ValueError`` for each.

>>> import numpy as np
>>> from lossref.tf import nn
>>> x = np.zeros((3, 1, 4), np.float32)  # uniform over 4 classes at 3 steps
>>> nn.ctc_loss(np.array([[1]]), x, [1], [3])  # -ln(6/64)
array([2.3671236], dtype=float32)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..losses import ctc as _ctc
from ._base import Prepared, TFDtypeError, TFInvalidArgumentError, as_tensor, float_format, tf_function

__all__ = ["ctc_loss", "SparseLabels"]


class SparseLabels(NamedTuple):
    """Sparse labels as ``tf.SparseTensor`` holds them: ``indices`` (K, 2) of ``(b, s)``,
    ``values`` (K,) int32 class indices, ``dense_shape`` ``(B, S)``."""

    indices: Any
    values: Any
    dense_shape: Any


def _order(n_c: int, blank: int) -> list:
    """The catalogue's class order: TF's blank first, the others in order."""
    return [blank] + [c for c in range(n_c) if c != blank]


def _reference(y_true, y_pred, input_lengths=(), blank=0):
    """Per sample ``-log P(label)`` in float64 from logits (B, T, C), class `blank` the blank."""
    y = y_pred[:, :, _order(y_pred.shape[2], blank)] if blank else y_pred
    return _ctc.reference(y_true, y, input_lengths=np.asarray(input_lengths, np.int64))


def _oracle(y_true, y_pred, input_lengths=(), blank=0):
    # C order: the oracle's taped ops expect it of object arrays (a fancy index may give another)
    y = np.ascontiguousarray(y_pred[:, :, _order(y_pred.shape[2], blank)]) if blank else y_pred
    return _ctc.oracle(y_true, y, input_lengths=np.asarray(input_lengths, np.int64))


def _vjp(y_true, y_pred, cot, input_lengths=(), blank=0):
    """VJP of :func:`_reference` wrt the logits (B, T, C): ``cot·(softmax - γ)`` at each
    sample's first ``logit_length[b]`` steps, 0 after; NaN at the read steps of a sample
    whose loss is not finite."""
    order = _order(y_pred.shape[2], blank)
    y = y_pred[:, :, order] if blank else y_pred
    g = _ctc.grad_reference(y_true, y, cot, input_lengths=np.asarray(input_lengths, np.int64))["y_pred"]
    return {"y_pred": g[:, :, np.argsort(order)] if blank else g}


def _lengths(name: str, x, n: int) -> np.ndarray:
    """A length per sample: an integer array or a list of ints, shape (B,)."""
    if x is None:
        raise ValueError(f"ctc_loss: {name} must be given (a tensor of shape [batch_size])")
    a = as_tensor(x, name)
    if a.dtype.kind not in "iu":
        raise TFDtypeError(f"ctc_loss: {name} must be integers; got dtype {a.dtype}")
    if a.shape != (n,):
        raise TFInvalidArgumentError(f"ctc_loss: {name} must have shape ({n},); got {a.shape}")
    return a.astype(np.int64)


def _is_sparse(labels) -> bool:
    return all(hasattr(labels, k) for k in ("indices", "values", "dense_shape"))


def _sparse_rows(labels, n: int) -> list:
    """The label rows of sparse labels: row b holds the values at ``(b, s)`` in order of s."""
    idx = np.asarray(labels.indices).reshape(-1, 2).astype(np.int64)
    vals = np.asarray(labels.values)
    shape = tuple(int(v) for v in np.asarray(labels.dense_shape).reshape(-1))
    if vals.dtype.name != "int32":
        raise TFDtypeError(f"ctc_loss: sparse label values must be int32; got dtype {vals.dtype}")
    if len(shape) != 2 or shape[0] != n or len(vals) != len(idx):
        raise TFInvalidArgumentError(f"ctc_loss: sparse labels must have dense_shape (batch_size={n}, S) "
                                     f"and one value per index; got dense_shape {shape}, {len(idx)} "
                                     f"indices, {len(vals)} values")
    if len(idx) and ((idx < 0).any() or (idx[:, 0] >= shape[0]).any() or (idx[:, 1] >= shape[1]).any()):
        raise TFInvalidArgumentError(f"ctc_loss: a sparse label index lies outside dense_shape {shape}")
    rows = []
    for b in range(n):
        at = idx[:, 0] == b
        rows.append(vals[at][np.argsort(idx[at, 1], kind="stable")].astype(np.int64))
    return rows


@tf_function("ctc", _reference, _oracle, vjp=_vjp)
def ctc_loss(labels, logits, label_length, logit_length, logits_time_major=True, unique=None,
             blank_index=None, name=None):
    """``-log Σ_{alignments} Π_t softmax(logits_t)(π_t)`` per sample: the alignments of its
    first ``logit_length[b]`` steps that collapse to its label (merge repeats, drop
    blanks). Returns shape (B,) in the logits' dtype; ``+inf`` where no alignment fits.
    """
    fn = "ctc_loss"
    x = as_tensor(logits, "logits")
    fmt = float_format(fn, x, "logits")
    if x.ndim != 3:
        raise TFInvalidArgumentError(f"{fn}: logits must have rank 3 ([frames, batch_size, num_labels], or "
                                     f"[batch_size, frames, num_labels] with logits_time_major=False); got "
                                     f"shape {x.shape}")
    y = np.moveaxis(x, 0, 1) if logits_time_major else x  # (B, T, C): the catalogue's layout
    n, n_t, n_c = y.shape
    sparse = _is_sparse(labels)
    if sparse and blank_index is None:
        raise ValueError(f"{fn}: blank_index must be provided when labels is a SparseTensor")
    blank = 0 if blank_index is None else blank_index
    if isinstance(blank, (bool, np.bool_)) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"{fn}: blank_index must be an int; got {blank_index!r}")
    blank = int(blank) + (n_c if blank < 0 else 0)
    if not 0 <= blank < n_c:
        raise ValueError(f"{fn}: blank_index {blank_index} is outside [-{n_c}, {n_c}) for {n_c} classes "
                         "(TF reads the logits out of range)")
    il = _lengths("logit_length", logit_length, n)
    if sparse:
        rows = _sparse_rows(labels, n)
    else:
        t = as_tensor(labels, "labels")
        if t.dtype.name not in ("uint8", "int8", "int32", "int64"):
            raise TFDtypeError(f"{fn}: labels must be uint8, int8, int32 or int64; got dtype {t.dtype}")
        if t.ndim != 2 or t.shape[0] != n:
            raise TFInvalidArgumentError(f"{fn}: labels must have shape (batch_size={n}, max_label_length); "
                                         f"got {t.shape}")
        tl = _lengths("label_length", label_length, n)
        if (tl < 0).any() or (tl > t.shape[1]).any():
            raise ValueError(f"{fn}: label_length must lie in [0, {t.shape[1]}] (the labels' width); got "
                             f"{tl.tolist()}")
        rows = [t[b, :tl[b]].astype(np.int64) for b in range(n)]
    if (il < 0).any() or (il > n_t).any():
        raise ValueError(f"{fn}: logit_length must lie in [0, {n_t}] (the frames); got {il.tolist()}")
    width = max((len(r) for r in rows), default=0)
    lab = np.zeros((n, width), np.int64)  # the catalogue's layout: blank 0, right-padded with it
    for b, row in enumerate(rows):
        bad = (row < 0) | (row >= n_c) | (row == blank)
        if bad.any():
            raise ValueError(f"{fn}: label {int(row[bad][0])} of sample {b} is outside [0, {n_c}) or is the "
                             f"blank {blank}")
        lab[b, :len(row)] = row + (row < blank)  # TF's rotation: the blank becomes class 0
    # y stays a view of the logits (its gradient maps back onto them); the reference moves the blank
    return Prepared(lab, y, fmt, {"input_lengths": tuple(int(v) for v in il), "blank": blank})
