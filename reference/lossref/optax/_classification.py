"""Cross-entropies and KL divergences of ``optax.losses`` (Optax 0.2.8).

The values are the catalogue's: binary cross-entropy and binary focal cross-entropy from
logits, categorical cross-entropy from logits with the class axes moved last and merged,
the Poly-1 cross-entropy, the KL divergence in log space and the generalized KL
divergence. What is optax's here: the argument names and layout (class axis ``axis``,
default -1), the ``where`` masks, JAX's dtype promotion, the integer-label gather, and
the few places where optax's formula defines another value than the catalogue's limit:

* ``softmax_cross_entropy`` (and the cross-entropy inside ``poly_loss_cross_entropy``)
  multiplies ``labels * log_softmax``: a label 0 on a ``-inf`` logit is ``0 * -inf``,
  NaN; ``safe_softmax_cross_entropy`` makes every label-0 term 0 (optax#896).
* ``softmax_cross_entropy_with_integer_labels`` gathers the label's logit: a label in
  ``[-C, 0)`` counts from the end, any other label outside ``[0, C)`` gives NaN.
* ``generalized_kl_divergence`` adds two sums, so a row with infinite terms is the IEEE
  sum of ``inf``/``-inf``/NaN partial sums.

>>> import numpy as np
>>> from lossref.optax import losses
>>> z = np.array([[-np.inf, 0.0, 1.0]])
>>> y = np.array([[0.0, 0.0, 1.0]])
>>> losses.softmax_cross_entropy(z, y), losses.safe_softmax_cross_entropy(z, y)
(array([nan]), array([0.31326169]))
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

import numpy as np

from .. import formats
from ..dialect import convert, is_float
from ..losses import binary_crossentropy as _bce
from ..losses import binary_focal_crossentropy as _bfc
from ..losses import categorical_crossentropy as _cce
from ..losses import generalized_kl_divergence as _gkl
from ..losses import kl_divergence as _kl
from ..losses import poly1_crossentropy as _poly
from ..losses.sparse_categorical_crossentropy import exact_labels
from ..numerics import axes_last, logsumexp, normalize_axes, sigmoid, sum2, two_product
from ..oracle import ops as xo
from ..reduction import stage2_sum
from ._base import Prepared, as_jax, broadcast, float_format, optax_function, result_format

__all__ = ['sigmoid_binary_cross_entropy', 'sigmoid_focal_loss', 'softmax_cross_entropy',
           'safe_softmax_cross_entropy', 'softmax_cross_entropy_with_integer_labels',
           'poly_loss_cross_entropy', 'kl_divergence', 'kl_divergence_with_log_targets',
           'convex_kl_divergence', 'generalized_kl_divergence']


# --- arguments --------------------------------------------------------------------------------------


def _weak(v: Any) -> bool:
    """A Python number: JAX types it weakly, so it never widens an array's dtype."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar_in(fn: str, name: str, v: Any, fmt: formats.Format) -> float:
    """A real scalar hyper-parameter as JAX holds it: a weak Python number takes the
    array's dtype, so it is rounded into `fmt` once."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number (a scalar); got {v!r}")
    return float(formats.as_format(np.float64(v), fmt))


def _cast_labels(fn: str, logits, labels) -> Tuple[np.ndarray, np.ndarray, formats.Format]:
    """Sigmoid losses: float logits, labels cast to the logits' dtype (``astype``), both
    broadcast; the result has the logits' dtype."""
    x = as_jax(logits, "logits")
    fmt = float_format(fn, x, "logits")
    y = convert(np.asarray(as_jax(labels, "labels"), np.float64), fmt)
    xb, yb = broadcast(fn, x, y)
    return xb, yb, fmt


def _mask(fn: str, where, ndim: int, axis, expand: bool) -> np.ndarray:
    """`where` as a bool array; with `expand` (the softmax losses) a mask of lower rank than
    the logits gets the class axes inserted (``expand_dims(where, axis)``)."""
    w = as_jax(where, "where")
    if w.dtype != np.bool_:
        raise ValueError(f"{fn}: where must be None or a boolean array; got dtype {w.dtype}")
    if expand and w.ndim != ndim:
        try:
            w = np.expand_dims(w, axis)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{fn}: where of shape {w.shape} cannot take the class axes {axis!r}: {e}") from None
    return w


def _spread(fn: str, w: np.ndarray, shape: tuple) -> np.ndarray:
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"{fn}: where of shape {w.shape} does not broadcast to {shape}") from None


