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
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mpmath
import numpy as np

from .. import SPEC_VERSION, __version__, formats
from . import domains
from ._rng import Stream
from .fileformat import (FORMAT_NAME, FORMAT_VERSION, ID_STEP, case_id, dumps, encode_array,
                         parse_lines)
from .manifest import vector_files, write_atomic, write_manifest
from .targets import REDUCTIONS, KerasTarget, Rejected, expected, get_target, json_params, \
    keras_targets, per_sample_shape

__all__ = ["SCHEDULE", "DEFAULT_SEED", "DEFAULT_CASES", "DTYPES", "draw_case", "make_case",
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


def _draw_params(rng: Stream, target: KerasTarget, index: int) -> Dict[str, Any]:
    """Case 0 has every default; later cases keep each default with probability 1/2 and
    otherwise take one of the parameter's other values."""
    out = {}
    for name, default in target.params:
        values = domains.param_values(target.loss, name, default)
        if index == 0 or len(values) == 1 or rng.chance(0.5):
            out[name] = default
        else:
            out[name] = values[rng.integer(1, len(values))]
    return json_params(out)


def draw_case(target: KerasTarget, dtype: str, key: str, index: int) -> Tuple[
        Dict[str, Any], np.ndarray, np.ndarray, Optional[np.ndarray], List[str]]:
    """Draw the inputs of case `index` from the stream `key`: ``(params, y_true, y_pred,
    sample_weight, tags)``, values exact in `dtype`; ``Rejected`` if the dialect refuses
    them (checked with the cheap float64 reference)."""
    fmt = formats.get_format(dtype)
    category = SCHEDULE[index % len(SCHEDULE)]
    kind = domains.kind_of(target.loss, [k for k, _ in target.params])
    rng = Stream(key)
    params = _draw_params(rng, target, index)
    # special cases start from typical values, then get IEEE specials written in
    d = domains.Draw(rng, fmt, "random" if category == "special" else category, params,
                     tags=[category])
    t, p = domains.draw_inputs(d, kind)
    if category == "special":
        t, p = domains.inject_specials(d, kind, t, p)
    shape = per_sample_shape(target, fmt, params, t, p)
    sw = domains.draw_sample_weight(d, shape)
    return params, t, p, sw, d.tags


def _key(prefix: str, seed: int, dialect: str, loss: str, dtype: str, index: int, attempt: int) -> str:
    return f"{prefix}/{seed}/{dialect}/{loss}/{dtype}/{index}/{attempt}"


def make_case(target: KerasTarget, dtype: str, seed: int, index: int,
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
            params, t, p, sw, tags = draw_case(
                target, fmt.name, _key("lossref-golden", seed, dialect, target.loss, fmt.name, index,
                                       attempt), index)
            exp = expected(target, fmt, params, t, p, sw)
        except Rejected as e:
            last = e
            continue
        rec = {"id": cid, "dialect": dialect, "loss": target.loss, "dtype": fmt.name,
               "params": params, "tags": tags,
               "inputs": {"y_true": encode_array(t), "y_pred": encode_array(p), "sample_weight": encode_array(sw)},
               "expected": exp}
        return rec, attempt
    raise RuntimeError(f"{cid}: the dialect refused {MAX_DRAWS} draws in a row (last: {last}); "
                       f"give {target.loss!r} an input kind in lossref/vectors/domains.py")


def fresh_specs(n: int, seed: int = DEFAULT_SEED, losses: Optional[Sequence[str]] = None,
                dtypes: Optional[Sequence[str]] = None, dialect: str = "keras") -> List[Dict[str, Any]]:
    """`n` fresh cases per loss and dtype, inputs only (no expectations, so no oracle).

    Drawn by the golden-vector machinery from another stream family than the canonical
    set, so they differ from it; ids are ``keras-fresh<seed>/loss/dtype/NNNN``. Each spec
    has ``id, dialect, loss, dtype, params, tags, inputs`` (as in a golden file) and
    ``reductions`` (the names to evaluate).
    """
    out = []
    for loss, dtype in plan(dialect, losses, dtypes):
        target = get_target(dialect, loss)
        for i in range(n):
            for attempt in range(MAX_DRAWS):
                try:
                    params, t, p, sw, tags = draw_case(
                        target, dtype, _key("lossref-fresh", seed, dialect, loss, dtype, i, attempt), i)
                    break
                except Rejected:
                    continue
            else:
                raise RuntimeError(f"{loss}/{dtype}: the dialect refused {MAX_DRAWS} draws in a row")
            out.append({"id": f"{dialect}-fresh{seed}/{loss}/{dtype}/{ID_STEP * (i + 1):04d}",
                        "dialect": dialect, "loss": loss, "dtype": dtype, "params": params,
                        "tags": tags, "reductions": list(REDUCTIONS),
                        "inputs": {"y_true": encode_array(t), "y_pred": encode_array(p),
                                   "sample_weight": encode_array(sw)}})
    return out


def command(dialect: str, loss: str, dtype: str, cases: int, seed: int) -> str:
    """The command that regenerates one file (the output folder aside)."""
    return (f"lossref golden --dialect {dialect} --loss {loss} --dtype {dtype} --cases {cases} "
            f"--seed {seed} --out DIR")


def provenance(target: KerasTarget, dtype: str, cases: int, seed: int, redrawn: int,
               dialect: str = "keras") -> Dict[str, Any]:
    """The first line of a file. Only what decides the bytes is in it: no date, host or
    output path."""
    return {"provenance": {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "lossref": __version__, "spec": SPEC_VERSION, "mpmath": mpmath.__version__,
        "seed": seed, "command": command(dialect, target.loss, dtype, cases, seed),
        "dialect": dialect, "loss": target.loss, "dtype": dtype,
        "function": f"{dialect}.losses.{target.function_name}",
        "class": f"{dialect}.losses.{target.class_name}",
        "cases": cases, "id_step": ID_STEP, "reductions": list(REDUCTIONS), "redrawn": redrawn}}


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


def _complete(path: Path, want: Dict[str, Any]) -> bool:
    """Whether `path` is a whole file made with the same settings (resume skips it)."""
    try:
        lines = parse_lines(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not lines or not isinstance(lines[0], dict):
        return False
    have = dict(lines[0].get("provenance") or {})
    have.pop("redrawn", None)
    return have == want and len(lines) == want["cases"] + 1


def _job(args) -> Tuple[str, float, int]:
    out, dialect, loss, dtype, cases, seed = args
    t0 = time.perf_counter()
    data = render_file(loss, dtype, cases, seed, dialect)
    write_atomic(file_path(out, dialect, loss, dtype), data)
    redrawn = parse_lines(data.split(b"\n", 1)[0] + b"\n")[0]["provenance"]["redrawn"]
    return f"{dialect}/{loss}/{dtype}.jsonl", time.perf_counter() - t0, redrawn


@dataclass
class GoldenReport:
    """What a :func:`golden` run did."""

    written: List[Tuple[str, float, int]] = field(default_factory=list)  # (file, seconds, redraws)
    skipped: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (file, error)
    manifest: Optional[Path] = None
    seconds: float = 0.0


def plan(dialect: str = "keras", losses: Optional[Sequence[str]] = None,
         dtypes: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """The (loss, dtype) pairs of a run; ``KeyError``/``TypeError`` for unknown names."""
    if dialect != "keras":
        raise KeyError(f"unknown dialect {dialect!r}; golden vectors exist for: keras")
    names = sorted(keras_targets()) if not losses else list(dict.fromkeys(losses))
    for n in names:
        get_target(dialect, n)
    dts = list(DTYPES) if not dtypes else [formats.get_format(d).name for d in dict.fromkeys(dtypes)]
    return [(n, d) for n in names for d in dts]


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a convenience; without tqdm print one line per file
        return None
    return tqdm(total=total, unit="file", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def golden(out: Path, dialect: str = "keras", losses: Optional[Sequence[str]] = None,
           dtypes: Optional[Sequence[str]] = None, cases: int = DEFAULT_CASES,
           seed: int = DEFAULT_SEED, jobs: Optional[int] = None, progress: bool = True,
           force: bool = False, log: Callable[[str], None] = lambda s: None) -> GoldenReport:
    """Generate the files of a vector set under `out` and write its manifest.

    Files already complete with the same settings are skipped (an interrupted run resumes
    where it stopped; `force` regenerates them). Each file is written atomically. The
    manifest lists every ``*.jsonl`` under `out` afterwards.

    Parameters
    ----------
    out : path
        The set's folder (created if missing).
    dialect : str
        ``"keras"``.
    losses, dtypes : sequence of str, optional
        Default: every loss of the dialect, every format.
    cases : int
        Cases per file.
    seed : int
        Generator seed (with the lossref version it decides every byte).
    jobs : int, optional
        Worker processes (default: every core); 1 runs in this process.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if cases < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    pairs = plan(dialect, losses, dtypes)
    report = GoldenReport()
    todo = []
    for loss, dtype in pairs:
        path = file_path(out, dialect, loss, dtype)
        want = provenance(get_target(dialect, loss), dtype, cases, seed, 0, dialect)["provenance"]
        want.pop("redrawn")
        if not force and path.is_file() and _complete(path, want):
            report.skipped.append(f"{dialect}/{loss}/{dtype}.jsonl")
        else:
            todo.append((str(out), dialect, loss, dtype, cases, seed))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    bar = _progress(len(todo), progress)

    def done(name: str, result=None, error: Optional[BaseException] = None):
        if error is not None:
            report.failed.append((name, f"{type(error).__name__}: {error}"))
            log(f"FAILED {name}: {type(error).__name__}: {error}")
        else:
            report.written.append(result)
            if bar is None and progress:
                log(f"wrote {result[0]} ({result[1]:.1f} s)")
        if bar is not None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

    names = {t: f"{t[1]}/{t[2]}/{t[3]}.jsonl" for t in todo}
    if jobs == 1:
        for t in todo:
            try:
                done(names[t], _job(t))
            except Exception as e:  # one broken loss must not stop the others
                done(names[t], error=e)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_job, t): t for t in todo}
            for fut in as_completed(futures):
                t = futures[fut]
                try:
                    done(names[t], fut.result())
                except Exception as e:
                    done(names[t], error=e)
    if bar is not None:
        bar.close()
    if vector_files(out):
        report.manifest = write_manifest(out)
    report.written.sort()
    report.seconds = time.perf_counter() - t0
    return report
