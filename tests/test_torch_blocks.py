"""Blocked evaluation of large inputs (the torch dialect, the catalogue's third inputs):
the same values as one whole-array evaluation, for every elementwise function, every layout (contiguous,
broadcast views, array parameters of other shapes) and any number of threads; and the
blocked compensated total against ``math.fsum``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from lossref import registry
from lossref.reduction import FLOAT64
from lossref.torch.nn import functional as F

ROWS, COLS = 2100, 160  # 336,000 elements: past the blocked threshold (4 blocks of 2**16)


def _inputs(rng, dtype):
    x = rng.standard_normal((ROWS, COLS)).astype(dtype)
    y = rng.standard_normal((ROWS, COLS)).astype(dtype)
    prob = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dtype)
    label = (y > 0).astype(dtype)
    return x, y, prob, label


def _calls(x, y, prob, label):
    """(name, call) for every function the dialect evaluates in blocks: elementwise, or
    per row through the catalogue's own blocks (the embedding losses)."""
    row_var = np.abs(y[:, 0]) + 0.5  # one variance per row: broadcast, not contiguous
    return [
        ("l1_loss", lambda r: F.l1_loss(x, y, reduction=r)),
        ("mse_loss", lambda r: F.mse_loss(x, y, reduction=r)),
        ("mse_loss weight", lambda r: F.mse_loss(x, y, reduction=r, weight=np.abs(y))),
        ("huber_loss", lambda r: F.huber_loss(x, y, reduction=r, delta=0.5)),
        ("smooth_l1_loss", lambda r: F.smooth_l1_loss(x, y, reduction=r, beta=0.3)),
        ("binary_cross_entropy", lambda r: F.binary_cross_entropy(prob, label, reduction=r)),
        ("binary_cross_entropy_with_logits pos_weight",
         lambda r: F.binary_cross_entropy_with_logits(x, label, reduction=r,
                                                      pos_weight=np.abs(y[0]) + 0.25)),
        ("kl_div", lambda r: F.kl_div(x, prob, reduction=r)),
        ("poisson_nll_loss", lambda r: F.poisson_nll_loss(x, np.abs(y), reduction=r, full=True)),
        ("soft_margin_loss", lambda r: F.soft_margin_loss(x, np.sign(y), reduction=r)),
        ("hinge_embedding_loss", lambda r: F.hinge_embedding_loss(x, np.sign(y), reduction=r)),
        ("gaussian_nll_loss", lambda r: F.gaussian_nll_loss(x, y, np.abs(y) + 0.1, reduction=r)),
        ("gaussian_nll_loss row var", lambda r: F.gaussian_nll_loss(x, y, row_var, reduction=r)),
        ("mse_loss broadcast target", lambda r: F.mse_loss(x, y[:1], reduction=r)),
        ("margin_ranking_loss", lambda r: F.margin_ranking_loss(x, y, np.sign(y), reduction=r, margin=0.5)),
        ("cosine_embedding_loss", lambda r: F.cosine_embedding_loss(x, y, np.sign(y[:, 0]), reduction=r)),
        ("triplet_margin_loss", lambda r: F.triplet_margin_loss(x, y, prob, reduction=r, p=3.0, swap=True)),
        ("triplet_margin_with_distance_loss", lambda r: F.triplet_margin_with_distance_loss(x, y, prob, reduction=r)),
    ]


def _whole(monkeypatch, call, r):
    """The value with blocking off (one block as large as any input)."""
    with monkeypatch.context() as m:
        m.setattr(registry, "_CHUNK", 1 << 40)
        return call(r)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_values_equal_whole_array_values(monkeypatch, dtype):
    rng = np.random.default_rng(3)
    for name, call in _calls(*_inputs(rng, dtype)):
        blocked, whole = call("none"), _whole(monkeypatch, call, "none")
        assert blocked.dtype == whole.dtype == dtype and blocked.shape == whole.shape, name
        assert np.array_equal(blocked, whole, equal_nan=True), name
        for r in ("mean", "sum"):
            b, w = call(r), _whole(monkeypatch, call, r)
            # the totals differ only in how the compensated partial sums are grouped:
            # both are within about one rounding of the exact sum
            assert b.dtype == dtype and abs(float(b) - float(w)) <= 2 * np.spacing(abs(float(w))), (name, r)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_blocked_values_do_not_depend_on_threads(monkeypatch):
    x, y, prob, label = _inputs(np.random.default_rng(5), np.float32)
    calls = _calls(x, y, prob, label)
    monkeypatch.setenv("LOSSREF_THREADS", "1")
    one = [(c("none"), c("mean")) for _, c in calls]
    monkeypatch.setenv("LOSSREF_THREADS", "3")
    three = [(c("none"), c("mean")) for _, c in calls]
    for (name, _), a, b in zip(calls, one, three):
        assert np.array_equal(a[0], b[0], equal_nan=True) and a[1] == b[1], name


def test_blocked_total_is_the_compensated_sum():
    rng = np.random.default_rng(11)
    n = 5 * registry.block_elements() + 123
    # terms of wildly different magnitudes and both signs, a large part cancelling: a
    # plain float64 sum loses most of the digits of the total
    v = rng.standard_normal(n) * np.exp2(rng.integers(-40, 40, n))
    v[1::2] = -v[0:-1:2] * (1 + rng.uniform(-1e-9, 1e-9, v[1::2].size))
    w = rng.uniform(0, 3, n)
    exact = float(sum(Fraction(a) * Fraction(b) for a, b in zip(v.tolist(), w.tolist())))
    for got, want in ((FLOAT64.total(v), math.fsum(v.tolist())), (FLOAT64.total(v, w), exact)):
        assert abs(float(got) - want) <= np.spacing(abs(want)), (got, want)


@pytest.mark.parametrize("name, param", [("gaussian_nll", "var"), ("margin_ranking", "x2"),
                                         ("cosine_embedding", "x2"), ("triplet_margin", "negative")])
def test_catalogue_array_parameters_are_cut_with_the_rows(monkeypatch, name, param):
    """A third input (LossDef.arrays) of the inputs' shape, of one row's shape (a
    broadcast view: each block gathers its rows) and along strided inputs: the blocked
    per-sample values equal the whole-array ones bit for bit."""
    from lossref import get

    L = get(name)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    y = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    if name == "cosine_embedding":
        y = np.where(rng.random(ROWS) < 0.5, 1, -1).astype(np.float32)
    full = np.abs(rng.standard_normal((ROWS, COLS))).astype(np.float32) + np.float32(0.1)
    for extra in (full, full[0], full[:, :1] if name in ("gaussian_nll", "margin_ranking") else full[::-1]):
        for xx, yy in ((x, y), (x[:, ::-1], y[::-1])):  # contiguous, and strided views
            blocked = L.per_sample(yy, xx, **{param: extra})
            with monkeypatch.context() as m:
                m.setattr(registry, "_CHUNK", 1 << 40)
                whole = L.per_sample(yy, xx, **{param: extra})
            assert blocked.shape == (ROWS,) and np.array_equal(blocked, whole, equal_nan=True), \
                (name, np.shape(extra))
