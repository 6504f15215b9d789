"""Structured losses ``circle`` and ``ctc``: catalogue and signatures, reference vs oracle
within the budgets of spec/losses/{circle,ctc}.md, oracle vs independent computations
(brute-force alignment enumeration, backward and log-space recursions, the paper's
pair-sum form of Circle), the Keras dialect vs real Keras, and bad input."""

import inspect
import itertools
import math

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import losses as K
from lossref.numerics import log_softmax, logsumexp

from .support import FORMATS, assert_ulps, assert_within, in_format, representable

CTC = lossref.get("ctc")
CIRCLE = lossref.get("circle")
U64 = 2.0 ** -53
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]


# --- helpers ----------------------------------------------------------------------------------


def _final_values(exact, fmt):
    exact.round(fmt)  # decides the precision at which the values are final
    return exact.values(exact.final_prec)


def _assert_abs_bound(got, exact, fmt, extra, ulps, what):
    """``|got - exact| <= ulps * ulp(exact) + extra`` elementwise; specials must match."""
    assert_within(got, exact, fmt, ulps, extra, what=what)


def _same_or_close(ours, theirs, ulps32, what):
    """Agreement with real Keras (float32 arithmetic) to a few float32 ulps."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs Keras {theirs.shape}"
    for a, b in zip(ours.ravel(), theirs.ravel()):
        if not (math.isfinite(a) and math.isfinite(b)):
            assert (a == b) or (math.isnan(a) and math.isnan(b)), f"{what}: {a} vs Keras {b}"
            continue
        tol = ulps32 * formats.ulp(b, "float32")
        ulps = abs(a - b) / formats.ulp(b, "float32")
        assert abs(a - b) <= tol, f"{what}: {a!r} vs Keras {b!r} ({ulps:.1f} ulp)"


def _weights(n_b, rng):
    w = rng.uniform(0.0, 2.0, n_b)
    w[0] = 0.0
    return [None, w, w[:, None]]


# --- catalogue and signatures -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["circle", "ctc"])
def test_registered_as_structured(name):
    assert name in lossref.names()
    loss = lossref.get(name)
    assert loss.stage2 == "structured"
    assert loss.elementwise is None and not loss.separable


@pytest.mark.parametrize("name", ["circle", "ctc", "Circle", "CTC"])
def test_signatures_match_keras(keras, name):
    ours, theirs = getattr(K, name), getattr(keras.losses, name)
    assert inspect.signature(ours) == inspect.signature(theirs)
    assert name in K.__all__
    assert callable(ours.exact)


def test_circle_config_matches_keras(keras):
    ours = K.Circle(gamma=32.0, margin=0.25, remove_diagonal=False, name="c").get_config()
    theirs = keras.losses.Circle(gamma=32.0, margin=0.25, remove_diagonal=False, name="c").get_config()
    for key in ("name", "reduction", "gamma", "margin", "remove_diagonal"):
        assert ours[key] == theirs[key], key
    assert K.CTC().get_config()["name"] == keras.losses.CTC().get_config()["name"] == "ctc"


# --- CTC: cases -------------------------------------------------------------------------------


def _ctc_cases(fmt):
    """(name, labels, logits in fmt) covering the adversarial groups of spec/losses/ctc.md."""
    f = formats.get_format(fmt)
    rng = np.random.default_rng(11)
    out = [
        ("long-repeats", np.array([[1, 1, 2, 2, 2, 3, 1, 1], [3, 3, 3, 0, 0, 0, 0, 0]]),
         3.0 * rng.standard_normal((2, 24, 4))),
        ("barely", np.array([[1, 1, 2, 2, 3], [2, 2, 2, 0, 0]]), rng.standard_normal((2, 7, 4))),
        ("barely-exact", np.array([[2, 2, 2]]), rng.standard_normal((1, 5, 3))),
        ("too-short", np.array([[1, 1], [1, 2], [1, 0]]), rng.standard_normal((3, 2, 4))),
        ("large", np.array([[1, 2, 1], [3, 3, 0]]), rng.uniform(-1e4, 1e4, (2, 6, 4))),
        ("empty-label", np.zeros((2, 2)), rng.standard_normal((2, 3, 3))),
    ]
    dom = np.zeros((2, 6, 4))
    for t, c in enumerate([1, 0, 2, 2, 0, 1]):
        dom[0, t, c], dom[1, t, c] = 30.0, 8.0  # one path carries almost all the mass
    out.append(("dominant", np.array([[1, 2, 1], [1, 2, 1]]), dom))
    tiny = [0.0, -0.0, f.min_subnormal, -f.min_subnormal, f.tiny, 2 * f.min_subnormal]
    out.append(("tiny", np.array([[1, 2], [3, 0]]), rng.choice(tiny, (2, 5, 4))))
    s = rng.standard_normal((5, 4, 4))
    s[0, 1, 2] = np.inf      # on a label class: NaN
    s[1, 1, 3] = np.inf      # on a class outside the label: the others get probability 0
    s[2, 2, :] = -np.inf     # a whole step -inf: 0/0
    s[3, 0, 1] = np.nan
    s[4, 1, 1] = -np.inf     # one class impossible at one step: still finite
    out.append(("special", np.array([[1, 2], [1, 2], [1, 0], [2, 0], [1, 2]]), s))
    return [(n, lab, in_format(representable(z, f), f)) for n, lab, z in out]


def _ctc_lambda(labels, logits):
    """``T * Lambda_b``: Lambda_b sums over t the largest finite |log q_t(c)| over the
    classes the label can use (the blank and its labels)."""
    with np.errstate(all="ignore"):
        lp = np.abs(log_softmax(np.asarray(logits, dtype=np.float64), -1))
    out = np.zeros(labels.shape[0])
    for b in range(labels.shape[0]):
        used = [0] + [int(v) for v in labels[b] if v]
        m = np.where(np.isfinite(lp[b][:, used]), lp[b][:, used], 0.0)
        out[b] = logits.shape[1] * (m.max(axis=1).sum() if m.size else 0.0)
    return out


def _ctc_ids(cases):
    return [c[0] for c in cases]


# --- CTC: independent high-precision computations ------------------------------------------


def _mp_softmax(z):
    """Literal softmax of one step with IEEE edges (0/0 and inf/inf are NaN)."""
    e = [mpmath.exp(mpmath.mpf(float(v))) for v in z]
    s = mpmath.fsum(e)
    if s == 0 or mpmath.isnan(s):
        return [mpmath.mpf("nan")] * len(e)
    return [v / s if not (mpmath.isinf(v) and mpmath.isinf(s)) else mpmath.mpf("nan") for v in e]


def _brute_force(label_row, z, prec):
    """-log of the sum over every path in C^T that collapses to the label."""
    target = tuple(int(v) for v in label_row if v)
    n_t, n_c = z.shape
    with mpmath.workprec(prec):
        q = [_mp_softmax(z[t]) for t in range(n_t)]
        total = mpmath.mpf(0)
        for path in itertools.product(range(n_c), repeat=n_t):
            if tuple(k for k, _ in itertools.groupby(path) if k) == target:
                prod = mpmath.mpf(1)
                for t, c in enumerate(path):
                    prod *= q[t][c]
                total += prod
        return mpmath.inf if total == 0 else -mpmath.log(total)


def _ext(label_row):
    ext = [0]
    for v in label_row:
        if v:
            ext += [int(v), 0]
    return ext


def _backward(label_row, z, prec):
    """-log P by the backward recursion on probabilities."""
    ext = _ext(label_row)
    n_s, n_t = len(ext), z.shape[0]
    with mpmath.workprec(prec):
        q = [_mp_softmax(z[t]) for t in range(n_t)]
        # after the last step only the final blank and the last label may remain
        beta = [mpmath.mpf(0)] * n_s
        beta[-1] = mpmath.mpf(1)
        if n_s > 1:
            beta[-2] = mpmath.mpf(1)
        if n_t == 0:
            return mpmath.mpf(0) if n_s == 1 else mpmath.inf
        # beta_t(s): probability of finishing from state s at step t (emission at t included)
        cur = [beta[s] * q[n_t - 1][ext[s]] for s in range(n_s)]
        for t in range(n_t - 2, -1, -1):
            nxt = []
            for s in range(n_s):
                a = cur[s] + (cur[s + 1] if s + 1 < n_s else 0)
                if s + 2 < n_s and ext[s + 2] != 0 and ext[s + 2] != ext[s]:
                    a += cur[s + 2]
                nxt.append(a * q[t][ext[s]])
            cur = nxt
        total = cur[0] + (cur[1] if n_s > 1 else 0)
        return mpmath.inf if total == 0 else -mpmath.log(total)


def _mp_lse(vals):
    if any(mpmath.isnan(v) for v in vals):
        return mpmath.mpf("nan")
    m = max(vals)
    if m == -mpmath.inf:
        return m
    if m == mpmath.inf:
        return m
    return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in vals))


def _log_forward(label_row, z, prec):
    """-log P by the forward recursion in log space (same IEEE semantics as the oracle:
    a NaN emission poisons its state whether or not it is reachable)."""
    ext = _ext(label_row)
    n_s, n_t = len(ext), z.shape[0]
    with mpmath.workprec(prec):
        ninf = -mpmath.inf
        alpha = [mpmath.mpf(0)] + [ninf] * (n_s - 1)
        for t in range(n_t):
            zt = [mpmath.mpf(float(v)) for v in z[t]]
            lse = _mp_lse(zt)
            lq = [v - lse for v in zt]
            new = []
            for s in range(n_s):
                terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                new.append(_mp_lse(terms) + lq[ext[s]])
            alpha = new
        return -_mp_lse([alpha[-1]] + ([alpha[-2]] if n_s > 1 else []))


def _agree(a, b, fmt):
    f = formats.get_format(fmt)
    if mpmath.isnan(a) or mpmath.isnan(b):
        return mpmath.isnan(a) and mpmath.isnan(b)
    return formats.round_mpf(a, f) == formats.round_mpf(b, f)


# --- CTC: tests -------------------------------------------------------------------------------


def test_ctc_research_note_value(keras):
    """T=3, C=4, uniform logits, label [1]: 6 of the 64 paths, -ln(6/64) = 2.3671236."""
    z = np.zeros((1, 3, 4), np.float32)
    with mpmath.workprec(200):
        exact = formats.round_mpf(mpmath.log(mpmath.mpf(64) / 6), "float32")
    assert exact == np.float32(2.3671236)
    assert K.ctc([[1]], z).tolist() == [exact]
    assert CTC.exact([[1]], z).round(np.float32).tolist() == [exact]
    assert K.ctc.exact([[1]], z).round().tolist() == [exact]
    assert K.CTC().exact([[1]], z).round().tolist() == exact
    with mpmath.workprec(200):
        assert abs(_brute_force([1], z[0], 200) - mpmath.log(mpmath.mpf(64) / 6)) < 2.0 ** -190
    assert np.asarray(keras.losses.ctc(np.array([[1]]), z)).tolist() == [exact]
    assert float(K.CTC()(np.array([[1]]), z)) == exact


@pytest.mark.parametrize("fmt", FORMATS)
def test_ctc_reference_within_budget(fmt):
    for name, lab, z in _ctc_cases(fmt):
        got = CTC.per_sample(lab, z)
        assert got.dtype == formats.get_format(fmt).dtype and got.shape == (lab.shape[0],)
        extra = U64 * _ctc_lambda(lab, z)
        _assert_abs_bound(got, CTC.exact(lab, z), fmt, extra, 0.5 if fmt == "float64" else 1.0,
                          f"ctc {name}")


def test_ctc_budget_is_tight_on_typical_inputs():
    """The narrow formats are within 1 ulp outright on ordinary inputs."""
    for fmt in ("float16", "bfloat16", "float32"):
        rng = np.random.default_rng(4)
        z = in_format(representable(2 * rng.standard_normal((3, 9, 5)), fmt), fmt)
        lab = np.array([[1, 2, 2, 4], [3, 0, 0, 0], [4, 4, 1, 0]])
        assert_ulps(CTC.per_sample(lab, z), CTC.exact(lab, z), fmt, 1, what="ctc typical")


@pytest.mark.parametrize("fmt", ["float32", "float64"])
def test_ctc_oracle_matches_log_space_forward(fmt):
    """Every case, against the forward recursion in log space at twice the final precision."""
    for name, lab, z in _ctc_cases(fmt):
        exact = CTC.exact(lab, z)
        vals = _final_values(exact, fmt)
        prec = 2 * exact.final_prec
        for b in range(lab.shape[0]):
            other = _log_forward(lab[b], np.asarray(z[b], np.float64), prec)
            assert _agree(vals[b], other, fmt), (name, b, vals[b], other)


def test_ctc_oracle_matches_brute_force_enumeration():
    """Tiny cases (C^T <= 4096 paths): the literal sum over all alignments."""
    rng = np.random.default_rng(5)
    cases = [
        (np.array([[1, 2, 0], [1, 1, 0], [2, 0, 0], [0, 0, 0]]), rng.standard_normal((4, 5, 3))),
        (np.array([[1, 1, 1]]), rng.standard_normal((1, 5, 2))),          # T = n + r exactly
        (np.array([[1, 1, 1]]), rng.standard_normal((1, 4, 2))),          # too short: inf
        (np.array([[3, 1, 3]]), 4 * rng.standard_normal((1, 6, 4))),
        (np.array([[1, 2]]), np.array([[[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf],
                                         [0.0, 0.0, 0.0], [-1.0, 3.0, 1.0]]])),
        (np.array([[1]]), np.array([[[0.0, np.nan], [1.0, 0.0]]])),
    ]
    for lab, z in cases:
        exact = CTC.exact(lab, z)
        vals = _final_values(exact, "float64")
        for b in range(lab.shape[0]):
            other = _brute_force(lab[b], z[b], 2 * exact.final_prec)
            assert _agree(vals[b], other, "float64"), (lab[b], vals[b], other)


def test_ctc_oracle_matches_backward_recursion():
    for fmt in ("float32", "float64"):
        for name, lab, z in _ctc_cases(fmt):
            if name in ("special",):
                continue  # NaN placement differs by direction: covered by the forward checks
            exact = CTC.exact(lab, z)
            vals = _final_values(exact, fmt)
            for b in range(lab.shape[0]):
                other = _backward(lab[b], np.asarray(z[b], np.float64), 2 * exact.final_prec)
                assert _agree(vals[b], other, fmt), (name, b, vals[b], other)


def test_ctc_special_values():
    z = np.zeros((3, 2, 4))
    got = CTC.per_sample(np.array([[1, 1], [1, 2], [0, 0]]), z)
    assert np.isinf(got[0]) and got[0] > 0 and got[1] == pytest.approx(math.log(16))
    assert got[2] == pytest.approx(2 * math.log(4))
    # T = 0: the empty label has probability 1, any other label 0
    assert CTC.per_sample(np.array([[0], [1]]), np.zeros((2, 0, 3))).tolist() == [0.0, math.inf]
    assert CTC.exact(np.array([[0], [1]]), np.zeros((2, 0, 3))).round().tolist() == [0.0, math.inf]
    s = np.zeros((3, 3, 3))
    s[0, 1, 0] = np.nan
    s[1, 1, :] = -np.inf
    s[2, 1, 2] = -np.inf  # class 2 impossible at step 1; label [1] stays possible
    got = CTC.per_sample(np.array([[1], [1], [1]]), s)
    assert np.isnan(got[0]) and np.isnan(got[1]) and np.isfinite(got[2])


def test_ctc_log_softmax_keeps_dominant_path_relative():
    """A path with probability 1 - 3e-13: the loss is ~3e-13, not 0."""
    z = np.full((1, 3, 3), 0.0)
    z[0, :, 1] = 30.0
    got = CTC.per_sample(np.array([[1]]), z)
    exact = CTC.exact(np.array([[1]]), z)
    assert 0 < got[0] < 1e-11
    assert_ulps(got, exact, "float64", 4, what="dominant path")


# --- CTC: Keras ---------------------------------------------------------------------------------


def _ctc_keras_inputs():
    rng = np.random.default_rng(21)
    z = (1.5 * rng.standard_normal((4, 12, 5))).astype(np.float32)
    lab = np.array([[1, 2, 2, 3, 0], [4, 4, 4, 1, 1], [2, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    return lab, z


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_class_agrees_with_keras(keras, reduction):
    lab, z = _ctc_keras_inputs()
    for sw in _weights(lab.shape[0], np.random.default_rng(1)) + [2.5]:
        ours = K.CTC(reduction=reduction)(lab, z, sample_weight=sw)
        theirs = keras.losses.CTC(reduction=reduction)(lab, z, sample_weight=sw)
        _same_or_close(ours, theirs, 4, f"CTC {reduction} sw={np.shape(sw)}")
        exact = K.CTC(reduction=reduction).exact(lab, z, sample_weight=sw).round(np.float32)
        _same_or_close(exact, theirs, 4, f"CTC.exact {reduction}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_ctc_function_agrees_with_keras_in_float32(keras, fmt):
    """Every input dtype gives float32 (computed from float32 logits), as in Keras."""
    lab, z = _ctc_keras_inputs()
    zf = in_format(representable(z, fmt), fmt)
    ours, theirs = K.ctc(lab, zf), np.asarray(keras.losses.ctc(lab, zf))
    assert ours.dtype == theirs.dtype == np.float32
    _same_or_close(ours, theirs, 4, f"ctc {fmt}")


def test_ctc_float64_class_reduces_float32_values(keras):
    lab, z = _ctc_keras_inputs()
    z64 = z.astype(np.float64) + 1e-9  # not float32 values: Keras rounds them first
    per = K.CTC(dtype="float64", reduction=None)(lab, z64)
    assert per.dtype == np.float64
    assert per.tolist() == K.ctc(lab, z64).astype(np.float64).tolist()  # float32 values
    theirs = np.asarray(keras.losses.CTC(dtype="float64", reduction=None)(lab, z64))
    _same_or_close(per, theirs, 4, "CTC float64 per-sample")
    total = K.CTC(dtype="float64", reduction="sum")(lab, z64)
    assert float(total) == math.fsum(per.tolist())  # float64 sum of the float32 values


def test_ctc_keras_test_suite_value_on_a_valid_row(keras):
    """Keras's CTCTest logits; its second row [1, 2, 0, 2] has a 0 inside the label, which
    lossref rejects, so the row is compared with its trailing-padded form."""
    logits = (np.arange(24).reshape((2, 4, 3)).astype("float32") - 12) / 100
    lab = np.array([[1, 2, 1, 0], [1, 2, 2, 0]])
    _same_or_close(K.CTC()(lab, logits), keras.losses.CTC()(lab, logits), 2, "CTCTest logits")
    with pytest.raises(ValueError, match="padding must be trailing"):
        K.CTC()(np.array([[1, 2, 1, 0], [1, 2, 0, 2]]), logits)


# --- CTC: bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [K.ctc, K.CTC(), CTC.per_sample])
def test_ctc_bad_input(fn):
    z = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError,
                       match=r"y_true must have shape \(batch_size, max_length\); got shape \(2,\)"):
        fn(np.array([1, 2]), z)
    with pytest.raises(ValueError, match=r"y_pred must have shape .*got shape \(2, 4\)"):
        fn(np.array([[1], [2]]), z[:, :, 0])
    with pytest.raises(ValueError, match=r"integer labels; got 1.5 at \(0, 0\)"):
        fn(np.array([[1.5], [1.0]]), z)
    with pytest.raises(ValueError, match=r"label -1 at \(1, 0\) is outside \[0, 2\]"):
        fn(np.array([[1], [-1]]), z)
    with pytest.raises(ValueError, match=r"label 3 at \(0, 1\) is outside \[0, 2\]"):
        fn(np.array([[1, 3], [2, 0]]), z)
    with pytest.raises(ValueError, match="row 0 has padding 0 at position 0 before label 2"):
        fn(np.array([[0, 2], [2, 0]]), z)
    with pytest.raises(ValueError, match="integer labels; got nan"):
        fn(np.array([[np.nan], [1.0]]), z)
    with pytest.raises(ValueError, match=r"batch sizes differ"):
        fn(np.array([[1]]), z)


def test_ctc_bad_dtypes():
    with pytest.raises(TypeError, match="y_true must hold integer labels"):
        K.ctc(np.array([["a"]]), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="at least one class"):
        CTC.per_sample(np.zeros((1, 0)), np.zeros((1, 2, 0)))


def test_ctc_padding_wider_than_t_is_accepted(keras):
    z = np.zeros((1, 3, 4), np.float32)
    lab = np.array([[1, 0, 0, 0, 0, 0]])
    assert K.ctc(lab, z).tolist() == np.asarray(keras.losses.ctc(lab, z)).tolist()


# --- Circle: cases ------------------------------------------------------------------------------


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _circle_cases(fmt):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(17)
    base = _unit(rng.standard_normal((1, 6)))
    near = base + 8 * f.eps * rng.standard_normal((6, 6))   # pairwise distances ~ u
    sub = _unit(rng.standard_normal((5, 3)))
    sub[1], sub[2] = 0.0, f.min_subnormal
    spec = _unit(rng.standard_normal((5, 3)))
    spec[3, 1] = np.nan
    inf = _unit(rng.standard_normal((4, 3)))
    inf[2, 0] = np.inf
    out = [
        ("typical", np.array([1, 1, 2, 2, 3, 3, 1, 2]), _unit(rng.standard_normal((8, 6))), {}),
        ("near-parallel", np.array([0, 0, 0, 1, 1, 1]), near, {}),
        ("near-parallel-mixed", np.array([0, 1, 0, 1, 0, 1]), near, {}),
        ("all-same", np.array([4, 4, 4, 4]), _unit(rng.standard_normal((4, 5))), {}),
        ("all-different", np.array([1, 2, 3, 4]), _unit(rng.standard_normal((4, 5))), {}),
        ("gamma256", np.array([1, 1, 2, 2, 3]), _unit(rng.standard_normal((5, 4))),
         {"gamma": 256.0, "margin": 0.25}),
        ("negative-margin", np.array([1, 1, 2, 2, 3]), _unit(rng.standard_normal((5, 4))),
         {"gamma": 10.0, "margin": -0.3}),
        ("keep-diagonal", np.array([1, 2, 2, 3]), _unit(rng.standard_normal((4, 4))),
         {"remove_diagonal": False}),
        ("zero-subnormal-rows", np.array([1, 1, 2, 2, 1]), sub, {}),
        ("unnormalised", np.array([1, 1, 2, 2, 1]), 3 * _unit(rng.standard_normal((5, 3))), {}),
        ("tiny-loss", np.array([0, 0, 1, 1, 0]),
         np.array([[1, 0], [1, 0], [-1, 0], [-1, 0], [0, 1.0]]), {"gamma": 200.0, "margin": 0.8}),
        ("nan", np.array([1, 1, 2, 2, 1]), spec, {}),
        ("inf", np.array([1, 2, 1, 2]), inf, {}),
    ]
    return [(n, t, in_format(representable(p, f), f), kw) for n, t, p, kw in out]


def _circle_lambda(t, p, kw, values):
    """``Lambda_i * l_i`` of spec/losses/circle.md (float64 magnitudes)."""
    g, m = kw.get("gamma", 80.0), kw.get("margin", 0.4)
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = np.maximum(1 - p @ p.T, 0)
        s = np.abs(p) @ np.abs(p).T
        same = t[:, None] == t[None, :]
        pos = same & ~np.eye(len(t), dtype=bool) if kw.get("remove_diagonal", True) else same
        neg = ~same
        c = 1 + abs(m) + d
        term = g * (p.shape[1] + 3) * c ** 2 * np.maximum(s, 1.0)
        w_p = -g * np.maximum(m + d, 0) * (m - d)
        w_n = g * np.maximum(1 + m - d, 0) * (1 - m - d)
        l_p = logsumexp(np.where(pos, w_p, -np.inf), 1)
        l_n = logsumexp(np.where(neg, w_n, -np.inf), 1)
        fin = lambda v: np.where(np.isfinite(v), np.abs(v), 0.0)  # noqa: E731
        lam = 1 + fin(l_p) + fin(l_n) + np.max(np.where(pos | neg, fin(term), 0.0), axis=1)
    return lam * np.abs(np.asarray([float(v) for v in values]))


def _pair_sum(t, p, kw, prec):
    """Sun et al.'s pair-sum form in similarity space: log1p(sum_{j in N} sum_{k in P} ...)."""
    g, m = kw.get("gamma", 80.0), kw.get("margin", 0.4)
    keep_diag = not kw.get("remove_diagonal", True)
    n_b = len(t)
    out = []
    with mpmath.workprec(prec):
        g, m = mpmath.mpf(g), mpmath.mpf(m)
        o_p, o_n, d_p, d_n = 1 + m, -m, 1 - m, m
        for i in range(n_b):
            pos_terms, neg_terms = [], []
            for j in range(n_b):
                dot = mpmath.fsum(mpmath.mpf(float(a)) * mpmath.mpf(float(b)) for a, b in zip(p[i], p[j]))
                sim = mpmath.mpf("nan") if mpmath.isnan(dot) else min(dot, mpmath.mpf(1))
                if t[i] == t[j] and (i != j or keep_diag):
                    a_p = mpmath.mpf("nan") if mpmath.isnan(sim) else max(o_p - sim, 0)
                    pos_terms.append(-g * a_p * (sim - d_p))
                elif t[i] != t[j]:
                    a_n = mpmath.mpf("nan") if mpmath.isnan(sim) else max(sim - o_n, 0)
                    neg_terms.append(g * a_n * (sim - d_n))
            total = mpmath.fsum(mpmath.exp(a + b) for a in neg_terms for b in pos_terms)
            out.append(mpmath.log1p(total))
    return out


