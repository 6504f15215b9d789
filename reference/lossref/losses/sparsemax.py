"""Sparsemax loss (the Fenchel–Young loss of the Gini entropy). Spec: spec/losses/sparsemax.md.

Multiclass, over the last axis with one-hot ``y`` (label ``c``) and scores ``z``:
``p = sparsemax(z) = max(z - tau, 0)`` (the Euclidean projection onto the simplex) and
``loss = sum_{j in S} (z_j**2 - tau**2) / 2 - z_c + 1/2``, ``S`` the support. Binary
(``binary=True``, elementwise): ``sparse_plus(-z)`` where ``y`` is non-zero, else
``sparse_plus(z)``, with ``sparse_plus(t) = 0, (t + 1)**2 / 4, t`` for ``t <= -1``,
``|t| < 1``, ``t >= 1``. Optax: ``optax.losses.multiclass_sparsemax_loss`` and
``sparsemax_loss`` (:mod:`lossref.optax._margin`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..numerics import sum2, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, check_float_array, register
from .binary_crossentropy import check_bool

# --- reference -----------------------------------------------------------------------------------


def _sparse_plus(t: np.ndarray) -> np.ndarray:
    """``sparse_plus`` in float64: the middle piece as ``(h + l)**2 / 4`` from a TwoSum
    ``t + 1 = h + l`` and an exact square, so it is rounded about once."""
    with np.errstate(all="ignore"):
        h, l = two_sum(t, np.ones_like(t))
        sq, sq_lo = two_product(h, h)
        mid = (sq + (sq_lo + 2.0 * h * l)) * 0.25
        return np.where(t <= -1.0, 0.0, np.where(t >= 1.0, t, mid))


def _cumsum2(w: np.ndarray):
    """Prefix sums over the last axis as double-doubles ``(hi, lo)`` (a TwoSum per column:
    a loop over the classes, vectorised over the rows)."""
    hi, lo = np.empty_like(w), np.empty_like(w)
    h, l = np.zeros(w.shape[:-1]), np.zeros(w.shape[:-1])
    for j in range(w.shape[-1]):
        h, e = two_sum(h, w[..., j])
        h, l = two_sum(h, l + e)
        hi[..., j], lo[..., j] = h, l
    return hi, lo


def _multiclass(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Rows ``(n, K)``. The scores are shifted by the row maximum (TwoSum: ``w = wh + wl``,
    exact for float32 and narrower inputs). The support size is the number of ``j`` with
    ``1 + j w_(j) - sum_{i<=j} w_(i) > 0`` (``w`` sorted down), each decided from a
    double-double, so the decision is the exact one except within about ``u**2`` of a
    tie, where both choices give the same ``tau``. The loss is then formed as
    ``(sum_{k!=c} p_k**2 + (sum_{k!=c} p_k)**2) / 2 + max(tau - w_c, 0)``, a sum of
    non-negative terms (``= ||p - e_c||**2 / 2 + max(tau - w_c, 0)``), so the
    cancellation of the literal form is avoided.
    """
    n = z.shape[0]
    c = np.argmax(y, axis=-1)
    rows = np.arange(n)
    out = np.full(n, np.nan)
    p, tau, tau_lo, wh, wl, neg, ok = _project(z)
    others = p.copy()
    others[rows, c] = 0.0
    ph, pl = two_product(others, others)
    sq = sum2(ph, lo=pl)
    so = sum2(others)
    gap_h, gap_l = two_sum(tau[:, 0], -wh[rows, c])
    gap = np.maximum(gap_h + (gap_l + tau_lo[:, 0] - wl[rows, c]), 0.0)
    val = 0.5 * (sq + so * so) + gap
    val = np.where(neg[rows, c], np.inf, val)
    return np.where(ok, val, out)


