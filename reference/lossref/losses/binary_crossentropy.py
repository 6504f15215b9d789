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

from ..numerics import sigmoid, softplus, sum_k3, two_product, xmul
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
    leaves ``e^-z`` below the working precision inside ``1 + e^-z``.

    Differentiated, its derivative is given as the one factor ``sigmoid(z)``: the chain
    rule through the two pieces would add ``1`` and ``-sigmoid(-z)`` (or pass ``0`` through
    the max), which an infinite weight on the softplus turns into ``inf - inf``."""
    v = x.values(z)
    return x.attach(x.maximum(v, x.num(0)) + x.log1p(x.exp(-np.abs(v))), [(z, x.sigmoid(v))])


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
    if x.has_nodes(p):
        # differentiated: the clip as min and max, the same values, so that on a bound the
        # derivative takes the dialect's tie share of the unclipped one (1/2: jax's clip),
        # not the 0 of a constant branch
        return _clipped_surprisals(p, lo, c) + (x.isnan(p),)
    # the upper bound 1 - c is exact at the starting precision (it counts the parameter's bits)
    low, high = x.le(p, x.num(lo)), x.ge(p, 1 - x.num(c))
    a = x.where(low, -x.log(x.num(lo)), x.where(high, -x.log1p(-x.num(c)), a))
    b = x.where(high, -x.log(x.num(c)), x.where(low, -x.log1p(-x.num(lo)), b))
    return a, b, x.isnan(p)


def _clipped_surprisals(p: np.ndarray, lo: float, c: float):
    """``(-log pc, -log(1 - pc))`` of the clipped ``pc = min(max(p, lo), 1 - c)`` for a
    differentiated `p`: the values of :func:`exact_surprisals`, with the derivatives given
    as plain numbers (``-s / pc`` and ``s / (1 - pc)``, ``s`` 1 inside the clip, the dialect's
    tie share on a bound, 0 outside), so that an infinite one (a bound at 0 or 1) adds as
    an infinity, never as a quotient with a zero denominator."""
    v = x.values(p)
    lo_, hi = x.num(lo), 1 - x.num(c)
    pc = x.maximum(x.minimum(v, hi), lo_)
    inside = x.land(x.gt(v, lo_), x.lt(v, hi))
    bound = x.lor(x.eq(v, lo_), x.eq(v, hi))
    share = x.where(inside, x.num(1), x.where(bound, x.tie_share(), x.num(0)))
    on = x.lor(inside, bound)
    da = x.where(on, x.div(-share, pc), x.num(0))
    db = x.where(on, x.div(share, 1 - pc), x.num(0))
    return x.attach(-x.log(pc), [(p, da)]), x.attach(-x.log1p(-pc), [(p, db)])


def _pole_term(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``xmul_pole(w, v)``; differentiated, a zero weight passes nothing to `v` (its
    derivative may be infinite: ``0 * inf`` would be NaN), only `v` to the weight."""
    if x.has_nodes(v):
        v = x.where(x.eq(w, x.num(0)), x.values(v), v)
    return x.xmul_pole(w, v)


def exact_cross_entropy(y1: np.ndarray, y0: np.ndarray, a: np.ndarray, b: np.ndarray, bad) -> np.ndarray:
    """``y1 a + y0 b`` with zero weights giving 0 against infinite surprisals, NaN where `bad`."""
    # the NaN branch carries a NaN derivative to every input it depends on (a NaN logit
    # makes the gradient NaN, not the 0 of a constant)
    return x.where(bad, x.NAN * (y1 + y0 + a + b), _pole_term(y1, a) + _pole_term(y0, b))


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


# --- gradients ---------------------------------------------------------------------------------------
#
# Each ``*_grad(y_true, y_pred, cot, **params)`` is the vector-Jacobian product of the reference
# of the same name: ``{"y_pred": d sum(cot * f) / d y_pred, "y_true": ...}`` in float64, of the
# inputs' broadcast shape. They differentiate the oracle's definition (``1 - y'`` exact, the
# clip decided on the input), not the reference's roundings.

#: the share of the unclipped gradient passed at a clip bound (the kink of ``clip``): jax's
#: ``jnp.clip`` (a max and a min, each splitting a tie) gives 1/2, ``torch.clamp`` gives 1
AT_BOUND = 0.5


