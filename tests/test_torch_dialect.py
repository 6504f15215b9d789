"""The PyTorch dialect (``lossref.torch``) against PyTorch 2.13 and against the oracle.

Covered, per function (each also through its ``torch.nn`` module):

* ``l1_loss``, ``mse_loss``: every reduction, ``weight`` (weighted mean ``Σwℓ/Σw``),
  legacy ``size_average``/``reduce``, broadcasting with a warning;
* ``huber_loss``: ``delta`` 0.5, 1, 2.5, ``weight`` (``'mean'`` over the element count);
* ``smooth_l1_loss``: ``beta`` 0, 0.3, 1, 2.5;
* ``binary_cross_entropy``: ``weight`` (full and per column), exact 0 and 1 (the -100 clamp);
* ``binary_cross_entropy_with_logits``: ``weight``, ``pos_weight`` (per class), both;
* ``kl_div``: ``'none'``, ``'mean'``, ``'sum'``, ``'batchmean'``, ``log_target``;
* ``poisson_nll_loss``: ``log_input`` True/False, ``full``, ``eps`` (default and 1e-3).

Against torch (float32 and float64, typical inputs): the difference is within ``K``
units of roundoff of the format times the magnitude of the terms (:func:`_terms`):
``|ours - torch| <= K·u·(|ours| + Σ|terms|)`` with ``K = 8``: a few ulps where the terms
do not cancel, and the forward error torch's own float32 arithmetic is allowed where they
do (KL near ``log q = log p``, Poisson). float16 and bfloat16 run through torch too
(dtype and shape checked, values within ``K`` of torch's own roundoff) and are held to the
oracle: ``f(...) == f.exact(...).round(dtype)`` within 1 ulp. Adversarial inputs
(probabilities at and next to 0 and 1, the clamp, large logits, ±0, ±inf, NaN,
subnormals) are compared with the oracle only, in all four formats.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from lossref import formats
from lossref.torch import nn as lnn
from lossref.torch.nn import functional as LF
from tests.support import assert_close_to_torch, call_torch, from_torch, in_format_of, to_torch

from .support import FORMATS, ulp_errors

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

FUNCTIONS = ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
             "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss"]
MODULES = {"L1Loss": "l1_loss", "MSELoss": "mse_loss", "HuberLoss": "huber_loss",
           "SmoothL1Loss": "smooth_l1_loss", "BCELoss": "binary_cross_entropy",
           "BCEWithLogitsLoss": "binary_cross_entropy_with_logits", "KLDivLoss": "kl_div",
           "PoissonNLLLoss": "poisson_nll_loss"}
K = 8

# (function, options): every option the dialect mirrors; weights are filled in by _inputs
OPTIONS = [
    ("l1_loss", {}), ("l1_loss", {"weight": "full"}),
    ("mse_loss", {}), ("mse_loss", {"weight": "full"}),
    ("huber_loss", {}), ("huber_loss", {"delta": 0.5}), ("huber_loss", {"delta": 2.5, "weight": "full"}),
    ("smooth_l1_loss", {"beta": 0.0}), ("smooth_l1_loss", {"beta": 0.3}), ("smooth_l1_loss", {}),
    ("smooth_l1_loss", {"beta": 2.5}),
    ("binary_cross_entropy", {}), ("binary_cross_entropy", {"weight": "full"}),
    ("binary_cross_entropy", {"weight": "column"}),
    ("binary_cross_entropy_with_logits", {}), ("binary_cross_entropy_with_logits", {"weight": "full"}),
    ("binary_cross_entropy_with_logits", {"pos_weight": "column"}),
    ("binary_cross_entropy_with_logits", {"weight": "column", "pos_weight": "column"}),
    ("kl_div", {}), ("kl_div", {"log_target": True}),
    ("poisson_nll_loss", {}), ("poisson_nll_loss", {"full": True}),
    ("poisson_nll_loss", {"log_input": False}), ("poisson_nll_loss", {"log_input": False, "full": True, "eps": 1e-3}),
]


def _reductions(name):
    return ["none", "mean", "sum"] + (["batchmean"] if name == "kl_div" else [])


def _ids(case):
    name, kw = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


# --- tensors both ways ----------------------------------------------------------------------------


_t, _np, _in = to_torch, from_torch, in_format_of


# --- inputs ---------------------------------------------------------------------------------------


def _inputs(name, kw, fmt, rng, shape=(4, 5)):
    """(input, target, options) of `fmt` for a typical case of `name`."""
    kw = dict(kw)
    if name == "binary_cross_entropy":
        a, b = rng.random(shape), rng.random(shape)
        a.flat[:3], b.flat[:3] = [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]  # the clamp, and 0 log 0
    elif name == "binary_cross_entropy_with_logits":
        a, b = rng.standard_normal(shape) * 4, rng.random(shape)
    elif name == "kl_div":
        z = rng.standard_normal(shape)
        a = z - np.log(np.exp(z).sum(-1, keepdims=True))
        q = np.exp(rng.standard_normal(shape))
        b = q / q.sum(-1, keepdims=True)
        b.flat[0] = 0.0
        if kw.get("log_target"):
            b = np.log(b)
    elif name == "poisson_nll_loss":
        b = rng.poisson(2.0, shape).astype(np.float64)
        a = rng.standard_normal(shape) if kw.get("log_input", True) else rng.random(shape) * 3
    else:
        a, b = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    for k in ("weight", "pos_weight"):
        if kw.get(k) == "full":
            kw[k] = _in(rng.random(shape) + 0.25, fmt)
        elif kw.get(k) == "column":
            kw[k] = _in(rng.random(shape[-1:]) * 2, fmt)
    return _in(a, fmt), _in(b, fmt), kw


def _terms(name, kw, a, b):
    """Per element, the magnitude of the terms the loss is formed from (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "kl_div":
            t = np.exp(b) * (np.abs(b) + np.abs(a)) if kw.get("log_target") else \
                np.abs(b) * (np.abs(np.log(np.where(b > 0, b, 1.0))) + np.abs(a))
        elif name == "binary_cross_entropy_with_logits":
            # torch's form (1 - y) x + (1 + (p - 1) y) softplus(-x) cancels for y near 1, x << 0
            pw = kw.get("pos_weight")
            t = np.abs((1 - b) * a) + np.abs(1 + ((1.0 if pw is None else pw.astype(np.float64)) - 1) * b) * \
                (np.maximum(-a, 0) + np.log1p(np.exp(-np.abs(a))))
        elif name == "poisson_nll_loss":
            eps = kw.get("eps", 1e-8)
            t = np.exp(a) + np.abs(a * b) if kw.get("log_input", True) else \
                np.abs(a) + np.abs(b * np.log(a + eps))
            if kw.get("full"):
                t = t + np.where(b > 1, np.abs(b * np.log(b)) + b + np.abs(np.log(2 * np.pi * b)), 0.0)
        else:
            return 0.0
    w = kw.get("weight")
    return t * (1.0 if w is None else np.abs(w.astype(np.float64)))


def _scale(name, kw, a, b, reduction):
    """The magnitude the error of `reduction` is measured against: per element for
    ``'none'``, else the sum of the terms over the divisor (NaN and inf terms left out)."""
    terms = np.abs(getattr(LF, name)(a, b, **kw, reduction="none").astype(np.float64)) + _terms(name, kw, a, b)
    if reduction == "none":
        return terms
    n = {"sum": 1, "mean": max(a.size, 1), "batchmean": a.shape[0] if a.ndim else 1}[reduction]
    if reduction == "mean" and kw.get("weight") is not None and name in ("l1_loss", "mse_loss"):
        n = float(np.sum(kw["weight"].astype(np.float64)))
    return np.sum(np.where(np.isfinite(terms), terms, 0.0)) / n


def _call_torch(name, a, b, kw):
    return call_torch(getattr(F, name), a, b, **kw)


def _close(ours, theirs, scale, fmt, what):
    assert_close_to_torch(ours, theirs, scale, fmt, K, what)


# --- against torch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", OPTIONS, ids=_ids)
@pytest.mark.parametrize("fmt", FORMATS)
def test_functions_match_torch(case, fmt):
    name, options = case
    rng = np.random.default_rng(FUNCTIONS.index(name))
    a, b, kw = _inputs(name, options, fmt, rng)
    fn = getattr(LF, name)
    for reduction in _reductions(name):
        got = fn(a, b, **kw, reduction=reduction)
        want = _call_torch(name, a, b, {**kw, "reduction": reduction})
        assert got.dtype == want.dtype and got.shape == want.shape, (reduction, got.dtype, want.dtype)
        _close(got, want, _scale(name, kw, a, b, reduction), fmt, f"{name} {options} {reduction} {fmt}")
        if fmt in ("float16", "bfloat16"):  # held to the oracle
            exact = fn.exact(a, b, **kw, reduction=reduction).round(fmt)
            err = ulp_errors(got, exact.astype(np.float64), fmt)
            assert np.all((err <= 1) | np.isnan(got.astype(np.float64))), (reduction, err)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_match_torch(module):
    name = MODULES[module]
    settings = {"HuberLoss": {"delta": 0.5}, "SmoothL1Loss": {"beta": 0.3}, "KLDivLoss": {"log_target": True},
                "PoissonNLLLoss": {"log_input": False, "full": True, "eps": 1e-3},
                "BCEWithLogitsLoss": {"weight": "column", "pos_weight": "column"},
                "BCELoss": {"weight": "column"}}.get(module, {})
    a, b, kw = _inputs(name, settings, "float32", np.random.default_rng(9))
    for reduction in _reductions(name):
        ours = getattr(lnn, module)(**kw, reduction=reduction)
        theirs = getattr(torch.nn, module)(**{k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()},
                                           reduction=reduction)
        got, want = ours(a, b), _np(theirs(_t(a), _t(b)))
        assert got.dtype == want.dtype and got.shape == want.shape
        _close(got, want, _scale(name, kw, a, b, reduction), "float32", module)
        assert np.array_equal(ours.exact(a, b).round(), got, equal_nan=True)


def test_weighted_means_divide_as_torch():
    """l1/mse with a weight divide by Σw; huber with a weight by the element count."""
    x, y, w = np.array([1., 2., 4.]), np.zeros(3), np.array([1., 0., 3.])
    assert LF.l1_loss(x, y, weight=w) == (1 + 12) / 4 == F.l1_loss(_t(x), _t(y), weight=_t(w)).item()
    assert LF.mse_loss(x, y, weight=w) == (1 + 48) / 4 == F.mse_loss(_t(x), _t(y), weight=_t(w)).item()
    h = LF.huber_loss(x, y, weight=w, delta=1.0)
    assert h == (0.5 + 3 * 3.5) / 3 == F.huber_loss(_t(x), _t(y), weight=_t(w)).item()
    # an all-zero weight: 0/0
    assert np.isnan(LF.l1_loss(x, y, weight=np.zeros(3)))


def test_smooth_l1_is_huber_over_beta():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(50) * 3, rng.standard_normal(50)
    for beta in (0.25, 1.0, 3.0):
        np.testing.assert_allclose(LF.huber_loss(x, y, delta=beta, reduction="none"),
                                   beta * LF.smooth_l1_loss(x, y, beta=beta, reduction="none"), rtol=4e-16)
    assert np.array_equal(LF.smooth_l1_loss(x, y, beta=0.0, reduction="none"), LF.l1_loss(x, y, reduction="none"))


def test_bce_log_clamp():
    """Each log is clamped at -100: x = 0, y = 1 gives 100; y = 1/2 gives 50; 0 log 0 = 0."""
    x, y = np.array([0., 1., 0., 0., 1.], np.float32), np.array([1., 0., 0.5, 0., 1.], np.float32)
    got = LF.binary_cross_entropy(x, y, reduction="none")
    assert got.tolist() == [100., 100., 50., 0., 0.]
    assert got.tolist() == _np(F.binary_cross_entropy(_t(x), _t(y), reduction="none")).tolist()
    assert LF.binary_cross_entropy.exact(x, y, reduction="none").decimal(5).tolist() == \
        ["1.0000e+2", "1.0000e+2", "5.0000e+1", "0", "0"]


def test_kl_batchmean_divides_by_the_first_dimension():
    rng = np.random.default_rng(2)
    for shape in [(5,), (3, 4), (2, 3, 4, 4)]:
        x, y = np.log(rng.random(shape)), rng.random(shape)
        want = F.kl_div(_t(x), _t(y), reduction="batchmean").item()
        assert LF.kl_div(x, y, reduction="batchmean") == pytest.approx(want, rel=1e-14)
        assert LF.kl_div(x, y, reduction="batchmean") == pytest.approx(LF.kl_div(x, y, reduction="sum") / shape[0],
                                                                       rel=1e-15)
    # input (3,) against target (2, 3): torch divides by input.size(0) = 3
    x, y = np.zeros(3), np.full((2, 3), 0.5)
    assert LF.kl_div(x, y, reduction="batchmean") == pytest.approx(F.kl_div(_t(x), _t(y), reduction="batchmean").item())
    # a 0-d input is not divided
    assert LF.kl_div(np.float64(-1.0), np.float64(0.5), reduction="batchmean") == \
        pytest.approx(F.kl_div(torch.tensor(-1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64),
                               reduction="batchmean").item())


@pytest.mark.parametrize("name", FUNCTIONS)
def test_empty_inputs(name):
    """'mean' of nothing is NaN (0/0), 'sum' is 0, as in torch."""
    e = np.zeros((0, 3), np.float32)
    for reduction in _reductions(name):
        got = getattr(LF, name)(e, e, reduction=reduction)
        want = _call_torch(name, e, e, {"reduction": reduction})
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=True), (reduction, got, want)


