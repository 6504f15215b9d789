"""Mean absolute error: ``mean(|y - p|)`` over the last axis. Spec: spec/losses/mean_absolute_error.md."""

from __future__ import annotations

import numpy as np

from ..registry import LossDef, register


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise ``|y_true - y_pred|`` in float64."""
    return np.abs(y_true - y_pred)


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values."""
    return np.abs(y_true - y_pred)


LOSS = register(LossDef(
    name="mean_absolute_error",
    summary="|y - p|, mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
