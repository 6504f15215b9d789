"""Binary floating-point formats: description, exact rounding, ulp and hex I/O.

Four formats are described once, by precision and exponent range; everything else
(rounding an exact number, rounding a float64 array, ulp, ulp error, hex) is derived
from those three numbers, so float16 and bfloat16 need no special code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import mpmath
import numpy as np

try:  # ml_dtypes gives a real bfloat16 array type; without it bfloat16 values live in float32
    import ml_dtypes as _ml_dtypes
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _ml_dtypes = None

__all__ = [
    "Format",
    "FORMATS",
    "FLOAT16",
    "BFLOAT16",
    "FLOAT32",
    "FLOAT64",
    "get_format",
    "round_mpf",
    "round_array",
    "to_format_array",
    "as_format",
    "casts_exactly",
    "cast_probes",
    "ulp",
    "ulp_error",
    "ulp_steps",
    "to_hex",
    "from_hex",
    "has_ml_dtypes",
    "as_mpf",
]


@dataclass(frozen=True)
class Format:
    """An IEEE-style binary format with round-to-nearest-even.

    Attributes
    ----------
    name : str
        Canonical name (``"float32"``, ``"bfloat16"``, ...).
    precision : int
        Significand bits, the implicit leading bit included.
    emin : int
        Exponent of the smallest normal number, ``2**emin``.
    emax : int
        Exponent of the largest binade; the largest finite value is
        ``(2 - 2**(1 - precision)) * 2**emax``.
    """

    name: str
    precision: int
    emin: int
    emax: int

    def __reduce__(self):
        # unpickled or copied, a format is the module's own instance (code compares with `is`)
        return get_format, (self.name,)

    @property
    def max(self) -> float:
        """Largest finite value."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.precision), self.emax)

    @property
    def tiny(self) -> float:
        """Smallest positive normal value."""
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive subnormal value (the ulp of zero)."""
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def eps(self) -> float:
        """Unit roundoff ``u = 2**-precision`` (half an ulp of 1)."""
        return math.ldexp(1.0, -self.precision)

    @property
    def dtype(self) -> np.dtype:
        """NumPy dtype that holds values of this format.

        bfloat16 uses ``ml_dtypes.bfloat16`` when installed and float32 otherwise
        (every bfloat16 value is exactly a float32 value).
        """
        if self.name == "bfloat16":
            return np.dtype(_ml_dtypes.bfloat16) if _ml_dtypes is not None else np.dtype(np.float32)
        return np.dtype(self.name)

    def __str__(self) -> str:
        return self.name


FLOAT16 = Format("float16", 11, -14, 15)
BFLOAT16 = Format("bfloat16", 8, -126, 127)
FLOAT32 = Format("float32", 24, -126, 127)
FLOAT64 = Format("float64", 53, -1022, 1023)
FORMATS = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}


def has_ml_dtypes() -> bool:
    """Whether bfloat16 arrays are real ``ml_dtypes.bfloat16`` arrays."""
    return _ml_dtypes is not None


FormatLike = Union[Format, str, np.dtype, type, Any]


def get_format(fmt: FormatLike) -> Format:
    """Return the :class:`Format` named by `fmt`.

    Parameters
    ----------
    fmt : Format, str, numpy dtype or scalar type
        ``"float32"``, ``np.float16``, ``np.dtype("float64")``, ``"bfloat16"``,
        ``ml_dtypes.bfloat16`` ...

    Raises
    ------
    TypeError
        If `fmt` names no supported binary format.
    """
    if isinstance(fmt, Format):
        return fmt
    if isinstance(fmt, str) and fmt in FORMATS:
        return FORMATS[fmt]
    try:
        name = np.dtype(fmt).name
    except TypeError:
        name = None
    if name in FORMATS:
        return FORMATS[name]
    raise TypeError(
        f"format {fmt!r} is not supported; expected one of {sorted(FORMATS)}"
    )


# --- exact rounding of one mpmath number ---------------------------------------------------


def as_mpf(x: Any) -> mpmath.mpf:
    """`x` as an mpmath number without rounding (``mpmath.mpf(x)`` would round an mpf
    of higher precision to the current working precision)."""
    if isinstance(x, mpmath.mpf):
        return x
    if type(x).__module__.startswith("flint"):  # mpmath would convert a ball through a float
        raise TypeError("a ball is not an exact number; decide it with lossref.oracle.balls")
    with mpmath.workprec(max(mpmath.mp.prec, 64)):  # every binary64 value is exact here
        return mpmath.mpf(float(x) if isinstance(x, np.floating) else x)


def round_mpf(x: mpmath.mpf, fmt: FormatLike) -> float:
    """Round an exact mpmath number to nearest-even in `fmt`.

    Works on the integer significand, so it is exact at any working precision:
    subnormals lose low bits, values at or past the overflow threshold become ±inf,
    NaN stays NaN. mpmath has no signed zero, so an exact zero rounds to +0.0 while a
    tiny negative value that underflows rounds to -0.0 (IEEE).

    Returns
    -------
    float
        A Python float whose value is exactly representable in `fmt`.
    """
    f = get_format(fmt)
    x = as_mpf(x)
    if mpmath.isnan(x):
        return math.nan
    if mpmath.isinf(x):
        return math.inf if x > 0 else -math.inf
    sign, man, exp, bc = x._mpf_
    if man == 0:
        return 0.0
    man = int(man)
    lead = exp + bc - 1  # exponent of the leading bit
    quantum = max(lead, f.emin) - (f.precision - 1)  # exponent of the last kept bit
    if exp < quantum:
        shift = quantum - exp
        if shift > bc:  # below half the quantum (man < 2**bc <= 2**(shift-1)): rounds to zero
            man, exp = 0, quantum
        else:
            q, rem = man >> shift, man & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            if rem > half or (rem == half and q & 1):
                q += 1
            man, exp = q, quantum
    if man == 0:
        return -0.0 if sign else 0.0
    if man.bit_length() + exp - 1 > f.emax:
        return -math.inf if sign else math.inf
    value = math.ldexp(man, exp)  # exact: man has at most `precision` bits
    return -value if sign else value


# --- vectorised rounding of float64 arrays --------------------------------------------------


def round_array(x: np.ndarray, fmt: FormatLike) -> np.ndarray:
    """Round a float64 array to nearest-even in `fmt`; returns float64 values.

    The reference computes in float64 and calls this once at the end. It scales each
    value so that the kept bits form an integer, rounds with ``np.rint`` (ties to even),
    and scales back; both scalings are exact powers of two.
    """
    f = get_format(fmt)
    x = np.asarray(x, dtype=np.float64)
    if f is FLOAT64:
        return x
    finite = np.isfinite(x) & (x != 0)
    _, e = np.frexp(np.where(finite, x, 1.0))
    quantum = np.maximum(e - 1, f.emin) - (f.precision - 1)
    r = np.ldexp(np.rint(np.ldexp(np.where(finite, x, 1.0), -quantum)), quantum)
    r = np.where(np.abs(r) > f.max, np.copysign(np.inf, x), r)
    # zero results keep the sign of x (IEEE underflow), non-finite and zero inputs pass through
    r = np.where(r == 0, np.copysign(0.0, x), r)
    return np.where(finite, r, x)


def to_format_array(x64: np.ndarray, fmt: FormatLike) -> np.ndarray:
    """Round float64 values into `fmt` and return them in that format's dtype.

    Where NumPy's cast rounds exactly like :func:`round_array` (:func:`casts_exactly`, a
    checked property) the cast alone does it, without round_array's temporaries.
    """
    f = get_format(fmt)
    x = np.asarray(x64, dtype=np.float64)
    if casts_exactly(np.float64, f):
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are the right values
            return x.astype(f.dtype)
    return round_array(x, f).astype(f.dtype)


def promote(a: FormatLike, b: FormatLike) -> "Format":
    """The format two float formats combine into in Keras, PyTorch and JAX alike: the
    wider one, and float32 for float16 with bfloat16 (neither holds the other)."""
    fa, fb = get_format(a), get_format(b)
    if {fa.name, fb.name} == {"float16", "bfloat16"}:
        return FLOAT32
    return fa if fa.precision >= fb.precision else fb


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


def as_format(x: Any, fmt: FormatLike) -> np.ndarray:
    """`x` (a real array) rounded to nearest-even into `fmt`, in that format's dtype.

    An array that already holds `fmt` (its dtype is the format's own) comes back as it
    is, without a copy. A float array of another format is cast directly where NumPy's
    cast rounds once to nearest-even like :func:`round_array` (see :func:`casts_exactly`),
    which needs no float64 copy; the other casts go through float64 and
    :func:`round_array`. Integers are widened to float64 first (exact up to 2**53, one
    rounding beyond), booleans cast directly. The values are the same on every path.
    """
    f = get_format(fmt)
    x = np.asarray(x)
    if x.dtype.kind == "b":
        return x.astype(f.dtype)  # 0 and 1 are values of every format
    if not _is_float(x.dtype):
        x = x.astype(np.float64)  # an integer cast to a narrow format may round twice
    if x.dtype == f.dtype and get_format(x.dtype) is f:  # bfloat16 in float32 needs rounding
        return x
    if casts_exactly(x.dtype, f):
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are the right values
            return x.astype(f.dtype)
    return to_format_array(x.astype(np.float64), f)


_CASTS: dict = {}


def casts_exactly(src: Any, fmt: FormatLike) -> bool:
    """Whether ``astype`` from float dtype `src` to `fmt`'s dtype rounds like :func:`round_array`.

    True without a check where `fmt` holds every value of `src`. Otherwise the cast is
    compared once, bit for bit, with :func:`round_array` on :func:`cast_probes` (ties,
    near-ties, subnormals, the overflow threshold, specials): NumPy casts float64 and
    float32 in one rounding, but a library cast may go through float32 and round twice,
    and then :func:`as_format` keeps to :func:`round_array`.
    """
    f, s = get_format(fmt), get_format(src)
    key = (np.dtype(src).name, f.name, f.dtype.name)
    if key not in _CASTS:
        if get_format(f.dtype) is not f:
            _CASTS[key] = False  # bfloat16 held in float32 (no ml_dtypes): round_array's job
        elif s.precision <= f.precision and s.emin >= f.emin and s.emax <= f.emax:
            _CASTS[key] = True
        else:
            x = cast_probes(s, f).astype(np.dtype(src))
            with np.errstate(all="ignore"):
                got = x.astype(f.dtype).astype(np.float64)
                want = round_array(x.astype(np.float64), f)
            same = ((got == want) & (np.signbit(got) == np.signbit(want))) | (np.isnan(got) & np.isnan(want))
            _CASTS[key] = bool(np.all(same))
    return _CASTS[key]


def cast_probes(src: FormatLike, dst: FormatLike, seed: int = 0) -> np.ndarray:
    """float64 values of `src` where rounding into `dst` is hardest, and a few random ones.

    Per binade of `dst` from below half its smallest subnormal to past its overflow
    threshold, each sign: random kept bits followed by an exact tie, ties off by one
    unit of `src` either way, quarter points, and random tails. Plus ±0, ±inf, NaN,
    the largest finite value of `dst` and the overflow threshold itself.
    """
    s, d = get_format(src), get_format(dst)
    rng = np.random.default_rng(seed)
    lead = np.arange(max(d.emin - d.precision - 2, s.emin - s.precision + 1), min(d.emax, s.emax) + 2)
    quantum = np.maximum(lead, d.emin) - (d.precision - 1)  # exponent of dst's last kept bit
    top = np.ldexp(1.0, lead - quantum)  # the leading bit in units of the quantum
    parts = []
    for _ in range(4):
        # random kept bits under the leading one (none below the smallest subnormal)
        m = np.where(top >= 1, np.floor(top * (1.0 + rng.random(lead.size))), 0.0)
        unit = np.ldexp(1.0, np.maximum(lead, s.emin) - (s.precision - 1) - quantum)  # src ulp / quantum
        for frac in (0.5, 0.25, 0.75, rng.random(lead.size)):
            for off in (-1.0, 0.0, 1.0):
                with np.errstate(over="ignore"):  # past float64's range: inf, a probe as good
                    parts.append(np.ldexp(m + frac + off * unit, quantum))
    v = np.concatenate(parts)
    threshold = math.ldexp(2.0 - 2.0 ** -d.precision, d.emax) if d.emax < 1023 else d.max
    v = np.concatenate([v, -v, [0.0, -0.0, np.inf, -np.inf, np.nan, d.max, -d.max, threshold, -threshold]])
    with np.errstate(over="ignore"):  # values past the range of src become inf
        return round_array(v, s)


# --- ulp and error ---------------------------------------------------------------------------


def _exponent(x: mpmath.mpf) -> int:
    sign, man, exp, bc = as_mpf(x)._mpf_
    return exp + bc - 1


def ulp(x: Any, fmt: FormatLike) -> float:
    """The ulp of `x` in `fmt`: the spacing of `fmt` in the binade of ``|x|``.

    For zero and subnormal `x` this is the smallest subnormal; infinite and NaN `x`
    give NaN. `x` may be a float or an exact mpmath number (the binade of an exact
    value is its own, not that of its rounding).
    """
    f = get_format(fmt)
    x = as_mpf(x)
    if not mpmath.isfinite(x):
        return math.nan
    if x == 0:
        return f.min_subnormal
    return math.ldexp(1.0, max(_exponent(x), f.emin) - f.precision + 1)


def ulp_error(computed: Any, exact: Any, fmt: FormatLike) -> float:
    """Error of `computed` in ulps of the exact value, by the rules of ``spec/accuracy.md``.

    * exact NaN: 0 if `computed` is NaN, else inf; computed NaN for a non-NaN exact: inf.
    * exact value that rounds to ±inf in `fmt` (it is infinite or past the overflow
      threshold): 0 if `computed` is that infinity, else inf.
    * computed ±inf for an exact value that rounds to a finite one: inf.
    * otherwise ``|computed - exact| / ulp(exact)``; signs of zero are not compared.
    """
    f = get_format(fmt)
    c = float(computed)
    with mpmath.workprec(max(mpmath.mp.prec, 64)):
        x = as_mpf(exact)
        if mpmath.isnan(x):
            return 0.0 if math.isnan(c) else math.inf
        if math.isnan(c):
            return math.inf
        rx = round_mpf(x, f)
        if math.isinf(rx):
            return 0.0 if c == rx else math.inf
        if math.isinf(c):
            return math.inf
    with mpmath.workprec(113):  # the difference is rounded once, far below an ulp
        return float(abs(mpmath.mpf(c) - x) / mpmath.mpf(ulp(x, f)))


def _ordinal(v: float, f: Format) -> int:
    """Integer position of a representable value among the values of `f` (0 at ±0)."""
    if v == 0:
        return 0
    m, e = math.frexp(abs(v))  # abs(v) = m * 2**e, 0.5 <= m < 1
    lead = e - 1
    if lead < f.emin:  # subnormal: count in steps of the smallest subnormal
        n = int(abs(v) / f.min_subnormal)
    else:
        steps = 1 << (f.precision - 1)
        n = (lead - f.emin + 1) * steps + int(math.ldexp(m * 2, f.precision - 1)) - steps
    return n if v > 0 else -n


def ulp_steps(a: float, b: float, fmt: FormatLike) -> int:
    """Number of representable steps between two values of `fmt` (0 when equal).

    Both must be finite and representable in `fmt`; ±0 count as one value.
    """
    f = get_format(fmt)
    for name, v in (("a", a), ("b", b)):
        if not math.isfinite(v) or round_mpf(v, f) != v:
            raise ValueError(f"{name}={v!r} is not a finite {f.name} value")
    return abs(_ordinal(float(a), f) - _ordinal(float(b), f))


# --- hex --------------------------------------------------------------------------------------


def to_hex(x: Any, trim: bool = False) -> str:
    """Exact hexadecimal text of a value of any supported format (``float.hex``).

    With `trim`, the fraction's trailing zeros are dropped (C99 ``%a`` style:
    ``0x1.8p+1``, ``0x1p-24``); ``float.fromhex`` and C's ``strtod`` read both forms.
    """
    v = float(np.float64(np.asarray(x, dtype=np.float64)))
    if math.isnan(v):
        return "nan"
    if not trim or math.isinf(v):
        return v.hex()
    mant, _, exp = v.hex().partition("p")
    head, _, frac = mant.partition(".")
    frac = frac.rstrip("0")
    return f"{head}.{frac}p{exp}" if frac else f"{head}p{exp}"


def from_hex(s: str, fmt: FormatLike = FLOAT64) -> float:
    """Parse :func:`to_hex` text; raises ``ValueError`` if the value is not exact in `fmt`."""
    f = get_format(fmt)
    v = float.fromhex(s) if s not in ("nan", "-nan") else math.nan
    if math.isfinite(v) and round_mpf(v, f) != v:
        raise ValueError(f"{s} is not exactly representable in {f.name}")
    return v
