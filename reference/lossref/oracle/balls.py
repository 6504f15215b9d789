"""Deciding roundings from Arb balls, vectorised.

A ball ``[mid ± rad]`` from the Arb backend contains the exact value. Its rounding is
decided when every number in the ball rounds to the same value of the target format.
The test runs in NumPy float64 on three numbers per element taken from the ball:

* ``m = float(v)`` and ``s = float(v - m)``: the midpoint as an unevaluated sum. Arb's
  conversion to float is faithful (error below one ulp of the result), and ``v - m`` is a
  ball that contains ``x - m`` for every ``x`` in ``v``, so ``x = m + s + e`` with
  ``|e| <= rad(v - m) + ulp(s)``;
* ``r = float(rad(v - m))``, at most one ulp below that radius.

So ``x`` lies within ``E = r + ulp(r) + ulp(s)`` of ``m + s``. A candidate ``c`` (``m + s``
rounded to the format) is accepted when ``|m + s - c| + E`` is less than half the gap
from ``c`` to each neighbour: then the whole ball rounds to ``c``. ``m - c`` is exact
(Sterbenz: ``c`` is within an ulp of the format of ``m``, or zero), the one addition
``(m - c) + s`` is covered by an ulp of its result, and the comparisons keep a relative
margin of 2**-50 for the roundings of the sums: every float64 operation used is an
IEEE-correct ``+``, ``-`` or ``*`` (no libm). Whatever the test cannot accept (a
candidate at ±inf or at the largest finite value, float64 results below 2**-1000, NaN
balls) stays undecided, so it is never wrong, only slower.
"""

from __future__ import annotations

import math

import flint
import mpmath
import numpy as np

from ..formats import Format, round_array, round_mpf

__all__ = ["decide_round", "decide_decimal", "endpoints"]

_MARGIN = 1.0 - 2.0 ** -50
_NAN3 = (math.nan, math.nan, math.nan)


def _probe(v):
    try:
        if not v.is_finite():
            return _NAN3
        m = float(v)
        if not math.isfinite(m):
            return _NAN3
        w = v - m
        return m, float(w), float(w.rad())
    except (OverflowError, TypeError, ValueError):
        return _NAN3


_probe_u = np.frompyfunc(_probe, 1, 3)


def _gaps(c: np.ndarray, f: Format):
    """Gaps from ``|c|`` to the next value of `f` up and down in magnitude (float64,
    exact). The gap up from the largest finite value is the gap of its binade."""
    a = np.abs(c)
    nz = a > 0
    _, e = np.frexp(np.where(nz, a, 1.0))
    q = np.maximum(e - 1, f.emin) - (f.precision - 1)
    up = np.ldexp(1.0, q)
    # below a power of two (not subnormal) the gap halves
    pow2 = nz & (np.ldexp(1.0, e - 1) == a) & (e - 1 > f.emin)
    down = np.where(pow2, up / 2, up)
    z = f.min_subnormal
    return np.where(nz, up, z), np.where(nz, down, z)


def decide_round(values: np.ndarray, f: Format):
    """Rounded values (float64) and the mask of elements whose whole ball rounds to them
    in `f` (nearest-even)."""
    flat = np.asarray(values, dtype=object).ravel()
    if flat.size == 0:
        return np.empty(0), np.zeros(0, bool)
    m, s, r = (np.asarray(a, dtype=np.float64) for a in _probe_u(flat))
    with np.errstate(all="ignore"):
        E = (r + np.spacing(np.abs(r)) + np.spacing(np.abs(s))) / _MARGIN
        c = round_array(m + s, f)
        d = (m - c) + s
        E = (E + np.spacing(np.abs(d))) / _MARGIN
        up, down = _gaps(c, f)
        sign = np.where(c < 0, -1.0, 1.0)
        dm = d * sign  # signed distance away from zero
        ok = (np.isfinite(c) & np.isfinite(E) & (np.abs(c) < f.max)
              & ((dm + E) < (up / 2) * _MARGIN))
        # toward zero: for c = 0 the gap is the same on both sides
        ok &= np.where(c == 0, (np.abs(d) + E) < (up / 2) * _MARGIN, (E - dm) < (down / 2) * _MARGIN)
        if f.precision >= 53:  # float64 results near the subnormal range: left to the exact test
            ok &= np.abs(c) >= 2.0 ** -1000
        else:  # a ball wholly past the overflow threshold (max + half its ulp) rounds to inf
            thr = math.ldexp(2.0 - math.ldexp(1.0, -f.precision), f.emax)  # exact in float64
            over = np.isfinite(m) & ((np.abs(m + s) - E - np.spacing(np.abs(m + s))) > thr / _MARGIN)
            c = np.where(over, np.copysign(np.inf, m + s), c)
            ok |= over
    # a zero candidate carries the sign of the exact value (an underflowing negative value
    # rounds to -0, an exact zero to +0, as on the mpmath path): the floats above cannot
    # tell it once the ball underflows float64, so Arb says where the ball lies
    for i in np.flatnonzero(ok & (c == 0)):
        v = flat[i]
        if v.is_zero():
            c[i] = 0.0
        elif v > 0:
            c[i] = 0.0
        elif v < 0:
            c[i] = -0.0
        else:
            ok[i] = False
    # an exact ball (radius 0: a sum of exact inputs, a midpoint) is rounded exactly: the
    # test above cannot accept a value that lies on a rounding boundary
    for i in np.flatnonzero(~ok & (r == 0)):
        v = flat[i]
        if v.is_exact():
            c[i], ok[i] = round_mpf(_exact_mpf(v.mid()), f), True
    return c, ok


def _exact_mpf(e) -> mpmath.mpf:
    """An exact ball's value as an mpmath number, without rounding."""
    man, exp = (int(t) for t in e.man_exp())
    with mpmath.workprec(max(64, man.bit_length() + 2)):
        return mpmath.mpf((man, exp)) if man else mpmath.mpf(0)


def endpoints(v):
    """The two ends of a ball as mpmath numbers (None for a NaN or infinite ball), each
    rounded outward at twice the precision of the midpoint (so it still encloses the ball
    and is narrow enough to decide a decimal rounding)."""
    if not v.is_finite():
        return None
    old = flint.ctx.prec
    flint.ctx.prec = max(128, 2 * int(v.mid().bits()) + 64)
    try:
        return [_exact_mpf(e.mid()) for e in (v.lower(), v.upper())]
    finally:
        flint.ctx.prec = old


def decide_decimal(values: np.ndarray, digits: int, to_decimal):
    """Decimal strings (``to_decimal(mpf, digits)``) and the mask of balls whose two ends
    give the same string: correct rounding to `digits` significant digits is monotone,
    so the whole ball gives it."""
    flat = np.asarray(values, dtype=object).ravel()
    out = np.empty(flat.size, dtype=object)
    ok = np.zeros(flat.size, dtype=bool)
    for i, v in enumerate(flat):
        ends = endpoints(v)
        if ends is None:
            continue
        a, b = to_decimal(ends[0], digits), to_decimal(ends[1], digits)
        if a == b:
            out[i], ok[i] = a, True
    return out, ok
