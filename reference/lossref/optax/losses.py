"""Mirror of ``optax.losses`` (Optax 0.2.8): every loss function with optax's argument names,
order and defaults, per-example outputs (optax leaves every batch reduction to the caller),
NumPy arrays in and out (importing it does not import JAX), and an ``.exact`` twin on each.

Out of scope: ``make_fenchel_young_loss``, which builds a loss from a user's callable (a
max-function of the caller's choosing cannot be evaluated exactly).
"""

from __future__ import annotations

from ._regression import (l2_loss, squared_error, huber_loss, log_cosh, cosine_similarity,
    cosine_distance, smooth_labels, hinge_loss, perceptron_loss)
from ._classification import (sigmoid_binary_cross_entropy, sigmoid_focal_loss,
    softmax_cross_entropy, safe_softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels, poly_loss_cross_entropy, kl_divergence,
    kl_divergence_with_log_targets, convex_kl_divergence, generalized_kl_divergence)
from ._margin import (multiclass_hinge_loss, multiclass_perceptron_loss, sparsemax_loss,
    multiclass_sparsemax_loss, ranking_softmax_loss, triplet_margin_loss, ntxent)
from ._structured import (ctc_loss, ctc_loss_with_forward_probs, dice_loss, binary_dice_loss,
    multiclass_generalized_dice_loss)

__all__ = [
    "binary_dice_loss", "convex_kl_divergence", "cosine_distance", "cosine_similarity",
    "ctc_loss", "ctc_loss_with_forward_probs", "dice_loss", "generalized_kl_divergence",
    "hinge_loss", "huber_loss", "kl_divergence", "kl_divergence_with_log_targets", "l2_loss",
    "log_cosh", "multiclass_generalized_dice_loss", "multiclass_hinge_loss",
    "multiclass_perceptron_loss", "multiclass_sparsemax_loss", "ntxent", "perceptron_loss",
    "poly_loss_cross_entropy", "ranking_softmax_loss", "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy", "sigmoid_focal_loss", "smooth_labels",
    "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels", "sparsemax_loss",
    "squared_error", "triplet_margin_loss"]
