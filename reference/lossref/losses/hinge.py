"""Hinge loss. Spec: spec/losses/hinge.md.

``max(1 - y p, 0)``, mean over the last axis, with the labels used as given (the
margin convention expects ``y`` in {-1, +1}). Keras's automatic conversion of 0/1
labels is a dialect convention: see :func:`lossref.keras.losses.hinge`.
"""

from __future__ import annotations

import numpy as np

from ..numerics import clip_share, one_minus_product
from ..oracle import ops as x
from ..registry import LossDef, register


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise ``max(1 - y p, 0)`` in float64."""
    # 1 - y p cancels for y p near 1 (the margin): the exact product keeps it to one rounding
    return np.maximum(one_minus_product(y_true, y_pred), 0.0)


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values."""
    return x.maximum(x.num(1) - y_true * y_pred, 0)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, tie: float = 0.5) -> dict:
    """VJP of :func:`reference`: ``d/dp = -y w``, ``d/dy = -p w`` with ``w = d max(m, 0) / dm``
    at ``m = 1 - y p``: 1 above the margin, 0 below, `tie` at ``m = 0`` (1/2: the tie of
    ``max``, as PyTorch's ``maximum`` and JAX's); ``m`` is exact in sign (exact product)."""
    m = one_minus_product(y_true, y_pred)
    w = clip_share(m, 0.0, None, tie) * cot
    return {"y_pred": -y_true * w, "y_true": -y_pred * w}


LOSS = register(LossDef(
    name="hinge",
    summary="max(1 - y p, 0), mean over the last axis (labels in {-1, +1} as given)",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