def _softmax_inputs(fn: str, logits, labels, axis, where, float_labels: bool = False) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], formats.Format]:
    """``(labels, logits, mask, format)`` with the class axes moved last and merged.

    Labels multiply the log-probabilities, so they broadcast against the logits and
    promote with them (integer or Python-number labels take the logits' dtype). The
    softmax is over the logits' own axes, so a broadcast may not widen a class axis.
    """
    x = as_jax(logits, "logits")
    fx = float_format(fn, x, "logits")
    y = as_jax(labels, "labels")
    if float_labels:
        float_format(fn, y, "labels")
    if _weak(labels) or not is_float(y.dtype):
        fmt, y = fx, convert(np.asarray(y, np.float64), fx)
    else:
        fmt = result_format(fn, x, y)
    axes = normalize_axes(axis, x.ndim, "axis")
    xb, yb = broadcast(fn, x, y)
    lead = xb.ndim - x.ndim
    if lead and axis is not None and any(a >= 0 for a in np.atleast_1d(axis)):
        raise ValueError(f"{fn}: labels {y.shape} of higher rank than logits {x.shape} need negative axes; "
                         f"got axis={axis!r}")
    axes = tuple(a + lead for a in axes)
    if any(xb.shape[a] != x.shape[a - lead] for a in axes):
        raise ValueError(f"{fn}: labels {y.shape} would broadcast the class axes of logits {x.shape}")
    m = None
    if where is not None:
        m = axes_last(_spread(fn, _mask(fn, where, x.ndim, axis, True), xb.shape), axes)
    return axes_last(yb, axes), axes_last(xb, axes), m, fmt


