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

from ..numerics import dd_quotient, hinge_share, max_shares, sum2_parts, two_product, two_sum
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
    return np.maximum(_parts(y_true, y_pred, negative, margin, p, eps, swap)[0], 0.0) + 0.0


def _parts(y_true, y_pred, negative, margin, p, eps, swap):
    """``(margin + d(a, b) - d(a, n), swapped)`` before the max with 0 (see :func:`reference`);
    ``swapped`` the weight of ``d(b, n)`` in the min with `swap` (1 where it is smaller,
    1/2 at a tie, 0 otherwise or without `swap`)."""
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
            swapped = np.where((vs == vn) & (ls == ln), 0.5, take.astype(np.float64))
        dn = tuple(np.where(take, s, o) for s, o in zip(ds, dn))
    else:
        swapped = np.zeros(np.shape(dp[0]))
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
        return out, swapped


def _direction(u: np.ndarray, v: np.ndarray, eps: float, p: float):
    """``d ||z||_p / dz`` at ``z = u - v + eps`` as a pair ``(g, g_lo)`` (rows on the last axis).

    p = 2: ``z / ||z||`` from the double-length difference and norm (a quotient of pairs);
    p = 1: ``sign(z)``; p = inf: ``sign(z_i)`` split evenly over the entries of largest
    magnitude; other p: ``sign(z) (|z| / ||z||)**(p - 1)`` (a few u). At ``z = 0`` (zero
    distance), and at ``z_i = 0`` for any p, the entry is 0 (torch's norm backward).
    """
    hi, lo = _difference(u, v, eps)
    over = np.isinf(hi) & np.isfinite(u) & np.isfinite(v)
    if np.any(over):  # rare: rows whose difference overflows, halved (the direction is the same)
        rows = np.any(over, axis=-1)[..., None]
        hh, hl = _difference(0.5 * u, 0.5 * v, 0.5 * eps)
        hi, lo = np.where(rows, hh, hi), np.where(rows, hl, lo)
    h, l, e = _norm(hi, lo, p)
    w, wl = np.ldexp(hi, -e[..., None]), np.ldexp(np.where(np.isfinite(lo), lo, 0.0), -e[..., None])
    nz = (h > 0)[..., None]
    zero = np.zeros_like(w)
    if p == 2:
        gh, gl = dd_quotient(w, wl, np.where(nz, h[..., None], 1.0), np.where(nz, l[..., None], 0.0))
        return np.where(nz, gh, 0.0), np.where(nz, gl, 0.0)
    sign = np.sign(w)
    if p == 1:
        return sign, zero
    if p == math.inf:
        return sign * max_shares(np.abs(w), wl * sign), zero
    m = np.abs(w) / np.where(nz, h[..., None], 1.0)
    return np.where(w != 0, sign * np.power(m, p - 1.0), 0.0), zero


