"""Generalized Kullback-Leibler divergence. Spec: spec/losses/generalized_kl_divergence.md.

``sum_i t_i (log t_i - l_i) - t_i + exp(l_i)`` over the last axis, for targets ``t >= 0``
and log-predictions ``l = log q``: the Bregman divergence of ``x log x - x``, which is the
KL divergence for normalised ``t`` and ``q`` and stays a divergence (``>= 0``, 0 only at
``q = t``) for unnormalised measures. ``0 log 0 = 0``: a zero target gives ``exp(l)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..oracle import ops as x
from ..registry import LossDef, register

# Taylor coefficients 1/k! of exp(d) - 1 - d, k = 2..20: for |d| <= 1 the series is summed
# (Horner) and every term after the first is below |d|^2 / 6, so nothing cancels; 1/21! is
# below 2^-65 of the leading 1/2.
_COEFFS = [1.0 / math.factorial(k) for k in range(20, 1, -1)]


def _exp_minus_linear(d: np.ndarray) -> np.ndarray:
    """``exp(d) - 1 - d`` for ``|d| <= 1`` without the cancellation of ``expm1(d) - d``."""
    acc = np.full_like(d, _COEFFS[0])
    for c in _COEFFS[1:]:
        acc = acc * d + c
    return acc * d * d


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise value in float64, ``t = y_true``, ``l = y_pred``.

    With ``d = l - log t`` the term is ``t (exp(d) - 1 - d)``: a series for ``|d| <= 1``
    (where the three parts cancel to ``t d^2 / 2``), else ``exp(l) - t (1 + d)``, whose
    parts cancel by at most ``e / (e - 2)`` and where ``t exp(d)`` could overflow although
    ``exp(l)`` does not.
    """
    t = np.asarray(y_true, dtype=np.float64)
    lq = np.asarray(y_pred, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = lq - np.log(t)  # NaN for t < 0; -inf for t = +inf or l = -inf
        near = np.abs(d) <= 1.0
        out = np.where(near, t * _exp_minus_linear(np.where(near, d, 0.0)), np.exp(lq) - t * (1.0 + d))
        out = np.where(t == 0, np.exp(lq), out)  # 0 log 0 = 0
        # l = +inf: exp(l) dominates every finite target (the formula gives inf - inf)
        out = np.where((lq == np.inf) & (t > 0) & (t < np.inf), np.inf, out)
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values, with its limits at zero and infinite inputs."""
    t, lq = y_true, y_pred
    e = x.exp(lq)
    literal = t * x.log(t) - t * lq - t + e
    zero = x.num(0)
    l_inf = x.land(x.lnot(x.isfinite(lq)), x.gt(lq, zero))  # l = +inf
    t_inf = x.land(x.lnot(x.isfinite(t)), x.gt(t, zero))  # t = +inf
    # l = +inf against a positive finite target, or t = +inf against l < +inf: +inf
    inf = x.lor(x.land(l_inf, x.land(x.gt(t, zero), x.isfinite(t))),
                x.land(t_inf, x.land(x.lnot(x.isnan(lq)), x.lnot(l_inf))))
    return x.where(x.eq(t, zero), e, x.where(inf, x.INF, literal))


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray,
                   zero_target: float = -np.inf) -> dict:
    """VJP of :func:`reference`: ``d/dl = exp(l) - t``, ``d/dt = log t - l``.

    Both are differences of two terms that cancel at the optimum ``l = log t``; they are
    not compensated: errors ``<= 2 u (exp(l) + t)`` and ``<= 2 u (|log t| + |l|)`` before
    the product with `cot` (spec/losses/generalized_kl_divergence.md). At ``t = 0`` the
    value is ``exp(l)`` and ``d/dt`` is `zero_target`: ``-inf``, the one-sided derivative
    of ``t log t`` (NaN: Optax's autodiff).
    """
    t, lq = y_true, y_pred
    with np.errstate(all="ignore"):
        gl = np.exp(lq) - t
        gt = np.where(t == 0, zero_target, np.log(t) - lq)
    return {"y_pred": gl * cot, "y_true": gt * cot}


LOSS = register(LossDef(
    name="generalized_kl_divergence",
    summary="t (log t - l) - t + exp(l) for targets t and log-predictions l; sum over the last axis",
    stage2="sum",
    params={},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
