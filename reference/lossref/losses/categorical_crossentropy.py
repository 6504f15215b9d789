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
            ls = x.num(float(label_smoothing))
            return y * (1 - ls) + ls / y.shape[-1]
        return y * (1.0 - label_smoothing) + label_smoothing / y.shape[-1]
    scale, offset = (float(v) for v in label_smoothing)
    if y.dtype == object:
        return y * x.num(scale) + x.num(offset)
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
#
# Each row gives ``(p, 1 - p, log p, bad)``: ``bad`` is the condition (see
# lossref.oracle.ops) where ``log p`` is NaN rather than a number or -inf. The ball backend
# has no -inf (``log 0`` is a NaN ball, which ops.xmul_pole takes for an infinity against a zero
# label), so a real NaN has to be told apart where it is known.


def _item(v):
    """The element of a 0-d object array (an op's result on one number)."""
    return v[()] if isinstance(v, np.ndarray) else v


def _all_finite(row: np.ndarray) -> bool:
    """Whether every entry is known to be finite (on balls, a NaN ball is not known)."""
    return np.asarray(x.all_of(x.isfinite(row)), dtype=object).item() == True  # noqa: E712


def _normalize_row(row: np.ndarray, bounds):
    """Exact ``q = x / sum(x)`` and ``1 - q`` as rationals, the clip exact on them, then logs."""
    if _all_finite(row):
        fr = [x.to_fraction(v) for v in row]
        s = sum(fr)
        if s != 0:
            q = [f / s for f in fr]
            if bounds is not None:  # the exact clip of the exact ratios
                lo, hi = Fraction(bounds[0]), 1 - Fraction(bounds[1])
                q = [min(max(v, lo), hi) for v in q]
            qe = np.array([x.from_fraction(v) for v in q], dtype=object)
            ce = np.array([x.from_fraction(1 - v) for v in q], dtype=object)
            # above 1/2 the log of the exact complement: no rounding of q near 1; log 0 = -inf
            big = np.array([v > Fraction(1, 2) for v in q], dtype=bool)
            logq = x.where(big, x.log1p(-ce), x.log(qe))
            return qe, ce, logq, np.array([v < 0 for v in q], dtype=bool)
    # a zero sum or entries not finite: IEEE division (x / 0 = ±inf or NaN), clip, log
    # (on balls every part is a NaN ball here: such rows are left to the mpmath path)
    s = x.fsum(row)
    q = x.div(row, np.full(len(row), s, dtype=object))
    if bounds is not None:
        lo, top = x.num(bounds[0]), x.num(bounds[1])
        low, high = x.lt(q, lo), x.gt(q, 1 - top)
        q = x.where(low, lo, x.where(high, 1 - top, q))
        logq = x.where(high, x.log1p(-top), x.log(q))
    else:
        logq = x.log(q)
    return q, 1 - q, logq, x.isnan(logq)


def _normalize_regular_rows(rows: np.ndarray, bounds, out) -> np.ndarray:
    """The rows of finite entries with a nonzero sum, all at once: ``q = x / S``,
    ``1 - q = (S - x) / S`` (``S`` a sum of the inputs: ``S - x`` has no rounding of its
    own), the clip (continuous: where a ball cannot tell which side of a bound q is on,
    both sides give the same value), ``log q`` or, above 1/2, ``log1p(-(1 - q))``.
    Fills `out` on those rows and returns them as a mask; the others (IEEE cases) are
    the caller's."""
    s = x.fsum(rows, axis=-1)
    done = _regular(rows, x.lnot(x.eq(s, 0)))
    if not done.any():
        return done
    r, sd = rows[done], s[done][:, None]
    q, c = x.div(r, sd), x.div(sd - r, sd)
    if bounds is not None:  # clip to [lo, 1 - top], both ends exact
        lo, top = x.num(bounds[0]), x.num(bounds[1])
        low, high = x.lt(q, lo), x.gt(q, 1 - top)
        c = x.where(low, 1 - lo, x.where(high, top, c))
        q = x.where(low, lo, x.where(high, 1 - top, q))
    logq = x.where(x.gt(q, x.num(0.5)), x.log1p(-c), x.log(q))
    for o, v in zip(out, (q, c, logq, x.lt(q, 0))):
        o[done] = v
    return done


def _regular(rows: np.ndarray, extra=None) -> np.ndarray:
    """Rows whose entries are all known to be finite (and `extra` holds), as a mask."""
    ok = np.asarray(x.all_of(x.isfinite(rows), -1), dtype=object) == True  # noqa: E712  (None: not known)
    if extra is not None:
        ok &= np.asarray(extra, dtype=object) == True  # noqa: E712
    return ok


