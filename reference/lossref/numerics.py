"""Stable float64 primitives shared by the references.

Each function is accurate to a few ulps over its whole domain, including the regions
where the textbook formula cancels or overflows; the comment on each branch says which.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LN2", "softplus", "log_cosh", "log1p_diff", "logsumexp", "log_softmax", "abs_diff",
]

LN2 = float(np.log(2.0))

# Below this |x|, log1p(2 sinh(x/2)^2) is used; above it |x| - ln2 + log1p(exp(-2|x|))
# cancels by at most 1 + ln2/20 and sinh^2 would overflow for |x| past about 1420.
_LOGCOSH_SWITCH = 20.0


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def log_cosh(x: np.ndarray) -> np.ndarray:
    """``log(cosh(x))``, relative error of a few ulps for every float64 `x`.

    ``log1p(2 sinh(x/2)^2)`` is exact in form (cosh x - 1 = 2 sinh^2(x/2)) and keeps
    the ``x^2/2`` of small residuals that ``x + softplus(-2x) - ln 2`` cancels away.
    """
    x = np.abs(np.asarray(x, dtype=np.float64))
    small = x <= _LOGCOSH_SWITCH
    xs = np.where(small, x, 0.0)
    near = np.log1p(2.0 * np.sinh(0.5 * xs) ** 2)
    far = (x - LN2) + np.log1p(np.exp(-2.0 * x))
    return np.where(small, near, far)


def log1p_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log1p(a) - log1p(b)`` for a, b >= -1, accurate when the two logs nearly cancel.

    It is ``± log1p(|a - b| / (1 + min(a, b)))``: the quotient is ``(1 + max) / (1 + min) - 1
    >= 0``, formed with three roundings and no cancellation, and log1p is well conditioned
    on ``[0, inf)``. (The form ``log1p((a - b) / (1 + b))`` is not: for ``a << b`` its
    argument nears -1.) Where that is not finite (a quotient past float64's range, then
    ``|result| > 709`` and the logs do not cancel; -1, inf and NaN arguments) or an argument
    is below -1, the two logs are subtracted as they are (IEEE results).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = a - b
        lo = np.minimum(a, b)
        out = np.copysign(np.log1p(np.abs(d) / (1.0 + lo)), d)
        edge = ~np.isfinite(out) | (lo < -1.0)
        if np.any(edge):  # rare
            out = np.where(edge, np.log1p(a) - np.log1p(b), out)
    return out


def abs_diff(a: np.ndarray, b: np.ndarray):
    """``|a - b|`` and, for entries where that overflows although a and b are finite,
    the exact half ``|a/2 - b/2|`` with a flag, so callers can finish the formula scaled.

    Returns ``(d, half, overflowed)``; the last two are None when no entry overflowed.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = np.abs(a - b)
    overflowed = np.isinf(d)
    if not np.any(overflowed):
        return d, None, None
    overflowed &= np.isfinite(a) & np.isfinite(b)
    return d, np.abs(0.5 * a - 0.5 * b), overflowed


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x)))`` over `axis` (``m + r`` of :func:`logsumexp_parts`); a row of
    ``-inf`` gives ``-inf``."""
    m, r = logsumexp_parts(x, axis)
    return np.squeeze(m + r, axis=axis)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log softmax(z)`` over `axis`, a few ulps for every float64 input.

    ``z - m`` is carried exactly as ``d + e`` (TwoSum), so ``exp`` does not amplify its
    rounding (``|z - m| u`` otherwise); the terms other than one maximal entry are summed
    compensated and enter as ``log1p(rest)``, so the dominant class keeps the relative
    accuracy of a log-probability near 0. IEEE semantics of ``log(exp(z) / sum exp(z))``:
    a row with NaN or only ``-inf`` is NaN; with ``+inf`` entries, NaN there and ``-inf``
    elsewhere.
    """
    z = np.moveaxis(np.asarray(z, dtype=np.float64), axis, -1)
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        finite = np.isfinite(m)
        d, e = two_sum(z, -np.where(finite, m, 0.0))
        np.copyto(e, 0.0, where=~np.isfinite(e))
        ex = np.exp(d)
        ex *= 1.0 + e  # exp(d + e), e below half an ulp of d
        top = np.argmax(z, axis=-1)[..., None]
        np.put_along_axis(ex, top, 0.0, axis=-1)  # one maximal term: exactly 1
        r = np.log1p(sum2(ex))[..., None]
        logp = np.subtract(d, r, out=d)
        logp += e  # (d - r) + e, in place: temporaries are what large inputs pay for
        np.put_along_axis(logp, top, -r, axis=-1)  # the maximal entry: -log1p(rest) exactly
        if not np.all(finite):  # rows with an infinite or NaN maximum
            logp = np.where(m == np.inf, np.where(z == np.inf, np.nan, -np.inf), logp)
            logp = np.where((m == -np.inf) | np.isnan(m), np.nan, logp)
    return np.moveaxis(logp, -1, axis)


def logsumexp_parts(x: np.ndarray, axis: int = -1):
    """``logsumexp(x) = m + r`` split into the maximum `m` and ``r = log1p(rest)``.

    `rest` sums ``exp(x - m)`` over every entry but one maximal one, so ``r`` keeps its
    relative accuracy when the maximum dominates (``log(1 + rest)`` would round a tiny
    `rest` away). Returns ``(m, r)`` with `axis` kept as length 1; all ``-inf`` gives
    ``m = -inf, r = 0``; a NaN gives NaN; ``+inf`` gives ``m = +inf``.
    """
    m, rest = logsumexp_rest(x, axis)
    return m, np.log1p(rest)


