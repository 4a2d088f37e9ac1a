"""Floating-point addition (and the aligned add shared with fused multiply-add)."""

from __future__ import annotations

from isospike.exact.circuits.arith import add, add_const, zero_extend
from isospike.exact.circuits.shift import shift_right_sticky
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import exp_width, magnitude_ge, round_pack, select, sub_words, unpack, with_specials
from isospike.exact.netlist import ZERO, Bits, Circuit


def aligned_add(c: Circuit, big_sign: int, big_exp: Bits, big_sig: Bits, small_sign: int, small_exp: Bits,
                small_sig: Bits, fmt: FloatFormat) -> tuple[Bits, int]:
    """Add two values given |big| >= |small| (same significand width, exponents as X-bit
    words); round to ``fmt``. Three extra bits (guard, round, sticky) below the significands
    make round-to-nearest-even exact. Returns (encoding, exact-zero flag)."""
    d = sub_words(c, big_exp, small_exp)  # >= 0
    ext_big = [ZERO, ZERO, ZERO] + list(big_sig)
    ext_small, sticky = shift_right_sticky(c, [ZERO, ZERO, ZERO] + list(small_sig), d)
    ext_small = [c.or_(ext_small[0], sticky)] + ext_small[1:]
    sub = c.xor(big_sign, small_sign)
    total, carry = add(c, ext_big, [c.xor(x, sub) for x in ext_small], sub)
    sig = total + [c.andn(carry, sub)]  # a subtraction's carry out is the dropped borrow
    return round_pack(c, big_sign, add_const(c, big_exp, 1), sig, ZERO, fmt)


def build_add(fmt: FloatFormat, negate_b: bool = False) -> Circuit:
    """``a + b`` (``a - b`` with negate_b), IEEE round to nearest even."""
    c = Circuit(f"{'sub' if negate_b else 'add'}_{fmt.name}")
    a_bits = c.input("a", fmt.width)
    b_bits = c.input("b", fmt.width)
    if negate_b:
        b_bits = b_bits[:-1] + [c.not_(b_bits[-1])]
    a, b = unpack(c, a_bits, fmt), unpack(c, b_bits, fmt)
    X = exp_width(fmt)
    a_big = magnitude_ge(c, a, b)
    big, small = select(c, a_big, a, b), select(c, a_big, b, a)
    out, zero = aligned_add(c, big.sign, zero_extend(big.exp, X), big.sig, small.sign, zero_extend(small.exp, X),
                            small.sig, fmt)
    # an exact zero sum is +0 in round-to-nearest, except (-0) + (-0)
    out = out[:-1] + [c.mux(zero, c.and_(a.sign, b.sign), out[-1])]
    both_inf_opposite = c.and_(c.and_(a.inf, b.inf), c.xor(a.sign, b.sign))
    nan = c.or_reduce([a.nan, b.nan, both_inf_opposite])
    inf = c.or_(a.inf, b.inf)
    out = with_specials(c, out, fmt, nan=nan, inf=inf, inf_sign=c.mux(a.inf, a.sign, b.sign))
    c.output("y", out)
    return c
