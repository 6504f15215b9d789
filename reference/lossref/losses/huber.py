"""Huber loss. Spec: spec/losses/huber.md.

With ``e = p - y``: ``e^2 / 2`` where ``|e| <= delta``, else ``delta |e| - delta^2 / 2``;
mean over the last axis.

PyTorch's smooth L1 loss is the same function scaled, ``huber_beta / beta``
(:func:`smooth_l1_reference`, :func:`smooth_l1_oracle`).
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
    d = x.num(float(delta))
    # delta^2 rounded to float64, as the golden vectors were made (the spec says exact delta^2)
    return x.where(x.le(a, d), e * e / 2, d * a - x.div(x.num(float(delta) * float(delta)), 2))


def smooth_l1_reference(y_true: np.ndarray, y_pred: np.ndarray, beta: float) -> np.ndarray:
    """PyTorch's smooth L1 elementwise in float64: ``e^2 / (2 beta)`` where ``|e| < beta``,
    else ``|e| - beta/2`` (``huber_beta / beta``); ``beta = 0`` gives ``|e|``."""
    a, half, over = abs_diff(y_pred, y_true)
    if beta == 0:
        return a
    m = np.minimum(a, beta)
    # (m / beta)(|e| - m/2): inside, (|e|/beta)(|e|/2) never squares |e| (no underflow of
    # e^2 for tiny beta); outside, m / beta = 1 and |e| - beta/2 is rounded once
    out = (m / beta) * (a - 0.5 * m)
    if over is None:
        return out
    # |e| overflowed: |e| - beta/2 may still be finite for beta near the maximum
    return np.where(over, 2.0 * (half - 0.25 * beta), out)


def smooth_l1_oracle(y_true: np.ndarray, y_pred: np.ndarray, beta: float) -> np.ndarray:
    """The literal definition on exact values."""
    a = np.abs(y_pred - y_true)
    if beta == 0:
        return a
    b = x.num(float(beta))
    return x.where(x.lt(a, b), x.div(a * a, 2 * b), a - b / 2)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, delta: float) -> dict:
    """VJP of :func:`reference`: ``d/dp = clip(p - y, -delta, delta) cot`` (the function is
    C^1: both pieces have the derivative ``±delta`` at ``|e| = delta``), ``d/dy`` its negative."""
    g = cot * np.clip(y_pred - y_true, -delta, delta)  # an overflowed e is clipped: right sign
    return {"y_pred": g, "y_true": -g}


def smooth_l1_grad(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, beta: float) -> dict:
    """VJP of :func:`smooth_l1_reference`: ``d/dp = clip(e / beta, -1, 1) cot`` for ``e = p - y``
    (C^1 at ``|e| = beta``); ``beta = 0``: ``sign(e) cot`` (0 at ``e = 0``, as PyTorch)."""
    e = y_pred - y_true
    s = np.sign(e) if beta == 0 else np.clip(e / beta, -1.0, 1.0)
    g = cot * s
    return {"y_pred": g, "y_true": -g}


LOSS = register(LossDef(
    name="huber",
    summary="e^2/2 for |e| <= delta, else delta |e| - delta^2/2; mean over the last axis",
    stage2="mean",
    params={"delta": Param(1.0, "finite float > 0", positive_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
