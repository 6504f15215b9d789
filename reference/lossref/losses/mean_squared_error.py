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


LOSS = register(LossDef(
    name="mean_squared_error",
    summary="(y - p)^2, mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
