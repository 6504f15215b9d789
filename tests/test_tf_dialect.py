"""lossref.tf against the installed TensorFlow: signatures, values, errors, exact twins.

Values are compared where TF is accurate: typical inputs (no logits so negative that
``weighted_cross_entropy_with_logits`` cancels, no impossible CTC labels, where TF's
dense path returns a large finite value instead of inf).
"""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

from lossref.tf import SparseLabels, nn  # noqa: E402
from lossref.tf._base import TFDtypeError, TFInvalidArgumentError  # noqa: E402

NAMES = ["sigmoid_cross_entropy_with_logits", "weighted_cross_entropy_with_logits",
         "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
         "log_poisson_loss", "l2_loss", "ctc_loss", "compute_average_loss", "scale_regularization_loss"]
DTYPES = [np.float32, np.float64]


def _np(t):
    return np.asarray(t.numpy())


def assert_ulps(ours, theirs, dtype, ulps=4, terms=None):
    """Equal shapes and dtypes, and within `ulps` units in the last place of the larger, or
    of `terms` where given: the size of the terms TF's formula adds (it cancels there)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.dtype(dtype)
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    size = np.maximum(np.abs(a), np.abs(b))
    if terms is not None:
        size = np.maximum(size, np.abs(terms))
    scale = np.spacing(size.astype(dtype)).astype(np.float64)
    ok = np.isnan(a) | (a == b) | (np.abs(a - b) <= ulps * scale)
    assert ok.all(), f"max error {np.max(np.abs(a - b) / scale)} ulps"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --- (a) signatures ---------------------------------------------------------------------------------


def _params(f):
    return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_tfs(name):
    theirs = _params(inspect.unwrap(getattr(tf.nn, name)))
    ours = getattr(nn, name)
    assert _params(ours) == theirs
    assert _params(ours.exact) == theirs


# --- (b) and (d) values: the function and the exact twin's rounding against TF --------------------------


def both(f, tf_f, dtype, ulps=4, terms=None, **kw):
    """``f(**kw)`` and ``f.exact(**kw)`` rounded, each within `ulps` of TF's value."""
    theirs = _np(tf_f(**kw))
    assert_ulps(f(**kw), theirs, dtype, ulps, terms)
    assert_ulps(f.exact(**kw).round(dtype), theirs, dtype, ulps, terms)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_weighted(dtype, rng):
    z = rng.uniform(0, 1, (4, 6)).astype(dtype)
    x = rng.normal(0, 3, (4, 6)).astype(dtype)
    # TF adds max(x, 0) - x z and log1p(exp(-|x|)): accurate to a few ulps of |x|
    both(nn.sigmoid_cross_entropy_with_logits, tf.nn.sigmoid_cross_entropy_with_logits, dtype,
         terms=np.abs(x), labels=z, logits=x)
    x = rng.uniform(-3, 8, (4, 6)).astype(dtype)  # TF's weighted form cancels for logits << 0
    for q in (2.5, np.array([0.5, 1.0, 2.0, 3.0, 0.25, 4.0], dtype)):
        both(nn.weighted_cross_entropy_with_logits, tf.nn.weighted_cross_entropy_with_logits, dtype,
             terms=np.abs(x) * np.maximum(q, 1), labels=z, logits=x, pos_weight=q)


