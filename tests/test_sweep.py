"""`lossref sweep`: every value of a 16-bit format (or a float32 grid) through a real
framework and the oracle.

The full 16-bit sweeps are Keras's mean_absolute_error over float16 (|p - 0| is exact, so
every value must be exact: max_ulp 0) and log_cosh over bfloat16 (its worst finite error
checked against an independent mpmath evaluation); the rest are small float32 grids. The
cache is checked the hard way: chunks removed, truncated, tampered with (also with their
checksum fixed, so that only the re-derived value can tell), and a run interrupted with
SIGINT and resumed; each time the report is the same bytes as a clean run's.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

from lossref import cli, formats
from lossref.diff import runner, sweep
from lossref.diff.compare import exact_from_decimal, value_status
from tests.support import interrupt_when

SPEC = Path(__file__).resolve().parent.parent / "spec" / "sweep.md"
FILES = ("sweep.json", "sweep.md")


def _needs_numpy_backend():
    if "numpy" not in runner.installed_backends():
        pytest.skip("the Keras numpy backend is not installed (pip install -e '.[test]')")


def _schema():
    text = SPEC.read_text(encoding="utf-8")
    return json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))


def _validate(doc):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, _schema())


def _run(capsys, *argv):
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _bytes(folder: Path):
    return {name: (folder / name).read_bytes() for name in FILES}


def _val(h: str) -> float:
    return math.nan if h == "nan" else float.fromhex(h)


def _mp_ulp_error(computed: float, exact: mpmath.mpf, fmt) -> float:
    """|c - x| / ulp(x), written out here (not formats.ulp_error) for a finite x."""
    f = formats.get_format(fmt)
    with mpmath.workprec(300):
        e = int(mpmath.floor(mpmath.log(abs(exact), 2))) if exact != 0 else f.emin
        ulp = mpmath.mpf(2) ** (max(e, f.emin) - f.precision + 1)
        return float(abs(mpmath.mpf(computed) - exact) / ulp)


# --- the pieces -------------------------------------------------------------------------------


def test_all_values_are_every_bit_pattern():
    for name, finite, nan in (("float16", 63488, 2046), ("bfloat16", 65280, 254)):
        v, n = sweep.all_values(name)
        assert n == {"patterns": 65536, "finite": finite, "inf": 2, "nan": nan}
        fin = v[:-3]
        assert fin.size == finite and np.all(np.diff(fin) >= 0)
        assert v[-3:][:2].tolist() == [-np.inf, np.inf] and np.isnan(v[-1])
        z = np.flatnonzero(fin == 0)  # both zeros, -0 first
        assert z.size == 2 and np.signbit(fin[z[0]]) and not np.signbit(fin[z[1]])
        assert np.array_equal(formats.round_array(fin, name), fin)  # every one a value of the format
        f = formats.get_format(name)
        assert f.min_subnormal in fin and f.max in fin and -f.max in fin


def test_grid_covers_both_signs_subnormals_and_switch_points():
    f = formats.get_format("float32")
    g = sweep.grid_values("float32", 1000, [1.0, -20.0])
    fin = g[np.isfinite(g)]
    assert np.array_equal(formats.round_array(fin, f), fin)
    assert (fin < 0).sum() >= 500 and (fin > 0).sum() >= 500
    assert f.min_subnormal in fin and -f.min_subnormal in fin and f.max in fin and f.tiny in fin
    assert ((np.abs(fin) < f.tiny) & (fin != 0)).sum() >= 10  # the subnormal binades
    one = np.float32(1)
    up, down = one, one
    for _ in range(sweep.NEIGHBOURS):
        up, down = np.nextafter(up, np.float32(2)), np.nextafter(down, np.float32(0))
        assert float(up) in fin and float(down) in fin
    assert -20.0 in fin and float(np.nextafter(np.float32(-20), np.float32(0))) in fin


def test_switch_points_follow_the_kind_and_the_parameters():
    plan = sweep.plan_sweep("keras", "huber", "float32", params=["delta=0.5"], points="100")
    pts = sweep.switch_points(plan)
    assert 0.5 in pts and -0.5 in pts and 1.0 in pts
    plan = sweep.plan_sweep("keras", "binary_crossentropy", "float32", points="100")
    pts = sweep.switch_points(plan)
    assert float(np.float32(1e-7)) in pts and float(np.float32(1 - 1e-7)) in pts
    plan = sweep.plan_sweep("torch", "binary_cross_entropy_with_logits", "float32", points="100")
    assert float(np.float32(math.log(formats.FLOAT32.max))) in sweep.switch_points(plan)


@pytest.mark.parametrize("text, fmt, value", [
    ("0x1p-3", "bfloat16", 0.125), ("0.125", "bfloat16", 0.125), ("-0", "float16", -0.0),
    ("65504", "float16", 65504.0), ("1e-3", "float32", None), ("inf", "float16", math.inf),
    ("0x1.ffcp+15", "float16", 65504.0), ("5.9604644775390625e-08", "float16", 2.0 ** -24),
])
def test_parse_fixed(text, fmt, value):
    if value is None:
        with pytest.raises(sweep.SweepError, match="not exactly a float32 value"):
            sweep.parse_fixed(text, fmt)
        return
    got = sweep.parse_fixed(text, fmt)
    assert got == value and math.copysign(1, got) == math.copysign(1, value)


@pytest.mark.parametrize("text, why", [
    ("0.1", "nearest: 0x1.9ap-4 = 0.10009765625"),
    ("0x1.0000001p0", "not exactly a bfloat16 value"),
    ("0x1.00000000000001p0", "not exactly a float64 value"),
    ("1e39", "beyond the largest finite bfloat16 value"),
    ("one", "cannot read"),
])
def test_parse_fixed_refuses(text, why):
    with pytest.raises(sweep.SweepError, match=re.escape(why)):
        sweep.parse_fixed(text, "bfloat16")


def _log_cosh_payload(cache_dir):
    """The oracle's results for every bfloat16 input of log_cosh (from a warm cache)."""
    plan = sweep.plan_sweep("keras", "log_cosh", "bfloat16")
    values, _ = sweep.all_values(plan.fmt)
    return plan, values, sweep.run_oracle(plan, values, sweep.ChunkCache(str(cache_dir)), map)


