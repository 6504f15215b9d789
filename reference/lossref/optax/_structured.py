"""Optax's structured losses: CTC (``optax.losses.ctc_loss``, ``ctc_loss_with_forward_probs``)
and Dice (``dice_loss``, ``binary_dice_loss``, ``multiclass_generalized_dice_loss``).

CTC (spec/losses/ctc.md, "Optax convention"): batch-major logits (B, T, K), log-softmax
applied inside, paddings (1 = padded) instead of lengths, and ``log_epsilon`` standing in
for log 0. Optax's recursion is a weighted automaton in which every forbidden move still
carries the weight ``exp(log_epsilon)``: the dialect evaluates *that* automaton (so an
infeasible label gives about ``-log_epsilon`` plus the usual terms, as optax does, not
+inf). The result is float64 whatever the logits' format (optax's initial state is
``jnp.ones(...) * log_epsilon``, float64 with x64).

Dice (spec/losses/soft_dice.md, generalized_dice.md): per class
``1 - (I + s) / (I + alpha FP + beta FN + s)`` on softmax (sigmoid for one class)
probabilities, reduced over the classes.

>>> import numpy as np
>>> from lossref.optax import losses
>>> lg = np.zeros((1, 3, 4))
>>> losses.ctc_loss(lg, np.zeros((1, 3)), np.array([[1]]), np.zeros((1, 1)))  # -ln(6/64)
array([2.36712361])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import formats
from ..dialect import check_bool
from ..formats import FLOAT32, FLOAT64
from ..losses.ctc import logsumexp_pair, renorm_pair, softmax_vjp
from ..losses import generalized_dice as _gdice
from ..losses import soft_dice as _sdice
from ..numerics import log_softmax, two_sum
from ..oracle import Exact
from ..oracle import ops as xo
from ..registry import is_real
from ._base import OptaxFunction, Prepared, as_jax, float_format, optax_function, result_format

__all__ = ['ctc_loss', 'ctc_loss_with_forward_probs', 'dice_loss', 'binary_dice_loss',
           'multiclass_generalized_dice_loss']


# --- CTC: optax's automaton, once in float64 (log domain) and once exactly (probabilities) ---------
#
# States per sequence: phi[n] (n labels done, n = 0..N, last frame blank or an epsilon move
# from emit[n-1]) and emit[n] (label n just emitted, n = 0..N-1). Gates: a repeated next
# label forbids emit[n] -> phi[n+1] by epsilon and allows it through a blank; each forbidden
# move is weighted by exp(log_epsilon) instead of removed.


def _repeats(labels: np.ndarray) -> np.ndarray:
    """``rep[b, n] = labels[b, n] == labels[b, n + 1]`` (padded labels compared too), 0 last."""
    rep = np.zeros(labels.shape, dtype=bool)
    rep[:, :-1] = labels[:, :-1] == labels[:, 1:]
    return rep


def _ctc_reference(y_true, y_pred, pad=(), lengths=(), blank_id=0, log_eps=-1e5, log_gate=-1e5,
                   tables=False):
    """Per sequence loss (and with `tables` the forward variables (T, B, N+1), (T, B, N)) in
    float64, optax's recursion in the log domain with IEEE semantics throughout."""
    labels = np.asarray(y_true).astype(np.int64)
    n_b, n_t, n_k = y_pred.shape
    n_n = labels.shape[1]
    pads = np.asarray(pad, dtype=np.float64).reshape(n_b, n_t)
    with np.errstate(all="ignore"):
        logp = log_softmax(y_pred, axis=-1)
        inside = (labels >= 0) & (labels < n_k)
        emit_lp = np.take_along_axis(logp, np.where(inside, labels, 0)[:, None, :], axis=2)
        emit_lp = np.where(inside[:, None, :], emit_lp, 0.0)  # a zero one-hot row: log-prob 0
        # the one-hot product reads every class: a non-finite log-probability poisons the frame
        emit_lp = np.where(np.all(np.isfinite(logp), axis=2)[..., None], emit_lp, np.nan)
        blank_lp = logp[:, :, blank_id]
        rep = _repeats(labels)
        g1 = np.where(rep, log_gate, 0.0)
        g2 = np.where(rep, 0.0, log_gate)
        phi = np.full((n_b, n_n + 1), float(log_eps))
        phi[:, 0] = 0.0
        emit = np.full((n_b, n_n), float(log_eps))
        phis, emits = [], []
        for t in range(n_t):
            aug = phi.copy()
            aug[:, 1:] = np.logaddexp(phi[:, 1:], emit + g1)
            e_t, b_t = emit_lp[:, t], blank_lp[:, t, None]
            nxt_emit = np.logaddexp(aug[:, :-1] + e_t, emit + e_t)
            nxt_phi = aug + b_t
            nxt_phi[:, 1:] = np.logaddexp(nxt_phi[:, 1:], emit + b_t + g2)
            p = pads[:, t, None]
            emit = p * emit + (1.0 - p) * nxt_emit  # optax's select: 0 * inf is NaN here too
            phi = p * phi + (1.0 - p) * nxt_phi
            phis.append(phi)
            emits.append(emit)
        last = phi.copy()
        last[:, 1:] = np.logaddexp(phi[:, 1:], emit)
        onehot = np.arange(n_n + 1)[None, :] == np.asarray(lengths, np.int64)[:, None]
        loss = -np.sum(last * onehot, axis=1)  # the one-hot contraction: 0 * inf is NaN
    if not tables:
        return loss
    phis[-1] = last
    return loss, np.stack(phis), np.stack(emits).reshape(n_t, n_b, n_n)


