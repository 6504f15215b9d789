"""The golden-vector file format (JSON Lines), its checks and its decoder.

``spec/vectors/README.md`` is the normative description and ``spec/vectors/schema.json``
the JSON Schema; this module writes exactly that, checks it without third-party packages
(:func:`check_provenance`, :func:`check_case`; the checks a schema cannot express, such
as "as many values as the shape says" and "every value exact in the dtype", included),
checks that each expected ``hex`` is the rounding of its ``decimal``
(:func:`check_values`) and decodes it (:func:`load`).

Bytes are canonical: one JSON object per line, keys sorted, no spaces, ASCII only, no
floating-point numbers outside the ``params`` (every value is a hex or decimal string),
``\\n`` after every line. Equal content therefore gives equal bytes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import mpmath
import numpy as np

from .. import formats
from ..formats import Format
from .targets import DECIMAL_DIGITS, REDUCTIONS
from .torch_table import FUNCTION_DIALECTS, TORCH_REDUCTIONS, table

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ID_STEP", "CATEGORIES", "dumps", "case_id",
           "check_provenance", "check_case", "check_values", "decimal_mismatches", "decode_array",
           "Case", "VectorFile", "load", "canonical_dir", "resolve", "parse_lines"]

FORMAT_NAME = "lossref-golden-vectors"
#: Bumped when a field is added, removed or changes meaning.
FORMAT_VERSION = 2
#: Case numbers step by this much, so a case can be inserted between two others later.
ID_STEP = 10
#: The category of a case, its first tag.
CATEGORIES = ("random", "adversarial", "special", "edge-shape")

HEX_RE = re.compile(r"^(-?(0x[01](\.[0-9a-f]*[1-9a-f])?p[+-][0-9]+|inf)|nan)$")
DECIMAL_RE = re.compile(r"^(0|nan|-?inf|-?[1-9]\.[0-9]{%d}e[+-][0-9]+)$" % (DECIMAL_DIGITS - 1))
ID_RE = re.compile(r"^([a-z0-9_]+)/([a-z0-9_]+)/([a-z0-9]+)/([0-9]{4,})$")
_CASE_KEYS = {"id", "dialect", "loss", "dtype", "params", "tags", "inputs", "expected"}
_PROV_KEYS = {"format", "format_version", "lossref", "spec", "mpmath", "seed", "command",
              "dialect", "loss", "dtype", "function", "class", "cases", "id_step",
              "reductions", "redrawn", "grad"}


def dumps(obj: Any) -> str:
    """Canonical JSON text of one line (no newline)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def case_id(dialect: str, loss: str, dtype: str, index: int) -> str:
    """Id of the `index`-th case (0-based): ``keras/huber/float32/0010``, ``.../0020``, ..."""
    return f"{dialect}/{loss}/{dtype}/{ID_STEP * (index + 1):04d}"


# --- checks ------------------------------------------------------------------------------------------


