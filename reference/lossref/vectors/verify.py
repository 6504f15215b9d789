"""``lossref verify``: check a golden-vector set.

For a set's folder it checks, and reports every problem with the file, line and case:

1. the manifest, which must be complete (:func:`~.manifest.listing_problems`): it lists
   at least one file, every listed file exists, every ``*.jsonl`` file is listed, and
   every SHA-256 matches. A missing, empty or malformed manifest is a problem, never a
   reason to skip the hash checks;
2. every line of every file, on every run (cheap checks, no sampling): canonical bytes,
   the format (:func:`~.fileformat.check_case`: fields, shapes against value counts,
   values exact in their format), each expected ``hex`` the correct rounding of its
   ``decimal`` (:func:`~.fileformat.check_values`), case ids increasing (so unique), the
   case count of the provenance record, the final newline (a truncated file);
3. a sample of cases (every case with ``all_cases``; every case of a file whose hash
   does not match, and every case whose hex and decimal disagree, to name what is
   wrong): the JSON Schema ``schema.json`` when the ``jsonschema`` package is installed
   (a second opinion on the built-in checks, which cover it), then the expectations
   re-derived with the oracle and compared digit for digit.

A folder that is not there, is a file, or holds a vector file that cannot be read raises
:class:`~.manifest.VectorSetError` before any file is checked.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import SPEC_VERSION, __version__, formats
from .._procs import process_pool
from .fileformat import (ID_RE, canonical_dir, check_case, check_provenance, check_values,
                         decode_array, dumps)
from .manifest import (MANIFEST, VectorSetError, check_readable, hash_problem,
                       listing_problems, read_manifest, sha256_bytes, vector_files)
from .targets import Rejected, expected_of, get_target

__all__ = ["verify", "VerifyReport", "check_file", "rederive", "first_difference"]


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: problems (each names file, line and case) and counts."""

    root: Path
    files: int = 0
    cases: int = 0
    rederived: int = 0
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@lru_cache(maxsize=None)
def _schema_validator(path: str):
    try:
        import jsonschema
    except ImportError:  # the built-in checks cover the schema; jsonschema is a second opinion
        return None
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _schema_error(validator, obj) -> Optional[str]:
    err = next(iter(validator.iter_errors(obj)), None)
    if err is None:
        return None
    loc = ".".join(str(x) for x in err.absolute_path) or "(top)"
    return f"schema.json: {loc}: {err.message[:200]}"


def _schema_path(root: Path) -> Optional[str]:
    for p in (root / "schema.json", canonical_dir() / "schema.json"):
        if p.is_file():
            return str(p)
    return None