def test_classify_is_value_status(log_cosh):
    """The vectorised statuses and errors are compare.value_status's, element by element,
    on framework values scattered around the exact ones (0 to 9 ulps off, specials)."""
    plan, values, payload = _log_cosh_payload(log_cosh["cache"])
    f = formats.get_format(payload["dtype"])
    rng = np.random.default_rng(5)
    exact = np.array([_val(h) for h in payload["hex"]])
    c = exact.astype(np.float32)
    steps = rng.integers(-9, 10, exact.size)
    for k in range(1, 10):  # k ulps away in bfloat16, by bit patterns
        for sign in (1, -1):
            sel = steps == sign * k
            bits = c[sel].view(np.uint32).astype(np.int64) + sign * k * (1 << 16)
            c[sel] = np.clip(bits, 0, 2 ** 32 - 1).astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        c = c.astype(np.float64)
    c[rng.random(c.size) < 0.01] = np.inf
    c[rng.random(c.size) < 0.01] = np.nan
    c = formats.round_array(c, f)
    ulps, status = sweep.classify(c, payload, f, 4.0)
    pick = np.arange(0, values.size, 3)
    for i in pick:
        m = value_status(float(c[i]), exact_from_decimal(payload["decimal"][i]), exact[i], f, 4.0, typical=False)
        assert status[i] == m["status"], (i, values[i], c[i], m, ulps[i])
        if math.isinf(m["ulp"]):
            assert math.isinf(ulps[i])
        else:
            assert round(ulps[i], 4) == round(m["ulp"], 4), (i, c[i], m["ulp"], ulps[i])


# --- the cache ------------------------------------------------------------------------------------


def _spec():
    plan = sweep.plan_sweep("keras", "log_cosh", "bfloat16")
    values, _ = sweep.all_values(plan.fmt)
    return sweep.chunk_spec(plan, values[16000:16100])


def _entry(path):
    return json.loads(Path(path).read_text())


def _rewrite(path, entry, fix_sha=True):
    if fix_sha:
        entry["sha256"] = sweep._sha256(entry["payload"])
    Path(path).write_text(json.dumps(entry))


