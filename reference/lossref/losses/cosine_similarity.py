"""Cosine similarity loss. Spec: spec/losses/cosine_similarity.md.

``-sum(n(y) n(p))`` over `axis`, with ``n(v) = v / max(||v||_2, epsilon)`` along
`axis`; ``epsilon=None`` or ``0`` gives ``v / ||v||`` with a zero vector left at zero. Perfect
alignment gives -1, orthogonality 0, a zero vector 0. A structured loss.
"""

from __future__ import annotations

import numpy as np

from ..numerics import dot2, normalize_axes
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

    return -x.div(x.fsum(y * p, -1), denominator(y) * denominator(p))


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
))
