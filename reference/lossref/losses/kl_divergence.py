"""Kullback-Leibler divergence. Spec: spec/losses/kl_divergence.md.

``sum(y log(y / p))`` over the last axis after clipping BOTH arguments to
``[epsilon, 1]``; ``epsilon=None`` drops the clip. A zero ``y`` contributes 0 for every
non-NaN ``p``, 0 included (``0 log(0 / p) = 0``).

PyTorch's ``kl_div`` takes the prediction as log-probabilities and no clip
(:func:`log_space_reference`, :func:`log_space_oracle`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..numerics import clip_share, log_ratio, log_ratio_plus1
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register


def _check_epsilon(v) -> Optional[str]:
    if v is None:
        return None
    return None if is_real(v) and math.isfinite(v) and 0 <= v <= 1 else "expected None or a float in [0, 1]"


def reference(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    if epsilon is not None:
        y_true, y_pred = np.clip(y_true, epsilon, 1.0), np.clip(y_pred, epsilon, 1.0)
    # + 0.0: -0 is the number 0, so y / -0 is +inf (the exact ratio's limit), not -inf
    y_true, y_pred = y_true + 0.0, y_pred + 0.0
    # log_ratio: log1p((y - p) / p) near y = p, where log(y / p) keeps only its rounding error
    out = y_true * log_ratio(y_true, y_pred)
    return np.where((y_true == 0) & ~np.isnan(y_pred), 0.0, out)  # 0 log(0 / p) = 0, p = 0 too


def oracle(y_true: np.ndarray, y_pred: np.ndarray, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    if epsilon is not None:
        e, one = x.num(float(epsilon)), x.num(1)
        y_true = x.minimum(x.maximum(y_true, e), one)
        y_pred = x.minimum(x.maximum(y_pred, e), one)
    zero = x.land(x.eq(y_true, x.num(0)), x.lnot(x.isnan(y_pred)))
    return x.where(zero, x.num(0), y_true * x.log(x.div(y_true, y_pred)))


def log_space_reference(y_true: np.ndarray, y_pred: np.ndarray, log_target: bool = False) -> np.ndarray:
    """``y (log y - l)`` in float64 for ``l = y_pred = log q`` (PyTorch's ``kl_div``), or
    ``e^t (t - l)`` for a log target ``t = y_true`` (``log_target=True``).

    A zero target gives ``0 - 0·l`` (xlogy: 0 for finite l, NaN for infinite or NaN l).
    The difference ``log y - l`` is not compensated: near ``l = log y`` the error is
    ``u·y·(|log y| + |l|)`` (spec/losses/kl_divergence.md).
    """
    with np.errstate(all="ignore"):
        if log_target:
            return np.exp(y_true) * (y_true - y_pred)
        out = y_true * (np.log(y_true) - y_pred)
        return np.where(y_true == 0, 0.0 - y_true * y_pred, out)


def log_space_oracle(y_true: np.ndarray, y_pred: np.ndarray, log_target: bool = False) -> np.ndarray:
    """The literal definition on exact values."""
    if log_target:
        return x.exp(y_true) * (y_true - y_pred)
    return x.where(x.eq(y_true, x.num(0)), 0 - y_true * y_pred, y_true * (x.log(y_true) - y_pred))


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, epsilon,
                   tie: float = 0.5) -> dict:
    """VJP of :func:`reference` with ``Y, P`` the clipped arguments: ``d/dp = -Y / P · dP/dp``,
    ``d/dy = (log(Y / P) + 1) · dY/dy``; the clip's derivative is 1 inside ``(epsilon, 1)``,
    0 outside, `tie` at a bound (1/2: ``min(max(x, lo), hi)``, JAX's ``clip``; 1 for PyTorch's
    ``clamp``). A zero ``Y`` (no clip) gives ``d/dp = 0`` (the value is 0 for every ``P``) and
    ``d/dy = -inf``. ``log(Y / P) + 1`` is :func:`~lossref.numerics.log_ratio_plus1`."""
    if epsilon is None:
        Y, P, sy, sp = y_true, y_pred, 1.0, 1.0
    else:
        Y, P = np.clip(y_true, epsilon, 1.0), np.clip(y_pred, epsilon, 1.0)
        sy, sp = clip_share(y_true, epsilon, 1.0, tie), clip_share(y_pred, epsilon, 1.0, tie)
    Y, P = Y + 0.0, P + 0.0
    gp = np.where((Y == 0) & ~np.isnan(P), 0.0, -(Y / P))
    return {"y_pred": (gp * sp) * cot, "y_true": (log_ratio_plus1(Y, P) * sy) * cot}


def log_space_grad(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, log_target: bool = False) -> dict:
    """VJP of :func:`log_space_reference`. Probability target ``y``: ``d/dl = -y``,
    ``d/dy = log y - l + 1`` (NaN at ``y = 0``, as PyTorch's and Optax's autodiff); log
    target ``t``: ``d/dl = -e^t``, ``d/dt = e^t (t - l + 1)``. The sums are not compensated:
    error ``<= 3 u (|log y| + |l| + 1)`` (times ``e^t``) before the product with `cot`."""
    with np.errstate(all="ignore"):
        if log_target:
            et = np.exp(y_true)
            return {"y_pred": -(et * cot), "y_true": (et * cot) * ((y_true - y_pred) + 1.0)}
        gy = (np.log(y_true) - y_pred) + 1.0
        return {"y_pred": -(y_true * cot), "y_true": np.where(y_true == 0, np.nan, gy) * cot}


LOSS = register(LossDef(
    name="kl_divergence",
    summary="y log(y / p) with y and p clipped to [eps, 1]; sum over the last axis",
    stage2="sum",
    params={"epsilon": Param(1e-7, "None or a float in [0, 1] (lower clip bound of y and p; "
                                   "the upper bound is 1)", _check_epsilon)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