@pytest.mark.parametrize("damage, why", [
    ("truncate", "not valid JSON"),
    ("other key", "wrong key"),
    ("checksum", "checksum mismatch"),
    ("hex", "is not the rounding of"),
    ("length", "not 100 values"),
    ("consistent", "re-derived differs"),
    ("nan constant", "not valid JSON"),
])
def test_cache_entry_is_checked(tmp_path, damage, why):
    spec = _spec()
    warnings = []
    cache = sweep.ChunkCache(str(tmp_path), warn=warnings.append)
    payload = sweep.oracle_chunk(spec)
    cache.put(spec, payload)
    assert cache.get(spec) == payload and not warnings
    path = cache.path(sweep.chunk_key(spec))
    entry = _entry(path)
    if damage == "truncate":
        Path(path).write_bytes(Path(path).read_bytes()[:-40])
    elif damage == "other key":  # another chunk's entry copied over this one
        other = dict(spec, hex=spec["hex"][::-1])
        cache.put(other, sweep.oracle_chunk(other))
        Path(path).write_bytes(Path(cache.path(sweep.chunk_key(other))).read_bytes())
    elif damage == "checksum":
        entry["payload"]["decimal"][3] = entry["payload"]["decimal"][4]
        _rewrite(path, entry, fix_sha=False)
    elif damage == "hex":  # the checksum fixed: the rounding check must see it
        entry["payload"]["hex"][50] = entry["payload"]["hex"][60]
        _rewrite(path, entry)
    elif damage == "length":
        entry["payload"]["hex"].pop()
        entry["payload"]["decimal"].pop()
        _rewrite(path, entry)
    elif damage == "consistent":  # every value shifted, each still its decimal's rounding
        p = entry["payload"]
        p["hex"] = p["hex"][1:] + p["hex"][:1]
        p["decimal"] = p["decimal"][1:] + p["decimal"][:1]
        _rewrite(path, entry)
    elif damage == "nan constant":
        Path(path).write_text(Path(path).read_text().replace('"0x', 'NaN, "0x', 1))
    assert cache.get(spec) is None
    assert len(warnings) == 1 and why in warnings[0] and path in warnings[0]
    assert not os.path.exists(path)  # removed, so the next run recomputes it


def test_cache_key_covers_the_sweep():
    spec = _spec()
    keys = {sweep.chunk_key(spec)}
    for change in ({"fixed_hex": "0x1p+0"}, {"params": {"x": 1}}, {"dtype": "float16"},
                   {"hex": spec["hex"][:-1] + ["0x1p+0"]}, {"loss": "mean_squared_error"}):
        keys.add(sweep.chunk_key(dict(spec, **change)))
    assert len(keys) == 6


# --- user errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, why", [
    ([], "missing DIALECT"),
    (["caffe", "log_cosh", "--dtype", "bfloat16"], "dialect 'caffe' is not supported"),
    (["keras", "no_such_loss", "--dtype", "bfloat16"], "loss 'no_such_loss'"),
    (["keras", "log_cosh"], "--dtype is required"),
    (["keras", "log_cosh", "--dtype", "float7"], "--dtype: format 'float7'"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--points", "100"], "--points is for float32"),
    (["keras", "log_cosh", "--dtype", "float16", "--points", "100"], "--points is for float32"),
    (["keras", "log_cosh", "--dtype", "float32", "--points", "1"], "--points must be between"),
    (["keras", "log_cosh", "--dtype", "float32", "--points", "many"], "--points must be a whole number"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--fix", "y_true=0.1"], "not exactly a bfloat16 value"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--fix", "y_true"], "--fix expects NAME=VALUE"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--fix", "y_pred=1"], "is the input that varies"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--fix", "target=1"], "'target' is not an input"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--vary", "x"], "'x' is not an input"),
    (["keras", "huber", "--dtype", "bfloat16", "--param", "delta=[1, 2]"], "delta must be a real number"),
    (["keras", "huber", "--dtype", "bfloat16", "--param", "gamma=2"], "huber has no parameter 'gamma'"),
    (["keras", "categorical_crossentropy", "--dtype", "bfloat16"], "is not elementwise"),
    (["keras", "hinge", "--dtype", "bfloat16", "--vary", "y_true"], "batch-global"),
    (["torch", "ctc_loss", "--dtype", "float32"], "is not elementwise"),
    (["torch", "ctc_loss", "--dtype", "float16"], "not defined for float16"),
    (["torch", "mse_loss", "--dtype", "float16", "--backend", "numpy"], "torch runs on cpu only"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--backend", "cpu"], "Keras backends are"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--jobs", "-2"], "--jobs must be >= 0"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--jobs", "two"], "--jobs must be a whole number"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--timeout", "0"], "--timeout must be a positive"),
    (["keras", "log_cosh", "--dtype", "bfloat16", "--scheduler", "not an address"], "scheduler"),
])
def test_usage_errors_are_one_line(capsys, tmp_path, argv, why):
    rc, out, err = _run(capsys, "sweep", *argv, "--cache-dir", tmp_path / "cache")
    assert rc == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("lossref sweep: error: ") and why in err, err
    assert not (tmp_path / "cache").exists()