def _layout(prov: Mapping[str, Any]):
    """``(input names, optional input names, reductions, has per_sample)`` of a file's
    cases, by its dialect: Keras ``y_true, y_pred, sample_weight`` with ``per_sample`` and
    the five reductions; torch ``input, target`` and the function's extra arrays (from the
    torch table) with the provenance's reductions only ('none' is the unreduced output).
    ``KeyError`` for an unknown dialect or torch function."""
    if prov["dialect"] == "keras":
        return ("y_true", "y_pred", "sample_weight"), ("sample_weight",), REDUCTIONS, True
    if prov["dialect"] in FUNCTION_DIALECTS:
        entry = table(prov["dialect"]).get(prov["loss"])
        if entry is None:
            raise KeyError(f"{prov['dialect']} function {prov['loss']!r} has no entry in the "
                           f"{prov['dialect']} table")
        extra = tuple(n for n, _ in entry.arrays)
        reds = prov.get("reductions") or entry.reductions
        return tuple(entry.names) + extra, extra, tuple(reds), False
    raise KeyError(f"unknown dialect {prov['dialect']!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_array(obj: Any, where: str, fmt: Optional[Format], decimal: bool) -> List[str]:
    """Problems of one encoded array (``{"shape", "hex"[, "decimal"][, "dtype"]}``)."""
    if not isinstance(obj, dict):
        return [f"{where}: expected an object with shape and hex, got {type(obj).__name__}"]
    keys = {"shape", "hex"} | ({"decimal"} if decimal else set())
    allowed = keys | ({"dtype"} if decimal else set())
    if not keys <= set(obj) or not set(obj) <= allowed:
        return [f"{where}: keys {sorted(obj)}, expected {sorted(keys)}"]
    shape, hx = obj["shape"], obj["hex"]
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        return [f"{where}.shape: expected a list of non-negative integers, got {shape!r}"]
    n = math.prod(shape)
    if not isinstance(hx, list) or len(hx) != n:
        got = len(hx) if isinstance(hx, list) else type(hx).__name__
        return [f"{where}.hex: shape {shape} needs {n} values, got {got}"]
    for i, h in enumerate(hx):
        if not isinstance(h, str) or not HEX_RE.match(h):
            return [f"{where}.hex[{i}]: {h!r} is not a canonical hex float"]
    if "dtype" in obj:
        if obj["dtype"] not in formats.FORMATS:
            return [f"{where}.dtype: {obj['dtype']!r} is not one of {sorted(formats.FORMATS)}"]
        fmt = formats.FORMATS[obj["dtype"]]
    if fmt is not None and hx:
        v = np.array([float.fromhex(h) for h in hx])
        fin = np.isfinite(v)
        bad = fin & (formats.round_array(np.where(fin, v, 0.0), fmt) != v)
        if bad.any():
            i = int(np.argmax(bad))
            return [f"{where}.hex[{i}]: {hx[i]} is not exactly representable in {fmt.name}"]
    if decimal:
        dec = obj["decimal"]
        if not isinstance(dec, list) or len(dec) != n:
            return [f"{where}.decimal: shape {shape} needs {n} strings"]
        for i, s in enumerate(dec):
            if not isinstance(s, str) or not DECIMAL_RE.match(s):
                return [f"{where}.decimal[{i}]: {s!r} is not a {DECIMAL_DIGITS}-digit decimal"]
    return []


def _check_grad(grad: Any, prov: Mapping[str, Any], inputs: Mapping[str, Any]) -> List[str]:
    """Problems of ``expected.grad``: an array (with its dtype and decimals) for each
    output the provenance's ``grad.outputs`` names, of the shape of the input it is taken
    with respect to (``grad.wrt``)."""
    want = (prov.get("grad") or {}).get("outputs")
    if not isinstance(grad, dict) or not isinstance(want, list) or not set(grad) <= set(want):
        return [f"expected.grad must have only {want} (an output the oracle cannot decide is left out)"]
    want = [k for k in want if k in grad]
    out = []
    for k in want:
        if not isinstance(grad[k], dict) or "dtype" not in grad[k]:
            out.append(f"expected.grad.{k} must carry its dtype")
        else:
            out += _check_array(grad[k], f"expected.grad.{k}", None, True)
    wrt = inputs.get(prov["grad"]["wrt"]) if isinstance(inputs, dict) else None
    if not out and (not isinstance(wrt, dict) or any(grad[k]["shape"] != wrt.get("shape") for k in want)):
        out.append(f"expected.grad: each gradient has the shape of inputs.{prov['grad']['wrt']}")
    return out


def check_provenance(obj: Any) -> List[str]:
    """Problems of a provenance line (empty list: fine)."""
    if not isinstance(obj, dict) or set(obj) != {"provenance"} or not isinstance(obj["provenance"], dict):
        return ["the first line must be {\"provenance\": {...}}"]
    p = obj["provenance"]
    out = []
    if set(p) != _PROV_KEYS:
        out.append(f"provenance keys: missing {sorted(_PROV_KEYS - set(p))}, "
                   f"unexpected {sorted(set(p) - _PROV_KEYS)}")
        return out
    g = p.get("grad")
    if not (isinstance(g, dict) and set(g) == {"wrt", "outputs"} and isinstance(g["wrt"], str)
            and isinstance(g["outputs"], list) and g["outputs"]
            and all(isinstance(o, str) for o in g["outputs"])):
        out.append("provenance.grad must be {\"wrt\": input name, \"outputs\": [output names]}")
    if p["format"] != FORMAT_NAME or p["format_version"] != FORMAT_VERSION:
        out.append(f"provenance: format {p['format']!r} version {p['format_version']!r}; this "
                   f"reader knows {FORMAT_NAME!r} version {FORMAT_VERSION}")
    if p["dtype"] not in formats.FORMATS:
        out.append(f"provenance: dtype {p['dtype']!r} is not one of {sorted(formats.FORMATS)}")
    for k in ("cases", "seed", "id_step", "redrawn"):
        if not _is_int(p[k]) or p[k] < 0:
            out.append(f"provenance: {k} must be a non-negative integer, got {p[k]!r}")
    if p["dialect"] in ("optax", "tf"):  # one output: the function's value
        if list(p["reductions"]) != ["none"]:
            out.append(f"provenance: reductions {p['reductions']!r}, expected ['none'] "
                       f"({p['dialect']} has no reduction argument)")
    elif p["dialect"] == "torch":
        reds = p["reductions"]
        if not (isinstance(reds, list) and reds and reds[0] == "none" and len(set(reds)) == len(reds)
                and all(r in TORCH_REDUCTIONS for r in reds)):
            out.append(f"provenance: reductions {reds!r}: expected 'none' then distinct names of "
                       f"{list(TORCH_REDUCTIONS)}")
    elif list(p["reductions"]) != list(REDUCTIONS):
        out.append(f"provenance: reductions {p['reductions']!r}, expected {list(REDUCTIONS)}")
    return out


def check_case(obj: Any, prov: Mapping[str, Any]) -> List[str]:
    """Problems of one case line against its file's provenance (empty list: fine)."""
    if not isinstance(obj, dict):
        return ["a case must be a JSON object"]
    if set(obj) != _CASE_KEYS:
        return [f"case keys: missing {sorted(_CASE_KEYS - set(obj))}, "
                f"unexpected {sorted(set(obj) - _CASE_KEYS)}"]
    out = []
    m = ID_RE.match(obj["id"]) if isinstance(obj["id"], str) else None
    if not m or m.groups()[:3] != (prov["dialect"], prov["loss"], prov["dtype"]):
        out.append(f"id {obj['id']!r} is not {prov['dialect']}/{prov['loss']}/{prov['dtype']}/NNNN")
    for k in ("dialect", "loss", "dtype"):
        if obj[k] != prov[k]:
            out.append(f"{k} {obj[k]!r} differs from the file's {prov[k]!r}")
    if not isinstance(obj["params"], dict):
        out.append("params must be an object")
    tags = obj["tags"]
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
        out.append("tags must be a non-empty list of strings")
    elif tags[0] not in CATEGORIES:
        out.append(f"tags: the first tag must be the category, one of {list(CATEGORIES)}; "
                   f"got {tags[0]!r}")
    if out:
        return out
    try:
        names, optional, reductions, has_per_sample = _layout(prov)
    except KeyError as e:
        return [str(e.args[0])]
    fmt = formats.FORMATS[prov["dtype"]]
    inp = obj["inputs"]
    if not isinstance(inp, dict) or set(inp) != set(names):
        return [f"inputs must have exactly {', '.join(names)}"]
    for k in names:
        if inp[k] is None and k in optional:
            continue
        out += _check_array(inp[k], f"inputs.{k}", fmt, False)
    exp = obj["expected"]
    if prov.get("grad") is not None:  # a vector file (and a fresh case of diff --grad) has gradients
        if isinstance(exp, dict) and "grad" in exp:
            out += _check_grad(exp["grad"], prov, inp)
            exp = {k: v for k, v in exp.items() if k != "grad"}
        else:
            out.append("expected must have grad")
    if not has_per_sample:  # torch: 'none' is the unreduced output; every array has its dtype
        if not isinstance(exp, dict) or set(exp) != {"reductions"}:
            return out + ["expected must have exactly reductions (and grad)"]
        red = exp["reductions"]
        if not isinstance(red, dict) or set(red) != set(reductions):
            return out + [f"expected.reductions must have exactly {list(reductions)}"]
        for r in reductions:
            if not isinstance(red[r], dict) or "dtype" not in red[r]:
                out.append(f"expected.reductions.{r} must carry its dtype")
            else:
                out += _check_array(red[r], f"expected.reductions.{r}", None, True)
        if out:
            return out
        for r in reductions:
            if r != "none" and red[r]["shape"] != []:
                out.append(f"expected.reductions.{r}.shape: {red[r]['shape']} for a reduced value "
                           "(expected [])")
        return out
    if not isinstance(exp, dict) or set(exp) != {"per_sample", "reductions"}:
        return out + ["expected must have exactly per_sample, reductions and grad"]
    ps = exp["per_sample"]
    if not isinstance(ps, dict) or "dtype" not in ps:
        out.append("expected.per_sample must carry its dtype")
    else:
        out += _check_array(ps, "expected.per_sample", None, True)
    red = exp["reductions"]
    if not isinstance(red, dict) or set(red) != set(REDUCTIONS):
        return out + [f"expected.reductions must have exactly {list(REDUCTIONS)}"]
    for r in REDUCTIONS:
        out += _check_array(red[r], f"expected.reductions.{r}", fmt, True)
    if out:
        return out
    # a reduced value is a scalar, except where Keras returns an empty per-sample result as is
    empty = [] if math.prod(ps["shape"]) else [ps["shape"]]
    for r in REDUCTIONS:
        if r != "none" and red[r]["shape"] != [] and red[r]["shape"] not in empty:
            out.append(f"expected.reductions.{r}.shape: {red[r]['shape']} for a reduced value "
                       f"(expected [] for per-sample shape {ps['shape']})")
    return out


#: Working precision of the exact decision in :func:`_admits`: its conversion errors
#: (2**-320 of the value) stay far below its slack (2**-200), which stays far below half
#: the last digit of a 40-digit decimal (about 2**-133).
_WORK_BITS = 320


def _admits(dec: str, have: float, fmt: Format) -> bool:
    """Whether `have` is `fmt`'s correct rounding of some value that rounds to `dec` at
    :data:`DECIMAL_DIGITS` significant digits (halfway away from zero).

    The decimal is itself a rounding of the exact value: the exact value lies within half
    a unit of its last digit, and where a rounding boundary of `fmt` lies in that interval
    both neighbours are right. The interval is widened by 2**-200 of the value so that
    the binary conversions here can never reject a right answer."""
    if dec in ("0", "nan", "inf", "-inf"):  # these are exact
        want = float(dec)
        return (math.isnan(want) and math.isnan(have)) or (
            want == have and math.copysign(1.0, want) == math.copysign(1.0, have))
    if math.isnan(have):
        return False
    exp = int(dec.partition("e")[2])
    with mpmath.workprec(_WORK_BITS):
        d = mpmath.mpf(dec)
        half = 5 * mpmath.mpf(10) ** (exp - DECIMAL_DIGITS)
        slack = abs(d) * mpmath.ldexp(1, -200)
        lo = formats.round_mpf(d - half - slack, fmt)
        hi = formats.round_mpf(d + half + slack, fmt)
    # the interval has the decimal's sign, so an underflow to zero keeps that sign (IEEE)
    sign_ok = have != 0 or (math.copysign(1.0, have) < 0) == dec.startswith("-")
    return lo <= have <= hi and sign_ok


def decimal_mismatches(decimals: Sequence[str], hexes: Sequence[str], fmt: Format) -> List[int]:
    """Indices of the values whose `hexes` entry is not the rounding into `fmt` of the
    exact value that `decimals` gives to 40 digits (nan, ±inf and the sign of zero
    included; subnormals and overflow by IEEE rules, ties to even).

    Vectorised: Python's ``float`` rounds each decimal correctly to binary64, and rounding
    that into `fmt` is the correct rounding of the decimal itself unless the binary64
    value sits exactly on a rounding boundary of `fmt` (binary64 represents every
    boundary of a narrower format, so it cannot land on the other side of one). Those and
    the mismatches are decided exactly with mpmath (:func:`_admits`), which also accepts
    both neighbours of a boundary that lies within the decimal's last half digit.
    """
    have = decode_hex(hexes)
    x = np.array([float(s) for s in decimals], dtype=np.float64)
    r = formats.round_array(x, fmt)
    same = ((r == have) & (np.signbit(r) == np.signbit(have))) | (np.isnan(r) & np.isnan(have))
    suspect = ~same
    if fmt.precision < formats.FLOAT64.precision:
        # a boundary is a value of one more bit of precision that fmt itself does not have
        finer = Format(fmt.name, fmt.precision + 1, fmt.emin, fmt.emax)
        suspect |= np.isfinite(x) & (r != x) & (formats.round_array(x, finer) == x)
    return [int(i) for i in np.flatnonzero(suspect) if not _admits(decimals[i], have[i], fmt)]


def check_values(obj: Mapping[str, Any], prov: Mapping[str, Any]) -> List[str]:
    """Problems of the expected values of a case that passed :func:`check_case`: each
    ``hex`` must be the correct rounding into its format of the value its ``decimal``
    states (:func:`decimal_mismatches`). One message per array, naming the first value
    that disagrees; a check of the file alone, without the oracle."""
    exp = obj["expected"]
    arrays = [("expected.per_sample", exp["per_sample"], exp["per_sample"]["dtype"])] \
        if "per_sample" in exp else []
    order = REDUCTIONS if prov["dialect"] == "keras" else list(exp["reductions"])
    arrays += [(f"expected.reductions.{r}", exp["reductions"][r],
                exp["reductions"][r].get("dtype", prov["dtype"])) for r in order]
    arrays += [(f"expected.grad.{k}", v, v["dtype"]) for k, v in sorted(exp.get("grad", {}).items())]
    # one vectorised pass per format (a case has one or two) rather than one per array
    bad_at: Dict[int, List[int]] = {}
    for dtype in dict.fromkeys(a[2] for a in arrays):
        members = [k for k, a in enumerate(arrays) if a[2] == dtype]
        owner = [(k, i) for k in members for i in range(len(arrays[k][1]["hex"]))]
        bad = decimal_mismatches([d for k in members for d in arrays[k][1]["decimal"]],
                                 [h for k in members for h in arrays[k][1]["hex"]],
                                 formats.FORMATS[dtype])
        for j in bad:
            bad_at.setdefault(owner[j][0], []).append(owner[j][1])
    out = []
    for k in sorted(bad_at):
        where, arr, dtype = arrays[k]
        i, n = bad_at[k][0], len(bad_at[k])
        out.append(f"{where}[{i}]: hex {arr['hex'][i]} is not the {dtype} rounding of its "
                   f"decimal {arr['decimal'][i]}"
                   + (f" ({n} values of this array disagree)" if n > 1 else ""))
    return out


# --- decoding ------------------------------------------------------------------------------------------


def decode_hex(values) -> np.ndarray:
    """float64 array of hex-float strings (``nan``, ``inf`` included), exact."""
    return np.array([float.fromhex(h) for h in values], dtype=np.float64)


def encode_array(arr: Optional[np.ndarray]) -> Optional[Dict[str, Any]]:
    """``{"shape", "hex"}`` of an array of any supported format (None stays None)."""
    if arr is None:
        return None
    a = np.asarray(arr)
    return {"shape": list(a.shape), "hex": [formats.to_hex(v, trim=True) for v in a.astype(np.float64).ravel()]}


def decode_array(obj: Optional[Mapping[str, Any]], fmt: Format) -> Optional[np.ndarray]:
    """An encoded array as a NumPy array of `fmt`'s dtype (None stays None)."""
    if obj is None:
        return None
    return decode_hex(obj["hex"]).reshape(tuple(obj["shape"])).astype(fmt.dtype)


@dataclass
class Case:
    """One golden case with its arrays decoded.

    Attributes
    ----------
    id, dialect, loss, dtype : str
    params : dict
        Keyword arguments of the Keras function and class (a list is a tuple ``axis``), or
        of the torch function.
    tags : list of str
    y_true, y_pred : numpy.ndarray
        In `dtype` (``ml_dtypes.bfloat16`` for bfloat16 when installed); for a torch case
        its ``target`` and ``input``.
    sample_weight : numpy.ndarray or None
        None for a torch case (its ``weight``/``pos_weight`` are in `inputs`).
    per_sample : numpy.ndarray or None
        Expected ``function(y_true, y_pred, **params)``, in `per_sample_dtype` (Keras only;
        None for torch, whose unreduced output is ``reductions["none"]``).
    reductions : dict
        Reduction name (``"none"`` for None) -> expected ``Class(reduction=..., dtype=dtype,
        **params)(y_true, y_pred, sample_weight)``, in `dtype`; for torch
        ``function(input, target, reduction=..., **params, **arrays)`` in the format its
        ``dtype`` names.
    decimal : dict
        ``"per_sample"`` and each reduction -> array of 40-digit decimal strings.
    grad : dict
        Output name -> its expected gradient with respect to the prediction (in that
        input's format); ``grad_decimal`` the same as decimal strings.
    record : dict
        The line as read.
    inputs : dict
        Every input by the dialect's name, decoded (None where absent).
    """

    id: str
    dialect: str
    loss: str
    dtype: str
    params: Dict[str, Any]
    tags: List[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    sample_weight: Optional[np.ndarray]
    per_sample: np.ndarray
    per_sample_dtype: str
    reductions: Dict[str, np.ndarray]
    decimal: Dict[str, np.ndarray]
    record: Dict[str, Any] = field(repr=False, default_factory=dict)
    inputs: Dict[str, Optional[np.ndarray]] = field(repr=False, default_factory=dict)
    grad: Dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    grad_decimal: Dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "Case":
        fmt = formats.get_format(rec["dtype"])
        exp = rec["expected"]
        ps = exp.get("per_sample")
        dec = {} if ps is None else \
            {"per_sample": np.array(ps["decimal"], dtype=str).reshape(tuple(ps["shape"]))}
        red = {}
        for r, v in exp["reductions"].items():
            red[r] = decode_array(v, formats.get_format(v.get("dtype", fmt.name)))
            dec[r] = np.array(v["decimal"], dtype=str).reshape(tuple(v["shape"]))
        inputs = {k: decode_array(v, fmt) for k, v in rec["inputs"].items()}
        i, t = "y_pred", "y_true"
        if rec["dialect"] in FUNCTION_DIALECTS:  # the entry's names: input, target, logits, ...
            entry = table(rec["dialect"]).get(rec["loss"])
            i, t = (entry.names + (None,))[:2] if entry is not None else ("input", "target")
        return cls(id=rec["id"], dialect=rec["dialect"], loss=rec["loss"], dtype=rec["dtype"],
                   params=dict(rec["params"]), tags=list(rec["tags"]),
                   y_true=inputs.get(t),
                   y_pred=inputs[i],
                   sample_weight=inputs.get("sample_weight"),
                   per_sample=None if ps is None else decode_array(ps, formats.get_format(ps["dtype"])),
                   per_sample_dtype=None if ps is None else ps["dtype"], reductions=red, decimal=dec,
                   record=dict(rec), inputs=inputs,
                   grad={k: decode_array(v, formats.get_format(v["dtype"]))
                         for k, v in exp.get("grad", {}).items()},
                   grad_decimal={k: np.array(v["decimal"], dtype=str).reshape(tuple(v["shape"]))
                                 for k, v in exp.get("grad", {}).items()})


@dataclass
class VectorFile:
    """A golden-vector file: its provenance record and its cases (iterable, sized)."""

    path: Path
    provenance: Dict[str, Any]
    cases: List[Case]

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i):
        return self.cases[i]


def canonical_dir() -> Path:
    """The canonical set: ``spec/vectors`` of the source tree this package sits in, or,
    for an installed package, the copy installed under ``<prefix>/share/lossref/vectors``."""
    source = Path(__file__).resolve().parents[3] / "spec" / "vectors"
    if source.is_dir():
        return source
    installed = Path(sys.prefix) / "share" / "lossref" / "vectors"
    return installed if installed.is_dir() else source


def resolve(path_or_name: Union[str, Path]) -> Path:
    """A file path, or a canonical name ``dialect/loss/dtype`` (``.jsonl`` optional)."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    name = str(path_or_name)
    if name.endswith(".jsonl"):
        name = name[: -len(".jsonl")]
    if len(name.split("/")) == 3:
        q = canonical_dir() / f"{name}.jsonl"
        if q.is_file():
            return q
    raise FileNotFoundError(f"no golden-vector file {str(path_or_name)!r}: give a path to a "
                            f".jsonl file or a canonical name such as "
                            f"'keras/mean_squared_error/float32' (looked in {canonical_dir()})")


def parse_lines(data: bytes) -> List[Any]:
    """JSON objects of a file's bytes; ``ValueError`` naming the line if one is broken."""
    if data and not data.endswith(b"\n"):
        last = data.count(b"\n") + 1
        raise ValueError(f"truncated: the last line (line {last}) has no newline")
    out = []
    for n, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise ValueError(f"line {n} is not valid JSON ({e})") from None
    return out


def load(path_or_name: Union[str, Path]) -> VectorFile:
    """Read a golden-vector file and decode its arrays.

    Parameters
    ----------
    path_or_name : str or path
        A ``.jsonl`` file, or a name of the canonical set such as
        ``"keras/mean_squared_error/float32"``.

    Returns
    -------
    VectorFile
        ``.provenance`` (dict) and ``.cases`` (list of :class:`Case`); iterating it gives
        the cases.

    Raises
    ------
    FileNotFoundError
        No such file or canonical name.
    ValueError
        The file is truncated or a line breaks the format, or an expected hex is not the
        rounding of its decimal (the message names the line).
    """
    path = resolve(path_or_name)
    lines = parse_lines(path.read_bytes())
    if not lines:
        raise ValueError(f"{path}: empty file")
    probs = check_provenance(lines[0])
    if probs:
        raise ValueError(f"{path}: line 1: {probs[0]}")
    prov = lines[0]["provenance"]
    cases = []
    for n, rec in enumerate(lines[1:], start=2):
        probs = check_case(rec, prov) or check_values(rec, prov)
        if probs:
            raise ValueError(f"{path}: line {n}: {probs[0]}")
        cases.append(Case.from_record(rec))
    if len(cases) != prov["cases"]:
        raise ValueError(f"{path}: {len(cases)} cases, the provenance record says {prov['cases']} "
                         "(truncated file?)")
    return VectorFile(path, prov, cases)
