"""Binary cross-entropy family, KL divergence and Poisson: reference vs oracle (budgets),
oracle vs an independent high-precision evaluation, Keras dialect vs real Keras, bad input."""

import json
import math
import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import losses as K
from lossref.keras.base import clip_bounds

from .support import FORMATS, assert_within, in_format, representable

NAMES = ["binary_crossentropy", "binary_focal_crossentropy", "kl_divergence", "poisson"]
INF, NAN = math.inf, math.nan
U64 = 2.0 ** -53


# --- adversarial inputs ---------------------------------------------------------------------------


def _neighbours(v, f):
    """The format values just below and just above `v` (itself representable)."""
    d = np.dtype(f.dtype) if f.name != "bfloat16" or formats.has_ml_dtypes() else None
    x = np.asarray(v, dtype=d)
    return [float(np.nextafter(x, np.asarray(-np.inf, d))) if d is not None else v,
            float(np.nextafter(x, np.asarray(np.inf, d))) if d is not None else v]


def _probabilities(f):
    """Probabilities that stress the clip and the logs in format `f`."""
    lo, hi = clip_bounds(f)
    one_minus = 1.0 - f.eps  # largest value below 1
    vals = [0.0, -0.0, f.min_subnormal, 2 * f.min_subnormal, f.tiny, 1e-30, 1e-10,
            *_neighbours(lo, f), lo, 1e-3, 0.3, 0.5, 0.7, 0.999, *_neighbours(hi, f), hi,
            one_minus, 1.0, 1.5, -0.5, INF, -INF, NAN, 1e-7, 1.0 - 1e-7]
    return [v for v in representable(vals, f).tolist() if not (0 < abs(v) < f.min_subnormal)]


def _logits(f):
    # beyond 1e4 up to 1e7 (inf in float16); logits near the format's max are checked in
    # test_huge_logits: their exact losses e^-z are out of reach of formats.round_mpf
    mags = [1e-30, f.min_subnormal, 1e-8, 0.5, 1.0, 2.5, 10.0, 17.0, 30.0, 88.0, 100.0, 700.0,
            1e4, 6e4, 1e7, INF]
    vals = [0.0, -0.0, NAN] + mags + [-m for m in mags]
    return representable(vals, f).tolist()


def _rows(values, labels, f, width=4):
    """Every value paired with every label, in rows of `width` (padded with 0.5 / 0.5)."""
    t = [lab for v in values for lab in labels]
    p = [v for v in values for lab in labels]
    pad = (-len(p)) % width
    t += [0.5] * pad
    p += [0.5] * pad
    t = representable(t, f).reshape(-1, width)
    p = representable(p, f).reshape(-1, width)
    return in_format(t, f), in_format(p, f)


def prob_inputs(fmt):
    f = formats.get_format(fmt)
    return _rows(_probabilities(f), [0.0, 1.0, 0.25, 0.9, f.min_subnormal, 1.0 - f.eps], f)


def logit_inputs(fmt):
    f = formats.get_format(fmt)
    return _rows(_logits(f), [0.0, 1.0, 0.3], f)


def kl_inputs(fmt):
    f = formats.get_format(fmt)
    ps = _probabilities(f)
    ys = ps[::-1]
    rng = np.random.default_rng(11)
    soft = rng.dirichlet(np.ones(4), 6)
    t = representable(ys + soft[:3].ravel().tolist() + [0.25] * 4, f)
    p = representable(ps + soft[3:].ravel().tolist() + [0.25 * (1 + 2 * f.eps)] * 4, f)
    pad = (-t.size) % 4
    t = np.concatenate([t, np.full(pad, 0.5)]).reshape(-1, 4)
    p = np.concatenate([p, np.full(pad, 0.5)]).reshape(-1, 4)
    return in_format(t, f), in_format(p, f)


def poisson_inputs(fmt):
    f = formats.get_format(fmt)
    e = formats.round_mpf(1e-7, f)
    preds = [0.0, f.min_subnormal, f.tiny, 1e-30, 1e-7, -e, 0.5, 1.0, 1.0 - f.eps, 1.0 + 2 * f.eps,
             math.e, 1e3, f.max, -1.0, INF, -INF, NAN]
    labels = [0.0, 1.0, 2.5, math.e, 1e-30, 100.0]
    return _rows(representable(preds, f).tolist(), labels, f)


INPUTS = {"prob": prob_inputs, "logit": logit_inputs, "kl": kl_inputs, "poisson": poisson_inputs}

