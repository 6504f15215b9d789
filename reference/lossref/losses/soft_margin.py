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
    Ziv's test would accept the 0 that follows."""
    return x.log1p(x.exp(-(y_true * y_pred)))


LOSS = register(LossDef(
    name="soft_margin",
    summary="log(1 + exp(-y x)), mean over the last axis (y in {-1, +1} by convention)",
    stage2="mean",
    elementwise_ref=reference,
    elementwise_exact=oracle,
))