def label_terms(y: np.ndarray, label_smoothing: Any) -> list:
    """Float64 arrays whose exact sum is the smoothed label ``y' = s y + h`` of the oracle
    (``s = 1 - ls`` exactly for a float `ls`): the product split by TwoProduct."""
    pr = _pair(label_smoothing)
    if pr is None:
        ls = float(label_smoothing)
        if ls == 0.0:
            return [y]
        hi, lo = two_product(np.full(y.shape, ls), y)
        return [y, -hi, -lo, np.full(y.shape, 0.5 * ls)]
    s, h = pr
    if s == 1.0 and h == 0.0:
        return [y]
    hi, lo = two_product(np.full(y.shape, s), y)
    return [hi, lo, np.full(y.shape, h)]


def shifted(v, terms: list, k: float = 1.0) -> np.ndarray:
    """``v - k y'`` (k a power of two) with about one rounding, ``y'`` given by its terms."""
    v = np.broadcast_to(np.asarray(v, np.float64), np.shape(terms[0]))
    if len(terms) == 1:
        return v - k * terms[0]
    return sum_k3([v] + [-k * t for t in terms])


def scaled(v: np.ndarray, label_smoothing: Any) -> np.ndarray:
    """``s v`` (``s = dy'/dy``: ``1 - ls`` exactly, or a pair's scale) with about one rounding."""
    pr = _pair(label_smoothing)
    if pr is not None:
        return pr[0] * v
    ls = float(label_smoothing)
    if ls == 0.0:
        return v
    hi, lo = two_product(np.full(np.shape(v), ls), v)
    return sum_k3([v, -hi, -lo])