def _exact_logsoftmax_probs(z: np.ndarray):
    """The exact class probabilities of each frame (T, K), with IEEE log-softmax semantics
    for non-finite logits (NaN with a NaN or with every logit -inf; a +inf logit takes
    the mass, NaN if there are several; -inf gives 0), and whether each frame's
    log-probabilities are all finite (an oracle condition: three-valued on balls)."""
    z = np.asarray(z, dtype=object)
    e = xo.exp(z)  # exp(-inf) = 0: a -inf logit adds nothing to the sum
    prob = xo.div(e, xo.fsum(e, -1)[:, None])
    neg, pos = xo.isinf(z, -1), xo.isinf(z)
    nan = xo.lor(xo.any_of(xo.isnan(z), -1), xo.all_of(neg, -1))[:, None]
    top = xo.any_of(pos, -1)[:, None]
    prob = xo.where(xo.lor(top, neg), 0, prob)
    prob = xo.where(xo.lor(nan, xo.land(top, pos)), xo.NAN, prob)
    return prob, xo.all_of(xo.isfinite(z), -1)


def _live(v):
    """Where a probability has a finite log (optax's select keeps it; 0 * -inf is NaN): an
    oracle condition, undecided on balls that may be 0 or are not known."""
    return xo.land(xo.isfinite(v), xo.lnot(xo.eq(v, 0)))


