"""The PyTorch dialect: ``lossref.torch.nn.functional`` mirrors the loss functions of
``torch.nn.functional`` and ``lossref.torch.nn`` its loss modules (PyTorch 2.13).

NumPy arrays in and out; importing the dialect does not import torch.
"""

from . import nn

__all__ = ["nn"]
