"""Compare a framework's outputs with the oracle: per-value metrics, statuses, rows.

Status of one value, from best to worst (spec/accuracy.md, "Differential testing"):
``exact`` (the correctly rounded value), ``faithful`` (≤ 1 ulp), ``within-budget``
(≤ the budget for a value formed from n input elements), ``inaccurate`` (beyond the
budget but a rounding-size error), ``mismatch`` (another convention: a wrong shape, dtype
or special value, or a relative error no rounding explains), ``error`` (an exception, a
timeout or a crash).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import mpmath

from .. import formats
from ..vectors.fileformat import decode_hex

STATUSES = ["exact", "faithful", "within-budget", "inaccurate", "mismatch", "error"]
RANK = {s: i for i, s in enumerate(STATUSES)}
#: Relative error beyond which a difference is another convention, not rounding.
CONVENTION_REL = 1e-2


def budget_ulps(n_terms: int) -> float:
    """Budget in ulps for a value formed from `n_terms` input elements in the format.

    Four ulps for the elementwise work plus two per doubling of the summed terms
    (recursive or pairwise summation in the format). Stated in spec/accuracy.md.
    """
    return 4.0 + 2.0 * math.ceil(math.log2(max(n_terms, 1)))


def exact_from_decimal(s: str) -> mpmath.mpf:
    """The exact value as recorded (40 significant digits, or nan/inf/0)."""
    with mpmath.workprec(200):
        return mpmath.mpf(s)


def case_class(tags) -> str:
    """``typical`` for plain random draws, ``adversarial`` for the rest (adversarial,
    special-value and edge-shape cases): rows keep the two apart."""
    hard = {"adversarial", "special", "edge-shape"}
    return "adversarial" if hard & set(tags or ()) else "typical"


def value_status(computed: float, exact: mpmath.mpf, expected: float, fmt, budget: float,
                 typical: bool = True) -> Dict[str, Any]:
    """Metrics of one computed value against its exact value.

    Beyond the budget: a special value where the exact value is not one (an overflow to
    inf, an invalid operation's NaN) is ``inaccurate``; a finite or different special
    value where the exact one is NaN or infinite is a ``mismatch``; between finite values
    a relative error of `CONVENTION_REL` or more on a typical float32/float64 case is a
    ``mismatch`` (no rounding explains it there), anything else ``inaccurate``.
    """
    err = formats.ulp_error(computed, exact, fmt)
    rel = None  # relative error between finite values (a zero exact value: against the least subnormal)
    if mpmath.isfinite(exact) and math.isfinite(computed):
        with mpmath.workprec(64):
            rel = float(abs(mpmath.mpf(computed) - exact) / max(abs(exact), mpmath.mpf(fmt.min_subnormal)))
    detail = None
    if (math.isnan(computed) and math.isnan(expected)) or computed == expected:
        status = "exact"
    elif err <= 1:
        status = "faithful"
    elif err <= budget:
        status = "within-budget"
    elif math.isnan(expected) or math.isinf(expected):
        status, detail = "mismatch", "special-value"
    elif math.isnan(computed) or math.isinf(computed):
        status, detail = "inaccurate", ("invalid (NaN)" if math.isnan(computed) else "overflow")
    # in float16/bfloat16 the framework's own arithmetic can lose percents: no convention call
    elif typical and rel >= CONVENTION_REL and fmt.precision >= 24:
        status, detail = "mismatch", "convention"
    else:
        status, detail = "inaccurate", "rounding"
    return {"status": status, "ulp": err, "rel": rel, "detail": detail}


def compare_output(expected: Dict[str, Any], got: Optional[Dict[str, Any]], fmt,
                   expected_dtype: str, n_terms: int, typical: bool = True) -> Dict[str, Any]:
    """Compare one output (per-sample array or one reduction) of one case."""
    if got is None:
        return {"status": "error", "kind": "missing", "summary": "no output returned", "ulp": None}
    exp_shape = list(expected.get("shape", []))
    if list(got["shape"]) != exp_shape:
        return {"status": "mismatch", "kind": "shape", "ulp": None,
                "summary": f"shape {tuple(got['shape'])}, expected {tuple(exp_shape)}"}
    hexes = expected["hex"] if isinstance(expected["hex"], list) else [expected["hex"]]
    decs = expected["decimal"] if isinstance(expected["decimal"], list) else [expected["decimal"]]
    comp = decode_hex(got["hex"])
    want = decode_hex(hexes)
    budget = budget_ulps(n_terms)
    worst = {"status": "exact", "ulp": 0.0, "rel": 0.0, "index": None, "detail": None}
    for i, (c, w, d) in enumerate(zip(comp, want, decs)):
        m = value_status(float(c), exact_from_decimal(d), float(w), fmt, budget, typical)
        if RANK[m["status"]] > RANK[worst["status"]] or (
                m["status"] == worst["status"] and (m["ulp"] or 0) > (worst["ulp"] or 0)):
            worst = {**m, "index": i, "computed": float(c), "exact": d}
    out = {**worst, "budget": budget}
    if got.get("dtype") and got["dtype"] != expected_dtype:
        out.update(status="mismatch", kind="dtype",
                   summary=f"dtype {got['dtype']}, expected {expected_dtype}")
    elif worst["status"] in ("inaccurate", "mismatch"):
        out["kind"] = worst["detail"]
        out["summary"] = (f"{worst['computed']!r} vs exact {worst['exact']} "
                          f"({_fmt_ulp(worst['ulp'])} ulp, budget {budget:g})")
    return out


def _fmt_ulp(u: float) -> str:
    if u is None or math.isinf(u):
        return "inf"
    return f"{u:.3g}"


def worst_status(statuses) -> str:
    return max(statuses, key=lambda s: RANK[s]) if statuses else "exact"


def p99(values: List[float]) -> float:
    v = sorted(x for x in values if x is not None)
    if not v:
        return 0.0
    return v[min(len(v) - 1, int(math.ceil(0.99 * len(v))) - 1)]
