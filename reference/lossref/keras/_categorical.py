"""Keras dialect: categorical, categorical focal, sparse categorical and generalized
cross-entropies (Keras 3.15.1).

What each preparer models (sources on the spec pages):

* ``y_pred`` is converted (float dtype kept, ints and lists to float32); ``y_true`` is
  cast to its dtype by the one-hot losses and taken as given by the sparse ones (Keras
  truncates their labels to int itself; the class converts them to ``Loss.dtype`` first).
* One-hot losses need identical shapes (the backend op's check; the function does no
  rank fix, the class does). ``axis`` is the class axis: it is moved last.
* Python-float constants are weak: label smoothing's ``1 - ls`` is formed in double and
  rounded to the dtype, ``ls / K`` is the dtype's quotient of ``ls`` and K (both rounded
  to the dtype), with K the size of the class axis ``y_pred.shape[axis]`` as after 3.15.1
  (keras PR #23437); a scalar ``alpha``, ``gamma``, ``q`` and ``ignore_class`` are
  rounded to the dtype; the probability clip is ``clip_bounds(fmt)``.
* A per-class ``alpha`` list is a float32 tensor: its values are rounded to float32 and
  the result dtype is promoted with it.
"""

from __future__ import annotations

import numpy as np

from .. import formats
from ..formats import Format
from ..losses.sparse_categorical_crossentropy import check_label_inputs, class_indices
from ..registry import is_real
from .base import (KerasIndexError, LossFunctionWrapper, Prepared, axis_error, clip_bounds, convert, keras_function,
                   keras_message, same_shape_message, warn, weak)

__all__ = [
    "categorical_crossentropy", "categorical_focal_crossentropy",
    "sparse_categorical_crossentropy", "categorical_generalized_cross_entropy",
    "CategoricalCrossentropy", "CategoricalFocalCrossentropy",
    "SparseCategoricalCrossentropy", "CategoricalGeneralizedCrossEntropy",
]

_DEFAULT = "sum_over_batch_size"


# --- function objects that also take Keras's parameters positionally ------------------------------


# --- shared input handling ------------------------------------------------------------------------


def _reject_bool_axis(fn: str, axis) -> None:
    if isinstance(axis, (bool, np.bool_)):  # Keras checks this before anything else
        raise ValueError(keras_message(
            f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}",
            f"{fn}: axis must be of type int; received axis={axis!r} of type {type(axis)}"))


def _class_axis(fn: str, axis, shape: tuple) -> int:
    """`axis` as a non-negative index into `shape` (Keras's ``canonicalize_axis``), or a
    clear error."""
    _reject_bool_axis(fn, axis)
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an int; got {axis!r}")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(keras_message(
            f"axis {axis} is out of bounds for an array with dimension {len(shape)}.",
            f"{fn}: axis={axis} is out of range for y_pred of shape {shape}"))
    return int(axis) % len(shape)


def _one_hot_inputs(fn: str, y_true, y_pred, axis):
    """Convert like Keras, warn on a class axis of size 1, require identical shapes."""
    _reject_bool_axis(fn, axis)
    p, fmt = convert(y_pred, "y_pred")
    t, _ = convert(y_true, "y_true", fmt)
    if p.ndim == 0:
        raise axis_error(axis, 0, f"{fn}: y_true and y_pred must be at least rank 1; got scalars")
    ax = _class_axis(fn, axis, p.shape)
    if p.shape[ax] == 1:  # the class axis `axis`, as Keras after 3.15.1 (keras PR #23437)
        warn(f"In loss {fn}, expected y_pred.shape to be (batch_size, num_classes) with "
             f"num_classes > 1. Received: y_pred.shape={p.shape}. Consider using "
             "'binary_crossentropy' if you only have 2 classes.", SyntaxWarning)
    if t.shape != p.shape:
        raise ValueError(same_shape_message(t.shape, p.shape, f"{fn}: y_true shape {t.shape} and y_pred "
                                            f"shape {p.shape} must be identical (one-hot or soft labels; "
                                            "Keras does not broadcast here)"))
    return t, p, fmt, ax


def _smoothing(label_smoothing, n_classes: int, fmt: Format):
    """Keras: ``y * (1.0 - ls) + ls / cast(K)`` when ls is truthy, with K the size of the
    class axis ``y_pred.shape[axis]`` (keras PR #23437; 3.15.1 takes ``y_true.shape[-1]``,
    which differs when the class axis is not the last).

    ``1.0 - ls`` is a Python double then weak; ``ls / K`` is a division in the dtype of
    the weak ``ls`` by K cast to the dtype (a double quotient rounded once more is the
    correctly rounded quotient in every narrower format: 53 >= 2p + 2).
    """
    if not label_smoothing:
        return 0.0
    ls = float(label_smoothing)
    return weak(1.0 - ls, fmt), weak(weak(ls, fmt) / weak(n_classes, fmt), fmt)


def _labels(y_true):
    """Labels as given (ints or floats), as float64 values."""
    return convert(y_true, "y_true", formats.FLOAT64)[0]


# --- functions ------------------------------------------------------------------------------------


