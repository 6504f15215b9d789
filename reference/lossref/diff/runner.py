"""`lossref diff`: run a real framework against the oracle and classify every difference.

Each backend runs in a subprocess of its own (:mod:`lossref.diff.worker`; a Keras backend
is process-global). Cases are golden-vector records; the worker returns the framework's
outputs, this module compares them with the recorded exact values, groups them into rows
(loss, dtype, output, parameters) and findings, and writes the reports.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .. import SPEC_VERSION, __version__, formats
from ..vectors.targets import REDUCTIONS, call_params, get_target, keras_targets
from ..vectors.torch_table import integer_inputs
from . import causes, compare

BACKENDS = ("numpy", "jax", "torch", "tensorflow")
#: modules each Keras backend needs (Keras's numpy backend imports jax and scipy too)
_BACKEND_MODULES = {"numpy": ("keras", "jax", "scipy"), "jax": ("keras", "jax"),
                    "torch": ("keras", "torch"), "tensorflow": ("keras", "tensorflow")}


def installed_backends() -> List[str]:
    """Keras backends whose modules are importable here."""
    return [b for b, mods in _BACKEND_MODULES.items()
            if all(importlib.util.find_spec(m) is not None for m in mods)]


def expected_dtype(case: Dict[str, Any], output: str) -> str:
    """The dtype the dialect gives this output, as recorded with it (Keras: the
    function's may differ from the case's, e.g. CTC in float32, and classes return their
    dtype; torch: every output records its dtype)."""
    return _expected_of(case, output).get("dtype", case["dtype"])


def _n_terms(case: Dict[str, Any], output: str) -> int:
    if output.startswith(GRAD_PREFIX):  # a gradient element: the terms of one value it feeds
        base = output[len(GRAD_PREFIX):]
        return _n_terms(case, "none" if base != "per_sample" and case.get("dialect", "keras") != "keras"
                        else "per_sample")
    if case.get("dialect") == "torch":  # 'none' is elementwise; a reduction sums every element
        shape = case["inputs"][get_target("torch", case["loss"]).entry.names[0]]["shape"]
        return 1 if output == "none" else (int(np.prod(shape)) if shape else 1)
    if case.get("dialect") in ("optax", "tf"):  # per example: the terms an output value sums
        shape = case["inputs"][get_target(case["dialect"], case["loss"]).entry.names[0]]["shape"]
        out = case["expected"]["reductions"]["none"]["shape"]
        return max(1, int(np.prod(shape)) // max(1, int(np.prod(out))))
    shape = case["inputs"]["y_pred"]["shape"]
    if output == "per_sample" or output == "none":
        return int(shape[-1]) if shape else 1
    return int(np.prod(shape)) if shape else 1


# --- running a backend ---------------------------------------------------------------------


def _read_results(path: str) -> List[Dict[str, Any]]:
    """The worker's result lines, up to the first incomplete one (a worker killed while
    writing leaves a partial last line; that case counts as not done)."""
    out: List[Dict[str, Any]] = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                out.append(json.loads(line))
            except ValueError:
                break
    return out


def _compile_key(case: Dict[str, Any]) -> tuple:
    """What a JAX compilation depends on: the function, the dtype, the parameters and the
    input shapes (the results are keyed by case id, so the order changes nothing else)."""
    shapes = tuple((k, tuple(v["shape"]) if v else None) for k, v in sorted(case["inputs"].items()))
    return case["loss"], case["dtype"], json.dumps(case.get("params") or {}, sort_keys=True), shapes, case["id"]


def run_backend(backend: str, cases: List[Dict[str, Any]], timeout: float = 30.0,
                workdir: Optional[str] = None, progress=None, framework: str = "keras") -> Dict[str, Any]:
    """Run `cases` through Keras on `backend` (or torch, `framework` ``"torch"``, backend
    ``"cpu"``); returns header info and results by id.

    A worker that dies (segfault, out of memory) is restarted after the case it was on,
    which is recorded as an ``error``. Without `workdir` the worker's files go to a
    temporary folder that is removed afterwards, also on Ctrl-C.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="lossref-diff-") as tmp:
            return run_backend(backend, cases, timeout, tmp, progress, framework)
    results: Dict[str, Dict[str, Any]] = {}
    header: Dict[str, Any] = {}
    if framework in ("torch", "optax", "tf"):
        todo = [dict(c, torch={"integer": list(integer_inputs(get_target(framework, c["loss"]).entry,
                                                              c["inputs"])),
                               "positional": list(get_target(framework, c["loss"]).entry.positional),
                               "wrt": get_target(framework, c["loss"]).entry.names[0]})
                for c in cases]
        if framework == "optax":  # JAX compiles once per function, shapes and dtype: group them
            todo.sort(key=_compile_key)
    else:
        targets = keras_targets()
        todo = [dict(c, keras={"function": targets[c["loss"]].function_name,
                               "class": targets[c["loss"]].class_name}) for c in cases]
    attempt = 0
    while todo:
        attempt += 1
        cin = os.path.join(workdir, f"{backend}-cases-{attempt}.jsonl")
        cout = os.path.join(workdir, f"{backend}-results-{attempt}.jsonl")
        with open(cin, "w", encoding="utf-8") as f:
            for c in todo:
                f.write(json.dumps(c) + "\n")
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        if framework == "keras":
            env["KERAS_BACKEND"] = backend
        else:  # "cpu" is no Keras backend (tensorflow imports Keras, which reads the variable)
            env.pop("KERAS_BACKEND", None)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # output captured: a worker's noise (or its traceback on Ctrl-C) never reaches the
        # terminal; on an exception here (Ctrl-C included) subprocess.run kills the worker
        proc = subprocess.run([sys.executable, "-m", "lossref.diff.worker", "--framework", framework,
                               "--backend", backend,
                               "--cases", cin, "--out", cout, "--timeout", str(timeout)],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        lines = _read_results(cout)
        if not lines or "error" in lines[0] and lines[0].get("header"):
            why = lines[0]["error"] if lines else (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"header": {"backend": backend, "error": why}, "results": {}}
        header = lines[0]
        done = {r["id"]: r for r in lines[1:]}
        results.update(done)
        if progress:
            progress(len(done))
        rest = [c for c in todo if c["id"] not in done]
        if rest and proc.returncode != 0:
            crashed = rest[0]
            tail = (proc.stderr.strip().splitlines() or [""])[-1]
            results[crashed["id"]] = {"id": crashed["id"], "kind": "crash",
                                      "error": f"worker died (exit {proc.returncode}) {tail}".strip()}
            rest = rest[1:]
        elif rest:  # exited cleanly without finishing: should not happen
            for c in rest:
                results[c["id"]] = {"id": c["id"], "kind": "crash", "error": "no result returned"}
            rest = []
        todo = rest
    return {"header": header, "results": results}


# --- comparison and grouping -----------------------------------------------------------------

#: An object's address in an exception message (``<function f at 0x7f...>``) differs run
#: to run; reports say ``0x…`` instead, so the same run gives the same bytes.
_ADDRESS_RE = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def _stable_text(text: str) -> str:
    return _ADDRESS_RE.sub("0x…", text)


#: prefix of a gradient output's name: ``grad:per_sample`` is the gradient of ``per_sample``
GRAD_PREFIX = causes.GRAD_PREFIX


def output_names(case: Dict[str, Any]) -> List[str]:
    """The outputs of a case in canonical order: per_sample (Keras), then the reductions in
    the order of the dialect (:data:`~lossref.vectors.targets.REDUCTIONS`; torch: 'none',
    'mean', 'sum', 'batchmean'), any other name after, sorted, whatever the order of the
    keys in the record (a cached case's are sorted); then, where the case has expected
    gradients (``lossref diff --grad``), ``grad:<output>`` for each, in the same order."""
    reds = case["expected"].get("reductions", {})
    order = ("none", "mean", "sum", "batchmean") if case.get("dialect") in ("torch", "optax", "tf") else REDUCTIONS
    head = ["per_sample"] if "per_sample" in case["expected"] else []
    names = head + [r for r in order if r in reds] + sorted(set(reds) - set(order))
    grads = case["expected"].get("grad", {})
    return names + [GRAD_PREFIX + n for n in names if n in grads] + \
        [GRAD_PREFIX + n for n in sorted(set(grads) - set(names))]


def _output_rank(case: Dict[str, Any], output: str) -> int:
    return output_names(case).index(output)


def evaluate(cases: List[Dict[str, Any]], results: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One record per (case, output): status, ulp error and the summary of the worst value."""
    records = []
    for case in cases:
        res = results.get(case["id"], {"error": "no result", "kind": "crash"})
        fmt = formats.get_format(case["dtype"])
        for name in output_names(case):
            exp = _expected_of(case, name)
            base = {"case": case, "output": name}
            if "error" in res:
                records.append({**base, "status": "error", "kind": res.get("kind", "exception"),
                                "summary": _stable_text(res["error"]), "ulp": None})
                continue
            got = res.get("per_sample") if name == "per_sample" else \
                res.get("grad", {}).get(name[len(GRAD_PREFIX):]) if name.startswith(GRAD_PREFIX) else \
                res.get("reductions", {}).get(name)
            if got is not None and "error" in got:  # this output raised; the others may not have
                records.append({**base, "status": "error", "kind": got.get("kind", "exception"),
                                "summary": _stable_text(got["error"]), "ulp": None})
                continue
            typical = compare.case_class(case.get("tags")) == "typical"
            cmp = compare.compare_output(exp, got, fmt, expected_dtype(case, name), _n_terms(case, name),
                                         typical)
            records.append({**base, **cmp})
    return records


def _params_key(params: Optional[dict]) -> str:
    return json.dumps(params or {}, sort_keys=True)


def build_rows(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Aggregate per (loss, dtype, output, parameters, case class)."""
    groups: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for r in records:
        c = r["case"]
        groups[(c["loss"], c["dtype"], r["output"], _params_key(c.get("params")),
                compare.case_class(c.get("tags")))].append(r)
    rows = []
    for (loss, dtype, output, pk, cls), rs in sorted(groups.items()):
        ulps = [r["ulp"] for r in rs if r.get("ulp") is not None]
        finite = [u for u in ulps if not math.isinf(u)]
        rows.append({
            "loss": loss, "dtype": dtype,
            "reduction": None if output == "per_sample" else output,
            "params": json.loads(pk), "cases_class": cls, "cases": len(rs),
            "max_ulp": json_num(max(ulps) if ulps else 0.0),
            "p99_ulp": json_num(compare.p99(finite)),
            "status": compare.worst_status([r["status"] for r in rs]),
        })
    return rows


def json_num(x: Optional[float]):
    """An ulp count as reports store it: ``"inf"`` for infinity, else rounded to 4 decimals."""
    if x is None:
        return None
    return "inf" if math.isinf(x) else round(float(x), 4)


def build_findings(records: List[Dict[str, Any]], framework: str, backend: str,
                   worst_records: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One finding per (loss, dtype, value or gradient, status, kind): the same failure
    seen through several outputs and parameter sets is one finding, carrying its worst
    case and the id of its cause (:func:`lossref.diff.causes.classify` of the worst record).

    Parameters
    ----------
    records : list of dict
        :func:`evaluate`'s records.
    framework, backend : str
        What ran (the reproducers need them).
    worst_records : list, optional
        Where given, the worst record of each finding is appended to it, in the order of
        the findings returned (:func:`lossref.diff.causes.build_causes` reads them).
    """
    bad = [r for r in records if r["status"] in ("inaccurate", "mismatch", "error")]
    groups: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for r in bad:
        c = r["case"]
        # a value and a gradient failing alike are two findings
        groups[(c["loss"], c["dtype"], r["output"].startswith(GRAD_PREFIX), r["status"],
                r.get("kind") or r["status"])].append(r)
    findings, worsts = [], []
    for (loss, dtype, grad, status, kind), rs in sorted(groups.items()):
        # the largest error; among equal ones (aliases such as mean and sum_over_batch_size
        # give equal values) the first case by id, then the first output in canonical order
        worst = min(rs, key=lambda r: (-ulp_key(r.get("ulp")), r["case"]["id"],
                                       _output_rank(r["case"], r["output"])))
        c, output = worst["case"], worst["output"]
        params = _sorted_params(c)
        computed = worst.get("computed")
        findings.append({
            "cause": causes.classify(worst)["id"],
            "computed": None if computed is None else {"index": worst.get("index"), "hex": float(computed).hex()},
            "loss": loss, "dtype": dtype, "kind": status, "detail": kind,
            "reduction": None if output == "per_sample" else output,
            "outputs": sorted({r["output"] for r in rs}),
            "params": params,
            "param_sets": len({_params_key(r["case"].get("params")) for r in rs}),
            "cases": len({r["case"]["id"] for r in rs}),
            "max_ulp": json_num(worst.get("ulp")),
            "summary": f"{loss} {dtype} {output}: {worst.get('summary', status)}",
            "case_id": c["id"],
            "worst_case": {"inputs": c["inputs"], "params": params,
                           "output": output, "expected": _expected_of(c, output)},
            "reproducer": reproducer(c, output, backend),
        })
        worsts.append(worst)
    # worst first; equal ones in a fixed order (groups are sorted, sort is stable)
    order = sorted(range(len(findings)), key=lambda i: (compare.RANK[findings[i]["kind"]],
                                                        ulp_key(findings[i]["max_ulp"])), reverse=True)
    if worst_records is not None:
        worst_records.extend(worsts[i] for i in order)
    return [findings[i] for i in order]


def _sorted_params(case: Dict[str, Any]) -> Dict[str, Any]:
    """The case's parameters with their names sorted (reproducers, reports)."""
    return dict(sorted((case.get("params") or {}).items()))


def ulp_key(u) -> float:
    """An ulp error (or the reports' ``"inf"``, or None for no value) as a sort key: worst is largest."""
    return math.inf if u in (None, "inf") else float(u)


def _expected_of(case, output):
    if output.startswith(GRAD_PREFIX):
        return case["expected"]["grad"][output[len(GRAD_PREFIX):]]
    return case["expected"]["per_sample"] if output == "per_sample" else case["expected"]["reductions"][output]


def torch_reproducer(case: Dict[str, Any], output: str) -> str:
    """A self-contained snippet (torch and NumPy only): the tensors rebuilt from hex, the
    torch function called with the case's reduction, its value and the exact decimals."""
    target = get_target("torch", case["loss"])
    dt = case["dtype"]
    lines = ["import numpy as np", "import torch", "",
             "def arr(hexes, shape, dtype):",
             "    v = [float('nan') if h == 'nan' else float.fromhex(h) for h in hexes]",
             "    return torch.tensor(np.array(v, dtype=np.float64).reshape(shape)).to(dtype)", ""]
    names = []
    for k in target.input_names:
        a = case["inputs"].get(k)
        if a is None:
            continue
        dtype = "torch.int64" if k in integer_inputs(target.entry, case["inputs"]) else f"torch.{dt}"
        lines.append(f"{k} = arr({a['hex']!r}, {tuple(a['shape'])!r}, {dtype})")
        names.append(k)
    i, t = target.entry.positional
    kw = "".join(f", {k}={k}" for k in names if k not in (i, t))
    kw += "".join(f", {k}={v!r}" for k, v in _sorted_params(case).items())
    grad = output.startswith(GRAD_PREFIX)
    red = output[len(GRAD_PREFIX):] if grad else output
    wrt = target.entry.names[0]
    if grad:
        lines.append(f"{wrt}.requires_grad_(True)")
    lines.append(f"out = torch.nn.functional.{case['loss']}({i}, {t}, reduction={red!r}{kw})")
    if grad:
        lines += ["out.sum().backward()", f"out = {wrt}.grad  # d sum(out) / d {wrt}"]
    exp = _expected_of(case, output)
    lines += ["out = out.detach().to(torch.float64).numpy().ravel()",
              f"exact = {list(exp['decimal'])!r}  # lossref oracle, 40 significant digits",
              "print('framework:', [repr(float(v)) for v in out])",
              "print('exact    :', exact)"]
    return "\n".join(lines) + "\n"


#: per functional dialect without reductions: the imports, the array constructor, the namespace
_FRAMEWORK_CODE = {
    "optax": (["import jax", "jax.config.update('jax_enable_x64', True)", "import numpy as np", "import optax"],
              "jax.numpy.asarray", "optax.losses"),
    "tf": (["import os", "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'", "import numpy as np",
            "import tensorflow as tf"], "tf.constant", "tf.nn"),
}


def array_reproducer(case: Dict[str, Any], output: str = "none") -> str:
    """A self-contained snippet for optax (JAX with x64 on) or tf.nn, NumPy beside it: the
    arrays rebuilt from hex, the function called as the framework orders its arguments,
    its value and the exact decimals."""
    dialect = case["dialect"]
    target = get_target(dialect, case["loss"])
    imports, make, namespace = _FRAMEWORK_CODE[dialect]
    dt = case["dtype"]
    lines = list(imports)
    lines += (["import ml_dtypes", "DT = ml_dtypes.bfloat16"] if dt == "bfloat16" else [f"DT = np.{dt}"])
    lines += ["", "def arr(hexes, shape, dtype=None):",
              "    v = [float('nan') if h == 'nan' else float.fromhex(h) for h in hexes]",
              f"    return {make}(np.array(v, dtype=np.float64).reshape(shape).astype(dtype or DT))", ""]
    names = []
    for k in target.input_names:
        a = case["inputs"].get(k)
        if a is None:
            continue
        integer = k in integer_inputs(target.entry, case["inputs"])
        lines.append(f"{k} = arr({a['hex']!r}, {tuple(a['shape'])!r}{', np.int64' if integer else ''})")
        names.append(k)
    pos = target.entry.positional
    wrt = target.entry.names[0]
    grad = output.startswith(GRAD_PREFIX)
    use = (lambda k: "p" if grad and k == wrt else k)  # noqa: E731
    args = ", ".join(use(k) for k in pos)
    args += "".join(f", {k}={use(k)}" for k in names if k not in pos)
    args += "".join(f", {k}={v!r}" for k, v in _sorted_params(case).items())
    call = f"{namespace}.{case['loss']}({args})"
    if not grad:
        lines.append(f"out = {call}")
    elif dialect == "optax":
        lines.append(f"out = jax.grad(lambda p: jax.numpy.sum({call}))({wrt})  # d sum(out) / d {wrt}")
    else:
        lines += ["with tf.GradientTape() as tape:", f"    p = {wrt}", "    tape.watch(p)",
                  f"    total = tf.reduce_sum({call})", f"out = tape.gradient(total, p)  # d sum(out) / d {wrt}",
                  "out = tf.cast(out, tf.float64)"]
    exp = _expected_of(case, output)
    lines += ["out = np.asarray(out).astype(np.float64).ravel()",
              f"exact = {list(exp['decimal'])!r}  # lossref oracle, 40 significant digits",
              "print('framework:', [repr(float(v)) for v in out])",
              "print('exact    :', exact)"]
    return "\n".join(lines) + "\n"


def reproducer(case: Dict[str, Any], output: str, backend: str) -> str:
    """A self-contained snippet (the framework and NumPy only) that shows the finding."""
    if case.get("dialect") == "torch":
        return torch_reproducer(case, output)
    if case.get("dialect") in ("optax", "tf"):
        return array_reproducer(case, output)
    target = keras_targets()[case["loss"]]
    ins = case["inputs"]
    dt = case["dtype"]
    lines = ["import os", f"os.environ['KERAS_BACKEND'] = {backend!r}", "import numpy as np", "import keras"]
    if dt == "bfloat16":
        lines += ["import ml_dtypes", "DT = ml_dtypes.bfloat16"]
    else:
        lines += [f"DT = np.{dt}"]
    lines += ["", "def arr(hexes, shape):",
              "    v = [float('nan') if h == 'nan' else float.fromhex(h) for h in hexes]",
              "    return np.array(v, dtype=np.float64).reshape(shape).astype(DT)", ""]
    for k in ("y_true", "y_pred", "sample_weight"):
        a = ins.get(k)
        lines.append(f"{k} = None" if a is None else f"{k} = arr({a['hex']!r}, {tuple(a['shape'])!r})")
    params = call_params(_sorted_params(case))  # JSON lists are axis tuples
    grad = output.startswith(GRAD_PREFIX)
    base = output[len(GRAD_PREFIX):] if grad else output
    if base == "per_sample":  # the function takes only the parameters in its signature
        kw = "".join(f", {k}={v!r}" for k, v in params.items() if k in target.function_params)
        call = f"keras.losses.{target.function_name}(y_true, p{kw})"
    else:
        kw = "".join(f", {k}={v!r}" for k, v in params.items())
        red = None if base == "none" else base
        lines.append(f"loss = keras.losses.{target.class_name}(reduction={red!r}, dtype={dt!r}{kw})")
        call = "loss(y_true, p, sample_weight=sample_weight)"
    if not grad:
        lines.append(f"out = {call.replace('(y_true, p', '(y_true, y_pred')}")
    else:
        lines += _keras_grad_lines(call, backend)
    exp = _expected_of(case, output)
    dec = exp["decimal"] if isinstance(exp["decimal"], list) else [exp["decimal"]]
    lines += ["out = np.asarray(keras.ops.convert_to_numpy(out)).astype(np.float64).ravel()",
              f"exact = {dec!r}  # lossref oracle, 40 significant digits",
              "print('framework:', [repr(float(v)) for v in out])",
              "print('exact    :', exact)"]
    return "\n".join(lines) + "\n"


def _keras_grad_lines(call: str, backend: str) -> List[str]:
    """Reproducer lines computing ``out = d sum(call) / d y_pred`` (the call reads ``p``)
    with the backend's own autodiff."""
    if backend == "jax":
        return ["import jax", f"out = jax.grad(lambda p: jax.numpy.sum({call}))(jax.numpy.asarray(y_pred))"]
    if backend == "torch":
        return ["import torch",
                "p = torch.tensor(y_pred.astype(np.float64)).to(getattr(torch, str(y_pred.dtype)))",
                "p.requires_grad_(True)", f"torch.sum({call}).backward()", "out = p.grad.to(torch.float64)"]
    return ["import tensorflow as tf", "p = tf.cast(tf.constant(y_pred.astype(np.float64)), str(y_pred.dtype))",
            "with tf.GradientTape() as tape:", "    tape.watch(p)", f"    total = tf.reduce_sum({call})",
            "out = tf.cast(tape.gradient(total, p), tf.float64)"]


# --- the whole run -------------------------------------------------------------------------------


def run(cases: List[Dict[str, Any]], backends: Sequence[str], *, timeout: float = 30.0,
        framework: str = "keras", progress_factory=None) -> List[Dict[str, Any]]:
    """Run every backend; returns one report dict per backend."""
    reports = []
    for b in backends:
        bar = progress_factory(b, len(cases)) if progress_factory else None
        out = run_backend(b, cases, timeout=timeout, progress=(bar.update if bar else None),
                          framework=framework)
        if bar:
            bar.close()
        header = out["header"]
        if "error" in header and not out["results"]:
            reports.append({"framework": framework, "backend": b, "framework_version": None,
                            "lossref_version": __version__, "spec_version": SPEC_VERSION,
                            "error": header["error"], "rows": [], "findings": [], "causes": [],
                            "cases": len(cases)})
            continue
        records = evaluate(cases, out["results"])
        worst: List[Dict[str, Any]] = []
        findings = build_findings(records, framework, b, worst)
        reports.append({
            "framework": framework, "backend": header.get("backend", b),
            "framework_version": header.get("framework_version"),
            "versions": header.get("versions", {}),
            "lossref_version": __version__, "spec_version": SPEC_VERSION,
            "cases": len(cases),
            "rows": build_rows(records),
            "findings": findings,
            "causes": causes.build_causes(findings, worst),
        })
    return reports


def exit_code(reports: Iterable[Dict[str, Any]]) -> int:
    """1 when any finding is inaccurate, mismatch or error (or a backend could not run)."""
    for r in reports:
        if r.get("error") or r["findings"]:
            return 1
    return 0
