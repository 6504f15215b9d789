"""What a golden case is evaluated on: the Keras dialect, found by scanning it.

Every Keras loss of :mod:`lossref.keras.losses` is a pair: a function object (a
:class:`~lossref.keras.base.KerasFunction` that knows its canonical loss name) and a
class (a :class:`~lossref.keras.base.LossFunctionWrapper` subclass that wraps the
function). Scanning the module finds every pair, so a loss added to the dialect gets
golden vectors with no change here.

A case's expectations are

* ``per_sample``: ``function.exact(y_true, y_pred, **params)``, correctly rounded into
  the format the dialect says the function returns (the case's format, except where
  Keras computes in another one, e.g. CTC in float32);
* ``reductions[r]``: ``Class(reduction=r, dtype=<case dtype>, **params).exact(y_true,
  y_pred, sample_weight=sw)``, correctly rounded into the case's format;

each also as 40 significant decimal digits of the exact value; and

* ``grad[output]``: the exact gradient of that output, summed, with respect to the
  prediction (:func:`grad_outputs` names the outputs, :func:`grad_wrt` the input),
  correctly rounded into that input's format.
"""

from __future__ import annotations

import inspect
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from .. import formats
from ..formats import Format

__all__ = ["KerasTarget", "keras_targets", "get_target", "targets", "DIALECTS", "REDUCTIONS",
           "DECIMAL_DIGITS", "hexf", "call_params", "as_format", "per_sample_shape", "expected",
           "expected_of", "check_inputs", "Rejected", "grad_outputs", "grad_wrt", "expected_grad"]

#: Dialects with golden vectors.
DIALECTS = ("keras", "torch", "optax", "tf")

#: Reductions of every case, in file order ("none" is Keras's ``None``/``"none"``).
REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none")
#: Significant digits of the ``decimal`` fields.
DECIMAL_DIGITS = 40
_SKIP = {"self", "reduction", "name", "dtype"}
#: How the dialect and the oracle refuse a case: bad shape or domain (ValueError,
#: TypeError, IndexError) or an undecidable rounding (OracleError is an ArithmeticError).
_REFUSALS = (ValueError, TypeError, IndexError, ArithmeticError)


class Rejected(Exception):
    """The dialect refuses a drawn case (bad shape or domain for this loss)."""


@dataclass(frozen=True)
class KerasTarget:
    """One Keras loss: its function, its class and the class's parameters with defaults."""

    loss: str
    function: Any
    cls: type
    params: Tuple[Tuple[str, Any], ...]  # (name, default) in signature order
    function_params: frozenset

    @property
    def function_name(self) -> str:
        return self.function.__name__

    @property
    def class_name(self) -> str:
        return self.cls.__name__

    def defaults(self) -> Dict[str, Any]:
        return dict(self.params)

    # --- what the dialect-generic machinery asks of a target (TorchTarget has the same) ---
    dialect = "keras"
    reductions = REDUCTIONS
    input_names = ("y_true", "y_pred", "sample_weight")
    optional_inputs = ("sample_weight",)

    @property
    def function_qualname(self) -> str:
        return f"keras.losses.{self.function_name}"

    @property
    def class_qualname(self) -> str:
        return f"keras.losses.{self.class_name}"

    @property
    def kind(self) -> str:
        from . import domains
        return domains.kind_of(self.loss, [k for k, _ in self.params])

    def values(self, name: str, default: Any) -> Tuple[Any, ...]:
        from . import domains
        return domains.param_values(self.loss, name, default)


