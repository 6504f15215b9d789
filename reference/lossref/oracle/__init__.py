"""The exact oracle: binary inputs taken exactly, a proven fast path on balls, Ziv's test on mpmath.

A loss's oracle is a formula on object arrays written with the backend-neutral op set
(:mod:`.ops`). :class:`Exact` wraps such a computation without running it;
``round``/``decimal`` decide every element:

* on Arb balls (python-flint) when installed: one evaluation encloses each exact value
  rigorously; an element is decided when its whole ball rounds to one value
  (:mod:`.balls`); only the undecided elements are evaluated again, at twice the
  precision;
* on mpmath (the dependency-light path, and the one that decides what balls leave
  open): round every element at a working precision, re-run at twice the precision and
  stop when both roundings agree (Ziv).

The starting precision grows with the inputs' exponent range (see
:func:`start_precision`), so cancellation between terms of very different magnitude is
resolved before the first comparison.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Optional

import mpmath
import numpy as np

from ..formats import FormatLike, as_mpf, get_format, round_mpf
from . import balls, ops

__all__ = ["Exact", "OracleError", "to_exact", "start_precision", "MAX_PRECISION", "BACKEND",
           "BALL_LEVELS", "use_balls", "backend_problem"]

#: The Ziv loop gives up (``OracleError``) rather than go past this many bits.
MAX_PRECISION = 1 << 15

#: ``"auto"`` (balls when python-flint is installed), ``"arb"`` or ``"mpmath"``; the
#: environment variable ``LOSSREF_ORACLE`` sets it at import.
BACKEND = os.environ.get("LOSSREF_ORACLE", "auto")

#: How many times the ball path doubles the precision of undecided elements before it
#: hands them to the mpmath path.
BALL_LEVELS = 6

#: First precision of the ball path; None: the case's own start precision. Tests set it
#: low, where many comparisons are undecided, to check that no branch is taken wrongly.
BALL_START: Optional[int] = None


def backend_problem() -> Optional[str]:
    """What is wrong with :data:`BACKEND` (set from ``LOSSREF_ORACLE``), or None."""
    if BACKEND not in ("auto", "arb", "mpmath"):
        return f"LOSSREF_ORACLE={BACKEND!r}: expected auto, arb or mpmath"
    if BACKEND == "arb" and not ops.has_arb():
        return "LOSSREF_ORACLE=arb needs python-flint (pip install python-flint)"
    return None


def use_balls() -> bool:
    """Whether roundings are decided on Arb balls first (:data:`BACKEND`).

    Raises
    ------
    ValueError
        For a :data:`BACKEND` that is not auto, arb or mpmath, or arb without python-flint.
    """
    problem = backend_problem()
    if problem:
        raise ValueError(problem)
    return BACKEND != "mpmath" and ops.has_arb()



class OracleError(ArithmeticError):
    """The oracle could not decide a rounding within :data:`MAX_PRECISION` bits."""


def to_exact(x: np.ndarray) -> np.ndarray:
    """Object array holding the exact value of every element of a binary float array, as
    numbers of the backend in use (:func:`ops.using`; mpmath outside one).

    Every supported format is a subset of float64, so the float64 value is exact and
    ``mpmath.mpf`` of it (at 64 bits or more) is exact too, as is a ball of radius 0.
    Signed zeros become 0.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"cannot take exact values of dtype {arr.dtype}")
    return ops.lift(arr)


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
        ``fn()`` evaluated inside :func:`lossref.oracle.ops.using` returns an object array
        of the backend's numbers (or one number); with ``balls=False`` it may use mpmath
        itself and runs at ``mpmath.mp.prec``. Errors must shrink as the precision grows.
    start_prec : int
        First working precision.
    dtype : format, optional
        Format of the reference result this value is the twin of; the default target
        of :meth:`round`.
    label : str
        Names the case in error messages.
    rows : callable, optional
        ``rows(index)`` returns an ``fn`` for the rows `index` (an integer array) of the
        result along its first axis: what lets the ball path re-evaluate only the
        elements it has not decided. Without it, a refinement re-evaluates everything.
    balls : bool
        Whether ``fn`` is written with the backend-neutral op set and may run on balls
        (every oracle of lossref is, and passes True); False (the default) keeps a
        function written with mpmath itself on the mpmath path.

    Notes
    -----
    With python-flint installed (and :data:`BACKEND` not ``"mpmath"``) a rounding is
    decided on Arb balls first: one evaluation at `start_prec` gives every element a
    rigorous enclosure; the elements whose enclosure rounds to one value are done; the
    rest are re-evaluated at twice the precision, up to :data:`BALL_LEVELS` times; what
    is still open (an infinity, a pole, a value on a rounding boundary) is decided by the
    mpmath path, Ziv's test from `start_prec`. See ``spec/accuracy.md``.
    """

    def __init__(
        self,
        fn: Callable[[], object],
        *,
        start_prec: int = 64,
        dtype: Optional[FormatLike] = None,
        label: str = "",
        rows: Optional[Callable[[np.ndarray], Callable[[], object]]] = None,
        balls: bool = False,
    ) -> None:
        self._fn = fn
        self.start_prec = int(start_prec)
        self.dtype = None if dtype is None else get_format(dtype)
        self.label = label
        self._rows = rows
        self._balls = balls
        self._cache: dict = {}
        #: the Ziv loop's cap for this value (:data:`MAX_PRECISION` unless raised, as for
        #: gradients, whose chain rule can cancel far more than the value's formula)
        self.max_prec = MAX_PRECISION
        #: precision at which the last :meth:`round` or :meth:`decimal` was decided
        self.final_prec: Optional[int] = None
        #: how the last :meth:`round` or :meth:`decimal` went: elements decided on balls at
        #: each precision and by the mpmath path
        self.stats: dict = {}

    # -- evaluation -----------------------------------------------------------------------
    def _eval(self, backend: str, prec: int) -> np.ndarray:
        key = (backend, prec)
        if key not in self._cache:
            with ops.using(backend, prec):  # an undecided branch (ops.Undecided) propagates
                self._cache[key] = _checked(_as_object(self._fn()), backend, self.label)
        return self._cache[key]

    def values(self, prec: int) -> np.ndarray:
        """The object array of mpmath numbers computed at working precision `prec` (cached)."""
        return self._eval("mpmath", prec)

    @property
    def shape(self) -> tuple:
        """Shape of the result."""
        return self._eval(self._backend(), self.start_prec).shape

    def map(self, fn: Callable[[np.ndarray], object], *, dtype: Optional[FormatLike] = None,
            label: Optional[str] = None) -> "Exact":
        """A new :class:`Exact` for ``fn(values)``, evaluated on the same backend and
        precision as its caller."""
        return Exact(
            lambda: fn(self._eval(ops.backend(), ops.precision())),
            start_prec=self.start_prec,
            dtype=self.dtype if dtype is None else dtype,
            label=self.label if label is None else label,
            balls=self._balls,
        )

    def _backend(self) -> str:
        return "arb" if self._balls and use_balls() else "mpmath"

    def _ziv(self, key: Callable[[object], object], what: str) -> np.ndarray:
        key_v = np.frompyfunc(key, 1, 1)
        p = self.start_prec
        prev = key_v(self.values(p))
        while True:
            q = 2 * p
            cur = key_v(self.values(q))
            diff = _differ(prev, cur)
            if not diff.any():
                self.final_prec = max(q, self.final_prec or 0)
                return np.asarray(cur, dtype=object)
            if 2 * q > self.max_prec:
                bad = np.argwhere(diff).tolist()
                raise OracleError(
                    f"{self.label or 'case'}: {what} not decided at {q} bits "
                    f"(elements {bad[:5]}); raise lossref.oracle.MAX_PRECISION to go on"
                )
            p, prev = q, cur

    def _subset(self, index: np.ndarray) -> "Exact":
        sub = Exact(self._rows(index), start_prec=self.start_prec, dtype=self.dtype,
                    label=self.label, balls=self._balls)
        sub.max_prec = self.max_prec
        return sub

    def _decide(self, ball_key, mp_key, what: str) -> np.ndarray:
        """Every element decided: on balls where they can, the rest by the mpmath path.
        ``ball_key(values) -> (results, decided mask)`` on flat arrays of balls."""
        self.final_prec = None
        if self._backend() != "arb":
            out = self._ziv(mp_key, what)
            self.stats = {"mpmath": int(out.size)}
            return out
        p0 = p = self.start_prec if BALL_START is None else BALL_START
        while True:
            try:
                vals = self._eval("arb", p)
                break
            except ops.Undecided:  # a branch of the formula needs more bits
                if 2 * p > min(self.max_prec, p0 << BALL_LEVELS):
                    out = self._ziv(mp_key, what)
                    self.stats = {"mpmath": int(out.size)}
                    return out
                p *= 2
        shape = vals.shape
        res, ok = ball_key(vals)
        out = np.empty(vals.size, dtype=object)
        out[ok] = res[ok]
        stats = {p: int(ok.sum())}
        pending = np.flatnonzero(~ok)
        inner = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        level = 0
        prev_nan = _nan_balls(vals.ravel()[pending])
        to_mp = []
        self.final_prec = p
        while pending.size and level < BALL_LEVELS and 2 * p <= self.max_prec:
            p, level = 2 * p, level + 1
            sub = self._pending_values(pending, shape, inner, p)
            res, ok = ball_key(sub)
            out[pending[ok]] = res[ok]
            stats[p] = int(ok.sum())
            self.final_prec = p
            # a NaN ball twice in a row is an infinity, a pole or NaN: mpmath's to decide
            nan = _nan_balls(sub)
            twice = ~ok & nan & prev_nan
            to_mp.append(pending[twice])
            keep = ~ok & ~twice
            pending, prev_nan = pending[keep], nan[keep]
        pending = np.sort(np.concatenate(to_mp + [pending]))
        if pending.size:
            stats["mpmath"] = int(pending.size)
            out[pending] = self._mp_pending(pending, shape, inner, mp_key, what)
        self.stats = stats
        return out.reshape(shape)

    def _pending_values(self, pending, shape, inner, prec) -> np.ndarray:
        """The balls of the `pending` flat elements at `prec`."""
        if self._rows is None or not shape:
            try:
                return self._eval("arb", prec).ravel()[pending]
            except ops.Undecided:
                return _undecided_like(np.empty(pending.size, dtype=object))
        rows, pos = np.unique(pending // inner, return_inverse=True)
        with ops.using("arb", prec):
            try:
                sub = _checked(_as_object(self._rows(rows)()), "arb", self.label).reshape(-1)
            except ops.Undecided:
                return _undecided_like(np.empty(pending.size, dtype=object))
        if sub.size != rows.size * inner:  # rows that do not map to the result's rows
            return self._eval("arb", prec).ravel()[pending]
        return sub[pos * inner + pending % inner]

    def _mp_pending(self, pending, shape, inner, mp_key, what) -> np.ndarray:
        if self._rows is None or not shape:
            full = self._ziv(mp_key, what).ravel()
            return full[pending]
        rows, pos = np.unique(pending // inner, return_inverse=True)
        sub = self._subset(rows)
        got = sub._ziv(mp_key, what).reshape(-1)
        self.final_prec = max(self.final_prec or 0, sub.final_prec or 0)
        return got[pos * inner + pending % inner]

    # -- results ----------------------------------------------------------------------------
    def round(self, fmt: Optional[FormatLike] = None) -> np.ndarray:
        """Correctly rounded (nearest-even) values in `fmt` (default: :attr:`dtype`)."""
        f = get_format(fmt if fmt is not None else (self.dtype or "float64"))

        def on_balls(vals):
            c, ok = balls.decide_round(vals, f)
            return np.asarray(c, dtype=object), ok

        out = self._decide(on_balls, lambda x: round_mpf(x, f), f"rounding to {f.name}")
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
        out = self._decide(lambda vals: balls.decide_decimal(vals, digits, _decimal),
                           lambda x: _decimal(x, digits), f"{digits}-digit decimal")
        return np.asarray(out.astype(str))

    def __repr__(self) -> str:
        d = self.decimal(17)
        return f"Exact({d.tolist()!r})"


def _checked(v: np.ndarray, backend: str, label: str) -> np.ndarray:
    """`v` if every element is a ball (Arb backend); a number of the other backend in a
    ball result means a constant was not made with ``ops.num``, so rigour is lost."""
    if backend == "arb":
        arb = ops.flint.arb
        if not all(type(e) is arb for e in v.ravel().tolist()):
            bad = next(type(e).__name__ for e in v.ravel().tolist() if type(e) is not arb)
            raise TypeError(f"{label or 'oracle'}: a ball evaluation returned a {bad}; an oracle "
                            "must make its constants with lossref.oracle.ops.num")
    return v


def _undecided_like(v) -> np.ndarray:
    """NaN balls of `v`'s shape, for an evaluation stopped by an undecided branch."""
    out = np.empty(np.shape(v), dtype=object)
    out.ravel()[:] = [ops.flint.arb("nan")] * out.size if out.size else []
    return out


def _nan_balls(v: np.ndarray) -> np.ndarray:
    return np.asarray([not b.is_finite() for b in np.ravel(v)], dtype=bool)


def _differ(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    # +0 and -0 differ: a value that cancels to an exact 0 at one precision and to a tiny
    # negative at the next has not decided the sign of its rounding
    same = np.frompyfunc(_same_key, 2, 1)(a, b)
    return ~np.asarray(same, dtype=bool)


def _same_key(u, v) -> bool:
    """Two roundings (floats) or decimals (strings) agree: NaN with NaN, and a zero only
    with a zero of its sign."""
    if isinstance(u, str) or isinstance(v, str):
        return u == v
    u, v = float(u), float(v)
    if math.isnan(u) or math.isnan(v):
        return math.isnan(u) and math.isnan(v)
    return u == v and (u != 0 or math.copysign(1.0, u) == math.copysign(1.0, v))


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
