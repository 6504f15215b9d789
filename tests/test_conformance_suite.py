"""The conformance suite as a framework's CI runs it: baselines (record, check, tighten),
budgets, the [tool.lossref] table, case classes and test ids.

End to end, each run is ``pytest --pyargs lossref.conformance`` in a subprocess on
Keras's NumPy backend, on a copy of the canonical mean_squared_error float32 vectors;
refusals and selections are also checked in this process on the suite object, which is
faster. Expectations are tampered with on purpose, so the failures do not depend on what
Keras gets wrong today. (This file is not named test_conformance.py: the repository's
conftest.py leaves that name to the suite itself.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lossref import __version__
from lossref.conformance import plugin
from lossref.conformance.baseline import render
from lossref.conformance.plugin import ConformanceError
from lossref.conformance.suite import Suite
from lossref.diff import runner
from lossref.vectors import canonical_dir
from lossref.vectors.fileformat import decode_hex, encode_array

LOSS, DTYPE = "mean_squared_error", "float32"
SELECT = ["--lossref-framework", "keras[numpy]", "--lossref-loss", LOSS, "--lossref-dtype", DTYPE]
KNOWN = f"{LOSS}-{DTYPE}-per_sample-typical"  # the test of the tampered case 0011


def _run(cwd, *args):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfxX", "-p", "no:cacheprovider", "--pyargs",
           "lossref.conformance", *args]
    # pytest prints whole failure messages in its summary when CI or BUILD_NUMBER is set;
    # without them the output these tests read is the same on a laptop and in CI
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)


def _counts(r):
    """{'passed': n, 'failed': n, 'xfailed': n, ...} from pytest's last line."""
    words = r.stdout.strip().splitlines()[-1].replace(",", "").split()
    return {k: int(n) for n, k in zip(words, words[1:]) if n.isdigit()}


def _failed_tests(r):
    return sorted(line.split("[", 1)[1].split("]", 1)[0] for line in r.stdout.splitlines()
                  if line.startswith("FAILED "))


_DEFAULTS = {}


class _Parser:
    """Collects the plugin's options and their defaults."""

    def getgroup(self, *args):
        return self

    def addoption(self, flag, **kw):
        _DEFAULTS[flag[2:].replace("-", "_")] = kw.get("default")


plugin.pytest_addoption(_Parser())


class _Config:
    """What the suite reads of a pytest config: the options, the stash and the rootdir."""

    def __init__(self, root, **options):
        self.rootpath = Path(root)
        self.stash = {}
        self.option = SimpleNamespace(**{**_DEFAULTS, **options})
        plugin.pytest_configure(self)

    def getoption(self, name):
        return getattr(self.option, name[2:].replace("-", "_"))


def _suite(root, vectors=None, **options):
    base = dict(lossref_framework="keras[numpy]", lossref_loss=[LOSS], lossref_dtype=[DTYPE], lossref_vectors=vectors)
    return Suite(_Config(root, **{**base, **options}))


def _scaled(case, number, output, factor):
    """A copy of `case` numbered `number` whose expected `output` is scaled by `factor`,
    in the vector format (hex in float32, 40-digit decimals)."""
    c = json.loads(json.dumps(case))
    c["id"] = f"keras/{LOSS}/{DTYPE}/{number}"
    exp = c["expected"]["per_sample"] if output == "per_sample" else c["expected"]["reductions"][output]
    scalar = not isinstance(exp["hex"], list)
    vals = (decode_hex([exp["hex"]] if scalar else exp["hex"]) * factor).astype(np.float32).astype(np.float64)
    hexes = encode_array(vals)["hex"]
    decs = ["0" if v == 0 else f"{v:.39e}" for v in vals]
    exp["hex"], exp["decimal"] = (hexes[0], decs[0]) if scalar else (hexes, decs)
    return c


