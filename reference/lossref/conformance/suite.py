"""The conformance suite of one pytest session: its cases, its tests, and their verdicts.

A test is one (loss, format, output, case class) of the selected vectors; its verdict comes
from the worst of its cases' records (:func:`lossref.diff.runner.evaluate`), judged by the
spec's budget or the user's, and, with a baseline, by the ratchet rules of
:mod:`lossref.conformance.baseline`.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..diff import compare, runner
from . import baseline as bl
from .plugin import ConformanceError, Settings, settings

BAD = ("inaccurate", "mismatch", "error")
#: failing cases listed in a failure message (the worst one also gets a reproducer)
_LISTED = 10


def case_class(case: Dict[str, Any]) -> str:
    """``special`` for a case tagged special, else ``typical`` or ``adversarial`` as
    :func:`lossref.diff.compare.case_class` says (adversarial and edge-shape cases)."""
    tags = case.get("tags") or ()
    return "special" if "special" in tags else compare.case_class(tags)


def judged(record: Dict[str, Any], budget: Optional[float]) -> Dict[str, Any]:
    """`record` with its status under a user's `budget` in ulps (None: the spec's, as
    recorded). A budget moves a value between within-budget and inaccurate; an exact
    value, another convention (mismatch) and an error stay what they are."""
    if budget is None or record["status"] in ("exact", "mismatch", "error") or record.get("ulp") is None:
        return record
    u = record["ulp"]
    status = "inaccurate" if u > budget else "faithful" if u <= 1 else "within-budget"
    out = dict(record, status=status, budget=budget)
    if status == "inaccurate":  # a rounding-size error unless the spec's verdict said more
        out["kind"] = record.get("kind") or "rounding"
    else:
        out.pop("kind", None)
    return out


def worst_record(records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The worst record: the worst status, then the largest error, then the first case id."""
    return min(records, key=lambda r: (-compare.RANK[r["status"]], -runner.ulp_key(r.get("ulp")),
                                       r["case"]["id"]))


def _cause(record: Dict[str, Any]) -> Dict[str, Any]:
    from ..diff.causes import classify

    return classify(record)


