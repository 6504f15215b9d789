"""Integrity of golden-vector sets: what golden may put into a manifest, what verify and
cite accept, the checks verify makes on every case, user errors and interrupts.

Each test reproduces a way a set could be silently blessed or a command could fail
badly, and asserts the exit code and the message that names the file or line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from lossref import cli
from lossref.vectors import fileformat, manifest
from lossref.formats import FORMATS
from tests.support import interrupt_when

ROOT = Path(__file__).resolve().parents[1]
CANON = ROOT / "spec" / "vectors"
MSE = "keras/mean_squared_error/float32.jsonl"
HUBER = "keras/huber/float32.jsonl"


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_set(tmp_path_factory):
    """A small set made once: mean squared error and Huber in float32, 8 cases each."""
    out = tmp_path_factory.mktemp("base") / "set"
    assert cli.main(["golden", "--out", str(out), "--loss", "mean_squared_error", "huber",
                     "--dtype", "float32", "--cases", "8", "--jobs", "1", "--quiet"]) == 0
    return out


@pytest.fixture
def vset(base_set, tmp_path):
    """A private copy of the small set."""
    out = tmp_path / "set"
    shutil.copytree(base_set, out)
    return out


def _golden(out, *loss, cases="8"):
    return cli.main(["golden", "--out", str(out), "--loss", *loss, "--dtype", "float32",
                     "--cases", cases, "--jobs", "1", "--quiet"])


def _verify(out, *extra):
    return cli.main(["verify", str(out), "--quiet", "--jobs", "1", "--sample", "0", *extra])


def _listed(out):
    return manifest.read_manifest(out)


def _write_manifest(out, entries):
    """A manifest as `sha256sum` writes one (independent of the code under test)."""
    text = "".join(f"{h}  {rel}\n" for rel, h in sorted(entries.items()))
    (out / manifest.MANIFEST).write_text(text, encoding="ascii")


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _edit_case(path, line_no, edit):
    """Apply `edit` to the record on line `line_no` (1-based) and write the line back in
    canonical form; the rest of the bytes stay as they were."""
    lines = Path(path).read_text(encoding="ascii").splitlines(keepends=True)
    rec = json.loads(lines[line_no - 1])
    edit(rec)
    lines[line_no - 1] = fileformat.dumps(rec) + "\n"
    Path(path).write_text("".join(lines), encoding="ascii")
    return rec


def _flip_sum_hex(rec):
    """Change the first fraction digit of the expected "sum": still a canonical float32
    hex, no longer the right value."""
    arr = rec["expected"]["reductions"]["sum"]["hex"]
    h = arr[0]
    assert "." in h, h
    i = h.index(".") + 1
    arr[0] = h[:i] + ("3" if h[i] == "1" else "1") + h[i + 1:]


def _rehash(out, rel):
    """Make the manifest vouch for the file's current bytes (what an attacker or a careless
    `sha256sum > MANIFEST.sha256` would do)."""
    entries = _listed(out)
    entries[rel] = _sha(out / rel)
    _write_manifest(out, entries)


def _one_error_line(err, cmd):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lossref {cmd}: error: ") and "Traceback" not in err
    return lines[0]


# --- 1. golden never blesses a file it has not written or checked against the manifest ---------


def test_golden_does_not_bless_a_corrupted_file_outside_its_plan(tmp_path, capsys):
    """The reported case: a corrupted huber file in a copy of the canonical set survives a
    golden run for another loss; the manifest keeps its old hash and verify still fails."""
    out = tmp_path / "v"
    shutil.copytree(CANON, out)
    before = _listed(out)
    _edit_case(out / HUBER, 4, _flip_sum_hex)
    assert _verify(out) == 1
    capsys.readouterr()
    assert cli.main(["golden", "--out", str(out), "--loss", "mean_squared_error", "--dtype",
                     "float32", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert f"{HUBER}: SHA-256 differs from MANIFEST.sha256" in captured.err
    assert "1 already complete" in captured.out  # MSE matched its manifest line
    assert _listed(out) == before  # huber's old line kept, nothing rehashed
    assert _verify(out) == 1
    assert f"FAIL {HUBER}: SHA-256 differs" in capsys.readouterr().err


def test_golden_regenerates_a_corrupted_file_of_its_plan(vset, base_set, capsys):
    """A file of the run whose bytes differ from its manifest line is generated again,
    not skipped as "complete"."""
    _edit_case(vset / HUBER, 3, _flip_sum_hex)
    assert _golden(vset, "huber") == 0
    assert "1 file(s) written, 0 already complete" in capsys.readouterr().out
    assert (vset / HUBER).read_bytes() == (base_set / HUBER).read_bytes()
    assert _listed(vset) == _listed(base_set)
    assert _verify(vset) == 0


def test_golden_without_a_manifest_lists_only_what_it_wrote(vset, capsys):
    """No manifest: nothing on disk is vouched for. The run's files are generated again;
    a file outside the run is not added, and golden says so (exit 1)."""
    (vset / manifest.MANIFEST).unlink()
    _edit_case(vset / HUBER, 2, _flip_sum_hex)
    assert _golden(vset, "mean_squared_error") == 1
    captured = capsys.readouterr()
    assert "1 file(s) written, 0 already complete" in captured.out
    assert f"{HUBER}: not listed in MANIFEST.sha256 and not made by this run" in captured.err
    assert list(_listed(vset)) == [MSE]
    assert _verify(vset) == 1
    assert f"FAIL {HUBER}: not listed in MANIFEST.sha256" in capsys.readouterr().err


def test_golden_with_a_partial_manifest(vset, base_set, capsys):
    """A file the manifest does not list is never added by a run for another loss, and a
    run that covers it regenerates it (its bytes were never vouched for)."""
    entries = _listed(vset)
    del entries[HUBER]
    _write_manifest(vset, entries)
    assert _golden(vset, "mean_squared_error") == 1
    assert f"{HUBER}: not listed in MANIFEST.sha256" in capsys.readouterr().err
    assert HUBER not in _listed(vset)
    assert _golden(vset, "huber") == 0
    assert "1 file(s) written, 0 already complete" in capsys.readouterr().out
    assert _listed(vset) == _listed(base_set)
    assert _verify(vset) == 0


def test_golden_with_a_listed_file_missing(vset, base_set, capsys):
    """A listed file that is missing keeps its line (verify fails) unless the run makes it."""
    (vset / HUBER).unlink()
    assert _golden(vset, "mean_squared_error") == 1
    assert f"{HUBER}: listed in MANIFEST.sha256 but missing" in capsys.readouterr().err
    assert _listed(vset) == _listed(base_set)
    assert _verify(vset) == 1
    capsys.readouterr()
    assert _golden(vset, "huber") == 0
    assert (vset / HUBER).read_bytes() == (base_set / HUBER).read_bytes()
    assert _verify(vset) == 0


# --- 2. an empty or partial manifest does not turn hash checks off -------------------------------


def test_verify_rejects_an_empty_manifest(vset, capsys):
    (vset / manifest.MANIFEST).write_text("")
    assert _verify(vset) == 1
    err = capsys.readouterr().err
    assert "FAIL MANIFEST.sha256 lists no files" in err
    assert f"FAIL {HUBER}: not listed in MANIFEST.sha256" in err
    assert f"FAIL {MSE}: not listed in MANIFEST.sha256" in err


def test_verify_rejects_a_partial_manifest_and_a_stale_hash(vset, capsys):
    entries = _listed(vset)
    del entries[HUBER]
    _write_manifest(vset, entries)
    assert _verify(vset) == 1
    assert f"FAIL {HUBER}: not listed in MANIFEST.sha256" in capsys.readouterr().err
    entries[HUBER] = "0" * 64
    _write_manifest(vset, entries)
    assert _verify(vset) == 1
    assert f"FAIL {HUBER}: SHA-256 differs" in capsys.readouterr().err


def _empty(out):
    (out / manifest.MANIFEST).write_text("")


def _malformed(out):
    with open(out / manifest.MANIFEST, "a") as f:
        f.write("not a manifest line\n")


def _lists_missing(out):
    entries = _listed(out)
    entries["keras/huber/float64.jsonl"] = "0" * 64
    _write_manifest(out, entries)


def _unlisted(out):
    shutil.copy(out / HUBER, out / "keras" / "huber" / "float16.jsonl")


def _stale(out):
    _edit_case(out / HUBER, 2, _flip_sum_hex)


@pytest.mark.parametrize("damage, what", [
    (_empty, "lists no files"),
    (_malformed, "line 3 is not"),
    (_lists_missing, "keras/huber/float64.jsonl: listed in MANIFEST.sha256 but missing"),
    (_unlisted, "keras/huber/float16.jsonl: not listed in MANIFEST.sha256"),
    (_stale, f"{HUBER}: SHA-256 differs"),
])
def test_cite_refuses_a_set_its_manifest_does_not_name(vset, capsys, damage, what):
    assert cli.main(["cite", "--vectors", str(vset)]) == 0
    assert _sha(vset / manifest.MANIFEST) in capsys.readouterr().out
    damage(vset)
    assert cli.main(["cite", "--vectors", str(vset)]) == 2
    captured = capsys.readouterr()
    assert what in _one_error_line(captured.err, "cite") and captured.out == ""
    assert cli.main(["cite", "--bibtex", "--vectors", str(vset)]) == 2
    assert what in _one_error_line(capsys.readouterr().err, "cite")


# --- 3. every case's own consistency, on every run ----------------------------------------------


def test_verify_checks_every_case_hex_against_its_decimal(vset, capsys):
    """A wrong expected hex in a file whose manifest was rehashed: with no oracle sample,
    the hex/decimal check alone finds it, names the line, and the oracle then confirms."""
    rec = _edit_case(vset / HUBER, 6, _flip_sum_hex)
    _rehash(vset, HUBER)
    assert _verify(vset) == 1
    err = capsys.readouterr().err
    assert (f"FAIL {HUBER}: line 6 (case {rec['id']}): expected.reductions.sum[0]: hex "
            f"{rec['expected']['reductions']['sum']['hex'][0]} is not the float32 rounding of "
            "its decimal") in err
    assert "the oracle gives" in err  # the suspect case was re-derived despite --sample 0


def test_verify_checks_every_case_decimal_against_its_hex(vset, capsys):
    def edit(rec):
        d = rec["expected"]["per_sample"]["decimal"]
        d[0] = d[0][:2] + ("1" if d[0][2] != "1" else "2") + d[0][3:]  # second digit

    rec = _edit_case(vset / MSE, 5, edit)
    _rehash(vset, MSE)
    assert _verify(vset) == 1
    err = capsys.readouterr().err
    assert f"FAIL {MSE}: line 5 (case {rec['id']}): expected.per_sample[0]: hex" in err


def test_verify_checks_ids_shapes_and_categories_on_every_case(vset, capsys):
    lines = (vset / MSE).read_text().splitlines(keepends=True)
    first = json.loads(lines[1])
    _edit_case(vset / MSE, 4, lambda r: r.__setitem__("id", first["id"]))
    _edit_case(vset / MSE, 6, lambda r: r["tags"].insert(0, "misc"))
    _edit_case(vset / MSE, 7, lambda r: r["expected"]["per_sample"]["hex"].pop())
    _rehash(vset, MSE)
    assert _verify(vset) == 1
    err = capsys.readouterr().err
    assert f"{MSE}: line 4 (case {first['id']}): ids must increase" in err
    assert f"{MSE}: line 6" in err and "the first tag must be the category" in err
    assert f"{MSE}: line 7" in err and "expected.per_sample.hex: shape" in err


@pytest.mark.parametrize("dtype, decimal, hexes_ok, hexes_bad", [
    # plain values, and the sign of an underflow to zero (IEEE: it keeps the sign)
    ("float32", "1.000000000000000000000000000000000000000e+0", ["0x1p+0"], ["0x1.000002p+0", "-0x1p+0"]),
    ("float32", "-1.000000000000000000000000000000000000000e-60", ["-0x0p+0"], ["0x0p+0", "-0x1p-149"]),
    ("float64", "0", ["0x0p+0"], ["-0x0p+0", "0x1p-1074"]),
    ("float16", "nan", ["nan"], ["inf", "0x0p+0"]),
    ("bfloat16", "inf", ["inf"], ["-inf", "nan", "0x1.fep+127"]),
    ("float16", "-inf", ["-inf"], ["inf"]),
    # subnormals: float16's smallest is 2**-24; just above half of it rounds up
    ("float16", "5.960464477539062500000000000000000000000e-8", ["0x1p-24"], ["0x0p+0"]),
    ("float16", "2.980232238769531250000000000000000000001e-8", ["0x1p-24"], ["0x0p+0"]),
    ("float16", "2.980232238769531249999999999999999999999e-8", ["0x0p+0"], ["0x1p-24"]),
    # overflow: float16's largest is 65504, values from 65520 on round to inf
    ("float16", "6.551900000000000000000000000000000000000e+4", ["0x1.ffcp+15"], ["inf"]),
    ("float16", "6.552100000000000000000000000000000000000e+4", ["inf"], ["0x1.ffcp+15"]),
    ("float32", "1.000000000000000000000000000000000000000e+39", ["inf"], ["0x1.fffffep+127"]),
    ("float64", "1.797693134862315807937289714053034150800e+308", ["inf"], ["0x1.fffffffffffffp+1023"]),
    # just above a float32 tie: binary64 rounds the decimal onto the tie (1 + 2**-24),
    # where ties-to-even would give 1; the decimal itself rounds up
    ("float32", "1.000000000000000000000000000000000000001e+0", ["0x1p+0"], ["0x1.000002p+0"]),
    ("float32", "1.000000059604644775390625000000000000001e+0", ["0x1.000002p+0"], ["0x1p+0"]),
    ("bfloat16", "1.003906250000000000000000000000000000001e+0", ["0x1.02p+0"], ["0x1p+0"]),
    # a decimal that is a tie itself: the exact value lies within half a last digit of
    # it, on either side, so both neighbours are correct roundings
    ("float32", "1.000000059604644775390625000000000000000e+0", ["0x1p+0", "0x1.000002p+0"],
     ["0x1.000004p+0"]),
])
def test_decimal_and_hex_agreement(dtype, decimal, hexes_ok, hexes_bad):
    fmt = FORMATS[dtype]
    for h in hexes_ok:
        assert fileformat.decimal_mismatches([decimal], [h], fmt) == [], (decimal, h)
    for h in hexes_bad:
        assert fileformat.decimal_mismatches([decimal], [h], fmt) == [0], (decimal, h)


def test_every_case_of_the_canonical_set_passes_the_value_checks():
    """The check accepts the real set, where some values have a 40-digit decimal within
    half a last digit of a rounding boundary (rounding the decimal alone would reject
    their right hex)."""
    for rel in manifest.vector_files(CANON):
        lines = [json.loads(x) for x in (CANON / rel).read_text().splitlines()]
        prov = lines[0]["provenance"]
        for rec in lines[1:]:
            assert fileformat.check_values(rec, prov) == [], (rel, rec["id"])


# --- 4. user errors: one line, exit 2, before any long work -----------------------------------------


@pytest.mark.parametrize("argv, what", [
    (["verify", "--sample", "-1"], "--sample must be >= 0"),
    (["verify", "--jobs", "0"], "--jobs must be >= 1"),
    (["verify", "--jobs", "-3"], "--jobs must be >= 1"),
    (["golden", "--cases", "0", "--out", "{tmp}/o"], "--cases must be >= 1"),
    (["golden", "--jobs", "0", "--out", "{tmp}/o"], "--jobs must be >= 1"),
])
def test_bad_options(capsys, tmp_path, argv, what):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    assert what in _one_error_line(capsys.readouterr().err, argv[0])
    assert not any(tmp_path.iterdir())


def test_paths_that_are_not_a_set(vset, tmp_path, capsys):
    a_file = vset / MSE
    assert cli.main(["verify", str(a_file), "--quiet"]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys.readouterr().err, "verify")
    assert cli.main(["golden", "--out", str(a_file), "--loss", "huber", "--quiet"]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys.readouterr().err, "golden")
    assert cli.main(["cite", "--vectors", str(a_file)]) == 2
    _one_error_line(capsys.readouterr().err, "cite")
    # a manifest that cannot be written: found before anything is generated
    out = tmp_path / "fresh"
    (out / manifest.MANIFEST).mkdir(parents=True)
    assert _golden(out, "huber") == 2
    assert "MANIFEST.sha256: is not a regular file" in _one_error_line(capsys.readouterr().err, "golden")
    assert manifest.vector_files(out) == []


@pytest.mark.parametrize("rel", [HUBER, MSE])
def test_an_unreadable_vector_file(vset, capsys, rel):
    """A folder where a vector file should be (reading it fails as a file without read
    permission would, which root cannot simulate with chmod)."""
    (vset / rel).unlink()
    (vset / rel).mkdir()
    before = _listed(vset)
    for argv in (["verify", str(vset), "--quiet"], ["cite", "--vectors", str(vset)],
                 ["golden", "--out", str(vset), "--loss", "huber", "--dtype", "float32",
                  "--cases", "8", "--quiet"]):
        assert cli.main(argv) == 2
        line = _one_error_line(capsys.readouterr().err, argv[0])
        assert f"{rel}: cannot read" in line
    assert _listed(vset) == before and (vset / rel).is_dir()


def test_a_vector_file_without_read_permission(vset, capsys, monkeypatch):
    real_open = open

    def no_permission(path, *a, **k):
        if str(path).endswith(HUBER):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(manifest, "open", no_permission, raising=False)
    assert cli.main(["verify", str(vset), "--quiet"]) == 2
    assert f"{HUBER}: cannot read: Permission denied" in _one_error_line(capsys.readouterr().err, "verify")


def test_a_folder_without_read_permission(vset, capsys, monkeypatch):
    """A folder of the set that cannot be listed is an error, not a folder to skip (its
    files would vanish from the set without a word)."""
    real_scandir = os.scandir
    locked = vset / "keras" / "huber"

    def no_permission(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", no_permission)
    for argv in (["verify", str(vset), "--quiet"], ["cite", "--vectors", str(vset)],
                 ["golden", "--out", str(vset), "--loss", "mean_squared_error", "--dtype",
                  "float32", "--cases", "8", "--quiet"]):
        assert cli.main(argv) == 2
        line = _one_error_line(capsys.readouterr().err, argv[0])
        assert f"{locked}: cannot read the folder: Permission denied" in line


# --- 4. Ctrl-C --------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupted_golden_leaves_a_set_that_verifies(tmp_path, jobs):
    """SIGINT to the process group (what Ctrl-C sends) once the first file is written: exit
    130, one line, no traceback from the parent or its workers, no temporary file, and
    a manifest that lists exactly the whole files on disk."""
    out = tmp_path / "set"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "reference"))
    rc, _, err = interrupt_when(["golden", "--out", out, "--dtype", "float32", "float64", "--jobs",
                                 jobs, "--quiet"], lambda: manifest.vector_files(out), env, 0.5)
    assert rc == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "lossref golden: interrupted"
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    on_disk = manifest.vector_files(out)
    assert on_disk and sorted(_listed(out)) == on_disk
    assert _verify(out) == 0
