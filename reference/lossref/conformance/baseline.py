"""Baselines of the conformance suite: the file, its checks, and the ratchet rules.

A baseline is JSON, one entry a line, keys sorted, no timestamps and no paths, so the
same state gives the same bytes and a change reads as a one-line diff::

    {
     "backend": "numpy",
     "budget": {},
     "cases": {
      "mean_squared_error-float32-typical": {"ids": ["0010", "0030"], "sha256": "9c0e..."}
     },
     "format": "lossref-conformance-baseline",
     "format_version": 1,
     "framework": "keras",
     "framework_version": "3.15.1",
     "lossref": "0.1.0",
     "spec": "0.1",
     "tests": {
      "mean_squared_error-float32-per_sample-typical": {"cause": null, "failing": [], "max_ulp": 0.5, "status": "pass", "worst": "faithful"},
      "mean_squared_error-float32-sum-typical": {"cause": "precision-bits-lost", "failing": ["0030"], "max_ulp": 40.0, "status": "fail", "worst": "inaccurate"}
     },
     "vector_set": "5be1...",
     "versions": {"keras": "3.15.1", "numpy": "2.2.6"}
    }

``cases`` names, per (loss, format, case class), the cases the baseline covers (the
numbers that end their ids) and a SHA-256 over their exact records; ``vector_set`` is the
SHA-256 of that section, so an edit of it is caught.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Dict, Mapping, Optional

from .. import SPEC_VERSION, __version__
from ..diff import compare, runner
from ..vectors.fileformat import dumps

FORMAT = "lossref-conformance-baseline"
#: bumped when a field is added, removed or changes meaning
FORMAT_VERSION = 1
_KEYS = {"backend", "budget", "cases", "format", "format_version", "framework", "framework_version",
         "lossref", "spec", "tests", "vector_set", "versions"}
_STATE_KEYS = {"cause", "failing", "max_ulp", "status", "worst"}


class BaselineError(ValueError):
    """A baseline that cannot be used here; the message is one line."""


# --- test ids and fingerprints ---------------------------------------------------------------------


def test_id(loss: str, dtype: str, output: str, cls: str) -> str:
    """The id of one conformance test, e.g. ``mean_squared_error-float32-sum-typical``."""
    return f"{loss}-{dtype}-{output}-{cls}"


def group_of(test: str) -> str:
    """The (loss, format, case class) a test belongs to: its id without the output."""
    loss, dtype, _, cls = test.split("-")
    return f"{loss}-{dtype}-{cls}"


def case_digest(case: Mapping[str, Any]) -> str:
    """SHA-256 of a case's canonical record (any change to it changes the digest)."""
    return hashlib.sha256(dumps(case).encode("ascii")).hexdigest()


def number(case_id: str) -> str:
    """The number that ends a case id (``keras/mse/float32/0042`` -> ``0042``)."""
    return case_id.rsplit("/", 1)[1]


def fingerprint(digests: Mapping[str, str]) -> Dict[str, Any]:
    """The ``cases`` entry of one group: its case numbers, and a SHA-256 over the ids and
    record digests (case id -> :func:`case_digest`), in the order of the numbers."""
    ids = sorted(digests, key=lambda i: (len(number(i)), number(i)))
    h = hashlib.sha256("".join(f"{i} {digests[i]}\n" for i in ids).encode("ascii")).hexdigest()
    return {"ids": [number(i) for i in ids], "sha256": h}


def covered_ids(doc: Mapping[str, Any], group: str, dialect: str) -> Optional[set]:
    """The case ids of `group` that the baseline covers (None: the group is not in it)."""
    entry = doc["cases"].get(group)
    if entry is None:
        return None
    loss, dtype, _ = group.split("-")
    return {f"{dialect}/{loss}/{dtype}/{n}" for n in entry["ids"]}


def _vector_set(cases: Mapping[str, Any]) -> str:
    return hashlib.sha256(dumps(cases).encode("ascii")).hexdigest()


# --- states and the ratchet ------------------------------------------------------------------------


