"""Multiclass (Crammer–Singer) hinge loss. Spec: spec/losses/multiclass_hinge.md.

Over the last (class) axis with one-hot ``y`` and scores ``s``:
``max_k(s_k + margin (1 - y_k)) - sum_k y_k s_k``; ``margin = 0`` is the multiclass
perceptron loss ``max_k s_k - s_y``. Optax: ``optax.losses.multiclass_hinge_loss`` and
``multiclass_perceptron_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import dot2, max_shares, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register
from .categorical_hinge import check_inputs


def reference(y_true: np.ndarray, y_pred: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Per-sample value in float64.

    Each candidate ``(s_k - dot) + margin (1 - y_k)`` is formed as a double-double (the
    dot is exact for one-hot rows, the shift by it a TwoSum), so the max is rounded
    once: the cancellation of ``max - s_y`` costs nothing. Rows with an infinite or NaN
    score take IEEE's value of the literal formula (``0 * inf`` in the dot is NaN).
    """
    y, s = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    with np.errstate(all="ignore"):
        dot = dot2(y, s)[..., None]
        c = float(margin) * (1.0 - y)
        hi, lo = two_sum(s, -dot)
        hi2, lo2 = two_sum(hi, c)
        out = np.max(hi2 + (lo + lo2), axis=-1)
        bad = ~np.all(np.isfinite(s) & np.isfinite(y), axis=-1) | ~np.isfinite(dot[..., 0])
        if np.any(bad):
            plain = np.max(s + c, axis=-1) - np.sum(y * s, axis=-1)
            out = np.where(bad, plain, out)
    return out


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, margin: float = 1.0) -> dict:
    """VJP of :func:`reference` (spec: "Gradient"): with ``t_k`` the share of class k in the
    max (``1/j`` over a j-way tie, jax's and optax's split), ``d/ds_k = t_k - y_k`` and
    ``d/dy_k = -(s_k + margin t_k)``. The candidates ``s_k + margin (1 - y_k)`` are compared
    as double-length values; each entry is rounded once before the product with `cot`.
    A row holding a NaN has no entry at its max (all shares 0); an infinite max takes the
    share as any other (``inf - inf`` in the value does not reach the gradient)."""
    y, s = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    m = float(margin)
    with np.errstate(all="ignore"):
        oh, ol = two_sum(1.0, -y)
        h, low = two_product(m, oh)
        c, e = two_sum(s, h)
        share = max_shares(c, np.where(np.isfinite(c), e + (low + m * ol), 0.0))
        # the max of a row holding a NaN is attained by no entry: no share (the oracle's max_of)
        share = np.where(np.isnan(share), 0.0, share)
        cot = np.asarray(cot, np.float64)[..., None]
        d, de = two_sum(share, -y)
        gs = cot * (d + de)
        h, low = two_product(m, share)
        d, de = two_sum(s, h)
        gy = -cot * (d + (de + low))
    return {"y_pred": gs, "y_true": gy}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """The literal definition on exact values."""
    cand = y_pred + (x.num(1) - y_true) * x.num(margin)
    return x.max_of(cand, -1) - x.fsum(y_true * y_pred, -1)


LOSS = register(LossDef(
    name="multiclass_hinge",
    summary="max_k(s_k + margin (1 - y_k)) - sum y s over the last axis (Crammer-Singer; margin 0: "
            "multiclass perceptron); y one-hot",
    stage2="structured",
    rowwise=True,
    params={"margin": Param(1.0, "finite number; 0 gives the multiclass perceptron loss", finite_number)},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    grad_ref=gradient,
))
