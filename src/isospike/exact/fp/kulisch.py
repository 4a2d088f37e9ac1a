"""Exact dot products: a Kulisch accumulator (a fixed-point word wide enough to hold every
product of the format and any sum of up to 2^21 of them exactly), rounded once.

A product a * b of two values of a format with p-bit significands is P * 2^(sh) units of the
smallest product, u = 2^(2 (2 - bias - p)), with P = Ma * Mb < 2^(2p) and sh = Ea + Eb - 2 >= 0
(effective biased exponents, 1 for subnormals): for float32, u = 2^-298 and P << sh fits 554
bits. A term of the accumulator is that value in W-bit two's complement, negated as its
ones' complement plus a pending +1 carried in a C-bit count (the count is added once, at the
end), and three flags (NaN, +inf, -inf). Terms add exactly (integer addition: the order does
not matter), and :func:`build_kulisch_round` rounds the exact sum once, to nearest even.
"""

from __future__ import annotations

from dataclasses import dataclass

from isospike.exact.circuits.arith import add, add_const, mux_word, negate, zero_extend
from isospike.exact.circuits.multiply import multiply
from isospike.exact.circuits.shift import shift_left
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import round_pack, unpack, with_specials
from isospike.exact.netlist import ZERO, Bits, Circuit

COUNT_BITS = 21  # terms per dot product: fewer than 2^21


@dataclass(frozen=True)
class Geometry:
    """Widths of the accumulator of ``fmt``: ``data`` bits hold every product (P << sh), ``acc``
    the two's complement sum of fewer than 2^COUNT_BITS of them, ``unit`` the exponent of its
    least significant bit, ``term`` the lines of a term (acc, count, NaN, +inf, -inf)."""

    data: int
    acc: int
    unit: int
    term: int


def geometry(fmt: FloatFormat) -> Geometry:
    sh_max = 2 * (fmt.exp_max - 1) - 2
    data = 2 * fmt.precision + sh_max
    acc = data + COUNT_BITS + 1
    return Geometry(data, acc, 2 * (2 - fmt.bias - fmt.precision), acc + COUNT_BITS + 3)


def _split(g: Geometry, bits: Bits) -> tuple[Bits, Bits, int, int, int]:
    acc, cnt = bits[:g.acc], bits[g.acc:g.acc + COUNT_BITS]
    nan, pinf, ninf = bits[g.acc + COUNT_BITS:]
    return acc, cnt, nan, pinf, ninf


def build_kulisch_term(fmt: FloatFormat) -> Circuit:
    """a * b as an exact accumulator term: the significand product (a Dadda tree), shifted left
    by Ea + Eb - 2 (a barrel shifter whose constant-zero positions prune themselves), its
    ones' complement for a negative product with a pending +1, and the special-value flags."""
    g = geometry(fmt)
    c = Circuit(f"kulisch_term_{fmt.name}")
    a, b = unpack(c, c.input("a", fmt.width), fmt), unpack(c, c.input("b", fmt.width), fmt)
    P = multiply(c, a.sig, b.sig)
    X = fmt.exp_bits + 2
    sh, _ = add(c, zero_extend(a.exp, X), zero_extend(b.exp, X))
    sh = add_const(c, sh, -2)
    shifted = shift_left(c, list(P) + [ZERO] * (g.acc - len(P)), sh)
    sign = c.xor(a.sign, b.sign)
    acc = [c.xor(x, sign) for x in shifted]  # constant-zero positions become the sign wire itself
    nan = c.or_reduce([a.nan, b.nan, c.and_(a.inf, b.zero), c.and_(a.zero, b.inf)])
    inf = c.andn(c.or_(a.inf, b.inf), nan)
    c.output("y", acc + [sign] + [ZERO] * (COUNT_BITS - 1) + [nan, c.andn(inf, sign), c.and_(inf, sign)])
    return c


def build_kulisch_add(fmt: FloatFormat) -> Circuit:
    """The exact sum of two terms: a W-bit ripple adder (two neurons per bit), the pending counts
    added, the flags ORed."""
    g = geometry(fmt)
    c = Circuit(f"kulisch_add_{fmt.name}")
    x, y = _split(g, c.input("a", g.term)), _split(g, c.input("b", g.term))
    acc, _ = add(c, x[0], y[0])
    cnt, _ = add(c, x[1], y[1])
    c.output("y", acc + cnt + [c.or_(x[2], y[2]), c.or_(x[3], y[3]), c.or_(x[4], y[4])])
    return c


def build_kulisch_round(fmt: FloatFormat) -> Circuit:
    """A term (the exact sum) rounded once to ``fmt``: the pending count added, the magnitude of
    the two's complement word, normalized, rounded to nearest even (subnormals, overflow to
    infinity); an exact zero sum is +0; NaN if any product was NaN or both infinities occur."""
    g = geometry(fmt)
    c = Circuit(f"kulisch_round_{fmt.name}")
    acc, cnt, nan, pinf, ninf = _split(g, c.input("a", g.term))
    total, _ = add(c, acc, cnt)
    sign = total[-1]
    mag = mux_word(c, sign, negate(c, total), total)
    X = max(g.acc, -g.unit).bit_length() + 3
    top = g.acc - 1 + g.unit + fmt.bias  # biased exponent of the word's top bit
    out, _ = round_pack(c, sign, Circuit.const(top % (1 << X), X), mag, ZERO, fmt)
    out = with_specials(c, out, fmt, nan=c.or_(nan, c.and_(pinf, ninf)), inf=c.or_(pinf, ninf), inf_sign=ninf)
    c.output("y", out)
    return c


__all__ = ["COUNT_BITS", "Geometry", "build_kulisch_add", "build_kulisch_round", "build_kulisch_term", "geometry"]
