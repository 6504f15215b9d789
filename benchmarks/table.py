"""Print the README's performance table from a results file of benchmarks/run.py.

    python benchmarks/table.py benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import statistics
import sys


def table(results: dict) -> str:
    big = max(r["elements"] for r in results["reference"])
    rows = sorted((r for r in results["reference"] if r["elements"] == big and len(r["shape"]) == 2),
                  key=lambda r: r["loss"])
    out = ["| loss | lossref | torch | jax (jit) | keras (numpy) | lossref / fastest | NumPy float64 textbook "
           "| peak extra memory |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def peer(prefix):
            return next((f"{v['median_s'] * 1e3:.0f}" for k, v in r["peers"].items() if k.startswith(prefix)), "–")
        floor = r.get("numpy_float64_textbook")
        floor = f"{floor['median_s'] * 1e3:.0f}" if floor else "–"
        out.append(f"| {r['loss']} | {r['lossref']['median_s'] * 1e3:.0f} | {peer('torch')} | {peer('jax')} | "
                   f"{peer('keras')} | {r['ratio_to_fastest_peer']:.1f}× | {floor} | {r['peak_extra_ratio']:.2f}× |")
    g = statistics.geometric_mean([r["ratio_to_fastest_peer"] for r in rows])
    out.append("")
    out.append(f"Geometric mean of the ratios at {big} elements: {g:.1f}×.")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json") as f:
        print(table(json.load(f)))
