"""TensorFlow dialect machinery: tensors from NumPy, TF's dtype rules, its errors, the
function object and TF's stage 3.

TensorFlow semantics modelled here (the loss pages state each with its source):

* A NumPy array is the tensor ``tf.convert_to_tensor`` makes of it (same dtype, same
  shape); a Python float, or a list of floats, becomes float32 and a Python int int32
  (TF's default dtypes for Python numbers).
* TF does not promote: two float operands of one arithmetic op must have the same dtype,
  else ``InvalidArgumentError`` (:class:`TFDtypeError` here). Where TF casts an operand
  on purpose (``softmax_cross_entropy_with_logits`` casts the labels to the logits'
  dtype) the cast is a rounding of the caller's data, modelled as such.
* The loss kernels take float16, bfloat16, float32 and float64 on CPU. Each input is taken
  as the exact value it holds and the result is rounded once into the result dtype; TF's
  intermediate roundings (float16 computed in float32, float64 sample-weighted losses
  computed in float32) are findings, not conventions.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import formats
from ..dialect import CatalogueFunction, Prepared, as_array
from ..dialect import float_format as dialect_float_format
from ..formats import Format
from ..oracle import to_exact
from ..reduction import reduce_tf

__all__ = ["TFInvalidArgumentError", "TFDtypeError", "as_tensor", "float_format", "same_dtype", "same_shape",
           "TFFunction", "TFStageFunction", "tf_function", "tf_stage", "Prepared"]

#: dtype names of the float kernels TF registers on CPU for its loss ops
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


class TFInvalidArgumentError(ValueError):
    """Raised where TF raises ``tf.errors.InvalidArgumentError`` (a bad value or shape,
    found by a kernel); it is the ``ValueError`` lossref's contract promises."""


class TFDtypeError(TFInvalidArgumentError, TypeError):
    """Raised where TF refuses a dtype (``InvalidArgumentError``: an op's attribute ``T``
    outside its allowed list, or operands of two dtypes); it is also a ``TypeError``."""


# --- tensors and dtypes -------------------------------------------------------------------------


def as_tensor(x: Any, name: str) -> np.ndarray:
    """`x` as ``tf.convert_to_tensor`` holds it: NumPy arrays and scalars as they are,
    Python floats (and lists of them) as float32, Python ints as int32."""
    arr = as_array(x, name)
    if isinstance(x, (np.ndarray, np.generic)):
        return arr
    if arr.dtype.kind == "f":
        return formats.as_format(arr, formats.FLOAT32)
    if arr.dtype.kind in "iu":
        small = arr.size == 0 or (arr.min() >= -2 ** 31 and arr.max() < 2 ** 31)
        return arr.astype(np.int32 if small else np.int64)  # TF gives int64 to what int32 cannot hold
    return arr


def float_format(fn: str, arr: np.ndarray, name: str) -> Format:
    """The format of a float tensor, or TF's dtype error naming `name` (integer and bool
    tensors have no kernel)."""
    return dialect_float_format(fn, arr, name, TFDtypeError)


def same_dtype(fn: str, a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """TF's rule for two operands of one op: equal dtypes, else its InvalidArgumentError
    (TF never promotes)."""
    if a.dtype != b.dtype:
        raise TFDtypeError(f"{fn}: {a_name} ({a.dtype}) and {b_name} ({b.dtype}) must have the same "
                           "dtype (TensorFlow does not promote)")


def same_shape(fn: str, a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """The ``ValueError`` of TF's static shape check (``assert_is_compatible_with``)."""
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {a_name} {a.shape} and {b_name} {b.shape} must have the same shape")


# --- stage 3 ------------------------------------------------------------------------------------


# --- the function object --------------------------------------------------------------------------


class TFFunction(CatalogueFunction):
    """A ``tf.nn`` loss: ``f(labels, logits, ...)`` and ``f.exact(...)``.

    The preparer returns :class:`Prepared` with the catalogue's ``y_true``/``y_pred``, the
    result format, the reference's parameters and ``stage3``: ``{}`` for TF's unreduced
    losses, ``{"sum": d}`` for a total divided by ``d`` (``l2_loss``: 2), or
    ``{"average": True, "weight": w, "global_batch_size": n}`` (:func:`reduce_tf`).
    A one-argument signature (``scale_regularization_loss``) is called with that argument.
    """

    namespace = "lossref.tf.nn"
    dialect = "tf"

    def _arguments(self, args, kwargs) -> tuple:
        names = list(self.__signature__.parameters)
        if len(names) > 1:
            return super()._arguments(args, kwargs)
        if len(args) + len(kwargs) != 1 or (kwargs and names[0] not in kwargs):
            raise TypeError(f"{self.__name__}() takes exactly one argument, {names[0]}")
        return (args[0] if args else kwargs[names[0]]), None, {}

    def prepare(self, a, b, **kwargs) -> Prepared:
        if len(self.__signature__.parameters) == 1:
            return self._prepare(a)
        return super().prepare(a, b, **kwargs)

    def finish(self, pr: Prepared, values, arith):
        s = pr.stage3
        if "sum" in s:
            return arith.mean_of_total(values, None, s["sum"])
        if s.get("average"):
            return reduce_tf(values, s.get("weight"), s.get("global_batch_size"), arith)
        return values


class TFStageFunction(TFFunction):
    """A ``tf.nn`` stage-3 helper (``compute_average_loss``, ``scale_regularization_loss``):
    its values are its input taken as given, then :meth:`TFFunction.finish`."""

    #: the one argument (or the first) is the values; a sample weight has no gradient here
    roles = ("y_pred", "")

    def __init__(self, prepare: Callable[..., Prepared]) -> None:
        super().__init__(prepare, "", None, None)

    @property
    def loss(self):
        return None  # no catalogue loss: the values are the caller's

    def values64(self, pr: Prepared) -> np.ndarray:
        return np.asarray(pr.y_pred, np.float64)

    def oracle(self, pr: Prepared) -> np.ndarray:
        return to_exact(pr.y_pred)

    def vjp64(self, pr: Prepared, cot: np.ndarray):
        return {"y_pred": np.asarray(cot, np.float64)}


def tf_function(loss: str, reference: Callable[..., np.ndarray], oracle: Callable[..., np.ndarray],
                elementwise: bool = False, vjp=None) -> Callable[[Callable[..., Prepared]], TFFunction]:
    """Decorator: a preparer with TF's signature becomes a :class:`TFFunction` evaluating
    the catalogue loss `loss` by its `reference` and `oracle` (see
    :class:`~lossref.dialect.CatalogueFunction` for `elementwise`)."""
    return lambda prepare: TFFunction(prepare, loss, reference, oracle, elementwise, vjp)


def tf_stage(prepare: Callable[..., Prepared]) -> TFStageFunction:
    """Decorator: a preparer of a stage-3 helper becomes a :class:`TFStageFunction`."""
    return TFStageFunction(prepare)