def _on(mask) -> Optional[np.ndarray]:
    """A mask (float64 or exact 0/1 values after the dialect's conversions) as bools."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == object:  # an input: its exact 0/1 values always decide
        return xo.decide(xo.lnot(xo.eq(mask, 0)))
    return np.asarray(mask != 0, dtype=bool)


# --- softmax cross-entropies: catalogue terms, optax's product rule, mask, sum -------------------


def _terms(v, y, z, on, safe: bool, nan, zero):
    """The catalogue's terms `v` (``0 log 0 = 0``) under optax's rule for label-0 terms:
    NaN on a ``-inf`` logit (``0 * -inf``) unless `safe`, which makes every one 0 (even a
    NaN log-probability); masked-out terms are 0."""
    if v.dtype != object:
        y0 = y == 0
        if safe:
            v = np.where(y0, zero, v)
        else:
            v = np.where(y0 & (z == -np.inf), nan, v)
        return v if on is None else np.where(on, v, zero)
    # exact: labels are inputs (decided); a logit's -inf is "not known" on balls, where an
    # undecided condition keeps the union of both branches
    y0 = xo.eq(y, 0)
    v = xo.where(y0, zero, v) if safe else xo.where(xo.land(y0, xo.isinf(z, -1)), nan, v)
    return v if on is None else xo.where(on, v, zero)


def _masked(z, on, exact: bool):
    if on is None:
        return z
    return xo.where(on, z, -xo.INF) if exact else np.where(on, z, -np.inf)


def _ce_reference(y_true, y_pred, mask=None, safe=False) -> np.ndarray:
    """Per row ``-Σ y log softmax(z)`` in float64 (class axis last)."""
    on = _on(mask)
    z = _masked(y_pred, on, False)
    v = _cce.reference(y_true, z, True, 0.0, None)
    return stage2_sum(_terms(v, y_true, z, on, safe, np.nan, 0.0), -1)


def _ce_oracle(y_true, y_pred, mask=None, safe=False) -> np.ndarray:
    on = _on(mask)
    z = _masked(y_pred, on, True)
    v = _cce.oracle(y_true, z, True, 0.0, None)
    return xo.fsum(_terms(v, y_true, z, on, safe, xo.NAN, 0), -1)


def _poly_reference(y_true, y_pred, epsilon=2.0, mask=None) -> np.ndarray:
    on = _on(mask)
    z = _masked(y_pred, on, False)
    v = _poly.reference(y_true, z, epsilon)
    return stage2_sum(_terms(v, y_true, z, on, False, np.nan, 0.0), -1)


def _poly_oracle(y_true, y_pred, epsilon=2.0, mask=None) -> np.ndarray:
    on = _on(mask)
    z = _masked(y_pred, on, True)
    v = _poly.oracle(y_true, z, epsilon)
    return xo.fsum(_terms(v, y_true, z, on, False, xo.NAN, 0), -1)


@optax_function("categorical_crossentropy", _ce_reference, _ce_oracle)
def softmax_cross_entropy(logits, labels, axis=-1, where=None):
    """``-Σ labels · log softmax(logits)`` over `axis` (an int, a tuple of ints, or None:
    all axes), per example.

    `where` (the logits' shape, or the batch shape: the class axes are inserted) keeps
    entries: masked-out classes leave the softmax and the sum, a fully masked row is 0.
    A label 0 on a ``-inf`` logit gives NaN (``0 · -inf``), as optax computes it; see
    :func:`safe_softmax_cross_entropy`.
    """
    y, z, m, fmt = _softmax_inputs("softmax_cross_entropy", logits, labels, axis, where)
    return Prepared(y, z, fmt, {"mask": m, "safe": False})


@optax_function("categorical_crossentropy", _ce_reference, _ce_oracle)
def safe_softmax_cross_entropy(logits, labels):
    """:func:`softmax_cross_entropy` over the last axis with ``0 · log 0 = 0``: every
    label-0 term is 0, a ``-inf`` logit included (optax#896)."""
    y, z, _, fmt = _softmax_inputs("safe_softmax_cross_entropy", logits, labels, -1, None)
    return Prepared(y, z, fmt, {"safe": True})


@optax_function("poly1_crossentropy", _poly_reference, _poly_oracle)
def poly_loss_cross_entropy(logits, labels, *, epsilon=2.0, axis=-1, where=None):
    """Poly-1: :func:`softmax_cross_entropy` plus ``epsilon · Σ labels · (1 - softmax(logits))``.

    Labels must be float. `epsilon` is rounded to the result dtype (a weak Python
    number). `where` must broadcast to the logits' shape as it is.
    """
    fn = "poly_loss_cross_entropy"
    if where is not None and 0 < np.ndim(where) != np.ndim(logits):
        # optax's softmax takes the mask as it is and its cross-entropy inserts the class
        # axes: the two agree only for a mask of the logits' rank
        raise ValueError(f"{fn}: where of shape {np.shape(where)} must have the rank of logits "
                         f"{np.shape(logits)}")
    y, z, m, fmt = _softmax_inputs(fn, logits, labels, axis, where, float_labels=True)
    return Prepared(y, z, fmt, {"epsilon": _scalar_in(fn, "epsilon", epsilon, fmt), "mask": m})


# --- integer labels ----------------------------------------------------------------------------------


def _int_parts(y_true, n: int):
    """``(k, valid)``: labels as class indices, ``[-C, 0)`` counted from the end (JAX's
    gather), `valid` False for every other label outside ``[0, C)``."""
    k = np.asarray(y_true, dtype=np.int64)
    valid = (k >= -n) & (k < n)
    return np.where(valid, k % max(n, 1), 0), valid


def _pick(a, k):
    return np.take_along_axis(a, k[..., None], axis=-1)[..., 0]


def _int_reference(y_true, y_pred, mask=None) -> np.ndarray:
    """``logsumexp(z over the kept classes) - z_y`` in float64: ``-log p_y`` (the catalogue's
    log-softmax) where the label's class is kept, the plain difference where it is masked."""
    k, valid = _int_parts(y_true, y_pred.shape[-1])
    on = _on(mask)
    z = _masked(y_pred, on, False)
    out = -_cce.class_parts(z, True, None, at=k, logp_only=True)[2]
    if on is not None:
        with np.errstate(all="ignore"):
            out = np.where(_pick(on, k), out, logsumexp(z, -1) - _pick(y_pred, k))
    out = np.where(valid, out, np.nan)
    return out if on is None else np.where(on.any(-1), out, 0.0)


def _exact_lse(row) -> Any:
    """``log Σ exp`` of a row of exact values: NaN with a NaN, ±inf at infinite maxima."""
    r = np.asarray(row, dtype=object)
    m = r[0]
    for v in r[1:]:  # the maximum, NaN if any element is NaN
        m = xo.maximum(m, v)
    nan = xo.any_of(xo.isnan(r), -1)
    val = m + xo.log(xo.fsum(xo.exp(r - m)))
    return xo.where(nan, xo.NAN, xo.where(xo.isfinite(m), val, m))[()]


def _int_oracle(y_true, y_pred, mask=None) -> np.ndarray:
    k, valid = _int_parts(exact_labels(y_true), y_pred.shape[-1])
    on = _on(mask)
    z = _masked(y_pred, on, True)
    _, _, logp = _cce.exact_class_parts(z, True, None)
    out = -_pick(logp, k)
    if on is not None:
        zk = _pick(y_pred, k)
        for pos in zip(*np.nonzero(~_pick(on, k))):  # the oracle may loop: a masked label's class
            out[pos] = _exact_lse(list(z[pos])) - zk[pos]
    out = xo.where(valid, out, xo.NAN)
    return out if on is None else xo.where(on.any(-1), out, 0)


@optax_function("sparse_categorical_crossentropy", _int_reference, _int_oracle)
def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None):
    """``logsumexp(logits) - logits[label]`` over `axis` (an int or a tuple of ints: the
    class axes flattened in the order given), per example.

    Labels are an integer array of the logits' shape without the class axes (broadcast
    against it); ``[-C, 0)`` counts from the end and any other label outside ``[0, C)``
    gives NaN, as JAX's gather does. `where` removes classes from the logsumexp only (a
    masked label's logit is still subtracted); a fully masked row is 0.
    """
    fn = "softmax_cross_entropy_with_integer_labels"
    x = as_jax(logits, "logits")
    fmt = float_format(fn, x, "logits")
    t = as_jax(labels, "labels")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{fn}: labels must be an integer array; got dtype {t.dtype}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer, tuple)):
        raise ValueError(f"{fn}: axis must be an int or a tuple of ints; got {type(axis).__name__}")
    order = (axis,) if isinstance(axis, (int, np.integer)) else axis
    cls = []
    for a in order:  # canonical, in the order given: a label is a flat index in that order
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{fn}: axis {a} is out of bounds for logits of rank {x.ndim}")
        cls.append(int(a) % x.ndim)
    batch = [a for a in range(x.ndim) if a not in cls]

    def last(a: np.ndarray) -> np.ndarray:
        moved = np.transpose(a, batch + cls)
        # the class axes merged into one (their product given: an empty batch has no -1)
        return moved.reshape(moved.shape[:len(batch)] + (int(np.prod(moved.shape[len(batch):])),))

    if t.ndim != len(batch):
        raise ValueError(f"{fn}: labels of shape {t.shape} must have the rank of logits {x.shape} "
                         f"without the class axes ({len(batch)})")
    z = last(x)
    try:
        shape = np.broadcast_shapes(t.shape, z.shape[:-1])
    except ValueError:
        raise ValueError(f"{fn}: labels {t.shape} do not broadcast to the batch shape {z.shape[:-1]}") from None
    m = None
    if where is not None:
        m = np.broadcast_to(last(_spread(fn, _mask(fn, where, x.ndim, axis, True), x.shape)), shape + z.shape[-1:])
    return Prepared(np.broadcast_to(t, shape), np.broadcast_to(z, shape + z.shape[-1:]), fmt, {"mask": m})