def logsumexp_rest(x: np.ndarray, axis: int = -1):
    """``(m, rest)`` of :func:`logsumexp_parts` before the ``log1p``: ``logsumexp(x) =
    m + log1p(rest)``. Sets split into parts combine with :func:`logsumexp_merge`."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(all="ignore"):
        e = np.subtract(x, shift)
        np.exp(e, out=e)  # in place: one temporary of the size of x, not two
    top = np.expand_dims(np.argmax(x, axis=axis), axis)
    np.put_along_axis(e, top, 0.0, axis=axis)  # drop one maximal term: it is exactly 1
    return m, np.sum(e, axis=axis, keepdims=True)


def logsumexp_merge(m: np.ndarray, rest: np.ndarray, axis: int = -1):
    """The ``(m, rest)`` of a union of disjoint sets from those of the sets (along `axis`),
    as :func:`logsumexp_rest` gives them; `axis` is kept as length 1.

    Set k adds ``exp(m_k - M) (1 + rest_k)`` to the union's rest, except the one holding the
    maximum ``M``, which adds its `rest` only (its maximal term is the one left out): a few
    ulps of each term, as in one pass. Empty sets (``-inf, 0``), NaN and ``+inf`` behave as
    in :func:`logsumexp_rest` of the whole.
    """
    m = np.asarray(m, dtype=np.float64)
    rest = np.asarray(rest, dtype=np.float64)
    big = np.max(m, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        terms = np.exp(m - np.where(np.isfinite(big), big, 0.0)) * (1.0 + rest)
        top = np.expand_dims(np.argmax(m, axis=axis), axis)
        np.put_along_axis(terms, top, np.take_along_axis(rest, top, axis=axis), axis=axis)
        return big, np.sum(terms, axis=axis, keepdims=True)


__all__ += ["logsumexp_parts", "logsumexp_rest", "logsumexp_merge"]


# --- binary cross-entropy family: sigmoid, log of a ratio, zero-weight products ----------------

__all__ += ["sigmoid", "log_ratio", "xmul"]



def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` with a relative error of a few ulps for every x.

    For x < 0 it is ``exp(x) / (1 + exp(x))``: tiny results down to the subnormals survive,
    where ``exp(-x)`` would overflow first.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(a / b)``, accurate near ``a = b`` and for ratios outside float64's range.

    For a and b of one sign it is ``± log1p(||a| - |b|| / min(|a|, |b|))``: the quotient is
    the larger magnitude over the smaller minus 1, ``>= 0``, with two roundings and no
    cancellation (``log(a / b)`` near 1 would keep only the quotient's rounding error), and
    log1p is well conditioned there. A quotient that overflows is replaced by
    ``log|a| - log|b|`` (then ``|log(a/b)| > 700``: no cancellation). Zeros, infinities,
    NaN and opposite signs get IEEE ``log(a / b)``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        ma, mb = np.abs(a), np.abs(b)
        d = ma - mb
        z = np.abs(d) / np.minimum(ma, mb)
        out = np.copysign(np.log1p(z), d)
        special = ~(z < np.inf) | ~(a * b > 0)  # rare: only then the exceptions are sorted out
        if np.any(special):
            same = (np.signbit(a) == np.signbit(b)) & (a != 0) & (b != 0) & np.isfinite(a) & np.isfinite(b)
            wide = np.where(z < np.inf, out, np.log(ma) - np.log(mb))
            out = np.where(special, np.where(same, wide, np.log(a / b)), out)
    return out


def xmul(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w * v`` where ``w = 0`` gives 0 for every non-NaN ``v``, infinite ones included.

    The ``0 log 0 = 0`` convention of cross-entropies for a log computed beforehand. A zero
    result is +0.
    """
    w = np.asarray(w, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(all="ignore"):
        # + 0.0 makes every zero product +0 and is exact otherwise; a select on w == 0 would
        # branch unpredictably on labels of 0 and 1
        out = w * v + 0.0
        inf = np.isinf(v)
        if np.any(inf):  # 0 * inf: rare, so only then a select
            out = np.where(inf & (w == 0), 0.0, out)
    return out


# --- error-free transformations: compensated sums and dot products ------------------------------
# Used where a stage-2 sum of terms of both signs would otherwise lose the result to
# cancellation (near-orthogonal vectors, 1 - y p near the hinge, the overlap ratios of
# Dice and Tversky); the result is as accurate as a sum in twice the working precision.

_VELTKAMP = 134217729.0  # 2**27 + 1 splits a binary64 significand into two 26-bit halves
# two_product's low part is exact when |a b| lies here (no overflow in the split, no
# underflow of the 26-bit partial products); outside it the low part is set to 0.
_TP_LO, _TP_HI = 2.0 ** -900, 2.0 ** 990


def two_sum(a: np.ndarray, b: np.ndarray):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth's TwoSum).

    Branch-free, for any order of magnitude; ``e`` is NaN when ``s`` overflows or an
    input is infinite (callers fall back to the plain sum there).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bv = s - a
        if not isinstance(bv, np.ndarray):
            return s, (a - (s - bv)) + (b - bv)
        # the same operations, in place: two temporaries fewer on large arrays
        av = s - bv
        np.subtract(a, av, out=av)
        np.subtract(b, bv, out=bv)
        return s, np.add(av, bv, out=av)


def two_product(a: np.ndarray, b: np.ndarray):
    """``(h, l)`` with ``h = fl(a b)`` and ``h + l = a b`` exactly (Dekker's product).

    The two factors are first balanced by a power of two (``a 2**-s``, ``b 2**s`` have
    the same exact product) so that Veltkamp's split cannot overflow; ``l`` is exact
    for ``2**-900 <= |a b| <= 2**990`` and 0 elsewhere (there it is below the
    resolution that matters: the product is huge, tiny, or not finite).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        h = a * b
        if _in_float32(a) and _in_float32(b):
            # 24-bit significands in float32's range: the product is exact in float64
            return h, np.zeros_like(h)
        ok = np.isfinite(h) & (np.abs(h) >= _TP_LO) & (np.abs(h) <= _TP_HI)
        a0, b0 = np.where(ok, a, 1.0), np.where(ok, b, 1.0)
        s = (np.frexp(a0)[1] - np.frexp(b0)[1]) // 2
        a2, b2 = np.ldexp(a0, -s), np.ldexp(b0, s)  # exact: both stay normal
        c = _VELTKAMP * a2
        ah = c - (c - a2)
        al = a2 - ah
        c = _VELTKAMP * b2
        bh = c - (c - b2)
        bl = b2 - bh
        low = ((ah * bh - h) + ah * bl + al * bh) + al * bl
        return h, np.where(ok, low, 0.0)


def sum_k3(terms: list) -> np.ndarray:
    """The sum of a few float64 arrays, about one rounding: two passes of a TwoSum cascade
    (each leaves the exact sum unchanged and pushes it into the last entry), then the plain
    sum (SumK of Ogita, Rump and Oishi with K = 3). Error ``<= (u + 3 g(n-1)^2) |sum| +
    g(2n-2)^3 sum|terms|`` with ``g(k) = k u / (1 - k u)``: for 5 terms below ``2^-150
    sum|terms|`` besides the final rounding, where pairwise compensation (``sum2``) leaves
    ``~2^-102 sum|terms|``."""
    for _ in range(2):
        s, errs = terms[0], []
        for t in terms[1:]:
            s, e = two_sum(s, t)
            errs.append(e)
        terms = errs + [s]
    return sum(terms[:-1]) + terms[-1]


def _in_float32(x: np.ndarray) -> bool:
    """Whether every element of float64 `x` is a float32 value (NaN included)."""
    with np.errstate(all="ignore"):
        same = x.astype(np.float32) == x  # compared in float64: out-of-range values differ
        return bool(np.all(same) or np.all(same | np.isnan(x)))


def one_minus_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - a b`` within about one ulp, also where ``a b`` is close to 1.

    ``1 - h`` is exact for ``h = fl(a b)`` in [1/2, 2] (Sterbenz), so subtracting the
    exact product's low part leaves a single rounding where the naive form cancels.
    """
    h, low = two_product(a, b)
    with np.errstate(invalid="ignore"):
        return (1.0 - h) - low


# Rows of at least this length are summed by extraction, a fixed number of passes over
# the whole row; shorter rows by the cascade, whose levels cost less there than extraction's
# row-wise reductions.
_EXTRACT_MIN = 256


def _sum2_cascade(s: np.ndarray, err: "np.ndarray | None"):
    """``(hi, lo)`` of the last axis of `s` (plus `err`) by a pairwise cascade of TwoSums."""
    while s.shape[-1] > 1:  # ceil(log2 n) vectorised levels; an odd last term waits a level
        n = s.shape[-1]
        # neighbours paired: NumPy sweeps the even and the odd entries as single strided
        # arrays, faster than contiguous half rows (a row-by-row iteration)
        t, e = two_sum(s[..., 0:n - 1:2], s[..., 1::2])
        if err is not None:
            e = (err[..., 0:n - 1:2] + err[..., 1::2]) + e
        if n % 2:
            t = np.concatenate([t, s[..., -1:]], axis=-1)
            last = np.zeros_like(t[..., -1:]) if err is None else err[..., -1:]
            e = np.concatenate([e, last], axis=-1)
        s, err = t, e
    return two_sum(s[..., 0], 0.0 if err is None else err[..., 0])


def _sum2_extract(terms: list):
    """``(hi, lo)`` of the last axes of the arrays `terms`, summed together, by extraction.

    Rump, Ogita and Oishi's ExtractVector: for ``sigma`` a power of two with
    ``max|x| <= 2**-m sigma`` (``2**m >= n + 2``), ``q = (sigma + x) - sigma`` and
    ``x - q`` are exact, every ``q`` lies on the grid ``2**-53 sigma`` and their sum is
    exact in any order; the remainders are below ``2**-53 sigma``. Repeated with
    ``sigma`` scaled by ``2**(m - 53)`` until ``n**2 u`` times the remainders is below
    ``u**2 max|x|`` (two levels for up to 8190 terms), the last ones are summed plainly:
    the error of ``hi + lo`` stays near ``u**2 (|exact| + max|x|)``.
    """
    n = terms[0].shape[-1] * len(terms)
    m = (n + 1).bit_length()

    def levels(gap):  # enough for rows whose max|x| is 2**-gap below the max behind sigma
        k = 2
        while 2 * np.log2(n) + (m - 53) * (k - 1) + m + 1 + gap > 0:
            k += 1
        return k

    top = np.max([np.maximum(np.max(t, axis=-1, keepdims=True), -np.min(t, axis=-1, keepdims=True))
                  for t in terms], axis=0)
    e = np.frexp(top)[1]  # max|x| < 2**e
    live = e[(top > 0) & (top < np.inf)]
    e_max = int(live.max()) if live.size else 0
    gap = e_max - int(live.min()) if live.size else 0
    depth, k = levels(0), None
    if e_max + m <= 1023 and levels(gap) <= depth + 1:
        # one sigma for all rows: operations with a scalar run several times faster than with
        # a column, so rows of smaller magnitude pay with a level more instead
        depth, sigma = levels(gap), 2.0 ** (e_max + m)
    else:
        k = np.maximum(e + m - 1023, 0)  # rows whose sigma would overflow: scaled by 2**-k
        if np.any(k):
            terms = [t * np.ldexp(1.0, -k) for t in terms]
        sigma = np.ldexp(1.0, e - k + m)
    taus = []
    for _ in range(depth):
        tau, rest = 0.0, []
        for t in terms:
            q = t + sigma
            q -= sigma
            tau = tau + np.sum(q, axis=-1)
            rest.append(np.subtract(t, q, out=q))
        taus.append(tau)
        terms, sigma = rest, sigma * 2.0 ** (m - 53)
    hi, err = two_sum(taus[0], taus[1])
    for tau in taus[2:]:
        hi, e2 = two_sum(hi, tau)
        err = err + e2
    hi, low = two_sum(hi, err + sum(np.sum(t, axis=-1) for t in terms))
    if k is not None and np.any(k):
        f = np.ldexp(1.0, k[..., 0])
        hi, low = hi * f, low * f
    return hi, low


def sum2_parts(x: np.ndarray, axis: int = -1, lo: "np.ndarray | None" = None):
    """Sum over `axis` as if in twice the precision.

    Returns ``(hi, lo)``: ``hi`` is the rounded sum and ``hi + lo`` carries the bits
    that a later cancellation would need. `lo` (same shape as `x`, optional) holds
    low-order parts added with the rounding errors, e.g. the ``l`` of
    :func:`two_product`. Error of ``hi + lo``:
    ``<= u**2 |exact| + 2 (ceil(log2 n) u)**2 sum|x|``. Where an input is infinite or
    NaN, or the sum overflows, ``hi`` is the plain sum (its IEEE value is the right
    one there) and ``lo`` is 0.

    Rows of fewer than 256 terms go through a pairwise cascade of TwoSums; longer ones
    through error-free extraction (:func:`_sum2_extract`), whose error stays near
    ``u**2 (|exact| + max|x|)``, well inside that bound.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    low = None if lo is None else np.moveaxis(np.asarray(lo, dtype=np.float64), axis, -1)
    with np.errstate(all="ignore"):
        if x.shape[-1] == 0:
            plain = np.sum(x, axis=-1) + np.sum(x if low is None else low, axis=-1)
            return plain, np.zeros_like(plain)
        if x.shape[-1] < _EXTRACT_MIN:
            hi, err = _sum2_cascade(x, low)
        else:
            hi, err = _sum2_extract([x] if low is None else [x, low])
        good = np.isfinite(hi) & np.isfinite(err)
        if not np.all(good):
            plain = np.sum(x, axis=-1) + (0.0 if low is None else np.sum(low, axis=-1))
            hi, err = np.where(good, hi, plain), np.where(good, err, 0.0)
        return np.asarray(hi), np.asarray(err)


def sum2(x: np.ndarray, axis: int = -1, lo: "np.ndarray | None" = None) -> np.ndarray:
    """The rounded sum of :func:`sum2_parts`: ``|computed - exact| <= u |exact| +
    2 (ceil(log2 n) u)**2 sum|x|``."""
    return sum2_parts(x, axis, lo)[0]


def dot2(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``sum(x * y)`` over `axis` with exact products and :func:`sum2`.

    Error ``<= u |exact| + 2 (ceil(log2 n) u)**2 sum|x y|`` where :func:`two_product`
    is exact; the relative error stays small for near-orthogonal vectors, where the
    plain dot product's error grows with the condition number ``sum|x y| / |sum x y|``.
    """
    h, low = two_product(x, y)
    return sum2(h, axis=axis, lo=low)


# --- reduction axes given as None / int / tuple (Dice, Tversky, cosine similarity) ------------


def normalize_axes(axis, ndim: int, name: str = "axis") -> tuple:
    """`axis` (None, an int or a sequence of ints) as a sorted tuple of non-negative axes.

    Raises ``TypeError`` for other types (bool included) and ``ValueError`` for an axis
    out of range for rank `ndim` or a repeated axis, naming `name`.
    """
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if isinstance(axis, bool) or not isinstance(items, (tuple, list)) or any(
            isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items):
        raise TypeError(f"{name} must be None, an int or a tuple of ints; got {axis!r}")
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={axis!r}: axis {a} is out of bounds for inputs of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(sorted(out))


def axes_last(x: np.ndarray, axes: tuple) -> np.ndarray:
    """`x` with the axes in `axes` moved to the end and merged into one (any dtype)."""
    x = np.asarray(x)
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, keep + list(axes))
    return moved.reshape(tuple(x.shape[a] for a in keep) + (int(np.prod([x.shape[a] for a in axes])),))


