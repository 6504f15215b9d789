"""Optax dialect, structured family: CTC and Dice (lossref.optax.losses).

Signatures against optax 0.2.8, values against real optax (float32 and float64), the
reference against the oracle in the four formats, the oracles against independent
high-precision computations, and the errors.
"""

from __future__ import annotations

import inspect
import itertools
import subprocess
import sys

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.losses import generalized_dice as GD
from lossref.losses import soft_dice as SD
from lossref.optax import losses as L
from lossref.oracle import to_exact
from tests.support import FORMATS, assert_ulps, call_optax, optax_x64

NAMES = ["ctc_loss", "ctc_loss_with_forward_probs", "dice_loss", "binary_dice_loss",
         "multiclass_generalized_dice_loss"]


def _ctc_case(rng, n_b=3, n_t=6, n_k=4):
    lg = rng.standard_normal((n_b, n_t, n_k)) * 2
    pads = np.zeros((n_b, n_t))
    pads[1, 4:] = 1  # a shorter sequence
    lab = np.array([[1, 2, 2], [3, 1, 0], [1, 1, 1]])  # repeats; a padded label
    lpad = np.zeros((n_b, 3))
    lpad[1, 2] = 1
    return lg, pads, lab, lpad


# --- (a) signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_optax(name):
    _, optax = optax_x64()
    theirs = inspect.signature(getattr(optax.losses, name))
    ours = getattr(L, name)
    for sig in (inspect.signature(ours), inspect.signature(ours.exact)):
        assert [(p.name, p.kind, p.default) for p in sig.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in theirs.parameters.values()]


def test_import_does_not_import_jax():
    code = "import sys, lossref.optax; assert 'jax' not in sys.modules and 'optax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_catalogue_entries():
    assert {"soft_dice", "generalized_dice", "ctc"} <= set(lossref.names())
    y = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    z = np.array([[[2.0, -1.0], [0.5, 0.5]]])
    assert lossref.get("soft_dice").per_sample(y, z).shape == (1, 2)


# --- (b) agreement with optax -----------------------------------------------------------------------

CTC_OPTIONS = [{}, {"blank_id": 2}, {"blank_id": 3}, {"log_epsilon": -50.0}, {"log_epsilon": -3.0}]


@pytest.mark.parametrize("kw", CTC_OPTIONS)
def test_ctc_matches_optax(kw):
    """Paddings, blank ids, repeated labels (row 2: 1 1 1 in 6 frames), log_epsilon: float64
    logits within 4 ulps; float32 logits (optax log-softmaxes in float32, then carries
    float64) within the float32 rounding of the log-probabilities, T * 4 u32 relative."""
    _, optax = optax_x64()
    lg, pads, lab, lpad = _ctc_case(np.random.default_rng(1))
    for dt, tol in ((np.float64, 4 * 2.0 ** -52), (np.float32, 6 * 4 * 2.0 ** -23)):
        z = lg.astype(dt)
        ours = L.ctc_loss(z, pads, lab, lpad, **kw)
        theirs = call_optax(optax.losses.ctc_loss, z, pads, lab, lpad, **kw)
        assert ours.dtype == theirs.dtype == np.float64 and ours.shape == (3,)
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=0)
        full = L.ctc_loss_with_forward_probs(z, pads, lab, lpad, **kw)
        ref = call_optax(lambda *a, **k: optax.losses.ctc_loss_with_forward_probs(*a, **k)[1], z, pads, lab,
                         lpad, **kw)
        ref_e = call_optax(lambda *a, **k: optax.losses.ctc_loss_with_forward_probs(*a, **k)[2], z, pads, lab,
                           lpad, **kw)
        assert full[1].shape == ref.shape == (6, 3, 4) and full[2].shape == ref_e.shape == (6, 3, 3)
        # log-domain tables: absolute error relative to their magnitude (the 1e5 of log_epsilon)
        for a, b in ((full[0], ours), (full[1], ref), (full[2], ref_e)):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10)


