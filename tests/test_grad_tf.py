"""Reference gradients of the TF dialect (``lossref.tf.nn``, CTC aside): ``vjp64`` against
central differences of each function's oracle (float64: 4 ulp, float32 inputs: 1 ulp
after one rounding; a cancelling difference within 8 u of its terms) and against
``tf.GradientTape`` on points away from kinks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lossref import formats
from lossref.dialect import exact_params
from lossref.tf import nn

from .gradcheck import assert_grad_ulps, numeric_vjp

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

RNG = np.random.default_rng(515)
Y = RNG.uniform(0.05, 0.95, (3, 4))

# (name, arguments by name, differentiable argument -> gradient key, integer labels, terms bound)
CASES = [
    ("sigmoid_cross_entropy_with_logits", {"labels": Y, "logits": RNG.uniform(-6, 6, (3, 4))},
     {"labels": "y_true", "logits": "y_pred"}, False, 2),
    ("sigmoid_cross_entropy_with_logits", {"labels": np.array([1.0, 0.0, 1.0, 0.5]),
                                           "logits": np.array([30.0, -30.0, 0.0, 1e-20])},
     {"labels": "y_true", "logits": "y_pred"}, False, 0),
    ("weighted_cross_entropy_with_logits", {"labels": Y, "logits": RNG.uniform(-6, 6, (3, 4)),
                                            "pos_weight": RNG.uniform(0.5, 3, (3, 4))},
     {"labels": "y_true", "logits": "y_pred", "pos_weight": "pos_weight"}, False, 8),
    ("softmax_cross_entropy_with_logits", {"labels": RNG.dirichlet(np.ones(5), 3),
                                           "logits": RNG.uniform(-5, 5, (3, 5))},
     {"labels": "y_true", "logits": "y_pred"}, False, 2),
    ("sparse_softmax_cross_entropy_with_logits", {"labels": np.array([0, 4, 2]),
                                                  "logits": RNG.uniform(-5, 5, (3, 5))},
     {"logits": "y_pred"}, True, 0),
    ("log_poisson_loss", {"targets": RNG.uniform(0, 4, (3, 4)), "log_input": RNG.uniform(-2, 2, (3, 4))},
     {"targets": "y_true", "log_input": "y_pred"}, False, 60),
    ("l2_loss", {"t": RNG.uniform(-3, 3, (3, 4))}, {"t": "y_pred"}, False, 0),
]
KW = {"log_poisson_loss": {"compute_full_loss": True}}


def _ids(c):
    return c[0]


def _prepare(name, args, dtype, labels):
    fn = getattr(nn, name)
    arrs = {k: (np.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else np.asarray(v, np.int64))
            for k, v in args.items()}
    names = list(arrs)
    kw = dict(KW.get(name, {}))
    if name == "l2_loss":
        pr = fn.prepare(arrs["t"], None)
    else:
        pr = fn.prepare(arrs[names[0]], arrs[names[1]], **{k: arrs[k] for k in names[2:]}, **kw)
    return fn, arrs, kw, pr



@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_oracle(case, dtype):
    name, args, diff, labels, terms = case
    fn, arrs, kw, pr = _prepare(name, args, dtype, labels)
    cot = np.random.default_rng(3).uniform(0.25, 2.0, np.shape(fn.values64(pr)))
    got = fn.vjp64(pr, cot)
    floats = {"y_pred": pr.y_pred}
    if not labels and name != "l2_loss":
        floats["y_true"] = pr.y_true
    for k in diff.values():
        if k not in floats:
            floats[k] = pr.params[k]
    fixed = {k: v for k, v in pr.params.items() if k not in floats}
    if labels or name == "l2_loss":
        fixed["y_true"] = pr.y_true
    fmt = formats.get_format(dtype)

    def f(**a):
        return fn._oracle(**a, **exact_params(fixed))

    for k in diff.values():
        exact = numeric_vjp(f, floats, k, cot)
        g = np.broadcast_to(np.asarray(got[k], np.float64), np.shape(floats[k]))
        if terms:
            near = np.abs(g - exact.astype(float)) <= 8 * 2.0 ** -53 * 2.0 * terms
            exact = np.where(near, g, exact)
        if fmt is formats.FLOAT64:
            assert_grad_ulps(g, exact, "float64", 4, f"{name} d/d{k}")
        else:
            assert_grad_ulps(formats.to_format_array(g, fmt), exact, fmt, 1, f"{name} d/d{k} {fmt.name}")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_against_tape(case):
    name, args, diff, labels, terms = case
    fn, arrs, kw, pr = _prepare(name, args, np.float64, labels)
    cot = np.random.default_rng(3).uniform(0.25, 2.0, np.shape(fn.values64(pr)))
    if name == "l2_loss":  # before TF's stage 3 (sum / 2): the tape's gradient is half ours with cot = 1
        cot = np.full(np.shape(fn.values64(pr)), 0.5)
    got = fn.vjp64(pr, cot)
    tens = {k: (tf.Variable(v) if k in diff else tf.constant(v)) for k, v in arrs.items()}
    with tf.GradientTape() as tape:
        out = getattr(tf.nn, name)(**tens, **kw)
        total = tf.reduce_sum(out) if name == "l2_loss" else tf.reduce_sum(out * tf.constant(cot.reshape(np.shape(out))))
    grads = tape.gradient(total, [tens[k] for k in diff])
    for (arg, key), want in zip(diff.items(), grads):
        g = np.broadcast_to(np.asarray(got[key]), arrs[arg].shape)
        w = want.numpy()
        if name == "sigmoid_cross_entropy_with_logits" and not terms and key == "y_pred":
            continue  # TF's sigmoid(x) - z cancels at |x| = 30 (see the spec); checked by the oracle
        np.testing.assert_allclose(g, w, rtol=2e-10, atol=1e-300, err_msg=f"{name} d/d{arg}")


def test_weighted_at_zero_logit_follows_the_definition():
    # TF's abs/relu form gives 1 - z at x = 0; the derivative is (1 - z - q z) / 2
    pr = nn.weighted_cross_entropy_with_logits.prepare(np.array([0.3]), np.array([0.0]), pos_weight=2.0)
    g = nn.weighted_cross_entropy_with_logits.vjp64(pr, np.ones(1))
    assert g["y_pred"][0] == pytest.approx((1 - 0.3 - 2 * 0.3) / 2, rel=1e-15)


def test_poisson_full_small_targets():
    pr = nn.log_poisson_loss.prepare(np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.5, 0.5]), compute_full_loss=True)
    g = nn.log_poisson_loss.vjp64(pr, np.ones(3))
    assert g["y_true"][:2].tolist() == [-0.5, -0.5] and np.isnan(g["y_true"][2])
