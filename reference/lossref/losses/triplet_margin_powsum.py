"""Triplet margin loss with a power-sum distance. Spec: spec/losses/triplet_margin_powsum.md.

Per sample, with anchor ``a = y_pred``, positive ``b = y_true`` and ``n = negative`` (an
array parameter), over the last axis: ``max(margin + d(a, b) - d(a, n), 0)`` with
``d(u, v) = (sum_k (u_k - v_k)**p + eps)**(1/p)``. The powers are IEEE ``pow`` of the
signed differences (no absolute value): for an odd or non-integer ``p`` the "distance"
may be negative or NaN, as defined. Differs from ``triplet_margin`` (``||u - v + eps||_p``).
Optax: ``optax.losses.triplet_margin_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations


import numpy as np

from ..numerics import dd_quotient, hinge_share, sum2, sum2_parts, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, param_array, real_array_error, register
from .triplet_margin import root_gap

#: rows whose largest difference exceeds 2**_BIG are squared scaled by a power of two
_BIG = 500


def _distance2(u: np.ndarray, v: np.ndarray, eps: float):
    """``sqrt(sum (u - v)**2 + eps)`` as ``(h, l)``: exact differences (TwoSum) and squares
    (TwoProduct) summed in double-double, a corrected square root; rows with a
    difference above 2**500 are scaled by ``2**-e`` first (then eps is negligible)."""
    dh, dl = two_sum(u, -v)
    top = np.max(np.where(np.isfinite(dh), np.abs(dh), 0.0), axis=-1)
    e = np.where(top > 2.0 ** _BIG, np.frexp(top)[1], 0)
    dh, dl = np.ldexp(dh, -e[..., None]), np.ldexp(dl, -e[..., None])
    sq, sq_lo = two_product(dh, dh)
    s, s_lo = sum2_parts(np.concatenate([sq, np.ldexp(np.full(sq.shape[:-1] + (1,), eps), -2 * e[..., None])], -1),
                         lo=np.concatenate([sq_lo + 2.0 * dh * dl, np.zeros(sq.shape[:-1] + (1,))], -1))
    h = np.sqrt(s)
    hh, hl = two_product(h, h)
    l = np.where(h > 0, (((s - hh) - hl) + s_lo) / (2.0 * h), 0.0)
    l = np.where(np.isfinite(l), l, 0.0)
    return np.ldexp(h, e), np.ldexp(l, e)


def _distance_pow(u: np.ndarray, v: np.ndarray, p: float, eps: float):
    """The plain power sum for ``p != 2`` (a few u where no term cancels)."""
    s = sum2(np.power(u - v, p)) + eps
    return np.power(s, 1.0 / p), np.zeros_like(s)


def reference(y_true: np.ndarray, y_pred: np.ndarray, negative, margin: float = 1.0, p: float = 2,
              eps: float = 1e-6) -> np.ndarray:
    """Per-sample value in float64: for p = 2 the distances as double-doubles and
    ``margin + d(a, b) - d(a, n)`` summed from their parts, so where the distances cancel
    only ``O(u**2)`` of them remains."""
    a, b = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    n = np.broadcast_to(np.asarray(param_array("triplet_margin_powsum", "negative", negative, a.shape),
                                   np.float64), a.shape)
    with np.errstate(all="ignore"):
        return np.maximum(_inner(a, b, n, margin, p, eps), 0.0) + 0.0


def _inner(a, b, n, margin, p, eps):
    """``margin + d(a, b) - d(a, n)`` before the max with 0 (float64 rows; see :func:`reference`)."""
    dist = _distance2 if p == 2 else (lambda u, v, e: _distance_pow(u, v, p, e))
    ph, pl = dist(a, b, eps)
    nh, nl = dist(a, n, eps)
    x, xe = two_sum(ph, -nh)
    xe = np.where(np.isfinite(xe), xe, 0.0)
    return sum2(np.stack([np.full(np.shape(x), float(margin)), x, xe, pl, -nl], axis=-1))


def _direction(u: np.ndarray, v: np.ndarray, p: float, eps: float, at_zero: float):
    """``d d(u, v) / du = (u - v)**(p - 1) / d**(p - 1)`` as a pair: p = 2 the quotient of the
    double-length difference and distance; other p the plain IEEE powers (a few u; NaN where
    the value's powers are NaN). Where the distance is 0 (eps = 0 and ``u = v``), `at_zero`."""
    if p == 2:
        dh, dl = two_sum(u, -v)
        dl = np.where(np.isfinite(dl), dl, 0.0)
        h, l = _distance2(u, v, eps)
        nz = (h > 0)[..., None]
        gh, gl = dd_quotient(dh, dl, np.where(nz, h[..., None], 1.0), np.where(nz, l[..., None], 0.0))
        return np.where(nz, gh, at_zero), np.where(nz, gl, 0.0)
    d = _distance_pow(u, v, p, eps)[0][..., None]
    g = np.power(u - v, p - 1.0) * np.power(d, 1.0 - p)
    return np.where(d == 0, at_zero, g), np.zeros_like(g)


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, negative, margin: float = 1.0,
             p: float = 2, eps: float = 1e-6, kink: float = 0.5, at_zero: float = 0.0) -> dict:
    """VJP of :func:`reference` (spec: "Gradient"): with ``g_ab = (a - b)**(p-1) / d(a, b)**(p-1)``,
    ``g_an`` likewise and ``h`` the hinge's share (1 above the kink, `kink` at it — 1/2, as
    optax's ``jnp.maximum`` — 0 below) times `cot`: ``d/da = h (g_ab - g_an)``,
    ``d/db = -h g_ab``, ``d/dn = h g_an``. At a zero distance (eps = 0, two equal vectors)
    the entries of that distance are `at_zero` (0, the subgradient of the norm; optax's
    autodiff gives NaN there). NaN over a row whose value is NaN."""
    from .triplet_margin import _combine

    a, b = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    n = np.broadcast_to(np.asarray(param_array("triplet_margin_powsum", "negative", negative, a.shape),
                                   np.float64), a.shape)
    with np.errstate(all="ignore"):
        h = (hinge_share(_inner(a, b, n, margin, p, eps), kink) * np.asarray(cot, np.float64))[..., None]
        gp, gn = _direction(a, b, p, eps, at_zero), _direction(a, n, p, eps, at_zero)
        ga = _combine([(h, gp), (-h, gn)])
        gb = _combine([(-h, gp)])
        gneg = _combine([(h, gn)])
    return {"y_pred": ga, "y_true": gb, "negative": gneg}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, negative, margin: float = 1.0, p: float = 2,
           eps: float = 1e-6) -> np.ndarray:
    """The literal definition on exact values (``1/p`` exact; `negative` floats or exact
    numbers). The powers are IEEE ``pow`` (:func:`ops.power <lossref.oracle.ops.power>`:
    a negative base needs an integer exponent).

    ``d(a, b) - d(a, n)`` is formed by :func:`~lossref.losses.triplet_margin.root_gap`: for
    an integer p the difference of the power sums (exact: eps cancels) over a sum of
    products of the distances, the same number without the cancellation of two nearly
    equal distances, and an exact 0 for equal ones.
    """
    n = np.broadcast_to(x.lift(param_array("triplet_margin_powsum", "negative", negative, y_pred.shape)),
                        y_pred.shape)
    q, e = x.num(p), x.num(eps)
    inv = x.div(x.num(1), q)

    def power_sum(u, v):
        return x.fsum(x.power(u - v, q), -1)

    s_pos, s_neg = power_sum(y_pred, y_true), power_sum(y_pred, n)
    d_pos, d_neg = x.power(s_pos + e, inv), x.power(s_neg + e, inv)
    return x.maximum(x.num(margin) + root_gap(s_pos, s_neg, d_pos, d_neg, p), 0)


def _check_p(v):
    return None if finite_number(v) is None and v > 0 else "expected a finite number > 0"


LOSS = register(LossDef(
    name="triplet_margin_powsum",
    summary="max(0, margin + d(a, b) - d(a, n)) per sample, d(u, v) = (sum (u - v)^p + eps)^(1/p) over "
            "the last axis (signed powers); a = y_pred, b = y_true, n = negative",
    stage2="structured",
    rowwise=True,
    params={
        "negative": Param(None, "array of floats broadcasting to the inputs' shape without widening it",
                          lambda v: real_array_error(v, required=True)),
        "margin": Param(1.0, "finite number", finite_number),
        "p": Param(2, "finite number > 0: the power of the differences", _check_p),
        "eps": Param(1e-6, "finite number, added to the power sum", finite_number),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    arrays=("negative",),
    grad_ref=gradient,
))