def first_difference(want: Any, have: Any, where: str = "expected") -> Optional[str]:
    """Path and values of the first place where two decoded JSON values differ, or None."""
    if isinstance(want, dict) and isinstance(have, dict):
        for k in sorted(set(want) | set(have)):
            if k not in have:
                return f"{where}.{k} is missing in the file"
            if k not in want:
                return f"{where}.{k} is in the file but not in the oracle's result"
            d = first_difference(want[k], have[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list) and isinstance(have, list):
        if len(want) != len(have):
            return f"{where} has {len(have)} entries in the file, the oracle gives {len(want)}"
        for i, (a, b) in enumerate(zip(want, have)):
            d = first_difference(a, b, f"{where}[{i}]")
            if d:
                return d
        return None
    if want != have:
        return f"{where} is {have!r} in the file but the oracle gives {want!r}"
    return None


def rederive(rec: Dict[str, Any]) -> Dict[str, Any]:
    """The ``expected`` object of a case record, computed afresh by the oracle."""
    fmt = formats.get_format(rec["dtype"])
    target = get_target(rec["dialect"], rec["loss"])
    inp = rec["inputs"]
    arrays = {k: None if inp.get(k) is None else np.asarray(decode_array(inp[k], fmt), dtype=np.float64)
              for k in target.input_names}
    return expected_of(target, fmt, rec["params"], arrays, grad="grad" in rec.get("expected", {}))


def check_file(root: str, rel: str, listed: Optional[str], sample: int,
               all_cases: bool) -> Tuple[List[str], List[str], int, int]:
    """Check one file: ``(problems, notes, cases, re-derived)``; see the module docstring.

    `listed` is the file's SHA-256 in the manifest (None: not listed, which the caller
    reports). Raises :class:`~.manifest.VectorSetError` if the file cannot be read.
    """
    path = Path(root) / rel
    problems: List[str] = []
    notes: List[str] = []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VectorSetError(f"{path}: cannot read: {e.strerror or e}") from None
    deep = all_cases
    if listed is not None and sha256_bytes(data) != listed:
        problems.append(hash_problem(rel))
        deep = True
    lines = data.split(b"\n")
    if data and not data.endswith(b"\n"):
        last_id = None
        for line in reversed(lines[:-1]):
            try:
                last_id = json.loads(line).get("id")
                break
            except ValueError:
                continue
        problems.append(f"{rel}: truncated: line {len(lines)} is incomplete (no final newline)"
                        + (f"; the last complete case is {last_id}" if last_id else ""))
    lines = lines[:-1]
    if not lines:
        return problems + [f"{rel}: empty file"], notes, 0, 0
    recs: List[Optional[Dict[str, Any]]] = []
    for n, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            problems.append(f"{rel}: line {n} is not valid JSON ({e})")
            recs.append(None)
            continue
        recs.append(rec)
        try:
            canonical = dumps(rec).encode("ascii") == line
        except ValueError:  # a float params value that JSON cannot hold (nan)
            canonical = False
        if not canonical:
            problems.append(f"{rel}: line {n} is not canonical JSON (keys sorted, no spaces, "
                            "ASCII): equal content must give equal bytes")
    head = recs[0]
    bad = check_provenance(head) if head is not None else ["line 1 is not valid JSON"]
    if bad:
        return problems + [f"{rel}: line 1: {b}" for b in bad], notes, 0, 0
    prov = head["provenance"]
    want_rel = f"{prov['dialect']}/{prov['loss']}/{prov['dtype']}.jsonl"
    if rel != want_rel:
        problems.append(f"{rel}: holds {want_rel} (by its provenance record); it must be at that path")
    if (prov["lossref"], prov["spec"]) != (__version__, SPEC_VERSION):
        notes.append(f"{rel}: made by lossref {prov['lossref']} (spec {prov['spec']}); checked "
                     f"with lossref {__version__} (spec {SPEC_VERSION})")
    spath = _schema_path(Path(root))
    validator = _schema_validator(spath) if spath else None
    if validator is not None:
        err = _schema_error(validator, head)
        if err:
            problems.append(f"{rel}: line 1: {err}")
    good = []
    suspect = set()  # cases whose own values disagree: re-derived whatever the sample
    last_num = 0
    for n, rec in enumerate(recs[1:], start=2):
        if rec is None:
            continue
        cid = rec.get("id") if isinstance(rec, dict) else None
        where = f"{rel}: line {n} (case {cid})"
        bad = check_case(rec, prov)
        if bad:
            problems += [f"{where}: {b}" for b in bad]
            continue
        num = int(ID_RE.match(cid).group(4))
        if num <= last_num:
            problems.append(f"{where}: ids must increase through the file (so be unique); "
                            f"the case before has number {last_num:04d}")
        last_num = num
        bad = check_values(rec, prov)
        if bad:
            problems += [f"{where}: {b}" for b in bad]
            suspect.add(len(good))
        good.append((n, rec))
    ncases = len(recs) - 1
    if ncases != prov["cases"]:
        problems.append(f"{rel}: {ncases} cases, the provenance record says {prov['cases']} "
                        "(truncated or edited file)")
    if deep:
        chosen = good
    else:
        pick = set(random.Random(rel).sample(range(len(good)), min(sample, len(good))))
        chosen = [good[i] for i in sorted(pick | suspect)]
    if chosen and chosen[0][1].get("dtype") == "bfloat16" and not formats.has_ml_dtypes():
        # bfloat16 arrays need ml_dtypes to reach the dialect as bfloat16; the bytes, the
        # hashes and the format were checked above
        notes.append(f"{rel}: expectations not re-derived (bfloat16 needs the ml_dtypes package)")
        chosen = []
    for n, rec in chosen:
        where = f"{rel}: line {n} (case {rec['id']})"
        err = _schema_error(validator, rec) if validator is not None else None
        if err:
            problems.append(f"{where}: {err}")
            continue
        try:
            want = rederive(rec)
        except KeyError as e:
            problems.append(f"{where}: {e.args[0]}")
            continue
        except Rejected as e:
            problems.append(f"{where}: the dialect now refuses this case ({e})")
            continue
        except RuntimeError as e:  # e.g. bfloat16 without ml_dtypes
            problems.append(f"{where}: cannot re-derive: {e}")
            continue
        diff = first_difference(want, rec["expected"])
        if diff:
            problems.append(f"{where}: {diff}")
    return problems, notes, ncases, len(chosen)


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="file", disable=not enabled, leave=False)


