"""Soft margin loss. Spec: spec/losses/soft_margin.md.

``log(1 + exp(-y x))`` with ``y = y_true`` (±1 by convention, any real value allowed)
and ``x = y_pred``, mean over the last axis. PyTorch: ``torch.nn.functional.soft_margin_loss``.
"""

from __future__ import annotations

import numpy as np

from ..numerics import sigmoid, softplus, two_product
from ..oracle import ops as x
from ..registry import LossDef, register


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Elementwise ``softplus(-y x)`` in float64.

    For ``y x`` far below 0 the result is about ``exp(-y x)``, whose relative error is
    ``|y x|`` times that of the product: the product is therefore taken exactly,
    ``-y x = h + l``, and ``l`` enters to first order, ``softplus'(h) = sigmoid(h)``.
    """
    h, low = two_product(-y_true, y_pred)  # low is 0 for products of float32 values: exact
    out = softplus(h)
    if np.any(low):
        out += sigmoid(h) * low
    return out


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The literal definition on exact values, ``log(1 + t)`` as ``log1p(t)``: for ``y x``
    far above 0, ``1 + exp(-y x)`` would round to 1 at every working precision, and
    Ziv's test would accept the 0 that follows.

    Differentiated, ``d/dt log1p(e^t)`` is given as the one factor ``sigmoid(t)``: the chain
    rule through log1p and exp forms ``e^t / (1 + e^t)``, ``inf / inf`` at an infinite ``t``."""
    t = -(y_true * y_pred)
    v = x.values(t)
    return x.attach(x.log1p(x.exp(v)), [(t, x.sigmoid(v))])


def grad_reference(y_true: np.ndarray, y_pred: np.ndarray, cot: np.ndarray) -> dict:
    """VJP of :func:`reference`: ``d/dx = -y s``, ``d/dy = -x s`` with ``s = sigmoid(-y x)``.

    ``-y x = h + l`` exactly; ``sigmoid(h + l) = sigmoid(h) (1 + sigmoid(-h) l)`` to first
    order: for ``h`` far below 0 the relative error of a rounded product, ``|h| u``, would
    otherwise pass into ``s``.
    """
    h, low = two_product(-y_true, y_pred)
    s = sigmoid(h)
    if np.any(low):
        s = s * (1.0 + sigmoid(-h) * low)
    return {"y_pred": -(y_true * cot) * s, "y_true": -(y_pred * cot) * s}


LOSS = register(LossDef(
    name="soft_margin",
    summary="log(1 + exp(-y x)), mean over the last axis (y in {-1, +1} by convention)",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
    grad_ref=grad_reference,
))
