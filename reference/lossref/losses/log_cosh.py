"""Log-cosh loss: ``mean(log(cosh(p - y)))`` over the last axis. Spec: spec/losses/log_cosh.md."""

from __future__ import annotations

import numpy as np

from ..numerics import log_cosh
from ..oracle import ops as x
from ..registry import LossDef, register


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise value in float64 (see :func:`lossref.numerics.log_cosh`)."""
    return log_cosh(y_pred - y_true)


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The definition on exact values, ``a = |p - y|``, in two forms of the same number.

    ``log cosh a = log1p(cosh a - 1)`` with ``cosh a - 1 = expm1(a)^2 / (2 e^a)`` for
    ``a <= 1`` (``log(cosh a)`` would cancel to ``a^2 / 2`` out of ``log(1 + ...)``), and
    ``a - log 2 + log1p(e^-2a)`` above, where ``cosh a`` is never formed (a ball of
    ``cosh(1e308)`` is NaN).
    """
    a = np.abs(y_pred - y_true)
    m = x.expm1(a)
    near = x.log1p(x.div(m * m, 2 * x.exp(a)))
    far = a - x.log(x.num(2)) + x.log1p(x.exp(-2 * a))
    return x.where(x.le(a, x.num(1)), near, far)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray) -> dict:
    """VJP of :func:`reference`: ``d/dp = tanh(p - y) cot``, ``d/dy`` its negative."""
    # np.tanh keeps the relative accuracy of small residuals that 1 - 2 / (1 + e^(2x)) cancels
    g = cot * np.tanh(y_pred - y_true)
    return {"y_pred": g, "y_true": -g}


LOSS = register(LossDef(
    name="log_cosh",
    summary="log(cosh(p - y)), mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
