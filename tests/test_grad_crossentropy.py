"""Reference gradients of the cross-entropy family against the oracle's numerical derivative.

Each ``grad_ref`` (and the PyTorch forms' ``log_clamped_grad``, ``pos_weighted_grad``) is
checked against :func:`tests.gradcheck.numeric_vjp` of the loss's oracle: float64 within 4
ulp (or, where the two terms of a residual cancel, 4 ulp plus ``k u sum|terms|`` as the spec
pages state), inputs that are float32/bfloat16/float16 values within 1 ulp of that format
after one rounding. Conventions at the clip bounds are checked against values written from
the convention itself.
"""

from __future__ import annotations

import numpy as np
import mpmath
import pytest

from lossref.formats import get_format, to_format_array
from lossref.losses import binary_crossentropy as BCE
from lossref.losses import binary_focal_crossentropy as BFC
from lossref.losses import categorical_crossentropy as CCE
from lossref.losses import categorical_focal_crossentropy as CFC
from lossref.losses import categorical_generalized_cross_entropy as GCE
from lossref.losses import poly1_crossentropy as POLY
from lossref.losses import smooth_labels as SMOOTH
from lossref.losses import sparse_categorical_crossentropy as SCCE

from .gradcheck import assert_grad_ulps, numeric_vjp

U = 2.0 ** -53
RNG = np.random.default_rng(20240515)


def _cot(shape):
    return RNG.uniform(0.5, 2.0, shape)


def _check(grad, oracle, arrays, params, wrts=("y_pred", "y_true"), cot=None, budget=4.0,
           prec=480, terms=None, k=8.0, what=""):
    """grad (the reference VJP) against the oracle's numerical VJP, for each input in `wrts`.

    `terms` (float64, the inputs' shape): where given, the allowance is `budget` ulp plus
    ``k u |terms|`` (a residual whose two terms cancel)."""
    arrays = {n: np.asarray(v, np.float64) for n, v in arrays.items()}
    shape = np.broadcast_shapes(*[v.shape for v in arrays.values()])
    out_shape = shape if cot is None else np.shape(cot)
    cot = _cot(out_shape) if cot is None else np.asarray(cot, np.float64)
    extra = {n: v for n, v in arrays.items() if n not in ("y_true", "y_pred")}
    got = grad(arrays["y_true"], arrays["y_pred"], cot, **params, **extra)
    for w in wrts:
        exact = numeric_vjp(oracle, arrays, w, cot, prec=prec, **params)
        g = np.asarray(got[w])
        if g.shape != exact.shape and g.ndim > exact.ndim:  # a broadcast input: summed back
            g = g.sum(axis=tuple(range(g.ndim - exact.ndim)))
        g = np.broadcast_to(g, exact.shape)
        if terms is None:
            assert_grad_ulps(g, exact, "float64", budget, f"{what} d/d{w}")
            continue
        slack = k * U * np.abs(np.asarray(terms[w], np.float64) * np.broadcast_to(cot, exact.shape))
        for idx in np.ndindex(exact.shape):
            e = exact[idx]
            err = abs(mpmath.mpf(float(g[idx])) - e)
            ulp = mpmath.ldexp(1, int(mpmath.floor(mpmath.log(abs(e), 2))) - 52) if e != 0 else 2.0 ** -1074
            assert err <= budget * ulp + slack[idx], (
                f"{what} d/d{w} at {idx}: got {g[idx]!r}, exact {mpmath.nstr(e, 20)}")


