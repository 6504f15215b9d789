"""Label smoothing: ``(1 - alpha) y + alpha / k`` elementwise. Spec: spec/losses/smooth_labels.md.

Not a loss but the preprocessing step of the cross-entropy losses; it is catalogued so
that it has a reference, an oracle and a spec page like every value lossref computes.
The catalogue's two inputs are the labels ``y = y_true`` and ``k = y_pred``, the number
of classes each label is shared among (a positive integer held as a float; 0 gives
IEEE's ``alpha / 0``). Optax: ``optax.losses.smooth_labels``
(:func:`lossref.optax.losses.smooth_labels`). The values keep the input's shape, so the
entry is structured (its "per-sample" values are the smoothed labels).
"""

from __future__ import annotations

import numpy as np

from ..numerics import sum2, sum_k3, two_product
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """Elementwise value in float64, about one rounding even where the two terms cancel.

    ``y - alpha y + alpha / k`` as five float64 terms whose sum is the exact value (up to
    ``u^2`` of the quotient): ``alpha y`` split by TwoProduct, ``alpha / k`` as its
    quotient ``q`` and the remainder ``(alpha - q k) / k`` (``alpha - fl(q k)`` is exact by
    Sterbenz). The compensated sum leaves ``u |v| + 18 u^2 sum|terms|``. Infinite or NaN
    inputs, and ``k = 0``, take IEEE's value of the plain formula.
    """
    y, k = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    a = float(alpha)
    with np.errstate(all="ignore"):
        h, lo = two_product(np.full(y.shape, a), y)
        q = a / k
        qh, ql = two_product(q, k)
        r = ((a - qh) - ql) / k
        out = sum2(np.stack([y, -h, -lo, q, r], axis=-1), axis=-1)
        finite = np.isfinite(y) & np.isfinite(q)
        if not np.all(finite):
            out = np.where(finite, out, (1.0 - a) * y + q)
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """The literal definition on exact values."""
    a = x.num(alpha)  # exact: a float or an int
    return (1 - a) * y_true + x.div(a, y_pred)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, alpha: float = 0.1) -> dict:
    """VJP of :func:`reference`: ``{"y_true": cot (1 - alpha), "y_pred": -cot alpha / k^2}``
    of the inputs' broadcast shape. ``cot (1 - alpha)`` is ``cot - alpha cot`` with the
    product split by TwoProduct (one rounding: ``1 - alpha`` itself would round for
    alpha < 1/2); ``alpha / k / k`` never forms ``k^2`` (no overflow for |k| > 2^512)."""
    y, k = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    a = float(alpha)
    cot = np.broadcast_to(np.asarray(cot, np.float64), y.shape)
    with np.errstate(all="ignore"):
        h, lo = two_product(np.full(y.shape, a), cot)
        gy = sum_k3([cot, -h, -lo])
        gy = np.where(np.isfinite(gy), gy, (1.0 - a) * cot)
        gk = -cot * (a / k / k)
    return {"y_true": gy, "y_pred": gk}


LOSS = register(LossDef(
    name="smooth_labels",
    summary="(1 - alpha) y + alpha / k elementwise (label smoothing; k = y_pred, the class count)",
    stage2="structured",
    params={"alpha": Param(0.1, "finite number: the smoothing factor", finite_number)},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    rowwise=True,
    grad_ref=grad_reference,
))
