"""lossref.optax cross-entropies and KL divergences: signatures, agreement with optax
0.2.8 (x64 on), the new catalogue entries against their oracles, and errors."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.optax import losses as O
from tests.support import FORMATS, assert_within, call_optax, in_format, optax_x64, representable

NAMES = ['sigmoid_binary_cross_entropy', 'sigmoid_focal_loss', 'softmax_cross_entropy',
         'safe_softmax_cross_entropy', 'softmax_cross_entropy_with_integer_labels',
         'poly_loss_cross_entropy', 'kl_divergence', 'kl_divergence_with_log_targets',
         'convex_kl_divergence', 'generalized_kl_divergence']


def _optax(name):
    _, optax = optax_x64()
    return getattr(optax.losses, name)


def _params(sig):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", NAMES)
def test_signature_equals_optax(name):
    ours = getattr(O, name)
    theirs = inspect.signature(_optax(name))
    assert _params(inspect.signature(ours)) == _params(theirs)
    assert _params(inspect.signature(ours.exact)) == _params(theirs)


def test_import_does_not_import_jax():
    code = "import sys, lossref.optax; assert 'jax' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- agreement with optax ---------------------------------------------------------------------------

RNG = np.random.default_rng(7)


def _close(ours, theirs, fmt, k=4.0, scale=0.0):
    """Equal dtype and shape, NaN/inf equal, else within k ulp of the larger magnitude
    plus `scale` (the size of terms that cancel: optax rounds in the format, lossref
    rounds once)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours.dtype, theirs.dtype, ours.shape, theirs.shape)
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    u = 2.0 ** (1 - formats.get_format(fmt).precision)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    ok = same | (np.abs(a - b) <= k * u * (np.maximum(np.abs(a), np.abs(b)) + scale))
    assert ok.all(), (a[~ok], b[~ok])


def _logits(shape, dtype, scale=3.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def _probs(shape, dtype):
    p = RNG.uniform(0.05, 1.0, shape)
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


TYPICAL = ["float32", "float64"]


@pytest.mark.parametrize("dt", TYPICAL)
def test_sigmoid_losses_agree_with_optax(dt):
    x, y = _logits((4, 5), dt), RNG.uniform(0, 1, (4, 5)).astype(dt)
    yb = (RNG.uniform(size=(4, 5)) > 0.5).astype(np.int32)
    for f, kw in [("sigmoid_binary_cross_entropy", {}), ("sigmoid_focal_loss", {}),
                  ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 1.5}), ("sigmoid_focal_loss", {"gamma": 0.5})]:
        for labels in (y, yb, y[0]):
            _close(getattr(O, f)(x, labels, **kw), call_optax(_optax(f), x, labels, **kw), dt, 8)


@pytest.mark.parametrize("dt", TYPICAL)
def test_softmax_losses_agree_with_optax(dt):
    x, y = _logits((3, 4, 6), dt), _probs((3, 4, 6), dt)
    w = RNG.uniform(size=(3, 4, 6)) > 0.3
    w[0, 0] = False  # a fully masked row
    cases = [({}, {}), ({"axis": 0}, {}), ({"axis": (1, 2)}, {}), ({"axis": None}, {}),
             ({"where": w}, {}), ({"where": w[..., 0]}, {})]
    for kw, _ in cases:
        for f in ("softmax_cross_entropy", "poly_loss_cross_entropy"):
            if f.startswith("poly") and "where" in kw and kw["where"].ndim != x.ndim:
                continue
            _close(getattr(O, f)(x, y, **kw), call_optax(_optax(f), x, y, **kw), dt)
    for eps in (-1.0, 0.5):
        _close(O.poly_loss_cross_entropy(x, y, epsilon=eps), call_optax(_optax("poly_loss_cross_entropy"), x, y, epsilon=eps), dt, 16)
    _close(O.safe_softmax_cross_entropy(x, y), call_optax(_optax("safe_softmax_cross_entropy"), x, y), dt)
    yi = (y > 0.2).astype(np.int64)  # integer labels promote to the logits' dtype
    _close(O.softmax_cross_entropy(x, yi), call_optax(_optax("softmax_cross_entropy"), x, yi), dt)


