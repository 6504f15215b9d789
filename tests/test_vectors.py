"""Golden vectors: determinism, format, manifest, verify, load, example, citation.

The committed canonical set (spec/vectors) is checked against the format, regenerated in
part byte for byte, re-checked at twice the oracle's final precision and, for mean
squared error, against an independent computation in rational arithmetic.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import random
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest

import lossref
from lossref import cli, formats
from lossref.oracle import _decimal
from lossref.vectors import domains, fileformat, generate, manifest, targets
from lossref.vectors._rng import Stream, key_state

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "spec" / "vectors"
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _set_files():
    """The Keras files of the set (the torch files: tests/test_torch_vectors_diff.py)."""
    return [f for f in manifest.vector_files(SET) if f.startswith("keras/")]


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="ascii").splitlines()]


def _small_set(tmp_path, losses=("mean_absolute_error", "huber"), dtypes=("float16", "float64"),
               cases=6):
    out = tmp_path / "set"
    rep = generate.golden(out, losses=list(losses), dtypes=list(dtypes), cases=cases, jobs=1,
                          progress=False)
    assert not rep.failed
    return out


# --- the random stream ---------------------------------------------------------------------------


def test_stream_is_pcg64_xsl_rr_seeded_from_sha256():
    """Raw words equal an independent PCG64 (XSL-RR 128/64) started from the SHA-256 halves."""
    key = "lossref-golden/0/keras/huber/float32/7/0"
    digest = hashlib.sha256(key.encode()).digest()
    state, inc = int.from_bytes(digest[:16], "big"), int.from_bytes(digest[16:], "big") | 1
    assert key_state(key) == (state, inc)
    mult, m128, m64 = 0x2360ED051FC65DA44385DF649FCCF645, (1 << 128) - 1, (1 << 64) - 1
    want = []
    for _ in range(6):
        state = (state * mult + inc) & m128
        x, rot = ((state >> 64) ^ state) & m64, state >> 122
        want.append(((x >> rot) | (x << ((-rot) & 63))) & m64)
    assert [int(v) for v in Stream(key).raw(6)] == want
    # uniform: the top 53 bits of the next word, exactly
    s = Stream(key)
    s.raw(6)
    w = int(Stream(key).raw(7)[6])
    assert s.uniform(1)[0] == (w >> 11) / 2.0 ** 53


def test_stream_mappings_stay_in_range():
    s = Stream("ranges")
    ints = s.integers(2000, -3, 4)
    assert ints.min() == -3 and ints.max() == 3
    lu = s.log_uniform(2000, -100, 13)
    assert lu.min() >= 2.0 ** -100 and lu.max() < 2.0 ** 14
    assert sorted(s.permutation(9).tolist()) == list(range(9))
    with pytest.raises(ValueError, match="hi - lo"):
        s.integers(1, 5, 5)


# --- hex encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (3.0, "0x1.8p+1"), (1.0, "0x1p+0"), (2.0 ** -24, "0x1p-24"), (-0.0, "-0x0p+0"), (0.0, "0x0p+0"),
    (5e-324, "0x0.0000000000001p-1022"), (float("inf"), "inf"), (float("-inf"), "-inf"),
    (float("nan"), "nan"), (0.1, "0x1.999999999999ap-4"), (65504.0, "0x1.ffcp+15"),
])
def test_hex_text(value, text):
    assert targets.hexf(value) == text
    assert fileformat.HEX_RE.match(text)
    back = float.fromhex(text)
    assert (math.isnan(back) and math.isnan(value)) or (back == value and
                                                          math.copysign(1, back) == math.copysign(1, value))


def test_hex_round_trips_every_format():
    rng = np.random.default_rng(5)
    raw = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-40, 40, 200),
                          [5e-324, -5e-324, 2.0 ** -1022, 1.7e308, 6e-8, 1e-45]])
    for dt in DTYPES:
        v = formats.round_array(raw, dt)
        for x in v:
            h = targets.hexf(x)
            assert fileformat.HEX_RE.match(h), h
            assert float.fromhex(h) == x


# --- determinism ---------------------------------------------------------------------------------


def _regen_args(rel):
    return _lines(SET / rel)[0]["provenance"]


@pytest.mark.parametrize("rel", ["keras/mean_absolute_error/float16.jsonl",
                                 "keras/huber/bfloat16.jsonl",
                                 "keras/mean_squared_error/float32.jsonl"])
def test_regenerating_a_committed_file_gives_the_same_bytes(rel):
    prov = _regen_args(rel)
    if (prov["lossref"], prov["spec"]) != (lossref.__version__, lossref.SPEC_VERSION):
        pytest.skip(f"{rel} was made by lossref {prov['lossref']}; regenerate the set")
    data = generate.render_file(prov["loss"], prov["dtype"], prov["cases"], prov["seed"],
                                prov["dialect"])
    assert data == (SET / rel).read_bytes()


def test_regenerating_in_a_fresh_process_gives_the_same_bytes(tmp_path):
    """The command of the provenance record, in a new interpreter with another hash seed."""
    rel = "keras/mean_absolute_percentage_error/float64.jsonl"
    prov = _regen_args(rel)
    argv = prov["command"].split()[1:]
    argv[argv.index("DIR")] = str(tmp_path)
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT / "reference"))
    r = subprocess.run([sys.executable, "-m", "lossref.cli", *argv, "--jobs", "1", "--quiet"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / rel).read_bytes() == (SET / rel).read_bytes()


def test_jobs_do_not_change_bytes(tmp_path):
    a = generate.golden(tmp_path / "a", losses=["log_cosh", "huber"], dtypes=["float32", "float16"],
                        cases=5, jobs=1, progress=False)
    b = generate.golden(tmp_path / "b", losses=["log_cosh", "huber"], dtypes=["float32", "float16"],
                        cases=5, jobs=2, progress=False)
    assert len(a.written) == len(b.written) == 4 and not a.failed and not b.failed
    for rel in manifest.vector_files(tmp_path / "a"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "MANIFEST.sha256").read_bytes() == \
        (tmp_path / "b" / "MANIFEST.sha256").read_bytes()


def test_other_seed_other_cases():
    a = generate.render_file("huber", "float32", 3, 0)
    b = generate.render_file("huber", "float32", 3, 1)
    assert a != b and a.split(b"\n")[1] != b.split(b"\n")[1]
    # case i does not depend on the number of cases before it
    c = generate.render_file("huber", "float32", 2, 0)
    assert a.split(b"\n")[1:3] == c.split(b"\n")[1:3]


# --- golden: resume, atomic writes ---------------------------------------------------------------


def test_golden_skips_complete_files_and_redoes_broken_ones(tmp_path):
    out = _small_set(tmp_path, cases=4)
    files = manifest.vector_files(out)
    before = {f: (out / f).read_bytes() for f in files}
    rep = generate.golden(out, losses=["mean_absolute_error", "huber"], dtypes=["float16", "float64"],
                          cases=4, jobs=1, progress=False)
    assert rep.written == [] and sorted(rep.skipped) == files
    victim = out / files[0]
    victim.write_bytes(before[files[0]][:-30])  # truncated by something else
    rep = generate.golden(out, losses=["mean_absolute_error", "huber"], dtypes=["float16", "float64"],
                          cases=4, jobs=1, progress=False)
    assert [w[0] for w in rep.written] == [files[0]]
    assert victim.read_bytes() == before[files[0]]
    # other settings are not "complete": a different case count regenerates
    rep = generate.golden(out, losses=["huber"], dtypes=["float16"], cases=5, jobs=1, progress=False)
    assert [w[0] for w in rep.written] == ["keras/huber/float16.jsonl"]
    assert len(_lines(out / "keras/huber/float16.jsonl")) == 6


def test_interrupted_run_leaves_no_partial_file(tmp_path, monkeypatch):
    calls = []
    real = generate.render_file

    def flaky(loss, dtype, *a, **k):
        calls.append((loss, dtype))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is stopped while making the second file
        return real(loss, dtype, *a, **k)

    monkeypatch.setattr(generate, "render_file", flaky)
    out = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        generate.golden(out, losses=["huber"], dtypes=["float16", "float32"], cases=3, jobs=1,
                        progress=False)
    assert [p.name for p in (out / "keras" / "huber").iterdir()] == ["float16.jsonl"]
    monkeypatch.setattr(generate, "render_file", real)
    rep = generate.golden(out, losses=["huber"], dtypes=["float16", "float32"], cases=3, jobs=1,
                          progress=False)
    assert rep.skipped == ["keras/huber/float16.jsonl"]
    assert [w[0] for w in rep.written] == ["keras/huber/float32.jsonl"]


def test_atomic_write_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.jsonl"
    target.write_bytes(b"old\n")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        manifest.write_atomic(target, b"new content\n")
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl"]  # no temporary left


def test_golden_usage_errors(capsys, tmp_path):
    assert cli.main(["golden", "--loss", "nope", "--out", str(tmp_path)]) == 2
    assert "loss 'nope'" in capsys.readouterr().err
    assert cli.main(["golden", "--dtype", "int8", "--out", str(tmp_path)]) == 2
    assert "int8" in capsys.readouterr().err
    assert cli.main(["golden", "--cases", "0", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


# --- the committed set: format, manifest, contents ------------------------------------------------


def test_manifest_lists_every_file_with_its_sha256():
    listed = manifest.read_manifest(SET)
    assert sorted(listed) == manifest.vector_files(SET) and listed
    for rel, h in listed.items():
        assert hashlib.sha256((SET / rel).read_bytes()).hexdigest() == h
    text = (SET / "MANIFEST.sha256").read_text()
    assert all(re.fullmatch(r"[0-9a-f]{64}  (keras|torch|optax|tf)/[a-z0-9_]+/[a-z0-9]+\.jsonl", ln) for ln in text.splitlines())


def test_every_file_loads_and_passes_the_builtin_checks():
    """load() checks every line (fields, hex exact in the dtype, counts) and decodes it."""
    for rel in _set_files():
        vf = fileformat.load(SET / rel)
        prov = vf.provenance
        assert rel == f"{prov['dialect']}/{prov['loss']}/{prov['dtype']}.jsonl"
        assert [c.id for c in vf] == [fileformat.case_id(prov["dialect"], prov["loss"], prov["dtype"], i)
                                      for i in range(prov["cases"])]
        data = (SET / rel).read_text(encoding="ascii")
        assert data.endswith("\n")
        assert all(fileformat.dumps(json.loads(ln)) == ln for ln in data.splitlines())  # canonical


def test_schema_accepts_the_set():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SET / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for rel in _set_files():
        lines = _lines(SET / rel)
        for rec in [lines[0]] + lines[1::7]:  # every file's provenance and every 7th case
            errors = list(v.iter_errors(rec))
            assert not errors, f"{rel} {rec.get('id')}: {errors[0].message[:200]}"


@pytest.mark.parametrize("mutate, what", [
    (lambda r: r["inputs"]["y_true"]["hex"].__setitem__(0, "0x1.0p+0x"), "hex"),
    (lambda r: r.pop("tags"), "tags"),
    (lambda r: r.__setitem__("extra", 1), "extra"),
    (lambda r: r["expected"]["reductions"].pop("sum"), "sum"),
    (lambda r: r["expected"]["per_sample"]["decimal"].__setitem__(0, "1.5"), "decimal"),
])
def test_schema_and_builtin_checks_reject_broken_records(mutate, what):
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(json.loads((SET / "schema.json").read_text()))
    lines = _lines(SET / "keras/huber/float32.jsonl")
    rec = json.loads(json.dumps(lines[1]))
    assert not list(v.iter_errors(rec)) and not fileformat.check_case(rec, lines[0]["provenance"])
    mutate(rec)
    assert list(v.iter_errors(rec))
    assert fileformat.check_case(rec, lines[0]["provenance"])


def test_builtin_check_catches_what_a_schema_cannot():
    lines = _lines(SET / "keras/huber/float16.jsonl")
    prov, rec = lines[0]["provenance"], lines[2]
    bad = json.loads(json.dumps(rec))
    bad["inputs"]["y_pred"]["hex"].append("0x1p+0")  # one value too many for the shape
    assert "needs" in fileformat.check_case(bad, prov)[0]
    bad = json.loads(json.dumps(rec))
    bad["inputs"]["y_pred"]["hex"][0] = "0x1.0000000001p+0"  # not a float16 value
    assert "not exactly representable in float16" in fileformat.check_case(bad, prov)[0]


def test_set_contents_per_loss():
    by_loss = {}
    for rel in _set_files():
        _, loss, dt = rel[:-len(".jsonl")].split("/")
        by_loss.setdefault(loss, {})[dt] = _lines(SET / rel)
    total = sum((SET / rel).stat().st_size for rel in _set_files())
    assert total <= 15 * 2 ** 20, f"the set is {total / 2 ** 20:.1f} MB"
    for loss, files in by_loss.items():
        assert sorted(files) == sorted(DTYPES), loss
        target = targets.get_target("keras", loss)
        seen_params, tags, specials = {}, set(), set()
        for dt, lines in files.items():
            prov, cases = lines[0]["provenance"], lines[1:]
            assert len(cases) == prov["cases"] >= 60, (loss, dt)
            assert prov["spec"] == lossref.SPEC_VERSION and prov["lossref"] == lossref.__version__
            cats = {c["tags"][0] for c in cases}
            assert cats == {"random", "adversarial", "special", "edge-shape"}, (loss, dt, cats)
            assert any(c["inputs"]["sample_weight"] is None for c in cases)
            assert any(c["inputs"]["sample_weight"] is not None for c in cases)
            assert cases[0]["params"] == targets.json_params(target.defaults())
            for c in cases:
                assert set(c["expected"]["reductions"]) == set(targets.REDUCTIONS)
                assert max(len(c["inputs"]["y_pred"]["hex"]), 1) <= 1000
                for k, v in c["params"].items():
                    seen_params.setdefault(k, set()).add(json.dumps(v))
            tags |= {t for c in cases for t in c["tags"]}
            specials |= {h for c in cases if c["tags"][0] == "special"
                         for h in c["inputs"]["y_pred"]["hex"]}
        assert {"weighted", "zero-weights", "all-zero-weights"} <= tags, loss
        assert {"inf", "nan"} <= specials or {"-inf", "nan"} <= specials, loss
        for name, default in target.params:  # every value that changes the math occurs
            want = {json.dumps(targets.json_params({name: v})[name])
                    for v in domains.param_values(loss, name, default)}
            assert want <= seen_params.get(name, set()), (loss, name, want - seen_params.get(name, set()))


def test_set_covers_every_keras_loss():
    """Fails until the canonical set is regenerated after a loss joins the Keras dialect."""
    have = {rel.split("/")[1] for rel in _set_files()}
    assert have == set(targets.keras_targets())


# --- correctness of the expectations --------------------------------------------------------------


def _exacts(rec):
    """Exact objects of a case: per-sample (with its format) and each reduction."""
    fmt = formats.get_format(rec["dtype"])
    target = targets.get_target(rec["dialect"], rec["loss"])
    inp = rec["inputs"]
    arr = {k: None if inp[k] is None else fileformat.decode_array(inp[k], fmt) for k in inp}
    kw = targets.call_params(rec["params"])
    out = {}
    e = target.function.exact(arr["y_true"], arr["y_pred"],
                              **{k: v for k, v in kw.items() if k in target.function_params})
    out["per_sample"] = (e, e.dtype)
    for r in targets.REDUCTIONS:
        out[r] = (target.cls(reduction=r, dtype=fmt.name, **kw).exact(
            arr["y_true"], arr["y_pred"], sample_weight=arr["sample_weight"]), fmt)
    return out


def test_sample_is_correctly_rounded_at_twice_the_final_precision():
    recs = []
    for rel in _set_files():
        recs += [(rel, r) for r in _lines(SET / rel)[1:]]
    rng = random.Random(20240611)
    sample = rng.sample(recs, 16)
    with np.errstate(all="ignore"):
        for rel, rec in sample:
            for name, (e, fmt) in _exacts(rec).items():
                e.round(fmt)
                p_round = e.final_prec
                e.decimal(40)  # on balls decided apart from the rounding, at its own precision
                prec = 2 * max(p_round, e.final_prec)
                values = np.asarray(e.values(prec), dtype=object).ravel()
                stored = rec["expected"]["per_sample"] if name == "per_sample" else \
                    rec["expected"]["reductions"][name]
                with mpmath.workprec(prec):
                    hexes = [targets.hexf(formats.round_mpf(v, fmt)) for v in values]
                    decs = [_decimal(v, 40) for v in values]
                assert hexes == stored["hex"], (rec["id"], name)
                assert decs == stored["decimal"], (rec["id"], name)


def _round_fraction(x: Fraction, fmt) -> float:
    """Nearest-even rounding of a rational into `fmt`, in integers (independent of lossref)."""
    if x == 0:
        return 0.0
    sign, a = (-1 if x < 0 else 1), abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    q = max(e, fmt.emin) - (fmt.precision - 1)
    m = a / Fraction(2) ** q
    n = m.numerator // m.denominator
    rem = m - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    if n * Fraction(2) ** q > Fraction(fmt.max):  # rounded past the largest finite value
        return sign * math.inf
    return sign * math.ldexp(n, q)


def _decimal_fraction(x: Fraction) -> str:
    """40 significant digits, halfway cases away from zero (README: the decimal fields)."""
    if x == 0:
        return "0"
    ctx = Context(prec=40, rounding=ROUND_HALF_UP)
    d = ctx.divide(Decimal(x.numerator), Decimal(x.denominator))  # exact operands, one rounding
    sign, digits, exp = d.as_tuple()
    s = "".join(map(str, digits)).ljust(40, "0")
    return f"{'-' if sign else ''}{s[0]}.{s[1:]}e{exp + len(digits) - 1:+d}"


def _rank_fix(a: np.ndarray, b: np.ndarray):
    """Keras's squeeze-or-expand, written out again for object arrays."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[..., None]) if b.ndim == 1 else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[..., None], b) if a.ndim == 1 else (a, b[..., 0])
    return a, b


