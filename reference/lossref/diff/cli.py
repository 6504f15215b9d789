"""The ``lossref diff`` subcommand: its options, the golden vectors it reads (each file
checked first), the fresh cases and their cached expectations, and the reports."""

from __future__ import annotations

import argparse
import contextlib
import glob
import math
import os
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import formats
from .._procs import SchedulerError, check_scheduler_address, work_pool
from ..vectors.fileformat import check_provenance, parse_lines
from ..vectors.targets import targets as dialect_targets
from .cache import OracleCache, canonical_case, case_problem, default_cache_dir, payload_of

__all__ = ["VectorFileError", "load_vector_cases", "with_expectations", "report_command",
           "default_cache_dir", "register_commands"]


class _NoBar:
    """Stands in for a progress bar when tqdm is missing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress(desc: str, total: int):
    """A progress bar on stderr (only on a terminal); a context manager with ``update``."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="case", leave=False, disable=None)


class VectorFileError(ValueError):
    """A golden-vector file that cannot be used; the message names the file and line."""


def _vector_files(path: str) -> List[str]:
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True))


def _case_problem(rec: Any, prov: Optional[Dict[str, Any]], dialect: str = "keras") -> Optional[str]:
    """Why line `rec` is not a usable case (None: it is), against the file's provenance;
    a file without one (a hand-made list of cases) checks each case against itself."""
    if prov is None:
        own = rec if isinstance(rec, dict) else {}
        if "dtype" in own and not (isinstance(own["dtype"], str) and own["dtype"] in formats.FORMATS):
            return f"dtype {own['dtype']!r} is not one of {sorted(formats.FORMATS)}"
        prov = {k: own.get(k) for k in ("dialect", "loss", "dtype")}
    if dialect == "keras" and prov.get("dialect") != "keras":
        return f"{prov.get('dialect')}/{prov.get('loss')} is not a Keras loss lossref knows"
    if dialect != "keras" and prov.get("dialect") != dialect:
        return f"{prov.get('dialect')}/{prov.get('loss')} is not a {dialect} case"
    problem = case_problem(rec, prov)
    if problem:
        return problem
    if rec["dialect"] != dialect or rec["loss"] not in dialect_targets(dialect):
        what = "a Keras loss" if dialect == "keras" else f"a {dialect} function"
        return f"{rec['dialect']}/{rec['loss']} is not {what} lossref knows"
    return None


def _read_vector_file(fn: str, losses: Optional[Sequence[str]],
                      dtypes: Optional[Sequence[str]], dialect: str = "keras") -> List[Tuple[int, Dict[str, Any]]]:
    """(line number, record) of every selected case of one file, each checked first; a
    golden file of another dialect (by its provenance record) has none."""
    try:
        with open(fn, "rb") as f:
            data = f.read()
        head = data.split(b"\n", 1)[0]
        if head.startswith(b'{"provenance":') and f'"dialect":"{dialect}"'.encode() not in head:
            try:  # the canonical set holds every dialect: skip the others before parsing
                other = parse_lines(head + b"\n")[0]["provenance"].get("dialect")
            except (ValueError, AttributeError, TypeError):
                other = dialect
            if other != dialect:
                return []
        lines = parse_lines(data)
    except OSError as e:
        raise VectorFileError(f"{fn}: cannot read: {e.strerror or e}") from None
    except ValueError as e:  # names the broken or truncated line
        raise VectorFileError(f"{fn}: {e}") from None
    if not lines:
        raise VectorFileError(f"{fn}: empty file")
    prov, first = None, 1
    if isinstance(lines[0], dict) and "provenance" in lines[0]:
        probs = check_provenance(lines[0])
        if probs:
            raise VectorFileError(f"{fn}: line 1: {probs[0]}")
        prov, first = lines[0]["provenance"], 2
        # every case of a golden file has the provenance's loss and dtype (checked below
        # when the file is used): a file the filters leave out is not read further
        if (losses and prov["loss"] not in losses) or (dtypes and prov["dtype"] not in dtypes):
            return []
        if len(lines) - 1 != prov["cases"]:
            raise VectorFileError(f"{fn}: {len(lines) - 1} cases, the provenance record says "
                                  f"{prov['cases']} (truncated file?)")
    out = []
    for n, rec in enumerate(lines[first - 1:], start=first):
        problem = _case_problem(rec, prov, dialect)
        if problem:
            raise VectorFileError(f"{fn}: line {n}: {problem}")
        if (losses and rec["loss"] not in losses) or (dtypes and rec["dtype"] not in dtypes):
            continue
        out.append((n, rec))
    return out


