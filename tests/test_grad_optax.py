"""Reference gradients of the Optax dialect (``fn.vjp64``) against (1) central differences of
the function's oracle (:func:`tests.gradcheck.numeric_vjp`) and (2) ``jax.grad`` of the real
optax function, float64 and float32, with random cotangents; kinks and masked entries
against the convention written out by hand."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

from lossref.dialect import exact_params
from lossref.formats import FLOAT32, FLOAT64, to_format_array
from lossref.numerics import axes_last
from lossref.optax import losses as L

from .gradcheck import assert_grad_ulps, numeric_vjp

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

RNG = np.random.default_rng(15)


@pytest.fixture(autouse=True)
def _own_points(request):
    """Each test draws from a generator of its own (seeded by its id), so a change in one
    test never moves another's points."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))



def _numeric(fn, pr, cot, wrt, extra=()):
    arrays = {"y_true": pr.y_true, "y_pred": pr.y_pred}
    for k in extra:
        arrays[k] = pr.params[k]
    params = {k: v for k, v in pr.params.items() if k not in extra}

    def f(y_true, y_pred, **more):
        return fn._oracle(y_true, y_pred, **exact_params(params), **more)

    return numeric_vjp(f, arrays, wrt, cot)


def check(name, args, kw=None, wrt=("y_pred", "y_true"), argnums=(0, 1), layout=lambda g: g, fmt=FLOAT64,
          extra=(), budget=None, jax_kw=None, jax_args=None, skip_numeric=(), terms=None, no_jax=False):
    """vjp64 of ``L.name(*args, **kw)`` against the oracle's numeric VJP (ulps in `fmt`) and
    ``jax.grad`` of ``optax.losses.name`` (its gradient laid out as the prepared inputs)."""
    kw = kw or {}
    fn = getattr(L, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        a, b, rest = fn._arguments(args, kw)
        pr = fn.prepare(a, b, **rest)
    vals = fn.values64(pr)
    cot = RNG.uniform(0.5, 2.0, np.shape(vals)) * RNG.choice([-1.0, 1.0], np.shape(vals))
    got = fn.vjp64(pr, cot)
    budget = budget if budget is not None else (4 if fmt is FLOAT64 else 1)
    for key in wrt + tuple(extra):
        if key in skip_numeric:
            continue
        exact = _numeric(fn, pr, cot, key, extra)
        g = np.broadcast_to(got[key], exact.shape)
        if fmt is not FLOAT64:
            g = to_format_array(np.asarray(g, np.float64), fmt)
        if terms is not None and fmt is FLOAT64 and key in terms:
            # a difference of rounded terms: 4 ulp plus k u times the terms' magnitudes
            bound = 4 * np.spacing(np.abs(np.asarray(exact, np.float64))) + 8 * 2.0 ** -53 * terms[key](pr, cot)
            err = np.abs(np.asarray(g, np.float64) - np.asarray(exact, np.float64))
            assert np.all((err <= bound) | (np.isnan(g) & np.isnan(exact.astype(np.float64)))), \
                f"{name} d/d{key}: {np.max(err / bound):.3g} of the bound"
            continue
        assert_grad_ulps(g, exact, fmt, budget, f"{name} d/d{key} {fmt.name}")
    if no_jax:
        return got
    # jax.grad of the optax function, summed against the same cotangent
    jargs = [jnp.asarray(a) for a in (jax_args if jax_args is not None else args)]
    ofn = getattr(optax.losses, name)

    def total(*xs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            out = ofn(*xs, **(jax_kw if jax_kw is not None else kw))
        return jnp.sum(jnp.asarray(cot, out.dtype).reshape(out.shape) * out)

    jg = jax.grad(total, argnums=argnums)(*jargs)
    tol = 1e-11 if fmt is FLOAT64 else 2e-4
    for key, j in zip(wrt + tuple(extra), jg):
        j = layout(np.asarray(j, np.float64))
        mine = np.broadcast_to(np.asarray(got[key], np.float64), j.shape)
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(j), err_msg=f"{name} d/d{key}: NaN pattern")
        np.testing.assert_allclose(mine, j, rtol=tol, atol=tol * np.nanmax(np.abs(j), initial=1.0),
                                   err_msg=f"{name} d/d{key} vs jax.grad")
    return got


def r(*shape, lo=-2.0, hi=2.0, dtype=np.float64):
    return RNG.uniform(lo, hi, shape).astype(dtype)


def probs(*shape, dtype=np.float64):
    p = RNG.uniform(0.05, 1.0, shape)
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


def hard_logits(d):
    """Logits of the softmax tests: a moderate row, a 70-wide spread, a row near a tie."""
    return np.array([[0.3, -1.7, 2.5, 1.0], [40.0, 0.0, -30.0, 2.0], [-5.0, -5.5, 0.25, 0.0]], d)


def hard_labels(d):
    """Labels for :func:`hard_logits`: random probabilities, one-hot, and a row with a zero."""
    return np.vstack([probs(1, 4), [[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.2, 0.7, 0.1]]]).astype(d)


#: a `where` mask for (3, 4) inputs whose second row is fully masked
ROW_MASKED = np.array([[True, False, True, True], [False, False, False, False], [True, True, True, False]])
ROW_MASKED.setflags(write=False)


FMTS = [FLOAT64, FLOAT32]


def _soft(pr):
    from lossref.optax._classification import _on, _softmax_parts
    on = _on(pr.params.get("mask"))
    p, logp, _, _, _ = _softmax_parts(np.asarray(pr.y_pred, np.float64), on)
    y = np.asarray(pr.y_true, np.float64) if on is None else np.where(on, pr.y_true, 0.0)
    return p, logp, y


def _ce_terms(pr, cot):
    p, logp, y = _soft(pr)
    s = np.abs(y).sum(-1, keepdims=True)
    return np.abs(cot)[..., None] * (_plogp(p, logp) * s + np.abs(y))


def _plogp(p, logp):
    """``p (2 + |log p|)``, 0 where p is 0."""
    with np.errstate(all="ignore"):
        return np.where(p > 0, p * (2 + np.abs(logp)), 0.0)


def _poly_terms(pr, cot):
    p, logp, y = _soft(pr)
    e = abs(pr.params["epsilon"])
    return _ce_terms(pr, cot) + e * np.abs(cot)[..., None] * _plogp(p, logp) * (
        np.abs(y * p).sum(-1, keepdims=True) + np.abs(y))


def _gkl_terms(pr, cot):
    l = np.asarray(pr.y_pred, np.float64)
    return np.abs(cot)[..., None] * (np.exp(l) * (1 + np.abs(l)) + np.abs(pr.y_true))


def _cos_terms(which):
    def terms(pr, cot):
        v = np.asarray(getattr(pr, which), np.float64)
        n = np.sqrt(np.sum(v * v, -1, keepdims=True))
        if pr.params["epsilon"] > 0:
            n = np.maximum(n, np.sqrt(pr.params["epsilon"]))
        return 4 * np.abs(cot)[..., None] / n * np.ones(v.shape)
    return terms


COS_TERMS = {"y_pred": _cos_terms("y_pred"), "y_true": _cos_terms("y_true")}
CE_TERMS = {"y_pred": _ce_terms}
POLY_TERMS = {"y_pred": _poly_terms}
def _gkl_t_terms(pr, cot):
    l, t = np.asarray(pr.y_pred, np.float64), np.asarray(pr.y_true, np.float64)
    return np.abs(cot)[..., None] * (np.abs(np.log(t)) + np.abs(l))


GKL_TERMS = {"y_pred": _gkl_terms, "y_true": _gkl_t_terms}


def _kl_t_terms(pr, cot):  # d/dt of t (log t - l) is log t - l + 1: three terms that may cancel
    l, t = np.asarray(pr.y_pred, np.float64), np.asarray(pr.y_true, np.float64)
    return np.abs(cot)[..., None] * (np.abs(np.log(t)) + np.abs(l) + 1)


KL_TERMS = {"y_true": _kl_t_terms}
DT = {FLOAT64: np.float64, FLOAT32: np.float32}


# --- elementwise: regression, margins, sigmoid losses ------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name,kw", [("squared_error", {}), ("l2_loss", {}), ("huber_loss", {"delta": 1.0}),
                                     ("huber_loss", {"delta": 0.75}), ("log_cosh", {})])
