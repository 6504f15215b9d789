"""`lossref.keras.losses` mirrors every loss that `keras.losses` exports."""

import inspect

import pytest

import lossref
from lossref.keras import losses as K
from lossref.keras.base import KerasFunction, LossFunctionWrapper

# exported by keras.losses but not losses: why each one is not mirrored
NOT_LOSSES = {
    "Loss": "the base class; lossref.keras.losses.Loss mirrors it (checked separately)",
    "LossFunctionWrapper": "the wrapper class; mirrored as lossref.keras.losses.LossFunctionWrapper",
    "serialize": "mirrored (tests/test_keras_parity.py)",
    "deserialize": "mirrored (tests/test_keras_parity.py)",
    "get": "mirrored (tests/test_keras_parity.py)",
}


def _keras_exports(keras):
    return sorted(n for n in dir(keras.losses) if not n.startswith("_"))


def test_every_keras_loss_is_mirrored(keras):
    missing = [n for n in _keras_exports(keras) if n not in NOT_LOSSES and not hasattr(K, n)]
    assert not missing, f"lossref.keras.losses lacks {missing}"
    assert hasattr(K, "Loss") and hasattr(K, "get")


def test_signatures_match_keras(keras):
    diffs = []
    for n in _keras_exports(keras):
        if n in NOT_LOSSES:
            continue
        theirs, ours = getattr(keras.losses, n), getattr(K, n)
        if isinstance(theirs, type):
            a, b = inspect.signature(theirs.__init__), inspect.signature(ours.__init__)
        else:
            a, b = inspect.signature(theirs), inspect.signature(ours)
        # parameter names, order and defaults
        pa = [(p.name, p.default) for p in a.parameters.values()]
        pb = [(p.name, p.default) for p in b.parameters.values()]
        if pa != pb:
            diffs.append((n, pa, pb))
    assert not diffs, diffs


def test_every_dialect_object_has_an_exact_twin_and_a_catalogue_entry():
    names = set(lossref.names())
    for n in K.__all__:
        obj = getattr(K, n)
        if isinstance(obj, KerasFunction):
            assert obj._loss_name in names and callable(obj.exact), n
            assert inspect.signature(obj.exact) == inspect.signature(obj), n
        elif isinstance(obj, type) and issubclass(obj, LossFunctionWrapper) and obj is not LossFunctionWrapper:
            assert callable(obj().exact), n


def test_cli_list_shows_the_full_catalogue(capsys):
    from lossref import cli

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for n in lossref.names():
        assert n in out
    assert f"{len(lossref.names())} losses" in out


def test_get_names_and_aliases(keras):
    for alias in ["mse", "MSE", "bce", "kld", "mae", "mape", "msle"]:
        assert K.get(alias).__name__ == keras.losses.get(alias).__name__
    assert isinstance(K.get("Huber"), K.Huber)
    assert K.get("huber") is K.huber
    for bad in ["nope", "Mse", "get"]:
        for module in (K, keras.losses):
            with pytest.raises(ValueError, match="Could not interpret loss identifier"):
                module.get(bad)
    # Keras's table holds its base class too: get("Loss") is an instance of it
    assert type(K.get("Loss")) is K.Loss and type(keras.losses.get("Loss")) is keras.losses.Loss


def test_parameters_by_position_like_keras():
    import numpy as np
    y, p = np.zeros((1, 2)), np.array([[0.5, 3.0]])
    assert K.huber(y, p, 2.0).tolist() == K.huber(y, p, delta=2.0).tolist()
    assert K.huber.exact(y, p, 2.0).decimal(10).tolist() == K.huber.exact(y, p, delta=2.0).decimal(10).tolist()
    with pytest.raises(TypeError, match="multiple values"):
        K.huber(y, p, 2.0, delta=1.0)
    with pytest.raises(TypeError, match="at most 3 positional"):
        K.huber(y, p, 2.0, 3.0)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_generalized_cross_entropy",
                                  "categorical_hinge"])
