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

from ..numerics import clip_parts, log_softmax, normalize_parts, sum2, two_sum, xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register
from .binary_crossentropy import (AT_BOUND, _bound_mask, check_bool, check_clip,
                                  check_label_smoothing, scaled)

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
    """Exact ``q = x / sum(x)`` and ``1 - q`` as rationals, the clip exact on them, then logs.
    Differentiated (Nodes in `row`), the op-set path below: the same definition."""
    if _all_finite(row) and not x.has_nodes(row):
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
    d = r - x.values(m)[:, None]  # a constant shift (the result does not depend on it)
    e = x.exp(d)
    rest = x.fsum(x.where(first, x.num(0), e), axis=-1)
    # the dominant term exp(d_k) is exactly 1; it enters as 1 + (exp(d_k) - 1), whose value
    # is exactly that 1 but whose derivative is the dominant logit's own
    ek = x.fsum(x.where(first, e, x.num(0)), axis=-1) - 1
    t = 1 + (rest + ek)
    p = x.div(e, t[:, None])
    c = x.where(first, x.div(rest, t)[:, None], 1 - p)  # the dominant class's complement
    logp = d - x.log1p(rest + ek)[:, None]
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
    # NaN values that depend on the whole row: their derivatives are NaN too (on balls,
    # where a row is not known to be finite, that leaves the gradient to the mpmath path)
    nan = np.full(n, _item(x.fsum(row)), dtype=object) * x.NAN
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
        p = x.where(at_inf, nan, x.num(0))
        # log p = z - logsumexp(z) = -inf elsewhere, differentiated as that difference:
        # d logsumexp / dz is softmax(z), 0 at the finite entries and inf/inf at +inf ones
        lse = x.attach(x.INF, [(row, x.where(at_inf, x.NAN, x.num(0)))], axis=-1)
        return p, 1 - p, x.where(at_inf, nan, row - lse), at_inf
    d = row - x.value_of(m)  # a constant shift (the result does not depend on it)
    e = x.exp(d)
    rest = _item(x.fsum(np.delete(e, k)))
    ek = e[k] - 1  # exactly 0, with the dominant logit's derivative (see above)
    t = 1 + (rest + ek)
    p = x.div(e, np.full(n, t, dtype=object))
    c = 1 - p
    c[k] = _item(x.div(rest, t))  # the dominant class's complement, formed from the other terms
    logp = d - _item(x.log1p(rest + ek))
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
    return x.where(bad, logp, -x.xmul_pole(y, logp))  # NaN: logp itself, with its derivatives


# --- gradients -------------------------------------------------------------------------------------
#
# Every loss of the family is ``sum_i f_i(p_i)`` over a row with ``p = clip(q)`` and ``q`` the
# softmax of the logits or the renormalised probabilities: the row is coupled. With
# ``w_i = q_i df/dq_i`` (cotangent and clip mask included), the chain rule through q gives
#
# * logits: ``g_j = w_j - q_j W``, ``W = sum_i w_i``;
# * probabilities (``q = x / S``): ``g_j = w_j / x_j - W / S``.
#
# Near the optimum of a dominant class these cancel (``1 - 1``): for the row's largest entry
# (the only one that can exceed 1/2) ``W = w_j + R_j`` is split and the complement
# ``1 - q_j`` enters, accurate from the softmax's own sum (or the compensated row sum):
# ``g_j = w_j (1 - q_j) - q_j R_j``, and ``w_j (1 - q_j) / x_j - R_j / S``.


