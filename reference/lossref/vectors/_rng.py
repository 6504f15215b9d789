"""A deterministic random stream whose every number is defined by this file.

The stream is the raw 64-bit output of PCG64 (XSL-RR 128/64, a fixed, published
algorithm). Its 128-bit state and increment are taken from SHA-256 of a text key, not
from NumPy's ``SeedSequence``, and every number handed out is mapped from raw words here,
not by NumPy's distribution algorithms (which may change between NumPy releases). So a
key fixes every value on any platform and any NumPy version that has PCG64.
"""

from __future__ import annotations

import hashlib
from typing import Sequence, TypeVar

import numpy as np

__all__ = ["Stream", "key_state"]

T = TypeVar("T")
_MASK128 = (1 << 128) - 1


def key_state(key: str) -> tuple:
    """``(state, increment)`` of PCG64 for a text key: the two halves of its SHA-256;
    the increment is made odd, as PCG requires."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    state = int.from_bytes(digest[:16], "big") & _MASK128
    inc = int.from_bytes(digest[16:], "big") | 1
    return state, inc


class Stream:
    """Random numbers for one key (see the module docstring).

    Parameters
    ----------
    key : str
        Any text; equal keys give equal streams.
    """

    def __init__(self, key: str) -> None:
        state, inc = key_state(key)
        self._bg = np.random.PCG64()
        self._bg.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                          "has_uint32": 0, "uinteger": 0}

    def raw(self, n: int) -> np.ndarray:
        """`n` raw 64-bit words (uint64)."""
        return np.asarray(self._bg.random_raw(int(n)), dtype=np.uint64).reshape(int(n))

    def uniform(self, n: int) -> np.ndarray:
        """`n` floats in [0, 1): the top 53 bits of each word times 2**-53 (exact)."""
        return (self.raw(n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    def integers(self, n: int, lo: int, hi: int) -> np.ndarray:
        """`n` integers in [lo, hi) (int64) by multiply-shift of the top 32 bits; the
        bias is below 2**-32 · (hi - lo), irrelevant for test inputs."""
        span = int(hi) - int(lo)
        if span <= 0 or span >= 1 << 32:
            raise ValueError(f"integers: need 0 < hi - lo < 2**32, got [{lo}, {hi})")
        top = self.raw(n) >> np.uint64(32)
        return (top * np.uint64(span) >> np.uint64(32)).astype(np.int64) + int(lo)

    def integer(self, lo: int, hi: int) -> int:
        """One integer in [lo, hi)."""
        return int(self.integers(1, lo, hi)[0])

    def choice(self, seq: Sequence[T]) -> T:
        """One element of `seq`."""
        return seq[self.integer(0, len(seq))]

    def chance(self, p: float) -> bool:
        """True with probability `p`."""
        return bool(self.uniform(1)[0] < p)

    def signs(self, n: int) -> np.ndarray:
        """`n` values ±1.0 (the lowest bit of each word)."""
        return np.where(self.raw(n) & np.uint64(1), -1.0, 1.0)

    def log_uniform(self, n: int, lo_exp: int, hi_exp: int) -> np.ndarray:
        """`n` positive floats ``(1 + m) · 2**e``, e uniform in [lo_exp, hi_exp], m uniform
        in [0, 1): every binade between the two exponents is equally likely."""
        e = self.integers(n, lo_exp, hi_exp + 1)
        return np.ldexp(1.0 + self.uniform(n), e.astype(np.int32))

    def permutation(self, n: int) -> np.ndarray:
        """A permutation of ``range(n)`` (Fisher-Yates on this stream)."""
        out = np.arange(n)
        for i in range(n - 1, 0, -1):
            j = self.integer(0, i + 1)
            out[i], out[j] = out[j], out[i]
        return out