def _check_format(grad, oracle, arrays, params, fmt, wrts=("y_pred", "y_true"), prec=480, what="",
                  per_sample=False):
    """Inputs rounded into `fmt`, the float64 gradient rounded once into it: within 1 ulp."""
    f = get_format(fmt)
    arrays = {n: np.asarray(to_format_array(np.asarray(v, np.float64), f), np.float64)
              for n, v in arrays.items()}
    shape = arrays["y_true"].shape if per_sample else np.broadcast_shapes(*[v.shape for v in arrays.values()])
    # a per-sample loss (integer labels) takes one cotangent per label
    cot = np.asarray(to_format_array(_cot(arrays["y_true"].shape if per_sample else shape), f), np.float64)
    extra = {n: v for n, v in arrays.items() if n not in ("y_true", "y_pred")}
    got = grad(arrays["y_true"], arrays["y_pred"], cot, **params, **extra)
    for w in wrts:
        exact = numeric_vjp(oracle, arrays, w, cot, prec=prec, **params)
        g = np.asarray(to_format_array(np.broadcast_to(got[w], exact.shape), f), np.float64)
        assert_grad_ulps(g, exact, f, 1.0, f"{what} d/d{w} {f.name}")


FORMATS = ["float32", "bfloat16", "float16"]

# --- binary cross-entropy --------------------------------------------------------------------

Y_HARD = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
P_TYPICAL = np.array([[0.2, 0.9, 0.3000001, 1e-5], [1 - 2.0 ** -40, 0.5 - 2.0 ** -40, 3e-6, 0.7]])
Z_TYPICAL = np.array([[-3.0, 2.5, 0.1, -0.847], [30.0, -30.0, 5.0, 1.5]])


@pytest.mark.parametrize("ls", [0.0, 0.1, (0.9, 0.05)])
@pytest.mark.parametrize("eps", [1e-7, None, (2e-6, 1 - 3e-6)])
def test_bce_probabilities(ls, eps):
    _check(BCE.grad_reference, BCE.oracle, {"y_true": Y_HARD, "y_pred": P_TYPICAL},
           dict(from_logits=False, label_smoothing=ls, epsilon=eps), what=f"bce ls={ls} eps={eps}")


def test_bce_soft_labels_near_the_minimum():
    # p - y' cancels: the labels' terms are summed compensated, so still 4 ulp
    y = np.array([0.3, 0.7, 0.25, 0.999])
    p = np.array([0.3000000001, 0.69999999, 0.2500000000001, 0.999 + 2.0 ** -45])
    for ls in (0.0, 0.1, (0.9, 0.05)):
        _check(BCE.grad_reference, BCE.oracle, {"y_true": y, "y_pred": p},
               dict(from_logits=False, label_smoothing=ls, epsilon=1e-7), what=f"bce soft ls={ls}")


@pytest.mark.parametrize("ls", [0.0, 0.1, (0.9, 0.05)])
def test_bce_logits(ls):
    # smoothing makes the labels soft: sigmoid(z) - y' may cancel (the page's bound)
    terms = None if ls == 0.0 else {"y_pred": 1.0 / (1.0 + np.exp(np.abs(Z_TYPICAL))) + 1.0,
                                    "y_true": 0.0 * Z_TYPICAL}
    _check(BCE.grad_reference, BCE.oracle, {"y_true": Y_HARD, "y_pred": Z_TYPICAL},
           dict(from_logits=True, label_smoothing=ls, epsilon=1e-7), terms=terms,
           what=f"bce logits ls={ls}")


def test_bce_logits_extreme():
    # sigmoid(z) - 1 at z = 700 is -sigmoid(-700), never 1 - 1; tiny logits: -z exactly
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.25, 1.0])
    z = np.array([700.0, -700.0, 40.0, -745.0, 1e-300, 2.0 ** -1070])
    _check(BCE.grad_reference, BCE.oracle, {"y_true": y, "y_pred": z},
           dict(from_logits=True, label_smoothing=0.0, epsilon=None), prec=4000, what="bce logits extreme")


