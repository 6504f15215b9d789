"""Mirror of ``torch.nn``'s losses: the modules here, the functions in
:mod:`lossref.torch.nn.functional`."""

from . import functional
from ._classification_modules import (CrossEntropyLoss, HingeEmbeddingLoss, MultiLabelMarginLoss,
                                      MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss,
                                      SoftMarginLoss)
from ._cosine_embedding import CosineEmbeddingLoss
from ._ctc_modules import CTCLoss
from ._gaussian import GaussianNLLLoss
from ._ranking import MarginRankingLoss
from ._triplet import TripletMarginLoss, TripletMarginWithDistanceLoss
from .modules import (BCELoss, BCEWithLogitsLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                      PoissonNLLLoss, SmoothL1Loss)

__all__ = ["functional", "L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "PoissonNLLLoss", "NLLLoss", "CrossEntropyLoss",
           "MultiLabelSoftMarginLoss", "SoftMarginLoss", "HingeEmbeddingLoss", "MultiMarginLoss",
           "MultiLabelMarginLoss", "CTCLoss", "GaussianNLLLoss", "MarginRankingLoss", "CosineEmbeddingLoss",
           "TripletMarginLoss", "TripletMarginWithDistanceLoss"]
