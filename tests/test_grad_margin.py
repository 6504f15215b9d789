"""Reference gradients of the margin, ranking and similarity losses against numerical
differentiation of their oracles (tests/gradcheck.py), and their conventions at kinks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lossref
from lossref.formats import get_format, to_format_array

from .gradcheck import assert_grad_ulps, numeric_vjp
from .support import ulp_errors

FORMATS = ["float32", "bfloat16", "float16"]


def _vjp(name, t, p, params, cot):
    loss = lossref.get(name)
    kw = loss.bind(params)
    return loss, kw, loss.per_sample_vjp64(t, p, kw, cot)


def _exact(loss, kw, t, p, wrt, cot):
    arrays = {"y_true": t, "y_pred": p,
              **{k: np.broadcast_to(np.asarray(kw[k], np.float64), p.shape).copy() for k in loss.arrays}}

    def f(**a):
        return loss.per_sample_exact_values(a["y_true"], a["y_pred"], {**kw, **{k: a[k] for k in loss.arrays}})

    return numeric_vjp(f, arrays, wrt, cot)


def check(name, t, p, params, wrts, fmt="float64", seed=0, budget=None, cancel=False):
    """Every gradient of `wrts` within 4 ulp (float64) or 1 ulp (narrower formats, inputs of
    that format, result rounded once) of the oracle's numerical derivative, random `cot`.
    `cancel` (the triplets' d/da = h (g_ab - g_an)): or within ``2**-100 sum|terms|``, the
    terms ``|h g_ab|``, ``|h g_an|`` being the gradients of the positive and the negative."""
    loss = lossref.get(name)
    kw = loss.bind(params)
    shape = loss.per_sample64(t, p, kw).shape
    cot = np.random.default_rng(seed).uniform(0.25, 2.0, shape)
    got = loss.per_sample_vjp64(t, p, kw, cot)
    exacts = {w: _exact(loss, kw, t, p, w, cot) for w in wrts}
    for w in wrts:
        exact = exacts[w]
        g = np.broadcast_to(got[w], exact.shape)
        if fmt != "float64":
            g = np.asarray(to_format_array(g, fmt), np.float64)
        if cancel and w == "y_pred":
            terms = np.abs(exacts["y_true"].astype(float)) + np.abs(exacts["negative"].astype(float))
            ulps = ulp_errors(g, exact, get_format(fmt))
            err = np.abs(g - exact.astype(float))
            assert np.all((ulps <= (budget or (4 if fmt == "float64" else 1))) | (err <= 2.0**-100 * terms)), ulps
            continue
        assert_grad_ulps(g, exact, fmt, budget or (4 if fmt == "float64" else 1), f"{name} {params} d/d{w}")


def rows(rng, n=3, c=4, scale=1.0):
    return rng.normal(size=(n, c)) * scale


def in_fmt(x, fmt):
    return np.asarray(to_format_array(np.asarray(x, np.float64), fmt), np.float64)


# --- typical and adversarial points ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_categorical_hinge(fmt):
    rng = np.random.default_rng(1)
    p = in_fmt(rows(rng), fmt)
    y = np.eye(4)[[0, 2, 3]]
    check("categorical_hinge", y, p, {}, ["y_pred", "y_true"], fmt)
    soft = in_fmt(rng.uniform(size=(3, 4)), fmt)
    check("categorical_hinge", soft, in_fmt(p * 1e-30, fmt) if fmt == "float64" else p, {}, ["y_pred", "y_true"], fmt)


def test_categorical_hinge_huge_and_cancelling():
    y = np.array([[0.5 + 2**-40, 0.25, 0.25], [1e200, -1e200, 0.0]])
    p = np.array([[1.0, 1.0 - 2**-30, 0.3], [1e100, 3e99, -2e100]])
    check("categorical_hinge", y, p, {}, ["y_pred", "y_true"])


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_multiclass_hinge(fmt):
    rng = np.random.default_rng(2)
    s = in_fmt(rows(rng), fmt)
    y = np.eye(4)[[1, 0, 3]]
    check("multiclass_hinge", y, s, {"margin": 1.0}, ["y_pred", "y_true"], fmt)
    check("multiclass_hinge", y, in_fmt(s * 1e4, fmt), {"margin": 0.0}, ["y_pred", "y_true"], fmt)


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_margin_ranking(fmt):
    rng = np.random.default_rng(3)
    x1, x2 = in_fmt(rows(rng), fmt), in_fmt(rows(rng), fmt)
    y = in_fmt(rng.uniform(-2, 2, (3, 4)), fmt)
    check("margin_ranking", y, x1, {"x2": x2, "margin": 0.5}, ["y_pred", "y_true", "x2"], fmt)


def test_margin_ranking_cancelling_difference():
    # one pair per sample: the numerical derivative of a row sum of 1e300 could not see 1e-16
    x1 = np.array([[1.0 + 2**-50], [1e300], [2.0**-1060], [-3.0]])
    x2 = np.array([[1.0], [-1e300 * 0.5], [-(2.0**-1061)], [-3.0 + 2**-48]])
    y = np.array([[-1.0], [-1.0], [-1.0], [1.5]])
    margins = [0.25, 0.25, 2.0**-1058, 0.25]  # the subnormal pair against a margin of its size
    for i in range(len(y)):  # one call each: the numerical derivative sums all samples
        check("margin_ranking", y[i:i + 1], x1[i:i + 1], {"x2": x2[i:i + 1], "margin": margins[i]},
              ["y_pred", "y_true", "x2"])


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_multi_margin(fmt):
    rng = np.random.default_rng(4)
    x = in_fmt(rows(rng, c=5), fmt)
    t = np.array([0.0, 3.0, 4.0])
    check("multi_margin", t, x, {"p": 1, "margin": 1.0}, ["y_pred"], fmt)
    check("multi_margin", t, x, {"p": 2, "margin": 0.75, "weight": [1.0, 0.5, 3.0, 0.1, 2.0]}, ["y_pred"], fmt)


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_multilabel_margin(fmt):
    rng = np.random.default_rng(5)
    x = in_fmt(rows(rng, c=5), fmt)
    lab = np.array([[1, 3, -1, 0, 2], [4, 4, -1, -1, -1], [0, 1, 2, 3, -1]], float)
    check("multilabel_margin", lab, x, {}, ["y_pred"], fmt)


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_cosine_similarity(fmt):
    rng = np.random.default_rng(6)
    y, p = in_fmt(rows(rng), fmt), in_fmt(rows(rng), fmt)
    check("cosine_similarity", y, p, {}, ["y_pred", "y_true"], fmt)
    check("cosine_similarity", y.T.copy(), p.T.copy(), {"axis": 0, "epsilon": None}, ["y_pred", "y_true"], fmt)


def test_cosine_similarity_adversarial():
    rng = np.random.default_rng(7)
    p = rows(rng)
    near = p * (1 + 2**-40 * rows(rng))  # nearly parallel: the textbook residual cancels
    check("cosine_similarity", near, p, {}, ["y_pred", "y_true"])
    check("cosine_similarity", rows(rng, scale=1e-300), rows(rng, scale=1e250), {"epsilon": None}, ["y_pred", "y_true"])
    check("cosine_similarity", rows(rng, scale=1e-9), p, {"epsilon": 1e-7}, ["y_pred", "y_true"])  # floored y
    check("cosine_similarity", np.array([[5e-324, 3e-322, -1e-320]]), np.array([[1.0, 2.0, -1.0]]),
          {"epsilon": 1e-7}, ["y_pred", "y_true"])  # subnormal y under the floor


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_cosine_embedding(fmt):
    rng = np.random.default_rng(8)
    x1, x2 = in_fmt(rows(rng), fmt), in_fmt(rows(rng), fmt)
    lab = np.array([1.0, -1.0, -1.0])
    check("cosine_embedding", lab, x1, {"x2": x2, "margin": -0.5}, ["y_pred", "x2"], fmt)


def test_cosine_embedding_adversarial():
    rng = np.random.default_rng(9)
    x1 = rows(rng)
    lab = np.array([1.0, -1.0, 0.0])
    check("cosine_embedding", lab, x1, {"x2": x1 * (1 + 2**-40 * rows(rng)), "margin": 0.5}, ["y_pred", "x2"])
    check("cosine_embedding", lab, x1 * 1e-200, {"x2": rows(rng, scale=1e200), "eps": (1e-300, 0.0)}, ["y_pred", "x2"])
    check("cosine_embedding", np.array([1.0, -1.0, 1.0]), x1 * 1e-7, {"x2": rows(rng), "eps": 1e-12}, ["y_pred", "x2"])


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
@pytest.mark.parametrize("p,swap", [(2, False), (1, False), (math.inf, False), (2, True)])
def test_triplet_margin(fmt, p, swap):
    rng = np.random.default_rng(10)
    a, b = in_fmt(rows(rng), fmt), in_fmt(rows(rng), fmt)
    n = in_fmt(a + rows(rng, scale=0.7), fmt)
    check("triplet_margin", b, a, {"negative": n, "margin": 2.0, "p": p, "swap": swap},
          ["y_pred", "y_true", "negative"], fmt)


def test_triplet_margin_adversarial():
    rng = np.random.default_rng(11)
    a = rows(rng)
    # d(a, b) and d(a, n) nearly equal and nearly parallel: d/da cancels
    n = a + rows(rng, scale=0.5)
    b = a + (n - a) * (1 + 2**-30)
    check("triplet_margin", b, a, {"negative": n, "margin": 1.0, "eps": 0.0}, ["y_pred", "y_true", "negative"],
          cancel=True)
    check("triplet_margin", b * 1e150, a * 1e150, {"negative": n * 1e150, "margin": 1e150}, ["y_pred", "y_true", "negative"],
          cancel=True)
    check("triplet_margin", b * 1e-160, a * 1e-160, {"negative": n * 1e-160, "eps": 0.0, "margin": 1e-160},
          ["y_pred", "y_true", "negative"], cancel=True)


@pytest.mark.parametrize("p", [3, 1.5, 0.7])
def test_triplet_margin_other_p(p):
    """p outside {1, 2, inf}: powers in float64, within ``4 ulp + 16 u sum|terms|`` (terms:
    ``|h g_ab|``, ``|h g_an|``, the gradients of b and n)."""
    rng = np.random.default_rng(12)
    a, b = rows(rng), rows(rng)
    n = a + rows(rng, scale=0.7)
    loss, kw, got = _vjp("triplet_margin", b, a, {"negative": n, "margin": 2.0, "p": p}, np.ones(3))
    ex = {w: _exact(loss, kw, b, a, w, np.ones(3)) for w in ("y_pred", "y_true", "negative")}
    f = get_format("float64")
    for w in ex:
        terms = np.abs(np.asarray(ex["y_true"], float)) + np.abs(np.asarray(ex["negative"], float))
        err = np.abs(np.asarray(got[w], float) - np.asarray(ex[w], float))
        ulps = ulp_errors(got[w], ex[w], f)
        assert np.all((ulps <= 4) | (err <= 16 * f.eps * terms)), (w, ulps)


@pytest.mark.parametrize("fmt", ["float64"] + FORMATS)
def test_triplet_margin_powsum(fmt):
    rng = np.random.default_rng(13)
    a, b = in_fmt(rows(rng), fmt), in_fmt(rows(rng), fmt)
    n = in_fmt(a + rows(rng, scale=0.7), fmt)
    check("triplet_margin_powsum", b, a, {"negative": n, "margin": 3.0}, ["y_pred", "y_true", "negative"], fmt)
    close = in_fmt(a + (n - a) * (1 + 2**-20), fmt)
    check("triplet_margin_powsum", close, a, {"negative": n, "margin": 1.0, "eps": 0.0},
          ["y_pred", "y_true", "negative"], fmt, cancel=True)


def test_triplet_margin_powsum_p3():
    rng = np.random.default_rng(14)
    a = np.abs(rows(rng)) + 3.0
    b, n = a - np.abs(rows(rng)), a - 2 * np.abs(rows(rng))  # positive differences
    check("triplet_margin_powsum", b, a, {"negative": n, "margin": 3.0, "p": 3}, ["y_pred", "y_true", "negative"],
          budget=8)


# --- conventions at kinks (expected values from the stated convention) ------------------------


def grads(name, t, p, params, **extra):
    loss = lossref.get(name)
    kw = loss.bind(params)
    cot = np.ones(loss.per_sample64(np.asarray(t, float), np.asarray(p, float), kw).shape)
    kw2 = {k: (np.asarray(v, float) if k in loss.arrays else v) for k, v in kw.items()}
    return loss.grad_ref(np.asarray(t, float), np.asarray(p, float), cot if not loss.separable
                         else np.broadcast_to(cot[..., None] / np.shape(p)[-1], np.shape(p)), **kw2, **extra)


def test_kinks_categorical_and_multiclass_hinge():
    # hinge at 0 (share 1/2) and the max of (1 - y) p tied between both classes (1/2 each)
    g = grads("categorical_hinge", [[1.0, 0.0]], [[1.0, 0.0]], {})
    np.testing.assert_array_equal(g["y_pred"], [[-0.5, 0.25]])
    np.testing.assert_array_equal(g["y_true"], [[-0.75, 0.0]])
    g = grads("categorical_hinge", [[1.0, 0.0, 0.0]], [[0.5, 0.25, 0.25]], {})
    np.testing.assert_array_equal(g["y_pred"], [[-1.0, 0.5, 0.5]])
    # a three-way tie of the candidates: 1/3 each
    g = grads("multiclass_hinge", [[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], {"margin": 1.0})
    np.testing.assert_allclose(g["y_pred"], [[-2 / 3, 1 / 3, 1 / 3]], rtol=2**-52)
    np.testing.assert_allclose(g["y_true"], [[-4 / 3, -1 / 3, -1 / 3]], rtol=2**-52)


def test_kinks_margin_ranking_multi_margin_multilabel():
    g = grads("margin_ranking", [[1.0]], [[1.0]], {"x2": 0.0, "margin": 1.0})
    assert g["y_pred"][0, 0] == -0.5 and g["x2"][0, 0] == 0.5 and g["y_true"][0, 0] == -0.5
    assert grads("margin_ranking", [[1.0]], [[1.0]], {"x2": 0.0, "margin": 1.0}, kink=1.0)["y_pred"][0, 0] == -1.0
    x = [[1.0, 0.0, 0.5]]
    g = grads("multi_margin", [0.0], x, {"p": 1, "margin": 1.0})["y_pred"]
    np.testing.assert_allclose(g, [[-0.5, 1 / 6, 1 / 3]], rtol=2**-52)
    g = grads("multi_margin", [0.0], x, {"p": 1, "margin": 1.0}, kink=0.0)["y_pred"]  # torch
    np.testing.assert_allclose(g, [[-1 / 3, 0.0, 1 / 3]], rtol=2**-52)
    g = grads("multi_margin", [0.0], x, {"p": 2, "margin": 1.0})["y_pred"]  # 2 h = 0 at the kink
    np.testing.assert_allclose(g, [[-1 / 3, 0.0, 1 / 3]], rtol=2**-52)
    g = grads("multilabel_margin", [[0, -1, -1]], x, {})["y_pred"]
    np.testing.assert_allclose(g, [[-0.5, 1 / 6, 1 / 3]], rtol=2**-52)
    g = grads("multilabel_margin", [[0, -1, -1]], x, {}, kink=0.0)["y_pred"]
    np.testing.assert_allclose(g, [[-1 / 3, 0.0, 1 / 3]], rtol=2**-52)


def test_kinks_cosine():
    r2 = math.sqrt(2)
    # ||p|| = epsilon: half the unfloored derivative [0, -2 sqrt 2], half the floored one -v / eps
    g = grads("cosine_similarity", [[1.0, 1.0]], [[0.25, 0.0]], {"epsilon": 0.25})
    np.testing.assert_allclose(g["y_pred"], [[-r2, -2 * r2]], rtol=2**-51)
    np.testing.assert_allclose(g["y_true"], [[-1 / (2 * r2), 1 / (2 * r2)]], rtol=2**-51)
    g = grads("cosine_similarity", [[1.0, 1.0]], [[0.25, 0.0]], {"epsilon": 0.25}, tie=1.0)
    np.testing.assert_allclose(g["y_pred"], [[0.0, -2 * r2]], rtol=2**-51, atol=1e-300)
    # a zero vector without a floor: n(0) = 0 is a constant there
    g = grads("cosine_similarity", [[1.0, 1.0]], [[0.0, 0.0]], {"epsilon": None})
    np.testing.assert_array_equal(g["y_pred"], [[0.0, 0.0]])
    np.testing.assert_array_equal(g["y_true"], [[0.0, 0.0]])
    # cos = margin with y = -1: half of d cos = x2 - cos x1
    g = grads("cosine_embedding", [-1.0], [[1.0, 0.0]], {"x2": [[0.0, 1.0]], "margin": 0.0, "eps": 0.0})
    np.testing.assert_array_equal(g["y_pred"], [[0.0, 0.5]])
    np.testing.assert_array_equal(g["x2"], [[0.5, 0.0]])
    g = grads("cosine_embedding", [-1.0], [[1.0, 0.0]], {"x2": [[0.0, 1.0]], "margin": 0.0, "eps": 0.0}, kink=1.0)
    np.testing.assert_array_equal(g["y_pred"], [[0.0, 1.0]])
    g = grads("cosine_embedding", [1.0], [[0.0, 0.0]], {"x2": [[0.0, 1.0]], "eps": 0.0})
    # the value is a NaN the definition sets (0/0 of a zero vector): a constant, so no
    # gradient flows from it (spec/accuracy.md, "Gradients")
    np.testing.assert_array_equal(g["y_pred"], [[0.0, 0.0]])
    np.testing.assert_array_equal(g["x2"], [[0.0, 0.0]])


def test_kinks_triplet():
    a, b, n = [[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]]
    for name in ("triplet_margin", "triplet_margin_powsum"):
        g = grads(name, b, a, {"negative": n, "margin": 1.0, "eps": 0.0})
        np.testing.assert_array_equal(g["y_pred"], [[0.0, 0.0]])
        np.testing.assert_array_equal(g["y_true"], [[0.5, 0.0]])
        np.testing.assert_array_equal(g["negative"], [[-0.5, 0.0]])
    g = grads("triplet_margin", b, a, {"negative": n, "margin": 1.0, "eps": 0.0}, kink=1.0)  # torch
    np.testing.assert_array_equal(g["y_true"], [[1.0, 0.0]])
    # zero distance d(a, b) = 0: its entries are 0
    same = [[1.0, 2.0]]
    for p in (2, 1, math.inf, 3):
        g = grads("triplet_margin", same, same, {"negative": [[3.0, 1.0]], "margin": 9.0, "eps": 0.0, "p": p})
        np.testing.assert_array_equal(g["y_true"], [[0.0, 0.0]])
    g = grads("triplet_margin", same, same, {"negative": [[3.0, 1.0]], "margin": 9.0, "eps": 0.0})
    np.testing.assert_allclose(g["y_pred"], [[2 / math.sqrt(5), -1 / math.sqrt(5)]], rtol=2**-52)
    g = grads("triplet_margin_powsum", same, same, {"negative": [[3.0, 1.0]], "margin": 9.0, "eps": 0.0})
    np.testing.assert_array_equal(g["y_true"], [[0.0, 0.0]])
    g = grads("triplet_margin_powsum", same, same, {"negative": [[3.0, 1.0]], "margin": 9.0, "eps": 0.0},
              at_zero=math.nan)  # optax
    assert np.all(np.isnan(g["y_true"]))
    # p = inf: |z| tied between both entries, 1/2 each
    g = grads("triplet_margin", [[1.0, -1.0]], [[0.0, 0.0]], {"negative": [[3.0, 1.0]], "margin": 9.0, "eps": 0.0,
                                                             "p": math.inf})
    np.testing.assert_array_equal(g["y_true"], [[0.5, -0.5]])
    # swap: d(a, n) = d(b, n), the min split 1/2
    g = grads("triplet_margin", [[2.0, 0.0]], [[0.0, 0.0]], {"negative": [[1.0, 0.0]], "margin": 9.0, "eps": 0.0,
                                                            "swap": True})
    np.testing.assert_array_equal(g["y_pred"], [[-0.5, 0.0]])
    np.testing.assert_array_equal(g["y_true"], [[0.5, 0.0]])
    np.testing.assert_array_equal(g["negative"], [[0.0, 0.0]])


def test_nan_rows_follow_the_value():
    g = grads("multi_margin", [0.0, 1.0], [[1.0, np.nan, 0.0], [0.0, 2.0, 0.5]], {"p": 1, "margin": 1.0})["y_pred"]
    assert np.all(np.isnan(g[0])) and np.all(np.isfinite(g[1]))
    g = grads("cosine_similarity", [[1.0, np.inf], [1.0, 2.0]], [[1.0, 1.0], [2.0, 1.0]], {})
    assert np.all(np.isnan(g["y_pred"][0])) and np.all(np.isfinite(g["y_pred"][1]))
