"""Categorical cross-entropy family (categorical, focal, sparse, generalized): reference vs
oracle (budgets), oracle vs an independent high-precision evaluation, Keras dialect vs real
Keras, special values and bad input."""

import inspect
import math
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import losses as K
from lossref.keras.base import clip_bounds

from .support import FORMATS, assert_sum_bound, assert_ulps, in_format, representable

CCE, CFCE = "categorical_crossentropy", "categorical_focal_crossentropy"
SCCE, GCE = "sparse_categorical_crossentropy", "categorical_generalized_cross_entropy"
NAMES = [CCE, CFCE, SCCE, GCE]
INF, NAN = math.inf, math.nan
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]


# --- adversarial inputs ------------------------------------------------------------------------------


def _logit_rows(f):
    """Rows of 4 logits: magnitudes 1e-30 ... 1e4 with both signs, ties, subnormals, ±inf, NaN."""
    rows = []
    for m in [1e-30, 1e-7, 1e-3, 0.5, 1.0, 10.0, 20.0, 100.0, 1e3, 1e4]:
        rows += [[m, -m, 0.0, m / 2], [-m, m, m, -m / 4]]
    sub = f.min_subnormal
    rows += [[1e4, -1e4, 0.0, 1e4], [sub, -sub, 0.0, 2 * sub], [20.0, -20.0, -20.0, -20.0],
             [30.0, 0.0, 0.0, 0.0], [-INF, 0.0, 1.0, 2.0], [2.0, 1.0, -INF, -INF],
             [INF, 0.0, 1.0, 2.0], [NAN, 0.0, 1.0, 2.0], [-INF] * 4, [INF, INF, 0.0, 0.0],
             [0.0, 0.0, 0.0, 0.0]]
    rng = np.random.default_rng(5)
    rows += (rng.standard_normal((4, 4)) * np.exp(rng.uniform(-5, 9, (4, 1)))).tolist()
    return representable(rows, f)


