"""Regression family: reference vs oracle (budgets), oracle vs independent mpmath,
Keras dialect vs real Keras, bad input."""

import math

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import losses as K

from .support import FORMATS, adversarial_residual_pairs, assert_sum_bound, assert_ulps, in_format

REGRESSION = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
              "mean_squared_logarithmic_error", "huber", "log_cosh"]
PARAMS = {
    "mean_squared_error": [{}],
    "mean_absolute_error": [{}],
    "mean_absolute_percentage_error": [{}, {"epsilon": None}],
    "mean_squared_logarithmic_error": [{}, {"epsilon": None}],
    "huber": [{}, {"delta": 0.25}, {"delta": 1e3}],
    "log_cosh": [{}],
}
CASES = [(n, p) for n in REGRESSION for p in PARAMS[n]]


def _inputs(fmt):
    t, p = adversarial_residual_pairs(fmt, np.random.default_rng(7))
    return in_format(t, fmt), in_format(p, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params", CASES)
def test_elementwise_budget(name, params, fmt):
    L = lossref.get(name)
    t, p = _inputs(fmt)
    got = L.elementwise(t, p, **params)
    assert got.dtype == formats.get_format(fmt).dtype
    assert_ulps(got, L.elementwise.exact(t, p, **params), fmt, 1 if fmt != "float64" else 4,
                what=f"{name}{params} elementwise")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params", CASES)
def test_per_sample_budget(name, params, fmt):
    L = lossref.get(name)
    t, p = _inputs(fmt)
    got = L.per_sample(t, p, **params)
    exact = L.exact(t, p, **params)
    if fmt != "float64":
        assert_ulps(got, exact, fmt, 1, what=f"{name}{params} per-sample")
    else:
        e = L.elementwise.exact(t, p, **params)
        e.round("float64")
        terms = np.abs(e.values(e.final_prec))
        mean_abs = np.array([mpmath.fsum(r) / len(r) for r in terms], dtype=object)
        k = math.ceil(math.log2(t.shape[-1])) + 4
        assert_sum_bound(got, exact, mean_abs, fmt, k, what=f"{name}{params} per-sample")


# --- the oracle against an independent evaluation -------------------------------------------

def _independent(name, params, y, p):
    """Each loss by a different formula, at a fixed high precision (caller's workprec)."""
    y, p = mpmath.mpf(y), mpmath.mpf(p)
    if not (mpmath.isfinite(y) and mpmath.isfinite(p)):
        return None
    e = p - y
    if name == "mean_squared_error":
        return mpmath.fabs(e) ** 2
    if name == "mean_absolute_error":
        return mpmath.sqrt(e * e)
    if name == "mean_absolute_percentage_error":
        eps = params.get("epsilon", 1e-7)
        den = mpmath.fabs(y) if eps is None else max(mpmath.fabs(y), mpmath.mpf(eps))
        return None if den == 0 else mpmath.fabs(e / den) * 100
    if name == "mean_squared_logarithmic_error":
        eps = params.get("epsilon", 1e-7)
        a, b = (p, y) if eps is None else (max(p, mpmath.mpf(eps)), max(y, mpmath.mpf(eps)))
        if a <= -1 or b <= -1:
            return None
        return mpmath.log((1 + a) / (1 + b)) ** 2
    if name == "huber":
        d = mpmath.mpf(params.get("delta", 1.0))
        a = mpmath.fabs(e)
        return a * a / 2 if a <= d else d * (a - d / 2)
    if name == "log_cosh":
        a = mpmath.fabs(e)
        return a - mpmath.log(2) + mpmath.log1p(mpmath.exp(-2 * a))  # cosh = e^a (1 + e^-2a) / 2


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params", CASES)
def test_oracle_matches_independent_evaluation(name, params, fmt):
    L = lossref.get(name)
    t, p = _inputs(fmt)
    ex = L.elementwise.exact(t, p, **params)
    rounded = ex.round(fmt)
    prec = 2 * ex.final_prec
    checked = 0
    with mpmath.workprec(prec):
        for idx in np.ndindex(t.shape):
            want = _independent(name, params, float(t[idx]), float(p[idx]))
            if want is None:
                continue
            assert formats.round_mpf(want, fmt) == float(rounded[idx]), (idx, t[idx], p[idx])
            checked += 1
    assert checked >= 0.7 * t.size


# --- Keras dialect ----------------------------------------------------------------------------

PAIRS = [("MeanSquaredError", "mean_squared_error", {}), ("MeanAbsoluteError", "mean_absolute_error", {}),
         ("MeanAbsolutePercentageError", "mean_absolute_percentage_error", {}),
         ("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error", {}),
         ("Huber", "huber", {"delta": 0.7}), ("LogCosh", "log_cosh", {})]
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]


def _typical(rng, shape):
    y = rng.uniform(-2, 3, shape).astype(np.float32)
    p = (y + rng.normal(0, 1, shape)).astype(np.float32)
    return y, p


def _close(ours, theirs, scale):
    # Keras accumulates in float32: a few ulps of the result, plus the cancellation of
    # log-cosh's x + softplus(-2x) - log 2 and MSLE's log(x+1) (about u32 * terms)
    tol = 8 * 2.0 ** -24 * (np.abs(ours) + scale)
    assert np.all(np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64)) <= tol), (ours, theirs)