def load_vector_cases(path: str, losses: Optional[Sequence[str]], dtypes: Optional[Sequence[str]],
                      dialect: str = "keras") -> List[Dict[str, Any]]:
    """Every selected case of `dialect` in the golden-vector files under `path` (a file or
    a folder; golden files of other dialects are left out).

    Each file is checked before any case is used: JSON lines, complete (the last line
    ends, the provenance record's case count is met), every record a case of the format
    (:func:`lossref.vectors.fileformat.check_case`) of a known Keras loss, no case id twice.

    Raises
    ------
    VectorFileError
        A file breaks one of these; the message names the file and the line.
    """
    cases: List[Dict[str, Any]] = []
    seen: Dict[str, str] = {}
    for fn in _vector_files(str(path)):
        for n, rec in _read_vector_file(fn, losses, dtypes, dialect):
            where = f"{fn}: line {n}"
            if rec["id"] in seen:  # results are matched to cases by id
                raise VectorFileError(f"{where}: case id {rec['id']!r} again (first at {seen[rec['id']]})")
            seen[rec["id"]] = where
            cases.append(rec)
    return cases


def _expect_one(spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The case of `spec` with the oracle's expectations (run in a pool worker), or
    ``{"dropped": why}`` where the dialect refuses it or the oracle cannot decide it."""
    from ..vectors.targets import Rejected

    try:
        return _expect(spec)
    except Rejected as e:
        return {"dropped": str(e)}


def _expect(spec: Dict[str, Any]) -> Dict[str, Any]:
    from .cases import make_case
    from .compare import decode_hex

    ins = spec["inputs"]
    arr = lambda a: None if a is None else decode_hex(a["hex"]).reshape(a["shape"])  # noqa: E731
    if spec.get("dialect", "keras") != "keras":
        from ..vectors.targets import get_target
        i, t = (get_target(spec["dialect"], spec["loss"]).entry.names + (None,))[:2]
        return make_case(spec["id"], spec["loss"], spec["dtype"], arr(ins.get(t)), arr(ins[i]),
                         params=spec["params"], reductions=spec["reductions"], tags=spec.get("tags", []),
                         dialect=spec["dialect"],
                         arrays={k: arr(v) for k, v in ins.items() if k not in (i, t)},
                         grad=bool(spec.get("grad")))
    return make_case(spec["id"], spec["loss"], spec["dtype"], arr(ins["y_true"]), arr(ins["y_pred"]),
                     params=spec["params"], sample_weight=arr(ins.get("sample_weight")),
                     reductions=spec["reductions"], tags=spec.get("tags", []), grad=bool(spec.get("grad")))


def with_expectations(specs: List[Dict[str, Any]], cache_dir: Optional[str], jobs: int,
                      scheduler: Optional[str] = None) -> List[Dict[str, Any]]:
    """Cases for input specs, the oracle's expectations computed in parallel and cached.

    Parameters
    ----------
    specs : list of dict
        Fresh case specs (:func:`lossref.vectors.fresh_specs`).
    cache_dir : str or None
        The oracle cache (:class:`lossref.diff.cache.OracleCache`); None: no cache.
    jobs : int
        Processes for the oracle (1: in this process).
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler whose workers compute the cases not in
        the cache instead (`jobs` unused); the cases are the same dicts.

    Returns
    -------
    list of dict
        One case per spec, in order (a spec the oracle cannot decide is left out, with a
        warning on stderr); a cached and a computed case are identical dicts.

    Raises
    ------
    lossref._procs.SchedulerError
        `scheduler` names no usable dask cluster.
    """
    cache = OracleCache(cache_dir) if cache_dir else None
    out: Dict[int, Dict[str, Any]] = {}
    for i, s in enumerate(specs):
        hit = cache.get(s) if cache else None
        if hit is not None:
            out[i] = hit
    todo = [i for i in range(len(specs)) if i not in out]
    serial = jobs <= 1 or len(todo) <= 1  # a local pool costs more than it saves here
    with contextlib.ExitStack() as stack:
        # the cluster is asked for only when there is work for it (a warm cache needs none)
        mapper = stack.enter_context(work_pool(1 if serial else jobs,
                                               scheduler if todo else None))
        bar = stack.enter_context(_progress("oracle", len(todo)) if todo else _NoBar())
        for i, case in zip(todo, mapper(_expect_one, [specs[i] for i in todo])):
            bar.update(1)
            if "dropped" in case:  # the same inputs give the same decision: runs stay alike
                print(f"lossref diff: warning: fresh case {specs[i]['id']} left out: {case['dropped']}",
                      file=sys.stderr)
                continue
            payload = payload_of(case)
            if cache:
                cache.put(specs[i], payload)
            out[i] = canonical_case(payload, specs[i])
    return [out[i] for i in range(len(specs)) if i in out]


#: Options that change how or where a run is done, not what it reports: left out of the
#: report's ``command``, so the same run gives the same bytes in any folder (DESIGN.md,
#: "Integrity").
_EXECUTION_ONLY = {"jobs", "scheduler", "cache_dir", "no_cache", "out", "issues"}


def report_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command line recorded in the report.

    `args` rendered as canonical options in the parser's order (abbreviations and
    ``--opt=value`` forms written out), leaving out the execution-only ones (``--jobs``,
    ``--scheduler``, ``--cache-dir``, ``--no-cache``, ``--out``, ``--issues``) and those at
    their default.
    """
    return command_line(["lossref", "diff", args.framework], args, parser, _EXECUTION_ONLY, long_flags=True)


def command_line(words: list, args: argparse.Namespace, parser: argparse.ArgumentParser,
                 skip: set, long_flags: bool) -> str:
    """`words` and then `args` as canonical options in the parser's order, leaving out the
    options in `skip` and those at their default; each option by its last spelling (the
    long one) if `long_flags`, else by its first."""
    words = list(words)
    for action in parser._actions:  # noqa: SLF001 (argparse has no public list of options)
        dest = action.dest
        if not action.option_strings or dest in skip or dest == "help":
            continue
        value = getattr(args, dest, None)
        flag = action.option_strings[-1 if long_flags else 0]
        if value is None or value is False or value == action.default:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for v in value:
                words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _out_problem(out: str) -> Optional[str]:
    """Why the report folder `out` cannot be written (None: it can), without creating it."""
    p = os.path.abspath(out)
    if os.path.exists(p):
        if not os.path.isdir(p):
            return "exists and is not a folder"
        return None if os.access(p, os.W_OK | os.X_OK) else "the folder is not writable"
    parent = os.path.dirname(p)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent} is not a folder"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot be created: {parent} is not writable"


