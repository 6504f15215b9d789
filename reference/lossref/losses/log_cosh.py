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
    """The literal definition on exact values."""
    return x.log(x.cosh(y_pred - y_true))


LOSS = register(LossDef(
    name="log_cosh",
    summary="log(cosh(p - y)), mean over the last axis",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
