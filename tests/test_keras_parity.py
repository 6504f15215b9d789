"""Drop-in parity of `lossref.keras.losses` with `keras.losses`: configurations,
serialize/deserialize/get, pickling, the exceptions and warnings of misuse.

Everything is compared with the installed Keras's own output (NumPy backend). Where the
dialect follows a definition Keras fixed after 3.15.1, the difference is named here and
on the spec page, and the check becomes exact once the installed Keras has the fix.
"""

import copy
import json
import pickle
import re
import warnings

import numpy as np
import pytest

from lossref.dialect import DialectFunction
from lossref.keras import losses as K
from lossref.keras.base import LossFunctionWrapper

# every class with non-default arguments that reach its configuration
CLASSES = {
    "MeanSquaredError": {}, "MeanAbsoluteError": {}, "MeanAbsolutePercentageError": {},
    "MeanSquaredLogarithmicError": {}, "Huber": {"delta": 2.5}, "LogCosh": {},
    "BinaryCrossentropy": {"from_logits": True, "label_smoothing": 0.1, "axis": 0},
    "BinaryFocalCrossentropy": {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5,
                                "from_logits": True, "label_smoothing": 0.2, "axis": 0},
    "KLDivergence": {}, "Poisson": {},
    "CategoricalCrossentropy": {"from_logits": True, "label_smoothing": 0.1, "axis": 1},
    "CategoricalFocalCrossentropy": {"alpha": [0.1, 0.2, 0.7], "gamma": 3.0, "from_logits": True,
                                     "label_smoothing": 0.3, "axis": 0},
    "SparseCategoricalCrossentropy": {"from_logits": True, "ignore_class": 2, "axis": 1},
    "CategoricalGeneralizedCrossEntropy": {"q": 0.3},
    "Hinge": {}, "SquaredHinge": {}, "CategoricalHinge": {},
    "CosineSimilarity": {"axis": 0}, "Dice": {"axis": (1, 2)},
    "Tversky": {"alpha": 0.3, "beta": 0.7, "axis": 1},
    "Circle": {"gamma": 60.0, "margin": 0.3, "remove_diagonal": False}, "CTC": {},
}
FUNCTIONS = [n for n in K.__all__ if isinstance(getattr(K, n), DialectFunction)]
#: config keys Keras 3.15.1 leaves out and later releases keep (keras PR #23286)
FIXED_AFTER_3_15_1 = {"Huber": ("delta",), "CosineSimilarity": ("axis",),
                      "SparseCategoricalCrossentropy": ("axis",)}
#: exported by keras.losses but missing from the table its get/deserialize search (3.15.1 and
#: later): Keras cannot look them up by name; lossref can
NOT_IN_KERAS_TABLE = {"CategoricalGeneralizedCrossEntropy", "categorical_generalized_cross_entropy"}


def test_the_tables_cover_every_class_and_function(keras):
    classes = [n for n in K.__all__ if isinstance(getattr(K, n), type)
               and n not in ("Loss", "LossFunctionWrapper")]
    assert sorted(classes) == sorted(CLASSES)
    assert len(FUNCTIONS) == 22 and all(hasattr(keras.losses, n) for n in FUNCTIONS)


def _expected_config(keras, name, kwargs, theirs):
    """Keras's config, plus the keys Keras keeps after 3.15.1 (what lossref follows)."""
    fixed = {k: getattr(keras.losses, name)(**kwargs)._fn_kwargs[k]
             for k in FIXED_AFTER_3_15_1.get(name, ())}
    for k in fixed:
        assert k not in theirs or theirs[k] == fixed[k]
    return {**theirs, **fixed}


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("default", [True, False], ids=["defaults", "arguments"])
def test_config_is_kerass(keras, name, default):
    kwargs = {} if default else CLASSES[name]
    ours, theirs = getattr(K, name)(**kwargs).get_config(), getattr(keras.losses, name)(**kwargs).get_config()
    want = _expected_config(keras, name, kwargs, theirs)
    assert ours == want
    assert list(ours) == list(want)  # the same order, so JSON dumps of the two are equal
    # no dtype key at the default; the object rebuilds equal, from our config and Keras's
    cls = getattr(K, name)
    obj = cls(**kwargs)
    assert cls.from_config(ours) == obj and cls.from_config(ours).get_config() == ours
    if name not in FIXED_AFTER_3_15_1 or default:
        assert cls.from_config(theirs) == obj


