"""Mirror of ``torch.nn``'s losses: the modules here, the functions in
:mod:`lossref.torch.nn.functional`."""

from . import functional
from .modules import (BCELoss, BCEWithLogitsLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                      PoissonNLLLoss, SmoothL1Loss)

__all__ = ["functional", "L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "PoissonNLLLoss"]
from ._classification_modules import *  # noqa: E402,F401,F403
from ._classification_modules import __all__ as _classification_modules  # noqa: E402
__all__ += _classification_modules
