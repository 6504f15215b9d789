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
from .categorical_crossentropy import class_parts, exact_class_terms, grad_parts, row_vjp


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
    return x.where(bad, logp, x.xmul_pole(y_true, -logp) + x.num(float(epsilon)) * (y_true * c))


def _log1p_tail(c: np.ndarray) -> np.ndarray:
    """``-log(1 - c) - c = sum_{k>=2} c^k / k`` for 0 <= c <= 1/2 by its series (Horner,
    positive terms; 56 terms leave < 2^-56 of the sum at c = 1/2)."""
    acc = np.zeros(np.shape(c))
    for k in range(57, 1, -1):
        acc = acc * c + 1.0 / k
    return acc * c * c


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, epsilon: float) -> dict:
    """VJP of :func:`reference` (coupled over the class axis): ``{"y_pred", "y_true"}``.

    Row weights ``w_i = -cot_i y_i (1 + epsilon p_i)`` for
    :func:`~lossref.losses.categorical_crossentropy.row_vjp`; above p = 1/2 the factor is
    ``(1 + epsilon) - epsilon (1 - p)`` (exact ``1 + epsilon`` for epsilon in [-2, -1/2],
    so epsilon = -1 gives the complement itself). With respect to y:
    ``cot (-log p + epsilon (1 - p))``.
    """
    eps = float(epsilon)
    p, c, logp, _, q, cq, top = grad_parts(y_pred, True, None)
    with np.errstate(all="ignore"):
        f = np.where(p > 0.5, (1.0 + eps) - eps * c, 1.0 + eps * p)
        w = -xmul(cot * y_true, f)
        gp = row_vjp(np.broadcast_to(w, q.shape).copy(), q, cq, top)
        gy = -logp + eps * c
        if eps < 0.0:  # -log p and eps (1 - p) cancel near p = 1 (fully at eps = -1)
            near = c <= 0.5
            gy = np.where(near, _log1p_tail(np.where(near, c, 0.0)) + (1.0 + eps) * c, gy)
    return {"y_pred": gp, "y_true": cot * gy}


LOSS = register(LossDef(
    name="poly1_crossentropy",
    summary="sum_i y_i (-log p_i + epsilon (1 - p_i)), p = softmax(logits), over the last axis",
    stage2="sum",
    params={"epsilon": Param(2.0, "finite float: coefficient of the first polynomial term 1 - p_t",
                             finite_number)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
