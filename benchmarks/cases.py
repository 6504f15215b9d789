"""What the benchmark scripts share: the timer, the peak-memory probe and the inputs."""

from __future__ import annotations

import json
import statistics
import time
import tracemalloc
from typing import Callable, Tuple

import numpy as np

#: the categorical family, whose inputs are probabilities and labels
CATEGORICAL = ("categorical_crossentropy", "categorical_focal_crossentropy", "sparse_categorical_crossentropy")
#: losses whose y_true are class indices with y_pred's shape minus its last axis
SPARSE = ("sparse_categorical_crossentropy", "categorical_generalized_cross_entropy")


def timed(fn: Callable[[], object], repeat: int) -> dict:
    """Median, min and max seconds of `repeat` calls of `fn` after one warm-up call."""
    fn()  # warm-up (JIT compilation, caches)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return summary(ts)


def interleaved(calls: dict, repeat: int) -> dict:
    """The timing record of each call, the calls run in turn `repeat` times after one
    warm-up each (so drifts in the machine's speed fall on all of them alike)."""
    ts = {k: [] for k in calls}
    for f in calls.values():  # warm-up (and compilation, for JAX)
        f()
    for _ in range(repeat):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t0)
    return {k: summary(v) for k, v in ts.items()}


def geomean_and_worst(ratios: dict) -> dict:
    """``{"geomean_ratio", "worst", "worst_ratio"}`` of ratios by name."""
    worst = max(ratios, key=ratios.get)
    return {"geomean_ratio": statistics.geometric_mean(ratios.values()), "worst": worst,
            "worst_ratio": ratios[worst]}


def print_ratios(label: str, peer: str, s: dict) -> None:
    """One line per group of a summary of :func:`geomean_and_worst` records; `label` and
    `peer` are format strings of the group's key."""
    for key, v in s.items():
        print(f"{label.format(key)}: geometric-mean {v['geomean_ratio']:.2f}x {peer.format(key)}, "
              f"worst {v['worst']} {v['worst_ratio']:.2f}x")


def write_rows(path: str | None, rows: list, s: dict) -> None:
    """The rows and their summary as JSON at `path` (nothing when it is None)."""
    if path:
        with open(path, "w") as f:
            json.dump({"rows": rows, "summary": s}, f, indent=1)


def summary(ts: list) -> dict:
    """The timing record of a list of seconds."""
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "runs": len(ts)}


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated during one call of `fn` (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def inputs_for(loss: str, shape: tuple, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """float32 (y_true, y_pred) of `shape` in the loss's natural domain.

    Sparse losses get float class indices of ``shape[:-1]``; ``circle`` integer labels
    ``shape[:1]`` and unit embeddings; ``ctc`` labels ``(shape[0], 20)`` for logits of `shape`.
    """
    u = lambda: rng.random(shape, dtype=np.float32)  # noqa: E731
    if loss in ("binary_crossentropy", "binary_focal_crossentropy"):
        return (u() > 0.5).astype(np.float32), np.clip(u(), 1e-6, 1 - 1e-6)
    if loss in ("kl_divergence", "poisson"):
        return u(), u() + np.float32(1e-3)
    if loss == "generalized_kl_divergence":  # targets > 0, log-predictions
        return u() + np.float32(1e-3), np.log(u() + np.float32(1e-3))
    if loss == "poly1_crossentropy":  # one-hot labels, logits
        return np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])], \
            rng.standard_normal(shape, dtype=np.float32)
    if loss in ("hinge", "squared_hinge", "soft_margin", "hinge_embedding", "margin_ranking"):
        return np.where(u() > 0.5, 1, -1).astype(np.float32), rng.standard_normal(shape, dtype=np.float32)
    if loss in ("dice", "tversky"):
        return (u() > 0.5).astype(np.float32), u()
    if loss in CATEGORICAL + SPARSE:
        p = u() + np.float32(1e-3)
        p /= p.sum(-1, keepdims=True)
        labels = rng.integers(0, shape[-1], shape[:-1])
        if loss in SPARSE:
            return labels.astype(np.float32), p
        return np.eye(shape[-1], dtype=np.float32)[labels], p
    if loss == "circle":
        e = rng.standard_normal(shape, dtype=np.float32)
        return rng.integers(0, 64, shape[:1]), e / np.linalg.norm(e, axis=-1, keepdims=True)
    if loss == "ctc":
        labels = rng.integers(1, shape[-1], (shape[0], 20))
        labels[:, 15:] *= rng.random((shape[0], 5)) < 0.5  # some padding
        labels[:, 15:] = np.where(np.cumprod(labels[:, 15:] != 0, axis=1) > 0, labels[:, 15:], 0)
        return labels, rng.standard_normal(shape, dtype=np.float32)
    y = rng.standard_normal(shape, dtype=np.float32)
    return y, y + rng.standard_normal(shape, dtype=np.float32)
