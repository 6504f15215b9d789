"""Circle loss (Sun et al. 2020) in cosine-distance form. Spec: spec/losses/circle.md.

For anchor i (row of ``y_pred``) and reference j (row of ``ref_embeddings``, default
``y_pred``), ``d_ij = max(1 - p_i . r_j, 0)``; positives share the label (the pair
``(i, i)`` removed if `remove_diagonal`), negatives do not. With margin m::

    L_p = logsumexp_{j in P_i} -gamma * max(m + d, 0) * (m - d)
    L_n = logsumexp_{j in N_i}  gamma * max(optim_neg - d, 0) * (delta_neg - d)
    loss_i = softplus(L_p + L_n)

``optim_neg`` and ``delta_neg`` default to exactly ``1 + m`` and ``1 - m``; an empty
positive or negative set gives ``logsumexp = -inf`` and the loss 0.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import (logsumexp, logsumexp_merge, logsumexp_rest, sigmoid, softplus, sum2_parts,
                        two_product, two_sum)
from ..oracle import ops as x
from ..registry import (LossDef, Param, block_elements, check_float_array, finite_number,
                        register, reuse_freed_memory)
from .sparse_categorical_crossentropy import exact_labels


def _optional_number(v) -> Optional[str]:
    return None if v is None else finite_number(v)


def _bool(v) -> Optional[str]:
    return None if isinstance(v, (bool, np.bool_)) else "expected True or False"


def _optional_labels(v) -> Optional[str]:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        return f"expected numeric labels; got dtype {a.dtype}"
    if not (a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)):
        return f"expected shape (R,) or (R, 1); got shape {a.shape}"
    if not np.all(np.isfinite(a.astype(np.float64))):
        return "labels must be finite"
    return None


def _optional_embeddings(v) -> Optional[str]:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        return f"expected a float array; got dtype {a.dtype}"
    return None if a.ndim == 2 else f"expected shape (R, D); got shape {a.shape}"


def labels_1d(labels: Any, name: str, loss: str = "circle") -> np.ndarray:
    """Labels of shape (N,) or (N, 1) as a float64 vector of finite values."""
    a = np.asarray(labels)
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        raise TypeError(f"{loss}: {name} must hold numeric labels; got dtype {a.dtype}")
    if not (a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)):
        raise ValueError(f"{loss}: {name} must have shape (batch_size,) or (batch_size, 1); "
                         f"got shape {a.shape}")
    a = a.astype(np.float64).reshape(-1)
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{loss}: {name} must be finite labels; got {float(a[i])!r} at index {i}")
    return a


def check_inputs(name: str, y_true: Any, y_pred: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Validated ``(labels (B,), embeddings (B, D))``; ``ValueError`` with the shapes."""
    p = check_float_array(y_pred, "y_pred")
    if p.ndim != 2:
        raise ValueError(f"{name}: y_pred must have shape (batch_size, embedding_dim); "
                         f"got shape {p.shape}")
    t = labels_1d(y_true, "y_true", name)
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"{name}: batch sizes differ: y_true shape {np.shape(y_true)}, "
                         f"y_pred shape {p.shape}")
    return t, p


