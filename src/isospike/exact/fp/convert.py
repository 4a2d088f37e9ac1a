"""Conversions between formats and between integers and floats."""

from __future__ import annotations

from isospike.exact.circuits.arith import add_const, mux_word, negate, zero_extend
from isospike.exact.circuits.shift import shift_left
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import const_word, exp_width, round_pack, unpack, with_specials
from isospike.exact.netlist import ZERO, Circuit


def build_float_to_float(src: FloatFormat, dst: FloatFormat) -> Circuit:
    """Convert ``src`` -> ``dst`` (exact when widening, round to nearest even when narrowing);
    NaN -> canonical quiet NaN, infinities and signed zeros kept."""
    c = Circuit(f"{src.name}_to_{dst.name}")
    a = unpack(c, c.input("a", src.width), src)
    X = max(exp_width(src), exp_width(dst)) + 1
    # value = sig * 2^(e - bias_src - (p_src - 1)); round_pack reads exp - bias_dst for the top bit
    exp = add_const(c, zero_extend(a.exp, X), dst.bias - src.bias)
    out, _ = round_pack(c, a.sign, exp, a.sig, ZERO, dst)
    out = with_specials(c, out, dst, nan=a.nan, inf=a.inf, inf_sign=a.sign)
    c.output("y", out)
    return c


def build_int_to_float(int_bits: int, dst: FloatFormat) -> Circuit:
    """Two's complement integer of ``int_bits`` bits -> ``dst``, round to nearest even."""
    c = Circuit(f"int{int_bits}_to_{dst.name}")
    x = c.input("a", int_bits)
    sign = x[-1]
    mag = mux_word(c, sign, negate(c, x), x)  # |INT_MIN| = 2^(n-1) fits n unsigned bits
    X = max(exp_width(dst), int_bits.bit_length() + 2) + 1
    exp = Circuit.const(dst.bias + int_bits - 1, X)
    out, _ = round_pack(c, sign, exp, mag, ZERO, dst)
    c.output("y", out)
    return c


def build_float_to_int(src: FloatFormat, int_bits: int = 32) -> Circuit:
    """``src`` -> two's complement integer, rounding toward zero (C/x86 truncation). NaN,
    infinities and out-of-range values give the "integer indefinite" value -2^(n-1), as x86's
    cvttss2si does (and numpy/torch on x86)."""
    c = Circuit(f"{src.name}_to_int{int_bits}")
    a = unpack(c, c.input("a", src.width), src)
    p = src.precision
    X = exp_width(src) + 1
    k = add_const(c, zero_extend(a.exp, X), -src.bias)  # unbiased exponent
    negative_k = k[-1]  # |a| < 1: truncates to 0
    too_big = c.not_(add_const(c, k, -(int_bits - 1))[-1])  # k >= n - 1
    # integer part = sig * 2^(k - (p - 1)): shift sig left by k inside a (p - 1 + n)-bit word
    wide = a.sig + [ZERO] * (int_bits - 1)
    amount = [c.andn(x, negative_k) for x in k[: max(1, (len(wide)).bit_length())]]
    shifted = shift_left(c, wide, amount)
    mag = [c.andn(x, negative_k) for x in shifted[p - 1: p - 1 + int_bits]]
    val = mux_word(c, a.sign, negate(c, mag), mag)
    invalid = c.or_reduce([a.nan, a.inf, too_big])
    val = mux_word(c, invalid, const_word(1 << (int_bits - 1), int_bits), val)
    c.output("y", val)
    return c


__all__ = ["build_float_to_float", "build_float_to_int", "build_int_to_float"]
