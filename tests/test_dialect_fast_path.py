"""The Keras dialect's fast path: inputs stay in their format, results stay bit for bit.

The dialect converts an input to its format only when it is not already in it
(``formats.as_format``: no copy, or one cast that rounds once to nearest-even) and hands
arrays of any format to the catalogue, which widens them a block at a time. These tests
check that this gives the bits of the float64 path (every value rounded with
``formats.round_array``, then the catalogue's ``per_sample64`` and stage 3), and that a
call's peak memory beyond its inputs stays below the size of the inputs.
"""

import tracemalloc

import numpy as np
import pytest

import lossref
from lossref import formats
from lossref.keras import base as keras_base
from lossref.keras import losses as K
from lossref.reduction import FLOAT64, reduce_weighted_values

from .support import FORMATS

# the special values make NumPy warn (inf - inf, casts of NaN): those results are the point
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# --- the cases ---------------------------------------------------------------------------------

#: values whose rounding into a narrower format is delicate: overflow of float16 (65520 is
#: the threshold, a tie that rounds up to inf) and float32, subnormals of every format,
#: ties and near-ties, and the specials
SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0, 70000.0, 65520.0, 65519.99, -1e39, 3.5e38,
            6e-8, 3e-8, -2.0 ** -25, 1e-45, 2.0 ** -149 * 1.5, 2.0 ** -133 * 1.5, 1e-300,
            1 + 2.0 ** -11, 1 + 2.0 ** -11 + 2.0 ** -40, 1 + 2.0 ** -8 + 2.0 ** -30,
            1 + 2.0 ** -24, 0.1]


def _keras_pairs():
    """Catalogue name -> (Keras class, Keras function), for every class of the dialect."""
    out = {}
    for name in K.__all__:
        obj = getattr(K, name)
        if isinstance(obj, type) and issubclass(obj, K.LossFunctionWrapper) and obj is not K.LossFunctionWrapper:
            loss = obj().fn._loss_name
            out[loss] = (obj, getattr(K, loss))
    return out


PAIRS = _keras_pairs()
#: arguments a function needs (no default) and variants worth covering
FUNCTION_KWARGS = {"categorical_generalized_cross_entropy": [{"q": 0.5}],
                   "binary_crossentropy": [{}, {"from_logits": True, "label_smoothing": 0.1, "axis": 0}],
                   "categorical_crossentropy": [{}, {"from_logits": True, "label_smoothing": 0.2}],
                   "categorical_focal_crossentropy": [{}, {"alpha": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}],
                   "sparse_categorical_crossentropy": [{}, {"ignore_class": 1}],
                   "dice": [{}, {"axis": 1}], "tversky": [{"alpha": 0.3, "beta": 0.7, "axis": 1}]}
LABELS = ("sparse_categorical_crossentropy", "categorical_generalized_cross_entropy")


def _with_specials(x: np.ndarray, rng) -> np.ndarray:
    flat = x.reshape(-1).copy()
    k = min(flat.size, len(SPECIALS))
    flat[rng.choice(flat.size, k, replace=False)] = rng.permutation(SPECIALS)[:k]
    return flat.reshape(x.shape)


def _raw_inputs(loss: str, rng):
    """Unrounded float64 (or integer label) inputs of `loss`, with SPECIALS where the
    loss takes arbitrary values (labels must stay valid)."""
    if loss in LABELS:
        return rng.integers(0, 6, 4), _with_specials(rng.random((4, 6)), rng)
    if loss == "circle":
        return rng.integers(0, 3, 6), _with_specials(rng.standard_normal((6, 5)), rng)
    if loss == "ctc":
        return np.array([[1, 2, 0], [3, 3, 1], [0, 0, 0]]), _with_specials(rng.standard_normal((3, 5, 6)), rng)
    if loss in ("hinge", "squared_hinge") and rng.random() < 0.5:
        return (rng.random((4, 6)) < 0.5).astype(np.float64), _with_specials(rng.standard_normal((4, 6)), rng)
    return _with_specials(rng.random((4, 6)), rng), _with_specials(rng.standard_normal((4, 6)), rng)