# --- arguments, dtypes and errors ----------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_defaults_equal_torch(module):
    """(Signatures: tests/test_torch_completeness.py.)"""
    ours, theirs = getattr(lnn, module), getattr(torch.nn, module)
    obj = ours()
    assert obj.reduction == theirs().reduction == "mean"
    for attr in ("delta", "beta", "weight", "pos_weight", "log_target", "log_input", "full", "eps"):
        if hasattr(theirs(), attr):
            assert getattr(obj, attr) == getattr(theirs(), attr)


def test_import_does_not_import_torch():
    code = "import sys, lossref.torch, lossref.torch.nn.functional; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_positional_and_keyword_arguments():
    x, y = np.array([0.2, 0.9]), np.array([0.0, 1.0])
    assert LF.smooth_l1_loss(x, y, None, None, "sum", 0.5) == LF.smooth_l1_loss(input=x, target=y, reduction="sum",
                                                                                 beta=0.5)
    with pytest.raises(TypeError, match="multiple values"):
        LF.l1_loss(x, y, None, None, "sum", reduction="mean")


@pytest.mark.parametrize("size_average", [None, True, False])
@pytest.mark.parametrize("reduce", [None, True, False])
def test_legacy_arguments_map_as_torch(size_average, reduce):
    x, y = np.log(np.array([[0.2, 0.8], [0.6, 0.4]])), np.array([[0.3, 0.7], [0.5, 0.5]])
    p = np.exp(x)
    cases = [("l1_loss", x, y, {}), ("mse_loss", x, y, {}), ("smooth_l1_loss", x, y, {}),
             ("binary_cross_entropy", p, y, {}), ("binary_cross_entropy_with_logits", x, y, {}),
             ("kl_div", x, y, {}), ("kl_div", x, y, {"reduction": "batchmean"}), ("poisson_nll_loss", x, y, {})]
    for name, a, b, kw in cases:
        kw = {**kw, "size_average": size_average, "reduce": reduce}
        got, want = getattr(LF, name)(a, b, **kw), _call_torch(name, a, b, kw)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=f"{name} {kw}")
    for module in ("L1Loss", "BCEWithLogitsLoss", "KLDivLoss"):
        ours = getattr(lnn, module)(size_average=size_average, reduce=reduce)
        assert ours.reduction == getattr(torch.nn, module)(size_average=size_average, reduce=reduce).reduction