def _combine(terms):
    """``sum(c g)`` of (coefficient, (g, g_lo)) pairs: exact products and TwoSums of the high
    parts, the rest added once (rounded about once where the terms cancel)."""
    hi, lo = None, 0.0
    for c, (g, gl) in terms:
        t, tl = two_product(c, g)  # exact product: its error would survive a cancellation
        lo = lo + (tl + c * gl)
        if hi is None:
            hi = t
        else:
            hi, e = two_sum(hi, t)
            lo = lo + np.where(np.isfinite(e), e, 0.0)
    return hi + lo


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, negative, margin: float = 1.0,
             p: float = 2, eps=1e-6, swap: bool = False, kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient") with respect to the anchor (``y_pred``), the
    positive (``y_true``) and `negative`.

    With ``g_ab = d||z||_p/dz`` at ``z = a - b + eps`` (:func:`_direction`), likewise ``g_an``,
    ``g_bn``, ``s`` the weight of ``d(b, n)`` in the min under `swap` (1/2 at a tie: torch's
    ``min`` of two tensors) and ``h`` the hinge's share times `cot` (1 above the kink, `kink`
    at it — 1/2 by default, 1 for torch's ``clamp_min`` — 0 below):
    ``d/da = h (g_ab - (1 - s) g_an)``, ``d/db = -h (g_ab + s g_bn)``,
    ``d/dn = h ((1 - s) g_an + s g_bn)``. NaN over a row whose value is NaN.
    """
    a, b = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    n = np.broadcast_to(np.asarray(param_array("triplet_margin", "negative", negative, a.shape), np.float64), a.shape)
    e_ab, e_an, e_bn = _eps3(eps)
    with np.errstate(all="ignore"):
        out, s = _parts(b, a, n, margin, p, eps, swap)
        h = hinge_share(out, kink) * np.asarray(cot, np.float64)
        h, s = h[..., None], s[..., None]
        gp, gn = _direction(a, b, e_ab, p), _direction(a, n, e_an, p)
        gs = _direction(b, n, e_bn, p) if swap else (np.zeros_like(a), np.zeros_like(a))
        ga = _combine([(h, gp), (-h * (1.0 - s), gn)])
        gb = _combine([(-h, gp), (-h * s, gs)])
        gneg = _combine([(h * (1.0 - s), gn), (h * s, gs)])
        gb = np.where(h == 0, 0.0, gb)  # an inactive hinge: exactly 0, also beside inf entries
    return {"y_pred": ga, "y_true": gb, "negative": gneg}


# --- oracle ----------------------------------------------------------------------------------


def power_sum(w: np.ndarray, p: float) -> np.ndarray:
    """``sum |w|^p`` over the last axis on exact values (``max |w|`` for p = inf): the
    p-th power of the norm, exact where the precision holds the powers (p an integer)."""
    mag = np.abs(w)
    if p == math.inf:  # a k-way tie of |z_i| shares the derivative evenly, as every framework
        if w.shape[-1] == 0:
            return np.full(w.shape[:-1], x.num(0), dtype=object)
        return x.max_of(mag, -1)
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


def _gap_l2(a, b, n, e_ab, e_an):
    """``|a - b + e| - |a - n + e|`` (2-norms) with its derivatives given explicitly (the
    oracle differentiated): the anchor's ``u_ab - u_an`` (unit vectors) is an exact 0 where
    the two differences are parallel and of one sign, decided on the exact inputs, which
    the difference of two rounded unit vectors never proves."""
    z1, z2 = a - b + e_ab, a - n + e_an
    v1, v2 = x.values(z1), x.values(z2)
    d1, d2 = x.sqrt(x.fsum(v1 * v1, -1)), x.sqrt(x.fsum(v2 * v2, -1))
    gap = root_gap(x.fsum(v1 * v1, -1), x.fsum(v2 * v2, -1), d1, d2, 2)
    zero = np.full(v1.shape, x.num(0), dtype=object)

    def unit(v, d):  # v/|v|, and 0 at |v| = 0 (torch's and the catalogue's zero-distance convention)
        d = np.asarray(d, dtype=object)[..., None]
        flat = np.broadcast_to(x.eq(d, x.num(0)), v.shape)
        return x.where(flat, zero, x.div(v, x.where(flat, x.num(1), np.broadcast_to(d, v.shape))))

    u1, u2 = unit(v1, d1), unit(v2, d2)
    # parallel and of one sign: z1_i z2_j = z1_j z2_i for all i, j and z1.z2 > 0 (exact products)
    cross = x.all_of(x.eq(v1[..., :, None] * v2[..., None, :], v1[..., None, :] * v2[..., :, None]).reshape(
        v1.shape[:-1] + (-1,)), -1)
    same = x.land(cross, x.gt(x.fsum(v1 * v2, -1), 0))
    da = x.where(np.broadcast_to(np.asarray(same, dtype=object)[..., None], v1.shape), zero, u1 - u2)
    pairs = [(a, da), (b, -u1), (n, u2)]
    return x.attach(gap, pairs, axis=-1)


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
    if y_pred.shape[-1] == 1:  # one feature: every p-norm is |z| exactly (no root to round,
        # so a gradient sign(z_ab) - sign(z_an) that is exactly 0 is an exact 0)
        d_pos, d_neg = np.abs(y_pred - y_true + e_ab)[..., 0], np.abs(y_pred - n + e_an)[..., 0]
        if swap:
            d_neg = x.minimum(d_neg, np.abs(y_true - n + e_bn)[..., 0], tie=0.5)
        return x.maximum(x.num(margin) + (d_pos - d_neg), 0)
    if p == 2 and not swap and (x.has_nodes(y_pred) or x.has_nodes(y_true) or x.has_nodes(n)):
        return x.maximum(x.num(margin) + _gap_l2(y_pred, y_true, n, e_ab, e_an), 0)
    s_pos = power_sum(y_pred - y_true + e_ab, p)
    s_neg = power_sum(y_pred - n + e_an, p)
    if swap:
        s_neg = x.minimum(s_neg, power_sum(y_true - n + e_bn, p), tie=0.5)  # the swap's tie: shared
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
    grad_ref=gradient,
))