def test_bce_logits_soft_labels_bound():
    # sigmoid(z) ~ y': the residual keeps a few ulps of sigmoid(-|z|) and of y' (the page's bound)
    y = np.array([0.3, 0.7, 0.95, 0.5])
    z = np.array([-0.8472978603872037, 0.8472978603872037, 2.944438979166440, 1e-9])
    terms = np.abs(1.0 / (1.0 + np.exp(np.abs(z)))) + y
    _check(BCE.grad_reference, BCE.oracle, {"y_true": y, "y_pred": z},
           dict(from_logits=True, label_smoothing=0.0, epsilon=None),
           terms={"y_pred": terms, "y_true": np.abs(z)}, what="bce logits soft")


@pytest.mark.parametrize("fmt", FORMATS)
def test_bce_formats(fmt):
    for fl, x in ((False, P_TYPICAL), (True, Z_TYPICAL)):
        _check_format(BCE.grad_reference, BCE.oracle, {"y_true": Y_HARD, "y_pred": x},
                      dict(from_logits=fl, label_smoothing=0.0, epsilon=1e-7), fmt, what=f"bce fl={fl}")


def test_bce_clip_bounds_convention():
    # epsilon 1/4: p = 1/4 and 3/4 are the bounds; the unclipped derivative is
    # (p - y) / (p (1 - p)): y = 0, p = 1/4 -> 4/3; y = 1, p = 3/4 -> -4/3; clipped: 0
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    p = np.array([0.25, 0.75, 0.1, 0.9, 0.5])
    cot = np.ones(5)
    for at_bound, edge in ((0.5, 2.0 / 3.0), (1.0, 4.0 / 3.0)):
        g = BCE.grad_reference(y, p, cot, False, 0.0, 0.25, at_bound=at_bound)["y_pred"]
        assert g.tolist() == [edge, -edge, 0.0, 0.0, 2.0]
    g = BCE.grad_reference(y, p, cot, False, 0.0, 0.25)
    assert g["y_pred"][:2].tolist() == [2.0 / 3.0, -2.0 / 3.0]  # the default: jax's 1/2
    # with respect to y: log((1 - pc) / pc) of the clipped probability, also outside
    assert g["y_true"][2] == pytest.approx(np.log(3.0), rel=1e-15)
    assert g["y_true"][3] == pytest.approx(-np.log(3.0), rel=1e-15)


def test_bce_nan_propagates():
    g = BCE.grad_reference(np.array([0.0, np.nan]), np.array([np.nan, 0.5]), np.ones(2), False, 0.0, 1e-7)
    assert np.isnan(g["y_pred"]).all()


# --- PyTorch's forms -------------------------------------------------------------------------


def test_log_clamped():
    y = np.array([0.0, 1.0, 0.3, 0.7, 1.0, 0.0])
    p = np.array([0.2, 0.9, 1e-50, 0.5 - 2.0 ** -40, 1 - 2.0 ** -40, 1e-45])
    _check(BCE.log_clamped_grad, BCE.log_clamped_oracle, {"y_true": y, "y_pred": p},
           dict(log_floor=-100.0), what="log_clamped")
    # p below e^-100: the y term is the constant floor (its derivative 0)
    g = BCE.log_clamped_grad(np.array([0.3]), np.array([1e-50]), np.ones(1))["y_pred"]
    assert g[0] == pytest.approx(0.7 / (1 - 1e-50), rel=1e-15)


def test_log_clamped_endpoints():
    # p = 0 and 1: the clamped log is constant, the other term gives its derivative
    y = np.array([0.3, 0.3])
    g = BCE.log_clamped_grad(y, np.array([0.0, 1.0]), np.ones(2))
    assert g["y_pred"].tolist() == [0.7, -0.3]
    assert g["y_true"].tolist() == [100.0, -100.0]


def test_pos_weighted():
    y = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0]])
    z = np.array([[-3.0, 2.5, 40.0, -0.847], [-30.0, 30.0, 5.0, 1e-3]])
    _check(BCE.pos_weighted_grad, BCE.pos_weighted_oracle, {"y_true": y, "y_pred": z}, {},
           what="pos_weight None")
    w = np.array([0.5, 1.0, 2.5, 3.0])
    _check(BCE.pos_weighted_grad, BCE.pos_weighted_oracle, {"y_true": y, "y_pred": z, "pos_weight": w},
           {}, wrts=("y_pred", "pos_weight"), what="pos_weight")


