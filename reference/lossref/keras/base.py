"""Keras dialect machinery: dtype conversion, the rank fix, `Loss`, function objects.

Keras semantics modelled here (spec/pipeline.md states each with its source):

* ``Loss.__call__`` converts y_true and y_pred to ``Loss.dtype`` (default float32),
  calls the loss function, then reduces with ``reduce_weighted_values``.
* A loss function converts ``y_pred`` to a tensor (ints and Python lists become
  float32, floats keep their dtype), casts ``y_true`` to y_pred's dtype, applies the
  rank fix and then broadcasts the two like NumPy.
* Python-float constants are "weak": rounded to the dtype they meet (``weak``).
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np

from .. import formats
from ..dialect import DialectFunction, Prepared, as_array, is_float
from ..dialect import exact_grad as _exact_grad
from ..dialect import reference_grad as _reference_grad
from ..dialect import _grad_input
from ..dialect import convert as _to_format
from ..formats import Format
from ..oracle import Exact, start_precision, to_exact
from ..reduction import (EXACT, FLOAT64, reduce_weighted_values, squeeze_or_expand_to_same_rank,
                         standardize_reduction)

__all__ = ["EPSILON", "FLOATX", "weak", "clip_bounds", "convert", "Prepared", "standard_inputs",
           "KerasFunction", "keras_function", "Loss", "LossFunctionWrapper", "keras_message",
           "AxisError", "KerasIndexError", "KerasDtypeError", "same_shape_message", "axis_error"]

#: ``keras.config.epsilon()`` default.
EPSILON = 1e-7
#: ``keras.config.floatx()`` default.
FLOATX = formats.FLOAT32


# --- Keras's exceptions ----------------------------------------------------------------------------

#: NumPy's ``AxisError`` (a ``ValueError`` and an ``IndexError``), what Keras raises for an axis
#: out of range on its NumPy backend
AxisError = getattr(getattr(np, "exceptions", np), "AxisError")


class KerasIndexError(IndexError, ValueError):
    """Raised where Keras raises ``IndexError`` (a class index out of range); it is also the
    ``ValueError`` lossref's contract promises."""


class KerasDtypeError(ValueError, TypeError):
    """Raised for a compute dtype lossref does not model, where Keras raises ``ValueError``
    (a name it cannot convert); it is also the ``TypeError`` lossref raises for a format."""


def warn(message: str, category: type) -> None:
    """``warnings.warn`` attributed to the first caller outside lossref, however deep in
    the dialect the warning is raised (a function, a class, an exact twin)."""
    import os
    import sys
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


def keras_message(keras_text: str, detail: str) -> str:
    """Keras's own wording for an error (code matching it keeps working), then lossref's
    more precise explanation, on one line."""
    return f"{keras_text} [lossref: {detail}]"


def same_shape_message(target_shape, output_shape, detail: str) -> str:
    """The backend cross-entropies' refusal of unequal shapes, with lossref's `detail`."""
    return keras_message("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={tuple(target_shape)}, output.shape={tuple(output_shape)}", detail)


def axis_error(axis, ndim: int, detail: str):
    """NumPy's message for an axis out of range, as Keras's NumPy backend raises it."""
    return AxisError(keras_message(f"axis {axis} is out of bounds for array of dimension {ndim}", detail))


def weak(value: float, fmt: Format) -> float:
    """A Python float constant as Keras materialises it next to a tensor of `fmt`."""
    return formats.round_mpf(float(value), fmt)


def clip_bounds(fmt: Format) -> tuple:
    """Keras's probability clip ``[eps, 1 - eps]``: both bounds formed in double
    (``1 - 1e-7 = 0.9999999``) and then rounded to `fmt`, so they are asymmetric and
    the upper one is exactly 1 in float16 and bfloat16."""
    return weak(EPSILON, fmt), weak(1.0 - EPSILON, fmt)