@pytest.mark.parametrize("dt", TYPICAL)
def test_integer_labels_agree_with_optax(dt):
    f = "softmax_cross_entropy_with_integer_labels"
    x = _logits((3, 4, 5), dt)
    k = RNG.integers(0, 5, (3, 4))
    w = RNG.uniform(size=(3, 4, 5)) > 0.4
    w[1, 1] = False
    for kw, labels in [({}, k), ({"where": w}, k), ({"where": w[..., 0]}, k), ({"axis": 0}, RNG.integers(0, 3, (4, 5))),
                       ({"axis": (2, 1)}, RNG.integers(0, 20, (3,))), ({"axis": (1, 2)}, RNG.integers(0, 20, (3,))),
                       ({}, np.array([[-1, -5, 5, 7]] * 3)), ({}, k.astype(np.uint8)), ({}, k[:1])]:
        # optax forms logsumexp - logit, which cancels for a dominant class (and a masked
        # label): its error scales with those terms, lossref's -log p keeps relative accuracy
        _close(getattr(O, f)(x, labels, **kw), call_optax(_optax(f), x, labels, **kw), dt,
               scale=float(np.abs(x).max()) + 3)


@pytest.mark.parametrize("dt", TYPICAL)
def test_kl_losses_agree_with_optax(dt):
    lq = np.log(_probs((4, 6), "float64")).astype(dt)
    t = _probs((4, 6), dt)
    t[0, :2] = 0  # xlogy at a zero target
    w = RNG.uniform(size=(4, 6)) > 0.3
    for f in ("kl_divergence", "generalized_kl_divergence"):
        for kw in ({}, {"axis": 0}, {"axis": None}, {"where": w}, {"axis": (0, 1)}):
            _close(getattr(O, f)(lq, t, **kw), call_optax(_optax(f), lq, t, **kw), dt, 64)
    lt = np.log(_probs((4, 6), "float64")).astype(dt)
    f = "kl_divergence_with_log_targets"
    _close(O.kl_divergence_with_log_targets(lq, lt, where=w), call_optax(_optax(f), lq, lt, where=w), dt, 64)


def test_dtype_promotion_like_jax():
    x16, y32 = np.float16([[1, 2]]), np.float32([[0.5, 0.5]])
    assert O.softmax_cross_entropy(x16, y32).dtype == np.float32
    bf = formats.get_format("bfloat16").dtype
    assert O.softmax_cross_entropy(x16, np.array([[0.5, 0.5]], bf)).dtype == np.float32
    assert O.sigmoid_binary_cross_entropy(np.float32([1.0]), np.float64([0.1])).dtype == np.float32
    assert O.kl_divergence(np.float32([[-1.0]]), np.float64([[0.5]])).dtype == np.float64