CASES = [
    ("binary_crossentropy", {}, "prob"),
    ("binary_crossentropy", {"label_smoothing": 0.2}, "prob"),
    ("binary_crossentropy", {"epsilon": None}, "prob"),
    ("binary_crossentropy", {"epsilon": (1e-3, 0.99)}, "prob"),
    ("binary_crossentropy", {"from_logits": True}, "logit"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logit"),
    ("binary_focal_crossentropy", {}, "prob"),
    ("binary_focal_crossentropy", {"gamma": 0.0, "label_smoothing": 0.2}, "prob"),
    ("binary_focal_crossentropy", {"gamma": 3.5, "apply_class_balancing": True, "alpha": 0.3}, "prob"),
    ("binary_focal_crossentropy", {"epsilon": None, "gamma": 1.0}, "prob"),
    ("binary_focal_crossentropy", {"from_logits": True}, "logit"),
    ("binary_focal_crossentropy", {"from_logits": True, "epsilon": None, "label_smoothing": 0.1},
     "logit"),
    ("kl_divergence", {}, "kl"),
    ("kl_divergence", {"epsilon": None}, "kl"),
    ("poisson", {}, "poisson"),
    ("poisson", {"epsilon": None}, "poisson"),
]
IDS = [f"{n}-{kind}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'default'}" for n, p, kind in CASES]


def _abs_terms(L, t, p, params):
    """Exact |terms| per element (object array) from the oracle."""
    e = L.elementwise.exact(t, p, **params)
    e.round("float64")
    return np.abs(e.values(e.final_prec))


def assert_budget(computed, exact, fmt, ulps, abs_terms=None, k=0, what=""):
    """Within `ulps` ulps, or where terms cancel, ``|c - x| <= 1/2 ulp + k u64 sum|terms|``.

    The second form is the stated bound of a computation in float64 rounded once into
    `fmt` (for float64 itself it is the stage-2/3 bound).
    """
    assert_within(computed, exact, fmt, ulps, abs_terms, k * U64, base=0.5, what=what)


def f64_ulps(name, params):
    """float64 elementwise budget: 4 ulp; the focal loss adds 2 gamma (spec page)."""
    if name == "binary_focal_crossentropy":
        return 4 + 2 * abs(params.get("gamma", 2.0))
    return 4


def poisson_parts(t, p, params):
    """``|p| + |y log(p + eps)|`` per element: the scale of Poisson's cancellation bound."""
    e = params.get("epsilon", 1e-7) or 0.0
    t, p = t.astype(np.float64), p.astype(np.float64)
    with np.errstate(all="ignore"):
        return np.abs(p) + np.abs(t * np.log(p + e))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", CASES, ids=IDS)
def test_elementwise_budget(name, params, kind, fmt):
    L = lossref.get(name)
    t, p = INPUTS[kind](fmt)
    got = L.elementwise(t, p, **params)
    assert got.dtype == formats.get_format(fmt).dtype
    ex = L.elementwise.exact(t, p, **params)
    ulps = 1 if fmt != "float64" else f64_ulps(name, params)
    scale = poisson_parts(t, p, params) if name == "poisson" else None
    assert_budget(got, ex, fmt, ulps, scale, 4, what=f"{name}{params} elementwise")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", CASES, ids=IDS)
def test_per_sample_budget(name, params, kind, fmt):
    L = lossref.get(name)
    t, p = INPUTS[kind](fmt)
    got = L.per_sample(t, p, **params)
    ex = L.exact(t, p, **params)
    terms = _abs_terms(L, t, p, params)
    if name == "poisson":  # the bound's scale: both parts of every term
        terms = poisson_parts(t, p, params)
    if L.stage2 == "sum":
        s = np.array([mpmath.fsum(r) for r in terms], dtype=object)
    else:
        s = np.array([mpmath.fsum(r) / len(r) for r in terms], dtype=object)
    k = math.ceil(math.log2(t.shape[-1])) + 2 * f64_ulps(name, params)
    assert_budget(got, ex, fmt, 1 if fmt != "float64" else 4, s, k, what=f"{name}{params} per-sample")


def test_huge_logits_reference():
    # |z| at the format's max: the exact loss is (1 - y') z or -y' z up to e^-|z|, which no
    # format can hold; checked against that closed form (the oracle's e^-|z| has an exponent
    # beyond what formats.round_mpf handles)
    L = lossref.get("binary_crossentropy")
    for fmt in FORMATS:
        f = formats.get_format(fmt)
        z = in_format(np.array([[f.max, f.max, f.max, -f.max, -f.max, -f.max]]), fmt)
        y = in_format(representable([[1.0, 0.0, 0.25, 1.0, 0.0, 0.25]], f), fmt)
        got = L.elementwise(y, z, from_logits=True).astype(np.float64)
        want = [0.0, f.max, formats.round_mpf(mpmath.mpf(0.75) * f.max, f),
                f.max, 0.0, formats.round_mpf(mpmath.mpf(0.25) * f.max, f)]
        assert got.ravel().tolist() == want, fmt
        # the focal loss clips sigmoid(z) to Keras's bounds: the saturation values, except
        # that an upper bound of exactly 1 (float16, bfloat16) leaves -log(1 - sigmoid(z)) = z
        lo, hi = clip_bounds(f)
        foc = lossref.get("binary_focal_crossentropy").elementwise(
            y[:, [1, 3]], z[:, [1, 3]], from_logits=True, gamma=0.0, epsilon=(lo, hi))
        with mpmath.workprec(200):
            sat = [-mpmath.log(1 - mpmath.mpf(hi)) if hi < 1 else f.max, -mpmath.log(mpmath.mpf(lo))]
        assert foc.astype(np.float64).ravel().tolist() == [formats.round_mpf(s, f) for s in sat]


# --- the oracle against an independent evaluation -------------------------------------------------


def _smooth_exact(y, params):
    ls = params.get("label_smoothing", 0.0)
    if isinstance(ls, tuple):
        return y * mpmath.mpf(ls[0]) + mpmath.mpf(ls[1])
    return y * (1 - mpmath.mpf(ls)) + mpmath.mpf(ls) / 2


def _clip_exact(v, params):
    eps = params.get("epsilon", 1e-7)
    if eps is None:
        return v
    lo, hi = (mpmath.mpf(eps[0]), mpmath.mpf(eps[1])) if isinstance(eps, tuple) else \
        (mpmath.mpf(eps), 1 - mpmath.mpf(eps))
    return min(max(v, lo), hi)


def _likelihood_bce(y, pc):
    """-log(pc^y (1 - pc)^(1 - y)): the product form (0^0 = 1 gives 0 log 0 = 0)."""
    if not 0 <= y <= 1 or not 0 <= pc <= 1:
        return None
    return -mpmath.log(mpmath.power(pc, y) * mpmath.power(1 - pc, 1 - y))


def _independent(name, params, yv, pv):
    """Each loss by a different formula (or, on logits, the literal sigmoid at a precision
    high enough for 1 - sigmoid(z)), at the caller's working precision; None to skip."""
    y, p = mpmath.mpf(yv), mpmath.mpf(pv)
    if not (mpmath.isfinite(y) and mpmath.isfinite(p)):
        return None
    if name == "kl_divergence":
        if params.get("epsilon", 1e-7) is not None:
            e = mpmath.mpf(params.get("epsilon", 1e-7))
            y, p = min(max(y, e), 1), min(max(p, e), 1)
        if y == 0:
            return mpmath.mpf(0)
        if y < 0 or p <= 0:
            return None
        return y * (mpmath.log(y) - mpmath.log(p))
    if name == "poisson":
        e = params.get("epsilon", 1e-7) or 0
        if p + e < 0 or y < 0:
            return None
        return p - mpmath.log(mpmath.power(p + e, y))  # log of the power: 0^0 = 1
    ys = _smooth_exact(y, params)
    logits = params.get("from_logits", False)
    if logits and abs(p) > 2e4:
        return None
    # on logits, the literal sigmoid at a precision where 1 - sigmoid(z) keeps e^-|z|
    with mpmath.workprec(mpmath.mp.prec + (int(3 * abs(p)) + 64 if logits else 0)):
        if name == "binary_crossentropy":
            if logits:  # TF's form max(z, 0) - z y + log1p(e^-|z|)
                return +(max(p, 0) - p * ys + mpmath.log1p(mpmath.exp(-abs(p))))
            return _likelihood_bce(ys, _clip_exact(p, params))
        q = 1 / (1 + mpmath.exp(-p)) if logits else p
        bce = _likelihood_bce(ys, _clip_exact(q, params))
        # focal in Keras's order, p_t from the unclipped probability
        base = 1 - (ys * q + (1 - ys) * (1 - q))
        if bce is None or base < 0:
            return None
        g = mpmath.mpf(params.get("gamma", 2.0))
        out = (base ** g if g != 0 else mpmath.mpf(1)) * bce
        if params.get("apply_class_balancing"):
            a = mpmath.mpf(params.get("alpha", 0.25))
            out = (ys * a + (1 - ys) * (1 - a)) * out
        return +out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, params, kind", CASES, ids=IDS)
def test_oracle_matches_independent_evaluation(name, params, kind, fmt):
    L = lossref.get(name)
    t, p = INPUTS[kind](fmt)
    ex = L.elementwise.exact(t, p, **params)
    rounded = ex.round(fmt)
    checked = 0
    with mpmath.workprec(2 * ex.final_prec):
        for idx in np.ndindex(t.shape):
            want = _independent(name, params, float(t[idx]), float(p[idx]))
            if want is None:
                continue
            got = float(rounded[idx])
            assert formats.round_mpf(want, fmt) == got or (math.isnan(got) and mpmath.isnan(want)), \
                (idx, t[idx], p[idx], got, mpmath.nstr(want, 20))
            checked += 1
    assert checked >= 0.6 * t.size


# --- the Keras dialect: its constants, against its own exact twin in every format -------------------

DIALECT = [
    ("binary_crossentropy", {}, "prob"),
    ("binary_crossentropy", {"label_smoothing": 0.1}, "prob"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.3}, "logit"),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "alpha": 0.1, "gamma": 1.5}, "prob"),
    ("binary_focal_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, "logit"),
    ("kl_divergence", {}, "kl"),
    ("poisson", {}, "poisson"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, kw, kind", DIALECT, ids=[f"{n}-{k}-{kw}" for n, kw, k in DIALECT])
def test_dialect_functions_within_budget(name, kw, kind, fmt):
    t, p = INPUTS[kind](fmt)
    fn = getattr(K, name)
    got = fn(t, p, **kw)
    assert got.dtype == formats.get_format(fmt).dtype and got.shape == t.shape[:-1]
    pr = fn.prepare(t, p, **kw)
    L = lossref.get(name)
    gamma = pr.params.get("gamma", 2.0)
    terms = _abs_terms(L, pr.y_true.astype(formats.get_format(fmt).dtype),
                       pr.y_pred.astype(formats.get_format(fmt).dtype), pr.params)
    if name == "poisson":
        terms = poisson_parts(t, p, pr.params)
    s = np.array([mpmath.fsum(r) / (1 if L.stage2 == "sum" else len(r)) for r in terms], dtype=object)
    k = 2 + 2 * f64_ulps(name, {"gamma": gamma})
    assert_budget(got, fn.exact(t, p, **kw), fmt, 1 if fmt != "float64" else 4, s, k,
                  what=f"keras.{name}{kw}")


# --- agreement with real Keras (numpy backend) ------------------------------------------------------

PAIRS = [
    ("BinaryCrossentropy", "binary_crossentropy", {}, "hard"),
    ("BinaryCrossentropy", "binary_crossentropy", {"label_smoothing": 0.2}, "soft"),
    ("BinaryCrossentropy", "binary_crossentropy", {"from_logits": True}, "logit"),
    ("BinaryCrossentropy", "binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1},
     "logit"),
    ("BinaryFocalCrossentropy", "binary_focal_crossentropy", {}, "hard"),
    ("BinaryFocalCrossentropy", "binary_focal_crossentropy",
     {"apply_class_balancing": True, "alpha": 0.4, "gamma": 3.0, "label_smoothing": 0.05}, "soft"),
    ("BinaryFocalCrossentropy", "binary_focal_crossentropy", {"from_logits": True, "gamma": 1.5},
     "logit"),
    ("KLDivergence", "kl_divergence", {}, "kl"),
    ("Poisson", "poisson", {}, "counts"),
]
PAIR_IDS = [f"{c}-{kind}-{kw}" for c, _, kw, kind in PAIRS]
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]


def typical(kind, rng, shape):
    """Typical float32 inputs: labels and probabilities, logits, or counts and rates."""
    if kind == "hard":
        return rng.integers(0, 2, shape).astype(np.float32), rng.uniform(0.01, 0.99, shape).astype(np.float32)
    if kind == "soft":
        return rng.uniform(0, 1, shape).astype(np.float32), rng.uniform(0.01, 0.99, shape).astype(np.float32)
    if kind == "logit":
        y = np.where(rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(0, 1, shape))
        return y.astype(np.float32), np.clip(rng.normal(0, 2, shape), -5, 5).astype(np.float32)
    if kind == "kl":
        return rng.dirichlet(np.ones(shape[-1]), shape[:-1]).astype(np.float32), \
            rng.dirichlet(np.ones(shape[-1]), shape[:-1]).astype(np.float32)
    return rng.poisson(2.0, shape).astype(np.float32), rng.uniform(0.1, 4.0, shape).astype(np.float32)


def _scale(fn, kw, y, p, reduction=None, sw=None):
    """What the rounding errors of a float32 evaluation scale with: the same reduction of
    the per-sample means or sums of |terms| (terms of both signs may cancel in KL, Poisson)."""
    f = getattr(K, fn)
    pr = f.prepare(y, p, **kw)
    L = lossref.get(fn)
    with np.errstate(all="ignore"):
        terms = np.abs(L.elementwise_ref(pr.y_true, pr.y_pred, **pr.params))
        if fn == "poisson":
            terms = poisson_parts(pr.y_true, pr.y_pred, pr.params)
    per = terms.sum(-1) if L.stage2 == "sum" else terms.mean(-1)
    if reduction is None and sw is None:
        return per
    w = None if sw is None else np.abs(np.asarray(sw, np.float64))
    return np.abs(lossref.reduce(per, reduction, sample_weight=w))


def assert_close_f32(ours, theirs, scale, ulps=8, what=""):
    """Within `ulps` float32 roundings of the result's scale (Keras rounds every step)."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    # + the smallest normal: backends may flush subnormal results to zero
    tol = ulps * 2.0 ** -24 * (np.abs(ours) + np.asarray(scale, np.float64)) + 2.0 ** -126
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    assert np.all(np.abs(ours - theirs) <= tol), (what, ours, theirs)


@pytest.mark.parametrize("cls, fn, kw, kind", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classes_agree_with_keras(keras, cls, fn, kw, kind, reduction):
    rng = np.random.default_rng(3)
    ours_cls = getattr(K, cls)(reduction=reduction, **kw)
    theirs_cls = getattr(keras.losses, cls)(reduction=reduction, **kw)
    for shape, weights in [((4, 5), [None, rng.uniform(0, 2, 4), rng.uniform(0, 2, (4, 1))]),
                           ((3, 2, 5), [None, rng.uniform(0, 2, (3, 2)), rng.uniform(0, 2, (3, 1))])]:
        y, p = typical(kind, rng, shape)
        for sw in weights:
            ours = ours_cls(y, p, sample_weight=sw)
            theirs = np.asarray(theirs_cls(y, p, sample_weight=sw))
            assert ours.dtype == theirs.dtype == np.float32
            assert_close_f32(ours, theirs, _scale(fn, kw, y, p, reduction, sw),
                             what=f"{cls}{kw} {reduction} {shape} sw={None if sw is None else sw.shape}")
            # the exact twin rounds to the reference's value within its 1-ulp budget
            np.testing.assert_array_max_ulp(ours, ours_cls.exact(y, p, sample_weight=sw).round(), maxulp=1)


@pytest.mark.parametrize("cls, fn, kw, kind", PAIRS, ids=PAIR_IDS)
def test_functions_agree_with_keras(keras, cls, fn, kw, kind):
    rng = np.random.default_rng(4)
    for shape in [(6, 7), (2, 3, 8), (5,)]:
        y, p = typical(kind, rng, shape)
        ours = getattr(K, fn)(y, p, **kw)
        theirs = np.asarray(getattr(keras.losses, fn)(y, p, **kw))
        assert ours.dtype == theirs.dtype
        assert_close_f32(ours, theirs, _scale(fn, kw, y, p), what=f"{fn}{kw} {shape}")
        # a float64 class returns float64 in both, but Keras's numpy backend narrows float64
        # arrays to float32 inside the function (convert_to_tensor): float32 agreement only
        y64, p64 = y.astype(np.float64), p.astype(np.float64)
        o64 = getattr(K, cls)(reduction=None, dtype="float64", **kw)(y64, p64)
        t64 = np.asarray(getattr(keras.losses, cls)(reduction=None, dtype="float64", **kw)(y64, p64))
        assert o64.dtype == t64.dtype == np.float64
        assert_close_f32(o64, t64, _scale(fn, kw, y64, p64), what=f"{cls}{kw} float64 {shape}")


def test_keras_numpy_backend_computes_float64_losses_in_float32(keras):
    # candidate finding (spec pages, "Keras vs exact"): BIT64_TO_BIT32_DTYPE in Keras's type
    # promotion makes convert_to_tensor(float64 array) float32 on the numpy backend
    y, p = np.array([[0.1, 0.9]]), np.array([[0.3, 0.4]])
    theirs = np.asarray(keras.losses.BinaryCrossentropy(dtype="float64", reduction=None)(y, p))
    ours64 = K.BinaryCrossentropy(dtype="float64", reduction=None)(y, p)
    ours32 = K.BinaryCrossentropy(reduction=None)(y, p)
    assert theirs.dtype == np.float64
    assert abs(float(theirs[0]) - float(ours64[0])) > 1e-9  # far from the float64 value
    assert abs(float(theirs[0]) - float(ours32[0])) <= 4 * 2.0 ** -24 * float(ours32[0])


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), None])
@pytest.mark.parametrize("fn", ["binary_crossentropy", "binary_focal_crossentropy"])
def test_axis_selects_the_mean_axis_like_keras(keras, fn, axis):
    rng = np.random.default_rng(6)
    y, p = typical("soft", rng, (3, 4, 5))
    ours = getattr(K, fn)(y, p, axis=axis, label_smoothing=0.1)
    theirs = np.asarray(getattr(keras.losses, fn)(y, p, axis=axis, label_smoothing=0.1))
    assert ours.shape == theirs.shape
    assert_close_f32(ours, theirs, 0.0, what=f"{fn} axis={axis}")
    ex = getattr(K, fn).exact(y, p, axis=axis, label_smoothing=0.1).round()
    np.testing.assert_array_max_ulp(ours, ex, maxulp=1)
    # the class passes axis through
    cls = {"binary_crossentropy": K.BinaryCrossentropy,
           "binary_focal_crossentropy": K.BinaryFocalCrossentropy}[fn]
    kcls = getattr(keras.losses, cls.__name__)
    assert_close_f32(cls(axis=axis, reduction=None)(y, p),
                     np.asarray(kcls(axis=axis, reduction=None)(y, p)), 0.0)


def test_logit_path_agrees_with_keras_on_jax():
    """The from_logits definition (log-sigmoid, no clip) is what the JAX backend computes,
    also for large logits; the focal loss there is sigmoid + the clipped path."""
    pytest.importorskip("jax", reason="jax is not installed (pip install -e '.[test]')")
    pytest.importorskip("keras", reason="keras is not installed")
    z = np.array([[-1e4, -100.0, -30.0, -3.0, -0.1, 0.0, 0.1, 3.0, 30.0, 100.0, 1e4, 17.0]] * 3,
                 np.float32)
    y = np.array([[1.0] * 12, [0.0] * 12, [0.3] * 12], np.float32)
    script = textwrap.dedent("""
        import json, sys, numpy as np, keras
        d = json.load(sys.stdin)
        y, z = np.array(d["y"], np.float32), np.array(d["z"], np.float32)
        L = keras.losses
        y, z = y[..., None], z[..., None]
        out = {"bce": np.asarray(L.binary_crossentropy(y, z, from_logits=True)).tolist(),
               "focal": np.asarray(L.binary_focal_crossentropy(y, z, from_logits=True,
                                                              gamma=1.0)).tolist(),
               "backend": keras.backend.backend()}
        print(json.dumps(out))
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", script], input=json.dumps({"y": y.tolist(), "z": z.tolist()}),
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    ours = K.binary_crossentropy(y[..., None], z[..., None], from_logits=True)
    theirs = np.array(out["bce"], np.float32)
    assert_close_f32(ours, theirs, 0.0, ulps=4, what="jax bce logits")
    assert ours[1, 10] == np.float32(1e4) and ours[0, 0] == np.float32(1e4)  # no clip on logits
    ours_f = K.binary_focal_crossentropy(y[..., None], z[..., None], from_logits=True, gamma=1.0)
    theirs_f = np.array(out["focal"], np.float32)
    # JAX's float32 sigmoid rounds to 1 from z ~ 16.6 on, so 1 - p_t there is 0 in Keras; the
    # definition keeps sigmoid(-z): compare where the float32 sigmoid is not saturated
    ok = np.abs(z) < 16
    assert_close_f32(ours_f[ok], theirs_f[ok], 0.0, ulps=16, what="jax focal logits")


# --- conventions, one by one, against real Keras and the research notes' values -------------------


def _f32_ulp_diff(a, b):
    return formats.ulp_steps(float(np.float32(a)), float(np.float32(b)), "float32")


def test_verified_values_of_the_research_notes(keras):
    f32 = np.float32
    # BCE probabilities y=[1,0], p=[0,1]: the asymmetric saturation values, elementwise
    y, p = np.array([[1.0], [0.0]], f32), np.array([[0.0], [1.0]], f32)
    assert K.binary_crossentropy(y, p).tolist() == [f32(16.118095), f32(15.942385)]
    assert np.asarray(keras.losses.binary_crossentropy(y, p)).tolist() == K.binary_crossentropy(y, p).tolist()
    # ... which are -ln of the float32 bounds, by an independent evaluation
    with mpmath.workprec(200):
        lo, hi = mpmath.mpf(float(f32(1e-7))), mpmath.mpf(float(f32(1 - 1e-7)))
        assert [formats.round_mpf(-mpmath.log(lo), "float32"),
                formats.round_mpf(-mpmath.log(1 - hi), "float32")] == K.binary_crossentropy(y, p).tolist()
    assert float(K.KLDivergence()([[0.0, 1.0]], [[0.5, 0.5]])) == f32(0.69314563)
    assert float(K.Poisson()([[1.0, 2.0]], [[0.0, 1.0]])) == f32(8.559048)
    # Keras rounds every float32 step; the exact values are 1 and 2 ulps away from the
    # notes' numbers (the smoothed label 0.9 is 0.90000004 in Keras's float32 arithmetic)
    foc = K.BinaryFocalCrossentropy()([[0.0, 1.0]], [[0.3, 0.6]])
    bce = K.BinaryCrossentropy(label_smoothing=0.2)([[0.0, 1.0]], [[0.3, 0.6]])
    assert _f32_ulp_diff(foc, 0.05691641) <= 2 and _f32_ulp_diff(bce, 0.49638838) <= 2
    theirs = np.asarray(keras.losses.BinaryFocalCrossentropy()([[0.0, 1.0]], [[0.3, 0.6]]))
    assert _f32_ulp_diff(foc, theirs) <= 1
    assert K.BinaryFocalCrossentropy().exact([[0.0, 1.0]], [[0.3, 0.6]]).round() == foc
    assert K.BinaryCrossentropy(label_smoothing=0.2).exact([[0.0, 1.0]], [[0.3, 0.6]]).round() == bce
    with mpmath.workprec(200):  # bce with ls=0.2 by hand: labels 0.1 and 0.9 (as float32 constants)
        s, h = mpmath.mpf(float(f32(0.8))), mpmath.mpf(float(f32(0.1)))
        terms = []
        for yv, pv in ((0.0, 0.3), (1.0, 0.6)):
            ys, pp = yv * s + h, mpmath.mpf(float(f32(pv)))
            terms.append(-(ys * mpmath.log(pp) + (1 - ys) * mpmath.log(1 - pp)))
        assert formats.round_mpf((terms[0] + terms[1]) / 2, "float32") == float(bce)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Keras logs 0, multiplies 0 * inf
def test_saturation_per_dtype(keras):
    """Keras's clip bounds per dtype, and what its numpy backend computes instead."""
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.0], [1.0], [1.0], [0.0]])
    with mpmath.workprec(300):
        for fmt in FORMATS:
            f = formats.get_format(fmt)
            lo, hi = (mpmath.mpf(b) for b in clip_bounds(f))
            want = [-mpmath.log(lo), -mpmath.log(1 - hi) if hi < 1 else mpmath.inf,
                    -mpmath.log(hi), -mpmath.log(1 - lo)]
            got = K.binary_crossentropy(in_format(y, fmt), in_format(p, fmt))
            assert got.astype(np.float64).tolist() == [formats.round_mpf(w, f) for w in want], fmt
    # float16: the upper bound is 1, so y=0, p=1 is inf in Keras too; y=1, p=1 is 0 by
    # 0 log 0 = 0, where Keras computes 0 * log(0) = NaN (candidate finding)
    k16 = np.asarray(keras.losses.binary_crossentropy(y.astype(np.float16), p.astype(np.float16)))
    assert k16[0] == np.float16(15.9453125) and np.isinf(k16[1]) and np.isnan(k16[2])
    # float32: equal to Keras except the perfect class-0 prediction, where Keras's float32
    # 1 - 1e-7 rounds to 1 - 2^-23 (exact -log(1 - lo) = 1.0000000617e-7)
    k32 = np.asarray(keras.losses.binary_crossentropy(y.astype(np.float32), p.astype(np.float32)))
    o32 = K.binary_crossentropy(y.astype(np.float32), p.astype(np.float32))
    assert k32[:3].tolist() == o32[:3].tolist()
    assert k32[3] == np.float32(1.192093e-07) and o32[3] == np.float32(1.0000000617e-7)


