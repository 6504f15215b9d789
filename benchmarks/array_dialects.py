"""The Optax and TensorFlow dialects against optax and tf.nn themselves, on the same arrays.

    python benchmarks/array_dialects.py [--log2n 18] [--repeat 5] [--framework optax|tf] [--out FILE.json]

For every function of ``lossref.optax.losses`` and ``lossref.tf.nn``: its time over the
framework's on the same float32 arrays (interleaved medians after a warm-up, which also
compiles the optax function for these shapes; the framework's arrays are made outside
the timed call and its result is waited for), and the dialect's peak memory beyond the
inputs (tracemalloc) as a multiple of the input bytes. The frameworks compute in float32;
the dialects in float64 with one rounding, so the ratio is the price of the answer that is
exact to a rounding.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from cases import geomean_and_worst, print_ratios, write_rows  # noqa: E402
from torch_dialect import timed_pair  # noqa: E402

Args = Tuple[tuple, dict]
F32 = np.float32


def _inputs(name: str, n: int, rng: np.random.Generator) -> Args:
    """Positional arrays and keywords of `name` at about `n` float32 elements."""
    c = 16
    rows = max(1, n // c)
    x = rng.standard_normal((rows, c), dtype=F32)
    y = rng.standard_normal((rows, c), dtype=F32)
    u = rng.random((rows, c), dtype=F32)
    labels = rng.integers(0, c, rows)
    onehot = np.eye(c, dtype=F32)[labels]
    bits = (u > 0.5).astype(F32)
    logq = np.log(u + F32(1e-3)) - np.log(np.sum(u + F32(1e-3), -1, keepdims=True))
    p = rng.random((rows, c), dtype=F32)
    p /= p.sum(-1, keepdims=True)
    table = {
        # optax
        "l2_loss": ((x, y), {}), "squared_error": ((x, y), {}), "huber_loss": ((x, y), {}),
        "log_cosh": ((x, y), {}), "cosine_similarity": ((x, y), {}), "cosine_distance": ((x, y), {}),
        "smooth_labels": ((onehot, 0.1), {}), "hinge_loss": ((x, np.sign(y)), {}),
        "perceptron_loss": ((x, np.sign(y)), {}),
        "sigmoid_binary_cross_entropy": ((x, bits), {}), "sigmoid_focal_loss": ((x, bits), {}),
        "softmax_cross_entropy": ((x, onehot), {}), "safe_softmax_cross_entropy": ((x, onehot), {}),
        "poly_loss_cross_entropy": ((x, onehot), {}),
        "softmax_cross_entropy_with_integer_labels": ((x, labels), {}),
        "kl_divergence": ((logq, p), {}), "kl_divergence_with_log_targets": ((logq, np.log(p)), {}),
        "convex_kl_divergence": ((logq, p), {}), "generalized_kl_divergence": ((logq, p), {}),
        "multiclass_hinge_loss": ((x, labels), {}), "multiclass_perceptron_loss": ((x, labels), {}),
        "multiclass_sparsemax_loss": ((x, labels), {}), "sparsemax_loss": ((x, bits), {}),
        "ranking_softmax_loss": ((x, u), {}),
        "triplet_margin_loss": ((x, y, rng.standard_normal((rows, c), dtype=F32)), {}),
        "dice_loss": ((x, onehot), {}), "binary_dice_loss": ((x, bits), {}),
        "multiclass_generalized_dice_loss": ((x, onehot), {}),
        # tf.nn (labels first)
        "sigmoid_cross_entropy_with_logits": ((bits, x), {}),
        "weighted_cross_entropy_with_logits": ((bits, x), {"pos_weight": 2.0}),
        "softmax_cross_entropy_with_logits": ((onehot, x), {}),
        "sparse_softmax_cross_entropy_with_logits": ((labels, x), {}),
        "log_poisson_loss": ((np.floor(4 * u), x), {}), "l2_loss.tf": ((x,), {}),
        "compute_average_loss": ((x.ravel(),), {}), "scale_regularization_loss": ((x.ravel(),), {}),
    }
    if name == "ntxent":  # every pair of rows: B^2 D work
        b = max(2, int(np.sqrt(n)))
        e = rng.standard_normal((b, 64), dtype=F32)
        return (e, rng.integers(0, max(1, b // 2), b)), {}
    if name in ("ctc_loss", "ctc_loss_with_forward_probs", "ctc_loss.tf"):  # 20 labels, C = 32, T = 64
        t, cc = 64, 32
        nb = max(1, n // (t * cc))
        lab = rng.integers(1, cc, (nb, 20))
        if name == "ctc_loss.tf":
            return (lab, rng.standard_normal((t, nb, cc), dtype=F32), np.full(nb, 20), np.full(nb, t)), {}
        return (rng.standard_normal((nb, t, cc), dtype=F32), np.zeros((nb, t), F32), lab,
                np.zeros((nb, 20), F32)), {}
    return table[name]


def _framework(fw: str):
    """``(lossref namespace, framework namespace, to_framework, wait)``."""
    if fw == "optax":
        import jax

        jax.config.update("jax_enable_x64", True)
        import optax

        from lossref.optax import losses
        return losses, optax.losses, jax.device_put, lambda r: jax.block_until_ready(r)
    import tensorflow as tf

    from lossref.tf import nn
    return nn, tf.nn, lambda a: tf.constant(a) if isinstance(a, np.ndarray) else a, \
        lambda r: [t.numpy() for t in (r if isinstance(r, tuple) else (r,))]


def dialect_row(fw: str, name: str, log2n: int, repeat: int, seed: int = 0) -> dict:
    ours_ns, theirs_ns, conv, wait = _framework(fw)
    key = f"{name}.tf" if fw == "tf" and name in ("l2_loss", "ctc_loss") else name
    args, kw = _inputs(key, 2 ** log2n, np.random.default_rng(seed))
    ours, theirs = getattr(ours_ns, name), getattr(theirs_ns, name)
    fargs = tuple(conv(a) for a in args)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    in_bytes = int(sum(a.nbytes for a in arrays))
    r = timed_pair({"lossref": lambda: ours(*args, **kw), fw: lambda: wait(theirs(*fargs, **kw))},
                   repeat, in_bytes)
    return {"framework": fw, "function": name, "elements": int(arrays[0].size), "input_bytes": in_bytes,
            "none": {**r, "ratio_to_framework": r.pop("ratio")}}


def functions(fw: str) -> list:
    return sorted(_framework(fw)[0].__all__)


def print_row(row: dict) -> None:
    r = row["none"]
    fw = row["framework"]
    print(f"  {fw:5s} {row['function']:42s} {r['lossref']['median_s'] * 1e3:8.2f} ms / {fw} "
          f"{r[fw]['median_s'] * 1e3:7.2f} ms = {r['ratio_to_framework']:6.1f}x "
          f"(mem {r['lossref']['peak_extra_ratio']:.2f}x)", flush=True)


def summarise(rows: list) -> Dict[str, dict]:
    return {fw: geomean_and_worst({r["function"]: r["none"]["ratio_to_framework"]
                                   for r in rows if r["framework"] == fw})
            for fw in sorted({r["framework"] for r in rows})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=18, help="about 2**LOG2N input elements (default 18)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--framework", action="append", choices=["optax", "tf"])
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = []
    for fw in args.framework or ["optax", "tf"]:
        for name in functions(fw):
            rows.append(dialect_row(fw, name, args.log2n, args.repeat))
            print_row(rows[-1])
    s = summarise(rows)
    print_ratios("{} dialect", "{}", s)
    write_rows(args.out, rows, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
