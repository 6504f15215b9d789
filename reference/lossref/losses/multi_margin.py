"""Multi-class margin loss. Spec: spec/losses/multi_margin.md.

Per sample, with ``k`` the sample's class index (``y_true``) and ``x`` its ``C`` scores
(``y_pred``, the last axis): ``(w_k / C) sum_{i != k} max(0, margin - x_k + x_i)^p``,
``p`` in {1, 2}. PyTorch: ``torch.nn.functional.multi_margin_loss``.

The input checks (:func:`class_scores`, :func:`class_labels`) and the mean of margin
terms (:func:`margin_mean`) are shared with the multi-label margin loss.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..numerics import dd_quotient, hinge_share, sum2, two_product, two_sum
from ..oracle import ops as x
from ..reduction import stage2_mean
from ..registry import LossDef, Param, check_float_array, finite_number, is_real, register
from .sparse_categorical_crossentropy import exact_labels

# --- shared with multilabel_margin ----------------------------------------------------------


def class_scores(name: str, y_pred) -> np.ndarray:
    """`y_pred` as a float array with a non-empty class axis (the last)."""
    p = check_float_array(y_pred, "y_pred")
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"{name}: y_pred needs a non-empty last (class) axis; got shape {p.shape}")
    return p


def class_labels(name: str, y_true, shape: tuple, n_classes: int, low: int = 0) -> np.ndarray:
    """`y_true` checked to hold integers in ``[low, n_classes)`` in an array of `shape`.

    Any integer or float dtype is accepted (float labels must be integer-valued); the
    array is returned as given.
    """
    t = np.asarray(y_true)
    if t.dtype.kind not in "iuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"{name}: y_true must hold integer class indices; got dtype {t.dtype}")
    if t.shape != shape:
        raise ValueError(f"{name}: y_true shape {t.shape} must be {shape}")
    with np.errstate(invalid="ignore"):
        v = t.astype(np.float64)
        bad = ~((v == np.floor(v)) & (v >= low) & (v < n_classes))  # NaN and inf are bad too
    if np.any(bad):
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"{name}: y_true: label {float(v[where])!r} at index {where} is not an integer "
                         f"in [{low}, {n_classes})")
    return t


def margin_terms(m, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``m - a + b`` (broadcast) with about one rounding.

    The three terms cancel exactly at the margin, the point the loss is about, so the sum
    is carried exactly (two TwoSums) and rounded once, up to an error of order
    ``u**2 (|m| + |a| + |b|)``. Infinite terms and overflow take the plain IEEE sum.
    """
    d, e1 = two_sum(b, -a)
    s, e2 = two_sum(np.asarray(m, dtype=np.float64), d)
    out = s + (e1 + e2)
    bad = ~np.isfinite(out)
    if np.any(bad):  # rare: e1 or e2 is NaN where a term is infinite or a sum overflowed
        out = np.where(bad, (m - a) + b, out)
    return out


def margin_mean(m: float, a: np.ndarray, b: np.ndarray, keep: np.ndarray, p=1) -> np.ndarray:
    """Mean over the last axis of ``max(0, m - a + b)**p`` where `keep`, 0 elsewhere.

    A term can overflow (float64 scores near the top of the range, or their squares)
    while the mean does not: such rows, if their scores are finite, are evaluated again
    with ``m``, ``a`` and ``b`` scaled by a power of two ``2**-s`` and the mean scaled
    back by ``2**(s p)``.
    """
    def mean(m, a, b):
        h = np.where(keep, np.maximum(margin_terms(m, a, b), 0.0), 0.0)
        return stage2_mean(h * h if p == 2 else h, -1)

    out = mean(m, a, b)
    redo = ~np.isfinite(out)
    if np.any(redo):  # rare: only then the rows' magnitudes are looked at
        big = np.maximum(np.abs(a), np.abs(b))
        redo &= np.all(np.isfinite(big), axis=-1)
        if np.any(redo):
            # scaled terms stay below 2**1022 (p = 1) or 2**511 (p = 2): squares do not overflow
            s = np.maximum(np.frexp(np.max(big, axis=-1))[1] - (1020 if p == 1 else 509), 0)[..., None]
            unit = np.ldexp(1.0, -s)
            out = np.where(redo, np.ldexp(mean(m * unit, a * unit, b * unit), s[..., 0] * int(p)), out)
    return out


# --- the loss ----------------------------------------------------------------------------------


