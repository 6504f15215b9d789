"""Cases in the golden-vector format for arrays chosen here (sweeps, tests), with the
oracle's expectations computed by the golden-vector machinery."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from .. import formats
from ..vectors.targets import REDUCTIONS, expected, get_target, hexf, json_params


def _enc(x: Optional[np.ndarray]) -> Optional[Dict[str, Any]]:
    if x is None:
        return None
    a = np.asarray(x, dtype=np.float64)
    return {"shape": list(a.shape), "hex": [hexf(v) for v in a.ravel()]}


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
            "tags": list(tags), "inputs": {"y_true": _enc(t), "y_pred": _enc(p), "sample_weight": _enc(sw)},
            "expected": exp}
