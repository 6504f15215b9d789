"""`lossref diff ... --grad`: the frameworks' autodiff gradients against the exact ones.

Small case sets (one loss, one format, the canonical vectors) on Keras's jax backend,
torch and optax; each run writes the three reports with gradient rows beside the value
rows, findings of their own and reproducers that differentiate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lossref.diff.runner import GRAD_PREFIX, output_names


def _run(args, tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", *args, "--grad", "--no-plots",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    return proc, out


@pytest.mark.parametrize("framework,args,loss", [
    ("keras", ["--backend", "jax"], "mean_squared_error"),
    ("torch", [], "cross_entropy"),
    ("optax", [], "sigmoid_binary_cross_entropy"),
])
def test_diff_grad_writes_the_three_reports(tmp_path, framework, args, loss):
    pytest.importorskip("jax" if framework != "torch" else "torch")
    if framework == "keras":
        pytest.importorskip("keras")
    proc, out = _run([framework, *args, "--loss", loss, "--dtype", "float32"], tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    doc = json.loads((out / "report.json").read_text())
    assert (out / "report.md").exists() and (out / "index.html").exists()
    outputs = {r["reduction"] for r in doc["rows"]}
    grads = {o for o in outputs if o and o.startswith(GRAD_PREFIX)}
    assert grads, outputs  # gradient rows beside the value rows
    assert outputs - grads  # and the values
    md = (out / "report.md").read_text()
    assert "float32 grad" in md
    for f in doc["findings"]:
        if f["reduction"] and f["reduction"].startswith(GRAD_PREFIX):
            # a gradient finding's reproducer differentiates with the framework's autodiff
            assert any(w in f["reproducer"] for w in ("jax.grad", "backward()", "GradientTape"))
            assert all(o.startswith(GRAD_PREFIX) for o in f["outputs"])


def test_a_typical_gradient_agrees_with_the_framework(tmp_path):
    """torch's mse_loss gradient on typical float64 cases is within budget of the exact one
    (a real comparison: an exact gradient that were wrong would show here)."""
    pytest.importorskip("torch")
    proc, out = _run(["torch", "--loss", "mse_loss", "--dtype", "float64"], tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    doc = json.loads((out / "report.json").read_text())
    rows = [r for r in doc["rows"] if r["reduction"] == GRAD_PREFIX + "mean" and r["cases_class"] == "typical"]
    assert rows and all(r["status"] in ("exact", "faithful", "within-budget") for r in rows), rows


def test_usage_errors(tmp_path):
    proc, _ = _run(["keras", "--backend", "numpy", "--loss", "huber"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "lossref diff: error: --grad needs a backend with autodiff (jax, torch, tensorflow); "
        "Keras's numpy backend has none"]
    # a vector file of format version 1 (no gradients) is refused before any work
    from lossref.vectors import canonical_dir
    lines = (canonical_dir() / "torch" / "mse_loss" / "float32.jsonl").read_text().splitlines()
    prov = json.loads(lines[0])
    prov["provenance"]["format_version"] = 1
    old = tmp_path / "v1.jsonl"
    old.write_text("\n".join([json.dumps(prov)] + lines[1:]) + "\n")
    proc, _ = _run(["torch", "--vectors", str(old)], tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "version" in proc.stderr


def test_output_names_put_gradients_after_values():
    case = {"dialect": "torch", "expected": {"reductions": {"mean": {}, "none": {}, "sum": {}},
                                             "grad": {"mean": {}}}}
    assert output_names(case) == ["none", "mean", "sum", "grad:mean"]
