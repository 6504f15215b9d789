"""Runs cases through a real framework, inside a subprocess of its own.

Protocol: ``python -m lossref.diff.worker --framework keras|torch --backend B --cases IN --out
OUT --timeout S`` (torch: backend ``cpu``). IN holds one case a line (the golden-vector format); OUT receives one result
a line, in order, flushed after each case, so the parent can tell where a crashed worker
stopped. The first line of OUT is a header with the framework's version.

This module imports the framework; nothing else in lossref does.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import sys
import time
import traceback

import numpy as np

from ..vectors.fileformat import decode_hex, encode_array


class CaseTimeout(Exception):
    """A case ran past its time limit."""


def _decode(arr: dict | None, dtype):
    return None if arr is None else decode_hex(arr["hex"]).reshape(arr["shape"]).astype(dtype)


def _np_dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes
        return ml_dtypes.bfloat16
    return np.dtype(name)


def _encode(x) -> dict:
    a = np.asarray(x)
    return dict(encode_array(a), dtype=str(a.dtype))


class KerasAdapter:
    """keras.losses on the backend chosen by KERAS_BACKEND (set before import)."""

    def __init__(self, backend: str) -> None:
        os.environ["KERAS_BACKEND"] = backend
        import keras  # noqa: F401  (the backend is fixed at import)

        self.keras = keras
        self.backend = keras.backend.backend()
        self.version = keras.__version__
        self.versions = {"keras": keras.__version__, "numpy": np.__version__}
        mod = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}.get(self.backend)
        if mod:
            self.versions[mod] = __import__(mod).__version__

    def _np(self, x):
        try:
            return self.keras.ops.convert_to_numpy(x)
        except Exception:  # pragma: no cover - backend specific
            return np.asarray(x)

    def run(self, case: dict) -> dict:
        """Every output of one case; an exception is recorded for its output alone."""
        dt = _np_dtype(case["dtype"])
        ins = case["inputs"]
        y_true = _decode(ins["y_true"], dt)
        y_pred = _decode(ins["y_pred"], dt)
        sw = _decode(ins.get("sample_weight"), dt)
        params = {n: tuple(v) if isinstance(v, list) else v for n, v in (case.get("params") or {}).items()}
        k = self.keras.losses
        fn = getattr(k, case["keras"]["function"])
        # the class takes every parameter; the function only those in its signature
        accepted = set(inspect.signature(fn).parameters)
        fn_params = {n: v for n, v in params.items() if n in accepted}
        out: dict = {"per_sample": _guard(lambda: _encode(self._np(fn(y_true, y_pred, **fn_params))))}
        cls = getattr(k, case["keras"]["class"])
        reds = {}
        for r in case["expected"].get("reductions", {}):
            red = None if r == "none" else r
            reds[r] = _guard(lambda: _encode(self._np(
                cls(reduction=red, dtype=case["dtype"], **params)(y_true, y_pred, sample_weight=sw))))
        out["reductions"] = reds
        grads = {}
        for g in case["expected"].get("grad", {}):
            if g == "per_sample":
                f = lambda p: fn(y_true, p, **fn_params)  # noqa: E731
            else:
                red = None if g == "none" else g
                f = lambda p, red=red: cls(reduction=red, dtype=case["dtype"], **params)(  # noqa: E731
                    y_true, p, sample_weight=sw)
            grads[g] = _guard(lambda: _encode(self._np(self.grad(f, y_pred))))
        if grads:
            out["grad"] = grads
        return out

    def grad(self, f, x):
        """``d sum(f(x)) / dx`` by the backend's own autodiff (jax.grad, torch.autograd,
        tf.GradientTape); Keras's numpy backend has none."""
        if self.backend == "jax":
            import jax
            return jax.grad(lambda p: jax.numpy.sum(f(p)))(jax.numpy.asarray(x))
        if self.backend == "torch":
            import torch
            p = torch.tensor(np.asarray(x, dtype=np.float64)).to(getattr(torch, str(x.dtype)))
            p.requires_grad_(True)
            torch.sum(f(p)).backward()
            return p.grad
        if self.backend == "tensorflow":
            import tensorflow as tf
            p = tf.cast(tf.constant(np.asarray(x, dtype=np.float64)), str(x.dtype))
            with tf.GradientTape() as tape:
                tape.watch(p)
                total = tf.reduce_sum(f(p))
            return tape.gradient(total, p)
        raise RuntimeError(f"Keras's {self.backend} backend has no autodiff")


