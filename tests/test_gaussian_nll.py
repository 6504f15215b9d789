"""gaussian_nll: reference against oracle (spec/losses/gaussian_nll.md budgets), the oracle
against an independent high-precision computation, and the torch dialect against torch 2.13."""

from __future__ import annotations

import inspect
import math

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from tests.support import FORMATS, assert_ulps, assert_within, in_format, representable

U64 = 2.0 ** -53
L = lossref.get("gaussian_nll")


def cast(values, fmt):
    return in_format(representable(values, fmt), fmt)


def rows(fmt):
    """(y_true, y_pred, var) rows of 4: tiny and huge var (below eps, subnormal, near the
    maximum), huge and tiny residuals, ±0, cancellation of log v against the quotient."""
    f = formats.get_format(fmt)
    sub, big, tiny = f.min_subnormal, f.max, f.tiny
    r = [
        ([0, -0.0, 1, 2], [0, 0, 1, 2], [1, 0, -0.0, sub]),                 # zeros, var below eps
        ([0, 0, 0, 0], [sub, tiny, 1e-3, 1], [sub, tiny, 1e-7, 1e-6]),      # tiny var and residuals
        ([-big, big, big, 0], [big, -big, big / 2, big], [big, big, 1, 1]),  # x - y overflows
        ([0, 1, 2, 3], [1, 1, 2, 7], [big, big / 4, 2.0 ** (f.emax // 2), 0.5]),
        ([0, 0, 0, 0], [0.3, 0.9, 1.2, 0.01], [0.1, 0.5, 0.25, 1e-4]),     # log v vs (x-y)^2/v
        ([0, 0, 0, 0], [1, 2, 3, 4], [1, 4, 9, 16]),
        ([math.inf, 0, 0, 1], [0, 0, 1, 1], [1, math.inf, math.inf, 1]),   # inf
        ([math.nan, 0, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]),                  # NaN
        ([-math.inf, 0, 1, 1], [math.inf, math.inf, 1, 1], [math.inf, 1, 1, 1]),
    ]
    rng = np.random.default_rng(7)
    for _ in range(4):
        y = rng.standard_normal(4) * np.exp(rng.uniform(-5, 5, 4))
        r.append((y.tolist(), (y + rng.standard_normal(4) * np.exp(rng.uniform(-5, 5, 4))).tolist(),
                  np.exp(rng.uniform(-12, 12, 4)).tolist()))
    return tuple(cast([row[k] for row in r], f) for k in range(3))


def terms_of(ex_vals, y, p, v, eps, full):
    """``|log v| / 2 + (x - y)^2 / (2 v) (+ log(2 pi)/2)`` per element (the page's T), exact."""
    out = np.empty(np.shape(y), dtype=object)
    with mpmath.workprec(300):
        for idx in np.ndindex(out.shape):
            yy, pp, vv = (mpmath.mpf(float(a[idx])) for a in (y, p, v))
            vv = max(vv, mpmath.mpf(eps))
            if not (mpmath.isfinite(yy) and mpmath.isfinite(pp) and mpmath.isfinite(vv)) or vv == 0:
                out[idx] = mpmath.mpf(0)
                continue
            out[idx] = abs(mpmath.log(vv)) / 2 + (pp - yy) ** 2 / (2 * vv) + \
                (mpmath.log(2 * mpmath.pi) / 2 if full else 0)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("full,eps", [(False, 1e-6), (True, 1e-6), (False, 0.0), (True, 0.5)])
def test_reference_against_oracle(fmt, full, eps):
    y, p, v = rows(fmt)
    kw = dict(var=v, eps=eps, full=full)
    elem, ex = L.elementwise(y, p, **kw), L.elementwise.exact(y, p, **kw)
    T = terms_of(None, y, p, v, eps, full)
    if fmt == "float64":
        assert_within(elem, ex, fmt, 4, T, 2 * U64, what="gaussian_nll elementwise")
    else:
        assert_within(elem, ex, fmt, 1, T, 2 * U64, base=0.5, what="gaussian_nll elementwise")
    per, exs = L.per_sample(y, p, **kw), L.exact(y, p, **kw)
    mean_T = [sum(r) / 4 for r in T]
    base = 0.5 if fmt == "float64" else 1.0
    assert_within(per, exs, fmt, base, mean_T, (2 + 4) * U64, what="gaussian_nll per sample")


def test_narrow_formats_one_ulp_without_cancellation():
    for fmt in ("float16", "bfloat16", "float32"):
        y, p, v = rows(fmt)
        assert_ulps(L.elementwise(y, p, var=v), L.elementwise.exact(y, p, var=v), fmt, 1, "gaussian_nll")


def test_special_values():
    y, p, v = rows("float64")
    e = L.elementwise(y, p, var=v).astype(np.float64)
    assert e[0, 0] == 0.0 and e[0, 1] == e[0, 2] == 0.5 * math.log(1e-6)   # var 0, -0 -> eps
    assert e[6].tolist()[:3] == [math.inf, math.inf, math.inf] and np.isnan(e[7, 0])
    assert np.isnan(e[8, 0]) and e[8, 1] == math.inf                          # inf^2 / inf; inf/1
    assert e[2, 2] == math.inf  # big^2 / (2 big): overflows
    z = L.elementwise(np.zeros((1, 2)), np.array([[0.0, 1.0]]), var=0.0, eps=0.0)
    assert np.isnan(z).all()                                                  # -inf + 0/0, -inf + inf


def test_oracle_against_independent_computation():
    y, p, v = rows("float64")
    ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(v)
    for full in (False, True):
        got = np.asarray(L.elementwise.exact(y, p, var=v, full=full).round("float64"), dtype=np.float64)
        with mpmath.workprec(4000):
            for idx in zip(*np.nonzero(ok)):
                d = mpmath.mpf(float(p[idx])) - mpmath.mpf(float(y[idx]))
                vv = max(mpmath.mpf(float(v[idx])), mpmath.mpf(1e-6))
                want = (mpmath.log(vv) + d * d / vv) / 2 + (mpmath.log(2 * mpmath.pi) / 2 if full else 0)
                assert got[idx] == formats.round_mpf(want, "float64"), (idx, got[idx], want)


def test_var_broadcasting_and_blocks():
    rng = np.random.default_rng(1)
    y, p = rng.standard_normal((3, 70000, 2)), rng.standard_normal((3, 70000, 2))
    v = np.exp(rng.standard_normal((3, 70000, 1)))
    per = L.per_sample(y, p, var=v)
    whole = L.elementwise(y, p, var=v).mean(-1)
    np.testing.assert_allclose(per, whole, rtol=1e-14)
    np.testing.assert_allclose(L.per_sample(y[:1, :5], p[:1, :5], var=np.array([2.0, 3.0])),
                               L.per_sample(y[:1, :5], p[:1, :5], var=np.array([[[2.0, 3.0]]]))[0:1])
    with pytest.raises(ValueError, match="does not broadcast"):
        L.per_sample(y, p, var=np.ones((3, 70000, 2, 1)))
    with pytest.raises(ValueError, match="does not broadcast"):
        L.elementwise(y[0], p[0], var=np.ones(3))


@pytest.mark.parametrize("bad,match", [(-1.0, "negative"), (np.array([1.0, -0.5]), "negative"),
                                       (math.nan, "NaN"), (True, "bool"), ("a", "number")])
def test_parameter_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        L.per_sample(np.zeros((1, 2)), np.zeros((1, 2)), var=bad)


def test_other_parameter_errors():
    for kw in ({"eps": -1.0}, {"eps": math.inf}, {"full": 1}):
        with pytest.raises(ValueError):
            L.per_sample(np.zeros((1, 2)), np.zeros((1, 2)), **kw)
    assert L.bind({}) == {"var": 1.0, "eps": 1e-6, "full": False}
    assert L.per_sample(np.zeros((1, 2)), np.zeros((1, 2)), var=math.inf)[0] == math.inf


# --- torch -----------------------------------------------------------------------------------------


def torch_mod():
    return pytest.importorskip("torch")


def _ours():
    from lossref.torch import nn
    return nn


VAR_SHAPES = [(4, 3), (4,), (4, 1), (1, 3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("vshape", VAR_SHAPES + ["float"])
def test_against_torch(dtype, vshape):
    torch = torch_mod()
    nn = _ours()
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((4, 3)) * 3).astype(dtype)
    y = rng.standard_normal((4, 3)).astype(dtype)
    if vshape == "float":
        v, tv = 0.37, 0.37
    else:
        v = np.exp(rng.uniform(-16, 3, vshape)).astype(dtype)
        v.flat[0] = 0.0
        tv = torch.from_numpy(v)
    for full in (False, True):
        for eps in (1e-6, 1e-2, 0.0):
            for red in ("none", "mean", "sum"):
                got = nn.functional.gaussian_nll_loss(x, y, v, full=full, eps=eps, reduction=red)
                want = torch.nn.functional.gaussian_nll_loss(torch.from_numpy(x), torch.from_numpy(y), tv,
                                                             full=full, eps=eps, reduction=red).numpy()
                assert got.dtype == want.dtype and got.shape == want.shape
                err = [formats.ulp_steps(float(a), float(b), dtype) for a, b in zip(got.ravel(), want.ravel())
                       if not (math.isnan(a) and math.isnan(b))]
                assert max(err, default=0) <= 8, (full, eps, red, got, want)
                mod = nn.GaussianNLLLoss(full=full, eps=eps, reduction=red)
                assert np.array_equal(mod(x, y, v), got, equal_nan=True)
                assert np.array_equal(np.asarray(mod.exact(x, y, v).round(), dtype=got.dtype),
                                      np.asarray(nn.functional.gaussian_nll_loss.exact(
                                          x, y, v, full=full, eps=eps, reduction=red).round(), dtype=got.dtype),
                                      equal_nan=True)


def test_dtypes_and_eps_rounding_as_torch():
    torch = torch_mod()
    F = _ours().functional
    x = np.zeros((2, 3), np.float32)
    combos = [(np.float64, np.float32, np.float32), (np.float32, np.float64, np.float32),
              (np.float32, np.float32, np.float64), (np.float16, np.float16, np.float16)]
    for a, b, c in combos:
        got = F.gaussian_nll_loss(x.astype(a), x.astype(b), np.ones((2, 3), c))
        want = torch.nn.functional.gaussian_nll_loss(torch.zeros(2, 3, dtype=getattr(torch, np.dtype(a).name)),
                                                     torch.zeros(2, 3, dtype=getattr(torch, np.dtype(b).name)),
                                                     torch.ones(2, 3, dtype=getattr(torch, np.dtype(c).name)))
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
    # eps is clamp_'s scalar in var's dtype: float16 holds 1e-6 as 1.0133e-6
    got = F.gaussian_nll_loss(x.astype(np.float16), x.astype(np.float16), 0.0)
    want = torch.nn.functional.gaussian_nll_loss(torch.zeros(2, 3, dtype=torch.float16),
                                                 torch.zeros(2, 3, dtype=torch.float16), 0.0)
    assert float(got) == float(want)
    # integer input and target with a float var: float32
    assert F.gaussian_nll_loss(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64), 1.0).dtype == np.float32


@pytest.mark.parametrize("var,exc,match", [
    (-1.0, ValueError, "var has negative entry/entries"),
    (np.array([[1.0, -1.0, 1.0]] * 2), ValueError, "var has negative entry/entries"),
    (np.ones(5), ValueError, "var is of incorrect size"),
    (np.ones(3), ValueError, "var is of incorrect size"),        # per feature is not accepted
    (np.ones((1, 1)), ValueError, "var is of incorrect size"),   # two mismatched dimensions
    (np.array(1.0), ValueError, "var is of incorrect size"),
    (1, TypeError, None),
    (np.ones((2, 3), np.int64), RuntimeError, None),
])
def test_errors_as_torch(var, exc, match):
    torch = torch_mod()
    F = _ours().functional
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(exc, match=match):
        F.gaussian_nll_loss(x, x, var)
    tv = torch.from_numpy(var) if isinstance(var, np.ndarray) else var
    with pytest.raises(exc, match=match):
        torch.nn.functional.gaussian_nll_loss(torch.from_numpy(x), torch.from_numpy(x), tv)


def test_reduction_error_and_order_as_torch():
    torch = torch_mod()
    F = _ours().functional
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="^bad is not valid$"):
        F.gaussian_nll_loss(x, x, 1.0, reduction="bad")
    with pytest.raises(ValueError, match="negative"):  # var is checked first, as torch
        F.gaussian_nll_loss(x, x, -1.0, reduction="bad")
    with pytest.raises(ValueError, match="negative"):
        torch.nn.functional.gaussian_nll_loss(torch.zeros(2, 3), torch.zeros(2, 3), -1.0, reduction="bad")


def test_signatures_as_torch():
    torch = torch_mod()
    nn = _ours()

    def params(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert params(nn.functional.gaussian_nll_loss) == params(torch.nn.functional.gaussian_nll_loss)
    assert params(nn.GaussianNLLLoss.__init__) == params(torch.nn.GaussianNLLLoss.__init__)
    assert [p[0] for p in params(nn.GaussianNLLLoss.forward)] == \
        [p[0] for p in params(torch.nn.GaussianNLLLoss.forward)]
    assert "gaussian_nll_loss" in nn.functional.__all__ and "GaussianNLLLoss" in nn.__all__
    with pytest.raises(TypeError):
        nn.GaussianNLLLoss(True)  # keyword-only, as torch


def test_per_row_pitfall():
    """For a (2, 2) input a var of shape (2,) is one variance per row, as torch reads it."""
    F = _ours().functional
    x = np.array([[1.0, 1.0], [1.0, 1.0]])
    got = F.gaussian_nll_loss(x, np.zeros_like(x), np.array([1.0, 4.0]), reduction="none")
    assert got.tolist() == [[0.5, 0.5], [math.log(4) / 2 + 0.125] * 2]
