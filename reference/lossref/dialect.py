"""What every dialect needs, once: the function object with its exact twin, input
conversion, parameter checks and the oracle cache.

A dialect package (``lossref.keras``, ``lossref.torch``) holds only its framework's
conventions: how arguments are converted and checked (a *preparer* with the framework's
signature that returns :class:`Prepared`), which catalogue values it evaluates, and its
stage 3. :class:`DialectFunction` turns a preparer into a callable ``f(...)`` that
returns a NumPy array and ``f.exact(...)``, the same signature returning
:class:`lossref.Exact`; the two run one rule set (``finish``) in two arithmetics.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import formats
from .formats import Format
from .oracle import Exact, start_precision, to_exact
from .oracle import ops as xops
from .oracle.autodiff import Tape, addresses, owner_index, root
from .reduction import EXACT, FLOAT64, stage3_cotangent
from .registry import LossDef, block_elements, get, is_real, map_index

__all__ = ["Prepared", "DialectFunction", "CatalogueFunction", "as_array", "is_float", "float_format", "convert", "check_bool",
           "params_key", "exact_params", "reference_grad", "exact_grad"]


# --- input conversion ---------------------------------------------------------------------------


def is_float(dtype: np.dtype) -> bool:
    """Whether `dtype` is a binary float type (bfloat16 included)."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def as_array(x: Any, name: str) -> np.ndarray:
    """`x` as a NumPy array of numbers (an array comes back as it is, without a copy).

    Raises ``TypeError`` naming `name` for strings, objects and complex numbers, and
    ``ValueError`` for ragged nested lists.
    """
    try:
        arr = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array: {e}") from None
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be numeric (bool, int or float); got dtype {arr.dtype}")
    return arr


def float_format(fn: str, arr: np.ndarray, name: str, error: type = TypeError) -> Format:
    """The format of a float array, or `error` (a framework's dtype error, a ``TypeError``)
    naming `name`."""
    if not is_float(arr.dtype):
        raise error(f"{fn}: {name} must be a float array (float16, bfloat16, float32 or float64); "
                    f"got dtype {arr.dtype}")
    return formats.get_format(arr.dtype)


def convert(arr: np.ndarray, fmt: Format) -> np.ndarray:
    """`arr` in `fmt`'s dtype: no copy when it already is, else one rounding to nearest-even
    (:func:`lossref.formats.as_format`)."""
    return formats.as_format(arr, fmt)