# --- sigmoid losses -----------------------------------------------------------------------------------


@optax_function("binary_crossentropy", _bce.pos_weighted_reference, _bce.pos_weighted_oracle, elementwise=True)
def sigmoid_binary_cross_entropy(logits, labels):
    """``-labels · log σ(logits) - (1 - labels) · log σ(-logits)`` elementwise; labels are
    cast to the logits' dtype and broadcast against them."""
    x, y, fmt = _cast_labels("sigmoid_binary_cross_entropy", logits, labels)
    return Prepared(y, x, fmt)


def _negative_base(y, z, exact: bool):
    """Where ``1 - p_t = y σ(-z) + (1 - y) σ(z)`` is negative (labels outside [0, 1]):
    optax forms the focal weight as ``exp(γ log(1 - p_t))``, NaN there."""
    if exact:  # an oracle condition (three-valued on balls)
        return xo.lt(y * xo.sigmoid(-z) + (1 - y) * xo.sigmoid(z), 0)
    return y * sigmoid(-z) + (1.0 - y) * sigmoid(z) < 0


def _focal_reference(y_true, y_pred, **kw) -> np.ndarray:
    return np.where(_negative_base(y_true, y_pred, False), np.nan, _bfc.reference(y_true, y_pred, **kw))


def _focal_oracle(y_true, y_pred, **kw) -> np.ndarray:
    return xo.where(_negative_base(y_true, y_pred, True), xo.NAN, _bfc.oracle(y_true, y_pred, **kw))


