"""Hinge, squared hinge, categorical hinge, cosine similarity, Dice and Tversky.

Reference against oracle on adversarial inputs in the four formats, the oracle against
independent exact computations (rational arithmetic, or the unfactored formula at a
fixed high precision for the irrational cosine), the Keras dialect against real Keras
(NumPy backend), the Keras conventions one by one, and bad input.
"""

from __future__ import annotations

import inspect
import math
from fractions import Fraction as F

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import losses as R
from tests.support import FORMATS, assert_ulps, assert_within, in_format, representable

SIX = ["hinge", "squared_hinge", "categorical_hinge", "cosine_similarity", "dice", "tversky"]
CLASSES = ["Hinge", "SquaredHinge", "CategoricalHinge", "CosineSimilarity", "Dice", "Tversky"]
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]
U64 = 2.0 ** -53
EPS = 1e-7


# --- helpers -------------------------------------------------------------------------------------


def fmt_of(name):
    return formats.get_format(name)


def cast(values, fmt):
    """float64 values rounded into `fmt`, held in that format's dtype."""
    return in_format(representable(values, fmt), fmt)


def round_fraction(q: F, fmt) -> float:
    """Correct rounding of a rational into `fmt` (6000-bit quotient: far below any ulp)."""
    with mpmath.workprec(6000):
        return formats.round_mpf(mpmath.mpf(q.numerator) / q.denominator, fmt)


def exact_values(e: lossref.Exact, fmt):
    """Round (deciding the final precision) and return the values at that precision."""
    e.round(fmt)
    return e.values(e.final_prec)


def assert_budget(computed, exact, fmt, terms, k, what=""):
    """``|computed - exact| <= base + k u64 terms`` elementwise, base = 1 ulp in the
    narrow formats and 1/2 ulp in float64; special values must match exactly. `terms`
    (the sum of |terms| of the page's bound) may hold Fractions, mpf or floats."""
    f = fmt_of(fmt)
    assert_within(computed, exact, f, 0.5 if f is formats.FLOAT64 else 1.0, terms, k * U64, what=what)


def finite_rows(y, p):
    return np.all(np.isfinite(y) & np.isfinite(p), -1)


def per_row(fn, y, p, ok):
    """``fn(row of Fractions of y, row of p)`` on the finite rows, 0 elsewhere."""
    out = np.zeros(len(y), dtype=object)
    for i in np.flatnonzero(ok):
        out[i] = fn(frac_array(y[i]).tolist(), frac_array(p[i]).tolist())
    return out


def to_mpf(q: F):
    return mpmath.mpf(q.numerator) / q.denominator


def frac_array(a):
    return np.vectorize(lambda v: F(float(v)), otypes=[object])(np.asarray(a, dtype=np.float64))


def check_rational(exact: lossref.Exact, rational: np.ndarray, fmt, what=""):
    """The oracle's rounding equals the correct rounding of an exact rational result."""
    got = np.asarray(exact.round(fmt), dtype=np.float64).ravel()
    want = [round_fraction(q, fmt) for q in np.asarray(rational, dtype=object).ravel()]
    assert got.tolist() == want, f"{what} {fmt}: oracle {got.tolist()} vs rational {want}"


# --- catalogue and API -------------------------------------------------------------------------------


def test_registered_and_exported():
    for n in SIX:
        L = lossref.get(n)
        assert L.name == n and n in lossref.names()
    assert lossref.get("hinge").stage2 == "mean" and lossref.get("squared_hinge").stage2 == "mean"
    for n in ("categorical_hinge", "cosine_similarity", "dice", "tversky"):
        assert lossref.get(n).stage2 == "structured" and lossref.get(n).elementwise is None
    for n in SIX + CLASSES:
        assert n in R.__all__ and callable(getattr(R, n).exact)
    assert isinstance(R.get("dice"), type(R.dice)) and isinstance(R.get("Tversky"), R.Tversky)


def test_signatures_match_keras(keras):
    for n in SIX + CLASSES:
        assert inspect.signature(getattr(R, n)) == inspect.signature(getattr(keras.losses, n)), n


# --- research notes section 6 and Keras conventions ------------------------------------------------


