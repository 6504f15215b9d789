"""Reference gradients of CTC: the catalogue (logits and log-probabilities), the torch, TF,
Keras and optax dialects, against numerical differentiation of the oracles and against
torch.autograd / jax.grad (spec/losses/ctc.md, Gradient)."""

from __future__ import annotations

import numpy as np
import pytest

import lossref
from lossref.formats import get_format, to_format_array
from lossref.keras import losses as keras_losses
from lossref.losses import ctc
from lossref.numerics import log_softmax
from lossref.optax import losses as optax_losses
from lossref.tf import nn as tf_nn
from lossref.torch.nn import functional as F

from .gradcheck import assert_grad_ulps, numeric_vjp
from .support import ulp_errors

LOSS = lossref.get("ctc")
U = 2.0 ** -53


def _floats(ex) -> np.ndarray:
    return np.array([float(v) for v in np.ravel(ex)]).reshape(np.shape(ex))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _assert_logit_bound(got, ex, z, cot, what, k=4.0):
    """Within 4 ulps, or within ``k·u·|cot|·(q(1-γ) + γ(1-q))``: the two terms of
    ``cot·(q - γ)``, whose difference is the inherent cancellation (spec's budget)."""
    exf = _floats(ex)
    c = np.reshape(cot, (-1, 1, 1))
    q = _softmax(z)
    gam = q - exf / c
    terms = np.abs(c) * (q * (1 - gam) + gam * (1 - q))
    err = ulp_errors(got, ex, get_format("float64"))
    ok = (err <= 4) | (np.abs(got - exf) <= k * U * terms)
    assert ok.all(), f"{what}: {err[~ok].max():.3g} ulp beyond the bound"


def _case(rng, n_b, n_t, n_c, width=2, scale=1.0):
    labels = np.zeros((n_b, width))
    for b in range(n_b):
        n = rng.integers(0, width + 1)
        labels[b, :n] = rng.integers(1, n_c, n)
    # keep every sample feasible: T >= n + repeats
    return labels, rng.standard_normal((n_b, n_t, n_c)) * scale


# --- catalogue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 6.0, 40.0])
def test_catalogue_log_probs_four_ulps(scale):
    rng = np.random.default_rng(int(scale))
    for _ in range(3):
        labels, z = _case(rng, 2, 5, 4, scale=scale)
        lp = log_softmax(z)
        lens = np.array([5, 4])
        cot = rng.standard_normal(2)
        ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": lp}, "y_pred", cot,
                         log_probs=True, input_lengths=lens)
        got = ctc.grad_reference(labels, lp, cot, log_probs=True, input_lengths=lens)["y_pred"]
        assert_grad_ulps(got, ex, "float64", 4, f"log_probs scale {scale}")
        assert np.all(got[1, 4] == 0)  # past the length


@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])
def test_catalogue_logits(scale):
    rng = np.random.default_rng(10 + int(scale))
    for n_t in (3, 6):
        labels, z = _case(rng, 2, n_t, 4, scale=scale)
        cot = rng.standard_normal(2)
        ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": z}, "y_pred", cot)
        got = LOSS.per_sample_vjp64(labels, z, {}, cot)["y_pred"]
        _assert_logit_bound(got, ex, z, cot, f"logits scale {scale}")


def test_catalogue_adversarial():
    rng = np.random.default_rng(5)
    cases = [
        (np.array([[1., 1., 2.]]), rng.standard_normal((1, 4, 3))),   # T = n + r exactly: one path
        (np.array([[2., 0.]]), np.zeros((1, 6, 3))),                  # uniform
        (np.array([[1., 2.]]), np.array([[[30., -5., 0.], [-5., 40., 1.], [0., 0., 50.],
                                          [20., 1., -3.]]])),         # a dominant path: q, γ near 1
        (np.array([[3., 1.]]), rng.standard_normal((1, 5, 4)) * 300),  # large logits: entries to 1e-322
        (np.array([[0., 0.]]), rng.standard_normal((1, 4, 3))),       # empty label
    ]
    for labels, z in cases:
        cot = np.array([1.7])
        # enough bits that the differences resolve gradients down to the subnormals
        ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": z}, "y_pred", cot, prec=1600)
        got = ctc.grad_reference(labels, z, cot)["y_pred"]
        _assert_logit_bound(got, ex, z, cot, f"adversarial {labels.tolist()}")
    # tiny and subnormal logits: the exact gradient is that at 0 to about 1e-300 relative (a
    # difference step far below them would need over 1000 bits, so the reference point is 0)
    labels = np.array([[1., 2.]])
    z = rng.standard_normal((1, 5, 4)) * 1e-300
    z[0, 0, :2] = [5e-324, -2.5e-320]
    ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": np.zeros_like(z)}, "y_pred")
    assert_grad_ulps(ctc.grad_reference(labels, z, np.ones(1))["y_pred"], ex, "float64", 4, "tiny logits")


