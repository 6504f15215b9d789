"""The Ziv loop, exact conversion and Exact's outputs."""

import math

import mpmath
import numpy as np
import pytest

import lossref
from lossref import oracle
from lossref.oracle import Exact, OracleError, start_precision, to_exact
from lossref.oracle import ops as xops


def test_to_exact_is_exact_for_every_format():
    x = np.array([0.1, 1e-310, -3.4e38, 2.0 ** -1074], dtype=np.float64)
    e = to_exact(x)
    with mpmath.workprec(2000):
        for a, b in zip(x, e):
            assert mpmath.mpf(a.hex() and float(a)) == b
    assert to_exact(np.float16(0.1).reshape(())).item() == mpmath.mpf(float(np.float16(0.1)))
    with pytest.raises(TypeError):
        to_exact(np.array(["a"]))


def test_representable_value_is_decided_at_the_first_comparison():
    e = Exact(lambda: np.array([mpmath.mpf(3) / 4, mpmath.mpf(-0.5)], dtype=object), start_prec=64)
    assert e.round("float16").tolist() == [0.75, -0.5]
    assert e.final_prec == 128
    assert e.decimal(5).tolist() == ["7.5000e-1", "-5.0000e-1"]


def test_near_boundary_value_needs_more_precision():
    # 1 + 2^-24 + e^-60 lies 2^-86.6 above the float32 tie point 1 + 2^-24: at 64 bits
    # the sum rounds onto the tie (-> 1.0 by ties-to-even), from 128 bits it rounds up.
    e = Exact(lambda: mpmath.mpf(1) + mpmath.mpf(2) ** -24 + mpmath.exp(-60), start_prec=64)
    assert float(e.round("float32")) == 1.0 + 2.0 ** -23
    assert e.final_prec == 256


def test_cap_raises_naming_the_case(monkeypatch):
    monkeypatch.setattr(oracle, "MAX_PRECISION", 2048)

    def flip():  # a value whose rounding changes at every precision: never decided
        sign = 1 if int(math.log2(mpmath.mp.prec)) % 2 else -1
        return mpmath.mpf(1) + mpmath.mpf(2) ** -24 + sign * mpmath.mpf(2) ** -(mpmath.mp.prec - 8)

    with pytest.raises(OracleError, match=r"my-case: rounding to float32 not decided"):
        Exact(flip, start_prec=64, label="my-case").round("float32")


def test_start_precision_grows_with_exponent_range():
    assert start_precision(np.array([1.0, 2.0])) == 64 + 2 * 2
    assert start_precision(np.array([0.0, 1e-300, np.inf])) >= 64 + 2 * 996
    # the cancellation it exists for: log cosh of a tiny residual is e^2/2, not 0
    L = lossref.get("log_cosh")
    y = np.array([[1e-200]])
    assert float(L.exact(y * 1e50, np.zeros_like(y)).round()[0]) == pytest.approx(5e-301, rel=1e-15)


def test_special_values_through_ops():
    nan = xops.NAN
    assert mpmath.isnan(xops.log(np.array([-1], dtype=object))[0])
    assert xops.log(np.array([0], dtype=object))[0] == -xops.INF
    assert xops.div(np.array([1, -1, 0], dtype=object), 0).tolist()[:2] == [xops.INF, -xops.INF]
    assert mpmath.isnan(xops.div(0, 0).item())
    assert mpmath.isnan(xops.maximum(np.array([nan], dtype=object), 1)[0])
    assert mpmath.isnan(xops.mean(np.empty((2, 0), dtype=object), -1)[0])
    assert mpmath.isnan(xops.fsum(np.array([xops.INF, -xops.INF], dtype=object)).item())


def test_round_outputs_and_decimal():
    L = lossref.get("mean_squared_error")
    e = L.exact(np.array([[0.1, 0.2]], np.float32), np.array([[0.0, 0.0]], np.float32))
    assert e.shape == (1,) and e.dtype.name == "float32"
    r = e.round()
    assert r.dtype == np.float32
    # exact mean of squares of the float32 values of 0.1 and 0.2, by rational arithmetic
    from fractions import Fraction as F
    q = (F(float(np.float32(0.1))) ** 2 + F(float(np.float32(0.2))) ** 2) / 2
    import decimal
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        d = decimal.Decimal(q.numerator) / decimal.Decimal(q.denominator)
    digits, exp = d.as_tuple().digits, d.adjusted()
    want = f"{digits[0]}." + "".join(map(str, digits[1:])) + f"e{exp:+d}"
    assert e.decimal(40)[0] == want
    assert float(r[0]) == float(np.float32(float(q)))
    assert e.round("bfloat16").dtype.name in ("bfloat16", "float32")
    assert math.isfinite(float(e.round("float16")[0]))
