"""Gaussian negative log-likelihood. Spec: spec/losses/gaussian_nll.md.

``(log v + (x - y)^2 / v) / 2`` with ``v = max(var, eps)``, ``x = y_pred`` (the mean of the
Gaussian), ``y = y_true`` (the sample) and ``var`` its variance, a *parameter*: a number or
an array that broadcasts to the inputs' shape without widening it. ``full`` adds the
constant ``log(2 pi) / 2``. Mean over the last axis. PyTorch:
``torch.nn.functional.gaussian_nll_loss`` (:mod:`lossref.torch.nn._gaussian`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..numerics import clip_share, two_product, two_sum
from ..oracle import ops as x
from ..registry import LossDef, Param, nonneg_float, param_array, real_array_error, register
from .binary_crossentropy import check_bool

#: ``log(2 pi) / 2`` as an unevaluated float64 sum ``HALF_LOG_2PI + HALF_LOG_2PI_LO`` (error
#: below 2^-106 of it): the reference's constant; the oracle's is exact
HALF_LOG_2PI = 0.9189385332046728
HALF_LOG_2PI_LO = -3.8782941580672414e-17


def half_square_over(x_: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(x - y)^2 / (2 v)`` in float64 with about one rounding, for every float64 input.

    ``x - y = d + l`` exactly (TwoSum; halves where the difference overflows), the
    significands are squared and divided and the exponents added apart, so neither
    ``(x - y)^2`` nor the quotient overflows or underflows before the final ``ldexp``.
    """
    d, lo = two_sum(x_, -y)
    k = 0
    over = np.isinf(d) & np.isfinite(x_) & np.isfinite(y)
    if np.any(over):  # |x - y| above the largest float64: its exact half is representable
        hd, hl = two_sum(0.5 * x_, -0.5 * y)
        d, lo, k = np.where(over, hd, d), np.where(over, hl, lo), np.where(over, 1, 0)
    d, v = np.broadcast_arrays(d, v)
    good = np.isfinite(d) & (d != 0) & np.isfinite(v) & (v > 0)
    md, ed = np.frexp(np.where(good, d, 1.0))
    ml = np.ldexp(np.where(good, lo, 0.0), -ed)
    hi, pl = two_product(md, md)  # md^2 exactly: md in [1/2, 1)
    s = hi + (pl + 2.0 * md * ml)  # (d + l)^2 / 2^(2 ed) to first order in l (l^2 is below u^2)
    mv, ev = np.frexp(np.where(good, v, 1.0))
    q = np.ldexp(s / mv, 2 * (ed + k) - ev - 1)
    # zero, infinite or NaN operands: IEEE's d^2 / (2 v) (0/0, inf/inf are NaN; d/inf is 0)
    naive = (np.ldexp(d * d, 2 * k) / v) * 0.5 if not np.all(good) else None
    return q if naive is None else np.where(good, q, naive)


def reference(y_true: np.ndarray, y_pred: np.ndarray, var=1.0, eps: float = 1e-6,
              full: bool = False) -> np.ndarray:
    """Elementwise value in float64: ``log(v) / 2 + (x - y)^2 / (2 v)`` (+ ``log(2 pi) / 2``),
    the terms added with their rounding errors carried (TwoSum), so the only errors are
    those of the terms (``np.log``, the quotient) and one final rounding."""
    x_, y = np.broadcast_arrays(np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64))
    v = np.maximum(param_array("gaussian_nll", "var", var, x_.shape), float(eps))  # NaN stays NaN, as torch's clamp
    a = 0.5 * np.log(v)
    b = half_square_over(x_, y, v)
    s, e = two_sum(a, b)
    if full:
        s, e2 = two_sum(s, HALF_LOG_2PI)
        e = e + (e2 + HALF_LOG_2PI_LO)
    out = s + e
    # an infinite or NaN term: TwoSum's error is NaN there, the plain sum is IEEE's value
    plain = ~np.isfinite(out)
    if np.any(plain):
        out = np.where(plain, (a + b) + (HALF_LOG_2PI if full else 0.0), out)
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray, var=1.0, eps: float = 1e-6,
           full: bool = False) -> np.ndarray:
    """The literal definition on exact values (`var` floats or exact numbers)."""
    e = y_pred - y_true
    v = x.clamp_min(x.lift(param_array("gaussian_nll", "var", var, e.shape)), x.num(eps))
    out = x.div(x.log(v) + x.div(e * e, v), 2)
    if full:
        out = out + x.div(x.log(x.num(2) * x.pi()), 2)
    return np.asarray(out, dtype=object)