def test_hinge_label_conversion_is_global(keras):
    p = np.array([[0.3, 0.4]], np.float32)
    alone = R.hinge(np.array([[0.0, 1.0]], np.float32), p)
    # 0/1 labels -> -1/+1: (max(1 + .3, 0) + max(1 - .4, 0)) / 2 = 0.95
    assert alone.tolist() == [np.float32(0.95)]
    two = R.hinge(np.array([[0.0, 1.0], [-1.0, 1.0]], np.float32), np.repeat(p, 2, 0))
    # one -1 anywhere: no conversion for any row; row 0 is (1 + 0.6) / 2 = 0.8
    assert two.tolist() == [np.float32(0.8), np.float32(0.95)]
    for y in ([[0.0, 1.0]], [[0.0, 1.0], [-1.0, 1.0]], [[0.0, 1.0], [0.5, 1.0]],
              [[0.0, np.nan]], [[1.0, 1.0]], [[0.0, 0.0]]):
        y = np.array(y, np.float32)
        pp = np.repeat(p, len(y), 0)
        for ours, theirs in ((R.hinge, keras.losses.hinge),
                             (R.squared_hinge, keras.losses.squared_hinge)):
            # Keras rounds every float32 step: a few ulps apart, never a different rule
            np.testing.assert_allclose(ours(y, pp), theirs(y, pp), rtol=4 * 2 ** -23)
    # the decision is taken after the cast to y_pred's dtype: 1 - 2**-40 becomes 1.0
    y = np.array([[0.0, 1.0 - 2.0 ** -40]])
    assert R.hinge(y, p).tolist() == [np.float32(0.95)]
    np.testing.assert_allclose(R.hinge(y, p), keras.losses.hinge(y, p), rtol=4 * 2 ** -23)
    # the neutral LossDef uses labels as given: 0 means "no margin term"
    assert lossref.get("hinge").per_sample(np.array([[0.0, 1.0]]), np.array([[0.3, 0.4]])).tolist() == [0.8]


def test_categorical_hinge_has_no_label_conversion(keras):
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    p = np.array([[0.3, 0.4, 0.5], [0.2, 0.7, 0.1]], np.float32)
    # pos = 0.4, neg = 0.5 -> 1.1; pos = 0.2, neg = 0.7 -> 1.5
    want = [round_fraction(F(float(np.float32(0.5))) - F(float(np.float32(0.4))) + 1, "float32"),
            round_fraction(F(float(np.float32(0.7))) - F(float(np.float32(0.2))) + 1, "float32")]
    assert R.categorical_hinge(y, p).tolist() == want
    np.testing.assert_allclose(R.categorical_hinge(y, p), keras.losses.categorical_hinge(y, p),
                               rtol=2 ** -22)


def test_dice_research_values(keras):
    y = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    p = np.array([[0.5, 0.5], [1.0, 0.0]], np.float32)
    e32 = F(float(np.float32(1e-7)))
    # axis=None: I = 1.5, sum(y) + sum(p) = 5 -> 1 - 3 / (5 + eps), one scalar
    whole = R.dice(y, p)
    assert whole.shape == () and float(whole) == round_fraction(1 - F(3) / (5 + e32), "float32")
    assert abs(float(whole) - 0.4) < 1e-6
    rows = R.dice(y, p, axis=-1)
    want = [round_fraction(1 - F(1) / (2 + e32), "float32"), round_fraction(1 - F(2) / (3 + e32), "float32")]
    assert rows.tolist() == want and np.allclose(rows, [0.5, 1 / 3])
    np.testing.assert_allclose(whole, keras.losses.dice(y, p), rtol=2 ** -22)
    np.testing.assert_allclose(rows, keras.losses.dice(y, p, axis=-1), rtol=2 ** -22)
    # empty masks: eps only in the denominator -> exactly 1, not 0 or NaN
    z = np.zeros((2, 3), np.float32)
    assert R.dice(z, z).tolist() == 1.0 and R.tversky(z, z, axis=-1).tolist() == [1.0, 1.0]
    assert float(keras.losses.dice(z, z)) == 1.0
    assert math.isnan(float(lossref.get("dice").per_sample(z, z, epsilon=None)))


def test_dice_scalar_output_and_reduction(keras):
    rng = np.random.default_rng(5)
    y = (rng.random((3, 4, 2)) > 0.5).astype(np.float32)
    p = rng.random((3, 4, 2)).astype(np.float32)
    for sw in (None, np.array([1.0, 2.0, 0.5], np.float32), np.float32(3.0), np.array([2.0], np.float32)):
        for red in REDUCTIONS:
            ours = R.Dice(reduction=red)(y, p, sample_weight=sw)
            theirs = keras.losses.Dice(reduction=red)(y, p, sample_weight=sw)
            assert ours.shape == np.shape(theirs), (sw, red)
            np.testing.assert_allclose(ours, theirs, rtol=4 * 2 ** -23, err_msg=f"{sw} {red}")
    # the scalar is returned unreduced; a (B,) weight makes it loss * mean(w)
    s = float(R.Dice(reduction=None)(y, p))
    w = np.array([1.0, 2.0, 0.5], np.float32)
    assert R.Dice(reduction=None)(y, p, sample_weight=w).shape == (3,)
    assert float(R.Dice()(y, p, sample_weight=w)) == pytest.approx(s * w.mean(), rel=1e-6)


