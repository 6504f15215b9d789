"""Optax golden vectors (``optax/<function>/<dtype>``), ``lossref diff optax`` and the
pytest plugin with ``--lossref-framework optax``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lossref import cli
from lossref.optax import losses as lo
from lossref.vectors import fileformat, generate, manifest
from lossref.vectors.optax_table import NO_VECTORS, OPTAX_TABLE
from lossref.vectors.torch_table import function_targets, integer_inputs, missing_entries

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "spec" / "vectors"


def _optax_files():
    return [f for f in manifest.vector_files(SET) if f.startswith("optax/")]


def test_the_table_names_every_function_but_those_with_a_reason():
    assert set(OPTAX_TABLE) == set(lo.__all__) - set(NO_VECTORS)
    assert missing_entries("optax") == []
    for name, t in function_targets("optax").items():
        assert t.reductions == ("none",) and t.class_qualname is None
        assert t.function is getattr(lo, name) and t.function_qualname == f"optax.losses.{name}"


def test_the_canonical_set_has_every_optax_function_in_every_format():
    have = {tuple(f[: -len(".jsonl")].split("/")[1:]) for f in _optax_files()}
    assert have == {(n, d) for n, t in function_targets("optax").items() for d in t.entry.dtypes}
    assert len(have) == 4 * len(OPTAX_TABLE)
    total = sum(p.stat().st_size for p in SET.rglob("*.jsonl"))
    assert total < 70 * 2 ** 20  # the README of the set: under 70 MB with the gradients


def test_an_optax_file_has_the_documented_layout():
    vf = fileformat.load("optax/softmax_cross_entropy_with_integer_labels/float32")
    prov = vf.provenance
    assert prov["function"] == "optax.losses.softmax_cross_entropy_with_integer_labels"
    assert prov["class"] is None and prov["reductions"] == ["none"] and len(vf) == 64
    recs = [c.record for c in vf]
    assert all(set(r["inputs"]) == {"logits", "labels"} for r in recs)
    assert all(set(r["expected"]) == {"reductions", "grad"} and set(r["expected"]["reductions"]) == {"none"}
               for r in recs)
    # the gradient of the one output with respect to the logits, in their shape and format
    assert prov["grad"] == {"wrt": "logits", "outputs": ["none"]}
    assert all(r["expected"]["grad"]["none"]["shape"] == r["inputs"]["logits"]["shape"]
               and r["expected"]["grad"]["none"]["dtype"] == "float32" for r in recs)
    # integer labels, stored as floats: whole numbers in [0, C)
    for c in vf:
        labels = c.record["inputs"]["labels"]
        vals = [float.fromhex(h) for h in labels["hex"]]
        assert all(v == int(v) for v in vals)
    ctc = fileformat.load("optax/ctc_loss/float64")
    assert set(ctc[0].record["inputs"]) == {"logits", "logit_paddings", "labels", "label_paddings"}
    tri = fileformat.load("optax/triplet_margin_loss/float32")
    assert set(tri[0].record["inputs"]) == {"anchors", "positives", "negatives"}


def test_golden_regenerates_an_optax_file_byte_for_byte(tmp_path):
    for loss, dtype in (("huber_loss", "float16"), ("ntxent", "float32")):
        assert cli.main(["golden", "--dialect", "optax", "--loss", loss, "--dtype", dtype,
                         "--out", str(tmp_path), "--quiet", "--jobs", "1"]) == 0
        rel = f"optax/{loss}/{dtype}.jsonl"
        assert (tmp_path / rel).read_bytes() == (SET / rel).read_bytes()


def test_fresh_optax_specs_and_integer_inputs():
    specs = generate.fresh_specs(2, losses=["multiclass_hinge_loss"], dtypes=["float32"], dialect="optax")
    assert [s["id"] for s in specs][0] == "optax-fresh0/multiclass_hinge_loss/float32/0010"
    assert specs[0]["reductions"] == ["none"]
    entry = OPTAX_TABLE["multiclass_hinge_loss"]
    assert integer_inputs(entry, specs[0]["inputs"]) == ("labels",)


# --- lossref diff optax -----------------------------------------------------------------------------

pytest.importorskip("optax")


def _diff(out, *extra):
    # one format: JAX compiles each function once per input shape (some 0.1 s a case)
    return subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "optax", "--cases", "2", "--out",
                           str(out), "--loss", "sigmoid_binary_cross_entropy", "--loss",
                           "softmax_cross_entropy_with_integer_labels", "--dtype", "float32", "--no-plots",
                           *extra], capture_output=True, text=True, cwd=ROOT)


def test_diff_optax_reports_are_byte_identical_and_reproducers_run(tmp_path):
    cache = tmp_path / "cache"
    r1 = _diff(tmp_path / "a", "--cache-dir", str(cache))
    r2 = _diff(tmp_path / "b", "--cache-dir", str(cache))
    assert r1.returncode in (0, 1) and "backend cpu: optax" in r1.stdout, r1.stderr[-2000:]
    assert "Traceback" not in r1.stderr + r2.stderr
    for name in ("report.json", "report.md", "index.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert doc["framework"] == "optax" and doc["backend"] == ["cpu"]
    assert {r["reduction"] for r in doc["rows"]} == {"none"}
    assert doc["backends"][0]["cases"] == 2 * 66  # 64 golden + 2 fresh per function
    # integer labels reach optax as int64: no row is an error
    assert not any(r["status"] == "error" for r in doc["rows"]), [r for r in doc["rows"] if r["status"] == "error"][:1]
    assert doc["findings"], "optax 0.2.8 has known findings on these vectors"
    f = doc["findings"][0]
    assert "import optax" in f["reproducer"] and "jax_enable_x64" in f["reproducer"]
    run = subprocess.run([sys.executable, "-c", f["reproducer"]], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("framework: [") and "exact    :" in run.stdout


def test_diff_optax_usage_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "optax", "--loss", "mse_loss",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown loss 'mse_loss'" in r.stderr and "squared_error" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "optax", "--backend", "jax",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "cpu only" in r.stderr


def test_conformance_plugin_with_optax(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "lossref.conformance",
           "--lossref-framework", "optax", "--lossref-loss", "l2_loss", "--lossref-dtype", "float64"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert "error" not in last and sum(int(w) for w, k in zip(last.split(), last.split()[1:])
                                       if k.rstrip(",") in ("passed", "failed")) == 1, r.stdout[-3000:]