def test_catalogue_one_minus_q_does_not_cancel():
    """A dominant path: q and γ within 1e-13 of 1 at the dominant classes; the gradient
    there (about e^-30) keeps its relative accuracy."""
    z = np.array([[[35., 0., 1.], [0., 36., 2.], [37., 0., 1.]]])
    labels = np.array([[1.]])
    ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": z}, "y_pred")
    got = ctc.grad_reference(labels, z, np.ones(1))["y_pred"]
    top = z == z.max(-1, keepdims=True)  # q and γ near 1: -(e^-35 ...) without cancellation
    assert_grad_ulps(got[top], ex[top], "float64", 4, "dominant path")
    _assert_logit_bound(got, ex, z, np.ones(1), "dominant path")  # the others: q ≈ γ ≈ e^-35


def test_catalogue_infeasible_is_nan_at_read_steps():
    labels = np.array([[1., 1.], [1., 0.]])
    z = np.random.default_rng(2).standard_normal((2, 2, 3))  # (1, 1) needs 3 steps
    got = ctc.grad_reference(labels, z, np.ones(2))["y_pred"]
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()
    ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels[:1], "y_pred": z[:1]}, "y_pred")
    assert np.isnan(_floats(ex)).all()  # inf - inf: the oracle's differences agree
    g = ctc.grad_reference(labels, z, np.ones(2), log_probs=True, input_lengths=np.array([1, 2]))["y_pred"]
    assert np.isnan(g[0, 0]).all() and np.all(g[0, 1] == 0)


def test_catalogue_special_values():
    z = np.random.default_rng(3).standard_normal((1, 3, 3))
    labels = np.array([[1.]])
    z1 = z.copy()
    z1[0, 1, 2] = -np.inf  # probability 0, not in the label: finite, 0 there
    g = ctc.grad_reference(labels, z1, np.ones(1))["y_pred"]
    assert np.isfinite(g).all() and g[0, 1, 2] == 0
    ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": z}, "y_pred")
    for bad in (np.nan, np.inf):
        z2 = z.copy()
        z2[0, 1, 2] = bad  # the value is NaN (a +inf logit: NaN probability there)
        assert np.isnan(ctc.grad_reference(labels, z2, np.ones(1))["y_pred"]).all()
    assert np.isfinite(_floats(ex)).all()


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16"])
def test_catalogue_narrow_formats_one_ulp(fmt):
    rng = np.random.default_rng(7)
    labels, z = _case(rng, 2, 4, 3, scale=2.0)
    z = np.asarray(to_format_array(z, fmt), np.float64)
    cot = np.asarray(to_format_array(rng.standard_normal(2), fmt), np.float64)
    for lp in (False, True):
        x = np.asarray(to_format_array(log_softmax(z), fmt), np.float64) if lp else z
        ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": x}, "y_pred", cot,
                         log_probs=lp)
        got = to_format_array(ctc.grad_reference(labels, x, cot, log_probs=lp)["y_pred"], fmt)
        assert_grad_ulps(got, ex, fmt, 1, f"{fmt} log_probs={lp}")


# --- dialects -------------------------------------------------------------------------------------


def _dialect_numeric(fn, pr, cot):
    return numeric_vjp(lambda y_true, y_pred, **kw: fn._oracle(y_true, y_pred, **kw),
                       {"y_true": pr.y_true, "y_pred": pr.y_pred}, "y_pred", cot, **pr.params)


