"""``optax.losses`` multiclass margins, sparsemax, ranking and metric learning (Optax 0.2.8).

The values are catalogue losses (``multiclass_hinge``, ``sparsemax``, ``ranking_softmax``,
``triplet_margin_powsum``, ``ntxent``); what is Optax's here is how arguments meet them:

* Integer class labels index the last axis of the scores; one outside ``[0, K)`` is a
  ``ValueError`` (optax's one-hot row would be all zeros, its gather would clamp: neither
  is a defined loss).
* ``multiclass_hinge_loss``, ``multiclass_perceptron_loss`` and
  ``multiclass_sparsemax_loss`` return float64 for every float input: optax combines the
  scores with ``jax.nn.one_hot``'s default dtype (float64 with x64 on).
* Python numbers given as parameters (``margin``, ``eps``, ``temperature``, a float
  ``norm_degree``) are weakly typed: JAX holds them rounded into the computation's dtype.
* ``ranking_softmax_loss`` rounds the labels into the logits' dtype (``astype``) and
  reduces by ``reduce_fn`` (``jnp.mean`` by default; ``jnp.sum`` and None are the others
  lossref evaluates exactly); ``ntxent`` returns one value per batch.

>>> import numpy as np
>>> from lossref.optax import losses
>>> losses.multiclass_hinge_loss(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3]))
array([0.6])
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Optional

import numpy as np

from .. import formats
from ..dialect import is_float
from ..formats import Format
from ..losses import multiclass_hinge as _mh
from ..losses import ntxent as _nt
from ..losses import ranking_softmax as _rs
from ..losses import sparsemax as _sm
from ..losses import triplet_margin_powsum as _tp
from ..oracle import ops as xops
from ..reduction import EXACT, _Lin
from ._base import OptaxFunction, Prepared, as_jax, broadcast, float_format, optax_function, result_format

__all__ = ['multiclass_hinge_loss', 'multiclass_perceptron_loss', 'sparsemax_loss', 'multiclass_sparsemax_loss',
           'ranking_softmax_loss', 'triplet_margin_loss', 'ntxent']

_F64 = np.zeros(0, np.float64)  # the dtype of jax.nn.one_hot's rows (x64 on)


def _weak(value: float, fmt: Format) -> float:
    """A Python number as JAX holds it beside an array of `fmt` (weak typing: rounded once)."""
    return float(formats.as_format(np.float64(value), fmt))


def _real(fn: str, name: str, value: Any) -> float:
    """A real scalar parameter, or a ``TypeError`` naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number (a scalar); got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {name}={value!r}: lossref takes a finite {name}")
    return value


def _one_hot(fn: str, scores: Any, labels: Any, rows_only: bool = False):
    """``(scores, one-hot labels as float64 of the scores' shape)`` after the checks."""
    s = as_jax(scores, "scores")
    float_format(fn, s, "scores")
    lab = as_jax(labels, "labels")
    if lab.dtype.kind not in "iu":
        raise TypeError(f"{fn}: labels must be integer class indices; got dtype {lab.dtype}")
    if rows_only and s.ndim != 2:
        raise ValueError(f"{fn}: scores must be (batch, classes); got shape {s.shape}")
    if s.ndim == 0 or lab.shape != s.shape[:-1]:
        raise ValueError(f"{fn}: labels of shape {lab.shape} must have the scores' shape {s.shape} without "
                         "its last (class) axis")
    k = s.shape[-1]
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        raise ValueError(f"{fn}: labels must lie in [0, {k}) (the classes of the last axis); got values in "
                         f"[{lab.min()}, {lab.max()}]")
    return s, (lab[..., None] == np.arange(k)).astype(np.float64)


# --- multiclass hinge and perceptron ------------------------------------------------------------------


@optax_function("multiclass_hinge", _mh.reference, _mh.oracle)
def multiclass_hinge_loss(scores, labels):
    """Crammer–Singer hinge ``max_k(s_k + [k != y]) - s_y`` over the last axis (float64)."""
    s, y = _one_hot("multiclass_hinge_loss", scores, labels)
    return Prepared(y, s, result_format("multiclass_hinge_loss", s, _F64), {"margin": 1.0})


@optax_function("multiclass_hinge", _mh.reference, _mh.oracle)
def multiclass_perceptron_loss(scores, labels):
    """Multiclass perceptron loss ``max_k s_k - s_y`` over the last axis (float64)."""
    s, y = _one_hot("multiclass_perceptron_loss", scores, labels)
    return Prepared(y, s, result_format("multiclass_perceptron_loss", s, _F64), {"margin": 0.0})


# --- sparsemax ---------------------------------------------------------------------------------------


