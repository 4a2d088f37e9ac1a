"""Comparisons, minimum/maximum and sign operations."""

from __future__ import annotations

from isospike.exact.circuits.arith import equal, greater_equal, mux_word
from isospike.exact.formats import FloatFormat
from isospike.exact.fp.common import const_word, unpack
from isospike.exact.netlist import ZERO, Circuit


def _two_inputs(name: str, fmt: FloatFormat):
    c = Circuit(f"{name}_{fmt.name}")
    a_bits, b_bits = c.input("a", fmt.width), c.input("b", fmt.width)
    return c, unpack(c, a_bits, fmt), unpack(c, b_bits, fmt)


def _less(c: Circuit, a, b) -> int:
    """a < b for non-NaN operands (+0 == -0)."""
    a_ge_b = greater_equal(c, a.magnitude, b.magnitude)
    b_ge_a = greater_equal(c, b.magnitude, a.magnitude)
    both_zero = c.and_(a.zero, b.zero)
    neg_pos = c.andn(a.sign, b.sign)  # a < 0 <= b unless both are zeros
    pos_pos = c.gate("NOR", a.sign, b.sign)
    neg_neg = c.and_(a.sign, b.sign)
    return c.or_reduce([
        c.andn(neg_pos, both_zero),
        c.andn(pos_pos, a_ge_b),  # |a| < |b|
        c.andn(neg_neg, b_ge_a),  # |a| > |b|
    ])


def _equal(c: Circuit, a, b) -> int:
    return c.or_(equal(c, a.bits, b.bits), c.and_(a.zero, b.zero))


def build_compare(op: str, fmt: FloatFormat) -> Circuit:
    """``eq``, ``lt`` or ``le``: one output line, 1 = true. NaN compares false."""
    c, a, b = _two_inputs(op, fmt)
    ordered = c.gate("NOR", a.nan, b.nan)
    if op == "eq":
        y = _equal(c, a, b)
    elif op == "lt":
        y = _less(c, a, b)
    elif op == "le":
        y = c.or_(_less(c, a, b), _equal(c, a, b))
    else:
        raise ValueError(op)
    c.output("y", c.and_(ordered, y))
    return c


def build_minmax(op: str, fmt: FloatFormat) -> Circuit:
    """IEEE 754-2019 ``minimum`` / ``maximum``: NaN if either operand is NaN, and -0 < +0.
    (torch.minimum/maximum agree except on +0 vs -0, where torch's result depends on the
    kernel path: measured here, vectorized and scalar paths return different zeros.)"""
    c, a, b = _two_inputs(op, fmt)
    both_zero = c.and_(a.zero, b.zero)
    a_lt_b = c.or_(_less(c, a, b), c.and_(both_zero, c.andn(a.sign, b.sign)))
    b_lt_a = c.or_(_less(c, b, a), c.and_(both_zero, c.andn(b.sign, a.sign)))
    pick_b = b_lt_a if op == "minimum" else a_lt_b
    y = mux_word(c, pick_b, b.bits, a.bits)
    y = mux_word(c, c.or_(a.nan, b.nan), const_word(fmt.quiet_nan, fmt.width), y)
    c.output("y", y)
    return c


def build_sign_op(op: str, fmt: FloatFormat) -> Circuit:
    """``neg`` (flip the sign line: one NOT neuron) or ``abs`` (clear it: no neuron)."""
    c = Circuit(f"{op}_{fmt.name}")
    bits = c.input("a", fmt.width)
    sign = c.not_(bits[-1]) if op == "neg" else ZERO
    c.output("y", bits[:-1] + [sign])
    return c
