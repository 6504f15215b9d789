"""``lossref.torch.nn.functional.ctc_loss`` and ``lossref.torch.nn.CTCLoss`` against
PyTorch 2.13 and the oracle.

Covered: every reduction, padded (N, S) and concatenated 1-D targets, ``blank`` 0 and
inside the classes, ``zero_infinity``, infeasible alignments (+inf), empty targets (the
``'mean'`` divisor clamped at 1), unnormalised scores (used as given), unbatched (T, C)
input, lengths as integer arrays, tuples and lists, float32 and float64 within a few
ulps of torch (whose float32 forward accumulates roundings over the T steps); torch's
errors (float16/bfloat16/int input, blank out of range, lengths past T or S, negative
lengths, wrong sizes) and lossref's refusals (a label equal to the blank or outside the
classes); the reference against the oracle on adversarial inputs (very negative and -inf
log-probabilities, NaN and +inf that are read or not read); signatures equal torch's.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from lossref import formats
from lossref.torch import nn as lnn
from lossref.torch.nn import functional as LF

from .support import assert_ulps as _assert_ulps

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def assert_ulps(computed, exact, fmt, budget, what=""):
    """The page's budget: 1 ulp for float32 (computed in float64, rounded once); float64
    adds ``u·T·Λ`` (a few ulps at these sizes)."""
    _assert_ulps(computed, exact, fmt, budget if fmt.name != "float64" else 16 * budget, what)


def _log_probs(t, n, c, dtype, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(t, n, c, generator=g, dtype=torch.float64) * scale).log_softmax(-1).numpy().astype(dtype)


def _torch(lp, tg, il, tl, **kw):
    conv = (lambda v: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v)
    return F.ctc_loss(torch.from_numpy(lp), conv(tg), conv(il), conv(tl), **kw).numpy()


def _close(ours, theirs, lp, steps):
    """Within ``16·T·u·max|log p|`` (torch's float32 forward rounds at every step) plus 4 ulps."""
    fmt = formats.get_format(lp.dtype)
    u = 2.0 ** -fmt.precision
    finite = np.abs(lp[np.isfinite(lp)])
    scale = max(float(finite.max(initial=1.0)), 1.0)
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), (ours, theirs)
    assert np.array_equal(np.isinf(ours), np.isinf(theirs)), (ours, theirs)
    ok = np.isfinite(ours)
    tol = 16 * steps * u * scale + 4 * u * np.abs(theirs[ok])
    assert np.all(np.abs(ours[ok] - theirs[ok]) <= tol), (ours, theirs)


