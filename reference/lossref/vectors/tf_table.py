"""The tf target table: which ``lossref.tf.nn`` functions get golden vectors, and how
their cases are drawn (the entry format of :mod:`lossref.vectors.torch_table`).

``tf.nn``'s losses take no ``reduction``: every entry has the one output ``none`` (the
function's value) and no ``module`` (no classes). TF passes labels before logits, the
reverse of the drawn pair, so the entries give TF's positional ``order``; ``l2_loss``,
``compute_average_loss`` and ``scale_regularization_loss`` take one tensor (the drawn
input). Integer labels (``sparse_softmax_cross_entropy_with_logits``, ``ctc_loss``) are
stored as floats and passed as int64.
"""

from __future__ import annotations

from typing import Dict

from .torch_table import TorchEntry

__all__ = ["TF_TABLE", "NO_VECTORS"]


def _e(kind: str, names=("logits", "labels"), order=("labels", "logits"), **kw) -> TorchEntry:
    return TorchEntry(None, kind, names=names, order=order, reductions=("none",), **kw)


#: Function name -> entry.
TF_TABLE: Dict[str, TorchEntry] = {
    "sigmoid_cross_entropy_with_logits": _e("binary-logits"),
    "weighted_cross_entropy_with_logits": _e("binary-logits", params=(("pos_weight", (1.0, 0.5, 3.0)),)),
    "softmax_cross_entropy_with_logits": _e("softmax-logits"),
    "sparse_softmax_cross_entropy_with_logits": _e("index-logits", integer=("labels",)),
    "log_poisson_loss": _e("poisson-nll", names=("log_input", "targets"), order=("targets", "log_input"),
                           params=(("compute_full_loss", (False, True)),)),
    "l2_loss": _e("real", names=("t",), order=("t",)),
    # labels (N, S) dense and logits (T, N, C) time-major (TF's default), the lengths by name
    "ctc_loss": _e("ctc-tf", arrays=(("label_length", "kind"), ("logit_length", "kind")),
                   integer=("labels", "label_length", "logit_length"),
                   params=(("blank_index", (None, 0, 1)),), dtypes=("float32", "float64")),
    "compute_average_loss": _e("real", names=("per_example_loss",), order=("per_example_loss",),
                               arrays=(("sample_weight", "input"),)),
    "scale_regularization_loss": _e("real", names=("regularization_loss",), order=("regularization_loss",)),
}

#: Functions without vectors, with the reason (none today).
NO_VECTORS: Dict[str, str] = {}
