"""The PyTorch dialect's classification losses against PyTorch 2.13 and the oracle.

Covered, every function under ``'none'``, ``'mean'`` and ``'sum'`` and through its module:

* ``nll_loss``: (N, C) and (N, C, d1, d2) inputs, ``weight``, ``ignore_index`` the default
  -100 and inside [0, C), 1-D input with a 0-d target, uint8 targets;
* ``cross_entropy`` with class indices: the same options plus ``label_smoothing`` (alone,
  and with ``weight`` and ``ignore_index``); with class probabilities: (N, C) and
  (N, C, d1, d2), ``weight``, ``label_smoothing``, a float64 target of a float32 input;
* ``multilabel_soft_margin_loss``: (N, C) and (N, d, C), ``weight``;
* ``soft_margin_loss``, ``hinge_embedding_loss`` (``margin`` 1 and 0.3, targets ±1 and 0,
  broadcasting); ``multi_margin_loss`` (``p`` 1 and 2, ``margin``, ``weight``, 1-D input);
  ``multilabel_margin_loss`` (lists ended by -1, empty lists, 1-D input).

Against torch (float32, float64): ``|ours - torch| <= K u (|ours| + cond)`` with ``cond``
the magnitude of the summed terms over the divisor. float16 and bfloat16 are held to the
oracle (``f(...)`` within 1 ulp of ``f.exact(...).round(dtype)``), and to torch's dtype and
shape where torch's CPU kernels take them (not the margin losses: a CUDA-only finding).
Errors have torch's types; signatures equal torch's; adversarial inputs (logits of ±1e4
and at the top of the format, -inf logits where torch defines a result, NaN in ignored
rows, all targets ignored, scores at the margin) meet the oracle within budget.
"""

from __future__ import annotations


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

K = 8
FUNCTIONS = ["nll_loss", "cross_entropy", "multilabel_soft_margin_loss", "soft_margin_loss",
             "hinge_embedding_loss", "multi_margin_loss", "multilabel_margin_loss"]
MODULES = {"NLLLoss": "nll_loss", "CrossEntropyLoss": "cross_entropy",
           "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss", "SoftMarginLoss": "soft_margin_loss",
           "HingeEmbeddingLoss": "hinge_embedding_loss", "MultiMarginLoss": "multi_margin_loss",
           "MultiLabelMarginLoss": "multilabel_margin_loss"}
#: torch's CPU kernels refuse float16 and bfloat16 for these (CUDA takes them)
CPU_FLOAT_ONLY = ("multi_margin_loss", "multilabel_margin_loss")

# (function, layout, options); "w" stands for a weight of C random entries
CASES = [
    ("nll_loss", "2d", {}), ("nll_loss", "2d", {"weight": "w"}), ("nll_loss", "4d", {"weight": "w"}),
    ("nll_loss", "2d", {"ignore_index": 1}), ("nll_loss", "4d", {"weight": "w", "ignore_index": 0}),
    ("nll_loss", "1d", {}), ("nll_loss", "uint8", {"weight": "w"}),
    ("cross_entropy", "2d", {}), ("cross_entropy", "4d", {"weight": "w"}),
    ("cross_entropy", "2d", {"ignore_index": 2, "weight": "w"}), ("cross_entropy", "1d", {}),
    ("cross_entropy", "2d", {"label_smoothing": 0.1}),
    ("cross_entropy", "4d", {"label_smoothing": 0.3, "weight": "w", "ignore_index": 1}),
    ("cross_entropy", "prob2d", {}), ("cross_entropy", "prob4d", {"weight": "w"}),
    ("cross_entropy", "prob2d", {"label_smoothing": 0.2, "weight": "w"}),
    ("multilabel_soft_margin_loss", "2d", {}), ("multilabel_soft_margin_loss", "2d", {"weight": "w"}),
    ("multilabel_soft_margin_loss", "3d", {"weight": "w"}),
    ("soft_margin_loss", "2d", {}), ("soft_margin_loss", "bcast", {}),
    ("hinge_embedding_loss", "2d", {}), ("hinge_embedding_loss", "2d", {"margin": 0.3}),
    ("multi_margin_loss", "2d", {}), ("multi_margin_loss", "2d", {"p": 2, "margin": 0.7}),
    ("multi_margin_loss", "2d", {"weight": "w", "margin": 1.3}), ("multi_margin_loss", "1d", {"p": 2}),
    ("multilabel_margin_loss", "2d", {}), ("multilabel_margin_loss", "1d", {}),
]