def check_inputs(name: str, y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    """Scores ``(..., C)`` and integer class indices ``(...)`` in ``[0, C)``."""
    p = class_scores(name, y_pred)
    return class_labels(name, y_true, p.shape[:-1], p.shape[-1]), p


def _check_p(v) -> Optional[str]:
    return None if is_real(v) and v in (1, 2) else "expected 1 or 2"


def _check_weight(v) -> Optional[str]:
    if v is None:
        return None
    a = np.asarray(v) if isinstance(v, (list, tuple, np.ndarray)) else None
    if a is not None and a.ndim == 1 and a.dtype.kind in "iuf" and np.all(np.isfinite(a)):
        return None
    return "expected None or a 1-D sequence of finite numbers, one per class"


def class_weights(weight, n_classes: int) -> Optional[np.ndarray]:
    """`weight` as float64 (None stays None); ``ValueError`` unless it has one entry per class."""
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"multi_margin: parameter weight has {w.size} entries; y_pred has "
                         f"{n_classes} classes")
    return w


def reference(y_true: np.ndarray, y_pred: np.ndarray, p, margin: float, weight) -> np.ndarray:
    """Per-sample value in float64: every term is ``>= 0``, so the sum is well conditioned."""
    c = y_pred.shape[-1]
    w = class_weights(weight, c)
    k = y_true.astype(np.intp)[..., None]
    others = np.arange(c) != k  # the sample's own class is no term (NaN there included)
    out = margin_mean(margin, np.take_along_axis(y_pred, k, -1), y_pred, others, p)
    return out if w is None else out * w[k[..., 0]]


def scale_pair(cot: np.ndarray, factor, n: int):
    """``cot factor / n`` as a pair ``(q, r)`` (``factor`` None is 1), error ``O(u**2)``:
    multiplied by a gradient's count or term it gives the entry with about one rounding."""
    if factor is None:
        return dd_quotient(cot, np.zeros_like(cot), float(n), 0.0)
    h, low = two_product(cot, factor)
    return dd_quotient(h, low, float(n), 0.0)


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, p, margin: float, weight,
             kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient"): with ``h_i = margin - x_k + x_i`` and
    ``g_i = a(h_i)`` (p = 1: 1 above the kink, `kink` at it — 1/2 by default, 0 for torch's
    backward — 0 below) or ``2 max(h_i, 0)`` (p = 2), times ``w_k cot / C``:
    ``d/dx_i = g_i`` for ``i != k`` and ``d/dx_k = -sum_{i != k} g_i``. The factor
    ``w_k cot / C`` is carried as a double-length pair, so each entry is rounded about once
    (p = 2: the sum of the non-negative ``g_i`` by :func:`~lossref.numerics.sum2`).
    NaN over a row whose value is NaN. The class indices get no gradient."""
    x = np.asarray(y_pred, np.float64)
    c = x.shape[-1]
    w = class_weights(weight, c)
    k = y_true.astype(np.intp)[..., None]
    with np.errstate(all="ignore"):
        h = margin_terms(margin, np.take_along_axis(x, k, -1), x)
        g = hinge_share(h, kink) if int(p) == 1 else 2.0 * np.where(np.isnan(h), np.nan, np.maximum(h, 0.0))
        g = np.where(np.arange(c) != k, g, 0.0)
        total = sum2(g) if int(p) == 2 else np.sum(g, axis=-1)  # p = 1: halves and counts, exact
        own = np.arange(c) == k
        g = np.where(own, -total[..., None], g)
        cot = np.where(np.isnan(reference(y_true, x, p, margin, weight)), np.nan, np.asarray(cot, np.float64))
        q, r = scale_pair(cot, None if w is None else w[k[..., 0]], c)
        return {"y_pred": g * q[..., None] + g * r[..., None]}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, p, margin: float, weight) -> np.ndarray:
    """The definition on exact values."""
    c = y_pred.shape[-1]
    class_weights(weight, c)  # the check; the values are taken exactly below
    k = exact_labels(y_true).astype(np.intp)[..., None]
    xk = np.take_along_axis(y_pred, k, -1)
    h = x.maximum(x.num(margin) - xk + y_pred, 0)
    terms = x.where(np.arange(c) != k, h * h if int(p) == 2 else h, 0)
    total = x.fsum(terms, -1)
    if weight is not None:  # floats, or exact numbers (a dialect's weight tensor)
        total = x.lift(np.asarray(weight))[k[..., 0]] * total
    return x.div(total, c)


LOSS = register(LossDef(
    name="multi_margin",
    summary="(w_y / C) sum_{i != y} max(0, margin - x_y + x_i)^p per sample, y a class index",
    stage2="structured",
    rowwise=True,
    params={
        "p": Param(1, "1 or 2", _check_p),
        "margin": Param(1.0, "finite number", finite_number),
        "weight": Param(None, "None, or a 1-D sequence of C finite numbers (the weight of "
                              "each sample's class)", _check_weight),
    },
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    grad_ref=gradient,
))