@optax_function("binary_focal_crossentropy", _focal_reference, _focal_oracle, elementwise=True)
def sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0):
    """``(1 - p_t)^gamma`` times :func:`sigmoid_binary_cross_entropy`, elementwise, with
    ``1 - p_t = labels σ(-logits) + (1 - labels) σ(logits)``; with `alpha` (default None:
    no weighting) also ``alpha · labels + (1 - alpha)(1 - labels)``.

    Labels are cast to the logits' dtype; `gamma`, `alpha` and ``1 - alpha`` are
    rounded to it (weak Python numbers).
    """
    fn = "sigmoid_focal_loss"
    x, y, fmt = _cast_labels(fn, logits, labels)
    params = {"apply_class_balancing": alpha is not None, "alpha": 0.25,
              "gamma": _scalar_in(fn, "gamma", gamma, fmt), "from_logits": True, "label_smoothing": 0.0,
              "epsilon": None}
    if alpha is not None:
        a = _scalar_in(fn, "alpha", alpha, formats.FLOAT64)
        params["alpha"] = (_scalar_in(fn, "alpha", a, fmt), _scalar_in(fn, "1 - alpha", 1.0 - a, fmt))
    return Prepared(y, x, fmt, params)


# --- KL divergences -------------------------------------------------------------------------------


def _kl_inputs(fn: str, log_predictions, targets, second: str, axis, where):
    """``(targets, log_predictions, mask, format)``: two float arrays broadcast, promoted,
    the summed axes moved last and merged; `where` broadcasts to them as it is."""
    lq = as_jax(log_predictions, "log_predictions")
    t = as_jax(targets, second)
    float_format(fn, lq, "log_predictions")
    float_format(fn, t, second)
    fmt = result_format(fn, lq, t)
    lb, tb = broadcast(fn, lq, t)
    axes = normalize_axes(axis, lb.ndim, "axis")
    m = None if where is None else axes_last(_spread(fn, _mask(fn, where, lb.ndim, axis, False), lb.shape), axes)
    return axes_last(tb, axes), axes_last(lb, axes), m, fmt


def _kl_reference(y_true, y_pred, log_target=False, mask=None) -> np.ndarray:
    """Per row ``Σ t (log t - l)`` (xlogy: 0 for t = 0 and finite l) or ``Σ e^t (t - l)``."""
    v = _kl.log_space_reference(y_true, y_pred, log_target)
    on = _on(mask)
    return stage2_sum(v if on is None else np.where(on, v, 0.0), -1)


def _kl_oracle(y_true, y_pred, log_target=False, mask=None) -> np.ndarray:
    v = _kl.log_space_oracle(y_true, y_pred, log_target)
    on = _on(mask)
    return xo.fsum(v if on is None else xo.where(on, v, 0), -1)


@optax_function("kl_divergence", _kl_reference, _kl_oracle)
def kl_divergence(log_predictions, targets, axis=-1, where=None):
    """``Σ targets · (log targets - log_predictions)`` over `axis` (int, tuple or None), with
    ``log 0`` read as 0: a zero target gives ``0 · (-l)``, NaN for an infinite ``l``."""
    t, lq, m, fmt = _kl_inputs("kl_divergence", log_predictions, targets, "targets", axis, where)
    return Prepared(t, lq, fmt, {"log_target": False, "mask": m})


@optax_function("kl_divergence", _kl_reference, _kl_oracle)
def kl_divergence_with_log_targets(log_predictions, log_targets, axis=-1, where=None):
    """``Σ exp(log_targets) · (log_targets - log_predictions)`` over `axis`."""
    t, lq, m, fmt = _kl_inputs("kl_divergence_with_log_targets", log_predictions, log_targets,
                               "log_targets", axis, where)
    return Prepared(t, lq, fmt, {"log_target": True, "mask": m})


def _gkl_reference(y_true, y_pred, mask=None) -> np.ndarray:
    """The catalogue's row sums; rows with an infinite or NaN term of optax's two sums
    (``t (log t - l)`` and ``e^l - t``) get the IEEE sum of those two sums."""
    on = _on(mask)
    with np.errstate(all="ignore"):
        parts = [_gkl.reference(y_true, y_pred), _kl.log_space_reference(y_true, y_pred),
                 np.exp(y_pred) - y_true]
        if on is not None:
            parts = [np.where(on, v, 0.0) for v in parts]
        v, a, b = parts
        out = stage2_sum(v, -1)
        special = ~np.all(np.isfinite(a) & np.isfinite(b), axis=-1)
        return np.where(special, stage2_sum(a, -1) + stage2_sum(b, -1), out) if np.any(special) else out