def log_odds(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``log((1 - p) / p) = -log p + log(1 - p)`` for p in [0, 1], with `c` = 1 - p.

    Below 1/2 `p` must be exact (an input or a lower clip bound), above it `c` (``1 - p``
    of an input p >= 1/2, or the complement of an upper bound). Near p = 1/2 the two logs
    cancel: there ``log1p((1 - 2p) / p)`` (``1 - 2p`` exact for p in [1/4, 1]), and its
    mirror in c; further out the difference of the two logs, which is at least log 3.
    """
    with np.errstate(all="ignore"):
        upper = c < 0.5
        a = np.where(upper, c, p)  # the exact one of the two, <= 1/2
        near = np.log1p((1.0 - 2.0 * a) / a)
        far = np.log1p(-a) - np.log(a)
        v = np.where(a < 0.25, far, near)  # log((1 - a) / a)
    return np.where(upper, -v, v)


def _bound_mask(inside: np.ndarray, bound: np.ndarray, at_bound: float) -> np.ndarray:
    return np.where(inside, 1.0, np.where(bound, float(at_bound), 0.0))


def _masked(g: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``g mask`` with a zero mask giving 0 against an infinite `g` (a constant clipped value)."""
    with np.errstate(all="ignore"):
        return np.where(mask == 0.0, 0.0, g * mask)


def prob_parts(y_true: np.ndarray, p: np.ndarray, label_smoothing: Any, epsilon: Any,
               at_bound: float = AT_BOUND):
    """Probability path of ``y' a + (1 - y') b`` (a, b the clipped surprisals):
    ``(d/dp, d/dy', a, b)`` in float64, the clip masks included.

    ``d/dp = (p - y') / (p (1 - p))`` inside the clip (``p - y'`` compensated: no
    cancellation of the labels' rounding near the minimum), 0 outside, `at_bound` times it
    on a bound; ``d/dy' = a - b = log((1 - pc) / pc)`` by :func:`log_odds` (the two logs
    cancel near pc = 1/2).
    """
    terms = label_terms(y_true, label_smoothing)
    y1 = terms[0] if len(terms) == 1 else sum_k3(list(terms))
    y0 = shifted(1.0, terms)
    with np.errstate(all="ignore"):
        a, b = surprisals(p, False, epsilon)
        c = 1.0 - p  # exact for p >= 1/2; only used as a factor below it
        gp = shifted(p, terms) / (p * c)
        edge = (p == 0.0) | (c == 0.0)
        if np.any(edge):  # p at 0 or 1: each term on its own, a zero weight giving 0
            g2 = (np.where(y1 == 0.0, 0.0, -y1 / p) + np.where(y0 == 0.0, 0.0, y0 / c))
            gp = np.where(edge, g2, gp)
        iv = clip_interval(epsilon)
        pc, cc = p, c
        if iv is not None:
            lo, top = iv
            inside = (p > lo) & (c > top)
            mask = _bound_mask(inside, (p == lo) | (c == top), at_bound)
            gp = _masked(gp, mask)
            low, high = p <= lo, c <= top
            pc = np.where(low, lo, np.where(high, 1.0 - top, p))
            cc = np.where(low, 1.0 - lo, np.where(high, top, c))
        gy = log_odds(pc, cc)
        bad = np.isnan(p) | np.isnan(y1)
        gp = np.where(bad, np.nan, gp)
    return gp, gy, a, b


#: below this |z| (log 3: where sigmoid(-|z|) > 1/4 > |sigmoid(z) - 1/2|) the logit residuals
#: are formed around 1/2 with ``sigmoid(z) - 1/2 = tanh(z/2) / 2``
TANH_BELOW = math.log(3.0)


def logit_residual(z: np.ndarray, terms: list) -> np.ndarray:
    """``sigmoid(z) - y'`` (``y'`` given by its exact terms), as a compensated sum of exact
    terms and one rounded one, the smaller of ``sigmoid(-|z|)`` and ``|sigmoid(z) - 1/2|``:

    * ``|z| >= log 3``: ``(1 - y') - sigmoid(-z)`` for z >= 0 (so y' = 1 gives
      ``-sigmoid(-z)``, never ``1 - 1``), ``sigmoid(z) - y'`` below;
    * ``|z| < log 3``: ``tanh(z/2)/2 + (1/2 - y')``, since a rounded ``sigmoid(z)`` near 1/2
      would lose a small logit's share (z = 1e-8, y' = 1/2: the whole result) to its rounding.

    Error: 4 ulp plus ``4 u min(sigmoid(-|z|), |tanh(z/2)|/2)`` (that term's own rounding,
    which matters only where it cancels against the label)."""
    return weighted_residual(z, terms, None)


def weighted_residual(z: np.ndarray, terms: list, w) -> np.ndarray:
    """``(1 - y) sigmoid(z) - w y sigmoid(-z)`` (`w` None is 1), y given by its exact terms.

    With ``c = 1 + (w - 1) y`` (1 for w = 1) it is ``(1 - y) - c sigmoid(-z)`` for z >= log 3,
    ``c sigmoid(z) - w y`` for z <= -log 3 and ``(1 - y - w y)/2 + c tanh(z/2)/2`` between: a
    sum of exact pieces (TwoProduct, the labels' terms) and one rounded product of ``c`` with
    the smaller sigmoid or with ``tanh(z/2)/2`` (no ``1/2 - sigmoid(-z)`` cancellation at
    small logits). Error: 4 ulp plus ``4 u c min(sigmoid(-|z|), |tanh(z/2)|/2)``."""
    z = np.asarray(z, np.float64)
    shape = np.broadcast_shapes(z.shape, *(np.shape(t) for t in terms),
                                () if w is None else np.shape(w))
    z = np.broadcast_to(z, shape)
    ys = [np.broadcast_to(np.asarray(t, np.float64), shape) for t in terms]
    one = np.ones(shape)
    with np.errstate(all="ignore"):
        if w is None:
            wy, c = list(ys), one
        else:
            wb = np.broadcast_to(np.asarray(w, np.float64), shape)
            wy = []
            for t in ys:
                wy += list(two_product(wb, t))
            c = sum_k3([one] + [-t for t in ys] + wy)  # 1 - y + w y
        s = sigmoid(-np.abs(z))  # the smaller of sigmoid(z), sigmoid(-z)
        sh, sl = two_product(c, s)
        above = sum_k3([one, -sh, -sl] + [-t for t in ys])  # (1 - y) - c sigmoid(-z)
        below = sum_k3([sh, sl] + [-t for t in wy])  # c sigmoid(z) - w y
        out = np.where(z >= 0, above, below)
        near = np.abs(z) < TANH_BELOW
        if np.any(near):
            th, tl = two_product(c, 0.5 * np.tanh(0.5 * z))
            mid = sum_k3([0.5 * one, th, tl] + [-0.5 * t for t in ys] + [-0.5 * t for t in wy])
            out = np.where(near, mid, out)
        bad = ~np.isfinite(out)
        if np.any(bad):  # an infinite weight or label: the two products as IEEE forms them
            y = sum(ys)
            wyv = y if w is None else np.broadcast_to(np.asarray(w, np.float64), shape) * y
            plain = xmul(1.0 - y, sigmoid(z)) - xmul(wyv, sigmoid(-z))
            out = np.where(bad, plain, out)
    return out


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, from_logits: bool,
                   label_smoothing, epsilon, at_bound: float = AT_BOUND) -> dict:
    """VJP of :func:`reference`: ``{"y_pred", "y_true"}``.

    Probabilities: ``(p - y') / (p (1 - p))`` inside the clip, 0 outside, `at_bound` times
    it on a bound (jax's clip: 1/2; torch's clamp: 1); with respect to y:
    ``s log((1 - pc) / pc)``. Logits: ``sigmoid(z) - y'`` (:func:`logit_residual`) and
    ``-s z`` (``softplus(-z) - softplus(z) = -z`` exactly).
    """
    y_true, y_pred = np.broadcast_arrays(y_true, y_pred)
    if from_logits:
        gp = logit_residual(y_pred, label_terms(y_true, label_smoothing))
        gy = scaled(-y_pred, label_smoothing)
    else:
        gp, gy, _, _ = prob_parts(y_true, y_pred, label_smoothing, epsilon, at_bound)
        gy = scaled(gy, label_smoothing)
    return {"y_pred": cot * gp, "y_true": cot * gy}


