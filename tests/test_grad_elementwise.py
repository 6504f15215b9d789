"""Reference gradients (``LossDef.grad_ref``) of the elementwise regression and margin losses.

Each gradient is compared with a high-precision numerical derivative of the loss's *oracle*
(:func:`tests.gradcheck.numeric_vjp`) at random and adversarial points away from kinks:
float64 within 4 ulp, inputs of narrower formats (gradient rounded once to that format)
within 1 ulp. The conventions at kinks and clip bounds are checked against values written
from the convention stated on each spec page.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lossref
from lossref.formats import to_format_array

from .gradcheck import assert_grad_ulps, numeric_vjp
from .support import ulp_errors

NARROW = ("float32", "bfloat16", "float16")
#: worst ulp error seen per (loss, input, format), for the report of a run with -s
WORST: dict = {}


def _cot(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.25, 2.0, shape)


def _in(fmt, a):
    return to_format_array(np.asarray(a, np.float64), fmt).astype(np.float64)


def check(name, y_true, y_pred, wrt=("y_pred", "y_true"), fmt="float64", cot=None, arrays=None, **params):
    """The reference gradient of `name` against the oracle's numerical VJP."""
    loss = lossref.get(name)
    t, p = _in(fmt, y_true), _in(fmt, y_pred)
    t, p = np.broadcast_arrays(t, p)
    t, p = t.copy(), p.copy()
    arrays = {k: _in(fmt, v) for k, v in (arrays or {}).items()}
    c = _cot(p.shape) if cot is None else np.broadcast_to(np.asarray(cot, np.float64), p.shape)
    if fmt != "float64":
        c = _in(fmt, c)
    kw = {**loss.bind({**params, **arrays})}
    with np.errstate(all="ignore"):
        got = loss.grad_ref(t, p, c, **kw)
    oracle_kw = {k: v for k, v in kw.items() if k not in arrays}
    for w in wrt:
        exact = _exact_vjp(loss.elementwise_exact, {"y_true": t, "y_pred": p, **arrays}, w, c, oracle_kw)
        g = np.broadcast_to(got[w], p.shape)
        if w in arrays and arrays[w].shape != p.shape:  # a broadcast third input: sum back
            g = np.sum(g).reshape(arrays[w].shape)
        if fmt != "float64":
            g = to_format_array(g, fmt).astype(np.float64)
        budget = 4 if fmt == "float64" else 1
        err = ulp_errors(g, exact, fmt)
        key = (name, w, fmt)
        WORST[key] = max(WORST.get(key, 0.0), float(np.max(err)))
        assert_grad_ulps(g, exact, fmt, budget, f"{name} d/{w} {fmt}")


def _exact_vjp(oracle, arrays, wrt, cot, kw):
    """:func:`numeric_vjp` one element at a time where every array has the inputs' shape (the
    loss is elementwise): a sum over elements of very different magnitudes would otherwise
    swamp the small ones' differences at any working precision."""
    shape = cot.shape
    if any(np.shape(v) != shape for v in arrays.values()):
        return numeric_vjp(oracle, arrays, wrt, cot, **kw)
    # the step is 2^-100 of the element: operands apart by up to float64's whole exponent
    # range (tiny x in softplus(x) ~ log 2, a subnormal beside 1e-5) need that many more bits
    prec = 480 if all(np.all((np.abs(v) > 1e-30) & (np.abs(v) < 1e30) | (v == 0)) for v in arrays.values()) else 2600
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        one = {k: np.asarray(v)[idx].reshape(1) for k, v in arrays.items()}
        out[idx] = numeric_vjp(oracle, one, wrt, np.asarray(cot)[idx].reshape(1), prec=prec, **kw)[0]
    return out


def _rng(seed):
    return np.random.default_rng(seed)


# --- points away from kinks -------------------------------------------------------------------

def _regression_points(seed=1):
    r = _rng(seed)
    y = r.normal(0, 3, (3, 4))
    p = y + r.normal(0, 2, (3, 4))
    return y, p


