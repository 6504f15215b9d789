"""Keras dialect: the structured losses ``circle`` and ``ctc`` (functions and classes).

What each preparer models (sources on spec/losses/circle.md and spec/losses/ctc.md):

* ``circle``: labels cast to int32 (truncation toward zero); ``y_pred`` keeps its float
  dtype; ``margin``, ``1 + margin``, ``1 - margin`` and ``gamma`` are Python numbers
  formed in double and rounded to the embeddings' dtype where they meet the tensor;
  the loss carries a mask (anchors with at least one positive and one negative pair)
  that stage 3 honours.
* ``ctc``: blank and padding 0, label lengths = non-zero counts, every input length T;
  on every backend Keras computes in float32 (``result_type(dtype, "float32")`` with
  64-bit types narrowed), so the logits are rounded to float32 and the per-sample values
  are float32 whatever the input dtype.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import formats
from ..formats import FLOAT32
from ..losses import circle as _circle
from ..losses import ctc as _ctc
from ..oracle import balls
from ..oracle import ops as xops
from .base import (KerasFunction, LossFunctionWrapper, Prepared, convert, keras_function,
                   keras_message, weak)

__all__ = ["circle", "ctc", "Circle", "CTC"]

_DEFAULT = "sum_over_batch_size"
_INT32 = (-2.0 ** 31, 2.0 ** 31 - 1)


def _int32_labels(labels, name: str) -> np.ndarray:
    """``ops.cast(labels, "int32")``: truncation toward zero, as a float64 vector."""
    v = _circle.labels_1d(labels, name)
    v = np.trunc(v)
    bad = (v < _INT32[0]) | (v > _INT32[1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"circle: {name} must fit int32 (Keras casts labels to int32); "
                         f"got {v[i]:g} at index {i}")
    return v


@keras_function("circle")
def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True,
           gamma=80, margin=0.4):
    """Per-anchor Circle loss of integer labels (B,) and embeddings (B, D).

    The embeddings are used as given (Keras does not normalise them). `ref_labels` and
    `ref_embeddings` default to the batch itself.
    """
    p, fmt = convert(y_pred, "y_pred")
    if p.ndim != 2:
        raise ValueError(f"circle: y_pred must have shape (batch_size, embedding_dim); "
                         f"got shape {p.shape}")
    t = _int32_labels(y_true, "y_true")
    r_lab = None if ref_labels is None else _int32_labels(ref_labels, "ref_labels")
    r_emb = None
    if ref_embeddings is not None:
        r_emb, r_fmt = convert(ref_embeddings, "ref_embeddings")
        fmt = formats.promote(fmt, r_fmt)  # matmul promotes; the constants meet the result
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"circle: batch sizes differ: y_true shape {np.shape(y_true)}, "
                         f"y_pred shape {p.shape}")
    ref_t, _ = _circle.references(t, p, r_lab, r_emb)
    params = {
        "gamma": weak(gamma, fmt),
        "margin": weak(margin, fmt),
        # Keras forms 1 + margin and 1 - margin in Python double, then meets the tensor
        "optim_neg": weak(1 + margin, fmt),
        "delta_neg": weak(1 - margin, fmt),
        "remove_diagonal": bool(remove_diagonal),
        "ref_labels": r_lab,
        "ref_embeddings": r_emb,
    }
    return Prepared(t, p, fmt, params, _anchor_mask(t, ref_t, bool(remove_diagonal)))


def _anchor_mask(labels: np.ndarray, ref_labels: np.ndarray, remove_diagonal: bool) -> np.ndarray:
    """Keras's mask: the anchors whose loss is not 0, which are exactly those with a
    positive and a negative pair (:func:`lossref.losses.circle.pair_masks`).

    Counted per anchor from the sorted references, so no (B, R) matrix is formed.
    """
    ref = np.sort(ref_labels)
    same = np.searchsorted(ref, labels, "right") - np.searchsorted(ref, labels, "left")
    n_ref = ref_labels.shape[0]
    if remove_diagonal:  # the pair (i, i) of Keras's eye(B, R) is no positive
        i = np.arange(min(labels.shape[0], n_ref))
        same_pos = same.copy()
        same_pos[i] -= labels[i] == ref_labels[i]
    else:
        same_pos = same
    return (same_pos > 0) & (same < n_ref)


class _Float32Function(KerasFunction):
    """A function whose float32 per-sample values a class reduces in its own dtype.

    ``CTC(dtype="float64")`` reduces float32 values: the function it wraps returns
    float32 whatever the input, and stage 3 starts from those values.
    """

    def values64(self, pr: Prepared) -> np.ndarray:
        return formats.round_array(super().values64(pr), FLOAT32)

    def values_exact(self, pr: Prepared) -> Callable[[], np.ndarray]:
        exact = super().values_exact(pr)
        return lambda: _to_float32(exact())


_ROUND32 = np.frompyfunc(lambda v: formats.round_mpf(v, FLOAT32), 1, 1)


def _to_float32(v) -> np.ndarray:
    """Exact values rounded to float32, as exact numbers of the oracle backend in use.

    On balls an element is rounded where its whole ball rounds to one float32 value
    (:func:`lossref.oracle.balls.decide_round`); any other stays a NaN ball ("not known"),
    which the engine decides at a higher precision or on the mpmath path.
    """
    v = np.asarray(v, dtype=object)
    if xops.backend() == "arb":
        c, ok = balls.decide_round(v, FLOAT32)
        return xops.lift(np.where(ok, c, np.nan).reshape(v.shape))
    return xops.lift(np.asarray(_ROUND32(v), dtype=np.float64).reshape(v.shape))


def _ctc_prepare(y_true, y_pred):
    """Per-sample CTC loss ``-log P(label)`` of labels (B, L) and logits (B, T, C).

    Class 0 is the blank and the padding; label lengths count the non-zero labels.
    """
    p, _ = convert(y_pred, "y_pred")
    t = np.asarray(y_true)
    if t.dtype.kind not in "biuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"ctc: y_true must hold integer labels; got dtype {t.dtype}")
    if t.ndim != 2:  # Keras's own checks, in its words, before the catalogue's
        raise ValueError(keras_message(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` in "
            f"integer format. Received: y_true.shape={t.shape}",
            f"ctc: y_true must have shape (batch_size, max_length); got shape {t.shape}"))
    if p.ndim != 3:
        raise ValueError(keras_message(
            "Logits `y_pred` are expected to be a tensor of shape `(batch_size, max_length, "
            f"num_classes)`. Received: y_pred.shape={p.shape}",
            f"ctc: y_pred must have shape (batch_size, max_length, num_classes); got shape {p.shape}"))
    labels, _ = _ctc.check_inputs("ctc", t, p)
    # every backend computes CTC in float32 (tf.nn.ctc_loss's dtype), float64 included
    return Prepared(labels, formats.as_format(p, FLOAT32), FLOAT32)


_ctc_prepare.__name__ = _ctc_prepare.__qualname__ = "ctc"
ctc = KerasFunction(_ctc_prepare, "ctc")
_ctc_float32 = _Float32Function(_ctc_prepare, "ctc")
_ctc_float32.__qualname__ = "_ctc_float32"  # the global pickle finds it under


class Circle(LossFunctionWrapper):
    """``keras.losses.Circle``: labels (B,) and embeddings (B, D) in the Loss dtype."""

    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True, reduction=_DEFAULT,
                 name="circle", dtype=None):
        super().__init__(circle, name=name, reduction=reduction, dtype=dtype, gamma=gamma,
                         margin=margin, remove_diagonal=remove_diagonal)


class CTC(LossFunctionWrapper):
    """``keras.losses.CTC``: labels (B, L) and logits (B, T, C); per-sample shape (B,)."""

    def __init__(self, reduction=_DEFAULT, name="ctc", dtype=None):
        super().__init__(_ctc_float32, name=name, reduction=reduction, dtype=dtype)