def _write(path, prov, cases):
    prov = json.loads(json.dumps(prov))
    prov["provenance"]["cases"] = len(cases)
    path.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in [prov] + cases))
    return str(path)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """Vector files: `base` (the canonical cases plus 0011, a typical case whose per-sample
    expectation is off by ~2**-16: a known failure), `added` (base plus 0012, whose `sum`
    is twice the exact one, and 0013, a copy of a sound case), `sound` (base plus 0013),
    `changed` (base with an input of 0030 altered) and `removed` (base without 0070)."""
    d = tmp_path_factory.mktemp("vectors")
    lines = [json.loads(x) for x in (canonical_dir() / "keras" / LOSS / f"{DTYPE}.jsonl").read_text().splitlines()]
    prov, cases = lines[0], lines[1:]
    by = {c["id"].rsplit("/", 1)[1]: c for c in cases}
    assert by["0010"]["tags"][0] == by["0030"]["tags"][0] == by["0070"]["tags"][0] == "random"
    base = cases + [_scaled(by["0010"], "0011", "per_sample", 1 + 2.0 ** -16)]
    twice, copy = _scaled(by["0030"], "0012", "sum", 2.0), _scaled(by["0070"], "0013", "per_sample", 1.0)
    changed = json.loads(json.dumps(by["0030"]))
    y = changed["inputs"]["y_pred"]["hex"]
    y[0] = "0x1p+1" if y[0] == "0x1p+0" else "0x1p+0"
    return {
        "dir": d,
        "base": _write(d / "base.jsonl", prov, base),
        "added": _write(d / "added.jsonl", prov, base + [twice, copy]),
        "sound": _write(d / "sound.jsonl", prov, base + [copy]),
        "changed": _write(d / "changed.jsonl", prov, [changed if c is by["0030"] else c for c in base]),
        "removed": _write(d / "removed.jsonl", prov, [c for c in base if c is not by["0070"]]),
        "outputs": ["per_sample"] + list(by["0010"]["expected"]["reductions"]),
        "grads": list(by["0010"]["expected"]["grad"]),
        "categories": sorted({c["tags"][0] for c in cases}),
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, vectors):
    """A baseline recorded on `base`: (the run, its bytes)."""
    if "numpy" not in runner.installed_backends():
        pytest.skip("Keras's numpy backend is not installed (pip install -e '.[test]')")
    d = tmp_path_factory.mktemp("record")
    r = _run(d, *SELECT, "--lossref-vectors", vectors["base"], "--lossref-record", str(d / "baseline.json"))
    return r, (d / "baseline.json").read_bytes()


def test_record_writes_every_test_state_in_sorted_lines(recorded, vectors):
    r, data = recorded
    # the run reports its one failure and writes the state of every test
    assert r.returncode == 1 and _failed_tests(r) == [KNOWN], r.stdout[-3000:]
    assert "baseline.json: 6 tests, 1 failing" in r.stdout
    doc = json.loads(data)
    assert doc["lossref"] == __version__ and (doc["framework"], doc["backend"]) == ("keras", "numpy")
    assert doc["framework_version"] and doc["versions"]["keras"] == doc["framework_version"]
    known = doc["tests"][KNOWN]
    assert known["status"] == "fail" and known["failing"] == ["0011"] and known["cause"]
    assert known["worst"] == "inaccurate" and 64 <= known["max_ulp"] <= 512  # a 2**-16 error in float32
    assert sorted(doc["tests"]) == sorted(f"{LOSS}-{DTYPE}-{o}-typical" for o in vectors["outputs"])
    assert all(t["status"] == "pass" and t["failing"] == [] for k, t in doc["tests"].items() if k != KNOWN)
    ids = doc["cases"][f"{LOSS}-{DTYPE}-typical"]["ids"]
    want = [json.loads(x)["id"][-4:] for x in open(vectors["base"]).read().splitlines()[1:]
            if json.loads(x)["tags"][0] == "random"]
    assert ids == sorted(want)
    text = data.decode()
    assert str(vectors["dir"]) not in text  # no paths; one test a line; the renderer's bytes
    assert len(text.splitlines()) == len(doc["tests"]) + len(doc["cases"]) + len(doc) + 2 + 2
    assert render(doc) == data