def check_bool(fn: str, name: str, value: Any) -> bool:
    """`value` if it is a Python or NumPy bool, else a ``TypeError`` naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False; got {value!r}")
    return bool(value)


# --- one evaluation -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """Inputs of one loss evaluation after the dialect's conversions.

    `y_true`/`y_pred` hold the values the catalogue reads (PyTorch: target and input),
    possibly as broadcast views: the catalogue widens them a block at a time, so no
    full-size float64 copy is made. `fmt` is the result's format. `params` are the
    catalogue function's parameters; `mask` marks the per-sample entries that count
    (Keras's ``_keras_mask``), or None. `stage3` holds what the dialect's own stage 3
    needs (reduction, weights); its arrays take part in the oracle's start precision.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    fmt: Format
    params: Dict[str, Any] = field(default_factory=dict)
    mask: Optional[np.ndarray] = None
    stage3: Dict[str, Any] = field(default_factory=dict)


def params_key(value: Any) -> Any:
    """A hashable key that tells any two parameter values apart: arrays by dtype, shape and
    bytes (their ``repr`` elides the middle of a large array, so it cannot serve)."""
    if isinstance(value, dict):
        return tuple((k, params_key(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(params_key(v) for v in value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return (type(value).__name__, repr(value))


# Evaluations of the oracle shared between twins: a function's twin and each reduction's
# twin of one case (as golden vectors and ``lossref diff`` evaluate them) run the oracle once
# per precision instead of once per twin. Oldest entry evicted first.
_ORACLE_CACHE: Dict[tuple, Any] = {}
_ORACLE_CACHE_SIZE = 64


def _cached(key: tuple, compute: Callable[[], Any]) -> Callable[[], Any]:
    """``compute`` behind the cache, keyed by `key`, the oracle backend and the working precision."""

    def evaluate():
        k = key + (xops.backend(), xops.precision())
        hit = _ORACLE_CACHE.get(k)
        if hit is None:
            hit = compute()
            if len(_ORACLE_CACHE) >= _ORACLE_CACHE_SIZE:
                _ORACLE_CACHE.pop(next(iter(_ORACLE_CACHE)))
            _ORACLE_CACHE[k] = hit
        # a copy: callers (stage 3) may not change the cached array
        return np.array(hit, dtype=object, copy=True) if isinstance(hit, np.ndarray) else hit

    return evaluate


def _exact_bytes(a: np.ndarray) -> tuple:
    return np.asarray(a, np.float64).tobytes(), np.shape(a)




# --- gradients -----------------------------------------------------------------------------------

#: The Ziv loop's cap for exact gradients: the chain rule of a formula written for its value
#: can cancel far more (a softmax Jacobian at logits 10^4 apart leaves e^-30000 of terms of 1).
GRAD_MAX_PRECISION = 1 << 18


def _grad_input(fn: str, user: Any, wrt: str) -> np.ndarray:
    """A private copy of the input being differentiated: nothing else the call reads
    (the other input, a weight) can share its memory, so the gradient is the partial one."""
    if user is None:
        raise ValueError(f"{fn}: {wrt} is not given, so there is nothing to differentiate")
    arr = as_array(user, wrt)
    if not is_float(arr.dtype):
        raise TypeError(f"{fn}: cannot differentiate with respect to {wrt} of dtype {arr.dtype}; "
                        "only a float array has a gradient")
    return np.array(arr, copy=True)


def _target_of(fn: str, pr: Prepared, role, wrt: str, user: np.ndarray) -> np.ndarray:
    """The array of `pr` the gradient is taken with respect to, checked to be (a view of) the
    conversion of the user's input, so its gradient maps back onto that input's shape."""
    t = pr.params.get(role[1]) if isinstance(role, tuple) else getattr(pr, role)
    if not isinstance(t, np.ndarray) or root(t).size != user.size:
        raise NotImplementedError(f"{fn}: the gradient with respect to {wrt} cannot be mapped back "
                                  "onto its shape")
    return t


def _onto_owner(g: np.ndarray, target: np.ndarray, shape) -> np.ndarray:
    """A float64 gradient with respect to `target` (in its shape or a broadcast of it)
    summed onto the elements of the array owning `target`'s memory, in `shape`."""
    g = np.asarray(g, dtype=np.float64)
    view = target if g.shape == target.shape else np.broadcast_to(target, g.shape)
    owner = root(target)
    idx = owner_index(owner, addresses(view))
    if view.size == owner.size and np.array_equal(idx, np.arange(owner.size)):
        out = g.reshape(-1)
    else:
        out = np.bincount(idx, weights=g.reshape(-1), minlength=owner.size)
    return out.reshape(shape)


def reference_grad(fn: "DialectFunction", pr: Prepared, finish: Callable, role, wrt: str,
                   user: np.ndarray, fmt: Format) -> np.ndarray:
    """The reference gradient of ``sum(finish(values64(pr)))`` with respect to the input
    `role` of `pr`: stage 3 differentiated by :func:`~lossref.reduction.stage3_cotangent`,
    the values by ``fn.vjp64``; in float64, rounded once into `fmt`."""
    target = _target_of(fn.__name__, pr, role, wrt, user)
    values = fn.values64(pr)
    cot = stage3_cotangent(finish, values)
    grads = fn.vjp64(pr, cot)
    key = role[1] if isinstance(role, tuple) else role
    if key not in grads:
        raise NotImplementedError(f"{fn.__name__}: no reference gradient with respect to {wrt}")
    return np.asarray(formats.to_format_array(_onto_owner(grads[key], target, user.shape), fmt))


def exact_grad(fn: "DialectFunction", pr: Prepared, finish: Callable, role, wrt: str,
               user: np.ndarray, fmt: Format, label: str, start_prec: int) -> Exact:
    """The exact gradient: the oracle and `finish` (stage 3 in :data:`EXACT`) differentiated
    in reverse mode on the oracle's numbers (:mod:`lossref.oracle.autodiff`)."""
    target = _target_of(fn.__name__, pr, role, wrt, user)

    def evaluate():
        tape = Tape(target)
        with xops.taping(tape, tie=fn.tie, clamp=fn.clamp):
            out = finish(fn.oracle(pr), EXACT)
            return tape.gradient(out).reshape(user.shape)

    e = Exact(evaluate, start_prec=start_prec, dtype=fmt, label=f"{label} d/d{wrt}", balls=True)
    e.max_prec = GRAD_MAX_PRECISION
    return e


class DialectFunction:
    """A framework's loss function: ``f(y_true_or_input, ..., **kw)`` and ``f.exact(...)``.

    Built from a *preparer* with the framework's signature that returns :class:`Prepared`,
    and the catalogue loss it evaluates. Subclasses say how a :class:`Prepared` is
    checked (:meth:`prepare`), evaluated (:meth:`values64`, :meth:`oracle`) and finished
    (:meth:`finish`, the stage 3 written once for both arithmetics).

    Parameters
    ----------
    prepare : callable
        The preparer; its name, docstring and signature become the function's.
    loss : str
        Catalogue name of the loss.
    arrays : tuple of str
        Float parameters that may also be sequences (all other float-default parameters
        take a real scalar).
    """

    #: where the dialect's functions live, for ``repr``
    namespace = "lossref"
    #: the catalogue role (``"y_true"``/``"y_pred"``, or the key in ``Prepared.params`` of an
    #: argument the preparer puts there; None: not differentiable) of the first and second argument
    roles: Tuple[str, str] = ("y_true", "y_pred")
    #: differentiable parameters: the framework's argument name -> its key in
    #: ``Prepared.params`` (torch's ``var``, ``input2``, ``positive``, ``negative``)
    grad_params: Dict[str, str] = {}
    #: the share of a tie ``max(a, b)``, ``a == b``, the exact gradient gives ``a``
    #: (:func:`lossref.oracle.ops.taping`): 1/2 as torch.maximum and jax.numpy.maximum
    tie: float = 0.5
    #: how the exact gradient takes the oracle's clamps (:func:`lossref.oracle.ops.clamp_min`)
    clamp: str = "definition"
    #: prefix of the exact twins' labels
    dialect = ""

    def __init__(self, prepare: Callable[..., Prepared], loss: str,
                 arrays: Tuple[str, ...] = ()) -> None:
        functools.update_wrapper(self, prepare)
        self._prepare = prepare
        self._loss_name = loss
        self._array_params = frozenset(arrays)
        self.__signature__ = inspect.signature(prepare)
        # the exact twin carries the function's own signature (help(), inspect, IDEs)
        exact = functools.partial(type(self)._exact, self)
        functools.update_wrapper(exact, type(self)._exact)
        exact.__signature__ = self.__signature__
        exact.__doc__ = f"Exact twin of {prepare.__name__}: same signature, returns lossref.Exact."
        self.exact = exact
        grad = functools.partial(type(self)._grad, self)
        functools.update_wrapper(grad, type(self)._grad)
        grad.__doc__ = (f"Gradient of sum({prepare.__name__}(...)) with respect to one input: same "
                        "signature plus wrt= (default: the prediction); float64, rounded once into "
                        "that input's format.")
        self.grad = grad
        exact_grad_ = functools.partial(type(self)._exact_grad, self)
        functools.update_wrapper(exact_grad_, type(self)._exact_grad)
        exact_grad_.__doc__ = f"Exact twin of {prepare.__name__}.grad: returns lossref.Exact."
        self.exact_grad = exact_grad_

    def __reduce__(self) -> str:
        # a function object is a module global: pickled by reference, so it round-trips
        # to the very same object (its preparer, a closure-free function, would not)
        return self.__qualname__

    @property
    def loss(self) -> LossDef:
        return get(self._loss_name)

    # -- arguments ------------------------------------------------------------------------------
    def _check_numbers(self, kwargs) -> None:
        """A parameter whose default is a float takes a real number, and a sequence of them
        only where the framework documents one (`arrays`): a clear error naming it, instead
        of a failed conversion deep inside."""
        for name, value in kwargs.items():
            p = self.__signature__.parameters.get(name)
            if p is None or not isinstance(p.default, float) or is_real(value):
                continue
            if name in self._array_params:
                if isinstance(value, (list, tuple, np.ndarray)) and \
                        all(is_real(v) for v in np.ravel(np.asarray(value, dtype=object))):
                    continue
                raise TypeError(f"{self.__name__}: {name} must be a real number or a sequence of "
                                f"them; got {value!r}")
            raise TypeError(f"{self.__name__}: {name} must be a real number (a scalar); got {value!r}")

    def _arguments(self, args, kwargs) -> tuple:
        """``(a, b, keywords)``: the two inputs and the parameters, each given by position
        or by name as the signature allows (``f(a, b, 0.5)``, ``f(input=a, target=b)``)."""
        names = list(self.__signature__.parameters)
        positional = [n for n, p in self.__signature__.parameters.items()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(args) > len(positional):  # keyword-only parameters are never filled by position
            raise TypeError(f"{self.__name__}() takes at most {len(positional)} positional "
                            f"arguments ({len(args)} given)")
        twice = set(names[:len(args)]) & set(kwargs)
        if twice:
            raise TypeError(f"{self.__name__}() got multiple values for {sorted(twice)}")
        given = {**dict(zip(names, args)), **kwargs}
        params = self.__signature__.parameters
        missing = [n for n in names[:2] if n not in given and params[n].default is params[n].empty]
        if missing:
            raise TypeError(f"{self.__name__}() missing required argument(s) {missing}")
        # a second input with a default (optax's targets=None) is passed as that default
        return given.pop(names[0]), given.pop(names[1], params[names[1]].default), given

    def prepare(self, a, b, **kwargs) -> Prepared:
        """The :class:`Prepared` of one call (parameters checked)."""
        self._check_numbers(kwargs)
        return self._prepare(a, b, **kwargs)

    # -- evaluation -----------------------------------------------------------------------------
    def values64(self, pr: Prepared) -> np.ndarray:
        """The catalogue's values in float64, before :meth:`finish`."""
        raise NotImplementedError

    def oracle(self, pr: Prepared) -> Any:
        """The catalogue's exact values at the current working precision (uncached)."""
        raise NotImplementedError

    def vjp64(self, pr: Prepared, cot: np.ndarray) -> Dict[str, np.ndarray]:
        """Reference gradient of ``sum(cot * values64(pr))`` in float64, `cot` of the values'
        shape: ``{"y_pred": ..., "y_true": ..., params key: ...}``, each in the shape of
        ``pr``'s array or of the values' broadcast shape (the dialect sums it back)."""
        raise NotImplementedError(f"{self.__name__}: no reference gradient")

    def finish(self, pr: Prepared, values, arith):
        """The dialect's last stage in `arith` (:data:`~lossref.reduction.FLOAT64` or
        :data:`~lossref.reduction.EXACT`); the values as they are by default."""
        return values

    def values_exact(self, pr: Prepared) -> Callable[[], Any]:
        """:meth:`oracle` as a closure behind the cache, keyed by the exact inputs, the
        parameters and the precision."""
        key = (self.dialect, self.__name__, self._loss_name, *_exact_bytes(pr.y_true),
               *_exact_bytes(pr.y_pred), params_key(pr.params))
        return _cached(key, lambda: self.oracle(pr))

    def start_precision(self, pr: Prepared) -> int:
        """First working precision of the Ziv loop for this evaluation."""
        extra = [v for v in pr.stage3.values() if isinstance(v, np.ndarray)]
        return start_precision(pr.y_true, pr.y_pred, *extra, params=pr.params)

    def __call__(self, *args, **kwargs) -> np.ndarray:
        a, b, kw = self._arguments(args, kwargs)
        pr = self.prepare(a, b, **kw)
        out = self.finish(pr, self.values64(pr), FLOAT64)
        return np.asarray(formats.to_format_array(out, pr.fmt))

    def _exact(self, *args, **kwargs) -> Exact:
        """The exact twin: same signature, returns :class:`lossref.Exact`."""
        a, b, kw = self._arguments(args, kwargs)
        pr = self.prepare(a, b, **kw)
        values = self.values_exact(pr)
        return Exact(lambda: self.finish(pr, values(), EXACT), start_prec=self.start_precision(pr),
                     dtype=pr.fmt, label=f"{self.dialect}.{self.__name__}", balls=True)

    def grad_inputs(self) -> Tuple[str, ...]:
        """The argument names :meth:`grad` accepts as ``wrt``."""
        names = list(self.__signature__.parameters)[:2]
        return tuple(dict.fromkeys(tuple(n for n, r in zip(names, self.roles) if r) + tuple(self.grad_params)))

    def _grad_call(self, args, kwargs, wrt):
        """``(Prepared, role, wrt, private copy of the differentiated input)`` of a call."""
        a, b, kw = self._arguments(args, kwargs)
        names = list(self.__signature__.parameters)
        if wrt is None:  # the prediction, or else the first input with a gradient
            wrt = names[self.roles.index("y_pred")] if "y_pred" in self.roles else self.grad_inputs()[0]
        if wrt in names[:2] and self.roles[names.index(wrt)]:
            i = names.index(wrt)
            user = _grad_input(self.__name__, a if i == 0 else b, wrt)
            a, b = (user, b) if i == 0 else (a, user)
            role = self.roles[i]
            if role not in ("y_true", "y_pred"):  # an argument the preparer puts among the params
                role = ("param", role)
        elif wrt in self.grad_params:
            user = _grad_input(self.__name__, kw.get(wrt), wrt)
            kw[wrt] = user
            role = ("param", self.grad_params[wrt])
        else:
            raise ValueError(f"{self.__name__}: cannot differentiate with respect to {wrt!r}; "
                             f"expected one of {list(self.grad_inputs())}")
        pr = self.prepare(a, b, **kw)
        return pr, role, wrt, user

    def _grad_format(self, pr: Prepared, role) -> Format:
        t = pr.params.get(role[1]) if isinstance(role, tuple) else getattr(pr, role)
        return formats.get_format(t.dtype) if isinstance(t, np.ndarray) and is_float(t.dtype) else pr.fmt

    def _grad(self, *args, wrt: Optional[str] = None, **kwargs) -> np.ndarray:
        """Reference gradient: ``d sum(f(...)) / d wrt``, same signature plus `wrt`."""
        pr, role, wrt, user = self._grad_call(args, kwargs, wrt)
        return reference_grad(self, pr, lambda v, ar: self.finish(pr, v, ar), role, wrt, user,
                              self._grad_format(pr, role))

    def _exact_grad(self, *args, wrt: Optional[str] = None, **kwargs) -> Exact:
        """The exact twin of :meth:`grad`."""
        pr, role, wrt, user = self._grad_call(args, kwargs, wrt)
        return exact_grad(self, pr, lambda v, ar: self.finish(pr, v, ar), role, wrt, user,
                          self._grad_format(pr, role), f"{self.dialect}.{self.__name__}",
                          self.start_precision(pr))

    def __repr__(self) -> str:
        return f"<{self.namespace}.{self.__name__}>"


class CatalogueFunction(DialectFunction):
    """A dialect function that evaluates a catalogue loss by a reference/oracle pair of
    functions ``f(y_true, y_pred, **params)`` (PyTorch's and Optax's functions): the
    values before :meth:`finish` are ``reference(...)`` in float64 and ``oracle(...)`` on
    exact values. An `elementwise` pair (each value depends only on the elements at its
    position: inputs and array parameters of the input's shape or broadcasting to it) is
    evaluated on large inputs a block at a time, and so is a catalogue loss's own
    per-sample pair where its rows are independent (:meth:`LossDef.per_sample64`)."""

    def __init__(self, prepare: Callable[..., Prepared], loss: str,
                 reference: Callable[..., np.ndarray], oracle: Callable[..., np.ndarray],
                 elementwise: bool = False, vjp: Optional[Callable[..., Dict[str, np.ndarray]]] = None) -> None:
        super().__init__(prepare, loss)
        self._reference, self._oracle = reference, oracle
        self._elementwise = elementwise
        self._vjp = vjp

    def vjp64(self, pr: Prepared, cot: np.ndarray) -> Dict[str, np.ndarray]:
        """`vjp` (``vjp(y_true, y_pred, cot, **params)``, the reference's twin), or the
        catalogue's :attr:`~lossref.registry.LossDef.grad_ref` where `reference` is the
        catalogue's own."""
        loss = self.loss
        vjp = self._vjp
        if vjp is None and self._reference in (loss.elementwise_ref, loss.per_sample_ref):
            vjp = loss.grad_ref
        if vjp is None:
            raise NotImplementedError(f"{self.__name__}: no reference gradient")
        kw = {k: np.asarray(v, np.float64) if isinstance(v, np.ndarray) and v.dtype != object else v
              for k, v in pr.params.items()}
        with np.errstate(all="ignore"):
            return vjp(np.asarray(pr.y_true, np.float64), np.asarray(pr.y_pred, np.float64),
                       np.asarray(cot, np.float64), **kw)

    def values64(self, pr: Prepared) -> np.ndarray:
        blocks = self._blocks(pr) if self._elementwise else None
        if blocks is not None:
            return blocks
        loss = self.loss
        if self._reference is loss.per_sample_ref and (loss.rowwise or loss.arrays):
            return loss.per_sample64(pr.y_true, pr.y_pred, pr.params)  # the catalogue's blocks
        kw = {k: np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v for k, v in pr.params.items()}
        with np.errstate(all="ignore"):
            return self._reference(np.asarray(pr.y_true, np.float64), np.asarray(pr.y_pred, np.float64), **kw)

    def _blocks(self, pr: Prepared) -> Optional[np.ndarray]:
        """An elementwise reference evaluated a block at a time (each block widened to
        float64 while it is in cache, blocks on threads: :func:`~lossref.registry.map_index`),
        or None where the inputs are small or not laid out for it. The values are those of
        the whole-array evaluation: every element is computed alone."""
        shape = pr.y_pred.shape
        n = block_elements()
        if pr.y_true.shape != shape or pr.y_pred.size <= 4 * n:
            return None
        names = [k for k, v in pr.params.items() if isinstance(v, np.ndarray)]
        try:
            arrays = [pr.y_true, pr.y_pred] + [np.broadcast_to(pr.params[k], shape) for k in names]
        except ValueError:
            return None
        out = np.empty(shape, np.float64)
        if all(a.flags.c_contiguous for a in arrays):  # one flat run of elements
            arrays, dest = [a.reshape(-1) for a in arrays], out.reshape(-1)
            index = [slice(i, i + n) for i in range(0, pr.y_pred.size, n)]
        else:  # broadcast views: blocks of rows
            step = max(1, n // max(1, pr.y_pred.size // shape[0]))
            dest, index = out, [slice(i, i + step) for i in range(0, shape[0], step)]
            if len(index) < 2:
                return None

        def block(ix):
            a = [v[ix].astype(np.float64) for v in arrays]
            dest[ix] = self._reference(a[0], a[1], **{**pr.params, **dict(zip(names, a[2:]))})

        map_index(block, index)
        return out

    def oracle(self, pr: Prepared) -> np.ndarray:
        return self._oracle(to_exact(pr.y_true), to_exact(pr.y_pred), **exact_params(pr.params))


def exact_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """`params` with every array taken exactly, as numbers of the oracle backend in use
    (:mod:`lossref.oracle.ops`): numeric arrays by :func:`~lossref.oracle.to_exact`, object
    arrays (exact numbers of either backend) by ``ops.lift``; everything else as it is.

    Call it inside the evaluated function (as :meth:`CatalogueFunction.oracle` does), so
    the arrays are lifted on the backend that evaluates them.
    """
    def exact(v):
        if not isinstance(v, np.ndarray):
            return v
        return xops.lift(v) if v.dtype == object else to_exact(v)

    return {k: exact(v) for k, v in params.items()}


# --- conditions of oracles, reduced along an axis ----------------------------------------------