# --- parameters -------------------------------------------------------------------------------------


def check_var(v) -> Optional[str]:
    """Check helper: a real number or an array of them, each >= 0 or +inf (no NaN)."""
    err = real_array_error(v)
    if err:
        return err
    arr = np.asarray(v, dtype=np.float64)
    if np.any(np.isnan(arr)):
        return "var holds NaN"
    if np.any(arr < 0):
        return "var has negative entries"
    return None


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, var=1.0, eps: float = 1e-6,
                   full: bool = False, clamp: str = "max") -> dict:
    """VJP of :func:`reference` with ``d = x - y``, ``v = max(var, eps)``:
    ``d/dx = d / v``, ``d/dy = -d / v``, ``d/dvar = (v - d^2) / (2 v^2) · dv/dvar``.

    ``v - d^2`` cancels where the residual matches the spread (``d^2 ≈ v``, the optimum of
    ``var``): ``d`` is carried exactly (TwoSum), squared exactly (TwoProduct) after both are
    scaled by powers of two to ``v ~ 1``. `clamp` picks ``dv/dvar``: ``"max"`` (the catalogue:
    1 above `eps`, 0 below, 1/2 at it, the tie of ``max``) or ``"straight"`` (1 everywhere:
    PyTorch clamps a copy of `var` outside autograd).
    """
    x_, y = np.broadcast_arrays(np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64))
    raw = np.broadcast_to(param_array("gaussian_nll", "var", var, x_.shape), x_.shape)
    v = np.maximum(raw, float(eps))
    d, dl = two_sum(x_, -y)
    over = np.isinf(d) & np.isfinite(x_) & np.isfinite(y)
    k0 = 0
    if np.any(over):  # |x - y| above the largest float64: work with its exact half
        hd, hl = two_sum(0.5 * x_, -0.5 * y)
        d, dl, k0 = np.where(over, hd, d), np.where(over, hl, dl), np.where(over, 1, 0)
    dl = np.where(np.isfinite(dl), dl, 0.0)
    gx = np.ldexp(d / v, k0) * cot
    # d/dvar: v = m 2^(2k), d = d' 2^(k - k0), so (v - d^2) / (2 v^2) = (m - d'^2) / (2 m^2) 2^(-2k)
    good = np.isfinite(d) & np.isfinite(v) & (v > 0)
    k = np.frexp(np.where(good, v, 1.0))[1] // 2
    m = np.ldexp(np.where(good, v, 1.0), -2 * k)
    ds, dls = np.ldexp(np.where(good, d, 0.0), k0 - k), np.ldexp(np.where(good, dl, 0.0), k0 - k)
    h, low = two_product(ds, ds)
    num = (m - h) - (low + 2.0 * ds * dls)
    scaled = np.ldexp(((num / m) * cot) / m, -2 * k - 1)
    # d'^2 overflowed (d^2 / v past float64's range; 1 / v is lost beside it), or an operand
    # is infinite, NaN or v = 0: IEEE's value of the formula
    plain = ~good | np.isinf(h)
    if np.any(plain):
        dv = np.ldexp(d / v, k0)
        scaled = np.where(plain, (0.5 * cot) * (1.0 / v - dv * dv), scaled)
    if clamp == "max":
        share = clip_share(raw, float(eps), None, 0.5)
    elif clamp == "straight":
        share = 1.0
    else:
        raise ValueError(f"gaussian_nll: clamp must be 'max' or 'straight', got {clamp!r}")
    return {"y_pred": gx, "y_true": -gx, "var": scaled * share}


LOSS = register(LossDef(
    name="gaussian_nll",
    summary="(log v + (x - y)^2 / v) / 2 with v = max(var, eps) (+ log(2 pi)/2 if full); "
            "mean over the last axis",
    stage2="mean",
    params={
        "var": Param(1.0, "number or array of numbers >= 0 (+inf allowed, NaN not) broadcasting to "
                          "the inputs' shape without widening it: the variance of each element", check_var),
        "eps": Param(1e-6, "finite number >= 0: the floor of var (v = max(var, eps))", nonneg_float),
        "full": Param(False, "bool: add the constant log(2 pi) / 2", check_bool),
    },
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
    arrays=("var",),
))