def _adversarial_regression():
    y = np.array([1.0, 1e-300, 5e-324 * 7, 1e300, -1.5e308, 3.0, 0.1, -2.5])
    p = np.array([1.0 + 2.0 ** -40, -3e-300, 5e-324 * 3, -1e300, 1.5e308, 3.0 * (1 - 2.0 ** -50), 0.3, 1e-20])
    return y, p


FORMATS = ("float64",) + NARROW


@pytest.mark.parametrize("fmt", FORMATS)
def test_mean_squared_error(fmt):
    check("mean_squared_error", *_regression_points(), fmt=fmt)


def test_mean_squared_error_adversarial():
    y, p = _adversarial_regression()
    check("mean_squared_error", y, p, cot=np.full(y.shape, 0.01))  # |y - p| overflows: 2|y - p| c does not


@pytest.mark.parametrize("fmt", FORMATS)
def test_mean_absolute_error(fmt):
    check("mean_absolute_error", *_regression_points(2), fmt=fmt)
    check("mean_absolute_error", *_adversarial_regression())


@pytest.mark.parametrize("fmt", FORMATS)
def test_mape(fmt):
    r = _rng(3)
    y = np.concatenate([r.uniform(0.5, 4, 6) * r.choice([-1, 1], 6), [3e-8, -5e-8]])
    p = r.normal(0, 3, 8)
    check("mean_absolute_percentage_error", y, p, fmt=fmt)


def test_mape_adversarial():
    y = np.array([1e-300, -1e300, 1.5e308, 2.0, 1e-5, -7e-3, 5e-324 * 9, 3.0])
    p = np.array([3e-300, 1e300, -1.5e308, 2.0 * (1 + 2.0 ** -45), 1e-310, 5.0, 5e-324 * 4, 1e200])
    check("mean_absolute_percentage_error", y, p, epsilon=None)
    check("mean_absolute_percentage_error", y[:4], p[:4])


@pytest.mark.parametrize("fmt", FORMATS)
def test_msle(fmt):
    r = _rng(4)
    y = np.concatenate([r.uniform(0, 5, 6), [1e-9, 2.0]])
    p = np.concatenate([r.uniform(0, 5, 6), [3.0, 2.0 * (1 + 2.0 ** -30)]])
    check("mean_squared_logarithmic_error", y, p, fmt=fmt)


def test_msle_adversarial():
    y = np.array([0.5, -0.75, 1e300, 1e-300, 3.0, -0.999999, 7.0, 2.0 ** -60])
    p = np.array([0.5 * (1 - 2.0 ** -45), 0.25, 3e300, 5e-320, 3.0 * (1 + 2.0 ** -52), -0.5, 1e-3, 2.0 ** -59])
    check("mean_squared_logarithmic_error", y, p, epsilon=None)
    check("mean_squared_logarithmic_error", np.abs(y), np.abs(p), epsilon=1e-7)


@pytest.mark.parametrize("fmt", FORMATS)
def test_log_cosh(fmt):
    check("log_cosh", *_regression_points(5), fmt=fmt)


def test_log_cosh_adversarial():
    y = np.array([1.0, 1e-300, 5e-324 * 7, 1e300, -1.5e308, 3.0, 0.1, -2.5, 0.0, 1.0])
    p = np.array([1.0 + 2.0 ** -40, -3e-300, 5e-324 * 3, -1e300, 1.5e308, 3.0 * (1 - 2.0 ** -50), 0.3, 1e-20,
                  1e-8, 1 + 1e-5])
    check("log_cosh", y, p)


@pytest.mark.parametrize("fmt", FORMATS)
def test_huber(fmt):
    for delta in (1.0, 0.5, 2.0, 1e-3):
        check("huber", *_regression_points(6), fmt=fmt, delta=delta)


def test_huber_adversarial():
    y, p = _adversarial_regression()
    for delta in (1.0, 1e-300, 1e150):  # the oracle squares delta in float64
        check("huber", y, p, delta=delta)