# --- Circle: tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_circle_reference_within_budget(fmt):
    for name, t, p, kw in _circle_cases(fmt):
        got = CIRCLE.per_sample(t, p, **kw)
        assert got.dtype == formats.get_format(fmt).dtype and got.shape == (len(t),)
        exact = CIRCLE.exact(t, p, **kw)
        if fmt != "float64":
            assert_ulps(got, exact, fmt, 1, what=f"circle {name}")
        else:
            vals = _final_values(exact, fmt)
            _assert_abs_bound(got, exact, fmt, U64 * _circle_lambda(t, p, kw, vals), 0.5,
                              f"circle {name}")


@pytest.mark.parametrize("fmt", ["float32", "float64"])
def test_circle_oracle_matches_pair_sum_form(fmt):
    for name, t, p, kw in _circle_cases(fmt):
        exact = CIRCLE.exact(t, p, **kw)
        vals = _final_values(exact, fmt)
        other = _pair_sum(t, np.asarray(p, np.float64), kw, 2 * exact.final_prec)
        for i, (a, b) in enumerate(zip(vals, other)):
            assert _agree(a, b, fmt), (name, i, a, b)


def test_circle_oracle_with_references_matches_pair_form():
    rng = np.random.default_rng(3)
    t, p = np.array([1, 1, 2]), _unit(rng.standard_normal((3, 4)))
    r_lab, r_emb = np.array([1, 2, 2, 5]), _unit(rng.standard_normal((4, 4)))
    kw = dict(ref_labels=r_lab, ref_embeddings=r_emb, remove_diagonal=True)
    exact = CIRCLE.exact(t, p, **kw)
    vals = _final_values(exact, "float64")
    # independent: the pair-sum form over the union, keeping only anchor-vs-reference pairs
    prec = 2 * exact.final_prec
    with mpmath.workprec(prec):
        for i in range(3):
            sims = [min(mpmath.fsum(mpmath.mpf(a) * mpmath.mpf(b) for a, b in zip(p[i], r)), 1)
                    for r in r_emb]
            m, g = mpmath.mpf(0.4), mpmath.mpf(80)
            pos = [-g * max(1 + m - s, 0) * (s - (1 - m))
                   for j, s in enumerate(sims) if r_lab[j] == t[i] and j != i]
            neg = [g * max(s + m, 0) * (s - m) for j, s in enumerate(sims) if r_lab[j] != t[i]]
            other = mpmath.log1p(mpmath.fsum(mpmath.exp(a + b) for a in neg for b in pos))
            assert _agree(vals[i], other, "float64"), (i, vals[i], other)
    got = CIRCLE.per_sample(t, p, **kw)
    assert_ulps(got, exact, "float64", 4, what="circle with references")


