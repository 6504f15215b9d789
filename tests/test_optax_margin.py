"""lossref.optax: multiclass margins, sparsemax, ranking softmax, triplet margin, NT-Xent.

Against real Optax (x64 on; float32 and float64 inputs; every option listed in CASES),
the new catalogue losses against their oracles on adversarial inputs in all four formats,
the oracles against independent high-precision computations, and the errors.
"""

from __future__ import annotations

import inspect

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.optax import _margin
from lossref.optax import losses as L
from tests.support import FORMATS, assert_ulps, call_optax, optax_x64, representable

NAMES = ["multiclass_hinge_loss", "multiclass_perceptron_loss", "sparsemax_loss", "multiclass_sparsemax_loss",
         "ranking_softmax_loss", "triplet_margin_loss", "ntxent"]


def _inputs(dt, rng):
    s = rng.standard_normal((6, 5)).astype(dt)
    y = rng.integers(0, 5, 6)
    lab = rng.integers(0, 3, (6, 5)).astype(dt)
    w = rng.random((6, 5)) > 0.3
    w[0] = False
    a, p, n = (rng.standard_normal((6, 4)).astype(dt) for _ in range(3))
    return s, y, lab, w, (a, p, n)


def _cases(dt, jnp):
    """(name, args, keywords) covering every option lossref models."""
    s, y, lab, w, (a, p, n) = _inputs(dt, np.random.default_rng(7))
    wt = np.random.default_rng(8).random(5).astype(dt)
    return [
        ("multiclass_hinge_loss", (s, y), {}),
        ("multiclass_perceptron_loss", (s, y), {}),
        ("multiclass_sparsemax_loss", (s, y), {}),
        ("multiclass_sparsemax_loss", (s * 4, y), {}),
        ("sparsemax_loss", (s, y[:, None] % 2), {}),
        ("ranking_softmax_loss", (s, lab), {}),
        ("ranking_softmax_loss", (s, lab), {"reduce_fn": None}),
        ("ranking_softmax_loss", (s, lab), {"reduce_fn": jnp.sum}),
        ("ranking_softmax_loss", (s, lab), {"where": w}),
        ("ranking_softmax_loss", (s, lab), {"where": w, "weights": wt, "reduce_fn": None}),
        ("ranking_softmax_loss", (s, lab), {"where": w, "reduce_fn": jnp.sum}),
        ("triplet_margin_loss", (a, p, n), {}),
        ("triplet_margin_loss", (a, p, n), {"margin": 0.25, "eps": 1e-3}),
        ("triplet_margin_loss", (a, p, n), {"norm_degree": 1}),
        ("triplet_margin_loss", (a, p, n), {"norm_degree": 3}),
        ("triplet_margin_loss", (a.T, p.T, n.T), {"axis": 0}),
        ("ntxent", (s, np.array([0, 0, 1, 1, 2, 2])), {}),
        ("ntxent", (s, np.array([0, 1, 0, 1, 1, 2])), {"temperature": 0.5}),
    ]


# --- (a) signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_optax(name):
    _, optax = optax_x64()
    theirs = inspect.signature(getattr(optax.losses, name))
    f = getattr(L, name)
    for ours in (inspect.signature(f), inspect.signature(f.exact)):
        got = [(p.name, p.kind, p.default) for p in ours.parameters.values()]
        want = [(p.name, p.kind, p.default) for p in theirs.parameters.values()]
        if name == "ranking_softmax_loss":  # jnp.mean is stood for by lossref.optax's mean
            assert got[-1][2] is _margin.mean and want[-1][2].__name__ == "mean"
            got, want = got[:-1], want[:-1]
        assert got == want