def test_label_smoothing_moves_labels_towards_one_half(keras):
    y = np.array([[0.0, 1.0, 0.25]], np.float32)
    p = np.array([[0.2, 0.7, 0.5]], np.float32)
    for ls in (0.1, 0.5, 1.0):
        ours = K.binary_crossentropy(y, p, label_smoothing=ls)
        assert_close_f32(ours, np.asarray(keras.losses.binary_crossentropy(y, p, label_smoothing=ls)), 0.0, 4)
        # the smoothed labels are y (1 - ls) + ls / 2: the same loss as smoothing by hand
        ys = (y.astype(np.float64) * (1 - ls) + ls / 2)
        hand = lossref.get("binary_crossentropy").exact(ys, p.astype(np.float64), epsilon=clip_bounds(
            formats.FLOAT32)).round("float32")
        assert _f32_ulp_diff(ours[0], hand[0]) <= 1
    # ls = 1: every label is 1/2, so the loss is symmetric in p <-> 1 - p
    a = K.binary_crossentropy(y, p, label_smoothing=1.0)
    b = K.binary_crossentropy(y, 1 - p, label_smoothing=1.0)
    assert _f32_ulp_diff(a[0], b[0]) <= 1


def test_label_smoothing_constants_are_weak(keras):
    # float16: 1 - 0.1 and 0.1 / 2 are rounded to float16 before they meet the labels
    y = np.array([[1.0]], np.float16)
    p = np.array([[0.25]], np.float16)
    s, h = float(np.float16(0.9)), float(np.float16(0.05))
    with mpmath.workprec(200):
        ys = mpmath.mpf(s) + mpmath.mpf(h)
        want = -(ys * mpmath.log(mpmath.mpf(0.25)) + (1 - ys) * mpmath.log(mpmath.mpf(0.75)))
        e = K.binary_crossentropy.exact(y, p, label_smoothing=0.1)
        assert abs(e.values(200)[0] - want) < mpmath.mpf(2) ** -150
    theirs = np.asarray(keras.losses.binary_crossentropy(y, p, label_smoothing=0.1))
    assert formats.ulp_steps(float(theirs[0]), float(K.binary_crossentropy(y, p, label_smoothing=0.1)[0]),
                             "float16") <= 2


