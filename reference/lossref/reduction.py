"""Stage 2 helpers and stage 3 (batch reduction) of every dialect.

Each dialect's stage-3 rules are written once against a tiny arithmetic interface:
Keras's (rank fix, mask weights, divisors, early returns) in
:func:`reduce_weighted_values`, PyTorch's (numel mean, weighted mean, batchmean) in
:func:`reduce_torch`. :data:`FLOAT64` runs them in NumPy float64 for the reference and
:data:`EXACT` on the oracle's numbers (mpmath or Arb balls: :mod:`lossref.oracle.ops`), so
the two cannot disagree about a rule.
``spec/pipeline.md`` states them.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from . import formats
from .numerics import dot2, sum2, sum2_parts, two_product
from .oracle import Exact, start_precision, to_exact
from .oracle import ops as xops

__all__ = [
    "REDUCTIONS",
    "standardize_reduction",
    "squeeze_or_expand_to_same_rank",
    "reduce",
    "reduce_weighted_values",
    "stage2_mean",
    "stage2_sum",
    "FLOAT64",
    "EXACT",
    "TORCH_REDUCTIONS",
    "torch_reduction",
    "reduce_torch",
    "reduce_tf",
    "GRAD",
    "stage3_cotangent",
]

#: Every ``reduction`` value Keras accepts.
REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None)

_SCALE = 2.0 ** -64  # rescales a sum that overflowed although its mean is finite


# --- stage 2 (float64 reference) ---------------------------------------------------------------


def stage2_sum(x: np.ndarray, axis=-1) -> np.ndarray:
    """Sum over `axis` (pairwise summation, error ≤ ⌈log2 n⌉·u·Σ|x|)."""
    return np.sum(x, axis=axis)


def _sum_then_divide(x: np.ndarray, axis, n) -> np.ndarray:
    s = np.sum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = s / n
        # A sum of finite terms can overflow although the quotient is finite: redo those scaled.
        redo = np.isinf(s)
        if np.any(redo):  # rare: only then is the finiteness of the terms looked at
            redo &= np.all(np.isfinite(x), axis=axis)
            if np.any(redo):
                q = np.where(redo, np.sum(x * _SCALE, axis=axis) / n / _SCALE, q)
    return q


def stage2_mean(x: np.ndarray, axis=-1) -> np.ndarray:
    """Mean over `axis`; an empty axis gives NaN as in Keras (``mean`` of nothing)."""
    n = x.shape[axis] if x.ndim else 1
    return _sum_then_divide(x, axis, n)


# --- shape rules ---------------------------------------------------------------------------------


def standardize_reduction(reduction):
    """Return `reduction` if Keras accepts it, else raise ``ValueError`` listing the options."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction={reduction!r} is not supported; expected one of {list(REDUCTIONS)}"
        )
    return reduction


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True) -> Tuple:
    """Keras's rank fix: act only when ranks differ by one and the longer ends in 1.

    Then the rank-1 partner is expanded to ``(N, 1)``, or else the longer one loses its
    last axis. In every other case both are returned unchanged.
    """
    r1, r2 = np.ndim(x1), np.ndim(x2)
    if r1 == r2 + 1 and np.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = np.expand_dims(x2, -1)
        else:
            x1 = np.squeeze(x1, -1)
    elif r2 == r1 + 1 and np.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = np.expand_dims(x1, -1)
        else:
            x2 = np.squeeze(x2, -1)
    return x1, x2


def _check_broadcast(a, b, what_a: str, what_b: str) -> None:
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
    except ValueError:
        raise ValueError(
            f"{what_b} of shape {np.shape(b)} does not broadcast against "
            f"{what_a} of shape {np.shape(a)}"
        ) from None


# --- arithmetics ---------------------------------------------------------------------------------