def _ids(case):
    return case[0] + "-" + case[1] + "".join(f"-{k}={v}" for k, v in case[2].items())


# --- tensors both ways ------------------------------------------------------------------------------


_t, _np, _in = to_torch, from_torch, in_format_of


def _inputs(name, layout, options, fmt, rng, n=5, c=4):
    """(input, target, options) of `fmt` for a typical case."""
    shape = {"1d": (c,), "4d": (n, c, 2, 3), "prob4d": (n, c, 2, 3), "3d": (n, 2, c)}.get(layout, (n, c))
    x = rng.standard_normal(shape) * 2
    kw = dict(options)
    if kw.get("weight") == "w":
        kw["weight"] = _in(rng.random(c) + 0.25, fmt)
    if name in ("nll_loss", "cross_entropy") and not layout.startswith("prob"):
        if name == "nll_loss":  # log-probabilities
            x = x - np.log(np.exp(x).sum(-1 if layout == "1d" else 1, keepdims=True))
        t = rng.integers(0, c, () if layout == "1d" else shape[:1] + shape[2:])
        if t.ndim and layout != "uint8":
            t.flat[0] = kw.get("ignore_index", -100)
            t.flat[1] = kw.get("ignore_index", t.flat[1])
        t = t.astype(np.uint8) if layout == "uint8" else t
    elif layout.startswith("prob"):
        q = np.exp(rng.standard_normal(shape))
        t = _in(q / q.sum(1, keepdims=True), fmt)
        t.flat[0] = 0
    elif name == "multilabel_soft_margin_loss":
        t = _in(rng.random(shape), fmt)
        t.flat[:2] = [0, 1]
    elif name == "soft_margin_loss":
        t = rng.choice([-1.0, 1.0], shape[:1] + (1,) if layout == "bcast" else shape)
    elif name == "hinge_embedding_loss":
        t = rng.choice([-1.0, 1.0, 0.0], shape, p=[0.45, 0.45, 0.1])
    elif name == "multi_margin_loss":
        t = rng.integers(0, c, shape[:-1] if len(shape) > 1 else ())
    else:  # multilabel_margin_loss: lists of labels ended by -1
        t = np.argsort(rng.random(shape), -1)
        length = rng.integers(0, c + 1, shape[:-1] + (1,))
        t = np.where(np.arange(c) < length, t, -1)
        if t.ndim == 2:
            t[0], t[1, 1] = -1, -1
    t = _in(t, fmt) if isinstance(t, np.ndarray) and t.dtype.kind == "f" else t
    return _in(x, fmt), t, kw


def _torch(name, a, b, kw):
    return call_torch(getattr(F, name), a, b, **kw)


def _close(ours, theirs, scale, fmt, what):
    assert_close_to_torch(ours, theirs, scale, fmt, K, what)


def _terms(name, a, b, kw):
    """Per loss value, the magnitude torch's own roundoff is relative to: ``log Σ exp`` is
    formed near 1 and ``x - max`` from the logits (cross-entropy), ``max(0, m - x) + x``
    cancels (hinge embedding); 0 elsewhere."""
    a = a.astype(np.float64)
    if name == "cross_entropy":
        axis = 1 if a.ndim > 1 else 0
        w = 1.0 if kw.get("weight") is None else np.max(np.abs(kw["weight"].astype(np.float64)))
        return w * (1 + np.ptp(a, axis=axis))
    if name == "hinge_embedding_loss":
        return np.abs(a) + abs(kw.get("margin", 1.0))
    return 0.0


