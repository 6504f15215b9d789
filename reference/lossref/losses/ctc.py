"""Connectionist temporal classification (CTC). Spec: spec/losses/ctc.md.

``y_true`` (B, L): integer labels in ``1 .. C-1``, right-padded with the blank 0;
``y_pred`` (B, T, C): logits. Per sample ``-log P(label)``, where ``P`` sums, over every
alignment of length T that collapses to the label (merge repeats, then drop blanks),
the product of the softmax probabilities over the classes. No alignment: ``+inf``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import log_softmax, logsumexp_parts, sum2, two_sum
from ..oracle import ops as x
from ..registry import LossDef, block_elements, check_float_array, map_blocks, register

BLANK = 0


def check_inputs(name: str, y_true: Any, y_pred: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Validated ``(labels, logits)``; ``ValueError`` naming what is wrong.

    Labels must be integers in ``[0, C-1]`` whose zeros (the blank, also the padding)
    only trail; ``y_true`` rank 2, ``y_pred`` rank 3 with at least one class.
    """
    p = check_float_array(y_pred, "y_pred")
    t = np.asarray(y_true)
    if t.dtype.kind not in "biuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"{name}: y_true must hold integer labels; got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name}: y_true must have shape (batch_size, max_length); "
                         f"got shape {t.shape}")
    if p.ndim != 3:
        raise ValueError(f"{name}: y_pred must have shape (batch_size, max_length, "
                         f"num_classes); got shape {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"{name}: batch sizes differ: y_true shape {t.shape}, "
                         f"y_pred shape {p.shape}")
    n_classes = p.shape[2]
    if n_classes < 1:
        raise ValueError(f"{name}: y_pred needs at least one class (the blank, index 0); "
                         f"got shape {p.shape}")
    t64 = t.astype(np.float64)
    bad = ~np.isfinite(t64) | (t64 != np.trunc(t64))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name}: y_true must hold integer labels; got {float(t64[i])!r} at {i}")
    bad = (t64 < 0) | (t64 > n_classes - 1)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name}: label {t64[i]:g} at {i} is outside [0, {n_classes - 1}] "
                         f"(y_pred has {n_classes} classes; 0 is the blank and padding)")
    nonzero = t64 != BLANK
    # a real label after a zero: Keras would read the zero as a label (lengths count non-zeros)
    inner = nonzero[:, 1:] & ~nonzero[:, :-1]
    if inner.any():
        b, j = (int(k) for k in np.argwhere(inner)[0])
        raise ValueError(f"{name}: y_true row {b} has padding 0 at position {j} before label "
                         f"{t64[b, j + 1]:g}; padding must be trailing (0 is the blank)")
    return t64, p