def test_circle_special_values():
    p = _unit(np.random.default_rng(2).standard_normal((4, 3)))
    assert CIRCLE.per_sample(np.array([7, 7, 7, 7]), p).tolist() == [0.0] * 4
    assert CIRCLE.per_sample(np.array([1, 2, 3, 4]), p).tolist() == [0.0] * 4
    got = CIRCLE.per_sample(np.array([1, 1, 2, 3]), p)
    assert got[0] > 0 and got[1] > 0 and got[2] == 0 and got[3] == 0
    q = p.copy()
    q[0, 0] = np.nan
    assert np.isnan(CIRCLE.per_sample(np.array([1, 1, 2, 3]), q)).all()


# --- Circle: Keras ------------------------------------------------------------------------------


def _circle_keras_inputs():
    rng = np.random.default_rng(8)
    p = _unit(rng.standard_normal((7, 5))).astype(np.float32)
    t = np.array([0, 1, 1, 2, 2, 2, 3])  # anchors 0 and 6 have no positive: masked
    return t, p


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_circle_class_agrees_with_keras(keras, reduction):
    t, p = _circle_keras_inputs()
    for kw in ({}, {"gamma": 32.0, "margin": 0.25}):
        # (a scalar weight with the loss's mask raises in Keras's NumPy backend: in-place *=)
        for sw in _weights(len(t), np.random.default_rng(2)):
            ours = K.Circle(reduction=reduction, **kw)(t, p, sample_weight=sw)
            theirs = keras.losses.Circle(reduction=reduction, **kw)(t, p, sample_weight=sw)
            _same_or_close(ours, theirs, 8, f"Circle {kw} {reduction} sw={np.shape(sw)}")
    exact = K.Circle(reduction=reduction).exact(t, p).round(np.float32)
    _same_or_close(exact, keras.losses.Circle(reduction=reduction)(t, p), 8, "Circle.exact")


