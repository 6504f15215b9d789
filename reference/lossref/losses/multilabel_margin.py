"""Multi-label margin loss. Spec: spec/losses/multilabel_margin.md.

Per sample, with scores ``x`` (``y_pred``, ``C`` classes on the last axis) and a row of
``C`` class indices (``y_true``) whose labels are the entries before the first ``-1``:
``(1/C) sum_{j in labels} sum_{i not a label} max(0, 1 - (x_j - x_i))``. A label listed
twice counts twice. PyTorch: ``torch.nn.functional.multilabel_margin_loss``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..oracle import ops as x
from ..registry import LossDef, register
from ..numerics import hinge_share
from .multi_margin import class_labels, class_scores, margin_mean, margin_terms, scale_pair
from .sparse_categorical_crossentropy import exact_labels

# (rows, listed entries, classes) pair terms are formed in blocks of at most this many
_PAIRS = 1 << 18


def check_inputs(name: str, y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    """Scores ``(..., C)`` and, of the same shape, integers in ``[-1, C)`` (every entry,
    also those after the first ``-1``)."""
    p = class_scores(name, y_pred)
    return class_labels(name, y_true, p.shape, p.shape[-1], low=-1), p


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample value in float64: a sum of terms ``>= 0``, each with about one rounding.

    ``j`` runs over the listed entries (a prefix of each row, so a duplicate counts
    again) and ``i`` over the classes; a row's value is ``sum_j mean_i t_ji`` with
    ``t_ji = 0`` where ``i`` is listed (the mean divides by C). The (rows, entries,
    classes) terms are formed a block at a time, only as wide as the longest list.
    """
    c = y_pred.shape[-1]
    labels = y_true.reshape(-1, c).astype(np.intp)
    scores = y_pred.reshape(-1, c)
    listed = np.logical_and.accumulate(labels != -1, axis=-1)
    width = int(listed.sum(-1).max(initial=0))
    labels, listed = labels[:, :width], listed[:, :width]
    is_label = np.zeros(scores.shape, dtype=bool)
    is_label[np.nonzero(listed)[0], labels[listed]] = True
    x_j = np.take_along_axis(scores, np.where(listed, labels, 0), axis=-1)
    out = np.zeros(len(scores))
    rows = max(1, _PAIRS // max(width * c, 1))
    cols = max(1, _PAIRS // c)  # entries at a time when one row alone has more pairs
    for r in range(0, len(scores), rows):
        for q in range(0, width, cols):
            b, e = slice(r, r + rows), slice(q, q + cols)
            keep = listed[b, e, None] & ~is_label[b, None, :]
            out[b] += np.sum(margin_mean(1.0, x_j[b, e, None], scores[b, None, :], keep), axis=-1)
    return out.reshape(y_pred.shape[:-1])


def gradient(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, kink: float = 0.5) -> dict:
    """VJP of :func:`reference` (spec: "Gradient"): each active pair term
    ``max(0, 1 - x_j + x_i)`` (share 1 above its kink, `kink` at it — 1/2 by default, 0 for
    torch's backward — 0 below) adds ``cot / C`` to ``d/dx_i`` and subtracts it from
    ``d/dx_j`` (a label listed twice twice). The shares are counted exactly (halves and
    integers) and multiplied by ``cot / C`` carried as a pair: about one rounding per entry.
    NaN over a row whose value is NaN. The label indices get no gradient."""
    c = y_pred.shape[-1]
    labels = y_true.reshape(-1, c).astype(np.intp)
    scores = np.asarray(y_pred, np.float64).reshape(-1, c)
    listed = np.logical_and.accumulate(labels != -1, axis=-1)
    width = int(listed.sum(-1).max(initial=0))
    labels, listed = labels[:, :width], listed[:, :width]
    is_label = np.zeros(scores.shape, dtype=bool)
    is_label[np.nonzero(listed)[0], labels[listed]] = True
    safe = np.where(listed, labels, 0)
    x_j = np.take_along_axis(scores, safe, axis=-1)
    count = np.zeros(scores.shape)
    rows = max(1, _PAIRS // max(width * c, 1))
    with np.errstate(all="ignore"):
        for r in range(0, len(scores), rows):  # blocks of rows, as the reference
            b = slice(r, r + rows)
            keep = listed[b, :, None] & ~is_label[b, None, :]
            share = np.where(keep, hinge_share(margin_terms(1.0, x_j[b, :, None], scores[b, None, :]), kink), 0.0)
            count[b] += np.sum(share, axis=1)
            idx = np.nonzero(listed[b])
            np.add.at(count[b], (idx[0], safe[b][idx]), -np.sum(share, axis=2)[idx])
        cot = np.asarray(cot, np.float64).reshape(-1)
        cot = np.where(np.isnan(reference(y_true, y_pred).reshape(-1)), np.nan, cot)
        q, rr = scale_pair(cot, None, c)
        g = count * q[:, None] + count * rr[:, None]
    return {"y_pred": g.reshape(y_pred.shape)}


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The definition on exact values."""
    labels = exact_labels(y_true).astype(np.intp)
    c = y_pred.shape[-1]
    out = np.empty(labels.shape[:-1], dtype=object)
    for pos in np.ndindex(out.shape):  # the oracle may loop: it is the slow, literal definition
        row, lab = y_pred[pos], labels[pos]
        ends = np.flatnonzero(lab == -1)
        listed = lab[:ends[0] if ends.size else c]
        others = np.setdiff1d(np.arange(c), listed)
        terms = x.maximum(x.num(1) - (row[listed][:, None] - row[others][None, :]), 0)
        out[pos] = x.fsum(terms)[()]
    return x.div(out, c)


LOSS = register(LossDef(
    name="multilabel_margin",
    summary="(1/C) sum over listed labels j and unlisted classes i of max(0, 1 - (x_j - x_i))",
    stage2="structured",
    rowwise=True,
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    grad_ref=gradient,
))
