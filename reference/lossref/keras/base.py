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

import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import mpmath
import numpy as np

from .. import formats
from ..formats import Format
from ..oracle import Exact, start_precision, to_exact
from ..reduction import (EXACT, FLOAT64, reduce_weighted_values, squeeze_or_expand_to_same_rank,
                         standardize_reduction)
from ..registry import LossDef, get, is_real

#: ``keras.config.epsilon()`` default.
EPSILON = 1e-7
#: ``keras.config.floatx()`` default.
FLOATX = formats.FLOAT32


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
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"{name} is not a rectangular array: {e}") from None
    else:
        arr = np.asarray(x)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be numeric (bool, int or float); got dtype {arr.dtype}")
    if fmt is None:
        is_float = arr.dtype.kind == "f" or arr.dtype.name == "bfloat16"
        from_list = not isinstance(x, np.ndarray) and not isinstance(x, np.generic)
        fmt = formats.get_format(arr.dtype) if is_float and not from_list else FLOATX
    return formats.as_format(arr, fmt), fmt


@dataclass
class Prepared:
    """Inputs of one loss evaluation after the dialect's conversions.

    `y_true`/`y_pred` hold values of `fmt`, in its dtype as :func:`convert` returns them
    (float64 for class labels), possibly as broadcast views: the catalogue widens them a
    block at a time, so no full-size float64 copy is made. `params` are the
    LossDef parameters (constants already rounded the Keras way); `mask` marks the
    per-sample entries that count (``_keras_mask`` set by the function), or None.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    fmt: Format
    params: Dict[str, Any] = field(default_factory=dict)
    mask: Optional[np.ndarray] = None


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
            raise ValueError(f"{name + ': ' if name else ''}y_true shape {np.shape(t)} and y_pred shape "
                             f"{np.shape(p)} are incompatible ("
                             + ("after Keras's rank fix they must broadcast)" if rank_fix else "they must broadcast)")
                             ) from None
    return t, p, fmt


class KerasFunction:
    """A Keras loss function: ``f(y_true, y_pred, **kw)`` and ``f.exact(...)``.

    Built from a *preparer* with the Keras signature that returns :class:`Prepared`, and
    the catalogue loss that computes the values.
    """

    def __init__(self, prepare: Callable[..., Prepared], loss: str,
                 arrays: Tuple[str, ...] = ()) -> None:
        functools.update_wrapper(self, prepare)
        self._prepare = prepare
        self._loss_name = loss
        self._array_params = frozenset(arrays)
        self.__signature__ = inspect.signature(prepare)
        # the exact twin carries the function's own signature (help(), inspect, IDEs)
        exact = functools.partial(KerasFunction._exact, self)
        functools.update_wrapper(exact, KerasFunction._exact)
        exact.__signature__ = self.__signature__
        exact.__doc__ = f"Exact twin of {prepare.__name__}: same signature, returns lossref.Exact."
        self.exact = exact

    @property
    def loss(self) -> LossDef:
        return get(self._loss_name)

    def _check_numbers(self, kwargs) -> None:
        """A parameter whose default is a float takes a real number, and a sequence of them
        only where the Keras docs say so (`arrays`, e.g. focal CE's per-class alpha): a
        clear error naming it, instead of a failed conversion deep inside."""
        for name, value in kwargs.items():
            p = self.__signature__.parameters.get(name)
            if p is None or not isinstance(p.default, float) or is_real(value):
                continue
            if name in self._array_params:
                if isinstance(value, (list, tuple, np.ndarray)) and \
                        all(is_real(v) for v in np.ravel(np.asarray(value, dtype=object))):
                    continue
                raise TypeError(f"{self.__name__}: {name} must be a real number or a sequence of "
                                f"them; got {value!r}")
            raise TypeError(f"{self.__name__}: {name} must be a real number (a scalar); got {value!r}")

    def prepare(self, y_true, y_pred, **kwargs) -> Prepared:
        self._check_numbers(kwargs)
        pr = self._prepare(y_true, y_pred, **kwargs)
        pr.params = self.loss.bind(pr.params)
        if self.loss.check_inputs is not None:  # domain checks of structured losses
            self.loss.check_inputs(self.loss.name, pr.y_true, pr.y_pred)
        elif np.ndim(pr.y_pred) == 0:
            raise ValueError(f"{self.__name__}: inputs must have at least one axis; got scalars")
        return pr

    def values64(self, pr: Prepared) -> np.ndarray:
        return self.loss.per_sample64(pr.y_true, pr.y_pred, pr.params)

    def values_exact(self, pr: Prepared) -> Callable[[], np.ndarray]:
        """The per-sample oracle at the current working precision, as a closure.

        Evaluations are shared through a small cache keyed by the exact inputs, the
        parameters and the precision: the function's twin and each reduction's twin of one
        case (as golden vectors and ``lossref diff`` evaluate them) then run the oracle
        once per precision instead of once per twin.
        """
        t, p = to_exact(pr.y_true), to_exact(pr.y_pred)
        key = (self._loss_name, np.asarray(pr.y_true, np.float64).tobytes(), np.shape(pr.y_true),
               np.asarray(pr.y_pred, np.float64).tobytes(), np.shape(pr.y_pred), _params_key(pr.params))

        def evaluate():
            k = key + (mpmath.mp.prec,)
            hit = _ORACLE_CACHE.get(k)
            if hit is None:
                hit = self.loss.per_sample_exact_values(t, p, pr.params)
                if len(_ORACLE_CACHE) >= _ORACLE_CACHE_SIZE:
                    _ORACLE_CACHE.pop(next(iter(_ORACLE_CACHE)))
                _ORACLE_CACHE[k] = hit
            return np.array(hit, dtype=object, copy=True) if isinstance(hit, np.ndarray) else hit

        return evaluate

    def _keywords(self, args, kwargs) -> dict:
        """Parameters given by position (Keras allows ``f(y_true, y_pred, 0.5)``) as keywords."""
        names = list(self.__signature__.parameters)[2:]
        if len(args) > len(names):
            raise TypeError(f"{self.__name__}() takes at most {len(names) + 2} positional "
                            f"arguments ({len(args) + 2} given)")
        twice = set(names[:len(args)]) & set(kwargs)
        if twice:
            raise TypeError(f"{self.__name__}() got multiple values for {sorted(twice)}")
        return {**dict(zip(names, args)), **kwargs}

    def __call__(self, y_true, y_pred, *args, **kwargs) -> np.ndarray:
        pr = self.prepare(y_true, y_pred, **self._keywords(args, kwargs))
        return np.asarray(formats.to_format_array(self.values64(pr), pr.fmt))

    def _exact(self, y_true, y_pred, *args, **kwargs) -> Exact:
        """The exact twin: same signature, returns :class:`lossref.Exact`."""
        pr = self.prepare(y_true, y_pred, **self._keywords(args, kwargs))
        return Exact(self.values_exact(pr), start_prec=start_precision(pr.y_true, pr.y_pred),
                     dtype=pr.fmt, label=f"keras.{self.__name__}")

    def __repr__(self) -> str:
        return f"<lossref.keras.losses.{self.__name__}>"


def _params_key(value: Any) -> Any:
    """A hashable key that tells any two parameter values apart: arrays by dtype, shape and
    bytes (their ``repr`` elides the middle of a large array, so it cannot serve)."""
    if isinstance(value, dict):
        return tuple((k, _params_key(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_params_key(v) for v in value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return (type(value).__name__, repr(value))


_ORACLE_CACHE: Dict[tuple, Any] = {}  # oldest entry evicted first
_ORACLE_CACHE_SIZE = 64


def keras_function(loss: str, arrays: Tuple[str, ...] = ()) -> Callable[[Callable[..., Prepared]], KerasFunction]:
    """Decorator: a preparer with the Keras signature becomes a :class:`KerasFunction`;
    `arrays` names the float parameters that may also be sequences."""
    return lambda prepare: KerasFunction(prepare, loss, arrays)


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
        self.reduction = standardize_reduction(reduction)
        self._fmt = formats.get_format(dtype or FLOATX)

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
        swe = None if sw is None else to_exact(sw)
        return Exact(lambda: reduce_weighted_values(values(), self.reduction, swe, pr.mask, EXACT),
                     start_prec=start_precision(pr.y_true, pr.y_pred, sw), dtype=self._fmt,
                     label=f"keras.{type(self).__name__}")

    def get_config(self) -> dict:
        """Name, reduction and dtype (``keras.losses.Loss.get_config``)."""
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}

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
        """The base configuration plus the function's keyword arguments."""
        return {**super().get_config(), **self._fn_kwargs}
