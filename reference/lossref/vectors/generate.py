"""Deterministic generation of golden-vector files.

A file is one (dialect, loss, dtype). Case ``i`` of it is drawn from the stream keyed by
``(seed, dialect, loss, dtype, i, attempt)`` (:class:`~lossref.vectors._rng.Stream`), so
the seed and the lossref version decide every byte, and a case does not depend on the
cases before it. The case's *category* cycles through :data:`SCHEDULE`; its parameters,
shapes, values and sample weight are drawn from the loss's domain
(:mod:`~lossref.vectors.domains`); the dialect evaluates it
(:func:`~lossref.vectors.targets.expected`). A draw the dialect refuses (a shape or
domain that loss does not accept) is drawn again with the next attempt number; the
provenance record counts those redraws.

:func:`golden` writes a set and its manifest, and never puts a hash into the manifest
for bytes it has not just written itself or found equal to the old manifest's hash; see
its docstring for what it does with each file already in the folder.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import mpmath
import numpy as np

from .. import SPEC_VERSION, __version__, formats
from .._procs import process_pool, work_pool
from . import domains
from ._rng import Stream
from .fileformat import (FORMAT_NAME, FORMAT_VERSION, ID_STEP, case_id, dumps, encode_array,
                         parse_lines)
from .manifest import (MANIFEST, VectorSetError, check_readable, read_manifest,
                       sha256_bytes, sha256_file, vector_files, write_atomic,
                       write_manifest)
from .targets import KerasTarget, Rejected, check_inputs, expected_grad, expected_of, get_target, grad_outputs, \
    grad_wrt, json_params, \
    per_sample_shape, targets

__all__ = ["SCHEDULE", "DEFAULT_SEED", "DEFAULT_CASES", "DTYPES", "draw_case", "draw_inputs_of", "make_case",
           "fresh_specs", "provenance", "render_file", "file_path", "golden", "GoldenReport", "plan"]

#: Category of case i is ``SCHEDULE[i % 8]``: 3/8 random, 3/8 adversarial, 1/8 special
#: values, 1/8 edge shapes.
SCHEDULE = ("random", "adversarial", "random", "special", "adversarial", "edge-shape", "random",
            "adversarial")
DEFAULT_SEED = 0
DEFAULT_CASES = 64
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: Draws per case before generation gives up on a loss (each refusal is a redraw).
MAX_DRAWS = 64


def _draw_params(rng: Stream, target, index: int) -> Dict[str, Any]:
    """Case 0 has every default; later cases keep each default with probability 1/2 and
    otherwise take one of the parameter's other values."""
    out = {}
    for name, default in target.params:
        values = target.values(name, default)
        if index == 0 or len(values) == 1 or rng.chance(0.5):
            out[name] = default
        else:
            out[name] = values[rng.integer(1, len(values))]
    return json_params(out)


def _draw_kind(target, dtype: str, key: str, index: int):
    """What every dialect's draw starts with: ``(fmt, params, draw, y_true, y_pred)`` of the
    target's input kind, IEEE specials written into the special cases (only values in
    [0, 1], into the predictions, for a torch entry whose ``specials`` is ``"unit"``)."""
    fmt = formats.get_format(dtype)
    category = SCHEDULE[index % len(SCHEDULE)]
    rng = Stream(key)
    params = _draw_params(rng, target, index)
    # special cases start from typical values, then get IEEE specials written in
    d = domains.Draw(rng, fmt, "random" if category == "special" else category, params,
                     tags=[category])
    t, p = domains.draw_inputs(d, target.kind)
    if category == "special":
        entry = getattr(target, "entry", None)
        if entry is not None and entry.specials == "unit":
            sv = domains.special_values(fmt)
            t, p = domains.inject_specials(d, target.kind, t, p, values=sv[(sv >= 0) & (sv <= 1)],
                                           pred_only=True)
        else:
            t, p = domains.inject_specials(d, target.kind, t, p)
    return fmt, params, d, t, p