def _objects(values) -> np.ndarray:
    """A 1-D object array of the given numbers (no conversion: they are the backend's)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _ctc_oracle(y_true, y_pred, pad=(), lengths=(), blank_id=0, log_eps=-1e5, log_gate=-1e5, tables=False):
    """The same automaton on exact probabilities (the literal recursion, one sequence at a
    time, the states of a frame as arrays), its logs at the end."""
    n_b, n_t, n_k = y_pred.shape
    n_n = y_true.shape[1]
    if math.isfinite(log_eps) and math.isfinite(log_gate):
        eps0, gate = xo.exp(xo.num(log_eps))[()], xo.exp(xo.num(log_gate))[()]
    else:
        eps0 = gate = xo.NAN  # log_epsilon * 0 with an infinite log_epsilon is NaN
    loss = np.empty(n_b, dtype=object)
    phis = np.empty((n_t, n_b, n_n + 1), dtype=object)
    emits = np.empty((n_t, n_b, n_n), dtype=object)
    one = xo.num(1)
    for b in range(n_b):
        labels = [int(xo.to_fraction(v)) for v in y_true[b]]  # inputs: exact integers
        rep = [n + 1 < n_n and labels[n] == labels[n + 1] for n in range(n_n)]
        g1 = _objects([gate if r else one for r in rep])
        g2 = _objects([one if r else gate for r in rep])
        inside = np.array([0 <= lab < n_k for lab in labels], dtype=bool)
        at = np.array([lab if 0 <= lab < n_k else 0 for lab in labels], dtype=np.int64)
        prob, finite = _exact_logsoftmax_probs(y_pred[b])
        phi = _objects([one] + [eps0] * n_n)
        emit = _objects([eps0] * n_n)
        for t in range(n_t):
            aug = _objects([phi[0]] + list(phi[1:] + emit * g1))
            # a label outside the classes has a zero one-hot row: probability 1 (log 0)
            pe = xo.where(finite[t], xo.where(inside, prob[t, at], one), xo.NAN)
            pb = prob[t, blank_id]
            nxt_emit = (aug[:-1] + emit) * pe
            nxt_phi = _objects([aug[0] * pb] + list(aug[1:] * pb + emit * pb * g2))
            if pad[b][t]:
                emit = xo.where(_live(nxt_emit), emit, xo.NAN)
                phi = xo.where(_live(nxt_phi), phi, xo.NAN)
            else:
                emit = xo.where(_live(emit), nxt_emit, xo.NAN)
                phi = xo.where(_live(phi), nxt_phi, xo.NAN)
            phis[t, b] = xo.log(phi)
            emits[t, b] = xo.log(emit)
        last = _objects([phi[0]] + list(phi[1:] + emit))
        phis[n_t - 1, b] = xo.log(last)
        length = lengths[b]
        others = np.arange(n_n + 1) != length
        bad = xo.lor(xo.any_of(xo.lnot(_live(last[others])), -1), xo.isnan(last[length]))
        loss[b] = xo.where(bad, xo.NAN, -xo.log(last[length]))[()]
    return (loss, phis, emits) if tables else loss


def _add2(h1, l1, h2, l2):
    """The pair of ``(h1 + l1) + (h2 + l2)`` (TwoSum of the high parts)."""
    h, e = two_sum(h1, h2)
    return renorm_pair(h, e + l1 + l2)


def _shift_max(h, lo, c):
    """``(h + lo) - c`` as a pair, ``c`` a per-row maximum (0 where it is not finite)."""
    h, e = two_sum(h, -np.where(np.isfinite(c), c, 0.0))
    return renorm_pair(h, lo + e)


def _next_frame(pad, old, new):
    """One frame of the forward or backward pass: the new state pairs ``(ah, al, bh, bl)``
    shifted by their common per-row maximum (so they stay in range), or the old ones on a
    padded frame (`pad`)."""
    ah, al, bh, bl = new
    top = np.maximum(np.max(ah, axis=1, keepdims=True), np.max(bh, axis=1, keepdims=True, initial=-np.inf))
    ah, al = _shift_max(ah, al, top)
    bh, bl = _shift_max(bh, bl, top)
    return tuple(np.where(pad, o, n) for o, n in zip(old, (ah, al, bh, bl)))


def _ctc_vjp(y_true, y_pred, cot, pad=(), lengths=(), blank_id=0, log_eps=-1e5, log_gate=-1e5, tables=False):
    """VJP of :func:`_ctc_reference`'s loss wrt the logits (B, T, K), `cot` (B,).

    Optax's automaton is linear in the probabilities, so ``d loss / d log w`` for each
    emission weight ``w`` is ``-(Σ over its uses of α before · w · β after) / P`` with
    ``P = Σ_x α_t(x) β_t(x)`` at every frame: a forward and a backward pass over the
    states ``φ[0..N]``, ``emit[0..N-1]`` (ε-weighted moves included), in log space as exact
    ``hi + lo`` pairs, each frame shifted by its maximum. Frame t (not padded):
    ``emit'[n] = E_n (φ[n] + G1_{n-1} emit[n-1] + emit[n])``,
    ``φ'[m] = B (φ[m] + (G1 + G2)_{m-1} emit[m-1])``, ``G = 1`` or ``exp(log_gate)`` as
    optax's repeat gates. The log-probability gradient goes through ``log_softmax`` by
    :func:`lossref.losses.ctc.softmax_vjp`. Padded frames: 0. A sequence whose loss is NaN:
    0 everywhere, as the oracle's chain rule gives (its NaN is a selected constant);
    ``jax.grad`` gives NaN there."""
    labels = np.asarray(y_true).astype(np.int64)
    z = np.asarray(y_pred, np.float64)
    n_b, n_t, n_k = z.shape
    n_n = labels.shape[1]
    pads = np.asarray(pad, dtype=bool).reshape(n_b, n_t)
    lens = np.asarray(lengths, np.int64).reshape(n_b)
    c = np.asarray(cot, np.float64).reshape(n_b)
    loss = _ctc_reference(y_true, z, pad, lengths, blank_id, log_eps, log_gate)
    with np.errstate(all="ignore"):
        # log-probabilities as pairs: z - m = d + e exactly, minus log1p(rest)
        m = np.max(z, axis=-1, keepdims=True)
        d, e = two_sum(z, -np.where(np.isfinite(m), m, 0.0))
        np.copyto(e, 0.0, where=~np.isfinite(e))
        rh, rl = logsumexp_pair(d, e, -1)
        lph, lpl = _add2(d, e, -rh, -rl)
        inside = (labels >= 0) & (labels < n_k)
        at = np.where(inside, labels, 0)[:, None, :]
        eh = np.where(inside[:, None, :], np.take_along_axis(lph, at, axis=2), 0.0)  # (B, T, N)
        el = np.where(inside[:, None, :], np.take_along_axis(lpl, at, axis=2), 0.0)
        bh, bl = lph[:, :, blank_id], lpl[:, :, blank_id]  # (B, T)
        rep = _repeats(labels)
        g1 = np.where(rep, log_gate, 0.0)
        gs = np.logaddexp(g1, np.where(rep, 0.0, log_gate))  # the two moves emit[m-1] -> φ[m]
        ninf = np.full((n_b, 1), -np.inf)
        zero = np.zeros((n_b, 1))
        # (the shifted emit terms are cut to N columns: with no labels, N = 0, there are none)
        # forward: the states after each frame, (phi, emit) pairs
        ph = np.concatenate([zero, np.full((n_b, n_n), float(log_eps))], axis=1)
        pl = np.zeros_like(ph)
        mh, ml = np.full((n_b, n_n), float(log_eps)), np.zeros((n_b, n_n))
        ph, pl = renorm_pair(ph, pl)
        mh, ml = renorm_pair(mh, ml)
        fw = []
        for t in range(n_t):
            jh, jl = _add2(mh[:, :-1], ml[:, :-1], g1[:, :-1], 0.0)
            kh, kl = _add2(mh, ml, gs, 0.0)
            ce = [np.stack([ph[:, :-1], np.concatenate([ninf, jh], 1)[:, :n_n], mh]),
                  np.stack([pl[:, :-1], np.concatenate([zero, jl], 1)[:, :n_n], ml])]
            cp = [np.stack([ph, np.concatenate([ninf, kh], 1)]),
                  np.stack([pl, np.concatenate([zero, kl], 1)])]
            h, lo = logsumexp_pair(ce[0], ce[1], 0)
            nmh, nml = _add2(h[0], lo[0], eh[:, t], el[:, t])
            h, lo = logsumexp_pair(cp[0], cp[1], 0)
            nph, npl = _add2(h[0], lo[0], bh[:, t, None], bl[:, t, None])
            ph, pl, mh, ml = _next_frame(pads[:, t, None], (ph, pl, mh, ml), (nph, npl, nmh, nml))
            fw.append((ph, pl, mh, ml))
        # backward from the final contraction: last[m] = φ[m] + emit[m-1], read at the length
        idx = np.arange(n_n + 1)[None, :]
        qh = np.where(idx == lens[:, None], 0.0, -np.inf)
        ql = np.zeros_like(qh)
        sh = np.where(idx[:, 1:] == lens[:, None], 0.0, -np.inf)
        sl = np.zeros_like(sh)
        g_lp = np.zeros((n_b, n_t, n_k))
        rows = np.arange(n_b)
        for t in range(n_t - 1, -1, -1):
            ph, pl, mh, ml = fw[t]
            wph, wpl = _add2(ph, pl, qh, ql)
            wmh, wml = _add2(mh, ml, sh, sl)
            wh, wl = np.concatenate([wph, wmh], 1), np.concatenate([wpl, wml], 1)
            zh, zl = logsumexp_pair(wh, wl, 1)
            d, e = two_sum(wh, -np.where(np.isfinite(zh), zh, 0.0))
            e += wl - zl
            np.copyto(e, 0.0, where=~np.isfinite(e))
            occ = np.exp(d) * (1.0 + e)  # α_t(x) β_t(x) / P, frame t's states
            live = ~pads[:, t]
            g = np.zeros((n_b, n_k))
            np.add.at(g, (np.repeat(rows, n_n), at[:, 0].ravel()),
                      np.where(inside, occ[:, n_n + 1:], 0.0).ravel())
            g[rows, blank_id] += np.sum(occ[:, :n_n + 1], axis=1)
            g_lp[:, t] = np.where(live[:, None], g, 0.0)
            # β before frame t: the transposed step (identity on a padded frame)
            ae = _add2(eh[:, t], el[:, t], sh, sl)
            jh, jl = _add2(ae[0][:, 1:], ae[1][:, 1:], g1[:, :-1], 0.0)
            ab = _add2(qh, ql, bh[:, t, None], bl[:, t, None])
            kh, kl = _add2(ab[0][:, 1:], ab[1][:, 1:], gs, 0.0)
            be = [np.stack([ae[0], np.concatenate([jh, ninf], 1)[:, :n_n], kh]),
                  np.stack([ae[1], np.concatenate([jl, zero], 1)[:, :n_n], kl])]
            bp = [np.stack([np.concatenate([ae[0], ninf], 1), ab[0]]),
                  np.stack([np.concatenate([ae[1], zero], 1), ab[1]])]
            h, lo = logsumexp_pair(be[0], be[1], 0)
            nsh, nsl = h[0], lo[0]
            h, lo = logsumexp_pair(bp[0], bp[1], 0)
            nqh, nql = h[0], lo[0]
            qh, ql, sh, sl = _next_frame(pads[:, t, None], (qh, ql, sh, sl), (nqh, nql, nsh, nsl))
        g = softmax_vjp(z, -c[:, None, None] * g_lp)
        g = np.where(~pads[..., None], g, 0.0)
        # a NaN loss is the oracle's decision (a non-finite frame, a dead state, a NaN at
        # the length), a constant: its gradient is 0 (jax.grad gives NaN there)
        g = np.where(np.isnan(loss)[:, None, None], 0.0, g)
    return {"y_pred": g}

def _binary01(fn: str, name: str, arr: np.ndarray) -> np.ndarray:
    """Paddings as booleans: each entry exactly 0 or 1 (optax's documented domain)."""
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{fn}: {name} must be numeric; got dtype {arr.dtype}")
    a = arr.astype(np.float64)
    bad = (a != 0) & (a != 1)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{fn}: {name} must hold 0.0 (kept) or 1.0 (padded); got {a[i]!r} at {i}")
    return a == 1


def _log_epsilon_gate(log_epsilon: Any) -> float:
    """The value of ``log_epsilon * repeat`` for ``repeat = 1``: repeat is float32, so a Python
    number (weakly typed) is rounded to float32 there, a NumPy value keeps its promotion."""
    if isinstance(log_epsilon, (np.ndarray, np.generic)) and formats.get_format(
            np.asarray(log_epsilon).dtype).precision > FLOAT32.precision:
        return float(log_epsilon)
    return float(formats.round_array(np.asarray(float(log_epsilon)), FLOAT32))


def _prepare_ctc(fn: str, logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon,
                 tables: bool) -> Prepared:
    z = as_jax(logits, "logits")
    float_format(fn, z, "logits")
    if z.ndim != 3:
        raise ValueError(f"{fn}: logits must have shape (B, T, K); got shape {z.shape}")
    n_b, n_t, n_k = z.shape
    if n_t < 1 or n_k < 1:
        raise ValueError(f"{fn}: logits need at least one frame and one class; got shape {z.shape}")
    lp = as_jax(logit_paddings, "logit_paddings")
    if lp.shape != (n_b, n_t):
        raise ValueError(f"{fn}: logit_paddings must have shape {(n_b, n_t)} (logits' B, T); got {lp.shape}")
    pad = _binary01(fn, "logit_paddings", lp)
    lab = as_jax(labels, "labels")
    if lab.ndim != 2:
        raise ValueError(f"{fn}: labels must have shape (B, N); got shape {lab.shape}")
    if lab.shape[0] != n_b:
        raise ValueError(f"{fn}: Expected `labels` to have batch size {n_b}, got {lab.shape[0]}.")
    lpad = as_jax(label_paddings, "label_paddings")
    if lpad.shape != lab.shape:
        raise ValueError(f"{fn}: label_paddings must have the shape of labels {lab.shape}; got {lpad.shape}")
    lpad = _binary01(fn, "label_paddings", lpad)
    if (lpad[:, :-1] & ~lpad[:, 1:]).any():
        b = int(np.argwhere(lpad[:, :-1] & ~lpad[:, 1:])[0][0])
        raise ValueError(f"{fn}: labels must be right-padded: row {b} of label_paddings has a 0 after a 1")
    lab64 = lab.astype(np.float64)
    if not np.all(np.isfinite(lab64) & (lab64 == np.trunc(lab64))):
        raise ValueError(f"{fn}: labels must hold integer class ids")
    used = ~lpad
    if np.any(used & ((lab64 < 0) | (lab64 >= n_k))):
        i = tuple(int(k) for k in np.argwhere(used & ((lab64 < 0) | (lab64 >= n_k)))[0])
        raise ValueError(f"{fn}: label {lab64[i]:g} at {i} is outside [0, {n_k}) (optax's one-hot gives it "
                         "log-probability 0)")
    if not isinstance(blank_id, (int, np.integer)) or isinstance(blank_id, (bool, np.bool_)):
        raise TypeError(f"{fn}: blank_id must be an int; got {blank_id!r}")
    if not 0 <= int(blank_id) < n_k:
        raise ValueError(f"{fn}: blank_id must be in [0, {n_k}); got {blank_id}")
    if not is_real(log_epsilon) or np.ndim(log_epsilon) != 0:
        raise TypeError(f"{fn}: log_epsilon must be a real scalar; got {log_epsilon!r}")
    lengths = tuple(int(v) for v in np.count_nonzero(used, axis=1))
    params = {"pad": tuple(tuple(bool(v) for v in row) for row in pad), "lengths": lengths,
              "blank_id": int(blank_id), "log_eps": float(log_epsilon),
              "log_gate": _log_epsilon_gate(log_epsilon), "tables": tables}
    # clipped padded labels keep the float64 view exact; only the compare of repeats and the
    # range test read them, both done on these integers
    return Prepared(np.where(np.abs(lab64) < 2 ** 52, lab64, -1.0).astype(np.int64), z, FLOAT64, params)


@optax_function("ctc", _ctc_reference, _ctc_oracle, vjp=_ctc_vjp)
def ctc_loss(logits, logit_paddings, labels, label_paddings, *, blank_id: int = 0,
             log_epsilon: float = -1e5):
    """Per sequence ``-log`` of optax's CTC forward sum, shape (B,), float64.

    `logits` (B, T, K) are log-softmaxed inside; `logit_paddings` (B, T) and
    `label_paddings` (B, N) hold 1.0 at padded positions (labels right-padded); forbidden
    alignments weigh ``exp(log_epsilon)`` instead of 0.
    """
    return _prepare_ctc("ctc_loss", logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon,
                        False)


class _TableFunction(OptaxFunction):
    """A function returning optax's ``(loss, logalpha_blank, logalpha_emit)``; ``.exact``
    returns the three as :class:`lossref.Exact`."""

    def vjp64(self, pr: Prepared, cot):
        """The VJP of the three outputs for ``cot = (loss's, logalpha_blank's,
        logalpha_emit's)`` (or the loss's alone): the loss's part only; a non-zero cotangent
        on a table raises ``NotImplementedError``."""
        if isinstance(cot, (tuple, list)):
            if any(np.any(np.asarray(c, np.float64) != 0) for c in cot[1:]):
                raise NotImplementedError(f"{self.__name__}: no reference gradient for the "
                                          "forward tables (loss cotangent only)")
            cot = cot[0]
        return super().vjp64(pr, cot)

    def __call__(self, *args, **kwargs):
        a, b, kw = self._arguments(args, kwargs)
        pr = self.prepare(a, b, **kw)
        return tuple(np.asarray(formats.to_format_array(v, pr.fmt)) for v in self.values64(pr))

    def _exact(self, *args, **kwargs):
        a, b, kw = self._arguments(args, kwargs)
        pr = self.prepare(a, b, **kw)
        values = self.values_exact(pr)
        start = self.start_precision(pr)
        names = ("loss", "logalpha_blank", "logalpha_emit")
        return tuple(Exact(lambda i=i: values()[i], start_prec=start, dtype=pr.fmt,
                           label=f"{self.dialect}.{self.__name__}[{names[i]}]", balls=True) for i in range(3))


def _ctc_with_forward_probs(logits, logit_paddings, labels, label_paddings, *, blank_id: int = 0,
                            log_epsilon: float = -1e5):
    """``(loss, logalpha_blank, logalpha_emit)``: the loss (B,) of :func:`ctc_loss` and the
    logs of optax's forward variables, (T, B, N+1) and (T, B, N), all float64; the last
    frame of ``logalpha_blank`` includes the final epsilon move. ``.exact`` returns three
    :class:`lossref.Exact`.
    """
    return _prepare_ctc("ctc_loss_with_forward_probs", logits, logit_paddings, labels, label_paddings,
                        blank_id, log_epsilon, True)


_ctc_with_forward_probs.__name__ = _ctc_with_forward_probs.__qualname__ = "ctc_loss_with_forward_probs"
ctc_loss_with_forward_probs = _TableFunction(_ctc_with_forward_probs, "ctc", _ctc_reference, _ctc_oracle,
                                              vjp=_ctc_vjp)


# --- Dice ------------------------------------------------------------------------------------------


def _hyper(fn: str, name: str, v: Any, strong: list) -> Any:
    """A hyper-parameter: a Python number is weakly typed (rounded to the result format
    later); a NumPy scalar or 0-d array takes part in the dtype promotion."""
    if isinstance(v, (bool, np.bool_)) or not is_real(v) or np.ndim(v) != 0:
        raise TypeError(f"{fn}: {name} must be a real scalar; got {v!r}")
    if isinstance(v, (np.ndarray, np.generic)):
        a = np.asarray(v)
        if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
            strong.append(a)
    return v


def _in_format(v: Any, fmt) -> float:
    """`v` as JAX holds it in an operation of format `fmt` (a float64 value)."""
    return float(formats.round_array(np.asarray(float(v), np.float64), fmt))


def _reduction(fn: str, reduction: Any) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}: Unsupported reduction: {reduction}")
    return reduction


