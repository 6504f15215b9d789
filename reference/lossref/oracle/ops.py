"""The oracle's op set: elementwise functions on object arrays, written once for two backends.

A loss's oracle is a literal formula in these ops (and ``+ - *`` on object arrays). The
same formula runs on either backend, chosen by :func:`using`:

* ``"mpmath"`` — elements are ``mpmath.mpf`` at ``mpmath.mp.prec``; IEEE semantics at the
  domain edges (NaN outside the domain, ±inf at a pole), since mpmath would give complex
  numbers for ``log(-1)`` and raise on ``1/0``. This is the dependency-light path and the
  one that decides whatever the balls leave open.
* ``"arb"`` — elements are ``flint.arb`` balls (Arb, through python-flint) at
  ``flint.ctx.prec``: every op returns a ball that provably contains the exact result.
  Arb has no infinities: a pole or a domain edge gives a NaN ball (``[nan +/- inf]``),
  which never decides, so such elements are left to the mpmath path.

Branches are the one place a ball formula can go wrong: a Python comparison of two
overlapping balls is ``False`` both ways, so ``a if a >= b else b`` may pick a wrong
branch. Oracles therefore branch only through :func:`where` on conditions from
:func:`lt`/:func:`le`/:func:`gt`/:func:`ge`/:func:`eq` (or :func:`isnan`/:func:`isfinite`),
which on balls are ``True``/``False``/``None`` (undecided): :func:`where` answers an
undecided element with the union of both branches, which contains the exact value
whichever branch it is on. Comparisons of inputs (exact balls, radius 0) always decide.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from fractions import Fraction

import mpmath
import numpy as np

from ..formats import as_mpf

try:  # optional: the fast path
    import flint
    from flint import arb as _arb
except ImportError:  # pragma: no cover - exercised where python-flint is absent
    flint = None
    _arb = None

__all__ = [
    "log", "log1p", "exp", "expm1", "sqrt", "cosh", "maximum", "minimum", "div",
    "fsum", "mean", "where", "isnan", "isfinite", "lt", "le", "gt", "ge", "eq",
    "xmul", "xmul_pole", "power", "sigmoid", "to_fraction", "from_fraction", "num", "pi", "lift",
    "using", "backend", "precision", "has_arb", "land", "lor", "lnot", "decide", "all_of", "any_of",
    "isinf",
    "Undecided", "Node", "taping", "has_nodes", "value_of", "values", "attach", "tie_share", "clamp_min",
    "max_of",
]


# NAN and INF are module attributes too, made by the backend in use (see __getattr__)


class Undecided(ArithmeticError):
    """A branch that a formula must take one way (:func:`decide`) is not decided by the
    balls at this precision: the evaluation is redone at a higher one."""

_mpf = mpmath.mpf


def has_arb() -> bool:
    """Whether python-flint (the ball backend) is installed."""
    return _arb is not None


# --- the mpmath backend ----------------------------------------------------------------------


def _mp_log(x):
    if mpmath.isnan(x) or x < 0:
        return mpmath.mpf("nan")
    return mpmath.log(x)  # log(0) = -inf in mpmath


def _mp_log1p(x):
    if mpmath.isnan(x) or x < -1:
        return mpmath.mpf("nan")
    return mpmath.log1p(x)


def _mp_sqrt(x):
    if mpmath.isnan(x) or x < 0:
        return mpmath.mpf("nan")
    return mpmath.sqrt(x)


def _mp_max2(a, b):
    if mpmath.isnan(a) or mpmath.isnan(b):
        return mpmath.mpf("nan")
    return as_mpf(a if a >= b else b)


def _mp_min2(a, b):
    if mpmath.isnan(a) or mpmath.isnan(b):
        return mpmath.mpf("nan")
    return as_mpf(a if a <= b else b)


def _mp_div2(a, b):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    if b == 0:
        if a == 0 or mpmath.isnan(a):
            return mpmath.mpf("nan")
        return mpmath.inf if a > 0 else -mpmath.inf  # no -0 in mpmath: x/0 takes x's sign
    return a / b


def _mp_xmul2(w, v):
    if mpmath.isnan(w) or mpmath.isnan(v):
        return mpmath.mpf("nan")
    if w == 0:
        return mpmath.mpf(0)  # 0 log 0 = 0: a zero weight wins over an infinite log
    return w * v


def _mp_pow2(b, g):
    b, g = mpmath.mpf(b), mpmath.mpf(g)
    if g == 0 or b == 1:
        return mpmath.mpf(1)
    if mpmath.isnan(b) or mpmath.isnan(g):
        return mpmath.mpf("nan")
    if b < 0 and mpmath.isfinite(g) and not mpmath.isint(g):
        return mpmath.mpf("nan")  # a negative base has no real non-integer power
    if b == 0:
        return mpmath.mpf(0) if g > 0 else mpmath.inf  # no -0: 0 ** -g is +inf
    return b ** g


def _mp_sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def _mp_fsum(row):
    return mpmath.fsum(row)


def _mp_num(v):
    if type(v) is Node:
        return v
    if isinstance(v, Fraction):
        return mpmath.mpf(v.numerator) / v.denominator
    return as_mpf(v)


def _mp_to_fraction(v) -> Fraction:
    sign, man, exp, _ = mpmath.mpf(v)._mpf_
    f = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -f if sign else f


# --- the Arb backend -------------------------------------------------------------------------


def _arb_num(v):
    """`v` as a ball: exact for binary numbers (floats, ints, mpf, balls), the rational
    rounded outward at the working precision for a Fraction."""
    if isinstance(v, _arb) or type(v) is Node:
        return v
    if isinstance(v, (bool, np.bool_)):
        return _arb(int(v))
    if isinstance(v, (int, np.integer)):
        return _arb(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return _arb(v) if math.isfinite(v) else _arb("nan")
    if isinstance(v, Fraction):
        return _arb(flint.fmpq(v.numerator, v.denominator))
    if isinstance(v, mpmath.mpf):
        if not mpmath.isfinite(v):
            return _arb("nan")
        sign, man, exp, _ = v._mpf_
        return _arb(flint.arf((-int(man) if sign else int(man), int(exp)))) if man else _arb(0)
    raise TypeError(f"cannot make a ball of {type(v).__name__}")


def _arb_to_fraction(v) -> Fraction:
    if not v.is_exact():
        raise ValueError("to_fraction needs an exact ball (an input), not a computed one")
    man, exp = v.mid().man_exp()
    man, exp = int(man), int(exp)
    return Fraction(man) * (Fraction(2) ** exp)


def _arb_pow2(b, g):
    b, g = _arb_num(b), _arb_num(g)
    if g.is_zero() or (b.is_exact() and b == 1):
        return _arb(1)
    if g.is_exact() and g.is_integer():
        return b ** int(g.mid().unique_fmpz())  # integer powers of any base, 0 ** -n is NaN
    return b ** g  # a base not provably positive gives NaN: left to mpmath


def _arb_sigmoid(z):
    return 1 / (1 + (-z).exp())


def _arb_fsum(row):
    return sum(row, _arb(0))  # every addition encloses its rounding


# --- dispatch ----------------------------------------------------------------------------------


class _Backend:
    def __init__(self, name, **fns):
        self.name = name
        self.u1 = {k: np.frompyfunc(f, 1, 1) for k, f in fns.pop("unary").items()}
        self.u2 = {k: np.frompyfunc(f, 2, 1) for k, f in fns.pop("binary").items()}
        for k, f in fns.items():
            setattr(self, k, f)


_MP = _Backend(
    "mpmath",
    unary={"log": _mp_log, "log1p": _mp_log1p, "exp": mpmath.exp, "expm1": mpmath.expm1,
           "sqrt": _mp_sqrt, "cosh": mpmath.cosh, "sinh": mpmath.sinh, "sigmoid": _mp_sigmoid, "num": _mp_num,
           "isnan": mpmath.isnan, "isfinite": mpmath.isfinite},
    binary={"maximum": _mp_max2, "minimum": _mp_min2, "div": _mp_div2, "xmul": _mp_xmul2,
            "xmul_pole": _mp_xmul2,
            "power": _mp_pow2, "lt": lambda a, b: bool(a < b), "le": lambda a, b: bool(a <= b),
            "gt": lambda a, b: bool(a > b), "ge": lambda a, b: bool(a >= b),
            "eq": lambda a, b: bool(a == b)},
    num=_mp_num, to_fraction=_mp_to_fraction, fsum=_mp_fsum,
    nan=lambda: mpmath.mpf("nan"), inf=lambda: mpmath.inf,
    pi=lambda: +mpmath.pi,
    union=None,
)

if _arb is not None:
    _ARB = _Backend(
        "arb",
        # Arb's methods unbound (fast); _u makes sure every element is a ball first, since an
        # unbound method does not check the type of what it is given
        unary={"log": _arb.log, "log1p": _arb.log1p, "exp": _arb.exp, "expm1": _arb.expm1,
               "sqrt": _arb.sqrt, "cosh": _arb.cosh, "sinh": _arb.sinh, "sigmoid": _arb_sigmoid, "num": _arb_num},
        # comparisons, isnan/isfinite, max/min, division and the zero-weight products run
        # vectorised on arrays of balls (_cmp, isnan, isfinite, _ARB_VEC); power alone is
        # elementwise here
        binary={"power": _arb_pow2},
        num=_arb_num, to_fraction=_arb_to_fraction, fsum=_arb_fsum,
        nan=lambda: _arb("nan"), inf=lambda: _arb("nan"),  # no infinity in Arb: "unknown"
        pi=lambda: _arb.pi(),
        union=np.frompyfunc(lambda a, b: _arb_num(a).union(_arb_num(b)), 2, 1),
    )
else:  # pragma: no cover
    _ARB = None

_current = _MP


def backend() -> str:
    """Name of the backend oracles are evaluated on now: ``"mpmath"`` or ``"arb"``."""
    return _current.name


def precision() -> int:
    """The working precision (bits) of the current backend."""
    return flint.ctx.prec if _current is _ARB else mpmath.mp.prec


@contextlib.contextmanager
def using(name: str, prec: int):
    """Evaluate oracles on backend `name` at `prec` bits inside the block.

    Raises
    ------
    ImportError
        For ``"arb"`` when python-flint is not installed.
    """
    global _current
    if name == "arb" and _ARB is None:
        raise ImportError("the ball backend needs python-flint (pip install python-flint)")
    new = _ARB if name == "arb" else _MP
    old, old_flint = _current, (flint.ctx.prec if flint is not None else None)
    _current = new
    try:
        if new is _ARB:
            flint.ctx.prec = int(prec)
            # a tripwire: mpmath arithmetic inside a ball formula would be rounded without
            # being enclosed; at 8 bits any such value is wrong enough for every test to see
            with mpmath.workprec(8):
                yield
        else:
            with mpmath.workprec(int(prec)):
                yield
    finally:
        _current = old
        if flint is not None:
            flint.ctx.prec = old_flint


def __getattr__(name):
    # NAN and INF belong to the backend in use (Arb has no infinity: INF is "unknown" there)
    if name == "NAN":
        return _current.nan()
    if name == "INF":
        return _current.inf()
    raise AttributeError(name)


def _obj(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) and x.dtype == object else np.asarray(x, dtype=object)


# --- reverse-mode differentiation ----------------------------------------------------------------
#
# The exact gradient of an oracle is the oracle itself run on Nodes: each number computed from
# an input being differentiated remembers the numbers it came from and the local derivative
# (a number of the backend: a ball on Arb, so the chain rule is enclosed like the values).
# NumPy's object arrays carry Nodes through indexing, broadcasting and ``+ - * /`` unchanged;
# the ops below differentiate themselves. lossref.oracle.autodiff owns the tape.

_TAPE = None  # the tape in use (lossref.oracle.autodiff.Tape), or None
#: share of a tie ``max(a, b)`` with ``a == b`` that goes to ``a`` (the rest to ``b``)
_TIE = Fraction(1, 2)
#: how :func:`clamp_min` differentiates: "definition" or "straight" (derivative 1 throughout)
_CLAMP = "definition"


class Node:
    """A number on the tape: its value `v` (a number of the backend) and ``(argument,
    local derivative)`` for each argument it depends on."""

    __slots__ = ("v", "parents", "order")
    _count = itertools.count()

    def __init__(self, v, parents=()):
        self.v, self.parents, self.order = v, parents, next(Node._count)

    def __add__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(self.v + _val(o), ((self, 1),) + _arg(o, 1))

    def __radd__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(o + self.v, ((self, 1),))

    def __sub__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(self.v - _val(o), ((self, 1),) + _arg(o, -1))

    def __rsub__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(o - self.v, ((self, -1),))

    def __mul__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        ov = _val(o)
        return Node(self.v * ov, ((self, ov),) + _arg(o, self.v))

    def __rmul__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(o * self.v, ((self, o),))

    def __truediv__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        ov = _val(o)
        return Node(self.v / ov, ((self, Quot(1, ov)),) + _arg(o, Quot(-self.v, ov * ov)))

    def __rtruediv__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return Node(o / self.v, ((self, Quot(-o, self.v * self.v)),))

    def __neg__(self):
        return Node(-self.v, ((self, -1),))

    def __pos__(self):
        return self

    def __abs__(self):
        return Node(abs(self.v), ((self, _sign(self.v)),))

    def __pow__(self, n):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            return NotImplemented
        n = int(n)
        return Node(self.v ** n, ((self, n * self.v ** (n - 1)),) if n else ())

    def __lt__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v < _val(o)

    def __le__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v <= _val(o)

    def __gt__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v > _val(o)

    def __ge__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v >= _val(o)

    def __eq__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v == _val(o)

    def __ne__(self, o):
        if isinstance(o, np.ndarray):  # elementwise: NumPy applies the op to each Node
            return NotImplemented
        return self.v != _val(o)

    __hash__ = object.__hash__

    def __float__(self):
        raise TypeError("a differentiated number cannot be turned into a float inside an oracle")

    def __repr__(self) -> str:
        return f"Node({self.v!r})"


class Quot:
    """A local derivative ``m / d`` kept as a quotient: the chain rule carries numerators
    and denominators apart and divides once at the end (:meth:`Tape.gradient`), so a
    gradient such as ``w e / 21`` that is exactly a rounding midpoint comes out exact
    instead of as ``w e (1/21)``, which no precision decides."""

    __slots__ = ("m", "d")

    def __init__(self, m, d):
        self.m, self.d = m, d


_QUOT = np.frompyfunc(Quot, 2, 1)


def _quots(m, d) -> np.ndarray:
    m, d = np.broadcast_arrays(_obj(m), _obj(d))
    return np.asarray(_QUOT(m, d), dtype=object).reshape(m.shape)


def _val(o):
    return o.v if type(o) is Node else o


def _arg(o, d):
    return ((o, d),) if type(o) is Node else ()


def _sign(v):
    """sign(v) with sign(0) = 0 (what torch and jax give |x|' at 0); on a ball that holds 0
    but is not 0, undecided."""
    if _current is _ARB:
        if v > 0:
            return 1
        if v < 0:
            return -1
        if v.is_zero():
            return 0
        raise Undecided("the sign of a derivative is not decided at this precision")
    if mpmath.isnan(v):
        return mpmath.mpf("nan")
    return 1 if v > 0 else -1 if v < 0 else 0


@contextlib.contextmanager
def taping(tape, tie=Fraction(1, 2), clamp: str = "definition"):
    """Inside the block, :func:`lift` of an array the `tape` differentiates gives Nodes
    (``tape.leaves(arr)``) and the ops differentiate themselves; `tie` is the share of a
    tie of :func:`maximum`/:func:`minimum` given to the first argument (where the oracle
    does not fix it), `clamp` how :func:`clamp_min` is differentiated."""
    global _TAPE, _TIE, _CLAMP
    old = _TAPE, _TIE, _CLAMP
    _TAPE, _TIE, _CLAMP = tape, Fraction(tie), clamp
    try:
        yield tape
    finally:
        _TAPE, _TIE, _CLAMP = old


_VALS = np.frompyfunc(_val, 1, 1)
_IS_NODE = np.frompyfunc(lambda e: type(e) is Node, 1, 1)


def _has_nodes(a) -> bool:
    return _TAPE is not None and isinstance(a, np.ndarray) and a.dtype == object and \
        any(type(e) is Node for e in a.ravel().tolist())


def has_nodes(a) -> bool:
    """Whether `a` holds numbers being differentiated (an oracle that computes in exact
    rationals takes its differentiable path then)."""
    return _has_nodes(np.asarray(a, dtype=object) if not isinstance(a, np.ndarray) else a)


def value_of(v):
    """The value of a number being differentiated (itself for any other number): what an
    exact branch decision on an input reads."""
    return _val(v)


def attach(value, pairs, axis=None):
    """`value` with its derivatives given explicitly, where a formula's own chain rule
    would cancel (an exact 0 that balls could not prove): ``pairs`` lists ``(argument,
    local derivative)`` arrays. Elementwise (`axis` None) they broadcast to `value`'s shape;
    with `axis`, `value` is the reduction of the arguments along that axis (one value of a
    row, its derivative with respect to each element of the row). `value` must be computed
    from the arguments' values (:func:`value_of`, or the inputs before lifting); outside a
    tape it is returned as it is."""
    if _TAPE is None or not any(_has_nodes(_obj(a)) for a, _ in pairs):
        return value
    value = _values(np.asarray(value, dtype=object))
    if axis is None:
        return _wrap(value, [(_obj(a), _obj(d)) for a, d in pairs])
    out = np.array(value, dtype=object, order="C").reshape(value.shape)
    flat = out.reshape(-1)  # a view: C order
    rows = [(np.moveaxis(_obj(a), axis, -1).reshape(flat.size, -1),
             np.broadcast_to(np.moveaxis(_obj(d), axis, -1), np.moveaxis(_obj(a), axis, -1).shape).reshape(flat.size, -1))
            for a, d in pairs]
    for i in range(flat.size):
        parents = tuple((e, dv) for a, d in rows for e, dv in zip(a[i].tolist(), d[i].tolist()) if type(e) is Node)
        if parents:
            flat[i] = Node(flat[i], parents)
    return out


def values(a) -> np.ndarray:
    """An object array with every number being differentiated replaced by its value."""
    return _values(_obj(a))


def tie_share():
    """The share of a tie ``max(a, b)``, ``a == b``, that a derivative gives ``a``
    (:func:`taping`), as a number of the backend."""
    return _current.num(_TIE)


def _values(a: np.ndarray) -> np.ndarray:
    """The values of an object array that may hold Nodes."""
    if not _has_nodes(a):
        return a
    return np.asarray(_VALS(a), dtype=object).reshape(a.shape)


def _wrap(out, pairs) -> np.ndarray:
    """`out` (the values) with a Node wherever an argument is one: ``pairs`` lists
    ``(argument array, local derivative array)``, all of `out`'s shape."""
    out = np.array(out, dtype=object, order="C").reshape(np.shape(out))
    flat = out.reshape(-1)  # a view: C order
    cols = [(np.broadcast_to(a, out.shape).reshape(-1), np.broadcast_to(d, out.shape).reshape(-1))
            for a, d in pairs]
    for i in range(flat.size):
        parents = tuple((a[i], d[i]) for a, d in cols if type(a[i]) is Node)
        if parents:
            flat[i] = Node(flat[i], parents)
    return out


def _full(shape, v) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out[...] = _current.num(v)
    return out


def _choice(cond_a, cond_b, shape):
    """Local derivatives ``(d/da, d/db)`` of a max or min: 1 to the argument that
    `cond_a`/`cond_b` says wins, the tie share to each on a tie, NaN where neither is
    known (a NaN argument); an undecided comparison raises :class:`Undecided`."""
    ca, _ = _masks_or_raise(cond_a, shape)
    cb, _ = _masks_or_raise(cond_b, shape)
    tie = _current.num(_TIE)
    rest = _current.num(1 - _TIE)
    da = np.empty(shape, dtype=object)
    db = np.empty(shape, dtype=object)
    da[...], db[...] = _current.nan(), _current.nan()
    only_a, only_b, both = ca & ~cb, cb & ~ca, ca & cb
    da[only_a], db[only_a] = 1, 0
    da[only_b], db[only_b] = 0, 1
    da[both], db[both] = tie, rest
    return da, db


def _masks_or_raise(cond, shape):
    true, undecided = _masks(np.broadcast_to(np.asarray(cond), shape))
    if undecided is not None and undecided.any():
        raise Undecided("a branch of a derivative is not decided at this precision")
    return true, undecided


def _d_unary(name, v, out):
    """Local derivative of a unary op at values `v` with results `out`."""
    one = _full(v.shape, 1)
    if name == "log":
        return _quots(one, v)
    if name == "log1p":
        return _quots(one, one + v)
    if name == "exp":
        return out
    if name == "expm1":
        return out + one
    if name == "sqrt":
        return _quots(one, 2 * out)
    if name == "cosh":
        return _u("sinh")(v)
    if name == "sigmoid":
        return out * sigmoid(-v)  # sigma' = sigma(z) sigma(-z): no 1 - sigma near 1
    raise TypeError(f"no derivative of {name}")


def _d_binary(name, a, b, out, want_b: bool):
    if name == "div":
        one = _full(out.shape, 1)
        return _quots(one, b), (_quots(-a, b * b) if want_b else None)
    if name in ("xmul", "xmul_pole"):
        return b, a
    if name == "power":
        one = _full(out.shape, 1)
        return b * power(a, b - one), (out * log(a) if want_b else None)
    if name == "maximum":
        return _choice(ge(a, b), le(a, b), out.shape)
    if name == "minimum":
        return _choice(le(a, b), ge(a, b), out.shape)
    raise TypeError(f"no derivative of {name}")


def _balls_only(a: np.ndarray) -> np.ndarray:
    """`a` with every element a ball (a Python number from a literal becomes one exactly;
    an mpf is converted exactly, though a constant should come from :func:`num`)."""
    if set(map(type, a.ravel().tolist())) <= {_arb}:
        return a
    return np.asarray(_ARB.u1["num"](a), dtype=object).reshape(a.shape)


def _u(name, doc=""):
    def apply(x):
        a = _obj(x)
        if _has_nodes(a):
            v = _values(a)
            out = apply(v)
            return _wrap(out, [(a, _d_unary(name, v, out))])
        if _current is _ARB:
            a = _balls_only(a)
        return np.asarray(_current.u1[name](a), dtype=object)

    apply.__name__, apply.__doc__ = name, doc
    return apply


def _arb_xmul(A, B, pole: bool):
    out = np.asarray(A * B, dtype=object)
    zero = np.asarray(_IS_ZERO(A), dtype=bool)
    if zero.any():  # an exact zero weight: 0 log 0 = 0 (a NaN ball only where NaN is ruled out)
        keep = zero if pole else zero & np.asarray(_IS_FINITE(B), dtype=bool)
        out = np.array(out, dtype=object)
        out[keep] = _arb(0)
    return out


if _arb is not None:
    _MAX_ARB = np.frompyfunc(_arb.max, 2, 1)
    _MIN_ARB = np.frompyfunc(_arb.min, 2, 1)
    _IS_ZERO = np.frompyfunc(_arb.is_zero, 1, 1)
    #: the binary ops on two arrays of balls of one shape, each one C loop
    _ARB_VEC = {"maximum": lambda A, B: _MAX_ARB(A, B), "minimum": lambda A, B: _MIN_ARB(A, B),
                "div": lambda A, B: A / B, "xmul": lambda A, B: _arb_xmul(A, B, False),
                "xmul_pole": lambda A, B: _arb_xmul(A, B, True)}
else:  # pragma: no cover
    _ARB_VEC = {}


def _b(name, doc=""):
    def apply(a, b):
        if _TAPE is not None:
            A, B = _obj(a), _obj(b)
            na, nb = _has_nodes(A), _has_nodes(B)
            if na or nb:
                A, B = np.broadcast_arrays(A, B)
                va, vb = _values(A), _values(B)
                out = np.asarray(apply(va, vb), dtype=object)
                da, db = _d_binary(name, va, vb, out, nb)
                return _wrap(out, [(A, da)] + ([(B, db)] if nb else []))
        if _current is _ARB and name in _ARB_VEC:
            A, B = _pair(a, b)
            return np.asarray(_ARB_VEC[name](A, B), dtype=object).reshape(A.shape)
        return np.asarray(_current.u2[name](_obj(a), _obj(b)), dtype=object)

    apply.__name__, apply.__doc__ = name, doc
    return apply


log = _u("log", "Natural log; NaN below 0, -inf at 0.")
log1p = _u("log1p", "log(1 + x); NaN below -1, -inf at -1.")
exp = _u("exp", "Elementwise exp.")
expm1 = _u("expm1", "Elementwise exp(x) - 1.")
sqrt = _u("sqrt", "Square root; NaN below 0.")
cosh = _u("cosh", "Elementwise cosh.")
sigmoid = _u("sigmoid", "``1 / (1 + exp(-z))``; exact limits 0 and 1 at -inf and +inf.")
_maximum = _b("maximum")
_minimum = _b("minimum")


def _fixed_tie(f, a, b, tie):
    global _TIE
    if tie is None or _TAPE is None:
        return f(a, b)
    old, _TIE = _TIE, Fraction(tie)
    try:
        return f(a, b)
    finally:
        _TIE = old


def maximum(a, b, tie=None) -> np.ndarray:
    """Elementwise maximum that propagates NaN (as ``np.maximum``). Differentiated, a tie
    gives `a` the share `tie` (None: the dialect's, :func:`taping`) and `b` the rest."""
    return _fixed_tie(_maximum, a, b, tie)


def minimum(a, b, tie=None) -> np.ndarray:
    """Elementwise minimum that propagates NaN (as ``np.minimum``); `tie` as for
    :func:`maximum`."""
    return _fixed_tie(_minimum, a, b, tie)


def max_of(a, axis=-1) -> np.ndarray:
    """The maximum along `axis` (NaN if any element is NaN). Differentiated, the elements
    that attain it share the derivative evenly (``1/k`` each for a k-way tie), as
    ``jnp.max`` and ``torch.amax`` do, rather than by a chain of two-way ties."""
    a = np.moveaxis(_obj(a), axis, -1)
    v = _values(a)
    top = v[..., 0]
    for k in range(1, v.shape[-1]):  # the oracle may loop: it is the literal definition
        top = maximum(top, v[..., k])
    top = np.asarray(top, dtype=object)
    if not _has_nodes(a):
        return top
    hit, _ = _masks_or_raise(eq(v, top[..., None]), v.shape)
    count = hit.sum(axis=-1, keepdims=True)
    share = np.empty(v.shape, dtype=object)
    share[...] = _current.num(0)
    for idx in zip(*np.nonzero(hit)):
        share[idx] = Quot(1, int(count[idx[:-1] + (0,)]))
    return attach(top, [(a, share)], axis=-1)


def clamp_min(a, lo) -> np.ndarray:
    """``maximum(a, lo)`` for a clamp of `a` from below by a constant. Differentiated by
    the definition (1 above `lo`, 0 below, the tie share at it), or, where the dialect says
    ``clamp="straight"`` (:func:`taping`; torch clamps a copy outside autograd), with
    derivative 1 everywhere."""
    if _TAPE is not None and _CLAMP == "straight" and _has_nodes(_obj(a)):
        out = np.asarray(_maximum(_values(_obj(a)), lo), dtype=object)
        return _wrap(out, [(np.broadcast_to(_obj(a), out.shape), _full(out.shape, 1))])
    return maximum(a, lo)
div = _b("div", "Elementwise ``a / b`` with IEEE results for a zero divisor.")
xmul = _b("xmul", "Elementwise ``w * v`` where ``w = 0`` gives 0 for every non-NaN ``v`` "
                  "(``0 log 0 = 0``). On balls, 0 times a NaN ball stays undecided (it may stand for NaN).")
xmul_pole = _b("xmul_pole", "``xmul`` for a ``v`` that is finite or ±inf wherever ``w = 0`` (the "
                            "oracle has masked its NaNs itself): on balls, 0 times a NaN ball is 0.")
power = _b("power", "Elementwise ``b ** g`` as IEEE ``pow``: ``x ** 0 = 1``, NaN for a negative base "
                    "and a non-integer exponent, ``0 ** g`` is 0 or inf by the sign of g.")


_ARB_CMP = {"lt": (np.less, np.greater_equal), "le": (np.less_equal, np.greater),
            "gt": (np.greater, np.less_equal), "ge": (np.greater_equal, np.less),
            "eq": (np.equal, np.not_equal)}


def _pair(a, b):
    """`a` and `b` broadcast to one shape, every element a ball."""
    # converted before broadcasting: a scalar operand becomes one ball, not one per element
    return tuple(np.broadcast_arrays(_balls_only(_obj(a)), _balls_only(_obj(b))))


def _three(known_true: np.ndarray, known_false: np.ndarray) -> np.ndarray:
    """A condition: a bool array where every element is known, else an object array with
    None where neither is."""
    known_true, known_false = np.asarray(known_true), np.asarray(known_false)
    if (known_true | known_false).all():
        return known_true
    out = known_true.astype(object)
    out[~(known_true | known_false)] = None
    return out


def _cmp(name, sym):
    f = _b(name)
    yes, no = _ARB_CMP[name]

    def compare(a, b):
        if _TAPE is not None:  # a derivative never changes a comparison: compare the values
            a, b = _values(_obj(a)), _values(_obj(b))
        if _current is _ARB:  # Arb answers True only when certain, both ways
            A, B = _pair(a, b)
            return _three(np.asarray(yes(A, B), dtype=bool), np.asarray(no(A, B), dtype=bool))
        return f(a, b).astype(bool)

    compare.__name__ = name
    compare.__doc__ = (f"Elementwise ``a {sym} b``: a bool array, except on balls where some "
                       "overlap: then an object array of True/False/None (None: undecided).")
    return compare


lt, le, gt, ge, eq = (_cmp(n, s) for n, s in
                      (("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("eq", "==")))


_IS_FINITE = np.frompyfunc(_arb.is_finite, 1, 1) if _arb is not None else None


def _finite_balls(x) -> np.ndarray:
    a = _balls_only(_obj(x))
    return np.asarray(_IS_FINITE(a), dtype=bool).reshape(a.shape)


def isnan(x) -> np.ndarray:
    """Where the exact values are NaN (bool array; on balls None where a ball is not known:
    a NaN ball may stand for NaN or an infinity)."""
    x = _values(_obj(x)) if _TAPE is not None else x
    if _current is _ARB:
        fin = _finite_balls(x)
        return _three(np.zeros(fin.shape, dtype=bool), fin)
    return np.asarray(_current.u1["isnan"](_obj(x)), dtype=bool)


def isfinite(x) -> np.ndarray:
    """Where the exact values are finite (bool array; None where a ball is not known)."""
    x = _values(_obj(x)) if _TAPE is not None else x
    if _current is _ARB:
        fin = _finite_balls(x)
        return _three(fin, np.zeros(fin.shape, dtype=bool))
    return np.asarray(_current.u1["isfinite"](_obj(x)), dtype=bool)


def num(v):
    """A constant as a number of the current backend: binary numbers exactly, a
    ``Fraction`` correctly rounded (mpmath) or enclosed (Arb) at the working precision."""
    return _current.num(v)


def lift(a) -> np.ndarray:
    """An array (of floats, or of exact numbers of either backend) as an object array of
    the current backend's numbers, without rounding."""
    arr = np.asarray(a)
    if arr.dtype == object:
        return np.asarray(_current.u1["num"](arr), dtype=object).reshape(arr.shape)
    if _TAPE is not None and _TAPE.differentiates(arr):
        return _TAPE.leaves(arr, _lift_plain(arr))
    return _lift_plain(arr)


def _lift_plain(arr: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        f = arr.astype(np.float64)
    if _current is _ARB:  # the ball constructor directly: lifting is a large part of a cheap oracle
        out = np.asarray(_LIFT_ARB(f), dtype=object).reshape(f.shape)
        bad = ~np.isfinite(f)
        if bad.any():
            out[bad] = _arb("nan")
        return out
    # every binary64 value is exact at 64 bits: one context for the whole array
    with mpmath.workprec(max(mpmath.mp.prec, 64)), np.errstate(invalid="ignore"):
        return np.asarray(_LIFT_MP(f), dtype=object).reshape(f.shape)


_LIFT_ARB = np.frompyfunc(_arb, 1, 1) if _arb is not None else None
_LIFT_MP = np.frompyfunc(mpmath.mpf, 1, 1)


def pi():
    """π at the working precision."""
    return _current.pi()


def _masks(cond):
    """``(true, undecided)`` of a condition: where it holds, and where a ball comparison
    left it undecided (None; ``undecided`` is None for a bool array)."""
    c = np.asarray(cond)
    if c.dtype != object:
        return c.astype(bool), None
    undecided = np.asarray(np.frompyfunc(lambda v: v is None, 1, 1)(c), dtype=bool).reshape(c.shape)
    true = np.asarray(np.frompyfunc(lambda v: v is not None and bool(v), 1, 1)(c), dtype=bool).reshape(c.shape)
    return true, undecided


def all_of(cond, axis=-1) -> np.ndarray:
    """``np.all(cond, axis)`` of a condition: on balls False where some element is False,
    else None where some element is undecided."""
    true, undecided = _masks(cond)
    if undecided is None:
        return np.all(true, axis=axis)
    false = ~true & ~undecided
    return _three(~np.any(false | undecided, axis=axis), np.any(false, axis=axis))


def any_of(cond, axis=-1) -> np.ndarray:
    """``np.any(cond, axis)`` of a condition: on balls True where some element is True,
    else None where some element is undecided."""
    true, undecided = _masks(cond)
    if undecided is None:
        return np.any(true, axis=axis)
    return _three(np.any(true, axis=axis), ~np.any(true | undecided, axis=axis))


def isinf(v, sign: int = 1) -> np.ndarray:
    """Where exact values are +inf (`sign` > 0) or -inf: False wherever a value is finite,
    on balls too (there INF is a NaN ball, so a bare ``eq(v, INF)`` never decides)."""
    inf = _current.inf() if sign > 0 else -_current.inf()
    return land(lnot(isfinite(v)), eq(v, inf))


def where(cond, a, b) -> np.ndarray:
    """``np.where`` for object arrays; where a (ball) condition is undecided (None), the
    union of both branches."""
    cb, undecided = _masks(cond)
    out = np.asarray(np.where(cb, a, b), dtype=object)
    if undecided is not None and undecided.any() and _TAPE is not None:
        # a union of two branches has no derivative: decide the branch at a higher precision
        raise Undecided("a branch is not decided at this precision")
    if undecided is not None and undecided.any():
        a_, b_ = np.broadcast_to(_obj(a), out.shape), np.broadcast_to(_obj(b), out.shape)
        u = np.broadcast_to(undecided, out.shape)
        out = np.array(out, dtype=object)
        out[u] = _current.union(a_[u], b_[u])
    if _current is _ARB:
        return _balls_only(out)
    return np.asarray(_current.u1["num"](out), dtype=object).reshape(out.shape)


def fsum(x, axis=None) -> np.ndarray:
    """Sum along `axis` (all axes if None): one rounding per result on mpmath
    (``mpmath.fsum``), a ball that contains the exact sum on Arb."""
    x = np.asarray(x, dtype=object)
    if _has_nodes(x):  # one Node per sum, each term's local derivative 1
        moved = x.reshape(1, -1) if axis is None else np.moveaxis(x, axis, -1)
        sums = fsum(_values(moved), axis=-1)
        rows = moved.reshape(-1, moved.shape[-1]) if moved.size else np.empty((sums.size, 0), object)
        out = np.empty(sums.size, dtype=object)
        for i, (s, r) in enumerate(zip(sums.reshape(-1).tolist(), rows)):
            parents = tuple((e, 1) for e in r.tolist() if type(e) is Node)
            out[i] = Node(s, parents) if parents else s
        return out.reshape(()) if axis is None else out.reshape(moved.shape[:-1])
    if axis is None:
        return np.asarray(_current.fsum(x.ravel().tolist()), dtype=object)
    x = np.moveaxis(x, axis, -1)
    if _current is _ARB and x.size:  # one C loop over the object array: ball sums enclose
        return np.asarray(np.add.reduce(_balls_only(x), axis=-1), dtype=object).reshape(x.shape[:-1])
    rows = x.reshape(-1, x.shape[-1]) if x.size else np.empty((int(np.prod(x.shape[:-1])), 0), object)
    out = np.empty(rows.shape[0], dtype=object)
    for i, r in enumerate(rows):  # the oracle may loop: it is the slow, literal definition
        out[i] = _current.fsum(r.tolist())
    return out.reshape(x.shape[:-1])


def mean(x, axis=-1) -> np.ndarray:
    """Mean along `axis`; an empty axis gives NaN (as ``np.mean``)."""
    x = np.asarray(x, dtype=object)
    n = x.shape[axis]
    s = fsum(x, axis)
    return div(s, np.full(s.shape, n, dtype=object)) if n else np.full(s.shape, _current.nan(), dtype=object)


def to_fraction(v) -> Fraction:
    """The exact rational value of a finite number (an exact ball on Arb)."""
    if isinstance(v, (float, int, np.floating, np.integer)):
        return Fraction(float(v)) if isinstance(v, (float, np.floating)) else Fraction(int(v))
    if type(v) is Node:
        raise TypeError("an exact rational of a differentiated input has no derivative: the oracle "
                        "must use the op set here")
    return _current.to_fraction(v)


def from_fraction(f: Fraction):
    """A rational as a number of the current backend at the working precision."""
    return _current.num(Fraction(f))


# --- conditions: three-valued on balls (None = undecided) --------------------------------------


def _tri_and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _tri_or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


_and_u = np.frompyfunc(lambda a, b: _tri_and(_py(a), _py(b)), 2, 1)
_or_u = np.frompyfunc(lambda a, b: _tri_or(_py(a), _py(b)), 2, 1)
_not_u = np.frompyfunc(lambda a: None if _py(a) is None else not _py(a), 1, 1)


def _py(v):
    return None if v is None else bool(v)


def _cond(out):
    return out if _current is _ARB else np.asarray(out, dtype=bool)


def _bools(*cs) -> bool:
    return all(np.asarray(c).dtype == bool for c in cs)


def land(a, b) -> np.ndarray:
    """Elementwise ``a and b`` of conditions (three-valued on balls)."""
    if _bools(a, b):
        return np.logical_and(a, b)
    return _cond(np.asarray(_and_u(_obj(a), _obj(b)), dtype=object))


def lor(a, b) -> np.ndarray:
    """Elementwise ``a or b`` of conditions (three-valued on balls)."""
    if _bools(a, b):
        return np.logical_or(a, b)
    return _cond(np.asarray(_or_u(_obj(a), _obj(b)), dtype=object))


def lnot(a) -> np.ndarray:
    """Elementwise ``not a`` of a condition (three-valued on balls)."""
    if _bools(a):
        return np.logical_not(a)
    return _cond(np.asarray(_not_u(_obj(a)), dtype=object))


def decide(cond) -> np.ndarray:
    """A condition as a bool array, for control flow that cannot take both branches
    (a support set, a sort order of computed values).

    Raises
    ------
    Undecided
        On balls, where an element of `cond` is undecided at this precision.
    """
    c = np.asarray(cond)
    if c.dtype != object:
        return c.astype(bool)
    if any(v is None for v in c.ravel().tolist()):
        raise Undecided("a branch is not decided at this precision")
    return c.astype(bool)
