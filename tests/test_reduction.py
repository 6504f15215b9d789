"""Stage 3: Keras reduction semantics, the exact twin, and agreement with real Keras."""

from fractions import Fraction as F

import numpy as np
import pytest

import lossref
from lossref.reduction import REDUCTIONS, squeeze_or_expand_to_same_rank

VALUES = np.array([[1.0, 4.0], [9.0, 16.0]])
MASK = np.array([[True, False], [True, True]])


@pytest.mark.parametrize("reduction, sw, want", [
    # worked by hand from the Keras rules (research notes §2.3)
    ("sum_over_batch_size", None, F(26, 3)),
    ("mean", [[2.0], [1.0]], F(27, 3)),
    ("sum", None, F(26)),
    ("sum", [[2.0], [1.0]], F(27)),
    ("mean_with_sample_weight", None, F(26, 3)),
    ("mean_with_sample_weight", [[2.0], [1.0]], F(27, 4)),
])
def test_masked_reductions_by_hand(reduction, sw, want):
    got = lossref.reduce(VALUES, reduction, sample_weight=sw, mask=MASK)
    assert float(got) == float(want)
    exact = lossref.reduce.exact(VALUES, reduction, sample_weight=sw, mask=MASK)
    assert exact.decimal(30).item() == _dec(want, 30)


def _dec(q: F, n: int) -> str:
    import decimal
    with decimal.localcontext() as ctx:
        ctx.prec = n
        d = decimal.Decimal(q.numerator) / decimal.Decimal(q.denominator)
    t = d.as_tuple()
    s = "".join(map(str, t.digits)).ljust(n, "0")
    return f"{'-' if t.sign else ''}{s[0]}.{s[1:]}e{d.adjusted():+d}"


def test_modes_without_weights():
    v = np.array([1.0, 2.0, 6.0], np.float32)
    assert lossref.reduce(v).dtype == np.float32
    assert float(lossref.reduce(v)) == 3.0
    assert float(lossref.reduce(v, "sum")) == 9.0
    assert lossref.reduce(v, None).tolist() == [1.0, 2.0, 6.0]
    assert lossref.reduce(v, "none").tolist() == [1.0, 2.0, 6.0]
    assert float(lossref.reduce(v, "mean_with_sample_weight")) == 3.0


def test_scalar_weight_and_divide_no_nan():
    v = np.array([1.0, 2.0, 6.0])
    assert float(lossref.reduce(v, "mean_with_sample_weight", sample_weight=2.0)) == 9.0  # = sum
    assert float(lossref.reduce(v, sample_weight=[0.0, 0.0, 0.0])) == 0.0
    assert float(lossref.reduce(v, "mean_with_sample_weight", sample_weight=[0.0, 0.0, 0.0])) == 0.0
    assert float(lossref.reduce(v, mask=[False, False, False])) == 0.0  # all masked: 0, no NaN


def test_early_returns():
    assert lossref.reduce(np.array(5.0), "sum").shape == ()
    empty = lossref.reduce(np.zeros((0,)), "sum")
    assert empty.shape == (0,)
    assert float(lossref.reduce(np.zeros((0, 3)))) == 0.0  # 0/0 -> divide_no_nan -> 0


def test_rank_fix_rules():
    a, b = squeeze_or_expand_to_same_rank(np.zeros((3, 1)), np.zeros(3))
    assert a.shape == (3, 1) and b.shape == (3, 1)           # rank-1 partner expanded
    a, b = squeeze_or_expand_to_same_rank(np.zeros((2, 3, 1)), np.zeros((2, 3)))
    assert a.shape == (2, 3) and b.shape == (2, 3)           # longer one squeezed
    a, b = squeeze_or_expand_to_same_rank(np.zeros((2, 3)), np.zeros(2))
    assert a.shape == (2, 3) and b.shape == (2,)             # untouched: last dim is not 1


def test_rank1_values_with_weights_broadcast_like_keras():
    # per-sample (B,T)=(2,3) with sw (B,1): broadcast over T; mean_with_sample_weight divides by sum(sw)
    v = np.arange(6.0).reshape(2, 3)
    sw = np.array([[1.0], [2.0]])
    assert float(lossref.reduce(v, sample_weight=sw)) == (0 + 1 + 2 + 2 * (3 + 4 + 5)) / 6
    assert float(lossref.reduce(v, "mean_with_sample_weight", sample_weight=sw)) == 27 / 3


def test_errors():
    with pytest.raises(ValueError, match=r"reduction='avg' is not supported; expected one of"):
        lossref.reduce(np.ones(3), "avg")
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\) does not broadcast"):
        lossref.reduce(np.ones(3), sample_weight=np.ones(4))
    with pytest.raises(TypeError, match="values must be a float array"):
        lossref.reduce(np.ones(3, dtype=int))


def test_reference_matches_exact_on_random_weights():
    rng = np.random.default_rng(0)
    for fmt in (np.float16, np.float32, np.float64):
        v = rng.uniform(0, 10, (4, 5)).astype(fmt)
        sw = rng.uniform(0, 2, (4, 5)).astype(fmt)
        m = rng.random((4, 5)) > 0.3
        for r in REDUCTIONS:
            got = lossref.reduce(v, r, sample_weight=sw, mask=m)
            want = lossref.reduce.exact(v, r, sample_weight=sw, mask=m).round(fmt)
            assert np.array_equal(got, want), (fmt, r)  # all terms >= 0: correctly rounded here


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_against_keras_reduce_weighted_values(keras, reduction):
    from keras.src.losses.loss import reduce_weighted_values
    rng = np.random.default_rng(1)
    v = rng.uniform(0, 3, (3, 4)).astype(np.float32)
    cases = [dict(), dict(sample_weight=rng.uniform(0, 2, (3, 4)).astype(np.float32)),
             dict(sample_weight=rng.uniform(0, 2, (3, 1)).astype(np.float32)),
             dict(mask=rng.random((3, 4)) > 0.4),
             # a (3, 1) weight with a (3, 4) mask fails on Keras's numpy backend (in-place
             # multiply); lossref broadcasts as the other backends do
             dict(mask=rng.random((3, 4)) > 0.4, sample_weight=rng.uniform(0, 2, (3, 4)).astype(np.float32))]
    for kw in cases:
        ref = reduce_weighted_values(v, reduction=reduction, dtype="float32", **kw)
        ours = lossref.reduce(v, reduction, **kw)
        np.testing.assert_allclose(ours, np.asarray(ref), rtol=4 * 2.0 ** -23, err_msg=str(kw))


def test_scalar_values_with_weights_in_both_arithmetics():
    # a scalar per-sample value (rank-1 input, or Dice with axis=None) times a weight vector
    v = np.array(2.0)
    for r in ("sum_over_batch_size", "sum", "mean_with_sample_weight", None):
        ref = lossref.reduce(v, r, sample_weight=[1.0, 0.0, 3.0])
        ex = lossref.reduce.exact(v, r, sample_weight=[1.0, 0.0, 3.0]).round("float64")
        assert np.array_equal(ref, ex), r
    assert float(lossref.reduce(v, sample_weight=[1.0, 0.0, 3.0])) == 2.0 * 4.0 / 3
    assert float(lossref.reduce.exact(v, sample_weight=2.0).round()) == 4.0
