"""Squared hinge loss. Spec: spec/losses/squared_hinge.md.

``max(1 - y p, 0)^2``, mean over the last axis, labels used as given (see
:mod:`lossref.losses.hinge`; Keras's 0/1 label conversion lives in the dialect).
"""

from __future__ import annotations

import numpy as np

from ..registry import LossDef, register
from .hinge import oracle as _hinge_exact
from .hinge import reference as _hinge


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise ``max(1 - y p, 0)^2`` in float64."""
    return np.square(_hinge(y_true, y_pred))


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values."""
    m = _hinge_exact(y_true, y_pred)
    return m * m


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray) -> dict:
    """VJP of :func:`reference`: ``d/dp = -2 y max(m, 0)``, ``d/dy = -2 p max(m, 0)`` for
    ``m = 1 - y p`` (C^1: 0 at the margin whatever share the max gives)."""
    r = 2.0 * _hinge(y_true, y_pred)  # max keeps NaN
    return {"y_pred": -(y_true * cot) * r, "y_true": -(y_pred * cot) * r}


LOSS = register(LossDef(
    name="squared_hinge",
    summary="max(1 - y p, 0)^2, mean over the last axis (labels in {-1, +1} as given)",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
