"""Keras dialect: hinge, squared hinge, categorical hinge, cosine similarity, Dice, Tversky.

What each preparer models (sources on the spec pages):

* ``y_pred`` is converted to a tensor (float dtype kept, ints and lists become float32)
  and ``y_true`` is cast to its dtype. None of these functions applies the rank fix
  itself (the classes do, before calling them); the two operands then broadcast like
  NumPy, except that Dice needs equal shapes (Keras sums y_true and y_pred over their
  own shapes, which for unequal shapes is not the Dice of any pair of arrays).
* Hinge and squared hinge: if every entry of the whole y_true tensor is 0 or 1, the
  labels become ``2 y - 1`` (one decision for the batch, not per row).
* Cosine similarity: both vectors are L2-normalised along `axis` with the norm floored
  at ``epsilon()`` (the formula of ``keras.ops.normalize``); a zero vector gives 0.
* Dice and Tversky: ``epsilon()``, `alpha` and `beta` are weak Python floats, rounded to
  the dtype. Tversky's `alpha` weights the false positives ``sum((1 - y) p)`` and `beta`
  the false negatives, the definition of Keras after release 3.15.1.
"""

from __future__ import annotations

import numpy as np

from ..numerics import normalize_axes
from ..reduction import squeeze_or_expand_to_same_rank
from .base import (EPSILON, LossFunctionWrapper, Prepared, axis_error, convert, keras_function,
                   weak)

__all__ = [
    "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity", "dice", "tversky",
    "Hinge", "SquaredHinge", "CategoricalHinge", "CosineSimilarity", "Dice", "Tversky",
]

_DEFAULT = "sum_over_batch_size"
_BLOCK = 1 << 16  # elements per step of the hinge label check


# --- shared input handling ------------------------------------------------------------------------


def _cast(y_true, y_pred):
    """``y_pred`` converted (floats keep their format), ``y_true`` cast to its format."""
    p, fmt = convert(y_pred, "y_pred")
    t, _ = convert(y_true, "y_true", fmt)
    return t, p, fmt


def _broadcast(fn: str, t: np.ndarray, p: np.ndarray):
    try:
        return np.broadcast_arrays(t, p)
    except ValueError:
        raise ValueError(f"{fn}: y_true shape {t.shape} and y_pred shape {p.shape} do not "
                         "broadcast (these functions apply no rank fix; the classes do)") from None


def _hinge_labels(t: np.ndarray) -> np.ndarray:
    """Keras's label rule: 0/1 labels become -1/+1, decided once for the whole tensor.

    The check runs a block at a time and stops at the first other label, so -1/+1 labels
    cost one block and no full-size temporaries; ``2 y - 1`` is exact in every format.
    """
    flat = t.reshape(-1)
    for i in range(0, flat.size, _BLOCK):
        b = flat[i:i + _BLOCK]
        if not np.all((b == 0) | (b == 1)):
            return t
    out = t * 2
    out -= 1
    return out


def _hinge_inputs(fn: str, y_true, y_pred) -> Prepared:
    t, p, fmt = _cast(y_true, y_pred)
    t, p = _broadcast(fn, _hinge_labels(t), p)
    return Prepared(t, p, fmt)


def _axes(fn: str, axis, ndim: int):
    """Validate a reduction `axis` now, so the error names the Keras function."""
    try:
        normalize_axes(axis, ndim)
    except ValueError as e:
        items = (axis,) if isinstance(axis, (int, np.integer)) else axis
        bad = [a for a in items if not -ndim <= a < ndim]
        if bad:  # NumPy's AxisError, as Keras's NumPy backend raises it
            raise axis_error(bad[0], ndim, f"{fn}: {e}") from None
        raise ValueError(f"{fn}: {e}") from None
    except TypeError as e:
        raise TypeError(f"{fn}: {e}") from None
    return axis


# --- functions --------------------------------------------------------------------------------------


@keras_function("hinge")
def hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y p, 0), axis=-1)``, 0/1 labels converted to -1/+1."""
    return _hinge_inputs("hinge", y_true, y_pred)


@keras_function("squared_hinge")
def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y p, 0)^2, axis=-1)``, 0/1 labels converted to -1/+1."""
    return _hinge_inputs("squared_hinge", y_true, y_pred)