@lru_cache(maxsize=None)
def keras_targets() -> Dict[str, KerasTarget]:
    """Canonical loss name -> :class:`KerasTarget`, for every loss the Keras dialect exposes."""
    from ..keras import losses as kl
    from ..keras.base import KerasFunction, LossFunctionWrapper

    functions: Dict[str, list] = {}
    classes: Dict[str, list] = {}
    for attr in sorted(kl.__all__):
        obj = getattr(kl, attr, None)
        if isinstance(obj, KerasFunction):
            functions.setdefault(obj._loss_name, []).append(obj)
        elif isinstance(obj, type) and issubclass(obj, LossFunctionWrapper) \
                and obj is not LossFunctionWrapper:
            try:
                fn = obj().fn
            except TypeError:  # a class without defaults for every argument: not a Keras loss
                continue
            classes.setdefault(fn._loss_name, []).append(obj)
    out = {}
    for loss in sorted(set(functions) & set(classes)):
        # the function named like the loss (Keras has aliases), else the first by name
        fn = next((f for f in functions[loss] if f.__name__ == loss), functions[loss][0])
        cls = sorted(classes[loss], key=lambda c: c.__name__)[0]
        sig = inspect.signature(cls.__init__)
        params = tuple((k, p.default) for k, p in sig.parameters.items()
                       if k not in _SKIP and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                       and p.default is not p.empty)
        fparams = frozenset(inspect.signature(fn).parameters)
        out[loss] = KerasTarget(loss, fn, cls, params, fparams)
    return out


def targets(dialect: str) -> Dict[str, Any]:
    """Loss name -> target of every loss of `dialect` with golden vectors (Keras: found by
    scanning the dialect; torch and optax: their tables,
    :func:`~lossref.vectors.torch_table.table`)."""
    if dialect == "keras":
        return keras_targets()
    if dialect in ("torch", "optax", "tf"):
        from .torch_table import function_targets
        return function_targets(dialect)
    raise KeyError(f"unknown dialect {dialect!r}; golden vectors exist for: {', '.join(DIALECTS)}")


def get_target(dialect: str, loss: str):
    """The target of `loss` in `dialect` (a :class:`KerasTarget` or a
    :class:`~lossref.vectors.torch_table.TorchTarget`); ``KeyError`` listing the known
    names otherwise."""
    known = targets(dialect)
    if loss not in known:
        where = ("has no Keras function and class in lossref.keras.losses" if dialect == "keras"
                 else f"is not a function of lossref's {dialect} dialect with an entry in "
                      f"lossref/vectors/{dialect}_table.py")
        if dialect in ("optax", "tf"):
            import importlib
            reason = importlib.import_module(f".{dialect}_table", __package__).NO_VECTORS.get(loss)
            if reason:
                where = f"has no golden vectors: {reason}"
        raise KeyError(f"loss {loss!r} {where}; known: {', '.join(sorted(known))}")
    return known[loss]


# --- values and encodings ---------------------------------------------------------------------------


def hexf(v: float) -> str:
    """Exact hexadecimal text of a value: C99 ``%a`` style, trailing zero digits dropped.

    ``float.hex`` with its fraction's trailing zeros removed (``0x1.8p+1``, ``0x1p-24``,
    ``-0x0p+0``), ``inf``, ``-inf`` and ``nan``. ``float.fromhex`` and C's ``strtod``
    read it back exactly.
    """
    return formats.to_hex(v, trim=True)


def call_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Parameters as stored in a file (JSON) -> keyword arguments: a list is an axis tuple."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def json_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Keyword arguments -> JSON values (tuples become lists, NumPy scalars Python ones)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def as_format(values64: Optional[np.ndarray], fmt: Format) -> Optional[np.ndarray]:
    """float64 values (exact in `fmt`) as an array of `fmt`'s dtype."""
    if values64 is None:
        return None
    if fmt.name == "bfloat16" and not formats.has_ml_dtypes():
        raise RuntimeError("bfloat16 golden vectors need the ml_dtypes package "
                           "(pip install ml_dtypes)")
    return np.asarray(values64, dtype=np.float64).astype(fmt.dtype)