def test_regression(name, kw, fmt):
    d = DT[fmt]
    p = np.array([[0.3, -1.7, 2.5, 1e-3], [40.0, -0.2, 1e-30, 3.0]], d)
    t = np.array([[0.1, 0.6, -1.0, 2e-3], [-1.0, -0.21, 0.0, 2.9]], d)
    check(name, (p, t), kw, fmt=fmt)


def test_regression_no_targets():
    p = np.array([0.5, -2.0, 1.5])
    check("l2_loss", (p,), wrt=("y_pred",), argnums=(0,))
    check("squared_error", (p,), wrt=("y_pred",), argnums=(0,))


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", ["hinge_loss", "perceptron_loss"])
def test_binary_margins(name, fmt):
    d = DT[fmt]
    s = np.array([[0.3, -1.7, 2.5], [0.75, -0.2, 1.25]], d)
    t = np.array([[1.0, -1.0, -1.0], [1.0, 1.0, -1.0]], d)
    check(name, (s, t), fmt=fmt)


def test_margin_kinks():
    """At the kink ``max(0, m)`` with ``m = 0`` the gradient is half the slope (jnp.maximum)."""
    cot = np.array([2.0, 3.0])
    pr = L.perceptron_loss.prepare(np.array([0.0, 0.0]), np.array([1.0, -1.0]))
    g = L.perceptron_loss.vjp64(pr, cot)
    np.testing.assert_array_equal(g["y_pred"], [-1.0, 1.5])
    np.testing.assert_array_equal(g["y_true"], [0.0, 0.0])
    pr = L.hinge_loss.prepare(np.array([1.0, -0.5]), np.array([1.0, -2.0]))
    g = L.hinge_loss.vjp64(pr, cot)
    np.testing.assert_array_equal(g["y_pred"], [-1.0, 3.0])
    np.testing.assert_array_equal(g["y_true"], [-1.0, 0.75])
    pr = L.huber_loss.prepare(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    g = L.huber_loss.vjp64(pr, cot)
    np.testing.assert_array_equal(g["y_pred"], [0.0, 3.0])  # abs'(0) = 0; |e| = delta: the slope delta


@pytest.mark.parametrize("fmt", FMTS)
def test_sigmoid_bce(fmt):
    d = DT[fmt]
    z = np.array([[0.3, -1.7, 25.0, -40.0], [1e-8, 3.0, -3.0, 700.0]], d)
    y = np.array([[1.0, 0.0, 1.0, 0.0], [0.5, 0.25, 1.0, 0.9]], d)
    check("sigmoid_binary_cross_entropy", (z, y), fmt=fmt)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("kw", [{}, {"alpha": 0.25}, {"gamma": 1.5, "alpha": 0.6}])
def test_sigmoid_focal(kw, fmt):
    d = DT[fmt]
    z = np.array([[0.3, -1.7, 6.0], [1e-3, 3.0, -3.0]], d)
    y = np.array([[0.75, 0.125, 0.9], [0.5, 0.25, 0.375]], d)
    # the focal page's float64 budget on logits: 8 ulp (no cancellation left, the roundings
    # of a product of exp, log1p and a power; 4.5 ulp seen at z = 3, y = 1/4)
    b = 8 if fmt is FLOAT64 else 1
    check("sigmoid_focal_loss", (z, y), kw, fmt=fmt, budget=b)
    # labels exactly 0 and 1: d/dy is jax.grad's (logsumexp drops a zero-weight term's derivative)
    y = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], d)
    check("sigmoid_focal_loss", (z, y), kw, fmt=fmt, skip_numeric=("y_true",), budget=b)