def test_special_values_as_optax_defines_them():
    z, y = np.array([[-np.inf, 0.0, 1.0]]), np.array([[0.0, 0.0, 1.0]])
    assert np.isnan(O.softmax_cross_entropy(z, y)[0])
    assert np.isnan(O.poly_loss_cross_entropy(z, y)[0])
    assert O.safe_softmax_cross_entropy(z, y)[0] == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-15)
    # labels in [-C, 0) count from the end; others outside [0, C) are NaN
    x = np.array([[1.0, 2.0, 3.0]] * 4)
    got = O.softmax_cross_entropy_with_integer_labels(x, np.array([-1, -3, 3, -4]))
    lse = math.log(math.e + math.e ** 2 + math.e ** 3)
    assert got[0] == pytest.approx(lse - 3) and got[1] == pytest.approx(lse - 1) and np.isnan(got[2:]).all()
    # a masked label's logit is still subtracted; a fully masked row is 0
    w = np.array([[False, True, True], [False, False, False], [True, True, True], [True, True, True]])
    got = O.softmax_cross_entropy_with_integer_labels(x, np.array([0, 2, 0, 0]), where=w)
    assert got[0] == pytest.approx(math.log(math.e ** 2 + math.e ** 3) - 1) and got[1] == 0
    # fully masked softmax rows are 0
    assert O.softmax_cross_entropy(x[:1], np.ones((1, 3)), where=np.array([False]))[0] == 0
    # KL: zero target with finite l is 0, with l = -inf NaN (xlogy)
    assert O.kl_divergence(np.array([[-3.0]]), np.array([[0.0]]))[0] == 0
    assert np.isnan(O.kl_divergence(np.array([[-np.inf]]), np.array([[0.0]]))[0])
    # generalized KL: zero target gives q; infinite partial sums add as IEEE
    assert O.generalized_kl_divergence(np.array([[-1.0]]), np.array([[0.0]]))[0] == pytest.approx(math.exp(-1))
    assert np.isnan(O.generalized_kl_divergence(np.array([[1.0]]), np.array([[np.inf]]))[0])
    # focal: labels outside [0, 1] with a negative 1 - p_t are NaN (exp(γ log(1 - p_t)))
    assert np.isnan(O.sigmoid_focal_loss(np.array([5.0]), np.array([1.5]))[0])


def test_special_values_match_optax():
    z = np.array([[-np.inf, 0.0, 1.0], [0.0, 0.0, 0.0], [1e300, -1e300, 0.0]])
    y = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    for f in ("softmax_cross_entropy", "safe_softmax_cross_entropy", "poly_loss_cross_entropy"):
        _close(getattr(O, f)(z, y), call_optax(_optax(f), z, y), "float64")
    lq = np.array([[-np.inf, 0.0], [-1.0, -np.inf], [0.0, -1.0]])
    t = np.array([[0.0, 1.0], [0.5, 0.5], [0.0, -0.5]])
    for f in ("kl_divergence", "generalized_kl_divergence"):
        _close(getattr(O, f)(lq, t), call_optax(_optax(f), lq, t), "float64", 64)
    x = np.array([40.0, -40.0, 700.0, -700.0, 0.0])
    yb = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    for f in ("sigmoid_binary_cross_entropy", "sigmoid_focal_loss"):
        _close(getattr(O, f)(x, yb), call_optax(_optax(f), x, yb), "float64", 8)


