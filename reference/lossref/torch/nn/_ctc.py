"""``torch.nn.functional.ctc_loss`` and ``torch.nn.CTCLoss`` (PyTorch 2.13).

The value is the catalogue's CTC (:mod:`lossref.losses.ctc`, the forward algorithm over
the blank-interleaved label) on log-probabilities taken as given, with per-sample input
and target lengths; what is torch's here is the layout and the arguments:

* ``log_probs`` (T, N, C) time-major, or unbatched (T, C); **not** normalised by the loss
  (raw scores give a different, possibly negative, value, as in torch);
* ``targets`` padded (N, S) (entries past a sample's length are not read) or 1-D, the
  labels concatenated (``sum(target_lengths)`` entries);
* ``input_lengths``, ``target_lengths``: integer arrays (torch tensors) or tuples/lists
  of ints, one per sample;
* ``blank``: any class in ``[0, C)``; ``zero_infinity``: an infinite loss (no alignment
  fits) becomes 0;
* ``'mean'`` is ``mean_n(ℓ_n / max(target_length_n, 1))``; ``'sum'`` ``Σ ℓ_n``;
  ``'none'`` has shape (N,) (``()`` unbatched);
* float32 and float64 only (torch's CPU kernel has no float16/bfloat16).

>>> import numpy as np
>>> from lossref.torch.nn import functional as F
>>> lp = np.log(np.full((3, 1, 4), 0.25, np.float32))
>>> F.ctc_loss(lp, np.array([[1]]), [3], [1], reduction="none")  # -ln(6/64)
array([2.3671236], dtype=float32)
>>> F.ctc_loss(lp, np.array([1, 1]), [2], [2], reduction="none")  # needs 3 steps
array([inf], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ... import formats
from ...dialect import check_bool
from ...losses import ctc as _ctc
from ...oracle import ops as xo
from ...reduction import torch_reduction
from .._base import Prepared, TorchDtypeError, TorchRuntimeError, as_tensor, torch_function

__all__ = ["ctc_loss"]

_TORCH_NAMES = {"float16": "Half", "bfloat16": "BFloat16", "int64": "Long", "int32": "Int",
                "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
_CHECKING = " (while checking arguments for ctc_loss_allocate_outputs)"


# --- per sample, once for both arithmetics ---------------------------------------------------------


def _finish(v, poisoned, zero_infinity, batched, exact):
    """NaN where a non-finite log-probability is read, 0 for +inf with `zero_infinity`,
    and the unbatched shape ``()``."""
    bad = np.asarray(poisoned, bool)
    if bad.any():
        v = np.where(bad, np.nan, v) if not exact else np.asarray(
            [xo.NAN if p else u for p, u in zip(bad, v)], dtype=object)
    if zero_infinity:
        if exact:
            # +inf: not finite and positive (a ball never holds an infinity: a NaN ball,
            # which may be one, is undecided and gets the union, left to mpmath)
            v = xo.where(xo.land(xo.lnot(xo.isfinite(v)), xo.gt(v, 0)), xo.num(0), v)
        else:
            v = np.where(v == np.inf, 0.0, v)
    return v if batched else np.asarray(v).reshape(())


def _blank_first(y, blank: int):
    """The classes reordered as the catalogue's: torch's blank first, the others in order."""
    # C order: the oracle's taped ops expect it of object arrays (a fancy index may give another)
    return y if not blank else np.ascontiguousarray(y[:, :, [blank] + [c for c in range(y.shape[2]) if c != blank]])


def _reference(y_true, y_pred, input_lengths=(), poisoned=(), zero_infinity=False, batched=True, impossible=(),
               blank=0):
    """Per sample ``-log P(label)`` in float64 from log-probabilities (N, T, C), class
    `blank` the blank (`impossible` is the oracle's)."""
    v = _ctc.reference(y_true, _blank_first(y_pred, blank), log_probs=True, input_lengths=np.asarray(input_lengths, np.int64))
    return _finish(v, poisoned, zero_infinity, batched, False)


def _oracle(y_true, y_pred, input_lengths=(), poisoned=(), zero_infinity=False, batched=True, impossible=(),
            blank=0):
    """The same on exact values; `impossible`: the flat (N, T, C) mask of the ``-inf``
    log-probabilities (empty if none), whose probability 0 a ball cannot read from its
    input."""
    zero = np.asarray(impossible, bool).reshape(y_pred.shape) if len(impossible) else None
    v = _ctc.oracle(y_true, _blank_first(y_pred, blank), log_probs=True, input_lengths=np.asarray(input_lengths, np.int64),
                    zero=zero)
    return _finish(v, poisoned, zero_infinity, batched, True)


def _vjp(y_true, y_pred, cot, input_lengths=(), poisoned=(), zero_infinity=False, batched=True, impossible=(),
         blank=0):
    """VJP of :func:`_reference` wrt the log-probabilities (N, T, C): ``-cot·γ`` at each
    sample's first ``input_lengths[n]`` steps, 0 after. The derivative of the value as
    defined (torch's autograd adds ``exp(log_probs)``: spec/losses/ctc.md, Gradient). An
    infinite loss gives NaN at its read steps, 0 with `zero_infinity` (the value is then
    the constant 0); a NaN loss (a NaN or ``+inf`` read) gives NaN at its read steps."""
    n = y_pred.shape[0]
    lens = np.asarray(input_lengths, np.int64)
    g = _ctc.grad_reference(y_true, _blank_first(y_pred, blank), np.asarray(cot, np.float64).reshape(n),
                            log_probs=True, input_lengths=lens)["y_pred"]
    if blank:  # back to torch's class order
        g = g[:, :, np.argsort([blank] + [c for c in range(g.shape[2]) if c != blank])]
    read = (np.arange(y_pred.shape[1])[None, :] < lens[:, None])[..., None]
    bad = np.asarray(poisoned, bool).reshape(n) if len(poisoned) else np.zeros(n, bool)
    if zero_infinity:
        inf = ~bad & np.isnan(g).any(axis=(1, 2))  # not poisoned: the loss is +inf
        g = np.where(inf[:, None, None], 0.0, g)
    return {"y_pred": np.where(bad[:, None, None] & read, np.nan, g)}


# --- arguments ------------------------------------------------------------------------------------


def _lengths(name: str, x, n: int):
    """Lengths as torch reads them: an integer tensor (NumPy array) or a tuple/list of ints,
    ``n`` of them (a tensor is read flat)."""
    if isinstance(x, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in x):
            raise TypeError(f"ctc_loss(): {name} must be a tensor or a tuple of ints; got {x!r}")
        arr = np.asarray(x, dtype=np.int64).reshape(-1)
    elif isinstance(x, (np.ndarray, np.generic)):
        arr = np.asarray(x)
        if arr.dtype.kind not in "iu":
            raise TorchRuntimeError(f"{name} must be integral")
        arr = arr.astype(np.int64).reshape(-1)
    else:
        raise TypeError(f"ctc_loss(): {name} must be a tensor or a tuple of ints; got {x!r}")
    if arr.size != n:
        raise TorchRuntimeError(f"{name} must be of size batch_size")
    return arr


def _integral_targets(t: np.ndarray) -> np.ndarray:
    """Targets as int64: torch converts any dtype to Long; lossref rejects what that
    conversion would truncate."""
    if t.dtype.kind in "biu":
        return t.astype(np.int64)
    t64 = t.astype(np.float64)
    bad = ~np.isfinite(t64) | (t64 != np.trunc(t64))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"ctc_loss: targets must hold integer class indices; got {float(t64[i])!r} at {i}")
    return t64.astype(np.int64)


