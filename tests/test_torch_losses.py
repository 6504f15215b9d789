"""soft_margin, hinge_embedding, multi_margin and multilabel_margin: the catalogue losses
that PyTorch defines.

Reference against oracle on adversarial inputs in the four formats (the budgets of their
spec pages), the oracle against independent computations (exact rationals, or the
softplus split in mpmath at a fixed high precision), the per-sample values against
torch 2.13 with ``reduction='none'``, and bad input.
"""

from __future__ import annotations

import math
from fractions import Fraction as F

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from tests.support import FORMATS, assert_ulps, assert_within, in_format, representable

U64 = 2.0 ** -53
MARGINS = [1.0, 0.5, -2.0, 0.1]


# --- helpers -------------------------------------------------------------------------------------


def cast(values, fmt):
    """float64 values rounded into `fmt`, held in that format's dtype."""
    return in_format(representable(values, fmt), fmt)


def frac(v) -> F:
    return F(float(v))


def finite_rows(*arrays):
    return np.all(np.stack([np.isfinite(np.asarray(a, np.float64)) for a in arrays]), axis=(0, -1))


def rounded(v, fmt) -> float:
    """Correct rounding of a Fraction or an mpf into `fmt`."""
    with mpmath.workprec(6000):  # an error far below any ulp of the four formats
        m = mpmath.mpf(v.numerator) / v.denominator if isinstance(v, F) else mpmath.mpf(v)
        return formats.round_mpf(m, fmt)


def check_independent(exact_of, arrays, values, fmt, what=""):
    """The oracle's rounding equals the correct rounding of independently computed values,
    row by row: each row is its own case, so no other row's magnitudes raise the oracle's
    starting precision."""
    for i, row in enumerate(values):
        got = np.asarray(exact_of(*(a[i:i + 1] for a in arrays)).round(fmt), dtype=np.float64)
        want = [rounded(v, fmt) for v in np.asarray(row, dtype=object).ravel()]
        assert got.ravel().tolist() == want, f"{what} {fmt} row {i}: oracle {got.ravel().tolist()} vs {want}"


def stage2_budget(per, ex, fmt, abs_mean, k, what):
    """Per-sample: 1 ulp in the narrow formats, 1/2 ulp in float64, plus ``k u64 mean|terms|``."""
    base = 0.5 if fmt == "float64" else 1.0
    assert_within(per, ex, fmt, base, abs_mean, k * U64, what=what)


def torch_mod():
    return pytest.importorskip("torch")


# --- catalogue ----------------------------------------------------------------------------------


NAMES = ["soft_margin", "hinge_embedding", "multi_margin", "multilabel_margin"]


def test_registered():
    for n in NAMES:
        assert n in lossref.names()
    assert lossref.get("soft_margin").stage2 == "mean" and lossref.get("hinge_embedding").stage2 == "mean"
    for n in ("multi_margin", "multilabel_margin"):
        L = lossref.get(n)
        assert L.stage2 == "structured" and L.rowwise and L.elementwise is None
    assert lossref.get("multi_margin").bind({}) == {"p": 1, "margin": 1.0, "weight": None}
    assert lossref.get("hinge_embedding").bind({}) == {"margin": 1.0}


def test_cli_lists_them_without_a_dialect(capsys):
    from lossref import cli

    assert cli.main(["list"]) == 0
    lines = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    for n in NAMES:
        assert lines[n][-1] == "-"


# --- soft_margin ---------------------------------------------------------------------------------