def _cmd_diff(args: argparse.Namespace) -> int:
    from . import report, runner

    def usage(msg: str) -> int:
        print(f"lossref diff: error: {msg}", file=sys.stderr)
        return 2

    # every usage error is found before any work (oracle, backends) starts
    fw = args.framework
    if fw not in ("keras", "torch", "optax", "tf"):
        return usage(f"framework {fw!r} is not supported (keras, torch, optax, tf)")
    known = dialect_targets(fw)
    for d in args.dtype or []:
        try:
            formats.get_format(d)
        except TypeError as e:
            return usage(f"--dtype: {e}")
    if args.loss:
        unknown = sorted(set(args.loss) - set(known))
        if unknown:
            return usage(f"--loss: unknown loss {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(sorted(known))}")
    if args.cases:  # the fresh cases' plan: a format a function lacks is refused now, not later
        from ..vectors.generate import plan
        try:
            plan(fw, args.loss, args.dtype)
        except (KeyError, TypeError) as e:
            return usage(e.args[0])
    if args.cases < 0:
        return usage(f"--cases must be >= 0; got {args.cases}")
    if args.jobs < 0:
        return usage(f"--jobs must be >= 0 (0: every core); got {args.jobs}")
    if args.scheduler is not None:
        try:
            check_scheduler_address(args.scheduler)
        except SchedulerError as e:
            return usage(str(e))
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        return usage(f"--timeout must be a positive number of seconds; got {args.timeout:g}")
    if args.vectors is not None and not os.path.exists(args.vectors):
        return usage(f"--vectors: {args.vectors}: no such file or folder")
    for opt, folder in (("--out", args.out), ("--issues", args.issues)):
        problem = _out_problem(folder) if folder is not None else None
        if problem:
            return usage(f"{opt} {folder}: {problem}")
    if fw in ("torch", "optax", "tf"):
        if any(b != "cpu" for b in args.backend or []):
            return usage(f"--backend: {fw} runs on cpu only")
        import importlib.util
        needs, extra = {"torch": (("torch",), "torch"), "optax": (("jax", "optax"), "jax"),
                        "tf": (("tensorflow",), "tf")}[fw]
        if any(importlib.util.find_spec(m) is None for m in needs):
            return usage(f"{fw} is not installed (pip install 'lossref[{extra}]')")
        backends = ["cpu"]
    else:
        if any(b == "cpu" for b in args.backend or []):
            return usage("--backend cpu is for torch and optax; Keras backends: numpy, jax, torch, tensorflow")
        backends = args.backend or runner.installed_backends()
        if args.grad:  # numpy has no autodiff: refused when asked for, left out by default
            if "numpy" in (args.backend or []):
                return usage("--grad needs a backend with autodiff (jax, torch, tensorflow); "
                             "Keras's numpy backend has none")
            backends = [b for b in backends if b != "numpy"]
    if not backends:
        return usage("no Keras backend is installed (pip install 'lossref[keras]')"
                     + (" with autodiff (jax, torch or tensorflow)" if args.grad else ""))
    vec = args.vectors
    if vec is None:
        from ..vectors import canonical_dir  # the committed set, when this is a source checkout
        vec = canonical_dir()
    try:
        cases = load_vector_cases(str(vec), args.loss, args.dtype, fw) if os.path.exists(vec) else []
    except VectorFileError as e:
        return usage(str(e))
    if not args.grad:  # a value-only run compares values only
        cases = [dict(c, expected={k: v for k, v in c["expected"].items() if k != "grad"}) for c in cases]
    elif any("grad" not in c["expected"] for c in cases):
        return usage(f"--grad: the vectors in {vec} have no gradients (format version 1); "
                     "regenerate them with lossref golden")
    if args.cases:
        from ..vectors import fresh_specs
        specs = fresh_specs(args.cases, args.seed, losses=args.loss, dtypes=args.dtype, dialect=fw,
                            grad=args.grad)
        cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
        try:
            cases += with_expectations(specs, cache, args.jobs or os.cpu_count() or 1, args.scheduler)
        except SchedulerError as e:
            return usage(str(e))
    if not cases:
        return usage("no cases (no vectors found and --cases 0)")
    reports = runner.run(cases, backends, timeout=args.timeout, framework=fw,
                         progress_factory=lambda b, n: _progress(f"{fw}[{b}]", n))
    plots = {}
    if not args.no_plots:
        plots = _sweep_plots(reports, args.out, backends, args.timeout, fw)
    doc = report.combine(reports, report_command(args, args.diff_parser), fw)
    paths = report.write_all(doc, args.out, plots)
    issues = report.write_issues(doc, args.issues) if args.issues is not None else None
    n_find = len(doc["findings"])
    for b in doc["backends"]:
        status = f"could not run: {b['error']}" if b.get("error") else f"{fw} {b['framework_version']}"
        print(f"backend {b['backend']}: {status}")
    print(f"{len(cases)} cases, {len(doc['rows'])} rows, {n_find} findings, {len(doc['causes'])} causes")
    print(f"report: {paths['md']} (also {os.path.basename(paths['json'])}, {os.path.basename(paths['html'])})")
    if issues is not None:
        print(f"issues: {len(issues)} file(s) in {args.issues}")
    return runner.exit_code(reports)