def worse(state: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether `state` is worse than the recorded `entry` in any way: a worse status, a
    larger error, or a case failing that did not."""
    return (compare.RANK[state["worst"]] > compare.RANK[entry["worst"]]
            or runner.ulp_key(state["max_ulp"]) > runner.ulp_key(entry["max_ulp"])
            or not set(state["failing"]) <= set(entry["failing"]))


def tightened(entry: Mapping[str, Any], state: Mapping[str, Any]) -> Mapping[str, Any]:
    """The lower of a recorded `entry` and a new `state`: a failure that now passes is a
    pass, a failure with a smaller error records it; nothing is ever loosened."""
    if entry["status"] != state["status"]:
        return state if state["status"] == "pass" else entry
    return entry if worse(state, entry) else state


def improvement(entry: Mapping[str, Any], state: Mapping[str, Any]) -> Optional[str]:
    """How a known failure improved on its baseline entry (None: it did not)."""
    if entry["status"] != "fail":
        return None
    if state["status"] == "pass":
        return f"known failure now passes (was {entry['worst']}, {entry['max_ulp']} ulp)"
    if worse(state, entry) or not worse(entry, state):
        return None
    return (f"still fails, less: {len(state['failing'])} case(s), {state['worst']}, {state['max_ulp']} ulp "
            f"(baseline {len(entry['failing'])} case(s), {entry['worst']}, {entry['max_ulp']} ulp)")


# --- the file --------------------------------------------------------------------------------------


def new_doc(framework: str, backend: str, header: Mapping[str, Any], budgets: Mapping[str, float],
            cases: Mapping[str, Any], tests: Mapping[str, Any]) -> Dict[str, Any]:
    """A baseline document for a run's results."""
    return {"backend": backend, "budget": dict(budgets), "cases": dict(cases), "format": FORMAT,
            "format_version": FORMAT_VERSION, "framework": framework,
            "framework_version": header.get("framework_version"), "lossref": __version__,
            "spec": SPEC_VERSION, "tests": dict(tests), "vector_set": _vector_set(cases),
            "versions": dict(header.get("versions") or {})}


def render(doc: Mapping[str, Any]) -> bytes:
    """The bytes of a baseline: keys sorted, one test or group a line."""
    def one(v: Any) -> str:
        return json.dumps(v, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(", ", ": "))

    lines = ["{"]
    items = sorted(doc.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if k in ("cases", "tests") and v:
            inner = sorted(v.items())
            lines.append(f" {one(k)}: {{")
            lines += [f"  {one(ik)}: {one(iv)}{',' if j < len(inner) - 1 else ''}"
                      for j, (ik, iv) in enumerate(inner)]
            lines.append(" }" + comma)
        else:
            lines.append(f" {one(k)}: {one(v)}{comma}")
    return ("\n".join(lines) + "\n}\n").encode("ascii")


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _structure_problem(doc: Any) -> Optional[str]:
    """What makes `doc` not a baseline of this format (None: nothing)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return "not a lossref conformance baseline"
    if doc.get("format_version") != FORMAT_VERSION:
        return f"baseline format version {doc.get('format_version')!r}; this lossref reads {FORMAT_VERSION}"
    if set(doc) != _KEYS:
        return f"keys: missing {sorted(_KEYS - set(doc))}, unexpected {sorted(set(doc) - _KEYS)}"
    if not all(isinstance(doc[k], dict) for k in ("budget", "cases", "tests", "versions")):
        return "budget, cases, tests and versions must be objects"
    for g, e in doc["cases"].items():
        if not (isinstance(g, str) and g.count("-") == 2 and isinstance(e, dict) and set(e) == {"ids", "sha256"}
                and isinstance(e["ids"], list) and all(isinstance(n, str) and n.isdigit() for n in e["ids"])):
            return f"cases entry {g!r} is malformed"
    for t, s in doc["tests"].items():
        if not (isinstance(t, str) and t.count("-") == 3 and isinstance(s, dict) and set(s) == _STATE_KEYS
                and s["status"] in ("pass", "fail") and s["worst"] in compare.RANK
                and (s["max_ulp"] == "inf" or isinstance(s["max_ulp"], (int, float)))
                and (s["cause"] is None or isinstance(s["cause"], str))
                and isinstance(s["failing"], list) and all(isinstance(n, str) and n.isdigit() for n in s["failing"])):
            return f"tests entry {t!r} is malformed"
        if group_of(t) not in doc["cases"]:
            return f"tests entry {t!r} has no cases entry {group_of(t)!r}"
    if _vector_set(doc["cases"]) != doc["vector_set"]:
        return "the cases section does not match its vector_set hash (edited or corrupted)"
    return None


def read(path: str, framework: str, backend: str, budgets: Mapping[str, float]) -> Dict[str, Any]:
    """The baseline at `path`, checked for this lossref, framework, backend and budgets.

    Raises
    ------
    BaselineError
        The file cannot be read, is not a complete baseline, or was made for another
        lossref version, framework, backend or budget; the message is one line.
    """
    where = f"--lossref-baseline {path}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BaselineError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BaselineError(f"{where}: not a lossref baseline (not UTF-8 text)") from None
    except ValueError as e:
        raise BaselineError(f"{where}: not a lossref baseline (invalid JSON: {str(e).splitlines()[0]}; "
                            "truncated?)") from None
    problem = _structure_problem(doc)
    if problem:
        raise BaselineError(f"{where}: {problem}")
    if doc["lossref"] != __version__:
        raise BaselineError(f"{where}: made with lossref {doc['lossref']}, this is lossref {__version__}: "
                            "record it again with --lossref-record")
    if (doc["framework"], doc["backend"]) != (framework, backend):
        raise BaselineError(f"{where}: made for {doc['framework']}[{doc['backend']}], this run checks "
                            f"{framework}[{backend}]")
    if doc["budget"] != dict(budgets):
        raise BaselineError(f"{where}: made with the budgets {json.dumps(doc['budget'], sort_keys=True)}, "
                            f"this run has {json.dumps(dict(budgets), sort_keys=True)}: use the same "
                            "budgets or record it again")
    return doc


def check_vectors(doc: Mapping[str, Any], digests: Mapping[str, Mapping[str, str]],
                  in_scope: Callable[[str], bool], dialect: str, where: str) -> None:
    """Refuse a vector set that changed or removed a case the baseline covers.

    Parameters
    ----------
    doc : dict
        The baseline (:func:`read`).
    digests : mapping
        Group -> (case id -> :func:`case_digest`) of this run's cases.
    in_scope : callable
        Whether this run selects a group at all (its loss, format and case class); a
        group it leaves out is not checked.
    dialect, where : str
        The cases' dialect; the option that named the baseline, for messages.

    Raises
    ------
    BaselineError
        A covered case is missing or its record differs.
    """
    for group, entry in sorted(doc["cases"].items()):
        if not in_scope(group):
            continue
        have = digests.get(group, {})
        ids = covered_ids(doc, group, dialect)
        missing = sorted(ids - set(have))
        what = group.replace("-", " ")
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise BaselineError(f"{where}: the vector set lost case {missing[0]}{more} ({what}) that the "
                                "baseline covers: record the baseline again for this vector set")
        if fingerprint({i: have[i] for i in ids})["sha256"] != entry["sha256"]:
            raise BaselineError(f"{where}: cases of {what} differ from those the baseline was recorded "
                                "on: record the baseline again for this vector set")