@pytest.mark.parametrize("blank", [0, 2])
def test_torch_vjp_vs_oracle(blank):
    rng = np.random.default_rng(20 + blank)
    lp = log_softmax(rng.standard_normal((5, 2, 4)) * 2)  # (T, N, C)
    targets = np.array([[1, 3], [3, 3]]) if blank == 2 else np.array([[1, 3], [2, 2]])
    fn = F.ctc_loss
    pr = fn.prepare(lp, targets, input_lengths=[5, 5], target_lengths=[2, 2], blank=blank,
                    reduction="none")
    cot = rng.standard_normal(2)
    got = fn.vjp64(pr, cot)["y_pred"]
    assert_grad_ulps(got, _dialect_numeric(fn, pr, cot), "float64", 4, f"torch blank {blank}")


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_torch_infeasible_and_poisoned(zero_infinity):
    """Measured on torch 2.13: an infinite loss gives NaN at the sample's read steps (0
    after them) without zero_infinity, 0 everywhere with it; a NaN read gives NaN."""
    lp = log_softmax(np.random.default_rng(4).standard_normal((4, 3, 3)))
    lp[1, 2, 0] = np.nan  # sample 2 reads it: poisoned
    g = F.ctc_loss.grad(lp, np.array([[1, 1], [1, 2], [1, 0]]), [2, 4, 3], [2, 2, 1], reduction="sum",
                        zero_infinity=zero_infinity)
    inf_sample = g[:, 0]
    if zero_infinity:
        assert np.all(inf_sample == 0)
    else:
        assert np.isnan(inf_sample[:2]).all() and np.all(inf_sample[2:] == 0)
    assert np.isfinite(g[:, 1]).all()
    assert np.isnan(g[:3, 2]).all() and np.all(g[3:, 2] == 0)


