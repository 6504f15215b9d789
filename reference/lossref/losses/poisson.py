"""Poisson loss. Spec: spec/losses/poisson.md.

``p - y log(p + epsilon)``, mean over the last axis; ``epsilon=None`` (or 0) gives the
Poisson negative log-likelihood up to ``log y!``. A zero ``y`` contributes ``p`` for every
non-NaN log (``0 log 0 = 0``).

PyTorch's ``poisson_nll_loss`` adds the log-rate form ``exp(l) - y l`` and the Stirling
term of ``log y!`` (:func:`nll_reference`, :func:`nll_oracle`).
"""

from __future__ import annotations

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
    """The literal definition on exact values (NaN where the log is, whatever the label)."""
    s = y_pred if epsilon is None else y_pred + x.num(float(epsilon))
    # a zero label against log 0 is 0, but not against the log of a negative number or NaN
    bad = x.lor(x.isnan(s), x.lt(s, x.num(0)))
    return x.where(bad, x.NAN, y_pred - x.xmul_pole(y_true, x.log(s)))


_LOG_2PI = float(np.log(2.0 * np.pi))


def stirling_reference(y: np.ndarray) -> np.ndarray:
    """``y log y - y + log(2 pi y) / 2`` (Stirling's ``log y!``) where ``y > 1``, else 0."""
    with np.errstate(all="ignore"):
        ly = np.log(y)
        # log(2 pi) + log y: 2 pi y would overflow for y near the maximum
        return np.where(y > 1, (y * ly - y) + 0.5 * (_LOG_2PI + ly), 0.0)


def nll_reference(y_true: np.ndarray, y_pred: np.ndarray, log_input: bool = True, full: bool = False,
                  epsilon: float = 1e-8) -> np.ndarray:
    """PyTorch's Poisson negative log-likelihood in float64: ``exp(l) - y l`` for a log-rate
    ``l`` (`log_input`), else ``p - y log(p + epsilon)``; `full` adds
    :func:`stirling_reference`. ``0 l`` is 0 for infinite ``l`` (``0 log 0 = 0``)."""
    with np.errstate(all="ignore"):
        out = np.exp(y_pred) - xmul(y_true, y_pred) if log_input else reference(y_true, y_pred, epsilon)
        return out + stirling_reference(y_true) if full else out


def nll_oracle(y_true: np.ndarray, y_pred: np.ndarray, log_input: bool = True, full: bool = False,
               epsilon: float = 1e-8) -> np.ndarray:
    """The literal definition on exact values."""
    out = x.exp(y_pred) - x.xmul(y_true, y_pred) if log_input else oracle(y_true, y_pred, epsilon)
    if not full:
        return out
    y = y_true
    return out + x.where(x.gt(y, x.num(1)), y * x.log(y) - y + x.log(2 * x.pi() * y) / 2, x.num(0))


LOSS = register(LossDef(
    name="poisson",
    summary="p - y log(p + eps), mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or a float >= 0 (added to p inside the log)",
                             optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