def test_tversky_alpha_weights_false_positives(keras):
    # TP = 1, FP = sum((1 - y) p) = 2, FN = 0
    y = np.array([[1.0, 0.0, 0.0]])
    p = np.array([[1.0, 1.0, 1.0]])
    eps = F(float(np.float32(1e-7)))
    got = R.tversky(y.astype(np.float32), p.astype(np.float32), alpha=1.0, beta=0.0)
    assert float(got) == round_fraction(1 - 1 / (1 + 2 + eps), "float32")
    got = R.tversky(y.astype(np.float32), p.astype(np.float32), alpha=0.0, beta=1.0)
    assert float(got) == round_fraction(1 - 1 / (1 + eps), "float32")
    # alpha = beta = 1/2 is Dice with eps / 2 in place of eps
    rng = np.random.default_rng(1)
    yy, pp = (rng.random((4, 5)) > 0.5).astype(float), rng.random((4, 5))
    np.testing.assert_allclose(lossref.get("tversky").per_sample(yy, pp, axis=-1, epsilon=2e-7),
                               lossref.get("dice").per_sample(yy, pp, axis=-1, epsilon=4e-7),
                               rtol=1e-15)
    # Keras up to 3.15.1 swaps the two weights (fixed upstream by keras-team/keras#23333)
    from packaging.version import Version
    y32, p32 = (rng.random((3, 6)) > 0.5).astype(np.float32), rng.random((3, 6)).astype(np.float32)
    theirs = keras.losses.Tversky(alpha=0.2, beta=0.8, axis=-1, reduction=None)(y32, p32)
    swapped = Version(keras.__version__) <= Version("3.15.1")
    ours = R.Tversky(alpha=0.8 if swapped else 0.2, beta=0.2 if swapped else 0.8, axis=-1,
                     reduction=None)(y32, p32)
    np.testing.assert_allclose(ours, theirs, rtol=4 * 2 ** -23)
    other = R.Tversky(alpha=0.2 if swapped else 0.8, beta=0.8 if swapped else 0.2, axis=-1,
                      reduction=None)(y32, p32)
    assert not np.allclose(other, theirs, rtol=1e-4)


def test_cosine_conventions(keras):
    y = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    p = np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [1.0, 2.0]], np.float32)
    got = R.cosine_similarity(y, p)
    assert got.tolist() == [0.0, -1.0, 1.0, 0.0]
    assert np.signbit(got[0]) and np.signbit(got[3])  # -sum(...) of zeros is -0, as Keras
    np.testing.assert_allclose(got, keras.losses.cosine_similarity(y, p), atol=2 ** -23)
    # the norm floor: a vector shorter than eps is divided by eps (keras.ops.normalize)
    short = np.array([[5e-8, 0.0]])
    assert float(R.cosine_similarity(short, np.array([[1.0, 0.0]]))[0]) == -0.5
    neutral = lossref.get("cosine_similarity")
    assert neutral.per_sample(short, np.array([[1.0, 0.0]]), epsilon=None).tolist() == [-1.0]
    assert neutral.per_sample(np.zeros((1, 2)), np.ones((1, 2)), epsilon=None).tolist() == [0.0]
    # axis is honoured by both the normalisation and the sum
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4, 5)).astype(np.float32), rng.standard_normal((3, 4, 5)).astype(np.float32)
    for ax in (1, -2):
        want = keras.losses.cosine_similarity(a, b, axis=ax)
        np.testing.assert_allclose(R.cosine_similarity(a, b, axis=ax), want, rtol=4 * 2 ** -23, atol=2 ** -23)
        np.testing.assert_allclose(R.CosineSimilarity(axis=ax, reduction=None)(a, b), want,
                                   rtol=4 * 2 ** -23, atol=2 ** -23)
    # axis=0 means the first axis (Keras's NumPy backend mis-broadcasts it: a finding)
    m = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    assert R.cosine_similarity(m, m, axis=0).tolist() == [-1.0, -1.0]


def test_functions_apply_no_rank_fix_but_classes_do(keras):
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    p = np.array([0.5, 0.2, 0.1], np.float32)
    for fn in ("hinge", "squared_hinge", "categorical_hinge"):
        ours, theirs = getattr(R, fn)(y, p), getattr(keras.losses, fn)(y, p)
        assert ours.shape == theirs.shape == (3,)
        np.testing.assert_allclose(ours, theirs, rtol=4 * 2 ** -23)
        cls = CLASSES[SIX.index(fn)]
        np.testing.assert_allclose(getattr(R, cls)(reduction=None)(y, p),
                                   getattr(keras.losses, cls)(reduction=None)(y, p), rtol=4 * 2 ** -23)
    np.testing.assert_allclose(R.tversky(y, p, axis=-1), keras.losses.tversky(y, p, axis=-1),
                               rtol=4 * 2 ** -23)


# --- agreement with real Keras on typical inputs ---------------------------------------------------------


