"""Poisson loss. Spec: spec/losses/poisson.md.

``p - y log(p + epsilon)``, mean over the last axis; ``epsilon=None`` (or 0) gives the
Poisson negative log-likelihood up to ``log y!``. A zero ``y`` contributes ``p`` for every
non-NaN log (``0 log 0 = 0``).

PyTorch's ``poisson_nll_loss`` adds the log-rate form ``exp(l) - y l`` and the Stirling
term of ``log y!`` (:func:`nll_reference`, :func:`nll_oracle`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import two_sum, xmul
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
    # the NaN branch passes a NaN derivative to both inputs (not the 0 of a constant)
    return x.where(bad, x.NAN * (y_pred + y_true), y_pred - x.xmul_pole(y_true, x.log(s)))


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


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, epsilon) -> dict:
    """VJP of :func:`reference`: ``d/dp = 1 - y / (p + epsilon)``, ``d/dy = -log(p + epsilon)``.

    ``d/dp`` is taken as ``(p + epsilon - y) / (p + epsilon)`` with ``p + epsilon = s + t``
    exact (TwoSum): ``1 - y / s`` cancels near the optimum ``y = p + epsilon``, where ``s - y``
    is exact. A zero label gives 1 (the value is ``p`` there); NaN where the value's log is.
    """
    e = 0.0 if epsilon is None else float(epsilon)
    s, t = two_sum(y_pred, e)
    t = np.where(np.isfinite(t), t, 0.0)
    gp = ((s - y_true) + t) / s
    bad = np.isnan(s) | (s < 0)
    gp = np.where(bad, np.nan, np.where(y_true == 0, 1.0, gp))
    gpc = cot * gp
    # a huge label against a small rate: y / s overflows where cot y / s need not
    over = np.isinf(gp) & np.isfinite(y_true) & np.isfinite(y_pred)
    if np.any(over):
        gpc = np.where(over, (cot * ((s - y_true) + t)) / s, gpc)
    return {"y_pred": gpc, "y_true": -cot * _log_shifted(y_pred, e)}


def _stirling_grad(y: np.ndarray) -> np.ndarray:
    """``d/dy`` of :func:`stirling_reference`: ``log y + 1 / (2 y)`` where ``y > 1``, else 0."""
    with np.errstate(all="ignore"):
        return np.where(y > 1, np.log(y) + 0.5 / y, 0.0)


def nll_grad(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, log_input: bool = True,
             full: bool = False, epsilon: float = 1e-8) -> dict:
    """VJP of :func:`nll_reference`. Log-rate: ``d/dl = exp(l) - y``, ``d/dy = -l``; else as
    :func:`grad_reference`; `full` adds :func:`_stirling_grad` to ``d/dy``. The log-rate
    ``exp(l) - y`` is a difference of two terms, error ``<= 2 u (exp(l) + |y|)`` before the
    product with `cot` (spec/losses/poisson.md)."""
    with np.errstate(all="ignore"):
        if log_input:
            out = {"y_pred": cot * (np.exp(y_pred) - y_true), "y_true": -cot * y_pred}
        else:
            out = grad_reference(y_true, y_pred, cot, epsilon)
        if full:
            out["y_true"] = out["y_true"] + cot * _stirling_grad(y_true)
    return out


LOSS = register(LossDef(
    name="poisson",
    summary="p - y log(p + eps), mean over the last axis",
    stage2="mean",
    params={"epsilon": Param(1e-7, "None or a float >= 0 (added to p inside the log)",
                             optional_nonneg_float)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
