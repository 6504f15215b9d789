"""Triplet margin loss. Spec: spec/losses/triplet_margin.md.

Per sample, with anchor ``a = y_pred``, positive ``b = y_true`` and ``n = negative`` (an
array *parameter* of the inputs' shape: the catalogue's API has two inputs), all of shape
``(..., D)``: ``max(0, margin + d(a, b) - d(a, n))`` with ``d(u, v) = ||u - v + eps||_p``
over the last axis; ``swap`` replaces ``d(a, n)`` by ``min(d(a, n), d(b, n))``. PyTorch:
``torch.nn.functional.triplet_margin_loss`` (:mod:`lossref.torch.nn._triplet`).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..numerics import sum2_parts, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, is_real, param_array, real_array_error, register
from .binary_crossentropy import check_bool

#: a row whose distances reach 2**_BIG is combined scaled by a power of two (no overflow)
_BIG = 1000


def _eps3(eps) -> Tuple[float, float, float]:
    """`eps` of the three distances ``d(a, b)``, ``d(a, n)``, ``d(b, n)``: one number, or a
    triple (a dialect whose distances hold eps in different formats)."""
    return tuple(eps) if isinstance(eps, (tuple, list)) else (eps, eps, eps)


# --- reference ---------------------------------------------------------------------------------


def _difference(u: np.ndarray, v: np.ndarray, eps: float):
    """``u - v + eps`` as ``hi + lo``, exact up to a relative ``O(u**2)``.

    The exact sum is ``s + e1 + e2`` (two TwoSums); the two small parts are added to ``s``
    with their errors carried, so ``hi`` is the difference rounded about once and ``lo``
    keeps what a later cancellation of the distances needs.
    """
    s, e1 = two_sum(u, -v)
    s, e2 = two_sum(s, np.float64(eps))
    t, t_err = two_sum(e1, e2)
    hi, lo = two_sum(s, t)
    lo = lo + t_err
    bad = ~np.isfinite(hi)
    if np.any(bad):  # an infinite or NaN operand, or overflow: IEEE's value, torch's order
        with np.errstate(invalid="ignore", over="ignore"):
            hi, lo = np.where(bad, (u - v) + eps, hi), np.where(bad, 0.0, lo)
    return hi, lo


def _norm(hi: np.ndarray, lo: np.ndarray, p: float):
    """``||hi + lo||_p`` over the last axis as ``(h, l, e)``: the norm is ``(h + l) 2**e``.

    Rows are scaled by ``2**-e`` (their largest |entry| in [1/2, 1)), so neither powers nor
    sums overflow or underflow. p = 1 and 2 are summed in double-double (exact squares,
    :func:`sum2_parts`, a corrected square root), p = inf is the largest magnitude itself:
    ``h + l`` is then within ``O(u**2)`` of the norm. Other p: ``M (sum (|w| / M)**p)**(1/p)``
    with ``M`` the largest magnitude (``l = 0``; a few u). Rows with an infinite or NaN
    entry get ``h`` = IEEE's norm of ``hi`` (inf or NaN), ``l = 0``, ``e = 0``.
    """
    mag = np.abs(hi)
    finite = np.all(np.isfinite(hi), axis=-1)
    top = np.max(np.where(np.isfinite(mag), mag, 0.0), axis=-1, initial=0.0)
    e = np.where(finite & (top > 0), np.frexp(top)[1], 0)
    col = e[..., None]
    sl = np.where(np.isfinite(lo), lo, 0.0) * np.sign(hi)  # |w| = |hi| + sl
    with np.errstate(all="ignore"):
        if p == 2:
            w, wl = np.ldexp(hi, -col), np.ldexp(lo, -col)
            sq, sq_lo = two_product(w, w)
            s, s_lo = sum2_parts(sq, lo=sq_lo + 2.0 * w * wl)
            h = np.sqrt(s)
            hh, hl = two_product(h, h)
            l = np.where(h > 0, (((s - hh) - hl) + s_lo) / (2.0 * h), 0.0)
        elif p == 1:
            h, l = sum2_parts(np.ldexp(mag, -col), lo=np.ldexp(sl, -col))
        elif p == math.inf:
            h = np.ldexp(top, -e)
            l = np.max(np.where(mag == top[..., None], np.ldexp(sl, -col), -np.inf), axis=-1, initial=-np.inf)
            l = np.where(np.isfinite(l), l, 0.0)
        else:
            m = np.where(top > 0, top, 1.0)[..., None]
            s = np.sum(np.power((mag + sl) / m, p), axis=-1)
            h, l = np.ldexp(m[..., 0], -e) * np.power(s, 1.0 / p), np.zeros_like(s)
    if not np.all(finite):  # rare: IEEE's inf or NaN for rows with such entries
        plain = np.max(mag, axis=-1, initial=0.0) if p == math.inf else np.sum(mag ** p, axis=-1) ** (1.0 / p)
        plain = np.where(np.any(np.isnan(hi), axis=-1), np.nan, plain)
        h, l, e = np.where(finite, h, plain), np.where(finite, l, 0.0), np.where(finite, e, 0)
    return h, l, e


def _distance(u: np.ndarray, v: np.ndarray, eps: float, p: float):
    """``||u - v + eps||_p`` over the last axis as ``(h, l, e)`` (see :func:`_norm`).

    A difference that overflows float64 although ``u`` and ``v`` are finite is formed from
    their exact halves and its exponent raised by one.
    """
    hi, lo = _difference(u, v, eps)
    over = np.isinf(hi) & np.isfinite(u) & np.isfinite(v)
    if not np.any(over):
        return _norm(hi, lo, p)
    rows = np.any(over, axis=-1)  # rare: such rows are formed halved
    hh, hl = _difference(0.5 * u, 0.5 * v, 0.5 * eps)
    h, l, e = _norm(np.where(rows[..., None], hh, hi), np.where(rows[..., None], hl, lo), p)
    return h, l, np.where(rows, e + 1, e)


def reference(y_true: np.ndarray, y_pred: np.ndarray, negative, margin: float = 1.0, p: float = 2,
              eps=1e-6, swap: bool = False) -> np.ndarray:
    """Per-sample value in float64.

    The distances come as double-double values with their own exponents
    (:func:`_distance`); ``margin + d(a, b) - d(a, n)`` is then summed from their parts
    with the errors carried, so where the distances cancel only their own errors remain
    (``O(u**2)`` of them for p in {1, 2, inf}, a few u otherwise). Rows whose
    distances reach 2**1000 are compared scaled down by a power of two.
    """
    a, b = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    n = np.broadcast_to(np.asarray(param_array("triplet_margin", "negative", negative, a.shape), np.float64), a.shape)
    e_ab, e_an, e_bn = _eps3(eps)
    dp = _distance(a, b, e_ab, p)
    dn = _distance(a, n, e_an, p)
    if swap:
        ds = _distance(b, n, e_bn, p)
        with np.errstate(invalid="ignore"):
            # the smaller of two (h, l, e), compared at a common exponent (no overflow); NaN
            # wins, as in torch.minimum
            top = np.maximum(ds[2], dn[2])
            vs, vn = np.ldexp(ds[0], ds[2] - top), np.ldexp(dn[0], dn[2] - top)
            ls, ln = np.ldexp(ds[1], ds[2] - top), np.ldexp(dn[1], dn[2] - top)
            take = (vs < vn) | ((vs == vn) & (ls < ln)) | np.isnan(vs)
        dn = tuple(np.where(take, s, o) for s, o in zip(ds, dn))
    with np.errstate(all="ignore"):
        mag = np.maximum(np.where(dp[0] > 0, np.frexp(dp[0])[1] + dp[2], 0),
                         np.where(dn[0] > 0, np.frexp(dn[0])[1] + dn[2], 0))
        k = np.where(mag > _BIG, mag - _BIG, 0)
        # the distances' leading parts first: nearly equal, they cancel exactly (Sterbenz)
        # and the rest sums small terms, instead of the margin meeting the distances' size
        x, xe = two_sum(np.ldexp(dp[0], dp[2] - k), -np.ldexp(dn[0], dn[2] - k))
        y, ye = two_sum(np.ldexp(dp[1], dp[2] - k), -np.ldexp(dn[1], dn[2] - k))
        xe, ye = np.where(np.isfinite(xe), xe, 0.0), np.where(np.isfinite(ye), ye, 0.0)  # x, y inf or NaN
        hi, lo = sum2_parts(np.stack([np.full(np.shape(x), float(margin)), x, xe, y, ye], axis=-1))
        out = hi + lo
        if np.any(k):  # rare: the parts scaled back, unless that overflows (then the margin is scaled)
            up = [np.ldexp(v, k) for v in (x, xe, y, ye)]
            fits = np.all([np.isfinite(v) | ~np.isfinite(w) for v, w in zip(up, (x, xe, y, ye))], axis=0)
            hi, lo = sum2_parts(np.stack([np.full(np.shape(x), float(margin))] + up, axis=-1))
            scaled = np.ldexp(sum2_parts(np.stack([np.ldexp(float(margin), -k), x, xe, y, ye], axis=-1))[0], k)
            out = np.where(k > 0, np.where(fits, hi + lo, scaled), out)
        return np.maximum(out, 0.0) + 0.0


# --- oracle ----------------------------------------------------------------------------------


def power_sum(w: np.ndarray, p: float) -> np.ndarray:
    """``sum |w|^p`` over the last axis on exact values (``max |w|`` for p = inf): the
    p-th power of the norm, exact where the precision holds the powers (p an integer)."""
    mag = np.abs(w)
    if p == math.inf:
        out = np.full(w.shape[:-1], x.num(0), dtype=object)
        for i in range(w.shape[-1]):  # the oracle may loop: it is the literal definition
            out = x.maximum(out, mag[..., i])
        return out
    return x.fsum(mag if p == 1 else x.power(mag, p), -1)


def root(s: np.ndarray, p: float) -> np.ndarray:
    """``s^(1/p)`` (the norm from :func:`power_sum`; p = 1 and inf: `s` itself)."""
    if p in (1, math.inf):
        return s
    return x.sqrt(s) if p == 2 else x.power(s, x.div(x.num(1), x.num(p)))


def root_gap(s_a: np.ndarray, s_b: np.ndarray, d_a: np.ndarray, d_b: np.ndarray, p: float) -> np.ndarray:
    """``d_a - d_b`` of roots ``d = s^(1/p)``, for an integer p >= 2 as
    ``(s_a - s_b) / sum_{j < p} d_a^(p-1-j) d_b^j``: the same number where the roots are
    finite and not both 0 (the literal difference elsewhere), without the cancellation of
    two nearly equal roots. The difference of the power sums is exact where the precision
    holds it, so equal distances (a tie: the loss is the margin) give an exact 0, which
    balls of two separately rounded roots never do (``[0 +/- r]``, undecided where the
    margin is 0)."""
    plain = d_a - d_b
    if p == math.inf or p < 2 or p != int(p):
        return plain
    k = int(p)
    den = x.fsum(np.stack([x.power(d_a, k - 1 - j) * x.power(d_b, j) for j in range(k)], -1), -1)
    ok = x.land(x.land(x.isfinite(d_a), x.isfinite(d_b)), x.gt(den, 0))
    return x.where(ok, x.div(s_a - s_b, x.where(ok, den, 1)), plain)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, negative, margin: float = 1.0, p: float = 2,
           eps=1e-6, swap: bool = False) -> np.ndarray:
    """The definition on exact values (`negative` floats or exact numbers).

    The negative distance with `swap` is the root of the smaller power sum (the root is
    increasing: the same number as the smaller root), and ``d(a, b) - d(a, n)`` is formed
    by :func:`root_gap`: for p = 1 and inf the power sums are the distances themselves,
    differences of exact values.
    """
    n = np.broadcast_to(x.lift(param_array("triplet_margin", "negative", negative, y_pred.shape)),
                        y_pred.shape)
    e_ab, e_an, e_bn = (x.num(e) for e in _eps3(eps))
    s_pos = power_sum(y_pred - y_true + e_ab, p)
    s_neg = power_sum(y_pred - n + e_an, p)
    if swap:
        s_neg = x.minimum(s_neg, power_sum(y_true - n + e_bn, p))
    gap = root_gap(s_pos, s_neg, root(s_pos, p), root(s_neg, p), p)
    return x.maximum(x.num(margin) + gap, 0)


# --- parameters ------------------------------------------------------------------------------


def check_p(v) -> Optional[str]:
    """Check helper: a real p > 0 (inf included)."""
    ok = is_real(v) and not math.isnan(v) and v > 0
    return None if ok else "expected a number > 0 or inf (p <= 0 is no norm: see the spec page)"


LOSS = register(LossDef(
    name="triplet_margin",
    summary="max(0, margin + d(a, b) - d(a, n)) per sample, d(u, v) = ||u - v + eps||_p over the "
            "last axis; a = y_pred, b = y_true, n = negative",
    stage2="structured",
    rowwise=True,
    params={
        "negative": Param(None, "array of floats broadcasting to the inputs' shape without widening "
                                "it: the negative examples n", lambda v: real_array_error(v, required=True)),
        "margin": Param(1.0, "finite number", finite_number),
        "p": Param(2, "number > 0, or inf: the order of the norm", check_p),
        "eps": Param(1e-6, "finite number, added to every difference u - v", finite_number),
        "swap": Param(False, "bool: d(a, n) replaced by min(d(a, n), d(b, n))", check_bool),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    arrays=("negative",),
))