def verify(root: Optional[Path] = None, sample: int = 2, all_cases: bool = False,
           jobs: int = 1, progress: bool = False) -> VerifyReport:
    """Check the vector set in `root` (default: the canonical set); see the module docstring.

    Parameters
    ----------
    root : path, optional
        The set's folder (the one holding ``MANIFEST.sha256``).
    sample : int
        Cases per file whose expectations are re-derived with the oracle (>= 0). Every
        case gets the format and hex/decimal checks whatever the sample.
    all_cases : bool
        Re-derive every case.
    jobs : int
        Worker processes (>= 1).

    Raises
    ------
    ValueError
        If `sample` is negative or `jobs` is below 1.
    VectorSetError
        If `root` is not a folder, or a vector file or the manifest cannot be read; raised
        before any file is checked.
    """
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    root = Path(root) if root is not None else canonical_dir()
    if root.exists() and not root.is_dir():
        raise VectorSetError(f"{root}: is a file, not a folder (give the folder of a vector set, "
                             f"the one holding {MANIFEST})")
    if not root.is_dir():
        raise VectorSetError(f"{root}: no such folder (give the folder of a vector set)")
    rep = VerifyReport(root)
    on_disk = vector_files(root)
    check_readable(root, on_disk)
    listed: Dict[str, str] = {}
    try:
        listed = read_manifest(root)
    except (FileNotFoundError, ValueError) as e:
        # no usable manifest: that is the one problem to report, not every file unlisted
        rep.problems.append(str(e).replace(str(root / MANIFEST), MANIFEST))
    else:
        rep.problems += listing_problems(listed, on_disk)
    tasks = [(str(root), rel, listed.get(rel), sample, all_cases) for rel in on_disk]
    rep.files = len(tasks)
    if not tasks:
        rep.problems.append(f"{root}: no *.jsonl files")
    bar = _progress(len(tasks), progress)
    results = []
    if jobs == 1 or len(tasks) <= 1:
        for t in tasks:
            results.append(check_file(*t))
            if bar is not None:
                bar.update(1)
    else:
        with process_pool(min(jobs, len(tasks))) as pool:
            futs = {pool.submit(check_file, *t): i for i, t in enumerate(tasks)}
            by_index = {}
            for f in as_completed(futs):
                by_index[futs[f]] = f.result()
                if bar is not None:
                    bar.update(1)
            results = [by_index[i] for i in range(len(tasks))]
    if bar is not None:
        bar.close()
    for problems, notes, ncases, nre in results:
        rep.problems += problems
        rep.notes += notes
        rep.cases += ncases
        rep.rederived += nre
    return rep