def test_mean_squared_error_cases_agree_with_rational_arithmetic():
    """Per-sample means and every Keras reduction of finite MSE cases, recomputed with
    fractions and rounded by integer arithmetic: no mpmath, no lossref reduction code."""
    checked = 0
    for dt in DTYPES:
        fmt = formats.get_format(dt)
        for rec in _lines(SET / f"keras/mean_squared_error/{dt}.jsonl")[1:]:
            inp = rec["inputs"]
            vals = {k: None if inp[k] is None else
                    np.array([float.fromhex(h) for h in inp[k]["hex"]]).reshape(inp[k]["shape"])
                    for k in inp}
            t, p, sw = vals["y_true"], vals["y_pred"], vals["sample_weight"]
            if not np.all(np.isfinite(t)) or not np.all(np.isfinite(p)) or t.shape[-1] == 0:
                continue
            sq = np.vectorize(lambda a, b: (Fraction(a) - Fraction(b)) ** 2, otypes=[object])(t, p)
            per = np.empty(sq.shape[:-1], dtype=object)
            for idx in np.ndindex(per.shape):
                per[idx] = sum(sq[idx], Fraction(0)) / sq.shape[-1]
            ps = rec["expected"]["per_sample"]
            assert [targets.hexf(_round_fraction(v, formats.get_format(ps["dtype"])))
                    for v in per.ravel()] == ps["hex"], rec["id"]
            assert [_decimal_fraction(v) for v in per.ravel()] == ps["decimal"], rec["id"]
            values, w = per, None
            if sw is not None:
                w = np.vectorize(Fraction, otypes=[object])(sw)
                values, w = _rank_fix(values, w)
                values = values * w
            values = np.asarray(values, dtype=object)
            early = values.shape in ((), (0,))
            total = sum(values.ravel(), Fraction(0))
            n = values.size
            red = {"none": values, "sum": total,
                   "sum_over_batch_size": total / n if n else Fraction(0)}
            red["mean"] = red["sum_over_batch_size"]
            wsum = None if w is None else sum(np.asarray(w, dtype=object).ravel(), Fraction(0))
            red["mean_with_sample_weight"] = red["mean"] if w is None else (
                total / wsum if wsum else Fraction(0))
            for r, want in red.items():
                got = rec["expected"]["reductions"][r]
                arr = values if (early or r == "none") else np.asarray(want, dtype=object)
                assert [targets.hexf(_round_fraction(v, fmt)) for v in np.ravel(arr)] == got["hex"], \
                    (rec["id"], r)
                assert [_decimal_fraction(v) for v in np.ravel(arr)] == got["decimal"], (rec["id"], r)
            checked += 1
    assert checked >= 150