DTYPES = ["float16", "bfloat16", "float32", "float64", "int64"]


def _array(dtype, shape=(2, 3), value=0.5):
    return np.full(shape, value if dtype != "int64" else 1).astype(formats.get_format(dtype).dtype
                                                                   if dtype != "int64" else np.int64)


@pytest.mark.parametrize("name, kw", [(f, {}) for f in FUNCTIONS] + [
    ("poisson_nll_loss", {"log_input": False}), ("poisson_nll_loss", {"full": True}),
    ("poisson_nll_loss", {"log_input": False, "full": True})], ids=lambda v: v if isinstance(v, str) else
    "-".join(f"{k}={x}" for k, x in v.items()))
def test_result_dtypes_follow_torch(name, kw):
    """Every pair of input and target dtypes (and a 0-d operand): torch's result dtype, or
    an error where torch raises (RuntimeError or its subclass NotImplementedError)."""
    shapes = [((2, 3), (2, 3)), ((), (2, 3)), ((2, 3), ())]
    if name.startswith("binary_cross_entropy"):
        shapes = shapes[:1]
    for sa, sb in shapes:
        for da in DTYPES:
            for db in DTYPES:
                a, b = _array(da, sa), _array(db, sb)
                try:
                    want = getattr(F, name)(_t(a), _t(b), **kw).dtype
                except RuntimeError:
                    with pytest.raises(RuntimeError):
                        getattr(LF, name)(a, b, **kw)
                    continue
                got = getattr(LF, name)(a, b, **kw).dtype
                assert str(got) == str(want).replace("torch.", ""), (name, da, db, sa, sb)


