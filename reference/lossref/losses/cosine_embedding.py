"""Cosine embedding loss. Spec: spec/losses/cosine_embedding.md.

Per sample, with ``x1 = y_pred`` and ``x2`` (an array parameter of the same shape) along
the last axis, ``y = y_true`` one label per sample and
``cos = sum(x1 x2) / sqrt((sum(x1^2) + eps1) (sum(x2^2) + eps2))``:
``1 - cos`` where ``y = 1``, ``max(0, cos - margin)`` where ``y = -1``, 0 for any other
label. ``eps`` is one number for both norms or a pair ``(eps1, eps2)``. PyTorch:
``torch.nn.functional.cosine_embedding_loss`` (:mod:`lossref.torch.nn._cosine_embedding`).

The catalogue's API takes two inputs, labels and one array; the loss has three, so the
second vector ``x2`` is a parameter (as ``var`` of ``gaussian_nll``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import dd_quotient, dd_residual, hinge_share, sum2, sum2_parts, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, check_float_array, finite_number, is_real, param_array, real_array_error, register

#: below every exponent a finite float64 (or the square root of a positive eps) can have
_NONE = -4000


# --- inputs and parameters ---------------------------------------------------------------------


def check_inputs(name: str, y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    """Vectors ``(..., D)`` (float) and one label per vector ``(...)`` (bool, int or float)."""
    p = check_float_array(y_pred, "y_pred")
    if p.ndim == 0:
        raise ValueError(f"{name}: y_pred needs a last (feature) axis; got a scalar")
    t = np.asarray(y_true)
    if t.dtype.kind not in "biuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"{name}: y_true must hold numeric labels; got dtype {t.dtype}")
    if t.shape != p.shape[:-1]:
        raise ValueError(f"{name}: y_true shape {t.shape} must be y_pred's shape without its last axis "
                         f"{p.shape[:-1]}")
    return t, p


def eps_pair(eps) -> Tuple[float, float]:
    """``(eps1, eps2)`` from one number or a pair."""
    if isinstance(eps, (tuple, list)):
        return float(eps[0]), float(eps[1])
    return float(eps), float(eps)


def _check_eps(v) -> Optional[str]:
    items = v if isinstance(v, (tuple, list)) and len(v) == 2 else (v,)
    ok = all(is_real(e) and math.isfinite(e) and e >= 0 for e in items)
    return None if ok else "expected a finite number >= 0 or a pair of them"


# --- reference ---------------------------------------------------------------------------------


def _dd_mul(ah, al, bh, bl):
    """``(a_h + a_l)(b_h + b_l)`` as an unevaluated pair, error of order u^2 |ab|."""
    h, low = two_product(ah, bh)
    return h, low + (ah * bl + al * bh)


def _norm(w: np.ndarray, e: np.ndarray, eps: float):
    """``sum(x^2) + eps = 2^(2k) (A_h + A_l)`` for rows ``x = w 2^e`` (max |w| in [1/2, 1)).

    ``k = max(e, f)`` with ``sqrt(eps) = m 2^f`` puts ``A`` in [1/4, D + 1): neither the
    squares nor eps overflow or underflow where they matter. Returns ``(A_h, A_l, k, E)``
    with ``E = eps 2^(-2k)``, the eps part of ``A``.
    """
    h, low = two_product(w, w)
    sh, sl = sum2_parts(h, lo=low)
    f = np.frexp(math.sqrt(eps))[1] if eps > 0 else _NONE
    k = np.maximum(e, f)
    big = np.ldexp(eps, -2 * k)
    ah, al = two_sum(np.ldexp(sh, 2 * (e - k)), big)
    return ah, al + np.ldexp(sl, 2 * (e - k)), k, big


def _dd_div(a: np.ndarray, bh: np.ndarray, bl: np.ndarray):
    """``a / (b_h + b_l)`` as a pair (the remainder ``a - q b`` from an exact product)."""
    q = a / bh
    h, low = two_product(q, bh)
    return q, (((a - h) - low) - q * bl) / bh


def _rsqrt(ah: np.ndarray, al: np.ndarray):
    """``1 / sqrt(A_h + A_l)`` as a pair (one Newton step on ``1 - A y^2``, computed with
    exact products: ``1 - q`` is exact for q near 1)."""
    y = 1.0 / np.sqrt(ah)
    p, pl = two_product(y, y)
    q, ql = two_product(ah, p)
    r = ((1.0 - q) - ql) - (ah * pl + al * p)
    return y, 0.5 * y * r


def _shared(p: np.ndarray, q: np.ndarray, margin: float, eps1: float, eps2: float) -> tuple:
    """What the value and the gradient of float64 rows ``p`` (x1), ``q`` (x2) share.

    The rows scaled by powers of two, ``w = p 2^-ex``, ``v = q 2^-ey`` (a row with an
    infinite or NaN entry as zeros); the squared norms plus eps as pairs with their scale
    exponents and eps parts (:func:`_norm`); which rows have a cosine (a zero vector with
    eps = 0 has 0 / 0); ``1/sqrt`` of the norms as pairs; ``w.v`` as a pair; and
    ``cos - margin`` from ``cos`` as a pair (compensated dot product times double-length
    factors) and one TwoSum, IEEE's ``cos - margin`` for an infinite margin.
    """
    finite = np.all(np.isfinite(p) & np.isfinite(q), axis=-1)
    p, q = np.where(finite[:, None], p, 0.0), np.where(finite[:, None], q, 0.0)
    tops = [np.max(np.abs(v), axis=-1, initial=0.0) for v in (p, q)]
    ex, ey = (np.where(top > 0, np.frexp(top)[1], _NONE) for top in tops)
    w, v = np.ldexp(p, -ex[:, None]), np.ldexp(q, -ey[:, None])
    ah, al, kx, bx = _norm(w, ex, eps1)
    bh, bl, ky, by = _norm(v, ey, eps2)
    defined = finite & (ah > 0) & (bh > 0)
    ah, bh = np.where(defined, ah, 1.0), np.where(defined, bh, 1.0)
    rx, rxl = _rsqrt(ah, al)
    ry, ryl = _rsqrt(bh, bl)
    h, low = two_product(w, v)
    ph, pl = sum2_parts(h, lo=low)
    ch, cl = _dd_mul(*_dd_mul(ph, pl, rx, rxl), ry, ryl)
    ch, cl = np.ldexp(ch, ex - kx + ey - ky), np.ldexp(cl, ex - kx + ey - ky)
    s, se = two_sum(ch, -np.float64(margin))
    above = s + (se + cl)
    above = np.where(np.isfinite(above), above, (ch + cl) - margin)
    return w, v, ex, ey, ah, al, kx, bx, bh, bl, ky, by, defined, rx, rxl, ry, ryl, ph, pl, above


def _rows(t: np.ndarray, p: np.ndarray, q: np.ndarray, margin: float, eps1: float, eps2: float) -> np.ndarray:
    """The loss of float64 rows ``p`` (x1) and ``q`` (x2), shape (n, D), labels ``t`` (n,).

    Both vectors are scaled by powers of two (exact). ``1 - cos`` uses the unit vectors
    ``u_i = x_i / sqrt(||x_i||^2 + eps_i)``: ``2 (1 - cos) = ||u_1 - u_2||^2 + eps_1 / a_1 +
    eps_2 / a_2`` (``a_i`` the squared norm plus eps), a sum of non-negative terms, with
    ``u_1 - u_2`` formed from exact products and double-length scale factors, so nearly
    parallel vectors keep their ``1 - cos``. ``cos - margin``: :func:`_shared`.
    """
    w, v, ex, ey, ah, al, kx, bx, bh, bl, ky, by, defined, rx, rxl, ry, ryl, _, _, above = \
        _shared(p, q, margin, eps1, eps2)
    gx, gy = ex - kx, ey - ky  # u_1 = w rx 2^gx, u_2 = v ry 2^gy
    # 1 - cos: the difference of the unit vectors at the common scale 2^g
    g = np.maximum(gx, gy)
    sx, sy = np.ldexp(1.0, gx - g)[:, None], np.ldexp(1.0, gy - g)[:, None]
    h1, l1 = two_product(w, rx[:, None] * sx)
    h2, l2 = two_product(v, ry[:, None] * sy)
    d, de = two_sum(h1, -h2)
    d, dl = two_sum(d, de + ((l1 + w * (rxl[:, None] * sx)) - (l2 + v * (ryl[:, None] * sy))))
    sq, sql = two_product(d, d)
    qh, ql = sum2_parts(sq, lo=sql + 2.0 * d * dl)
    one_minus = 0.5 * sum2(np.stack([np.ldexp(qh, 2 * g), np.ldexp(ql, 2 * g), *_dd_div(bx, ah, al),
                                     *_dd_div(by, bh, bl)], axis=-1))
    beyond = np.maximum(above, 0.0)
    out = np.where(t == 1, one_minus, np.where(t == -1, beyond, 0.0))
    return np.where(defined | ((t != 1) & (t != -1)), out, np.nan)


def reference(y_true: np.ndarray, y_pred: np.ndarray, x2=None, margin: float = 0.0, eps: Any = 1e-12) -> np.ndarray:
    """Per-sample value in float64 (shape ``y_pred.shape[:-1]``) of float64 arrays.

    Error (spec page): ``1 - cos`` within a few u of itself plus a term of order
    ``u^2 ||u_1 - u_2||``; ``max(0, cos - margin)`` within a few u of itself plus
    ``u^2 (|cos| + |margin|)``.
    """
    q = np.broadcast_to(np.asarray(param_array("cosine_embedding", "x2", x2, y_pred.shape), np.float64), y_pred.shape)
    e1, e2 = eps_pair(eps)
    d = y_pred.shape[-1]
    out = _rows(np.asarray(y_true, np.float64).reshape(-1), np.asarray(y_pred, np.float64).reshape(-1, d),
                q.reshape(-1, d), margin, e1, e2)
    return out.reshape(y_pred.shape[:-1])


def _grad_rows(t, p, q, cot, margin: float, eps1: float, eps2: float, kink: float):
    """``(d/dx1, d/dx2)`` of ``sum(cot * loss)`` for float64 rows (see :func:`gradient`)."""
    # the sign of cos - margin as the reference forms it
    w, v, ex, ey, ah, al, kx, _, bh, bl, ky, _, defined, rx, rxl, ry, ryl, ph, pl, above = \
        _shared(p, q, margin, eps1, eps2)
    coef = np.where(t == 1, -1.0, np.where(t == -1, hinge_share(above, kink), 0.0)) * cot
    # an undefined value (a zero vector with eps = 0, an infinite or NaN entry) is the
    # definition's NaN, not a function of the inputs: no gradient
    coef = np.where(defined | ((t != 1) & (t != -1)), coef, 0.0)
    fh, fl = _dd_mul(*_dd_mul(rx, rxl, ry, ryl), coef, np.zeros_like(coef))

    def one(a, al_, ea, ka, b, eb):
        # d cos / d x_b = (x_a - (d / |x_b|^2+eps) x_b) / sqrt(A B), on the scaled rows
        qh, ql = dd_quotient(ph, pl, al_[0], al_[1])
        sc = (2 * (eb - ka))[:, None]
        rh, rl = dd_residual(a, np.ldexp(qh[:, None], sc), np.ldexp(ql[:, None], sc), b)
        g = rh * fh[:, None] + (rl * fh[:, None] + rh * fl[:, None])
        return np.ldexp(g, (ea - kx - ky)[:, None])

    g1 = one(v, (ah, al), ey, kx, w, ex)
    g2 = one(w, (bh, bl), ex, ky, v, ey)
    zero = (coef == 0)[:, None]  # a label other than +-1, or an inactive hinge: exactly 0
    return np.where(zero, 0.0, g1), np.where(zero, 0.0, g2)


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, x2=None, margin: float = 0.0,
             eps: Any = 1e-12, kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient") with respect to ``x1 = y_pred`` and `x2`.

    ``d cos / d x1 = (x2 - (x1.x2 / A) x1) / sqrt(A B)`` (``A``, ``B`` the squared norms
    plus eps), and the same with x1 and x2 swapped; ``d/dx = -d cos`` where ``y = 1``,
    ``a d cos`` where ``y = -1`` with ``a`` the hinge's share (1 where ``cos > margin``,
    `kink` at equality — 1/2 by default, 1 for torch's ``clamp_min`` — 0 below), 0 for other
    labels. The residual ``x2 - (x1.x2 / A) x1`` cancels for nearly parallel vectors: it is
    formed from a double-length ratio and exact products, on rows scaled by powers of two.
    0 where the value is the definition's NaN (a zero vector with eps = 0, an infinite or
    NaN entry: a constant of the oracle; torch's autograd gives NaN). The labels get no
    gradient."""
    q = np.broadcast_to(np.asarray(param_array("cosine_embedding", "x2", x2, y_pred.shape), np.float64), y_pred.shape)
    e1, e2 = eps_pair(eps)
    d = y_pred.shape[-1]
    with np.errstate(all="ignore"):
        g1, g2 = _grad_rows(np.asarray(y_true, np.float64).reshape(-1), np.asarray(y_pred, np.float64).reshape(-1, d),
                            np.ascontiguousarray(q).reshape(-1, d),
                            np.broadcast_to(np.asarray(cot, np.float64), y_pred.shape[:-1]).reshape(-1),
                            margin, e1, e2, kink)
    return {"y_pred": g1.reshape(y_pred.shape), "x2": g2.reshape(y_pred.shape)}


