"""Categorical generalized cross-entropy (Zhang & Sabuncu 2018).
Spec: spec/losses/categorical_generalized_cross_entropy.md.

``(1 - p_y^q) / q`` with ``p_y`` the entry of ``y_pred`` at the integer label ``y``
(labels truncated toward zero, shapes as the sparse categorical cross-entropy). No
clipping, no renormalisation, no logits path.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .sparse_categorical_crossentropy import check_label_inputs, class_indices, exact_labels


def _check_q(v) -> Optional[str]:
    ok = is_real(v) and np.isfinite(v) and v != 0
    return None if ok else "expected a finite non-zero float (Keras's class requires 0 < q < 1)"


def _pick(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    idx, _ = class_indices(y_true, y_pred.shape[-1], None, "y_true")
    return np.take_along_axis(y_pred, idx[..., None], axis=-1)[..., 0]


def reference(y_true: np.ndarray, y_pred: np.ndarray, q: float) -> np.ndarray:
    """Per-sample ``(1 - p_y^q) / q`` in float64."""
    p = _pick(y_true, y_pred)
    q = float(q)
    with np.errstate(all="ignore"):
        w = q * np.log(p)
        # p^q in (1/e, e): 1 - p^q = -expm1(q log p) has no cancellation where p^q rounds
        # to 1; elsewhere pow itself (exp would amplify the rounding of a large q log p) and
        # 1 - p^q does not cancel. p <= 0, inf, NaN: IEEE pow decides.
        near = -np.expm1(w) / q
        lit = (1.0 - np.power(p, q)) / q
    return np.where((p > 0) & (np.abs(w) < 1.0), near, lit)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, q: float) -> np.ndarray:
    """The definition on exact values, with ``p^q = exp(q log p)`` for p > 0."""
    p = _pick(exact_labels(y_true), y_pred)
    qe = x.num(float(q))
    pos = x.land(x.gt(p, x.num(0)), x.isfinite(p))
    safe = x.where(pos, p, x.num(1))
    # -expm1(q log p) is 1 - p^q with no cancellation left for the Ziv loop to resolve
    near = -x.expm1(qe * x.log(safe))
    return x.where(pos, x.div(near, qe), x.div(1 - x.power(p, qe), qe))


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, q: float) -> dict:
    """VJP of :func:`reference` with respect to y_pred (integer labels have none):
    ``{"y_pred"}``, ``-cot p_y^(q - 1)`` at the labelled class, 0 elsewhere (IEEE pow:
    ``p_y = 0`` with q < 1 gives -inf, a negative p_y NaN, as the value's pow)."""
    idx, _ = class_indices(y_true, y_pred.shape[-1], None, "y_true")
    p = np.take_along_axis(y_pred, idx[..., None], axis=-1)
    with np.errstate(all="ignore"):
        g = -np.asarray(cot, np.float64)[..., None] * np.power(p, float(q) - 1.0)
    out = np.zeros(np.broadcast_shapes(y_pred.shape, g.shape[:-1] + (1,)))
    np.put_along_axis(out, idx[..., None], g, axis=-1)
    return {"y_pred": out}


LOSS = register(LossDef(
    name="categorical_generalized_cross_entropy",
    summary="(1 - p_y^q) / q for integer labels y; no clipping",
    stage2="structured",
    rowwise=True,
    params={"q": Param(0.5, "finite non-zero float; Keras's class checks 0 < q < 1", _check_q)},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_label_inputs,
    grad_ref=grad_reference,
))
