"""Causes: the findings of a differential run grouped by the behaviour behind them.

One behaviour of a framework (a result returned in float32 for a float64 loss, NaN where
the exact value is infinite, an exception) shows under many losses and formats, so a run's
findings are many times its causes. :func:`classify` reads one failing record (an item of
:func:`lossref.diff.runner.evaluate`) and returns the *signature* of what it shows, computed
from the data alone (no list of known bugs): an exception's type and message with its
numbers, shapes and addresses normalised; the dtype returned against the one expected; an
axis kept or lost; the special value returned against the exact one; the precision the
value shows (a float64 result that is a float32 number, a result with no correct digit);
and, for a relative error that no rounding explains, the loss (conventions are per loss).
Gradients have signatures of their own. A cause's id is a readable slug of its signature
alone, so it is the same on any run and machine and distinct signatures get distinct ids.

:func:`build_causes` groups the findings of a report by the cause of each finding's worst
record, largest first.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .. import formats
from ..vectors.fileformat import decode_hex
from . import compare

__all__ = ["classify", "signature", "cause_id", "title", "explanation", "build_causes", "finding_record",
           "input_elements", "normalise_message", "narrower_format", "GRAD_PREFIX", "FORMAT_ORDER"]

#: prefix of a gradient output's name (``grad:per_sample``); runner uses this one
GRAD_PREFIX = "grad:"
#: formats in the reports' order
FORMAT_ORDER = ("float16", "bfloat16", "float32", "float64")
#: A result that is exactly a number of a narrower format counts as computed in it only
#: where a coincidence is unlikely: the formats differ by this many significand bits or
#: more, and the value has more significant bits than this.
_NARROW_GAP = 8
_SHORT_BITS = 6
#: An overflow where the exact value is within this factor of the format's largest
#: finite value is a sum or difference at the edge of the range, not an intermediate.
_NEAR_MAX = 16.0
#: Correct bits of a float64 result computed in float32: float32's 24, less up to ten
#: lost to the conditioning of the loss, and no more than a float32 number can carry
_FLOAT32_BITS = (14, 27)

# --- error messages ----------------------------------------------------------------------------

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_SHAPE = re.compile(r"(?<!\w)[(\[]\s*(?:-?\d+\s*(?:,\s*-?\d+\s*)*,?\s*)?[)\]]")  # not a call's "f()"
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w])")


def normalise_message(text: str) -> str:
    """The first line of an error message with what varies from case to case replaced:
    addresses by ``0x_``, shapes (``(2, 3)``, ``[4]``, ``()``, not after a name) by
    ``(shape)``, other numbers by ``N``; at most 200 characters."""
    line = (text.strip().splitlines() or [""])[0]
    line = _ADDRESS.sub("0x_", line)
    line = _SHAPE.sub("(shape)", line)
    line = _NUMBER.sub("N", line)
    return " ".join(line.split())[:200]


# --- signatures ---------------------------------------------------------------------------------


def _value_class(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return "zero" if x == 0 else "finite"


def _significant_bits(x: float) -> int:
    """Bits from the leading to the last set bit of a finite float's significand."""
    if x == 0 or not math.isfinite(x):
        return 0
    m, _ = math.frexp(abs(x))
    n = int(m * 2 ** 53)
    return 53 - ((n & -n).bit_length() - 1)


def narrower_format(computed: float, fmt: formats.Format) -> Optional[str]:
    """The narrowest format, `_NARROW_GAP` bits or more narrower than `fmt`, of which
    `computed` is exactly a number, when it has more than `_SHORT_BITS` significant bits
    (a short value such as 0.5 fits every format and says nothing); else None."""
    if not math.isfinite(computed) or _significant_bits(computed) <= _SHORT_BITS:
        return None
    fits = [f for f in formats.FORMATS.values()
            if f.precision <= fmt.precision - _NARROW_GAP
            and float(formats.round_array(np.array([computed]), f)[0]) == computed]
    return min(fits, key=lambda f: (f.precision, f.emax)).name if fits else None


def _inputs_class(case: Dict[str, Any]) -> str:
    """``non-finite`` where an input holds an infinity or a NaN, else ``finite``: a special
    value an input brings in is another code path than one the computation makes."""
    vals = [decode_hex(a["hex"]) for a in case.get("inputs", {}).values() if a]
    return "finite" if all(np.isfinite(v).all() for v in vals) else "non-finite"