def _extended(labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blank-interleaved labels ``l'`` (B, 2L+1), skip-allowed flags and lengths."""
    lab = labels.astype(np.int64)
    n_b, width = lab.shape
    ext = np.zeros((n_b, 2 * width + 1), dtype=np.int64)
    ext[:, 1::2] = lab
    skip = np.zeros(ext.shape, dtype=bool)
    # s -> s+2 skips a blank between two different labels only
    skip[:, 3::2] = lab[:, 1:] != lab[:, :-1]
    return ext, skip, np.count_nonzero(lab, axis=1)


def reference(y_true: np.ndarray, y_pred: np.ndarray, log_probs: bool = False,
              input_lengths: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-sample ``-log P(label)`` in float64, from logits of any float format.

    Samples are independent: they are evaluated in blocks of rows (on the catalogue's
    thread pool), each by :func:`_forward`, which widens its logits a few time steps at a
    time. A block has as many rows as keep one time step of it (its logits or its states)
    within :func:`lossref.registry.block_elements`, so the recursion's vectorised steps are
    long and no temporary grows with ``T``.

    `log_probs`: `y_pred` holds per-step log-probabilities, used as given (no log-softmax;
    PyTorch's ``ctc_loss``). `input_lengths`: per sample the number of steps used (the
    first ones; default all ``T``). The defaults are Keras's ``ctc``.
    """
    n_b, _, n_c = y_pred.shape
    width = max(n_c, 2 * y_true.shape[1] + 1, 1)  # classes or extended states per row
    chunk = block_elements()
    rows = max(1, chunk // width)
    if input_lengths is not None:
        lens = np.asarray(input_lengths, dtype=np.int64).reshape(n_b)
        if n_b <= rows:
            return _forward(y_true, y_pred, chunk, log_probs, lens)
        index = [slice(i, i + rows) for i in range(0, n_b, rows)]
        # the row numbers stand in for the labels, so each block finds its lengths
        return np.concatenate(map_blocks(
            lambda r, p: _forward(y_true[r], p, chunk, log_probs, lens[r]),
            np.arange(n_b), y_pred, index, widen=False))
    if n_b <= rows:
        return _forward(y_true, y_pred, chunk, log_probs)
    index = [slice(i, i + rows) for i in range(0, n_b, rows)]
    return np.concatenate(map_blocks(lambda t, p: _forward(t, p, chunk, log_probs), y_true, y_pred, index,
                                     widen=False))


def _forward(y_true: np.ndarray, y_pred: np.ndarray, chunk: int, log_probs: bool = False,
             lengths: Optional[np.ndarray] = None) -> np.ndarray:
    """The log-space forward algorithm on labels (B, L) and logits (B, T, C) of any format.

    Vectorised over the batch and the 2L+1 extended label positions; the loop runs
    over time steps only, because step t needs every state of step t-1 (a scan over
    time in the log semiring has no cheaper closed form). The logits are widened and
    log-softmaxed about `chunk` elements (whole time steps) at a time (taken as given
    with `log_probs`). With `lengths`, a sample's states stop changing after its steps.
    """
    ext, skip, length = _extended(y_true)
    n_b, n_t, n_c = y_pred.shape
    n_s = ext.shape[1]
    steps = max(1, chunk // max(n_b * n_c, 1))
    # virtual step -1: all mass on state 0, so step 0 may start in state 0 or 1
    alpha = np.full((n_b, n_s), -np.inf)
    alpha[:, 0] = 0.0
    # the three predecessors of each state (stay, step, jump), written into one buffer whose
    # -inf borders never change: no arrays concatenated per step
    prev = np.full((3, n_b, n_s), -np.inf)
    no_jump = ~skip  # s -> s+2 only where skip allows
    for t0 in range(0, n_t, steps):
        # log_softmax: dominant classes keep relative accuracy
        logp = y_pred[:, t0:t0 + steps].astype(np.float64)
        if not log_probs:
            logp = log_softmax(logp, axis=-1)
        emit = np.take_along_axis(logp, ext[:, None, :], axis=2)  # (B, steps, S)
        del logp
        for t in range(emit.shape[1]):
            prev[0] = alpha
            prev[1, :, 1:] = alpha[:, :-1]
            prev[2, :, 2:] = alpha[:, :-2]
            np.copyto(prev[2], -np.inf, where=no_jump)
            m, r = logsumexp_parts(prev, axis=0)
            if lengths is None:
                alpha = (m + r)[0] + emit[:, t]
            else:  # steps past a sample's length are not read (they may hold anything)
                alpha = np.where((t0 + t < lengths)[:, None], (m + r)[0] + emit[:, t], alpha)
    last = np.take_along_axis(alpha, (2 * length)[:, None], axis=1)
    before = np.where(length[:, None] > 0,
                      np.take_along_axis(alpha, np.maximum(2 * length - 1, 0)[:, None], axis=1),
                      -np.inf)
    m, r = logsumexp_parts(np.concatenate([last, before], axis=1), axis=1)
    return 0.0 - (m + r)[:, 0]  # 0 - x: an empty label at T = 0 gives +0, not -0


def oracle(y_true: np.ndarray, y_pred: np.ndarray, log_probs: bool = False,
           input_lengths: Optional[np.ndarray] = None, zero: Optional[np.ndarray] = None) -> np.ndarray:
    """The exact sum over alignments: the forward algorithm on exact probabilities
    (`log_probs`, `input_lengths` as for :func:`reference`). With `log_probs`, `zero`
    (bools of `y_pred`'s shape) marks the log-probabilities that are ``-inf``: their
    probability is exactly 0, which the ball backend cannot read from its input (a
    ball has no infinity: the input is a NaN ball there).

    The recursion runs on probabilities, not on their logs: every state is a sum of
    products of non-negative numbers, so a ball's relative radius grows only linearly
    with the steps (no cancellation and no branch, hence no log-sum-exp to stabilise).
    The labels are exact inputs, read as integers with
    :func:`~lossref.oracle.ops.to_fraction`.
    """
    n_b = y_pred.shape[0]
    out = np.empty(n_b, dtype=object)
    for b in range(n_b):  # the oracle is the slow, literal definition
        labels = [int(f) for f in (x.to_fraction(v) for v in y_true[b]) if f != BLANK]
        ext = [BLANK]
        for lab in labels:
            ext += [lab, BLANK]
        n_s = len(ext)
        # s -> s+2 skips a blank between two different labels only
        jump = np.array([s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2] for s in range(n_s)], bool)
        z = y_pred[b] if input_lengths is None else y_pred[b, :int(input_lengths[b])]
        if log_probs:
            prob = x.exp(z)
            if zero is not None:
                prob = x.where(zero[b, :z.shape[0]], x.num(0), prob)
        else:  # softmax over the classes
            m = z[:, :1]
            for k in range(1, z.shape[1]):
                m = x.maximum(m, z[:, k:k + 1])
            # shifted by a finite row maximum: the same quotient, but no exponential of a
            # large logit (a ball has no room for exp(1e300)); a row with an infinity or a
            # NaN keeps the unshifted form and its IEEE value (inf / inf, 0 / inf)
            e = x.exp(z - x.where(x.isfinite(m), m, x.num(0)))
            prob = x.div(e, np.repeat(x.fsum(e, -1)[:, None], z.shape[1], axis=1))
        emit = prob[:, ext]  # (T, S): the probability of each state's class
        alpha = np.array([x.num(1)] + [x.num(0)] * (n_s - 1), dtype=object)  # virtual step -1
        for t in range(z.shape[0]):
            a = alpha.copy()
            a[1:] = a[1:] + alpha[:-1]
            a[jump] = a[jump] + alpha[np.flatnonzero(jump) - 2]
            alpha = a * emit[t]
        total = alpha[-1] + alpha[-2] if n_s > 1 else alpha[-1]
        out[b] = -x.log(np.asarray([total], dtype=object))[0]
    return out

# --- gradient: forward-backward in log space ---------------------------------------------------


def others_sum(x: np.ndarray) -> np.ndarray:
    """``Σ_{j≠k} x_j`` over the last axis for every ``k``, for entries of one sign per row.

    ``total - x_k`` loses nothing when ``x_k`` is not the largest (then ``x_k <= total/2``);
    at the largest entry, where ``total - x_k`` would cancel (``1 - p`` near ``p = 1``), the
    other entries are summed directly.
    """
    with np.errstate(invalid="ignore"):
        out = sum2(x, axis=-1)[..., None] - x
        top = np.argmax(np.abs(np.nan_to_num(x, nan=0.0)), axis=-1)[..., None]
        rest = x.copy()
        np.put_along_axis(rest, top, 0.0, axis=-1)
        np.put_along_axis(out, top, sum2(rest, axis=-1)[..., None], axis=-1)
    return out


def softmax_parts(z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(q, 1 - q)`` of ``q = softmax(z)`` over the last axis, each to a few ulps.

    ``exp(z - m)`` uses the exact split ``z - m = d + e`` (no ``|z - m|·u`` amplification)
    and ``1 - q`` is the sum of the other classes' terms over the total (no cancellation at
    a dominant class). Non-finite rows give NaN (the loss is NaN or infinite there).
    """
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        d, e = two_sum(z, -np.where(np.isfinite(m), m, 0.0))
        np.copyto(e, 0.0, where=~np.isfinite(e))
        ex = np.exp(d) * (1.0 + e)
        total = sum2(ex, axis=-1)[..., None]
        return ex / total, others_sum(ex) / total


def softmax_vjp(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g - q·Σg`` (the VJP of ``log_softmax`` at logits `z`, cotangent `g` of one sign per
    row) written as ``g·(1 - q) - q·Σ_{j≠k} g_j``: the ``1 - q`` and the row sum without
    the element itself do not cancel; what remains is the difference of the two terms,
    which is the true conditioning of the result."""
    q, q_rest = softmax_parts(z)
    return g * q_rest - q * others_sum(g)


def logsumexp_pair(xh: np.ndarray, xl: np.ndarray, axis: int):
    """``log Σ exp(xh + xl)`` over `axis` as a pair ``(hi, lo)`` (the axis kept).

    The values are ``hi + lo`` pairs (``lo`` below an ulp of ``hi``): the differences to
    the maximum are split exactly (TwoSum) and the sum ``m + log1p(rest)`` is kept as a
    pair, so the only roundings are those of ``exp``, ``log1p`` and the small ``rest``,
    none proportional to the magnitude of the logs. All ``-inf``: ``(-inf, 0)``.
    """
    top = np.expand_dims(np.argmax(np.nan_to_num(xh, nan=np.inf), axis=axis), axis)
    m = np.take_along_axis(xh, top, axis=axis)
    ml = np.take_along_axis(xl, top, axis=axis)
    d, e = two_sum(xh, -np.where(np.isfinite(m), m, 0.0))
    e += xl - ml
    np.copyto(e, 0.0, where=~np.isfinite(e))
    ex = np.exp(d) * (1.0 + e)
    np.put_along_axis(ex, top, 0.0, axis=axis)
    hi, lo = two_sum(m, np.log1p(np.sum(ex, axis=axis, keepdims=True)))
    lo += ml
    return renorm_pair(hi, lo)


def renorm_pair(hi: np.ndarray, lo: np.ndarray):
    """``(hi, lo)`` renormalised (``hi = fl(hi + lo)``); ``lo = 0`` where ``hi`` is not finite."""
    lo = np.where(np.isfinite(hi) & np.isfinite(lo), lo, 0.0)
    hi, e = two_sum(hi, lo)
    bad = ~np.isfinite(hi) | ~np.isfinite(e)
    if bad.any():
        e = np.where(bad, 0.0, e)
    return hi, e


def _occupancy(y_true: np.ndarray, emit_logs: np.ndarray, lengths: np.ndarray):
    """Per class occupancy ``γ_t(k) = Σ_{s: l'_s = k} α_t(s) β̃_t(s) / P`` (B, T, C) and
    whether each sample's ``P`` is positive and finite (from its states).

    ``emit_logs``: the per-step log-weights of the classes, up to a constant per step
    (logits or log-probabilities: a shift of step t multiplies every alignment by the
    same factor, so ``γ`` does not see it). ``α_t`` (emission at t included) and ``β̃_t``
    (from step t + 1 on) are log-space forward and backward variables carried as exact
    ``hi + lo`` pairs, each shifted by its step's maximum (the shifts cancel in the
    quotient, which uses ``P = Σ_s α_t(s) β̃_t(s)`` at the same step).
    """
    ext, skip, length = _extended(y_true)
    n_b, n_t, n_c = emit_logs.shape
    n_s = ext.shape[1]
    emit = np.take_along_axis(emit_logs, ext[:, None, :], axis=2)  # (B, T, S), exact
    fwd = np.empty((2, n_b, n_t, n_s))
    ah = np.full((n_b, n_s), -np.inf)
    ah[:, 0] = 0.0
    al = np.zeros((n_b, n_s))
    ph = np.full((3, n_b, n_s), -np.inf)
    pl = np.zeros((3, n_b, n_s))
    no_jump = ~skip
    live = np.arange(n_t)[None, :] < lengths[:, None]  # (B, T): the steps read
    for t in range(n_t):
        for buf, src in ((ph, ah), (pl, al)):
            buf[0] = src
            buf[1, :, 1:] = src[:, :-1]
            buf[2, :, 2:] = src[:, :-2]
        np.copyto(ph[2], -np.inf, where=no_jump)
        np.copyto(pl[2], 0.0, where=no_jump)
        h, lo = logsumexp_pair(ph, pl, 0)
        h, e = two_sum(h[0], emit[:, t])
        h, lo = renorm_pair(h, lo[0] + e)
        c = np.max(h, axis=1, keepdims=True)
        h, e = two_sum(h, -np.where(np.isfinite(c), c, 0.0))
        h, lo = renorm_pair(h, lo + e)
        keep = live[:, t, None]
        ah, al = np.where(keep, h, ah), np.where(keep, lo, al)
        fwd[0, :, t], fwd[1, :, t] = ah, al
    rows = np.arange(n_b)
    final = np.full((n_b, n_s), -np.inf)
    final[rows, 2 * length] = 0.0
    has = length > 0
    final[rows[has], 2 * length[has] - 1] = 0.0
    m, r = logsumexp_parts(np.where(final == 0.0, ah, -np.inf), axis=1)
    ok = np.isfinite((m + r)[:, 0])  # P > 0 and finite (α after the last read step)
    gamma = np.zeros((n_b, n_t, n_c))
    nh = np.full((3, n_b, n_s), -np.inf)
    nl = np.zeros((3, n_b, n_s))
    bh, bl = final.copy(), np.zeros((n_b, n_s))
    flat = (np.repeat(rows, n_s), ext.ravel())
    for t in range(n_t - 1, -1, -1):
        if t < n_t - 1:
            xh, xl = two_sum(emit[:, t + 1], bh)
            xh, xl = renorm_pair(xh, xl + bl)
            for buf, src, empty in ((nh, xh, -np.inf), (nl, xl, 0.0)):
                buf[0] = src
                buf[1, :, :-1] = src[:, 1:]
                buf[2, :, :-2] = np.where(skip[:, 2:], src[:, 2:], empty)
            h, lo = logsumexp_pair(nh, nl, 0)
            c = np.max(h[0], axis=1, keepdims=True)
            h, e = two_sum(h[0], -np.where(np.isfinite(c), c, 0.0))
            h, lo = renorm_pair(h, lo[0] + e)
            keep = (t < lengths - 1)[:, None]
            bh, bl = np.where(keep, h, final), np.where(keep, lo, 0.0)
        wh, wl = two_sum(fwd[0, :, t], bh)
        wh, wl = renorm_pair(wh, wl + fwd[1, :, t] + bl)
        mh, ml = logsumexp_pair(wh, wl, 1)
        d, e = two_sum(wh, -np.where(np.isfinite(mh), mh, 0.0))
        e += wl - ml
        np.copyto(e, 0.0, where=~np.isfinite(e))
        occ = np.exp(d) * (1.0 + e)  # α_t(s) β̃_t(s) / P
        g = np.zeros((n_b, n_c))
        np.add.at(g, flat, occ.ravel())
        gamma[:, t] = g
    gamma[~live] = 0.0
    return gamma, ok, live


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, log_probs: bool = False,
                   input_lengths: Optional[np.ndarray] = None) -> dict:
    """VJP of :func:`reference`: ``{"y_pred": d Σ_b cot_b ℓ_b / d y_pred}`` (B, T, C).

    Log-probabilities (`log_probs`): ``-cot·γ_t(k)``; logits: ``cot·(q_t(k) - γ_t(k))``,
    evaluated as ``cot·(q·(1 - γ) - γ·(1 - q))`` with both ``1 - ·`` free of
    cancellation (:func:`softmax_vjp`). Steps past a sample's length: 0. A sample whose
    loss is not finite (``P = 0``: ``+inf``; NaN) gets NaN at its read steps (``0/0``).
    """
    lab = np.asarray(y_true, dtype=np.float64)
    z = np.asarray(y_pred, dtype=np.float64)
    n_b, n_t, _ = z.shape
    lens = (np.full(n_b, n_t, np.int64) if input_lengths is None
            else np.asarray(input_lengths, dtype=np.int64).reshape(n_b))
    c = np.asarray(cot, dtype=np.float64).reshape(n_b)[:, None, None]
    out = np.empty(z.shape)
    rows = max(1, block_elements() // max(1, n_t * max(z.shape[2], 2 * lab.shape[1] + 1)))
    with np.errstate(all="ignore"):
        for i in range(0, n_b, rows):  # blocks of rows bound the stored forward variables
            sl = slice(i, i + rows)
            zb = z[sl]
            gamma, ok, live = _occupancy(lab[sl], zb, lens[sl])
            if not log_probs:  # the softmax of a read step is NaN with a NaN, a +inf or only -inf
                bad = np.isnan(zb).any(-1) | np.isposinf(zb).any(-1) | np.isneginf(zb).all(-1)
                ok &= ~(bad & live).any(axis=1)
            g = -c[sl] * gamma if log_probs else c[sl] * softmax_vjp(zb, -gamma)
            g = np.where(live[..., None], g, 0.0)
            out[sl] = np.where(~ok[:, None, None] & live[..., None], np.nan, g)
    return {"y_pred": out}


LOSS = register(LossDef(
    name="ctc",
    summary="-log P(label | logits), the sum over every CTC alignment; blank and padding 0",
    stage2="structured",
    per_sample_ref=reference,
    per_sample_exact=oracle,
    grad_ref=grad_reference,
    check_inputs=check_inputs,
    native=True,
))