def test_circle_small_losses_agree_with_keras_to_its_float32_condition(keras):
    """With the diagonal kept, some anchors have small losses from a cancelling
    L_p + L_n; Keras's float32 arithmetic then errs by about u32 * (|L_p| + |L_n|)
    relative, so the comparison allows that (the oracle is the judge of our values)."""
    t, p = _circle_keras_inputs()
    kw = {"remove_diagonal": False}
    ours = K.circle(t, p, **kw)
    theirs = np.asarray(keras.losses.circle(t, p, **kw))
    exact = K.circle.exact(t, p, **kw)
    assert_ulps(ours, exact, "float32", 1, what="circle keep-diagonal")
    p64 = p.astype(np.float64)
    d = np.maximum(1 - p64 @ p64.T, 0)
    same = t[:, None] == t[None, :]
    l_p = logsumexp(np.where(same, -80 * np.maximum(0.4 + d, 0) * (0.4 - d), -np.inf), 1)
    l_n = logsumexp(np.where(~same, 80 * np.maximum(1.4 - d, 0) * (0.6 - d), -np.inf), 1)
    allowance = 4 * 2.0 ** -24 * (1 + np.abs(l_p) + np.abs(l_n)) * np.abs(ours)
    assert np.all(np.abs(ours.astype(np.float64) - theirs) <= allowance + 4 * np.spacing(theirs))
    assert np.min(ours) < 0.1  # the case does exercise a small, cancelling loss


