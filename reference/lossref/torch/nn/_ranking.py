"""``torch.nn.functional.margin_ranking_loss`` and ``torch.nn.MarginRankingLoss`` (PyTorch 2.13).

The value is the catalogue's ``margin_ranking`` (spec/losses/margin_ranking.md) elementwise,
``max(0, -target (input1 - input2) + margin)``, with ``input1`` as its ``y_pred``, ``target``
as its ``y_true`` and ``input2`` as its array parameter ``x2``. What is torch's here:

* the three tensors must have the same number of dimensions (checked before broadcasting,
  after the reduction), then broadcast together; ``'mean'`` runs over every element;
* the result dtype is the promotion of the three tensors; integer tensors only give
  float32 (torch's default dtype), since `margin` is a Python float operand;
* `margin` is a Python number (a 0-dim array too, as a 0-dim tensor), rounded to the
  result's dtype as torch holds it in the tensor op; inf and NaN are accepted;
* a bool target cannot be negated and bool inputs cannot be subtracted (``RuntimeError``).

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> x1, x2 = np.array([0.5, 2.0, 1.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)
>>> F.margin_ranking_loss(x1, x2, np.array([1.0, 1.0, -1.0], np.float32), margin=0.1, reduction="none")
array([0.6, 0. , 0.1], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ... import formats
from ...losses import margin_ranking as _mr
from ...numerics import two_sum
from ...registry import is_real
from ...reduction import torch_reduction
from .._base import Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, is_float, result_type, torch_function
from ._classification import _rounded

__all__ = ["margin_ranking_loss", "MarginRankingLoss"]


def _margin(fn: str, margin) -> float:
    """`margin` as torch's argument parser takes a ``float``: a Python or NumPy real number
    (bools included) or a 0-dim tensor; anything else is a ``TypeError``."""
    if isinstance(margin, np.ndarray) and margin.ndim == 0 and margin.dtype.kind in "biuf":
        margin = margin.item()
    if not (is_real(margin) or isinstance(margin, (bool, np.bool_))):
        raise TypeError(f"{fn}(): argument 'margin' (position 4) must be float, not {type(margin).__name__}")
    return float(margin)  # a Python int past float64's range: OverflowError, as torch


def _margin_ranking_vjp(y_true, y_pred, cot, x2=0.0, margin=0.0) -> dict:
    """torch's gradient of ``max(0, z)``, ``z = margin - y (x1 - x2)``, active where
    ``z >= 0`` (``clamp_min`` passes the gradient at its bound): ``-y`` to input1, ``y`` to
    input2, ``-(x1 - x2)`` to the target. The sign of z is that of the catalogue's
    once-rounded z (:func:`lossref.losses.margin_ranking._margin_minus` on the exact
    difference)."""
    y, x1, x2 = np.broadcast_arrays(y_true, y_pred, np.asarray(x2, np.float64))
    m = np.broadcast_to(np.asarray(margin, np.float64), x1.shape)
    d, e = two_sum(x1, -x2)
    plain = m - y * d
    z = np.where(np.isfinite(plain) & np.isfinite(e), _mr._margin_minus(m, y, d, e), plain)
    on = np.where(np.isnan(z), np.nan, np.where(z >= 0, cot, 0.0))
    return {"y_pred": -(on * y), "x2": on * y, "y_true": -(on * d)}


@torch_function("margin_ranking", _mr.reference, _mr.oracle, elementwise=True, vjp=_margin_ranking_vjp)
def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """``max(0, -target (input1 - input2) + margin)`` elementwise; `margin` rounded to the
    result's dtype; ``'mean'`` over every element."""
    fn = "margin_ranking_loss"
    red = torch_reduction(reduction, size_average, reduce)
    i1, i2, t = as_tensor(input1, "input1"), as_tensor(input2, "input2"), as_tensor(target, "target")
    if not i1.ndim == i2.ndim == t.ndim:
        raise TorchRuntimeError(f"{fn}: all input tensors should have the same number of dimensions; got "
                                f"input1 {i1.shape}, input2 {i2.shape}, target {t.shape}")
    m = _margin(fn, margin)
    # torch's order of operations: input1 - input2 first, then -target
    if i1.dtype == np.bool_ or i2.dtype == np.bool_:
        raise TorchDtypeError(f"{fn}: subtraction (input1 - input2) with a bool tensor is not supported")
    if t.dtype == np.bool_:
        raise TorchDtypeError(f"{fn}: negation (-target) of a bool tensor is not supported")
    dt = result_type((i1.dtype, i1.ndim), (i2.dtype, i2.ndim), (t.dtype, t.ndim))[0]
    fmt = formats.get_format(dt) if is_float(dt) else formats.FLOAT32  # + margin: default dtype
    try:
        i1b, i2b, tb = np.broadcast_arrays(i1, i2, t)
    except ValueError:
        raise TorchRuntimeError(f"{fn}: the sizes of input1 {i1.shape}, input2 {i2.shape} and target "
                                f"{t.shape} must match at every non-singleton dimension") from None
    # a 0-dim array, so that its exponent enters the oracle's first precision
    return Prepared(tb, i1b, fmt, {"x2": i2b, "margin": np.asarray(_rounded(m, fmt))},
                    stage3={"reduction": red})


# the second argument is input2 (the parameter x2), the target comes third
margin_ranking_loss.roles = ("y_pred", "x2")
margin_ranking_loss.grad_params = {"input2": "x2", "target": "y_true"}


from .modules import _PairLoss  # noqa: E402  (after the function: modules imports functional, which imports this)


class MarginRankingLoss(_PairLoss):
    """``torch.nn.MarginRankingLoss``; the call takes ``(input1, input2, target)``."""

    _function = margin_ranking_loss
