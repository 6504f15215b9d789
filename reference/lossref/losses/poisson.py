"""Poisson loss. Spec: spec/losses/poisson.md.

``p - y log(p + epsilon)``, mean over the last axis; ``epsilon=None`` (or 0) gives the
Poisson negative log-likelihood up to ``log y!``. A zero ``y`` contributes ``p`` for every
non-NaN log (``0 log 0 = 0``).
"""

from __future__ import annotations

import mpmath
import numpy as np

from ..numerics import xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, optional_nonneg_float, register


def _log_shifted(p: np.ndarray, e: float) -> np.ndarray:
    """``log(p + e)`` in float64.

    For ``p + e`` near 1 the log is small and a rounded sum would dominate its error;
    there ``log1p((p - 1) + e)`` is used, whose ``p - 1`` is exact for p in [1/2, 2].
    """
    near = (p >= 0.5) & (p <= 2.0)
    return np.where(near, np.log1p((p - 1.0) + e), np.log(p + e))


def reference(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    e = 0.0 if epsilon is None else float(epsilon)
    return y_pred - xmul(y_true, _log_shifted(y_pred, e))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    e = 0 if epsilon is None else mpmath.mpf(float(epsilon))
    return y_pred - x.xmul(y_true, x.log(y_pred + e))


LOSS = register(LossDef(
    name="poisson",
    summary="p - y log(p + eps), mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or a float >= 0 (added to p inside the log)",
                             optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