def test_rowwise_structured_losses_are_evaluated_in_blocks_without_changing_values(name):
    import numpy as np
    from lossref import registry

    L = lossref.get(name)
    assert L.rowwise
    rng = np.random.default_rng(2)
    p = rng.random((3000, 40)).astype(np.float32) + np.float32(0.01)
    p /= p.sum(-1, keepdims=True)
    if name == "categorical_hinge":
        t = np.eye(40, dtype=np.float32)[rng.integers(0, 40, 3000)]
    else:
        t = rng.integers(0, 40, 3000).astype(np.float32)
    assert p.size > registry._CHUNK
    blocked = L.per_sample(t, p)
    whole = L.per_sample_ref(t.astype(np.float64), p.astype(np.float64), **L.bind({}))
    from lossref import formats
    assert np.array_equal(blocked, formats.to_format_array(whole, "float32"))


@pytest.mark.parametrize("name", ["mean_squared_error", "binary_crossentropy", "hinge",
                                  "sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_threads_do_not_change_values(name, monkeypatch):
    import numpy as np
    from lossref import registry

    L = lossref.get(name)
    rng = np.random.default_rng(3)
    p = rng.random((640, 48)).astype(np.float32) + np.float32(0.01)
    p /= p.sum(-1, keepdims=True)
    if name == "sparse_categorical_crossentropy":
        t = rng.integers(0, 48, 640).astype(np.float32)
    elif name == "hinge":
        t = np.where(rng.random(p.shape) > 0.5, 1, -1).astype(np.float32)
    else:
        t = (rng.random(p.shape) > 0.5).astype(np.float32)
    monkeypatch.setattr(registry, "_CHUNK", 96)  # 2 rows a block, 320 blocks: up to 20 threads
    results = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("LOSSREF_THREADS", n)
        assert registry.threads() == int(n)
        results.append(L.per_sample(t, p))
    monkeypatch.setattr(registry, "_CHUNK", 1 << 30)  # one block, no pool
    whole = L.per_sample(t, p)
    for r in results:
        assert np.array_equal(r, whole)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_count_is_an_error(bad, monkeypatch):
    from lossref import registry

    monkeypatch.setenv("LOSSREF_THREADS", bad)
    with pytest.raises(ValueError, match="LOSSREF_THREADS must be a positive integer"):
        registry.threads()


def test_non_numeric_parameters_are_named_in_the_error():
    import numpy as np
    y = np.zeros((1, 2))
    with pytest.raises(TypeError, match=r"huber: delta must be a real number \(a scalar\); got 'a'"):
        K.Huber(delta="a")(y, y)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        K.binary_crossentropy(y, y, label_smoothing=None)
    # a per-class list is still a valid alpha
    p = np.array([[0.2, 0.5, 0.3]])
    assert np.isfinite(K.categorical_focal_crossentropy(np.array([[0, 1.0, 0]]), p, alpha=[0.1, 0.2, 0.7])).all()


def test_thread_pool_survives_a_fork(monkeypatch):
    """A child forked after the parent used the pool gets a pool of its own (no deadlock)."""
    import multiprocessing as mp

    import numpy as np
    from lossref import registry

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork start method here")
    monkeypatch.setenv("LOSSREF_THREADS", "2")
    monkeypatch.setattr(registry, "_CHUNK", 64)
    t, p = np.ones((512, 32), np.float32), np.full((512, 32), 0.5, np.float32)
    L = lossref.get("mean_squared_error")
    want = L.per_sample(t, p)  # the parent's pool now exists
    assert registry._POOLS
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(L.per_sample, (t, p)).get(timeout=60)
    assert np.array_equal(got, want)


def test_exact_twin_cache_tells_large_parameter_arrays_apart():
    """Two per-class alpha arrays whose NumPy repr is the same (the middle is elided) must
    not share a cached oracle evaluation."""
    import numpy as np

    k = 2000
    y = np.zeros((1, k))
    y[0, 1000] = 1
    p = np.full((1, k), 1 / k)
    a1 = np.full(k, 0.25)
    a2 = a1.copy()
    a2[1000] = 0.5
    assert repr(a1) == repr(a2)
    e1 = K.categorical_focal_crossentropy.exact(y, p, alpha=a1).round("float64")
    e2 = K.categorical_focal_crossentropy.exact(y, p, alpha=a2).round("float64")
    # alpha of the labelled class doubles, and so does the loss (a stale cache hit gives 1)
    assert abs(e2[0] / e1[0] - 2) < 1e-12
