"""Connectionist temporal classification (CTC). Spec: spec/losses/ctc.md.

``y_true`` (B, L): integer labels in ``1 .. C-1``, right-padded with the blank 0;
``y_pred`` (B, T, C): logits. Per sample ``-log P(label)``, where ``P`` sums, over every
alignment of length T that collapses to the label (merge repeats, then drop blanks),
the product of the softmax probabilities over the classes. No alignment: ``+inf``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..numerics import log_softmax, logsumexp_parts
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


LOSS = register(LossDef(
    name="ctc",
    summary="-log P(label | logits), the sum over every CTC alignment; blank and padding 0",
    stage2="structured",
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_inputs,
    native=True,
))
