"""Elementwise mpmath functions on object arrays, with IEEE semantics for domain edges.

Oracles are written with these as literal formulas. mpmath would return complex numbers
for ``log(-1)`` and raise on ``1/0``; a loss's exact value follows IEEE instead (NaN
outside the domain, ±inf for a pole), so those edges are handled here once.
``+ - *`` and comparisons work on object arrays directly.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from ..formats import as_mpf

__all__ = [
    "NAN", "INF", "log", "log1p", "exp", "expm1", "sqrt", "cosh", "maximum", "minimum", "div",
    "fsum", "mean", "where", "isnan", "isfinite",
]

NAN = mpmath.mpf("nan")
INF = mpmath.mpf("inf")


def _elementwise(f):
    u = np.frompyfunc(f, 1, 1)

    def apply(x):
        return np.asarray(u(np.asarray(x, dtype=object)), dtype=object)

    # mpmath's own docstrings carry doctests of their own: keep only our first line
    apply.__doc__ = (f.__doc__ or "").strip().splitlines()[0] if f.__module__.startswith("lossref") \
        else f"Elementwise mpmath.{f.__name__} on object arrays."
    apply.__name__ = f.__name__
    return apply


def _log(x):
    """Natural log; NaN below 0, -inf at 0."""
    if mpmath.isnan(x) or x < 0:
        return NAN
    return mpmath.log(x)  # log(0) = -inf in mpmath


def _log1p(x):
    """log(1 + x); NaN below -1, -inf at -1."""
    if mpmath.isnan(x) or x < -1:
        return NAN
    return mpmath.log1p(x)


def _sqrt(x):
    """Square root; NaN below 0."""
    if mpmath.isnan(x) or x < 0:
        return NAN
    return mpmath.sqrt(x)


log = _elementwise(_log)
log1p = _elementwise(_log1p)
exp = _elementwise(mpmath.exp)
expm1 = _elementwise(mpmath.expm1)
sqrt = _elementwise(_sqrt)
cosh = _elementwise(mpmath.cosh)


# Results are always mpf: a Python float let through would make later arithmetic binary64.


def _max2(a, b):
    if mpmath.isnan(a) or mpmath.isnan(b):
        return NAN
    return as_mpf(a if a >= b else b)


def _min2(a, b):
    if mpmath.isnan(a) or mpmath.isnan(b):
        return NAN
    return as_mpf(a if a <= b else b)


def _div2(a, b):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    if b == 0:
        if a == 0 or mpmath.isnan(a):
            return NAN
        return INF if a > 0 else -INF  # mpmath has no -0, so x/0 takes the sign of x
    return a / b


_as_mpf_u = np.frompyfunc(as_mpf, 1, 1)
_max_u = np.frompyfunc(_max2, 2, 1)
_min_u = np.frompyfunc(_min2, 2, 1)
_div_u = np.frompyfunc(_div2, 2, 1)


def maximum(a, b) -> np.ndarray:
    """Elementwise maximum that propagates NaN (as ``np.maximum``)."""
    return np.asarray(_max_u(a, b), dtype=object)


def minimum(a, b) -> np.ndarray:
    """Elementwise minimum that propagates NaN (as ``np.minimum``)."""
    return np.asarray(_min_u(a, b), dtype=object)


def div(a, b) -> np.ndarray:
    """Elementwise ``a / b`` with IEEE results for a zero divisor."""
    return np.asarray(_div_u(a, b), dtype=object)


def where(cond, a, b) -> np.ndarray:
    """``np.where`` for object arrays (conditions may be object arrays of bools)."""
    out = np.asarray(np.where(np.asarray(cond, dtype=bool), a, b), dtype=object)
    return np.asarray(_as_mpf_u(out), dtype=object).reshape(out.shape)


_isnan_u = np.frompyfunc(mpmath.isnan, 1, 1)
_isfinite_u = np.frompyfunc(mpmath.isfinite, 1, 1)


def isnan(x) -> np.ndarray:
    """Boolean array: where the exact values are NaN."""
    return np.asarray(_isnan_u(np.asarray(x, dtype=object)), dtype=bool)


def isfinite(x) -> np.ndarray:
    """Boolean array: where the exact values are finite."""
    return np.asarray(_isfinite_u(np.asarray(x, dtype=object)), dtype=bool)


def fsum(x, axis=None) -> np.ndarray:
    """Sum along `axis` (all axes if None) with one rounding per result (``mpmath.fsum``)."""
    x = np.asarray(x, dtype=object)
    if axis is None:
        return np.asarray(mpmath.fsum(x.ravel().tolist()), dtype=object)
    x = np.moveaxis(x, axis, -1)
    rows = x.reshape(-1, x.shape[-1]) if x.size else np.empty((int(np.prod(x.shape[:-1])), 0), object)
    out = np.empty(rows.shape[0], dtype=object)
    for i, r in enumerate(rows):  # the oracle may loop: it is the slow, literal definition
        out[i] = mpmath.fsum(r.tolist())
    return out.reshape(x.shape[:-1])


def mean(x, axis=-1) -> np.ndarray:
    """Mean along `axis`; an empty axis gives NaN (as ``np.mean``)."""
    x = np.asarray(x, dtype=object)
    n = x.shape[axis]
    s = fsum(x, axis)
    return div(s, np.full(s.shape, n, dtype=object)) if n else np.full(s.shape, NAN, dtype=object)


# --- binary cross-entropy family: zero-weight products, IEEE power, sigmoid ----------------------

__all__ += ["xmul", "power", "sigmoid", "to_fraction", "from_fraction"]


def to_fraction(v) -> Fraction:
    """The exact rational value of a finite mpmath number (or float)."""
    sign, man, exp, _ = mpmath.mpf(v)._mpf_
    f = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -f if sign else f


def from_fraction(f: Fraction):
    """A rational as an mpmath number at the working precision (two roundings)."""
    return mpmath.mpf(f.numerator) / f.denominator


def _xmul2(w, v):
    if mpmath.isnan(w) or mpmath.isnan(v):
        return NAN
    if w == 0:
        return mpmath.mpf(0)  # 0 log 0 = 0: a zero weight wins over an infinite log
    return w * v


def _pow2(b, g):
    """``b ** g`` with the IEEE ``pow`` special cases, real results only."""
    b, g = mpmath.mpf(b), mpmath.mpf(g)
    if g == 0 or b == 1:
        return mpmath.mpf(1)
    if mpmath.isnan(b) or mpmath.isnan(g):
        return NAN
    if b < 0 and mpmath.isfinite(g) and not mpmath.isint(g):
        return NAN  # a negative base has no real non-integer power
    if b == 0:
        return mpmath.mpf(0) if g > 0 else INF  # mpmath has no -0: 0 ** -g is +inf
    return b ** g


_xmul_u = np.frompyfunc(_xmul2, 2, 1)
_pow_u = np.frompyfunc(_pow2, 2, 1)


def xmul(w, v) -> np.ndarray:
    """Elementwise ``w * v`` where ``w = 0`` gives 0 for every non-NaN ``v`` (``0 log 0 = 0``)."""
    return np.asarray(_xmul_u(w, v), dtype=object)


def power(b, g) -> np.ndarray:
    """Elementwise ``b ** g`` as IEEE ``pow``: ``x ** 0 = 1``, NaN for a negative base and a
    non-integer exponent, ``0 ** g`` is 0 or inf by the sign of g."""
    return np.asarray(_pow_u(b, g), dtype=object)


def _sigmoid(z):
    """``1 / (1 + exp(-z))``; exact limits 0 and 1 at -inf and +inf."""
    return 1 / (1 + mpmath.exp(-z))


sigmoid = _elementwise(_sigmoid)
