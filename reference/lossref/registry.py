"""The catalogue: one :class:`LossDef` per loss, the single list every consumer iterates."""

from __future__ import annotations

import ctypes
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import formats
from .oracle import Exact, start_precision, to_exact
from .oracle import ops as xops
from .reduction import stage2_mean, stage2_sum

__all__ = ["Param", "LossDef", "register", "names", "get", "check_float_array", "in_row_blocks",
           "map_blocks", "map_index", "block_elements", "param_array", "real_array_error", "reuse_freed_memory"]

_CHUNK = 1 << 16  # elements per block: float64 temporaries stay in cache and small


@dataclass(frozen=True)
class Param:
    """One parameter of a loss: its default and its domain.

    `check` returns an error message for a bad value, or None.
    """

    default: Any
    domain: str
    check: Optional[Callable[[Any], Optional[str]]] = None

    def validate(self, loss: str, name: str, value: Any) -> Any:
        msg = self.check(value) if self.check else None
        if msg:
            raise ValueError(f"{loss}: parameter {name}={value!r} is invalid: {msg} "
                             f"(domain: {self.domain})")
        return value


def is_real(v) -> bool:
    """A real scalar (Python or NumPy), not a bool: what numeric parameters accept."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def finite_number(v) -> Optional[str]:
    """Check helper: a finite real number."""
    return None if is_real(v) and math.isfinite(v) else "expected a finite number"


def positive_float(v) -> Optional[str]:
    """Check helper: a finite float > 0."""
    return None if is_real(v) and math.isfinite(v) and v > 0 else "expected a finite number > 0"


def nonneg_float(v) -> Optional[str]:
    """Check helper: a finite number >= 0."""
    return None if is_real(v) and math.isfinite(v) and v >= 0 else "expected a finite number >= 0"


def optional_nonneg_float(v) -> Optional[str]:
    """Check helper: None or a finite float >= 0."""
    if v is None:
        return None
    return None if is_real(v) and math.isfinite(v) and v >= 0 else "expected None or a finite number >= 0"


def real_array_error(v, required: bool = False) -> Optional[str]:
    """Check helper of a third input (:attr:`LossDef.arrays`): a number, or an array of real
    numbers (not bools; object arrays of exact values pass); None only where not `required`."""
    if v is None:
        return "required: an array broadcasting to the inputs' shape" if required else \
            "expected a number or an array of numbers"
    if isinstance(v, (bool, np.bool_)):
        return "expected a number or an array of numbers, not a bool"
    if is_real(v) or (isinstance(v, np.ndarray) and v.dtype == object):
        return None
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError):
        return "expected a rectangular array of numbers"
    if not (arr.dtype.kind in "iuf" or arr.dtype.name == "bfloat16"):
        return f"expected a number or an array of real numbers; got dtype {arr.dtype}"
    return None


def check_float_array(x, name: str) -> np.ndarray:
    """`x` as an array of a supported float format, or a ``TypeError`` naming `name`."""
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16" or arr.dtype.kind == "f":
        formats.get_format(arr.dtype)  # rejects float128 and friends
        return arr
    raise TypeError(f"{name} must be an array of float16, bfloat16, float32 or float64; "
                    f"got dtype {arr.dtype}")


@dataclass
class LossDef:
    """A loss of the catalogue: reference, oracle, parameters.

    A *separable* loss gives `elementwise_ref`/`elementwise_exact` and a stage-2 kind
    (``"mean"`` or ``"sum"`` over `axis` -1); a *structured* loss gives
    `per_sample_ref`/`per_sample_exact` directly (stage2 ``"structured"``).

    Reference callables take float64 arrays (``native`` ones: arrays of any supported float
    format) and parameters and return float64 arrays;
    oracle callables take object arrays of exact values. Public methods take arrays of
    any supported float format and return results in the format of `y_pred`.
    """

    name: str
    summary: str
    stage2: str
    params: Mapping[str, Param] = field(default_factory=dict)
    elementwise_ref: Optional[Callable[..., np.ndarray]] = None
    elementwise_exact: Optional[Callable[..., np.ndarray]] = None
    per_sample_ref: Optional[Callable[..., np.ndarray]] = None
    per_sample_exact: Optional[Callable[..., np.ndarray]] = None
    #: replaces the equal-shape check: ``check_inputs(name, y_true, y_pred)`` returns the
    #: validated (y_true, y_pred) arrays or raises (sparse labels, structured losses)
    check_inputs: Optional[Callable[[str, Any, Any], Tuple[np.ndarray, np.ndarray]]] = None
    #: a structured loss whose samples along the first axis are independent (so it can
    #: be evaluated in blocks of rows like a separable one)
    rowwise: bool = False
    #: a structured loss whose reference takes `y_true` and `y_pred` in their own float
    #: formats and widens them to float64 a block at a time itself (its blocks depend on
    #: the parameters, e.g. the reduced axes); otherwise it gets float64 copies
    native: bool = False
    #: parameters that are a third input: arrays broadcasting to `y_pred`'s shape without
    #: widening it (Gaussian NLL's variance, margin ranking's x2, triplet's negative). The
    #: blocked stage 1+2 cuts them into the rows of each block with the inputs; a
    #: structured loss with such parameters must reduce its last axis only.
    arrays: Tuple[str, ...] = ()
    #: reference gradient of the registered reference (``elementwise_ref`` of a separable
    #: loss, ``per_sample_ref`` of a structured one): ``grad_ref(y_true, y_pred, cot,
    #: **params)`` with float64 arrays and `cot` of the reference's output shape returns
    #: ``{input: d sum(cot * f) / d input}`` in float64 for ``"y_pred"``, ``"y_true"`` where
    #: the loss is differentiable in it, and each float array of :attr:`arrays`; each
    #: gradient in its input's shape or the inputs' broadcast shape
    grad_ref: Optional[Callable[..., Dict[str, np.ndarray]]] = None

    # -- parameters and inputs -----------------------------------------------------------------
    def bind(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Defaults filled in and every value checked against its domain."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                            f"expected {sorted(self.params)}")
        return {k: p.validate(self.name, k, params.get(k, p.default)) for k, p in self.params.items()}

    def _inputs(self, y_true, y_pred) -> Tuple[np.ndarray, np.ndarray, formats.Format]:
        if self.check_inputs is not None:
            t, p = self.check_inputs(self.name, y_true, y_pred)
            return t, p, formats.get_format(p.dtype)
        p = check_float_array(y_pred, "y_pred")
        t = check_float_array(y_true, "y_true")
        if t.shape != p.shape:
            raise ValueError(f"{self.name}: y_true shape {t.shape} and y_pred shape {p.shape} "
                             "must be equal")
        if p.ndim == 0:
            raise ValueError(f"{self.name}: inputs must have at least one axis (the feature "
                             "axis reduced by stage 2); got scalars")
        return t, p, formats.get_format(p.dtype)

    # -- reference --------------------------------------------------------------------------
    @property
    def separable(self) -> bool:
        return self.stage2 in ("mean", "sum")

    @property
    def elementwise(self) -> Optional[Callable[..., np.ndarray]]:
        """Stage 1 reference (elementwise values in y_pred's format), or None if structured."""
        if not self.separable:
            return None

        def elementwise(y_true, y_pred, **params):
            t, p, fmt = self._inputs(y_true, y_pred)
            kw = self.bind(params)
            with np.errstate(all="ignore"):
                out = self.elementwise_ref(t.astype(np.float64), p.astype(np.float64), **kw)
            return formats.to_format_array(out, fmt)

        elementwise.exact = self._elementwise_exact_api
        return elementwise

    def per_sample64(self, t: np.ndarray, p: np.ndarray, kw: Mapping[str, Any]) -> np.ndarray:
        """Stage 1+2 in float64 (no final rounding) on arrays of any supported float format.

        Separable losses, and structured ones whose rows are independent, run in blocks
        of rows: each block is widened to float64 and reduced while it is still in cache,
        so no full-size float64 copy of the inputs is ever made. A `native` structured
        loss gets the arrays as they are and blocks them itself.
        """
        with np.errstate(all="ignore"):
            if self.arrays:
                return self._with_arrays(t, p, kw)
            if not self.separable:
                if self.native:
                    return self.per_sample_ref(t, p, **kw)

                def per_rows(a, b):
                    return self.per_sample_ref(a, b, **kw)

                n = p.shape[0] if p.ndim else 0
                # a rank-1 input is one sample: its first axis is the feature axis
                if self.rowwise and p.ndim >= 2 and n > 1 and t.shape[:1] == p.shape[:1]:
                    return in_row_blocks(per_rows, t, p, p.size // n)
                return per_rows(t.astype(np.float64), p.astype(np.float64))
            reduce2 = stage2_mean if self.stage2 == "mean" else stage2_sum

            def per_rows(a, b):
                return reduce2(self.elementwise_ref(a, b, **kw), axis=-1)

            d = t.shape[-1] if t.ndim else 1
            if d == 0:
                return per_rows(t.astype(np.float64), p.astype(np.float64))
            return in_row_blocks(per_rows, t.reshape(-1, d), p.reshape(-1, d), d).reshape(t.shape[:-1])

    def _with_arrays(self, t: np.ndarray, p: np.ndarray, kw: Mapping[str, Any]) -> np.ndarray:
        """Stage 1+2 of a loss with :attr:`arrays`: blocks of rows (the leading axes
        flattened) of the inputs and of each array parameter broadcast to `p`'s shape, a
        block's rows gathered and widened to float64 as it is reached (no full-size copy
        of a broadcast parameter)."""
        lead = p.shape[:-1]
        n, d = int(np.prod(lead)), (p.shape[-1] if p.ndim else 1)
        arrays = {k: param_array(self.name, k, kw[k], p.shape) for k in self.arrays}

        def run(a, b, extra):
            kw2 = {**kw, **{k: v.astype(np.float64) for k, v in extra.items()}}
            if self.separable:
                reduce2 = stage2_mean if self.stage2 == "mean" else stage2_sum
                return reduce2(self.elementwise_ref(a.astype(np.float64), b.astype(np.float64), **kw2), axis=-1)
            return self.per_sample_ref(a.astype(np.float64), b.astype(np.float64), **kw2)

        step = max(1, _CHUNK // max(d, 1))
        if p.ndim < 2 or n <= step or t.shape[:len(lead)] != lead:
            return run(t, p, arrays)
        full = {k: np.broadcast_to(v, p.shape) for k, v in arrays.items()}

        def rows(a: np.ndarray, sl: slice) -> np.ndarray:
            if a.flags.c_contiguous:
                return a.reshape((n,) + a.shape[len(lead):])[sl]
            return a[np.unravel_index(np.arange(sl.start, min(sl.stop, n)), lead)]

        parts = map_index(lambda sl: run(rows(t, sl), rows(p, sl), {k: rows(v, sl) for k, v in full.items()}),
                          [slice(i, i + step) for i in range(0, n, step)])
        return np.concatenate(parts).reshape(lead)

    def per_sample_vjp64(self, t: np.ndarray, p: np.ndarray, kw: Mapping[str, Any],
                         cot: np.ndarray) -> Dict[str, np.ndarray]:
        """Gradient of ``sum(cot * per_sample64(t, p, kw))`` with respect to each input, in
        float64: the stage-2 mean or sum differentiated here, stage 1 by :attr:`grad_ref`."""
        if self.grad_ref is None:
            raise NotImplementedError(f"{self.name}: no reference gradient")
        kw2 = {k: (np.asarray(v, np.float64) if k in self.arrays and v is not None and
                   not isinstance(v, (int, float)) else v) for k, v in kw.items()}
        t64, p64 = np.asarray(t, np.float64), np.asarray(p, np.float64)
        cot = np.asarray(cot, np.float64)
        with np.errstate(all="ignore"):
            if self.separable:
                n = p64.shape[-1] if p64.ndim else 1
                c = cot[..., None] if p64.ndim else cot
                cot = np.broadcast_to(c / n if self.stage2 == "mean" else c, np.broadcast_shapes(t64.shape, p64.shape))
            return self.grad_ref(t64, p64, cot, **kw2)

    def per_sample(self, y_true, y_pred, **params) -> np.ndarray:
        """Stage 1+2 reference: one value per sample, rounded once to y_pred's format."""
        t, p, fmt = self._inputs(y_true, y_pred)
        kw = self.bind(params)
        out = self.per_sample64(t, p, kw)
        return np.asarray(formats.to_format_array(out, fmt))

    # -- oracle -------------------------------------------------------------------------------
    def per_sample_exact_values(self, t: np.ndarray, p: np.ndarray, kw: Mapping[str, Any]) -> np.ndarray:
        """Stage 1+2 oracle on object arrays at the current working precision."""
        if not self.separable:
            return self.per_sample_exact(t, p, **kw)
        e = self.elementwise_exact(t, p, **kw)
        return xops.mean(e, -1) if self.stage2 == "mean" else xops.fsum(e, -1)

    def exact(self, y_true, y_pred, **params) -> Exact:
        """The exact twin of :meth:`per_sample`."""
        return self._exact_of(lambda te, pe, kw: self.per_sample_exact_values(te, pe, kw),
                              y_true, y_pred, params, rows=self.separable or self.rowwise)

    def _elementwise_exact_api(self, y_true, y_pred, **params) -> Exact:
        return self._exact_of(lambda te, pe, kw: self.elementwise_exact(te, pe, **kw),
                              y_true, y_pred, params, rows=True, elementwise=True)

    def _exact_of(self, oracle, y_true, y_pred, params, rows: bool = False,
                  elementwise: bool = False) -> Exact:
        t, p, fmt = self._inputs(y_true, y_pred)
        kw = self.bind(params)

        def run(a, b, kw2):
            # the inputs are taken exactly on whichever backend evaluates the oracle
            return lambda: oracle(to_exact(a), to_exact(b), kw2)

        rows_of = None
        # rows of the result along its first axis come from the same rows of the inputs
        # (and of the array parameters) where samples are independent
        if rows and p.ndim >= (1 if elementwise else 2) and t.shape[:1] == p.shape[:1]:
            full = {k: np.broadcast_to(param_array(self.name, k, kw[k], p.shape), p.shape)
                    for k in self.arrays}

            def rows_of_(index: np.ndarray):
                return run(t[index], p[index], {**kw, **{k: v[index] for k, v in full.items()}})

            rows_of = rows_of_
        return Exact(run(t, p, kw), start_prec=start_precision(t, p, params=kw), dtype=fmt,
                     label=self.name, rows=rows_of, balls=True)


def param_array(loss: str, name: str, value: Any, shape: tuple) -> np.ndarray:
    """A parameter that is a third input (:attr:`LossDef.arrays`) as an array (object arrays
    of exact values kept, others as float64), or a ``ValueError`` where it does not
    broadcast to `shape`, the inputs' shape, or would widen it."""
    v = value if isinstance(value, np.ndarray) and value.dtype == object else np.asarray(value, dtype=np.float64)
    try:
        ok = np.broadcast_shapes(v.shape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{loss}: {name} of shape {v.shape} does not broadcast to the inputs' "
                         f"shape {tuple(shape)}")
    return v


def block_elements() -> int:
    """Elements of one block of the blocked evaluations (:func:`in_row_blocks`)."""
    return _CHUNK


def in_row_blocks(f: Callable[[np.ndarray, np.ndarray], np.ndarray], t: np.ndarray, p: np.ndarray,
                  row_size: int) -> np.ndarray:
    """``f`` on float64 copies of blocks of rows (first axis) of `t` and `p`, concatenated.

    A block holds about :func:`block_elements` elements of rows of `row_size` elements
    each, at least one row. See :func:`map_blocks` for the threads.
    """
    n = p.shape[0]
    step = max(1, _CHUNK // max(row_size, 1))
    if n <= step:
        return f(t.astype(np.float64), p.astype(np.float64))
    return np.concatenate(map_blocks(f, t, p, [slice(i, i + step) for i in range(0, n, step)]), axis=0)


def map_blocks(f: Callable[[np.ndarray, np.ndarray], Any], t: np.ndarray, p: np.ndarray,
               index: Sequence[Any], widen: bool = True) -> List[Any]:
    """``[f(t[i], p[i]) for i in index]``, both blocks widened to float64 copies unless
    ``widen=False`` (then `f` gets the views and widens what it uses, e.g. a part at a time).
    Threads as in :func:`map_index`."""
    if not widen:
        return map_index(lambda i: f(t[i], p[i]), index)
    return map_index(lambda i: f(t[i].astype(np.float64), p[i].astype(np.float64)), index)


def map_index(f: Callable[[Any], Any], index: Sequence[Any]) -> List[Any]:
    """``[f(i) for i in index]``, `f` evaluating one block of independent work.

    Blocks are independent, so contiguous runs of them go to a thread pool (NumPy releases
    the GIL inside its loops); the results, in the order of `index`, do not depend on the
    number of threads. Each thread takes at least :data:`_BLOCKS_PER_THREAD` blocks, so the
    temporaries of the blocks in flight stay a small fraction of the inputs, however many
    CPUs there are.
    """
    if len(index) > 1:
        reuse_freed_memory()

    def run(ix):
        with np.errstate(all="ignore"):  # error state is per thread
            return [f(i) for i in ix]

    workers = min(threads(), len(index) // _BLOCKS_PER_THREAD)
    if workers < 2:
        return run(index)
    runs = [index[k * len(index) // workers:(k + 1) * len(index) // workers] for k in range(workers)]
    return [b for r in _pool(threads()).map(run, runs) for b in r]


def reuse_freed_memory() -> None:
    """Let the allocator hand the memory of one block's temporaries to the next block.

    glibc's malloc serves requests above its mmap threshold (128 KiB at first) with fresh
    pages and returns free memory above its trim threshold to the system, so a loop over
    blocks would fault its temporaries in anew on every block (the page faults then took
    longer than the arithmetic). glibc raises both thresholds for good when a chunk above
    the mmap threshold is freed, as any program that frees a large array does; one
    untouched block of :data:`_FREED_BYTES`, allocated and freed, does so without touching
    a page. Once per process is enough. The block comes from the C allocator itself, so
    it is neither a NumPy array nor counted by ``tracemalloc`` (peak-memory measurements
    see the arrays only). Other allocators ignore it.
    """
    global _RAISED
    if _RAISED:
        return
    _RAISED = True
    try:
        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
        libc.free(libc.malloc(_FREED_BYTES))
    except (OSError, AttributeError):  # no C library to call (Windows): nothing to tune
        pass


_RAISED = False


#: twice this (glibc's trim threshold after the free) exceeds the temporaries of the
#: blocks in flight in one thread: some 30 float64 blocks of 2**16 elements for the
#: costliest references (Gaussian NLL, with its exact square); at 4 MiB their page faults
#: tripled its time. It stays below glibc's 32 MiB cap on the dynamic threshold.
_FREED_BYTES = 16 << 20

#: A block in flight holds some 20 float64 temporaries of its size (160 bytes an element);
#: 16 blocks of float32 inputs per thread hold 128, so the two stay about even.
_BLOCKS_PER_THREAD = 16
_POOLS: Dict[int, Any] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's pool threads
    os.register_at_fork(after_in_child=_POOLS.clear)


def threads() -> int:
    """Threads the reference uses on large inputs: ``LOSSREF_THREADS`` if set, else the CPU count."""
    env = os.environ.get("LOSSREF_THREADS", "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"LOSSREF_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return os.cpu_count() or 1


def _pool(workers: int):
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lossref")
    return _POOLS[workers]


_CATALOGUE: Dict[str, LossDef] = {}


def register(loss: LossDef) -> LossDef:
    """Add `loss` to the catalogue (once per name)."""
    if loss.name in _CATALOGUE:
        raise ValueError(f"loss {loss.name!r} registered twice")
    if loss.stage2 not in ("mean", "sum", "structured"):
        raise ValueError(f"{loss.name}: stage2 must be 'mean', 'sum' or 'structured'")
    _CATALOGUE[loss.name] = loss
    return loss


def names() -> list:
    """Canonical snake_case names of every loss, sorted."""
    _load()
    return sorted(_CATALOGUE)


def get(name: str) -> LossDef:
    """The :class:`LossDef` called `name`; ``KeyError`` listing the names otherwise."""
    _load()
    try:
        return _CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; known losses: {', '.join(sorted(_CATALOGUE))}") from None


def _load() -> None:
    from . import losses  # noqa: F401  (importing registers every loss)
