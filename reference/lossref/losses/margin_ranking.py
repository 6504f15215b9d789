"""Margin ranking loss. Spec: spec/losses/margin_ranking.md.

``max(0, -y (x1 - x2) + margin)`` with ``y = y_true`` (the label, normally ±1: which of the
two scores should rank higher), ``x1 = y_pred`` and ``x2`` the second score, a *parameter*:
a number or an array that broadcasts to the inputs' shape without widening it (the
catalogue's interface has two inputs; gaussian_nll's ``var`` is passed the same way). Mean
over the last axis. PyTorch: ``torch.nn.functional.margin_ranking_loss``
(:mod:`lossref.torch.nn._ranking`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..numerics import _TP_HI, _TP_LO, hinge_share, sum_k3, two_product, two_sum
from ..oracle import ops as x
from ..reduction import stage2_mean
from ..registry import LossDef, Param, finite_number, param_array, real_array_error, register



def _margin_minus(m, y, d, e) -> np.ndarray:
    """``m - y (d + e)`` from exact pieces: ``y d`` and ``y e`` split by TwoProduct (exact
    while the products lie in ``[2^-900, 2^990]``), the five terms summed by :func:`sum_k3`."""
    h, lo = two_product(y, d)
    th, tl = two_product(y, e)
    return sum_k3([m, -h, -lo, -th, -tl])


def _scaled(y, x1, x2, m) -> np.ndarray:
    """``m - y (x1 - x2)`` for finite inputs whose product ``y (x1 - x2)`` is not in
    TwoProduct's exact range (or overflows, as may ``x1 - x2``): computed scaled by
    ``2^-K``, ``2^K`` just above ``max(|m|, |y (x1 - x2)|)``, so that every piece is at most
    1 in magnitude, then scaled back (one more rounding only where the result is subnormal)."""
    d, e = two_sum(x1, -x2)
    over = np.isinf(d)  # |x1 - x2| above the largest float64: its exact half is representable
    hd, he = two_sum(0.5 * x1, -0.5 * x2)
    d, e, k = np.where(over, hd, d), np.where(over, he, e), over.astype(int)
    my, ey = np.frexp(y)
    ep = ey + np.frexp(d)[1] + k  # |y (x1 - x2)| < 2^ep
    big = np.maximum(ep, np.where(m != 0, np.frexp(m)[1], ep))
    s = ey + k - big
    # the smaller of m and the product may lose bits below 2^-1074 of the larger: far below an ulp
    return np.ldexp(_margin_minus(np.ldexp(m, -big), my, np.ldexp(d, s), np.ldexp(e, s)), big)


def reference(y_true: np.ndarray, y_pred: np.ndarray, x2=0.0, margin=0.0) -> np.ndarray:
    """Elementwise value in float64: ``max(0, m - y (x1 - x2))`` with the inner value rounded
    about once (error-free difference and products, :func:`sum_k3`), even where ``x1 - x2``
    or ``m`` against ``y (x1 - x2)`` cancels; IEEE's value where an input is infinite or NaN."""
    with np.errstate(all="ignore"):
        return np.maximum(_inner(y_true, y_pred, x2, margin), 0.0) + 0.0  # NaN stays NaN; + 0.0 turns -0 into +0


