"""Building cases in the golden-vector format from arrays, with the oracle's expectations."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from .. import formats

REDUCTION_KEYS = ("sum_over_batch_size", "sum", "mean_with_sample_weight", "none")


def _enc(x: np.ndarray) -> Dict[str, Any]:
    a = np.asarray(x, dtype=np.float64)
    return {"shape": list(a.shape), "hex": [formats.to_hex(v) for v in a.ravel()]}


def make_case(case_id: str, loss: str, dtype: str, y_true, y_pred, *, params: Optional[dict] = None,
              sample_weight=None, reductions: Iterable[str] = REDUCTION_KEYS,
              tags: Iterable[str] = ()) -> Dict[str, Any]:
    """A case record (DESIGN.md "Golden vectors" format) with exact expectations.

    Inputs are rounded into `dtype` first; expectations come from the Keras dialect's
    ``.exact`` twins, correctly rounded into `dtype` and as 40-digit decimals.
    """
    from ..keras import losses as K
    from .runner import keras_names

    f = formats.get_format(dtype)
    params = dict(params or {})
    t = formats.round_array(np.asarray(y_true, dtype=np.float64), f)
    p = formats.round_array(np.asarray(y_pred, dtype=np.float64), f)
    sw = None if sample_weight is None else formats.round_array(np.asarray(sample_weight, np.float64), f)
    names = keras_names()[loss]
    fn = getattr(K, names["function"])
    dt = f.dtype
    ex = fn.exact(t.astype(dt), p.astype(dt), **params)
    per = _expect(ex, dtype)
    reds = {}
    for r in reductions:
        obj = getattr(K, names["class"])(reduction=None if r == "none" else r, dtype=dtype, **params)
        reds[r] = _expect(obj.exact(t.astype(dt), p.astype(dt), sample_weight=sw), dtype)
    return {"id": case_id, "dialect": "keras", "loss": loss, "dtype": dtype, "params": params,
            "tags": list(tags),
            "inputs": {"y_true": _enc(t), "y_pred": _enc(p), "sample_weight": None if sw is None else _enc(sw)},
            "expected": {"per_sample": per, "reductions": reds}}


def _expect(ex, dtype: str) -> Dict[str, Any]:
    r = np.asarray(ex.round(dtype), dtype=np.float64)
    d = np.asarray(ex.decimal(40))
    if r.shape == ():
        return {"shape": [], "hex": formats.to_hex(r), "decimal": str(d)}
    return {"shape": list(r.shape), "hex": [formats.to_hex(v) for v in r.ravel()],
            "decimal": [str(v) for v in d.ravel()]}


