"""Dice loss. Spec: spec/losses/dice.md.

Over the axes `axis` (None: all of them, giving one scalar for the whole batch):
``1 - 2 sum(y p) / (sum(y) + sum(p) + epsilon)``, with `epsilon` only in the
denominator (``epsilon=None``: no smoothing, 0/0 gives NaN). A structured loss.
"""

from __future__ import annotations

import numpy as np

from ..numerics import (axes_last, normalize_axes, overlap_exponent, overlap_grad, overlap_quotient,
                        overlap_ratio, overlap_sums, sum2_parts)
from ..oracle import ops as x
from ..registry import (LossDef, Param, block_elements, check_float_array, map_blocks,
                        optional_nonneg_float, register)


def check_overlap_inputs(name: str, y_true, y_pred):
    """Float arrays of equal shape; rank 0 is allowed (the sums then have one term)."""
    p = check_float_array(y_pred, "y_pred")
    t = check_float_array(y_true, "y_true")
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true shape {t.shape} and y_pred shape {p.shape} must be equal")
    return t, p


def axis_param(v):
    """Param check of a reduction `axis`: None, an int or a tuple/list of ints."""
    def is_int(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)

    if v is None or is_int(v) or (isinstance(v, (tuple, list)) and all(is_int(a) for a in v)):
        return None
    return "expected None, an int or a tuple of ints"


AXIS = Param(None, "None (all axes), int or tuple of ints: the axes summed over", axis_param)
EPSILON = Param(1e-7, "None or float >= 0 (added to the denominator)", optional_nonneg_float)


def overlap_loss(y_true: np.ndarray, y_pred: np.ndarray, axis, a: float, b: float, c: float,
                 eps) -> np.ndarray:
    """:func:`lossref.numerics.overlap_ratio` over `axis` of arrays of any float format,
    widened to float64 a block at a time (the reference of Dice and Tversky).

    The arrays are viewed with the kept axes first and the reduced ones last (no copy) and
    cut into blocks of about :func:`lossref.registry.block_elements` elements along the
    leading axes. A block that holds whole groups gives their values; where a group spans
    several blocks (``axis=None``: one group for everything), each block gives the
    double-double partial sums of :func:`~lossref.numerics.overlap_sums`, and the partial
    pairs of a group are added with :func:`~lossref.numerics.sum2_parts` before the
    quotient is formed, so the error bound is the one of a single pass (the levels of the
    two sums add up to those of one). Blocks run on the catalogue's thread pool.
    """
    axes = normalize_axes(axis, y_pred.ndim)
    chunk = block_elements()
    if y_pred.size <= chunk:
        return overlap_ratio(y_true.astype(np.float64), y_pred.astype(np.float64), axes, a, b, c, eps)
    keep = [i for i in range(y_pred.ndim) if i not in axes]
    y, p = (np.transpose(v, keep + list(axes)) for v in (y_true, y_pred))  # views
    shape, n_keep = p.shape, len(keep)
    # the axes after `split` fit a block whole; `split` is cut in steps, the axes before it indexed
    split, inner = p.ndim - 1, 1
    while inner * shape[split] <= chunk:
        inner *= shape[split]
        split -= 1
    step = chunk // inner
    index = [lead + (slice(i, i + step),) for lead in np.ndindex(*shape[:split])
             for i in range(0, shape[split], step)]
    if split < n_keep:  # every block holds whole groups: its last len(axes) axes are reduced
        ndim = p.ndim - split
        tail = tuple(range(ndim - len(axes), ndim))
        parts = map_blocks(lambda yb, pb: overlap_ratio(yb, pb, tail, a, b, c, eps), y, p, index)
        return np.concatenate(parts, axis=0).reshape(shape[:n_keep])

    def partial(yb, pb):
        return overlap_sums(yb.reshape(1, -1), pb.reshape(1, -1))

    groups = shape[:n_keep]
    n_groups = int(np.prod(groups, dtype=np.int64))
    per_group = len(index) // n_groups  # the blocks of a group are consecutive in `index`
    parts = map_blocks(partial, y, p, index)
    sums = np.concatenate([q[0] for q in parts]).reshape(n_groups, per_group, 5, 2)
    finite = np.concatenate([q[1] for q in parts]).reshape(n_groups, per_group).all(axis=1)
    k = overlap_exponent(np.concatenate([q[2] for q in parts]).reshape(n_groups, per_group).max(axis=1))
    for g in np.flatnonzero(k):  # rare: values above 2**500, the group's sums again, scaled
        for j, ix in enumerate(index[g * per_group:(g + 1) * per_group]):
            sums[g, j] = overlap_sums(y[ix].astype(np.float64).reshape(1, -1),
                                      p[ix].astype(np.float64).reshape(1, -1), k[g:g + 1])[0][0]
    hi, lo = sum2_parts(sums[..., 0], axis=1, lo=sums[..., 1])
    total = np.stack([hi, lo], axis=-1).reshape(groups + (5, 2))
    return overlap_quotient(total, finite.reshape(groups), k.reshape(groups), a, b, c, eps)


def reference(y_true: np.ndarray, y_pred: np.ndarray, axis, epsilon) -> np.ndarray:
    """Per-group value in float64, from arrays of any float format."""
    # 1 - 2I/D cancels for a near-perfect prediction: the ratio is formed as
    # (eps + sum(p(1-y)) + sum(y(1-p))) / (sum(y) + sum(p) + eps) from exact pieces
    return overlap_loss(y_true, y_pred, axis, 1.0, 1.0, 2.0, epsilon)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, axis, epsilon) -> dict:
    """VJP of :func:`reference`: ``d/dp_k = 2 (I - y_k D) / D**2`` and
    ``d/dy_k = 2 (I - p_k D) / D**2`` per group (``I = sum(y p)``, ``D`` the denominator),
    the numerators from double-double sums (:func:`lossref.numerics.overlap_grad`)."""
    axes = normalize_axes(axis, np.ndim(y_pred))
    gy, gp = overlap_grad(y_true, y_pred, axes, 1.0, 1.0, 2.0, epsilon, cot)
    return {"y_pred": gp, "y_true": gy}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, axis, epsilon) -> np.ndarray:
    """The literal definition on exact values."""
    axes = normalize_axes(axis, y_pred.ndim)
    y, p = axes_last(y_true, axes), axes_last(y_pred, axes)
    intersection = x.fsum(y * p, -1)
    den = x.fsum(y, -1) + x.fsum(p, -1) + x.num(0 if epsilon is None else epsilon)
    return 1 - x.div(2 * intersection, den)


LOSS = register(LossDef(
    name="dice",
    summary="1 - 2 sum(y p) / (sum(y) + sum(p) + eps) over axis (None: everything)",
    stage2="structured",
    params={"axis": AXIS, "epsilon": EPSILON},
    per_sample_ref=reference,
    per_sample_exact=oracle,
    check_inputs=check_overlap_inputs,
    native=True,
    grad_ref=grad_reference,
))