def test_ctc_infeasible_and_log_epsilon_gate():
    """No alignment fits: optax gives -log_epsilon plus the usual terms, not inf. The
    repeat gate reads log_epsilon in float32 (a weak Python float times float32 flags)."""
    _, optax = optax_x64()
    z = np.random.default_rng(2).standard_normal((1, 4, 3))
    lab = np.array([[1, 1, 1, 1]])
    for le in (-1e5, -99999.9, -20.0):
        ours = L.ctc_loss(z, np.zeros((1, 4)), lab, np.zeros((1, 4)), log_epsilon=le)
        theirs = call_optax(optax.losses.ctc_loss, z, np.zeros((1, 4)), lab, np.zeros((1, 4)), log_epsilon=le)
        np.testing.assert_allclose(ours, theirs, rtol=4 * 2.0 ** -52)
        assert ours[0] > -le
    ours = L.ctc_loss(z, np.zeros((1, 4)), lab, np.zeros((1, 4)))
    assert ours[0] == pytest.approx(100000.61471360842, rel=1e-12)
    # log_epsilon = -inf: log_epsilon * 0 is NaN in optax's gates, so every sequence is NaN
    for fn in (L.ctc_loss, call_optax):
        args = (z, np.zeros((1, 4)), np.array([[1, 2]]), np.zeros((1, 2)))
        out = fn(*args, log_epsilon=-np.inf) if fn is L.ctc_loss else fn(optax.losses.ctc_loss, *args,
                                                                           log_epsilon=-np.inf)
        assert np.isnan(out).all()


def test_ctc_special_logits_match_optax():
    """A -inf logit poisons the one-hot contraction of its frame (0 * -inf): NaN, as optax; an
    empty label is the sum of the blank log-probabilities."""
    _, optax = optax_x64()
    z = np.random.default_rng(3).standard_normal((2, 3, 3))
    z[0, 1, 2] = -np.inf
    args = (z, np.zeros((2, 3)), np.array([[1, 2], [1, 2]]), np.array([[0.0, 0.0], [1.0, 1.0]]))
    ours = L.ctc_loss(*args)
    theirs = call_optax(optax.losses.ctc_loss, *args)
    assert np.isnan(ours[0]) and np.isnan(theirs[0])
    logp = z[1] - np.log(np.sum(np.exp(z[1]), axis=-1, keepdims=True))
    assert ours[1] == pytest.approx(-np.sum(logp[:, 0]), rel=1e-14)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=4 * 2.0 ** -52)


def _dice_inputs(rng, dt):
    z = rng.standard_normal((2, 5, 4, 3)).astype(dt)
    t = np.eye(3)[rng.integers(0, 3, (2, 5, 4))].astype(dt)
    return z, t


DICE_OPTIONS = [{}, {"alpha": 0.3, "beta": 0.7}, {"reduction": "none"}, {"reduction": "sum"},
                {"ignore_background": True}, {"class_weights": np.array([1.0, 2.0, 0.5])}, {"axis": (1,)},
                {"axis": -1, "reduction": "none"}, {"smooth": 0.0}, {"smooth": 1e-5}]


@pytest.mark.parametrize("kw", DICE_OPTIONS, ids=[str(sorted(k)) for k in DICE_OPTIONS])
def test_dice_matches_optax(kw):
    _, optax = optax_x64()
    for dt, u in ((np.float64, 2.0 ** -52), (np.float32, 2.0 ** -23)):
        z, t = _dice_inputs(np.random.default_rng(4), dt)
        kk = dict(kw)
        if "class_weights" in kk:
            kk["class_weights"] = kk["class_weights"].astype(dt)
        ours = L.dice_loss(z, t, **kk)
        theirs = call_optax(optax.losses.dice_loss, z, t, **kk)
        assert ours.dtype == theirs.dtype == dt and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=16 * u, atol=4 * u)