def _scale(fn, a, b, kw, reduction, result):
    """The terms of :func:`_terms` for ``'none'``; for a reduction its condition,
    ``|result| Σ(|ℓ| + terms) / |Σ ℓ|`` (the 'none' values are ℓ)."""
    terms = _terms(fn.__name__, a, b, kw)
    if reduction == "none":
        return terms
    values = fn(a, b, **kw, reduction="none").astype(np.float64)
    total = abs(np.sum(values))
    return abs(float(result)) * np.sum(np.abs(values) + terms) / total if total else 0.0


# --- against torch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("fmt", FORMATS)
def test_functions_match_torch(case, fmt):
    name, layout, options = case
    a, b, kw = _inputs(name, layout, options, fmt, np.random.default_rng(CASES.index(case)))
    fn = getattr(LF, name)
    narrow = fmt in ("float16", "bfloat16")
    for reduction in ("none", "mean", "sum"):
        got = fn(a, b, **kw, reduction=reduction)
        if not (narrow and name in CPU_FLOAT_ONLY):
            want = _torch(name, a, b, {**kw, "reduction": reduction})
            assert got.dtype == want.dtype and got.shape == want.shape, (reduction, got.dtype, want.dtype)
            if not narrow:
                _close(got, want, _scale(fn, a, b, kw, reduction, got), fmt, f"{case} {reduction} {fmt}")
        if narrow:  # held to the oracle
            exact = fn.exact(a, b, **kw, reduction=reduction).round(fmt)
            err = ulp_errors(got, exact.astype(np.float64), fmt)
            assert np.all(err <= 1), (reduction, err)


def test_probability_target_dtype_promotes():
    rng = np.random.default_rng(1)
    a, b, _ = _inputs("cross_entropy", "prob2d", {}, "float32", rng)
    for target in (b.astype(np.float64), b.astype(np.float16)):
        got, want = LF.cross_entropy(a, target), _torch("cross_entropy", a, target, {})
        assert got.dtype == want.dtype
        _close(got, want, 0.0, "float32", "promoted")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_match_torch(module):
    name = MODULES[module]
    case = next(c for c in reversed(CASES) if c[0] == name and c[1] not in ("1d", "uint8", "bcast"))
    a, b, kw = _inputs(name, case[1], case[2], "float32", np.random.default_rng(3))
    for reduction in ("none", "mean", "sum"):
        ours = getattr(lnn, module)(**kw, reduction=reduction)
        theirs = getattr(torch.nn, module)(**{k: _t(v) if isinstance(v, np.ndarray) else v
                                              for k, v in kw.items()}, reduction=reduction)
        got, want = ours(a, b), _np(theirs(_t(a), _t(b)))
        assert got.dtype == want.dtype and got.shape == want.shape
        _close(got, want, _scale(getattr(LF, name), a, b, kw, reduction, got), "float32", module)
        assert np.array_equal(ours.exact(a, b).round(), got, equal_nan=True)
    legacy = getattr(lnn, module)(size_average=False)  # legacy arguments: 'sum'
    assert legacy.reduction == "sum"


def test_weighted_means_divide_as_torch():
    """Index targets divide by the weights of the counted targets; probability targets
    by the number of positions, whatever the weights."""
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    w = np.array([2.0, 1.0, 4.0])
    idx = np.array([0, 2])
    assert LF.nll_loss(x, idx, weight=w) == pytest.approx(-(2 * x[0, 0] + 4 * x[1, 2]) / 6, rel=1e-15)
    assert LF.nll_loss(x, idx, weight=w, ignore_index=2) == pytest.approx(-x[0, 0], rel=1e-15)
    onehot = np.eye(3)[idx]
    ce = LF.cross_entropy(x, onehot, weight=w)  # x holds log-probabilities: softmax keeps them
    assert ce == pytest.approx(-(2 * x[0, 0] + 4 * x[1, 2]) / 2, rel=1e-14)


def test_all_ignored_is_nan_under_mean():
    x = np.zeros((2, 3), np.float32)
    t = np.array([-100, -100])
    for fn in (LF.nll_loss, LF.cross_entropy):
        for kw in ({}, {"label_smoothing": 0.1}) if fn is LF.cross_entropy else ({},):
            assert np.isnan(fn(x, t, **kw)) and np.isnan(float(fn.exact(x, t, **kw).round()))
            assert fn(x, t, reduction="sum", **kw) == 0
            assert np.isnan(_torch(fn.__name__, x, t, kw))


