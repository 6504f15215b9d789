"""User errors are one clear line and exit code 2; the numeric edges of issue reports.

Each test reproduces a reported problem: ragged JSON in ``lossref eval`` (a NumPy
traceback before), ``Exact.decimal`` with a digit count that is not a positive integer
(``'.0e+0'`` for 0 before), ``cosine_similarity`` with ``epsilon=0`` (``ZeroDivisionError``
before, while the oracle answered).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lossref
from lossref.cli import main


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("text, why", [
    ("[[0, 1], [2]]", "ragged"),
    ("[1, [2]]", "ragged"),
    ("[[[[", "cannot parse"),
    ("[" * 5000, "cannot parse"),
    ('[["a"]]', "expected numbers"),
    ("{1: 2}", "expected numbers"),
])
def test_eval_bad_array_is_one_line(capsys, text, why):
    rc, out, err = run_cli(capsys, "eval", "mean_squared_error", "--y-true", text, "--y-pred", "[[0, 1]]")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("lossref eval: error: --y-true: ") and why in err


def test_eval_bad_param_and_shape(capsys):
    rc, _, err = run_cli(capsys, "eval", "huber", "--y-true", "[[0, 1]]", "--y-pred", "[[0, 1]]",
                         "--param", "delta=[1, 2]")
    assert rc == 2 and "delta" in err and err.count("\n") == 1
    rc, _, err = run_cli(capsys, "eval", "mean_squared_error", "--y-true", "[[0, 1]]",
                         "--y-pred", "[[0, 1, 2]]")
    assert rc == 2 and "(1, 2)" in err and "(1, 3)" in err


def test_cli_errors_print_no_traceback():
    """As a user types them: a subprocess, stderr read whole."""
    for argv in (["eval", "no_such_loss", "--y-true", "[[0]]", "--y-pred", "[[0]]"],
                 ["eval", "mean_squared_error", "--y-true", "[[0,1],[2]]", "--y-pred", "[[0,1]]"],
                 ["eval", "mean_squared_error", "--y-true", "[[0]]", "--y-pred", "[[0]]", "--dtype", "float7"]):
        p = subprocess.run([sys.executable, "-m", "lossref.cli", *argv], capture_output=True, text=True)
        assert p.returncode == 2, (argv, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, (argv, p.stderr)


# --- Exact.decimal --------------------------------------------------------------------------------


def test_decimal_digits_must_be_a_positive_integer():
    e = lossref.get("mean_squared_error").exact(np.array([[0.1]]), np.array([[0.0]]))
    # 0.1**2 in binary64 is 0.010000000000000000555...: one digit and three, correctly rounded
    assert e.decimal(1).tolist() == ["1.e-2"]
    assert e.decimal(np.int64(3)).tolist() == ["1.00e-2"]
    for bad in (0, -1, 2.5, True, "3", None, np.float64(3.0)):
        with pytest.raises(ValueError, match="digits must be a positive integer"):
            e.decimal(bad)


# --- cosine_similarity with epsilon = 0 -----------------------------------------------------------


@pytest.mark.parametrize("fmt", [np.float16, np.float32, np.float64])
def test_cosine_epsilon_zero_defines_the_zero_vector(fmt):
    """``v / max(||v||, 0)`` is 0/0 for a zero vector: defined as 0, as for ``epsilon=None``;
    below the default floor nothing is damped. Reference and oracle agree."""
    L = lossref.get("cosine_similarity")
    y = np.array([[0, 0, 0], [1, 2, 3], [5e-8, 0, 0], [3, 4, 0]], dtype=fmt)
    p = np.array([[1, 2, 3], [0, 0, 0], [1, 0, 0], [-4, 3, 0]], dtype=fmt)
    ref = L.per_sample(y, p, epsilon=0.0)
    ex = L.exact(y, p, epsilon=0.0).round(fmt)
    assert ref.dtype == fmt and ref.tolist() == [0.0, 0.0, -1.0 if fmt(5e-8) else 0.0, 0.0]
    np.testing.assert_array_equal(ref, ex)
    np.testing.assert_array_equal(ref, L.per_sample(y, p, epsilon=None))


def test_cosine_epsilon_zero_in_eval(capsys):
    rc, out, err = run_cli(capsys, "eval", "cosine_similarity", "--y-true", "[[0, 0], [1, 1]]",
                           "--y-pred", "[[1, 1], [1, 0]]", "--param", "epsilon=0")
    assert rc == 0, err
    exact = [ln.split()[1] for ln in out.splitlines() if ln.startswith("exact")]
    assert exact == ["0", "-7.071067811865475244008443621048490392848e-1"]  # -1/sqrt(2)


# --- non-scalar parameters ------------------------------------------------------------------------


def test_non_scalar_parameter_is_a_clear_error_naming_it():
    """``Huber(delta=[1., 2.])`` used to fail inside ``float()`` at the first call; now the
    constructor and the function refuse it with a TypeError naming the parameter."""
    from lossref.keras import losses
    y = np.zeros((2, 2), np.float32)
    with pytest.raises(TypeError, match=r"huber: delta must be a real number \(a scalar\); got \[1.0, 2.0\]"):
        losses.Huber(delta=[1.0, 2.0])
    with pytest.raises(TypeError, match="huber: delta must be a real number"):
        losses.huber(y, y, delta=np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="binary_crossentropy: label_smoothing must be a real number"):
        losses.BinaryCrossentropy(label_smoothing=[0.1])
    # the one documented sequence: focal CE's per-class alpha
    with pytest.raises(TypeError, match="alpha must be a real number or a sequence of them"):
        losses.CategoricalFocalCrossentropy(alpha=["a", "b"])
    per_class = losses.categorical_focal_crossentropy(np.eye(2), np.full((2, 2), 0.5), alpha=[0.25, 0.5])
    # -alpha_k (1 - 1/2)^2 log(1/2) for the labelled class k
    np.testing.assert_allclose(per_class, np.array([0.25, 0.5]) * 0.25 * np.log(2), rtol=1e-15)


# --- a format a torch function lacks ----------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["golden", "--dialect", "torch", "--loss", "ctc_loss", "--dtype", "float16", "--out", "{tmp}/set"],
    ["diff", "torch", "--loss", "ctc_loss", "--dtype", "float16", "--cases", "1", "--no-plots",
     "--out", "{tmp}/report"],
])
def test_asking_for_a_format_torch_does_not_define_is_a_usage_error(capsys, tmp_path, argv):
    """ctc_loss exists in float32 and float64 only: asked for by name in float16 it was a
    silent no-op for golden (exit 0, nothing written) and a traceback for diff."""
    rc, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert rc == 2 and err.count("\n") == 1, err
    assert "ctc_loss has no float16 vectors: torch defines it for float32, float64 only" in err
    assert not (tmp_path / "set").exists() and not (tmp_path / "report").exists()
