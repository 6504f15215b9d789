"""Categorical focal cross-entropy. Spec: spec/losses/categorical_focal_crossentropy.md.

Per class ``alpha_i (1 - p_i)^gamma (-y'_i log p_i)``, summed over the class axis (the
last one), with ``p = clip(q / sum(q), lo, hi)`` and ``q = softmax(y_pred)`` for logits
or ``q = y_pred`` for probabilities: unlike the plain cross-entropy, the clip applies to
both paths (Keras takes the softmax first). `alpha` is a scalar or one weight per class.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..numerics import xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .binary_crossentropy import AT_BOUND, scaled
from .categorical_crossentropy import (EPSILON, FROM_LOGITS, LABEL_SMOOTHING, class_parts,
                                       clip_bounds_of, exact_class_terms, grad_parts, nan_rows,
                                       row_vjp, smooth_labels)


def _finite_real(v) -> bool:
    return is_real(v) and bool(np.isfinite(v))


def _check_alpha(v) -> Optional[str]:
    if _finite_real(v):
        return None
    a = np.asarray(v) if isinstance(v, (list, tuple, np.ndarray)) else None
    if a is not None and a.ndim <= 1 and a.dtype.kind in "iuf" and np.all(np.isfinite(a)):
        return None
    return "expected a finite float or a 1-D sequence of finite floats (one per class)"


def _check_gamma(v) -> Optional[str]:
    return None if _finite_real(v) else "expected a finite float"


def _alpha64(alpha):
    return float(alpha) if _finite_real(alpha) else np.asarray(alpha, dtype=np.float64)


def reference(y_true: np.ndarray, y_pred: np.ndarray, alpha, gamma: float, from_logits: bool,
              label_smoothing: float, epsilon) -> np.ndarray:
    """Elementwise ``alpha (1 - p)^gamma (-y' log p)`` in float64."""
    y = smooth_labels(y_true, label_smoothing)
    # (1 - p) comes from the accurate complement, not from 1 - p, so p near 1 keeps its factor
    _, c, logp = class_parts(y_pred, from_logits, clip_bounds_of(epsilon))
    with np.errstate(all="ignore"):
        return _alpha64(alpha) * np.power(c, float(gamma)) * -xmul(y, logp)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, alpha, gamma: float, from_logits: bool,
           label_smoothing: float, epsilon) -> np.ndarray:
    """The definition on exact values (NaN where ``log p`` is NaN, whatever the label)."""
    y = smooth_labels(y_true, label_smoothing)
    _, c, logp, bad = exact_class_terms(y_pred, from_logits, clip_bounds_of(epsilon))
    a = x.num(float(alpha)) if _finite_real(alpha) else x.lift(np.asarray(alpha, np.float64))
    return x.where(bad, logp, a * x.power(c, x.num(float(gamma))) * -x.xmul_pole(y, logp))


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, alpha, gamma: float,
                   from_logits: bool, label_smoothing: float, epsilon,
                   at_bound: float = AT_BOUND) -> dict:
    """VJP of :func:`reference` (coupled over the class axis): ``{"y_pred", "y_true"}``.

    ``p df_i/dp_i = -alpha y' ((1 - p)^g - g (1 - p)^(g-1) p log p)``: for g >= 0 and p in
    (0, 1] a sum of two terms of one sign. Times the cotangent and the clip mask it is the
    row weight of :func:`~lossref.losses.categorical_crossentropy.row_vjp` (the clip
    applies on both paths). With respect to y: ``cot s alpha (1 - p)^g (-log p)``.
    """
    y = smooth_labels(y_true, label_smoothing)
    g = float(gamma)
    p, c, logp, mask, q, cq, top = grad_parts(y_pred, from_logits, clip_bounds_of(epsilon), at_bound)
    a = _alpha64(alpha)
    with np.errstate(all="ignore"):
        cg = np.power(c, g)
        if g == 0.0:
            d = cg
        else:  # g (1 - p)^(g-1) p log p, with p log p = 0 at p = 0
            plogp = np.where(p == 0.0, 0.0, p * logp)
            d = cg - np.where(plogp == 0.0, 0.0, g * np.power(c, g - 1.0) * plogp)
        w = np.where(mask == 0.0, 0.0, -xmul(a * y * cot * mask, d))
        gp = row_vjp(np.broadcast_to(w, q.shape).copy(), q, cq, top, None if from_logits else y_pred)
        gy = cot * scaled(a * cg * -logp, label_smoothing)
        if not from_logits:
            gp = nan_rows(gp, reference(y_true, y_pred, alpha, gamma, False, label_smoothing, epsilon))
    return {"y_pred": gp, "y_true": gy}


LOSS = register(LossDef(
    name="categorical_focal_crossentropy",
    summary="sum_i alpha_i (1 - p_i)^gamma (-y_i log p_i) over the last axis; p clipped",
    stage2="sum",
    params={
        "alpha": Param(0.25, "finite float, or a 1-D sequence of finite floats broadcasting "
                             "against the class axis", _check_alpha),
        "gamma": Param(2.0, "finite float (0 ** 0 = 1)", _check_gamma),
        "from_logits": FROM_LOGITS,
        "label_smoothing": LABEL_SMOOTHING,
        "epsilon": EPSILON,
    },
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
