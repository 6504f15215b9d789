"""Poly-1 cross-entropy (PolyLoss). Spec: spec/losses/poly1_crossentropy.md.

``sum_i y_i (-log p_i + epsilon (1 - p_i))`` over the class axis (the last one), with
``p = softmax(z)`` of logits z: the categorical cross-entropy plus ``epsilon`` times the
first term ``1 - p_t`` of its Taylor series in ``1 - p_t`` (Leng et al., 2022). ``0 log 0 = 0``.
"""

from __future__ import annotations

import numpy as np

from ..numerics import xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register
from .categorical_crossentropy import class_parts, exact_class_terms


def reference(y_true: np.ndarray, y_pred: np.ndarray, epsilon: float) -> np.ndarray:
    """Elementwise ``y_i (-log p_i) + epsilon y_i (1 - p_i)`` in float64 (summed by stage 2).

    ``(p, 1 - p, log p)`` come from the catalogue's log-softmax: ``1 - p`` is
    ``-expm1(log p)``, so the dominant class keeps its small complement.
    """
    _, c, logp = class_parts(y_pred, True, None)
    return xmul(y_true, -logp) + float(epsilon) * (y_true * c)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, epsilon: float) -> np.ndarray:
    """The definition on exact values (NaN where ``log p`` is NaN, whatever the label)."""
    _, c, logp, bad = exact_class_terms(y_pred, True, None)
    return x.where(bad, x.NAN, x.xmul_pole(y_true, -logp) + x.num(float(epsilon)) * (y_true * c))


LOSS = register(LossDef(
    name="poly1_crossentropy",
    summary="sum_i y_i (-log p_i + epsilon (1 - p_i)), p = softmax(logits), over the last axis",
    stage2="sum",
    params={"epsilon": Param(2.0, "finite float: coefficient of the first polynomial term 1 - p_t",
                             finite_number)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
