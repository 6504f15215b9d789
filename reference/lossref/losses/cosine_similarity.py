"""Cosine similarity loss. Spec: spec/losses/cosine_similarity.md.

``-sum(n(y) n(p))`` over `axis`, with ``n(v) = v / max(||v||_2, epsilon)`` along
`axis`; ``epsilon=None`` or ``0`` gives ``v / ||v||`` with a zero vector left at zero. Perfect
alignment gives -1, orthogonality 0, a zero vector 0. A structured loss.
"""

from __future__ import annotations

import numpy as np

from ..numerics import dd_quotient, dd_residual, dot2, normalize_axes, sum2_parts, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, in_row_blocks, optional_nonneg_float, register


def _int_axis(v):
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    return None if ok else "expected an int (one feature axis)"


def _scaled(v: np.ndarray, epsilon):
    """``(w, f)`` with ``w = v 2**-e`` (largest |entry| in [1, 2)) and ``n(v) = w f``.

    The power-of-two scaling is exact and keeps the squares from overflowing or
    underflowing; ``f = 1 / ||w||`` unless the true norm ``2**e ||w||`` is below
    `epsilon`, where ``n(v) = v / epsilon = w 2**e / epsilon``.
    """
    top = np.max(np.where(np.isfinite(v), np.abs(v), 0.0), axis=-1, keepdims=True, initial=0.0)
    e = np.frexp(np.where(top > 0, top, 1.0))[1] - 1
    w = np.ldexp(v, -e)
    r = np.sqrt(np.sum(np.square(w), axis=-1, keepdims=True))
    with np.errstate(divide="ignore", over="ignore"):
        if not epsilon:  # no floor (None or 0): a zero vector stays zero instead of 0/0
            f = np.where(r > 0, 1.0 / r, 0.0)
        else:
            floor = np.ldexp(r, e) < epsilon
            f = np.where(floor, np.ldexp(1.0 / epsilon, e), 1.0 / r)
    return w, f[..., 0]


