"""cosine_embedding: the catalogue loss and ``torch.nn.functional.cosine_embedding_loss``.

Reference against oracle on adversarial inputs in the four formats (the budget of
spec/losses/cosine_embedding.md), the oracle against an independent computation (the
literal formula in mpmath at 2000 bits), the dialect against torch 2.13, and bad input.
"""

from __future__ import annotations

import subprocess
import sys

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.torch._base import TorchRuntimeError
from lossref.torch.nn import CosineEmbeddingLoss
from lossref.torch.nn import functional as F
from tests.support import (FORMATS, assert_close_to_torch, assert_within, call_torch, in_format, representable)

LOSS = lossref.get("cosine_embedding")
U64 = 2.0 ** -53
LABELS = [1.0, -1.0, 1.0, -1.0, 0.0, 2.0, np.nan]


def cast(values, fmt):
    """float64 values rounded into `fmt`, held in that format's dtype."""
    return in_format(representable(values, fmt), fmt)


def adversarial_pairs(fmt):
    """``(x1, x2, margin)`` rows of length 4 that stress the loss in `fmt`, every value
    representable in it, and the margin of each row."""
    f = formats.get_format(fmt)
    sub, tiny, big, e = f.min_subnormal, f.tiny, f.max, f.eps
    half = 2.0 ** (f.emax // 2)  # about the square root of the largest value
    rows = [
        ([1.0, 2.0, 3.0, 4.0], [4.0, -3.0, 2.0, 1.0], 0.0),               # ordinary
        ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0 * (1 + 2 * e)], 0.5),  # nearly parallel: one ulp
        ([1.0, 0.0, 0.0, 0.0], [1.0, 2.0 ** -(f.precision + 8), 0.0, 0.0], 0.0),  # 1 - cos far below u
        ([3.0, 5.0, 0.0, 0.0], [3.0 * (1 + 2 * e), 5.0, 0.0, 0.0], -0.3),
        ([1.0, -2.0, 0.5, 0.25], [-1.0, 2.0, -0.5, -0.25], -0.3),          # antiparallel
        ([1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], float(np.float64(0.5 ** 0.5))),  # cos at the margin
        ([1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], float(formats.round_array(np.float64(0.5 ** 0.5), f))),
        ([sub, 2 * sub, -sub, 0.0], [sub, sub, sub, 0.0], 0.0),           # subnormals: squares underflow
        ([tiny, tiny, 0.0, -tiny], [tiny, -tiny, tiny, 0.0], -0.3),
        ([2.0 ** -20, 0.0, 0.0, 0.0], [2.0 ** -20, 2.0 ** -21, 0.0, 0.0], 0.0),  # norms near eps
        ([big, big / 2, -big, 0.0], [big, big, big / 4, 1.0], 0.0),       # squares overflow
        ([half, half, 0.0, 0.0], [half, -half / 2, 1.0, 0.0], 0.5),
        ([big, 0.0, 0.0, 0.0], [sub, sub, 0.0, 0.0], 0.0),                # far apart in scale
        ([0.0, -0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], 0.0),               # a zero vector
        ([0.0, 0.0, 0.0, 0.0], [-0.0, 0.0, 0.0, 0.0], -0.3),              # two zero vectors
        ([np.inf, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], 0.0),
        ([1.0, 1.0, 0.0, 0.0], [np.nan, 1.0, 0.0, 0.0], 0.0),
        ([1e-3, 1e3, -7.5, 0.1], [2e-3, 999.0, 7.5, 0.3], 0.1),
    ]
    a = cast([r[0] for r in rows], fmt)
    b = cast([r[1] for r in rows], fmt)
    return a, b, [r[2] for r in rows]


def labels(n, shift=0):
    return np.array([LABELS[(i + shift) % len(LABELS)] for i in range(n)])


def slack_terms(t, exact_vals, margin):
    """The page's condition term: ``sqrt(2 (1 - cos))`` for label 1, ``1 + |margin|`` for -1."""
    out = []
    for lab, v in zip(t, exact_vals):
        if lab == 1 and mpmath.isfinite(v):
            out.append(mpmath.sqrt(2 * v))
        else:
            out.append(mpmath.mpf(1 + abs(margin)))
    return np.array(out, dtype=object)


