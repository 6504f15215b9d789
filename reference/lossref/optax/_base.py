"""Optax dialect machinery: arrays from NumPy as JAX holds them, JAX's dtype promotion, the
function object.

Optax semantics modelled here (the loss pages state each with its source):

* JAX runs with ``jax_enable_x64`` on (without it JAX turns float64 input into float32
  before optax sees it, which is a conversion of the caller's data, not a property of a
  loss). A NumPy array is the ``jnp.asarray`` of it (same dtype and shape); a Python
  float or a list of floats is float64 (x64's default float type).
* The result dtype follows ``jnp.result_type`` of the float operands: float16 with
  bfloat16 gives float32, otherwise the wider format wins (:func:`result_format`).
  Python scalars are weakly typed and never widen an array's dtype.
* Optax returns per-example values and leaves every batch reduction to the caller: there
  is no stage 3. Each input is taken as the exact value it holds and the result is
  rounded once into the result dtype; JAX's intermediate roundings are findings, not
  conventions.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import numpy as np

from .. import formats
from ..dialect import CatalogueFunction, Prepared, as_array, float_format, is_float
from ..formats import Format

__all__ = ["as_jax", "result_format", "float_format", "broadcast", "OptaxFunction", "optax_function",
           "Prepared"]


def as_jax(x: Any, name: str) -> np.ndarray:
    """`x` as the array ``jnp.asarray`` makes with x64 on: NumPy arrays and scalars as they
    are, Python numbers and lists as NumPy reads them (floats: float64)."""
    return as_array(x, name)


def result_format(fn: str, *arrays: np.ndarray) -> Format:
    """The format of JAX's result of float arrays combined elementwise; a non-float
    operand is a ``TypeError`` (lossref's optax dialect takes float inputs, where optax's
    own checks or JAX's integer arithmetic would give no float loss to compare)."""
    out = None
    for a in arrays:
        if not is_float(a.dtype):
            raise TypeError(f"{fn}: expected float arrays (float16, bfloat16, float32 or float64); "
                            f"got dtype {a.dtype}")
        out = a.dtype if out is None else formats.promote(out, a.dtype).dtype  # jnp.promote_types
    return formats.get_format(out)


def broadcast(fn: str, *arrays: np.ndarray) -> Tuple[np.ndarray, ...]:
    """NumPy (and JAX) broadcasting as views, or a ``ValueError`` naming the shapes."""
    try:
        return tuple(np.broadcast_arrays(*arrays))
    except ValueError:
        raise ValueError(f"{fn}: shapes {[a.shape for a in arrays]} do not broadcast together") from None


class OptaxFunction(CatalogueFunction):
    """An ``optax.losses`` function: ``f(predictions, targets, ...)`` (or ``f(logits,
    labels, ...)``) and ``f.exact(...)``.

    The preparer returns :class:`Prepared` with the catalogue's ``y_true``/``y_pred``, the
    result format and the reference's parameters; optax has no stage 3, so the values
    are returned as they are, rounded once into the result format.
    """

    namespace = "lossref.optax.losses"
    dialect = "optax"
    roles = ("y_pred", "y_true")


def optax_function(loss: str, reference: Callable[..., np.ndarray], oracle: Callable[..., np.ndarray],
                   elementwise: bool = False, vjp=None) -> Callable[[Callable[..., Prepared]], OptaxFunction]:
    """Decorator: a preparer with optax's signature becomes an :class:`OptaxFunction`
    evaluating the catalogue loss `loss` by its `reference` and `oracle` (see
    :class:`~lossref.dialect.CatalogueFunction` for `elementwise`)."""
    return lambda prepare: OptaxFunction(prepare, loss, reference, oracle, elementwise, vjp)
