"""``torch.nn.functional.gaussian_nll_loss`` and ``torch.nn.GaussianNLLLoss`` (PyTorch 2.13).

The value is the catalogue's ``gaussian_nll`` (spec/losses/gaussian_nll.md) elementwise,
``(log v + (input - target)^2 / v) / 2`` with ``v = max(var, eps)``; what is torch's here
is how `var` is read and checked, the dtype and ``'mean'`` over every element:

* `var` is a Python float (``isinstance(var, float)``, NumPy's float64 scalars included),
  taken as ``var * ones_like(input)``, or a tensor (an ndarray) of shape ``input.shape``,
  of ``input.shape[:-1]`` (unsqueezed to a trailing 1: for a (2, 2) input a var of shape
  (2,) is one variance **per row**), or of the input's ndim whose sizes at the dimensions
  that differ from the input's add up to 1 (one dimension of size 1). Anything else is
  ``ValueError("var is of incorrect size")``; an entry below 0 is
  ``ValueError("var has negative entry/entries")`` (NaN passes and gives NaN).
* `eps` clamps var from below as a scalar of var's dtype (``clamp_(min=eps)``), so it is
  rounded to that dtype first; the constant of ``full=True`` is exact here.
* The result dtype is that of torch's steps: ``(input - target)**2 / var`` then
  ``log(var) +`` that; a float var makes the float.

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> x = np.array([[0., 1.], [2., 4.]], np.float32)
>>> F.gaussian_nll_loss(x, np.zeros_like(x), np.array([1., 4.], np.float32), reduction="none")
array([[0.       , 0.5      ],
       [1.1931472, 2.6931472]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ... import formats
from ...dialect import check_bool
from ...losses import gaussian_nll as _g
from ...numerics import two_sum
from ...reduction import TORCH_REDUCTIONS
from .._base import (Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, broadcast, is_float,
                     result_format, result_type, torch_function)

__all__ = ["gaussian_nll_loss", "GaussianNLLLoss"]


def _var_tensor(fn: str, var, i: np.ndarray) -> np.ndarray:
    """torch's reading of `var`: the tensor it computes with (before the clamp)."""
    if isinstance(var, float):  # Python floats (and np.float64, a float subclass)
        if var < 0:
            raise ValueError("var has negative entry/entries")
        # var * ones_like(input): the input's dtype, or the default float32 for integer inputs
        dt = i.dtype if is_float(i.dtype) else formats.FLOAT32.dtype
        return np.full(i.shape, formats.as_format(np.float64(var), formats.get_format(dt)), dtype=dt)
    if not isinstance(var, np.ndarray):
        raise TypeError(f"{fn}: var must be a float or a tensor (NumPy array); got {type(var).__name__} "
                        "(torch.any() receives a bool and refuses it)")
    v = as_tensor(var, "var")
    with np.errstate(invalid="ignore"):
        if np.any(v < 0):
            raise ValueError("var has negative entry/entries")
    if v.shape != i.shape:
        if v.shape == i.shape[:-1]:
            v = v[..., None]  # torch.unsqueeze(var, -1): per row, not per feature
        elif not (v.ndim == i.ndim and sum(b for a, b in zip(i.shape, v.shape) if a != b) == 1):
            raise ValueError("var is of incorrect size")
    return v


