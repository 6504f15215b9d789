"""Mirror of ``keras.losses``: same names, signatures and defaults, NumPy results.

Every function and class has an ``.exact`` twin with the same signature that returns a
:class:`lossref.Exact`. Each preparer below states only what differs from the plain
conversion (:func:`~lossref.keras.base.standard_inputs`): where Keras materialises a
constant and in which dtype.
"""

from __future__ import annotations

from . import _binary, _categorical, _margin, _structured
from ._binary import *  # noqa: F401,F403
from ._categorical import *  # noqa: F401,F403
from ._margin import *  # noqa: F401,F403
from ._structured import *  # noqa: F401,F403
from ._saving import ALIASES, deserialize, get, serialize  # noqa: F401
from .base import (EPSILON, FLOATX, Loss, LossFunctionWrapper, Prepared, keras_function,
                   standard_inputs, weak)

__all__ = [
    "Loss", "LossFunctionWrapper", "get", "serialize", "deserialize",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh",
    "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "LogCosh",
] + _binary.__all__ + _categorical.__all__ + _margin.__all__ + _structured.__all__

_DEFAULT = "sum_over_batch_size"


# --- regression ---------------------------------------------------------------------------------


@keras_function("mean_squared_error")
def mean_squared_error(y_true, y_pred):
    """Per-sample ``mean((y_true - y_pred)^2, axis=-1)``."""
    return Prepared(*standard_inputs(y_true, y_pred))


@keras_function("mean_absolute_error")
def mean_absolute_error(y_true, y_pred):
    """Per-sample ``mean(|y_true - y_pred|, axis=-1)``."""
    return Prepared(*standard_inputs(y_true, y_pred))


@keras_function("mean_absolute_percentage_error")
def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, eps), axis=-1)``."""
    t, p, fmt = standard_inputs(y_true, y_pred)
    # Keras: epsilon converted to y_pred's dtype
    return Prepared(t, p, fmt, {"epsilon": weak(EPSILON, fmt)})


@keras_function("mean_squared_logarithmic_error")
def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample ``mean((log(max(p, eps) + 1) - log(max(y, eps) + 1))^2, axis=-1)``."""
    t, p, fmt = standard_inputs(y_true, y_pred)
    # Keras: epsilon is a floatx tensor; maximum() promotes narrower inputs to floatx
    wide = fmt if fmt.precision >= FLOATX.precision else FLOATX
    return Prepared(t, p, wide, {"epsilon": weak(EPSILON, FLOATX)})


@keras_function("huber")
def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss with threshold `delta` (converted to y_pred's dtype)."""
    t, p, fmt = standard_inputs(y_true, y_pred)
    return Prepared(t, p, fmt, {"delta": weak(delta, fmt)})


@keras_function("log_cosh")
def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(y_pred - y_true)), axis=-1)``."""
    return Prepared(*standard_inputs(y_true, y_pred))


class MeanSquaredError(LossFunctionWrapper):
    """``keras.losses.MeanSquaredError``."""

    def __init__(self, reduction=_DEFAULT, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(LossFunctionWrapper):
    """``keras.losses.MeanAbsoluteError``."""

    def __init__(self, reduction=_DEFAULT, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """``keras.losses.MeanAbsolutePercentageError``."""

    def __init__(self, reduction=_DEFAULT, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction,
                         dtype=dtype)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """``keras.losses.MeanSquaredLogarithmicError``."""

    def __init__(self, reduction=_DEFAULT, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction,
                         dtype=dtype)


class Huber(LossFunctionWrapper):
    """``keras.losses.Huber``."""

    def __init__(self, delta=1.0, reduction=_DEFAULT, name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)


class LogCosh(LossFunctionWrapper):
    """``keras.losses.LogCosh``."""

    def __init__(self, reduction=_DEFAULT, name="log_cosh", dtype=None):
        super().__init__(log_cosh, name=name, reduction=reduction, dtype=dtype)