# --- softmax cross-entropies -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
def test_softmax_ce(fmt):
    d = DT[fmt]
    z = hard_logits(d)
    y = hard_labels(d)
    check("softmax_cross_entropy", (z, y), fmt=fmt, terms=CE_TERMS)
    # optax's custom JVP of safe_softmax_cross_entropy fails under jax.grad for float32 with x64 on
    check("safe_softmax_cross_entropy", (z, y), fmt=fmt, terms=CE_TERMS, no_jax=fmt is FLOAT32)


def test_softmax_ce_axis_and_mask():
    z, y = r(2, 3, 2), probs(2, 3, 2)
    check("softmax_cross_entropy", (z, y), {"axis": (0, 1)}, layout=lambda g: axes_last(g, (0, 1)),
          terms=CE_TERMS)
    z, y = r(3, 4), probs(3, 4)
    w = ROW_MASKED
    # masked labels: 0 * log_softmax = 0 * -inf, NaN (jax.grad's value), not in the oracle's domain
    got = check("softmax_cross_entropy", (z, y), {"where": w}, wrt=("y_pred",), argnums=(0,), terms=CE_TERMS)
    assert np.all(got["y_pred"][~w] == 0)
    check("softmax_cross_entropy", (z, y), {"where": w}, wrt=("y_true",), argnums=(1,), skip_numeric=("y_true",))
    pr = L.softmax_cross_entropy.prepare(z, y, where=w)
    cot = RNG.uniform(0.5, 2, 3)
    assert np.all(np.isnan(L.softmax_cross_entropy.vjp64(pr, cot)["y_true"][~w]))
    kept = w[0]
    exact = _numeric(L.softmax_cross_entropy, pr, cot, "y_true")
    assert_grad_ulps(L.softmax_cross_entropy.vjp64(pr, cot)["y_true"][0, kept], exact[0, kept], FLOAT64, 4)


