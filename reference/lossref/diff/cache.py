"""The oracle cache of ``lossref diff``: exact expectations of fresh cases, kept on disk.

One JSON file per entry, named by its key: the SHA-256 of everything that decides the
expectations (cache format, lossref and spec versions, dialect, loss, dtype, parameters,
input bytes, reductions). An entry carries its own key and the SHA-256 of its canonical
payload, and is trusted only when both match and its payload is a well-formed case for
the very spec asked about (DESIGN.md, "Integrity"). A corrupt entry is reported once,
discarded and recomputed; a cache folder that cannot be written is reported once and
the run goes on without it. Writes are atomic, so a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .. import SPEC_VERSION, __version__
from ..vectors.fileformat import case_id, check_case, dumps
from ..vectors.manifest import write_atomic

__all__ = ["CACHE_FORMAT", "OracleCache", "canonical_case", "default_cache_dir", "entry_key", "payload_of",
           "case_problem"]

#: Bumped when the layout of an entry changes; part of every key.
CACHE_FORMAT = "lossref-oracle-cache/1"
#: Fields of a case that the key determines (``id`` and ``tags`` come from the spec).
PAYLOAD_KEYS = ("dialect", "loss", "dtype", "params", "inputs", "expected")
_ENTRY_KEYS = {"cache", "key", "sha256", "case"}


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/lossref/oracle``, by default ``~/.cache/lossref/oracle``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lossref", "oracle")


def entry_key(spec: Dict[str, Any]) -> str:
    """Hex SHA-256 of everything that decides a spec's expectations."""
    blob = dumps({"cache": CACHE_FORMAT, "lossref": __version__, "spec": SPEC_VERSION,
                  "dialect": spec["dialect"], "loss": spec["loss"], "dtype": spec["dtype"],
                  "params": spec["params"], "inputs": spec["inputs"],
                  "reductions": list(spec["reductions"]),
                  **({"grad": spec["grad"]} if spec.get("grad") else {})})
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _sha256(payload: Any) -> str:
    return hashlib.sha256(dumps(payload).encode("ascii")).hexdigest()


def canonical_case(payload: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
    """The case record of `spec` with the expectations of `payload`.

    Both the fresh and the cached path build their case here, through canonical JSON, so
    the two are identical dicts (same values, same key order) and so are the reports.
    """
    return json.loads(dumps(dict(payload, id=spec["id"], tags=list(spec.get("tags", [])))))


def _payload_problem(payload: Any, spec: Dict[str, Any]) -> Optional[str]:
    """Why `payload` is not the expectations of `spec` (None: it is well-formed)."""
    if not isinstance(payload, dict) or set(payload) != set(PAYLOAD_KEYS):
        return "wrong structure"
    for k in PAYLOAD_KEYS[:-1]:
        if dumps(payload[k]) != dumps(spec[k]):
            return f"its {k} is not the case's"
    # the golden-vector checks (shapes, canonical hex exact in the dtype, 40-digit
    # decimals, every reduction); a fresh id is outside the golden id pattern, so the
    # probe carries a golden one
    probe = dict(payload, id=case_id(spec["dialect"], spec["loss"], spec["dtype"], 0),
                 tags=list(spec.get("tags", [])))
    problem = case_problem(probe, spec)
    return f"wrong structure ({problem})" if problem else None


def case_problem(rec: Any, prov: Mapping[str, Any]) -> Optional[str]:
    """The first problem :func:`~lossref.vectors.fileformat.check_case` finds in `rec`
    against `prov` (None: none), also for JSON of the wrong types where it expects a name."""
    try:
        probs = check_case(rec, prov)
    except TypeError:  # e.g. a list where the check looks a dtype up: not a case either
        return "malformed case (a value of the wrong JSON type)"
    return probs[0] if probs else None


def payload_of(case: Dict[str, Any]) -> Dict[str, Any]:
    """What an entry stores of a computed case: the fields its key determines."""
    return json.loads(dumps({k: case[k] for k in PAYLOAD_KEYS}))


def _no_constant(name: str):
    raise ValueError(f"{name} is not canonical JSON")


def _read_entry(path: str, spec: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(payload, None) for a sound entry of `spec`, else (None, why it is corrupt)."""
    try:
        with open(path, "rb") as f:
            entry = json.loads(f.read(), parse_constant=_no_constant)
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}"
    except ValueError:  # truncated, not UTF-8, not JSON, or NaN/Infinity that dumps refuses
        return None, "not valid JSON"
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS or entry["cache"] != CACHE_FORMAT:
        return None, "wrong structure"
    if entry["key"] != entry_key(spec):
        return None, "wrong key"
    if not isinstance(entry["case"], dict) or entry["sha256"] != _sha256(entry["case"]):
        return None, "checksum mismatch"
    problem = _payload_problem(entry["case"], spec)
    return (None, problem) if problem else (entry["case"], None)


class OracleCache:
    """Read and write checked entries under `folder`.

    Parameters
    ----------
    folder : str
        The cache folder (created on the first write).
    warn : callable, optional
        Receives each warning line (default: print to stderr).
    """

    def __init__(self, folder: str, warn: Optional[Callable[[str], None]] = None) -> None:
        self.folder = folder
        self.writable = True
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))

    def path(self, spec: Dict[str, Any]) -> str:
        """The file of `spec`'s entry."""
        return os.path.join(self.folder, entry_key(spec) + ".json")

    def get(self, spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The cached case of `spec`, or None (missing, or corrupt: reported and removed)."""
        path = self.path(spec)
        if not os.path.isfile(path):
            return None
        payload, problem = _read_entry(path, spec)
        if problem is None:
            return canonical_case(payload, spec)
        self._warn(f"lossref diff: warning: oracle cache entry {path} is corrupt ({problem}); "
                   "discarded and recomputed")
        try:
            os.remove(path)
        except OSError:  # the recomputed entry overwrites it, if the folder is writable
            pass
        return None

    def put(self, spec: Dict[str, Any], payload: Dict[str, Any]) -> None:
        """Store `payload` (see :func:`payload_of`) as the expectations of `spec`.

        A folder that cannot be written is reported once; the run goes on without caching.
        """
        if not self.writable:
            return
        entry = {"cache": CACHE_FORMAT, "key": entry_key(spec), "sha256": _sha256(payload), "case": payload}
        try:
            write_atomic(Path(self.path(spec)), (dumps(entry) + "\n").encode("ascii"))
        except OSError as e:
            self.writable = False
            self._warn(f"lossref diff: warning: cannot write the oracle cache {self.folder} "
                       f"({e.strerror or e}); going on without it")