def test_circle_function_with_references_agrees_with_keras(keras):
    t, p = _circle_keras_inputs()
    rng = np.random.default_rng(9)
    r_emb = _unit(rng.standard_normal((9, 5))).astype(np.float32)
    r_lab = np.array([0, 1, 2, 3, 4, 1, 2, 0, 3])
    for kw in ({}, {"remove_diagonal": False, "gamma": 64, "margin": 0.1}):
        ours = K.circle(t, p, ref_labels=r_lab, ref_embeddings=r_emb, **kw)
        theirs = keras.losses.circle(t, p, ref_labels=r_lab, ref_embeddings=r_emb, **kw)
        _same_or_close(ours, theirs, 8, f"circle refs {kw}")
    # float labels are truncated toward zero, as Keras's int32 cast
    tf = np.array([0.5, 1.2, 1.9, 2.0, 2.7, 2.1, 3.99])
    _same_or_close(K.circle(tf, p), keras.losses.circle(tf, p), 8, "float labels")
    assert K.circle(tf, p).tolist() == K.circle(t, p).tolist()


def test_circle_keras_test_suite_values(keras):
    """The values Keras's own CircleTest asserts (rounded there to 4-5 digits)."""
    t = np.array([1, 1, 2, 2, 3])
    p = np.array([[0.70014004, -0.42008403, 0.14002801, 0.56011203],
                  [0.17609018, 0.70436073, -0.52827054, 0.44022545],
                  [-0.34050261, 0.25537696, -0.68100522, 0.59587957],
                  [0.32163376, -0.75047877, 0.53605627, -0.21442251],
                  [0.51261459, -0.34174306, 0.17087153, 0.76892189]])
    r_lab = np.array([1, 1, 2, 2, 3, 4])
    r_emb = np.array([[0.40824829, -0.54433105, 0.27216553, 0.68041382],
                      [0.76376261, 0.10910895, -0.54554473, 0.32732684],
                      [-0.74420841, 0.24806947, 0.49613894, -0.3721042],
                      [0.52981294, -0.13245324, 0.79471941, -0.26490647],
                      [0.54554473, -0.32732684, 0.10910895, 0.76376261],
                      [-0.27216553, 0.68041382, 0.40824829, -0.54433105]])
    sw = np.array([2.0, 2.0, 1.0, 1.0, 0.5])
    assert float(K.Circle()(t, p)) == pytest.approx(188.3883, abs=1e-4)
    assert float(K.Circle(gamma=256, margin=0.25)(t, p)) == pytest.approx(652.7617, abs=1e-4)
    assert K.circle(t, p, ref_labels=r_lab, ref_embeddings=r_emb, remove_diagonal=False).tolist() \
        == pytest.approx([61.5844, 94.3465, 276.9344, 90.9873, 48.8963], abs=1e-4)
    assert float(K.Circle()(t, p, sample_weight=sw)) == pytest.approx(244.91918, abs=1e-4)
    assert K.Circle(reduction=None)(r_lab, r_emb).tolist() == \
        pytest.approx([82.9116, 36.7942, 92.4590, 52.6798, 0.0, 0.0], abs=1e-4)
    assert float(K.Circle(reduction="sum")(r_lab, r_emb)) == pytest.approx(264.845, abs=1e-3)
    assert float(K.Circle(reduction="mean_with_sample_weight")(t, p, sample_weight=sw)) == \
        pytest.approx(163.27948, abs=1e-4)
    assert K.Circle(dtype="bfloat16")(t, p).dtype == formats.get_format("bfloat16").dtype