def test_softmax_ce_minus_inf_logit():
    """A -inf logit: softmax 0, so d/dz = -cot y there (optax's product 0 * -inf only
    touches the value); safe: d/dy = -cot log p = +inf at that class (optax's JVP)."""
    z = np.array([[-np.inf, 0.0, 1.0]])
    y = np.array([[0.0, 0.5, 0.5]])
    cot = np.array([1.0])
    g = L.safe_softmax_cross_entropy.vjp64(L.safe_softmax_cross_entropy.prepare(z, y), cot)
    j = jax.grad(lambda z: jnp.sum(optax.losses.safe_softmax_cross_entropy(z, y)))(jnp.asarray(z))
    np.testing.assert_allclose(g["y_pred"], j, rtol=1e-14)
    assert g["y_pred"][0, 0] == 0 and g["y_true"][0, 0] == np.inf


@pytest.mark.parametrize("fmt", FMTS)
def test_integer_labels(fmt):
    d = DT[fmt]
    z = hard_logits(d)
    k = np.array([2, 0, 1])
    check("softmax_cross_entropy_with_integer_labels", (z, k), wrt=("y_pred",), argnums=(0,), fmt=fmt)
    k = np.array([-1, 0, 3])  # negative labels count from the end
    check("softmax_cross_entropy_with_integer_labels", (z, k), wrt=("y_pred",), argnums=(0,), fmt=fmt)


def test_integer_labels_axis_and_mask():
    z = r(2, 3, 2)
    k = np.array([4, 1])
    check("softmax_cross_entropy_with_integer_labels", (z, k), {"axis": (1, 2)}, wrt=("y_pred",), argnums=(0,),
          layout=lambda g: g.reshape(2, 6))
    z = r(3, 4)
    k = np.array([1, 2, 3])
    w = ROW_MASKED
    got = check("softmax_cross_entropy_with_integer_labels", (z, k), {"where": w}, wrt=("y_pred",), argnums=(0,))
    assert np.all(got["y_pred"][1] == 0)  # a fully masked row


def test_integer_labels_out_of_range():
    """The value is NaN (JAX's gather fills it), so is the gradient (jax.grad gives the softmax)."""
    pr = L.softmax_cross_entropy_with_integer_labels.prepare(np.zeros((1, 3)), np.array([5]))
    assert np.all(np.isnan(L.softmax_cross_entropy_with_integer_labels.vjp64(pr, np.ones(1))["y_pred"]))


@pytest.mark.parametrize("fmt", FMTS)
def test_poly(fmt):
    d = DT[fmt]
    z = hard_logits(d)
    y = hard_labels(d)
    check("poly_loss_cross_entropy", (z, y), fmt=fmt, terms=POLY_TERMS)
    check("poly_loss_cross_entropy", (z, y), {"epsilon": -0.5}, fmt=fmt, terms=POLY_TERMS)


def test_poly_mask():
    z, y = r(3, 4), probs(3, 4)
    w = np.array([[True, False, True, True], [True, True, True, True], [True, True, True, False]])
    got = check("poly_loss_cross_entropy", (z, y), {"where": w}, wrt=("y_pred",), argnums=(0,), terms=POLY_TERMS)
    assert np.all(got["y_pred"][~w] == 0)
    check("poly_loss_cross_entropy", (z, y), {"where": w}, wrt=("y_true",), argnums=(1,), skip_numeric=("y_true",))