def _typical(name, rng, shape):
    if name in ("hinge", "squared_hinge"):
        y = rng.choice([-1.0, 1.0], shape) if rng.random() < 0.5 else rng.choice([0.0, 1.0], shape)
        return y.astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    if name == "categorical_hinge":
        y = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
        return y, rng.random(shape).astype(np.float32) * 2
    if name == "cosine_similarity":
        return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    return (rng.random(shape) > 0.5).astype(np.float32), rng.random(shape).astype(np.float32)


def _kwargs(name):
    if name in ("dice", "tversky"):
        extra = {"alpha": 0.3, "beta": 0.3} if name == "tversky" else {}
        return [dict(extra), dict(extra, axis=-1), dict(extra, axis=(1, 2))]
    if name == "cosine_similarity":
        return [{}, {"axis": 1}]
    return [{}]


@pytest.mark.parametrize("name", SIX)
def test_keras_agreement_every_reduction(keras, name):
    rng = np.random.default_rng(SIX.index(name))
    cls = CLASSES[SIX.index(name)]
    shape = (4, 3, 5)
    y, p = _typical(name, rng, shape)
    weights = [None, rng.random(4).astype(np.float32), rng.random((4, 3)).astype(np.float32)]
    for kw in _kwargs(name):
        per = getattr(R, cls)(reduction=None, **kw)(y, p)
        for sw in weights:
            for red in REDUCTIONS:
                try:
                    theirs = getattr(keras.losses, cls)(reduction=red, **kw)(y, p, sample_weight=sw)
                except ValueError:  # a weight shape that does not broadcast: both refuse
                    with pytest.raises(ValueError):
                        getattr(R, cls)(reduction=red, **kw)(y, p, sample_weight=sw)
                    continue
                ours = getattr(R, cls)(reduction=red, **kw)(y, p, sample_weight=sw)
                assert ours.dtype == np.float32 and ours.shape == np.shape(theirs), (kw, red)
                # a few float32 ulps of the result, or of the sum of |terms| where it cancels
                w = None if sw is None else np.abs(sw)
                scale = np.abs(lossref.reduce(np.abs(per), red, sample_weight=w))
                tol = 4 * np.spacing(np.abs(np.asarray(theirs, np.float32))) + 8 * 2 ** -24 * scale
                assert np.all(np.abs(ours.astype(np.float64) - theirs) <= tol), (kw, sw, red, ours, theirs)
    # the functions too, on the same inputs
    for kw in _kwargs(name):
        theirs = getattr(keras.losses, name)(y, p, **kw)
        ours = getattr(R, name)(y, p, **kw)
        assert ours.shape == np.shape(theirs)
        np.testing.assert_allclose(ours, theirs, rtol=8 * 2 ** -23, atol=8 * 2 ** -24)


# --- adversarial inputs: reference vs oracle, oracle vs independent ----------------------------------------