def reference(y_true: np.ndarray, y_pred: np.ndarray, axis: int, epsilon) -> np.ndarray:
    """Per-sample value in float64, from arrays of any float format.

    With `axis` moved last (a view), the samples along the first axis are independent: they
    are widened and evaluated a block of rows at a time (a single vector at once).
    """
    (ax,) = normalize_axes(axis, y_pred.ndim)
    y, p = np.moveaxis(y_true, ax, -1), np.moveaxis(y_pred, ax, -1)
    if p.ndim < 2:
        return _cosine(y.astype(np.float64), p.astype(np.float64), epsilon)
    return in_row_blocks(lambda a, b: _cosine(a, b, epsilon), y, p, p.size // max(p.shape[0], 1))


def _cosine(y: np.ndarray, p: np.ndarray, epsilon) -> np.ndarray:
    """The loss over the last axis of float64 `y` and `p`.

    Both vectors are scaled to order one by powers of two (no overflow or underflow of
    the squared norms); the dot product is compensated, so near-orthogonal vectors keep
    their relative accuracy (the plain sum would lose it in proportion to the condition
    number ``sum|y_i p_i| / |sum y_i p_i|``). Any infinite or NaN entry gives NaN.
    """
    wy, fy = _scaled(y, epsilon)
    wp, fp = _scaled(p, epsilon)
    with np.errstate(invalid="ignore", over="ignore"):
        out = -(dot2(wy, wp) * fy) * fp
    finite = np.all(np.isfinite(y) & np.isfinite(p), axis=-1)
    return np.where(finite, out, np.nan)


def _factor(v: np.ndarray, epsilon, tie: float):
    """The pieces of ``n(v) = v / D(v)`` for the gradient, rows on the last axis.

    Returns ``(w, e, nh, nl, fh, fl, fe, share)``: ``w = v 2**-e`` (exact), ``||w||**2 =
    nh + nl`` (double length), ``n(v) = w (fh + fl) 2**fe`` and ``share`` the weight of
    the unfloored branch ``||v||`` in ``D = max(||v||, epsilon)`` (1 above the floor, `tie`
    at it, 0 below; 0 for a zero vector without a floor, where ``n(v) = 0``). The floor is
    decided on the double-length squared norm against ``epsilon**2`` (a tie is exact).
    """
    from .cosine_embedding import _rsqrt

    top = np.max(np.where(np.isfinite(v), np.abs(v), 0.0), axis=-1, keepdims=True, initial=0.0)
    e = np.frexp(np.where(top > 0, top, 1.0))[1] - 1
    w = np.ldexp(v, -e)
    sq, sq_lo = two_product(w, w)
    nh, nl = sum2_parts(sq, lo=sq_lo)
    e = e[..., 0]
    positive = nh > 0
    rh, rl = _rsqrt(np.where(positive, nh, 1.0), np.where(positive, nl, 0.0))
    if not epsilon:  # no floor: 1 / ||w||, and 0 for a zero vector
        share = np.where(positive, 1.0, 0.0)
        return w, e, nh, nl, np.where(positive, rh, 0.0), np.where(positive, rl, 0.0), np.zeros_like(e), share
    eh, el = two_product(np.ldexp(float(epsilon), -e), np.ldexp(float(epsilon), -e))
    d, de = two_sum(nh, -eh)
    side = d + (de + (nl - el))  # sign of ||v||**2 - epsilon**2
    side = np.where(np.isinf(eh), -1.0, side)
    share = np.where(side > 0, 1.0, np.where(side == 0, tie, 0.0))
    ih, il = dd_quotient(np.ones_like(nh), np.zeros_like(nh), np.full(nh.shape, float(epsilon)), 0.0)
    floored = side <= 0  # at the tie ||v|| = epsilon: either factor, 1 / epsilon is exact to u**2
    return (w, e, nh, nl, np.where(floored, ih, rh), np.where(floored, il, rl), np.where(floored, e, 0), share)


def _dd_mul(ah, al, bh, bl):
    h, low = two_product(ah, bh)
    return h, low + (ah * bl + al * bh)


def _grad_rows(y: np.ndarray, p: np.ndarray, cot: np.ndarray, epsilon, tie: float):
    """``(d/dy, d/dp)`` of ``-sum(cot * n(y) . n(p))`` over the last axis (float64 rows)."""
    fy_, fp_ = _factor(y, epsilon, tie), _factor(p, epsilon, tie)
    ph, pl = two_product(fy_[0], fp_[0])
    dh, dl = sum2_parts(ph, lo=pl)
    fh, fl = _dd_mul(*_dd_mul(fy_[4], fy_[5], fp_[4], fp_[5]), cot, np.zeros_like(cot))

    def one(a, b):  # d/d(vector b): -(1 / (D_a D_b)) (a - share_b (a.b / ||b||**2) b)
        wa, wb, ea, eb = a[0], b[0], a[6], b[6]
        nz = b[2] > 0
        qh, ql = dd_quotient(dh, dl, np.where(nz, b[2], 1.0), np.where(nz, b[3], 0.0))
        qh, ql = np.where(nz, qh * b[7], 0.0), np.where(nz, ql * b[7], 0.0)
        if wa.shape[-1] == 1:  # a - s (a b / b**2) b is a (1 - s) exactly for scalars
            rh, rl = wa * (1.0 - b[7])[..., None], np.zeros_like(wa)
        else:
            rh, rl = dd_residual(wa, qh[..., None], ql[..., None], wb)
        g = -(rh * fh[..., None] + (rl * fh[..., None] + rh * fl[..., None]))
        return np.ldexp(g, (ea + eb - b[1])[..., None])

    finite = np.all(np.isfinite(y) & np.isfinite(p), axis=-1, keepdims=True)
    return np.where(finite, one(fp_, fy_), np.nan), np.where(finite, one(fy_, fp_), np.nan)


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, axis: int, epsilon,
             tie: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient").

    ``d/dp = -(y - s_p (y.p / ||p||**2) p) / (D(y) D(p))`` (and the same with y and p
    swapped), ``s_p`` the share of the branch ``||p||`` in ``D(p) = max(||p||, epsilon)``:
    1 above the floor, `tie` at ``||p|| = epsilon`` (1/2: Keras' ``minimum`` of the inverse
    norms; 1: torch's ``clamp_min``), 0 below. The residual ``y - s (y.p / ||p||**2) p`` is
    the textbook ``n(y) - cos n(p)`` times ``D(y)``, which cancels for nearly parallel
    vectors: it is formed from a double-length ratio and exact products (rounded about
    once), on rows scaled by powers of two (no overflow or underflow of the squares).
    """
    (ax,) = normalize_axes(axis, np.ndim(y_pred))
    y = np.moveaxis(np.asarray(y_true, np.float64), ax, -1)
    p = np.moveaxis(np.asarray(y_pred, np.float64), ax, -1)
    with np.errstate(all="ignore"):
        gy, gp = _grad_rows(y, p, np.asarray(cot, np.float64), epsilon, tie)
    return {"y_pred": np.moveaxis(gp, -1, ax), "y_true": np.moveaxis(gy, -1, ax)}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, axis: int, epsilon) -> np.ndarray:
    """The definition on exact values, with the two normalisations factored out of the sum.

    ``-sum(y_i / d_y * p_i / d_p) = -sum(y_i p_i) / (d_y d_p)``: the same real number,
    written so that an exactly orthogonal pair gives an exact 0 at every precision.
    """
    (ax,) = normalize_axes(axis, y_pred.ndim)
    y, p = np.moveaxis(y_true, ax, -1), np.moveaxis(y_pred, ax, -1)

    def denominator(v):
        # the squared norm of exact inputs is an exact 0 or a ball away from 0: the
        # comparison decides
        norm = x.sqrt(x.fsum(v * v, -1))
        if not epsilon:  # no floor: 0/0 of a zero vector is defined as 0, as for None
            return x.where(x.eq(norm, x.num(0)), x.num(1), norm)
        return x.maximum(norm, x.num(epsilon))

    if x.has_nodes(y) or x.has_nodes(p):
        return _differentiated(x.values(y), x.values(p), y, p, denominator, epsilon)
    return -x.div(x.fsum(y * p, -1), denominator(y) * denominator(p))


def _differentiated(yv, pv, y, p, denominator, epsilon):
    """The oracle's value with its derivatives given in a form that does not cancel:
    ``d s / d p_i = -(y_i |p|^2 - p_i (y.p)) / (D_y |p| |p|^2)`` has a numerator that is a
    polynomial in the inputs, so a gradient that is exactly 0 (parallel vectors, one
    feature) is an exact 0 at a high enough precision instead of a cancellation no
    precision can decide. Below the floor ``D_p = epsilon`` is a constant; at it, the tie
    share (:func:`lossref.oracle.ops.tie_share`) of each side."""
    u = x.fsum(yv * pv, -1)
    dy, dp = denominator(yv), denominator(pv)
    value = -x.div(u, dy * dp)

    def col(v):  # a per-row quantity as a column (0-d products come back as scalars)
        return np.asarray(v, dtype=object)[..., None]

    def local(a, b, da, db):  # d value / d a, rows along the last axis
        qa = x.fsum(a * a, -1)
        na = x.sqrt(qa)
        normal = -x.div(b * col(qa) - a * col(u), col(db * na * qa))
        flat = -x.div(b, col(db * da))  # D_a a constant: the floor, or 1 for a zero vector
        if not epsilon:
            return x.where(col(x.eq(na, x.num(0))), flat, normal)
        eps = x.num(epsilon)
        t = x.tie_share()
        tie = normal * t + flat * (1 - t)
        return x.where(col(x.gt(na, eps)), normal, x.where(col(x.lt(na, eps)), flat, tie))

    pairs = []
    if x.has_nodes(p):
        pairs.append((p, local(pv, yv, dp, dy)))
    if x.has_nodes(y):
        pairs.append((y, local(yv, pv, dy, dp)))
    return x.attach(value, pairs, axis=-1)


LOSS = register(LossDef(
    name="cosine_similarity",
    summary="-sum(n(y) n(p)) over axis, n(v) = v / max(||v||, epsilon)",
    stage2="structured",
    params={
        "axis": Param(-1, "int: the feature axis (normalised and summed over)", _int_axis),
        "epsilon": Param(1e-7, "None or float >= 0 (floor of the norms; None and 0: no floor)", optional_nonneg_float),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    native=True,
    grad_ref=gradient,
))