def _labels(t: np.ndarray, tl: np.ndarray, n: int):
    """The (N, S) labels, each row's first ``tl[b]`` entries, with torch's shape checks."""
    if t.ndim not in (1, 2):
        raise TorchRuntimeError(f"Expected 1 to 2 dimensions, but got {t.ndim}-dimensional tensor for "
                                f"argument #2 'targets'{_CHECKING}")
    width = int(tl.max(initial=0))
    if t.ndim == 2:
        if t.shape[0] != n:
            raise TorchRuntimeError(f"Expected tensor to have size {n} at dimension 0, but got size "
                                    f"{t.shape[0]} for argument #2 'targets'{_CHECKING}")
        if t.shape[1] < width:
            raise TorchRuntimeError(f"Expected tensor to have size at least {width} at dimension 1, but "
                                    f"got size {t.shape[1]} for argument #2 'targets'{_CHECKING}")
        rows = [t[b, :tl[b]] for b in range(n)]
    else:
        if t.shape[0] != int(tl.sum()):
            raise TorchRuntimeError(f"Expected tensor to have size {int(tl.sum())} at dimension 0, but got "
                                    f"size {t.shape[0]} for argument #2 'targets'{_CHECKING}")
        ends = np.cumsum(tl)
        rows = [t[e - k:e] for e, k in zip(ends, tl)]
    return rows, width