def _gkl_oracle(y_true, y_pred, mask=None) -> np.ndarray:
    on = _on(mask)
    parts = [_gkl.oracle(y_true, y_pred), _kl.log_space_oracle(y_true, y_pred), xo.exp(y_pred) - y_true]
    if on is not None:
        parts = [xo.where(on, v, 0) for v in parts]
    v, a, b = parts
    special = xo.lnot(xo.all_of(xo.land(xo.isfinite(a), xo.isfinite(b)), -1))
    return xo.where(special, xo.fsum(a, -1) + xo.fsum(b, -1), xo.fsum(v, -1))


@optax_function("generalized_kl_divergence", _gkl_reference, _gkl_oracle)
def generalized_kl_divergence(log_predictions, targets, axis=-1, where=None):
    """:func:`kl_divergence` plus ``Σ (exp(log_predictions) - targets)``: the Bregman
    divergence of ``x log x - x``, for unnormalised measures."""
    t, lq, m, fmt = _kl_inputs("generalized_kl_divergence", log_predictions, targets, "targets", axis, where)
    return Prepared(t, lq, fmt, {"mask": m})


@optax_function("generalized_kl_divergence", _gkl_reference, _gkl_oracle)
def convex_kl_divergence(log_predictions, targets, axis=-1, where=None):
    """Deprecated alias of :func:`generalized_kl_divergence`; warns as optax does."""
    warnings.warn("The function convex_kl_divergence is deprecated. Please use generalized_kl_divergence "
                  "instead.", DeprecationWarning, stacklevel=4)
    t, lq, m, fmt = _kl_inputs("convex_kl_divergence", log_predictions, targets, "targets", axis, where)
    return Prepared(t, lq, fmt, {"mask": m})


# --- reference gradients ------------------------------------------------------------------------------
#
# Each ``*_vjp(y_true, y_pred, cot, **params)`` is the VJP of the reference of the same
# name above (class axis last, `cot` of the per-row shape): optax's own layer (masks, the
# label-0 rules, the integer gather) written here, the catalogue's gradients where a
# reference wraps one. At masked entries each gives what ``jax.grad`` of the optax
# function gives there (measured with optax 0.2.8, x64 on; each function's docstring says which).


def _catalogue_grad(name: str):
    """The registered reference gradient of catalogue loss `name`."""
    from ..registry import get
    g = get(name).grad_ref
    if g is None:
        raise NotImplementedError(f"{name}: the catalogue has no reference gradient")
    return g


def _softmax_parts(z, on):
    """``(p, logp, q, top)`` over the last axis of the kept logits: the probabilities, their
    logs, ``q = sum_{i != top} p_i`` (``1 - p_top`` without cancellation) and `top` the
    index of a largest logit (as ``(..., 1)`` for take/put along the axis)."""
    zm = _masked(z, on, False)
    with np.errstate(all="ignore"):
        logp = zm - logsumexp(zm, -1)[..., None]
        p = np.exp(logp)
        top = np.argmax(np.where(np.isnan(zm), -np.inf, zm), axis=-1)[..., None]
        others = np.ones(p.shape, bool)
        np.put_along_axis(others, top, False, axis=-1)
        q = stage2_sum(np.where(others, p, 0.0), -1)[..., None]
        # log p_top = log1p(-q): zm - lse rounds it to 0 where q < u
        logp = _dominant(logp, top, np.where(q < 0.5, np.log1p(-q), np.take_along_axis(logp, top, axis=-1)))
    return p, logp, q, top, others


def _dominant(v, top, value):
    """`v` with the entry at `top` replaced by `value` (both per row)."""
    v = np.array(v, dtype=np.float64, copy=True)
    np.put_along_axis(v, top, value, axis=-1)
    return v


def _vjp_parts(y_true, y_pred, cot, mask):
    """What the softmax VJPs share: the mask, the kept labels, the softmax parts of
    :func:`_softmax_parts` and the cotangent as a column."""
    on = _on(mask)
    y = np.asarray(y_true, np.float64)
    p, logp, q, top, others = _softmax_parts(np.asarray(y_pred, np.float64), on)
    yk = y if on is None else np.where(on, y, 0.0)
    return on, yk, p, logp, q, top, others, np.asarray(cot, np.float64)[..., None]


