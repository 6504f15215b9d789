"""triplet_margin: the catalogue loss and PyTorch's triplet_margin_loss and
triplet_margin_with_distance_loss.

Reference against oracle on adversarial triplets in the four formats (the budget of
spec/losses/triplet_margin.md), the oracle against mpmath at a fixed high precision, the
dialect against torch 2.13, and bad input.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.torch._base import TorchDtypeError, TorchRuntimeError
from tests.support import (FORMATS, assert_close_to_torch, assert_ulps, assert_within, call_torch, in_format,
                           representable)

L = lossref.get("triplet_margin")
PS = [1, 2, 3, 0.5, math.inf]


def cast(values, fmt):
    """float64 values rounded into `fmt`, held in that format's dtype."""
    return in_format(representable(values, fmt), fmt)


def adversarial_triplets(fmt, rng):
    """(anchor, positive, negative) rows of length 4 and the margin of each row, in `fmt`.

    Families: exact zeros and signed zeros, subnormal and tiny vectors (their squares
    underflow every format), magnitudes near overflow (their squares and sums overflow),
    differences that overflow, a ≈ b, equal distances from permuted vectors (d(a, b) =
    d(a, n) exactly: the loss is the margin), distances a rounding apart (cancellation),
    the margin boundary (d(a, n) - d(a, b) equal to the margin, and one ulp either side),
    swap choosing either distance, ±inf, NaN, and random rows of every scale.
    """
    f = formats.get_format(fmt)
    sub, tiny, big, ep = f.min_subnormal, f.tiny, f.max, f.eps
    rows = []

    def add(a, b, n, m=1.0):
        rows.append((a, b, n, m))

    add([0.0, -0.0, 0.0, 0.0], [0.0, 0.0, -0.0, 0.0], [-0.0, 0.0, 0.0, 0.0])
    add([sub, 2 * sub, -sub, 0.0], [0.0, sub, sub, -sub], [3 * sub, -sub, 0.0, sub], 4 * sub)
    add([tiny, -tiny, 2 * tiny, tiny / 2], [0.0, tiny, tiny, -tiny], [tiny, tiny, -tiny, 0.0], tiny)
    add([big, -big, big / 2, 1.0], [big / 2, 0.0, -big / 4, -1.0], [0.0, big / 4, big, 2.0], big / 8)
    add([big, -big, big, 0.5], [-big, big, -big / 2, 0.5], [-big, big, -big, 0.0], 1.0)
    add([big / 2, big / 2, big / 2, big / 2], [0.0, 0.0, 0.0, big / 4], [0.0, 0.0, big / 4, 0.0], 1.0)
    add([1.0, 2.0, -3.0, 0.5], [1.0 + 2 * ep, 2.0, -3.0 * (1 - ep), 0.5], [1.5, 2.0, -3.0, 0.25], 1.0)
    add([0.0, 0.0, 0.0, 0.0], [0.3, -0.7, 0.1, 1.1], [-0.7, 0.3, 1.1, 0.1], 0.5)        # permuted: d_ap = d_an
    add([0.0, 0.0, 0.0, 0.0], [0.3, -0.7, 0.1, 1.1], [0.3, -0.7, 0.1, 1.1 * (1 + ep)], 0.125)
    add([1.0, 1.0, 1.0, 1.0], [1.5, 1.25, 1.0, 1.0], [2.0, 2.0, 1.0, 1.0], 1.25)      # boundary for p = 1, eps = 0
    add([1.0, 1.0, 1.0, 1.0], [1.5, 1.25, 1.0, 1.0], [2.0, 2.0, 1.0, 1.0], 1.25 * (1 + ep))
    add([1.0, 1.0, 1.0, 1.0], [1.5, 1.25, 1.0, 1.0], [2.0, 2.0, 1.0, 1.0], 1.25 * (1 - ep / 2))
    add([0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0], 2.0)        # swap: d(b, n) = 4 < 5
    add([0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0], 2.0)        # swap keeps d(a, n)
    add([math.inf, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0])
    add([1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0], [0.0, -math.inf, 0.0, 0.0])
    add([math.inf, 1.0, 0.0, 2.0], [math.inf, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0])
    add([math.nan, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0])
    add([1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0], [0.0, 0.0, math.nan, 0.0])
    for scale in (2.0 ** (f.emin // 2), 2.0 ** -10, 1.0, 2.0 ** 10, 2.0 ** (f.emax // 2)):
        r = rng.standard_normal((3, 4)) * scale
        add(r[0].tolist(), r[1].tolist(), r[2].tolist(), scale)
    a, b, n = (representable([r[i] for r in rows], f) for i in range(3))
    return a, b, n, np.array([r[3] for r in rows])  # margins: float64 parameters


def rows_of(fmt, rng):
    a, b, n, m = adversarial_triplets(fmt, rng)
    return in_format(a, fmt), in_format(b, fmt), in_format(n, fmt), m


def exact_distance(u, v, eps, p):
    """``||u - v + eps||_p`` of one row in mpmath at the current precision, independently
    of lossref's oracle ops."""
    w = [abs(mpmath.mpf(float(x)) - mpmath.mpf(float(y)) + mpmath.mpf(eps)) for x, y in zip(u, v)]
    if any(mpmath.isnan(t) for t in w):
        return mpmath.mpf("nan")
    if p == math.inf:
        return max(w, default=mpmath.mpf(0))
    return mpmath.fsum(t ** p for t in w) ** (1 / mpmath.mpf(p))


def exact_loss(a, b, n, margin, p, eps, swap):
    """The loss of one row at 4000 bits (every difference of the formats' values exact)."""
    with mpmath.workprec(4000):
        dp, dn = exact_distance(a, b, eps, p), exact_distance(a, n, eps, p)
        if swap:
            ds = exact_distance(b, n, eps, p)
            dn = mpmath.mpf("nan") if mpmath.isnan(ds) or mpmath.isnan(dn) else min(dn, ds)
        v = mpmath.mpf(margin) + dp - dn
        return v if mpmath.isnan(v) else max(v, mpmath.mpf(0)), dp, dn


U64 = 2.0 ** -53


def budget_slack(p, d):
    """The page's bound on the float64 error beyond the final rounding, per unit of
    ``|margin| + d(a, b) + d(a, n)``: ``4 u**2`` for p in {1, 2, inf}, else
    ``(ceil(log2 D) + 4) max(1, 1/p) u``."""
    if p in (1, 2, math.inf):
        return 4 * U64 * U64
    return (math.ceil(math.log2(max(d, 1))) + 4) * max(1.0, 1.0 / p) * U64


# --- (a) reference against oracle -----------------------------------------------------------------


def test_registered():
    assert "triplet_margin" in lossref.names()
    assert L.stage2 == "structured" and L.rowwise and L.elementwise is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("p", PS)
def test_reference_within_budget(fmt, p):
    a, b, n, m = rows_of(fmt, np.random.default_rng(7))
    base = 0.5 if fmt == "float64" else 1.0
    for swap in (False, True):
        for eps in (0.0, 1e-6):
            for i in range(a.shape[0]):  # each row its own case: margins differ
                kw = dict(negative=n[i:i + 1], margin=float(m[i]), p=p, eps=eps, swap=swap)
                got = L.per_sample(b[i:i + 1], a[i:i + 1], **kw)
                assert got.dtype == a.dtype
                _, dp, dn = exact_loss(a[i], b[i], n[i], m[i], p, eps, swap=False)
                ds = exact_loss(b[i], b[i], n[i], 0.0, p, eps, swap=False)[2] if swap else 0
                with mpmath.workprec(4000):
                    terms = abs(mpmath.mpf(m[i])) + dp + (max(dn, ds) if swap else dn)
                assert_within(got, L.exact(b[i:i + 1], a[i:i + 1], **kw), fmt, base, [terms],
                              budget_slack(p, a.shape[-1]), what=f"p={p} swap={swap} eps={eps} row {i}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_well_conditioned_rows_correctly_rounded(fmt):
    """Random rows whose loss is not a cancellation: 1/2 ulp in float64 and 1 ulp (one
    rounding of a float64 value) in the narrow formats, every p."""
    rng = np.random.default_rng(3)
    a, b = cast(rng.standard_normal((6, 5)), fmt), cast(rng.standard_normal((6, 5)) * 0.1, fmt)
    n = cast(rng.standard_normal((6, 5)) * 3, fmt)
    a, b, n = in_format(a, fmt), in_format(b, fmt), in_format(n, fmt)
    for p in PS:
        for swap in (False, True):
            kw = dict(negative=n, margin=2.0, p=p, swap=swap)
            ex = L.exact(b, a, **kw)
            assert_ulps(L.per_sample(b, a, **kw), ex, fmt, 0.5 if fmt == "float64" else 1.0, what=f"p={p}")


def test_large_batches_in_blocks():
    """Blocks of rows (threads) cut `negative` with the inputs: the same values as row by
    row, and a negative broadcast along the rows."""
    rng = np.random.default_rng(5)
    a, b, n = (rng.standard_normal((20000, 7)) for _ in range(3))
    whole = L.per_sample(b, a, negative=n, swap=True)
    rows = np.concatenate([L.per_sample(b[i:i + 1000], a[i:i + 1000], negative=n[i:i + 1000], swap=True)
                           for i in range(0, 20000, 1000)])
    assert np.array_equal(whole, rows)
    one = L.per_sample(b, a, negative=n[0])
    assert np.array_equal(one, L.per_sample(b, a, negative=np.broadcast_to(n[0], n.shape).copy()))


def test_special_values():
    a = np.array([[0.0, 0.0], [1.0, 2.0], [np.inf, 0.0], [np.nan, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[3.0, 4.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [np.inf, 1.0], [0.0, 0.0]])
    n = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [-np.inf, 0.0]])
    got = L.per_sample(b, a, negative=n, eps=0.0)
    # 1 + 5 - 0; a = b = n: the margin; inf - inf; NaN; d(a, b) = inf; d(a, n) = inf: clamped to +0
    assert got.tolist()[:2] == [6.0, 1.0] and np.isnan(got[2]) and np.isnan(got[3])
    assert got[4] == np.inf and got[5] == 0.0 and not np.signbit(got[5])
    assert np.array_equal(L.per_sample(np.zeros((2, 0)), np.zeros((2, 0)), negative=np.zeros((2, 0))),
                          [1.0, 1.0])  # D = 0: every distance 0, the loss the margin
    assert L.per_sample(b[0], a[0], negative=n[0], eps=0.0).shape == ()  # one triplet


def test_float64_extremes():
    """Differences, squares and distances past float64's range, subnormal vectors."""
    big, sub = np.finfo(np.float64).max, 2.0 ** -1074
    a = np.array([[big, -big], [big, big], [sub, 0.0], [big / 2, big / 2]])
    b = np.array([[-big, big], [0.0, 0.0], [0.0, sub], [0.0, big / 4]])
    n = np.array([[-big, -big], [0.0, big], [3 * sub, 0.0], [big / 4, 0.0]])
    for p in PS:
        for swap in (False, True):
            for m in (1.0, 2.0 ** -1070):
                kw = dict(negative=n, margin=m, p=p, eps=0.0, swap=swap)
                assert_ulps(L.per_sample(b, a, **kw), L.exact(b, a, **kw), "float64", 0.5 if p in (1, 2) else 8,
                            what=f"p={p} m={m}")


# --- (b) oracle against an independent computation ------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_oracle_against_fixed_precision(fmt):
    a, b, n, m = rows_of(fmt, np.random.default_rng(11))
    for p in (1, 2, 3, math.inf):
        for swap in (False, True):
            for i in range(a.shape[0]):
                kw = dict(negative=n[i:i + 1], margin=float(m[i]), p=p, eps=1e-6, swap=swap)
                got = float(L.exact(b[i:i + 1], a[i:i + 1], **kw).round(fmt)[0])
                want = formats.round_mpf(exact_loss(a[i], b[i], n[i], m[i], p, 1e-6, swap)[0], fmt)
                assert got == want or (math.isnan(got) and math.isnan(want)), (fmt, p, swap, i, got, want)


def test_oracle_known_values():
    # 3-4-5 and 9-12-15 triangles: d(a, b) = 5, d(a, n) = 15, d(b, n) = |(6, 8)| = 10
    a, b, n = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([[9.0, 12.0]])
    assert L.exact(b, a, negative=n, eps=0.0, margin=11.0).round().tolist() == [1.0]
    assert L.exact(b, a, negative=n, eps=0.0, margin=11.0, swap=True).round().tolist() == [6.0]
    assert L.exact(b, a, negative=n, eps=0.0, margin=8.0, p=1).round().tolist() == [0.0]       # 8 + 7 - 21
    assert L.exact(b, a, negative=n, eps=0.0, margin=9.0, p=math.inf).round().tolist() == [1.0]  # 9 + 4 - 12
    with mpmath.workprec(200):  # eps is added to a - b: (-2.5, -3.5) and (-8.5, -11.5)
        want = formats.round_mpf(11 + mpmath.sqrt(mpmath.mpf("18.5")) - mpmath.sqrt(mpmath.mpf("204.5")), "float64")
    assert L.exact(b, a, negative=n, eps=0.5, margin=11.0).round().tolist() == [want]


# --- (c) the dialect against torch 2.13 -------------------------------------------------------------

from lossref.torch import nn as lnn  # noqa: E402
from lossref.torch.nn import functional as LF  # noqa: E402

REDUCTIONS = ["none", "mean", "sum"]


def triplet_inputs(dtype, shape, rng):
    a = rng.standard_normal(shape).astype(dtype)
    b = (a + 0.3 * rng.standard_normal(shape)).astype(dtype)
    n = rng.standard_normal(shape).astype(dtype)
    return a, b, n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (6, 4), (3, 2, 5)])
def test_functions_match_torch(dtype, shape):
    torch = pytest.importorskip("torch")
    fmt = np.dtype(dtype).name
    a, b, n = triplet_inputs(dtype, shape, np.random.default_rng(1))
    scale = 4 * (np.abs(a).sum() + np.abs(b).sum() + np.abs(n).sum() + 2)
    for red in REDUCTIONS:
        for swap in (False, True):
            for kw in ({}, {"margin": 0.5, "p": 1}, {"margin": 2.0, "p": 3, "eps": 1e-3}, {"p": 0.5},
                       {"p": math.inf, "eps": 0.0}):
                ours = LF.triplet_margin_loss(a, b, n, swap=swap, reduction=red, **kw)
                theirs = call_torch(torch.nn.functional.triplet_margin_loss, a, b, n, swap=swap, reduction=red, **kw)
                assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
                assert_close_to_torch(ours, theirs, scale, fmt, 64, what=f"{red} {swap} {kw}")
                tight = kw.get("p", 2) in (1, 2, math.inf) or fmt == "float32"
                assert_ulps(ours, LF.triplet_margin_loss.exact(a, b, n, swap=swap, reduction=red, **kw), fmt,
                            1.0 if tight else 8.0, what=f"{red} {swap} {kw}")
            ours = LF.triplet_margin_with_distance_loss(a, b, n, swap=swap, reduction=red, margin=1.5)
            theirs = call_torch(torch.nn.functional.triplet_margin_with_distance_loss, a, b, n, swap=swap,
                                reduction=red, margin=1.5)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert_close_to_torch(ours, theirs, scale, fmt, 64, what=f"with_distance {red} {swap}")


def test_modules_match_torch():
    torch = pytest.importorskip("torch")
    a, b, n = triplet_inputs(np.float32, (8, 3), np.random.default_rng(2))
    cases = [(lnn.TripletMarginLoss(), torch.nn.TripletMarginLoss()),
             (lnn.TripletMarginLoss(margin=0.5, p=1.0, eps=0.0, swap=True, reduction="sum"),
              torch.nn.TripletMarginLoss(margin=0.5, p=1.0, eps=0.0, swap=True, reduction="sum")),
             (lnn.TripletMarginLoss(size_average=False), torch.nn.TripletMarginLoss(size_average=False)),
             (lnn.TripletMarginLoss(reduce=False), torch.nn.TripletMarginLoss(reduce=False)),
             (lnn.TripletMarginWithDistanceLoss(margin=2.0, swap=True, reduction="none"),
              torch.nn.TripletMarginWithDistanceLoss(margin=2.0, swap=True, reduction="none"))]
    for ours, theirs in cases:
        want = call_torch(theirs, a, b, n)
        got = ours(a, b, n)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert_close_to_torch(got, want, 4 * (np.abs(a).sum() + 10), "float32", 64, what=repr(ours))
        assert np.array_equal(ours.exact(a, b, n).round(), got)


def test_dtypes_shapes_and_scalars_as_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    f16, bf16 = formats.get_format("float16").dtype, formats.get_format("bfloat16").dtype
    one = np.array([[1.0]])
    cases = [  # (anchor, positive, negative): result dtype and shape as torch's
        (one.astype(f16), one.astype(f16), one.astype(np.float32)),
        (one.astype(f16), one.astype(bf16), one.astype(f16)),
        (np.array([[1, 2]]), np.array([[0, 0]]), np.array([[3, 3]])),
        (np.array([[1, 2]]), np.array([[0.0, 0.0]]), np.array([[3, 3]], np.int32)),
        (np.ones((4, 3), np.float32), np.ones((1, 3), np.float32), np.zeros((4, 1), np.float32)),
        (np.float32(1.0), np.float32(2.0), np.float32(0.0)),
        (np.ones(3), np.zeros(3), np.full(3, 2.0)),
    ]
    for a, b, n in cases:
        for swap in (False, True):
            want = call_torch(F.triplet_margin_loss, a, b, n, swap=swap, reduction="none")
            got = LF.triplet_margin_loss(a, b, n, swap=swap, reduction="none")
            assert got.dtype == want.dtype and got.shape == want.shape, (a.dtype, b.dtype, n.dtype)
            assert np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-2)
    # the scalars as torch holds them, rounded to the distance's dtype: float16 eps meets
    # 2**-13 + 2**-23 at a tie (0.75 * 2**-24 rounds to 2**-24 first), margin 2**-11 (1 + 2**-11)
    # meets 1 at a tie; float32 margin 2**-24 (1 + 2**-30) likewise
    d = np.array([[2.0 ** -13 + 2.0 ** -23]], f16)
    z = np.zeros((1, 1), f16)
    kw = dict(eps=0.75 * 2.0 ** -24, margin=1.0, reduction="none")
    assert LF.triplet_margin_loss(d, z, d, **kw) == call_torch(F.triplet_margin_loss, d, z, d, **kw)
    for dt, m in ((f16, 2.0 ** -11 * (1 + 2.0 ** -11)), (np.float32, 2.0 ** -24 * (1 + 2.0 ** -30))):
        o = np.ones((1, 1), dt)
        z = np.zeros((1, 1), dt)
        kw = dict(eps=0.0, margin=m, reduction="none")
        assert LF.triplet_margin_loss(o, z, o, **kw) == call_torch(F.triplet_margin_loss, o, z, o, **kw) == 1.0