# --- arguments, dtypes and errors ---------------------------------------------------------------


_X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
_I = np.array([0, 1, 3])
ERRORS = [
    ("nll_loss", _X, np.array([0, 1, 4]), {}),  # target out of range
    ("nll_loss", _X, np.array([0, -1, 2]), {}),
    ("cross_entropy", _X, np.array([0, 1, 4]), {"label_smoothing": 0.1}),
    ("nll_loss", _X, np.array([0, 1, 2]), {"ignore_index": 0, "reduction": "avg"}),
    ("cross_entropy", _X, _I, {"reduction": "foo"}),
    ("nll_loss", _X, np.array([0, 1]), {}),  # batch size
    ("cross_entropy", np.zeros((2, 3, 4, 5), np.float32), np.zeros((2, 4, 4), np.int64), {}),
    ("nll_loss", _X, _I.astype(np.int32), {}),
    ("cross_entropy", _X, np.zeros(3, np.float32), {}),
    ("cross_entropy", _X.astype(np.int64), _I, {}),
    ("nll_loss", np.float32(1.0), np.int64(0), {}),
    ("nll_loss", _X, _I, {"weight": np.ones(3, np.float32)}),
    ("nll_loss", _X, _I, {"weight": np.ones(4)}),  # float64 weight of a float32 input
    ("cross_entropy", _X, _I, {"label_smoothing": 1.5}),
    ("cross_entropy", _X, np.ones((3, 4), np.float32), {"label_smoothing": 1.01}),
    ("cross_entropy", _X, np.ones((3, 4), np.float32), {"ignore_index": 0}),
    ("cross_entropy", _X, np.ones((3, 4), np.int64), {}),
    ("multilabel_soft_margin_loss", _X, np.ones((3, 4), np.float32), {"weight": np.ones(3, np.float32)}),
    ("multilabel_soft_margin_loss", _X.astype(np.int64), np.ones((3, 4), np.float32), {}),
    ("multilabel_soft_margin_loss", _X, np.ones((3, 4), np.float32), {"reduction": "x"}),
    ("soft_margin_loss", _X, np.ones((2, 4), np.float32), {}),
    ("soft_margin_loss", _X, np.ones((3, 4), np.float32), {"reduction": "x"}),
    ("hinge_embedding_loss", _X, np.ones((3, 4), np.float32), {"reduction": None}),
    ("multi_margin_loss", _X, _I, {"p": 3}),
    ("multi_margin_loss", _X, np.array([0, 1, 4]), {}),
    ("multi_margin_loss", _X, np.array([0, 1]), {}),
    ("multi_margin_loss", _X, _I.astype(np.int32), {}),
    ("multi_margin_loss", _X, _I, {"weight": np.ones(3, np.float32)}),
    ("multi_margin_loss", _X, _I, {"weight": np.ones((1, 4), np.float32)}),
    ("multi_margin_loss", np.zeros((2, 3, 4), np.float32), np.zeros((2, 3), np.int64), {}),
    ("multilabel_margin_loss", _X, np.full((3, 4), 4), {}),
    ("multilabel_margin_loss", _X, np.full((3, 4), -2), {}),
    ("multilabel_margin_loss", _X, np.zeros((3, 3), np.int64), {}),
    ("multilabel_margin_loss", _X, np.zeros((3, 4), np.int32), {}),
]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c if isinstance(c, str) else None)
def test_errors_have_torch_types(case):
    name, a, b, kw = case
    tk = {k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    with pytest.raises(Exception) as theirs:
        getattr(F, name)(_t(a), _t(b), **tk)
    # torch's NotImplementedError for a dtype is the dialect's TorchDtypeError (a RuntimeError)
    expected = RuntimeError if theirs.type is NotImplementedError else theirs.type
    with pytest.raises(expected) as ours:
        getattr(LF, name)(a, b, **kw)
    assert isinstance(ours.value, (ValueError, TypeError))  # lossref's contract too


def test_negative_label_smoothing_is_ignored_as_in_torch():
    for target in (_I, np.full((3, 4), 0.25, np.float32)):
        got = LF.cross_entropy(_X, target, label_smoothing=-0.1)
        assert got == LF.cross_entropy(_X, target)
        _close(got, _torch("cross_entropy", _X, target, {"label_smoothing": -0.1}), 0.0, "float32", "smoothing")


def test_margin_rounds_to_the_input_dtype():
    x, y = np.array([0.05], np.float16), np.array([-1.0], np.float16)
    got = LF.hinge_embedding_loss(x, y, margin=0.1)
    assert got == _torch("hinge_embedding_loss", x, y, {"margin": 0.1})
    assert got == np.float16(np.float16(0.1) - np.float16(0.05))


# --- the reference against the oracle ----------------------------------------------------------


def _adversarial(name, fmt):
    f = formats.get_format(fmt)
    big, inf, nan = f.max, np.inf, np.nan
    large = 1e4 if fmt != "float16" else 6e4
    if name in ("nll_loss", "cross_entropy"):
        x = [[large, 0.0, -large, 1.0], [-inf, 0.0, 1.0, 2.0], [0.0, -inf, 1.0, 2.0], [big, big, -1.0, 0.0],
             [nan, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0], [-big, 0.0, 30.0, -30.0]]
        t = np.array([2, 2, 1, 1, -100, 3, 0])
        return _in(x, fmt), t, [{}, {"weight": _in([0.5, 1.0, 2.0, 0.25], fmt)}]
    if name == "multilabel_soft_margin_loss":
        x = [[large, -large, 0.0, 30.0], [-big, big, -30.0, 1e-3], [inf, -inf, 1.0, 2.0]]
        return _in(x, fmt), _in([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.5, 0.25]], fmt), [{}]
    if name in ("soft_margin_loss", "hinge_embedding_loss"):
        x = [large, -large, 0.0, -0.0, 1.0, 30.0, -30.0, inf, -inf, nan, f.min_subnormal, big]
        y = [1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 0.0]
        return _in(x, fmt), _in(y, fmt), [{}] + ([{"margin": 0.3}] if name == "hinge_embedding_loss" else [])
    x = [[1.0, 0.0, 0.5, 1.0 - f.eps], [large, -large, 0.0, large], [big, -big, 0.0, 1.0], [2.0, 1.0, 1.0, 1.0]]
    if name == "multi_margin_loss":
        return _in(x, fmt), np.array([0, 1, 0, 0]), [{}, {"p": 2}]
    return _in(x, fmt), np.array([[0, -1, 1, 2], [0, 3, -1, -1], [-1, 0, 0, 0], [0, 0, -1, 1]]), [{}]


