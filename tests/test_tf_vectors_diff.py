"""tf.nn golden vectors (``tf/<function>/<dtype>``), ``lossref diff tf``, the plugin with
``--lossref-framework tf``, and ``lossref diff keras --backend tensorflow``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lossref import cli
from lossref.tf import nn
from lossref.vectors import fileformat, manifest
from lossref.vectors.tf_table import NO_VECTORS, TF_TABLE
from lossref.vectors.torch_table import function_targets, missing_entries

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "spec" / "vectors"


def test_the_table_names_every_function_of_the_dialect():
    assert set(TF_TABLE) == set(nn.__all__) and not NO_VECTORS
    assert missing_entries("tf") == []
    for name, t in function_targets("tf").items():
        assert t.reductions == ("none",) and t.class_qualname is None
        assert t.function is getattr(nn, name) and t.function_qualname == f"tf.nn.{name}"


def test_the_canonical_set_has_every_tf_function():
    files = [f for f in manifest.vector_files(SET) if f.startswith("tf/")]
    have = {tuple(f[: -len(".jsonl")].split("/")[1:]) for f in files}
    assert have == {(n, d) for n, t in function_targets("tf").items() for d in t.entry.dtypes}
    assert sum(p.stat().st_size for p in SET.rglob("*.jsonl")) < 70 * 2 ** 20  # the README of the set: under 70 MB with the gradients


def test_a_tf_file_keeps_tf_argument_order_and_one_tensor_functions():
    vf = fileformat.load("tf/sigmoid_cross_entropy_with_logits/float32")
    assert vf.provenance["function"] == "tf.nn.sigmoid_cross_entropy_with_logits"
    assert vf.provenance["class"] is None and vf.provenance["reductions"] == ["none"]
    assert TF_TABLE["sigmoid_cross_entropy_with_logits"].positional == ("labels", "logits")
    l2 = fileformat.load("tf/l2_loss/float64")
    assert all(set(c.record["inputs"]) == {"t"} for c in l2)
    assert all(c.record["expected"]["reductions"]["none"]["shape"] == [] for c in l2)
    ctc = fileformat.load("tf/ctc_loss/float32")
    assert set(ctc[0].record["inputs"]) == {"labels", "logits", "label_length", "logit_length"}


def test_golden_regenerates_a_tf_file_byte_for_byte(tmp_path):
    assert cli.main(["golden", "--dialect", "tf", "--loss", "log_poisson_loss", "--dtype", "bfloat16",
                     "--out", str(tmp_path), "--quiet", "--jobs", "1"]) == 0
    rel = "tf/log_poisson_loss/bfloat16.jsonl"
    assert (tmp_path / rel).read_bytes() == (SET / rel).read_bytes()


# --- lossref diff tf ----------------------------------------------------------------------------------

pytest.importorskip("tensorflow")


def test_diff_tf_reports_and_reproducers(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "tf", "--cases", "1", "--out",
                        str(tmp_path / "a"), "--loss", "sparse_softmax_cross_entropy_with_logits",
                        "--loss", "l2_loss", "--dtype", "float32", "--no-plots"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode in (0, 1) and "backend cpu: tf" in r.stdout, r.stdout[-1000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert doc["framework"] == "tf" and doc["backends"][0]["cases"] == 2 * 65
    # labels reach TF as int64 in its own argument order: no row is a TF error
    assert not any(x["status"] == "error" for x in doc["rows"]), [f["summary"] for f in doc["findings"]][:2]
    for f in doc["findings"][:2]:
        assert "import tensorflow as tf" in f["reproducer"]
        run = subprocess.run([sys.executable, "-c", f["reproducer"]], capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 0 and "exact    :" in run.stdout, run.stderr[-2000:]


def test_conformance_plugin_with_tf(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "lossref.conformance",
           "--lossref-framework", "tf", "--lossref-loss", "l2_loss", "--lossref-dtype", "float64"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert "error" not in last and sum(int(w) for w, k in zip(last.split(), last.split()[1:])
                                       if k.rstrip(",") in ("passed", "failed")) == 1, r.stdout[-3000:]
