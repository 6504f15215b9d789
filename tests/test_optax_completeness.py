"""The Optax dialect covers the installed optax: every public function of ``optax.losses``
is mirrored by ``lossref.optax.losses`` with optax's signature, or listed here with a
reason; nothing of the dialect imports JAX."""

from __future__ import annotations

import inspect
import subprocess
import sys

from lossref.optax import losses as lo
from lossref.vectors.optax_table import NO_VECTORS, OPTAX_TABLE
from tests.support import optax_x64

#: Functions of optax.losses lossref does not mirror, with the reason.
OUT_OF_SCOPE = {
    "make_fenchel_young_loss": "builds a loss from the caller's max-function (a Python callable): "
                               "no fixed definition to evaluate exactly",
}


def optax_functions() -> set:
    _, optax = optax_x64()
    return {n for n in dir(optax.losses) if not n.startswith("_") and inspect.isfunction(getattr(optax.losses, n))}


def test_every_optax_loss_is_mirrored_or_listed():
    functions = optax_functions()
    assert len(functions) >= 30  # the scan found optax's losses
    mirrored = set(lo.__all__)
    assert not functions - mirrored - set(OUT_OF_SCOPE), "mirror these or list them with a reason"
    assert not set(OUT_OF_SCOPE) & mirrored, "mirrored: take them off OUT_OF_SCOPE"
    assert not (mirrored | set(OUT_OF_SCOPE)) - functions, "not in the installed optax"


def _params(sig):
    """(name, kind, default) of each parameter; a callable default by its name (optax's
    ``reduce_fn=jnp.mean`` is mirrored by a NumPy-free function of that name)."""
    def default(d):
        return getattr(d, "__name__", d) if callable(d) else d
    return [(p.name, p.kind, default(p.default)) for p in sig.parameters.values()]


def test_every_function_has_optax_signature_and_an_exact_twin():
    _, optax = optax_x64()
    for name in lo.__all__:
        ours, theirs = getattr(lo, name), getattr(optax.losses, name)
        assert _params(inspect.signature(ours)) == _params(inspect.signature(theirs)), name
        assert inspect.signature(ours.exact) == inspect.signature(ours), name


def test_every_function_has_vectors_or_a_reason():
    assert set(OPTAX_TABLE) | set(NO_VECTORS) == set(lo.__all__)
    assert not set(OPTAX_TABLE) & set(NO_VECTORS)
    assert all(len(reason) > 20 for reason in NO_VECTORS.values())


def test_importing_the_dialect_does_not_import_jax():
    code = ("import sys, lossref.optax, lossref.optax.losses; "
            "print(sorted(m for m in ('jax', 'optax', 'jaxlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
