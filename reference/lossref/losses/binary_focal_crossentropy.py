"""Binary focal cross-entropy. Spec: spec/losses/binary_focal_crossentropy.md.

``(1 - p_t)^gamma * bce`` with ``p_t = y' p + (1 - y')(1 - p)`` from the UNclipped
probability, ``bce`` the binary cross-entropy of the clipped one, and, with
``apply_class_balancing``, the weight ``alpha y' + (1 - alpha)(1 - y')``; mean over the
last axis. On logits ``p = sigmoid(z)`` first and then the same (the clip included).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import sigmoid, sum_k3, two_product
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .binary_crossentropy import (AT_BOUND, EPSILON, FROM_LOGITS, LABEL_SMOOTHING, _bound_mask,
                                  _masked, _pair, check_bool, clip_interval, cross_entropy,
                                  exact_cross_entropy, exact_smoothed, exact_surprisals,
                                  label_terms, log_odds, logit_residual, prob_parts, scaled,
                                  shifted, smoothed_labels, surprisals)


def _finite_float(v) -> Optional[str]:
    return None if is_real(v) and math.isfinite(float(v)) else "expected a finite float"


def _check_alpha(v) -> Optional[str]:
    if is_real(v) and math.isfinite(float(v)):
        return None
    return None if _pair(v) is not None else "expected a finite float or a pair (w1, w0)"


def _weights(alpha: Any) -> Tuple[float, float]:
    """``(w1, w0)``: the class-1 and class-0 weights."""
    pr = _pair(alpha)
    return pr if pr is not None else (float(alpha), 1.0 - float(alpha))


def reference(y_true: np.ndarray, y_pred: np.ndarray, apply_class_balancing: bool, alpha,
              gamma: float, from_logits: bool, label_smoothing, epsilon) -> np.ndarray:
    """Elementwise value in float64."""
    y1, y0 = smoothed_labels(y_true, label_smoothing)
    if from_logits:
        p, q = sigmoid(y_pred), sigmoid(-y_pred)  # 1 - sigmoid(z) = sigmoid(-z), no cancellation
    else:
        p, q = y_pred, 1.0 - y_pred
    bce = cross_entropy(y1, y0, *surprisals(y_pred, from_logits, epsilon))
    # 1 - p_t = y'(1 - p) + (1 - y') p: a sum of two non-negative terms for labels and
    # probabilities in [0, 1], where 1 - p_t itself would cancel for p_t near 1
    out = np.power(y1 * q + y0 * p, gamma) * bce
    if apply_class_balancing:
        w1, w0 = _weights(alpha)
        out = (y1 * w1 + y0 * w0) * out
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray, apply_class_balancing: bool, alpha,
           gamma: float, from_logits: bool, label_smoothing, epsilon) -> np.ndarray:
    """The definition on exact values.

    ``1 - p_t`` is written as ``y' (1 - p) + (1 - y') p`` (the same number: both are
    ``y' + p - 2 y' p``), a sum of two non-negative terms for labels and probabilities in
    [0, 1], where ``1 - p_t`` would cancel for ``p_t`` near 1; on logits ``1 - p`` is
    ``sigmoid(-z)``, since ``1 - sigmoid(z)`` for large z is below any working precision.
    """
    y = exact_smoothed(y_true, label_smoothing)
    if x.has_nodes(y_pred):  # differentiated: 1/2 + (1 - 2y')(p - 1/2), the same number, whose
        # derivative (1 - 2y') p' is an exact 0 at y' = 1/2, where the two terms below cancel
        half = x.num(0.5)
        p = x.sigmoid(y_pred) if from_logits else y_pred
        if from_logits:  # sigmoid' is an exact 0 at an infinite logit: a constant there, so
            # that an infinite cross-entropy times it gives 0 (the limit), not inf * 0
            p = x.where(x.isfinite(y_pred), p, x.values(p))
        base = half + (1 - 2 * y) * (p - half)
    elif from_logits:
        base = y * x.sigmoid(-y_pred) + (1 - y) * x.sigmoid(y_pred)
    else:
        base = y * (1 - y_pred) + (1 - y) * y_pred
    a, b, bad = exact_surprisals(y_pred, from_logits, epsilon)
    out = x.power(base, x.num(float(gamma))) * exact_cross_entropy(y, 1 - y, a, b, bad)
    if apply_class_balancing:
        pr = _pair(alpha)
        if pr is not None:
            w1, w0 = x.num(pr[0]), x.num(pr[1])
        else:
            w1 = x.num(float(alpha))
            w0 = 1 - w1
        out = (y * w1 + (1 - y) * w0) * out
    return out


def _logit_parts(y_true, z, label_smoothing, epsilon, at_bound):
    """Logit path of ``y' a + (1 - y') b`` with a, b clipped in log space:
    ``(d/dz, d/dy', a, b)``. Inside the clip ``d/dz = sigmoid(z) - y'`` (stable form) and
    ``d/dy' = -z``; a clipped surprisal is constant (its term gives 0, `at_bound` of it on
    the bound) and ``d/dy'`` is the log-odds of the clip bound."""
    terms = label_terms(y_true, label_smoothing)
    with np.errstate(all="ignore"):
        a, b = surprisals(z, True, epsilon)
    gz, gy = logit_residual(z, terms), -z
    iv = clip_interval(epsilon)
    if iv is None:
        return gz, gy, a, b
    lo, top = iv
    with np.errstate(all="ignore"):
        a0, a1 = -np.log1p(-top), -np.log(lo)  # the bounds of a = -log sigmoid(z)
        b0, b1 = -np.log1p(-lo), -np.log(top)
        ar, br = surprisals(z, True, None)  # the clip is decided on the unclipped logs
        ma = _bound_mask((ar > a0) & (ar < a1), (ar == a0) | (ar == a1), at_bound)
        mb = _bound_mask((br > b0) & (br < b1), (br == b0) | (br == b1), at_bound)
        y1 = terms[0] if len(terms) == 1 else sum_k3(list(terms))
        y0 = shifted(1.0, terms)
        split = _masked(-y1 * sigmoid(-z), ma) + _masked(y0 * sigmoid(z), mb)
        both = (ma == 1.0) & (mb == 1.0)
        gz = np.where(both, gz, np.where(np.isnan(z), np.nan, split))
        low, high = ar >= a1, ar <= a0  # sigmoid(z) clipped up to lo, down to 1 - top
        gy = np.where(low, log_odds(np.float64(lo), np.float64(1.0 - lo)),
                      np.where(high, log_odds(np.float64(1.0 - top), np.float64(top)), gy))
    return gz, gy, a, b