def test_weight_dtypes_follow_torch():
    x32 = np.full((2, 3), 0.5, np.float32)
    for name in ("l1_loss", "mse_loss", "huber_loss"):
        for w in (x32.astype(np.float64), x32.astype(np.float16)):
            assert getattr(LF, name)(x32, x32, weight=w).dtype == \
                _np(getattr(F, name)(_t(x32), _t(x32), weight=_t(w))).dtype
    w64 = x32.astype(np.float64)
    assert LF.binary_cross_entropy(x32, x32, weight=w64).dtype == np.float32
    assert LF.binary_cross_entropy_with_logits(x32, x32, weight=w64, pos_weight=w64).dtype == np.float32


def _same_error(thunk_ours, thunk_torch):
    try:
        thunk_torch()
    except Exception as e:  # noqa: BLE001 - the point is torch's exception type
        kind = RuntimeError if isinstance(e, RuntimeError) else type(e)
    else:
        raise AssertionError("torch raised nothing")
    with pytest.raises(kind):
        thunk_ours()


ERRORS = [
    ("invalid reduction", "l1_loss", (0.5, 0.5), {"reduction": "bad"}),
    ("invalid reduction, weighted", "mse_loss", (0.5, 0.5), {"reduction": "bad", "weight": "like"}),
    ("batchmean outside kl_div", "huber_loss", (0.5, 0.5), {"reduction": "batchmean"}),
    ("reduction None", "binary_cross_entropy", (0.5, 0.5), {"reduction": None}),
    ("invalid reduction", "binary_cross_entropy_with_logits", (0.5, 0.5), {"reduction": "avg"}),
    ("invalid reduction", "kl_div", (0.5, 0.5), {"reduction": "bad"}),
    ("invalid reduction", "poisson_nll_loss", (0.5, 0.5), {"reduction": "elementwise_mean"}),
    ("invalid reduction", "smooth_l1_loss", (0.5, 0.5), {"reduction": "MEAN"}),
    ("input above 1", "binary_cross_entropy", (1.5, 0.5), {}),
    ("input below 0", "binary_cross_entropy", (-0.0001, 0.5), {}),
    ("input NaN", "binary_cross_entropy", (np.nan, 0.5), {}),
    ("target above 1", "binary_cross_entropy", (0.5, 2.0), {}),
    ("size mismatch", "binary_cross_entropy", ((2, 3), (3,)), {}),
    ("size mismatch", "binary_cross_entropy_with_logits", ((2, 3), (3,)), {}),
    ("no broadcast", "l1_loss", ((2, 3), (4,)), {}),
    ("no broadcast", "kl_div", ((2, 3), (4,)), {}),
    ("no broadcast", "poisson_nll_loss", ((2, 3), (4,)), {}),
    ("weight of another size", "l1_loss", (0.5, 0.5), {"weight": (3,)}),
    ("weight of another size", "huber_loss", (0.5, 0.5), {"weight": (3,)}),
    ("weight widens the loss", "binary_cross_entropy", (0.5, 0.5), {"weight": (2, 1, 3)}),
    ("pos_weight not broadcasting", "binary_cross_entropy_with_logits", (0.5, 0.5), {"pos_weight": (4,)}),
    ("delta 0", "huber_loss", (0.5, 0.5), {"delta": 0.0}),
    ("beta < 0", "smooth_l1_loss", (0.5, 0.5), {"beta": -1.0}),
]