TARGETS = np.array([[1, 2, 2, 0], [3, 3, 0, 0], [4, 1, 2, 3], [2, 0, 0, 0]])
TL = np.array([3, 2, 4, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("blank", [0, 2, 4])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_against_torch(dtype, reduction, blank, zero_infinity, layout):
    lp = _log_probs(7, 4, 5, dtype, seed=blank)
    tg = np.where(TARGETS == blank, (blank + 1) % 5, TARGETS)  # no label equals the blank
    tg = np.where(tg == blank, (blank + 2) % 5, tg)
    il = np.array([7, 2, 6, 3])  # sample 1 ("3 3" needs 3 steps) is infeasible: +inf
    if layout == "concatenated":
        tg = np.concatenate([tg[b, :TL[b]] for b in range(4)])
    kw = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    ours = LF.ctc_loss(lp, tg, il, TL, **kw)
    theirs = _torch(lp, tg, il, TL, **kw)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    _close(ours, theirs, lp, 7)
    assert_ulps(ours, LF.ctc_loss.exact(lp, tg, il, TL, **kw), formats.get_format(dtype), 1, "ctc_loss")
    module = lnn.CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    np.testing.assert_array_equal(module(lp, tg, il, TL), ours)
    assert_ulps(ours, module.exact(lp, tg, il, TL), formats.get_format(dtype), 1, "CTCLoss")


def test_torch_facts():
    """The conventions the spec page states, checked on torch itself."""
    lp = _log_probs(5, 2, 4, np.float32)
    tg, il, tl = np.array([[1, 2, 0], [3, 3, 0]]), np.array([5, 4]), np.array([0, 2])
    none = _torch(lp, tg, il, tl, reduction="none")
    # 'mean' = mean(ℓ / max(target_length, 1))
    np.testing.assert_allclose(_torch(lp, tg, il, tl), np.mean(none / np.maximum(tl, 1)), rtol=1e-6)
    np.testing.assert_allclose(LF.ctc_loss(lp, tg, il, tl), np.mean(none / np.maximum(tl, 1)), rtol=1e-6)
    # not normalised: raw scores give another (here negative) value, in torch and here
    raw = (lp + 4).astype(np.float32)  # each step's scores sum to e^4, not 1
    _close(LF.ctc_loss(raw, tg, il, tl, reduction="none"), _torch(raw, tg, il, tl, reduction="none"), raw, 5)
    assert _torch(raw, tg, il, tl, reduction="none")[0] < 0


@pytest.mark.parametrize("lengths", ["array", "tuple", "list", "int32"])
def test_lengths_forms(lengths):
    lp = _log_probs(5, 2, 4, np.float64)
    tg = np.array([[1, 2, 0], [3, 1, 0]])
    il, tl = np.array([5, 4]), np.array([2, 2])
    conv = {"array": lambda v: v, "tuple": lambda v: tuple(int(x) for x in v),
            "list": lambda v: [int(x) for x in v], "int32": lambda v: v.astype(np.int32)}[lengths]
    _close(LF.ctc_loss(lp, tg, conv(il), conv(tl), reduction="none"),
           _torch(lp, tg, conv(il), conv(tl), reduction="none"), lp, 5)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("form", ["0d", "tuple", "padded"])
def test_unbatched(reduction, form):
    lp = _log_probs(6, 1, 4, np.float32)[:, 0]
    tg = np.array([1, 1, 3]) if form != "padded" else np.array([[1, 1, 3, 0]])
    il, tl = {"0d": (np.array(6), np.array(3)), "tuple": ((6,), (3,)),
              "padded": (np.array([6]), np.array([3]))}[form]
    ours = LF.ctc_loss(lp, tg, il, tl, reduction=reduction)
    theirs = _torch(lp, tg, il, tl, reduction=reduction)
    assert ours.shape == theirs.shape == ()
    _close(ours, theirs, lp, 6)


def test_empty_targets_and_zero_lengths():
    lp = _log_probs(4, 3, 3, np.float64)
    tg = np.zeros((3, 0), np.int64)
    for il in (np.array([4, 0, 2]),):
        tl = np.array([0, 0, 0])
        _close(LF.ctc_loss(lp, tg, il, tl, reduction="none"), _torch(lp, tg, il, tl, reduction="none"), lp, 4)
        _close(LF.ctc_loss(lp, tg, il, tl), _torch(lp, tg, il, tl), lp, 4)
    # a label with no steps: +inf; zero_infinity: 0
    tg, il, tl = np.array([[1], [2], [1]]), np.array([0, 4, 4]), np.array([1, 1, 1])
    for zi in (False, True):
        _close(LF.ctc_loss(lp, tg, il, tl, reduction="none", zero_infinity=zi),
               _torch(lp, tg, il, tl, reduction="none", zero_infinity=zi), lp, 4)


def test_entries_past_lengths_not_read():
    lp = _log_probs(5, 2, 4, np.float32)
    lp[4, 1] = np.nan  # sample 1 uses 4 steps
    tg = np.array([[1, 2, 99], [3, 3, -5]])  # padding past the target lengths: anything
    il, tl = np.array([5, 4]), np.array([2, 2])
    ours = LF.ctc_loss(lp, tg, il, tl, reduction="none")
    _close(ours, _torch(lp, tg, il, tl, reduction="none"), lp, 5)
    assert np.all(np.isfinite(ours))


@pytest.mark.parametrize("where", [(0, 0, 0), (2, 0, 1), (1, 0, 3), (4, 1, 1), (0, 1, 2)])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_special_log_probs(where, value):
    lp = _log_probs(5, 2, 4, np.float32)
    lp[where] = value
    tg, il, tl = np.array([[1, 2, 0], [3, 3, 0]]), np.array([5, 5]), np.array([2, 2])
    ours = LF.ctc_loss(lp, tg, il, tl, reduction="none")
    _close(ours, _torch(lp, tg, il, tl, reduction="none"), np.where(np.isfinite(lp), lp, 0), 5)
    assert_ulps(ours, LF.ctc_loss.exact(lp, tg, il, tl, reduction="none"), formats.FLOAT32, 1, "special")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("how", ["very-negative", "minus-inf-columns", "dominant-path", "tight"])
def test_reference_meets_oracle_on_adversarial_inputs(dtype, how):
    rng = np.random.default_rng(3)
    t, n, c = 9, 3, 5
    lp = _log_probs(t, n, c, np.float64, seed=7)
    tg = np.array([[1, 1, 2, 2], [3, 4, 3, 4], [2, 2, 2, 0]])
    il, tl = np.array([9, 8, 5]), np.array([4, 4, 3])
    if how == "very-negative":
        lp = -np.exp(rng.uniform(0, np.log(float(np.finfo(dtype).max)) - 1, (t, n, c)))
    elif how == "minus-inf-columns":
        lp[:, :, 4] = -np.inf
        lp[::2, :, 0] = -np.inf
    elif how == "dominant-path":
        lp = np.full((t, n, c), -1e4)
        lp[:, :, 0] = 0.0
    else:  # T exactly n + r: one alignment
        il = np.array([6, 7, 5])
    lp = lp.astype(dtype)
    for red in ("none", "mean", "sum"):
        ours = LF.ctc_loss(lp, tg, il, tl, reduction=red)
        assert_ulps(ours, LF.ctc_loss.exact(lp, tg, il, tl, reduction=red), formats.get_format(dtype), 1, how)
        if how != "very-negative":  # torch's float forward loses the huge magnitudes
            _close(ours, _torch(lp, tg, il, tl, reduction=red), np.where(np.isfinite(lp), lp, 0), t)


# --- arguments, dtypes and errors ---------------------------------------------------------------


def _params(sig):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_signatures_equal_torch():
    assert _params(inspect.signature(LF.ctc_loss)) == _params(inspect.signature(F.ctc_loss))
    assert inspect.signature(LF.ctc_loss.exact) == inspect.signature(LF.ctc_loss)
    assert _params(inspect.signature(lnn.CTCLoss.__init__)) == _params(inspect.signature(torch.nn.CTCLoss.__init__))
    assert _params(inspect.signature(lnn.CTCLoss.forward)) == _params(inspect.signature(torch.nn.CTCLoss.forward))
    assert _params(inspect.signature(lnn.CTCLoss.exact)) == _params(inspect.signature(torch.nn.CTCLoss.forward))
    assert "ctc_loss" in LF.__all__ and "CTCLoss" in lnn.__all__


def _both_raise(args, kw, torch_exc, ours_exc, match=None):
    lp, tg, il, tl = args
    with pytest.raises(torch_exc):
        _torch(lp, tg, il, tl, **kw)
    with pytest.raises(ours_exc, match=match):
        LF.ctc_loss(lp, tg, il, tl, **kw)


LP = _log_probs(5, 2, 4, np.float32)
TG, IL, TLEN = np.array([[1, 2, 0], [3, 3, 0]]), np.array([5, 4]), np.array([2, 2])


@pytest.mark.parametrize("dtype,name", [(np.float16, "Half"), (np.int64, "Long")])
def test_dtype_errors(dtype, name):
    _both_raise((LP.astype(dtype), TG, IL, TLEN), {}, NotImplementedError, RuntimeError, name)


def test_bfloat16_refused():
    bf = formats.get_format("bfloat16").dtype
    with pytest.raises(NotImplementedError):
        F.ctc_loss(torch.from_numpy(LP).bfloat16(), torch.from_numpy(TG), torch.from_numpy(IL), torch.from_numpy(TLEN))
    with pytest.raises(TypeError, match="BFloat16"):
        LF.ctc_loss(LP.astype(bf), TG, IL, TLEN)


@pytest.mark.parametrize("case", [
    ("blank", {"blank": 4}, "blank must be in label range"),
    ("blank", {"blank": -1}, "blank must be in label range"),
    ("il", np.array([6, 4]), "at most 5"),
    ("il", np.array([-1, 4]), "at least 0"),
    ("tl", np.array([-1, 2]), "at least 0"),
    ("tl", np.array([4, 2]), "at least 4 at dimension 1"),
    ("il", np.array([5, 4, 3]), "input_lengths must be of size batch_size"),
    ("tl", np.array([2, 2, 2]), "target_lengths must be of size batch_size"),
    ("il", np.array([5.0, 4.0]), "input_lengths must be integral"),
    ("tg", np.array([1, 2, 3]), "size 4 at dimension 0"),
    ("tg", np.array([[1, 2, 0]]), "size 2 at dimension 0"),
    ("tg", np.zeros((2, 3, 1), np.int64), "1 to 2 dimensions"),
    ("lp", LP[0, 0], "Expected 3-dimensional tensor"),
    ("lp", LP[:0], "must not be empty"),
])
def test_runtime_errors(case):
    what, value, match = case
    args = {"lp": LP, "tg": TG, "il": IL, "tl": TLEN}
    kw = {}
    if what == "blank":
        kw = value
    else:
        args[what] = value
    _both_raise(tuple(args.values()), kw, RuntimeError, RuntimeError, match)
    with pytest.raises(ValueError):  # torch's RuntimeErrors are lossref's ValueErrors
        LF.ctc_loss(*args.values(), **kw)


@pytest.mark.parametrize("bad", [(5, 2), ((5.0, 4.0), (2, 2)), ("x", (2, 2))])
def test_type_errors(bad):
    il, tl = bad if not isinstance(bad[0], int) else (bad[0], bad[1])
    with pytest.raises(TypeError):
        _torch(LP, TG, il, tl)
    with pytest.raises(TypeError):
        LF.ctc_loss(LP, TG, il, tl)
    with pytest.raises(TypeError):
        LF.ctc_loss(LP, TG, IL, TLEN, blank=1.0)
    with pytest.raises(TypeError):
        LF.ctc_loss(LP, TG, IL, TLEN, zero_infinity=1)
    with pytest.raises(ValueError, match="not a valid value"):
        LF.ctc_loss(LP, TG, IL, TLEN, reduction="foo")


@pytest.mark.parametrize("tg", [np.array([[1, 4, 0], [3, 3, 0]]), np.array([[1, -1, 0], [3, 3, 0]]),
                                np.array([[1, 0, 0], [3, 3, 0]]), np.array([[1.5, 2, 0], [3, 3, 0]])])
def test_refused_labels(tg):
    """torch reads out of bounds (label >= C or < 0), scores the blank as a label, or
    truncates a fractional label; lossref refuses each."""
    with pytest.raises(ValueError):
        LF.ctc_loss(LP, tg, IL, TLEN)