def _softmax_regular_rows(rows: np.ndarray, _bounds, out) -> np.ndarray:
    """:func:`_softmax_row` on every row of finite logits at once (the first largest entry
    of each row found exactly: the logits are inputs)."""
    done = _regular(rows)
    if not done.any():
        return done
    r = rows[done]
    m = r[:, 0]
    for j in range(1, r.shape[1]):
        m = x.maximum(m, r[:, j])
    k = np.argmax(x.decide(x.eq(r, m[:, None])), axis=-1)  # the first largest entry
    first = np.arange(r.shape[1]) == k[:, None]
    d = r - m[:, None]
    e = x.exp(d)
    rest = x.fsum(x.where(first, x.num(0), e), axis=-1)
    t = 1 + rest
    p = x.div(e, t[:, None])
    c = x.where(first, x.div(rest, t)[:, None], 1 - p)  # the dominant class's complement
    logp = d - x.log1p(rest)[:, None]
    for o, v in zip(out, (p, c, logp, x.isnan(logp))):
        o[done] = v
    return done


def _softmax_row(row: np.ndarray):
    """``softmax`` literal with IEEE semantics: NaN row for NaN or all ``-inf`` entries;
    with ``+inf`` entries, NaN there (inf/inf) and probability 0 elsewhere.

    The largest entry is subtracted exactly (``exp`` of a non-positive number, a sum
    ``1 + rest`` of positive terms, no cancellation); on balls a row with an entry that is
    not known to be finite is all NaN balls, left to the mpmath path.
    """
    n = len(row)
    nan = np.full(n, x.NAN, dtype=object)
    if any(f is None for f in x.isfinite(row).tolist()):
        return nan, nan, nan, x.isnan(nan)
    if x.decide(x.isnan(row)).any():
        return nan, nan, nan, np.ones(n, dtype=bool)
    k = 0
    for i in range(1, n):  # the first largest entry (inputs: the comparisons decide)
        if x.decide(x.gt(row[i], row[k])):
            k = i
    m = row[k]
    if not x.decide(x.isfinite(row[k:k + 1]))[0]:
        if not x.decide(x.gt(row[k:k + 1], x.num(0)))[0]:  # every entry -inf
            return nan, nan, nan, np.ones(n, dtype=bool)
        at_inf = x.decide(x.land(x.lnot(x.isfinite(row)), x.gt(row, x.num(0))))
        p = x.where(at_inf, x.NAN, x.num(0))
        return p, 1 - p, x.where(at_inf, x.NAN, -x.INF), at_inf
    d = row - m
    e = x.exp(d)
    rest = _item(x.fsum(np.delete(e, k)))
    t = 1 + rest
    p = x.div(e, np.full(n, t, dtype=object))
    c = 1 - p
    c[k] = _item(x.div(rest, t))  # the dominant class's complement, formed from the other terms
    logp = d - _item(x.log1p(rest))
    return p, c, logp, x.isnan(logp)


def exact_class_terms(y_pred: np.ndarray, from_logits: bool, bounds: Optional[Tuple[float, float]]):
    """Object arrays ``(p, 1 - p, log p, bad)`` along the last axis at the working
    precision; ``bad``: where ``log p`` is NaN (a condition, three-valued on balls).

    Probabilities: the ratio and the clip are exact (rational arithmetic), only the log
    rounds. Logits: softmax with the maximum subtracted, then clipped if `bounds` is given.
    """
    y_pred = x.lift(y_pred)
    shape = y_pred.shape
    n = shape[-1] if y_pred.ndim else 1
    rows = y_pred.reshape(-1, n)
    out = [np.empty(rows.shape, dtype=object) for _ in range(4)]
    todo = range(len(rows))
    if rows.size:
        done = (_softmax_regular_rows if from_logits else _normalize_regular_rows)(rows, bounds, out)
        todo = np.flatnonzero(~done)
    for i in todo:  # the oracle may loop: it is the slow, literal definition
        parts = _softmax_row(rows[i]) if from_logits else _normalize_row(rows[i], bounds)
        for o, v in zip(out, parts):
            o[i, :] = v
    p, c, logp, bad = (o.reshape(shape) for o in out)
    if from_logits and bounds is not None:  # p > 1 - top decided on the complement
        lo, top = x.num(bounds[0]), x.num(bounds[1])
        low, high = x.lt(p, lo), x.lt(c, top)
        logp = x.where(low, x.log(lo), x.where(high, x.log1p(-top), logp))
        c = x.where(low, 1 - lo, x.where(high, top, c))
        p = x.where(low, lo, x.where(high, 1 - top, p))
        bad = x.isnan(logp)
    return p, c, logp, bad


def exact_class_parts(y_pred: np.ndarray, from_logits: bool, bounds: Optional[Tuple[float, float]]):
    """``(p, 1 - p, log p)`` of :func:`exact_class_terms`."""
    return exact_class_terms(y_pred, from_logits, bounds)[:3]


def oracle(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, label_smoothing: float,
           epsilon) -> np.ndarray:
    """The definition on exact values: ``-y'_i log p_i``."""
    y = smooth_labels(y_true, label_smoothing)
    _, _, logp, bad = exact_class_terms(y_pred, from_logits,
                                        None if from_logits else clip_bounds_of(epsilon))
    return x.where(bad, x.NAN, -x.xmul_pole(y, logp))


LOSS = register(LossDef(
    name="categorical_crossentropy",
    summary="-sum_i y_i log p_i over the last axis; p = softmax(logits) or clip(p / sum p)",
    stage2="sum",
    params={"from_logits": FROM_LOGITS, "label_smoothing": LABEL_SMOOTHING, "epsilon": EPSILON},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
