"""Cases in the golden-vector format for arrays chosen here (sweeps, tests), with the
oracle's expectations computed by the golden-vector machinery."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from .. import formats
from ..vectors.fileformat import encode_array
from ..vectors.targets import REDUCTIONS, expected, expected_grad, expected_of, get_target, json_params


def make_case(case_id: str, loss: str, dtype: str, y_true, y_pred, *, params: Optional[dict] = None,
              sample_weight=None, reductions: Optional[Iterable[str]] = None,
              tags: Iterable[str] = (), dialect: str = "keras",
              arrays: Optional[Dict[str, Any]] = None, grad: bool = False) -> Dict[str, Any]:
    """A case record with exact expectations; inputs are rounded into `dtype` first.

    Keras: `y_true`, `y_pred`, `sample_weight`. Torch: `y_true` is the target, `y_pred` the
    input, `arrays` the extra tensors (``weight``, ``pos_weight``); `reductions` default to
    the dialect's. With `grad`, the expectations include the gradients
    (:func:`~lossref.vectors.targets.expected_grad`)."""
    f = formats.get_format(dtype)
    params = json_params(params or {})
    rnd = lambda a: None if a is None else formats.round_array(np.asarray(a, np.float64), f)  # noqa: E731
    t, p, sw = rnd(y_true), rnd(y_pred), rnd(sample_weight)
    target = get_target(dialect, loss)
    if dialect == "keras":
        exp = expected(target, f, params, t, p, sw, REDUCTIONS if reductions is None else tuple(reductions))
        inputs = {"y_true": encode_array(t), "y_pred": encode_array(p), "sample_weight": encode_array(sw)}
        if grad:
            exp["grad"] = expected_grad(target, f, params, {"y_true": t, "y_pred": p, "sample_weight": sw})
    else:
        ins = {**dict(zip(target.entry.names, (p, t))),
               **{k: rnd((arrays or {}).get(k)) for k in target.arrays}}
        exp = expected_of(target, f, params, ins, None if reductions is None else tuple(reductions), grad=grad)
        inputs = {k: encode_array(ins[k]) for k in target.input_names}
    return {"id": case_id, "dialect": dialect, "loss": loss, "dtype": dtype, "params": params,
            "tags": list(tags), "inputs": inputs, "expected": exp}