# --- (b) agreement with real optax ------------------------------------------------------------------


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_agrees_with_optax(dt):
    jax, optax = optax_x64()
    for name, args, kw in _cases(dt, jax.numpy):
        ours = getattr(L, name)(*args, **kw)
        kw_j = {k: jax.numpy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        theirs = call_optax(getattr(optax.losses, name), *args, **kw_j)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (name, kw)
        # optax's own roundoff: a few u of its working dtype (float32 inside where the input is)
        u = 2.0 ** -formats.get_format(dt).precision
        np.testing.assert_allclose(ours, theirs, rtol=64 * u, atol=64 * u, err_msg=f"{name} {kw}")
        exact = getattr(L, name).exact(*args, **kw)
        assert_ulps(ours, exact, ours.dtype, 4, what=f"{name} {kw}")


def test_documented_values():
    """Optax's own documented examples."""
    s = np.array([[0.1, 0.2, 0.4, 0.8]], np.float32)
    assert L.multiclass_hinge_loss(s, np.array([3]))[0] == pytest.approx(0.6, abs=1e-7)
    assert float(L.ranking_softmax_loss(np.array([2., 1., 3.]), np.array([1., 0., 0.]))) == pytest.approx(1.40760596444438)
    out = L.ranking_softmax_loss(np.array([[2., 1., 0.], [1., 0.5, 1.5]]), np.array([[1., 0., 0.], [0., 0., 1.]]),
                                 where=np.array([[True, True, False], [True, True, True]]))
    assert round(float(out), 3) == 0.497
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    t = L.triplet_margin_loss(a, a + 0.1, np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(t, [0.1414, 0.1414], atol=1e-4)


def test_special_conventions():
    """Dtypes and special cases as optax 0.2.8 defines them."""
    s16 = np.array([[1.0, 2.0, 0.5]], np.float16)
    assert L.multiclass_hinge_loss(s16, np.array([0])).dtype == np.float64  # one_hot is float64
    assert L.sparsemax_loss(s16, np.array([[1, 0, 1]])).dtype == np.float16
    # no positive pair: 0/0
    assert np.isnan(L.ntxent(np.eye(3), np.array([0, 1, 2])))
    # every list masked: the mean of nothing is 0, not NaN
    z = L.ranking_softmax_loss(np.ones((2, 3)), np.ones((2, 3)), where=np.zeros((2, 3), bool))
    assert float(z) == 0.0
    # a score of -inf is outside the support; at the label the loss is inf
    assert L.multiclass_sparsemax_loss(np.array([[0., -np.inf, 1.]]), np.array([0]))[0] == 1.0
    assert L.multiclass_sparsemax_loss(np.array([[0., -np.inf, 1.]]), np.array([1]))[0] == np.inf
    # signed powers: an odd degree of a negative difference has no real root (pow: NaN)
    assert np.isnan(L.triplet_margin_loss(np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 2)), norm_degree=3)[0])


# --- (c) accuracy on adversarial inputs -------------------------------------------------------------


def _adversarial_scores(f, rng):
    """Rows of 5 scores: ties at the sparsemax support boundary, near-ties, a dominant
    class, large and tiny magnitudes, -inf."""
    rows = [
        [1.0, 0.0, 0.0, -1.0, -2.0],            # z_2 = tau exactly (boundary tie)
        [0.5, 0.5, -0.5, -0.5, -3.0],           # tau = 0: two ties
        [2.0, 1.0, 1.0, 1.0, 0.0],              # dominant class with a margin of 1
        [1.0, 1.0 - 2 * f.eps, 1.0 + 4 * f.eps, 0.0, 0.0],
        [f.max / 4, f.max / 4, 0.0, -f.max / 8, 1.0],
        [f.tiny, -f.tiny, 0.0, f.min_subnormal, 1e-3],
        [3.0, -np.inf, 2.5, 2.75, -1.0],
        [100.0, 100.5, 99.75, 100.25, 0.0],
    ]
    rows += (rng.standard_normal((4, 5)) * np.exp(rng.uniform(-3, 3, (4, 1)))).tolist()
    return representable(rows, f)