def test_focal_factor_uses_the_unclipped_probability(keras):
    # y = 1, p = 1: bce is -log(hi) > 0 but (1 - p_t)^gamma = 0 exactly; a clipped p_t would
    # leave (1 - hi)^2 * -log(hi) > 0
    y = np.array([[1.0, 0.0]], np.float32)
    p = np.array([[1.0, 0.0]], np.float32)
    assert K.binary_focal_crossentropy(y, p).tolist() == [0.0]
    assert np.asarray(keras.losses.binary_focal_crossentropy(y, p)).tolist() == [0.0]
    # gamma = 0 is the binary cross-entropy itself
    rng = np.random.default_rng(8)
    yy, pp = typical("soft", rng, (4, 6))
    np.testing.assert_array_equal(K.binary_focal_crossentropy(yy, pp, gamma=0.0, label_smoothing=0.1),
                                  K.binary_crossentropy(yy, pp, label_smoothing=0.1))


def test_focal_alpha_only_with_class_balancing(keras):
    rng = np.random.default_rng(9)
    y, p = typical("hard", rng, (4, 6))
    a = K.binary_focal_crossentropy(y, p, alpha=0.9)
    assert a.tolist() == K.binary_focal_crossentropy(y, p, alpha=0.1).tolist()
    theirs = np.asarray(keras.losses.binary_focal_crossentropy(y, p, alpha=0.9))
    assert_close_f32(a, theirs, 0.0)
    b = K.binary_focal_crossentropy(y, p, alpha=0.9, apply_class_balancing=True)
    assert_close_f32(b, np.asarray(keras.losses.binary_focal_crossentropy(
        y, p, alpha=0.9, apply_class_balancing=True)), 0.0)
    # hard labels: the weight is alpha for y = 1 and 1 - alpha for y = 0
    L = lossref.get("binary_focal_crossentropy")
    w = np.where(y == 1, np.float32(0.9), np.float32(1 - 0.9)).astype(np.float64)
    elem = L.elementwise(y, p, epsilon=clip_bounds(formats.FLOAT32)).astype(np.float64)
    np.testing.assert_allclose(b, (w * elem).mean(-1), rtol=4e-7)


