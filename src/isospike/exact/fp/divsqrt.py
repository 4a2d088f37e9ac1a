"""Floating-point division and square root by restoring digit recurrence: one result bit per
step (compare-subtract-select), then one correctly rounded result from the remainder."""

from __future__ import annotations

from isospike.exact.circuits.arith import add_const, increment, is_zero, mux_word, subtract, zero_extend
from isospike.exact.circuits.shift import leading_zeros, shift_left
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import exp_width, round_pack, sub_words, unpack, with_specials
from isospike.exact.netlist import ONE, ZERO, Bits, Circuit


def _normalized(c: Circuit, sig: Bits, exp: Bits) -> tuple[Bits, Bits]:
    lz, _ = leading_zeros(c, sig)
    return shift_left(c, sig, lz), sub_words(c, exp, zero_extend(lz, len(exp)))


def build_div(fmt: FloatFormat) -> Circuit:
    """``a / b``, IEEE round to nearest even."""
    c = Circuit(f"div_{fmt.name}")
    a, b = unpack(c, c.input("a", fmt.width), fmt), unpack(c, c.input("b", fmt.width), fmt)
    p, X = fmt.precision, exp_width(fmt)
    sign = c.xor(a.sign, b.sign)
    na, ea = _normalized(c, a.sig, zero_extend(a.exp, X))
    nb, eb = _normalized(c, b.sig, zero_extend(b.exp, X))
    W = p + 2  # quotient bits: p + guard, plus one because na/nb may be < 1
    rem = na + [ZERO]  # p + 1 bits
    divisor = nb + [ZERO]
    q: list[int] = []
    for i in range(W):
        if i:
            rem = [ZERO] + rem[:p]  # rem < divisor < 2^p, so 2 * rem fits p + 1 bits
        diff, ge = subtract(c, rem, divisor)
        q.append(ge)
        rem = mux_word(c, ge, diff, rem)
    quotient = q[::-1]  # little-endian
    sticky = c.not_(is_zero(c, rem))
    exp = add_const(c, sub_words(c, ea, eb), fmt.bias)
    out, _ = round_pack(c, sign, exp, quotient, sticky, fmt)
    nan = c.or_reduce([a.nan, b.nan, c.and_(a.zero, b.zero), c.and_(a.inf, b.inf)])
    out = with_specials(c, out, fmt, nan=nan, inf=c.or_(a.inf, b.zero), inf_sign=sign,
                        zero=c.or_(a.zero, b.inf), zero_sign=sign)
    c.output("y", out)
    return c


def build_sqrt(fmt: FloatFormat) -> Circuit:
    """``sqrt(a)``, IEEE round to nearest even; sqrt(-0) = -0, sqrt(x < 0) = NaN."""
    c = Circuit(f"sqrt_{fmt.name}")
    a = unpack(c, c.input("a", fmt.width), fmt)
    p, X = fmt.precision, exp_width(fmt)
    n, e = _normalized(c, a.sig, zero_extend(a.exp, X))
    W = p + 2  # root bits: p + guard + one spare; the remainder gives the sticky bit
    # value = n * 2^t with t = e - bias - (p - 1). Radicand M = n * 2^k (2W bits) with t - k even.
    t = add_const(c, e, -fmt.bias - (p - 1))
    k_even = 2 * W - p  # puts n's leading 1 at bit 2W - 1
    odd = t[0] if k_even % 2 == 0 else c.not_(t[0])  # t - k_even odd: use k_even - 1
    hi = [ZERO] * k_even + n  # n << k_even (2W bits)
    lo = [ZERO] * (k_even - 1) + n + [ZERO]  # n << (k_even - 1)
    radicand = mux_word(c, odd, lo, hi)[: 2 * W]
    rem: Bits = [ZERO] * (W + 2)
    root: Bits = []  # big-endian while building
    for i in range(W):
        pair = [radicand[2 * W - 2 - 2 * i], radicand[2 * W - 1 - 2 * i]]
        rem = (pair + rem)[: W + 2]  # rem * 4 + next two bits
        trial = [ONE, ZERO] + root[::-1]  # (root << 2) | 1, little-endian
        diff, ge = subtract(c, rem, trial + [ZERO] * (W + 2 - len(trial)))
        rem = mux_word(c, ge, diff, rem)
        root.append(ge)
    sticky = c.not_(is_zero(c, rem))
    # sqrt(value) = root * 2^((t - k) / 2), and round_pack reads exp as root * 2^(exp - bias - (W - 1))
    s, _ = increment(c, add_const(c, t, -k_even), odd)  # t - k = t - k_even + odd: even
    half = s[1:] + [s[-1]]  # arithmetic shift right by one
    exp = add_const(c, half, fmt.bias + W - 1)
    out, _ = round_pack(c, ZERO, exp, root[::-1], sticky, fmt)
    negative = c.andn(a.sign, a.zero)
    nan = c.or_(a.nan, negative)
    out = with_specials(c, out, fmt, nan=nan, inf=a.inf, inf_sign=ZERO, zero=a.zero, zero_sign=a.sign)
    c.output("y", out)
    return c