@pytest.mark.parametrize("what, name, values, kw", ERRORS, ids=[f"{e[1]}: {e[0]}" for e in ERRORS])
def test_errors_have_torch_types(what, name, values, kw):
    if isinstance(values[0], tuple):
        a, b = np.full(values[0], 0.5), np.full(values[1], 0.5)
    else:
        a, b = np.full((2, 3), values[0]), np.full((2, 3), values[1])
    kw = {k: (a.copy() if v == "like" else np.ones(v)) if k in ("weight", "pos_weight") else v for k, v in kw.items()}
    _same_error(lambda: getattr(LF, name)(a, b, **kw), lambda: _call_torch(name, a, b, kw))


def test_errors_are_also_lossref_errors():
    """torch's RuntimeErrors are ValueError/TypeError as lossref's contract says."""
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        LF.l1_loss(np.zeros(2), np.zeros(2), reduction="bad")
    with pytest.raises(ValueError, match="between 0 and 1"):
        LF.binary_cross_entropy(np.array([1.5]), np.array([1.0]))
    with pytest.raises(TypeError, match="float"):
        LF.binary_cross_entropy(np.array([1], np.int64), np.array([1], np.int64))
    with pytest.raises(TypeError, match="delta must be a real number"):
        LF.huber_loss(np.zeros(2), np.zeros(2), delta="1")
    with pytest.raises(TypeError, match="log_target must be True or False"):
        LF.kl_div(np.zeros(2), np.zeros(2), log_target="yes")
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        lnn.MSELoss(reduction="bad")(np.zeros(2), np.zeros(2))  # reported at the call, as torch


