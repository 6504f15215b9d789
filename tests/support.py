"""Point selection and comparison helpers shared by the accuracy tests.

Kept apart (as scipy's _mptestutils): `adversarial_*` choose inputs, the loss's oracle
evaluates, `assert_*` compare. Every generated value is exactly representable in the
format under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

from lossref import formats

FORMATS = ["float16", "bfloat16", "float32", "float64"]


def representable(values, fmt) -> np.ndarray:
    """float64 array of `values` rounded into `fmt` (so exact in it)."""
    return formats.round_array(np.asarray(values, dtype=np.float64), fmt)


def in_format(values64, fmt) -> np.ndarray:
    """Array in `fmt`'s dtype holding exactly `values64` (already representable)."""
    return np.asarray(values64).astype(formats.get_format(fmt).dtype)


def adversarial_residual_pairs(fmt, rng) -> tuple:
    """(y_true, y_pred) rows of length 4 that stress regression losses in `fmt`.

    Groups: tiny and subnormal residuals, huge magnitudes near overflow, near-equal
    operands (cancellation in y - p), mixed signs and zeros, ±inf and NaN.
    """
    f = formats.get_format(fmt)
    sub = f.min_subnormal
    big = f.max
    rows_t, rows_p = [], []

    def add(t, p):
        rows_t.append(t)
        rows_p.append(p)

    add([0.0, -0.0, 0.0, 1.0], [0.0, 0.0, -0.0, 1.0])               # exact zeros
    add([sub, 2 * sub, -sub, f.tiny], [0.0, sub, sub, 0.0])           # subnormal residuals
    add([1.0, 1.0 + 2 * f.eps, 3.0, -2.0],
        [1.0 + 2 * f.eps, 1.0, 3.0 * (1 + 2 * f.eps), -2.0 * (1 - f.eps)])  # near-equal
    add([big, -big, big / 2, 1.0], [big / 2, 0.0, -big / 4, -1.0])    # near overflow
    add([big, -big, big, 0.5], [-big, big, -big / 2, 0.5])           # y - p overflows
    add([1e-3, 1e3, -7.5, 0.1], [2e-3, 999.0, 7.5, 0.3])              # ordinary, mixed signs
    add([math.inf, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0])              # inf
    add([math.nan, 1.0, 0.0, 2.0], [1.0, 1.0, 0.0, 2.0])              # NaN
    add([0.5, 2.0, 2.0 ** (f.emin + 3), 1e-2], [0.25, 1.5, 2.0 ** (f.emin + 2), 1e-2 + 1e-4])
    # large and far apart, yet with logs within a factor of two (log(1 + y) vs log(1 + p))
    add([big ** 0.5, big ** 0.3, 2.0 ** (f.emax // 2), 50.0], [big ** 0.3, big ** 0.5, 2.0 ** (f.emax // 3), 9.0])
    r = rng.standard_normal((4, 4)) * np.exp(rng.uniform(-8, 8, (4, 4)))
    rows_t.extend((r * 0.9).tolist())
    rows_p.extend(r.tolist())
    t = representable(rows_t, f)
    p = representable(rows_p, f)
    return t, p


def ulp_errors(computed, exact_values, fmt) -> np.ndarray:
    """Array of ulp errors (rules of spec/accuracy.md) elementwise."""
    c = np.asarray(computed, dtype=np.float64).ravel()
    x = np.asarray(exact_values, dtype=object).ravel()
    return np.array([formats.ulp_error(ci, xi, fmt) for ci, xi in zip(c, x)]).reshape(np.shape(computed))


def assert_ulps(computed, exact, fmt, budget, what=""):
    """Every element of `computed` within `budget` ulps of the Exact `exact`."""
    exact.round(fmt)  # decides the precision at which the values are final
    vals = exact.values(exact.final_prec)
    err = ulp_errors(computed, vals, fmt)
    bad = np.argwhere(~(err <= budget))
    assert bad.size == 0, (
        f"{what} {fmt}: {len(bad)} element(s) beyond {budget} ulp; first at {bad[0].tolist()}: "
        f"computed {np.asarray(computed, dtype=np.float64)[tuple(bad[0])]!r}, exact "
        f"{mpmath.nstr(vals[tuple(bad[0])], 20)}, error {err[tuple(bad[0])]} ulp")


def _mpf(v):
    """float, mpf or Fraction as an mpf at the current precision."""
    if isinstance(v, Fraction):
        return mpmath.mpf(v.numerator) / v.denominator
    return mpmath.mpf(v)


def assert_within(computed, exact, fmt, ulps, terms=None, scale=1.0, base=None, what=""):
    """``|computed - exact| <= max(ulps ulp, base ulp + scale terms)`` elementwise, ulp
    that of the exact value: within `ulps` ulps, or within `base` ulps plus the slack of a
    page's ``k u sum|terms|`` bound (`terms` float, mpf or Fraction, `scale` = k u).
    `base` defaults to `ulps`. Special values (NaN, inf, overflow) must match exactly."""
    f = formats.get_format(fmt)
    exact.round(f)  # decides the precision at which the values are final
    vals = exact.values(exact.final_prec)
    c = np.asarray(computed, dtype=np.float64)
    base = ulps if base is None else base
    terms = None if terms is None else np.broadcast_to(np.asarray(terms, dtype=object), c.shape)
    for idx in np.ndindex(c.shape):
        xv, cv = vals[idx], float(c[idx])
        if not mpmath.isfinite(xv) or not math.isfinite(cv) or math.isinf(formats.round_mpf(xv, f)):
            assert formats.ulp_error(cv, xv, f) == 0, f"{what} {f.name}: special value at {idx}: {cv} vs {xv}"
            continue
        with mpmath.workprec(256):
            u = mpmath.mpf(formats.ulp(xv, f))
            slack = base * u + (mpmath.mpf(scale) * _mpf(terms[idx]) if terms is not None else 0)
            bound = max(ulps * u, slack)
            err = abs(mpmath.mpf(cv) - xv)
            assert err <= bound, (f"{what} {f.name} at {idx}: computed {cv!r}, exact {mpmath.nstr(xv, 20)}, "
                                  f"error {mpmath.nstr(err, 5)} > bound {mpmath.nstr(bound, 5)}")


def assert_sum_bound(computed, exact, abs_terms, fmt, k, what=""):
    """``|computed - exact| <= k * u * abs_terms + ulp/2`` elementwise (float64 stage 2/3
    budget, u of `fmt`); special values must match exactly."""
    assert_within(computed, exact, fmt, 0.5, abs_terms, k * formats.get_format(fmt).eps, what=what)


def interrupt_when(argv, ready, env=None, settle: float = 0.3, timeout: float = 60.0):
    """Run ``lossref ARGV`` in a process group of its own, send the group SIGINT (what
    Ctrl-C sends) once ``ready()`` is true, and return ``(exit code, stdout, stderr)``.

    The child gets SIGINT's default action back (a background child may inherit it
    ignored); `settle` seconds after `ready` the interrupt lands inside the work itself,
    not in Python's start-up.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "lossref.cli", *map(str, argv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None, "the work never started"
            time.sleep(0.02)
        time.sleep(settle)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


def to_torch(a):
    """A torch tensor holding exactly the array `a` (bfloat16 through its bits)."""
    import torch

    a = np.asarray(a)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def from_torch(x) -> np.ndarray:
    """The NumPy array holding exactly the tensor `x` (bfloat16 through its bits)."""
    import torch

    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(formats.get_format("bfloat16").dtype)
    return x.numpy()


def in_format_of(values, fmt) -> np.ndarray:
    """`values` rounded once into `fmt`, held in its dtype."""
    return formats.to_format_array(np.asarray(values, dtype=np.float64), fmt)


def call_torch(fn, *arrays, **kw):
    """``fn`` (a torch function) on exact tensors of `arrays` and of the array keywords,
    its result back as a NumPy array."""
    tk = {k: to_torch(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return from_torch(fn(*map(to_torch, arrays), **tk))


def assert_close_to_torch(ours, theirs, scale, fmt, k: float, what: str = "") -> None:
    """``|ours - theirs| <= k u (|ours| + scale)`` (u the unit roundoff of `fmt`), NaN and
    inf equal as values: torch's own roundoff, relative to the terms it summed."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    u = 2.0 ** -formats.get_format(fmt).precision
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    ok = same | (np.abs(ours - theirs) <= k * u * (np.abs(ours) + scale))
    assert ok.all(), f"{what}: ours {ours[~ok]} torch {theirs[~ok]}"


def optax_x64():
    """``(jax, optax)`` with ``jax_enable_x64`` on (the configuration lossref.optax models;
    float64 arrays stay float64), or a skip where optax is not installed."""
    import pytest

    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    return jax, optax


def call_optax(fn, *arrays, **kw) -> np.ndarray:
    """An optax function on NumPy arrays (exactly as they are: x64 on), its result as a
    NumPy array in the dtype JAX returns."""
    jax, _ = optax_x64()
    out = fn(*(jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays), **kw)
    return np.asarray(out)
