"""Mean absolute percentage error. Spec: spec/losses/mean_absolute_percentage_error.md.

``100 |y - p| / max(|y|, epsilon)``, mean over the last axis; ``epsilon=None`` gives the
unguarded ``100 |y - p| / |y|`` (inf or NaN at y = 0).
"""

from __future__ import annotations

import numpy as np

from ..numerics import abs_diff, quotient_by_product
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


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, epsilon,
                   abs0: float = 0.0, tie: float = 0.5) -> dict:
    """VJP of :func:`reference`, ``f = 100 |y - p| / v`` with ``v = max(|y|, epsilon)``.

    ``d/dp = -100 s / v`` with ``s = sign(y - p)`` (`abs0` at ``y = p``: 0, or 1 for JAX's
    ``abs``). ``d/dy``: where ``|y| > epsilon``, ``f = 100 |1 - p/y|`` and the two terms of
    the quotient rule combine to ``100 s sign(y) p / y^2`` (no cancellation); where
    ``|y| < epsilon``, ``100 s / epsilon``; at ``|y| = epsilon`` the tie of the max gives
    the ``|y|`` side the share `tie` (1/2).
    """
    c = 100.0 * cot
    a = np.abs(y_true)
    den = a if epsilon is None else np.maximum(a, epsilon)
    d = y_true - y_pred
    s = np.where(d == 0, abs0, np.sign(d))
    gp = -(c / den) * s
    tracked = c * (s * np.sign(y_true)) * quotient_by_product(y_pred, y_true, y_true)
    if epsilon is None:
        gy = tracked
    else:
        e = float(epsilon)
        flat = (c / e) * s
        at = (c / e) * (s - tie * np.sign(y_true) * (np.abs(d) / e)) if e > 0 else tracked
        gy = np.where(a > e, tracked, np.where(a == e, at, flat))
        gy = np.where(np.isnan(y_true), np.nan, gy)
    return {"y_pred": gp, "y_true": gy}


LOSS = register(LossDef(
    name="mean_absolute_percentage_error",
    summary="100 |y - p| / max(|y|, eps), mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or float >= 0 (floor of |y_true|)", optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
