"""Reference gradients of the structured losses (dice, soft_dice, generalized_dice, tversky,
circle, ntxent, sparsemax, ranking_softmax) against high-precision central differences of
their oracles, and their conventions at non-differentiable points."""

import numpy as np
import pytest

import lossref
from lossref import formats

from .gradcheck import assert_grad_ulps, numeric_vjp
from .support import representable, ulp_errors

U64 = 2.0 ** -53


def _grad(name, y, p, cot, **params):
    loss = lossref.get(name)
    kw = loss.bind(params)
    with np.errstate(all="ignore"):
        return loss.grad_ref(np.asarray(y, np.float64), np.asarray(p, np.float64),
                             np.asarray(cot, np.float64), **kw)


def _exact(name, arrays, wrt, cot, prec=480, **params):
    loss = lossref.get(name)
    kw = loss.bind(params)
    kw = {k: v for k, v in kw.items() if k not in arrays}
    return numeric_vjp(loss.per_sample_exact, arrays, wrt, cot, prec=prec, **kw)


def _cot(name, y, p, rng, **params):
    loss = lossref.get(name)
    shape = np.shape(loss.per_sample64(np.asarray(y), np.asarray(p), loss.bind(params)))
    return representable(rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape), "float64")


def check(name, y, p, rng, wrt=("y_pred", "y_true"), fmt="float64", budget=None, extra=None,
          cot=None, prec=480, **params):
    """The reference gradient of every input in `wrt` within `budget` ulps of `fmt` (4 in
    float64, 1 in narrower formats after one rounding) of the exact one; `extra`: an
    absolute allowance per element (a stated conditioning bound) for float64."""
    y = representable(y, fmt)
    p = representable(p, fmt)
    arrays = {k: representable(v, fmt) for k, v in params.items()
              if k in lossref.get(name).arrays and v is not None and not np.isscalar(v)}
    params = {**params, **arrays}
    if cot is None:
        cot = _cot(name, y, p, rng, **params)
    got = _grad(name, y, p, cot, **params)
    budget = (4 if fmt == "float64" else 1) if budget is None else budget
    for w in wrt:
        exact = _exact(name, {"y_true": y, "y_pred": p, **arrays}, w, cot, prec=prec, **params)
        g = np.broadcast_to(got[w], np.shape(exact))
        if fmt != "float64":
            g = formats.to_format_array(g, fmt).astype(np.float64)
        if extra is not None and extra(w) is not None and fmt == "float64":
            err = np.abs(g - np.asarray(exact, dtype=float))
            bound = budget * np.abs(np.asarray(exact, dtype=float)) * U64 * 2 + extra(w)
            ok = (ulp_errors(g, exact, fmt) <= budget) | (err <= bound)
            assert ok.all(), f"{name} d/{w}: {np.max(err - bound):.3g} beyond the bound"
        else:
            assert_grad_ulps(g, exact, fmt, budget, what=f"{name} d/{w} {fmt}")
    return got


def worst(name, y, p, rng, wrt=("y_pred", "y_true"), cot=None, **params):
    """Largest float64 ulp error (a diagnostic for the spec pages)."""
    arrays = {k: v for k, v in params.items() if k in lossref.get(name).arrays and not np.isscalar(v)}
    if cot is None:
        cot = _cot(name, y, p, rng, **params)
    got = _grad(name, y, p, cot, **params)
    return max(float(np.max(ulp_errors(np.broadcast_to(got[w], np.shape(y if w == "y_true" else p) if w in ("y_true", "y_pred") else np.shape(params[w])),
                                       _exact(name, {"y_true": y, "y_pred": p, **arrays}, w, cot, **params), "float64")))
               for w in wrt)


FMTS = ["float64", "float32", "bfloat16", "float16"]


# --- dice and tversky -----------------------------------------------------------------------


def _overlap_points(rng, fmt):
    y = rng.uniform(0, 1, (3, 5))
    p = rng.uniform(0, 1, (3, 5))
    yield y, p, {}
    yield (y > 0.5).astype(float), p, {"axis": 1}
    yb = (y > 0.4).astype(float)
    yield yb, np.where(yb > 0, 1 - 2.0 ** -30, 2.0 ** -30), {"axis": (1,)}  # near-perfect
    # tiny: the value is within 1e-150 of 1 (the oracle needs more than 480 bits to see it)
    yield y * 1e-150, p * 1e-150, {"axis": -1, "epsilon": None, "prec": 1200}
    big = formats.get_format(fmt).max ** 0.5
    yield y * big, p * big, {"axis": 0, "prec": 1200}
    yield y, p, {"axis": 0, "epsilon": 0.25}


