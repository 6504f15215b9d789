"""The benchmark suite runs end to end (``--quick``) and writes what the README promises.

No timing is asserted: speed is measured by the suite, not tested.
"""

import json
import os
import subprocess
import sys

import pytest

import lossref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def test_quick_run_writes_every_part(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in ("platform", "cpus", "numpy", "mpmath", "torch", "jax", "keras"):
        assert res["machine"][key]
    benched = {n for n in lossref.names() if lossref.get(n).separable} | {
        "categorical_crossentropy", "categorical_focal_crossentropy", "sparse_categorical_crossentropy"}
    assert {r["loss"] for r in res["reference"]} == benched
    from lossref.keras import losses as K

    classes = [c for c in vars(K).values() if isinstance(c, type) and issubclass(c, K.LossFunctionWrapper)]
    keras_losses = {c().fn._loss_name for c in classes if c is not K.LossFunctionWrapper}
    for row in res["reference"]:
        assert row["lossref"]["runs"] >= 5 and row["lossref"]["min_s"] <= row["lossref"]["median_s"]
        # torch and jax always; keras (numpy) for the losses Keras has, the others are PyTorch's
        in_keras = row["loss"] in keras_losses
        assert len(row["peers"]) == (3 if in_keras else 2) and row["ratio_to_fastest_peer"] > 0
        assert row["peak_extra_bytes"] > 0 and "numpy_float64_textbook" in row
        assert ("keras_dialect" in row) == in_keras
    # the Keras dialect beside the reference, and its other losses on their own rows
    assert {r["loss"] for r in res["dialect"]} == keras_losses - benched
    with_dialect = [r for r in res["reference"] if "keras_dialect" in r] + res["dialect"]
    for row in with_dialect:
        d = row["keras_dialect"]
        for call in ("catalogue", "class", "function"):
            assert d[call]["runs"] >= 5 and d[call]["min_s"] <= d[call]["median_s"]
            assert d[call]["peak_extra_ratio"] > 0
        assert d["class"]["ratio_to_catalogue"] > 0 and d["function"]["ratio_to_catalogue"] > 0
    assert res["summary_dialect"]["worst_ratio"] > 0
    # the PyTorch dialect against torch: every function, both reductions
    from lossref.torch.nn import functional as F

    assert [r["function"] for r in res["torch_dialect"]] == sorted(F.__all__)
    for row in res["torch_dialect"]:
        for red in ("none", "mean"):
            assert row[red]["lossref"]["runs"] >= 5 and row[red]["torch"]["runs"] >= 5
            assert row[red]["ratio_to_torch"] > 0 and row[red]["lossref"]["peak_extra_ratio"] > 0
    assert set(res["summary_torch_dialect"]) == {"none", "mean"}
    # the Optax and TensorFlow dialects against their frameworks: every function
    from lossref.optax import losses as lo
    from lossref.tf import nn as ltf

    assert sorted((r["framework"], r["function"]) for r in res["array_dialects"]) == sorted(
        [("optax", n) for n in lo.__all__] + [("tf", n) for n in ltf.__all__])
    for row in res["array_dialects"]:
        r = row["none"]
        assert r["lossref"]["runs"] >= 5 and r[row["framework"]]["runs"] >= 5 and r["ratio_to_framework"] > 0
    assert set(res["summary_array_dialects"]) == {"optax", "tf"}
    # the reference gradients against torch autograd and jit(jax.grad)
    from grad import OPTAX, TORCH
    assert [(r["framework"], r["function"]) for r in res["grad"]] == \
        [("torch", n) for n in TORCH] + [("optax", n) for n in OPTAX]
    assert all(r["ratio"] > 0 and r["lossref_s"] > 0 for r in res["grad"])
    assert set(res["summary_grad"]) == {"torch", "optax"}
    assert "torch gradients: geometric-mean" in proc.stdout
    fmts = ("float64", "float32", "float16", "bfloat16")
    assert {(r["loss"], r["format"]) for r in res["oracle"]} == {(n, f) for n in benched for f in fmts}
    # every benchmarked case decided on balls gives the bits of the mpmath path (Ziv's test)
    assert all(r["rounded_results_agree"] and r["lossref"]["runs"] >= 5 and r["naive_dps50"]["runs"] >= 3
               for r in res["oracle"])
    so = res["summary_oracle"]
    assert so["agree"] and so["hard_cases"]["agree"] and so["hard_cases"]["cases"] > 100
    assert so["geomean_speedup"] > 1 and so["min_speedup"] > 0 and "targets_met" in so
    assert {(r["backend"], r["bits"]) for r in res["oracle_primitives"]} >= {("mpmath", 64), ("mpmath", 166)}
    assert [g["jobs"] for g in res["golden"]] == [1, 2]
    assert all(g["returncode"] == 0 and g["runs"] >= 5 and g["min_s"] <= g["seconds"] for g in res["golden"])
    # the printed table: one line per benchmarked loss and the summaries
    assert proc.stdout.count("lossref ") >= len(benched)
    assert "geometric-mean ratio" in proc.stdout and "the naive baseline over" in proc.stdout
    assert proc.stdout.count("keras class ") == len(with_dialect)
    assert "keras dialect: worst time over the reference" in proc.stdout
    # the README's tables come out of the file
    table = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "table.py"), str(out)],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "lossref.keras class / function" in table.stdout