def references(y_true: np.ndarray, y_pred: np.ndarray, ref_labels: Any,
               ref_embeddings: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(ref_labels (R,), ref_embeddings (R, D))`` after the defaults; shapes checked."""
    r_lab = y_true if ref_labels is None else labels_1d(ref_labels, "ref_labels")
    # kept in its format (the parameter check admits float arrays only): widened a block
    # at a time by the reference
    r_emb = y_pred if ref_embeddings is None else np.asarray(ref_embeddings)
    if r_emb.ndim != 2 or r_emb.shape[1] != y_pred.shape[1]:
        raise ValueError(f"circle: ref_embeddings shape {r_emb.shape} must be (R, {y_pred.shape[1]}) "
                         f"to match y_pred shape {y_pred.shape}")
    if r_lab.shape[0] != r_emb.shape[0]:
        raise ValueError(f"circle: ref_labels shape {r_lab.shape} and ref_embeddings shape "
                         f"{r_emb.shape} must have the same number of rows")
    return r_lab, r_emb


def pair_masks(labels: np.ndarray, ref_labels: np.ndarray, remove_diagonal: bool,
               first_row: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Boolean positive and negative pair masks of anchors ``first_row, ...`` against
    references ``0, ...``; the pair (i, i) leaves the positives only (Keras's ``eye(B, R)``).
    A block of references starting at ``j`` takes ``first_row = i - j``."""
    same = np.asarray(labels)[:, None] == np.asarray(ref_labels)[None, :]
    pos = same
    if remove_diagonal:
        pos = same & ~np.eye(same.shape[0], same.shape[1], k=first_row, dtype=bool)
    return pos, ~same


def constants(margin: float, optim_neg: Optional[float],
              delta_neg: Optional[float]) -> Tuple[float, float]:
    """``(1 + margin, 1 - margin)`` unless given (the Keras dialect passes them rounded)."""
    return (1 + margin if optim_neg is None else optim_neg,
            1 - margin if delta_neg is None else delta_neg)


def reference(y_true: np.ndarray, y_pred: np.ndarray, gamma: float, margin: float,
              remove_diagonal: bool, ref_labels: Optional[np.ndarray],
              ref_embeddings: Optional[np.ndarray], optim_neg: Optional[float],
              delta_neg: Optional[float]) -> np.ndarray:
    """Per-anchor loss in float64, from embeddings of any float format.

    The ``(B, R)`` pairs are visited in square tiles (:func:`_tile`): a block of anchors,
    widened to float64 once, meets the references a block at a time (each widened when it
    is used), so neither a float64 copy of the embeddings nor a ``(B, R)`` matrix is
    formed. Each tile gives the ``(max, rest)`` pairs of its anchors' log-sum-exps, merged
    per block of anchors by :class:`_Merged`. Without separate references the pairs (i, j)
    and (j, i) have one distance and one kind, so a tile off the diagonal serves both
    blocks: half the matrix products.
    """
    r_lab, r_emb = references(y_true, y_pred, ref_labels, ref_embeddings)
    o_n, d_n = constants(margin, optim_neg, delta_neg)
    n_b, n_r = y_pred.shape[0], r_emb.shape[0]
    chunk = block_elements()
    # rows of a block: at most 8 blocks of widened elements, and a tile of 4 blocks of
    # distances; large tiles keep the matrix products few (each one synchronises BLAS's threads)
    step = max(1, min(math.isqrt(4 * chunk), 8 * chunk // max(y_pred.shape[1], 1)))
    symmetric = ref_labels is None and ref_embeddings is None
    weights = functools.partial(_member_weights, gamma=gamma, margin=margin, o_n=o_n, d_n=d_n)
    blocks = range(0, n_b, step)
    merged = {i: (_Merged(), _Merged()) for i in blocks}  # positives, negatives
    out = np.empty(n_b)
    reuse_freed_memory()
    for i in blocks:
        a = slice(i, min(n_b, i + step))
        anchors = y_pred[a].astype(np.float64)
        for j in range(i if symmetric else 0, max(n_r, 1), step):
            b = slice(j, min(n_r, j + step))
            both = symmetric and j != i  # the tile serves block j's anchors too
            refs = anchors if symmetric and j == i else r_emb[b].astype(np.float64)
            rows, cols = _tile(anchors, y_true[a], refs, r_lab[b], remove_diagonal, i - j, both,
                               max(1, chunk // step), weights)
            for kind in (0, 1):
                merged[i][kind].add(rows[kind])
                if both:
                    merged[j][kind].add(cols[kind])
        l_p, l_n = (m.logsumexp() for m in merged.pop(i))  # block i has all its pairs now
        out[a] = softplus(l_p + l_n)
    return out


def _tile(anchors: np.ndarray, labels: np.ndarray, refs: np.ndarray, ref_labels: np.ndarray,
          remove_diagonal: bool, diagonal: int, both: bool, slab: int, weights):
    """The ``(max, rest)`` pairs (:func:`~lossref.numerics.logsumexp_rest`) of the positives
    and the negatives of float64 `anchors` against `refs` (pair (i, i + diagonal): an
    anchor with itself), per anchor, and per reference if `both` (else None).

    One matrix product gives the distances; the weights are formed `slab` rows at a time,
    so their temporaries stay a fraction of the tile.
    """
    d = anchors @ refs.T
    np.subtract(1.0, d, out=d)
    np.maximum(d, 0.0, out=d)  # the distances, in place: temporaries are what large inputs pay
    rows, cols = ([], []), ([], [])
    for s in range(0, d.shape[0], slab):
        r = slice(s, s + slab)
        pos, neg = pair_masks(labels[r], ref_labels, remove_diagonal, first_row=diagonal + s)
        for kind, w in enumerate(weights(d[r], pos, neg)):
            rows[kind].append(logsumexp_rest(w, axis=1))
            if both:
                cols[kind].append(logsumexp_rest(w, axis=0))
    rows = [tuple(np.concatenate(v, axis=0) for v in zip(*parts)) for parts in rows]
    if not both:
        return rows, None
    # the slabs of a column are disjoint parts of it: one merge each
    cols = [tuple(v.T for v in logsumexp_merge(*(np.concatenate(v, axis=0) for v in zip(*parts)), axis=0))
            for parts in cols]
    return rows, cols


def _member_weights(d: np.ndarray, pos: np.ndarray, neg: np.ndarray, gamma: float, margin: float,
                    o_n: float, d_n: float):
    """The weights of the distances `d` of the positives, then of the negatives, non-members
    at -inf. A generator: the negatives reuse the positives' buffer once those are used."""
    # -gamma max(m + d, 0) (m - d) and gamma max(o_n - d, 0) (d_n - d), the operations of
    # the formula in its order
    w = np.add(margin, d)
    np.maximum(w, 0.0, out=w)
    w *= -gamma
    t = np.subtract(margin, d)
    # a clamped factor is an exact 0 (kept where d overflowed to inf and 0 * inf is NaN)
    np.multiply(w, t, out=w, where=w != 0)
    np.copyto(w, -np.inf, where=~pos)  # members only: an empty set is -inf
    yield w
    np.subtract(o_n, d, out=w)
    np.maximum(w, 0.0, out=w)
    w *= gamma
    np.multiply(w, np.subtract(d_n, d, out=t), out=w, where=w != 0)
    np.copyto(w, -np.inf, where=~neg)
    yield w


class _Merged:
    """The log-sum-exps of a block of anchors, from the ``(max, rest)`` pairs of tiles.

    The pairs are merged as a balanced tree (a binary counter over the tiles: level k holds
    the merge of 2**k tiles), so a term goes through about ``log2(tiles)`` merges, as a
    term of one pass goes through the levels of a pairwise sum, and the error stays that
    of one pass; a single tile is taken exactly.
    """

    def __init__(self) -> None:
        self.levels: list = []

    def add(self, part) -> None:
        for k, held in enumerate(self.levels):
            if held is None:
                self.levels[k] = part
                return
            part, self.levels[k] = _merge([held, part]), None
        self.levels.append(part)

    def logsumexp(self) -> np.ndarray:
        m, rest = _merge([p for p in reversed(self.levels) if p is not None])
        return (m + np.log1p(rest))[:, 0]


def _merge(parts):
    """One ``(max, rest)`` pair of the union of `parts` (:func:`~lossref.numerics.logsumexp_merge`)."""
    if len(parts) == 1:
        return parts[0]
    return logsumexp_merge(np.concatenate([p[0] for p in parts], axis=1),
                           np.concatenate([p[1] for p in parts], axis=1), axis=1)


def _dots2(a: np.ndarray, b: np.ndarray):
    """``a @ b.T`` as double-doubles ``(hi, lo)``: compensated sums of exact products, a
    block of rows of `a` at a time."""
    n, r = a.shape[0], b.shape[0]
    hi, lo = np.empty((n, r)), np.empty((n, r))
    k = max(1, block_elements() // max(1, r * a.shape[1]))
    for i in range(0, n, k):
        h, l = two_product(a[i:i + k, None, :], b[None, :, :])
        hi[i:i + k], lo[i:i + k] = sum2_parts(h, lo=l)
    return hi, lo


def _matmul2(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``m @ b`` with compensated sums of exact products, a block of rows at a time."""
    n, r = m.shape
    out = np.empty((n, b.shape[1]))
    k = max(1, block_elements() // max(1, r * b.shape[1]))
    for i in range(0, n, k):
        h, l = two_product(m[i:i + k, :, None], b[None, :, :])
        out[i:i + k] = sum2_parts(h, axis=1, lo=l)[0]
    return out


def _slope(x: np.ndarray) -> np.ndarray:
    """Slope of ``max(x, 0)`` in x: 1 above, 1/2 at the tie (torch.maximum, jnp.maximum), 0 below."""
    return np.where(x > 0, 1.0, np.where(x == 0, 0.5, 0.0))


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, gamma: float, margin: float,
                   remove_diagonal: bool, ref_labels: Optional[np.ndarray],
                   ref_embeddings: Optional[np.ndarray], optim_neg: Optional[float],
                   delta_neg: Optional[float]) -> dict:
    """VJP of :func:`reference` with respect to the embeddings (and `ref_embeddings` where
    given); the labels only select pairs.

    ``dloss_i/dw = cot_i sigmoid(L_p + L_n) pi_ij``, ``pi`` the softmax of the members'
    weights. The weights' slopes in the distance are written without cancellation:
    ``dw_p/dd = 2 gamma d`` where ``m + d > 0`` (``-gamma (a'(m - d) - a)`` in general, so
    ``-gamma m`` at the tie ``m + d = 0`` and 0 below), ``dw_n/dd = gamma (2 d - o_n - d_n)``
    where ``o_n > d``, with ``2 - o_n - d_n`` exactly 0 by default, so ``-2 gamma s`` from
    the dot product ``s = 1 - d`` (``-gamma (d_n - o_n) / 2`` at the tie, 0 below). The
    clamp ``d = max(1 - s, 0)`` passes ``-1`` (1/2 at ``s = 1``). Every max splits 1/2 at a
    tie, as torch.maximum and jax.numpy.maximum (Keras's Circle uses ``ops.maximum``, with
    no stop-gradient on the weights). The distances come from double-double dot products.
    """
    r_lab, r_emb = references(y_true, y_pred, ref_labels, ref_embeddings)
    a = np.asarray(y_pred, np.float64)
    symmetric = ref_embeddings is None
    r = a if symmetric else np.asarray(r_emb, np.float64)
    cot = np.asarray(cot, np.float64)
    if a.shape[0] == 0 or r.shape[0] == 0:
        # no pairs: every set is empty, the loss a constant 0
        g0 = {"y_pred": np.zeros_like(a)}
        return g0 if symmetric else {**g0, "ref_embeddings": np.zeros_like(r)}
    m, g = float(margin), float(gamma)
    with np.errstate(all="ignore"):
        sh, sl = _dots2(a, r)
        dh, dl = two_sum(np.ones_like(sh), -sh)
        dl = np.where(np.isfinite(dh), dl - sl, 0.0)  # an overflowed dot product: 1 - s is +-inf
        gap = dh + dl  # 1 - s, accurate: its sign decides the clamp
        d = np.maximum(gap, 0.0)
        pos, neg = pair_masks(y_true, r_lab, remove_diagonal)
        o_n, d_n = constants(margin, optim_neg, delta_neg)
        # a clamped factor is an exact 0, so the weight is 0 also where the other factor
        # overflowed (d from a dot product beyond the float64 range)
        c_p = np.maximum(m + d, 0.0)
        c_n = np.maximum(o_n - d, 0.0)
        w_p = np.where(pos, np.where(c_p == 0, 0.0, -g * c_p * (m - d)), -np.inf)
        w_n = np.where(neg, np.where(c_n == 0, 0.0, g * c_n * (d_n - d)), -np.inf)
        l_p = logsumexp(w_p, axis=-1)[:, None]
        l_n = logsumexp(w_n, axis=-1)[:, None]
        top = cot[:, None] * sigmoid(l_p + l_n)
        pi_p = np.where(pos, np.exp(w_p - l_p), 0.0)
        pi_n = np.where(neg, np.exp(w_n - l_n), 0.0)
        # positives: slope of -gamma max(m + d, 0) (m - d) in d
        mh, ml = two_sum(np.full_like(dh, m), dh)
        mp = np.where(np.isfinite(mh), mh + (ml + dl), mh)
        mp = np.where(gap > 0, mp, m)  # m + max(1 - s, 0)
        sp = np.where(mp > 0, 2.0 * g * d, np.where(mp == 0, -g * m, 0.0))
        # negatives: slope of gamma max(o_n - d, 0) (d_n - d) in d
        if optim_neg is None and delta_neg is None:
            # o_n + d_n = 2 exactly: 2d - 2 = -2 s where d = 1 - s > 0, -2 where clamped
            sn_free = -2.0 * g * np.where(gap > 0, sh + sl, 1.0)
            tie_n = -0.5 * g * (-2.0 * m)  # d_n - o_n = -2m
            on_h, on_l = two_sum(np.full_like(dh, 1.0 + m), -d)
        else:
            t_h, t_l = two_sum(float(o_n), float(d_n))
            u_h, u_l = two_sum(2.0 * d, -np.full_like(d, t_h))
            sn_free = g * (u_h + (u_l - t_l))
            tie_n = -0.5 * g * (float(d_n) - float(o_n))
            on_h, on_l = two_sum(np.full_like(dh, float(o_n)), -d)
        on = np.where(np.isfinite(on_h), on_h + on_l, on_h)  # o_n - d: its sign decides the clamp
        sn = np.where(on > 0, sn_free, np.where(on == 0, tie_n, 0.0))
        gd = top * (np.where(pos, pi_p * sp, 0.0) + np.where(neg, pi_n * sn, 0.0))
        gs = -gd * _slope(gap)  # d = max(1 - s, 0)
        gs = np.where(pos | neg, gs, 0.0)
        ga = _matmul2(gs, r)
        gr = _matmul2(gs.T, a)
    if symmetric:
        return {"y_pred": ga + gr}
    return {"y_pred": ga, "ref_embeddings": gr}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, gamma: float, margin: float,
           remove_diagonal: bool, ref_labels: Optional[np.ndarray],
           ref_embeddings: Optional[np.ndarray], optim_neg: Optional[float],
           delta_neg: Optional[float]) -> np.ndarray:
    """The definition on exact values.

    ``softplus(L_p + L_n)`` is evaluated as ``log1p(S_p S_n)`` with ``S = sum exp(w)`` over
    the members, the same number (``exp(log S_p + log S_n)``): an empty set is an exact
    ``S = 0`` and the loss an exact 0, with no ``log 0 = -inf`` (which balls cannot hold:
    such anchors were all left to the mpmath path), and ``L_p + L_n`` cannot cancel.
    NaN and ``0 * inf`` propagate as ``-inf + inf`` did.
    """
    labels = exact_labels(y_true)  # the labels are finite inputs: float64 exactly
    r_lab = labels if ref_labels is None else labels_1d(_float_labels(ref_labels), "ref_labels")
    r_emb = y_pred if ref_embeddings is None else x.lift(np.asarray(ref_embeddings))
    n_b, n_r = y_pred.shape[0], r_emb.shape[0]
    dot = np.empty((n_b, n_r), dtype=object)
    for i in range(n_b):
        dot[i] = x.fsum(y_pred[i][None, :] * r_emb, -1)  # rounded at the working precision only
    one, m, g = x.num(1), x.num(margin), x.num(gamma)
    d = x.maximum(one - dot, 0)
    o_n = one + m if optim_neg is None else x.num(optim_neg)
    d_n = one - m if delta_neg is None else x.num(delta_neg)
    same = labels[:, None] == r_lab[None, :]
    pos = same & ~np.eye(n_b, n_r, dtype=bool) if remove_diagonal else same
    neg = ~same
    fpos, fneg = pos.astype(int).astype(object), neg.astype(int).astype(object)
    a_p = x.maximum((m + d) * fpos, 0)
    a_n = x.maximum((o_n - d) * fneg, 0)
    w_p = -g * a_p * (m - d)
    w_n = g * a_n * (d_n - d)
    s_p = x.fsum(x.where(pos, x.exp(w_p), 0), -1)
    s_n = x.fsum(x.where(neg, x.exp(w_n), 0), -1)
    return x.log1p(s_p * s_n)


def _float_labels(v) -> np.ndarray:
    """Labels given as floats, or as exact numbers (a dialect's array parameter), as float64."""
    a = np.asarray(v)
    return exact_labels(a) if a.dtype == object else a


LOSS = register(LossDef(
    name="circle",
    summary="softplus(logsumexp over positives + logsumexp over negatives) per anchor, "
            "cosine distances within the batch",
    stage2="structured",
    params={
        "gamma": Param(80.0, "finite float (scale)", finite_number),
        "margin": Param(0.4, "finite float (relaxation m)", finite_number),
        "remove_diagonal": Param(True, "bool: drop the pair (i, i) from the positives", _bool),
        "ref_labels": Param(None, "None (y_true) or labels of shape (R,)", _optional_labels),
        "ref_embeddings": Param(None, "None (y_pred) or floats of shape (R, D)",
                                _optional_embeddings),
        "optim_neg": Param(None, "None (exactly 1 + margin) or a finite float", _optional_number),
        "delta_neg": Param(None, "None (exactly 1 - margin) or a finite float", _optional_number),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    native=True,
    grad_ref=grad_reference,
))