def _prob_rows(f):
    """Rows of 4 probabilities: within 1e-30 of 0 and 1, subnormals, the clip bounds'
    neighbourhood, unnormalised, huge, negative, zero-sum, inf, NaN."""
    sub, big = f.min_subnormal, f.max
    rows = [[1 - 1e-30, 1e-30, 1e-30, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0],
            [0.5, 0.5, 0.0, 0.0], [1e-30] * 4, [sub, sub, 0.0, 1.0], [sub, 0.0, 0.0, 0.0],
            [1.0, 1.0, 2.0, 0.0], [3.0, 5.0, 100.0, 1e4], [big, big, 1.0, 0.0],
            [-0.2, 1.0, 0.2, 0.0], [-1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
            [INF, 1.0, 0.0, 0.0], [NAN, 0.5, 0.5, 0.0], [1 - f.eps, f.eps, 0.0, 0.0],
            [0.9999999, 1e-7, 0.0, 0.0], [1e-7, 1 - 1e-7, 0.0, 0.0], [1.0, 1e-30, 0.0, 0.0],
            [1.0, 1e-300, 0.0, 0.0], [1e-300, 1e-300, 1e-310, 0.0]]
    rng = np.random.default_rng(6)
    rows += rng.dirichlet(np.full(4, 0.3), 5).tolist()
    return representable(rows, f)


def _one_hot_labels(n, c, f, seed=7):
    """One-hot rows cycling over the classes, every third row a soft label."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, c))
    y[np.arange(n), np.arange(n) % c] = 1.0
    y[::3] = rng.dirichlet(np.ones(c), len(y[::3]))
    return representable(y, f)


def one_hot_inputs(kind, fmt):
    f = formats.get_format(fmt)
    p = _logit_rows(f) if kind == "logit" else _prob_rows(f)
    return in_format(_one_hot_labels(len(p), 4, f), fmt), in_format(p, fmt)


def sparse_inputs(kind, fmt):
    f = formats.get_format(fmt)
    p = _logit_rows(f) if kind == "logit" else _prob_rows(f)
    labels = representable((np.arange(len(p)) * 3 % 4) + np.tile([0.0, 0.5, 0.9], len(p))[:len(p)],
                           f)
    return in_format(labels, fmt), in_format(p, fmt)


def gce_inputs(fmt):
    """Picked probabilities near 0 and 1, subnormal, above 1, negative, inf, NaN."""
    f = formats.get_format(fmt)
    vals = [0.0, f.min_subnormal, 1e-30, 1e-7, 0.3, 0.5, 0.7, 1 - 16 * f.eps, 1 - f.eps, 1.0,
            1 + 2 * f.eps, 2.0, f.max, -0.5, INF, NAN]
    v = representable(vals, f)
    p = np.stack([v, representable(np.full(len(v), 0.25), f)], axis=-1)
    labels = np.zeros(len(v))
    p[1::2] = p[1::2, ::-1]
    labels[1::2] = 1.0
    return in_format(labels, fmt), in_format(p, fmt)


def _keras_bounds(params, fmt):
    """`params` with the marker epsilon="keras" replaced by Keras's bounds in `fmt`."""
    if params.get("epsilon") == "keras":
        return {**params, "epsilon": clip_bounds(formats.get_format(fmt))}
    return params


ONE_HOT_CASES = [
    (CCE, {}, "prob"),
    (CCE, {"epsilon": "keras"}, "prob"),
    (CCE, {"epsilon": None}, "prob"),
    (CCE, {"label_smoothing": 0.1}, "prob"),
    (CCE, {"from_logits": True}, "logit"),
    (CCE, {"from_logits": True, "label_smoothing": 0.2}, "logit"),
    (CFCE, {}, "prob"),
    (CFCE, {"epsilon": None, "gamma": 0.5}, "prob"),
    (CFCE, {"alpha": [0.1, 0.2, 0.3, 0.4], "gamma": 5.0, "label_smoothing": 0.2,
            "epsilon": "keras"}, "prob"),
    (CFCE, {"from_logits": True, "epsilon": "keras"}, "logit"),
    (CFCE, {"from_logits": True, "epsilon": None, "gamma": 0.0}, "logit"),
]
SPARSE_CASES = [
    (SCCE, {}, "prob"),
    (SCCE, {"epsilon": "keras"}, "prob"),
    (SCCE, {"epsilon": None}, "prob"),
    (SCCE, {"from_logits": True}, "logit"),
    (SCCE, {"from_logits": True, "ignore_class": 2.0}, "logit"),
    (GCE, {}, "gce"),
    (GCE, {"q": 0.3}, "gce"),
    (GCE, {"q": 0.99}, "gce"),
]
ALL_CASES = ONE_HOT_CASES + SPARSE_CASES


def _ids(cases):
    return [f"{n.split('_')[0][:6]}-{k}-{p}" for n, p, k in cases]


def case_inputs(name, kind, fmt):
    if name in (CCE, CFCE):
        return one_hot_inputs(kind, fmt)
    return gce_inputs(fmt) if kind == "gce" else sparse_inputs(kind, fmt)


def elementwise_budget64(name, params):
    """float64 elementwise ulp budget of the page: 4 (CCE), 3 + |gamma| (focal)."""
    return 3.0 + abs(params.get("gamma", 2.0)) if name == CFCE else 4.0


# --- reference against the oracle ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", ONE_HOT_CASES, ids=_ids(ONE_HOT_CASES))
def test_elementwise_budget(name, params, kind, fmt):
    L = lossref.get(name)
    params = _keras_bounds(params, fmt)
    t, p = one_hot_inputs(kind, fmt)
    got = L.elementwise(t, p, **params)
    assert got.dtype == p.dtype
    budget = 1.0 if fmt != "float64" else elementwise_budget64(name, params)
    assert_ulps(got, L.elementwise.exact(t, p, **params), fmt, budget, name)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", ALL_CASES, ids=_ids(ALL_CASES))
def test_per_sample_budget(name, params, kind, fmt):
    L = lossref.get(name)
    params = _keras_bounds(params, fmt)
    t, p = case_inputs(name, kind, fmt)
    got = L.per_sample(t, p, **params)
    ex = L.exact(t, p, **params)
    if fmt != "float64":
        assert_ulps(got, ex, fmt, 1.0, name)
    elif name in (CCE, CFCE):
        # every term is >= 0 on these inputs: k u sum|terms| with k from the page
        terms = L.elementwise.exact(t, p, **params)
        terms.round()
        abs_sum = np.vectorize(lambda v: float(abs(v)) if mpmath.isfinite(v) else math.inf)(
            terms.values(terms.final_prec)).sum(axis=-1)
        k = 2 * elementwise_budget64(name, params) + math.ceil(math.log2(p.shape[-1]))
        assert_sum_bound(got, ex, abs_sum, fmt, k, name)
    else:
        assert_ulps(got, ex, fmt, 4.0, name)


@pytest.mark.parametrize("n_classes", [1, 2, 3, 17, 1000])
@pytest.mark.parametrize("fmt", FORMATS)
def test_one_hot_with_1_to_1000_classes(fmt, n_classes):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(n_classes)
    z = rng.standard_normal((2, n_classes)) * 8
    z[1, 0] = 60.0  # one dominant class: its log-probability is a tiny number
    z = in_format(representable(z, f), fmt)
    pr = in_format(representable(rng.dirichlet(np.full(n_classes, 0.2), 2), f), fmt)
    top = min(n_classes - 1, 7)  # a label every format holds exactly
    t = np.zeros((2, n_classes))
    t[0, top] = t[1, 0] = 1.0
    labels = in_format(np.array([top, 0.0]), fmt)
    t = in_format(t, fmt)
    budget = 1.0 if fmt != "float64" else 4.0
    for name, params, y, x in [(CCE, {"from_logits": True}, t, z), (CCE, {}, t, pr),
                               (CFCE, {"from_logits": True}, t, z), (CFCE, {}, t, pr),
                               (SCCE, {"from_logits": True}, labels, z), (SCCE, {}, labels, pr),
                               (GCE, {"q": 0.7}, labels, pr)]:
        L = lossref.get(name)
        ex = L.exact(y, x, **params)
        assert_ulps(L.per_sample(y, x, **params), ex, fmt, budget + (name == CFCE), name)
        _check_independent(name, params, y, x, ex, fmt)


def test_huge_logits_beyond_1e4():
    # |z| up to the format's max: -log softmax is the logit gap (2 max: inf) or, for a tie
    # of two maxima at 1e7, log 2 (float16 has 1e7 = inf: inf - inf, NaN)
    for fmt in FORMATS:
        f = formats.get_format(fmt)
        z = in_format(representable([[f.max, -f.max, 0.0], [1e7, -1e7, 1e7]], f), fmt)
        t = in_format(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), fmt)
        got = lossref.get(CCE).per_sample(t, z, from_logits=True).astype(np.float64)
        assert got[0] == INF
        if fmt == "float16":
            assert math.isnan(got[1])
        else:
            assert got[1] == formats.round_mpf(mpmath.log(2), f)
        sc = lossref.get(SCCE).per_sample(in_format(np.array([1.0, 0.0]), fmt), z, from_logits=True)
        assert np.array_equal(sc.astype(np.float64), got, equal_nan=True)


