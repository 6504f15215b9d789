"""Argument domains: where each loss's golden cases are drawn from.

Two tables decide a loss's cases, both keyed by canonical loss name:

* :data:`KIND_OF_LOSS` names the *input kind* (what ``y_true`` and ``y_pred`` mean:
  real values, labels and probabilities, logits, integer labels, embeddings, ...). Each
  kind has a generator below that draws typical values and, for adversarial cases, the
  values where losses of that kind break (after scipy's ``_mptestutils.Arg`` idea: dense
  near the edges of the domain, not uniform over it).
* :data:`PARAM_VALUES` lists, per parameter, the values that change the math; the first
  value of a parameter is always its Keras default.

A loss that is in neither table still gets cases: its kind is guessed from its Keras
signature (:func:`kind_of`) and each unknown parameter keeps its default. Every value a
generator returns is exactly representable in the case's format (rounded with
:func:`lossref.formats.round_array`), and every random draw comes from
:class:`~lossref.vectors._rng.Stream`, so the inputs are a function of the case key only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import formats
from ..formats import Format
from ._rng import Stream

__all__ = ["KIND_OF_LOSS", "PARAM_VALUES", "KINDS", "kind_of", "param_values", "Draw",
           "draw_shapes", "draw_inputs", "special_values", "inject_specials", "draw_sample_weight",
           "label_kinds", "draw_array"]

#: Input kind of every Keras loss (canonical names). Losses not listed are guessed.
KIND_OF_LOSS: Dict[str, str] = {
    "mean_squared_error": "real",
    "mean_absolute_error": "real",
    "mean_absolute_percentage_error": "real",
    "mean_squared_logarithmic_error": "real",
    "huber": "real",
    "log_cosh": "real",
    "cosine_similarity": "similarity",
    "hinge": "hinge",
    "squared_hinge": "hinge",
    "categorical_hinge": "scores",
    "kl_divergence": "distribution",
    "poisson": "counts",
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "categorical_crossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse",
    "categorical_generalized_cross_entropy": "sparse",
    "dice": "segmentation",
    "tversky": "segmentation",
    "circle": "circle",
    "ctc": "ctc",
}

#: Values of each parameter that change the math, per loss (``"loss.param"``) or for every
#: loss (``"param"``). The Keras default is put first automatically.
PARAM_VALUES: Dict[str, Tuple[Any, ...]] = {
    "from_logits": (False, True),
    "label_smoothing": (0.0, 0.1, 0.5, 1.0),
    "delta": (1.0, 0.5, 0.001, 20.0),
    "apply_class_balancing": (False, True),
    "alpha": (0.25, 0.5, 0.9),
    "gamma": (2.0, 0.0, 0.5, 5.0),
    "ignore_class": (None, -1, 0),
    "remove_diagonal": (True, False),
    "margin": (0.4, 0.25, 0.0),
    "q": (0.5, 0.1, 0.9),
    "beta": (0.5, 0.7, 0.3),
    "tversky.alpha": (0.5, 0.3, 0.7),
    "circle.gamma": (80.0, 1.0, 256.0),
    "binary_crossentropy.axis": (-1, 1),
    "binary_focal_crossentropy.axis": (-1, 1),
    "categorical_crossentropy.axis": (-1, 1),
    "categorical_focal_crossentropy.axis": (-1, 1),
    "cosine_similarity.axis": (-1, 1),
    "dice.axis": (None, -1, (1, 2)),
    "tversky.axis": (None, -1, (1, 2)),
}

#: Kinds whose ``y_true`` holds integer labels (never overwritten by special values).
_LABEL_KINDS = ("sparse", "circle", "ctc", "class-logits", "class-log-probs", "margin-index",
                "label-lists", "ctc-log-probs", "index-logits", "ntxent", "ctc-paddings", "ctc-tf")


def label_kinds() -> Tuple[str, ...]:
    """Kinds whose ``y_true`` holds integer labels."""
    return _LABEL_KINDS


def kind_of(loss: str, param_names: Sequence[str]) -> str:
    """The input kind of `loss`: from :data:`KIND_OF_LOSS`, else guessed from its name and
    parameters (a loss with ``from_logits`` is a cross-entropy; ``sparse`` in the name
    means integer labels)."""
    if loss in KIND_OF_LOSS:
        return KIND_OF_LOSS[loss]
    if "from_logits" in param_names:
        if "sparse" in loss:
            return "sparse"
        return "binary" if "binary" in loss else "categorical"
    return "real"


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def param_values(loss: str, name: str, default: Any) -> Tuple[Any, ...]:
    """Values of parameter `name` of `loss` to draw from, the default first."""
    table = PARAM_VALUES.get(f"{loss}.{name}", PARAM_VALUES.get(name, ()))
    out = [default]
    for v in table:
        if not any(_same(v, w) for w in out):
            out.append(v)
    return tuple(out)


# --- drawing values --------------------------------------------------------------------------------


@dataclass
class Draw:
    """What a kind generator needs: the stream, the format, the case's category and params."""

    rng: Stream
    fmt: Format
    category: str
    params: Mapping[str, Any]
    tags: List[str] = field(default_factory=list)
    #: arrays a kind draws with its inputs because they must fit them (ctc_loss's lengths),
    #: by name; :func:`draw_array` hands them out for the rule ``kind``
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)

    def r(self, x) -> np.ndarray:
        """`x` rounded into the format (float64 values exact in it)."""
        return formats.round_array(np.asarray(x, dtype=np.float64), self.fmt)

    def exp_range(self, lo: int, hi: int) -> Tuple[int, int]:
        """[lo, hi] clipped to the exponents the format can hold (subnormals included)."""
        f = self.fmt
        return max(lo, f.emin - f.precision + 1), min(hi, f.emax - 1)

    def wide(self, n: int, lo: int = -1074, hi: int = 100) -> np.ndarray:
        """Signed values whose binade is uniform from `lo` to `hi` (clipped to the format)."""
        a, b = self.exp_range(lo, hi)
        return self.rng.signs(n) * self.rng.log_uniform(n, a, b)

    def uniform(self, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        return lo + (hi - lo) * self.rng.uniform(n)

    def tag(self, *tags: str) -> None:
        for t in tags:
            if t not in self.tags:
                self.tags.append(t)

    def pick(self, n: int, options: Sequence[np.ndarray]) -> np.ndarray:
        """Elementwise choice: element i from ``options[k_i]``, k_i uniform."""
        k = self.rng.integers(n, 0, len(options))
        return np.choose(k, np.stack([np.broadcast_to(o, (n,)) for o in options]))

    def tiny_probs(self, n: int) -> np.ndarray:
        """Probabilities from 1e-30 (2**-100) to 1/2, every binade alike."""
        return self.rng.log_uniform(n, -100, -2)

    def near_one(self, n: int) -> np.ndarray:
        """``1 - d`` with d from half an ulp of 1 to 1/2 (exactly 1 after rounding sometimes)."""
        return 1.0 - self.rng.log_uniform(n, -self.fmt.precision - 1, -2)

    def clip_edge(self, n: int) -> np.ndarray:
        """Values within a few ulps of Keras's clip bounds 1e-7 and 1 - 1e-7."""
        k = self.rng.integers(n, -2, 3).astype(np.float64)
        rel = 1.0 + k * 2.0 ** (1 - self.fmt.precision)
        lo = self.r(1e-7) * rel
        hi = 1.0 - self.r(1e-7) * rel
        return np.where(self.rng.signs(n) > 0, lo, hi)


def _labels01(d: Draw, n: int) -> np.ndarray:
    return (d.rng.raw(n) & np.uint64(1)).astype(np.float64)


def _probabilities(d: Draw, n: int) -> np.ndarray:
    """Probabilities: typical ones, or (adversarial) dense at 0, 1 and the clip bounds."""
    if d.category != "adversarial":
        return d.uniform(n)
    d.tag("extreme-probability")
    zero, one = np.zeros(n), np.ones(n)
    return d.pick(n, [d.tiny_probs(n), d.near_one(n), zero, one, d.clip_edge(n), d.uniform(n)])


def _logits(d: Draw, n: int) -> np.ndarray:
    """Logits: typical ones, or (adversarial) ±(1e-30 … 1e4), every binade alike."""
    if d.category != "adversarial":
        return d.uniform(n, -6.0, 6.0)
    d.tag("extreme-logit")
    return d.rng.signs(n) * d.rng.log_uniform(n, *d.exp_range(-100, 13))


def _binary_labels(d: Draw, n: int) -> np.ndarray:
    """Labels exactly 0/1, soft, or a mix."""
    mode = d.rng.choice(("hard", "hard", "soft", "mixed"))
    if mode == "hard":
        return _labels01(d, n)
    d.tag("soft-labels")
    soft = d.uniform(n)
    return soft if mode == "soft" else np.where(d.rng.signs(n) > 0, _labels01(d, n), soft)


# --- kinds -------------------------------------------------------------------------------------------
# Each takes (draw, y_shape, p_shape) and returns (y_true, y_pred) as float64 arrays.


def _real(d: Draw, shape, _ps):
    n = int(np.prod(shape))
    if d.category != "adversarial":
        t = d.uniform(n, -4.0, 4.0)
        return t, t + d.uniform(n, -2.0, 2.0)
    recipes = ["wide-range", "cancellation", "near-overflow", "equal", "near-zero-target",
               "around-minus-one"]
    if "delta" in d.params:
        recipes.append("at-threshold")
    how = d.rng.choice(recipes)
    d.tag(how)
    f = d.fmt
    if how == "wide-range":  # subnormal to 1e30 (clipped to the format)
        return d.wide(n), d.wide(n)
    if how == "cancellation":  # p = t + k ulp(t), k in -3..3: y - p cancels
        t = d.r(d.wide(n, -20, 20))
        _, e = np.frexp(np.where(t == 0, 1.0, t))
        ulp = np.ldexp(1.0, (np.maximum(e - 1, f.emin) - f.precision + 1).astype(np.int32))
        return t, t + d.rng.integers(n, -3, 4) * ulp
    if how == "near-overflow":  # squares and differences overflow the format
        big = d.rng.signs(n) * d.rng.log_uniform(n, f.emax - 3, f.emax - 1)
        return big, -big * d.uniform(n, 0.25, 1.0)
    if how == "equal":  # zero residuals, signed zeros
        t = d.r(d.wide(n, -30, 30))
        t = np.where(d.rng.integers(n, 0, 4) == 0, -0.0, t)
        return t, t.copy()
    if how == "near-zero-target":  # |y| at or below Keras's epsilon (MAPE's floor)
        t = d.pick(n, [np.zeros(n), -np.zeros(n), d.r(1e-7) * (1 + d.uniform(n, -0.01, 0.01)),
                       d.wide(n, -40, -20)])
        return t, d.uniform(n, -2.0, 2.0)
    if how == "around-minus-one":  # log(x + 1) near its pole, and near the eps clamp
        near = -1.0 + d.rng.log_uniform(n, -f.precision - 1, -2)
        return (d.pick(n, [near, d.wide(n, -30, -20), d.uniform(n, -1.0, 1.0)]),
                d.pick(n, [near, d.r(1e-7) * (1 + d.uniform(n, -0.01, 0.01)), d.uniform(n, -1.0, 1.0)]))
    # at-threshold: |p - y| = delta exactly and one ulp either side (Huber's branch point)
    delta = d.r(d.params["delta"])
    k = d.rng.integers(n, -1, 2).astype(np.float64)
    e = d.rng.signs(n) * d.r(delta * (1 + k * 2.0 ** (1 - f.precision)))
    return np.zeros(n), e


def _binary(d: Draw, shape, _ps):
    n = int(np.prod(shape))
    t = _binary_labels(d, n)
    p = _logits(d, n) if d.params.get("from_logits") else _probabilities(d, n)
    return t, p


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Sums over the last axis (keepdims), correctly rounded by ``math.fsum``: NumPy's
    summation order depends on its version and the CPU's vector width, and the inputs
    must not."""
    x = np.asarray(x, dtype=np.float64)
    rows = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    return np.array([math.fsum(r) for r in rows]).reshape(x.shape[:-1] + (1,))


def _rows(x: np.ndarray, shape) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(shape)


def _one_hot(d: Draw, shape) -> np.ndarray:
    c = shape[-1]
    rows = int(np.prod(shape[:-1]))
    out = np.zeros((rows, c))
    if c:
        out[np.arange(rows), d.rng.integers(rows, 0, c)] = 1.0
    return out.reshape(shape)


def _distribution_rows(d: Draw, shape, extreme: bool) -> np.ndarray:
    """Rows that sum to about 1 (rounded), or (extreme) one class near 1 and the rest tiny."""
    n = int(np.prod(shape))
    c = shape[-1] if shape else 1
    if n == 0:
        return np.zeros(shape)
    if not extreme:
        w = _rows(d.uniform(n) + 2.0 ** -10, shape)
        return w / _row_sums(w)
    small = _rows(d.pick(n, [d.tiny_probs(n) * 2.0 ** -8, np.zeros(n)]), shape)
    hot = _one_hot(d, shape).astype(bool)
    rest = _row_sums(np.where(hot, 0.0, small))
    return np.where(hot, 1.0 - rest, small) if c > 1 else np.ones(shape)


def _class_probabilities(d: Draw, shape) -> np.ndarray:
    n = int(np.prod(shape))
    if d.params.get("from_logits"):
        return _rows(_logits(d, n), shape)
    if d.category != "adversarial":
        return _distribution_rows(d, shape, False)
    how = d.rng.choice(("one-near-one", "zeros", "unnormalised", "extreme-probability"))
    d.tag(how)
    if how == "one-near-one":
        return _distribution_rows(d, shape, True)
    if how == "zeros":  # exact zero probabilities, the true class among them sometimes
        p = _distribution_rows(d, shape, False)
        return np.where(_rows(d.rng.integers(n, 0, 3), shape) == 0, 0.0, p)
    if how == "unnormalised":  # Keras renormalises probabilities; scale rows by 2**k
        rows = int(np.prod(shape[:-1]))
        scale = np.ldexp(1.0, d.rng.integers(max(rows, 1), -20, 21).astype(np.int32))[:rows]
        return _distribution_rows(d, shape, False) * scale.reshape(shape[:-1] + (1,))
    return _rows(_probabilities(d, n), shape)


def _categorical_labels(d: Draw, shape) -> np.ndarray:
    mode = d.rng.choice(("one-hot", "one-hot", "soft", "zero-row"))
    if mode == "one-hot" or not shape or shape[-1] == 0:
        return _one_hot(d, shape)
    d.tag(f"{mode}-labels")
    if mode == "soft":
        return _distribution_rows(d, shape, False)
    y = _one_hot(d, shape)
    y[..., :] *= _rows(d.rng.integers(int(np.prod(shape[:-1])), 0, 2), shape[:-1] + (1,))
    return y


def _categorical(d: Draw, shape, _ps):
    return _categorical_labels(d, shape), _class_probabilities(d, shape)


def _distribution(d: Draw, shape, _ps):
    """KL divergence: both sides probability rows (with zeros and extremes when adversarial)."""
    y = _categorical_labels(d, shape) if d.rng.chance(0.3) else \
        _distribution_rows(d, shape, d.category == "adversarial" and d.rng.chance(0.5))
    return y, _class_probabilities(d, shape)


def _sparse(d: Draw, y_shape, p_shape):
    c = p_shape[-1]
    n = int(np.prod(y_shape))
    y = d.rng.integers(n, 0, max(c, 1)).astype(np.float64)
    ignore = d.params.get("ignore_class")
    if ignore is not None and n:
        if d.category == "adversarial" and d.rng.chance(0.3):
            d.tag("all-masked")
            y[:] = ignore
        else:
            d.tag("masked")
            y = np.where(d.rng.integers(n, 0, 3) == 0, float(ignore), y)
    return y.reshape(y_shape), _class_probabilities(d, p_shape)


def _hinge(d: Draw, shape, _ps):
    n = int(np.prod(shape))
    mode = d.rng.choice(("pm1", "01", "mixed"))
    d.tag({"pm1": "labels-pm1", "01": "labels-01", "mixed": "labels-mixed"}[mode])
    if mode == "pm1":
        y = d.rng.signs(n)
    elif mode == "01":
        y = _labels01(d, n)
    else:  # one -1 among 0/1 switches off Keras's batch-global 0/1 -> -1/1 conversion
        y = _labels01(d, n)
        y[: min(1, n)] = -1.0
    if d.category != "adversarial":
        return y, d.uniform(n, -3.0, 3.0)
    d.tag("margin-edge")
    k = d.rng.integers(n, -2, 3).astype(np.float64)
    at_margin = d.rng.signs(n) * (1.0 + k * 2.0 ** (1 - d.fmt.precision))
    return y, d.pick(n, [at_margin, d.wide(n, -100, 100), np.zeros(n)])


def _scores(d: Draw, shape, _ps):
    """Categorical hinge: one-hot labels, real scores (ties and extremes when adversarial)."""
    n = int(np.prod(shape))
    y = _categorical_labels(d, shape)
    if d.category != "adversarial":
        return y, _rows(d.uniform(n, -3.0, 3.0), shape)
    how = d.rng.choice(("ties", "wide-range"))
    d.tag(how)
    if how == "ties":
        return y, _rows(d.rng.integers(n, -1, 2).astype(np.float64), shape)
    return y, _rows(d.wide(n, -100, 100), shape)


def _segmentation(d: Draw, shape, _ps):
    n = int(np.prod(shape))
    y = _binary_labels(d, n)
    if d.category != "adversarial":
        return y, d.uniform(n)
    how = d.rng.choice(("empty-masks", "perfect", "extreme-probability"))
    d.tag(how)
    if how == "empty-masks":  # sums 0: the loss is 1 - 0/eps
        return np.zeros(n), d.pick(n, [np.zeros(n), d.tiny_probs(n)])
    if how == "perfect":
        y = _labels01(d, n)
        return y, y.copy()
    return y, _probabilities(d, n)


def _similarity(d: Draw, shape, _ps):
    n = int(np.prod(shape))
    if d.category != "adversarial":
        return d.uniform(n, -2.0, 2.0), d.uniform(n, -2.0, 2.0)
    how = d.rng.choice(("parallel", "zero-vector", "huge-norm", "tiny-norm", "wide-range"))
    d.tag(how)
    f = d.fmt
    if how == "parallel":  # p = c y: similarity exactly ±1 in exact arithmetic
        t = d.uniform(n, -2.0, 2.0)
        c = d.rng.choice((1.0, -1.0, 2.0 ** 20, 2.0 ** -20, 3.0))
        return t, t * c
    if how == "zero-vector":
        return np.zeros(n), d.uniform(n, -2.0, 2.0)
    if how == "huge-norm":  # the sum of squares overflows the format
        return (d.rng.signs(n) * d.rng.log_uniform(n, f.emax - 2, f.emax - 1),
                d.rng.signs(n) * d.rng.log_uniform(n, f.emax - 2, f.emax - 1))
    if how == "tiny-norm":  # squares underflow (subnormal inputs)
        lo = f.emin - f.precision + 1
        return d.rng.signs(n) * d.rng.log_uniform(n, lo, f.emin), d.uniform(n, -2.0, 2.0)
    return d.wide(n), d.wide(n)


def _counts(d: Draw, shape, _ps):
    """Poisson: counts (or soft counts) and positive rates."""
    n = int(np.prod(shape))
    y = d.rng.integers(n, 0, 8).astype(np.float64) if d.rng.chance(0.7) else d.uniform(n, 0, 8)
    if d.category != "adversarial":
        return y, d.uniform(n, 2.0 ** -6, 8.0)
    how = d.rng.choice(("tiny-rate", "zero-rate", "wide-range"))
    d.tag(how)
    if how == "tiny-rate":  # p far below eps: log(p + eps)
        return y, d.rng.log_uniform(n, *d.exp_range(-140, -20))
    if how == "zero-rate":
        return y, np.where(d.rng.integers(n, 0, 2) == 0, 0.0, d.uniform(n, 0, 4))
    return np.abs(d.wide(n, -30, 30)), np.abs(d.wide(n, -100, 100))


def _circle(d: Draw, y_shape, p_shape):
    b, dim = p_shape
    how = "random" if d.category != "adversarial" else d.rng.choice(
        ("duplicates", "one-label", "distinct-labels", "antipodal"))
    if how != "random":
        d.tag(how)
    k = {"one-label": 1, "distinct-labels": max(b, 1)}.get(how, max(1, min(3, b)))
    y = d.rng.integers(b, 0, k).astype(np.float64) if b else np.zeros(0)
    if how == "distinct-labels":
        y = d.rng.permutation(b).astype(np.float64)
    e = _rows(d.uniform(b * dim, -1.0, 1.0), (b, dim)) + 2.0 ** -20
    if how == "duplicates" and b > 1:
        e[1::2] = e[0::2][: e[1::2].shape[0]]
    if how == "antipodal" and b > 1:
        e[1::2] = -e[0::2][: e[1::2].shape[0]]
    e = e / np.sqrt(_row_sums(e * e))  # unit rows, then rounded
    return y, e


def _ctc(d: Draw, y_shape, p_shape):
    b, length = y_shape
    _, t_len, c = p_shape
    y = np.zeros((b, length))
    impossible = "too-short" in d.tags
    for i in range(b):  # labels 1..C-1 then trailing padding 0
        n = length if impossible else (d.rng.integer(0, length + 1) if length else 0)
        y[i, :n] = d.rng.integers(n, 1, c) if n else []
    if d.category == "adversarial" and d.rng.chance(0.5) and length:
        d.tag("repeated-labels")
        y[:, :] = np.where(y > 0, 1.0, 0.0)  # runs of one label need blanks between them
    n = b * t_len * c
    z = d.uniform(n, -4.0, 4.0) if d.category != "adversarial" else \
        d.rng.signs(n) * d.rng.log_uniform(n, *d.exp_range(-30, 13))
    return y, _rows(z, p_shape)


# --- torch kinds (y_true is torch's target, y_pred its input) ----------------------------------------


def _binary_logits(d: Draw, shape, _ps):
    """binary_cross_entropy_with_logits: labels 0/1 or soft, logits."""
    n = int(np.prod(shape))
    return _binary_labels(d, n), _logits(d, n)


def _mp_log(x: np.ndarray) -> np.ndarray:
    """Natural log of each value, correctly rounded to float64 by mpmath (NumPy's and
    libm's log may differ by an ulp between machines; the inputs must not)."""
    import mpmath
    flat = np.asarray(x, dtype=np.float64).ravel()
    with mpmath.workprec(53):
        out = [float(mpmath.log(v)) if v > 0 else (-math.inf if v == 0 else math.nan) for v in flat]
    return np.array(out, dtype=np.float64).reshape(np.shape(x))


def _log_distribution(d: Draw, shape, ps):
    """kl_div: input log-probabilities (rows of a distribution, logged); target
    probabilities, or log-probabilities with ``log_target``."""
    y, p = _distribution(d, shape, ps)
    logp = _mp_log(p)
    if d.category == "adversarial" and d.rng.chance(0.3):
        d.tag("wide-log-input")
        logp = -np.abs(d.wide(int(np.prod(shape)), -30, 12)).reshape(np.shape(p))
    if d.params.get("log_target"):
        y = _mp_log(y)
    return y, logp


def _poisson_nll(d: Draw, shape, ps):
    """poisson_nll_loss: counts, and log-rates (``log_input``) or rates."""
    y, rate = _counts(d, shape, ps)
    if not d.params.get("log_input", True):
        return y, rate
    n = int(np.prod(shape))
    if d.category != "adversarial":
        return y, d.uniform(n, -4.0, 3.0)
    d.tag("wide-log-rate")
    return y, d.rng.signs(n) * d.rng.log_uniform(n, *d.exp_range(-30, 7))


def _index_targets(d: Draw, y_shape, c: int, ignored: bool = True) -> np.ndarray:
    """Class indices in [0, C); for torch (`ignored`) some (adversarial: sometimes all) set
    to the ``ignore_index`` parameter (torch's default -100 too): an all-ignored batch
    makes ``'mean'`` 0/0, NaN."""
    n = int(np.prod(y_shape))
    y = d.rng.integers(n, 0, max(c, 1)).astype(np.float64)
    ignore = d.params.get("ignore_index", -100)
    if ignored and n and d.rng.chance(0.4 if d.category != "adversarial" else 0.6):
        if d.category == "adversarial" and d.rng.chance(0.3):
            d.tag("all-ignored")
            y[:] = ignore
        else:
            d.tag("ignored")
            y = np.where(d.rng.integers(n, 0, 3) == 0, float(ignore), y)
    return y.reshape(y_shape)


def _class_logits(d: Draw, y_shape, p_shape, ignored: bool = True):
    """cross_entropy: class indices (with ignored ones, where `ignored`) or, for a target of
    the input's shape, class probabilities; logits (adversarial: large, -inf, ties, wide
    range)."""
    n = int(np.prod(p_shape))
    if tuple(y_shape) == tuple(p_shape):
        y = _one_hot(d, p_shape) if d.rng.chance(0.25) else _distribution_rows(
            d, p_shape, d.category == "adversarial" and d.rng.chance(0.5))
    else:
        y = _index_targets(d, y_shape, p_shape[-1], ignored)
    if d.category != "adversarial":
        return y, d.uniform(n, -6.0, 6.0)
    probabilities = tuple(y_shape) == tuple(p_shape)
    # -inf logits only with class indices: a class of probability 0 and logit -inf is
    # 0·inf in torch's product (NaN), where the oracle's definition has 0
    how = d.rng.choice(("large-logits", "ties", "wide-range") if probabilities else
                       ("large-logits", "neg-inf-logits", "ties", "wide-range"))
    d.tag(how)
    if how == "large-logits":  # exp overflows: only a shifted log-sum-exp survives
        return y, d.rng.signs(n) * d.rng.log_uniform(n, *d.exp_range(4, 40))
    if how == "neg-inf-logits":  # probability 0: finite elsewhere, +inf at the target class
        return y, np.where(d.rng.integers(n, 0, 4) == 0, -np.inf, d.uniform(n, -6.0, 6.0))
    if how == "ties":
        return y, d.rng.integers(n, -1, 2).astype(np.float64)
    return y, d.wide(n, -100, 100)


def _class_log_probs(d: Draw, y_shape, p_shape):
    """nll_loss: class indices (with ignored ones) and log-probabilities (the log, rounded
    by mpmath, of distribution rows; adversarial: zeros (-inf), one class near 1, wide
    negative values, or any reals, which nll_loss takes as they are)."""
    n = int(np.prod(p_shape))
    y = _index_targets(d, y_shape, p_shape[-1])
    if d.category != "adversarial":
        return y, _mp_log(_distribution_rows(d, p_shape, False))
    how = d.rng.choice(("one-near-one", "zero-probability", "wide-log-input", "any-real"))
    d.tag(how)
    if how == "one-near-one":
        return y, _mp_log(_distribution_rows(d, p_shape, True))
    if how == "zero-probability":
        p = _distribution_rows(d, p_shape, False)
        return y, _mp_log(np.where(_rows(d.rng.integers(n, 0, 3), p_shape) == 0, 0.0, p))
    if how == "wide-log-input":
        return y, -np.abs(d.wide(n, -30, 12))
    return y, d.wide(n, -100, 100)


def _ctc_log_probs(d: Draw, y_shape, p_shape):
    """ctc_loss: targets padded (N, S) with labels in [0, C) other than the blank (the padding
    too, never read), log-probabilities (T, N, C) (the log, rounded by mpmath, of a
    distribution per (t, n); adversarial: one class near 1, zero probabilities (-inf), very
    negative entries, or raw scores, which torch takes as they are), and the lengths in
    ``d.arrays``: input_lengths in [1, T], target_lengths in [0, min(S, input length)],
    mostly a label some alignment fits (length + adjacent repeats <= input length), sometimes
    not (tag ``infeasible``; edge ``too-short``: a target longer than its input)."""
    n, s = y_shape
    t_len, _, c = p_shape
    rng = d.rng
    blank = _blank(d)
    too_short = "too-short" in d.tags
    repeated = d.category == "adversarial" and rng.chance(0.4)
    if repeated:
        d.tag("repeated-labels")  # a run of one label needs a blank between each pair
    y, il, tl = np.zeros((n, s)), np.zeros(n), np.zeros(n)
    infeasible = False
    for b in range(n):
        il[b] = t_len if rng.chance(0.5) else rng.integer(1, t_len + 1)
        top = min(s, int(il[b]) + (1 if too_short else 0))
        k = top if too_short or rng.chance(0.3) else rng.integer(0, top + 1)
        if s:
            lab = rng.integers(s, 0, c - 1)
            lab = lab + (lab >= blank)  # skip the blank
            y[b] = lab[0] if repeated else lab
        need = lambda k: k + int(np.sum(y[b, 1:k] == y[b, :k - 1])) if k else 0  # noqa: E731
        if not too_short and need(k) > il[b] and rng.chance(0.7):
            while need(k) > il[b]:  # mostly feasible: shorten the label until it fits
                k -= 1
        tl[b] = k
        infeasible |= need(k) > il[b]
    if infeasible:
        d.tag("infeasible")
    d.arrays.update(input_lengths=il, target_lengths=tl)
    shape = (t_len, n, c)
    num = t_len * n * c
    if d.category != "adversarial":
        return y, _mp_log(_distribution_rows(d, shape, False))
    how = rng.choice(("one-near-one", "zero-probability", "very-negative", "raw-scores"))
    d.tag(how)
    if how == "one-near-one":
        return y, _mp_log(_distribution_rows(d, shape, True))
    if how == "zero-probability":
        p = _distribution_rows(d, shape, False)
        return y, _mp_log(np.where(_rows(rng.integers(num, 0, 3), shape) == 0, 0.0, p))
    if how == "very-negative":  # log-probabilities, a third of them -8 ... -2**60
        lp = _mp_log(_distribution_rows(d, shape, False))
        low = -_rows(rng.log_uniform(num, *d.exp_range(3, 60)), shape)
        return y, np.where(_rows(rng.integers(num, 0, 3), shape) == 0, low, lp)
    return y, _rows(d.uniform(num, -6.0, 6.0), shape)


def _multilabel_logits(d: Draw, shape, _ps):
    """multilabel_soft_margin_loss: 0/1 targets, logits."""
    n = int(np.prod(shape))
    return _labels01(d, n), _logits(d, n)


def _soft_margin(d: Draw, shape, _ps):
    """soft_margin_loss: ±1 targets; inputs typical, or (adversarial) large ``|x|``
    (``exp(-y x)`` overflows), tiny or wide-ranging."""
    n = int(np.prod(shape))
    y = d.rng.signs(n)
    if d.category != "adversarial":
        return y, d.uniform(n, -4.0, 4.0)
    how = d.rng.choice(("large-margin", "near-zero", "wide-range"))
    d.tag(how)
    if how == "large-margin":
        return y, d.rng.signs(n) * d.rng.log_uniform(n, *d.exp_range(3, 40))
    if how == "near-zero":
        return y, d.wide(n, -60, -10)
    return y, d.wide(n, -100, 100)


def _hinge_embedding(d: Draw, shape, _ps):
    """hinge_embedding_loss: ±1 targets, sometimes 0 (torch adds both terms); inputs
    typical, or (adversarial) at the margin within a few ulps, at 0, or wide-ranging."""
    n = int(np.prod(shape))
    y = d.rng.signs(n)
    if d.rng.chance(0.2):
        d.tag("zero-targets")
        y = np.where(d.rng.integers(n, 0, 4) == 0, 0.0, y)
    if d.category != "adversarial":
        return y, d.uniform(n, -3.0, 3.0)
    d.tag("margin-edge")
    m = float(d.r(d.params.get("margin", 1.0)))
    k = d.rng.integers(n, -2, 3).astype(np.float64)
    at_margin = m + k * 2.0 ** (1 - d.fmt.precision) * max(abs(m), 1.0)
    return y, d.pick(n, [at_margin, d.wide(n, -100, 100), np.zeros(n), d.uniform(n, -3.0, 3.0)])


def _margin_scores(d: Draw, n: int, margin: float) -> np.ndarray:
    """Scores for margin losses: typical, or (adversarial) ties, differences of exactly
    the margin and an ulp off it, or wide-ranging."""
    if d.category != "adversarial":
        return d.uniform(n, -3.0, 3.0)
    how = d.rng.choice(("ties", "margin-edge", "wide-range"))
    d.tag(how)
    if how == "ties":
        return d.rng.integers(n, -1, 2).astype(np.float64)
    if how == "margin-edge":
        m = float(d.r(margin))
        u = 2.0 ** (1 - d.fmt.precision) * max(abs(m), 1.0)
        return d.pick(n, [np.zeros(n), np.full(n, m), np.full(n, -m), np.full(n, m + u),
                          np.full(n, m - u / 2)])
    return d.wide(n, -100, 100)


def _margin_index(d: Draw, y_shape, p_shape):
    """multi_margin_loss: one class index per sample, scores (C) or (N, C)."""
    y = d.rng.integers(int(np.prod(y_shape)), 0, max(p_shape[-1], 1)).astype(np.float64)
    return y.reshape(y_shape), _margin_scores(d, int(np.prod(p_shape)), d.params.get("margin", 1.0))


def _label_lists(d: Draw, shape, _ps):
    """multilabel_margin_loss: per row distinct labels, then -1, then anything in [-1, C)
    (ignored); adversarial: every class listed (no -1), an empty list, a label listed
    twice. Lists hold at most 16 labels (the oracle pairs each with every class)."""
    c = shape[-1]
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    y = np.full((rows, c), -1.0)
    how = "random" if d.category != "adversarial" else d.rng.choice(
        ("all-listed", "empty-lists", "duplicate-labels", "random"))
    if how != "random":
        d.tag(how)
    for r in range(rows if c else 0):
        if how == "all-listed":
            k = min(c, 16)
        elif how == "empty-lists":
            k = 0
        else:
            k = d.rng.integer(0, min(c, 16) + 1)
        labels = d.rng.permutation(c)[:k].astype(np.float64)
        if how == "duplicate-labels" and k >= 1 and k < c:
            labels = np.concatenate([labels, labels[:1]])
        y[r, :labels.size] = labels
        tail = labels.size + 1
        if tail < c:  # entries after the first -1 are ignored by torch
            y[r, tail:] = d.rng.integers(c - tail, -1, c).astype(np.float64)
    n = int(np.prod(shape))
    return y.reshape(shape), _margin_scores(d, n, 1.0)


def _signed_labels(d: Draw, n: int) -> np.ndarray:
    """±1 labels; in a fifth of the cases some are 0, outside torch's documented {-1, 1}
    (tag ``zero-targets``)."""
    y = d.rng.signs(n)
    if d.rng.chance(0.2):
        d.tag("zero-targets")
        y = np.where(d.rng.integers(n, 0, 4) == 0, 0.0, y)
    return y


def _ulps_off(d: Draw, v: np.ndarray, k_max: int = 2) -> np.ndarray:
    """`v` moved by -k_max ... k_max units of the format's precision relative to it."""
    k = d.rng.integers(v.size, -k_max, k_max + 1).astype(np.float64)
    return v * (1.0 + k * 2.0 ** (1 - d.fmt.precision))


def _margin_ranking(d: Draw, shape, _ps):
    """margin_ranking_loss: returns ``(input2, input1)``, the ±1 target in ``d.arrays``;
    adversarial: ``x1 - x2`` at the margin within a few ulps (``-y (x1 - x2) + m``
    cancels), ties, wide-ranging values, or differences that overflow the format."""
    n = int(np.prod(shape))
    y = _signed_labels(d, n)
    d.arrays["target"] = y.reshape(shape)
    if d.category != "adversarial":
        x2 = d.uniform(n, -3.0, 3.0)
        return x2, x2 + d.uniform(n, -2.0, 2.0)
    how = d.rng.choice(("margin-edge", "ties", "wide-range", "near-overflow"))
    d.tag(how)
    if how == "margin-edge":  # y (x1 - x2) = m, a few ulps either way
        x2 = d.r(d.wide(n, -10, 10))
        m = float(d.r(d.params.get("margin", 0.0)))
        return x2, x2 + np.where(y == 0, 1.0, y) * _ulps_off(d, np.full(n, m if m else 1.0))
    if how == "ties":
        x2 = d.r(d.wide(n, -30, 30))
        return x2, x2.copy()
    if how == "wide-range":
        return d.wide(n), d.wide(n)
    big = d.rng.signs(n) * d.rng.log_uniform(n, d.fmt.emax - 2, d.fmt.emax - 1)
    return -big * d.uniform(n, 0.5, 1.0), big


def _pair_rows(d: Draw, shape) -> Tuple[np.ndarray, np.ndarray, str]:
    """Two arrays of `shape` (rows are vectors) for the losses of pairs of embeddings:
    typical, or (adversarial) parallel or antiparallel rows (a multiple, rounded), equal
    rows, zero rows, rows whose squares overflow or underflow the format, or wide-ranging
    entries. Returns ``(a, b, recipe)``."""
    n = int(np.prod(shape))
    d_ = shape[-1] if shape else 1
    rows = n // d_ if d_ else 0
    a = d.uniform(n, -3.0, 3.0)
    if d.category != "adversarial":
        return a, d.uniform(n, -3.0, 3.0), "typical"
    how = d.rng.choice(("parallel", "equal", "zero-rows", "huge", "tiny", "wide-range"))
    d.tag(how)
    if how == "parallel":  # b = c a: cos = ±1 up to the rounding of b
        c = np.repeat(d.rng.signs(rows) * d.rng.log_uniform(rows, -8, 8), d_)
        return a, d.r(a * c), how
    if how == "equal":
        a = d.r(a)
        return a, a.copy(), how
    if how == "zero-rows":  # a row of zeros in either (signed zeros too)
        z = np.repeat(d.rng.integers(rows, 0, 3), d_)
        b = d.uniform(n, -3.0, 3.0)
        return np.where(z == 1, -0.0, a), np.where(z == 2, 0.0, b), how
    scale = (d.fmt.emax - 2) if how == "huge" else (d.fmt.emin - d.fmt.precision // 2)
    if how in ("huge", "tiny"):
        return (a * 2.0 ** scale, d.uniform(n, -3.0, 3.0) * 2.0 ** scale, how)
    return d.wide(n), d.wide(n), how


def _cosine_embedding(d: Draw, shape, _ps):
    """cosine_embedding_loss: returns ``(input2, input1)`` of shape ``(N, D)`` or ``(D,)``,
    the target (``(N,)`` or ``()``: ±1, sometimes 0) in ``d.arrays``; rows as
    :func:`_pair_rows` draws them (adversarial: ``1 - cos`` cancels, zero rows, squares
    that overflow or underflow)."""
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    d.arrays["target"] = _signed_labels(d, rows).reshape(shape[:-1])
    a, b, _ = _pair_rows(d, shape)
    return b, a


def _triplet(d: Draw, shape, _ps):
    """triplet_margin_loss: returns ``(positive, anchor)`` of shape ``(N, D)`` or ``(D,)``
    and the negative in ``d.arrays``; adversarial: the negative as far from the anchor as
    the positive (``d(a, p) - d(a, n)`` cancels: the negative is the positive reflected
    through the anchor), coincident points (distances made of ``eps`` alone), or pairs as
    :func:`_pair_rows` draws them."""
    n = int(np.prod(shape))
    anchor = d.uniform(n, -3.0, 3.0)
    if d.category != "adversarial":
        pos, neg = anchor + d.uniform(n, -1.0, 1.0), anchor + d.uniform(n, -2.0, 2.0)
    elif d.rng.chance(0.4):
        how = d.rng.choice(("reflected", "coincident"))
        d.tag(how)
        anchor = d.r(anchor)
        pos = d.r(anchor + d.uniform(n, -1.0, 1.0)) if how == "reflected" else anchor.copy()
        neg = d.r(2 * anchor - pos) if how == "reflected" else _ulps_off(d, anchor)
    else:
        anchor, pos, how = _pair_rows(d, shape)
        neg = d.wide(n) if how == "wide-range" else pos[::-1].copy()
    d.arrays["negative"] = d.arrays["negatives"] = np.asarray(neg, np.float64).reshape(shape)  # torch, optax
    return pos, anchor


def _log_distribution_log(d: Draw, shape, ps):
    """optax's kl_divergence_with_log_targets: both sides log-probabilities."""
    y, logp = _log_distribution(d, shape, ps)
    return _mp_log(y), logp


def _ntxent(d: Draw, y_shape, p_shape):
    """ntxent: embeddings (N, D) and integer labels (N,), drawn from N/2 classes so that most
    rows have a positive partner; adversarial embeddings are parallel, equal, zero, huge,
    tiny or wide-ranging (:func:`_pair_rows`)."""
    n = int(np.prod(y_shape))
    y = d.rng.integers(n, 0, max(1, n // 2)).astype(np.float64)
    _, e, _ = _pair_rows(d, p_shape)
    return y.reshape(y_shape), e


def _blank(d: Draw) -> int:
    """The blank class of a CTC case: torch's ``blank``, optax's ``blank_id``, tf's
    ``blank_index`` (None: 0)."""
    for name in ("blank", "blank_id", "blank_index"):
        if d.params.get(name) is not None:
            return int(d.params[name])
    return 0


def _ctc_tf(d: Draw, y_shape, p_shape):
    """tf.nn.ctc_loss: the draw of ``ctc-log-probs`` (dense labels (N, S), time-major
    logits (T, N, C), which TF normalises itself) with the lengths under TF's names."""
    y, lp = _ctc_log_probs(d, y_shape, p_shape)
    d.arrays["logit_length"] = d.arrays.pop("input_lengths")
    d.arrays["label_length"] = d.arrays.pop("target_lengths")
    return y, lp


def _ctc_paddings(d: Draw, y_shape, p_shape):
    """optax's ctc_loss: the draw of ``ctc-log-probs`` in optax's terms: logits batch-major
    (N, T, C) (log-probabilities, or raw scores, which optax normalises itself), the labels
    (N, S) and the paddings (1 where padded) of both in ``d.arrays``; returns
    ``(logit_paddings, logits)``."""
    y, lp = _ctc_log_probs(d, y_shape, p_shape)
    t_len, n, _ = p_shape
    il, tl = d.arrays.pop("input_lengths"), d.arrays.pop("target_lengths")
    d.arrays["labels"] = y
    d.arrays["label_paddings"] = (np.arange(y_shape[1]) >= tl[:, None]).astype(np.float64)
    return (np.arange(t_len) >= il[:, None]).astype(np.float64), np.swapaxes(lp, 0, 1)


#: kind -> generator(draw, y_shape, p_shape) -> (y_true, y_pred) (float64, not yet rounded)
KINDS: Dict[str, Callable] = {
    "binary-logits": _binary_logits,
    "log-distribution": _log_distribution,
    "poisson-nll": _poisson_nll,
    "class-logits": _class_logits,
    "class-log-probs": _class_log_probs,
    "multilabel-logits": _multilabel_logits,
    "soft-margin": _soft_margin,
    "hinge-embedding": _hinge_embedding,
    "margin-index": _margin_index,
    "label-lists": _label_lists,
    "ctc-log-probs": _ctc_log_probs,
    "margin-ranking": _margin_ranking,
    "softmax-logits": _class_logits,
    "index-logits": lambda d, ys, ps: _class_logits(d, ys, ps, ignored=False),  # every label a class
    "log-distribution-log": _log_distribution_log,
    "ntxent": _ntxent,
    "ctc-paddings": _ctc_paddings,
    "ctc-tf": _ctc_tf,
    "cosine-embedding": _cosine_embedding,
    "triplet": _triplet,
    "real": _real,
    "binary": _binary,
    "categorical": _categorical,
    "distribution": _distribution,
    "sparse": _sparse,
    "hinge": _hinge,
    "scores": _scores,
    "segmentation": _segmentation,
    "similarity": _similarity,
    "counts": _counts,
    "circle": _circle,
    "ctc": _ctc,
}


def _min_rank(params: Mapping[str, Any]) -> int:
    axis = params.get("axis", -1)
    if axis is None:
        return 1
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return max([1] + [a + 1 for a in axes if a >= 0])


def draw_shapes(d: Draw, kind: str) -> Tuple[tuple, tuple]:
    """``(y_true shape, y_pred shape)`` for a case of this kind and category.

    Typical cases: ``(B, D)`` or ``(B, T, D)`` with at most 64 elements. Edge shapes:
    rank 1, empty batches, a single element, an empty feature axis, and (for class-axis
    kinds) class counts 1, 100, 257 and 1000.
    """
    rng = d.rng
    if kind == "circle":
        b = rng.integer(2, 9) if d.category != "edge-shape" else rng.choice((0, 1, 2))
        if d.category == "edge-shape":
            d.tag({0: "empty-batch", 1: "single-sample", 2: "pair"}[b])
        return (b,), (b, rng.integer(2, 6))
    if kind == "ctc":
        b, t, c = rng.integer(1, 4), rng.integer(1, 7), rng.integer(2, 6)
        length = rng.integer(1, t + 1)
        if d.category == "edge-shape":
            how = rng.choice(("empty-batch", "too-short", "two-classes", "single-step"))
            d.tag(how)
            if how == "empty-batch":
                b = 0
            elif how == "too-short":  # more labels than time steps: impossible, loss +inf
                length, t = t + 1, t
            elif how == "two-classes":
                c = 2
            else:
                t, length = 1, 1
        return (b, length), (b, t, c)
    if kind in ("ctc-log-probs", "ctc-paddings", "ctc-tf"):  # ((N, S), (T, N, C)); no empty log_probs
        blank = _blank(d)
        n, t = rng.integer(1, 4), rng.integer(1, 9)
        c = blank + 1 if blank and rng.chance(0.5) else rng.integer(max(2, blank + 2), blank + 6)
        s = rng.integer(0, t + 2)
        if d.category == "edge-shape":
            how = rng.choice(("too-short", "few-classes", "single-step", "empty-targets",
                              "wide-classes", "long-input"))
            d.tag(how)
            if how == "too-short":  # a target longer than its input: no alignment, loss +inf
                s = t + 1
            elif how == "few-classes":
                c = max(2, blank + 1)
            elif how == "single-step":
                t, s = 1, rng.integer(0, 3)
            elif how == "empty-targets":
                s = 0
            elif how == "wide-classes":
                n, t, c = 1, rng.integer(1, 4), rng.choice((100, 257))
                s = rng.integer(0, t + 1)
            else:
                n, t, c, s = 1, rng.integer(30, 65), max(3, blank + 1), rng.integer(5, 20)
        return (n, s), (t, n, c)
    classy = kind in ("categorical", "distribution", "sparse", "scores", "log-distribution",
                      "class-logits", "class-log-probs", "margin-index", "label-lists",
                      "softmax-logits", "index-logits", "log-distribution-log", "ntxent")
    # kinds with one class index per position (the class axis is the last here)
    index = kind in ("sparse", "class-logits", "class-log-probs", "margin-index", "index-logits", "ntxent")
    # torch takes (C) or (N, C) only (the embedding losses: (D) or (N, D))
    matrix = kind in ("margin-index", "label-lists", "cosine-embedding", "triplet", "ntxent")
    if kind == "class-logits" and d.params.get("ignore_index", -100) < 0 and rng.chance(0.3):
        d.tag("probability-targets")  # cross_entropy: a target of the input's shape
        index = False
    min_rank = _min_rank(d.params)
    if d.category == "edge-shape":
        options = ["rank-1", "empty-batch", "empty-batch-rank-3", "single-element"]
        if matrix:
            options.remove("empty-batch-rank-3")
        if classy:
            options += ["one-class", "wide-classes"]
        else:
            options += ["empty-features"]
        if kind == "sparse":
            options += ["label-column"]
        how = rng.choice(options)
        d.tag(how)
        dd = rng.integer(2, 6)
        shape = {"rank-1": (dd,), "empty-batch": (0, dd), "empty-batch-rank-3": (0, 2, dd),
                 "single-element": (1, 1), "one-class": (rng.integer(1, 4), 1),
                 "wide-classes": (1, rng.choice((100, 257, 1000))),
                 "empty-features": (rng.integer(1, 4), 0),
                 "label-column": (rng.integer(1, 4), dd)}[how]
        if len(shape) < min_rank:
            shape = (1,) * (min_rank - len(shape)) + shape
        if index:
            y_shape = shape[:-1] + ((1,) if how == "label-column" else ())
            return y_shape, shape
        return shape, shape
    rank = 2 if matrix else max(min_rank, 2 if rng.chance(0.7) else 3)
    dim = rng.integer(2, 9) if classy else rng.integer(1, 9)
    lead = [rng.integer(1, 7)] + [rng.integer(1, 4) for _ in range(rank - 2)]
    while int(np.prod(lead)) * dim > 64:
        lead[0] = max(1, lead[0] // 2)
        if int(np.prod(lead)) * dim > 64 and len(lead) > 1:
            lead[-1] = max(1, lead[-1] // 2)
    shape = tuple(lead) + (dim,)
    return (shape[:-1], shape) if index else (shape, shape)


def draw_inputs(d: Draw, kind: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` of one case, rounded into the format."""
    y_shape, p_shape = draw_shapes(d, kind)
    t, p = KINDS[kind](d, y_shape, p_shape)
    # flat draws take the drawn shapes; a kind may return its own (ctc-paddings: optax's layout)
    t, p = (np.asarray(a, dtype=np.float64) for a in (t, p))
    t = d.r(t.reshape(y_shape) if t.ndim <= 1 else t)
    p = d.r(p.reshape(p_shape) if p.ndim <= 1 else p)
    return t, p


def special_values(fmt: Format) -> np.ndarray:
    """The IEEE values every loss must handle: ±0, ±inf, NaN, the extreme finite values."""
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fmt.min_subnormal, -fmt.min_subnormal,
                     fmt.tiny, fmt.max, -fmt.max, 1.0, -1.0])


def inject_specials(d: Draw, kind: str, t: np.ndarray, p: np.ndarray,
                    values: Optional[np.ndarray] = None,
                    pred_only: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Overwrite 1 to 3 entries of y_pred (and of y_true unless it holds labels or
    `pred_only`) with special values (`values`, default :func:`special_values`)."""
    sv = special_values(d.fmt) if values is None else values
    t, p = t.copy(), p.copy()
    targets = [p] if kind in _LABEL_KINDS or pred_only else [p, t]
    for arr in targets:
        if arr.size == 0:
            continue
        flat = arr.reshape(-1)
        for _ in range(d.rng.integer(1, 4)):
            flat[d.rng.integer(0, flat.size)] = sv[d.rng.integer(0, sv.size)]
    return t, p


def draw_sample_weight(d: Draw, per_sample_shape: tuple) -> Optional[np.ndarray]:
    """A sample weight for per-sample values of `per_sample_shape`, or None.

    None, per sample (the per-sample shape), per sample broadcast over timesteps ``(B, 1)``,
    per timestep ``(B, T)``, a scalar; values in [0, 4), some or all of them zero.
    """
    rng = d.rng
    if rng.chance(0.35):
        return None
    s = tuple(per_sample_shape)
    if len(s) == 2:
        modes = ("per-timestep", "per-timestep", "per-sample", "per-sample", "scalar-weight")
    else:
        modes = ("per-sample", "per-sample", "per-sample", "scalar-weight")
    mode = rng.choice(modes) if s else "scalar-weight"
    shape = {"per-sample": s if len(s) != 2 else (s[0], 1), "per-timestep": s,
             "scalar-weight": ()}[mode]
    return _weights(d, shape, mode)


def _weights(d: Draw, shape: tuple, *tags: str) -> np.ndarray:
    """Weights of `shape` in [0, 4), some or all of them zero; tagged ``weighted``."""
    n = int(np.prod(shape))
    values = d.uniform(n, 0.0, 4.0)
    d.tag("weighted", *tags)
    zeros = d.rng.choice(("none", "none", "some", "all"))
    if zeros == "some":
        values = np.where(d.rng.integers(n, 0, 3) == 0, 0.0, values)
        d.tag("zero-weights")
    elif zeros == "all":
        values = np.zeros(n)
        d.tag("all-zero-weights")
    return d.r(values.reshape(shape))


def draw_array(d: Draw, name: str, rule: str, input_shape: tuple) -> Optional[np.ndarray]:
    """An extra array argument of a torch function (``weight``, ``pos_weight``), or None.

    `rule` (:data:`lossref.vectors.torch_table.ARRAY_RULES`): ``input`` the input's shape;
    ``broadcast`` the input's shape, its last axis or a scalar; ``last`` the last axis;
    ``class`` torch's class axis (dimension 1, or the only one of a 1-D input). Values in [0, 4), some or all zero for a weight; in (0, 4] for a
    ``pos_weight``.
    """
    rng = d.rng
    if rule == "kind":
        return d.r(d.arrays[name])
    if rule == "variance":
        return _draw_variance(d, tuple(input_shape))
    if rng.chance(0.4):
        return None
    s = tuple(input_shape)
    last = s[-1:] if s else ()
    if rule == "broadcast":
        shape = rng.choice((s, s, last, ()))
    elif rule == "class":  # torch's class dimension: 1, or the only one of a 1-D input
        shape = s[1:2] if len(s) > 1 else last
    elif rule == "last":
        shape = last
    else:
        shape = s
    n = int(np.prod(shape))
    if name == "pos_weight":
        d.tag("pos-weighted")
        return d.r((4.0 - d.uniform(n, 0.0, 4.0)).reshape(shape))
    return _weights(d, shape)


def _draw_variance(d: Draw, s: tuple) -> np.ndarray:
    """A var of ``gaussian_nll_loss``: one of the shapes torch accepts (the input's, its
    leading axes (one variance per row), or the input's with one dimension of size 1), values
    >= 0 over a wide range of binades, some at or below its eps and some 0."""
    rng = d.rng
    shapes = [s]
    if s:
        shapes.append(s[:-1])
        shapes += [s[:k] + (1,) + s[k + 1:] for k in range(len(s)) if s[k] != 1]
    shape = rng.choice(shapes)
    n = int(np.prod(shape))
    values = np.abs(d.wide(n, -30, 30)) if rng.chance(0.5) else d.uniform(n, 0.0, 4.0)
    if rng.chance(0.3):
        values = np.where(rng.integers(n, 0, 4) == 0, 0.0, values)
        d.tag("zero-variance")
    d.tag("variance-" + ("full" if shape == s else "row" if s and shape == s[:-1] else "one-dim"))
    return d.r(values.reshape(shape))