def _sweep_plots(reports, out_dir: str, backends, timeout: float, framework: str = "keras") -> Dict[str, str]:
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
        case = make_case(f"sweep/{loss}/{dtype}", loss, dtype, t, p,
                         reductions=("none",) if framework != "keras" else (), dialect=framework)
        by_backend.setdefault(b, []).append((case, x, label))
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    for b, items in by_backend.items():
        res = runner.run_backend(b, [c for c, _, _ in items], timeout=timeout, framework=framework)["results"]
        for case, x, label in items:
            ulps = sweeps.sweep_ulps(case, res.get(case["id"], {"error": "missing"}))
            rel = os.path.join("plots", f"{b}-{case['loss']}-{case['dtype']}.png")
            title = f"{framework}[{b}] {case['loss']} {case['dtype']}"
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
    p.add_argument("framework", choices=["keras", "torch", "optax", "tf"],
                   help="the framework: keras (its losses on each backend), torch "
                        "(torch.nn.functional on the CPU), optax (optax.losses on JAX's CPU, x64 on) or tf "
                        "(tf.nn's loss primitives on the CPU)")
    p.add_argument("--backend", action="append", choices=["numpy", "jax", "torch", "tensorflow", "cpu"],
                   help="Keras backend, repeatable (default: every installed one); torch, optax, tf: cpu")
    p.add_argument("--vectors", default=None, help="golden-vector file or folder (default: the canonical set)")
    p.add_argument("--cases", type=int, default=0, metavar="N", help="fresh cases per loss and dtype (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh cases")
    p.add_argument("--loss", action="append", help="only this loss (repeatable)")
    p.add_argument("--dtype", action="append", help="only this dtype (repeatable)")
    p.add_argument("--jobs", type=int, default=0, help="processes for the oracle (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="compute the fresh cases' exact values on the workers of the "
                        "dask.distributed scheduler at ADDRESS (e.g. tcp://HOST:8786) instead of "
                        "local processes; the same report (needs lossref[dask])")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it is an error")
    p.add_argument("--cache-dir", default=None,
                   help="oracle cache (default: $XDG_CACHE_HOME/lossref/oracle or ~/.cache/lossref/oracle)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the oracle cache")
    p.add_argument("--no-plots", action="store_true", help="skip the sweep plots")
    p.add_argument("--grad", action="store_true",
                   help="also compare the framework's autodiff gradients with the exact ones")
    p.add_argument("--out", required=True, help="folder for the reports")
    p.add_argument("--issues", default=None, metavar="DIR",
                   help="also write one Markdown issue per cause, DIR/<cause id>.md (environment, "
                        "smallest reproducer, expected and actual values, what it affects); DIR is "
                        "created if missing")
    p.set_defaults(func=_cmd_diff, diff_parser=p)
