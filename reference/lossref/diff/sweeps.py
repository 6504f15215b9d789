"""One-dimensional sweeps: where along an input axis a framework's error grows.

A sweep is an ordinary case whose per-sample values are one elementwise value each: the
input ``x`` runs along a grid (log-spaced, both signs where the loss allows) in one
column, the other input is fixed. The plot shows the framework's ulp error against x.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import formats
from ..vectors.manifest import write_atomic

# which input moves and what the fixed partner is, by the kind of input the loss takes
_REGRESSION = {"mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
               "mean_squared_logarithmic_error", "huber", "log_cosh", "hinge", "squared_hinge",
               "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"}  # keras, then torch names
_PROBABILITY = {"binary_crossentropy", "binary_focal_crossentropy", "kl_divergence", "poisson",
                "binary_cross_entropy"}
# torch functions of a logit or a log-rate: x over both signs, the target 1
_LOGIT = {"binary_cross_entropy_with_logits", "soft_margin_loss", "multilabel_soft_margin_loss"}
_LOG_RATE = {"poisson_nll_loss"}


def sweep_inputs(loss: str, dtype: str, n: int = 96) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """(x, y_true, y_pred, label) for a sweep of `loss` in `dtype`, or None if it has none.

    y_true and y_pred have shape (n, 1) and hold values of `dtype`.
    """
    f = formats.get_format(dtype)
    lo = max(np.log10(f.tiny) + 1, -30)
    if loss in _REGRESSION:
        x = np.logspace(lo, min(np.log10(f.max) - 1, 4), n)
        x = formats.round_array(x, f)
        t = np.zeros_like(x) if loss not in ("hinge", "squared_hinge") else np.ones_like(x)
        return x, t.reshape(-1, 1), x.reshape(-1, 1), "y_pred (y_true fixed)"
    if loss in _PROBABILITY:
        x = formats.round_array(np.logspace(lo, 0, n), f)
        x = np.unique(x)
        t = np.ones_like(x)
        return x, t.reshape(-1, 1), x.reshape(-1, 1), "y_pred probability (y_true = 1)"
    if loss in _LOGIT | _LOG_RATE:
        # a log-rate stops short of exp's overflow; a logit runs to where softplus is linear
        top = np.log10(np.log(f.max)) - 0.05 if loss in _LOG_RATE else min(np.log10(f.max) - 1, 4)
        x = np.logspace(lo, top, n // 2)
        x = np.unique(formats.round_array(np.concatenate([-x, x]), f))
        what = "input log-rate" if loss in _LOG_RATE else "input logit"
        return x, np.ones_like(x).reshape(-1, 1), x.reshape(-1, 1), f"{what} (target = 1)"
    if loss == "kl_div":  # the target moves; the input is the log-probability log(1/2)
        x = np.unique(formats.round_array(np.logspace(lo, 0, n), f))
        q = np.full_like(x, float(formats.round_array(np.log(0.5), f)))
        return x, x.reshape(-1, 1), q.reshape(-1, 1), "target probability (input = log 1/2)"
    return None


def plot_sweep(x: np.ndarray, ulps: np.ndarray, title: str, xlabel: str, path: str) -> bool:
    """Write a PNG of ulp error against x; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    u = np.asarray(ulps, dtype=np.float64)
    finite = np.isfinite(u)
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.plot(x[finite], np.maximum(u[finite], 1e-3), ".-", lw=0.8, ms=3)
    if (~finite).any():
        ax.plot(x[~finite], np.full((~finite).sum(), max(1.0, np.nanmax(u[finite]) if finite.any() else 1.0)),
                "rx", label="special-value mismatch")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error (ulp of exact)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(Path(path), buf.getvalue())  # an interrupted run leaves no half a PNG
    return True


def sweep_ulps(case: Dict[str, Any], result: Dict[str, Any]) -> List[float]:
    """Per-element ulp errors of a sweep case's per-sample output (torch: 'none')."""
    from . import compare

    fmt = formats.get_format(case["dtype"])
    if "per_sample" in case["expected"]:
        exp, got = case["expected"]["per_sample"], result.get("per_sample") or {}
    else:
        exp, got = case["expected"]["reductions"]["none"], (result.get("reductions") or {}).get("none") or {}
    if "error" in result or "error" in got or list(got.get("shape", [])) != list(exp["shape"]):
        return [float("inf")] * len(exp["hex"])
    got = compare.decode_hex(got["hex"])
    return [formats.ulp_error(float(c), compare.exact_from_decimal(d), fmt)
            for c, d in zip(got, exp["decimal"])]
