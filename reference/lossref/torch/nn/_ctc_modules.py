"""``torch.nn.CTCLoss`` (:mod:`._ctc`), with the constructor arguments and defaults of
``torch.nn`` 2.13."""

from __future__ import annotations

import numpy as np

from ...oracle import Exact
from . import _ctc as F
from .modules import _Loss

__all__ = ["CTCLoss"]


class CTCLoss(_Loss):
    """``torch.nn.CTCLoss``: called with ``(log_probs, targets, input_lengths, target_lengths)``."""

    _function = F.ctc_loss
    _settings = ("blank", "zero_infinity")

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> np.ndarray:
        """The loss with this module's settings."""
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, **self._keywords())

    def exact(self, log_probs, targets, input_lengths, target_lengths) -> Exact:
        """The exact twin of :meth:`forward`."""
        return F.ctc_loss.exact(log_probs, targets, input_lengths, target_lengths, **self._keywords())
