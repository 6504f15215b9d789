"""The compensated sum against exact rational sums, on rows built to break it.

``sum2_parts`` promises ``|hi + lo - S| <= u**2 |S| + 2 (ceil(log2 n) u)**2 sum|x|`` for the
exact sum ``S`` of the row (and of `lo`, when given). Rows shorter than 256 terms take the
pairwise cascade, longer ones the extraction: both are exercised at and around the switch.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from lossref.numerics import _EXTRACT_MIN, sum2_parts

from .support import ulp_errors

U = Fraction(1, 2 ** 53)


def _exact(row) -> Fraction:
    return sum((Fraction(float(v)) for v in row), Fraction(0))


def _check(x: np.ndarray, lo=None):
    hi, low = sum2_parts(x, lo=lo)
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    lows = None if lo is None else lo.reshape(-1, n)
    for i, row in enumerate(rows):
        terms = list(row) + ([] if lows is None else list(lows[i]))
        s = _exact(terms)
        mag = _exact(np.abs(terms))
        got = Fraction(float(np.ravel(hi)[i])) + Fraction(float(np.ravel(low)[i]))
        bound = U ** 2 * abs(s) + 2 * (math.ceil(math.log2(max(len(terms), 2))) * U) ** 2 * mag
        assert abs(got - s) <= bound, (i, float(got - s), float(bound))
        assert float(got) == float(np.ravel(hi)[i])  # hi is hi + lo rounded: |lo| <= ulp(hi) / 2


def _adversarial(rng, rows, n, spread):
    """Rows of mixed signs and exponents over `spread` binades, with planted cancellations."""
    x = rng.standard_normal((rows, n)) * np.ldexp(1.0, rng.integers(-spread, spread + 1, (rows, n)))
    x[:, 1::3] = -x[:, 0:-1:3][:, : x[:, 1::3].shape[1]]  # exact cancelling partners
    x[:, 2::7] *= 2.0 ** -60  # tiny terms that survive only in lo
    return x


@pytest.mark.parametrize("n", [1, 2, 3, 17, _EXTRACT_MIN - 1, _EXTRACT_MIN, _EXTRACT_MIN + 1, 1000, 4099])
@pytest.mark.parametrize("spread", [0, 40, 600])
def test_sum2_parts_meets_its_bound(n, spread):
    rng = np.random.default_rng(n * 1000 + spread)
    _check(_adversarial(rng, 6, n, spread))


@pytest.mark.parametrize("n", [5, _EXTRACT_MIN + 3])
def test_sum2_parts_with_low_parts(n):
    rng = np.random.default_rng(n)
    x = _adversarial(rng, 4, n, 30)
    lo = x * 2.0 ** -55 * rng.standard_normal(x.shape)
    _check(x, lo)


@pytest.mark.parametrize("n", [7, _EXTRACT_MIN * 2])
def test_sum2_parts_near_overflow_and_in_the_subnormals(n):
    rng = np.random.default_rng(5)
    # sum|x| just below the largest float: no partial sum can overflow
    big = rng.random((3, n)) * (1.7e308 / n) * np.where(rng.random((3, n)) < 0.5, -1, 1)
    big[0] = np.abs(big[0])
    _check(big)
    over = np.full((1, n), 1.7e308)  # an exact sum beyond the range: not finite
    assert not np.isfinite(sum2_parts(over)[0][0])
    tiny = rng.integers(-2 ** 20, 2 ** 20, (3, n)) * 5e-324
    _check(tiny)


def test_rows_of_very_different_magnitude_in_one_block():
    rng = np.random.default_rng(9)
    x = _adversarial(rng, 4, _EXTRACT_MIN * 2, 10)
    x[1] *= 2.0 ** -900
    x[2] *= 2.0 ** 900
    x[3] = 0.0
    _check(x)


def test_non_finite_rows_give_the_plain_sum():
    x = np.ones((3, _EXTRACT_MIN + 1))
    x[0, 5] = np.inf
    x[1, 7] = np.nan
    x[2, :2] = [np.inf, -np.inf]
    hi, lo = sum2_parts(x)
    assert hi[0] == np.inf and np.isnan(hi[1]) and np.isnan(hi[2])
    assert np.all(lo == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_product_is_exact(dtype):
    """Both paths (float32-valued factors, whose product float64 holds, and Dekker's split)."""
    from lossref.numerics import two_product

    rng = np.random.default_rng(11)
    a = (rng.standard_normal(500) * np.ldexp(1.0, rng.integers(-60, 60, 500))).astype(dtype)
    b = (rng.standard_normal(500) * np.ldexp(1.0, rng.integers(-60, 60, 500))).astype(dtype)
    a[:3] = [np.float32(1.4e-45), np.float32(3.4e38), -0.0]
    h, lo = two_product(a.astype(np.float64), b.astype(np.float64))
    for ai, bi, hi, li in zip(a, b, h, lo):
        assert Fraction(float(hi)) + Fraction(float(li)) == Fraction(float(ai)) * Fraction(float(bi))


def test_float32_value_test():
    from lossref.numerics import _in_float32

    f32 = np.array([1.0, np.nan, np.inf, -np.inf, -0.0, float(np.float32(1e-45)), float(np.float32(3.4e38))])
    assert _in_float32(f32)
    for v in (0.1, 1e39, 1e-46, 1 + 2.0 ** -30):
        assert not _in_float32(np.append(f32, v))


def _ulps(got, want):
    return ulp_errors(got, np.asarray(want, dtype=object), "float64").max()


def test_log1p_diff_and_log_ratio_against_mpmath():
    """Pairs near each other, far apart at every scale (logs within a factor of two, where
    log1p((a - b) / (1 + b)) would near log1p(-1)), and quotients past float64's range."""
    import mpmath

    from lossref.numerics import log1p_diff, log_ratio

    rng = np.random.default_rng(4)
    a = np.exp(rng.uniform(-700, 700, 400))
    b = np.concatenate([a[:100] * (1 + rng.standard_normal(100) * 1e-9), a[100:200] * np.exp(rng.uniform(-40, 40, 100)),
                        rng.random(100), np.exp(rng.uniform(-700, 700, 100))])
    with mpmath.workprec(400):
        want_d = [mpmath.log1p(mpmath.mpf(x)) - mpmath.log1p(mpmath.mpf(y)) for x, y in zip(a, b)]
        want_r = [mpmath.log(mpmath.mpf(x) / mpmath.mpf(y)) for x, y in zip(a, b)]
    assert _ulps(log1p_diff(a, b), want_d) <= 2
    assert _ulps(log_ratio(a, b), want_r) <= 2
    assert _ulps(log_ratio(-a, -b), want_r) <= 2
    with mpmath.workprec(200):  # a quotient past float64's range: the logs are subtracted
        want = [mpmath.log1p(mpmath.mpf(1.7e308)) - mpmath.log1p(mpmath.mpf(-0.5))]
    assert _ulps(log1p_diff(np.array([1.7e308]), np.array([-0.5])), want) <= 2


def test_xmul_zero_weights_and_signed_zeros():
    """0 * v is +0 for every non-NaN v (inf included); no product comes out as -0, which
    the cross-entropies rely on to sum their terms without a sign fix."""
    from lossref.numerics import xmul

    w = np.array([0.0, 0.0, -0.0, 1.0, -1.0, 0.0, 2.0, np.nan])
    v = np.array([-5.0, -np.inf, np.inf, -0.0, 0.0, np.nan, np.inf, 1.0])
    out = xmul(w, v)
    assert np.array_equal(out[:5], np.zeros(5)) and not np.any(np.signbit(out[:5]))
    assert np.isnan(out[5]) and out[6] == np.inf and np.isnan(out[7])