# --- overlap ratios (Dice, Tversky) --------------------------------------------------------------

_OVERLAP_SCALE = 2.0 ** 500  # above this magnitude y p could overflow: rescale by 2**-k


def overlap_ratio(y: np.ndarray, p: np.ndarray, axes: tuple, a: float, b: float, c: float,
                  eps: "float | None") -> np.ndarray:
    """``1 - c TP / (c TP + a FP + b FN + eps)`` as the ratio ``num / den``.

    Over the axes `axes` (merged): ``TP = sum(y p)``, ``FP = sum(p (1 - y))``,
    ``FN = sum(y (1 - p))``; ``num = eps + a FP + b FN`` and, the same denominator
    regrouped, ``den = eps + a sum(p) + b sum(y) + (c - a - b) TP``. Dice is
    ``a = b = 1, c = 2``; Tversky is ``a = alpha, b = beta, c = 1``. Both regroupings
    avoid a cancellation the literal form has: ``1 - ratio`` loses everything for a
    near-perfect prediction (num is then a sum of small terms ``p - y p``, each split
    exactly with :func:`two_product`), and for Dice and ``alpha + beta = 1`` the
    denominator has no ``y p`` term left to cancel. Every sum is a :func:`sum2_parts`
    pair and every weight is applied exactly, so num and den carry about 100 bits.
    Groups with a value above 2**500 are scaled by ``2**-2k`` (num and den alike). A
    group with an infinite or NaN input gives NaN (every such case is 0 * inf or
    inf / inf).

    The three steps are separate functions, so that a group too large for one pass can
    be summed in blocks: :func:`overlap_sums` of each block, the pairs added with
    :func:`sum2_parts`, :func:`overlap_exponent` of the largest `top`, and
    :func:`overlap_quotient`.
    """
    y = axes_last(np.asarray(y, dtype=np.float64), axes)
    p = axes_last(np.asarray(p, dtype=np.float64), axes)
    sums, finite, top = overlap_sums(y, p)
    k = overlap_exponent(top)
    if np.any(k):  # rare: values above 2**500, summed again scaled
        sums = overlap_sums(y, p, k)[0]
    return overlap_quotient(sums, finite, k, a, b, c, eps)


