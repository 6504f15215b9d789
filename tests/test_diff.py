"""`lossref diff`: runner, classification, reports, reproducers, crash/timeout handling,
the conformance plugin. Cases are built here with the oracle; expectations are tampered
with on purpose to create findings that do not depend on a framework's current bugs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lossref.diff import cases as dcases
from lossref.diff import compare, report, runner
from lossref.vectors.fileformat import encode_array

BACKENDS = ["numpy", "jax", "torch"]
SCHEMA = os.path.join(os.path.dirname(__file__), "..", "spec", "report.schema.json")


def _needs(backend):
    if backend not in runner.installed_backends():
        pytest.skip(f"Keras backend {backend} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def typical_cases():
    rng = np.random.default_rng(11)
    out = []
    for loss in ("mean_squared_error", "mean_absolute_error"):
        for i, shape in enumerate([(4, 5), (3, 2, 4)]):
            y = rng.uniform(-2, 3, shape)
            p = y + rng.normal(0, 1, shape)
            sw = rng.uniform(0, 2, shape[:-1])
            out.append(dcases.make_case(f"keras/{loss}/float32/{10 * (i + 1):04d}", loss, "float32", y, p,
                                        sample_weight=sw, tags=["random"]))
    return out


def _tamper(case, new_id, factor, keep_reductions=False):
    """A copy of `case` whose per-sample expectation is scaled by `factor` (or NaN), in the
    vector format (canonical hex, 40-digit decimals); without `keep_reductions` it has no
    reductions (not a valid vector record then, but fine for the runner)."""
    c = json.loads(json.dumps(case))
    c["id"] = new_id
    per = c["expected"]["per_sample"]
    vals = compare.decode_hex(per["hex"])
    vals = np.full_like(vals, np.nan) if factor is None else (vals * factor).astype(np.float32).astype(np.float64)
    per["hex"] = encode_array(vals)["hex"]
    per["decimal"] = ["nan" if np.isnan(v) else "0" if v == 0 else f"{v:.39e}" for v in vals]
    if not keep_reductions:
        c["expected"]["reductions"] = {}
    return c


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_and_mae_float32_are_within_budget(backend, typical_cases):
    _needs(backend)
    rep = runner.run(typical_cases, [backend])[0]
    assert rep["framework_version"] and rep["backend"] == backend
    statuses = {(r["loss"], r["reduction"]): r["status"] for r in rep["rows"]}
    assert len(statuses) == 2 * 6  # per-sample + five reductions ("mean" included), two losses
    assert set(statuses.values()) <= {"exact", "faithful", "within-budget"}, rep["findings"][:1]
    assert runner.exit_code([rep]) == 0


def test_classification_reports_and_reproducers(tmp_path, typical_cases):
    _needs("numpy")
    base = typical_cases[0]
    cs = typical_cases[:1] + [
        _tamper(base, "keras/mean_squared_error/float32/0011", 1 + 2.0 ** -16),  # ~256 ulp: inaccurate
        _tamper(base, "keras/mean_squared_error/float32/0012", 2.0),             # another convention
        _tamper(base, "keras/mean_squared_error/float32/0013", None),            # NaN expected
    ]
    bad_param = json.loads(json.dumps(base))
    bad_param.update(id="keras/mean_squared_error/float32/0014", params={"delta": 1.0})
    cs.append(bad_param)                                                          # TypeError in Keras
    rep = runner.run(cs, ["numpy"])[0]
    kinds = {(f["case_id"], f["kind"]) for f in rep["findings"]}
    assert ("keras/mean_squared_error/float32/0011", "inaccurate") in kinds
    assert ("keras/mean_squared_error/float32/0012", "mismatch") in kinds
    assert ("keras/mean_squared_error/float32/0013", "mismatch") in kinds
    assert any(k == "error" and cid.endswith("0014") for cid, k in kinds)
    assert runner.exit_code([rep]) == 1
    # the findings are ordered worst first: errors, mismatches, then inaccuracies
    order = [f["kind"] for f in rep["findings"]]
    assert order == sorted(order, key=lambda k: -compare.RANK[k])

    doc = report.combine([rep], "lossref diff keras --backend numpy")
    paths = report.write_all(doc, str(tmp_path))
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA) as f:
        schema = json.load(f)
    with open(paths["json"]) as f:
        jsonschema.validate(json.load(f), schema)
    md = open(paths["md"]).read()
    assert "| mean_squared_error |" in md and "## Findings" in md and "```python" in md
    html = open(paths["html"]).read()
    assert html.startswith("<!doctype html>") and "mean_squared_error" in html

    # the reproducer of the inaccurate finding runs with only Keras and NumPy and prints
    # the framework's value that the finding reports
    f = next(f for f in rep["findings"] if f["kind"] == "inaccurate")
    script = tmp_path / "repro.py"
    script.write_text(f["reproducer"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = eval(r.stdout.splitlines()[0].split(":", 1)[1])
    summary_value = float(f["summary"].split(": ", 1)[1].split(" vs ")[0])
    assert summary_value in [float(v) for v in printed]


def test_crash_and_timeout_are_findings_and_the_run_goes_on(monkeypatch, typical_cases):
    _needs("numpy")
    cs = [dict(c, id=c["id"][:-4] + f"{9000 + i:04d}") for i, c in enumerate(typical_cases)]
    monkeypatch.setenv("LOSSREF_DIFF_TEST_CRASH", cs[1]["id"])
    monkeypatch.setenv("LOSSREF_DIFF_TEST_HANG", cs[2]["id"])
    out = runner.run_backend("numpy", cs, timeout=2.0)
    res = out["results"]
    assert res[cs[1]["id"]]["kind"] == "crash" and "exit 7" in res[cs[1]["id"]]["error"]
    assert res[cs[2]["id"]]["kind"] == "timeout"
    assert "per_sample" in res[cs[0]["id"]] and "per_sample" in res[cs[3]["id"]]


def test_cli_end_to_end(tmp_path, typical_cases):
    _needs("numpy")
    vec = tmp_path / "vectors.jsonl"
    vec.write_text("".join(json.dumps(c) + "\n" for c in typical_cases))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "keras", "--backend", "numpy",
                        "--vectors", str(vec), "--out", str(out), "--no-plots"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "report.md" in r.stdout
    for name in ("report.json", "report.md", "index.html"):
        assert (out / name).exists()
    doc = json.loads((out / "report.json").read_text())
    assert doc["framework"] == "keras" and doc["backend"] == ["numpy"] and doc["rows"]


def test_conformance_plugin(tmp_path, typical_cases):
    _needs("numpy")
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(c) + "\n" for c in typical_cases[:2]))
    bad = tmp_path / "bad.jsonl"
    # a well-formed vector file (lossref diff checks every record) with a wrong expectation
    bad.write_text(json.dumps(_tamper(typical_cases[0], "keras/mean_squared_error/float32/0021", 2.0,
                                      keep_reductions=True)) + "\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "lossref.conformance",
           "--lossref-framework", "keras[numpy]"]
    r = subprocess.run(cmd + ["--lossref-vectors", str(good)], capture_output=True, text=True, cwd=tmp_path)
    # one test per (loss, format, output, case class): per-sample and five reductions
    assert r.returncode == 0 and "6 passed" in r.stdout, r.stdout[-2000:]
    r = subprocess.run(cmd + ["--lossref-vectors", str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "1 failed, 5 passed" in r.stdout, r.stdout[-2000:]
    assert "test_conformance[mean_squared_error-float32-per_sample-typical]" in r.stdout
    assert "mismatch" in r.stdout and "cause: " in r.stdout and "reproducer" in r.stdout, r.stdout[-2000:]


def test_sweep_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from lossref.diff import sweeps
    x, t, p, label = sweeps.sweep_inputs("log_cosh", "float32", n=16)
    assert t.shape == p.shape == (16, 1)
    assert sweeps.plot_sweep(x, np.linspace(0, 100, 16), "log_cosh", label, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_reproducers_of_real_findings_on_the_canonical_set(tmp_path):
    """Findings on golden vectors (whatever the installed Keras gets wrong today): each
    sampled reproducer runs with only Keras and NumPy and prints the reported value."""
    _needs("numpy")
    from lossref.diff.cli import load_vector_cases
    from lossref.vectors import canonical_dir

    cases = load_vector_cases(str(canonical_dir()), ["log_cosh", "mean_squared_error"], ["float32", "float16"])
    rep = runner.run(cases, ["numpy"])[0]
    sample = [f for f in rep["findings"] if f["kind"] != "error"][:3]
    if not sample:
        pytest.skip("this Keras version has no finding on the sampled losses")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for i, f in enumerate(sample):
        script = tmp_path / f"repro{i}.py"
        script.write_text(f["reproducer"])
        r = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        printed = [float(v) for v in eval(r.stdout.splitlines()[0].split(":", 1)[1])]
        exact = eval(r.stdout.splitlines()[1].split(":", 1)[1])
        if f["summary"].split(": ", 1)[1].startswith(("dtype", "shape")):
            continue
        reported = float(f["summary"].split(": ", 1)[1].split(" vs ")[0])
        assert any(v == reported or (np.isnan(v) and np.isnan(reported)) for v in printed), (f["summary"], printed)
        assert len(exact) == len(printed)


def test_an_exception_is_an_error_of_its_output_only_and_its_reproducer_raises(tmp_path, typical_cases):
    _needs("numpy")
    c = json.loads(json.dumps(typical_cases[0]))
    c["id"] = "keras/mean_squared_error/float32/0031"
    # a weight of the wrong shape makes every reduction raise; the function is unaffected
    c["inputs"]["sample_weight"] = {"shape": [7], "hex": ["0x1p+0"] * 7}
    rep = runner.run([c], ["numpy"])[0]
    errors = [f for f in rep["findings"] if f["kind"] == "error"]
    assert errors and all("per_sample" not in f["outputs"] for f in errors)
    assert {r["status"] for r in rep["rows"] if r["reduction"] is None} <= {"exact", "faithful", "within-budget"}
    script = tmp_path / "repro.py"
    script.write_text(errors[0]["reproducer"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode != 0
    assert errors[0]["summary"].split(": ", 1)[1].split(":", 1)[0] in r.stderr  # the same exception type