def _gaussian_nll_vjp(y_true, y_pred, cot, var=1.0, eps=1e-6, full=False) -> dict:
    """torch's gradient: ``d/dinput = (x - y) / v``, ``d/dtarget`` its negative and
    ``d/dvar = (1/2 - (x - y)^2 / (2v)) / v`` at ``v = max(var, eps)``, passed to `var`
    unchanged also where it is clamped (torch clamps a copy of var under ``no_grad``, so the
    clamp is the identity to autograd); ``(x - y)^2 / (2v)`` with about one rounding
    (:func:`lossref.losses.gaussian_nll.half_square_over`)."""
    x, y = np.broadcast_arrays(y_pred, y_true)
    v = np.maximum(np.asarray(var, np.float64), float(eps))
    x, y, v = np.broadcast_arrays(x, y, v)
    d, lo = two_sum(x, -y)
    # lo = 0 adds nothing (also where v = 0 and lo / v would be 0 / 0)
    g = np.where(np.isfinite(lo) & (lo != 0), (d / v) + (lo / v), d / v)
    over = np.isinf(d) & np.isfinite(x) & np.isfinite(y)
    if np.any(over):  # x - y beyond the largest float64: its exact half, doubled after the quotient
        h, hl = two_sum(0.5 * x, -0.5 * y)
        g = np.where(over, 2.0 * ((h / v) + (hl / v)), g)
    dv = (0.5 - _g.half_square_over(x, y, v)) / v
    return {"y_pred": cot * g, "y_true": -(cot * g), "var": cot * dv}


@torch_function("gaussian_nll", _g.reference, _g.oracle, elementwise=True, vjp=_gaussian_nll_vjp)
def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-06, reduction: str = "mean"):
    """``(log v + (input - target)^2 / v) / 2``, ``v = max(var, eps)``, plus ``log(2π)/2``
    when `full`; `var` read as torch 2.13 reads it; ``'mean'`` over every element."""
    fn = "gaussian_nll_loss"
    i, t = as_tensor(input, "input"), as_tensor(target, "target")
    v = _var_tensor(fn, var, i)
    if not isinstance(reduction, str):
        raise TypeError(f"{fn}: reduction must be a string; got {reduction!r}")
    if reduction not in TORCH_REDUCTIONS:
        raise ValueError(reduction + " is not valid")
    if not is_float(v.dtype):  # var.clamp_(min=eps) cannot write a float into it
        raise TorchDtypeError(f"result type Float can't be cast to the desired output type {v.dtype} (var)")
    if i.dtype == np.bool_ and t.dtype == np.bool_:
        raise TorchDtypeError(f"{fn}: subtraction of two bool tensors is not supported")
    full = check_bool(fn, "full", full)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: eps must be a number; got {eps!r}")
    # the dtype of each step: d = input - target, d**2 / var, log(var) + that
    diff = result_type((i.dtype, i.ndim), (t.dtype, t.ndim))
    quot = result_type(diff, (v.dtype, v.ndim))
    fmt = result_format(fn, (v.dtype, v.ndim), quot)
    ib, tb = broadcast(fn, i, t)
    try:
        shape = np.broadcast_shapes(ib.shape, v.shape)
    except ValueError:
        raise TorchRuntimeError(f"{fn}: the size of var {v.shape} must match the size of input - target "
                                f"{ib.shape} at every non-singleton dimension") from None
    ib, tb = np.broadcast_to(ib, shape), np.broadcast_to(tb, shape)
    eps_v = float(formats.as_format(np.float64(eps), formats.get_format(v.dtype)))  # clamp_'s scalar
    return Prepared(tb, ib, fmt, {"var": v, "eps": eps_v, "full": full},
                    stage3={"reduction": reduction})


gaussian_nll_loss.grad_params = {"var": "var"}


from .modules import _Loss  # noqa: E402  (after the function: modules imports functional, which imports this)


class GaussianNLLLoss(_Loss):
    """``torch.nn.GaussianNLLLoss``: keyword-only settings; the call takes ``(input, target, var)``."""

    _function = gaussian_nll_loss
    _settings = ("full", "eps")

    def __init__(self, *, full: bool = False, eps: float = 1e-06, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var) -> np.ndarray:
        """The loss of `input` (the means) against `target` with variances `var`."""
        return gaussian_nll_loss(input, target, var, **self._keywords())

    def exact(self, input, target, var):
        """The exact twin of :meth:`forward`."""
        return gaussian_nll_loss.exact(input, target, var, **self._keywords())