# --- KL divergences ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", ["kl_divergence", "generalized_kl_divergence", "convex_kl_divergence"])
def test_kl(name, fmt):
    d = DT[fmt]
    lq = np.log(probs(3, 4)).astype(d)
    t = np.vstack([probs(2, 4), [[1e-30, 0.5, 0.25, 0.25]]]).astype(d)
    terms = KL_TERMS if name == "kl_divergence" else GKL_TERMS
    check(name, (lq, t), fmt=fmt, terms=terms)
    w = np.array([[True, False, True, True]] * 3)
    check(name, (lq, t), {"where": w, "axis": -1}, fmt=fmt, terms=terms)


@pytest.mark.parametrize("fmt", FMTS)
def test_kl_log_targets(fmt):
    d = DT[fmt]
    lq, lt = np.log(probs(3, 4)).astype(d), np.log(probs(3, 4)).astype(d)
    check("kl_divergence_with_log_targets", (lq, lt), fmt=fmt)
    w = np.array([[True, False, True, True]] * 3)
    check("kl_divergence_with_log_targets", (lq, lt), {"where": w}, fmt=fmt)
    check("kl_divergence_with_log_targets", (r(2, 3, 2), r(2, 3, 2)), {"axis": (0, 2)},
          layout=lambda g: axes_last(g, (0, 2)))


def test_kl_zero_target():
    """``t = 0``: ``d/dt`` is NaN (optax's ``where(t == 0, 0, log t)`` under jax.grad), ``d/dl = -cot t = 0``."""
    for name in ("kl_divergence", "generalized_kl_divergence"):
        fn = getattr(L, name)
        lq, t = np.array([[-1.0, -0.5]]), np.array([[0.0, 1.0]])
        g = fn.vjp64(fn.prepare(lq, t), np.array([2.0]))
        j = jax.grad(lambda t: jnp.sum(getattr(optax.losses, name)(lq, t)))(jnp.asarray(t))
        assert np.isnan(g["y_true"][0, 0]) and np.isnan(j[0, 0])
        np.testing.assert_allclose(g["y_true"][0, 1], 2 * j[0, 1], rtol=1e-15)


# --- cosine, smoothing -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance"])
def test_cosine(name, fmt):
    d = DT[fmt]
    a, b = r(3, 4, dtype=d), r(3, 4, dtype=d)
    b[1] = a[1] * 1.5  # parallel
    # nearly parallel vectors: the gradient cancels to ~0, an absolute bound u |cot| / |v|
    check(name, (a, b), fmt=fmt, terms=COS_TERMS)
    check(name, (a, b), {"epsilon": 0.5}, fmt=fmt, terms=COS_TERMS)
    w = np.array([[True, False, True, True], [True, True, True, True], [False, True, True, False]])
    got = check(name, (a, b), {"where": w}, fmt=fmt, terms=COS_TERMS)
    assert np.all(got["y_pred"][~w] == 0) and np.all(got["y_true"][~w] == 0)


def test_cosine_axes():
    a, b = r(2, 3, 2), r(2, 3, 2)
    check("cosine_similarity", (a, b), {"axis": (0, 2)}, layout=lambda g: axes_last(g, (0, 2)))


@pytest.mark.parametrize("fmt", FMTS)
def test_smooth_labels(fmt):
    d = DT[fmt]
    y = probs(3, 4, dtype=d)
    check("smooth_labels", (y, 0.1), wrt=("y_true",), argnums=(0,), fmt=fmt)
    w = np.array([[True, False, True, True]] * 3)
    check("smooth_labels", (y, 0.2), {"where": w}, wrt=("y_true",), argnums=(0,), fmt=fmt)


def test_roles():
    for name in L.__all__:
        if name.startswith("ctc"):
            continue
        fn = getattr(L, name)
        first = next(iter(fn.__signature__.parameters))
        expected = "y_true" if name == "smooth_labels" else "y_pred"
        assert fn.roles[0] == expected, (name, first)
    assert L.triplet_margin_loss.grad_params == {"negatives": "negative"}


# --- multiclass margins, sparsemax, ranking, metric learning, Dice ------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", ["multiclass_hinge_loss", "multiclass_perceptron_loss", "multiclass_sparsemax_loss"])
def test_multiclass(name, fmt):
    s = np.array([[0.3, -1.7, 2.5, 1.0], [0.1, 0.2, -0.3, 0.15]], DT[fmt])
    k = np.array([2, 0])
    # optax's simplex projection (custom JVP) fails under jax.grad for float32 with x64 on
    check(name, (s, k), wrt=("y_pred",), argnums=(0,), fmt=fmt,
          no_jax=fmt is FLOAT32 and name == "multiclass_sparsemax_loss")


