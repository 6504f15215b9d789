"""Mean absolute percentage error. Spec: spec/losses/mean_absolute_percentage_error.md.

``100 |y - p| / max(|y|, epsilon)``, mean over the last axis; ``epsilon=None`` gives the
unguarded ``100 |y - p| / |y|`` (inf or NaN at y = 0).
"""

from __future__ import annotations

import numpy as np

from ..numerics import abs_diff
from ..oracle import ops as x
from ..registry import LossDef, Param, optional_nonneg_float, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    den = np.abs(y_true) if epsilon is None else np.maximum(np.abs(y_true), epsilon)
    d, half, over = abs_diff(y_true, y_pred)
    if over is None:
        return 100.0 * (d / den)
    # |y - p| can overflow while |y - p| / |y| is about 2: divide the exact half instead
    return 100.0 * np.where(over, 2.0 * (half / den), d / den)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    den = np.abs(y_true) if epsilon is None else x.maximum(np.abs(y_true), x.num(float(epsilon)))
    return x.div(x.num(100) * np.abs(y_true - y_pred), den)


LOSS = register(LossDef(
    name="mean_absolute_percentage_error",
    summary="100 |y - p| / max(|y|, eps), mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or float >= 0 (floor of |y_true|)", optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