def test_torch_against_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    z = rng.standard_normal((5, 3, 4))
    targets = np.array([[1, 2], [3, 3], [2, 0]])
    il, tl = [5, 4, 5], [2, 2, 1]
    lp = log_softmax(z, axis=-1)
    for zi in (False, True):
        x = torch.tensor(lp, requires_grad=True)
        out = torch.nn.functional.ctc_loss(x, torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                                           reduction="mean", zero_infinity=zi)
        out.backward()
        ours = F.ctc_loss.grad(lp, targets, il, tl, reduction="mean", zero_infinity=zi)
        # torch's backward adds exp(log_probs)·cot at the read steps (the logits' gradient
        # through a log_softmax): the derivative of its value is ours
        read = (np.arange(5)[:, None] < np.array(il)[None, :])[..., None]
        cot = 1.0 / np.maximum(np.array(tl), 1) / 3
        np.testing.assert_allclose(x.grad.numpy(), ours + read * cot[None, :, None] * np.exp(lp),
                                   rtol=1e-12, atol=1e-14)
        # through log_softmax both are the logits' gradient
        zt = torch.tensor(z, requires_grad=True)
        torch.nn.functional.ctc_loss(torch.log_softmax(zt, -1), torch.tensor(targets), torch.tensor(il),
                                     torch.tensor(tl), reduction="mean", zero_infinity=zi).backward()
        via = np.moveaxis(ctc.softmax_vjp(np.moveaxis(z, 0, 1), np.moveaxis(ours, 0, 1)), 0, 1)
        np.testing.assert_allclose(zt.grad.numpy(), via, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("blank", [None, 2])
def test_tf_vjp_vs_oracle(blank):
    rng = np.random.default_rng(30)
    z = rng.standard_normal((5, 2, 4)) * 2  # (T, B, C)
    labels = np.array([[1, 3], [3, 3]]) if blank == 2 else np.array([[1, 3], [2, 2]])
    fn = tf_nn.ctc_loss
    pr = fn.prepare(labels, z, label_length=np.array([2, 2]), logit_length=np.array([5, 4]),
                    blank_index=blank)
    cot = rng.standard_normal(2)
    got = fn.vjp64(pr, cot)["y_pred"]
    _assert_logit_bound(got, _dialect_numeric(fn, pr, cot), pr.y_pred, cot, f"tf blank {blank}")
    assert np.all(got[1, 4] == 0)


def test_keras_vjp_is_catalogue_on_float32_logits():
    rng = np.random.default_rng(9)
    labels = np.array([[1, 2, 0], [2, 2, 1]])
    z = rng.standard_normal((2, 6, 3))
    z32 = z.astype(np.float32).astype(np.float64)
    want = ctc.grad_reference(labels, z32, np.ones(2))["y_pred"]
    for fn in (keras_losses.ctc, keras_losses.CTC(reduction="sum")):
        np.testing.assert_array_equal(fn.grad(labels, z), to_format_array(want, "float32"))
    ex = numeric_vjp(LOSS.per_sample_exact, {"y_true": labels, "y_pred": z32}, "y_pred")
    _assert_logit_bound(want, ex, z32, np.ones(2), "keras")


def _optax_case(rng, infeasible=False):
    z = rng.standard_normal((2, 5, 4)) * 2
    labels = np.array([[2, 2], [1, 3]])
    lpad = np.array([[0., 0.], [0., 1.]])
    pad = np.array([[0., 0., 0., 0., 0.], [0., 0., 0., 1., 1.]])
    if infeasible:  # (2, 2) needs 3 frames
        z, pad = z[:, :2], pad[:, :2]
    return z, pad, labels, lpad


@pytest.mark.parametrize("log_epsilon,infeasible", [(-1e5, False), (-3.0, False), (-1e5, True)])
def test_optax_vjp_vs_oracle(log_epsilon, infeasible):
    rng = np.random.default_rng(40)
    z, pad, labels, lpad = _optax_case(rng, infeasible)
    fn = optax_losses.ctc_loss
    pr = fn.prepare(z, pad, labels=labels, label_paddings=lpad, log_epsilon=log_epsilon)
    cot = rng.standard_normal(2)
    got = fn.vjp64(pr, cot)["y_pred"]
    assert np.isfinite(got).all()  # optax's automaton: finite even where no alignment fits
    _assert_logit_bound(got, _dialect_numeric(fn, pr, cot), z, cot, f"optax {log_epsilon}")
    assert np.all(got[1][pad[1] == 1] == 0)  # padded frames


def test_optax_against_jax_grad():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(41)
    for infeasible in (False, True):
        z, pad, labels, lpad = _optax_case(rng, infeasible)
        cot = rng.standard_normal(2)
        vjp = jax.jit(jax.grad(lambda x, c: (optax.losses.ctc_loss(x, pad, labels, lpad) * c).sum()))
        want, ones = vjp(z, cot), vjp(z, np.ones(2))  # one compilation per shape
        pr = optax_losses.ctc_loss.prepare(z, pad, labels=labels, label_paddings=lpad)
        # an infeasible label runs through states near log_epsilon = -1e5, where jax's log-space
        # rounding is about 1e5·u (the reference is checked against the oracle above)
        tol = 1e-9 if infeasible else 1e-12
        np.testing.assert_allclose(optax_losses.ctc_loss.vjp64(pr, cot)["y_pred"], np.asarray(want),
                                   rtol=tol, atol=tol / 100)
        np.testing.assert_allclose(optax_losses.ctc_loss.grad(z, pad, labels, lpad), np.asarray(ones),
                                   rtol=tol, atol=tol / 100)


def test_optax_nan_and_tables():
    rng = np.random.default_rng(42)
    z, pad, labels, lpad = _optax_case(rng)
    # optax's one-hot contraction gives a NaN value (jax.grad: NaN for the sequence); the
    # definition's NaN is a constant with no gradient, the other sequence is untouched
    z[1, 1, 0] = -np.inf
    fn = optax_losses.ctc_loss
    g = fn.vjp64(fn.prepare(z, pad, labels=labels, label_paddings=lpad), np.ones(2))["y_pred"]
    assert (g[1] == 0).all() and np.isfinite(g[0]).all()
    z, pad, labels, lpad = _optax_case(rng)
    tab = optax_losses.ctc_loss_with_forward_probs
    pr = tab.prepare(z, pad, labels=labels, label_paddings=lpad)
    cot = np.array([0.5, -2.0])
    loss_only = fn.vjp64(fn.prepare(z, pad, labels=labels, label_paddings=lpad), cot)["y_pred"]
    zeros = (cot, np.zeros((5, 2, 3)), np.zeros((5, 2, 2)))
    np.testing.assert_array_equal(tab.vjp64(pr, zeros)["y_pred"], loss_only)
    with pytest.raises(NotImplementedError):
        tab.vjp64(pr, (cot, np.ones((5, 2, 3)), np.zeros((5, 2, 2))))


def test_dialect_grad_maps_back_with_a_moved_blank():
    """``.grad`` on the framework's layout (time-major, blank not 0) equals ``.exact_grad``."""
    rng = np.random.default_rng(50)
    tg = np.array([[1, 0], [1, 3]])
    lp = log_softmax(rng.standard_normal((3, 2, 4)))
    got = F.ctc_loss.grad(lp, tg, [3, 3], [1, 2], blank=2)
    ex = F.ctc_loss.exact_grad(lp, tg, [3, 3], [1, 2], blank=2)
    assert_grad_ulps(got, ex.round(np.float64), "float64", 4, "torch blank 2")
    z = rng.standard_normal((4, 2, 4)).astype(np.float32)
    kw = dict(label_length=np.array([1, 2]), logit_length=np.array([4, 3]), blank_index=2)
    got = tf_nn.ctc_loss.grad(tg, z, **kw)
    assert got.dtype == np.float32 and got.shape == z.shape
    assert_grad_ulps(got, tf_nn.ctc_loss.exact_grad(tg, z, **kw).round(np.float64), "float32", 1, "tf blank 2")