@torch_function("ctc", _reference, _oracle, vjp=_vjp)
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False):
    """``-log Σ_{alignments} Π_t p_t(π_t)`` per sample, the alignments of its first
    ``input_lengths[n]`` steps that collapse to its label (merge repeats, drop blanks);
    `log_probs` (T, N, C) or (T, C) are used as given. No alignment: ``+inf`` (0 with
    `zero_infinity`). ``'mean'``: ``mean_n(ℓ_n / max(target_lengths[n], 1))``.
    """
    fn = "ctc_loss"
    zero_infinity = check_bool(fn, "zero_infinity", zero_infinity)
    if not isinstance(blank, (int, np.integer)) or isinstance(blank, (bool, np.bool_)):
        raise TypeError(f"ctc_loss(): blank must be an int; got {blank!r}")
    red = torch_reduction(reduction)
    lp = as_tensor(log_probs, "log_probs")
    t = as_tensor(targets, "targets")
    if lp.ndim not in (2, 3):  # torch adds a batch dimension to anything not 3-D, then checks
        raise TorchRuntimeError(f"Expected 3-dimensional tensor, but got {lp.ndim if lp.ndim > 3 else lp.ndim + 1}"
                                f"-dimensional tensor for argument #1 'log_probs'{_CHECKING}")
    batched = lp.ndim == 3
    n = lp.shape[1] if batched else 1
    il, tl = _lengths("input_lengths", input_lengths, n), _lengths("target_lengths", target_lengths, n)
    if lp.dtype.name not in ("float32", "float64"):
        raise TorchDtypeError(f"\"ctc_loss_cpu\" not implemented for '{_TORCH_NAMES.get(lp.dtype.name, lp.dtype.name)}'")
    fmt = formats.get_format(lp.dtype)
    x = lp if batched else lp[:, None, :]
    n_t, _, n_c = x.shape
    if x.size == 0:
        raise TorchRuntimeError("log_probs tensor must not be empty")
    if not 0 <= int(blank) < n_c:
        raise TorchRuntimeError("blank must be in label range")
    blank = int(blank)
    for name, v, top in (("input_lengths", il, n_t), ("target_lengths", tl, None)):
        if np.any(v < 0):
            raise TorchRuntimeError(f"Expected {name} to have value at least 0, but got value "
                                    f"{int(v[v < 0][0])}{_CHECKING}")
        if top is not None and np.any(v > top):
            raise TorchRuntimeError(f"Expected {name} to have value at most {top}, but got value "
                                    f"{int(v[v > top][0])}{_CHECKING}")
    rows, width = _labels(_integral_targets(t), tl, n)
    labels = np.zeros((n, width), np.int64)  # the catalogue's layout: blank 0, right-padded with it
    for b, row in enumerate(rows):
        bad = (row < 0) | (row >= n_c) | (row == blank)
        if bad.any():
            raise ValueError(f"ctc_loss: target {int(row[bad][0])} of sample {b} is outside [0, {n_c}) or is "
                             f"the blank {blank} (torch reads memory out of bounds or scores the blank as a "
                             "label)")
        # torch's blank becomes class 0, the classes below it move up by one
        labels[b, :len(row)] = row + (row < blank)
    view = np.moveaxis(x, 0, 1)  # (N, T, C), a view of the input: its gradient maps back onto it
    y = _blank_first(view, blank)  # the catalogue's class order
    # a NaN or +inf log-probability that the recursion reads makes the sample NaN in torch (log-sum-exp
    # of inf - inf): at a used step, in the blank or a class of the label (step 0: blank or first label)
    poisoned = []
    for b in range(n):
        used = y[b, :il[b]][:, np.unique(np.concatenate([[0], labels[b, :tl[b]]]))]
        head = y[b, :min(il[b], 1)][:, np.unique(labels[b, :1].tolist() + [0])]
        bad = np.isnan(used) | (used == np.inf)
        poisoned.append(bool(bad[1:].any() or (np.isnan(head) | (head == np.inf)).any()))
    # -inf log-probabilities (probability 0), told to the oracle: on balls such an input is a NaN
    # ball, which would leave the sample to the slow path (a tuple of bools: hashable, and no
    # magnitude for the starting precision)
    impossible = np.isneginf(y)
    params = {"input_lengths": tuple(int(v) for v in il), "poisoned": tuple(poisoned),
              "zero_infinity": zero_infinity, "batched": batched, "blank": blank,
              "impossible": tuple(bool(v) for v in impossible.ravel()) if impossible.any() else ()}
    stage3 = {"reduction": red}
    if red == "mean":
        d = np.maximum(tl, 1).astype(np.float64)
        stage3 = {"reduction": "length_mean", "weight": d if batched else d.reshape(())}
    return Prepared(labels, view, fmt, params, stage3=stage3)
