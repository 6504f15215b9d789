"""``keras.losses.serialize``, ``deserialize`` and ``get`` for the dialect's objects.

The serialized form is Keras's own (``keras.saving.serialize_keras_object``): a class is
``{"module": "keras.losses", "class_name": ..., "config": get_config(), "registered_name":
None}``, a function ``{"module": "builtins", "class_name": "function", "config": name,
"registered_name": "function"}``, and an array inside a config a ``"__tensor__"`` object.
So Keras can read what lossref writes and lossref what Keras writes; either side gives back
its own objects.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .base import KerasFunction, Loss, keras_message

__all__ = ["serialize", "deserialize", "get", "ALIASES"]

#: Keras's short names (``keras.losses.get("mse")``): these spellings exactly
ALIASES = {a: full for short, full in
           (("bce", "binary_crossentropy"), ("kld", "kl_divergence"), ("mae", "mean_absolute_error"),
            ("mse", "mean_squared_error"), ("mape", "mean_absolute_percentage_error"),
            ("msle", "mean_squared_logarithmic_error"))
           for a in (short, short.upper())}


def _objects() -> Dict[str, Any]:
    """Every public class and function of ``lossref.keras.losses`` by its name, plus the
    aliases (Keras's ``ALL_OBJECTS_DICT``)."""
    from . import losses
    table = {n: getattr(losses, n) for n in losses.__all__
             if isinstance(getattr(losses, n), (type, KerasFunction))}
    table.update({a: table[full] for a, full in ALIASES.items()})
    return table


def _tensor_out(value):
    if isinstance(value, np.ndarray):
        return {"class_name": "__tensor__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if isinstance(value, dict):
        return {k: _tensor_out(v) for k, v in value.items()}
    return value


def _tensor_in(value):
    if isinstance(value, dict):
        if value.get("class_name") == "__tensor__":
            cfg = value.get("config") or {}
            return np.asarray(cfg.get("value"), dtype=cfg.get("dtype"))
        return {k: _tensor_in(v) for k, v in value.items()}
    return value


def serialize(loss) -> Any:
    """``keras.losses.serialize``: the Keras serialization of a dialect loss (function or
    class instance); None and strings come back unchanged, as in Keras."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, Loss):
        module = "keras.losses" if type(loss).__module__.startswith("lossref.keras") else type(loss).__module__
        return {"module": module, "class_name": type(loss).__name__,
                "config": _tensor_out(loss.get_config()),
                "registered_name": None if module == "keras.losses" else type(loss).__name__}
    if callable(loss) and hasattr(loss, "__name__"):
        return {"module": "builtins", "class_name": "function", "config": loss.__name__,
                "registered_name": "function"}
    raise ValueError(keras_message(f"Cannot serialize {loss!r}",
                                   "expected a lossref.keras.losses function or Loss instance"))


def _lookup(name: str, custom_objects: Optional[dict]):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _objects().get(name)


def deserialize(name, custom_objects: Optional[dict] = None):
    """``keras.losses.deserialize``: a dialect loss from its serialization (a dict as
    :func:`serialize` or Keras writes it), or from a function or class name.

    A class name gives an instance with default arguments, a function name the function.
    Unlike Keras 3.15.1 (which refuses them), the aliases ``"mse"``, ``"MSE"``, ... are
    accepted. A callable comes back unchanged and None gives None.
    """
    if name is None or (callable(name) and not isinstance(name, type)):
        return name
    if isinstance(name, str):
        obj = _lookup(name, custom_objects)
        if obj is None:
            raise ValueError(keras_message(f"Could not interpret loss identifier: {name}",
                                           f"{name!r} names no lossref.keras.losses function or class"))
        return obj() if isinstance(obj, type) else obj
    if isinstance(name, dict):
        if "class_name" not in name:
            raise ValueError(keras_message(f"Unknown `config` as a `dict`, config={name}",
                                           "a serialized loss needs 'class_name'"))
        cls_name, config = name["class_name"], name.get("config")
        if cls_name == "function":
            obj = _lookup(config, custom_objects) if isinstance(config, str) else None
            if obj is None or isinstance(obj, type):
                raise ValueError(keras_message(f"Could not interpret loss identifier: {config}",
                                               "a serialized function needs the name of a loss function"))
            return obj
        obj = _lookup(cls_name, custom_objects) if isinstance(cls_name, str) else None
        if not (isinstance(obj, type) and issubclass(obj, Loss)):
            raise ValueError(keras_message(f"Could not locate class '{cls_name}'",
                                           f"{cls_name!r} names no lossref.keras.losses class"))
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValueError(keras_message(f"Unknown `config` as a `dict`, config={name}",
                                           "the 'config' of a serialized class must be a dict"))
        return obj.from_config(_tensor_in(config))
    if isinstance(name, type) and issubclass(name, Loss):
        return name()
    raise ValueError(keras_message(f"Could not interpret loss identifier: {name}",
                                   f"expected a name, a serialized loss (dict), a callable or None; "
                                   f"got {type(name).__name__}"))


def get(identifier):
    """``keras.losses.get``: None, a name (function, class or alias, as spelled in Keras),
    a serialized loss, a class (instantiated) or a callable (returned as is)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _objects().get(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if isinstance(obj, type) else obj
    raise ValueError(keras_message(f"Could not interpret loss identifier: {identifier}",
                                   "expected a loss name (e.g. 'mean_squared_error', 'mse', "
                                   "'MeanSquaredError'), a serialized loss, a callable or None"))