def soft_margin_rows(fmt):
    f = formats.get_format(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([1, -1, 0, 1], [0, -0.0, 5, 0]),                       # ln 2
        ([1, 1, -1, 1], [sub, -sub, f.tiny, -f.tiny]),          # ln 2 -+ x/2
        ([1, -1, 1, -1], [big, big, -big, -big]),               # 0 and big
        ([1, 1, 1, 1], [-12, -89, -710, -800]),                 # exp(-y x) overflows naively
        ([1, 1, 1, 1], [16, 17, 95, 100]),                      # about exp(-y x): subnormal results
        ([1, 1, 1, 1], [700, 720, 740, 745]),
        ([3, 1 + 2 * e, -7, 0.1], [10.1, 30, -4.3, 300.7]),     # y x near 30, products inexact
        ([3, 1 + 2 * e, -7, 0.1], [233.3, 700, -100.1, 7000.3]),  # y x near 700
        ([0.5, 2, -0.25, 1e-3], [3, -4, 7, 1000]),              # labels other than -1 and +1
        ([1, -1, 1, 0], [math.inf, math.inf, -math.inf, math.inf]),  # 0, inf, inf, NaN (0 inf)
        ([math.nan, 1, 1, 1], [1, 1, 1, 1]),
        ([1, 1, 1, -1], [0.5, math.nan, 1, 1]),
    ]
    rng = np.random.default_rng(3)
    ys = np.where(rng.random((4, 4)) < 0.5, -1.0, 1.0)
    xs = rng.standard_normal((4, 4)) * np.exp(rng.uniform(-6, 6, (4, 4)))
    rows += list(zip(ys.tolist(), xs.tolist()))
    return cast([r[0] for r in rows], f), cast([r[1] for r in rows], f)