# --- (a) reference against oracle ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_within_budget_on_adversarial_rows(fmt):
    a, b, margins = adversarial_pairs(fmt)
    ulps = 2 if fmt == "float64" else 1
    for shift in range(3):  # every row under labels 1, -1 and the others
        t = labels(len(a), shift)
        for i, m in enumerate(margins):
            got = LOSS.per_sample(t[i:i + 1], a[i:i + 1], x2=b[i:i + 1], margin=m)
            ex = LOSS.exact(t[i:i + 1], a[i:i + 1], x2=b[i:i + 1], margin=m)
            ex.round(fmt)
            terms = slack_terms(t[i:i + 1], ex.values(ex.final_prec), m)
            assert_within(got, ex, fmt, ulps, terms, scale=8 * U64 ** 2, what=f"row {i} label {t[i]}")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("eps", [1e-12, 0.0, (1e-12, 0.0)])
def test_reference_within_budget_on_random_rows(fmt, eps):
    rng = np.random.default_rng(7)
    scale = np.exp(rng.uniform(-6, 6, (24, 1)))
    a = cast(rng.standard_normal((24, 5)) * scale, fmt)
    b = cast(np.asarray(a, np.float64) * rng.uniform(0.5, 2, (24, 1)) + rng.standard_normal((24, 5)) * 1e-3, fmt)
    t = labels(24)
    got = LOSS.per_sample(t, a, x2=b, margin=0.25, eps=eps)
    ex = LOSS.exact(t, a, x2=b, margin=0.25, eps=eps)
    ex.round(fmt)
    terms = slack_terms(t, ex.values(ex.final_prec), 0.25)
    assert_within(got, ex, fmt, 2 if fmt == "float64" else 1, terms, scale=8 * U64 ** 2)


def test_special_values():
    one = np.array([[1.0, 2.0]])
    ex = lambda t, a, b, **kw: LOSS.per_sample(np.array([t]), np.array([a]), x2=np.array([b]), **kw)[0]  # noqa: E731
    assert ex(1.0, [1.0, 2.0], [2.0, 4.0], eps=0.0) == 0.0     # parallel: exactly 0
    assert ex(1.0, [1.0, 2.0], [-2.0, -4.0], eps=0.0) == 2.0   # antiparallel: exactly 2
    assert ex(1.0, [1.0, 2.0], [1.0, 2.0]) == 1e-12 / (5 + 1e-12)  # eps: 1 - cos = eps / (|x|^2 + eps)
    assert ex(-1.0, [1.0, 0.0], [0.0, 3.0], margin=-0.5) == 0.5  # orthogonal: -margin
    assert ex(1.0, [0.0, 0.0], [1.0, 2.0]) == 1.0              # a zero vector: cos = 0
    assert np.isnan(ex(1.0, [0.0, 0.0], [1.0, 2.0], eps=0.0))  # 0 / 0
    assert np.isnan(ex(-1.0, [np.inf, 0.0], [1.0, 2.0]))
    assert ex(0.0, [np.nan, 0.0], [1.0, 2.0]) == 0.0           # other labels: 0, NaN inputs too
    assert ex(np.nan, [1.0, 0.0], [1.0, 2.0]) == 0.0
    assert np.isnan(LOSS.per_sample(np.array([1.0]), one, x2=np.array([[np.nan, 1.0]])))[0]


