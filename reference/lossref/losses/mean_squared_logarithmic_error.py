"""Mean squared logarithmic error. Spec: spec/losses/mean_squared_logarithmic_error.md.

``(log(1 + max(p, epsilon)) - log(1 + max(y, epsilon)))^2``, mean over the last axis;
``epsilon=None`` drops the floor (NaN for arguments below -1).
"""

from __future__ import annotations

import numpy as np

from ..numerics import clip_share, log1p_diff
from ..oracle import ops as x
from ..registry import LossDef, Param, optional_nonneg_float, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    if epsilon is not None:
        y_true, y_pred = np.maximum(y_true, epsilon), np.maximum(y_pred, epsilon)
    # the two logs nearly cancel when p ~ y: log1p_diff keeps the difference exact in form
    return np.square(log1p_diff(y_pred, y_true))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """The definition on exact values.

    For finite arguments with ``y > -1`` the difference of logs is taken as the one log
    ``log1p((p - y) / (1 + y))`` (the same number, with no cancellation for ``p`` near
    ``y``); elsewhere (NaN, infinities, ``y <= -1``) the literal difference.
    """
    if epsilon is not None:
        e = x.num(float(epsilon))
        y_true, y_pred = x.maximum(y_true, e), x.maximum(y_pred, e)
    one = x.num(1)
    ok = x.land(x.land(x.isfinite(y_true), x.isfinite(y_pred)), x.gt(y_true, -one))
    near = x.log1p(x.div(y_pred - y_true, y_true + one))
    d = x.where(ok, near, x.log(y_pred + one) - x.log(y_true + one))
    return d * d


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, epsilon,
                   tie: float = 0.5) -> dict:
    """VJP of :func:`reference`: with ``L = log1p(P) - log1p(Y)``, ``P = max(p, epsilon)``,
    ``Y = max(y, epsilon)``: ``d/dp = 2 L / (1 + P) [p > epsilon]``, ``d/dy = -2 L / (1 + Y)
    [y > epsilon]``; at ``p = epsilon`` (``y = epsilon``) the tie of the max gives the share
    `tie` (1/2). ``L`` is :func:`~lossref.numerics.log1p_diff`, exact in form near ``p = y``."""
    if epsilon is None:
        P, Y, sp, sy = y_pred, y_true, 1.0, 1.0
    else:
        P, Y = np.maximum(y_pred, epsilon), np.maximum(y_true, epsilon)
        sp, sy = clip_share(y_pred, epsilon, None, tie), clip_share(y_true, epsilon, None, tie)
    w = (2.0 * cot) * log1p_diff(P, Y)
    return {"y_pred": (w / (1.0 + P)) * sp, "y_true": -(w / (1.0 + Y)) * sy}


LOSS = register(LossDef(
    name="mean_squared_logarithmic_error",
    summary="(log(1 + max(p, eps)) - log(1 + max(y, eps)))^2, mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or float >= 0 (floor of both arguments)",
                             optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
