"""IEEE scaleB (x * 2^k with one rounding), logB and the significand, and the word multiplexer (select)."""

from __future__ import annotations

from isospike.exact.circuits.arith import add, add_const, greater_equal, mux_word, negate, sign_extend, zero_extend
from isospike.exact.circuits.shift import leading_zeros, shift_left
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import const_word, exp_width, round_pack, sub_words, unpack, with_specials
from isospike.exact.netlist import ZERO, Bits, Circuit


def build_ldexp(fmt: FloatFormat, int_bits: int = 32) -> Circuit:
    """``x * 2^k`` for a float x and a two's complement integer k, rounded once (IEEE scaleB):
    overflow gives infinity, underflow gives subnormals or zero; NaN/inf/zero pass through."""
    c = Circuit(f"ldexp_{fmt.name}")
    x = unpack(c, c.input("a", fmt.width), fmt)
    k = c.input("k", int_bits)
    X = exp_width(fmt) + 2
    # saturate k to [-lim, lim]: beyond that every result is 0 / inf already
    lim = fmt.exp_max + fmt.precision + 2
    negative = k[-1]
    big = greater_equal(c, k, const_word(lim, int_bits))  # unsigned compare; only used if k >= 0
    small = c.not_(greater_equal(c, k, const_word(-lim, int_bits)))  # k < -lim (k negative)
    k_sat = mux_word(c, c.andn(big, negative), const_word(lim, X), sign_extend(k, X)[:X])
    k_sat = mux_word(c, c.and_(small, negative), const_word(-lim, X), k_sat)
    exp, _ = add(c, zero_extend(x.exp, X), k_sat)
    out, _ = round_pack(c, x.sign, exp, x.sig, ZERO, fmt)
    out = with_specials(c, out, fmt, nan=x.nan, inf=x.inf, inf_sign=x.sign, zero=x.zero, zero_sign=x.sign)
    c.output("y", out)
    return c


def build_select(fmt: FloatFormat) -> Circuit:
    """``cond ? a : b`` on whole encodings (two neurons per bit, none for equal constant bits)."""
    c = Circuit(f"select_{fmt.name}")
    s = c.input("cond", 1)[0]
    a, b = c.input("a", fmt.width), c.input("b", fmt.width)
    c.output("y", mux_word(c, s, a, b))
    return c


def _log2_floor(c: Circuit, x, fmt: FloatFormat) -> tuple[Bits, Bits]:
    """(floor(log2|x|) as a two's complement word, leading zeros of the significand) for a
    finite nonzero unpacked x: the effective exponent minus the bias minus the significand's
    leading zeros (subnormals)."""
    lz, _ = leading_zeros(c, x.sig)
    X = exp_width(fmt) + 1
    e = add_const(c, zero_extend(x.exp, X), -fmt.bias)
    return sub_words(c, e, zero_extend(lz, X)), lz


def build_logb(fmt: FloatFormat) -> Circuit:
    """IEEE 754 logB with a float result: floor(log2|x|) for finite nonzero x (subnormals
    included), -inf for zeros, +inf for infinities, NaN for NaN."""
    c = Circuit(f"logb_{fmt.name}")
    x = unpack(c, c.input("a", fmt.width), fmt)
    e, _ = _log2_floor(c, x, fmt)
    sign = e[-1]
    mag = mux_word(c, sign, negate(c, e), e)
    X = len(e) + 2
    out, _ = round_pack(c, sign, Circuit.const(fmt.bias + len(mag) - 1, X), mag, ZERO, fmt)
    out = with_specials(c, out, fmt, nan=x.nan, inf=c.or_(x.inf, x.zero), inf_sign=x.zero)
    c.output("y", out)
    return c


def build_significand(fmt: FloatFormat) -> Circuit:
    """x * 2^-logB(x): the significand of x in [1, 2) with x's sign (subnormals normalized);
    zeros and infinities pass, NaN gives the canonical NaN."""
    c = Circuit(f"significand_{fmt.name}")
    x = unpack(c, c.input("a", fmt.width), fmt)
    _, lz = _log2_floor(c, x, fmt)
    norm = shift_left(c, x.sig, lz)
    out = norm[:fmt.man_bits] + const_word(fmt.bias, fmt.exp_bits) + [x.sign]
    out = with_specials(c, out, fmt, nan=x.nan, inf=x.inf, inf_sign=x.sign, zero=x.zero, zero_sign=x.sign)
    c.output("y", out)
    return c