def test_weighted_pos_weight_broadcasts_to_a_larger_shape(rng):
    z, x = np.array([0.0, 1.0], np.float32), np.array([0.5, -0.5], np.float32)
    q = np.array([[1.0], [2.0], [3.0]], np.float32)
    both(nn.weighted_cross_entropy_with_logits, tf.nn.weighted_cross_entropy_with_logits, np.float32,
         labels=z, logits=x, pos_weight=q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(dtype, rng):
    x = rng.normal(0, 2, (4, 5)).astype(dtype)
    y = rng.dirichlet(np.ones(5), 4).astype(dtype)
    f, g = nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits
    both(f, g, dtype, labels=y, logits=x)
    both(f, g, dtype, labels=y.T, logits=x.T, axis=0)
    both(f, g, dtype, labels=y[0], logits=x)  # one row of labels for every row of logits
    x3 = rng.normal(0, 2, (2, 3, 5)).astype(dtype)
    y3 = rng.dirichlet(np.ones(5), (2, 3)).astype(dtype)
    both(f, g, dtype, labels=y3, logits=x3)
    both(f, g, dtype, labels=np.moveaxis(y3, -1, 1), logits=np.moveaxis(x3, -1, 1), axis=1)


def test_softmax_casts_labels_to_the_logits_dtype(rng):
    x = rng.normal(0, 2, (3, 4)).astype(np.float32)
    y = rng.dirichlet(np.ones(4), 3)  # float64 labels: TF casts them to float32
    both(nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits, np.float32,
         labels=y, logits=x)
    onehot = np.eye(4, dtype=np.int64)[[0, 3, 1]]
    both(nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits, np.float32,
         labels=onehot, logits=x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_sparse(dtype, label_dtype, rng):
    x = rng.normal(0, 2, (2, 3, 5)).astype(dtype)
    y = rng.integers(0, 5, (2, 3)).astype(label_dtype)
    f, g = nn.sparse_softmax_cross_entropy_with_logits, tf.nn.sparse_softmax_cross_entropy_with_logits
    both(f, g, dtype, labels=y, logits=x)
    both(f, g, dtype, labels=y[0], logits=x[0])
    both(f, g, dtype, labels=y[0, 0], logits=x[0, 0])  # one row: a scalar label


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("full", [False, True])
def test_log_poisson(dtype, full, rng):
    z = np.concatenate([[0.0, 0.5, 1.0, 2.0, 7.0], rng.uniform(0, 20, 11)]).astype(dtype)
    c = rng.normal(0, 1.5, 16).astype(dtype)
    # TF adds exp(c), z c and, for the full loss, Stirling's terms: a few ulps of their size
    z64, c64 = z.astype(np.float64), c.astype(np.float64)
    terms = np.exp(c64) + np.abs(z64 * c64) + (z64 * np.abs(np.log(np.maximum(z64, 1))) + z64 + 1 if full else 0)
    both(nn.log_poisson_loss, tf.nn.log_poisson_loss, dtype, terms=terms, targets=z, log_input=c,
         compute_full_loss=full)


def test_log_poisson_full_loss_of_negative_targets_is_nan():
    z = np.array([-1.0, 0.0, 1.0], np.float32)
    c = np.zeros(3, np.float32)
    assert np.isnan(_np(tf.nn.log_poisson_loss(z, c, compute_full_loss=True))[0])
    assert np.isnan(nn.log_poisson_loss(z, c, compute_full_loss=True)[0])
    assert np.isnan(nn.log_poisson_loss.exact(z, c, compute_full_loss=True).round(np.float32)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_loss(dtype, rng):
    for t in (rng.normal(0, 3, (7, 5)).astype(dtype), np.asarray(2.5, dtype), np.zeros((0, 3), dtype)):
        both(nn.l2_loss, tf.nn.l2_loss, dtype, t=t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compute_average_loss(dtype, rng):
    v = rng.uniform(0, 3, (6,)).astype(dtype)
    f, g = nn.compute_average_loss, tf.nn.compute_average_loss
    both(f, g, dtype, per_example_loss=v)
    both(f, g, dtype, per_example_loss=v, global_batch_size=10)
    both(f, g, dtype, per_example_loss=v, global_batch_size=0)
    v2 = rng.uniform(0, 3, (6, 4)).astype(dtype)
    both(f, g, dtype, per_example_loss=v2)  # the sum over every element, divided by 6
    w = rng.uniform(0, 2, (6,)).astype(np.float32)
    # TF computes weighted losses in float32 (a TODO in its code): float64 agrees to float32's accuracy
    ulps = 4 if dtype == np.float32 else 2 ** 31
    both(f, g, dtype, ulps=ulps, per_example_loss=v, sample_weight=w)
    both(f, g, dtype, ulps=ulps, per_example_loss=v, sample_weight=w, global_batch_size=8)
    both(f, g, dtype, ulps=ulps, per_example_loss=v2, sample_weight=w)  # weights expanded to (6, 1)
    both(f, g, dtype, ulps=ulps, per_example_loss=v, sample_weight=w[:, None])  # squeezed to (6,)
    both(f, g, dtype, ulps=ulps, per_example_loss=v, sample_weight=np.float32(0.5))


def test_stage_helpers_of_integer_losses_are_float64():
    v = np.array([[1, 2], [3, 4], [5, 6]], np.int32)
    both(nn.compute_average_loss, tf.nn.compute_average_loss, np.float64, per_example_loss=v)
    both(nn.compute_average_loss, tf.nn.compute_average_loss, np.float64, per_example_loss=v,
         global_batch_size=4)
    both(nn.scale_regularization_loss, tf.nn.scale_regularization_loss, np.float64, regularization_loss=v)
    both(nn.scale_regularization_loss, tf.nn.scale_regularization_loss, np.float32,
         regularization_loss=np.float32(3.5))


def _ctc_case(rng, n_t=8, n_b=3, n_c=5):
    x = rng.normal(0, 1.5, (n_t, n_b, n_c)).astype(np.float32)
    labels = np.array([[1, 2, 2, 3], [4, 4, 0, 0], [3, 1, 0, 0]], np.int32)
    return x, labels, np.array([4, 2, 1]), np.array([8, 6, 3])


@pytest.mark.parametrize("blank", [None, 0, 2, -1])
def test_ctc_dense(blank, rng):
    x, labels, ll, xl = _ctc_case(rng)
    if blank is not None:  # keep the labels off the blank
        b = blank % 5
        labels = np.where((labels == b) & (np.arange(4) < ll[:, None]), (b + 1) % 5 or 1, labels)
    f, g = nn.ctc_loss, tf.nn.ctc_loss
    kw = dict(labels=labels, label_length=ll, logit_length=xl, blank_index=blank)
    both(f, g, np.float32, ulps=16, logits=x, **kw)
    both(f, g, np.float32, ulps=16, logits=np.transpose(x, (1, 0, 2)), logits_time_major=False, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_sparse(dtype, rng):
    x, labels, ll, xl = _ctc_case(rng)
    x = x.astype(dtype)
    dense = np.where(np.arange(4) < ll[:, None], labels, 0)
    sp = tf.sparse.from_dense(dense)
    ours = SparseLabels(_np(sp.indices), _np(sp.values), _np(sp.dense_shape))
    theirs = _np(tf.nn.ctc_loss(sp, x, None, xl, blank_index=0))
    # TF's CTC kernel in float64 is accurate to about 1e-8 relative only (a finding)
    ulps = 16 if dtype == np.float32 else 2 ** 28
    assert_ulps(nn.ctc_loss(ours, x, None, xl, blank_index=0), theirs, dtype, ulps)
    assert_ulps(nn.ctc_loss.exact(sp, x, None, xl, blank_index=0).round(dtype), theirs, dtype, ulps)
    # the dense labels give the same value
    assert_ulps(nn.ctc_loss(labels, x, ll, xl), theirs, dtype, ulps)


def test_ctc_impossible_label_is_inf():
    x = np.zeros((3, 1, 3), np.float32)
    sp = tf.sparse.from_dense(np.array([[1, 1, 1]], np.int32))
    assert _np(tf.nn.ctc_loss(sp, x, None, [3], blank_index=0))[0] == np.inf
    assert nn.ctc_loss(np.array([[1, 1, 1]]), x, [3], [3])[0] == np.inf


def test_result_dtypes_of_half_formats():
    import ml_dtypes

    for dt in (np.float16, ml_dtypes.bfloat16):
        x = np.array([[0.5, -1.0, 2.0]], dt)
        theirs = tf.nn.softmax_cross_entropy_with_logits(labels=np.ones((1, 3), dt), logits=x)
        ours = nn.softmax_cross_entropy_with_logits(np.ones((1, 3), dt), x)
        assert ours.dtype == np.dtype(dt) == theirs.dtype.as_numpy_dtype
        assert float(ours[0]) == float(tf.cast(theirs, tf.float32).numpy()[0])
        assert nn.l2_loss(x).dtype == np.dtype(dt)


# --- (c) errors -------------------------------------------------------------------------------------------

a32 = np.array([0.2, 0.7], np.float32)
a64 = a32.astype(np.float64)
i32 = np.array([1, 2], np.int32)

ERRORS = [
    # name, kwargs, TF's exception, lossref's
    ("sigmoid_cross_entropy_with_logits", dict(labels=a64, logits=a32), tf.errors.InvalidArgumentError,
     TFDtypeError),
    ("sigmoid_cross_entropy_with_logits", dict(labels=[0.0, 1.0], logits=a64), tf.errors.InvalidArgumentError,
     TFDtypeError),  # a Python list is float32
    ("sigmoid_cross_entropy_with_logits", dict(labels=a32[None], logits=a32), ValueError, ValueError),
    ("sigmoid_cross_entropy_with_logits", dict(labels=i32, logits=i32), tf.errors.InvalidArgumentError,
     TFDtypeError),
    ("sigmoid_cross_entropy_with_logits", dict(labels=None, logits=a32), ValueError, ValueError),
    ("weighted_cross_entropy_with_logits", dict(labels=a64, logits=a32, pos_weight=2.0),
     tf.errors.InvalidArgumentError, TFDtypeError),
    ("weighted_cross_entropy_with_logits", dict(labels=a32[None], logits=a32, pos_weight=2.0), ValueError,
     ValueError),
    ("weighted_cross_entropy_with_logits", dict(labels=a32, logits=a32, pos_weight=[2.0, 1.0]), TypeError,
     TypeError),
    ("softmax_cross_entropy_with_logits", dict(labels=np.ones((2, 4), np.float32), logits=np.ones((2, 3), np.float32)),
     tf.errors.InvalidArgumentError, TFInvalidArgumentError),
    ("softmax_cross_entropy_with_logits", dict(labels=np.ones((1, 3)), logits=np.ones((1, 3), np.int32)),
     tf.errors.InvalidArgumentError, TFDtypeError),
    ("softmax_cross_entropy_with_logits", dict(labels=np.ones((3, 2), np.float32), logits=np.ones((3, 2), np.float32),
                                               axis=5), tf.errors.InvalidArgumentError, TFInvalidArgumentError),
    ("sparse_softmax_cross_entropy_with_logits", dict(labels=np.array([1, 3]), logits=np.ones((2, 3), np.float32)),
     tf.errors.InvalidArgumentError, TFInvalidArgumentError),
    ("sparse_softmax_cross_entropy_with_logits", dict(labels=np.array([[1], [2]]), logits=np.ones((2, 3), np.float32)),
     ValueError, ValueError),
    ("sparse_softmax_cross_entropy_with_logits", dict(labels=np.array([1.0, 2.0], np.float32),
                                                      logits=np.ones((2, 3), np.float32)),
     tf.errors.InvalidArgumentError, TFDtypeError),
    ("sparse_softmax_cross_entropy_with_logits", dict(labels=np.array([0, 1]), logits=np.ones((2, 3), np.int32)),
     tf.errors.InvalidArgumentError, TFDtypeError),
    ("log_poisson_loss", dict(targets=a64, log_input=a32), tf.errors.InvalidArgumentError, TFDtypeError),
    ("log_poisson_loss", dict(targets=a32[None], log_input=a32), ValueError, ValueError),
    ("l2_loss", dict(t=np.array([1, 2])), tf.errors.InvalidArgumentError, TFDtypeError),
    ("compute_average_loss", dict(per_example_loss=np.float32(3)), ValueError, ValueError),
    ("compute_average_loss", dict(per_example_loss=a32, global_batch_size=2.0), TypeError, TypeError),
    ("compute_average_loss", dict(per_example_loss=a32, global_batch_size=-1), tf.errors.InvalidArgumentError,
     TFInvalidArgumentError),
    ("compute_average_loss", dict(per_example_loss=a32, global_batch_size=np.array([2])), ValueError, ValueError),
    ("compute_average_loss", dict(per_example_loss=a32, sample_weight=np.ones(3, np.float32)),
     tf.errors.InvalidArgumentError, TFInvalidArgumentError),
    ("ctc_loss", dict(labels=np.array([[1]]), logits=np.zeros((3, 1, 4), np.int32), label_length=[1],
                      logit_length=[3]), tf.errors.InvalidArgumentError, TFDtypeError),
    ("ctc_loss", dict(labels=np.array([[1.0]], np.float32), logits=np.zeros((3, 1, 4), np.float32),
                      label_length=[1], logit_length=[3]), tf.errors.InvalidArgumentError, TFDtypeError),
    ("ctc_loss", dict(labels=np.array([[1, 2]]), logits=np.zeros((3, 2, 4), np.float32), label_length=[1],
                      logit_length=[3, 3]), tf.errors.InvalidArgumentError, TFInvalidArgumentError),
]


@pytest.mark.parametrize("name, kw, tf_error, ours", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_map_tfs(name, kw, tf_error, ours):
    with pytest.raises(tf_error):
        getattr(tf.nn, name)(**kw)
    with pytest.raises(ours):
        getattr(nn, name)(**kw)
    with pytest.raises(ours):
        getattr(nn, name).exact(**kw)


@pytest.mark.parametrize("kw", [
    dict(labels=np.array([[1, 7]]), label_length=[2]),  # class 7 of 4: TF reads out of range
    dict(labels=np.array([[1, 0]]), label_length=[2]),  # the blank as a label
    dict(labels=np.array([[1, 2]]), label_length=[3]),  # longer than the labels
    dict(labels=np.array([[1, 2]]), label_length=[2], logit_length=[4]),  # longer than the frames
    dict(labels=np.array([[1, 2]]), label_length=[2], blank_index=4),
])
def test_ctc_rejects_what_tf_reads_silently(kw):
    kw = {"logits": np.zeros((3, 1, 4), np.float32), "logit_length": [3], **kw}
    with pytest.raises(ValueError):
        nn.ctc_loss(**kw)


def test_ctc_sparse_labels_need_a_blank_index():
    sp = SparseLabels(np.array([[0, 0]]), np.array([1], np.int32), np.array([1, 1]))
    with pytest.raises(ValueError):
        nn.ctc_loss(sp, np.zeros((3, 1, 4), np.float32), None, [3])


# --- (e) importing the dialect does not import TensorFlow ------------------------------------------------


def test_import_does_not_import_tensorflow():
    code = "import sys, lossref.tf, lossref.tf.nn; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