def test_warnings_as_torch():
    with pytest.warns(UserWarning, match="different to the input size"):
        LF.mse_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.warns(UserWarning, match="batchmean"):
        LF.kl_div(np.zeros(3), np.full(3, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LF.kl_div(np.zeros(3), np.full(3, 0.5), reduction="batchmean")
        LF.l1_loss(np.zeros(3), np.zeros(3), size_average=False)  # legacy: mapped without a warning
    # (3, 1) against (3,): a 3 x 3 loss, as in torch
    assert LF.l1_loss(np.zeros((3, 1)), np.arange(3.0), reduction="none").shape == (3, 3)


def test_lists_are_float32_tensors():
    got = LF.mse_loss([0.1, 0.2], [0.0, 0.0])
    assert got.dtype == np.float32
    # the exact (0.1f² + 0.2f²)/2 rounded once; torch rounds each step in float32: 1 ulp apart
    assert got == LF.mse_loss.exact(np.float32([0.1, 0.2]), np.float32([0, 0])).round()
    _close(got, F.mse_loss(torch.as_tensor([0.1, 0.2]), torch.as_tensor([0., 0.])).item(), 0.0, "float32", "list")


# --- reference against oracle, adversarial -----------------------------------------------------------


def _adversarial(name, fmt, kw):
    """(input, target) of `fmt` at the edges of `name`'s domain."""
    f = formats.get_format(fmt)
    sub, tiny, big, eps = f.min_subnormal, f.tiny, f.max, f.eps
    inf, nan = np.inf, np.nan
    if name == "binary_cross_entropy":
        # 0 and 1, next to them, subnormal; log p below -100 (the clamp) where the format has it
        x = [0.0, 1.0, 0.0, 1.0, sub, 1 - eps / 2, eps, 1 - eps, tiny, 0.5, 2.0 ** -150 if fmt == "float64" else sub,
             -0.0, 1e-44 if fmt == "float64" else sub, 0.3]
        y = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 0.5, 1.0, 1.0, 0.25, 0.0]
    elif name == "binary_cross_entropy_with_logits":
        x = [0.0, -0.0, 30.0, -30.0, 1e4 if fmt != "float16" else 6e4, -big, big, inf, -inf, inf, nan, sub, -100.0, 88.0]
        y = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.25]
    elif name == "kl_div":
        if kw.get("log_target"):
            x = [0.0, -0.0, -1.0, -inf, -1.0, nan, -big, -sub, -20.0, 1.0, -3.0, 2.0]
            y = [0.0, -inf, -1.0 + eps, -1.0, -inf, -1.0, -2.0, -sub, -20.0, -big, inf, 0.5]
        else:
            x = [0.0, -0.0, -1.0, -inf, -inf, nan, -big, -sub, -20.0, -1e-3, -0.5, 3.0]
            y = [0.0, 0.0, 0.5, 0.0, 0.5, 0.0, tiny, sub, 1.0, 1.0, -0.5, inf]
    elif name == "poisson_nll_loss":
        if kw.get("log_input", True):
            x = [0.0, -0.0, -inf, inf, 1.0, -big, 20.0, sub, nan, -1.0, 5.0, 2.0]
            y = [0.0, 1.0, 0.0, 1.0, np.e, 0.0, 3.0, 1.0, 1.0, -2.0, 1e3 if fmt != "float16" else 1e2, 1.0 + eps]
        else:
            x = [0.0, 0.0, 1.0, sub, big, inf, 1e-8 if fmt == "float64" else tiny, 2.0, nan, 0.5, 1.0 - eps / 2, 3.0]
            y = [0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.15, 1.0, inf]
    else:  # regression: residuals of every size, signed zeros, overflow, specials
        x = [0.0, -0.0, sub, 1.0, 1.0 + eps, big, -big, inf, -inf, nan, 0.5, tiny, 3.0, -2.0]
        y = [-0.0, 0.0, 0.0, 1.0 + eps, 1.0, -big, big, 1.0, inf, 0.0, 0.5 + eps / 4, 0.0, 0.0, -2.0]
    return _in(x, fmt), _in(y, fmt)


