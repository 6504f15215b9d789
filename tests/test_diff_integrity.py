"""`lossref diff` integrity: a corrupt oracle cache is caught and recomputed, a broken vector
file or a bad option is one line and exit 2 before any work, reports are the same bytes
whatever the cache state or job count, and an interrupted run leaves nothing behind.

The runs use the Keras numpy backend on a few losses where today's Keras has findings (so
the reports carry findings, reproducers and parameter sets), two fresh cases per loss and
dtype, and a two-case vector file.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from lossref import cli
from lossref.diff import cases as dcases
from lossref.diff import report, runner
from lossref.vectors import canonical_dir
from tests.support import interrupt_when

REPORTS = ("report.json", "report.md", "index.html")
LOSSES = ("mean_absolute_error", "sparse_categorical_crossentropy", "dice")


def _needs_numpy_backend():
    if "numpy" not in runner.installed_backends():
        pytest.skip("the Keras numpy backend is not installed (pip install -e '.[test]')")


def _small_vectors(path: Path, n: int = 2) -> Path:
    """The first `n` cases of a canonical file, its provenance saying so."""
    lines = (canonical_dir() / "keras" / "mean_squared_error" / "float32.jsonl").read_text().splitlines()
    prov = json.loads(lines[0])
    prov["provenance"]["cases"] = n
    path.write_text("\n".join([json.dumps(prov, sort_keys=True)] + lines[1:1 + n]) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Paths shared by the runs: the vector file, the report folder and the argv."""
    _needs_numpy_backend()
    root = tmp_path_factory.mktemp("integrity")
    vec = _small_vectors(root / "vectors.jsonl")
    out = root / "out"
    argv = ["diff", "keras", "--backend", "numpy", "--vectors", str(vec), "--cases", "2",
            "--dtype", "float16", "--dtype", "float32", "--no-plots", "--out", str(out)]
    for loss in LOSSES:
        argv += ["--loss", loss]
    return {"root": root, "vec": vec, "out": out, "argv": argv}


def _run(argv, capsys):
    """``lossref ARGV`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _reports(out: Path):
    return {name: (out / name).read_bytes() for name in REPORTS}


@pytest.fixture(scope="module")
def clean(setup, tmp_path_factory):
    """A clean run (cold cache, one job): its reports, exit code and warm cache folder."""
    cache = tmp_path_factory.mktemp("cache-clean")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))  # never the user's cache
    try:
        rc = cli.main(setup["argv"] + ["--cache-dir", str(cache), "--jobs", "1"])
    finally:
        mp.undo()
    assert rc in (0, 1)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 2 * 2 * len(LOSSES)
    return {"rc": rc, "reports": _reports(setup["out"]), "cache": cache}


def _copy_cache(clean, tmp_path) -> Path:
    dst = tmp_path / "cache"
    shutil.copytree(clean["cache"], dst)
    return dst


def _expected_hex(obj):
    """The first per-sample ``hex`` list found under an ``expected`` key, at any depth."""
    if isinstance(obj, dict):
        if "expected" in obj and isinstance(obj["expected"], dict) and "per_sample" in obj["expected"]:
            return obj["expected"]["per_sample"]["hex"]
        for v in obj.values():
            found = _expected_hex(v)
            if found is not None:
                return found
    return None


# --- the oracle cache ------------------------------------------------------------------------


def test_truncated_cache_entry_is_reported_recomputed_and_the_report_unchanged(setup, clean, tmp_path, capsys):
    cache = _copy_cache(clean, tmp_path)
    victim = sorted(cache.glob("*.json"))[3]
    victim.write_bytes(victim.read_bytes()[:200])  # an interrupted write of an old version
    rc, _, err = _run(setup["argv"] + ["--cache-dir", str(cache), "--jobs", "1"], capsys)
    assert rc == clean["rc"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0] and "corrupt" in lines[0], err
    assert _reports(setup["out"]) == clean["reports"]
    json.loads(victim.read_text())  # recomputed and rewritten whole


def test_tampered_cache_entry_is_detected_and_gives_no_false_finding(setup, clean, tmp_path, capsys):
    cache = _copy_cache(clean, tmp_path)
    victim = sorted(cache.glob("*.json"))[5]
    entry = json.loads(victim.read_text())
    hexes = _expected_hex(entry)
    hexes[0] = "0x1p+0" if hexes[0] != "0x1p+0" else "0x1p+1"  # well-formed, but wrong
    victim.write_text(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    rc, _, err = _run(setup["argv"] + ["--cache-dir", str(cache), "--jobs", "1"], capsys)
    assert rc == clean["rc"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0] and "checksum" in lines[0], err
    assert _reports(setup["out"]) == clean["reports"]


def test_cold_and_warm_cache_and_any_job_count_give_the_same_bytes(setup, clean, tmp_path, capsys):
    cache = tmp_path / "cache"
    for extra in (["--jobs", "2"],               # cold cache, two processes
                  ["--jobs", "1"],               # warm cache
                  ["--jobs", "2"]):              # warm cache, two processes
        rc, _, err = _run(setup["argv"] + ["--cache-dir", str(cache)] + extra, capsys)
        assert rc == clean["rc"] and not err.strip(), err
        got = _reports(setup["out"])
        for name in REPORTS:
            assert got[name] == clean["reports"][name], (extra, name)
    doc = json.loads(clean["reports"]["report.json"])
    assert "--jobs" not in doc["command"] and "--cache-dir" not in doc["command"]
    # another report folder: the same bytes there too (where a report lives is not in it)
    elsewhere = tmp_path / "elsewhere"
    argv = [str(elsewhere) if a == str(setup["out"]) else a for a in setup["argv"]]
    argv += ["--cache-dir", str(cache)]
    assert _run(argv, capsys)[0] == clean["rc"]
    assert _reports(elsewhere) == clean["reports"]
    assert "--out" not in doc["command"]


def test_unwritable_cache_folder_is_one_warning_and_the_run_goes_on(setup, clean, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = blocker / "oracle"  # under a regular file: cannot be created, even by root
    rc, _, err = _run(setup["argv"] + ["--cache-dir", str(cache), "--jobs", "1"], capsys)
    assert rc == clean["rc"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(cache) in lines[0] and "warning" in lines[0], err
    assert _reports(setup["out"]) == clean["reports"]


def test_findings_do_not_depend_on_key_order_or_aliases():
    """Every reduction raises (a tie, no ulp), so the worst output is decided by the
    tie-break: the same whatever the order of the case's keys (a cached case's are sorted)."""
    params = {"from_logits": False, "label_smoothing": 0.0, "axis": -1}
    case = dcases.make_case("keras/categorical_crossentropy/float32/0010", "categorical_crossentropy",
                            "float32", [[0, 1, 0], [1, 0, 0]], [[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]],
                            params=params, tags=["random"])
    shuffled = json.loads(json.dumps(case, sort_keys=True))  # reductions and params re-ordered
    shuffled["params"] = dict(reversed(list(case["params"].items())))
    assert list(shuffled["expected"]["reductions"]) != list(case["expected"]["reductions"])

    def findings(c):
        res = {c["id"]: {"id": c["id"], "per_sample": dict(c["expected"]["per_sample"]),
                         "reductions": {r: {"error": "ValueError: boom", "kind": "exception"}
                                        for r in c["expected"]["reductions"]}}}
        return runner.build_findings(runner.evaluate([c], res), "keras", "numpy")

    a, b = findings(case), findings(shuffled)
    # as report.json holds them (keys sorted); the reproducers, text, must match as they are
    assert a and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a[0]["reduction"] == "sum_over_batch_size"  # the first of REDUCTIONS


# --- usage errors, before any work -------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a backend or the oracle is started."""
    def boom(*a, **k):
        raise AssertionError("work started before the usage error was found")
    monkeypatch.setattr(runner, "run", boom)
    monkeypatch.setattr(runner, "run_backend", boom)
    monkeypatch.setattr("lossref.diff.cli.with_expectations", boom)


