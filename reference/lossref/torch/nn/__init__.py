"""Mirror of ``torch.nn``'s losses: the modules here, the functions in
:mod:`lossref.torch.nn.functional`."""

from . import functional
from .modules import (BCELoss, BCEWithLogitsLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                      PoissonNLLLoss, SmoothL1Loss)

__all__ = ["functional", "L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "PoissonNLLLoss"]