@keras_function("categorical_crossentropy")
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample ``-sum(y log p)`` over the class `axis`.

    Probabilities are renormalised (``p / sum(p)``) and clipped to ``clip_bounds(fmt)``;
    logits use the unclipped log-softmax.
    """
    fn = "categorical_crossentropy"
    t, p, fmt, ax = _one_hot_inputs(fn, y_true, y_pred, axis)
    ls = _smoothing(label_smoothing, p.shape[ax], fmt)
    return Prepared(np.moveaxis(t, ax, -1), np.moveaxis(p, ax, -1), fmt,
                    {"from_logits": bool(from_logits), "label_smoothing": ls,
                     "epsilon": clip_bounds(fmt)})


@keras_function("categorical_focal_crossentropy", arrays=("alpha",))
def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample ``sum(alpha (1 - p)^gamma (-y log p))`` over the class `axis`.

    Logits go through ``softmax`` first; then ``p / sum(p)`` and the clip to
    ``clip_bounds(fmt)`` on both paths.
    """
    fn = "categorical_focal_crossentropy"
    t, p, fmt, ax = _one_hot_inputs(fn, y_true, y_pred, axis)
    ls = _smoothing(label_smoothing, p.shape[ax], fmt)
    if not is_real(gamma):
        raise TypeError(f"{fn}: gamma must be a real number; got {gamma!r}")
    out = fmt
    if is_real(alpha):
        a = weak(alpha, fmt)
    else:  # a tensor: a list becomes float32, an array keeps its float dtype; promotes
        a, afmt = convert(alpha, "alpha")
        n = p.shape[-1]
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] not in (1, n)):
            raise ValueError(f"{fn}: alpha must be a scalar or have one weight per class; got "
                             f"shape {a.shape} for y_pred of shape {p.shape}")
        if a.ndim == 1 and a.shape[0] > 1 and ax != p.ndim - 1:
            raise ValueError(f"{fn}: a per-class alpha needs the class axis last (Keras "
                             f"broadcasts alpha against the last axis); got axis={axis}")
        out = formats.promote(fmt, afmt)
    return Prepared(np.moveaxis(t, ax, -1), np.moveaxis(p, ax, -1), out,
                    {"alpha": a, "gamma": weak(gamma, fmt), "from_logits": bool(from_logits),
                     "label_smoothing": ls, "epsilon": clip_bounds(fmt)})


@keras_function("sparse_categorical_crossentropy")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample ``-log p_y`` for integer labels y (floats truncated toward zero).

    With `ignore_class`, positions with that label give 0 and are left out of the
    class's mean (they are masked).
    """
    fn = "sparse_categorical_crossentropy"
    p, fmt = convert(y_pred, "y_pred")
    t = _labels(y_true)
    if p.ndim == 0:
        raise axis_error(axis, 0, f"{fn}: y_pred must be at least rank 1; got a scalar")
    ax = _class_axis(fn, axis, p.shape)
    if t.ndim == p.ndim and t.shape[ax] == 1:
        t = np.squeeze(t, ax)
    t, p = check_label_inputs(fn, t, np.moveaxis(p, ax, -1))
    ig = None
    if ignore_class is not None:
        if not is_real(ignore_class) and not isinstance(ignore_class, np.number):
            raise TypeError(f"{fn}: ignore_class must be an int or None; got {ignore_class!r}")
        ig = weak(ignore_class, fmt)  # Keras casts it to y_pred's dtype
    _, valid = class_indices(t, p.shape[-1], ig, f"{fn}: y_true", KerasIndexError)
    return Prepared(t, p, fmt, {"from_logits": bool(from_logits), "ignore_class": ig,
                                "epsilon": clip_bounds(fmt)},
                    mask=None if ig is None else valid)


@keras_function("categorical_generalized_cross_entropy")
def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """Per-sample ``(1 - p_y^q) / q`` for integer labels y; no clipping.

    Labels of shape (B,) or (B, 1) (the documented shapes; see the spec page for what
    Keras does with (B, 1)); q is rounded to y_pred's dtype.
    """
    fn = "categorical_generalized_cross_entropy"
    p, fmt = convert(y_pred, "y_pred")
    t, p = check_label_inputs(fn, _labels(y_true), p)
    if not is_real(q):
        raise TypeError(f"{fn}: q must be a real number; got {q!r}")
    class_indices(t, p.shape[-1], None, f"{fn}: y_true", KerasIndexError)
    return Prepared(t, p, fmt, {"q": weak(q, fmt)})


# --- classes --------------------------------------------------------------------------------------


class CategoricalCrossentropy(LossFunctionWrapper):
    """``keras.losses.CategoricalCrossentropy``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction=_DEFAULT,
                 name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """``keras.losses.CategoricalFocalCrossentropy``."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction=_DEFAULT, name="categorical_focal_crossentropy", dtype=None):
        super().__init__(categorical_focal_crossentropy, name=name, reduction=reduction,
                         dtype=dtype, from_logits=from_logits, label_smoothing=label_smoothing,
                         axis=axis, alpha=alpha, gamma=gamma)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """``keras.losses.SparseCategoricalCrossentropy``."""

    def __init__(self, from_logits=False, ignore_class=None, reduction=_DEFAULT, axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction,
                         dtype=dtype, from_logits=from_logits, ignore_class=ignore_class,
                         axis=axis)


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """``keras.losses.CategoricalGeneralizedCrossEntropy``; requires ``0 < q < 1``."""

    def __init__(self, q=0.5, reduction=_DEFAULT, name="categorical_generalized_cross_entropy",
                 dtype=None):
        if not (is_real(q) and 0 < q < 1):
            raise ValueError(keras_message("q must be in the interval (0, 1)",
                                           f"CategoricalGeneralizedCrossEntropy: q must be in the open "
                                           f"interval (0, 1); got q={q!r}"))
        super().__init__(categorical_generalized_cross_entropy, name=name, reduction=reduction,
                         dtype=dtype, q=q)