@optax_function("sparsemax", _sm.reference, _sm.oracle, elementwise=True)
def sparsemax_loss(logits, labels):
    """Binary sparsemax loss per element: ``sparse_plus(-x)`` where the label is non-zero,
    else ``sparse_plus(x)``, in the logits' dtype (labels of any numeric dtype)."""
    fn = "sparsemax_loss"
    x = as_jax(logits, "logits")
    fmt = float_format(fn, x, "logits")
    lab = as_jax(labels, "labels")
    x, lab = broadcast(fn, x, lab)
    with np.errstate(invalid="ignore"):
        y = np.asarray(lab != 0, np.float64)
    return Prepared(y, x, fmt, {"binary": True})


@optax_function("sparsemax", _sm.reference, _sm.oracle)
def multiclass_sparsemax_loss(scores, labels):
    """Multiclass sparsemax loss of ``(batch, classes)`` scores and integer labels (float64)."""
    fn = "multiclass_sparsemax_loss"
    s, y = _one_hot(fn, scores, labels, rows_only=True)
    return Prepared(y, s, result_format(fn, s, _F64), {"binary": False})


# --- ranking softmax ---------------------------------------------------------------------------------


def mean(a, axis=None, *, where=None):
    """Stands for ``jax.numpy.mean``, ``ranking_softmax_loss``'s default `reduce_fn`
    (lossref does not import JAX): the mean over the lists with a valid item."""
    raise TypeError("lossref.optax's mean only names ranking_softmax_loss's default reduce_fn")


def _reduction(fn: str, reduce_fn: Optional[Callable]) -> Optional[str]:
    """``'mean'``, ``'sum'`` or None for `reduce_fn` (JAX's ``jnp.mean``/``jnp.sum``)."""
    if reduce_fn is None:
        return None
    if reduce_fn is mean:
        return "mean"
    name, module = getattr(reduce_fn, "__name__", ""), getattr(reduce_fn, "__module__", "") or ""
    if name in ("mean", "sum") and module.split(".")[0] == "jax":
        return name
    raise TypeError(f"{fn}: reduce_fn must be jax.numpy.mean, jax.numpy.sum or None (a user's callable cannot "
                    f"be evaluated exactly); got {reduce_fn!r}")


class _RankingFunction(OptaxFunction):
    """``ranking_softmax_loss``: per-list values, then optax's ``reduce_fn``."""

    def finish(self, pr: Prepared, values, arith):
        how, (rows,) = pr.stage3["reduce"], pr.stage3["rows"]
        if how is None:
            return values
        if isinstance(values, _Lin):  # stage 3 differentiated: the same rules on linear values
            chosen = values[rows] if rows is not None else values
            n = int(np.prod(chosen.shape))
            if how == "sum":
                return arith.total(chosen)
            if n == 0:
                return arith.asarray(np.float64(0.0))
            with np.errstate(all="ignore"):
                nan_mean = bool(np.isnan(np.sum(chosen.v)))
            if nan_mean and not bool(np.any(np.isnan(values.v))):
                return arith.asarray(np.float64(0.0))  # optax's NaN mean made 0: a constant
            return arith.mean_of_total(chosen, None, n)
        exact = arith is EXACT
        vals = np.asarray(values, dtype=object if exact else np.float64)
        chosen = vals[rows] if rows is not None else vals.reshape(-1)
        if how == "sum":
            return arith.total(chosen)
        out = arith.mean_of_total(chosen, None, chosen.size) if chosen.size else \
            arith.divide(arith.asarray(np.float64(0.0)), arith.asarray(np.float64(0.0)))
        # optax turns a NaN mean into 0 unless a list's loss is NaN (no valid list, inf - inf)
        if not exact:
            if bool(np.all(np.isnan(out))) and not bool(np.any(np.isnan(vals))):
                return arith.asarray(np.float64(0.0))
            return out
        # on balls "NaN" is "not known": an undecided condition keeps both answers
        out = np.asarray(out, dtype=object)
        nan_mean = xops.all_of(xops.isnan(out.reshape(-1)), -1) if chosen.size else True  # 0/0
        zero = xops.land(nan_mean, xops.lnot(xops.any_of(xops.isnan(vals.reshape(-1)), -1)))
        return xops.where(zero, 0, out)


