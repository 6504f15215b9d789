"""One test per (loss, dtype, output, parameters) group of the selected cases."""

from __future__ import annotations

import json

import pytest

from lossref.conformance.plugin import parse_framework


def _selected_cases(config):
    from lossref.diff.cli import load_vector_cases

    path = config.getoption("--lossref-vectors")
    if path is None:
        from lossref.vectors import canonical_dir
        path = canonical_dir()
    fw, _ = parse_framework(config.getoption("--lossref-framework"))
    return load_vector_cases(path, config.getoption("--lossref-loss"), config.getoption("--lossref-dtype"), fw)


def _group(case, output):
    return (case["loss"], case["dtype"], output, json.dumps(case.get("params") or {}, sort_keys=True))


def pytest_generate_tests(metafunc):
    if "group" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if not config.getoption("--lossref-framework"):
        raise pytest.UsageError("lossref.conformance needs --lossref-framework, e.g. keras[numpy]")
    groups = set()
    for c in _selected_cases(config):
        if "per_sample" in c["expected"]:  # Keras; torch's unreduced output is reduction 'none'
            groups.add(_group(c, "per_sample"))
        for r in c["expected"].get("reductions", {}):
            groups.add(_group(c, r))
    ids = [f"{g[0]}-{g[1]}-{g[2]}-{g[3]}" for g in sorted(groups)]
    metafunc.parametrize("group", sorted(groups), ids=ids)


@pytest.fixture(scope="session")
def records(pytestconfig):
    from lossref.diff import runner

    fw, backend = parse_framework(pytestconfig.getoption("--lossref-framework"))
    cases = _selected_cases(pytestconfig)
    out = runner.run_backend(backend, cases, timeout=pytestconfig.getoption("--lossref-timeout"),
                             framework=fw)
    if "error" in out["header"] and not out["results"]:
        pytest.fail(f"{fw}[{backend}] could not run: {out['header']['error']}", pytrace=False)
    by_group = {}
    recs = runner.evaluate(cases, out["results"])
    findings = runner.build_findings(recs, fw, backend)
    for r in recs:
        by_group.setdefault(_group(r["case"], r["output"]), []).append(r)
    return by_group, findings


def test_conformance(records, group):
    by_group, findings = records
    bad = [r for r in by_group.get(group, []) if r["status"] in ("inaccurate", "mismatch", "error")]
    if bad:
        loss, dtype, output, params = group
        mine = [f for f in findings if f["loss"] == loss and f["dtype"] == dtype and output in f["outputs"]]
        msg = "\n\n".join(f"{f['kind']}: {f['summary']}\n--- reproducer ---\n{f['reproducer']}" for f in mine)
        pytest.fail(msg or f"{len(bad)} case(s) failed", pytrace=False)