# --- verify --------------------------------------------------------------------------------------


def test_verify_passes_on_the_committed_set(capsys):
    assert cli.main(["verify", "--quiet", "--sample", "1", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert ": OK" in out and f"{len(manifest.vector_files(SET))} file(s)" in out


def _flip_hex_digit(line: str, field: str) -> str:
    """The same line with the last hex digit of one value changed (an input or the
    expected "sum"), the rest of the bytes as written."""
    rec = json.loads(line)
    arr = rec["inputs"]["y_pred"]["hex"] if field == "inputs" else \
        rec["expected"]["reductions"]["sum"]["hex"]
    i = next(k for k, h in enumerate(arr) if "." in h)  # a value with fraction digits
    h = arr[i]
    pos = h.index("p") - 1
    arr[i] = h[:pos] + ("2" if h[pos] != "2" else "4") + h[pos + 1:]
    return fileformat.dumps(rec) + "\n"


@pytest.mark.parametrize("field", ["expected", "inputs"])
def test_verify_fails_on_one_flipped_hex_digit(tmp_path, capsys, field):
    out = _small_set(tmp_path, dtypes=("float64",))
    rel = "keras/huber/float64.jsonl"
    lines = (out / rel).read_text().splitlines(keepends=True)
    k = 3  # the case on line 4
    cid = json.loads(lines[k])["id"]
    lines[k] = _flip_hex_digit(lines[k], field)
    (out / rel).write_text("".join(lines))
    assert cli.main(["verify", str(out), "--quiet", "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{rel}: SHA-256 differs" in err
    assert f"{rel}: line 4 (case {cid})" in err and "the oracle gives" in err


def test_verify_fails_on_a_truncated_file(tmp_path, capsys):
    out = _small_set(tmp_path)
    rel = "keras/mean_absolute_error/float16.jsonl"
    data = (out / rel).read_bytes()
    lines = data.split(b"\n")
    last_complete = json.loads(lines[3])["id"]
    (out / rel).write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][:50])
    assert cli.main(["verify", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{rel}: truncated: line 5 is incomplete" in err and last_complete in err
    # cut at a line boundary: the case count and the hash tell
    (out / rel).write_bytes(b"\n".join(lines[:4]) + b"\n")
    assert cli.main(["verify", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{rel}: 3 cases, the provenance record says 6" in err and "SHA-256 differs" in err


def test_verify_fails_on_a_missing_or_unlisted_file(tmp_path, capsys):
    out = _small_set(tmp_path)
    rel = "keras/huber/float64.jsonl"
    moved = (out / rel).read_bytes()
    (out / rel).unlink()
    assert cli.main(["verify", str(out), "--quiet"]) == 1
    assert f"FAIL {rel}: listed in MANIFEST.sha256 but missing" in capsys.readouterr().err
    (out / rel).write_bytes(moved)
    (out / "keras" / "huber" / "float32.jsonl").write_bytes(moved)
    assert cli.main(["verify", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "keras/huber/float32.jsonl: not listed in MANIFEST.sha256" in err
    (out / "keras" / "huber" / "float32.jsonl").unlink()
    (out / "MANIFEST.sha256").unlink()
    assert cli.main(["verify", str(out), "--quiet"]) == 1
    assert "no MANIFEST.sha256" in capsys.readouterr().err


def test_verify_all_and_usage(tmp_path, capsys):
    out = _small_set(tmp_path, losses=("huber",), dtypes=("bfloat16",), cases=3)
    assert cli.main(["verify", str(out), "--all", "--quiet"]) == 0
    assert "3 case(s), 3 re-derived" in capsys.readouterr().out
    assert cli.main(["verify", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "no such folder" in capsys.readouterr().err


# --- load, example, fresh specs, citation ----------------------------------------------------------


def test_load_decodes_arrays():
    rel = "keras/huber/float16.jsonl"
    lines = _lines(SET / rel)
    vf = fileformat.load("keras/huber/float16")
    assert vf.path == SET / rel and len(vf) == len(lines) - 1
    for case, rec in zip(vf, lines[1:]):
        assert case.id == rec["id"] and case.y_true.dtype == np.float16
        want = np.array([float.fromhex(h) for h in rec["inputs"]["y_pred"]["hex"]])
        assert np.array_equal(case.y_pred.astype(np.float64).ravel(), want, equal_nan=True)
        assert case.y_pred.shape == tuple(rec["inputs"]["y_pred"]["shape"])
        got = case.reductions["sum"].astype(np.float64).ravel()
        want = np.array([float.fromhex(h) for h in rec["expected"]["reductions"]["sum"]["hex"]])
        assert np.array_equal(got, want, equal_nan=True)
        assert case.decimal["sum"].ravel().tolist() == rec["expected"]["reductions"]["sum"]["decimal"]
    assert lossref.vectors.load(SET / rel).cases[3].id == vf.cases[3].id
    with pytest.raises(FileNotFoundError, match="keras/nothing/float32"):
        fileformat.load("keras/nothing/float32")


def test_load_rejects_truncated_file(tmp_path):
    data = (SET / "keras/huber/float32.jsonl").read_bytes()
    bad = tmp_path / "t.jsonl"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        fileformat.load(bad)
    bad.write_bytes(b"\n".join(data.split(b"\n")[:5]) + b"\n")
    with pytest.raises(ValueError, match="4 cases, the provenance record says"):
        fileformat.load(bad)


def _example_module():
    spec = importlib.util.spec_from_file_location("example_check", SET / "example_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_check_runs_with_numpy_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-I", str(SET / "example_check.py"),
                        str(SET / "keras/mean_squared_error/float32.jsonl"), "--ulps", "1"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\d+ cases, 0 failures$", r.stdout, re.M)


def test_example_check_catches_a_wrong_convention():
    ex = _example_module()
    path = SET / "keras/mean_squared_error/bfloat16.jsonl"

    def summed(t, p):  # per-sample sum instead of mean
        return np.sum((np.asarray(t, np.float64) - np.asarray(p, np.float64)) ** 2, axis=-1)

    failures = ex.check(str(path), per_sample=summed, ulps=1)
    assert failures and failures[0].startswith("keras/mean_squared_error/bfloat16/")
    assert not ex.check(str(path), per_sample=ex.numpy_mean_squared_error, ulps=1)
    # the step metric: adjacent bfloat16 values are one step apart, ±0 are none, NaN/NaN none
    assert ex.steps([1.0, 0.0, np.nan], [1.0 + 2 ** -7, -0.0, np.nan], "bfloat16").tolist() == [1, 0, 0]
    assert ex.steps([np.inf], [3.0], "float16").tolist() == [np.inf]


def test_fresh_specs_are_new_and_exact():
    specs = generate.fresh_specs(3, seed=4, losses=["huber"], dtypes=["float16"])
    assert [s["id"] for s in specs] == [f"keras-fresh4/huber/float16/{n:04d}" for n in (10, 20, 30)]
    assert specs == generate.fresh_specs(3, seed=4, losses=["huber"], dtypes=["float16"])
    canon = _lines(SET / "keras/huber/float16.jsonl")[1]["inputs"]
    assert specs[0]["inputs"] != canon
    for s in specs:
        assert s["reductions"] == list(targets.REDUCTIONS)
        v = np.array([float.fromhex(h) for h in s["inputs"]["y_pred"]["hex"]])
        assert np.array_equal(formats.round_array(v, "float16"), v, equal_nan=True)


def test_adversarial_draws_reach_the_edges():
    """Domains concentrate values where losses break (not uniform over the domain)."""
    def draws(kind, dtype, params, n=80):
        out = []
        for i in range(n):
            d = domains.Draw(Stream(f"edge/{kind}/{i}"), formats.get_format(dtype), "adversarial", params)
            out.append(domains.draw_inputs(d, kind))
        return out

    p = np.concatenate([x[1].ravel() for x in draws("binary", "float64", {"from_logits": False})])
    assert p.min() >= 0 and (p < 1e-25).any() and (p == 1).any() and ((p > 1 - 1e-10) & (p < 1)).any()
    z = np.concatenate([x[1].ravel() for x in draws("binary", "float32", {"from_logits": True})])
    assert (np.abs(z) < 1e-25).any() and (np.abs(z) > 5e3).any()
    r = np.concatenate([x[0].ravel() for x in draws("real", "float32", {})])
    tiny = formats.FLOAT32.tiny
    assert ((np.abs(r) < tiny) & (r != 0)).any() and (np.abs(r) > 1e25).any()
    s = draws("sparse", "float16", {"from_logits": False, "ignore_class": -1})
    assert any((y == -1).all() and y.size for y, _ in s)  # all masked
    for dt in DTYPES:
        for t, q in draws("categorical", dt, {"from_logits": False}, 20):
            assert np.array_equal(formats.round_array(q, dt), q, equal_nan=True)


def test_kind_guess_for_unknown_losses():
    assert domains.kind_of("my_sparse_thing", ["from_logits"]) == "sparse"
    assert domains.kind_of("binary_new", ["from_logits"]) == "binary"
    assert domains.kind_of("new_ce", ["from_logits"]) == "categorical"
    assert domains.kind_of("new_regression", []) == "real"
    assert domains.param_values("huber", "delta", 1.0)[0] == 1.0
    assert domains.param_values("x", "unknown", 3) == (3,)


def test_cite(capsys):
    assert cli.main(["cite"]) == 0
    out = capsys.readouterr().out
    assert f"version {lossref.__version__}" in out and f"numeric spec version {lossref.SPEC_VERSION}" in out
    assert cli.main(["cite", "--bibtex", "--vectors"]) == 0
    bib = capsys.readouterr().out
    h = hashlib.sha256((SET / "MANIFEST.sha256").read_bytes()).hexdigest()
    assert bib.startswith("@software{lossref,") and h in bib and bib.count("{") == bib.count("}")
    assert cli.main(["cite", "--vectors", str(SET.parent)]) == 2


def test_citation_cff_agrees_with_the_package():
    text = (ROOT / "CITATION.cff").read_text()
    assert re.search(r'^cff-version: 1\.2\.0$', text, re.M)
    assert re.search(rf'^version: "{re.escape(lossref.__version__)}"$', text, re.M)
    assert f"numeric spec version {lossref.SPEC_VERSION}" in " ".join(text.split())
    from lossref.vectors import cite
    assert f'title: "{cite.TITLE}"' in text and cite.AUTHORS in text and cite.LICENSE in text


def test_verify_without_ml_dtypes_checks_bytes_and_skips_bfloat16_rederivation(monkeypatch, tmp_path):
    import importlib
    V = importlib.import_module("lossref.vectors.verify")
    root = fileformat.canonical_dir()
    monkeypatch.setattr(formats, "_ml_dtypes", None)
    rep = V.verify(root, sample=1)
    assert rep.ok, rep.problems[:3]
    assert any("bfloat16" in n and "ml_dtypes" in n for n in rep.notes)
    # one case of every file but the bfloat16 ones (some torch functions have no float16 file)
    assert rep.rederived == len([f for f in manifest.vector_files(root) if not f.endswith("bfloat16.jsonl")])


def test_setup_cfg_installs_every_folder_of_the_canonical_set():
    """An installed (non-editable) package finds the set under <prefix>/share/lossref/vectors:
    setup.cfg must list each folder of spec/vectors in [options.data_files]."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    listed = {k.strip() for k in cfg["options.data_files"]}
    root = fileformat.canonical_dir()
    folders = {str(Path("share/lossref/vectors") / p.relative_to(root).parent)
               for p in root.rglob("*.jsonl")}
    assert folders <= listed, sorted(folders - listed)
    assert "share/lossref/vectors" in listed
