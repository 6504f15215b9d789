"""lossref.optax.losses: regression losses, cosine similarity/distance, label smoothing,
hinge and perceptron losses, against real optax (x64 on) and the oracle."""

from __future__ import annotations

import inspect
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from lossref import formats
from lossref.optax import losses as O
from tests.support import FORMATS, adversarial_residual_pairs, assert_ulps, call_optax, optax_x64, ulp_errors

NAMES = ["l2_loss", "squared_error", "huber_loss", "log_cosh", "cosine_similarity", "cosine_distance",
         "smooth_labels", "hinge_loss", "perceptron_loss"]

#: options covered against optax: every keyword each function has
CASES = [
    ("squared_error", 2, {}), ("squared_error", 1, {}), ("l2_loss", 2, {}), ("l2_loss", 1, {}),
    ("huber_loss", 2, {}), ("huber_loss", 2, {"delta": 0.3}), ("huber_loss", 1, {"delta": 2.5}),
    ("huber_loss", 2, {"delta": 0.0}), ("huber_loss", 2, {"delta": -0.5}),
    ("log_cosh", 2, {}), ("log_cosh", 1, {}),
    ("cosine_similarity", 2, {}), ("cosine_similarity", 2, {"axis": 0}),
    ("cosine_similarity", 2, {"axis": None}), ("cosine_similarity", 2, {"axis": (0, 2)}),
    ("cosine_similarity", 2, {"epsilon": 4.0}), ("cosine_similarity", 2, {"where": "mask"}),
    ("cosine_distance", 2, {}), ("cosine_distance", 2, {"axis": 1, "epsilon": 2.0}),
    ("cosine_distance", 2, {"where": "mask", "epsilon": 0.5}),
    ("smooth_labels", "alpha", {}), ("smooth_labels", "alpha", {"axis": 0}),
    ("smooth_labels", "alpha", {"axis": None}), ("smooth_labels", "alpha", {"where": "mask"}),
    ("hinge_loss", "sign", {}), ("perceptron_loss", "sign", {}),
]


@pytest.fixture(scope="module")
def optax():
    return optax_x64()[1]


def _inputs(kind, kw, dtype, rng):
    p = (rng.standard_normal((3, 4, 5)) * 2).astype(dtype)
    t = (rng.standard_normal((3, 4, 5)) * 2).astype(dtype)
    kw = dict(kw)
    if kw.get("where") == "mask":
        kw["where"] = rng.random((3, 4, 5)) < 0.7
    if kind == 1:
        return (p,), kw
    if kind == "alpha":
        return (np.abs(t), 0.1), kw
    if kind == "sign":
        return (p, np.where(t >= 0, 1, -1).astype(dtype)), kw
    return (p, t), kw


def test_signatures_are_optax(optax):
    for n in NAMES:
        ours, theirs = inspect.signature(getattr(O, n)), inspect.signature(getattr(optax.losses, n))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in theirs.parameters.values()], n
        assert inspect.signature(getattr(O, n).exact) == ours, n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kind,kw", CASES)
def test_agrees_with_optax(optax, name, kind, kw, dtype):
    args, kw = _inputs(kind, kw, dtype, np.random.default_rng(7))
    ours = getattr(O, name)(*args, **kw)
    theirs = call_optax(getattr(optax.losses, name), *args, **kw)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    exact = getattr(O, name).exact(*args, **kw).round(dtype)
    _assert_near_optax(theirs, ours, name, dtype)
    _assert_near_optax(theirs, exact, name, dtype)


def _assert_near_optax(theirs, ours, name, dtype):
    """Within a few ulps; where optax's formula cancels (log_cosh's ``logaddexp(e, -e) -
    log 2``, the cosines' sums of terms of magnitude up to 1), within a few ulps of those terms."""
    eps = np.finfo(dtype).eps
    if name in ("log_cosh", "cosine_distance", "cosine_similarity"):
        np.testing.assert_allclose(theirs, ours, rtol=4 * eps, atol=16 * eps, equal_nan=True)
    else:
        err = ulp_errors(theirs, ours.astype(np.float64), formats.get_format(dtype))
        assert np.all(err <= 4), err.max()


