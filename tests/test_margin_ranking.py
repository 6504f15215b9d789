"""margin_ranking: reference against oracle (spec/losses/margin_ranking.md budgets), the oracle
against exact rational arithmetic, and the torch dialect against torch 2.13."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from tests.support import (FORMATS, assert_close_to_torch, assert_ulps, assert_within, call_torch, from_torch,
                           in_format, representable, to_torch)

U64 = 2.0 ** -53
L = lossref.get("margin_ranking")
NAN, INF = math.nan, math.inf


def cast(values, fmt):
    return in_format(representable(values, fmt), fmt)


def margins(fmt):
    """Margins for the accuracy tests: 0, ±1, 0.5, 0.1 (no binary format holds it; the
    catalogue takes the float64 value exactly), and the format's least subnormal."""
    return [0.0, 0.5, -1.0, 0.1, formats.get_format(fmt).min_subnormal]


def rows(fmt, margin):
    """(y, x1, x2) rows of 4: ±0, subnormals, x1 ≈ x2, margin cancelling y (x1 - x2), huge
    values (x1 - x2 and y (x1 - x2) past the largest finite value), labels 0, 0.5, 2, 3, NaN,
    ±inf and NaN inputs, random magnitudes."""
    f = formats.get_format(fmt)
    e, sub, tiny, big = f.eps, f.min_subnormal, f.tiny, f.max
    m = float(representable(margin, f))  # the margin as the format holds it, for near-cancellation
    r = [
        ([1, -1, 1, -1], [0, -0.0, 0, -0.0], [-0.0, 0, 0, -0.0]),                     # signed zeros
        ([1, -1, 1, -1], [sub, 2 * sub, -sub, tiny], [0, sub, sub, tiny - sub]),       # subnormals
        ([1, -1, -1, 1], [1, 1 + 2 * e, 3, -2], [1 + 2 * e, 1, 3 * (1 + 2 * e), -2 * (1 - e)]),  # x1 ≈ x2
        # -y (x1 - x2) within a few ulps of -m: the margin cancels (m = 0: plain near-ties)
        ([1, 1, -1, -1], [m + 1 - e, m + 1 + e, 1, 1], [1, 1, m + 1 - e, m + 1 + e]),
        ([1, -1, 1, -1], [3 * m + 2 - 4 * e, 0.75, 2, 2.5 * m + 3 * (1 - e)], [2 * m + 2, m + 0.75, 2 - m, 1.5 * m + 3]),
        ([1, -1, 0.5, 2], [big, -big, big, big / 2], [-big, big, -big / 2, -big]),     # x1 - x2 overflows
        ([-2, 3, 2, -0.5], [big / 2, big / 4, big, big], [-big / 4, -big / 8, 0, -big]),  # the product overflows
        ([0, 0.5, 2, 3], [0.7, -1.25, 2.5, 1 / 3], [0.1, 0.5, 3, 0]),                 # other labels
        ([sub, big, 1 / 3, 1e-3], [1, sub, 3, 1000], [big, 0, 1, 999]),               # extreme labels
        ([1, 0, -1, -1], [INF, INF, -INF, 1], [INF, 0, 0, INF]),                     # NaN, NaN, inf... per IEEE
        ([1, -1, 1, 1], [INF, INF, -INF, -INF], [0, 0, 0, 5]),
        ([NAN, 1, 1, 0], [1, NAN, 1, 1], [1, 1, NAN, 1]),
    ]
    rng = np.random.default_rng(5)
    for _ in range(4):
        x1 = rng.standard_normal(4) * np.exp(rng.uniform(-8, 8, 4))
        r.append((np.where(rng.random(4) < 0.5, -1.0, 1.0).tolist(), x1.tolist(),
                  (x1 * (1 + rng.standard_normal(4) * np.exp(rng.uniform(-20, 0, 4)))).tolist()))
    return tuple(cast([row[k] for row in r], f) for k in range(3))


