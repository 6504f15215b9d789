"""Rounding, ulp and hex of the four formats, checked on hand-derived boundary cases."""

import math

import mpmath
import numpy as np
import pytest

from lossref import formats
from lossref.formats import round_mpf, round_array, ulp, ulp_error, ulp_steps

from .support import FORMATS

mpf = mpmath.mpf

# (precision, emin, emax) written out from the IEEE 754 / bfloat16 definitions
SPECS = {"float16": (11, -14, 15), "bfloat16": (8, -126, 127),
         "float32": (24, -126, 127), "float64": (53, -1022, 1023)}


def exact(v):
    with mpmath.workprec(4000):
        return mpmath.mpf(v)


@pytest.mark.parametrize("name", FORMATS)
def test_format_constants(name):
    f = formats.get_format(name)
    p, emin, emax = SPECS[name]
    assert (f.precision, f.emin, f.emax) == (p, emin, emax)
    assert f.max == (2 - 2.0 ** (1 - p)) * 2.0 ** emax
    assert f.min_subnormal == 2.0 ** (emin - p + 1)
    if name != "bfloat16" or formats.has_ml_dtypes():
        import ml_dtypes
        info = ml_dtypes.finfo(f.dtype)
        assert float(info.max) == f.max and float(info.smallest_subnormal) == f.min_subnormal


@pytest.mark.parametrize("name", FORMATS)
def test_round_boundaries(name):
    f = formats.get_format(name)
    p = f.precision
    with mpmath.workprec(4000):
        one, half_ulp1 = mpf(1), mpf(2) ** -p
        # halfway between 1 and 1+2^(1-p): ties to even (1); just above: up
        assert round_mpf(one + half_ulp1, f) == 1.0
        assert round_mpf(one + half_ulp1 + mpf(2) ** -3000, f) == 1.0 + 2.0 ** (1 - p)
        assert round_mpf(one + 3 * half_ulp1, f) == 1.0 + 2 * 2.0 ** (1 - p)  # tie to even upward
        assert round_mpf(-(one + half_ulp1 - mpf(2) ** -3000), f) == -1.0
        # largest subnormal and the step to the smallest normal
        largest_sub = f.tiny - f.min_subnormal
        assert round_mpf(mpf(largest_sub), f) == largest_sub
        assert round_mpf(mpf(largest_sub) + mpf(f.min_subnormal) / 2, f) == f.tiny  # tie -> even
        # half the smallest subnormal is a tie with zero -> +0 / -0; above it -> min subnormal
        assert round_mpf(mpf(f.min_subnormal) / 2, f) == 0.0
        assert math.copysign(1, round_mpf(-mpf(f.min_subnormal) / 2, f)) == -1
        assert round_mpf(mpf(f.min_subnormal) / 2 + mpf(2) ** -3500, f) == f.min_subnormal
        # overflow threshold: max + half ulp rounds to inf, just below stays max
        thr = mpf(f.max) + mpf(2) ** (f.emax - p)
        assert round_mpf(thr, f) == math.inf
        assert round_mpf(thr - mpf(2) ** -100, f) == f.max
        assert round_mpf(-thr, f) == -math.inf
    assert math.isnan(round_mpf(mpmath.mpf("nan"), f))
    assert round_mpf(mpmath.mpf("-inf"), f) == -math.inf
    assert round_mpf(0, f) == 0.0


@pytest.mark.parametrize("name", FORMATS)
def test_round_array_matches_exact_rounding(name):
    f = formats.get_format(name)
    rng = np.random.default_rng(1)
    with np.errstate(over="ignore"):
        x = rng.standard_normal(3000) * np.exp2(rng.integers(-1080, 1030, 3000).astype(float))
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, np.nan, f.max, -f.max, f.tiny,
                            f.min_subnormal, f.min_subnormal / 2, 1 + f.eps, 1 + 3 * f.eps]])
    got = round_array(x, f)
    want = np.array([round_mpf(v, f) for v in x])
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
    if name != "bfloat16":  # NumPy's own casts are correctly rounded: a second opinion
        with np.errstate(over="ignore"):
            assert np.array_equal(got, x.astype(f.dtype).astype(np.float64), equal_nan=True)


def test_bfloat16_without_ml_dtypes(monkeypatch):
    monkeypatch.setattr(formats, "_ml_dtypes", None)
    f = formats.get_format("bfloat16")
    assert f.dtype == np.float32
    out = formats.to_format_array(np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 3.4e38]), f)
    assert out.dtype == np.float32
    assert out.tolist() == [1.0, 1 + 2.0 ** -6, math.inf]


def test_ulp_and_ulp_error_rules():
    f32 = formats.FLOAT32
    assert ulp(1.0, f32) == 2.0 ** -23
    with mpmath.workprec(200):
        below_one = mpmath.mpf(1) - mpmath.mpf(2) ** -80
    assert ulp(below_one, f32) == 2.0 ** -24  # the binade of the exact value, not of its rounding
    assert ulp(0.0, f32) == f32.min_subnormal == ulp(1e-45, f32)
    assert ulp_error(1.0, exact(1) + exact(2) ** -24, f32) == 0.5
    assert ulp_error(math.nan, mpmath.mpf("nan"), f32) == 0
    assert ulp_error(1.0, mpmath.mpf("nan"), f32) == math.inf
    assert ulp_error(math.nan, 1, f32) == math.inf
    assert ulp_error(math.inf, exact(f32.max) * 2, f32) == 0  # exact overflows: inf is right
    assert ulp_error(f32.max, exact(f32.max) * 2, f32) == math.inf
    assert ulp_error(math.inf, 1, f32) == math.inf
    assert ulp_error(-0.0, 0, f32) == 0
    assert ulp_error(f32.min_subnormal, 0, f32) == 1


@pytest.mark.parametrize("name", FORMATS)
def test_ulp_steps(name):
    f = formats.get_format(name)
    assert ulp_steps(1.0, 1.0 + 2 * 2.0 ** (1 - f.precision), f) == 2
    assert ulp_steps(-f.min_subnormal, f.min_subnormal, f) == 2
    assert ulp_steps(f.tiny - f.min_subnormal, f.tiny, f) == 1
    assert ulp_steps(f.max, f.max, f) == 0
    with pytest.raises(ValueError, match="not a finite"):
        ulp_steps(math.inf, 1.0, f)
    if f.precision < 53:
        with pytest.raises(ValueError, match="not a finite"):
            ulp_steps(1.0 + 2.0 ** -f.precision, 1.0, f)


@pytest.mark.parametrize("name", FORMATS)
def test_hex_roundtrip(name):
    f = formats.get_format(name)
    for v in [0.0, -0.0, 1.0, f.max, f.min_subnormal, -f.tiny, math.inf]:
        assert formats.from_hex(formats.to_hex(v), f) == v
    assert formats.to_hex(np.float32(0.1)) == "0x1.99999a0000000p-4"
    with pytest.raises(ValueError, match="not exactly representable"):
        formats.from_hex((1 + 2.0 ** -30).hex(), "float16")


def test_get_format_errors():
    assert formats.get_format(np.float16) is formats.FLOAT16
    with pytest.raises(TypeError, match="not supported"):
        formats.get_format("float128")


def test_round_far_below_the_least_subnormal_is_zero():
    with mpmath.workprec(100):
        tiny = mpmath.exp(-mpmath.mpf(3.4e38))  # exponent about -4.9e38: no shift table fits
    for name in FORMATS:
        assert round_mpf(tiny, name) == 0.0
        assert math.copysign(1, round_mpf(-tiny, name)) == -1