def test_check_reports_improvements_and_tighten_restores_the_record(tmp_path, recorded, vectors):
    data = recorded[1]
    base = SELECT + ["--lossref-vectors", vectors["base"]]
    rec = tmp_path / "baseline.json"
    # a baseline loosened by hand on one test: the check passes (the known failure xfailed,
    # the loosened test reported as improved), and tightening gives back the recorded bytes
    loose = json.loads(data)
    loose["tests"][f"{LOSS}-{DTYPE}-sum-typical"].update(status="fail", worst="inaccurate", max_ulp=99.0,
                                                        failing=["0010"], cause="precision-bits-lost")
    rec.write_bytes(render(loose))
    r = _run(tmp_path, *base, "--lossref-baseline", str(rec))
    assert r.returncode == 0 and _counts(r) == {"passed": 5, "xfailed": 1}, r.stdout[-3000:]
    assert "known failure (baseline): " + json.loads(data)["tests"][KNOWN]["cause"] in r.stdout
    assert "1 test(s) improved on the baseline" in r.stdout
    assert f"{LOSS}-{DTYPE}-sum-typical: known failure now passes" in r.stdout
    r = _run(tmp_path, *base, "--lossref-baseline", str(rec), "--lossref-tighten")
    assert r.returncode == 0 and "tightened: 1 test entry changed" in r.stdout, r.stdout[-3000:]
    assert rec.read_bytes() == data

    # a vector set that adds cases: only the test with a new failing case fails, naming the
    # case and its cause; the known failure stays known, the new sound case passes
    added = SELECT + ["--lossref-vectors", vectors["added"], "--lossref-baseline", str(rec)]
    r = _run(tmp_path, *added, "--lossref-tighten")
    assert r.returncode == 1 and _failed_tests(r) == [f"{LOSS}-{DTYPE}-sum-typical"], r.stdout[-3000:]
    assert _counts(r) == {"failed": 1, "passed": 4, "xfailed": 1}
    assert "1 case(s) the baseline does not cover fail" in r.stdout
    listed = [ln for ln in r.stdout.splitlines() if ln.startswith(f"  keras/{LOSS}/{DTYPE}/")]
    assert len(listed) == 1 and "/0012 " in listed[0] and "[cause convention-mean-squared-error]" in listed[0]
    assert f"-k 'test_conformance[{LOSS}-{DTYPE}-sum-typical]'" in r.stdout and "--- reproducer ---" in r.stdout
    assert "--lossref-tighten" not in r.stdout.split("re-run this test alone ---")[1]
    # ... and tightening takes nothing in: the group with a new failure keeps its cases
    assert rec.read_bytes() == data


def test_tighten_takes_in_added_cases_that_pass(tmp_path, recorded, vectors):
    rec = tmp_path / "b.json"
    rec.write_bytes(recorded[1])
    r = _run(tmp_path, *SELECT, "--lossref-vectors", vectors["sound"], "--lossref-baseline", str(rec),
             "--lossref-tighten")
    assert r.returncode == 0 and _counts(r) == {"passed": 5, "xfailed": 1}, r.stdout[-3000:]
    doc = json.loads(rec.read_text())
    assert doc["cases"][f"{LOSS}-{DTYPE}-typical"]["ids"] == sorted(
        json.loads(recorded[1])["cases"][f"{LOSS}-{DTYPE}-typical"]["ids"] + ["0013"])
    assert doc["tests"][KNOWN] == json.loads(recorded[1])["tests"][KNOWN]