def _finish_dice(values, weights, ignore, reduction, arith):
    """Class weights, the background cut and the reduction over the last axis in `arith`."""
    v = arith.asarray(values)
    if weights is not None:  # exact: the weights taken exactly on the backend in use
        v = arith.multiply(v, weights)
    if ignore:
        v = v[..., 1:]
    if reduction == "none":
        return v
    s = arith.sum_last(v)
    return s if reduction == "sum" else arith.divide(s, np.full(np.shape(s), v.shape[-1], dtype=np.float64))


class _DiceFunction(OptaxFunction):
    """``dice_loss``: the soft-Dice values per class, then optax's class weights,
    background cut and reduction over the classes (``finish``)."""

    def finish(self, pr, values, arith):
        s = pr.stage3
        return _finish_dice(values, s.get("weights"), s["ignore"], s["reduction"], arith)


def _dice_reference(y_true, y_pred, **kw):
    return _sdice.reference(y_true, y_pred, **kw)


def _dice_oracle(y_true, y_pred, **kw):
    return _sdice.oracle(y_true, y_pred, **kw)


def _targets(fn: str, targets, fmt_of_predictions) -> np.ndarray:
    """Targets as a numeric array; bool and integer targets promote to the predictions' format
    (JAX: a float with an integer type gives the float)."""
    t = as_jax(targets, "targets")
    if t.dtype.kind in "biu":
        return t.astype(fmt_of_predictions.dtype)
    float_format(fn, t, "targets")
    return t


