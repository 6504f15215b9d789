"""Exact gradients: the oracle's own formulas differentiated in reverse mode.

An oracle evaluated inside :class:`Tape` sees Nodes (:class:`lossref.oracle.ops.Node`) where
it reads the input being differentiated: :func:`~lossref.oracle.ops.lift` of an array that
shares memory with the input returns one Node per memory element, so an element read twice
(through a broadcast view, a reshape, an index) is one variable and its gradient sums every
use, as autodiff does through broadcasting. Each op of the op set adds its analytic local
derivative; :meth:`Tape.gradient` applies the chain rule backwards with a cotangent of ones.
On Arb balls every local derivative and every product and sum of the chain rule is a ball,
so the gradient is enclosed as rigorously as the values, and :class:`~lossref.oracle.Exact`
decides it with the same Ziv loop.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from . import ops
from .ops import Node, Quot

__all__ = ["Tape", "addresses", "owner_index", "root"]


def root(a: np.ndarray) -> np.ndarray:
    """The array that owns `a`'s memory (`a` itself if it owns it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def addresses(a: np.ndarray) -> np.ndarray:
    """The memory address of every element of `a` (int64, `a`'s shape): equal for the
    elements a broadcast view repeats."""
    out = np.full(a.shape, a.__array_interface__["data"][0], dtype=np.int64)
    for k, (n, st) in enumerate(zip(a.shape, a.strides)):
        shape = [1] * a.ndim
        shape[k] = n
        out = out + (np.arange(n, dtype=np.int64) * st).reshape(shape)
    return out


def owner_index(owner: np.ndarray, addr: np.ndarray) -> np.ndarray:
    """The flat (C-order) index in `owner` of each element address in `addr`."""
    own = addresses(owner).reshape(-1)
    order = np.argsort(own)
    return order[np.searchsorted(own, np.asarray(addr).reshape(-1), sorter=order)]


class Tape:
    """Records the evaluation of an oracle and differentiates it.

    Parameters
    ----------
    target : ndarray
        The float array being differentiated, as the oracle will read it (possibly a view
        of the array that owns its memory): every array lifted inside the tape that shares
        memory with its owner becomes Nodes.
    """

    def __init__(self, target: np.ndarray) -> None:
        self.owner = root(np.asarray(target))
        self._start = self.owner.__array_interface__["data"][0]
        self._nodes: Dict[int, Node] = {}

    def differentiates(self, arr: np.ndarray) -> bool:
        return np.may_share_memory(arr, self.owner)

    def leaves(self, arr: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`values` (the exact values of `arr`) as Nodes, one per memory element."""
        addr = addresses(arr).reshape(-1)
        out = np.empty(addr.size, dtype=object)
        for i, (a, v) in enumerate(zip(addr.tolist(), values.reshape(-1).tolist())):
            node = self._nodes.get(a)
            if node is None:
                node = self._nodes[a] = Node(v)
            out[i] = node
        return out.reshape(arr.shape)

    def gradient(self, out) -> np.ndarray:
        """``d sum(out) / d target``, as numbers of the backend, in the shape of the array
        that owns the target's memory (0 where `out` does not depend on an element)."""
        out = np.asarray(out, dtype=object)
        # each cotangent is a quotient (numerator, denominator): divisions of the chain
        # rule (ops.Quot) are multiplied into the denominator, and the one division is
        # made at the end, so an exactly representable gradient is computed exactly
        grads: Dict[int, tuple] = {}
        nodes = {}
        stack = [e for e in out.reshape(-1).tolist() if type(e) is Node]
        for e in stack:
            grads[id(e)] = _add(grads[id(e)], (1, 1)) if id(e) in grads else (1, 1)
        while stack:  # every node the outputs depend on
            n = stack.pop()
            if id(n) in nodes:
                continue
            nodes[id(n)] = n
            stack.extend(p for p, _ in n.parents if id(p) not in nodes)
        for n in sorted(nodes.values(), key=lambda n: n.order, reverse=True):
            g = grads.get(id(n))
            if g is None:
                continue
            num, den = g
            for p, d in n.parents:
                if type(d) is Quot:
                    c = (num * d.m, den * d.d)
                elif type(d) is int and d == 1:
                    c = g
                else:
                    c = (num * d, den)
                k = id(p)
                grads[k] = _add(grads[k], c) if k in grads else c
        o = self.owner
        result = np.empty(o.size, dtype=object)
        result[...] = ops.num(0)
        hit = [(a, grads[id(n)]) for a, n in self._nodes.items() if id(n) in grads]
        if hit:  # the one division of each quotient, all at once
            at = owner_index(o, np.array([a for a, _ in hit], dtype=np.int64))
            num = np.asarray(ops.lift(np.array([g[0] for _, g in hit], dtype=object)), dtype=object)
            den = np.asarray(ops.lift(np.array([g[1] for _, g in hit], dtype=object)), dtype=object)
            result[at] = ops.div(num, den)
        return result.reshape(o.shape)


def _add(a: tuple, b: tuple) -> tuple:
    """The sum of two quotients ``(numerator, denominator)``."""
    if a[1] is b[1] or (type(a[1]) is int and type(b[1]) is int and a[1] == b[1]):
        return (a[0] + b[0], a[1])
    return (a[0] * b[1] + b[0] * a[1], a[1] * b[1])


def tie_share(convention: Optional[str]):
    """The share of a tie ``max(a, b)``, ``a == b``, that goes to `a`: ``"split"`` (1/2,
    torch.maximum and jax.numpy.maximum), ``"first"`` (1) or ``"second"`` (0)."""
    return {"split": 0.5, None: 0.5, "first": 1, "second": 0}[convention]