class _Float64:
    """Reference arithmetic: NumPy float64."""

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def sum_all(self, x):
        return np.asarray(np.sum(x), dtype=np.float64)

    def mean_all(self, x, n):
        """``divide_no_nan(sum(x), n)`` for an integer count `n`."""
        if n == 0:
            return np.asarray(0.0)
        return np.asarray(_sum_then_divide(np.ravel(x), 0, n))

    def divide_no_nan(self, a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))

    def divide(self, a, b):
        """IEEE ``a / b`` (0/0 is NaN, x/0 is ±inf)."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray(np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64))

    def multiply(self, a, b):
        with np.errstate(invalid="ignore", over="ignore"):
            return np.asarray(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64))

    def total(self, x, w=None):
        """``Σ x`` (``Σ w·x`` with a weight broadcast against `x`) over every element,
        compensated: as accurate as a sum in twice the precision (:func:`numerics.sum2`,
        :func:`numerics.dot2` with exact products)."""
        x = np.asarray(x, dtype=np.float64)
        if w is not None:
            x, w = np.broadcast_arrays(x, np.asarray(w, dtype=np.float64))
            w = w.reshape(-1)
        x = x.reshape(-1)
        from .registry import block_elements, map_index  # the registry imports this module
        n = block_elements()
        if x.size <= 4 * n:
            return np.asarray(sum2(x, 0) if w is None else dot2(w, x, 0))

        def part(i):  # each block summed while in cache, its (hi, lo) kept
            if w is None:
                return sum2_parts(x[i:i + n], 0)
            h, low = two_product(w[i:i + n], x[i:i + n])
            return sum2_parts(h, 0, lo=low)

        his, los = np.array(map_index(part, range(0, x.size, n))).T
        return np.asarray(sum2(his, 0, lo=los))

    def sum_last(self, x):
        """Sums over the last axis, compensated (:func:`numerics.sum2`)."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            return sum2(x, axis=-1) if x.shape[-1] else np.sum(x, axis=-1)

    def mean_of_total(self, x, w, n):
        """``total(x, w) / n``; a total that overflows although its terms and the quotient
        are finite is formed again scaled down (``n`` is a count or a weight sum >= 1)."""
        s = self.total(x, w)
        q = self.divide(s, n)
        if np.isinf(s) and np.all(np.isfinite(x)) and (w is None or np.all(np.isfinite(w))):
            q = self.divide(self.total(np.asarray(x, dtype=np.float64) * _SCALE, w), n) / _SCALE
        return np.asarray(q)


class _Exact:
    """Oracle arithmetic: object arrays of the oracle backend's numbers (mpmath or Arb
    balls, :mod:`lossref.oracle.ops`) at the current working precision.

    Its methods run inside an :class:`~lossref.oracle.Exact` evaluation: float arrays are
    taken exactly there (:func:`~lossref.oracle.to_exact`) and object arrays are lifted to
    the backend in use, so a Python number or a float array given as a weight or a count
    never mixes into a ball computation unconverted.
    """

    def asarray(self, x):
        x = np.asarray(x)
        return xops.lift(x) if x.dtype == object else to_exact(x)

    def sum_all(self, x):
        return xops.fsum(self.asarray(x))

    def mean_all(self, x, n):
        return self.divide_no_nan(self.sum_all(x), n)

    def divide_no_nan(self, a, b):
        a, b = self.asarray(a), self.asarray(b)
        # b is often a computed weight sum: on balls a sum that may be 0 is undecided and
        # where() answers it with the union of both branches, so the value stays enclosed
        zero = xops.eq(b, 0)
        return xops.where(zero, 0, xops.div(a, xops.where(zero, 1, b)))

    def divide(self, a, b):
        return xops.div(self.asarray(a), self.asarray(b))

    def multiply(self, a, b):
        return np.asarray(self.asarray(a) * self.asarray(b), dtype=object)

    def total(self, x, w=None):
        x = self.asarray(x)
        return xops.fsum(x if w is None else self.multiply(x, w))

    def sum_last(self, x):
        return xops.fsum(self.asarray(x), -1)

    def mean_of_total(self, x, w, n):
        return self.divide(self.total(x, w), n)


FLOAT64 = _Float64()
EXACT = _Exact()


class _Lin:
    """A float64 array that stage 3 computed linearly from its input values: its value and
    ``back``, which maps a cotangent of it onto those values (reverse mode for the few
    linear operations :data:`GRAD` has). Weights, masks and divisors are constants."""

    def __init__(self, v, back) -> None:
        self.v, self.back = np.asarray(v, dtype=np.float64), back

    shape = property(lambda self: self.v.shape)
    ndim = property(lambda self: self.v.ndim)

    def _scaled(self, w, op):
        w = np.asarray(w, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = op(self.v, w)
            factor = op(np.ones_like(self.v), w) if op is np.divide else w
        return _Lin(out, lambda c: self.back(_unbroadcast(c * factor, self.v.shape)))

    def __mul__(self, w):
        if isinstance(w, _Lin):
            raise TypeError("stage 3 multiplies two values")
        return self._scaled(w, np.multiply)

    __rmul__ = __mul__

    def __getitem__(self, idx):
        def back(c):
            z = np.zeros(self.v.shape)
            np.add.at(z, idx, np.asarray(c, dtype=np.float64))
            return self.back(z)

        return _Lin(self.v[idx], back)

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.ndim, np.shape):
            return func(self.v)
        if func in (np.expand_dims, np.squeeze):  # Keras's rank fix
            out = func(self.v, *args[1:], **kwargs)
            return _Lin(out, lambda c: self.back(np.reshape(c, self.v.shape)))
        return NotImplemented