def _prepare_dice(fn, predictions, targets, class_weights, smooth, alpha, beta, apply_softmax, reduction,
                  ignore_background, axis, fix_ranks=True):
    p = as_jax(predictions, "predictions")
    pf = float_format(fn, p, "predictions")
    t = _targets(fn, targets, pf)
    apply_softmax = check_bool(fn, "apply_softmax", apply_softmax)
    ignore_background = check_bool(fn, "ignore_background", ignore_background)
    reduction = _reduction(fn, reduction)
    if fix_ranks:  # optax adds the missing class axis of size 1 to either
        if p.ndim == t.ndim - 1:
            p = p[..., None]
        if t.ndim == p.ndim - 1:
            t = t[..., None]
    if p.shape != t.shape:
        raise ValueError(f"{fn}: predictions shape {p.shape} and targets shape {t.shape} must be equal")
    if p.ndim < 1:
        raise ValueError(f"{fn}: predictions need a class axis (the last one); got shape {p.shape}")
    strong = []
    for name, v in (("smooth", smooth), ("alpha", alpha), ("beta", beta)):
        _hyper(fn, name, v, strong)
    w = None
    if class_weights is not None:
        if not isinstance(class_weights, (np.ndarray, np.generic)):
            raise TypeError(f"{fn}: class_weights must be an array (optax multiplies it as one); "
                            f"got {type(class_weights).__name__}")
        w = np.asarray(class_weights)
        float_format(fn, w, "class_weights")
        if w.ndim != 1:
            raise ValueError(f"{fn}: class_weights must have rank 1; got shape {w.shape}")
        strong.append(w)
    fmt = result_format(fn, p, t, *strong)
    activation = ("sigmoid" if p.shape[-1] == 1 else "softmax") if apply_softmax else None
    if not apply_softmax:
        with np.errstate(all="ignore"):
            sums = np.sum(p.astype(np.float64), axis=-1)
        if not np.all(np.abs(sums - 1.0) <= 1e-8 + 1e-5):
            raise ValueError(f"{fn}: When apply_softmax=False, predictions must be valid probability "
                             "distributions that sum to 1 along the class axis (within rtol 1e-5)")
    try:
        axes = _sdice.class_axes(axis, p.ndim)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{fn}: {e}") from None
    kept = [d for i, d in enumerate(p.shape) if i not in axes]
    if w is not None:
        width = kept[-1] if kept else 1
        if w.shape[0] not in (1, width):
            raise ValueError(f"{fn}: class_weights shape {w.shape} does not broadcast against the "
                             f"per-class losses {tuple(kept)}")
    params = {"alpha": _in_format(alpha, fmt) if not isinstance(alpha, (np.ndarray, np.generic)) else float(alpha),
              "beta": _in_format(beta, fmt) if not isinstance(beta, (np.ndarray, np.generic)) else float(beta),
              "smooth": _in_format(smooth, fmt) if not isinstance(smooth, (np.ndarray, np.generic)) else float(smooth),
              "axis": axes, "activation": activation}
    ignore = ignore_background and p.shape[-1] > 1
    if (ignore or reduction != "none") and not kept:
        raise ValueError(f"{fn}: no axis left to reduce over the classes (axis={axis!r})")
    stage3 = {"weights": None if w is None else w.astype(np.float64), "ignore": ignore, "reduction": reduction}
    return Prepared(t, p, fmt, params, stage3=stage3)