def hinge_rows(fmt):
    """(y, p) rows of 4: the margin boundary, cancellation in 1 - y p, extremes, specials."""
    f = fmt_of(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    third = representable(1 / 3, f)
    rows = [
        ([1, 1, -1, -1], [1, 1 - 2 * e, -1, -(1 + 2 * e)]),          # exactly at / across the margin
        ([3, -3, 0.5, 2], [third, -third, 2 * (1 - e), 0.5 * (1 + 2 * e)]),  # y p a rounding from 1
        ([1, -1, 1, -1], [sub, sub, -sub, f.tiny]),                  # subnormal predictions
        ([-1, -1, 1, -1], [big, big / 2, big, -big]),               # 1 + huge, huge - 1
        ([0, 0, 0.25, -7.5], [0, 3, -2, 0.1]),                      # general labels as given
        ([-1, 1, 1, 1], [math.inf, math.inf, 0.5, 0.5]),            # inf
        ([0, 1, 1, 1], [math.inf, 0.5, 0.5, 0.5]),                  # 0 * inf = NaN
        ([1, 1, 1, 1], [math.nan, 0.5, 0.5, 0.5]),                  # NaN
    ]
    return (cast([r[0] for r in rows], f), cast([r[1] for r in rows], f))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_family_accuracy(name, fmt):
    L = lossref.get(name)
    y, p = hinge_rows(fmt)
    elem = L.elementwise(y, p)
    assert_ulps(elem, L.elementwise.exact(y, p), fmt, 1 if fmt != "float64" else 4, name)
    per = L.per_sample(y, p)
    ex = L.exact(y, p)
    if fmt != "float64":
        assert_ulps(per, ex, fmt, 1, name)
    ok = finite_rows(y, p)
    terms = per_row(lambda a, b: sum(max(1 - u * v, F(0)) ** (2 if name == "squared_hinge" else 1)
                                     for u, v in zip(a, b)) / 4, y, p, ok)
    assert_budget(per, ex, fmt, terms, 2 + 4, name)  # all terms >= 0: k = ceil(log2 4) + 4
    # independent: exact rationals on the finite rows
    ys, ps = frac_array(y[ok]), frac_array(p[ok])
    m = np.vectorize(lambda a, b: max(1 - a * b, F(0)), otypes=[object])(ys, ps)
    if name == "squared_hinge":
        m = m * m
    check_rational(L.exact(y[ok], p[ok]), m.sum(-1) / 4, fmt, name)
    check_rational(L.elementwise.exact(y[ok], p[ok]), m, fmt, name)
    # special rows: 1 + inf = inf, 1 - inf -> 0, 0 * inf and NaN -> NaN
    special = L.per_sample(y[~ok], p[~ok]).astype(np.float64)
    assert math.isinf(special[0]) and np.isnan(special[1:]).all()


def cat_hinge_rows(fmt):
    f = fmt_of(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([0, 1, 0], [0.5, 1.5, 0.25]),                    # neg - pos + 1 = 0 exactly
        ([0, 1, 0], [0.5, 1.5 * (1 - 2 * e), 0.25]),      # a rounding away from the kink
        ([0.5, 0.5, 0], [1, 3, 2 * (1 + 2 * e)]),         # soft labels, cancellation
        ([0, 1, 0], [sub, 2 * sub, 0]),                   # subnormal scores
        ([0, 1, 0], [big, big / 2, big / 4]),             # huge scores: loss = big/2 + 1
        ([1, 1, 1], [big / 2, big / 2, big / 2]),         # pos overflows in the format
        ([2, -1, 0], [3, 0.1, -4]),                       # general labels, no conversion
        ([0, 1, 0], [math.inf, 1, 0]),                    # inf in the wrong class
        ([0, 1, 0], [0, math.inf, 0]),                    # inf in the right class: 0 * inf
        ([0, 1, 0], [math.nan, 1, 0]),
    ]
    return (cast([r[0] for r in rows], f), cast([r[1] for r in rows], f))


@pytest.mark.parametrize("fmt", FORMATS)
def test_categorical_hinge_accuracy(fmt):
    L = lossref.get("categorical_hinge")
    y, p = cat_hinge_rows(fmt)
    per, ex = L.per_sample(y, p), L.exact(y, p)
    ok = finite_rows(y, p)

    def exact_loss(a, b):
        pos = sum(u * v for u, v in zip(a, b))
        neg = max((1 - u) * v for u, v in zip(a, b))
        return max(neg - pos + 1, F(0))

    terms = per_row(lambda a, b: 1 + abs(max((1 - u) * v for u, v in zip(a, b)))
                    + sum(abs(u * v) for u, v in zip(a, b)), y, p, ok)
    assert_budget(per, ex, fmt, terms, 4, "categorical_hinge")
    if fmt != "float64":  # every row here is well conditioned in float64 terms
        assert_ulps(per, ex, fmt, 1, "categorical_hinge")
    check_rational(L.exact(y[ok], p[ok]), per_row(exact_loss, y, p, ok)[ok], fmt, "categorical_hinge")
    assert float(per[0]) == 0.0
    # inf anywhere meets a 0 label in pos = sum(y p) or a 0 weight in neg: 0 * inf = NaN
    assert np.isnan(per[~ok].astype(np.float64)).all()


def cosine_rows(fmt):
    f = fmt_of(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([1, 2, 3, 4], [1, 2, 3, 4 * (1 + 2 * e)]),                 # near-parallel
        ([1, 1, 1, 1], [1, 1, 1, 1]),                               # exactly parallel: -1
        ([3, 4, 0, 0], [4, -3 * (1 + 2 * e), 0, 0]),                # near-orthogonal
        ([1, 2, 3, 0], [2, -1, 0, 5]),                              # exactly orthogonal: 0
        ([1, 1 + 2 * e, 1 - e, 0.5], [1 + 4 * e, -1, 0.5, -(1 - e)]),  # y.p = 2 ulp(1): kappa ~ 1/e
        ([sub, 2 * sub, 0, 0], [sub, sub, 0, 0]),                   # subnormal (below the floor)
        ([big, big / 2, 0, big / 4], [big, big, big, 0]),           # squares overflow the format
        ([f.tiny, f.tiny, 0, 0], [0, f.tiny, f.tiny, 0]),
        ([5e-8, 0, 0, 0], [1, 0, 0, 0]),                            # norm below epsilon
        ([0, 0, 0, 0], [1, -2, 3, 0]),                              # zero vector
        ([math.inf, 0, 0, 0], [1, 0, 0, 0]),
        ([1, 0, 0, 0], [math.nan, 1, 0, 0]),
    ]
    return (cast([r[0] for r in rows], f), cast([r[1] for r in rows], f))


def _cosine_independent(y, p, eps, prec):
    """The unfactored definition -sum(n(y)_i n(p)_i) at a fixed precision `prec`."""
    out = []
    with mpmath.workprec(prec):
        for yr, pr in zip(y.astype(np.float64), p.astype(np.float64)):
            ym = [mpmath.mpf(float(v)) for v in yr]
            pm = [mpmath.mpf(float(v)) for v in pr]
            ny, np_ = (mpmath.sqrt(mpmath.fsum(v * v for v in vec)) for vec in (ym, pm))
            dy, dp = (max(n, mpmath.mpf(eps)) if eps else (n if n else mpmath.mpf(1))
                      for n in (ny, np_))
            out.append(-mpmath.fsum((a / dy) * (b / dp) for a, b in zip(ym, pm)))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("eps", [EPS, None, 0.0])  # 0: no floor, a zero vector gives 0 as for None
def test_cosine_accuracy(fmt, eps):
    L = lossref.get("cosine_similarity")
    y, p = cosine_rows(fmt)
    per, ex = L.per_sample(y, p, epsilon=eps), L.exact(y, p, epsilon=eps)
    ok = finite_rows(y, p)

    def abs_terms(a, b):  # sum |n(y)_i n(p)_i| with the same norm floor
        with mpmath.workprec(256):
            num = to_mpf(sum(abs(u * v) for u, v in zip(a, b)))
            d = [mpmath.sqrt(to_mpf(sum(u * u for u in vec))) for vec in (a, b)]
            d = [max(x, mpmath.mpf(eps)) if eps else (x or mpmath.mpf(1)) for x in d]
            return num / (d[0] * d[1])

    assert_budget(per, ex, fmt, per_row(abs_terms, y, p, ok), 2 + 5, "cosine_similarity")
    if fmt != "float64":  # compensated dot product: 1 ulp even for near-orthogonal rows
        assert_ulps(per, ex, fmt, 1, "cosine_similarity")
    got = ex.round(fmt)
    indep = _cosine_independent(y[ok], p[ok], eps, max(2 * ex.final_prec, 2400))
    assert got[ok].astype(np.float64).tolist() == [formats.round_mpf(v, fmt) for v in indep]
    # exactly orthogonal is an exact zero, exactly parallel an exact -1
    assert float(per[3]) == 0.0 and float(per[1]) == -1.0
    assert float(per[9]) == 0.0 and np.signbit(per[9])  # zero vector: -0
    assert np.isnan(per[~ok].astype(np.float64)).all()
    # below the floor the vector is divided by eps: -y_0 / eps; without a floor, -1
    want = round_fraction(-F(float(y[8, 0])) / F(EPS), fmt) if eps else -1.0
    assert float(per[8]) == want


def overlap_groups(fmt):
    """(y, p) of shape (rows, 6) for Dice and Tversky with axis=-1."""
    f = fmt_of(fmt)
    e, sub, big = f.eps, f.min_subnormal, f.max
    rows = [
        ([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]),                   # empty masks: 1 (eps only)
        ([1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 0]),                   # perfect: eps / (2n + eps)
        ([1, 1, 0, 0, 1, 0], [1 - e, 1, e, 0, 1, sub]),             # near-perfect
        ([1, 0, 1, 0, 1, 0], [0.9, 0.1, 0.75, 0.3, 0.6, 0.05]),     # typical probabilities
        ([sub, 0, sub, 0, 0, 0], [sub, sub, 0, 0, 0, 0]),           # subnormal masks
        ([1, 1, 1, 0, 0, 0], [big, big / 2, 0, big / 4, 0, 0]),     # huge scores
        ([big, big, 0, 0, 0, 0], [big, 0, big, 0, 0, 0]),           # huge everywhere
        ([2, -1, 0.5, 0, 1, 1], [-0.5, 3, 0.25, 1, 0.5, -1]),       # outside [0, 1]: both signs
        ([1, 0, 0, 0, 0, 0], [math.inf, 0, 0, 0, 0, 0]),
        ([0, 1, 0, 0, 0, 0], [0.5, math.nan, 0, 0, 0, 0]),
    ]
    return (cast([r[0] for r in rows], f), cast([r[1] for r in rows], f))


def _overlap_parts(a_row, b_row):
    tp = sum(u * v for u, v in zip(a_row, b_row))
    fp = sum((1 - u) * v for u, v in zip(a_row, b_row))
    fn = sum(u * (1 - v) for u, v in zip(a_row, b_row))
    return tp, fp, fn


def _overlap_exact(a, b, c, eps):
    """The loss ``1 - c TP / (c TP + a FP + b FN + eps)`` in rationals."""
    def fn(yr, pr):
        tp, fp, fn_ = _overlap_parts(yr, pr)
        return 1 - c * tp / (c * tp + a * fp + b * fn_ + (F(eps) if eps is not None else 0))
    return fn


def _overlap_terms(a, b, c, eps, n):
    """The page's bound in units of u: ``4 |loss| + K u T`` with ``K = 8 (2 + log2 n)**2``,
    ``T = (N + |loss| D) / |den|``, N and D the sums of |terms| of num and den."""
    big_k = 8 * (2 + math.ceil(math.log2(n))) ** 2

    def fn(yr, pr):
        e = F(eps) if eps is not None else F(0)
        num_abs = e + abs(a) * sum(abs((1 - u) * v) for u, v in zip(yr, pr)) \
            + abs(b) * sum(abs(u * (1 - v)) for u, v in zip(yr, pr))
        den_abs = e + abs(a) * sum(abs(v) for v in pr) + abs(b) * sum(abs(u) for u in yr) \
            + abs(c - a - b) * sum(abs(u * v) for u, v in zip(yr, pr))
        tp, fp, fn_ = _overlap_parts(yr, pr)
        den = c * tp + a * fp + b * fn_ + e
        loss = abs(1 - c * tp / den)
        return 4 * loss + big_k * F(U64) * (num_abs + loss * den_abs) / abs(den)
    return fn


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", [("dice", {}), ("dice", {"epsilon": None}),
                                  ("tversky", {}), ("tversky", {"alpha": 0.3, "beta": 0.7}),
                                  ("tversky", {"alpha": 1.0, "beta": 0.25, "epsilon": None})])