# --- oracle ------------------------------------------------------------------------------------


def _exact_row(label, a, b, margin: float, eps1: float, eps2: float):
    """One sample on exact values: the sums, ``AB - d^2`` and ``d^2 - m^2 AB`` are exact
    rationals, so only a square root and a quotient round (no cancellation is left).

    A branch on the label or on the inputs' finiteness that balls leave undecided (an
    infinite or NaN input is a NaN ball) gives a NaN ball, "not known": the mpmath path
    decides that sample.
    """
    is_pos, is_neg = x.eq(label, 1)[()], x.eq(label, -1)[()]
    if is_pos is None or is_neg is None:
        return x.NAN
    if not (is_pos or is_neg):  # NaN included
        return x.num(0)
    finite = x.isfinite(np.concatenate([a, b])).tolist()
    if not all(v is True for v in finite):  # False (mpmath: the value is NaN) or None (balls)
        return x.NAN
    fa, fb = [x.to_fraction(x.value_of(v)) for v in a], [x.to_fraction(x.value_of(v)) for v in b]
    ab = (sum(v * v for v in fa) + Fraction(eps1)) * (sum(v * v for v in fb) + Fraction(eps2))
    d = sum(u * v for u, v in zip(fa, fb))
    if ab == 0:
        return x.NAN
    if x.has_nodes(a) or x.has_nodes(b):  # differentiated: the branches decided above, the op set
        return _differentiable_row(is_pos, a, b, d, margin, eps1, eps2)
    s = x.sqrt(x.from_fraction(ab))[()]
    q = lambda u, v: x.div(u, v)[()]  # noqa: E731  (every divisor here is nonzero)
    if is_pos:  # 1 - d/s = (AB - d^2) / (s (s + d)) for d > 0
        if d > 0:
            return q(x.from_fraction(ab - d * d), s * (s + x.from_fraction(d)))
        return x.num(1) - q(x.from_fraction(d), s)
    if not math.isfinite(margin):
        return x.maximum(q(x.from_fraction(d), s) - x.num(margin), 0)[()]
    m = Fraction(margin)
    if d * m > 0:  # d/s - m = (d^2 - m^2 AB) / (s (d + m s)), d and m s of one sign
        above = q(x.from_fraction(d * d - m * m * ab), s * (x.from_fraction(d) + x.from_fraction(m) * s))
    else:  # d/s and -m of one sign (or zero): no cancellation, and exactly -m where d = 0
        above = q(x.from_fraction(d), s) - x.from_fraction(m)
    return x.maximum(above, 0)[()]