def _in(x, fmt):
    """`x` rounded into `fmt`, in its dtype (labels stay integers)."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else formats.to_format_array(x.astype(np.float64), fmt)


# --- the float64 path, as the dialect computed before the fast path -----------------------------


def _float64_values(x, fmt):
    """`x` as float64 values of `fmt`: every input widened, then rounded by round_array."""
    return formats.round_array(np.asarray(x).astype(np.float64), fmt)


@pytest.fixture
def float64_path(monkeypatch):
    """Runs a thunk with the dialect's conversion replaced by the float64 path."""

    def run(thunk):
        with monkeypatch.context() as m:
            m.setattr(formats, "as_format", _float64_values)
            return thunk()

    return run


def _function_reference(fn, y_true, y_pred, kw, float64_path):
    pr = float64_path(lambda: fn.prepare(y_true, y_pred, **kw))
    assert pr.y_pred.dtype == np.float64
    return formats.to_format_array(fn.loss.per_sample64(pr.y_true, pr.y_pred, pr.params), pr.fmt)


def _class_reference(loss_obj, y_true, y_pred, sample_weight, float64_path):
    """``Loss.__call__`` on float64 values: catalogue per_sample64, then stage 3."""
    fmt = loss_obj._fmt
    t, p = (np.asarray(_float64_values(v, fmt)).astype(fmt.dtype) for v in (y_true, y_pred))
    pr, fn = float64_path(lambda: loss_obj._prepared(t, p))
    sw = None if sample_weight is None else _float64_values(sample_weight, fmt)
    out = reduce_weighted_values(fn.values64(pr), loss_obj.reduction, sw, pr.mask, FLOAT64)
    return formats.to_format_array(out, fmt)


