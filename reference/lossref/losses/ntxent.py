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

from ..numerics import logsumexp, sigmoid, softplus, sum2, two_product
from ..oracle import ops as x
from ..registry import LossDef, Param, block_elements, check_float_array, nonneg_float, positive_float, register


def _scaled_rows(e: np.ndarray, eps: float):
    """``(w, k, n)``: rows ``w = e 2**-k`` and ``n = max(||e||**2, eps)**(1/2) 2**-k``, with
    ``k`` the exponent of a row's largest entry where that is above 2**500 (else 0), so that
    the squares of huge rows do not overflow (their norms are far above the clamp)."""
    with np.errstate(all="ignore"):
        top = np.max(np.where(np.isfinite(e), np.abs(e), 0.0), axis=-1, initial=0.0)
    k = np.where(top > 2.0 ** 500, np.frexp(top)[1], 0)
    w = np.ldexp(e, -k[:, None])
    ph, pl = two_product(w, w)
    ss = sum2(ph, lo=pl)
    return w, k, np.sqrt(np.where(k > 0, ss, np.maximum(ss, eps)))


def _cosines(e: np.ndarray, eps: float) -> np.ndarray:
    """``u_i . u_j`` for all pairs: squared norms and dot products as compensated sums of
    exact products, so each cosine is within a few u."""
    e, _, norm = _scaled_rows(e, eps)
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


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, temperature: float = 0.07,
                   eps: float = 0.0) -> dict:
    """VJP of :func:`reference` with respect to the embeddings (the labels only group them).

    With ``c = cot / |P|``, ``r_ij = sigmoid(lse_{N_i} - s_ij)`` (the slope of each pair's
    softplus) and ``pi_ik = exp(s_ik - lse_{N_i})``: ``dL/ds_ij = -c r_ij`` on the positive
    pairs and ``c pi_ik sum_{j in P_i} r_ij`` on the negatives. Then ``g_i = sum_j (G_ij +
    G_ji) u_j / T`` (compensated sums of exact products) and through the normalisation
    ``(g_i - h u_i (u_i . g_i)) / n_i``, ``h`` the slope of ``max(||x||**2, eps)`` in its
    first argument (1 above eps, 1/2 at it, 0 below: the clamped norm is a constant).
    """
    g = np.asarray(y_true, np.float64).reshape(-1)
    e = np.asarray(y_pred, np.float64)
    b = e.shape[0]
    with np.errstate(all="ignore"):
        same = g[:, None] == g[None, :]
        pos = same & ~np.eye(b, dtype=bool)
        if not np.any(pos):  # no positive pair: the value is 0/0, a constant NaN
            return {"y_pred": np.zeros_like(e)}
        w, sk, norm = _scaled_rows(e, eps)  # e = w 2**sk, ||e|| = norm 2**sk
        ph, pl = two_product(w, w)
        ss = sum2(ph, lo=pl)
        u = w / norm[:, None]
        s = _cosines(e, eps) / temperature
        lse = logsumexp(np.where(same, -np.inf, s), axis=-1)[:, None]
        c = np.asarray(cot, np.float64) / np.sum(pos)
        slope = np.where(pos, sigmoid(lse - s), 0.0)
        weight = np.where(same, 0.0, np.exp(s - lse)) * np.sum(slope, axis=-1, keepdims=True)
        gs = c * (weight - slope)  # the two masks are disjoint: no cancellation
        m = (gs + gs.T) / temperature
        k = max(1, block_elements() // max(1, b * e.shape[1]))
        gu = np.empty_like(e)
        for i in range(0, b, k):  # (k, B, D) products at a time
            hh, ll = two_product(m[i:i + k, :, None], u[None, :, :])
            gu[i:i + k] = sum2(hh, axis=1, lo=ll)
        hh, ll = two_product(u, gu)
        along = sum2(hh, lo=ll)[:, None]
        h = np.where((sk > 0) | (ss > eps), 1.0, np.where(ss == eps, 0.5, 0.0))[:, None]
        gx = np.ldexp((gu - h * u * along) / norm[:, None], -sk[:, None])
    return {"y_pred": gx}


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
    grad_ref=grad_reference,
))