@pytest.mark.parametrize("fmt", FORMATS)
def test_multiclass_against_oracle(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(3)
    z = _adversarial_scores(f, rng).astype(f.dtype)
    for c in range(5):
        y = np.full(z.shape[0], c)
        for fn in (L.multiclass_sparsemax_loss, L.multiclass_hinge_loss, L.multiclass_perceptron_loss):
            zz = z if fn is L.multiclass_sparsemax_loss else np.where(np.isinf(z.astype(float)), 0, z).astype(f.dtype)
            out = fn(zz, y)
            # float64 results (optax's one-hot dtype): 4 ulp of float64 for every format
            assert_ulps(out, fn.exact(zz, y), "float64", 4, what=f"{fn.__name__} class {c}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_sparsemax_against_oracle(fmt):
    f = formats.get_format(fmt)
    x = representable([-1.0, 1.0, -1.0 + f.eps, 1.0 - f.eps, 0.0, f.min_subnormal, -f.tiny, 0.5, -0.75, 3.0,
                       f.max, -f.max, np.inf, -np.inf, np.nan, 1e-3], f)
    x = np.concatenate([x, -x]).astype(f.dtype)
    for lab in (np.zeros(x.shape, int), np.ones(x.shape, int)):
        assert_ulps(L.sparsemax_loss(x, lab), L.sparsemax_loss.exact(x, lab), fmt, 1, what="sparsemax_loss")


@pytest.mark.parametrize("fmt", FORMATS)
def test_ranking_against_oracle(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(4)
    s = representable([[30.0, -30.0, 0.0, 1e-3], [1.0, 1.0, 1.0, 1.0], [f.max / 2, 0.0, -f.max / 2, 1.0],
                       [0.5, -np.inf, 0.25, 2.0]] + rng.standard_normal((4, 4)).tolist(), f).astype(f.dtype)
    lab = representable(rng.integers(0, 4, s.shape), f).astype(f.dtype)
    where = rng.random(s.shape) > 0.2
    where[3, 1] = False  # the -inf item masked
    for kw in ({"reduce_fn": None, "where": where}, {"where": where}, {"reduce_fn": None, "where": where,
                                                                       "weights": lab[0]}):
        out = L.ranking_softmax_loss(s, lab, **kw)
        ex = L.ranking_softmax_loss.exact(s, lab, **kw)
        if fmt == "float64":  # the page's bound: 3 u sum|w y log p| (plus the reduction's u)
            assert_ulps(out, ex, fmt, 8, what=f"ranking {list(kw)}")
        else:
            assert_ulps(out, ex, fmt, 1, what=f"ranking {list(kw)}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_triplet_against_oracle(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 3))
    p = a + representable(rng.standard_normal((6, 3)) * 1e-3, f)
    n = a + representable(rng.standard_normal((6, 3)), f)
    n[0] = p[0]  # equal distances: the loss is the margin
    a, p, n = (representable(v, f).astype(f.dtype) for v in (a, p, n))
    out = L.triplet_margin_loss(a, p, n)
    assert_ulps(out, L.triplet_margin_loss.exact(a, p, n), fmt, 1 if fmt != "float64" else 2, what="triplet")
    out = L.triplet_margin_loss(a, p, n, norm_degree=1)
    assert_ulps(out, L.triplet_margin_loss.exact(a, p, n, norm_degree=1), fmt, 1 if fmt != "float64" else 16,
                what="triplet p=1")


@pytest.mark.parametrize("fmt", FORMATS)
def test_ntxent_against_oracle(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(6)
    e = representable(rng.standard_normal((6, 3)), f)
    e[5] = 0.0  # a zero embedding: the norm clamp decides
    e[4] = representable(e[3] * 1.5, f)  # parallel embeddings: cosine 1
    e = e.astype(f.dtype)
    lab = np.array([0, 0, 1, 1, 2, 2])
    budget = 1 if fmt != "float64" else 8
    for t in (0.07, 1.0):
        assert_ulps(L.ntxent(e, lab, t), L.ntxent.exact(e, lab, t), fmt, budget, what=f"ntxent T={t}")


# --- oracles against independent computations -------------------------------------------------------


def _sparsemax_by_bisection(z, c):
    """Sparsemax loss from tau found by bisection of sum max(z - tau, 0) = 1 and
    <p, z> - z_c + (1 - ||p||^2) / 2 (no sorting, no support decision)."""
    with mpmath.workprec(300):
        z = [mpmath.mpf(float(v)) for v in z]
        lo, hi = min(z) - 1, max(z)
        for _ in range(400):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mpmath.fsum(max(v - mid, 0) for v in z) > 1 else (lo, mid)
        p = [max(v - lo, 0) for v in z]
        return mpmath.fsum(pi * vi for pi, vi in zip(p, z)) - z[c] + (1 - mpmath.fsum(pi * pi for pi in p)) / 2


def test_sparsemax_oracle_independent():
    rng = np.random.default_rng(9)
    z = np.concatenate([_adversarial_scores(formats.FLOAT64, rng)[[0, 1, 2, 3, 7]], rng.standard_normal((5, 5))])
    for c in range(5):
        ex = L.multiclass_sparsemax_loss.exact(z, np.full(len(z), c)).values(200)
        for i, row in enumerate(z):
            assert abs(ex[i] - _sparsemax_by_bisection(row, c)) < mpmath.mpf(2) ** -100


def test_other_oracles_independent():
    rng = np.random.default_rng(10)
    # NT-Xent in its pair-sum form from Python floats at 200 bits
    e, lab = rng.standard_normal((5, 3)), np.array([0, 0, 1, 1, 1])
    with mpmath.workprec(200):
        u = [[mpmath.mpf(float(v)) / mpmath.sqrt(mpmath.fsum(mpmath.mpf(float(w)) ** 2 for w in r)) for v in r] for r in e]
        sim = [[mpmath.fsum(a * b for a, b in zip(ui, uj)) / mpmath.mpf(0.07) for uj in u] for ui in u]
        terms = [-mpmath.log(mpmath.exp(sim[i][j]) / (mpmath.exp(sim[i][j]) + mpmath.fsum(
            mpmath.exp(sim[i][k]) for k in range(5) if lab[k] != lab[i]))) for i in range(5) for j in range(5)
            if i != j and lab[i] == lab[j]]
        want = mpmath.fsum(terms) / len(terms)
        got = L.ntxent.exact(e, lab).values(200)[()]
        assert abs(got - want) < mpmath.mpf(2) ** -150
        # the triplet power-sum distance for p = 2, 1
        a, p, n = rng.standard_normal((3, 4))
        for deg in (2, 1):
            d = [(mpmath.fsum((mpmath.mpf(float(x)) - mpmath.mpf(float(y))) ** deg for x, y in zip(a, v))
                  + mpmath.mpf(1e-6)) ** (mpmath.mpf(1) / deg) for v in (p, n)]
            want = max(d[0] - d[1] + 1, 0)
            got = L.triplet_margin_loss.exact(a, p, n, norm_degree=deg).values(200)[()]
            assert abs(got - want) < mpmath.mpf(2) ** -150


# --- (d) errors -------------------------------------------------------------------------------------


def test_errors():
    s = np.zeros((2, 3))
    with pytest.raises(TypeError, match="integer class indices"):
        L.multiclass_hinge_loss(s, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        L.multiclass_perceptron_loss(s, np.array([0, 3]))
    with pytest.raises(ValueError, match="without"):
        L.multiclass_sparsemax_loss(s, np.array([0]))
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        L.multiclass_sparsemax_loss(np.zeros((2, 2, 3)), np.zeros((2, 2), int))
    with pytest.raises(TypeError, match="logits"):
        L.sparsemax_loss(np.array([1, 2]), np.array([0, 1]))
    with pytest.raises(TypeError, match="reduce_fn"):
        L.ranking_softmax_loss(s, s, reduce_fn=np.max)
    with pytest.raises(TypeError, match="logits"):
        L.ranking_softmax_loss(np.zeros((2, 3), int), s)
    with pytest.raises(TypeError, match="keyword|positional"):
        L.ranking_softmax_loss(s, s, None)
    with pytest.raises(ValueError, match="broadcast"):
        L.ranking_softmax_loss(s, s, weights=np.ones(4))
    with pytest.raises(ValueError, match="norm_degree"):
        L.triplet_margin_loss(s, s, s, norm_degree=0)
    with pytest.raises(ValueError, match="out of bounds"):
        L.triplet_margin_loss(s, s, s, axis=2)
    with pytest.raises(TypeError, match="margin"):
        L.triplet_margin_loss(s, s, s, margin=[1.0])
    with pytest.raises(ValueError, match="batch size"):
        L.ntxent(s, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="temperature"):
        L.ntxent(s, np.array([0, 1]), temperature=0.0)


def test_catalogue_entries():
    for n in ("multiclass_hinge", "sparsemax", "ranking_softmax", "triplet_margin_powsum", "ntxent"):
        assert n in lossref.names() and not lossref.get(n).separable


def test_import_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, lossref.optax.losses; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
