"""Optax's regression losses, cosine similarity and distance, label smoothing and the binary
margin losses (``optax/losses/_regression.py``, ``_smoothing.py``, ``_classification.py``).

Each preparer states optax's rule for its arguments; the values are the catalogue's:
``squared_error``/``l2_loss`` (mean_squared_error's elementwise square, halved),
``huber_loss`` (huber), ``log_cosh`` (log_cosh), ``cosine_similarity``/``cosine_distance``
(cosine_similarity, with optax's sign and epsilon; cosine_embedding's accurate ``1 - cos``),
``smooth_labels`` (smooth_labels), ``hinge_loss`` (hinge) and ``perceptron_loss``
(margin_ranking with ``x2 = 0`` and no margin).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import numpy as np

from .. import formats
from ..dialect import convert, is_float
from ..losses import cosine_embedding as _cemb
from ..losses import cosine_similarity as _cos
from ..losses import hinge as _hinge
from ..losses import huber as _huber
from ..losses import log_cosh as _log_cosh
from ..losses import margin_ranking as _ranking
from ..losses import mean_squared_error as _mse
from ..losses import smooth_labels as _smooth
from ..numerics import axes_last, normalize_axes
from ..oracle import ops as x
from ..registry import is_real
from ._base import OptaxFunction, Prepared, as_jax, broadcast, float_format, optax_function, result_format

__all__ = ['l2_loss', 'squared_error', 'huber_loss', 'log_cosh', 'cosine_similarity', 'cosine_distance',
           'smooth_labels', 'hinge_loss', 'perceptron_loss']

Axis = Union[int, Tuple[int, ...], None]


# --- inputs -------------------------------------------------------------------------------------


def _difference(fn: str, predictions, targets, same_shape: bool) -> Prepared:
    """Predictions (a float array: optax's ``check_subdtype``) and targets (zeros where None),
    of equal shape where optax checks it (``ValueError``), else broadcast as JAX does."""
    p = as_jax(predictions, "predictions")
    float_format(fn, p, "predictions")
    if targets is None:
        return Prepared(np.broadcast_to(np.zeros((), p.dtype), p.shape), p, formats.get_format(p.dtype))
    t = as_jax(targets, "targets")
    fmt = result_format(fn, p, t)
    if same_shape and t.shape != p.shape:
        raise ValueError(f"{fn}: shape mismatch: predictions {p.shape} and targets {t.shape} must be equal")
    t, p = broadcast(fn, t, p)
    return Prepared(t, p, fmt)


def _scores(fn: str, predictor_outputs, targets, same_shape: bool) -> Prepared:
    """Scores and ±1 targets: no dtype check in optax, so an integer or bool operand joins a
    float one as JAX promotes it (converted, rounded once, into the float's format)."""
    s = as_jax(predictor_outputs, "predictor_outputs")
    t = as_jax(targets, "targets")
    if same_shape and s.shape != t.shape:
        raise ValueError(f"{fn}: shape mismatch: predictor_outputs {s.shape} and targets {t.shape} "
                         "must be equal")
    floats = [a for a in (s, t) if is_float(a.dtype)]
    fmt = result_format(fn, *(floats or [s]))  # two integer arrays: the TypeError of result_format
    s, t = (a if is_float(a.dtype) else convert(a.astype(np.float64), fmt) for a in (s, t))
    t, s = broadcast(fn, t, s)
    return Prepared(t, s, fmt)


def _vectors(fn: str, predictions, targets, axis: Axis, where) -> Tuple[Prepared, tuple]:
    """Both float arrays with the reduced axes merged into one last axis, `where` applied.

    Excluded elements become 0 in both (they add nothing to any of the three sums, as in
    optax's masked sums, and an excluded inf or NaN has no effect there either). Broadcasting
    is modelled along the kept axes; along a reduced axis optax normalises each operand by
    its own norm before broadcasting, which is no cosine of two vectors: a ``ValueError``.
    Returns the Prepared inputs (no params yet) and ``(included, zero_a, zero_b)`` per row.
    """
    p = as_jax(predictions, "predictions")
    t = as_jax(targets, "targets")
    float_format(fn, p, "predictions")
    float_format(fn, t, "targets")
    fmt = result_format(fn, p, t)
    if p.ndim != t.ndim:
        raise ValueError(f"{fn}: predictions {p.shape} and targets {t.shape} must have the same rank")
    axes = normalize_axes(axis, p.ndim)
    if any(p.shape[a] != t.shape[a] for a in axes):
        raise ValueError(f"{fn}: predictions {p.shape} and targets {t.shape} must have equal sizes along "
                         f"axis={axis!r} (each would be normalised before broadcasting)")
    t, p = broadcast(fn, t, p)
    keep = np.ones((), bool)
    if where is not None:
        w = as_jax(where, "where")
        if w.dtype.kind != "b":
            raise TypeError(f"{fn}: where must be a bool array; got dtype {w.dtype}")
        if np.broadcast_shapes(w.shape, p.shape) != p.shape:
            raise ValueError(f"{fn}: where {w.shape} does not broadcast to the inputs' shape {p.shape}")
        keep = w
        t, p = np.where(w, t, np.zeros((), t.dtype)), np.where(w, p, np.zeros((), p.dtype))
    keep = np.broadcast_to(keep, p.shape)
    t, p, keep = axes_last(t, axes), axes_last(p, axes), axes_last(keep, axes)
    rows = (np.any(keep, -1), np.all(p == 0, -1), np.all(t == 0, -1))
    # the kept elements, for the gradient (a tuple: not an input of the oracle's precision)
    return Prepared(t, p, fmt, stage3={"keep": (keep,)}), rows


def _nan_rows(pr: Prepared, rows: tuple, epsilon: float) -> Prepared:
    """Optax divides by ``sqrt(max(||v||^2, epsilon))``: with no positive floor, a row with an
    included element and a zero vector is ``0 / 0``, NaN (made so by a NaN in that row)."""
    included, zero_a, zero_b = rows
    if epsilon <= 0:
        bad = included & (zero_a | zero_b)
        if np.any(bad):
            pr.y_pred = np.where(bad[..., None], np.array(np.nan, pr.y_pred.dtype), pr.y_pred)
    return pr


# --- values: catalogue functions in optax's terms --------------------------------------------


def _half_ref(y_true, y_pred):
    return 0.5 * _mse.reference(y_true, y_pred)  # a factor of two: exact but in the subnormals


def _half_oracle(y_true, y_pred):
    return _mse.oracle(y_true, y_pred) / 2


def _floor64(epsilon: float) -> Optional[float]:
    """The norm floor ``sqrt(epsilon)`` of the catalogue, None where there is none."""
    return math.sqrt(epsilon) if epsilon > 0 else None


def _floor_exact(epsilon: float):
    """:func:`_floor64` as an exact number of the oracle backend in use."""
    return x.sqrt(x.num(epsilon))[()] if epsilon > 0 else None


def _similarity_ref(y_true, y_pred, epsilon):
    return -_cos.reference(y_true, y_pred, -1, _floor64(epsilon))


def _similarity_oracle(y_true, y_pred, epsilon):
    return -_cos.oracle(y_true, y_pred, -1, _floor_exact(epsilon))


def _unfloored(sq_a, sq_b, epsilon):
    """Rows whose norms are both positive and at least the floor: there ``1 - sim`` is
    cosine_embedding's ``1 - cos`` (computed without cancellation for parallel vectors)."""
    return (sq_a > 0) & (sq_b > 0) & (sq_a >= epsilon) & (sq_b >= epsilon)


def _unfloored_exact(sq_a, sq_b, epsilon):
    """:func:`_unfloored` of exact squared norms, an oracle condition (three-valued on balls)."""
    return x.land(x.land(x.gt(sq_a, 0), x.gt(sq_b, 0)), x.land(x.ge(sq_a, epsilon), x.ge(sq_b, epsilon)))


def _rows(fn):
    """`fn` on rows ``(n, D)``: the vectors of any batch shape (none included) flattened."""
    def on_rows(y_true, y_pred, epsilon):
        shape, d = y_pred.shape[:-1], y_pred.shape[-1]
        return np.asarray(fn(y_true.reshape(-1, d), y_pred.reshape(-1, d), epsilon)).reshape(shape)
    return on_rows


@_rows
def _distance_ref(y_true, y_pred, epsilon):
    out = 1.0 - _similarity_ref(y_true, y_pred, epsilon)
    with np.errstate(all="ignore"):  # which side of the floor only: the scale is immaterial near it
        plain = _unfloored(np.sum(np.square(y_pred), -1), np.sum(np.square(y_true), -1), epsilon)
    plain &= np.all(np.isfinite(y_pred) & np.isfinite(y_true), -1)
    if np.any(plain):
        out[plain] = _cemb.reference(np.ones(int(plain.sum())), y_pred[plain], x2=y_true[plain], margin=0.0,
                                     eps=0.0)
    return out


@_rows
def _distance_oracle(y_true, y_pred, epsilon):
    out = np.asarray(1 - _similarity_oracle(y_true, y_pred, epsilon), dtype=object)
    plain = x.land(_unfloored_exact(x.fsum(y_pred * y_pred, -1), x.fsum(y_true * y_true, -1), epsilon),
                   x.all_of(x.land(x.isfinite(y_pred), x.isfinite(y_true)), -1))
    # rows that are (or on balls may be) unfloored: there both forms are the same number, and
    # where() keeps the union of the two for a row whose side of the floor is not decided
    maybe = np.asarray(np.frompyfunc(lambda v: v is None or bool(v), 1, 1)(plain), dtype=bool).reshape(plain.shape)
    if np.any(maybe):
        ones = x.lift(np.ones(int(maybe.sum())))
        cos = _cemb.oracle(ones, y_pred[maybe], x2=y_true[maybe], margin=0.0, eps=0.0)
        out[maybe] = x.where(plain[maybe], cos, out[maybe])
    return out


def _perceptron_ref(y_true, y_pred):
    return _ranking.reference(y_true, y_pred, x2=0.0, margin=0.0)


def _perceptron_oracle(y_true, y_pred):
    return _ranking.oracle(y_true, y_pred, x2=0.0, margin=0.0)


# --- the functions ------------------------------------------------------------------------------


@optax_function("mean_squared_error", _mse.reference, _mse.oracle, elementwise=True)
def squared_error(predictions, targets=None):
    """``(predictions - targets)^2`` elementwise (targets None: zeros). Predictions must be
    float; targets, where given, of predictions' shape (``ValueError``)."""
    return _difference("squared_error", predictions, targets, same_shape=True)


@optax_function("mean_squared_error", _half_ref, _half_oracle, elementwise=True)
def l2_loss(predictions, targets=None):
    """``(predictions - targets)^2 / 2`` elementwise: :func:`squared_error` halved."""
    return _difference("l2_loss", predictions, targets, same_shape=True)


@optax_function("huber", _huber.reference, _huber.oracle, elementwise=True)
def huber_loss(predictions, targets=None, *, delta: float = 1.0):
    """``e^2/2`` where ``|e| <= delta``, else ``delta (|e| - delta/2)``, ``e = predictions -
    targets``; targets broadcast (no shape check). Any finite delta: optax's ``min(|e|,
    delta)`` form gives ``delta (|e| - delta/2)`` everywhere for ``delta <= 0``."""
    if not math.isfinite(delta):
        raise ValueError(f"huber_loss: delta must be finite; got {delta!r}")
    pr = _difference("huber_loss", predictions, targets, same_shape=False)
    pr.params = {"delta": float(delta)}
    return pr


@optax_function("log_cosh", _log_cosh.reference, _log_cosh.oracle, elementwise=True)
def log_cosh(predictions, targets=None):
    """``log(cosh(predictions - targets))`` elementwise; targets broadcast."""
    return _difference("log_cosh", predictions, targets, same_shape=False)


def _cosine(fn, predictions, targets, epsilon, axis, where) -> Prepared:
    pr, rows = _vectors(fn, predictions, targets, axis, where)
    pr.params = {"epsilon": float(epsilon)}
    return _nan_rows(pr, rows, float(epsilon))


class _CosineFunction(OptaxFunction):
    """Cosine similarity or distance: elements outside `where` have a zero gradient (the
    masked sums pass them none)."""

    def vjp64(self, pr, cot):
        out = super().vjp64(pr, cot)
        (keep,) = pr.stage3["keep"]
        return {k: np.where(keep, v, 0.0) for k, v in out.items()}


def _cosine_function(loss, reference, oracle):
    return lambda prepare: _CosineFunction(prepare, loss, reference, oracle)


@_cosine_function("cosine_similarity", _similarity_ref, _similarity_oracle)
def cosine_similarity(predictions, targets, *, epsilon: float = 0.0, axis: Axis = -1, where=None):
    """``sum(a b) / (sqrt(max(||a||^2, epsilon)) sqrt(max(||b||^2, epsilon)))`` over `axis`
    (an int, a tuple or None: all), counting only the elements `where` is True. Epsilon
    floors the *squared* norm; with no positive floor a zero vector gives NaN, a row with
    no included element 0."""
    return _cosine("cosine_similarity", predictions, targets, epsilon, axis, where)


@_cosine_function("cosine_similarity", _distance_ref, _distance_oracle)
def cosine_distance(predictions, targets, *, epsilon: float = 0.0, axis: Axis = -1, where=None):
    """``1 - cosine_similarity(...)``, the same arguments; rounded once from the exact
    value (no cancellation of ``1 - cos`` for nearly parallel vectors)."""
    return _cosine("cosine_distance", predictions, targets, epsilon, axis, where)


@optax_function("smooth_labels", _smooth.reference, _smooth.oracle, elementwise=True)
def smooth_labels(labels, alpha, *, axis: Axis = -1, where=None):
    """``(1 - alpha) labels + alpha / K``: K the size of `axis` (an int, a tuple or None:
    all), or with `where` its number of True entries along `axis` (kept as an axis of size
    one, broadcast against the labels). Every label is smoothed, included or not; ``K = 0``
    gives ``alpha / 0``. Labels must be float; alpha a real number."""
    fn = "smooth_labels"
    y = as_jax(labels, "labels")
    fmt = float_format(fn, y, "labels")
    if not is_real(alpha):
        raise TypeError(f"{fn}: alpha must be a real number (a scalar); got {alpha!r}")
    if where is None:
        k = np.array(np.prod([y.shape[a] for a in normalize_axes(axis, y.ndim)]), np.float64)
    else:
        w = as_jax(where, "where")
        if w.dtype.kind not in "bi":
            raise TypeError(f"{fn}: where must be a bool array; got dtype {w.dtype}")
        k = np.sum(w, axis=normalize_axes(axis, w.ndim), keepdims=True).astype(np.float64)
    y, k = broadcast(fn, y, k)
    return Prepared(y, k, fmt, {"alpha": float(alpha)})


@optax_function("hinge", _hinge.reference, _hinge.oracle, elementwise=True)
def hinge_loss(predictor_outputs, targets):
    """``max(0, 1 - predictor_outputs targets)`` elementwise, targets in {-1, 1} as given
    (no 0/1 conversion: a 0 label gives 1); the two broadcast."""
    return _scores("hinge_loss", predictor_outputs, targets, same_shape=False)


@optax_function("margin_ranking", _perceptron_ref, _perceptron_oracle, elementwise=True)
def perceptron_loss(predictor_outputs, targets):
    """``max(0, -predictor_outputs targets)`` elementwise; equal shapes (``ValueError``)."""
    return _scores("perceptron_loss", predictor_outputs, targets, same_shape=True)


# --- reference gradients ------------------------------------------------------------------------


def _catalogue_grad(name: str):
    """The registered reference gradient of catalogue loss `name`."""
    from ..registry import get
    g = get(name).grad_ref
    if g is None:
        raise NotImplementedError(f"{name}: the catalogue has no reference gradient")
    return g


def _half_vjp(y_true, y_pred, cot):
    """``e^2 / 2``, ``e = p - t``: ``d/dp = cot e = -d/dt`` (``e`` rounded once, then one
    product: <= 1.5 ulp)."""
    with np.errstate(all="ignore"):
        g = np.asarray(cot, np.float64) * (np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))
    return {"y_pred": g, "y_true": -g}


def _perceptron_vjp(y_true, y_pred, cot):
    """``max(0, -s t)``: ``d/ds = -cot t H``, ``d/dt = -cot s H`` with ``H = 1`` above the
    kink, 0 below and 1/2 at ``s t = 0`` (``jnp.maximum`` splits a tie)."""
    t, s = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    with np.errstate(all="ignore"):
        m = -(s * t)
        h = np.where(m > 0, 1.0, np.where(m == 0, 0.5, np.where(np.isnan(m), np.nan, 0.0)))
        c = np.asarray(cot, np.float64) * h
        return {"y_pred": -(c * t), "y_true": -(c * s)}


def _similarity_vjp(y_true, y_pred, cot, epsilon):
    """Minus the catalogue's cosine-similarity gradient (its loss is ``-cos``)."""
    out = _catalogue_grad("cosine_similarity")(y_true, y_pred, cot, axis=-1, epsilon=_floor64(epsilon))
    return {k: -v for k, v in out.items()}


def _distance_vjp(y_true, y_pred, cot, epsilon):
    """``1 - cos``: the catalogue's cosine-similarity gradient (``d(-cos)``) as it is."""
    return dict(_catalogue_grad("cosine_similarity")(y_true, y_pred, cot, axis=-1, epsilon=_floor64(epsilon)))


l2_loss._vjp = _half_vjp
perceptron_loss._vjp = _perceptron_vjp
cosine_similarity._vjp = _similarity_vjp
cosine_distance._vjp = _distance_vjp
# smooth_labels(labels, alpha): the labels are the catalogue's y_true; its y_pred is the
# class count K, which optax derives from a shape or a mask (no gradient), not alpha
smooth_labels.roles = ("y_true", "")