def _unbroadcast(c: np.ndarray, shape) -> np.ndarray:
    """A cotangent of a broadcast result summed back onto `shape`."""
    c = np.asarray(c, dtype=np.float64)
    while c.ndim > len(shape):
        c = c.sum(axis=0)
    for k, n in enumerate(shape):
        if n == 1 and c.shape[k] != 1:
            c = c.sum(axis=k, keepdims=True)
    return np.broadcast_to(c, shape)


class _Grad(_Float64):
    """Stage 3 differentiated: the stage-3 rules run on :class:`_Lin` values (the input
    values) and float64 constants (weights, counts), so the rules are the forward ones."""

    def asarray(self, x):
        return x if isinstance(x, _Lin) else super().asarray(x)

    def _lin(self, x, value, back):
        return _Lin(value, back) if isinstance(x, _Lin) else np.asarray(value)

    def sum_all(self, x):
        if not isinstance(x, _Lin):
            return super().sum_all(x)
        return _Lin(np.sum(x.v), lambda c: x.back(np.broadcast_to(c, x.v.shape)))

    def mean_all(self, x, n):
        if not isinstance(x, _Lin):
            return super().mean_all(x, n)
        if n == 0:
            return _Lin(0.0, lambda c: x.back(np.zeros(x.v.shape)))
        return _Lin(np.sum(x.v) / n, lambda c: x.back(np.broadcast_to(np.asarray(c) / n, x.v.shape)))

    def divide_no_nan(self, a, b):
        if isinstance(b, _Lin):
            raise TypeError("stage 3 divides by a value")
        if not isinstance(a, _Lin):
            return super().divide_no_nan(a, b)
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(all="ignore"):
            inv = np.where(b == 0, 0.0, 1.0 / np.where(b == 0, 1.0, b))
        return a._scaled(inv, np.multiply)

    def divide(self, a, b):
        if isinstance(b, _Lin):
            raise TypeError("stage 3 divides by a value")
        if not isinstance(a, _Lin):
            return super().divide(a, b)
        return a._scaled(b, np.divide)

    def multiply(self, a, b):
        if isinstance(b, _Lin):
            a, b = b, a
        return a._scaled(b, np.multiply) if isinstance(a, _Lin) else super().multiply(a, b)

    def total(self, x, w=None):
        if not isinstance(x, _Lin):
            return super().total(x, w)
        return self.sum_all(x if w is None else x * w)

    def sum_last(self, x):
        if not isinstance(x, _Lin):
            return super().sum_last(x)
        return _Lin(np.sum(x.v, axis=-1), lambda c: x.back(np.broadcast_to(np.asarray(c)[..., None], x.v.shape)))

    def mean_of_total(self, x, w, n):
        return self.divide(self.total(x, w), n)


GRAD = _Grad()


def stage3_cotangent(finish, values: np.ndarray) -> np.ndarray:
    """``d sum(finish(values, GRAD)) / d values`` in float64: the cotangent stage 3 gives
    the per-sample (or elementwise) values, for a cotangent of ones on its output."""
    values = np.asarray(values, dtype=np.float64)
    got = {}

    def back(c):
        got["c"] = got.get("c", 0) + np.asarray(c, dtype=np.float64)
        return None

    out = finish(_Lin(values, back), GRAD)
    if isinstance(out, _Lin):
        out.back(np.ones(out.v.shape))
    c = got.get("c")
    return np.zeros(values.shape) if c is None else np.broadcast_to(c, values.shape).astype(np.float64)


# --- stage 3 rules, once ---------------------------------------------------------------------------


def _apply_mask(sample_weight, mask, reduction, ar):
    """Merge a boolean mask into the sample weight (Keras ``apply_mask``)."""
    if mask is None:
        return sample_weight
    mask = np.asarray(mask, dtype=bool)
    if reduction in ("mean", "sum_over_batch_size"):
        # masked means divide by the number of unmasked entries: weight total/valid
        weight = ar.divide_no_nan(ar.asarray(np.float64(mask.size)),
                                  ar.asarray(np.float64(np.count_nonzero(mask))))
        float_mask = ar.asarray(np.where(mask, weight, ar.asarray(np.float64(0.0))))
    else:
        float_mask = ar.asarray(mask.astype(np.float64))
    if sample_weight is None:
        return float_mask
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    _check_broadcast(sample_weight, float_mask, "sample_weight", "mask")
    return ar.asarray(sample_weight * float_mask)


