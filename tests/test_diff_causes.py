"""Causes of `lossref diff`: signatures of crafted records (each kind), stable and unique
ids, every finding in exactly one cause on a real Keras run (NumPy backend), reports that
open with the causes, `--issues DIR` and its hostile inputs, report.json against its schema."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lossref import formats
from lossref.diff import causes, compare, report, runner
from lossref.vectors import canonical_dir
from lossref.vectors.targets import DIALECTS, targets

ROOT = os.path.join(os.path.dirname(__file__), "..")
SCHEMA = os.path.join(ROOT, "spec", "report.schema.json")
#: a few Keras losses whose canonical cases show many kinds of failure on the NumPy backend
LOSSES = ("circle", "log_cosh", "cosine_similarity")


def _input(values):
    return {"shape": [len(values)], "hex": [formats.to_hex(v, trim=True) for v in values]}


def _case(exp, dtype="float64", output="per_sample", loss="mean_squared_error", inputs=(0.5, 2.0)):
    if output.startswith("grad:"):
        expected = {"grad": {output[5:]: exp}}
    else:
        expected = {"per_sample": exp} if output == "per_sample" else {"reductions": {output: exp}}
    return {"id": f"keras/{loss}/{dtype}/0010", "loss": loss, "dtype": dtype, "tags": ["random"],
            "inputs": {"y_true": _input(inputs), "y_pred": _input([1.0] * len(inputs))}, "expected": expected}


def _record(exact, computed, dtype="float64", *, got_dtype=None, got_shape=(1,), output="per_sample",
            loss="mean_squared_error", inputs=(0.5, 2.0), typical=False):
    """A record as evaluate() makes it: the exact value (a decimal string), correctly rounded
    into `dtype` here, compared with `computed` by compare.compare_output."""
    fmt = formats.get_format(dtype)
    rounded = formats.round_mpf(compare.exact_from_decimal(exact), fmt)
    exp = {"shape": [1], "hex": [formats.to_hex(rounded, trim=True)], "decimal": [exact]}
    got = {"shape": list(got_shape), "hex": [float(computed).hex()] * int(np.prod(got_shape)),
           "dtype": got_dtype or dtype}
    cmp = compare.compare_output(exp, got, fmt, dtype, 1, typical)
    assert cmp["status"] in ("inaccurate", "mismatch"), cmp
    return {"case": _case(exp, dtype, output, loss, inputs), "output": output, **cmp}


def _error(summary, kind="exception", output="per_sample", loss="circle"):
    exp = {"shape": [1], "hex": ["0x1p+0"], "decimal": ["1"]}
    return {"case": _case(exp, output=output, loss=loss), "output": output, "status": "error", "kind": kind,
            "summary": summary, "ulp": None}


# --- signatures of crafted records ----------------------------------------------------------------

F32_OF_A_THIRD = float(np.float32(1 / 3))  # 1/3 rounded into float32: 24 significant bits

CRAFTED = {
    # a float64 loss returning float32 (the value itself is right)
    "dtype-float64-as-float32": lambda: _record("0.3333333333333333148296162562473909929395", 1 / 3,
                                                got_dtype="float32"),
    "dtype-float16-as-float32": lambda: _record("0.5", 0.5, "float16", got_dtype="float32"),
    "shape-extra-axis-sized-rank-1-2": lambda: _record("1.5", 1.5, got_shape=(2, 2)),
    "shape-extra-axis-unit-rank-1-2": lambda: _record("1.5", 1.5, got_shape=(1, 1)),
    "special-nan-for-inf-finite-inputs": lambda: _record("inf", float("nan")),
    "special-nan-for-neg-inf-non-finite-inputs": lambda: _record("-inf", float("nan"),
                                                                  inputs=(float("-inf"), 1.0)),
    "special-finite-for-inf-finite-inputs": lambda: _record("inf", 15.3),
    "special-zero-for-nan-non-finite-inputs": lambda: _record("nan", 0.0, inputs=(float("nan"), 1.0)),
    # exact finite but beyond float16's range: +inf once rounded
    "special-nan-for-overflow-finite-inputs": lambda: _record("1e6", float("nan"), "float16"),
    "overflow-near-max-finite-inputs": lambda: _record("3e38", float("inf"), "float32"),
    "overflow-well-in-range-finite-inputs": lambda: _record("485.5", float("inf"), "float16"),
    "overflow-beyond-float32-finite-inputs": lambda: _record("1e50", float("inf")),
    "nan-for-zero-finite-inputs": lambda: _record("0", float("nan")),
    "nan-for-nonzero-non-finite-inputs": lambda: _record("0.75", float("nan"), inputs=(float("inf"), 1.0)),
    # a float64 result that is a float32 number with 24 significant bits
    "computed-in-float32": lambda: _record("0.3333333333333333148296162562473909929395", F32_OF_A_THIRD),
    "precision-zero-for-nonzero": lambda: _record("1.6e-24", 0.0),
    "precision-zero-for-subnormal": lambda: _record("1e-310", 0.0),
    "precision-nonzero-for-zero": lambda: _record("0", 5.960464477539063e-08),
    "precision-wrong-sign": lambda: _record("3.1e-6", -5.4e-4, "float16"),
    "precision-no-correct-digits-too-small": lambda: _record("960.7", 6.027081072330475),
    "precision-no-correct-digits-too-large": lambda: _record("6.557508471326188374544988687508437489115e-17",
                                                             1.943006663331851e-08),
    "precision-few-correct-bits": lambda: _record("1.704148475784926847151502949628532093870e-7",
                                                  2.031502948193754e-07),
    "precision-bits-lost": lambda: _record("0.02161790848253442801180273258213714476432",
                                           0.02161785028874874, "float32"),
    "convention-tversky": lambda: _record("0.2398", 0.18652249679903554, loss="tversky", typical=True),
    "grad-dtype-float64-as-float32": lambda: _record("0.5", 0.5, got_dtype="float32", output="grad:sum"),
    "grad-special-nan-for-inf-finite-inputs": lambda: _record("inf", float("nan"), output="grad:per_sample"),
}


@pytest.mark.parametrize("want", sorted(CRAFTED))
def test_a_crafted_record_gets_the_cause_of_its_behaviour(want):
    c = causes.classify(CRAFTED[want]())
    assert c["id"] == want
    assert set(c) == {"id", "title", "explanation", "evidence"}
    assert c["evidence"]["gradient"] is want.startswith("grad-")
    assert c["title"] and "\n" not in c["title"] and len(c["explanation"].split(". ")) >= 2
    json.dumps(c["evidence"])  # JSON-ready
    assert causes.cause_id(c["evidence"]) == c["id"]


def test_signature_fields_of_each_kind():
    ev = causes.classify(CRAFTED["dtype-float64-as-float32"]())["evidence"]
    assert ev == {"gradient": False, "behaviour": "dtype", "got": "float32", "expected": "float64"}
    ev = causes.classify(CRAFTED["shape-extra-axis-sized-rank-1-2"]())["evidence"]
    assert ev == {"gradient": False, "behaviour": "shape", "change": "extra-axis", "extra": "sized", "ranks": [1, 2]}
    lost = causes.classify(_record("1.5", 1.5, got_shape=()))
    assert lost["id"] == "shape-lost-axis-rank-1-0" and "loses an axis" in lost["title"]
    ev = causes.classify(CRAFTED["special-nan-for-inf-finite-inputs"]())["evidence"]
    assert ev == {"gradient": False, "behaviour": "special", "exact": "+inf", "got": "nan", "inputs": "finite"}
    ev = causes.classify(CRAFTED["convention-tversky"]())["evidence"]
    assert ev == {"gradient": False, "behaviour": "convention", "loss": "tversky"}
    # a convention is per loss; other behaviours are not
    assert causes.classify(_record("0.2398", 0.1865, loss="dice", typical=True))["id"] == "convention-dice"
    assert causes.classify(_record("inf", float("nan"), loss="dice"))["id"] == "special-nan-for-inf-finite-inputs"


def test_error_messages_are_normalised_and_typed():
    a = causes.classify(_error("ValueError: non-broadcastable output operand with shape () doesn't "
                               "match the broadcast shape (4,)"))
    b = causes.classify(_error("ValueError: non-broadcastable output operand with shape (1,1) doesn't "
                               "match the broadcast shape (1,3)", loss="sparse_categorical_crossentropy"))
    assert a == b
    assert a["evidence"] == {"gradient": False, "behaviour": "error", "kind": "exception", "exception": "ValueError",
                             "message": "non-broadcastable output operand with shape (shape) doesn't match "
                                        "the broadcast shape (shape)"}
    assert a["id"].startswith("error-valueerror-non-broadcastable-output-operand")
    # the same message from another exception type is another cause
    c = causes.classify(_error("TypeError: non-broadcastable output operand with shape () doesn't match "
                               "the broadcast shape (4,)"))
    assert c["id"] != a["id"] and c["id"].startswith("error-typeerror-")
    # numbers, hex addresses and only the first line of a message count
    d1 = causes.classify(_error("TypeError: <function f at 0x7f3a2b1c9d40> got 3 arguments\nTraceback 1"))
    d2 = causes.classify(_error("TypeError: <function f at 0x7f00aa00bb00> got 12 arguments\nTraceback 2"))
    assert d1 == d2 and "0x7f" not in json.dumps(d1)
    # an error of a gradient is another cause than the same error of a value
    g = causes.classify(_error("ValueError: bad shape (3,)", output="grad:per_sample"))
    v = causes.classify(_error("ValueError: bad shape (4, 5)"))
    assert g["id"].startswith("grad-error-valueerror-bad-shape-") and v["id"].startswith("error-valueerror-bad-shape-")
    assert g["evidence"] == dict(v["evidence"], gradient=True)
    t1 = causes.classify(_error("timeout after 30 s", kind="timeout"))
    t2 = causes.classify(_error("timeout after 2 s", kind="timeout"))
    crash = causes.classify(_error("worker died (exit -11)", kind="crash"))
    assert t1 == t2 and t1["id"].startswith("error-timeout") and crash["id"].startswith("error-crash-worker-died-exit-n-")


def test_ids_are_stable_unique_and_from_the_signature_only(tmp_path):
    found = {want: causes.classify(make()) for want, make in CRAFTED.items()}
    ids = [c["id"] for c in found.values()]
    assert len(set(ids)) == len(ids)
    # a readable slug, the same on every run and machine (no hash seed, no address)
    err = causes.classify(_error("ValueError: non-broadcastable output operand with shape () doesn't match "
                                 "the broadcast shape (4,)"))
    assert err["id"] == "error-valueerror-non-broadcastable-output-operand-with-0a63f0"
    code = ("import json, sys; sys.path.insert(0, 'tests'); import test_diff_causes as t; "
            "from lossref.diff import causes; "
            "print(json.dumps(sorted(causes.classify(m())['id'] for m in t.CRAFTED.values())))")
    for seed in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONHASHSEED=seed))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == sorted(ids)
    for want, c in found.items():
        assert causes.cause_id(json.loads(json.dumps(c["evidence"]))) == want


# --- a real run: Keras on its NumPy backend ------------------------------------------------------


@pytest.fixture(scope="module")
def run():
    if "numpy" not in runner.installed_backends():
        pytest.skip("Keras with its numpy backend is not installed")
    from lossref.diff.cli import load_vector_cases
    cases = load_vector_cases(str(canonical_dir()), list(LOSSES), None, "keras")
    cases = [dict(c, expected={k: v for k, v in c["expected"].items() if k != "grad"}) for c in cases]
    out = runner.run_backend("numpy", cases)
    records = runner.evaluate(cases, out["results"])
    worst = []
    findings = runner.build_findings(records, "keras", "numpy", worst)
    rep = {"framework": "keras", "backend": "numpy", "framework_version": out["header"]["framework_version"],
           "versions": out["header"]["versions"], "cases": len(cases), "rows": runner.build_rows(records),
           "findings": findings, "causes": causes.build_causes(findings, worst)}
    return records, worst, rep


def test_every_finding_is_in_exactly_one_cause(run):
    records, worst, rep = run
    fs, cs = rep["findings"], rep["causes"]
    assert len(fs) >= 10 and 5 <= len(cs) < len(fs)
    placed = sorted(i for c in cs for i in c["findings"])
    assert placed == list(range(len(fs)))
    for c in cs:
        for i in c["findings"]:
            assert fs[i]["cause"] == c["id"]
            assert causes.classify(worst[i])["id"] == c["id"]  # the signature of the worst record
        mine = [fs[i] for i in c["findings"]]
        assert c["losses"] == sorted({f["loss"] for f in mine})
        assert set(c["formats"]) == {f["dtype"] for f in mine}
        assert c["outputs"] == sorted({o for f in mine for o in f["outputs"]})
        assert c["counts"]["findings"] == len(mine) and c["counts"]["cases"] == sum(f["cases"] for f in mine)
        sizes = [sum(len(a["hex"]) for a in f["worst_case"]["inputs"].values() if a) for f in mine]
        assert c["smallest_finding"] == c["findings"][sizes.index(min(sizes))]
    # largest first, ties by id
    assert [(-c["counts"]["findings"], c["id"]) for c in cs] == sorted((-c["counts"]["findings"], c["id"]) for c in cs)
    # the worst record's own status: every failing record has a cause
    bad = [r for r in records if r["status"] in ("inaccurate", "mismatch", "error")]
    assert all(causes.classify(r)["id"] for r in bad)
    # what the behaviours are on this backend, as the data shows them
    ids = {c["id"] for c in cs}
    assert "dtype-float64-as-float32" in ids
    assert any(i.startswith("error-valueerror-non-broadcastable") for i in ids)


def test_causes_rebuilt_from_the_findings_alone_are_the_same(run):
    _, _, rep = run
    for f in rep["findings"]:
        rec = causes.finding_record(json.loads(json.dumps(f)))
        assert causes.classify(rec)["id"] == f["cause"]
    assert causes.build_causes(json.loads(json.dumps(rep["findings"]))) == rep["causes"]


def test_combine_joins_a_cause_across_backends(run):
    _, _, rep = run
    other = json.loads(json.dumps(dict(rep, backend="jax")))
    doc = report.combine([rep, other], "lossref diff keras")
    assert len(doc["findings"]) == 2 * len(rep["findings"])
    assert [c["id"] for c in doc["causes"]] == [c["id"] for c in rep["causes"]]
    for c in doc["causes"]:
        assert c["backends"] == ["jax", "numpy"]
        assert {doc["findings"][i]["backend"] for i in c["findings"]} == {"jax", "numpy"}
    # a report without causes (e.g. made by hand) gets its findings classified from themselves
    bare = dict(rep, causes=[], findings=[{k: v for k, v in f.items() if k != "cause"} for f in rep["findings"]])
    assert report.combine([bare], "x")["causes"] == report.combine([rep], "x")["causes"]


def test_reports_open_with_causes_and_validate(run, tmp_path):
    _, _, rep = run
    doc = report.combine([rep], "lossref diff keras --backend numpy")
    paths = report.write_all(doc, str(tmp_path))
    md = open(paths["md"], encoding="utf-8").read()
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads[0] == f"## Causes ({len(doc['causes'])}), largest first"
    assert heads[1].startswith("## backend") and heads[-1].startswith("## Findings")
    first = doc["causes"][0]
    smallest = doc["findings"][first["smallest_finding"]]
    block = md.split("### 1. ", 1)[1].split("### 2. ", 1)[0]
    assert f"`{first['id']}`: {first['title']}" in block and first["explanation"] in block
    assert smallest["reproducer"].rstrip() in block and ", ".join(first["losses"]) in block
    assert f"cause `{doc['findings'][0]['cause']}`" in md.split("## Findings", 1)[1]
    page = open(paths["html"], encoding="utf-8").read()
    assert page.index("<h2>Causes") < page.index("<h2>backend") < page.index("<h2>Findings")
    assert f"id='cause-{first['id']}'" in page and f"href='#cause-{doc['findings'][0]['cause']}'" in page
    data = json.load(open(paths["json"], encoding="utf-8"))
    schema = json.load(open(SCHEMA, encoding="utf-8"))
    try:
        import jsonschema
    except ImportError:  # the structure the schema requires, checked by hand
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(data, schema)
    for c in data["causes"]:
        assert set(schema["properties"]["causes"]["items"]["required"]) <= set(c)
    assert all("cause" in f for f in data["findings"])


# --- the command line -----------------------------------------------------------------------------


def _diff(*args):
    cmd = [sys.executable, "-m", "lossref.cli", "diff", "keras", "--backend", "numpy", "--no-plots"]
    for loss in LOSSES:
        cmd += ["--loss", loss]
    return subprocess.run(cmd + list(args), capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND="numpy"))


def _tree(folder):
    return {p: open(os.path.join(folder, p), "rb").read() for p in sorted(os.listdir(folder))}


def test_issues_are_written_one_per_cause_and_deterministic(tmp_path):
    if "numpy" not in runner.installed_backends():
        pytest.skip("Keras with its numpy backend is not installed")
    trees = []
    for n in (1, 2):
        out, iss = tmp_path / f"out{n}", tmp_path / f"deep{n}" / "issues"  # created with its parent
        r = _diff("--out", str(out), "--issues", str(iss))
        assert r.returncode == 1, r.stdout + r.stderr
        trees.append((_tree(out), _tree(iss)))
    assert trees[0] == trees[1]  # same command, same bytes
    doc = json.loads(trees[0][0]["report.json"])
    assert "--issues" not in doc["command"]  # where the issues go changes nothing reported
    issues = trees[0][1]
    assert sorted(issues) == sorted(f"{c['id']}.md" for c in doc["causes"])
    versions = doc["backends"][0]["versions"]
    for c in doc["causes"]:
        text = issues[f"{c['id']}.md"].decode("utf-8")
        f = doc["findings"][c["smallest_finding"]]
        assert text.startswith(f"# keras: {c['title']}\n")
        env = text.split("## Environment", 1)[1].split("##", 1)[0]
        assert f"keras {doc['framework_version']}" in env and f"numpy {versions['numpy']}" in env
        assert doc["lossref_version"] in env
        repro = text.split("## Minimal reproducer", 1)[1].split("## Expected", 1)[0]
        assert f["reproducer"].rstrip() in repro and f["case_id"] in repro
        expected = text.split("## Expected", 1)[1].split("## Actual", 1)[0]
        page = f"spec/losses/{f['loss']}.md"
        assert f"`{page}`" in expected and os.path.isfile(os.path.join(ROOT, page))
        exp = f["worst_case"]["expected"]
        if f.get("computed"):  # the expected element in hex and decimal, and the actual value
            i = f["computed"]["index"]
            assert exp["hex"][i] in expected and exp["decimal"][i] in expected
            assert f["computed"]["hex"] in text.split("## Actual", 1)[1]
        affected = text.split("## Affected", 1)[1]
        assert ", ".join(c["losses"]) in affected and ", ".join(c["formats"]) in affected
        assert f"findings: {c['counts']['findings']}, cases: {c['counts']['cases']}" in affected
        assert json.dumps(c["evidence"], indent=1, sort_keys=True) in affected


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_issues_at_a_file_is_one_line_and_exit_2(tmp_path, where):
    f = tmp_path / "taken"
    f.write_text("x")
    target = f if where == "file" else f / "sub"
    r = _diff("--out", str(tmp_path / "out"), "--issues", str(target))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "--issues" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and f.read_text() == "x"


def test_spec_page_of_every_function_exists():
    for dialect in DIALECTS:
        for name in targets(dialect):
            page = report.spec_page(dialect, name)
            assert os.path.isfile(os.path.join(ROOT, page)), (dialect, name, page)
    assert report.spec_page("torch", "mse_loss") == "spec/losses/mean_squared_error.md"
    assert report.spec_page("optax", "sigmoid_focal_loss") == "spec/losses/binary_focal_crossentropy.md"


def test_readme_states_the_causes_of_the_canonical_numpy_run(tmp_path):
    """The README's table is what `lossref diff keras --backend numpy` says on the
    canonical set with the Keras it names: every cause, its findings and its title."""
    keras = pytest.importorskip("keras")
    if "numpy" not in runner.installed_backends():
        pytest.skip("Keras with its numpy backend is not installed")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("What `lossref diff keras --backend numpy --out DIR` finds on the canonical set")
    head = " ".join(text[start:text.index("| findings | cause | title |", start)].split())
    stated = head.split("(Keras ")[1].split(" ")[0]
    if keras.__version__ != stated:
        pytest.skip(f"the README states Keras {stated}; Keras {keras.__version__} is installed")
    rows = []
    for line in text[text.index("|---|---|---|", start):].splitlines()[1:]:
        if not line.startswith("| "):
            break
        n, cid, title = [c.strip() for c in line.strip("|").split(" | ", 2)]
        rows.append((int(n), cid.strip("`"), title.replace("&lt;", "<").replace("&gt;", ">")))
    env = dict(os.environ, KERAS_BACKEND="numpy")
    proc = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "keras", "--backend", "numpy",
                           "--no-plots", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    got = [(len(c["findings"]), c["id"], c["title"]) for c in rep["causes"]]
    assert rows == got
    assert f"{len(rep['findings'])} findings, **{len(rep['causes'])} causes**" in head


def test_a_second_run_removes_the_issue_files_of_causes_it_no_longer_has(tmp_path, run):
    _, _, rep = run
    doc = {**rep, "lossref_version": "0", "spec_version": "0", "command": "lossref diff keras",
           "backends": [{"backend": "numpy", "framework_version": rep["framework_version"],
                         "versions": rep["versions"], "cases": rep["cases"]}]}
    doc["findings"] = [dict(f, backend="numpy") for f in doc["findings"]]
    doc["causes"] = [dict(c, backends=["numpy"]) for c in doc["causes"]]
    first = report.write_issues(doc, str(tmp_path))
    assert len(first) == len(doc["causes"]) >= 2
    (tmp_path / "notes.md").write_text("my own notes\n")  # not an issue file: kept
    (tmp_path / "keep.txt").write_text("x")
    fewer = dict(doc, causes=doc["causes"][:1])
    second = report.write_issues(fewer, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(second[0]), "notes.md", "keep.txt"])


def test_gradient_findings_get_causes_of_their_own_on_a_real_run(tmp_path):
    if "torch" not in runner.installed_backends():
        pytest.skip("Keras with its torch backend is not installed")
    env = dict(os.environ, KERAS_BACKEND="numpy")
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "keras", "--backend", "torch", "--grad",
                        "--loss", "binary_crossentropy", "--dtype", "float16", "--no-plots", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1, r.stderr[-2000:]
    doc = json.loads((tmp_path / "report.json").read_text())
    grads = [c for c in doc["causes"] if c["evidence"]["gradient"]]
    values = [c for c in doc["causes"] if not c["evidence"]["gradient"]]
    assert grads and values
    for c in grads:  # a gradient cause holds gradient findings only, and says so
        assert c["id"].startswith("grad-") and c["title"].startswith("Gradient: ")
        assert all(o.startswith("grad:") for i in c["findings"] for o in doc["findings"][i]["outputs"])
    for c in values:
        assert not any(o.startswith("grad:") for i in c["findings"] for o in doc["findings"][i]["outputs"])
    assert sorted(i for c in doc["causes"] for i in c["findings"]) == list(range(len(doc["findings"])))
