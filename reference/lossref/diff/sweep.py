"""``lossref sweep``: one input of an elementwise loss over every value of a format.

The framework (through the workers of ``lossref diff``) and the oracle evaluate the loss
on inputs of shape ``(N, 1)``: one input runs over every value of the format (all 65,536
bit patterns of float16 and bfloat16) or over a dense grid (float32, float64: log-spaced
over the whole range, both signs, subnormals, and the neighbourhoods of the points where
formulas switch); the other input is fixed. With one element per row the per-sample
values (Keras's functions; ``reduction='none'`` elsewhere) are the elementwise values.

Every value gets its error in ulps of the exact value and a status
(:func:`lossref.diff.compare.value_status`, budget
:func:`~lossref.diff.compare.budget_ulps` of one term). The report, ``sweep.json``
(schema in ``spec/sweep.md``), holds the worst error, the worst inputs in hex, the error
profile per binade, every input beyond the budget (as runs of consecutive inputs) and the
special inputs (NaN, ±inf) apart; ``sweep.md`` and ``sweep.png`` show the same.

The oracle works in chunks of :data:`CHUNK` consecutive inputs, spread with
:func:`lossref._procs.work_pool` (local processes or a Dask cluster). Each chunk's
results are cached on disk under a key of everything that decides them; an entry is used
only after its key, its checksum, its structure, the consistency of each rounded value
with its decimal digits, and one value re-derived by the oracle all check out. So an
interrupted sweep resumes where it stopped, and a corrupt entry is recomputed.
"""

from __future__ import annotations

import argparse
import contextlib
import fractions
import hashlib
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import SPEC_VERSION, __version__, _procs, formats
from ..vectors.fileformat import decode_hex, dumps, encode_array
from ..vectors.manifest import write_atomic

__all__ = ["SWEEP_FORMAT", "CACHE_FORMAT", "CHUNK", "SweepError", "Plan", "plan_sweep", "all_values",
           "grid_values", "switch_points", "parse_fixed", "chunk_spec", "chunk_key", "oracle_chunk",
           "ChunkCache", "default_cache_dir", "run_sweep", "register_commands"]

#: ``format`` of every ``sweep.json``; bumped when its layout changes.
SWEEP_FORMAT = "lossref-sweep/1"
#: Part of every cache key; bumped when the layout of an entry changes.
CACHE_FORMAT = "lossref-sweep-cache/1"
#: Inputs per oracle chunk (the unit of caching and of parallel work).
CHUNK = 1024
#: Inputs per framework call.
FRAMEWORK_BATCH = 1 << 16
#: Grid points of a float32/float64 sweep without ``--points``.
DEFAULT_POINTS = 1 << 16
MAX_POINTS = 1 << 22
#: How many of the worst inputs ``sweep.json`` lists.
WORST = 16
#: Neighbours (in ulps, each side) of every switch point on a grid.
NEIGHBOURS = 16
DIALECTS = ("keras", "torch", "optax", "tf")
_EXHAUSTIVE = ("float16", "bfloat16")
_PASSING = ("exact", "faithful", "within-budget")
STATUS_ORDER = ("exact", "faithful", "within-budget", "inaccurate", "mismatch", "error", "refused",
                "undecided")

#: Input kinds (:mod:`lossref.vectors.domains`) whose losses are elementwise: one value
#: per element for inputs of shape (N, 1). Fixed partner when the prediction varies, and
#: when the target varies (``"log-half"``: log(1/2) rounded into the format).
_KINDS: Dict[str, Tuple[Any, Any]] = {
    "real": (0.0, 0.0),
    "hinge": (1.0, 0.5),
    "counts": (1.0, 1.0),
    "binary": (1.0, 0.5),
    "distribution": (1.0, 0.5),
    "binary-logits": (1.0, 0.0),
    "poisson-nll": (1.0, 0.0),
    "soft-margin": (1.0, 0.5),
    "multilabel-logits": (1.0, 0.0),
    "hinge-embedding": (1.0, 0.5),
    "log-distribution": (0.5, "log-half"),
    "log-distribution-log": ("log-half", "log-half"),
}
#: kinds whose target enters through a batch-global convention (Keras's hinge: 0/1 labels
#: become -1/1 only when every label of the batch is 0 or 1): the target must stay fixed
_BATCH_GLOBAL_TARGET = ("hinge",)
_PROBABILITY_KINDS = ("binary", "distribution", "counts")
_LOGIT_KINDS = ("binary-logits", "poisson-nll", "soft-margin", "multilabel-logits", "log-distribution",
                "log-distribution-log")


class SweepError(ValueError):
    """A usage error of ``lossref sweep``: one line, exit code 2."""


class FrameworkError(RuntimeError):
    """The framework's worker could not start."""


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/lossref/sweep``, by default ``~/.cache/lossref/sweep``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lossref", "sweep")


def _hex(v: float) -> str:
    return formats.to_hex(v, trim=True)


# --- what is swept ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One sweep, every option checked: the loss, the varying and the fixed input (by the
    dialect's names), the parameters (JSON values) and the grid size (None: every value)."""

    dialect: str
    loss: str
    dtype: str
    kind: str
    vary: str
    fixed: str
    fixed_value: float
    params: Dict[str, Any]
    points: Optional[int]
    backend: str

    @property
    def fmt(self) -> formats.Format:
        return formats.get_format(self.dtype)

    @property
    def output(self) -> str:
        """The output compared: Keras's per-sample values, the others' ``'none'``."""
        return "per_sample" if self.dialect == "keras" else "none"

    def base_spec(self) -> Dict[str, Any]:
        """What every chunk of this sweep shares (part of each chunk's key)."""
        return {"dialect": self.dialect, "loss": self.loss, "dtype": self.dtype, "params": self.params,
                "vary": self.vary, "fixed": self.fixed, "fixed_hex": _hex(self.fixed_value)}


def _target(dialect: str, loss: str):
    from ..vectors.targets import get_target
    if dialect not in DIALECTS:
        raise SweepError(f"dialect {dialect!r} is not supported ({', '.join(DIALECTS)})")
    try:
        return get_target(dialect, loss)
    except KeyError as e:
        raise SweepError(e.args[0]) from None


def input_names(target) -> Tuple[str, str]:
    """``(prediction, target)``: the names of the loss's two positional inputs in its
    dialect (Keras: ``y_pred, y_true``; torch: ``input, target``; ...)."""
    if target.dialect == "keras":
        return "y_pred", "y_true"
    names = tuple(target.entry.names)
    if len(names) != 2:
        raise SweepError(f"{target.dialect} {target.loss} takes {len(names)} input tensor(s); a sweep "
                         "varies one of two")
    return names[0], names[1]


def _resolve_name(name: str, names: Tuple[str, str], what: str) -> str:
    """The dialect's name for `name` (``y_pred``/``y_true`` are aliases of the prediction
    and the target in every dialect)."""
    alias = {"y_pred": names[0], "y_true": names[1]}
    if name in names:
        return name
    if name in alias:
        return alias[name]
    listed = ", ".join(n if n == a else f"{n} (alias {a})" for n, a in zip(names, ("y_pred", "y_true")))
    raise SweepError(f"{what}: {name!r} is not an input of this loss; its inputs: {listed}")


def parse_fixed(text: str, fmt: formats.FormatLike) -> float:
    """The value of ``--fix NAME=TEXT``: hex (``0x1p-3``) or decimal (``0.125``, ``1e-3``),
    ``inf``, ``-inf`` or ``nan``; it must be exactly a value of `fmt`.

    >>> parse_fixed("0x1p-3", "bfloat16"), parse_fixed("0.125", "bfloat16")
    (0.125, 0.125)
    >>> parse_fixed("0.1", "bfloat16")
    Traceback (most recent call last):
    ...
    lossref.diff.sweep.SweepError: 0.1 is not exactly a bfloat16 value (nearest: 0x1.9ap-4 = 0.10009765625)
    """
    f = formats.get_format(fmt)
    s = text.strip()
    low = s.lower()
    if low in ("nan", "+nan", "-nan"):
        return math.nan
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if low in ("-inf", "-infinity"):
        return -math.inf
    try:
        if "0x" in low:  # float.fromhex rounds to float64: the text must have no more bits
            v = float.fromhex(s)
            exact = fractions.Fraction(v) if _hex_is_exact(s, v) else None
        else:
            exact = fractions.Fraction(s)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise SweepError(f"cannot read {text!r} as a number (hex such as 0x1p-3, or decimal)") from None
    if exact is None:
        raise SweepError(f"{text} is not exactly a float64 value, so not a {f.name} value")
    try:
        v = float(exact)
    except OverflowError:
        v = math.inf
    with np.errstate(over="ignore"):
        near = float(formats.round_array(np.array([v]), f)[0])
    if math.isinf(near):
        raise SweepError(f"{text} is beyond the largest finite {f.name} value ({_hex(f.max)} = {f.max!r})")
    if v == 0 and low.startswith("-"):
        v = near = -0.0  # the sign of zero is part of the value
    if fractions.Fraction(v) != exact or near != v:
        raise SweepError(f"{text} is not exactly a {f.name} value (nearest: {_hex(near)} = {near!r})")
    return v