@pytest.mark.parametrize("name", ["MeanSquaredError", "Huber", "CategoricalFocalCrossentropy"])
def test_non_default_dtype_and_name_round_trip(keras, name):
    obj = getattr(K, name)(name="mine", reduction="sum", dtype="float64")
    cfg = obj.get_config()
    assert cfg["dtype"] == "float64" and cfg["name"] == "mine" and cfg["reduction"] == "sum"
    back = getattr(K, name).from_config(cfg)
    assert back == obj and back.dtype == "float64"
    # Keras reads the config lossref writes (its constructor takes dtype)
    assert getattr(keras.losses, name).from_config(cfg).dtype == "float64"
    assert obj != getattr(K, name)(name="mine", reduction="sum")  # the dtype counts
    assert hash(back) == hash(obj)


def _json(obj):
    return json.dumps(obj, sort_keys=True, default=repr)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_serialize_deserialize_classes_both_ways(keras, name):
    kwargs = {k: v for k, v in CLASSES[name].items()}
    ours, theirs = getattr(K, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    s_ours, s_theirs = K.serialize(ours), keras.losses.serialize(theirs)
    s_theirs_fixed = {**s_theirs, "config": _expected_config(keras, name, kwargs, s_theirs["config"])}
    assert _json(s_ours) == _json(s_theirs_fixed)
    # through JSON text, as a saved model stores it
    revived = K.deserialize(json.loads(json.dumps(s_ours)))
    assert type(revived) is type(ours) and revived == ours
    assert K.get(json.loads(json.dumps(s_ours))) == ours
    # Keras's serialization gives lossref's object, and lossref's gives Keras's
    from_keras = K.deserialize(json.loads(json.dumps(s_theirs)))
    assert type(from_keras) is type(ours)
    if name not in FIXED_AFTER_3_15_1:
        assert from_keras == ours
    in_keras = keras.losses.deserialize(json.loads(json.dumps(s_ours)))
    own = keras.losses.deserialize(json.loads(json.dumps(s_theirs)))
    if type(own) is type(theirs):
        assert type(in_keras) is type(theirs) and _json(in_keras.get_config()) == _json(theirs.get_config())
    else:  # Keras 3.15.1 cannot revive its own CategoricalGeneralizedCrossEntropy (not in its table)
        assert name == "CategoricalGeneralizedCrossEntropy" and in_keras == own


@pytest.mark.parametrize("name", FUNCTIONS)
def test_serialize_deserialize_get_functions(keras, name):
    fn = getattr(K, name)
    assert K.serialize(fn) == keras.losses.serialize(getattr(keras.losses, name))
    assert K.deserialize(K.serialize(fn)) is fn
    assert K.deserialize(keras.losses.serialize(getattr(keras.losses, name))) is fn
    if name not in NOT_IN_KERAS_TABLE:
        assert keras.losses.deserialize(K.serialize(fn)) is getattr(keras.losses, name)
    assert K.get(name) is fn and K.deserialize(name) is fn
    assert K.get(fn) is fn


def test_get_accepts_what_keras_accepts(keras):
    names = sorted(CLASSES) + FUNCTIONS + ["mse", "MSE", "mae", "MAE", "mape", "MAPE", "msle", "MSLE",
                                           "bce", "BCE", "kld", "KLD"]
    for n in names:
        ours = K.get(n)
        if n in NOT_IN_KERAS_TABLE:
            with pytest.raises(ValueError, match="Could not interpret loss identifier"):
                keras.losses.get(n)
            assert getattr(ours, "__name__", type(ours).__name__) == n
            continue
        theirs = keras.losses.get(n)
        if isinstance(theirs, keras.losses.Loss):
            assert type(ours).__name__ == type(theirs).__name__ and ours.get_config() == \
                _expected_config(keras, n, {}, theirs.get_config())
        else:
            assert ours.__name__ == theirs.__name__ and isinstance(ours, DialectFunction)
    assert K.get(None) is None and keras.losses.get(None) is None
    assert isinstance(K.get(K.Huber), K.Huber)  # a class is instantiated
    obj = K.Huber(delta=3.0)
    assert K.get(obj) is obj
    ident = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    assert K.get(ident) == K.CategoricalCrossentropy(from_logits=True)
    assert K.get({"class_name": "MeanSquaredError"}) == K.MeanSquaredError()
    # Keras 3.15.1 refuses aliases in deserialize ("not a KerasSaveable subclass"); lossref takes them
    assert K.deserialize("mse") is K.mean_squared_error
    assert K.deserialize("Huber") == K.Huber()


@pytest.mark.parametrize("bad", ["nope", "Mse", "huber_loss", 3, [1], 2.5])
def test_get_refuses_like_keras(keras, bad):
    for module in (keras.losses, K):
        with pytest.raises(ValueError, match=f"Could not interpret loss identifier: {re.escape(str(bad))}"):
            module.get(bad)


@pytest.mark.parametrize("bad, phrase", [
    ({"config": {}}, r"Unknown `config` as a `dict`"),
    ({"class_name": "Nope", "config": {}}, r"Could not locate class 'Nope'"),
    ({"class_name": "function", "config": "nope", "module": "builtins"}, r"Could not interpret loss identifier"),
    ({"class_name": "Huber", "config": [1]}, r"Unknown `config` as a `dict`"),
    ({"class_name": "Huber", "config": {"bogus": 1}}, r"unexpected keyword argument 'bogus'"),
    ("nope", r"Could not interpret loss identifier: nope"),
    (3, r"Could not interpret loss identifier: 3"),
])
def test_deserialize_refuses_clearly(bad, phrase):
    with pytest.raises((ValueError, TypeError), match=phrase):
        K.deserialize(bad)


def test_custom_objects_and_wrapper(keras):
    w = LossFunctionWrapper(K.huber, name="wrapped", delta=1.5)
    cfg = w.get_config()
    # Keras's LossFunctionWrapper keeps its function, serialized, in the config
    assert cfg == {"name": "wrapped", "reduction": "sum_over_batch_size",
                   "fn": keras.losses.serialize(keras.losses.huber), "delta": 1.5}
    back = LossFunctionWrapper.from_config(cfg)
    assert back.fn is K.huber and back == w

    class Mine(K.MeanSquaredError):
        pass
    s = K.serialize(Mine())
    assert s["class_name"] == "Mine" and s["registered_name"] == "Mine"
    assert type(K.deserialize(s, custom_objects={"Mine": Mine})) is Mine
    with pytest.raises(ValueError, match="Could not locate class 'Mine'"):
        K.deserialize(s)


def test_pickle_and_copy_round_trip_every_dialect_function():
    import lossref.optax.losses as O
    import lossref.tf.nn as TFN
    import lossref.torch.nn.functional as F
    seen = 0
    for module in (K, F, O, TFN):
        for n in dir(module):
            fn = getattr(module, n)
            if isinstance(fn, DialectFunction):
                seen += 1
                assert pickle.loads(pickle.dumps(fn)) is fn, n
                assert copy.deepcopy(fn) is fn and copy.copy(fn) is fn, n
    assert seen >= 80


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_pickle_round_trips_every_class(name):
    obj = getattr(K, name)(**CLASSES[name])
    back = pickle.loads(pickle.dumps(obj))
    assert back == obj and back.fn is obj.fn and back is not obj
    assert back.get_config() == obj.get_config() and "dtype" not in back.get_config()
    half = pickle.loads(pickle.dumps(getattr(K, name)(dtype="float16")))
    assert half.get_config()["dtype"] == "float16" and half.dtype == "float16"
    assert copy.deepcopy(obj) == obj
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], np.float32)
    if name == "Huber":  # the value too, not only the configuration
        assert back(y, p).tobytes() == obj(y, p).tobytes()