# --- the oracle against an independent evaluation ---------------------------------------------------


def _frac(v):
    return Fraction(float(v))


def _independent_probs(x, logits, normalise=True):
    """Class probabilities at the working precision: the literal softmax without a shift,
    or the plain quotient; None for rows with non-finite entries or a sum <= 0."""
    if not all(math.isfinite(float(v)) for v in x):
        return None
    if not normalise:
        return [mpmath.mpf(float(v)) for v in x]
    if logits:
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in x]
        s = mpmath.fsum(e)
        return [v / s for v in e]
    s = sum(_frac(v) for v in x)
    if s <= 0:
        return None
    return [mpmath.mpf(_frac(v).numerator) / (_frac(v).denominator * s) for v in x]


def _independent(name, params, y, x):
    """Per-sample value by the literal formulas at the working precision, or None."""
    logits = params.get("from_logits", False)
    q = _independent_probs(x, logits, normalise=name != GCE)
    if q is None:
        return None
    eps = params.get("epsilon", 1e-7)
    if eps is not None and not (logits and name == CCE) and not (logits and name == SCCE) \
            and name != GCE:
        lo, hi = (mpmath.mpf(eps), 1 - mpmath.mpf(eps)) if not isinstance(eps, tuple) else \
            (mpmath.mpf(eps[0]), mpmath.mpf(eps[1]))
        q = [min(max(v, lo), hi) for v in q]
    if name in (SCCE, GCE):
        yi = int(math.trunc(float(y)))
        ig = params.get("ignore_class")
        if ig is not None and float(y) == ig:
            return mpmath.mpf(0)
        if name == GCE:
            g = mpmath.mpf(params.get("q", 0.5))
            if q[yi] < 0:
                return mpmath.mpf("nan")  # no real non-integer power of a negative number
            return (1 - mpmath.power(q[yi], g)) / g
        return -mpmath.log(q[yi])
    ys = [mpmath.mpf(float(v)) for v in y]
    ls = params.get("label_smoothing", 0.0)
    if ls:
        ys = [v * (1 - mpmath.mpf(ls)) + mpmath.mpf(ls) / len(ys) for v in ys]
    if any(qi < 0 for qi in q):
        return mpmath.mpf("nan")  # log of a negative ratio: NaN even under a zero label
    terms = [-v * mpmath.log(qi) if v != 0 else mpmath.mpf(0) for v, qi in zip(ys, q)]
    if name == CFCE:
        a = params.get("alpha", 0.25)
        a = [a] * len(ys) if not isinstance(a, list) else a
        g = mpmath.mpf(params.get("gamma", 2.0))
        terms = [mpmath.mpf(ai) * (1 - qi) ** g * tv for ai, qi, tv in zip(a, q, terms)]
    return mpmath.fsum(terms)


