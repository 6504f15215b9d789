"""Modules of the classification losses (:mod:`._classification`), with the constructor
arguments and defaults of ``torch.nn`` 2.13."""

from __future__ import annotations

from . import _classification as F
from .modules import _Loss

__all__ = ["NLLLoss", "CrossEntropyLoss", "MultiLabelSoftMarginLoss", "SoftMarginLoss",
           "HingeEmbeddingLoss", "MultiMarginLoss", "MultiLabelMarginLoss"]


class NLLLoss(_Loss):
    """``torch.nn.NLLLoss``: input holds log-probabilities, class dimension 1."""

    _function = F.nll_loss
    _settings = ("weight", "ignore_index")

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight, self.ignore_index = weight, ignore_index


class CrossEntropyLoss(_Loss):
    """``torch.nn.CrossEntropyLoss``: class-index or class-probability targets."""

    _function = F.cross_entropy
    _settings = ("weight", "ignore_index", "label_smoothing")

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing


class MultiLabelSoftMarginLoss(_Loss):
    """``torch.nn.MultiLabelSoftMarginLoss``."""

    _function = F.multilabel_soft_margin_loss
    _settings = ("weight",)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight


class SoftMarginLoss(_Loss):
    """``torch.nn.SoftMarginLoss``."""

    _function = F.soft_margin_loss

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)


class HingeEmbeddingLoss(_Loss):
    """``torch.nn.HingeEmbeddingLoss``."""

    _function = F.hinge_embedding_loss
    _settings = ("margin",)

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class MultiMarginLoss(_Loss):
    """``torch.nn.MultiMarginLoss``."""

    _function = F.multi_margin_loss
    _settings = ("p", "margin", "weight")

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.p, self.margin, self.weight = p, margin, weight


class MultiLabelMarginLoss(_Loss):
    """``torch.nn.MultiLabelMarginLoss``."""

    _function = F.multilabel_margin_loss

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