@pytest.mark.parametrize("fmt", FMTS)
def test_dice_grad(fmt):
    rng = np.random.default_rng(1)
    for y, p, kw in _overlap_points(rng, fmt):
        check("dice", y, p, rng, fmt=fmt, **kw)


@pytest.mark.parametrize("fmt", FMTS)
def test_tversky_grad(fmt):
    rng = np.random.default_rng(2)
    for y, p, kw in _overlap_points(rng, fmt):
        abs_ = ({"alpha": 0.3, "beta": 0.7}, {"alpha": 0.5, "beta": 0.5}, {"alpha": 2.0, "beta": 0.1})
        for ab in (abs_ if fmt == "float64" else abs_[2:]):
            check("tversky", y, p, rng, fmt=fmt, **kw, **ab)


# --- soft_dice and generalized_dice -----------------------------------------------------------


def _dice_scores(rng, fmt):
    y = np.eye(3)[rng.integers(0, 3, (2, 2))]  # (2, 2, 3) one-hot
    z = rng.standard_normal((2, 2, 3)) * 2
    yield y, z, {}
    yield rng.uniform(0, 1, (2, 2, 3)), z, {"activation": "sigmoid", "alpha": 0.3, "beta": 0.7}
    yield y, rng.uniform(0, 1, (2, 2, 3)), {"activation": None, "smooth": 0.0, "axis": (0, 1)}
    yield y, z * 8 + y * 20, {"smooth": 1e-5}  # confident and right: p near 1 on the labels
    yield y, z, {"activation": "sigmoid", "axis": 1, "alpha": 2.0, "beta": 0.25}


def _dice_bound(y, z, cot, alpha=0.5, beta=0.5, smooth=1.0, activation="softmax", weights=None):
    """The stated float64 bound of soft Dice (spec/losses/soft_dice.md), groups over the middle
    axis: with ``G = |cot| (alpha (I + s) + y A) / den**2`` and ``H = |cot| (beta (I + s) + p A)
    / den**2`` (the gradients written with absolute values), ``8 u H`` for the targets and
    ``8 u G`` times the activation's derivative for the scores (softmax:
    ``p_j (G_j + sum_k p_k G_k)``)."""
    if activation == "softmax":
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
    else:
        p = 1 / (1 + np.exp(-z)) if activation == "sigmoid" else z
    i_, sp, sy = (y * p).sum(1), p.sum(1), y.sum(1)
    a_ = alpha * sp + beta * sy + (alpha + beta) * smooth
    den = i_ + alpha * (sp - i_) + beta * (sy - i_) + smooth
    c = np.abs(cot) if weights is None else np.broadcast_to(np.abs(cot) * weights, i_.shape)
    g = c[:, None] * (alpha * (i_ + smooth) + y.transpose(1, 0, 2) * a_).transpose(1, 0, 2) / den[:, None] ** 2
    gy = c[:, None] * (beta * (i_ + smooth) + p.transpose(1, 0, 2) * a_).transpose(1, 0, 2) / den[:, None] ** 2
    if activation == "softmax":
        g = p * (g + (p * g).sum(-1, keepdims=True))
    elif activation == "sigmoid":
        g = g * p * (1 - p)
    return {"y_pred": 8 * U64 * g, "y_true": 8 * U64 * gy}


@pytest.mark.parametrize("fmt", FMTS)
def test_soft_dice_grad(fmt):
    rng = np.random.default_rng(3)
    for y, z, kw in _dice_scores(rng, fmt):
        y, z = representable(y, fmt), representable(z, fmt)
        cot = _cot("soft_dice", y, z, rng, **kw)
        extra = None
        if kw.get("axis") is None:
            extra = _dice_bound(y, z, cot, **{k: v for k, v in kw.items() if k != "axis"}).get
        check("soft_dice", y, z, rng, fmt=fmt, cot=cot, extra=extra, **kw)


def _gdice_weights(y, ignore_background, eps):
    n_c = y.shape[-1]
    vol = y.reshape(-1, n_c).sum(0)
    u = 1 / (vol ** 2 + eps)
    w = n_c * u / u.sum()
    if ignore_background:
        w[0] = 0.0
    return w / (y.shape[0] * (n_c - ignore_background))