def test_dice_tversky_accuracy(fmt, case):
    name, kw = case
    L = lossref.get(name)
    y, p = overlap_groups(fmt)
    if kw.get("epsilon", EPS) is None:  # 0/0 rows (empty masks) are checked separately
        y, p = y[1:], p[1:]
    per, ex = L.per_sample(y, p, axis=-1, **kw), L.exact(y, p, axis=-1, **kw)
    a, b, c = (1.0, 1.0, 2.0) if name == "dice" else (kw.get("alpha", 0.5), kw.get("beta", 0.5), 1.0)
    eps = kw.get("epsilon", EPS)
    a, b, c = F(a), F(b), F(c)
    ok = finite_rows(y, p)
    assert_budget(per, ex, fmt, per_row(_overlap_terms(a, b, c, eps, 6), y, p, ok), 1, name)
    y64, p64 = y.astype(np.float64), p.astype(np.float64)
    with np.errstate(invalid="ignore"):
        unit = ok & np.all((y64 >= 0) & (p64 >= 0) & (y64 <= 1) & (p64 <= 1), -1)
    if fmt != "float64":  # masks and probabilities: no cancellation left, 1 ulp
        assert_ulps(per[unit], L.exact(y[unit], p[unit], axis=-1, **kw), fmt, 1, name)
    check_rational(L.exact(y[ok], p[ok], axis=-1, **kw),
                   per_row(_overlap_exact(a, b, c, eps), y, p, ok)[ok], fmt, name)
    assert np.isnan(per[~ok].astype(np.float64)).all()
    if eps is not None:
        assert float(per[0]) == 1.0  # empty masks
        # perfect prediction (TP = 3): the loss is eps / den, not a cancelled 1 - 1
        want = F(eps) / (c * 3 + F(eps))
        assert formats.ulp_error(float(per[1]), to_mpf(want), fmt) <= (1 if fmt != "float64" else 4)


