"""Floating-point multiplication and fused multiply-add."""

from __future__ import annotations

from isospike.exact.circuits.arith import add, add_const, greater_equal, mux_word, zero_extend
from isospike.exact.circuits.multiply import multiply
from isospike.exact.circuits.shift import leading_zeros, shift_left
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.add import aligned_add
from isospike.exact.fp.common import Unpacked, exp_width, round_pack, sub_words, unpack, with_specials
from isospike.exact.netlist import ZERO, Bits, Circuit


def _product(c: Circuit, a: Unpacked, b: Unpacked, fmt: FloatFormat) -> tuple[Bits, Bits]:
    """Exact product significand (2p bits) and its exponent word: the product equals
    P * 2^(exp - bias - (2p - 1))."""
    X = exp_width(fmt)
    P = multiply(c, a.sig, b.sig)
    exp_sum, _ = add(c, zero_extend(a.exp, X), zero_extend(b.exp, X))
    return P, add_const(c, exp_sum, 1 - fmt.bias)


def build_mul(fmt: FloatFormat) -> Circuit:
    """``a * b``, IEEE round to nearest even."""
    c = Circuit(f"mul_{fmt.name}")
    a, b = unpack(c, c.input("a", fmt.width), fmt), unpack(c, c.input("b", fmt.width), fmt)
    sign = c.xor(a.sign, b.sign)
    P, exp = _product(c, a, b, fmt)
    out, _ = round_pack(c, sign, exp, P, ZERO, fmt)
    nan = c.or_reduce([a.nan, b.nan, c.and_(a.inf, b.zero), c.and_(a.zero, b.inf)])
    out = with_specials(c, out, fmt, nan=nan, inf=c.or_(a.inf, b.inf), inf_sign=sign)
    c.output("y", out)
    return c


def _normalize(c: Circuit, sig: Bits, exp: Bits) -> tuple[Bits, Bits, int]:
    """Shift the leading 1 of ``sig`` to the top; returns (sig, exp - shift, is_zero)."""
    lz, zero = leading_zeros(c, sig)
    return shift_left(c, sig, lz), sub_words(c, exp, zero_extend(lz, len(exp))), zero


def build_fma(fmt: FloatFormat) -> Circuit:
    """``a * b + c`` with a single rounding (IEEE fusedMultiplyAdd, round to nearest even)."""
    c = Circuit(f"fma_{fmt.name}")
    a = unpack(c, c.input("a", fmt.width), fmt)
    b = unpack(c, c.input("b", fmt.width), fmt)
    z = unpack(c, c.input("c", fmt.width), fmt)
    p, X = fmt.precision, exp_width(fmt)
    psign = c.xor(a.sign, b.sign)
    P, pexp = _product(c, a, b, fmt)  # 2p bits
    Pn, pexp, pzero = _normalize(c, P, pexp)
    # c on the same 2p-bit scale: the same value with p extra zero bits below
    Cn, cexp, czero = _normalize(c, [ZERO] * p + z.sig, zero_extend(z.exp, X))
    # zero operands get the smallest exponent so the other one is always "big"
    lowest = Circuit.const(1 << (X - 1), X)  # most negative X-bit value
    pexp = mux_word(c, pzero, lowest, pexp)
    cexp = mux_word(c, czero, lowest, cexp)
    # |P| >= |C|: compare (exponent, significand) with the exponents as offset binary
    key_p = Pn + pexp[:-1] + [c.not_(pexp[-1])]
    key_c = Cn + cexp[:-1] + [c.not_(cexp[-1])]
    p_big = greater_equal(c, key_p, key_c)
    big_sign, small_sign = c.mux(p_big, psign, z.sign), c.mux(p_big, z.sign, psign)
    big_exp, small_exp = mux_word(c, p_big, pexp, cexp), mux_word(c, p_big, cexp, pexp)
    big_sig, small_sig = mux_word(c, p_big, Pn, Cn), mux_word(c, p_big, Cn, Pn)
    out, zero = aligned_add(c, big_sign, big_exp, big_sig, small_sign, small_exp, small_sig, fmt)
    out = out[:-1] + [c.mux(zero, c.and_(psign, z.sign), out[-1])]
    prod_inf = c.or_(a.inf, b.inf)
    invalid_prod = c.or_(c.and_(a.inf, b.zero), c.and_(a.zero, b.inf))
    inf_minus_inf = c.and_(c.and_(prod_inf, z.inf), c.xor(psign, z.sign))
    nan = c.or_reduce([a.nan, b.nan, z.nan, invalid_prod, inf_minus_inf])
    out = with_specials(c, out, fmt, nan=nan, inf=c.or_(prod_inf, z.inf),
                        inf_sign=c.mux(prod_inf, psign, z.sign))
    c.output("y", out)
    return c


__all__ = ["build_fma", "build_mul"]