def log_clamped_grad(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray,
                     log_floor: float = -100.0) -> dict:
    """VJP of :func:`log_clamped_reference`: ``{"y_pred", "y_true"}``.

    The derivative of the clamped definition: ``-y / p`` where ``log p > f`` (else 0), plus
    ``(1 - y) / (1 - p)`` where ``log(1 - p) > f`` (else 0), combined as
    ``(p - y) / (p (1 - p))`` where both hold; with respect to y,
    ``min(-log p, -f) - min(-log(1 - p), -f)``. At p = 0 and 1 the clamped term is constant
    and the other one gives the one-sided derivative. (PyTorch's own backward returns
    ``(p - y) / max(p (1 - p), 1e-12)`` instead: see the spec page.)
    """
    y, p = np.broadcast_arrays(y_true, y_pred)
    cap = -float(log_floor)
    with np.errstate(all="ignore"):
        a, b = surprisals(p, False, None)
        c = 1.0 - p
        ma, mb = a < cap, b < cap
        both = (p - y) / (p * c)
        one = np.where(ma, np.where(y == 0.0, 0.0, -y / p), 0.0) + \
            np.where(mb, np.where(y == 1.0, 0.0, (1.0 - y) / c), 0.0)
        gp = np.where(ma & mb, both, one)
        gp = np.where(np.isnan(p) | np.isnan(y), np.nan, gp)
        gy = np.where(ma & mb, log_odds(p, c), np.minimum(a, cap) - np.minimum(b, cap))
    return {"y_pred": cot * gp, "y_true": cot * gy}


def pos_weighted_grad(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, pos_weight=None) -> dict:
    """VJP of :func:`pos_weighted_reference`: ``{"y_pred", "y_true"}``, and ``"pos_weight"``
    (of the broadcast shape) when it is given.

    ``d/dz = (1 - y) sigmoid(z) - w y sigmoid(-z)`` (:func:`weighted_residual`: around 1/2
    by ``tanh(z/2)`` at small logits, around the smaller sigmoid elsewhere). ``d/dy =
    w softplus(-z) - softplus(z) = (w - 1) softplus(-z) - z`` (``softplus(-z) -
    softplus(z) = -z`` exactly: no cancellation of the two softplus values at small z, and
    exactly ``-z`` for w = 1); ``d/dw = y softplus(-z)``.
    """
    y, z = np.broadcast_arrays(y_true, y_pred)
    with np.errstate(all="ignore"):
        if pos_weight is None:
            return {"y_pred": cot * weighted_residual(z, [y], None), "y_true": cot * -z}
        a, b = surprisals(z, True, None)
        w = np.asarray(pos_weight, np.float64)
        gp = weighted_residual(z, [y], w)
        wm1 = w - 1.0  # exact for w in [1/2, 2]
        ph, pl = two_product(np.broadcast_to(wm1, np.broadcast_shapes(wm1.shape, a.shape)), a)
        gy = sum_k3([ph, pl, -z])
        gy = np.where(np.isfinite(gy), gy, xmul(w, a) - b)  # an infinite softplus or weight
        gw = xmul(y, a)
        shape = np.broadcast_shapes(y.shape, w.shape)
        return {"y_pred": np.broadcast_to(cot * gp, shape), "y_true": np.broadcast_to(cot * gy, shape),
                "pos_weight": np.broadcast_to(cot * gw, shape)}


LOSS = register(LossDef(
    name="binary_crossentropy",
    summary="-(y' log clip(p) + (1 - y') log(1 - clip(p))), or softplus form on logits; "
            "mean over the last axis",
    stage2="mean",
    params={"from_logits": FROM_LOGITS, "label_smoothing": LABEL_SMOOTHING, "epsilon": EPSILON},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
