"""Huber loss. Spec: spec/losses/huber.md.

With ``e = p - y``: ``e^2 / 2`` where ``|e| <= delta``, else ``delta |e| - delta^2 / 2``;
mean over the last axis.
"""

from __future__ import annotations

import numpy as np

from ..numerics import abs_diff
from ..oracle import ops as x
from ..registry import LossDef, Param, positive_float, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, delta: float) -> np.ndarray:
    """Elementwise value in float64."""
    a, half, over = abs_diff(y_pred, y_true)
    # m (|e| - m/2), m = min(|e|, delta), is both pieces without a select: |e| (|e|/2) inside,
    # delta (|e| - delta/2) outside, one rounding fewer than delta|e| - delta^2/2
    m = np.minimum(a, delta)
    out = m * (a - 0.5 * m)
    if over is None:
        return out
    # |e| itself overflowed: delta|e| may still be finite for delta < 1, so use the exact half
    return np.where(over, (2.0 * delta) * half - 0.5 * delta * delta, out)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, delta: float) -> np.ndarray:
    """The literal definition on exact values."""
    e = y_pred - y_true
    a = np.abs(e)
    return x.where(a <= delta, e * e / 2, delta * a - x.div(delta * delta, 2))


LOSS = register(LossDef(
    name="huber",
    summary="e^2/2 for |e| <= delta, else delta |e| - delta^2/2; mean over the last axis",
    stage2="mean",
    params={"delta": Param(1.0, "finite float > 0", positive_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
