"""IEEE scaleB (x * 2^k with one rounding) and the word multiplexer (select)."""

from __future__ import annotations

from isospike.exact.circuits.arith import add, greater_equal, mux_word, sign_extend, zero_extend
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import const_word, exp_width, round_pack, unpack, with_specials
from isospike.exact.netlist import ZERO, Circuit


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