@pytest.mark.parametrize("fmt", FORMATS)
def test_poisson(fmt):
    r = _rng(7)
    y = np.concatenate([r.uniform(0, 6, 6), [0.0, 3.0]])
    p = np.concatenate([r.uniform(0.01, 6, 6), [2.0, 3.0 * (1 + 2.0 ** -20)]])
    check("poisson", y, p, fmt=fmt)


def test_poisson_adversarial():
    # near the optimum p + eps = y (1 - y / (p + eps) cancels), huge and tiny rates
    y = np.array([3.0, 0.7, 1e300, 1e-300, 1.0 + 2.0 ** -40, 5.0, 0.0, 2.0])
    p = np.array([3.0 * (1 + 2.0 ** -45), 0.7 - 1e-7, 2e300, 5e-301, 1.0 - 1e-7, 1e-12, 1e-300, 2.0 - 1e-7])
    check("poisson", y, p)
    check("poisson", y, p, epsilon=None)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gaussian_nll(fmt):
    r = _rng(8)
    y = r.normal(0, 2, (2, 4))
    p = r.normal(0, 2, (2, 4))
    var = r.uniform(0.1, 3, (2, 4))
    check("gaussian_nll", y, p, wrt=("y_pred", "y_true", "var"), fmt=fmt, arrays={"var": var})
    check("gaussian_nll", y, p, wrt=("var",), fmt=fmt, arrays={"var": np.array(0.7)}, full=True)