def _expected_value(record: Dict[str, Any]) -> float:
    """The correctly rounded expected value at the record's worst index."""
    from .runner import _expected_of  # runner imports this module: not at the top

    exp = _expected_of(record["case"], record["output"])
    hexes = exp["hex"] if isinstance(exp["hex"], list) else [exp["hex"]]
    return float.fromhex(hexes[record.get("index") or 0])


def _exact_float(text: str) -> float:
    """The recorded exact value as a float (its sign and magnitude class are what count)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _shape_change(summary: str) -> Dict[str, Any]:
    """How a returned shape differs from the expected one (compare's ``shape (..),
    expected (..)`` summary): an extra axis (``unit`` where it has size 1), a lost axis,
    or other sizes of the same rank."""
    m = re.match(r"shape \(([^)]*)\), expected \(([^)]*)\)", summary or "")
    if not m:
        return {"change": "other"}
    got, exp = ([int(v) for v in t.split(",") if v.strip()] for t in m.groups())
    ranks = [len(exp), len(got)]
    if len(got) > len(exp):
        unit = [g for g in got if g != 1] == [e for e in exp if e != 1]
        return {"change": "extra-axis", "extra": "unit" if unit else "sized", "ranks": ranks}
    return {"change": "lost-axis" if len(got) < len(exp) else "other-sizes", "ranks": ranks}


def _precision_signature(computed: float, exact: float, expected: float, fmt: formats.Format,
                         rel: Optional[float]) -> Dict[str, Any]:
    # a wrong zero, sign or magnitude says more than the format the rest was computed in
    if expected == 0:
        return {"behaviour": "precision", "error": "nonzero-for-zero"}
    if computed == 0:
        under = abs(exact) < fmt.tiny
        return {"behaviour": "precision", "error": "zero-for-subnormal" if under else "zero-for-nonzero"}
    if (computed > 0) != (exact > 0):
        return {"behaviour": "precision", "error": "wrong-sign"}
    bits = -math.log2(rel) if rel else float(fmt.precision)  # correct leading bits
    if bits < 1:  # which way it is off tells an offset or floor from a clamp or cap
        off = "too-large" if abs(computed) > abs(exact) else "too-small"
        return {"behaviour": "precision", "error": f"no-correct-digits-{off}"}
    narrow = narrower_format(computed, fmt)
    if narrow is None and fmt.precision == formats.FLOAT64.precision and _FLOAT32_BITS[0] <= bits < _FLOAT32_BITS[1]:
        narrow = formats.FLOAT32.name  # a float64 result with a float32 result's accuracy
    if narrow is not None:
        return {"behaviour": "narrowed", "computed_in": narrow}
    return {"behaviour": "precision", "error": "few-correct-bits" if bits < 8 else "bits-lost"}


def signature(record: Dict[str, Any]) -> Dict[str, Any]:
    """The signature of one failing record: what its failure shows, from the data alone.

    Parameters
    ----------
    record : dict
        An item of :func:`lossref.diff.runner.evaluate` whose status is ``inaccurate``,
        ``mismatch`` or ``error``.

    Returns
    -------
    dict
        JSON-ready: ``gradient`` (a ``grad:`` output), ``behaviour`` (``error``, ``dtype``,
        ``shape``, ``special``, ``overflow``, ``invalid``, ``narrowed``, ``precision``,
        ``convention``) and what identifies the behaviour within its kind.
    """
    case, output = record["case"], record["output"]
    status, kind = record["status"], record.get("kind") or record["status"]
    sig: Dict[str, Any] = {"gradient": output.startswith(GRAD_PREFIX)}
    if status == "error":
        msg = record.get("summary") or ""
        if kind == "exception":
            etype, _, rest = msg.partition(": ")
            sig.update(behaviour="error", kind=kind, exception=etype.strip() or "Exception",
                       message=normalise_message(rest))
        else:
            sig.update(behaviour="error", kind=kind, message=normalise_message(msg))
        return sig
    if kind == "dtype":
        m = re.match(r"dtype (\S+), expected (\S+)", record.get("summary") or "")
        got, want = m.groups() if m else ("?", "?")
        return dict(sig, behaviour="dtype", got=got, expected=want)
    if kind == "shape":
        return dict(sig, behaviour="shape", **_shape_change(record.get("summary") or ""))
    if kind == "convention":
        return dict(sig, behaviour="convention", loss=case["loss"])
    fmt = formats.get_format(case["dtype"])
    computed = float(record.get("computed", math.nan))
    exact = _exact_float(record.get("exact"))
    expected = _expected_value(record)
    if kind == "special-value" or math.isnan(expected) or math.isinf(expected):
        want = _value_class(exact)
        if want in ("finite", "zero"):  # finite, but beyond the format's range
            want = "+overflow" if exact > 0 else "-overflow"
        return dict(sig, behaviour="special", exact=want, got=_value_class(computed),
                    inputs=_inputs_class(case))
    if math.isinf(computed):
        if fmt.precision > formats.FLOAT32.precision and abs(exact) > formats.FLOAT32.max:
            where = "beyond-float32"  # finite in the format: float32 cannot hold it
        else:
            where = "near-max" if abs(exact) >= fmt.max / _NEAR_MAX else "well-in-range"
        return dict(sig, behaviour="overflow", exact=where, inputs=_inputs_class(case))
    if math.isnan(computed):
        return dict(sig, behaviour="invalid", exact="zero" if exact == 0 else "nonzero",
                    inputs=_inputs_class(case))
    return dict(sig, **_precision_signature(computed, exact, expected, fmt, record.get("rel")))


# --- ids, titles, explanations -----------------------------------------------------------------


def _slug(text: str, words: int = 6) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words])


def _short_hash(sig: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sig, sort_keys=True).encode("utf-8")).hexdigest()[:6]


_SIGNS = {"+inf": "inf", "-inf": "neg-inf", "nan": "nan", "zero": "zero", "finite": "finite",
          "+overflow": "overflow", "-overflow": "neg-overflow"}


def cause_id(sig: Dict[str, Any]) -> str:
    """The id of a signature: a short readable slug of every field of it (an error's
    message is shortened, so its id ends in a hash of the signature)."""
    b = sig["behaviour"]
    head = "grad-" if sig.get("gradient") else ""
    if b == "error":
        what = sig.get("exception", sig["kind"])
        return f"{head}error-{_slug(what + ' ' + sig['message'], 6)}-{_short_hash(sig)}"
    if b == "dtype":
        return f"{head}dtype-{_slug(sig['expected']) or 'unknown'}-as-{_slug(sig['got']) or 'unknown'}"
    if b == "shape":
        extra = f"-{sig['extra']}" if "extra" in sig else ""
        ranks = "-".join(str(r) for r in sig.get("ranks", []))
        return f"{head}shape-{sig['change']}{extra}" + (f"-rank-{ranks}" if ranks else "")
    if b == "special":
        return f"{head}special-{_SIGNS[sig['got']]}-for-{_SIGNS[sig['exact']]}-{sig['inputs']}-inputs"
    if b == "overflow":
        return f"{head}overflow-{sig['exact']}-{sig['inputs']}-inputs"
    if b == "invalid":
        return f"{head}nan-for-{sig['exact']}-{sig['inputs']}-inputs"
    if b == "narrowed":
        return f"{head}computed-in-{sig['computed_in']}"
    if b == "precision":
        return f"{head}precision-{sig['error']}"
    if b == "convention":
        return f"{head}convention-{_slug(sig['loss'], 12)}"
    return f"{head}{_slug(b)}-{_short_hash(sig)}"


_INPUTS = {"finite": "finite inputs", "non-finite": "an infinite or NaN input"}
_VALUE_WORDS = {"+inf": "+inf", "-inf": "-inf", "nan": "NaN", "zero": "0", "finite": "a finite value",
                "+overflow": "beyond the format's range, +inf once rounded",
                "-overflow": "beyond the format's range, -inf once rounded"}
_OVERFLOW_WORDS = {
    "beyond-float32": ("beyond float32's range",
                       "finite in the result's format but beyond float32's largest value: the value, or "
                       "the computation behind it, went through float32"),
    "near-max": ("near the format's largest value",
                 f"within a factor {_NEAR_MAX:g} of the format's largest finite value: a sum, a mean taken "
                 "as a sum divided afterwards, or a difference of terms that size overflows before the "
                 "result is formed"),
    "well-in-range": ("well within the format's range",
                      "far below the format's largest finite value: an intermediate (a square, an "
                      "exponential, a product or a quotient) overflows although the result would not"),
}
_SHAPE_WORDS = {"extra-axis": "keeps an axis the loss reduces, or broadcasts two shapes into a larger one",
                "lost-axis": "drops an axis the loss keeps",
                "other-sizes": "has the expected rank but other sizes",
                "other": "has another shape"}
#: (title, explanation) of each precision behaviour
_PRECISION_WORDS = {
    "nonzero-for-zero": ("A nonzero result where the exact value rounds to 0",
                         "The result is not zero where the exact value is zero or rounds to zero: an "
                         "epsilon added to an argument, a clamp, or a cancellation leaves a residue. A "
                         "perfect prediction does not score a zero loss."),
    "zero-for-nonzero": ("0 where the exact value is a normal number",
                         "The result is zero where the exact value is a normal number of the format: the "
                         "terms cancel completely once rounded, or the inputs were rounded into a "
                         "narrower format first, where they became equal. Small losses, and their "
                         "gradients, vanish."),
    "zero-for-subnormal": ("0 where the exact value is subnormal",
                           "The result is zero where the exact value is a subnormal number of the format: "
                           "an intermediate underflows, or subnormals are flushed to zero."),
    "wrong-sign": ("A result of the wrong sign",
                   "The result has the sign opposite to the exact value's: a cancellation between large "
                   "terms leaves only rounding errors, whose sign is arbitrary. A loss that is never "
                   "negative can come out negative."),
    "no-correct-digits-too-large": (
        "A result with no correct digit, too large in magnitude",
        "The result is off by as much as the exact value itself, and larger: an epsilon or offset "
        "added to an argument, a floor, or the rounding error of a cancellation dominates a small "
        "exact value."),
    "no-correct-digits-too-small": (
        "A result with no correct digit, too small in magnitude",
        "The result is off by as much as the exact value itself, and smaller: a clamp of an input "
        "(an epsilon clip of a probability, a cap on a logit) or an intermediate that underflows "
        "cuts a large exact value short."),
    "few-correct-bits": ("A result with fewer than 8 correct bits",
                         "The result keeps only a few correct leading bits: a cancellation, or an epsilon "
                         "or clamp in the formula, costs most of the format's precision."),
    "bits-lost": ("A result beyond the rounding budget",
                  "The result keeps 8 or more correct bits but is further from the exact value than the "
                  "rounding budget of the format allows: an ill-conditioned step (a log near 1, a "
                  "difference of near-equal terms) or an epsilon in the formula loses precision."),
}


def _error_what(sig: Dict[str, Any]) -> str:
    return sig.get("exception") or {"timeout": "a timeout", "crash": "a crash of the process",
                                     "missing": "no output"}.get(sig["kind"], sig["kind"])


def title(sig: Dict[str, Any]) -> str:
    """One line saying what the behaviour of signature `sig` is."""
    b = sig["behaviour"]
    pre = "Gradient: " if sig.get("gradient") else ""
    if b == "error":
        what = _error_what(sig)
        return f"{pre}{what[0].upper() + what[1:]}" + (f": {sig['message']}" if sig["message"] else "")
    if b == "dtype":
        return f"{pre}{sig['expected']} inputs give a {sig['got']} result"
    if b == "shape":
        ranks = sig.get("ranks")
        rank = f" (rank {ranks[1]}, expected {ranks[0]})" if ranks else ""
        if sig["change"] == "extra-axis":
            return f"{pre}The result keeps {'a size-1' if sig['extra'] == 'unit' else 'an extra'} axis{rank}"
        if sig["change"] == "lost-axis":
            return f"{pre}The result loses an axis{rank}"
        return f"{pre}The result has another shape{rank}"
    if b == "special":
        got = _VALUE_WORDS[sig["got"]]
        return (f"{pre}{got[0].upper() + got[1:]} where the exact value is {_VALUE_WORDS[sig['exact']]} "
                f"({_INPUTS[sig['inputs']]})")
    if b == "overflow":
        return (f"{pre}Overflow to infinity where the exact value is {_OVERFLOW_WORDS[sig['exact']][0]} "
                f"({_INPUTS[sig['inputs']]})")
    if b == "invalid":
        exact = "0" if sig["exact"] == "zero" else "finite and nonzero"
        return f"{pre}NaN where the exact value is {exact} ({_INPUTS[sig['inputs']]})"
    if b == "narrowed":
        return f"{pre}Computed in a narrower format: results only as precise as {sig['computed_in']}"
    if b == "precision":
        return pre + _PRECISION_WORDS[sig["error"]][0]
    if b == "convention":
        return f"{pre}{sig['loss']}: a relative error no rounding explains (another convention)"
    return f"{pre}{b}"


def explanation(sig: Dict[str, Any]) -> str:
    """A few sentences: what the behaviour of signature `sig` is and why it matters."""
    b = sig["behaviour"]
    of = "The gradient" if sig.get("gradient") else "The loss"
    if b == "error":
        said = f' with the message "{sig["message"]}" (numbers and shapes normalised)' if sig["message"] else ""
        return (f"{of} ends in {_error_what(sig)}{said} on inputs where lossref's specification defines a "
                "value. The caller gets no value at all; one message under several losses or formats "
                "points at one shared code path.")
    if b == "dtype":
        try:
            narrower = formats.get_format(sig["got"]).precision < formats.get_format(sig["expected"]).precision
        except TypeError:  # not a float format
            narrower = False
        why = ("The value was computed in, or cast to, the narrower format: it carries that format's "
               "rounding errors and range, and the precision the caller asked for is silently lost."
               if narrower else
               "The caller gets another type than the one asked for: memory, speed and the arithmetic of "
               "everything computed from the result change.")
        return f"{of} returns {sig['got']} for {sig['expected']} inputs, where the result is {sig['expected']}. {why}"
    if b == "shape":
        return (f"{of}'s result {_SHAPE_WORDS[sig['change']]}. A later reduction then averages or sums over "
                "the wrong elements, or broadcasts silently, so every value computed from it is affected.")
    if b == "special":
        return (f"{of} gives {_VALUE_WORDS[sig['got']]} where the exact value is {_VALUE_WORDS[sig['exact']]}, "
                f"with {_INPUTS[sig['inputs']]}. Special values are part of the answer: an infinite loss "
                "must stay infinite (a clamp hides a divergence), a NaN must not turn into a number (it "
                "hides invalid data), and a NaN where the answer is infinite loses the sign and the "
                "meaning of the result.")
    if b == "overflow":
        return (f"{of} overflows to infinity where the exact value is {_OVERFLOW_WORDS[sig['exact']][1]}; "
                f"seen with {_INPUTS[sig['inputs']]}. The infinity then reaches every reduction and update.")
    if b == "invalid":
        where = ("0: an invalid operation (0 * inf, 0 / 0, inf - inf) happens where the formula has a "
                 "finite limit" if sig["exact"] == "zero" else
                 "finite and nonzero: an intermediate overflows, or an invalid operation (inf - inf, "
                 "0 * inf) happens on the way")
        return (f"{of} returns NaN where the exact value is {where}; seen with {_INPUTS[sig['inputs']]}. "
                "A NaN poisons every reduction and update it reaches.")
    if b == "narrowed":
        return (f"{of}'s result is exactly a number of {sig['computed_in']} (with more than {_SHORT_BITS} "
                "significant bits, so hardly by chance), or, for a float64 result, has the "
                f"{_FLOAT32_BITS[0]} to {_FLOAT32_BITS[1] - 1} correct bits of a float32 computation: the "
                f"computation, or its inputs, went through {sig['computed_in']}, and the precision the caller "
                "asked for is lost. The same code path often returns the narrower dtype elsewhere.")
    if b == "precision":
        return (f"{_PRECISION_WORDS[sig['error']][1]} Nothing signals it: the value is further from the exact "
                "one than the format's rounding explains, and comparisons, reductions and updates built on "
                "it inherit the error.")
    if b == "convention":
        return (f"{sig['loss']} differs from the exact value by a relative error of 1% or more on typical "
                "float32 or float64 inputs, which no rounding explains: the framework computes another "
                "formula (another epsilon, clamp, scaling, smoothing or axis) than the one lossref "
                "specifies. The loss's spec page states the convention and its source.")
    return f"{of}: {b}."


def classify(record: Dict[str, Any]) -> Dict[str, Any]:
    """The cause of one failing record.

    Parameters
    ----------
    record : dict
        An item of :func:`lossref.diff.runner.evaluate` whose status is ``inaccurate``,
        ``mismatch`` or ``error``.

    Returns
    -------
    dict
        ``id`` (stable, derived from the signature only), ``title`` (one line),
        ``explanation`` (a few sentences) and ``evidence`` (the signature).
    """
    sig = signature(record)
    return {"id": cause_id(sig), "title": title(sig), "explanation": explanation(sig), "evidence": sig}


# --- grouping -----------------------------------------------------------------------------------


def input_elements(finding: Dict[str, Any]) -> int:
    """How many input elements the finding's worst case has (its reproducer's size)."""
    return sum(len(a["hex"]) for a in finding["worst_case"]["inputs"].values() if a)


def finding_record(finding: Dict[str, Any]) -> Dict[str, Any]:
    """The worst record of a finding, rebuilt from what the finding keeps (its worst case,
    kind, summary and computed value), as :func:`classify` reads it: a report's findings
    can be grouped again without the run's records."""
    wc = finding["worst_case"]
    out, exp = wc["output"], wc["expected"]
    if out.startswith(GRAD_PREFIX):
        expected = {"grad": {out[len(GRAD_PREFIX):]: exp}}
    else:
        expected = {"per_sample": exp} if out == "per_sample" else {"reductions": {out: exp}}
    case = {"id": finding["case_id"], "loss": finding["loss"], "dtype": finding["dtype"],
            "inputs": wc["inputs"], "params": wc["params"], "expected": expected}
    prefix = f"{finding['loss']} {finding['dtype']} {out}: "
    summary = finding["summary"][len(prefix):] if finding["summary"].startswith(prefix) else finding["summary"]
    rec: Dict[str, Any] = {"case": case, "output": out, "status": finding["kind"],
                           "kind": finding.get("detail"), "summary": summary}
    comp = finding.get("computed")
    if comp:
        i = comp.get("index") or 0
        hexes = exp["hex"] if isinstance(exp["hex"], list) else [exp["hex"]]
        decs = exp["decimal"] if isinstance(exp["decimal"], list) else [exp["decimal"]]
        value = float.fromhex(comp["hex"])
        m = compare.value_status(value, compare.exact_from_decimal(decs[i]), float.fromhex(hexes[i]),
                                 formats.get_format(finding["dtype"]), math.inf)
        rec.update(computed=value, index=comp.get("index"), exact=decs[i], rel=m["rel"])
    return rec