def _differentiable_row(is_pos, a, b, d, margin: float, eps1: float, eps2: float):
    """The value of :func:`_exact_row` in the op set (its inputs being differentiated):
    ``1 - cos`` or ``max(cos - m, 0)`` with ``cos = a.b / sqrt((|a|^2 + eps1)(|b|^2 + eps2))``;
    the exact rationals decided the branches (``d = a.b``)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    s = x.sqrt(np.asarray((x.fsum(a * a) + x.num(eps1)) * (x.fsum(b * b) + x.num(eps2)), dtype=object))
    cos = x.div(x.fsum(a * b), s)[()]
    if is_pos:
        return x.num(1) - cos
    return x.maximum(cos - x.num(margin), 0)[()]


def oracle(y_true: np.ndarray, y_pred: np.ndarray, x2=None, margin: float = 0.0, eps: Any = 1e-12) -> np.ndarray:
    """The definition on exact values (object arrays; `x2` floats or exact numbers)."""
    q = x.lift(np.broadcast_to(param_array("cosine_embedding", "x2", x2, y_pred.shape), y_pred.shape))
    e1, e2 = eps_pair(eps)
    out = np.empty(y_pred.shape[:-1], dtype=object)
    for i in np.ndindex(out.shape):  # the oracle may loop: it is the slow, literal definition
        out[i] = _exact_row(y_true[i], y_pred[i], q[i], margin, e1, e2)
    return out


LOSS = register(LossDef(
    name="cosine_embedding",
    summary="1 - cos(x1, x2) where y = 1, max(0, cos - margin) where y = -1, 0 otherwise; "
            "cos = x1.x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps)) over the last axis; x2 a parameter",
    stage2="structured",
    rowwise=True,
    params={
        "x2": Param(None, "float array broadcasting to y_pred's shape without widening it (required): "
                         "the second vector of each pair", lambda v: real_array_error(v, required=True)),
        "margin": Param(0.0, "finite number", finite_number),
        "eps": Param(1e-12, "finite number >= 0, or a pair (eps1, eps2): added to the two squared norms",
                     _check_eps),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    arrays=("x2",),
    grad_ref=gradient,
))