def frac(v) -> Fraction:
    return Fraction(float(v))


def rounded(v: Fraction, fmt) -> float:
    """Correct rounding of an exact rational into `fmt`."""
    with mpmath.workprec(6000):  # dyadic rationals of these inputs are exact at this precision
        return formats.round_mpf(mpmath.mpf(v.numerator) / v.denominator, fmt)


def independent(y, x1, x2, m) -> Fraction:
    """``max(0, m - y (x1 - x2))`` in exact rational arithmetic (finite inputs)."""
    return max(Fraction(0), frac(m) - frac(y) * (frac(x1) - frac(x2)))


# --- catalogue ---------------------------------------------------------------------------------


def test_registered():
    assert "margin_ranking" in lossref.names()
    assert L.stage2 == "mean" and L.separable
    assert L.bind({}) == {"x2": 0.0, "margin": 0.0}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k", range(5))
def test_reference_against_oracle(fmt, k):
    margin = margins(fmt)[k]
    y, x1, x2 = rows(fmt, margin)
    kw = dict(x2=x2, margin=margin)
    elem, ex = L.elementwise(y, x1, **kw), L.elementwise.exact(y, x1, **kw)
    # stage 1: one rounding of an about once rounded float64 value (page: 1 ulp every format)
    assert_ulps(elem, ex, fmt, 1, f"margin_ranking elementwise margin={margin}")
    # stage 2: a mean of nonnegative terms (no cancellation): the page's bound with D = 4
    per, exs = L.per_sample(y, x1, **kw), L.exact(y, x1, **kw)
    base = 0.5 if fmt == "float64" else 1.0
    vals = exs.round(fmt)  # decides the precision; the bound is relative to the exact mean itself
    mean = np.asarray(exs.values(exs.final_prec), dtype=object)
    terms = np.array([abs(v) if mpmath.isfinite(v) else 0 for v in mean], dtype=object)
    assert_within(per, exs, fmt, base, terms, (2 + 2) * U64, what="margin_ranking per sample")
    assert vals.shape == per.shape