def test_rows_are_cut_with_x2():
    """Beyond one block of rows the catalogue evaluates in blocks; x2 goes with its rows."""
    rng = np.random.default_rng(3)
    n = 2 * (lossref.registry.block_elements() // 4) + 6  # rows of 4: more than two blocks
    a, b = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    t = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    got = LOSS.per_sample(t.reshape(n // 2, 2), a.reshape(n // 2, 2, 4), x2=b.reshape(n // 2, 2, 4), margin=0.1)
    c = np.einsum("ij,ij->i", a, b) / np.sqrt(((a * a).sum(1) + 1e-12) * ((b * b).sum(1) + 1e-12))
    want = np.where(t == 1, 1 - c, np.maximum(c - 0.1, 0))
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fmt,k", [("float32", 23), ("float64", 52)])
def test_farey_pairs_within_budget(fmt, k):
    """x1 = (p, q), x2 = (r, s) with ps - qr = 1 and p ~ 2^k: 1 - cos ~ 2^(-4k) with eps = 0,
    the case where the condition term of the page's budget is reached in float64."""
    a = cast([[2.0 ** k + 1, 2.0 ** k + 2]], fmt)
    b = cast([[2.0 ** k, 2.0 ** k + 1]], fmt)
    t = np.ones(1)
    got, ex = LOSS.per_sample(t, a, x2=b, eps=0.0), LOSS.exact(t, a, x2=b, eps=0.0)
    ex.round(fmt)
    assert_within(got, ex, fmt, 2 if fmt == "float64" else 1, slack_terms(t, ex.values(ex.final_prec), 0.0),
                  scale=8 * U64 ** 2)


# --- (b) oracle against an independent computation ------------------------------------------------


def literal(t, a, b, margin, eps=1e-12):
    """The definition in mpmath at 2000 bits: the sums of products of floats are exact there."""
    with mpmath.workprec(2000):
        out = []
        for lab, r1, r2 in zip(t, a.astype(np.float64), b.astype(np.float64)):
            if lab not in (1, -1):
                out.append(mpmath.mpf(0))
                continue
            if not (np.all(np.isfinite(r1)) and np.all(np.isfinite(r2))):
                out.append(mpmath.mpf("nan"))
                continue
            d = mpmath.fsum(mpmath.mpf(u) * mpmath.mpf(v) for u, v in zip(r1, r2))
            n1 = mpmath.fsum(mpmath.mpf(u) ** 2 for u in r1) + mpmath.mpf(eps)
            n2 = mpmath.fsum(mpmath.mpf(v) ** 2 for v in r2) + mpmath.mpf(eps)
            if n1 * n2 == 0:
                out.append(mpmath.mpf("nan"))
                continue
            c = d / mpmath.sqrt(n1 * n2)
            out.append(1 - c if lab == 1 else max(c - mpmath.mpf(margin), mpmath.mpf(0)))
        return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_oracle_matches_literal_definition_at_2000_bits(fmt):
    a, b, margins = adversarial_pairs(fmt)
    for shift in range(2):
        t = labels(len(a), shift)
        for i, m in enumerate(margins):
            got = LOSS.exact(t[i:i + 1], a[i:i + 1], x2=b[i:i + 1], margin=m).round(fmt)
            want = [formats.round_mpf(v, fmt) for v in literal(t[i:i + 1], a[i:i + 1], b[i:i + 1], m)]
            assert np.asarray(got, np.float64).tolist() == pytest.approx(want, nan_ok=True, rel=0, abs=0), (fmt, i)


def test_oracle_resolves_extreme_cancellation():
    """1 - cos of about 2**-121 (and 2**-212 for a Farey pair): the oracle's exact rationals
    leave no cancellation, so it does not settle on a wrong 0."""
    a = np.array([[1.0, 0.0], [2.0 ** 52 + 1, 2.0 ** 52 + 2]])
    b = np.array([[1.0, 2.0 ** -60], [2.0 ** 52, 2.0 ** 52 + 1]])  # (p, q), (r, s) with ps - qr = 1
    got = LOSS.exact(np.ones(2), a, x2=b, eps=0.0).round(np.float64)
    want = [formats.round_mpf(v, "float64") for v in literal(np.ones(2), a, b, 0.0, eps=0.0)]
    assert got.tolist() == want and 0 < got[0] < 2.0 ** -120 and 0 < got[1] < 2.0 ** -200


# --- (c) the dialect against torch ---------------------------------------------------------------


def _pairs(dt, rng, n=6, d=5):
    a = rng.standard_normal((n, d)).astype(dt)
    b = (rng.standard_normal((n, d)) + a).astype(dt)
    return a, b


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("margin", [0, 0.5, -0.3])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_function_and_module_match_torch(dt, margin, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    a, b = _pairs(dt, rng)
    t = np.array([1, -1, 0, 1, -1, 1])
    fmt = formats.get_format(dt)
    theirs = call_torch(torch.nn.functional.cosine_embedding_loss, a, b, t, margin=margin, reduction=reduction)
    for ours in (F.cosine_embedding_loss(a, b, t, margin=margin, reduction=reduction),
                 CosineEmbeddingLoss(margin=margin, reduction=reduction)(a, b, t)):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert_close_to_torch(ours, theirs, 2.0 * len(t), fmt, k=32, what=f"{reduction} {margin}")
    exact = F.cosine_embedding_loss.exact(a, b, t, margin=margin, reduction=reduction).round()
    assert_close_to_torch(exact, theirs, 2.0 * len(t), fmt, k=32)
    # one pair: 1-D inputs and a 0-D target give one value
    one = call_torch(torch.nn.functional.cosine_embedding_loss, a[0], b[0], np.array(-1.0), margin=margin,
                     reduction=reduction)
    ours = F.cosine_embedding_loss(a[0], b[0], np.array(-1.0), margin=margin, reduction=reduction)
    assert ours.shape == one.shape == () and ours.dtype == one.dtype
    assert_close_to_torch(ours, one, 1.0, fmt, k=32)


def test_torch_conventions():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional.cosine_embedding_loss
    # EPSILON is the float nearest 1e-12: 1 - s/(s + eps) for |x|^2 = s = 1e-12 in float64
    x = np.array([[1e-6]])
    ours = F.cosine_embedding_loss(x, x, np.array([1]), reduction="none")
    assert ours[0] == call_torch(tf, x, x, np.array([1]), reduction="none")[0] == 1 - 1e-12 / (1e-12 + 9.999999960041972e-13)
    # margin rounded to the dtype: ties of 1 - margin decided by the rounded margin
    # (torch's cos of equal vectors is exactly 1 in these formats: 1 + EPSILON rounds to 1)
    for fmt, tie in (("float16", 2.0 ** -12), ("bfloat16", 2.0 ** -9), ("float32", 2.0 ** -25)):
        one, m = cast([[1.0]], fmt), tie * (1 + 2.0 ** -40)
        theirs = call_torch(tf, one, one, np.array([-1]), margin=m, reduction="none")
        assert float(theirs[0]) == 1.0, fmt  # an unrounded margin would round 1 - m down
        pr = F.cosine_embedding_loss.prepare(one, one, target=np.array([-1]), margin=m)
        assert pr.params["margin"] == tie and pr.fmt.name == fmt
        if fmt == "float16":  # EPSILON is 0 here, so the exact cos is 1 as well
            ours = F.cosine_embedding_loss(one, one, np.array([-1]), margin=m, reduction="none")
            assert ours.dtype == theirs.dtype and float(ours[0]) == 1.0
    # float16 holds EPSILON as 0: a zero vector is 0/0
    z, o = cast([[0.0, 0.0]], "float16"), cast([[1.0, 2.0]], "float16")
    assert np.isnan(F.cosine_embedding_loss(z, o, np.array([1]))) and np.isnan(call_torch(tf, z, o, np.array([1])))
    # bfloat16 holds EPSILON rounded to bfloat16
    assert F.cosine_embedding_loss.exact(cast([[0.0]], "bfloat16"), cast([[0.0]], "bfloat16"),
                                         np.array([-1]), margin=-1.0).round() == 1.0
    # result dtypes: integer inputs give float32, float16 with bfloat16 float32; the target's dtype none
    # (torch squares each input in its own dtype: its roundoff is that of the narrower input)
    cases = [(np.array([[1, 2]]), np.array([[3, 4]]), np.array([1]), "float32", "float32"),
             (cast([[1.0, 2.0]], "float16"), cast([[3.0, 4.0]], "bfloat16"), np.array([1.0]), "float32", "bfloat16"),
             (cast([[1.0, 2.0]], "float16"), np.array([[3, 4]]), np.array([True]), "float32", "float16"),
             (np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 4.0]]), np.array([-1], np.int8), "float64",
              "float32")]
    for a, b, t, dtype, roundoff in cases:
        ours, theirs = F.cosine_embedding_loss(a, b, t, margin=-0.5), call_torch(tf, a, b, t, margin=-0.5)
        assert ours.dtype == theirs.dtype == formats.get_format(dtype).dtype
        assert_close_to_torch(ours, theirs, 1.0, formats.get_format(roundoff), k=8)
    # batch broadcasting: one row or one label serves all; other labels and NaN labels give 0
    a, b = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[2.0, 1.0]])
    for t in (np.array([1.0, -1.0]), np.array([-1.0])):
        ours, theirs = F.cosine_embedding_loss(a, b, t, reduction="none"), call_torch(tf, a, b, t, reduction="none")
        assert ours.shape == theirs.shape == (2,)
        assert_close_to_torch(ours, theirs, 1.0, formats.FLOAT64, k=8)
    t = np.array([1.0, -1.0, 0.0, np.nan, 2.0])
    ours, theirs = F.cosine_embedding_loss(b, a[:1], t, reduction="none"), call_torch(tf, b, a[:1], t, reduction="none")
    assert ours.shape == theirs.shape == (5,) and ours[2] == ours[3] == ours[4] == 0.0
    assert_close_to_torch(ours, theirs, 1.0, formats.FLOAT64, k=8)
    # legacy arguments, empty batches
    for kw in ({"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True}):
        with pytest.warns(UserWarning):
            theirs = call_torch(tf, a, a[::-1].copy(), np.array([1, -1]), **kw)
        np.testing.assert_allclose(F.cosine_embedding_loss(a, a[::-1].copy(), np.array([1, -1]), **kw), theirs,
                                   rtol=1e-15)
    e = np.zeros((0, 3))
    assert np.isnan(F.cosine_embedding_loss(e, e, np.zeros(0))) and F.cosine_embedding_loss(
        e, e, np.zeros(0), reduction="sum") == 0.0


def test_exact_twin_signature_and_no_torch_import():
    import inspect

    sig = inspect.signature(F.cosine_embedding_loss)
    assert list(sig.parameters) == ["input1", "input2", "target", "margin", "size_average", "reduce", "reduction"]
    assert sig.parameters["margin"].default == 0 and sig.parameters["reduction"].default == "mean"
    assert inspect.signature(F.cosine_embedding_loss.exact) == sig
    msig = inspect.signature(CosineEmbeddingLoss)
    assert [(p.name, p.default) for p in msig.parameters.values()] == [
        ("margin", 0.0), ("size_average", None), ("reduce", None), ("reduction", "mean")]
    code = ("import sys, numpy as np; from lossref.torch.nn import functional as F; "
            "F.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones(2)); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- (d) errors --------------------------------------------------------------------------------------


BAD_SHAPES = [
    ((2, 3), (2, 3), (2, 1), "0D or 1D target"),
    ((3,), (3,), (1,), "1D target tensor expects 2D input tensors"),
    ((2, 3), (2, 3), (), "0D target tensor expects 1D input tensors"),
    ((2, 3), (3,), (2,), "1D target tensor expects 2D input tensors"),
    ((2, 3), (4, 3), (2,), "must match the size"),
    ((2, 3), (2, 3), (4,), "must match the size"),
    ((2, 3), (2, 4), (2,), "must match the size"),
]


@pytest.mark.parametrize("s1,s2,st,msg", BAD_SHAPES)
def test_shape_errors_as_torch(s1, s2, st, msg):
    args = (np.ones(s1), np.ones(s2), np.ones(st))
    with pytest.raises(TorchRuntimeError, match=msg):
        F.cosine_embedding_loss(*args)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=msg):
        call_torch(torch.nn.functional.cosine_embedding_loss, *args)


def test_other_errors():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        F.cosine_embedding_loss(a, a, np.ones(2), reduction="bad")
    with pytest.raises(ValueError, match="feature"):  # torch would broadcast it: not a cosine
        F.cosine_embedding_loss(a, np.ones((2, 1)), np.ones(2))
    with pytest.raises(TypeError, match="margin"):
        F.cosine_embedding_loss(a, a, np.ones(2), margin="0.5")
    with pytest.raises(TypeError, match="input2"):
        F.cosine_embedding_loss(a, np.array([["a", "b", "c"]] * 2), np.ones(2))
    with pytest.raises(ValueError, match="x2=None is invalid: required"):
        LOSS.per_sample(np.ones(2), a)
    with pytest.raises(ValueError, match="x2 of shape"):
        LOSS.per_sample(np.ones(2), a, x2=np.ones((2, 4)))
    with pytest.raises(ValueError, match="y_true shape"):
        LOSS.per_sample(np.ones(3), a, x2=a)
    with pytest.raises(ValueError, match="eps"):
        LOSS.per_sample(np.ones(2), a, x2=a, eps=-1.0)
    with pytest.raises(ValueError, match="margin"):
        LOSS.per_sample(np.ones(2), a, x2=a, margin=np.inf)