def test_baselines_that_do_not_apply_are_refused_in_one_line(tmp_path, recorded, vectors):
    rec = tmp_path / "b.json"
    rec.write_bytes(recorded[1])
    # end to end: pytest's usage error, one line, exit code 4, no traceback
    cut = tmp_path / "cut.json"
    cut.write_bytes(recorded[1][: len(recorded[1]) // 2])
    r = _run(tmp_path, *SELECT, "--lossref-vectors", vectors["base"], "--lossref-baseline", str(cut))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 4 and len(lines) == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr
    assert lines[0].startswith(f"ERROR: --lossref-baseline {cut}: not a lossref baseline (invalid JSON")

    def refusal(vec=vectors["base"], baseline=rec, **options):
        with pytest.raises(ConformanceError) as e:
            _suite(tmp_path, vec, lossref_baseline=str(baseline), **options)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert _suite(tmp_path, vectors["added"], lossref_baseline=str(rec)).baseline is not None
    assert f"cases of {LOSS} {DTYPE} typical differ" in refusal(vectors["changed"])
    assert f"lost case keras/{LOSS}/{DTYPE}/0070" in refusal(vectors["removed"])
    assert "lost case" in refusal(None)  # the canonical set lacks the baseline's 0011
    assert "made with the budgets {}" in refusal(lossref_budget=[f"{LOSS}=8"])
    assert "made for keras[numpy], this run checks keras[jax]" in refusal(lossref_framework="keras[jax]")
    doc = json.loads(recorded[1])
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(doc, lossref="0.0.1")))
    assert f"made with lossref 0.0.1, this is lossref {__version__}: record it again" in refusal(baseline=other)
    edited = json.loads(recorded[1])
    edited["cases"][f"{LOSS}-{DTYPE}-typical"]["ids"].append("0012")
    other.write_text(json.dumps(edited))
    assert "does not match its vector_set hash" in refusal(vectors["added"], other)
    other.write_text(json.dumps(dict(doc, tests={"x": {}})))
    assert "tests entry 'x' is malformed" in refusal(baseline=other)
    other.write_bytes(b"\xff\xfe")
    assert "not a lossref baseline (not UTF-8" in refusal(baseline=other)
    assert "cannot read" in refusal(baseline=tmp_path / "missing.json")


def test_budgets_on_the_command_line_and_in_pyproject(tmp_path, recorded, vectors):
    # 0.5 ulp per value fails every test whose largest error exceeds it (the errors of the
    # recorded run); under the spec's budget only the known failure failed
    errors = {k: t["max_ulp"] for k, t in json.loads(recorded[1])["tests"].items()}
    over = sorted(k for k, u in errors.items() if u > 0.5)
    assert KNOWN in over and len(over) >= 2
    r = _run(tmp_path, *SELECT, "--lossref-vectors", vectors["base"], "--lossref-budget", f"{LOSS}=0.5")
    assert r.returncode == 1 and _failed_tests(r) == over, r.stdout[-3000:]
    assert "0.5 ulp per value (your budget)" in r.stdout
    assert f"--lossref-budget {LOSS}=0.5" in r.stdout  # the re-run command keeps the budget

    # [tool.lossref] alone configures the run: a loose budget for the format passes the known failure
    (tmp_path / "pyproject.toml").write_text(
        "[tool.lossref]\n"
        'framework = "keras[numpy]"\n'
        f'vectors = "{os.path.relpath(vectors["base"], tmp_path)}"\n'
        f'loss = ["{LOSS}"]\n'
        'cases = "typical"\n'
        f'budget = {{"{LOSS}:{DTYPE}" = 1000, "{LOSS}" = 2}}\n')
    r = _run(tmp_path)
    assert r.returncode == 0 and _counts(r) == {"passed": 6}, r.stdout[-3000:] + r.stderr[-2000:]
    # the command line wins over the table, key by key; a format's budget over the loss's
    s = _suite(tmp_path, lossref_framework=None, lossref_loss=None, lossref_dtype=None,
               lossref_budget=[f"{LOSS}=0.5"]).settings
    assert s.budgets == {LOSS: 0.5, f"{LOSS}:{DTYPE}": 1000.0}
    assert (s.budget(LOSS, DTYPE), s.budget(LOSS, "float16"), s.budget("huber", DTYPE)) == (1000.0, 0.5, None)
    assert s.vectors == str(tmp_path / os.path.relpath(vectors["base"], tmp_path)) and s.losses == (LOSS,)

    def refusal(text):
        (tmp_path / "pyproject.toml").write_text("[tool.lossref]\n" + text)
        with pytest.raises(ConformanceError) as e:
            _suite(tmp_path, lossref_framework=None)
        return str(e.value)

    assert "unknown loss 'nope'" in refusal('framework = "keras[numpy]"\nbudget = {nope = 3}\n')
    assert "must be a number of ulps >= 0" in refusal(f'framework = "keras"\nbudget = {{{LOSS} = -1}}\n')
    assert "unknown key 'framwork'" in refusal('framwork = "keras"\n')
    assert "cases must be a string" in refusal('framework = "keras"\ncases = 3\n')
    assert "not valid TOML" in refusal('framework = "keras"\ncases = [1\n')