def _project(z: np.ndarray):
    """``sparsemax(z)`` of rows ``(n, K)`` (see :func:`_multiclass`) with its pieces:
    ``(p, tau, tau_lo, wh, wl, neg, ok)``, ``w = wh + wl`` the shifted scores and
    ``tau + tau_lo`` the threshold in double-double, `neg` the ``-inf`` scores, `ok` the
    rows without NaN or ``+inf`` and not all ``-inf``."""
    n, k = z.shape
    neg = np.isneginf(z)
    ok = ~np.any(np.isnan(z) | np.isposinf(z), axis=-1) & ~np.all(neg, axis=-1)
    zf = np.where(neg, 0.0, z)
    m = np.max(np.where(neg, -np.inf, zf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    wh, wl = two_sum(zf, -m)
    # -inf scores are far below the support: a value 2 below the row's minimum plays their part
    low = np.min(np.where(neg, np.inf, wh), axis=-1, keepdims=True) - 2.0
    wh, wl = np.where(neg, low, wh), np.where(neg, 0.0, wl)
    order = np.argsort(-wh, axis=-1, kind="stable")
    sh, sl = np.take_along_axis(wh, order, -1), np.take_along_axis(wl, order, -1)
    ch, cl = _cumsum2(sh)
    j = np.arange(1, k + 1, dtype=np.float64)
    jh, jl = two_product(j * np.ones_like(sh), sh)
    f = sum2(np.stack([np.ones_like(sh), jh, jl + j * sl, -ch, -cl], axis=-1))
    size = np.sum(f > 0, axis=-1)  # f decreases along j: the support is a prefix
    idx = (size - 1)[:, None]
    th, tl = two_sum(np.take_along_axis(ch, idx, -1), -np.ones((n, 1)))
    tl = tl + np.take_along_axis(cl, idx, -1)
    kk = size[:, None].astype(np.float64)
    tau = th / kk
    qh, ql = two_product(tau, kk)
    tau_lo = ((th - qh) - ql + tl) / kk
    dh, dl = two_sum(wh, -tau)
    p = np.maximum(dh + (dl + wl - tau_lo), 0.0)
    return p, tau, tau_lo, wh, wl, neg, ok


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, binary: bool = False) -> dict:
    """VJP of :func:`reference` with respect to the scores (the labels select a class or a
    sign: piecewise constant, no gradient). Multiclass: ``sparsemax(z) - e_c``, the label's
    entry as ``-sum_{k != c} p_k`` (no ``p_c - 1`` cancellation near a confident right
    prediction). Binary: ``sparse_plus'(t) = 0, (t + 1) / 2, 1`` with ``t = -z`` where
    ``y != 0`` (sign flipped back), else ``t = z``. The loss is continuously differentiable
    (the gradient is continuous at support changes, ties and ``|t| = 1``): no convention."""
    y, z = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    cot = np.asarray(cot, np.float64)
    with np.errstate(all="ignore"):
        if binary:
            flip = y != 0
            t = np.where(flip, -z, z)
            h, l = two_sum(t, np.ones_like(t))
            d = np.where(t <= -1.0, 0.0, np.where(t >= 1.0, 1.0, (h + l) * 0.5))
            d = np.where(np.isnan(t), np.nan, d)
            return {"y_pred": cot * np.where(flip, -d, d)}
        k = z.shape[-1]
        y2, z2 = y.reshape(-1, k), z.reshape(-1, k)
        p, _, _, _, _, neg, ok = _project(z2)
        rows, c = np.arange(z2.shape[0]), np.argmax(y2, axis=-1)
        others = p.copy()
        others[rows, c] = 0.0
        g = p.copy()
        g[rows, c] = -sum2(others)  # p_c - 1
        # a NaN or +inf score, every score -inf, or the label's score -inf: the value is a
        # NaN or inf set by the definition's IEEE cases, not a function of the scores: 0
        g = np.where((ok & ~neg[rows, c])[:, None], g, 0.0)
        return {"y_pred": (cot.reshape(-1, 1) * g).reshape(z.shape)}


def reference(y_true: np.ndarray, y_pred: np.ndarray, binary: bool = False) -> np.ndarray:
    """Per-sample value in float64 (binary: per element)."""
    y, z = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    with np.errstate(all="ignore"):
        if binary:
            return _sparse_plus(np.where(y != 0, -z, z))
        lead = z.shape[:-1]
        return _multiclass(y.reshape(-1, z.shape[-1]), z.reshape(-1, z.shape[-1])).reshape(lead)


# --- oracle --------------------------------------------------------------------------------------


def _exact_sparse_plus(t: np.ndarray) -> np.ndarray:
    """``sparse_plus`` of exact values, piece by piece (NaN stays NaN: no piece holds)."""
    return x.where(x.le(t, -1), x.num(0), x.where(x.ge(t, 1), t, (t + 1) * (t + 1) / 4))


def _first_max(y) -> int:
    """The index of the first largest label, as ``max`` over the indices keyed by the
    labels: a later label replaces the one kept only where it is larger (never a NaN,
    nor anything after a NaN kept first)."""
    c = 0
    for i in range(1, len(y)):
        if x.decide(x.gt(y[i], y[c])):  # labels are inputs: decided but for a NaN ball
            c = i
    return c


def _exact_row(y: np.ndarray, z: np.ndarray):
    """One row: the support from the exact scores, then the literal
    ``sum_S (z_j**2 - tau**2) / 2 - z_c + 1/2``.

    The scores are inputs, so every quantity is a rational of them: the sort, the support
    test ``1 + j z_(j) - sum_{i<=j} z_(i) > 0`` and the value are computed in exact
    rationals (:class:`fractions.Fraction`), with no branch on a rounded number, and the
    value is made a number of the backend once (an exact zero, the loss of a confident
    prediction, is an exact ball). A non-finite score is a NaN ball on balls: such a row
    is left undecided (NaN), for the mpmath path and its IEEE cases.
    """
    finite = x.isfinite(np.concatenate([y, z]))
    if any(f is None for f in finite):  # balls: an infinity or a NaN among the inputs
        return x.NAN
    c = _first_max(y)
    if not all(finite[len(y):]):  # mpmath: IEEE cases of infinite and NaN scores
        nan, neg = x.isnan(z), x.eq(z, -x.INF)
        if any(nan) or any(x.eq(z, x.INF)) or all(neg):
            return x.NAN
        if neg[c]:
            return x.INF
        z = z[~np.asarray(neg, bool)]  # a -inf score is below any support: left out
        c -= int(np.count_nonzero(neg[:c]))
    q = [x.to_fraction(x.value_of(v)) for v in z]
    order = sorted(range(len(q)), key=lambda i: q[i], reverse=True)
    zs = [q[i] for i in order]
    size, total, run = 0, Fraction(0), Fraction(0)
    for j, v in enumerate(zs, 1):
        run += v
        if 1 + j * v - run > 0:
            size, total = j, run
    if x.has_nodes(z):  # differentiated: the same value on the support, in the op set
        sup = [z[i] for i in order[:size]]
        t = (x.fsum(np.asarray(sup, dtype=object)) - 1) / size
        return x.fsum(np.asarray([(v * v - t * t) / 2 for v in sup], dtype=object)) - z[c] + x.num(0.5)
    tau = (total - 1) / size
    value = sum((v * v - tau * tau) / 2 for v in zs[:size]) - q[c] + Fraction(1, 2)
    return x.from_fraction(value)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, binary: bool = False) -> np.ndarray:
    """The literal definition on exact values (the oracle loops over rows)."""
    if binary:
        return _exact_sparse_plus(x.where(x.lnot(x.eq(y_true, 0)), -y_pred, y_pred))
    lead, k = y_pred.shape[:-1], y_pred.shape[-1]
    ys, zs = y_true.reshape(-1, k), y_pred.reshape(-1, k)
    out = np.empty(ys.shape[0], dtype=object)
    for r in range(ys.shape[0]):
        out[r] = _exact_row(ys[r], zs[r])
    return out.reshape(lead)


def check_inputs(name: str, y_true, y_pred):
    """Float scores; labels of the same shape (one-hot rows, or 0/1 for the binary form)."""
    z = check_float_array(y_pred, "y_pred")
    y = check_float_array(y_true, "y_true")
    if y.shape != z.shape:
        raise ValueError(f"{name}: y_true shape {y.shape} and y_pred shape {z.shape} must be equal")
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"{name}: inputs need a non-empty last axis; got shape {z.shape}")
    return y, z


LOSS = register(LossDef(
    name="sparsemax",
    summary="sparsemax (Fenchel-Young, Gini) loss: sum_S (z_j^2 - tau^2)/2 - z_c + 1/2 over the last axis, "
            "y one-hot; binary=True: sparse_plus(-z) where y != 0 else sparse_plus(z), per element",
    stage2="structured",
    rowwise=True,
    params={"binary": Param(False, "bool: the binary (elementwise) form", check_bool)},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    grad_ref=grad_reference,
))
