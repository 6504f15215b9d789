"""Print the README's performance tables from a results file of benchmarks/run.py.

    python benchmarks/table.py benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import statistics
import sys


def _dialect(r: dict) -> str:
    """The Keras dialect's class call and function over the reference, or – (a loss Keras
    does not have, or an older file)."""
    d = r.get("keras_dialect")
    if not d:
        return "–"
    return f"{d['class']['ratio_to_catalogue']:.2f}× / {d['function']['ratio_to_catalogue']:.2f}×"


def table(results: dict) -> str:
    big = max(r["elements"] for r in results["reference"])
    rows = sorted((r for r in results["reference"] if r["elements"] == big and len(r["shape"]) == 2),
                  key=lambda r: r["loss"])
    out = ["| loss | lossref | torch | jax (jit) | keras (numpy) | lossref / fastest | NumPy float64 textbook "
           "| peak extra memory | lossref.keras class / function ÷ lossref |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def peer(prefix):
            return next((f"{v['median_s'] * 1e3:.0f}" for k, v in r["peers"].items() if k.startswith(prefix)), "–")
        floor = r.get("numpy_float64_textbook")
        floor = f"{floor['median_s'] * 1e3:.0f}" if floor else "–"
        out.append(f"| {r['loss']} | {r['lossref']['median_s'] * 1e3:.0f} | {peer('torch')} | {peer('jax')} | "
                   f"{peer('keras')} | {r['ratio_to_fastest_peer']:.1f}× | {floor} | {r['peak_extra_ratio']:.2f}× "
                   f"| {_dialect(r)} |")
    g = statistics.geometric_mean([r["ratio_to_fastest_peer"] for r in rows])
    out.append("")
    out.append(f"Geometric mean of the ratios at {big} elements: {g:.1f}×.")
    others = sorted(results.get("dialect", []), key=lambda r: r["loss"])
    if others:
        out += ["", "| loss | shape | lossref | lossref.keras class / function ÷ lossref | peak extra memory: "
                "lossref / class |", "|---|---|---|---|---|"]
        for r in others:
            d = r["keras_dialect"]
            out.append(f"| {r['loss']} | {tuple(r['shape'])} | {d['catalogue']['median_s'] * 1e3:.0f} | "
                       f"{_dialect(r)} | {d['catalogue']['peak_extra_ratio']:.2f}× / "
                       f"{d['class']['peak_extra_ratio']:.2f}× |")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json") as f:
        print(table(json.load(f)))