def _ce_vjp(y_true, y_pred, cot, mask=None, safe=False):
    """``d/dz_j = cot (p_j S - y_j)`` with ``S = sum y`` over the kept classes and
    ``d/dy_j = -cot log p_j``. At the largest probability ``p_top S - y_top`` is taken as
    ``-S q + sum_{i != top} y_i`` (``p_top - 1 = -q``: no cancellation). Error
    ``<= 4 u |cot| (p_j S (2 + |log p_j|) + |y_j|)`` (the rounding of ``z - logsumexp``
    carries into p).
    Masked classes: ``d/dz = 0`` and ``d/dy = 0 * -inf``, NaN, as ``jax.grad`` gives
    (the masked sum passes a zero cotangent to ``labels * log_softmax``)."""
    on, yk, p, logp, q, top, others, c = _vjp_parts(y_true, y_pred, cot, mask)
    with np.errstate(all="ignore"):
        s = stage2_sum(yk, -1)[..., None]
        h, lo = two_product(p, s)
        gz = (h - yk) + lo  # p s - y with the product exact: the cancellation left is the data's
        rest = stage2_sum(np.where(others, yk, 0.0), -1)[..., None]
        # an infinite label sum: the plain p s - y (the complement form adds -inf and inf)
        gz = _dominant(gz, top, np.where(np.isfinite(s), -s * q + rest, np.take_along_axis(gz, top, axis=-1)))
        gz = c * gz
        gy = -c * logp
        if on is not None:
            gz = np.where(on, gz, 0.0)
            gy = np.where(on, gy, np.nan)
    return {"y_pred": gz, "y_true": gy}


def _poly_vjp(y_true, y_pred, cot, epsilon=2.0, mask=None):
    """:func:`_ce_vjp` plus ``epsilon`` times the VJP of ``sum y (1 - p)``:
    ``d/dz_j = cot p_j (sum_i y_i p_i - y_j)``, ``d/dy_j = cot (1 - p_j)``; at the largest
    probability ``1 - p = q`` and ``sum_i y_i p_i - y_top = -y_top q + sum_{i != top} y_i p_i``."""
    out = _ce_vjp(y_true, y_pred, cot, mask)
    on, yk, p, logp, q, top, others, c = _vjp_parts(y_true, y_pred, cot, mask)
    with np.errstate(all="ignore"):
        yp = sum2(yk * p, -1)[..., None]
        d = yp - yk
        y_top = np.take_along_axis(yk, top, axis=-1)
        dt = -y_top * q + stage2_sum(np.where(others, yk * p, 0.0), -1)[..., None]
        d = _dominant(d, top, np.where(np.isfinite(yp), dt, np.take_along_axis(d, top, axis=-1)))
        one_minus = _dominant(1.0 - p, top, q)
        gz = out["y_pred"] + (epsilon * c) * (p * d)
        gy = out["y_true"] + (epsilon * c) * one_minus
        if on is not None:
            gz = np.where(on, gz, 0.0)
            gy = np.where(on, gy, np.nan)
    return {"y_pred": gz, "y_true": gy}


def _int_vjp(y_true, y_pred, cot, mask=None):
    """``d/dz_j = cot (p_j - [j = label])`` with p the softmax over the kept classes (0 at
    masked ones); the label's entry ``-cot q`` where it is the largest probability
    (``p - 1 = -q``), ``-cot`` where the label's class is masked; a fully masked row 0.
    A label outside ``[-C, C)`` has a NaN value, and so NaN gradients (``jax.grad`` gives
    the softmax there: its gather's VJP drops the out-of-range index)."""
    z = np.asarray(y_pred, np.float64)
    k, valid = _int_parts(y_true, z.shape[-1])
    on = _on(mask)
    p, logp, q, top, others = _softmax_parts(z, on)
    c = np.asarray(cot, np.float64)[..., None]
    with np.errstate(all="ignore"):
        hot = np.arange(z.shape[-1]) == k[..., None]
        g = p - hot
        g = np.where(hot & (np.arange(z.shape[-1]) == top), -q, g)
        g = c * g
        if on is not None:
            g = np.where(on | hot, g, 0.0)
            g = np.where(on.any(-1)[..., None], g, 0.0)
        g = np.where(valid[..., None], g, np.nan)
    return {"y_pred": g}


