"""Gradients checked against an independent high-precision computation.

Point selection, evaluation and comparison kept apart (as scipy's ``_mptestutils``):

* :func:`numeric_vjp` differentiates an oracle numerically: central differences on the
  mpmath backend at ``prec`` bits, with a step far below any rounding of the result
  (``2**-STEP`` relative to the element), so the truncation error (``h**2 f'''``) is far
  below a float64 ulp. It is independent of the exact gradient's own method (reverse-mode
  differentiation of the same formulas) and of every reference gradient.
* :func:`assert_grad_ulps` compares float gradients with such exact values in ulps.

Points within a step of a kink (|e| at 0, a hinge at its margin, a clip bound) give a
one-sided average there: pick points away from kinks for these checks; the conventions
at kinks are tested on their own.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import mpmath
import numpy as np

from lossref.formats import get_format
from lossref.oracle import ops, to_exact

from .support import ulp_errors

#: the step is 2**-STEP times the element's magnitude (2**-STEP absolute at 0)
STEP = 100


def numeric_vjp(f: Callable[..., np.ndarray], arrays: Dict[str, np.ndarray], wrt: str,
                cot: Optional[np.ndarray] = None, prec: int = 480, **params) -> np.ndarray:
    """``d sum(cot * f(**arrays, **params)) / d arrays[wrt]`` as an object array of mpf.

    `f` is an oracle taking object arrays of exact numbers by keyword (``y_true``,
    ``y_pred`` or a loss's own names) and returning an object array; `cot` defaults to
    ones.
    """
    with ops.using("mpmath", prec):
        exact = {k: to_exact(np.asarray(v, np.float64)) for k, v in arrays.items()}
        x0 = exact[wrt]
        out = np.empty(x0.shape, dtype=object)

        def total(x):
            vals = np.asarray(f(**{**exact, wrt: x}, **params), dtype=object)
            c = np.ones(vals.shape) if cot is None else np.broadcast_to(np.asarray(cot, np.float64), vals.shape)
            return mpmath.fsum(mpmath.mpf(float(ci)) * v for ci, v in zip(c.ravel(), vals.ravel()))

        for idx in np.ndindex(x0.shape):
            v = x0[idx]
            h = mpmath.ldexp(1, -STEP) if v == 0 else abs(v) * mpmath.ldexp(1, -STEP)
            up, dn = x0.copy(), x0.copy()
            up[idx], dn[idx] = v + h, v - h
            out[idx] = (total(up) - total(dn)) / (2 * h)
        return out


def assert_grad_ulps(got: np.ndarray, exact: np.ndarray, fmt, budget: float, what: str = "") -> None:
    """Every element of `got` within `budget` ulps (in `fmt`) of the exact gradient."""
    f = get_format(fmt)
    err = ulp_errors(np.asarray(got, np.float64), exact, f)
    worst = int(np.argmax(err)) if err.size else 0
    assert err.size == 0 or err.max() <= budget, (
        f"{what}: {err.max():.3g} ulp > {budget} at flat index {worst} "
        f"(got {np.ravel(got)[worst]!r}, exact {mpmath.nstr(np.ravel(exact)[worst], 20)})")
