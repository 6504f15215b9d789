"""Ranking softmax loss (listwise softmax cross-entropy). Spec: spec/losses/ranking_softmax.md.

Per list (the last axis) with relevance labels ``y``, scores ``s``, item weights ``w`` and
a validity mask ``v``: ``-sum_{i valid} w_i y_i log softmax_valid(s)_i``, the softmax taken
over the valid items only; a list without a valid item gives 0. The labels are not
normalised. Optax: ``optax.losses.ranking_softmax_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import log_softmax, sum2, two_product
from ..oracle import ops as x
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


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, weights=1.0, where=1.0) -> dict:
    """VJP of :func:`reference`. With ``a = w y`` on the valid items and ``A = sum(a)``:
    scores ``cot (p_k A - a_k)``, the product exact before the one subtraction; labels
    ``-cot w log p``, weights ``-cot y log p``; masked items and the mask itself get 0
    (`where` only selects items)."""
    y, s = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    valid = np.broadcast_to(np.asarray(where) != 0, s.shape)
    w = np.broadcast_to(np.asarray(weights, np.float64), s.shape)
    c = np.asarray(cot, np.float64)[..., None]
    with np.errstate(all="ignore"):
        logp = log_softmax(np.where(valid, s, -np.inf))
        p = np.where(valid, np.exp(logp), 0.0)
        h, l = two_product(y, w)
        a = np.where(valid, h, 0.0)
        total = sum2(a, lo=np.where(valid, l, 0.0))[..., None]
        ph, pl = two_product(p, total)
        gs = np.where(valid, c * ((ph - a) + (pl - np.where(valid, l, 0.0))), 0.0)
        big = ~np.isfinite(total[..., 0]) & ~np.any(np.isnan(a), axis=-1)
        if np.any(big):
            # an infinite label weight: p_k A - a_k = p_k sum_{i != k} a_i - a_k (1 - p_k),
            # the sum over the others taken without the subtraction inf - inf
            others = np.concatenate([np.zeros_like(a[..., :1]), np.cumsum(a, -1)[..., :-1]], -1) + \
                np.concatenate([np.cumsum(a[..., ::-1], -1)[..., ::-1][..., 1:], np.zeros_like(a[..., :1])], -1)
            # (p and 1 - p are positive exactly where they round to 0: an infinite factor wins)
            alt = c * (np.where(p == 0, np.where(np.isinf(others), others, 0.0), p * others)
                       - np.where(p == 1, np.where(np.isinf(a), a, 0.0), a * (1.0 - p)))
            gs = np.where(big[..., None] & valid, alt, gs)
        gy = np.where(valid, -c * (w * logp), 0.0)
        gw = np.where(valid, -c * (y * logp), 0.0)
        # a list stage 3 gives no weight (optax's NaN mean made 0) contributes 0, also where
        # its terms are infinite
        gs, gy, gw = (np.where(c == 0, 0.0, g) for g in (gs, gy, gw))
    return {"y_pred": gs, "y_true": gy, "weights": gw, "where": np.zeros(s.shape)}


def _log_softmax(items: np.ndarray) -> np.ndarray:
    """``log softmax(s)_i = -log1p(sum_{j != i} exp(s_j - s_i))`` of one list's exact scores:
    exactly 0 for a lone item (``s_i - log(exp(s_i))`` is 0 too, but never decided to be
    at any precision).

    Finite scores take ``sum_{j != i} exp(s_j - s_i) = exp(m - s_i) sum_{j != i} exp(s_j - m)``
    (``m`` the largest score) with the sums over ``j != i`` as a prefix plus a suffix of
    positive terms: the same value in O(n) instead of O(n**2) exponentials, with no
    cancellation. A list with an infinity or a NaN keeps the pairwise form and its IEEE
    value (on balls, where such a score is a NaN ball, it is NaN either way).
    """
    n = items.size
    if all(f is not None and bool(f) for f in x.isfinite(items)):
        m = items[0]
        for v in items[1:]:
            m = x.maximum(m, v)[()]
        # the shift cancels from the value: differentiated, it is a constant, so no pair of
        # cancelling paths through it meets an infinite label weight (inf - inf)
        m = x.value_of(m)
        e = x.exp(items - m)
        pre, post = [x.num(0)], [x.num(0)]  # exclusive prefix and suffix sums
        for i in range(n - 1):
            pre.append(pre[-1] + e[i])
            post.append(post[-1] + e[n - 1 - i])
        others = np.asarray(pre, dtype=object) + np.asarray(post[::-1], dtype=object)
        return -x.log1p(others * x.exp(m - items))
    off = ~np.eye(n, dtype=bool)
    diff = (items[None, :] - items[:, None])[off].reshape(n, n - 1)  # row i: s_j - s_i, j != i
    return -x.log1p(x.fsum(x.exp(diff), -1))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, weights=1.0, where=1.0) -> np.ndarray:
    """The literal definition on exact values: the valid items' log softmax, then the sum.

    The array parameters arrive as floats or exact numbers of either backend: they are
    lifted here, inside the evaluation. Which items are valid is read from the (exact)
    `where` with :func:`~lossref.oracle.ops.decide`.
    """
    valid = x.decide(np.broadcast_to(x.lnot(x.eq(x.lift(where), 0)), y_pred.shape))
    wy = y_true * np.broadcast_to(x.lift(weights), y_pred.shape)
    lead, n = y_pred.shape[:-1], y_pred.shape[-1]
    s2, wy2, v2 = y_pred.reshape(-1, n), wy.reshape(-1, n), valid.reshape(-1, n)
    out = np.empty(s2.shape[0], dtype=object)
    for r in range(s2.shape[0]):  # the oracle loops over lists: the literal definition
        idx = np.flatnonzero(v2[r])
        if idx.size == 0:
            out[r] = x.num(0)
            continue
        out[r] = -x.fsum(wy2[r, idx] * _log_softmax(s2[r, idx]))[()]
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
    grad_ref=grad_reference,
))
