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

from typing import Any, Optional, Tuple

import mpmath
import numpy as np

from ..numerics import logsumexp, softplus
from ..oracle import ops as x
from ..oracle import to_exact
from ..registry import LossDef, Param, check_float_array, finite_number, register

_CHUNK = 1 << 20  # pair entries per block of anchors: bounds the (B, R) temporaries


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
    r_emb = y_pred if ref_embeddings is None else np.asarray(ref_embeddings, dtype=np.float64)
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
    every reference; the pair (i, i) leaves the positives only (Keras's ``eye(B, R)``)."""
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
    """Per-anchor loss in float64, vectorised over blocks of anchors."""
    r_lab, r_emb = references(y_true, y_pred, ref_labels, ref_embeddings)
    o_n, d_n = constants(margin, optim_neg, delta_neg)
    n_b, n_r = y_pred.shape[0], r_emb.shape[0]
    out = np.empty(n_b)
    step = max(1, _CHUNK // max(n_r, 1))
    for i in range(0, n_b, step):  # blocks of anchors, each one vectorised
        rows = slice(i, min(n_b, i + step))
        d = np.maximum(1.0 - y_pred[rows] @ r_emb.T, 0.0)
        pos, neg = pair_masks(y_true[rows], r_lab, remove_diagonal, first_row=i)
        w_p = -gamma * np.maximum(margin + d, 0.0) * (margin - d)
        w_n = gamma * np.maximum(o_n - d, 0.0) * (d_n - d)
        # logsumexp of the members only; an empty set is -inf, so the loss is softplus(-inf) = 0
        l_p = logsumexp(np.where(pos, w_p, -np.inf), axis=1)
        l_n = logsumexp(np.where(neg, w_n, -np.inf), axis=1)
        out[rows] = softplus(l_p + l_n)
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray, gamma: float, margin: float,
           remove_diagonal: bool, ref_labels: Optional[np.ndarray],
           ref_embeddings: Optional[np.ndarray], optim_neg: Optional[float],
           delta_neg: Optional[float]) -> np.ndarray:
    """The literal definition on exact values."""
    r_lab = np.asarray(y_true if ref_labels is None else labels_1d(ref_labels, "ref_labels"),
                       dtype=object)
    r_emb = y_pred if ref_embeddings is None else to_exact(np.asarray(ref_embeddings))
    n_b, n_r = y_pred.shape[0], r_emb.shape[0]
    dot = np.empty((n_b, n_r), dtype=object)
    for i in range(n_b):
        dot[i] = x.fsum(y_pred[i][None, :] * r_emb, -1)  # rounded at the working precision only
    d = x.maximum(1 - dot, 0)
    o_n = 1 + mpmath.mpf(margin) if optim_neg is None else optim_neg
    d_n = 1 - mpmath.mpf(margin) if delta_neg is None else delta_neg
    same = np.asarray(y_true, dtype=object)[:, None] == r_lab[None, :]
    same = np.asarray(same, dtype=bool)
    pos = same & ~np.eye(n_b, n_r, dtype=bool) if remove_diagonal else same
    neg = ~same
    fpos, fneg = pos.astype(int).astype(object), neg.astype(int).astype(object)
    a_p = x.maximum((margin + d) * fpos, 0)
    a_n = x.maximum((o_n - d) * fneg, 0)
    w_p = -1 * gamma * a_p * (margin - d)
    w_n = gamma * a_n * (d_n - d)
    l_p = x.log(x.fsum(x.exp(x.where(pos, w_p, -x.INF)), -1))
    l_n = x.log(x.fsum(x.exp(x.where(neg, w_n, -x.INF)), -1))
    return x.log1p(x.exp(l_p + l_n))


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
))