def test_convex_kl_warns_like_optax():
    lq, t = np.array([[-1.0, 0.0]]), np.array([[0.5, 0.0]])
    with pytest.warns(DeprecationWarning, match="Please use generalized_kl_divergence"):
        v = O.convex_kl_divergence(lq, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert v[0] == O.generalized_kl_divergence(lq, t)[0] == call_optax(_optax("convex_kl_divergence"), lq, t)[0]


# --- errors -----------------------------------------------------------------------------------------


def _raises_like_optax(f, *args, **kw):
    with pytest.raises(Exception) as theirs:
        call_optax(_optax(f), *args, **kw)
    with pytest.raises((TypeError, ValueError)) as ours:
        getattr(O, f)(*args, **kw)
    assert isinstance(ours.value, type(theirs.value)) or isinstance(theirs.value, type(ours.value)), (theirs, ours)
    assert "\n" not in str(ours.value)


def test_errors():
    x = np.array([[1.0, 2.0, 3.0]])
    _raises_like_optax("softmax_cross_entropy_with_integer_labels", x, np.array([1.0]))
    _raises_like_optax("softmax_cross_entropy_with_integer_labels", x, np.array([True]))
    _raises_like_optax("softmax_cross_entropy_with_integer_labels", x, np.array([0]), axis=None)
    _raises_like_optax("softmax_cross_entropy_with_integer_labels", x, np.array([0]), axis=2)
    _raises_like_optax("softmax_cross_entropy_with_integer_labels", x, np.array([[0]]))
    _raises_like_optax("softmax_cross_entropy", np.array([[1, 2]]), np.array([[0.0, 1.0]]))
    _raises_like_optax("softmax_cross_entropy", x, x, where=np.array([[1, 0, 1]]))
    _raises_like_optax("poly_loss_cross_entropy", x, np.array([[0, 0, 1]]))
    _raises_like_optax("kl_divergence", x, np.array([[0, 0, 1]]))
    _raises_like_optax("sigmoid_binary_cross_entropy", np.array([1, 2]), np.array([0.0, 1.0]))
    _raises_like_optax("kl_divergence", x, np.ones((2, 3)), where=np.array([True, False]))
    with pytest.raises(TypeError):
        O.sigmoid_focal_loss(x, x, 0.25)  # keyword-only, as in optax
    with pytest.raises(TypeError):
        O.sigmoid_focal_loss(x, x, alpha="a")


# --- new catalogue entries: reference against oracle in all four formats ---------------------------


def _adversarial_logits(fmt):
    f = formats.get_format(fmt)
    big = f.max
    rows = [[0.0, -0.0, 0.0], [1e4, 0.0, -1e4], [big, -big, 0.0], [20.0, -20.0, 0.0], [-np.inf, 0.0, 1.0],
            [f.min_subnormal, -f.min_subnormal, 0.0], [1.0, 1.0 + 2 * f.eps, 1.0], [np.nan, 0.0, 1.0],
            [np.inf, 0.0, 1.0], [-5.0, 3.0, 0.25]]
    return representable(rows, f)


def _adversarial_labels(fmt):
    f = formats.get_format(fmt)
    rows = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.25, 0.25, 0.5], [0.0, 0.5, 0.5],
            [f.min_subnormal, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]
    return representable(rows, f)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("eps", [2.0, -1.0])
def test_poly1_reference_within_budget(fmt, eps):
    L = lossref.get("poly1_crossentropy")
    z, y = in_format(_adversarial_logits(fmt), fmt), in_format(_adversarial_labels(fmt), fmt)
    got = L.per_sample(y, z, epsilon=eps)
    ex = L.exact(y, z, epsilon=eps)
    # terms |y| (|log p| + |eps| (1 - p)), generously bounded by the oracle's own value
    # plus |eps| for the cancelling eps < 0 case
    u64 = 2.0 ** -53
    narrow = fmt != "float64"
    terms = np.abs(np.asarray(ex.round("float64"), np.float64)) + 2 * abs(eps)
    terms = np.where(np.isfinite(terms), terms, 0.0)
    assert_within(got, ex, fmt, 1 if narrow else 4, terms=terms, scale=16 * (u64 if narrow else formats.get_format(fmt).eps),
                  base=0.5 if narrow else 4, what="poly1")


def _gkl_points(fmt):
    f = formats.get_format(fmt)
    t = [0.5, 0.0, 0.0, 1.0, 2.0, f.min_subnormal, 3.0, 0.3, 1.0, f.tiny, 0.7, 1.0, f.max / 4, 0.25, np.nan, -0.5,
         np.inf, 1.0]
    lq = [math.log(0.5) * (1 + 4 * f.eps), -1.0, -np.inf, 0.0, 8.0, -5.0, np.inf, -5.0, 2 * f.eps, 0.0, -0.36, -30.0,
          0.0, 1.0, 0.0, 0.0, 1.0, -np.inf]
    return representable(t, f), representable(lq, f)