def overlap_exponent(top: np.ndarray) -> np.ndarray:
    """The scaling exponent ``k`` of :func:`overlap_ratio` for groups whose largest finite
    magnitude is `top`: 0 up to 2**500."""
    # y 2**-k and p 2**-k keep the products below 2**600 and the first-order terms
    # (scaled by 2**-2k) far above the subnormal range
    return np.where(top > _OVERLAP_SCALE, np.frexp(top)[1] - 300, 0)


def overlap_sums(y: np.ndarray, p: np.ndarray, k: "np.ndarray | None" = None):
    """The sums of :func:`overlap_ratio` over the last axis of float64 `y` and `p`.

    Returns ``(sums, finite, top)``: `sums` (the group shape + (5, 2)) holds the
    :func:`sum2_parts` pairs ``(hi, lo)`` of FP, FN, TP, ``sum(p)`` and ``sum(y)``, scaled
    by ``2**-2k`` (`k` of the group shape, None: 0), with non-finite entries taken as 0;
    `finite` whether every entry of the group is finite, `top` its largest finite magnitude.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(all="ignore"):
        fin_y, fin_p = np.isfinite(y), np.isfinite(p)
        finite = np.all(fin_y & fin_p, axis=-1)
        if not np.all(finite):  # rare: such a group ends as NaN; zeros keep the others' sums
            y, p = np.where(fin_y, y, 0.0), np.where(fin_p, p, 0.0)
        del fin_y, fin_p
        # max and -min instead of max(abs): no temporary of the size of the block
        top = np.maximum(np.maximum(np.max(y, axis=-1, initial=0.0), -np.min(y, axis=-1, initial=0.0)),
                         np.maximum(np.max(p, axis=-1, initial=0.0), -np.min(p, axis=-1, initial=0.0)))
        yu, pu = y, p
        if k is not None and np.any(k):
            kk = np.asarray(k)[..., None]
            y, p = np.ldexp(y, -kk), np.ldexp(p, -kk)
            unit = np.ldexp(1.0, -kk)  # the scaled 1 of (1 - y)
            yu, pu = y * unit, p * unit
        h, low = two_product(y, p)
        if not np.any(low):  # exact products (inputs of float32 and narrower): no low parts
            low = None
        out = np.empty(y.shape[:-1] + (5, 2))
        for i, v in ((0, pu), (1, yu)):  # FP = sum(p - y p), FN = sum(y - y p)
            s, e = two_sum(v, -h)
            if low is not None:
                e -= low
            out[..., i, 0], out[..., i, 1] = sum2_parts(s, lo=e)
            del s, e
        out[..., 2, 0], out[..., 2, 1] = sum2_parts(h, lo=low)
        out[..., 3, 0], out[..., 3, 1] = sum2_parts(pu)
        out[..., 4, 0], out[..., 4, 1] = sum2_parts(yu)
    return out, finite, top


def overlap_quotient(sums: np.ndarray, finite: np.ndarray, k: np.ndarray, a: float, b: float,
                     c: float, eps: "float | None") -> np.ndarray:
    """``num / den`` of :func:`overlap_ratio` from the pairs of :func:`overlap_sums` (scaled
    by ``2**-2k``); NaN where not `finite`."""
    fp, fn, tp, sp, sy = ((sums[..., i, 0], sums[..., i, 1]) for i in range(5))
    e = np.ldexp(0.0 if eps is None else float(eps), -2 * np.asarray(k))

    def weighted(w, parts):  # w (hi + lo) as pieces, exact up to second-order roundings
        wh, wl = two_product(np.full_like(parts[0], w[0]), parts[0])
        return [wh, wl, w[0] * parts[1] + w[1] * parts[0]]

    g, g_err = two_sum(float(c), -float(a))
    g, g_err2 = two_sum(g, -float(b))
    gamma = (g, g_err + g_err2)  # c - a - b in double-double: 0 for Dice
    with np.errstate(all="ignore"):
        num = sum2(np.stack([e] + weighted((a, 0.0), fp) + weighted((b, 0.0), fn), axis=-1))
        den = sum2(np.stack([e] + weighted((a, 0.0), sp) + weighted((b, 0.0), sy)
                            + weighted(gamma, tp), axis=-1))
        return np.where(finite, num / den, np.nan)


__all__ += ["two_sum", "two_product", "one_minus_product", "sum2_parts", "sum2", "dot2",
            "normalize_axes", "axes_last", "overlap_ratio", "overlap_exponent", "overlap_sums",
            "overlap_quotient"]


# --- categorical cross-entropy family: renormalised probabilities and their clip -------------

__all__ += ["normalize_parts", "clip_parts"]

_TWO_M1000 = 2.0 ** -1000


def normalize_parts(x: np.ndarray, *, at: "np.ndarray | None" = None):
    """``q = x / sum(x)`` over the last axis, with ``c = 1 - q`` and ``log q``, each accurate.

    The sum ``S`` is carried as ``hi + lo`` (:func:`sum2_parts`), so the complement of an
    entry above 1/2, ``c = (S - x_i) / S = ((hi - x_i) + lo) / S``, has no cancellation
    left, and ``log q = log1p(-c)`` keeps complements far below u that ``log(q)`` would
    round to 0.
    A row of finite entries whose sum overflows is scaled by a power of two first (by
    ``2**-k``, ``2**k`` above its largest magnitude; exact for every entry whose ratio
    is representable).
    A quotient that underflows gets ``log x_i - log S`` instead (then ``|log q| > 690``:
    no cancellation). IEEE semantics otherwise: ``S = 0`` gives ±inf/NaN ratios (``S`` is
    taken as +0, the sign Keras's sum gives), NaN and inf entries give NaN.

    `at` (integers, the shape of `x` without its last axis) asks for one entry per row,
    ``x[..., at]``: the triple then has the shape of `at`; the sums still take whole rows.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim and x.shape[-1] == 0:
        raise ValueError("normalize_parts: the last axis is empty (no ratio to form)")
    with np.errstate(all="ignore"):
        xs, k = x, 0
        hi, lo = sum2_parts(x)
        over = ~np.isfinite(hi)  # an overflow, or inf/NaN entries
        if np.any(over):
            big = np.max(np.abs(x), axis=-1)
            k = np.where(over & np.isfinite(big) & (big > 2.0 ** 1000), np.frexp(big)[1], 0)
            k = k[..., None]
            if np.any(k):
                # a product with a power of two: the scaling of ldexp, which is slow on a column
                xs = x * np.ldexp(1.0, -k)
                hi, lo = sum2_parts(xs)
        hi, lo = hi[..., None], lo[..., None]
        s = np.where(hi == 0, 0.0, hi)
        if at is not None:
            at = np.asarray(at)[..., None]
            x, xs = np.take_along_axis(x, at, axis=-1), np.take_along_axis(xs, at, axis=-1)
        q = xs / s
        c = 1.0 - q
        logq = np.log(q)
        # Entries above 1/2 (at most one per row of non-negative x) and underflowing ratios
        # are few: their formulas run on those entries only. i: flat index, i // n: row.
        n = q.shape[-1]
        i = np.flatnonzero(q > 0.5)
        if i.size:
            d, r = two_sum(np.take(hi, i // n), -np.take(xs, i))
            r = np.where(np.isfinite(r), r, 0.0)
            # (S - x_i) / S from the unrounded sum
            c_dom = (d + (r + np.take(lo, i // n))) / np.take(s, i // n)
            np.put(c, i, c_dom)
            np.put(logq, i, np.log1p(-c_dom))
        i = np.flatnonzero(q < _TWO_M1000)
        if i.size:
            xi, si = np.take(x, i), np.take(s, i // n)
            i = i[(xi > 0) & (si > 0) & np.isfinite(si)]
            k = np.take(k, i // n) * LN2 if np.ndim(k) else 0.0
            np.put(logq, i, np.log(np.take(x, i)) - (np.log(np.take(s, i // n)) + k))
    if at is not None:
        return q[..., 0], c[..., 0], logq[..., 0]
    return q, c, logq


def clip_parts(q: np.ndarray, c: np.ndarray, logq: np.ndarray, lo: float, top: float):
    """``clip(q, lo, 1 - top)`` applied to the triple ``(q, 1 - q, log q)``.

    The upper bound is given by its complement `top` (``lo <= 1/2``, ``top <= 1/2``), so
    ``[eps, 1 - eps]`` is exact and "q > 1 - top" is decided on the accurate complement,
    ``c < top``. NaN stays NaN, as ``np.clip``. Where nothing is clipped, the inputs
    themselves are returned.
    """
    low = q < lo
    high = c < top
    if not (np.any(low) or np.any(high)):
        return q, c, logq
    with np.errstate(divide="ignore"):
        log_lo, log_hi = np.log(lo), np.log1p(-top)
    q = np.where(low, lo, np.where(high, 1.0 - top, q))
    c = np.where(low, 1.0 - lo, np.where(high, top, c))
    logq = np.where(low, log_lo, np.where(high, log_hi, logq))
    return q, c, logq


# --- reference gradients of structured losses: double-double pieces, softmax and overlap VJPs -----

__all__ += ["dd_times", "dd_sum", "dd_div", "axes_restore", "softmax_vjp", "overlap_grad"]


def dd_times(w, hi: np.ndarray, lo: "np.ndarray | float" = 0.0) -> list:
    """``w (hi + lo)`` as three pieces whose sum is exact up to a second-order rounding
    (`w` a number or an array broadcasting with `hi`)."""
    hi = np.asarray(hi, dtype=np.float64)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), np.broadcast_shapes(np.shape(w), hi.shape))
    h, l = two_product(w, np.broadcast_to(hi, w.shape))
    return [h, l, w * lo]


def dd_sum(pieces: list):
    """``(hi, lo)`` of the sum of arrays broadcasting to one shape, as :func:`sum2_parts`."""
    shape = np.broadcast_shapes(*(np.shape(p) for p in pieces))
    return sum2_parts(np.stack([np.broadcast_to(np.asarray(p, np.float64), shape) for p in pieces], axis=-1))


def axes_restore(g: np.ndarray, axes: tuple, shape: tuple) -> np.ndarray:
    """The inverse of :func:`axes_last`: `g` laid out as ``axes_last(x, axes)`` back in the
    layout of an `x` of `shape`."""
    keep = [a for a in range(len(shape)) if a not in axes]
    order = keep + list(axes)
    moved = np.reshape(g, tuple(shape[a] for a in order))
    return np.transpose(moved, np.argsort(order))


def dd_div(ah: np.ndarray, al: np.ndarray, bh: np.ndarray, bl: np.ndarray):
    """``(a_h + a_l) / (b_h + b_l)`` as a double-double ``(hi, lo)``: a quotient, its
    remainder formed exactly (:func:`two_product`) and one correction (about 2**-100
    relative). Where `hi` is not finite, `lo` is 0."""
    with np.errstate(all="ignore"):
        q = ah / bh
        ph, pl = two_product(q, bh)
        r = (((ah - ph) - pl) + al - q * bl) / bh
        hi, lo = two_sum(q, r)
        return hi, np.where(np.isfinite(hi) & np.isfinite(lo), lo, 0.0)


def softmax_vjp(p: np.ndarray, g: np.ndarray, g_lo: "np.ndarray | None" = None) -> np.ndarray:
    """``p_j (g_j - sum_k p_k g_k)`` over the last axis (the VJP of a softmax `p` with the
    cotangent `g`), written as ``p_j ((g_j - g_t) - sum_k p_k (g_k - g_t))`` with `t` a
    largest probability: equal cotangents give an exact 0, and the dominant class gets
    ``-p_t sum_{k != t} p_k (g_k - g_t)``, a sum without the ``g_t - sum p g`` cancellation.
    `g_lo` (optional) carries the low parts of a double-double `g`: the differences are
    then formed from ``g + g_lo``, so they keep their accuracy where cotangents nearly agree.
    Error ``<= 4 u p_j (|g_j - g_t| + sum_k p_k |g_k - g_t|)`` besides the errors of `p`."""
    p = np.asarray(p, dtype=np.float64)
    g = np.broadcast_to(np.asarray(g, dtype=np.float64), p.shape)
    with np.errstate(all="ignore"):
        t = np.argmax(np.where(np.isnan(p), -np.inf, p), axis=-1)[..., None]
        dg, e = two_sum(g, -np.take_along_axis(g, t, axis=-1))
        if g_lo is not None:
            g_lo = np.broadcast_to(np.asarray(g_lo, dtype=np.float64), p.shape)
            e = e + (g_lo - np.take_along_axis(g_lo, t, axis=-1))
        dg = np.where(np.isfinite(e), dg + e, dg)
        h, l = two_product(p, dg)
        mean = sum2(h, lo=l)[..., None]
        return p * (dg - mean)


def softmax_xent_grad(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``d/dx_j sum_c q_c (-log softmax(x)_c) = S p_j - q_j`` over the last axis, ``S = sum q``.

    ``p`` from ``exp(d + e)`` (``x - max`` carried exactly by TwoSum) over a compensated
    sum; for one largest entry ``t`` the value is ``sum_{k != t} q_k - S (1 - p_t)`` with
    ``1 - p_t`` the other terms' share, so a dominant class does not cancel ``S p_t - q_t``
    (a one-hot target there gets ``-q_t sum_{k != t} p_k`` to a few ulps). Elsewhere the
    product ``S p_j`` is exact before ``q_j`` is subtracted: error ``<= 4 u (S p_j + |q_j|)``.
    """
    q = np.asarray(q, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    q = np.broadcast_to(q, np.broadcast_shapes(q.shape, x.shape))
    x = np.broadcast_to(x, q.shape)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=-1, keepdims=True)
        d, e = two_sum(x, -np.where(np.isfinite(m), m, 0.0))
        e = np.where(np.isfinite(e), e, 0.0)
        ex = np.exp(d) * (1.0 + e)
        t = np.argmax(x, axis=-1)[..., None]
        rest_terms = np.array(ex)
        np.put_along_axis(rest_terms, t, 0.0, axis=-1)
        rest = sum2(rest_terms)[..., None]
        z = 1.0 + rest
        p = ex / z
        s = sum2(q)[..., None]
        q_rest = np.array(q)
        np.put_along_axis(q_rest, t, 0.0, axis=-1)
        s_rest = sum2(q_rest)[..., None]
        h, lo = two_product(s, p)
        g = (h - q) + lo
        h, lo = two_product(s, rest / z)
        top = (s_rest - h) - lo
        np.put_along_axis(g, t, top, axis=-1)
        bad = ~np.isfinite(m)  # a row with an infinite or NaN maximum: IEEE's S p - q
        if np.any(bad):
            g = np.where(bad, s * (np.exp(x - m) / np.sum(np.exp(x - m), axis=-1, keepdims=True)) - q, g)
    return g


def sigmoid_xent_grads(y: np.ndarray, x: np.ndarray, q=None):
    """``(d/dx, d/dy, d/dq)`` of ``q y softplus(-x) + (1 - y) softplus(x)`` (binary
    cross-entropy of logits x, labels y, positive weight q; None is 1).

    ``d/dx = (1 - y) sigmoid(x) - q y sigmoid(-x)`` taken as ``(1 - y) - c sigmoid(-x)`` for
    ``x >= 0`` and ``c sigmoid(x) - q y`` below, ``c = 1 + (q - 1) y``: each sigmoid is of
    a non-positive argument (never ``1 - sigmoid`` rounded), so a label of 1 against a large
    logit keeps ``-sigmoid(-x)`` to a few ulps. ``d/dy = (q - 1) softplus(-x) - x`` (exactly
    ``-x`` for q = 1: ``softplus(-x) - softplus(x) = -x``), ``d/dq = y softplus(-x)``.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        sp_neg = softplus(-x)
        if q is None:
            c, qy, dy, dq = 1.0, y, np.broadcast_to(-x, np.broadcast_shapes(x.shape, y.shape)), None
        else:
            q = np.asarray(q, dtype=np.float64)
            c, qy = 1.0 + (q - 1.0) * y, q * y
            dy = (q - 1.0) * sp_neg - x
            dq = y * sp_neg
        e = np.exp(-np.abs(x))
        s_small = e / (1.0 + e)  # sigmoid(-|x|)
        dx = np.where(x >= 0, (1.0 - y) - c * s_small, c * s_small - qy)
        # |x| < 1: sigmoid(-x) = (1 - tanh(x/2)) / 2 gives (1 - y - c/2) + (c/2) tanh(x/2), whose
        # tanh keeps a small logit's share exactly where 1/2 - sigmoid(-x) would cancel it
        small = np.abs(x) < 1.0
        if np.any(small):
            dx = np.where(small, ((1.0 - y) - 0.5 * c) + (0.5 * c) * np.tanh(0.5 * x), dx)
        dx = np.where(np.isnan(x), np.nan, dx)
    return dx, dy, dq


# --- gradients of margin losses: max ties, hinge kinks, residuals -----------------------------


def max_shares(hi: np.ndarray, lo: "np.ndarray | None" = None, axis: int = -1) -> np.ndarray:
    """Each entry's share in ``d max / d entry`` over `axis`, for values ``hi + lo`` (``lo``
    optional, the low parts of double-length values): ``1/k`` at each of the ``k`` entries
    that equal the max, 0 elsewhere (an even split of a tie, as jax's ``max`` and
    ``torch.amax`` differentiate); NaN over a slice that holds a NaN."""
    hi = np.moveaxis(np.asarray(hi, np.float64), axis, -1)
    with np.errstate(all="ignore"):
        if lo is None:
            lo = np.zeros_like(hi)
        else:
            # renormalised, so that two values compare as (hi, lo) pairs
            hi, lo = two_sum(hi, np.moveaxis(np.asarray(lo, np.float64), axis, -1))
            lo = np.where(np.isfinite(lo), lo, 0.0)
        top = np.max(hi, axis=-1, keepdims=True)
        at = hi == top
        low_top = np.max(np.where(at, lo, -np.inf), axis=-1, keepdims=True)
        at &= lo == low_top
        share = at / np.sum(at, axis=-1, keepdims=True)
        share = np.where(np.isnan(top), np.nan, share)
    return np.moveaxis(share, -1, axis)


def hinge_share(v: np.ndarray, at: float = 0.5) -> np.ndarray:
    """``d max(v, 0) / dv``: 1 above 0, `at` at 0 (1/2: the tie of a max split evenly), 0
    below; NaN where `v` is NaN."""
    v = np.asarray(v, np.float64)
    return np.where(v > 0, 1.0, np.where(v == 0, at, np.where(np.isnan(v), np.nan, 0.0)))


def dd_quotient(ah: np.ndarray, al: np.ndarray, bh: np.ndarray, bl: np.ndarray):
    """``(a_h + a_l) / (b_h + b_l)`` as a pair ``(q, r)``, error of order ``u**2 |q|`` (the
    remainder ``a - q b_h`` from an exact product)."""
    with np.errstate(all="ignore"):
        q = ah / bh
        h, low = two_product(q, bh)
        return q, ((((ah - h) - low) + al) - q * bl) / bh


def dd_residual(y: np.ndarray, ah: np.ndarray, al: np.ndarray, p: np.ndarray):
    """``y - (a_h + a_l) p`` as a pair ``(hi, lo)``: the product exact (TwoProduct) and
    the difference a TwoSum, so a residual that cancels (``y`` nearly ``a p``) keeps its
    relative accuracy up to ``O(u**2) (|y| + |a p|)``."""
    with np.errstate(all="ignore"):
        h, low = two_product(ah, p)
        s, e = two_sum(y, -h)
        return two_sum(s, e - (low + al * p))


# --- gradients of the elementwise losses: scaled quotients, log(a/b) + 1, clip shares ----------

__all__ += ["quotient_by_product", "log_ratio_plus1", "clip_share"]

#: e = E_HI + E_LO with an error below 2^-106 of it
E_HI, E_LO = 2.718281828459045, 1.4456468917292502e-16


def quotient_by_product(n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``n / (a b)`` with two roundings (the product of the significands, the quotient)
    and no overflow or underflow before the result's own: the exponents are added apart
    and applied by one ``ldexp``. Zero, infinite or NaN operands get IEEE's ``(n / a) / b``."""
    n, a, b = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (n, a, b)))
    with np.errstate(all="ignore"):
        good = np.isfinite(n) & np.isfinite(a) & np.isfinite(b) & (n != 0) & (a != 0) & (b != 0)
        mn, en = np.frexp(np.where(good, n, 1.0))
        ma, ea = np.frexp(np.where(good, a, 1.0))
        mb, eb = np.frexp(np.where(good, b, 1.0))
        q = np.ldexp(mn / (ma * mb), en - ea - eb)
        if np.all(good):
            return q
        return np.where(good, q, (n / a) / b)


def log_ratio_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(a / b) + 1`` (the derivative of ``a log(a / b)`` in ``a``), a few ulps also
    where it nears 0 (``a / b`` near ``1/e``).

    For ``e^-2 < a / b < 1`` it is ``log1p(r)`` with ``r = e a / b - 1`` formed in double
    precision twice over (``e`` as a pair, the product and the quotient's remainder exact,
    the operands first scaled by a power of two so that neither underflows); elsewhere
    ``|log(a / b)| <= 2 |result|`` and :func:`log_ratio` plus 1 loses no more than a factor 2.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        far = log_ratio(a, b) + 1.0
        near = (a > 0.1353 * b) & (a < b) & (b > 0) & np.isfinite(b)
        if not np.any(near):
            return far
        k = np.frexp(np.where(near, b, 1.0))[1]
        a2, b2 = np.ldexp(np.where(near, a, 0.5), -k), np.ldexp(np.where(near, b, 1.0), -k)
        h, low = two_product(a2, E_HI)  # e a = h + low + a E_LO
        low = low + a2 * E_LO
        q = h / b2
        ph, pl = two_product(q, b2)
        q_lo = (((h - ph) - pl) + low) / b2  # e a / b = q + q_lo to about u^2
        r = (q - 1.0) + q_lo
        return np.where(near, np.log1p(r), far)


def clip_share(x: np.ndarray, lo, hi=None, tie: float = 0.5) -> np.ndarray:
    """``d clip(x, lo, hi) / dx`` with ``clip = min(max(x, lo), hi)``: 1 strictly inside,
    0 outside, `tie` at each bound it sits on (1/2: a tie of max or min split evenly; a
    bound that passes the gradient, 1), the two factors multiplied where ``lo == hi``;
    ``lo`` or ``hi`` None: no bound on that side. NaN where `x` is NaN."""
    x = np.asarray(x, np.float64)
    out = np.ones_like(x)
    if lo is not None:
        out = np.where(x > lo, out, np.where(x == lo, tie * out, 0.0))
    if hi is not None:
        out = np.where(x < hi, out, np.where(x == hi, tie * out, 0.0))
    return np.where(np.isnan(x), np.nan, out)


def overlap_grad(y: np.ndarray, p: np.ndarray, axes: tuple, a: float, b: float, c: float,
                 eps, cot: np.ndarray):
    """The VJP ``(d/dy, d/dp)`` of ``cot * (1 - c TP / den)`` over the groups of `axes`
    (:func:`overlap_ratio`; ``den = eps + a sum(p) + b sum(y) + (c - a - b) TP``).

    ``d/dp_k = c (a TP - y_k A) / den**2`` and ``d/dy_k = c (b TP - p_k A) / den**2`` with
    ``A = eps + a sum(p) + b sum(y)``: the numerators are formed from the double-double sums
    of :func:`overlap_sums` and exact products (no cancellation left but the one the
    gradient has), then divided twice by the rounded ``den``. Groups with values above
    2**500 are scaled as in :func:`overlap_ratio`, groups below 2**-300 by ``2**300``; a
    group with an inf or NaN entry is NaN.

    Groups of any magnitude: where the scaled quotient of a huge group would overflow
    (values near 2**1024), the scaling ``2**-2k`` is undone in two halves around the
    divisions, so its gradient stays finite.
    """
    shape = np.shape(p)
    yl = axes_last(np.asarray(y, dtype=np.float64), axes)
    pl = axes_last(np.asarray(p, dtype=np.float64), axes)
    with np.errstate(all="ignore"):
        sums, finite, top = overlap_sums(yl, pl)
        k = np.where((top > 0) & (top < 2.0 ** -300), -300, overlap_exponent(top))
        if np.any(k):
            sums = overlap_sums(yl, pl, k)[0]
        tp, sp, sy = ((sums[..., i, 0], sums[..., i, 1]) for i in (2, 3, 4))
        e = np.ldexp(0.0 if eps is None else float(eps), -2 * np.asarray(k))
        a_pieces = [e] + dd_times(a, *sp) + dd_times(b, *sy)
        ah, al = dd_sum(a_pieces)
        g, g_err = two_sum(float(c), -float(a))
        g, g_err2 = two_sum(g, -float(b))
        den = dd_sum(a_pieces + dd_times(g, *tp) + [(g_err + g_err2) * tp[0]])[0]
        scale = np.where(finite, c * np.asarray(cot, dtype=np.float64) / den, np.nan)[..., None]
        den, kk = den[..., None], -np.asarray(k)[..., None]
        def vjp(w, v):  # c cot (w TP - v A) / den**2, the scaling 2**-2k undone last
            pieces = dd_times(w, tp[0][..., None], tp[1][..., None])
            pieces += [-q for q in dd_times(v, ah[..., None], al[..., None])]
            num = dd_sum(pieces)[0]
            out = np.ldexp(num / den * scale, 2 * kk)
            # where the scaled quotient overflowed (huge groups): 2**-k before it, 2**-k after
            split = np.isinf(num / den * scale) & np.isfinite(num) & (kk < 0)
            if np.any(split):
                out = np.where(split, np.ldexp(np.ldexp(num, kk) / den * scale, kk), out)
            return out

        gp, gy = vjp(a, yl), vjp(b, pl)
    return axes_restore(gy, axes, shape), axes_restore(gp, axes, shape)