@pytest.mark.parametrize("fmt", FMTS)
def test_generalized_dice_grad(fmt):
    rng = np.random.default_rng(4)
    for y, z, kw in list(_dice_scores(rng, fmt))[:None if fmt == "float64" else 3]:
        kw = {k: v for k, v in kw.items() if k in ("activation", "smooth")}
        for yy, kw2 in ((y, {}), (rng.uniform(0, 1, y.shape), {"ignore_background": True, "epsilon": 0.5})):
            yy = representable(yy, fmt)
            z = representable(z, fmt)
            cot = _cot("generalized_dice", yy, z, rng)
            bound = _dice_bound(yy, z, cot, smooth=kw.get("smooth", 1.0), activation=kw.get("activation", "softmax"),
                                weights=_gdice_weights(yy, kw2.get("ignore_background", False),
                                                       kw2.get("epsilon", 1e-7)))
            check("generalized_dice", yy, z, rng, fmt=fmt, cot=cot, extra=bound.get, wrt=("y_pred",), **kw, **kw2)
            # the targets: the volume term adds a weighted spread of the Dice values (see the page)
            check("generalized_dice", yy, z, rng, fmt=fmt, cot=cot, wrt=("y_true",),
                  budget=64 if fmt == "float64" else 1, **kw, **kw2)


# --- sparsemax ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
def test_sparsemax_grad(fmt):
    rng = np.random.default_rng(5)
    y = np.eye(5)[rng.integers(0, 5, 4)]
    z = rng.standard_normal((4, 5))
    check("sparsemax", y, z, rng, wrt=("y_pred",), fmt=fmt)
    check("sparsemax", y, z * 1e-3 + 0.3, rng, wrt=("y_pred",), fmt=fmt)  # full support
    check("sparsemax", y, z * 30 + y * 40, rng, wrt=("y_pred",), fmt=fmt)  # confident: p_c = 1
    # scores of 1e8 (finite in every format but float16, where they overflow to inf: a row
    # whose value the definition sets to NaN, with no gradient; the finite-difference check
    # does not apply there)
    if fmt != "float16":
        check("sparsemax", y, z * 1e8, rng, wrt=("y_pred",), fmt=fmt)
    check("sparsemax", (z > 0).astype(float), z * 1.7, rng, wrt=("y_pred",), fmt=fmt, binary=True)


def test_sparsemax_grad_conventions():
    # a support change (z_1 - z_2 = 1: the second score enters the support with p = 0) and
    # a tie: the gradient is continuous there, sparsemax(z) - e_c
    y = np.array([[1.0, 0, 0], [0, 1, 0]])
    z = np.array([[2.0, 1.0, -5.0], [0.5, 0.5, 0.5]])
    g = _grad("sparsemax", y, z, np.ones(2))["y_pred"]
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0], [1 / 3, -2 / 3, 1 / 3]])
    # binary: sparse_plus'(t) is 0 at t = -1 and 1 at t = 1 (continuous); the label flips t
    g = _grad("sparsemax", np.array([0.0, 0, 1, 1]), np.array([-1.0, 1.0, -1.0, 0.0]), np.ones(4),
              binary=True)["y_pred"]
    np.testing.assert_array_equal(g, [0.0, 1.0, -1.0, -0.5])


# --- ranking_softmax ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FMTS)
def test_ranking_softmax_grad(fmt):
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, (3, 5)).astype(float)
    s = rng.standard_normal((3, 5)) * 3
    w = rng.uniform(0.5, 2, (3, 5))
    mask = (rng.uniform(size=(3, 5)) > 0.3).astype(float)
    mask[2] = 0.0
    wrt = ("y_pred", "y_true", "weights")

    def bound(y, s, w=1.0, mask=1.0):
        """The page's float64 bound of the scores: ``4 u |cot| p_k |A| (2 + |log p_k|)``
        (the error of ``p = exp(log p)``; the cotangents are at most 2)."""
        y, s = representable(y, fmt), representable(s, fmt)
        v = np.broadcast_to(np.asarray(mask) != 0, s.shape)
        e = np.where(v, np.exp(s - np.max(np.where(v, s, -np.inf), -1, keepdims=True)), 0)
        p = e / np.maximum(e.sum(-1, keepdims=True), 1e-300)
        big_a = np.abs(np.where(v, y * w, 0).sum(-1, keepdims=True))
        with np.errstate(divide="ignore"):
            lg = np.where(p > 0, np.abs(np.log(np.where(p > 0, p, 1))), 0)
        return {"y_pred": 8 * U64 * p * big_a * (2 + lg)}.get

    check("ranking_softmax", y, s, rng, wrt=wrt, fmt=fmt, weights=w, where=mask, extra=bound(y, s, w, mask))
    # saturated softmax
    check("ranking_softmax", y, s * 40, rng, wrt=("y_pred", "y_true"), fmt=fmt, extra=bound(y, s * 40))
    y2 = rng.uniform(0, 1, (3, 5))
    check("ranking_softmax", y2, s * 1e-9, rng, wrt=wrt, fmt=fmt, weights=w, extra=bound(y2, s * 1e-9, w))