def _dice(predictions, targets, *, class_weights=None, smooth=1.0, alpha=0.5, beta=0.5, apply_softmax=True,
          reduction="mean", ignore_background=False, axis=None):
    """Soft Dice per class over `axis` (None: every axis between the first and the last),
    ``1 - (I + smooth) / (I + alpha (P - I) + beta (T - I) + smooth)`` on softmax
    probabilities (sigmoid for one class; as given without `apply_softmax`), times
    `class_weights`, class 0 dropped with `ignore_background`, then reduced over the classes
    (``'mean'``, ``'sum'``, ``'none'``).
    """
    return _prepare_dice("dice_loss", predictions, targets, class_weights, smooth, alpha, beta, apply_softmax,
                         reduction, ignore_background, axis)


_dice.__name__ = _dice.__qualname__ = "dice_loss"
dice_loss = _DiceFunction(_dice, "soft_dice", _dice_reference, _dice_oracle)


def _binary_dice(predictions, targets, *, smooth=1.0, apply_sigmoid=True):
    """:func:`dice_loss` with one class: a class axis of size 1 is added where the last
    axis is not one already; sigmoid probabilities; mean over the (single) class."""
    fn = "binary_dice_loss"
    p, t = as_jax(predictions, "predictions"), as_jax(targets, "targets")
    if p.ndim == t.ndim and p.ndim and p.shape[-1] != 1:
        p, t = p[..., None], t[..., None]
    return _prepare_dice(fn, p, t, None, smooth, 0.5, 0.5, apply_sigmoid, "mean", False, None)


