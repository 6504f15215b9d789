"""lossref benchmarks: the reference against real peers, the Keras dialect against the
reference, the PyTorch dialect against torch, the oracle against a naive baseline, and
golden-vector generation — all in one process, one table.

    python benchmarks/run.py [--quick] [--out FILE.json] [--only reference|torch|optax-tf|grad|oracle|golden]

Every timing is the median of at least five runs (min and max are recorded too). Ratios
are the reference's time over the fastest peer's, on the same arrays. Beside each
reference time of a loss Keras has, the Keras dialect's class call and function on the
same arrays (``keras_dialect``: times interleaved with the reference's, see ``dialect.py``); the
dialect's other losses (the structured ones) follow at the largest size. Every function
of the PyTorch dialect against ``torch.nn.functional`` on the same arrays
(``torch_dialect``, see ``torch_dialect.py``), and every function of the Optax and tf
dialects against optax and tf.nn (``array_dialects``, see ``array_dialects.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "numpy")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mpmath  # noqa: E402
import numpy as np  # noqa: E402

import lossref  # noqa: E402
from cases import CATEGORICAL, inputs_for, peak_extra_bytes, print_ratios, timed  # noqa: E402
from dialect import dialect_row, keras_callables, shape_for  # noqa: E402
from torch_dialect import functions as torch_functions  # noqa: E402
from torch_dialect import print_row as print_torch_row  # noqa: E402
from torch_dialect import summarise as summarise_torch  # noqa: E402
from grad import rows as grad_rows  # noqa: E402
from grad import summarise as grad_summary  # noqa: E402
from torch_dialect import torch_row  # noqa: E402
from array_dialects import dialect_row as array_row  # noqa: E402
from array_dialects import functions as array_functions  # noqa: E402
from array_dialects import print_row as print_array_row  # noqa: E402
from array_dialects import summarise as summarise_arrays  # noqa: E402
from lossref import formats  # noqa: E402
from lossref.oracle import to_exact  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

def bench_losses():
    out = []
    for n in lossref.names():
        L = lossref.get(n)
        if L.separable or n in CATEGORICAL:
            out.append(n)
    return out


def reference_benchmarks(sizes, repeat, results):
    from peers import peers

    peer_map, floor_map = peers(), peers(floor=True)
    dialect_losses = keras_callables()
    try:
        import keras
        keras_fns = keras.losses
        peer_names = list(peer_map) + [f"keras {keras.__version__} (numpy)"]
    except ImportError:
        keras_fns, peer_names = None, list(peer_map)
    rng = np.random.default_rng(0)
    for log2n in sizes:
        shapes = [(2 ** log2n // 1024, 1024)]
        if log2n >= 20:
            shapes.append((2 ** log2n // (64 * 256), 64, 256))
        for shape in shapes:
            for loss in bench_losses():
                L = lossref.get(loss)
                y, p = inputs_for(loss, shape, rng)
                row = {"loss": loss, "shape": list(shape), "elements": int(np.prod(shape)),
                       "input_bytes": int(y.nbytes + p.nbytes)}
                row["lossref"] = timed(lambda: L.per_sample(y, p), repeat)
                peak = peak_extra_bytes(lambda: L.per_sample(y, p))
                row["peak_extra_bytes"] = int(peak)
                row["peak_extra_ratio"] = peak / row["input_bytes"]
                row["peers"] = {}
                for name, (xp, fns) in peer_map.items():
                    if loss in fns:
                        yy, pp = xp.asarray(y), xp.asarray(p)
                        f = fns[loss]
                        row["peers"][name] = timed(lambda: xp.block(f(yy, pp)), repeat)
                for name, (xp, fns) in floor_map.items():
                    if loss in fns:
                        row["numpy_float64_textbook"] = timed(lambda: fns[loss](y, p), repeat)
                if keras_fns is not None and hasattr(keras_fns, loss):
                    kf = getattr(keras_fns, loss)
                    row["peers"][peer_names[-1]] = timed(lambda: kf(y, p), repeat)
                fastest = min((v["median_s"] for v in row["peers"].values()), default=None)
                row["ratio_to_fastest_peer"] = row["lossref"]["median_s"] / fastest if fastest else None
                if loss in dialect_losses:  # the losses only PyTorch defines have no Keras dialect
                    row["keras_dialect"] = dialect_row(loss, y, p, repeat)
                results["reference"].append(row)
                _print_ref(row)
    # the other losses of the Keras dialect (structured ones among them), at the largest size
    log2n = max(sizes)
    for loss in sorted(set(keras_callables()) - set(bench_losses())):
        shape = shape_for(loss, log2n)
        y, p = inputs_for(loss, shape, rng)
        row = {"loss": loss, "shape": list(shape), "elements": int(np.prod(shape)),
               "keras_dialect": dialect_row(loss, y, p, repeat)}
        results["dialect"].append(row)
        _print_dialect(row)


def _dialect_text(d: dict) -> str:
    return (f"keras class {d['class']['ratio_to_catalogue']:4.2f}x fn {d['function']['ratio_to_catalogue']:4.2f}x"
            f" mem {d['class']['peak_extra_ratio']:.2f}x")


def _print_dialect(row):
    d = row["keras_dialect"]
    print(f"  {row['loss']:34s} {str(tuple(row['shape'])):18s} lossref {d['catalogue']['median_s'] * 1e3:8.1f} ms"
          f"  mem {d['catalogue']['peak_extra_ratio']:.2f}x  | {_dialect_text(d)}", flush=True)


def _print_ref(row):
    peers = "  ".join(f"{k.split()[0]} {v['median_s'] * 1e3:7.1f}" for k, v in row["peers"].items())
    if "numpy_float64_textbook" in row:
        peers += f"  (numpy-f64 {row['numpy_float64_textbook']['median_s'] * 1e3:7.1f})"
    r = row["ratio_to_fastest_peer"]
    print(f"  {row['loss']:34s} {str(tuple(row['shape'])):18s} lossref {row['lossref']['median_s'] * 1e3:8.1f} ms"
          f"  ratio {r if r is None else f'{r:5.2f}'}  mem {row['peak_extra_ratio']:.2f}x  | {peers}"
          + (f"  | {_dialect_text(row['keras_dialect'])}" if "keras_dialect" in row else ""), flush=True)


#: what issue #14 asks of the fast oracle: geometric-mean speedup over the naive baseline, and
#: the least any loss may have
ORACLE_TARGETS = {"geomean": 10.0, "min": 4.0}


def oracle_benchmarks(quick, repeat, results):
    """The oracle's rounding (balls first, mpmath for what they leave open) against the naive
    baseline: the same definition in mpmath at 50 digits, one evaluation, each result rounded
    once (no proof that the rounding is right). Every benchmarked case is also decided by
    the mpmath path (Ziv's test) and must give the same bits."""
    from lossref import oracle as oracle_mod

    rng = np.random.default_rng(1)
    shape = (8, 32) if quick else (64, 64)  # large enough that per-call costs do not dominate
    formats_ = ("float64", "float32", "float16", "bfloat16")
    for loss in bench_losses():
        L = lossref.get(loss)
        y, p = inputs_for(loss, shape, rng)
        kw = L.bind({})
        for fmt in formats_:
            got = {}

            def ours():
                e = L.exact(y, p)
                got["v"] = e.round(fmt)
                got["stats"] = e.stats

            def naive():  # same definition, fixed 50 digits, one rounding, no Ziv loop
                te, pe = to_exact(y), to_exact(p)
                with mpmath.workdps(50):
                    v = L.per_sample_exact_values(te, pe, kw)
                got["n"] = np.array([formats.round_mpf(x, fmt) for x in np.ravel(v)]).reshape(np.shape(v))

            t_ours = timed(ours, repeat)
            t_naive = timed(naive, max(3, repeat // 2))
            old = oracle_mod.BACKEND
            oracle_mod.BACKEND = "mpmath"
            try:
                proven_mp = L.exact(y, p).round(fmt)
            finally:
                oracle_mod.BACKEND = old
            agree = bool(np.array_equal(np.asarray(got["v"], np.float64), np.asarray(proven_mp, np.float64),
                                        equal_nan=True))
            n_out = int(np.prod(np.shape(got["v"])))
            first = got["stats"].get(min((k for k in got["stats"] if isinstance(k, int)), default=0), 0)
            row = {"loss": loss, "format": fmt, "elements": int(np.prod(shape)), "outputs": n_out,
                   "lossref": t_ours, "naive_dps50": t_naive,
                   "elements_per_s": np.prod(shape) / t_ours["median_s"],
                   "naive_elements_per_s": np.prod(shape) / t_naive["median_s"],
                   "speedup": t_naive["median_s"] / t_ours["median_s"],
                   "rounded_results_agree": agree,
                   "naive_agrees": bool(np.array_equal(np.asarray(proven_mp, np.float64), got["n"], equal_nan=True)),
                   "decided_at_first_precision": first / max(n_out, 1),
                   "ball_stats": {str(k): v for k, v in got["stats"].items()}}
            results["oracle"].append(row)
            print(f"  {loss:34s} {fmt:8s} {row['elements_per_s']:9.0f} el/s  naive {row['naive_elements_per_s']:8.0f}"
                  f"  speedup {row['speedup']:6.2f}  first-precision {row['decided_at_first_precision']:4.0%}"
                  f"  agree {agree}", flush=True)
    results["oracle_hard_cases"] = hard_case_check(oracle_mod)
    h = results["oracle_hard_cases"]
    print(f"  hard cases (tests/data/hard_cases.txt): {h['cases']} cases, balls {h['balls_s']:.2f} s, "
          f"mpmath path {h['mpmath_s']:.2f} s, bit-identical {h['agree']}", flush=True)


def hard_case_check(oracle_mod) -> dict:
    """Decide every hard case (values nearest a rounding midpoint) on both paths."""
    path = os.path.join(HERE, "..", "tests", "data", "hard_cases.txt")
    cases = []
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            loss, fmt, y, p, _ = line.split()
            f = formats.get_format(fmt)
            cases.append((loss, fmt, np.array([[formats.from_hex(y)]]).astype(f.dtype),
                          np.array([[formats.from_hex(p)]]).astype(f.dtype)))
    out, secs = {}, {}
    old = oracle_mod.BACKEND
    try:
        for b in ("auto", "mpmath"):
            oracle_mod.BACKEND = b
            t0 = time.perf_counter()
            out[b] = [formats.to_hex(float(lossref.get(loss).exact(y, p).round(fmt)[0])) for loss, fmt, y, p in cases]
            secs[b] = time.perf_counter() - t0
    finally:
        oracle_mod.BACKEND = old
    return {"cases": len(cases), "agree": out["auto"] == out["mpmath"], "balls_s": secs["auto"],
            "mpmath_s": secs["mpmath"]}


def primitive_benchmarks(results):
    """Cost per element of the oracle's building blocks in mpmath and, when installed, in
    gmpy2 (MPFR): what bounds any oracle that evaluates a loss's definition element by
    element in multiple precision."""
    a = np.random.default_rng(2).random(2000) + 0.5
    backends = [("mpmath", mpmath.mpf, mpmath.log, mpmath.exp, lambda p: mpmath.workprec(p))]
    try:
        import gmpy2
        backends.append(("gmpy2", gmpy2.mpfr, gmpy2.log, gmpy2.exp,
                         lambda p: gmpy2.context(gmpy2.get_context(), precision=p)))
    except ImportError:
        pass
    try:
        import flint

        @contextlib.contextmanager
        def arb_prec(p):
            old, flint.ctx.prec = flint.ctx.prec, p
            try:
                yield
            finally:
                flint.ctx.prec = old

        backends.append(("arb", flint.arb, flint.arb.log, flint.arb.exp, arb_prec))
    except ImportError:
        pass
    floats = a.tolist()
    for name, conv, log, exp, prec in backends:
        for bits in (64, 128, 166):
            with prec(bits):
                xs = [conv(v) for v in floats]
                ops = {"from float": lambda: [conv(v) for v in floats],
                       "x * y": lambda: [u * u for u in xs],
                       "1 - x": lambda: [1 - u for u in xs],
                       "log": lambda: list(map(log, xs)),
                       "exp": lambda: list(map(exp, xs))}
                row = {"backend": name, "bits": bits}
                for op, fn in ops.items():
                    row[op] = timed(fn, 5)["median_s"] / len(floats) * 1e6  # microseconds
            results["oracle_primitives"].append(row)
            print(f"  {name:7s} {bits:4d} bits  " + "  ".join(f"{k} {row[k]:5.2f}" for k in ops) + "  (us/element)",
                  flush=True)


def golden_benchmarks(quick, repeat, results):
    exe = [sys.executable, "-m", "lossref.cli", "golden"]
    extra = ["--loss", "mean_squared_error", "--loss", "binary_crossentropy"] if quick else []
    for jobs in (1, 2):
        ts, rc, err = [], 0, ""
        for _ in range(repeat):  # a fresh process each time: nothing to warm up
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                r = subprocess.run(exe + extra + ["--jobs", str(jobs), "--out", d], capture_output=True, text=True)
                ts.append(time.perf_counter() - t0)
            if r.returncode and not rc:  # keep the first failure
                rc, err = r.returncode, r.stderr[-500:]
        row = {"jobs": jobs, "seconds": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "runs": repeat,
               "returncode": rc, "subset": bool(extra)}
        if rc:
            row["stderr"] = err
        results["golden"].append(row)
        print(f"  golden --jobs {jobs}: {row['seconds']:7.1f} s (median of {repeat}; rc {rc})", flush=True)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "processor": platform.processor(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "mpmath": mpmath.__version__, "mpmath_backend": mpmath.libmp.BACKEND,
            "lossref": lossref.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = names[0] if names else None
    except OSError:
        pass
    for mod in ("torch", "jax", "keras"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--only", choices=["reference", "torch", "optax-tf", "grad", "oracle", "golden"], action="append")
    args = ap.parse_args(argv)
    parts = args.only or ["reference", "torch", "optax-tf", "grad", "oracle", "golden"]
    results = {"machine": machine(), "quick": args.quick, "reference": [], "dialect": [], "torch_dialect": [],
               "array_dialects": [], "grad": [], "oracle": [], "oracle_primitives": [], "golden": []}
    repeat = 5
    print(f"lossref {lossref.__version__} on {results['machine'].get('cpu')} ({results['machine']['cpus']} cpus)")
    if "reference" in parts:
        print("reference vs peers, and the Keras dialect (class call and function) over the reference "
              "(float32 inputs; times are medians):")
        reference_benchmarks([16] if args.quick else [20, 24], repeat, results)
    if "torch" in parts:
        print("the PyTorch dialect over torch itself (float32 inputs, 'none' and 'mean'; medians):")
        for name in torch_functions():
            results["torch_dialect"].append(torch_row(name, 16 if args.quick else 22, repeat))
            print_torch_row(results["torch_dialect"][-1])
    if "optax-tf" in parts:
        print("the Optax and TensorFlow dialects over optax and tf.nn (float32 inputs; medians):")
        for fw in ("optax", "tf"):
            for name in array_functions(fw):
                results["array_dialects"].append(array_row(fw, name, 12 if args.quick else 18, repeat))
                print_array_row(results["array_dialects"][-1])
    if "grad" in parts:
        print("reference gradients (.grad) over torch autograd and jit(jax.grad) (float32 inputs; medians):")
        results["grad"] = grad_rows(["torch", "optax"], 12 if args.quick else 18, repeat)
        results["summary_grad"] = grad_summary(results["grad"])
        print_ratios("{} gradients", "{}", results["summary_grad"])
    if "oracle" in parts:
        print("oracle vs naive mpmath (dps=50, no Ziv loop):")
        oracle_benchmarks(args.quick, repeat, results)
        print("oracle building blocks (microseconds per element):")
        primitive_benchmarks(results)
    if "golden" in parts:
        print("golden-vector generation:")
        golden_benchmarks(args.quick, repeat, results)
    summarise(results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


def summarise(results) -> None:
    ref = [r for r in results["reference"] if r["ratio_to_fastest_peer"]]
    if ref:
        big = max(r["elements"] for r in ref)
        top = [r for r in ref if r["elements"] == big and len(r["shape"]) == 2]
        g = statistics.geometric_mean([r["ratio_to_fastest_peer"] for r in top]) if top else float("nan")
        worst = max(top, key=lambda r: r["ratio_to_fastest_peer"]) if top else None
        print(f"reference at {big} elements: geometric-mean ratio {g:.2f}, worst {worst['loss']} "
              f"{worst['ratio_to_fastest_peer']:.2f}; max peak extra memory "
              f"{max(r['peak_extra_ratio'] for r in ref):.2f}x inputs")
        results["summary_reference"] = {"elements": big, "geomean_ratio": g,
                                        "worst": worst["loss"], "worst_ratio": worst["ratio_to_fastest_peer"]}
    # the dialect at the largest size: the reference rows there and the other Keras losses
    big = max((r["elements"] for r in results["reference"]), default=0)
    rows = [r for r in results["reference"] if r["elements"] == big and "keras_dialect" in r] + results["dialect"]
    if rows:
        calls = [(r["loss"], k, r["keras_dialect"]) for r in rows for k in ("class", "function")]
        loss, kind, d = max(calls, key=lambda c: c[2][c[1]]["ratio_to_catalogue"])
        extra = max(d2[k]["peak_extra_ratio"] - d2["catalogue"]["peak_extra_ratio"] for _, k, d2 in calls)
        print(f"keras dialect: worst time over the reference {d[kind]['ratio_to_catalogue']:.2f} ({loss} {kind}); "
              f"most peak memory beyond the reference's {extra:+.2f}x inputs")
        results["summary_dialect"] = {"worst": f"{loss} {kind}", "worst_ratio": d[kind]["ratio_to_catalogue"],
                                      "max_extra_memory_ratio": extra}
    if results.get("torch_dialect"):
        results["summary_torch_dialect"] = summarise_torch(results["torch_dialect"])
        print_ratios("torch dialect '{}'", "torch", results["summary_torch_dialect"])
    if results.get("array_dialects"):
        results["summary_array_dialects"] = summarise_arrays(results["array_dialects"])
        print_ratios("{} dialect", "{}", results["summary_array_dialects"])
    ora = results["oracle"]
    if ora:
        by_loss = {}
        for r in ora:
            by_loss.setdefault(r["loss"], []).append(r["speedup"])
        g = statistics.geometric_mean([r["speedup"] for r in ora])
        worst = min(by_loss, key=lambda k: statistics.geometric_mean(by_loss[k]))
        worst_row = min(ora, key=lambda r: r["speedup"])
        agree = all(r["rounded_results_agree"] for r in ora)
        hard = results.get("oracle_hard_cases", {})
        met = g >= ORACLE_TARGETS["geomean"] and worst_row["speedup"] >= ORACLE_TARGETS["min"] and agree \
            and hard.get("agree", False)
        print(f"oracle: geometric-mean {g:.1f}x the naive baseline over {len(by_loss)} losses x "
              f"{len(ora) // max(len(by_loss), 1)} formats (target {ORACLE_TARGETS['geomean']:.0f}x); least "
              f"{worst_row['speedup']:.1f}x ({worst_row['loss']} {worst_row['format']}, target "
              f"{ORACLE_TARGETS['min']:.0f}x); bit-identical to the mpmath path: {agree}, hard cases: "
              f"{hard.get('agree')}; targets met: {met}")
        results["summary_oracle"] = {"geomean_speedup": g, "min_speedup": worst_row["speedup"],
                                     "min_speedup_case": f"{worst_row['loss']} {worst_row['format']}",
                                     "slowest_loss": worst, "targets": ORACLE_TARGETS, "targets_met": met,
                                     "agree": agree, "hard_cases": hard}
    prim = {(r["backend"], r["bits"]): r for r in results.get("oracle_primitives", [])}
    if ("mpmath", 166) in prim and ("gmpy2", 64) in prim:
        # the baseline's log against the cheapest multiple-precision log there is
        bound = prim[("mpmath", 166)]["log"] / prim[("gmpy2", 64)]["log"]
        print(f"oracle building blocks: a 166-bit mpmath log costs {bound:.1f}x a 64-bit MPFR log")
        results.setdefault("summary_oracle", {})["mpmath166_over_mpfr64_log"] = bound


if __name__ == "__main__":
    sys.exit(main())
