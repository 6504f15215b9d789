"""Gradients of every dialect function and Keras class.

* The exact gradient (reverse-mode differentiation of the oracle, stage 3 included) against
  central differences of the exact values (:meth:`Exact.values` at 320 bits on the mpmath
  path): an independent computation of ``d sum(f(x)) / dx``.
* The API: ``grad``/``exact_grad`` exist on every function and class, take ``wrt``, give
  the input's shape and dtype, and refuse what cannot be differentiated with one clear
  error.

Points: the golden-vector machinery's first typical ("random") draws of each function, in
float64; kinks are measure-zero there. The references against the exact gradients on
adversarial inputs, in all four formats, are in test_grad_vectors.py.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from lossref.keras import losses as K
from lossref.vectors.generate import SCHEDULE, _key, draw_inputs_of
from lossref.vectors.targets import _torch_call, call_params, grad_wrt, targets

#: central differences: step 2**-STEP relative to the element, values at PREC bits
STEP, PREC = 48, 320

DIALECTS = ("keras", "torch", "optax", "tf")


def _typical_case(dialect, name, seed=0):
    """The first draws of category "random" that the dialect accepts."""
    target = targets(dialect)[name]
    for i in range(len(SCHEDULE) * 3):
        if SCHEDULE[i % len(SCHEDULE)] != "random":
            continue
        try:
            params, inputs, _ = draw_inputs_of(target, "float64", _key("grad-test", seed, dialect, name, "float64", i, 0), i)
        except Exception:
            continue
        return target, params, inputs
    pytest.skip(f"no typical case of {dialect}/{name}")


def _exact(target, params, inputs, kind):
    """``(Exact of the value, Exact of its gradient)`` of the case's default output:
    Keras the function and the class (``sum_over_batch_size`` with the sample weight),
    torch ``'mean'`` (``'none'`` where it has no mean), optax and tf their output."""
    import lossref.formats as fm
    fmt = fm.get_format("float64")
    if target.dialect == "keras":
        kw = call_params(params)
        t, p = inputs["y_true"], inputs["y_pred"]
        if kind == "function":
            fkw = {k: v for k, v in kw.items() if k in target.function_params}
            return target.function.exact(t, p, **fkw), target.function.exact_grad(t, p, **fkw)
        cls = target.cls(reduction="sum_over_batch_size", dtype="float64", **kw)
        sw = inputs.get("sample_weight")
        return cls.exact(t, p, sample_weight=sw), cls.exact_grad(t, p, sample_weight=sw)
    r = "mean" if "mean" in target.reductions else "none"
    return (_torch_call(target, fmt, params, inputs, r, True), _torch_call(target, fmt, params, inputs, r, "grad"))


def _total(e) -> mpmath.mpf:
    vals = np.asarray(e.values(PREC), dtype=object).ravel()
    with mpmath.workprec(PREC):
        return mpmath.fsum(vals)


def _cases():
    out = []
    for d in DIALECTS:
        for name in sorted(targets(d)):
            out.append((d, name, "function"))
            if d == "keras":
                out.append((d, name, "class"))
    return out


@pytest.mark.parametrize("dialect,name,kind", _cases())
def test_exact_gradient_is_the_derivative_of_the_exact_value(dialect, name, kind):
    if (dialect, name, kind) == ("keras", "ctc", "class"):
        pytest.skip("the class rounds the float32 per-sample CTC values into its dtype: a step "
                    "function whose derivative autodiff (and the exact gradient) take through the cast")
    target, params, inputs = _typical_case(dialect, name)
    wrt = grad_wrt(target)
    x0 = np.asarray(inputs[wrt], dtype=np.float64)
    # Keras's CTC computes in float32: its input is rounded to float32 first, whose
    # derivative autodiff takes as 1, so the step must be a float32 one
    step, tol = (STEP, 40) if (dialect, name) != ("keras", "ctc") else (20, 30)
    if (dialect, name) == ("keras", "ctc"):
        x0 = x0.astype(np.float32).astype(np.float64)
        inputs = {**inputs, wrt: x0}
    _, g = _exact(target, params, inputs, kind)
    got = np.asarray(g.values(PREC), dtype=object)
    assert got.shape == x0.shape
    scale = max([abs(v) for v in got.ravel()] + [mpmath.mpf(2) ** -900])
    # a few elements of each case: every one costs two exact evaluations
    flat = list(np.ndindex(x0.shape))[:12]
    for idx in flat:
        v = float(x0[idx])
        h = math.ldexp(1.0, (math.frexp(v)[1] if v else 0) - step)
        tot = []
        for s in (1, -1):
            x = x0.copy()
            x[idx] = v + s * h
            assert x[idx] - v == s * h  # the step is exact in float64
            e, _ = _exact(target, params, {**inputs, wrt: x}, kind)
            tot.append(_total(e))
        with mpmath.workprec(PREC):
            fd = (tot[0] - tot[1]) / (2 * h)
            err = abs(fd - got[idx])
        if not (mpmath.isfinite(fd) and mpmath.isfinite(got[idx])):
            continue
        assert err <= mpmath.mpf(2) ** -tol * (scale + abs(got[idx])), (
            f"{dialect}/{name} {kind} d/d{wrt}{list(idx)}: exact gradient {mpmath.nstr(got[idx], 17)}, "
            f"central difference {mpmath.nstr(fd, 17)}")


# --- the API ---------------------------------------------------------------------------------------


def test_grad_and_exact_grad_exist_everywhere():
    import lossref.optax as O
    import lossref.tf as T
    import lossref.torch.nn.functional as F
    from lossref.dialect import DialectFunction
    missing = []
    for mod in (K, F, O, T):
        for n in dir(mod):
            f = getattr(mod, n)
            if isinstance(f, DialectFunction) and not (callable(getattr(f, "grad", None))
                                                       and callable(getattr(f, "exact_grad", None))):
                missing.append(f"{mod.__name__}.{n}")
    for n in dir(K):
        c = getattr(K, n)
        if isinstance(c, type) and issubclass(c, K.Loss) and c is not K.Loss:
            if not (hasattr(c, "grad") and hasattr(c, "exact_grad")):
                missing.append(f"keras class {n}")
    assert missing == []


def test_grad_shape_dtype_and_broadcast_sum():
    y = np.array([[0.5], [1.5]], np.float32)  # broadcast against (2, 3): its gradient sums a row
    p = np.array([[0.25, 3.0, 1.0], [2.0, 2.0, 0.5]], np.float32)
    g = K.mean_squared_error.grad(y, p)
    assert g.shape == p.shape and g.dtype == np.float32
    np.testing.assert_array_equal(g, (2 * (p.astype(np.float64) - y) / 3).astype(np.float32))
    gy = K.mean_squared_error.grad(y, p, wrt="y_true")
    assert gy.shape == (2, 1)
    np.testing.assert_allclose(gy[:, 0], -2 * (p - y).sum(axis=1) / 3, rtol=1e-6)
    e = K.mean_squared_error.exact_grad(y, p, wrt="y_true").round()
    np.testing.assert_array_equal(e, gy)


def test_the_same_array_twice_gives_the_partial_derivative():
    a = np.array([[0.5, 1.5, -2.0]])
    # d/dp of mean((y - p)^2) at y = p is 0; a total derivative would also be 0 here, so
    # use an asymmetric loss: Poisson p - y log p at y = p gives 1 - y/p = 0 vs. the total -log p
    np.testing.assert_array_equal(K.mean_squared_error.grad(a, a), np.zeros_like(a))
    b = np.array([[0.5, 1.5, 2.0]])
    for f in (K.poisson, K.kl_divergence, K.log_cosh):
        np.testing.assert_array_equal(f.grad(b, b), f.grad(b, b.copy()))
        np.testing.assert_array_equal(f.exact_grad(b, b).round(), f.exact_grad(b, b.copy()).round())
        np.testing.assert_array_equal(f.exact_grad(b, b, wrt="y_true").round(),
                                      f.exact_grad(b.copy(), b, wrt="y_true").round())


def test_class_gradient_includes_stage_3():
    y = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    p = np.array([[0.5, 0.25], [2.0, -1.0], [0.0, 3.0]])
    sw = np.array([1.0, 0.0, 3.0])
    per = 2 * (p - y) / 2  # d mse_row / dp
    for red, scale in (("sum", sw[:, None]), ("sum_over_batch_size", sw[:, None] / 3),
                       ("mean_with_sample_weight", sw[:, None] / sw.sum()), ("none", sw[:, None])):
        L = K.MeanSquaredError(reduction=red, dtype="float64")
        np.testing.assert_allclose(L.grad(y, p, sample_weight=sw), per * scale, rtol=1e-15, err_msg=red)
        np.testing.assert_array_equal(L.exact_grad(y, p, sample_weight=sw).round(), L.grad(y, p, sample_weight=sw))


def test_grad_refuses_with_one_clear_error():
    y, p = np.array([[1.0, 0.0]]), np.array([[0.3, 0.7]])
    with pytest.raises(ValueError, match="cannot differentiate with respect to 'sample_weight'"):
        K.mean_squared_error.grad(y, p, wrt="sample_weight")
    with pytest.raises(TypeError, match="only a float array has a gradient"):
        K.sparse_categorical_crossentropy.grad(np.array([1]), p, wrt="y_true")
    with pytest.raises(ValueError, match="cannot differentiate"):
        K.MeanSquaredError().grad(y, p, wrt="x")
    import lossref.torch.nn.functional as F
    assert set(F.gaussian_nll_loss.grad_inputs()) >= {"input", "target", "var"}
    with pytest.raises(ValueError, match="expected one of"):
        F.mse_loss.grad(p, y, wrt="weight")