def test_circle_mask_drops_anchors_without_pairs(keras):
    """Anchors 0 and 1 have no positive; the mean runs over the two others (the research
    note's example reduced [0, 0, 83.2, 67.9] to 75.55 this way)."""
    p = _unit(np.random.default_rng(6).standard_normal((4, 3))).astype(np.float32)
    t = np.array([1, 2, 3, 3])
    per = K.circle(t, p)
    assert per[0] == per[1] == 0 and per[2] > 0 and per[3] > 0
    exact_per = K.circle.exact(t, p)
    mean = K.Circle().exact(t, p)
    vals, pvals = _final_values(mean, "float32"), _final_values(exact_per, "float32")
    with mpmath.workprec(mean.final_prec):
        assert formats.round_mpf(vals[()], "float32") == \
            formats.round_mpf((pvals[2] + pvals[3]) / 2, "float32")
    _same_or_close(K.Circle()(t, p), keras.losses.Circle()(t, p), 8, "masked mean")
    # the stage-3 rule on the note's values, against Keras's own reduction
    from keras.src.losses.loss import reduce_weighted_values
    v = np.array([0, 0, 83.2, 67.9], np.float32)
    m = np.array([False, False, True, True])
    ours = lossref.reduce(v, mask=m)
    assert float(ours) == np.float32(75.55)
    assert float(ours) == float(reduce_weighted_values(v, mask=m, dtype="float32"))