# --- errors: the type Keras raises, Keras's wording, then lossref's ------------------------------

Y2 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
P2 = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], np.float32)
BAD3 = (np.array([[0], [1], [2]]), np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]))

# (call, a phrase Keras documents or tests, whether Keras's whole message is deterministic)
MISUSE = {
    "reduction": (lambda m: m.Hinge(reduction="abc"), r"Invalid value for argument", False),
    "bce_shapes": (lambda m: m.BinaryCrossentropy()(*BAD3), r"must have the same shape", True),
    "cce_shapes": (lambda m: m.CategoricalCrossentropy()(*BAD3), r"must have the same shape", True),
    "cce_fn_shapes": (lambda m: m.categorical_crossentropy(np.ones((2, 3)), np.ones((2, 4))),
                      r"must have the same shape", True),
    "get_typo": (lambda m: m.get("typo"), r"Could not interpret loss identifier", True),
    "q_range": (lambda m: m.CategoricalGeneralizedCrossEntropy(q=1), r"q must be in the interval \(0, 1\)", True),
    "axis_bool": (lambda m: m.categorical_crossentropy(Y2, P2, axis=True), r"`axis` must be of type `int`", True),
    "focal_axis_bool": (lambda m: m.categorical_focal_crossentropy(Y2, P2, axis=False),
                        r"`axis` must be of type `int`", True),
    "ctc_labels_rank": (lambda m: m.ctc(np.ones((2, 3, 4)), np.ones((2, 5, 4))),
                        r"Targets `y_true` are expected to be a tensor of shape", True),
    "ctc_logits_rank": (lambda m: m.ctc(np.ones((2, 3)), np.ones((2, 5))),
                        r"Logits `y_pred` are expected to be a tensor of shape", True),
    "broadcast": (lambda m: m.mean_squared_error(np.ones((2, 3)), np.ones((2, 4))),
                  r"operands could not be broadcast together", False),
    "class_broadcast": (lambda m: m.MeanSquaredError()(np.ones((2, 3)), np.ones((2, 4))),
                        r"operands could not be broadcast together", False),
    "cosine_axis": (lambda m: m.cosine_similarity(Y2, P2, axis=5), r"axis 5 is out of bounds", True),
    "dice_axis": (lambda m: m.dice(Y2, P2, axis=5), r"axis 5 is out of bounds", True),
    "scalars": (lambda m: m.mean_squared_error(1.0, 2.0), r"axis -1 is out of bounds", True),
    "label_range": (lambda m: m.sparse_categorical_crossentropy(np.array([0, 5]), P2), None, False),
    "dtype_name": (lambda m: m.MeanSquaredError(dtype="float13"), r"Cannot convert 'float13'", False),
    "set_dtype": (lambda m: setattr(m.MeanSquaredError(), "dtype", "float64"), r"has no setter", True),
    "unknown_keyword": (lambda m: m.Huber(bogus=1), r"unexpected keyword argument 'bogus'", True),
    "from_config_extra": (lambda m: m.MeanSquaredError.from_config({"name": "a", "bogus": 1}),
                          r"unexpected keyword argument 'bogus'", True),
}