def draw_case(target: KerasTarget, dtype: str, key: str, index: int) -> Tuple[
        Dict[str, Any], np.ndarray, np.ndarray, Optional[np.ndarray], List[str]]:
    """Draw the inputs of case `index` from the stream `key`: ``(params, y_true, y_pred,
    sample_weight, tags)``, values exact in `dtype`; ``Rejected`` if the dialect refuses
    them (checked with the cheap float64 reference)."""
    fmt, params, d, t, p = _draw_kind(target, dtype, key, index)
    shape = per_sample_shape(target, fmt, params, t, p)
    sw = domains.draw_sample_weight(d, shape)
    return params, t, p, sw, d.tags


def draw_inputs_of(target, dtype: str, key: str, index: int) -> Tuple[
        Dict[str, Any], Dict[str, Optional[np.ndarray]], List[str]]:
    """Draw case `index` of any dialect: ``(params, inputs, tags)``, `inputs` by the
    dialect's names (Keras: y_true, y_pred, sample_weight; torch: input, target and the
    function's extra arrays, each an array or None); ``Rejected`` if the dialect refuses
    them.

    Torch cases are drawn like Keras ones (the kind's ``y_true`` is torch's target, its
    ``y_pred`` the input), then the class axis is moved to the entry's ``class_dim`` and
    each extra array is drawn by its shape rule (:func:`domains.draw_array`; rule ``kind``:
    the array the kind drew with them, e.g. ctc_loss's lengths); the inputs are keyed by
    the entry's ``names`` (``input, target``, or ``log_probs, targets``)."""
    if target.dialect == "keras":
        params, t, p, sw, tags = draw_case(target, dtype, key, index)
        return params, {"y_true": t, "y_pred": p, "sample_weight": sw}, tags
    fmt, params, d, t, p = _draw_kind(target, dtype, key, index)
    cd = target.entry.class_dim
    if cd is not None and p.ndim > cd + 1:
        if t.shape == p.shape:
            t = np.ascontiguousarray(np.moveaxis(t, -1, cd))
        p = np.ascontiguousarray(np.moveaxis(p, -1, cd))
    names = target.entry.names  # the drawn input, then the drawn target (if the function takes one)
    inputs: Dict[str, Optional[np.ndarray]] = dict(zip(names, (p, t)))
    for name, rule in target.entry.arrays:
        inputs[name] = domains.draw_array(d, name, rule, p.shape)
    check_inputs(target, fmt, params, inputs)
    return params, inputs, d.tags


def _encode_inputs(target, inputs: Dict[str, Optional[np.ndarray]]) -> Dict[str, Any]:
    return {k: encode_array(inputs.get(k)) for k in target.input_names}


def _key(prefix: str, seed: int, dialect: str, loss: str, dtype: str, index: int, attempt: int) -> str:
    return f"{prefix}/{seed}/{dialect}/{loss}/{dtype}/{index}/{attempt}"


def make_case(target, dtype: str, seed: int, index: int,
              dialect: str = "keras") -> Tuple[Dict[str, Any], int]:
    """Case `index` of a file, evaluated: ``(record, redraws)``.

    Raises
    ------
    RuntimeError
        If the dialect refused :data:`MAX_DRAWS` draws in a row (the loss's domain in
        :mod:`~lossref.vectors.domains` needs an entry).
    """
    fmt = formats.get_format(dtype)
    cid = case_id(dialect, target.loss, fmt.name, index)
    last = None
    for attempt in range(MAX_DRAWS):
        try:
            params, inputs, tags = draw_inputs_of(
                target, fmt.name, _key("lossref-golden", seed, dialect, target.loss, fmt.name, index,
                                       attempt), index)
            exp = expected_of(target, fmt, params, inputs)
            if not _values_only():
                exp["grad"] = expected_grad(target, fmt, params, inputs)
        except Rejected as e:
            last = e
            continue
        rec = {"id": cid, "dialect": dialect, "loss": target.loss, "dtype": fmt.name,
               "params": params, "tags": tags, "inputs": _encode_inputs(target, inputs),
               "expected": exp}
        return rec, attempt
    raise RuntimeError(f"{cid}: the dialect refused {MAX_DRAWS} draws in a row (last: {last}); "
                       f"give {target.loss!r} an input kind in lossref/vectors/domains.py")