def test_ranking_softmax_grad_mask():
    # masked items: no gradient (scores, labels, weights), the mask itself none; an empty list 0
    y = np.array([[1.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    s = np.array([[0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    mask = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    g = _grad("ranking_softmax", y, s, np.ones(2), where=mask)
    np.testing.assert_array_equal(g["y_pred"], [[0.5 * 3 - 1, 0.5 * 3 - 2, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(g["y_true"], [[np.log(2.0), np.log(2.0), 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(g["where"], np.zeros((2, 3)))


# --- ntxent -------------------------------------------------------------------------------------


def _ntxent_bound(g, e, cot, temperature, eps=0.0):
    """The page's float64 bound: ``8 u (|g_i| + |u_i| |u_i . g_i|) / n_i + 8 u |g_i| |s|_max``
    per entry, ``g`` formed with absolute values of the pair derivatives."""
    n = np.sqrt(np.maximum((e * e).sum(-1), eps))
    u = e / n[:, None]
    s = u @ u.T / temperature
    same = g[:, None] == g[None, :]
    pos = same & ~np.eye(len(g), dtype=bool)
    gs = np.abs(cot) / pos.sum() * (np.where(pos, 1.0, 0.0) + np.where(same, 0.0, 1.0) * pos.sum(-1)[:, None])
    m = (gs + gs.T) / temperature
    gu = m @ np.abs(u)
    return 8 * U64 * (gu + np.abs(u) * (np.abs(u) * gu).sum(-1, keepdims=True)) / n[:, None] * (1 + np.abs(s).max())


@pytest.mark.parametrize("fmt", FMTS)
def test_ntxent_grad(fmt):
    rng = np.random.default_rng(7)
    g = np.array([0.0, 0, 1, 1, 2])
    for e, kw in ((rng.standard_normal((5, 3)), {"temperature": 0.5}),
                  (rng.standard_normal((5, 3)) * 1e-3, {"temperature": 0.07, "eps": 1e-8}),  # some clamped
                  (rng.standard_normal((5, 3)) * formats.get_format(fmt).max ** 0.25, {"temperature": 2.0})):
        e = representable(e, fmt)
        cot = _cot("ntxent", g, e, rng, **kw)
        bound = _ntxent_bound(g, e, cot, **kw)
        check("ntxent", g, e, rng, wrt=("y_pred",), fmt=fmt, cot=cot, extra=lambda w: bound, **kw)


def test_ntxent_grad_clamp_tie():
    # ||x_0||**2 == eps: max(ss, eps) splits its slope 1/2 to each argument, so the gradient
    # is the mean of the two one-sided ones (eps just below: the norm moves; just above: fixed)
    e = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    g = np.array([0.0, 0.0, 1.0])
    assert (e[0] ** 2).sum() == 1.0
    half = _grad("ntxent", g, e, np.array(1.0), temperature=1.0, eps=1.0)["y_pred"]
    free = _grad("ntxent", g, e, np.array(1.0), temperature=1.0, eps=1.0 - 2.0 ** -50)["y_pred"]
    flat = _grad("ntxent", g, e, np.array(1.0), temperature=1.0, eps=1.0 + 2.0 ** -50)["y_pred"]
    assert not np.allclose(free[0], flat[0])
    np.testing.assert_allclose(half[0], 0.5 * (free[0] + flat[0]), rtol=1e-12)


# --- circle -------------------------------------------------------------------------------------


def _circle_bound(lab, e, cot, gamma, margin, ref=None):
    """The page's float64 bound: ``u Lambda`` times the gradient written with absolute
    values, ``Lambda = 8 (1 + gamma (D + 3) (1 + |m| + 2)**2 max(1, |s|))`` (the rounding
    of the distances and weights passed through the exponentials)."""
    r = e if ref is None else ref
    s = np.abs(e) @ np.abs(r).T
    lam = 8 * (1 + abs(gamma) * (e.shape[1] + 3) * (3 + abs(margin)) ** 2 * np.maximum(1, s).max())
    scale = np.abs(cot)[:, None] * abs(gamma) * (3 + abs(margin))
    ga = 2 * scale.max() * np.abs(r).sum(0)[None, :] + 2 * scale * np.abs(e).sum(0)
    return U64 * lam * np.broadcast_to(ga, e.shape)


@pytest.mark.parametrize("fmt", FMTS)
def test_circle_grad(fmt):
    rng = np.random.default_rng(8)
    lab = np.array([0.0, 0, 1, 1, 2])
    e = rng.standard_normal((5, 3))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    for x, kw in ((e, {"gamma": 2.0, "margin": 0.25}),
                  (e * 0.7, {"gamma": 80.0, "margin": 0.4}),
                  (e, {"gamma": 5.0, "margin": -0.3, "remove_diagonal": False}),
                  (e, {"gamma": 3.0, "margin": 0.4, "optim_neg": 1.25, "delta_neg": 0.5})):
        x = representable(x, fmt)
        cot = _cot("circle", lab, x, rng, **kw)
        bound = _circle_bound(lab, x, cot, kw["gamma"], kw["margin"])
        check("circle", lab, x, rng, wrt=("y_pred",), fmt=fmt, cot=cot, extra=lambda w: bound, **kw)


def test_circle_grad_ref_embeddings():
    rng = np.random.default_rng(9)
    e, r = rng.standard_normal((3, 2)) * 0.6, rng.standard_normal((4, 2)) * 0.6
    lab, rlab = np.array([0.0, 1, 0]), np.array([1.0, 0, 0, 2])
    kw = {"gamma": 4.0, "margin": 0.3, "ref_labels": rlab, "ref_embeddings": r}
    cot = _cot("circle", lab, e, rng, **kw)
    got = _grad("circle", lab, e, cot, **kw)
    loss = lossref.get("circle")
    p = {k: v for k, v in loss.bind(kw).items() if k != "ref_embeddings"}
    ex_r = numeric_vjp(lambda y_true, y_pred, ref_embeddings, **q: loss.per_sample_exact(
        y_true, y_pred, ref_embeddings=np.asarray(ref_embeddings, dtype=np.float64), **q),
        {"y_true": lab, "y_pred": e, "ref_embeddings": r}, "y_pred", cot, **p)
    bound = _circle_bound(lab, e, cot, 4.0, 0.3, ref=r)
    err = np.abs(got["y_pred"] - np.asarray(ex_r, dtype=float))
    assert (err <= bound + 4 * U64 * np.abs(np.asarray(ex_r, dtype=float))).all()
    assert got["ref_embeddings"].shape == r.shape


def test_circle_grad_kinks():
    # pair (0, 1) with s = 1 (d = max(1 - s, 0) at its tie: slope 1/2) and margin 0 on the
    # positives (m + d = 0 there): every max splits its slope 1/2; with m = 0 and d = 0
    # the positive weight's slope -gamma m is 0, so the clamp contributes nothing either way
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    lab = np.array([0.0, 0.0, 1.0])
    g = _grad("circle", lab, e, np.ones(3), gamma=2.0, margin=0.0)["y_pred"]
    assert np.all(np.isfinite(g))
    # negatives at the clamp o_n - d = 0: optim_neg = 1 and s = 0 for the pair (0, 2): the
    # weight gamma max(o_n - d, 0) (d_n - d) has slope -gamma (d_n - o_n) / 2 there
    kw = {"gamma": 2.0, "margin": 0.0, "optim_neg": 1.0, "delta_neg": 0.5}
    lab2 = np.array([0.0, 1.0])
    e2 = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = _grad("circle", lab2, e2, np.array([1.0, 0.0]), **kw)["y_pred"]
    # anchor 0 alone: no positives (L_p = -inf), so its loss is 0 and so is its gradient
    np.testing.assert_array_equal(got, np.zeros((2, 2)))
    lab3 = np.array([0.0, 1.0, 0.0])
    e3 = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    got = _grad("circle", lab3, e3, np.array([1.0, 0.0, 0.0]), **kw)["y_pred"]
    # by hand: d_01 = 1 (tie), d_02 = 0.4; w_p = -2 (0.4)(-0.4) = 0.32, w_n = 0 (L = 0.32)
    sig = 1 / (1 + np.exp(-0.32))
    # dw_p/dd = 2 gamma d = 1.6 on (0, 2); dw_n/dd = -gamma (d_n - o_n) / 2 = 0.5 on (0, 1)
    # ds = -dd; grad of anchor 0 = -(1.6 e_2 + 0.5 e_1) sig; e_2 gets -1.6 sig e_0, e_1 -0.5 sig e_0
    want = np.array([-(1.6 * e3[2] + 0.5 * e3[1]), -0.5 * e3[0], -1.6 * e3[0]]) * sig
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-16)
