"""The TensorFlow dialect: :mod:`lossref.tf.nn` mirrors the loss primitives of ``tf.nn``
(TensorFlow 2.21). NumPy arrays in and out; importing the dialect does not import
TensorFlow.

>>> from lossref.tf import nn
>>> sorted(nn.__all__)[:3]
['compute_average_loss', 'ctc_loss', 'l2_loss']
"""

from . import nn
from ._ctc import SparseLabels

__all__ = ["nn", "SparseLabels"]
