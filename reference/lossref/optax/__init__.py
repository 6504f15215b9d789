"""The Optax dialect: :mod:`lossref.optax.losses` mirrors ``optax.losses`` (0.2.8).

>>> from lossref.optax import losses
>>> sorted(losses.__all__)[:3]
['binary_dice_loss', 'convex_kl_divergence', 'cosine_distance']
"""

from . import losses
from .losses import *  # noqa: F401,F403  (optax exposes its losses at optax.losses and optax)

__all__ = ["losses"] + list(losses.__all__)