def _hex_is_exact(text: str, v: float) -> bool:
    """Whether hex text `text` denotes exactly the float64 `v` (fromhex rounds)."""
    m = re.fullmatch(r"\s*([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?\s*", text)
    if not m or math.isinf(v):
        return False
    sign, ip, fp, ex = m.group(1), m.group(2) or "0", m.group(3) or "", m.group(4) or "0"
    num = int(ip + fp or "0", 16) * (fractions.Fraction(2) ** (int(ex) - 4 * len(fp)))
    return fractions.Fraction(abs(v)) == num and (sign != "-" or v <= 0)


def _default_fixed(kind: str, vary_target: bool, fmt: formats.Format) -> float:
    v = _KINDS[kind][1 if vary_target else 0]
    if v == "log-half":
        return float(formats.round_array(np.array([math.log(0.5)]), fmt)[0])
    return float(v)


def all_values(fmt: formats.FormatLike) -> Tuple[np.ndarray, Dict[str, int]]:
    """Every value of a 16-bit format, as float64: the finite ones ascending (−0 before +0),
    then −inf, +inf and one NaN; and the counts of bit patterns.

    >>> v, n = all_values("bfloat16")
    >>> n
    {'patterns': 65536, 'finite': 65280, 'inf': 2, 'nan': 254}
    >>> v.size, formats.to_hex(v[0]), formats.to_hex(v[-4]), v[-3:].tolist()
    (65283, '-0x1.fe00000000000p+127', '0x1.fe00000000000p+127', [-inf, inf, nan])
    """
    f = formats.get_format(fmt)
    bits = np.arange(1 << 16, dtype=np.uint32)
    with np.errstate(invalid="ignore"):
        if f.name == "float16":
            v = bits.astype(np.uint16).view(np.float16).astype(np.float64)
        elif f.name == "bfloat16":
            v = (bits << 16).view(np.float32).astype(np.float64)
        else:
            raise SweepError(f"every value of {f.name} is too many; use --points")
    nan = np.isnan(v)
    fin = v[np.isfinite(v)]
    counts = {"patterns": int(v.size), "finite": int(fin.size), "inf": int(np.isinf(v).sum()),
              "nan": int(nan.sum())}
    return _arrange(fin), counts


def _arrange(finite: np.ndarray, specials: bool = True) -> np.ndarray:
    """Distinct finite values ascending (−0 before +0), then −inf, +inf, NaN."""
    fin = np.asarray(finite, np.float64)
    key = np.signbit(fin) & (fin == 0)
    fin = fin[np.lexsort((~key, fin))]
    keep = np.ones(fin.size, bool)  # equal values of the same sign of zero are one input
    keep[1:] = (fin[1:] != fin[:-1]) | (np.signbit(fin[1:]) != np.signbit(fin[:-1]))
    fin = fin[keep]
    return np.concatenate([fin, [-np.inf, np.inf, np.nan]]) if specials else fin


def switch_points(plan: "Plan") -> List[float]:
    """Values of the varying input where a loss of this kind, or a framework's formula
    for it, changes regime: 0, ±1/2, ±1, ±2 and the fixed value, each numeric parameter
    (``delta``, ``beta``, ``margin``, ``eps``, ...) as an offset from the fixed value and
    on its own, Keras's ε-clip bounds ``1e-7`` and ``1 − 1e-7`` for probabilities, and
    where ``exp``, a square or a softplus overflows or underflows (``±log max``, ``±log
    tiny``, ``±20``, ``±sqrt max``). Rounded into the format; those out of range dropped.
    """
    f = plan.fmt
    y = plan.fixed_value if math.isfinite(plan.fixed_value) else 0.0
    pts = [0.0, 0.5, 1.0, 2.0, y, y + 1.0, y - 1.0]
    for v in plan.params.values():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            pts += [v, y + v, y - v, 1.0 - v]
    if plan.kind in _PROBABILITY_KINDS:
        pts += [1e-7, 1.0 - 1e-7]
    if plan.kind in _LOGIT_KINDS:
        pts += [math.log(f.max), math.log(f.tiny), 20.0, f.precision * math.log(2.0)]
    pts += [y + math.sqrt(f.max), y - math.sqrt(f.max), y + math.sqrt(f.tiny)]
    pts = np.asarray(pts, np.float64)
    pts = np.concatenate([pts, -pts])
    with np.errstate(over="ignore"):
        r = formats.round_array(pts, f)
    r = r[np.isfinite(r)]
    return sorted(set(float(v) for v in r))


