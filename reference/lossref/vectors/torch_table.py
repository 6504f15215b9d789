"""The torch target table: which ``lossref.torch.nn.functional`` functions get golden
vectors, and how their cases are drawn and evaluated.

One entry per function (:data:`TORCH_TABLE`); the entry is the whole recipe:

* ``module``: the ``torch.nn`` class (provenance ``class``: ``torch.nn.MSELoss``);
* ``kind``: the input kind of :mod:`lossref.vectors.domains` that draws ``(target,
  input)`` (``real``, ``binary`` probabilities, ``binary-logits``, ``log-distribution``
  for ``kl_div``, ``poisson-nll``, ``class-logits``/``class-log-probs`` with integer
  targets, ``multilabel-logits``, ``soft-margin``, ``hinge-embedding``, ``margin-index``,
  ``label-lists``, ``margin-ranking``, ``cosine-embedding``, ``triplet``, ...);
* ``params``: each keyword parameter that changes the math with the values to draw, the
  torch default first (the legacy ``size_average``/``reduce`` are never drawn);
* ``arrays``: the extra tensor arguments (``weight``, ``pos_weight``) with the shape rule
  they are drawn with (:data:`ARRAY_RULES`); each is an input of the case, an array or
  ``null``;
* ``reductions``: the ``reduction`` values, ``'none'`` (the unreduced output) first;
* ``class_dim``: where torch wants the class axis (1 for ``cross_entropy``/``nll_loss``):
  the drawn class axis (last) is moved there (a ``class`` array has that axis's length);
* ``integer``: inputs that torch takes as ``int64`` (class indices), stored as floats;
  ``probability_target``: a target of the input's shape is float (class probabilities
  of ``cross_entropy``), see :func:`integer_inputs`;
* ``specials``: which special values a ``special`` case writes in (``"unit"``: only
  those in [0, 1], only into the input);
* ``names``: the names of the two positional tensors, the drawn input and target
  (``input, target``; ``ctc_loss``: ``log_probs, targets``; the losses of three tensors:
  the first two, e.g. ``input1, input2``, the third an array of rule ``kind``); they are
  the case's keys;
* ``dtypes``: the formats that get files (all four unless torch defines the function
  for fewer: ``ctc_loss`` has float32 and float64 kernels only).

Only functions the dialect has get vectors, and every function of the dialect must have
an entry: :func:`missing_entries` names the functions of
``lossref.torch.nn.functional.__all__`` without one, and ``lossref golden --dialect
torch`` refuses to run the whole dialect while there is any (nothing is skipped silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

__all__ = ["TorchEntry", "TORCH_TABLE", "TORCH_REDUCTIONS", "ARRAY_RULES", "FunctionTarget", "TorchTarget",
           "FUNCTION_DIALECTS", "table", "function_targets", "torch_targets", "missing_entries",
           "integer_inputs"]

#: Every reduction name a torch file may list.
TORCH_REDUCTIONS = ("none", "mean", "sum", "batchmean")
#: Shape rules of extra array arguments: ``input`` (the input's shape), ``broadcast`` (the
#: input's shape, its last axis, or a scalar), ``last`` (the last axis, e.g. a per-class
#: ``pos_weight``), ``class`` (torch's class axis, ``(C,)``: dimension 1 of an input of
#: rank 2 or more, else its only axis), ``variance`` (``gaussian_nll_loss``'s var: the
#: input's shape, ``input.shape[:-1]`` or that shape with one dimension 1; never absent),
#: ``kind`` (drawn by the input kind with the input and target, e.g. ``ctc_loss``'s
#: lengths, which must fit the targets; never absent).
ARRAY_RULES = ("input", "broadcast", "last", "class", "variance", "kind")


@dataclass(frozen=True)
class TorchEntry:
    """How one function's cases are drawn (see the module docstring); optax's functions
    use it too (no ``module``: optax has no classes; reductions ``("none",)``)."""

    module: Optional[str]
    kind: str
    params: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    arrays: Tuple[Tuple[str, str], ...] = ()
    reductions: Tuple[str, ...] = ("none", "mean", "sum")
    class_dim: Optional[int] = None
    integer: Tuple[str, ...] = ()
    #: special cases: ``"any"`` writes every IEEE special into input and target;
    #: ``"unit"`` only those in [0, 1] (±0, the least subnormal and normal, 1) and only
    #: into the input, for functions that refuse anything else (binary_cross_entropy)
    specials: str = "any"
    #: a target of the input's shape holds class probabilities, not indices: it stays a
    #: float tensor (cross_entropy); see :func:`integer_inputs`
    probability_target: bool = False
    #: the names of the two positional tensors: the drawn input, then the drawn target
    names: Tuple[str, str] = ("input", "target")
    #: the formats that get files (torch defines ctc_loss for float32/float64 only)
    dtypes: Tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
    #: the framework's positional order of the named tensors where it is not `names`'s
    #: (``tf.nn``: labels first, then logits); `names` may hold one name (``l2_loss(t)``:
    #: the drawn input alone)
    order: Optional[Tuple[str, ...]] = None

    @property
    def positional(self) -> Tuple[str, ...]:
        """The tensors passed by position, in the framework's order."""
        return self.order or self.names


