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


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, abs0: float = 0.0) -> dict:
    """VJP of :func:`reference`: ``d/dy = sign(y - p) cot``, ``d/dp`` its negative.

    `abs0` is the derivative taken for ``|d|`` at ``d = y - p = 0``: 0 (``sign``, PyTorch's
    autograd), 1 for JAX's ``abs`` (whose derivative at 0 is +1).
    """
    d = y_true - y_pred
    s = np.where(d == 0, abs0, np.sign(d))  # NaN stays NaN
    g = cot * s
    return {"y_pred": -g, "y_true": g}


LOSS = register(LossDef(
    name="mean_absolute_error",
    summary="|y - p|, mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
