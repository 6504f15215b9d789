"""Reference gradients of the PyTorch dialect (``lossref.torch.nn.functional``, CTC aside).

Each function's ``vjp64`` (the gradient of ``sum(cot * values)`` before torch's reduction)
is checked against (1) central differences of the function's own oracle at high precision
(:func:`tests.gradcheck.numeric_vjp`; float64: 4 ulp, float32 inputs: 1 ulp after one
rounding) and (2) ``torch.autograd`` with ``reduction='none'``, on points away from kinks.
The conventions at kinks and clamps are checked against values written from torch's
autograd as measured (clamp_min passes the gradient at its bound, the margin kernels'
strict ``z > 0``, ties of ``torch.min`` split 1/2, var clamped under ``no_grad``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossref import formats
from lossref.dialect import exact_params
from lossref.torch.nn import functional as F

from .gradcheck import assert_grad_ulps, numeric_vjp

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(20240615)


def _r(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape)


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """`g` summed over the axes broadcasting added to an array of `shape`."""
    g = np.asarray(g, np.float64)
    while g.ndim > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdims=True)
    return g


class Case:
    """One call: `args` torch's tensors by name in positional order (the first two are
    the dialect's two inputs), `kw` the settings, `diff` torch argument -> gradient key,
    `torch_diff` the arguments torch differentiates, `labels`: the target is integer."""

    def __init__(self, name, args, kw=None, diff=None, torch_diff=None, labels=False, classes=False,
                 numeric_only=(), terms=0.0):
        self.name, self.args, self.kw = name, args, kw or {}
        # a bound on the sum of |terms| of a gradient that is a difference (cancellation):
        # there the error may reach 8 u (terms) instead of 4 ulp of the result
        self.terms = terms
        self.diff = diff
        self.torch_diff = list(diff) if torch_diff is None else torch_diff
        self.labels, self.classes, self.numeric_only = labels, classes, numeric_only

    def __repr__(self):
        return f"{self.name}{ {k: v for k, v in self.kw.items() if not isinstance(v, np.ndarray)} }"


P, T = {"input": "y_pred", "target": "y_true"}, ["input"]
PAIR = {"input1": "y_pred", "input2": "x2", "target": "y_true"}
TRIP = {"anchor": "y_pred", "positive": "y_true", "negative": "negative"}
Y = RNG.uniform(0.05, 0.95, (3, 4))
LAB = np.array([1, 0, 3])


def _cases():
    c = [
        Case("l1_loss", {"input": _r(3, 4), "target": _r(3, 4)}, diff=P),
        Case("mse_loss", {"input": _r(3, 4), "target": _r(3, 4)}, diff=P),
        Case("huber_loss", {"input": _r(3, 4), "target": _r(3, 4)}, {"delta": 0.7}, diff=P),
        Case("smooth_l1_loss", {"input": _r(3, 4), "target": _r(3, 4)}, {"beta": 0.6}, diff=P),
        Case("smooth_l1_loss", {"input": _r(3, 4), "target": _r(3, 4)}, {"beta": 0.0}, diff=P),
        Case("binary_cross_entropy", {"input": RNG.uniform(0.01, 0.99, (3, 4)), "target": Y}, diff=P),
        Case("binary_cross_entropy", {"input": np.array([1e-30, 1 - 2 ** -20, 0.5 + 2 ** -20, 0.49]),
                                      "target": np.array([0.3, 0.999, 0.5, 1.0])}, diff=P,
             torch_diff=[]),  # torch divides by max(x (1 - x), 1e-12)
        Case("binary_cross_entropy_with_logits", {"input": _r(3, 4, lo=-6, hi=6), "target": Y}, diff=P, terms=2),
        Case("binary_cross_entropy_with_logits", {"input": np.array([40.0, -40.0, 60.0, 1e-20]),
                                                  "target": np.array([1.0, 0.0, 1.0, 0.25])}, diff=P,
             torch_diff=[]),  # torch's sigmoid(x) - y is 0 at x = 40 (cancelled)
        Case("binary_cross_entropy_with_logits", {"input": _r(3, 4, lo=-6, hi=6), "target": Y},
             {"pos_weight": RNG.uniform(0.5, 3, 4)}, diff=P, numeric_only=("pos_weight",), terms=8),
        Case("kl_div", {"input": _r(3, 4, lo=-4, hi=0), "target": Y}, diff=P),
        Case("kl_div", {"input": _r(3, 4, lo=-4, hi=0), "target": _r(3, 4, lo=-4, hi=0)},
             {"log_target": True}, diff=P),
        Case("poisson_nll_loss", {"input": _r(3, 4), "target": RNG.uniform(0, 4, (3, 4))}, {"full": True},
             diff=P),
        Case("poisson_nll_loss", {"input": RNG.uniform(0.1, 3, (3, 4)), "target": RNG.uniform(0, 4, (3, 4))},
             {"log_input": False, "eps": 1e-3}, diff=P, terms=50),
        Case("nll_loss", {"input": _r(3, 5), "target": LAB}, {"weight": RNG.uniform(0.5, 2, 5),
                                                             "ignore_index": 0}, diff={"input": "y_pred"},
             labels=True, classes=True),
        Case("cross_entropy", {"input": _r(3, 5, lo=-5, hi=5), "target": LAB}, {"label_smoothing": 0.1},
             diff={"input": "y_pred"}, labels=True, classes=True),
        Case("cross_entropy", {"input": _r(3, 5, lo=-5, hi=5), "target": LAB},
             {"weight": RNG.uniform(0.5, 2, 5), "ignore_index": 3}, diff={"input": "y_pred"}, labels=True,
             classes=True),
        Case("cross_entropy", {"input": np.array([[30.0, 0.0, -1.0], [1.0, 2.0, 3.0]]), "target": np.array([0, 2])},
             diff={"input": "y_pred"}, labels=True, classes=True,
             torch_diff=[]),  # torch's p - 1 cancels at the dominant class
        Case("cross_entropy", {"input": _r(2, 4, 3, lo=-3, hi=3),
                               "target": RNG.dirichlet(np.ones(4), (2, 3)).transpose(0, 2, 1)},
             {"label_smoothing": 0.2, "weight": RNG.uniform(0.5, 2, 4)}, diff=P, classes=True, terms=4),
        Case("multilabel_soft_margin_loss", {"input": _r(3, 4, lo=-4, hi=4), "target": Y},
             {"weight": RNG.uniform(0.5, 2, 4)}, diff=P, terms=2),
        Case("soft_margin_loss", {"input": _r(3, 4), "target": np.sign(_r(3, 4))}, diff=P, torch_diff=T),
        Case("hinge_embedding_loss", {"input": _r(3, 4), "target": np.array([[1, -1, 1, -1]] * 3, float)},
             {"margin": 0.5}, diff={"input": "y_pred"}),
        Case("multi_margin_loss", {"input": _r(3, 4), "target": LAB}, {"margin": 0.8,
                                                                      "weight": RNG.uniform(0.5, 2, 4)},
             diff={"input": "y_pred"}, labels=True),
        Case("multi_margin_loss", {"input": _r(3, 4), "target": LAB}, {"p": 2}, diff={"input": "y_pred"},
             labels=True),
        Case("multilabel_margin_loss", {"input": _r(3, 4), "target": np.array([[3, 0, -1, 1], [1, 1, 2, -1],
                                                                               [-1, 0, 0, 0]])},
             diff={"input": "y_pred"}, labels=True),
        Case("gaussian_nll_loss", {"input": _r(3, 4), "target": _r(3, 4), "var": RNG.uniform(0.1, 2, (3, 4))},
             {"full": True}, diff={"input": "y_pred", "target": "y_true", "var": "var"}, terms=1000),
        Case("gaussian_nll_loss", {"input": _r(3, 4), "target": _r(3, 4), "var": RNG.uniform(0.1, 2, (3, 1))},
             diff={"input": "y_pred", "target": "y_true", "var": "var"}),
        Case("margin_ranking_loss", {"input1": _r(3, 4), "input2": _r(3, 4), "target": np.sign(_r(3, 4))},
             {"margin": 0.3}, diff=PAIR),
        Case("cosine_embedding_loss", {"input1": _r(4, 3), "input2": _r(4, 3), "target": np.array([1, -1, -1, 1])},
             {"margin": -0.2}, diff={"input1": "y_pred", "input2": "x2"}),
        Case("triplet_margin_loss", {"anchor": _r(3, 4), "positive": _r(3, 4), "negative": _r(3, 4)},
             {"margin": 2.0}, diff=TRIP, terms=4),
        Case("triplet_margin_loss", {"anchor": _r(3, 4), "positive": _r(3, 4), "negative": _r(3, 4)},
             {"margin": 2.0, "p": 3, "swap": True}, diff=TRIP, terms=4),
        Case("triplet_margin_loss", {"anchor": _r(3, 4), "positive": _r(3, 4), "negative": _r(3, 4)},
             {"margin": 3.0, "p": 1}, diff=TRIP, terms=4),
        Case("triplet_margin_loss", {"anchor": _r(3, 4), "positive": _r(3, 4), "negative": _r(3, 4)},
             {"margin": 3.0, "p": math.inf}, diff=TRIP, terms=4),
        Case("triplet_margin_with_distance_loss", {"anchor": _r(3, 4), "positive": _r(3, 4),
                                                   "negative": _r(3, 4)}, {"margin": 2.0, "swap": True},
             diff=TRIP, terms=4),
    ]
    return c


CASES = _cases()


def _call(case, dtype):
    fn = getattr(F, case.name)
    names = list(case.args)
    arrs = {k: (np.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else np.asarray(v))
            for k, v in case.args.items()}
    kw = {k: (np.asarray(v, dtype) if isinstance(v, np.ndarray) else v) for k, v in case.kw.items()}
    rest = {k: arrs[k] for k in names[2:]}
    pr = fn.prepare(arrs[names[0]], arrs[names[1]], **rest, **kw)
    return fn, arrs, kw, pr


def _cot(shape):
    return np.random.default_rng(7).uniform(0.25, 2.0, shape)



@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_oracle(case, dtype):
    fn, arrs, kw, pr = _call(case, dtype)
    cot = _cot(np.shape(fn.values64(pr)))
    got = fn.vjp64(pr, cot)
    fmt = formats.get_format(dtype)
    keys = list(case.diff.values()) + list(case.numeric_only)
    floats = {"y_pred": pr.y_pred}
    if not case.labels:
        floats["y_true"] = pr.y_true
    for k in keys:
        if k not in ("y_pred", "y_true"):
            floats[k] = pr.params[k]
    params = {k: v for k, v in pr.params.items() if k not in floats}
    fixed = {} if not case.labels else {"y_true": pr.y_true}

    def f(**a):
        return fn._oracle(**a, **exact_params({**fixed, **params}))

    for k in keys:
        exact = numeric_vjp(f, floats, k, cot)
        g = _sum_to(got[k], np.shape(floats[k]))
        if case.terms:  # the difference's own bound where it cancels: 8 u cot (terms)
            near = np.abs(g - exact.astype(float)) <= 8 * 2.0 ** -53 * 2.0 * case.terms
            exact = np.where(near, g, exact)
        if fmt is formats.FLOAT64:
            assert_grad_ulps(g, exact, "float64", 4, f"{case} d/d{k}")
        else:
            assert_grad_ulps(formats.to_format_array(g, fmt), exact, fmt, 1, f"{case} d/d{k} {fmt.name}")


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_diff], ids=repr)  # the others: torch's
@pytest.mark.parametrize("dtype", [np.float64, np.float32])                     # own roundings differ
def test_against_torch(case, dtype):
    fn, arrs, kw, pr = _call(case, dtype)
    cot = _cot(np.shape(fn.values64(pr)))
    got = fn.vjp64(pr, cot)
    tens = {k: torch.tensor(np.asarray(v, np.float64) if v.dtype.kind == "f" else v,
                            requires_grad=k in case.torch_diff)
            for k, v in arrs.items()}
    tkw = {k: torch.tensor(np.asarray(v, np.float64)) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    out = getattr(TF, case.name)(**tens, **tkw, reduction="none")
    out.backward(torch.tensor(cot).reshape(out.shape))
    for name in case.torch_diff:
        key = case.diff[name]
        g = np.asarray(got[key])
        if case.classes and key == "y_pred" or (case.classes and key == "y_true" and not case.labels):
            g = np.moveaxis(g, -1, 1) if g.ndim > 1 else g
        g = _sum_to(g, arrs[name].shape)
        np.testing.assert_allclose(g, tens[name].grad.numpy(), rtol=2e-10, atol=1e-300,
                                   err_msg=f"{case} d/d{name}")


# --- conventions at kinks and clamps (expected values from torch's autograd rules) -----------


def _vjp(name, *args, **kw):
    fn = getattr(F, name)
    pr = fn.prepare(*args[:2], **kw)
    vals = fn.values64(pr)
    return fn.vjp64(pr, np.ones(np.shape(vals)))


def test_margin_ranking_clamp_passes_at_zero():
    g = _vjp("margin_ranking_loss", np.array([1.0, 2.0]), np.array([1.0, 1.0]), target=np.array([1.0, 1.0]))
    # z = 0 - (x1 - x2) = 0 and -1: the first is at the bound (active), the second is not
    assert g["y_pred"].tolist() == [-1.0, 0.0] and g["x2"].tolist() == [1.0, 0.0]
    assert g["y_true"].tolist() == [0.0, 0.0]


def test_hinge_embedding_at_margin():
    g = _vjp("hinge_embedding_loss", np.array([1.0, 1.0, 1.0, 0.5]), np.array([-1.0, 1.0, 0.5, -1.0]))
    assert g["y_pred"].tolist() == [-1.0, 1.0, 0.0, -1.0]


def test_cosine_embedding_orthogonal_margin_zero():
    g = _vjp("cosine_embedding_loss", np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), target=np.array([-1]))
    e = float(np.float32(1e-12))
    assert g["y_pred"][0, 0] == 0.0 and g["y_pred"][0, 1] == pytest.approx(1 / (1 + e), rel=1e-15)
    assert g["x2"][0, 1] == 0.0 and g["x2"][0, 0] == pytest.approx(1 / (1 + e), rel=1e-15)


def test_multi_margin_ties_are_inactive():
    g = _vjp("multi_margin_loss", np.array([[1.0, 0.0, -1.0], [2.0, 0.0, 1.0]]), np.array([0, 0]))
    assert not np.any(g["y_pred"])
    g = _vjp("multi_margin_loss", np.array([[1.0, 0.0, -1.0]]), np.array([0]), p=2)
    assert not np.any(g["y_pred"])


def test_multilabel_margin_ties_are_inactive():
    g = _vjp("multilabel_margin_loss", np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 1.0]]),
             np.array([[0, -1, 0], [0, 1, -1]]))
    assert g["y_pred"][0].tolist() == [0.0, 0.0, 0.0]
    assert g["y_pred"][1].tolist() == [0.0, -1 / 3, 1 / 3]


def test_triplet_conventions():
    a, b = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])
    g = _vjp("triplet_margin_loss", a, b, negative=np.array([[2.0, 0.0]]), margin=1.0, eps=0.0)
    assert g["y_pred"].tolist() == [[0.0, 0.0]] and g["y_true"].tolist() == [[1.0, 0.0]]  # hinge at 0: passes
    g = _vjp("triplet_margin_loss", a, np.array([[2.0, 0.0]]), negative=b, margin=5.0, eps=0.0, swap=True)
    assert g["y_pred"].tolist() == [[-0.5, 0.0]] and g["y_true"].tolist() == [[0.5, 0.0]]  # min tie: 1/2
    assert g["negative"].tolist() == [[0.0, 0.0]]
    g = _vjp("triplet_margin_loss", a, a, negative=b, margin=1.0, eps=0.0)
    assert g["y_pred"].tolist() == [[1.0, 0.0]] and g["y_true"].tolist() == [[0.0, 0.0]]  # zero distance
    g = _vjp("triplet_margin_loss", a, np.array([[1.0, -1.0]]), negative=np.array([[3.0, 0.0]]), margin=5.0,
             p=math.inf, eps=0.0)
    assert g["y_pred"].tolist() == [[0.5, 0.5]] and g["y_true"].tolist() == [[0.5, -0.5]]  # inf-norm ties
    g = _vjp("triplet_margin_loss", a, b, negative=np.array([[3.0, 0.0]]), margin=5.0, p=0.5, eps=0.0)
    assert g["y_pred"].tolist() == [[0.0, 0.0]] and g["y_true"].tolist() == [[1.0, 0.0]]  # zero entry: 0


def test_gaussian_nll_var_clamp_is_straight_through():
    g = _vjp("gaussian_nll_loss", np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0]),
             var=np.array([1e-4, 0.0, 1.0]), eps=2.0 ** -10)
    v = 2.0 ** -10
    assert g["y_pred"].tolist() == [1 / v, 1 / v, 1.0]
    assert g["var"].tolist() == [(1 / v - 1 / v ** 2) / 2, (1 / v - 1 / v ** 2) / 2, 0.0]


def test_smooth_l1_and_huber_kinks():
    g = _vjp("smooth_l1_loss", np.array([1.0, 2.0, 0.0]), np.array([1.0, 3.0, 1.0]), beta=1.0)
    assert g["y_pred"].tolist() == [0.0, -1.0, -1.0] and g["y_true"].tolist() == [0.0, 1.0, 1.0]
    g = _vjp("smooth_l1_loss", np.array([1.0, 2.0]), np.array([1.0, 3.0]), beta=0.0)
    assert g["y_pred"].tolist() == [0.0, -1.0]


def test_bce_clamped_logs_follow_the_definition():
    y = np.array([0.3, 0.3, 0.3])
    g = _vjp("binary_cross_entropy", np.array([0.0, 1.0, 1e-50]), y)
    # log x clamped at x = 0 and 1e-50 (constant: 0), log(1 - x) at x = 1
    assert g["y_pred"].tolist() == [0.7, -0.3, 0.7 / (1 - 1e-50)]
    assert g["y_true"][2] == 100.0 - (-math.log1p(-1e-50))
    assert g["y_true"][0] == 100.0 and g["y_true"][1] == -100.0


def test_kl_div_zero_target_and_poisson_full():
    g = _vjp("kl_div", np.array([-1.0, -1.0]), np.array([0.0, 1.0]))
    assert np.isnan(g["y_true"][0]) and g["y_true"][1] == 2.0 and g["y_pred"].tolist() == [-0.0, -1.0]
    g = _vjp("poisson_nll_loss", np.array([0.5, 0.5, 0.5]), np.array([0.0, 1.0, 2.0]), full=True)
    assert g["y_true"].tolist()[:2] == [-0.5, -0.5]
    assert g["y_true"][2] == pytest.approx(-0.5 + math.log(2) + 0.25, rel=1e-15)


def test_grad_params():
    assert F.gaussian_nll_loss.grad_params == {"var": "var"}
    assert F.margin_ranking_loss.grad_params == {"input2": "x2", "target": "y_true"}
    assert F.triplet_margin_loss.grad_params == {"negative": "negative"}
    assert F.cosine_embedding_loss.roles == ("y_pred", "x2")
    assert F.l1_loss.roles == ("y_pred", "y_true")