def test_circle_underflowing_anchor_stays_in_the_mean():
    """Exact loss > 0 for every anchor with both pair sets, even when float32 rounds it
    to 0 (Keras's computed ``loss > 0`` mask drops it: a finding, not modelled)."""
    e = np.array([[1, 0], [1, 0], [-1, 0], [-1, 0], [0, 1]], np.float32)
    t = np.array([0, 0, 1, 1, 0])
    per = K.circle.exact(t, e, gamma=200.0, margin=0.8)
    pv = _final_values(per, "float64")
    assert all(v > 0 for v in pv) and K.circle(t, e, gamma=200.0, margin=0.8)[2] == 0
    got = K.Circle(gamma=200.0, margin=0.8)(t, e)
    with mpmath.workprec(per.final_prec):
        assert float(got) == formats.round_mpf(mpmath.fsum(pv) / 5, "float32")


def test_circle_constants_are_rounded_like_keras():
    """float32: 1 + 0.4 is formed in double then rounded (1.39999997615814), not 1 + fl(0.4)."""
    pr = K.circle.prepare(np.array([0, 1]), np.eye(2, dtype=np.float32))
    assert pr.params["optim_neg"] == float(np.float32(1.4)) != float(np.float32(0.4)) + 1
    assert pr.params["delta_neg"] == float(np.float32(0.6))
    assert pr.params["margin"] == float(np.float32(0.4)) and pr.params["gamma"] == 80.0
    pr16 = K.circle.prepare(np.array([0, 1]), np.eye(2, dtype=np.float16), margin=0.1, gamma=0.3)
    assert pr16.params["gamma"] == float(np.float16(0.3))
    assert pr16.params["optim_neg"] == float(np.float16(1.1))


