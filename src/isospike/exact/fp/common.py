"""Shared pieces of the IEEE-754 circuits: unpacking, normalize-round-pack, specials.

Exponents inside a circuit are two's complement words of ``exp_width(fmt)`` bits, wide enough
for every intermediate (products, quotients, normalization shifts) of the format.
"""

from __future__ import annotations

from dataclasses import dataclass

from isospike.exact.circuits.arith import add_const, increment, invert, mux_word, negate, subtract, zero_extend
from isospike.exact.circuits.shift import leading_zeros, shift_left, shift_right_sticky
from isospike.exact.formats import FloatFormat
from isospike.exact.netlist import ZERO, Bits, Circuit


def exp_width(fmt: FloatFormat) -> int:
    """Bits of the signed exponent words used inside the circuits of ``fmt``."""
    return fmt.exp_bits + 4


@dataclass(frozen=True)
class Unpacked:
    """An IEEE value split into wires.

    sign; exp: the effective biased exponent (E bits; 1 for subnormals and zeros); sig: the p-bit
    significand with the hidden bit on top (0 for subnormals/zeros); nan / inf / zero flags;
    bits: the raw encoding (little-endian)."""

    sign: int
    exp: Bits
    sig: Bits
    nan: int
    inf: int
    zero: int
    bits: Bits

    @property
    def magnitude(self) -> Bits:
        """The encoding without its sign bit: ordered like the absolute value."""
        return self.bits[:-1]


def unpack(c: Circuit, bits: Bits, fmt: FloatFormat) -> Unpacked:
    M, E = fmt.man_bits, fmt.exp_bits
    frac, expf, sign = bits[:M], bits[M:M + E], bits[M + E]
    exp_nonzero = c.or_reduce(expf)
    exp_ones = c.and_reduce(expf)
    frac_nonzero = c.or_reduce(frac)
    exp_eff = [c.or_(expf[0], c.not_(exp_nonzero))] + expf[1:]
    return Unpacked(
        sign=sign,
        exp=exp_eff,
        sig=frac + [exp_nonzero],
        nan=c.and_(exp_ones, frac_nonzero),
        inf=c.andn(exp_ones, frac_nonzero),
        zero=c.gate("NOR", exp_nonzero, frac_nonzero),
        bits=list(bits),
    )


def const_word(value: int, width: int) -> Bits:
    return Circuit.const(value % (1 << width), width)


def sub_words(c: Circuit, a: Bits, b: Bits) -> Bits:
    return subtract(c, a, b)[0]


def round_pack(c: Circuit, sign: int, exp: Bits, sig: Bits, sticky: int, fmt: FloatFormat) -> tuple[Bits, int]:
    """Round (to nearest, ties to even) and encode the value

        (-1)^sign * (sig + sticky * epsilon) * 2^(exp - bias - (len(sig) - 1)),

    i.e. ``exp`` is the biased exponent the value has when the top bit of ``sig`` is its leading
    1; ``sticky`` flags nonzero bits below ``sig``. ``exp`` is a two's complement word. Handles
    normalization (any number of leading zeros), subnormal results, rounding carries into the
    exponent, and overflow to infinity. Returns (encoding bits, sig-is-zero flag); an all-zero
    ``sig`` encodes as a zero with the given sign."""
    p, M, E = fmt.precision, fmt.man_bits, fmt.exp_bits
    X = len(exp)
    if len(sig) < p + 2:
        sig = [ZERO] * (p + 2 - len(sig)) + list(sig)
    W = len(sig)
    lz, allzero = leading_zeros(c, sig)
    norm = shift_left(c, sig, lz)
    e1 = sub_words(c, exp, zero_extend(lz, X))
    em1 = add_const(c, e1, -1)
    tiny = em1[X - 1]  # e1 < 1: the result is subnormal (or underflows to zero)
    k = negate(c, em1)  # 1 - e1 > 0 when tiny
    shifted, st2 = shift_right_sticky(c, norm, [c.and_(tiny, x) for x in k])
    no_exp = c.or_(tiny, allzero)  # subnormal or zero: exponent field 0
    exp_field = [c.andn(x, no_exp) for x in e1[:E]]
    over = c.andn(c.not_(add_const(c, e1, -fmt.exp_max)[X - 1]), allzero)  # e1 >= 2^E - 1
    fraction = shifted[W - p:W - 1]
    guard = shifted[W - p - 1]
    rest = c.or_reduce(shifted[:W - p - 1] + [sticky, st2])
    round_up = c.and_(guard, c.or_(rest, fraction[0] if M else ZERO))
    field, _ = increment(c, fraction + exp_field, round_up)
    field = mux_word(c, over, const_word(fmt.exp_max << M, E + M), field)
    return field + [sign], allzero


def with_specials(c: Circuit, bits: Bits, fmt: FloatFormat, *, nan: int = ZERO, inf: int = ZERO,
                  inf_sign: int = ZERO, zero: int = ZERO, zero_sign: int = ZERO) -> Bits:
    """Override a result: NaN (canonical quiet NaN) beats infinity, which beats zero."""
    M, E = fmt.man_bits, fmt.exp_bits
    out = mux_word(c, zero, [ZERO] * (E + M) + [zero_sign], bits)
    out = mux_word(c, inf, const_word(fmt.exp_max << M, E + M) + [inf_sign], out)
    return mux_word(c, nan, const_word(fmt.quiet_nan, fmt.width), out)


def magnitude_ge(c: Circuit, a: Unpacked, b: Unpacked) -> int:
    """|a| >= |b| for non-NaN encodings (IEEE magnitudes order like their bit patterns)."""
    from isospike.exact.circuits.arith import greater_equal

    return greater_equal(c, a.magnitude, b.magnitude)


def select(c: Circuit, s: int, a: Unpacked, b: Unpacked) -> Unpacked:
    """``s ? a : b`` field by field (sign, exp, sig; flags are not used after a swap)."""
    return Unpacked(
        sign=c.mux(s, a.sign, b.sign),
        exp=mux_word(c, s, a.exp, b.exp),
        sig=mux_word(c, s, a.sig, b.sig),
        nan=ZERO, inf=ZERO, zero=ZERO, bits=[],
    )


__all__ = [
    "Unpacked", "const_word", "exp_width", "invert", "magnitude_ge", "round_pack", "select",
    "sub_words", "unpack", "with_specials",
]
