"""Mirror of the loss modules of ``torch.nn`` (PyTorch 2.13): same constructor arguments and
defaults; ``module(input, target)`` calls the functional form with the module's settings
and ``module.exact(input, target)`` its exact twin.

As in torch, the legacy ``size_average``/``reduce`` arguments are mapped to ``reduction``
at construction, and an invalid ``reduction`` is reported at the call.
"""

from __future__ import annotations

import numpy as np

from ...oracle import Exact
from ...reduction import torch_reduction
from . import functional as F

__all__ = ["L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss",
           "KLDivLoss", "PoissonNLLLoss"]


class _Loss:
    """``torch.nn.modules.loss._Loss``: the reduction, legacy arguments mapped."""

    _function = None  # the functional form: a lossref.torch.nn.functional function
    _settings: tuple = ()  # attributes passed to it by keyword, besides the reduction

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        legacy = size_average is not None or reduce is not None
        self.reduction = torch_reduction(reduction, size_average, reduce) if legacy else reduction

    def _keywords(self) -> dict:
        return {"reduction": self.reduction, **{k: getattr(self, k) for k in self._settings}}

    def forward(self, input, target) -> np.ndarray:
        """The loss of `input` against `target` with this module's settings."""
        return type(self)._function(input, target, **self._keywords())

    def exact(self, input, target) -> Exact:
        """The exact twin of :meth:`forward`."""
        return type(self)._function.exact(input, target, **self._keywords())

    def __call__(self, *args, **kwargs) -> np.ndarray:
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _PairLoss(_Loss):
    """The modules of losses of a pair of inputs and a label (``MarginRankingLoss``,
    ``CosineEmbeddingLoss``): ``module(input1, input2, target)``, one setting, the margin."""

    _settings = ("margin",)

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target) -> np.ndarray:
        """The loss of the pairs (`input1`, `input2`) with labels `target`."""
        return type(self)._function(input1, input2, target, **self._keywords())

    def exact(self, input1, input2, target) -> Exact:
        """The exact twin of :meth:`forward`."""
        return type(self)._function.exact(input1, input2, target, **self._keywords())


class L1Loss(_Loss):
    """``torch.nn.L1Loss``."""

    _function = F.l1_loss

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)


class MSELoss(_Loss):
    """``torch.nn.MSELoss``."""

    _function = F.mse_loss

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)


class HuberLoss(_Loss):
    """``torch.nn.HuberLoss`` (no ``weight``, unlike the function)."""

    _function = F.huber_loss
    _settings = ("delta",)

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta


class SmoothL1Loss(_Loss):
    """``torch.nn.SmoothL1Loss``."""

    _function = F.smooth_l1_loss
    _settings = ("beta",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta


class BCELoss(_Loss):
    """``torch.nn.BCELoss``; `weight` broadcasts to the target's shape."""

    _function = F.binary_cross_entropy
    _settings = ("weight",)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss``; `weight` and `pos_weight` broadcast to the target."""

    _function = F.binary_cross_entropy_with_logits
    _settings = ("weight", "pos_weight")

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight, self.pos_weight = weight, pos_weight


class KLDivLoss(_Loss):
    """``torch.nn.KLDivLoss``: input is ``log q``; ``reduction='batchmean'`` is the KL divergence."""

    _function = F.kl_div
    _settings = ("log_target",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target


class PoissonNLLLoss(_Loss):
    """``torch.nn.PoissonNLLLoss``; its call names the input ``log_input``, as torch's ``forward``."""

    _function = F.poisson_nll_loss
    _settings = ("log_input", "full", "eps")

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None,
                 eps: float = 1e-08, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target) -> np.ndarray:
        """The loss of `log_input` (the input, whatever this module's ``log_input`` says)."""
        return F.poisson_nll_loss(log_input, target, **self._keywords())

    def exact(self, log_input, target) -> Exact:
        """The exact twin of :meth:`forward`."""
        return F.poisson_nll_loss.exact(log_input, target, **self._keywords())