def convert(x: Any, name: str, fmt: Optional[Format] = None):
    """`x` as an array of `fmt` in that format's dtype, and the format
    (``ops.convert_to_tensor`` rules).

    Without `fmt`, float arrays keep their format and everything else becomes floatx. An
    array that already has the format comes back without a copy; other floats are cast
    with one rounding to nearest-even (:func:`lossref.formats.as_format`).
    Raises ``TypeError`` naming `name` for strings, objects and complex numbers.
    """
    arr = as_array(x, name)
    if fmt is None:
        from_list = not isinstance(x, np.ndarray) and not isinstance(x, np.generic)
        fmt = formats.get_format(arr.dtype) if is_float(arr.dtype) and not from_list else FLOATX
    return _to_format(arr, fmt), fmt


def standard_inputs(y_true, y_pred, *, broadcast: bool = True, rank_fix: bool = True, name: str = ""):
    """The conversion every Keras loss function starts with (see module docstring).

    A few Keras functions (KL divergence, Poisson) skip the rank fix: ``rank_fix=False``.
    """
    p, fmt = convert(y_pred, "y_pred")
    t, _ = convert(y_true, "y_true", fmt)
    if rank_fix:
        t, p = squeeze_or_expand_to_same_rank(t, p)
    if broadcast:
        try:
            t, p = np.broadcast_arrays(t, p)
        except ValueError:
            shapes = " ".join(str(s_).replace(" ", "") for s_ in (np.shape(t), np.shape(p)))
            raise ValueError(keras_message(
                f"operands could not be broadcast together with shapes {shapes}",
                f"{name + ': ' if name else ''}y_true shape {np.shape(t)} and y_pred shape "
                f"{np.shape(p)} are incompatible ("
                + ("after Keras's rank fix they must broadcast)" if rank_fix else "they must broadcast)")
            )) from None
    return t, p, fmt


class KerasFunction(DialectFunction):
    """A Keras loss function: ``f(y_true, y_pred, **kw)`` and ``f.exact(...)``.

    Built from a *preparer* with the Keras signature that returns :class:`Prepared`, and
    the catalogue loss whose per-sample values (stages 1 and 2) it returns.
    """

    namespace = "lossref.keras.losses"
    dialect = "keras"

    def prepare(self, y_true, y_pred, **kwargs) -> Prepared:
        pr = super().prepare(y_true, y_pred, **kwargs)
        pr.params = self.loss.bind(pr.params)
        if self.loss.check_inputs is not None:  # domain checks of structured losses
            self.loss.check_inputs(self.loss.name, pr.y_true, pr.y_pred)
        elif np.ndim(pr.y_pred) == 0:
            raise axis_error(-1, 0, f"{self.__name__}: inputs must have at least one axis; got scalars")
        return pr

    def values64(self, pr: Prepared) -> np.ndarray:
        return self.loss.per_sample64(pr.y_true, pr.y_pred, pr.params)

    def vjp64(self, pr: Prepared, cot: np.ndarray):
        return self.loss.per_sample_vjp64(pr.y_true, pr.y_pred, pr.params, cot)

    def oracle(self, pr: Prepared) -> np.ndarray:
        return self.loss.per_sample_exact_values(to_exact(pr.y_true), to_exact(pr.y_pred), pr.params)


def keras_function(loss: str, arrays: Tuple[str, ...] = ()) -> Callable[[Callable[..., Prepared]], KerasFunction]:
    """Decorator: a preparer with the Keras signature becomes a :class:`KerasFunction`;
    `arrays` names the float parameters that may also be sequences."""
    return lambda prepare: KerasFunction(prepare, loss, arrays)


#: the options Keras lists when it refuses a reduction
_KERAS_REDUCTIONS = "{'sum_over_batch_size', 'sum', None, 'none', 'mean', 'mean_with_sample_weight'}"


def _compute_format(dtype) -> Format:
    """``Loss(dtype=...)`` as a format: None is floatx; a Keras dtype policy or a
    ``"mixed_float16"``-style name gives its compute dtype, as in Keras."""
    if dtype is None:
        return FLOATX
    name = getattr(dtype, "compute_dtype", dtype)
    if isinstance(name, str) and name.startswith("mixed_"):
        name = name[len("mixed_"):]
    try:
        return formats.get_format(name)
    except TypeError as e:
        raise KerasDtypeError(keras_message(
            f"Cannot convert {dtype!r} to a mixed precision DTypePolicy.", str(e))) from None


