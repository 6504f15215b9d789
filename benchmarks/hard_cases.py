"""Search for hard rounding cases: one-element inputs whose exact loss value lies closest to a
rounding midpoint of the format (where a fast path would have to work hardest).

    python benchmarks/hard_cases.py [--samples N] [--keep K] [--out tests/data/hard_cases.txt]

For every separable loss of the catalogue (default parameters) and every format, N random
input pairs in the loss's domain (benchmarks/cases.py), scaled by random powers of two for
the real-valued losses, are evaluated exactly on balls at 256 bits; the K whose values lie
nearest a midpoint (in ulps of the format) are written out, with exact midpoints (distance
0) first. The search is seeded: the same command writes the same file.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import lossref  # noqa: E402
from cases import SPARSE, inputs_for  # noqa: E402
from lossref import formats  # noqa: E402
from lossref.oracle import balls  # noqa: E402

FORMATS = ("float16", "bfloat16", "float32", "float64")
HEADER = """\
# lossref hard rounding cases: one-element inputs whose exact loss value lies closest to a
# rounding midpoint of the format (nearest-even ties included). Written by
# benchmarks/hard_cases.py: a seeded random search over each separable loss's domain
# (default parameters), exact values on Arb balls at 256 bits.
#
# One case per line:  LOSS  FORMAT  Y_TRUE  Y_PRED  DIST
#   Y_TRUE, Y_PRED  the inputs of shape (1, 1), hex floats exact in FORMAT
#   DIST            |exact value - nearest midpoint| in ulps of FORMAT (0: on the midpoint)
# tests/test_oracle_balls.py decides each case on balls and on mpmath and wants the same bits.
"""


def separable_losses():
    return [n for n in lossref.names() if lossref.get(n).separable and n not in SPARSE]


def draw(loss: str, fmt: str, n: int, rng: np.random.Generator):
    y, p = (a.astype(np.float64) for a in inputs_for(loss, (n, 1), rng))
    if loss in ("mean_squared_error", "mean_absolute_error", "huber", "log_cosh",
                "mean_absolute_percentage_error", "mean_squared_logarithmic_error"):
        k = rng.integers(-12, 12, (n, 1)).astype(np.float64)
        y, p = np.ldexp(y, k.astype(int)), np.ldexp(p, k.astype(int))
    f = formats.get_format(fmt)
    if f.precision > 24:  # float32 draws: give float64 cases bits of their own
        p = p * (1.0 + rng.uniform(-2.0 ** -25, 2.0 ** -25, p.shape))
    y, p = formats.round_array(y, f), formats.round_array(p, f)
    return y.astype(f.dtype), p.astype(f.dtype)


def midpoint_distance(vals: np.ndarray, f) -> np.ndarray:
    """|value - nearest midpoint| in ulps of `f` (inf where the ball says nothing)."""
    m, s, r = (np.asarray(a, dtype=np.float64) for a in balls._probe_u(np.asarray(vals, object).ravel()))
    with np.errstate(all="ignore"):
        c = formats.round_array(m + s, f)
        up, down = balls._gaps(c, f)
        d = np.abs((m - c) + s)
        gap = np.where(((m - c) + s) * np.sign(c) >= 0, up, down)
        dist = np.abs(gap / 2 - d) / gap
    return np.where(np.isfinite(dist) & np.isfinite(c) & (np.abs(c) < f.max), dist, np.inf)


def search(samples: int, keep: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for loss in separable_losses():
        L = lossref.get(loss)
        for fmt in FORMATS:
            f = formats.get_format(fmt)
            y, p = draw(loss, fmt, samples, rng)
            vals = L.exact(y, p)
            with np.errstate(all="ignore"):
                v = vals._eval("arb", 256)
            dist = midpoint_distance(v, f)
            order = np.argsort(dist, kind="stable")
            seen = set()
            for i in order:
                key = (float(y[i, 0]), float(p[i, 0]))
                if not np.isfinite(dist[i]) or len(seen) == keep:
                    break
                if key not in seen:
                    seen.add(key)
                    out.append((loss, fmt, key[0], key[1], float(dist[i])))
            print(f"  {loss:34s} {fmt:8s} nearest {dist[order[0]]:.3g} ulp", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--keep", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                  "hard_cases.txt"))
    args = ap.parse_args(argv)
    cases = search(args.samples, args.keep)
    lines = [HEADER]
    last = None
    for loss, fmt, y, p, d in cases:
        if loss != last:
            lines.append(f"\n# {loss}: the {args.keep} nearest of {args.samples} draws per format\n")
            last = loss
        lines.append(f"{loss} {fmt} {formats.to_hex(y, trim=True)} {formats.to_hex(p, trim=True)} {d:.3e}\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("".join(lines))
    print(f"{len(cases)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