def test_known_values():
    # hand-worked: (3 - 1)^2 = 4, half 2; huber delta 1 at |e| = 2: 1 (2 - 1/2) = 1.5
    assert O.squared_error(np.array([3.0, -1.0]), np.array([1.0, -1.0])).tolist() == [4.0, 0.0]
    assert O.l2_loss(np.array([3.0]), np.array([1.0])).tolist() == [2.0]
    assert O.huber_loss(np.array([2.0, 0.5])).tolist() == [1.5, 0.125]
    assert O.huber_loss(np.float32([3.0]), delta=-1.0).tolist() == [-3.5]  # -1 (3 - (-1)/2)
    assert O.log_cosh(np.array([0.0])).tolist() == [0.0]
    # (1, 2, 2) . (2, 1, -2) = 0; parallel: 1; distance 1 - 1 = 0 exactly
    assert O.cosine_similarity(np.array([1.0, 2, 2]), np.array([2.0, 1, -2])).tolist() == 0.0
    assert O.cosine_distance(np.array([[1.0, 2, 3]]), np.array([[2.0, 4, 6]])).tolist() == [0.0]
    # |a|^2 = 1 floored at 4, |b|^2 = 9 not: (1/2)(3/3) = 0.5
    assert O.cosine_similarity(np.array([1.0, 0]), np.array([3.0, 0]), epsilon=4.0).tolist() == 0.5
    # (1 - a) 1 + a / 4 and a / 4, a the float 0.2, rounded once; with where: K = 2
    a = Fraction(0.2)
    s = O.smooth_labels(np.array([1.0, 0, 0, 0]), 0.2)
    assert s.tolist() == [float(1 - a + a / 4)] + [float(a / 4)] * 3
    w = O.smooth_labels(np.array([1.0, 0, 0, 0]), 0.5, where=np.array([True, True, False, False]))
    assert w.tolist() == [0.75, 0.25, 0.25, 0.25]
    assert O.hinge_loss(np.array([0.5, 2.0, 0.3]), np.array([1.0, 1.0, 0.0])).tolist() == [0.5, 0.0, 1.0]
    assert O.perceptron_loss(np.array([0.5, -2.0]), np.array([1.0, 1.0])).tolist() == [0.0, 2.0]


def test_cosine_zero_vectors_and_masks(optax):
    z, o = np.zeros((2, 3)), np.ones((2, 3))
    assert np.isnan(O.cosine_similarity(z, o)).all() and np.isnan(O.cosine_distance(o, z)).all()
    assert O.cosine_similarity(z, o, epsilon=1e-12).tolist() == [0.0, 0.0]
    mask = np.array([[False] * 3, [True, False, False]])
    a = np.array([[np.inf, 1.0, 2.0], [0.0, 5.0, 1.0]])
    ours = O.cosine_similarity(a, o, where=mask)
    theirs = call_optax(optax.losses.cosine_similarity, a, o, where=mask)
    assert np.array_equal(ours, theirs, equal_nan=True)  # fully masked: 0; a masked inf: ignored


def test_dtypes_follow_jax(optax):
    h, b = np.ones(3, np.float16), np.ones(3, formats.get_format("bfloat16").dtype)
    assert O.squared_error(h, b).dtype == np.float32  # float16 with bfloat16
    assert O.huber_loss(np.ones(3, np.float32), np.ones(3)).dtype == np.float64
    assert O.hinge_loss(h, np.array([1, -1, 1])).dtype == np.float16  # int targets join the float
    assert call_optax(optax.losses.hinge_loss, h, np.array([1, -1, 1])).dtype == np.float16
    assert O.smooth_labels(b, 0.1, where=np.array([True, False, True])).dtype == b.dtype


def test_sizes_of_the_known_budget():
    # 1 - cos for nearly parallel vectors: one rounding of the exact value (optax: 1 - fl(cos))
    a = np.array([[1.0, 1e-9, 0.0]])
    b = np.array([[1.0, 0.0, 0.0]])
    got = O.cosine_distance(a, b)[0]
    # 1 - 1/sqrt(1 + d^2) = d^2/2 - 3 d^4/8 + O(d^6), d = float(1e-9): the series is far inside an ulp
    d = Fraction(1e-9)
    series = d * d / 2 - 3 * d ** 4 / 8
    assert abs(Fraction(got) - series) <= Fraction(2) ** -52 * series