def _raised(call, module):
    with pytest.raises(Exception) as info:
        call(module)
    return info.value


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_raises_kerass_type_and_wording(keras, case):
    call, phrase, whole = MISUSE[case]
    theirs, ours = _raised(call, keras.losses), _raised(call, K)
    assert isinstance(ours, type(theirs)), (type(ours), type(theirs))
    if phrase is not None:
        assert re.search(phrase, str(theirs)), str(theirs)  # the phrase is Keras's own
        assert re.search(phrase, str(ours)), str(ours)
    if whole:
        assert str(theirs) in str(ours)
    # lossref's explanation follows Keras's words, on the same line
    assert "\n" not in str(ours)
    if case not in ("set_dtype", "unknown_keyword", "from_config_extra", "get_typo"):
        assert "[lossref: " in str(ours) or case == "label_range"


def test_reduction_message_names_the_options_and_value():
    with pytest.raises(ValueError) as info:
        K.MeanSquaredError(reduction="abc")
    msg = str(info.value)
    assert msg.startswith("Invalid value for argument `reduction`. Expected one of {")
    assert "Received: reduction=abc [lossref: reduction='abc' is not supported" in msg


# --- warnings -------------------------------------------------------------------------------------

PHRASE = r"expected y_pred.shape to be \(batch_size, num_classes\)"


