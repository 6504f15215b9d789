"""Hinge embedding loss. Spec: spec/losses/hinge_embedding.md.

``[y != 1] max(0, margin - x) + [y != -1] x`` with ``y = y_true`` and ``x = y_pred``,
mean over the last axis: ``x`` for ``y = 1``, ``max(0, margin - x)`` for ``y = -1``,
and both terms for any other label, as PyTorch computes it
(``torch.nn.functional.hinge_embedding_loss``).
"""

from __future__ import annotations

import numpy as np

from ..numerics import clip_share
from ..oracle import ops as x
from ..registry import LossDef, Param, finite_number, register


def reference(y_true: np.ndarray, y_pred: np.ndarray, margin: float) -> np.ndarray:
    """Elementwise value in float64.

    Both terms together are ``max(0, m - x) + x = max(m, x)`` exactly, which keeps the
    sum from cancelling for ``x << -m``; only ``x = -inf`` differs (``inf - inf``: NaN).
    """
    m = float(margin)
    push = np.maximum(m - y_pred, 0.0)
    both = np.where(y_pred == -np.inf, np.nan, np.maximum(m, y_pred))
    return np.where(y_true == 1, y_pred, np.where(y_true == -1, push, both))


def oracle(y_true: np.ndarray, y_pred: np.ndarray, margin: float) -> np.ndarray:
    """The definition on exact values, term by term (a NaN label gets both terms).

    The label tests are :func:`~lossref.oracle.ops.eq`: on balls an infinite or NaN label
    is a NaN ball, for which a Python ``!=`` is False (Arb answers only what it proves),
    which would drop both terms; ``eq`` leaves it undecided, so the value is the union of
    the branches and the mpmath path decides it.
    """
    push = x.where(x.lnot(x.eq(y_true, 1)), x.maximum(x.num(margin) - y_pred, 0), 0)
    return push + x.where(x.lnot(x.eq(y_true, -1)), y_pred, 0)


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray, margin: float,
                   tie: float = 0.5) -> dict:
    """VJP of :func:`reference` in ``x = y_pred``: 1 for ``y = 1``; ``d max(0, margin - x) / dx``
    = -1 for ``x < margin``, 0 above, ``-tie`` at ``x = margin`` for ``y = -1``; their sum
    (``d max(margin, x) / dx``) for other labels. `tie`: 1/2 (the tie of ``max``); PyTorch's
    ``clamp_min`` passes the gradient at its bound (``tie=1``). The labels select branches:
    no gradient in ``y_true``. NaN where the value is NaN."""
    x_ = y_pred
    push = -clip_share(float(margin) - x_, 0.0, None, tie)
    g = np.where(y_true == 1, 1.0, np.where(y_true == -1, push, 1.0 + push))
    nan = np.isnan(x_) | ((x_ == -np.inf) & (y_true != 1) & (y_true != -1))
    return {"y_pred": np.where(nan, np.nan, g) * cot}


LOSS = register(LossDef(
    name="hinge_embedding",
    summary="x where y = 1, max(0, margin - x) where y = -1 (both terms otherwise), "
            "mean over the last axis",
    stage2="mean",
    params={"margin": Param(1.0, "finite number", finite_number)},
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