def reduce_weighted_values(values, reduction="sum_over_batch_size", sample_weight=None,
                           mask=None, arith=FLOAT64):
    """Stage 3 in the given arithmetic (Keras ``reduce_weighted_values``)."""
    reduction = standardize_reduction(reduction)
    ar = arith
    values = ar.asarray(values)
    if sample_weight is not None:
        sample_weight = ar.asarray(sample_weight)
    if mask is not None:
        _check_broadcast(values, mask, "values", "mask")
    sample_weight = _apply_mask(sample_weight, mask, reduction, ar)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        _check_broadcast(values, sample_weight, "per-sample loss values", "sample_weight")
        values = ar.asarray(values * sample_weight)  # 0-d object products come back as scalars
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values
    if reduction == "sum":
        return ar.sum_all(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return ar.divide_no_nan(ar.sum_all(values), ar.sum_all(sample_weight))
    return ar.mean_all(values, int(np.prod(values.shape)))


# --- PyTorch stage 3 --------------------------------------------------------------------------------

#: The ``reduction`` strings PyTorch's loss functions accept.
TORCH_REDUCTIONS = ("none", "mean", "sum")
#: The rules :func:`reduce_torch` applies: the strings above and the variants of ``'mean'``
#: some functions use instead of the element count.
TORCH_RULES = TORCH_REDUCTIONS + ("weighted_mean", "batchmean", "weight_sum_mean", "length_mean")


def torch_reduction(reduction="mean", size_average=None, reduce=None, *, extra=(),
                    aliases: bool = True) -> str:
    """The reduction a PyTorch loss function applies, from its arguments.

    The legacy ``size_average``/``reduce`` decide when either is given, as
    ``torch.nn._reduction.legacy_get_string`` maps them (None counts as True; both true
    gives ``'mean'``, ``reduce`` alone ``'sum'``, else ``'none'``); no deprecation
    warning is emitted. Otherwise `reduction` must be one of :data:`TORCH_REDUCTIONS` or
    `extra` (``'batchmean'`` of ``kl_div``); `aliases` admits ``'elementwise_mean'``,
    the old name of ``'mean'`` that torch still maps where it converts the string itself.

    Raises
    ------
    ValueError
        ``"<reduction> is not a valid value for reduction"``, as torch says it.
    """
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "mean" if size_average and reduce else "sum" if reduce else "none"
    if aliases and isinstance(reduction, str) and reduction == "elementwise_mean":
        return "mean"
    if not isinstance(reduction, str) or reduction not in TORCH_REDUCTIONS + tuple(extra):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def reduce_torch(values, reduction="mean", weight=None, arith=FLOAT64, *, batch_size=None):
    """PyTorch's stage 3 in the given arithmetic.

    Parameters
    ----------
    values : array
        Elementwise losses (stage 1; torch has no per-sample stage).
    reduction : {"none", "sum", "mean", "weighted_mean", "batchmean", "weight_sum_mean", "length_mean"}
        ``'mean'`` divides ``Σ w·ℓ`` by the element count of ``w·ℓ`` (NaN when empty),
        ``'weighted_mean'`` by ``Σ w`` (``l1_loss``/``mse_loss`` with a weight) and
        ``'batchmean'`` by `batch_size` (``kl_div``: ``input.size(0)``; a 0-d input is not
        divided) and ``'weight_sum_mean'`` returns ``Σ ℓ / Σ w`` with `weight` the divisor
        only (``nll_loss``, ``cross_entropy``: ℓ already holds each target's class weight,
        ``w`` is that weight, 0 where ignored; all ignored gives 0/0 = NaN) and
        ``'length_mean'`` returns ``mean_n(ℓ_n / w_n)`` (``ctc_loss``: `weight` holds each
        sample's ``max(target_length, 1)``). ``'none'`` returns ``w·ℓ``.
    weight : array, optional
        Multiplies the values (broadcast against them).
    arith : FLOAT64 or EXACT
        The reference arithmetic (compensated float64 sums: within about one rounding of
        the exact sum) or the oracle's (exact sums).
    batch_size : int, optional
        Divisor of ``'batchmean'``; default the first dimension of `values`.
    """
    ar = arith
    values = ar.asarray(values)
    w = None if weight is None else ar.asarray(weight)
    if reduction == "none":
        return values if w is None else ar.multiply(values, w)
    if reduction == "sum":
        return ar.total(values, w)
    if reduction == "mean":
        shape = values.shape if w is None else np.broadcast_shapes(values.shape, w.shape)
        return ar.mean_of_total(values, w, int(np.prod(shape)))
    if reduction == "weighted_mean":
        return ar.divide(ar.total(values, w), ar.total(w))
    if reduction == "weight_sum_mean":  # the values carry their weights already
        return ar.divide(ar.total(values), ar.total(w))
    if reduction == "length_mean":  # each value divided by its own divisor, then the mean
        return ar.mean_of_total(ar.divide(values, w), None, int(np.prod(values.shape)))
    if reduction == "batchmean":
        if batch_size is None:
            batch_size = values.shape[0] if values.ndim else 1
        return ar.mean_of_total(values, w, batch_size)
    raise ValueError(f"reduction {reduction!r} is not one of {TORCH_RULES}")


def reduce_tf(values, sample_weight, global_batch_size, arith):
    """TF's ``tf.nn.compute_average_loss`` with one replica, in the given arithmetic:
    ``Σ w·ℓ / global_batch_size`` over every element, 0 when the batch size is 0
    (``div_no_nan``, whatever the sum).

    Parameters
    ----------
    values : array
        Per-example losses, rank >= 1.
    sample_weight : array or None
        Broadcast against `values` (already squeezed or expanded to their rank).
    global_batch_size : int or None
        Divisor; None: the first dimension of ``w·ℓ`` (TF's per-replica batch).
    arith : FLOAT64 or EXACT
        The reference or the oracle arithmetic (:mod:`lossref.reduction`).
    """
    ar = arith
    values = ar.asarray(values)
    w = None if sample_weight is None else ar.asarray(sample_weight)
    if global_batch_size is None:
        shape = values.shape if w is None else np.broadcast_shapes(values.shape, w.shape)
        global_batch_size = shape[0]
    if global_batch_size == 0:
        return ar.divide_no_nan(ar.total(values, w), 0)
    return ar.mean_of_total(values, w, int(global_batch_size))


def _result_format(values) -> formats.Format:
    arr = np.asarray(values)
    if arr.dtype.kind not in "f" and arr.dtype.name != "bfloat16":
        raise TypeError(f"values must be a float array; got dtype {arr.dtype}")
    return formats.get_format(arr.dtype)


def reduce(values, reduction="sum_over_batch_size", sample_weight=None, mask=None) -> np.ndarray:
    """Reduce per-sample loss values to the batch loss, exactly as Keras does.

    Parameters
    ----------
    values : array of float
        Per-sample losses (stage 2 output), any shape.
    reduction : {"sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None}
        ``"mean"`` is an alias of ``"sum_over_batch_size"``.
    sample_weight : array_like, optional
        Weights, rank-fixed against `values` and broadcast.
    mask : array_like of bool, optional
        False entries are excluded; mean-like reductions divide by the unmasked count.

    Returns
    -------
    numpy.ndarray
        Computed in float64 and rounded once to the dtype of `values`; 0-d unless the
        reduction is ``"none"``/None or `values` has shape () or (0,).

    Examples
    --------
    >>> import numpy as np, lossref
    >>> lossref.reduce(np.array([1., 4., 9.], np.float32))
    array(4.6666665, dtype=float32)
    >>> lossref.reduce(np.array([1., 4., 9.]), "mean_with_sample_weight", sample_weight=[1, 1, 0])
    array(2.5)
    """
    fmt = _result_format(values)
    out = reduce_weighted_values(np.asarray(values).astype(np.float64), reduction,
                                 sample_weight, mask, FLOAT64)
    return np.asarray(formats.to_format_array(out, fmt))


def _reduce_exact(values, reduction="sum_over_batch_size", sample_weight=None, mask=None) -> Exact:
    """The exact twin of :func:`reduce`."""
    fmt = _result_format(values)
    v = np.asarray(values)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)

    def evaluate():
        # the inputs are taken exactly on whichever backend evaluates the reduction
        return reduce_weighted_values(to_exact(v), reduction, None if w is None else to_exact(w), mask, EXACT)

    return Exact(evaluate, start_prec=start_precision(values, sample_weight), dtype=fmt, label="reduce",
                 balls=True)


reduce.exact = _reduce_exact
