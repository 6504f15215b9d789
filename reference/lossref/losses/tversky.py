"""Tversky loss. Spec: spec/losses/tversky.md.

Over the axes `axis` (None: all of them): with ``TP = sum(y p)``,
``FP = sum((1 - y) p)`` and ``FN = sum(y (1 - p))``, the loss is
``1 - TP / (TP + alpha FP + beta FN + epsilon)``: `alpha` weights false positives,
`beta` false negatives (Salehi et al. 2017; Keras after release 3.15.1). A structured loss.
"""

from __future__ import annotations

import numpy as np

from ..numerics import axes_last, normalize_axes, overlap_grad
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register
from .dice import AXIS, EPSILON, check_overlap_inputs, overlap_loss


def reference(y_true: np.ndarray, y_pred: np.ndarray, alpha, beta, axis, epsilon) -> np.ndarray:
    """Per-group value in float64, from arrays of any float format."""
    # 1 - TP/den cancels for a near-perfect prediction: the loss is formed as
    # (eps + alpha FP + beta FN) / (that + TP) from exactly split pieces
    return overlap_loss(y_true, y_pred, axis, alpha, beta, 1.0, epsilon)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, alpha, beta, axis,
                   epsilon) -> dict:
    """VJP of :func:`reference`: ``d/dp_k = (alpha TP - y_k A) / den**2`` and
    ``d/dy_k = (beta TP - p_k A) / den**2`` per group, ``A = eps + alpha sum(p) +
    beta sum(y)`` (:func:`lossref.numerics.overlap_grad`)."""
    axes = normalize_axes(axis, np.ndim(y_pred))
    gy, gp = overlap_grad(y_true, y_pred, axes, alpha, beta, 1.0, epsilon, cot)
    return {"y_pred": gp, "y_true": gy}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, alpha, beta, axis, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    axes = normalize_axes(axis, y_pred.ndim)
    y, p = axes_last(y_true, axes), axes_last(y_pred, axes)
    tp = x.fsum(y * p, -1)
    fp = x.fsum((1 - y) * p, -1)
    fn = x.fsum(y * (1 - p), -1)
    den = tp + x.num(alpha) * fp + x.num(beta) * fn + x.num(0 if epsilon is None else epsilon)
    return 1 - x.div(tp, den)


LOSS = register(LossDef(
    name="tversky",
    summary="1 - TP / (TP + alpha FP + beta FN + eps) over axis (None: everything)",
    stage2="structured",
    params={
        "alpha": Param(0.5, "finite float: weight of the false positives sum((1 - y) p)", finite_number),
        "beta": Param(0.5, "finite float: weight of the false negatives sum(y (1 - p))", finite_number),
        "axis": AXIS,
        "epsilon": EPSILON,
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_overlap_inputs,
    native=True,
    grad_ref=grad_reference,
))
