"""Mean squared error: ``mean((y - p)^2)`` over the last axis. Spec: spec/losses/mean_squared_error.md."""

from __future__ import annotations

import numpy as np

from ..registry import LossDef, register


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise ``(y_true - y_pred)^2`` in float64."""
    return np.square(y_true - y_pred)


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values."""
    d = y_true - y_pred
    return d * d


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray) -> dict:
    """VJP of :func:`reference`: ``d/dy = 2 (y - p) cot``, ``d/dp`` its negative."""
    d = y_true - y_pred
    g = (2.0 * cot) * d
    over = np.isinf(d) & np.isfinite(y_true) & np.isfinite(y_pred)
    if np.any(over):  # y - p overflowed although both are finite: scale its exact half back
        g = np.where(over, (4.0 * cot) * (0.5 * y_true - 0.5 * y_pred), g)
    return {"y_pred": -g, "y_true": g}


LOSS = register(LossDef(
    name="mean_squared_error",
    summary="(y - p)^2, mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
