"""Reference gradients against the frameworks' autodiff, on the same arrays.

    python benchmarks/grad.py [--log2n 18] [--repeat 5] [--framework torch|optax ...] [--out FILE.json]

For every function of the PyTorch dialect: ``fn.grad(..., reduction='mean')`` (what a user
calls: the gradient of the reduced loss with respect to the prediction) over torch's
forward and backward (``loss(...).backward()`` on a leaf tensor that requires grad), and
for every function of the Optax dialect: ``fn.grad(...)`` over
``jax.jit(jax.grad(lambda p: optax_fn(p, ...).sum()))`` after its compilation. The calls
are interleaved in one process (medians), on the inputs of the value benchmarks
(torch_dialect.py, array_dialects.py) in float32; lossref differentiates in float64 and
rounds once. Functions whose gradient the frameworks do not take with respect to a float
prediction (integer-only inputs) are left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from array_dialects import _inputs as optax_inputs  # noqa: E402
from cases import geomean_and_worst, interleaved, print_ratios, write_rows  # noqa: E402
from torch_dialect import _inputs as torch_inputs  # noqa: E402


def torch_row(name: str, log2n: int, repeat: int, seed: int = 0) -> dict:
    import torch

    from lossref.torch.nn import functional as F

    args, kw = torch_inputs(name, 2 ** log2n, np.random.default_rng(seed))
    ours, theirs = getattr(F, name), getattr(torch.nn.functional, name)
    targs = [torch.from_numpy(a) for a in args]

    def torch_grad():
        x = targs[0].detach().requires_grad_(True)
        theirs(x, *targs[1:], reduction="mean", **kw).backward()
        return x.grad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = interleaved({"lossref": lambda: ours.grad(*args, reduction="mean", **kw), "torch": torch_grad}, repeat)
    return {"framework": "torch", "function": name, "elements": int(args[0].size),
            "lossref_s": r["lossref"]["median_s"], "framework_s": r["torch"]["median_s"],
            "ratio": r["lossref"]["median_s"] / r["torch"]["median_s"]}


def optax_row(name: str, log2n: int, repeat: int, seed: int = 0) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import optax

    from lossref.optax import losses

    args, kw = optax_inputs(name, 2 ** log2n, np.random.default_rng(seed))
    ours, theirs = getattr(losses, name), getattr(optax.losses, name)
    wrt = ours.grad_inputs()[0] if ours.grad_inputs() else None
    names = list(ours.__signature__.parameters)
    i = names.index(wrt)
    rest = [jax.device_put(a) for a in args]

    def total(p):
        a = list(rest)
        a[i] = p
        return jax.numpy.sum(theirs(*a, **kw))

    g = jax.jit(jax.grad(total))
    x0 = rest[i]
    r = interleaved({"lossref": lambda: ours.grad(*args, **kw),
                     "optax": lambda: jax.block_until_ready(g(x0))}, repeat)
    return {"framework": "optax", "function": name, "elements": int(np.asarray(args[0]).size),
            "lossref_s": r["lossref"]["median_s"], "framework_s": r["optax"]["median_s"],
            "ratio": r["lossref"]["median_s"] / r["optax"]["median_s"]}


#: the functions benchmarked: the differentiable ones of the value benchmarks
TORCH = ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
         "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss",
         "soft_margin_loss", "hinge_embedding_loss", "cross_entropy", "nll_loss", "multi_margin_loss",
         "multilabel_soft_margin_loss", "margin_ranking_loss", "cosine_embedding_loss",
         "triplet_margin_loss", "ctc_loss")
OPTAX = ("squared_error", "l2_loss", "huber_loss", "log_cosh", "sigmoid_binary_cross_entropy",
         "sigmoid_focal_loss", "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels",
         "poly_loss_cross_entropy", "kl_divergence", "hinge_loss", "multiclass_hinge_loss",
         "cosine_similarity", "cosine_distance", "triplet_margin_loss", "sparsemax_loss", "dice_loss")
# (multiclass_sparsemax_loss: jax.grad of optax's fails for float32 inputs with x64 on, its
# custom JVP returning float32 tangents for float64 primals)


def rows(frameworks, log2n: int, repeat: int) -> list:
    out = []
    for fw in frameworks:
        for name in (TORCH if fw == "torch" else OPTAX):
            row = (torch_row if fw == "torch" else optax_row)(name, log2n, repeat)
            out.append(row)
            print_row(row)
    return out


def print_row(row: dict) -> None:
    fw = row["framework"]
    print(f"  {fw:5s} {row['function']:42s} grad {row['lossref_s'] * 1e3:8.2f} ms / {fw} "
          f"{row['framework_s'] * 1e3:7.2f} ms = {row['ratio']:6.1f}x", flush=True)


def summarise(rs: list) -> Dict[str, dict]:
    return {fw: geomean_and_worst({r["function"]: r["ratio"] for r in rs if r["framework"] == fw})
            for fw in sorted({r["framework"] for r in rs})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=18, help="about 2**LOG2N input elements (default 18)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--framework", action="append", choices=["torch", "optax"])
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rs = rows(args.framework or ["torch", "optax"], args.log2n, args.repeat)
    s = summarise(rs)
    print_ratios("{} gradients", "{}", s)
    write_rows(args.out, rs, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