@keras_function("categorical_hinge")
def categorical_hinge(y_true, y_pred):
    """Per-sample ``max(max((1 - y) p) - sum(y p) + 1, 0)`` over the last axis (no label
    conversion)."""
    t, p, fmt = _cast(y_true, y_pred)
    t, p = _broadcast("categorical_hinge", t, p)
    return Prepared(t, p, fmt)


@keras_function("cosine_similarity")
def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample ``-sum(n(y) n(p), axis)``, ``n(v) = v / max(||v||, eps)`` along `axis`.

    The rank fix is applied here (as Keras does); the two vectors must have the same
    length along `axis` (other axes broadcast).
    """
    t, p, fmt = _cast(y_true, y_pred)
    t, p = squeeze_or_expand_to_same_rank(t, p)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"cosine_similarity: axis must be an int; got {axis!r}")
    for v in (t, p):
        _axes("cosine_similarity", axis, v.ndim)
    # the axis must name the same dimension of both operands (counted from the end) and
    # that dimension must have one length: normalising a length-1 operand is not cosine
    kt, kp = int(axis) % t.ndim - t.ndim, int(axis) % p.ndim - p.ndim
    if kt != kp or t.shape[kt] != p.shape[kp]:
        raise ValueError(f"cosine_similarity: y_true shape {t.shape} and y_pred shape {p.shape} "
                         f"differ along axis={axis}; cosine similarity needs vectors of one length")
    t, p = _broadcast("cosine_similarity", t, p)
    # the floor is epsilon() itself for every dtype: how the backends materialise it in
    # narrow dtypes differs between backends and releases (see the spec page)
    return Prepared(t, p, fmt, {"axis": kp, "epsilon": EPSILON})


@keras_function("dice")
def dice(y_true, y_pred, axis=None):
    """``1 - 2 sum(y p) / (sum(y) + sum(p) + eps)`` over `axis` (None: a single scalar)."""
    t, p, fmt = _cast(y_true, y_pred)
    if t.shape != p.shape:
        raise ValueError(f"dice: y_true shape {t.shape} and y_pred shape {p.shape} must be equal "
                         "(Keras sums each over its own shape, which is no Dice value)")
    return Prepared(t, p, fmt, {"axis": _axes("dice", axis, p.ndim), "epsilon": weak(EPSILON, fmt)})


@keras_function("tversky")
def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - TP / (TP + alpha FP + beta FN + eps)`` over `axis` (None: a single scalar);
    ``FP = sum((1 - y) p)``, ``FN = sum(y (1 - p))``."""
    t, p, fmt = _cast(y_true, y_pred)
    t, p = _broadcast("tversky", t, p)
    return Prepared(t, p, fmt, {"alpha": weak(alpha, fmt), "beta": weak(beta, fmt),
                                "axis": _axes("tversky", axis, p.ndim),
                                "epsilon": weak(EPSILON, fmt)})


# --- classes ------------------------------------------------------------------------------------------


class Hinge(LossFunctionWrapper):
    """``keras.losses.Hinge``."""

    def __init__(self, reduction=_DEFAULT, name="hinge", dtype=None):
        super().__init__(hinge, name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(LossFunctionWrapper):
    """``keras.losses.SquaredHinge``."""

    def __init__(self, reduction=_DEFAULT, name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(LossFunctionWrapper):
    """``keras.losses.CategoricalHinge``."""

    def __init__(self, reduction=_DEFAULT, name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, reduction=reduction, dtype=dtype)


class CosineSimilarity(LossFunctionWrapper):
    """``keras.losses.CosineSimilarity``."""

    def __init__(self, axis=-1, reduction=_DEFAULT, name="cosine_similarity", dtype=None):
        super().__init__(cosine_similarity, name=name, reduction=reduction, dtype=dtype, axis=axis)


class Dice(LossFunctionWrapper):
    """``keras.losses.Dice``."""

    def __init__(self, reduction=_DEFAULT, name="dice", axis=None, dtype=None):
        super().__init__(dice, name=name, reduction=reduction, dtype=dtype, axis=axis)


class Tversky(LossFunctionWrapper):
    """``keras.losses.Tversky``."""

    def __init__(self, alpha=0.5, beta=0.5, reduction=_DEFAULT, name="tversky", axis=None,
                 dtype=None):
        super().__init__(tversky, name=name, reduction=reduction, dtype=dtype, alpha=alpha,
                         beta=beta, axis=axis)
