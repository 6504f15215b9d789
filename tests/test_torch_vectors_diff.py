"""Golden vectors, verify, `lossref diff torch` and the conformance plugin for the torch
dialect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lossref import cli
from lossref.torch.nn import functional as F
from lossref.vectors import fileformat, generate, manifest, targets
from lossref.vectors.torch_table import TORCH_TABLE, missing_entries, torch_targets

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "spec" / "vectors"


def _torch_files():
    return [f for f in manifest.vector_files(SET) if f.startswith("torch/")]


def test_the_table_names_every_function_of_the_dialect_and_only_those():
    assert set(TORCH_TABLE) == set(F.__all__), "give every function one entry in torch_table.py"
    assert missing_entries() == []
    assert set(torch_targets()) == {n for n in TORCH_TABLE if hasattr(F, n)}
    for name, t in torch_targets().items():
        assert t.reductions[0] == "none" and set(t.reductions) <= {"none", "mean", "sum", "batchmean"}
        assert t.function is getattr(F, name)


def test_the_canonical_set_has_every_torch_function_in_every_format():
    have = {tuple(f[: -len(".jsonl")].split("/")[1:]) for f in _torch_files()}
    # each function in the formats torch defines it for (ctc_loss: float32 and float64)
    assert have == {(n, d) for n, t in torch_targets().items() for d in t.entry.dtypes}
    assert torch_targets()["ctc_loss"].entry.dtypes == ("float32", "float64")
    assert all(set(t.entry.dtypes) <= set(generate.DTYPES) for t in torch_targets().values())
    total = sum(p.stat().st_size for p in SET.rglob("*.jsonl"))
    assert total < 70 * 2 ** 20  # the README of the set: under 70 MB with the gradients


def test_a_torch_file_has_the_documented_layout():
    vf = fileformat.load("torch/binary_cross_entropy_with_logits/float32")
    prov = vf.provenance
    assert prov["function"] == "torch.nn.functional.binary_cross_entropy_with_logits"
    assert prov["class"] == "torch.nn.BCEWithLogitsLoss"
    assert prov["reductions"] == ["none", "mean", "sum"] and len(vf) == prov["cases"] == 64
    assert vf[0].id == "torch/binary_cross_entropy_with_logits/float32/0010"
    recs = [c.record for c in vf]
    assert all(set(r["inputs"]) == {"input", "target", "weight", "pos_weight"} for r in recs)
    assert any(r["inputs"]["pos_weight"] is not None for r in recs)
    assert any(r["inputs"]["weight"] is None for r in recs)
    assert all(set(r["expected"]) == {"reductions", "grad"} for r in recs)
    assert vf[0].per_sample is None and vf[0].y_pred.shape == vf[0].reductions["none"].shape
    kl = fileformat.load("torch/kl_div/float64")
    assert kl.provenance["reductions"] == ["none", "mean", "sum", "batchmean"]
    assert {json.dumps(c.params) for c in kl} == {'{"log_target": false}', '{"log_target": true}'}


def test_golden_regenerates_a_torch_file_byte_for_byte(tmp_path):
    assert cli.main(["golden", "--dialect", "torch", "--loss", "huber_loss", "--dtype", "float16",
                     "--out", str(tmp_path), "--quiet", "--jobs", "1"]) == 0
    rel = "torch/huber_loss/float16.jsonl"
    assert (tmp_path / rel).read_bytes() == (SET / rel).read_bytes()
    assert manifest.read_manifest(tmp_path)[rel] == manifest.read_manifest(SET)[rel]


def test_verify_checks_the_torch_files_and_finds_a_tampered_one(tmp_path, capsys):
    out = tmp_path / "v"
    (out / "torch").mkdir(parents=True)
    lines = []
    for rel in _torch_files():
        if rel.startswith(("torch/kl_div/", "torch/mse_loss/")):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes((SET / rel).read_bytes())
            lines.append(f"{manifest.sha256_file(out / rel)}  {rel}\n")
    (out / "MANIFEST.sha256").write_text("".join(lines))
    assert cli.main(["verify", str(out), "--quiet", "--jobs", "1", "--sample", "3"]) == 0
    # an expected value changed, hash updated: the hex/decimal check and the oracle catch it
    path = out / "torch/mse_loss/float32.jsonl"
    recs = path.read_text().splitlines()
    rec = json.loads(recs[3])
    rec["expected"]["reductions"]["sum"]["hex"] = ["0x1p+0"]
    recs[3] = fileformat.dumps(rec)
    path.write_text("\n".join(recs) + "\n")
    (out / "MANIFEST.sha256").write_text("".join(
        f"{manifest.sha256_file(out / ln.split()[1])}  {ln.split()[1]}\n" for ln in lines))
    capsys.readouterr()
    assert cli.main(["verify", str(out), "--quiet", "--jobs", "1"]) == 1
    assert "torch/mse_loss/float32/0030" in capsys.readouterr().err


def test_golden_refuses_the_whole_dialect_while_a_function_has_no_entry(monkeypatch):
    import lossref.vectors.torch_table as tt
    monkeypatch.setattr(tt, "missing_entries", lambda dialect="torch": ["nll_loss"])
    with pytest.raises(KeyError, match="nll_loss"):
        generate.plan("torch")
    assert generate.plan("torch", ["mse_loss"], ["float32"]) == [("mse_loss", "float32")]


def test_fresh_torch_specs_differ_from_the_golden_cases_and_carry_the_reductions():
    specs = generate.fresh_specs(2, losses=["kl_div"], dtypes=["float32"], dialect="torch")
    assert [s["id"] for s in specs] == ["torch-fresh0/kl_div/float32/0010", "torch-fresh0/kl_div/float32/0020"]
    assert specs[0]["reductions"] == ["none", "mean", "sum", "batchmean"]
    golden = fileformat.load("torch/kl_div/float32")
    assert specs[0]["inputs"]["input"] != golden[0].record["inputs"]["input"]
    assert targets.get_target("torch", "kl_div").class_qualname == "torch.nn.KLDivLoss"


# --- lossref diff torch -----------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def _diff(out, *extra):
    return subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "torch", "--cases", "2", "--out",
                           str(out), "--loss", "mse_loss", "--loss", "binary_cross_entropy", "--no-plots",
                           *extra], capture_output=True, text=True, cwd=ROOT)


def test_diff_torch_reports_are_byte_identical_and_reproducers_run(tmp_path):
    cache = tmp_path / "cache"
    r1 = _diff(tmp_path / "a", "--cache-dir", str(cache))
    r2 = _diff(tmp_path / "b", "--cache-dir", str(cache))  # second run: expectations from the cache
    assert r1.returncode in (0, 1) and "backend cpu: torch" in r1.stdout, r1.stderr[-2000:]
    assert "Traceback" not in r1.stderr + r2.stderr
    for name in ("report.json", "report.md", "index.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert doc["framework"] == "torch" and doc["backend"] == ["cpu"]
    assert {r["loss"] for r in doc["rows"]} == {"mse_loss", "binary_cross_entropy"}
    assert {r["reduction"] for r in doc["rows"]} == {"none", "mean", "sum"}
    # 64 golden + 2 fresh cases per loss and dtype
    assert doc["backends"][0]["cases"] == 2 * 4 * 66
    assert doc["findings"], "torch 2.13 has known findings on these vectors"
    f = doc["findings"][0]
    snippet = f["reproducer"]
    assert "import keras" not in snippet and "import lossref" not in snippet
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("framework: [") and "exact    :" in run.stdout
    got = run.stdout.splitlines()[0]
    if f["worst_case"]["output"] in ("mean", "sum"):
        assert got.count("'") == 2  # one framework value


def test_diff_torch_usage_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "torch", "--loss", "huber",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown loss 'huber'" in r.stderr and "huber_loss" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "torch", "--backend", "jax",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "cpu only" in r.stderr


def test_keras_runs_skip_the_torch_files_of_the_canonical_set():
    from lossref.diff.cli import load_vector_cases
    cases = load_vector_cases(str(SET), ["mean_squared_error"], ["float32"])
    assert cases and {c["dialect"] for c in cases} == {"keras"}
    tcases = load_vector_cases(str(SET), ["mse_loss"], ["float32"], "torch")
    assert len(tcases) == 64 and {c["dialect"] for c in tcases} == {"torch"}


def test_conformance_plugin_with_torch(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "lossref.conformance",
           "--lossref-framework", "torch", "--lossref-loss", "l1_loss", "--lossref-dtype", "float64",
           "--lossref-grad"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    # one test per (function, dtype, output, case class): none, mean, sum and the gradient
    # of mean (the output the vectors record a gradient of), typical cases
    assert "error" not in last and sum(int(w) for w, k in zip(last.split(), last.split()[1:])
                                       if k.rstrip(",") in ("passed", "failed")) == 4, r.stdout[-3000:]
    if r.returncode == 1:  # a finding of torch itself: the message carries its reproducer
        assert "test_conformance[l1_loss-float64-" in r.stdout and "reproducer" in r.stdout


def test_diff_torch_classification_passes_int64_targets_and_records_kernel_errors(tmp_path):
    """nll_loss gets int64 class indices (no 'error' rows); multi_margin_loss has no float16
    CPU kernel in torch: an 'error' finding, not a crash of the run."""
    from lossref.vectors.torch_table import integer_inputs
    ce = TORCH_TABLE["cross_entropy"]
    assert integer_inputs(ce, {"input": {"shape": [2, 3]}, "target": {"shape": [2]}}) == ("target",)
    assert integer_inputs(ce, {"input": {"shape": [2, 3]}, "target": {"shape": [2, 3]}}) == ()
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "diff", "torch", "--cases", "1", "--out",
                        str(tmp_path / "c"), "--loss", "nll_loss", "--loss", "multi_margin_loss",
                        "--dtype", "float16", "--dtype", "float32", "--no-plots"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr[-2000:]
    doc = json.loads((tmp_path / "c" / "report.json").read_text())
    status = {(x["loss"], x["dtype"], x["status"]) for x in doc["rows"]}
    assert not any(s == "error" for loss, _, s in status if loss == "nll_loss")
    assert ("multi_margin_loss", "float16", "error") in status
    assert any(s != "error" for loss, dt, s in status if (loss, dt) == ("multi_margin_loss", "float32"))
    errors = [f for f in doc["findings"] if f["kind"] == "error" and f["loss"] == "multi_margin_loss"]
    assert errors and "NotImplementedError" in errors[0]["summary"]
    f = next(f for f in doc["findings"] if f["kind"] != "error")
    assert "torch.int64" in f["reproducer"]
    run = subprocess.run([sys.executable, "-c", f["reproducer"]], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("framework: ["), run.stderr[-2000:]


def test_sweeps_of_the_torch_functions_run_torch_and_plot(tmp_path):
    """Each torch function with a sweep: the case's exact values, torch's values on it (the
    real worker), one finite ulp error per point, a plot. The sweeps move the argument the
    function's error depends on: a logit, a log-rate or kl_div's target."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from lossref.diff import runner, sweeps
    from lossref.diff.cases import make_case

    items = []
    for name in ("binary_cross_entropy_with_logits", "poisson_nll_loss", "kl_div", "soft_margin_loss",
                 "mse_loss", "binary_cross_entropy"):
        x, t, p, label = sweeps.sweep_inputs(name, "float32", n=24)
        assert t.shape == p.shape == (x.size, 1) and label
        items.append((make_case(f"sweep/{name}/float32", name, "float32", t, p, reductions=("none",),
                                dialect="torch"), x, label))
    res = runner.run_backend("cpu", [c for c, _, _ in items], timeout=120, framework="torch")["results"]
    for case, x, label in items:
        ulps = sweeps.sweep_ulps(case, res[case["id"]])
        # torch's own errors are what a sweep shows (soft_margin_loss's log(1 + exp(-x))
        # overflows at x = -1e4: inf ulps there); most points are near-exact
        assert len(ulps) == x.size and all(u >= 0 for u in ulps), (case["loss"], ulps)
        assert sum(u < 4 for u in ulps) > x.size // 2, (case["loss"], ulps)
        png = tmp_path / f"{case['loss']}.png"
        assert sweeps.plot_sweep(x, ulps, case["loss"], label, str(png)) and png.stat().st_size > 1000
    # both signs of a logit: softplus(-x) from about log 2 down to exp(-x) and up to |x|
    logits = items[0][1]
    assert logits.min() < -100 and logits.max() > 100
