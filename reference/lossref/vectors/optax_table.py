"""The optax target table: which ``lossref.optax.losses`` functions get golden vectors, and
how their cases are drawn (the entry format of :mod:`lossref.vectors.torch_table`).

Optax returns per-example values and has no ``reduction``: every entry has the one
output ``none`` (the function's value), no ``module`` (optax has no loss classes), and
names its two positional tensors as optax does (``predictions, targets``; ``logits,
labels``; ...). Integer labels are stored as floats and passed as int64. The ``where``
masks and ``axis`` arguments are not drawn (their defaults: no mask, the last axis); the
tests of the dialect cover them against optax.

:data:`NO_VECTORS` names the functions of the dialect without files, each with its
reason; every other function has an entry (:func:`~lossref.vectors.torch_table.missing_entries`).
"""

from __future__ import annotations

from typing import Dict

from .torch_table import TorchEntry

__all__ = ["OPTAX_TABLE", "NO_VECTORS"]


def _e(kind: str, names=("predictions", "targets"), **kw) -> TorchEntry:
    return TorchEntry(None, kind, names=names, reductions=("none",), **kw)


_LOGITS = ("logits", "labels")

#: Function name -> entry.
OPTAX_TABLE: Dict[str, TorchEntry] = {
    # regression
    "l2_loss": _e("real"),
    "squared_error": _e("real"),
    "huber_loss": _e("real", params=(("delta", (1.0, 0.5, 0.001, 20.0)),)),
    "log_cosh": _e("real"),
    "cosine_similarity": _e("similarity", params=(("epsilon", (0.0, 1e-8)),)),
    "cosine_distance": _e("similarity", params=(("epsilon", (0.0, 1e-8)),)),
    "hinge_loss": _e("soft-margin", names=("predictor_outputs", "targets")),
    "perceptron_loss": _e("soft-margin", names=("predictor_outputs", "targets")),
    # classification (the class axis last)
    "sigmoid_binary_cross_entropy": _e("binary-logits", names=_LOGITS),
    "sigmoid_focal_loss": _e("binary-logits", names=_LOGITS,
                             params=(("alpha", (None, 0.25, 0.75)), ("gamma", (2.0, 0.0, 0.5, 5.0)))),
    "softmax_cross_entropy": _e("softmax-logits", names=_LOGITS),
    "safe_softmax_cross_entropy": _e("softmax-logits", names=_LOGITS),
    "softmax_cross_entropy_with_integer_labels": _e("index-logits", names=_LOGITS, integer=("labels",)),
    "poly_loss_cross_entropy": _e("softmax-logits", names=_LOGITS, params=(("epsilon", (2.0, 1.0, -1.0)),)),
    "kl_divergence": _e("log-distribution", names=("log_predictions", "targets")),
    "kl_divergence_with_log_targets": _e("log-distribution-log", names=("log_predictions", "log_targets")),
    "convex_kl_divergence": _e("log-distribution", names=("log_predictions", "targets")),
    "generalized_kl_divergence": _e("log-distribution", names=("log_predictions", "targets")),
    # margins, sparsemax, ranking, metric learning
    "multiclass_hinge_loss": _e("margin-index", names=("scores", "labels"), integer=("labels",)),
    "multiclass_perceptron_loss": _e("margin-index", names=("scores", "labels"), integer=("labels",)),
    "multiclass_sparsemax_loss": _e("margin-index", names=("scores", "labels"), integer=("labels",)),
    "sparsemax_loss": _e("binary-logits", names=_LOGITS),
    "ranking_softmax_loss": _e("softmax-logits", names=_LOGITS),
    "triplet_margin_loss": _e("triplet", names=("anchors", "positives"), arrays=(("negatives", "kind"),),
                              params=(("norm_degree", (2, 1, 3)), ("margin", (1.0, 0.5, 0.0)),
                                      ("eps", (1e-06, 0.0, 1e-3)))),
    "ntxent": _e("ntxent", names=("embeddings", "labels"), integer=("labels",),
                 params=(("temperature", (0.07, 1.0, 0.5)),)),
    # sequences and segmentation
    "ctc_loss": _e("ctc-paddings", names=("logits", "logit_paddings"),
                   arrays=(("labels", "kind"), ("label_paddings", "kind")), integer=("labels",),
                   params=(("blank_id", (0, 1, 4)), ("log_epsilon", (-100000.0, -30.0)))),
    # logits with the class axis last (apply_softmax=False wants probability rows, and
    # binary_dice_loss's apply_sigmoid=False all ones: both covered by the dialect's tests)
    "dice_loss": _e("softmax-logits", params=(("smooth", (1.0, 0.0, 1e-5)),)),
    "binary_dice_loss": _e("binary-logits", params=(("smooth", (1.0, 0.0, 1e-5)),)),
    "multiclass_generalized_dice_loss": _e("softmax-logits", params=(("smooth", (1.0, 0.0, 1e-5)),)),
}

#: Functions without vectors, with the reason.
NO_VECTORS: Dict[str, str] = {
    "ctc_loss_with_forward_probs": "its loss is ctc_loss's (same arguments), whose files cover it; the forward "
                                   "variables it returns as well are float64 reference values, not exact ones",
    "smooth_labels": "a label transformation of one tensor, (1 - alpha) labels + alpha / K: exact in its tests "
                     "against optax, no loss to reduce",
}
