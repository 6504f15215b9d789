"""NT-Xent (normalised temperature-scaled cross-entropy). Spec: spec/losses/ntxent.md.

For embeddings ``x`` of shape ``(B, D)`` (``y_pred``) with group labels ``g`` (``y_true``,
shape ``(B,)``): ``u_i = x_i / sqrt(max(||x_i||**2, eps))``, ``s_ij = u_i . u_j / T``; over
the positive pairs ``P = {(i, j): i != j, g_i = g_j}`` and the negatives
``N_i = {k: g_k != g_i}`` of each anchor, the mean of
``log(exp(s_ij) + sum_{k in N_i} exp(s_ik)) - s_ij``. One value per batch; no positive
pair gives NaN (0/0). Optax: ``optax.losses.ntxent`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import logsumexp, softplus, sum2, two_product
from ..oracle import ops as x
from ..registry import LossDef, Param, block_elements, check_float_array, nonneg_float, positive_float, register


def _cosines(e: np.ndarray, eps: float) -> np.ndarray:
    """``u_i . u_j`` for all pairs: squared norms and dot products as compensated sums of
    exact products, so each cosine is within a few u."""
    ph, pl = two_product(e, e)
    ss = sum2(ph, lo=pl)
    norm = np.sqrt(np.maximum(ss, eps))
    b, d = e.shape
    # the products of a block of rows with every row at a time: (k, B, D) temporaries of
    # about 2**16 elements instead of one (B, B, D) set
    k = max(1, block_elements() // max(1, b * d))
    dots = np.empty((b, b))
    for i in range(0, b, k):
        gh, gl = two_product(e[i:i + k, None, :], e[None, :, :])
        dots[i:i + k] = sum2(gh, lo=gl)
    return dots / norm[:, None] / norm[None, :]


def reference(y_true: np.ndarray, y_pred: np.ndarray, temperature: float = 0.07, eps: float = 0.0) -> np.ndarray:
    """The batch's value in float64 (a 0-dim array). Each pair's term is
    ``softplus(lse_{N_i}(s_i.) - s_ij)``: no exponential overflows and ``log(1 + r)``
    keeps its accuracy for a small ``r``."""
    g = np.asarray(y_true, np.float64).reshape(-1)
    e = np.asarray(y_pred, np.float64)
    b = e.shape[0]
    with np.errstate(all="ignore"):
        s = _cosines(e, eps) / temperature
        same = g[:, None] == g[None, :]
        pos = same & ~np.eye(b, dtype=bool)
        lse_neg = logsumexp(np.where(same, -np.inf, s), axis=-1)[:, None]
        terms = np.where(pos, softplus(lse_neg - s), 0.0)
        return np.asarray(sum2(terms.reshape(-1)) / np.sum(pos))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, temperature: float = 0.07, eps: float = 0.0) -> np.ndarray:
    """The literal definition on exact values.

    Which pairs are positive is read from the (exact) labels with
    :func:`~lossref.oracle.ops.decide`; every term is a ``log1p`` of a sum of exponentials,
    so a ball's radius stays relative to the term.
    """
    g = y_true.reshape(-1)
    b = y_pred.shape[0]
    same = x.decide(x.eq(g[:, None], g[None, :]))  # a NaN label is in no group, not even its own
    pos = same & ~np.eye(b, dtype=bool)
    if not pos.any():  # 0/0 (on balls a NaN ball: NaN is the mpmath path's to give)
        return np.asarray(x.NAN, dtype=object)
    t, ep = x.num(temperature), x.num(eps)
    nrm = x.sqrt(x.maximum(x.fsum(y_pred * y_pred, -1), ep))
    dots = x.fsum(y_pred[:, None, :] * y_pred[None, :, :], -1)  # (B, B)
    s = x.div(x.div(dots, nrm[:, None] * nrm[None, :]), t)
    e = x.exp(s)
    neg = np.asarray([x.fsum(e[i, ~same[i]])[()] for i in range(b)], dtype=object)
    # log(e^s + neg) - s written as log1p(neg e^-s): exactly 0 without negatives
    terms = x.log1p(neg[:, None] * x.exp(-s))[pos]
    return np.asarray(x.div(x.fsum(terms), x.num(terms.size)), dtype=object)


def check_inputs(name: str, y_true, y_pred):
    """Embeddings ``(B, D)`` and labels ``(B,)``, both float."""
    e = check_float_array(y_pred, "y_pred")
    g = check_float_array(y_true, "y_true")
    if e.ndim != 2 or g.shape != e.shape[:1]:
        raise ValueError(f"{name}: expected embeddings (B, D) and labels (B,); got {e.shape} and {g.shape}")
    return g, e


LOSS = register(LossDef(
    name="ntxent",
    summary="NT-Xent: mean over positive pairs (i, j) of log(exp s_ij + sum_{k in N_i} exp s_ik) - s_ij, "
            "s = cosine / temperature, norms clamped at sqrt(eps); y_true labels (B,), y_pred (B, D)",
    stage2="structured",
    params={
        "temperature": Param(0.07, "number > 0", positive_float),
        "eps": Param(0.0, "number >= 0: the squared norm is clamped below at eps", nonneg_float),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
))
