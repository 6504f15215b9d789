"""The Keras dialect against the catalogue, on the same arrays.

    python benchmarks/dialect.py [--log2n 24] [--repeat 3] [--loss NAME ...] [--out FILE.json]

For every class and function of ``lossref.keras.losses``: its time over the time of
``lossref.get(name).per_sample`` (the three calls interleaved in one process, so a busy
machine slows them alike; medians), and its peak memory beyond the inputs (tracemalloc)
as a multiple of the input bytes. The classes run with their default reduction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Callable, Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import lossref  # noqa: E402
from cases import SPARSE, inputs_for, interleaved, peak_extra_bytes  # noqa: E402

#: keyword arguments a Keras function needs that it has no default for
FUNCTION_KWARGS = {"categorical_generalized_cross_entropy": {"q": 0.5}}


def keras_callables() -> Dict[str, Tuple[type, Callable]]:
    """Catalogue name -> (Keras class, Keras function) for every class of the dialect."""
    from lossref.vectors.targets import keras_targets

    return {n: (t.cls, t.function) for n, t in keras_targets().items()}


def shape_for(loss: str, log2n: int) -> tuple:
    """The input shape of `loss` at about 2**log2n elements (fewer where the loss is quadratic
    in the batch: circle compares every pair of rows)."""
    if loss == "circle":
        return (2 ** (log2n - 12), 1024)
    if loss == "ctc":
        return (2 ** (log2n - 13), 64, 128)
    return (2 ** log2n // 1024, 1024)


def dialect_row(loss: str, y: np.ndarray, p: np.ndarray, repeat: int) -> dict:
    """Times of the catalogue, the Keras class and the Keras function on `y`, `p`
    (interleaved, medians), their ratios to the catalogue and their peak extra memory."""
    cls, fn = keras_callables()[loss]
    L, kw, instance = lossref.get(loss), FUNCTION_KWARGS.get(loss, {}), cls()
    calls = {"catalogue": lambda: L.per_sample(y, p),
             "class": lambda: instance(y, p),
             "function": lambda: fn(y, p, **kw)}
    in_bytes = int(y.nbytes + p.nbytes)
    row = {"input_bytes": in_bytes, **interleaved(calls, repeat)}
    for k, f in calls.items():
        row[k]["peak_extra_ratio"] = peak_extra_bytes(f) / in_bytes
    for k in ("class", "function"):
        row[k]["ratio_to_catalogue"] = row[k]["median_s"] / row["catalogue"]["median_s"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=24, help="about 2**LOG2N input elements (default 24)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loss", action="append", help="only these losses (catalogue names)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'loss':34s} {'shape':18s} {'catalogue':>9s} {'class':>7s} {'function':>8s}   "
          f"memory: {'catalogue':>9s} {'class':>6s} {'function':>8s}")
    for loss in sorted(keras_callables()):
        if args.loss and loss not in args.loss:
            continue
        shape = shape_for(loss, args.log2n)
        y, p = inputs_for(loss, shape, rng)
        if loss in SPARSE:
            y = y.astype(np.int64)  # class indices as users pass them
        row = {"loss": loss, "shape": list(shape), **dialect_row(loss, y, p, args.repeat)}
        rows.append(row)
        c, k, f = row["catalogue"], row["class"], row["function"]
        print(f"{loss:34s} {str(shape):18s} {c['median_s'] * 1e3:7.0f}ms {k['ratio_to_catalogue']:6.2f}x "
              f"{f['ratio_to_catalogue']:7.2f}x   {c['peak_extra_ratio']:14.2f}x {k['peak_extra_ratio']:5.2f}x "
              f"{f['peak_extra_ratio']:7.2f}x", flush=True)
    worst = max(max(r["class"]["ratio_to_catalogue"], r["function"]["ratio_to_catalogue"]) for r in rows)
    print(f"worst dialect/catalogue time ratio {worst:.2f}; geometric mean "
          f"{statistics.geometric_mean([r[k]['ratio_to_catalogue'] for r in rows for k in ('class', 'function')]):.2f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
