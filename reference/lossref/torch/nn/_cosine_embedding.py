"""``torch.nn.functional.cosine_embedding_loss`` and ``torch.nn.CosineEmbeddingLoss``
(PyTorch 2.13).

The value is the catalogue's ``cosine_embedding`` (spec/losses/cosine_embedding.md) with
``x1 = input1``, ``x2 = input2`` and the labels ``target``; what is torch's here:

* shapes: a 1-D target (N) with 2-D inputs (N, D), or a 0-D target with 1-D inputs (D),
  else ``RuntimeError``; the batch dimensions of input1, input2 and target broadcast
  (one row or one label serves all). Inputs whose feature dimensions differ (one of
  them 1) are refused: torch would take the dot product over the broadcast vectors and
  each norm over its own entries, which is no cosine (a ``ValueError``, not modelled).
* ``eps`` is ATen's constant ``EPSILON``, a C++ ``float`` 1e-12, added to each squared norm
  as a scalar of that norm's dtype: rounded to it (0 in float16, whose zero vectors then
  give 0/0 = NaN); an integer or bool input's norm is float32.
* `margin` is rounded to the result dtype; ``'mean'`` divides by the number of losses.
* The result dtype is that of ``input1 * input2`` and of the two norms promoted (integer
  inputs give float32); the target's dtype plays no part.

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> a = np.array([[1., 0.], [1., 1.]], np.float32)
>>> b = np.array([[0., 1.], [1., 1.]], np.float32)
>>> F.cosine_embedding_loss(a, b, np.array([1, -1]), margin=0.5, reduction="none")
array([1. , 0.5], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ... import formats
from ...losses import cosine_embedding as _ce
from ...reduction import torch_reduction
from ...registry import is_real
from .._base import Prepared, TorchRuntimeError, as_tensor, is_float, result_type, torch_function

__all__ = ["cosine_embedding_loss", "CosineEmbeddingLoss"]

#: ATen's EPSILON: the float nearest 1e-12
EPSILON = float(np.float32(1e-12))


def _held(value: float, fmt: formats.Format) -> float:
    """`value` as torch holds a scalar in a computation of `fmt`: rounded to it."""
    return float(formats.as_format(np.float64(value), fmt))


def _norm_format(a: np.ndarray) -> formats.Format:
    """The format of ``(a * a).sum() + EPSILON``: a's, or float32 for integer and bool."""
    return formats.get_format(a.dtype) if is_float(a.dtype) else formats.FLOAT32


def _rows(n1: int, n2: int, n: int) -> int:
    """The broadcast number of samples, or torch's error."""
    try:
        return int(np.broadcast_shapes((n1,), (n2,), (n,))[0])
    except ValueError:
        a, b = (n1, n2) if n1 not in (1, n2) and n2 != 1 else (n, n1 if n1 != 1 else n2)
        raise TorchRuntimeError(f"The size of tensor a ({a}) must match the size of tensor b ({b}) at "
                                "non-singleton dimension 0") from None


def _cosine_embedding_vjp(y_true, y_pred, cot, x2=None, margin=0.0, eps=1e-12) -> dict:
    """torch's gradient: ``-dcos`` where the label is 1, ``dcos`` where it is -1 and
    ``cos - margin >= 0`` (``clamp_min`` passes the gradient at its bound: orthogonal
    vectors with margin 0 are active), 0 for other labels; no target gradient.

    The catalogue's :func:`lossref.losses.cosine_embedding.gradient` with ``kink = 1``:
    ``dcos/dx1 = (x2 - (s/A) x1) / sqrt(A B)``, the residual formed without cancellation
    (nearly parallel vectors, where only eps keeps it from 0)."""
    return _ce.gradient(y_true, y_pred, cot, x2, margin, eps, kink=1.0)


@torch_function("cosine_embedding", _ce.reference, _ce.oracle, vjp=_cosine_embedding_vjp)
def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """``1 - cos(x1, x2)`` where ``target = 1``, ``max(0, cos - margin)`` where
    ``target = -1``, 0 for other labels; per sample of (N, D) inputs and an (N) target,
    or of (D) inputs and a 0-D target; ``'mean'`` over the samples."""
    fn = "cosine_embedding_loss"
    red = torch_reduction(reduction, size_average, reduce)
    if isinstance(margin, (bool, np.bool_)) or not is_real(margin):
        raise TypeError(f"{fn}: margin must be a real number; got {margin!r}")
    i1, i2, t = as_tensor(input1, "input1"), as_tensor(input2, "input2"), as_tensor(target, "target")
    if t.ndim not in (0, 1):
        raise TorchRuntimeError("0D or 1D target tensor expected, multi-target not supported")
    want = 2 if t.ndim == 1 else 1
    if i1.ndim != want or i2.ndim != want:
        raise TorchRuntimeError(f"{t.ndim}D target tensor expects {want}D input tensors, but found inputs "
                                f"with sizes {list(i1.shape)} and {list(i2.shape)}.")
    if i1.shape[-1] != i2.shape[-1]:
        if 1 not in (i1.shape[-1], i2.shape[-1]):
            raise TorchRuntimeError(f"The size of tensor a ({i1.shape[-1]}) must match the size of tensor b "
                                    f"({i2.shape[-1]}) at non-singleton dimension {want - 1}")
        raise ValueError(f"{fn}: input1 {list(i1.shape)} and input2 {list(i2.shape)} differ in their last "
                         "(feature) dimension; torch broadcasts it and then takes the dot product over the "
                         "broadcast vectors but each norm over its own entries, which is not a cosine: "
                         "lossref does not model it")
    f1, f2 = _norm_format(i1), _norm_format(i2)
    fmt = formats.get_format(result_type((f1.dtype, 1), (f2.dtype, 1))[0])
    if t.ndim == 1:  # one row or one label may serve every sample
        n = _rows(i1.shape[0], i2.shape[0], t.shape[0])
        i1 = np.broadcast_to(i1, (n, i1.shape[1]))
        i2 = np.broadcast_to(i2, (n, i2.shape[1]))
        t = np.broadcast_to(t, (n,))
    eps = (_held(EPSILON, f1), _held(EPSILON, f2))
    return Prepared(t, i1, fmt, {"x2": i2, "margin": _held(margin, fmt), "eps": eps},
                    stage3={"reduction": red})


# the second argument is input2 (the parameter x2); the labels have no gradient
cosine_embedding_loss.roles = ("y_pred", "x2")
cosine_embedding_loss.grad_params = {"input2": "x2"}


from .modules import _PairLoss  # noqa: E402  (after the function: modules imports functional, which imports this)


class CosineEmbeddingLoss(_PairLoss):
    """``torch.nn.CosineEmbeddingLoss``; the call takes ``(input1, input2, target)``."""

    _function = cosine_embedding_loss
