"""Keras dialect: binary cross-entropy, binary focal cross-entropy, KL divergence, Poisson.

What each preparer models (sources on the spec pages):

* ``y_true`` is cast to y_pred's dtype. The two cross-entropies need identical shapes (the
  backend op checks; the function itself does no rank fix, the class does); KL and
  Poisson broadcast like NumPy, also without a rank fix inside the function.
* Python-float constants are weak: ``1 - ls`` and ``ls / 2`` of label smoothing, ``alpha``,
  ``1 - alpha`` and ``gamma`` are formed in double and rounded to the dtype; the
  probability clip is ``clip_bounds(fmt)``; KL's lower clip and Poisson's epsilon are
  ``1e-7`` rounded to the dtype.
* ``axis`` of the cross-entropies only chooses the axis of the mean: it is moved last.
* ``from_logits`` in the binary cross-entropy is the unclipped log-sigmoid form; in the
  focal loss it is ``sigmoid`` followed by the probability path, clip included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (EPSILON, LossFunctionWrapper, Prepared, clip_bounds, convert, keras_function,
                   same_shape_message, standard_inputs, weak)

__all__ = [
    "binary_crossentropy", "binary_focal_crossentropy", "kl_divergence", "poisson",
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "KLDivergence", "Poisson",
]

_DEFAULT = "sum_over_batch_size"


# --- shared input handling ------------------------------------------------------------------------


def _identical_shapes(fn: str, y_true, y_pred):
    """Convert like Keras and require identical shapes (the backend cross-entropy's check)."""
    p, fmt = convert(y_pred, "y_pred")
    t, _ = convert(y_true, "y_true", fmt)
    if t.shape != p.shape:
        raise ValueError(same_shape_message(t.shape, p.shape, f"{fn}: y_true shape {t.shape} and y_pred "
                                            f"shape {p.shape} must be identical (Keras's binary "
                                            "cross-entropy does not broadcast)"))
    return t, p, fmt


def _mean_axis_last(fn: str, t: np.ndarray, p: np.ndarray, axis: Any):
    """Move the mean axis (an int, a tuple of ints, or None for all) to a single last axis."""
    nd = t.ndim
    if axis is None:
        axes = tuple(range(nd))
    else:
        raw = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in raw):
            raise TypeError(f"{fn}: axis must be an int, a tuple of ints or None; got {axis!r}")
        if any(not -nd <= a < nd for a in raw) or nd == 0:
            raise ValueError(f"{fn}: axis={axis!r} is out of range for inputs of shape {t.shape}")
        axes = tuple(sorted({int(a) % nd for a in raw}))
        if len(axes) != len(raw):
            raise ValueError(f"{fn}: axis={axis!r} repeats an axis")
    if axes == (nd - 1,):
        return t, p
    keep = [d for d in range(nd) if d not in axes]
    shape = tuple(t.shape[d] for d in keep) + (int(np.prod([t.shape[d] for d in axes])),)
    order = keep + list(axes)
    return t.transpose(order).reshape(shape), p.transpose(order).reshape(shape)


def _smoothing(label_smoothing, fmt):
    """Keras: ``y * (1.0 - ls) + 0.5 * ls`` when ls is truthy; both constants are weak."""
    if not label_smoothing:
        return 0.0
    ls = float(label_smoothing)
    return weak(1.0 - ls, fmt), weak(0.5 * ls, fmt)


# --- functions --------------------------------------------------------------------------------------


@keras_function("binary_crossentropy")
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, the mean over `axis`.

    Probabilities are clipped to ``clip_bounds(fmt)``; logits use the unclipped
    log-sigmoid form. Label smoothing moves labels towards 0.5.
    """
    t, p, fmt = _identical_shapes("binary_crossentropy", y_true, y_pred)
    t, p = _mean_axis_last("binary_crossentropy", t, p, axis)
    return Prepared(t, p, fmt, {"from_logits": bool(from_logits),
                                "label_smoothing": _smoothing(label_smoothing, fmt),
                                "epsilon": clip_bounds(fmt)})


@keras_function("binary_focal_crossentropy")
def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary focal cross-entropy, the mean over `axis`.

    ``(1 - p_t)^gamma`` times the clipped cross-entropy, optionally times
    ``alpha y + (1 - alpha)(1 - y)``; logits go through ``sigmoid`` first.
    """
    t, p, fmt = _identical_shapes("binary_focal_crossentropy", y_true, y_pred)
    t, p = _mean_axis_last("binary_focal_crossentropy", t, p, axis)
    return Prepared(t, p, fmt, {"apply_class_balancing": bool(apply_class_balancing),
                                "alpha": (weak(alpha, fmt), weak(1.0 - float(alpha), fmt)),
                                "gamma": weak(gamma, fmt),
                                "from_logits": bool(from_logits),
                                "label_smoothing": _smoothing(label_smoothing, fmt),
                                "epsilon": clip_bounds(fmt)})


@keras_function("kl_divergence")
def kl_divergence(y_true, y_pred):
    """Per-sample ``sum(y log(y / p), axis=-1)`` with y and p clipped to ``[eps, 1]``."""
    t, p, fmt = standard_inputs(y_true, y_pred, rank_fix=False, name="kl_divergence")
    return Prepared(t, p, fmt, {"epsilon": weak(EPSILON, fmt)})


@keras_function("poisson")
def poisson(y_true, y_pred):
    """Per-sample ``mean(p - y log(p + eps), axis=-1)``, eps in y_pred's dtype."""
    t, p, fmt = standard_inputs(y_true, y_pred, rank_fix=False, name="poisson")
    return Prepared(t, p, fmt, {"epsilon": weak(EPSILON, fmt)})


# --- classes ------------------------------------------------------------------------------------------


class BinaryCrossentropy(LossFunctionWrapper):
    """``keras.losses.BinaryCrossentropy``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction=_DEFAULT,
                 name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """``keras.losses.BinaryFocalCrossentropy``."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction=_DEFAULT,
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(binary_focal_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma)


class KLDivergence(LossFunctionWrapper):
    """``keras.losses.KLDivergence``."""

    def __init__(self, reduction=_DEFAULT, name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)


class Poisson(LossFunctionWrapper):
    """``keras.losses.Poisson``."""

    def __init__(self, reduction=_DEFAULT, name="poisson", dtype=None):
        super().__init__(poisson, name=name, reduction=reduction, dtype=dtype)