def test_dice_probabilities_and_dtype_rules_match_optax():
    _, optax = optax_x64()
    rng = np.random.default_rng(5)
    z, t = _dice_inputs(rng, np.float32)
    p = np.exp(z) / np.sum(np.exp(z), -1, keepdims=True)
    cases = [((p, t), {"apply_softmax": False}),
             ((z, t.astype(np.int32)), {}),                       # int targets: predictions' dtype
             ((z, t), {"smooth": np.float64(1.0)}),               # a NumPy scalar widens
             ((z, t), {"class_weights": np.array([1.0, 2.0, 3.0])}),  # float64 weights widen
             ((z[..., 0], t[..., 0]), {}),                        # a missing class axis: sigmoid
             ((z.astype(np.float16), t.astype(np.float16)), {})]
    for args, kw in cases:
        ours = L.dice_loss(*args, **kw)
        theirs = call_optax(optax.losses.dice_loss, *args, **kw)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, kw
        # optax computes the softmax in the predictions' format, then widens: its rounding there
        u = float(formats.get_format(args[0].dtype).eps)
        np.testing.assert_allclose(ours.astype(np.float64), theirs.astype(np.float64), rtol=16 * u, atol=4 * u)


def test_binary_and_generalized_dice_match_optax():
    _, optax = optax_x64()
    rng = np.random.default_rng(6)
    for dt, u in ((np.float64, 2.0 ** -52), (np.float32, 2.0 ** -23)):
        z, t = _dice_inputs(rng, dt)
        for args in ((z[..., 0], t[..., 0]), (z[..., :1], t[..., :1]), (z[0, 0, :, 0], t[0, 0, :, 0])):
            ours = L.binary_dice_loss(*args)
            theirs = call_optax(optax.losses.binary_dice_loss, *args)
            assert ours.dtype == theirs.dtype == dt and ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, rtol=16 * u, atol=4 * u)
        for kw in ({}, {"ignore_background": True}, {"smooth": 0.5}):
            ours = L.multiclass_generalized_dice_loss(z, t, **kw)
            theirs = call_optax(optax.losses.multiclass_generalized_dice_loss, z, t, **kw)
            assert ours.dtype == theirs.dtype == dt and ours.shape == ()
            np.testing.assert_allclose(ours, theirs, rtol=64 * u)


