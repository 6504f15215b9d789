"""Ranking softmax loss (listwise softmax cross-entropy). Spec: spec/losses/ranking_softmax.md.

Per list (the last axis) with relevance labels ``y``, scores ``s``, item weights ``w`` and
a validity mask ``v``: ``-sum_{i valid} w_i y_i log softmax_valid(s)_i``, the softmax taken
over the valid items only; a list without a valid item gives 0. The labels are not
normalised. Optax: ``optax.losses.ranking_softmax_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

import mpmath
import numpy as np

from ..numerics import log_softmax, sum2, two_product
from ..registry import LossDef, Param, check_float_array, real_array_error, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, weights=1.0, where=1.0) -> np.ndarray:
    """Per-list value in float64: :func:`~lossref.numerics.log_softmax` of the valid
    scores (masked ones as ``-inf``), the products ``(w y) log p`` exact where ``w y`` is
    (formats up to float32) and summed compensated: ``|error| <= 3 u sum|w y log p|``."""
    y, s = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    valid = np.broadcast_to(np.asarray(where) != 0, s.shape)
    with np.errstate(all="ignore"):
        logp = log_softmax(np.where(valid, s, -np.inf))
        wy = y * np.broadcast_to(np.asarray(weights, np.float64), s.shape)
        h, l = two_product(wy, logp)
        h, l = np.where(valid, h, 0.0), np.where(valid & np.isfinite(h), l, 0.0)
        return -sum2(h, lo=l)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, weights=1.0, where=1.0) -> np.ndarray:
    """The literal definition on exact values: the valid items' log-sum-exp, then the sum."""
    valid = np.broadcast_to(np.asarray(where != 0, dtype=bool), y_pred.shape)
    wy = y_true * np.broadcast_to(weights, y_pred.shape)
    lead, n = y_pred.shape[:-1], y_pred.shape[-1]
    s2, wy2, v2 = y_pred.reshape(-1, n), wy.reshape(-1, n), valid.reshape(-1, n)
    out = np.empty(s2.shape[0], dtype=object)
    for r in range(s2.shape[0]):  # the oracle loops over lists: the literal definition
        idx = np.flatnonzero(v2[r])
        if idx.size == 0:
            out[r] = mpmath.mpf(0)
            continue
        # log softmax_i = -log1p(sum_{j != i} exp(s_j - s_i)): exactly 0 for a lone valid item
        # (s_i - log(exp(s_i)) is 0 too, but never decided to be at any precision)
        items = list(s2[r, idx])
        lsm = [-mpmath.log1p(mpmath.fsum(mpmath.exp(u - v) for k, u in enumerate(items) if k != i))
               for i, v in enumerate(items)]
        out[r] = -mpmath.fsum(c * ls for c, ls in zip(wy2[r, idx], lsm))
    return out.reshape(lead)


def check_inputs(name: str, y_true, y_pred):
    """Float labels and scores of one shape with a last (list) axis."""
    s = check_float_array(y_pred, "y_pred")
    y = check_float_array(y_true, "y_true")
    if y.shape != s.shape or s.ndim == 0:
        raise ValueError(f"{name}: y_true shape {y.shape} and y_pred shape {s.shape} must be equal, "
                         "with a last (list) axis")
    return y, s


LOSS = register(LossDef(
    name="ranking_softmax",
    summary="-sum_{i valid} w_i y_i log softmax_valid(s)_i over the last (list) axis; "
            "labels not normalised, a list with no valid item gives 0",
    stage2="structured",
    rowwise=True,
    params={
        "weights": Param(1.0, "number or array of item weights broadcasting to the inputs' shape",
                         real_array_error),
        "where": Param(1.0, "number or 0/1 array: the valid items (non-zero), broadcasting to the inputs' shape",
                       real_array_error),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    arrays=("weights", "where"),
))