ADVERSARIAL = [c for c in OPTIONS if not isinstance(c[1].get("weight"), str) and
               not isinstance(c[1].get("pos_weight"), str)] + \
    [("binary_cross_entropy_with_logits", {"pos_weight": 3.0})]
#: where the terms can cancel the float64 reference is held to K u Σ|terms| (the page's bound)
MIXED_BOUND = ("kl_div", "poisson_nll_loss")


@pytest.mark.parametrize("case", ADVERSARIAL, ids=_ids)
@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_against_oracle_on_adversarial_inputs(case, fmt):
    name, options = case
    a, b = _adversarial(name, fmt, options)
    kw = dict(options)
    if "pos_weight" in kw:
        kw["pos_weight"] = _in(np.full(a.shape, kw["pos_weight"]), fmt)
    fn = getattr(LF, name)
    for reduction in _reductions(name):
        got = fn(a, b, reduction=reduction, **kw)
        exact = fn.exact(a, b, reduction=reduction, **kw)
        want = exact.round(fmt)
        err = ulp_errors(got, exact.values(exact.final_prec), fmt)
        budget = 1 if fmt != "float64" or reduction != "none" and name not in MIXED_BOUND else 4
        ok = err <= budget
        if fmt == "float64" and name in MIXED_BOUND:
            terms = np.abs(fn(a, b, reduction="none", **kw)) + _terms(name, kw, a, b)
            scale = terms if reduction == "none" else np.nansum(np.where(np.isfinite(terms), terms, 0.0))
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            ok |= diff <= K * 2.0 ** -53 * scale
        assert np.all(ok), f"{name} {options} {reduction} {fmt}: got {got[~ok] if got.ndim else got}, " \
                           f"exact {want[~ok] if want.ndim else want}, ulps {err[~ok] if err.ndim else err}"
