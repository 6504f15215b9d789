"""Reports of a differential run: ``report.json``, ``report.md`` and ``index.html``.

The JSON schema is ``spec/report.schema.json``. Rows and findings are flat lists, each
entry naming its backend; ``backends`` describes each backend's run; ``causes`` groups the
findings by the behaviour behind them (:mod:`lossref.diff.causes`), and the Markdown and
HTML reports open with them. :func:`write_issues` writes one Markdown issue per cause.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import SPEC_VERSION, __version__
from ..vectors.manifest import write_atomic
from . import causes, compare

SCHEMA_ID = "lossref-diff-report/1"


def combine(reports: List[Dict[str, Any]], command: str, framework: str = "keras") -> Dict[str, Any]:
    """One JSON document for every backend of the run, with the causes of all its findings."""
    rows, findings, backends = [], [], []
    versions = sorted({r.get("framework_version") for r in reports if r.get("framework_version")})
    known: Dict[str, Dict[str, Any]] = {}  # cause id -> its classification (any backend's)
    for r in reports:
        backends.append({k: r.get(k) for k in ("backend", "framework_version", "versions", "cases", "error")})
        rows += [dict(row, backend=r["backend"]) for row in r["rows"]]
        findings += [dict(f, backend=r["backend"]) for f in r["findings"]]
        for c in r.get("causes", []):
            known.setdefault(c["id"], c)
    # a cause's signature has no backend: one seen on several backends is one cause (a
    # finding of a report without causes is classified from what it keeps)
    found = causes.build_causes(findings, [known.get(f.get("cause")) for f in findings])
    for c in found:
        for i in c["findings"]:
            findings[i]["cause"] = c["id"]
    return {
        "schema": SCHEMA_ID, "framework": framework,
        "framework_version": versions[0] if len(versions) == 1 else (versions or [None])[0],
        "backend": [r["backend"] for r in reports],
        "lossref_version": __version__, "spec_version": SPEC_VERSION, "command": command,
        "backends": backends, "rows": rows, "findings": findings,
        "causes": found,
    }


def _cells(rows: List[Dict[str, Any]], backend: str):
    """loss -> column -> rows; a column is a dtype, or ``"<dtype> grad"`` for the rows of
    gradient outputs (``lossref diff --grad``)."""
    table: Dict[str, Dict[str, List[Dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["backend"] == backend:
            grad = str(r.get("reduction") or "").startswith("grad:")
            table[r["loss"]][r["dtype"] + (" grad" if grad else "")].append(r)
    return table


def _columns(rows: List[Dict[str, Any]]) -> List[str]:
    """The table's columns: each dtype, followed by its gradient column where the run
    compared gradients."""
    grad = any(str(r.get("reduction") or "").startswith("grad:") for r in rows)
    return [c for d in DTYPES for c in ((d, d + " grad") if grad else (d,))]


def _cell_text(rs: List[Dict[str, Any]]) -> str:
    """Worst status and max ulp on typical cases; the adversarial worst after a semicolon."""
    if not rs:
        return "–"
    parts = []
    for cls in ("typical", "adversarial"):
        sel = [r for r in rs if r.get("cases_class", "typical") == cls]
        if not sel:
            continue
        st = compare.worst_status([r["status"] for r in sel])
        ulps = [r["max_ulp"] for r in sel if r["max_ulp"] is not None]
        m = "inf" if "inf" in ulps else (max(ulps) if ulps else 0)
        text = f"{st} ({m if isinstance(m, str) else f'{m:.3g}'})"
        parts.append(text if cls == "typical" else f"adv: {text}")
    return "; ".join(parts)


def _cell_status(rs: List[Dict[str, Any]]) -> Optional[str]:
    typical = [r["status"] for r in rs if r.get("cases_class", "typical") == "typical"]
    return compare.worst_status(typical or [r["status"] for r in rs]) if rs else None


DTYPES = list(causes.FORMAT_ORDER)


def render_markdown(doc: Dict[str, Any], max_findings: int = 60) -> str:
    """``report.md``: the causes (largest first, each with its smallest reproducer), a
    status table per backend, then the findings (worst first) with their reproducers and
    causes, at most `max_findings` of them."""
    out = [f"# lossref differential report: {doc['framework']}", "",
           f"lossref {doc['lossref_version']} (spec {doc['spec_version']}); command: `{doc['command']}`", ""]
    out += _causes_markdown(doc)
    out += ["Cells: the worst status over every output and parameter set on typical cases, with the "
           "largest error in ulps of the exact value, then (`adv:`) the same over adversarial, "
           "special-value and edge-shape cases; a `grad` column holds the gradients of the same outputs "
           "(with respect to the prediction). Statuses: exact · faithful (≤ 1 ulp) · within-budget · "
           "inaccurate · mismatch (another convention, shape, dtype or special value) · error.", ""]
    for b in doc["backends"]:
        out.append(f"## backend `{b['backend']}` — {doc['framework']} {b.get('framework_version') or '?'}")
        out.append("")
        if b.get("error"):
            out += [f"Could not run: {b['error']}", ""]
            continue
        table = _cells(doc["rows"], b["backend"])
        cols = _columns(doc["rows"])
        out.append("| loss | " + " | ".join(cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for loss in sorted(table):
            out.append(f"| {loss} | " + " | ".join(_cell_text(table[loss].get(d, [])) for d in cols) + " |")
        out.append("")
    fs = doc["findings"]
    out.append(f"## Findings ({len(fs)}), worst first")
    out.append("")
    for f in fs[:max_findings]:
        out += [f"### {f['backend']}: {f['summary']}", "",
                f"cause `{f.get('cause')}` · kind **{f['kind']}** ({f.get('detail')}), {f['cases']} case(s), {f.get('param_sets', 1)} "
                f"parameter set(s), outputs {', '.join(f.get('outputs', []))}; worst case `{f['case_id']}` "
                f"with params `{json.dumps(f['params'], sort_keys=True)}`", "", "```python", f["reproducer"].rstrip(), "```", ""]
    if len(fs) > max_findings:
        out.append(f"… {len(fs) - max_findings} more in report.json.")
    return "\n".join(out) + "\n"


def _cause_counts(c: Dict[str, Any]) -> str:
    n = c["counts"]
    return (f"{n['findings']} finding(s), {n['cases']} case(s); backend(s) {', '.join(c['backends'])}; "
            f"losses ({n['losses']}): {', '.join(c['losses'])}; formats: {', '.join(c['formats'])}; "
            f"outputs: {', '.join(c['outputs'])}")


def _smallest(doc: Dict[str, Any], c: Dict[str, Any]):
    """The cause's smallest reproducer: its finding and one line saying what it is."""
    i = c["smallest_finding"]
    f = doc["findings"][i]
    wc = f["worst_case"]
    return f, (f"finding {i} ({f['backend']}): `{f['loss']}` in {f['dtype']}, output `{wc['output']}`, "
               f"parameters `{json.dumps(wc['params'], sort_keys=True)}`, {causes.input_elements(f)} input "
               f"element(s), case `{f['case_id']}`")