_binary_dice.__name__ = _binary_dice.__qualname__ = "binary_dice_loss"
binary_dice_loss = _DiceFunction(_binary_dice, "soft_dice", _dice_reference, _dice_oracle)


def _gd_reference(y_true, y_pred, **kw):
    return _gdice.reference(y_true, y_pred, **kw)


def _gd_oracle(y_true, y_pred, **kw):
    return _gdice.oracle(y_true, y_pred, **kw)


@optax_function("generalized_dice", _gd_reference, _gd_oracle)
def multiclass_generalized_dice_loss(predictions, targets, *, smooth=1.0, apply_softmax=True,
                                     ignore_background=False):
    """One scalar: the mean over the batch and the classes of the soft Dice values weighted by
    ``C w_c / sum(w)``, ``w_c = 1 / (V_c**2 + 1e-7)`` with ``V_c`` the volume of class c in
    `targets` over every axis but the last (spec/losses/generalized_dice.md)."""
    fn = "multiclass_generalized_dice_loss"
    p = as_jax(predictions, "predictions")
    pf = float_format(fn, p, "predictions")
    t = _targets(fn, targets, pf)
    if p.shape != t.shape:
        raise ValueError(f"{fn}: predictions shape {p.shape} and targets shape {t.shape} must be equal")
    pr = _prepare_dice(fn, p, t, None, smooth, 0.5, 0.5, apply_softmax, "none", ignore_background, None,
                       fix_ranks=False)
    # 1e-7 is a Python float: it takes the targets' format (int targets were made float above)
    eps = _in_format(1e-7, formats.get_format(t.dtype))
    params = {"smooth": pr.params["smooth"], "activation": pr.params["activation"],
              "ignore_background": pr.stage3["ignore"], "epsilon": eps}
    return Prepared(t, p, pr.fmt, params)


# --- Dice gradients: the catalogue's (the references above only forward to it) ---------------------


def _catalogue_vjp(name: str):
    def vjp(y_true, y_pred, cot, **kw):
        from ..registry import get
        g = get(name).grad_ref
        if g is None:
            raise NotImplementedError(f"{name}: the catalogue has no reference gradient")
        return g(y_true, y_pred, cot, **kw)
    return vjp


dice_loss._vjp = binary_dice_loss._vjp = _catalogue_vjp("soft_dice")
multiclass_generalized_dice_loss._vjp = _catalogue_vjp("generalized_dice")
