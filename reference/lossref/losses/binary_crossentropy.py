"""Binary cross-entropy. Spec: spec/losses/binary_crossentropy.md.

With the smoothed label ``y' = s y + h`` (``s = 1 - ls``, ``h = ls / 2``):

* probabilities: ``-(y' log pc + (1 - y') log(1 - pc))`` with ``pc = clip(p, lo, hi)``;
* logits: ``y' softplus(-z) + (1 - y') softplus(z)``, i.e. the same with ``p = sigmoid(z)``
  and no clip;

mean over the last axis. A zero weight times an infinite log is 0 (``0 log 0 = 0``).

PyTorch's forms sit beside it: probabilities with each log clamped below at -100 instead
of a clip (:func:`log_clamped_reference`), and logits with a weight on the positive term
(:func:`pos_weighted_reference`).

The helpers below (label smoothing, clip bounds, the two "surprisals" ``-log pc`` and
``-log(1 - pc)``) are shared with the focal loss, which is built on the same terms.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import softplus, xmul
from ..oracle import ops as x
from ..registry import LossDef, Param, is_real, register

# --- parameters (shared with binary_focal_crossentropy) ----------------------------------------


def _pair(v) -> Optional[Tuple[float, float]]:
    """`v` as a pair of finite floats, or None if it is not a 2-sequence of finite reals."""
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(is_real(e) for e in v):
        a, b = float(v[0]), float(v[1])
        if math.isfinite(a) and math.isfinite(b):
            return a, b
    return None


def check_bool(v) -> Optional[str]:
    """Check helper: a Python or NumPy bool."""
    return None if isinstance(v, (bool, np.bool_)) else "expected True or False"


def check_label_smoothing(v) -> Optional[str]:
    """Check helper: a float in [0, 1] or a pair of finite floats (scale, shift)."""
    if is_real(v):
        return None if 0.0 <= float(v) <= 1.0 else "expected a float in [0, 1]"
    return None if _pair(v) is not None else "expected a float in [0, 1] or a pair (scale, shift)"


def check_clip(v) -> Optional[str]:
    """Check helper: None, a float eps in [0, 1/2], or a pair (lo, hi), 0 <= lo <= 1/2 <= hi <= 1."""
    if v is None:
        return None
    if is_real(v):
        return None if 0.0 <= float(v) <= 0.5 else "expected eps in [0, 1/2]"
    pr = _pair(v)
    if pr is not None and 0.0 <= pr[0] <= 0.5 <= pr[1] <= 1.0:
        return None
    return "expected None, eps in [0, 1/2] or a pair (lo, hi) with 0 <= lo <= 1/2 <= hi <= 1"


FROM_LOGITS = Param(False, "bool: y_pred holds logits z (p = sigmoid(z))", check_bool)
LABEL_SMOOTHING = Param(
    0.0, "float ls in [0, 1] (y' = (1 - ls) y + ls/2), or a pair (s, h): y' = s y + h",
    check_label_smoothing)
EPSILON = Param(
    1e-7, "None (no clip), eps in [0, 1/2] (clip p to [eps, 1 - eps], both exact), or a pair "
          "(lo, hi) with 0 <= lo <= 1/2 <= hi <= 1", check_clip)


def smoothing(label_smoothing: Any) -> Tuple[float, float, float]:
    """``(s, h, c)`` with ``y' = s y + h`` and ``1 - y' = s (1 - y) + c``, ``c = 1 - s - h``."""
    pr = _pair(label_smoothing)
    if pr is not None:
        s, h = pr
        return s, h, (1.0 - s) - h
    ls = float(label_smoothing)
    return 1.0 - ls, 0.5 * ls, 0.5 * ls


def clip_interval(epsilon: Any) -> Optional[Tuple[float, float]]:
    """``(lo, c)``: the clip interval is ``[lo, 1 - c]``, with ``c`` exact in float64.

    For a pair, ``c = 1 - hi`` is exact because ``1/2 <= hi <= 1`` (Sterbenz's lemma);
    for a single eps the upper bound is ``1 - eps`` exactly, so ``c = eps``.
    """
    if epsilon is None:
        return None
    pr = _pair(epsilon)
    if pr is not None:
        return pr[0], 1.0 - pr[1]
    return float(epsilon), float(epsilon)


def smoothed_labels(y: np.ndarray, label_smoothing: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(y', 1 - y')`` in float64."""
    s, h, c = smoothing(label_smoothing)
    if s == 1.0 and h == 0.0:
        return y, 1.0 - y
    # 1 - y' as s (1 - y) + c: for y' near 1 the textbook 1 - y' cancels to few bits
    return y * s + h, (1.0 - y) * s + c


def surprisals(pred: np.ndarray, from_logits: bool, epsilon: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(-log pc, -log(1 - pc))`` in float64, ``pc`` the clipped probability.

    On the logit path both come from softplus (never the log of a rounded sigmoid) and
    the clip is applied to them, which equals clipping ``sigmoid(z)`` (log is monotone).
    """
    iv = clip_interval(epsilon)
    if from_logits:
        a, b = softplus(-pred), softplus(pred)  # -log sigmoid(z), -log sigmoid(-z)
        if iv is not None:
            lo, c = iv
            a = np.clip(a, -np.log1p(-c), -np.log(lo))
            b = np.clip(b, -np.log1p(-lo), -np.log(c))
        return a, b
    a, b = -np.log(pred), -np.log1p(-pred)  # log1p: 1 - p is formed exactly inside
    if iv is not None:
        lo, c = iv
        low = pred <= lo
        # p >= 1 - c tested as 1 - p <= c: exact in float64 wherever it can hold (p >= 1/2)
        high = (1.0 - pred) <= c
        # the clipped values straight from the bounds: log(1 - c) and log(1 - lo) by log1p
        a = np.where(low, -np.log(lo), np.where(high, -np.log1p(-c), a))
        b = np.where(high, -np.log(c), np.where(low, -np.log1p(-lo), b))
    return a, b


def cross_entropy(y1: np.ndarray, y0: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y' a + (1 - y') b`` with zero weights giving 0 against infinite surprisals."""
    # xmul gives +0, never -0, for a zero product (-log 1 is -0), so the sum is never -0
    return xmul(y1, a) + xmul(y0, b)


# --- oracle helpers (exact values) ------------------------------------------------------------------


def exact_smoothed(y: np.ndarray, label_smoothing: Any) -> np.ndarray:
    """``y' = s y + h`` on exact values."""
    pr = _pair(label_smoothing)
    if pr is not None:
        s, h = x.num(pr[0]), x.num(pr[1])
    else:
        ls = x.num(float(label_smoothing))
        s, h = 1 - ls, ls / 2
    return y * s + h


def exact_softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + e^z)`` as ``max(z, 0) + log1p(e^-|z|)``: the same number, but ``e^z`` is
    never formed, so a large logit neither overflows a ball (Arb's exp of 1e308 is NaN) nor
    leaves ``e^-z`` below the working precision inside ``1 + e^-z``."""
    return x.maximum(z, x.num(0)) + x.log1p(x.exp(-np.abs(z)))


def exact_surprisals(pred: np.ndarray, from_logits: bool, epsilon: Any):
    """``(-log pc, -log(1 - pc), bad)`` on exact values; ``bad`` is the condition (see
    :mod:`lossref.oracle.ops`) where a surprisal is NaN (not an infinite log).

    Probabilities: the clip decided on the exact input and the clipped values taken
    from its bounds (``log(1 - c)`` by log1p), ``1 - p`` formed inside log1p. Logits:
    ``-log sigmoid(+-z) = softplus(-+z)`` (:func:`exact_softplus`), never the log of a
    rounded sigmoid; the clip of ``sigmoid(z)`` becomes a clip of these logs (log is
    monotone), a bound at 0 or 1 clipping nothing.

    ``bad`` is what lets a zero label weight decide against an infinite log on balls:
    Arb has no infinity, so ``-log 0`` is a NaN ball there, which :func:`ops.xmul_pole` takes
    for an infinity; a real NaN (a NaN input, a probability outside [0, 1]) is caught here.
    """
    iv = clip_interval(epsilon)
    if from_logits:
        a, b = exact_softplus(-pred), exact_softplus(pred)
        if iv is not None:
            lo, c = iv
            a = x.maximum(a, -x.log1p(-x.num(c)))
            b = x.maximum(b, -x.log1p(-x.num(lo)))
            if lo > 0:
                a = x.minimum(a, -x.log(x.num(lo)))
            if c > 0:
                b = x.minimum(b, -x.log(x.num(c)))
        return a, b, x.isnan(pred)
    p = pred
    a, b = -x.log(p), -x.log1p(-p)  # log1p: 1 - p is never rounded
    if iv is None:
        return a, b, x.lor(x.isnan(p), x.lor(x.lt(p, x.num(0)), x.gt(p, x.num(1))))
    lo, c = iv
    # the upper bound 1 - c is exact at the starting precision (it counts the parameter's bits)
    low, high = x.le(p, x.num(lo)), x.ge(p, 1 - x.num(c))
    a = x.where(low, -x.log(x.num(lo)), x.where(high, -x.log1p(-x.num(c)), a))
    b = x.where(high, -x.log(x.num(c)), x.where(low, -x.log1p(-x.num(lo)), b))
    return a, b, x.isnan(p)


def exact_cross_entropy(y1: np.ndarray, y0: np.ndarray, a: np.ndarray, b: np.ndarray, bad) -> np.ndarray:
    """``y1 a + y0 b`` with zero weights giving 0 against infinite surprisals, NaN where `bad`."""
    return x.where(bad, x.NAN, x.xmul_pole(y1, a) + x.xmul_pole(y0, b))


# --- the loss -----------------------------------------------------------------------------------------


def reference(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, label_smoothing,
              epsilon) -> np.ndarray:
    """Elementwise value in float64 (`epsilon` clips the probability path only)."""
    y1, y0 = smoothed_labels(y_true, label_smoothing)
    a, b = surprisals(y_pred, from_logits, None if from_logits else epsilon)
    return cross_entropy(y1, y0, a, b)


def oracle(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, label_smoothing,
           epsilon) -> np.ndarray:
    """The definition on exact values."""
    y = exact_smoothed(y_true, label_smoothing)
    a, b, bad = exact_surprisals(y_pred, from_logits, None if from_logits else epsilon)
    return exact_cross_entropy(y, 1 - y, a, b, bad)


# --- PyTorch's forms ---------------------------------------------------------------------------------


def log_clamped_reference(y_true: np.ndarray, y_pred: np.ndarray, log_floor: float = -100.0) -> np.ndarray:
    """``-(y max(log p, f) + (1 - y) max(log(1 - p), f))`` in float64, ``f = log_floor``
    (PyTorch's ``binary_cross_entropy``: ``f = -100``, so every term is finite)."""
    a, b = surprisals(y_pred, False, None)
    return cross_entropy(y_true, 1.0 - y_true, np.minimum(a, -log_floor), np.minimum(b, -log_floor))


def log_clamped_oracle(y_true: np.ndarray, y_pred: np.ndarray, log_floor: float = -100.0) -> np.ndarray:
    """The definition on exact values.

    A log at 0 is the floor itself, taken without the log: ``min(-log 0, -f) = -f``
    (on balls ``-log 0`` is a NaN ball, whose minimum with anything is NaN too).
    """
    p = y_pred
    a, b, bad = exact_surprisals(p, False, None)
    cap = x.num(-float(log_floor))
    a = x.where(x.gt(p, x.num(0)), x.minimum(a, cap), cap)
    b = x.where(x.lt(p, x.num(1)), x.minimum(b, cap), cap)
    return exact_cross_entropy(y_true, 1 - y_true, a, b, bad)


def pos_weighted_reference(y_true: np.ndarray, y_pred: np.ndarray, pos_weight=None) -> np.ndarray:
    """``w_p y softplus(-z) + (1 - y) softplus(z)`` in float64: ``-(w_p y log sigmoid(z) +
    (1 - y) log sigmoid(-z))`` for logits z (PyTorch's ``binary_cross_entropy_with_logits``;
    `pos_weight` None is 1, broadcast against y)."""
    a, b = surprisals(y_pred, True, None)
    y1 = y_true if pos_weight is None else pos_weight * y_true
    return cross_entropy(y1, 1.0 - y_true, a, b)


def pos_weighted_oracle(y_true: np.ndarray, y_pred: np.ndarray, pos_weight=None) -> np.ndarray:
    """The definition on exact values (`pos_weight` exact too)."""
    a, b, bad = exact_surprisals(y_pred, True, None)
    y1 = y_true if pos_weight is None else x.lift(pos_weight) * y_true
    return exact_cross_entropy(y1, 1 - y_true, a, b, bad)


LOSS = register(LossDef(
    name="binary_crossentropy",
    summary="-(y' log clip(p) + (1 - y') log(1 - clip(p))), or softplus form on logits; "
            "mean over the last axis",
    stage2="mean",
    params={"from_logits": FROM_LOGITS, "label_smoothing": LABEL_SMOOTHING, "epsilon": EPSILON},
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
