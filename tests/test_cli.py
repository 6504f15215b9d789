"""The `lossref` command: list, eval, exit codes."""

import subprocess
import sys

import pytest

from lossref import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "lossref.cli", *args], capture_output=True, text=True)


def test_list_shows_catalogue_with_dialects(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mean_squared_error" in out and "keras.MeanSquaredError, keras.mean_squared_error" in out
    assert "huber" in out and "mean" in out


def test_eval_prints_reference_exact_and_ulp_error(capsys):
    assert cli.main(["eval", "mean_squared_error", "--y-true", "[[0, 0], [0, 0]]",
                     "--y-pred", "[[1, 1], [0.1, 0.2]]"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert "exact" in lines
    # second row: exact mean of float32(0.1)^2 and float32(0.2)^2, 40 digits
    assert "2.500000074505806524349793562578270211816e-2" in out
    assert "1.000000000000000000000000000000000000000e+0" in out
    assert lines["ulp"].startswith("error")


def test_eval_with_param_reduction_and_dtype(capsys):
    assert cli.main(["eval", "huber", "--y-true", "[[0, 0]]", "--y-pred", "[[0.5, 3]]",
                     "--param", "delta=1.0", "--reduction", "sum", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "huber(delta=1.0)" in out and "1.312500000000000000000000000000000000000e+0" in out


@pytest.mark.parametrize("argv, msg", [
    (["eval", "mse", "--y-true", "[[0]]", "--y-pred", "[[1]]"], "unknown loss 'mse'"),
    (["eval", "huber", "--y-true", "[[0]]", "--y-pred", "[[1]]", "--param", "delta=-1"], "delta=-1 is invalid"),
    (["eval", "huber", "--y-true", "[[0]]", "--y-pred", "[[1]]", "--dtype", "int8"], "--dtype: format 'int8' is not supported"),
    (["diff", "keras", "--dtype", "float17", "--out", "unused"], "--dtype: format 'float17' is not supported"),
    (["diff", "keras", "--loss", "foo", "--out", "unused"], "--loss: unknown loss 'foo'"),
    (["diff", "keras", "--cases", "-2", "--out", "unused"], "--cases must be >= 0"),
    (["diff", "keras", "--vectors", "no/such/place", "--out", "unused"], "--vectors: no/such/place: no such file"),
    (["eval", "huber", "--y-true", "[[0]]", "--y-pred", "[[1, 2]]"], "must be equal"),
    (["eval", "huber", "--y-true", "[[a]]", "--y-pred", "[[1]]"], "cannot parse"),
])
def test_usage_errors_exit_2(capsys, argv, msg):
    assert cli.main(argv) == 2
    assert msg in capsys.readouterr().err


def test_help_and_argparse_errors():
    r = run("--help")
    assert r.returncode == 0 and "eval" in r.stdout and "list" in r.stdout
    assert run("eval", "--help").returncode == 0
    assert run("frobnicate").returncode == 2


def test_eval_bfloat16_without_ml_dtypes(monkeypatch, capsys):
    from lossref import formats
    monkeypatch.setattr(formats, "_ml_dtypes", None)
    assert cli.main(["eval", "binary_crossentropy", "--y-true", "[[1, 0]]", "--y-pred", "[[0.9, 0.2]]",
                     "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    ref = out.split("reference", 1)[1].split("\n", 1)[0]
    rounded = out.split("rounded", 1)[1].split("(", 1)[0]
    assert ref.strip() == rounded.strip()          # the reference is a bfloat16 value
    assert abs(float(ref.strip(" []")) - 0.1650390625) < 1e-8  # bfloat16 value next to 0.16524
