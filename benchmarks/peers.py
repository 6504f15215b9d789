"""Peer implementations of the benchmarked losses in torch and JAX (per-sample values).

Each loss is written once against a small namespace shim, so torch and JAX run the same
formula (Keras's definition: same clip constants and stage-2 axis). The losses Keras does
not have (soft_margin, hinge_embedding, gaussian_nll, margin_ranking) are PyTorch's, and
(poly1_crossentropy, generalized_kl_divergence) optax's: the torch peer calls its own
function (``reduction='none'``, then the mean over the last axis), the others run
PyTorch's formula. They exist to time what a framework user would run, not to be accurate.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

EPS = 1e-7
LN2 = math.log(2.0)


class _Torch:
    def __init__(self):
        import torch
        import torch.nn.functional as F

        self.t, self.F = torch, F
        self.name = f"torch {torch.__version__}"

    def asarray(self, a):
        return self.t.from_numpy(a)

    def clip(self, x, lo, hi=None):
        return self.t.clamp(x, min=lo, max=hi)

    def mean(self, x):
        return x.mean(-1)

    def sum(self, x, keep=False):
        return x.sum(-1, keepdim=keep)

    def max(self, x):
        return x.max(-1).values

    def softplus(self, x):
        return self.F.softplus(x)

    def log_softmax(self, x):
        return self.t.log_softmax(x, -1)

    def take(self, x, labels):
        return x.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)

    def soft_margin(self, y, p):
        return self.F.soft_margin_loss(p, y, reduction="none")

    def hinge_embedding(self, y, p):
        return self.F.hinge_embedding_loss(p, y, reduction="none")

    def gaussian_nll(self, y, p):  # var = 1 (the catalogue's default), eps = 1e-6
        return self.F.gaussian_nll_loss(p, y, 1.0, reduction="none")

    def margin_ranking(self, y, p):  # x2 = 0, margin = 0 (the catalogue's defaults)
        return self.F.margin_ranking_loss(p, self.t.zeros_like(p), y, reduction="none")

    def __getattr__(self, name):  # log, log1p, abs, exp, square, maximum, where, ...
        return getattr(self.t, name)

    def jit(self, f):
        return f

    def block(self, x):
        return x


class _NumpyLike:
    """The reductions and clip both NumPy-style namespaces (``self.xp``) spell alike."""

    xp = None

    def clip(self, x, lo, hi=None):
        return self.xp.clip(x, lo, hi)

    def mean(self, x):
        return x.mean(-1)

    def sum(self, x, keep=False):
        return x.sum(-1, keepdims=keep)

    def max(self, x):
        return x.max(-1)

    def soft_margin(self, y, p):
        return self.softplus(-y * p)

    def hinge_embedding(self, y, p):  # both terms wherever y is neither 1 nor -1, as torch
        return self.xp.where(y != 1, self.clip(1 - p, 0.0), 0.0) + self.xp.where(y != -1, p, 0.0)

    def gaussian_nll(self, y, p):  # torch's formula, var = 1 clamped at eps = 1e-6
        v = self.xp.maximum(self.xp.ones_like(p), 1e-6)
        return 0.5 * (self.xp.log(v) + self.xp.square(p - y) / v)

    def margin_ranking(self, y, p):  # torch's formula, x2 = 0, margin = 0
        return self.clip(-y * (p - self.xp.zeros_like(p)) + 0.0, 0.0)

    def __getattr__(self, name):  # log, log1p, abs, exp, square, maximum, where, ...
        return getattr(self.xp, name)


class _Jax(_NumpyLike):
    def __init__(self):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", False)
        self.jax, self.xp = jax, jnp
        self.name = f"jax {jax.__version__}"

    def asarray(self, a):
        return self.jax.device_put(a)

    def softplus(self, x):
        return self.jax.nn.softplus(x)

    def log_softmax(self, x):
        return self.jax.nn.log_softmax(x, -1)

    def take(self, x, labels):
        return self.xp.take_along_axis(x, labels.astype("int32")[..., None], -1)[..., 0]

    def jit(self, f):
        return self.jax.jit(f)

    def block(self, x):
        return x.block_until_ready()


class _Numpy(_NumpyLike):
    """The same formulas in plain NumPy on float64 copies: the cost of the reference's
    arithmetic contract (float64, one pass per operation) without its accuracy work."""

    def __init__(self):
        import numpy as np
        from scipy.special import log_softmax

        self.xp, self._log_softmax = np, log_softmax
        self.name = f"numpy {np.__version__} (float64, textbook)"

    def asarray(self, a):
        return a

    def softplus(self, x):
        return self.xp.logaddexp(0.0, x)

    def log_softmax(self, x):
        return self._log_softmax(x, -1)

    def take(self, x, labels):
        return self.xp.take_along_axis(x, labels.astype(self.xp.intp)[..., None], -1)[..., 0]

    def jit(self, f):
        f64 = self.xp.float64
        return lambda y, p: f(y.astype(f64), p.astype(f64))

    def block(self, x):
        return x


def _formulas(xp) -> Dict[str, Callable]:
    def cce_probs(y, p):
        p = xp.clip(p / xp.sum(p, keep=True), EPS, 1 - EPS)
        return p

    def bce_elem(y, p):
        p = xp.clip(p, EPS, 1 - EPS)
        return -(y * xp.log(p) + (1 - y) * xp.log(1 - p))

    return {
        "mean_squared_error": lambda y, p: xp.mean(xp.square(y - p)),
        "mean_absolute_error": lambda y, p: xp.mean(xp.abs(y - p)),
        "mean_absolute_percentage_error": lambda y, p: 100 * xp.mean(xp.abs(y - p) / xp.clip(xp.abs(y), EPS)),
        "mean_squared_logarithmic_error": lambda y, p: xp.mean(xp.square(
            xp.log1p(xp.clip(p, EPS)) - xp.log1p(xp.clip(y, EPS)))),
        "huber": lambda y, p: xp.mean(xp.where(xp.abs(p - y) <= 1.0, 0.5 * xp.square(p - y),
                                               xp.abs(p - y) - 0.5)),
        "log_cosh": lambda y, p: xp.mean((p - y) + xp.softplus(-2 * (p - y)) - LN2),
        "hinge": lambda y, p: xp.mean(xp.clip(1 - y * p, 0.0)),
        "squared_hinge": lambda y, p: xp.mean(xp.square(xp.clip(1 - y * p, 0.0))),
        "soft_margin": lambda y, p: xp.mean(xp.soft_margin(y, p)),
        "hinge_embedding": lambda y, p: xp.mean(xp.hinge_embedding(y, p)),
        "gaussian_nll": lambda y, p: xp.mean(xp.gaussian_nll(y, p)),
        "margin_ranking": lambda y, p: xp.mean(xp.margin_ranking(y, p)),
        # optax's (epsilon = 2, the catalogue's default; log-predictions p)
        "poly1_crossentropy": lambda y, p: xp.sum(y * (2.0 * (1 - xp.exp(xp.log_softmax(p))) - xp.log_softmax(p))),
        "generalized_kl_divergence": lambda y, p: xp.sum(y * (xp.log(y) - p) - y + xp.exp(p)),
        "binary_crossentropy": lambda y, p: xp.mean(bce_elem(y, p)),
        "binary_focal_crossentropy": lambda y, p: xp.mean(
            xp.square(1 - (y * p + (1 - y) * (1 - p))) * bce_elem(y, p)),
        "kl_divergence": lambda y, p: xp.sum(xp.clip(y, EPS, 1.0) * xp.log(xp.clip(y, EPS, 1.0) / xp.clip(p, EPS, 1.0))),
        "poisson": lambda y, p: xp.mean(p - y * xp.log(p + EPS)),
        "categorical_crossentropy": lambda y, p: -xp.sum(y * xp.log(cce_probs(y, p))),
        "categorical_focal_crossentropy": lambda y, p: -xp.sum(
            0.25 * xp.square(1 - cce_probs(y, p)) * y * xp.log(cce_probs(y, p))),
        "sparse_categorical_crossentropy": lambda y, p: -xp.take(xp.log(cce_probs(y, p)), y),
        "cosine_similarity": lambda y, p: -xp.sum(
            (y / xp.sqrt(xp.sum(y * y, keep=True))) * (p / xp.sqrt(xp.sum(p * p, keep=True)))),
    }


def peers(floor: bool = False) -> Dict[str, tuple]:
    """{peer name: (shim, {loss: callable})} for every peer importable here; with `floor`,
    the plain-NumPy float64 formulas alone (not a peer: the floor of one pass per operation)."""
    out = {}
    for cls in ((_Numpy,) if floor else (_Torch, _Jax)):
        try:
            xp = cls()
        except ImportError:
            continue
        out[xp.name] = (xp, {k: xp.jit(f) for k, f in _formulas(xp).items()})
    return out