def softmax_parts(z: np.ndarray):
    """``(q, 1 - q, top)`` of ``q = softmax(z)`` over the last axis, each entry to a few ulps:
    ``exp(z_i - m)`` with ``z_i - m`` carried exactly as ``d + e`` (``E + E e``: exp does not
    amplify the rounding of the difference, as ``exp(log_softmax)`` would by ``|log q| u``),
    over ``1 + rest``; the largest entry (index `top`, kept as a trailing axis of 1) is
    ``1 / (1 + rest)`` with complement ``rest / (1 + rest)``. Rows with a non-finite
    maximum follow :func:`~lossref.numerics.log_softmax` (``exp`` of it)."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        finite = np.isfinite(m)
        d, e = two_sum(z, -np.where(finite, m, 0.0))
        e = np.where(np.isfinite(e), e, 0.0)
        ex = np.exp(d)
        ex = ex + ex * e
        top = np.argmax(z, axis=-1)[..., None]
        np.put_along_axis(ex, top, 0.0, axis=-1)
        rest = sum2(ex)[..., None]
        t = 1.0 + rest
        q = ex / t
        c = 1.0 - q
        np.put_along_axis(q, top, 1.0 / t, axis=-1)
        np.put_along_axis(c, top, rest / t, axis=-1)
        if not np.all(finite):
            q2 = np.exp(log_softmax(z))
            q = np.where(finite, q, q2)
            c = np.where(finite, c, 1.0 - q2)
    return q, c, top


def row_vjp(w: np.ndarray, q: np.ndarray, c: np.ndarray, top: np.ndarray,
            x: Optional[np.ndarray] = None) -> np.ndarray:
    """The chain rule through ``q = softmax(z)`` (`x` None) or ``q = x / sum(x)`` of the
    row weights ``w_i = q_i df/dq_i`` (see the comment above); `c` = 1 - q, `top` the
    index of each row's largest entry (a trailing axis of 1)."""
    with np.errstate(all="ignore"):
        W = sum2(w)[..., None]
        wr = w.copy()
        np.put_along_axis(wr, top, 0.0, axis=-1)
        R = sum2(wr)[..., None]
        wt = np.take_along_axis(w, top, axis=-1)
        ct = np.take_along_axis(c, top, axis=-1)
        if x is None:
            g = w - q * W
            gt = wt * ct - np.take_along_axis(q, top, axis=-1) * R
        else:
            S = sum2(x)[..., None]
            # no weight on the row (every class clipped or unlabelled) is no gradient, also
            # for a row that sums to 0 (0 / 0); a NaN sum stays NaN
            none = ~np.isnan(S)
            WS = np.where((W == 0.0) & none, 0.0, W / S)
            RS = np.where((R == 0.0) & none, 0.0, R / S)
            g = np.where(w == 0.0, 0.0, w / x) - WS
            xt = np.take_along_axis(x, top, axis=-1)
            gt = np.where(wt == 0.0, 0.0, (wt * ct) / xt) - RS
        np.put_along_axis(g, top, gt, axis=-1)
        return np.where(np.isnan(W), np.nan, g)


def grad_parts(y_pred: np.ndarray, from_logits: bool, bounds, at_bound: float = AT_BOUND):
    """``(p, 1 - p, log p, mask, q, 1 - q, top)`` for the gradients of the family: the
    clipped triple and the clip mask (1 inside, 0 clipped, `at_bound` on a bound) beside
    the unclipped ``q``, its complement and each row's largest entry."""
    if from_logits:
        q, cq, top = softmax_parts(y_pred)
        logq = log_softmax(y_pred)
    else:
        q, cq, logq = normalize_parts(y_pred)
        top = np.argmax(y_pred, axis=-1)[..., None]
    p, c, logp, mask = q, cq, logq, np.ones(q.shape)
    if bounds is not None:
        lo, topc = bounds
        p, c, logp = clip_parts(q, cq, logq, lo, topc)
        mask = _bound_mask((q > lo) & (cq > topc), (q == lo) | (cq == topc), at_bound)
    return p, c, logp, mask, q, cq, top


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, from_logits: bool,
                   label_smoothing, epsilon, at_bound: float = AT_BOUND) -> dict:
    """VJP of :func:`reference` (coupled over the class axis): ``{"y_pred", "y_true"}``.

    ``w_i = -cot_i y'_i`` (0 where the class is clipped, `at_bound` of it on a bound), then
    :func:`row_vjp`: logits ``softmax(z) W - cot y'`` with the dominant class from its
    complement; probabilities ``-cot_j y'_j / x_j + W / S``. With respect to y:
    ``-cot s log p``.
    """
    y = smooth_labels(y_true, label_smoothing)
    bounds = None if from_logits else clip_bounds_of(epsilon)
    _, _, logp, mask, q, cq, top = grad_parts(y_pred, from_logits, bounds, at_bound)
    with np.errstate(all="ignore"):
        w = np.where(mask == 0.0, 0.0, -xmul(cot * mask, y))
        gp = row_vjp(np.broadcast_to(w, q.shape).copy(), q, cq, top, None if from_logits else y_pred)
        gy = -cot * scaled(logp, label_smoothing)
        if not from_logits:
            gp = nan_rows(gp, reference(y_true, y_pred, False, label_smoothing, epsilon))
    return {"y_pred": gp, "y_true": gy}


def nan_rows(gp: np.ndarray, value: np.ndarray) -> np.ndarray:
    """`gp` with NaN over each row whose value (elementwise terms `value`, summed over the
    last axis) is NaN: a probability row holding an infinity normalises to NaN, a NaN value
    whose clipped classes would otherwise pass a gradient of 0."""
    bad = np.isnan(np.sum(value, axis=-1, keepdims=True))
    return np.where(bad, np.nan, gp) if np.any(bad) else gp


LOSS = register(LossDef(
    name="categorical_crossentropy",
    summary="-sum_i y_i log p_i over the last axis; p = softmax(logits) or clip(p / sum p)",
    stage2="sum",
    params={"from_logits": FROM_LOGITS, "label_smoothing": LABEL_SMOOTHING, "epsilon": EPSILON},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