@pytest.mark.parametrize("cls, fn, kw", PAIRS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classes_agree_with_keras(keras, cls, fn, kw, reduction):
    rng = np.random.default_rng(3)
    for shape, weights in [((4, 5), [None, rng.uniform(0, 2, 4), rng.uniform(0, 2, (4, 1))]),
                           ((3, 2, 5), [None, rng.uniform(0, 2, (3, 2)), rng.uniform(0, 2, (3, 1))])]:
        y, p = _typical(rng, shape)
        ours_cls = getattr(K, cls)(reduction=reduction, **kw)
        theirs_cls = getattr(keras.losses, cls)(reduction=reduction, **kw)
        for sw in weights:
            ours = ours_cls(y, p, sample_weight=sw)
            theirs = np.asarray(theirs_cls(y, p, sample_weight=sw))
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
            scale = 1e-6 if fn in ("mean_squared_error", "mean_absolute_error") else 4.0
            scale *= 1 if reduction != "sum" else np.prod(shape[:-1])
            _close(ours, theirs, scale)
            # the exact twin agrees with the reference to the float32 rounding
            ex = ours_cls.exact(y, p, sample_weight=sw).round()
            np.testing.assert_array_max_ulp(ours, ex, maxulp=1)
        f_ours = getattr(K, fn)(y, p, **kw)
        f_theirs = np.asarray(getattr(keras.losses, fn)(y, p, **kw))
        assert f_ours.shape == f_theirs.shape
        _close(f_ours, f_theirs, 4.0)


def test_functions_keep_input_dtype_like_keras(keras):
    y = np.ones((2, 3), np.float16)
    for fn in ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
               "mean_squared_logarithmic_error", "huber", "log_cosh"]:
        assert getattr(K, fn)(y, 2 * y).dtype == np.asarray(getattr(keras.losses, fn)(y, 2 * y)).dtype, fn
    assert K.mean_squared_error(y, y.astype(np.float64)).dtype == np.float64  # y_pred decides


def test_seed_example():
    y_true, y_pred = np.zeros((2, 2)), np.ones((2, 2))
    out = K.MeanSquaredError()(y_true, y_pred)
    assert out.shape == () and out.dtype == np.float32 and float(out) == 1.0
    assert K.MeanSquaredError(reduction=None)(y_true, y_pred).tolist() == [1.0, 1.0]
    assert K.mean_squared_error(y_true, y_pred).tolist() == [1.0, 1.0]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_keras_constants_are_rounded_like_keras(keras):
    # y = 0: MAPE divides by eps rounded to y_pred's dtype; float16 eps is 2^-23
    y = np.zeros((1, 1), np.float16)
    p = np.ones((1, 1), np.float16)
    assert float(K.mean_absolute_percentage_error(y, p)[0]) == math.inf  # 100 * 2^23 > float16 max
    assert np.asarray(keras.losses.mean_absolute_percentage_error(y, p)).tolist() == \
        K.mean_absolute_percentage_error(y, p).tolist()
    # Huber's delta is converted to y_pred's dtype: 0.1 in float16 is 0.0999755859375
    e = K.huber.exact(np.zeros((1, 1), np.float16), np.full((1, 1), 0.0999755859375, np.float16), delta=0.1)
    assert e.decimal(10)[0] == "4.997558892e-3"  # quadratic branch: 0.0999755859375^2 / 2


def test_rank_fix_and_broadcast():
    # (B,) vs (B,1): the rank-1 partner is expanded, giving one value per sample
    assert K.mean_squared_error(np.zeros(3), np.ones((3, 1))).shape == (3,)
    # (2,3) vs (3,): Keras broadcasts
    assert K.mean_squared_error(np.zeros((2, 3)), np.ones(3)).tolist() == [1.0, 1.0]


def test_bad_input():
    with pytest.raises(ValueError, match=r"y_true shape \(3, 4\) and y_pred shape \(3, 5\)"):
        K.mean_squared_error(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(TypeError, match="y_pred must be numeric"):
        K.MeanSquaredError()(np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(TypeError, match="sample_weight must be numeric"):
        K.MeanSquaredError()(np.zeros((2, 2)), np.zeros((2, 2)), sample_weight=["x", "y"])
    with pytest.raises(ValueError, match="reduction='avg' is not supported"):
        K.MeanSquaredError(reduction="avg")
    with pytest.raises(KeyError, match="unknown loss 'mse'"):
        lossref.get("mse")
    with pytest.raises(ValueError, match=r"delta=-1.0 is invalid"):
        lossref.get("huber").per_sample(np.zeros((1, 2)), np.zeros((1, 2)), delta=-1.0)
    with pytest.raises(TypeError, match="unknown parameter"):
        lossref.get("huber").per_sample(np.zeros((1, 2)), np.zeros((1, 2)), alpha=1.0)
    with pytest.raises(ValueError, match="must be equal"):
        lossref.get("log_cosh").per_sample(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="y_true must be an array of float"):
        lossref.get("log_cosh").per_sample(np.zeros((2, 2), int), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="got scalars"):
        K.mean_squared_error(0.0, 1.0)


def test_large_input_is_chunked_and_matches_unchunked():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(600, 1000)).astype(np.float32)
    p = rng.normal(size=(600, 1000)).astype(np.float32)
    L = lossref.get("log_cosh")
    whole = L.per_sample(t, p)
    parts = np.concatenate([L.per_sample(t[:300], p[:300]), L.per_sample(t[300:], p[300:])])
    assert np.array_equal(whole, parts)


def test_empty_and_zero_width():
    L = lossref.get("mean_squared_error")
    assert L.per_sample(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)
    assert np.isnan(L.per_sample(np.zeros((2, 0)), np.zeros((2, 0)))).all()
    assert np.isnan(L.exact(np.zeros((2, 0)), np.zeros((2, 0))).round()).all()
    # Keras: an empty batch of (0, D) inputs reduces to an empty array (early return)
    assert K.MeanSquaredError()(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)