def fresh_specs(n: int, seed: int = DEFAULT_SEED, losses: Optional[Sequence[str]] = None,
                dtypes: Optional[Sequence[str]] = None, dialect: str = "keras",
                grad: bool = False) -> List[Dict[str, Any]]:
    """`n` fresh cases per loss and dtype, inputs only (no expectations, so no oracle).

    Drawn by the golden-vector machinery from another stream family than the canonical
    set, so they differ from it; ids are ``DIALECT-fresh<seed>/loss/dtype/NNNN``. Each spec
    has ``id, dialect, loss, dtype, params, tags, inputs`` (as in a golden file) and
    ``reductions`` (the names to evaluate), and with `grad` ``grad`` (``{"wrt", "outputs"}``:
    the gradients to evaluate too).
    """
    out = []
    for loss, dtype in plan(dialect, losses, dtypes):
        target = get_target(dialect, loss)
        for i in range(n):
            for attempt in range(MAX_DRAWS):
                try:
                    params, inputs, tags = draw_inputs_of(
                        target, dtype, _key("lossref-fresh", seed, dialect, loss, dtype, i, attempt), i)
                    break
                except Rejected:
                    continue
            else:
                raise RuntimeError(f"{loss}/{dtype}: the dialect refused {MAX_DRAWS} draws in a row")
            out.append({"id": f"{dialect}-fresh{seed}/{loss}/{dtype}/{ID_STEP * (i + 1):04d}",
                        "dialect": dialect, "loss": loss, "dtype": dtype, "params": params,
                        "tags": tags, "reductions": list(target.reductions),
                        "inputs": _encode_inputs(target, inputs),
                        **({"grad": {"wrt": grad_wrt(target), "outputs": list(grad_outputs(target))}}
                           if grad else {})})
    return out


def command(dialect: str, loss: str, dtype: str, cases: int, seed: int) -> str:
    """The command that regenerates one file (the output folder aside)."""
    return (f"lossref golden --dialect {dialect} --loss {loss} --dtype {dtype} --cases {cases} "
            f"--seed {seed} --out DIR")


def provenance(target, dtype: str, cases: int, seed: int, redrawn: int,
               dialect: str = "keras") -> Dict[str, Any]:
    """The first line of a file. Only what decides the bytes is in it: no date, host or
    output path."""
    return {"provenance": {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "lossref": __version__, "spec": SPEC_VERSION, "mpmath": mpmath.__version__,
        "seed": seed, "command": command(dialect, target.loss, dtype, cases, seed),
        "dialect": dialect, "loss": target.loss, "dtype": dtype,
        "function": target.function_qualname, "class": target.class_qualname,
        "cases": cases, "id_step": ID_STEP, "reductions": list(target.reductions), "redrawn": redrawn,
        **({} if _values_only() else
           {"grad": {"wrt": grad_wrt(target), "outputs": list(grad_outputs(target))}})}}


def _values_only() -> bool:
    """A test hook (environment variable ``LOSSREF_GOLDEN_VALUES_ONLY=1``, inherited by
    worker processes): files without their gradients, which are not valid vector files
    but let a test regenerate every value of the set quickly and compare it with the
    committed files' values."""
    return os.environ.get("LOSSREF_GOLDEN_VALUES_ONLY") == "1"


def render_file(loss: str, dtype: str, cases: int = DEFAULT_CASES, seed: int = DEFAULT_SEED,
                dialect: str = "keras") -> bytes:
    """The bytes of one file."""
    target = get_target(dialect, loss)
    lines, redrawn = [], 0
    for i in range(cases):
        rec, r = make_case(target, dtype, seed, i, dialect)
        lines.append(dumps(rec))
        redrawn += r
    head = dumps(provenance(target, dtype, cases, seed, redrawn, dialect))
    return ("\n".join([head] + lines) + "\n").encode("ascii")


def file_path(out: Path, dialect: str, loss: str, dtype: str) -> Path:
    """Where a file lives in a set: ``DIR/dialect/loss/dtype.jsonl``."""
    return Path(out) / dialect / loss / f"{dtype}.jsonl"