def _same_bits(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = ((g == w) & (np.signbit(g) == np.signbit(w))) | (np.isnan(g) & np.isnan(w))
    assert same.all(), f"{what}: {got} != {want}"


# --- conversion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_array_in_its_format_is_not_copied(fmt):
    x = formats.to_format_array(np.linspace(-3, 3, 12), fmt).reshape(3, 4)
    assert formats.as_format(x, fmt) is x
    assert keras_base.convert(x, "y_pred")[0] is x
    assert keras_base.convert(x, "y_true", formats.get_format(fmt))[0] is x


@pytest.mark.parametrize("src", FORMATS)
@pytest.mark.parametrize("dst", FORMATS)
def test_as_format_rounds_like_round_array(src, dst):
    """Every path of as_format (no copy, direct cast, float64 and round_array) gives the
    correctly rounded value: overflow to inf, subnormals, ties, NaN, inf and -0 included."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2 ** 63, 20000, dtype=np.uint64).view(np.float64)
    m, _ = np.frexp(np.where(np.isfinite(bits), bits, 0.5))
    f = formats.get_format(dst)
    wide = np.ldexp(m, rng.integers(f.emin - f.precision - 3, min(f.emax, 1021) + 3, m.size))
    values = np.concatenate([SPECIALS, np.negative(SPECIALS), formats.cast_probes(src, dst), wide])
    with np.errstate(over="ignore"):
        x = formats.to_format_array(values, src)
    _same_bits(formats.as_format(x, dst), formats.to_format_array(x.astype(np.float64), dst), f"{src}->{dst}")


@pytest.mark.parametrize("src", ["float16", "bfloat16"])
def test_as_format_on_every_16_bit_value(src):
    x = np.arange(2 ** 16, dtype=np.uint16).view(formats.get_format(src).dtype)
    for dst in FORMATS:
        _same_bits(formats.as_format(x, dst), formats.to_format_array(x.astype(np.float64), dst), f"{src}->{dst}")


def test_integers_and_lists_round_once_from_float64():
    big = np.array([2 ** 53 + 1, 2 ** 24 + 2 ** 16 + 1, -(2 ** 60) - 1, 65519, 70000])
    for fmt in FORMATS:
        for x in (big, big.astype(np.int32), np.array([True, False])):
            _same_bits(formats.as_format(x, fmt), formats.to_format_array(x.astype(np.float64), fmt), fmt)
    _same_bits(keras_base.convert([0.1, 1e39, 1e-46], "y")[0],
               formats.to_format_array(np.array([0.1, 1e39, 1e-46]), "float32"), "list")


def test_cast_probes_catch_a_cast_that_rounds_twice():
    """A float64 -> bfloat16 cast through float32 (two roundings) differs on the probes,
    so casts_exactly would keep such a cast on round_array."""
    x = formats.cast_probes("float64", "bfloat16")
    with np.errstate(over="ignore"):
        twice = formats.round_array(formats.round_array(x, "float32"), "bfloat16")
    assert not np.array_equal(twice, formats.round_array(x, "bfloat16"), equal_nan=True)
    assert formats.casts_exactly(np.float64, "float32") and formats.casts_exactly(np.float64, "float16")


def test_bfloat16_held_in_float32_is_rounded(monkeypatch):
    monkeypatch.setattr(formats, "_ml_dtypes", None)
    x = np.array([1 + 2.0 ** -8 + 2.0 ** -20, 3.0], dtype=np.float32)
    out = formats.as_format(x, "bfloat16")
    assert out.dtype == np.float32 and out is not x
    assert out.tolist() == [1 + 2.0 ** -7, 3.0]


# --- every class and function: bit for bit ------------------------------------------------------


@pytest.mark.parametrize("loss", sorted(PAIRS))
def test_function_bits_match_the_float64_path(loss, float64_path):
    fn = PAIRS[loss][1]
    rng = np.random.default_rng(sorted(PAIRS).index(loss))
    for kw in FUNCTION_KWARGS.get(loss, [{}]):
        for _ in range(3):
            t, p = _raw_inputs(loss, rng)
            cases = [(fmt, _in(t, fmt), _in(p, fmt)) for fmt in FORMATS]
            # y_true unrounded (float64) next to y_pred of a narrower format: cast to it
            cases += [(f"float64 y_true, {fmt} y_pred", t, _in(p, fmt)) for fmt in ("float16", "float32")]
            for what, tt, pp in cases:
                want = _function_reference(fn, tt, pp, kw, float64_path)
                _same_bits(fn(tt, pp, **kw), want, f"{loss}({kw}) {what}")


@pytest.mark.parametrize("loss", sorted(PAIRS))
def test_class_bits_match_the_float64_path(loss, float64_path):
    cls = PAIRS[loss][0]
    rng = np.random.default_rng(100 + sorted(PAIRS).index(loss))
    t, p = _raw_inputs(loss, rng)
    n = np.shape(p)[0]
    for dtype in FORMATS:
        # inputs in the loss dtype, and float64 inputs the class rounds into it
        for tt, pp in ((_in(t, dtype), _in(p, dtype)), (t, p)):
            for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight", None):
                for sw in (None, _with_specials(rng.random(n) * 3, rng) if dtype == "float16" else rng.random(n), 2.5):
                    obj = cls(reduction=reduction, dtype=dtype)
                    want = _class_reference(obj, tt, pp, sw, float64_path)
                    _same_bits(obj(tt, pp, sample_weight=sw), want,
                               f"{cls.__name__}(dtype={dtype}, reduction={reduction}) sw={np.shape(sw)} "
                               f"inputs {np.asarray(pp).dtype}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_simple_losses_equal_the_catalogue_directly(fmt):
    """Without Keras parameters the function is the catalogue's per_sample, and the class
    its per_sample64 reduced by stage 3, rounded once."""
    rng = np.random.default_rng(3)
    t, p = (_in(_with_specials(rng.standard_normal((5, 7)), rng), fmt) for _ in range(2))
    sw = rng.random(5)
    for name, cls in (("mean_squared_error", K.MeanSquaredError), ("mean_absolute_error", K.MeanAbsoluteError),
                      ("log_cosh", K.LogCosh), ("categorical_hinge", K.CategoricalHinge)):
        L = lossref.get(name)
        _same_bits(getattr(K, name)(t, p), L.per_sample(t, p), f"{name} {fmt}")
        want = reduce_weighted_values(L.per_sample64(t, p, L.bind({})), "sum_over_batch_size",
                                      formats.round_array(sw, fmt), None, FLOAT64)
        _same_bits(cls(dtype=fmt)(t, p, sample_weight=sw), formats.to_format_array(want, fmt), f"{cls.__name__} {fmt}")


def test_hinge_labels_keep_their_format():
    labels = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.float16)
    pr = K.hinge.prepare(labels, np.ones((2, 3), np.float16))
    assert pr.y_true.dtype == np.float16 and pr.y_true.tolist() == [[-1, 1, 1], [1, -1, -1]]
    assert K.hinge.prepare(labels.astype(np.float32) * 2, np.ones((2, 3), np.float32)).y_true.max() == 2


def test_circle_mask_counts_pairs_without_a_pair_matrix():
    """The anchors Keras masks are those without a positive or a negative pair."""
    from lossref.keras._structured import _anchor_mask
    from lossref.losses.circle import pair_masks

    rng = np.random.default_rng(5)
    for n, r in ((8, 8), (6, 9), (9, 4), (1, 1), (3, 3)):
        lab, ref = rng.integers(0, 3, n).astype(np.float64), rng.integers(0, 3, r).astype(np.float64)
        for diag in (True, False):
            for ref_labels in (ref, lab) if n == r else (ref,):
                pos, neg = pair_masks(lab, ref_labels, diag)
                np.testing.assert_array_equal(_anchor_mask(lab, ref_labels, diag), pos.any(1) & neg.any(1))


# --- memory -----------------------------------------------------------------------------------


def _peak_extra(thunk) -> int:
    tracemalloc.start()
    try:
        thunk()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _large(loss: str):
    """float32 inputs of 2**22 elements (labels for the sparse loss)."""
    rng = np.random.default_rng(0)
    shape = (4096, 1024)
    p = rng.random(shape, dtype=np.float32)
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, shape[1], shape[0]), p
    return (rng.random(shape, dtype=np.float32) < 0.5).astype(np.float32), p


@pytest.mark.parametrize("cls", [K.MeanSquaredError, K.BinaryCrossentropy, K.CategoricalCrossentropy,
                                 K.SparseCategoricalCrossentropy, K.Hinge])
def test_peak_memory_of_a_call_stays_below_its_inputs(cls):
    """No full-size copy: the class call (inputs already in the loss dtype) and the
    function both stay within the bytes of their inputs, sample weights included."""
    obj = cls()
    y, p = _large(obj.fn._loss_name)
    inputs = y.nbytes + p.nbytes
    sw = np.linspace(0, 1, p.shape[0])  # float64 weights: converted to the loss dtype
    for what, thunk in (("class", lambda: obj(y, p)), ("class, weighted", lambda: obj(y, p, sample_weight=sw)),
                        ("function", lambda: obj.fn(y, p))):
        peak = _peak_extra(thunk)
        assert peak <= inputs, f"{cls.__name__} {what}: peak {peak / inputs:.2f}x the input bytes"


def test_peak_memory_of_a_broadcast_y_true():
    """y_true of shape (B, 1) broadcast against (B, D) is a view, never a (B, D) copy."""
    y, p = _large("mean_squared_error")
    y = y[:, :1]
    peak = _peak_extra(lambda: K.MeanSquaredError()(y, p))
    assert peak <= y.nbytes + p.nbytes


def test_structured_losses_add_no_memory_to_the_catalogue():
    """The dialect hands Dice, Tversky and cosine similarity its arrays as they are: its
    peak is the catalogue's own, plus nothing of the size of the inputs."""
    y, p = _large("dice")
    y, p = y[:1024], p[:1024]
    inputs = y.nbytes + p.nbytes
    for name, cls in (("dice", K.Dice), ("tversky", K.Tversky), ("cosine_similarity", K.CosineSimilarity)):
        catalogue = _peak_extra(lambda: lossref.get(name).per_sample(y, p))
        for what, thunk in (("class", lambda: cls()(y, p)), ("function", lambda: getattr(K, name)(y, p))):
            peak = _peak_extra(thunk)
            assert peak <= catalogue + 0.05 * inputs, (name, what, peak / inputs, catalogue / inputs)


def _large_structured(loss: str):
    """float32 inputs of 2**22 elements (the embeddings or logits; labels beside them)."""
    rng = np.random.default_rng(1)
    if loss == "ctc":
        labels = rng.integers(1, 128, (512, 20))
        labels[:, 15:] = 0  # trailing padding
        return labels, rng.standard_normal((512, 64, 128), dtype=np.float32)
    if loss == "circle":
        return rng.integers(0, 64, 4096), rng.standard_normal((4096, 1024), dtype=np.float32)
    return _large(loss)


@pytest.mark.parametrize("loss", ["dice", "tversky", "cosine_similarity", "ctc", "circle"])
def test_peak_memory_of_structured_losses_stays_below_their_inputs(loss):
    """Blocks widened one at a time: no float64 copy of the inputs and no temporary of their
    size, also where everything reduces to one number (Dice and Tversky with axis=None) and
    where every pair of rows meets (Circle). The class call runs the function and stage 3."""
    y, p = _large_structured(loss)
    peak = _peak_extra(lambda: PAIRS[loss][0]()(y, p))
    assert peak <= y.nbytes + p.nbytes, f"{loss}: peak {peak / (y.nbytes + p.nbytes):.2f}x the input bytes"


# --- blocks: the structured references a block at a time ------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 elements on a pool of 3 threads: every blocked path runs on small arrays.
    Returns a function that evaluates a thunk again with blocks too large to split anything."""
    from lossref import registry

    monkeypatch.setattr(registry, "_CHUNK", 16)
    monkeypatch.setattr(registry, "_BLOCKS_PER_THREAD", 1)
    monkeypatch.setenv("LOSSREF_THREADS", "3")

    def whole(thunk):
        with monkeypatch.context() as m:
            m.setattr(registry, "_CHUNK", 1 << 30)
            return thunk()

    return whole


def _overlap_inputs(fmt, rng):
    """Masks and probabilities (B, H, W) with empty, perfect and near-perfect groups."""
    f = formats.get_format(fmt)
    y = (rng.random((6, 5, 7)) < 0.4).astype(np.float64)
    p = rng.random((6, 5, 7))
    y[0] = p[0] = 0.0  # an empty sample
    p[1] = y[1]  # a perfect one
    p[2] = np.where(y[2] > 0, 1 - f.eps, f.eps)  # a near-perfect one
    return _in(y, fmt), _in(p, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dice_and_tversky_in_blocks_stay_within_their_budget(fmt, small_blocks):
    """Blocks holding whole groups and groups summed over many blocks (partial double-double
    sums added up): masks and probabilities, so no cancellation is left (spec/losses/dice.md):
    1 ulp in float32 and narrower, 4 u |loss| + 1/2 ulp in float64."""
    from .support import assert_ulps

    rng = np.random.default_rng(11)
    y, p = _overlap_inputs(fmt, rng)
    for name, kw in (("dice", {}), ("dice", {"epsilon": None}), ("tversky", {"alpha": 0.3, "beta": 0.7})):
        L = lossref.get(name)
        for axis in (None, -1, (1, 2), (0, 2), 0, ()):
            if kw.get("epsilon", 1) is None and axis not in (None, (1, 2), (0, 2), 0):
                continue  # empty groups: 0/0
            got = L.per_sample(y, p, axis=axis, **kw)
            assert_ulps(got, L.exact(y, p, axis=axis, **kw), fmt, 4.5 if fmt == "float64" else 1,
                        f"{name}{kw} axis={axis}")


def test_dice_and_tversky_in_blocks_special_and_huge_values(small_blocks):
    """A non-finite entry makes its group NaN wherever its block lies; groups above 2**500
    are summed again scaled, also when they span many blocks."""
    rng = np.random.default_rng(12)
    y, p = (rng.random((6, 5, 7)) for _ in range(2))
    y[3, 2, 1], p[4, 0, 6] = np.inf, np.nan
    huge = np.ldexp(1.0, 700)
    y[5] *= huge
    p[5] *= huge
    for name in ("dice", "tversky"):
        L = lossref.get(name)
        for axis in (None, (1, 2), (0, 2), -1):
            got = L.per_sample(y, p, axis=axis)
            want = small_blocks(lambda: L.per_sample(y, p, axis=axis))
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=f"{name} axis={axis}")
        assert np.isnan(L.per_sample(y, p))
        scaled = L.per_sample(y[5:], p[5:], axis=(1, 2))  # one group of 35 in many blocks
        assert np.isfinite(scaled).all()
        np.testing.assert_allclose(scaled, L.exact(y[5:], p[5:], axis=(1, 2)).round("float64"), rtol=1e-14)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cosine_and_ctc_in_blocks_are_the_whole_evaluation(fmt, small_blocks):
    """Rows are independent: blocks of them give the bits of one pass, whatever the axis
    (rows this short are summed each on its own, so no other row can change a bit)."""
    rng = np.random.default_rng(13)
    y, p = (_in(_with_specials(rng.standard_normal((9, 4, 6)), rng), fmt) for _ in range(2))
    cos = lossref.get("cosine_similarity")
    for axis in (-1, 1, 0):
        _same_bits(cos.per_sample(y, p, axis=axis), small_blocks(lambda: cos.per_sample(y, p, axis=axis)),
                   f"cosine axis={axis}")
    labels = np.array([[1, 2, 2], [3, 0, 0], [0, 0, 0], [4, 4, 1], [5, 1, 5]] * 2)[:9]
    logits = _in(_with_specials(rng.standard_normal((9, 5, 6)) * 3, rng), fmt)
    ctc = lossref.get("ctc")
    _same_bits(ctc.per_sample(labels, logits), small_blocks(lambda: ctc.per_sample(labels, logits)), "ctc")


@pytest.mark.parametrize("fmt", FORMATS)
def test_circle_in_tiles_stays_within_its_budget(fmt, small_blocks):
    """Tiles of anchors and references, their log-sum-exps merged; the pairs (i, j) and
    (j, i) shared without separate references: 1 ulp in float32 and narrower, and in
    float64 the one-pass value to a few ulps (spec/losses/circle.md)."""
    from .support import assert_ulps

    rng = np.random.default_rng(14)
    e = rng.standard_normal((11, 3))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    p, labels = _in(e, fmt), rng.integers(0, 3, 11)
    refs, ref_labels = _in(rng.standard_normal((7, 3)) / 2, fmt), rng.integers(0, 3, 7)
    L = lossref.get("circle")
    for kw in ({}, {"remove_diagonal": False, "gamma": 32.0}, {"ref_embeddings": refs, "ref_labels": ref_labels},
               {"ref_labels": np.roll(labels, 1)}):
        got = L.per_sample(labels, p, **kw)
        if fmt == "float64":
            np.testing.assert_allclose(got, small_blocks(lambda: L.per_sample(labels, p, **kw)), rtol=2e-15)
        else:
            assert_ulps(got, L.exact(labels, p, **kw), fmt, 1, f"circle {sorted(kw)}")
    special = p.copy()
    special[2, 1], special[5, 0] = np.inf, np.nan
    _same_bits(L.per_sample(labels, special), small_blocks(lambda: L.per_sample(labels, special)),
               "circle with inf and NaN")


@pytest.mark.parametrize("loss", ["categorical_hinge", "multilabel_margin"])
def test_a_rank_1_input_is_one_sample_even_past_one_block(loss):
    """A rowwise loss on a rank-1 input longer than a block: one sample, not rows of the
    feature axis cut into blocks (it raised before, and could split the class axis)."""
    c = 70000  # more than one block of 2**16 elements
    rng = np.random.default_rng(1)
    p = rng.random(c).astype(np.float32)
    if loss == "categorical_hinge":
        t = np.zeros(c, np.float32)
        t[5] = 1
    else:
        t = np.full(c, -1.0, np.float32)
        t[:3] = [5, 7, 11]
    L = lossref.get(loss)
    one = L.per_sample(t, p)
    assert one.shape == () and one == L.per_sample(t[None], p[None])[0]
    assert one == L.exact(t, p).round()