#: Function name -> entry. The list of torch functions with golden vectors.
TORCH_TABLE: Dict[str, TorchEntry] = {
    "l1_loss": TorchEntry("L1Loss", "real", arrays=(("weight", "input"),)),
    "mse_loss": TorchEntry("MSELoss", "real", arrays=(("weight", "input"),)),
    "huber_loss": TorchEntry("HuberLoss", "real", params=(("delta", (1.0, 0.5, 0.001, 20.0)),),
                             arrays=(("weight", "input"),)),
    "smooth_l1_loss": TorchEntry("SmoothL1Loss", "real", params=(("beta", (1.0, 0.5, 0.0, 20.0)),)),
    "binary_cross_entropy": TorchEntry("BCELoss", "binary", arrays=(("weight", "broadcast"),),
                                       specials="unit"),
    "binary_cross_entropy_with_logits": TorchEntry(
        "BCEWithLogitsLoss", "binary-logits", arrays=(("weight", "broadcast"), ("pos_weight", "last"))),
    "kl_div": TorchEntry("KLDivLoss", "log-distribution", params=(("log_target", (False, True)),),
                         reductions=("none", "mean", "sum", "batchmean")),
    "poisson_nll_loss": TorchEntry("PoissonNLLLoss", "poisson-nll",
                                   params=(("log_input", (True, False)), ("full", (False, True)),
                                           ("eps", (1e-8, 1e-3)))),
    # classification (torch/nn/_classification.py); an ignore_index of 0 or 1 lies inside [0, C)
    "nll_loss": TorchEntry("NLLLoss", "class-log-probs", params=(("ignore_index", (-100, 0, 1)),),
                           arrays=(("weight", "class"),), class_dim=1, integer=("target",)),
    "cross_entropy": TorchEntry("CrossEntropyLoss", "class-logits",
                                params=(("ignore_index", (-100, 0, 1)),
                                        ("label_smoothing", (0.0, 0.1, 0.5, 1.0))),
                                arrays=(("weight", "class"),), class_dim=1, integer=("target",),
                                probability_target=True),
    "multilabel_soft_margin_loss": TorchEntry("MultiLabelSoftMarginLoss", "multilabel-logits",
                                              arrays=(("weight", "broadcast"),)),
    "soft_margin_loss": TorchEntry("SoftMarginLoss", "soft-margin"),
    "hinge_embedding_loss": TorchEntry("HingeEmbeddingLoss", "hinge-embedding",
                                       params=(("margin", (1.0, 0.5, 0.0, 2.0)),)),
    "multi_margin_loss": TorchEntry("MultiMarginLoss", "margin-index",
                                    params=(("p", (1, 2)), ("margin", (1.0, 0.5, 0.0, 2.5))),
                                    arrays=(("weight", "class"),), integer=("target",)),
    "multilabel_margin_loss": TorchEntry("MultiLabelMarginLoss", "label-lists", integer=("target",)),
    # var: a tensor of one of the shapes torch 2.13 accepts (torch/nn/_gaussian.py), never absent
    "gaussian_nll_loss": TorchEntry("GaussianNLLLoss", "real",
                                    params=(("full", (False, True)), ("eps", (1e-06, 1e-3, 0.0))),
                                    arrays=(("var", "variance"),)),
    # log_probs (T, N, C) time-major, targets padded (N, S), the lengths drawn with them by
    # the kind (they must fit the targets); a blank of 1 or 4 is C - 1 in about half the cases
    "ctc_loss": TorchEntry("CTCLoss", "ctc-log-probs",
                           params=(("blank", (0, 1, 4)), ("zero_infinity", (False, True))),
                           arrays=(("input_lengths", "kind"), ("target_lengths", "kind")),
                           integer=("targets", "input_lengths", "target_lengths"),
                           names=("log_probs", "targets"), dtypes=("float32", "float64")),
    # three tensors: the first two positional ones are the drawn pair, the third (the target
    # or the negative) is drawn with them by the kind and passed by name
    "margin_ranking_loss": TorchEntry("MarginRankingLoss", "margin-ranking",
                                      params=(("margin", (0.0, 0.5, -1.0, 2.0)),),
                                      arrays=(("target", "kind"),), names=("input1", "input2")),
    "cosine_embedding_loss": TorchEntry("CosineEmbeddingLoss", "cosine-embedding",
                                        params=(("margin", (0.0, 0.5, -0.3)),),
                                        arrays=(("target", "kind"),), names=("input1", "input2")),
    "triplet_margin_loss": TorchEntry("TripletMarginLoss", "triplet",
                                      params=(("margin", (1.0, 0.5, 2.0)), ("p", (2.0, 1.0, 3.0)),
                                              ("eps", (1e-06, 0.0, 1e-3)), ("swap", (False, True))),
                                      arrays=(("negative", "kind"),), names=("anchor", "positive")),
    # the default distance only (a user callable cannot be evaluated exactly); torch 2.13
    # refuses a margin <= 0 in both triplet functions
    "triplet_margin_with_distance_loss": TorchEntry(
        "TripletMarginWithDistanceLoss", "triplet", params=(("margin", (1.0, 0.5, 2.0)), ("swap", (False, True))),
        arrays=(("negative", "kind"),), names=("anchor", "positive")),
}