def state_of(records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """What a baseline records of a test: pass or fail, the worst status, the largest
    error in ulps and the cause of the worst failing case."""
    worst = compare.worst_status([r["status"] for r in records])
    ulps = [r["ulp"] for r in records if r.get("ulp") is not None]
    bad = [r for r in records if r["status"] in BAD]
    return {"status": "fail" if bad else "pass", "worst": worst,
            "max_ulp": runner.json_num(max(ulps)) if ulps else 0.0,
            "failing": sorted({bl.number(r["case"]["id"]) for r in bad}, key=lambda n: (len(n), n)),
            "cause": _cause(worst_record(bad))["id"] if bad else None}


def _summary(r: Dict[str, Any]) -> str:
    if r["status"] != "error" and r.get("kind") not in ("shape", "dtype") and "computed" in r:
        u = runner.ulp_key(r.get("ulp"))
        ulp = "inf" if math.isinf(u) else f"{u:.3g}"
        return f"{r['computed']!r} vs exact {r['exact']} ({ulp} ulp, budget {r['budget']:g})"
    return r.get("summary") or r["status"]


def _params(case: Dict[str, Any]) -> str:
    return json.dumps(case.get("params") or {}, sort_keys=True)


class Suite:
    """The tests of one session and, once run, their records and verdicts.

    Parameters
    ----------
    config : pytest.Config
        The session's configuration (options, ``[tool.lossref]``).

    Raises
    ------
    ConformanceError
        A usage error: bad options, unusable vectors, a baseline that does not apply.
    """

    def __init__(self, config) -> None:
        from ..diff.cli import VectorFileError, load_vector_cases

        self.settings: Settings = settings(config)
        s = self.settings
        path = s.vectors
        if path is None:
            from ..vectors import canonical_dir
            path = str(canonical_dir())
        try:
            cases = load_vector_cases(path, s.losses, s.dtypes, s.framework)
        except VectorFileError as e:
            raise ConformanceError(f"--lossref-vectors: {e}") from None
        if s.grad and any("grad" not in c["expected"] for c in cases):
            raise ConformanceError(f"--lossref-grad: the vectors in {path} have no gradients (format "
                                   "version 1); regenerate them with lossref golden")
        self.cases: Dict[str, Dict[str, Any]] = {}
        #: group (loss-format-class) -> case id -> digest of the case's record
        self.digests: Dict[str, Dict[str, str]] = defaultdict(dict)
        #: test id -> case ids
        self.tests: Dict[str, List[str]] = defaultdict(list)
        for c in cases:
            cls = case_class(c)
            if cls not in s.classes:
                continue
            self.digests[f"{c['loss']}-{c['dtype']}-{cls}"][c["id"]] = bl.case_digest(c)
            if not s.grad:  # a value-only run compares values only
                c = dict(c, expected={k: v for k, v in c["expected"].items() if k != "grad"})
            self.cases[c["id"]] = c
            for out in runner.output_names(c):
                self.tests[bl.test_id(c["loss"], c["dtype"], out, cls)].append(c["id"])
        self.digests, self.tests = dict(self.digests), dict(self.tests)
        if not self.tests:
            raise ConformanceError(f"no {', '.join(s.classes)} cases of {s.framework_spec} in {path}"
                                   + (f" for {', '.join(s.losses)}" if s.losses else "")
                                   + (f" in {', '.join(s.dtypes)}" if s.dtypes else ""))
        self.baseline: Optional[Dict[str, Any]] = None
        if s.baseline:
            try:
                self.baseline = bl.read(s.baseline, s.framework, s.backend, s.budgets)
                bl.check_vectors(self.baseline, self.digests, self.in_scope, s.framework,
                                 f"--lossref-baseline {s.baseline}")
            except bl.BaselineError as e:
                raise ConformanceError(str(e)) from None
        self.records: Dict[Tuple[str, str], Dict[str, Any]] = {}
        self.header: Dict[str, Any] = {}
        self.states: Dict[str, Dict[str, Any]] = {}      # test -> state over all its cases
        self.old_states: Dict[str, Dict[str, Any]] = {}  # test -> state over the baseline's cases
        self.outcomes: Dict[str, str] = {}               # test -> pass, xfail or fail
        self.improved: Dict[str, str] = {}
        self.notes: List[str] = []

    def in_scope(self, group: str) -> bool:
        """Whether this run selects a (loss-format-class) group at all."""
        s = self.settings
        loss, dtype, cls = group.split("-")
        return (not s.losses or loss in s.losses) and (not s.dtypes or dtype in s.dtypes) and cls in s.classes

    # --- running -----------------------------------------------------------------------------------

    def run(self, tests: Sequence[str]) -> None:
        """Run the cases of `tests` through the framework (one worker process).

        Raises
        ------
        RuntimeError
            The framework could not start at all.
        """
        s = self.settings
        need = {i for t in tests for i in self.tests[t]}
        cases = [c for i, c in self.cases.items() if i in need]
        out = runner.run_backend(s.backend, cases, timeout=s.timeout, framework=s.framework)
        if "error" in out["header"] and not out["results"]:
            raise RuntimeError(f"{s.framework_spec} could not run: {out['header']['error']}")
        self.header = out["header"]
        for r in runner.evaluate(cases, out["results"]):
            self.records[(r["case"]["id"], r["output"])] = r

    # --- verdicts ----------------------------------------------------------------------------------

    def judge(self, test: str) -> Tuple[str, str]:
        """The verdict of one test: ("pass" | "xfail" | "fail", message)."""
        s = self.settings
        loss, dtype, output, cls = test.split("-")
        budget = s.budget(loss, dtype)
        recs = [judged(self.records[(i, output)], budget) for i in self.tests[test]]
        self.states[test] = state_of(recs)
        kind, message = self._verdict(test, recs)
        self.outcomes[test] = kind
        return kind, message

    def _verdict(self, test: str, recs: List[Dict[str, Any]]) -> Tuple[str, str]:
        bad = [r for r in recs if r["status"] in BAD]
        if self.baseline is None:
            return ("fail", self._failure(test, recs, bad, [])) if bad else ("pass", "")
        covered = bl.covered_ids(self.baseline, bl.group_of(test), self.settings.framework) or set()
        old = [r for r in recs if r["case"]["id"] in covered]
        new_bad = [r for r in bad if r["case"]["id"] not in covered]
        entry = self.baseline["tests"].get(test)
        if old:
            self.old_states[test] = state_of(old)
        if entry is None or not old:
            return ("fail", self._failure(test, recs, bad, ["(a test the baseline does not have)"])) \
                if bad else ("pass", "")
        now = self.old_states[test]
        lines, failing = [], list(new_bad)
        if entry["status"] == "pass" and now["status"] == "fail":
            lines.append(f"was within budget in the baseline ({entry['worst']}, {entry['max_ulp']} ulp); "
                         f"now {now['worst']}, {now['max_ulp']} ulp")
            failing += [r for r in old if r["status"] in BAD]
        elif entry["status"] == "fail" and bl.worse(now, entry):
            more = sorted(set(now["failing"]) - set(entry["failing"]))
            lines.append(f"a known failure ({entry['cause']}) got worse: {entry['worst']}, {entry['max_ulp']} ulp "
                         f"in the baseline; now {now['worst']}, {now['max_ulp']} ulp"
                         + (f"; failing now, not in the baseline: {', '.join(more)}" if more else ""))
            failing += [r for r in old if r["status"] in BAD]
        if new_bad:
            lines.append(f"{len({r['case']['id'] for r in new_bad})} case(s) the baseline does not cover fail")
        if failing:
            return "fail", self._failure(test, recs, failing, lines)
        better = bl.improvement(entry, now)
        if better:
            self.improved[test] = better
        if now["status"] == "fail":
            w = worst_record([r for r in old if r["status"] in BAD])
            c = _cause(w)
            return "xfail", (f"known failure (baseline): {c['id']}: {c['title']}; now {now['worst']}, "
                             f"{now['max_ulp']} ulp (baseline {entry['max_ulp']} ulp)")
        return "pass", ""

    def _failure(self, test: str, recs: List[Dict[str, Any]], failing: List[Dict[str, Any]],
                 lines: List[str]) -> str:
        """The message of a failing test: what fails, the worst case, its cause and
        reproducer, each failing case with its cause, and the command that reruns the test."""
        s = self.settings
        loss, dtype, output, cls = test.split("-")
        budget = s.budget(loss, dtype)
        rule = f"{budget:g} ulp per value (your budget)" if budget is not None else \
            "the spec's budget, 4 + 2*ceil(log2 n) ulp for a value of n terms"
        ncases = len({r["case"]["id"] for r in failing})
        head = [f"{s.framework_spec} {loss} {dtype} {output}, {cls} cases: {ncases} of {len(recs)} "
                f"case(s) fail; budget: {rule}"] + lines
        w = worst_record(failing)
        cause = _cause(w)
        kind = f" ({w['kind']})" if w.get("kind") and w["kind"] != w["status"] else ""
        out = head + [
            f"worst case: {w['case']['id']}, params {_params(w['case'])}",
            f"  {w['status']}{kind}: {_summary(w)}",
            f"cause: {cause['id']}: {cause['title']}",
            textwrap.fill(cause["explanation"], width=100, initial_indent="  ", subsequent_indent="  "),
            "failing cases:",
        ]
        listed = sorted(failing, key=lambda r: r["case"]["id"])
        for r in listed[:_LISTED]:
            out.append(f"  {r['case']['id']} params {_params(r['case'])}: {r['status']}: {_summary(r)} "
                       f"[cause {_cause(r)['id']}]")
        if len(listed) > _LISTED:
            out.append(f"  ... and {len(listed) - _LISTED} more")
        out += ["--- reproducer ---", runner.reproducer(w["case"], output, s.backend).rstrip(),
                "--- re-run this test alone ---", s.command(test)]
        return "\n".join(out)

    # --- baselines ---------------------------------------------------------------------------------

    def write_baseline(self) -> None:
        """Write the baseline that --lossref-record or --lossref-tighten asks for, if any."""
        s = self.settings
        if not (s.record or s.tighten):
            return
        target = s.record or s.baseline
        if not self.states:
            self.notes.append(f"no test ran: {target} was not written")
            return
        from ..vectors.manifest import write_atomic

        if s.record:
            groups = {bl.group_of(t) for t in self.states}
            doc = bl.new_doc(s.framework, s.backend, self.header, s.budgets,
                             {g: bl.fingerprint(self.digests[g]) for g in groups}, self.states)
            fails = sum(st["status"] == "fail" for st in self.states.values())
            self.notes.append(f"baseline written to {target}: {len(self.states)} tests, {fails} failing")
            if len(self.states) < len(self.tests):
                self.notes.append(f"only {len(self.states)} of {len(self.tests)} tests ran: the baseline "
                                  "covers those (record without -k or -x to cover every test)")
        else:
            doc = self._tightened()
        write_atomic(target, bl.render(doc))

    def _tightened(self) -> Dict[str, Any]:
        """The baseline with every test that ran lowered to its new state where that is no
        worse; a group's new cases join it only when every test of the group ran and none
        failed, so a new failure is never taken in."""
        s, old = self.settings, self.baseline
        tests, cases = dict(old["tests"]), dict(old["cases"])
        for g in sorted({bl.group_of(t) for t in self.states}):
            members = {t for t in self.tests if bl.group_of(t) == g} | \
                {t for t in old["tests"] if bl.group_of(t) == g}
            extend = members <= set(self.states) and all(self.outcomes.get(t) != "fail" for t in members)
            if extend:
                cases[g] = bl.fingerprint(self.digests[g])
            elif g not in cases:
                continue  # a new group with a failure or a test that did not run: not taken in
            for t in sorted(members & set(self.states)):
                st = self.states[t] if extend else self.old_states.get(t)
                entry = tests.get(t)
                if st is None or (entry is not None and self.outcomes[t] == "fail"):
                    continue
                if entry is None:
                    if st["status"] == "pass":
                        tests[t] = st
                else:
                    tests[t] = bl.tightened(entry, st)
        changed = sum(tests.get(t) != old["tests"].get(t) for t in tests)
        self.notes.append(f"baseline {s.baseline} tightened: {changed} test entr{'y' if changed == 1 else 'ies'} "
                          f"changed, {len(cases) - len(old['cases'])} group(s) added")
        return bl.new_doc(s.framework, s.backend, self.header, s.budgets, cases, tests)


def suite_of(config) -> Suite:
    """The session's suite, made once (its cases are read when the module is collected)."""
    from .plugin import SUITE

    suite = config.stash.get(SUITE, None)
    if suite is None:
        suite = Suite(config)
        config.stash[SUITE] = suite
    return suite