def _unchanged(path: Path, listed: str, want: Dict[str, Any]) -> bool:
    """Whether `path` holds exactly the bytes its manifest line `listed` vouches for and is
    a whole file made with the settings `want` (then a run may skip it)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if sha256_bytes(data) != listed:
        return False
    try:
        lines = parse_lines(data)
    except ValueError:
        return False
    if not lines or not isinstance(lines[0], dict):
        return False
    have = dict(lines[0].get("provenance") or {})
    have.pop("redrawn", None)
    return have == want and len(lines) == want["cases"] + 1


def _job(args) -> Tuple[str, float, int, bytes]:
    """Render one file: ``(relative path, seconds, redraws, bytes)``. Only the parent
    writes into the set, so a worker stopped by an interrupt leaves nothing there."""
    dialect, loss, dtype, cases, seed, values_only = args
    t0 = time.perf_counter()
    # the test hook travels with the job: a pool's worker keeps the environment it started with
    old = os.environ.pop("LOSSREF_GOLDEN_VALUES_ONLY", None)
    if values_only:
        os.environ["LOSSREF_GOLDEN_VALUES_ONLY"] = "1"
    try:
        data = render_file(loss, dtype, cases, seed, dialect)
    finally:
        os.environ.pop("LOSSREF_GOLDEN_VALUES_ONLY", None)
        if old is not None:
            os.environ["LOSSREF_GOLDEN_VALUES_ONLY"] = old
    redrawn = parse_lines(data.split(b"\n", 1)[0] + b"\n")[0]["provenance"]["redrawn"]
    return f"{dialect}/{loss}/{dtype}.jsonl", time.perf_counter() - t0, redrawn, data


def _job_outcome(args) -> Tuple[bool, Any]:
    """:func:`_job` for a cluster's ordered map: ``(True, result)``, or ``(False, "Type:
    message")`` where the file failed, so one broken loss does not stop the others."""
    try:
        return True, _job(args)
    except Exception as e:  # noqa: BLE001 (reported per file, as a local run does)
        return False, f"{type(e).__name__}: {e}"


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C while a file and the manifest line naming it are written, and raise it
    after: an interrupt never leaves a written file out of the manifest.

    The Python-level handler is swapped (not the thread's signal mask: with a pool's
    threads running, the kernel may deliver the signal to another thread, and Python
    would still raise in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def _probe_writable(out: Path) -> None:
    """Create `out` and a temporary file in it, before any long work, so that a folder or
    manifest that cannot be written is a one-line error and not a failure at the end."""
    probe = out / f".{MANIFEST}.{os.getpid()}.tmp"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as e:
        raise VectorSetError(f"{e.filename or out}: cannot write the vector set there: "
                             f"{e.strerror or e}") from None


@dataclass
class GoldenReport:
    """What a :func:`golden` run did."""

    written: List[Tuple[str, float, int]] = field(default_factory=list)  # (file, seconds, redraws)
    skipped: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (file, error)
    #: files of the set outside this run that its manifest cannot vouch for (each names
    #: the file and what to do); the manifest keeps what it said about them, so verify fails
    problems: List[str] = field(default_factory=list)
    manifest: Optional[Path] = None
    seconds: float = 0.0


def plan(dialect: str = "keras", losses: Optional[Sequence[str]] = None,
         dtypes: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """The (loss, dtype) pairs of a run; ``KeyError``/``TypeError`` for unknown names.
    A torch or optax function is paired only with the formats of its table entry's
    ``dtypes``."""
    known = targets(dialect)  # KeyError for an unknown dialect
    if dialect != "keras" and not losses:
        from .torch_table import missing_entries
        missing = missing_entries(dialect)
        if missing:  # never skip a function of the dialect silently
            raise KeyError(f"lossref's {dialect} dialect has function(s) without an entry in its "
                           f"table (lossref/vectors/{dialect}_table.py): {', '.join(missing)}; add "
                           f"one each (or name the functions to generate with --loss)")
    names = sorted(known) if not losses else list(dict.fromkeys(losses))
    for n in names:
        get_target(dialect, n)
    dts = list(DTYPES) if not dtypes else [formats.get_format(d).name for d in dict.fromkeys(dtypes)]
    if dialect == "keras":
        return [(n, d) for n in names for d in dts]
    # a function gets files only in the formats its framework defines it for (entry's dtypes)
    pairs = [(n, d) for n in names for d in dts if d in known[n].entry.dtypes]
    if losses and dtypes:  # asked for by name: a format the function lacks is an error
        for n in names:
            lacking = [d for d in dts if d not in known[n].entry.dtypes]
            if lacking:
                raise TypeError(f"{n} has no {', '.join(lacking)} vectors: {dialect} defines it for "
                                f"{', '.join(known[n].entry.dtypes)} only")
    return pairs


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a convenience; without tqdm print one line per file
        return None
    return tqdm(total=total, unit="file", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def _outside_plan(out: Path, old: Dict[str, str], on_disk: Sequence[str],
                  planned: AbstractSet[str]) -> List[str]:
    """Problems of the set's files outside this run's plan: each must be listed, present
    and match its line, or the manifest cannot vouch for it."""
    found = []
    for rel in sorted((set(old) | set(on_disk)) - planned):
        parts = rel.split("/")
        again = (f"regenerate it (lossref golden --loss {parts[1]} --dtype {Path(rel).stem} "
                 "--out DIR) or remove it" if len(parts) == 3 else "remove it")
        if rel not in old:
            found.append(f"{rel}: not listed in {MANIFEST} and not made by this run, so "
                         f"not added to it; {again}")
        elif rel not in on_disk:
            found.append(f"{rel}: listed in {MANIFEST} but missing; its line is kept; "
                         f"{again} and its line")
        elif sha256_file(out / rel) != old[rel]:
            found.append(f"{rel}: SHA-256 differs from {MANIFEST} (changed since it was "
                         f"listed); its old line is kept, so verify fails; {again}")
    return found


def golden(out: Path, dialect: str = "keras", losses: Optional[Sequence[str]] = None,
           dtypes: Optional[Sequence[str]] = None, cases: int = DEFAULT_CASES,
           seed: int = DEFAULT_SEED, jobs: Optional[int] = None, progress: bool = True,
           force: bool = False, log: Callable[[str], None] = lambda s: None,
           scheduler: Optional[str] = None) -> GoldenReport:
    """Generate the files of a vector set under `out` and write its manifest.

    The manifest is trusted, the bytes on disk are not. A file of this run's plan is
    skipped only when its bytes match the hash the existing manifest has for it and it
    is complete with the same settings; otherwise (no manifest, no line for it, another
    hash, missing, other settings, or `force`) it is generated again. A file outside the
    plan keeps its old manifest line as it is; when its bytes no longer match that line,
    or it has no line, or it is listed but missing, it is reported in
    :attr:`GoldenReport.problems` and not blessed: the manifest goes on saying what it
    said, so ``lossref verify`` fails until the file is regenerated.

    Each file is written atomically by this process, then its manifest line is written
    (atomically too) before the next: an interrupted run leaves whole files, a manifest
    that lists only files whose bytes it vouches for, and no temporary file, and a re-run
    resumes with the files that run finished.

    Parameters
    ----------
    out : path
        The set's folder (created if missing).
    dialect : str
        ``"keras"``, ``"torch"`` or ``"optax"``.
    losses, dtypes : sequence of str, optional
        Default: every loss of the dialect, every format.
    cases : int
        Cases per file.
    seed : int
        Generator seed (with the lossref version it decides every byte).
    jobs : int, optional
        Worker processes (default: every core); 1 runs in this process.
    force : bool
        Regenerate the plan's files even where they match the manifest.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler: the files are rendered on its
        workers instead of local processes (`jobs` is then unused) and written here,
        byte for byte as a local run writes them (:func:`lossref._procs.work_pool`).

    Raises
    ------
    ValueError
        If `cases` is below 1.
    lossref._procs.SchedulerError
        `scheduler` names no usable dask cluster (checked before any file is rendered
        there; files already written stay listed).
    KeyError, TypeError
        For an unknown dialect, loss or format (:func:`plan`).
    VectorSetError
        Before any file is generated: `out` is a file, the manifest is malformed or
        cannot be written, a vector file cannot be read; later: a file or the manifest
        cannot be written.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if cases < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    pairs = plan(dialect, losses, dtypes)
    mpath = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise VectorSetError(f"{out}: is a file, not a folder (--out names the folder of a "
                             "vector set)")
    if mpath.exists() and not mpath.is_file():
        raise VectorSetError(f"{mpath}: is not a regular file, so the manifest cannot be written")
    try:
        old = read_manifest(out)
    except FileNotFoundError:
        old = {}
    except ValueError as e:  # its lines are the only hashes golden may trust: never guess
        raise VectorSetError(f"{e}; fix or delete {MANIFEST} (files it does not list are then "
                             "generated again)") from None
    on_disk = vector_files(out) if out.is_dir() else []
    check_readable(out, on_disk)
    _probe_writable(out)

    report = GoldenReport()
    todo = []
    for loss, dtype in pairs:
        rel = f"{dialect}/{loss}/{dtype}.jsonl"
        want = provenance(get_target(dialect, loss), dtype, cases, seed, 0, dialect)["provenance"]
        want.pop("redrawn")
        if not force and rel in old and _unchanged(out / rel, old[rel], want):
            report.skipped.append(rel)
        else:
            todo.append((dialect, loss, dtype, cases, seed, _values_only()))
    report.problems = _outside_plan(out, old, on_disk,
                                    {f"{dialect}/{loss}/{dtype}.jsonl" for loss, dtype in pairs})

    # an old line stays until this run replaces it: for a file still to be generated it
    # is what the manifest said before, never a hash of bytes nobody checked
    entries: Dict[str, str] = dict(old)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    with ExitStack() as cluster:
        # connected before the progress bar starts, so a cluster that cannot be used is
        # one line of error and nothing else
        pmap = (cluster.enter_context(work_pool(jobs, scheduler))
                if scheduler is not None and todo else None)
        bar = _progress(len(todo), progress)

        def tick(name: str) -> None:
            if bar is not None:
                bar.set_postfix_str(name, refresh=False)
                bar.update(1)

        def failed(name: str, error: "BaseException | str") -> None:
            why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            report.failed.append((name, why))
            log(f"FAILED {name}: {why}")
            tick(name)

        def written(result: Tuple[str, float, int, bytes]) -> None:
            rel, seconds, redrawn, data = result
            with _sigint_held():
                try:
                    write_atomic(out / rel, data)
                except OSError as e:
                    raise VectorSetError(f"{out / rel}: cannot write: {e.strerror or e}") from None
                entries[rel] = sha256_bytes(data)  # the bytes just written, not re-read
                report.manifest = write_manifest(out, entries)
            report.written.append((rel, seconds, redrawn))
            if bar is None and progress:
                log(f"wrote {rel} ({seconds:.1f} s)")
            tick(rel)

        names = {t: f"{t[0]}/{t[1]}/{t[2]}.jsonl" for t in todo}
        if pmap is not None:
            # the cluster's map gives results in order; each file is written as its turn comes
            for t, (ok, value) in zip(todo, pmap(_job_outcome, todo)):
                if ok:
                    written(value)
                else:
                    failed(names[t], value)
        elif jobs == 1:
            for t in todo:
                try:
                    result = _job(t)
                except Exception as e:  # one broken loss must not stop the others
                    failed(names[t], e)
                    continue
                written(result)
        else:
            with process_pool(jobs) as pool:
                futures = {pool.submit(_job, t): t for t in todo}
                for fut in as_completed(futures):
                    try:
                        result = fut.result()
                    except Exception as e:
                        failed(names[futures[fut]], e)
                        continue
                    written(result)
        if bar is not None:
            bar.close()
    if entries:
        report.manifest = write_manifest(out, entries)
    report.written.sort()
    report.seconds = time.perf_counter() - t0
    return report