def test_multiclass_ties():
    """Ties of the max split the gradient evenly (jnp.max's VJP)."""
    cot = np.array([2.0])
    pr = L.multiclass_perceptron_loss.prepare(np.array([[1.0, 1.0, 0.0]]), np.array([2]))
    np.testing.assert_array_equal(L.multiclass_perceptron_loss.vjp64(pr, cot)["y_pred"], [[1.0, 1.0, -2.0]])
    pr = L.multiclass_hinge_loss.prepare(np.array([[1.0, 0.0, 2.0]]), np.array([2]))
    np.testing.assert_array_equal(L.multiclass_hinge_loss.vjp64(pr, cot)["y_pred"], [[1.0, 0.0, -1.0]])


@pytest.mark.parametrize("fmt", FMTS)
def test_sparsemax_binary(fmt):
    x = np.array([[0.3, -1.7, 2.5, 0.9], [-0.5, 0.2, -3.0, 1.5]], DT[fmt])
    lab = np.array([[1, 0, 1, 0], [0, 1, 1, 0]])
    check("sparsemax_loss", (x, lab), wrt=("y_pred",), argnums=(0,), fmt=fmt)


@pytest.mark.parametrize("fmt", FMTS)
def test_triplet(fmt):
    d = DT[fmt]
    a, p, n = r(3, 4, dtype=d), r(3, 4, dtype=d), r(3, 4, dtype=d)
    check("triplet_margin_loss", (a, p, n), {"margin": 2.0}, argnums=(0, 1, 2), extra=("negative",), fmt=fmt,
          jax_kw={"margin": 2.0})


def test_triplet_tie():
    a, p, n = np.array([[0.5, 0.0]]), np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]])
    pr = L.triplet_margin_loss.prepare(a, p, negatives=n, margin=0.0)
    g = L.triplet_margin_loss.vjp64(pr, np.ones(1))
    j = jax.grad(lambda a: jnp.sum(optax.losses.triplet_margin_loss(a, p, n, margin=0.0)))(jnp.asarray(a))
    np.testing.assert_allclose(g["y_pred"], j, rtol=1e-14)


@pytest.mark.parametrize("fmt", FMTS)
def test_ntxent(fmt):
    e = r(4, 2, dtype=DT[fmt])
    # the ntxent page's float64 budget: 64 ulp (sums of terms of both signs over the batch,
    # then the projection onto the sphere; about 40 seen); narrower formats 1 ulp
    b = 64 if fmt is FLOAT64 else 1
    check("ntxent", (e, np.array([0, 0, 1, 1])), wrt=("y_pred",), argnums=(0,), fmt=fmt, budget=b)


@pytest.mark.parametrize("fmt", FMTS)
def test_ranking(fmt):
    s = r(2, 4, dtype=DT[fmt])
    y = np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 1.0, 0.0]], DT[fmt])
    # the page's bound, 4 ulp + 8u |cot| p |A| (2 + |log p|): within 16 ulp at these scores
    b = 16 if fmt is FLOAT64 else 1
    check("ranking_softmax_loss", (s, y), {"reduce_fn": None}, wrt=("y_pred",), argnums=(0,), fmt=fmt, budget=b)
    w = np.array([[True, True, False, True], [True, False, True, True]])
    check("ranking_softmax_loss", (s, y), {"reduce_fn": None, "where": w}, wrt=("y_pred",), argnums=(0,), fmt=fmt,
          budget=b)


@pytest.mark.parametrize("fmt", FMTS)
def test_dice(fmt):
    d = DT[fmt]
    z = r(1, 3, 3, dtype=d)
    t = np.eye(3)[RNG.integers(0, 3, (1, 3))].astype(d)
    # the catalogue's soft-Dice gradient: its own budget (a difference of double-double sums)
    b = 32 if fmt is FLOAT64 else 1
    check("dice_loss", (z, t), {"reduction": "none"}, fmt=fmt, budget=b)
    check("dice_loss", (z, t), {"reduction": "none", "alpha": 0.3, "beta": 0.7}, fmt=fmt, budget=b)
    zb, tb = r(2, 4, dtype=d), RNG.integers(0, 2, (2, 4)).astype(d)
    check("binary_dice_loss", (zb, tb), fmt=fmt, layout=lambda g: g[..., None], budget=b)
