"""Dice loss. Spec: spec/losses/dice.md.

Over the axes `axis` (None: all of them, giving one scalar for the whole batch):
``1 - 2 sum(y p) / (sum(y) + sum(p) + epsilon)``, with `epsilon` only in the
denominator (``epsilon=None``: no smoothing, 0/0 gives NaN). A structured loss.
"""

from __future__ import annotations

import numpy as np

from ..numerics import axes_last, normalize_axes, overlap_ratio
from ..oracle import ops as x
from ..registry import LossDef, Param, check_float_array, optional_nonneg_float, register


def check_overlap_inputs(name: str, y_true, y_pred):
    """Float arrays of equal shape; rank 0 is allowed (the sums then have one term)."""
    p = check_float_array(y_pred, "y_pred")
    t = check_float_array(y_true, "y_true")
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true shape {t.shape} and y_pred shape {p.shape} must be equal")
    return t, p


def axis_param(v):
    """Param check of a reduction `axis`: None, an int or a tuple/list of ints."""
    def is_int(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)

    if v is None or is_int(v) or (isinstance(v, (tuple, list)) and all(is_int(a) for a in v)):
        return None
    return "expected None, an int or a tuple of ints"


AXIS = Param(None, "None (all axes), int or tuple of ints: the axes summed over", axis_param)
EPSILON = Param(1e-7, "None or float >= 0 (added to the denominator)", optional_nonneg_float)


def reference(y_true: np.ndarray, y_pred: np.ndarray, axis, epsilon) -> np.ndarray:
    """Per-group value in float64."""
    # 1 - 2I/D cancels for a near-perfect prediction: the ratio is formed as
    # (eps + sum(p(1-y)) + sum(y(1-p))) / (sum(y) + sum(p) + eps) from exact pieces
    return overlap_ratio(y_true, y_pred, normalize_axes(axis, y_pred.ndim), 1.0, 1.0, 2.0, epsilon)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, axis, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    axes = normalize_axes(axis, y_pred.ndim)
    y, p = axes_last(y_true, axes), axes_last(y_pred, axes)
    intersection = x.fsum(y * p, -1)
    den = x.fsum(y, -1) + x.fsum(p, -1) + (0 if epsilon is None else epsilon)
    return 1 - x.div(2 * intersection, den)


LOSS = register(LossDef(
    name="dice",
    summary="1 - 2 sum(y p) / (sum(y) + sum(p) + eps) over axis (None: everything)",
    stage2="structured",
    params={"axis": AXIS, "epsilon": EPSILON},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_overlap_inputs,
))