def test_circle_rank_fix_with_one_dimensional_embeddings(keras):
    t, p = np.array([0, 0, 1]), np.array([[1.0], [1.0], [-1.0]], np.float32)
    _same_or_close(K.Circle(reduction=None)(t, p), keras.losses.Circle(reduction=None)(t, p),
                   4, "D = 1")


# --- Circle: bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [K.circle, K.Circle(), CIRCLE.per_sample])
def test_circle_bad_input(fn):
    p = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"batch sizes differ: y_true shape \(2,\), y_pred shape \(3, 3\)"):
        fn(np.array([0, 1]), p)
    with pytest.raises(ValueError,
                       match=r"must have shape \(batch_size,\) or \(batch_size, 1\); got shape \(3, 2\)"):
        fn(np.zeros((3, 2)), p)
    with pytest.raises(ValueError,
                       match=r"y_pred must have shape \(batch_size, embedding_dim\); got shape \(3,\)"):
        fn(np.array([0, 1, 2]), p[0])
    with pytest.raises(ValueError, match="finite labels; got nan at index 1"):
        fn(np.array([0, np.nan, 1]), p)


def test_circle_bad_references():
    t, p = np.array([0, 1, 0]), np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"ref_embeddings shape \(2, 2\) must be \(R, 3\)"):
        K.circle(t, p, ref_embeddings=np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match=r"ref_labels shape \(2,\) and ref_embeddings shape \(3, 3\)"):
        K.circle(t, p, ref_labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="must fit int32"):
        K.circle(np.array([0, 2.0 ** 40, 1]), p)
    with pytest.raises(ValueError, match="parameter gamma=nan is invalid"):
        CIRCLE.per_sample(t, p, gamma=float("nan"))
    with pytest.raises(ValueError, match=r"ref_labels shape \(3,\) and ref_embeddings shape \(4, 3\)"):
        CIRCLE.per_sample(t, p, ref_embeddings=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"circle: ref_embeddings shape \(4, 2\) must be \(R, 3\)"):
        CIRCLE.per_sample(t, p, ref_labels=[0, 1, 0, 1], ref_embeddings=np.ones((4, 2)))