ADVERSARIAL = ["nll_loss", "cross_entropy", "multilabel_soft_margin_loss", "soft_margin_loss",
               "hinge_embedding_loss", "multi_margin_loss", "multilabel_margin_loss"]


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_against_oracle_on_adversarial_inputs(name, fmt):
    a, b, variants = _adversarial(name, fmt)
    fn = getattr(LF, name)
    for kw in variants + ([{"label_smoothing": 0.2}] if name == "cross_entropy" else []):
        for reduction in ("none", "mean", "sum"):
            got = fn(a, b, reduction=reduction, **kw)
            exact = fn.exact(a, b, reduction=reduction, **kw)
            exact.round(fmt)
            err = ulp_errors(got, exact.values(exact.final_prec), fmt)
            budget = 4 if fmt == "float64" and reduction == "none" else 1
            assert np.all(err <= budget), f"{name} {kw} {reduction} {fmt}: {got} ulps {err}"


def test_torch_defines_the_adversarial_index_cases():
    """Where torch defines a result (indices; -inf off the target), it agrees with the oracle."""
    a, b, _ = _adversarial("cross_entropy", "float32")
    keep = ~np.isnan(a).any(1) & (np.abs(a) < 1e30).all(1)
    for name in ("nll_loss", "cross_entropy"):
        got = getattr(LF, name)(a[keep], b[keep], reduction="none")
        _close(got, _torch(name, a[keep], b[keep], {"reduction": "none"}), 0.0, "float32", name)
