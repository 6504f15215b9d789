"""Cases in the golden-vector format for arrays chosen here (sweeps, tests), with the
oracle's expectations computed by the golden-vector machinery."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from .. import formats
from ..vectors.fileformat import encode_array
from ..vectors.targets import REDUCTIONS, expected, get_target, json_params


def make_case(case_id: str, loss: str, dtype: str, y_true, y_pred, *, params: Optional[dict] = None,
              sample_weight=None, reductions: Iterable[str] = REDUCTIONS,
              tags: Iterable[str] = ()) -> Dict[str, Any]:
    """A case record with exact expectations; inputs are rounded into `dtype` first."""
    f = formats.get_format(dtype)
    params = json_params(params or {})
    t = formats.round_array(np.asarray(y_true, dtype=np.float64), f)
    p = formats.round_array(np.asarray(y_pred, dtype=np.float64), f)
    sw = None if sample_weight is None else formats.round_array(np.asarray(sample_weight, np.float64), f)
    exp = expected(get_target("keras", loss), f, params, t, p, sw, tuple(reductions))
    return {"id": case_id, "dialect": "keras", "loss": loss, "dtype": dtype, "params": params,
            "tags": list(tags), "inputs": {"y_true": encode_array(t), "y_pred": encode_array(p), "sample_weight": encode_array(sw)},
            "expected": exp}