def _pow_slope(base: np.ndarray, gamma: float) -> np.ndarray:
    """``gamma base^(gamma - 1)``, 0 for gamma = 0 (the factor is then constant)."""
    if gamma == 0.0:
        return np.zeros(np.shape(base))
    with np.errstate(all="ignore"):
        return gamma * np.power(base, gamma - 1.0)


def _times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a b`` with a zero factor giving 0 against an infinite other one."""
    with np.errstate(all="ignore"):
        return np.where(np.isnan(a) | np.isnan(b), np.nan, np.where((a == 0.0) | (b == 0.0), 0.0, a * b))


def _class_weight(terms: list, y0: np.ndarray, w1: float, w0: float) -> np.ndarray:
    """``w1 y' + w0 (1 - y')`` with one rounding (the products exact, a compensated sum)."""
    pieces = []
    for t in terms:
        pieces += list(two_product(np.full(np.shape(t), w1), t))
    pieces += list(two_product(np.full(np.shape(y0), w0), y0))
    return sum_k3(pieces)


def _logit_fused(y1, y0, d01, z, gx, gl, gamma: float, wt, dw):
    """``(dF/dz, dF/dy')`` of the unclipped logit path with fewer roundings:
    ``W B^(g-1) (g (1 - 2y') sigma'(z) bce + B (sigmoid(z) - y'))`` and
    ``dW B^g bce + W B^(g-1) (g tanh(-z/2) bce + B (-z))``, where, with
    ``e = exp(-|z|)``, ``sigma'(z) = e / (1 + e)^2``, ``B = (y' e + 1 - y') / (1 + e)`` for
    z >= 0 (``(y' + (1 - y') e) / (1 + e)`` below) and ``bce = log1p(e) + (1 - y') z``
    (``log1p(e) - y' z`` below; both parts >= 0). Non-finite where B is 0 or a value is not
    finite (the caller keeps its general form there)."""
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(z))
        d = 1.0 + e
        pos = z >= 0
        big, small = np.where(pos, y0, y1), np.where(pos, y1, y0)
        h, l = two_product(small, e)
        base = ((h + big) + l) / d  # big + small e, the product exact
        dsig = e / (d * d)
        lg = np.log1p(e)
        h, l = two_product(np.where(pos, y0, -y1), z)
        bce = (lg + h) + l
        bg1 = np.power(base, gamma - 1.0)
        gp = wt * bg1 * ((gamma * d01) * (dsig * bce) + base * gx)
        gy = wt * bg1 * (gamma * (np.tanh(-0.5 * z) * bce) + base * gl)
        if np.any(dw):
            gy = gy + dw * (bg1 * base * bce)
        bad = ~(base > 0)
        return np.where(bad, np.nan, gp), np.where(bad, np.nan, gy)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray,
                   apply_class_balancing: bool, alpha, gamma: float, from_logits: bool,
                   label_smoothing, epsilon, at_bound: float = AT_BOUND) -> dict:
    """VJP of :func:`reference`: ``{"y_pred", "y_true"}``.

    With ``B = y' q + (1 - y') p`` (``q = 1 - p``), ``F = W B^g bce``:
    ``dF/dx = W (g B^(g-1) dB/dx bce + B^g dbce/dx)``, ``dB/dp = 1 - 2y'`` (probabilities),
    ``dB/dz = (1 - 2y') p q`` (logits), dbce/dx that of the binary cross-entropy with its clip
    (both paths); ``dF/dy = s (dW/dy' B^g bce + W g B^(g-1) (q - p) bce + W B^g (a - b))``
    with ``q - p = 1 - 2p`` or ``tanh(-z/2)``. For hard labels the terms of each sum
    have one sign; soft labels may make them cancel (the page states the bound).
    """
    y_true, y_pred = np.broadcast_arrays(y_true, y_pred)
    gamma = float(gamma)
    terms = label_terms(y_true, label_smoothing)
    y1 = terms[0] if len(terms) == 1 else sum_k3(list(terms))
    y0 = shifted(1.0, terms)
    d01 = shifted(1.0, terms, 2.0)  # 1 - 2y' = (1 - y') - y'
    with np.errstate(all="ignore"):
        if from_logits:
            p, q = sigmoid(y_pred), sigmoid(-y_pred)
            gx, gl, a, b = _logit_parts(y_true, y_pred, label_smoothing, epsilon, at_bound)
            dbase = d01 * (p * q)
            qmp = np.tanh(-0.5 * y_pred)  # sigmoid(-z) - sigmoid(z)
        else:
            p, q = y_pred, 1.0 - y_pred
            gx, gl, a, b = prob_parts(y_true, y_pred, label_smoothing, epsilon, at_bound)
            dbase = d01
            qmp = 1.0 - 2.0 * y_pred
        bce = cross_entropy(y1, y0, a, b)
        base = y1 * q + y0 * p
        bg, slope = np.power(base, gamma), _pow_slope(base, gamma)
        gp = _times(slope, _times(dbase, bce)) + _times(bg, gx)
        gy = _times(slope, _times(qmp, bce)) + _times(bg, gl)
        wt, dw = 1.0, 0.0
        if apply_class_balancing:
            w1, w0 = _weights(alpha)
            wt, dw = _class_weight(terms, y0, w1, w0), w1 - w0
            gp = wt * gp
            gy = wt * gy + dw * _times(bg, bce)
        if from_logits and epsilon is None:
            # fewer roundings on the logit path: see _logit_fused
            fp, fy = _logit_fused(y1, y0, d01, y_pred, gx, gl, gamma, wt, dw)
            gp = np.where(np.isfinite(fp), fp, gp)
            gy = np.where(np.isfinite(fy), fy, gy)
        gy = scaled(gy, label_smoothing)
    return {"y_pred": cot * gp, "y_true": cot * gy}


LOSS = register(LossDef(
    name="binary_focal_crossentropy",
    summary="(1 - p_t)^gamma * bce [* alpha_t]; p_t from the unclipped p; mean over the last axis",
    stage2="mean",
    params={
        "apply_class_balancing": Param(False, "bool: multiply by alpha y' + (1 - alpha)(1 - y')",
                                       check_bool),
        "alpha": Param(0.25, "finite float (class-1 weight; class 0 gets 1 - alpha), or a pair "
                             "(w1, w0); used only with apply_class_balancing", _check_alpha),
        "gamma": Param(2.0, "finite float (focusing exponent)", _finite_float),
        "from_logits": FROM_LOGITS,
        "label_smoothing": LABEL_SMOOTHING,
        "epsilon": EPSILON,
    },
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