def test_gaussian_nll_adversarial():
    d = np.array([1.0, 3.0, 1e-3, 1e150, 1e200, 1e-200, 2.0, 5.0])
    y = np.array([0.5, -1.0, 2.0, 0.0, -7e199, 3e-201, 1e308, -1e307])
    p = y + d
    p[6], p[7] = -1e308, 1e307  # x - y overflows
    # var at the residual's square (v - d^2 cancels), below eps (clamped), huge and tiny
    var = np.array([1.0 * (1 + 2.0 ** -40), 9.0 * (1 - 2.0 ** -30), 1e-7, 1e300, 1e10, 1e-300, 1e300, 4e306])
    check("gaussian_nll", y, p, wrt=("y_pred", "y_true", "var"), arrays={"var": var}, eps=1e-6)
    check("gaussian_nll", y[:6], p[:6], wrt=("var",), arrays={"var": var[:6]}, eps=0.0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_soft_margin(fmt):
    r = _rng(9)
    y = np.concatenate([r.choice([-1.0, 1.0], 6), r.normal(0, 1, 2)])
    x = r.normal(0, 3, 8)
    check("soft_margin", y, x, fmt=fmt)


def test_soft_margin_adversarial():
    r = _rng(10)
    y = np.concatenate([[1.0, -1.0, 1.0, -1.0, 1.0], r.uniform(0.5, 2, 5)])
    x = np.concatenate([[40.0, 40.0, -700.0, 1e-300, 5e-324], -r.uniform(20, 600, 5)])  # inexact products
    check("soft_margin", y, x)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_hinges(name, fmt):
    r = _rng(11)
    y = np.concatenate([r.choice([-1.0, 1.0], 6), r.normal(0, 1, 2)])
    p = r.normal(0, 2, 8)
    check(name, y, p, fmt=fmt)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinges_adversarial(name):
    y = np.array([1.0, -1.0, 3.0, 0.1, 1e-300, -1e200, 1.0, 1.0])
    p = np.array([1.0 - 2.0 ** -50, -(1 - 2.0 ** -40), 1 / 3.0 * (1 - 2.0 ** -45), 1e10, 1e300, 1e-190, -1e300, 0.0])
    check(name, y, p)


@pytest.mark.parametrize("fmt", FORMATS)
def test_hinge_embedding(fmt):
    r = _rng(12)
    y = np.array([1.0, -1.0, -1.0, 0.0, 0.5, 1.0, -1.0, 2.0])
    x = r.normal(0.5, 2, 8)
    for margin in (1.0, 0.0, -0.5, 3.0):
        check("hinge_embedding", y, x, wrt=("y_pred",), fmt=fmt, margin=margin)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kl_divergence(fmt):
    r = _rng(13)
    y = np.concatenate([r.uniform(0.01, 1, 6), [1e-9, 1.5]])  # the last two clipped
    p = np.concatenate([r.uniform(0.01, 1, 6), [0.3, 0.2]])
    check("kl_divergence", y, p, fmt=fmt)
    check("kl_divergence", p, y, fmt=fmt)


def test_kl_divergence_adversarial():
    e = math.e
    # y / p near 1/e (log + 1 cancels), near 1, ratios past float64's range, subnormals
    y = np.array([0.25, 0.3, 1e-300, 0.5, 5e-324 * 5, 0.9, 2.0 ** -1060, 0.36])
    p = np.array([0.25 * e * (1 + 2.0 ** -35), 0.3 * (1 + 2.0 ** -40), 0.9, 1e-300 * e, 0.5, 0.9 * e, 3.0, 1.0])
    check("kl_divergence", y, p, epsilon=None)
    check("kl_divergence", y[[0, 1, 3, 5, 7]], p[[0, 1, 3, 5, 7]] * 0.35, epsilon=1e-7)


@pytest.mark.parametrize("fmt", FORMATS)
def test_generalized_kl(fmt):
    r = _rng(14)
    t = np.concatenate([r.uniform(0.01, 3, 6), [1e-5, 40.0]])
    lq = r.normal(0, 2, 8)
    check("generalized_kl_divergence", t, lq, fmt=fmt)


def test_generalized_kl_near_optimum():
    """``exp(l) - t`` and ``log t - l`` cancel near ``l = log t``: the stated bounds hold."""
    t = np.array([2.0, 0.3, 5e-10, 7.0])
    lq = np.log(t) * (1 + 2.0 ** -20)
    loss = lossref.get("generalized_kl_divergence")
    c = _cot(t.shape)
    got = loss.grad_ref(t, lq, c)
    u = 2.0 ** -53
    for w, terms in (("y_pred", np.exp(lq) + t), ("y_true", np.abs(np.log(t)) + np.abs(lq))):
        exact = _exact_vjp(loss.elementwise_exact, {"y_true": t, "y_pred": lq}, w, c, {})
        err = np.abs(got[w] - np.array([float(v) for v in exact]))
        assert np.all(err <= 2 * u * terms * c + 2 * u * np.abs(got[w])), (w, err)


# --- conventions at kinks and clip bounds (expected values from the conventions) --------------

def _g(name, y, p, cot=1.0, **params):
    loss = lossref.get(name)
    y, p = np.atleast_1d(np.asarray(y, np.float64)), np.atleast_1d(np.asarray(p, np.float64))
    c = np.broadcast_to(np.float64(cot), np.broadcast_shapes(y.shape, p.shape))
    kw = loss.bind({k: v for k, v in params.items() if k in loss.params})
    extra = {k: v for k, v in params.items() if k not in loss.params}
    with np.errstate(all="ignore"):
        return loss.grad_ref(y, p, c, **kw, **extra)


def test_kinks_abs():
    g = _g("mean_absolute_error", [0.5, -2.0], [0.5, -2.0], cot=3.0)
    assert np.array_equal(g["y_pred"], [0, 0]) and np.array_equal(g["y_true"], [0, 0])
    g = _g("mean_absolute_error", [0.5], [0.5], cot=3.0, abs0=1.0)  # JAX: abs'(0) = 1
    assert g["y_pred"][0] == -3.0 and g["y_true"][0] == 3.0
    # MAPE at y = p: 0 (sign), or -100 / |y| for abs'(0) = 1
    g = _g("mean_absolute_percentage_error", [0.5], [0.5])
    assert g["y_pred"][0] == 0 and g["y_true"][0] == 0
    g = _g("mean_absolute_percentage_error", [0.5], [0.5], abs0=1.0)
    assert g["y_pred"][0] == -200.0 and g["y_true"][0] == 200.0


def test_kink_mape_floor():
    # |y| = epsilon: the mean of the one-sided derivatives in y (-400 below, -1600 above)
    g = _g("mean_absolute_percentage_error", [0.25, -0.25], [1.0, 1.0], epsilon=0.25)
    assert g["y_true"].tolist() == [-1000.0, -100.0 * 4 * (1 - 0.5 * 5)]
    assert g["y_pred"].tolist() == [400.0, 400.0]
    g = _g("mean_absolute_percentage_error", [0.25], [1.0], epsilon=0.25, tie=1.0)
    assert g["y_true"][0] == -1600.0


def test_kink_msle_floor():
    eps = 0.125
    g = _g("mean_squared_logarithmic_error", [1.0, eps], [eps, 1.0], epsilon=eps)
    L = math.log1p(eps) - math.log1p(1.0)
    assert g["y_pred"][0] == pytest.approx(0.5 * 2 * L / (1 + eps), rel=1e-15)
    assert g["y_true"][1] == pytest.approx(0.5 * 2 * L / (1 + eps), rel=1e-15)
    assert g["y_pred"][1] == pytest.approx(-2 * L / 2, rel=1e-15) and g["y_true"][0] == pytest.approx(-2 * L / 2, rel=1e-15)
    g = _g("mean_squared_logarithmic_error", [1.0], [0.0], epsilon=eps)  # below the floor
    assert g["y_pred"][0] == 0


def test_kink_huber_is_c1():
    g = _g("huber", [0.5, 0.5, 0.5], [1.5, -0.5, 0.5], delta=1.0)
    assert g["y_pred"].tolist() == [1.0, -1.0, 0.0] and g["y_true"].tolist() == [-1.0, 1.0, 0.0]
    g = _g("huber", [0.0, 0.0, 1e308], [2.0, -2.0, -1e308], delta=2.0)
    assert g["y_pred"].tolist() == [2.0, -2.0, -2.0]
    from lossref.losses.huber import smooth_l1_grad
    s = smooth_l1_grad(np.array([0.5, 0.5, 0.5, 0.0]), np.array([1.5, -0.5, 0.5, 0.25]), np.ones(4), beta=1.0)
    assert s["y_pred"].tolist() == [1.0, -1.0, 0.0, 0.25]
    s = smooth_l1_grad(np.array([0.5, 0.5]), np.array([0.5, 0.7]), np.ones(2), beta=0.0)
    assert s["y_pred"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name, share", [("hinge", 0.5), ("squared_hinge", 0.0)])
def test_kink_hinges(name, share):
    y = np.array([1.0, -1.0, 2.0, 4.0])
    p = np.array([1.0, -1.0, 0.5, 0.25])  # y p = 1 exactly
    g = _g(name, y, p, cot=2.0)
    assert g["y_pred"].tolist() == (-2.0 * share * y).tolist()
    assert g["y_true"].tolist() == (-2.0 * share * p).tolist()


def test_kink_hinge_embedding():
    y = np.array([-1.0, 0.0, 1.0, 0.5])
    g = _g("hinge_embedding", y, [1.0, 1.0, 1.0, 1.0], margin=1.0)
    assert g["y_pred"].tolist() == [-0.5, 0.5, 1.0, 0.5] and set(g) == {"y_pred"}
    g = _g("hinge_embedding", y, [1.0, 1.0, 1.0, 1.0], margin=1.0, tie=1.0)  # PyTorch's clamp_min
    assert g["y_pred"].tolist() == [-1.0, 0.0, 1.0, 0.0]
    g = _g("hinge_embedding", [1.0, -1.0, 0.0, 0.0], [np.nan, -np.inf, -np.inf, np.inf], margin=1.0)
    assert np.isnan(g["y_pred"][0]) and g["y_pred"][1] == -1.0 and np.isnan(g["y_pred"][2]) and g["y_pred"][3] == 1.0


def test_kink_gaussian_var_floor():
    eps = 0.25
    g = _g("gaussian_nll", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], var=np.array([0.125, 0.25, 0.5]), eps=eps)
    full = lambda v: (v - 1.0) / (2 * v * v)  # noqa: E731
    assert g["var"].tolist() == [0.0, 0.5 * full(0.25), full(0.5)]
    assert g["y_pred"].tolist() == [4.0, 4.0, 2.0] and g["y_true"].tolist() == [-4.0, -4.0, -2.0]
    g = _g("gaussian_nll", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], var=np.array([0.125, 0.25, 0.5]), eps=eps,
           clamp="straight")  # PyTorch: the clamp is outside autograd
    assert g["var"].tolist() == [full(0.25), full(0.25), full(0.5)]