@pytest.mark.parametrize("fmt", FORMATS)
def test_generalized_kl_reference_within_budget(fmt):
    L = lossref.get("generalized_kl_divergence")
    t, lq = _gkl_points(fmt)
    t2, l2 = in_format(t, fmt)[:, None], in_format(lq, fmt)[:, None]
    got = L.elementwise(t2, l2)
    ex = L.elementwise.exact(t2, l2)
    narrow = fmt != "float64"
    u = 2.0 ** -53 if narrow else formats.get_format(fmt).eps
    with np.errstate(all="ignore"):
        d = lq - np.log(t)
        cond = np.abs(t * np.expm1(d)) * (np.abs(np.log(t)) + np.abs(lq))
    cond = np.where(np.isfinite(cond), cond, 0.0)[:, None]
    assert_within(got, ex, fmt, 1 if narrow else 4, terms=cond, scale=8 * u, base=0.5 if narrow else 4, what="gkl")


def _mp_gkl(t, lq):
    """Independent evaluation: the literal formula in mpmath at 300 bits."""
    with mpmath.workprec(300):
        t, lq = mpmath.mpf(t), mpmath.mpf(lq)
        if t == 0:
            return mpmath.exp(lq)
        return t * mpmath.log(t) - t * lq - t + mpmath.exp(lq)


def _mp_poly(y, z, eps):
    with mpmath.workprec(300):
        z = [mpmath.mpf(v) for v in z]
        s = mpmath.fsum(mpmath.exp(v) for v in z)
        out = 0
        for yi, zi in zip(y, z):
            p = mpmath.exp(zi) / s
            out += mpmath.mpf(yi) * (-mpmath.log(p) + eps * (1 - p))
        return out


def test_oracles_against_independent_high_precision():
    L = lossref.get("generalized_kl_divergence")
    t = np.array([0.5, 1e-300, 3.0, 0.3, 2.0, 0.0])
    lq = np.array([math.log(0.5) + 1e-12, -650.0, 1.0, -1.2039728043259361, 30.0, -2.0])
    got = L.elementwise.exact(t[:, None], lq[:, None]).decimal(30)[:, 0]
    for g, ti, li in zip(got, t, lq):
        want = _mp_gkl(ti, li)
        with mpmath.workprec(300):
            assert abs(mpmath.mpf(str(g)) - want) <= abs(want) * mpmath.mpf(2) ** -90
    P = lossref.get("poly1_crossentropy")
    z = np.array([[1.0, 2.0, 3.0], [20.0, -20.0, 0.0], [0.5, 0.5, -7.0]])
    y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.25, 0.5, 0.25]])
    got = P.exact(y, z, epsilon=-1.0).decimal(30)
    for g, yi, zi in zip(got, y, z):
        want = _mp_poly(yi, zi, -1)
        with mpmath.workprec(300):
            assert abs(mpmath.mpf(str(g)) - want) <= abs(want) * mpmath.mpf(2) ** -90


@pytest.mark.parametrize("fmt", FORMATS)
def test_optax_functions_round_the_oracle(fmt):
    """Each dialect function is its exact twin rounded once, within the page budgets, on
    ordinary inputs of every format (float16 and bfloat16 included)."""
    f = formats.get_format(fmt)
    z = in_format(representable([[1.5, -2.0, 0.25], [8.0, -8.0, 0.0]], f), fmt)
    y = in_format(representable([[0.0, 0.0, 1.0], [0.25, 0.5, 0.25]], f), fmt)
    lq = in_format(representable(np.log([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]), f), fmt)
    for fn, args, kw in [(O.softmax_cross_entropy, (z, y), {}), (O.safe_softmax_cross_entropy, (z, y), {}),
                         (O.poly_loss_cross_entropy, (z, y), {"epsilon": 1.0}),
                         (O.softmax_cross_entropy_with_integer_labels, (z, np.array([2, 0])), {}),
                         (O.sigmoid_binary_cross_entropy, (z, y), {}), (O.sigmoid_focal_loss, (z, y), {"alpha": 0.25}),
                         (O.kl_divergence, (lq, y), {}), (O.generalized_kl_divergence, (lq, y), {})]:
        got = fn(*args, **kw)
        assert got.dtype == f.dtype
        assert_within(got, fn.exact(*args, **kw), fmt, 1 if fmt != "float64" else 8, what=fn.__name__)
