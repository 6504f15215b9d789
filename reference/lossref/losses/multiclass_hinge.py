"""Multiclass (Crammer–Singer) hinge loss. Spec: spec/losses/multiclass_hinge.md.

Over the last (class) axis with one-hot ``y`` and scores ``s``:
``max_k(s_k + margin (1 - y_k)) - sum_k y_k s_k``; ``margin = 0`` is the multiclass
perceptron loss ``max_k s_k - s_y``. Optax: ``optax.losses.multiclass_hinge_loss`` and
``multiclass_perceptron_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import dot2, two_sum
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


def oracle(y_true: np.ndarray, y_pred: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """The literal definition on exact values."""
    cand = y_pred + (x.num(1) - y_true) * x.num(margin)
    top = cand[..., 0]
    for k in range(1, cand.shape[-1]):  # the oracle may loop: it is the literal definition
        top = x.maximum(top, cand[..., k])
    return top - x.fsum(y_true * y_pred, -1)


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
))