def _kl_parts(y_true, y_pred, cot, mask):
    """Targets and log-predictions broadcast in float64, and the cotangent per element
    (0 at a masked entry)."""
    t, l = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    c = np.broadcast_to(np.asarray(cot, np.float64)[..., None], t.shape)
    on = _on(mask)
    return t, l, (c if on is None else np.where(on, c, 0.0))


def _kl_vjp(y_true, y_pred, cot, log_target=False, mask=None):
    """``t (log t - l)``: ``d/dl = -cot t``, ``d/dt = cot (log t + 1 - l)``, NaN at ``t = 0``
    (optax's ``where(t == 0, 0, log t)`` passes ``0 * (1/0)`` to ``jax.grad``), masked or
    not. ``e^t (t - l)``: ``d/dl = -cot e^t``, ``d/dt = cot e^t (t - l + 1)``. A masked
    entry takes a zero cotangent."""
    t, l, c = _kl_parts(y_true, y_pred, cot, mask)
    with np.errstate(all="ignore"):
        if log_target:
            e = np.exp(t)
            return {"y_pred": -c * e, "y_true": c * (e * ((t - l) + 1.0))}
        gt = c * ((np.log(t) + 1.0) - l)
        return {"y_pred": -c * t, "y_true": np.where(t == 0, np.nan, gt)}


def _gkl_vjp(y_true, y_pred, cot, mask=None):
    """``t (log t - l) + e^l - t``: ``d/dl = cot (e^l - t)``, ``d/dt = cot (log t - l)``
    (NaN at ``t = 0``, as :func:`_kl_vjp`). Each difference is of two rounded terms:
    error ``<= 2 u (|e^l| + |t|)`` and ``2 u (|log t| + |l|)`` (times ``|cot|``)."""
    t, l, c = _kl_parts(y_true, y_pred, cot, mask)
    with np.errstate(all="ignore"):
        gl = c * (np.exp(l) - t)
        gt = np.where(t == 0, np.nan, c * (np.log(t) - l))
    return {"y_pred": gl, "y_true": gt}


def _bce_vjp(y_true, y_pred, cot, pos_weight=None):
    """The catalogue's gradient of its logits cross-entropy (no pos_weight here)."""
    if not hasattr(_bce, "pos_weighted_grad"):
        raise NotImplementedError("binary_crossentropy: the catalogue has no pos_weighted_grad")
    return _bce.pos_weighted_grad(y_true, y_pred, cot, pos_weight=pos_weight)


def _focal_vjp(y_true, y_pred, cot, **kw):
    """The catalogue's focal gradient; NaN where optax's focal weight is NaN.

    At labels exactly 0 or 1 ``d/dy`` is ``jax.grad``'s: optax forms ``log(1 - p_t)`` by
    ``logsumexp(..., b=[1 - y, y])``, which drops a term of weight 0 together with its
    derivative, so ``d log(1 - p_t)/dy`` is 1 at ``y = 1`` (not ``1 - e^z``) and -1 at
    ``y = 0`` (not ``e^-z - 1``): the catalogue's ``d/dy`` plus ``cot gamma f e^z`` at
    ``y = 1``, minus ``cot gamma f e^-z`` at ``y = 0`` (f the loss)."""
    out = dict(_catalogue_grad("binary_focal_crossentropy")(y_true, y_pred, cot, **kw))
    y, z = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    with np.errstate(all="ignore"):
        gf = float(kw["gamma"]) * np.asarray(cot, np.float64) * _bfc.reference(y, z, **kw)
        fix = np.where(y == 1, gf * np.exp(z), np.where(y == 0, -gf * np.exp(-z), 0.0))
        out["y_true"] = np.where((y == 0) | (y == 1), out["y_true"] + fix, out["y_true"])
    bad = _negative_base(y_true, y_pred, False)
    return {k: np.where(bad, np.nan, v) for k, v in out.items()}


softmax_cross_entropy._vjp = safe_softmax_cross_entropy._vjp = _ce_vjp
poly_loss_cross_entropy._vjp = _poly_vjp
softmax_cross_entropy_with_integer_labels._vjp = _int_vjp
sigmoid_binary_cross_entropy._vjp = _bce_vjp
sigmoid_focal_loss._vjp = _focal_vjp
kl_divergence._vjp = kl_divergence_with_log_targets._vjp = _kl_vjp
generalized_kl_divergence._vjp = convex_kl_divergence._vjp = _gkl_vjp