def test_focal_from_logits_is_sigmoid_then_the_clipped_path(keras):
    # z = -30 with y = 1 and z = 30 with y = 0: sigmoid saturates, the clip bounds decide
    y = np.array([[1.0, 0.0]], np.float32)
    z = np.array([[-30.0, 30.0]], np.float32)
    ours = K.binary_focal_crossentropy(y, z, from_logits=True, gamma=0.0)
    theirs = np.asarray(keras.losses.binary_focal_crossentropy(y, z, from_logits=True, gamma=0.0))
    # the mean of the two float32 saturation values; Keras's float32 sum is 1 ulp lower
    assert ours.tolist() == [np.float32(16.030241)] and _f32_ulp_diff(ours[0], theirs[0]) <= 1
    with mpmath.workprec(200):
        lo, hi = (mpmath.mpf(b) for b in clip_bounds(formats.FLOAT32))
        assert float(ours[0]) == formats.round_mpf((-mpmath.log(lo) - mpmath.log(1 - hi)) / 2, "float32")
    # while the binary cross-entropy on logits is not clipped: (30 + 30) / 2
    assert K.binary_crossentropy(y, z, from_logits=True).tolist() == [30.0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Keras logs 0, multiplies 0 * inf
def test_keras_numpy_backend_clips_logits(keras):
    # candidate finding: the numpy backend's binary_crossentropy(from_logits=True) applies
    # sigmoid and the probability clip; JAX, TF and torch use the log-sigmoid form (no clip)
    y = np.array([[1.0, 0.0]], np.float32)
    z = np.array([[-30.0, 30.0]], np.float32)
    theirs = np.asarray(keras.losses.binary_crossentropy(y, z, from_logits=True))
    assert abs(float(theirs[0]) - 16.03024) < 1e-5
    assert K.binary_crossentropy.exact(y, z, from_logits=True).decimal(10).tolist() == ["3.000000000e+1"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Keras logs 0, multiplies 0 * inf
def test_kl_clips_both_arguments(keras):
    y = np.array([[-0.5, 1.5, 0.0, 0.3]], np.float32)
    p = np.array([[0.2, 2.0, -1.0, 0.3]], np.float32)
    ours = K.kl_divergence(y, p)
    assert_close_f32(ours, np.asarray(keras.losses.kl_divergence(y, p)), 0.0, 4)
    e = np.float32(1e-7)  # y -> [e, 1, e, 0.3], p -> [0.2, 1, e, 0.3]
    with mpmath.workprec(200):
        E, P = mpmath.mpf(float(e)), mpmath.mpf(float(np.float32(0.2)))
        want = E * mpmath.log(E / P) + 0 + E * mpmath.log(E / E) + 0
    assert float(ours[0]) == formats.round_mpf(want, "float32")
    # the sum runs over the last axis (not a mean): two equal rows give twice the value
    two = K.kl_divergence([[0.2, 0.8, 0.2, 0.8]], [[0.5, 0.5, 0.5, 0.5]])
    one = K.kl_divergence([[0.2, 0.8]], [[0.5, 0.5]])
    assert float(two[0]) == 2 * float(one[0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Keras logs 0, multiplies 0 * inf
def test_poisson_epsilon_in_the_input_dtype(keras):
    # y = 1, p = 0: -log(eps) with eps = 1e-7 rounded to the input's dtype
    for dt, eps in ((np.float16, 2.0 ** -23), (np.float32, float(np.float32(1e-7))), (np.float64, 1e-7)):
        got = K.poisson(np.array([[1.0]], dt), np.array([[0.0]], dt))
        assert float(got[0]) == formats.round_mpf(-mpmath.log(mpmath.mpf(eps)), np.dtype(dt))
    k16 = np.asarray(keras.losses.poisson(np.array([[1.0]], np.float16), np.array([[0.0]], np.float16)))
    assert k16.dtype == np.float16 and float(k16[0]) == float(K.poisson(np.array([[1.0]], np.float16),
                                                                       np.array([[0.0]], np.float16))[0])
    # no clip: a negative rate is NaN in both
    assert np.isnan(K.poisson([[1.0]], [[-0.5]])[0])
    assert np.isnan(np.asarray(keras.losses.poisson(np.array([[1.0]], np.float32),
                                                    np.array([[-0.5]], np.float32)))[0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Keras logs 0, multiplies 0 * inf
def test_shapes_like_keras(keras):
    z3, z31 = np.full(3, 0.4, np.float32), np.full((3, 1), 0.4, np.float32)
    for fn in ("binary_crossentropy", "binary_focal_crossentropy"):
        # the function needs identical shapes; the class applies the rank fix first
        for a, b in ((z31, z3), (np.full((2, 3), 0.4, np.float32), z3)):
            with pytest.raises(ValueError, match=rf"y_true shape \{a.shape}.*y_pred shape \{b.shape}".replace(
                    "(", r"\(").replace(")", r"\)").replace("\\\\", "\\")):
                getattr(K, fn)(a, b)
            with pytest.raises(ValueError):
                getattr(keras.losses, fn)(a, b)
        cls = {"binary_crossentropy": "BinaryCrossentropy",
               "binary_focal_crossentropy": "BinaryFocalCrossentropy"}[fn]
        ours = getattr(K, cls)(reduction=None)(z31, z3)
        theirs = np.asarray(getattr(keras.losses, cls)(reduction=None)(z31, z3))
        assert ours.shape == theirs.shape
        assert_close_f32(ours, theirs, 0.0)
    for fn in ("kl_divergence", "poisson"):
        # no rank fix in the function: (3, 1) against (3,) broadcasts to (3, 3)
        for a, b in ((z31, z3), (np.full((2, 3), 0.2, np.float32), z3)):
            ours = getattr(K, fn)(a, b)
            theirs = np.asarray(getattr(keras.losses, fn)(a, b))
            assert ours.shape == theirs.shape
            assert_close_f32(ours, theirs, 1.0)
        with pytest.raises(ValueError, match=r"y_true shape \(2, 4\) and y_pred shape \(2, 3\)"):
            getattr(K, fn)(np.zeros((2, 4)), np.zeros((2, 3)))


def test_bad_input():
    y = np.full((2, 3), 0.5)
    with pytest.raises(TypeError, match="y_pred must be numeric"):
        K.binary_crossentropy(y, np.array([["a"] * 3] * 2))
    with pytest.raises(ValueError, match=r"axis=3 is out of range for inputs of shape \(2, 3\)"):
        K.binary_crossentropy(y, y, axis=3)
    with pytest.raises(TypeError, match="axis must be an int"):
        K.binary_focal_crossentropy(y, y, axis="last")
    with pytest.raises(ValueError, match="repeats an axis"):
        K.binary_crossentropy(y, y, axis=(1, -1))
    with pytest.raises(ValueError, match=r"out of range for inputs of shape \(\)"):
        K.binary_crossentropy(0.5, 0.5)
    with pytest.raises(ValueError, match="got scalars"):
        K.poisson(0.5, 0.5)
    bce, foc = lossref.get("binary_crossentropy"), lossref.get("binary_focal_crossentropy")
    with pytest.raises(ValueError, match=r"label_smoothing=1.5 is invalid"):
        bce.per_sample(y, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"epsilon=\(0.6, 0.4\) is invalid"):
        bce.per_sample(y, y, epsilon=(0.6, 0.4))
    with pytest.raises(ValueError, match=r"from_logits='yes' is invalid"):
        bce.per_sample(y, y, from_logits="yes")
    with pytest.raises(ValueError, match=r"gamma=inf is invalid"):
        foc.per_sample(y, y, gamma=math.inf)
    with pytest.raises(ValueError, match=r"epsilon=2.0 is invalid"):
        lossref.get("kl_divergence").per_sample(y, y, epsilon=2.0)
    with pytest.raises(ValueError, match=r"epsilon=-1.0 is invalid"):
        lossref.get("poisson").per_sample(y, y, epsilon=-1.0)
    with pytest.raises(ValueError, match="must be equal"):
        lossref.get("poisson").per_sample(np.zeros((2, 2)), np.zeros((2, 3)))


def test_registered_and_mirrored(keras):
    import inspect
    for n in NAMES:
        assert n in lossref.names()
        L = lossref.get(n)
        assert L.stage2 == ("sum" if n == "kl_divergence" else "mean")
    for name in ("binary_crossentropy", "binary_focal_crossentropy", "kl_divergence", "poisson",
                 "BinaryCrossentropy", "BinaryFocalCrossentropy", "KLDivergence", "Poisson"):
        ours, theirs = getattr(K, name), getattr(keras.losses, name)
        assert inspect.signature(ours) == inspect.signature(theirs), name
        assert callable(getattr(ours, "exact", None)), name
        assert name in K.__all__
    assert K.get("binary_crossentropy") is K.binary_crossentropy
    assert isinstance(K.get("KLDivergence"), K.KLDivergence)
    cfg = K.BinaryFocalCrossentropy(gamma=3.0).get_config()
    assert cfg["gamma"] == 3.0 and cfg["name"] == "binary_focal_crossentropy"
    assert K.Poisson().name == "poisson" and K.KLDivergence().name == "kl_divergence"