def _causes_markdown(doc: Dict[str, Any]) -> List[str]:
    cs = doc.get("causes", [])
    out = [f"## Causes ({len(cs)}), largest first", "",
           "Each cause is one behaviour of the framework, found from the data: the findings whose worst "
           "records share a signature (an exception and its message, a dtype or shape returned, a special "
           "value, a precision, or a loss's convention). Each shows its smallest reproducer.", ""]
    for n, c in enumerate(cs, 1):
        f, what = _smallest(doc, c)
        out += [f"### {n}. `{c['id']}`: {c['title']}", "", _cause_counts(c) + ".", "", c["explanation"], "",
                f"Smallest reproducer, {what}: {f['summary']}", "",
                "```python", f["reproducer"].rstrip(), "```", ""]
    return out


def render_json(doc: Dict[str, Any]) -> str:
    """``report.json``: keys sorted, so equal documents give equal bytes."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


_STATUS_COLOUR = {"exact": "#c8e6c9", "faithful": "#dcedc8", "within-budget": "#f0f4c3",
                  "inaccurate": "#ffe0b2", "mismatch": "#ffcdd2", "error": "#e1bee7"}


def render_html(doc: Dict[str, Any], plots: Optional[Dict[str, str]] = None, max_findings: int = 60) -> str:
    """The Markdown report's content as a page, with the sweep plots (PNG files) inline."""
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>lossref diff: {e(doc['framework'])}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 8px;font-size:13px}"
             "pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px}img{max-width:100%}</style>",
             "</head><body>",
             f"<h1>lossref differential report: {e(doc['framework'])}</h1>",
             f"<p>lossref {e(doc['lossref_version'])} (spec {e(doc['spec_version'])}); "
             f"command: <code>{e(doc['command'])}</code></p>"]
    cs = doc.get("causes", [])
    parts.append(f"<h2>Causes ({len(cs)}), largest first</h2>")
    for n, c in enumerate(cs, 1):
        f, what = _smallest(doc, c)
        parts.append(f"<h3 id='cause-{e(c['id'])}'>{n}. <code>{e(c['id'])}</code>: {e(c['title'])}</h3>"
                     f"<p>{e(_cause_counts(c))}.</p><p>{e(c['explanation'])}</p>"
                     f"<p>Smallest reproducer, {e(what.replace('`', ''))}: {e(f['summary'])}</p>"
                     f"<pre>{e(f['reproducer'])}</pre>")
    for b in doc["backends"]:
        parts.append(f"<h2>backend {e(b['backend'])} — {e(doc['framework'])} {e(str(b.get('framework_version')))}</h2>")
        if b.get("error"):
            parts.append(f"<p>Could not run: {e(b['error'])}</p>")
            continue
        table = _cells(doc["rows"], b["backend"])
        cols = _columns(doc["rows"])
        parts.append("<table><tr><th>loss</th>" + "".join(f"<th>{d}</th>" for d in cols) + "</tr>")
        for loss in sorted(table):
            cells = []
            for d in cols:
                rs = table[loss].get(d, [])
                st = _cell_status(rs)
                cells.append(f"<td style='background:{_STATUS_COLOUR.get(st, '#fff')}'>{e(_cell_text(rs))}</td>")
            parts.append(f"<tr><td>{e(loss)}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
    if plots:
        parts.append("<h2>Where it breaks: ulp error along one-dimensional sweeps</h2>")
        for title, png in sorted(plots.items()):
            parts.append(f"<h3>{e(title)}</h3><img src='{e(png)}' alt='{e(title)}'>")
    fs = doc["findings"]
    parts.append(f"<h2>Findings ({len(fs)}), worst first</h2>")
    for f in fs[:max_findings]:
        parts.append(f"<h3>{e(f['backend'])}: {e(f['summary'])}</h3>"
                     f"<p>cause <a href='#cause-{e(f['cause'])}'><code>{e(f['cause'])}</code></a> · "
                     f"kind <b>{e(f['kind'])}</b> ({e(str(f.get('detail')))}), {f['cases']} case(s), "
                     f"worst case <code>{e(f['case_id'])}</code></p><pre>{e(f['reproducer'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_markdown(doc: Dict[str, Any], path: str, max_findings: int = 60) -> None:
    """Write :func:`render_markdown` to `path`, atomically."""
    write_atomic(Path(path), render_markdown(doc, max_findings).encode("utf-8"))


def write_html(doc: Dict[str, Any], path: str, plots: Optional[Dict[str, str]] = None,
               max_findings: int = 60) -> None:
    """Write :func:`render_html` to `path`, atomically."""
    write_atomic(Path(path), render_html(doc, plots, max_findings).encode("utf-8"))


def write_all(doc: Dict[str, Any], out_dir: str, plots: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Write report.json, report.md and index.html into `out_dir`; returns their paths.

    Each file is written to a temporary name and renamed into place, and all three are
    rendered before the first is written: an interrupted run leaves whole files only.
    """
    names = (("json", "report.json"), ("md", "report.md"), ("html", "index.html"))
    paths = {k: os.path.join(out_dir, v) for k, v in names}
    texts = {"json": render_json(doc), "md": render_markdown(doc), "html": render_html(doc, plots)}
    for k, _ in names:
        write_atomic(Path(paths[k]), texts[k].encode("utf-8"))
    return paths


# --- issues: one Markdown file per cause -------------------------------------------------------


def spec_page(framework: str, loss: str) -> str:
    """The spec page that defines `loss` of `framework`'s dialect: ``spec/losses/<catalogue
    loss>.md`` (a torch, Optax or tf.nn function names its catalogue loss), or
    ``spec/pipeline.md`` for a function that is a reduction only (``compute_average_loss``)."""
    from ..vectors.targets import get_target

    try:
        lossdef = getattr(get_target(framework, loss).function, "loss", None)
    except (KeyError, ValueError):  # not a function of the dialect: the name is the loss's
        return f"spec/losses/{loss}.md"
    return f"spec/losses/{lossdef.name}.md" if lossdef is not None else "spec/pipeline.md"


def _values_text(exp: Dict[str, Any], limit: int = 8) -> str:
    hexes = exp["hex"] if isinstance(exp["hex"], list) else [exp["hex"]]
    decs = exp["decimal"] if isinstance(exp["decimal"], list) else [exp["decimal"]]
    more = f", … ({len(hexes)} values)" if len(hexes) > limit else ""
    return (f"hex `[{', '.join(hexes[:limit])}{more}]`, exact `[{', '.join(decs[:limit])}{more}]`")


def _expected_actual(f: Dict[str, Any]):
    """What the oracle expects and what the framework gave, for the worst case of `f`."""
    wc = f["worst_case"]
    exp, out = wc["expected"], wc["output"]
    hexes = exp["hex"] if isinstance(exp["hex"], list) else [exp["hex"]]
    decs = exp["decimal"] if isinstance(exp["decimal"], list) else [exp["decimal"]]
    dtype = exp.get("dtype", f["dtype"])
    what = f["summary"].split(": ", 1)[-1]
    comp = f.get("computed") or {}
    i = comp.get("index")
    shape = tuple(exp.get("shape", []))
    if i is None:
        expected = f"`{out}` of shape {shape} in {dtype}: {_values_text(exp)}"
        return expected, what
    where = f"element {i} (flat) of `{out}`, shape {shape}" if len(hexes) > 1 else f"`{out}`"
    expected = (f"{where}: `{hexes[i]}` = {float.fromhex(hexes[i])!r} in {dtype} (correctly rounded); "
                f"the exact value is {decs[i]}")
    actual = f"`{comp['hex']}` = {float.fromhex(comp['hex'])!r}"
    if f.get("detail") in ("dtype", "shape"):
        actual = f"{what}; the value there: {actual}"
    return expected, actual


def _environment(doc: Dict[str, Any], backends: List[str]) -> List[str]:
    lines = [f"- {doc['framework']} {doc.get('framework_version') or '(version unknown)'}, "
             f"backend(s): {', '.join(backends)}"]
    for b in doc["backends"]:
        if b["backend"] in backends:
            vs = b.get("versions") or {}
            libs = ", ".join(f"{k} {v}" for k, v in sorted(vs.items())) or "not recorded"
            lines.append(f"- backend `{b['backend']}`: {libs}")
    lines.append(f"- lossref {doc['lossref_version']} (spec {doc['spec_version']}); "
                 f"command: `{doc['command']}`")
    return lines


def render_issue(doc: Dict[str, Any], cause: Dict[str, Any]) -> str:
    """One cause as a Markdown issue for the framework's tracker: title, environment,
    smallest reproducer, expected (the exact value and the spec page that defines it) and
    actual, what it affects, and the signature that grouped it."""
    f, what = _smallest(doc, cause)
    expected, actual = _expected_actual(f)
    n = cause["counts"]
    out = [f"# {doc['framework']}: {cause['title']}", "", cause["explanation"], "",
           f"Found by lossref's differential tester: {n['findings']} finding(s) over {n['cases']} case(s) "
           f"share this behaviour (cause `{cause['id']}`).", "",
           "## Environment", "", *_environment(doc, cause["backends"]), "",
           "## Minimal reproducer", "", f"The smallest case of this cause: {what}.", "",
           "```python", f["reproducer"].rstrip(), "```", "",
           "## Expected", "", f"{expected}.", "",
           f"The value is defined by `{spec_page(doc['framework'], f['loss'])}` in lossref "
           f"(spec {doc['spec_version']}); the exact value is computed by lossref's oracle.", "",
           "## Actual", "", f"{actual} ({f['kind']}: {f.get('detail')}).", "",
           "## Affected", "",
           f"- losses ({n['losses']}): {', '.join(cause['losses'])}",
           f"- formats: {', '.join(cause['formats'])}",
           f"- outputs: {', '.join(cause['outputs'])}",
           f"- findings: {n['findings']}, cases: {n['cases']}", "",
           "| loss | format | backend | outputs | cases | worst case |", "|---|---|---|---|---|---|"]
    for i in cause["findings"]:
        g = doc["findings"][i]
        worst = g["summary"].split(": ", 1)[-1].replace("|", "\\|")
        out.append(f"| {g['loss']} | {g['dtype']} | {g['backend']} | {', '.join(g.get('outputs', []))} | "
                   f"{g['cases']} | `{g['case_id']}`: {worst} |")
    out += ["", "## Signature", "", "The findings above share this signature (lossref's grouping):", "",
            "```json", json.dumps(cause["evidence"], indent=1, sort_keys=True), "```"]
    return "\n".join(out) + "\n"


def _is_issue_file(path: str) -> bool:
    """Whether `path` is an issue file :func:`render_issue` wrote (by its own phrases)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError):
        return False
    return "Found by lossref's differential tester: " in text and "lossref's grouping" in text


def write_issues(doc: Dict[str, Any], folder: str) -> List[str]:
    """Write ``<cause id>.md`` (:func:`render_issue`) for every cause into `folder`, created
    if missing; each file atomically, all rendered first. Returns the paths, largest cause
    first. An issue file of an earlier run whose cause this run does not have is removed, so
    the folder holds this run's issues; every other file in `folder` is left as it is."""
    texts = [(os.path.join(folder, f"{c['id']}.md"), render_issue(doc, c)) for c in doc.get("causes", [])]
    os.makedirs(folder, exist_ok=True)
    for path, text in texts:
        write_atomic(Path(path), text.encode("utf-8"))
    keep = {os.path.basename(p) for p, _ in texts}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".md") and name not in keep and os.path.isfile(path) and _is_issue_file(path):
            os.remove(path)
    return [p for p, _ in texts]