def _check_independent(name, params, t, p, ex, fmt, min_fraction=0.0):
    rounded = ex.round(fmt)
    checked = 0
    with mpmath.workprec(max(4000, 2 * ex.final_prec)):
        for idx in np.ndindex(rounded.shape):
            want = _independent(name, params, t[idx], p[idx])
            if want is None:
                continue
            got = float(rounded[idx])
            same = math.isnan(got) if mpmath.isnan(want) else formats.round_mpf(want, fmt) == got
            assert same, (name, params, idx, got, mpmath.nstr(want, 20))
            checked += 1
    assert checked >= min_fraction * rounded.size


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", ALL_CASES, ids=_ids(ALL_CASES))
def test_oracle_matches_independent_evaluation(name, params, kind, fmt):
    L = lossref.get(name)
    params = _keras_bounds(params, fmt)
    t, p = case_inputs(name, kind, fmt)
    _check_independent(name, params, t, p, L.exact(t, p, **params), fmt, min_fraction=0.6)


def test_special_values():
    f64 = np.float64
    cce, scce = lossref.get(CCE), lossref.get(SCCE)
    z = np.array([[-INF, 0.0, 1.0], [-INF, 0.0, 1.0], [INF, 0.0, 1.0], [NAN, 0.0, 1.0],
                  [-INF, -INF, -INF]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                  [1.0, 0.0, 0.0]])
    want0 = float(lossref.get(CCE).per_sample(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]),
                                              from_logits=True)[0])
    got = cce.per_sample(y, z, from_logits=True)
    assert got[0] == pytest.approx(want0, rel=1e-15)  # 0 log 0 = 0: a -inf logit with label 0
    assert got[1] == INF and all(np.isnan(got[2:]))
    assert np.array_equal(cce.exact(y, z, from_logits=True).round(f64), got, equal_nan=True)
    s = scce.per_sample(np.array([1.0, 0.0, 1.0]), z[:3], from_logits=True)
    # a +inf logit elsewhere: this class's probability is 0 (finite / inf)
    assert s[0] == pytest.approx(want0, rel=1e-15) and s[1] == INF and s[2] == INF
    # probabilities: a zero sum gives ±inf ratios that the clip maps to its bounds
    got = cce.per_sample(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
                         np.array([[-1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]))
    assert got[0] == pytest.approx(-math.log(1e-7)) and got[1] == pytest.approx(-math.log1p(-1e-7))
    assert np.isnan(got[2])  # 0/0
    g = lossref.get(GCE).per_sample(np.array([0.0, 0.0, 0.0]), np.array([[0.0, 1], [INF, 1], [-0.5, 1]]))
    assert g[0] == 2.0 and g[1] == -INF and np.isnan(g[2])


# --- Keras dialect: constants, shapes, agreement with real Keras -----------------------------------------


PAIRS = [
    ("CategoricalCrossentropy", {}, "onehot-prob"),
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot-logit"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "soft-prob"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, "soft-logit"),
    ("CategoricalFocalCrossentropy", {}, "onehot-prob"),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.2, 0.3, 0.4, 0.5], "gamma": 1.5,
                                      "label_smoothing": 0.2}, "soft-prob"),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.6, "gamma": 0.0},
     "onehot-logit"),
    ("SparseCategoricalCrossentropy", {}, "sparse-prob"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse-logit"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 3}, "sparse-prob"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1}, "sparse-logit"),
    ("CategoricalGeneralizedCrossEntropy", {}, "sparse-prob"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.8}, "sparse-prob"),
]
PAIR_IDS = [f"{c}-{k}-{kw}" for c, kw, k in PAIRS]
FUNCTION_OF = {"CategoricalCrossentropy": CCE, "CategoricalFocalCrossentropy": CFCE,
               "SparseCategoricalCrossentropy": SCCE, "CategoricalGeneralizedCrossEntropy": GCE}


