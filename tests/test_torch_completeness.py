"""Every loss of the installed torch is mirrored by lossref.torch, listed as out of scope
with a reason, or listed as not mirrored yet.

The installed torch is scanned: a function of ``torch.nn.functional`` with a
``reduction`` argument, and a ``*Loss`` class of ``torch.nn``. ``NOT_YET`` names the gap
exactly, so the test fails both when torch gains a loss nobody listed and when a listed
one is mirrored without being taken off the list.
"""

from __future__ import annotations

import inspect

import torch  # the test extra installs it: this check must never be skipped

from lossref.torch import nn as lnn
from lossref.torch.nn import functional as lF

#: Not mirrored, and not meant to be: the reason in one line.
OUT_OF_SCOPE = {
    "AdaptiveLogSoftmaxWithLoss": "a layer with trainable parameters (it returns the output and the loss), not a loss function",
    "linear_cross_entropy": "a linear layer fused with cross_entropy: the loss is cross_entropy(input @ weight.T + bias), mirrored there",
    "LinearCrossEntropyLoss": "the module of linear_cross_entropy (a layer with a weight), see there",
}
#: Losses of the installed torch not mirrored yet (none today): the test names the gap exactly.
NOT_YET: set = set()  # every loss of torch 2.13 is mirrored or out of scope


def torch_loss_functions():
    out = set()
    for name in dir(torch.nn.functional):
        f = getattr(torch.nn.functional, name)
        if name.startswith("_") or not callable(f):
            continue
        try:
            if "reduction" in inspect.signature(f).parameters:
                out.add(name)
        except (TypeError, ValueError):  # builtins without a signature are not losses
            continue
    return out


def torch_loss_modules():
    return {n for n in dir(torch.nn) if n.endswith("Loss") and isinstance(getattr(torch.nn, n), type)}


def test_every_torch_loss_is_mirrored_or_listed():
    functions, modules = torch_loss_functions(), torch_loss_modules()
    assert len(functions) >= 20 and len(modules) >= 20  # the scan found torch's losses
    mirrored = set(lF.__all__) | set(lnn.__all__)
    unaccounted = (functions | modules) - mirrored - set(OUT_OF_SCOPE) - NOT_YET
    assert not unaccounted, f"mirror these or list them with a reason: {sorted(unaccounted)}"
    done_but_listed = (set(OUT_OF_SCOPE) | NOT_YET) & mirrored
    assert not done_but_listed, f"mirrored: take them off the lists: {sorted(done_but_listed)}"
    stale = (set(OUT_OF_SCOPE) | NOT_YET) - functions - modules
    assert not stale, f"not in the installed torch: {sorted(stale)}"


def _params(sig):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_every_mirrored_function_has_torch_signature():
    """Names, kinds (keyword-only markers included) and defaults; the exact twin too."""
    for name in lF.__all__:
        ours, theirs = getattr(lF, name), getattr(torch.nn.functional, name, None)
        assert theirs is not None, name
        assert _params(inspect.signature(ours)) == _params(inspect.signature(theirs)), name
        assert inspect.signature(ours.exact) == inspect.signature(ours), name


def test_every_mirrored_module_has_torch_signatures():
    """Constructor and ``forward``, and ``exact`` takes what ``forward`` takes."""
    for name in (n for n in lnn.__all__ if n != "functional"):
        ours, theirs = getattr(lnn, name), getattr(torch.nn, name, None)
        assert isinstance(theirs, type), name
        for method in ("__init__", "forward"):
            assert _params(inspect.signature(getattr(ours, method))) == \
                _params(inspect.signature(getattr(theirs, method))), (name, method)
        assert _params(inspect.signature(ours.exact)) == _params(inspect.signature(theirs.forward)), name