def test_empty_and_import():
    import subprocess
    import sys
    assert np.isnan(LF.triplet_margin_loss(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))))
    assert LF.triplet_margin_loss(np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0)), reduction="sum") == 2.0
    code = "import sys, lossref.torch.nn as n, lossref.torch.nn.functional as f; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# --- (d) errors -------------------------------------------------------------------------------------


def test_errors():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0.0"):
        LF.triplet_margin_loss(a, a, a, margin=0.0)
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        LF.triplet_margin_with_distance_loss(a, a, a, margin=-1.0)
    with pytest.raises(ValueError, match="finite margin"):
        LF.triplet_margin_loss(a, a, a, margin=math.inf)
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        LF.triplet_margin_loss(a, a, a, reduction="bad")
    with pytest.raises(ValueError, match="elementwise_mean is not a valid value"):
        LF.triplet_margin_with_distance_loss(a, a, a, reduction="elementwise_mean")
    with pytest.raises(TorchRuntimeError, match="same number of dimensions.*anchor 2D, positive 1D"):
        LF.triplet_margin_loss(a, a[0], a)
    with pytest.raises(TorchRuntimeError, match="non-singleton"):
        LF.triplet_margin_loss(a, np.ones((3, 3)), a)
    with pytest.raises(ValueError, match="different last"):
        LF.triplet_margin_loss(np.ones((2, 1)), np.ones((2, 1)), a)
    with pytest.raises(TorchDtypeError, match="bool"):
        LF.triplet_margin_loss(np.ones((1, 2), bool), np.ones((1, 2), bool), a[:1, :2])
    for p in (0, -1.0, math.nan, -math.inf):
        with pytest.raises(ValueError, match="p > 0"):
            LF.triplet_margin_loss(a, a, a, p=p)
    with pytest.raises(ValueError, match="finite eps"):
        LF.triplet_margin_loss(a, a, a, eps=math.inf)
    with pytest.raises(TypeError, match="swap must be True or False"):
        LF.triplet_margin_loss(a, a, a, swap=1)
    with pytest.raises(TypeError, match="cannot evaluate a user's distance"):
        LF.triplet_margin_with_distance_loss(a, a, a, distance_function=lambda x, y: x)
    with pytest.raises(TypeError, match="cannot evaluate a user's distance"):
        lnn.TripletMarginWithDistanceLoss(distance_function=lambda x, y: x)
    with pytest.raises(ValueError, match="TripletMarginLoss: expected margin to be greater than 0, got -1"):
        lnn.TripletMarginLoss(margin=-1)
    with pytest.raises(ValueError, match="TripletMarginWithDistanceLoss: expected margin"):
        lnn.TripletMarginWithDistanceLoss(margin=0)
    with pytest.raises(ValueError, match="bad is not a valid value"):
        lnn.TripletMarginWithDistanceLoss(reduction="bad")(a, a, a)  # at the call, as torch
    with pytest.raises(ValueError, match="negative"):
        L.per_sample(a, a)
    with pytest.raises(ValueError, match="does not broadcast"):
        L.per_sample(a, a, negative=np.ones((3, 3)))
    with pytest.raises(ValueError, match="p=0"):
        L.per_sample(a, a, negative=a, p=0)


def test_errors_are_torchs():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        F.triplet_margin_loss(t, t[0], t)
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0.0"):
        F.triplet_margin_loss(t, t, t, margin=0.0)
    with pytest.raises(ValueError, match="TripletMarginLoss: expected margin to be greater than 0, got -1"):
        torch.nn.TripletMarginLoss(margin=-1)
    with pytest.raises(ValueError, match="elementwise_mean is not a valid value"):
        F.triplet_margin_with_distance_loss(t, t, t, reduction="elementwise_mean")


def test_keyword_only_arguments_are_not_filled_by_position():
    """torch's ``triplet_margin_with_distance_loss(a, p, n, *, ...)``: a fourth positional
    argument is a TypeError there and here."""
    torch = pytest.importorskip("torch")
    a = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="3 positional"):
        torch.nn.functional.triplet_margin_with_distance_loss(*(torch.from_numpy(a),) * 3, None)
    with pytest.raises(TypeError, match="at most 3 positional"):
        LF.triplet_margin_with_distance_loss(a, a, a, None)
    assert float(LF.triplet_margin_with_distance_loss(a, a, a)) == 1.0  # d(a, a) = d(a, a): the margin
