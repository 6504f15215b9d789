"""Generalized Dice with inverse squared class volumes. Spec: spec/losses/generalized_dice.md.

``y_true`` (B, ..., C) targets, ``y_pred`` (B, ..., C) scores. With the class volumes
``V_c = sum(y[..., c])`` over every axis but the last (the batch included), the weights
``w_c = 1 / (V_c**2 + eps)`` normalised to ``C w_c / sum(w)``, and the per-class
:mod:`soft_dice <lossref.losses.soft_dice>` values ``d`` (``alpha = beta = 1/2``, summed
over the axes between the batch and the classes), the loss is the mean of ``w_c d[..., c]``
over the batch and the classes (the first class left out with `ignore_background`, its
weight still in the normalisation). One scalar for the whole batch, as Optax's
``multiclass_generalized_dice_loss`` (Sudre et al. 2017 weight the classes by ``1/V_c**2``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..numerics import sum2, two_product
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, optional_nonneg_float, register
from . import soft_dice
from .dice import check_overlap_inputs


def _check(name: str, y_true, y_pred):
    t, p = check_overlap_inputs(name, y_true, y_pred)
    if p.ndim < 1:
        raise ValueError(f"{name}: y_pred needs a class axis (the last one); got shape {p.shape}")
    return t, p


def reference(y_true: np.ndarray, y_pred: np.ndarray, smooth: float = 1.0,
              activation: Optional[str] = "softmax", ignore_background: bool = False,
              epsilon: float = 1e-7) -> np.ndarray:
    """The scalar in float64: weights and mean from compensated sums."""
    y = np.asarray(y_true, dtype=np.float64)
    n_c = y.shape[-1]
    d = soft_dice.reference(y, y_pred, 0.5, 0.5, smooth, None, activation)
    with np.errstate(all="ignore"):
        vol = sum2(y.reshape(-1, n_c), axis=0)
        w = 1.0 / (vol * vol + epsilon)
        w = w / sum2(w) * n_c
        v = d * w
        if ignore_background and n_c > 1:
            v = v[..., 1:]
        return np.asarray(sum2(v.reshape(-1)) / v.size)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, smooth: float = 1.0,
                   activation: Optional[str] = "softmax", ignore_background: bool = False,
                   epsilon: float = 1e-7) -> dict:
    """VJP of :func:`reference`.

    Scores: the soft Dice VJP (:func:`soft_dice.grad_parts`) with the cotangent
    ``cot w_c / n`` (0 for a left-out background). Targets: that VJP's ``d/dy`` plus, through
    the volumes, ``(cot / n) C u_m' / U sum_c (u_c / U) (D_m - D_c)`` on every entry of class
    ``m`` (``u = 1 / (V**2 + eps)``, ``U = sum(u)``, ``u' = -2 V u**2``, ``D_c`` the sum of
    the included ``d[..., c]``): the differences keep the weighted mean ``sum w D / C``
    from cancelling against ``D_m``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    n_c = y.shape[-1]
    cot = np.asarray(cot, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = soft_dice.reference(y, y_pred, 0.5, 0.5, smooth, None, activation)
        vol = sum2(y.reshape(-1, n_c), axis=0)
        u = 1.0 / (vol * vol + epsilon)
        big_u = sum2(u)
        w = u / big_u * n_c
        keep = np.ones(n_c)
        if ignore_background and n_c > 1:
            keep[0] = 0.0
        n = d.size // n_c * int(keep.sum())
        gy, gz = soft_dice.grad_parts(y, y_pred, cot * w * keep / n, 0.5, 0.5, smooth, None, activation)
        dsum = sum2(d.reshape(-1, n_c), axis=0) * keep
        diff = dsum[:, None] - dsum[None, :]  # (m, c): D_m - D_c
        h, l = two_product(np.broadcast_to(u / big_u, diff.shape), diff)
        spread = sum2(h, lo=l)  # sum_c (u_c / U) (D_m - D_c)
        dvol = cot / n * n_c * (-2.0 * vol * u * (u / big_u)) * spread
        gy = gy + dvol
    return {"y_pred": gz, "y_true": gy}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, smooth=1.0, activation: Optional[str] = "softmax",
           ignore_background: bool = False, epsilon=1e-7) -> np.ndarray:
    """The literal definition on exact values."""
    n_c = y_true.shape[-1]
    d = soft_dice.oracle(y_true, y_pred, 0.5, 0.5, smooth, None, activation)
    vol = x.fsum(y_true.reshape(-1, n_c), 0)
    w = x.div(x.num(1), vol * vol + x.num(epsilon))
    w = x.div(w * n_c, np.full(n_c, x.fsum(w), dtype=object))
    v = d * w
    if ignore_background and n_c > 1:
        v = v[..., 1:]
    return np.asarray(x.div(x.fsum(v.reshape(-1)), v.size), dtype=object)


LOSS = register(LossDef(
    name="generalized_dice",
    summary="mean over batch and classes of soft Dice weighted by C (1/V_c^2) / sum(1/V^2)",
    stage2="structured",
    params={
        "smooth": Param(1.0, "finite float: added to the numerator and the denominator", finite_number),
        "activation": soft_dice.LOSS.params["activation"],
        "ignore_background": Param(False, "bool: leave class 0 out of the mean (not of the weights)",
                                   lambda v: None if isinstance(v, bool) else "expected True or False"),
        "epsilon": Param(1e-7, "float >= 0: added to each squared volume", optional_nonneg_float),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=_check,
    grad_ref=grad_reference,
))
