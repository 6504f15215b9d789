"""The ``lossref diff`` subcommand."""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List, Optional, Sequence

from .. import SPEC_VERSION, formats


def _progress(desc: str, total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety
        return None
    return tqdm(total=total, desc=desc, unit="case", leave=False, disable=None)


def load_vector_cases(path: str, losses: Optional[Sequence[str]], dtypes: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    """Every case of the golden-vector files under `path` (a file or a folder)."""
    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True))
    cases = []
    for fn in files:
        with open(fn, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if "expected" not in rec:  # the provenance record
                    continue
                if losses and rec["loss"] not in losses:
                    continue
                if dtypes and rec["dtype"] not in dtypes:
                    continue
                cases.append(rec)
    return cases


def cache_key(spec: Dict[str, Any]) -> str:
    """Hash of what decides a case's expectations: loss, dtype, params, inputs, spec version."""
    blob = json.dumps({k: spec[k] for k in ("loss", "dtype", "params", "inputs", "reductions")},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((SPEC_VERSION + "\n" + blob).encode()).hexdigest()


def _expect_one(spec: Dict[str, Any]) -> Dict[str, Any]:
    from .cases import make_case
    from .compare import decode_hex

    ins = spec["inputs"]
    arr = lambda a: None if a is None else decode_hex(a["hex"]).reshape(a["shape"])  # noqa: E731
    return make_case(spec["id"], spec["loss"], spec["dtype"], arr(ins["y_true"]), arr(ins["y_pred"]),
                     params=spec["params"], sample_weight=arr(ins.get("sample_weight")),
                     reductions=spec["reductions"], tags=spec.get("tags", []))


def with_expectations(specs: List[Dict[str, Any]], cache_dir: Optional[str], jobs: int) -> List[Dict[str, Any]]:
    """Cases for input specs, the oracle's expectations computed in parallel and cached."""
    out: Dict[int, Dict[str, Any]] = {}
    todo = []
    for i, s in enumerate(specs):
        path = os.path.join(cache_dir, cache_key(s) + ".json") if cache_dir else None
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out[i] = dict(json.load(f), id=s["id"], tags=s.get("tags", []))
        else:
            todo.append((i, s, path))
    bar = _progress("oracle", len(todo)) if todo else None
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        for (i, s, path), case in zip(todo, ex.map(_expect_one, [t[1] for t in todo], chunksize=4)):
            out[i] = case
            if path:
                os.makedirs(cache_dir, exist_ok=True)
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(case, f, sort_keys=True)
                os.replace(tmp, path)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    return [out[i] for i in range(len(specs))]


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lossref", "oracle")


def _cmd_diff(args: argparse.Namespace) -> int:
    from . import runner, report

    def usage(msg: str) -> int:
        print(f"lossref diff: error: {msg}", file=sys.stderr)
        return 2

    if args.framework != "keras":
        return usage(f"framework {args.framework!r} is not supported yet (keras)")
    for d in args.dtype or []:
        try:
            formats.get_format(d)
        except TypeError as e:
            return usage(f"--dtype: {e}")
    if args.loss:
        from ..vectors.targets import keras_targets
        unknown = sorted(set(args.loss) - set(keras_targets()))
        if unknown:
            return usage(f"--loss: unknown loss {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(sorted(keras_targets()))}")
    if args.cases < 0:
        return usage(f"--cases must be >= 0; got {args.cases}")
    if args.vectors is not None and not os.path.exists(args.vectors):
        return usage(f"--vectors: {args.vectors}: no such file or folder")
    backends = args.backend or runner.installed_backends()
    if not backends:
        print("lossref diff: error: no Keras backend is installed (pip install 'lossref[keras]')", file=sys.stderr)
        return 2
    cases: List[Dict[str, Any]] = []
    vec = args.vectors
    if vec is None:
        from ..vectors import canonical_dir  # the committed set, when this is a source checkout
        vec = canonical_dir()
    if vec and os.path.exists(vec):
        cases += load_vector_cases(vec, args.loss, args.dtype)
    if args.cases:
        from ..vectors import fresh_specs
        specs = fresh_specs(args.cases, args.seed, losses=args.loss, dtypes=args.dtype)
        cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
        cases += with_expectations(specs, cache, args.jobs or os.cpu_count() or 1)
    if not cases:
        print("lossref diff: error: no cases (no vectors found and --cases 0)", file=sys.stderr)
        return 2
    reports = runner.run(cases, backends, timeout=args.timeout,
                         progress_factory=lambda b, n: _progress(f"keras[{b}]", n))
    plots = {}
    if not args.no_plots:
        plots = _sweep_plots(reports, args.out, backends, args.timeout)
    command = "lossref " + " ".join(shlex.quote(a) for a in (args.argv or []))
    doc = report.combine(reports, command)
    paths = report.write_all(doc, args.out, plots)
    n_find = len(doc["findings"])
    for b in doc["backends"]:
        status = f"could not run: {b['error']}" if b.get("error") else f"keras {b['framework_version']}"
        print(f"backend {b['backend']}: {status}")
    print(f"{len(cases)} cases, {len(doc['rows'])} rows, {n_find} findings")
    print(f"report: {paths['md']} (also {os.path.basename(paths['json'])}, {os.path.basename(paths['html'])})")
    return runner.exit_code(reports)


def _sweep_plots(reports, out_dir: str, backends, timeout: float) -> Dict[str, str]:
    """Sweep every (backend, loss, dtype) that has an inaccurate row; PNGs under out/plots."""
    from . import runner, sweeps
    from .cases import make_case

    targets = sorted({(r["backend"], row["loss"], row["dtype"]) for r in reports for row in r["rows"]
                      if row["status"] == "inaccurate"})
    plots: Dict[str, str] = {}
    by_backend: Dict[str, list] = {}
    for b, loss, dtype in targets:
        s = sweeps.sweep_inputs(loss, dtype)
        if s is None:
            continue
        x, t, p, label = s
        case = make_case(f"sweep/{loss}/{dtype}", loss, dtype, t, p, reductions=())
        by_backend.setdefault(b, []).append((case, x, label))
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    for b, items in by_backend.items():
        res = runner.run_backend(b, [c for c, _, _ in items], timeout=timeout)["results"]
        for case, x, label in items:
            ulps = sweeps.sweep_ulps(case, res.get(case["id"], {"error": "missing"}))
            rel = os.path.join("plots", f"{b}-{case['loss']}-{case['dtype']}.png")
            title = f"keras[{b}] {case['loss']} {case['dtype']}"
            if sweeps.plot_sweep(x, ulps, title, label, os.path.join(out_dir, rel)):
                plots[title] = rel
    return plots


def register_commands(sub) -> None:
    """Add ``diff`` to the ``lossref`` subcommands."""
    p = sub.add_parser("diff", help="run a real framework against the oracle and report differences",
                       description="Run FRAMEWORK's losses on the golden vectors plus freshly generated "
                                   "cases, compare with the exact values, and write report.json, "
                                   "report.md and index.html to --out. Exit 1 when a finding is "
                                   "inaccurate, mismatch or error.")
    p.add_argument("framework", choices=["keras"], help="the framework (keras)")
    p.add_argument("--backend", action="append", choices=["numpy", "jax", "torch", "tensorflow"],
                   help="Keras backend, repeatable (default: every installed one)")
    p.add_argument("--vectors", default=None, help="golden-vector file or folder (default: the canonical set)")
    p.add_argument("--cases", type=int, default=0, metavar="N", help="fresh cases per loss and dtype (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh cases")
    p.add_argument("--loss", action="append", help="only this loss (repeatable)")
    p.add_argument("--dtype", action="append", help="only this dtype (repeatable)")
    p.add_argument("--jobs", type=int, default=0, help="processes for the oracle (default: all cores)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it is an error")
    p.add_argument("--cache-dir", default=None, help="oracle cache (default: ~/.cache/lossref/oracle)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the oracle cache")
    p.add_argument("--no-plots", action="store_true", help="skip the sweep plots")
    p.add_argument("--out", required=True, help="folder for the reports")
    p.set_defaults(func=_cmd_diff)