@contextmanager
def _quiet():
    """Silence NumPy floating-point warnings and Python warnings of the evaluated losses."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def per_sample_shape(target: KerasTarget, fmt: Format, params: Mapping[str, Any],
                     y_true: np.ndarray, y_pred: np.ndarray) -> tuple:
    """Shape of the class's unreduced values (float64 reference, cheap); ``Rejected`` if
    the dialect refuses the inputs."""
    try:
        with _quiet():
            c = target.cls(reduction="none", dtype=fmt.name, **call_params(params))
            return tuple(np.shape(c(as_format(y_true, fmt), as_format(y_pred, fmt))))
    except _REFUSALS as e:
        raise Rejected(f"{type(e).__name__}: {e}") from None


def encode_exact(e, fmt: Format, with_dtype: bool = False) -> Dict[str, Any]:
    """``{"shape", "hex", "decimal"}`` of an :class:`~lossref.Exact` rounded into `fmt`."""
    rounded = np.asarray(e.round(fmt)).astype(np.float64)
    digits = np.asarray(e.decimal(DECIMAL_DIGITS))
    # a zero rounding takes its sign from the decimal, decided at a precision at least as
    # high: Ziv's test can agree on -0 from two cancellation residues of an exact 0 (or on
    # +0 from two exact cancellations of a tiny negative value), the 40 digits cannot
    nan_hex, nan_dec = np.isnan(rounded), digits.astype(str) == "nan"
    if (nan_hex != nan_dec).any():
        # Ziv's test agreed on NaN at two low precisions (a 0 times an infinity where a
        # term had not yet separated from 0) but the decimal, decided higher, is a number
        # (or the reverse): round the values of the decimal's precision instead
        vals = np.asarray(e.values(e.final_prec), dtype=object).reshape(rounded.shape)
        fix = nan_hex != nan_dec
        rounded = rounded.copy()
        rounded[fix] = [formats.round_mpf(v, fmt) for v in vals[fix]]
    zero = rounded == 0
    if zero.any():
        neg = np.char.startswith(digits.astype(str), "-")
        rounded = np.where(zero, np.where(neg, -0.0, 0.0), rounded)
    out: Dict[str, Any] = {"shape": list(rounded.shape),
                           "hex": [hexf(v) for v in rounded.ravel()],
                           "decimal": [str(s) for s in digits.ravel()]}
    if with_dtype:
        out["dtype"] = fmt.name
    return out


def grad_outputs(target) -> Tuple[str, ...]:
    """The output whose gradient a case records (one: a gradient is as large as the
    prediction, so one output per case keeps the set's size in check): Keras the class
    with its default reduction (``sum_over_batch_size``, with the case's sample weight, so
    stage 3 is in it); torch its default ``'mean'`` (``'none'`` where it has no mean); optax
    and tf their one output (``none``)."""
    if getattr(target, "dialect", "keras") == "keras":
        return ("sum_over_batch_size",)
    if target.dialect == "torch":
        return ("mean",) if "mean" in target.reductions else ("none",)
    return ("none",)


def grad_wrt(target) -> str:
    """The input a case's gradients are taken with respect to: the prediction (Keras
    ``y_pred``; torch, optax and tf the entry's first name: ``input``, ``logits``, ...)."""
    return "y_pred" if getattr(target, "dialect", "keras") == "keras" else target.entry.names[0]


def expected_grad(target, fmt: Format, params: Mapping[str, Any],
                  inputs: Mapping[str, Optional[np.ndarray]]) -> Dict[str, Any]:
    """``{output: exact gradient}`` of a case (:func:`grad_outputs`), each correctly rounded
    into the format of the input differentiated, with its ``dtype``.

    An output whose gradient the oracle cannot decide (``OracleError``: an element that
    cancels to an exact 0 along two paths of the chain rule, which no precision proves) is
    left out, so nothing unproven is recorded; every other error propagates: a case the
    dialect accepts has a gradient."""
    from ..oracle import OracleError

    out = {}

    def put(name, make):
        try:
            e = make()
            out[name] = encode_exact(e, e.dtype or fmt, with_dtype=True)
        except OracleError:
            pass

    with _quiet():
        if getattr(target, "dialect", "keras") == "keras":
            kw = call_params(params)
            t, p = as_format(inputs["y_true"], fmt), as_format(inputs["y_pred"], fmt)
            sw = as_format(inputs.get("sample_weight"), fmt)
            put("sum_over_batch_size", lambda: target.cls(
                reduction="sum_over_batch_size", dtype=fmt.name, **kw).exact_grad(t, p, sample_weight=sw))
            return out
        for r in grad_outputs(target):
            put(r, lambda r=r: _torch_call(target, fmt, params, inputs, r, "grad"))
    return out


def expected(target: KerasTarget, fmt: Format, params: Mapping[str, Any], y_true: np.ndarray,
             y_pred: np.ndarray, sample_weight: Optional[np.ndarray],
             reductions: Tuple[str, ...] = REDUCTIONS) -> Dict[str, Any]:
    """The ``expected`` object of a case (see the module docstring); ``Rejected`` if the
    dialect refuses the inputs or the oracle cannot decide a rounding."""
    kw = call_params(params)
    t, p, sw = as_format(y_true, fmt), as_format(y_pred, fmt), as_format(sample_weight, fmt)
    try:
        with _quiet():
            e = target.function.exact(t, p, **{k: v for k, v in kw.items()
                                               if k in target.function_params})
            per_sample = encode_exact(e, e.dtype or fmt, with_dtype=True)
            reduced = {}
            for r in reductions:
                e = target.cls(reduction=r, dtype=fmt.name, **kw).exact(t, p, sample_weight=sw)
                reduced[r] = encode_exact(e, fmt)
    except _REFUSALS as e:
        raise Rejected(f"{type(e).__name__}: {e}") from None
    return {"per_sample": per_sample, "reductions": reduced}


# --- dialect-generic entry points -------------------------------------------------------------------


def _torch_arrays(target, fmt: Format, inputs: Mapping[str, Optional[np.ndarray]]) -> Dict[str, Any]:
    """The case's inputs as the arrays the torch dialect is called with (absent extras left
    out; class indices as int64, :func:`~lossref.vectors.torch_table.integer_inputs`)."""
    from .torch_table import integer_inputs
    integer = integer_inputs(target.entry, inputs)
    out = {}
    for k in target.input_names:
        v = inputs.get(k)
        if v is None:
            continue
        out[k] = np.asarray(v, np.float64).astype(np.int64) if k in integer else as_format(v, fmt)
    return out


def _torch_call(target, fmt, params, inputs, reduction, exact):
    """A function of torch, optax or tf on the case (optax and tf have no ``reduction``:
    their one output is called ``none``); `exact` True: its exact twin, ``"grad"``: its
    exact gradient with respect to the prediction."""
    a = _torch_arrays(target, fmt, inputs)
    fn = target.function.exact_grad if exact == "grad" else target.function.exact if exact else target.function
    pos = target.entry.positional
    extra = {k: v for k, v in a.items() if k not in pos}
    red = {"reduction": reduction} if target.dialect == "torch" else {}
    return fn(*(a[k] for k in pos), **red, **call_params(params), **extra)


def check_inputs(target, fmt: Format, params: Mapping[str, Any],
                 inputs: Mapping[str, Optional[np.ndarray]]) -> tuple:
    """Shape of the unreduced output (cheap float evaluation); ``Rejected`` if the dialect
    refuses the inputs."""
    if target.dialect == "keras":
        return per_sample_shape(target, fmt, params, inputs["y_true"], inputs["y_pred"])
    try:
        with _quiet():
            return tuple(np.shape(_torch_call(target, fmt, params, inputs, "none", False)))
    except _REFUSALS as e:
        raise Rejected(f"{type(e).__name__}: {e}") from None


def expected_of(target, fmt: Format, params: Mapping[str, Any],
                inputs: Mapping[str, Optional[np.ndarray]],
                reductions: Optional[Tuple[str, ...]] = None, grad: bool = False) -> Dict[str, Any]:
    """The ``expected`` object of a case of any dialect; `inputs` by the dialect's names.

    Keras: :func:`expected`. Torch: ``{"reductions": {r: function.exact(input, target,
    reduction=r, **params, **arrays)}}`` for each reduction (``'none'``: the unreduced
    output), each correctly rounded into the format the dialect returns, with its
    ``dtype``. With `grad`, also ``"grad"``: :func:`expected_grad`.
    """
    if grad:
        out = expected_of(target, fmt, params, inputs, reductions)
        out["grad"] = expected_grad(target, fmt, params, inputs)
        return out
    if target.dialect == "keras":
        return expected(target, fmt, params, inputs["y_true"], inputs["y_pred"],
                        inputs.get("sample_weight"),
                        REDUCTIONS if reductions is None else tuple(reductions))
    reduced = {}
    try:
        with _quiet():
            for r in (target.reductions if reductions is None else reductions):
                e = _torch_call(target, fmt, params, inputs, r, True)
                reduced[r] = encode_exact(e, e.dtype or fmt, with_dtype=True)
    except _REFUSALS as e:
        raise Rejected(f"{type(e).__name__}: {e}") from None
    return {"reductions": reduced}