def grid_values(fmt: formats.FormatLike, points: int, switches: Sequence[float] = ()) -> np.ndarray:
    """A dense grid of `fmt`: `points` values log-spaced in magnitude from the least
    subnormal to the largest finite value (half of each sign), ±0, ±the least subnormal,
    ±the least normal, ±max, and each of `switches` with its :data:`NEIGHBOURS` closest
    values on either side; arranged like :func:`all_values` (finite ascending, then −inf,
    +inf, NaN).

    >>> g = grid_values("float32", 16, [1.0])
    >>> g.size, g[-3:].tolist(), 1.0 in g, float(np.nextafter(np.float32(1), np.float32(2))) in g
    (56, [-inf, inf, nan], True, True)
    """
    f = formats.get_format(fmt)
    half = max(1, points // 2)
    lo, hi = math.log2(f.min_subnormal), math.log2(f.max)
    with np.errstate(over="ignore"):
        mag = formats.round_array(np.exp2(np.linspace(lo, hi, half)), f)
    mag = np.minimum(mag[np.isfinite(mag)], f.max)
    edges = np.array([0.0, f.min_subnormal, f.tiny, f.max])
    dt = np.float32 if f.name == "float32" else np.float64
    near = []
    for s in switches:
        x = dt(s)
        up, down = [x], [x]
        for _ in range(NEIGHBOURS):
            up.append(np.nextafter(up[-1], dt(np.inf)))
            down.append(np.nextafter(down[-1], dt(-np.inf)))
        near += [float(v) for v in up + down if np.isfinite(v)]
    vals = np.concatenate([mag, -mag, edges, -edges, np.asarray(near, np.float64)])
    return _arrange(vals[np.isfinite(vals)])


# --- planning (every usage error before any work) ---------------------------------------------


def plan_sweep(dialect: str, loss: str, dtype: Optional[str], vary: Optional[str] = None,
               fix: Sequence[str] = (), params: Sequence[str] = (), points: Optional[str] = None,
               backend: Optional[str] = None) -> Plan:
    """Check the options of one sweep; :class:`SweepError` (one line) for the first
    problem. Cheap: the dialect is probed on three values, no oracle or framework runs."""
    from ..vectors.targets import Rejected, check_inputs

    if dialect is None:
        raise SweepError(f"missing DIALECT ({', '.join(DIALECTS)})")
    if dialect not in DIALECTS:
        raise SweepError(f"dialect {dialect!r} is not supported ({', '.join(DIALECTS)})")
    if loss is None:
        raise SweepError("missing LOSS (`lossref list`, or the dialect's function names)")
    target = _target(dialect, loss)
    if dtype is None:
        raise SweepError("--dtype is required: float16, bfloat16 (every value), float32 or float64 (a grid)")
    try:
        fmt = formats.get_format(dtype)
    except TypeError as e:
        raise SweepError(f"--dtype: {e}") from None
    if fmt.name == "bfloat16" and not formats.has_ml_dtypes():
        raise SweepError("--dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes)")
    entry = getattr(target, "entry", None)
    if entry is not None and fmt.name not in entry.dtypes:
        raise SweepError(f"{dialect} {loss} is not defined for {fmt.name} (it is for {', '.join(entry.dtypes)})")
    n_points: Optional[int] = None
    if fmt.name in _EXHAUSTIVE:
        if points is not None:
            raise SweepError(f"--points is for float32 and float64; a {fmt.name} sweep takes every value")
    else:
        try:
            n_points = DEFAULT_POINTS if points is None else int(points)
        except ValueError:
            raise SweepError(f"--points must be a whole number; got {points!r}") from None
        if not 2 <= n_points <= MAX_POINTS:
            raise SweepError(f"--points must be between 2 and {MAX_POINTS}; got {n_points}")
    kind = target.kind
    if kind not in _KINDS:
        raise SweepError(f"{dialect} {loss} is not elementwise (its inputs are of kind {kind!r}); a sweep "
                         f"takes a loss of one value per element, of kind {', '.join(sorted(_KINDS))}")
    names = input_names(target)
    v = _resolve_name(vary or names[0], names, "--vary")
    other = names[1] if v == names[0] else names[0]
    if v == names[1] and kind in _BATCH_GLOBAL_TARGET:
        raise SweepError(f"--vary {vary}: {loss}'s labels follow a batch-global convention (0/1 become "
                         "-1/1 only when every label is 0 or 1), so the target cannot vary per element")
    fixed_value = _default_fixed(kind, v == names[1], fmt)
    seen = set()
    for item in fix:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise SweepError(f"--fix expects NAME=VALUE, e.g. {other}=0x1p-3; got {item!r}")
        name = _resolve_name(name.strip(), names, f"--fix {item}")
        if name == v:
            raise SweepError(f"--fix {item}: {name} is the input that varies (--vary); fix {other}")
        if name in seen:
            raise SweepError(f"--fix {item}: {name} is fixed twice")
        seen.add(name)
        try:
            fixed_value = parse_fixed(text, fmt)
        except SweepError as e:
            raise SweepError(f"--fix {item}: {e}") from None
    kw: Dict[str, Any] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SweepError(f"--param expects KEY=VALUE, e.g. delta=0.5; got {item!r}")
        try:
            kw[key] = json.loads(raw)
        except json.JSONDecodeError:
            kw[key] = raw
    if dialect == "keras":
        known = set(target.defaults())
        unknown = sorted(set(kw) - known)
        if unknown:
            raise SweepError(f"--param: {loss} has no parameter {', '.join(map(repr, unknown))}; its "
                             f"parameters: {', '.join(sorted(known)) or 'none'}")
    if backend is None:
        backend = "cpu" if dialect != "keras" else _default_keras_backend()
    elif dialect == "keras" and backend not in ("numpy", "jax", "torch", "tensorflow"):
        raise SweepError(f"--backend {backend}: Keras backends are numpy, jax, torch and tensorflow")
    elif dialect != "keras" and backend != "cpu":
        raise SweepError(f"--backend {backend}: {dialect} runs on cpu only")
    plan = Plan(dialect, loss, fmt.name, kind, v, other, fixed_value, kw, n_points, backend)
    probe = np.array([0.25, 0.5, 0.75])
    try:
        shape = check_inputs(target, fmt, kw, _arrays(plan, probe))
    except Rejected as e:
        raise SweepError(f"{dialect} {loss} refuses {other} = {_hex(fixed_value)} with {v} in (1/4, 1/2, "
                         f"3/4) and --param {kw or 'none'}: {e}") from None
    if int(np.prod(shape)) != probe.size:
        raise SweepError(f"{dialect} {loss} is not elementwise here: inputs of shape (3, 1) give shape "
                         f"{tuple(shape)}; a sweep needs one value per element")
    _check_installed(plan)
    return plan


def _default_keras_backend() -> str:
    from . import runner
    have = runner.installed_backends()
    if not have:
        raise SweepError("no Keras backend is installed (pip install 'lossref[keras]')")
    return "numpy" if "numpy" in have else have[0]


def _check_installed(plan: Plan) -> None:
    import importlib.util
    from . import runner
    if plan.dialect == "keras":
        if plan.backend not in runner.installed_backends():
            raise SweepError(f"--backend {plan.backend}: that Keras backend is not installed "
                             "(pip install 'lossref[keras]')")
        return
    needs, extra = {"torch": (("torch",), "torch"), "optax": (("jax", "optax"), "jax"),
                    "tf": (("tensorflow",), "tf")}[plan.dialect]
    if any(importlib.util.find_spec(m) is None for m in needs):
        raise SweepError(f"{plan.dialect} is not installed (pip install 'lossref[{extra}]')")


def _arrays(plan_or_spec, values: np.ndarray) -> Dict[str, Any]:
    """The inputs of a call on `values`, by the dialect's names: shape (n, 1) each."""
    if isinstance(plan_or_spec, Plan):
        vary, fixed, dialect, y = plan_or_spec.vary, plan_or_spec.fixed, plan_or_spec.dialect, \
            plan_or_spec.fixed_value
    else:
        vary, fixed, dialect = plan_or_spec["vary"], plan_or_spec["fixed"], plan_or_spec["dialect"]
        y = float.fromhex(plan_or_spec["fixed_hex"]) if plan_or_spec["fixed_hex"] != "nan" else math.nan
    x = np.asarray(values, np.float64).reshape(-1, 1)
    out = {vary: x, fixed: np.full_like(x, y)}
    if dialect == "keras":
        out["sample_weight"] = None
    return out


def _refusals(plan: Plan, target, values: np.ndarray, bar=None) -> Dict[int, str]:
    """Inputs the dialect refuses (a domain check: ``ValueError``/``TypeError``), by index,
    with the reason: the cheap float evaluation on the whole set, halved where it refuses."""
    from ..vectors.targets import Rejected, check_inputs

    out: Dict[int, str] = {}

    def probe(lo: int, hi: int) -> None:
        try:
            check_inputs(target, plan.fmt, plan.params, _arrays(plan, values[lo:hi]))
            if bar:
                bar.update(hi - lo)
            return
        except Rejected as e:
            if hi - lo == 1:
                out[lo] = _stable(str(e))
                if bar:
                    bar.update(1)
                return
        mid = (lo + hi) // 2
        probe(lo, mid)
        probe(mid, hi)

    if values.size:
        probe(0, values.size)
    return out


_ADDRESS_RE = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def _stable(text: str) -> str:
    """An error message on one line, without object addresses (same run, same bytes)."""
    lines = str(text).strip().splitlines()
    return _ADDRESS_RE.sub("0x…", lines[0] if lines else "")


# --- the oracle, in chunks --------------------------------------------------------------------


def chunk_spec(plan: Plan, values: np.ndarray) -> Dict[str, Any]:
    """The picklable description of one chunk: the sweep's :meth:`Plan.base_spec` and the
    varying input's values in hex."""
    return dict(plan.base_spec(), hex=[_hex(v) for v in values])


def chunk_key(spec: Dict[str, Any]) -> str:
    """Hex SHA-256 of everything that decides a chunk's oracle results: the cache format,
    the lossref and spec versions, and the whole :func:`chunk_spec`."""
    blob = dumps({"cache": CACHE_FORMAT, "lossref": __version__, "spec": SPEC_VERSION, "chunk": spec})
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def oracle_chunk(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The oracle's results on one chunk (runs in a pool worker): ``{"dtype", "hex",
    "decimal", "undecided"}``, the exact value of each input correctly rounded into the
    output format and to 40 significant digits; an input the oracle cannot decide (or the
    dialect refuses) gets ``null`` in both and ``[index, reason]`` in ``undecided``."""
    from ..vectors.targets import Rejected, expected_of, get_target

    target = get_target(spec["dialect"], spec["loss"])
    fmt = formats.get_format(spec["dtype"])
    values = decode_hex(spec["hex"])
    n = values.size
    hexes: List[Optional[str]] = [None] * n
    decs: List[Optional[str]] = [None] * n
    undecided: List[List[Any]] = []
    dtypes = set()
    reductions = () if spec["dialect"] == "keras" else ("none",)

    def solve(lo: int, hi: int) -> None:
        try:
            exp = expected_of(target, fmt, spec["params"], _arrays(spec, values[lo:hi]), reductions)
        except Rejected as e:
            if hi - lo == 1:
                undecided.append([lo, _stable(str(e))])
                return
            mid = (lo + hi) // 2
            solve(lo, mid)
            solve(mid, hi)
            return
        out = exp["per_sample"] if spec["dialect"] == "keras" else exp["reductions"]["none"]
        if len(out["hex"]) != hi - lo:
            raise RuntimeError(f"{spec['loss']}: {hi - lo} inputs gave {len(out['hex'])} values")
        hexes[lo:hi] = out["hex"]
        decs[lo:hi] = out["decimal"]
        dtypes.add(out.get("dtype") or spec["dtype"])

    if n:
        solve(0, n)
    _test_delay()
    dtype = sorted(dtypes)[0] if dtypes else spec["dtype"]
    return json.loads(dumps({"dtype": dtype, "hex": hexes, "decimal": decs, "undecided": undecided}))


def _test_delay() -> None:
    """Let lossref's own tests slow the oracle down (seconds per chunk) to interrupt it."""
    delay = os.environ.get("LOSSREF_SWEEP_TEST_DELAY")
    if delay:
        import time
        time.sleep(float(delay))


def _sha256(obj: Any) -> str:
    return hashlib.sha256(dumps(obj).encode("ascii")).hexdigest()


def _no_constant(name: str):
    raise ValueError(f"{name} is not canonical JSON")


#: a decimal of the oracle: 40 significant digits, 0, nan or ±inf
_NUMBER_RE = re.compile(r"-?[0-9]\.[0-9]+e[+-][0-9]+|0|nan|-?inf")


def payload_problem(payload: Any, spec: Dict[str, Any]) -> Optional[str]:
    """Why `payload` cannot be the oracle's results for `spec` (None: it can): its
    structure, every rounded value exact in its format, every decimal a number, and each
    rounded value within half an ulp of its decimal digits (what a correct rounding is)."""
    n = len(spec["hex"])
    if not isinstance(payload, dict) or set(payload) != {"dtype", "hex", "decimal", "undecided"}:
        return "wrong structure"
    if payload["dtype"] not in formats.FORMATS:
        return "unknown output format"
    hexes, decs, und = payload["hex"], payload["decimal"], payload["undecided"]
    if not (isinstance(hexes, list) and isinstance(decs, list) and len(hexes) == n == len(decs)):
        return f"not {n} values"
    if not isinstance(und, list) or not all(isinstance(u, list) and len(u) == 2 and type(u[0]) is int
                                            and isinstance(u[1], str) for u in und):
        return "malformed undecided list"
    idx = [u[0] for u in und]
    if idx != sorted(set(idx)) or (idx and not 0 <= idx[0] <= idx[-1] < n):
        return "malformed undecided list"
    missing = set(idx)
    f = formats.get_format(payload["dtype"])
    vals, digits = [], []
    for i, (h, d) in enumerate(zip(hexes, decs)):
        if i in missing:
            if h is not None or d is not None:
                return f"value {i}: undecided but has a value"
            vals.append(math.nan)
            digits.append(None)
            continue
        if not isinstance(h, str) or not isinstance(d, str) or not _NUMBER_RE.fullmatch(d):
            return f"value {i}: missing or not a number"
        try:
            vals.append(formats.from_hex(h, f))
        except ValueError:
            return f"value {i}: {h!r} is not a {f.name} value"
        digits.append(d)
    err = ulp_errors(np.array(vals), digits, f, edges=(0.5,))
    bad = np.flatnonzero(err > 0.5)
    if bad.size:
        i = int(bad[0])
        return f"value {i}: {hexes[i]} is not the rounding of {decs[i]}"
    return None


class ChunkCache:
    """Checked oracle results of sweep chunks under `folder`, one JSON file per chunk
    named by its key (:func:`chunk_key`).

    An entry is ``{"cache", "key", "sha256", "payload"}``. :meth:`get` uses it only when
    the format, the key and the payload's SHA-256 match, :func:`payload_problem` finds
    nothing, and one of its values (chosen by the key) re-derived by the oracle is the
    same; otherwise the entry is reported on stderr, removed, and the chunk recomputed.
    Writes are atomic; a folder that cannot be written is reported once.
    """

    def __init__(self, folder: str, warn: Optional[Callable[[str], None]] = None,
                 recheck: Callable[[Dict[str, Any]], Dict[str, Any]] = oracle_chunk) -> None:
        self.folder = folder
        self.writable = True
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self._recheck = recheck

    def path(self, key: str) -> str:
        return os.path.join(self.folder, key + ".json")

    def _problem(self, path: str, key: str, spec: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        try:
            with open(path, "rb") as f:
                entry = json.loads(f.read(), parse_constant=_no_constant)
        except OSError as e:
            return None, f"unreadable: {e.strerror or e}"
        except ValueError:
            return None, "not valid JSON"
        if not isinstance(entry, dict) or set(entry) != {"cache", "key", "sha256", "payload"} \
                or entry["cache"] != CACHE_FORMAT:
            return None, "wrong structure"
        if entry["key"] != key:
            return None, "wrong key"
        if entry["sha256"] != _sha256(entry["payload"]):
            return None, "checksum mismatch"
        payload = entry["payload"]
        problem = payload_problem(payload, spec)
        if problem:
            return None, problem
        decided = [i for i in range(len(spec["hex"])) if payload["hex"][i] is not None]
        if decided:  # one value re-derived: a well-formed but wrong entry does not pass
            i = decided[int(key[:12], 16) % len(decided)]
            again = self._recheck(dict(spec, hex=[spec["hex"][i]]))
            if (again["hex"][0], again["decimal"][0], again["dtype"]) != \
                    (payload["hex"][i], payload["decimal"][i], payload["dtype"]):
                return None, f"value {i} re-derived differs"
        return payload, None

    def get(self, spec: Dict[str, Any], key: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The checked payload of `spec`'s chunk, or None (missing, or corrupt: reported
        and removed)."""
        key = key or chunk_key(spec)
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        payload, problem = self._problem(path, key, spec)
        if problem is None:
            return payload
        self._warn(f"lossref sweep: warning: cache entry {path} is corrupt ({problem}); recomputed")
        try:
            os.remove(path)
        except OSError:
            pass
        return None

    def put(self, spec: Dict[str, Any], payload: Dict[str, Any], key: Optional[str] = None) -> None:
        """Store `payload` as the results of `spec`'s chunk (atomically)."""
        if not self.writable:
            return
        key = key or chunk_key(spec)
        entry = {"cache": CACHE_FORMAT, "key": key, "sha256": _sha256(payload), "payload": payload}
        try:
            write_atomic(Path(self.path(key)), (dumps(entry) + "\n").encode("ascii"))
        except OSError as e:
            self.writable = False
            self._warn(f"lossref sweep: warning: cannot write the cache {self.folder} "
                       f"({e.strerror or e}); going on without it")


def run_oracle(plan: Plan, values: np.ndarray, cache: Optional[ChunkCache], mapper, bar=None) -> Dict[str, Any]:
    """The oracle's results on `values` (the inputs the dialect accepts), chunk by chunk:
    cached chunks read back and checked, the others computed with `mapper` (an ordered
    ``map``) and stored as each arrives. Returns the concatenated payload."""
    specs = [chunk_spec(plan, values[i:i + CHUNK]) for i in range(0, values.size, CHUNK)]
    keys = [chunk_key(s) for s in specs]
    got: Dict[int, Dict[str, Any]] = {}
    for i, (s, k) in enumerate(zip(specs, keys)):
        hit = cache.get(s, k) if cache else None
        if hit is not None:
            got[i] = hit
            if bar:
                bar.update(len(s["hex"]))
    todo = [i for i in range(len(specs)) if i not in got]
    run = map if len(todo) <= 1 else mapper
    for i, payload in zip(todo, run(oracle_chunk, [specs[i] for i in todo])):
        payload = json.loads(dumps(payload))  # what a cache hit gives, byte for byte
        if cache:
            cache.put(specs[i], payload, keys[i])
        got[i] = payload
        if bar:
            bar.update(len(specs[i]["hex"]))
    out = {"dtype": None, "hex": [], "decimal": [], "undecided": []}
    for i in range(len(specs)):
        p = got[i]
        base = i * CHUNK
        out["dtype"] = out["dtype"] or p["dtype"]
        out["hex"] += p["hex"]
        out["decimal"] += p["decimal"]
        out["undecided"] += [[base + j, why] for j, why in p["undecided"]]
    return out


# --- the framework ----------------------------------------------------------------------------


def run_framework(plan: Plan, values: np.ndarray, timeout: float, bar=None) -> Dict[str, Any]:
    """The framework's values on `values`, through ``lossref diff``'s workers, in calls of
    :data:`FRAMEWORK_BATCH` inputs; a call that raises is halved until the inputs that make
    it raise are alone. Returns ``{"values", "errors", "dtypes", "header"}``."""
    from . import runner

    computed = np.full(values.size, np.nan)
    errors: Dict[int, str] = {}
    dtypes = set()
    header: Dict[str, Any] = {}
    pending = [(lo, min(lo + FRAMEWORK_BATCH, values.size)) for lo in range(0, values.size, FRAMEWORK_BATCH)]
    expected = {"per_sample": {}, "reductions": {}} if plan.dialect == "keras" else {"reductions": {"none": {}}}
    while pending:
        cases = []
        for lo, hi in pending:
            ins = _arrays(plan, values[lo:hi])
            cases.append({"id": f"sweep/{lo}-{hi}", "dialect": plan.dialect, "loss": plan.loss,
                          "dtype": plan.dtype, "params": plan.params, "tags": [],
                          "inputs": {k: encode_array(v) for k, v in ins.items()}, "expected": expected})
        out = runner.run_backend(plan.backend, cases, timeout=timeout, framework=plan.dialect)
        if not out["results"] and out["header"].get("error"):
            raise FrameworkError(out["header"]["error"])
        header = out["header"]
        nxt = []
        for (lo, hi), case in zip(pending, cases):
            res = out["results"].get(case["id"]) or {"error": "no result returned", "kind": "crash"}
            got = res.get("per_sample") if plan.dialect == "keras" else (res.get("reductions") or {}).get("none")
            err, kind = res.get("error"), res.get("kind")
            if err is None and (got is None or "error" in got):
                err = (got or {}).get("error", "no output returned")
                kind = (got or {}).get("kind", "missing")
            if err is None:
                v = decode_hex(got["hex"])
                if v.size == hi - lo:
                    computed[lo:hi] = v
                    dtypes.add(got.get("dtype") or plan.dtype)
                    if bar:
                        bar.update(hi - lo)
                    continue
                err, kind = f"output of shape {tuple(got['shape'])} for {hi - lo} inputs", "shape"
            if kind == "exception" and hi - lo > 1:
                mid = (lo + hi) // 2
                nxt += [(lo, mid), (mid, hi)]
                continue
            for i in range(lo, hi):
                errors[i] = _stable(err)
            if bar:
                bar.update(hi - lo)
        pending = nxt
    return {"values": computed, "errors": errors, "dtypes": sorted(dtypes), "header": header}


# --- comparing and summarising ----------------------------------------------------------------


def json_num(x: Optional[float]):
    if x is None:
        return None
    return "inf" if math.isinf(x) else round(float(x), 4)


def ulp_errors(computed: np.ndarray, decimals: Sequence[Optional[str]], fmt: formats.FormatLike,
               edges: Sequence[float] = (0.5, 1.0, 4.0)) -> np.ndarray:
    """``formats.ulp_error(computed[i], decimals[i], fmt)`` for every element (NaN where the
    decimal is None), fast: in float64 where that decides the same number.

    For formats of 24 bits or fewer, float64 holds the 40-digit exact value to within
    2^-29 ulp of the format, so the error is computed in NumPy; an element goes through
    :func:`lossref.formats.ulp_error` on the decimal (at 200 bits, like ``lossref diff``)
    when it is special, overflows, lies on a power of two (its binade could be the one
    below), or when its error is so close to one of `edges` (the status boundaries) or
    to a rounding boundary of the 4 decimals reported that float64 might fall on the
    other side. float64 output: every element the slow way.
    """
    from .compare import exact_from_decimal

    f = formats.get_format(fmt)
    c = np.asarray(computed, np.float64).ravel()
    have = np.array([d is not None for d in decimals], dtype=bool)
    xa = np.array([float(d) if d is not None else np.nan for d in decimals], dtype=np.float64)
    err = np.full(c.size, np.nan)
    slow = have.copy()
    if f.precision <= 24 and c.size:
        with np.errstate(all="ignore"):
            ax = np.abs(xa)
            m, e = np.frexp(ax)
            ulp = np.ldexp(1.0, np.maximum(e - 1, f.emin) - f.precision + 1)
            zero = np.array([d == "0" for d in decimals], dtype=bool)
            ulp = np.where(ax == 0, f.min_subnormal, ulp)
            threshold = math.ldexp(2.0 - 2.0 ** -f.precision, f.emax)
            fast = have & np.isfinite(c) & np.isfinite(xa) & (ax < threshold * (1 - 2.0 ** -30)) \
                & (m != 0.5) & ((ax != 0) | zero)
            u = np.abs(c - xa) / ulp
            tol = 2.0 ** -27 + 2.0 ** -50 * u
            near = np.zeros(c.size, dtype=bool)
            for edge in edges:
                near |= np.abs(u - edge) <= tol
            scaled = u * 1e4
            near |= np.abs(scaled - np.floor(scaled) - 0.5) <= tol * 1e4 + 1e-6
            fast &= ~near
        err[fast] = u[fast]
        slow = have & ~fast
    for i in np.flatnonzero(slow):
        err[i] = formats.ulp_error(float(c[i]), exact_from_decimal(decimals[i]), f)
    return err


def classify(computed: np.ndarray, oracle: Dict[str, Any], fmt: formats.Format, budget: float,
             bar=None) -> Tuple[np.ndarray, List[str]]:
    """ulp error (NaN where there is none) and status of every input that both sides
    evaluated: :func:`lossref.diff.compare.value_status` for a sweep input (an
    adversarial one: an error beyond the budget is not called a convention on its size
    alone), vectorised; ``undecided`` where the oracle has no value."""
    c = np.asarray(computed, np.float64)
    ulps = ulp_errors(c, oracle["decimal"], fmt, edges=(0.5, 1.0, budget))
    have = np.array([h is not None for h in oracle["hex"]], dtype=bool)
    e = np.array([float.fromhex(h) if h is not None else np.nan for h in oracle["hex"]], dtype=np.float64)
    exact = (c == e) | (np.isnan(c) & np.isnan(e))
    special = np.isnan(e) | np.isinf(e)
    status = np.where(exact, "exact", np.where(ulps <= 1, "faithful", np.where(
        ulps <= budget, "within-budget", np.where(special, "mismatch", "inaccurate")))).astype(object)
    status[~have] = "undecided"
    if bar:
        bar.update(c.size)
    return ulps, [str(s) for s in status]


def _runs(idx: Sequence[int]) -> List[Tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted indices."""
    out: List[Tuple[int, int]] = []
    for i in idx:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _binade(v: float) -> Optional[int]:
    return None if v == 0 else math.frexp(abs(v))[1] - 1


def summarize(plan: Plan, values: np.ndarray, counts: Dict[str, Any], computed: np.ndarray,
              oracle: Dict[str, Any], ulps: np.ndarray, status: List[str], fw: Dict[str, Any],
              refused: Dict[int, str], command: str, plot: Optional[str]) -> Dict[str, Any]:
    """The ``sweep.json`` document (schema: ``spec/sweep.md``)."""
    from .compare import budget_ulps

    budget = budget_ulps(1)
    fmt_out = formats.get_format(oracle.get("dtype") or plan.dtype)
    n_fin = int(np.isfinite(values).sum())
    why: Dict[int, str] = {}
    for i, r in refused.items():
        status[i], why[i] = "refused", r
    for i, r in fw["errors"].items():
        status[i], why[i] = "error", r
        ulps[i] = np.nan
    for i, r in oracle["undecided"]:
        if status[i] == "undecided":
            why[i] = r
    hexes = [_hex(v) for v in values]

    def point(i: int) -> Dict[str, Any]:
        d = {"x": hexes[i], "framework": None if status[i] in ("refused", "undecided", "error") else
             _hex(computed[i]), "exact": oracle["hex"][i], "decimal": oracle["decimal"][i],
             "ulp": None if np.isnan(ulps[i]) else json_num(ulps[i]), "status": status[i]}
        if i in why:
            d["reason"] = why[i]
        return d

    fin = range(n_fin)
    tally = {s: 0 for s in STATUS_ORDER}
    for i in fin:
        tally[status[i]] += 1
    scored = [i for i in fin if not np.isnan(ulps[i])]
    u = ulps[:n_fin]
    max_ulp = float(np.nanmax(u)) if scored else None
    finite_u = u[np.isfinite(u)]
    max_finite = float(finite_u.max()) if finite_u.size else None
    worst = sorted(scored, key=lambda i: (-ulps[i], i))[:WORST]
    worst_finite = sorted((i for i in scored if np.isfinite(ulps[i])), key=lambda i: (-ulps[i], i))[:WORST]
    over = [i for i in fin if status[i] in ("inaccurate", "mismatch")]

    def ranges(idx: Sequence[int], with_worst: bool, label: Optional[Dict[int, str]] = None) -> List[Dict[str, Any]]:
        out = []
        for a, b in _runs(idx):
            if label is not None:  # split a run where the reason changes
                start = a
                for j in range(a, b + 1):
                    if j == b or label[j + 1] != label[j]:
                        out.append({"from": hexes[start], "to": hexes[j], "values": j - start + 1,
                                    "reason": label[j]})
                        start = j + 1
                continue
            r = {"from": hexes[a], "to": hexes[b], "values": b - a + 1}
            if with_worst:
                k = max(range(a, b + 1), key=lambda j: (ulps[j], -j))
                r.update(max_ulp=json_num(ulps[k]), worst=hexes[k])
            out.append(r)
        return out

    profile = []
    for i in fin:
        key = (-1 if math.copysign(1.0, values[i]) < 0 else 1, _binade(values[i]))
        if not profile or profile[-1]["_key"] != key:
            profile.append({"_key": key, "sign": key[0], "binade": key[1], "from": hexes[i], "to": hexes[i],
                            "values": 0, "evaluated": 0, "max_ulp": None, "over_budget": 0, "errors": 0,
                            "_max": -1.0})
        row = profile[-1]
        row["to"] = hexes[i]
        row["values"] += 1
        if status[i] == "error":
            row["errors"] += 1
        elif not np.isnan(ulps[i]):
            row["evaluated"] += 1
            row["_max"] = max(row["_max"], float(ulps[i]))
            row["over_budget"] += status[i] in ("inaccurate", "mismatch")
    for row in profile:
        row["max_ulp"] = json_num(row["_max"]) if row["evaluated"] else None
        del row["_key"], row["_max"]
    specials = []
    for i in range(n_fin, values.size):
        d = point(i)
        x = values[i]
        d["patterns"] = counts.get("nan", 1) if math.isnan(x) else 1
        specials.append(d)
    special_bad = [d for d in specials if d["status"] not in _PASSING + ("refused",)]
    observed = fw["dtypes"]
    dtype_ok = all(d == fmt_out.name for d in observed)
    header = fw.get("header") or {}
    doc = {
        "format": SWEEP_FORMAT,
        "command": command,
        "lossref_version": __version__,
        "spec_version": SPEC_VERSION,
        "framework": {"name": plan.dialect, "backend": header.get("backend", plan.backend),
                      "version": header.get("framework_version"), "versions": header.get("versions", {})},
        "sweep": {"dialect": plan.dialect, "loss": plan.loss, "dtype": plan.dtype, "output": plan.output,
                  "vary": plan.vary, "fixed": {"name": plan.fixed, "hex": _hex(plan.fixed_value)},
                  "params": plan.params,
                  "mode": "all" if plan.points is None else "grid", "points": plan.points},
        "inputs": dict(counts, values=int(values.size)),
        "dtype": {"expected": fmt_out.name, "framework": observed[0] if len(observed) == 1 else (observed or None)},
        "budget_ulp": budget,
        "max_ulp": json_num(max_ulp),
        "max_finite_ulp": json_num(max_finite),
        "within_budget": not over and not fw["errors"] and not special_bad and dtype_ok
        and tally["undecided"] == 0,
        "counts": tally,
        "worst": [point(i) for i in worst],
        "worst_finite": [point(i) for i in worst_finite],
        "over_budget": {"values": len(over), "ranges": ranges(over, True)},
        "errors": {"values": sum(1 for i in fin if status[i] == "error"),
                   "ranges": ranges([i for i in fin if status[i] == "error"], False, why)},
        "refused": {"values": sum(1 for i in fin if status[i] == "refused"),
                    "ranges": ranges([i for i in fin if status[i] == "refused"], False, why)},
        "undecided": {"values": sum(1 for i in fin if status[i] == "undecided"),
                      "ranges": ranges([i for i in fin if status[i] == "undecided"], False, why)},
        "specials": specials,
        "profile": profile,
        "segments": segments(profile, budget),
        "plot": plot,
    }
    return doc


def _row_class(row: Dict[str, Any], budget: float) -> str:
    if row["errors"]:
        return "error"
    m = row["max_ulp"]
    if m is None:
        return "not evaluated"
    m = math.inf if m == "inf" else m
    if m <= 0.5:
        return "correctly rounded"
    if m <= 1:
        return "faithful"
    if m <= budget:
        return "within budget"
    return "over budget"


def segments(profile: List[Dict[str, Any]], budget: float) -> List[Dict[str, Any]]:
    """Consecutive binades of the profile merged while their class (correctly rounded,
    faithful, within budget, over budget, error, not evaluated) stays the same."""
    out: List[Dict[str, Any]] = []
    for row in profile:
        cls = _row_class(row, budget)
        if out and out[-1]["class"] == cls:
            s = out[-1]
            s["to"] = row["to"]
            s["values"] += row["values"]
            s["over_budget"] += row["over_budget"]
            s["errors"] += row["errors"]
            if row["max_ulp"] is not None:
                s["max_ulp"] = row["max_ulp"] if s["max_ulp"] is None else _max_num(s["max_ulp"], row["max_ulp"])
        else:
            out.append({"from": row["from"], "to": row["to"], "class": cls, "values": row["values"],
                        "max_ulp": row["max_ulp"], "over_budget": row["over_budget"], "errors": row["errors"]})
    return out


def _max_num(a, b):
    if "inf" in (a, b):
        return "inf"
    return max(a, b)


# --- outputs ----------------------------------------------------------------------------------


def _dec(h: Optional[str]) -> str:
    """A short decimal of a hex value for tables."""
    if h is None:
        return "–"
    v = float.fromhex(h) if h not in ("nan", "-nan") else math.nan
    return f"{v:.6g}"


def _ulp_text(u) -> str:
    if u is None:
        return "–"
    return "inf" if u == "inf" else f"{u:.4g}"


def render_md(doc: Dict[str, Any], max_rows: int = 40) -> str:
    """``sweep.md``: the summary, the profile in segments, the worst inputs, the runs of
    inputs beyond the budget (the first `max_rows`), the special inputs and the plot."""
    s, fw, inp = doc["sweep"], doc["framework"], doc["inputs"]
    what = (f"every value of {s['dtype']} ({inp['patterns']:,} bit patterns)" if s["mode"] == "all"
            else f"a grid of {inp['values']:,} {s['dtype']} values")
    lines = [f"# Sweep: {s['dialect']} {s['loss']} ({s['dtype']})", "",
             f"`{doc['command']}`", "",
             f"{fw['name']} {fw['version']} (backend {fw['backend']}); lossref {doc['lossref_version']}, "
             f"spec {doc['spec_version']}.", "",
             f"`{s['vary']}` runs over {what}; `{s['fixed']['name']}` = `{s['fixed']['hex']}`"
             + (f"; parameters `{json.dumps(s['params'], sort_keys=True)}`" if s["params"] else "") + ".",
             "", _summary(doc), ""]
    lines += ["## Error profile", "", "| from | to | values | max ulp | beyond budget | class |",
              "|---|---|---|---|---|---|"]
    for g in doc["segments"]:
        lines.append(f"| `{g['from']}` ({_dec(g['from'])}) | `{g['to']}` ({_dec(g['to'])}) | {g['values']:,} | "
                     f"{_ulp_text(g['max_ulp'])} | {g['over_budget']:,} | {g['class']} |")
    if doc["plot"]:
        lines += ["", f"![error profile]({doc['plot']})"]
    n_inf = sum(1 for w in doc["worst"] if w["ulp"] == "inf")
    lines += ["", "## Worst inputs", ""]
    if n_inf:
        lines += [f"Infinite errors (an overflow, a NaN, or a special value where the exact value is "
                  f"finite) first appear at `{doc['worst'][0]['x']}`; every such input is in the runs "
                  f"beyond the budget below. The largest finite errors:", ""]
    lines += [f"| {s['vary']} | framework | exact (rounded) | exact | ulp | status |", "|---|---|---|---|---|---|"]
    for w in doc["worst_finite"]:
        lines.append(f"| `{w['x']}` | `{w['framework']}` | `{w['exact']}` | {w['decimal']} | "
                     f"{_ulp_text(w['ulp'])} | {w['status']} |")
    ob = doc["over_budget"]
    lines += ["", f"## Beyond the budget ({doc['budget_ulp']:g} ulp): {ob['values']:,} inputs in "
                  f"{len(ob['ranges']):,} runs", ""]
    if ob["ranges"]:
        lines += ["| from | to | values | max ulp | worst |", "|---|---|---|---|---|"]
        for r in ob["ranges"][:max_rows]:
            lines.append(f"| `{r['from']}` | `{r['to']}` | {r['values']:,} | {_ulp_text(r['max_ulp'])} "
                         f"| `{r['worst']}` |")
        if len(ob["ranges"]) > max_rows:
            lines.append(f"\n{len(ob['ranges']) - max_rows:,} more runs in sweep.json.")
    for name in ("errors", "refused", "undecided"):
        part = doc[name]
        if part["values"]:
            lines += ["", f"## {name.capitalize()}: {part['values']:,} inputs", "",
                      "| from | to | values | reason |", "|---|---|---|---|"]
            for r in part["ranges"][:max_rows]:
                lines.append(f"| `{r['from']}` | `{r['to']}` | {r['values']:,} | {r['reason']} |")
    lines += ["", "## Special inputs", "", f"| {s['vary']} | bit patterns | framework | exact | status |",
              "|---|---|---|---|---|"]
    for d in doc["specials"]:
        lines.append(f"| `{d['x']}` | {d['patterns']:,} | `{d['framework']}` | `{d['exact']}` | {d['status']} |")
    return "\n".join(lines) + "\n"


def _summary(doc: Dict[str, Any]) -> str:
    c, inp = doc["counts"], doc["inputs"]
    parts = [f"{c[k]:,} {k}" for k in STATUS_ORDER if c.get(k)]
    worst = doc["worst"][0] if doc["worst"] else None
    head = (f"{inp['finite']:,} finite inputs: {', '.join(parts) or 'none evaluated'}. "
            f"Max error {_ulp_text(doc['max_ulp'])} ulp")
    if worst and worst["ulp"] not in (None, 0):
        head += f" at `{worst['x']}` ({_dec(worst['x'])})"
    if doc["max_ulp"] == "inf" and doc["max_finite_ulp"] is not None:
        head += f" (largest finite error {_ulp_text(doc['max_finite_ulp'])} ulp)"
    head += (f"; {doc['over_budget']['values']:,} beyond the budget of {doc['budget_ulp']:g} ulp. ")
    head += "Within budget." if doc["within_budget"] else "**Not within budget.**"
    return head


def plot_profile(x: np.ndarray, ulps: np.ndarray, status: Sequence[str], budget: float, title: str,
                 xlabel: str, fmt: formats.Format, path: str) -> bool:
    """A PNG of the ulp error of every finite input against the input (a signed log
    scale: ±2^k at equal steps, 0 in the middle); False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    lo = math.log2(fmt.min_subnormal)
    x = np.asarray(x, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(x == 0, 0.0, np.sign(x) * (np.log2(np.abs(x)) - lo + 1))
    u = np.asarray(ulps, np.float64)
    st = np.asarray(status, dtype=object)
    floor = 1e-3
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ok = np.isfinite(u) & np.isin(st, list(_PASSING))
    bad = np.isfinite(u) & ~ok
    inf = np.isinf(u) | (st == "error")
    ax.scatter(t[ok], np.maximum(u[ok], floor), s=1, c="tab:blue", lw=0, label="within budget", rasterized=True)
    if bad.any():
        ax.scatter(t[bad], np.maximum(u[bad], floor), s=2, c="tab:red", lw=0, label="beyond budget",
                   rasterized=True)
    top = max(10.0, float(np.nanmax(np.where(np.isfinite(u), u, np.nan))) * 3 if np.isfinite(u).any() else 10.0)
    if inf.any():
        ax.scatter(t[inf], np.full(int(inf.sum()), top), s=6, c="black", marker="x",
                   label="inf error / framework error")
    ax.set_yscale("log")
    ax.axhline(budget, color="tab:red", lw=0.7, ls="--", label=f"budget {budget:g} ulp")
    ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    hi = math.log2(fmt.max) - lo + 1
    ks = np.unique(np.round(np.linspace(lo, math.log2(fmt.max), 7)).astype(int))
    ks = ks[ks - lo > 0.08 * (math.log2(fmt.max) - lo)]  # none crowding 0
    pos = [k - lo + 1 for k in ks]
    ticks = [-p for p in reversed(pos)] + [0.0] + pos
    labels = [f"$-2^{{{k}}}$" for k in reversed(ks)] + ["0"] + [f"$2^{{{k}}}$" for k in ks]
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlim(-hi - 2, hi + 2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"error (ulp of exact; < {floor:g} drawn at {floor:g})")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, markerscale=4)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    write_atomic(Path(path), buf.getvalue())
    return True


# --- the command ------------------------------------------------------------------------------


#: options that change how or where a sweep runs, not what it reports (left out of
#: ``command``, so two runs into different folders give the same bytes)
_EXECUTION_ONLY = {"jobs", "cache_dir", "no_cache", "out", "scheduler"}


def sweep_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command line recorded in ``sweep.json``: the options in the parser's order,
    without the execution-only ones and those at their default."""
    from .cli import command_line  # diff's CLI imports this module's commands: import late

    return command_line(["lossref", "sweep", args.dialect or "", args.loss or ""], args, parser,
                        _EXECUTION_ONLY, long_flags=False)


def _progress(desc: str, total: int):
    from .cli import _NoBar
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="value", unit_scale=True, leave=False, disable=None)


def _out_problem(out: str) -> Optional[str]:
    from .cli import _out_problem as problem
    return problem(out)


#: what :func:`lossref._procs.work_pool` raises for a cluster it cannot use (its
#: ``SchedulerError``; ``NotImplementedError`` where it has no Dask support)
_SCHEDULER_ERRORS = tuple(e for e in (getattr(_procs, "SchedulerError", None),) if e) + (NotImplementedError,)


def _scheduler_message(e: BaseException, scheduler: Optional[str]) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if text.startswith("scheduler") else f"--scheduler {scheduler}: {text}"


def run_sweep(plan: Plan, *, jobs: int = 0, scheduler: Optional[str] = None, cache_dir: Optional[str] = None,
              timeout: float = 120.0, out: Optional[str] = None, command: str = "",
              log: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Run one sweep and return its ``sweep.json`` document (files written to `out`)."""
    work_pool = _procs.work_pool
    fmt = plan.fmt
    target = _target(plan.dialect, plan.loss)
    if plan.points is None:
        values, counts = all_values(fmt)
    else:
        values = grid_values(fmt, plan.points, switch_points(plan))
        counts = {"patterns": None, "finite": int(np.isfinite(values).sum()), "inf": 2, "nan": 1}
    with _progress("domain", values.size) as bar:
        refused = _refusals(plan, target, values, bar)
    ok = np.array([i for i in range(values.size) if i not in refused], dtype=np.int64)
    accepted = values[ok]
    cache = ChunkCache(cache_dir) if cache_dir else None
    with contextlib.ExitStack() as stack:
        try:  # a scheduler that cannot be reached is found before the framework runs
            mapper = stack.enter_context(work_pool(max(1, jobs or os.cpu_count() or 1), scheduler))
        except _SCHEDULER_ERRORS as e:
            raise SweepError(_scheduler_message(e, scheduler)) from None
        with _progress(f"{plan.dialect}[{plan.backend}]", accepted.size) as bar:
            fw = run_framework(plan, accepted, timeout, bar)
        with _progress("oracle", accepted.size) as bar:
            try:
                oracle = run_oracle(plan, accepted, cache, mapper, bar)
            except _SCHEDULER_ERRORS as e:  # the cluster lost during the run
                raise SweepError(_scheduler_message(e, scheduler)) from None
    fmt_out = formats.get_format(oracle["dtype"] or plan.dtype)
    from .compare import budget_ulps
    with _progress("compare", accepted.size) as bar:
        u_acc, st_acc = classify(fw["values"], oracle, fmt_out, budget_ulps(1), bar)
    # the exact values are known to 40 digits: errors count to the 4 decimals reported
    u_acc = np.round(u_acc, 4)
    # back onto every swept value (refused ones get no value)
    n = values.size
    computed = np.full(n, np.nan)
    computed[ok] = fw["values"]
    ulps = np.full(n, np.nan)
    ulps[ok] = u_acc
    status = ["refused"] * n
    full_oracle = {"dtype": oracle["dtype"], "hex": [None] * n, "decimal": [None] * n,
                   "undecided": [[int(ok[i]), r] for i, r in oracle["undecided"]]}
    for j, i in enumerate(ok):
        status[i] = st_acc[j]
        full_oracle["hex"][i] = oracle["hex"][j]
        full_oracle["decimal"][i] = oracle["decimal"][j]
    fw_full = dict(fw, errors={int(ok[i]): r for i, r in fw["errors"].items()})
    plot = None
    if out:
        n_fin = counts["finite"]
        title = (f"{plan.dialect}[{fw['header'].get('backend', plan.backend)}] {plan.loss} {plan.dtype}: "
                 f"{plan.vary}, {plan.fixed} = {_hex(plan.fixed_value)}")
        st_fin = list(status[:n_fin])
        for i in fw_full["errors"]:
            if i < n_fin:
                st_fin[i] = "error"
        if plot_profile(values[:n_fin], ulps[:n_fin], st_fin, budget_ulps(1), title,
                        f"{plan.vary} (signed log scale)", fmt, os.path.join(out, "sweep.png")):
            plot = "sweep.png"
        else:
            log("lossref sweep: note: matplotlib is not installed, so no sweep.png "
                "(pip install 'lossref[plot]')")
    doc = summarize(plan, values, counts, computed, full_oracle, ulps, status, fw_full, refused, command, plot)
    if out:
        write_atomic(Path(out) / "sweep.json", (json.dumps(doc, indent=1, sort_keys=False,
                                                            allow_nan=False) + "\n").encode("utf-8"))
        write_atomic(Path(out) / "sweep.md", render_md(doc).encode("utf-8"))
    return doc


def print_summary(doc: Dict[str, Any], out: Optional[str]) -> None:
    """The summary and the whole profile (in segments) on stdout."""
    s, fw = doc["sweep"], doc["framework"]
    print(f"{fw['name']} {fw['version']} [{fw['backend']}] {s['loss']} {s['dtype']}: {s['vary']} over "
          f"{doc['inputs']['values']:,} values, {s['fixed']['name']} = {s['fixed']['hex']}")
    print(_summary(doc).replace("**", "").replace("`", ""))
    rows = [("from", "to", "values", "max ulp", "beyond", "class")]
    for g in doc["segments"]:
        rows.append((_dec(g["from"]), _dec(g["to"]), f"{g['values']:,}", _ulp_text(g["max_ulp"]),
                     f"{g['over_budget']:,}", g["class"]))
    w = [max(len(r[k]) for r in rows) for k in range(6)]
    for r in rows:
        print("  " + "  ".join(c.rjust(w[k]) if 1 < k < 5 else c.ljust(w[k]) for k, c in enumerate(r)).rstrip())
    for d in doc["specials"]:
        if d["framework"] is None:
            print(f"  {s['vary']} = {d['x']}: {d['status']} ({d.get('reason', '')})")
        else:
            print(f"  {s['vary']} = {d['x']}: framework {d['framework']}, exact {d['exact']} ({d['status']})")
    if out:
        extra = ", sweep.png" if doc["plot"] else ""
        print(f"report: {os.path.join(out, 'sweep.md')} (also sweep.json{extra})")


def _cmd_sweep(args: argparse.Namespace) -> int:
    def usage(msg: str) -> int:
        print(f"lossref sweep: error: {msg}", file=sys.stderr)
        return 2

    try:
        plan = plan_sweep(args.dialect, args.loss, args.dtype, args.vary, args.fix or (), args.param or (),
                          args.points, args.backend)
        jobs = int(args.jobs)
        if jobs < 0:
            raise SweepError(f"--jobs must be >= 0 (0: every core); got {jobs}")
        try:
            timeout = float(args.timeout)
        except ValueError:
            raise SweepError(f"--timeout must be a number of seconds; got {args.timeout!r}") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise SweepError(f"--timeout must be a positive number of seconds; got {args.timeout}")
        if args.out is not None:
            problem = _out_problem(args.out)
            if problem:
                raise SweepError(f"--out {args.out}: {problem}")
        if args.scheduler is not None:
            if not args.scheduler.strip():
                raise SweepError("--scheduler needs an address, e.g. tcp://host:8786")
            check = getattr(_procs, "check_scheduler_address", None)
            if check is not None:
                try:
                    check(args.scheduler)
                except _SCHEDULER_ERRORS as e:
                    raise SweepError(_scheduler_message(e, args.scheduler)) from None
    except ValueError as e:  # SweepError, or --jobs that is no number
        return usage(str(e) if isinstance(e, SweepError) else f"--jobs must be a whole number; got {args.jobs!r}")
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    try:
        doc = run_sweep(plan, jobs=jobs, scheduler=args.scheduler, cache_dir=cache, timeout=timeout,
                        out=args.out, command=sweep_command(args, args.sweep_parser),
                        log=lambda s: print(s, file=sys.stderr))
    except SweepError as e:
        return usage(str(e))
    except FrameworkError as e:
        print(f"lossref sweep: error: {plan.dialect}[{plan.backend}] could not run: {e}", file=sys.stderr)
        return 1
    print_summary(doc, args.out)
    return 0 if doc["within_budget"] else 1


def register_commands(sub) -> None:
    """Add ``sweep`` to the ``lossref`` subcommands."""
    p = sub.add_parser(
        "sweep", help="one input of an elementwise loss over every value of a format: framework vs exact",
        description="Evaluate DIALECT's LOSS (the real framework, in a worker process) and the exact "
                    "oracle with one input running over every value of a 16-bit format (all 65,536 bit "
                    "patterns) or a dense float32/float64 grid, the other input fixed; report the worst "
                    "ulp error, the error profile and every input beyond the budget. Exit 1 when an "
                    "input is beyond the budget or the framework fails; 2 on a usage error.")
    p.add_argument("dialect", nargs="?", metavar="DIALECT", help="keras, torch, optax or tf")
    p.add_argument("loss", nargs="?", metavar="LOSS",
                   help="the loss: a Keras canonical name (log_cosh) or the dialect's function name "
                        "(torch: mse_loss)")
    p.add_argument("--dtype", help="float16 or bfloat16 (every value), float32 or float64 (a grid)")
    p.add_argument("--vary", default=None,
                   help="the input that varies: the dialect's name or y_pred/y_true (default: the prediction)")
    p.add_argument("--fix", action="append", metavar="NAME=VALUE",
                   help="value of the fixed input, hex (0x1p-3) or decimal, exactly a value of the dtype "
                        "(default: 0 for residual losses, 1 for labels and probability targets)")
    p.add_argument("--param", "--params", dest="param", action="append", metavar="KEY=VALUE",
                   help="loss parameter (JSON value), repeatable: --param delta=0.5")
    p.add_argument("--points", default=None, metavar="N",
                   help=f"float32/float64: grid points, log-spaced over both signs (default {DEFAULT_POINTS}), "
                        "plus the neighbourhoods of the switch points")
    p.add_argument("--backend", default=None,
                   help="Keras backend: numpy (default), jax, torch or tensorflow; torch, optax, tf: cpu")
    p.add_argument("--jobs", default=0, help="processes for the oracle (default 0: every core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="spread the oracle over a dask.distributed cluster at ADDRESS")
    p.add_argument("--timeout", default=120.0, help="seconds per framework call before it is an error")
    p.add_argument("--cache-dir", default=None,
                   help="oracle chunk cache (default: $XDG_CACHE_HOME/lossref/sweep or ~/.cache/lossref/sweep)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--out", default=None, metavar="DIR", help="write sweep.json, sweep.md and sweep.png here")
    p.set_defaults(func=_cmd_sweep, sweep_parser=p)
