"""``torch.nn.functional.triplet_margin_loss``, ``triplet_margin_with_distance_loss`` and the
modules ``torch.nn.TripletMarginLoss``, ``torch.nn.TripletMarginWithDistanceLoss`` (PyTorch 2.13).

The value is the catalogue's ``triplet_margin`` (spec/losses/triplet_margin.md) with
``y_pred = anchor``, ``y_true = positive`` and the array parameter ``negative``; what is
torch's here is how the three tensors meet:

* The three must have the same number of dimensions; each distance broadcasts its own pair
  and reduces the last dimension (a 1-D triplet gives a 0-dim loss, a 0-dim one a
  distance over its single element). lossref broadcasts the three together, which is the
  same wherever every distance spans the common last dimension (else a ``ValueError``).
* Each distance has the dtype of its pair's difference (integers: float32), the loss the
  promotion of the distances' dtypes. ``eps`` is held in the dtype of the difference it is
  added to, ``margin`` in that of ``d(anchor, positive)``: both rounded to it.
* ``margin`` must be > 0 (torch's Python check); ``'mean'`` is over the samples.
* ``triplet_margin_with_distance_loss`` takes only its default distance,
  ``pairwise_distance`` (p = 2, eps = 1e-6): a user's callable cannot be evaluated exactly.

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> a = np.array([[0., 0.], [1., 2.]], np.float32)
>>> F.triplet_margin_loss(a, a + 1, np.ones_like(a), reduction="none", eps=0.0)
array([1.       , 1.4142135], dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np

from ... import formats
from ...dialect import check_bool, is_float
from ...losses import triplet_margin as _tm
from ...numerics import sum2
from ...reduction import torch_reduction
from .._base import (Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, result_format, result_type,
                     torch_function)

__all__ = ["triplet_margin_loss", "triplet_margin_with_distance_loss", "TripletMarginLoss",
           "TripletMarginWithDistanceLoss"]


def _distance_format(fn: str, u: np.ndarray, v: np.ndarray) -> formats.Format:
    """The dtype of ``u - v + eps``: the pair's promotion, float32 (the default dtype) for
    integers; two bool tensors cannot be subtracted."""
    if u.dtype == np.bool_ and v.dtype == np.bool_:
        raise TorchDtypeError(f"{fn}: subtraction of two bool tensors is not supported")
    dt = result_type((u.dtype, u.ndim), (v.dtype, v.ndim))[0]
    return formats.get_format(dt) if is_float(dt) else formats.FLOAT32


def _check_margin(fn: str, margin) -> float:
    if isinstance(margin, (bool, np.bool_)) or not isinstance(margin, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: margin must be a real number; got {margin!r}")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not math.isfinite(margin):
        raise ValueError(f"{fn}: margin={margin!r}: lossref takes a finite margin (torch's loss is then "
                         "NaN or inf for every sample)")
    return float(margin)


def _distance_grad(u, v, eps, p):
    """``(h, l, e, g)``: the distance ``||u - v + eps||_p`` as the catalogue's
    :func:`~lossref.losses.triplet_margin._distance` gives it and its gradient in u,
    ``sign(w) (|w| / d)^(p-1)`` for ``w = u - v + eps`` (p = 2: ``w / d``; p = 1: ``sign(w)``;
    p = inf: ``sign(w)`` shared evenly among the entries of largest magnitude), 0 for a zero
    distance and for zero entries (torch's norm backward)."""
    h, l, e = _tm._distance(u, v, eps, p)
    hi, lo = _tm._difference(u, v, eps)
    w = hi + lo
    mag = np.abs(w)
    top = np.max(mag, axis=-1, keepdims=True, initial=0.0)
    if p == math.inf:
        hit = (mag == top) & (top > 0)
        g = np.sign(w) * hit / np.maximum(hit.sum(-1, keepdims=True), 1)
    elif p == 1:
        g = np.sign(w)
    else:
        d = np.ldexp(h + l, e)[..., None]
        g = w / d if p == 2 else np.sign(w) * np.power(mag / d, p - 1)
        g = np.where((w == 0) | (d == 0), 0.0, g)
    return h, l, e, g


def _triplet_vjp(y_true, y_pred, cot, negative, margin=1.0, p=2, eps=1e-6, swap=False) -> dict:
    """torch's gradient of ``max(0, margin + d(a, b) - d(a, n))`` (anchor a = input,
    positive b = target, negative n): active where the inner value is ``>= 0``
    (``clamp_min`` passes the gradient at its bound); with `swap`, ``d(a, n)`` is
    ``min(d(a, n), d(b, n))`` and a tie shares the gradient 1/2 each (``torch.min`` and
    ``torch.minimum``). The inner value is summed from the distances' double-double parts,
    so its sign at a tie is exact where the catalogue's value is."""
    a, b = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    n = np.broadcast_to(np.asarray(negative, np.float64), a.shape)
    e_ab, e_an, e_bn = _tm._eps3(eps)
    hp, lp, ep, g_ab = _distance_grad(a, b, e_ab, p)
    hn, ln, en, g_an = _distance_grad(a, n, e_an, p)
    alpha = np.ones(hp.shape)
    if swap:
        hs, ls, es, g_bn = _distance_grad(b, n, e_bn, p)
        top = np.maximum(es, en)
        vs, vn = np.ldexp(hs, es - top), np.ldexp(hn, en - top)
        ws, wn = np.ldexp(ls, es - top), np.ldexp(ln, en - top)
        take = (vs < vn) | ((vs == vn) & (ws < wn))
        tie = (vs == vn) & (ws == wn)
        alpha = np.where(tie, 0.5, np.where(take, 0.0, 1.0))
        hn, ln, en = np.where(take, hs, hn), np.where(take, ls, ln), np.where(take, es, en)
    inner = sum2(np.stack([np.full(hp.shape, float(margin)), np.ldexp(hp, ep), np.ldexp(lp, ep),
                           -np.ldexp(hn, en), -np.ldexp(ln, en)], axis=-1))
    c = np.where(np.isnan(inner), np.nan, np.where(inner >= 0, cot, 0.0))[..., None]
    al = alpha[..., None]
    ga = g_ab - al * g_an
    gb = -g_ab
    gn = al * g_an
    if swap:
        gb = gb - (1.0 - al) * g_bn
        gn = gn + (1.0 - al) * g_bn
    return {"y_pred": c * ga, "y_true": c * gb, "negative": c * gn}


def _prepare(fn: str, anchor, positive, negative, margin, p, eps, swap, red: str) -> Prepared:
    """Shared by both functions: checks, dtypes, broadcasting, the scalars as torch holds them."""
    m = _check_margin(fn, margin)
    swap = check_bool(fn, "swap", swap)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: p must be a real number; got {p!r}")
    if _tm.check_p(p):
        raise ValueError(f"{fn}: p={p!r}: lossref models p > 0 and p = inf (torch's p = 0 counts the "
                         "non-zero differences and p < 0 is no norm)")
    if not (isinstance(eps, (int, float, np.integer, np.floating)) and math.isfinite(eps)) \
            or isinstance(eps, (bool, np.bool_)):
        raise ValueError(f"{fn}: eps={eps!r}: lossref takes a finite eps (an infinite one makes every "
                         "distance inf and the loss NaN)")
    a, b, n = (as_tensor(v, k) for v, k in ((anchor, "anchor"), (positive, "positive"), (negative, "negative")))
    if not a.ndim == b.ndim == n.ndim:
        raise TorchRuntimeError("The anchor, positive, and negative tensors are expected to have the same "
                                f"number of dimensions, but got: anchor {a.ndim}D, positive {b.ndim}D, and "
                                f"negative {n.ndim}D inputs")
    pairs = [(a, b), (a, n)] + ([(b, n)] if swap else [])
    fmts = [_distance_format(fn, u, v) for u, v in pairs]
    fmt = result_format(fn, *((f.dtype, 1) for f in fmts))
    try:
        shapes = [np.broadcast_shapes(u.shape, v.shape) for u, v in pairs]
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise TorchRuntimeError(f"{fn}: the sizes of anchor {a.shape}, positive {b.shape} and negative "
                                f"{n.shape} must match at every non-singleton dimension") from None
    if any(s[-1:] != shape[-1:] for s in shapes):
        raise ValueError(f"{fn}: lossref broadcasts anchor {a.shape}, positive {b.shape} and negative "
                         f"{n.shape} together; torch's distances would here span different last "
                         "dimensions, which the catalogue loss does not express")
    if not shape:  # 0-dim tensors: a distance over their one element
        shape = (1,)
    a, b, n = (np.broadcast_to(v, shape) for v in (a, b, n))
    eps3 = tuple(float(formats.as_format(np.float64(eps), f)) for f in fmts)
    params = {"negative": n, "margin": float(formats.as_format(np.float64(m), fmts[0])), "p": p,
              "eps": eps3 + (eps3[1],) * (3 - len(eps3)), "swap": swap}
    return Prepared(b, a, fmt, params, stage3={"reduction": red})


@torch_function("triplet_margin", _tm.reference, _tm.oracle, vjp=_triplet_vjp)
def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-06,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """Per triplet ``max(0, margin + d(a, p) - d(a, n))``, ``d(u, v) = ||u - v + eps||_p`` over
    the last dimension, ``d(a, n)`` replaced by ``min(d(a, n), d(p, n))`` when `swap`."""
    fn = "triplet_margin_loss"
    red = torch_reduction(reduction, size_average, reduce)
    return _prepare(fn, anchor, positive, negative, margin, p, eps, swap, red)


@torch_function("triplet_margin", _tm.reference, _tm.oracle, vjp=_triplet_vjp)
def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean"):
    """:func:`triplet_margin_loss` with torch's default distance, ``pairwise_distance``
    (p = 2, eps = 1e-6); `distance_function` must be None."""
    fn = "triplet_margin_with_distance_loss"
    red = torch_reduction(reduction, aliases=False)
    _check_margin(fn, margin)
    _no_user_distance(fn, distance_function)
    return _prepare(fn, anchor, positive, negative, margin, 2.0, 1e-6, swap, red)


def _no_user_distance(fn: str, distance_function) -> None:
    if distance_function is not None:
        raise TypeError(f"{fn}: distance_function={distance_function!r}: lossref cannot evaluate a user's "
                        "distance exactly; pass None (pairwise_distance, p = 2, eps = 1e-6) or use "
                        "triplet_margin_loss with its p and eps")


# anchor and positive are the roles (input, target); the negative is a parameter
triplet_margin_loss.grad_params = {"negative": "negative"}
triplet_margin_with_distance_loss.grad_params = {"negative": "negative"}


from .modules import _Loss  # noqa: E402  (after the functions: modules imports functional, which imports this)


class TripletMarginLoss(_Loss):
    """``torch.nn.TripletMarginLoss``; the call takes ``(anchor, positive, negative)``."""

    _function = triplet_margin_loss
    _settings = ("margin", "p", "eps", "swap")

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-06, swap: bool = False,
                 size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative) -> np.ndarray:
        """The loss of the triplets with this module's settings."""
        return triplet_margin_loss(anchor, positive, negative, **self._keywords())

    def exact(self, anchor, positive, negative):
        """The exact twin of :meth:`forward`."""
        return triplet_margin_loss.exact(anchor, positive, negative, **self._keywords())


class TripletMarginWithDistanceLoss(_Loss):
    """``torch.nn.TripletMarginWithDistanceLoss`` with its default distance (keyword-only
    settings; a user's `distance_function` is refused)."""

    _function = triplet_margin_with_distance_loss
    _settings = ("margin", "swap")

    def __init__(self, *, distance_function=None, margin: float = 1.0, swap: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if margin <= 0:
            raise ValueError("TripletMarginWithDistanceLoss: expected margin to be greater than 0, got "
                             f"{margin} instead")
        _no_user_distance("TripletMarginWithDistanceLoss", distance_function)
        self.distance_function, self.margin, self.swap = None, margin, swap

    def forward(self, anchor, positive, negative) -> np.ndarray:
        """The loss of the triplets with this module's settings."""
        return triplet_margin_with_distance_loss(anchor, positive, negative, **self._keywords())

    def exact(self, anchor, positive, negative):
        """The exact twin of :meth:`forward`."""
        return triplet_margin_with_distance_loss.exact(anchor, positive, negative, **self._keywords())
