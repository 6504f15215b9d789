"""Binary focal cross-entropy. Spec: spec/losses/binary_focal_crossentropy.md.

``(1 - p_t)^gamma * bce`` with ``p_t = y' p + (1 - y')(1 - p)`` from the UNclipped
probability, ``bce`` the binary cross-entropy of the clipped one, and, with
``apply_class_balancing``, the weight ``alpha y' + (1 - alpha)(1 - y')``; mean over the
last axis. On logits ``p = sigmoid(z)`` first and then the same (the clip included).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import sigmoid
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .binary_crossentropy import (EPSILON, FROM_LOGITS, LABEL_SMOOTHING, _pair,
                                  check_bool, cross_entropy, exact_cross_entropy, exact_smoothed,
                                  exact_surprisals, smoothed_labels, surprisals)


def _finite_float(v) -> Optional[str]:
    return None if is_real(v) and math.isfinite(float(v)) else "expected a finite float"


def _check_alpha(v) -> Optional[str]:
    if is_real(v) and math.isfinite(float(v)):
        return None
    return None if _pair(v) is not None else "expected a finite float or a pair (w1, w0)"


def _weights(alpha: Any) -> Tuple[float, float]:
    """``(w1, w0)``: the class-1 and class-0 weights."""
    pr = _pair(alpha)
    return pr if pr is not None else (float(alpha), 1.0 - float(alpha))


def reference(y_true: np.ndarray, y_pred: np.ndarray, apply_class_balancing: bool, alpha,
              gamma: float, from_logits: bool, label_smoothing, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    y1, y0 = smoothed_labels(y_true, label_smoothing)
    if from_logits:
        p, q = sigmoid(y_pred), sigmoid(-y_pred)  # 1 - sigmoid(z) = sigmoid(-z), no cancellation
    else:
        p, q = y_pred, 1.0 - y_pred
    bce = cross_entropy(y1, y0, *surprisals(y_pred, from_logits, epsilon))
    # 1 - p_t = y'(1 - p) + (1 - y') p: a sum of two non-negative terms for labels and
    # probabilities in [0, 1], where 1 - p_t itself would cancel for p_t near 1
    out = np.power(y1 * q + y0 * p, gamma) * bce
    if apply_class_balancing:
        w1, w0 = _weights(alpha)
        out = (y1 * w1 + y0 * w0) * out
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray, apply_class_balancing: bool, alpha,
           gamma: float, from_logits: bool, label_smoothing, epsilon) -> np.ndarray:
    """The definition on exact values.

    ``1 - p_t`` is written as ``y' (1 - p) + (1 - y') p`` (the same number: both are
    ``y' + p - 2 y' p``), a sum of two non-negative terms for labels and probabilities in
    [0, 1], where ``1 - p_t`` would cancel for ``p_t`` near 1; on logits ``1 - p`` is
    ``sigmoid(-z)``, since ``1 - sigmoid(z)`` for large z is below any working precision.
    """
    y = exact_smoothed(y_true, label_smoothing)
    if from_logits:
        base = y * x.sigmoid(-y_pred) + (1 - y) * x.sigmoid(y_pred)
    else:
        base = y * (1 - y_pred) + (1 - y) * y_pred
    a, b, bad = exact_surprisals(y_pred, from_logits, epsilon)
    out = x.power(base, x.num(float(gamma))) * exact_cross_entropy(y, 1 - y, a, b, bad)
    if apply_class_balancing:
        pr = _pair(alpha)
        if pr is not None:
            w1, w0 = x.num(pr[0]), x.num(pr[1])
        else:
            w1 = x.num(float(alpha))
            w0 = 1 - w1
        out = (y * w1 + (1 - y) * w0) * out
    return out


LOSS = register(LossDef(
    name="binary_focal_crossentropy",
    summary="(1 - p_t)^gamma * bce [* alpha_t]; p_t from the unclipped p; mean over the last axis",
    stage2="mean",
    params={
        "apply_class_balancing": Param(False, "bool: multiply by alpha y' + (1 - alpha)(1 - y')",
                                       check_bool),
        "alpha": Param(0.25, "finite float (class-1 weight; class 0 gets 1 - alpha), or a pair "
                             "(w1, w0); used only with apply_class_balancing", _check_alpha),
        "gamma": Param(2.0, "finite float (focusing exponent)", _finite_float),
        "from_logits": FROM_LOGITS,
        "label_smoothing": LABEL_SMOOTHING,
        "epsilon": EPSILON,
    },
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