def test_narrow_formats_half_ulp():
    """float32 and narrower: computed in float64 and rounded once, so within 1/2 ulp of the
    exact value plus the float64 error (measured: 0.5)."""
    for fmt in ("float16", "bfloat16", "float32"):
        for margin in margins(fmt):
            y, x1, x2 = rows(fmt, margin)
            ex = L.elementwise.exact(y, x1, x2=x2, margin=margin)
            assert_ulps(L.elementwise(y, x1, x2=x2, margin=margin), ex, fmt, 0.5 + 2.0 ** -20, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_oracle_against_exact_rationals(fmt):
    for margin in margins(fmt):
        y, x1, x2 = rows(fmt, margin)
        for i in range(y.shape[0]):  # row by row: each row's own magnitudes set the first precision
            if not all(np.isfinite(a[i]).all() for a in (y, x1, x2)):
                continue
            got = L.elementwise.exact(y[i:i + 1], x1[i:i + 1], x2=x2[i:i + 1], margin=margin).round(fmt)
            want = [rounded(independent(*v, margin), fmt) for v in zip(y[i], x1[i], x2[i])]
            assert np.asarray(got, np.float64).ravel().tolist() == want, (fmt, margin, i)


def test_tie_needs_every_exponent():
    """``1 + 2^-53 + 2^-1074``: above the tie, so it rounds up; a working precision that
    ignored the margin's (or x2's) exponent would see the tie and round to even."""
    y, x1 = np.array([[1.0]]), np.array([[-1.0]])
    want = 1 + 2.0 ** -52
    assert L.elementwise.exact(y, x1, x2=np.array([[2.0 ** -53]]), margin=2.0 ** -1074).round().item() == want
    assert L.elementwise.exact(y, x1, x2=2.0 ** -1074, margin=2.0 ** -53).round().item() == want
    # the reference: within an ulp (the float64 tie is where its last rounding may go the other way)
    got = L.elementwise(y, x1, x2=np.array([[2.0 ** -53]]), margin=2.0 ** -1074).item()
    assert got in (1.0, want)


def test_cancellation_keeps_the_low_bits():
    """``m - y (x1 - x2)`` far below its terms: exact here, where the literal float64 formula
    gives 0 (x1 - x2 rounds to one operand, or the product rounds)."""
    e = 2.0 ** -52
    cases = [  # (y, x1, x2, margin, exact value)
        (1.0, 1.0, 2.0 ** -60, 1.0, 2.0 ** -60),
        (-1.0, 2.0 ** -60, 1.0, 1.0, 2.0 ** -60),
        (3.0, 1 / 3, 0.0, 1.0, 2.0 ** -54),                     # 1 - 3 fl(1/3)
        (-(1 + e), 1 + e, 0.0, -(1 + 2 * e), 2.0 ** -104),      # (1 + e)^2 - (1 + 2e)
    ]
    for y, x1, x2, m, want in cases:
        a = [np.array([[v]]) for v in (y, x1, x2)]
        assert rounded(independent(y, x1, x2, m), "float64") == want
        assert L.elementwise(a[0], a[1], x2=a[2], margin=m).item() == want
        assert L.elementwise.exact(a[0], a[1], x2=a[2], margin=m).round().item() == want
        assert max(m - y * (x1 - x2), 0.0) == 0.0  # the literal formula


def test_special_values():
    inf_rows = L.elementwise(np.array([[1.0, 0.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0]]),
                             np.array([[INF, INF, -INF, 1.0, INF, INF, -INF, -INF]]),
                             x2=np.array([[INF, 0.0, 0.0, INF, 0.0, 0.0, 0.0, 5.0]]), margin=0.5)[0]
    # inf - inf, 0 inf: NaN; -(-1)(-inf) + m = -inf: 0; (1 - inf) + m: 0 ... per IEEE of the definition
    assert np.isnan(inf_rows[:2]).all()
    assert inf_rows[2:].tolist() == [0.0, 0.0, 0.0, INF, INF, INF]
    nan_rows = L.elementwise(np.array([[NAN, 1.0, 1.0]]), np.array([[1.0, NAN, 1.0]]),
                             x2=np.array([[1.0, 1.0, NAN]]))
    assert np.isnan(nan_rows).all()
    z = L.elementwise(np.array([[1.0, -1.0]]), np.array([[0.0, -0.0]]), x2=np.array([[-0.0, 0.0]]), margin=-0.0)
    assert z.tolist() == [[0.0, 0.0]] and not np.signbit(z).any()  # exact zero: +0
    big = np.finfo(np.float64).max
    # finite exact values past intermediate overflows: x1 - x2 = 2 big, y (x1 - x2) = 1.5 big
    y, x1, x2 = np.array([[0.25, -2.0, 2.0]]), np.array([[big, big * 0.75, big * 0.75]]), np.array([[-big, 0.0, 0.0]])
    v = L.elementwise(y, x1, x2=x2, margin=-big)[0]
    want = [rounded(independent(*a, -big), "float64") for a in zip(y[0], x1[0], x2[0])]
    assert v.tolist() == want and want[0] == want[2] == 0.0 and 0.49 * big < want[1] < 0.51 * big
    assert np.isnan(L.per_sample(np.zeros((2, 0)), np.zeros((2, 0)))).all()  # D = 0: mean of nothing


def test_x2_broadcasting_and_blocks():
    rng = np.random.default_rng(1)
    y = np.where(rng.random((3, 30000, 3)) < 0.5, -1.0, 1.0)
    x1 = rng.standard_normal((3, 30000, 3))
    for shape in [(3, 30000, 3), (3, 1, 3), (1, 30000, 1), (3,), ()]:
        x2 = rng.standard_normal(shape)
        per = L.per_sample(y, x1, x2=x2, margin=0.25)
        whole = L.elementwise(y, x1, x2=x2, margin=0.25).mean(-1)  # unblocked
        np.testing.assert_allclose(per, whole, rtol=1e-15)
        plain = np.maximum(0.25 - y * (x1 - x2), 0.0).mean(-1)  # ordinary inputs: the literal formula
        np.testing.assert_allclose(per, plain, rtol=1e-12, atol=1e-15)
        assert per.shape == (3, 30000)
    x2 = rng.standard_normal((3, 30000, 1)).astype(np.float32)
    assert np.array_equal(L.per_sample(y[:, :7], x1[:, :7], x2=x2[:, :7]),
                          np.stack([L.per_sample(y[i, :7], x1[i, :7], x2=x2[i, :7]) for i in range(3)]))
    for bad in (np.ones((3, 30000, 3, 1)), np.ones(2), np.ones((2, 1, 1))):
        with pytest.raises(ValueError, match="does not broadcast"):
            L.per_sample(y, x1, x2=bad)


@pytest.mark.parametrize("kw,match", [({"margin": INF}, "finite"), ({"margin": NAN}, "finite"),
                                      ({"margin": "a"}, "finite"), ({"x2": True}, "bool"),
                                      ({"x2": np.array(["a"])}, "real"), ({"scale": 1.0}, "unknown")])
def test_parameter_errors(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        L.per_sample(np.zeros((1, 2)), np.zeros((1, 2)), **kw)


# --- torch ------------------------------------------------------------------------------------------


def torch_mod():
    return pytest.importorskip("torch")


def _nn():
    from lossref.torch import nn
    return nn


def test_dialect_does_not_import_torch():
    code = ("import sys, numpy as np; from lossref.torch.nn import functional as F, MarginRankingLoss; "
            "F.margin_ranking_loss(np.zeros(2), np.ones(2), np.ones(2)); MarginRankingLoss()(np.zeros(2), "
            "np.ones(2), np.ones(2)); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _pairs(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x1 = (rng.standard_normal(shape) * 2).astype(dtype)
    x2 = rng.standard_normal(shape).astype(dtype)
    y = np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(dtype)
    return x1, x2, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("margin", [0, 0.5, -1.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_against_torch(dtype, margin, reduction):
    torch = torch_mod()
    nn = _nn()
    x1, x2, y = _pairs(dtype, (5, 6), 11)
    got = nn.functional.margin_ranking_loss(x1, x2, y, margin=margin, reduction=reduction)
    want = call_torch(torch.nn.functional.margin_ranking_loss, x1, x2, y, margin=margin, reduction=reduction)
    assert got.dtype == want.dtype and got.shape == want.shape
    # torch rounds x1 - x2, the product and + margin; 'sum'/'mean' add its summation error
    scale = np.abs(x1 - x2).astype(np.float64).sum() + abs(margin) * x1.size
    assert_close_to_torch(got, want, scale, dtype, 4, f"{reduction} margin={margin}")
    ex = nn.functional.margin_ranking_loss.exact(x1, x2, y, margin=margin, reduction=reduction)
    assert isinstance(ex, lossref.Exact)
    assert_close_to_torch(ex.round(), want, scale, dtype, 4, "exact")
    if dtype == "float32" or reduction == "none":  # one rounding of a float64 value (elementwise: exact)
        assert np.array_equal(ex.round(), got)
    else:  # the float64 sum's own roundoff
        assert_close_to_torch(ex.round(), got, scale, dtype, 2, "ours vs exact")
    mod = nn.MarginRankingLoss(margin=margin, reduction=reduction)
    assert np.array_equal(mod(x1, x2, y), got)
    assert np.array_equal(mod.exact(x1, x2, y).round(), ex.round())
    tmod = torch.nn.MarginRankingLoss(margin=margin, reduction=reduction)
    assert np.array_equal(from_torch(tmod(*map(to_torch, (x1, x2, y)))), want)


def test_typical_values_within_ulps_of_torch():
    torch = torch_mod()
    F = _nn().functional
    for dtype in ("float32", "float64"):
        x1, x2, y = _pairs(dtype, (64,), 3)
        y[::7] = np.array(0.5, dtype)  # a label other than ±1
        want = call_torch(torch.nn.functional.margin_ranking_loss, x1, x2, y, margin=0.5, reduction="none")
        got = F.margin_ranking_loss.exact(x1, x2, y, margin=0.5, reduction="none").round()
        steps = [formats.ulp_steps(float(a), float(b), dtype) for a, b in zip(got, want)]
        # torch rounds x1 - x2 and y (x1 - x2) before adding the margin: a few ulps where they cancel
        assert max(steps) <= 4 and np.count_nonzero(steps) < len(steps) // 2, steps


@pytest.mark.filterwarnings("ignore:size_average and reduce args")
def test_broadcasting_and_legacy_arguments():
    torch = torch_mod()
    nn = _nn()
    rng = np.random.default_rng(2)
    x1 = rng.standard_normal((3, 1)).astype(np.float32)
    x2 = rng.standard_normal((1, 4)).astype(np.float32)
    y = np.array([[1, -1, 1, -1]], np.float32)
    for kw in ({"reduction": "none"}, {"size_average": False}, {"reduce": False}, {"size_average": True},
               {"reduce": True, "size_average": False}, {"reduction": "sum", "reduce": False}):
        got = nn.functional.margin_ranking_loss(x1, x2, y, 0.25, **kw)
        want = call_torch(torch.nn.functional.margin_ranking_loss, x1, x2, y, 0.25, **kw)
        assert got.shape == want.shape and got.dtype == want.dtype, kw
        assert_close_to_torch(got, want, 12.0, "float32", 4, str(kw))
        mod = nn.MarginRankingLoss(0.25, kw.get("size_average"), kw.get("reduce"), kw.get("reduction", "mean"))
        assert np.array_equal(mod(x1, x2, y), got)
    assert nn.functional.margin_ranking_loss(x1, x2, y, reduction="none").shape == (3, 4)
    # 0-dim tensors: all three, as torch's dims check asks
    z = nn.functional.margin_ranking_loss(np.float64(1.0), np.float64(2.0), np.float64(1.0), margin=0.5)
    assert z.shape == () and z.dtype == np.float64 and z == 1.5


def test_signature_as_torch():
    import inspect
    torch = torch_mod()
    nn = _nn()
    ours = inspect.signature(nn.functional.margin_ranking_loss)
    theirs = inspect.signature(torch.nn.functional.margin_ranking_loss)
    assert list(ours.parameters) == list(theirs.parameters)
    assert [p.default for p in ours.parameters.values()] == [p.default for p in theirs.parameters.values()]
    ours = inspect.signature(nn.MarginRankingLoss.__init__)
    theirs = inspect.signature(torch.nn.MarginRankingLoss.__init__)
    assert [(p.name, p.default) for p in ours.parameters.values()] == \
        [(p.name, p.default) for p in theirs.parameters.values()]


def test_margin_rounded_to_the_result_dtype_as_torch():
    """``x1 = 0, x2 = h`` (half an ulp of 1), ``y = 1``, ``margin = 1 + h/4``: torch gives
    exactly 1 in every format: the margin rounded to the dtype (to 1), then ``1 + h``, a tie
    (to even: 1). The float64 margin would give ``1 + 2h``."""
    torch = torch_mod()
    F = _nn().functional
    for name in FORMATS:
        f = formats.get_format(name)
        h = f.eps / 2
        x1, x2, y = (in_format(np.array([v]), f) for v in (0.0, h, 1.0))
        want = call_torch(torch.nn.functional.margin_ranking_loss, x1, x2, y, margin=1 + h / 4, reduction="none")
        got = F.margin_ranking_loss(x1, x2, y, margin=1 + h / 4, reduction="none")
        assert got.dtype == f.dtype and float(want[0]) == float(got[0]) == 1.0, name
        assert float(F.margin_ranking_loss.exact(x1, x2, y, margin=1 + h / 4, reduction="none").round()[0]) == 1.0
    # a margin past the format's range: inf, as torch (float32 1e300)
    ones = np.ones(2, np.float32)
    assert np.isinf(F.margin_ranking_loss(ones, ones, ones, margin=1e300)).all()
    assert np.isinf(call_torch(torch.nn.functional.margin_ranking_loss, ones, ones, ones, margin=1e300))


@pytest.mark.parametrize("a,b,c,want", [("float16", "float16", "float64", "float64"),
                                        ("float16", "bfloat16", "float16", "float32"),
                                        ("float32", "float64", "float32", "float64"),
                                        ("int64", "int64", "int64", "float32"),
                                        ("float16", "float16", "int64", "float16"),
                                        ("int32", "float64", "int8", "float64")])
def test_result_dtype_as_torch(a, b, c, want):
    torch = torch_mod()
    F = _nn().functional
    arrays = [in_format(np.array([1.0, 2.0, 3.0]), t) if t in FORMATS else np.array([1, 2, 3], t)
              for t in (a, b, c)]
    arrays[2] = arrays[2] * 0 + np.array([1, -1, 1]).astype(arrays[2].dtype)
    got = F.margin_ranking_loss(*arrays, margin=0.5)
    theirs = call_torch(torch.nn.functional.margin_ranking_loss, *arrays, margin=0.5)
    assert str(got.dtype) == str(theirs.dtype) == want
    assert float(got) == float(theirs)


def _both_raise(call_ours, call_torch_, exc):
    with pytest.raises(exc) as ours:
        call_ours()
    with pytest.raises(exc):
        call_torch_()
    return str(ours.value)


def test_errors_as_torch():
    torch = torch_mod()
    F = _nn().functional
    tf = torch.nn.functional.margin_ranking_loss
    x = np.ones(3, np.float32)

    def both(exc, *arrays, **kw):
        return _both_raise(lambda: F.margin_ranking_loss(*arrays, **kw),
                           lambda: tf(*map(to_torch, arrays), **kw), exc)

    msg = both(RuntimeError, x, x, np.float32(1.0))  # dims: checked before broadcasting
    assert "same number of dimensions" in msg and "(3,)" in msg
    both(RuntimeError, x[None], x, x)
    assert "must match" in both(RuntimeError, x, x[:2], x)
    assert "not a valid value" in both(ValueError, x, x, x, reduction="avg")
    both(ValueError, x, x, x, reduction=None)
    assert "bool" in both(RuntimeError, x, x, x.astype(bool))
    assert "bool" in both(RuntimeError, x.astype(bool), x, x)
    assert "bool" in both(RuntimeError, x.astype(bool), x.astype(bool), x.astype(bool))
    for bad in ("a", None, [0.5], 1j, np.array([0.5])):
        assert "margin" in both(TypeError, x, x, x, margin=bad)
    both(OverflowError, x, x, x, margin=10 ** 400)
    # accepted by both: bools, NumPy numbers, inf and NaN margins; integer tensors (float32 result)
    for ok in (True, np.float32(0.5), np.int64(2), INF, NAN):
        got = F.margin_ranking_loss(x, x, x, margin=ok, reduction="none")
        assert np.array_equal(got, call_torch(tf, x, x, x, margin=ok, reduction="none"), equal_nan=True)
    # the errors are also the ValueError/TypeError lossref promises
    with pytest.raises(ValueError):
        F.margin_ranking_loss(x, x, np.float32(1.0))
    with pytest.raises(TypeError):
        F.margin_ranking_loss(x, x, x.astype(bool))