def test_out_that_is_a_file(capsys, tmp_path):
    _needs_numpy_backend()
    (tmp_path / "f").write_text("x")
    rc, out, err = _run(capsys, "sweep", "keras", "mean_absolute_error", "--dtype", "float16",
                        "--out", tmp_path / "f")
    assert rc == 2 and "exists and is not a folder" in err and err.count("\n") == 1


def test_usage_error_without_traceback():
    p = subprocess.run([sys.executable, "-m", "lossref.cli", "sweep", "keras", "log_cosh", "--dtype", "float16",
                        "--fix", "y_true=0.1"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr


# --- whole sweeps ---------------------------------------------------------------------------------


MAE = ["sweep", "keras", "mean_absolute_error", "--dtype", "float16"]


@pytest.fixture(scope="module")
def mae(tmp_path_factory):
    """keras mean_absolute_error over every float16 value: a clean run, two jobs."""
    _needs_numpy_backend()
    root = tmp_path_factory.mktemp("sweep-mae")
    out, cache = root / "out", root / "cache"
    rc = cli.main(MAE + ["--out", str(out), "--cache-dir", str(cache), "--jobs", "2"])
    return {"rc": rc, "out": out, "cache": cache, "root": root,
            "doc": json.loads((out / "sweep.json").read_text())}


def test_mae_float16_is_exact_everywhere(mae):
    doc = mae["doc"]
    _validate(doc)
    assert mae["rc"] == 0 and doc["within_budget"] is True
    assert doc["max_ulp"] == 0 and doc["max_finite_ulp"] == 0
    assert doc["inputs"] == {"patterns": 65536, "finite": 63488, "inf": 2, "nan": 2046, "values": 63491}
    assert doc["counts"]["exact"] == 63488 and sum(doc["counts"].values()) == 63488
    assert doc["over_budget"] == {"values": 0, "ranges": []}
    assert doc["dtype"] == {"expected": "float16", "framework": "float16"}
    assert doc["command"] == "lossref sweep keras mean_absolute_error --dtype float16"
    assert [(d["x"], d["exact"], d["framework"], d["patterns"]) for d in doc["specials"]] == [
        ("-inf", "inf", "inf", 1), ("inf", "inf", "inf", 1), ("nan", "nan", "nan", 2046)]
    assert sum(r["values"] for r in doc["profile"]) == 63488
    assert [s["class"] for s in doc["segments"]] == ["correctly rounded"]
    assert doc["plot"] in ("sweep.png", None)
    if doc["plot"]:
        assert (mae["out"] / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (mae["out"] / "sweep.md").read_text()
    assert "63,488 finite inputs: 63,488 exact" in md and "Within budget." in md
    assert len(list(mae["cache"].glob("*.json"))) == math.ceil(63491 / sweep.CHUNK)


def test_mae_same_bytes_after_cache_damage(mae, capsys):
    """Chunks removed, truncated, tampered with (checksums fixed) and swapped: each is
    reported, recomputed, and the report is the clean run's, with one job this time."""
    entries = sorted(mae["cache"].glob("*.json"))
    entries[0].unlink()
    entries[1].write_bytes(entries[1].read_bytes()[:100])
    e = json.loads(entries[2].read_text())
    p = e["payload"]
    p["hex"], p["decimal"] = p["hex"][1:] + p["hex"][:1], p["decimal"][1:] + p["decimal"][:1]
    e["sha256"] = sweep._sha256(p)
    entries[2].write_text(json.dumps(e))
    entries[4].write_bytes(entries[3].read_bytes())
    out = mae["root"] / "out-damaged"
    rc, stdout, err = _run(capsys, *MAE, "--out", out, "--cache-dir", mae["cache"], "--jobs", "1")
    assert rc == 0, err
    assert _bytes(out) == _bytes(mae["out"])
    warned = [line for line in err.splitlines() if "is corrupt" in line]
    assert len(warned) == 3, err
    assert any(str(entries[1]) in w for w in warned) and any(str(entries[4]) in w for w in warned)
    assert any(str(entries[2]) in w and "re-derived differs" in w for w in warned)
    cache = sweep.ChunkCache(str(mae["cache"]), warn=lambda m: pytest.fail(m))
    assert len(list(mae["cache"].glob("*.json"))) == 63  # every chunk back, each sound
    plan = sweep.plan_sweep("keras", "mean_absolute_error", "float16")
    values, _ = sweep.all_values(plan.fmt)
    for i in range(0, values.size, sweep.CHUNK):
        assert cache.get(sweep.chunk_spec(plan, values[i:i + sweep.CHUNK])) is not None


def test_mae_interrupted_then_resumed(mae, tmp_path):
    """Ctrl-C in the middle of the oracle: exit 130, every stored chunk sound, no temporary
    file; the same command then finishes with the clean run's bytes."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = dict(os.environ, LOSSREF_SWEEP_TEST_DELAY="0.3", KERAS_BACKEND="numpy")
    argv = MAE + ["--out", out, "--cache-dir", cache, "--jobs", "2"]
    rc, stdout, err = interrupt_when(argv, lambda: len(glob.glob(str(cache / "*.json"))) >= 4, env=env,
                                     settle=0.2, timeout=180)
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "lossref sweep: interrupted" and "Traceback" not in err
    stored = list(cache.glob("*.json"))
    assert 4 <= len(stored) < 63
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half-written entry
    assert not out.exists()
    for p in stored:
        e = json.loads(p.read_text())
        assert e["key"] == p.stem and e["sha256"] == sweep._sha256(e["payload"])
    p = subprocess.run([sys.executable, "-m", "lossref.cli", *map(str, argv)], capture_output=True, text=True,
                       env=dict(os.environ, KERAS_BACKEND="numpy"))
    assert p.returncode == 0 and "corrupt" not in p.stderr, p.stderr
    assert _bytes(out) == _bytes(mae["out"])


@pytest.fixture(scope="module")
def log_cosh(tmp_path_factory):
    """keras log_cosh over every bfloat16 value."""
    _needs_numpy_backend()
    root = tmp_path_factory.mktemp("sweep-log-cosh")
    out, cache = root / "out", root / "cache"
    rc = cli.main(["sweep", "keras", "log_cosh", "--dtype", "bfloat16", "--out", str(out),
                   "--cache-dir", str(cache)])
    return {"rc": rc, "out": out, "cache": cache, "doc": json.loads((out / "sweep.json").read_text())}


def _exact_log_cosh(x: float) -> mpmath.mpf:
    with mpmath.workprec(400):
        return mpmath.log(mpmath.cosh(mpmath.mpf(x)))


def test_log_cosh_bfloat16_worst_against_mpmath(log_cosh):
    doc = log_cosh["doc"]
    _validate(doc)
    assert log_cosh["rc"] in (0, 1) and (log_cosh["rc"] == 0) == doc["within_budget"]
    assert doc["inputs"]["finite"] == 65280 and sum(doc["counts"].values()) == 65280
    assert doc["counts"]["refused"] == doc["counts"]["undecided"] == doc["counts"]["error"] == 0
    f = formats.BFLOAT16
    # the worst finite error, recomputed from scratch at its input
    w = doc["worst_finite"][0]
    x, c = _val(w["x"]), _val(w["framework"])
    exact = _exact_log_cosh(x)
    assert formats.round_mpf(exact, f) == _val(w["exact"])
    assert abs(_mp_ulp_error(c, exact, f) - w["ulp"]) < 1e-3
    assert w["ulp"] == doc["max_finite_ulp"]
    assert all(v["ulp"] <= w["ulp"] for v in doc["worst_finite"])
    # every infinite error is one: the framework is inf or NaN where log cosh is finite
    for r in doc["over_budget"]["ranges"]:
        if r["max_ulp"] == "inf":
            assert math.isfinite(formats.round_mpf(_exact_log_cosh(_val(r["worst"])), f))
    # the special inputs' exact values
    assert [(d["x"], d["exact"]) for d in doc["specials"]] == [("-inf", "inf"), ("inf", "inf"), ("nan", "nan")]
    # near 0 and far out the exact value rounds well: a correctly rounded segment around 0
    assert any(s["class"] == "correctly rounded" and _val(s["from"]) < 0 < _val(s["to"]) for s in doc["segments"])


def test_grid_float32_log_cosh(capsys, tmp_path):
    _needs_numpy_backend()
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, "sweep", "keras", "log_cosh", "--dtype", "float32", "--points", "64",
                           "--fix", "y_true=0x1p-3", "--out", out, "--no-cache")
    doc = json.loads((out / "sweep.json").read_text())
    _validate(doc)
    plan = sweep.plan_sweep("keras", "log_cosh", "float32", fix=["y_true=0.125"], points="64")
    grid = sweep.grid_values("float32", 64, sweep.switch_points(plan))
    assert doc["inputs"]["values"] == grid.size and doc["sweep"]["points"] == 64
    assert doc["sweep"]["fixed"] == {"name": "y_true", "hex": "0x1p-3"}
    assert (rc == 0) == doc["within_budget"] and rc in (0, 1)
    w = doc["worst_finite"][0]
    with mpmath.workprec(400):
        exact = mpmath.log(mpmath.cosh(mpmath.mpf(_val(w["x"])) - mpmath.mpf(0.125)))
    assert abs(_mp_ulp_error(_val(w["framework"]), exact, "float32") - w["ulp"]) < 1e-3
    assert "report:" in stdout and doc["command"].endswith("--fix y_true=0x1p-3 --points 64")


def test_torch_refusals_are_reported(capsys, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, "sweep", "torch", "binary_cross_entropy", "--dtype", "float32",
                           "--points", "200", "--out", out, "--no-cache")
    doc = json.loads((out / "sweep.json").read_text())
    _validate(doc)
    assert doc["sweep"]["vary"] == "input" and doc["sweep"]["fixed"]["name"] == "target"
    refused = doc["refused"]
    assert refused["values"] > 100 and all("between 0 and 1" in r["reason"] for r in refused["ranges"])
    evaluated = doc["inputs"]["finite"] - refused["values"]
    assert evaluated > 50 and sum(doc["counts"][s] for s in ("exact", "faithful", "within-budget",
                                                             "inaccurate", "mismatch")) == evaluated
    assert rc == (0 if doc["within_budget"] else 1)


def test_framework_exception_is_narrowed_to_its_inputs(monkeypatch):
    """A framework call that raises is halved until the inputs that make it raise are
    alone: only they are errors, the rest keep their values."""
    from lossref.vectors.fileformat import decode_hex, encode_array

    calls = []

    def fake_run_backend(backend, cases, timeout=30.0, framework="keras", **kw):
        results = {}
        for c in cases:
            x = decode_hex(c["inputs"]["y_pred"]["hex"])
            calls.append(x.size)
            if np.any(x == 0.5) or np.any(x == -3.0):
                results[c["id"]] = {"id": c["id"], "per_sample": {"error": "ValueError: no", "kind": "exception"}}
            else:
                results[c["id"]] = {"id": c["id"], "per_sample": dict(encode_array(np.abs(x)), dtype="float16")}
        return {"header": {"backend": backend, "framework_version": "0"}, "results": results}

    monkeypatch.setattr(runner, "run_backend", fake_run_backend)
    plan = sweep.plan_sweep("keras", "mean_absolute_error", "float16")
    values = np.array([-4.0, -3.0, -1.0, 0.0, 0.25, 0.5, 1.0, 2.0])
    got = sweep.run_framework(plan, values, 10.0)
    assert got["errors"] == {1: "ValueError: no", 5: "ValueError: no"}
    ok = [0, 2, 3, 4, 6, 7]
    assert got["values"][ok].tolist() == np.abs(values[ok]).tolist()
    assert calls[0] == 8 and len(calls) <= 1 + 2 + 4 + 8


def test_no_png_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    ok = sweep.plot_profile(np.array([-1.0, 0.0, 1.0]), np.array([0.0, 0.5, 7.0]),
                            ["exact", "exact", "inaccurate"], 4.0, "t", "x", formats.FLOAT16,
                            str(tmp_path / "sweep.png"))
    assert ok is False and not (tmp_path / "sweep.png").exists()
