"""Barrel shifters (with sticky bit) and the leading-zero counter."""

from __future__ import annotations

from isospike.exact.circuits.arith import mux_word
from isospike.exact.netlist import ZERO, Bits, Circuit


def _stage_count(width: int) -> int:
    return max(1, (width - 1).bit_length()) if width > 1 else 1


def shift_right_sticky(c: Circuit, a: Bits, amount: Bits) -> tuple[Bits, int]:
    """Logical right shift of ``a`` by the unsigned ``amount``; also returns the sticky bit:
    the OR of every 1 shifted out. Amounts >= len(a) give all zeros (sticky = OR of a)."""
    n = len(a)
    stages = _stage_count(n + 1)
    cur = list(a)
    sticky = ZERO
    for k in range(min(stages, len(amount))):
        s = amount[k]
        d = 1 << k
        lost = c.or_reduce(cur[:d])
        sticky = c.or_(sticky, c.and_(s, lost))
        shifted = cur[d:] + [ZERO] * min(d, n)
        cur = mux_word(c, s, shifted[:n], cur)
    high = amount[stages:]
    if high:  # shift >= 2^stages >= len(a): everything goes to the sticky bit
        big = c.or_reduce(high)
        sticky = c.or_(sticky, c.and_(big, c.or_reduce(cur)))
        cur = [c.andn(x, big) for x in cur]
    return cur, sticky


def shift_left(c: Circuit, a: Bits, amount: Bits) -> Bits:
    """Logical left shift of ``a`` (same width) by the unsigned ``amount``."""
    n = len(a)
    stages = _stage_count(n + 1)
    cur = list(a)
    for k in range(min(stages, len(amount))):
        d = 1 << k
        shifted = [ZERO] * min(d, n) + cur[: max(n - d, 0)]
        cur = mux_word(c, amount[k], shifted, cur)
    high = amount[stages:]
    if high:
        big = c.or_reduce(high)
        cur = [c.andn(x, big) for x in cur]
    return cur


def leading_zeros(c: Circuit, a: Bits) -> tuple[Bits, int]:
    """Count of leading zeros of ``a`` (from its most significant bit) and an all-zero flag.

    Tree: split into halves; lz = hi_all_zero ? half + lz(lo) : lz(hi). The count has
    ceil(log2(len)) + 1 bits; for an all-zero word it is len(a)."""
    n = len(a)
    size = 1
    while size < n:
        size *= 2
    # pad at the bottom: leading zeros are unchanged unless the word is all zero, and then the
    # count is replaced by n below
    padded = [ZERO] * (size - n) + list(a)
    count, zero = _lz_tree(c, padded)
    width = (n).bit_length()
    count = count + [ZERO] * max(0, width - len(count))
    # all-zero word: tree count is size; report n instead
    n_bits = Circuit.const(n, len(count))
    count = mux_word(c, zero, n_bits, count)
    return count[:width], zero


def _lz_tree(c: Circuit, bits: Bits) -> tuple[Bits, int]:
    """(count, all_zero) for a power-of-two-length word; count has log2(len)+1 bits, MSB
    set only for the all-zero case (count == len)."""
    n = len(bits)
    if n == 1:
        z = c.not_(bits[0])
        return [z], z
    half = n // 2
    lo, hi = bits[:half], bits[half:]
    c_hi, z_hi = _lz_tree(c, hi)
    c_lo, z_lo = _lz_tree(c, lo)
    k = len(c_hi) - 1  # both counts < half unless all-zero; log2(half) bits of value
    # if hi is all zero: count = half + c_lo (c_lo <= half); else count = c_hi (< half)
    # half = 2^k, c_lo = 0..2^k: half + c_lo has bit k set unless c_lo == half (then bit k+1)
    low_bits = [c.mux(z_hi, c_lo[i], c_hi[i]) for i in range(k)]
    bit_k = c.and_(z_hi, c.not_(z_lo))  # half + c_lo with c_lo < half
    bit_k1 = c.and_(z_hi, z_lo)  # all zero: count = 2 * half
    zero = bit_k1
    return low_bits + [bit_k, bit_k1], zero