def typical(kind, shape, kw, seed=0):
    """Typical float32 (y_true, y_pred) for a case: (B, C) or (B, T, C) predictions."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    logits = rng.standard_normal(shape) * 3
    p = logits if "logit" in kind else np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cls = rng.integers(0, c, shape[:-1])
    if "sparse" in kind:
        ig = kw.get("ignore_class")
        if ig is not None:
            cls = np.where(rng.random(cls.shape) < 0.3, ig, cls)
        y = cls.astype(np.float32)
    elif "soft" in kind:
        y = rng.dirichlet(np.ones(c), shape[:-1]).astype(np.float32)
    else:
        y = np.eye(c, dtype=np.float32)[cls]
    return y, p.astype(np.float32)


def assert_close_f32(ours, theirs, ulps=4, what=""):
    """Within `ulps` float32 ulps of the larger of the magnitudes and 1 (elementwise).

    Keras forms ``log p`` of a float32 probability: near p = 1 its absolute error is about
    an ulp of 1 whatever the size of the loss, so small losses are compared at that scale.
    """
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    big = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
    scale = np.spacing(big.astype(np.float32)).astype(np.float64)
    diff = np.abs(a - b)
    assert np.all(diff <= ulps * scale), (what, float(np.max(diff / scale)), a, b)


def _weights(kind, shape):
    rng = np.random.default_rng(3)
    if kind == "per-sample":
        return rng.uniform(0, 2, shape[:1]).astype(np.float32)
    if kind == "per-step":
        return rng.uniform(0, 2, shape[:-1]).astype(np.float32)
    return None


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # Keras's 0/0
@pytest.mark.parametrize("cls, kw, kind", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classes_agree_with_keras(keras, cls, kw, kind, reduction):
    for shape, wkinds in [((6, 5), [None, "per-sample"]), ((3, 4, 5), [None, "per-sample",
                                                                      "per-step"])]:
        y, p = typical(kind, shape, kw, seed=len(shape))
        for wk in wkinds:
            sw = _weights(wk, shape)
            if wk == "per-sample" and len(shape) == 3:
                sw = sw[:, None]  # (B, 1): broadcasts over T (a (B,) weight would hit T)
            ours = getattr(K, cls)(reduction=reduction, **kw)
            theirs = getattr(keras.losses, cls)(reduction=reduction, **kw)
            got = ours(y, p, sample_weight=sw)
            assert np.asarray(got).dtype == np.float32
            if wk == "per-sample" and len(shape) == 3 and "ignore_class" in kw:
                # Keras's NumPy backend multiplies the (B, 1) weight by the (B, T) mask in
                # place (sample_weight *= mask) and fails; the rule itself is defined
                with pytest.raises(ValueError, match="non-broadcastable"):
                    theirs(y, p, sample_weight=sw)
            else:
                assert_close_f32(got, theirs(y, p, sample_weight=sw), 4, f"{cls} {shape} {wk}")
            ex = ours.exact(y, p, sample_weight=sw).round()
            assert_close_f32(got, ex, 1, "reference vs its exact twin")


@pytest.mark.parametrize("cls, kw, kind", PAIRS, ids=PAIR_IDS)
def test_functions_agree_with_keras(keras, cls, kw, kind):
    name = FUNCTION_OF[cls]
    kw = dict(kw, q=kw.get("q", 0.5)) if name == GCE else kw
    for shape in [(6, 5), (3, 4, 5)]:
        y, p = typical(kind, shape, kw, seed=len(shape) + 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = getattr(keras.losses, name)(y, p, **kw)
        got = getattr(K, name)(y, p, **kw)
        assert got.dtype == np.asarray(want).dtype
        assert_close_f32(got, want, 4, f"{name} {shape}")
        assert_close_f32(got, getattr(K, name).exact(y, p, **kw).round(), 1, "exact twin")


def test_research_notes_verified_values(keras):
    f = np.float32
    cases = [
        (K.CategoricalCrossentropy(from_logits=True, reduction=None), [[1, 0]], [[-100, 100]], [200.0]),
        (K.CategoricalCrossentropy(reduction=None), [[0, 1, 0]], [[1, 1, 2]], [1.3862944]),
        (K.CategoricalCrossentropy(reduction=None, label_smoothing=0.1), [[0, 1, 0]],
         [[0.2, 0.5, 0.3]], [0.7407177]),
        (K.CategoricalFocalCrossentropy(reduction=None), [[0, 1, 0]], [[0.2, 0.5, 0.3]],
         [0.0433217]),
        (K.CategoricalGeneralizedCrossEntropy(reduction=None), [0, 1], [[0.7, 0.3], [0.2, 0.8]],
         [0.32668, 0.21115]),
        (K.SparseCategoricalCrossentropy(reduction=None), [1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
         [0.05129331, 2.3025851]),
        (K.CategoricalCrossentropy(reduction=None), [[1, 0]], [[0, 1]], [16.118095]),
    ]
    for loss, y, p, notes in cases:
        got = loss(np.array(y, f), np.array(p, f))
        # the notes print Keras's float32 results (each within a few ulps of the exact value),
        # some rounded to 5 digits: equal to the digits printed or to 4 float32 ulps of
        # max(|value|, 1) (the scale of Keras's float32 log of a probability near 1)
        for g, n in zip(np.ravel(got), notes):
            digits = len(repr(n).replace(".", "").lstrip("0"))
            half_unit = 0.5 * 10.0 ** (math.floor(math.log10(abs(n))) - digits + 1)
            assert abs(float(g) - n) <= max(4 * float(np.spacing(f(max(abs(n), 1.0)))), half_unit), \
                (loss, g, n)
    # and the exact values behind them, by independent arithmetic
    assert K.CategoricalCrossentropy().exact(np.array([[0, 1, 0]], f), np.array([[1, 1, 2]], f)) \
        .round("float64") == pytest.approx(math.log(4), rel=1e-15)
    g = K.CategoricalGeneralizedCrossEntropy(reduction=None).exact(
        np.array([0, 1], f), np.array([[0.7, 0.3], [0.2, 0.8]], f)).round("float64")
    want = [(1 - math.sqrt(float(f(0.7)))) / 0.5, (1 - math.sqrt(float(f(0.8)))) / 0.5]
    assert g.tolist() == pytest.approx(want, rel=1e-15)


def test_clip_bounds_and_saturation_per_format():
    # perfect and fully wrong hard predictions: -log(hi) and -log(lo) with Keras's bounds
    for fmt in FORMATS:
        f = formats.get_format(fmt)
        lo, hi = clip_bounds(f)
        y = in_format(np.array([[1.0, 0.0], [0.0, 1.0]]), fmt)
        p = in_format(np.array([[0.0, 1.0], [0.0, 1.0]]), fmt)
        got = K.categorical_crossentropy(y, p).astype(np.float64)
        with mpmath.workprec(300):
            want = [formats.round_mpf(-mpmath.log(mpmath.mpf(lo)), f),
                    formats.round_mpf(-mpmath.log(mpmath.mpf(hi)), f)]
        assert got.tolist() == want, fmt
        if fmt in ("float16", "bfloat16"):
            assert hi == 1.0 and want[1] == 0.0  # the upper bound rounds to 1
        sp = K.sparse_categorical_crossentropy(in_format(np.array([0.0, 1.0]), fmt), p)
        assert sp.astype(np.float64).tolist() == want


def test_label_smoothing_constants_and_version_note(keras):
    # the smoothing is towards 1/K with K the size of the class axis `axis` (keras PR #23437,
    # after 3.15.1): axis=0 of a (3, 2) input smooths with K = 3
    y = np.array([[1, 0], [0, 1], [0, 0]], np.float32)
    p = np.array([[0.2, 0.3], [0.5, 0.1], [0.3, 0.6]], np.float32)
    got = K.categorical_crossentropy(y, p, axis=0, label_smoothing=0.2)
    # exact value with Keras's constants: y * fl(0.8) + fl(fl(0.2) / 3), computed directly
    c1, c2 = float(np.float32(0.8)), float(np.float32(np.float32(0.2) / np.float32(3)))
    ys = y.astype(np.float64) * c1 + c2
    pn = p.astype(np.float64) / p.astype(np.float64).sum(0)
    want = -(ys * np.log(pn)).sum(0)
    assert_close_f32(got, want, 1)
    focal = K.categorical_focal_crossentropy(y, p, axis=0, label_smoothing=0.2, alpha=1.0, gamma=0.0)
    assert_close_f32(focal, want, 2)
    # Keras 3.15.1 takes K = y_true.shape[-1] = 2 whatever the axis: other values
    ys2 = y.astype(np.float64) * c1 + float(np.float32(np.float32(0.2) / np.float32(2)))
    old = -(ys2 * np.log(pn)).sum(0)
    assert np.all(np.abs(old - got) > 1e-3)
    if keras.version() == "3.15.1":
        assert_close_f32(keras.losses.categorical_crossentropy(y, p, axis=0, label_smoothing=0.2), old)


def test_focal_alpha_list_promotes_to_float32(keras):
    y = np.array([[0, 1, 0]], np.float16)
    p = np.array([[0.2, 0.5, 0.3]], np.float16)
    got = K.categorical_focal_crossentropy(y, p, alpha=[0.1, 0.2, 0.7])
    want = keras.losses.categorical_focal_crossentropy(y, p, alpha=[0.1, 0.2, 0.7])
    assert got.dtype == want.dtype == np.float32
    # Keras computes the factors in float16 before the float32 product: float16 accuracy
    assert abs(float(got[0]) - float(want[0])) <= 4 * 2.0 ** -11 * float(got[0])
    assert K.categorical_focal_crossentropy(y, p, alpha=0.3).dtype == np.float16
    # alpha rounded to float32 (not the double 0.2): exact 0.2f * 0.5^2 * ln 2
    ex = K.categorical_focal_crossentropy.exact(y.astype(np.float64), p.astype(np.float64),
                                                alpha=[0.1, 0.2, 0.7])
    want64 = float(np.float32(0.2)) * (1 - float(np.float16(0.5))) ** 2 * -math.log(float(np.float16(0.5)))
    assert float(ex.round("float64")[0]) == pytest.approx(want64, rel=1e-15)


def test_sparse_label_conventions_agree_with_keras(keras):
    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], np.float32)
    for labels in [[1.7, 2.0], [-0.5, 1.0], [[1.0], [2.0]]]:
        y = np.array(labels, np.float32)
        assert_close_f32(K.sparse_categorical_crossentropy(y, p),
                         keras.losses.sparse_categorical_crossentropy(y, p))
    y3, p3 = np.array([[[1], [2]]], np.float32), p[None]
    assert_close_f32(K.sparse_categorical_crossentropy(y3, p3),
                     keras.losses.sparse_categorical_crossentropy(y3, p3))
    # ignore_class is compared before the truncation: 1.5 is not class 1 ignored
    y = np.array([1.5, 2.0], np.float32)
    assert_close_f32(K.sparse_categorical_crossentropy(y, p, ignore_class=1),
                     keras.losses.sparse_categorical_crossentropy(y, p, ignore_class=1))
    # labels are converted to the loss dtype first: 2049 is 2048 in float16
    L = K.SparseCategoricalCrossentropy(dtype="float16", reduction=None)
    big = np.zeros((1, 2050), np.float32)
    big[0, 2048] = 1.0
    assert float(L(np.array([2049.0]), big)[0]) == 0.0  # p_2048 = 1 clipped at hi = 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # Keras's 0/0
def test_ignore_class_masks_the_mean(keras):
    y = np.array([[1, 0], [0, 0]], np.float32)
    p = np.array([[[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]], np.float32)
    for red in REDUCTIONS:
        for sw in [None, np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)]:
            got = K.SparseCategoricalCrossentropy(ignore_class=0, reduction=red)(y, p, sample_weight=sw)
            want = keras.losses.SparseCategoricalCrossentropy(ignore_class=0, reduction=red)(
                y, p, sample_weight=sw)
            assert_close_f32(got, want, 2, f"{red} {sw}")
    # default mean over the single valid position: -log 0.3
    got = K.SparseCategoricalCrossentropy(ignore_class=0)(y, p)
    assert float(got) == pytest.approx(-math.log(float(np.float32(0.3))), rel=1e-6)
    # everything ignored: 0, no NaN (also with NaN predictions there)
    allign = K.SparseCategoricalCrossentropy(ignore_class=0)(np.zeros((2, 2), np.float32),
                                                             np.full((2, 2, 3), np.nan, np.float32))
    assert float(allign) == 0.0


def test_gce_labels_of_shape_b1_are_squeezed(keras):
    y = np.array([[0], [1]], np.float32)
    p = np.array([[0.7, 0.3], [0.2, 0.8]], np.float32)
    got = K.CategoricalGeneralizedCrossEntropy(reduction=None)(y, p)
    assert got.shape == (2,)
    want = keras.losses.CategoricalGeneralizedCrossEntropy(reduction=None)(y[:, 0], p)
    assert_close_f32(got, want, 2)
    # Keras itself broadcasts the (B, 1, C) one-hot against (B, C): a (B, B) matrix
    assert keras.losses.CategoricalGeneralizedCrossEntropy(reduction=None)(y, p).shape == (2, 2)


def test_large_inputs_are_processed_in_blocks():
    rng = np.random.default_rng(9)
    z = rng.standard_normal((70000, 5)) * 4  # 350000 elements: more than one block
    labels = rng.integers(0, 5, 70000).astype(np.float64)
    onehot = np.eye(5)[labels.astype(int)]
    for params in [{"from_logits": True}, {}]:
        x = z if params else np.exp(z)
        sp = lossref.get(SCCE).per_sample(labels, x, **params)
        cc = lossref.get(CCE).per_sample(onehot, x, **params)
        assert np.array_equal(sp, cc)
        rows = [0, 34567, 69999]
        assert_ulps(sp[rows], lossref.get(SCCE).exact(labels[rows], x[rows], **params), "float64", 4)


def test_signatures_and_configs_match_keras(keras):
    for name in ["CategoricalCrossentropy", "CategoricalFocalCrossentropy",
                 "SparseCategoricalCrossentropy", "CategoricalGeneralizedCrossEntropy",
                 CCE, CFCE, SCCE, GCE]:
        assert inspect.signature(getattr(K, name)) == inspect.signature(getattr(keras.losses, name)), name
        assert hasattr(getattr(K, name), "exact")
    for cls, kw in [("CategoricalCrossentropy", {"label_smoothing": 0.1}),
                    ("CategoricalFocalCrossentropy", {"alpha": 0.3}),
                    ("SparseCategoricalCrossentropy", {"ignore_class": 4}),
                    ("CategoricalGeneralizedCrossEntropy", {"q": 0.3})]:
        ours = getattr(K, cls)(**kw).get_config()
        theirs = getattr(keras.losses, cls)(**kw).get_config()
        # the sparse loss's axis is in the config after 3.15.1 (keras PR #23286)
        assert ours == {**theirs, **({"axis": -1} if cls.startswith("Sparse") else {})}
    assert set(NAMES) <= set(lossref.names())


def test_class_axis_of_size_one_warns():
    with pytest.warns(SyntaxWarning, match="num_classes > 1"):
        got = K.categorical_crossentropy(np.ones((2, 1), np.float32), np.ones((2, 1), np.float32))
    assert got.tolist() == [float(np.float32(-math.log(float(np.float32(1 - 1e-7)))))] * 2


# --- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_is_reported_clearly():
    p = np.array([[0.2, 0.3, 0.5]], np.float32)
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(1, 3\)"):
        K.categorical_crossentropy(np.array([[1.0, 0.0]], np.float32), p)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        lossref.get(CCE).per_sample(np.ones((1, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis"):
        K.categorical_crossentropy(p, p, axis=True)
    with pytest.raises(ValueError, match="out of range"):
        K.categorical_focal_crossentropy(p, p, axis=2)
    with pytest.raises(ValueError, match=r"label 3\.0 .*\[0, 3\)"):
        K.sparse_categorical_crossentropy(np.array([3.0]), p)
    with pytest.raises(ValueError, match=r"label -1\.0 .*\[0, 3\)"):
        K.SparseCategoricalCrossentropy()(np.array([-1.0]), p)
    with pytest.raises(ValueError, match=r"label nan"):
        lossref.get(SCCE).exact(np.array([NAN]), p).round()
    assert K.sparse_categorical_crossentropy(np.array([-1.0]), p, ignore_class=-1).tolist() == [0.0]
    with pytest.raises(ValueError, match=r"\(2,\).*\(1, 3\).*\(1,\)"):
        K.sparse_categorical_crossentropy(np.array([1.0, 2.0]), p)
    with pytest.raises(ValueError, match=r"label 2\.0 .*\[0, 2\)"):
        K.categorical_generalized_cross_entropy(np.array([2.0]), p[:, :2], 0.5)
    with pytest.raises(ValueError, match=r"q must be in the open interval \(0, 1\); got q=1"):
        K.CategoricalGeneralizedCrossEntropy(q=1.0)
    assert np.isfinite(K.categorical_generalized_cross_entropy(np.array([1.0]), p, 1.5)).all()
    with pytest.raises(ValueError, match="one weight per class"):
        K.categorical_focal_crossentropy(p, p, alpha=[0.1, 0.9])
    with pytest.raises(ValueError, match="class axis last"):
        K.categorical_focal_crossentropy(np.ones((3, 2)), np.ones((3, 2)), alpha=[0.1, 0.9], axis=0)
    with pytest.raises(ValueError, match="epsilon"):
        lossref.get(CCE).per_sample(p, p, epsilon=(0.6, 0.9))
    with pytest.raises(TypeError, match="y_true"):
        lossref.get(SCCE).per_sample(np.array(["a"]), p)
    with pytest.raises(ValueError, match="q=0"):
        lossref.get(GCE).per_sample(np.array([0.0]), p, q=0.0)


def test_parameters_may_be_positional(keras):
    y = np.array([1.0, 0.0], np.float32)
    p = np.array([[0.3, 0.7], [0.6, 0.4]], np.float32)
    got = K.categorical_generalized_cross_entropy(y, p, 0.3)
    assert np.array_equal(got, K.categorical_generalized_cross_entropy(y, p, q=0.3))
    assert_close_f32(got, keras.losses.categorical_generalized_cross_entropy(y, p, 0.3))
    oh = np.eye(2, dtype=np.float32)[[1, 0]]
    assert np.array_equal(K.categorical_crossentropy(oh, p, True),
                          K.categorical_crossentropy(oh, p, from_logits=True))
    with pytest.raises(TypeError, match="multiple values"):
        K.categorical_crossentropy(oh, p, True, from_logits=True)