def _vector_variants(vec: Path):
    lines = vec.read_text().splitlines()
    case = json.loads(lines[2])
    missing = dict(case)
    del missing["expected"]
    return {
        "truncated": ("\n".join(lines)[:-40], "line 3"),  # the last line cut, no newline
        "bad-json": ("\n".join(lines[:2] + [lines[2][:-1] + ",}"]) + "\n", "line 3"),
        "missing-key": ("\n".join(lines[:2] + [json.dumps(missing)]) + "\n", "line 3"),
        "not-a-case": ("\n".join(lines[:2] + [json.dumps({"hello": "world"})]) + "\n", "line 3"),
    }


@pytest.mark.parametrize("variant", ["truncated", "bad-json", "missing-key", "not-a-case"])
def test_malformed_vector_file_is_one_line_and_exit_2(variant, tmp_path, capsys, no_work):
    good = _small_vectors(tmp_path / "good.jsonl")
    text, where = _vector_variants(good)[variant]
    bad = tmp_path / f"{variant}.jsonl"
    bad.write_text(text)
    rc, out, err = _run(["diff", "keras", "--backend", "numpy", "--vectors", str(bad), "--out",
                         str(tmp_path / "out"), "--no-plots"], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and where in lines[0], err
    assert "Traceback" not in err + out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["existing-file", "under-a-file"])
def test_out_that_cannot_be_a_folder_fails_at_once(how, tmp_path, capsys, no_work):
    blocker = tmp_path / "report.txt"
    blocker.write_text("not a folder")
    out = blocker if how == "existing-file" else blocker / "sub"
    vec = _small_vectors(tmp_path / "v.jsonl")
    t0 = time.monotonic()
    rc, _, err = _run(["diff", "keras", "--backend", "numpy", "--vectors", str(vec), "--cases", "2",
                       "--out", str(out)], capsys)
    assert rc == 2 and time.monotonic() - t0 < 10
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("opt", [["--jobs", "-1"], ["--timeout", "0"], ["--timeout", "-3"],
                                 ["--timeout", "nan"], ["--cases", "-1"]])
def test_bad_numbers_are_one_line_and_exit_2(opt, tmp_path, capsys, no_work):
    rc, _, err = _run(["diff", "keras", "--backend", "numpy", "--out", str(tmp_path / "o")] + opt, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and opt[0] in err, err


# --- nothing half-written ------------------------------------------------------------------------


def test_reports_are_all_rendered_before_any_is_written(tmp_path, monkeypatch):
    doc = report.combine([{"framework": "keras", "backend": "numpy", "framework_version": "3",
                           "cases": 0, "rows": [], "findings": []}], "lossref diff keras")

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(report, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_all(doc, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_exit_130_and_leaves_no_temporary_files(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, while the worker hangs."""
    _needs_numpy_backend()
    vec = _small_vectors(tmp_path / "v.jsonl")
    first = json.loads(vec.read_text().splitlines()[1])["id"]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), LOSSREF_DIFF_TEST_HANG=first)
    # ready once the worker has written its header line: it is then inside the hanging case
    rc, _, err = interrupt_when(
        ["diff", "keras", "--backend", "numpy", "--vectors", vec, "--no-plots", "--out", tmp_path / "out"],
        lambda: any(p.stat().st_size for p in tmp.glob("lossref-diff-*/numpy-results-*.jsonl")), env)
    assert rc == 130
    assert err.strip() == "lossref diff: interrupted", err
    assert list(tmp.iterdir()) == []
    assert not (tmp_path / "out").exists()