class TorchAdapter:
    """torch.nn.functional on the CPU: tensors rebuilt exactly from hex (float64, then
    cast to the case's dtype, which holds every value exactly; class indices as int64)."""

    _DTYPES = ("float16", "bfloat16", "float32", "float64")

    def __init__(self, backend: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.backend = "cpu"
        self.version = torch.__version__
        self.versions = {"torch": torch.__version__, "numpy": np.__version__}

    def _tensor(self, arr: dict | None, dtype, integer: bool = False):
        if arr is None:
            return None
        t = self.torch.tensor(decode_hex(arr["hex"]), dtype=self.torch.float64).reshape(arr["shape"])
        return t.to(self.torch.int64) if integer else t.to(dtype)

    def _encode(self, x) -> dict:
        name = str(x.dtype).replace("torch.", "")
        a = x.detach().to(self.torch.float64).numpy()
        return dict(encode_array(a), dtype=name)

    def run(self, case: dict) -> dict:
        """Every reduction of one case; an exception is recorded for its output alone."""
        torch = self.torch
        dt = getattr(torch, case["dtype"])
        integer = set(case.get("torch", {}).get("integer", ()))
        ins = {k: self._tensor(v, dt, k in integer) for k, v in case["inputs"].items()}
        # the two positional tensors (input, target; ctc_loss: log_probs, targets), the rest by name
        i, t = case.get("torch", {}).get("positional", ("input", "target"))
        extra = {k: v for k, v in ins.items() if k not in (i, t) and v is not None}
        fn = getattr(torch.nn.functional, case["loss"])
        params = case.get("params") or {}
        reds = {}
        for r in case["expected"].get("reductions", {}):
            reds[r] = _guard(lambda: self._encode(fn(ins[i], ins[t], reduction=r,
                                                     **params, **extra)))
        out = {"reductions": reds}
        wrt = case.get("torch", {}).get("wrt", i)
        grads = {}
        for r in case["expected"].get("grad", {}):
            def g(r=r):
                args = {**ins, wrt: ins[wrt].detach().clone().requires_grad_(True)}
                more = {k: v for k, v in args.items() if k not in (i, t) and v is not None}
                torch.sum(fn(args[i], args[t], reduction=r, **params, **more)).backward()
                return self._encode(args[wrt].grad)
            grads[r] = _guard(g)
        if grads:
            out["grad"] = grads
        return out


class OptaxAdapter(TorchAdapter):
    """optax.losses on JAX's CPU with ``jax_enable_x64`` on (float64 stays float64): the
    arrays rebuilt exactly from hex as NumPy arrays of the case's dtype (integer labels as
    int64), the function called once (optax has no reduction: its output is ``none``)."""

    def __init__(self, backend: str = "cpu") -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        import optax

        self.jax, self.convert, self.namespace = jax, jax.numpy.asarray, optax.losses
        self.backend = "cpu"
        self.version = optax.__version__
        self.versions = {"optax": optax.__version__, "jax": jax.__version__, "numpy": np.__version__}

    #: compilations kept before JAX's caches are emptied (each is kept for reuse; thousands
    #: of distinct shapes would hold gigabytes)
    _CLEAR_EVERY = 1000
    _calls = 0

    def run(self, case: dict) -> dict:
        from ..formats import get_format

        self._calls += 1
        if self._calls % self._CLEAR_EVERY == 0 and hasattr(self, "jax"):
            self.jax.clear_caches()
        dt = get_format(case["dtype"]).dtype
        integer = set(case.get("torch", {}).get("integer", ()))
        ins = {}
        for k, v in case["inputs"].items():
            if v is not None:
                a = np.array(decode_hex(v["hex"]), dtype=np.float64).reshape(v["shape"])
                ins[k] = self.convert(a.astype(np.int64) if k in integer else a.astype(dt))
        # the tensors passed by position, in the framework's order; the rest by name
        pos = case.get("torch", {}).get("positional", ("predictions", "targets"))
        extra = {k: v for k, v in ins.items() if k not in pos}
        fn = getattr(self.namespace, case["loss"])
        params = case.get("params") or {}

        def call():
            values, dtype = self.values(fn(*(ins[k] for k in pos), **params, **extra))
            return dict(encode_array(values), dtype=dtype)

        out = {"reductions": {"none": _guard(call)}}
        if "none" in case["expected"].get("grad", {}):
            wrt = case.get("torch", {}).get("wrt", pos[0])

            def f(x):
                args = {**ins, wrt: x}
                return fn(*(args[k] for k in pos), **params, **{k: v for k, v in args.items() if k not in pos})

            def grad():
                values, dtype = self.values(self.grad(f, ins[wrt]))
                return dict(encode_array(values), dtype=dtype)

            out["grad"] = {"none": _guard(grad)}
        return out

    def grad(self, f, x):
        """``d sum(f(x)) / dx`` by ``jax.grad``."""
        return self.jax.grad(lambda p: self.jax.numpy.sum(f(p)))(x)

    def values(self, out):
        """``(float64 NumPy array, dtype name)`` of a framework result (exact: a widening)."""
        out = np.asarray(out)
        return out.astype(np.float64), str(out.dtype)


class TFAdapter(OptaxAdapter):
    """tf.nn on the CPU: the same calls with ``tf.constant`` arrays (TF 2, eager)."""

    def __init__(self, backend: str = "cpu") -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        self.tf = tf
        self.convert, self.namespace = tf.constant, tf.nn
        self.backend = "cpu"
        self.version = tf.__version__
        self.versions = {"tensorflow": tf.__version__, "numpy": np.__version__}

    def values(self, out):
        # NumPy cannot read a bfloat16 tensor's buffer: widen in TF first (exactly)
        return self.tf.cast(out, self.tf.float64).numpy(), out.dtype.name

    def grad(self, f, x):
        """``d sum(f(x)) / dx`` by ``tf.GradientTape``."""
        with self.tf.GradientTape() as tape:
            tape.watch(x)
            total = self.tf.reduce_sum(f(x))
        return tape.gradient(total, x)


def _guard(compute) -> dict:
    """``compute()``, or the exception it raised as ``{"error", "kind", "traceback"}``."""
    try:
        return compute()
    except CaseTimeout:
        raise
    except Exception as e:  # a framework exception is a finding, not a crash
        return {"error": f"{type(e).__name__}: {e}", "kind": "exception",
                "traceback": traceback.format_exc(limit=3)}


def _test_hooks(case_id: str) -> None:
    """Let lossref's own tests simulate a crashing or hanging framework on one case."""
    if case_id == os.environ.get("LOSSREF_DIFF_TEST_CRASH"):
        os._exit(7)
    if case_id == os.environ.get("LOSSREF_DIFF_TEST_HANG"):
        time.sleep(3600)


def _alarm(signum, frame):  # pragma: no cover - only on timeouts
    raise CaseTimeout()


def main(argv=None) -> int:
    """Run the cases of ``--cases``, one result line each to ``--out``; 130 on Ctrl-C,
    quietly (the parent reports the interruption and kills a worker still running)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lossref.diff.worker")
    ap.add_argument("--framework", default="keras")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore")
    with open(args.out, "a", encoding="utf-8") as out:
        try:
            adapter = {"torch": TorchAdapter, "optax": OptaxAdapter,
                       "tf": TFAdapter}.get(args.framework, KerasAdapter)(args.backend)
        except Exception as e:  # the backend itself cannot start: one header saying so
            out.write(json.dumps({"header": True, "error": f"{type(e).__name__}: {e}"}) + "\n")
            return 3
        out.write(json.dumps({"header": True, "framework": args.framework, "backend": adapter.backend,
                              "framework_version": adapter.version, "versions": adapter.versions}) + "\n")
        out.flush()
        signal.signal(signal.SIGALRM, _alarm)
        with open(args.cases, encoding="utf-8") as f:
            for line in f:
                case = json.loads(line)
                t0 = time.perf_counter()
                res: dict = {"id": case["id"]}
                signal.setitimer(signal.ITIMER_REAL, args.timeout)
                try:
                    _test_hooks(case["id"])
                    res.update(adapter.run(case))
                except CaseTimeout:
                    res["error"] = f"timeout after {args.timeout:g} s"
                    res["kind"] = "timeout"
                except Exception as e:  # a framework exception is a finding, not a crash
                    res["error"] = f"{type(e).__name__}: {e}"
                    res["kind"] = "exception"
                    res["traceback"] = traceback.format_exc(limit=3)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                res["seconds"] = round(time.perf_counter() - t0, 4)
                out.write(json.dumps(res) + "\n")
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
