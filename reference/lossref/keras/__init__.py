"""The Keras 3 dialect: ``lossref.keras.losses`` mirrors ``keras.losses``."""

from . import losses

__all__ = ["losses"]
