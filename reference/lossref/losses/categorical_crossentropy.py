"""Categorical cross-entropy. Spec: spec/losses/categorical_crossentropy.md.

``-sum_i y_i log p_i`` over the class axis (the last one), where ``p`` is either
``softmax(y_pred)`` (``from_logits=True``) or ``clip(y_pred / sum(y_pred), lo, hi)``:
probabilities are renormalised and then clipped, as Keras does. Labels may be smoothed,
``y' = y (1 - ls) + ls / K`` with K the size of the class axis. ``0 log 0 = 0``.

The class-probability helpers of this module (:func:`class_parts` for the reference,
:func:`exact_class_parts` for the oracle, :data:`EPSILON` and :func:`clip_bounds_of`)
are shared with the focal and the sparse categorical cross-entropies.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional, Tuple

import mpmath
import numpy as np

from ..numerics import clip_parts, log_softmax, normalize_parts, xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .binary_crossentropy import check_bool, check_clip, check_label_smoothing

# --- parameters shared by the categorical family -------------------------------------------------


EPSILON = Param(1e-7, "None (no clip), eps in [0, 1/2] (clip p to [eps, 1 - eps], both exact), "
                "or a pair (lo, hi) with 0 <= lo <= 1/2 <= hi <= 1", check_clip)
FROM_LOGITS = Param(False, "bool: y_pred holds logits (p = softmax) or probabilities", check_bool)
#: ``ls`` gives ``y' = y (1 - ls) + ls / K`` (K: size of the class axis); a pair
#: ``(s, h)`` gives ``y' = s y + h`` (the Keras dialect passes its constants so).
LABEL_SMOOTHING = Param(0.0, "float ls in [0, 1] (y' = (1 - ls) y + ls/K, K classes), or a pair "
                        "(s, h): y' = s y + h", check_label_smoothing)


def clip_bounds_of(epsilon) -> Optional[Tuple[float, float]]:
    """``(lo, top)`` for an `epsilon` parameter: the clip interval is ``[lo, 1 - top]``
    exactly (the upper bound is carried by its complement, exact for ``eps`` and, by
    Sterbenz, for a pair's ``hi >= 1/2``); None: no clip."""
    if epsilon is None:
        return None
    if is_real(epsilon):
        return float(epsilon), float(epsilon)
    return float(epsilon[0]), 1.0 - float(epsilon[1])


def smooth_labels(y: np.ndarray, label_smoothing) -> np.ndarray:
    """``y (1 - ls) + ls / K`` (K: size of the last axis) or ``y scale + offset`` for a
    pair; float64 arrays, or object arrays (then the constants are taken exactly)."""
    if not isinstance(label_smoothing, (tuple, list)):
        if not label_smoothing:
            return y
        if y.dtype == object:
            ls = mpmath.mpf(float(label_smoothing))
            return y * (1 - ls) + ls / y.shape[-1]
        return y * (1.0 - label_smoothing) + label_smoothing / y.shape[-1]
    scale, offset = (float(v) for v in label_smoothing)
    if y.dtype == object:
        return y * mpmath.mpf(scale) + mpmath.mpf(offset)
    return y * scale + offset


# --- reference: class probabilities as (p, 1 - p, log p) -----------------------------------------


def class_parts(y_pred: np.ndarray, from_logits: bool, bounds: Optional[Tuple[float, float]],
                at: Optional[np.ndarray] = None, logp_only: bool = False):
    """``(p, 1 - p, log p)`` of the class probabilities along the last axis, in float64.

    Logits: :func:`log_softmax`, then ``1 - p = -expm1(log p)`` (the complement of p near
    1 without cancellation). Probabilities: renormalised with a compensated sum
    (:func:`~lossref.numerics.normalize_parts`). Then, unless `bounds` (``(lo, top)``,
    see :func:`clip_bounds_of`) is None, clipped to ``[lo, 1 - top]`` on all three.

    `at` (integers, y_pred's shape without the class axis) asks for class ``at`` of each
    row only: the parts then have the shape of `at`. With `logp_only`, ``p`` and ``1 - p``
    of logits are not formed (None) unless the clip needs them.
    """
    if from_logits:
        logp = log_softmax(y_pred)
        if at is not None:
            logp = np.take_along_axis(logp, np.asarray(at)[..., None], axis=-1)[..., 0]
        if logp_only and bounds is None:
            return None, None, logp
        with np.errstate(all="ignore"):
            p, c = np.exp(logp), -np.expm1(logp)
    else:
        p, c, logp = normalize_parts(y_pred, at=at)
    if bounds is not None:
        p, c, logp = clip_parts(p, c, logp, *bounds)
    return p, c, logp


def reference(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, label_smoothing: float,
              epsilon) -> np.ndarray:
    """Elementwise ``-y'_i log p_i`` in float64 (summed over the last axis by stage 2)."""
    y = smooth_labels(y_true, label_smoothing)
    _, _, logp = class_parts(y_pred, from_logits, None if from_logits else clip_bounds_of(epsilon),
                             logp_only=True)
    return -xmul(y, logp)


# --- oracle: the same definitions on exact values ------------------------------------------------


def _normalize_row(row, bounds):
    """Exact ``q = x / sum(x)`` and ``1 - q`` as rationals, the clip exact on them, then logs."""
    n = len(row)
    if all(mpmath.isfinite(v) for v in row):
        fr = [x.to_fraction(v) for v in row]
        s = sum(fr)
        if s != 0:
            q = [f / s for f in fr]
            if bounds is not None:  # the exact clip of the exact ratios
                lo, hi = Fraction(bounds[0]), 1 - Fraction(bounds[1])
                q = [min(max(v, lo), hi) for v in q]
            c = [1 - v for v in q]
            logq = []
            for qi, ci in zip(q, c):
                if qi <= 0:
                    logq.append(-x.INF if qi == 0 else x.NAN)
                elif qi > Fraction(1, 2):  # log of the exact complement: no rounding of q near 1
                    logq.append(mpmath.log1p(-x.from_fraction(ci)))
                else:
                    logq.append(mpmath.log(x.from_fraction(qi)))
            return [x.from_fraction(v) for v in q], [x.from_fraction(v) for v in c], logq
    # a zero sum or non-finite entries: IEEE division (x / 0 = ±inf or NaN), clip, log
    r = np.asarray(row, dtype=object)
    s = x.fsum(r)
    q = x.div(r, np.full(n, s, dtype=object))
    if bounds is not None:
        lo, top = mpmath.mpf(bounds[0]), mpmath.mpf(bounds[1])
        low, high = q < lo, q > 1 - top
        q = x.where(low, lo, x.where(high, 1 - top, q))
        return list(q), list(1 - q), list(x.where(high, mpmath.log1p(-top), x.log(q)))
    return list(q), list(1 - q), list(x.log(q))


def _softmax_row(row):
    """``softmax`` literal with IEEE semantics: NaN row for NaN or all ``-inf`` entries;
    with ``+inf`` entries, NaN there (inf/inf) and probability 0 elsewhere."""
    n = len(row)
    nan = ([x.NAN] * n,) * 3
    if any(mpmath.isnan(v) for v in row):
        return nan
    m = max(row)
    if m == -x.INF:
        return nan
    if m == x.INF:
        p = [x.NAN if v == x.INF else mpmath.mpf(0) for v in row]
        return p, [1 - v for v in p], [x.NAN if v == x.INF else -x.INF for v in row]
    e = [mpmath.exp(v - m) for v in row]  # the shift by the maximum changes nothing exactly
    k = row.index(m)
    rest = mpmath.fsum(e[:k] + e[k + 1:])
    t = 1 + rest
    p = [v / t for v in e]
    c = [1 - v for v in p]
    c[k] = rest / t  # the dominant class's complement, formed from the other terms
    logt = mpmath.log1p(rest)
    logp = [(v - m) - logt for v in row]
    return p, c, logp


def exact_class_parts(y_pred: np.ndarray, from_logits: bool, bounds: Optional[Tuple[float, float]]):
    """Object arrays ``(p, 1 - p, log p)`` along the last axis at the working precision.

    Probabilities: the ratio and the clip are exact (rational arithmetic), only the log
    rounds. Logits: softmax evaluated in mpmath, then clipped if `bounds` is given.
    """
    y_pred = np.asarray(y_pred, dtype=object)
    shape = y_pred.shape
    n = shape[-1] if y_pred.ndim else 1
    rows = y_pred.reshape(-1, n)
    out = [np.empty(rows.shape, dtype=object) for _ in range(3)]
    for i, row in enumerate(rows):  # the oracle may loop: it is the slow, literal definition
        row = list(row)
        parts = _softmax_row(row) if from_logits else _normalize_row(row, bounds)
        for o, v in zip(out, parts):
            o[i, :] = v
    p, c, logp = (o.reshape(shape) for o in out)
    if from_logits and bounds is not None:  # p > 1 - top decided on the complement
        lo, top = mpmath.mpf(bounds[0]), mpmath.mpf(bounds[1])
        low, high = p < lo, c < top
        logp = x.where(low, mpmath.log(lo), x.where(high, mpmath.log1p(-top), logp))
        c = x.where(low, 1 - lo, x.where(high, top, c))
        p = x.where(low, lo, x.where(high, 1 - top, p))
    return p, c, logp


def oracle(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, label_smoothing: float,
           epsilon) -> np.ndarray:
    """The definition on exact values: ``-y'_i log p_i``."""
    y = smooth_labels(y_true, label_smoothing)
    _, _, logp = exact_class_parts(y_pred, from_logits,
                                   None if from_logits else clip_bounds_of(epsilon))
    return -x.xmul(y, logp)


LOSS = register(LossDef(
    name="categorical_crossentropy",
    summary="-sum_i y_i log p_i over the last axis; p = softmax(logits) or clip(p / sum p)",
    stage2="sum",
    params={"from_logits": FROM_LOGITS, "label_smoothing": LABEL_SMOOTHING, "epsilon": EPSILON},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
