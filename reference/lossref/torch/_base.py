"""PyTorch dialect machinery: tensors from NumPy, torch's dtype rules, its errors, the
function object.

PyTorch semantics modelled here (spec/pipeline.md and the loss pages state each with its
source):

* A NumPy array is the tensor ``torch.from_numpy`` makes of it (same dtype, same shape;
  a 0-d array is a 0-dim tensor); a Python list or number becomes what
  ``torch.as_tensor`` makes (floats: float32, torch's default dtype).
* The result dtype follows ``torch.result_type``: the higher category (bool < integer <
  float) wins, float16 with bfloat16 gives float32, and a 0-dim tensor does not widen a
  dimensioned float tensor (:func:`result_format`). Functions that broadcast first
  (``l1_loss``, ``mse_loss``, ...) see only dimensioned tensors.
* Every input is taken as the exact value it holds and the result is rounded once into
  the result dtype; torch's intermediate roundings are findings, not conventions.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np

from .. import formats
from ..dialect import CatalogueFunction, Prepared, as_array, is_float
from ..dialect import float_format as dialect_float_format
from ..formats import Format
from ..reduction import reduce_torch

__all__ = ["TorchRuntimeError", "TorchDtypeError", "as_tensor", "result_type", "result_format", "float_format",
           "broadcast", "TorchFunction", "torch_function", "Prepared"]


class TorchRuntimeError(RuntimeError, ValueError):
    """Raised where torch raises ``RuntimeError`` for a bad value or shape; it is also the
    ``ValueError`` lossref's contract promises."""


class TorchDtypeError(RuntimeError, TypeError):
    """Raised where torch refuses a dtype with ``RuntimeError`` (or its subclass
    ``NotImplementedError``); it is also a ``TypeError``."""


# --- tensors and dtypes -----------------------------------------------------------------------


def as_tensor(x: Any, name: str) -> np.ndarray:
    """`x` as the array torch would hold: NumPy arrays and scalars as they are, Python
    floats (and lists of them) as float32."""
    arr = as_array(x, name)
    if not isinstance(x, (np.ndarray, np.generic)) and arr.dtype.kind == "f":
        arr = formats.as_format(arr, formats.FLOAT32)  # torch.get_default_dtype()
    return arr


def _category(dtype: np.dtype) -> int:
    return 2 if is_float(dtype) else 1 if dtype.kind in "iu" else 0


def _promote(a: Optional[np.dtype], b: Optional[np.dtype]) -> Optional[np.dtype]:
    """``torch.promote_types`` for the dtypes lossref reads (None: no operand)."""
    if a is None or b is None:
        return b if a is None else a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    if ca < 2:
        return np.promote_types(a, b)
    return formats.promote(a, b).dtype


def result_type(*operands: Tuple[np.dtype, int]) -> Tuple[np.dtype, int]:
    """``torch.result_type`` over `operands`, ``(dtype, ndim)`` pairs, with the ndim of the
    result (the operands broadcast together).

    Dimensioned operands decide unless a 0-dim one is of a higher category (c10's
    ``combine_categories``).
    """
    dim = zero = None
    for dtype, ndim in operands:
        if ndim:
            dim = _promote(dim, np.dtype(dtype))
        else:
            zero = _promote(zero, np.dtype(dtype))
    if dim is not None and is_float(dim):
        out = dim
    elif dim is None or dim.kind == "b" or (zero is not None and is_float(zero)):
        out = _promote(dim, zero)
    else:
        out = dim
    return out, max(n for _, n in operands)


def result_format(fn: str, *operands: Tuple[np.dtype, int]) -> Format:
    """The float format of :func:`result_type`; a non-float result is torch's "not
    implemented" error."""
    out = result_type(*operands)[0]
    if not is_float(out):
        raise TorchDtypeError(f"{fn}: not implemented for integer or bool inputs (dtype {out})")
    return formats.get_format(out)


def float_format(fn: str, arr: np.ndarray, name: str) -> Format:
    """The format of a float array, or torch's dtype error naming `name`."""
    return dialect_float_format(fn, arr, name, TorchDtypeError)


def broadcast(fn: str, input: np.ndarray, target: np.ndarray, *, warn: bool = False):
    """``torch.broadcast_tensors(input, target)`` as views; `warn`: the UserWarning that
    l1, mse, smooth L1 and Huber give when the sizes differ."""
    if warn and input.shape != target.shape:
        warnings.warn(f"{fn}: using a target size {target.shape} that is different to the input "
                      f"size {input.shape}; the two are broadcast, which is likely not intended",
                      UserWarning, stacklevel=4)
    try:
        return np.broadcast_arrays(input, target)
    except ValueError:
        raise TorchRuntimeError(f"{fn}: the size of input {input.shape} and of target "
                                f"{target.shape} must match at every non-singleton "
                                "dimension") from None


def expands_to(fn: str, name: str, arr: np.ndarray, shape: tuple) -> np.ndarray:
    """`arr` if it broadcasts to exactly `shape` (the result's shape), else torch's error."""
    try:
        ok = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise TorchRuntimeError(f"{fn}: {name} of shape {arr.shape} does not broadcast to the "
                                f"shape {tuple(shape)} of the loss")
    return arr


# --- the function object --------------------------------------------------------------------------


class TorchFunction(CatalogueFunction):
    """A ``torch.nn.functional`` loss: ``f(input, target, ...)`` and ``f.exact(...)``.

    The preparer returns :class:`Prepared` with ``y_pred = input`` and ``y_true = target``
    (the catalogue's order), the result format, the elementwise parameters and
    ``stage3 = {"reduction", "weight", "batch_size", "divide_by"}``; `reference` and
    `oracle` are the catalogue's pair (:class:`~lossref.dialect.CatalogueFunction`), and
    the stage 3 is :func:`lossref.reduction.reduce_torch`.
    """

    namespace = "lossref.torch.nn.functional"
    dialect = "torch"
    roles = ("y_pred", "y_true")

    def finish(self, pr: Prepared, values, arith):
        s = pr.stage3
        out = reduce_torch(values, s["reduction"], s.get("weight"), arith, batch_size=s.get("batch_size"))
        if s.get("divide_by") is not None:  # kl_div's 'batchmean' after a legacy reduction
            out = arith.divide(out, s["divide_by"])
        return out


def torch_function(loss: str, reference: Callable[..., np.ndarray], oracle: Callable[..., np.ndarray],
                   elementwise: bool = False, vjp=None) -> Callable[[Callable[..., Prepared]], TorchFunction]:
    """Decorator: a preparer with torch's signature becomes a :class:`TorchFunction`
    evaluating the catalogue loss `loss` by its `reference` and `oracle`. `elementwise`:
    each value depends only on the elements at its position (input, target and the array
    parameters, all of the input's shape or broadcasting to it), so large inputs are
    evaluated in blocks."""
    return lambda prepare: TorchFunction(prepare, loss, reference, oracle, elementwise, vjp)
