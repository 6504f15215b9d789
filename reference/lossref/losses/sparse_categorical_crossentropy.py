"""Sparse categorical cross-entropy. Spec: spec/losses/sparse_categorical_crossentropy.md.

``-log p_y`` with ``y`` an integer class index per sample: ``y_true`` has the shape of
``y_pred`` without its class axis (the last one), or that shape with a trailing 1.
``p`` is ``softmax(y_pred)`` for logits, else ``clip(y_pred / sum(y_pred), lo, hi)`` as
for the categorical cross-entropy. Labels are real numbers truncated toward zero (Keras
casts float labels to int); positions whose label equals `ignore_class` give 0.

The label helpers (:func:`check_label_inputs`, :func:`class_indices`) are shared with
the generalized cross-entropy.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..oracle import ops as x
from ..registry import LossDef, Param, check_float_array, is_real, register
from .binary_crossentropy import AT_BOUND
from .categorical_crossentropy import (EPSILON, FROM_LOGITS, class_parts,
                                       clip_bounds_of, exact_class_parts, grad_parts, row_vjp)

# --- labels ---------------------------------------------------------------------------------------


def check_label_inputs(name: str, y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    """Validated ``(labels, y_pred)``: y_pred a float array with a class axis (the last),
    labels numeric with y_pred's shape minus that axis (a trailing 1 is dropped)."""
    p = check_float_array(y_pred, "y_pred")
    t = np.asarray(y_true)
    if t.dtype.kind not in "biuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"{name}: y_true must hold numeric class indices; got dtype {t.dtype}")
    if p.ndim == 0:
        raise ValueError(f"{name}: y_pred must have a class axis (the last one); got a scalar")
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    if t.shape != p.shape[:-1]:
        raise ValueError(f"{name}: y_true shape {t.shape} must equal the shape of y_pred "
                         f"{p.shape} without its class axis, {p.shape[:-1]} (a trailing 1 "
                         "is allowed)")
    return t, p


def class_indices(labels, n_classes: int, ignore_class=None, name: str = "labels",
                  error: type = ValueError):
    """``(index, valid)``: labels truncated toward zero to integer class indices.

    ``valid`` is False where the label equals `ignore_class` (compared before the
    truncation, as Keras does); those indices are set to 0. Any other label that is
    not finite or whose truncation lies outside ``[0, n_classes)`` raises `error` (a
    ``ValueError``; a dialect passes its framework's subclass) naming the value and the range.
    """
    t = np.asarray(labels, dtype=np.float64)
    valid = np.ones(t.shape, dtype=bool) if ignore_class is None else t != ignore_class
    with np.errstate(invalid="ignore"):
        tr = np.trunc(t)
        ok = np.isfinite(t) & (tr >= 0) & (tr < n_classes)
    bad = valid & ~ok
    if np.any(bad):
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        extra = "" if ignore_class is None else f" and is not ignore_class={ignore_class!r}"
        raise error(f"{name}: label {float(t[where])!r} at index {where} is outside the class "
                         f"range [0, {n_classes}) after truncation toward zero{extra}")
    return np.where(valid, tr, 0).astype(np.intp), valid


def exact_labels(y_true: np.ndarray) -> np.ndarray:
    """float64 labels from the oracle's object array (its values came from float64)."""
    flat = [float(v) for v in np.ravel(y_true)]
    return np.array(flat, dtype=np.float64).reshape(np.shape(y_true))


def _check_ignore(v) -> Optional[str]:
    return None if v is None or (is_real(v) and np.isfinite(v)) else "expected None or a number"


# --- reference and oracle -------------------------------------------------------------------------


def _bounds(from_logits: bool, epsilon):
    return None if from_logits else clip_bounds_of(epsilon)


def reference(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, ignore_class,
              epsilon) -> np.ndarray:
    """Per-sample ``-log p_y`` in float64; 0 where the label is `ignore_class`."""
    c = y_pred.shape[-1]
    idx, valid = class_indices(y_true, c, ignore_class, "y_true")
    # large inputs arrive in blocks of rows (LossDef.rowwise); only the labelled class of
    # each row is formed, its row's sums aside
    _, _, logp = class_parts(y_pred.reshape(-1, c), from_logits, _bounds(from_logits, epsilon),
                             at=idx.reshape(-1), logp_only=True)
    return np.where(valid, -logp.reshape(idx.shape), 0.0)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, ignore_class,
           epsilon) -> np.ndarray:
    """The definition on exact values."""
    c = y_pred.shape[-1]
    labels = exact_labels(y_true)
    idx, valid = class_indices(labels, c, ignore_class, "y_true")
    out = np.full(idx.shape, x.num(0), dtype=object)
    valid = np.asarray(valid, dtype=bool)
    if valid.any():  # ignored positions are 0 and never evaluated (their row may hold NaN)
        _, _, logp = exact_class_parts(np.asarray(y_pred)[valid], from_logits, _bounds(from_logits, epsilon))
        out[valid] = -logp[np.arange(logp.shape[0]), idx[valid]]
    return out


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, from_logits: bool,
                   ignore_class, epsilon, at_bound: float = AT_BOUND) -> dict:
    """VJP of :func:`reference` with respect to y_pred (integer labels have none):
    ``{"y_pred"}``, the categorical cross-entropy's gradient with a one-hot label and the
    per-sample cotangent (0 on rows whose label is `ignore_class`)."""
    c = y_pred.shape[-1]
    idx, valid = class_indices(y_true, c, ignore_class, "y_true")
    _, _, _, mask, q, cq, top = grad_parts(y_pred, from_logits, _bounds(from_logits, epsilon), at_bound)
    with np.errstate(all="ignore"):
        hot = (np.arange(c) == idx[..., None]) & valid[..., None]
        w = np.where(hot & (mask != 0.0), -(np.asarray(cot, np.float64)[..., None] * mask), 0.0)
        gp = row_vjp(w, q, cq, top, None if from_logits else y_pred)
        # an ignored row is 0 whatever it holds
        gp = np.where(valid[..., None], gp, 0.0)
    return {"y_pred": gp}


LOSS = register(LossDef(
    name="sparse_categorical_crossentropy",
    summary="-log p_y for integer labels y; p = softmax(logits) or clip(p / sum p)",
    stage2="structured",
    rowwise=True,
    params={
        "from_logits": FROM_LOGITS,
        "ignore_class": Param(None, "None or a number: positions with that label give 0",
                              _check_ignore),
        "epsilon": EPSILON,
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_label_inputs,
    grad_ref=grad_reference,
))