def test_case_classes_test_ids_and_usage_errors(tmp_path, vectors):
    def want(classes, outputs=vectors["outputs"]):
        return sorted(f"{LOSS}-{DTYPE}-{o}-{c}" for o in outputs for c in classes)

    # the ids pytest shows and selects by
    r = _run(tmp_path, *SELECT, "--lossref-vectors", vectors["base"], "--collect-only")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    shown = sorted(ln.split("::", 1)[1] for ln in r.stdout.splitlines() if "::" in ln)
    assert shown == [f"test_conformance[{t}]" for t in want(["typical"])]

    def tests(**options):
        return sorted(_suite(tmp_path, vectors["base"], **options).tests)

    assert tests(lossref_cases="special") == want(["special"])
    classes = {"random": "typical", "special": "special", "adversarial": "adversarial", "edge-shape": "adversarial"}
    assert tests(lossref_cases="all") == want({classes[c] for c in vectors["categories"]})
    assert tests(lossref_cases="typical,adversarial") == want(["typical", "adversarial"])
    # each class holds the cases of its category
    s = _suite(tmp_path, vectors["base"], lossref_cases="all")
    for c in json.loads("[" + ",".join(open(vectors["base"]).read().splitlines()[1:]) + "]"):
        assert c["id"] in s.tests[f"{LOSS}-{DTYPE}-sum-{classes[c['tags'][0]]}"]
    # gradients: one test more per output the vectors record a gradient of
    assert tests(lossref_framework="keras[jax]", lossref_grad=True) == want(
        ["typical"], vectors["outputs"] + [f"grad:{g}" for g in vectors["grads"]])

    def refusal(**options):
        with pytest.raises(ConformanceError) as e:
            _suite(tmp_path, vectors["base"], **options)
        return str(e.value)

    assert "Keras's numpy backend has none" in refusal(lossref_grad=True)
    assert "is not one of typical, adversarial, special, all" in refusal(lossref_cases="hard")
    assert "expected LOSS=ULPS" in refusal(lossref_budget=[LOSS])
    assert "unknown keras loss 'nope'" in refusal(lossref_loss=["nope"])
    assert "unknown format 'float8'" in refusal(lossref_budget=[f"{LOSS}:float8=3"])
    assert "--lossref-tighten rewrites the baseline" in refusal(lossref_tighten=True)
    assert "leave out --lossref-baseline" in refusal(lossref_record="x.json", lossref_baseline="b.json")
    assert "needs --lossref-framework" in refusal(lossref_framework=None)
    assert "torch runs on cpu only" in refusal(lossref_framework="torch[cuda]")
    assert "no special cases" in refusal(lossref_cases="special", lossref_vectors=vectors["base"],
                                         lossref_dtype=["float16"])


@pytest.mark.parametrize("backend, grad", [("jax", False), ("torch", True), ("tensorflow", True)])
def test_record_and_check_on_the_other_keras_backends(tmp_path, backend, grad):
    if backend not in runner.installed_backends():
        pytest.skip(f"Keras's {backend} backend is not installed")
    sel = ["--lossref-framework", f"keras[{backend}]", "--lossref-loss", "huber", "--lossref-dtype", "float32",
           "--lossref-vectors", str(canonical_dir() / "keras" / "huber" / "float32.jsonl")]
    sel += ["--lossref-grad"] if grad else []
    rec = tmp_path / "b.json"
    r = _run(tmp_path, *sel, "--lossref-record", str(rec))
    assert r.returncode in (0, 1) and rec.exists(), r.stdout[-3000:] + r.stderr[-2000:]
    doc = json.loads(rec.read_text())
    assert (doc["framework"], doc["backend"]) == ("keras", backend)
    # per-sample, five reductions, and the gradient of the recorded output
    assert len(doc["tests"]) == 6 + grad and any(k.startswith("huber-float32-grad:") for k in doc["tests"]) == grad
    r = _run(tmp_path, *sel, "--lossref-baseline", str(rec))
    assert r.returncode == 0 and "failed" not in r.stdout.splitlines()[-1], r.stdout[-3000:]