# --- binary focal ---------------------------------------------------------------------------


@pytest.mark.parametrize("fl", [False, True])
@pytest.mark.parametrize("gamma", [2.0, 0.0, 0.5])
@pytest.mark.parametrize("acb,alpha", [(False, 0.25), (True, 0.25), (True, (0.3, 0.9))])
def test_binary_focal(fl, gamma, acb, alpha):
    x = Z_TYPICAL if fl else P_TYPICAL
    _check(BFC.grad_reference, BFC.oracle, {"y_true": Y_HARD, "y_pred": x},
           dict(apply_class_balancing=acb, alpha=alpha, gamma=gamma, from_logits=fl,
                label_smoothing=0.0, epsilon=1e-7), wrts=("y_pred",), what=f"bfc fl={fl} g={gamma}")


def test_binary_focal_y_true_and_smoothing():
    # soft or smoothed labels: the terms of each sum may have both signs (the page's bound)
    for fl, x in ((False, P_TYPICAL), (True, Z_TYPICAL)):
        for ls in (0.0, 0.1):
            kw = dict(apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=fl,
                      label_smoothing=ls, epsilon=1e-7)
            arrays = {"y_true": Y_HARD, "y_pred": x}
            # a scale for the terms: the sum of the magnitudes of the pieces, from a
            # finite-difference-free estimate (each piece is at most the loss over min(p, 1-p))
            val = np.abs(BFC.reference(Y_HARD, x, **kw))
            p = 1 / (1 + np.exp(-x)) if fl else x
            scale = val / np.minimum(p, 1 - p) + val + 1.0
            _check(BFC.grad_reference, BFC.oracle, arrays, kw,
                   terms={"y_pred": scale if ls else 0 * scale, "y_true": scale}, k=16,
                   what=f"bfc y fl={fl} ls={ls}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_focal_formats(fmt):
    for fl, x in ((False, P_TYPICAL), (True, Z_TYPICAL)):
        _check_format(BFC.grad_reference, BFC.oracle, {"y_true": Y_HARD, "y_pred": x},
                      dict(apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=fl,
                           label_smoothing=0.0, epsilon=1e-7), fmt, wrts=("y_pred",), what="bfc")


def test_binary_focal_clip_bound_convention():
    # gamma 0 and no balancing: the binary cross-entropy's convention, 1/2 at a bound
    y, p = np.array([0.0, 1.0]), np.array([0.25, 0.75])
    kw = dict(apply_class_balancing=False, alpha=0.25, gamma=0.0, from_logits=False,
              label_smoothing=0.0, epsilon=0.25)
    assert BFC.grad_reference(y, p, np.ones(2), **kw)["y_pred"].tolist() == [2.0 / 3.0, -2.0 / 3.0]
    assert BFC.grad_reference(y, p, np.ones(2), **kw, at_bound=1.0)["y_pred"].tolist() == [4.0 / 3.0, -4.0 / 3.0]


# --- categorical family ----------------------------------------------------------------------

Y_ONEHOT = np.array([[0, 1, 0, 0.], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
X_PROB = np.array([[0.1, 0.7, 0.15, 0.05], [2.0, 1e-9, 3.0, 0.5], [0.2, 0.3, 0.1, 0.4],
                   [1e-12, 1e-3, 5e-8, 1 - 2.0 ** -30]])
Z_LOGIT = np.array([[1.0, 40.0, -3.0, 0.0], [-700.0, 2.0, 3.0, 0.5], [0.2, 0.3, 0.1, 0.4],
                    [-30.0, 1.0, -60.0, 20.0]])


@pytest.mark.parametrize("ls", [0.0, 0.1, (0.9, 0.025)])
@pytest.mark.parametrize("eps", [1e-7, None, (1e-4, 0.99)])
def test_cce_probabilities(ls, eps):
    _check(CCE.grad_reference, CCE.oracle, {"y_true": Y_ONEHOT, "y_pred": X_PROB},
           dict(from_logits=False, label_smoothing=ls, epsilon=eps), what=f"cce ls={ls} eps={eps}")


@pytest.mark.parametrize("ls", [0.0, 0.1, (0.9, 0.025)])
def test_cce_logits(ls):
    # the dominant class (z = 40, 20) from the softmax's own complement, never 1 - 1
    _check(CCE.grad_reference, CCE.oracle, {"y_true": Y_ONEHOT, "y_pred": Z_LOGIT},
           dict(from_logits=True, label_smoothing=ls, epsilon=None), prec=1200, what=f"cce logits ls={ls}")


def test_cce_soft_labels_bound():
    # y' ~ q: W / S and y'_j / x_j cancel (the page's k u sum|terms|)
    y = np.array([[0.1, 0.2, 0.3, 0.4]])
    x = np.array([[0.2, 0.3, 0.1, 0.4]])
    terms = np.abs(1.0 / x.sum()) + np.abs(y / x)
    _check(CCE.grad_reference, CCE.oracle, {"y_true": y, "y_pred": x},
           dict(from_logits=False, label_smoothing=0.1, epsilon=1e-7),
           terms={"y_pred": terms, "y_true": 0 * terms}, what="cce soft")


@pytest.mark.parametrize("fmt", FORMATS)
def test_cce_formats(fmt):
    for fl, x in ((False, X_PROB[:3]), (True, Z_LOGIT[:3])):
        _check_format(CCE.grad_reference, CCE.oracle, {"y_true": Y_ONEHOT[:3], "y_pred": x},
                      dict(from_logits=fl, label_smoothing=0.0, epsilon=1e-7), fmt, what=f"cce fl={fl}")


def test_cce_clip_bounds_convention():
    # x = [1/4, 3/4], clip [1/4, 3/4]: both entries on a bound, y = [1, 0]. With the
    # mask m on each entry: g_j = (sum_i m_i y_i) / S - m_j y_j / x_j, S = 1
    y, x = np.array([[1.0, 0.0]]), np.array([[0.25, 0.75]])
    g = CCE.grad_reference(y, x, np.ones((1, 2)), False, 0.0, 0.25)["y_pred"]
    assert g.tolist() == [[0.5 - 0.5 * 4.0, 0.5]]
    g = CCE.grad_reference(y, x, np.ones((1, 2)), False, 0.0, 0.25, at_bound=1.0)["y_pred"]
    assert g.tolist() == [[1.0 - 4.0, 1.0]]
    # strictly clipped entries pass nothing: [0, 1] with the default clip
    g = CCE.grad_reference(np.array([[0.5, 0.5]]), np.array([[0.0, 1.0]]), np.ones((1, 2)), False, 0.0, 1e-7)
    assert g["y_pred"].tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("fl", [False, True])
@pytest.mark.parametrize("gamma", [2.0, 0.0, 0.5])
@pytest.mark.parametrize("alpha", [0.25, [0.1, 0.2, 0.3, 0.4]])
def test_categorical_focal(fl, gamma, alpha):
    x = Z_LOGIT if fl else X_PROB
    _check(CFC.grad_reference, CFC.oracle, {"y_true": Y_ONEHOT, "y_pred": x},
           dict(alpha=alpha, gamma=gamma, from_logits=fl, label_smoothing=0.0, epsilon=1e-7),
           prec=1200, what=f"cfc fl={fl} g={gamma}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_categorical_focal_formats(fmt):
    _check_format(CFC.grad_reference, CFC.oracle, {"y_true": Y_ONEHOT[:3], "y_pred": X_PROB[:3]},
                  dict(alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, epsilon=1e-7),
                  fmt, what="cfc")


@pytest.mark.parametrize("eps", [2.0, -1.0, 0.0, -0.3])
def test_poly1(eps):
    # epsilon < 0: -log p + epsilon (1 - p) cancels near p = 1 (by the series of its tail)
    _check(POLY.grad_reference, POLY.oracle, {"y_true": Y_ONEHOT, "y_pred": Z_LOGIT},
           dict(epsilon=eps), prec=1200, what=f"poly1 eps={eps}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_poly1_formats(fmt):
    _check_format(POLY.grad_reference, POLY.oracle, {"y_true": Y_ONEHOT[:3], "y_pred": Z_LOGIT[:3]},
                  dict(epsilon=2.0), fmt, what="poly1")


LABELS = np.array([1.0, 0.0, 2.0, 3.0])


@pytest.mark.parametrize("fl", [False, True])
@pytest.mark.parametrize("ic", [None, 2])
def test_sparse(fl, ic):
    x = Z_LOGIT if fl else X_PROB
    cot = np.array([1.0, 0.5, 2.0, 1.5])
    _check(SCCE.grad_reference, SCCE.oracle, {"y_true": LABELS, "y_pred": x},
           dict(from_logits=fl, ignore_class=ic, epsilon=1e-7), wrts=("y_pred",), cot=cot,
           prec=1200, what=f"scce fl={fl} ic={ic}")
    if ic is not None:
        g = SCCE.grad_reference(LABELS, x, cot, fl, ic, 1e-7)["y_pred"]
        assert (g[2] == 0.0).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_sparse_formats(fmt):
    _check_format(SCCE.grad_reference, SCCE.oracle, {"y_true": LABELS[:3], "y_pred": Z_LOGIT[:3]},
                  dict(from_logits=True, ignore_class=None, epsilon=1e-7), fmt, wrts=("y_pred",), what="scce", per_sample=True)


@pytest.mark.parametrize("q", [0.5, 0.7, 2.0])
def test_generalized_ce(q):
    _check(GCE.grad_reference, GCE.oracle, {"y_true": LABELS, "y_pred": X_PROB}, dict(q=q),
           wrts=("y_pred",), cot=np.array([1.0, 0.5, 2.0, 1.5]), what=f"gce q={q}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_generalized_ce_formats(fmt):
    _check_format(GCE.grad_reference, GCE.oracle, {"y_true": LABELS[:3], "y_pred": X_PROB[:3]},
                  dict(q=0.5), fmt, wrts=("y_pred",), what="gce", per_sample=True)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 1e-20])
def test_smooth_labels(alpha):
    y = np.array([0.0, 1.0, 0.3, 7.0])
    k = np.array([2.0, 3.0, 10.0, 7.0])
    _check(SMOOTH.grad_reference, SMOOTH.oracle, {"y_true": y, "y_pred": k}, dict(alpha=alpha),
           what=f"smooth alpha={alpha}")
    # tiny class counts on their own (the value's scale would swamp the others' differences)
    _check(SMOOTH.grad_reference, SMOOTH.oracle, {"y_true": np.array([0.5]), "y_pred": np.array([1e-100])},
           dict(alpha=alpha), prec=2000, what="smooth tiny k")


@pytest.mark.parametrize("fmt", FORMATS)
def test_smooth_labels_formats(fmt):
    _check_format(SMOOTH.grad_reference, SMOOTH.oracle,
                  {"y_true": np.array([0.0, 1.0, 0.3]), "y_pred": np.array([2.0, 3.0, 10.0])},
                  dict(alpha=0.1), fmt, what="smooth")


def test_registered():
    from lossref.registry import get
    for name in ("binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
                 "categorical_focal_crossentropy", "poly1_crossentropy",
                 "sparse_categorical_crossentropy", "categorical_generalized_cross_entropy",
                 "smooth_labels"):
        assert get(name).grad_ref is not None, name
