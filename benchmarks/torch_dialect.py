"""The PyTorch dialect against torch itself, on the same arrays.

    python benchmarks/torch_dialect.py [--log2n 22] [--repeat 5] [--function NAME ...] [--out FILE.json]

For every function of ``lossref.torch.nn.functional``: its time with ``reduction='none'``
and ``'mean'`` over the time of ``torch.nn.functional`` on the same float32 arrays (the
two calls interleaved in one process, so a busy machine slows them alike; medians; torch
on its default CPU threads, the tensors made with ``torch.from_numpy`` outside the timed
call), and the dialect's peak memory beyond the inputs (tracemalloc) as a multiple of
the input bytes. torch computes in float32; the dialect in float64 with compensated
sums and one rounding, so the ratio is the price of the exact-to-a-rounding answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from cases import geomean_and_worst, interleaved, peak_extra_bytes, print_ratios, write_rows  # noqa: E402

Args = Tuple[tuple, dict]


def _inputs(name: str, n: int, rng: np.random.Generator) -> Args:
    """Positional arrays and keywords of `name` at about `n` float32 elements, in the
    function's natural domain."""
    d = 64 if name not in ("cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss") else 100
    rows = max(1, n // d)
    x = rng.standard_normal((rows, d), dtype=np.float32)
    y = rng.standard_normal((rows, d), dtype=np.float32)
    u = rng.random((rows, d), dtype=np.float32)
    sign = np.where(u > 0.5, 1, -1).astype(np.float32)
    labels = rng.integers(0, d, rows)
    if name in ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"):
        return (x, y), {}
    if name == "binary_cross_entropy":
        return (np.clip(u, 1e-6, 1 - 1e-6), (y > 0).astype(np.float32)), {}
    if name in ("binary_cross_entropy_with_logits", "multilabel_soft_margin_loss"):
        return (x, (y > 0).astype(np.float32)), {}
    if name == "kl_div":
        return (np.log(u + np.float32(1e-3)), rng.random((rows, d), dtype=np.float32)), {}
    if name == "poisson_nll_loss":
        return (x, np.abs(y)), {}
    if name == "gaussian_nll_loss":
        return (x, y, np.abs(y) + np.float32(0.1)), {}
    if name in ("soft_margin_loss", "hinge_embedding_loss"):
        return (x, sign), {}
    if name in ("cross_entropy", "nll_loss", "multi_margin_loss"):
        return (x if name != "nll_loss" else x - np.log(np.exp(x).sum(1, keepdims=True)), labels), {}
    if name == "multilabel_margin_loss":
        t = np.full((rows, d), -1, np.int64)
        t[:, :3] = rng.integers(0, d, (rows, 3))
        return (x, t), {}
    if name in ("margin_ranking_loss", "cosine_embedding_loss"):
        return (x, y, sign if name == "margin_ranking_loss" else sign[:, 0].copy()), {}
    if name in ("triplet_margin_loss", "triplet_margin_with_distance_loss"):
        return (x, y, rng.standard_normal((rows, d), dtype=np.float32)), {}
    if name == "ctc_loss":  # (T, N, C) log-probabilities, 20 labels per sample
        t, c = 64, 32
        nb = max(1, n // (t * c))
        lp = rng.standard_normal((t, nb, c), dtype=np.float32)
        lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
        return (lp, rng.integers(1, c, (nb, 20)), np.full(nb, t), np.full(nb, 20)), {}
    raise KeyError(name)


def _torch_args(args: tuple) -> tuple:
    import torch

    return tuple(torch.from_numpy(a) for a in args)


def torch_row(name: str, log2n: int, repeat: int, seed: int = 0) -> dict:
    """The dialect and torch on the same inputs, ``'none'`` and ``'mean'`` interleaved."""
    import torch
    from lossref.torch.nn import functional as F

    args, kw = _inputs(name, 2 ** log2n, np.random.default_rng(seed))
    ours, theirs = getattr(F, name), getattr(torch.nn.functional, name)
    targs = _torch_args(args)
    in_bytes = int(sum(a.nbytes for a in args))
    row: Dict[str, object] = {"function": name, "elements": int(args[0].size), "input_bytes": in_bytes}
    for red in ("none", "mean"):
        r = timed_pair({"lossref": lambda: ours(*args, reduction=red, **kw),
                        "torch": lambda: theirs(*targs, reduction=red, **kw)}, repeat, in_bytes)
        r["ratio_to_torch"] = r.pop("ratio")
        row[red] = r
    return row


def timed_pair(calls: Dict[str, Callable[[], object]], repeat: int, in_bytes: int) -> dict:
    """Medians of the two calls (``lossref`` and the framework's) interleaved after a
    warm-up, their ratio, and lossref's peak memory beyond the inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. kl_div's 'mean' warning, in both
        r = interleaved(calls, repeat)
        other = next(k for k in calls if k != "lossref")
        r["ratio"] = r["lossref"]["median_s"] / r[other]["median_s"]
        r["lossref"]["peak_extra_ratio"] = peak_extra_bytes(calls["lossref"]) / in_bytes
    return r


def functions() -> list:
    from lossref.torch.nn import functional as F

    return sorted(F.__all__)


def print_row(row: dict) -> None:
    print(f"  {row['function']:34s} " + "  ".join(
        f"{red} {row[red]['lossref']['median_s'] * 1e3:8.1f} ms / torch {row[red]['torch']['median_s'] * 1e3:7.1f} ms"
        f" = {row[red]['ratio_to_torch']:5.1f}x (mem {row[red]['lossref']['peak_extra_ratio']:.2f}x)"
        for red in ("none", "mean")), flush=True)


def summarise(rows: list) -> dict:
    """Geometric mean and worst ratio per reduction."""
    return {red: geomean_and_worst({r["function"]: r[red]["ratio_to_torch"] for r in rows})
            for red in ("none", "mean")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=22, help="about 2**LOG2N input elements (default 22)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--function", action="append", help="only these functions")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = []
    for name in args.function or functions():
        rows.append(torch_row(name, args.log2n, args.repeat))
        print_row(rows[-1])
    s = summarise(rows)
    print_ratios("torch dialect '{}'", "torch", s)
    write_rows(args.out, rows, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