def test_kink_kl_clip_bounds():
    eps = 0.125
    y = np.array([0.5, 0.5, eps, 1.0, 0.01, 0.5])
    p = np.array([eps, 1.0, 0.5, 0.5, 0.5, 2.0])
    g = _g("kl_divergence", y, p, epsilon=eps)
    assert g["y_pred"].tolist() == [-0.5 * (0.5 / eps), -0.5 * 0.5, -eps / 0.5, -2.0, -eps / 0.5, 0.0]
    assert g["y_true"][4] == 0 and g["y_true"][3] == pytest.approx(0.5 * (math.log(2.0) + 1), rel=1e-15)
    assert g["y_true"][2] == pytest.approx(0.5 * (math.log(eps / 0.5) + 1), rel=1e-15)
    g = _g("kl_divergence", y, p, epsilon=eps, tie=1.0)  # PyTorch's clamp passes the gradient
    assert g["y_pred"][:2].tolist() == [-0.5 / eps, -0.5]
    g = _g("kl_divergence", [0.0, 0.0], [0.5, 0.0], epsilon=None)  # 0 log(0 / p) = 0
    assert g["y_pred"].tolist() == [0.0, 0.0] and g["y_true"][0] == -np.inf


def test_zero_labels_poisson_gkl():
    g = _g("poisson", [0.0, 0.0], [0.0, 2.0], epsilon=None)
    assert g["y_pred"].tolist() == [1.0, 1.0] and g["y_true"][0] == np.inf
    assert np.isnan(_g("poisson", [1.0], [-1.0], epsilon=None)["y_pred"][0])
    g = _g("generalized_kl_divergence", [0.0], [0.5])
    assert g["y_pred"][0] == math.exp(0.5) and g["y_true"][0] == -np.inf
    assert np.isnan(_g("generalized_kl_divergence", [0.0], [0.5], zero_target=np.nan)["y_true"][0])


