"""The exact oracle: binary inputs taken exactly, mpmath evaluation, Ziv's rounding test.

A loss's oracle is a function of object arrays of ``mpmath.mpf`` (see :mod:`.ops`).
:class:`Exact` wraps such a computation without running it; ``round``/``decimal`` run
it at a working precision, round every element, re-run at twice the precision and
stop when both roundings agree (Ziv). The starting precision grows with the inputs'
exponent range (see :func:`start_precision`), so cancellation between terms of very
different magnitude is resolved before the first comparison.
"""

from __future__ import annotations

from typing import Callable, Optional

import mpmath
import numpy as np

from ..formats import FormatLike, as_mpf, get_format, round_mpf

__all__ = ["Exact", "OracleError", "to_exact", "start_precision", "MAX_PRECISION"]

#: The Ziv loop gives up (``OracleError``) rather than go past this many bits.
MAX_PRECISION = 1 << 15

_to_mpf = np.frompyfunc(mpmath.mpf, 1, 1)


class OracleError(ArithmeticError):
    """The oracle could not decide a rounding within :data:`MAX_PRECISION` bits."""


def to_exact(x: np.ndarray) -> np.ndarray:
    """Object array holding the exact value of every element of a binary float array.

    Every supported format is a subset of float64, so the float64 value is exact and
    ``mpmath.mpf`` of it (at 64 bits or more) is exact too. Signed zeros become 0.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"cannot take exact values of dtype {arr.dtype}")
    with mpmath.workprec(64), np.errstate(invalid="ignore"):
        out = _to_mpf(arr.astype(np.float64))
    return np.asarray(out, dtype=object).reshape(arr.shape)


def start_precision(*arrays: Optional[np.ndarray], base: int = 64, params=None) -> int:
    """First working precision for a case: `base` plus twice the largest |exponent|.

    Terms of magnitude ``2**-k`` next to terms of order one need about ``2k`` bits to
    survive squaring or a ``1 + x`` before a log, so the loop starts there; Ziv's test
    still decides when that is not enough. The numbers among `params` (a mapping:
    numbers, arrays and tuples of numbers; bools and others are skipped) count like the
    arrays: a margin of 1 beside a term of 2**-1074 needs the bits between them from the
    start, since two evaluations that both lose the small term agree with each other.
    """
    arrays = list(arrays) + [v for v in (params or {}).values() if _numeric(v)]
    widest = 0
    for a in arrays:
        if a is None:
            continue
        v = np.abs(np.asarray(a, dtype=np.float64).ravel())
        v = v[np.isfinite(v) & (v != 0)]
        if v.size:
            lo, hi = np.frexp(np.array([v.min(), v.max()]))[1]
            widest = max(widest, abs(int(lo)), abs(int(hi)))
    return base + 2 * widest


def _numeric(v) -> bool:
    """A number, or an array or tuple of numbers (not a bool): what a parameter's
    magnitude is read from."""
    if isinstance(v, (bool, np.bool_, str)) or v is None:
        return False
    if isinstance(v, (int, float, np.integer, np.floating)):
        return True
    if isinstance(v, (np.ndarray, tuple, list)):
        try:
            a = np.asarray(v)
        except (ValueError, TypeError):
            return False
        return a.dtype.kind in "iuf" or a.dtype.name == "bfloat16" or \
            (a.dtype == object and all(isinstance(x, (int, float, mpmath.mpf)) and not isinstance(x, bool)
                                       for x in a.ravel()))
    return isinstance(v, mpmath.mpf)


def _as_object(v) -> np.ndarray:
    return v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object)


class Exact:
    """An exactly defined array, rounded on request.

    Parameters
    ----------
    fn : callable
        ``fn()`` evaluated inside ``mpmath.workprec(prec)`` returns an object array of
        mpmath numbers (or one number); errors must shrink as ``prec`` grows.
    start_prec : int
        First working precision of the Ziv loop.
    dtype : format, optional
        Format of the reference result this value is the twin of; the default target
        of :meth:`round`.
    label : str
        Names the case in error messages.
    """

    def __init__(
        self,
        fn: Callable[[], object],
        *,
        start_prec: int = 64,
        dtype: Optional[FormatLike] = None,
        label: str = "",
    ) -> None:
        self._fn = fn
        self.start_prec = int(start_prec)
        self.dtype = None if dtype is None else get_format(dtype)
        self.label = label
        self._cache: dict = {}
        #: precision at which the last :meth:`round` or :meth:`decimal` was decided
        self.final_prec: Optional[int] = None

    # -- evaluation -----------------------------------------------------------------------
    def values(self, prec: int) -> np.ndarray:
        """The object array computed at working precision `prec` (cached)."""
        if prec not in self._cache:
            with mpmath.workprec(prec):
                self._cache[prec] = _as_object(self._fn())
        return self._cache[prec]

    @property
    def shape(self) -> tuple:
        """Shape of the result."""
        return self.values(self.start_prec).shape

    def map(self, fn: Callable[[np.ndarray], object], *, dtype: Optional[FormatLike] = None,
            label: Optional[str] = None) -> "Exact":
        """A new :class:`Exact` for ``fn(values)``, evaluated at the same precision."""
        return Exact(
            lambda: fn(self.values(mpmath.mp.prec)),
            start_prec=self.start_prec,
            dtype=self.dtype if dtype is None else dtype,
            label=self.label if label is None else label,
        )

    def _ziv(self, key: Callable[[object], object], what: str) -> np.ndarray:
        key_v = np.frompyfunc(key, 1, 1)
        p = self.start_prec
        prev = key_v(self.values(p))
        while True:
            q = 2 * p
            cur = key_v(self.values(q))
            diff = _differ(prev, cur)
            if not diff.any():
                self.final_prec = q
                return np.asarray(cur, dtype=object)
            if 2 * q > MAX_PRECISION:
                bad = np.argwhere(diff).tolist()
                raise OracleError(
                    f"{self.label or 'case'}: {what} not decided at {q} bits "
                    f"(elements {bad[:5]}); raise lossref.oracle.MAX_PRECISION to go on"
                )
            p, prev = q, cur

    # -- results ----------------------------------------------------------------------------
    def round(self, fmt: Optional[FormatLike] = None) -> np.ndarray:
        """Correctly rounded (nearest-even) values in `fmt` (default: :attr:`dtype`)."""
        f = get_format(fmt if fmt is not None else (self.dtype or "float64"))
        out = self._ziv(lambda x: round_mpf(x, f), f"rounding to {f.name}")
        return np.asarray(out.astype(np.float64), dtype=np.float64).astype(f.dtype)

    def decimal(self, digits: int = 40) -> np.ndarray:
        """Decimal strings of the exact values, correctly rounded to `digits` significant digits.

        Raises
        ------
        ValueError
            If `digits` is not a positive integer.
        """
        if isinstance(digits, (bool, np.bool_)) or not isinstance(digits, (int, np.integer)) \
                or digits < 1:
            raise ValueError(f"digits must be a positive integer; got {digits!r}")
        digits = int(digits)
        out = self._ziv(lambda x: _decimal(x, digits), f"{digits}-digit decimal")
        return np.asarray(out.astype(str))

    def __repr__(self) -> str:
        d = self.decimal(17)
        return f"Exact({d.tolist()!r})"


def _differ(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    same = np.frompyfunc(lambda u, v: u == v or (u != u and v != v), 2, 1)(a, b)
    return ~np.asarray(same, dtype=bool)


def _decimal(x, digits: int) -> str:
    """``d.ddd…e±N`` with exactly `digits` significant digits (``0``, ``nan``, ``±inf`` aside)."""
    if mpmath.isnan(x):
        return "nan"
    if mpmath.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    # to_str rounds the binary value correctly to `digits` decimal digits
    s = mpmath.libmp.to_str(as_mpf(x)._mpf_, digits, strip_zeros=False, min_fixed=1, max_fixed=0)
    mant, _, exp = s.partition("e")
    return f"{mant}e{int(exp or 0):+d}"