def _softplus_independent(y, x, prec):
    """``log(1 + exp(z))``, ``z = -y x`` exact, as ``max(z, 0) + log1p(exp(-|z|))`` at `prec` bits."""
    with mpmath.workprec(prec):
        z = -frac(y) * frac(x)
        zm = mpmath.mpf(z.numerator) / z.denominator
        return max(zm, 0) + mpmath.log1p(mpmath.exp(-abs(zm)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_soft_margin_accuracy(fmt):
    L = lossref.get("soft_margin")
    y, x = soft_margin_rows(fmt)
    elem, ex_elem = L.elementwise(y, x), L.elementwise.exact(y, x)
    assert_ulps(elem, ex_elem, fmt, 1 if fmt != "float64" else 4, "soft_margin elementwise")
    per, ex = L.per_sample(y, x), L.exact(y, x)
    if fmt != "float64":
        assert_ulps(per, ex, fmt, 1, "soft_margin")
    ok = finite_rows(y, x)
    mean_terms = [sum(abs(v) for v in r) / 4 for r in ex_elem.values(ex_elem.final_prec)]
    stage2_budget(per, ex, fmt, mean_terms, 2 + 4, "soft_margin")  # k = ceil(log2 4) + 4
    # independent: the softplus split at a fixed precision well past the oracle's last one
    prec = 2 * ex_elem.final_prec + 200
    want = [[_softplus_independent(a, b, prec) for a, b in zip(r, s)] for r, s in zip(y[ok], x[ok])]
    check_independent(L.elementwise.exact, (y[ok], x[ok]), want, fmt, "soft_margin")
    special = elem[~ok].astype(np.float64)
    assert special[0].tolist()[:3] == [0.0, math.inf, math.inf] and math.isnan(special[0][3])
    assert np.isnan(per[~ok][1:].astype(np.float64)).all()
    assert float(elem[0, 0]) == rounded(mpmath.log(2), fmt) == float(elem[0, 2])  # y = 0: ln 2


def test_soft_margin_large_margins_do_not_overflow():
    L = lossref.get("soft_margin")
    # naive log(1 + exp(1000)) overflows: the loss is 1000 + log1p(exp(-1000)), i.e. 1000
    assert L.elementwise(np.array([[1.0, -1.0]]), np.array([[-1000.0, 1000.0]])).tolist() == [[1000.0, 1000.0]]
    # far in the tail the result is exp(-y x): the product must be exact (y x = 700.0000000000001...)
    y, x = np.array([[1 + 2 ** -52]]), np.array([[700.0]])
    got = L.elementwise(y, x)
    with mpmath.workprec(200):
        want = mpmath.log1p(mpmath.exp(-mpmath.mpf(1 + 2 ** -52) * 700))
    assert formats.ulp_error(float(got[0, 0]), want, "float64") <= 1
    # the oracle alone on that case (log(1 + t) would round to 0 at every precision)
    assert float(L.elementwise.exact(y, x).round()[0, 0]) == formats.round_mpf(want, "float64")


# --- hinge_embedding -----------------------------------------------------------------------------


def hinge_embedding_rows(fmt, m):
    f = formats.get_format(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([1, -1, -1, -1], [m, m, m * (1 - e), m * (1 + 2 * e)]),       # at and across the margin
        ([-1, 1, -1, 0], [sub, sub, -sub, f.tiny]),                    # subnormal scores
        ([-1, -1, 1, 0], [-big, big, -big, -big]),                     # huge: m + big, 0, -big, m
        ([0, 0.5, 2, math.nan], [0.7, -3, 5, 0.2]),                    # other labels: both terms
        ([0, 0, 0, 0], [-big / 2, -1e3, m * (1 + 2 * e), -0.0]),      # (m - x) + x cancels naively
        ([1, -1, 1, -1], [-0.0, 0.0, -2.5, -2.5]),
        ([1, -1, -1, 0], [math.inf, math.inf, -math.inf, math.inf]),  # inf, 0, inf, inf
        ([0, 1, 1, 1], [-math.inf, 0.5, 0.5, 0.5]),                    # inf - inf
        ([1, -1, 1, 1], [math.nan, 0.5, 0.5, 0.5]),
        ([-1, -1, 1, 1], [math.nan, 0.5, 0.5, 0.5]),
    ]
    rng = np.random.default_rng(4)
    ys = np.where(rng.random((4, 4)) < 0.5, -1.0, 1.0)
    xs = rng.standard_normal((4, 4)) * np.exp(rng.uniform(-4, 4, (4, 4)))
    rows += list(zip(ys.tolist(), xs.tolist()))
    return cast([r[0] for r in rows], f), cast([r[1] for r in rows], f)


def _hinge_embedding_exact(y, x, m):
    """The definition term by term, in rationals (finite x, any label)."""
    m = F(m)
    push = max(F(0), m - frac(x))
    if y == 1:
        return frac(x)
    return push if y == -1 else push + frac(x)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("m", MARGINS)
def test_hinge_embedding_accuracy(fmt, m):
    L = lossref.get("hinge_embedding")
    y, x = hinge_embedding_rows(fmt, m)
    elem, ex_elem = L.elementwise(y, x, margin=m), L.elementwise.exact(y, x, margin=m)
    # float64: every term is exact or a single rounding
    assert_ulps(elem, ex_elem, fmt, 1 if fmt != "float64" else 0.5, "hinge_embedding elementwise")
    per, ex = L.per_sample(y, x, margin=m), L.exact(y, x, margin=m)
    mean_terms = [sum(abs(v) for v in r) / 4 for r in ex_elem.values(ex_elem.final_prec)]
    stage2_budget(per, ex, fmt, mean_terms, 2 + 2, "hinge_embedding")  # terms of both signs
    ok = finite_rows(x)  # NaN labels included: they get both terms
    want = [[_hinge_embedding_exact(float(a), b, m) for a, b in zip(r, s)] for r, s in zip(y[ok], x[ok])]
    check_independent(lambda a, b: L.elementwise.exact(a, b, margin=m), (y[ok], x[ok]), want, fmt,
                      "hinge_embedding")
    e = elem.astype(np.float64)
    # y = 0, x = -big/2: max(m, x) = m, where (m - x) + x rounds to 0 or less
    assert e[4, 0] == rounded(F(m), fmt) and e[4, 1] == rounded(F(m), fmt)
    assert e[6].tolist() == [math.inf, 0.0, math.inf, math.inf]
    assert np.isnan(e[7, 0]) and np.isnan(e[8, 0]) and np.isnan(e[9, 0])
    assert float(elem[3, 3]) == rounded(max(F(m), frac(x[3, 3])), fmt)  # NaN label: both terms


# --- multi_margin --------------------------------------------------------------------------------


def multi_margin_rows(fmt):
    """(labels, scores in `fmt`) for C = 4 (margins near 1 cancel for margin = 1)."""
    f = formats.get_format(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        (0, [1, 0, 0, 0]),                            # every term exactly 0 at margin 1
        (1, [2 * e, 1, -e, 1 - e]),                   # terms 2e, 0, 1 - e: near-cancelling
        (2, [big, big / 2, big, big * (1 - e)]),      # huge, cancelling to the margin
        (3, [sub, -sub, f.tiny, 0]),                  # subnormal scores
        (0, [-big / 2, big / 4, 0, -big / 4]),        # huge terms
        (0, [-big, big / 2, 0, 0]),                   # a term overflows the format, the mean does not
        (1, [0.25, 3, -7.5, 2.875]),
        (1, [0, math.inf, 0, 1]),                     # x_y = inf: every term 0
        (0, [0, math.inf, 0, 1]),                     # inf
        (1, [0, math.inf, math.inf, 1]),              # inf - inf: NaN
        (2, [0, math.nan, 0, 1]),
        (2, [0, 1, math.nan, 1]),
    ]
    rng = np.random.default_rng(5)
    rows += [(int(k), r) for k, r in zip(rng.integers(0, 4, 4),
                                         (rng.standard_normal((4, 4)) * 2).tolist())]
    return np.array([r[0] for r in rows]), cast([r[1] for r in rows], f)


def _multi_margin_exact(k, row, p, m, w):
    wk = F(1) if w is None else F(w[k])
    xs = [frac(v) for v in row]
    terms = [max(F(0), F(m) - xs[k] + xs[i]) ** p for i in range(len(xs)) if i != k]
    return wk * sum(terms) / len(xs)


MULTI_CASES = [{}, {"p": 2}, {"margin": 0.5}, {"margin": -2.0, "p": 2}, {"margin": 0.1},
               {"weight": [0.5, 2.0, -1.0, 3.0]}, {"p": 2, "weight": np.array([1.0, 0.25, 4.0, 1.5])}]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kw", MULTI_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_multi_margin_accuracy(fmt, kw):
    L = lossref.get("multi_margin")
    k, x = multi_margin_rows(fmt)
    per, ex = L.per_sample(k, x, **kw), L.exact(k, x, **kw)
    # every term is >= 0: a relative bound, (ceil(log2 C) + 5) u for float64
    assert_ulps(per, ex, fmt, 1 if fmt != "float64" else 2 + 5, "multi_margin")
    ok = finite_rows(x)
    p, m, w = kw.get("p", 1), kw.get("margin", 1.0), kw.get("weight")
    want = [_multi_margin_exact(int(a), r, p, m, w) for a, r in zip(k[ok], x[ok])]
    check_independent(lambda a, b: L.exact(a, b, **kw), (k[ok], x[ok]), want, fmt, "multi_margin")
    v = per.astype(np.float64)
    assert v[7] == 0.0 and v[8] == math.inf and np.isnan(v[9:12]).all()
    if m == 1.0 and w is None:
        assert v[0] == 0.0  # every term zero at the margin
    if not kw:
        assert np.isfinite(v[5])  # a term overflows, the mean fits the format


def test_multi_margin_shapes():
    L = lossref.get("multi_margin")
    x = np.array([[0.1, 0.2, 0.4, 0.8], [0.5, -0.3, 0.2, 0.1]])
    both = L.per_sample(np.array([3, 0]), x)
    assert both.shape == (2,)
    assert L.per_sample(np.int64(3), x[0]).shape == () and float(L.per_sample(3, x[0])) == both[0]
    # (B, T, C) scores with (B, T) labels, and float labels holding integers
    x3 = np.stack([x, x[::-1]])
    got = L.per_sample(np.array([[3.0, 0.0], [0.0, 3.0]]), x3)
    assert got.shape == (2, 2) and got.tolist() == [both.tolist(), both[::-1].tolist()]
    # more rows than one block of the registry, rows independent
    rng = np.random.default_rng(8)
    xb = rng.standard_normal((70000, 3)).astype(np.float32)
    kb = rng.integers(0, 3, 70000)
    got = L.per_sample(kb, xb, p=2)
    assert got.dtype == np.float32 and got[:5].tolist() == L.per_sample(kb[:5], xb[:5], p=2).tolist()


# --- multilabel_margin ---------------------------------------------------------------------------


def multilabel_rows(fmt):
    f = formats.get_format(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([3, 0, -1, 1], [0.1, 0.2, 0.4, 0.8]),           # PyTorch's documented example: 0.85
        ([0, -1, 2, 2], [1, 0, 0, 0]),                   # after the -1 nothing counts; terms 0
        ([1, 1, -1, -1], [2 * e, 1, -e, 1 - e]),         # a label listed twice; near-cancelling
        ([-1, 0, 0, 0], [math.nan, 1, 2, 3]),            # no labels: 0 (the NaN is no term)
        ([0, 1, 2, 3], [math.nan, 1, 2, 3]),             # every class a label: 0
        ([2, -1, 0, 0], [sub, -sub, f.tiny, 0]),         # subnormal scores
        ([0, -1, 0, 0], [-big, big / 2, 0, 0]),          # a term overflows the format, the sum does not
        ([3, 2, -1, 0], [big, big / 2, big, big * (1 - e)]),  # huge, cancelling to the margin
        ([1, -1, 0, 0], [0, math.inf, 0, 1]),            # x_j = inf: terms 0
        ([0, -1, 0, 0], [0, math.inf, 0, 1]),            # inf
        ([1, -1, 0, 0], [0, math.inf, math.inf, 1]),     # inf - inf
        ([0, 3, -1, 0], [0, 1, math.nan, 1]),
    ]
    rng = np.random.default_rng(6)
    for _ in range(4):
        n = int(rng.integers(0, 5))
        lab = list(rng.choice(4, n, replace=False)) + [-1] * (4 - n)
        rows.append((lab, (rng.standard_normal(4) * 2).tolist()))
    return np.array([r[0] for r in rows]), cast([r[1] for r in rows], f)


def _multilabel_exact(lab, row):
    lab = list(lab)
    listed = lab[:lab.index(-1)] if -1 in lab else lab
    xs = [frac(v) for v in row]
    others = [i for i in range(len(xs)) if i not in listed]
    return sum(max(F(0), 1 - (xs[j] - xs[i])) for j in listed for i in others) / len(xs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_multilabel_margin_accuracy(fmt):
    L = lossref.get("multilabel_margin")
    t, x = multilabel_rows(fmt)
    per, ex = L.per_sample(t, x), L.exact(t, x)
    assert_ulps(per, ex, fmt, 1 if fmt != "float64" else 2 * 2 + 5, "multilabel_margin")
    ok = finite_rows(x)  # independent: rationals
    want = [_multilabel_exact(a, r) for a, r in zip(t[ok], x[ok])]
    check_independent(L.exact, (t[ok], x[ok]), want, fmt, "multilabel_margin")
    v = per.astype(np.float64)
    assert v[1] == 0.0 and v[3] == 0.0 and v[4] == 0.0 and np.isfinite(v[6])
    assert v[8] == 0.0 and v[9] == math.inf and np.isnan(v[10:12]).all()


def test_multilabel_margin_duplicates_and_shapes():
    L = lossref.get("multilabel_margin")
    x = np.array([[0.1, 0.2, 0.4, 0.8]])
    once, twice = L.per_sample(np.array([[3, -1, 0, 0]]), x), L.per_sample(np.array([[3, 3, -1, 0]]), x)
    assert twice.tolist() == [2 * once[0]]
    assert L.per_sample(np.array([3, 0, -1, 1]), x[0]).shape == ()
    rng = np.random.default_rng(9)  # rows in several blocks of pairs
    xb = rng.standard_normal((3000, 12))
    tb = np.where(rng.random((3000, 12)) < 0.3, rng.integers(0, 12, (3000, 12)), -1)
    got = L.per_sample(tb, xb)
    assert got.shape == (3000,) and got[-3:].tolist() == L.per_sample(tb[-3:], xb[-3:]).tolist()


# --- against torch 2.13 --------------------------------------------------------------------------


def _typical(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_margin_and_hinge_embedding_match_torch(dtype):
    torch = torch_mod()
    fn = torch.nn.functional
    fmt = np.dtype(dtype).name
    rng = np.random.default_rng(11)
    x = _typical(rng, (6, 8), dtype) * dtype(3)
    y = np.where(rng.random((6, 8)) < 0.5, -1, 1).astype(dtype)
    # other labels: general y for soft_margin (powers of two: torch's product stays exact, whose
    # rounding exp would amplify by |y x|), both terms for hinge_embedding
    y[0, :4] = [0.0, 0.5, 2.0, -4.0]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for name, theirs, kw in (("soft_margin", fn.soft_margin_loss(tx, ty, reduction="none"), {}),
                             ("hinge_embedding", fn.hinge_embedding_loss(tx, ty, reduction="none"), {}),
                             ("hinge_embedding", fn.hinge_embedding_loss(tx, ty, margin=0.5, reduction="none"),
                              {"margin": 0.5})):
        L = lossref.get(name)
        assert_ulps(theirs.numpy(), L.elementwise.exact(y, x, **kw), fmt, 4, f"torch {name}")
        assert_ulps(theirs.mean(-1).numpy(), L.exact(y, x, **kw), fmt, 4, f"torch {name} mean")
        assert L.per_sample(y, x, **kw).dtype == dtype


def test_torch_rounds_the_hinge_margin_to_the_input_dtype():
    """A dialect convention, not the catalogue's: torch forms ``margin - x`` in the input's
    dtype, so a float32 input meets ``float32(margin)``."""
    torch = torch_mod()
    x = np.array([[np.nextafter(np.float32(0.1), np.float32(0))]], np.float32)
    y = -np.ones_like(x)
    theirs = torch.nn.functional.hinge_embedding_loss(torch.from_numpy(x), torch.from_numpy(y),
                                                      margin=0.1, reduction="none").numpy()
    L = lossref.get("hinge_embedding")
    assert L.elementwise(y, x, margin=0.1).tolist() != theirs.tolist()
    assert L.elementwise(y, x, margin=float(np.float32(0.1))).tolist() == theirs.tolist()


def test_hinge_embedding_other_labels_follow_torch():
    torch = torch_mod()
    x = np.array([[0.7, 0.7, 0.3, -2.0, 0.7]])
    y = np.array([[0.0, 2.0, 0.5, -7.0, np.nan]])
    theirs = torch.nn.functional.hinge_embedding_loss(torch.from_numpy(x), torch.from_numpy(y),
                                                      reduction="none").numpy()
    assert lossref.get("hinge_embedding").elementwise(y, x).tolist() == theirs.tolist() == [[1.0, 1.0, 1.0, 1.0, 1.0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_margin_matches_torch(dtype):
    torch = torch_mod()
    fmt = np.dtype(dtype).name
    rng = np.random.default_rng(12)
    x = _typical(rng, (8, 10), dtype)
    k = rng.integers(0, 10, 8)
    w = (rng.random(10) + 0.5).astype(dtype)
    L = lossref.get("multi_margin")
    for kw in ({}, {"p": 2}, {"margin": 0.5}, {"p": 2, "margin": 2.0, "weight": w}):
        tkw = {a: (torch.from_numpy(b) if a == "weight" else b) for a, b in kw.items()}
        theirs = torch.nn.functional.multi_margin_loss(torch.from_numpy(x), torch.from_numpy(k),
                                                      reduction="none", **tkw).numpy()
        assert theirs.shape == (8,)
        assert_ulps(theirs, L.exact(k, x, **kw), fmt, 4, f"torch multi_margin {kw}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multilabel_margin_matches_torch(dtype):
    torch = torch_mod()
    fmt = np.dtype(dtype).name
    rng = np.random.default_rng(13)
    x = _typical(rng, (8, 10), dtype)
    t = np.full((8, 10), -1, np.int64)
    for r in range(8):
        lab = rng.choice(10, int(rng.integers(0, 6)), replace=True)  # duplicates too
        t[r, :lab.size] = lab
    t[0, 5:] = rng.integers(0, 10, 5)  # entries after the first -1 are ignored
    theirs = torch.nn.functional.multilabel_margin_loss(torch.from_numpy(x), torch.from_numpy(t),
                                                       reduction="none").numpy()
    assert theirs.shape == (8,)
    assert_ulps(theirs, lossref.get("multilabel_margin").exact(t, x), fmt, 4, "torch multilabel_margin")


def test_torch_drops_nan_margin_terms():
    """torch tests ``z > 0`` term by term, so a NaN score is silently no term (a finding for the
    torch dialect's differential tests); the exact value is NaN."""
    torch = torch_mod()
    x = np.array([[0.1, np.nan, 0.4, 0.8]])
    t = torch.nn.functional.multi_margin_loss(torch.from_numpy(x), torch.tensor([3]), reduction="none")
    assert float(t[0]) == pytest.approx(0.225) and np.isnan(lossref.get("multi_margin").per_sample(np.array([3]), x)[0])


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_errors():
    M, ML = lossref.get("multi_margin"), lossref.get("multilabel_margin")
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"multi_margin: y_true: label 1.5 at index \(1,\) is not an integer in \[0, 3\)"):
        M.per_sample(np.array([0, 1.5]), x)
    with pytest.raises(ValueError, match=r"label 3.0 at index \(0,\) is not an integer in \[0, 3\)"):
        M.per_sample(np.array([3, 0]), x)
    with pytest.raises(ValueError, match=r"label nan"):
        M.exact(np.array([np.nan, 0]), x)
    with pytest.raises(ValueError, match=r"multi_margin: y_true shape \(2, 1\) must be \(2,\)"):
        M.per_sample(np.zeros((2, 1), np.int64), x)
    with pytest.raises(TypeError, match="y_true must hold integer class indices; got dtype bool"):
        M.per_sample(np.array([True, False]), x)
    with pytest.raises(TypeError, match="y_pred must be an array of float16"):
        M.per_sample(np.array([0, 1]), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="non-empty last"):
        M.per_sample(np.array([0, 1]), np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"parameter p=3 is invalid: expected 1 or 2"):
        M.per_sample(np.array([0, 1]), x, p=3)
    with pytest.raises(ValueError, match=r"parameter margin=inf is invalid"):
        M.per_sample(np.array([0, 1]), x, margin=math.inf)
    with pytest.raises(ValueError, match="parameter weight=.* is invalid"):
        M.per_sample(np.array([0, 1]), x, weight=[[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="weight has 2 entries; y_pred has 3 classes"):
        M.per_sample(np.array([0, 1]), x, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="weight has 2 entries"):  # the oracle checks it when it runs
        M.exact(np.array([0, 1]), x, weight=[1.0, 2.0]).round()
    with pytest.raises(ValueError, match=r"multilabel_margin: y_true: label -2.0 at index \(0, 1\) is not an integer in \[-1, 3\)"):
        ML.per_sample(np.array([[0, -2, -1], [0, 1, 2]]), x)
    with pytest.raises(ValueError, match=r"label 3.0 at index \(1, 2\)"):  # checked after the -1 too, as torch
        ML.per_sample(np.array([[0, -1, -1], [0, -1, 3]]), x)
    with pytest.raises(ValueError, match=r"multilabel_margin: y_true shape \(2,\) must be \(2, 3\)"):
        ML.per_sample(np.array([0, 1]), x)
    with pytest.raises(ValueError, match=r"hinge_embedding: parameter margin=nan is invalid"):
        lossref.get("hinge_embedding").per_sample(x, x, margin=math.nan)
    with pytest.raises(ValueError, match=r"soft_margin: y_true shape \(2, 1\) and y_pred shape \(2, 3\) must be equal"):
        lossref.get("soft_margin").per_sample(np.zeros((2, 1)), x)
