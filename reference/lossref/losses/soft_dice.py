"""Soft Dice with Tversky weights and smoothing, per class. Spec: spec/losses/soft_dice.md.

``y_true`` (..., C) targets, ``y_pred`` (..., C) scores; the class axis is the last one.
Probabilities ``p`` are ``softmax(y_pred)`` over the classes (`activation` ``"softmax"``),
``sigmoid(y_pred)`` (``"sigmoid"``) or `y_pred` itself (None). Over the axes `axis`, per
class: with ``I = sum(y p)``, ``P = sum(p)`` and ``T = sum(y)``, the loss is
``1 - (I + s) / (I + alpha (P - I) + beta (T - I) + s)``: the smoothing ``s`` enters the
numerator and the denominator (Milletari et al. 2016; Optax's ``dice_loss``). A
structured loss: the result keeps the axes not summed, the class axis included.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..numerics import (axes_last, axes_restore, dd_div, dd_sum, dd_times, normalize_axes, sigmoid, softmax_vjp, sum2,
                        sum2_parts, two_product, two_sum)
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register
from .dice import AXIS, check_overlap_inputs

ACTIVATIONS = ("softmax", "sigmoid", None)


def _activation_param(v) -> Optional[str]:
    return None if v in ACTIVATIONS else "expected 'softmax', 'sigmoid' or None"


def class_axes(axis, ndim: int) -> tuple:
    """`axis` as sorted non-negative axes; None: every axis but the first and the last
    (the batch and the classes)."""
    if axis is None:
        return tuple(range(1, ndim - 1))
    return normalize_axes(axis, ndim)


def probabilities(z: np.ndarray, activation: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(p, q)`` in float64 with ``q = 1 - p``, each with a small relative error.

    softmax: ``p_c = e_c / S`` with ``e = exp(z - max)`` (``z - max`` carried exactly as
    ``d + e``, so exp does not amplify its rounding) and ``q_c`` the sum of the *other*
    terms over ``S`` (an exclusive prefix plus suffix sum: no ``1 - p`` cancellation for
    a dominant class). sigmoid: ``q = sigmoid(-z)``. None: `z` as given, ``q = 1 - z``.
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        if activation is None:
            return z, 1.0 - z
        if activation == "sigmoid":
            return sigmoid(z), sigmoid(-z)
        m = np.max(z, axis=-1, keepdims=True)
        d, err = two_sum(z, -m)
        err = np.where(np.isfinite(err), err, 0.0)
        e = np.exp(d) * (1.0 + err)  # exp(d + err), err below half an ulp of d
        s = np.sum(e, axis=-1, keepdims=True)
        # sums of positive terms only: q keeps its relative accuracy when p is near 1
        pre = np.concatenate([np.zeros_like(e[..., :1]), np.cumsum(e, axis=-1)[..., :-1]], axis=-1)
        post = np.concatenate([np.cumsum(e[..., ::-1], axis=-1)[..., ::-1][..., 1:],
                               np.zeros_like(e[..., :1])], axis=-1)
        return e / s, (pre + post) / s


def _dd(h: np.ndarray, low: np.ndarray, axis: int = -1):
    """The double-double sum of the exact products ``h + low`` over `axis`."""
    return sum2_parts(h, axis=axis, lo=low)


def _weighted(w: float, pair) -> list:
    """``w (hi + lo)`` as three pieces whose sum is exact up to a second-order rounding."""
    wh, wl = two_product(np.full_like(pair[0], w), pair[0])
    return [wh, wl, w * pair[1]]


def reference(y_true: np.ndarray, y_pred: np.ndarray, alpha: float = 0.5, beta: float = 0.5,
              smooth: float = 1.0, axis=None, activation: Optional[str] = "softmax") -> np.ndarray:
    """Per group and class in float64.

    ``1 - (I + s)/den`` cancels for a near-perfect prediction; the value is formed as
    ``(alpha FP + beta FN) / (I + alpha FP + beta FN + s)`` with ``FP = sum((1 - y) p)``
    and ``FN = sum(y q)``, every product exact (:func:`~lossref.numerics.two_product`) and
    every sum in double-double (:func:`~lossref.numerics.sum2_parts`).
    """
    y = np.asarray(y_true, dtype=np.float64)
    p, q = probabilities(y_pred, activation)
    axes = class_axes(axis, y.ndim)
    y, p, q = (axes_last(v, axes) for v in (y, p, q))  # no axes: a last axis of one term
    with np.errstate(all="ignore"):
        tp = _dd(*two_product(y, p))
        fn = _dd(*two_product(y, q))
        oy, oy_lo = two_sum(np.ones_like(y), -y)  # 1 - y exactly
        h, low = two_product(np.where(np.isfinite(oy), oy, 1.0 - y), p)
        fp = _dd(h, low + np.where(np.isfinite(oy_lo), oy_lo, 0.0) * p)
        num_pieces = _weighted(alpha, fp) + _weighted(beta, fn)
        num = sum2(np.stack(num_pieces, axis=-1))
        den = sum2(np.stack(num_pieces + [tp[0], tp[1], np.full_like(tp[0], smooth)], axis=-1))
        out = num / den
        # inf or NaN anywhere in a group: the literal formula's IEEE value
        bad = ~np.isfinite(out) | ~np.isfinite(tp[0]) | ~np.isfinite(fp[0]) | ~np.isfinite(fn[0])
        if np.any(bad):
            i_, s_p, s_y = np.sum(y * p, -1), np.sum(p, -1), np.sum(y, -1)
            lit = 1.0 - (i_ + smooth) / (i_ + alpha * (s_p - i_) + beta * (s_y - i_) + smooth)
            out = np.where(bad, lit, out)
    return out


def grad_parts(y: np.ndarray, z: np.ndarray, cot: np.ndarray, alpha: float, beta: float, smooth: float,
               axis, activation: Optional[str]):
    """The VJP ``(d/dy, d/dz)`` of ``cot * reference(...)`` (`cot` of the result's shape).

    Per group, with ``A = alpha P + beta T + (alpha + beta) s`` and ``den`` the denominator:
    ``d/dp_k = (alpha (I + s) - y_k A) / den**2`` and ``d/dy_k = (beta (I + s) - p_k A) / den**2``,
    the numerators from double-double sums and exact products; then through the activation:
    ``g p (1 - p)`` (sigmoid, with the accurate complement) or
    :func:`~lossref.numerics.softmax_vjp`.
    """
    y = np.asarray(y, dtype=np.float64)
    p, q = probabilities(z, activation)
    axes = class_axes(axis, y.ndim)
    yl, pl = axes_last(y, axes), axes_last(p, axes)
    with np.errstate(all="ignore"):
        tp = _dd(*two_product(yl, pl))
        sp, sy = sum2_parts(pl), sum2_parts(yl)
        ab, ab_err = two_sum(float(alpha), float(beta))
        # A and I + s in double-double; den = (I + s) + A - (alpha + beta)(I + s) rounded once
        a_pieces = dd_times(alpha, *sp) + dd_times(beta, *sy) + dd_times(ab, smooth) + [ab_err * smooth]
        ah, al = dd_sum(a_pieces)
        ih, il = dd_sum([tp[0], tp[1], np.full_like(tp[0], smooth)])
        g_, g_err = two_sum(1.0, -ab)
        dh, dl = dd_sum([ah, al] + dd_times(g_, ih, il) + [(g_err - ab_err) * ih])
        # cot / den**2 as a double-double: the softmax VJP takes differences of its products
        sh, sl = dd_div(*dd_sum(dd_times(cot, 1.0)), *dd_sum(dd_times(dh, dh, 2.0 * dl)))
        ih, il, ah, al, sh, sl = (v[..., None] for v in (ih, il, ah, al, sh, sl))

        def vjp(w, v):  # cot (w (I + s) - v A) / den**2 as (hi, lo)
            nh, nl = dd_sum(dd_times(w, ih, il) + [-t for t in dd_times(v, ah, al)])
            gh, gl = dd_sum(dd_times(sh, nh, nl) + [nh * sl])
            # a zero numerator over a denominator (or its square) that underflowed to 0
            # (probabilities below the float64 range; exactly they are positive): 0
            zero = (nh == 0) & (nl == 0) & ~np.isfinite(sh) & np.isfinite(cot)[..., None]
            return np.where(zero, 0.0, gh), np.where(zero, 0.0, gl)

        gp, gp_lo = vjp(alpha, yl)
        gy = sum(vjp(beta, pl))
        gp, gp_lo, gy = (axes_restore(v, axes, y.shape) for v in (gp, gp_lo, gy))
        if activation == "sigmoid":
            gz = gp * p * q
        elif activation == "softmax":
            gz = softmax_vjp(p, gp, gp_lo)
        else:
            gz = gp
    return gy, gz


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, alpha: float = 0.5,
                   beta: float = 0.5, smooth: float = 1.0, axis=None,
                   activation: Optional[str] = "softmax") -> dict:
    """VJP of :func:`reference` (:func:`grad_parts`)."""
    gy, gz = grad_parts(y_true, y_pred, cot, alpha, beta, smooth, axis, activation)
    return {"y_pred": gz, "y_true": gy}


def exact_probabilities(z: np.ndarray, activation: Optional[str]) -> np.ndarray:
    """The probabilities on exact values (object arrays), IEEE results for inf and NaN."""
    if activation is None:
        return z
    if activation == "sigmoid":
        p = x.div(x.num(1), 1 + x.exp(-z))
        if not x.has_nodes(z):
            return p
        # differentiated: the slope p (1 - p) given as p sigmoid(-z), which is 0 at z = +-inf
        # (the quotient's own chain rule gives inf / inf there) and has no cancellation
        q = x.div(x.num(1), 1 + x.exp(x.values(z)))
        return x.attach(x.values(p), [(z, x.values(p) * q)])
    e = x.exp(z)
    return x.div(e, np.repeat(x.fsum(e, -1)[..., None], z.shape[-1], axis=-1))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, alpha=0.5, beta=0.5, smooth=1.0, axis=None,
           activation: Optional[str] = "softmax") -> np.ndarray:
    """The literal definition on exact values."""
    p = exact_probabilities(y_pred, activation)
    axes = class_axes(axis, y_true.ndim)
    y, p = axes_last(y_true, axes), axes_last(p, axes)
    alpha, beta, smooth = x.num(alpha), x.num(beta), x.num(smooth)
    i_ = x.fsum(y * p, -1)
    den = i_ + alpha * (x.fsum(p, -1) - i_) + beta * (x.fsum(y, -1) - i_) + smooth
    return 1 - x.div(i_ + smooth, den)


LOSS = register(LossDef(
    name="soft_dice",
    summary="per class 1 - (I + s) / (I + alpha FP + beta FN + s) on softmax/sigmoid probabilities",
    stage2="structured",
    params={
        "alpha": Param(0.5, "finite float: weight of the false positives P - I", finite_number),
        "beta": Param(0.5, "finite float: weight of the false negatives T - I", finite_number),
        "smooth": Param(1.0, "finite float: added to the numerator and the denominator", finite_number),
        "axis": Param(None, "None (all but the first and last axes), int or tuple of ints: the axes "
                            "summed over", AXIS.check),
        "activation": Param("softmax", "'softmax' (over the last axis), 'sigmoid' or None (y_pred are "
                                       "probabilities)", _activation_param),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_overlap_inputs,
    grad_ref=grad_reference,
))