def _canonical(config: dict) -> str:
    """A config as text that compares by value (arrays and tuples as lists)."""
    def plain(v):
        if isinstance(v, np.ndarray):
            return {"array": v.tolist(), "dtype": v.dtype.name}
        return v.item() if isinstance(v, np.generic) else repr(v)
    return json.dumps(config, sort_keys=True, default=plain)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Loss:
    """Base class mirroring ``keras.losses.Loss``.

    Parameters
    ----------
    name : str, optional
    reduction : str or None
        One of :data:`lossref.reduction.REDUCTIONS`.
    dtype : str or format, optional
        Compute dtype; inputs and sample weights are converted to it. Default float32.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None) -> None:
        self.name = name or _snake(type(self).__name__)
        try:
            self.reduction = standardize_reduction(reduction)
        except ValueError as e:
            raise ValueError(keras_message(
                "Invalid value for argument `reduction`. Expected one of "
                f"{_KERAS_REDUCTIONS}. Received: reduction={reduction}", str(e))) from None
        self._fmt = _compute_format(dtype)

    @property
    def dtype(self) -> str:
        return self._fmt.name

    def call(self, y_true, y_pred) -> np.ndarray:
        """Per-sample losses (``reduction=None`` output before weighting)."""
        raise NotImplementedError

    def _prepared(self, y_true, y_pred) -> Prepared:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepared")

    def _sample_weight(self, sample_weight):
        if sample_weight is None:
            return None
        return convert(sample_weight, "sample_weight", self._fmt)[0]

    def _convert_inputs(self, y_true, y_pred):
        return convert(y_true, "y_true", self._fmt)[0], convert(y_pred, "y_pred", self._fmt)[0]

    def __call__(self, y_true, y_pred, sample_weight=None) -> np.ndarray:
        pr, fn = self._prepared(*self._convert_inputs(y_true, y_pred))
        out = reduce_weighted_values(fn.values64(pr), self.reduction,
                                     self._sample_weight(sample_weight), pr.mask, FLOAT64)
        return np.asarray(formats.to_format_array(out, self._fmt))

    def exact(self, y_true, y_pred, sample_weight=None) -> Exact:
        """The exact twin of ``__call__``."""
        pr, fn = self._prepared(*self._convert_inputs(y_true, y_pred))
        sw = self._sample_weight(sample_weight)
        values = fn.values_exact(pr)

        def evaluate():
            # the weights are taken exactly on whichever backend evaluates the loss
            return reduce_weighted_values(values(), self.reduction, None if sw is None else to_exact(sw),
                                          pr.mask, EXACT)

        return Exact(evaluate, start_prec=start_precision(pr.y_true, pr.y_pred, sw), dtype=self._fmt,
                     label=f"keras.{type(self).__name__}", balls=True)

    def _grad_case(self, y_true, y_pred, sample_weight, wrt):
        if wrt not in ("y_true", "y_pred"):
            raise ValueError(f"{type(self).__name__}: cannot differentiate with respect to {wrt!r}; "
                             "expected 'y_pred' or 'y_true'")
        given = {"y_true": y_true, "y_pred": y_pred}
        user = given[wrt] = _grad_input(type(self).__name__, given[wrt], wrt)
        t, p = self._convert_inputs(given["y_true"], given["y_pred"])
        pr, fn = self._prepared(t, p)
        sw = self._sample_weight(sample_weight)
        return pr, fn, sw, user

    def grad(self, y_true, y_pred, sample_weight=None, wrt: str = "y_pred") -> np.ndarray:
        """Reference gradient of the loss (``__call__``, summed) with respect to `wrt`, in
        the loss dtype; stage 3 (weights, mask, reduction) included."""
        pr, fn, sw, user = self._grad_case(y_true, y_pred, sample_weight, wrt)

        def finish(v, ar):
            return reduce_weighted_values(v, self.reduction, sw, pr.mask, ar)

        return _reference_grad(fn, pr, finish, wrt, wrt, user, self._fmt)

    def exact_grad(self, y_true, y_pred, sample_weight=None, wrt: str = "y_pred") -> Exact:
        """The exact twin of :meth:`grad`."""
        pr, fn, sw, user = self._grad_case(y_true, y_pred, sample_weight, wrt)

        def finish(v, ar):
            return reduce_weighted_values(v, self.reduction, None if sw is None or ar is not EXACT else to_exact(sw),
                                          pr.mask, ar)

        return _exact_grad(fn, pr, finish, wrt, wrt, user, self._fmt, f"keras.{type(self).__name__}",
                           start_precision(pr.y_true, pr.y_pred, sw))

    def get_config(self) -> dict:
        """``keras.losses.Loss.get_config``: name and reduction, and the dtype where it is
        not the default float32.

        Keras leaves the dtype out always, so ``from_config`` of a float64 loss's config gives
        it a float32 loss; lossref keeps a non-default dtype so the round trip is faithful
        (Keras's ``from_config`` accepts the key).
        """
        config = {"name": self.name, "reduction": self.reduction}
        if self._fmt != FLOATX:
            config["dtype"] = self.dtype
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        """The loss a :meth:`get_config` dictionary describes (``cls(**config)``)."""
        return cls(**config)

    def _identity(self) -> tuple:
        # two losses are equal when they compute the same thing under the same name
        return type(self), _canonical({**self.get_config(), "dtype": self.dtype})

    def __eq__(self, other) -> bool:
        return isinstance(other, Loss) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"<lossref.keras.losses.{type(self).__name__} reduction={self.reduction!r}>"


class LossFunctionWrapper(Loss):
    """``keras.losses.LossFunctionWrapper``: a :class:`KerasFunction` with fixed kwargs."""

    def __init__(self, fn: KerasFunction, reduction="sum_over_batch_size", name=None, dtype=None,
                 **kwargs) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(fn, KerasFunction):
            raise TypeError("fn must be a lossref.keras.losses function")
        fn._check_numbers(kwargs)  # a bad parameter fails here, not at the first call
        self.fn = fn
        self._fn_kwargs = kwargs
        for k, v in kwargs.items():  # Keras's classes expose their arguments (loss.axis, ...)
            setattr(self, k, v)

    def _prepared(self, y_true, y_pred):
        # y_true/y_pred are arrays of self._fmt, which the function reads as that format and
        # keeps as they are (bfloat16 without ml_dtypes is float32 there: the values are exact
        # and the format is set back below)
        t, p = squeeze_or_expand_to_same_rank(y_true, y_pred)
        pr = self.fn.prepare(t, p, **self._fn_kwargs)
        pr.fmt = self._fmt
        return pr, self.fn

    def call(self, y_true, y_pred) -> np.ndarray:
        """Per-sample losses in the loss dtype, before weighting and reduction."""
        pr, fn = self._prepared(*self._convert_inputs(y_true, y_pred))
        return np.asarray(formats.to_format_array(fn.values64(pr), self._fmt))

    def get_config(self) -> dict:
        """The base configuration plus the function's keyword arguments, as Keras after
        3.15.1 gives them (keras PR #23286: 3.15.1 leaves out Huber's ``delta`` and the
        ``axis`` of CosineSimilarity and SparseCategoricalCrossentropy, so their configs do
        not rebuild the loss). A class whose constructor takes ``fn`` also gets ``fn``,
        serialized."""
        config = super().get_config()
        if "fn" in inspect.signature(type(self).__init__).parameters:
            from ._saving import serialize
            config["fn"] = serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "LossFunctionWrapper":
        """Rebuild from :meth:`get_config`; a serialized ``fn`` is deserialized first."""
        if "fn" in config:
            from ._saving import deserialize
            config = {**config, "fn": deserialize(config["fn"])}
        return cls(**config)