@pytest.mark.parametrize("fmt", FORMATS)
def test_adversarial_elementwise(fmt):
    rng = np.random.default_rng(3)
    t, p = adversarial_residual_pairs(fmt, rng)
    f = formats.get_format(fmt)
    yt, yp = t.astype(f.dtype), p.astype(f.dtype)
    budget = 1 if fmt != "float64" else 4
    for fn, args in [(O.squared_error, (yp, yt)), (O.l2_loss, (yp, yt)), (O.huber_loss, (yp, yt)),
                     (O.log_cosh, (yp, yt)), (O.hinge_loss, (yp, yt)), (O.perceptron_loss, (yp, yt))]:
        assert_ulps(fn(*args), fn.exact(*args), fmt, budget, fn.__name__)


@pytest.mark.parametrize("fmt", FORMATS)
def test_adversarial_smooth_labels(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(5)
    # cancellation (alpha > 1, negative labels), tiny and huge labels, exact ties of the terms
    labels = np.array([[1.0, 0.0, -0.5, 0.25 + f.eps], [f.tiny, f.min_subnormal, 2.0 ** (f.emax // 2), -1.0],
                       rng.standard_normal(4).tolist(), [1 / 3, 2 / 3, 0.1, 1.0]])
    y = formats.round_array(labels, f).astype(f.dtype)
    for alpha in (0.1, 0.0, 1.0, 1.5, -0.25, 1 - 2.0 ** -30, 4.0 / 3.0):
        for kw in ({}, {"axis": 0}, {"where": np.array([True, False, True, True])}):
            assert_ulps(O.smooth_labels(y, alpha, **kw), O.smooth_labels.exact(y, alpha, **kw), fmt,
                        1 if fmt != "float64" else 4, f"alpha={alpha} {kw}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_adversarial_cosine(fmt):
    f = formats.get_format(fmt)
    big, small = f.max / 4, f.min_subnormal
    a = np.array([[1.0, 2.0, 3.0], [big, big, -big], [small, 2 * small, 0.0], [1.0, f.eps, 0.0],
                  [3.0, 4.0, 0.0], [1.0, -1.0, 0.5]])
    b = np.array([[1.0, 2.0, 3.0 + 4 * f.eps], [big, -big, big], [small, small, small], [1.0, 0.0, 0.0],
                  [4.0, -3.0, 1.0], [0.25, 0.0, 0.0]])
    ya, yb = (formats.round_array(v, f).astype(f.dtype) for v in (a, b))
    budget = 2 if fmt != "float64" else 8  # cosine_similarity's page: a few u, then one rounding
    for eps in (0.0, 1.0, 30.0):
        for fn in (O.cosine_similarity, O.cosine_distance):
            assert_ulps(fn(ya, yb, epsilon=eps), fn.exact(ya, yb, epsilon=eps), fmt, budget, f"{fn.__name__} {eps}")


def test_errors():
    f32 = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="predictions"):
        O.squared_error(np.ones(3, np.int32))
    with pytest.raises(ValueError, match="shape mismatch"):
        O.squared_error(np.ones(3), np.ones((1, 3)))
    with pytest.raises(ValueError, match="shape mismatch"):
        O.perceptron_loss(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="broadcast"):
        O.huber_loss(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="float"):
        O.hinge_loss(np.ones(3, int), np.ones(3, int))
    with pytest.raises(TypeError, match="targets"):
        O.cosine_similarity(f32, np.ones(3, np.int32))
    with pytest.raises(ValueError, match="equal sizes"):
        O.cosine_similarity(np.ones((3, 1)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="out of bounds"):
        O.cosine_distance(f32, f32, axis=2)
    with pytest.raises(TypeError, match="where"):
        O.cosine_similarity(f32, f32, where=np.ones(3))
    with pytest.raises(TypeError, match="alpha"):
        O.smooth_labels(f32, "0.1")
    with pytest.raises(TypeError, match="labels"):
        O.smooth_labels(np.ones(3, int), 0.1)
    with pytest.raises(TypeError):
        O.huber_loss(f32, f32, 0.5)  # delta is keyword-only, as in optax
    with pytest.raises(ValueError, match="delta"):
        O.huber_loss(f32, delta=float("inf"))


def test_import_does_not_import_jax():
    code = "import sys, lossref.optax.losses; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