def test_binary_dice_without_sigmoid_raises_like_optax():
    """One class: optax's sums-to-one check reads the single probability, so only p = 1 passes."""
    _, optax = optax_x64()
    p, t = np.array([[0.9, 0.2]]), np.array([[1.0, 0.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        L.binary_dice_loss(p, t, apply_sigmoid=False)
    with pytest.raises(ValueError, match="sum to 1"):
        call_optax(optax.losses.binary_dice_loss, p, t, apply_sigmoid=False)
    ones = np.ones((1, 2))
    np.testing.assert_allclose(L.binary_dice_loss(ones, t, apply_sigmoid=False),
                               call_optax(optax.losses.binary_dice_loss, ones, t, apply_sigmoid=False), rtol=1e-15)


# --- (c) reference against oracle, oracle against independent values --------------------------------


def _adversarial_dice(fmt, rng):
    """(targets, logits) groups (B=1, pixels 6, classes 3) that stress the soft Dice in `fmt`:
    perfect and near-perfect predictions (large logits), a dominant wrong class, tiny and
    subnormal logit gaps, soft labels, empty classes, logits near the format's maximum."""
    f = formats.get_format(fmt)
    lab = np.array([0, 1, 2, 0, 0, 1])
    one = np.eye(3)[lab]
    rows_z, rows_t = [], []
    rows_z.append(one * 30.0)                     # near perfect: 1 - p about e^-30
    rows_t.append(one)
    rows_z.append(one * 8.0)
    rows_t.append(one)
    rows_z.append(-one * 12.0)                    # confidently wrong
    rows_t.append(one)
    rows_z.append(one * float(f.eps))             # nearly uniform probabilities
    rows_t.append(one)
    rows_z.append(one * min(float(f.max) / 4, 1e4))  # huge logits: exact 0/1 probabilities
    rows_t.append(one)
    soft = np.abs(rng.standard_normal((6, 3)))
    rows_z.append(rng.standard_normal((6, 3)) * 4)
    rows_t.append(soft / soft.sum(-1, keepdims=True))  # soft labels
    rows_z.append(rng.standard_normal((6, 3)))
    rows_t.append(np.zeros((6, 3)))               # no target at all
    z = formats.round_array(np.asarray(rows_z), f)[:, None]
    t = formats.round_array(np.asarray(rows_t), f)[:, None]
    return t.reshape(len(rows_z), 1, 6, 3), z.reshape(len(rows_z), 1, 6, 3)


DICE_BUDGET = {"float16": 1, "bfloat16": 1, "float32": 1, "float64": 4}


@pytest.mark.parametrize("fmt", FORMATS)
def test_dice_reference_within_budget(fmt):
    rng = np.random.default_rng(7)
    t, z = _adversarial_dice(fmt, rng)
    dt = formats.get_format(fmt).dtype
    for i in range(t.shape[0]):
        a, b = t[i].astype(dt), z[i].astype(dt)
        for kw in ({"reduction": "none"}, {"reduction": "none", "alpha": 0.25, "beta": 0.75}, {"smooth": 1e-3},
                   {"reduction": "none", "smooth": 0.0}):
            assert_ulps(L.dice_loss(b, a, **kw), L.dice_loss.exact(b, a, **kw), fmt, DICE_BUDGET[fmt],
                        f"dice case {i} {kw}")
        assert_ulps(L.binary_dice_loss(b[..., 0], a[..., 0]), L.binary_dice_loss.exact(b[..., 0], a[..., 0]),
                    fmt, DICE_BUDGET[fmt], f"binary case {i}")
        assert_ulps(L.multiclass_generalized_dice_loss(b, a), L.multiclass_generalized_dice_loss.exact(b, a),
                    fmt, DICE_BUDGET[fmt], f"generalized case {i}")


def test_dice_values_by_hand():
    """Hand values: empty class (y = p... = 0) gives 0 with smoothing, a perfect one-hot sigmoid
    limit, and the smoothing in both numerator and denominator."""
    p = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    t = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    # class 0: I = 1.5, P = 1.5, T = 2 -> 1 - 2.5 / (1.5 + .25 + 1) ; class 1: I = 0, P = .5, T = 0
    want = np.array([[1 - 2.5 / 2.75, 1 - 1 / 1.25]])
    np.testing.assert_allclose(L.dice_loss(p, t, apply_softmax=False, reduction="none"), want, rtol=1e-15)
    assert L.dice_loss.exact(p, t, apply_softmax=False, reduction="none").decimal(6).tolist() == \
        [["9.09091e-2", "2.00000e-1"]]
    assert float(L.dice_loss(p, t, apply_softmax=False, smooth=0.0, reduction="none")[0, 1]) == 1.0


def _independent_soft_dice(y, z, alpha, beta, s):
    """Per class, by plain loops in mpmath at 60 digits (softmax, sums, quotient)."""
    with mpmath.workdps(60):
        n_b, n_px, n_c = y.shape
        out = []
        for b in range(n_b):
            probs = []
            for i in range(n_px):
                e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[b, i]]
                tot = mpmath.fsum(e)
                probs.append([v / tot for v in e])
            row = []
            for c in range(n_c):
                inter = mpmath.fsum(mpmath.mpf(float(y[b, i, c])) * probs[i][c] for i in range(n_px))
                ps = mpmath.fsum(probs[i][c] for i in range(n_px))
                ts = mpmath.fsum(mpmath.mpf(float(y[b, i, c])) for i in range(n_px))
                row.append(1 - (inter + s) / (inter + alpha * (ps - inter) + beta * (ts - inter) + s))
            out.append(row)
        return out


def test_soft_dice_oracle_against_independent_loops():
    rng = np.random.default_rng(8)
    y = np.eye(3)[rng.integers(0, 3, (2, 5))]
    z = rng.standard_normal((2, 5, 3)) * 3
    want = _independent_soft_dice(y, z, 0.3, 0.7, 0.5)
    with mpmath.workdps(60):
        got = SD.oracle(to_exact(y), to_exact(z), 0.3, 0.7, 0.5, None, "softmax")
        for g, w in zip(np.ravel(got), itertools.chain(*want)):
            assert abs(g - w) <= mpmath.mpf(10) ** -50


def test_generalized_dice_oracle_by_hand():
    y = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # volumes 2 and 1
    z = np.zeros_like(y)                                    # p = 1/2 everywhere
    with mpmath.workdps(50):
        got = GD.oracle(to_exact(y), to_exact(z), 1.0, "softmax", False, 0.0)
        # class 0: I = 1, P = 1.5, T = 2 -> 1 - 2/2.75; class 1: I = .5, P = 1.5, T = 1 -> 1 - 1.5/2.25
        w0, w1 = mpmath.mpf(1) / 4, mpmath.mpf(1)
        d0, d1 = 1 - mpmath.mpf(2) / mpmath.mpf("2.75"), 1 - mpmath.mpf("1.5") / mpmath.mpf("2.25")
        want = (2 * w0 / (w0 + w1) * d0 + 2 * w1 / (w0 + w1) * d1) / 2
        assert abs(got[()] - want) < mpmath.mpf(10) ** -45


def _ctc_adversarial(fmt, rng):
    """(logits, labels) cases in `fmt`: a dominant path, near-uniform logits, logits of
    +-1e3 (+-60 in float16), a label needing every frame, repeats, a label equal to the blank."""
    f = formats.get_format(fmt)
    big = 60.0 if f.name == "float16" else 1e3
    cases = []
    z = rng.standard_normal((2, 5, 4))
    cases.append((z * 0.01, np.array([[1, 2, 3], [1, 1, 2]])))
    dom = np.full((1, 5, 4), -big)
    for t, c in enumerate([1, 0, 1, 2, 0]):
        dom[0, t, c] = big
    cases.append((dom, np.array([[1, 1, 2]])))                 # one dominant alignment
    cases.append((rng.standard_normal((1, 5, 4)) * big / 10, np.array([[1, 1, 2]])))
    cases.append((rng.standard_normal((1, 5, 4)), np.array([[1, 1, 1]])))  # needs 5 frames exactly
    cases.append((rng.standard_normal((1, 4, 4)), np.array([[2, 2, 2]])))  # infeasible: the epsilon path
    cases.append((rng.standard_normal((1, 4, 4)), np.array([[0, 3]])))     # a label equal to the blank
    return [(formats.round_array(c, f).astype(f.dtype), lab) for c, lab in cases]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ctc_reference_within_budget(fmt):
    """float64 results from logits in every format (optax's result is float64): within
    u * T * (Lambda + |log_epsilon| + 1) absolute, the page's bound, for losses and tables."""
    rng = np.random.default_rng(9)
    for z, lab in _ctc_adversarial(fmt, rng):
        n_b, n_t, _ = z.shape
        pads, lpad = np.zeros((n_b, n_t)), np.zeros(lab.shape)
        if n_b > 1:
            pads[1, 3:] = 1
        ours = L.ctc_loss_with_forward_probs(z, pads, lab, lpad)
        exact = L.ctc_loss_with_forward_probs.exact(z, pads, lab, lpad)
        lam = np.sum(np.max(np.abs(z.astype(np.float64)), axis=(0, 2))) * 2 + 1e5 + 1
        bound = 2.0 ** -52 * n_t * lam
        for a, e in zip(ours, exact):
            vals = np.asarray(e.values(200), dtype=object)
            err = np.abs(a - np.array([float(v) for v in vals.ravel()]).reshape(a.shape))
            assert np.all((err <= bound) | (np.isnan(a) & np.isnan(err))), (fmt, lab, err.max(), bound)
        # a feasible loss does not see log_epsilon: 4 ulps + u T Lambda (the catalogue's bound)
        if np.all(ours[0] < 1e4):
            lam_b = np.sum(np.max(np.abs(z.astype(np.float64)), axis=2), axis=1) * 2 + 1
            want = np.array([float(v) for v in exact[0].values(200)])
            err = np.abs(ours[0] - want)
            assert np.all(err <= 4 * np.spacing(want) + 2.0 ** -52 * n_t * lam_b), (fmt, lab, err)


def _brute_force_ctc(z, labels):
    """-log of the sum over every path of K**T symbols that collapses to `labels` (blank 0),
    at 50 digits."""
    with mpmath.workdps(50):
        n_t, n_k = z.shape
        prob = []
        for t in range(n_t):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[t]]
            tot = mpmath.fsum(e)
            prob.append([v / tot for v in e])
        total = mpmath.mpf(0)
        for path in itertools.product(range(n_k), repeat=n_t):
            collapsed = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
            if collapsed == list(labels):
                total += mpmath.fprod(prob[t][c] for t, c in enumerate(path))
        return -mpmath.log(total)


def test_ctc_oracle_against_brute_force():
    """Feasible labels: optax's automaton equals the true CTC up to exp(log_epsilon) terms
    (about e^-100000 here), far below 40 digits."""
    rng = np.random.default_rng(10)
    for labels in ([1], [1, 1], [1, 2], [2, 1, 2], []):
        z = rng.standard_normal((1, 4, 3)) * 2
        lab = np.array([labels + [1] * (3 - len(labels))])
        lpad = np.array([[0.0] * len(labels) + [1.0] * (3 - len(labels))])
        got = L.ctc_loss.exact(z, np.zeros((1, 4)), lab, lpad).decimal(40)[0]
        want = mpmath.nstr(_brute_force_ctc(z[0], labels), 40)
        assert mpmath.mpf(got) == pytest.approx(mpmath.mpf(want), rel=1e-38), labels
        cat = lossref.get("ctc").exact(np.array([labels + [0] * (3 - len(labels))]), z).round(np.float64)
        assert L.ctc_loss(z, np.zeros((1, 4)), lab, lpad)[0] == pytest.approx(cat[0], rel=4 * 2.0 ** -52)


# --- (d) errors -------------------------------------------------------------------------------------


def test_ctc_errors():
    lg, pads, lab, lpad = _ctc_case(np.random.default_rng(11))
    bad = [((lg[0], pads, lab, lpad), {}, ValueError, "shape \\(B, T, K\\)"),
           ((lg, pads[:, :3], lab, lpad), {}, ValueError, "logit_paddings must have shape"),
           ((lg, pads + 0.5, lab, lpad), {}, ValueError, "0.0 \\(kept\\) or 1.0"),
           ((lg, pads, lab, np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 0]])), {}, ValueError, "right-padded"),
           ((lg, pads, lab + 3, lpad), {}, ValueError, "outside \\[0, 4\\)"),
           ((lg, pads, lab[:2], lpad[:2]), {}, ValueError, "batch size"),
           ((lg, pads, lab, lpad), {"blank_id": 4}, ValueError, "blank_id"),
           ((lg, pads, lab, lpad), {"blank_id": 1.0}, TypeError, "blank_id"),
           ((lg, pads, lab, lpad), {"log_epsilon": "x"}, TypeError, "log_epsilon"),
           ((lg.astype(np.int32), pads, lab, lpad), {}, TypeError, "logits"),
           ((lg, pads, lab + 0.5, lpad), {}, ValueError, "integer")]
    for args, kw, err, msg in bad:
        for fn in (L.ctc_loss, L.ctc_loss_with_forward_probs):
            with pytest.raises(err, match=msg):
                fn(*args, **kw)
    with pytest.raises(TypeError):
        L.ctc_loss(lg, pads, lab, lpad, 0)  # blank_id is keyword-only


def test_dice_errors():
    z, t = _dice_inputs(np.random.default_rng(12), np.float64)
    bad = [((z, t), {"reduction": "batch"}, ValueError, "Unsupported reduction"),
           ((z, t[..., :2]), {}, ValueError, "must be equal"),
           ((z, t), {"class_weights": [1.0, 2.0, 3.0]}, TypeError, "class_weights must be an array"),
           ((z, t), {"class_weights": np.ones((3, 1))}, ValueError, "rank 1"),
           ((z, t), {"apply_softmax": False}, ValueError, "sum to 1"),
           ((z, t), {"smooth": "1"}, TypeError, "smooth"),
           ((z, t), {"apply_softmax": 1}, TypeError, "apply_softmax"),
           ((np.float64(1.0), np.float64(1.0)), {}, ValueError, "class axis")]
    for args, kw, err, msg in bad:
        with pytest.raises(err, match=msg):
            L.dice_loss(*args, **kw)
    with pytest.raises(ValueError, match="must be equal"):
        L.multiclass_generalized_dice_loss(z[..., 0], t)
    with pytest.raises(TypeError):
        L.dice_loss(z, t, None)  # class_weights is keyword-only