def test_dialect_twins():
    """The PyTorch twins (smooth L1, Poisson NLL, kl_div) against their oracles' VJPs: within
    4 ulp, or within the page's bound ``2 u sum|terms|`` where two terms are subtracted
    uncompensated (``exp(l) - y``, ``log y - l + 1``)."""
    from lossref.losses import huber, kl_divergence, poisson
    r = _rng(15)
    y, p = r.uniform(0.1, 3, 6), r.normal(0, 1.5, 6)
    c = _cot(6)
    u = 2.0 ** -53
    ly, et = np.abs(np.log(y)), np.exp(y)
    cases = [(huber.smooth_l1_grad, huber.smooth_l1_oracle, {"beta": 0.5}, p, {"y_pred": None, "y_true": None}),
             (poisson.nll_grad, poisson.nll_oracle, {"log_input": True, "full": True}, p,
              {"y_pred": np.exp(p) + y, "y_true": np.abs(p) + ly + 0.5 / y}),
             (poisson.nll_grad, poisson.nll_oracle, {"log_input": False, "full": False, "epsilon": 1e-8},
              np.abs(p) + 0.1, {"y_pred": None, "y_true": None}),
             (kl_divergence.log_space_grad, kl_divergence.log_space_oracle, {"log_target": False}, p,
              {"y_pred": None, "y_true": ly + np.abs(p) + 1}),
             (kl_divergence.log_space_grad, kl_divergence.log_space_oracle, {"log_target": True}, p,
              {"y_pred": None, "y_true": et * (np.abs(y) + np.abs(p) + 1)})]
    for grad, oracle, kw, pp, wrt in cases:
        got = grad(y, pp, c, **kw)
        for w, terms in wrt.items():
            exact = _exact_vjp(oracle, {"y_true": y, "y_pred": pp}, w, c, kw)
            if terms is None:
                assert_grad_ulps(got[w], exact, "float64", 4, f"{grad.__name__} {kw} d/{w}")
            else:
                err = np.abs(got[w] - np.array([float(v) for v in exact]))
                assert np.all(err <= 3 * u * terms * c + 2 * u * np.abs(got[w])), (grad.__name__, kw, w, err)