@pytest.mark.parametrize("fn", ["categorical_crossentropy", "categorical_focal_crossentropy"])
def test_class_axis_of_size_one_warns_as_keras(keras, fn):
    y, p = np.array([[1.0], [1.0]], np.float32), np.array([[0.5], [0.5]], np.float32)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        getattr(keras.losses, fn)(y, p)
    cls = getattr(K, "".join(w.title() for w in fn.split("_")))
    for call in (lambda: getattr(K, fn)(y, p), lambda: getattr(K, fn).exact(y, p), lambda: cls()(y, p)):
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            call()
        syntax = [w for w in ours if issubclass(w.category, SyntaxWarning)]
        assert len(syntax) == 1
        assert str(syntax[0].message) == str([w for w in theirs if w.category is SyntaxWarning][0].message)
        assert syntax[0].filename == __file__  # attributed to the caller, not to lossref
    assert re.search(PHRASE, str(syntax[0].message))


def test_the_warning_looks_at_the_class_axis():
    # after 3.15.1 (keras PR #23437) the class axis `axis` is checked, not the last axis
    with pytest.warns(SyntaxWarning, match=PHRASE):
        K.categorical_crossentropy(np.ones((2, 1, 4)), np.ones((2, 1, 4)), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        K.categorical_crossentropy(np.ones((2, 4, 1)), np.ones((2, 4, 1)), axis=1)
        K.categorical_crossentropy(Y2, P2)


# --- label smoothing over a custom class axis (keras PR #23437) -----------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_label_smoothing_with_custom_axis_is_towards_one_over_k(dtype):
    rng = np.random.default_rng(5)
    y = rng.random((2, 5, 3)).astype(dtype)
    p = rng.random((2, 5, 3)).astype(dtype) + 0.05
    ls = 0.25
    got = K.categorical_crossentropy(y, p, axis=1, label_smoothing=ls)
    # direct computation: K = 5 (the class axis), constants rounded to the dtype as Keras does
    one = np.dtype(dtype).type
    ys = y.astype(np.float64) * float(one(1 - ls)) + float(one(one(ls) / one(5)))
    pn = p.astype(np.float64) / p.astype(np.float64).sum(1, keepdims=True)
    want = -(ys * np.log(np.clip(pn, 1e-7, 1 - 1e-7))).sum(1)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps)
    ex = K.categorical_crossentropy.exact(y, p, axis=1, label_smoothing=ls).round(dtype)
    np.testing.assert_allclose(ex, want, rtol=4 * np.finfo(dtype).eps)
    focal = K.categorical_focal_crossentropy(y, p, axis=1, label_smoothing=ls, alpha=1.0, gamma=0.0)
    np.testing.assert_allclose(focal, want, rtol=8 * np.finfo(dtype).eps)
    # the same through the class, and not the 3.15.1 value (K = shape[-1] = 3)
    assert np.allclose(K.CategoricalCrossentropy(axis=1, label_smoothing=ls, reduction=None,
                                                 dtype=dtype)(y, p), want, rtol=1e-6)
    old = -((y.astype(np.float64) * (1 - ls) + ls / 3) * np.log(pn)).sum(1)
    assert np.all(np.abs(old - want) > 1e-3)
