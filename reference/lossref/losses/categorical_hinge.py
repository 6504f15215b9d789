"""Categorical hinge loss. Spec: spec/losses/categorical_hinge.md.

Over the last (class) axis: ``pos = sum(y p)``, ``neg = max((1 - y) p)``, loss
``max(neg - pos + 1, 0)``. A structured loss: stage 2 is the whole formula.
"""

from __future__ import annotations


import numpy as np

from ..numerics import dot2, hinge_share, max_shares, sum2, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, check_float_array, register

# Rows whose products could overflow are evaluated with y scaled by 2**-k (see reference).
_SAFE_EXP = 1000


def check_inputs(name: str, y_true, y_pred):
    """Equal float shapes with a non-empty class axis (the max over no class is undefined)."""
    p = check_float_array(y_pred, "y_pred")
    t = check_float_array(y_true, "y_true")
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true shape {t.shape} and y_pred shape {p.shape} must be equal")
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"{name}: inputs need a non-empty last (class) axis for the max over "
                         f"classes; got shape {p.shape}")
    return t, p


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample value in float64.

    ``neg - pos + 1`` mixes signs, so ``pos`` comes from a compensated dot product and
    the three terms are added with a compensated sum. A row where ``|y| |p| n`` could
    overflow is evaluated as ``2**k max((neg' - pos') + 2**-k, 0)`` with ``y' = y 2**-k``.
    """
    finite = np.where(np.isfinite(y_true), np.abs(y_true), 0.0)
    finite_p = np.where(np.isfinite(y_pred), np.abs(y_pred), 0.0)
    ey = np.frexp(np.max(finite, axis=-1))[1]
    ep = np.frexp(np.max(finite_p, axis=-1))[1]
    n_bits = int(np.ceil(np.log2(max(y_true.shape[-1], 1))))
    k = np.maximum(ey + ep + n_bits - _SAFE_EXP, 0)
    ys = np.ldexp(y_true, -k[..., None])
    unit = np.ldexp(1.0, -k)
    pos = dot2(ys, y_pred)
    neg = np.max((unit[..., None] - ys) * y_pred, axis=-1)
    margin = sum2(np.stack([neg, -pos, np.broadcast_to(unit, neg.shape)], axis=-1))
    return np.ldexp(np.maximum(margin, 0.0), k)


def _signed_margin(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``neg - pos + 1`` with the reference's rounding (scaled by ``2**-k``: the same sign)."""
    finite = np.where(np.isfinite(y_true), np.abs(y_true), 0.0)
    finite_p = np.where(np.isfinite(y_pred), np.abs(y_pred), 0.0)
    k = np.maximum(np.frexp(np.max(finite, axis=-1))[1] + np.frexp(np.max(finite_p, axis=-1))[1]
                   + int(np.ceil(np.log2(max(y_true.shape[-1], 1)))) - _SAFE_EXP, 0)
    ys = np.ldexp(y_true, -k[..., None])
    unit = np.ldexp(1.0, -k)
    neg = np.max((unit[..., None] - ys) * y_pred, axis=-1)
    return sum2(np.stack([neg, -dot2(ys, y_pred), np.broadcast_to(unit, neg.shape)], axis=-1))


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient").

    With ``s_j`` the share of class j in the max of ``(1 - y) p`` (``1/k`` over a k-way tie)
    and ``a`` the share of the hinge (1 above its kink, `kink` at it, 0 below):
    ``d/dp_j = a (s_j (1 - y_j) - y_j)``, ``d/dy_j = -a p_j (1 + s_j)``. The candidates
    ``(1 - y) p`` are compared as double-length values (a tie is a tie of the exact
    products), and each gradient entry is formed with one rounding before the product with
    ``a cot`` (``a`` a power of two or 0 at the default: exact).
    """
    y, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    with np.errstate(all="ignore"):
        oh, ol = two_sum(1.0, -y)  # 1 - y exactly
        ol = np.where(np.isfinite(oh), ol, 0.0)  # an infinite y: 1 - y is the infinity alone
        ch, cl = two_product(oh, p)
        share = max_shares(ch, np.where(np.isfinite(ch), cl + ol * p, 0.0))
        act = hinge_share(_signed_margin(y, p), kink) * np.asarray(cot, np.float64)
        act = np.where(np.isnan(reference(y, p)), np.nan, act)[..., None]
        # s (1 - y) - y
        h, low = two_product(share, oh)
        s, e = two_sum(h, -y)
        e = np.where(np.isfinite(s), e, 0.0)  # no low part beside an infinity
        gp = act * (s + (e + (low + share * ol)))
        # p (1 + s)
        h, low = two_product(share, p)
        s, e = two_sum(p, h)
        e = np.where(np.isfinite(s), e, 0.0)
        gy = -act * (s + (e + low))
    return {"y_pred": gp, "y_true": gy}


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values."""
    one = x.num(1)
    pos = x.fsum(y_true * y_pred, -1)
    wrong = (one - y_true) * y_pred
    neg = x.max_of(wrong, -1)
    return x.maximum(neg - pos + one, 0)


LOSS = register(LossDef(
    name="categorical_hinge",
    summary="max(max((1 - y) p) - sum(y p) + 1, 0) over the last axis",
    stage2="structured",
    rowwise=True,
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    grad_ref=gradient,
))