def integer_inputs(entry: TorchEntry, inputs: Mapping[str, Any]) -> Tuple[str, ...]:
    """The inputs of one case that torch takes as ``int64``: the entry's ``integer``, less
    a ``target`` of the input's shape where the entry has ``probability_target`` (torch's
    own rule for ``cross_entropy``). `inputs` maps names to arrays or to their encodings
    (``{"shape": ..., "hex": ...}``), or to None."""
    def shape(v):
        return None if v is None else tuple(v["shape"] if isinstance(v, Mapping) else np.shape(v))
    out = entry.integer
    i, t = (entry.names + (None,))[:2]
    if entry.probability_target and shape(inputs.get(t)) == shape(inputs.get(i)):
        out = tuple(n for n in out if n != t)
    return out


@dataclass(frozen=True)
class FunctionTarget:
    """One function of a functional dialect (torch, optax) with its table entry."""

    loss: str
    function: Any
    entry: TorchEntry
    dialect: str = "torch"

    @property
    def params(self) -> Tuple[Tuple[str, Any], ...]:
        """(name, default) of the drawn parameters, in table order."""
        return tuple((n, v[0]) for n, v in self.entry.params)

    @property
    def reductions(self) -> Tuple[str, ...]:
        return self.entry.reductions

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def arrays(self) -> Tuple[str, ...]:
        return tuple(n for n, _ in self.entry.arrays)

    @property
    def input_names(self) -> Tuple[str, ...]:
        """The keys of a case's ``inputs``: input, target (the entry's ``names``), then the
        extra arrays."""
        return tuple(self.entry.names) + self.arrays

    @property
    def optional_inputs(self) -> Tuple[str, ...]:
        return self.arrays

    @property
    def function_name(self) -> str:
        return self.loss

    @property
    def class_name(self) -> Optional[str]:
        return self.entry.module

    @property
    def function_qualname(self) -> str:
        return f"{_QUALNAMES[self.dialect][0]}.{self.loss}"

    @property
    def class_qualname(self) -> Optional[str]:
        return f"{_QUALNAMES[self.dialect][1]}.{self.entry.module}" if self.entry.module else None

    def defaults(self) -> Dict[str, Any]:
        return dict(self.params)

    def values(self, name: str, default: Any) -> Tuple[Any, ...]:
        return dict(self.entry.params)[name]


#: the name the functions of the first PR keep
TorchTarget = FunctionTarget

#: dialects whose losses are functions described by a table like :data:`TORCH_TABLE`
FUNCTION_DIALECTS = ("torch", "optax", "tf")
#: where each dialect's functions and classes live in the framework itself
_QUALNAMES = {"torch": ("torch.nn.functional", "torch.nn"), "optax": ("optax.losses", None),
              "tf": ("tf.nn", None)}


def table(dialect: str) -> Dict[str, TorchEntry]:
    """The function table of a functional dialect (``KeyError`` for another)."""
    if dialect == "torch":
        return TORCH_TABLE
    if dialect == "optax":
        from .optax_table import OPTAX_TABLE
        return OPTAX_TABLE
    if dialect == "tf":
        from .tf_table import TF_TABLE
        return TF_TABLE
    raise KeyError(f"{dialect!r} is not a functional dialect; those are: {', '.join(FUNCTION_DIALECTS)}")


def _namespace(dialect: str):
    if dialect == "optax":
        from ..optax import losses
        return losses
    if dialect == "tf":
        from ..tf import nn
        return nn
    from ..torch.nn import functional
    return functional


@lru_cache(maxsize=None)
def function_targets(dialect: str) -> Dict[str, FunctionTarget]:
    """Function name -> :class:`FunctionTarget` for every entry of `dialect`'s table the
    dialect has."""
    F = _namespace(dialect)
    return {name: FunctionTarget(name, getattr(F, name), entry, dialect)
            for name, entry in sorted(table(dialect).items()) if hasattr(F, name)}


def torch_targets() -> Dict[str, FunctionTarget]:
    """:func:`function_targets` of torch."""
    return function_targets("torch")


def missing_entries(dialect: str = "torch") -> List[str]:
    """Functions of the dialect's ``__all__`` without a table entry."""
    F = _namespace(dialect)
    skip = {}
    if dialect == "optax":
        from .optax_table import NO_VECTORS as skip
    elif dialect == "tf":
        from .tf_table import NO_VECTORS as skip
    return sorted(n for n in getattr(F, "__all__", ()) if n not in table(dialect) and n not in skip)