_T = np.array([1.0, 2.0 ** -20, 3e4, 0.75, 0.5, 100.0, 1.5, 2.0 ** -14])
_P = np.array([1.0 + 2.0 ** -6, 3 * 2.0 ** -20, -2e4, 0.75 * (1 - 2.0 ** -6), 0.125, 98.0, 1.5 + 2.0 ** -5, 2.0 ** -10])
NARROW_HARD = {  # tiny (subnormal in float16), large and near-cancelling points of each format
    "mean_squared_error": (_T, _P, {}),
    "mean_absolute_error": (_T, _P, {}),
    "mean_absolute_percentage_error": (_T, _P, {}),
    "mean_squared_logarithmic_error": (np.abs(_T), np.abs(_P), {}),
    "log_cosh": (_T, _P, {}),
    "huber": (_T, _P, {"delta": 0.5}),
    "poisson": (np.abs(_T), np.abs(_P), {}),
    "soft_margin": (np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.5, 2.0]), np.array([30.0, 11.0, -60.0, 2.0 ** -20, 0.001, -9.0, 40.0, -5.0]), {}),
    "hinge": (np.array([1.0, -1.0, 1.0, -1.0, 2.0, 0.5, 1.0, -1.0]), np.array([1 - 2.0 ** -6, -(1 + 2.0 ** -6), 3e4, 2.0 ** -20, 0.5 - 2.0 ** -8, 2.5, -300.0, 1.0]), {}),
    "squared_hinge": (np.array([1.0, -1.0, 1.0, -1.0, 2.0, 0.5, 1.0, -1.0]), np.array([1 - 2.0 ** -6, -(1 - 2.0 ** -6), -3e2, 2.0 ** -20, 0.5 - 2.0 ** -8, 1.5, -30.0, 1.0]), {}),
    "kl_divergence": (np.array([0.25, 0.5, 2.0 ** -20, 0.9, 0.001, 0.125, 0.3, 0.6]), np.array([0.6875, 0.5 + 2.0 ** -7, 0.5, 0.9 * 2.75, 2.0 ** -14, 0.34, 0.3 * (1 - 2.0 ** -6), 0.999]), {}),
    "generalized_kl_divergence": (np.array([1.0, 2.0 ** -20, 3e4, 0.75, 2.0, 100.0, 1.5, 2.0 ** -14]), np.array([0.02, -13.0, 10.0, -0.3, 0.75, 4.5, 0.5, -9.0]), {}),
}


@pytest.mark.parametrize("fmt", NARROW)
@pytest.mark.parametrize("name", sorted(NARROW_HARD))
def test_narrow_adversarial(name, fmt):
    t, p, kw = NARROW_HARD[name]
    check(name, t, p, fmt=fmt, **kw)
    if fmt == "float16" and name != "generalized_kl_divergence":  # its near-optimum bound: above
        check(name, t, p, **kw)  # the same points in float64


@pytest.mark.parametrize("fmt", NARROW)
def test_narrow_adversarial_gaussian(fmt):
    y = np.array([0.5, -1.0, 2.0, 3e4, 2.0 ** -20, 1.0])
    p = np.array([1.5, 2.0, 2.0 + 2.0 ** -10, -2e4, 0.0, 1.0 + 2.0 ** -6])
    var = np.array([1.0 + 2.0 ** -7, 9.0 - 2.0 ** -5, 2.0 ** -14, 1e4, 2.0 ** -24, 6e4])
    check("gaussian_nll", y, p, wrt=("y_pred", "y_true", "var"), fmt=fmt, arrays={"var": var}, eps=2.0 ** -30)