def test_dice_tversky_axes_and_batch_scalar():
    rng = np.random.default_rng(7)
    y = (rng.random((2, 3, 4)) > 0.5).astype(np.float32)
    p = rng.random((2, 3, 4)).astype(np.float32)
    for name in ("dice", "tversky"):
        L = lossref.get(name)
        for axis, shape in ((None, ()), (-1, (2, 3)), ((1, 2), (2,)), ([0, 2], (3,)), ((), (2, 3, 4))):
            got, ex = L.per_sample(y, p, axis=axis), L.exact(y, p, axis=axis)
            assert got.shape == shape, (name, axis)
            assert_ulps(got, ex, "float32", 1, f"{name} axis={axis}")
        # axis=None reduces everything, batch included
        flat = L.per_sample(y.reshape(1, -1), p.reshape(1, -1), axis=-1)
        assert float(L.per_sample(y, p)) == float(flat[0])
    z = np.zeros((2, 3), np.float32)
    for name in ("dice", "tversky"):
        assert math.isnan(float(lossref.get(name).per_sample(z, z, epsilon=None)))
        assert float(lossref.get(name).exact(z, z).round()) == 1.0


def test_float16_and_bfloat16_constants():
    """eps, alpha and beta are weak Python floats: rounded to the dtype they meet."""
    z16 = np.zeros((1, 2), np.float16)
    assert R.dice(z16, z16).dtype == np.float16 and float(R.dice(z16, z16)) == 1.0
    one = np.ones((1, 2), np.float16)
    e16 = F(float(np.float16(1e-7)))  # a float16 subnormal, not 1e-7
    assert float(R.dice(one, one)) == round_fraction(e16 / (4 + e16), "float16")
    a32 = F(float(np.float32(0.3)))
    y = np.array([[1.0, 0.0]], np.float32)
    p = np.array([[0.5, 0.5]], np.float32)
    eps32 = F(float(np.float32(1e-7)))
    want = 1 - F(1, 2) / (F(1, 2) + a32 * F(1, 2) + a32 * F(1, 2) + eps32)
    assert float(R.tversky(y, p, alpha=0.3, beta=0.3)) == round_fraction(want, "float32")