def ranking_softmax_loss(logits, labels, *, where=None, weights=None, reduce_fn=mean):
    """Listwise softmax cross-entropy ``-sum_i y_i w_i log softmax(s)_i`` over the valid items of
    each list (the last axis), reduced by `reduce_fn` (default: the mean over the lists with a
    valid item; None: per list, lists without a valid item 0)."""
    fn = "ranking_softmax_loss"
    s = as_jax(logits, "logits")
    fmt = float_format(fn, s, "logits")
    how = _reduction(fn, reduce_fn)
    if s.ndim == 0:
        raise ValueError(f"{fn}: logits need a last (list) axis; got a scalar")
    # optax casts the labels to the logits' dtype: one rounding into it
    y = formats.to_format_array(np.asarray(as_jax(labels, "labels"), np.float64), fmt)
    params = {"weights": np.ones(()), "where": np.ones(())}
    arrays = [("labels", y)]
    if weights is not None:
        w = as_jax(weights, "weights")
        if is_float(w.dtype):
            fmt = result_format(fn, s, w)
        arrays.append(("weights", w))
    valid = None
    if where is not None:
        valid = as_jax(where, "where")
        if valid.dtype != np.bool_:
            raise TypeError(f"{fn}: where must be a bool array; got dtype {valid.dtype}")
        arrays.append(("where", valid))
    for name, a in arrays:
        try:
            ok = np.broadcast_shapes(a.shape, s.shape) == s.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{fn}: {name} of shape {a.shape} does not broadcast to the logits' shape {s.shape}")
    y = np.broadcast_to(y, s.shape)
    if weights is not None:
        params["weights"] = np.asarray(w, np.float64)
    rows = None
    if valid is not None:
        params["where"] = valid.astype(np.float64)
        rows = np.any(np.broadcast_to(valid, s.shape), axis=-1)
    return Prepared(y, s, fmt, params, stage3={"reduce": how, "rows": (rows,)})


ranking_softmax_loss = _RankingFunction(ranking_softmax_loss, "ranking_softmax", _rs.reference, _rs.oracle)


# --- triplet margin ----------------------------------------------------------------------------------


@optax_function("triplet_margin_powsum", _tp.reference, _tp.oracle)
def triplet_margin_loss(anchors, positives, negatives, axis: int = -1, norm_degree=2, margin=1.0, eps=1e-6):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d(u, v) = (sum (u - v)**norm_degree +
    eps)**(1/norm_degree)`` over `axis` (signed powers, as optax computes them)."""
    fn = "triplet_margin_loss"
    a, p, n = (as_jax(v, k) for v, k in ((anchors, "anchors"), (positives, "positives"), (negatives, "negatives")))
    fmt = result_format(fn, a, p, n)
    a, p, n = broadcast(fn, a, p, n)
    if a.ndim == 0:
        raise ValueError(f"{fn}: the embeddings need an axis to reduce; got scalars")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{fn}: axis must be an int; got {axis!r}") from None
    if not -a.ndim <= ax < a.ndim:
        raise ValueError(f"{fn}: axis {ax} is out of bounds for inputs of {a.ndim} dimensions")
    deg = _real(fn, "norm_degree", norm_degree)
    if deg <= 0:
        raise ValueError(f"{fn}: norm_degree={norm_degree!r}: lossref models norm_degree > 0")
    # an int power is JAX's integer_pow (exact); a float one is held in the dtype
    deg = int(deg) if isinstance(deg, (int, np.integer)) else _weak(deg, fmt)
    m, e = _weak(_real(fn, "margin", margin), fmt), _weak(_real(fn, "eps", eps), fmt)
    a, p, n = (np.moveaxis(v, ax, -1) for v in (a, p, n))
    return Prepared(p, a, fmt, {"negative": n, "margin": m, "p": deg, "eps": e})


# --- NT-Xent -----------------------------------------------------------------------------------------


@optax_function("ntxent", _nt.reference, _nt.oracle)
def ntxent(embeddings, labels, temperature=0.07):
    """NT-Xent of a ``(batch, features)`` batch: the mean over the positive pairs of the
    softmax cross-entropy against the anchor's negatives; one value (NaN without a pair)."""
    fn = "ntxent"
    e = as_jax(embeddings, "embeddings")
    fmt = float_format(fn, e, "embeddings")
    lab = as_jax(labels, "labels")
    if e.ndim != 2:
        raise ValueError(f"{fn}: embeddings must be (batch, features); got shape {e.shape}")
    if lab.ndim != 1 or lab.shape[0] != e.shape[0]:
        raise ValueError(f"{fn}: labels must be (batch,) with the embeddings' batch size {e.shape[0]}; "
                         f"got shape {lab.shape}")
    if lab.dtype.kind == "f" and not np.all(np.isfinite(lab)):
        raise ValueError(f"{fn}: labels must be finite (a NaN label equals no label)")
    t = _real(fn, "temperature", temperature)
    if t == 0:
        raise ValueError(f"{fn}: temperature must be non-zero")
    groups = np.unique(lab, return_inverse=True)[1].reshape(-1).astype(np.float64)
    # optax clamps the squared norms at the dtype's machine epsilon (finfo.eps = 2 u)
    return Prepared(groups, e, fmt, {"temperature": _weak(t, fmt), "eps": 2.0 * fmt.eps})


# --- gradients ---------------------------------------------------------------------------------------
# Every value above is a catalogue reference, so each function's gradient is the catalogue's
# (``vjp64``); the third input of the triplet loss is the catalogue's `negative`.
triplet_margin_loss.grad_params = {"negatives": "negative"}
