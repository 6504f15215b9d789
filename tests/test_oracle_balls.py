"""The fast path of the oracle (Arb balls) against the mpmath path, bit for bit.

* :func:`lossref.oracle.balls.decide_round` never accepts a ball whose two ends round
  differently (checked on exact endpoints with :func:`lossref.formats.round_mpf`);
* every loss of the catalogue decides its hard cases (tests/data/hard_cases.txt: values
  nearest a rounding midpoint, found by benchmarks/hard_cases.py) to the same bits and
  decimal digits on both paths, in all four formats;
* every function of every dialect renders the same golden-vector bytes on both paths,
  and again with the balls started at 12 bits, where most comparisons in the formulas are
  undecided: a branch taken wrongly on overlapping balls would change a byte;
* at low precision every finite ball contains the exact value (mpmath at 320 bits).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mpmath
import numpy as np
import pytest

import lossref
from lossref import formats, oracle
from lossref.oracle import balls, ops
from lossref.vectors import generate, targets

from .support import FORMATS

flint = pytest.importorskip("flint")
HERE = Path(__file__).parent


@pytest.fixture
def backend(monkeypatch):
    def use(name, start=None, levels=3):
        monkeypatch.setattr(oracle, "BACKEND", name)
        monkeypatch.setattr(oracle, "BALL_START", start)
        monkeypatch.setattr(oracle, "BALL_LEVELS", levels)
    return use


# --- the decision ---------------------------------------------------------------------------------


def _random_balls(rng, f, n):
    """Balls around values near representable numbers, midpoints and binade edges of `f`,
    with radii from 0 to several ulps."""
    lo, hi = f.emin - f.precision, min(f.emax, 60)
    e = rng.integers(lo, hi, n)
    m = np.ldexp(1.0 + rng.random(n), e)
    c = formats.round_array(m, f)
    ulp = np.ldexp(1.0, np.maximum(np.frexp(c)[1] - 1, f.emin) - f.precision + 1)
    kind = rng.integers(0, 4, n)
    mid = np.where(kind == 0, c + ulp / 2, np.where(kind == 1, c, np.where(kind == 2, np.ldexp(1.0, e), m)))
    out = []
    for v, u, k in zip(mid, ulp, kind):
        off = flint.arb(float(rng.integers(-3, 4))) * flint.arb(2.0) ** int(rng.integers(-80, -20)) * float(u)
        rad = float(u) * [0.0, 2.0 ** -60, 2.0 ** -30, 0.6][int(rng.integers(0, 4))]
        b = flint.arb(float(v)) + off
        out.append(flint.arb(b.mid(), rad) if rad else b)
    return np.asarray(out + [-b for b in out], dtype=object)


@pytest.mark.parametrize("fmt", FORMATS)
def test_decide_round_never_accepts_a_ball_that_rounds_two_ways(fmt):
    f = formats.get_format(fmt)
    vals = _random_balls(np.random.default_rng(1), f, 600)
    with ops.using("arb", 200):
        c, ok = balls.decide_round(vals, f)
    assert ok.sum() > 300  # most balls narrower than an ulp away from a midpoint decide
    for v, ci, oki in zip(vals, c, ok):
        lo, hi = balls.endpoints(v)
        a, b = formats.round_mpf(lo, f), formats.round_mpf(hi, f)
        if oki:
            assert a == b == ci, (v, a, b, ci)
        elif v.is_exact():
            pytest.fail(f"an exact ball is always decided: {v}")


def test_decide_round_edges():
    f16, f64 = formats.get_format("float16"), formats.get_format("float64")
    A = flint.arb
    vals = np.asarray([A(1 + 2 ** -11), A(-(1 + 3 * 2 ** -11)), A(0), A(65520.0), A(65519.0),
                       A(2.0 ** -25), A(2.0 ** -24 * 1.5), A("nan"), A(1) / 3], dtype=object)
    c, ok = balls.decide_round(vals, f16)
    want = [formats.round_mpf(mpmath.mpf(v), f16) for v in
            (1 + 2 ** -11, -(1 + 3 * 2 ** -11), 0.0, 65520.0, 65519.0, 2.0 ** -25, 2.0 ** -24 * 1.5)]
    assert ok[:7].all() and list(c[:7]) == want
    assert not ok[7]  # a NaN ball says nothing
    assert ok[8] and c[8] == float(np.float16(1 / 3))
    c, ok = balls.decide_round(vals[8:], f64)  # 53-bit ball of 1/3: not enough for float64
    assert not ok[0]
    # zero results: the sign of the exact value, also once the ball underflows float64;
    # a ball around 0 that is not exactly 0 says neither sign
    with ops.using("arb", 200):
        tiny = A(2.0 ** -1074) * A(2.0 ** -200)
        third = tiny / 3
        z = np.asarray([-tiny, tiny, A(0), third - third, A(1e6), -A(1e6)], dtype=object)
        c, ok = balls.decide_round(z, f16)
    assert list(ok) == [True, True, True, False, True, True]
    assert [math.copysign(1, v) for v in c[:3]] == [-1, 1, 1] and c[0] == 0 and c[1] == 0
    assert c[4] == math.inf and c[5] == -math.inf  # wholly past the overflow threshold


# --- hard cases -----------------------------------------------------------------------------------


def hard_cases():
    for line in (HERE / "data" / "hard_cases.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            loss, fmt, y, p, _ = line.split()
            yield loss, fmt, formats.from_hex(y), formats.from_hex(p)


HARD = list(hard_cases())


def test_hard_cases_cover_every_separable_loss_and_format():
    have = {(c[0], c[1]) for c in HARD}
    sep = [n for n in lossref.names() if lossref.get(n).separable and n != "categorical_generalized_cross_entropy"]
    assert {(n, f) for n in sep for f in FORMATS} <= have | {(n, f) for n in sep for f in FORMATS
                                                              if n.startswith("sparse")}
    assert sum(1 for c in HARD if c[1] in ("float16", "bfloat16")) > 50


@pytest.mark.parametrize("fmt", FORMATS)
def test_hard_cases_decide_alike_on_both_paths(fmt, backend):
    cases = [c for c in HARD if c[1] == fmt]
    f = formats.get_format(fmt)
    got = {}
    for name in ("auto", "mpmath"):
        backend(name)
        out = []
        for loss, _, y, p in cases:
            e = lossref.get(loss).exact(np.array([[y]]).astype(f.dtype), np.array([[p]]).astype(f.dtype))
            out.append((formats.to_hex(float(e.round(fmt)[0])), str(e.decimal(40)[0])))
        got[name] = out
    assert got["auto"] == got["mpmath"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_balls_contain_the_exact_value_at_low_precision(fmt):
    f = formats.get_format(fmt)
    checked = 0
    for loss, cf, y, p in HARD:
        if cf != fmt:
            continue
        e = lossref.get(loss).exact(np.array([[y]]).astype(f.dtype), np.array([[p]]).astype(f.dtype))
        truth = e.values(320).ravel()[0]
        for prec in (8, 16, 30):
            b = e._eval("arb", prec).ravel()[0]
            if b.is_finite() and mpmath.isfinite(truth):
                with ops.using("arb", 320):
                    assert b.contains(ops.num(truth)), (loss, prec, b, truth)
                checked += 1
    assert checked > 20


# --- every dialect function, through the golden-vector renderer ----------------------------------

FUNCTIONS = [(d, name) for d in ("keras", "torch", "optax", "tf") for name in sorted(targets.targets(d))
             if targets.get_target(d, name) is not None]
SET = HERE.parent / "spec" / "vectors"


def formats_of(dialect: str, name: str) -> list:
    """The formats the canonical set has for a function (torch's ctc_loss has no 16-bit kernel)."""
    return [f for f in FORMATS if (SET / dialect / name / f"{f}.jsonl").exists()]


@pytest.mark.parametrize("dialect,name", FUNCTIONS)
def test_golden_bytes_alike_on_both_paths(dialect, name, backend):
    assert formats_of(dialect, name)
    out = {}
    for mode, (b, start) in {"mpmath": ("mpmath", None), "balls": ("auto", None),
                             "balls from 12 bits": ("auto", 12)}.items():
        backend(b, start, levels=6 if start else 3)
        out[mode] = b"".join(generate.render_file(name, fmt, 3, 7, dialect) for fmt in formats_of(dialect, name))
    assert out["balls"] == out["mpmath"]
    assert out["balls from 12 bits"] == out["mpmath"]


def test_every_catalogue_loss_is_covered_by_the_golden_comparison():
    def catalogue_name(t):  # a torch/optax/tf target names its dialect function
        return getattr(getattr(t, "function", None), "_loss_name", None) or t.loss

    used = {catalogue_name(targets.get_target(d, n)) for d, n in FUNCTIONS}
    # smooth_labels (optax.smooth_labels) has no vectors: it is compared on its own below
    assert set(lossref.names()) - used == {"smooth_labels"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_smooth_labels_alike_on_both_paths(fmt, backend):
    f = formats.get_format(fmt)
    rng = np.random.default_rng(3)
    y = formats.round_array(np.concatenate([rng.random(40), [0.0, 1.0, -0.0, np.inf, np.nan, f.max, f.min_subnormal]]), f)
    k = formats.round_array(np.concatenate([rng.integers(1, 1000, 40).astype(float), [3.0, 0.0, -0.0, 7.0, 2.0, f.max, 1.0]]), f)
    y, k = (a.reshape(-1, 1).astype(f.dtype) for a in (y, k))
    got = {}
    for name in ("auto", "mpmath"):
        backend(name)
        for alpha in (0.1, 0.0, 1.0, 0.3):
            e = lossref.get("smooth_labels").exact(y, k, alpha=alpha)
            got.setdefault(name, []).append((e.round(fmt).astype(np.float64).tobytes(), e.decimal(40).tolist()))
    assert got["auto"] == got["mpmath"]


def test_an_unknown_backend_is_one_line_and_exit_2(monkeypatch):
    import subprocess
    import sys

    env = dict(__import__("os").environ, LOSSREF_ORACLE="bals")
    r = subprocess.run([sys.executable, "-m", "lossref.cli", "eval", "log_cosh", "--y-true", "[0.5]",
                        "--y-pred", "[1]"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["lossref eval: error: LOSSREF_ORACLE='bals': expected auto, arb or mpmath"]
    monkeypatch.setattr(oracle, "BACKEND", "bals")
    with pytest.raises(ValueError, match="expected auto, arb or mpmath"):
        lossref.get("log_cosh").exact(np.ones((1, 1)), np.ones((1, 1))).round()


def _without_gradients(data: bytes) -> bytes:
    """A vector file's lines with the gradients left out (``expected.grad`` and the
    provenance's ``grad``), in canonical form."""
    from lossref.vectors.fileformat import dumps
    out = []
    for line in data.decode("ascii").splitlines():
        rec = json.loads(line)
        (rec["provenance"] if "provenance" in rec else rec["expected"]).pop("grad", None)
        out.append(dumps(rec))
    return ("\n".join(out) + "\n").encode("ascii")


def test_the_whole_canonical_set_regenerates_byte_identically_on_balls(tmp_path, monkeypatch):
    """Every value of every file of spec/vectors (all dialects, all formats, 64 cases
    each), through the default (ball) path, byte for byte; the gradients, which take
    about thirty times longer, are regenerated for one file of each dialect by
    test_gradient_files_regenerate_byte_identically (and sampled by lossref verify)."""
    assert oracle.use_balls()
    monkeypatch.setenv("LOSSREF_GOLDEN_VALUES_ONLY", "1")
    for d in ("keras", "torch", "optax", "tf"):
        rep = generate.golden(tmp_path, dialect=d, jobs=2, progress=False)
        assert not rep.failed, rep.failed
    files = sorted(p.relative_to(SET) for p in SET.glob("*/*/*.jsonl"))
    assert len(files) >= 320
    differ = [str(f) for f in files if (tmp_path / f).read_bytes() != _without_gradients((SET / f).read_bytes())]
    assert differ == []


@pytest.mark.parametrize("path", ["keras/categorical_crossentropy/float16.jsonl", "torch/cross_entropy/float32.jsonl",
                                  "optax/softmax_cross_entropy/bfloat16.jsonl", "tf/log_poisson_loss/float64.jsonl",
                                  "keras/cosine_similarity/float64.jsonl", "torch/ctc_loss/float64.jsonl"])
def test_gradient_files_regenerate_byte_identically(path):
    """Whole files, gradients included, through the ball path."""
    prov = json.loads((SET / path).read_text().splitlines()[0])["provenance"]
    data = generate.render_file(prov["loss"], prov["dtype"], prov["cases"], prov["seed"], prov["dialect"])
    assert data == (SET / path).read_bytes()