# --- bad input ------------------------------------------------------------------------------------------------


def test_bad_input_errors():
    a3, a4 = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"cosine_similarity: y_true shape \(2, 3\) and y_pred shape \(2, 4\) differ along axis=-1"):
        R.cosine_similarity(a3, a4)
    with pytest.raises(ValueError, match=r"differ along axis"):
        R.cosine_similarity(np.ones((2, 1), np.float32), a3)  # no broadcasting of the vectors
    with pytest.raises(TypeError, match="axis must be an int"):
        R.cosine_similarity(a3, a3, axis=(0, 1))
    with pytest.raises(ValueError, match="out of bounds for inputs of rank 2"):
        R.CosineSimilarity(axis=2)(a3, a3)
    with pytest.raises(ValueError, match=r"must have the same|must be equal"):
        lossref.get("cosine_similarity").per_sample(a3, a4)
    with pytest.raises(ValueError, match=r"dice: y_true shape \(2, 1\) and y_pred shape \(2, 3\) must be equal"):
        R.dice(np.ones((2, 1), np.float32), a3)
    with pytest.raises(ValueError, match=r"tversky: .*axis 3 is out of bounds"):
        R.tversky(a3, a3, axis=3)
    with pytest.raises(ValueError, match="repeats an axis"):
        R.Dice(axis=(1, 1))(a3, a3)
    with pytest.raises(ValueError, match=r"parameter axis=1.5 is invalid"):
        lossref.get("dice").per_sample(a3, a3, axis=1.5)
    with pytest.raises(ValueError, match=r"parameter alpha=inf is invalid"):
        lossref.get("tversky").per_sample(a3, a3, alpha=math.inf)
    with pytest.raises(ValueError, match="non-empty last"):
        R.categorical_hinge(np.ones((2, 0), np.float32), np.ones((2, 0), np.float32))
    with pytest.raises(ValueError, match="at least one axis"):
        R.hinge(np.float32(1.0), np.float32(0.5))
    with pytest.raises(ValueError, match=r"hinge: y_true shape \(2, 3\) and y_pred shape \(2, 4\) do not broadcast"):
        R.hinge(a3, a4)
    with pytest.raises(TypeError, match="y_true must be numeric"):
        R.squared_hinge(np.array([["a"]]), a3)
    with pytest.raises(TypeError, match="unknown parameter"):
        lossref.get("hinge").per_sample(a3, a3, delta=1.0)


def test_keras_rejects_the_same_shapes(keras):
    a3, a4 = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    for fn, args in (("cosine_similarity", (a3, a4)), ("hinge", (a3, a4)),
                     ("categorical_hinge", (np.ones((2, 0), np.float32),) * 2)):
        with pytest.raises(ValueError):
            getattr(keras.losses, fn)(*args)
        with pytest.raises(ValueError):
            getattr(R, fn)(*args)


def test_tversky_matches_upstream_expectations():
    """Expected values of keras-team/keras's own Tversky tests after the alpha/beta fix
    (PR #23333, after release 3.15.1), on the inputs of those tests."""
    y, p = np.array([[1, 2], [1, 2]]), np.array([[4, 1], [6, 1]])
    np.testing.assert_allclose(R.Tversky()(y, p), -0.55555558, rtol=1e-6)
    np.testing.assert_allclose(R.Tversky(alpha=0.2, beta=0.8)(y, p), -0.94444442, rtol=1e-6)
    ys = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
    ps = np.array([[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]])
    np.testing.assert_allclose(R.Tversky()(ys, ps), 0.77777779, rtol=1e-6)
    np.testing.assert_allclose(R.Tversky(alpha=0.2, beta=0.8)(ys, ps), 0.76190472, rtol=1e-6)
    y4 = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
    p4 = np.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])
    np.testing.assert_allclose(R.Tversky(axis=(1, 2, 3), reduction=None)(y4, p4),
                               [0.5, 0.75757575], rtol=1e-6)
    np.testing.assert_allclose(R.Tversky(alpha=0.2, beta=0.8, axis=(1, 2, 3), reduction=None)(y4, p4),
                               [0.5, 0.78494626], rtol=1e-6)
    # Keras's Dice docstring example (the same inputs)
    np.testing.assert_allclose(R.Dice(axis=(1, 2, 3), reduction=None)(y4, p4), [0.5, 0.75757575], rtol=1e-6)
    np.testing.assert_allclose(R.Dice()(y4, p4), 0.6164384, rtol=1e-6)