def build_causes(findings: List[Dict[str, Any]],
                 records_of_finding: Optional[Sequence[Optional[Dict[str, Any]]]] = None) -> List[Dict[str, Any]]:
    """The causes of a report's findings, largest first (most findings, then id).

    Parameters
    ----------
    findings : list of dict
        The report's findings, in order (:func:`lossref.diff.runner.build_findings`).
    records_of_finding : sequence, optional
        Parallel to `findings`: each finding's worst record, or its classification (a
        :func:`classify` result), or None. Where a finding has none, its worst record is
        rebuilt from the finding (:func:`finding_record`).

    Returns
    -------
    list of dict
        One cause per distinct id: ``id``, ``title``, ``explanation``, ``evidence`` (the
        signature), ``findings`` (indices into `findings`, ascending), ``losses``,
        ``formats``, ``outputs``, ``backends`` (sorted; formats in the reports' order),
        ``counts`` (findings, cases, losses, formats) and ``smallest_finding`` (the index
        of the finding whose worst case has the fewest input elements, the first of equal
        ones).

    Raises
    ------
    ValueError
        `records_of_finding` is not parallel to `findings`.
    """
    recs = list(records_of_finding) if records_of_finding is not None else [None] * len(findings)
    if len(recs) != len(findings):
        raise ValueError(f"{len(findings)} findings but {len(recs)} records of findings")
    groups: Dict[str, Dict[str, Any]] = {}
    for i, (f, r) in enumerate(zip(findings, recs)):
        c = r if r is not None and "evidence" in r else classify(r if r is not None else finding_record(f))
        g = groups.setdefault(c["id"], {k: c[k] for k in ("id", "title", "explanation", "evidence")})
        g.setdefault("findings", []).append(i)
    out = []
    for g in groups.values():
        fs = [findings[i] for i in g["findings"]]
        fmts = {f["dtype"] for f in fs}
        g.update(losses=sorted({f["loss"] for f in fs}),
                 formats=[d for d in FORMAT_ORDER if d in fmts] + sorted(fmts - set(FORMAT_ORDER)),
                 outputs=sorted({o for f in fs for o in f.get("outputs", [])}),
                 backends=sorted({f["backend"] for f in fs if f.get("backend")}),
                 smallest_finding=min(g["findings"], key=lambda i: (input_elements(findings[i]), i)))
        g["counts"] = {"findings": len(fs), "cases": sum(f["cases"] for f in fs),
                       "losses": len(g["losses"]), "formats": len(g["formats"])}
        out.append(g)
    out.sort(key=lambda g: (-g["counts"]["findings"], g["id"]))
    return out