def _inner(y_true: np.ndarray, y_pred: np.ndarray, x2=0.0, margin=0.0) -> np.ndarray:
    """``m - y (x1 - x2)`` in float64, rounded about once (see :func:`reference`)."""
    y, x1 = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    x2 = np.broadcast_to(np.asarray(param_array("margin_ranking", "x2", x2, x1.shape), np.float64), x1.shape)
    m = np.broadcast_to(np.asarray(margin, np.float64), x1.shape)
    with np.errstate(all="ignore"):
        d, e = two_sum(x1, -x2)
        out = _margin_minus(m, y, d, e)
        finite = np.isfinite(y) & np.isfinite(x1) & np.isfinite(x2) & np.isfinite(m)
        if not np.all(np.isfinite(out) | ~finite):
            # a sum past float64's range (TwoSum's error is NaN there): the plain sum is ±inf
            out = np.where(np.isfinite(out) | ~finite, out, m - y * d)
        a = np.abs(y * d)
        rare = finite & ((a > _TP_HI) | ((a < _TP_LO) & (y != 0) & (d != 0)))
        if np.any(rare):
            out = np.array(out)
            out[rare] = _scaled(y[rare], x1[rare], x2[rare], m[rare])
        if not np.all(finite):  # rare: IEEE semantics of the literal formula
            out = np.where(finite, out, m - y * (x1 - x2))
        return out


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, x2=0.0, margin=0.0,
             kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient"): with ``a`` the hinge's share (1 where
    ``m - y (x1 - x2) > 0``, `kink` where it is 0 — 1/2 by default, 1 for torch's
    ``clamp_min`` — 0 below, NaN where it is NaN) times `cot`: ``d/dx1 = -y a``,
    ``d/dx2 = y a``, ``d/dy = -(x1 - x2) a``, the difference taken exactly (TwoSum) so that
    ``x1 - x2`` that cancels is not rounded before the product."""
    y, x1 = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    v = np.broadcast_to(np.asarray(param_array("margin_ranking", "x2", x2, x1.shape), np.float64), x1.shape)
    with np.errstate(all="ignore"):
        a = hinge_share(_inner(y, x1, v, margin), kink) * np.asarray(cot, np.float64)
        d, e = two_sum(x1, -v)
        e = np.where(np.isfinite(e), e, 0.0)
        return {"y_pred": -y * a, "x2": y * a, "y_true": -(d * a + e * a)}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, x2=0.0, margin=0.0) -> np.ndarray:
    """The literal definition on exact values (`x2` and `margin` floats, or exact numbers: the
    torch dialect passes `margin` as a 0-dim array)."""
    v = x.lift(param_array("margin_ranking", "x2", x2, y_pred.shape))
    return x.maximum(x.lift(margin) - y_true * (y_pred - v), 0)


# --- parameters and the catalogue entry ----------------------------------------------------------


class MarginRankingLossDef(LossDef):
    """The catalogue entry: a separable loss whose parameter `x2` is a third input (cut into
    blocks with the rows, :attr:`LossDef.arrays`). A row with a value past float64's range
    is averaged again scaled, as its exact mean may be finite."""

    def per_sample64(self, t: np.ndarray, p: np.ndarray, kw: Mapping[str, Any]) -> np.ndarray:
        out = super().per_sample64(t, p, kw)
        redo = np.isinf(out)
        if np.any(redo):  # rare: values past float64's range, whose mean may be finite: again at 2^-64
            v = np.broadcast_to(param_array(self.name, "x2", kw["x2"], p.shape), p.shape)
            s = 2.0 ** -64  # scales m - y (x1 - x2) exactly (bits lost below 2^-1074 aside)
            with np.errstate(all="ignore"):
                vals = self.elementwise_ref(t[redo].astype(np.float64), p[redo].astype(np.float64) * s,
                                            x2=np.asarray(v[redo], np.float64) * s, margin=kw["margin"] * s)
                out[redo] = stage2_mean(vals, -1) / s
        return out


LOSS = register(MarginRankingLossDef(
    name="margin_ranking",
    summary="max(0, -y (x1 - x2) + margin) with y = y_true, x1 = y_pred and x2 a parameter; "
            "mean over the last axis",
    stage2="mean",
    params={
        "x2": Param(0.0, "number or array of numbers (inf and NaN allowed) broadcasting to the inputs' "
                         "shape without widening it: the second score of each pair", real_array_error),
        "margin": Param(0.0, "finite number", finite_number),
    },
    elementwise_ref=reference,
    elementwise_exact=oracle,
    arrays=("x2",),
    grad_ref=gradient,
))
